//! `otapub diff V1 V2 --platform P`: checked against what the test itself
//! put in the two exports (files, sizes, app configs), and against the patch
//! object in the store.

use std::path::Path;

use crate::common::*;
use serde_json::Value;

#[test]
fn diff_names_the_launch_asset_assets_config_and_messages() {
    let env = TestEnv::new();
    let config = |version: &str, extra: &str| {
        let path = env.path(&format!("config-{version}.json"));
        std::fs::write(
            &path,
            format!(r#"{{"name": "demo", "slug": "demo", "version": "{version}", "ios": {{"bundleIdentifier": "com.example.demo"}}{extra}}}"#),
        )
        .unwrap();
        path
    };
    let (c1, c2) = (config("1.0.0", ""), config("1.1.0", r#", "scheme": "demo""#));
    for (release, cfg, msg, actor) in [("r1", &c1, "first", "alice"), ("r2", &c2, "second", "bob")] {
        write_export(&env.path(&format!("e-{release}")), release);
        env.otapub(&[
            "publish",
            &format!("e-{release}"),
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            release,
            "--message",
            msg,
            "--actor",
            actor,
            "--expo-config",
            cfg.to_str().unwrap(),
        ])
        .assert()
        .success();
    }
    let d = env.json(&["diff", "r1", "r2", "--platform", "ios"]);

    // The launch assets: the exports' bundle files, read here.
    let b1 = std::fs::read(env.path("e-r1/_expo/static/js/ios/index-r1.hbc")).unwrap();
    let b2 = std::fs::read(env.path("e-r2/_expo/static/js/ios/index-r2.hbc")).unwrap();
    let l = &d["launchAsset"];
    assert_eq!(l["from"]["sha256"], sha256_hex(&b1));
    assert_eq!(l["to"]["sha256"], sha256_hex(&b2));
    assert_eq!(l["from"]["size"], b1.len());
    assert_eq!(l["to"]["size"], b2.len());
    assert_eq!(l["delta"], b2.len() as i64 - b1.len() as i64);
    assert_eq!(l["same"], false);

    // Assets: write_export shares two and adds one per release.
    let keys = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["sha256"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&d["added"]), [sha256_hex(b"asset bytes of r2")]);
    assert_eq!(keys(&d["removed"]), [sha256_hex(b"asset bytes of r1")]);
    assert_eq!(d["changed"], serde_json::json!([]));
    assert_eq!(d["unchanged"], 2);

    // The app config: a unified diff of the two files' content.
    let cd = d["expoClientDiff"].as_str().unwrap();
    assert!(cd.starts_with("--- r1/expoClient\n+++ r2/expoClient\n"), "{cd}");
    assert!(
        cd.contains("\n-  \"version\": \"1.0.0\"") && cd.contains("\n+  \"version\": \"1.1.0\""),
        "{cd}"
    );
    assert!(cd.contains("\n+  \"scheme\": \"demo\""), "{cd}");
    assert!(!cd.contains("-  \"name\""), "unchanged lines are context: {cd}");

    // Messages and actors.
    assert_eq!(
        (d["from"]["message"].as_str(), d["from"]["actor"].as_str()),
        (Some("first"), Some("alice"))
    );
    assert_eq!(
        (d["to"]["message"].as_str(), d["to"]["actor"].as_str()),
        (Some("second"), Some("bob"))
    );

    // The patch devices on r1 get: the object in the store.
    let (from_id, to_id) = (d["from"]["id"].as_str().unwrap(), d["to"]["id"].as_str().unwrap());
    let patch = env.store().join(format!("public/patches/{to_id}/{from_id}"));
    match std::fs::metadata(&patch) {
        Ok(m) => assert_eq!(l["patchSize"], m.len()),
        Err(_) => assert_eq!(l["patchSize"], Value::Null, "no patch object, no patch size"),
    }

    // The text form says the same.
    let out = env
        .otapub(&["diff", "r1", "r2", "--platform", "ios"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = stdout(&out);
    assert!(
        text.contains("assets: 1 added, 1 removed, 0 changed, 2 unchanged"),
        "{text}"
    );
    assert!(
        text.contains("by alice: first") && text.contains("by bob: second"),
        "{text}"
    );
    assert!(text.contains("+  \"version\": \"1.1.0\""), "{text}");

    // The same package twice: nothing changed.
    let same = env.json(&["diff", "r2", "r2", "--platform", "ios"]);
    assert_eq!(same["launchAsset"]["same"], true);
    assert_eq!(same["expoClientDiff"], "");
    assert_eq!(same["unchanged"], 3);

    // Unknown version: exit 2, says where to look.
    env.refused(&["diff", "r1", "nope", "--platform", "ios"], "no package nope on ios");
}

#[test]
fn diff_of_real_successive_exports_names_the_patch_devices_download() {
    let env = TestEnv::new();
    for v in ["1", "2"] {
        env.publish_export(&Path::new(SUCCESSIVE).join(format!("dist{v}")), v)
            .assert()
            .success();
    }
    let d = env.json(&["diff", "1", "2", "--platform", "ios"]);
    let (from_id, to_id) = (d["from"]["id"].as_str().unwrap(), d["to"]["id"].as_str().unwrap());
    let patch = std::fs::read(env.store().join(format!("public/patches/{to_id}/{from_id}"))).expect("the patch object");
    assert_eq!(d["launchAsset"]["patchSize"], patch.len());
    let full = d["launchAsset"]["to"]["size"].as_u64().unwrap();
    assert!((patch.len() as u64) < full / 5, "{} of {full}", patch.len());
}
