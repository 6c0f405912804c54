//! The SQL of rollout campaigns: reading and writing `rollouts` rows inside
//! a transaction.

use rusqlite::{params, Connection, Row};

use super::*;
use crate::error::Result;
use crate::model::{Permutation, Rollout, SignedRecord};
use crate::names::{PointerId, Version};

const COLUMNS: &str = "r.id, r.channel, r.platform, r.fingerprint, c.version, k.version, r.strategy, r.step,
    r.abort_threshold, r.percent, r.permutation, r.state, r.started_at, r.updated_at, r.generation, r.record,
    r.signatures, r.gate, r.reason";
const FROM: &str = "rollouts r JOIN packages c ON c.id = r.candidate LEFT JOIN packages k ON k.id = r.control";

/// Reads one row; every value the index holds is input, checked here.
fn read_row(r: &Row<'_>) -> Result<Rollout> {
    let id: i64 = r.get(0)?;
    let small = |i: usize, what: &str| -> Result<u8> {
        let v: i64 = r.get(i)?;
        u8::try_from(v).map_err(|_| corrupt(format!("rollout {id}: {what} {v}")))
    };
    let generation: i64 = r.get(14)?;
    let control: Option<String> = r.get(5)?;
    let gate: Option<String> = r.get(17)?;
    Ok(Rollout {
        id,
        pointer: PointerId {
            channel: r.get::<_, String>(1)?.parse().map_err(corrupt)?,
            platform: r.get::<_, String>(2)?.parse().map_err(corrupt)?,
            fingerprint: r.get::<_, String>(3)?.parse().map_err(corrupt)?,
        },
        candidate: Version::stored(&r.get::<_, String>(4)?).map_err(corrupt)?,
        control: control.as_deref().map(Version::stored).transpose().map_err(corrupt)?,
        strategy: r.get::<_, String>(6)?.parse().map_err(corrupt)?,
        step: small(7, "step")?,
        abort_threshold: r.get(8)?,
        percent: small(9, "percent")?,
        permutation: Permutation::from_slice(&r.get::<_, Vec<u8>>(10)?).map_err(corrupt)?,
        state: r.get::<_, String>(11)?.parse().map_err(corrupt)?,
        started_at: from_ms(r.get(12)?)?,
        updated_at: from_ms(r.get(13)?)?,
        generation: u64::try_from(generation).map_err(|_| corrupt(format!("rollout generation {generation}")))?,
        record: SignedRecord {
            payload: r.get(15)?,
            signatures: serde_json::from_str(&r.get::<_, String>(16)?).map_err(corrupt)?,
        },
        gate: gate.as_deref().map(serde_json::from_str).transpose().map_err(corrupt)?,
        reason: r.get(18)?,
    })
}

fn query(conn: &Connection, filter: &str, p: impl rusqlite::Params) -> Result<Vec<Rollout>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM {FROM} WHERE {filter}"))?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read_row(row)?);
    }
    Ok(out)
}

/// The newest rollout of a pointer, whatever its state: a running one, or
/// the last one that ended (its record stays published as a tombstone).
pub fn latest_rollout(conn: &Connection, pointer: &PointerId) -> Result<Option<Rollout>> {
    Ok(query(
        conn,
        "r.channel = ?1 AND r.platform = ?2 AND r.fingerprint = ?3 ORDER BY r.id DESC LIMIT 1",
        params![
            pointer.channel.as_str(),
            pointer.platform.as_str(),
            pointer.fingerprint.as_str()
        ],
    )?
    .pop())
}

/// The pointer's rollout that still holds it (created, running or paused).
pub fn active_rollout(conn: &Connection, pointer: &PointerId) -> Result<Option<Rollout>> {
    Ok(latest_rollout(conn, pointer)?.filter(|r| r.state.is_active()))
}

/// Every rollout, active ones first, then newest first.
pub fn all_rollouts(conn: &Connection) -> Result<Vec<Rollout>> {
    query(
        conn,
        "1 = 1 ORDER BY r.state IN ('created', 'running', 'paused') DESC, r.id DESC",
        [],
    )
}

/// The latest rollout of every pointer that has had one.
pub fn latest_rollouts(conn: &Connection) -> Result<Vec<Rollout>> {
    query(
        conn,
        "r.id IN (SELECT max(id) FROM rollouts GROUP BY channel, platform, fingerprint)",
        [],
    )
}

/// Records a new rollout (state `created`); returns its row id.
pub fn insert_rollout(conn: &Connection, r: &Rollout) -> Result<i64> {
    conn.execute(
        "INSERT INTO rollouts (channel, platform, fingerprint, candidate, control, strategy, step, abort_threshold,
            percent, permutation, state, started_at, updated_at, generation, record, signatures, gate, reason)
         VALUES (?1, ?2, ?3,
            (SELECT id FROM packages WHERE platform = ?2 AND version = ?4),
            (SELECT id FROM packages WHERE platform = ?2 AND version = ?5),
            ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            r.pointer.channel.as_str(),
            r.pointer.platform.as_str(),
            r.pointer.fingerprint.as_str(),
            r.candidate.as_str(),
            r.control.as_ref().map(Version::as_str),
            r.strategy.as_str(),
            r.step,
            r.abort_threshold,
            r.percent,
            r.permutation.as_slice(),
            r.state.as_str(),
            to_ms(r.started_at),
            to_ms(r.updated_at),
            i64::try_from(r.generation).map_err(|_| corrupt("generation out of range"))?,
            r.record.payload,
            serde_json::to_string(&r.record.signatures).expect("signatures serialize"),
            r.gate
                .map(|g| serde_json::to_string(&g).expect("a gate reading serializes")),
            r.reason,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Writes a rollout's changing columns (the lifecycle trigger checks the move).
pub fn update_rollout(conn: &Connection, r: &Rollout) -> Result<()> {
    conn.execute(
        "UPDATE rollouts SET percent = ?2, state = ?3, updated_at = ?4, generation = ?5, record = ?6,
            signatures = ?7, gate = ?8, reason = ?9 WHERE id = ?1",
        params![
            r.id,
            r.percent,
            r.state.as_str(),
            to_ms(r.updated_at),
            i64::try_from(r.generation).map_err(|_| corrupt("generation out of range"))?,
            r.record.payload,
            serde_json::to_string(&r.record.signatures).expect("signatures serialize"),
            r.gate
                .map(|g| serde_json::to_string(&g).expect("a gate reading serializes")),
            r.reason,
        ],
    )?;
    Ok(())
}
