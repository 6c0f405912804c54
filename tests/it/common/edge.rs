//! The edge runtimes the staged-rollout rule runs in, started on 127.0.0.1
//! from `deploy/`'s own templates: `otapub serve`, nginx with njs (Debian's
//! packages), workerd (the npm package) and Node for the Lambda@Edge
//! function. `scripts/install-test-servers.sh` installs them; a test that
//! cannot start one fails, naming what to install.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use super::{parse_multipart, tools_dir};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rsa::signature::Verifier;
use serde_json::Value;
use sha2::Sha256;

pub const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// A child process killed when dropped, with the processes it forked
/// (nginx's workers, which outlive a killed master).
pub struct Spawned {
    pub child: Child,
    pub base: String,
    pub name: &'static str,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let forked = descendants(self.child.id());
        if !forked.is_empty() {
            // On SIGTERM nginx's master stops its workers and reaps them.
            signal("TERM", self.child.id());
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever the master left running.
        for pid in forked {
            if Path::new(&format!("/proc/{pid}")).exists() {
                signal("KILL", pid);
            }
        }
    }
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// The processes descended from `pid`, read from /proc (children before
/// their own children).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, _) in parents.iter().filter(|(_, pp)| *pp == parent) {
            out.push(p);
            frontier.push(p);
        }
    }
    out
}

/// A process's user ids and group ids, as /proc lists them.
pub type ProcessIds = (Vec<u32>, Vec<u32>);

/// The user and group ids of a process (`Uid:`/`Gid:` of /proc/PID/status:
/// real, effective, saved, filesystem).
pub fn process_ids(pid: u32) -> Option<ProcessIds> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let ids = |field: &str| -> Option<Vec<u32>> {
        let line = status.lines().find_map(|l| l.strip_prefix(field))?;
        line.split_whitespace().map(|n| n.parse().ok()).collect()
    };
    Some((ids("Uid:")?, ids("Gid:")?))
}

/// A port nothing listens on now, for a server a test is about to start.
/// Every test runs in one process: a port handed out once is never handed
/// out again, so two tests starting servers at once cannot both be given
/// the port the kernel freed between them.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Waits until something listens on `port` (or the child has died).
pub fn wait_for_port(child: &mut Child, port: u16, what: &str, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = || {
            log.map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .unwrap_or_default()
        };
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening on 127.0.0.1:{port}\n{}",
                log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A deploy template with its example values replaced; each must occur.
pub fn template(path: &str, replacements: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(Path::new(DEPLOY).join(path)).expect("template");
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "{path} no longer contains {from:?}: update the test with the template"
        );
        text = text.replace(from, to);
    }
    text
}

/// The user nginx's workers run as: Debian's nginx.conf says `user www-data;`.
pub const NGINX_USER: &str = "www-data";

/// The uid and gid of `user`, from the system's user database.
pub fn user_ids(user: &str) -> (u32, u32) {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .expect("getent (libc-bin)");
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let fields: Vec<&str> = line.trim().split(':').collect();
    match (
        fields.get(2).and_then(|u| u.parse().ok()),
        fields.get(3).and_then(|g| g.parse().ok()),
    ) {
        (Some(uid), Some(gid)) => (uid, gid),
        _ => panic!("no user {user} on this machine (getent passwd {user}: {line:?}); Debian's base-passwd has it"),
    }
}

