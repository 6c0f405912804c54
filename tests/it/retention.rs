//! Retention: `gc --keep CHANNEL=N` retires what a pointer keeps no more —
//! history rows and signed envelopes stay, bundles go once unused, each
//! deletion audited — and never what a pointer, a running rollout or a kept
//! patch base reaches. Checked against the files the test itself wrote.

use std::path::Path;

use std::collections::BTreeSet;

use crate::common::*;
use serde_json::Value;

const LATER: &str = "2099-01-01T00:00:00Z";

/// The assets only release `r` has (write_export: its bundles and one asset).
fn own_assets(r: &str) -> BTreeSet<String> {
    ["ios", "android"]
        .iter()
        .map(|p| sha256_hex(format!("{p} bundle {r}").as_bytes()))
        .chain(std::iter::once(sha256_hex(format!("asset bytes of {r}").as_bytes())))
        .map(|h| format!("public/assets/{h}"))
        .collect()
}

fn history(env: &TestEnv, channel: &str, platform: &str) -> Vec<Value> {
    let st = env.json(&["status"]);
    st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["channel"] == channel && p["platform"] == platform)
        .unwrap()["history"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn keep_retires_old_packages_deletes_only_their_bundles_and_keeps_history() {
    let env = TestEnv::new();
    for r in ["r1", "r2", "r3", "r4", "r5", "r6"] {
        env.publish_release(r, "production", "fp").assert().success();
    }
    env.otapub(&["ban", "r6", "--platform", "ios", "--reason", "broken"])
        .assert()
        .success();
    env.publish_release("s1", "staging", "fp").assert().success();
    env.publish_release("s2", "staging", "fp")
        .args(["--rollout", "30"])
        .assert()
        .success();

    // Bad rules are refused and change nothing.
    env.refused(&["gc", "--keep", "production=0"], "keep at least 1");
    env.refused(&["gc", "--keep", "prod=2"], "no channel prod in the index");
    env.refused(
        &["gc", "--keep", "production=2", "--keep", "production=3"],
        "given twice",
    );
    env.assert_writes_nothing(|| {
        env.otapub(&["gc", "--keep", "production"]).assert().code(2);
    });

    // A dry run names what goes, and writes nothing.
    let want_deleted: BTreeSet<String> = ["r1", "r2", "r3", "r4"].iter().flat_map(|r| own_assets(r)).collect();
    env.assert_writes_nothing(|| {
        let out = env
            .otapub_at(
                LATER,
                &[
                    "gc",
                    "--dry-run",
                    "--keep",
                    "production=2",
                    "--keep",
                    "staging=1",
                    "--json",
                ],
            )
            .assert()
            .success()
            .get_output()
            .clone();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["retired"].as_array().unwrap().len(), 8, "{v}");
        let deleted: BTreeSet<String> = v["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert_eq!(deleted, want_deleted);
    });

    let out = env
        .otapub_at(
            LATER,
            &["gc", "--keep", "production=2", "--keep", "staging=1", "--json"],
        )
        .assert()
        .success()
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // ios: r6 (banned) and r5 (live) are the newest two; android: r6 (live) and r5.
    let retired: BTreeSet<&str> = v["retired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let want: BTreeSet<String> = ["ios", "android"]
        .iter()
        .flat_map(|p| ["r1", "r2", "r3", "r4"].map(|r| format!("production/{p}/fp {r}")))
        .collect();
    assert_eq!(
        retired,
        want.iter().map(String::as_str).collect(),
        "staging's control and candidate are never retired"
    );
    let deleted: BTreeSet<String> = v["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(deleted, want_deleted);
    for key in &want_deleted {
        assert!(!env.exists(key), "{key}");
    }

    // History stays: rows, envelopes, manifests.
    let h = history(&env, "production", "ios");
    assert_eq!(h.len(), 6);
    assert_eq!(h.iter().filter(|e| e["retired"].is_string()).count(), 4);
    for r in ["r1", "r4"] {
        assert!(env.exists(&format!("public/updates/{r}/ios/manifest.json")));
        assert!(env.exists(&format!("public/updates/{r}/ios/manifest")));
    }
    // Served pointers still verify; check calls the retired ones retired, not missing.
    let checked = env.json(&["check"]);
    assert_eq!(checked["problems"], serde_json::json!([]), "{checked}");
    assert_eq!(checked["retired"].as_array().unwrap().len(), 8);
    env.assert_consistent();
    // Each deletion and retirement is an audit event.
    let log = env.json(&["log"]);
    let count = |action: &str| {
        log["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .count()
    };
    assert_eq!(count("retire"), 8);
    assert_eq!(count("gc-delete"), want_deleted.len());

    // A retired package is no rollback or promote target.
    env.refused(
        &[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp",
            "--to",
            "r2",
        ],
        "retired",
    );
    env.refused(&["promote", "r3", "--platform", "ios", "--to", "beta"], "retired");
    // Running it again retires and deletes nothing more.
    env.assert_writes_nothing(|| {
        let out = env
            .otapub_at(LATER, &["gc", "--keep", "production=2", "--json"])
            .assert()
            .success()
            .get_output()
            .clone();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (
                v["retired"].as_array().unwrap().len(),
                v["deleted"].as_array().unwrap().len()
            ),
            (0, 0),
            "{v}"
        );
    });
    // Banning the live package never falls back to a retired one: devices
    // are told there is no update rather than sent a deleted bundle.
    env.otapub(&["ban", "r5", "--platform", "ios", "--reason", "also broken"])
        .assert()
        .success();
    let doc = env.pointer("production", "ios", "fp");
    assert!(
        doc.get("noUpdateAvailable").is_some() || doc["type"] == "noUpdateAvailable",
        "{doc}"
    );
    env.assert_consistent();
    // Publishing a deleted bundle again stores it again.
    let out = env
        .otapub(&[
            "publish",
            "export-r1",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "r1-again",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    // No patch was tried from a retired package's deleted bundle.
    assert!(!stderr(&out).contains("warning: no patch"), "{}", stderr(&out));
    for key in own_assets("r1") {
        assert!(env.exists(&key), "{key} uploaded again");
    }
    // Its patch bases are the newest earlier bundles that are not retired
    // (r4 would be the third without that rule).
    let st = env.json(&["status"]);
    let ios = st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["channel"] == "production" && p["platform"] == "ios")
        .unwrap();
    let bases: BTreeSet<&str> = ios["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["from"].as_str().unwrap())
        .collect();
    assert_eq!(bases, BTreeSet::from(["r5", "r6"]), "{ios}");
    assert_eq!(env.json(&["check"])["problems"], serde_json::json!([]));
    env.assert_consistent();
}

#[test]
fn the_base_of_a_kept_patch_is_never_retired() {
    let env = TestEnv::new();
    for v in ["1", "2"] {
        env.publish_export(&Path::new(SUCCESSIVE).join(format!("dist{v}")), v)
            .assert()
            .success();
    }
    // Devices on 1 download a patch to 2: 1's bundle is its base.
    let st = env.json(&["status"]);
    assert_eq!(st["pointers"][0]["patches"][0]["kept"], true, "{st}");
    env.assert_writes_nothing(|| {
        let out = env
            .otapub_at(LATER, &["gc", "--keep", "production=1", "--json"])
            .assert()
            .success()
            .get_output()
            .clone();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["retired"], serde_json::json!([]), "{v}");
    });
    // With no patch bases wanted (--patch-bases 0), nothing protects 1: it goes.
    let out = env
        .otapub_at(LATER, &["gc", "--keep", "production=1", "--patch-bases", "0", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["retired"],
        serde_json::json!(["production/ios/fp 1"]),
        "with no patch bases wanted, 1 goes: {v}"
    );
}
