//! `otapub rollout …` and the rollout part of `publish`/`promote --rollout`:
//! a campaign that serves a candidate package to a sticky share of devices
//! through the pointer's bucket objects, while the pointer keeps serving the
//! control (docs/format.md). Every transition is one commit with
//! its audit event; each re-signs the pointer's `rollout.json`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::steps::{ban_family, gate_details, restamp, seal, served, Banned, Restamped};
use super::{commit, Context, Plan};
use crate::docs::{RolloutDoc, ServedDoc};
use crate::error::{Error, Result};
use crate::index::{self, live, Index};
use crate::manifest::format_time;
use crate::model::{GateReading, Kind, Lifecycle, NewEvent, Rollout, Strategy};
use crate::names::{PointerId, Version};
use crate::rollout::{self as rules};
use crate::signing::Signer;
use crate::tree::PublicObject;

/// What a rollout command did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutOutcome {
    /// The pointer.
    pub pointer: String,
    /// Lifecycle state after the command.
    pub state: Lifecycle,
    /// Percentage after the command.
    pub percent: u8,
    /// Candidate buckets served after the command.
    pub buckets: Vec<u8>,
    /// The candidate.
    pub candidate: Version,
    /// False when the rollout already was where the command would take it.
    pub changed: bool,
    /// The gate reading an advance measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReading>,
    /// The re-stamp an abort (or a complete behind a newer control) made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restamped: Option<Restamped>,
    /// Why nothing changed, or why the rollout ended, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RolloutOutcome {
    fn of(r: &Rollout, changed: bool) -> RolloutOutcome {
        RolloutOutcome {
            pointer: r.pointer.to_string(),
            state: r.state,
            percent: r.percent,
            buckets: r.live_buckets(),
            candidate: r.candidate.clone(),
            changed,
            gate: r.gate,
            restamped: None,
            note: None,
        }
    }
}

/// A change to one rollout.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Raise the percentage (100 completes).
    Set(u8),
    /// Stop new devices from getting the candidate.
    Pause,
    /// Serve the candidate buckets again.
    Resume,
    /// One step of the strategy, after the gate (if any) passed.
    Advance(Option<Measured>),
    /// Make the candidate the pointer's live package.
    Complete,
    /// Ban the candidate and move devices back.
    Abort(String),
    /// The gate tripped: abort, with the reading as the reason.
    Tripped(Measured),
}

/// A gate reading, and the rollout it was measured for: a change based on
/// it applies only to that rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// The reading.
    pub reading: GateReading,
    /// The rollout's row id.
    pub rollout: i64,
}

impl Change {
    fn kind(&self) -> Kind {
        match self {
            Change::Set(_) => Kind::RolloutSet,
            Change::Pause => Kind::RolloutPause,
            Change::Resume => Kind::RolloutResume,
            Change::Advance(_) | Change::Tripped(_) => Kind::RolloutAdvance,
            Change::Complete => Kind::RolloutComplete,
            Change::Abort(_) => Kind::RolloutAbort,
        }
    }

    fn measured(&self) -> Option<Measured> {
        match self {
            Change::Advance(m) => *m,
            Change::Tripped(m) => Some(*m),
            _ => None,
        }
    }
}

fn paused_refusal(pointer: &PointerId, what: &'static str) -> Error {
    super::OpError::Paused {
        pointer: pointer.clone(),
        what,
    }
    .into()
}

/// The abort reason of a tripped gate.
fn tripped_reason(reading: GateReading, threshold: f64) -> String {
    format!(
        "health gate: {} of {} devices ({:.2} %) failed to launch the candidate, above the abort threshold of {:.2} %",
        reading.failed,
        reading.total,
        reading.rate().unwrap_or(0.0) * 100.0,
        threshold * 100.0
    )
}

fn no_rollout(pointer: &PointerId) -> Error {
    super::OpError::NoRollout {
        pointer: pointer.clone(),
    }
    .into()
}

