//! The benchmark's smoke run: a few small files, one run, on s3s-fs. Keeps
//! `bench/run.sh` from rotting; the figures themselves are `bench/run.sh`'s.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_benchmark_runs_end_to_end_on_tiny_data() {
    let otapub = PathBuf::from(env!("CARGO_BIN_EXE_otapub"));
    let bin_dir = otapub.parent().expect("the binary's directory");
    assert!(
        bin_dir.join("examples/bench_tools").exists(),
        "cargo test builds examples/bench_tools"
    );
    let out = tempfile::tempdir().unwrap();
    let results = out.path().join("RESULTS.md");
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new("python3")
        .arg(format!("{root}/bench/run.py"))
        .args(["--smoke", "--bin-dir"])
        .arg(bin_dir)
        .arg("--out")
        .arg(&results)
        .status()
        .expect("python3 bench/run.py");
    assert!(status.success());
    let text = std::fs::read_to_string(&results).unwrap();
    for figure in [
        "cold publish",
        "warm re-publish",
        "hashing",
        "peak RSS",
        "ban with",
        "regenerate with",
        "bytes a device downloads for one update",
        "time to make",
    ] {
        assert!(text.contains(figure), "{figure} missing from:\n{text}");
    }
    // What the smoke run can assert: request counts do not depend on speed.
    for line in text.lines().filter(|l| l.contains("counted at the proxy")) {
        assert!(line.ends_with("| met |"), "{line}");
    }
}
