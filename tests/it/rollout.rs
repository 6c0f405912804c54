//! Staged rollouts through the real binary: the lifecycle and the tree it
//! leaves at each step (read back without otapub: signed record checked with
//! ed25519, bucket objects compared with the candidate's immutable bytes),
//! the interactions with publish, rollback, promote and ban, the health
//! gate, index rebuild, and bad input that changes nothing.

use std::collections::BTreeSet;

use crate::common::*;
use serde_json::Value;

const P: &str = "production/ios/fp";

fn pointer_args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec!["--channel", "production", "--platform", "ios", "--fingerprint", "fp"];
    v.extend_from_slice(extra);
    v
}

/// `rollout SUB` on P, then `extra`.
fn rollout_args(sub: &'static str, extra: &[&'static str]) -> Vec<&'static str> {
    [&["rollout", sub][..], &pointer_args(extra)].concat()
}

fn rollout(env: &TestEnv, sub: &'static str, extra: &[&'static str]) -> assert_cmd::assert::Assert {
    env.otapub(&rollout_args(sub, extra)).assert()
}

/// A store where v1 is live on P and v2 (iOS only) is published with
/// `extra` (a rollout's options).
fn rolling(extra: &[&str]) -> TestEnv {
    let env = TestEnv::new();
    publish(&env, "v1", &[]).success();
    publish(&env, "v2", &[&["--platform", "ios"][..], extra].concat()).success();
    env
}

/// `publish` of release `v` on production/fp, with extra arguments.
fn publish(env: &TestEnv, v: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut c = env.publish_release(v, "production", "fp");
    c.args(extra);
    c.assert()
}

/// The signed rollout record of P, checked with the test key.
fn record(env: &TestEnv) -> Value {
    env.rollout_record(P)
}

/// The buckets that have objects under P/rollout/, each checked to hold
/// exactly the candidate's immutable bytes.
fn bucket_objects(env: &TestEnv, candidate: &str) -> BTreeSet<u8> {
    let keys = env.keys(&format!("public/{P}/rollout/"));
    let body = env.read(&format!("public/updates/{candidate}/ios/manifest"));
    let envelope = env.read(&format!("public/updates/{candidate}/ios/manifest.json"));
    let mut buckets = BTreeSet::new();
    for k in &keys {
        let rest = k.strip_prefix(&format!("public/{P}/rollout/")).unwrap();
        let (bb, name) = rest.split_once('/').unwrap();
        assert_eq!(bb.len(), 2, "{k}");
        match name {
            "manifest" => assert_eq!(env.read(k), body, "{k} holds the candidate's Expo body"),
            "manifest.json" => assert_eq!(env.read(k), envelope, "{k} holds the candidate's envelope"),
            other => panic!("unexpected {other} in {k}"),
        }
        buckets.insert(bb.parse::<u8>().unwrap());
    }
    assert_eq!(keys.len(), 2 * buckets.len(), "every bucket has both objects: {keys:?}");
    buckets
}