/// The pointer's active rollout, or a usage error saying how to start one.
pub fn active(index: &Index, pointer: &PointerId) -> Result<Rollout> {
    index::active_rollout(index.conn(), pointer)?.ok_or_else(|| no_rollout(pointer))
}

/// Applies one change to the active rollout on `pointer`.
pub async fn change(ctx: &Context<'_>, signer: &Signer, pointer: &PointerId, change: Change) -> Result<RolloutOutcome> {
    apply(ctx, signer, pointer, change, None).await
}

/// [`change`], starting from an index the caller read already (the commit
/// reads it again only if another writer committed since).
async fn apply(
    ctx: &Context<'_>,
    signer: &Signer,
    pointer: &PointerId,
    change: Change,
    preloaded: Option<Index>,
) -> Result<RolloutOutcome> {
    if let Change::Abort(reason) = &change {
        if reason.trim().is_empty() {
            return Err(super::OpError::BlankAbortReason.into());
        }
    }
    if let Change::Set(p) = change {
        if !(1..=100).contains(&p) {
            return Err(super::OpError::Percent { percent: p }.into());
        }
    }
    commit(ctx, change.kind(), preloaded, |idx, now| {
        let r = active(idx, pointer)?;
        if change.measured().is_some_and(|m| m.rollout != r.id) {
            return Err(super::OpError::ChangedDuringGate {
                pointer: pointer.clone(),
            }
            .into());
        }
        let generation = idx.generation()? + 1;
        // What the change does, decided before the transaction.
        let target = match &change {
            Change::Set(p) => {
                if r.state == Lifecycle::Paused {
                    return Err(paused_refusal(pointer, "raise it"));
                }
                if *p < r.percent {
                    return Err(super::OpError::PercentDown {
                        percent: *p,
                        current: r.percent,
                    }
                    .into());
                }
                if *p == r.percent {
                    return Ok(Plan::unchanged(
                        RolloutOutcome::of(&r, false),
                        BTreeSet::from([pointer.clone()]),
                    ));
                }
                Some(*p)
            }
            Change::Advance(_) | Change::Tripped(_) if r.state == Lifecycle::Paused => {
                return Err(paused_refusal(pointer, "advance it"))
            }
            Change::Advance(_) => Some(r.strategy.next(r.percent, r.step)),
            Change::Pause if r.state == Lifecycle::Paused => {
                return Ok(Plan::unchanged(
                    RolloutOutcome::of(&r, false),
                    BTreeSet::from([pointer.clone()]),
                ))
            }
            Change::Resume if r.state == Lifecycle::Running => {
                return Ok(Plan::unchanged(
                    RolloutOutcome::of(&r, false),
                    BTreeSet::from([pointer.clone()]),
                ))
            }
            _ => None,
        };
        let kind = change.kind();
        idx.transact(kind, &ctx.actor, now, |tx| {
            let mut r = r.clone();
            let from = r.percent;
            r.updated_at = now;
            let mut objects = Vec::new();
            let mut events = Vec::new();
            let mut restamped = None;
            let mut completing = false;
            match &change {
                Change::Pause => r.state = Lifecycle::Paused,
                Change::Resume => r.state = Lifecycle::Running,
                Change::Complete => completing = true,
                Change::Set(_) | Change::Advance(_) => {
                    if let Change::Advance(m) = &change {
                        r.gate = m.map(|m| m.reading);
                    }
                    let to = target.unwrap_or(r.percent);
                    if to >= 100 {
                        completing = true;
                    } else {
                        r.percent = to;
                        events.push(NewEvent {
                            action: kind,
                            target: pointer.to_string(),
                            details: serde_json::json!({
                                "candidate": r.candidate.as_str(), "from": from, "to": to,
                                "gate": r.gate.filter(|_| matches!(change, Change::Advance(Some(_)))).map(gate_details),
                            }),
                        });
                    }
                }
                Change::Abort(reason) => {
                    return abort_plan(tx, signer, &r, reason.trim(), None, &ctx.actor, now, generation);
                }
                Change::Tripped(m) => {
                    r.gate = Some(m.reading);
                    let reason = tripped_reason(m.reading, r.abort_threshold);
                    return abort_plan(
                        tx,
                        signer,
                        &r,
                        &reason,
                        Some(reason.clone()),
                        &ctx.actor,
                        now,
                        generation,
                    );
                }
            }
            if completing {
                let (objs, event, back) = complete(tx, signer, &mut r, now)?;
                objects.extend(objs);
                events.push(event);
                restamped = back;
            } else if matches!(change, Change::Pause | Change::Resume) {
                events.push(NewEvent {
                    action: kind,
                    target: pointer.to_string(),
                    details: serde_json::json!({ "candidate": r.candidate.as_str(), "percent": r.percent }),
                });
            }
            seal(tx, signer, &mut r, generation)?;
            index::update_rollout(tx, &r)?;
            let mut out = RolloutOutcome::of(&r, true);
            out.restamped = restamped;
            Ok((
                Plan {
                    output: out,
                    changed: true,
                    assets: Vec::new(),
                    objects,
                    pointers: BTreeSet::from([pointer.clone()]),
                    patch_for: BTreeSet::new(),
                },
                events,
            ))
        })
    })
    .await
}

