//! The operators' page: `otapub report` and `serve`'s `/_otapub/`, loaded in
//! headless Chromium (Debian's, driven by playwright-core from npm; both
//! installed by scripts/install-test-servers.sh) and read back from the DOM
//! the browser built; golden snapshots (insta) of the page and of the
//! manifest and directive JSON the tree serves.

use std::path::Path;
use std::process::Command;

use crate::common::edge::otapub_serve;
use crate::common::*;
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
    assert_page_shows_what_is_served(&env, &seen, "the scene");
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

/// The leaf certificate of a served response's `certificate_chain` part,
/// as OpenSSL reads it (not otapub's parser).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leaf {
    /// `CN=…` (RFC 2253).
    subject: String,
    /// Upper-case hex, as `openssl x509 -serial` prints it.
    serial: String,
    /// In otapub's time format (`2026-11-29T10:00:00.000Z`).
    not_after: String,
}

impl Leaf {
    /// What otapub prints as a leaf: `{subject, serial, notAfter, daysLeft}`.
    fn of_json(v: &Value) -> Option<Leaf> {
        Some(Leaf {
            subject: v["subject"].as_str()?.to_string(),
            serial: v["serial"].as_str()?.to_string(),
            not_after: v["notAfter"].as_str()?.to_string(),
        })
    }

    /// Whole days from `now` to notAfter.
    fn days_left(&self, now: chrono::DateTime<chrono::Utc>) -> i64 {
        let t = chrono::DateTime::parse_from_rfc3339(&self.not_after).expect("notAfter");
        (t.with_timezone(&chrono::Utc) - now).num_days()
    }
}

/// The leaf a served Expo body (`public/…/manifest`) carries, read with
/// the test's own multipart reader and OpenSSL; `cache` by chain text.
fn served_leaf(env: &TestEnv, key: &str, cache: &mut std::collections::BTreeMap<String, Leaf>) -> Leaf {
    let (body, ct) = env.object(key).unwrap_or_else(|| panic!("{key} is missing"));
    let parts = parse_multipart(&ct, &body);
    let chain = parts
        .iter()
        .find(|(h, _)| part_name(h) == "certificate_chain")
        .unwrap_or_else(|| panic!("{key} has no certificate_chain part"));
    let pem = String::from_utf8(chain.1.clone()).expect("a PEM chain");
    if let Some(leaf) = cache.get(&pem) {
        return leaf.clone();
    }
    let file = env.path("served-chain.pem");
    std::fs::write(&file, &pem).unwrap();
    // `openssl x509` reads the first certificate of the file: the leaf.
    let out = Command::new("openssl")
        .args([
            "x509", "-noout", "-nameopt", "RFC2253", "-subject", "-serial", "-enddate", "-in",
        ])
        .arg(&file)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", stderr(&out));
    let text = stdout(&out);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .to_string()
    };
    let not_after = chrono::NaiveDateTime::parse_from_str(&field("notAfter"), "%b %e %H:%M:%S %Y GMT")
        .unwrap_or_else(|e| panic!("notAfter in {text}: {e}"));
    let leaf = Leaf {
        subject: field("subject"),
        serial: field("serial"),
        not_after: not_after.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    };
    cache.insert(pem, leaf.clone());
    leaf
}

/// The lines `otapub status` prints about pointer `p`, up to the next pointer.
fn status_block<'a>(text: &'a str, p: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&format!("{p}  serves ")));
    let head = lines.next().unwrap_or_else(|| panic!("status names no {p}:\n{text}"));
    std::iter::once(head)
        .chain(lines.take_while(|l| l.starts_with(' ')))
        .collect()
}

/// The `<article>` of pointer `p` on the page.
fn page_article<'a>(page: &'a str, p: &str) -> &'a str {
    let at = page
        .find(&format!("data-pointer=\"{p}\""))
        .unwrap_or_else(|| panic!("the page has no article for {p}"));
    let end = page[at..].find("</article>").map_or(page.len(), |e| at + e);
    &page[at..end]
}

