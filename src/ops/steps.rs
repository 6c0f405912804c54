//! The steps inside one transaction that several commands take: banning a
//! package's family, re-stamping a bundle, recording a rollBackToEmbedded
//! directive, and starting, sealing or aborting a rollout. `ban`,
//! `rollback`/`promote`, `rollout` and `publish` each compose them; the
//! steps call each other (a ban aborts a rollout, which re-stamps its
//! control), so they live together, below the commands.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;

use super::{ensure_no_update_directive, next_created_at, recorded_base_url, stamp};
use crate::docs::{BanRecord, RolloutDoc, ServedDoc};
use crate::error::Result;
use crate::index::{self, live};
use crate::manifest::format_time;
use crate::model::{
    directive_content_hash, restamp_content_hash, Ban, GateReading, Kind, Lifecycle, ManifestFormat, NewEvent, Package,
    PackageContent, PackageDraft, Permutation, Rollout, SignedRecord,
};
use crate::names::{Platform, PointerId, Version};
use crate::rollout::RolloutPlan;
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
            let (objs, evs, back) = finish_abort(tx, signer, r.clone(), reason, now, generation)?;
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
            seal(tx, signer, &mut r, generation)?;
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

/// What a re-stamp made.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Restamped {
    /// The pointer.
    pub pointer: String,
    /// The new package's version.
    pub version: Version,
    /// The original whose bundle it serves (none for rollBackToEmbedded).
    #[serde(rename = "restampOf")]
    pub restamp_of: Option<Version>,
    /// createdAt (also the commitTime of a directive).
    #[serde(rename = "createdAt")]
    pub created_at: String,
}

/// What a pointer already serves, reported as the outcome of a re-stamp that
/// had nothing left to do.
pub(crate) fn current(live: &Package) -> Restamped {
    Restamped {
        pointer: live.pointer.to_string(),
        version: live.version.clone(),
        restamp_of: live.restamp_of.clone(),
        created_at: format_time(live.created_at),
    }
}

/// Re-stamps `source`'s bundle onto `pointer`. Refuses a banned source.
pub(crate) fn restamp(
    conn: &Connection,
    signer: &Signer,
    source: &Package,
    pointer: &PointerId,
    now: DateTime<Utc>,
) -> Result<(Restamped, [PublicObject; 2], NewEvent)> {
    let original = source.original().clone();
    if source.ban.is_some() {
        return Err(super::OpError::Banned {
            platform: source.pointer.platform,
            version: source.version.clone(),
        }
        .into());
    }
    if source.retired.is_some() {
        return Err(super::OpError::Retired {
            platform: source.pointer.platform,
            version: source.version.clone(),
        }
        .into());
    }
    let PackageContent::Update { bundle, .. } = &source.content else {
        return Err(super::OpError::IsDirective {
            version: source.version.clone(),
        }
        .into());
    };
    let n = index::next_restamp_number(conn, pointer.platform, &original)?;
    let version = Version::derived(format!("{original}.r{n}"))?;
    let created_at = next_created_at(now, index::newest_created_at(conn, pointer)?);
    let base_url = recorded_base_url(conn)?;
    let content_hash = restamp_content_hash(pointer, &version, &original, created_at);
    let manifest_id = super::derive_manifest_id(&[
        pointer.platform.as_str(),
        version.as_str(),
        &index::to_ms(created_at).to_string(),
        &content_hash.to_hex(),
    ]);
    let pkg = PackageDraft {
        pointer: pointer.clone(),
        version: version.clone(),
        created_at,
        restamp_of: Some(original.clone()),
        message: source.message.clone(),
        content: PackageContent::Update {
            manifest_id: manifest_id.clone(),
            base_url,
            bundle: bundle.clone(),
        },
        content_hash,
        format: ManifestFormat::V2,
    };
    let (_, objects) = stamp(conn, signer, pkg)?;
    let event = NewEvent {
        action: Kind::Restamp,
        target: format!("{}/{version}", pointer.platform),
        details: serde_json::json!({
            "pointer": pointer.to_string(),
            "restampOf": original.as_str(),
            "from": source.version.as_str(),
            "id": manifest_id,
            "createdAt": format_time(created_at),
        }),
    };
    let out = Restamped {
        pointer: pointer.to_string(),
        version,
        restamp_of: Some(original),
        created_at: format_time(created_at),
    };
    Ok((out, objects, event))
}

