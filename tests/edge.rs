//! The staged-rollout edge rule in the runtimes it ships for, started here
//! from `deploy/`'s templates: `otapub serve`, nginx with njs in front of a
//! local tree and in front of a real S3 server (moto), the Cloudflare Worker
//! in workerd, and the Lambda@Edge function under Node. One table of
//! (eas-client-id → expected package), computed from SPEC's formula
//! (transcribed independently in tests/common) and the signed bucket list,
//! must come out of every one; headers sent as the stock client sends them.

mod common;

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::edge::*;
use common::*;
use rsa::signature::Verifier;
use serde_json::Value;
use sha2::Sha256;

const P: &str = "production/ios/fp";

/// The ids a table covers: random lowercase ones (Android), the same in
/// upper case (iOS), and requests that must get the control.
fn client_ids(n: usize) -> Vec<Option<String>> {
    let random = random_client_ids(n);
    let mut ids: Vec<Option<String>> = random.iter().cloned().map(Some).collect();
    ids.extend(random.iter().take(n / 5).map(|id| Some(id.to_uppercase())));
    for odd in [
        "not-a-uuid",
        "",
        "{8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5f}",
        "8c5f4b6e3b1a4f7e9d2c0a1b2c3d4e5f",
        "urn:uuid:8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5f",
    ] {
        ids.push(Some(odd.to_string()));
    }
    ids.push(None);
    ids
}

/// What a pointer's signed rollout record says: candidate and control ids, buckets.
struct Expectation {
    candidate: String,
    control: String,
    buckets: BTreeSet<u8>,
}

impl Expectation {
    fn read(env: &TestEnv) -> Expectation {
        let record = env.rollout_record(P);
        let control = env.pointer("production", "ios", "fp")["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            record["control"]["id"],
            control.as_str(),
            "the record names what the pointer serves"
        );
        Expectation {
            candidate: record["candidate"]["id"].as_str().unwrap().to_string(),
            control,
            buckets: record["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
                .collect(),
        }
    }

    /// Whether a device gets the candidate.
    fn candidate_for(&self, id: &Option<String>) -> bool {
        id.as_deref()
            .and_then(device_bucket)
            .is_some_and(|b| self.buckets.contains(&b))
    }

    fn expected(&self, id: &Option<String>) -> &str {
        if self.candidate_for(id) {
            &self.candidate
        } else {
            &self.control
        }
    }
}

/// The manifest id an answer carries (an Expo body or a DSSE envelope).
fn answered_id(a: &Answer, what: &str) -> String {
    assert_eq!(a.status, 200, "{what}: HTTP {}", a.status);
    let ct = a.headers["content-type"].to_str().unwrap().to_string();
    let part = if ct.starts_with("multipart/mixed") {
        assert_eq!(a.headers["expo-protocol-version"], "1", "{what}");
        assert_eq!(a.headers["expo-sfv-version"], "0", "{what}");
        parse_multipart(&ct, &a.body).remove(0).1
    } else {
        assert!(ct.starts_with("application/json"), "{what}: {ct}");
        let env: Value = serde_json::from_slice(&a.body).unwrap();
        STANDARD.decode(env["payload"].as_str().unwrap()).unwrap()
    };
    let doc: Value = serde_json::from_slice(&part).unwrap();
    doc["id"].as_str().unwrap().to_string()
}

/// Asks `runtime` for the pointer with every id; each answer must be the
/// table's. Returns the share of candidate answers among UUID requests.
fn agrees(runtime: &str, base: &str, ids: &[Option<String>], want: &Expectation) -> f64 {
    for name in ["manifest", "manifest.json"] {
        // The envelope on a sample: same rule, other object.
        let ids: Vec<Option<String>> = if name == "manifest" {
            ids.to_vec()
        } else {
            ids.iter().step_by(10).cloned().collect()
        };
        let answers = ask_all(base, &format!("/{P}/{name}"), &ids);
        for (id, a) in ids.iter().zip(&answers) {
            let got = answered_id(a, &format!("{runtime} {name} for {id:?}"));
            assert_eq!(got, want.expected(id), "{runtime} {name}: eas-client-id {id:?}");
        }
    }
    let uuids: Vec<&Option<String>> = ids
        .iter()
        .filter(|i| i.as_deref().and_then(device_bucket).is_some())
        .collect();
    uuids.iter().filter(|id| want.candidate_for(id)).count() as f64 / uuids.len() as f64
}

/// The candidate's Expo body as the stock client checks it: the multipart
/// and protocol headers, the RSA signature over the manifest part with the
/// app's certificate.
fn stock_client_accepts(base: &str, id: &str) {
    let a = &ask_all(base, &format!("/{P}/manifest"), &[Some(id.to_string())])[0];
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["expo-protocol-version"], "1");
    let ct = a.headers["content-type"].to_str().unwrap();
    assert!(a.body.ends_with(b"--\r\n"));
    let (headers, part) = parse_multipart(ct, &a.body).remove(0);
    let sig = headers
        .iter()
        .find(|(k, _)| k == "expo-signature")
        .map(|(_, v)| v.clone())
        .expect("expo-signature");
    let dict = sfv::Parser::parse_dictionary(sig.as_bytes()).expect("SFV");
    let Some(sfv::ListEntry::Item(sfv::Item {
        bare_item: sfv::BareItem::String(s),
        ..
    })) = dict.get("sig")
    else {
        panic!("no sig in {sig}")
    };
    let raw = STANDARD.decode(s).unwrap();
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(expo_certificate_key())
        .verify(&part, &rsa::pkcs1v15::Signature::try_from(raw.as_slice()).unwrap())
        .expect("the stock client's signature check");
}

