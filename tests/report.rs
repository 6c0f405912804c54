//! The operators' page: `otapub report` and `serve`'s `/_otapub/`, loaded in
//! headless Chromium (Debian's, driven by playwright-core from npm; both
//! installed by scripts/install-test-servers.sh) and read back from the DOM
//! the browser built; golden snapshots (insta) of the page and of the
//! manifest and directive JSON the tree serves.

mod common;

use std::path::Path;
use std::process::Command;

use common::edge::otapub_serve;
use common::*;
use serde_json::Value;

/// A ban reason with markup in it: the page must show it as text.
const REASON: &str = "crashes on launch <script>alert('x')</script> & \"worse\"";

/// A store with what the page shows: two channels, a ban, a re-stamp, a
/// running rollout, a failed operation. Every command at a fixed instant, so
/// the page is the same bytes on every run (but for the throwaway key's
/// signatures, which the page does not show).
fn scene(env: &TestEnv) {
    let at = |n: u32| format!("2026-11-29T10:{n:02}:00Z");
    let run = |n: u32, args: &[&str]| {
        env.otapub_at(&at(n), args).assert().success();
    };
    for (n, (release, channel)) in [("r1", "production"), ("r2", "production"), ("s1", "staging")]
        .into_iter()
        .enumerate()
    {
        write_export(&env.path(&format!("export-{release}")), release);
        run(
            n as u32,
            &[
                "publish",
                &format!("export-{release}"),
                "--channel",
                channel,
                "--fingerprint",
                "fp1",
                "--version",
                release,
                "--message",
                &format!("release {release}"),
            ],
        );
    }
    run(5, &["ban", "r2", "--platform", "ios", "--reason", REASON, "--rollback"]);
    run(
        6,
        &[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "android",
            "--fingerprint",
            "fp1",
            "--to-embedded",
        ],
    );
    env.publish_release("s2", "staging", "fp1")
        .args(["--rollout", "25"])
        .env("OTAPUB_NOW", at(7))
        .assert()
        .success();
    // A publish that fails on its first upload: a failed operation.
    write_export(&env.path("export-r3"), "r3");
    env.otapub_at(
        &at(8),
        &[
            "publish",
            "export-r3",
            "--channel",
            "production",
            "--fingerprint",
            "fp1",
            "--version",
            "r3",
        ],
    )
    // Its own asset, by name: which of the uploads in flight fails first varies.
    .env(
        "OTAPUB_FAULTS",
        format!("fail@put:public/assets/{}#1", sha256_hex(b"asset bytes of r3")),
    )
    .assert()
    .code(3);
}

