//! The path a new user takes, in a real app made from Expo's published
//! template (create-expo-app 5.0.0, expo-template-default 57.0.28: Expo SDK
//! 57, cached by scripts/install-test-servers.sh): otapub installed from
//! scripts/package-npm's tarballs, `npx otapub init`, `expo prebuild` (the
//! native update URL, certificate and runtime version read back from
//! AndroidManifest.xml and Expo.plist), `npx otapub publish`, `otapub
//! serve`, and the stock client's rules with the certificate init wrote;
//! then a changed screen, published again and served.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::edge::{free_port, stock_client_accepts, wait_for_port, Spawned};
use crate::common::expo::{copy_app, template_app};
use serde_json::Value;

fn run(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    crate::common::expo::run(dir, Path::new(program), args)
}

/// `program ARGS`, which must succeed; its standard output.
fn ok(dir: &Path, program: &str, args: &[&str]) -> String {
    String::from_utf8(crate::common::expo::ok(dir, Path::new(program), args).stdout).expect("UTF-8 output")
}

/// The app with otapub installed from the tarballs scripts/package-npm packs.
fn app_with_otapub(tmp: &Path) -> Option<PathBuf> {
    let template = template_app()?;
    let packs = tmp.join("packs");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ok(
        root,
        "node",
        &[
            root.join("scripts/package-npm").to_str().unwrap(),
            packs.to_str().unwrap(),
            "--binary",
            env!("CARGO_BIN_EXE_otapub"),
        ],
    );
    let mut tarballs: Vec<String> = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".tgz"))
        .collect();
    tarballs.sort();
    assert_eq!(tarballs.len(), 2, "the platform package and otapub: {tarballs:?}");
    let app = tmp.join("app");
    copy_app(&template, &app);
    let mut args = vec!["install", "--save-dev", "--no-audit", "--no-fund", "--loglevel=error"];
    args.extend(tarballs.iter().map(String::as_str));
    ok(&app, "npm", &args);
    ok(&app, "git", &["add", "-A"]);
    ok(
        &app,
        "git",
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.invalid",
            "commit",
            "-qm",
            "npm i -D otapub",
        ],
    );
    Some(app)
}

fn npx_otapub(app: &Path, args: &[&str]) -> String {
    let mut all = vec!["--no-install", "otapub"];
    all.extend(args);
    ok(app, "npx", &all)
}

fn resolve_runtime_version(app: &Path, platform: &str) -> String {
    let out = ok(
        app,
        "npx",
        &[
            "--no-install",
            "expo-updates",
            "runtimeversion:resolve",
            "--platform",
            platform,
        ],
    );
    let v: Value = serde_json::from_str(&out).expect("runtimeversion:resolve prints JSON");
    v["runtimeVersion"].as_str().expect("a runtime version").to_string()
}

fn commit_all(app: &Path, message: &str) {
    ok(app, "git", &["add", "-A"]);
    ok(
        app,
        "git",
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.invalid",
            "commit",
            "-qm",
            message,
        ],
    );
}

