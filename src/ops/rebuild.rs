//! `otapub index rebuild`: recovers the index from the store alone — packages,
//! re-stamps and directives from the immutable objects under `updates/`, bans
//! from the signed ban records, rollouts from the signed `rollout.json`
//! records, embedded patch bases from their signed records, patches checked
//! by applying them, `noUpdateAvailable` directives from the pointers. Signatures come from the objects themselves, so nothing is
//! re-signed; each recovered package must render back to the exact bytes it
//! was read from.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Context, Plan, BASE_URL_SETTING};
use crate::digest::Sha256Digest;
use crate::docs::{AssetDoc, BanRecord, BuildRecord, DirectiveDoc, EmbeddedRecord, ManifestDoc, RolloutDoc};
use crate::error::Result;
use crate::index::INDEX_KEY;
use crate::index::{self, live};
use crate::manifest::{boundary_of, format_time, parse_multipart, BUNDLE_CONTENT_TYPE};
use crate::model::{
    AssetRef, Ban, Build, Bundle, EmbeddedBase, Kind, Lifecycle, ManifestFormat, NewEvent, Package, PackageContent,
    PackageDraft, PatchRow, Permutation, Rollout, ServedExpo, Signatures, SignedRecord, StoredDirective,
};
use crate::names::{Channel, Fingerprint, Platform, PointerId, Version};
use crate::signing::{self, Signer, TrustedKeys};
use crate::store::Object;
use crate::tree;

/// What the rebuild recovered.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RebuildOutcome {
    /// Packages recovered.
    pub packages: usize,
    /// Ban records applied.
    pub bans: usize,
    /// Rollouts recovered from their signed `rollout.json` (the last one of each pointer).
    pub rollouts: usize,
    /// Embedded patch bases recovered from their signed records.
    pub embedded: usize,
    /// Builds in the field recovered from their signed records.
    #[serde(default)]
    pub builds: usize,
    /// Launch-asset patches recovered (each applied to its base first).
    pub patches: usize,
    /// Objects under `updates/` that could not be recovered, with why.
    pub skipped: Vec<String>,
    /// Recovered packages newer than what their pointer serves: either
    /// committed packages whose pointer write was lost, or leftovers of a
    /// publish that died before its commit. Keep them or ban them.
    pub unconfirmed: Vec<String>,
}

fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("bad time {s:?}: {e}"))
}

/// A signed part read back from an Expo body and its envelope.
struct SignedPart {
    name: String,
    bytes: Vec<u8>,
    signatures: Signatures,
}

fn read_signed(body: &Object, envelope: &Object, trusted: &TrustedKeys) -> std::result::Result<SignedPart, String> {
    let boundary = boundary_of(&body.meta.content_type).ok_or("the body's Content-Type names no boundary")?;
    let parts = parse_multipart(boundary, &body.bytes)?;
    let first = parts.first().ok_or("the body has no part")?;
    let env = signing::parse_envelope(&envelope.bytes)?;
    if env.payload != first.body {
        return Err("the envelope's payload is not the body's first part".into());
    }
    let expected_type = match first.name() {
        Some("directive") => signing::DIRECTIVE_PAYLOAD_TYPE,
        _ => signing::MANIFEST_PAYLOAD_TYPE,
    };
    if env.payload_type != expected_type {
        return Err(format!(
            "the envelope's payloadType is {:?}, not {expected_type:?}",
            env.payload_type
        ));
    }
    // Only what the operator's keys signed is adopted: bytes someone with
    // bucket access slipped in must never be re-stamped with the real key.
    let chain = parts
        .iter()
        .find(|p| p.name() == Some("certificate_chain"))
        .map(|p| String::from_utf8(p.body.clone()))
        .transpose()
        .map_err(|_| "the certificate_chain part is not text")?;
    let signatures = Signatures::adopt(&env, trusted, first.header("expo-signature").map(str::to_string), chain)
        .map_err(|e| format!("not adopted: {e}"))?;
    Ok(SignedPart {
        name: first.name().unwrap_or("").to_string(),
        bytes: first.body.clone(),
        signatures,
    })
}

