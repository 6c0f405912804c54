//! Several publishers at once on one local store: all land in the index, and
//! once all have finished every pointer matches the index.

use crate::common::*;

#[test]
fn concurrent_publishers_all_land_and_pointers_match() {
    let env = TestEnv::new();
    for i in 0..6 {
        write_export(&env.path(&format!("e{i}")), &format!("r{i}"));
    }
    let bin = assert_cmd::cargo::cargo_bin("otapub");
    let children: Vec<_> = (0..6)
        .map(|i| {
            // Half share one pointer, half get their own.
            let channel = if i % 2 == 0 {
                "shared".to_string()
            } else {
                format!("own{i}")
            };
            std::process::Command::new(&bin)
                .current_dir(env.dir.path())
                .args([
                    "publish",
                    &format!("e{i}"),
                    "--channel",
                    &channel,
                    "--fingerprint",
                    "fp",
                    "--version",
                    &format!("v{i}"),
                ])
                .args(["--store", "store", "--key", "keys/throwaway.key"])
                .env_remove("OTAPUB_NOW")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let st = env.json(&["status"]);
    let mut versions: Vec<String> = st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| format!("{}/{}", p["platform"].as_str().unwrap(), h["version"].as_str().unwrap()))
        })
        .collect();
    versions.sort();
    assert_eq!(versions.len(), 12, "{versions:?}");
    env.otapub(&["check"]).assert().code(0);
    // The shared pointer serves the package with the newest createdAt.
    for p in st["pointers"].as_array().unwrap() {
        let newest = p["history"][0]["version"].as_str().unwrap();
        assert_eq!(p["serves"], newest);
        let doc = env.pointer(p["channel"].as_str().unwrap(), p["platform"].as_str().unwrap(), "fp");
        assert_eq!(doc["metadata"]["otapub"]["version"], newest);
    }
    let log = env.json(&["log"]);
    assert_eq!(log["operations"].as_array().unwrap().len(), 6);
}

#[test]
fn ban_with_rollback_moves_devices_off_the_banned_bundle() {
    let env = TestEnv::new();
    write_export(&env.path("a"), "a");
    write_export(&env.path("b"), "b");
    env.otapub_at(
        "2026-02-01T00:00:00Z",
        &[
            "publish",
            "a",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v1",
        ],
    )
    .assert()
    .success();
    env.otapub_at(
        "2026-02-02T00:00:00Z",
        &[
            "publish",
            "b",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v2",
        ],
    )
    .assert()
    .success();
    // Banning a package that is not live re-stamps nothing.
    env.otapub_at(
        "2026-02-03T00:00:00Z",
        &["ban", "v1", "--platform", "android", "--reason", "old", "--rollback"],
    )
    .assert()
    .success();
    assert_eq!(
        env.pointer("production", "android", "fp")["metadata"]["otapub"]["version"],
        "v2"
    );
    // Banning the live one with --rollback re-stamps the fallback newer than the banned one.
    env.otapub_at(
        "2026-02-03T00:00:00Z",
        &["ban", "v2", "--platform", "ios", "--reason", "crash", "--rollback"],
    )
    .assert()
    .success();
    let doc = env.pointer("production", "ios", "fp");
    assert_eq!(doc["metadata"]["otapub"]["version"], "v1.r1");
    assert_eq!(doc["createdAt"], "2026-02-03T00:00:00.000Z");
    // Banning again changes nothing and says so.
    let before = env.snapshot();
    let out = env
        .otapub(&["ban", "v2", "--platform", "ios", "--reason", "again"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stdout(&out).contains("already banned"));
    assert_eq!(env.snapshot(), before);
}
