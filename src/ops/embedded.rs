//! `otapub embedded add`: records the launch asset a release build embeds
//! (what a fresh install runs) under the build's embedded update id, as a
//! patch base: its bundle stored once by content hash, a signed record
//! under `state/embedded/` (which `index rebuild` adopts), and a row in the
//! index.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{commit, AssetUpload, Context, Plan};
use crate::docs::EmbeddedRecord;
use crate::error::Result;
use crate::index;
use crate::manifest::{format_time, BUNDLE_CONTENT_TYPE};
use crate::model::{EmbeddedBase, Kind, NewEvent, SignedRecord};
use crate::names::{Fingerprint, Platform};
use crate::signing::{self, Signer};
use crate::store::ObjectMeta;
use crate::tree::PublicObject;

/// Key of an embedded base's signed record.
pub fn embedded_record_key(platform: Platform, update_id: &str) -> String {
    format!("state/embedded/{platform}/{update_id}.json")
}

/// The signed record of an embedded base, as the index holds it.
pub fn embedded_record(e: &EmbeddedBase) -> PublicObject {
    PublicObject {
        key: embedded_record_key(e.platform, &e.update_id),
        bytes: signing::envelope(signing::EMBEDDED_PAYLOAD_TYPE, &e.record.payload, &e.record.signatures),
        meta: ObjectMeta::new("application/json", "no-store"),
    }
}

/// What `embedded add` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddedOutcome {
    /// Platform.
    pub platform: Platform,
    /// Fingerprint (runtime version).
    pub fingerprint: String,
    /// The embedded update id, lowercase.
    #[serde(rename = "updateId")]
    pub update_id: String,
    /// SHA-256 hex of the launch asset.
    #[serde(rename = "launchAsset")]
    pub launch_asset: String,
    /// Its size in bytes.
    pub size: u64,
    /// False when this exact base was recorded already.
    pub new: bool,
}

/// The canonical (lowercase) form of an update id, or why it is not one.
fn update_id(id: &str) -> Result<String> {
    if crate::names::uuid_bytes(id).is_none() {
        return Err(super::OpError::UpdateId { id: id.to_string() }.into());
    }
    Ok(id.to_ascii_lowercase())
}

/// Records a build's embedded launch asset as a patch base.
pub async fn add(
    ctx: &Context<'_>,
    signer: &Signer,
    platform: Platform,
    fingerprint: &Fingerprint,
    id: &str,
    bundle: &Path,
) -> Result<EmbeddedOutcome> {
    let id = update_id(id)?;
    let path = bundle.to_path_buf();
    let hashed = tokio::task::spawn_blocking(move || crate::export::hash_file(&path, false))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let hash = hashed.map_err(|e| super::OpError::BundleUnreadable {
        path: bundle.to_path_buf(),
        reason: e.to_string(),
    })?;
    if hash.size == 0 {
        return Err(super::OpError::BundleEmpty {
            path: bundle.to_path_buf(),
        }
        .into());
    }
    let out = EmbeddedOutcome {
        platform,
        fingerprint: fingerprint.to_string(),
        update_id: id.clone(),
        launch_asset: hash.sha256.to_hex(),
        size: hash.size,
        new: true,
    };
    commit(ctx, Kind::EmbeddedAdd, None, |idx, now| {
        if let Some(e) = index::embedded_base(idx.conn(), platform, &id)? {
            if e.launch_asset == hash.sha256 && &e.fingerprint == fingerprint {
                return Ok(Plan::unchanged(
                    EmbeddedOutcome {
                        new: false,
                        ..out.clone()
                    },
                    BTreeSet::new(),
                ));
            }
            return Err(super::OpError::EmbeddedConflict {
                id: id.clone(),
                platform,
                fingerprint: e.fingerprint.to_string(),
                launch_asset: e.launch_asset.to_string(),
            }
            .into());
        }
        let assets = if idx.has_asset(&hash.sha256)? {
            Vec::new()
        } else {
            vec![AssetUpload {
                sha256: hash.sha256,
                path: bundle.to_path_buf(),
                content_type: BUNDLE_CONTENT_TYPE.into(),
            }]
        };
        idx.transact(Kind::EmbeddedAdd, &ctx.actor, now, |tx| {
            index::put_asset(tx, &hash.sha256, hash.size, BUNDLE_CONTENT_TYPE)?;
            let record = EmbeddedRecord {
                platform: platform.to_string(),
                fingerprint: fingerprint.to_string(),
                update_id: id.clone(),
                launch_asset: hash.sha256.to_hex(),
                size: hash.size,
                added_at: format_time(now),
            };
            let payload = serde_json::to_vec(&record).expect("an embedded record serializes");
            let signatures = signer.sign(signing::EMBEDDED_PAYLOAD_TYPE, &payload);
            let base = EmbeddedBase {
                platform,
                fingerprint: fingerprint.clone(),
                update_id: id.clone(),
                launch_asset: hash.sha256,
                record: SignedRecord { payload, signatures },
            };
            index::insert_embedded_base(tx, &base, now)?;
            let mut objects = vec![embedded_record(&base)];
            // A build embeds it: the build is in the field.
            if index::build(tx, platform, fingerprint)?.is_none() {
                let b = super::builds::signed_build(
                    signer,
                    platform,
                    fingerprint,
                    Some(format!("embedded update {id}")),
                    now,
                );
                index::put_build(tx, &b)?;
                objects.push(super::builds::build_record(&b));
            }
            let event = NewEvent {
                action: Kind::EmbeddedAdd,
                target: format!("{platform}/{id}"),
                details: serde_json::json!({
                    "fingerprint": fingerprint.as_str(),
                    "launchAsset": hash.sha256.to_hex(),
                    "size": hash.size,
                }),
            };
            let plan = Plan {
                output: out.clone(),
                changed: true,
                assets,
                objects,
                pointers: BTreeSet::new(),
                // Patches from it for what those pointers serve now.
                patch_for: crate::patch::plan::pointers_of(tx, platform, fingerprint)?,
            };
            Ok((plan, vec![event]))
        })
    })
    .await
}
