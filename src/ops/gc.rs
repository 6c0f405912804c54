//! `otapub gc`: deletes what nothing references — assets no package lists,
//! objects under `updates/` that belong to no package (leftovers of publishes
//! that died before their commit), probe objects — once older than a grace
//! period, and never what a pointer reaches.
//!
//! It cannot race a publish, because it deletes only while it holds a lease
//! recorded in the index, which every other writer's commit waits for (as
//! restic's prune holds an exclusive lock): a commit that read the index
//! before the lease conflicts and re-applies after it; one that reads it
//! during the lease waits. The lease commit also forgets the deleted assets
//! and counts a gc epoch, so a waiting publish uploads again what it had
//! found stored or uploaded before. A gc that dies holding the lease leaves
//! its decisions in the index (`gc_pending`); writers wait at most until the
//! lease expires, and the next gc finishes the job.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{commit, full_view, Context, Plan};
use crate::commit::{self as protocol, Lease, GC_EPOCH_SETTING, GC_LEASE};
use crate::error::{Error, Result};
use crate::index::{self, Index};
use crate::manifest::{boundary_of, parse_multipart};
use crate::model::{patch_key, Kind, NewEvent, Package, PackageContent};
use crate::names::{Channel, PointerId};
use crate::patch;
use crate::store::Store;
use crate::tree;

/// What gc deleted (or would delete).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcOutcome {
    /// Packages retired by `--keep` (or that would be), as `pointer version`.
    pub retired: Vec<String>,
    /// Keys deleted (or that would be, on a dry run).
    pub deleted: Vec<String>,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub kept_recent: usize,
}

/// What the lease commit decided.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Decision {
    /// Packages retired, as `pointer version`.
    #[serde(default)]
    retired: Vec<String>,
    /// Keys to delete while the lease is held.
    delete: Vec<String>,
    /// The lease's end (ms since the epoch).
    until: i64,
}

/// Retention: how many packages to keep per pointer of a channel (`--keep CHANNEL=N`).
pub type Keep = [(Channel, usize)];

/// Refuses a retention rule that cannot be what was meant.
fn check_keep(index: &Index, keep: &Keep) -> Result<()> {
    let channels: BTreeSet<Channel> = index.all_pointers()?.into_keys().map(|p| p.channel).collect();
    let mut seen = BTreeSet::new();
    for (channel, n) in keep {
        if *n == 0 {
            return Err(super::OpError::KeepZero {
                channel: channel.clone(),
            }
            .into());
        }
        if !seen.insert(channel) {
            return Err(super::OpError::KeepTwice {
                channel: channel.clone(),
            }
            .into());
        }
        if !channels.contains(channel) {
            let known: Vec<&str> = channels.iter().map(Channel::as_str).collect();
            return Err(super::OpError::KeepUnknown {
                channel: channel.clone(),
                n: *n,
                known: if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                },
            }
            .into());
        }
    }
    Ok(())
}

/// The packages `keep` retires now: per pointer of a kept channel, those
/// past its newest N — never what the pointer serves, a rollout's candidate
/// or control, nor a base of a patch to a served update (a device on it
/// downloads that patch).
fn retirements(index: &Index, keep: &Keep, policy: &patch::Policy) -> Result<Vec<Package>> {
    let mut out = Vec::new();
    if keep.is_empty() {
        return Ok(out);
    }
    // Kept patches, by the update they lead to: read once for every pointer.
    let mut kept: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for r in index::patches(index.conn())?.into_iter().filter(|r| r.kept.is_some()) {
        kept.entry(r.requested_id).or_default().push(r.base_id);
    }
    for view in full_view(index)? {
        let Some((_, n)) = keep.iter().find(|(c, _)| *c == view.pointer.channel) else {
            continue;
        };
        let mut protected: BTreeSet<String> = BTreeSet::new();
        if let Some(p) = crate::index::live::live_package(&view.packages, view.rollout.as_ref()) {
            protected.insert(p.version.to_string());
        }
        if let Some(r) = view.rollout.as_ref().filter(|r| r.state.is_active()) {
            protected.insert(r.candidate.to_string());
            protected.extend(r.control.as_ref().map(ToString::to_string));
        }
        let pointers = BTreeSet::from([view.pointer.clone()]);
        let wanted: BTreeSet<(String, String)> = patch::plan::wanted(index.conn(), &pointers, policy)?
            .into_iter()
            .map(|pair| (pair.requested_id, pair.base_id))
            .collect();
        let bases: BTreeSet<String> = wanted
            .iter()
            .filter(|(requested, base)| kept.get(requested).is_some_and(|b| b.contains(base)))
            .map(|(_, base)| base.clone())
            .collect();
        let mut newest_first: Vec<&Package> = view.packages.iter().collect();
        newest_first.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        for p in newest_first.into_iter().skip(*n) {
            let base = matches!(&p.content, PackageContent::Update { manifest_id, .. } if bases.contains(&manifest_id.to_ascii_lowercase()));
            if p.retired.is_none() && !base && !protected.contains(p.version.as_str()) {
                out.push(p.clone());
            }
        }
    }
    Ok(out)
}

