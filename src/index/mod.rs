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
use crate::store::{CondPut, ObjectMeta, Precondition, Store, INDEX_KEY};

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

/// From milliseconds since the epoch.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// SHA-256 hex of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The index, open on a private copy.
pub struct Index {
    conn: Connection,
    file: tempfile::NamedTempFile,
    etag: Option<String>,
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
        let mut file = tempfile::Builder::new()
            .prefix("otapub-index-")
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
        let mut conn = Connection::open(file.path())?;
        // Cheap validity check: reading the schema fails on anything but a
        // SQLite database. (A full quick_check reads every page: too slow for
        // a large index on every command; `otapub check` is where to look.)
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
            .map_err(|e| {
                Error::IndexContent(format!(
                "{INDEX_KEY} is not a readable SQLite database ({e}); restore it with `otapub index rebuild --force`"
            ))
            })?;
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA foreign_keys = ON;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = schema::MIGRATIONS.len() as i64;
        if version > known {
            return Err(Error::IndexContent(format!(
                "the index has schema version {version}, newer than this otapub knows ({known}); upgrade otapub"
            )));
        }
        if version < known {
            let tx = conn.transaction()?;
            for m in &schema::MIGRATIONS[version as usize..] {
                tx.execute_batch(m)?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {known}"))?;
            tx.commit()?;
        }
        Ok(Index { conn, file, etag })
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
        let meta = ObjectMeta {
            content_type: "application/vnd.sqlite3".into(),
            cache_control: "no-store".into(),
        };
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
            "INSERT INTO operations (kind, actor, state, started_at, updated_at) VALUES (?1, ?2, 'pending', ?3, ?3)",
            params![kind, actor, now_ms],
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
        Ok(out)
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
                time: crate::manifest::format_time(from_ms(time)),
                actor,
                action,
                target,
                details: serde_json::from_str(&details).map_err(corrupt)?,
            });
        }
        Ok(out)
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
    p.banned_at, p.ban_reason, p.banned_by, a.bytes, e.bytes";

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
                at: from_ms(at),
                reason,
                by,
            }),
            _ => None,
        };
        Ok(Package {
            id: self.id,
            pointer,
            version: Version::derived(self.version),
            created_at: from_ms(self.created_at),
            restamp_of: self.restamp_of.map(Version::derived),
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
            base_url, launch_asset, launch_key, asset_list, expo_config, content_hash, signatures, body_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, (SELECT id FROM assets WHERE sha256 = ?11), ?12, ?13, ?14,
                 unhex(?15), ?16, unhex(?17))",
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
    Ok(ms.map(from_ms))
}
