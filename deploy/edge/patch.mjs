// otapub's patch rule (docs/format.md), shared by every
// edge template (nginx's otapub.js, the Worker, the Lambda@Edge function) and
// checked against `otapub serve` by tests/it/edge.rs.
//
// A launch-asset request asks for a patch when its a-im header names bsdiff
// and it carries expo-requested-update-id R (the update being downloaded) and
// expo-current-update-id C (the update the device runs), two different
// UUIDs. The patch, if otapub made one, is the object patches/<r>/<c>
// (lowercase ids) beside assets/; it is answered with `headers` below and
// `expo-base-update-id: <c>`, and never stored by a cache under the asset's
// URL (Android's HTTP cache would replay it to the client's full-asset
// retry). A request without a-im never gets a patch.
var OTAPUB_ID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

var OTAPUB_PATCH_HEADERS = {
  'content-type': 'application/octet-stream',
  'cache-control': 'no-store',
  vary: 'A-IM, Expo-Current-Update-ID, Expo-Requested-Update-ID',
  im: 'bsdiff',
};

// The path (without a leading slash) of the patch object a request asks for,
// or null. Arguments are the raw header values (null or undefined if absent).
function otapubPatchPath(aIm, requested, current) {
  if (typeof aIm !== 'string' || typeof requested !== 'string' || typeof current !== 'string') {
    return null;
  }
  var wants = aIm.split(',').some(function (v) {
    return v.trim().toLowerCase() === 'bsdiff';
  });
  if (!wants || !OTAPUB_ID.test(requested) || !OTAPUB_ID.test(current)) {
    return null;
  }
  var r = requested.toLowerCase();
  var c = current.toLowerCase();
  if (r === c) {
    return null;
  }
  return 'patches/' + r + '/' + c;
}

// The base update id of a patch path (what expo-base-update-id must say).
function otapubPatchBase(path) {
  return path.slice(path.lastIndexOf('/') + 1);
}

// One default export: njs modules have no named exports.
export default { path: otapubPatchPath, base: otapubPatchBase, headers: OTAPUB_PATCH_HEADERS };
