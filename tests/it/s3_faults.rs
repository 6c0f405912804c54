//! The S3 client's own retry behaviour, through a proxy that misbehaves on
//! chosen requests in front of a real S3 server (moto): throttling (503
//! SlowDown) and 500s are retried, as are reset connections and slow
//! answers; a failure that does not pass is one clear line that says what
//! failed and whether rerunning is safe, and nothing is half-committed; a
//! server that is gone, or never answers, ends the command instead of
//! hanging it.

use std::time::{Duration, Instant};

use crate::common::proxy::Fault;
use crate::common::s3::S3Server;
use crate::common::*;

fn publish(env: &TestEnv, release: &str) -> std::process::Output {
    env.publish_release(release, "production", "fp")
        .output()
        .expect("run otapub")
}

fn served(env: &TestEnv) -> String {
    env.pointer("production", "ios", "fp")["metadata"]["otapub"]["version"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn count(server: &S3Server, method: &str, path: &str) -> usize {
    server
        .proxy
        .requests()
        .iter()
        .filter(|r| r.method == method && r.target.contains(path))
        .count()
}

/// A one-line error in otapub's terms, not an SDK dump.
fn assert_clear(err: &str) {
    assert!(!err.contains("panicked"), "{err}");
    for dump in [
        "aws_request_id",
        "Error {",
        "SdkError",
        "DispatchFailure",
        "ServiceError",
    ] {
        assert!(!err.contains(dump), "an SDK dump ({dump}):\n{err}");
    }
    assert!(err.lines().all(|l| l.len() < 400), "a line over 400 characters:\n{err}");
}

#[test]
fn throttling_and_server_errors_are_retried() {
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    assert!(publish(&env, "v1").status.success());
    server.proxy.clear();
    server
        .proxy
        .inject("PUT", "state/index.sqlite", Fault::Status(503, "SlowDown"), 2);
    server
        .proxy
        .inject("GET", "state/index.sqlite", Fault::Status(500, "InternalError"), 1);
    server
        .proxy
        .inject("PUT", "public/assets/", Fault::Status(503, "SlowDown"), 1);
    let out = publish(&env, "v2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        count(&server, "PUT", "state/index.sqlite") >= 3,
        "the index write was retried"
    );
    assert!(
        count(&server, "GET", "state/index.sqlite") >= 2,
        "the index read was retried"
    );
    assert_eq!(served(&env), "v2");
    env.otapub(&["check"]).assert().success();
}

#[test]
fn reset_connections_and_slow_answers_are_retried() {
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    assert!(publish(&env, "v1").status.success());
    server.proxy.inject("GET", "state/index.sqlite", Fault::Reset, 1);
    server.proxy.inject("PUT", "public/assets/", Fault::Reset, 1);
    server
        .proxy
        .inject("PUT", "public/production/", Fault::Delay(Duration::from_secs(2)), 1);
    let out = publish(&env, "v2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(served(&env), "v2");
    env.otapub(&["check"]).assert().success();
}

#[test]
fn a_failure_that_persists_is_one_clear_line_and_commits_nothing() {
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    assert!(publish(&env, "v1").status.success());
    let before = env.snapshot();
    server
        .proxy
        .inject("PUT", "state/index.sqlite", Fault::Status(503, "SlowDown"), 1000);
    let out = publish(&env, "v2");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_clear(&err);
    assert!(err.contains("state/index.sqlite"), "names the object: {err}");
    assert!(err.contains("SlowDown"), "names the server's answer: {err}");
    assert!(
        err.contains("run the same command again with --operation-id"),
        "says how to rerun safely: {err}"
    );
    assert_eq!(served(&env), "v1");
    // The README's "5 attempts": the SDK sends one request at most five
    // times in a row (the longest run of index PUTs with nothing between).
    let mut run = 0;
    let mut longest = 0;
    for r in server.proxy.requests() {
        run = if r.method == "PUT" && r.target.contains("state/index.sqlite") {
            run + 1
        } else {
            0
        };
        longest = longest.max(run);
    }
    assert_eq!(longest, 5, "attempts at one index write");
    // Only uploads of content-addressed objects happened; the pointers did not move.
    let changed: Vec<String> = env
        .snapshot()
        .into_iter()
        .filter(|(k, v)| before.get(k) != Some(v))
        .map(|(k, _)| k)
        .filter(|k| !k.starts_with("public/assets/") && !k.starts_with("public/updates/v2/"))
        .collect();
    assert_eq!(changed, Vec::<String>::new());
    server.proxy.heal();
    let out = publish(&env, "v2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(served(&env), "v2");
}

/// A command against an endpoint, with a 2-second read timeout.
fn against(env: &TestEnv, endpoint: &str, args: &[&str]) -> std::process::Output {
    std::fs::write(env.path("otapub.toml"), "s3_read_timeout_secs = 2\n").expect("config");
    let mut c = env.std_otapub(args);
    c.env("AWS_ENDPOINT_URL", endpoint);
    c.output().expect("run otapub")
}

#[test]
fn a_server_that_is_gone_or_never_answers_ends_the_command() {
    let server = S3Server::start();
    let env = TestEnv::on_s3(&server);
    // Gone: nothing listens on the port (and no other test is given it).
    let port = crate::common::edge::free_port();
    let start = Instant::now();
    let out = against(&env, &format!("http://127.0.0.1:{port}"), &["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_clear(&err);
    assert!(err.contains("state/index.sqlite"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
    // A black hole: accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hole_port = hole.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hole.incoming() {
            held.push(c);
        }
    });
    let start = Instant::now();
    let out = against(&env, &format!("http://127.0.0.1:{hole_port}"), &["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_clear(&err);
    assert!(err.contains("timed out"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(90), "took {:?}", start.elapsed());
}
