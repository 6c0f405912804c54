//! Making the patches a commit needs: the bytes of each pair's two launch
//! assets (the target from the export being published when it is at hand,
//! else from the store, checked against its hash), one diff per distinct
//! pair of bundles, one pair at a time (the diff itself runs on all cores)
//! so memory stays at two bundles and one suffix array.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use super::plan::{Pair, Policy};
use crate::digest::Sha256Digest;
use crate::model::{patch_key, PatchRow};
use crate::store::AssetUpload;
use crate::store::{ObjectMeta, Store, IMMUTABLE_CACHE_CONTROL};
use crate::tree::PublicObject;

/// What diffing two bundles gave.
#[derive(Debug, Clone)]
struct Diffed {
    size: Option<u64>,
    full_size: u64,
    /// The patch, when small enough to keep.
    kept: Option<(Sha256Digest, Vec<u8>)>,
}

/// Diffs made by earlier attempts of one invocation, by (base, target):
/// an attempt that lost the commit race does not diff again.
#[derive(Debug, Default)]
pub struct Cache {
    diffs: HashMap<(Sha256Digest, Sha256Digest), Diffed>,
}

/// The rows and objects of the patches made for `pairs`.
#[derive(Debug, Default)]
pub struct Made {
    /// One per pair diffed (kept or not).
    pub rows: Vec<PatchRow>,
    /// The kept patches, `public/patches/<requested>/<base>`.
    pub objects: Vec<PublicObject>,
}

/// Reads a launch asset: from the local file a publish is uploading, else
/// from the store; bytes that do not hash to `sha` are refused.
async fn bytes_of(store: &dyn Store, local: &[AssetUpload], sha: &Sha256Digest) -> Result<Vec<u8>, String> {
    let bytes = match local.iter().find(|a| a.sha256 == *sha) {
        Some(a) => std::fs::read(&a.path).map_err(|e| format!("cannot read {}: {e}", a.path.display()))?,
        None => {
            store
                .get(&format!("public/assets/{sha}"))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("public/assets/{sha} is missing"))?
                .bytes
        }
    };
    if Sha256Digest::of(&bytes) != *sha {
        return Err(format!(
            "public/assets/{sha} does not hash to its name (run `otapub check`)"
        ));
    }
    Ok(bytes)
}

/// Diffs every pair not in `cache`, one distinct (base, target) at a time.
/// A pair that cannot be diffed (a bundle missing or damaged) is left out
/// with a warning: a device then downloads the full asset, and the next
/// commit that touches the pointer tries again.
pub async fn make(
    store: &dyn Store,
    pairs: &[Pair],
    local: &[AssetUpload],
    policy: &Policy,
    cache: &mut Cache,
    progress: &crate::progress::Progress,
) -> Made {
    let mut by_bundles: BTreeMap<(Sha256Digest, Sha256Digest), Vec<&Pair>> = BTreeMap::new();
    for p in pairs {
        by_bundles.entry((p.target, p.base)).or_default().push(p);
    }
    let todo = by_bundles
        .keys()
        .filter(|(t, b)| !cache.diffs.contains_key(&(*b, *t)))
        .count();
    if todo > 0 {
        tracing::info!("making {todo} launch-asset patches");
    }
    // Sorted by target: each target is read once.
    let mut target: Option<(Sha256Digest, Vec<u8>)> = None;
    let mut made = Made::default();
    let bar = progress.items(todo as u64, "making patches");
    for ((target_sha, base_sha), pairs) in by_bundles {
        let key = (base_sha, target_sha);
        if let Entry::Vacant(slot) = cache.diffs.entry(key) {
            if let Some(d) = diff(store, local, policy, &mut target, target_sha, base_sha).await {
                slot.insert(d);
            }
            bar.inc(1);
        }
        let Some(d) = cache.diffs.get(&key) else { continue };
        for p in pairs {
            made.rows.push(PatchRow {
                requested_id: p.requested_id.clone(),
                base_id: p.base_id.clone(),
                target: target_sha,
                base: base_sha,
                size: d.size,
                full_size: d.full_size,
                kept: d.kept.as_ref().map(|(sha, _)| *sha),
            });
            if let Some((_, bytes)) = &d.kept {
                made.objects.push(PublicObject {
                    key: patch_key(&p.requested_id, &p.base_id),
                    bytes: bytes.clone(),
                    meta: ObjectMeta::new(super::CONTENT_TYPE, IMMUTABLE_CACHE_CONTROL),
                });
            }
        }
    }
    bar.finish_and_clear();
    made
}

/// Diffs one pair of bundles; `target` keeps the target's bytes read last.
async fn diff(
    store: &dyn Store,
    local: &[AssetUpload],
    policy: &Policy,
    target: &mut Option<(Sha256Digest, Vec<u8>)>,
    target_sha: Sha256Digest,
    base_sha: Sha256Digest,
) -> Option<Diffed> {
    if target.as_ref().is_none_or(|(sha, _)| *sha != target_sha) {
        *target = match bytes_of(store, local, &target_sha).await {
            Ok(b) => Some((target_sha, b)),
            Err(e) => {
                eprintln!("warning: no patches to launch asset {target_sha}: {e}");
                None
            }
        };
    }
    let (_, new) = target.as_ref()?;
    let old = bytes_of(store, &[], &base_sha)
        .await
        .map_err(|e| eprintln!("warning: no patch from launch asset {base_sha}: {e}"))
        .ok()?;
    let full_size = new.len() as u64;
    if crate::off_runtime(|| super::resemblance(&old, new)) < super::MIN_RESEMBLANCE {
        return Some(Diffed {
            size: None,
            full_size,
            kept: None,
        });
    }
    let patch = crate::off_runtime(|| super::make(&old, new))
        .map_err(|e| eprintln!("warning: no patch from {base_sha} to {target_sha}: {e}"))
        .ok()?;
    let size = patch.len() as u64;
    let kept = policy.keeps(size, full_size).then(|| (Sha256Digest::of(&patch), patch));
    Some(Diffed {
        size: Some(size),
        full_size,
        kept,
    })
}

/// Makes a recorded patch again (its object was lost or damaged): its
/// bytes, when they hash to what the index recorded.
pub async fn remake(store: &dyn Store, row: &PatchRow) -> Result<Vec<u8>, String> {
    let Some(want) = row.kept else {
        return Err("the index records it as not kept".into());
    };
    let new = bytes_of(store, &[], &row.target).await?;
    let old = bytes_of(store, &[], &row.base).await?;
    let patch = crate::off_runtime(|| super::make(&old, &new)).map_err(|e| e.to_string())?;
    if Sha256Digest::of(&patch) != want {
        return Err(format!(
            "the patch made now hashes to {}, not to the {want} recorded (made by another otapub version?); devices get the full asset",
            Sha256Digest::of(&patch)
        ));
    }
    Ok(patch)
}