fn asset_ref(a: &AssetDoc) -> std::result::Result<(AssetRef, String), String> {
    let (_, sha) = a
        .url
        .rsplit_once("/assets/")
        .ok_or_else(|| format!("asset url {} is not under /assets/", a.url))?;
    let ext = a.file_extension.as_deref().unwrap_or(".bundle");
    let ext = ext.strip_prefix('.').unwrap_or(ext);
    let sha256: Sha256Digest = sha.parse()?;
    if a.hash != sha256.expo_hash() {
        return Err(format!(
            "asset {} has hash {:?}, not the SHA-256 its url names",
            a.url, a.hash
        ));
    }
    Ok((
        AssetRef {
            sha256,
            key: a.key.clone(),
            ext: ext.to_string(),
        },
        a.content_type.clone(),
    ))
}

/// Rebuilds a package from its immutable objects; `assets` collects content types.
fn recover(
    version: &str,
    platform: &str,
    part: SignedPart,
    body_sha256: Sha256Digest,
    assets: &mut BTreeMap<Sha256Digest, String>,
) -> std::result::Result<Package, String> {
    let platform: Platform = platform.parse().map_err(|e| format!("{e}"))?;
    let version = Version::stored(version).map_err(|e| e.to_string())?;
    let mut draft = match part.name.as_str() {
        "manifest" => {
            let doc: ManifestDoc = serde_json::from_slice(&part.bytes).map_err(|e| format!("manifest: {e}"))?;
            if doc.metadata.otapub.version != version.as_str() || doc.metadata.otapub.platform != platform.as_str() {
                return Err("its manifest names another version or platform".into());
            }
            let (launch, _) = asset_ref(&doc.launch_asset)?;
            let base_url = doc
                .launch_asset
                .url
                .rsplit_once("/assets/")
                .map(|(b, _)| b.to_string())
                .ok_or("launch asset url is not under /assets/")?;
            assets.insert(launch.sha256, BUNDLE_CONTENT_TYPE.to_string());
            let mut list = Vec::new();
            for a in &doc.assets {
                let (r, ct) = asset_ref(a)?;
                assets.insert(r.sha256, ct);
                list.push(r);
            }
            PackageDraft {
                pointer: PointerId {
                    channel: doc
                        .metadata
                        .otapub
                        .channel
                        .parse::<Channel>()
                        .map_err(|e| e.to_string())?,
                    platform,
                    fingerprint: doc.runtime_version.parse::<Fingerprint>().map_err(|e| e.to_string())?,
                },
                version,
                created_at: parse_time(&doc.created_at)?,
                restamp_of: doc
                    .metadata
                    .otapub
                    .restamp_of
                    .as_deref()
                    .map(Version::stored)
                    .transpose()
                    .map_err(|e| e.to_string())?,
                message: doc.metadata.otapub.message,
                content: PackageContent::Update {
                    manifest_id: doc.id,
                    base_url,
                    bundle: Bundle {
                        launch: AssetRef {
                            ext: "bundle".into(),
                            ..launch
                        },
                        assets: list,
                        expo_config: doc.extra.and_then(|e| e.expo_client),
                    },
                },
                content_hash: Sha256Digest::from_bytes([0; 32]), // set below, from the draft itself
                format: if doc.launch_asset.file_extension.is_some() {
                    ManifestFormat::V1
                } else {
                    ManifestFormat::V2
                },
            }
        }
        "directive" => {
            let doc: DirectiveDoc = serde_json::from_slice(&part.bytes).map_err(|e| format!("directive: {e}"))?;
            let commit = doc.parameters.ok_or("rollBackToEmbedded without commitTime")?;
            if doc.kind != "rollBackToEmbedded" || doc.extra.otapub.platform != platform.as_str() {
                return Err(format!(
                    "an immutable {} directive for {}",
                    doc.kind, doc.extra.otapub.platform
                ));
            }
            PackageDraft {
                pointer: PointerId {
                    channel: doc.extra.otapub.channel.parse::<Channel>().map_err(|e| e.to_string())?,
                    platform,
                    fingerprint: doc
                        .extra
                        .otapub
                        .fingerprint
                        .parse::<Fingerprint>()
                        .map_err(|e| e.to_string())?,
                },
                version,
                created_at: parse_time(&commit.commit_time)?,
                restamp_of: None,
                message: None,
                content: PackageContent::RollBackToEmbedded,
                content_hash: Sha256Digest::from_bytes([0; 32]), // set below, from the draft itself
                format: ManifestFormat::V2,
            }
        }
        other => return Err(format!("first part is named {other:?}")),
    };
    draft.content_hash = draft.expected_content_hash();
    // Adopted only because `read_signed` verified these signatures with a trusted key.
    let pkg = Package::signed(draft, part.signatures, body_sha256);
    // Only what renders back to the exact bytes read is recovered.
    tree::package_objects(&pkg).map_err(|e| e.to_string())?;
    Ok(pkg)
}