/// nginx (with njs) serving `site` (an http-level config) from `dir`, run
/// as production runs it: a master process (root, as the tests run) that
/// reads the configuration and opens the logs, and workers that serve as
/// the unprivileged [`NGINX_USER`] — they can read only what is readable by
/// others, and reach `dir` and the store only through directories others
/// may pass. Every worker is checked to run as that user.
pub fn nginx(dir: &Path, site: &str, port: u16) -> Spawned {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    // The test's own directories, as a deployment's would be (never the store).
    for d in [dir.to_path_buf(), dir.join("tmp")] {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    let modules = std::env::var("OTAPUB_NGINX_MODULES").unwrap_or_else(|_| "/usr/lib/nginx/modules".into());
    // The temp paths: nginx creates each and gives it to the workers' user.
    let main = format!(
        "user {NGINX_USER};\ndaemon off;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
         load_module {modules}/ngx_http_js_module.so;\nevents {{ worker_connections 512; }}\n\
         http {{\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n\
           uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let bin = std::env::var("OTAPUB_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
    let child = Command::new(&bin)
        .args([
            "-p",
            &d.to_string(),
            "-c",
            &format!("{d}/nginx.conf"),
            "-e",
            &format!("{d}/error.log"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin} ({e}); run ./scripts/test.sh, which installs nginx and libnginx-mod-http-js")
        });
    // Killed, workers and all, however the test ends.
    let mut nginx = Spawned {
        base: format!("http://127.0.0.1:{port}"),
        name: "nginx",
        child,
    };
    wait_for_port(&mut nginx.child, port, "nginx", Some(&dir.join("error.log")));
    assert_workers_run_as(nginx.child.id(), NGINX_USER, &dir.join("error.log"));
    nginx
}

/// Waits until nginx's master `master` has forked its workers and each has
/// dropped to `user`; fails naming the ids they run as.
fn assert_workers_run_as(master: u32, user: &str, log: &Path) {
    let (uid, gid) = user_ids(user);
    let want = |ids: &ProcessIds| ids.0.iter().all(|&u| u == uid) && ids.1.iter().all(|&g| g == gid);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let workers: Vec<(u32, Option<ProcessIds>)> =
            descendants(master).into_iter().map(|p| (p, process_ids(p))).collect();
        if !workers.is_empty() && workers.iter().all(|(_, ids)| ids.as_ref().is_some_and(want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nginx's workers must run as {user} (uid {uid}, gid {gid}), as in production; they run as \
             (pid, (uids, gids)) {workers:?}. nginx drops to that user only when its master runs as root: \
             run the tests as root, as CI does\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// workerd running `deploy/cloudflare/worker.js` (and the bucket module it
/// imports) with `ORIGIN` bound to `origin`.
pub fn workerd(dir: &Path, origin: &str) -> Spawned {
    let port = free_port();
    for module in ["cloudflare/worker.js", "edge/bucket.mjs", "edge/patch.mjs"] {
        let to = dir.join(module);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(DEPLOY).join(module), to).unwrap();
    }
    let config = format!(
        r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .otapub),
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:{port}", http = (), service = "main")],
);
const otapub :Workerd.Worker = (
  modules = [
    (name = "cloudflare/worker.js", esModule = embed "cloudflare/worker.js"),
    (name = "edge/bucket.mjs", esModule = embed "edge/bucket.mjs"),
    (name = "edge/patch.mjs", esModule = embed "edge/patch.mjs"),
  ],
  compatibilityDate = "2024-09-23",
  bindings = [(name = "ORIGIN", text = "{origin}")],
  globalOutbound = "internet",
);
"#
    );
    std::fs::write(dir.join("config.capnp"), config).unwrap();
    let bin = tools_dir().join("edge/node_modules/@cloudflare/workerd-linux-64/bin/workerd");
    let log = std::fs::File::create(dir.join("workerd.log")).unwrap();
    let mut child = Command::new(&bin)
        .args(["serve", "config.capnp"])
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); run ./scripts/test.sh, which installs workerd from npm",
                bin.display()
            )
        });
    wait_for_port(&mut child, port, "workerd", Some(&dir.join("workerd.log")));
    Spawned {
        child,
        base: format!("http://127.0.0.1:{port}"),
        name: "workerd",
    }
}

/// Runs `body` under Node, as an async function of `module` (the deploy/
/// module, imported), `ids` and `arg`, in `dir`; returns the JSON it returns.
fn node<T: serde::de::DeserializeOwned>(
    dir: &Path,
    module: &str,
    body: &str,
    ids: &(impl serde::Serialize + ?Sized),
    arg: &str,
    env: &[(&str, &str)],
) -> T {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ids.json"), serde_json::to_vec(ids).unwrap()).unwrap();
    let runner = format!(
        "const fs = require('fs');\n\
         (async () => {{\n\
           const module = await import(require('url').pathToFileURL(process.argv[2]));\n\
           const ids = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));\n\
           const arg = process.argv[4];\n\
           const out = await (async () => {{ {body} }})();\n\
           fs.writeFileSync(process.argv[5], JSON.stringify(out));\n\
         }})().catch((e) => {{ console.error(e); process.exit(1); }});\n"
    );
    std::fs::write(dir.join("run.js"), runner).unwrap();
    let out = Command::new("node")
        .arg(dir.join("run.js"))
        .arg(Path::new(DEPLOY).join(module))
        .arg(dir.join("ids.json"))
        .arg(arg)
        .arg(dir.join("out.json"))
        .envs(env.iter().copied())
        .output()
        .expect("node (install Node.js 20)");
    assert!(out.status.success(), "node: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(dir.join("out.json")).expect("out.json")).expect("JSON from node")
}

/// Runs `deploy/cloudfront/rollout-edge.mjs` under Node for each id, with
/// the viewer-request event shape of AWS's documentation; returns the URI
/// each request leaves with. `origin` stands in for the distribution.
pub fn lambda_edge(dir: &Path, origin: &str, uri: &str, ids: &[Option<String>]) -> Vec<String> {
    let body = r#"
  const out = [];
  for (const id of ids) {
    const headers = { host: [{ key: 'Host', value: 'd111111abcdef8.cloudfront.net' }] };
    if (id !== null) headers['eas-client-id'] = [{ key: 'EAS-Client-ID', value: id }];
    const event = { Records: [{ cf: {
      config: { distributionDomainName: 'd111111abcdef8.cloudfront.net', distributionId: 'EDFDVBD6EXAMPLE',
                eventType: 'viewer-request', requestId: '4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==' },
      request: { clientIp: '203.0.113.178', headers, method: 'GET', querystring: '', uri: arg },
    } }] };
    out.push((await module.handler(event)).uri);
  }
  return out;"#;
    node(
        dir,
        "cloudfront/rollout-edge.mjs",
        body,
        ids,
        uri,
        &[("OTAPUB_EDGE_BASE", origin)],
    )
}

/// Runs `deploy/cloudfront/patch-edge.mjs` under Node for each (asset URI,
/// request headers): the viewer-request handler with AWS's event shape, a
/// GET of the origin's object at the URI it leaves (what CloudFront would
/// fetch and cache), then the viewer-response handler on that response.
/// `origin` stands in for the distribution.
pub fn lambda_edge_patch(dir: &Path, origin: &str, requests: &[(String, Vec<(&str, String)>)]) -> Vec<Answer> {
    let body = r#"
  const out = [];
  for (const [uri, sent] of ids) {
    const headers = { host: [{ key: 'Host', value: 'd111111abcdef8.cloudfront.net' }] };
    for (const [name, value] of sent) headers[name.toLowerCase()] = [{ key: name, value }];
    const config = { distributionDomainName: 'd111111abcdef8.cloudfront.net', distributionId: 'EDFDVBD6EXAMPLE',
                     eventType: 'viewer-request', requestId: '4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==' };
    const request = await module.handler({ Records: [{ cf: { config,
      request: { clientIp: '203.0.113.178', headers, method: 'GET', querystring: '', uri } } }] });
    const fetched = await fetch(arg + request.uri);
    const body = Buffer.from(await fetched.arrayBuffer());
    const originHeaders = {};
    fetched.headers.forEach((value, name) => { originHeaders[name] = [{ key: name, value }]; });
    const response = await module.responseHandler({ Records: [{ cf: {
      config: { ...config, eventType: 'viewer-response' }, request,
      response: { status: String(fetched.status), statusDescription: fetched.statusText, headers: originHeaders } } }] });
    const flat = {};
    for (const [name, list] of Object.entries(response.headers)) flat[name] = list[0].value;
    out.push({ status: Number(response.status), headers: flat, body: body.toString('base64') });
  }
  return out;"#;
    #[derive(serde::Deserialize)]
    struct Raw {
        status: u16,
        headers: std::collections::BTreeMap<String, String>,
        body: String,
    }
    let requests: Vec<Value> = requests.iter().map(|(uri, h)| serde_json::json!([uri, h])).collect();
    let raw: Vec<Raw> = node(
        dir,
        "cloudfront/patch-edge.mjs",
        body,
        &requests,
        origin,
        &[("OTAPUB_EDGE_BASE", origin)],
    );
    raw.into_iter()
        .map(|r| {
            use base64::Engine;
            let mut headers = reqwest::header::HeaderMap::new();
            for (name, value) in r.headers {
                headers.insert(
                    reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    reqwest::header::HeaderValue::from_str(&value).unwrap(),
                );
            }
            Answer {
                status: r.status,
                headers,
                body: base64::engine::general_purpose::STANDARD.decode(r.body).unwrap(),
            }
        })
        .collect()
}

/// The bucket `deploy/edge/bucket.mjs` gives each id, under Node.
pub fn bucket_mjs(dir: &Path, ids: &[Option<String>]) -> Vec<Option<u8>> {
    node(dir, "edge/bucket.mjs", "return ids.map(module.default);", ids, "", &[])
}

/// One response.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// GETs `base + path` once per header list, 32 at a time; answers in order.
pub fn ask(base: &str, path: &str, requests: &[Vec<(&str, String)>]) -> Vec<Answer> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    rt.block_on(async {
        stream::iter(requests)
            .map(|headers| {
                let mut req = client.get(&url);
                for (name, value) in headers {
                    req = req.header(*name, value);
                }
                async move {
                    let resp = req.send().await.expect("GET");
                    Answer {
                        status: resp.status().as_u16(),
                        headers: resp.headers().clone(),
                        body: resp.bytes().await.expect("body").to_vec(),
                    }
                }
            })
            .buffered(32)
            .collect()
            .await
    })
}

/// GETs `base + path` once per id as an iOS client's update check
/// (`None`: no eas-client-id); answers in the order of `ids`.
pub fn ask_all(base: &str, path: &str, ids: &[Option<String>]) -> Vec<Answer> {
    let requests: Vec<Vec<(&str, String)>> = ids
        .iter()
        .map(|id| {
            let mut h = vec![
                ("expo-platform", "ios".to_string()),
                ("expo-protocol-version", "1".to_string()),
            ];
            h.extend(id.iter().map(|id| ("eas-client-id", id.clone())));
            h
        })
        .collect();
    ask(base, path, &requests)
}

/// Devices checking in on the candidate `candidate` through `base`, as the
/// stock client does; `failed(i)` is the `expo-recent-failed-update-ids`
/// device i sends, if any. Each must be answered.
pub fn check_in(base: &str, path: &str, ids: &[String], candidate: &str, failed: impl Fn(usize) -> Option<String>) {
    let requests: Vec<Vec<(&str, String)>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut h = vec![
                ("eas-client-id", id.clone()),
                ("expo-current-update-id", candidate.to_string()),
            ];
            h.extend(failed(i).map(|f| ("expo-recent-failed-update-ids", f)));
            h
        })
        .collect();
    for a in ask(base, path, &requests) {
        assert_eq!(a.status, 200);
    }
}

