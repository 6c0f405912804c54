//! The domain model the index records: packages (updates and
//! rollBackToEmbedded directives), their bans and content hashes, pointer
//! directives, audit events and operations — apart from how SQLite stores
//! them (the parent module).

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use super::{corrupt, to_ms};
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::manifest::AssetRef;
use crate::names::{PointerId, Version};
use crate::rollout::{Lifecycle, Permutation, Strategy};
use crate::signing::Signatures;

/// A ban: reason, actor and time, all three or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// When.
    pub at: DateTime<Utc>,
    /// Why (never blank).
    pub reason: String,
    /// Who.
    pub by: String,
}

/// The content of an update: its launch asset and assets, by hash.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The launch asset (JavaScript / Hermes bundle).
    pub launch: AssetRef,
    /// The other assets.
    pub assets: Vec<AssetRef>,
    /// Compact JSON of the public app config, or none.
    pub expo_config: Option<Box<RawValue>>,
}

/// What a package serves.
#[derive(Debug, Clone)]
pub enum PackageContent {
    /// An update manifest.
    Update {
        /// The manifest id (UUID).
        manifest_id: String,
        /// Base URL of `public/` the asset URLs were built with.
        base_url: String,
        /// The bundle.
        bundle: Bundle,
    },
    /// A `rollBackToEmbedded` directive whose commitTime is the createdAt.
    RollBackToEmbedded,
}

/// What a package says: everything its signatures cover, before it is
/// signed. Only [`crate::ops`]'s `stamp` turns one into a [`Package`].
#[derive(Debug, Clone)]
pub struct PackageDraft {
    /// Where it is published.
    pub pointer: PointerId,
    /// Its version.
    pub version: Version,
    /// createdAt (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// The original, for a re-stamp.
    pub restamp_of: Option<Version>,
    /// Free-text message.
    pub message: Option<String>,
    /// Update or directive.
    pub content: PackageContent,
    /// Hash of what a retried publish must match.
    pub content_hash: String,
    /// How its manifest is laid out (fixed when it was signed).
    pub format: ManifestFormat,
}

/// One package as the index records it: a draft with the signatures made
/// over it. The only ways to get one are signing a draft and reading back
/// what was recorded (the index, or envelopes `index rebuild` verified), so
/// nothing unsigned can be recorded or rendered. Its draft's fields read
/// through `Deref`.
#[derive(Debug, Clone)]
pub struct Package {
    /// Row id (0 until recorded).
    pub id: i64,
    draft: PackageDraft,
    signatures: Signatures,
    body_sha256: String,
    /// Its ban, if any.
    pub ban: Option<Ban>,
    /// When `gc --keep` retired it: no rollback or promote target any more,
    /// its bundle deleted once nothing else uses it.
    pub retired: Option<DateTime<Utc>>,
    /// The Expo layer pointers serve instead of the package's own, after
    /// `otapub refresh`.
    pub served: Option<ServedExpo>,
}

/// A package's Expo layer as `otapub refresh` re-signed it for pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedExpo {
    /// The `expo-signature` header.
    pub signature: String,
    /// The `certificate_chain` part.
    pub chain: Option<String>,
    /// SHA-256 hex of the Expo body with them.
    pub body_sha256: String,
}

impl std::ops::Deref for Package {
    type Target = PackageDraft;

    fn deref(&self) -> &PackageDraft {
        &self.draft
    }
}

impl Package {
    /// A draft with its signatures and the SHA-256 hex of the Expo body they
    /// belong to: for `stamp` right after signing, and for what is read
    /// back from the index or adopted from verified envelopes.
    pub(crate) fn signed(draft: PackageDraft, signatures: Signatures, body_sha256: String) -> Package {
        Package {
            id: 0,
            draft,
            signatures,
            body_sha256,
            ban: None,
            retired: None,
            served: None,
        }
    }

    /// The recorded signatures.
    pub fn signatures(&self) -> &Signatures {
        &self.signatures
    }