/// Reads an embedded base's signed record, adopted only if a trusted key signed it.
fn read_embedded(obj: &Object, trusted: &TrustedKeys) -> std::result::Result<(EmbeddedRecord, EmbeddedBase), String> {
    let env = signing::parse_envelope(&obj.bytes)?;
    if env.payload_type != signing::EMBEDDED_PAYLOAD_TYPE {
        return Err(format!("payloadType {:?} is not an embedded base's", env.payload_type));
    }
    let signatures = Signatures::adopt(&env, trusted, None, None).map_err(|e| format!("not adopted: {e}"))?;
    let doc: EmbeddedRecord = serde_json::from_slice(&env.payload).map_err(|e| format!("embedded record: {e}"))?;
    if crate::names::uuid_bytes(&doc.update_id).is_none() || doc.update_id != doc.update_id.to_ascii_lowercase() {
        return Err(format!("update id {:?} is not a lowercase UUID", doc.update_id));
    }
    let base = EmbeddedBase {
        platform: doc.platform.parse().map_err(|e| format!("{e}"))?,
        fingerprint: doc.fingerprint.parse().map_err(|e| format!("{e}"))?,
        update_id: doc.update_id.clone(),
        launch_asset: doc.launch_asset.parse()?,
        record: SignedRecord {
            payload: env.payload.clone(),
            signatures,
        },
    };
    Ok((doc, base))
}

/// Reads a build's signed record, adopted only if a trusted key signed it.
fn read_build(obj: &Object, trusted: &TrustedKeys) -> std::result::Result<Build, String> {
    let env = signing::parse_envelope(&obj.bytes)?;
    if env.payload_type != signing::BUILD_PAYLOAD_TYPE {
        return Err(format!("payloadType {:?} is not a build's", env.payload_type));
    }
    let signatures = Signatures::adopt(&env, trusted, None, None).map_err(|e| format!("not adopted: {e}"))?;
    let doc: BuildRecord = serde_json::from_slice(&env.payload).map_err(|e| format!("build record: {e}"))?;
    Ok(Build {
        platform: doc.platform.parse().map_err(|e| format!("{e}"))?,
        fingerprint: doc.fingerprint.parse().map_err(|e| format!("{e}"))?,
        note: doc.note,
        added_at: parse_time(&doc.added_at)?,
        record: SignedRecord {
            payload: env.payload.clone(),
            signatures,
        },
    })
}

/// Reads a pointer's signed rollout record, adopted only if a trusted key signed it.
fn read_rollout(
    obj: &Object,
    pointer: &PointerId,
    trusted: &TrustedKeys,
) -> std::result::Result<(RolloutDoc, Signatures), String> {
    let env = signing::parse_envelope(&obj.bytes)?;
    if env.payload_type != signing::ROLLOUT_PAYLOAD_TYPE {
        return Err(format!("payloadType {:?} is not a rollout record's", env.payload_type));
    }
    let signatures = Signatures::adopt(&env, trusted, None, None).map_err(|e| format!("not adopted: {e}"))?;
    let doc: RolloutDoc = serde_json::from_slice(&env.payload).map_err(|e| format!("rollout record: {e}"))?;
    if doc.pointer != pointer.to_string() {
        return Err(format!("the record names pointer {}", doc.pointer));
    }
    // The record must render back to exactly what was read.
    if serde_json::to_vec(&doc).ok().as_deref() != Some(&env.payload[..]) {
        return Err("the record is not in the form otapub writes".into());
    }
    Ok((doc, signatures))
}

