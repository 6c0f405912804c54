//! `otapub insights ingest` and `otapub insights`: devices drive a real
//! `otapub serve` with the stock client's headers, the access log it wrote
//! is ingested (plain and gzip'd, twice), and every figure is compared with
//! what the devices did; a CloudFront standard log (no request headers)
//! gives downloads and leaves device figures null.

use std::io::Write;

use crate::common::edge::{ask, otapub_serve};
use crate::common::*;
use serde_json::Value;

const P: &str = "production/ios/1.0.0";

/// The update id and launch-asset path the pointer serves now.
fn served(env: &TestEnv) -> (String, String) {
    let doc = env.pointer("production", "ios", "1.0.0");
    let url = doc["launchAsset"]["url"].as_str().unwrap();
    let path = &url[url.find("/assets/").unwrap()..];
    (doc["id"].as_str().unwrap().to_string(), path.to_string())
}

fn row<'a>(rows: &'a Value, update: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["update_id"] == update)
        .unwrap_or_else(|| panic!("no row for {update} in {rows:#}"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn serve_log_gives_downloads_devices_and_failures() {
    let env = TestEnv::new();
    env.publish_release("r1", "production", "1.0.0").assert().success();
    let (r1, _) = served(&env);
    env.publish_release("r2", "production", "1.0.0").assert().success();
    let (r2, r2_asset) = served(&env);
    let server = otapub_serve(&env, &["--access-log", "access.log"]);
    let ids = random_client_ids(30);
    let check = |devices: &[String], current: &str, failed: Option<&str>| {
        let requests: Vec<Vec<(&str, String)>> = devices
            .iter()
            .map(|id| {
                let mut h = vec![
                    ("eas-client-id", id.clone()),
                    ("expo-current-update-id", current.to_string()),
                    ("expo-platform", "ios".to_string()),
                ];
                h.extend(failed.map(|f| ("expo-recent-failed-update-ids", format!("\"{f}\""))));
                h
            })
            .collect();
        for a in ask(&server.base, &format!("/{P}/manifest"), &requests) {
            assert_eq!(a.status, 200);
        }
    };
    // 10 devices stay on r1; 20 take r2 (download its launch asset, then
    // check in running it); 5 of those fail to launch it and report so
    // while back on r1.
    let (stay, take) = ids.split_at(10);
    check(&ids, &r1, None);
    let downloads: Vec<Vec<(&str, String)>> = take
        .iter()
        .map(|id| {
            vec![
                ("eas-client-id", id.clone()),
                ("expo-current-update-id", r1.clone()),
                ("expo-requested-update-id", r2.clone()),
            ]
        })
        .collect();
    let full = ask(&server.base, &r2_asset, &downloads);
    assert!(full.iter().all(|a| a.status == 200));
    let size = full[0].body.len() as u64;
    check(take, &r2, None);
    check(&take[..5], &r1, Some(&r2));
    check(stay, &r1, None);
    drop(server);

    let mut log = std::fs::read(env.path("access.log")).unwrap();
    let lines = log.iter().filter(|b| **b == b'\n').count() as u64;
    assert_eq!(lines, 30 + 20 + 20 + 5 + 10);
    log.extend_from_slice(b"{\"time\": \"yesterday\"}\nnot json at all\n");
    std::fs::create_dir_all(env.path("logs/gz")).unwrap();
    std::fs::write(env.path("logs/access.log"), &log).unwrap();
    std::fs::write(env.path("logs/gz/access.log.gz"), gzip(&log)).unwrap();

    let out = env.json(&["insights", "ingest", "--format", "otapub", "logs"]);
    assert_eq!(out["read"], lines + 2, "{out:#}");
    assert_eq!(out["skipped"], 2);
    assert_eq!(out["used"], lines, "every check-in and launch-asset download counts");
    let files = out["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        files.iter().filter(|f| f["duplicate"] == true).count(),
        1,
        "the gzip'd copy has the same bytes: counted once"
    );

    let rows = env.json(&["insights"]);
    let r2_row = row(&rows, &r2);
    assert_eq!(r2_row["channel"], "production");
    assert_eq!(r2_row["platform"], "ios");
    assert_eq!(r2_row["runtime_version"], "1.0.0");
    assert_eq!(r2_row["version"], "r2");
    assert_eq!(r2_row["downloads"], 20);
    assert_eq!(r2_row["patch_downloads"], 0);
    assert_eq!(r2_row["full_bytes"], 20 * size);
    assert_eq!(
        r2_row["devices"], 15,
        "5 of 20 fell back to r1 in their latest check-in"
    );
    assert_eq!(r2_row["failed_devices"], 5);
    let r1_row = row(&rows, &r1);
    assert_eq!(r1_row["version"], "r1");
    assert_eq!(r1_row["downloads"], 0);
    assert_eq!(r1_row["devices"], 15);
    assert_eq!(r1_row["failed_devices"], 0);

    // The same logs again: nothing counts twice, and nothing is written.
    env.assert_writes_nothing(|| {
        let again = env.json(&["insights", "ingest", "--format", "otapub", "logs/gz/access.log.gz"]);
        assert_eq!(again["read"], 0);
        assert_eq!(again["files"][0]["duplicate"], true);
    });
    assert_eq!(env.json(&["insights"]), rows);
    // The table says the same.
    let table = stdout(&env.otapub(&["insights"]).output().unwrap());
    assert!(table.contains(&r2) && table.contains("production/ios/1.0.0"), "{table}");
}

#[test]
fn cloudfront_standard_logs_give_downloads_and_no_device_figures() {
    let env = TestEnv::new();
    env.publish_release("r1", "production", "1.0.0").assert().success();
    let (r1, asset) = served(&env);
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let fields = "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end\n";
    let line = |path: &str, status: u16, bytes: u64| {
        format!(
            "{today}\t10:00:00\tLAX1-C1\t{bytes}\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t{path}\t{status}\t-\texpo-updates\t-\t-\tHit\tabc==\tupdates.example.com\thttps\t250\t0.001\t-\tTLSv1.3\tTLS_AES_128_GCM_SHA256\tHit\tHTTP/2.0\t-\t-\t11040\t0.001\tHit\tapplication/javascript\t{bytes}\t-\t-\n"
        )
    };
    let mut log = fields.to_string();
    for _ in 0..7 {
        log.push_str(&line(&asset, 200, 300));
    }
    log.push_str(&line(&asset, 304, 0));
    log.push_str(&line(&format!("/{P}/manifest"), 200, 900));
    log.push_str("garbage\n");
    std::fs::write(env.path("E2EXAMPLE.2026-12-06-10.abcdef.gz"), gzip(log.as_bytes())).unwrap();
    let out = env.json(&[
        "insights",
        "ingest",
        "--format",
        "cloudfront",
        "E2EXAMPLE.2026-12-06-10.abcdef.gz",
    ]);
    assert_eq!(
        (out["read"].as_u64(), out["used"].as_u64(), out["skipped"].as_u64()),
        (Some(10), Some(7), Some(1))
    );
    assert_eq!(out["devices_known"], false);
    let rows = env.json(&["insights", "--days", "1"]);
    let r = row(&rows, &r1);
    assert_eq!(r["downloads"], 7);
    assert_eq!(r["full_bytes"], 7 * 300);
    assert_eq!(
        r["devices"],
        Value::Null,
        "standard logs record no eas-client-id: never 0, never guessed"
    );
    assert_eq!(r["failed_devices"], Value::Null);
}

#[test]
fn bad_input_writes_nothing() {
    let env = TestEnv::new();
    env.publish_release("r1", "production", "1.0.0").assert().success();
    env.assert_writes_nothing(|| {
        env.refused(
            &["insights", "ingest", "--format", "otapub", "no-such.log"],
            "no-such.log: cannot read it",
        );
    });
    let err = stderr(
        &env.otapub(&["insights", "ingest", "--format", "apache", "x"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("nginx, otapub, cloudfront, cloudfront-realtime, cloudflare, s3"),
        "{err}"
    );
}

/// One Cloudflare Logpush line (custom fields RequestHeaders) of a device
/// checking in on `P`.
fn cloudflare_check_in(id: &str, current: &str, failed: Option<&str>) -> String {
    let mut headers = serde_json::json!({"eas-client-id": id, "expo-current-update-id": current});
    if let Some(f) = failed {
        headers["expo-recent-failed-update-ids"] = format!("\"{f}\"").into();
    }
    serde_json::json!({
        "ClientRequestHost": "updates.example.com",
        "ClientRequestMethod": "GET",
        "ClientRequestPath": format!("/{P}/manifest"),
        "EdgeResponseBytes": 1870,
        "EdgeResponseStatus": 200,
        "EdgeStartTimestamp": chrono::Utc::now().timestamp_nanos_opt().unwrap(),
        "RayID": "8f1c2d3e4f5a6b7c",
        "RequestHeaders": headers,
    })
    .to_string()
}

#[test]
fn the_gate_reads_every_format_and_what_insights_stored() {
    let env = TestEnv::new();
    env.publish_release("r1", "production", "1.0.0").assert().success();
    env.publish_release("r2", "production", "1.0.0")
        .args(["--platform", "ios", "--rollout", "50"])
        .assert()
        .success();
    let candidate = env.rollout_record(P)["candidate"]["id"].as_str().unwrap().to_string();
    let advance = |extra: &[&str]| {
        let mut c = env.otapub(&[
            "rollout",
            "advance",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "1.0.0",
        ]);
        c.args(extra);
        c
    };
    let ids = random_client_ids(30);
    // 1 of 30 devices on the candidate reports it failed: 3 % < 5 %.
    let first: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| cloudflare_check_in(id, &candidate, (i == 0).then_some(candidate.as_str())))
        .collect();
    std::fs::write(env.path("cf-1.log.gz"), gzip(first.join("\n").as_bytes())).unwrap();
    // A log the gate cannot read as the format given is refused, with the
    // line or the count, and the rollout stays where it was.
    std::fs::write(env.path("bad.jsonl"), format!("{}\n{{not json\n", first[0])).unwrap();
    for (log, format, says) in [
        ("bad.jsonl", "otapub", "bad.jsonl line 2: not a JSON object"),
        (
            "cf-1.log.gz",
            "cloudfront-realtime",
            "30 of 30 lines are not cloudfront-realtime log lines",
        ),
    ] {
        let out = advance(&["--gate-log", log, "--gate-format", format]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert_eq!(env.rollout_record(P)["percent"], 50);
    }
    env.refused(
        &[
            "rollout",
            "advance",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "1.0.0",
            "--gate-log",
            "cf-1.log.gz",
            "--gate-format",
            "cloudfront",
        ],
        "record no request headers",
    );
    advance(&["--gate-log", "cf-1.log.gz", "--gate-format", "cloudflare"])
        .assert()
        .success();
    assert_eq!(env.rollout_record(P)["percent"], 60);
    let rs = env.json(&["rollout", "status"]);
    assert_eq!(
        (rs[0]["gate"]["failed"].as_u64(), rs[0]["gate"]["total"].as_u64()),
        (Some(1), Some(30))
    );

    // Later, 5 more fail; the logs are ingested and the gate reads the index: 6 of 30.
    let second: Vec<String> = ids[1..6]
        .iter()
        .map(|id| cloudflare_check_in(id, &candidate, Some(&candidate)))
        .collect();
    std::fs::write(env.path("cf-2.log"), second.join("\n")).unwrap();
    env.otapub(&[
        "insights",
        "ingest",
        "--format",
        "cloudflare",
        "cf-1.log.gz",
        "cf-2.log",
    ])
    .assert()
    .success();
    let rows = env.json(&["insights"]);
    assert_eq!(row(&rows, &candidate)["failed_devices"], 6);
    advance(&["--gate-insights"]).assert().code(1);
    let rs = env.json(&["rollout", "status"]);
    assert_eq!(rs[0]["state"], "aborted");
    assert_eq!(
        (rs[0]["gate"]["failed"].as_u64(), rs[0]["gate"]["total"].as_u64()),
        (Some(6), Some(30))
    );
}

/// nginx from the shipped template (master as root, workers as www-data)
/// serving a tree with a launch-asset patch; 40 devices with the stock
/// client's headers, some staying, some taking the new update in full or as
/// a patch, some reporting it failed; the log nginx wrote is ingested and
/// every figure compared with what the devices did.
#[test]
fn nginx_log_of_the_shipped_template_gives_what_the_devices_did() {
    let env = TestEnv::new();
    for (v, dist) in [("v1", "dist1"), ("v2", "dist2")] {
        env.publish_export(&std::path::Path::new(SUCCESSIVE).join(dist), v)
            .assert()
            .success();
    }
    let doc = |key: &str| env.read_signed(key).1;
    let (d1, d2) = (
        doc("public/updates/v1/ios/manifest"),
        doc("public/updates/v2/ios/manifest"),
    );
    let (v1, v2) = (
        d1["id"].as_str().unwrap().to_string(),
        d2["id"].as_str().unwrap().to_string(),
    );
    let url = d2["launchAsset"]["url"].as_str().unwrap();
    let asset = url[url.find("/assets/").unwrap()..].to_string();
    let patch_size = std::fs::metadata(env.store().join(format!("public/patches/{v2}/{v1}")))
        .expect("otapub made the patch from v1 to v2")
        .len();
    let full_size = std::fs::metadata(env.store().join(format!("public{asset}")))
        .unwrap()
        .len();

    let nginx = crate::common::edge::nginx_local(&env);
    let pointer = "/production/ios/fp/manifest";
    let ids = random_client_ids(40);
    let check = |devices: &[String], current: &str, failed: Option<&str>| {
        let requests: Vec<Vec<(&str, String)>> = devices
            .iter()
            .map(|id| {
                let mut h = vec![
                    ("eas-client-id", id.clone()),
                    ("expo-current-update-id", current.to_string()),
                    ("expo-platform", "ios".to_string()),
                    ("expo-protocol-version", "1".to_string()),
                ];
                h.extend(failed.map(|f| ("expo-recent-failed-update-ids", format!("\"{f}\""))));
                h
            })
            .collect();
        for a in ask(&nginx.base, pointer, &requests) {
            assert_eq!(a.status, 200);
        }
    };
    check(&ids, &v1, None);
    // 24 take v2: 12 ask for a patch (SDK 55+), 12 download it in full.
    let (stay, take) = ids.split_at(16);
    let downloads: Vec<Vec<(&str, String)>> = take
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut h = vec![
                ("eas-client-id", id.clone()),
                ("expo-current-update-id", v1.clone()),
                ("expo-requested-update-id", v2.clone()),
            ];
            if i % 2 == 0 {
                h.push(("a-im", "bsdiff".to_string()));
            }
            h
        })
        .collect();
    let answers = ask(&nginx.base, &asset, &downloads);
    let patched = answers
        .iter()
        .filter(|a| a.headers.get("im").is_some_and(|v| v == "bsdiff"))
        .count();
    assert_eq!(patched, 12, "nginx serves the patch to those that ask");
    assert!(answers.iter().all(|a| a.status == 200 || a.status == 226));
    check(take, &v2, None);
    // 6 of them fail to launch v2 and report it, back on v1.
    check(&take[..6], &v1, Some(&v2));
    drop(nginx);

    let out = env.json(&["insights", "ingest", "--format", "nginx", "nginx-local/access.log"]);
    let logged = 40 + 24 + 24 + 6;
    assert_eq!(
        (out["read"].as_u64(), out["used"].as_u64(), out["skipped"].as_u64()),
        (Some(logged), Some(logged), Some(0)),
        "{out:#}"
    );
    let rows = env.json(&["insights"]);
    let r2 = row(&rows, &v2);
    assert_eq!(r2["version"], "v2");
    assert_eq!(r2["downloads"], 24);
    assert_eq!(r2["patch_downloads"], 12);
    assert_eq!(r2["patch_bytes"], 12 * patch_size);
    assert_eq!(r2["patch_full_bytes"], 12 * full_size);
    assert_eq!(r2["full_bytes"], 12 * full_size);
    assert_eq!(r2["devices"], 18);
    assert_eq!(r2["failed_devices"], 6);
    let r1 = row(&rows, &v1);
    assert_eq!(r1["devices"], stay.len() as u64 + 6);
    assert_eq!(r1["failed_devices"], 0);
    assert_eq!(r1["downloads"], 0);
}

/// A check-in on production/ios/1.0.0, as `otapub serve --access-log` logs it.
fn serve_line(time: chrono::DateTime<chrono::Utc>, path: &str, id: &str, current: &str) -> String {
    serde_json::json!({
        "time": time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "method": "GET", "path": path, "status": 200,
        "eas-client-id": id, "expo-current-update-id": current,
    })
    .to_string()
}

#[test]
fn a_backfill_counts_old_days_in_full_and_later_logs_only_change_the_days_still_kept() {
    let env = TestEnv::new();
    env.publish_release("r1", "production", "1.0.0").assert().success();
    let (r1, asset) = served(&env);
    let now = chrono::Utc::now();
    let day = |back: i64| now - chrono::Duration::days(back);
    let check = format!("/{P}/manifest");
    let ids = random_client_ids(12);
    let ingest = |name: &str, lines: &[String]| {
        std::fs::write(env.path(name), lines.join("\n")).unwrap();
        env.otapub(&["insights", "ingest", "--format", "otapub", name])
            .assert()
            .success();
    };
    let figures = |back: i64| -> (u64, Option<u64>) {
        let d = day(back).format("%Y-%m-%d").to_string();
        let rows = env.json(&["insights", "--days", "30"]);
        let r = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["day"] == d.as_str() && r["update_id"] == r1.as_str());
        r.map_or((0, None), |r| (r["downloads"].as_u64().unwrap(), r["devices"].as_u64()))
    };
    // A first ingest of ten days ago and today: both counted in full.
    let mut a: Vec<String> = ids[..4].iter().map(|id| serve_line(day(10), &check, id, &r1)).collect();
    a.extend(ids[4..6].iter().map(|id| serve_line(day(0), &check, id, &r1)));
    ingest("a.log", &a);
    assert_eq!(figures(10), (0, Some(4)));
    assert_eq!(figures(0), (0, Some(2)));
    // A late log of ten days ago: its download counts, its devices no longer
    // change a day whose device rows are gone.
    let mut b: Vec<String> = ids[6..9]
        .iter()
        .map(|id| serve_line(day(10), &check, id, &r1))
        .collect();
    b.push(serve_line(day(10), &asset, &ids[6], &r1));
    ingest("b.log", &b);
    assert_eq!(figures(10), (1, Some(4)));
    // Yesterday is still kept: two logs of it add up.
    ingest("c.log", &[serve_line(day(1), &check, &ids[9], &r1)]);
    ingest("d.log", &[serve_line(day(1), &check, &ids[10], &r1)]);
    assert_eq!(figures(1), (0, Some(2)));
}

/// S3 server access logs see what reached the bucket: the patch object
/// itself (`patches/<requested>/<base>`) and the full asset, under the
/// store's prefix. No request headers: device figures null.
#[test]
fn s3_access_logs_count_patch_objects_and_assets_under_a_prefix() {
    let env = TestEnv::new();
    for (v, dist) in [("v1", "dist1"), ("v2", "dist2")] {
        env.publish_export(&std::path::Path::new(SUCCESSIVE).join(dist), v)
            .assert()
            .success();
    }
    let doc = |key: &str| env.read_signed(key).1;
    let (d1, d2) = (
        doc("public/updates/v1/ios/manifest"),
        doc("public/updates/v2/ios/manifest"),
    );
    let (v1, v2) = (d1["id"].as_str().unwrap(), d2["id"].as_str().unwrap());
    let url = d2["launchAsset"]["url"].as_str().unwrap();
    let hex = &url[url.find("/assets/").unwrap() + 8..];
    let patch_size = std::fs::metadata(env.store().join(format!("public/patches/{v2}/{v1}")))
        .unwrap()
        .len();
    let full_size = std::fs::metadata(env.store().join(format!("public/assets/{hex}")))
        .unwrap()
        .len();
    let when = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
    let line = |key: &str, status: u16, bytes: u64| {
        format!(
            "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be my-bucket [{when}] 192.0.2.3 - 3E57427F3EXAMPLE REST.GET.OBJECT {key} \"GET /my-bucket/{key} HTTP/1.1\" {status} - {bytes} {bytes} 70 10 \"-\" \"Amazon CloudFront\" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader my-bucket.s3.eu-west-1.amazonaws.com TLSV1.2 - -"
        )
    };
    let log = [
        line(&format!("ota/public/patches/{v2}/{v1}"), 200, patch_size),
        line(&format!("ota/public/assets/{hex}"), 200, full_size),
        line(&format!("ota/public/assets/{hex}"), 403, 243),
        line("ota/public/production/ios/fp/manifest", 200, 900),
    ]
    .join("\n");
    std::fs::write(env.path("2026-12-06-10-00-00-ABCDEF0123456789"), log).unwrap();
    let out = env.json(&[
        "insights",
        "ingest",
        "--format",
        "s3",
        "2026-12-06-10-00-00-ABCDEF0123456789",
    ]);
    assert_eq!(
        (out["read"].as_u64(), out["used"].as_u64(), out["skipped"].as_u64()),
        (Some(4), Some(2), Some(0))
    );
    let rows = env.json(&["insights"]);
    let r = row(&rows, v2);
    assert_eq!(
        (r["downloads"].as_u64(), r["patch_downloads"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(r["patch_bytes"], patch_size);
    assert_eq!(r["patch_full_bytes"], full_size);
    assert_eq!(r["full_bytes"], full_size);
    assert_eq!(r["devices"], Value::Null);
}
