//! Launch-asset patches end to end (SPEC "Patches for the launch asset"),
//! driven through the binary on real successive Hermes bundles: which pairs
//! get a patch and when, what `status` shows, and how `check`, `verify`,
//! `regenerate`, `gc` and `index rebuild` treat them. Each patch is read
//! back from the store and applied with the reference bspatch 4.3; the edge
//! rule that serves them is tested in tests/it/edge.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

const POINTER: &str = "production/ios/fp";

/// An export like dist2 whose iOS bundle has `n` more small edits: a
/// later release of the same app.
fn variant(env: &TestEnv, n: usize) -> PathBuf {
    let dir = env.path(&format!("variant-{n}"));
    copy_dir(&Path::new(SUCCESSIVE).join("dist2"), &dir);
    let js = dir.join("_expo/static/js/ios");
    let bundle = std::fs::read_dir(&js).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&bundle).unwrap();
    for k in 0..n {
        let at = 100_000 + 50_000 * k;
        bytes[at..at + 8].copy_from_slice(b"edited!!");
    }
    std::fs::write(&bundle, bytes).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn publish(env: &TestEnv, dir: &Path, version: &str, extra: &[&str]) -> std::process::Output {
    env.publish_export(dir, version)
        .args(extra)
        .assert()
        .success()
        .get_output()
        .clone()
}

/// A fresh store holding dist1 as version 1, then dist2 as version 2
/// published with `extra`.
fn two_releases(extra: &[&str]) -> TestEnv {
    let env = TestEnv::new();
    publish(&env, &Path::new(SUCCESSIVE).join("dist1"), "1", &[]);
    publish(&env, &Path::new(SUCCESSIVE).join("dist2"), "2", extra);
    env
}

/// The signed manifest of a version: (id, launch asset sha256 hex, signed hash).
fn update(env: &TestEnv, version: &str) -> (String, String, String) {
    let (_, doc) = env.read_signed(&format!("public/updates/{version}/ios/manifest"));
    let sha = doc["launchAsset"]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    (
        doc["id"].as_str().unwrap().to_string(),
        sha,
        doc["launchAsset"]["hash"].as_str().unwrap().to_string(),
    )
}

/// The patch objects in the store, by (requested id, base id).
fn patch_objects(env: &TestEnv) -> BTreeMap<(String, String), Vec<u8>> {
    let root = env.store().join("public/patches");
    let mut out = BTreeMap::new();
    for r in std::fs::read_dir(&root).into_iter().flatten() {
        let r = r.unwrap();
        for b in std::fs::read_dir(r.path()).unwrap() {
            let b = b.unwrap();
            out.insert(
                (
                    r.file_name().to_string_lossy().to_string(),
                    b.file_name().to_string_lossy().to_string(),
                ),
                std::fs::read(b.path()).unwrap(),
            );
        }
    }
    out
}

/// Applies a patch with the reference bspatch 4.3; the result's Expo hash.
fn bspatch_hash(env: &TestEnv, base: &[u8], patch: &[u8]) -> String {
    let (old, new, p) = (env.path("bsp.old"), env.path("bsp.new"), env.path("bsp.patch"));
    std::fs::write(&old, base).unwrap();
    std::fs::write(&p, patch).unwrap();
    let ok = std::process::Command::new("/usr/bin/bspatch")
        .arg(&old)
        .arg(&new)
        .arg(&p)
        .status()
        .expect("bspatch (Debian's bsdiff package: ./scripts/test.sh installs it)");
    assert!(ok.success(), "bspatch refused a patch otapub made");
    URL_SAFE_NO_PAD.encode(Sha256::digest(std::fs::read(&new).unwrap()))
}

fn status_patches(env: &TestEnv) -> Vec<Value> {
    let st = env.json(&["status"]);
    let p = st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "ios")
        .unwrap()
        .clone();
    p["patches"].as_array().unwrap().clone()
}