/// Every pointer (`production/android/fp`, …) and its rollout buckets'
/// keys, from the store's `public/` listing.
fn served_responses(env: &TestEnv) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for key in env.keys("public/") {
        let Some(path) = key.strip_prefix("public/").and_then(|k| k.strip_suffix("/manifest")) else {
            continue;
        };
        if path.starts_with("updates/") {
            continue;
        }
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            [_, _, _] => out.entry(path.to_string()).or_default(),
            [c, p, f, "rollout", _] => out.entry(format!("{c}/{p}/{f}")).or_default(),
            _ => panic!("unexpected served object {key}"),
        }
        .push(key.clone());
    }
    out
}

#[test]
fn status_report_and_verify_show_the_leaf_each_served_response_carries_through_two_refreshes() {
    let env = TestEnv::new();
    env.expo_leaves();
    env.expo_leaf("root", 90, "keys/leaf-c").assert().success();
    let with = |leaf: &str| {
        [
            "--expo-key".to_string(),
            format!("keys/{leaf}.key"),
            "--expo-chain".to_string(),
            format!("keys/{leaf}.pem"),
        ]
    };
    // An update, a rollBackToEmbedded directive, a noUpdateAvailable
    // directive (the only package banned) and a running rollout.
    for r in ["r1", "r2"] {
        env.publish_release(r, "production", "fp")
            .args(with("leaf-a"))
            .assert()
            .success();
    }
    env.rollback_to_embedded("android")
        .args(with("leaf-a"))
        .assert()
        .success();
    env.publish_release("b1", "beta", "fp")
        .args(with("leaf-a"))
        .assert()
        .success();
    env.otapub(&["ban", "b1", "--platform", "ios", "--reason", "the only one"])
        .args(with("leaf-a"))
        .assert()
        .success();
    env.publish_release("s1", "staging", "fp")
        .args(with("leaf-a"))
        .assert()
        .success();
    env.publish_release("s2", "staging", "fp")
        .args(["--rollout", "40"])
        .args(with("leaf-a"))
        .assert()
        .success();

    use chrono::DurationRound;
    let now = chrono::Utc::now().duration_trunc(chrono::Duration::seconds(1)).unwrap();
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut cache = Default::default();
    for (round, leaf) in ["leaf-a", "leaf-b", "leaf-c"].into_iter().enumerate() {
        if round > 0 {
            env.otapub(&["refresh"]).args(with(leaf)).assert().success();
        }
        let served = served_responses(&env);
        let kinds: Vec<String> = served
            .keys()
            .map(|p| {
                let (name, doc) = env.read_signed(&format!("public/{p}/manifest"));
                format!("{name} {}", doc["type"].as_str().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "manifest ",
                "directive noUpdateAvailable",
                "directive rollBackToEmbedded",
                "manifest ",
                "manifest ",
                "manifest "
            ],
            "{served:?}"
        );
        let st = env
            .otapub_at(&at, &["status", "--json"])
            .assert()
            .success()
            .get_output()
            .clone();
        let st: Value = serde_json::from_slice(&st.stdout).unwrap();
        let text = stdout(&env.otapub_at(&at, &["status"]).assert().success().get_output().clone());
        env.otapub_at(&at, &["report", "--out", "site"]).assert().success();
        let report: Value = serde_json::from_slice(&std::fs::read(env.path("site/report.json")).unwrap()).unwrap();
        let page = std::fs::read_to_string(env.path("site/index.html")).unwrap();
        let verified = env
            .otapub_at(&at, &["verify", "--trust", "keys/throwaway.pub", "--json"])
            .assert()
            .success()
            .get_output()
            .clone();
        let verified: Value = serde_json::from_slice(&verified.stdout).unwrap();
        let verify_text = stdout(
            &env.otapub_at(&at, &["verify", "--trust", "keys/throwaway.pub"])
                .assert()
                .success()
                .get_output()
                .clone(),
        );

        let find = |list: &Value, p: &str| -> Value {
            list.as_array()
                .expect("pointers")
                .iter()
                .find(|x| format!("{}/{}/{}", x["channel"], x["platform"], x["fingerprint"]).replace('"', "") == p)
                .unwrap_or_else(|| panic!("no {p} in {list}"))
                .clone()
        };
        let mut leaves_by_response = std::collections::BTreeMap::new();
        for l in verified["servedLeaves"]
            .as_array()
            .expect("verify --json lists servedLeaves")
        {
            let path = l["response"].as_str().expect("response").to_string();
            assert!(leaves_by_response.insert(path, l.clone()).is_none(), "{verified}");
        }
        for (p, keys) in &served {
            let pointer_key = format!("public/{p}/manifest");
            let want = served_leaf(&env, &pointer_key, &mut cache);
            assert_eq!(
                want.subject,
                format!("CN={leaf}"),
                "{p}: the scene serves {leaf} (round {round})"
            );
            let days = want.days_left(now);
            let ctx = format!("{p} after round {round} ({leaf})");

            let s = find(&st["pointers"], p);
            assert_eq!(
                Leaf::of_json(&s["expoLeaf"]),
                Some(want.clone()),
                "status --json, {ctx}: {s}"
            );
            assert_eq!(s["expoLeaf"]["daysLeft"], days, "status --json, {ctx}");
            let r = find(&report["pointers"], p);
            assert_eq!(Leaf::of_json(&r["expoLeaf"]), Some(want.clone()), "report.json, {ctx}");
            assert_eq!(r["expoLeaf"]["daysLeft"], days, "report.json, {ctx}");
            let block = status_block(&text, p).join("\n");
            let line = format!(
                "signed by {} (serial {}) until {} ({days} days left)",
                want.subject, want.serial, want.not_after
            );
            assert!(block.contains(&line), "status, {ctx}: no {line:?} in\n{block}");
            let article = page_article(&page, p);
            for needle in [&want.subject, &want.serial, &want.not_after] {
                assert!(
                    article.contains(needle.as_str()),
                    "the page, {ctx}: no {needle} in\n{article}"
                );
            }
            for key in keys {
                let response = key.strip_prefix("public/").unwrap();
                let leaf_here = served_leaf(&env, key, &mut cache);
                let v = leaves_by_response
                    .get(response)
                    .unwrap_or_else(|| panic!("verify --json, {ctx}: no leaf for {response}"));
                assert_eq!(
                    Leaf::of_json(v),
                    Some(leaf_here.clone()),
                    "verify --json, {response}, {ctx}"
                );
                assert_eq!(v["daysLeft"], leaf_here.days_left(now), "verify --json, {response}");
                if key.contains("/rollout/") {
                    // The candidate's buckets: status and the page show their leaf with the rollout.
                    assert_eq!(
                        Leaf::of_json(&s["rollout"]["expoLeaf"]),
                        Some(leaf_here.clone()),
                        "status --json rollout, {ctx}"
                    );
                    assert_eq!(
                        Leaf::of_json(&r["rollout"]["expoLeaf"]),
                        Some(leaf_here.clone()),
                        "report.json rollout, {ctx}"
                    );
                }
            }
            assert!(
                verify_text
                    .lines()
                    .any(|l| l.contains(&want.subject) && l.contains(&want.serial) && l.contains(p.as_str())),
                "verify, {ctx}: no line names {p} with its leaf:\n{verify_text}"
            );
        }
        assert_eq!(
            leaves_by_response.len(),
            served.values().map(Vec::len).sum::<usize>(),
            "verify --json lists the leaf of every served response, no more"
        );
    }
}

/// Each pointer the store serves is on the page, showing what its signed
/// objects serve — the update (version and id from the manifest), a roll
/// back to embedded, or no update — and each rollout box what its signed
/// `rollout.json` says.
fn assert_page_shows_what_is_served(env: &TestEnv, seen: &Value, when: &str) {
    let shown = seen["pointers"].as_array().expect("pointers");
    let on_page: Vec<&str> = shown.iter().filter_map(|p| p["pointer"].as_str()).collect();
    let served = served_responses(env);
    assert_eq!(
        on_page.iter().copied().collect::<std::collections::BTreeSet<_>>(),
        served.keys().map(String::as_str).collect(),
        "{when}: the page's pointers"
    );
    for p in shown {
        let pointer = p["pointer"].as_str().expect("pointer");
        let (name, doc) = env.read_signed(&format!("public/{pointer}/manifest"));
        match (name.as_str(), doc["type"].as_str()) {
            ("manifest", _) => {
                assert_eq!(
                    p["live"], doc["metadata"]["otapub"]["version"],
                    "{when}: {pointer}: {p}"
                );
                assert_eq!(p["liveId"], doc["id"], "{when}: {pointer}: {p}");
            }
            ("directive", Some("rollBackToEmbedded")) => {
                let line = p["liveLine"].as_str().unwrap_or("");
                assert!(line.contains("roll back to embedded"), "{when}: {pointer}: {p}");
                assert_eq!(p["liveId"], Value::Null, "{when}: {pointer}: {p}");
            }
            ("directive", Some("noUpdateAvailable")) => {
                assert_eq!(p["live"], "no update", "{when}: {pointer}: {p}");
            }
            other => panic!("{when}: {pointer} serves {other:?}"),
        }
    }
    assert_rollouts_as_signed(env, seen, when);
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
        assert_eq!(
            Value::Object(shown.clone()),
            want,
            "{when}: the page's rollout box of {pointer}; signed: {signed}"
        );
        let listed = status
            .as_array()
            .expect("rollout status --json lists rollouts")
            .iter()
            .find(|r| r["pointer"] == pointer)
            .unwrap_or_else(|| panic!("{when}: rollout status lists no rollout on {pointer}: {status}"));
        for field in ["candidate", "control", "percent", "state", "buckets"] {
            assert_eq!(
                listed[field], signed[field],
                "{when}: rollout status {field} of {pointer}"
            );
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
    env.otapub(&[
        "ban",
        "c2",
        "--platform",
        "ios",
        "--reason",
        "bad control",
        "--rollback",
    ])
    .assert()
    .success();
    let signed = env.rollout_record("staging/ios/fp1");
    assert_eq!(signed["control"]["version"], "c1.r1", "{signed}");
    assert_eq!(env.rollout_record("staging/android/fp1")["control"]["version"], "c2");
    let (_, served) = env.read_signed("public/staging/ios/fp1/manifest");
    assert_eq!(
        served["metadata"]["otapub"]["version"], "c1.r1",
        "the pointer serves the new control"
    );

    let server = otapub_serve(&env, &[]);
    let seen = browse(&format!("{}/_otapub/", server.base), &env.path("banned-control.png"));
    assert_eq!(assert_rollouts_as_signed(&env, &seen, "after the ban"), 2, "{seen}");
    assert_page_shows_what_is_served(&env, &seen, "after the ban");

    // Paused: no bucket serves the candidate, and the page says so.
    env.otapub(&[
        "rollout",
        "pause",
        "--channel",
        "staging",
        "--platform",
        "ios",
        "--fingerprint",
        "fp1",
    ])
    .assert()
    .success();
    let seen = browse(&format!("{}/_otapub/", server.base), &env.path("paused.png"));
    assert_eq!(assert_rollouts_as_signed(&env, &seen, "after the pause"), 2, "{seen}");
    assert_page_shows_what_is_served(&env, &seen, "after the pause");
}

/// A log line as `otapub serve --access-log` writes it: a check-in on
/// production/ios/fp at `time`.
fn check_in_line(time: chrono::DateTime<chrono::Utc>, id: &str, current: &str, failed: Option<&str>) -> String {
    let mut line = serde_json::json!({
        "time": time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "method": "GET",
        "path": "/production/ios/fp/manifest",
        "status": 200,
        "eas-client-id": id,
        "expo-current-update-id": current,
    });
    if let Some(f) = failed {
        line["expo-recent-failed-update-ids"] = format!("\"{f}\"").into();
    }
    line.to_string()
}

#[test]
fn insights_on_the_page_in_a_real_browser_adoption_chart_failure_rates_and_bytes_saved() {
    let env = TestEnv::new();
    env.publish_release("r1", "production", "fp").assert().success();
    let r1 = env.pointer("production", "ios", "fp")["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.publish_release("r2", "production", "fp")
        .args(["--platform", "ios", "--rollout", "50"])
        .assert()
        .success();
    let candidate = env.rollout_record("production/ios/fp")["candidate"].clone();
    let r2 = candidate["id"].as_str().unwrap().to_string();
    let ids = random_client_ids(17);
    let now = chrono::Utc::now();
    let day = |back: i64| now - chrono::Duration::days(back);
    let mut lines = Vec::new();
    // Two days ago 10 devices on r1; yesterday 5 more take the candidate
    // r2; today 10 run r2 while 2 report it failed (back on r1).
    for id in &ids[..10] {
        lines.push(check_in_line(day(2), id, &r1, None));
        lines.push(check_in_line(day(1), id, &r1, None));
    }
    for id in &ids[10..15] {
        lines.push(check_in_line(day(1), id, &r2, None));
    }
    for id in &ids[..5] {
        lines.push(check_in_line(day(0), id, &r1, None));
    }
    for id in &ids[5..15] {
        lines.push(check_in_line(day(0), id, &r2, None));
    }
    for id in &ids[15..] {
        lines.push(check_in_line(day(0), id, &r1, Some(&r2)));
    }
    std::fs::write(env.path("access.log"), lines.join("\n")).unwrap();
    env.otapub(&["insights", "ingest", "--format", "otapub", "access.log"])
        .assert()
        .success();

    let served = otapub_serve(&env, &[]);
    let shot = env.path("insights.png");
    let seen = browse(&format!("{}/_otapub/", served.base), &shot);
    if let Some(dir) = std::env::var_os("OTAPUB_SCREENSHOT_DIR") {
        std::fs::copy(&shot, Path::new(&dir).join("insights.png")).expect("keep the screenshot");
    }
    for list in ["consoleErrors", "pageErrors", "foreignRequests", "failedRequests"] {
        assert_eq!(seen[list], serde_json::json!([]), "{list}: {seen}");
    }
    let ios = seen["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pointer"] == "production/ios/fp")
        .expect("the ios pointer");
    let insights = &ios["insights"];
    assert!(
        insights["svgWidth"].as_f64().unwrap() > 100.0,
        "the chart is drawn: {insights:#}"
    );
    let chart = insights["chart"].as_array().unwrap();
    let line = |label: &str| {
        chart
            .iter()
            .find(|l| l["label"] == label)
            .unwrap_or_else(|| panic!("{label}: {insights:#}"))
    };
    assert_eq!(chart.len(), 2);
    assert_eq!(line("r1")["last"], 7, "5 on r1 and 2 back on it after r2 failed");
    assert_eq!(line("r2")["last"], 10);
    assert!(chart.iter().all(|l| l["drawn"] == true));
    // Three days, one point each; r2 had no device two days ago.
    assert_eq!(line("r2")["points"].as_str().unwrap().split(' ').count(), 3);
    assert_eq!(insights["failures"]["candidate"], "16.7 %", "2 of 12: {insights:#}");
    assert!(
        insights["failures"]["control"].as_str().unwrap().starts_with("0"),
        "{insights:#}"
    );
    assert!(
        insights["text"].as_str().unwrap().contains("2 of 12 devices"),
        "{insights:#}"
    );
    // The JSON the page shows says the same.
    let report: Value = serde_json::from_str(&reqwest_get(&format!("{}/_otapub/report.json", served.base))).unwrap();
    let p = report["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "ios")
        .unwrap();
    assert_eq!(p["insights"]["candidate"]["failed"], 2);
    assert_eq!(p["insights"]["candidate"]["devices"], 10);
    // Android had no log line: no insights box.
    let android = seen["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pointer"] == "production/android/fp")
        .unwrap();
    assert_eq!(android["insights"], Value::Null);
}
