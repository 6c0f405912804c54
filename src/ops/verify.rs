//! `otapub verify`: acts as a device. Every pointer in the store is fetched
//! and checked: the multipart framing, the DSSE signature by a trusted key
//! (`verify_strict`) over exactly the part's bytes, runtimeVersion and
//! channel/platform against the path, and every asset's bytes against its hash.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Context;
use crate::error::Result;
use crate::manifest::{boundary_of, parse_multipart};
use crate::names::{Channel, Fingerprint, Platform};
use crate::signing::{self, TrustedKeys};

/// The result of a verify.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Pointers checked.
    pub pointers: usize,
    /// Distinct assets downloaded and hashed.
    pub assets: usize,
    /// Problems, one line each.
    pub problems: Vec<String>,
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

/// Verifies every pointer in the store.
pub async fn verify(ctx: &Context<'_>, trusted: &TrustedKeys) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut asset_results: BTreeMap<String, Option<String>> = BTreeMap::new();
    for obj in ctx.store.list("public/").await? {
        let Some((c, p, f)) = parse_pointer_key(&obj.key) else {
            continue;
        };
        report.pointers += 1;
        let problems = verify_pointer(ctx, trusted, &obj.key, (&c, &p, &f), &mut asset_results).await?;
        report
            .problems
            .extend(problems.into_iter().map(|m| format!("{c}/{p}/{f}: {m}")));
    }
    report.assets = asset_results.len();
    Ok(report)
}

async fn verify_pointer(
    ctx: &Context<'_>,
    trusted: &TrustedKeys,
    key: &str,
    (c, p, f): (&str, &str, &str),
    assets: &mut BTreeMap<String, Option<String>>,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    if c.parse::<Channel>().is_err() || p.parse::<Platform>().is_err() || f.parse::<Fingerprint>().is_err() {
        problems.push("path is not a valid <channel>/<platform>/<fingerprint>".to_string());
        return Ok(problems);
    }
    let Some(body) = ctx.store.get(key).await? else {
        return Ok(vec!["manifest vanished while verifying".into()]);
    };
    let Some(env_obj) = ctx.store.get(&format!("{key}.json")).await? else {
        return Ok(vec!["manifest.json is missing (run `otapub regenerate`)".into()]);
    };
    let Some(boundary) = boundary_of(&body.meta.content_type) else {
        return Ok(vec![format!(
            "manifest Content-Type {:?} is not multipart/mixed with a boundary",
            body.meta.content_type
        )]);
    };
    let parts = match parse_multipart(boundary, &body.bytes) {
        Ok(parts) => parts,
        Err(e) => return Ok(vec![format!("manifest body: {e}")]),
    };
    let Some(first) = parts.first() else {
        return Ok(vec!["manifest body has no part".into()]);
    };
    let part_name = first.name().unwrap_or("").to_string();
    let envelope = match signing::parse_envelope(&env_obj.bytes) {
        Ok(e) => e,
        Err(e) => return Ok(vec![format!("manifest.json: {e}")]),
    };
    let expected_type = match part_name.as_str() {
        "manifest" => signing::MANIFEST_PAYLOAD_TYPE,
        "directive" => signing::DIRECTIVE_PAYLOAD_TYPE,
        other => {
            return Ok(vec![format!(
                "first part is named {other:?}, not manifest or directive"
            )])
        }
    };
    if envelope.payload_type != expected_type {
        problems.push(format!(
            "manifest.json has payloadType {:?}, expected {expected_type:?}",
            envelope.payload_type
        ));
    }
    if let Err(e) = trusted.verify(&envelope) {
        problems.push(format!("manifest.json: {e}"));
    }
    if envelope.payload != first.body {
        problems.push("manifest and manifest.json disagree: the envelope's payload is not the manifest part (run `otapub regenerate`)".into());
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
        return Ok(problems);
    }
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
        if !assets.contains_key(&sha_hex) {
            let result = ctx
                .store
                .get(&format!("public/assets/{sha_hex}"))
                .await?
                .map(|o| B64URL.encode(Sha256::digest(&o.bytes)));
            assets.insert(sha_hex.clone(), result);
        }
        match &assets[&sha_hex] {
            None => problems.push(format!("asset {url} is missing")),
            Some(got) if got != hash => problems.push(format!("asset {url} does not match its hash {hash}")),
            Some(_) => {}
        }
    }
    Ok(problems)
}
