//! `otapub refresh`: re-signs, with the current Expo leaf and chain, the
//! Expo layer of everything that is or could again be served — every package
//! neither banned nor retired (a ban can make an older one live) and every
//! noUpdateAvailable directive — and rewrites the pointers and rollout
//! buckets from it (docs/format.md). The part bytes and the ed25519
//! envelopes do not change, so no update id changes and devices download
//! nothing; immutable objects keep the signature they were published with.
//! RSA PKCS#1 v1.5 signatures are deterministic: a second run with the same
//! key and chain finds nothing to change and writes nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{commit, full_view, Context, Plan};
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::index;
use crate::manifest;
use crate::model::{Kind, NewEvent, ServedExpo, StoredDirective};
use crate::names::PointerId;
use crate::signing::Signer;
use crate::tree;

/// What a refresh changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refreshed {
    /// Packages whose served Expo layer was re-signed, as `pointer version`.
    pub packages: Vec<String>,
    /// Pointers whose noUpdateAvailable directive was re-signed.
    pub directives: Vec<String>,
    /// Pointers rewritten.
    pub pointers: Vec<String>,
}

/// The SHA-256 of the Expo body of `payload` with an Expo layer.
fn body_sha256(payload: &tree::Payload, signature: &str, chain: Option<&str>) -> Sha256Digest {
    Sha256Digest::of(&manifest::multipart(payload.part, &payload.bytes, Some(signature), chain).bytes)
}

/// Re-signs what pointers serve with `signer`'s Expo key and chain.
pub async fn refresh(ctx: &Context<'_>, signer: &Signer) -> Result<Refreshed> {
    if signer.expo_layer(b"").is_none() {
        return Err(super::OpError::RefreshNeedsExpo.into());
    }
    commit(ctx, Kind::Refresh, None, |idx, now| {
        let mut out = Refreshed::default();
        let mut packages: Vec<(i64, ServedExpo)> = Vec::new();
        let mut directives: Vec<(PointerId, StoredDirective)> = Vec::new();
        let mut pointers = BTreeSet::new();
        for view in full_view(idx)? {
            for p in view.packages.iter().filter(|p| p.ban.is_none() && p.retired.is_none()) {
                let payload = tree::package_payload(p);
                let Some((signature, chain)) = signer.expo_layer(&payload.bytes) else {
                    continue;
                };
                let (current, _) = p.serving();
                if current.expo() == Some(signature.as_str()) && current.expo_chain() == chain.as_deref() {
                    continue;
                }
                let body_sha256 = body_sha256(&payload, &signature, chain.as_deref());
                packages.push((
                    p.id,
                    ServedExpo {
                        signature,
                        chain,
                        body_sha256,
                    },
                ));
                out.packages.push(format!("{} {}", p.pointer, p.version));
                pointers.insert(view.pointer.clone());
            }
            if let Some(d) = &view.directive {
                let payload = tree::no_update_payload(&view.pointer);
                let Some((signature, chain)) = signer.expo_layer(&payload.bytes) else {
                    continue;
                };
                if d.signatures.expo() == Some(signature.as_str()) && d.signatures.expo_chain() == chain.as_deref() {
                    continue;
                }
                let body_sha256 = body_sha256(&payload, &signature, chain.as_deref());
                directives.push((
                    view.pointer.clone(),
                    StoredDirective {
                        signatures: d.signatures.with_expo(signature, chain),
                        body_sha256,
                    },
                ));
                out.directives.push(view.pointer.to_string());
                pointers.insert(view.pointer.clone());
            }
        }
        out.pointers = pointers.iter().map(ToString::to_string).collect();
        if pointers.is_empty() {
            return Ok(Plan::unchanged(out, BTreeSet::new()));
        }
        idx.transact(Kind::Refresh, &ctx.actor, now, |tx| {
            for (id, served) in &packages {
                index::set_served_expo(tx, *id, served)?;
            }
            for (pointer, d) in &directives {
                index::put_pointer_directive(tx, pointer, d)?;
            }
            let event = NewEvent {
                action: Kind::Refresh,
                target: format!("{} pointers", pointers.len()),
                details: serde_json::json!({
                    "packages": out.packages.len(),
                    "directives": out.directives.len(),
                }),
            };
            Ok((Plan::index_only(out.clone(), pointers.clone()), vec![event]))
        })
    })
    .await
}