/// Records a rollBackToEmbedded directive package.
pub(crate) fn embedded(
    conn: &Connection,
    signer: &Signer,
    pointer: &PointerId,
    now: DateTime<Utc>,
) -> Result<(Restamped, [PublicObject; 2], NewEvent)> {
    let created_at = next_created_at(now, index::newest_created_at(conn, pointer)?);
    let content_hash = directive_content_hash(pointer, created_at);
    let version = Version::derived(format!("embedded-{}", &content_hash.to_hex()[..16]))?;
    let pkg = PackageDraft {
        pointer: pointer.clone(),
        version: version.clone(),
        created_at,
        restamp_of: None,
        message: None,
        content: PackageContent::RollBackToEmbedded,
        content_hash,
        format: ManifestFormat::V2,
    };
    let (_, objects) = stamp(conn, signer, pkg)?;
    let event = NewEvent {
        action: Kind::RollbackToEmbedded,
        target: format!("{}/{version}", pointer.platform),
        details: serde_json::json!({ "pointer": pointer.to_string(), "commitTime": format_time(created_at) }),
    };
    let out = Restamped {
        pointer: pointer.to_string(),
        version,
        restamp_of: None,
        created_at: format_time(created_at),
    };
    Ok((out, objects, event))
}

/// What a side of a rollout serves, as reported.
pub(crate) fn served(p: &Package) -> ServedDoc {
    ServedDoc {
        version: p.version.to_string(),
        id: match &p.content {
            PackageContent::Update { manifest_id, .. } => Some(manifest_id.clone()),
            PackageContent::RollBackToEmbedded => None,
        },
    }
}

/// Signs the rollout's record as of the commit with `generation`: what the
/// candidate buckets and the pointer serve once that commit lands.
pub(crate) fn seal(conn: &Connection, signer: &Signer, r: &mut Rollout, generation: u64) -> Result<()> {
    let packages = index::pointer_packages(conn, &r.pointer)?;
    let candidate =
        packages
            .iter()
            .find(|p| p.version == r.candidate)
            .ok_or_else(|| super::OpError::CandidateNotOnPointer {
                pointer: r.pointer.clone(),
                candidate: r.candidate.clone(),
            })?;
    r.generation = generation;
    let doc = RolloutDoc {
        pointer: r.pointer.to_string(),
        candidate: served(candidate),
        control: live::live_package(&packages, Some(r)).map(served),
        percent: r.percent,
        buckets: r.live_buckets(),
        generation,
        paused: r.state == Lifecycle::Paused,
        state: r.state.as_str().to_string(),
        strategy: r.strategy.as_str().to_string(),
        step: r.step,
        abort_threshold: r.abort_threshold,
        permutation: r.permutation.as_slice().to_vec(),
    };
    let payload = serde_json::to_vec(&doc).expect("a rollout record serializes");
    let signatures = signer.sign(signing::ROLLOUT_PAYLOAD_TYPE, &payload);
    r.record = SignedRecord { payload, signatures };
    Ok(())
}

/// How to finish the rollout on a pointer, for refusals.
fn finish_first(r: &Rollout) -> String {
    let p = &r.pointer;
    format!(
        "{p} has a {} rollout of {} at {} %; complete it (`otapub rollout complete --channel {} --platform {} --fingerprint {}`) \
         or abort it (`otapub rollout abort … --reason TEXT`) first",
        r.state.as_str(),
        r.candidate,
        r.percent,
        p.channel,
        p.platform,
        p.fingerprint
    )
}

/// Refuses a `publish`, `rollback` or `promote` that would change what a
/// pointer with an active rollout serves.
pub(crate) fn refuse_if_rolling(conn: &Connection, pointer: &PointerId, what: &str) -> Result<()> {
    match index::active_rollout(conn, pointer)? {
        Some(r) => Err(super::OpError::Rolling {
            what: what.to_string(),
            finish: finish_first(&r),
        }
        .into()),
        None => Ok(()),
    }
}