/// Records a rollout read back from its signed record.
fn adopt_rollout(
    tx: &rusqlite::Connection,
    pointer: &PointerId,
    doc: &RolloutDoc,
    signatures: &Signatures,
    now: DateTime<Utc>,
) -> std::result::Result<(), String> {
    let version = |v: &str| Version::stored(v).map_err(|e| e.to_string());
    let candidate_version = version(&doc.candidate.version)?;
    let candidate = index::package(tx, pointer.platform, &candidate_version)
        .map_err(|e| e.to_string())?
        .filter(|p| &p.pointer == pointer)
        .ok_or_else(|| {
            format!(
                "candidate {} is not a recovered package of {pointer}",
                doc.candidate.version
            )
        })?;
    let control = doc.control.as_ref().map(|c| version(&c.version)).transpose()?;
    let state: Lifecycle = doc.state.parse()?;
    let r = Rollout {
        id: 0,
        pointer: pointer.clone(),
        candidate: candidate_version,
        control: control.filter(|c| index::package(tx, pointer.platform, c).ok().flatten().is_some()),
        strategy: doc.strategy.parse()?,
        step: doc.step,
        abort_threshold: doc.abort_threshold,
        percent: doc.percent,
        permutation: Permutation::from_slice(&doc.permutation)?,
        state,
        started_at: candidate.created_at,
        updated_at: now,
        generation: doc.generation,
        record: SignedRecord {
            payload: serde_json::to_vec(doc).map_err(|e| e.to_string())?,
            signatures: signatures.clone(),
        },
        gate: None,
        // An aborted rollout's reason is its candidate's ban reason.
        reason: (state == Lifecycle::Aborted).then(|| {
            candidate.ban.as_ref().map_or_else(
                || "aborted (recovered by index rebuild)".to_string(),
                |b| b.reason.clone(),
            )
        }),
    };
    index::insert_rollout(tx, &r).map_err(|e| e.to_string())?;
    Ok(())
}

