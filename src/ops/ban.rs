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
        let pointers: BTreeSet<PointerId> = family.iter().map(|p| p.pointer.clone()).collect();
        if family.iter().all(|p| p.ban.is_some()) {
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
            let banned = ban_family(tx, signer, &pkg, reason, &ctx.actor, rollback, now, generation)?;
            let mut events = vec![NewEvent {
                action: "ban",
                target: format!("{platform}/{version}"),
                details: serde_json::json!({
                    "reason": reason,
                    "covers": banned.outcome.banned.iter().map(Version::as_str).collect::<Vec<_>>(),
                    "rollback": rollback,
                }),
            }];
            events.extend(banned.events);
            Ok((
                Plan {
                    output: banned.outcome,
                    changed: true,
                    assets: Vec::new(),
                    objects: banned.objects,
                    pointers: banned.pointers,
                    patch_for: BTreeSet::new(),
                },
                events,
            ))
        })
    })
    .await
}

/// What banning a family did inside a transaction.
pub(crate) struct Banned {
    /// The command's report.
    pub outcome: BanOutcome,
    /// Signed ban records and re-stamped packages' objects, to write before the commit.
    pub objects: Vec<PublicObject>,
    /// Audit events beyond the ban itself (re-stamps, aborted rollouts).
    pub events: Vec<NewEvent>,
    /// Every pointer whose view may have changed.
    pub pointers: BTreeSet<PointerId>,
}

/// Bans `pkg` and every re-stamp of its original, in a transaction. On each
/// pointer of the family: a rollout whose candidate is banned is aborted
/// (its control re-stamped); with `rollback`, where a banned package was
/// live, the fallback is re-stamped; a pointer left with nothing live gets
/// its noUpdateAvailable directive; a running rollout whose control changed
/// is re-sealed. `generation` is the one this commit will have.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ban_family(
    tx: &Connection,
    signer: &Signer,
    pkg: &Package,
    reason: &str,
    actor: &str,
    rollback: bool,
    now: DateTime<Utc>,
    generation: u64,
) -> Result<Banned> {
    let platform = pkg.pointer.platform;
    let family = index::family(tx, platform, pkg.original())?;
    let to_ban: Vec<Package> = family.iter().filter(|p| p.ban.is_none()).cloned().collect();
    let pointers: BTreeSet<PointerId> = family.iter().map(|p| p.pointer.clone()).collect();
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
    let mut objects = ban_packages(tx, signer, platform, &to_ban, reason, actor, now)?;
    let mut events = Vec::new();
    let mut restamped = Vec::new();
    let mut aborted_rollouts = Vec::new();
    for (pointer, before) in &live_before {
        let rollout = index::active_rollout(tx, pointer)?;
        // Banning a rollout's candidate aborts the rollout: devices that
        // took it move back to a re-stamp of the control.
        if let Some(r) = rollout
            .as_ref()
            .filter(|r| to_ban.iter().any(|b| b.version == r.candidate))
        {
            let (objs, evs, back) = super::rollout::finish_abort(tx, signer, r.clone(), reason, now, generation)?;
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
        // The control of a running rollout was banned: the rollout goes on
        // against what the pointer serves now, which its record names.
        if let Some(mut r) = rollout {
            super::rollout::seal(tx, signer, &mut r, generation)?;
            index::update_rollout(tx, &r)?;
        }
    }
    Ok(Banned {
        outcome: BanOutcome {
            banned: to_ban.iter().map(|p| p.version.clone()).collect(),
            already_banned: false,
            restamped,
            aborted_rollouts,
        },
        objects,
        events,
        pointers,
    })
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
