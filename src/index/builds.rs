//! The SQL of the builds in the field (`otapub builds add`): which
//! (platform, runtime version) pairs an installed app can ask for, so a
//! publish to one that none has is caught.

use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::error::Result;
use crate::model::{Build, SignedRecord};
use crate::names::{Fingerprint, Platform};

type Row = (String, String, Option<String>, i64, Vec<u8>, String);

fn read((platform, fingerprint, note, added_at, record, sigs): Row) -> Result<Build> {
    Ok(Build {
        platform: platform.parse().map_err(corrupt)?,
        fingerprint: fingerprint.parse().map_err(corrupt)?,
        note,
        added_at: from_ms(added_at)?,
        record: SignedRecord {
            payload: record,
            signatures: serde_json::from_str(&sigs).map_err(corrupt)?,
        },
    })
}

const SELECT: &str = "SELECT platform, fingerprint, note, added_at, record, signatures FROM builds";

/// The build recorded for a platform and runtime version.
pub fn build(conn: &Connection, platform: Platform, fingerprint: &Fingerprint) -> Result<Option<Build>> {
    conn.query_row(
        &format!("{SELECT} WHERE platform = ?1 AND fingerprint = ?2"),
        params![platform.as_str(), fingerprint.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )
    .optional()?
    .map(read)
    .transpose()
}

/// Every recorded build, by platform and runtime version.
pub fn builds(conn: &Connection) -> Result<Vec<Build>> {
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY platform, fingerprint"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?
        .collect::<rusqlite::Result<Vec<Row>>>()?;
    rows.into_iter().map(read).collect()
}

/// Records a build, replacing the record of the same platform and runtime version.
pub fn put_build(conn: &Connection, b: &Build) -> Result<()> {
    conn.execute(
        "INSERT INTO builds (platform, fingerprint, note, added_at, record, signatures)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (platform, fingerprint) DO UPDATE SET
             note = excluded.note, added_at = excluded.added_at,
             record = excluded.record, signatures = excluded.signatures",
        params![
            b.platform.as_str(),
            b.fingerprint.as_str(),
            b.note,
            to_ms(b.added_at),
            b.record.payload,
            serde_json::to_string(&b.record.signatures).expect("signatures serialize"),
        ],
    )?;
    Ok(())
}
