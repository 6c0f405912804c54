//! Reading an `expo export` directory: `metadata.json`, the files it names
//! (confined to the directory), and their hashes, each file read once and
//! streamed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use md5::Md5;
use rayon::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::digest::Sha256Digest;
use crate::error::{Error, ExitClass, Refusal, Result};
use crate::names::Platform;

/// A file of the export, inside its directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportFile {
    /// The path as metadata.json gives it.
    pub rel: String,
    /// The resolved path, inside the export directory.
    pub path: PathBuf,
}

/// One platform's bundle and assets.
#[derive(Debug, Clone)]
pub struct PlatformExport {
    /// The launch asset.
    pub bundle: ExportFile,
    /// Assets with their extensions, in metadata.json order.
    pub assets: Vec<(ExportFile, String)>,
}

/// A validated export directory.
#[derive(Debug, Clone)]
pub struct Export {
    /// The directory.
    pub dir: PathBuf,
    /// The platforms asked for.
    pub platforms: BTreeMap<Platform, PlatformExport>,
}

#[derive(Deserialize)]
struct Metadata {
    /// The metadata format; 0 is the only one Expo writes (and otapub reads).
    version: Option<serde_json::Value>,
    #[serde(rename = "fileMetadata")]
    file_metadata: BTreeMap<String, PlatformMetadata>,
}

#[derive(Deserialize)]
struct PlatformMetadata {
    bundle: String,
    #[serde(default)]
    assets: Vec<AssetMetadata>,
}

#[derive(Deserialize)]
struct AssetMetadata {
    path: String,
    ext: String,
}

/// An `expo export` directory otapub cannot publish; each message says how
/// to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The directory cannot be opened.
    #[error("export {}: cannot open the directory ({reason}); pass the folder `npx expo export` wrote (its --output-dir, `dist` by default)", dir.display())]
    Unopenable {
        /// The directory given.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// The directory is a file.
    #[error("export {}: is a file, cannot open the directory; pass the folder `npx expo export` wrote (its --output-dir, `dist` by default)", dir.display())]
    NotADirectory {
        /// The path given.
        dir: PathBuf,
    },
    /// metadata.json cannot be read.
    #[error("export {}: cannot read metadata.json ({reason}); is this the output of `npx expo export --platform all`?", dir.display())]
    NoMetadata {
        /// The directory given.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// metadata.json does not parse.
    #[error("export {}: metadata.json is malformed ({reason}); export again with `npx expo export --platform all`", dir.display())]
    BadMetadata {
        /// The directory given.
        dir: PathBuf,
        /// The parser's error.
        reason: String,
    },
    /// metadata.json is of a format version otapub does not read.
    #[error("export {}: metadata.json has {found}; otapub reads format version 0, what `npx expo export` writes — export again with a supported Expo SDK, or upgrade otapub", dir.display())]
    MetadataVersion {
        /// The directory given.
        dir: PathBuf,
        /// `version N` or `no version`.
        found: String,
    },
    /// metadata.json has no bundle for a platform published.
    #[error("export {}: metadata.json has no {platform} bundle; export it with `npx expo export --platform {platform}` or publish with --platform {}", dir.display(), if *platform == Platform::Ios { "android" } else { "ios" })]
    NoBundle {
        /// The directory given.
        dir: PathBuf,
        /// The platform.
        platform: Platform,
    },
    /// An asset's extension cannot be part of a URL otapub serves.
    #[error("export {}: asset {asset:?} has extension {ext:?}; an extension must be 1-16 letters or digits", dir.display())]
    BadExtension {
        /// The directory given.
        dir: PathBuf,
        /// The asset's path.
        asset: String,
        /// Its extension.
        ext: String,
    },
    /// metadata.json lists an asset twice.
    #[error("export {}: metadata.json lists {platform} asset {asset:?} twice; a manifest lists each asset once — export again, or remove the duplicate entry", dir.display())]
    DuplicateAsset {
        /// The directory given.
        dir: PathBuf,
        /// The platform.
        platform: Platform,
        /// The asset's path.
        asset: String,
    },
    /// A file metadata.json names that otapub will not read.
    #[error("export {}: metadata.json names {rel:?}, {problem}", dir.display())]
    Named {
        /// The directory given.
        dir: PathBuf,
        /// The path named.
        rel: String,
        /// What is wrong with it.
        problem: Named,
    },
    /// metadata.json, rewritten after compiling bytecode, is not JSON.
    #[error("export {}: metadata.json is not JSON ({reason}); export again", dir.display())]
    MetadataNotJson {
        /// The directory.
        dir: PathBuf,
        /// The parser's error.
        reason: String,
    },
    /// metadata.json has no entry for a platform whose bytecode was compiled.
    #[error("export {}: metadata.json has no fileMetadata.{platform}; export again with `npx expo export --platform {platform}`", dir.display())]
    NoFileMetadata {
        /// The directory.
        dir: PathBuf,
        /// The platform.
        platform: Platform,
    },
}

/// What is wrong with a path metadata.json names.
#[derive(Debug, thiserror::Error)]
pub enum Named {
    /// It holds a control character.
    #[error(
        "which holds a control character (a newline or NUL is never part of a file `expo export` writes): export again"
    )]
    ControlCharacter,
    /// It is absolute or climbs out.
    #[error("which is not a relative path inside the export directory; export again")]
    NotRelative,
    /// It cannot be opened.
    #[error("which cannot be opened ({0}); export again so every file it lists is present")]
    Missing(String),
    /// It resolves outside the directory.
    #[error(
        "which resolves outside the export directory (a symlink?); replace the symlink with the file, or export again"
    )]
    Outside,
    /// It is not a regular file.
    #[error("which is not a regular file; export again")]
    NotAFile,
}

