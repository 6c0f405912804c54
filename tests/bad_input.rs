//! Bad input: exit 2, a message that says how to fix it, and a store left
//! exactly as it was (hashed before and after).

mod common;

use common::*;

/// A store holding one published release, and a second export ready to publish.
fn setup() -> TestEnv {
    let env = TestEnv::new();
    write_export(&env.path("good"), "v1");
    env.otapub(&[
        "publish",
        "good",
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--version",
        "v1",
    ])
    .assert()
    .success();
    write_export(&env.path("next"), "v2");
    env
}

/// Runs otapub with `args`, expects exit 2 with `needle` in stderr and an unchanged store.
fn refused(env: &TestEnv, args: &[&str], needle: &str) {
    let before = env.snapshot();
    let out = env.otapub(args).assert().code(2).get_output().clone();
    let err = stderr(&out);
    assert!(
        err.contains(needle),
        "expected {needle:?} in stderr of {args:?}:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(env.snapshot(), before, "{args:?} changed the store");
}

fn publish_args<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["publish", dir, "--channel", "production", "--fingerprint", "fp1"];
    v.extend_from_slice(extra);
    v
}

#[test]
fn export_problems() {
    let env = setup();
    refused(&env, &publish_args("nowhere", &[]), "cannot open the directory");
    std::fs::create_dir_all(env.path("empty")).unwrap();
    refused(&env, &publish_args("empty", &[]), "cannot read metadata.json");
    std::fs::write(env.path("next/metadata.json"), "{not json").unwrap();
    refused(&env, &publish_args("next", &[]), "metadata.json is malformed");

    let set_meta = |bundle: &str, asset: &str, ext: &str| {
        let meta = serde_json::json!({"version": 0, "fileMetadata": {
            "ios": {"bundle": bundle, "assets": [{"path": asset, "ext": ext}]},
            "android": {"bundle": bundle, "assets": []}}});
        std::fs::write(env.path("next/metadata.json"), meta.to_string()).unwrap();
    };
    write_export(&env.path("next"), "v2");
    let bundle = "_expo/static/js/ios/index-v2.hbc";
    let asset = {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(env.path("next/metadata.json")).unwrap()).unwrap();
        meta["fileMetadata"]["ios"]["assets"][0]["path"]
            .as_str()
            .unwrap()
            .to_string()
    };
    set_meta(bundle, "assets/0123456789abcdef0123456789abcdef", "png");
    refused(&env, &publish_args("next", &[]), "which cannot be opened");
    set_meta(bundle, "../good/metadata.json", "png");
    refused(
        &env,
        &publish_args("next", &[]),
        "not a relative path inside the export directory",
    );
    set_meta("/etc/passwd", &asset, "png");
    refused(
        &env,
        &publish_args("next", &[]),
        "not a relative path inside the export directory",
    );
    std::os::unix::fs::symlink(env.path("good/metadata.json"), env.path("next/assets/escape")).unwrap();
    set_meta(bundle, "assets/escape", "png");
    refused(
        &env,
        &publish_args("next", &[]),
        "resolves outside the export directory",
    );
    set_meta(bundle, &asset, "p/ng");
    refused(
        &env,
        &publish_args("next", &[]),
        "an extension must be 1-16 letters or digits",
    );
    let meta = serde_json::json!({"version": 0, "fileMetadata": {"ios": {"bundle": bundle, "assets": []}}});
    std::fs::write(env.path("next/metadata.json"), meta.to_string()).unwrap();
    refused(&env, &publish_args("next", &[]), "metadata.json has no android bundle");
    // An asset listed twice would be listed twice in the manifest.
    let meta = serde_json::json!({"version": 0, "fileMetadata": {
        "ios": {"bundle": bundle, "assets": [{"path": asset, "ext": "png"}, {"path": asset, "ext": "png"}]},
        "android": {"bundle": bundle, "assets": []}}});
    std::fs::write(env.path("next/metadata.json"), meta.to_string()).unwrap();
    refused(&env, &publish_args("next", &[]), "lists ios asset");
    // A format version otapub does not know, or none at all.
    for version in [serde_json::json!(1), serde_json::json!("0"), serde_json::Value::Null] {
        let mut meta = serde_json::json!({"version": version, "fileMetadata": {
            "ios": {"bundle": bundle, "assets": []}, "android": {"bundle": bundle, "assets": []}}});
        if version.is_null() {
            meta.as_object_mut().unwrap().remove("version");
        }
        std::fs::write(env.path("next/metadata.json"), meta.to_string()).unwrap();
        refused(&env, &publish_args("next", &[]), "otapub reads format version 0");
    }
}

