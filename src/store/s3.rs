//! A store in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, Garage,
//! ...), configured the standard AWS way: the credential chain, profiles,
//! `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_REQUEST_CHECKSUM_CALCULATION`.
//!
//! Uploads are sent with an unsigned payload: the request is still signed,
//! the body's integrity is covered by the SDK's checksum (CRC32 unless told
//! `when_required`) and by TLS, and neither side hashes every byte twice.

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

use super::{Body, CondPut, Object, ObjectInfo, ObjectMeta, Precondition, Store, Write};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

/// Files at least this large go up as multipart uploads.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of one part of a multipart upload.
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// Read buffer for streaming a file into a request.
const READ_BUFFER: usize = 256 * 1024;
/// Files up to this size are read in one call and sent from memory; larger
/// ones are streamed. Streaming costs a trip to tokio's blocking pool for
/// the metadata, the open and every read, and a copy of each chunk: for a
/// publish of many small assets that was a sizeable share of its CPU. The
/// bound keeps memory at most this times the uploads in flight.
const READ_WHOLE_LIMIT: u64 = 1024 * 1024;
/// User metadata key (`x-amz-meta-…`) of a mutable object's generation.
const GENERATION_METADATA: &str = "otapub-generation";
/// Parts in flight at once for one file (bounds memory: this many parts are buffered).
const PART_CONCURRENCY: usize = 4;

/// How to reach the bucket, beyond the standard AWS configuration.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Path-style addressing: `Some(true)` forces it; `None` uses it for IP
    /// and localhost endpoints.
    pub path_style: Option<bool>,
    /// Compute upload checksums only when an operation requires them (for
    /// servers that reject the SDK's default aws-chunked CRC32 trailer).
    pub checksums_when_required: bool,
    /// How long a request may wait for the server's next bytes before it
    /// counts as failed (and is retried).
    pub read_timeout: std::time::Duration,
}

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options {
            path_style: None,
            checksums_when_required: false,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// The default [`S3Options::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Attempts per request: the SDK's standard retry mode (exponential backoff
/// with jitter) on throttling (503 SlowDown), 5xx, resets and timeouts.
const MAX_ATTEMPTS: u32 = 5;

/// A store under `s3://bucket/prefix`.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    /// The conditional-write probe's answer, once asked: a command may ask
    /// early (a publish, while its files hash) and its commit again.
    probed: std::sync::Arc<tokio::sync::OnceCell<bool>>,
}

fn is_local_host(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok()
}

fn to_chrono(t: &aws_sdk_s3::primitives::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// A short, user-facing account of an SDK failure: what the server said
/// (status, code, message) or why it could not be reached, never the SDK's
/// debug dump.
fn sdk_message<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    let detail = match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("no error code");
            match se.err().message() {
                Some(m) => format!("HTTP {status} {code}: {m}"),
                None => format!("HTTP {status} {code}"),
            }
        }
        SdkError::TimeoutError(_) => TIMED_OUT.to_string(),
        SdkError::ResponseError(_) => "the server's response was cut off or unreadable".to_string(),
        SdkError::ConstructionFailure(_) => format!("the request could not be built ({})", DisplayErrorContext(e)),
        SdkError::DispatchFailure(df) => {
            let context = DisplayErrorContext(e).to_string();
            if context.contains("credentials") {
                return "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the bucket's endpoint".to_string();
            }
            if df.is_timeout() {
                return TIMED_OUT.to_string();
            }
            // The innermost cause says it plainly ("Connection refused (os error 111)").
            let mut cause: &dyn std::error::Error = e;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            let cause = cause.to_string();
            return format!(
                "cannot reach the S3 endpoint ({}): check AWS_ENDPOINT_URL (and that the server runs) or the network",
                truncate(&cause, 120)
            );
        }
        _ => DisplayErrorContext(e).to_string(),
    };
    truncate(&detail, 300)
}

