//! `otapub ban`: an irreversible mark, with a reason, on a package and every
//! re-stamp of the same original. Pointers fall back to the newest package not
//! banned; with `rollback`, a pointer whose live package was banned also
//! re-stamps that fallback so devices already on the banned bundle move off it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use serde::Serialize;

use super::restamp::{restamp, Restamped};
use super::{commit, ensure_no_update_directive, Context, Plan};
use crate::docs::BanRecord;
use crate::error::{Error, Result};
use crate::index::{self, Ban, NewEvent, Package};
use crate::manifest::format_time;
use crate::names::{Platform, PointerId, Version};
use crate::signing::{self, Signer};
use crate::store::ObjectMeta;
use crate::tree::PublicObject;

/// What a ban did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BanOutcome {
    /// Versions newly banned (the package and its re-stamps).
    pub banned: Vec<Version>,
    /// True when everything was banned already.
    pub already_banned: bool,
    /// Fallback re-stamps made by `--rollback`, and re-stamps of the
    /// control of rollouts whose candidate was banned.
    pub restamped: Vec<Restamped>,
    /// Pointers whose rollout was aborted because its candidate was banned.
    #[serde(default)]
    pub aborted_rollouts: Vec<String>,
}

/// Key of a signed ban record.
pub fn ban_record_key(platform: Platform, version: &Version) -> String {
    format!("state/bans/{platform}/{version}.json")
}

/// Bans a package.
pub async fn ban(
    ctx: &Context<'_>,
    signer: &Signer,
    platform: Platform,
    version: &Version,
    reason: &str,
    rollback: bool,
) -> Result<BanOutcome> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::usage(
            "--reason is blank; say why the package is banned, e.g. --reason \"crash on launch\"",
        ));
    }
    commit(ctx, "ban", None, |idx, now| {
        let pkg = idx.package(platform, version)?.ok_or_else(|| {
            Error::usage(format!(
                "no package {version} on {platform}; `otapub status` lists them"
            ))
        })?;
        let family = index::family(idx.conn(), platform, pkg.original())?;
        let to_ban: Vec<_> = family.iter().filter(|p| p.ban.is_none()).cloned().collect();
        let pointers: BTreeSet<PointerId> = family.iter().map(|p| p.pointer.clone()).collect();
        if to_ban.is_empty() {
            let out = BanOutcome {
                banned: Vec::new(),
                already_banned: true,
                restamped: Vec::new(),
                aborted_rollouts: Vec::new(),
            };
            return Ok(Plan::unchanged(out, pointers));
        }
        let generation = idx.generation()? + 1;
        idx.transact("ban", &ctx.actor, now, |tx| {
            let live_before: Vec<(PointerId, Option<i64>)> = pointers
                .iter()
                .map(|p| {
                    let rollout = index::latest_rollout(tx, p)?;
                    Ok((
                        p.clone(),
                        index::live::live_package(&index::pointer_packages(tx, p)?, rollout.as_ref()).map(|l| l.id),
                    ))
                })
                .collect::<Result<_>>()?;
            let mut objects = ban_packages(tx, signer, platform, &to_ban, reason, &ctx.actor, now)?;
            let mut events = vec![NewEvent {
                action: "ban",
                target: format!("{platform}/{version}"),
                details: serde_json::json!({
                    "reason": reason,
                    "covers": to_ban.iter().map(|p| p.version.as_str()).collect::<Vec<_>>(),
                    "rollback": rollback,
                }),
            }];
            let mut restamped = Vec::new();
            let mut aborted_rollouts = Vec::new();
            for (pointer, before) in &live_before {
                let rollout = index::active_rollout(tx, pointer)?;
                // Banning a rollout's candidate aborts the rollout: devices
                // that took it move back to a re-stamp of the control.
                if let Some(r) = rollout
                    .as_ref()
                    .filter(|r| to_ban.iter().any(|b| b.version == r.candidate))
                {
                    let (objs, evs, back) =
                        super::rollout::finish_abort(tx, signer, r.clone(), reason, now, generation)?;
                    objects.extend(objs);
                    events.extend(evs);
                    restamped.extend(back);
                    aborted_rollouts.push(pointer.to_string());
                    continue;
                }
                let was_banned_live = before.is_some_and(|id| to_ban.iter().any(|b| b.id == id));
                let packages = index::pointer_packages(tx, pointer)?;
                if let (true, true, Some(fallback)) = (
                    rollback,
                    was_banned_live,
                    index::live::live_package(&packages, rollout.as_ref()),
                ) {
                    if fallback.bundle().is_some() {
                        let (out, objs, event) = restamp(tx, signer, fallback, pointer, now)?;
                        objects.extend(objs);
                        events.push(event);
                        restamped.push(out);
                    }
                }
                ensure_no_update_directive(tx, signer, pointer)?;
                // The control of a running rollout was banned: the rollout
                // goes on against what the pointer serves now, which its
                // record names.
                if let Some(mut r) = rollout {
                    super::rollout::seal(tx, signer, &mut r, generation)?;
                    index::update_rollout(tx, &r)?;
                }
            }
            let out = BanOutcome {
                banned: to_ban.iter().map(|p| p.version.clone()).collect(),
                already_banned: false,
                restamped,
                aborted_rollouts,
            };
            Ok((
                Plan {
                    output: out,
                    changed: true,
                    assets: Vec::new(),
                    objects,
                    pointers: pointers.clone(),
                },
                events,
            ))
        })
    })
    .await
}

/// Bans packages and signs their ban records (`state/bans/…`), which
/// `index rebuild` adopts; returns the records to write before the commit.
pub(crate) fn ban_packages(
    conn: &Connection,
    signer: &Signer,
    platform: Platform,
    to_ban: &[Package],
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<PublicObject>> {
    let ban = Ban {
        at: now,
        reason: reason.to_string(),
        by: actor.to_string(),
    };
    let mut objects = Vec::new();
    for p in to_ban {
        index::ban_package(conn, p.id, &ban)?;
        let record = serde_json::to_vec(&BanRecord {
            platform: platform.to_string(),
            version: p.version.to_string(),
            reason: reason.to_string(),
            actor: actor.to_string(),
            banned_at: format_time(now),
        })
        .expect("a ban record serializes");
        let sigs = signer.sign(signing::BAN_PAYLOAD_TYPE, &record);
        objects.push(PublicObject {
            key: ban_record_key(platform, &p.version),
            bytes: signing::envelope(signing::BAN_PAYLOAD_TYPE, &record, &sigs),
            meta: ObjectMeta::new("application/json", "no-store"),
        });
    }
    Ok(objects)
}
