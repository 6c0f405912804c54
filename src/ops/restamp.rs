//! `otapub rollback` and `otapub promote`: both re-stamp an earlier bundle
//! with a fresh id, a fresh version and a createdAt newer than everything on
//! the target pointer, since devices only move forward in createdAt.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use super::steps::Restamped;
use super::steps::{current, embedded, refuse_if_rolling, restamp, start};
use super::{commit, Context, Plan};
use crate::error::Result;
use crate::index;
use crate::model::{Kind, Package};
use crate::names::{Channel, Platform, PointerId, Version};
use crate::rollout::RolloutPlan;
use crate::signing::Signer;

/// What a rollback goes back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// docs/format.md's default rule: one bundle back from the newest.
    Previous,
    /// This version of the pointer.
    To(Version),
    /// The update embedded in the build.
    Embedded,
}

/// The createdAt of a package's original (itself unless a re-stamp).
fn original_time(conn: &Connection, p: &Package) -> Result<DateTime<Utc>> {
    match &p.restamp_of {
        None => Ok(p.created_at),
        Some(o) => Ok(index::package(conn, p.pointer.platform, o)?
            .map(|o| o.created_at)
            .unwrap_or(p.created_at)),
    }
}

/// docs/format.md's default target: the newest non-banned, non-retired package whose
/// original was published before the original of the newest package on the
/// pointer (banned ones included when finding the newest).
fn default_target(conn: &Connection, packages: &[Package]) -> Result<Option<Package>> {
    let Some(newest) = packages.iter().max_by_key(|p| p.created_at) else {
        return Ok(None);
    };
    let limit = original_time(conn, newest)?;
    let mut best: Option<(DateTime<Utc>, &Package)> = None;
    for p in packages
        .iter()
        .filter(|p| p.ban.is_none() && p.retired.is_none() && p.bundle().is_some())
    {
        let t = original_time(conn, p)?;
        if t < limit && best.is_none_or(|(bt, bp)| (t, p.created_at) > (bt, bp.created_at)) {
            best = Some((t, p));
        }
    }
    Ok(best.map(|(_, p)| p.clone()))
}

/// Rolls a pointer back.
pub async fn rollback(
    ctx: &Context<'_>,
    signer: &Signer,
    pointer: &PointerId,
    target: &RollbackTarget,
) -> Result<Restamped> {
    commit(ctx, Kind::Rollback, None, |idx, now| {
        let packages = idx.pointer_packages(pointer)?;
        if packages.is_empty() {
            return Err(super::OpError::NothingPublished {
                pointer: pointer.clone(),
            }
            .into());
        }
        refuse_if_rolling(idx.conn(), pointer, "roll back")?;
        // Idempotent by state: a rerun of a rollback to what the pointer
        // already serves (a retry after a crash) changes nothing.
        if let Some(live) = index::live::live_package(&packages, None) {
            let already = match target {
                RollbackTarget::Embedded => live.bundle().is_none(),
                RollbackTarget::To(v) => packages
                    .iter()
                    .find(|p| &p.version == v)
                    .is_some_and(|p| p.bundle().is_some() && p.original() == live.original()),
                RollbackTarget::Previous => false,
            };
            if already {
                return Ok(Plan::unchanged(current(live), BTreeSet::from([pointer.clone()])));
            }
        }
        idx.transact(Kind::Rollback, &ctx.actor, now, |tx| {
            let (out, objects, event) = match target {
                RollbackTarget::Embedded => embedded(tx, signer, pointer, now)?,
                RollbackTarget::To(v) => {
                    let source =
                        packages
                            .iter()
                            .find(|p| &p.version == v)
                            .ok_or_else(|| super::OpError::NotOnPointer {
                                version: v.clone(),
                                pointer: pointer.clone(),
                            })?;
                    restamp(tx, signer, source, pointer, now)?
                }
                RollbackTarget::Previous => {
                    let source = default_target(tx, &packages)?.ok_or_else(|| super::OpError::NoEarlier {
                        pointer: pointer.clone(),
                    })?;
                    restamp(tx, signer, &source, pointer, now)?
                }
            };
            let plan = Plan {
                output: out,
                changed: true,
                assets: Vec::new(),
                objects: objects.to_vec(),
                pointers: BTreeSet::from([pointer.clone()]),
                patch_for: BTreeSet::new(),
            };
            Ok((plan, vec![event]))
        })
    })
    .await
}

/// Re-stamps a package into another channel (same platform and
/// fingerprint); with `rollout`, as the candidate of a rollout there.
pub async fn promote(
    ctx: &Context<'_>,
    signer: &Signer,
    platform: Platform,
    version: &Version,
    to: &Channel,
    rollout: Option<&RolloutPlan>,
) -> Result<Restamped> {
    commit(ctx, Kind::Promote, None, |idx, now| {
        let source = idx
            .package(platform, version)?
            .ok_or_else(|| super::OpError::NoPackage {
                version: version.clone(),
                platform,
            })?;
        if &source.pointer.channel == to {
            return Err(super::OpError::AlreadyOnChannel {
                platform,
                version: version.clone(),
                channel: to.clone(),
            }
            .into());
        }
        let pointer = PointerId {
            channel: to.clone(),
            platform,
            fingerprint: source.pointer.fingerprint.clone(),
        };
        // Idempotent by state: the target already serves this bundle (or a
        // rollout of it runs there: the retry of a promote --rollout).
        let target = idx.pointer_packages(&pointer)?;
        if let Some(r) = index::active_rollout(idx.conn(), &pointer)? {
            let candidate = target.iter().find(|p| p.version == r.candidate);
            if rollout.is_some() && candidate.is_some_and(|c| c.original() == source.original()) {
                let c = candidate.expect("checked");
                return Ok(Plan::unchanged(current(c), BTreeSet::from([pointer.clone()])));
            }
        }
        refuse_if_rolling(idx.conn(), &pointer, "promote")?;
        if let Some(live) = index::live::live_package(&target, None) {
            if live.bundle().is_some() && live.original() == source.original() {
                return Ok(Plan::unchanged(current(live), BTreeSet::from([pointer.clone()])));
            }
        }
        let generation = idx.generation()? + 1;
        idx.transact(Kind::Promote, &ctx.actor, now, |tx| {
            let (out, objects, mut event) = restamp(tx, signer, &source, &pointer, now)?;
            event.action = Kind::Promote;
            let mut events = vec![event];
            if let Some(plan) = rollout {
                events.push(start(tx, signer, &pointer, &out.version, plan, now, generation)?);
            }
            let plan = Plan {
                output: out,
                changed: true,
                assets: Vec::new(),
                objects: objects.to_vec(),
                pointers: BTreeSet::from([pointer.clone()]),
                patch_for: BTreeSet::new(),
            };
            Ok((plan, events))
        })
    })
    .await
}
