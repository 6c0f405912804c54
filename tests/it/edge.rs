//! The staged-rollout edge rule in the runtimes it ships for, started here
//! from `deploy/`'s templates: `otapub serve`, nginx with njs in front of a
//! local tree and in front of a real S3 server (moto), the Cloudflare Worker
//! in workerd, and the Lambda@Edge function under Node. One table of
//! (eas-client-id → expected package), computed from SPEC's formula
//! (transcribed independently in tests/it/common) and the signed bucket list,
//! must come out of every one; headers sent as the stock client sends them.
//! The patch rule likewise: one scene of launch-asset requests (patches from
//! an earlier update, from an embedded one, back after a rollback; the full
//! asset otherwise), each patch applied with the reference bspatch.

use std::collections::BTreeSet;

use crate::common::edge::*;
use crate::common::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

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

/// [`crate::common::edge::stock_client_accepts`] with the fixtures' certificate.
fn stock_client_accepts(base: &str, pointer: &str, platform: &str, id: &str) {
    crate::common::edge::stock_client_accepts(base, pointer, platform, id, &expo_certificate_key());
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
/// nginx from deploy/nginx/otapub.conf in front of the S3 server holding `env`'s store.
fn nginx_s3(env: &TestEnv, server: &s3::S3Server) -> Spawned {
    let Backend::S3 { bucket, prefix, .. } = &env.backend else {
        unreachable!("an S3 test environment")
    };
    let_others_pass(env);
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
            ("/var/cache/nginx-otapub", format!("{}/cache", dir.display())),
            ("js_path \"/etc/nginx/njs/\";", js_paths()),
            (
                "/var/log/nginx/otapub-access.log",
                format!("{}/access.log", dir.display()),
            ),
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
        stock_client_accepts(&rt.base, P, "ios", inside);
        stock_client_accepts(&rt.base, "production/android/fp", "android", inside);
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

    // Devices report through nginx; its access log (log_format otapub_insights)
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
    rollout(
        &env,
        &[
            "advance",
            "--gate-log",
            "nginx-local/access.log",
            "--gate-format",
            "nginx",
        ],
    )
    .code(1);
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
    let nginx = nginx_s3(&env, &server);
    // Twice: the second round is answered from nginx's cache, which must key
    // on the object fetched, never on the request's URI.
    agrees("nginx (S3 origin)", &nginx.base, &ids, &want);
    agrees("nginx (S3 origin, cached)", &nginx.base, &ids, &want);
    let inside = ids
        .iter()
        .flatten()
        .find(|i| want.candidate_for(&Some(i.to_string())))
        .unwrap();
    stock_client_accepts(&nginx.base, P, "ios", inside);
    stock_client_accepts(&nginx.base, "production/android/fp", "android", inside);

    // The Cloudflare Worker in workerd, its origin the S3 server.
    let worker = workerd(&env.path("workerd"), &origin);
    agrees("workerd", &worker.base, &ids, &want);
    stock_client_accepts(&worker.base, P, "ios", inside);

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

/// A tree with patches otapub made (SPEC "Patches for the launch asset"):
/// two successive real exports published on production/ios/fp, the first
/// one's bundle also recorded as a build's embedded update, then a rollback
/// (a re-stamp of v1). Each case is a launch-asset request with the headers
/// the stock client sends and the patch it must get (base id and bytes), or
/// `None`: the full asset.
struct PatchScene {
    cases: Vec<PatchCase>,
}

struct PatchCase {
    what: &'static str,
    /// `/assets/<sha256>`
    asset: String,
    headers: Vec<(&'static str, String)>,
    /// (base id, base bundle) of the patch expected, or the full asset.
    patch_from: Option<(String, Vec<u8>)>,
    /// The signed launchAsset.hash of the requested update.
    hash: String,
    full: Vec<u8>,
}

const EMBEDDED_ID: &str = "0B3C5D7E-1F2A-4B6C-8D9E-0F1A2B3C4D5E";

fn patch_scene(env: &TestEnv) -> PatchScene {
    let publish = |v: &str, dist: &str| {
        env.publish_export(&std::path::Path::new(SUCCESSIVE).join(dist), v)
            .assert()
            .success();
    };
    publish("v1", "dist1");
    // What a Release build of the first export's app embeds (made with
    // `expo export:embed` + hermesc: PROVENANCE.txt), under the update id of
    // the build's app.manifest.
    let embedded = std::path::Path::new(SUCCESSIVE).join("embedded-ios.hbc");
    env.embedded_add(EMBEDDED_ID, &embedded).assert().success();
    publish("v2", "dist2");
    env.otapub(&[
        "rollback",
        "--channel",
        "production",
        "--platform",
        "ios",
        "--fingerprint",
        "fp",
    ])
    .assert()
    .success();
    let doc = |key: &str| env.read_signed(key).1;
    let (v1, v2, back) = (
        doc("public/updates/v1/ios/manifest"),
        doc("public/updates/v2/ios/manifest"),
        doc(&format!("public/{P}/manifest")),
    );
    assert_ne!(back["id"], v1["id"], "a re-stamp has an id of its own");
    let id = |d: &Value| d["id"].as_str().unwrap().to_string();
    let sha = |d: &Value| {
        d["launchAsset"]["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    let bundle = |d: &Value| env.read(&format!("public/assets/{}", sha(d)));
    let embedded_bytes = std::fs::read(&embedded).unwrap();
    let case = |what, requested: &Value, current: &str, a_im: Option<&str>, from: Option<(String, Vec<u8>)>| {
        // The stock client's headers (FileDownloader), ids as iOS sends them.
        let mut headers = vec![
            ("Expo-Current-Update-ID", current.to_uppercase()),
            ("Expo-Requested-Update-ID", id(requested).to_uppercase()),
            ("Expo-Embedded-Update-ID", EMBEDDED_ID.to_string()),
            ("EAS-Client-ID", "5B8D8C4E-3B7A-4E0F-9C61-2A1D5E7F9B20".to_string()),
            ("Expo-Platform", "ios".to_string()),
        ];
        headers.extend(a_im.map(|v| ("A-IM", v.to_string())));
        PatchCase {
            what,
            asset: format!("/assets/{}", sha(requested)),
            headers,
            patch_from: from,
            hash: requested["launchAsset"]["hash"].as_str().unwrap().to_string(),
            full: bundle(requested),
        }
    };
    let unknown = "11111111-2222-4333-8444-555555555555";
    PatchScene {
        cases: vec![
            case("v1 -> v2", &v2, &id(&v1), Some("bsdiff"), Some((id(&v1), bundle(&v1)))),
            case(
                "embedded -> v2",
                &v2,
                EMBEDDED_ID,
                Some("bsdiff"),
                Some((EMBEDDED_ID.to_lowercase(), embedded_bytes.clone())),
            ),
            case(
                "v2 -> rollback",
                &back,
                &id(&v2),
                Some("bsdiff"),
                Some((id(&v2), bundle(&v2))),
            ),
            case(
                "embedded -> rollback",
                &back,
                EMBEDDED_ID,
                Some("bsdiff"),
                Some((EMBEDDED_ID.to_lowercase(), embedded_bytes.clone())),
            ),
            case(
                "v1 -> rollback (same bundle: nothing to download)",
                &back,
                &id(&v1),
                Some("bsdiff"),
                None,
            ),
            case("no a-im", &v2, &id(&v1), None, None),
            case("another a-im", &v2, &id(&v1), Some("gzip"), None),
            case("unknown base", &v2, unknown, Some("bsdiff"), None),
            case("base not a UUID", &v2, "not-a-uuid", Some("bsdiff"), None),
            case("base is the update itself", &v2, &id(&v2), Some("bsdiff"), None),
        ],
    }
}

/// Applies `patch` to `base` with the reference bspatch 4.3.
fn bspatch(dir: &std::path::Path, base: &[u8], patch: &[u8]) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let (old, new, p) = (dir.join("old"), dir.join("new"), dir.join("patch"));
    std::fs::write(&old, base).unwrap();
    std::fs::write(&p, patch).unwrap();
    let applied = std::process::Command::new("/usr/bin/bspatch")
        .arg(&old)
        .arg(&new)
        .arg(&p)
        .status()
        .expect("bspatch (Debian's bsdiff package: ./scripts/test.sh installs it)");
    assert!(applied.success(), "bspatch refused the patch");
    std::fs::read(&new).unwrap()
}

/// Every case of `scene`, asked of `base` as the client asks.
fn serves_patches(runtime: &str, dir: &std::path::Path, base: &str, scene: &PatchScene) {
    for c in &scene.cases {
        let a = ask(base, &c.asset, std::slice::from_ref(&c.headers)).remove(0);
        check_patch_answer(runtime, dir, c, a.status, &a.headers, &a.body);
    }
}

/// One answer against its case: the patch (applied with the reference
/// bspatch, hashing to the signed launchAsset.hash) or the full asset.
fn check_patch_answer(
    runtime: &str,
    dir: &std::path::Path,
    c: &PatchCase,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    let what = format!("{runtime}: {}", c.what);
    let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
    match &c.patch_from {
        Some((id, base)) => {
            assert!(status == 200 || status == 226, "{what}: status {status}");
            assert_eq!(header("im").as_deref(), Some("bsdiff"), "{what}");
            assert_eq!(header("expo-base-update-id").as_deref(), Some(id.as_str()), "{what}");
            let vary = header("vary").unwrap_or_default().to_ascii_lowercase();
            assert!(
                header("cache-control").as_deref() == Some("no-store")
                    || (vary.contains("a-im") && vary.contains("expo-current-update-id")),
                "{what}: a cache could store the patch under the asset's URL"
            );
            let patched = bspatch(&dir.join("bspatch"), base, body);
            assert_eq!(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&patched)), c.hash, "{what}");
            // Kept only below 0.6 of the raw asset (SPEC).
            assert!(body.len() * 10 < c.full.len() * 6, "{what}: {} bytes", body.len());
        }
        None => {
            assert_eq!(status, 200, "{what}");
            assert!(header("im").is_none(), "{what}: a patch where the full asset was due");
            assert!(body == c.full.as_slice(), "{what}: not the full asset");
        }
    }
}
/// The patch rule of `otapub serve` and of nginx (deploy/nginx/otapub-local.conf)
/// on a local tree holding the patches otapub made.
#[test]
fn serve_and_nginx_on_a_local_tree_serve_patches_as_the_rule_says() {
    let env = TestEnv::new();
    let scene = patch_scene(&env);
    let served = otapub_serve(&env, &[]);
    serves_patches("otapub serve", &env.path("serve"), &served.base, &scene);
    let nginx = nginx_local(&env);
    serves_patches("nginx (local tree)", &env.path("nginx"), &nginx.base, &scene);
}

/// The patch rule in every runtime in front of a real S3 server: `otapub
/// serve` on the S3 store, nginx (deploy/nginx/otapub.conf, twice: the second
/// round from its cache), the Worker in workerd, and the Lambda@Edge pair
/// under Node (the URI the viewer-request handler leaves, the origin's
/// object there, the headers the viewer-response handler sets).
#[test]
fn every_runtime_in_front_of_s3_serves_patches_as_the_rule_says() {
    let server = s3::S3Server::start();
    let env = TestEnv::on_s3(&server);
    let scene = patch_scene(&env);
    let Backend::S3 { bucket, prefix, .. } = &env.backend else {
        unreachable!()
    };
    server.make_public(bucket, prefix);
    let origin = format!("{}/{bucket}/{prefix}/public", server.direct_endpoint());

    let served = otapub_serve(&env, &[]);
    serves_patches("otapub serve (S3 store)", &env.path("serve"), &served.base, &scene);
    let nginx = nginx_s3(&env, &server);
    serves_patches("nginx (S3 origin)", &env.path("nginx"), &nginx.base, &scene);
    serves_patches("nginx (S3 origin, cached)", &env.path("nginx"), &nginx.base, &scene);
    let worker = workerd(&env.path("workerd"), &origin);
    serves_patches("workerd", &env.path("workerd"), &worker.base, &scene);
    for (c, got) in scene.cases.iter().zip(lambda_edge_patch(
        &env.path("lambda"),
        &origin,
        &scene
            .cases
            .iter()
            .map(|c| (c.asset.clone(), c.headers.clone()))
            .collect::<Vec<_>>(),
    )) {
        check_patch_answer(
            "Lambda@Edge",
            &env.path("lambda"),
            c,
            got.status,
            &got.headers,
            &got.body,
        );
    }
}

/// `cmd` run under `sh` with the umask `umask`, as a user's shell or a CI
/// runner with a restrictive umask runs otapub.
fn under_umask(umask: &str, cmd: std::process::Command) -> assert_cmd::Command {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    for (name, value) in cmd.get_envs() {
        match value {
            Some(v) => sh.env(name, v),
            None => sh.env_remove(name),
        };
    }
    assert_cmd::Command::from_std(sh)
}

/// Permission bits of `path` (not following a link).
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file and directory under `root` (`root` itself first) with its
/// mode, as paths relative to `root`.
fn modes(root: &std::path::Path) -> Vec<(String, bool, u32)> {
    let mut out = vec![(String::new(), true, mode(root))];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let is_dir = std::fs::symlink_metadata(&path).unwrap().is_dir();
            if is_dir {
                stack.push(path.clone());
            }
            out.push((rel, is_dir, mode(&path)));
        }
    }
    out.sort();
    out
}

