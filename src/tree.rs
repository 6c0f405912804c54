//! `render`: the public tree as a pure function of the index. No I/O and no
//! signing here: every signature was recorded when its package was made, so
//! the same index always renders to the same bytes.

use crate::digest::Sha256Digest;
use crate::error::{ExitClass, Refusal, Result};
use crate::index::live::{pointer_state, PointerState};
use crate::manifest::{self, Directive, Framing, ManifestFields, PartName};
use crate::model::{ManifestFormat, Package, PackageContent, PackageDraft, Rollout, Signatures, StoredDirective};
use crate::names::PointerId;
use crate::signing;
use crate::store::{ObjectMeta, IMMUTABLE_CACHE_CONTROL, POINTER_CACHE_CONTROL};

/// An index the tree cannot be rendered from faithfully.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A signed body renders to other bytes than were signed.
    #[error(
        "index: {what} renders to bytes (sha256 {got}) other than the ones it was signed as ({signed}); \
             this otapub renders differently from the one that signed it — use that version, or ban and republish"
    )]
    NotAsSigned {
        /// What was rendered.
        what: String,
        /// The rendered bytes' SHA-256.
        got: String,
        /// The signed bytes' SHA-256.
        signed: String,
    },
    /// A pointer serving nothing has no signed directive.
    #[error("index: pointer {pointer} has no live package and no signed noUpdateAvailable directive; run a ban or rollback on it to sign one")]
    NoDirective {
        /// The pointer.
        pointer: PointerId,
    },
    /// A rollout's candidate is not on its pointer.
    #[error("index: the rollout on {pointer} names candidate {candidate} that is not a package there; restore the index with `otapub index rebuild`")]
    NoCandidate {
        /// The pointer.
        pointer: PointerId,
        /// The candidate's version.
        candidate: String,
    },
}

impl Refusal for RenderError {
    fn class(&self) -> ExitClass {
        match self {
            RenderError::NotAsSigned { .. } | RenderError::NoDirective { .. } | RenderError::NoCandidate { .. } => {
                ExitClass::Environment
            }
        }
    }
}

/// One object of the public tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicObject {
    /// Key under the store root (`public/...`).
    pub key: String,
    /// Exact bytes.
    pub bytes: Vec<u8>,
    /// How it is served.
    pub meta: ObjectMeta,
}

pub use crate::signing::Payload;

/// The payload a package signs: its manifest, or its directive.
pub fn package_payload(p: &PackageDraft) -> Payload {
    match &p.content {
        PackageContent::Update {
            manifest_id,
            base_url,
            bundle,
        } => Payload {
            part: PartName::Manifest,
            bytes: manifest::manifest_bytes(&ManifestFields {
                id: manifest_id,
                created_at: p.created_at,
                fingerprint: &p.pointer.fingerprint,
                channel: &p.pointer.channel,
                platform: p.pointer.platform,
                version: &p.version,
                restamp_of: p.restamp_of.as_ref(),
                message: p.message.as_deref(),
                base_url,
                launch_asset: &bundle.launch,
                assets: &bundle.assets,
                expo_client: bundle.expo_config.as_deref(),
                launch_file_extension: p.format == ManifestFormat::V1,
            }),
        },
        PackageContent::RollBackToEmbedded => Payload {
            part: PartName::Directive,
            bytes: manifest::directive_bytes(
                &Directive::RollBackToEmbedded {
                    commit_time: p.created_at,
                },
                &p.pointer.channel,
                p.pointer.platform,
                &p.pointer.fingerprint,
            ),
        },
    }
}

/// The payload of a pointer's noUpdateAvailable directive.
pub fn no_update_payload(pointer: &PointerId) -> Payload {
    Payload {
        part: PartName::Directive,
        bytes: manifest::directive_bytes(
            &Directive::NoUpdateAvailable,
            &pointer.channel,
            pointer.platform,
            &pointer.fingerprint,
        ),
    }
}

/// The Expo body and the DSSE envelope of a signed payload.
#[derive(Clone)]
pub struct SignedPair {
    /// `manifest`: the multipart body.
    pub body: Vec<u8>,
    /// Its Content-Type.
    pub content_type: String,
    /// `manifest.json`: the envelope.
    pub envelope: Vec<u8>,
}

/// Builds the two signed objects of a payload.
pub fn signed_pair(payload: &Payload, sigs: &Signatures) -> SignedPair {
    let body = manifest::multipart(payload.part, &payload.bytes, sigs.expo(), sigs.expo_chain());
    SignedPair {
        content_type: body.content_type(),
        body: body.bytes,
        envelope: signing::envelope(payload.payload_type(), &payload.bytes, sigs),
    }
}

fn objects(key: String, pair: SignedPair, cache_control: &str) -> [PublicObject; 2] {
    [
        PublicObject {
            key: format!("{key}.json"),
            bytes: pair.envelope,
            meta: ObjectMeta::new("application/json", cache_control),
        },
        PublicObject {
            key,
            bytes: pair.body,
            meta: ObjectMeta::new(pair.content_type, cache_control),
        },
    ]
}

