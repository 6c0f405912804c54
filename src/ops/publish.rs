//! `otapub publish`: an `expo export` directory becomes one package per
//! platform — assets stored once by content hash, manifests signed, pointers
//! rewritten from the index.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::value::RawValue;

use super::{commit, next_created_at, stamp, AssetUpload, Context, Plan, BASE_URL_SETTING};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::export::{self, FileHash};
use crate::index::{self, Index};
use crate::manifest::{asset_content_type, format_time, BUNDLE_CONTENT_TYPE};
use crate::model::{
    update_content_hash, AssetRef, Bundle, Kind, ManifestFormat, NewEvent, PackageContent, PackageDraft,
};
use crate::names::{Channel, Fingerprint, Platform, PointerId, Version};
use crate::project::hermes::{self, DeltaPlan};
use crate::rollout::RolloutPlan;
use crate::signing::Signer;
use crate::store::Store;

/// Default base URL of a local store: what `otapub serve` listens on.
pub const LOCAL_BASE_URL: &str = "http://127.0.0.1:8080";

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The `expo export` directory of each platform published (one
    /// directory for all, or one per platform when each was exported by
    /// its own Metro process).
    pub exports: BTreeMap<Platform, PathBuf>,
    /// Channel.
    pub channel: Channel,
    /// The runtime version per platform; the keys are the platforms published.
    pub fingerprints: BTreeMap<Platform, Fingerprint>,
    /// Version, or derived from the content.
    pub version: Option<Version>,
    /// Message.
    pub message: Option<String>,
    /// The public app config (`npx expo config --type public --json`).
    pub expo_config: Option<PathBuf>,
    /// Public base URL of `public/`.
    pub base_url: Option<String>,
    /// Allow a base URL other than the recorded one.
    pub change_base_url: bool,
    /// Start a rollout with the new packages as candidates.
    pub rollout: Option<RolloutPlan>,
    /// Refuse, with nothing written, when no build is recorded for a
    /// platform's runtime version (`otapub builds add`).
    pub require_build: bool,
    /// Compile these platforms' JavaScript exports into Hermes bytecode
    /// against what their devices run (`otapub publish` in a project).
    pub delta: Option<DeltaPlan>,
}

/// One platform's result.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PublishedPackage {
    /// Platform.
    pub platform: Platform,
    /// Pointer path.
    pub pointer: String,
    /// Manifest id.
    pub id: String,
    /// createdAt.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// False when this exact package was already published (a retry).
    pub new: bool,
    /// The runtime version it was published to.
    #[serde(rename = "runtimeVersion", default)]
    pub runtime_version: String,
    /// The URL builds of that runtime version check.
    #[serde(default)]
    pub url: String,
    /// Whether a build in the field has that runtime version (`otapub builds`).
    #[serde(rename = "buildRecorded", default)]
    pub build_recorded: bool,
}

/// What a publish did.
#[derive(Debug, Clone, Serialize)]
pub struct PublishOutcome {
    /// The version (given or derived).
    pub version: Version,
    /// Whether the version was derived from the content.
    pub derived_version: bool,
    /// One entry per platform.
    pub packages: Vec<PublishedPackage>,
}

/// Normalizes and checks a base URL.
pub fn normalize_base_url(url: &str) -> Result<String> {
    crate::names::public_base_url(url).ok_or_else(|| super::OpError::BaseUrl { url: url.to_string() }.into())
}

fn read_expo_config(path: &Path) -> Result<Box<RawValue>> {
    let path_buf = || path.to_path_buf();
    let text = std::fs::read_to_string(path).map_err(|e| super::OpError::ExpoConfigUnreadable {
        path: path_buf(),
        reason: e.to_string(),
    })?;
    // Parsed with key order kept, then written compactly: the same file always
    // embeds as the same bytes.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| super::OpError::ExpoConfigNotJson {
        path: path_buf(),
        reason: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(super::OpError::ExpoConfigNotObject { path: path_buf() }.into());
    }
    RawValue::from_string(value.to_string()).map_err(|e| {
        super::OpError::ExpoConfigNotJson {
            path: path_buf(),
            reason: e.to_string(),
        }
        .into()
    })
}

