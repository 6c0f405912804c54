//! The commit protocol under forced interleavings (issue "one commit
//! protocol for every writer"): each test stops, fails, loses the response
//! of or crashes a command at an exact request through the `OTAPUB_FAULTS`
//! store wrapper, then reads the tree back independently. Each runs on the
//! local store and on a real S3 server (moto).

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::s3::S3Server;
use crate::common::*;

fn on_both(f: impl Fn(&TestEnv)) {
    f(&TestEnv::new());
    let server = S3Server::start();
    f(&TestEnv::on_s3(&server));
}

/// Publishes synthetic release `release` as version `release`.
fn publish(env: &TestEnv, release: &str) {
    env.publish_release(release, "production", "fp").assert().success();
}

/// Starts a command that pauses at its first request matching `rule`
/// (`OP:KEY`), and waits until it has paused there.
fn start_paused(env: &TestEnv, args: &[&str], rule: &str) -> Child {
    start_paused_cmd(env, env.std_otapub(args), rule)
}

/// [`start_paused`] for a command built by the caller.
fn start_paused_cmd(env: &TestEnv, c: std::process::Command, rule: &str) -> Child {
    start_paused_then(env, c, rule, None)
}

/// [`start_paused_cmd`], with further fault rules (`then`) for after it resumes.
fn start_paused_then(env: &TestEnv, mut c: std::process::Command, rule: &str, then: Option<&str>) -> Child {
    let gate = env.path("gate");
    let _ = std::fs::remove_dir_all(&gate);
    let faults = match then {
        Some(then) => format!("pause@{rule}#1;{then}"),
        None => format!("pause@{rule}#1"),
    };
    c.env("OTAPUB_FAULTS", faults).env("OTAPUB_FAULT_DIR", &gate);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().expect("spawn");
    wait_for(&gate.join("paused-0"));
    child
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn resume(env: &TestEnv, child: Child) -> std::process::Output {
    std::fs::write(env.path("gate/resume-0"), b"").unwrap();
    child.wait_with_output().expect("wait")
}

/// Versions in a pointer's history, newest first.
fn history(env: &TestEnv, platform: &str) -> Vec<String> {
    let st = env.json(&["status"]);
    st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["platform"] == platform && p["channel"] == "production")
        .flat_map(|p| p["history"].as_array().unwrap().iter())
        .map(|h| h["version"].as_str().unwrap().to_string())
        .collect()
}

