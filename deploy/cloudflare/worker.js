// otapub's edge rule as a Cloudflare Worker (docs/format.md).
// In front of the store's public/ folder: env.ORIGIN is its URL (an R2
// custom domain or public bucket URL, or any S3 endpoint serving it), e.g.
// "https://ota-origin.example.com/ota/public". The Worker
//   - answers a pointer request (<channel>/<platform>/<fp>/manifest or
//     manifest.json) that carries an eas-client-id with the object of the
//     device's bucket (<pointer>/rollout/<bb>/<name>) when it exists (a
//     fallback fetch on 404/403), else with the pointer's own object;
//   - answers a launch-asset request that asks for a bsdiff patch (a-im,
//     expo-requested-update-id, expo-current-update-id: docs/format.md) with patches/<r>/<c> when it exists, marked `im: bsdiff`
//     and `expo-base-update-id`, never stored by a cache; else the asset;
//   - adds the Expo protocol headers to every manifest;
//   - passes everything else through.
// The origin fetches are cached by Cloudflare per object URL (as the origin's
// Cache-Control says), so the device's id never enters a cache key.

import otapubBucket from '../edge/bucket.mjs';
import otapubPatch from '../edge/patch.mjs';

const ASSET = /^\/assets\/[0-9a-f]{64}$/;
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
    if (ASSET.test(path)) {
      const h = request.headers;
      const patch = otapubPatch.path(h.get('a-im'), h.get('expo-requested-update-id'), h.get('expo-current-update-id'));
      if (patch !== null) {
        const r = await fromOrigin(env, '/' + patch, request.method);
        if (r.status === 200) {
          const headers = new Headers(r.headers);
          for (const [name, value] of Object.entries(otapubPatch.headers)) {
            headers.set(name, value);
          }
          headers.set('expo-base-update-id', otapubPatch.base(patch));
          return new Response(r.body, { status: 200, headers });
        }
      }
    }
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
