// otapub's rollout bucket of a device (docs/format.md): expo-eas-client's
// deterministicUniformValue of its eas-client-id, times 100, rounded down;
// null when the id is not a UUID in 8-4-4-4-12 hex form. 32-bit arithmetic
// only: njs has no BigInt. One ES module, imported by every edge template
// (nginx's otapub.js, the Worker, the Lambda@Edge function); tests/it/edge.rs
// checks it against an independent transcription of docs/format.md's formula.
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

export default function otapubBucket(id) {
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
