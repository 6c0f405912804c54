//! `otapub verify`: acts as a device. Every pointer is fetched — from the
//! store, or over HTTP from the CDN with `--url` — and checked as the stock
//! expo-updates client and an otapub-aware client would: the response
//! headers, the multipart framing, the Expo RSA signature against the app's
//! certificate, the DSSE envelope by a trusted key (`verify_strict`) over
//! exactly the part's bytes, the manifest rules the client enforces,
//! runtimeVersion and channel/platform against the path, and every asset's
//! bytes against its hash.

use std::collections::BTreeMap;

use serde_json::Value;

use super::status::LeafStatus;
use super::Context;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::manifest::{boundary_of, parse_multipart};
use crate::model::{PatchRow, Permutation};
use crate::names::{Channel, Fingerprint, Platform};
use crate::signing::{self, ExpoCertificate, TrustedKeys};

/// What a verify checks against.
pub struct VerifyOptions<'a> {
    /// ed25519 keys trusted for the DSSE envelopes.
    pub trusted: &'a TrustedKeys,
    /// The app's code-signing certificate, when Expo signatures are checked.
    pub expo_cert: Option<&'a ExpoCertificate>,
    /// The keyid the app's codeSigningMetadata names.
    pub expo_keyid: &'a str,
    /// Fetch over HTTP from this base URL (the CDN) instead of the store.
    pub url: Option<&'a str>,
    /// The root the app embeds (DER) when responses carry a certificate
    /// chain: each served chain is checked up to it as the client does.
    pub expo_ca: Option<&'a [u8]>,
    /// With `expo_ca`: a certificate of a served chain that expires sooner
    /// than this is a problem (what a daily CI job watches).
    pub min_validity: Option<chrono::Duration>,
    /// The clock the certificates' dates are checked against.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// The result of a verify.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Pointers checked.
    pub pointers: usize,
    /// Distinct assets downloaded and hashed.
    pub assets: usize,
    /// Distinct launch-asset patches downloaded (with the client's headers,
    /// over HTTP) and applied to their base.
    pub patches: usize,
    /// Problems, one line each.
    pub problems: Vec<String>,
    /// The Expo signing leaf each served response carries (pointers and
    /// rollout buckets that carry a certificate chain), by path.
    #[serde(rename = "servedLeaves")]
    pub served_leaves: Vec<ServedLeaf>,
}

/// The leaf one served response carries, as a device received it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServedLeaf {
    /// Its path under the base URL (`production/ios/fp/manifest`,
    /// `…/rollout/07/manifest`).
    pub response: String,
    /// The leaf.
    #[serde(flatten)]
    pub leaf: LeafStatus,
}

/// A pointer path `public/<channel>/<platform>/<fingerprint>/manifest`, parsed.
fn parse_pointer_key(key: &str) -> Option<(String, String, String)> {
    let rest = key.strip_prefix("public/")?.strip_suffix("/manifest")?;
    let mut it = rest.split('/');
    let (c, p, f) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || c == "updates" || c == "assets" {
        return None;
    }
    Some((c.to_string(), p.to_string(), f.to_string()))
}

/// One fetched object: bytes, Content-Type, and the response headers (lowercase names).
struct Fetched {
    bytes: Vec<u8>,
    content_type: String,
    headers: Option<BTreeMap<String, String>>,
}

enum Source<'a> {
    Store(&'a Context<'a>),
    Http { client: reqwest::Client, base: String },
}