fn publish(env: &TestEnv, v: &str, extra: &[&str]) {
    let mut c = env.publish_release(v, "production", "fp");
    c.args(["--expo-key", "keys/expo.pem"]).args(extra).assert().success();
}

fn rollout(env: &TestEnv, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut all = vec!["rollout"];
    all.extend_from_slice(&args[..1]);
    all.extend([
        "--channel",
        "production",
        "--platform",
        "ios",
        "--fingerprint",
        "fp",
        "--expo-key",
        "keys/expo.pem",
    ]);
    all.extend_from_slice(&args[1..]);
    env.otapub(&all).assert()
}

/// The template's js_path, pointed at the repository: otapub.js and the
/// bucket module it imports.
fn js_paths() -> String {
    format!("js_path \"{DEPLOY}/nginx/\";\njs_path \"{DEPLOY}/edge/\";")
}

fn nginx_local(env: &TestEnv) -> Spawned {
    let port = free_port();
    let dir = env.path("nginx-local");
    let site = template(
        "nginx/otapub-local.conf",
        &[
            ("listen 8080;", format!("listen 127.0.0.1:{port};")),
            (
                "root /srv/otapub-data/public;",
                format!("root {}/public;", env.store().display()),
            ),
            ("js_path \"/etc/nginx/njs/\";", js_paths()),
            ("/var/log/nginx/otapub-gate.log", format!("{}/gate.log", dir.display())),
        ],
    );
    nginx(&dir, &site, port)
}

