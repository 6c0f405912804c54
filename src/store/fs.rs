//! A store in a local directory. Objects are files under the root; each public
//! object's Content-Type and Cache-Control live beside it under `state/meta/`
//! so `serve` reproduces what S3 would. Writes go to a temporary file and are
//! renamed into place; conditional writes hold a lock file.
//!
//! A web server serves `public/` as another user (nginx's workers run as
//! `www-data` or `nobody`): public files are 0644 and their directories
//! (the root's included) 0755, set explicitly so that no umask can make an
//! object answer 403; everything else (`state/`: the index, signed records,
//! metadata) is the owner's alone, 0600 and 0700.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use md5::{Digest, Md5};

use super::{Body, CondPut, Object, ObjectInfo, ObjectMeta, Precondition, Store, Write};
use crate::error::{Error, Result};
use crate::litter;

const META_DIR: &str = "state/meta";

/// What the local store keeps beside each public object.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sidecar {
    #[serde(flatten)]
    meta: ObjectMeta,
    /// MD5 of the object's bytes, as S3 reports for a single-part upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// The object's modification time when the MD5 was taken (ns since the
    /// epoch): a file changed since no longer matches, and its etag is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtime_ns: Option<u128>,
    /// The entry of the body this one replaces: the sidecar is renamed into
    /// place before the body, so a writer killed between the two renames
    /// leaves the old body described by this (the pair stays consistent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Box<Sidecar>>,
}

impl Sidecar {
    /// The entry (this one or the previous) taken of a body with this MD5;
    /// this one when neither was (a body changed behind otapub's back).
    fn for_etag(self, etag: &str) -> Sidecar {
        let mine = self.etag.as_deref().is_none_or(|e| e == etag);
        match self.previous {
            Some(p) if !mine && p.etag.as_deref() == Some(etag) => *p,
            _ => Sidecar { previous: None, ..self },
        }
    }

    /// Whether this entry, or the previous one, was taken of a body with
    /// this modification time.
    fn knows_mtime(&self, mtime: Option<u128>) -> bool {
        mtime.is_some() && (self.mtime_ns == mtime || self.previous.as_ref().is_some_and(|p| p.mtime_ns == mtime))
    }

    /// The entry taken of a body with this modification time, if any.
    fn for_mtime(self, mtime: Option<u128>) -> Option<Sidecar> {
        if !self.knows_mtime(mtime) {
            return None;
        }
        if self.mtime_ns == mtime {
            return Some(Sidecar { previous: None, ..self });
        }
        self.previous.map(|p| *p)
    }
}

fn mtime_ns(meta: &fs::Metadata) -> Option<u128> {
    meta.modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos())
}
const LOCK_FILE: &str = "state/.lock";

