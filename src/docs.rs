//! One schema type per signed JSON document — the manifest, the directive,
//! the ban record, the rollout record and the embedded-base record — used both to write the exact bytes that are signed
//! and to read them back (`index rebuild`), so the two cannot drift apart.
//! Field order is the order of the bytes; optional fields are omitted, never
//! `null`. The fields are the documents' own keys, as the Expo Updates
//! protocol and `docs/format.md` define them.
#![allow(missing_docs)]

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An update manifest (Expo Updates protocol v1) with otapub's metadata.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDoc {
    pub id: String,
    pub created_at: String,
    pub runtime_version: String,
    pub launch_asset: AssetDoc,
    pub assets: Vec<AssetDoc>,
    pub metadata: MetadataDoc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<ExtraDoc>,
}

/// One asset of a manifest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetDoc {
    /// base64url SHA-256 without padding.
    pub hash: String,
    /// The Metro md5 key.
    pub key: String,
    pub content_type: String,
    /// `.ext`; omitted for the launch asset (the Expo spec's SHOULD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_extension: Option<String>,
    pub url: String,
}

/// `metadata` of a manifest.
#[derive(Debug, Serialize, Deserialize)]
pub struct MetadataDoc {
    pub otapub: OtapubDoc,
}

/// What otapub records in a manifest: where it is served and which package it is.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtapubDoc {
    pub channel: String,
    pub platform: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restamp_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `extra` of a manifest: the public app config.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtraDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expo_client: Option<Box<RawValue>>,
}

/// A directive (`noUpdateAvailable`, `rollBackToEmbedded`), bound to its pointer.
#[derive(Debug, Serialize, Deserialize)]
pub struct DirectiveDoc {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<CommitTimeDoc>,
    pub extra: DirectiveExtraDoc,
}

/// `parameters` of a rollBackToEmbedded directive.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitTimeDoc {
    pub commit_time: String,
}

/// `extra` of a directive.
#[derive(Debug, Serialize, Deserialize)]
pub struct DirectiveExtraDoc {
    pub otapub: PointerDoc,
}

/// The pointer a directive was signed for.
#[derive(Debug, Serialize, Deserialize)]
pub struct PointerDoc {
    pub channel: String,
    pub platform: String,
    pub fingerprint: String,
}

/// A signed ban record (`state/bans/<platform>/<version>.json`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BanRecord {
    pub platform: String,
    pub version: String,
    pub reason: String,
    pub actor: String,
    pub banned_at: String,
}

/// Which package a side of a rollout serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedDoc {
    pub version: String,
    /// The manifest id; `null` for a rollBackToEmbedded directive.
    pub id: Option<String>,
}

/// A pointer's signed rollout record (`public/<channel>/<platform>/<fingerprint>/rollout.json`).
/// docs/format.md's fields first; `state`, the campaign's settings and the whole
/// permutation (so `index rebuild` can keep devices sticky) follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutDoc {
    pub pointer: String,
    pub candidate: ServedDoc,
    /// What the pointer itself serves; `null` when nothing is live there.
    pub control: Option<ServedDoc>,
    pub percent: u8,
    /// The candidate buckets that have objects: empty unless running.
    pub buckets: Vec<u8>,
    pub generation: u64,
    pub paused: bool,
    pub state: String,
    pub strategy: String,
    pub step: u8,
    pub abort_threshold: f64,
    pub permutation: Vec<u8>,
}

/// A build in the field, signed (`state/builds/<platform>/<runtime-version>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildRecord {
    pub platform: String,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub added_at: String,
}

/// A build's embedded update recorded as a patch base
/// (`state/embedded/<platform>/<update-id>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbeddedRecord {
    pub platform: String,
    pub fingerprint: String,
    pub update_id: String,
    /// SHA-256 hex of the embedded launch asset (stored under `public/assets/`).
    pub launch_asset: String,
    pub size: u64,
    pub added_at: String,
}
