// otapub's edge rule for CloudFront as a Lambda@Edge function on the
// viewer-request event (Node.js 20, an ES module; docs/format.md).
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

import otapubBucket from '../edge/bucket.mjs';

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

export const handler = async (event) => {
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