/// Everything the committed packages of `index` reference, and the patches
/// devices can ask for now (`policy`: which bases count). A retired package
/// (or one in `retiring`) keeps its signed envelope and manifest, not its
/// bundle.
fn referenced(index: &Index, policy: &patch::Policy, retiring: &BTreeSet<i64>) -> Result<BTreeSet<String>> {
    let mut keep = BTreeSet::new();
    for p in full_view(index)?.iter().flat_map(|v| v.packages.iter()) {
        let key = tree::package_key(p);
        keep.insert(format!("{key}.json"));
        keep.insert(key);
        if p.retired.is_some() || retiring.contains(&p.id) {
            continue;
        }
        if let Some(b) = p.bundle() {
            for a in std::iter::once(&b.launch).chain(&b.assets) {
                keep.insert(format!("public/assets/{}", a.sha256));
            }
        }
    }
    // Embedded launch assets are patch bases: kept while recorded.
    for e in index::embedded_bases(index.conn())? {
        keep.insert(format!("public/assets/{}", e.launch_asset));
    }
    for pair in wanted_patches(index, policy)? {
        keep.insert(patch_key(&pair.requested_id, &pair.base_id));
    }
    Ok(keep)
}

/// The patch pairs every pointer's devices can ask for now.
fn wanted_patches(index: &Index, policy: &patch::Policy) -> Result<BTreeSet<patch::Pair>> {
    let pointers = index.all_pointers()?.into_keys().collect();
    patch::plan::wanted(index.conn(), &pointers, policy)
}

/// The recorded patch pairs nobody can ask for any more: neither in `keep`
/// (what [`referenced`] and the pointer objects reach) nor to an update a
/// pointer object serves.
fn forgotten_patches(index: &Index, keep: &BTreeSet<String>) -> Result<Vec<(String, String)>> {
    Ok(index::patches(index.conn())?
        .into_iter()
        .filter(|r| {
            let key = r.key();
            !keep.contains(&key) && !patch_reached(keep, &key)
        })
        .map(|r| (r.requested_id, r.base_id))
        .collect())
}

/// Whether `key` is a patch to an update a pointer object serves (recorded
/// in `keep` as the folder `public/patches/<id>/`).
fn patch_reached(keep: &BTreeSet<String>, key: &str) -> bool {
    key.strip_prefix("public/patches/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(id, _)| keep.contains(&format!("public/patches/{id}/")))
}

/// What the pointer objects in the store reach, whatever the index says: the
/// assets their manifests list and the immutable twin they were copied from
/// — rollout buckets included, for the pointers in `with_rollouts`.
async fn reached_by_pointers(
    store: &dyn Store,
    pointers: &[PointerId],
    with_rollouts: &BTreeSet<PointerId>,
) -> Result<BTreeSet<String>> {
    let mut keep = BTreeSet::new();
    let mut bodies: Vec<String> = pointers.iter().map(PointerId::manifest_key).collect();
    for p in with_rollouts {
        let listed = store.list(&p.rollout_prefix()).await?;
        bodies.extend(listed.into_iter().map(|o| o.key).filter(|k| k.ends_with("/manifest")));
    }
    for key in bodies {
        let Some(body) = store.get(&key).await? else {
            continue;
        };
        // A pointer that does not parse reaches nothing a device could load.
        let Some(boundary) = boundary_of(&body.meta.content_type) else {
            continue;
        };
        let Ok(parts) = parse_multipart(boundary, &body.bytes) else {
            continue;
        };
        for part in parts.iter().filter(|part| part.name() == Some("manifest")) {
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&part.body) else {
                continue;
            };
            let urls = std::iter::once(&doc["launchAsset"]["url"])
                .chain(doc["assets"].as_array().into_iter().flatten().map(|a| &a["url"]));
            for url in urls.filter_map(|u| u.as_str()) {
                if let Some((_, sha)) = url.rsplit_once("/assets/") {
                    keep.insert(format!("public/assets/{sha}"));
                }
            }
            // Patches to what a device is served now.
            if let Some(id) = doc["id"].as_str() {
                keep.insert(format!("public/patches/{}/", id.to_ascii_lowercase()));
            }
            let meta = &doc["metadata"]["otapub"];
            if let (Some(v), Some(pl)) = (meta["version"].as_str(), meta["platform"].as_str()) {
                keep.insert(format!("public/updates/{v}/{pl}/manifest"));
                keep.insert(format!("public/updates/{v}/{pl}/manifest.json"));
            }
        }
    }
    Ok(keep)
}

