//! `otapub status`: what each pointer serves, and its history.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Context;
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::index::live::{pointer_state, PointerState};
use crate::index::Index;
use crate::manifest::{boundary_of, format_time, parse_multipart, ParsedPart};
use crate::model::{AuditEvent, Kind, Lifecycle, Package, PackageContent, PackageKind, PatchRow};
use crate::tree::{self, PointerView, PublicObject};

/// One package in a pointer's history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryEntry {
    /// Version.
    pub version: String,
    /// `update` or `rollBackToEmbedded`.
    pub kind: PackageKind,
    /// createdAt.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// The original of a re-stamp.
    #[serde(rename = "restampOf", skip_serializing_if = "Option::is_none")]
    pub restamp_of: Option<String>,
    /// Message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The ban, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banned: Option<BanInfo>,
    /// When `gc --keep` retired it (no rollback target; bundle may be deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
}

/// A ban, for display.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BanInfo {
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// When.
    pub at: String,
}

/// One pointer's status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PointerStatus {
    /// Channel.
    pub channel: String,
    /// Platform.
    pub platform: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// What it serves: a version, `rollBackToEmbedded:<version>`, or `noUpdateAvailable`.
    pub serves: String,
    /// Its active rollout: the candidate a share of devices gets instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSummary>,
    /// Patches of the updates it serves (live package, rollout candidate),
    /// by served version, then base.
    pub patches: Vec<PatchStatus>,
    /// Packages, newest first.
    pub history: Vec<HistoryEntry>,
    /// The leaf certificate the pointer's response carries (`--expo-chain`),
    /// update or directive alike: read from the pointer objects the index
    /// renders, so after `otapub refresh` it is the refreshed one.
    #[serde(rename = "expoLeaf", skip_serializing_if = "Option::is_none")]
    pub expo_leaf: Option<LeafStatus>,
}

/// The Expo signing leaf a response carries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeafStatus {
    /// Its subject.
    pub subject: String,
    /// Its serial number, upper-case hex as `openssl x509 -serial` prints it:
    /// two leaves of one name differ here.
    pub serial: String,
    /// When it expires: every update check fails after, until a refresh.
    #[serde(rename = "notAfter")]
    pub not_after: String,
    /// Whole days from the status's clock to notAfter (negative: expired).
    #[serde(rename = "daysLeft")]
    pub days_left: i64,
}

impl LeafStatus {
    /// The leaf of the `certificate_chain` part among an Expo body's parts,
    /// as of `now`; none without a chain (or one that does not parse,
    /// which `otapub verify --expo-ca` reports).
    pub fn in_parts(parts: &[ParsedPart], now: chrono::DateTime<chrono::Utc>) -> Option<LeafStatus> {
        let part = parts.iter().find(|p| p.name() == Some("certificate_chain"))?;
        let pem = std::str::from_utf8(&part.body).ok()?;
        let der = crate::signing::chain::split_pem(pem).ok()?.into_iter().next()?;
        let info = crate::signing::chain::info(&der).ok()?;
        Some(LeafStatus {
            subject: info.subject,
            serial: info.serial,
            not_after: format_time(info.not_after),
            days_left: (info.not_after - now).num_days(),
        })
    }

    /// The leaf a served object carries: an Expo body with its Content-Type.
    pub fn served_in(o: &PublicObject, now: chrono::DateTime<chrono::Utc>) -> Option<LeafStatus> {
        let parts = parse_multipart(boundary_of(&o.meta.content_type)?, &o.bytes).ok()?;
        LeafStatus::in_parts(&parts, now)
    }
}

/// The leaf of what `view` serves, from the render of the index (the
/// bytes `regenerate` writes): the pointer's own response, and its
/// rollout buckets' (the candidate's).
fn served_leaves(
    view: &PointerView,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Option<LeafStatus>, Option<LeafStatus>)> {
    let pointer = tree::pointer_objects(view)?.and_then(|[_, body]| LeafStatus::served_in(&body, now));
    let bucket = tree::rollout_objects(view)?.and_then(|r| {
        r.buckets
            .iter()
            .find(|o| o.key.ends_with("/manifest"))
            .and_then(|body| LeafStatus::served_in(body, now))
    });
    Ok((pointer, bucket))
}