/// Marks a rollout completed: the candidate becomes the pointer's live
/// package — at once when it is the newest there, else (a `ban --rollback`
/// of the control re-stamped something newer meanwhile) by a re-stamp.
fn complete(
    conn: &Connection,
    signer: &Signer,
    r: &mut Rollout,
    now: DateTime<Utc>,
) -> Result<(Vec<PublicObject>, NewEvent, Option<Restamped>)> {
    let from = r.percent;
    r.state = Lifecycle::Completed;
    r.percent = 100;
    let packages = index::pointer_packages(conn, &r.pointer)?;
    let mut objects = Vec::new();
    let mut restamped = None;
    let live_now = live::live_package(&packages, Some(r));
    if live_now.is_none_or(|p| p.version != r.candidate) {
        let candidate = packages.iter().find(|p| p.version == r.candidate).ok_or_else(|| {
            super::OpError::CandidateNotOnPointer {
                candidate: r.candidate.clone(),
                pointer: r.pointer.clone(),
            }
        })?;
        let (out, objs, _) = restamp(conn, signer, candidate, &r.pointer, now)?;
        objects.extend(objs);
        restamped = Some(out);
    }
    let event = NewEvent {
        action: Kind::RolloutComplete,
        target: r.pointer.to_string(),
        details: serde_json::json!({
            "candidate": r.candidate.as_str(), "from": from,
            "restamped": restamped.as_ref().map(|x: &Restamped| x.version.as_str()),
        }),
    };
    Ok((objects, event, restamped))
}

/// Aborts: records the rollout's last changes (a gate reading), then bans
/// the candidate (and its re-stamps) with `reason` as `ban` does — which
/// ends the rollout and moves devices back ([`finish_abort`]).
fn abort_with_ban(
    conn: &Connection,
    signer: &Signer,
    r: &Rollout,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
    generation: u64,
) -> Result<(Banned, Vec<NewEvent>)> {
    index::update_rollout(conn, r)?;
    let candidate =
        index::package(conn, r.pointer.platform, &r.candidate)?.ok_or_else(|| super::OpError::CandidateMissing {
            candidate: r.candidate.clone(),
        })?;
    let mut banned = ban_family(conn, signer, &candidate, reason, actor, false, now, generation)?;
    // As `ban` records it: the ban first, then what it caused.
    let mut events = vec![NewEvent {
        action: Kind::Ban,
        target: format!("{}/{}", r.pointer.platform, r.candidate),
        details: serde_json::json!({
            "reason": reason,
            "covers": banned.outcome.banned.iter().map(Version::as_str).collect::<Vec<_>>(),
            "rollout": r.pointer.to_string(),
        }),
    }];
    events.append(&mut banned.events);
    Ok((banned, events))
}

