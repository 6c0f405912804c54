//! The SQLite index: packages, bans, re-stamps, pointer directives, audit
//! events and operations. It lives in the store as one object; a mutating
//! command downloads it, changes it in one transaction and writes it back
//! only if nobody else wrote it since (the commit point of SPEC).

pub mod live;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::AssetRef;
use crate::names::{Channel, Fingerprint, Platform, PointerId, Version};
use crate::signing::{hex, Signatures};
use crate::store::{litter, CondPut, ObjectMeta, Precondition, Store, INDEX_KEY};

/// A ban: reason, actor and time, all three or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// When.
    pub at: DateTime<Utc>,
    /// Why (never blank).
    pub reason: String,
    /// Who.
    pub by: String,
}

/// The content of an update: its launch asset and assets, by hash.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The launch asset (JavaScript / Hermes bundle).
    pub launch: AssetRef,
    /// The other assets.
    pub assets: Vec<AssetRef>,
    /// Compact JSON of the public app config, or none.
    pub expo_config: Option<Box<RawValue>>,
}

/// What a package serves.
#[derive(Debug, Clone)]
pub enum PackageContent {
    /// An update manifest.
    Update {
        /// The manifest id (UUID).
        manifest_id: String,
        /// Base URL of `public/` the asset URLs were built with.
        base_url: String,
        /// The bundle.
        bundle: Bundle,
    },
    /// A `rollBackToEmbedded` directive whose commitTime is the createdAt.
    RollBackToEmbedded,
}

/// One package, as recorded.
#[derive(Debug, Clone)]
pub struct Package {
    /// Row id.
    pub id: i64,
    /// Where it is published.
    pub pointer: PointerId,
    /// Its version.
    pub version: Version,
    /// createdAt (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// The original, for a re-stamp.
    pub restamp_of: Option<Version>,
    /// Free-text message.
    pub message: Option<String>,
    /// Update or directive.
    pub content: PackageContent,
    /// Hash of what a retried publish must match.
    pub content_hash: String,
    /// The recorded signatures.
    pub signatures: Signatures,
    /// SHA-256 hex of the Expo body the signatures belong to.
    pub body_sha256: String,
    /// Its ban, if any.
    pub ban: Option<Ban>,
    /// How its manifest is laid out (fixed when it was signed).
    pub format: ManifestFormat,
}

/// The layout a package's manifest was signed in. Signed bytes never change,
/// so a package keeps the format it was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// Until otapub 0.1: `launchAsset.fileExtension` present.
    V1,
    /// Current: `launchAsset.fileExtension` omitted, as the Expo spec says it SHOULD be.
    #[default]
    V2,
}

impl ManifestFormat {
    fn from_column(v: i64) -> Result<ManifestFormat> {
        match v {
            1 => Ok(ManifestFormat::V1),
            2 => Ok(ManifestFormat::V2),
            other => Err(corrupt(format!("manifest format {other} is unknown"))),
        }
    }

    fn column(self) -> i64 {
        match self {
            ManifestFormat::V1 => 1,
            ManifestFormat::V2 => 2,
        }
    }
}

impl Package {
    /// The version of the original (itself unless a re-stamp).
    pub fn original(&self) -> &Version {
        self.restamp_of.as_ref().unwrap_or(&self.version)
    }

    /// The bundle, for an update.
    pub fn bundle(&self) -> Option<&Bundle> {
        match &self.content {
            PackageContent::Update { bundle, .. } => Some(bundle),
            PackageContent::RollBackToEmbedded => None,
        }
    }
}

#[derive(serde::Serialize)]
struct UpdateContent<'a> {
    channel: &'a str,
    platform: &'a str,
    fingerprint: &'a str,
    launch: &'a AssetRef,
    assets: &'a [AssetRef],
    expo_config: Option<&'a str>,
    message: Option<&'a str>,
}

/// What a published update is, for telling a retry of the same publish from
/// a different one: pointer, bundle, app config and message.
pub fn update_content_hash(pointer: &PointerId, bundle: &Bundle, message: Option<&str>) -> String {
    let key = UpdateContent {
        channel: pointer.channel.as_str(),
        platform: pointer.platform.as_str(),
        fingerprint: pointer.fingerprint.as_str(),
        launch: &bundle.launch,
        assets: &bundle.assets,
        expo_config: bundle.expo_config.as_deref().map(RawValue::get),
        message,
    };
    sha256_hex(&serde_json::to_vec(&key).expect("content key serializes"))
}

