//! The CI and access templates in deploy/: the GitHub Actions and GitLab CI
//! files parse and call only `otapub` subcommands and flags that exist (asked
//! of the real binary's `--help`), and each IAM policy in deploy/iam/ allows
//! exactly the S3 actions its role's commands make — recorded at the counting
//! proxy in front of a real S3 server, request by request, resource by resource.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::s3::{Kind, S3Server};
use crate::common::*;
use serde_json::Value;

fn deploy(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(rel)
}

/// Every shell script of a CI file: GitHub's `run:` steps, GitLab's
/// `before_script`/`script` lines.
fn scripts(doc: &serde_yaml::Value, out: &mut Vec<String>) {
    match doc {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    (Some("run"), serde_yaml::Value::String(s)) => out.push(s.clone()),
                    (Some("script" | "before_script" | "after_script"), serde_yaml::Value::Sequence(lines)) => {
                        out.extend(lines.iter().filter_map(|l| l.as_str().map(str::to_string)));
                    }
                    _ => scripts(v, out),
                }
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| scripts(v, out)),
        _ => {}
    }
}

/// The `otapub …` command lines of a script, continuation lines joined, each
/// as words (expansions kept as opaque words).
fn otapub_calls(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut calls = Vec::new();
    for line in joined.lines() {
        let line = line.trim();
        // `command -v otapub || cargo install … otapub` names the binary, calls nothing.
        if line.starts_with('#') || line.starts_with("command -v") {
            continue;
        }
        let Some(at) = line
            .find("otapub ")
            .filter(|&i| i == 0 || line[..i].ends_with(' ') || line[..i].ends_with('('))
        else {
            continue;
        };
        let words = shell_words::split(&line[at..]).unwrap_or_else(|e| panic!("{line}: {e}"));
        calls.push(words);
    }
    calls
}

#[test]
fn ci_templates_parse_and_call_only_what_otapub_has() {
    let env = TestEnv::new();
    for file in ["ci/github-actions.yml", "ci/gitlab-ci.yml"] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
        let mut all = Vec::new();
        scripts(&doc, &mut all);
        let calls: Vec<Vec<String>> = all.iter().flat_map(|s| otapub_calls(s)).collect();
        let subcommands: BTreeSet<&str> = calls.iter().map(|c| c[1].as_str()).collect();
        assert_eq!(subcommands, BTreeSet::from(["publish", "verify"]), "{file}");
        for call in &calls {
            let sub = &call[1];
            let help = env.cmd(&[sub, "--help"]).assert().success().get_output().clone();
            let help = stdout(&help);
            for flag in call.iter().filter(|w| w.starts_with("--")) {
                let flag = flag.split('=').next().unwrap();
                assert!(
                    help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                    "{file}: `otapub {sub}` has no {flag}"
                );
            }
        }
        // Secrets reach otapub through its environment variables only.
        for var in ["OTAPUB_SIGNING_KEY", "OTAPUB_EXPO_SIGNING_KEY"] {
            assert!(text.contains(var), "{file} passes {var}");
        }
        assert!(!text.contains("BEGIN PRIVATE KEY"), "{file} holds no key");
    }
}

/// The S3 action a request needs (as the IAM documentation maps them).
fn action(method: &str, target: &str) -> &'static str {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let object = path.trim_matches('/').contains('/');
    match (method, object) {
        ("GET", false) if query.contains("list-type") => "s3:ListBucket",
        ("GET" | "HEAD", true) => "s3:GetObject",
        ("PUT" | "POST", true) => "s3:PutObject",
        ("DELETE", true) if query.contains("uploadId") => "s3:AbortMultipartUpload",
        ("DELETE", true) => "s3:DeleteObject",
        _ => panic!("no IAM action known for {method} {target}"),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// What one request needed: its IAM action, resource ARN and (for a
/// listing) the prefix it listed.
type Use = (&'static str, String, Option<String>);

/// One statement of a policy: actions, resources, and the `s3:prefix`
/// patterns of its condition.
struct Statement {
    actions: BTreeSet<String>,
    resources: Vec<String>,
    prefixes: Option<Vec<String>>,
}

/// What each request the proxy saw needed.
fn used(server: &S3Server, bucket: &str) -> BTreeSet<Use> {
    server
        .proxy
        .requests()
        .iter()
        .map(|r| {
            let a = action(&r.method, &r.target);
            let path = r.target.split('?').next().unwrap().trim_start_matches('/');
            let prefix = r
                .target
                .split_once('?')
                .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("prefix=")))
                .map(percent_decode);
            let key = percent_decode(path.strip_prefix(bucket).unwrap().trim_start_matches('/'));
            let arn = if key.is_empty() {
                format!("arn:aws:s3:::{bucket}")
            } else {
                format!("arn:aws:s3:::{bucket}/{key}")
            };
            (a, arn, prefix)
        })
        .collect()
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.starts_with(head) && (0..=s.len() - head.len()).any(|i| glob(tail, &s[head.len() + i..]))
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        _ => panic!("{v}"),
    }
}