/// What each file and directory of a store must be: the public side
/// world-readable (and the root passable), everything else the owner's.
fn wrong_modes(root: &std::path::Path) -> Vec<String> {
    modes(root)
        .into_iter()
        .filter(|(rel, is_dir, mode)| {
            let public = rel.is_empty() || rel == "public" || rel.starts_with("public/");
            let want = match (public, is_dir) {
                (true, true) => 0o755,
                (true, false) => 0o644,
                (false, true) => 0o700,
                (false, false) => 0o600,
            };
            *mode != want
        })
        .map(|(rel, _, mode)| format!("{rel:?} {mode:o}"))
        .collect()
}

/// The issue: objects were written 0600 (the temporary file's mode), so
/// nginx's workers (another user) answered 403 for every manifest. Under
/// umask 077, every writer's objects (a publish with patches and an
/// embedded base, a rollout's buckets, an abort's ban and re-stamp) come
/// out 0644 in 0755 directories on the public side, and 0600 in 0700
/// directories under state/. Keys stay the owner's under umask 000.
#[test]
fn under_umask_077_the_public_side_is_world_readable_and_state_stays_private() {
    let env = TestEnv::new();
    env.install_expo_key();
    let run = |args: &[&str]| {
        under_umask("077", env.std_otapub(args)).assert().success();
    };
    let export = |dist: &str| std::path::Path::new(SUCCESSIVE).join(dist).display().to_string();
    let publish = |dist: &str, version: &str, extra: &[&str]| {
        let mut args = vec![
            "publish",
            dist,
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--platform",
            "ios",
            "--version",
            version,
            "--expo-key",
            "keys/expo.pem",
        ];
        args.extend_from_slice(extra);
        run(&args);
    };
    publish(&export("dist1"), "v1", &[]);
    let embedded = export("embedded-ios.hbc");
    run(&[
        "embedded",
        "add",
        "--platform",
        "ios",
        "--fingerprint",
        "fp",
        "--update-id",
        EMBEDDED_ID,
        &embedded,
    ]);
    publish(&export("dist2"), "v2", &["--rollout", "30"]);
    let store = env.store();
    let all = modes(&store);
    let has = |prefix: &str| all.iter().any(|(rel, is_dir, _)| !is_dir && rel.starts_with(prefix));
    for prefix in [
        "public/assets/",
        "public/updates/v2/ios/manifest",
        "public/patches/",
        &format!("public/{P}/rollout/"),
        "state/index.sqlite",
        "state/meta/public/",
        "state/embedded/",
        "state/.lock",
    ] {
        assert!(has(prefix), "the scene writes {prefix}: {all:?}");
    }
    // nginx's workers, another user, serve it: the control and the candidate.
    let nginx = nginx_local(&env);
    let record = env.rollout_record(P);
    let buckets: Vec<u64> = record["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let ids = random_client_ids(200);
    let inside = ids
        .iter()
        .find(|id| device_bucket(id).is_some_and(|b| buckets.contains(&(b as u64))))
        .unwrap();
    let outside = ids
        .iter()
        .find(|id| device_bucket(id).is_some_and(|b| !buckets.contains(&(b as u64))))
        .unwrap();
    stock_client_accepts(&nginx.base, P, "ios", inside);
    stock_client_accepts(&nginx.base, P, "ios", outside);
    under_umask("077", env.std_otapub(&["rollout", "abort"]))
        .args([
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp",
            "--expo-key",
            "keys/expo.pem",
            "--reason",
            "crashes on launch",
        ])
        .assert()
        .success();
    assert!(
        modes(&store).iter().any(|(rel, _, _)| rel.starts_with("state/bans/")),
        "the abort bans the candidate"
    );
    assert_eq!(
        wrong_modes(&store),
        Vec::<String>::new(),
        "files and directories with the wrong mode"
    );

    // Keys: the private halves are the owner's under any umask.
    under_umask("000", env.std_cmd(&["keygen", "--out", "keys/open"]))
        .assert()
        .success();
    assert_eq!(mode(&env.path("keys/open.key")), 0o600);
    env.expo_leaves();
    under_umask(
        "000",
        env.std_cmd(&[
            "keys",
            "expo-leaf",
            "--ca-key",
            "root.key",
            "--ca-cert",
            "root.pem",
            "--days",
            "30",
            "--out",
            "keys/leaf-open",
        ]),
    )
    .assert()
    .success();
    assert_eq!(mode(&env.path("keys/leaf-open.key")), 0o600);
}

/// A store an older otapub wrote (every file 0600; under umask 077 every
/// directory 0700): nginx's workers cannot read it, `check` says so and
/// names the fix, and after `otapub regenerate` the stock client accepts
/// both platforms through nginx run as production runs it.
#[test]
fn a_store_an_older_otapub_wrote_owner_only_is_reported_by_check_and_served_after_regenerate() {
    let env = TestEnv::new();
    env.install_expo_key();
    publish(&env, "v1", &[]);
    // What the older otapub left (its temporary files' mode, renamed into place).
    for (rel, is_dir, _) in modes(&env.store()) {
        let mode = if is_dir { 0o700 } else { 0o600 };
        std::fs::set_permissions(
            env.store().join(rel),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap();
    }
    let nginx = nginx_local(&env);
    let id = random_client_ids(1).remove(0);
    for pointer in [P, "production/android/fp"] {
        let a = &ask_all(&nginx.base, &format!("/{pointer}/manifest"), &[Some(id.clone())])[0];
        // 403 for a file nginx cannot open; 404 where try_files cannot pass a directory.
        assert!(
            [403, 404].contains(&a.status),
            "nginx's workers cannot read {pointer}: HTTP {}",
            a.status
        );
    }
    let out = env.otapub(&["check"]).assert().code(1).get_output().clone();
    let said = stdout(&out);
    assert!(
        said.contains("not readable by other users") && said.contains("run `otapub regenerate`"),
        "{said}"
    );
    let out = env.otapub(&["regenerate"]).assert().success().get_output().clone();
    assert!(stdout(&out).contains("readable by other users"), "{}", stdout(&out));
    assert_eq!(wrong_modes(&env.store()), Vec::<String>::new(), "after regenerate");
    env.otapub(&["check"]).assert().code(0);
    stock_client_accepts(&nginx.base, P, "ios", &id);
    stock_client_accepts(&nginx.base, "production/android/fp", "android", &id);
}

/// nginx creates the last directory of a path it writes (a cache, a log),
/// never those above it: each such path in the shipped files must lie in a
/// directory Debian's nginx package has (it has no /var/cache/nginx).
#[test]
fn the_paths_nginx_writes_in_the_shipped_files_exist_under_debians_nginx() {
    for file in ["nginx/otapub.conf", "nginx/otapub-local.conf"] {
        let text = template(file, &[]);
        let written: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let path = l
                    .strip_prefix("proxy_cache_path ")
                    .or_else(|| l.strip_prefix("access_log "))?;
                path.split_whitespace().next()
            })
            .collect();
        assert!(!written.is_empty(), "{file} writes a log");
        for path in written {
            let parent = std::path::Path::new(path).parent().unwrap();
            assert!(
                parent.is_dir(),
                "{file}: nginx cannot create {path}: Debian's nginx has no {}",
                parent.display()
            );
        }
    }
}
