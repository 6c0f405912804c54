//! `otapub ban`: an irreversible mark, with a reason, on a package and every
//! re-stamp of the same original. Pointers fall back to the newest package not
//! banned; with `rollback`, a pointer whose live package was banned also
//! re-stamps that fallback so devices already on the banned bundle move off it.

use std::collections::BTreeSet;

use super::steps::ban_family;
pub use super::steps::{ban_record_key, BanOutcome};
use super::{commit, Context, Plan};
use crate::error::Result;
use crate::index;
use crate::model::{Kind, NewEvent};
use crate::names::{Platform, PointerId, Version};
use crate::signing::Signer;

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
        return Err(super::OpError::BlankBanReason.into());
    }
    commit(ctx, Kind::Ban, None, |idx, now| {
        let pkg = idx
            .package(platform, version)?
            .ok_or_else(|| super::OpError::NoPackage {
                version: version.clone(),
                platform,
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
        idx.transact(Kind::Ban, &ctx.actor, now, |tx| {
            let banned = ban_family(tx, signer, &pkg, reason, &ctx.actor, rollback, now, generation)?;
            let mut events = vec![NewEvent {
                action: Kind::Ban,
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
