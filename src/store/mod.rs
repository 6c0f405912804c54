//! Where the tree lives. A small async trait with one implementation per
//! backend, chosen by the store URL; missing objects are `Ok(None)`, never an
//! error. Two wrappers: [`FaultyStore`] (tests' injected faults) and
//! [`DryRunStore`] (a dry run's writes, recorded instead of made).
//!
//! Anybody holding a store can read it; only the commit path can write to
//! it: every method that writes an object asks for a [`Write`], which only
//! [`crate::commit`] makes.

mod dry_run;
mod faulty;
mod fs;
mod s3;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::dry_run::DryRunStore;
pub use self::faulty::FaultyStore;
pub use self::fs::FsStore;
pub use self::s3::{S3Options, S3Store, DEFAULT_READ_TIMEOUT, MULTIPART_THRESHOLD, PART_SIZE};
pub use self::write::Write;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

/// Cache-Control of immutable objects.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Default Cache-Control of pointer objects: devices always revalidate.
pub const POINTER_CACHE_CONTROL: &str = "public, max-age=0, s-maxage=60";

/// The HTTP metadata an object is served with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Content-Type.
    #[serde(rename = "contentType")]
    pub content_type: String,
    /// Cache-Control.
    #[serde(rename = "cacheControl")]
    pub cache_control: String,
    /// For a mutable object (pointer): the index generation it was rendered
    /// from (S3 user metadata `x-amz-meta-otapub-generation`). A writer
    /// replaces it only with a view at least as new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

impl ObjectMeta {
    /// Metadata without a generation (immutable objects, state records).
    pub fn new(content_type: impl Into<String>, cache_control: impl Into<String>) -> ObjectMeta {
        ObjectMeta {
            content_type: content_type.into(),
            cache_control: cache_control.into(),
            generation: None,
        }
    }
}

/// Parses a stored generation: bytes from the store are input, so anything but
/// a plain decimal number is an error naming the object.
pub fn parse_generation(key: &str, value: &str) -> Result<u64> {
    value.parse::<u64>().map_err(|_| Error::Store {
        action: "read the generation of",
        key: key.to_string(),
        reason: format!(
            "{value:?} is not a generation number; the object was not written by otapub — run `otapub regenerate` to rewrite it"
        ),
    })
}

/// An object read back, with its metadata and entity tag.
#[derive(Debug, Clone)]
pub struct Object {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its metadata.
    pub meta: ObjectMeta,
    /// Opaque version tag for conditional writes.
    pub etag: String,
}

/// What a listing or HEAD tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key under the store root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The entity tag a listing reports (S3: the quoted MD5 of a single-part
    /// upload), when the backend gives one without reading the object.
    pub etag: Option<String>,
    /// When the object was last written, where the backend says.
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
    /// The generation of a mutable object, where the backend says without a
    /// read (HEAD on S3; HEAD and listing on a local store).
    pub generation: Option<u64>,
}

impl ObjectInfo {
    /// Whether the object is known, from its listing alone, to hold exactly
    /// `bytes`: `Some(true|false)` when the listed etag is a plain MD5,
    /// `None` when the listing cannot tell.
    pub fn holds(&self, bytes: &[u8]) -> Option<bool> {
        let etag = self.etag.as_deref()?.trim_matches('"');
        if etag.len() != 32 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        use md5::Digest;
        Some(self.size == bytes.len() as u64 && etag.eq_ignore_ascii_case(&hex::encode(md5::Md5::digest(bytes))))
    }
}

/// The content of a write.
#[derive(Debug, Clone)]
pub enum Body {
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// A local file, streamed.
    File(PathBuf),
}

/// The condition of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Only if the object does not exist (`If-None-Match: *`).
    Absent,
    /// Only if the object still has this etag (`If-Match`).
    Matches(String),
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondPut {
    /// Written; the new etag.
    Written(String),
    /// Somebody else wrote first.
    Conflict,
}

/// An asset a publish needs in the store.
#[derive(Debug, Clone)]
pub struct AssetUpload {
    /// SHA-256 of the file.
    pub sha256: Sha256Digest,
    /// The local file.
    pub path: PathBuf,
    /// Its Content-Type.
    pub content_type: String,
}

