//! Several writers and crashes against a real S3-compatible server. Always on
//! moto: the only local server whose conditional writes are atomic under
//! races (s3s-fs's are not, so these tests would prove nothing there).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::proxy::CountingProxy;
use crate::common::s3::{Kind, S3Server};
use crate::common::*;

fn otapub_process(env: &TestEnv, args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("otapub"));
    c.current_dir(env.dir.path());
    let crate::common::Backend::S3 { server, .. } = &env.backend else {
        unreachable!()
    };
    for (k, v) in server.env() {
        c.env(k, v);
    }
    c.env_remove("OTAPUB_NOW").env("USER", "tester");
    c.args(args);
    c.args([
        "--store",
        &env.store_url(),
        "--key",
        "keys/throwaway.key",
        "--base-url",
        "https://cdn.example.com/ota",
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// The index writes a command's debug log records: (who, from etag, to etag).
fn index_writes(who: &str, stderr: &str) -> Vec<(String, String, String)> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("index written: from ")?.1.split_once(" to "))
        .map(|(from, to)| (who.to_string(), from.trim().to_string(), to.trim().to_string()))
        .collect()
}

#[test]
fn six_publishers_at_once_all_land_and_pointers_match_the_index() {
    let server = Arc::new(S3Server::start_kind(Kind::Moto));
    let env = TestEnv::on_s3(&server);
    // Create the index first so every writer races on If-Match.
    write_export(&env.path("seed"), "seed");
    env.otapub(&[
        "publish",
        "seed",
        "--channel",
        "seed",
        "--fingerprint",
        "fp",
        "--platform",
        "ios",
    ])
    .assert()
    .success();
    for w in 0..6 {
        for v in 0..5 {
            write_export(&env.path(&format!("w{w}v{v}")), &format!("w{w}v{v}"));
        }
    }
    let env = Arc::new(env);
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let env = env.clone();
            std::thread::spawn(move || {
                // Three writers share one pointer; three have their own.
                let channel = if w < 3 { "shared".to_string() } else { format!("own{w}") };
                let mut chain = Vec::new();
                for v in 0..5 {
                    let out = otapub_process(
                        &env,
                        &[
                            "publish",
                            &format!("w{w}v{v}"),
                            "--channel",
                            &channel,
                            "--fingerprint",
                            "fp",
                            "--version",
                            &format!("w{w}v{v}"),
                        ],
                    )
                    .env("RUST_LOG", "otapub::index=debug")
                    .output()
                    .expect("run otapub");
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(out.status.success(), "writer {w} version {v}: {stderr}");
                    chain.extend(index_writes(&format!("w{w}v{v}"), &stderr));
                }
                chain
            })
        })
        .collect();
    let mut chain = Vec::new();
    for w in workers {
        chain.extend(w.join().expect("writer"));
    }
    // Every index write names the version it replaced: two writes from one
    // version mean the server let two conditional writes through, and one
    // release is lost by the server, not by otapub.
    let mut from_seen = std::collections::BTreeMap::new();
    for (who, from, to) in &chain {
        if let Some((other, other_to)) = from_seen.insert(from.clone(), (who.clone(), to.clone())) {
            panic!(
                "the S3 server accepted two `If-Match: {from}` writes of the index ({other} wrote {other_to}, \
                 {who} wrote {to}): its conditional writes are not atomic under this load"
            );
        }
    }
    assert_eq!(chain.len(), 30, "one index write per publish: {chain:?}");
    let st = env.json(&["status"]);
    let mut versions: Vec<String> = st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["channel"] != "seed")
        .flat_map(|p| {
            p["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["version"].as_str().unwrap().to_string())
        })
        .collect();
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), 30, "{versions:?}");
    // Every pointer matches the index, and serves its newest package.
    env.otapub(&["check"]).assert().code(0);
    for p in st["pointers"].as_array().unwrap() {
        let doc = env.pointer(p["channel"].as_str().unwrap(), p["platform"].as_str().unwrap(), "fp");
        assert_eq!(doc["metadata"]["otapub"]["version"], p["history"][0]["version"]);
    }
}

#[test]
fn a_publish_killed_at_any_instant_leaves_a_tree_that_verifies_and_a_retry_completes() {
    let server = Arc::new(S3Server::start_kind(Kind::Moto));
    let env = TestEnv::on_s3(&server);
    write_export(&env.path("base"), "base");
    env.otapub(&["publish", "base", "--channel", "production", "--fingerprint", "fp"])
        .assert()
        .success();
    // How long one publish takes here, to spread the kills over it.
    write_export(&env.path("timing"), "timing");
    let started = Instant::now();
    env.otapub(&["publish", "timing", "--channel", "production", "--fingerprint", "fp"])
        .assert()
        .success();
    let span = started.elapsed().as_millis().max(50) as u64;
    let mut seed: u64 = 0x2545f4914f6cdd1d;
    for i in 0..30 {
        let dir = format!("k{i}");
        write_export(&env.path(&dir), &dir);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % (span + span / 5));
        let mut child = otapub_process(
            &env,
            &["publish", &dir, "--channel", "production", "--fingerprint", "fp"],
        )
        .spawn()
        .expect("spawn");
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Every pointer reaches objects that exist and verify; the only
        // allowed problem is a pointer pair caught between its two writes.
        let out = env
            .otapub(&["verify", "--trust", "keys/throwaway.pub"])
            .output()
            .expect("verify");
        let text = stdout(&out);
        for line in text.lines().filter(|l| !l.ends_with(" problems")) {
            assert!(
                line.contains("disagree"),
                "after a kill at {delay:?} (iteration {i}): {line}"
            );
        }
        // Running the same publish again completes the work.
        env.otapub(&["publish", &dir, "--channel", "production", "--fingerprint", "fp"])
            .assert()
            .success();
        env.otapub(&["verify", "--trust", "keys/throwaway.pub"])
            .assert()
            .code(0);
        env.otapub(&["check"]).assert().code(0);
    }
}

#[test]
fn a_server_that_ignores_conditional_writes_is_refused_unless_told() {
    let server = Arc::new(S3Server::start_kind(Kind::Moto));
    let env = TestEnv::on_s3(&server);
    let stripping = CountingProxy::start_with(server.port(), true);
    write_export(&env.path("e"), "e");
    let before = env.snapshot();
    let out = env
        .otapub(&["publish", "e", "--channel", "production", "--fingerprint", "fp"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", stripping.port))
        .assert()
        .code(3)
        .get_output()
        .clone();
    assert!(stderr(&out).contains("ignores conditional writes"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--unsafe-no-locking"));
    let after: Vec<_> = env
        .snapshot()
        .into_keys()
        .filter(|k| !k.starts_with("state/probe/"))
        .collect();
    assert_eq!(
        after,
        before.into_keys().collect::<Vec<_>>(),
        "nothing but the probe was written"
    );
    env.otapub(&[
        "publish",
        "e",
        "--channel",
        "production",
        "--fingerprint",
        "fp",
        "--unsafe-no-locking",
    ])
    .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", stripping.port))
    .assert()
    .success();
    env.pointer("production", "ios", "fp");
}
