//! Launch-asset patches: each (requested update, base update) pair otapub
//! diffed, kept or not, and where a kept one lives.

use crate::digest::Sha256Digest;

/// One diffed pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRow {
    /// Manifest id of the update a device downloads (lowercase).
    pub requested_id: String,
    /// Id of the update the device runs (lowercase): a package's manifest id
    /// or an embedded update's id.
    pub base_id: String,
    /// SHA-256 of the requested update's launch asset.
    pub target: Sha256Digest,
    /// SHA-256 of the base's launch asset.
    pub base: Sha256Digest,
    /// Bytes of the patch; `None` when the two bundles share almost nothing
    /// and were not diffed.
    pub size: Option<u64>,
    /// Bytes of the requested launch asset.
    pub full_size: u64,
    /// SHA-256 of the patch when it is kept as `public/patches/R/B`; `None`
    /// when it was too large to be worth it.
    pub kept: Option<Sha256Digest>,
}

impl PatchRow {
    /// Where a kept patch lives.
    pub fn key(&self) -> String {
        patch_key(&self.requested_id, &self.base_id)
    }
}

/// The key of the patch from base `base_id` to update `requested_id`.
pub fn patch_key(requested_id: &str, base_id: &str) -> String {
    format!("public/patches/{requested_id}/{base_id}")
}
