//! The S3 store against a real S3-compatible server on 127.0.0.1 (moto by
//! default; `OTAPUB_TEST_S3_SERVER=s3s-fs` runs the same tests on s3s-fs).
//! These tests are sequential: one writer at a time.

use crate::common::s3::S3Server;
use crate::common::*;

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}/dist")
}

#[test]
fn core_scenario_on_s3() {
    let server = S3Server::start();
    crate::common::scenario::core_scenario(&TestEnv::on_s3(&server));
}

/// The server answers 412 exactly where the commit protocol relies on it.
#[test]
fn canary_the_server_refuses_stale_conditional_writes() {
    use aws_sdk_s3::primitives::ByteStream;
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    let crate::common::Backend::S3 { bucket, .. } = &env.backend else {
        unreachable!()
    };
    let c = server.client();
    type Req = aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
    let n = std::cell::Cell::new(0u32);
    // Every write has new bytes, so every write has a new ETag. Returns the
    // new ETag, or the HTTP status of the refusal.
    let put = |cond: &dyn Fn(Req) -> Req| -> Result<String, Option<u16>> {
        n.set(n.get() + 1);
        let body = ByteStream::from(format!("write {}", n.get()).into_bytes());
        match server.block_on(cond(c.put_object().bucket(bucket).key("canary").body(body)).send()) {
            Ok(out) => Ok(out.e_tag().unwrap_or_default().to_string()),
            Err(e) => Err(e.raw_response().map(|r| r.status().as_u16())),
        }
    };
    let first = put(&|r| r.if_none_match("*")).expect("first create wins");
    assert_eq!(
        put(&|r| r.if_none_match("*")),
        Err(Some(412)),
        "second If-None-Match: * must fail"
    );
    let second = put(&|r| r.if_match(first.clone())).expect("matching If-Match wins");
    assert_ne!(second, first);
    assert_eq!(
        put(&|r| r.if_match(first.clone())),
        Err(Some(412)),
        "stale If-Match must fail"
    );
}

