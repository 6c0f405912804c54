//! An asset of a bundle, by content hash.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;

/// One asset of a bundle as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRef {
    /// SHA-256 of the bytes; its hex is the object name under `assets/`.
    pub sha256: Sha256Digest,
    /// The Metro md5 key (for the launch asset, the md5 of its bytes).
    pub key: String,
    /// Extension without the dot.
    pub ext: String,
}