    /// SHA-256 hex of the Expo body the signatures belong to.
    pub fn body_sha256(&self) -> &str {
        &self.body_sha256
    }

    /// The signatures and body digest pointers serve: re-signed by
    /// `otapub refresh` when it ran, else the package's own.
    pub fn serving(&self) -> (Signatures, &str) {
        match &self.served {
            Some(s) => (
                self.signatures.with_expo(s.signature.clone(), s.chain.clone()),
                &s.body_sha256,
            ),
            None => (self.signatures.clone(), &self.body_sha256),
        }
    }
}

/// The layout a package's manifest was signed in. Signed bytes never change,
/// so a package keeps the format it was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// Until otapub 0.1: `launchAsset.fileExtension` present.
    V1,
    /// Current: `launchAsset.fileExtension` omitted, as the Expo spec says it SHOULD be.
    #[default]
    V2,
}

impl ManifestFormat {
    pub(super) fn from_column(v: i64) -> Result<ManifestFormat> {
        match v {
            1 => Ok(ManifestFormat::V1),
            2 => Ok(ManifestFormat::V2),
            other => Err(corrupt(format!("manifest format {other} is unknown"))),
        }
    }

    pub(super) fn column(self) -> i64 {
        match self {
            ManifestFormat::V1 => 1,
            ManifestFormat::V2 => 2,
        }
    }
}

impl PackageDraft {
    /// The version of the original (itself unless a re-stamp).
    pub fn original(&self) -> &Version {
        self.restamp_of.as_ref().unwrap_or(&self.version)
    }

    /// `update` or `rollBackToEmbedded`, as status, diff and the page name it.
    pub fn kind(&self) -> &'static str {
        match self.content {
            PackageContent::Update { .. } => "update",
            PackageContent::RollBackToEmbedded => "rollBackToEmbedded",
        }
    }

    /// The update (manifest) id; none for a rollBackToEmbedded directive.
    pub fn update_id(&self) -> Option<&str> {
        match &self.content {
            PackageContent::Update { manifest_id, .. } => Some(manifest_id),
            PackageContent::RollBackToEmbedded => None,
        }
    }

    /// The bundle, for an update.
    pub fn bundle(&self) -> Option<&Bundle> {
        match &self.content {
            PackageContent::Update { bundle, .. } => Some(bundle),
            PackageContent::RollBackToEmbedded => None,
        }
    }
}

#[derive(serde::Serialize)]
struct UpdateContent<'a> {
    channel: &'a str,
    platform: &'a str,
    fingerprint: &'a str,
    launch: &'a AssetRef,
    assets: &'a [AssetRef],
    expo_config: Option<&'a str>,
    message: Option<&'a str>,
}

/// What a published update is, for telling a retry of the same publish from
/// a different one: pointer, bundle, app config and message.
pub fn update_content_hash(pointer: &PointerId, bundle: &Bundle, message: Option<&str>) -> String {
    let key = UpdateContent {
        channel: pointer.channel.as_str(),
        platform: pointer.platform.as_str(),
        fingerprint: pointer.fingerprint.as_str(),
        launch: &bundle.launch,
        assets: &bundle.assets,
        expo_config: bundle.expo_config.as_deref().map(RawValue::get),
        message,
    };
    Sha256Digest::of(&serde_json::to_vec(&key).expect("content key serializes")).to_hex()
}

/// The content hash of a re-stamp.
pub fn restamp_content_hash(pointer: &PointerId, version: &Version, original: &Version, at: DateTime<Utc>) -> String {
    Sha256Digest::of(format!("restamp\n{pointer}\n{version}\n{original}\n{}", to_ms(at)).as_bytes()).to_hex()
}

/// The content hash of a rollBackToEmbedded directive.
pub fn directive_content_hash(pointer: &PointerId, at: DateTime<Utc>) -> String {
    Sha256Digest::of(format!("rollBackToEmbedded\n{pointer}\n{}", to_ms(at)).as_bytes()).to_hex()
}

