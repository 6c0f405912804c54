//! Real S3-compatible servers for the tests, started on 127.0.0.1 with
//! throwaway data: moto (conditional writes right, races included) by
//! default, s3s-fs (checks SigV4, writes to disk) when
//! `OTAPUB_TEST_S3_SERVER=s3s-fs`. `scripts/test.sh` installs both; a test
//! that cannot start its server fails, it never skips.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use super::edge::free_port;
use super::proxy::CountingProxy;
use super::tools_dir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    S3sFs,
}

pub struct S3Server {
    pub kind: Kind,
    child: Child,
    port: u16,
    pub proxy: CountingProxy,
    data: tempfile::TempDir,
    client: aws_sdk_s3::Client,
    rt: tokio::runtime::Runtime,
    buckets: AtomicUsize,
}

const ACCESS_KEY: &str = "otapub-test-access";
const SECRET_KEY: &str = "otapub-test-secret-key";

impl S3Server {
    /// The server `OTAPUB_TEST_S3_SERVER` names (moto by default).
    pub fn start() -> std::sync::Arc<S3Server> {
        let kind = match std::env::var("OTAPUB_TEST_S3_SERVER").as_deref() {
            Ok("s3s-fs") => Kind::S3sFs,
            Ok("moto") | Err(_) => Kind::Moto,
            Ok(other) => panic!("OTAPUB_TEST_S3_SERVER={other}: use moto or s3s-fs"),
        };
        std::sync::Arc::new(S3Server::start_kind(kind))
    }

    pub fn start_kind(kind: Kind) -> S3Server {
        let port = free_port();
        let data = tempfile::tempdir().expect("tempdir");
        let (bin, args): (PathBuf, Vec<String>) = match kind {
            Kind::Moto => (
                tools_dir().join("moto-venv/bin/moto_server"),
                vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()],
            ),
            Kind::S3sFs => (
                tools_dir().join("s3s-fs/bin/s3s-fs"),
                vec![
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                    "--access-key".into(),
                    ACCESS_KEY.into(),
                    "--secret-key".into(),
                    SECRET_KEY.into(),
                    data.path().display().to_string(),
                ],
            ),
        };
        let child = Command::new(&bin)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); run ./scripts/test.sh, which installs the test S3 servers",
                    bin.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on 127.0.0.1:{port} within 30 s",
                bin.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .force_path_style(true)
            .build();
        let client = aws_sdk_s3::Client::from_conf(conf);
        let proxy = CountingProxy::start(port);
        S3Server {
            kind,
            child,
            port,
            proxy,
            data,
            client,
            rt,
            buckets: AtomicUsize::new(0),
        }
    }

    /// Environment for an otapub process: endpoint (through the counting proxy) and credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.proxy.port)),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ]
    }

    /// The server's own port, bypassing the proxy.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's own endpoint, bypassing the proxy.
    pub fn direct_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn create_bucket(&self) -> String {
        let name = format!("otapub-test-{}", self.buckets.fetch_add(1, Ordering::SeqCst));
        match self.kind {
            // s3s-fs maps a bucket to a directory.
            Kind::S3sFs => std::fs::create_dir_all(self.data.path().join(&name)).expect("bucket dir"),
            Kind::Moto => {
                self.rt
                    .block_on(self.client.create_bucket().bucket(&name).send())
                    .expect("create bucket");
            }
        }
        name
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<(Vec<u8>, String)> {
        self.rt.block_on(async {
            let out = self.client.get_object().bucket(bucket).key(key).send().await.ok()?;
            let ct = out.content_type().unwrap_or("").to_string();
            Some((out.body.collect().await.expect("body").into_bytes().to_vec(), ct))
        })
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        self.rt
            .block_on(self.client.delete_object().bucket(bucket).key(key).send())
            .expect("delete");
    }

    pub fn tamper(&self, bucket: &str, key: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.rt.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("get");
            let ct = out.content_type().map(str::to_string);
            let cc = out.cache_control().map(str::to_string);
            let mut bytes = out.body.collect().await.expect("body").into_bytes().to_vec();
            f(&mut bytes);
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .set_content_type(ct)
                .set_cache_control(cc)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .expect("put");
        })
    }

    /// key (relative to `prefix/`) → sha256 of bytes, Content-Type and Cache-Control.
    /// Makes every object under `prefix/public/` readable without
    /// credentials, as a CDN origin is (moto answers anonymous reads of a
    /// private object with 403, and errors on bucket policies).
    pub fn make_public(&self, bucket: &str, prefix: &str) {
        self.rt.block_on(async {
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(format!("{prefix}/public/"))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for o in page.expect("list").contents() {
                    self.client
                        .put_object_acl()
                        .bucket(bucket)
                        .key(o.key().expect("key"))
                        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
                        .send()
                        .await
                        .expect("put-object-acl");
                }
            }
        });
    }

    pub fn snapshot(&self, bucket: &str, prefix: &str) -> BTreeMap<String, String> {
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(format!("{prefix}/"))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for o in page.expect("list").contents() {
                    let key = o.key().expect("key");
                    let obj = self
                        .client
                        .get_object()
                        .bucket(bucket)
                        .key(key)
                        .send()
                        .await
                        .expect("get");
                    let meta = format!(
                        "{} {}",
                        obj.content_type().unwrap_or(""),
                        obj.cache_control().unwrap_or("")
                    );
                    let bytes = obj.body.collect().await.expect("body").into_bytes();
                    let rel = key.strip_prefix(&format!("{prefix}/")).expect("prefix").to_string();
                    out.insert(rel, format!("{} {meta}", super::hex(&Sha256::digest(&bytes))));
                }
            }
            out
        })
    }

    /// Requests otapub sent that write (PUT, POST, DELETE), as "METHOD path".
    pub fn writes(&self) -> Vec<String> {
        self.proxy
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.method != "HEAD")
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
