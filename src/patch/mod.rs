//! BSDIFF40 patches of launch assets (docs/format.md):
//! Colin Percival's format with bzip2 blocks, what the stock client's
//! vendored `bspatch.c` applies. A patch needs no signature: the client
//! checks the patched bytes against the signed `launchAsset.hash` and
//! falls back to the full asset.

use std::io::Cursor;

use crate::error::{Error, Result};

pub mod make;
pub mod plan;

pub use plan::{Pair, Policy, PolicyError};

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

/// How much of `new` is found in `old`, from 0 to 1, estimated from
/// content-defined samples (a gear rolling hash over 16-byte windows, one
/// sample every ~64 bytes on average): linear time, a few milliseconds for
/// a Hermes bundle. Hermes bytecode shifts offsets everywhere, so exact
/// windows undercount what bsdiff's approximate matches find: two releases
/// of one app score about 0.5, a build's embedded bundle against an export
/// of the same app 0.17 (its patch is still 27 % of the file), an iOS
/// against an Android bundle 0.34; unrelated bytes score 0, and diffing them
/// would cost a suffix array for a patch no smaller than the file.
pub fn resemblance(old: &[u8], new: &[u8]) -> f64 {
    let have = samples(old);
    let want = samples(new);
    if want.is_empty() {
        return if old == new { 1.0 } else { 0.0 };
    }
    let found = want.iter().filter(|h| have.contains(h)).count();
    found as f64 / want.len() as f64
}

/// Below this resemblance, a pair is not diffed at all.
pub const MIN_RESEMBLANCE: f64 = 0.05;

fn samples(bytes: &[u8]) -> std::collections::HashSet<u64> {
    // Gear table: a fixed pseudo-random u64 per byte value (splitmix64).
    const fn gear() -> [u64; 256] {
        let mut t = [0u64; 256];
        let mut z: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut i = 0;
        while i < 256 {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            t[i] = x ^ (x >> 31);
            i += 1;
        }
        t
    }
    const GEAR: [u64; 256] = gear();
    let mut out = std::collections::HashSet::with_capacity(bytes.len() / 64 + 1);
    let mut h: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        h = (h << 4).wrapping_add(GEAR[usize::from(*b)]);
        // Shifted 4 bits a byte: the top bits depend on the last 16 bytes only.
        if i >= 15 && h >> 58 == 0 {
            out.insert(h);
        }
    }
    out
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

    #[test]
    fn resemblance_tells_releases_from_unrelated_bytes() {
        let mut x: u32 = 1;
        let mut random = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        };
        let old = random(400_000);
        let mut new = old.clone();
        for k in 0..20 {
            new[k * 10_000..k * 10_000 + 100].fill(b'x');
        }
        let unrelated = random(400_000);
        assert!(resemblance(&old, &new) > 0.9, "{}", resemblance(&old, &new));
        assert!(resemblance(&old, &unrelated) < 0.01);
        assert_eq!(resemblance(&old, &old), 1.0);
        assert_eq!(resemblance(b"", b""), 1.0);
        assert_eq!(resemblance(b"a", b"b"), 0.0);
    }
}
