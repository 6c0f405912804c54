//! The SQL of delta bytecode: the JS each published launch asset was
//! compiled from, and by which compiler.

use rusqlite::{params, Connection, OptionalExtension};

use super::corrupt;
use crate::digest::Sha256Digest;
use crate::error::Result;

/// The JS a launch asset was compiled from (its SHA-256) and the
/// compiler's identity, when otapub compiled it.
pub fn bytecode_source(conn: &Connection, launch_asset: &Sha256Digest) -> Result<Option<(Sha256Digest, String)>> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT js_sha256, compiler FROM bytecode_sources WHERE launch_asset = ?1",
            params![launch_asset.to_hex()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(js, compiler)| {
        Ok((
            js.parse().map_err(|e| corrupt(format!("bytecode source {e}")))?,
            compiler,
        ))
    })
    .transpose()
}

/// Records the JS a launch asset was compiled from (the first record stays).
pub fn put_bytecode_source(
    conn: &Connection,
    launch_asset: &Sha256Digest,
    js_sha256: &Sha256Digest,
    compiler: &str,
) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO bytecode_sources (launch_asset, js_sha256, compiler) VALUES (?1, ?2, ?3)",
        params![launch_asset.to_hex(), js_sha256.to_hex(), compiler],
    )?;
    Ok(())
}