mod write {
    /// The commit path's permission to write to a store: every [`Store`]
    /// method that writes or deletes an object asks for one, by reference.
    ///
    /// Why a token rather than a write trait of the crate's own: commit
    /// writes through the `&dyn Store` that the command line opened and the
    /// operation handed down (a [`FsStore`], an [`S3Store`], either wrapped
    /// in a [`FaultyStore`] or a [`DryRunStore`]), so a separate write trait
    /// would need a way from that public trait object to a crate-private
    /// one — a private type in a public signature, or a downcast per
    /// backend. With the token there is one trait, every backend implements
    /// all of it, and [`FaultyStore`] passes the token it was given on to
    /// the store it wraps ([`DryRunStore`] records the write instead).
    ///
    /// Outside the crate nobody can make one: it has no public constructor
    /// and is not `Clone`, `Copy` or `Default`. A `Store` implemented
    /// elsewhere only borrows one for the length of a call commit makes.
    /// Inside the crate, `Write::mint` is `pub(crate)` and only
    /// `src/commit.rs` calls it (`tests/it/architecture.rs` fails when
    /// another file does).
    ///
    /// [`Store`]: super::Store
    /// [`FsStore`]: super::FsStore
    /// [`S3Store`]: super::S3Store
    /// [`FaultyStore`]: super::FaultyStore
    /// [`DryRunStore`]: super::DryRunStore
    ///
    /// Code outside the crate cannot make one (each example must fail to
    /// compile; rustdoc checks the error codes on nightly only):
    ///
    /// ```compile_fail,E0624
    /// let _ = otapub::store::Write::mint();
    /// ```
    ///
    /// ```compile_fail,E0451
    /// let _ = otapub::store::Write { _private: () };
    /// ```
    ///
    /// nor write without one (each write's token is its first argument):
    ///
    /// ```compile_fail,E0061
    /// # async fn f(store: &dyn otapub::store::Store) {
    /// use otapub::store::{Body, ObjectMeta};
    /// let _ = store.put("public/x", Body::Bytes(b"x".to_vec()), &ObjectMeta::new("text/plain", "no-store")).await;
    /// # }
    /// ```
    ///
    /// ```compile_fail,E0061
    /// # async fn f(store: &dyn otapub::store::Store) {
    /// use otapub::store::{ObjectMeta, Precondition};
    /// let meta = ObjectMeta::new("text/plain", "no-store");
    /// let _ = store.put_if("state/x", b"x".to_vec(), &meta, Precondition::Absent).await;
    /// # }
    /// ```
    ///
    /// ```compile_fail,E0061
    /// # async fn f(store: &dyn otapub::store::Store) {
    /// let _ = store.delete("state/index.sqlite").await;
    /// # }
    /// ```
    ///
    /// ```compile_fail,E0061
    /// # async fn f(store: &dyn otapub::store::Store, sha: &otapub::digest::Sha256Digest) {
    /// let meta = otapub::store::ObjectMeta::new("text/plain", "no-store");
    /// let _ = store.put_file_sha256("assets/x", std::path::Path::new("x"), sha, &meta).await;
    /// # }
    /// ```
    ///
    /// ```compile_fail,E0061
    /// # async fn f(store: &dyn otapub::store::Store) {
    /// let _ = store.probe_conditional_writes().await;
    /// # }
    /// ```
    ///
    /// nor keep one it was lent (a `Store` of its own, called by commit):
    ///
    /// ```compile_fail,E0308
    /// fn keep(w: &otapub::store::Write) -> otapub::store::Write {
    ///     w.clone()
    /// }
    /// ```
    #[derive(Debug)]
    pub struct Write {
        _private: (),
    }

    impl Write {
        /// The one way to make a token: for `src/commit.rs` alone.
        pub(crate) const fn mint() -> Write {
            Write { _private: () }
        }
    }
}

/// A store of objects under one root. Its reads are anybody's; its writes
/// take a [`Write`], which only the commit path has.
#[async_trait]
pub trait Store: Send + Sync {
    /// The store's URL, for messages.
    fn url(&self) -> String;

    /// Whether this is a local store (which has a default base URL).
    fn is_local(&self) -> bool;

    /// Reads an object.
    async fn get(&self, key: &str) -> Result<Option<Object>>;

    /// Size of an object, without reading it.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;

    /// The current etag of an object.
    async fn etag(&self, key: &str) -> Result<Option<String>>;

    /// Writes an object unconditionally.
    async fn put(&self, w: &Write, key: &str, body: Body, meta: &ObjectMeta) -> Result<()>;

    /// Writes an object only if `cond` holds.
    async fn put_if(
        &self,
        w: &Write,
        key: &str,
        bytes: Vec<u8>,
        meta: &ObjectMeta,
        cond: Precondition,
    ) -> Result<CondPut>;

    /// Deletes an object; deleting a missing one is not an error.
    async fn delete(&self, w: &Write, key: &str) -> Result<()>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Uploads a local file whose SHA-256 is known; a store that can have
    /// the server verify it does so instead of computing a checksum of its own.
    async fn put_file_sha256(
        &self,
        w: &Write,
        key: &str,
        path: &Path,
        sha256: &Sha256Digest,
        meta: &ObjectMeta,
    ) -> Result<()> {
        let _ = sha256;
        self.put(w, key, Body::File(path.to_path_buf()), meta).await
    }