fn served(env: &TestEnv, platform: &str) -> String {
    env.pointer("production", platform, "fp")["metadata"]["otapub"]["version"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Item 1: a regenerate that read the index before a ban committed must not
/// put the banned package back, even when it writes after the ban's pointers.
#[test]
fn stale_regenerate_cannot_undo_a_ban() {
    on_both(|env| {
        publish(env, "v1");
        publish(env, "v2");
        // The pointer is lost, so the regenerate below has something to write.
        env.delete("public/production/ios/fp/manifest");
        let regen = start_paused(env, &["regenerate"], "head:public/production/ios/fp/manifest");
        env.otapub(&["ban", "v2", "--platform", "ios", "--reason", "crash on launch"])
            .assert()
            .success();
        assert_eq!(served(env, "ios"), "v1");
        let out = resume(env, regen);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(served(env, "ios"), "v1", "the stale regenerate put the banned v2 back");
        env.assert_consistent();
    });
}

/// Item 2: two default rollbacks at once compute the same re-stamp version;
/// the loser's late write must not replace the winner's committed bytes.
#[test]
fn losing_writer_never_overwrites_committed_objects() {
    on_both(|env| {
        publish(env, "v1");
        publish(env, "v2");
        publish(env, "v3");
        let args = [
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp",
        ];
        // The first stops right before it creates its immutable objects...
        let slow = start_paused(env, &args, "*:public/updates/v2.r1/ios/manifest.json");
        // ...while the second runs to the end and commits v2.r1.
        env.otapub(&args).assert().success();
        let committed = env.read("public/updates/v2.r1/ios/manifest");
        let out = resume(env, slow);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(history(env, "ios"), ["v1.r1", "v2.r1", "v3", "v2", "v1"]);
        assert_eq!(
            env.read("public/updates/v2.r1/ios/manifest"),
            committed,
            "the loser replaced a committed object"
        );
        // The loser re-applied on the fresh index: one more step back.
        env.assert_consistent();
    });
}

/// Item 3: the index write lands but its response is lost; the retry must
/// find the change committed, not roll back a second bundle.
#[test]
fn lost_commit_response_does_not_apply_twice() {
    on_both(|env| {
        publish(env, "v1");
        publish(env, "v2");
        publish(env, "v3");
        env.otapub(&[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp",
        ])
        .env("OTAPUB_FAULTS", "lost@put_if:state/index.sqlite#1")
        .assert()
        .success();
        assert_eq!(history(env, "ios"), ["v2.r1", "v3", "v2", "v1"]);
        assert_eq!(served(env, "ios"), "v2.r1");
    });
}

/// Item 3: a rollback killed after its commit, rerun with the same
/// --operation-id, finishes the pointers without stepping back again.
#[test]
fn rerun_after_a_crash_past_the_commit_is_idempotent() {
    on_both(|env| {
        publish(env, "v1");
        publish(env, "v2");
        publish(env, "v3");
        let args = [
            "rollback",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp",
            "--operation-id",
            "ci-run-42",
        ];
        // Crash right after the commit, before any pointer write.
        let out = env
            .otapub(&args)
            .env("OTAPUB_FAULTS", "kill@head:public/production/ios/fp/manifest#1")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert_eq!(served(env, "ios"), "v3", "the crash came before the pointer write");
        env.otapub(&args).assert().success();
        assert_eq!(history(env, "ios"), ["v2.r1", "v3", "v2", "v1"]);
        assert_eq!(served(env, "ios"), "v2.r1");
        // Reruns of an explicit target are idempotent by state, without an id.
        for _ in 0..2 {
            env.otapub(&[
                "rollback",
                "--channel",
                "production",
                "--platform",
                "android",
                "--fingerprint",
                "fp",
                "--to",
                "v1",
            ])
            .assert()
            .success();
        }
        assert_eq!(history(env, "android"), ["v1.r1", "v3", "v2", "v1"]);
        for _ in 0..2 {
            env.rollback_to_embedded("android").assert().success();
            env.otapub(&["promote", "v2", "--platform", "ios", "--to", "staging"])
                .assert()
                .success();
        }
        assert_eq!(history(env, "android").len(), 5, "one rollBackToEmbedded directive");
        let st = env.json(&["status"]);
        let staging: Vec<&serde_json::Value> = st["pointers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["channel"] == "staging")
            .flat_map(|p| p["history"].as_array().unwrap())
            .collect();
        assert_eq!(staging.len(), 1, "one promotion: {staging:?}");
    });
}

/// Item 3: a failure after the commit says so and how to finish.
#[test]
fn failure_after_the_commit_says_committed_and_exits_3() {
    let env = TestEnv::new();
    publish(&env, "v1");
    write_export(&env.path("export-v2"), "v2");
    let out = env
        .otapub(&[
            "publish",
            "export-v2",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v2",
        ])
        .env("OTAPUB_FAULTS", "fail@put_if:public/production/ios/fp/manifest#*")
        .assert()
        .code(3)
        .get_output()
        .clone();
    let err = stderr(&out);
    assert!(
        err.contains("committed; the pointers are not all written yet: run `otapub regenerate`"),
        "{err}"
    );
    env.otapub(&["regenerate"]).assert().success();
    assert_eq!(served(&env, "ios"), "v2");
    // A failure before it says nothing was committed.
    write_export(&env.path("export-v3"), "v3");
    let out = env
        .otapub(&[
            "publish",
            "export-v3",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v3",
        ])
        .env("OTAPUB_FAULTS", "fail@put:public/assets/*#1")
        .assert()
        .code(3)
        .get_output()
        .clone();
    assert!(
        stderr(&out).contains("nothing was committed: running the command again is safe"),
        "{}",
        stderr(&out)
    );
    assert_eq!(history(&env, "ios"), ["v2", "v1"]);
    // An index write whose outcome is unknown names the id to rerun with,
    // and the rerun with it publishes once.
    let v3 = [
        "publish",
        "export-v3",
        "--channel",
        "production",
        "--fingerprint",
        "fp",
        "--version",
        "v3",
    ];
    let out = env
        .otapub(&v3)
        .args(["--operation-id", "publish-7"])
        .env("OTAPUB_FAULTS", "fail@put_if:state/index.sqlite#1")
        .assert()
        .code(3)
        .get_output()
        .clone();
    assert!(
        stderr(&out).contains("run the same command again with --operation-id publish-7"),
        "{}",
        stderr(&out)
    );
    env.otapub(&v3).args(["--operation-id", "publish-7"]).assert().success();
    assert_eq!(history(&env, "ios"), ["v3", "v2", "v1"]);
}

/// Item 4: gc runs while a publish that found an old leftover asset already
/// stored (so did not upload it) has not committed yet.
#[test]
fn gc_cannot_delete_what_a_running_publish_references() {
    on_both(|env| {
        publish(env, "v1");
        // A leftover of a publish that died: the asset v2 needs, unreferenced.
        write_export(&env.path("export-v2"), "v2");
        write_export(&env.path("leftover"), "v2");
        env.otapub(&[
            "publish",
            "leftover",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v2",
        ])
        .env("OTAPUB_FAULTS", "kill@put_if:state/index.sqlite#1")
        .assert()
        .failure();
        let pub_args = [
            "publish",
            "export-v2",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v2",
        ];
        let publisher = start_paused(env, &pub_args, "put_if:state/index.sqlite");
        // Far in the future, so everything unreferenced is past its grace period.
        env.otapub_at("2099-01-01T00:00:00Z", &["gc"]).assert().success();
        let out = resume(env, publisher);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(served(env, "ios"), "v2");
        env.assert_consistent();
    });
}

/// Item 4: while gc holds its lease, a publish waits, then completes on the
/// index gc left.
#[test]
fn writers_wait_for_the_gc_lease() {
    on_both(|env| {
        publish(env, "v1");
        // Something for gc to delete, so that it stops at its first delete.
        write_export(&env.path("leftover"), "lo");
        env.otapub(&["publish", "leftover", "--channel", "production", "--fingerprint", "fp"])
            .env("OTAPUB_FAULTS", "kill@put_if:state/index.sqlite#1")
            .assert()
            .failure();
        let mut gc = env.std_otapub(&["gc"]);
        gc.env("OTAPUB_NOW", "2099-01-01T00:00:00Z");
        let gc = start_paused_cmd(env, gc, "delete:*");
        write_export(&env.path("export-v2"), "v2");
        let mut publisher = env
            .std_otapub(&[
                "publish",
                "export-v2",
                "--channel",
                "production",
                "--fingerprint",
                "fp",
                "--version",
                "v2",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A tiny publish takes well under a second; this one must be waiting.
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            publisher.try_wait().unwrap().is_none(),
            "the publish did not wait for the gc lease"
        );
        let out = resume(env, gc);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = publisher.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("waiting: `otapub gc`"), "{}", stderr(&out));
        assert_eq!(served(env, "ios"), "v2");
        env.assert_consistent();
    });
}

/// Item 5: a package signed by a foreign key, slipped into the bucket, is
/// listed and skipped by `index rebuild --trust`.
#[test]
fn rebuild_adopts_only_envelopes_the_trusted_keys_signed() {
    let env = TestEnv::new();
    publish(&env, "v1");
    // Another operator's store, signed by another key.
    let foreign = TestEnv::new();
    publish(&foreign, "evil");
    // ...and a ban record of our v1, signed by that other key.
    publish(&foreign, "v1");
    foreign
        .otapub(&["ban", "v1", "--platform", "ios", "--reason", "forged"])
        .assert()
        .success();
    for key in [
        "state/bans/ios/v1.json",
        "public/updates/evil/ios/manifest",
        "public/updates/evil/ios/manifest.json",
        "state/meta/public/updates/evil/ios/manifest.json",
        "state/meta/public/updates/evil/ios/manifest.json.json",
    ] {
        let dst = env.store().join(key);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(foreign.store().join(key), &dst).unwrap();
    }
    let out = env
        .otapub(&["index", "rebuild", "--force", "--trust", "keys/throwaway.pub"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = stdout(&out);
    assert!(
        text.contains("public/updates/evil/ios/manifest: not adopted: no signature by a trusted key"),
        "{text}"
    );
    assert!(
        text.contains("state/bans/ios/v1.json: not adopted: no signature by a trusted key"),
        "{text}"
    );
    assert_eq!(history(&env, "ios"), ["v1"]);
    assert_eq!(served(&env, "ios"), "v1", "the forged ban was not applied");
    // Without --trust (and no keys/*.pub) it refuses.
    std::fs::remove_file(env.path("keys/throwaway.pub")).unwrap();
    let out = env
        .otapub(&["index", "rebuild", "--force"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(stderr(&out).contains("pass --trust"), "{}", stderr(&out));
}

/// A rebuilt index continues from the generation the pointer objects carry:
/// otherwise its next commits would be taken for a stale writer's and never
/// reach the pointers (found by the kill soak).
#[test]
fn publish_after_a_rebuild_moves_the_pointers() {
    on_both(|env| {
        publish(env, "v1");
        publish(env, "v2");
        publish(env, "v3");
        env.otapub(&["index", "rebuild", "--force", "--trust", "keys/throwaway.pub"])
            .assert()
            .success();
        publish(env, "v4");
        assert_eq!(served(env, "ios"), "v4");
        assert_eq!(served(env, "android"), "v4");
        env.otapub(&["check"]).assert().success();
    });
}

/// Item 6: a zero-byte, foreign or negative-version index is a clear exit 3,
/// and nothing is written.
#[test]
fn damaged_index_is_refused_and_nothing_changes() {
    let env = TestEnv::new();
    publish(&env, "v1");
    write_export(&env.path("export-v2"), "v2");
    let index = env.store().join("state/index.sqlite");
    let good = std::fs::read(&index).unwrap();
    type Damage<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Damage)> = vec![
        ("is empty (0 bytes)", Box::new(|| std::fs::write(&index, b"").unwrap())),
        (
            "not an otapub index",
            Box::new(|| {
                std::fs::remove_file(&index).unwrap();
                let c = rusqlite::Connection::open(&index).unwrap();
                c.execute_batch("CREATE TABLE t (x)").unwrap();
            }),
        ),
        (
            "newer than this otapub knows",
            Box::new(|| {
                std::fs::write(&index, &good).unwrap();
                let c = rusqlite::Connection::open(&index).unwrap();
                c.execute_batch("PRAGMA user_version = 999").unwrap();
            }),
        ),
        (
            "which no otapub writes",
            Box::new(|| {
                std::fs::write(&index, &good).unwrap();
                let c = rusqlite::Connection::open(&index).unwrap();
                c.execute_batch("PRAGMA user_version = -1").unwrap();
            }),
        ),
        (
            "out of range",
            Box::new(|| {
                std::fs::write(&index, &good).unwrap();
                let c = rusqlite::Connection::open(&index).unwrap();
                c.execute_batch(
                    "DROP TRIGGER packages_immutable; UPDATE packages SET created_at = 9223372036854775807",
                )
                .unwrap();
            }),
        ),
    ];
    for (message, damage) in cases {
        // Each message names its fix: a newer index needs a newer otapub,
        // anything else a restore or a rebuild.
        let fix = if message.starts_with("newer") {
            "upgrade otapub"
        } else {
            "index rebuild"
        };
        damage();
        let before = env.snapshot();
        for args in [
            &["publish", "export-v2", "--channel", "production", "--fingerprint", "fp"][..],
            &["status"][..],
            &["check"][..],
        ] {
            let out = env.otapub(args).assert().code(3).get_output().clone();
            assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(fix), "says how to recover: {}", stderr(&out));
        }
        assert_eq!(env.snapshot(), before, "{message}: the store changed");
    }
}

/// Item 8: temporary files of killed writers are cleaned up.
#[test]
fn killed_writers_leave_no_litter() {
    let env = TestEnv::new();
    publish(&env, "v1");
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // Abort publishes at different requests: each leaves its index copy behind.
    for n in 1..=4 {
        write_export(&env.path(&format!("export-k{n}")), &format!("k{n}"));
        env.otapub(&[
            "publish",
            &format!("export-k{n}"),
            "--channel",
            "production",
            "--fingerprint",
            "fp",
        ])
        .env("TMPDIR", &tmp)
        .env("OTAPUB_FAULTS", format!("kill@*:public/*#{n}"))
        .assert()
        .failure();
    }
    // A leftover of a process id that does not run, in the store and in the temp dir.
    std::fs::write(env.store().join("public/.otapub-tmp-999999999-x"), b"x").unwrap();
    std::fs::write(tmp.join("otapub-index-999999999-x.sqlite"), b"x").unwrap();
    publish(&env, "v2");
    env.otapub(&["status"]).env("TMPDIR", &tmp).assert().success();
    let litter: Vec<String> = walk(&env.store())
        .into_iter()
        .chain(walk(&tmp))
        .filter(|p| p.contains(".otapub-tmp-") || p.contains("otapub-index-"))
        .collect();
    assert!(litter.is_empty(), "{litter:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// Item 11: a store written with the old `form-data` framing is migrated by
/// regenerate without re-signing; any other drift is refused.
#[test]
fn regenerate_migrates_form_data_framing_without_resigning() {
    let env = TestEnv::new();
    publish(&env, "v1");
    let index = env.store().join("state/index.sqlite");
    let envelopes_before: Vec<Vec<u8>> = [
        "public/updates/v1/ios/manifest.json",
        "public/production/ios/fp/manifest.json",
    ]
    .iter()
    .map(|k| env.read(k))
    .collect();
    // Make the store look as an older otapub left it.
    let c = rusqlite::Connection::open(&index).unwrap();
    c.execute_batch("DROP TRIGGER packages_immutable").unwrap();
    for key in ["public/updates/v1/ios/manifest", "public/production/ios/fp/manifest"] {
        let path = env.store().join(key);
        let old = String::from_utf8(std::fs::read(&path).unwrap())
            .unwrap()
            .replace("inline;", "form-data;");
        std::fs::write(&path, &old).unwrap();
        let digest = Sha256::digest(old.as_bytes()).to_vec();
        c.execute(
            "UPDATE packages SET body_sha256 = ?1 WHERE version = 'v1' AND platform = 'ios'",
            [digest],
        )
        .unwrap();
    }
    drop(c);
    env.otapub(&["regenerate"]).assert().success();
    for key in ["public/updates/v1/ios/manifest", "public/production/ios/fp/manifest"] {
        let text = String::from_utf8(env.read(key)).unwrap();
        assert!(text.contains("content-disposition: inline; name=\"manifest\""), "{key}");
        assert!(!text.contains("form-data"), "{key}");
    }
    let envelopes_after: Vec<Vec<u8>> = [
        "public/updates/v1/ios/manifest.json",
        "public/production/ios/fp/manifest.json",
    ]
    .iter()
    .map(|k| env.read(k))
    .collect();
    assert_eq!(envelopes_before, envelopes_after, "no re-signing");
    env.otapub(&["verify", "--trust", "keys/throwaway.pub"])
        .assert()
        .code(0);
    // Any other difference from the signed bytes is refused.
    let c = rusqlite::Connection::open(&index).unwrap();
    c.execute(
        "UPDATE packages SET body_sha256 = zeroblob(32) WHERE version = 'v1' AND platform = 'ios'",
        [],
    )
    .unwrap();
    drop(c);
    let out = env.otapub(&["regenerate"]).assert().code(3).get_output().clone();
    assert!(
        stderr(&out).contains("other than the ones it was signed as"),
        "{}",
        stderr(&out)
    );
}

use sha2::{Digest, Sha256};

/// The rollout buckets under P/rollout/.
fn rollout_buckets(env: &TestEnv) -> Vec<String> {
    env.keys("public/production/ios/fp/rollout/")
}

const ROLLOUT_POINTER: [&str; 6] = ["--channel", "production", "--platform", "ios", "--fingerprint", "fp"];

/// A `rollout set` stopped after its commit — before it reads the rollout
/// record, or just before its first bucket write — while `rollout pause`
/// commits and removes the buckets: once it resumes, it must not grow the
/// paused rollout back (SPEC: no stale writer grows or shrinks a rollout).
#[test]
fn a_stale_rollout_writer_cannot_grow_a_paused_rollout() {
    on_both(|env| {
        publish(env, "v1");
        for (candidate, stop_at) in [
            ("c1", "head:public/production/ios/fp/rollout.json"),
            ("c2", "put_if:public/production/ios/fp/rollout/*"),
        ] {
            env.publish_release(candidate, "production", "fp")
                .args(["--platform", "ios", "--rollout", "10"])
                .assert()
                .success();
            assert_eq!(rollout_buckets(env).len(), 20);
            let set = start_paused(
                env,
                &[&["rollout", "set"][..], &ROLLOUT_POINTER, &["--percent", "50"]].concat(),
                stop_at,
            );
            env.otapub(&[&["rollout", "pause"][..], &ROLLOUT_POINTER].concat())
                .assert()
                .success();
            assert!(rollout_buckets(env).is_empty());
            let out = resume(env, set);
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(
                rollout_buckets(env),
                Vec::<String>::new(),
                "stopped at {stop_at}: the stale set grew the paused rollout"
            );
            let r = env.rollout_record("production/ios/fp");
            assert_eq!(r["state"], "paused");
            assert_eq!(r["percent"], 50, "the set committed before the pause");
            env.assert_consistent();
            // Next round on a fresh rollout.
            env.otapub(&[&["rollout", "abort"][..], &ROLLOUT_POINTER, &["--reason", "next round"]].concat())
                .assert()
                .success();
        }
    });
}

/// The narrower claim: a stale `rollout set` resumed before its first bucket
/// write after a `rollout pause`, and killed at its first removal (so its
/// own convergence never cleans up), puts back at most the one bucket pair
/// it was about to write — it reads the record again before each pair —
/// and `regenerate` removes that.
#[test]
fn a_killed_stale_rollout_writer_leaves_at_most_one_bucket_pair() {
    on_both(|env| {
        publish(env, "v1");
        env.publish_release("c1", "production", "fp")
            .args(["--platform", "ios", "--rollout", "10"])
            .assert()
            .success();
        let set = start_paused_then(
            env,
            env.std_otapub(&[&["rollout", "set"][..], &ROLLOUT_POINTER, &["--percent", "50"]].concat()),
            "put_if:public/production/ios/fp/rollout/*",
            Some("kill@delete:public/production/ios/fp/rollout/*#1"),
        );
        env.otapub(&[&["rollout", "pause"][..], &ROLLOUT_POINTER].concat())
            .assert()
            .success();
        let out = resume(env, set);
        assert!(
            !out.status.success(),
            "the stale set was to be killed at its first removal"
        );
        let left = rollout_buckets(env);
        assert!(
            left.len() <= 2,
            "a killed stale set put back {} bucket objects: {left:?}",
            left.len()
        );
        env.otapub(&["regenerate"]).assert().success();
        assert_eq!(rollout_buckets(env), Vec::<String>::new());
        env.assert_consistent();
    });
}

/// A `rollout pause` stopped after its commit while `rollout resume` and
/// `rollout set` commit: once it resumes, it must not remove the buckets
/// the newer commits serve.
#[test]
fn a_stale_rollout_writer_cannot_shrink_a_newer_rollout() {
    on_both(|env| {
        publish(env, "v1");
        env.publish_release("v2", "production", "fp")
            .args(["--platform", "ios", "--rollout", "10"])
            .assert()
            .success();
        let pause = start_paused(
            env,
            &[&["rollout", "pause"][..], &ROLLOUT_POINTER].concat(),
            "head:public/production/ios/fp/rollout.json",
        );
        env.otapub(&[&["rollout", "resume"][..], &ROLLOUT_POINTER].concat())
            .assert()
            .success();
        env.otapub(&[&["rollout", "set"][..], &ROLLOUT_POINTER, &["--percent", "30"]].concat())
            .assert()
            .success();
        assert_eq!(rollout_buckets(env).len(), 60);
        let out = resume(env, pause);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            rollout_buckets(env).len(),
            60,
            "the stale pause removed buckets a newer commit serves"
        );
        assert_eq!(env.rollout_record("production/ios/fp")["state"], "running");
        env.otapub(&["check"]).assert().code(0);
    });
}

/// `otapub refresh` racing a ban (SPEC "Keys over time"): paused after its
/// commit, before its pointer writes, while a ban commits and writes; then
/// paused before its commit point while a ban commits. Either way the ban's
/// view stays, and what is served carries the new leaf's signature.
#[test]
fn refresh_racing_a_ban_never_serves_the_banned_package_again() {
    on_both(|env| {
        env.expo_leaves();
        let a = ["--expo-key", "keys/leaf-a.key", "--expo-chain", "keys/leaf-a.pem"];
        let b = ["--expo-key", "keys/leaf-b.key", "--expo-chain", "keys/leaf-b.pem"];
        let leaf_b = std::fs::read_to_string(env.path("keys/leaf-b.pem")).unwrap();
        let chain_of = |key: &str| {
            let (body, ct) = env.object(key).unwrap();
            parse_multipart(&ct, &body)
                .into_iter()
                .find(|(h, _)| part_name(h) == "certificate_chain")
                .map(|(_, b)| String::from_utf8(b).unwrap())
        };
        for v in ["v1", "v2", "v3"] {
            env.publish_release(v, "production", "fp").args(a).assert().success();
        }
        // 1. Committed, its pointer writes stalled; a ban lands meanwhile.
        let mut c = env.std_otapub(&["refresh"]);
        c.args(b);
        let refresh = start_paused_cmd(env, c, "head:public/production/ios/fp/manifest");
        env.otapub(&["ban", "v3", "--platform", "ios", "--reason", "crash"])
            .args(b)
            .assert()
            .success();
        assert_eq!(served(env, "ios"), "v2");
        let out = resume(env, refresh);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(served(env, "ios"), "v2", "the stale refresh put the banned v3 back");
        assert_eq!(
            chain_of("public/production/ios/fp/manifest").as_deref(),
            Some(leaf_b.as_str())
        );
        env.assert_consistent();
        // 2. Stopped before its commit point (with leaf A again); a ban commits first.
        let mut c = env.std_otapub(&["refresh"]);
        c.args(a);
        let refresh = start_paused_cmd(env, c, "put_if:state/index.sqlite");
        env.otapub(&["ban", "v2", "--platform", "ios", "--reason", "crash too"])
            .args(b)
            .assert()
            .success();
        let out = resume(env, refresh);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(served(env, "ios"), "v1");
        let leaf_a = std::fs::read_to_string(env.path("keys/leaf-a.pem")).unwrap();
        assert_eq!(
            chain_of("public/production/ios/fp/manifest").as_deref(),
            Some(leaf_a.as_str())
        );
        env.assert_consistent();
    });
}

/// Runs `args` killed at its first pointer request under `public/<channel>/`
/// — after its commit, before any pointer is written — and checks that the
/// index holds the change while the tree does not (`check` finds the difference).
fn kill_after_commit(env: &TestEnv, args: &[&str], channel: &str) {
    let out = env
        .otapub(args)
        // The first request to a pointer object: a HEAD, or for a pointer
        // no commit stamped before, the conditional create.
        .env(
            "OTAPUB_FAULTS",
            format!("kill@head:public/{channel}/*#1;kill@put_if:public/{channel}/*#1"),
        )
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{args:?} was not killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.otapub(&["check"]).assert().code(1);
}

/// Runs `args` to completion; returns what it said on standard error.
fn rerun(env: &TestEnv, args: &[&str]) -> String {
    let out = env.otapub(args).assert().success().get_output().clone();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    env.otapub(&["check"]).assert().code(0);
    env.otapub(&["verify", "--trust", "keys/throwaway.pub"])
        .assert()
        .code(0);
    said
}

/// Issue 19, item 5: every writer killed at "committed, no pointer written",
/// then run again as a user would — without `--operation-id` — finishes
/// what it left and says so, and serves what one run serves: a default
/// rollback steps back once, not twice; a promote promotes once; a rollout
/// step is taken once.
#[test]
fn a_rerun_after_a_kill_between_commit_and_pointers_moves_forward_never_twice() {
    on_both(|env| {
        for r in ["v1", "v2", "v3"] {
            publish(env, r);
        }
        const ADOPTED: &str = "finished it instead of applying it again";

        // publish
        write_export(&env.path("export-v4"), "v4");
        let publish_v4 = [
            "publish",
            "export-v4",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v4",
        ];
        kill_after_commit(env, &publish_v4, "production");
        assert_eq!(served(env, "ios"), "v3");
        let said = rerun(env, &publish_v4);
        assert!(said.contains(ADOPTED), "{said}");
        assert_eq!(served(env, "ios"), "v4");

        // rollback, default target: three releases back to v3, not v2
        let rollback = [&["rollback"][..], &ROLLOUT_POINTER].concat();
        kill_after_commit(env, &rollback, "production");
        assert_eq!(served(env, "ios"), "v4", "the kill came before the pointer write");
        let said = rerun(env, &rollback);
        assert!(said.contains(ADOPTED), "{said}");
        assert_eq!(served(env, "ios"), "v3.r1", "one rollback, not two");
        assert_eq!(history(env, "ios"), ["v3.r1", "v4", "v3", "v2", "v1"]);

        // ban
        let ban = ["ban", "v3.r1", "--platform", "ios", "--reason", "crash on launch"];
        kill_after_commit(env, &ban, "production");
        assert_eq!(served(env, "ios"), "v3.r1");
        let said = rerun(env, &ban);
        assert!(said.contains(ADOPTED), "{said}");
        assert_eq!(served(env, "ios"), "v4", "the fallback");

        // promote: one promotion
        let promote = ["promote", "v2", "--platform", "android", "--to", "staging"];
        kill_after_commit(env, &promote, "staging");
        let said = rerun(env, &promote);
        assert!(said.contains(ADOPTED), "{said}");
        let staging = env.pointer("staging", "android", "fp");
        assert_eq!(staging["metadata"]["otapub"]["restampOf"], "v2");
        let st = env.json(&["status"]);
        let promoted: usize = st["pointers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["channel"] == "staging")
            .map(|p| p["history"].as_array().unwrap().len())
            .sum();
        assert_eq!(promoted, 1, "one promotion: {st}");

        // a rollout: started, grown, paused, resumed, advanced, completed — each step once
        env.publish_release("c1", "production", "fp")
            .args(["--platform", "ios", "--rollout", "10"])
            .assert()
            .success();
        let percent = |env: &TestEnv| {
            let rs = env.json(&["rollout", "status"]);
            let c1 = rs
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["candidate"]["version"] == "c1");
            c1.map_or(serde_json::Value::Null, |r| r["percent"].clone())
        };
        for (verb, extra, want) in [
            ("set", &["--percent", "30"][..], 30),
            ("pause", &[][..], 30),
            ("resume", &[][..], 30),
            ("advance", &[][..], 40),
        ] {
            let step = [&["rollout", verb][..], &ROLLOUT_POINTER, extra].concat();
            kill_after_commit(env, &step, "production");
            let said = rerun(env, &step);
            assert!(said.contains(ADOPTED), "{step:?}: {said}");
            assert_eq!(percent(env), want, "{step:?} once");
            let buckets = if verb == "pause" { 0 } else { 2 * want };
            assert_eq!(rollout_buckets(env).len(), buckets, "{step:?}");
        }
        let complete = [&["rollout", "complete"][..], &ROLLOUT_POINTER].concat();
        kill_after_commit(env, &complete, "production");
        rerun(env, &complete);
        assert_eq!(served(env, "ios"), "c1");
        assert!(rollout_buckets(env).is_empty());

        // abort: the candidate banned and the control re-stamped, once
        env.publish_release("c2", "production", "fp")
            .args(["--platform", "ios", "--rollout", "10"])
            .assert()
            .success();
        let abort = [&["rollout", "abort"][..], &ROLLOUT_POINTER, &["--reason", "crash rate"]].concat();
        kill_after_commit(env, &abort, "production");
        let said = rerun(env, &abort);
        assert!(said.contains(ADOPTED), "{said}");
        assert_eq!(served(env, "ios"), "c1.r1", "one re-stamp of the control");
        assert!(rollout_buckets(env).is_empty());

        // regenerate (with something to do) and index rebuild
        env.delete("public/production/android/fp/manifest");
        kill_after_commit(env, &["regenerate"], "production");
        let said = rerun(env, &["regenerate"]);
        assert!(said.contains(ADOPTED), "{said}");
        // Commits that change no pointer (a gc's two) put the written mark
        // above every pointer's stamp, which is where a rebuilt index starts.
        env.otapub(&["gc"]).assert().success();
        let rebuild = ["index", "rebuild", "--force", "--trust", "keys/throwaway.pub"];
        env.delete("public/production/android/fp/manifest.json");
        kill_after_commit(env, &rebuild, "production");
        rerun(env, &rebuild);
        assert_eq!(served(env, "ios"), "c1.r1", "what the abort left");
        // A rebuilt index continues above the written mark: a publish killed
        // after the rebuild is still finished by its rerun.
        write_export(&env.path("export-v5"), "v5");
        let publish_v5 = [
            "publish",
            "export-v5",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v5",
        ];
        kill_after_commit(env, &publish_v5, "production");
        let said = rerun(env, &publish_v5);
        assert!(said.contains(ADOPTED), "{said}");
        assert_eq!(served(env, "ios"), "v5");
    });
}

/// Issue 19, item 5: any writer first finishes what another command left
/// committed but unwritten, and says so.
#[test]
fn every_writer_first_finishes_what_a_killed_command_committed() {
    on_both(|env| {
        for r in ["v1", "v2", "v3"] {
            publish(env, r);
        }
        let rollback = [&["rollback"][..], &ROLLOUT_POINTER].concat();
        kill_after_commit(env, &rollback, "production");
        assert_eq!(served(env, "ios"), "v3");
        // Another command, on another pointer.
        let said = rerun(env, &["promote", "v2", "--platform", "android", "--to", "staging"]);
        assert!(said.contains("committed but not all written: `rollback`"), "{said}");
        assert_eq!(served(env, "ios"), "v2.r1", "the rollback's pointer is written");
        assert_eq!(history(env, "ios"), ["v2.r1", "v3", "v2", "v1"]);
        // It was finished: a rollback now is a new one.
        rerun(env, &rollback);
        assert_eq!(served(env, "ios"), "v1.r1");
    });
}

/// Issue 19, item 5, for `refresh`: killed after its commit, before any
/// pointer carries the new leaf, and rerun: finished once, and every served
/// response then carries the new chain.
#[test]
fn a_refresh_killed_after_its_commit_is_finished_by_its_rerun() {
    on_both(|env| {
        env.expo_leaves();
        let leaf = |name: &str| {
            [
                "--expo-key".to_string(),
                format!("keys/{name}.key"),
                "--expo-chain".to_string(),
                format!("keys/{name}.pem"),
            ]
        };
        for r in ["v1", "v2"] {
            env.publish_release(r, "production", "fp")
                .args(leaf("leaf-a"))
                .assert()
                .success();
        }
        let refresh: Vec<String> = std::iter::once("refresh".to_string()).chain(leaf("leaf-b")).collect();
        let refresh: Vec<&str> = refresh.iter().map(String::as_str).collect();
        kill_after_commit(env, &refresh, "production");
        let leaf_b = std::fs::read_to_string(env.path("keys/leaf-b.pem")).unwrap();
        let first_cert = |pem: &str| {
            let end = "-----END CERTIFICATE-----";
            pem[..pem.find(end).unwrap() + end.len()].to_string()
        };
        let serves_b = |env: &TestEnv| {
            ["ios", "android"].iter().all(|p| {
                let body = env.read(&format!("public/production/{p}/fp/manifest"));
                String::from_utf8_lossy(&body).contains(&first_cert(&leaf_b))
            })
        };
        assert!(!serves_b(env), "the kill came before the pointer writes");
        let said = rerun(env, &refresh);
        assert!(said.contains("finished it instead of applying it again"), "{said}");
        assert!(serves_b(env), "every pointer carries the new leaf");
        assert_eq!(served(env, "ios"), "v2");
    });
}
