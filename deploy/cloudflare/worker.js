// otapub's edge rule as a Cloudflare Worker (SPEC "Staged rollouts").
// In front of the store's public/ folder: env.ORIGIN is its URL (an R2
// custom domain or public bucket URL, or any S3 endpoint serving it), e.g.
// "https://ota-origin.example.com/ota/public". The Worker
//   - answers a pointer request (<channel>/<platform>/<fp>/manifest or
//     manifest.json) that carries an eas-client-id with the object of the
//     device's bucket (<pointer>/rollout/<bb>/<name>) when it exists (a
//     fallback fetch on 404/403), else with the pointer's own object;
//   - adds the Expo protocol headers to every manifest;
//   - passes everything else through.
// The origin fetches are cached by Cloudflare per object URL (as the origin's
// Cache-Control says), so the device's id never enters a cache key.

// BEGIN otapub bucket
var OTAPUB_UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

// (a * b) mod 2^64 of [high, low] u32 pairs, in 16-bit limbs.
function otapubMul64(a, b) {
  var x = [a[1] & 0xffff, a[1] >>> 16, a[0] & 0xffff, a[0] >>> 16];
  var y = [b[1] & 0xffff, b[1] >>> 16, b[0] & 0xffff, b[0] >>> 16];
  var r = [0, 0, 0, 0];
  for (var i = 0; i < 4; i++) {
    var carry = 0;
    for (var j = 0; i + j < 4; j++) {
      var t = r[i + j] + x[i] * y[j] + carry;
      r[i + j] = t % 65536;
      carry = Math.floor(t / 65536);
    }
  }
  return [(r[3] * 65536 + r[2]) >>> 0, (r[1] * 65536 + r[0]) >>> 0];
}

// z ^ (z >> n) for 0 < n < 32.
function otapubXorShift(z, n) {
  return [(z[0] ^ (z[0] >>> n)) >>> 0, (z[1] ^ ((z[1] >>> n) | (z[0] << (32 - n)))) >>> 0];
}

function otapubBucket(id) {
  if (typeof id !== 'string' || !OTAPUB_UUID.test(id)) {
    return null;
  }
  var hex = id.replace(/-/g, '');
  var word = function (k) { return parseInt(hex.slice(8 * k, 8 * k + 8), 16); };
  var z = [(word(0) ^ word(2)) >>> 0, (word(1) ^ word(3)) >>> 0];
  z = otapubMul64(otapubXorShift(z, 30), [0xbf58476d, 0x1ce4e5b9]);
  z = otapubMul64(otapubXorShift(z, 27), [0x94d049bb, 0x133111eb]);
  z = otapubXorShift(z, 31);
  // (z >> 11) is below 2^53: exact as a double, as the client computes it.
  var value = ((z[0] >>> 11) * 4294967296 + (((z[1] >>> 11) | (z[0] << 21)) >>> 0)) / 9007199254740992;
  return Math.floor(value * 100);
}
// END otapub bucket

const POINTER = /^\/([a-z0-9-]{1,32}\/(?:ios|android)\/[A-Za-z0-9._-]{1,128})\/(manifest(?:\.json)?)$/;

async function fromOrigin(env, path, method) {
  return fetch(env.ORIGIN.replace(/\/$/, '') + path, { method, cf: { cacheEverything: true } });
}

export default {
  async fetch(request, env) {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return new Response('only GET and HEAD\n', { status: 405 });
    }
    const path = new URL(request.url).pathname;
    const pointer = path.match(POINTER);
    let response = null;
    if (pointer) {
      const b = otapubBucket(request.headers.get('eas-client-id'));
      if (b !== null) {
        const bucketPath = `/${pointer[1]}/rollout/${b < 10 ? '0' : ''}${b}/${pointer[2]}`;
        const r = await fromOrigin(env, bucketPath, request.method);
        if (r.status === 200) {
          response = r;
        }
      }
    }
    if (response === null) {
      response = await fromOrigin(env, path, request.method);
    }
    const headers = new Headers(response.headers);
    if (path.endsWith('/manifest')) {
      headers.set('expo-protocol-version', '1');
      headers.set('expo-sfv-version', '0');
    }
    if (pointer) {
      // The edge keeps s-maxage; devices revalidate on every check-in.
      headers.set('Cache-Control', 'private, max-age=0');
      headers.set('Vary', 'eas-client-id');
    }
    return new Response(response.body, { status: response.status, headers });
  },
};