#[test]
fn a_first_publish_probes_conditional_writes_once_and_before_any_other_write() {
    // The publish asks the probe while its files hash and its commit asks
    // again: the store answers the second from the first, without requests.
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    env.otapub(&[
        "publish",
        &fixture("expo-tabs"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
    ])
    .assert()
    .success();
    let requests = server.proxy.requests();
    let probe: Vec<&crate::common::proxy::Request> =
        requests.iter().filter(|r| r.target.contains("/state/probe/")).collect();
    // One probe is one key, written twice and then deleted. The delete may
    // be sent twice: after the server's 412 it may close the connection, and
    // the SDK retries an idempotent request that met a closed connection.
    let methods: Vec<&str> = probe.iter().map(|r| r.method.as_str()).collect();
    assert!(
        methods.len() >= 3 && methods[..2] == ["PUT", "PUT"] && methods[2..].iter().all(|m| *m == "DELETE"),
        "one probe: two conditional writes and a delete: {methods:?}"
    );
    let key = |r: &crate::common::proxy::Request| r.target.split('?').next().unwrap_or_default().to_string();
    assert!(
        probe.iter().all(|r| key(r) == key(probe[0])),
        "one probe, one key: {probe:?}"
    );
    let first_other_write = requests
        .iter()
        .position(|r| matches!(r.method.as_str(), "PUT" | "POST" | "DELETE") && !r.target.contains("/state/probe/"))
        .expect("the publish wrote");
    let last_probe = requests
        .iter()
        .rposition(|r| r.target.contains("/state/probe/"))
        .expect("probed");
    assert!(
        last_probe < first_other_write,
        "the probe ends before anything else is written: {requests:?}"
    );
    env.pointer("production", "ios", "fp1");
}

#[test]
fn a_second_publish_uploads_no_asset_and_asks_nothing_per_known_asset() {
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    env.otapub(&[
        "publish",
        &fixture("expo-tabs"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--version",
        "v1",
    ])
    .assert()
    .success();
    let first = server.proxy.requests();
    let asset_puts = first
        .iter()
        .filter(|r| r.method == "PUT" && r.target.contains("/public/assets/"))
        .count();
    assert_eq!(
        asset_puts, 37,
        "each distinct file of the tabs export once (28 + 24 assets sharing 17, and 2 bundles)"
    );
    server.proxy.clear();
    env.otapub(&[
        "publish",
        &fixture("expo-tabs"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--version",
        "v2",
        "--message",
        "again",
    ])
    .assert()
    .success();
    let second = server.proxy.requests();
    let touching_assets: Vec<_> = second.iter().filter(|r| r.target.contains("/public/assets/")).collect();
    assert!(
        touching_assets.is_empty(),
        "the index knows every asset: {touching_assets:?}"
    );
    assert!(second
        .iter()
        .any(|r| r.method == "PUT" && r.target.contains("/public/updates/v2/ios/manifest")));
    env.pointer("production", "ios", "fp1");
    // The objects carry SPEC's metadata.
    assert_eq!(
        env.content_type("public/production/ios/fp1/manifest.json"),
        "application/json"
    );
    assert!(env
        .content_type("public/production/ios/fp1/manifest")
        .starts_with("multipart/mixed; boundary="));
    assert_eq!(env.content_type("state/index.sqlite"), "application/vnd.sqlite3");
}

#[test]
fn large_files_go_up_in_parts_and_verify() {
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    let dir = env.path("big");
    write_export(&dir, "big");
    // A 20 MB asset (above the multipart threshold), bytes that do not repeat.
    let mut big = Vec::with_capacity(20 * 1024 * 1024);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while big.len() < 20 * 1024 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    let md5 = hex(&<md5::Md5 as sha2::Digest>::digest(&big));
    std::fs::write(dir.join("assets").join(&md5), &big).unwrap();
    let meta_path = dir.join("metadata.json");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["fileMetadata"]["ios"]["assets"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"path": format!("assets/{md5}"), "ext": "bin"}));
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    env.otapub(&[
        "publish",
        "big",
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--platform",
        "ios",
    ])
    .assert()
    .success();
    let reqs = server.proxy.requests();
    assert!(
        reqs.iter().any(|r| r.method == "POST" && r.target.contains("?uploads")),
        "a multipart upload was started"
    );
    assert!(
        reqs.iter()
            .filter(|r| r.method == "PUT" && r.target.contains("partNumber="))
            .count()
            >= 3
    );
    env.pointer("production", "ios", "fp1");
    env.otapub(&["verify", "--trust", "keys/throwaway.pub"])
        .assert()
        .code(0);
}

#[test]
fn a_lost_index_is_rebuilt_from_the_bucket() {
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    for (i, at) in ["2026-04-01T00:00:00Z", "2026-04-02T00:00:00Z", "2026-04-03T00:00:00Z"]
        .iter()
        .enumerate()
    {
        write_export(&env.path(&format!("e{i}")), &format!("r{i}"));
        env.otapub_at(
            at,
            &[
                "publish",
                &format!("e{i}"),
                "--channel",
                "production",
                "--fingerprint",
                "fp1",
                "--version",
                &format!("v{i}"),
                "--message",
                &format!("release {i}"),
                "--expo-config",
                &format!("{FIXTURES}/expo-tabs/expoConfig.json"),
            ],
        )
        .assert()
        .success();
    }
    env.otapub_at(
        "2026-04-04T00:00:00Z",
        &["ban", "v2", "--platform", "ios", "--reason", "crash", "--rollback"],
    )
    .assert()
    .success();
    env.otapub_at(
        "2026-04-04T00:00:00Z",
        &["promote", "v1", "--platform", "android", "--to", "beta"],
    )
    .assert()
    .success();
    env.otapub_at(
        "2026-04-05T00:00:00Z",
        &["ban", "v1", "--platform", "android", "--reason", "bad"],
    )
    .assert()
    .success();
    env.otapub_at(
        "2026-04-05T00:00:00Z",
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
    )
    .assert()
    .success();
    // The index also records the patch pairs it diffed and did not keep
    // (these synthetic bundles are a few bytes: every patch is larger);
    // the store holds only kept patches, so a rebuild recovers those alone.
    let status = |env: &TestEnv| {
        let out = env
            .otapub(&["status", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let mut v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for p in v["pointers"].as_array_mut().unwrap() {
            p["patches"].as_array_mut().unwrap().retain(|x| x["kept"] == true);
        }
        serde_json::to_string_pretty(&v).unwrap().into_bytes()
    };
    let before = status(&env);
    let tree_before: Vec<_> = env
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with("public/"))
        .collect();

    env.delete("state/index.sqlite");
    let out = env
        .cmd(&["index", "rebuild", "--store", &env.store_url()])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        stdout(&out).contains("recovered 9 packages, 3 bans, "),
        "{}",
        stdout(&out)
    );
    assert_eq!(String::from_utf8_lossy(&status(&env)), String::from_utf8_lossy(&before));
    // The rebuilt index renders the same tree: nothing to write.
    env.assert_writes_nothing(|| {
        env.otapub(&["regenerate"]).assert().success();
    });
    let tree_after: Vec<_> = env
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with("public/"))
        .collect();
    assert_eq!(tree_after, tree_before);
    env.otapub(&["check"]).assert().code(0);
    // A retried publish of the same content is still recognized as the same publish.
    env.otapub(&[
        "publish",
        "e0",
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--version",
        "v0",
        "--message",
        "release 0",
        "--expo-config",
        &format!("{FIXTURES}/expo-tabs/expoConfig.json"),
    ])
    .assert()
    .success();
    // Rebuilding over an existing index needs --force.
    env.cmd(&["index", "rebuild", "--store", &env.store_url()])
        .assert()
        .code(2);
}

#[test]
fn gc_on_s3_deletes_an_old_leftover_and_nothing_else() {
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    env.otapub(&[
        "publish",
        &fixture("expo-blank"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
    ])
    .assert()
    .success();
    let crate::common::Backend::S3 { bucket, prefix, .. } = &env.backend else {
        unreachable!()
    };
    let leftover = format!("public/assets/{}", "e".repeat(64));
    server
        .block_on(
            server
                .client()
                .put_object()
                .bucket(bucket)
                .key(format!("{prefix}/{leftover}"))
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"leftover"))
                .send(),
        )
        .unwrap();
    let out = env
        .otapub_at("2099-01-01T00:00:00Z", &["gc"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        stdout(&out).contains(&format!("deleted {leftover}")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("1 objects deleted"), "{}", stdout(&out));
    assert!(!env.exists(&leftover));
    env.otapub(&["check"]).assert().code(0);
}