    /// Removes what writers killed mid-write left behind (a local store's
    /// temporary files); S3 aborts nothing here: a lost upload leaves no object.
    async fn clean_up(&self) -> Result<()> {
        Ok(())
    }

    /// What of a local store's public side (its root, `public/` and
    /// everything in it) a web server running as another user cannot read —
    /// written by an older otapub, or changed by hand — as paths; with
    /// `fix`, made readable. A store without file modes (S3) has none.
    async fn unreadable_public(&self, fix: bool) -> Result<Vec<String>> {
        let _ = fix;
        Ok(Vec::new())
    }

    /// Whether the store honours conditional writes (a second
    /// `If-None-Match: *` write of one key must fail): S3 writes a probe
    /// object twice and deletes it, hence the token.
    async fn probe_conditional_writes(&self, w: &Write) -> Result<bool> {
        let _ = w;
        Ok(true)
    }
}

/// Opens the store a URL names: a directory path, `file:///abs/dir`, or
/// `s3://bucket/prefix` — wrapped in a [`FaultyStore`] when the test hook
/// `OTAPUB_FAULTS` is set.
pub async fn open(url: &str, s3: &S3Options) -> Result<Box<dyn Store>> {
    let store = open_plain(url, s3).await?;
    match std::env::var("OTAPUB_FAULTS") {
        Ok(spec) if !spec.is_empty() => {
            let dir = std::env::var_os("OTAPUB_FAULT_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
            Ok(Box::new(FaultyStore::new(store, &spec, dir)?))
        }
        _ => Ok(store),
    }
}

/// What the store's settings (`--store`, `OTAPUB_FAULTS`) can be that no
/// store can be opened from.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `--store` is empty.
    #[error("--store is empty; give a directory such as ./otapub-data")]
    Empty,
    /// A `file://` URL with a relative path.
    #[error("--store {url}: a file:// URL needs an absolute path, e.g. file:///srv/otapub")]
    RelativeFileUrl {
        /// The URL given.
        url: String,
    },
    /// A URL scheme otapub has no store for.
    #[error("--store {url}: unknown scheme {scheme:?}; use a directory, file:///abs/dir or s3://bucket/prefix")]
    UnknownScheme {
        /// The URL given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// Something on the way to a local store's directory is a file.
    #[error("--store {url}: {} is a file, not a directory; give the store's directory (it is created on the first publish)", path.display())]
    NotADirectory {
        /// The URL given.
        url: String,
        /// The file in the way.
        path: PathBuf,
    },
    /// An `s3://` URL without a valid bucket name or prefix.
    #[error("--store {url}: expected s3://BUCKET or s3://BUCKET/PREFIX with a valid bucket name (lowercase letters, digits, `-`, `.`)")]
    S3Url {
        /// The URL given.
        url: String,
    },
    /// An `OTAPUB_FAULTS` rule that does not parse.
    #[error("OTAPUB_FAULTS rule {rule:?} is not ACTION@OP:KEY#N (e.g. fail@put_if:state/index.sqlite#1)")]
    FaultRule {
        /// The rule.
        rule: String,
    },
}

impl crate::error::Refusal for StoreError {
    fn class(&self) -> crate::error::ExitClass {
        match self {
            StoreError::Empty
            | StoreError::RelativeFileUrl { .. }
            | StoreError::UnknownScheme { .. }
            | StoreError::NotADirectory { .. }
            | StoreError::S3Url { .. }
            | StoreError::FaultRule { .. } => crate::error::ExitClass::Input,
        }
    }
}

async fn open_plain(url: &str, s3: &S3Options) -> Result<Box<dyn Store>> {
    if url.is_empty() {
        return Err(StoreError::Empty.into());
    }
    if let Some(rest) = url.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(StoreError::RelativeFileUrl { url: url.to_string() }.into());
        }
        return local(url, PathBuf::from(rest));
    }
    if url.starts_with("s3://") {
        return Ok(Box::new(S3Store::connect(url, s3).await?));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(StoreError::UnknownScheme {
            url: url.to_string(),
            scheme: scheme.to_string(),
        }
        .into());
    }
    local(url, PathBuf::from(url))
}

/// A local store at `root`, which must be a directory or not exist yet
/// (nor anything on the way to it be a file).
fn local(url: &str, root: PathBuf) -> Result<Box<dyn Store>> {
    let blocker = root
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .find_map(|p| std::fs::metadata(p).ok().map(|m| (p, m)))
        .filter(|(_, m)| !m.is_dir());
    if let Some((path, _)) = blocker {
        return Err(StoreError::NotADirectory {
            url: url.to_string(),
            path: path.to_path_buf(),
        }
        .into());
    }
    Ok(Box::new(FsStore::new(root)))
}
