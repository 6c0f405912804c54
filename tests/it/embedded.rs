//! `otapub embedded add`: a build's embedded launch asset recorded as a
//! patch base — its bytes stored by content hash, a signed record under
//! `state/embedded/` (checked here with ed25519), the index row that
//! `status` shows, `gc` keeps, `check` and `regenerate` know and `index
//! rebuild` recovers; bad input changes nothing.

use crate::common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const ID: &str = "0E2A7B1C-5D4F-4A3B-9C8D-7E6F5A4B3C2D";

/// A real Hermes bundle copied to `main.jsbundle`, as a build embeds it.
fn embedded_bundle(env: &TestEnv) -> (String, Vec<u8>) {
    let dir = std::path::Path::new(FIXTURES).join("expo-successive/dist1/_expo/static/js/ios");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "hbc"))
        .unwrap();
    std::fs::copy(&path, env.path("main.jsbundle")).unwrap();
    ("main.jsbundle".to_string(), std::fs::read(path).unwrap())
}

fn add_args<'a>(id: &'a str, bundle: &'a str) -> Vec<&'a str> {
    vec![
        "embedded",
        "add",
        "--platform",
        "ios",
        "--fingerprint",
        "fp",
        "--update-id",
        id,
        bundle,
    ]
}

#[test]
fn an_embedded_bundle_becomes_a_signed_patch_base() {
    let env = TestEnv::new();
    env.publish_release("v1", "production", "fp").assert().success();
    let (bundle, bytes) = embedded_bundle(&env);
    let sha = hex(&Sha256::digest(&bytes));
    env.otapub(&add_args(ID, &bundle)).assert().success();
    let id = ID.to_lowercase();

    // The record: signed, naming the bundle by hash; the bundle stored once.
    let key = format!("state/embedded/ios/{id}.json");
    let envelope: Value = serde_json::from_slice(&env.read(&key)).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.otapub.embedded+json");
    let record: Value = serde_json::from_slice(&verify_envelope(&env.read(&key), &env.public_key())).unwrap();
    assert_eq!(record["updateId"], id.as_str());
    assert_eq!(record["fingerprint"], "fp");
    assert_eq!(record["launchAsset"], sha.as_str());
    assert_eq!(record["size"], bytes.len());
    assert_eq!(env.read(&format!("public/assets/{sha}")), bytes);
    let status = env.json(&["status"]);
    assert_eq!(status["embedded"][0]["updateId"], id.as_str());
    assert_eq!(status["embedded"][0]["launchAsset"], sha.as_str());

    // A retry (either case of the id) writes nothing; another bundle under the id is refused.
    env.assert_writes_nothing(|| {
        env.otapub(&add_args(&id, &bundle)).assert().success();
    });
    std::fs::write(env.path("other.jsbundle"), b"another bundle").unwrap();
    env.refused(&add_args(ID, "other.jsbundle"), "already recorded");
    env.refused(&add_args("not-a-uuid", &bundle), "is not a UUID");
    env.refused(
        &add_args("{0e2a7b1c-5d4f-4a3b-9c8d-7e6f5a4b3c2d}", &bundle),
        "is not a UUID",
    );
    env.refused(
        &add_args("11111111-2222-4333-8444-555555555555", "missing.jsbundle"),
        "cannot read it",
    );
    std::fs::write(env.path("empty.jsbundle"), b"").unwrap();
    env.refused(
        &add_args("11111111-2222-4333-8444-555555555555", "empty.jsbundle"),
        "is empty",
    );

    // gc keeps the base's bundle; check knows the record; regenerate restores it.
    env.otapub(&["gc", "--grace-hours", "0"]).assert().success();
    assert!(env.exists(&format!("public/assets/{sha}")), "gc deleted a patch base");
    env.otapub(&["check"]).assert().success();
    let signed = env.read(&key);
    env.delete(&key);
    let out = env.otapub(&["check"]).assert().code(1).get_output().stdout.clone();
    assert!(String::from_utf8_lossy(&out).contains(&key));
    env.otapub(&["regenerate"]).assert().success();
    assert_eq!(env.read(&key), signed, "regenerate restores the record byte for byte");

    // The index is lost: rebuild adopts the signed record.
    env.delete("state/index.sqlite");
    env.otapub(&["index", "rebuild", "--trust", "keys/throwaway.pub"])
        .assert()
        .success();
    let status = env.json(&["status"]);
    assert_eq!(status["embedded"][0]["updateId"], id.as_str());
    env.otapub(&["check"]).assert().success();
    let actions: Vec<String> = env.json(&["log"])["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert!(actions.iter().any(|a| a == "index-rebuild"), "{actions:?}");
}
