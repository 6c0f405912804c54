// otapub's edge rule for nginx (njs, Debian's libnginx-mod-http-js):
//   js_set $otapub_bucket otapub.bucket;   the two-digit rollout bucket of the
//                                          request's eas-client-id, or "none"
//   js_set $otapub_patch otapub.patch;     the patch object (patches/<r>/<c>) a
//                                          launch-asset request asks for, or ""
//   js_set $otapub_patch_base otapub.patchBase;   its base update id, or ""
//   js_header_filter otapub.headers;       Content-Type of a manifest read from
//                                          its own first line (a local tree has
//                                          no object metadata), protocol headers
// See otapub.conf (nginx in front of S3) and otapub-local.conf (a local tree);
// ../edge/bucket.mjs and ../edge/patch.mjs go in the js_path directory beside
// this file.
import fs from 'fs';

import otapubBucket from 'bucket.mjs';
import otapubPatch from 'patch.mjs';

function bucket(r) {
  var b = otapubBucket(r.headersIn['eas-client-id']);
  if (b === null) {
    return 'none';
  }
  return (b < 10 ? '0' : '') + b;
}

function patch(r) {
  var h = r.headersIn;
  return otapubPatch.path(h['a-im'], h['expo-requested-update-id'], h['expo-current-update-id']) || '';
}

function patchBase(r) {
  var p = patch(r);
  return p ? otapubPatch.base(p) : '';
}

// For a local tree: a manifest's Content-Type names the boundary its body
// starts with; every manifest gets the two Expo protocol headers.
function headers(r) {
  if (!/\/manifest$/.test(r.uri)) {
    return;
  }
  r.headersOut['expo-protocol-version'] = '1';
  r.headersOut['expo-sfv-version'] = '0';
  if (r.status !== 200 || r.variables.otapub_local !== '1') {
    return;
  }
  try {
    var head = fs.readFileSync(r.variables.document_root + r.uri).toString().slice(0, 200);
    var m = head.match(/^--([A-Za-z0-9-]{1,70})\r\n/);
    if (m) {
      r.headersOut['Content-Type'] = 'multipart/mixed; boundary=' + m[1];
    }
  } catch (e) {
    r.error('otapub: cannot read ' + r.uri + ': ' + e);
  }
}

export default { bucket, patch, patchBase, headers };
