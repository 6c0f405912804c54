//! The SQL of each record: reading and writing packages, bans, assets,
//! pointer directives and settings inside a transaction. Everything here
//! takes a connection, so the commands' transactions compose them.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::*;
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::model::{
    AssetRef, Ban, Bundle, ManifestFormat, Package, PackageContent, PackageDraft, PackageKind, ServedExpo,
    StoredDirective,
};
use crate::names::{Channel, Fingerprint, Platform, PointerId, Version};

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

pub(super) const PACKAGE_COLUMNS: &str =
    "p.id, p.channel, p.platform, p.fingerprint, p.version, p.kind, p.manifest_id, p.created_at,
    p.restamp_of, p.message, p.base_url, la.sha256, p.launch_key, lower(hex(p.content_hash)), p.signatures, lower(hex(p.body_sha256)),
    p.banned_at, p.ban_reason, p.banned_by, a.bytes, e.bytes, p.format, r.at,
    s.signature, s.chain, s.body_sha256";

pub(super) struct RawPackage {
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
    retired_at: Option<i64>,
    served: Option<(String, Option<String>, String)>,
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
            retired_at: r.get(22)?,
            served: match r.get::<_, Option<String>>(23)? {
                Some(sig) => Some((sig, r.get(24)?, r.get(25)?)),
                None => None,
            },
        })
    }

    fn into_package(self, lists: &mut HashMap<Vec<u8>, Vec<AssetRef>>) -> Result<Package> {
        let pointer = PointerId {
            channel: self.channel.parse::<Channel>().map_err(corrupt)?,
            platform: self.platform.parse().map_err(corrupt)?,
            fingerprint: self.fingerprint.parse::<Fingerprint>().map_err(corrupt)?,
        };
        let kind: PackageKind = self.kind.parse().map_err(corrupt)?;
        let content = match (
            kind,
            self.manifest_id,
            self.base_url,
            self.launch_asset,
            self.launch_key,
            self.asset_list,
        ) {
            (PackageKind::Update, Some(manifest_id), Some(base_url), Some(sha256), Some(key), Some(list)) => {
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
                            sha256: sha256.parse().map_err(|e| corrupt(format!("launch asset {e}")))?,
                            key,
                            ext: "bundle".into(),
                        },
                        assets,
                        expo_config,
                    },
                }
            }
            (PackageKind::RollBackToEmbedded, ..) => PackageContent::RollBackToEmbedded,
            (PackageKind::Update, ..) => {
                return Err(corrupt(format!(
                    "package {} of kind {} is incomplete",
                    self.version,
                    kind.as_str()
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
        let draft = PackageDraft {
            pointer,
            version: Version::stored(&self.version).map_err(corrupt)?,
            created_at: from_ms(self.created_at)?,
            restamp_of: self
                .restamp_of
                .as_deref()
                .map(Version::stored)
                .transpose()
                .map_err(corrupt)?,
            format: format_from_column(self.format)?,
            message: self.message,
            content,
            content_hash: self
                .content_hash
                .parse()
                .map_err(|e| corrupt(format!("content hash {e}")))?,
        };
        // Read back from the index: signed when it was recorded.
        let signatures = serde_json::from_str(&self.signatures).map_err(corrupt)?;
        let body_sha256 = self.body_sha256.parse().map_err(|e| corrupt(format!("body {e}")))?;
        let mut p = Package::signed(draft, signatures, body_sha256);
        p.id = self.id;
        p.ban = ban;
        p.retired = self.retired_at.map(from_ms).transpose()?;
        p.served = match self.served {
            Some((signature, chain, body_sha256)) => Some(ServedExpo {
                signature,
                chain,
                body_sha256: body_sha256.parse().map_err(|e| corrupt(format!("served body {e}")))?,
            }),
            None => None,
        };
        Ok(p)
    }
}

/// A manifest format as the `format` column holds it.
fn format_from_column(v: i64) -> Result<ManifestFormat> {
    match v {
        1 => Ok(ManifestFormat::V1),
        2 => Ok(ManifestFormat::V2),
        other => Err(corrupt(format!("manifest format {other} is unknown"))),
    }
}

fn format_column(f: ManifestFormat) -> i64 {
    match f {
        ManifestFormat::V1 => 1,
        ManifestFormat::V2 => 2,
    }
}

pub(super) fn query_packages<P: rusqlite::Params>(conn: &Connection, filter: &str, params: P) -> Result<Vec<Package>> {
    let sql = format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages p
         LEFT JOIN assets la ON la.id = p.launch_asset
         LEFT JOIN blobs a ON a.id = p.asset_list
         LEFT JOIN blobs e ON e.id = p.expo_config
         LEFT JOIN retired r ON r.package = p.id
         LEFT JOIN expo_served s ON s.package = p.id
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
            body_sha256: b.parse().map_err(|e| corrupt(format!("directive body {e}")))?,
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
            d.body_sha256.to_hex()
        ],
    )?;
    Ok(())
}

