//! The patch format against the reference implementation: otapub's BSDIFF40
//! patches (qbsdiff) applied by Colin Percival's `bspatch` 4.3 (Debian's
//! `bsdiff` package, which `scripts/install-test-servers.sh` installs), and
//! the reference `bsdiff`'s patches applied by otapub, on real Hermes
//! bundles from `expo export`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::FIXTURES;

fn bundle(app: &str, platform: &str) -> PathBuf {
    let dir = Path::new(FIXTURES)
        .join(app)
        .join("dist/_expo/static/js")
        .join(platform);
    std::fs::read_dir(&dir)
        .expect("bundle dir")
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
        let old_path = bundle("expo-blank", platform);
        let old = std::fs::read(&old_path).unwrap();
        // A successive build: the same bundle with a few changed bytes and a
        // short insertion, as a one-line code change leaves it.
        let mut edited = old.clone();
        let mid = edited.len() / 2;
        edited[mid..mid + 16].copy_from_slice(b"otapub-changed!!");
        edited.splice(mid / 2..mid / 2, b"inserted by the test".iter().copied());
        let other = std::fs::read(bundle("expo-tabs", platform)).unwrap();
        for (what, new) in [("one edit", &edited), ("another app", &other)] {
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
        }
    }
}