struct PlatformContent {
    pointer: PointerId,
    bundle: Bundle,
    content_hash: Sha256Digest,
}

/// Publishes an export.
pub async fn publish(ctx: &Context<'_>, signer: &Signer, opts: &PublishOptions) -> Result<PublishOutcome> {
    let platforms: Vec<Platform> = opts.fingerprints.keys().copied().collect();
    if platforms.iter().any(|p| !opts.exports.contains_key(p)) {
        return Err(super::OpError::NoExportDir.into());
    }
    if platforms.is_empty() {
        return Err(super::OpError::NoPlatform.into());
    }
    let base_url = opts.base_url.as_deref().map(normalize_base_url).transpose()?;
    let expo_config = opts.expo_config.as_deref().map(read_expo_config).transpose()?;
    let (preloaded, compiled_from) = match &opts.delta {
        Some(plan) => {
            let index = crate::commit::read_index(ctx.store).await?;
            let compiled = compile_bytecode(ctx.store, &index, opts, plan).await?;
            (Some(index), compiled)
        }
        None => (None, BTreeMap::new()),
    };
    tracing::debug!("reading the export");
    let mut by_dir: BTreeMap<PathBuf, Vec<Platform>> = BTreeMap::new();
    for p in &platforms {
        by_dir.entry(opts.exports[p].clone()).or_default().push(*p);
    }
    let exported = tokio::task::spawn_blocking(move || -> Result<BTreeMap<Platform, export::PlatformExport>> {
        let mut all = BTreeMap::new();
        for (dir, ps) in by_dir {
            all.extend(export::read_export(&dir, &ps)?.platforms);
        }
        Ok(all)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    // MD5 only where it is the Expo key and no file name carries it: bundles,
    // and assets not named by Metro's md5.
    let files: Vec<(PathBuf, bool)> = exported
        .values()
        .flat_map(|p| {
            std::iter::once((p.bundle.path.clone(), true)).chain(
                p.assets
                    .iter()
                    .map(|(f, _)| (f.path.clone(), export::md5_from_name(f).is_none())),
            )
        })
        .collect();
    tracing::debug!("hashing {} files", files.len());
    // The index is read while the files hash.
    let bar = ctx.progress.items(files.len() as u64, "hashing files");
    let hashing = tokio::task::spawn_blocking(move || {
        let hashed = export::hash_files(&files, &bar);
        bar.finish_and_clear();
        hashed
    });
    // The index is read (unless the bytecode step read it already), and a
    // store not yet known to honour conditional writes probed (three
    // requests its commit would otherwise wait for), while the files hash.
    // Nothing that stays is written before the commit has checked the
    // input: the probe deletes its key.
    let load = async {
        let index = match preloaded {
            Some(index) => index,
            None => crate::commit::read_index(ctx.store).await?,
        };
        if base_url.is_some() || index.setting(BASE_URL_SETTING)?.is_some() {
            super::probe_ahead(ctx.store, &index).await?;
        }
        Ok::<_, Error>(index)
    };
    let (hashes, index) = tokio::join!(hashing, load);
    let hashes = hashes.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    let index = index?;
    let hash_of = |p: &Path| -> &FileHash { &hashes[p] };

    let mut uploads: BTreeMap<Sha256Digest, AssetUpload> = BTreeMap::new();
    let mut contents = BTreeMap::new();
    for (&platform, pe) in &exported {
        let bh = hash_of(&pe.bundle.path);
        let launch = AssetRef {
            sha256: bh.sha256,
            key: bh.md5.clone().unwrap_or_default(),
            ext: "bundle".into(),
        };
        uploads.entry(bh.sha256).or_insert_with(|| AssetUpload {
            sha256: bh.sha256,
            path: pe.bundle.path.clone(),
            content_type: BUNDLE_CONTENT_TYPE.into(),
        });
        let mut assets = Vec::with_capacity(pe.assets.len());
        for (file, ext) in &pe.assets {
            let h = hash_of(&file.path);
            assets.push(AssetRef {
                sha256: h.sha256,
                key: export::md5_from_name(file)
                    .or_else(|| h.md5.clone())
                    .unwrap_or_default(),
                ext: ext.clone(),
            });
            uploads.entry(h.sha256).or_insert_with(|| AssetUpload {
                sha256: h.sha256,
                path: file.path.clone(),
                content_type: asset_content_type(ext),
            });
        }
        let pointer = PointerId {
            channel: opts.channel.clone(),
            platform,
            fingerprint: opts.fingerprints[&platform].clone(),
        };
        let bundle = Bundle {
            launch,
            assets,
            expo_config: expo_config.clone(),
        };
        let content_hash = update_content_hash(&pointer, &bundle, opts.message.as_deref());
        contents.insert(
            platform,
            PlatformContent {
                pointer,
                bundle,
                content_hash,
            },
        );
    }
    let (version, derived_version) = match &opts.version {
        Some(v) => (v.clone(), false),
        None => {
            let all: Vec<String> = contents.values().map(|c| c.content_hash.to_hex()).collect();
            let h = Sha256Digest::of(all.join("\n").as_bytes()).to_hex();
            (Version::derived(format!("auto-{}", &h[..16]))?, true)
        }
    };
    let sizes: BTreeMap<Sha256Digest, u64> = hashes.values().map(|h| (h.sha256, h.size)).collect();
    let uploads: Vec<AssetUpload> = uploads.into_values().collect();

    let packages = commit(ctx, Kind::Publish, Some(index), |idx, now| {
        let recorded = idx.setting(BASE_URL_SETTING)?;
        let base = match (&recorded, &base_url) {
            (Some(r), Some(given)) if r != given && !opts.change_base_url => {
                return Err(super::OpError::BaseUrlDiffers {
                    given: given.clone(),
                    recorded: r.clone(),
                }
                .into())
            }
            (_, Some(given)) => given.clone(),
            (Some(r), None) => r.clone(),
            (None, None) if ctx.store.is_local() => LOCAL_BASE_URL.to_string(),
            (None, None) => {
                return Err(super::OpError::NoBaseUrlYet {
                    store: ctx.store.url().to_string(),
                }
                .into())
            }
        };
        // Everything that can be refused is checked before anything is written.
        let mut fresh = Vec::new();
        let mut out = Vec::new();
        let mut recorded_builds = BTreeMap::new();
        for (&platform, c) in &contents {
            let has_build = index::build(idx.conn(), platform, &c.pointer.fingerprint)?.is_some();
            recorded_builds.insert(platform, has_build);
        }
        let missing: Vec<String> = contents
            .iter()
            .filter(|(p, _)| !recorded_builds[*p])
            .map(|(p, c)| format!("{p}/{}", c.pointer.fingerprint))
            .collect();
        if opts.require_build && !missing.is_empty() {
            return Err(super::OpError::NoBuild {
                missing: missing.join(", "),
            }
            .into());
        }
        let url = |p: &PointerId| format!("{base}/{p}/manifest");
        for (&platform, c) in &contents {
            match idx.package(platform, &version)? {
                Some(existing) if existing.content_hash == c.content_hash && existing.pointer == c.pointer => {
                    out.push(PublishedPackage {
                        platform,
                        pointer: c.pointer.to_string(),
                        id: match &existing.content {
                            PackageContent::Update { manifest_id, .. } => manifest_id.clone(),
                            PackageContent::RollBackToEmbedded => String::new(),
                        },
                        created_at: format_time(existing.created_at),
                        new: false,
                        runtime_version: c.pointer.fingerprint.to_string(),
                        url: url(&c.pointer),
                        build_recorded: recorded_builds[&platform],
                    });
                }
                Some(_) => {
                    return Err(super::OpError::VersionTaken {
                        version: version.clone(),
                        platform,
                    }
                    .into())
                }
                None => {
                    super::steps::refuse_if_rolling(
                        idx.conn(),
                        &c.pointer,
                        &format!("publish {version} to {}", c.pointer),
                    )?;
                    fresh.push((platform, c))
                }
            }
        }
        let pointers: BTreeSet<PointerId> = contents.values().map(|c| c.pointer.clone()).collect();
        if fresh.is_empty() && recorded.as_deref() == Some(base.as_str()) {
            return Ok(Plan::unchanged(out, pointers));
        }
        let mut unknown_assets = Vec::new();
        for a in &uploads {
            if !idx.has_asset(&a.sha256)? {
                unknown_assets.push(a.clone());
            }
        }
        let generation = idx.generation()? + 1;
        let plan = idx.transact(Kind::Publish, &ctx.actor, now, |tx| {
            index::set_setting(tx, BASE_URL_SETTING, &base)?;
            let mut objects = Vec::new();
            let mut events = Vec::new();
            for (platform, c) in &fresh {
                let created_at = next_created_at(now, index::newest_created_at(tx, &c.pointer)?);
                let manifest_id = super::derive_manifest_id(&[
                    platform.as_str(),
                    version.as_str(),
                    &index::to_ms(created_at).to_string(),
                    &c.content_hash.to_hex(),
                ]);
                let pkg = PackageDraft {
                    pointer: c.pointer.clone(),
                    version: version.clone(),
                    created_at,
                    restamp_of: None,
                    message: opts.message.clone(),
                    content: PackageContent::Update {
                        manifest_id: manifest_id.clone(),
                        base_url: base.clone(),
                        bundle: c.bundle.clone(),
                    },
                    content_hash: c.content_hash,
                    format: ManifestFormat::V2,
                };
                if let (Some(js), Some(plan)) = (compiled_from.get(platform), &opts.delta) {
                    index::put_bytecode_source(tx, &c.bundle.launch.sha256, js, &plan.hermesc.identity)?;
                }
                for a in std::iter::once(&c.bundle.launch).chain(&c.bundle.assets) {
                    let ct = if a.ext == "bundle" {
                        BUNDLE_CONTENT_TYPE.to_string()
                    } else {
                        asset_content_type(&a.ext)
                    };
                    index::put_asset(tx, &a.sha256, sizes[&a.sha256], &ct)?;
                }
                let (_, objs) = stamp(tx, signer, pkg)?;
                objects.extend(objs);
                events.push(NewEvent {
                    action: Kind::Publish,
                    target: format!("{platform}/{version}"),
                    details: serde_json::json!({
                        "pointer": c.pointer.to_string(),
                        "id": manifest_id,
                        "createdAt": format_time(created_at),
                        "assets": c.bundle.assets.len(),
                        "message": opts.message,
                    }),
                });
                if let Some(plan) = &opts.rollout {
                    events.push(super::steps::start(
                        tx, signer, &c.pointer, &version, plan, now, generation,
                    )?);
                }
                out.push(PublishedPackage {
                    platform: *platform,
                    pointer: c.pointer.to_string(),
                    id: manifest_id,
                    created_at: format_time(created_at),
                    new: true,
                    runtime_version: c.pointer.fingerprint.to_string(),
                    url: url(&c.pointer),
                    build_recorded: recorded_builds[platform],
                });
            }
            out.sort_by_key(|p| p.platform);
            Ok((
                Plan {
                    output: out,
                    changed: true,
                    assets: unknown_assets,
                    objects,
                    pointers,
                    patch_for: BTreeSet::new(),
                },
                events,
            ))
        })?;
        Ok(plan)
    })
    .await?;
    Ok(PublishOutcome {
        version,
        derived_version,
        packages,
    })
}

/// Turns each Hermes platform's JavaScript export into the bytecode it
/// publishes, compiled with the project's hermesc against what that
/// pointer's devices run: the launch asset it serves, else the embedded
/// bundle its build recorded (`otapub embedded add`). JS the served
/// bytecode was compiled from is not compiled again (against itself it
/// would give other bytes): the served bytecode is reused, so an unchanged
/// app is no new update. The platforms compile at once. Rewrites the
/// export's metadata.json to name the bytecode; returns the SHA-256 of each
/// platform's JS.
async fn compile_bytecode(
    store: &dyn Store,
    index: &Index,
    opts: &PublishOptions,
    plan: &DeltaPlan,
) -> Result<BTreeMap<Platform, Sha256Digest>> {
    let hermesc = &plan.hermesc;
    let conn = index.conn();
    let embedded = index::embedded_bases(conn)?;
    let mut out = BTreeMap::new();
    let mut jobs = Vec::new();
    for (&platform, fingerprint) in opts.fingerprints.iter().filter(|(p, _)| plan.platforms.contains(p)) {
        // publish refused any platform without its export directory.
        let dir = &opts.exports[&platform];
        let Some(pe) = export::read_export(dir, &[platform])?.platforms.remove(&platform) else {
            continue;
        };
        let js_path = pe.bundle.path.clone();
        let mut js = std::fs::read(&js_path).map_err(Error::file("read", js_path.clone()))?;
        if hermes::bytecode_version(&js).is_some() {
            eprintln!("{platform}: the export is bytecode already; published as exported");
            continue;
        }
        let plain_len = hermes::without_map_comments(&js).len();
        if plain_len < js.len() {
            js.truncate(plain_len);
            std::fs::write(&js_path, &js).map_err(Error::file("write", js_path.clone()))?;
        }
        let js_sha256 = Sha256Digest::of(&js);
        let pointer = PointerId {
            channel: opts.channel.clone(),
            platform,
            fingerprint: fingerprint.clone(),
        };
        let packages = index::pointer_packages(conn, &pointer)?;
        let rollout = index::active_rollout(conn, &pointer)?;
        let served = index::live::live_package(&packages, rollout.as_ref())
            .and_then(|p| Some((format!("update {}", p.version), p.bundle()?.launch.sha256)));
        let base = served.or_else(|| {
            embedded
                .iter()
                .rfind(|e| e.platform == platform && &e.fingerprint == fingerprint)
                .map(|e| (format!("the embedded bundle {}", e.update_id), e.launch_asset))
        });
        let hbc_rel = match pe.bundle.rel.strip_suffix(".js") {
            Some(stem) => format!("{stem}.hbc"),
            None => format!("{}.hbc", pe.bundle.rel),
        };
        let hbc_path = js_path.with_file_name(
            Path::new(&hbc_rel)
                .file_name()
                .ok_or_else(|| super::OpError::BundleNoFileName { dir: dir.to_path_buf() })?,
        );
        // What to do, decided first; a plain compile is said once, with why.
        let step = match base {
            None => Step::Plain(format!(
                "{pointer} serves nothing and no embedded bundle is recorded (`otapub embedded add`)"
            )),
            Some((what, sha)) => {
                let unchanged =
                    index::bytecode_source(conn, &sha)?.is_some_and(|(j, c)| j == js_sha256 && c == hermesc.identity);
                let bytes = store
                    .get(&format!("public/assets/{sha}"))
                    .await?
                    .map(|o| o.bytes)
                    .filter(|b| Sha256Digest::of(b) == sha);
                match bytes {
                    None => Step::Plain(format!(
                        "the bundle of {what} (public/assets/{sha}) is missing or damaged (run `otapub check`)"
                    )),
                    Some(b) if unchanged => Step::Reuse(what, b),
                    Some(b) => match hermes::bytecode_version(&b) {
                        Some(v) if v == hermesc.bytecode_version => Step::Against(what, b),
                        Some(v) => Step::Plain(format!(
                            "the bundle of {what} is bytecode version {v}, this hermesc writes {}",
                            hermesc.bytecode_version
                        )),
                        None => Step::Plain(format!("the bundle of {what} is not Hermes bytecode")),
                    },
                }
            }
        };
        jobs.push(Job {
            platform,
            dir,
            js_path,
            hbc_path,
            hbc_rel,
            js_sha256,
            step,
        });
    }
    // The platforms compile at once (hermesc uses one core each), and say
    // what they did in platform order.
    let done: Vec<Result<Vec<String>>> = crate::off_runtime(|| {
        std::thread::scope(|s| {
            let running: Vec<_> = jobs.iter().map(|job| s.spawn(|| job.run(plan))).collect();
            running
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    });
    for (job, said) in jobs.into_iter().zip(done) {
        for line in said? {
            eprintln!("{}: {line}", job.platform);
        }
        name_bundle(job.dir, job.platform, &job.hbc_rel)?;
        out.insert(job.platform, job.js_sha256);
    }
    Ok(out)
}

/// How one platform's bytecode is made.
enum Step {
    /// The JS is what the served bytecode (named, with its bytes) came from.
    Reuse(String, Vec<u8>),
    /// Compiled against the base (named, with its bytes).
    Against(String, Vec<u8>),
    /// Compiled without a base, for the reason given.
    Plain(String),
}

/// One platform's bytecode to make: its export's JS, where the bytecode
/// goes, and how it is made.
struct Job<'a> {
    platform: Platform,
    dir: &'a Path,
    js_path: PathBuf,
    hbc_path: PathBuf,
    hbc_rel: String,
    js_sha256: Sha256Digest,
    step: Step,
}

impl Job<'_> {
    /// Makes the bytecode (and, for a new compile, its source map composed
    /// with Metro's); returns what to say about it.
    fn run(&self, plan: &DeltaPlan) -> Result<Vec<String>> {
        let (js_path, hbc_path) = (&self.js_path, &self.hbc_path);
        let mut said = Vec::new();
        match &self.step {
            Step::Reuse(what, b) => {
                std::fs::write(hbc_path, b).map_err(Error::file("write", hbc_path.clone()))?;
                said.push(format!("the JavaScript is unchanged: the bytecode of {what} is reused"));
                // A reused bytecode's map is the one made when it was published.
                return Ok(said);
            }
            Step::Against(what, b) => {
                let base_path = js_path.with_extension("base.hbc");
                std::fs::write(&base_path, b).map_err(Error::file("write", base_path.clone()))?;
                let compiled = plan.hermesc.compile(js_path, hbc_path, Some(&base_path));
                std::fs::remove_file(&base_path).map_err(Error::file("remove", base_path.clone()))?;
                compiled?;
                said.push(format!("bytecode compiled against {what} (delta bytecode)"));
            }
            Step::Plain(why) => {
                plan.hermesc.compile(js_path, hbc_path, None)?;
                said.push(format!("{why}: bytecode compiled without a base"));
            }
        }
        let metro_map = js_path.with_extension("js.map");
        if metro_map.is_file() {
            let hermes_map = hbc_path.with_extension("hbc.map");
            if let Err(e) = hermes::compose_source_maps(&plan.project_root, &metro_map, &hermes_map) {
                said.push(format!(
                    "{} maps the bytecode to the bundle's JS only: {e}",
                    hermes_map.display()
                ));
            }
        }
        Ok(said)
    }
}

/// Sets `fileMetadata.<platform>.bundle` in DIR/metadata.json.
fn name_bundle(dir: &Path, platform: Platform, rel: &str) -> Result<()> {
    let path = dir.join("metadata.json");
    let text = std::fs::read_to_string(&path).map_err(Error::file("read", path.clone()))?;
    let mut meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| crate::export::ExportError::MetadataNotJson {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    let Some(entry) = meta
        .get_mut("fileMetadata")
        .and_then(|f| f.get_mut(platform.as_str()))
        .and_then(|p| p.as_object_mut())
    else {
        return Err(crate::export::ExportError::NoFileMetadata {
            dir: dir.to_path_buf(),
            platform,
        }
        .into());
    };
    entry.insert("bundle".into(), rel.into());
    std::fs::write(&path, meta.to_string()).map_err(Error::file("write", path.clone()))
}
