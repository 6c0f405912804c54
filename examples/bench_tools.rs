//! Helpers for `bench/run.sh`: deterministic synthetic exports, otapub's own
//! hashing on a file list, and large seeded indexes. Not part of the CLI.
//!
//!   bench_tools gen-export DIR [--seed N] [--assets 300] [--total-mb 60] [--bundle-mb 5] [--android-tag T]
//!   bench_tools gen-big DIR --mb 1024
//!   bench_tools hash LIST_FILE
//!   bench_tools seed-index --store URL --key FILE --pointers N --per-pointer M [--base-url URL]

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use md5::Digest;
use otapub::index::{self, Index};
use otapub::model::{AssetRef, Bundle, Kind, PackageContent, PackageDraft};
use otapub::names::{Channel, Fingerprint, Platform, PointerId, Version};
use otapub::signing::{Ed25519Key, KeySource, Signer};
use otapub::store::{self, S3Options};
use otapub::tree;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A realistic export: two platforms, mixed-size assets, two bundles
    GenExport {
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 300)]
        assets: usize,
        #[arg(long, default_value_t = 60)]
        total_mb: u64,
        #[arg(long, default_value_t = 5)]
        bundle_mb: u64,
        /// Changes the Android bundle only (a warm re-publish)
        #[arg(long, default_value = "")]
        android_tag: String,
    },
    /// An export whose one asset is this large
    GenBig {
        dir: PathBuf,
        #[arg(long)]
        mb: u64,
    },
    /// Hash the files listed in LIST (one path a line) as publish does
    Hash { list: PathBuf },
    /// Write an index with N pointers of M packages each, and the pointer objects
    SeedIndex {
        #[arg(long)]
        store: String,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        pointers: usize,
        #[arg(long)]
        per_pointer: usize,
        #[arg(long, default_value = "https://cdn.example.com")]
        base_url: String,
    },
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn write_asset(dir: &Path, bytes: &[u8]) -> String {
    let md5 = hex(&md5::Md5::digest(bytes));
    std::fs::write(dir.join("assets").join(&md5), bytes).expect("write asset");
    format!("assets/{md5}")
}

fn gen_export(dir: &Path, seed: u64, n: usize, total_mb: u64, bundle_mb: u64, android_tag: &str) {
    std::fs::create_dir_all(dir.join("assets")).expect("mkdir");
    std::fs::create_dir_all(dir.join("_expo/static/js/ios")).expect("mkdir");
    std::fs::create_dir_all(dir.join("_expo/static/js/android")).expect("mkdir");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    // Log-uniform sizes between 1 KB and 2 MB, scaled to the asset budget.
    let budget = (total_mb - 2 * bundle_mb) * 1024 * 1024;
    let raw: Vec<f64> = (0..n)
        .map(|_| (rng.next() % 10_000) as f64 / 10_000.0)
        .map(|u| 1024.0 * 2048f64.powf(u))
        .collect();
    let scale = budget as f64 / raw.iter().sum::<f64>();
    let exts = ["png", "png", "png", "jpg", "ttf", "otf", "xml", "webp"];
    let mut ios = Vec::new();
    let mut android = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let size = (r * scale).clamp(1024.0, 2.0 * 1024.0 * 1024.0) as usize;
        let mut bytes = vec![0u8; size];
        rng.fill(&mut bytes);
        let path = write_asset(dir, &bytes);
        let entry = serde_json::json!({"path": path, "ext": exts[i % exts.len()]});
        if i % 10 != 0 {
            ios.push(entry.clone());
        }
        if i % 10 != 1 {
            android.push(entry);
        }
    }
    for (platform, tag) in [("ios", ""), ("android", android_tag)] {
        let mut bytes = vec![0u8; (bundle_mb * 1024 * 1024) as usize];
        let mut brng = Rng(0x51_7cc1_b727_220a ^ seed ^ if platform == "ios" { 1 } else { 2 });
        brng.fill(&mut bytes);
        bytes[..tag.len()].copy_from_slice(tag.as_bytes());
        std::fs::write(dir.join(format!("_expo/static/js/{platform}/index.hbc")), bytes).expect("bundle");
    }
    let meta = serde_json::json!({"version": 0, "bundler": "metro", "fileMetadata": {
        "ios": {"bundle": "_expo/static/js/ios/index.hbc", "assets": ios},
        "android": {"bundle": "_expo/static/js/android/index.hbc", "assets": android}}});
    std::fs::write(dir.join("metadata.json"), meta.to_string()).expect("metadata");
}