/// An abort's plan: the ban's objects and pointers, and the rollout as it
/// ended, with the re-stamp made on its pointer.
#[allow(clippy::too_many_arguments)]
fn abort_plan(
    conn: &Connection,
    signer: &Signer,
    r: &Rollout,
    reason: &str,
    note: Option<String>,
    actor: &str,
    now: DateTime<Utc>,
    generation: u64,
) -> Result<(Plan<RolloutOutcome>, Vec<NewEvent>)> {
    let (banned, events) = abort_with_ban(conn, signer, r, reason, actor, now, generation)?;
    let ended = index::latest_rollout(conn, &r.pointer)?.unwrap_or_else(|| r.clone());
    let mut out = RolloutOutcome::of(&ended, true);
    let pointer = r.pointer.to_string();
    out.restamped = banned.outcome.restamped.iter().find(|x| x.pointer == pointer).cloned();
    out.note = note;
    let plan = Plan {
        output: out,
        changed: true,
        assets: Vec::new(),
        objects: banned.objects,
        pointers: banned.pointers,
        patch_for: BTreeSet::new(),
    };
    Ok((plan, events))
}

/// The result of a gated advance that did not advance.
#[derive(Debug, Clone, Serialize)]
pub struct GateOutcome {
    /// The rollout after the command.
    pub rollout: RolloutOutcome,
    /// Whether the gate let the rollout advance.
    pub passed: bool,
}

/// `rollout advance`: measures the gate (when given), then aborts when the
/// candidate's failure rate is above the threshold, changes nothing when no
/// device was counted, and otherwise takes one step of the strategy.
pub async fn advance(
    ctx: &Context<'_>,
    signer: &Signer,
    pointer: &PointerId,
    gate: Option<&crate::gate::Gate>,
) -> Result<GateOutcome> {
    let Some(gate) = gate else {
        let out = change(ctx, signer, pointer, Change::Advance(None)).await?;
        return Ok(GateOutcome {
            rollout: out,
            passed: true,
        });
    };
    let index = crate::commit::read_index(ctx.store).await?;
    let r = active(&index, pointer)?;
    // Refused before the gate runs, as the change itself would be.
    if r.state == Lifecycle::Paused {
        return Err(paused_refusal(pointer, "advance it"));
    }
    let candidate = index
        .package(pointer.platform, &r.candidate)?
        .ok_or_else(|| super::OpError::CandidateMissing {
            candidate: r.candidate.clone(),
        })?;
    let Some(id) = served(&candidate).id else {
        return Err(super::OpError::GateOnDirective.into());
    };
    let reading = crate::off_runtime(|| gate.measure(&id, pointer, &index))?;
    let measured = Measured { reading, rollout: r.id };
    let (change_to, passed) = match reading.rate() {
        None => {
            let mut out = RolloutOutcome::of(&r, false);
            out.gate = Some(reading);
            out.note = Some(format!(
                "no device has reported the candidate ({id}) yet; nothing changed — advance again once devices have checked in"
            ));
            return Ok(GateOutcome {
                rollout: out,
                passed: false,
            });
        }
        Some(rate) if rate > r.abort_threshold => (Change::Tripped(measured), false),
        Some(_) => (Change::Advance(Some(measured)), true),
    };
    let out = apply(ctx, signer, pointer, change_to, Some(index)).await?;
    Ok(GateOutcome { rollout: out, passed })
}

/// One rollout as `rollout status` and the operators' page show it: what
/// its signed `rollout.json` says, plus what the record does not carry
/// (gate reading, abort reason, dates).
#[derive(Debug, Clone, Serialize)]
pub struct RolloutStatus {
    /// The pointer.
    pub pointer: String,
    /// Lifecycle state.
    pub state: Lifecycle,
    /// Percentage.
    pub percent: u8,
    /// Candidate buckets served now.
    pub buckets: Vec<u8>,
    /// The candidate.
    pub candidate: ServedDoc,
    /// What the pointer itself serves now (for an ended rollout: what it served then).
    pub control: Option<ServedDoc>,
    /// Strategy.
    pub strategy: Strategy,
    /// Step.
    pub step: u8,
    /// Abort threshold.
    #[serde(rename = "abortThreshold")]
    pub abort_threshold: f64,
    /// The last gate reading.
    pub gate: Option<GateReading>,
    /// Why it was aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it started.
    #[serde(rename = "startedAt")]
    pub started_at: String,
    /// When it last changed.
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    /// The generation of its last change.
    pub generation: u64,
}