/// The modes of what otapub writes: world-readable on the public side (and
/// on the way to it), the owner's alone elsewhere.
const PUBLIC_FILE_MODE: u32 = 0o644;
const PUBLIC_DIR_MODE: u32 = 0o755;
const PRIVATE_FILE_MODE: u32 = 0o600;
const PRIVATE_DIR_MODE: u32 = 0o700;

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(unix)]
fn set_file_mode(file: &fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn set_file_mode(_: &fs::File, _: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn unix_mode(meta: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn unix_mode(_: &fs::Metadata) -> Option<u32> {
    None
}

/// Creates one directory, never wider than `mode` meanwhile (a umask only
/// takes bits away), then gives it exactly `mode`.
fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    builder.create(path)?;
    set_mode(path, mode)
}

/// A store in a local directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: PathBuf) -> FsStore {
        FsStore { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let ok = !key.is_empty()
            && key
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
        if !ok {
            return Err(Error::Store {
                action: "resolve",
                key: key.to_string(),
                reason: "not a valid object key".into(),
            });
        }
        Ok(self.root.join(key))
    }

    /// The mode a file (or directory) at `path` gets: public under
    /// `public/`, and for directories also the root and those above it (a
    /// web server reaches `public/` through them); private anywhere else.
    fn mode_of(&self, path: &Path, dir: bool) -> u32 {
        let public = path.starts_with(self.root.join("public"));
        match (dir, public) {
            (false, true) => PUBLIC_FILE_MODE,
            (false, false) => PRIVATE_FILE_MODE,
            (true, _) if public || !path.starts_with(&self.root) || path == self.root => PUBLIC_DIR_MODE,
            (true, _) => PRIVATE_DIR_MODE,
        }
    }

    /// Creates the directories missing on the way to `dir`, each with its
    /// mode; directories already there keep theirs.
    fn create_dirs(&self, key: &str, dir: &Path) -> Result<()> {
        let mut missing = Vec::new();
        let mut at = Some(dir).filter(|d| !d.as_os_str().is_empty());
        while let Some(d) = at {
            match fs::metadata(d) {
                // Something that is not a directory is reported by the write into it.
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    missing.push(d);
                    at = d.parent().filter(|p| !p.as_os_str().is_empty());
                }
                Err(e) => return Err(Self::store_err("create directory for", key)(e)),
            }
        }
        for d in missing.into_iter().rev() {
            match create_dir(d, self.mode_of(d, true)) {
                Ok(()) => {}
                // Made by a concurrent writer, which gives it its mode.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Self::store_err("create directory for", key)(e)),
            }
        }
        Ok(())
    }

    fn meta_path(&self, key: &str) -> Result<PathBuf> {
        Ok(self.path(&format!("{META_DIR}/{key}"))?.with_extension_added("json"))
    }

    fn store_err<'k>(action: &'static str, key: &'k str) -> impl FnOnce(io::Error) -> Error + 'k {
        move |e| Error::Store {
            action,
            key: key.to_string(),
            reason: match e.kind() {
                io::ErrorKind::IsADirectory => {
                    "it is a directory where otapub keeps a file: move that directory out of the store".into()
                }
                io::ErrorKind::NotADirectory => {
                    "a file stands where otapub keeps a directory on the way to it: move that file out of the store"
                        .into()
                }
                _ => e.to_string(),
            },
        }
    }

    /// The metadata of a body with MD5 `etag`.
    fn read_meta(&self, key: &str, etag: &str) -> Result<ObjectMeta> {
        let path = self.meta_path(key)?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Sidecar>(&bytes).map(|s| s.for_etag(etag).meta).map_err(|e| Error::Store {
                action: "read metadata of",
                key: key.to_string(),
                reason: format!(
                    "{} is damaged ({e}): delete it and run `otapub regenerate`, which writes the object and its metadata again",
                    path.display()
                ),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ObjectMeta::new("application/octet-stream", "")),
            Err(e) => Err(Self::store_err("read metadata of", key)(e)),
        }
    }

    /// Writes `body` to a temporary file beside `path`; returns it (to be
    /// renamed into place) with the MD5 of what was written.
    fn write_temp(&self, key: &str, path: &Path, body: &Body) -> Result<(tempfile::NamedTempFile, String)> {
        let dir = path.parent().expect("an object path has a parent");
        self.create_dirs(key, dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&litter::own_prefix(TEMP_PREFIX))
            .tempfile_in(dir)
            .map_err(Self::store_err("write", key))?;
        // A temporary file is its owner's alone; renamed into place, it keeps this mode.
        set_file_mode(tmp.as_file(), self.mode_of(path, false)).map_err(Self::store_err("set the mode of", key))?;
        let mut md5 = Md5::new();
        match body {
            Body::Bytes(b) => {
                md5.update(b);
                tmp.write_all(b).map_err(Self::store_err("write", key))?
            }
            Body::File(src) => {
                let mut f = fs::File::open(src).map_err(Self::store_err("read source of", key))?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = io::Read::read(&mut f, &mut buf).map_err(Self::store_err("read source of", key))?;
                    if n == 0 {
                        break;
                    }
                    md5.update(&buf[..n]);
                    tmp.write_all(&buf[..n]).map_err(Self::store_err("write", key))?;
                }
            }
        }
        tmp.as_file().sync_data().map_err(Self::store_err("sync", key))?;
        Ok((tmp, hex::encode(md5.finalize())))
    }

    fn write_atomic(&self, key: &str, path: &Path, body: &Body) -> Result<()> {
        let (tmp, _) = self.write_temp(key, path, body)?;
        tmp.persist(path)
            .map_err(|e| Self::store_err("rename into place", key)(e.error))?;
        Ok(())
    }

    /// Public objects get a sidecar with their metadata and MD5 (written
    /// first), so `serve` reproduces S3's headers and a listing knows each
    /// object's etag without reading it.
    fn put_sync(&self, key: &str, body: &Body, meta: &ObjectMeta) -> Result<()> {
        let path = self.path(key)?;
        let (tmp, md5) = self.write_temp(key, &path, body)?;
        if key.starts_with("public/") {
            let mtime = tmp.as_file().metadata().ok().as_ref().and_then(mtime_ns);
            self.write_sidecar(key, &path, meta, md5, mtime)?;
        }
        tmp.persist(&path)
            .map_err(|e| Self::store_err("rename into place", key)(e.error))?;
        Ok(())
    }

    /// Writes the sidecar of a body about to be renamed into place, keeping
    /// the entry of the body in place now (however earlier writers ended).
    fn write_sidecar(&self, key: &str, path: &Path, meta: &ObjectMeta, md5: String, mtime: Option<u128>) -> Result<()> {
        let previous = fs::metadata(path).ok().and_then(|m| {
            let sidecar = self.read_sidecar(key)?;
            let now = mtime_ns(&m);
            let entry = if sidecar.knows_mtime(now) {
                sidecar.for_mtime(now)?
            } else if sidecar.etag.is_none() {
                // An entry without an MD5 describes whatever is there.
                sidecar.for_etag("")
            } else {
                // No entry was taken of this file as it is: match it by its bytes.
                sidecar.for_etag(&hex::encode(Md5::digest(fs::read(path).ok()?)))
            };
            Some(Box::new(entry))
        });
        let sidecar = Sidecar {
            meta: meta.clone(),
            etag: Some(md5),
            mtime_ns: mtime,
            previous,
        };
        let bytes = serde_json::to_vec(&sidecar).expect("metadata serializes");
        self.write_atomic(key, &self.meta_path(key)?, &Body::Bytes(bytes))
    }

    /// What a listing or HEAD reports: the recorded MD5 counts only while the
    /// file is the one it was taken of (same modification time).
    fn info(&self, key: String, meta: &fs::Metadata) -> ObjectInfo {
        let now = mtime_ns(meta);
        let sidecar = self.read_sidecar(&key).and_then(|s| s.for_mtime(now));
        ObjectInfo {
            size: meta.len(),
            generation: sidecar.as_ref().and_then(|s| s.meta.generation),
            etag: sidecar.and_then(|s| s.etag),
            modified: meta.modified().ok().map(chrono::DateTime::<chrono::Utc>::from),
            key,
        }
    }

    fn read_sidecar(&self, key: &str) -> Option<Sidecar> {
        let bytes = fs::read(self.meta_path(key).ok()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn get_sync(&self, key: &str) -> Result<Option<Object>> {
        let path = self.path(key)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::store_err("read", key)(e)),
        };
        let etag = hex::encode(Md5::digest(&bytes));
        let meta = self.read_meta(key, &etag)?;
        Ok(Some(Object { bytes, meta, etag }))
    }

    fn put_if_sync(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta, cond: Precondition) -> Result<CondPut> {
        let lock_path = self.path(LOCK_FILE)?;
        self.create_dirs(LOCK_FILE, lock_path.parent().expect("lock has a parent"))?;
        let mut options = fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE_MODE);
        let lock = options
            .open(&lock_path)
            .map_err(Self::store_err("open lock", LOCK_FILE))?;
        lock.lock().map_err(Self::store_err("lock", LOCK_FILE))?;
        let current = self.get_sync(key)?.map(|o| o.etag);
        let holds = match (&cond, &current) {
            (Precondition::Absent, None) => true,
            (Precondition::Matches(want), Some(have)) => want == have,
            _ => false,
        };
        if !holds {
            return Ok(CondPut::Conflict);
        }
        let etag = hex::encode(Md5::digest(&bytes));
        self.put_sync(key, &Body::Bytes(bytes), meta)?;
        drop(lock);
        Ok(CondPut::Written(etag))
    }

    /// Visits every file whose key starts with `prefix`, descending only
    /// where the prefix can still match; on the way, removes the temporary
    /// files of writers that were killed.
    fn walk(&self, prefix: &str, mut visit: impl FnMut(String, &fs::DirEntry) -> Result<()>) -> Result<()> {
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Self::store_err("list", prefix)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(Self::store_err("list", prefix))?;
                let path = entry.path();
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let Some(rel) = rel.to_str() else { continue };
                let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
                let ft = entry.file_type().map_err(Self::store_err("list", prefix))?;
                if ft.is_dir() {
                    let as_dir = format!("{rel}/");
                    if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                        stack.push(path);
                    }
                } else if ft.is_file() && is_temp(&rel) {
                    litter::remove_if_left_behind(&path, TEMP_PREFIX, TEMP_MAX_AGE);
                } else if ft.is_file() && rel.starts_with(prefix) {
                    visit(rel, &entry)?;
                }
            }
        }
        Ok(())
    }

    /// The root, `public/` and what is under it that other users cannot
    /// read (files) or pass through (directories), as paths, sorted; with
    /// `fix`, each gets the bits it lacks (a 0600 file becomes 0644, a 0700
    /// directory 0755). Symbolic links and temporary files are left alone.
    fn unreadable_public_sync(&self, fix: bool) -> Result<Vec<String>> {
        let public = self.root.join("public");
        let mut found = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(path) = stack.pop() {
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.unreadable_err(&path, "read the mode of", e)),
            };
            if meta.is_dir() && path.starts_with(&public) {
                for entry in fs::read_dir(&path).map_err(|e| self.unreadable_err(&path, "list", e))? {
                    let entry = entry.map_err(|e| self.unreadable_err(&path, "list", e))?;
                    if !entry.file_name().to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX)) {
                        stack.push(entry.path());
                    }
                }
            } else if path == self.root {
                stack.push(public.clone());
            }
            let Some(mode) = unix_mode(&meta) else { continue };
            // Reading a file, or passing through a directory.
            let (needed, fixed) = match (meta.is_dir(), meta.is_file()) {
                (true, _) => (0o001, mode | 0o555),
                (_, true) => (0o004, mode | 0o444),
                _ => continue,
            };
            if mode & needed != 0 {
                continue;
            }
            if fix {
                set_mode(&path, fixed).map_err(|e| self.unreadable_err(&path, "make readable", e))?;
            }
            found.push(path.display().to_string());
        }
        found.sort();
        Ok(found)
    }

    fn unreadable_err(&self, path: &Path, action: &'static str, e: io::Error) -> Error {
        Error::Store {
            action,
            key: path.display().to_string(),
            reason: format!(
                "{e}; run otapub as the user who owns the store, or make its public side readable with \
                 `chmod a+x {root} && chmod -R a+rX {root}/public`",
                root = self.root.display()
            ),
        }
    }

    fn list_sync(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        self.walk(prefix, |rel, entry| {
            let meta = entry.metadata().map_err(Self::store_err("list", prefix))?;
            out.push(self.info(rel, &meta));
            Ok(())
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

const TEMP_PREFIX: &str = ".otapub-tmp-";
/// How old a temporary file with no readable owner must be to be removed.
const TEMP_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

fn is_temp(key: &str) -> bool {
    key.rsplit('/').next().is_some_and(|n| n.starts_with(TEMP_PREFIX))
}

trait WithExtensionAdded {
    fn with_extension_added(&self, ext: &str) -> PathBuf;
}

impl WithExtensionAdded for PathBuf {
    fn with_extension_added(&self, ext: &str) -> PathBuf {
        let mut s = self.clone().into_os_string();
        s.push(".");
        s.push(ext);
        PathBuf::from(s)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[async_trait]
impl Store for FsStore {
    fn url(&self) -> String {
        self.root.display().to_string()
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> Result<Option<Object>> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.get_sync(&key)).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(self.info(key.to_string(), &m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::store_err("stat", key)(e)),
        }
    }

    async fn etag(&self, key: &str) -> Result<Option<String>> {
        Ok(self.get(key).await?.map(|o| o.etag))
    }

    async fn put(&self, _: &Write, key: &str, body: Body, meta: &ObjectMeta) -> Result<()> {
        let (this, key, meta) = (self.clone(), key.to_string(), meta.clone());
        blocking(move || this.put_sync(&key, &body, &meta)).await
    }

    async fn put_if(
        &self,
        _: &Write,
        key: &str,
        bytes: Vec<u8>,
        meta: &ObjectMeta,
        cond: Precondition,
    ) -> Result<CondPut> {
        let (this, key, meta) = (self.clone(), key.to_string(), meta.clone());
        blocking(move || this.put_if_sync(&key, bytes, &meta, cond)).await
    }

    async fn delete(&self, _: &Write, key: &str) -> Result<()> {
        let path = self.path(key)?;
        // The body goes first: a delete killed between the two removals
        // leaves a sidecar nobody reads (the next write of the key ignores
        // it), never a body served without its Content-Type.
        for p in [path, self.meta_path(key)?] {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Self::store_err("delete", key)(e)),
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        blocking(move || this.list_sync(&prefix)).await
    }

    async fn unreadable_public(&self, fix: bool) -> Result<Vec<String>> {
        let this = self.clone();
        blocking(move || this.unreadable_public_sync(fix)).await
    }

    async fn clean_up(&self) -> Result<()> {
        // The walk removes what killed writers left; files need no reading.
        let this = self.clone();
        blocking(move || this.walk("", |_, _| Ok(()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token commit would lend: these tests write to the store directly.
    const W: &Write = &Write::mint();

    fn meta() -> ObjectMeta {
        ObjectMeta::new("text/plain", "no-store")
    }

    #[tokio::test]
    async fn a_writer_killed_between_sidecar_and_body_leaves_a_consistent_pair() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        let key = "public/c/ios/fp/manifest";
        let first = ObjectMeta::new("multipart/mixed; boundary=a", "no-cache");
        store
            .put(W, key, Body::Bytes(b"--a body".to_vec()), &first)
            .await
            .unwrap();
        // Two writers die after writing the sidecar, before renaming their body.
        for (b, body) in [("b", "--b body"), ("c", "--c body")] {
            let path = store.path(key).unwrap();
            let meta = ObjectMeta::new(format!("multipart/mixed; boundary={b}"), "no-cache");
            let md5 = hex::encode(Md5::digest(body.as_bytes()));
            store.write_sidecar(key, &path, &meta, md5, Some(1)).unwrap();
        }
        let obj = store.get(key).await.unwrap().unwrap();
        assert_eq!(obj.bytes, b"--a body");
        assert_eq!(obj.meta.content_type, "multipart/mixed; boundary=a");
        let info = store.head(key).await.unwrap().unwrap();
        assert_eq!(
            info.etag.as_deref(),
            Some(hex::encode(Md5::digest(b"--a body")).as_str())
        );
        // The next complete write is described as usual.
        let next = ObjectMeta::new("multipart/mixed; boundary=d", "no-cache");
        store
            .put(W, key, Body::Bytes(b"--d body".to_vec()), &next)
            .await
            .unwrap();
        assert_eq!(
            store.get(key).await.unwrap().unwrap().meta.content_type,
            "multipart/mixed; boundary=d"
        );
    }

    #[tokio::test]
    async fn a_delete_stopped_between_its_removals_leaves_no_body_without_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        let key = "public/c/ios/fp/rollout/07/manifest";
        let typed = ObjectMeta::new("multipart/mixed; boundary=a", "no-cache");
        store
            .put(W, key, Body::Bytes(b"--a body".to_vec()), &typed)
            .await
            .unwrap();
        // Make the second removal fail: the sidecar's path becomes a directory.
        let sidecar = store.meta_path(key).unwrap();
        std::fs::remove_file(&sidecar).unwrap();
        std::fs::create_dir(&sidecar).unwrap();
        store.delete(W, key).await.unwrap_err();
        assert!(store.get(key).await.unwrap().is_none(), "the body went first");
        std::fs::remove_dir(&sidecar).unwrap();
        // A sidecar left without its body is ignored by the next write.
        store
            .put(W, key, Body::Bytes(b"--a body".to_vec()), &typed)
            .await
            .unwrap();
        std::fs::remove_file(store.path(key).unwrap()).unwrap();
        let next = ObjectMeta::new("multipart/mixed; boundary=b", "no-cache");
        store
            .put(W, key, Body::Bytes(b"--b body".to_vec()), &next)
            .await
            .unwrap();
        let obj = store.get(key).await.unwrap().unwrap();
        assert_eq!(obj.meta.content_type, "multipart/mixed; boundary=b");
        assert!(store.read_sidecar(key).unwrap().previous.is_none());
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn public_objects_are_world_readable_and_state_is_the_owners() {
        let dir = tempfile::tempdir().unwrap();
        // A root to be created, below a directory to be created too.
        let root = dir.path().join("srv/otapub");
        let store = FsStore::new(root.clone());
        store
            .put(W, "public/a/b/manifest", Body::Bytes(b"x".to_vec()), &meta())
            .await
            .unwrap();
        store
            .put_if(
                W,
                "state/bans/ios/v1.json",
                b"{}".to_vec(),
                &meta(),
                Precondition::Absent,
            )
            .await
            .unwrap();
        let expected = [
            ("srv", 0o755),
            ("srv/otapub", 0o755),
            ("srv/otapub/public", 0o755),
            ("srv/otapub/public/a", 0o755),
            ("srv/otapub/public/a/b", 0o755),
            ("srv/otapub/public/a/b/manifest", 0o644),
            ("srv/otapub/state", 0o700),
            ("srv/otapub/state/.lock", 0o600),
            ("srv/otapub/state/bans", 0o700),
            ("srv/otapub/state/bans/ios", 0o700),
            ("srv/otapub/state/bans/ios/v1.json", 0o600),
            ("srv/otapub/state/meta", 0o700),
            ("srv/otapub/state/meta/public/a/b", 0o700),
            ("srv/otapub/state/meta/public/a/b/manifest.json", 0o600),
        ];
        for (rel, want) in expected {
            let got = mode(&dir.path().join(rel));
            assert_eq!(format!("{got:o}"), format!("{want:o}"), "{rel}");
        }
        assert_eq!(store.unreadable_public(false).await.unwrap(), Vec::<String>::new());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn unreadable_public_files_and_directories_are_found_and_made_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("store"));
        store
            .put(W, "public/a/manifest", Body::Bytes(b"x".to_vec()), &meta())
            .await
            .unwrap();
        store
            .put(W, "state/x", Body::Bytes(b"x".to_vec()), &meta())
            .await
            .unwrap();
        let set =
            |rel: &str, mode: u32| fs::set_permissions(dir.path().join(rel), fs::Permissions::from_mode(mode)).unwrap();
        // As an older otapub left them: 0600 files, 0700 directories under umask 077.
        set("store/public/a/manifest", 0o600);
        set("store/public/a", 0o700);
        set("store", 0o700);
        let found = [
            dir.path().join("store"),
            dir.path().join("store/public/a"),
            dir.path().join("store/public/a/manifest"),
        ]
        .map(|p| p.display().to_string());
        assert_eq!(store.unreadable_public(false).await.unwrap(), found);
        assert_eq!(
            mode(&dir.path().join("store/public/a/manifest")),
            0o600,
            "only reported"
        );
        assert_eq!(store.unreadable_public(true).await.unwrap(), found);
        assert_eq!(mode(&dir.path().join("store")), 0o755);
        assert_eq!(mode(&dir.path().join("store/public/a")), 0o755);
        assert_eq!(mode(&dir.path().join("store/public/a/manifest")), 0o644);
        assert_eq!(mode(&dir.path().join("store/state/x")), 0o600, "state is not public");
        assert_eq!(store.unreadable_public(false).await.unwrap(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn conditional_writes_follow_the_etag() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        let CondPut::Written(e1) = store
            .put_if(W, "state/x", b"1".to_vec(), &meta(), Precondition::Absent)
            .await
            .unwrap()
        else {
            panic!("first create must win")
        };
        assert_eq!(
            store
                .put_if(W, "state/x", b"2".to_vec(), &meta(), Precondition::Absent)
                .await
                .unwrap(),
            CondPut::Conflict
        );
        let CondPut::Written(e2) = store
            .put_if(W, "state/x", b"2".to_vec(), &meta(), Precondition::Matches(e1.clone()))
            .await
            .unwrap()
        else {
            panic!("matching etag must win")
        };
        assert_ne!(e1, e2);
        assert_eq!(
            store
                .put_if(W, "state/x", b"3".to_vec(), &meta(), Precondition::Matches(e1))
                .await
                .unwrap(),
            CondPut::Conflict
        );
        assert_eq!(store.get("state/x").await.unwrap().unwrap().bytes, b"2");
    }

    #[tokio::test]
    async fn public_objects_keep_their_metadata_and_keys_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        store
            .put(W, "public/a/b", Body::Bytes(b"x".to_vec()), &meta())
            .await
            .unwrap();
        assert_eq!(store.get("public/a/b").await.unwrap().unwrap().meta, meta());
        assert!(store.get("public/missing").await.unwrap().is_none());
        assert!(store.get("public/../x").await.is_err());
        let keys: Vec<String> = store
            .list("public/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["public/a/b"]);
    }
}