impl Source<'_> {
    /// Fetches `public/<path>`; `None` when it is missing.
    async fn fetch(&self, path: &str) -> Result<Option<Fetched>> {
        match self {
            Source::Store(ctx) => Ok(ctx.store.get(&format!("public/{path}")).await?.map(|o| Fetched {
                bytes: o.bytes,
                content_type: o.meta.content_type,
                headers: None,
            })),
            Source::Http { base, .. } => self.get_url(&format!("{base}/{path}")).await,
        }
    }

    /// Fetches an asset as the device would: by its URL over HTTP, by its
    /// hash from the store.
    async fn fetch_asset(&self, url: &str, sha_hex: &str) -> Result<Option<Fetched>> {
        match self {
            Source::Store(_) => self.fetch(&format!("assets/{sha_hex}")).await,
            Source::Http { .. } => self.get_url(url).await,
        }
    }

    async fn get_url(&self, url: &str) -> Result<Option<Fetched>> {
        self.get_url_with(url, &[]).await
    }

    /// GETs `url` with these request headers.
    async fn get_url_with(&self, url: &str, headers: &[(&str, &str)]) -> Result<Option<Fetched>> {
        let Source::Http { client, .. } = self else {
            unreachable!("only HTTP sources fetch URLs")
        };
        let err = |reason: String| Error::Store {
            action: "fetch",
            key: url.to_string(),
            reason,
        };
        let mut req = client.get(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {}", resp.status())));
        }
        let headers: BTreeMap<String, String> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).to_string(),
                )
            })
            .collect();
        let content_type = headers.get("content-type").cloned().unwrap_or_default();
        let bytes = resp.bytes().await.map_err(|e| err(e.to_string()))?.to_vec();
        Ok(Some(Fetched {
            bytes,
            content_type,
            headers: Some(headers),
        }))
    }
}

/// Verifies every pointer in the store.
pub async fn verify(ctx: &Context<'_>, opts: &VerifyOptions<'_>) -> Result<VerifyReport> {
    let source = match opts.url {
        None => Source::Store(ctx),
        Some(url) => {
            let base = url.trim_end_matches('/').to_string();
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(super::OpError::VerifyUrl { url: url.to_string() }.into());
            }
            // A CDN that accepts the connection and never answers must not hang a CI job.
            let client = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| Error::Store {
                    action: "start an HTTP client for",
                    key: base.clone(),
                    reason: e.to_string(),
                })?;
            Source::Http { client, base }
        }
    };
    let mut report = VerifyReport::default();
    let mut seen = Seen::default();
    match crate::commit::read_index(ctx.store).await {
        Ok(index) => {
            for row in crate::index::patches(index.conn())?
                .into_iter()
                .filter(|r| r.kept.is_some())
            {
                seen.rows.entry(row.requested_id.clone()).or_default().push(row);
            }
        }
        Err(e) => report.problems.push(format!("patches not checked: {e}")),
    }
    for obj in ctx.store.list("public/").await? {
        let Some((c, p, f)) = parse_pointer_key(&obj.key) else {
            continue;
        };
        report.pointers += 1;
        let path = format!("{c}/{p}/{f}/manifest");
        let mut problems = verify_pointer(&source, opts, (&c, &p, &f), &path, &mut seen).await?;
        problems.extend(verify_rollout(&source, opts, (&c, &p, &f), &mut seen).await?);
        report
            .problems
            .extend(problems.into_iter().map(|m| format!("{c}/{p}/{f}: {m}")));
    }
    report.served_leaves = std::mem::take(&mut seen.leaves)
        .into_iter()
        .map(|(response, leaf)| ServedLeaf { response, leaf })
        .collect();
    report.assets = seen.assets.len();
    report.patches = seen.patches.len();
    Ok(report)
}

fn is_expo_time(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok()
        && s.len() == "2026-01-01T00:00:00.000Z".len()
}