/// Forgets an asset gc is about to delete: the next publish that needs it
/// asks the store (and uploads it) instead of trusting the index.
pub fn forget_asset(conn: &Connection, sha256: &Sha256Digest) -> Result<()> {
    // A retired package still names its launch asset: its row stays, marked.
    let named = "SELECT launch_asset FROM packages WHERE launch_asset IS NOT NULL
                 UNION SELECT launch_asset FROM embedded_bases";
    let sha256 = sha256.to_hex();
    conn.execute(
        &format!("UPDATE assets SET deleted = 1 WHERE sha256 = ?1 AND id IN ({named})"),
        [&sha256],
    )?;
    conn.execute(
        &format!("DELETE FROM assets WHERE sha256 = ?1 AND id NOT IN ({named})"),
        [&sha256],
    )?;
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
pub fn put_asset(conn: &Connection, sha256: &Sha256Digest, size: u64, content_type: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO assets (sha256, size, content_type) VALUES (?1, ?2, ?3)
         ON CONFLICT (sha256) DO UPDATE SET deleted = NULL",
        params![sha256.to_hex(), size as i64, content_type],
    )?;
    Ok(())
}

/// Stores a shared blob once; returns its row id.
pub(super) fn put_blob(conn: &Connection, bytes: &[u8]) -> Result<i64> {
    let h = Sha256Digest::of(bytes).to_hex();
    conn.execute(
        "INSERT INTO blobs (sha256, bytes) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![h, bytes],
    )?;
    Ok(conn.query_row("SELECT id FROM blobs WHERE sha256 = ?1", [h], |r| r.get(0))?)
}

/// Records a new package.
pub fn insert_package(conn: &Connection, p: &Package) -> Result<i64> {
    let (manifest_id, base_url, launch_asset, launch_key, asset_list, expo_config) = match &p.content {
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
                Some(manifest_id.as_str()),
                Some(base_url.as_str()),
                Some(bundle.launch.sha256.to_hex()),
                Some(bundle.launch.key.as_str()),
                Some(put_blob(conn, &list)?),
                config,
            )
        }
        PackageContent::RollBackToEmbedded => (None, None, None, None, None, None),
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
            p.kind().as_str(),
            manifest_id,
            to_ms(p.created_at),
            p.restamp_of.as_ref().map(Version::as_str),
            p.message,
            base_url,
            launch_asset,
            launch_key,
            asset_list,
            expo_config,
            p.content_hash.to_hex(),
            serde_json::to_string(p.signatures()).expect("signatures serialize"),
            p.body_sha256().to_hex(),
            format_column(p.format),
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

/// Ends the operation an invocation left `running` (by its id, `ID:kind`):
/// `succeeded` now, or `failed` with `error`. False when it is not running
/// any more (a sweep failed it).
pub fn end_operation(conn: &Connection, op_id: &str, now: DateTime<Utc>, error: Option<&str>) -> Result<bool> {
    let n = conn.execute(
        "UPDATE operations SET state = CASE WHEN ?3 IS NULL THEN 'succeeded' ELSE 'failed' END, error = ?3, updated_at = ?2
         WHERE op_id = ?1 AND state = 'running'",
        params![op_id, to_ms(now), error],
    )?;
    Ok(n > 0)
}

/// Marks an operation that is still pending or running failed with `error`.
/// False when it has finished meanwhile.
pub fn fail_operation(conn: &Connection, id: i64, now: DateTime<Utc>, error: &str) -> Result<bool> {
    let n = conn.execute(
        "UPDATE operations SET state = 'failed', error = ?3, updated_at = ?2 WHERE id = ?1 AND state IN ('pending', 'running')",
        params![id, to_ms(now), error],
    )?;
    Ok(n > 0)
}

/// Retires a package (`gc --keep`): recorded once, never undone.
pub fn retire_package(conn: &Connection, id: i64, at: DateTime<Utc>, keep: usize) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO retired (package, at, keep) VALUES (?1, ?2, ?3)",
        params![id, to_ms(at), keep as i64],
    )?;
    Ok(())
}

/// Records the Expo layer pointers serve for a package (`otapub refresh`).
pub fn set_served_expo(conn: &Connection, package: i64, served: &ServedExpo) -> Result<()> {
    conn.execute(
        "INSERT INTO expo_served (package, signature, chain, body_sha256) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (package) DO UPDATE SET signature = ?2, chain = ?3, body_sha256 = ?4",
        params![package, served.signature, served.chain, served.body_sha256.to_hex()],
    )?;
    Ok(())
}
