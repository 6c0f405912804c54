//! One use-case function per command. Each mutating command follows the
//! commit protocol of docs/format.md: read the index, apply its change in one
//! transaction, write assets and immutable objects, write the index back only
//! if nobody else did meanwhile (the commit point), then write the pointers it
//! affected and re-check that no later commit made them stale.

pub mod ban;
pub mod builds;
pub mod check;
pub mod diff;
pub mod embedded;
mod error;
pub mod gc;
pub mod insights;
pub mod log;
pub mod operations;
pub mod publish;
pub mod rebuild;
pub mod refresh;
pub mod regenerate;
pub mod report;
pub mod restamp;
pub mod rollout;
pub mod status;
pub mod steps;
pub mod verify;

use chrono::{DateTime, Duration, Utc};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::index;
use crate::model::{Package, PackageDraft, StoredDirective};
use crate::names::PointerId;
use crate::signing::Signer;
use crate::tree::{self, PublicObject};

pub use error::OpError;

pub use crate::commit::{
    commit, full_view, pointer_view, probe_ahead, AssetUpload, Clock, Context, Plan, MAX_ATTEMPTS, UPLOAD_CONCURRENCY,
};

/// A createdAt strictly newer than `newest` on the pointer, whatever the clock says.
pub fn next_created_at(now: DateTime<Utc>, newest: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match newest {
        Some(n) if n >= now => n + Duration::milliseconds(1),
        _ => now,
    }
}

/// A canonical UUID derived from what makes a package unique, so the same
/// inputs always give the same manifest.
pub fn derive_manifest_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"otapub manifest id");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Signs a pointer's noUpdateAvailable directive once, when it has packages but none live.
pub(crate) fn ensure_no_update_directive(conn: &Connection, signer: &Signer, pointer: &PointerId) -> Result<()> {
    let packages = index::pointer_packages(conn, pointer)?;
    let rollout = index::latest_rollout(conn, pointer)?;
    if packages.is_empty() || index::live::live_package(&packages, rollout.as_ref()).is_some() {
        return Ok(());
    }
    if index::pointer_directive(conn, pointer)?.is_some() {
        return Ok(());
    }
    let payload = tree::no_update_payload(pointer);
    let signatures = signer.sign_payload(&payload);
    let body_sha256 = Sha256Digest::of(&tree::signed_pair(&payload, &signatures).body);
    index::put_pointer_directive(
        conn,
        pointer,
        &StoredDirective {
            signatures,
            body_sha256,
        },
    )
}

/// Signs and records a new package; returns it with its immutable objects.
pub fn stamp(conn: &Connection, signer: &Signer, draft: PackageDraft) -> Result<(Package, [PublicObject; 2])> {
    let payload = tree::package_payload(&draft);
    let signatures = signer.sign_payload(&payload);
    let body_sha256 = Sha256Digest::of(&tree::signed_pair(&payload, &signatures).body);
    let mut p = Package::signed(draft, signatures, body_sha256);
    p.id = index::insert_package(conn, &p)?;
    let objects = tree::package_objects(&p)?;
    Ok((p, objects))
}

/// The base URL recorded in the index, for commands that make new manifests.
pub(crate) fn recorded_base_url(conn: &Connection) -> Result<String> {
    index::get_setting(conn, BASE_URL_SETTING)?.ok_or_else(|| OpError::NoRecordedBaseUrl.into())
}

/// Settings key of the public base URL.
pub const BASE_URL_SETTING: &str = "base_url";