/// The manifest rules the stock client enforces (expo-updates 57: UpdateFactory, FileDownloader).
fn manifest_rules(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if doc["id"].as_str().and_then(crate::names::uuid_bytes).is_none() {
        problems.push(format!("id {} is not a canonical UUID", doc["id"]));
    }
    if !doc["createdAt"].as_str().is_some_and(is_expo_time) {
        problems.push(format!(
            "createdAt {} is not yyyy-MM-ddTHH:mm:ss.SSSZ",
            doc["createdAt"]
        ));
    }
    let launch = &doc["launchAsset"];
    // The Expo spec says the launch asset's fileExtension SHOULD be omitted;
    // manifests signed before otapub followed that carry `.bundle`.
    if launch["contentType"] != "application/javascript"
        || !(launch["fileExtension"].is_null() || launch["fileExtension"] == ".bundle")
    {
        problems
            .push("launchAsset must have contentType application/javascript and no fileExtension (or .bundle)".into());
    }
    let mut all = vec![launch];
    all.extend(
        doc["assets"]
            .as_array()
            .map(|a| a.iter().collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    for (i, a) in all.into_iter().enumerate() {
        let url = a["url"].as_str().unwrap_or("");
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(format!("asset url {url:?} is not an absolute http(s) URL"));
        }
        if a["key"].as_str().is_none_or(str::is_empty) || !a["contentType"].is_string() {
            problems.push(format!("asset {url} lacks a key or contentType"));
        }
        if i > 0 && !a["fileExtension"].as_str().is_some_and(|e| e.starts_with('.')) {
            problems.push(format!("asset {url} has a fileExtension not starting with a dot"));
        }
        let hash_ok = a["hash"]
            .as_str()
            .is_some_and(|h| h.len() == 43 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if !hash_ok {
            problems.push(format!("asset {url} hash is not base64url SHA-256 without padding"));
        }
    }
    problems
}

/// Checks a pointer's signed `rollout.json`, when it has one, and every
/// candidate bucket it lists as a device in that bucket would fetch it.
async fn verify_rollout(
    source: &Source<'_>,
    opts: &VerifyOptions<'_>,
    (c, p, f): (&str, &str, &str),
    seen: &mut Seen,
) -> Result<Vec<String>> {
    let Some(record) = source.fetch(&format!("{c}/{p}/{f}/rollout.json")).await? else {
        return Ok(Vec::new());
    };
    let envelope = match signing::parse_envelope(&record.bytes) {
        Ok(e) => e,
        Err(e) => return Ok(vec![format!("rollout.json: {e}")]),
    };
    let mut problems = Vec::new();
    if envelope.payload_type != signing::ROLLOUT_PAYLOAD_TYPE {
        problems.push(format!("rollout.json has payloadType {:?}", envelope.payload_type));
    }
    if let Err(e) = opts.trusted.verify(&envelope) {
        problems.push(format!("rollout.json: {e}"));
    }
    let doc: crate::docs::RolloutDoc = match serde_json::from_slice(&envelope.payload) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("rollout.json payload: {e}"));
            return Ok(problems);
        }
    };
    if doc.pointer != format!("{c}/{p}/{f}") {
        problems.push(format!("rollout.json is signed for pointer {}", doc.pointer));
    }
    let expected = match Permutation::from_slice(&doc.permutation) {
        Ok(perm) if doc.state == "running" => perm.buckets(doc.percent),
        Ok(_) => Vec::new(),
        Err(e) => {
            problems.push(format!("rollout.json: {e}"));
            Vec::new()
        }
    };
    if doc.buckets != expected || doc.paused != (doc.state == "paused") {
        problems.push("rollout.json's buckets or paused flag disagree with its state, percent and permutation".into());
    }
    for b in &doc.buckets {
        let path = format!("{c}/{p}/{f}/rollout/{b:02}/manifest");
        let mut found = verify_pointer(source, opts, (c, p, f), &path, seen).await?;
        if found.is_empty() {
            if let Some(body) = source.fetch(&path).await? {
                let id = boundary_of(&body.content_type)
                    .and_then(|bd| parse_multipart(bd, &body.bytes).ok())
                    .and_then(|parts| {
                        parts
                            .first()
                            .and_then(|part| serde_json::from_slice::<Value>(&part.body).ok())
                    })
                    .and_then(|v| v["id"].as_str().map(str::to_string));
                if id != doc.candidate.id {
                    found.push(format!("serves {id:?}, not the candidate {:?}", doc.candidate.id));
                }
            }
        }
        problems.extend(found.into_iter().map(|m| format!("rollout bucket {b:02}: {m}")));
    }
    Ok(problems)
}

