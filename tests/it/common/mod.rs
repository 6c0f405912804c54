//! Shared test harness: a throwaway working directory with a store and keys,
//! the real `otapub` binary, synthetic exports, and readers that check the
//! tree independently of otapub's own types.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
/// Two successive real exports of one app (and its embedded bundle).
pub const SUCCESSIVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/expo-successive");

/// Where scripts/install-test-servers.sh installs the test tools.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("OTAPUB_TOOLS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/otapub"),
    }
}

/// SHA-256 hex of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
/// The real Expo code-signing certificate and its private key (tests/data/PROVENANCE.txt).
pub const EXPO_CERT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/expo-codesigning/certs/certificate.pem"
);
pub const EXPO_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/expo-codesigning/keys/private-key.pem"
);

/// The RSA public key of [`EXPO_CERT`], read with x509-parser and `rsa`
/// (not otapub's code), to check `expo-signature`s as the client does.
pub fn expo_certificate_key() -> rsa::RsaPublicKey {
    use rsa::pkcs8::DecodePublicKey;
    let pem = std::fs::read(EXPO_CERT).expect("certificate");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    rsa::RsaPublicKey::from_public_key_der(cert.tbs_certificate.subject_pki.raw).expect("RSA key")
}

pub mod edge;
pub mod expo;
pub mod proxy;
pub mod s3;
pub mod scenario;

/// Where the store under test lives.
pub enum Backend {
    /// `./store` in the working directory.
    Local,
    /// A bucket on a real S3-compatible server.
    S3 {
        server: std::sync::Arc<s3::S3Server>,
        bucket: String,
        prefix: String,
    },
}

/// A working directory with `keys/throwaway.{key,pub}` and a store.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
}

impl TestEnv {
    /// A local store at `./store`.
    pub fn new() -> TestEnv {
        TestEnv::with_backend(Backend::Local)
    }

    /// A fresh bucket on `server`, under a prefix.
    pub fn on_s3(server: &std::sync::Arc<s3::S3Server>) -> TestEnv {
        let bucket = server.create_bucket();
        TestEnv::with_backend(Backend::S3 {
            server: server.clone(),
            bucket,
            prefix: "ota/tree".into(),
        })
    }

