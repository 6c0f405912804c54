//! The SQLite index: packages, bans, re-stamps, pointer directives,
//! rollouts, audit events and operations. It lives in the store as one
//! object ([`INDEX_KEY`]); a mutating command downloads it, changes it in one
//! transaction and writes it back only if nobody else wrote it since (the
//! commit point of docs/format.md). This room only turns bytes into an index and back
//! ([`Index::open`], [`Index::to_bytes`]): the reading and the conditional
//! write are `crate::commit`'s.

mod builds;
mod bytecode;
mod embedded;
mod insights;
pub mod live;
mod patches;
mod rollouts;
mod rows;
mod schema;

pub use builds::*;
pub use bytecode::*;
pub use embedded::*;
pub use insights::*;
pub use patches::*;
pub use rollouts::*;
pub use rows::*;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::value::RawValue;

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::litter;
use crate::model::{AuditEvent, CommittedOperation, Kind, NewEvent, Operation, Package, StoredDirective};
use crate::names::{Platform, PointerId, Version};

/// Milliseconds since the epoch.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// From milliseconds since the epoch; a time out of range is a damaged index,
/// never silently 1970.
pub fn from_ms(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .filter(|t| (1970..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| corrupt(format!("time {ms} ms since 1970 is out of range")))
}

/// Key of the index in the store.
pub const INDEX_KEY: &str = "state/index.sqlite";

const INDEX_COPY_PREFIX: &str = "otapub-index-";
/// How to recover from an index otapub cannot use.
const RECOVER: &str = "restore it from a backup or run `otapub index rebuild --force --trust KEY.pub`";
/// Settings key of the index generation.
const GENERATION_SETTING: &str = "generation";

/// Removes index copies in the temp directory that killed otapub processes
/// left (a copy is named for its process). Once per process: the temp
/// directory is not read again on every load of the index.
fn remove_stale_copies() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            litter::remove_if_left_behind(&entry.path(), INDEX_COPY_PREFIX, std::time::Duration::from_secs(86_400));
        }
    });
}

/// The index, open on a private copy.
pub struct Index {
    conn: Connection,
    file: tempfile::NamedTempFile,
    etag: Option<String>,
    /// The invocation's operation id, recorded with its operation row.
    op_id: Option<String>,
    /// The row of the operation the last `transact` recorded.
    last_operation: Option<i64>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index(etag {:?})", self.etag)
    }
}

/// An index this otapub cannot use: corrupt, not an index, or too new.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A row holds a value otapub cannot read.
    #[error("index: the index holds a value otapub cannot read ({reason}); restore it with `otapub index rebuild`")]
    BadValue {
        /// What cannot be read.
        reason: String,
    },
    /// A package row the insights read cannot be read.
    #[error("index: a package row the insights read is unreadable ({reason}); run `otapub check`, then `otapub index rebuild` if it fails")]
    BadInsightsRow {
        /// What cannot be read.
        reason: String,
    },
    /// The index object is empty.
    #[error(
        "index: {} is empty (0 bytes): it was truncated, not created by otapub; {}",
        INDEX_KEY,
        RECOVER
    )]
    Empty,
    /// The index object is not a SQLite database.
    #[error("index: {} is not a readable SQLite database ({reason}); {}", INDEX_KEY, RECOVER)]
    NotSqlite {
        /// SQLite's error.
        reason: String,
    },
    /// The index object is a SQLite database of something else.
    #[error(
        "index: {} is a SQLite database but not an otapub index (schema version 0); \
             point --store at the right store, or replace it with `otapub index rebuild --force --trust KEY.pub`",
        INDEX_KEY
    )]
    NotAnIndex,
    /// A newer otapub wrote the index.
    #[error("index: the index has schema version {version}, newer than this otapub knows ({known}); upgrade otapub")]
    TooNew {
        /// The index's schema version.
        version: usize,
        /// The newest this otapub knows.
        known: usize,
    },
    /// The schema version is one no otapub writes.
    #[error(
        "index: {} has schema version {version}, which no otapub writes; {}",
        INDEX_KEY,
        RECOVER
    )]
    BadVersion {
        /// The version recorded.
        version: i64,
    },
    /// A channel name in the index breaks the naming rule.
    #[error("index: channel {channel:?}: {reason}; restore it with `otapub index rebuild`")]
    BadChannel {
        /// The channel as stored.
        channel: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A commit recorded its result with no operation row (an otapub bug).
    #[error("index: a change was committed without an operation row (an otapub bug)")]
    NoOperationRow,
}

