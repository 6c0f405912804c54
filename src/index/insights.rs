//! Insights in the index: daily counters per update, and each device's
//! latest check-in of the last [`DEVICE_DAYS`] days (docs/format.md: `otapub insights`).

use std::collections::{BTreeSet, HashMap};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::insights::derive::{Catalog, Facts, LaunchOf, UpdateKey};
use crate::names::{Platform, PointerId};

/// How many days of per-device rows are kept, counted back from the newest
/// day ingested: a log of an older day still adds downloads, but no longer
/// changes its device figures. CloudFront delivers some log entries up to
/// 24 hours late; each kept row costs about 40 bytes of an index every
/// command downloads, per device and day.
pub const DEVICE_DAYS: i64 = 3;

/// What the index knows that reading logs needs, loaded once.
#[derive(Debug, Default)]
pub struct IndexCatalog {
    pointers: HashMap<String, PointerId>,
    launch: HashMap<String, (u64, Vec<LaunchOf>)>,
    patches: HashMap<(String, String), (u64, u64)>,
}

fn bad(e: impl std::fmt::Display) -> Error {
    super::IndexError::BadInsightsRow { reason: e.to_string() }.into()
}

impl IndexCatalog {
    /// Loads the packages, their launch assets and the kept patches.
    pub fn load(conn: &Connection) -> Result<IndexCatalog> {
        let mut out = IndexCatalog::default();
        let mut stmt = conn.prepare(
            "SELECT p.channel, p.platform, p.fingerprint, lower(p.manifest_id), p.created_at, a.sha256, a.size
             FROM packages p LEFT JOIN assets a ON a.id = p.launch_asset WHERE p.manifest_id IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })?;
        for row in rows {
            let (channel, platform, fingerprint, id, created_ms, sha, size) = row?;
            let pointer = PointerId {
                channel: channel.parse().map_err(bad)?,
                platform: platform.parse::<Platform>().map_err(bad)?,
                fingerprint: fingerprint.parse().map_err(bad)?,
            };
            out.pointers.insert(id.clone(), pointer.clone());
            if let (Some(sha), Some(size)) = (sha, size) {
                let entry = out
                    .launch
                    .entry(sha)
                    .or_insert((u64::try_from(size).unwrap_or(0), Vec::new()));
                entry.1.push(LaunchOf {
                    pointer,
                    update_id: id,
                    created_ms,
                });
            }
        }
        let mut stmt =
            conn.prepare("SELECT requested_id, base_id, size, full_size FROM patches WHERE sha256 IS NOT NULL")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (r, b, size, full) = row?;
            out.patches.insert(
                (r, b),
                (u64::try_from(size).unwrap_or(0), u64::try_from(full).unwrap_or(0)),
            );
        }
        Ok(out)
    }
}

impl Catalog for IndexCatalog {
    fn pointer_of(&self, update_id: &str) -> Option<PointerId> {
        self.pointers.get(update_id).cloned()
    }
    fn launch_asset(&self, sha256_hex: &str) -> Option<(u64, Vec<LaunchOf>)> {
        self.launch.get(sha256_hex).cloned()
    }
    fn patch(&self, requested: &str, base: &str) -> Option<(u64, u64)> {
        self.patches.get(&(requested.to_string(), base.to_string())).copied()
    }
}

/// Whether a log file with these bytes was ingested already.
pub fn log_ingested(conn: &Connection, sha256: &[u8; 32]) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM insight_files WHERE sha256 = ?1", [&sha256[..]], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

/// What one ingested file gave.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct IngestedFile {
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
    /// Its format.
    pub format: String,
    /// Lines read.
    pub lines: u64,
    /// Lines that counted.
    pub used: u64,
    /// Lines that did not parse.
    pub skipped: u64,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn update_row(tx: &Connection, u: &UpdateKey) -> Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO insight_updates (channel, platform, fingerprint, update_id) VALUES (?1, ?2, ?3, ?4)",
        params![
            u.pointer.channel.as_str(),
            u.pointer.platform.as_str(),
            u.pointer.fingerprint.as_str(),
            u.update_id
        ],
    )?;
    Ok(tx.query_row(
        "SELECT id FROM insight_updates WHERE channel = ?1 AND platform = ?2 AND fingerprint = ?3 AND update_id = ?4",
        params![
            u.pointer.channel.as_str(),
            u.pointer.platform.as_str(),
            u.pointer.fingerprint.as_str(),
            u.update_id
        ],
        |r| r.get(0),
    )?)
}

