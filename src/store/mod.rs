//! Where the tree lives. A small async trait with one implementation per
//! backend, chosen by the store URL; missing objects are `Ok(None)`, never an
//! error.

mod fs;
mod s3;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::fs::FsStore;
pub use self::s3::{S3Options, S3Store, MULTIPART_THRESHOLD, PART_SIZE};
use crate::error::{Error, Result};

/// Cache-Control of immutable objects.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Default Cache-Control of pointer objects: devices always revalidate.
pub const POINTER_CACHE_CONTROL: &str = "public, max-age=0, s-maxage=60";
/// Key of the index.
pub const INDEX_KEY: &str = "state/index.sqlite";

/// The HTTP metadata an object is served with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Content-Type.
    #[serde(rename = "contentType")]
    pub content_type: String,
    /// Cache-Control.
    #[serde(rename = "cacheControl")]
    pub cache_control: String,
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
        Some(
            self.size == bytes.len() as u64
                && etag.eq_ignore_ascii_case(&crate::signing::hex(&md5::Md5::digest(bytes))),
        )
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

/// A store of objects under one root.
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
    async fn put(&self, key: &str, body: Body, meta: &ObjectMeta) -> Result<()>;

    /// Writes an object only if `cond` holds.
    async fn put_if(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta, cond: Precondition) -> Result<CondPut>;

    /// Deletes an object; deleting a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Uploads a local file whose SHA-256 (lowercase hex) is known; a store
    /// that can have the server verify it does so instead of computing a
    /// checksum of its own.
    async fn put_file_sha256(&self, key: &str, path: &Path, sha256_hex: &str, meta: &ObjectMeta) -> Result<()> {
        let _ = sha256_hex;
        self.put(key, Body::File(path.to_path_buf()), meta).await
    }

    /// Whether the store honours conditional writes (a second
    /// `If-None-Match: *` write of one key must fail).
    async fn probe_conditional_writes(&self) -> Result<bool> {
        Ok(true)
    }
}

/// Opens the store a URL names: a directory path, `file:///abs/dir`, or `s3://bucket/prefix`.
pub async fn open(url: &str, s3: &S3Options) -> Result<Box<dyn Store>> {
    if url.is_empty() {
        return Err(Error::usage("--store is empty; give a directory such as ./otapub-data"));
    }
    if let Some(rest) = url.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(Error::usage(format!(
                "--store {url}: a file:// URL needs an absolute path, e.g. file:///srv/otapub"
            )));
        }
        return Ok(Box::new(FsStore::new(PathBuf::from(rest))));
    }
    if url.starts_with("s3://") {
        return Ok(Box::new(S3Store::connect(url, s3).await?));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(Error::usage(format!(
            "--store {url}: unknown scheme {scheme:?}; use a directory, file:///abs/dir or s3://bucket/prefix"
        )));
    }
    Ok(Box::new(FsStore::new(PathBuf::from(url))))
}