/// A patch a served update can be downloaded as.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PatchStatus {
    /// The served version.
    pub to: String,
    /// The base: a version of the pointer, or `embedded <update id>`.
    pub from: String,
    /// The base's update id.
    #[serde(rename = "fromId")]
    pub from_id: String,
    /// Bytes of the patch; none when the two bundles share almost nothing
    /// (not diffed).
    pub size: Option<u64>,
    /// Bytes of the full launch asset.
    #[serde(rename = "fullSize")]
    pub full_size: u64,
    /// Whether it is served (smaller than the kept fraction of the full asset).
    pub kept: bool,
}

/// The whole status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    /// The recorded base URL.
    #[serde(rename = "baseUrl")]
    pub base_url: Option<String>,
    /// Pointers, sorted.
    pub pointers: Vec<PointerStatus>,
    /// Builds' embedded updates recorded as patch bases (`otapub embedded add`).
    pub embedded: Vec<EmbeddedStatus>,
}

/// An embedded patch base, as `status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EmbeddedStatus {
    /// Platform.
    pub platform: String,
    /// The build's runtime version.
    pub fingerprint: String,
    /// The embedded update id.
    #[serde(rename = "updateId")]
    pub update_id: String,
    /// SHA-256 of its launch asset.
    #[serde(rename = "launchAsset")]
    pub launch_asset: Sha256Digest,
}

/// One package in short, with who made it: the live package on the page,
/// each side of `otapub diff`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PackageSummary {
    /// Version.
    pub version: String,
    /// The update id (empty for a rollBackToEmbedded directive).
    pub id: String,
    /// `update` or `rollBackToEmbedded`.
    pub kind: PackageKind,
    /// createdAt.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// Message.
    pub message: Option<String>,
    /// Who published or re-stamped it.
    pub actor: Option<String>,
    /// The original of a re-stamp.
    #[serde(rename = "restampOf")]
    pub restamp_of: Option<String>,
}

impl PackageSummary {
    /// `p` in short; `actors` from [`package_actors`].
    pub fn of(p: &Package, actors: &BTreeMap<String, String>) -> PackageSummary {
        PackageSummary {
            version: p.version.to_string(),
            id: p.update_id().unwrap_or_default().to_string(),
            kind: p.kind(),
            created_at: format_time(p.created_at),
            message: p.message.clone(),
            actor: actors.get(&format!("{}/{}", p.pointer.platform, p.version)).cloned(),
            restamp_of: p.restamp_of.as_ref().map(ToString::to_string),
        }
    }
}

/// Who made each package (`platform/version` → actor): the actor of the
/// audit event that created it.
pub fn package_actors(events: &[AuditEvent]) -> BTreeMap<String, String> {
    events
        .iter()
        .filter(|e| matches!(e.action, Kind::Publish | Kind::Restamp | Kind::RollbackToEmbedded))
        .map(|e| (e.target.clone(), e.actor.clone()))
        .collect()
}

fn entry(p: &Package) -> HistoryEntry {
    HistoryEntry {
        version: p.version.to_string(),
        kind: p.kind(),
        created_at: format_time(p.created_at),
        restamp_of: p.restamp_of.as_ref().map(ToString::to_string),
        message: p.message.clone(),
        banned: p.ban.as_ref().map(|b| BanInfo {
            reason: b.reason.clone(),
            by: b.by.clone(),
            at: format_time(b.at),
        }),
        retired: p.retired.map(format_time),
    }
}

/// A pointer's active rollout, in short (`otapub rollout status` has the rest).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RolloutSummary {
    /// The candidate's version.
    pub candidate: String,
    /// running or paused.
    pub state: Lifecycle,
    /// Share of devices on the candidate.
    pub percent: u8,
    /// The leaf the candidate buckets' responses carry (none while no
    /// bucket serves, e.g. paused).
    #[serde(rename = "expoLeaf", skip_serializing_if = "Option::is_none")]
    pub expo_leaf: Option<LeafStatus>,
}

