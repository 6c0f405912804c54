//! `otapub ops`: the operations the index records, with their lifecycle
//! (pending → running → succeeded | failed) and error; `otapub ops sweep`
//! marks the ones stuck in pending or running — their process died, e.g. a
//! gc killed while holding its lease — failed, as an audited operation itself.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{commit, Context, Plan};
use crate::error::Result;
use crate::index;
use crate::manifest::format_time;
use crate::model::{Kind, NewEvent, Operation};

/// An operation, and whether it is stuck.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OperationView {
    /// The recorded row.
    #[serde(flatten)]
    pub operation: Operation,
    /// Pending or running for longer than the limit.
    pub stale: bool,
}

/// How long an operation may stay pending or running before it counts as
/// stale: a gc's lease (the longest an operation runs) twice over.
pub fn stale_after() -> Duration {
    crate::commit::GC_LEASE * 2
}

/// The startedAt before which an unfinished operation is stale, at `now`
/// (`after`: instead of [`stale_after`]).
pub fn stale_cutoff(now: DateTime<Utc>, after: Option<Duration>) -> String {
    format_time(now - after.unwrap_or_else(stale_after))
}

/// Whether `o` has been pending or running since before `cutoff`.
pub fn is_stale(o: &Operation, cutoff: &str) -> bool {
    // Times share one format (ISO 8601, UTC, milliseconds): they compare as text.
    matches!(o.state.as_str(), "pending" | "running") && o.started_at.as_str() < cutoff
}

/// The operations, newest first, each marked stale when pending or running
/// for longer than `stale_after`.
pub async fn list(ctx: &Context<'_>, stale_after: Duration) -> Result<Vec<OperationView>> {
    let index = crate::commit::read_index(ctx.store).await?;
    let cutoff = stale_cutoff(ctx.clock.now(), Some(stale_after));
    Ok(index
        .operations()?
        .into_iter()
        .rev()
        .map(|o| OperationView {
            stale: is_stale(&o, &cutoff),
            operation: o,
        })
        .collect())
}

/// What a sweep marked failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Swept {
    /// The operations marked failed, oldest first.
    pub failed: Vec<Operation>,
}

/// Marks every operation pending or running for longer than `older_than` failed.
pub async fn sweep(ctx: &Context<'_>, older_than: Duration) -> Result<Swept> {
    if older_than < Duration::minutes(1) {
        return Err(super::OpError::SweepTooYoung.into());
    }
    commit(ctx, Kind::OpsSweep, None, |idx, now: DateTime<Utc>| {
        let cutoff = stale_cutoff(now, Some(older_than));
        let stale: Vec<Operation> = idx.operations()?.into_iter().filter(|o| is_stale(o, &cutoff)).collect();
        if stale.is_empty() {
            return Ok(Plan::unchanged(Swept { failed: Vec::new() }, BTreeSet::new()));
        }
        let minutes = older_than.num_minutes();
        idx.transact(Kind::OpsSweep, &ctx.actor, now, |tx| {
            let mut failed = Vec::new();
            let mut events = Vec::new();
            for o in stale {
                let error = format!(
                    "swept by {}: still {} {minutes} minutes after it started; its process most likely died",
                    ctx.actor, o.state
                );
                if index::fail_operation(tx, o.id, now, &error)? {
                    events.push(NewEvent {
                        action: Kind::OpsSweep,
                        target: format!("operation {}", o.id),
                        details: serde_json::json!({ "kind": o.kind, "state": o.state, "startedAt": o.started_at }),
                    });
                    failed.push(Operation {
                        state: "failed".into(),
                        error: Some(error),
                        updated_at: format_time(now),
                        ..o
                    });
                }
            }
            Ok((Plan::index_only(Swept { failed }, BTreeSet::new()), events))
        })
    })
    .await
}
