//! The SQL of launch-asset patches: one row per (requested update, base
//! update) pair otapub diffed, kept or not.

use rusqlite::{params, Connection};

use super::corrupt;
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::model::PatchRow;

fn digest(bytes: Vec<u8>) -> Result<Sha256Digest> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| corrupt(format!("a patch digest has {} bytes", b.len())))?;
    Ok(Sha256Digest::from_bytes(arr))
}

type Raw = (String, String, Vec<u8>, Vec<u8>, Option<i64>, i64, Option<Vec<u8>>);

fn read((requested_id, base_id, target, base, size, full_size, kept): Raw) -> Result<PatchRow> {
    Ok(PatchRow {
        requested_id,
        base_id,
        target: digest(target)?,
        base: digest(base)?,
        size: size.map(u64::try_from).transpose().map_err(corrupt)?,
        full_size: u64::try_from(full_size).map_err(corrupt)?,
        kept: kept.map(digest).transpose()?,
    })
}

/// Every patch row, by requested id and base id.
pub fn patches(conn: &Connection) -> Result<Vec<PatchRow>> {
    let mut stmt = conn.prepare(
        "SELECT requested_id, base_id, target, base, size, full_size, sha256 FROM patches ORDER BY requested_id, base_id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<Raw>>>()?;
    rows.into_iter().map(read).collect()
}

/// Records a diffed pair (a pair recorded already is left as it is: the
/// same two bundles give the same patch).
pub fn insert_patch(conn: &Connection, p: &PatchRow) -> Result<()> {
    conn.execute(
        "INSERT INTO patches (requested_id, base_id, target, base, size, full_size, sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        params![
            p.requested_id,
            p.base_id,
            p.target.as_bytes().as_slice(),
            p.base.as_bytes().as_slice(),
            p.size.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            i64::try_from(p.full_size).unwrap_or(i64::MAX),
            p.kept.as_ref().map(|d| d.as_bytes().to_vec()),
        ],
    )?;
    Ok(())
}

/// Forgets a pair (`gc`, once nobody can ask for it).
pub fn delete_patch(conn: &Connection, requested_id: &str, base_id: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM patches WHERE requested_id = ?1 AND base_id = ?2",
        params![requested_id, base_id],
    )?;
    Ok(())
}
