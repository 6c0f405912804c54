//! Packages — updates and rollBackToEmbedded directives — with their bans,
//! re-stamps and content hashes, and a pointer's stored directive.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use super::{AssetRef, Signatures};
use crate::digest::Sha256Digest;
use crate::names::{PointerId, Version};

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

/// What kind of package: the `packages.kind` column, and how status names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::Display, strum::VariantArray)]
#[strum(serialize_all = "camelCase")]
pub enum PackageKind {
    /// An update manifest.
    Update,
    /// A `rollBackToEmbedded` directive.
    RollBackToEmbedded,
}

impl PackageKind {
    /// As stored and shown: `update` or `rollBackToEmbedded`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl serde::Serialize for PackageKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromStr for PackageKind {
    type Err = String;

    fn from_str(s: &str) -> Result<PackageKind, String> {
        super::parse_name(s, "package kind")
    }
}

/// What a package says: everything its signatures cover, before it is
/// signed. Only `ops::stamp` turns one into a [`Package`].
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
    pub content_hash: Sha256Digest,
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
    body_sha256: Sha256Digest,
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
    /// SHA-256 of the Expo body with them.
    pub body_sha256: Sha256Digest,
}

impl std::ops::Deref for Package {
    type Target = PackageDraft;

    fn deref(&self) -> &PackageDraft {
        &self.draft
    }
}

impl Package {
    /// A draft with its signatures and the SHA-256 of the Expo body they
    /// belong to: for `stamp` right after signing, and for what is read
    /// back from the index or adopted from verified envelopes.
    pub(crate) fn signed(draft: PackageDraft, signatures: Signatures, body_sha256: Sha256Digest) -> Package {
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

    /// SHA-256 of the Expo body the signatures belong to.
    pub fn body_sha256(&self) -> &Sha256Digest {
        &self.body_sha256
    }

    /// The signatures and body digest pointers serve: re-signed by
    /// `otapub refresh` when it ran, else the package's own.
    pub fn serving(&self) -> (Signatures, &Sha256Digest) {
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

impl PackageDraft {
    /// The version of the original (itself unless a re-stamp).
    pub fn original(&self) -> &Version {
        self.restamp_of.as_ref().unwrap_or(&self.version)
    }

    /// An update or a rollBackToEmbedded directive.
    pub fn kind(&self) -> PackageKind {
        match self.content {
            PackageContent::Update { .. } => PackageKind::Update,
            PackageContent::RollBackToEmbedded => PackageKind::RollBackToEmbedded,
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
pub fn update_content_hash(pointer: &PointerId, bundle: &Bundle, message: Option<&str>) -> Sha256Digest {
    let key = UpdateContent {
        channel: pointer.channel.as_str(),
        platform: pointer.platform.as_str(),
        fingerprint: pointer.fingerprint.as_str(),
        launch: &bundle.launch,
        assets: &bundle.assets,
        expo_config: bundle.expo_config.as_deref().map(RawValue::get),
        message,
    };
    Sha256Digest::of(&serde_json::to_vec(&key).expect("content key serializes"))
}

/// The content hash of a re-stamp.
pub fn restamp_content_hash(
    pointer: &PointerId,
    version: &Version,
    original: &Version,
    at: DateTime<Utc>,
) -> Sha256Digest {
    Sha256Digest::of(format!("restamp\n{pointer}\n{version}\n{original}\n{}", at.timestamp_millis()).as_bytes())
}

/// The content hash of a rollBackToEmbedded directive.
pub fn directive_content_hash(pointer: &PointerId, at: DateTime<Utc>) -> Sha256Digest {
    Sha256Digest::of(format!("rollBackToEmbedded\n{pointer}\n{}", at.timestamp_millis()).as_bytes())
}

impl PackageDraft {
    /// The content hash this package must carry, from its own fields.
    pub fn expected_content_hash(&self) -> Sha256Digest {
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
    /// SHA-256 of the Expo body.
    pub body_sha256: Sha256Digest,
}
