//! The signed records beside the packages: an embedded patch base and a
//! build in the field, each with the DSSE record `index rebuild` adopts.

use chrono::{DateTime, Utc};

use super::Signatures;
use crate::digest::Sha256Digest;
use crate::names::{Fingerprint, Platform};

/// A signed record — a rollout's `rollout.json`, a build's, an embedded
/// base's: the exact payload and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Their signatures.
    pub signatures: Signatures,
}

/// A build's embedded update, recorded as a patch base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedBase {
    /// Platform.
    pub platform: Platform,
    /// The runtime version of the build.
    pub fingerprint: Fingerprint,
    /// The embedded update's id, lowercase.
    pub update_id: String,
    /// SHA-256 of its launch asset.
    pub launch_asset: Sha256Digest,
    /// Its signed record.
    pub record: SignedRecord,
}

/// A build recorded as in the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// Platform.
    pub platform: Platform,
    /// Its runtime version.
    pub fingerprint: Fingerprint,
    /// What the build is (store version, CI run, …).
    pub note: Option<String>,
    /// When it was recorded.
    pub added_at: DateTime<Utc>,
    /// Its signed record (`state/builds/`), which `index rebuild` adopts.
    pub record: SignedRecord,
}