fn buckets_of(record: &Value) -> BTreeSet<u8> {
    record["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect()
}

fn served_version(env: &TestEnv) -> String {
    env.pointer("production", "ios", "fp")["metadata"]["otapub"]["version"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn manifest_id(env: &TestEnv, version: &str) -> String {
    let (_, doc) = env.read_signed(&format!("public/updates/{version}/ios/manifest"));
    doc["id"].as_str().unwrap().to_string()
}

/// A client id whose bucket is (or is not) among `buckets`.
fn client_in(buckets: &BTreeSet<u8>, inside: bool) -> String {
    random_client_ids(2000)
        .into_iter()
        .find(|id| buckets.contains(&device_bucket(id).unwrap()) == inside)
        .expect("2000 ids cover every bucket")
}

fn which(env: &TestEnv, id: &str) -> Value {
    let mut args = rollout_args("which", &[]);
    args.extend(["--client-id", id]);
    env.json(&args)
}

fn audit_actions(env: &TestEnv) -> Vec<String> {
    let out = env
        .otapub(&["log", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let log: Value = serde_json::from_slice(&out).unwrap();
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_rollout_moves_forward_through_its_lifecycle() {
    let env = rolling(&["--rollout", "20"]);
    let v1 = manifest_id(&env, "v1");
    let v2 = manifest_id(&env, "v2");

    // The pointer keeps the control; 20 buckets serve the candidate.
    assert_eq!(served_version(&env), "v1");
    let r = record(&env);
    assert_eq!(r["pointer"], P);
    assert_eq!(r["candidate"]["version"], "v2");
    assert_eq!(r["candidate"]["id"], v2.as_str());
    assert_eq!(r["control"]["version"], "v1");
    assert_eq!(r["percent"], 20);
    assert_eq!(r["paused"], false);
    let at20 = buckets_of(&r);
    assert_eq!(at20.len(), 20);
    assert_eq!(bucket_objects(&env, "v2"), at20);
    let permutation: Vec<u64> = r["permutation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    let first20: BTreeSet<u8> = permutation[..20].iter().map(|&b| b as u8).collect();
    assert_eq!(first20, at20, "the candidate buckets are the permutation's first 20");

    // `which` agrees with the formula and the signed list.
    let inside = client_in(&at20, true);
    let outside = client_in(&at20, false);
    let w = which(&env, &inside.to_uppercase());
    assert_eq!(w["bucket"], device_bucket(&inside).unwrap());
    assert_eq!(w["serves"]["id"], v2.as_str());
    assert_eq!(which(&env, &outside)["serves"]["id"], v1.as_str());
    let w = which(&env, "not-a-uuid");
    assert!(w["bucket"].is_null());
    assert_eq!(w["serves"]["id"], v1.as_str());

    // Raising keeps every candidate bucket; an equal percent changes nothing.
    rollout(&env, "set", &["--percent", "50"]).success();
    let at50 = buckets_of(&record(&env));
    assert_eq!(at50.len(), 50);
    assert!(at20.is_subset(&at50));
    assert_eq!(bucket_objects(&env, "v2"), at50);
    env.assert_writes_nothing(|| {
        rollout(&env, "set", &["--percent", "50"]).success();
    });

    // Pause removes the buckets; set and advance are refused while paused.
    rollout(&env, "pause", &[]).success();
    let r = record(&env);
    assert_eq!(r["paused"], true);
    assert_eq!(r["state"], "paused");
    assert!(buckets_of(&r).is_empty());
    assert!(env.keys(&format!("public/{P}/rollout/")).is_empty());
    assert_eq!(which(&env, &inside)["serves"]["id"], v1.as_str());
    env.refused(&rollout_args("set", &["--percent", "60"]), "resume");
    env.refused(&rollout_args("advance", &[]), "resume");

    // Resume brings the same buckets back; advance adds the default step.
    rollout(&env, "resume", &[]).success();
    assert_eq!(bucket_objects(&env, "v2"), at50);
    rollout(&env, "advance", &[]).success();
    let at60 = buckets_of(&record(&env));
    assert_eq!(at60.len(), 60);
    assert!(at50.is_subset(&at60));
    assert_eq!(served_version(&env), "v1");

    // Complete: the candidate is the pointer's live package, P/rollout/ is gone.
    rollout(&env, "complete", &[]).success();
    assert_eq!(served_version(&env), "v2");
    assert!(env.keys(&format!("public/{P}/rollout/")).is_empty());
    let r = record(&env);
    assert_eq!(r["state"], "completed");
    assert!(buckets_of(&r).is_empty());
    env.assert_consistent();
    // A finished rollout holds nothing: the next publish goes through.
    publish(&env, "v3", &["--platform", "ios"]).success();
    assert_eq!(served_version(&env), "v3");

    let status = env.json(&["rollout", "status"]);
    assert_eq!(status[0]["state"], "completed");
    assert_eq!(status[0]["percent"], 100);
    let actions = audit_actions(&env);
    for a in [
        "rollout-start",
        "rollout-set",
        "rollout-pause",
        "rollout-resume",
        "rollout-advance",
        "rollout-complete",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[test]
fn abort_bans_the_candidate_and_moves_its_devices_back() {
    let env = rolling(&["--rollout", "30", "--strategy", "canary"]);
    let v2_created = env.read_signed("public/updates/v2/ios/manifest").1["createdAt"].clone();
    env.refused(&rollout_args("abort", &["--reason", "  "]), "--reason is blank");
    rollout(&env, "abort", &["--reason", "crash on launch"]).success();

    // The control is re-stamped newer than the candidate: devices that took
    // the candidate move back.
    let doc = env.pointer("production", "ios", "fp");
    assert_eq!(doc["metadata"]["otapub"]["restampOf"], "v1");
    assert!(doc["createdAt"].as_str().unwrap() > v2_created.as_str().unwrap());
    assert!(env.keys(&format!("public/{P}/rollout/")).is_empty());
    assert_eq!(record(&env)["state"], "aborted");
    assert!(env.exists("state/bans/ios/v2.json"), "the ban is recorded and signed");
    let status = env.json(&["status"]);
    let history = &status["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "ios")
        .unwrap()["history"];
    let v2 = history
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["version"] == "v2")
        .unwrap();
    assert_eq!(v2["banned"]["reason"], "crash on launch");
    let rs = env.json(&["rollout", "status"]);
    assert_eq!(rs[0]["state"], "aborted");
    assert_eq!(rs[0]["reason"], "crash on launch");
    // An aborted rollout is over: no running rollout left to change.
    env.refused(&rollout_args("set", &["--percent", "50"]), "no rollout runs");
    env.assert_consistent();
}

#[test]
fn a_running_rollout_holds_its_pointer_and_bans_end_or_shift_it() {
    let env = TestEnv::new();
    publish(&env, "v0", &[]).success();
    publish(&env, "v1", &[]).success();
    publish(&env, "v2", &["--platform", "ios", "--rollout", "10"]).success();
    // publish, rollback and promote to the pointer are refused with how to proceed.
    write_export(&env.path("export-v3"), "v3");
    env.refused(
        &[
            "publish",
            "export-v3",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--platform",
            "ios",
        ],
        "complete it",
    );
    env.refused(&[&["rollback"][..], &pointer_args(&[])].concat(), "abort it");
    env.publish_release("s1", "staging", "fp").assert().success();
    env.refused(
        &["promote", "s1", "--platform", "ios", "--to", "production"],
        "complete it",
    );
    // android has no rollout: publishing there is fine.
    env.otapub(&[
        "publish",
        "export-v3",
        "--channel",
        "production",
        "--fingerprint",
        "fp",
        "--platform",
        "android",
        "--version",
        "v3",
    ])
    .assert()
    .success();

    // Banning the control with --rollback: the rollout goes on against the
    // fallback, re-stamped so devices on the banned control move off it.
    env.otapub(&["ban", "v1", "--platform", "ios", "--reason", "bad", "--rollback"])
        .assert()
        .success();
    let doc = env.pointer("production", "ios", "fp");
    assert_eq!(doc["metadata"]["otapub"]["restampOf"], "v0");
    let r = record(&env);
    assert_eq!(r["state"], "running");
    assert_eq!(r["control"]["version"], doc["metadata"]["otapub"]["version"]);
    assert_eq!(bucket_objects(&env, "v2"), buckets_of(&r));
    // Completing now re-stamps the candidate, which is older than that re-stamp.
    rollout(&env, "complete", &[]).success();
    let doc = env.pointer("production", "ios", "fp");
    assert_eq!(doc["metadata"]["otapub"]["restampOf"], "v2");

    // Banning a running rollout's candidate aborts it.
    publish(&env, "v4", &["--platform", "ios", "--rollout", "50"]).success();
    env.otapub(&["ban", "v4", "--platform", "ios", "--reason", "leaks"])
        .assert()
        .success();
    assert_eq!(record(&env)["state"], "aborted");
    assert!(env.keys(&format!("public/{P}/rollout/")).is_empty());
    let doc = env.pointer("production", "ios", "fp");
    assert_eq!(
        doc["metadata"]["otapub"]["restampOf"], "v2",
        "devices that took v4 move back"
    );
    env.otapub(&["check"]).assert().success();
}

#[test]
fn bad_input_changes_nothing() {
    let env = TestEnv::new();
    publish(&env, "v1", &[]).success();
    // A first publish has nothing to keep as the control.
    let mut first = env.publish_release("n1", "nightly", "fp");
    first.args(["--rollout", "10"]);
    let before = env.snapshot();
    let out = first.assert().code(2).get_output().clone();
    assert!(stderr(&out).contains("publish without --rollout"), "{}", stderr(&out));
    assert_eq!(env.snapshot(), before);
    write_export(&env.path("export-v2"), "v2");
    let pub2 = |extra: &[&'static str]| {
        let mut v = vec![
            "publish",
            "export-v2",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "v2",
        ];
        v.extend_from_slice(extra);
        v
    };
    env.refused(&pub2(&["--rollout", "0"]), "1 to 99");
    env.refused(&pub2(&["--rollout", "100"]), "1 to 99");
    env.refused(&pub2(&["--rollout", "10", "--step", "0"]), "--step 0");
    env.refused(
        &pub2(&["--rollout", "10", "--abort-threshold", "2"]),
        "--abort-threshold 2",
    );
    // No running rollout yet.
    env.refused(&rollout_args("set", &["--percent", "50"]), "no rollout runs");
    env.refused(&rollout_args("abort", &["--reason", "x"]), "no rollout runs");
    env.otapub(&pub2(&["--rollout", "30"])).assert().success();
    env.refused(&rollout_args("set", &["--percent", "101"]), "1 to 100");
    env.refused(&rollout_args("set", &["--percent", "0"]), "1 to 100");
    env.refused(&rollout_args("set", &["--percent", "20"]), "only grows");
    env.refused(&rollout_args("abort", &["--reason", ""]), "--reason is blank");
    env.refused(
        &[
            "rollout",
            "set",
            "--channel",
            "nope",
            "--platform",
            "ios",
            "--fingerprint",
            "fp",
            "--percent",
            "50",
        ],
        "no rollout runs on nope/ios/fp",
    );
    env.refused(
        &[
            "rollout",
            "which",
            "--channel",
            "nope",
            "--platform",
            "ios",
            "--fingerprint",
            "fp",
            "--client-id",
            "x",
        ],
        "nothing is published on nope/ios/fp",
    );
}

#[test]
fn the_health_gate_advances_refuses_or_aborts() {
    let env = rolling(&["--rollout", "10", "--abort-threshold", "0.2"]);
    let v1 = manifest_id(&env, "v1");
    let v2 = manifest_id(&env, "v2");
    let advance = |gate: &[&str]| {
        let mut args = rollout_args("advance", &[]);
        args.extend_from_slice(gate);
        env.otapub(&args)
    };
    // A gate that fails or prints garbage changes nothing.
    let before = env.snapshot();
    advance(&["--gate-cmd", "echo broken >&2; exit 3"]).assert().code(3);
    advance(&["--gate-cmd", "echo nonsense"]).assert().code(2);
    advance(&["--gate-cmd", r#"echo '{"failed": 5, "total": 2}'"#])
        .assert()
        .code(2);
    // No device counted yet: exit 1, nothing changes.
    let out = advance(&["--gate-cmd", r#"echo '{"failed": 0, "total": 0}'"#])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(stdout(&out).contains("no device"), "{}", stdout(&out));
    assert_eq!(env.snapshot(), before);
    // The command sees the candidate's id.
    advance(&[
        "--gate-cmd",
        &format!(r#"test "$OTAPUB_CANDIDATE_ID" = {v2} && echo '{{"failed": 1, "total": 10}}'"#),
    ])
    .assert()
    .success();
    assert_eq!(record(&env)["percent"], 20);
    let rs = env.json(&["rollout", "status"]);
    assert_eq!(rs[0]["gate"]["failed"], 1);
    assert_eq!(rs[0]["gate"]["total"], 10);

    // Access logs as `otapub serve --access-log` writes them: 3 of 10
    // devices report the candidate failed (30 % > 20 %).
    let ids = random_client_ids(12);
    let mut lines = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut line = serde_json::json!({"path": format!("/{P}/manifest"), "eas-client-id": id});
        match i {
            0..=2 => {
                line["expo-current-update-id"] = v1.clone().into();
                line["expo-recent-failed-update-ids"] = format!("\"{}\", \"{}\"", v2.to_uppercase(), v1).into();
            }
            3..=9 => line["expo-current-update-id"] = v2.clone().into(),
            // Devices that never saw the candidate do not count.
            _ => line["expo-current-update-id"] = v1.clone().into(),
        }
        lines.push(line.to_string());
        // The same device twice counts once.
        lines.push(line.to_string());
    }
    std::fs::write(env.path("bad.log"), "{\"path\": \"/x\"}\nnot json\n").unwrap();
    let before = env.snapshot();
    let out = advance(&["--gate-log", "bad.log"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(stderr(&out).contains("bad.log line 2"), "{}", stderr(&out));
    assert_eq!(env.snapshot(), before);
    std::fs::write(env.path("access.log"), lines.join("\n")).unwrap();
    advance(&["--gate-log", "access.log"]).assert().code(1);
    let r = record(&env);
    assert_eq!(r["state"], "aborted");
    assert!(env.keys(&format!("public/{P}/rollout/")).is_empty());
    let rs = env.json(&["rollout", "status"]);
    assert_eq!(rs[0]["gate"]["failed"], 3);
    assert_eq!(rs[0]["gate"]["total"], 10);
    assert!(
        rs[0]["reason"].as_str().unwrap().contains("3 of 10"),
        "{}",
        rs[0]["reason"]
    );
    let out = env
        .otapub(&["log", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let log: Value = serde_json::from_slice(&out).unwrap();
    let abort = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "rollout-abort")
        .unwrap();
    assert_eq!(abort["details"]["gate"]["rate"], 0.3);
    assert_eq!(
        env.pointer("production", "ios", "fp")["metadata"]["otapub"]["restampOf"],
        "v1"
    );
}

#[test]
fn index_rebuild_recovers_a_running_rollout_and_regenerate_heals_buckets() {
    let env = rolling(&["--rollout", "30"]);
    let before = buckets_of(&record(&env));

    // A deleted bucket object is reported and restored; a stray one removed.
    let missing = *before.iter().next().unwrap();
    env.delete(&format!("public/{P}/rollout/{missing:02}/manifest"));
    let stray = (0..100u8).find(|b| !before.contains(b)).unwrap();
    let stray_key = format!("public/{P}/rollout/{stray:02}/manifest");
    std::fs::create_dir_all(env.store().join(format!("public/{P}/rollout/{stray:02}"))).unwrap();
    std::fs::copy(
        env.store().join("public/updates/v2/ios/manifest"),
        env.store().join(&stray_key),
    )
    .unwrap();
    let out = env.otapub(&["check"]).assert().code(1).get_output().stdout.clone();
    let report = String::from_utf8_lossy(&out).to_string();
    assert!(
        report.contains(&format!("rollout/{missing:02}/manifest: missing")),
        "{report}"
    );
    assert!(report.contains(&stray_key), "{report}");
    env.otapub(&["regenerate"]).assert().success();
    env.otapub(&["check"]).assert().success();
    assert_eq!(bucket_objects(&env, "v2"), before);

    // The index is lost: rebuild recovers the rollout from rollout.json.
    env.delete("state/index.sqlite");
    env.otapub(&["index", "rebuild", "--trust", "keys/throwaway.pub"])
        .assert()
        .success();
    let rs = env.json(&["rollout", "status"]);
    assert_eq!(rs[0]["state"], "running");
    assert_eq!(rs[0]["percent"], 30);
    assert_eq!(rs[0]["candidate"]["version"], "v2");
    let st = env.json(&["status"]);
    let ios = st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "ios")
        .unwrap()
        .clone();
    assert_eq!(ios["serves"], "v1", "the candidate is not taken for the live package");
    env.assert_writes_nothing(|| {
        env.otapub(&["regenerate"]).assert().success();
    });
    // Devices stay sticky across the rebuild.
    rollout(&env, "set", &["--percent", "40"]).success();
    let after = buckets_of(&record(&env));
    assert!(before.is_subset(&after));
    assert_eq!(bucket_objects(&env, "v2"), after);
}

#[test]
fn abort_bans_the_candidate_everywhere_it_was_promoted() {
    let env = rolling(&["--rollout", "10"]);
    env.otapub(&["promote", "v2", "--platform", "ios", "--to", "staging"])
        .assert()
        .success();
    assert_eq!(
        env.pointer("staging", "ios", "fp")["metadata"]["otapub"]["restampOf"],
        "v2"
    );
    rollout(&env, "abort", &["--reason", "crash on launch"]).success();
    // The ban covers the re-stamp on staging, whose pointer is rewritten.
    let staging = env.pointer("staging", "ios", "fp");
    assert_eq!(staging["type"], "noUpdateAvailable", "{staging}");
    assert_eq!(
        env.pointer("production", "ios", "fp")["metadata"]["otapub"]["restampOf"],
        "v1"
    );
    env.assert_consistent();
}

#[test]
fn promote_starts_a_rollout_of_the_re_stamp() {
    let env = TestEnv::new();
    publish(&env, "v1", &[]).success();
    env.publish_release("s1", "staging", "fp").assert().success();
    let promote = [
        "promote",
        "s1",
        "--platform",
        "ios",
        "--to",
        "production",
        "--rollout",
        "20",
        "--strategy",
        "canary",
    ];
    env.otapub(&promote).assert().success();
    let r = record(&env);
    assert_eq!(r["candidate"]["version"], "s1.r1");
    assert_eq!(r["strategy"], "canary");
    assert_eq!(served_version(&env), "v1");
    assert_eq!(bucket_objects(&env, "s1.r1"), buckets_of(&r));
    // A retry of the same promote changes nothing.
    env.assert_writes_nothing(|| {
        env.otapub(&promote).assert().success();
    });
    // canary: one advance completes.
    rollout(&env, "advance", &[]).success();
    assert_eq!(served_version(&env), "s1.r1");
    assert!(env.keys(&format!("public/{P}/rollout/")).is_empty());
}

#[test]
fn a_gate_reading_applies_only_to_the_rollout_it_measured() {
    let env = rolling(&["--rollout", "10"]);
    write_export(&env.path("export-v3"), "v3");
    // While the gate measures, the measured rollout completes and another starts.
    let bin = assert_cmd::cargo::cargo_bin("otapub").display().to_string();
    let at = "--store store --key keys/throwaway.key --channel production --fingerprint fp";
    let cmd = format!(
        "{bin} rollout complete {at} --platform ios >/dev/null && \
         {bin} publish export-v3 {at} --platform ios --version v3 --rollout 10 >/dev/null && \
         echo '{{\"failed\": 0, \"total\": 5}}'"
    );
    let mut args: Vec<&str> = rollout_args("advance", &[]);
    args.extend(["--gate-cmd", &cmd]);
    let out = env.otapub(&args).assert().code(2).get_output().clone();
    assert!(
        stderr(&out).contains("changed while the gate was measured"),
        "{}",
        stderr(&out)
    );
    let r = record(&env);
    assert_eq!(r["candidate"]["version"], "v3");
    assert_eq!(r["percent"], 10, "the reading of v2 advanced v3's rollout");
}