impl RolloutSummary {
    /// In short, what `rollout status` shows (the signed record), and the
    /// leaf its buckets serve.
    fn of(st: super::rollout::RolloutStatus, expo_leaf: Option<LeafStatus>) -> RolloutSummary {
        RolloutSummary {
            candidate: st.candidate.version,
            state: st.state,
            percent: st.percent,
            expo_leaf,
        }
    }
}

/// Reads the status from the index.
pub async fn status(ctx: &Context<'_>) -> Result<Status> {
    status_of(&crate::commit::read_index(ctx.store).await?, ctx.clock.now())
}

/// The status an index records, as of `now`.
pub fn status_of(index: &Index, now: chrono::DateTime<chrono::Utc>) -> Result<Status> {
    status_from(index, &super::full_view(index)?, now)
}

/// [`status_of`] from the pointer views of `index`, read once by the caller.
pub fn status_from(index: &Index, views: &[PointerView], now: chrono::DateTime<chrono::Utc>) -> Result<Status> {
    let mut patches: BTreeMap<String, Vec<PatchRow>> = BTreeMap::new();
    for row in crate::index::patches(index.conn())? {
        patches.entry(row.requested_id.clone()).or_default().push(row);
    }
    let embedded = crate::index::embedded_bases(index.conn())?;
    let mut pointers = Vec::new();
    for v in views {
        let (pointer, packages, rollout) = (&v.pointer, &v.packages, &v.rollout);
        let (expo_leaf, candidate_leaf) = served_leaves(v, now)?;
        let serves = match pointer_state(packages, rollout.as_ref()) {
            PointerState::Live(p) if p.update_id().is_none() => {
                format!("rollBackToEmbedded ({})", p.version)
            }
            PointerState::Live(p) => p.version.to_string(),
            PointerState::NoUpdateAvailable | PointerState::Empty => "noUpdateAvailable".to_string(),
        };
        let mut served_patches = Vec::new();
        for target in crate::patch::plan::served(packages, rollout.as_ref()) {
            let PackageContent::Update { manifest_id, .. } = &target.content else {
                continue;
            };
            for row in patches.get(&manifest_id.to_ascii_lowercase()).into_iter().flatten() {
                let from = packages
                    .iter()
                    .find(|p| matches!(&p.content, PackageContent::Update { manifest_id, .. } if manifest_id.eq_ignore_ascii_case(&row.base_id)))
                    .map(|p| p.version.to_string())
                    .or_else(|| embedded.iter().any(|e| e.update_id == row.base_id).then(|| format!("embedded {}", row.base_id)))
                    .unwrap_or_else(|| row.base_id.clone());
                served_patches.push(PatchStatus {
                    to: target.version.to_string(),
                    from,
                    from_id: row.base_id.clone(),
                    size: row.size,
                    full_size: row.full_size,
                    kept: row.kept.is_some(),
                });
            }
        }
        pointers.push(PointerStatus {
            patches: served_patches,
            channel: pointer.channel.to_string(),
            platform: pointer.platform.to_string(),
            fingerprint: pointer.fingerprint.to_string(),
            serves,
            rollout: rollout
                .as_ref()
                .filter(|r| r.state.is_active())
                .map(|r| super::rollout::status_of(r).map(|st| RolloutSummary::of(st, candidate_leaf.clone())))
                .transpose()?,
            history: packages.iter().rev().map(entry).collect(),
            expo_leaf,
        });
    }
    let embedded = embedded
        .into_iter()
        .map(|e| EmbeddedStatus {
            platform: e.platform.to_string(),
            fingerprint: e.fingerprint.to_string(),
            update_id: e.update_id,
            launch_asset: e.launch_asset,
        })
        .collect();
    Ok(Status {
        base_url: index.setting(super::BASE_URL_SETTING)?,
        pointers,
        embedded,
    })
}