#[test]
fn names_and_versions() {
    let env = setup();
    refused(
        &env,
        &["publish", "next", "--channel", "Prod", "--fingerprint", "fp1"],
        "invalid channel",
    );
    refused(
        &env,
        &["publish", "next", "--channel", "assets", "--fingerprint", "fp1"],
        "not `assets` or `updates`",
    );
    refused(
        &env,
        &["publish", "next", "--channel", "production", "--fingerprint", "../fp"],
        "invalid fingerprint",
    );
    refused(
        &env,
        &publish_args("next", &["--version", ".hidden"]),
        "invalid version",
    );
    refused(&env, &publish_args("next", &["--version", "a/b"]), "invalid version");
    refused(
        &env,
        &publish_args("next", &["--platform", "web"]),
        "invalid value 'web'",
    );
    refused(
        &env,
        &["publish", "next", "--channel", "production", "--fingerprint", "web=fp1"],
        "must be `ios` or `android`",
    );
    refused(
        &env,
        &["publish", "next", "--channel", "production", "--fingerprint", "ios=fp1"],
        "no fingerprint for android",
    );
    refused(
        &env,
        &publish_args("next", &["--version", "v1"]),
        "version v1 is already published on ios with different content",
    );
    refused(
        &env,
        &publish_args("next", &["--base-url", "https://cdn.example.com"]),
        "--change-base-url",
    );
    refused(
        &env,
        &publish_args("next", &["--base-url", "ftp://x"]),
        "not an absolute http(s) URL",
    );
    refused(
        &env,
        &publish_args("next", &["--expo-config", "missing.json"]),
        "npx expo config --type public --json",
    );
}

#[test]
fn ban_and_rollback_problems() {
    let env = setup();
    refused(
        &env,
        &["ban", "v1", "--platform", "ios", "--reason", ""],
        "--reason is blank",
    );
    refused(
        &env,
        &["ban", "v1", "--platform", "ios", "--reason", "  \t "],
        "--reason is blank",
    );
    refused(
        &env,
        &["ban", "v9", "--platform", "ios", "--reason", "x"],
        "no package v9 on ios; `otapub status` lists them",
    );
    refused(
        &env,
        &[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp1",
            "--to",
            "v9",
        ],
        "v9 is not a package of production/ios/fp1",
    );
    refused(
        &env,
        &[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp1",
        ],
        "no earlier unbanned bundle",
    );
    refused(
        &env,
        &[
            "rollback",
            "--channel",
            "staging",
            "--platform",
            "ios",
            "--fingerprint",
            "fp1",
        ],
        "nothing is published on staging/ios/fp1",
    );
    refused(
        &env,
        &["promote", "v1", "--platform", "ios", "--to", "production"],
        "already on channel production",
    );
}

#[test]
fn key_problems() {
    let env = setup();
    let publish = |key: &str, needle: &str| {
        let before = env.snapshot();
        let out = env
            .cmd(&[
                "publish",
                "next",
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
                "--store",
                "store",
                "--key",
                key,
            ])
            .assert()
            .code(2)
            .get_output()
            .clone();
        assert!(stderr(&out).contains(needle), "{key}: {}", stderr(&out));
        assert_eq!(env.snapshot(), before);
    };
    publish(
        "keys/missing.key",
        "create a key with `otapub keygen --out keys/missing`",
    );
    std::fs::copy(env.path("keys/throwaway.pub"), env.path("keys/public-as-private.key")).unwrap();
    std::fs::set_permissions(
        env.path("keys/public-as-private.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    publish("keys/public-as-private.key", "not an ed25519 private key in PKCS#8 PEM");
    publish(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/expo-codesigning/keys/private-key.pem"
        ),
        "readable by group or others",
    );
    std::fs::create_dir_all(env.path("keys/dir.key")).unwrap();
    publish("keys/dir.key", "not a regular file");
    std::fs::copy(env.path("keys/throwaway.key"), env.path("keys/open.key")).unwrap();
    std::fs::set_permissions(
        env.path("keys/open.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    publish("keys/open.key", "run `chmod 600 keys/open.key`");
    // No key at all.
    let before = env.snapshot();
    let out = env
        .cmd(&[
            "publish",
            "next",
            "--channel",
            "production",
            "--fingerprint",
            "fp1",
            "--store",
            "store",
        ])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(
        stderr(&out).contains("no signing key: pass --key keys/NAME.key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn a_failed_first_publish_creates_no_store() {
    let env = TestEnv::new();
    env.otapub(&publish_args("nowhere", &[])).assert().code(2);
    assert!(!env.store().exists());
}