fn checked_pair(payload: &Payload, sigs: &Signatures, body_sha256: &Sha256Digest, what: &str) -> Result<SignedPair> {
    let pair = signed_pair(payload, sigs);
    let got = Sha256Digest::of(&pair.body);
    // The one change of rendering allowed: the part framing (form-data →
    // inline, docs/format.md), which no signature covers. The recorded digest of an
    // older package is of its form-data body; the part bytes must be the same.
    let legacy = || {
        let body = manifest::multipart_framed(
            payload.part,
            &payload.bytes,
            sigs.expo(),
            sigs.expo_chain(),
            Framing::LegacyFormData,
        );
        Sha256Digest::of(&body.bytes) == *body_sha256
    };
    if got != *body_sha256 && !legacy() {
        return Err(RenderError::NotAsSigned {
            what: what.to_string(),
            got: got.to_string(),
            signed: body_sha256.to_string(),
        }
        .into());
    }
    Ok(pair)
}

/// Key of a package's immutable Expo body.
pub fn package_key(p: &Package) -> String {
    format!("public/updates/{}/{}/manifest", p.version, p.pointer.platform)
}

/// The immutable objects of a package (envelope first).
pub fn package_objects(p: &Package) -> Result<[PublicObject; 2]> {
    let what = format!("package {}/{}", p.pointer.platform, p.version);
    let pair = checked_pair(&package_payload(p), p.signatures(), p.body_sha256(), &what)?;
    Ok(objects(package_key(p), pair, IMMUTABLE_CACHE_CONTROL))
}

/// The two pointer objects (envelope first) of a pointer; none for a
/// pointer without packages.
pub fn pointer_objects(view: &PointerView) -> Result<Option<[PublicObject; 2]>> {
    let pointer = &view.pointer;
    let pair = match pointer_state(&view.packages, view.rollout.as_ref()) {
        PointerState::Empty => return Ok(None),
        PointerState::Live(p) => live_pair(p)?,
        PointerState::NoUpdateAvailable => {
            let d = view.directive.as_ref().ok_or_else(|| RenderError::NoDirective {
                pointer: pointer.clone(),
            })?;
            checked_pair(
                &no_update_payload(pointer),
                &d.signatures,
                &d.body_sha256,
                &format!("the directive of {pointer}"),
            )?
        }
    };
    Ok(Some(objects(pointer.manifest_key(), pair, POINTER_CACHE_CONTROL)))
}

/// What pointers and rollout buckets serve of a package: its Expo layer as
/// `otapub refresh` last re-signed it, else its own.
fn live_pair(p: &Package) -> Result<SignedPair> {
    let (sigs, body_sha256) = p.serving();
    checked_pair(
        &package_payload(p),
        &sigs,
        body_sha256,
        &format!("package {}/{}", p.pointer.platform, p.version),
    )
}

/// A pointer's rollout objects: its signed record, and the candidate's
/// objects under each candidate bucket (none unless running).
#[derive(Debug, Clone)]
pub struct RolloutObjects {
    /// The generation of the commit that last changed the rollout: the
    /// stamp of every object here.
    pub stamp: u64,
    /// `P/rollout.json`.
    pub record: PublicObject,
    /// Per candidate bucket, in bucket order: `P/rollout/<bb>/manifest.json`, then `manifest`.
    pub buckets: Vec<PublicObject>,
}

/// The rollout objects of a pointer that has (or had) a rollout. The record
/// of an ended rollout stays as a tombstone: it carries the generation that
/// keeps a stale writer from putting buckets back.
pub fn rollout_objects(view: &PointerView) -> Result<Option<RolloutObjects>> {
    let Some(r) = &view.rollout else {
        return Ok(None);
    };
    let pointer = &view.pointer;
    let record = PublicObject {
        key: pointer.rollout_record_key(),
        bytes: signing::envelope(signing::ROLLOUT_PAYLOAD_TYPE, &r.record.payload, &r.record.signatures),
        meta: ObjectMeta::new("application/json", POINTER_CACHE_CONTROL),
    };
    let mut buckets = Vec::new();
    let candidate =
        view.packages
            .iter()
            .find(|p| p.version == r.candidate)
            .ok_or_else(|| RenderError::NoCandidate {
                pointer: pointer.clone(),
                candidate: r.candidate.to_string(),
            })?;
    // A banned candidate is never served, whatever a row says.
    if candidate.ban.is_none() {
        let buckets_now = r.live_buckets();
        if !buckets_now.is_empty() {
            let pair = live_pair(candidate)?;
            for b in buckets_now {
                buckets.extend(objects(pointer.bucket_key(b), pair.clone(), POINTER_CACHE_CONTROL));
            }
        }
    }
    Ok(Some(RolloutObjects {
        stamp: r.generation,
        record,
        buckets,
    }))
}

/// One pointer's share of the index.
#[derive(Debug, Clone)]
pub struct PointerView {
    /// The pointer.
    pub pointer: PointerId,
    /// Its packages, oldest first.
    pub packages: Vec<Package>,
    /// Its stored noUpdateAvailable directive.
    pub directive: Option<StoredDirective>,
    /// Its latest rollout (running, paused, or the last one that ended).
    pub rollout: Option<Rollout>,
}

/// The whole public tree but the assets: immutable objects first, then
/// pointers, each group sorted by key.
pub fn render(view: &[PointerView]) -> Result<Vec<PublicObject>> {
    let mut immutable = Vec::new();
    let mut pointers = Vec::new();
    for v in view {
        for p in &v.packages {
            immutable.extend(package_objects(p)?);
        }
        if let Some(objs) = pointer_objects(v)? {
            pointers.extend(objs);
        }
        if let Some(r) = rollout_objects(v)? {
            pointers.push(r.record);
            pointers.extend(r.buckets);
        }
    }
    immutable.sort_by(|a, b| a.key.cmp(&b.key));
    pointers.sort_by(|a, b| a.key.cmp(&b.key));
    immutable.extend(pointers);
    Ok(immutable)
}