/// Collects garbage older than `grace`, after retiring what `keep` no
/// longer keeps. A dry run is this on a [`crate::store::DryRunStore`].
pub async fn gc(ctx: &Context<'_>, grace: Duration, keep_rules: &Keep) -> Result<GcOutcome> {
    let index = crate::commit::read_index(ctx.store).await?;
    check_keep(&index, keep_rules)?;
    let retiring = retirements(&index, keep_rules, &ctx.patches)?;
    let retiring_ids: BTreeSet<i64> = retiring.iter().map(|p| p.id).collect();
    let pointers: Vec<PointerId> = index.all_pointers()?.into_keys().collect();
    let with_rollouts: BTreeSet<PointerId> = index::all_rollouts(index.conn())?
        .into_iter()
        .map(|r| r.pointer)
        .collect();
    let pointer_keep = reached_by_pointers(ctx.store, &pointers, &with_rollouts).await?;
    let mut keep = referenced(&index, &ctx.patches, &retiring_ids)?;
    keep.extend(pointer_keep.iter().cloned());
    let cutoff: DateTime<Utc> = ctx.clock.now() - grace;
    let mut out = GcOutcome {
        retired: retiring
            .iter()
            .map(|p| format!("{} {}", p.pointer, p.version))
            .collect(),
        ..GcOutcome::default()
    };
    let mut candidates = Vec::new();
    for prefix in ["public/assets/", "public/updates/", "public/patches/", "state/probe/"] {
        for o in ctx.store.list(prefix).await? {
            if keep.contains(&o.key) || patch_reached(&keep, &o.key) {
                continue;
            }
            // Unknown age counts as recent: never delete what might be in flight.
            if o.modified.is_none_or(|m| m > cutoff) {
                out.kept_recent += 1;
                continue;
            }
            candidates.push(o.key);
        }
    }
    let pending: Vec<String> = index.gc_pending()?;
    if retiring.is_empty()
        && candidates.is_empty()
        && pending.is_empty()
        && forgotten_patches(&index, &keep)?.is_empty()
    {
        return Ok(out);
    }

    // The lease commit: re-checked against the index as it is now, since
    // commits may have landed while the store was listed (what they made
    // pointers reach is in the index, so the pointers need no second read).
    // The lease's time is measured on this machine's monotonic clock from
    // before its commit (never later than the lease's own start).
    let lease_taken = std::time::Instant::now();
    let decision: Decision = commit(ctx, Kind::GcLease, None, |idx, now| {
        let retiring = retirements(idx, keep_rules, &ctx.patches)?;
        let retiring_ids: BTreeSet<i64> = retiring.iter().map(|p| p.id).collect();
        let mut still = referenced(idx, &ctx.patches, &retiring_ids)?;
        still.extend(pointer_keep.iter().cloned());
        // Pairs nobody can ask for any more are forgotten (their patch, if
        // kept, deleted below or by a later gc once past the grace period).
        let forgotten = forgotten_patches(idx, &still)?;
        let mut delete: Vec<String> = candidates
            .iter()
            .chain(idx.gc_pending()?.iter())
            .filter(|k| !still.contains(*k) && !patch_reached(&pointer_keep, k))
            .cloned()
            .collect();
        delete.sort();
        delete.dedup();
        let until = index::to_ms(now + GC_LEASE);
        let lease = Lease {
            op: ctx.operation_id.clone(),
            actor: ctx.actor.clone(),
            until,
        };
        let output = Decision {
            retired: retiring.iter().map(|p| format!("{} {}", p.pointer, p.version)).collect(),
            delete,
            until,
        };
        // Running until the release commit below finishes it: a gc that dies
        // holding the lease shows as a stale operation (`otapub ops`).
        idx.transact_running(Kind::Gc, &ctx.actor, now, |tx| {
            protocol::take_lease(tx, &lease)?;
            let epoch = index::get_setting(tx, GC_EPOCH_SETTING)?
                .and_then(|e| e.parse::<u64>().ok())
                .unwrap_or(0);
            index::set_setting(tx, GC_EPOCH_SETTING, &(epoch + 1).to_string())?;
            for (requested, base) in &forgotten {
                index::delete_patch(tx, requested, base)?;
            }
            let mut events = Vec::new();
            for p in &retiring {
                let n = keep_rules.iter().find(|(c, _)| *c == p.pointer.channel).map_or(1, |(_, n)| *n);
                index::retire_package(tx, p.id, now, n)?;
                events.push(NewEvent {
                    action: Kind::Retire,
                    target: format!("{}/{}", p.pointer.platform, p.version),
                    details: serde_json::json!({ "pointer": p.pointer.to_string(), "keep": n }),
                });
            }
            for key in &output.delete {
                index::set_gc_pending(tx, key, now)?;
                // An asset's key names its digest; another key there names no recorded asset.
                if let Some(sha) = key.strip_prefix("public/assets/").and_then(|s| s.parse().ok()) {
                    index::forget_asset(tx, &sha)?;
                }
            }
            events.push(NewEvent {
                action: Kind::GcLease,
                target: ctx.store.url(),
                details: serde_json::json!({ "candidates": output.delete.len(), "retired": output.retired.len(), "until": until }),
            });
            Ok((Plan::index_only(output.clone(), BTreeSet::new()), events))
        })
    })
    .await?;

    // Deleting stops well before the lease ends: past it, writers go on. The
    // lease's end is on the command's clock (a rerun replays it); the time
    // held is also bounded on the monotonic clock, whatever that one says.
    let deadline = decision.until - GC_LEASE.num_milliseconds() / 5;
    let longest = (GC_LEASE * 4 / 5).to_std().unwrap_or_default();
    // A deletion that fails stops the rest, but the lease is still released
    // and what did go is still recorded: the next gc retries the others.
    let (deleted, failure) = protocol::delete_under_lease(ctx, &decision.delete, deadline, lease_taken, longest).await;
    let unfinished = decision.delete.len() - deleted.len();
    let grace_hours = grace.num_hours();
    commit(ctx, Kind::Gc, None, |idx, now| {
        let ours = protocol::active_lease(idx, now)?.is_none_or(|l| l.op == ctx.operation_id);
        idx.transact(Kind::Gc, &ctx.actor, now, |tx| {
            if ours {
                protocol::release_lease(tx)?;
            }
            let lease_op = protocol::operation_key(&ctx.operation_id, Kind::GcLease);
            let error = failure.as_ref().map(ToString::to_string);
            index::end_operation(tx, &lease_op, now, error.as_deref())?;
            for key in &deleted {
                index::clear_gc_pending(tx, key)?;
            }
            let events = deleted
                .iter()
                .map(|key| NewEvent {
                    action: Kind::GcDelete,
                    target: key.clone(),
                    details: serde_json::json!({ "graceHours": grace_hours }),
                })
                .collect();
            Ok((Plan::index_only((), BTreeSet::new()), events))
        })
    })
    .await?;
    if let Some(e) = failure {
        return Err(e);
    }
    if unfinished > 0 {
        return Err(Error::Store {
            action: "delete",
            key: format!("{unfinished} objects"),
            reason: "gc stopped before its lease ran out; run `otapub gc` again to finish".into(),
        });
    }
    out.deleted = deleted;
    out.retired = decision.retired;
    Ok(out)
}
