//! BSDIFF40 patches of launch assets (SPEC "Patches for the launch asset"):
//! Colin Percival's format with bzip2 blocks, what the stock client's
//! vendored `bspatch.c` applies. A patch needs no signature: the client
//! checks the patched bytes against the signed `launchAsset.hash` and
//! falls back to the full asset.

use std::io::Cursor;

use crate::error::{Error, Result};

pub mod make;
pub mod plan;

pub use plan::{Pair, Policy};

/// Content-Type of a patch object.
pub const CONTENT_TYPE: &str = "application/octet-stream";

fn failed(what: &str, e: std::io::Error) -> Error {
    Error::Store {
        action: "make a patch",
        key: what.to_string(),
        reason: e.to_string(),
    }
}

/// The BSDIFF40 patch that turns `old` into `new`. The target is searched
/// in fixed 512 KiB chunks on all cores (qbsdiff's `Auto` scheme): the same
/// two inputs give the same bytes.
pub fn make(old: &[u8], new: &[u8]) -> Result<Vec<u8>> {
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(old, new)
        .compare(Cursor::new(&mut patch))
        .map_err(|e| failed("bsdiff", e))?;
    Ok(patch)
}

/// Applies a BSDIFF40 patch to `old` (to check one read back: bytes from
/// the store are input, so a damaged patch is an error, never a panic).
pub fn apply(old: &[u8], patch: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let patcher = qbsdiff::Bspatch::new(patch).map_err(|e| format!("not a BSDIFF40 patch: {e}"))?;
    let mut out = Vec::with_capacity(usize::try_from(patcher.hint_target_size()).unwrap_or(0).min(1 << 30));
    patcher
        .apply(old, Cursor::new(&mut out))
        .map_err(|e| format!("the patch does not apply: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_round_trips_and_damage_is_an_error() {
        let old: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = old.clone();
        new[1000..1010].copy_from_slice(b"0123456789");
        new.extend_from_slice(b"appended");
        let patch = make(&old, &new).unwrap();
        assert_eq!(&patch[..8], b"BSDIFF40");
        assert!(patch.len() < new.len() / 10, "{} bytes", patch.len());
        assert_eq!(apply(&old, &patch).unwrap(), new);
        assert!(apply(&old, b"BSDIFF40 garbage").is_err());
        assert!(apply(&old, &patch[..patch.len() / 2]).is_err());
        assert!(apply(&old, b"").is_err());
    }
}