/// The content hash of a re-stamp.
pub fn restamp_content_hash(pointer: &PointerId, version: &Version, original: &Version, at: DateTime<Utc>) -> String {
    sha256_hex(format!("restamp\n{pointer}\n{version}\n{original}\n{}", to_ms(at)).as_bytes())
}

/// The content hash of a rollBackToEmbedded directive.
pub fn directive_content_hash(pointer: &PointerId, at: DateTime<Utc>) -> String {
    sha256_hex(format!("rollBackToEmbedded\n{pointer}\n{}", to_ms(at)).as_bytes())
}

impl Package {
    /// The content hash this package must carry, from its own fields.
    pub fn expected_content_hash(&self) -> String {
        match (&self.content, &self.restamp_of) {
            (PackageContent::RollBackToEmbedded, _) => directive_content_hash(&self.pointer, self.created_at),
            (PackageContent::Update { .. }, Some(original)) => {
                restamp_content_hash(&self.pointer, &self.version, original, self.created_at)
            }
            (PackageContent::Update { bundle, .. }, None) => {
                update_content_hash(&self.pointer, bundle, self.message.as_deref())
            }
        }
    }
}

/// A pointer's stored `noUpdateAvailable` signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDirective {
    /// Signatures over the directive payload.
    pub signatures: Signatures,
    /// SHA-256 hex of the Expo body.
    pub body_sha256: String,
}

/// An audit event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    /// When (createdAt format).
    pub time: String,
    /// Who.
    pub actor: String,
    /// What (`publish`, `ban`, ...).
    pub action: String,
    /// On what (`ios/v1`, a pointer, ...).
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
}

/// A new audit event, before it is recorded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What.
    pub action: &'static str,
    /// On what.
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
}

/// An operation row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Operation {
    /// Row id.
    pub id: i64,
    /// Command.
    pub kind: String,
    /// Who.
    pub actor: String,
    /// pending | running | succeeded | failed.
    pub state: String,
    /// The error of a failed operation.
    pub error: Option<String>,
}

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

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 hex of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

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

/// The outcome of writing the index back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// Committed; the new etag.
    Committed(String),
    /// Another writer committed since this copy was read.
    Conflict,
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::IndexContent(format!(
        "the index holds a value otapub cannot read ({e}); restore it with `otapub index rebuild`"
    ))
}

impl Index {
    /// Downloads the index (an empty one when the store has none) with its etag.
    pub async fn load(store: &dyn Store) -> Result<Index> {
        let obj = store.get(INDEX_KEY).await?;
        let (bytes, etag) = match obj {
            Some(o) => (Some(o.bytes), Some(o.etag)),
            None => (None, None),
        };
        Index::open(bytes.as_deref(), etag)
    }