impl Refusal for ExportError {
    fn class(&self) -> ExitClass {
        match self {
            ExportError::Unopenable { .. }
            | ExportError::NotADirectory { .. }
            | ExportError::NoMetadata { .. }
            | ExportError::BadMetadata { .. }
            | ExportError::MetadataVersion { .. }
            | ExportError::NoBundle { .. }
            | ExportError::BadExtension { .. }
            | ExportError::DuplicateAsset { .. }
            | ExportError::Named { .. }
            | ExportError::MetadataNotJson { .. }
            | ExportError::NoFileMetadata { .. } => ExitClass::Input,
        }
    }
}

/// Reads and validates `DIR/metadata.json` for the given platforms.
pub fn read_export(dir: &Path, platforms: &[Platform]) -> Result<Export> {
    let dir_buf = || dir.to_path_buf();
    let root = dir.canonicalize().map_err(|e| ExportError::Unopenable {
        dir: dir_buf(),
        reason: e.to_string(),
    })?;
    if !root.is_dir() {
        return Err(ExportError::NotADirectory { dir: dir_buf() }.into());
    }
    let meta_path = root.join("metadata.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| ExportError::NoMetadata {
        dir: dir_buf(),
        reason: e.to_string(),
    })?;
    let meta: Metadata = serde_json::from_str(&text).map_err(|e| ExportError::BadMetadata {
        dir: dir_buf(),
        reason: e.to_string(),
    })?;
    if meta.version != Some(serde_json::json!(0)) {
        let found = meta
            .version
            .map_or_else(|| "no version".to_string(), |v| format!("version {v}"));
        return Err(ExportError::MetadataVersion { dir: dir_buf(), found }.into());
    }
    let mut out = BTreeMap::new();
    for &platform in platforms {
        let pm = meta
            .file_metadata
            .get(platform.as_str())
            .ok_or_else(|| ExportError::NoBundle {
                dir: dir_buf(),
                platform,
            })?;
        let bundle = confine(dir, &root, &pm.bundle)?;
        let mut assets = Vec::with_capacity(pm.assets.len());
        // Duplicates found by a set: comparing each path with every earlier
        // one took 20 ms of a 300-asset publish.
        let mut seen = std::collections::HashSet::with_capacity(pm.assets.len());
        for a in &pm.assets {
            if a.ext.is_empty() || a.ext.len() > 16 || !a.ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ExportError::BadExtension {
                    dir: dir_buf(),
                    asset: a.path.clone(),
                    ext: a.ext.clone(),
                }
                .into());
            }
            let file = confine(dir, &root, &a.path)?;
            if !seen.insert(file.path.clone()) {
                return Err(ExportError::DuplicateAsset {
                    dir: dir_buf(),
                    platform,
                    asset: a.path.clone(),
                }
                .into());
            }
            assets.push((file, a.ext.clone()));
        }
        out.insert(platform, PlatformExport { bundle, assets });
    }
    Ok(Export {
        dir: root,
        platforms: out,
    })
}