    fn with_backend(backend: Backend) -> TestEnv {
        let env = TestEnv {
            dir: tempfile::tempdir().expect("tempdir"),
            backend,
        };
        env.cmd(&["keygen", "--out", "keys/throwaway"]).assert().success();
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The local store's directory.
    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    pub fn store_url(&self) -> String {
        match &self.backend {
            Backend::Local => "store".into(),
            Backend::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The real binary, in this directory, with a clean environment (and the
    /// S3 server's endpoint and credentials for an S3 backend).
    pub fn cmd(&self, args: &[&str]) -> Command {
        Command::from_std(self.std_cmd(args))
    }

    /// [`TestEnv::cmd`] as a std Command, to run in the background.
    pub fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("otapub"));
        c.current_dir(self.dir.path());
        for var in [
            "OTAPUB_SIGNING_KEY",
            "OTAPUB_EXPO_SIGNING_KEY",
            "OTAPUB_NOW",
            "OTAPUB_FAULTS",
            "GITHUB_ACTOR",
            "GITLAB_USER_LOGIN",
            // A CI job's variables make the operation id default to the job's:
            // the tests run each command as a new operation unless they say otherwise.
            "GITHUB_ACTIONS",
            "GITLAB_CI",
            "CIRCLECI",
            "BUILDKITE",
        ] {
            c.env_remove(var);
        }
        c.env("USER", "tester");
        if let Backend::S3 { server, .. } = &self.backend {
            for (k, v) in server.env() {
                c.env(k, v);
            }
        }
        c.args(args);
        c
    }

    /// A command against the store, signed with the throwaway key.
    pub fn otapub(&self, args: &[&str]) -> Command {
        Command::from_std(self.std_otapub(args))
    }

    /// [`TestEnv::otapub`] as a std Command, to run in the background.
    pub fn std_otapub(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.std_cmd(args);
        c.args(["--store", &self.store_url(), "--key", "keys/throwaway.key"]);
        if !matches!(self.backend, Backend::Local) {
            c.args(["--base-url", "https://cdn.example.com/ota"]);
        }
        c
    }

    /// `otapub ARGS --json` against the store, which must succeed; its output parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.otapub(args).arg("--json").assert().success().get_output().clone();
        serde_json::from_slice(&out.stdout).expect("--json prints JSON")
    }

    /// `otapub publish` of synthetic release `release` (written to
    /// `export-<release>`) as version `release` on `channel` and fingerprint `fp`.
    pub fn publish_release(&self, release: &str, channel: &str, fp: &str) -> Command {
        let dir = format!("export-{release}");
        write_export(&self.path(&dir), release);
        self.otapub(&[
            "publish",
            &dir,
            "--channel",
            channel,
            "--fingerprint",
            fp,
            "--version",
            release,
        ])
    }

    /// `otapub rollback --to-embedded` on production/`platform`/fp.
    pub fn rollback_to_embedded(&self, platform: &str) -> Command {
        self.otapub(&[
            "rollback",
            "--channel",
            "production",
            "--platform",
            platform,
            "--fingerprint",
            "fp",
            "--to-embedded",
        ])
    }

    /// `otapub publish` of the export in `dir` to production/ios/fp as `version`.
    pub fn publish_export(&self, dir: &Path, version: &str) -> Command {
        self.otapub(&[
            "publish",
            dir.to_str().expect("a UTF-8 path"),
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--platform",
            "ios",
            "--version",
            version,
        ])
    }

    /// `otapub embedded add` of `bundle` on ios / fingerprint `fp` under `id`.
    pub fn embedded_add(&self, id: &str, bundle: &Path) -> Command {
        self.otapub(&[
            "embedded",
            "add",
            "--platform",
            "ios",
            "--fingerprint",
            "fp",
            "--update-id",
            id,
            bundle.to_str().expect("a UTF-8 path"),
        ])
    }

    /// Same, at a fixed instant.
    pub fn otapub_at(&self, now: &str, args: &[&str]) -> Command {
        let mut c = self.otapub(args);
        c.env("OTAPUB_NOW", now);
        c
    }

    pub fn public_key(&self) -> VerifyingKey {
        let pem = std::fs::read_to_string(self.path("keys/throwaway.pub")).expect("public key");
        VerifyingKey::from_public_key_pem(pem.trim()).expect("SPKI PEM")
    }

    /// Every object of the store with the SHA-256 of its bytes and its
    /// metadata: equal before and after means nothing changed.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        match &self.backend {
            Backend::Local => snapshot(&self.store()),
            Backend::S3 { server, bucket, prefix } => server.snapshot(bucket, prefix),
        }
    }

    /// Keys of the objects under `prefix` (relative to the store root).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.snapshot()
            .into_keys()
            .filter(|k| k.starts_with(prefix) && !k.starts_with("state/meta/"))
            .collect()
    }

    pub fn exists(&self, key: &str) -> bool {
        self.object(key).is_some()
    }

    /// An object's bytes and Content-Type, read without otapub.
    pub fn object(&self, key: &str) -> Option<(Vec<u8>, String)> {
        match &self.backend {
            Backend::Local => {
                let bytes = std::fs::read(self.store().join(key)).ok()?;
                // The local store's sidecar describes the body by its MD5, and
                // keeps the entry of the body it replaces (`previous`) until
                // the new body is renamed into place.
                let md5 = hex(&md5::Md5::digest(&bytes));
                let ct = std::fs::read(self.store().join(format!("state/meta/{key}.json")))
                    .ok()
                    .map(|m| {
                        let sidecar: Value = serde_json::from_slice(&m).expect("metadata JSON");
                        let stale = sidecar["etag"].is_string() && sidecar["etag"] != md5.as_str();
                        let entry = if stale && sidecar["previous"]["etag"] == md5.as_str() {
                            &sidecar["previous"]
                        } else {
                            &sidecar
                        };
                        entry["contentType"].as_str().unwrap_or_default().to_string()
                    })
                    .unwrap_or_default();
                Some((bytes, ct))
            }
            Backend::S3 { server, bucket, prefix } => server.get(bucket, &format!("{prefix}/{key}")),
        }
    }

    pub fn read(&self, key: &str) -> Vec<u8> {
        self.object(key).unwrap_or_else(|| panic!("{key} is missing")).0
    }

    /// The Content-Type the store serves an object with.
    pub fn content_type(&self, key: &str) -> String {
        self.object(key).unwrap_or_else(|| panic!("{key} is missing")).1
    }

    pub fn delete(&self, key: &str) {
        match &self.backend {
            Backend::Local => std::fs::remove_file(self.store().join(key)).expect("delete"),
            Backend::S3 { server, bucket, prefix } => server.delete(bucket, &format!("{prefix}/{key}")),
        }
    }

    /// Changes an object's bytes behind otapub's back, keeping its metadata.
    pub fn tamper(&self, key: &str, f: impl FnOnce(&mut Vec<u8>)) {
        match &self.backend {
            Backend::Local => {
                let path = self.store().join(key);
                let mut bytes = std::fs::read(&path).expect("read");
                f(&mut bytes);
                std::fs::write(&path, bytes).expect("write");
            }
            Backend::S3 { server, bucket, prefix } => server.tamper(bucket, &format!("{prefix}/{key}"), f),
        }
    }

    /// Runs `f` and asserts it wrote nothing to the store: no file changed
    /// (mtimes included) locally; no write request reached the S3 server.
    pub fn assert_writes_nothing(&self, f: impl FnOnce()) {
        let before = self.snapshot();
        if let Backend::S3 { server, .. } = &self.backend {
            server.proxy.clear();
        }
        f();
        if let Backend::S3 { server, .. } = &self.backend {
            assert_eq!(server.writes(), Vec::<String>::new(), "write requests");
        }
        assert_eq!(self.snapshot(), before);
    }

    /// Runs otapub with `args`, expects exit 2 with `needle` in stderr and an unchanged store.
    pub fn refused(&self, args: &[&str], needle: &str) {
        let before = self.snapshot();
        let out = self.otapub(args).assert().code(2).get_output().clone();
        let err = stderr(&out);
        assert!(
            err.contains(needle),
            "expected {needle:?} in stderr of {args:?}:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(self.snapshot(), before, "{args:?} changed the store");
    }

    /// `otapub check` (the store against the index) and `otapub verify`
    /// (every pointer as a device reads it) both find nothing wrong.
    pub fn assert_consistent(&self) {
        self.otapub(&["check"]).assert().code(0);
        self.otapub(&["verify", "--trust", "keys/throwaway.pub"])
            .assert()
            .code(0);
    }

    /// A pointer's signed rollout record (`public/<pointer>/rollout.json`),
    /// its payloadType and ed25519 signature checked with the test key.
    pub fn rollout_record(&self, pointer: &str) -> Value {
        let bytes = self.read(&format!("public/{pointer}/rollout.json"));
        let envelope: Value = serde_json::from_slice(&bytes).expect("envelope JSON");
        assert_eq!(envelope["payloadType"], "application/vnd.otapub.rollout+json");
        serde_json::from_slice(&verify_envelope(&bytes, &self.public_key())).expect("a JSON record")
    }

    /// Reads a pointer or immutable manifest the way a device would and
    /// checks it completely; returns the signed part's name and JSON.
    pub fn read_signed(&self, key: &str) -> (String, Value) {
        let (body, ct) = self.object(key).unwrap_or_else(|| panic!("{key} is missing"));
        let parts = parse_multipart(&ct, &body);
        let (headers, part) = &parts[0];
        let name = part_name(headers);
        let envelope = self.read(&format!("{key}.json"));
        let payload = verify_envelope(&envelope, &self.public_key());
        assert_eq!(&payload, part, "{key}: envelope payload is not the manifest part");
        (name, serde_json::from_slice(part).expect("part is JSON"))
    }

    /// Checks that every asset a manifest names exists with the hash it names.
    pub fn check_assets(&self, doc: &Value) {
        let mut all = vec![doc["launchAsset"].clone()];
        all.extend(doc["assets"].as_array().expect("assets").iter().cloned());
        for a in all {
            let url = a["url"].as_str().expect("url");
            let hexname = url.rsplit('/').next().expect("hash in url");
            let bytes = self.read(&format!("public/assets/{hexname}"));
            assert_eq!(URL_SAFE_NO_PAD.encode(Sha256::digest(&bytes)), a["hash"], "{url}");
        }
    }

    /// Copies the real Expo signing key to `keys/expo.pem` (mode 0600, as
    /// otapub requires); returns that path.
    pub fn install_expo_key(&self) -> &'static str {
        std::fs::copy(EXPO_KEY, self.path("keys/expo.pem")).expect("copy the Expo key");
        std::fs::set_permissions(
            self.path("keys/expo.pem"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        "keys/expo.pem"
    }

    /// `otapub keys expo-leaf` under the CA `CA.key`/`CA.pem`, valid `days`, to `out`.
    pub fn expo_leaf(&self, ca: &str, days: u32, out: &str) -> Command {
        self.cmd(&[
            "keys",
            "expo-leaf",
            "--ca-key",
            &format!("{ca}.key"),
            "--ca-cert",
            &format!("{ca}.pem"),
            "--days",
            &days.to_string(),
            "--out",
            out,
        ])
    }

    /// A root CA (made with OpenSSL) in `root.key`/`root.pem` and two Expo
    /// leaves under it, `keys/leaf-a` and `keys/leaf-b` (30 days), once.
    pub fn expo_leaves(&self) {
        if self.path("keys/leaf-b.key").exists() {
            return;
        }
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-days",
                "3650",
                "-subj",
                "/CN=test root",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,digitalSignature",
            ])
            .current_dir(self.path(""))
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl made no root");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(self.path("root.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        for leaf in ["leaf-a", "leaf-b"] {
            self.expo_leaf("root", 30, &format!("keys/{leaf}")).assert().success();
        }
    }

    /// The live version a pointer serves, checking every asset hash.
    pub fn pointer(&self, channel: &str, platform: &str, fp: &str) -> Value {
        let key = format!("public/{channel}/{platform}/{fp}/manifest");
        let (name, doc) = self.read_signed(&key);
        if name == "manifest" {
            assert_eq!(doc["runtimeVersion"], fp);
            assert_eq!(doc["metadata"]["otapub"]["channel"], channel);
            assert_eq!(doc["metadata"]["otapub"]["platform"], platform);
            self.check_assets(&doc);
        } else {
            assert_eq!(name, "directive");
            assert_eq!(doc["extra"]["otapub"]["channel"], channel);
            assert_eq!(doc["extra"]["otapub"]["platform"], platform);
            assert_eq!(doc["extra"]["otapub"]["fingerprint"], fp);
        }
        doc
    }
}

pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("under root").to_string_lossy().to_string();
                if rel == "state/.lock" {
                    continue;
                }
                let modified = std::fs::metadata(&p).and_then(|m| m.modified()).expect("mtime");
                let digest = hex(&Sha256::digest(std::fs::read(&p).expect("read")));
                out.insert(rel, format!("{digest} {modified:?}"));
            }
        }
    }
    out
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A strict multipart/mixed reader written from RFC 2046, not from otapub.
/// Part headers (name, value) and the part's exact bytes.
pub type Part = (Vec<(String, String)>, Vec<u8>);

pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let (mime, params) = content_type.split_once(';').expect("content type has parameters");
    assert_eq!(mime, "multipart/mixed");
    let boundary = params.trim().strip_prefix("boundary=").expect("boundary parameter");
    assert!(boundary.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let text = body.to_vec();
    let close = format!("--{boundary}--\r\n");
    assert!(
        text.ends_with(close.as_bytes()),
        "body ends with the closing delimiter and CRLF"
    );
    let delim = format!("--{boundary}\r\n");
    assert!(text.starts_with(delim.as_bytes()), "no preamble");
    let inner = &text[delim.len()..text.len() - close.len()];
    let sep = format!("\r\n--{boundary}\r\n");
    let mut parts = Vec::new();
    for chunk in split(inner, sep.as_bytes()) {
        let chunk = if parts.len() + 1 == split(inner, sep.as_bytes()).len() {
            chunk.strip_suffix(b"\r\n").expect("last part ends with CRLF")
        } else {
            chunk
        };
        let at = chunk
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("blank line after headers");
        let headers = std::str::from_utf8(&chunk[..at])
            .expect("headers are UTF-8")
            .split("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("header line");
                assert_eq!(n, n.to_ascii_lowercase(), "part header names are lowercase");
                (n.to_string(), v.to_string())
            })
            .collect();
        parts.push((headers, chunk[at + 4..].to_vec()));
    }
    parts
}