    /// Opens a copy of index bytes (`None`: a new index) and brings its schema up to date.
    pub fn open(bytes: Option<&[u8]>, etag: Option<String>) -> Result<Index> {
        if bytes.is_some_and(<[u8]>::is_empty) {
            // Taking it for "no index" would let the next commit replace
            // every package, ban and audit event with an index of one.
            return Err(Error::IndexContent(format!(
                "{INDEX_KEY} is empty (0 bytes): it was truncated, not created by otapub; {RECOVER}"
            )));
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
        let unreadable = |e: &dyn std::fmt::Display| {
            Error::IndexContent(format!(
                "{INDEX_KEY} is not a readable SQLite database ({e}); {RECOVER}"
            ))
        };
        let mut conn = Connection::open(file.path())?;
        // Cheap validity check: reading the schema fails on anything but a
        // SQLite database. (A full quick_check reads every page: too slow for
        // a large index on every command; `otapub check` is where to look.)
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
            .map_err(|e| unreadable(&e))?;
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA foreign_keys = ON;")
            .map_err(|e| unreadable(&e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| unreadable(&e))?;
        let known = schema::MIGRATIONS.len();
        let applied = match usize::try_from(version) {
            Ok(0) if bytes.is_some() => {
                return Err(Error::IndexContent(format!(
                    "{INDEX_KEY} is a SQLite database but not an otapub index (schema version 0); \
                     point --store at the right store, or replace it with `otapub index rebuild --force --trust KEY.pub`"
                )))
            }
            Ok(v) if v <= known => v,
            Ok(v) => {
                return Err(Error::IndexContent(format!(
                    "the index has schema version {v}, newer than this otapub knows ({known}); upgrade otapub"
                )))
            }
            Err(_) => {
                return Err(Error::IndexContent(format!(
                    "{INDEX_KEY} has schema version {version}, which no otapub writes; \
                     {RECOVER}"
                )))
            }
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

    /// The etag of the copy this index was read from.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The database bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        std::fs::read(self.file.path()).map_err(Error::file("read", self.file.path().to_path_buf()))
    }

    /// Writes the index back if nobody else wrote it since it was read.
    pub async fn save(&mut self, store: &dyn Store) -> Result<Saved> {
        let bytes = self.to_bytes()?;
        let cond = match &self.etag {
            Some(e) => Precondition::Matches(e.clone()),
            None => Precondition::Absent,
        };
        let meta = ObjectMeta::new("application/vnd.sqlite3", "no-store");
        match store.put_if(INDEX_KEY, bytes, &meta, cond).await? {
            CondPut::Written(etag) => {
                self.etag = Some(etag.clone());
                Ok(Saved::Committed(etag))
            }
            CondPut::Conflict => Ok(Saved::Conflict),
        }
    }

    /// Runs `f` in one transaction that also records the operation (pending →
    /// running → succeeded) and its audit events. On error nothing is kept.
    pub fn transact<T>(
        &mut self,
        kind: &str,
        actor: &str,
        now: DateTime<Utc>,
        f: impl FnOnce(&Connection) -> Result<(T, Vec<NewEvent>)>,
    ) -> Result<T> {
        let tx = self.conn.transaction()?;
        let now_ms = to_ms(now);
        tx.execute(
            "INSERT INTO operations (kind, actor, state, started_at, updated_at, op_id) VALUES (?1, ?2, 'pending', ?3, ?3, ?4)",
            params![kind, actor, now_ms, self.op_id],
        )?;
        let op = tx.last_insert_rowid();
        tx.execute("UPDATE operations SET state = 'running' WHERE id = ?1", [op])?;
        let (out, events) = f(&tx)?;
        for e in events {
            tx.execute(
                "INSERT INTO audit_events (time, actor, action, target, details, operation_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now_ms, actor, e.action, e.target, e.details.to_string(), op],
            )?;
        }
        tx.execute(
            "UPDATE operations SET state = 'succeeded', updated_at = ?2 WHERE id = ?1",
            params![op, now_ms],
        )?;
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
    /// its id, so a retry after a lost response finds it.
    pub fn record_result(&mut self, op_id: &str, output: &str, pointers: &str) -> Result<()> {
        let Some(op) = self.last_operation else {
            return Err(Error::IndexContent(
                "a change was committed without an operation row (an otapub bug)".into(),
            ));
        };
        self.conn.execute(
            "INSERT INTO operation_results (op_id, operation, output, pointers) VALUES (?1, ?2, ?3, ?4)",
            params![op_id, op, output, pointers],
        )?;
        Ok(())
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
    pub fn restamp_pointer(&mut self, pointer: &PointerId, body_sha256: &[u8; 32], generation: u64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO pointer_stamps (channel, platform, fingerprint, body_sha256, generation) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET body_sha256 = excluded.body_sha256, generation = excluded.generation
             WHERE body_sha256 IS NOT excluded.body_sha256",
            params![
                pointer.channel.as_str(),
                pointer.platform.as_str(),
                pointer.fingerprint.as_str(),
                &body_sha256[..],
                i64::try_from(generation).map_err(|_| corrupt("generation out of range"))?
            ],
        )?;
        Ok(())
    }

    /// Records an operation that failed after it started writing.
    pub fn record_failure(&mut self, kind: &str, actor: &str, now: DateTime<Utc>, error: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        let now_ms = to_ms(now);
        tx.execute(
            "INSERT INTO operations (kind, actor, state, started_at, updated_at) VALUES (?1, ?2, 'pending', ?3, ?3)",
            params![kind, actor, now_ms],
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
    pub fn has_asset(&self, sha256: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM assets WHERE sha256 = ?1", [sha256], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Every recorded asset: sha256 → (size, content type).
    pub fn assets(&self) -> Result<BTreeMap<String, (u64, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT sha256, size, content_type FROM assets ORDER BY sha256")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, (r.get::<_, i64>(1)? as u64, r.get(2)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
                action,
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
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind, actor, state, error FROM operations ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(Operation {
                id: r.get(0)?,
                kind: r.get(1)?,
                actor: r.get(2)?,
                state: r.get(3)?,
                error: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Reads a setting.
pub fn get_setting(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Writes a setting.
pub fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

const PACKAGE_COLUMNS: &str =
    "p.id, p.channel, p.platform, p.fingerprint, p.version, p.kind, p.manifest_id, p.created_at,
    p.restamp_of, p.message, p.base_url, la.sha256, p.launch_key, lower(hex(p.content_hash)), p.signatures, lower(hex(p.body_sha256)),
    p.banned_at, p.ban_reason, p.banned_by, a.bytes, e.bytes, p.format";

struct RawPackage {
    id: i64,
    channel: String,
    platform: String,
    fingerprint: String,
    version: String,
    kind: String,
    manifest_id: Option<String>,
    created_at: i64,
    restamp_of: Option<String>,
    message: Option<String>,
    base_url: Option<String>,
    launch_asset: Option<String>,
    launch_key: Option<String>,
    content_hash: String,
    signatures: String,
    body_sha256: String,
    banned_at: Option<i64>,
    ban_reason: Option<String>,
    banned_by: Option<String>,
    asset_list: Option<Vec<u8>>,
    expo_config: Option<Vec<u8>>,
    format: i64,
}

impl RawPackage {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawPackage> {
        Ok(RawPackage {
            id: r.get(0)?,
            channel: r.get(1)?,
            platform: r.get(2)?,
            fingerprint: r.get(3)?,
            version: r.get(4)?,
            kind: r.get(5)?,
            manifest_id: r.get(6)?,
            created_at: r.get(7)?,
            restamp_of: r.get(8)?,
            message: r.get(9)?,
            base_url: r.get(10)?,
            launch_asset: r.get(11)?,
            launch_key: r.get(12)?,
            content_hash: r.get(13)?,
            signatures: r.get(14)?,
            body_sha256: r.get(15)?,
            banned_at: r.get(16)?,
            ban_reason: r.get(17)?,
            banned_by: r.get(18)?,
            asset_list: r.get(19)?,
            expo_config: r.get(20)?,
            format: r.get(21)?,
        })
    }

    fn into_package(self, lists: &mut HashMap<Vec<u8>, Vec<AssetRef>>) -> Result<Package> {
        let pointer = PointerId {
            channel: self.channel.parse::<Channel>().map_err(corrupt)?,
            platform: self.platform.parse().map_err(corrupt)?,
            fingerprint: self.fingerprint.parse::<Fingerprint>().map_err(corrupt)?,
        };
        let content = match (
            self.kind.as_str(),
            self.manifest_id,
            self.base_url,
            self.launch_asset,
            self.launch_key,
            self.asset_list,
        ) {
            ("update", Some(manifest_id), Some(base_url), Some(sha256), Some(key), Some(list)) => {
                let assets = match lists.get(&list) {
                    Some(a) => a.clone(),
                    None => {
                        let a: Vec<AssetRef> = serde_json::from_slice(&list).map_err(corrupt)?;
                        lists.insert(list, a.clone());
                        a
                    }
                };
                let expo_config = match self.expo_config {
                    Some(b) => Some(RawValue::from_string(String::from_utf8(b).map_err(corrupt)?).map_err(corrupt)?),
                    None => None,
                };
                PackageContent::Update {
                    manifest_id,
                    base_url,
                    bundle: Bundle {
                        launch: AssetRef {
                            sha256,
                            key,
                            ext: "bundle".into(),
                        },
                        assets,
                        expo_config,
                    },
                }
            }
            ("rollBackToEmbedded", ..) => PackageContent::RollBackToEmbedded,
            (kind, ..) => {
                return Err(corrupt(format!(
                    "package {} of kind {kind} is incomplete",
                    self.version
                )))
            }
        };
        let ban = match (self.banned_at, self.ban_reason, self.banned_by) {
            (Some(at), Some(reason), Some(by)) => Some(Ban {
                at: from_ms(at)?,
                reason,
                by,
            }),
            _ => None,
        };
        Ok(Package {
            id: self.id,
            pointer,
            version: Version::stored(&self.version).map_err(corrupt)?,
            created_at: from_ms(self.created_at)?,
            restamp_of: self
                .restamp_of
                .as_deref()
                .map(Version::stored)
                .transpose()
                .map_err(corrupt)?,
            format: ManifestFormat::from_column(self.format)?,
            message: self.message,
            content,
            content_hash: self.content_hash,
            signatures: serde_json::from_str(&self.signatures).map_err(corrupt)?,
            body_sha256: self.body_sha256,
            ban,
        })
    }
}

fn query_packages<P: rusqlite::Params>(conn: &Connection, filter: &str, params: P) -> Result<Vec<Package>> {
    let sql = format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages p
         LEFT JOIN assets la ON la.id = p.launch_asset
         LEFT JOIN blobs a ON a.id = p.asset_list
         LEFT JOIN blobs e ON e.id = p.expo_config
         WHERE {filter}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let raws = stmt
        .query_map(params, RawPackage::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut lists = HashMap::new();
    raws.into_iter().map(|r| r.into_package(&mut lists)).collect()
}

/// One package by (platform, version).
pub fn package(conn: &Connection, platform: Platform, version: &Version) -> Result<Option<Package>> {
    Ok(query_packages(
        conn,
        "p.platform = ?1 AND p.version = ?2",
        params![platform.as_str(), version.as_str()],
    )?
    .pop())
}

/// Every package of one pointer, oldest first.
pub fn pointer_packages(conn: &Connection, pointer: &PointerId) -> Result<Vec<Package>> {
    query_packages(
        conn,
        "p.channel = ?1 AND p.platform = ?2 AND p.fingerprint = ?3 ORDER BY p.created_at",
        params![
            pointer.channel.as_str(),
            pointer.platform.as_str(),
            pointer.fingerprint.as_str()
        ],
    )
}

/// A package and every re-stamp of the same original, on one platform.
pub fn family(conn: &Connection, platform: Platform, original: &Version) -> Result<Vec<Package>> {
    query_packages(
        conn,
        "p.platform = ?1 AND (p.version = ?2 OR p.restamp_of = ?2) ORDER BY p.created_at",
        params![platform.as_str(), original.as_str()],
    )
}

/// The next re-stamp number of an original.
pub fn next_restamp_number(conn: &Connection, platform: Platform, original: &Version) -> Result<u32> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM packages WHERE platform = ?1 AND restamp_of = ?2",
        params![platform.as_str(), original.as_str()],
        |r| r.get(0),
    )?;
    Ok(n as u32 + 1)
}

/// The stored noUpdateAvailable directive of a pointer.
pub fn pointer_directive(conn: &Connection, pointer: &PointerId) -> Result<Option<StoredDirective>> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT signatures, body_sha256 FROM pointer_directives WHERE channel = ?1 AND platform = ?2 AND fingerprint = ?3",
            params![pointer.channel.as_str(), pointer.platform.as_str(), pointer.fingerprint.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(s, b)| {
        Ok(StoredDirective {
            signatures: serde_json::from_str(&s).map_err(corrupt)?,
            body_sha256: b,
        })
    })
    .transpose()
}

/// Records a pointer's signed noUpdateAvailable directive.
pub fn put_pointer_directive(conn: &Connection, pointer: &PointerId, d: &StoredDirective) -> Result<()> {
    conn.execute(
        "INSERT INTO pointer_directives (channel, platform, fingerprint, signatures, body_sha256) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO UPDATE SET signatures = excluded.signatures, body_sha256 = excluded.body_sha256",
        params![
            pointer.channel.as_str(),
            pointer.platform.as_str(),
            pointer.fingerprint.as_str(),
            serde_json::to_string(&d.signatures).expect("signatures serialize"),
            d.body_sha256
        ],
    )?;
    Ok(())
}

/// Forgets an asset gc is about to delete: the next publish that needs it
/// asks the store (and uploads it) instead of trusting the index.
pub fn forget_asset(conn: &Connection, sha256: &str) -> Result<()> {
    conn.execute("DELETE FROM assets WHERE sha256 = ?1", [sha256])?;
    Ok(())
}

/// Records a key gc decided to delete.
pub fn set_gc_pending(conn: &Connection, key: &str, at: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "INSERT INTO gc_pending (key, marked_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![key, to_ms(at)],
    )?;
    Ok(())
}

/// Clears a key gc has deleted.
pub fn clear_gc_pending(conn: &Connection, key: &str) -> Result<()> {
    conn.execute("DELETE FROM gc_pending WHERE key = ?1", [key])?;
    Ok(())
}

/// Records that an asset is in the store.
pub fn put_asset(conn: &Connection, sha256: &str, size: u64, content_type: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO assets (sha256, size, content_type) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![sha256, size as i64, content_type],
    )?;
    Ok(())
}

/// Stores a shared blob once; returns its row id.
fn put_blob(conn: &Connection, bytes: &[u8]) -> Result<i64> {
    let h = sha256_hex(bytes);
    conn.execute(
        "INSERT INTO blobs (sha256, bytes) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![h, bytes],
    )?;
    Ok(conn.query_row("SELECT id FROM blobs WHERE sha256 = ?1", [h], |r| r.get(0))?)
}

/// Records a new package.
pub fn insert_package(conn: &Connection, p: &Package) -> Result<i64> {
    let (kind, manifest_id, base_url, launch_asset, launch_key, asset_list, expo_config) = match &p.content {
        PackageContent::Update {
            manifest_id,
            base_url,
            bundle,
        } => {
            let list = serde_json::to_vec(&bundle.assets).expect("asset refs serialize");
            let config = bundle
                .expo_config
                .as_ref()
                .map(|c| put_blob(conn, c.get().as_bytes()))
                .transpose()?;
            (
                "update",
                Some(manifest_id.as_str()),
                Some(base_url.as_str()),
                Some(bundle.launch.sha256.as_str()),
                Some(bundle.launch.key.as_str()),
                Some(put_blob(conn, &list)?),
                config,
            )
        }
        PackageContent::RollBackToEmbedded => ("rollBackToEmbedded", None, None, None, None, None, None),
    };
    conn.execute(
        "INSERT INTO packages (channel, platform, fingerprint, version, kind, manifest_id, created_at, restamp_of, message,
            base_url, launch_asset, launch_key, asset_list, expo_config, content_hash, signatures, body_sha256, format)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, (SELECT id FROM assets WHERE sha256 = ?11), ?12, ?13, ?14,
                 unhex(?15), ?16, unhex(?17), ?18)",
        params![
            p.pointer.channel.as_str(),
            p.pointer.platform.as_str(),
            p.pointer.fingerprint.as_str(),
            p.version.as_str(),
            kind,
            manifest_id,
            to_ms(p.created_at),
            p.restamp_of.as_ref().map(Version::as_str),
            p.message,
            base_url,
            launch_asset,
            launch_key,
            asset_list,
            expo_config,
            p.content_hash,
            serde_json::to_string(&p.signatures).expect("signatures serialize"),
            p.body_sha256,
            p.format.column(),
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Bans one package row.
pub fn ban_package(conn: &Connection, id: i64, ban: &Ban) -> Result<()> {
    conn.execute(
        "UPDATE packages SET banned_at = ?2, ban_reason = ?3, banned_by = ?4 WHERE id = ?1 AND banned_at IS NULL",
        params![id, to_ms(ban.at), ban.reason, ban.by],
    )?;
    Ok(())
}

/// The newest createdAt on a pointer, banned packages included.
pub fn newest_created_at(conn: &Connection, pointer: &PointerId) -> Result<Option<DateTime<Utc>>> {
    let ms: Option<i64> = conn.query_row(
        "SELECT max(created_at) FROM packages WHERE channel = ?1 AND platform = ?2 AND fingerprint = ?3",
        params![
            pointer.channel.as_str(),
            pointer.platform.as_str(),
            pointer.fingerprint.as_str()
        ],
        |r| r.get(0),
    )?;
    ms.map(from_ms).transpose()
}