/// `otapub serve` on the test store, with `extra` options.
pub fn otapub_serve(env: &super::TestEnv, extra: &[&str]) -> Spawned {
    otapub_serve_on(env, free_port(), extra)
}

/// [`otapub_serve`] on a port chosen beforehand (the store's base URL names it).
pub fn otapub_serve_on(env: &super::TestEnv, port: u16, extra: &[&str]) -> Spawned {
    let mut c = env.std_cmd(&[
        "serve",
        "--store",
        &env.store_url(),
        "--addr",
        &format!("127.0.0.1:{port}"),
    ]);
    c.args(extra).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().expect("otapub serve");
    wait_for_port(&mut child, port, "otapub serve", None);
    Spawned {
        child,
        base: format!("http://127.0.0.1:{port}"),
        name: "otapub serve",
    }
}

/// A pointer's Expo body as `platform`'s stock client checks it, asked with
/// the headers it sends: the multipart and protocol headers, the RSA
/// signature over the manifest part with the app's certificate, then every
/// asset the manifest names downloaded from `base` and hashed. Returns the
/// manifest.
pub fn stock_client_accepts(base: &str, pointer: &str, platform: &str, id: &str, key: &rsa::RsaPublicKey) -> Value {
    let headers = vec![
        ("expo-platform", platform.to_string()),
        ("expo-protocol-version", "1".to_string()),
        ("eas-client-id", id.to_string()),
    ];
    let a = &ask(base, &format!("/{pointer}/manifest"), &[headers])[0];
    assert_eq!(a.status, 200, "{base}/{pointer}/manifest");
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
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
        .verify(&part, &rsa::pkcs1v15::Signature::try_from(raw.as_slice()).unwrap())
        .expect("the stock client's signature check");
    let doc: Value = serde_json::from_slice(&part).unwrap();
    let mut assets = vec![&doc["launchAsset"]];
    assets.extend(doc["assets"].as_array().expect("assets"));
    for asset in assets {
        // The store's base URL is not the runtime's: the object's path under it.
        let url = asset["url"].as_str().expect("url");
        let path = &url[url.rfind("/assets/").expect("an assets/ URL")..];
        let got = &ask(base, path, &[vec![("expo-platform", platform.to_string())]])[0];
        assert_eq!(got.status, 200, "{base}{path}");
        use sha2::Digest;
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&got.body)),
            asset["hash"],
            "{base}{path}"
        );
    }
    doc
}

/// deploy/nginx's `js_path` lines for this checkout.
pub fn js_paths() -> String {
    format!("js_path \"{DEPLOY}/nginx/\";\njs_path \"{DEPLOY}/edge/\";")
}

/// The test's directory, as a deployment's parent of the store (`/srv`):
/// others may pass through it, not list it. Nothing otapub wrote is touched.
pub fn let_others_pass(env: &super::TestEnv) {
    std::fs::set_permissions(env.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
}

/// nginx from deploy/nginx/otapub-local.conf serving `env`'s local tree;
/// its access log (log_format otapub_insights) is `nginx-local/access.log`.
pub fn nginx_local(env: &super::TestEnv) -> Spawned {
    let_others_pass(env);
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
            (
                "/var/log/nginx/otapub-access.log",
                format!("{}/access.log", dir.display()),
            ),
        ],
    );
    nginx(&dir, &site, port)
}