impl PackageDraft {
    /// The content hash this package must carry, from its own fields.
    pub fn expected_content_hash(&self) -> String {
        match (&self.content, &self.restamp_of) {
            (PackageContent::RollBackToEmbedded, _) => directive_content_hash(&self.pointer, self.created_at),
            (PackageContent::Update { .. }, Some(original)) => {
                restamp_content_hash(&self.pointer, &self.version, original, self.created_at)
            }
            (PackageContent::Update { bundle, .. }, None) => {
                update_content_hash(&self.pointer, bundle, self.message.as_deref())
            }
        }
    }
}

/// A pointer's stored `noUpdateAvailable` signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDirective {
    /// Signatures over the directive payload.
    pub signatures: Signatures,
    /// SHA-256 hex of the Expo body.
    pub body_sha256: String,
}

/// An audit event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    /// When (createdAt format).
    pub time: String,
    /// Who.
    pub actor: String,
    /// What (`publish`, `ban`, ...).
    pub action: String,
    /// On what (`ios/v1`, a pointer, ...).
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
}

/// A new audit event, before it is recorded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What.
    pub action: &'static str,
    /// On what.
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
}

/// A committed operation as `operation_results` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOperation {
    /// The invocation's id and commit (`ID:kind`).
    pub op_key: String,
    /// What the command reported (JSON).
    pub output: String,
    /// The pointers it affected (JSON).
    pub pointers: String,
    /// The generation it committed.
    pub generation: u64,
    /// What was run: the command and its arguments.
    pub invocation: String,
    /// Its kind (`publish`, `rollback`, …).
    pub kind: String,
    /// Who ran it.
    pub actor: String,
}

/// An operation row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Operation {
    /// Row id.
    pub id: i64,
    /// Command.
    pub kind: String,
    /// Who.
    pub actor: String,
    /// pending | running | succeeded | failed.
    pub state: String,
    /// The error of a failed operation.
    pub error: Option<String>,
    /// When it started.
    #[serde(rename = "startedAt")]
    pub started_at: String,
    /// When its state last changed.
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    /// The invocation's id and commit (`ID:kind`), when recorded.
    #[serde(rename = "operationId", default, skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
}

/// A gate reading: devices that reported the candidate failed, of those
/// that reported it at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GateReading {
    /// Distinct devices whose recent failures name the candidate.
    pub failed: u64,
    /// Distinct devices that report the candidate as current or failed.
    pub total: u64,
}

impl GateReading {
    /// The failure rate (`None` with no device counted).
    pub fn rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.failed as f64 / self.total as f64)
    }
}

/// A signed rollout record: the exact `rollout.json` payload and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Their signatures.
    pub signatures: Signatures,
}

/// A staged rollout (a campaign) on one pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Row id.
    pub id: i64,
    /// The pointer.
    pub pointer: PointerId,
    /// The candidate package.
    pub candidate: Version,
    /// The package live when the rollout started (none if it was a bare pointer).
    pub control: Option<Version>,
    /// How `advance` moves.
    pub strategy: Strategy,
    /// Step of a linear advance.
    pub step: u8,
    /// Failure rate above which a gated advance aborts.
    pub abort_threshold: f64,
    /// Share of buckets on the candidate.
    pub percent: u8,
    /// The order buckets join in.
    pub permutation: Permutation,
    /// Lifecycle state.
    pub state: Lifecycle,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The generation of the commit that last changed it.
    pub generation: u64,
    /// The signed `rollout.json` of that commit.
    pub record: SignedRecord,
    /// The last gate reading.
    pub gate: Option<GateReading>,
    /// Why it was aborted.
    pub reason: Option<String>,
}

impl Rollout {
    /// The candidate buckets that have objects now: those of the
    /// percentage while running, none otherwise.
    pub fn live_buckets(&self) -> Vec<u8> {
        if self.state == Lifecycle::Running {
            self.permutation.buckets(self.percent)
        } else {
            Vec::new()
        }
    }
}