/// Rebuilds the index. Refuses to replace an existing one unless `force`.
/// `signer` signs the `noUpdateAvailable` directive of a pointer whose
/// stored one cannot be recovered.
pub async fn rebuild(
    ctx: &Context<'_>,
    signer: Option<&Signer>,
    force: bool,
    trusted: &TrustedKeys,
) -> Result<RebuildOutcome> {
    if trusted.is_empty() {
        return Err(super::OpError::NoTrust.into());
    }
    if !force && ctx.store.etag(INDEX_KEY).await?.is_some() {
        return Err(crate::commit::CommitError::HasIndex {
            store: ctx.store.url().to_string(),
        }
        .into());
    }
    let mut out = RebuildOutcome::default();
    let mut packages = Vec::new();
    let mut asset_types = BTreeMap::new();
    for info in ctx.store.list("public/updates/").await? {
        let Some(rest) = info
            .key
            .strip_prefix("public/updates/")
            .and_then(|r| r.strip_suffix("/manifest"))
        else {
            continue;
        };
        let Some((version, platform)) = rest.split_once('/') else {
            continue;
        };
        let body = ctx.store.get(&info.key).await?;
        let envelope = ctx.store.get(&format!("{}.json", info.key)).await?;
        let (Some(body), Some(envelope)) = (body, envelope) else {
            out.skipped.push(format!("{}: its manifest.json is missing", info.key));
            continue;
        };
        let body_sha256 = Sha256Digest::of(&body.bytes);
        match read_signed(&body, &envelope, trusted)
            .and_then(|part| recover(version, platform, part, body_sha256, &mut asset_types))
        {
            Ok(p) => packages.push(p),
            Err(e) => out.skipped.push(format!("{}: {e}", info.key)),
        }
    }
    packages.sort_by(|a, b| (a.created_at, &a.pointer, &a.version).cmp(&(b.created_at, &b.pointer, &b.version)));

    let mut bans = Vec::new();
    for info in ctx.store.list("state/bans/").await? {
        let Some(obj) = ctx.store.get(&info.key).await? else {
            continue;
        };
        let parsed = signing::parse_envelope(&obj.bytes).and_then(|env| {
            if env.payload_type != signing::BAN_PAYLOAD_TYPE {
                return Err(format!("payloadType {:?} is not a ban record's", env.payload_type));
            }
            trusted.verify(&env).map_err(|e| format!("not adopted: {e}"))?;
            serde_json::from_slice::<BanRecord>(&env.payload).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(b) => bans.push(b),
            Err(e) => out.skipped.push(format!("{}: {e}", info.key)),
        }
    }

    let sizes: BTreeMap<Sha256Digest, u64> = ctx
        .store
        .list("public/assets/")
        .await?
        .into_iter()
        .filter_map(|o| Some((o.key["public/assets/".len()..].parse().ok()?, o.size)))
        .collect();

    // What each pointer serves now, to list what is newer than it.
    let pointers: BTreeSet<PointerId> = packages.iter().map(|p| p.pointer.clone()).collect();
    // Each pointer pair read and parsed once: the signed part and its body's SHA-256.
    let mut served: BTreeMap<PointerId, Option<(SignedPart, Sha256Digest)>> = BTreeMap::new();
    // The generation stamps the pointer objects carry, to continue from.
    let mut stamps: BTreeMap<PointerId, (Sha256Digest, u64)> = BTreeMap::new();
    for p in &pointers {
        let body = ctx.store.get(&p.manifest_key()).await?;
        let envelope = ctx.store.get(&p.envelope_key()).await?;
        if let Some(b) = &body {
            let generation = [Some(b), envelope.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|o| o.meta.generation)
                .max()
                .unwrap_or(0);
            stamps.insert(p.clone(), (Sha256Digest::of(&b.bytes), generation));
        }
        let part = body
            .zip(envelope)
            .and_then(|(b, e)| Some((read_signed(&b, &e, trusted).ok()?, Sha256Digest::of(&b.bytes))));
        served.insert(p.clone(), part);
    }

    // Embedded patch bases, from their signed records.
    let mut embedded = Vec::new();
    for info in ctx.store.list("state/embedded/").await? {
        let Some(obj) = ctx.store.get(&info.key).await? else {
            continue;
        };
        match read_embedded(&obj, trusted) {
            Ok(e) => embedded.push(e),
            Err(e) => out.skipped.push(format!("{}: {e}", info.key)),
        }
    }

    // Builds in the field, from their signed records.
    let mut builds = Vec::new();
    for info in ctx.store.list("state/builds/").await? {
        let Some(obj) = ctx.store.get(&info.key).await? else {
            continue;
        };
        match read_build(&obj, trusted) {
            Ok(b) => builds.push(b),
            Err(e) => out.skipped.push(format!("{}: {e}", info.key)),
        }
    }

    let patches = recover_patches(ctx.store, &packages, &embedded, &mut out.skipped).await?;

    // The last rollout of each pointer, from its signed record.
    let mut rollouts: BTreeMap<PointerId, (RolloutDoc, Signatures)> = BTreeMap::new();
    for p in &pointers {
        let key = p.rollout_record_key();
        let Some(obj) = ctx.store.get(&key).await? else {
            continue;
        };
        match read_rollout(&obj, p, trusted) {
            Ok(r) => {
                rollouts.insert(p.clone(), r);
            }
            Err(e) => out.skipped.push(format!("{key}: {e}")),
        }
    }

    // A running rollout's buckets serve its candidate, perhaps re-signed by
    // `otapub refresh`: one bucket pair is read, to adopt that layer.
    let mut bucket_served: BTreeMap<PointerId, (SignedPart, Sha256Digest)> = BTreeMap::new();
    for (pointer, (doc, _)) in &rollouts {
        let Some(&b) = doc.buckets.first() else { continue };
        let key = pointer.bucket_key(b);
        let (Some(body), Some(envelope)) = (ctx.store.get(&key).await?, ctx.store.get(&format!("{key}.json")).await?)
        else {
            continue;
        };
        if let Ok(part) = read_signed(&body, &envelope, trusted) {
            bucket_served.insert(pointer.clone(), (part, Sha256Digest::of(&body.bytes)));
        }
    }

    let gathered = out;
    let actor = ctx.actor.clone();
    let all_pointers: std::collections::BTreeSet<PointerId> = pointers.iter().cloned().collect();
    // Through the commit protocol like every writer: the new index replaces
    // the stored one by a conditional write, and every pointer is then
    // written forward-only from it (most are already what it renders).
    crate::commit::commit_new_index(ctx, Kind::IndexRebuild, force, |idx, now| {
    let mut out = gathered.clone();
    let outcome = idx.transact(Kind::IndexRebuild, &actor, now, |tx| {
        for (sha, ct) in &asset_types {
            index::put_asset(tx, sha, sizes.get(sha).copied().unwrap_or(0), ct)?;
        }
        if let Some(newest) = packages.iter().rev().find_map(|p| match &p.content {
            PackageContent::Update { base_url, .. } => Some(base_url.clone()),
            PackageContent::RollBackToEmbedded => None,
        }) {
            index::set_setting(tx, BASE_URL_SETTING, &newest)?;
        }
        for p in &packages {
            index::insert_package(tx, p)?;
        }
        for b in &bans {
            let (Ok(platform), Ok(at)) = (b.platform.parse::<Platform>(), parse_time(&b.banned_at)) else {
                out.skipped.push(format!("ban record of {}/{}: unreadable", b.platform, b.version));
                continue;
            };
            let Ok(version) = Version::stored(&b.version) else {
                out.skipped.push(format!("ban record of {}/{:?}: not a version", b.platform, b.version));
                continue;
            };
            match index::package(tx, platform, &version)? {
                Some(p) => {
                    index::ban_package(tx, p.id, &Ban { at, reason: b.reason.clone(), by: b.actor.clone() })?;
                    out.bans += 1;
                }
                None => out.skipped.push(format!("ban record of {platform}/{version}: no such package")),
            }
        }
        for (record, base) in &embedded {
            let Some(&size) = sizes.get(&base.launch_asset) else {
                out.skipped.push(format!(
                    "{}: its launch asset {} is not in the store",
                    super::embedded::embedded_record_key(base.platform, &base.update_id),
                    base.launch_asset
                ));
                continue;
            };
            index::put_asset(tx, &base.launch_asset, size, crate::manifest::BUNDLE_CONTENT_TYPE)?;
            let at = parse_time(&record.added_at).unwrap_or(now);
            index::insert_embedded_base(tx, base, at)?;
            out.embedded += 1;
        }
        for b in &builds {
            index::put_build(tx, b)?;
            out.builds += 1;
        }
        for row in &patches {
            index::insert_patch(tx, row)?;
            out.patches += 1;
        }
        for (pointer, (doc, signatures)) in &rollouts {
            if let Err(e) = adopt_rollout(tx, pointer, doc, signatures, now) {
                out.skipped.push(format!("{}: {e}", pointer.rollout_record_key()));
            } else {
                out.rollouts += 1;
            }
        }
        for pointer in &pointers {
            let pkgs = index::pointer_packages(tx, pointer)?;
            let rollout = index::latest_rollout(tx, pointer)?;
            let candidate = rollout.as_ref().filter(|r| r.state.is_active()).map(|r| r.candidate.clone());
            let served_at = served[pointer].as_ref().and_then(|(part, _)| {
                let v: serde_json::Value = serde_json::from_slice(&part.bytes).ok()?;
                let t = v["createdAt"].as_str().or(v["parameters"]["commitTime"].as_str())?;
                parse_time(t).ok()
            });
            for p in &pkgs {
                if served_at.is_none_or(|t| p.created_at > t) && p.ban.is_none() && candidate.as_ref() != Some(&p.version) {
                    out.unconfirmed.push(format!("{}/{} on {} (createdAt {})", p.pointer.platform, p.version, pointer, format_time(p.created_at)));
                }
            }
            // A pointer (or a rollout bucket) re-signed by `otapub refresh`
            // serves its package with another Expo layer than the immutable
            // twin: adopt it.
            let live = live::live_package(&pkgs, rollout.as_ref());
            let bucketed = candidate.as_ref().and_then(|c| pkgs.iter().find(|p| &p.version == c));
            for (read, package) in [(served[pointer].as_ref(), live), (bucket_served.get(pointer), bucketed)] {
                if let (Some((part, body_sha256)), Some(p)) = (read, package) {
                    adopt_served_layer(tx, p, part, body_sha256)?;
                }
            }
            if pkgs.is_empty() || live::live_package(&pkgs, rollout.as_ref()).is_some() {
                continue;
            }
            let payload = tree::no_update_payload(pointer);
            let recovered = served[pointer].as_ref().and_then(|(part, body_sha256)| {
                (part.bytes == payload.bytes).then(|| StoredDirective {
                    signatures: part.signatures.clone(),
                    body_sha256: *body_sha256,
                })
            });
            let directive = match (recovered, signer) {
                (Some(d), _) => d,
                (None, Some(s)) => {
                    let signatures = s.sign_payload(&payload);
                    let body_sha256 = Sha256Digest::of(&tree::signed_pair(&payload, &signatures).body);
                    StoredDirective { signatures, body_sha256 }
                }
                (None, None) => {
                    return Err(super::OpError::DirectiveLost { pointer: pointer.clone() }.into())
                }
            };
            index::put_pointer_directive(tx, pointer, &directive)?;
        }
        out.packages = packages.len();
        let event = NewEvent {
            action: Kind::IndexRebuild,
            target: ctx.store.url(),
            details: serde_json::json!({ "packages": out.packages, "bans": out.bans, "embedded": out.embedded, "builds": out.builds, "patches": out.patches, "rollouts": out.rollouts, "skipped": out.skipped, "unconfirmed": out.unconfirmed }),
        };
        Ok((out, vec![event]))
    })?;
    let rollout_floor = rollouts.values().map(|(d, _)| d.generation).max().unwrap_or(0);
    idx.raise_generation(stamps.values().map(|(_, g)| *g).max().unwrap_or(0).max(rollout_floor))?;
    for (pointer, (body_sha256, generation)) in &stamps {
        idx.restamp_pointer(pointer, body_sha256, *generation)?;
    }
    Ok(Plan::index_only(outcome, all_pointers.clone()))
    })
    .await
}

/// Records the Expo layer a pointer or bucket serves `p` with, when it is
/// `p`'s part with another signature or chain than the immutable twin's.
fn adopt_served_layer(
    tx: &rusqlite::Connection,
    p: &Package,
    part: &SignedPart,
    body_sha256: &Sha256Digest,
) -> Result<()> {
    let own = p.signatures();
    let differs = part.signatures.expo() != own.expo() || part.signatures.expo_chain() != own.expo_chain();
    if part.bytes != tree::package_payload(p).bytes || !differs {
        return Ok(());
    }
    let Some(signature) = part.signatures.expo() else {
        return Ok(());
    };
    let layer = ServedExpo {
        signature: signature.to_string(),
        chain: part.signatures.expo_chain().map(str::to_string),
        body_sha256: *body_sha256,
    };
    index::set_served_expo(tx, p.id, &layer)
}

/// The patches under `public/patches/` between recovered updates, each
/// adopted only if applying it to its base's launch asset gives exactly the
/// requested update's (a patch carries no signature: that is its check).
async fn recover_patches(
    store: &dyn crate::store::Store,
    packages: &[Package],
    embedded: &[(EmbeddedRecord, EmbeddedBase)],
    skipped: &mut Vec<String>,
) -> Result<Vec<PatchRow>> {
    let mut launch: BTreeMap<String, Sha256Digest> = BTreeMap::new();
    for p in packages {
        if let PackageContent::Update {
            manifest_id, bundle, ..
        } = &p.content
        {
            launch.insert(manifest_id.to_ascii_lowercase(), bundle.launch.sha256);
        }
    }
    for (_, e) in embedded {
        launch.entry(e.update_id.clone()).or_insert(e.launch_asset);
    }
    let mut target_bytes: Option<(Sha256Digest, Option<Vec<u8>>)> = None;
    let mut rows = Vec::new();
    for info in store.list("public/patches/").await? {
        let key = info.key;
        let Some((requested, base)) = key
            .strip_prefix("public/patches/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(r, b)| Some((launch.get(r).map(|t| (r, *t))?, launch.get(b).map(|s| (b, *s))?)))
        else {
            skipped.push(format!("{key}: not a patch between two recovered updates"));
            continue;
        };
        let ((requested_id, target), (base_id, base_sha)) = (requested, base);
        // Listed by requested id: one target held at a time, bounded memory.
        if target_bytes.as_ref().is_none_or(|(sha, _)| *sha != target) {
            target_bytes = Some((target, asset_bytes(store, &target).await?));
        }
        let (Some((_, Some(new))), Some(old)) = (&target_bytes, asset_bytes(store, &base_sha).await?) else {
            skipped.push(format!("{key}: a launch asset it joins is missing or damaged"));
            continue;
        };
        let Some(patch) = store.get(&key).await? else { continue };
        match crate::patch::apply(&old, &patch.bytes) {
            Ok(out) if out == *new => rows.push(PatchRow {
                requested_id: requested_id.to_string(),
                base_id: base_id.to_string(),
                target,
                base: base_sha,
                size: Some(patch.bytes.len() as u64),
                full_size: new.len() as u64,
                kept: Some(Sha256Digest::of(&patch.bytes)),
            }),
            Ok(_) => skipped.push(format!(
                "{key}: applied to its base it does not give the update's launch asset"
            )),
            Err(e) => skipped.push(format!("{key}: {e}")),
        }
    }
    Ok(rows)
}

/// An asset's bytes, if the store holds them undamaged.
async fn asset_bytes(store: &dyn crate::store::Store, sha: &Sha256Digest) -> Result<Option<Vec<u8>>> {
    let got = store.get(&format!("public/assets/{sha}")).await?;
    Ok(got.map(|o| o.bytes).filter(|b| Sha256Digest::of(b) == *sha))
}