#[test]
fn publishes_patch_from_the_newest_earlier_bundles_and_every_reader_knows_them() {
    let env = TestEnv::new();
    publish(&env, &Path::new(SUCCESSIVE).join("dist1"), "1", &[]);
    assert!(patch_objects(&env).is_empty(), "nothing to patch from yet");
    publish(&env, &Path::new(SUCCESSIVE).join("dist2"), "2", &[]);
    let (id1, sha1, _) = update(&env, "1");
    let (id2, _, hash2) = update(&env, "2");
    let patches = patch_objects(&env);
    assert_eq!(
        patches.keys().cloned().collect::<Vec<_>>(),
        vec![(id2.clone(), id1.clone())]
    );
    let patch = &patches[&(id2.clone(), id1.clone())];
    assert_eq!(&patch[..8], b"BSDIFF40");
    let base = env.read(&format!("public/assets/{sha1}"));
    assert_eq!(
        bspatch_hash(&env, &base, patch),
        hash2,
        "the patch gives the signed launch asset"
    );
    assert_eq!(
        env.content_type(&format!("public/patches/{id2}/{id1}")),
        "application/octet-stream"
    );

    // status: the live package's patch, its size against the full asset.
    let shown = status_patches(&env);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["to"], "2");
    assert_eq!(shown[0]["from"], "1");
    assert_eq!(shown[0]["size"], patch.len());
    assert_eq!(shown[0]["kept"], true);
    let full = shown[0]["fullSize"].as_u64().unwrap();
    assert!((patch.len() as u64) * 5 < full, "{} of {full}", patch.len());
    let text = stdout(&env.otapub(&["status"]).assert().success().get_output().clone());
    assert!(
        text.contains(&format!("patch to 2 from 1: {} of {full} bytes", patch.len())),
        "{text}"
    );

    // Same two bundles, same bytes: a second store makes the identical patch.
    let other = TestEnv::new();
    publish(&other, &Path::new(SUCCESSIVE).join("dist1"), "1", &[]);
    publish(&other, &Path::new(SUCCESSIVE).join("dist2"), "2", &[]);
    let again: Vec<Vec<u8>> = patch_objects(&other).into_values().collect();
    assert_eq!(again, vec![patch.clone()]);

    // Four more releases: each gets patches from the 3 newest earlier bundles.
    for n in 1..=4 {
        publish(&env, &variant(&env, n), &format!("{}", n + 2), &[]);
    }
    let (id6, _, hash6) = update(&env, "6");
    let ids: Vec<String> = ["3", "4", "5"].iter().map(|v| update(&env, v).0).collect();
    let to6: Vec<String> = patch_objects(&env)
        .into_iter()
        .filter(|((r, _), _)| *r == id6)
        .map(|((_, b), p)| {
            let base_version = ["3", "4", "5"].iter().find(|v| update(&env, v).0 == b).unwrap();
            let base = env.read(&format!("public/assets/{}", update(&env, base_version).1));
            assert_eq!(bspatch_hash(&env, &base, &p), hash6);
            b
        })
        .collect();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(to6, want, "bases of 6 are 3, 4 and 5");
    env.assert_consistent();

    // gc: patches to packages nobody is served any more go (with their rows);
    // those of the live package stay.
    let before = patch_objects(&env).len();
    env.otapub(&["gc", "--grace-hours", "0"]).assert().success();
    let after = patch_objects(&env);
    assert!(after.len() < before);
    assert!(after.keys().all(|(r, _)| *r == id6), "{after:?}");
    assert_eq!(after.len(), 3);
    assert_eq!(status_patches(&env).len(), 3);
    env.assert_consistent();

    // index rebuild recovers them: same status as before.
    let st = env.json(&["status"]);
    std::fs::remove_file(env.store().join("state/index.sqlite")).unwrap();
    let out = env
        .otapub(&["index", "rebuild", "--trust", "keys/throwaway.pub"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stdout(&out).contains("and 3 patches"), "{}", stdout(&out));
    assert_eq!(env.json(&["status"])["pointers"], st["pointers"]);
    env.assert_consistent();
}