#[test]
fn serve_and_nginx_on_a_local_tree_follow_the_formula() {
    let env = TestEnv::new();
    env.install_expo_key();
    publish(&env, "v1", &[]);
    publish(&env, "v2", &["--platform", "ios", "--rollout", "30"]);
    let ids = client_ids(10_000);
    let at30 = Expectation::read(&env);
    let served = otapub_serve(&env, &[]);
    let nginx = nginx_local(&env);
    for rt in [&served, &nginx] {
        let share = agrees(rt.name, &rt.base, &ids, &at30);
        assert!((share - 0.30).abs() <= 0.03, "{}: candidate share {share}", rt.name);
        let inside = ids
            .iter()
            .flatten()
            .find(|i| at30.candidate_for(&Some(i.to_string())))
            .unwrap();
        stock_client_accepts(&rt.base, inside);
    }

    // Raising keeps every device that had the candidate.
    rollout(&env, &["set", "--percent", "60"]).success();
    let at60 = Expectation::read(&env);
    assert!(at30.buckets.is_subset(&at60.buckets));
    for rt in [&served, &nginx] {
        let share = agrees(rt.name, &rt.base, &ids, &at60);
        assert!((share - 0.60).abs() <= 0.03, "{}: candidate share {share}", rt.name);
    }
    assert!(ids.iter().all(|id| !at30.candidate_for(id) || at60.candidate_for(id)));

    // Devices report through nginx; its access log (log_format otapub_gate)
    // feeds the gate: 6 of 24 report the candidate failed, 25 % > 5 %, so
    // the advance aborts. After abort every device gets the re-stamped control.
    let reporting: Vec<String> = ids
        .iter()
        .flatten()
        .filter(|i| at60.candidate_for(&Some(i.to_string())))
        .take(24)
        .cloned()
        .collect();
    check_in(
        &nginx.base,
        &format!("/{P}/manifest"),
        &reporting,
        &at60.candidate,
        |i| (i % 4 == 0).then(|| format!("\"{}\", \"{}\"", at60.candidate, at60.control)),
    );
    rollout(&env, &["advance", "--gate-log", "nginx-local/gate.log"]).code(1);
    let rs = env.json(&["rollout", "status"]);
    assert_eq!(rs[0]["state"], "aborted");
    assert_eq!(rs[0]["gate"]["failed"], 6);
    assert_eq!(rs[0]["gate"]["total"], 24);
    let control = env.pointer("production", "ios", "fp");
    assert_eq!(control["metadata"]["otapub"]["restampOf"], "v1");
    let after_abort = Expectation {
        candidate: String::new(),
        control: control["id"].as_str().unwrap().to_string(),
        buckets: BTreeSet::new(),
    };
    for rt in [&served, &nginx] {
        agrees(rt.name, &rt.base, &ids[..2000], &after_abort);
    }

    // After complete every device gets the candidate, and P/rollout/ is gone.
    publish(&env, "v3", &["--platform", "ios", "--rollout", "10"]);
    rollout(&env, &["complete"]).success();
    assert!(env.keys(&format!("public/{P}/rollout/")).is_empty());
    let v3 = env.pointer("production", "ios", "fp");
    assert_eq!(v3["metadata"]["otapub"]["version"], "v3");
    let completed = Expectation {
        candidate: String::new(),
        control: v3["id"].as_str().unwrap().to_string(),
        buckets: BTreeSet::new(),
    };
    for rt in [&served, &nginx] {
        agrees(rt.name, &rt.base, &ids[..2000], &completed);
    }
}

