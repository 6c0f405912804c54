// otapub's patch rule for CloudFront (docs/format.md):
// two Lambda@Edge handlers (Node.js 20, an ES module) on the assets/* cache
// behaviour.
//
// - `handler`, on the viewer-request event: a launch-asset request whose a-im
//   names bsdiff and that carries expo-requested-update-id R and
//   expo-current-update-id C is rewritten to /patches/<r>/<c> when that
//   object exists (a HEAD on the distribution's own domain without a-im, so
//   the rule does not run again; the answer is remembered 60 s per
//   container). The cache key is the rewritten URI: a patch is cached under
//   its own object, never under the asset's URL.
// - `responseHandler`, on the viewer-response event: a response to a
//   rewritten request gets `im: bsdiff`, `expo-base-update-id: <c>` and
//   `Cache-Control: no-store` (Android's HTTP cache would otherwise replay the
//   patch to the client's full-asset retry). S3 cannot store those headers on
//   the object, and a response headers policy cannot add them to some
//   responses only.
//
// Why not a CloudFront Function: it cannot find out whether the patch object
// exists (no fetch, no S3), and falling back to the asset after the origin's
// 404 needs an origin-response function anyway.

import otapubPatch from '../edge/patch.mjs';

const ASSET = /^\/assets\/[0-9a-f]{64}$/;
const PATCH = /^\/patches\/[0-9a-f-]{36}\/[0-9a-f-]{36}$/;
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
    // The full asset is always a safe answer.
    found = false;
  }
  known.set(url, { exists: found, at: Date.now() });
  return found;
}

function header(request, name) {
  const h = request.headers[name];
  return h && h.length > 0 ? h[0].value : null;
}

export const handler = async (event) => {
  const cf = event.Records[0].cf;
  const request = cf.request;
  if (!ASSET.test(request.uri)) {
    return request;
  }
  const patch = otapubPatch.path(
    header(request, 'a-im'),
    header(request, 'expo-requested-update-id'),
    header(request, 'expo-current-update-id'),
  );
  if (patch === null) {
    return request;
  }
  // Tests point this at a local origin; on Lambda@Edge (no environment
  // variables) it is always the distribution itself.
  const base = process.env.OTAPUB_EDGE_BASE || `https://${cf.config.distributionDomainName}`;
  if (await exists(`${base}/${patch}`)) {
    request.uri = `/${patch}`;
  }
  return request;
};

export const responseHandler = async (event) => {
  const cf = event.Records[0].cf;
  const { request, response } = cf;
  if (!PATCH.test(request.uri) || response.status !== '200') {
    return response;
  }
  // Only a request the viewer-request handler rewrote: a direct GET of a
  // patch object carries no a-im for a launch asset.
  if (otapubPatch.path(header(request, 'a-im'), header(request, 'expo-requested-update-id'), header(request, 'expo-current-update-id')) === null) {
    return response;
  }
  const set = (name, value) => {
    response.headers[name] = [{ key: name, value }];
  };
  for (const [name, value] of Object.entries(otapubPatch.headers)) {
    set(name, value);
  }
  set('expo-base-update-id', otapubPatch.base(request.uri));
  return response;
};
