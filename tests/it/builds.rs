//! The runtime-version guard: a publish to a runtime version no recorded
//! build has warns that no installed app will receive it, and
//! `--require-build` (or `require_build` in otapub.toml) refuses it with
//! nothing written; `builds add` and `embedded add` record builds, `builds`
//! lists them, and `index rebuild` recovers them from their signed records.

use crate::common::*;

/// Runs `cmd`, which must succeed; its stdout and stderr.
fn success(mut cmd: assert_cmd::Command) -> (String, String) {
    let out = cmd.assert().success().get_output().clone();
    (stdout(&out), stderr(&out))
}

#[test]
fn a_publish_no_build_can_receive_warns_and_require_build_refuses_it_with_nothing_written() {
    let env = TestEnv::new();
    let (_, err) = success(env.publish_release("r1", "production", "fp1"));
    assert!(
        err.contains("warning: no build of ios with runtime version fp1 is recorded"),
        "{err}"
    );
    assert!(
        err.contains("otapub builds add --platform android --runtime-version fp1"),
        "{err}"
    );

    write_export(&env.path("export-r2"), "r2");
    let publish_r2 = [
        "publish",
        "export-r2",
        "--channel",
        "production",
        "--runtime-version",
        "fp2",
        "--version",
        "r2",
        "--require-build",
    ];
    env.refused(&publish_r2, "no build is recorded for ios/fp2, android/fp2");

    // One platform recorded is not enough: the other is still refused.
    let add_ios = [
        "builds",
        "add",
        "--platform",
        "ios",
        "--runtime-version",
        "fp2",
        "--note",
        "1.0 (1)",
    ];
    env.otapub(&add_ios).assert().success();
    env.refused(&publish_r2, "no build is recorded for android/fp2,");
    env.otapub(&["builds", "add", "--platform", "android", "--runtime-version", "fp2"])
        .assert()
        .success();
    let (_, err) = success(env.otapub(&publish_r2));
    assert!(!err.contains("warning"), "{err}");

    // The config file's switch does what the flag does.
    std::fs::write(env.path("otapub.toml"), "require_build = true\n").unwrap();
    write_export(&env.path("export-r3"), "r3");
    env.refused(
        &[
            "publish",
            "export-r3",
            "--channel",
            "production",
            "--fingerprint",
            "fp3",
            "--version",
            "r3",
        ],
        "no build is recorded for ios/fp3, android/fp3",
    );

    let listed = env.json(&["builds"]);
    // addedAt is the time of the add (compared below with itself): an RFC 3339 instant.
    for row in listed.as_array().unwrap() {
        let at = row["addedAt"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }
    assert_eq!(
        listed,
        serde_json::json!([
            { "platform": "android", "runtimeVersion": "fp2", "note": null, "addedAt": listed[0]["addedAt"], "new": true },
            { "platform": "ios", "runtimeVersion": "fp2", "note": "1.0 (1)", "addedAt": listed[1]["addedAt"], "new": true },
        ])
    );
    // Adding the same build again changes nothing.
    env.assert_writes_nothing(|| {
        let again = env.json(&add_ios);
        assert_eq!(again["new"], false);
    });
    env.assert_consistent();
}

#[test]
fn builds_are_signed_records_that_index_rebuild_recovers_and_embedded_add_records_one() {
    let env = TestEnv::new();
    env.otapub(&[
        "builds",
        "add",
        "--platform",
        "android",
        "--runtime-version",
        "fp",
        "--note",
        "store 2.1",
    ])
    .assert()
    .success();
    let bundle = env.path("main.jsbundle");
    std::fs::write(&bundle, b"embedded bundle bytes").unwrap();
    env.embedded_add("7f0e9d3c-2b1a-4c5d-8e6f-0a1b2c3d4e5f", &bundle)
        .assert()
        .success();
    let envelope = env.read("state/builds/ios/fp.json");
    let payload_type = serde_json::from_slice::<serde_json::Value>(&envelope).unwrap()["payloadType"].clone();
    assert_eq!(payload_type, "application/vnd.otapub.build+json");
    let record: serde_json::Value = serde_json::from_slice(&verify_envelope(&envelope, &env.public_key())).unwrap();
    assert_eq!(record["platform"], "ios");
    assert_eq!(record["note"], "embedded update 7f0e9d3c-2b1a-4c5d-8e6f-0a1b2c3d4e5f");
    let before = env.json(&["builds"]);
    assert_eq!(before.as_array().unwrap().len(), 2);

    std::fs::remove_file(env.store().join("state/index.sqlite")).unwrap();
    let (out, _) = success(env.otapub(&["index", "rebuild", "--trust", "keys/throwaway.pub"]));
    assert!(out.contains("2 builds"), "{out}");
    assert_eq!(env.json(&["builds"]), before);

    // A record no trusted key signed is skipped, not adopted.
    env.tamper("state/builds/android/fp.json", |b| {
        let s = String::from_utf8(b.clone())
            .unwrap()
            .replace("\"sig\":\"", "\"sig\":\"AA");
        *b = s.into_bytes();
    });
    std::fs::remove_file(env.store().join("state/index.sqlite")).unwrap();
    let (out, _) = success(env.otapub(&["index", "rebuild", "--trust", "keys/throwaway.pub"]));
    assert!(out.contains("skipped state/builds/android/fp.json"), "{out}");
    let after = env.json(&["builds"]);
    assert_eq!(after.as_array().unwrap().len(), 1);
    assert_eq!(after[0]["platform"], "ios");
}

#[test]
fn init_outside_an_expo_project_is_refused_and_writes_nothing() {
    let env = TestEnv::new();
    let before = snapshot(env.dir.path());
    let out = env.cmd(&["init"]).assert().code(2).get_output().clone();
    let err = stderr(&out);
    assert!(err.contains("is not an Expo project (no package.json)"), "{err}");
    assert!(err.contains("npx create-expo-app"), "{err}");
    std::fs::write(
        env.path("package.json"),
        r#"{"name":"web","dependencies":{"react":"19"}}"#,
    )
    .unwrap();
    let out = env.cmd(&["init"]).assert().code(2).get_output().clone();
    assert!(stderr(&out).contains("does not depend on `expo`"));
    std::fs::remove_file(env.path("package.json")).unwrap();
    assert_eq!(snapshot(env.dir.path()), before);
}
