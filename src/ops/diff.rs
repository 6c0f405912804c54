//! `otapub diff V1 V2 --platform P`: what changed between two packages —
//! the launch asset (hash, size, the patch between them when one was made),
//! the assets added, removed and changed by key, a unified diff of the app
//! config (`extra.expoClient`), and who published each with what message.

use std::collections::BTreeMap;

use serde::Serialize;

use super::status::{package_actors, PackageSummary};
use super::Context;
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::index::{self, Index};
use crate::model::{AssetRef, Package};
use crate::names::{Platform, Version};

/// One side of the comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    /// Version, id, kind, createdAt, message, actor, re-stamp.
    #[serde(flatten)]
    pub package: PackageSummary,
    /// The pointer it was published to.
    pub pointer: String,
    /// Its ban reason.
    pub banned: Option<String>,
}

/// A launch asset.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Launch {
    /// SHA-256.
    pub sha256: Sha256Digest,
    /// Bytes, when the index records them.
    pub size: Option<u64>,
}

/// The launch assets of both sides.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LaunchDiff {
    /// V1's.
    pub from: Option<Launch>,
    /// V2's.
    pub to: Option<Launch>,
    /// Whether the bytes are the same.
    pub same: bool,
    /// V2's size minus V1's.
    pub delta: Option<i64>,
    /// The bsdiff patch from V1 to V2, when one was made: its bytes.
    #[serde(rename = "patchSize")]
    pub patch_size: Option<u64>,
}

/// An asset, by its key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AssetEntry {
    /// The Metro key (md5 of the file).
    pub key: String,
    /// Extension.
    pub ext: String,
    /// SHA-256.
    pub sha256: Sha256Digest,
    /// Bytes, when recorded.
    pub size: Option<u64>,
}

/// An asset whose key both have, with other bytes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AssetChange {
    /// V1's.
    pub from: AssetEntry,
    /// V2's.
    pub to: AssetEntry,
}

/// What changed between two packages.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diff {
    /// Platform.
    pub platform: String,
    /// V1.
    pub from: Side,
    /// V2.
    pub to: Side,
    /// The launch asset.
    #[serde(rename = "launchAsset")]
    pub launch_asset: LaunchDiff,
    /// Assets only V2 has.
    pub added: Vec<AssetEntry>,
    /// Assets only V1 has.
    pub removed: Vec<AssetEntry>,
    /// Assets whose key both have, with other bytes.
    pub changed: Vec<AssetChange>,
    /// Assets both have unchanged.
    pub unchanged: usize,
    /// A unified diff of `extra.expoClient` (pretty-printed JSON); empty when equal.
    #[serde(rename = "expoClientDiff")]
    pub expo_client_diff: String,
}

/// Compares two packages of the store's index.
pub async fn diff(ctx: &Context<'_>, platform: Platform, v1: &Version, v2: &Version) -> Result<Diff> {
    diff_of(&crate::commit::read_index(ctx.store).await?, platform, v1, v2)
}

fn find(index: &Index, platform: Platform, v: &Version) -> Result<Package> {
    index.package(platform, v)?.ok_or_else(|| {
        super::OpError::NoPackage {
            version: v.clone(),
            platform,
        }
        .into()
    })
}

/// Compares two packages an index records.
pub fn diff_of(index: &Index, platform: Platform, v1: &Version, v2: &Version) -> Result<Diff> {
    let (a, b) = (find(index, platform, v1)?, find(index, platform, v2)?);
    let sizes = index.assets()?;
    let actors = package_actors(&index.audit_events()?);
    let side = |p: &Package| Side {
        package: PackageSummary::of(p, &actors),
        pointer: p.pointer.to_string(),
        banned: p.ban.as_ref().map(|b| b.reason.clone()),
    };
    let entry = |a: &AssetRef| AssetEntry {
        key: a.key.clone(),
        ext: a.ext.clone(),
        sha256: a.sha256,
        size: sizes.get(&a.sha256).map(|(s, _)| *s),
    };
    let launch = |p: &Package| {
        p.bundle().map(|b| Launch {
            sha256: b.launch.sha256,
            size: sizes.get(&b.launch.sha256).map(|(s, _)| *s),
        })
    };
    let (from_launch, to_launch) = (launch(&a), launch(&b));
    let delta = match (&from_launch, &to_launch) {
        (Some(Launch { size: Some(x), .. }), Some(Launch { size: Some(y), .. })) => {
            Some(i64::try_from(*y).unwrap_or(i64::MAX) - i64::try_from(*x).unwrap_or(i64::MAX))
        }
        _ => None,
    };
    let (from_side, to_side) = (side(&a), side(&b));
    let patch_size = index::patches(index.conn())?
        .into_iter()
        .find(|r| {
            r.requested_id.eq_ignore_ascii_case(&to_side.package.id)
                && r.base_id.eq_ignore_ascii_case(&from_side.package.id)
        })
        .and_then(|r| r.size);

    let by_key = |p: &Package| -> BTreeMap<String, AssetEntry> {
        p.bundle()
            .map(|b| b.assets.iter().map(|x| (x.key.clone(), entry(x))).collect())
            .unwrap_or_default()
    };
    let (old, new) = (by_key(&a), by_key(&b));
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    let mut unchanged = 0;
    for (key, e) in &new {
        match old.get(key) {
            None => added.push(e.clone()),
            Some(o) if o.sha256 != e.sha256 || o.ext != e.ext => changed.push(AssetChange {
                from: o.clone(),
                to: e.clone(),
            }),
            Some(_) => unchanged += 1,
        }
    }
    for (key, e) in &old {
        if !new.contains_key(key) {
            removed.push(e.clone());
        }
    }
    let config = |p: &Package| -> String {
        let raw = p.bundle().and_then(|b| b.expo_config.as_deref()).map(|r| r.get());
        match raw.map(serde_json::from_str::<serde_json::Value>) {
            Some(Ok(v)) => serde_json::to_string_pretty(&v).map(|s| s + "\n").unwrap_or_default(),
            Some(Err(_)) | None => String::new(),
        }
    };
    let (ca, cb) = (config(&a), config(&b));
    let expo_client_diff = if ca == cb {
        String::new()
    } else {
        similar::TextDiff::from_lines(&ca, &cb)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{v1}/expoClient"), &format!("{v2}/expoClient"))
            .to_string()
    };
    Ok(Diff {
        platform: platform.to_string(),
        launch_asset: LaunchDiff {
            same: from_launch.as_ref().map(|l| &l.sha256) == to_launch.as_ref().map(|l| &l.sha256),
            from: from_launch,
            to: to_launch,
            delta,
            patch_size,
        },
        from: from_side,
        to: to_side,
        added,
        removed,
        changed,
        unchanged,
        expo_client_diff,
    })
}
