//! Bad input: exit 2, a message that says how to fix it, and a store left
//! exactly as it was (hashed before and after).

use crate::common::*;

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

fn refused(env: &TestEnv, args: &[&str], needle: &str) {
    env.refused(args, needle);
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

/// One row of the table: what to break after [`setup`], the command, the
/// exit code and a phrase of the message (which names the problem and the
/// fix).
struct Case {
    break_it: fn(&TestEnv),
    args: &'static [&'static str],
    code: i32,
    needle: &'static str,
}

fn nothing(_: &TestEnv) {}

fn write(env: &TestEnv, rel: &str, bytes: &[u8]) {
    let p = env.path(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

const INDEX: &str = "store/state/index.sqlite";

/// Rewrites `next/metadata.json` through `f`.
fn edit_metadata(env: &TestEnv, f: impl FnOnce(&mut serde_json::Value)) {
    let path = env.path("next/metadata.json");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
    f(&mut meta);
    std::fs::write(path, meta.to_string()).expect("write");
}

fn sqlite(env: &TestEnv, sql: &str) {
    let c = rusqlite::Connection::open(env.path(INDEX)).expect("open");
    c.execute_batch(sql).expect("sql");
}

const PUBLISH: &[&str] = &["publish", "next", "--channel", "production", "--fingerprint", "fp1"];

fn table() -> Vec<Case> {
    vec![
        // A damaged index: exit 3, and how to recover.
        Case {
            break_it: |e| write(e, INDEX, b""),
            args: PUBLISH,
            code: 3,
            needle: "is empty (0 bytes)",
        },
        Case {
            break_it: |e| write(e, INDEX, b"this is not SQLite at all, just text"),
            args: &["status"],
            code: 3,
            needle: "index rebuild",
        },
        Case {
            break_it: |e| {
                let bytes = std::fs::read(e.path(INDEX)).expect("index");
                write(e, INDEX, &bytes[..bytes.len() / 2]);
            },
            args: &["ban", "v1", "--platform", "ios", "--reason", "x"],
            code: 3,
            needle: "index rebuild",
        },
        Case {
            break_it: |e| {
                std::fs::remove_file(e.path(INDEX)).expect("rm");
                sqlite(e, "CREATE TABLE other (x)");
            },
            args: &["check"],
            code: 3,
            needle: "not an otapub index",
        },
        Case {
            break_it: |e| sqlite(e, "PRAGMA user_version = 999"),
            args: PUBLISH,
            code: 3,
            needle: "upgrade otapub",
        },
        Case {
            break_it: |e| sqlite(e, "PRAGMA user_version = -7"),
            args: &["status"],
            code: 3,
            needle: "which no otapub writes",
        },
        Case {
            break_it: |e| {
                sqlite(
                    e,
                    "DROP TRIGGER packages_immutable; UPDATE packages SET version = '../x'",
                )
            },
            args: &["status"],
            code: 3,
            needle: "index rebuild",
        },
        Case {
            break_it: |e| sqlite(e, "UPDATE settings SET value = 'many' WHERE key = 'generation'"),
            args: PUBLISH,
            code: 3,
            needle: "generation \"many\" is not a number",
        },
        Case {
            break_it: |e| {
                std::fs::remove_file(e.path(INDEX)).expect("rm");
                std::fs::create_dir(e.path(INDEX)).expect("mkdir");
            },
            args: &["status"],
            code: 3,
            needle: "is a directory",
        },
        // Objects a person put in the store by hand.
        Case {
            break_it: |e| {
                let p = e.path("store/public/production/ios/fp1/manifest");
                std::fs::remove_file(&p).expect("rm");
                std::fs::create_dir(&p).expect("mkdir");
            },
            args: &["check"],
            code: 3,
            needle: "is a directory",
        },
        Case {
            break_it: |e| {
                write(
                    e,
                    "store/state/meta/public/production/ios/fp1/manifest.json",
                    b"{garbage",
                )
            },
            args: &["regenerate"],
            code: 3,
            needle: "public/production/ios/fp1/manifest",
        },
        // The store argument.
        Case {
            break_it: |e| write(e, "afile", b"x"),
            args: &["status", "--store", "afile"],
            code: 2,
            needle: "is a file, not a directory",
        },
        Case {
            break_it: nothing,
            args: &["status", "--store", "s3://"],
            code: 2,
            needle: "expected s3://BUCKET",
        },
        Case {
            break_it: nothing,
            args: &["status", "--store", "s3://Bad_Bucket/x"],
            code: 2,
            needle: "valid bucket name",
        },
        Case {
            break_it: nothing,
            args: &["status", "--store", "ftp://x"],
            code: 2,
            needle: "unknown scheme",
        },
        Case {
            break_it: nothing,
            args: &["status", "--store", "file://relative"],
            code: 2,
            needle: "needs an absolute path",
        },
        // The config file: the message names the key and the line.
        Case {
            break_it: |e| write(e, "c.toml", b"store = 3\n"),
            args: &["status", "--config", "c.toml"],
            code: 2,
            needle: "c.toml line 1: `store`",
        },
        Case {
            break_it: |e| write(e, "c.toml", b"actor = \"me\"\npath_style = \"yes\"\n"),
            args: &["status", "--config", "c.toml"],
            code: 2,
            needle: "c.toml line 2: `path_style`",
        },
        Case {
            break_it: |e| write(e, "c.toml", b"key = \"keys/a.key\"\n"),
            args: &["status", "--config", "c.toml"],
            code: 2,
            needle: "`key`: invalid type",
        },
        Case {
            break_it: |e| write(e, "c.toml", b"\nstor = \"x\"\n"),
            args: &["status", "--config", "c.toml"],
            code: 2,
            needle: "unknown field `stor`",
        },
        Case {
            break_it: |e| write(e, "c.toml", b"[[[\n"),
            args: &["status", "--config", "c.toml"],
            code: 2,
            needle: "c.toml line 1",
        },
        Case {
            break_it: nothing,
            args: &["status", "--config", "missing.toml"],
            code: 2,
            needle: "cannot read it",
        },
        // Values of flags.
        Case {
            break_it: nothing,
            args: &["status", "--operation-id", "a b"],
            code: 2,
            needle: "use 1-128 chars",
        },
        Case {
            break_it: nothing,
            args: &["gc", "--grace-hours", "soon"],
            code: 2,
            needle: "invalid value 'soon'",
        },
        Case {
            break_it: nothing,
            args: &[
                "rollback",
                "--channel",
                "production",
                "--platform",
                "ios",
                "--fingerprint",
                "fp1",
                "--to",
                "v1",
                "--to-embedded",
            ],
            code: 2,
            needle: "cannot be used with",
        },
        Case {
            break_it: nothing,
            args: &["promote", "v9", "--platform", "ios", "--to", "staging"],
            code: 2,
            needle: "no package v9 on ios",
        },
        Case {
            break_it: nothing,
            args: &["promote", "v1", "--platform", "ios", "--to", "updates"],
            code: 2,
            needle: "not `assets` or `updates`",
        },
        Case {
            break_it: nothing,
            args: &["ban", "v1", "--platform", "web", "--reason", "x"],
            code: 2,
            needle: "invalid value 'web'",
        },
        Case {
            break_it: nothing,
            args: &["verify", "--url", "ftp://cdn"],
            code: 2,
            needle: "give the http(s) URL",
        },
        Case {
            break_it: nothing,
            args: &["verify", "--trust", "keys/missing.pub"],
            code: 2,
            needle: "keys/missing.pub: cannot read it",
        },
        Case {
            break_it: nothing,
            args: &["index", "rebuild", "--trust", "keys/throwaway.pub"],
            code: 2,
            needle: "pass --force",
        },
        Case {
            break_it: nothing,
            args: &["publish", "next", "--channel", "", "--fingerprint", "fp1"],
            code: 2,
            needle: "invalid channel",
        },
        Case {
            break_it: nothing,
            args: &["publish", "next", "--channel", "production", "--fingerprint", ""],
            code: 2,
            needle: "invalid fingerprint",
        },
        Case {
            break_it: nothing,
            args: &[
                "publish",
                "next",
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
                "--version",
                "a\nb",
            ],
            code: 2,
            needle: "invalid version",
        },
        Case {
            break_it: nothing,
            args: &[
                "publish",
                "next",
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
                "--expo-key",
                "keys/missing.pem",
            ],
            code: 2,
            needle: "keys/missing.pem",
        },
        Case {
            break_it: nothing,
            args: &[
                "publish",
                "next",
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
                "--expo-key",
                "keys/throwaway.key",
            ],
            code: 2,
            needle: "not a usable RSA private key",
        },
        // The export.
        Case {
            break_it: |e| write(e, "next/x.json", b"not json"),
            args: &[
                "publish",
                "next",
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
                "--expo-config",
                "next/x.json",
            ],
            code: 2,
            needle: "next/x.json",
        },
        Case {
            break_it: |e| write(e, "next/x.json", b"[1, 2]"),
            args: &[
                "publish",
                "next",
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
                "--expo-config",
                "next/x.json",
            ],
            code: 2,
            needle: "a JSON object",
        },
        Case {
            break_it: |e| write(e, "afile", b"x"),
            args: &["publish", "afile", "--channel", "production", "--fingerprint", "fp1"],
            code: 2,
            needle: "cannot open the directory",
        },
        Case {
            break_it: |e| {
                std::fs::remove_file(e.path("next/metadata.json")).expect("rm");
                std::fs::create_dir(e.path("next/metadata.json")).expect("mkdir");
            },
            args: PUBLISH,
            code: 2,
            needle: "cannot read metadata.json",
        },
        Case {
            break_it: |e| {
                edit_metadata(e, |m| {
                    m["fileMetadata"]["ios"]["assets"][0]["path"] = "assets/a\nb".into()
                })
            },
            args: PUBLISH,
            code: 2,
            needle: "control character",
        },
        Case {
            break_it: |e| {
                edit_metadata(e, |m| {
                    m["fileMetadata"]["ios"]["assets"][0]["path"] = "assets/a\u{0}b".into()
                })
            },
            args: PUBLISH,
            code: 2,
            needle: "control character",
        },
        Case {
            break_it: |e| edit_metadata(e, |m| m["fileMetadata"]["ios"]["bundle"] = "".into()),
            args: PUBLISH,
            code: 2,
            needle: "not a relative path inside the export directory",
        },
        Case {
            break_it: |e| {
                edit_metadata(e, |m| {
                    m["fileMetadata"]["ios"]["bundle"] = "_expo/static/js/ios/missing.hbc".into()
                })
            },
            args: PUBLISH,
            code: 2,
            needle: "which cannot be opened",
        },
        Case {
            break_it: |e| edit_metadata(e, |m| m["fileMetadata"] = serde_json::json!([])),
            args: PUBLISH,
            code: 2,
            needle: "metadata.json is malformed",
        },
        Case {
            break_it: |e| edit_metadata(e, |m| m["fileMetadata"]["ios"]["assets"] = serde_json::json!({})),
            args: PUBLISH,
            code: 2,
            needle: "metadata.json is malformed",
        },
        Case {
            break_it: |e| edit_metadata(e, |m| m["fileMetadata"]["ios"]["assets"][0]["ext"] = "".into()),
            args: PUBLISH,
            code: 2,
            needle: "an extension must be 1-16 letters or digits",
        },
    ]
}

#[test]
fn the_table() {
    let cases = table();
    for (i, case) in cases.iter().enumerate() {
        let env = setup();
        (case.break_it)(&env);
        let before = env.snapshot();
        let mut cmd = if case.args.contains(&"--store") {
            env.cmd(case.args)
        } else {
            env.otapub(case.args)
        };
        let out = cmd.output().expect("run otapub");
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "case {i} {:?}: {err}", case.args);
        assert_eq!(out.status.code(), Some(case.code), "case {i} {:?}: {err}", case.args);
        assert!(
            err.contains(case.needle),
            "case {i} {:?}: expected {:?} in:\n{err}",
            case.args,
            case.needle
        );
        assert_eq!(env.snapshot(), before, "case {i} {:?} changed the store", case.args);
    }
    assert!(cases.len() >= 45, "the table has {} rows", cases.len());
}
