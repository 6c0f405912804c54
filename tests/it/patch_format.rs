//! The patch format against the reference implementation: otapub's BSDIFF40
//! patches (qbsdiff) applied by Colin Percival's `bspatch` 4.3 (Debian's
//! `bsdiff` package, which `scripts/install-test-servers.sh` installs), and
//! the reference `bsdiff`'s patches applied by otapub, on real Hermes
//! bundles from `expo export`: two successive exports of one app
//! (tests/data/expo-successive) and two different apps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::common::FIXTURES;

/// The Hermes bundle of `dist` (relative to tests/data) for a platform.
fn bundle(dist: &str, platform: &str) -> PathBuf {
    let dir = Path::new(FIXTURES).join(dist).join("_expo/static/js").join(platform);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "hbc"))
        .expect("an .hbc bundle")
}

fn tool(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: run ./scripts/test.sh, which installs Debian's bsdiff package"
    );
    path
}

#[test]
fn patches_are_what_the_reference_bspatch_applies_and_the_other_way_round() {
    let dir = tempfile::tempdir().unwrap();
    for platform in ["ios", "android"] {
        // Two successive real exports a one-line change apart, and two
        // different apps (the worst case a pointer can see).
        for (what, old_dist, new_dist) in [
            ("successive exports", "expo-successive/dist1", "expo-successive/dist2"),
            ("another app", "expo-blank/dist", "expo-tabs/dist"),
        ] {
            let old_path = bundle(old_dist, platform);
            let old = std::fs::read(&old_path).unwrap();
            let new = &std::fs::read(bundle(new_dist, platform)).unwrap();
            let new_path = dir.path().join("new");
            std::fs::write(&new_path, new).unwrap();

            let t = Instant::now();
            let ours = otapub::patch::make(&old, new).unwrap();
            let our_time = t.elapsed();
            let patch_path = dir.path().join("ours.patch");
            std::fs::write(&patch_path, &ours).unwrap();
            let out_path = dir.path().join("out");
            let st = Command::new(tool("bspatch"))
                .arg(&old_path)
                .arg(&out_path)
                .arg(&patch_path)
                .status()
                .unwrap();
            assert!(st.success(), "bspatch refused otapub's patch ({platform}, {what})");
            assert_eq!(
                &std::fs::read(&out_path).unwrap(),
                new,
                "bspatch of otapub's patch ({platform}, {what})"
            );

            let reference_path = dir.path().join("reference.patch");
            let t = Instant::now();
            let st = Command::new(tool("bsdiff"))
                .arg(&old_path)
                .arg(&new_path)
                .arg(&reference_path)
                .status()
                .unwrap();
            let ref_time = t.elapsed();
            assert!(st.success());
            let reference = std::fs::read(&reference_path).unwrap();
            assert_eq!(
                &otapub::patch::apply(&old, &reference).unwrap(),
                new,
                "otapub applying bsdiff's patch"
            );
            eprintln!(
                "{platform} {what}: {} -> {} bytes; otapub {} bytes in {:.2} s, bsdiff 4.3 {} bytes in {:.2} s",
                old.len(),
                new.len(),
                ours.len(),
                our_time.as_secs_f64(),
                reference.len(),
                ref_time.as_secs_f64()
            );
            // As small as the reference's, within a tenth.
            assert!(
                ours.len() * 10 <= reference.len() * 11,
                "{platform} {what}: {} vs {}",
                ours.len(),
                reference.len()
            );
        }
    }
}
