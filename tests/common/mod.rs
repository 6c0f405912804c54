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

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");

/// A working directory with `keys/throwaway.{key,pub}` and a store at `./store`.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let env = TestEnv {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        env.cmd(&["keygen", "--out", "keys/throwaway"])
            .assert()
            .success();
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// The real binary, in this directory, with a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("otapub").expect("binary");
        c.current_dir(self.dir.path());
        for var in [
            "OTAPUB_SIGNING_KEY",
            "OTAPUB_EXPO_SIGNING_KEY",
            "OTAPUB_NOW",
            "GITHUB_ACTOR",
            "GITLAB_USER_LOGIN",
        ] {
            c.env_remove(var);
        }
        c.env("USER", "tester");
        c.args(args);
        c
    }

    /// A command against `./store`, signed with the throwaway key.
    pub fn otapub(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(args);
        c.args(["--store", "store", "--key", "keys/throwaway.key"]);
        c
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

    /// Every file of the store with its SHA-256: equal before and after means nothing was written.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        snapshot(&self.store())
    }

    pub fn read(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.store().join(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    /// The Content-Type the local store keeps for a public object.
    pub fn content_type(&self, key: &str) -> String {
        let meta = std::fs::read(self.store().join(format!("state/meta/{key}.json")))
            .expect("metadata sidecar");
        let v: Value = serde_json::from_slice(&meta).expect("metadata JSON");
        v["contentType"].as_str().expect("contentType").to_string()
    }

    /// Reads a pointer or immutable manifest the way a device would and
    /// checks it completely; returns the signed part's name and JSON.
    pub fn read_signed(&self, key: &str) -> (String, Value) {
        let body = self.read(key);
        let ct = self.content_type(key);
        let parts = parse_multipart(&ct, &body);
        let (headers, part) = &parts[0];
        let name = part_name(headers);
        let envelope = self.read(&format!("{key}.json"));
        let payload = verify_envelope(&envelope, &self.public_key());
        assert_eq!(
            &payload, part,
            "{key}: envelope payload is not the manifest part"
        );
        (name, serde_json::from_slice(part).expect("part is JSON"))
    }

    /// The live version a pointer serves, checking every asset hash.
    pub fn pointer(&self, channel: &str, platform: &str, fp: &str) -> Value {
        let key = format!("public/{channel}/{platform}/{fp}/manifest");
        let (name, doc) = self.read_signed(&key);
        if name == "manifest" {
            assert_eq!(doc["runtimeVersion"], fp);
            assert_eq!(doc["metadata"]["otapub"]["channel"], channel);
            assert_eq!(doc["metadata"]["otapub"]["platform"], platform);
            let mut all = vec![doc["launchAsset"].clone()];
            all.extend(doc["assets"].as_array().expect("assets").iter().cloned());
            for a in all {
                let url = a["url"].as_str().expect("url");
                let hexname = url.rsplit('/').next().expect("hash in url");
                let bytes = self.read(&format!("public/assets/{hexname}"));
                assert_eq!(
                    URL_SAFE_NO_PAD.encode(Sha256::digest(&bytes)),
                    a["hash"],
                    "{url}"
                );
            }
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
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .to_string();
                if rel == "state/.lock" {
                    continue;
                }
                out.insert(rel, hex(&Sha256::digest(std::fs::read(&p).expect("read"))));
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
    let (mime, params) = content_type
        .split_once(';')
        .expect("content type has parameters");
    assert_eq!(mime, "multipart/mixed");
    let boundary = params
        .trim()
        .strip_prefix("boundary=")
        .expect("boundary parameter");
    assert!(boundary
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
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
            chunk
                .strip_suffix(b"\r\n")
                .expect("last part ends with CRLF")
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
    let raw = STANDARD
        .decode(sig["sig"].as_str().expect("sig"))
        .expect("base64 sig");
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
    for (content, ext) in shared
        .iter()
        .copied()
        .chain(std::iter::once((release, "png")))
    {
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
    std::fs::write(
        dir.join("metadata.json"),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}