/// The record a rollout serves: the payload of the `rollout.json` the tree
/// renders for it (`tree::rollout_objects` signs nothing, it publishes
/// these bytes), read back.
pub fn served_record(r: &Rollout) -> Result<RolloutDoc> {
    let doc: RolloutDoc = serde_json::from_slice(&r.record.payload).map_err(|e| unreadable(r, e))?;
    if doc.pointer != r.pointer.to_string() {
        return Err(unreadable(r, format!("it is signed for {}", doc.pointer)));
    }
    Ok(doc)
}

fn unreadable(r: &Rollout, why: impl std::fmt::Display) -> Error {
    super::OpError::RecordUnreadable {
        pointer: r.pointer.clone(),
        reason: why.to_string(),
    }
    .into()
}

/// A rollout as shown: everything its signed record carries from the
/// record — never from the row, whose `control` stays the package that was
/// live when the rollout started although a ban can change what the
/// pointer serves (the record is re-signed then).
pub fn status_of(r: &Rollout) -> Result<RolloutStatus> {
    let doc = served_record(r)?;
    let bad = |e: String| unreadable(r, e);
    Ok(RolloutStatus {
        pointer: doc.pointer,
        state: doc.state.parse().map_err(bad)?,
        percent: doc.percent,
        buckets: doc.buckets,
        candidate: doc.candidate,
        control: doc.control,
        strategy: doc.strategy.parse().map_err(bad)?,
        step: doc.step,
        abort_threshold: doc.abort_threshold,
        gate: r.gate,
        reason: r.reason.clone(),
        started_at: format_time(r.started_at),
        updated_at: format_time(r.updated_at),
        generation: doc.generation,
    })
}

/// `rollout status`: every rollout, active ones first.
pub async fn status(ctx: &Context<'_>) -> Result<Vec<RolloutStatus>> {
    let index = crate::commit::read_index(ctx.store).await?;
    index::all_rollouts(index.conn())?.iter().map(status_of).collect()
}

/// Which package one device gets from a pointer.
#[derive(Debug, Clone, Serialize)]
pub struct Which {
    /// The device's bucket; `null` when the id is not a UUID (it gets the control).
    pub bucket: Option<u8>,
    /// What it is served; `null` when the pointer serves a noUpdateAvailable directive.
    pub serves: Option<ServedDoc>,
    /// Whether that is the rollout's candidate.
    pub candidate: bool,
}

/// `rollout which`: the package the edge rule gives a device.
pub async fn which(ctx: &Context<'_>, pointer: &PointerId, client_id: &str) -> Result<Which> {
    let index = crate::commit::read_index(ctx.store).await?;
    let packages = index.pointer_packages(pointer)?;
    if packages.is_empty() {
        return Err(super::OpError::NothingPublished {
            pointer: pointer.clone(),
        }
        .into());
    }
    let rollout = index::latest_rollout(index.conn(), pointer)?;
    let bucket = rules::bucket(client_id);
    let in_candidate = match (&rollout, bucket) {
        (Some(r), Some(b)) => r.live_buckets().contains(&b),
        _ => false,
    };
    let serves = if in_candidate {
        rollout
            .as_ref()
            .and_then(|r| packages.iter().find(|p| p.version == r.candidate && p.ban.is_none()))
    } else {
        live::live_package(&packages, rollout.as_ref())
    };
    Ok(Which {
        bucket,
        serves: serves.map(served),
        candidate: in_candidate && serves.is_some(),
    })
}