#[test]
fn a_damaged_or_lost_patch_is_reported_and_made_again() {
    let env = two_releases(&[]);
    let (id1, _, _) = update(&env, "1");
    let (id2, _, _) = update(&env, "2");
    let key = format!("public/patches/{id2}/{id1}");
    let good = env.read(&key);

    // Damaged in the middle (same size: a listing cannot tell).
    env.tamper(&key, |b| {
        let mid = b.len() / 2;
        b[mid..mid + 16].copy_from_slice(&[0x55; 16]);
    });
    let out = env.otapub(&["check"]).assert().code(1).get_output().clone();
    assert!(stdout(&out).contains(&key), "{}", stdout(&out));
    let out = env
        .otapub(&["verify", "--trust", "keys/throwaway.pub"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(stdout(&out).contains(&format!("patch from {id1}")), "{}", stdout(&out));
    let out = env
        .otapub(&["regenerate", "--verify-bytes"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(stdout(&out).contains(&key));
    assert_eq!(env.read(&key), good, "made again, byte for byte");

    // Lost.
    env.delete(&key);
    env.otapub(&["check"]).assert().code(1);
    env.otapub(&["regenerate"]).assert().success();
    assert_eq!(env.read(&key), good);
    let out = env.otapub(&["regenerate"]).assert().success().get_output().clone();
    assert!(stdout(&out).contains("0 wrote"), "{}", stdout(&out));
    env.assert_consistent();
}

#[test]
fn embedded_bases_rollouts_rollbacks_and_the_size_rule() {
    let env = TestEnv::new();
    let embedded_id = "3F2504E0-4F89-41D3-9A0C-0305E82C3301";
    publish(&env, &Path::new(SUCCESSIVE).join("dist1"), "1", &[]);
    publish(&env, &Path::new(SUCCESSIVE).join("dist2"), "2", &[]);
    let (id2, sha2, hash2) = update(&env, "2");
    // A build's embedded bundle recorded after the fact: patches from it are
    // made for what the pointer serves now.
    // What a Release build of dist1's app embeds (PROVENANCE.txt).
    let bundle = Path::new(SUCCESSIVE).join("embedded-ios.hbc");
    env.embedded_add(embedded_id, &bundle).assert().success();
    let lower = embedded_id.to_lowercase();
    let from_embedded = env.read(&format!("public/patches/{id2}/{lower}"));
    assert_eq!(
        bspatch_hash(&env, &std::fs::read(&bundle).unwrap(), &from_embedded),
        hash2
    );
    assert!(status_patches(&env)
        .iter()
        .any(|p| p["from"] == format!("embedded {lower}")));

    // A rollout candidate gets patches too, from the live package and the build.
    publish(&env, &variant(&env, 1), "3", &["--rollout", "10"]);
    let (id3, _, hash3) = update(&env, "3");
    let from2 = env.read(&format!("public/patches/{id3}/{id2}"));
    assert_eq!(
        bspatch_hash(&env, &env.read(&format!("public/assets/{sha2}")), &from2),
        hash3
    );
    env.read(&format!("public/patches/{id3}/{lower}"));
    env.otapub(&[
        "rollout",
        "abort",
        "--channel",
        "production",
        "--platform",
        "ios",
        "--fingerprint",
        "fp",
        "--reason",
        "test",
    ])
    .assert()
    .success();

    // After a rollback, devices on the newer bundles get a patch back.
    let back = env.json(&[
        "rollback",
        "--channel",
        "production",
        "--platform",
        "ios",
        "--fingerprint",
        "fp",
    ]);
    let (_, doc) = env.read_signed(&format!("public/{POINTER}/manifest"));
    let back_id = doc["id"].as_str().unwrap().to_string();
    let back_hash = doc["launchAsset"]["hash"].as_str().unwrap().to_string();
    let patch = env.read(&format!("public/patches/{back_id}/{id2}"));
    assert_eq!(
        bspatch_hash(&env, &env.read(&format!("public/assets/{sha2}")), &patch),
        back_hash,
        "{back}"
    );
    env.assert_consistent();

    // A patch larger than the kept fraction is recorded, shown, not served.
    let small = two_releases(&["--patch-max-fraction", "0.01"]);
    assert!(patch_objects(&small).is_empty());
    let shown = status_patches(&small);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["kept"], false);
    let text = stdout(&small.otapub(&["status"]).assert().success().get_output().clone());
    assert!(text.contains("not kept"), "{text}");
    small.assert_consistent();

    // Unrelated bundles (random bytes for the second) are not diffed at all.
    let unrelated = TestEnv::new();
    publish(&unrelated, &Path::new(SUCCESSIVE).join("dist1"), "1", &[]);
    let dir = variant(&unrelated, 0);
    let js = dir.join("_expo/static/js/ios");
    let bundle = std::fs::read_dir(&js).unwrap().next().unwrap().unwrap().path();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let random: Vec<u8> = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(&bundle, random).unwrap();
    publish(&unrelated, &dir, "2", &[]);
    let shown = status_patches(&unrelated);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["size"], Value::Null);
    assert_eq!(shown[0]["kept"], false);
    let text = stdout(&unrelated.otapub(&["status"]).assert().success().get_output().clone());
    assert!(text.contains("the bundles share almost nothing"), "{text}");

    // --patch-bases 0: only embedded bases.
    let none = two_releases(&["--patch-bases", "0"]);
    assert!(patch_objects(&none).is_empty());
}

#[test]
fn bad_patch_settings_are_refused_and_change_nothing() {
    let env = TestEnv::new();
    publish(&env, &Path::new(SUCCESSIVE).join("dist1"), "1", &[]);
    let dir = Path::new(SUCCESSIVE).join("dist2");
    let base = [
        "publish",
        dir.to_str().unwrap(),
        "--channel",
        "production",
        "--fingerprint",
        "fp",
        "--version",
        "2",
    ];
    for (flag, value, needle) in [
        ("--patch-bases", "21", "--patch-bases 21: give 0 to 20"),
        ("--patch-max-fraction", "0", "--patch-max-fraction 0: give a share"),
        ("--patch-max-fraction", "1.5", "--patch-max-fraction 1.5"),
        ("--patch-max-fraction", "NaN", "--patch-max-fraction NaN"),
    ] {
        let mut args = base.to_vec();
        args.extend([flag, value]);
        env.refused(&args, needle);
    }
    std::fs::write(env.path("otapub.toml"), "patch_bases = 99\n").unwrap();
    let mut args = base.to_vec();
    args.extend(["--config", "otapub.toml"]);
    env.refused(&args, "--patch-bases 99");
}

#[test]
fn a_patch_that_cannot_be_made_is_skipped_and_made_by_the_next_commit() {
    let env = TestEnv::new();
    publish(&env, &Path::new(SUCCESSIVE).join("dist1"), "1", &[]);
    let (id1, sha1, _) = update(&env, "1");
    // The base's bundle is gone from the store: the publish still lands.
    let key = format!("public/assets/{sha1}");
    let saved = env.read(&key);
    env.delete(&key);
    let out = publish(&env, &Path::new(SUCCESSIVE).join("dist2"), "2", &[]);
    assert!(
        stderr(&out).contains("warning: no patch from launch asset"),
        "{}",
        stderr(&out)
    );
    assert!(patch_objects(&env).is_empty());
    assert!(status_patches(&env).is_empty());
    // Restored, the next commit on the pointer makes it.
    std::fs::write(env.store().join(&key), saved).unwrap();
    env.embedded_add("3F2504E0-4F89-41D3-9A0C-0305E82C3301", &env.store().join(&key))
        .assert()
        .success();
    let (id2, _, _) = update(&env, "2");
    assert!(patch_objects(&env).contains_key(&(id2, id1)));
    env.assert_consistent();
}