async fn verify_pointer(
    source: &Source<'_>,
    opts: &VerifyOptions<'_>,
    (c, p, f): (&str, &str, &str),
    path: &str,
    seen: &mut Seen,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    if c.parse::<Channel>().is_err() || p.parse::<Platform>().is_err() || f.parse::<Fingerprint>().is_err() {
        problems.push("path is not a valid <channel>/<platform>/<fingerprint>".to_string());
        return Ok(problems);
    }
    let Some(body) = source.fetch(path).await? else {
        return Ok(vec!["manifest is missing".into()]);
    };
    let Some(env_obj) = source.fetch(&format!("{path}.json")).await? else {
        return Ok(vec!["manifest.json is missing (run `otapub regenerate`)".into()]);
    };
    if let Some(headers) = &body.headers {
        if headers.get("expo-protocol-version").map(String::as_str) != Some("1") {
            problems.push("response has no `expo-protocol-version: 1` header (the client rejects it; see deploy/ for the CDN rule)".into());
        }
        if headers.get("expo-sfv-version").map(String::as_str) != Some("0") {
            problems.push("response has no `expo-sfv-version: 0` header (see deploy/ for the CDN rule)".into());
        }
    }
    if !body.content_type.starts_with("multipart/mixed; boundary=") {
        problems.push(format!(
            "Content-Type {:?} is not `multipart/mixed; boundary=…`",
            body.content_type
        ));
    }
    let Some(boundary) = boundary_of(&body.content_type) else {
        problems.push("Content-Type names no boundary".into());
        return Ok(problems);
    };
    let parts = match parse_multipart(boundary, &body.bytes) {
        Ok(parts) => parts,
        Err(e) => {
            problems.push(format!("manifest body: {e}"));
            return Ok(problems);
        }
    };
    let Some(first) = parts.first() else {
        problems.push("manifest body has no part".into());
        return Ok(problems);
    };
    let part_name = first.name().unwrap_or("").to_string();
    if let Some(leaf) = LeafStatus::in_parts(&parts, opts.now) {
        seen.leaves.insert(path.to_string(), leaf);
    }
    if let Some(root) = opts.expo_ca {
        problems.extend(check_chain(&parts, root, opts));
    }
    if let Some(cert) = opts.expo_cert {
        match first.header("expo-signature") {
            None => problems.push("the part has no expo-signature header, but the app requires code signing".into()),
            Some(h) => {
                if let Err(e) = cert.verify(&first.body, h, opts.expo_keyid) {
                    problems.push(e);
                }
            }
        }
    }
    match signing::parse_envelope(&env_obj.bytes) {
        Err(e) => problems.push(format!("manifest.json: {e}")),
        Ok(envelope) => {
            let expected_type = match part_name.as_str() {
                "manifest" => signing::MANIFEST_PAYLOAD_TYPE,
                "directive" => signing::DIRECTIVE_PAYLOAD_TYPE,
                other => {
                    problems.push(format!("first part is named {other:?}, not manifest or directive"));
                    return Ok(problems);
                }
            };
            if envelope.payload_type != expected_type {
                problems.push(format!(
                    "manifest.json has payloadType {:?}, expected {expected_type:?}",
                    envelope.payload_type
                ));
            }
            if let Err(e) = opts.trusted.verify(&envelope) {
                problems.push(format!("manifest.json: {e}"));
            }
            if envelope.payload != first.body {
                problems.push("manifest and manifest.json disagree: the envelope's payload is not the manifest part (run `otapub regenerate`)".into());
            }
        }
    }
    let doc: Value = match serde_json::from_slice(&first.body) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{part_name} part is not JSON: {e}"));
            return Ok(problems);
        }
    };
    if part_name == "directive" {
        let bound = &doc["extra"]["otapub"];
        if bound["channel"] != c || bound["platform"] != p || bound["fingerprint"] != f {
            problems.push("directive is signed for another pointer".into());
        }
        match doc["type"].as_str() {
            Some("noUpdateAvailable") => {}
            Some("rollBackToEmbedded") => {
                if !doc["parameters"]["commitTime"].as_str().is_some_and(is_expo_time) {
                    problems.push("rollBackToEmbedded has no commitTime in the createdAt format".into());
                }
            }
            other => problems.push(format!("unknown directive type {other:?}")),
        }
        return Ok(problems);
    }
    problems.extend(manifest_rules(&doc));
    if doc["runtimeVersion"] != f {
        problems.push(format!(
            "runtimeVersion {} is not the fingerprint {f}",
            doc["runtimeVersion"]
        ));
    }
    let meta = &doc["metadata"]["otapub"];
    if meta["channel"] != c || meta["platform"] != p {
        problems.push(format!(
            "manifest is for {}/{}, not {c}/{p}",
            meta["channel"], meta["platform"]
        ));
    }
    let mut refs = vec![&doc["launchAsset"]];
    if let Some(list) = doc["assets"].as_array() {
        refs.extend(list);
    }
    for a in refs {
        let (Some(url), Some(hash)) = (a["url"].as_str(), a["hash"].as_str()) else {
            problems.push("an asset has no url or hash".into());
            continue;
        };
        let Some(sha_hex) = url.rsplit_once("/assets/").map(|(_, h)| h.to_string()) else {
            problems.push(format!("asset url {url} is not under /assets/"));
            continue;
        };
        if !seen.assets.contains_key(url) {
            let got = source
                .fetch_asset(url, &sha_hex)
                .await?
                .map(|o| Sha256Digest::of(&o.bytes).expo_hash());
            seen.assets.insert(url.to_string(), got);
        }
        match &seen.assets[url] {
            None => problems.push(format!("asset {url} is missing")),
            Some(got) if got != hash => problems.push(format!("asset {url} does not match its hash {hash}")),
            Some(_) => {}
        }
    }
    problems.extend(verify_patches(source, &doc, seen).await?);
    Ok(problems)
}

