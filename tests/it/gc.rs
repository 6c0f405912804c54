//! `otapub gc`: deletes exactly what no package references, once it is older
//! than the grace period; never what a package (banned ones included) needs.

use crate::common::*;

#[test]
fn gc_deletes_only_old_unreferenced_objects() {
    let env = TestEnv::new();
    write_export(&env.path("e1"), "r1");
    write_export(&env.path("e2"), "r2");
    env.otapub(&[
        "publish",
        "e1",
        "--channel",
        "production",
        "--fingerprint",
        "fp",
        "--version",
        "v1",
    ])
    .assert()
    .success();
    env.otapub(&[
        "publish",
        "e2",
        "--channel",
        "production",
        "--fingerprint",
        "fp",
        "--version",
        "v2",
    ])
    .assert()
    .success();
    env.otapub(&["ban", "v1", "--platform", "ios", "--reason", "old"])
        .assert()
        .success();
    // Leftovers of a publish that died before its commit.
    let orphan_asset = format!("public/assets/{}", "f".repeat(64));
    let orphan_manifest = "public/updates/v9/ios/manifest".to_string();
    for k in [&orphan_asset, &orphan_manifest] {
        let path = env.store().join(k);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"leftover").unwrap();
    }
    let before = env.snapshot();

    // Within the grace period nothing goes.
    let out = env.otapub(&["gc"]).assert().success().get_output().clone();
    assert!(
        stdout(&out).contains("0 objects deleted; 2 unreferenced but younger than 24 h kept"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.snapshot(), before);

    // Later: a dry run names them, then gc deletes exactly them.
    let later = "2099-01-01T00:00:00Z";
    let out = env
        .otapub_at(later, &["gc", "--dry-run"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stdout(&out).contains(&format!("would delete {orphan_asset}")));
    assert_eq!(env.snapshot(), before);
    let out = env.otapub_at(later, &["gc"]).assert().success().get_output().clone();
    let text = stdout(&out);
    let deleted: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("deleted ")).collect();
    assert_eq!(deleted, [orphan_asset.as_str(), orphan_manifest.as_str()]);
    assert!(!env.exists(&orphan_asset) && !env.exists(&orphan_manifest));
    // Everything the packages need is still there, the banned one's too.
    env.otapub(&["check"]).assert().code(0);
    env.otapub(&["verify", "--trust", "keys/throwaway.pub"])
        .assert()
        .code(0);
    let log = env.json(&["log"]);
    // Each deletion is an audit event naming what went.
    let mut logged: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "gc-delete")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    logged.sort();
    assert_eq!(logged, [orphan_asset.as_str(), orphan_manifest.as_str()]);
}