/// `<meta-data android:name="NAME" android:value="VALUE"/>` of the manifest.
fn android_meta(manifest: &str, name: &str) -> Option<String> {
    let at = manifest.find(&format!("android:name=\"{name}\""))?;
    let rest = &manifest[at..];
    let v = rest.find("android:value=\"")? + "android:value=\"".len();
    let end = rest[v..].find('"')?;
    Some(
        rest[v..v + end]
            .replace("&#xA;", "\n")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// `<key>NAME</key><string>VALUE</string>` of a plist.
fn plist_string(plist: &str, key: &str) -> Option<String> {
    let at = plist.find(&format!("<key>{key}</key>"))?;
    let rest = &plist[at..];
    let v = rest.find("<string>")? + "<string>".len();
    let end = rest[v..].find("</string>")?;
    Some(rest[v..v + end].to_string())
}

fn certificate_key(pem: &[u8]) -> rsa::RsaPublicKey {
    use rsa::pkcs8::DecodePublicKey;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    rsa::RsaPublicKey::from_public_key_der(cert.tbs_certificate.subject_pki.raw).expect("RSA key")
}

fn serve(app: &Path, port: u16) -> Spawned {
    let mut child = Command::new("npx")
        .args([
            "--no-install",
            "otapub",
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(app)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("npx otapub serve");
    wait_for_port(&mut child, port, "otapub serve", None);
    Spawned {
        child,
        base: format!("http://127.0.0.1:{port}"),
        name: "otapub serve",
    }
}

#[test]
fn init_prebuild_publish_and_serve_a_template_app_with_the_fingerprint_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(app) = app_with_otapub(tmp.path()) else {
        return;
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    // Outside a project, init refuses and writes nothing.
    let outside = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let refused = run(&outside, env!("CARGO_BIN_EXE_otapub"), &["init", "--base-url", &base]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an Expo project"));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    // The template has no runtime version: builds would take no update.
    let before: Value = serde_json::from_slice(&std::fs::read(app.join("app.json")).unwrap()).unwrap();
    assert!(before["expo"].get("runtimeVersion").is_none());
    assert!(before["expo"]["ios"].get("bundleIdentifier").is_none());

    let said = npx_otapub(
        &app,
        &["init", "--runtime-version-policy", "fingerprint", "--base-url", &base],
    );
    assert!(said.contains("wrote"), "{said}");
    let config: Value = serde_json::from_slice(&std::fs::read(app.join("app.json")).unwrap()).unwrap();
    let expo = &config["expo"];
    assert_eq!(expo["runtimeVersion"]["policy"], "fingerprint");
    assert_eq!(expo["updates"]["enabled"], true);
    assert_eq!(expo["updates"]["codeSigningCertificate"], "./certs/certificate.pem");
    assert_eq!(expo["updates"]["codeSigningMetadata"]["alg"], "rsa-v1_5-sha256");
    assert_eq!(expo["ios"]["bundleIdentifier"], "com.app");
    assert_eq!(expo["android"]["package"], "com.app");
    // Everything else the template had is still there, in its order.
    for (k, v) in before["expo"].as_object().unwrap() {
        if k != "ios" && k != "android" && k != "plugins" {
            assert_eq!(&expo[k], v, "{k}");
        }
    }
    assert_eq!(
        expo["plugins"].as_array().unwrap().last().unwrap(),
        &serde_json::json!(["otapub", { "baseUrl": base, "channel": "production" }])
    );
    for f in [
        "otapub.toml",
        "keys/otapub.key",
        "keys/otapub.pub",
        "keys/expo-private-key.pem",
        "certs/certificate.pem",
    ] {
        assert!(app.join(f).is_file(), "{f}");
    }
    // Private keys stay out of git; the certificate the build embeds goes in.
    let ignored = |f: &str| run(&app, "git", &["check-ignore", "-q", f]).status.success();
    assert!(ignored("keys/otapub.key") && ignored("keys/expo-private-key.pem"));
    assert!(!ignored("certs/certificate.pem"));

    // A second run changes nothing, byte for byte.
    let files = [
        "app.json",
        "otapub.toml",
        ".gitignore",
        "keys/otapub.key",
        "certs/certificate.pem",
    ];
    let snapshot = |app: &Path| -> Vec<Vec<u8>> { files.iter().map(|f| std::fs::read(app.join(f)).unwrap()).collect() };
    let first = snapshot(&app);
    let again = npx_otapub(
        &app,
        &["init", "--runtime-version-policy", "fingerprint", "--base-url", &base],
    );
    assert!(again.contains("nothing to change"), "{again}");
    assert_eq!(snapshot(&app), first);
    commit_all(&app, "otapub init");

    // The fingerprint does not move between init, prebuild and publish.
    let fp = |p: &str| resolve_runtime_version(&app, p);
    let (ios_fp, android_fp) = (fp("ios"), fp("android"));
    assert_ne!(ios_fp, android_fp);
    ok(&app, "npx", &["--no-install", "expo", "prebuild", "--no-install"]);
    assert_eq!((fp("ios"), fp("android")), (ios_fp.clone(), android_fp.clone()));

    // What the native builds carry.
    let certificate = std::fs::read_to_string(app.join("certs/certificate.pem")).unwrap();
    let manifest = std::fs::read_to_string(app.join("android/app/src/main/AndroidManifest.xml")).unwrap();
    assert_eq!(
        android_meta(&manifest, "expo.modules.updates.EXPO_UPDATE_URL").as_deref(),
        Some(format!("{base}/production/android/{android_fp}/manifest").as_str())
    );
    assert_eq!(
        android_meta(&manifest, "expo.modules.updates.ENABLED").as_deref(),
        Some("true")
    );
    assert_eq!(
        android_meta(&manifest, "expo.modules.updates.CODE_SIGNING_CERTIFICATE")
            .as_deref()
            .map(str::trim),
        Some(certificate.trim())
    );
    let strings = std::fs::read_to_string(app.join("android/app/src/main/res/values/strings.xml")).unwrap();
    // The fingerprint policy: the build computes its runtime version itself.
    assert!(
        strings.contains(r#"<string name="expo_runtime_version">file:fingerprint</string>"#),
        "{strings}"
    );
    let plist_path = std::fs::read_dir(app.join("ios"))
        .unwrap()
        .map(|e| e.unwrap().path().join("Supporting/Expo.plist"))
        .find(|p| p.is_file())
        .expect("ios/<name>/Supporting/Expo.plist");
    let plist = std::fs::read_to_string(plist_path).unwrap();
    assert_eq!(
        plist_string(&plist, "EXUpdatesURL").as_deref(),
        Some(format!("{base}/production/ios/{ios_fp}/manifest").as_str())
    );
    assert_eq!(
        plist_string(&plist, "EXUpdatesRuntimeVersion").as_deref(),
        Some("file:fingerprint")
    );
    assert_eq!(
        plist_string(&plist, "EXUpdatesCodeSigningCertificate")
            .as_deref()
            .map(str::trim),
        Some(certificate.trim())
    );

    // publish, from the project, with no flag.
    let published: Value = serde_json::from_str(&npx_otapub(&app, &["publish", "--json"])).unwrap();
    let packages = published["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 2);
    let mut first_ids = std::collections::BTreeMap::new();
    for p in packages {
        let platform = p["platform"].as_str().unwrap();
        let want = if platform == "ios" { &ios_fp } else { &android_fp };
        assert_eq!(p["runtimeVersion"], want.as_str());
        assert_eq!(p["url"], format!("{base}/production/{platform}/{want}/manifest"));
        assert_eq!(p["buildRecorded"], false);
        first_ids.insert(platform.to_string(), p["id"].as_str().unwrap().to_string());
    }
    let key = certificate_key(certificate.as_bytes());
    let served = serve(&app, port);
    // What a device of each platform gets, checked as the stock client checks it.
    let client_check = |platform: &str, rv: &str| {
        let pointer = format!("production/{platform}/{rv}");
        stock_client_accepts(
            &served.base,
            &pointer,
            platform,
            "0b5e8d1c-3f7a-4c2e-9d61-5a4f3e2b1c0d",
            &key,
        )
    };
    for (platform, want) in [("ios", &ios_fp), ("android", &android_fp)] {
        let doc = client_check(platform, want);
        assert_eq!(doc["id"], first_ids[platform].as_str());
        assert_eq!(doc["runtimeVersion"], want.as_str());
    }
    let log = npx_otapub(&app, &["log", "--json"]);
    assert!(
        log.contains("otapub init"),
        "the last commit's subject is the message: {log}"
    );

    // A changed screen, published and served.
    let screen = app.join("src/app/index.tsx");
    let text = std::fs::read_to_string(&screen).expect("the template's home screen");
    let changed = text.replacen("</", "{'otapub was here'}</", 1);
    assert_ne!(changed, text);
    std::fs::write(&screen, changed).unwrap();
    commit_all(&app, "the home screen says otapub was here");
    assert_eq!(
        (fp("ios"), fp("android")),
        (ios_fp.clone(), android_fp.clone()),
        "JS changes keep the fingerprint"
    );
    let again: Value = serde_json::from_str(&npx_otapub(&app, &["publish", "--json"])).unwrap();
    for p in again["packages"].as_array().unwrap() {
        let platform = p["platform"].as_str().unwrap();
        assert_eq!(p["new"], true);
        assert_ne!(p["id"].as_str().unwrap(), first_ids[platform]);
        let want = if platform == "ios" { &ios_fp } else { &android_fp };
        let doc = client_check(platform, want);
        assert_eq!(doc["id"], p["id"]);
    }
    let status = npx_otapub(&app, &["status", "--json"]);
    assert!(status.contains("the home screen says otapub was here"), "{status}");
}

#[test]
fn the_app_version_policy_and_a_dynamic_app_config() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(app) = app_with_otapub(tmp.path()) else {
        return;
    };
    let base = "https://updates.example.com/ota";

    // app.config.js is code: init writes none of it, and prints what to set.
    let json_config = std::fs::read_to_string(app.join("app.json")).unwrap();
    std::fs::write(
        app.join("app.config.js"),
        "module.exports = ({ config }) => ({ ...config, name: 'dynamic' });\n",
    )
    .unwrap();
    let said = npx_otapub(&app, &["init", "--base-url", base, "--channel", "beta", "--no-install"]);
    assert!(
        said.contains("app.config.js is code, which init does not edit"),
        "{said}"
    );
    assert!(
        said.contains(r#"expo.runtimeVersion = {"policy":"appVersion"}"#),
        "{said}"
    );
    assert!(said.contains(r#"expo.plugins["otapub"]"#), "{said}");
    assert_eq!(std::fs::read_to_string(app.join("app.json")).unwrap(), json_config);
    assert_eq!(
        std::fs::read_to_string(app.join("app.config.js")).unwrap(),
        "module.exports = ({ config }) => ({ ...config, name: 'dynamic' });\n"
    );
    std::fs::remove_file(app.join("app.config.js")).unwrap();
    // A flag that disagrees with the otapub.toml that init wrote is refused.
    let refused = run(
        &app,
        "npx",
        &[
            "--no-install",
            "otapub",
            "init",
            "--base-url",
            "https://elsewhere.example.com",
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("otapub.toml already says base_url"));

    // The default policy: appVersion, as `eas update:configure` sets.
    npx_otapub(&app, &["init", "--base-url", base, "--channel", "beta"]);
    let config: Value = serde_json::from_slice(&std::fs::read(app.join("app.json")).unwrap()).unwrap();
    assert_eq!(config["expo"]["runtimeVersion"]["policy"], "appVersion");
    let version = config["expo"]["version"].as_str().unwrap().to_string();
    commit_all(&app, "otapub init, appVersion");
    assert_eq!(resolve_runtime_version(&app, "android"), version);
    ok(
        &app,
        "npx",
        &[
            "--no-install",
            "expo",
            "prebuild",
            "--no-install",
            "--platform",
            "android",
        ],
    );
    let manifest = std::fs::read_to_string(app.join("android/app/src/main/AndroidManifest.xml")).unwrap();
    assert_eq!(
        android_meta(&manifest, "expo.modules.updates.EXPO_UPDATE_URL").as_deref(),
        Some(format!("{base}/beta/android/{version}/manifest").as_str())
    );
    let strings = std::fs::read_to_string(app.join("android/app/src/main/res/values/strings.xml")).unwrap();
    assert!(
        strings.contains(&format!(r#"<string name="expo_runtime_version">{version}</string>"#)),
        "{strings}"
    );
    assert_eq!(resolve_runtime_version(&app, "android"), version, "prebuild keeps it");

    // A build of it recorded, publish requires one, and finds it.
    npx_otapub(
        &app,
        &["builds", "add", "--platform", "android", "--runtime-version", &version],
    );
    let published: Value = serde_json::from_str(&npx_otapub(
        &app,
        &["publish", "--platform", "android", "--require-build", "--json"],
    ))
    .unwrap();
    let p = &published["packages"][0];
    assert_eq!(p["runtimeVersion"], version.as_str());
    assert_eq!(p["url"], format!("{base}/beta/android/{version}/manifest"));
    assert_eq!(p["buildRecorded"], true);
}