/// Starts a rollout of `candidate` (just recorded on `pointer` in this
/// transaction) against what the pointer served before it.
pub(crate) fn start(
    conn: &Connection,
    signer: &Signer,
    pointer: &PointerId,
    candidate: &Version,
    plan: &RolloutPlan,
    now: DateTime<Utc>,
    generation: u64,
) -> Result<NewEvent> {
    let packages = index::pointer_packages(conn, pointer)?;
    let others: Vec<Package> = packages.iter().filter(|p| &p.version != candidate).cloned().collect();
    let control = live::live_package(&others, None).ok_or_else(|| super::OpError::NoControl {
        pointer: pointer.clone(),
    })?;
    let mut r = Rollout {
        id: 0,
        pointer: pointer.clone(),
        candidate: candidate.clone(),
        control: Some(control.version.clone()),
        strategy: plan.strategy,
        step: plan.step,
        abort_threshold: plan.abort_threshold,
        percent: plan.percent,
        permutation: Permutation::random()?,
        state: Lifecycle::Created,
        started_at: now,
        updated_at: now,
        generation,
        // Sealed below, once running; a row always holds a signed record,
        // so the created row holds an empty one (never rendered).
        record: SignedRecord {
            payload: Vec::new(),
            signatures: signer.sign(signing::ROLLOUT_PAYLOAD_TYPE, b""),
        },
        gate: None,
        reason: None,
    };
    r.id = index::insert_rollout(conn, &r)?;
    r.state = Lifecycle::Running;
    seal(conn, signer, &mut r, generation)?;
    index::update_rollout(conn, &r)?;
    Ok(NewEvent {
        action: Kind::RolloutStart,
        target: pointer.to_string(),
        details: serde_json::json!({
            "candidate": candidate.as_str(),
            "control": control.version.as_str(),
            "percent": r.percent,
            "strategy": r.strategy.as_str(),
            "step": r.step,
            "abortThreshold": r.abort_threshold,
            "buckets": r.live_buckets(),
        }),
    })
}

/// Ends an active rollout whose candidate was just banned (by `rollout
/// abort`, a tripped gate or `ban`): re-stamps what the pointer now serves
/// so devices that took the candidate move back, and seals the record.
pub(crate) fn finish_abort(
    conn: &Connection,
    signer: &Signer,
    mut r: Rollout,
    reason: &str,
    now: DateTime<Utc>,
    generation: u64,
) -> Result<(Vec<PublicObject>, Vec<NewEvent>, Option<Restamped>)> {
    r.state = Lifecycle::Aborted;
    r.reason = Some(reason.to_string());
    r.updated_at = now;
    let packages = index::pointer_packages(conn, &r.pointer)?;
    let mut objects = Vec::new();
    let mut events = Vec::new();
    let back = match live::live_package(&packages, Some(&r)) {
        Some(control) if control.bundle().is_some() => Some(restamp(conn, signer, control, &r.pointer, now)?),
        Some(_) => Some(embedded(conn, signer, &r.pointer, now)?),
        None => {
            ensure_no_update_directive(conn, signer, &r.pointer)?;
            None
        }
    };
    let restamped = back.map(|(out, objs, event)| {
        objects.extend(objs);
        events.push(event);
        out
    });
    seal(conn, signer, &mut r, generation)?;
    index::update_rollout(conn, &r)?;
    events.insert(
        0,
        NewEvent {
            action: Kind::RolloutAbort,
            target: r.pointer.to_string(),
            details: serde_json::json!({
                "candidate": r.candidate.as_str(),
                "percent": r.percent,
                "reason": reason,
                "gate": r.gate.map(gate_details),
                "restamped": restamped.as_ref().map(|x| x.version.as_str()),
            }),
        },
    );
    Ok((objects, events, restamped))
}

pub(crate) fn gate_details(g: GateReading) -> serde_json::Value {
    serde_json::json!({ "failed": g.failed, "total": g.total, "rate": g.rate() })
}
