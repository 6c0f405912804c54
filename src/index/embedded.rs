//! The SQL of embedded patch bases.

use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::error::Result;
use crate::model::{EmbeddedBase, SignedRecord};
use crate::names::Platform;

fn read(
    (platform, fingerprint, update_id, sha, record, sigs): (String, String, String, String, Vec<u8>, String),
) -> Result<EmbeddedBase> {
    Ok(EmbeddedBase {
        platform: platform.parse().map_err(corrupt)?,
        fingerprint: fingerprint.parse().map_err(corrupt)?,
        update_id,
        launch_asset: sha.parse().map_err(corrupt)?,
        record: SignedRecord {
            payload: record,
            signatures: serde_json::from_str(&sigs).map_err(corrupt)?,
        },
    })
}

const SELECT: &str = "SELECT e.platform, e.fingerprint, e.update_id, a.sha256, e.record, e.signatures
    FROM embedded_bases e JOIN assets a ON a.id = e.launch_asset";

/// The embedded base with this update id on a platform.
pub fn embedded_base(conn: &Connection, platform: Platform, update_id: &str) -> Result<Option<EmbeddedBase>> {
    conn.query_row(
        &format!("{SELECT} WHERE e.platform = ?1 AND e.update_id = ?2"),
        params![platform.as_str(), update_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )
    .optional()?
    .map(read)
    .transpose()
}

/// Every embedded base, by platform, fingerprint and id.
pub fn embedded_bases(conn: &Connection) -> Result<Vec<EmbeddedBase>> {
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY e.platform, e.fingerprint, e.update_id"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(read).collect()
}

/// Records an embedded base (its launch asset must be recorded first).
pub fn insert_embedded_base(
    conn: &Connection,
    e: &EmbeddedBase,
    added_at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO embedded_bases (platform, fingerprint, update_id, launch_asset, added_at, record, signatures)
         VALUES (?1, ?2, ?3, (SELECT id FROM assets WHERE sha256 = ?4), ?5, ?6, ?7)",
        params![
            e.platform.as_str(),
            e.fingerprint.as_str(),
            e.update_id,
            e.launch_asset.to_hex(),
            to_ms(added_at),
            e.record.payload,
            serde_json::to_string(&e.record.signatures).expect("signatures serialize"),
        ],
    )?;
    Ok(())
}
