//! `otapub ops` and `otapub ops sweep`: a gc killed while it holds its lease
//! leaves its operation running; past the limit it shows as stale (in `ops`
//! and on the operators' page), and a sweep marks it failed, audited.

use crate::common::*;
use serde_json::Value;

fn ops(env: &TestEnv, now: &str) -> Vec<Value> {
    let out = env
        .otapub_at(now, &["ops", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("JSON")
        .as_array()
        .expect("a list")
        .clone()
}

fn find<'a>(ops: &'a [Value], kind: &str) -> &'a Value {
    ops.iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} operation in {ops:?}"))
}

/// A store with one release and, for gc to delete, leftover assets named
/// by each character repeated (older than the grace period by 2099).
fn with_leftovers(names: &[&str]) -> (TestEnv, Vec<std::path::PathBuf>) {
    let env = TestEnv::new();
    env.publish_release("r1", "production", "fp")
        .env("OTAPUB_NOW", "2026-11-29T10:00:00Z")
        .assert()
        .success();
    let leftovers: Vec<_> = names
        .iter()
        .map(|c| env.store().join(format!("public/assets/{}", c.repeat(64))))
        .collect();
    for path in &leftovers {
        std::fs::write(path, b"leftover").unwrap();
    }
    (env, leftovers)
}

#[test]
fn a_gc_killed_holding_its_lease_is_stale_until_a_sweep_fails_it() {
    let (env, leftovers) = with_leftovers(&["f"]);
    let leftover = &leftovers[0];
    let t0 = "2099-01-01T00:00:00Z";
    env.otapub_at(t0, &["gc"])
        .env("OTAPUB_FAULTS", "kill@delete:public/assets/*#1")
        .assert()
        .failure();

    // Right after, the gc's operation is running and not stale.
    let listed = ops(&env, "2099-01-01T00:01:00Z");
    let gc = find(&listed, "gc");
    assert_eq!(gc["state"], "running", "{gc}");
    assert_eq!(gc["stale"], false);
    assert_eq!(find(&listed, "publish")["state"], "succeeded");
    // A sweep now finds nothing to do and writes nothing.
    env.assert_writes_nothing(|| {
        let out = env
            .otapub_at("2099-01-01T00:01:00Z", &["ops", "sweep"])
            .assert()
            .success()
            .get_output()
            .clone();
        assert!(stdout(&out).contains("nothing to sweep"), "{}", stdout(&out));
    });

    // Eleven minutes on it is stale, in `ops` and on the page.
    let later = "2099-01-01T00:11:00Z";
    assert_eq!(find(&ops(&env, later), "gc")["stale"], true);
    let text = env.otapub_at(later, &["ops"]).assert().success().get_output().clone();
    assert!(stdout(&text).contains("running (STALE)"), "{}", stdout(&text));
    env.otapub_at(later, &["report", "--out", "site"]).assert().success();
    let report: Value = serde_json::from_slice(&std::fs::read(env.path("site/report.json")).unwrap()).unwrap();
    assert_eq!(
        report["staleOperations"][0]["kind"], "gc",
        "{}",
        report["staleOperations"]
    );
    assert!(std::fs::read_to_string(env.path("site/index.html"))
        .unwrap()
        .contains("Operations stuck in progress"));

    // Bad input changes nothing.
    env.assert_writes_nothing(|| {
        env.otapub_at(later, &["ops", "sweep", "--older-than", "0"])
            .assert()
            .code(2);
    });

    // The sweep fails it, once, audited.
    let out = env
        .otapub_at(later, &["ops", "sweep", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let swept: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(swept["failed"].as_array().unwrap().len(), 1, "{swept}");
    let gc = find(&ops(&env, later), "gc").clone();
    assert_eq!(gc["state"], "failed");
    assert_eq!(gc["stale"], false);
    assert!(gc["error"].as_str().unwrap().contains("most likely died"), "{gc}");
    let log = env.json(&["log"]);
    let events: Vec<&Value> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "ops-sweep")
        .collect();
    assert_eq!(events.len(), 1, "{log}");
    assert_eq!(events[0]["details"]["kind"], "gc");
    env.assert_writes_nothing(|| {
        env.otapub_at(later, &["ops", "sweep"]).assert().success();
    });

    // The next gc finishes the job; its own operations end succeeded.
    env.otapub_at("2099-01-01T00:20:00Z", &["gc"]).assert().success();
    assert!(!leftover.exists());
    let listed = ops(&env, "2099-01-01T00:21:00Z");
    let newest_gc: Vec<&Value> = listed.iter().filter(|o| o["kind"] == "gc").take(2).collect();
    assert!(newest_gc.iter().all(|o| o["state"] == "succeeded"), "{newest_gc:?}");
}

/// A deletion the store refuses ends gc with the store's error, but not
/// holding its lease: its operations end, what went is recorded, and the
/// next gc deletes the rest.
#[test]
fn a_gc_whose_deletion_fails_releases_its_lease() {
    let (env, leftovers) = with_leftovers(&["e", "f"]);
    let t0 = "2099-01-01T00:00:00Z";
    let out = env
        .otapub_at(t0, &["gc"])
        .env("OTAPUB_FAULTS", "fail@delete:public/assets/*#2")
        .assert()
        .code(3)
        .get_output()
        .clone();
    assert!(
        stderr(&out).contains(&"f".repeat(64)),
        "names the object: {}",
        stderr(&out)
    );
    assert!(!leftovers[0].exists() && leftovers[1].exists());

    let listed = ops(&env, "2099-01-01T00:01:00Z");
    let running: Vec<&Value> = listed.iter().filter(|o| o["state"] == "running").collect();
    assert_eq!(running, Vec::<&Value>::new(), "no operation left running: {listed:?}");
    // The lease's operation carries the failure (the release commit's own succeeded).
    let gc = listed
        .iter()
        .find(|o| o["operationId"].as_str().is_some_and(|id| id.ends_with(":gc-lease")))
        .expect("the lease's operation");
    assert_eq!(gc["state"], "failed", "{gc}");
    assert!(gc["error"].as_str().unwrap_or("").contains(&"f".repeat(64)), "{gc}");
    let log = env.json(&["log"]);
    let gone: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "gc-delete")
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert_eq!(gone, [format!("public/assets/{}", "e".repeat(64))]);

    // No lease to wait out: a gc a minute later finishes the job.
    env.otapub_at("2099-01-01T00:01:00Z", &["gc"]).assert().success();
    assert!(!leftovers[1].exists());
}