#[test]
fn every_runtime_in_front_of_s3_gives_the_same_table() {
    let server = s3::S3Server::start();
    let env = TestEnv::on_s3(&server);
    env.install_expo_key();
    publish(&env, "v1", &[]);
    publish(&env, "v2", &["--platform", "ios", "--rollout", "25"]);
    let ids = client_ids(2000);
    let want = Expectation::read(&env);
    let Backend::S3 { bucket, prefix, .. } = &env.backend else {
        unreachable!()
    };
    server.make_public(bucket, prefix);
    // The store's public/ folder as an anonymous HTTP origin, as a CDN sees it.
    let origin = format!("{}/{bucket}/{prefix}/public", server.direct_endpoint());

    // otapub serve, reading the S3 store.
    let served = otapub_serve(&env, &[]);
    agrees("otapub serve (S3 store)", &served.base, &ids, &want);

    // nginx in front of the S3 server, from deploy/nginx/otapub.conf.
    let port = free_port();
    let dir = env.path("nginx-s3");
    let moto = format!("127.0.0.1:{}", server.port());
    let site = template(
        "nginx/otapub.conf",
        &[
            ("listen 443 ssl http2;", format!("listen 127.0.0.1:{port};")),
            (
                "server my-bucket.s3.eu-west-1.amazonaws.com:443;",
                format!("server {moto};"),
            ),
            (
                "proxy_set_header Host my-bucket.s3.eu-west-1.amazonaws.com;",
                format!("proxy_set_header Host {moto};"),
            ),
            (
                "https://otapub_origin/ota/public",
                format!("http://otapub_origin/{bucket}/{prefix}/public"),
            ),
            ("/var/cache/nginx/otapub", format!("{}/cache", dir.display())),
            ("js_path \"/etc/nginx/njs/\";", js_paths()),
            ("/var/log/nginx/otapub-gate.log", format!("{}/gate.log", dir.display())),
        ],
    );
    let nginx = nginx(&dir, &site, port);
    // Twice: the second round is answered from nginx's cache, which must key
    // on the object fetched, never on the request's URI.
    agrees("nginx (S3 origin)", &nginx.base, &ids, &want);
    agrees("nginx (S3 origin, cached)", &nginx.base, &ids, &want);
    let inside = ids
        .iter()
        .flatten()
        .find(|i| want.candidate_for(&Some(i.to_string())))
        .unwrap();
    stock_client_accepts(&nginx.base, inside);

    // The Cloudflare Worker in workerd, its origin the S3 server.
    let worker = workerd(&env.path("workerd"), &origin);
    agrees("workerd", &worker.base, &ids, &want);
    stock_client_accepts(&worker.base, inside);

    // The Lambda@Edge function under Node: the URI it leaves each request
    // with is the bucket's object exactly when the table says candidate.
    let uris = lambda_edge(&env.path("lambda"), &origin, &format!("/{P}/manifest"), &ids);
    for (id, uri) in ids.iter().zip(&uris) {
        let expected = match id.as_deref().and_then(device_bucket) {
            Some(b) if want.buckets.contains(&b) => format!("/{P}/rollout/{b:02}/manifest"),
            _ => format!("/{P}/manifest"),
        };
        assert_eq!(uri, &expected, "Lambda@Edge for {id:?}");
    }
}

/// The edge's one bucket function (`deploy/edge/bucket.mjs`, 32-bit limbs)
/// against the independent transcription of SPEC's formula, on more ids
/// than the tables: every device gets the bucket the formula gives it.
#[test]
fn the_edge_bucket_function_is_the_formula() {
    let ids = client_ids(50_000);
    let buckets = bucket_mjs(tempfile::tempdir().unwrap().path(), &ids);
    for (id, b) in ids.iter().zip(&buckets) {
        assert_eq!(*b, id.as_deref().and_then(device_bucket), "eas-client-id {id:?}");
    }
}

#[test]
fn the_access_log_of_serve_feeds_the_gate() {
    let env = TestEnv::new();
    env.install_expo_key();
    publish(&env, "v1", &[]);
    publish(
        &env,
        "v2",
        &["--platform", "ios", "--rollout", "50", "--abort-threshold", "0.1"],
    );
    let want = Expectation::read(&env);
    let served = otapub_serve(&env, &["--access-log", "access.log"]);
    // Devices check in as the stock client does: on the candidate, some
    // reporting it failed to launch (an RFC 8941 list of strings).
    let ids = random_client_ids(40);
    check_in(&served.base, &format!("/{P}/manifest"), &ids, &want.candidate, |i| {
        (i % 4 == 0).then(|| format!("\"{}\"", want.candidate))
    });
    let log = std::fs::read_to_string(env.path("access.log")).unwrap();
    let first: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["eas-client-id"] == ids[0].as_str())
        .expect("device 0's request is logged");
    assert_eq!(first["path"], format!("/{P}/manifest"));
    assert_eq!(
        first["expo-recent-failed-update-ids"],
        format!("\"{}\"", want.candidate)
    );
    // 10 of 40 failed: 25 % > 10 % — the gate aborts and exits 1.
    rollout(&env, &["advance", "--gate-log", "access.log"]).code(1);
    let rs = env.json(&["rollout", "status"]);
    assert_eq!(rs[0]["state"], "aborted");
    assert_eq!(rs[0]["gate"]["failed"], 10);
    assert_eq!(rs[0]["gate"]["total"], 40);
}