/// What a verify has checked so far, and the patches the index records.
#[derive(Default)]
struct Seen {
    /// Asset URL → the base64url SHA-256 of what was fetched, if anything.
    assets: BTreeMap<String, Option<String>>,
    /// (requested id, base id) → problems found with that patch.
    patches: BTreeMap<(String, String), Vec<String>>,
    /// Kept patches by requested id.
    rows: BTreeMap<String, Vec<PatchRow>>,
    /// Response path → the leaf it carries.
    leaves: BTreeMap<String, LeafStatus>,
}

/// Each patch of a served update, asked for as the stock client asks for
/// it (over HTTP: `A-IM: bsdiff` and its update-id headers on the launch
/// asset's URL) and applied to its base: the result must hash to the
/// signed `launchAsset.hash`.
async fn verify_patches(source: &Source<'_>, doc: &Value, seen: &mut Seen) -> Result<Vec<String>> {
    let (Some(id), Some(url), Some(hash)) = (
        doc["id"].as_str(),
        doc["launchAsset"]["url"].as_str(),
        doc["launchAsset"]["hash"].as_str(),
    ) else {
        return Ok(Vec::new());
    };
    let id = id.to_ascii_lowercase();
    let rows = seen.rows.get(&id).cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for row in rows {
        let pair = (row.requested_id.clone(), row.base_id.clone());
        if !seen.patches.contains_key(&pair) {
            let found = verify_patch(source, url, hash, &row).await?;
            seen.patches.insert(pair.clone(), found);
        }
        problems.extend(
            seen.patches[&pair]
                .iter()
                .map(|m| format!("patch from {}: {m}", row.base_id)),
        );
    }
    Ok(problems)
}