/// Resolves `rel` inside `root`, refusing anything that leaves it.
/// (`dir` is the directory as given, for the message.)
fn confine(dir: &Path, root: &Path, rel: &str) -> std::result::Result<ExportFile, ExportError> {
    let p = Path::new(rel);
    let named = |problem: Named| ExportError::Named {
        dir: dir.to_path_buf(),
        rel: rel.to_string(),
        problem,
    };
    if rel.chars().any(char::is_control) {
        return Err(named(Named::ControlCharacter));
    }
    if rel.is_empty()
        || p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(named(Named::NotRelative));
    }
    let path = root
        .join(p)
        .canonicalize()
        .map_err(|e| named(Named::Missing(e.to_string())))?;
    if !path.starts_with(root) {
        return Err(named(Named::Outside));
    }
    if !path.is_file() {
        return Err(named(Named::NotAFile));
    }
    Ok(ExportFile {
        rel: rel.to_string(),
        path,
    })
}

/// Digests of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    /// SHA-256.
    pub sha256: Sha256Digest,
    /// MD5, lowercase hex, when asked for (the launch asset's Expo key).
    pub md5: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

/// Read size of [`hash_file`].
const HASH_BUFFER: usize = 256 * 1024;

/// Hashes one file, streamed; MD5 too when `with_md5`.
pub fn hash_file(path: &Path, with_md5: bool) -> Result<FileHash> {
    hash_file_with(path, with_md5, &mut vec![0u8; HASH_BUFFER])
}

/// [`hash_file`] reading through `buf`: one buffer per batch of files a
/// hashing thread takes, not a fresh (zeroed, page-faulted) 256 KiB per file.
fn hash_file_with(path: &Path, with_md5: bool, buf: &mut [u8]) -> Result<FileHash> {
    let mut f = File::open(path).map_err(Error::file("open", path))?;
    let mut sha = Sha256::new();
    let mut md5 = with_md5.then(Md5::new);
    let mut size = 0u64;
    loop {
        let n = f.read(buf).map_err(Error::file("read", path))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        if let Some(m) = md5.as_mut() {
            m.update(&buf[..n]);
        }
        size += n as u64;
    }
    Ok(FileHash {
        sha256: Sha256Digest::from_bytes(sha.finalize().into()),
        md5: md5.map(|m| hex::encode(m.finalize())),
        size,
    })
}

/// Hashes every distinct file once, on all cores (rayon's pool); a file
/// listed with `true` gets its MD5 too.
pub fn hash_files(files: &[(PathBuf, bool)], bar: &indicatif::ProgressBar) -> Result<BTreeMap<PathBuf, FileHash>> {
    let mut wanted: BTreeMap<&PathBuf, bool> = BTreeMap::new();
    for (p, md5) in files {
        *wanted.entry(p).or_default() |= *md5;
    }
    let unique: Vec<(&PathBuf, bool)> = wanted.into_iter().collect();
    unique
        .par_iter()
        .map_init(
            || vec![0u8; HASH_BUFFER],
            |buf, (p, md5)| {
                let hash = hash_file_with(p, *md5, buf)?;
                bar.inc(1);
                Ok(((*p).clone(), hash))
            },
        )
        .collect()
}

/// The md5 Metro put in an asset's file name, when it carries one.
pub fn md5_from_name(file: &ExportFile) -> Option<String> {
    let name = Path::new(&file.rel).file_name().and_then(|n| n.to_str()).unwrap_or("");
    let is_md5 = name.len() == 32 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    is_md5.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_distinct_file_is_hashed_once_with_md5_when_any_listing_asks() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..40)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, vec![i as u8; i * 30_000]).unwrap();
                p
            })
            .collect();
        let mut listed: Vec<(PathBuf, bool)> = files.iter().map(|p| (p.clone(), false)).collect();
        listed.push((files[3].clone(), true));
        let hashed = hash_files(&listed, &indicatif::ProgressBar::hidden()).unwrap();
        assert_eq!(hashed.len(), files.len());
        for (i, p) in files.iter().enumerate() {
            let bytes = std::fs::read(p).unwrap();
            let h = &hashed[p];
            assert_eq!((h.sha256, h.size), (Sha256Digest::of(&bytes), bytes.len() as u64));
            assert_eq!(h.md5.is_some(), i == 3);
        }
        listed.push((dir.path().join("missing"), false));
        assert!(hash_files(&listed, &indicatif::ProgressBar::hidden()).is_err());
    }
}