/// The patch rule of `otapub serve` (SPEC "Patches for the launch asset"),
/// on a tree holding a patch between two successive real exports made by the
/// reference bsdiff 4.3 (otapub does not make patches yet: issue 10), with
/// the headers the stock client sends; applied with the reference bspatch.
#[test]
fn serve_answers_a_patch_request_only_as_the_rule_says() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    let env = TestEnv::new();
    for (v, dist) in [("v1", "dist1"), ("v2", "dist2")] {
        let dir = format!("{FIXTURES}/expo-successive/{dist}");
        env.otapub(&[
            "publish",
            &dir,
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--platform",
            "ios",
            "--version",
            v,
        ])
        .assert()
        .success();
    }
    let doc = |v: &str| env.read_signed(&format!("public/updates/{v}/ios/manifest")).1;
    let (v1, v2) = (doc("v1"), doc("v2"));
    let sha = |d: &Value| {
        d["launchAsset"]["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (old_sha, new_sha) = (sha(&v1), sha(&v2));
    let (id1, id2) = (
        v1["id"].as_str().unwrap().to_string(),
        v2["id"].as_str().unwrap().to_string(),
    );
    let old = env.path("old.bundle");
    let new = env.path("new.bundle");
    std::fs::write(&old, env.read(&format!("public/assets/{old_sha}"))).unwrap();
    std::fs::write(&new, env.read(&format!("public/assets/{new_sha}"))).unwrap();
    let patch_key = format!("public/patches/{id2}/{id1}");
    std::fs::create_dir_all(env.store().join(format!("public/patches/{id2}"))).unwrap();
    let made = std::process::Command::new("/usr/bin/bsdiff")
        .arg(&old)
        .arg(&new)
        .arg(env.store().join(&patch_key))
        .status()
        .expect("bsdiff (Debian's bsdiff package: ./scripts/test.sh installs it)");
    assert!(made.success());
    let served = otapub_serve(&env, &[]);
    let asset = format!("/assets/{new_sha}");
    let upper = id1.to_uppercase();
    let client = |a_im: Option<&str>, current: &str| {
        let mut h = vec![
            ("expo-current-update-id", current.to_string()),
            ("expo-requested-update-id", id2.clone()),
        ];
        h.extend(a_im.map(|v| ("a-im", v.to_string())));
        ask(&served.base, &asset, &[h]).remove(0)
    };

    // The client's request (iOS sends upper case ids): the patch, marked.
    let a = client(Some("bsdiff"), &upper);
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["im"], "bsdiff");
    assert_eq!(a.headers["expo-base-update-id"], id1.as_str());
    assert_eq!(a.headers["cache-control"], "no-store");
    assert!(a.headers["vary"].to_str().unwrap().contains("Expo-Current-Update-ID"));
    let patch = env.path("served.patch");
    std::fs::write(&patch, &a.body).unwrap();
    let out = env.path("patched.bundle");
    let applied = std::process::Command::new("/usr/bin/bspatch")
        .arg(&old)
        .arg(&out)
        .arg(&patch)
        .status()
        .unwrap();
    assert!(applied.success());
    let patched = std::fs::read(&out).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&patched)),
        v2["launchAsset"]["hash"]
    );
    eprintln!(
        "patch {} bytes for a {} byte launch asset ({:.1} %)",
        a.body.len(),
        patched.len(),
        100.0 * a.body.len() as f64 / patched.len() as f64
    );

    // Never a patch without a-im, for another a-im, or from an unknown base.
    let full = env.read(&format!("public/assets/{new_sha}"));
    for a in [
        client(None, &id1),
        client(Some("gzip"), &id1),
        client(Some("bsdiff"), "11111111-2222-4333-8444-555555555555"),
        client(Some("bsdiff"), "not-a-uuid"),
    ] {
        assert_eq!(a.status, 200);
        assert!(a.headers.get("im").is_none());
        assert_eq!(a.body, full);
    }
}