async fn verify_patch(source: &Source<'_>, url: &str, hash: &str, row: &PatchRow) -> Result<Vec<String>> {
    let patch = match source {
        Source::Store(_) => {
            source
                .fetch(&format!("patches/{}/{}", row.requested_id, row.base_id))
                .await?
        }
        Source::Http { .. } => {
            source
                .get_url_with(
                    url,
                    &[
                        ("a-im", "bsdiff"),
                        ("expo-current-update-id", &row.base_id),
                        ("expo-requested-update-id", &row.requested_id),
                    ],
                )
                .await?
        }
    };
    let Some(patch) = patch else {
        return Ok(vec!["missing (run `otapub regenerate`)".into()]);
    };
    let mut problems = Vec::new();
    if let Some(h) = &patch.headers {
        let has = |name: &str, want: &str| {
            h.get(name)
                .is_some_and(|v| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(want)))
        };
        if !has("im", "bsdiff") {
            problems.push("the CDN answers a patch request with the full asset (no `im: bsdiff`): deploy the patch rule of deploy/ (devices then download the whole bundle)".into());
            return Ok(problems);
        }
        if h.get("expo-base-update-id").map(String::as_str) != Some(row.base_id.as_str()) {
            problems.push(format!(
                "the response's expo-base-update-id is {:?}, not {} (the client then refuses the patch)",
                h.get("expo-base-update-id"),
                row.base_id
            ));
        }
        let no_store = has("cache-control", "no-store");
        let varies = has("vary", "a-im") && has("vary", "expo-current-update-id");
        if !no_store && !varies {
            problems.push("a patch is served with neither `Cache-Control: no-store` nor `Vary: A-IM, Expo-Current-Update-ID`: a cache may replay it to a full-asset request".into());
        }
    }
    let base_url = match url.rsplit_once("/assets/") {
        Some((prefix, _)) => format!("{prefix}/assets/{}", row.base),
        None => String::new(),
    };
    let Some(base) = source.fetch_asset(&base_url, &row.base.to_hex()).await? else {
        problems.push(format!("its base's launch asset {} is missing", row.base));
        return Ok(problems);
    };
    match crate::patch::apply(&base.bytes, &patch.bytes) {
        Err(e) => problems.push(format!("{e} (run `otapub regenerate --verify-bytes`)")),
        Ok(out) if Sha256Digest::of(&out).expo_hash() != hash => problems.push(
            "applied to its base it does not give the launch asset the manifest signs (run `otapub regenerate --verify-bytes`)".into(),
        ),
        Ok(_) => {}
    }
    Ok(problems)
}

/// The checks of a response's `certificate_chain` part the client makes
/// (expo-updates' CertificateChain): the chain up to the embedded root at
/// `opts.now`, and the `expo-signature` of the first part with the leaf's
/// key; plus `opts.min_validity`.
fn check_chain(parts: &[crate::manifest::ParsedPart], root: &[u8], opts: &VerifyOptions<'_>) -> Vec<String> {
    use crate::signing::chain;
    let Some(part) = parts.iter().find(|p| p.name() == Some("certificate_chain")) else {
        return vec!["no certificate_chain part, but the app embeds a root (--expo-ca) and expects one; sign with --expo-chain and run `otapub refresh`".into()];
    };
    let ders = match std::str::from_utf8(&part.body)
        .map_err(|e| e.to_string())
        .and_then(chain::split_pem)
    {
        Ok(d) => d,
        Err(e) => return vec![format!("certificate_chain: {e}")],
    };
    let leaf = match chain::verify_chain(&ders, root, opts.now) {
        Ok(leaf) => leaf,
        Err(e) => return vec![format!("certificate_chain: {e}")],
    };
    let mut problems = Vec::new();
    match parts.first().and_then(|p| p.header("expo-signature").map(|h| (p, h))) {
        None => problems.push("the part has no expo-signature header".into()),
        Some((first, header)) => {
            if let Err(e) = ExpoCertificate::from_spki(&leaf.spki).and_then(|c| c.verify_any_keyid(&first.body, header))
            {
                problems.push(format!("expo-signature with the chain's leaf ({}): {e}", leaf.subject));
            }
        }
    }
    if let Some(min) = opts.min_validity {
        for der in ders.iter().map(Vec::as_slice).chain(std::iter::once(root)) {
            if let Ok(c) = chain::info(der) {
                if c.not_after - opts.now < min {
                    problems.push(format!(
                        "certificate {} expires at {}, within {} days: issue a new leaf (`otapub keys expo-leaf`) and run `otapub refresh`",
                        c.subject,
                        crate::manifest::format_time(c.not_after),
                        min.num_days()
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_id_is_a_hyphenated_uuid_in_either_case() {
        let id_problem = |id: &str| {
            manifest_rules(&serde_json::json!({ "id": id }))
                .iter()
                .any(|p| p.contains("is not a canonical UUID"))
        };
        let id = "8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5f";
        assert!(!id_problem(id));
        assert!(!id_problem(&id.to_uppercase()));
        for bad in [
            "",
            "8c5f4b6e3b1a4f7e9d2c0a1b2c3d4e5f",
            "{8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5f}",
            "urn:uuid:8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5f",
            "8c5f4b6e3-b1a-4f7e-9d2c-0a1b2c3d4e5f",
            "8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5g",
        ] {
            assert!(id_problem(bad), "{bad:?}");
        }
    }
}