/// Loads `url` in headless Chromium; what the page showed, as the script reports it.
fn browse(url: &str, screenshot: &Path) -> Value {
    let playwright = tools_dir().join("browser/node_modules/playwright-core");
    assert!(
        playwright.exists() && Path::new("/usr/bin/chromium").exists(),
        "headless Chromium is not installed: run scripts/install-test-servers.sh (Debian's chromium + playwright-core from npm)"
    );
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/report.mjs"))
        .args([url, screenshot.to_str().expect("UTF-8 path")])
        .env("PLAYWRIGHT_CORE", &playwright)
        .output()
        .expect("run node");
    assert!(out.status.success(), "the browser script failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the browser script printed no JSON ({e}): {}", stdout(&out)))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn the_page_in_a_real_browser_shows_every_pointer_its_live_version_and_each_ban_reason() {
    let env = TestEnv::new();
    scene(&env);
    let served = otapub_serve(&env, &[]);
    let shot = env.path("report.png");
    let seen = browse(&format!("{}/_otapub/", served.base), &shot);

    for list in ["consoleErrors", "pageErrors", "foreignRequests", "failedRequests"] {
        assert_eq!(seen[list], serde_json::json!([]), "{list}: {seen}");
    }
    assert_eq!(seen["status"], 200);
    assert_eq!(seen["contentType"], "text/html; charset=utf-8");
    // What the scene did decides what each pointer must show, not otapub's report.
    let mut pointers: Vec<(String, String, Vec<String>)> = seen["pointers"]
        .as_array()
        .expect("pointers")
        .iter()
        .map(|p| {
            assert_eq!(p["visible"], true, "{p}");
            (
                p["pointer"].as_str().unwrap().to_string(),
                p["live"].as_str().unwrap().to_string(),
                strings(&p["banReasons"]),
            )
        })
        .collect();
    pointers.sort();
    let want = |p: &str, live: &str, bans: &[&str]| {
        (
            p.to_string(),
            live.to_string(),
            bans.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        pointers,
        vec![
            want("production/android/fp1", "embedded-4c2b15c361d8cd52", &[]),
            want("production/ios/fp1", "r1.r1", &[REASON]),
            want("staging/android/fp1", "s1", &[]),
            want("staging/ios/fp1", "s1", &[]),
        ]
    );
    let rollout = seen["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pointer"] == "staging/ios/fp1")
        .unwrap();
    assert_eq!(rollout["rollout"], "rollout s2 to 25 % of devices running", "{rollout}");
    let failed = strings(&seen["failedOperations"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("publish") && failed[0].contains("tester"),
        "{failed:?}"
    );
    assert!(seen["historyRowsAfterClick"].as_u64().unwrap() >= 1, "{seen}");
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a screenshot of a real page: {} bytes",
        png.len()
    );
    if let Some(dir) = std::env::var_os("OTAPUB_SCREENSHOT_DIR") {
        std::fs::copy(&shot, Path::new(&dir).join("report.png")).expect("keep the screenshot");
    }

    // `report --out` writes the same page and JSON the server shows.
    env.otapub(&["report", "--out", "site"]).assert().success();
    let json: Value = serde_json::from_slice(&std::fs::read(env.path("site/report.json")).unwrap()).unwrap();
    let body = reqwest_get(&format!("{}/_otapub/report.json", served.base));
    let mut live: Value = serde_json::from_str(&body).expect("report.json");
    live["generatedAt"] = json["generatedAt"].clone();
    assert_eq!(live, json);
    let page = std::fs::read_to_string(env.path("site/index.html")).unwrap();
    assert!(!page.contains("<script"), "the page runs no script");
    assert!(
        page.contains("crashes on launch &lt;script&gt;"),
        "markup in a reason is escaped"
    );
}

fn reqwest_get(url: &str) -> String {
    let out = Command::new("curl").args(["-sf", url]).output().expect("curl");
    assert!(out.status.success(), "GET {url}");
    stdout(&out)
}

#[test]
fn golden_page_manifest_and_directive() {
    let env = TestEnv::new();
    scene(&env);
    let out = env
        .otapub_at("2026-11-29T11:00:00Z", &["report", "--out", "site"])
        .assert()
        .success();
    drop(out);
    let page = std::fs::read_to_string(env.path("site/index.html")).unwrap();
    insta::assert_snapshot!("report_page", page);
    let manifest = env.pointer("production", "ios", "fp1");
    insta::assert_snapshot!(
        "manifest_production_ios",
        serde_json::to_string_pretty(&manifest).unwrap()
    );
    let directive = env.pointer("production", "android", "fp1");
    insta::assert_snapshot!(
        "directive_rollback_to_embedded",
        serde_json::to_string_pretty(&directive).unwrap()
    );
}