fn split<'a>(hay: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= hay.len() {
        if &hay[i..i + sep.len()] == sep {
            out.push(&hay[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&hay[start..]);
    out
}

pub fn part_name(headers: &[(String, String)]) -> String {
    let cd = &headers
        .iter()
        .find(|(n, _)| n == "content-disposition")
        .expect("content-disposition")
        .1;
    // The Expo spec's "Multipart Response" section requires `inline`.
    assert!(cd.starts_with("inline; "), "content-disposition {cd:?} is not inline");
    cd.split("name=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("name")
        .to_string()
}

/// Verifies a DSSE envelope with the public key (PAE rebuilt here) and returns its payload.
pub fn verify_envelope(bytes: &[u8], key: &VerifyingKey) -> Vec<u8> {
    let env: Value = serde_json::from_slice(bytes).expect("envelope JSON");
    let ptype = env["payloadType"].as_str().expect("payloadType");
    let payload = STANDARD
        .decode(env["payload"].as_str().expect("payload"))
        .expect("base64 payload");
    let mut pae = format!("DSSEv1 {} {} {} ", ptype.len(), ptype, payload.len()).into_bytes();
    pae.extend_from_slice(&payload);
    let keyid = hex(&Sha256::digest(key.as_bytes())[..8]);
    let sigs = env["signatures"].as_array().expect("signatures");
    let sig = sigs
        .iter()
        .find(|s| s["keyid"] == keyid.as_str())
        .expect("a signature by the key");
    let raw = STANDARD.decode(sig["sig"].as_str().expect("sig")).expect("base64 sig");
    key.verify_strict(&pae, &Signature::from_slice(&raw).expect("64 bytes"))
        .expect("signature verifies");
    payload
}

/// Writes a synthetic export: one bundle per platform (content varies with
/// `release`) and assets shared across releases.
pub fn write_export(dir: &Path, release: &str) {
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::create_dir_all(dir.join("_expo/static/js/ios")).unwrap();
    std::fs::create_dir_all(dir.join("_expo/static/js/android")).unwrap();
    let shared: &[(&str, &str)] = &[("shared-logo", "png"), ("shared-font", "ttf")];
    let mut assets = Vec::new();
    for (content, ext) in shared.iter().copied().chain(std::iter::once((release, "png"))) {
        let bytes = format!("asset bytes of {content}");
        let md5 = hex(&md5::Md5::digest(bytes.as_bytes()));
        std::fs::write(dir.join("assets").join(&md5), &bytes).unwrap();
        assets.push(serde_json::json!({"path": format!("assets/{md5}"), "ext": ext}));
    }
    for p in ["ios", "android"] {
        std::fs::write(
            dir.join(format!("_expo/static/js/{p}/index-{release}.hbc")),
            format!("{p} bundle {release}"),
        )
        .unwrap();
    }
    let meta = serde_json::json!({"version": 0, "bundler": "metro", "fileMetadata": {
        "ios": {"bundle": format!("_expo/static/js/ios/index-{release}.hbc"), "assets": assets},
        "android": {"bundle": format!("_expo/static/js/android/index-{release}.hbc"), "assets": assets},
    }});
    std::fs::write(dir.join("metadata.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A device's rollout bucket, transcribed from SPEC independently of
/// otapub's code (128-bit products, masked): `None` when `id` is not a UUID
/// in 8-4-4-4-12 hex form.
pub fn device_bucket(id: &str) -> Option<u8> {
    let groups: Vec<&str> = id.split('-').collect();
    let shape_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !shape_ok {
        return None;
    }
    let n = u128::from_str_radix(&groups.concat(), 16).ok()?;
    let mask = (1u128 << 64) - 1;
    let mut z = (n >> 64) ^ (n & mask);
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & mask;
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & mask;
    z ^= z >> 31;
    let value = (z >> 11) as f64 / (1u64 << 53) as f64;
    Some((value * 100.0).floor() as u8)
}

/// `n` random client ids (lowercase, as Android sends them), from a seeded
/// generator so a failure can be replayed: `OTAPUB_TEST_SEED`, or printed.
pub fn random_client_ids(n: usize) -> Vec<String> {
    let seed = std::env::var("OTAPUB_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("client ids from OTAPUB_TEST_SEED={seed}");
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| {
            let h = format!("{:016x}{:016x}", next(), next());
            format!(
                "{}-{}-4{}-a{}-{}",
                &h[..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..32]
            )
        })
        .collect()
}
