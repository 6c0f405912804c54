//! Publishing real and synthetic exports: what lands in the tree, retries,
//! determinism and the clock.

use crate::common::*;
use sha2::Digest;

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}/dist")
}

#[test]
fn tabs_fixture_publishes_only_what_metadata_references() {
    let env = TestEnv::new();
    let config = format!("{FIXTURES}/expo-tabs/expoConfig.json");
    env.otapub(&[
        "publish",
        &fixture("expo-tabs"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--expo-config",
        &config,
        "--message",
        "first",
    ])
    .assert()
    .success();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}/metadata.json", fixture("expo-tabs"))).unwrap()).unwrap();
    let mut referenced = std::collections::BTreeSet::new();
    for p in ["ios", "android"] {
        let fm = &meta["fileMetadata"][p];
        let mut files = vec![fm["bundle"].as_str().unwrap().to_string()];
        files.extend(
            fm["assets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["path"].as_str().unwrap().to_string()),
        );
        for f in files {
            let bytes = std::fs::read(format!("{}/{f}", fixture("expo-tabs"))).unwrap();
            referenced.insert(hex(&sha2::Sha256::digest(&bytes)));
        }
    }
    let stored: std::collections::BTreeSet<String> = std::fs::read_dir(env.store().join("public/assets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        stored, referenced,
        "exactly the referenced files, the web output ignored"
    );

    let ios = env.pointer("production", "ios", "fp1");
    assert_eq!(ios["assets"].as_array().unwrap().len(), 24);
    assert_eq!(
        env.pointer("production", "android", "fp1")["assets"]
            .as_array()
            .unwrap()
            .len(),
        28
    );
    // Asset keys are Metro's md5 names; the launch asset's key is the md5 of its bytes.
    let first = &meta["fileMetadata"]["ios"]["assets"][0];
    assert_eq!(
        ios["assets"][0]["key"],
        first["path"].as_str().unwrap().trim_start_matches("assets/")
    );
    assert_eq!(
        ios["assets"][0]["fileExtension"],
        format!(".{}", first["ext"].as_str().unwrap())
    );
    let bundle = std::fs::read(format!(
        "{}/{}",
        fixture("expo-tabs"),
        meta["fileMetadata"]["ios"]["bundle"].as_str().unwrap()
    ))
    .unwrap();
    assert_eq!(ios["launchAsset"]["key"], hex(&md5::Md5::digest(&bundle)));
    // extra.expoClient is the app config with its key order kept.
    let config_text = std::fs::read_to_string(&config).unwrap();
    let config_value: serde_json::Value = serde_json::from_str(&config_text).unwrap();
    assert_eq!(ios["extra"]["expoClient"], config_value);
    let keys: Vec<&String> = ios["extra"]["expoClient"].as_object().unwrap().keys().collect();
    assert_eq!(keys.first().map(|k| k.as_str()), Some("name"));
    assert_eq!(ios["metadata"]["otapub"]["message"], "first");
    // Content types of stored objects.
    let font = ios["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["fileExtension"] == ".ttf")
        .unwrap();
    assert_eq!(font["contentType"], "font/ttf");
    let name = font["url"].as_str().unwrap().rsplit('/').next().unwrap();
    assert_eq!(env.content_type(&format!("public/assets/{name}")), "font/ttf");
}

#[test]
fn a_retried_publish_is_the_same_publish() {
    let env = TestEnv::new();
    let args = [
        "publish",
        &fixture("expo-blank"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
    ];
    let out = env.otapub(&args).assert().success().get_output().clone();
    let version = stdout(&out)
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(version.starts_with("auto-"), "{version}");
    let before = env.snapshot();
    // A crash may have left a pointer unwritten: the retry writes it and nothing else.
    std::fs::remove_file(env.store().join("public/production/ios/fp1/manifest")).unwrap();
    let out = env.otapub(&args).assert().success().get_output().clone();
    assert!(stdout(&out).contains(&format!("version {version}")));
    assert!(stdout(&out).contains("already published"));
    let after = env.snapshot();
    let digest = |v: &String| v.split(' ').next().unwrap().to_string();
    for (k, v) in &before {
        if k == "public/production/ios/fp1/manifest" {
            assert_eq!(digest(&after[k]), digest(v), "{k} restored byte for byte");
        } else if k == "state/meta/public/production/ios/fp1/manifest.json" {
            // Its metadata sidecar is rewritten with it (it records the write time).
        } else {
            assert_eq!(&after[k], v, "{k} untouched");
        }
    }
    assert_eq!(after.len(), before.len());
    // Same content under another message is different content.
    env.otapub(&[
        "publish",
        &fixture("expo-blank"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--version",
        &version,
        "--message",
        "x",
    ])
    .assert()
    .code(2);
}

#[test]
fn same_index_and_inputs_give_the_same_bytes() {
    let a = TestEnv::new();
    let b = TestEnv::new();
    std::fs::copy(a.path("keys/throwaway.key"), b.path("keys/throwaway.key")).unwrap();
    std::fs::copy(a.path("keys/throwaway.pub"), b.path("keys/throwaway.pub")).unwrap();
    for env in [&a, &b] {
        env.otapub_at(
            "2026-05-01T12:00:00Z",
            &[
                "publish",
                &fixture("expo-tabs"),
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
            ],
        )
        .assert()
        .success();
        env.otapub_at(
            "2026-05-02T12:00:00Z",
            &[
                "publish",
                &fixture("expo-blank"),
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
            ],
        )
        .assert()
        .success();
        env.otapub_at(
            "2026-05-03T12:00:00Z",
            &[
                "ban",
                "--platform",
                "ios",
                "--reason",
                "r",
                "--rollback",
                &version_at(env, "ios"),
            ],
        )
        .assert()
        .success();
    }
    let public = |env: &TestEnv| -> Vec<(String, String)> {
        env.snapshot()
            .into_iter()
            .filter(|(k, _)| k.starts_with("public/"))
            .map(|(k, v)| (k, v.split(' ').next().unwrap().to_string()))
            .collect()
    };
    assert_eq!(public(&a), public(&b));
}

fn version_at(env: &TestEnv, platform: &str) -> String {
    env.pointer("production", platform, "fp1")["metadata"]["otapub"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn created_at_increases_even_when_the_clock_goes_backwards() {
    let env = TestEnv::new();
    write_export(&env.path("a"), "a");
    write_export(&env.path("b"), "b");
    env.otapub_at(
        "2026-03-10T10:00:00.250Z",
        &[
            "publish",
            "a",
            "--channel",
            "beta",
            "--fingerprint",
            "fp",
            "--platform",
            "ios",
        ],
    )
    .assert()
    .success();
    env.otapub_at(
        "2025-01-01T00:00:00Z",
        &[
            "publish",
            "b",
            "--channel",
            "beta",
            "--fingerprint",
            "fp",
            "--platform",
            "ios",
        ],
    )
    .assert()
    .success();
    let doc = env.pointer("beta", "ios", "fp");
    assert_eq!(doc["createdAt"], "2026-03-10T10:00:00.251Z");
    assert!(version_at_channel(&env, "beta").starts_with("auto-"));
    assert!(
        !env.store().join("public/beta/android").exists(),
        "--platform ios publishes iOS only"
    );
}

fn version_at_channel(env: &TestEnv, channel: &str) -> String {
    env.pointer(channel, "ios", "fp")["metadata"]["otapub"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn per_platform_fingerprints_and_promote() {
    let env = TestEnv::new();
    env.otapub(&[
        "publish",
        &fixture("expo-blank"),
        "--channel",
        "staging",
        "--fingerprint",
        "ios=fpi",
        "--fingerprint",
        "android=fpa",
        "--version",
        "v1",
    ])
    .assert()
    .success();
    assert_eq!(env.pointer("staging", "ios", "fpi")["runtimeVersion"], "fpi");
    assert_eq!(env.pointer("staging", "android", "fpa")["runtimeVersion"], "fpa");
    env.otapub(&["promote", "v1", "--platform", "android", "--to", "production"])
        .assert()
        .success();
    let doc = env.pointer("production", "android", "fpa");
    assert_eq!(doc["metadata"]["otapub"]["version"], "v1.r1");
    assert_eq!(doc["metadata"]["otapub"]["restampOf"], "v1");
    assert!(!env.store().join("public/production/ios").exists());
}

#[test]
fn keys_given_before_and_after_the_subcommand_all_sign() {
    let env = TestEnv::new();
    env.cmd(&["keygen", "--out", "keys/second"]).assert().success();
    env.cmd(&[
        "--key",
        "keys/throwaway.key",
        "publish",
        &fixture("expo-blank"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--store",
        "store",
        "--key",
        "keys/second.key",
    ])
    .assert()
    .success();
    let envelope = env.read("public/production/ios/fp1/manifest.json");
    let v: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    assert_eq!(v["signatures"].as_array().unwrap().len(), 2);
    verify_envelope(&envelope, &env.public_key());
    let second = std::fs::read_to_string(env.path("keys/second.pub")).unwrap();
    let second =
        <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(second.trim())
            .unwrap();
    verify_envelope(&envelope, &second);
}

#[test]
fn keys_come_from_stdin_or_the_environment() {
    let env = TestEnv::new();
    let pem = std::fs::read_to_string(env.path("keys/throwaway.key")).unwrap();
    env.cmd(&[
        "publish",
        &fixture("expo-blank"),
        "--channel",
        "a",
        "--fingerprint",
        "fp1",
        "--store",
        "store",
        "--key",
        "-",
    ])
    .write_stdin(pem.clone())
    .assert()
    .success();
    env.cmd(&[
        "publish",
        &fixture("expo-blank"),
        "--channel",
        "b",
        "--fingerprint",
        "fp1",
        "--store",
        "store",
    ])
    .env("OTAPUB_SIGNING_KEY", &pem)
    .assert()
    .success();
    env.pointer("a", "ios", "fp1");
    env.pointer("b", "android", "fp1");
    let log = env.otapub(&["log"]).assert().success().get_output().clone();
    assert!(!stdout(&log).contains("PRIVATE KEY"));
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let mode = std::fs::metadata(env.path("keys/throwaway.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(env.path("keys/throwaway.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(env.path("keys/throwaway.pub"))
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    let out = env
        .cmd(&["keygen", "--out", "keys/throwaway"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(stderr(&out).contains("already exists; keygen never overwrites a key"));
    assert_eq!(std::fs::read_to_string(env.path("keys/throwaway.key")).unwrap(), pem);
    // The printed keyid is the first 16 hex chars of SHA-256 of the raw public key.
    let out = env
        .cmd(&["keygen", "--out", "keys/other", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pem = std::fs::read_to_string(env.path("keys/other.pub")).unwrap();
    let key = <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(pem.trim())
        .unwrap();
    assert_eq!(v["keyid"], hex(&sha2::Sha256::digest(key.as_bytes())[..8]));
}
