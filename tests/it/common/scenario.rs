//! The core scenario, shared by the local and the S3 test suites.

use super::*;

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-02T00:00:00Z";
const T3: &str = "2026-01-03T00:00:00Z";
const T4: &str = "2026-01-04T00:00:00Z";

fn publish(env: &TestEnv, at: &str, release: &str) {
    let dir = env.path(&format!("exports/{release}"));
    write_export(&dir, release);
    env.otapub_at(
        at,
        &[
            "publish",
            dir.to_str().unwrap(),
            "--channel",
            "production",
            "--fingerprint",
            "fp1",
            "--version",
            release,
        ],
    )
    .assert()
    .success();
}

fn serves(env: &TestEnv, platform: &str) -> serde_json::Value {
    env.pointer("production", platform, "fp1")
}

fn version_of(doc: &serde_json::Value) -> String {
    doc["metadata"]["otapub"]["version"]
        .as_str()
        .expect("an update, not a directive")
        .to_string()
}

/// The scenario of the core issue on any backend.
pub fn core_scenario(env: &TestEnv) {
    // Three versions sharing two assets: every distinct content is stored once.
    publish(env, T1, "v1");
    publish(env, T2, "v2");
    publish(env, T3, "v3");
    let assets = env.keys("public/assets/");
    assert_eq!(
        assets.len(),
        2 + 3 + 6,
        "2 shared assets, 3 per-release assets, 6 bundles"
    );
    for a in &assets {
        let name = a.rsplit('/').next().unwrap();
        assert_eq!(name, hex(&<sha2::Sha256 as sha2::Digest>::digest(env.read(a))));
    }
    for p in ["ios", "android"] {
        let doc = serves(env, p);
        assert_eq!(version_of(&doc), "v3");
        assert_eq!(doc["createdAt"], "2026-01-03T00:00:00.000Z");
        assert_eq!(doc["launchAsset"]["contentType"], "application/javascript");
        // The immutable object holds the same bytes as the pointer.
        assert_eq!(
            env.read(&format!("public/updates/v3/{p}/manifest")),
            env.read(&format!("public/production/{p}/fp1/manifest"))
        );
    }

    // Ban the newest on iOS: the pointer falls back; Android is untouched.
    env.otapub_at(T4, &["ban", "v3", "--platform", "ios", "--reason", "crash on launch"])
        .assert()
        .success();
    assert_eq!(version_of(&serves(env, "ios")), "v2");
    assert_eq!(version_of(&serves(env, "android")), "v3");
    let record = env.read("state/bans/ios/v3.json");
    let payload: serde_json::Value = serde_json::from_slice(&verify_envelope(&record, &env.public_key())).unwrap();
    assert_eq!(payload["reason"], "crash on launch");
    assert_eq!(payload["actor"], "tester");

    // Rollback (default): one bundle back from the newest (v3, banned) is v2, re-stamped newer than v3.
    env.otapub_at(
        T4,
        &[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp1",
        ],
    )
    .assert()
    .success();
    let doc = serves(env, "ios");
    assert_eq!(version_of(&doc), "v2.r1");
    assert_eq!(doc["metadata"]["otapub"]["restampOf"], "v2");
    assert_eq!(doc["createdAt"], "2026-01-04T00:00:00.000Z");
    let v2 = env.read_signed("public/updates/v2/ios/manifest").1;
    assert_eq!(
        doc["launchAsset"], v2["launchAsset"],
        "a re-stamp serves its original's bundle"
    );
    assert_ne!(doc["id"], v2["id"], "a re-stamp has a fresh id");

    // Rollback again: one step further back, to v1 (re-stamp numbering per original).
    env.otapub_at(
        T4,
        &[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp1",
        ],
    )
    .assert()
    .success();
    let doc = serves(env, "ios");
    assert_eq!(version_of(&doc), "v1.r1");
    assert_eq!(doc["metadata"]["otapub"]["restampOf"], "v1");
    assert_eq!(
        doc["createdAt"], "2026-01-04T00:00:00.001Z",
        "strictly after v2.r1 at the same clock"
    );

    // Ban everything on the pointer (each ban covers the re-stamps): noUpdateAvailable.
    env.otapub_at(T4, &["ban", "v1", "--platform", "ios", "--reason", "bad"])
        .assert()
        .success();
    assert_eq!(version_of(&serves(env, "ios")), "v2.r1");
    env.otapub_at(T4, &["ban", "v2.r1", "--platform", "ios", "--reason", "bad too"])
        .assert()
        .success();
    let doc = serves(env, "ios");
    assert_eq!(doc["type"], "noUpdateAvailable");
    let out = env
        .otapub(&[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp1",
            "--to",
            "v1",
        ])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(stderr(&out).contains("v1 is banned"), "{}", stderr(&out));

    // Roll back to embedded: a signed directive with a commitTime newer than everything there.
    env.otapub_at(
        T1,
        &[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp1",
            "--to-embedded",
        ],
    )
    .assert()
    .success();
    let doc = serves(env, "ios");
    assert_eq!(doc["type"], "rollBackToEmbedded");
    assert_eq!(doc["parameters"]["commitTime"], "2026-01-04T00:00:00.002Z");

    // Status tells the same story.
    let st = env.json(&["status"]);
    let ios = st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "ios")
        .unwrap();
    assert!(ios["serves"].as_str().unwrap().starts_with("rollBackToEmbedded"));
    let banned: Vec<_> = ios["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["banned"].is_object())
        .map(|h| h["version"].as_str().unwrap())
        .collect();
    assert_eq!(banned, ["v1.r1", "v2.r1", "v3", "v2", "v1"]);

    // Regenerate writes nothing when nothing differs.
    let before = env.snapshot();
    env.assert_writes_nothing(|| {
        let out = env.otapub(&["regenerate"]).assert().success().get_output().clone();
        assert!(stdout(&out).contains(", 0 wrote"), "{}", stdout(&out));
    });

    // Deleted pointers and immutable objects come back byte for byte.
    // The local store's metadata sidecars record write times: compare the objects.
    let digests = |snap: std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
        snap.into_iter()
            .filter(|(k, _)| !k.starts_with("state/meta/"))
            .map(|(k, v)| (k, v.split(' ').next().unwrap().to_string()))
            .collect()
    };
    for p in ["ios", "android"] {
        env.delete(&format!("public/production/{p}/fp1/manifest"));
        env.delete(&format!("public/production/{p}/fp1/manifest.json"));
    }
    env.delete("public/updates/v1/android/manifest.json");
    env.otapub(&["regenerate"]).assert().success();
    // Byte for byte but for the index, where regenerate records its
    // operation like every writer, and the record of what is written.
    let tree = |snap| {
        digests(snap)
            .into_iter()
            .filter(|(k, _)| k != "state/index.sqlite" && k != "state/pointers-written.json")
            .collect::<Vec<_>>()
    };
    assert_eq!(tree(env.snapshot()), tree(before));
    let ops = env.json(&["ops"]);
    let newest = &ops[0];
    assert_eq!(
        (&newest["kind"], &newest["state"]),
        (&"regenerate".into(), &"succeeded".into()),
        "{ops}"
    );

    env.otapub(&["verify", "--trust", "keys/throwaway.pub"])
        .assert()
        .code(0);
    env.otapub(&["check"]).assert().code(0);

    // One flipped byte in an envelope and in an asset: verify and check both fail, naming them.
    env.tamper("public/production/android/fp1/manifest.json", |bytes| {
        let at = bytes.windows(9).position(|w| w == b"\"payload\"").unwrap() + 12;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    });
    let asset = assets
        .iter()
        .find(|a| env.read(a).starts_with(b"asset bytes of shared-logo"))
        .unwrap();
    env.tamper(asset, |bytes| bytes[0] ^= 1);
    let out = env
        .otapub(&["verify", "--trust", "keys/throwaway.pub"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let text = stdout(&out);
    assert!(
        text.contains("production/android/fp1: manifest.json: signature by"),
        "{text}"
    );
    assert!(text.contains("does not match its hash"), "{text}");
    let out = env.otapub(&["check"]).assert().code(1).get_output().clone();
    let text = stdout(&out);
    assert!(
        text.contains("public/production/android/fp1/manifest.json: differs"),
        "{text}"
    );
    assert!(text.contains(&format!("{asset}: content hashes to")), "{text}");

    // The audit log recorded every change with its actor.
    let log = env.json(&["log"]);
    let actions: Vec<_> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "publish",
            "publish",
            "publish",
            "publish",
            "publish",
            "publish",
            "ban",
            "restamp",
            "restamp",
            "ban",
            "ban",
            "rollback-to-embedded",
            // The regenerate that restored the deleted objects: a writer like any other.
            "regenerate"
        ]
    );
    assert!(log["events"].as_array().unwrap().iter().all(|e| e["actor"] == "tester"));
    assert!(log["operations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["state"] == "succeeded"));
}
