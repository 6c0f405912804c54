//! `otapub gc`: deletes what no package references — assets no bundle lists,
//! objects under `updates/` that belong to no package (leftovers of publishes
//! that died before their commit), probe objects. Every package is retained
//! (bans keep their history), so nothing a pointer reaches is ever deleted.
//! Only objects older than a grace period go: a publish running right now
//! has uploaded what its commit will reference.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{commit, full_view, Context, Plan};
use crate::error::Result;
use crate::index::{Index, NewEvent};
use crate::tree;

/// What gc deleted (or would delete).
#[derive(Debug, Clone, Serialize)]
pub struct GcOutcome {
    /// Keys deleted (or that would be, on a dry run).
    pub deleted: Vec<String>,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub kept_recent: usize,
}

/// Collects garbage older than `grace`.
pub async fn gc(ctx: &Context<'_>, dry_run: bool, grace: Duration) -> Result<GcOutcome> {
    let index = Index::load(ctx.store).await?;
    let view = full_view(&index)?;
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for p in view.iter().flat_map(|v| v.packages.iter()) {
        let key = tree::package_key(p);
        keep.insert(format!("{key}.json"));
        keep.insert(key);
        if let Some(b) = p.bundle() {
            for a in std::iter::once(&b.launch).chain(&b.assets) {
                keep.insert(format!("public/assets/{}", a.sha256));
            }
        }
    }
    let cutoff: DateTime<Utc> = ctx.clock.now() - grace;
    let mut deleted = Vec::new();
    let mut kept_recent = 0;
    for prefix in ["public/assets/", "public/updates/", "state/probe/"] {
        for o in ctx.store.list(prefix).await? {
            if keep.contains(&o.key) {
                continue;
            }
            // Unknown age counts as recent: never delete what might be in flight.
            if o.modified.is_none_or(|m| m > cutoff) {
                kept_recent += 1;
                continue;
            }
            if !dry_run {
                ctx.store.delete(&o.key).await?;
            }
            deleted.push(o.key);
        }
    }
    if !dry_run && !deleted.is_empty() {
        let count = deleted.len();
        commit(ctx, "gc", |idx, now| {
            idx.transact("gc", &ctx.actor, now, |_| {
                let event = NewEvent {
                    action: "gc",
                    target: ctx.store.url(),
                    details: serde_json::json!({ "deleted": count, "graceHours": grace.num_hours() }),
                };
                let plan = Plan {
                    output: (),
                    changed: true,
                    assets: Vec::new(),
                    objects: Vec::new(),
                    pointers: Default::default(),
                };
                Ok((plan, vec![event]))
            })
        })
        .await?;
    }
    Ok(GcOutcome { deleted, kept_recent })
}