const TIMED_OUT: &str =
    "the request timed out: the server did not answer in time (for a slow link, raise s3_read_timeout_secs in otapub.toml)";

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The generation a mutable object was written with, from its user metadata.
fn generation_of(key: &str, metadata: Option<&std::collections::HashMap<String, String>>) -> Result<Option<u64>> {
    metadata
        .and_then(|m| m.get(GENERATION_METADATA))
        .map(|v| super::parse_generation(key, v))
        .transpose()
}

/// An object the server reported without an ETag: conditional writes
/// cannot name it, so this is an error, never an empty etag.
fn no_etag(action: &'static str, key: &str) -> Error {
    S3Store::err(
        action,
        key,
        "the server sent no ETag, which conditional writes need; use an S3 server that reports ETags".into(),
    )
}

/// How many times a read whose body was cut off is tried.
const READ_ATTEMPTS: u32 = 3;

fn status<E, R: HasStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(HasStatus::status)
}

trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

impl S3Store {
    /// Parses `s3://bucket/prefix` and loads the AWS configuration.
    pub async fn connect(url: &str, opts: &S3Options) -> Result<S3Store> {
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let valid_bucket = !bucket.is_empty()
            && bucket.len() <= 63
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        let valid_prefix = prefix.split('/').all(|c| !c.is_empty() && c != "." && c != "..") || prefix.is_empty();
        if !valid_bucket || !valid_prefix {
            return Err(super::StoreError::S3Url { url: url.to_string() }.into());
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            // S3-compatible servers accept any region; AWS itself redirects.
            loader =
                loader.region(aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1"));
        }
        let sdk = loader.load().await;
        let path_style = opts
            .path_style
            .unwrap_or_else(|| sdk.endpoint_url().is_some_and(is_local_host));
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .read_timeout(opts.read_timeout)
                    .build(),
            );
        if opts.checksums_when_required {
            conf = conf
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Store {
            client: Client::from_conf(conf.build()),
            bucket: bucket.to_string(),
            probed: Default::default(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A PutObject of `key` with its metadata, the body still to set.
    fn put_request(
        &self,
        key: &str,
        meta: &ObjectMeta,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_type(&meta.content_type)
            .cache_control(&meta.cache_control)
            .set_metadata(
                meta.generation
                    .map(|g| std::collections::HashMap::from([(GENERATION_METADATA.to_string(), g.to_string())])),
            )
    }

    /// A file streamed as a request body, in large reads: the default 4 KiB
    /// buffer costs a syscall and a chunk frame every 4 KiB.
    async fn file_stream(key: &str, path: &Path) -> Result<ByteStream> {
        ByteStream::read_from()
            .path(path)
            .buffer_size(READ_BUFFER)
            .build()
            .await
            .map_err(|e| Self::err("read source of", key, e.to_string()))
    }

    fn err(action: &'static str, key: &str, reason: String) -> Error {
        Error::Store {
            action,
            key: key.to_string(),
            reason,
        }
    }

    // Not aws-s3-transfer-manager / aws-s3-transfer: neither is on crates.io (`cargo info` finds neither), so `--locked` from crates.io cannot build them.
    async fn put_multipart(&self, key: &str, path: &Path, size: u64, meta: &ObjectMeta) -> Result<()> {
        let full = self.full(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .content_type(&meta.content_type)
            .cache_control(&meta.cache_control)
            .send()
            .await
            .map_err(|e| Self::err("start multipart upload of", key, sdk_message(&e)))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                Self::err(
                    "start multipart upload of",
                    key,
                    "the server returned no upload id".into(),
                )
            })?
            .to_string();
        let parts = size.div_ceil(PART_SIZE);
        let result: Result<Vec<CompletedPart>> = stream::iter(0..parts)
            .map(|i| {
                let (upload_id, full) = (upload_id.clone(), full.clone());
                async move {
                    let offset = i * PART_SIZE;
                    let len = PART_SIZE.min(size - offset);
                    let body = ByteStream::read_from()
                        .path(path)
                        .buffer_size(READ_BUFFER)
                        .offset(offset)
                        .length(aws_sdk_s3::primitives::Length::Exact(len))
                        .build()
                        .await
                        .map_err(|e| Self::err("read part of", key, e.to_string()))?;
                    let out = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(&full)
                        .upload_id(&upload_id)
                        .part_number(i as i32 + 1)
                        .body(body)
                        .customize()
                        .disable_payload_signing()
                        .send()
                        .await
                        .map_err(|e| Self::err("upload part of", key, sdk_message(&e)))?;
                    Ok(CompletedPart::builder()
                        .part_number(i as i32 + 1)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .build())
                }
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await;
        let completed = match result {
            Ok(parts) => parts,
            Err(e) => {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(e);
            }
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await
            .map_err(|e| Self::err("complete multipart upload of", key, sdk_message(&e)))?;
        Ok(())
    }
}

#[async_trait]
impl Store for S3Store {
    fn url(&self) -> String {
        match self.prefix.trim_end_matches('/') {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }

    fn is_local(&self) -> bool {
        false
    }

    async fn get(&self, key: &str) -> Result<Option<Object>> {
        // The SDK retries a request that fails; a body cut off after the
        // headers (a connection reset mid-download) is retried here.
        // Not backon: three fixed attempts on one kind of error the SDK's retry does not see; a dependency would save three lines.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .send()
                .await;
            let out = match resp {
                Ok(o) => o,
                Err(e) if status(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(Self::err("read", key, sdk_message(&e))),
            };
            let meta = ObjectMeta {
                content_type: out.content_type().unwrap_or("application/octet-stream").to_string(),
                cache_control: out.cache_control().unwrap_or("").to_string(),
                generation: generation_of(key, out.metadata())?,
            };
            let etag = out
                .e_tag()
                .filter(|e| !e.is_empty())
                .ok_or_else(|| no_etag("read", key))?
                .to_string();
            match out.body.collect().await {
                Ok(b) => {
                    return Ok(Some(Object {
                        bytes: b.into_bytes().to_vec(),
                        meta,
                        etag,
                    }))
                }
                Err(e) if attempt < READ_ATTEMPTS => {
                    tracing::debug!("read of {key} cut off ({e}); reading again");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => {
                    return Err(Self::err(
                        "read",
                        key,
                        format!("the download was cut off {READ_ATTEMPTS} times ({e})"),
                    ))
                }
            }
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
        {
            Ok(o) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: o.content_length().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(str::to_string),
                modified: o.last_modified().and_then(to_chrono),
                generation: generation_of(key, o.metadata())?,
            })),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(Self::err("stat", key, sdk_message(&e))),
        }
    }

    async fn etag(&self, key: &str) -> Result<Option<String>> {
        match self.head(key).await? {
            None => Ok(None),
            Some(ObjectInfo { etag: Some(e), .. }) if !e.is_empty() => Ok(Some(e)),
            Some(_) => Err(no_etag("stat", key)),
        }
    }

    async fn put(&self, _: &Write, key: &str, body: Body, meta: &ObjectMeta) -> Result<()> {
        let stream = match body {
            Body::Bytes(b) => ByteStream::from(b),
            Body::File(path) => {
                let size = tokio::fs::metadata(&path)
                    .await
                    .map_err(|e| Self::err("read source of", key, e.to_string()))?
                    .len();
                if size >= MULTIPART_THRESHOLD {
                    return self.put_multipart(key, &path, size, meta).await;
                }
                Self::file_stream(key, &path).await?
            }
        };
        self.put_request(key, meta)
            .body(stream)
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| Self::err("write", key, sdk_message(&e)))?;
        Ok(())
    }

    async fn put_if(
        &self,
        _: &Write,
        key: &str,
        bytes: Vec<u8>,
        meta: &ObjectMeta,
        cond: Precondition,
    ) -> Result<CondPut> {
        let req = self.put_request(key, meta).body(ByteStream::from(bytes));
        let req = match cond {
            Precondition::Absent => req.if_none_match("*"),
            Precondition::Matches(etag) => req.if_match(etag),
        };
        match req.customize().disable_payload_signing().send().await {
            Ok(out) => match out.e_tag().filter(|e| !e.is_empty()) {
                Some(e) => Ok(CondPut::Written(e.to_string())),
                // Written, but without an etag the next conditional write
                // cannot name it: read it back once.
                None => match self.etag(key).await? {
                    Some(e) => Ok(CondPut::Written(e)),
                    None => Err(Self::err(
                        "conditionally write",
                        key,
                        "the object vanished right after it was written".into(),
                    )),
                },
            },
            // 412 Precondition Failed; AWS answers 409 ConditionalRequestConflict
            // to concurrent conditional writes.
            Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(CondPut::Conflict),
            Err(e) => Err(Self::err("conditionally write", key, sdk_message(&e))),
        }
    }

    async fn delete(&self, _: &Write, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| Self::err("delete", key, sdk_message(&e)))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full(prefix))
            // Ask for large pages: servers return at most what they allow
            // (1000 on AWS), and one that walks its disk per page (s3s-fs) is
            // asked far fewer times.
            .max_keys(100_000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Self::err("list", prefix, sdk_message(&e)))?;
            for o in page.contents() {
                let Some(k) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(ObjectInfo {
                    key: k.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().map(str::to_string),
                    modified: o.last_modified().and_then(to_chrono),
                    generation: None,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn put_file_sha256(
        &self,
        _: &Write,
        key: &str,
        path: &Path,
        sha256: &Sha256Digest,
        meta: &ObjectMeta,
    ) -> Result<()> {
        // One trip to the blocking pool: the size, and a small file's bytes.
        let owned = path.to_path_buf();
        let (size, whole) = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Option<Vec<u8>>)> {
            let mut file = std::fs::File::open(owned)?;
            let size = file.metadata()?.len();
            if size > READ_WHOLE_LIMIT {
                return Ok((size, None));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            std::io::Read::read_to_end(&mut file, &mut bytes)?;
            Ok((size, Some(bytes)))
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(|e| Self::err("read source of", key, e.to_string()))?;
        if size >= MULTIPART_THRESHOLD {
            return self.put_multipart(key, path, size, meta).await;
        }
        let body = match whole {
            Some(bytes) => ByteStream::from(bytes),
            None => Self::file_stream(key, path).await?,
        };
        // The SHA-256 is already known: the server checks it, and neither side
        // computes another checksum.
        use base64::Engine;
        self.put_request(key, meta)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(sha256.as_bytes()))
            .body(body)
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| Self::err("write", key, sdk_message(&e)))?;
        Ok(())
    }

    async fn probe_conditional_writes(&self, w: &Write) -> Result<bool> {
        self.probed.get_or_try_init(|| self.probe(w)).await.copied()
    }
}

impl S3Store {
    /// Writes a fresh key twice with `If-None-Match: *` (the second must be
    /// refused) and deletes it.
    async fn probe(&self, w: &Write) -> Result<bool> {
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce).map_err(|e| Self::err("probe", "state/probe/", e.to_string()))?;
        let key = format!("state/probe/{}", hex::encode(nonce));
        let meta = ObjectMeta::new("text/plain", "no-store");
        let first = self
            .put_if(w, &key, b"first".to_vec(), &meta, Precondition::Absent)
            .await?;
        let second = self
            .put_if(w, &key, b"second".to_vec(), &meta, Precondition::Absent)
            .await?;
        let _ = self.delete(w, &key).await;
        Ok(matches!(first, CondPut::Written(_)) && second == CondPut::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_endpoints_get_path_style() {
        assert!(is_local_host("http://127.0.0.1:9000"));
        assert!(is_local_host("http://localhost:9000/"));
        assert!(is_local_host("http://[::1]:9000"));
        assert!(!is_local_host("https://s3.us-east-1.amazonaws.com"));
        assert!(!is_local_host("https://abc.r2.cloudflarestorage.com"));
    }
}