/// Adds what a set of files says, records the files, and recomputes the
/// device figures of the days it touched.
pub fn merge_insights(tx: &Connection, facts: &Facts, files: &[IngestedFile], now_ms: i64) -> Result<()> {
    for f in files {
        tx.execute(
            "INSERT INTO insight_files (sha256, format, lines, used, skipped, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                &f.sha256[..],
                f.format,
                to_i64(f.lines),
                to_i64(f.used),
                to_i64(f.skipped),
                now_ms
            ],
        )?;
    }
    let mut rows: HashMap<UpdateKey, i64> = HashMap::new();
    let mut row_of = |tx: &Connection, u: &UpdateKey| -> Result<i64> {
        if let Some(r) = rows.get(u) {
            return Ok(*r);
        }
        let r = update_row(tx, u)?;
        rows.insert(u.clone(), r);
        Ok(r)
    };
    for ((day, u), d) in &facts.downloads {
        let row = row_of(tx, u)?;
        tx.execute(
            "INSERT INTO insight_daily (day, update_row, downloads, patch_downloads, patch_bytes, patch_full_bytes, full_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (day, update_row) DO UPDATE SET downloads = downloads + excluded.downloads,
               patch_downloads = patch_downloads + excluded.patch_downloads,
               patch_bytes = patch_bytes + excluded.patch_bytes,
               patch_full_bytes = patch_full_bytes + excluded.patch_full_bytes,
               full_bytes = full_bytes + excluded.full_bytes",
            params![
                day,
                row,
                to_i64(d.downloads),
                to_i64(d.patch_downloads),
                to_i64(d.patch_bytes),
                to_i64(d.patch_full_bytes),
                to_i64(d.full_bytes)
            ],
        )?;
    }
    // A day is open when its per-device rows are still kept (within
    // DEVICE_DAYS of the newest day ingested before) or it was never
    // counted: its device figures are (re)computed from those rows. A day
    // counted before whose rows are gone keeps its figures.
    let stored_newest: Option<i64> = tx.query_row("SELECT max(day) FROM insight_header_days", [], |r| r.get(0))?;
    let old_cutoff = stored_newest.map_or(i64::MIN, |n| n - DEVICE_DAYS + 1);
    let mut open = BTreeSet::new();
    for day in &facts.header_days {
        // Known already when the insert finds the day there.
        let known = tx.execute("INSERT OR IGNORE INTO insight_header_days (day) VALUES (?1)", [day])? == 0;
        if *day >= old_cutoff || !known {
            open.insert(*day);
        }
    }
    for ((day, device), c) in &facts.checkins {
        if !open.contains(day) {
            continue;
        }
        let row = row_of(tx, &c.update)?;
        tx.execute(
            "INSERT INTO insight_devices (day, device, seen, update_row) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (day, device) DO UPDATE SET seen = excluded.seen, update_row = excluded.update_row
             WHERE excluded.seen >= insight_devices.seen",
            params![day, &device[..], c.seen_ms, row],
        )?;
    }
    for (day, device, u) in &facts.failures {
        if !open.contains(day) {
            continue;
        }
        let row = row_of(tx, u)?;
        tx.execute(
            "INSERT OR IGNORE INTO insight_failures (day, device, update_row) VALUES (?1, ?2, ?3)",
            params![day, &device[..], row],
        )?;
    }
    for day in &open {
        tx.execute(
            "INSERT OR IGNORE INTO insight_daily (day, update_row)
             SELECT ?1, update_row FROM insight_devices WHERE day = ?1
             UNION SELECT ?1, update_row FROM insight_failures WHERE day = ?1",
            [day],
        )?;
        tx.execute(
            "UPDATE insight_daily SET
               devices = (SELECT count(*) FROM insight_devices d WHERE d.day = insight_daily.day AND d.update_row = insight_daily.update_row),
               failed_devices = (SELECT count(*) FROM insight_failures f WHERE f.day = insight_daily.day AND f.update_row = insight_daily.update_row)
             WHERE day = ?1",
            [day],
        )?;
    }
    let newest = facts.header_days.iter().copied().chain(stored_newest).max();
    let cutoff = newest.map_or(i64::MIN, |n| n - DEVICE_DAYS + 1);
    tx.execute("DELETE FROM insight_devices WHERE day < ?1", [cutoff])?;
    tx.execute("DELETE FROM insight_failures WHERE day < ?1", [cutoff])?;
    Ok(())
}

