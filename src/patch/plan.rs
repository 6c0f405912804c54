//! Which patches a pointer's devices can ask for (docs/format.md): a pure reading of the index.
//!
//! A device asks for a patch of the update a pointer serves — its live
//! package, or the candidate of its rollout — from the update it runs. It may
//! run any package the pointer served before (banned ones, re-stamps and
//! earlier candidates included), or what its build embedded.

use std::collections::BTreeSet;

use rusqlite::Connection;

use crate::digest::Sha256Digest;
use crate::error::{ExitClass, Refusal, Result};
use crate::index;
use crate::model::{Package, PackageContent, Rollout};
use crate::names::PointerId;

/// Which bases get patches, and which patches are worth keeping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// How many of the newest earlier bundles of a pointer are bases.
    pub bases: usize,
    /// A patch is kept only when smaller than this share of the full asset.
    pub max_fraction: f64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            bases: 3,
            max_fraction: 0.6,
        }
    }
}

/// A patch policy's values that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Too many bases.
    #[error("--patch-bases {bases}: give 0 to 20 (each base is one more patch per publish; 3 covers the devices that update at least every third release)")]
    Bases {
        /// The bases given.
        bases: usize,
    },
    /// A fraction outside (0, 1].
    #[error("--patch-max-fraction {max_fraction}: give a share of the full asset above 0 and at most 1, e.g. 0.6")]
    MaxFraction {
        /// The fraction given.
        max_fraction: f64,
    },
}

impl Refusal for PolicyError {
    fn class(&self) -> ExitClass {
        match self {
            PolicyError::Bases { .. } | PolicyError::MaxFraction { .. } => ExitClass::Input,
        }
    }
}

impl Policy {
    /// A policy from user input, or how to fix it.
    pub fn new(bases: usize, max_fraction: f64) -> Result<Policy> {
        if bases > 20 {
            return Err(PolicyError::Bases { bases }.into());
        }
        if !(max_fraction > 0.0 && max_fraction <= 1.0) {
            return Err(PolicyError::MaxFraction { max_fraction }.into());
        }
        Ok(Policy { bases, max_fraction })
    }

    /// Whether a patch of `size` bytes is worth serving instead of `full` bytes.
    pub fn keeps(&self, size: u64, full: u64) -> bool {
        (size as f64) < self.max_fraction * full as f64
    }
}

/// One (requested update, base update) pair a device can ask a patch for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    /// Manifest id of the update downloaded (lowercase).
    pub requested_id: String,
    /// Its launch asset.
    pub target: Sha256Digest,
    /// Id of the update the device runs (lowercase).
    pub base_id: String,
    /// Its launch asset.
    pub base: Sha256Digest,
}

/// The manifest id and launch asset of an update package.
fn launch(p: &Package) -> Option<(String, Sha256Digest)> {
    match &p.content {
        PackageContent::Update {
            manifest_id, bundle, ..
        } => Some((manifest_id.to_ascii_lowercase(), bundle.launch.sha256)),
        PackageContent::RollBackToEmbedded => None,
    }
}

/// The updates of a pointer devices download now: its live package and its
/// active rollout's candidate.
pub fn served<'a>(packages: &'a [Package], rollout: Option<&Rollout>) -> Vec<&'a Package> {
    let mut out: Vec<&Package> = index::live::live_package(packages, rollout).into_iter().collect();
    if let Some(r) = rollout.filter(|r| r.state.is_active()) {
        out.extend(packages.iter().find(|p| p.version == r.candidate));
    }
    out
}

/// The bases of `target` among the pointer's packages (oldest first, as
/// the index lists them): each of the `bases` newest distinct launch
/// assets other than the target's among the packages created before it,
/// under the id of every such package carrying it.
fn package_bases(packages: &[Package], target: &Package, bases: usize) -> Vec<(String, Sha256Digest)> {
    let Some((_, own)) = launch(target) else {
        return Vec::new();
    };
    let earlier: Vec<(String, Sha256Digest)> = packages
        .iter()
        // A retired package's bundle may be deleted: no base any more.
        .filter(|p| p.created_at < target.created_at && p.retired.is_none())
        .filter_map(launch)
        .filter(|(_, sha)| *sha != own)
        .collect();
    let mut chosen: Vec<Sha256Digest> = Vec::new();
    for (_, sha) in earlier.iter().rev() {
        if chosen.len() == bases {
            break;
        }
        if !chosen.contains(sha) {
            chosen.push(*sha);
        }
    }
    earlier.into_iter().filter(|(_, sha)| chosen.contains(sha)).collect()
}

/// Every pair the devices of `pointers` can ask for now.
pub fn wanted(conn: &Connection, pointers: &BTreeSet<PointerId>, policy: &Policy) -> Result<BTreeSet<Pair>> {
    let embedded = index::embedded_bases(conn)?;
    let mut out = BTreeSet::new();
    for pointer in pointers {
        let packages = index::pointer_packages(conn, pointer)?;
        let rollout = index::active_rollout(conn, pointer)?;
        for target in served(&packages, rollout.as_ref()) {
            let Some((requested_id, own)) = launch(target) else {
                continue;
            };
            let mut bases = package_bases(&packages, target, policy.bases);
            bases.extend(
                embedded
                    .iter()
                    .filter(|e| e.platform == pointer.platform && e.fingerprint == pointer.fingerprint)
                    .filter(|e| e.launch_asset != own)
                    .map(|e| (e.update_id.clone(), e.launch_asset)),
            );
            for (base_id, base) in bases {
                if base_id != requested_id {
                    out.insert(Pair {
                        requested_id: requested_id.clone(),
                        target: own,
                        base_id,
                        base,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Of `wanted`, the pairs not diffed yet.
pub fn missing(conn: &Connection, wanted: BTreeSet<Pair>) -> Result<Vec<Pair>> {
    let known: BTreeSet<(String, String)> = index::patches(conn)?
        .into_iter()
        .map(|r| (r.requested_id, r.base_id))
        .collect();
    Ok(wanted
        .into_iter()
        .filter(|p| !known.contains(&(p.requested_id.clone(), p.base_id.clone())))
        .collect())
}

/// Every pointer of a platform and fingerprint (those an embedded base serves).
pub fn pointers_of(
    conn: &Connection,
    platform: crate::names::Platform,
    fingerprint: &crate::names::Fingerprint,
) -> Result<BTreeSet<PointerId>> {
    let mut stmt = conn
        .prepare("SELECT DISTINCT channel FROM packages WHERE platform = ?1 AND fingerprint = ?2 ORDER BY channel")?;
    let channels = stmt
        .query_map(rusqlite::params![platform.as_str(), fingerprint.as_str()], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    channels
        .into_iter()
        .map(|c| {
            Ok(PointerId {
                channel: c
                    .parse()
                    .map_err(|e: crate::names::InvalidName| index::IndexError::BadChannel {
                        channel: c.clone(),
                        reason: e.to_string(),
                    })?,
                platform,
                fingerprint: fingerprint.clone(),
            })
        })
        .collect()
}
