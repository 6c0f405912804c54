//! `otapub builds add` and `otapub builds`: the builds in the field per
//! (platform, runtime version). A publish to a runtime version no recorded
//! build has reaches no installed app — the most common way an OTA update
//! silently goes nowhere — so `publish` warns (or, with `--require-build`,
//! refuses) when it finds none here.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{commit, Context, Plan};
use crate::docs::BuildRecord;
use crate::error::Result;
use crate::index;
use crate::manifest::format_time;
use crate::model::{Build, Kind, NewEvent, SignedRecord};
use crate::names::{Fingerprint, Platform};
use crate::signing::{self, Signer};
use crate::store::ObjectMeta;
use crate::tree::PublicObject;

/// Key of a build's signed record.
pub fn build_record_key(platform: Platform, fingerprint: &Fingerprint) -> String {
    format!("state/builds/{platform}/{fingerprint}.json")
}

/// The signed record of a build, as the index holds it.
pub fn build_record(b: &Build) -> PublicObject {
    PublicObject {
        key: build_record_key(b.platform, &b.fingerprint),
        bytes: signing::envelope(signing::BUILD_PAYLOAD_TYPE, &b.record.payload, &b.record.signatures),
        meta: ObjectMeta::new("application/json", "no-store"),
    }
}

/// A recorded build, for output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRow {
    /// Platform.
    pub platform: Platform,
    /// Runtime version.
    #[serde(rename = "runtimeVersion")]
    pub runtime_version: String,
    /// The note given.
    pub note: Option<String>,
    /// When it was recorded.
    #[serde(rename = "addedAt")]
    pub added_at: String,
    /// False when `add` found it recorded already with the same note.
    pub new: bool,
}

impl From<&Build> for BuildRow {
    fn from(b: &Build) -> BuildRow {
        BuildRow {
            platform: b.platform,
            runtime_version: b.fingerprint.to_string(),
            note: b.note.clone(),
            added_at: format_time(b.added_at),
            new: true,
        }
    }
}

/// The build record a transaction writes (`add`, and `embedded add`).
pub fn signed_build(
    signer: &Signer,
    platform: Platform,
    fingerprint: &Fingerprint,
    note: Option<String>,
    now: DateTime<Utc>,
) -> Build {
    let record = BuildRecord {
        platform: platform.to_string(),
        fingerprint: fingerprint.to_string(),
        note: note.clone(),
        added_at: format_time(now),
    };
    let payload = serde_json::to_vec(&record).expect("a build record serializes");
    let signatures = signer.sign(signing::BUILD_PAYLOAD_TYPE, &payload);
    Build {
        platform,
        fingerprint: fingerprint.clone(),
        note,
        added_at: now,
        record: SignedRecord { payload, signatures },
    }
}

/// Records a build in the field.
pub async fn add(
    ctx: &Context<'_>,
    signer: &Signer,
    platform: Platform,
    fingerprint: &Fingerprint,
    note: Option<String>,
) -> Result<BuildRow> {
    if let Some(n) = &note {
        if n.len() > 500 || n.chars().any(char::is_control) {
            return Err(super::OpError::BadNote.into());
        }
    }
    commit(ctx, Kind::BuildsAdd, None, |idx, now| {
        if let Some(b) = index::build(idx.conn(), platform, fingerprint)? {
            if b.note == note {
                let row = BuildRow {
                    new: false,
                    ..BuildRow::from(&b)
                };
                return Ok(Plan::unchanged(row, BTreeSet::new()));
            }
        }
        idx.transact(Kind::BuildsAdd, &ctx.actor, now, |tx| {
            let b = signed_build(signer, platform, fingerprint, note.clone(), now);
            index::put_build(tx, &b)?;
            let event = NewEvent {
                action: Kind::BuildsAdd,
                target: format!("{platform}/{fingerprint}"),
                details: serde_json::json!({ "note": note }),
            };
            let plan = Plan {
                output: BuildRow::from(&b),
                changed: true,
                assets: Vec::new(),
                objects: vec![build_record(&b)],
                pointers: BTreeSet::new(),
                patch_for: BTreeSet::new(),
            };
            Ok((plan, vec![event]))
        })
    })
    .await
}

/// Every recorded build.
pub async fn list(ctx: &Context<'_>) -> Result<Vec<BuildRow>> {
    let idx = crate::commit::read_index(ctx.store).await?;
    Ok(index::builds(idx.conn())?.iter().map(BuildRow::from).collect())
}