fn gen_big(dir: &Path, mb: u64) {
    std::fs::create_dir_all(dir.join("assets")).expect("mkdir");
    std::fs::create_dir_all(dir.join("_expo/static/js/ios")).expect("mkdir");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut md5 = md5::Md5::new();
    let tmp = dir.join("assets/big.tmp");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).expect("create"));
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mb {
        rng.fill(&mut buf);
        md5.update(&buf);
        f.write_all(&buf).expect("write");
    }
    f.flush().expect("flush");
    let name = hex(&md5.finalize());
    std::fs::rename(&tmp, dir.join("assets").join(&name)).expect("rename");
    std::fs::write(dir.join("_expo/static/js/ios/index.hbc"), b"big bundle").expect("bundle");
    let meta = serde_json::json!({"version": 0, "bundler": "metro", "fileMetadata": {"ios": {"bundle": "_expo/static/js/ios/index.hbc",
        "assets": [{"path": format!("assets/{name}"), "ext": "bin"}]}}});
    std::fs::write(dir.join("metadata.json"), meta.to_string()).expect("metadata");
}

async fn seed_index(url: &str, key: &Path, pointers: usize, per_pointer: usize, base_url: &str) {
    let store = store::open(url, &S3Options::default()).await.expect("store");
    let signer = Signer::new(
        vec![Ed25519Key::load(&KeySource::File(key.to_path_buf())).expect("key")],
        None,
    )
    .expect("signer");
    let mut idx = Index::open(None, None).expect("index");
    let launch = AssetRef {
        sha256: otapub::digest::Sha256Digest::of(b"launch"),
        key: "b".repeat(32),
        ext: "bundle".into(),
    };
    let assets: Vec<AssetRef> = (0..3)
        .map(|i| AssetRef {
            sha256: otapub::digest::Sha256Digest::of(format!("asset {i}").as_bytes()),
            key: format!("{i}").repeat(32),
            ext: "png".into(),
        })
        .collect();
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let mut pointer_ids = Vec::new();
    idx.transact(Kind::Seed, "bench", t0, |tx| {
        index::set_setting(tx, "base_url", base_url)?;
        index::set_setting(tx, "conditional_writes", "verified")?;
        for a in std::iter::once(&launch).chain(&assets) {
            index::put_asset(tx, &a.sha256, 1000, "image/png")?;
        }
        let mut n = [0usize; 2];
        for p in 0..pointers {
            let platform = Platform::ALL[p % 2];
            let pointer = PointerId {
                channel: format!("c{}", (p / 2) % 10).parse::<Channel>()?,
                platform,
                fingerprint: format!("fp{}", p / 20).parse::<Fingerprint>()?,
            };
            for j in 0..per_pointer {
                let slot = &mut n[p % 2];
                *slot += 1;
                let created_at = t0 + chrono::Duration::milliseconds(j as i64);
                let bundle = Bundle {
                    launch: launch.clone(),
                    assets: assets.clone(),
                    expo_config: None,
                };
                let mut draft = PackageDraft {
                    pointer: pointer.clone(),
                    version: format!("v{slot}").parse::<Version>()?,
                    created_at,
                    restamp_of: None,
                    message: None,
                    content: PackageContent::Update {
                        manifest_id: otapub::ops::derive_manifest_id(&[&pointer.to_string(), &slot.to_string()]),
                        base_url: base_url.to_string(),
                        bundle,
                    },
                    content_hash: otapub::digest::Sha256Digest::from_bytes([0; 32]), // set below, from the draft itself
                    format: Default::default(),
                };
                draft.content_hash = draft.expected_content_hash();
                otapub::ops::stamp(tx, &signer, draft)?;
            }
            pointer_ids.push(pointer);
        }
        Ok(((), Vec::new()))
    })
    .expect("seed");
    // The pointer objects, as publishes would have left them: stamped with
    // the generation of the commit that made them, in the index and on the objects.
    let generation = idx.bump_generation().expect("generation");
    for p in &pointer_ids {
        let view = otapub::ops::pointer_view(&idx, p).expect("view");
        let [_, body] = tree::pointer_objects(&view).expect("render").expect("a live package");
        idx.restamp_pointer(p, &otapub::digest::Sha256Digest::of(&body.bytes), generation)
            .expect("stamp");
    }
    otapub::commit::seed_index(store.as_ref(), &mut idx)
        .await
        .expect("seed the store");
    println!("{}", idx.to_bytes().expect("bytes").len());
}

fn main() {
    match Cli::parse().command {
        Cmd::GenExport {
            dir,
            seed,
            assets,
            total_mb,
            bundle_mb,
            android_tag,
        } => gen_export(&dir, seed, assets, total_mb, bundle_mb, &android_tag),
        Cmd::GenBig { dir, mb } => gen_big(&dir, mb),
        Cmd::Hash { list } => {
            let files: Vec<(PathBuf, bool)> = std::fs::read_to_string(list)
                .expect("list")
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| (PathBuf::from(l), false))
                .collect();
            let hashes = otapub::export::hash_files(&files, &indicatif::ProgressBar::hidden()).expect("hash");
            println!("{}", hashes.values().map(|h| h.size).sum::<u64>());
        }
        Cmd::SeedIndex {
            store,
            key,
            pointers,
            per_pointer,
            base_url,
        } => tokio::runtime::Runtime::new().expect("runtime").block_on(seed_index(
            &store,
            &key,
            pointers,
            per_pointer,
            &base_url,
        )),
    }
}
