// otapub's edge rule for CloudFront as a Lambda@Edge function on the
// viewer-request event (Node.js 20; SPEC "Staged rollouts").
//
// Why Lambda@Edge and not a CloudFront Function: the rule needs to know
// whether the device's bucket object exists, and a CloudFront Function can
// neither fetch nor read S3; its only store, a KeyValueStore, would have to
// be kept in sync with every rollout change through a second AWS API. This
// function asks CloudFront itself (a HEAD of the bucket object on the
// distribution's own domain, without eas-client-id, so the rule does not
// run again and the answer is cached by CloudFront like any object), keeps
// the answer for 60 s per container (the pointers' s-maxage), and rewrites
// the request's URI to the bucket object when it exists. The cache key is
// the rewritten URI: one device's bucket is never served to another.
//
// Deploy: in us-east-1, publish a version of this function and associate it
// with the pointer cache behaviour's viewer-request event (otapub-cdn.yaml).

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
const REMEMBER_MS = 60 * 1000;
const known = new Map();

async function exists(url) {
  const seen = known.get(url);
  if (seen && Date.now() - seen.at < REMEMBER_MS) {
    return seen.exists;
  }
  let found = false;
  try {
    const r = await fetch(url, { method: 'HEAD' });
    found = r.status === 200;
  } catch (e) {
    // The pointer's own object is always a safe answer.
    found = false;
  }
  known.set(url, { exists: found, at: Date.now() });
  return found;
}

// The request headers `otapub rollout advance --gate-log` reads, under
// their lowercase names: one JSON line per pointer request that carries one
// of them, in the function's CloudWatch log (see README.md).
const GATE_HEADERS = ['eas-client-id', 'expo-current-update-id', 'expo-embedded-update-id', 'expo-recent-failed-update-ids'];

function gateLog(request) {
  const line = { path: request.uri };
  let any = false;
  for (const name of GATE_HEADERS) {
    const h = request.headers[name];
    if (h && h.length > 0) {
      line[name] = h[0].value;
      any = any || name !== 'eas-client-id';
    }
  }
  if (any) {
    console.log(JSON.stringify(line));
  }
}

exports.handler = async (event) => {
  const cf = event.Records[0].cf;
  const request = cf.request;
  const pointer = request.uri.match(POINTER);
  if (pointer) {
    gateLog(request);
  }
  const header = request.headers['eas-client-id'];
  if (!pointer || !header || header.length === 0) {
    return request;
  }
  const b = otapubBucket(header[0].value);
  if (b === null) {
    return request;
  }
  const uri = `/${pointer[1]}/rollout/${b < 10 ? '0' : ''}${b}/${pointer[2]}`;
  // Tests point this at a local origin; on Lambda@Edge (no environment
  // variables) it is always the distribution itself.
  const base = process.env.OTAPUB_EDGE_BASE || `https://${cf.config.distributionDomainName}`;
  if (await exists(base + uri)) {
    request.uri = uri;
  }
  return request;
};

exports.otapubBucket = otapubBucket;