impl crate::error::Refusal for IndexError {
    fn class(&self) -> crate::error::ExitClass {
        match self {
            IndexError::BadValue { .. }
            | IndexError::BadInsightsRow { .. }
            | IndexError::Empty
            | IndexError::NotSqlite { .. }
            | IndexError::NotAnIndex
            | IndexError::TooNew { .. }
            | IndexError::BadVersion { .. }
            | IndexError::BadChannel { .. }
            | IndexError::NoOperationRow => crate::error::ExitClass::Environment,
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    IndexError::BadValue { reason: e.to_string() }.into()
}

impl Index {
    /// Opens a copy of index bytes (`None`: a new index) and brings its schema up to date.
    pub fn open(bytes: Option<&[u8]>, etag: Option<String>) -> Result<Index> {
        if bytes.is_some_and(<[u8]>::is_empty) {
            // Taking it for "no index" would let the next commit replace
            // every package, ban and audit event with an index of one.
            return Err(IndexError::Empty.into());
        }
        remove_stale_copies();
        let mut file = tempfile::Builder::new()
            .prefix(&litter::own_prefix(INDEX_COPY_PREFIX))
            .suffix(".sqlite")
            .tempfile()
            .map_err(Error::file(
                "create a temporary copy of the index in",
                std::env::temp_dir(),
            ))?;
        if let Some(b) = bytes {
            file.write_all(b)
                .map_err(Error::file("write", file.path().to_path_buf()))?;
            file.flush().map_err(Error::file("write", file.path().to_path_buf()))?;
        }
        let unreadable = |e: &dyn std::fmt::Display| IndexError::NotSqlite { reason: e.to_string() };
        let mut conn = Connection::open(file.path())?;
        // Cheap validity check: reading the schema fails on anything but a
        // SQLite database. (A full quick_check reads every page: too slow for
        // a large index on every command; `otapub check` is where to look.)
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
            .map_err(|e| unreadable(&e))?;
        // A private, throw-away copy: a crash loses nothing the store does
        // not hold, so no fsync (each cost up to 60 ms on a busy disk, and a
        // publish made over twenty) and the rollback journal stays in memory
        // (a failed transaction still rolls back).
        conn.execute_batch("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON;")
            .map_err(|e| unreadable(&e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| unreadable(&e))?;
        let known = schema::MIGRATIONS.len();
        let applied = match usize::try_from(version) {
            Ok(0) if bytes.is_some() => return Err(IndexError::NotAnIndex.into()),
            Ok(v) if v <= known => v,
            Ok(v) => return Err(IndexError::TooNew { version: v, known }.into()),
            Err(_) => return Err(IndexError::BadVersion { version }.into()),
        };
        if applied < known {
            let tx = conn.transaction()?;
            for m in &schema::MIGRATIONS[applied..] {
                tx.execute_batch(m)?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {known}"))?;
            tx.commit()?;
        }
        Ok(Index {
            conn,
            file,
            etag,
            op_id: None,
            last_operation: None,
        })
    }

    /// The etag of the copy this index was read from (`None`: the store had
    /// none), which a write back must still find there.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The database bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        std::fs::read(self.file.path()).map_err(Error::file("read", self.file.path().to_path_buf()))
    }

    /// Records that these bytes are now stored under `etag` (a conditional
    /// write of them succeeded): the next write back is conditional on it.
    pub(crate) fn stored_as(&mut self, etag: String) {
        self.etag = Some(etag);
    }

    /// Runs `f` in one transaction that also records the operation (pending →
    /// running → succeeded) and its audit events. On error nothing is kept.
    pub fn transact<T>(
        &mut self,
        kind: Kind,
        actor: &str,
        now: DateTime<Utc>,
        f: impl FnOnce(&Connection) -> Result<(T, Vec<NewEvent>)>,
    ) -> Result<T> {
        self.transact_as(kind, actor, now, true, f)
    }

    /// [`Index::transact`] for an operation that goes on after this commit
    /// (a gc holding its lease): it is recorded `running`, and a later commit
    /// of the same invocation finishes it ([`end_operation`]). One whose
    /// process dies stays `running`, which `otapub ops` shows as stale.
    pub fn transact_running<T>(
        &mut self,
        kind: Kind,
        actor: &str,
        now: DateTime<Utc>,
        f: impl FnOnce(&Connection) -> Result<(T, Vec<NewEvent>)>,
    ) -> Result<T> {
        self.transact_as(kind, actor, now, false, f)
    }

    fn transact_as<T>(
        &mut self,
        kind: Kind,
        actor: &str,
        now: DateTime<Utc>,
        finish: bool,
        f: impl FnOnce(&Connection) -> Result<(T, Vec<NewEvent>)>,
    ) -> Result<T> {
        let tx = self.conn.transaction()?;
        let now_ms = to_ms(now);
        tx.execute(
            "INSERT INTO operations (kind, actor, state, started_at, updated_at, op_id) VALUES (?1, ?2, 'pending', ?3, ?3, ?4)",
            params![kind.as_str(), actor, now_ms, self.op_id],
        )?;
        let op = tx.last_insert_rowid();
        tx.execute("UPDATE operations SET state = 'running' WHERE id = ?1", [op])?;
        let (out, events) = f(&tx)?;
        for e in events {
            tx.execute(
                "INSERT INTO audit_events (time, actor, action, target, details, operation_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now_ms, actor, e.action.as_str(), e.target, e.details.to_string(), op],
            )?;
        }
        if finish {
            tx.execute(
                "UPDATE operations SET state = 'succeeded', updated_at = ?2 WHERE id = ?1",
                params![op, now_ms],
            )?;
        }
        tx.commit()?;
        self.last_operation = Some(op);
        Ok(out)
    }

    /// Sets the invocation's operation id, recorded by the next `transact`.
    pub fn set_operation_id(&mut self, op_id: &str) {
        self.op_id = Some(op_id.to_string());
    }

    /// What an operation committed earlier: its output and the pointers it
    /// affected (JSON), if an operation with this id committed.
    pub fn committed_operation(&self, op_id: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT output, pointers FROM operation_results WHERE op_id = ?1",
                [op_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Records the outcome of the operation the last `transact` made, under
    /// its id, so a retry after a lost response finds it: its output, the
    /// pointers it affected (JSON), the generation it commits and what was
    /// run (`invocation`), so a later writer can finish it and a rerun adopt it.
    pub fn record_result(
        &mut self,
        op_id: &str,
        output: &str,
        pointers: &str,
        generation: u64,
        invocation: &str,
    ) -> Result<()> {
        let Some(op) = self.last_operation else {
            return Err(IndexError::NoOperationRow.into());
        };
        let generation = i64::try_from(generation).map_err(|_| corrupt("generation out of range"))?;
        self.conn.execute(
            "INSERT INTO operation_results (op_id, operation, output, pointers, generation, invocation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![op_id, op, output, pointers, generation, invocation],
        )?;
        Ok(())
    }

    /// The operations committed after generation `after` (oldest first):
    /// those whose pointers may not be written yet.
    pub fn committed_after(&self, after: u64) -> Result<Vec<CommittedOperation>> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare(
            "SELECT r.op_id, r.output, r.pointers, r.generation, r.invocation, o.kind, o.actor
             FROM operation_results r JOIN operations o ON o.id = r.operation
             WHERE r.generation > ?1 ORDER BY r.generation",
        )?;
        let mut rows = stmt.query([after])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(CommittedOperation {
                op_key: r.get(0)?,
                output: r.get(1)?,
                pointers: r.get(2)?,
                generation: r.get::<_, i64>(3)?.max(0) as u64,
                invocation: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                kind: r.get::<_, String>(5)?.parse().map_err(corrupt)?,
                actor: r.get(6)?,
            });
        }
        Ok(out)
    }

    /// The generation of this copy: how many commits the index has seen
    /// since generations were introduced.
    pub fn generation(&self) -> Result<u64> {
        match self.setting(GENERATION_SETTING)? {
            None => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| corrupt(format!("generation {v:?} is not a number"))),
        }
    }

    /// Increments the generation (every commit does); returns the new one.
    pub fn bump_generation(&mut self) -> Result<u64> {
        let next = self.generation()? + 1;
        set_setting(&self.conn, GENERATION_SETTING, &next.to_string())?;
        Ok(next)
    }

    /// Raises the generation to at least `floor`: a rebuilt index continues
    /// from the stamps the store's pointer objects carry, so its first
    /// commit is not taken for a stale writer's.
    pub fn raise_generation(&mut self, floor: u64) -> Result<()> {
        if floor > self.generation()? {
            set_setting(&self.conn, GENERATION_SETTING, &floor.to_string())?;
        }
        Ok(())
    }

    /// The stamp of a pointer: the generation of the last commit that changed
    /// what it serves (0 when not recorded yet).
    pub fn pointer_stamp(&self, pointer: &PointerId) -> Result<u64> {
        let g: Option<i64> = self
            .conn
            .query_row(
                "SELECT generation FROM pointer_stamps WHERE channel = ?1 AND platform = ?2 AND fingerprint = ?3",
                params![
                    pointer.channel.as_str(),
                    pointer.platform.as_str(),
                    pointer.fingerprint.as_str()
                ],
                |r| r.get(0),
            )
            .optional()?;
        g.map_or(Ok(0), |g| {
            u64::try_from(g).map_err(|_| corrupt(format!("pointer stamp {g} is negative")))
        })
    }

    /// Records that `pointer` now renders to a body with this SHA-256: its
    /// stamp moves to `generation` if that differs from what it rendered before.
    pub fn restamp_pointer(&mut self, pointer: &PointerId, body_sha256: &Sha256Digest, generation: u64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO pointer_stamps (channel, platform, fingerprint, body_sha256, generation) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET body_sha256 = excluded.body_sha256, generation = excluded.generation
             WHERE body_sha256 IS NOT excluded.body_sha256",
            params![
                pointer.channel.as_str(),
                pointer.platform.as_str(),
                pointer.fingerprint.as_str(),
                &body_sha256.as_bytes()[..],
                i64::try_from(generation).map_err(|_| corrupt("generation out of range"))?
            ],
        )?;
        Ok(())
    }

    /// Records an operation that failed after it started writing.
    pub fn record_failure(&mut self, kind: Kind, actor: &str, now: DateTime<Utc>, error: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        let now_ms = to_ms(now);
        tx.execute(
            "INSERT INTO operations (kind, actor, state, started_at, updated_at) VALUES (?1, ?2, 'pending', ?3, ?3)",
            params![kind.as_str(), actor, now_ms],
        )?;
        let op = tx.last_insert_rowid();
        tx.execute("UPDATE operations SET state = 'running' WHERE id = ?1", [op])?;
        tx.execute(
            "UPDATE operations SET state = 'failed', error = ?2 WHERE id = ?1",
            params![op, error],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The underlying connection, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        get_setting(&self.conn, key)
    }

    /// One package by (platform, version).
    pub fn package(&self, platform: Platform, version: &Version) -> Result<Option<Package>> {
        package(&self.conn, platform, version)
    }

    /// Every package of one pointer, oldest first.
    pub fn pointer_packages(&self, pointer: &PointerId) -> Result<Vec<Package>> {
        pointer_packages(&self.conn, pointer)
    }

    /// Every package, grouped by pointer, each group oldest first.
    pub fn all_pointers(&self) -> Result<BTreeMap<PointerId, Vec<Package>>> {
        let mut out: BTreeMap<PointerId, Vec<Package>> = BTreeMap::new();
        for p in query_packages(
            &self.conn,
            "1 = 1 ORDER BY channel, platform, fingerprint, created_at",
            [],
        )? {
            out.entry(p.pointer.clone()).or_default().push(p);
        }
        Ok(out)
    }

    /// The stored noUpdateAvailable directive of a pointer.
    pub fn pointer_directive(&self, pointer: &PointerId) -> Result<Option<StoredDirective>> {
        pointer_directive(&self.conn, pointer)
    }

    /// Whether the index records this asset as stored.
    pub fn has_asset(&self, sha256: &Sha256Digest) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM assets WHERE sha256 = ?1 AND deleted IS NULL",
                [sha256.to_hex()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Every recorded asset: sha256 → (size, content type).
    pub fn assets(&self) -> Result<BTreeMap<Sha256Digest, (u64, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT sha256, size, content_type FROM assets ORDER BY sha256")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, (r.get::<_, i64>(1)? as u64, r.get(2)?)))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (sha, v) = row?;
            out.insert(sha.parse().map_err(|e| corrupt(format!("asset {e}")))?, v);
        }
        Ok(out)
    }

    /// The audit events, oldest first.
    pub fn audit_events(&self) -> Result<Vec<AuditEvent>> {
        let mut stmt = self
            .conn
            .prepare("SELECT time, actor, action, target, details FROM audit_events ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (time, actor, action, target, details) = row?;
            out.push(AuditEvent {
                time: crate::manifest::format_time(from_ms(time)?),
                actor,
                action: action.parse().map_err(corrupt)?,
                target,
                details: serde_json::from_str(&details).map_err(corrupt)?,
            });
        }
        Ok(out)
    }

    /// Keys a gc decided to delete and has not confirmed deleted.
    pub fn gc_pending(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT key FROM gc_pending ORDER BY key")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The operations, oldest first.
    pub fn operations(&self) -> Result<Vec<Operation>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, actor, state, error, started_at, updated_at, op_id FROM operations ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Operation {
                id: r.get(0)?,
                kind: r.get::<_, String>(1)?.parse().map_err(corrupt)?,
                actor: r.get(2)?,
                state: r.get(3)?,
                error: r.get(4)?,
                started_at: crate::manifest::format_time(from_ms(r.get(5)?)?),
                updated_at: crate::manifest::format_time(from_ms(r.get(6)?)?),
                op_id: r.get(7)?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_or_event_of_an_unknown_kind_reads_back_as_a_damaged_index() {
        let idx = Index::open(None, None).unwrap();
        idx.conn()
            .execute(
                "INSERT INTO operations (kind, actor, state, started_at, updated_at) VALUES ('publish', 'a', 'pending', 0, 0)",
                [],
            )
            .unwrap();
        assert_eq!(idx.operations().unwrap()[0].kind, Kind::Publish);
        idx.conn()
            .execute(
                "INSERT INTO audit_events (time, actor, action, target, details, operation_id) VALUES (0, 'a', 'publish', 't', '{}', 1)",
                [],
            )
            .unwrap();
        assert_eq!(idx.audit_events().unwrap()[0].action, Kind::Publish);
        idx.conn()
            .execute(
                "INSERT INTO operations (kind, actor, state, started_at, updated_at) VALUES ('teleport', 'a', 'pending', 0, 0)",
                [],
            )
            .unwrap();
        idx.conn()
            .execute(
                "INSERT INTO audit_events (time, actor, action, target, details, operation_id) VALUES (0, 'a', 'teleport', 't', '{}', 2)",
                [],
            )
            .unwrap();
        for err in [idx.operations().unwrap_err(), idx.audit_events().unwrap_err()] {
            assert!(
                err.to_string().contains("the index holds a value otapub cannot read"),
                "{err}"
            );
            assert!(err.to_string().contains("\"teleport\" is unknown"), "{err}");
        }
    }

    #[test]
    fn a_directive_body_digest_that_is_not_one_reads_back_as_a_damaged_index() {
        let idx = Index::open(None, None).unwrap();
        let pointer = PointerId {
            channel: "production".parse().unwrap(),
            platform: Platform::Ios,
            fingerprint: "1.0.0".parse().unwrap(),
        };
        let insert = |digest: &str| {
            idx.conn()
                .execute(
                    "INSERT OR REPLACE INTO pointer_directives (channel, platform, fingerprint, signatures, body_sha256)
                     VALUES ('production', 'ios', '1.0.0', '{\"dsse\":[]}', ?1)",
                    [digest],
                )
                .unwrap();
        };
        insert(&Sha256Digest::of(b"body").to_hex());
        let d = idx.pointer_directive(&pointer).unwrap().unwrap();
        assert_eq!(d.body_sha256, Sha256Digest::of(b"body"));
        insert("not-a-digest");
        let err = idx.pointer_directive(&pointer).unwrap_err();
        assert!(
            err.to_string().contains("the index holds a value otapub cannot read"),
            "{err}"
        );
    }
}