/// One update's figures on one day.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InsightRow {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Channel.
    pub channel: String,
    /// Platform.
    pub platform: String,
    /// Runtime version.
    pub runtime_version: String,
    /// The update's id.
    pub update_id: String,
    /// Its version, when it is a package otapub published (not an embedded update).
    pub version: Option<String>,
    /// Launch-asset downloads that succeeded, patches included.
    pub downloads: u64,
    /// Of those, patches.
    pub patch_downloads: u64,
    /// Bytes sent as patches.
    pub patch_bytes: u64,
    /// What those patch downloads would have sent as full launch assets.
    pub patch_full_bytes: u64,
    /// Bytes sent as full launch assets.
    pub full_bytes: u64,
    /// Devices whose latest check-in of the day reports running it; null
    /// when no log of the day recorded request headers.
    pub devices: Option<u64>,
    /// Devices that reported it failed to launch; null likewise.
    pub failed_devices: Option<u64>,
}

/// The rows of days from `from_day` on, newest day first.
pub fn insight_rows(conn: &Connection, from_day: i64) -> Result<Vec<InsightRow>> {
    let mut stmt = conn.prepare(
        "SELECT d.day, u.channel, u.platform, u.fingerprint, u.update_id,
                (SELECT p.version FROM packages p WHERE lower(p.manifest_id) = u.update_id AND p.platform = u.platform),
                d.downloads, d.patch_downloads, d.patch_bytes, d.patch_full_bytes, d.full_bytes, d.devices, d.failed_devices
         FROM insight_daily d JOIN insight_updates u ON u.id = d.update_row
         WHERE d.day >= ?1
         ORDER BY d.day DESC, u.channel, u.platform, u.fingerprint, d.downloads DESC, u.update_id",
    )?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let rows = stmt.query_map([from_day], |r| {
        let day: i64 = r.get(0)?;
        Ok(InsightRow {
            day: chrono::DateTime::from_timestamp(day * 86_400, 0)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            channel: r.get(1)?,
            platform: r.get(2)?,
            runtime_version: r.get(3)?,
            update_id: r.get(4)?,
            version: r.get(5)?,
            downloads: n(r.get(6)?),
            patch_downloads: n(r.get(7)?),
            patch_bytes: n(r.get(8)?),
            patch_full_bytes: n(r.get(9)?),
            full_bytes: n(r.get(10)?),
            devices: r.get::<_, Option<i64>>(11)?.map(n),
            failed_devices: r.get::<_, Option<i64>>(12)?.map(n),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The gate's reading from what was ingested: distinct devices (over the
/// kept days) that reported the candidate failed, and those that reported
/// it as current or failed.
pub fn insight_gate(conn: &Connection, candidate_id: &str) -> Result<(u64, u64)> {
    let id = candidate_id.to_ascii_lowercase();
    let failed: i64 = conn.query_row(
        "SELECT count(DISTINCT f.device) FROM insight_failures f JOIN insight_updates u ON u.id = f.update_row WHERE u.update_id = ?1",
        [&id],
        |r| r.get(0),
    )?;
    let total: i64 = conn.query_row(
        "SELECT count(*) FROM (
           SELECT d.device FROM insight_devices d JOIN insight_updates u ON u.id = d.update_row WHERE u.update_id = ?1
           UNION SELECT f.device FROM insight_failures f JOIN insight_updates u ON u.id = f.update_row WHERE u.update_id = ?1)",
        [&id],
        |r| r.get(0),
    )?;
    Ok((u64::try_from(failed).unwrap_or(0), u64::try_from(total).unwrap_or(0)))
}