/// The policy's (action → statements allowing it) after the placeholders are filled in.
fn policy(file: &str, bucket: &str, prefix: &str) -> Vec<Statement> {
    let text = std::fs::read_to_string(deploy(file))
        .unwrap()
        .replace("BUCKET", bucket)
        .replace("PREFIX", prefix);
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(doc["Version"], "2012-10-17");
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["Effect"], "Allow", "{file}: allow-only policies");
            let prefixes = s["Condition"]["StringLike"]["s3:prefix"]
                .as_array()
                .map(|_| strings(&s["Condition"]["StringLike"]["s3:prefix"]));
            Statement {
                actions: strings(&s["Action"]).into_iter().collect(),
                resources: strings(&s["Resource"]),
                prefixes,
            }
        })
        .collect()
}

/// Every request is allowed by the policy, and every action the policy names was needed.
fn assert_exact(file: &str, used: &BTreeSet<Use>, bucket: &str, prefix: &str) {
    let statements = policy(file, bucket, prefix);
    for (a, arn, list_prefix) in used {
        let allowed = statements.iter().any(|st| {
            st.actions.contains(*a)
                && st.resources.iter().any(|r| glob(r, arn))
                && match (&st.prefixes, list_prefix) {
                    (Some(ps), Some(p)) => ps.iter().any(|g| glob(g, p)),
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        });
        assert!(allowed, "{file} does not allow {a} on {arn} (prefix {list_prefix:?})");
    }
    let needed: BTreeSet<&str> = used.iter().map(|(a, _, _)| *a).collect();
    let named: BTreeSet<String> = statements.iter().flat_map(|st| st.actions.iter().cloned()).collect();
    assert_eq!(
        named.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        needed,
        "{file} names exactly the actions its role makes"
    );
}

#[test]
fn each_iam_policy_allows_exactly_what_its_role_does() {
    let server = std::sync::Arc::new(S3Server::start_kind(Kind::Moto));
    let env = TestEnv::on_s3(&server);
    let bucket = match &env.backend {
        Backend::S3 { bucket, .. } => bucket.clone(),
        Backend::Local => unreachable!(),
    };
    let prefix = "ota/tree";
    let mut recorded: BTreeMap<&str, BTreeSet<Use>> = BTreeMap::new();
    let mut role = |name: &'static str, server: &S3Server, f: &mut dyn FnMut()| {
        server.proxy.clear();
        f();
        recorded.entry(name).or_default().extend(used(server, &bucket));
    };

    // The CI publisher: what deploy/ci runs — publish (the first one creates the
    // store), a staged one, verify.
    role("ci-publisher", &server, &mut || {
        for r in ["r1", "r2"] {
            env.publish_release(r, "production", "fp").assert().success();
        }
        env.publish_release("s1", "staging", "fp").assert().success();
        env.publish_release("r3", "staging", "fp")
            .args(["--rollout", "20"])
            .assert()
            .success();
        env.otapub(&["verify"]).assert().success();
    });
    // The operator: ban, rollback, promote, rollouts, regenerate, gc, sweeps.
    role("operator", &server, &mut || {
        env.otapub(&["ban", "r2", "--platform", "ios", "--reason", "broken", "--rollback"])
            .assert()
            .success();
        env.otapub(&[
            "rollback",
            "--channel",
            "production",
            "--platform",
            "android",
            "--fingerprint",
            "fp",
        ])
        .assert()
        .success();
        env.otapub(&["promote", "r1", "--platform", "ios", "--to", "beta"])
            .assert()
            .success();
        for args in [&["set", "--percent", "50"][..], &["pause"], &["resume"], &["complete"]] {
            let mut a = vec!["rollout"];
            a.extend_from_slice(args);
            a.extend(["--channel", "staging", "--platform", "ios", "--fingerprint", "fp"]);
            env.otapub(&a).assert().success();
        }
        env.otapub(&[
            "rollout",
            "abort",
            "--channel",
            "staging",
            "--platform",
            "android",
            "--fingerprint",
            "fp",
            "--reason",
            "crashes",
        ])
        .assert()
        .success();
        env.otapub(&["regenerate"]).assert().success();
        env.otapub_at("2099-01-01T00:00:00Z", &["gc", "--keep", "production=1"])
            .assert()
            .success();
        env.otapub(&["ops", "sweep"]).assert().success();
    });
    // The auditor: reads only.
    role("auditor", &server, &mut || {
        for args in [
            &["status"][..],
            &["log"],
            &["ops"],
            &["check"],
            &["verify"],
            &["rollout", "status"],
            &["diff", "r1", "r2", "--platform", "ios"],
        ] {
            env.otapub(args).assert().success();
        }
        env.otapub(&["report", "--out", "site"]).assert().success();
    });

    for (name, used) in &recorded {
        assert_exact(&format!("iam/{name}.json"), used, &bucket, prefix);
    }
    // Reading never writes; publishing never deletes a release.
    assert!(recorded["auditor"]
        .iter()
        .all(|(a, _, _)| *a == "s3:GetObject" || *a == "s3:ListBucket"));
    assert!(recorded["ci-publisher"]
        .iter()
        .filter(|(a, _, _)| *a == "s3:DeleteObject")
        .all(|(_, arn, _)| arn.contains("/state/probe/")));
}