#[test]
fn templates_can_be_replaced_and_a_broken_one_is_refused_with_the_line() {
    let env = TestEnv::new();
    env.publish_release("r1", "production", "fp1").assert().success();
    std::fs::create_dir_all(env.path("mine")).unwrap();
    std::fs::write(
        env.path("mine/report.html"),
        "{% for p in report.pointers %}{{ p.channel }}:{{ p.live.version }}\n{% endfor %}",
    )
    .unwrap();
    env.otapub(&["report", "--out", "site", "--templates", "mine"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(env.path("site/index.html")).unwrap(),
        "production:r1\nproduction:r1\n"
    );
    // A field that does not exist, a syntax error, a stray file: exit 2, nothing written.
    for (file, text, needle) in [
        ("report.html", "a\n\n{{ report.nosuch.field }}", "report.html:3"),
        ("report.html", "a\n{% for %}", "report.html:2"),
        ("style.css", "", "not a template otapub renders"),
    ] {
        let dir = env.path("bad");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
        let out = env
            .otapub(&["report", "--out", "site2", "--templates", "bad"])
            .assert()
            .code(2)
            .get_output()
            .clone();
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
        assert!(!env.path("site2").exists());
    }
}

/// What the page shows of each rollout box, `rollout status --json` and
/// each signed `rollout.json` (DSSE checked with the test key) all say the
/// same: candidate, control, percent, state and candidate buckets.
fn assert_rollouts_as_signed(env: &TestEnv, seen: &Value, when: &str) -> usize {
    let status = env.json(&["rollout", "status"]);
    let mut boxes = 0;
    for p in seen["pointers"].as_array().expect("pointers") {
        let pointer = p["pointer"].as_str().expect("pointer");
        let Some(shown) = p["rolloutBox"].as_object() else {
            assert!(
                !env.exists(&format!("public/{pointer}/rollout.json")),
                "{when}: {pointer} has a rollout the page does not show"
            );
            continue;
        };
        boxes += 1;
        let signed = env.rollout_record(pointer);
        let control = signed["control"]["version"].as_str().unwrap_or("none");
        let want = serde_json::json!({
            "candidate": signed["candidate"]["version"],
            "control": control,
            "percent": signed["percent"].to_string(),
            "state": signed["state"],
            "buckets": signed["buckets"].as_array().expect("buckets").len().to_string(),
        });
        assert_eq!(Value::Object(shown.clone()), want, "{when}: the page's rollout box of {pointer}; signed: {signed}");
        let listed = status
            .as_array()
            .expect("rollout status --json lists rollouts")
            .iter()
            .find(|r| r["pointer"] == pointer)
            .unwrap_or_else(|| panic!("{when}: rollout status lists no rollout on {pointer}: {status}"));
        for field in ["candidate", "control", "percent", "state", "buckets"] {
            assert_eq!(listed[field], signed[field], "{when}: rollout status {field} of {pointer}");
        }
    }
    boxes
}

#[test]
fn after_a_rollout_s_control_is_banned_the_page_and_rollout_status_show_the_control_its_signed_record_names() {
    let env = TestEnv::new();
    for r in ["c1", "c2"] {
        env.publish_release(r, "staging", "fp1").assert().success();
    }
    env.publish_release("cand", "staging", "fp1")
        .args(["--rollout", "30"])
        .assert()
        .success();
    // The control devices outside the buckets get, c2, is banned on iOS:
    // the pointer falls back to a re-stamp of c1, and the signed record
    // names it; Android's rollout keeps c2.
    env.otapub(&["ban", "c2", "--platform", "ios", "--reason", "bad control", "--rollback"])
        .assert()
        .success();
    let signed = env.rollout_record("staging/ios/fp1");
    assert_eq!(signed["control"]["version"], "c1.r1", "{signed}");
    assert_eq!(env.rollout_record("staging/android/fp1")["control"]["version"], "c2");
    let (_, served) = env.read_signed("public/staging/ios/fp1/manifest");
    assert_eq!(served["metadata"]["otapub"]["version"], "c1.r1", "the pointer serves the new control");

    let server = otapub_serve(&env, &[]);
    let seen = browse(&format!("{}/_otapub/", server.base), &env.path("banned-control.png"));
    assert_eq!(assert_rollouts_as_signed(&env, &seen, "after the ban"), 2, "{seen}");

    // Paused: no bucket serves the candidate, and the page says so.
    env.otapub(&["rollout", "pause", "--channel", "staging", "--platform", "ios", "--fingerprint", "fp1"])
        .assert()
        .success();
    let seen = browse(&format!("{}/_otapub/", server.base), &env.path("paused.png"));
    assert_eq!(assert_rollouts_as_signed(&env, &seen, "after the pause"), 2, "{seen}");
}
