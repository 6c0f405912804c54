//! What the stock expo-updates client accepts: the real fixtures published
//! with the real Expo-generated key, served by `otapub serve` on 127.0.0.1,
//! and every pointer checked the way the client does — multipart parsed by
//! multer, the signature header parsed as a structured field (sfv), the RSA
//! signature verified against the certificate with the `rsa` crate, every
//! asset downloaded and hashed.

use std::process::{Command, Stdio};

use crate::common::edge::{free_port, otapub_serve_on, wait_for_port, Spawned};
use crate::common::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::signature::Verifier;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A store with a live manifest (production), a noUpdateAvailable directive
/// (staging) and a rollBackToEmbedded directive (beta) on both platforms,
/// signed with the Expo key, served by `otapub serve`.
fn published() -> (TestEnv, Spawned) {
    let env = TestEnv::new();
    env.install_expo_key();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let blank = format!("{FIXTURES}/expo-blank/dist");
    let tabs = format!("{FIXTURES}/expo-tabs/dist");
    let run = |args: &[&str]| {
        env.otapub(args)
            .args(["--expo-key", "keys/expo.pem", "--base-url", &base])
            .assert()
            .success();
    };
    let config = format!("{FIXTURES}/expo-tabs/expoConfig.json");
    run(&[
        "publish",
        &blank,
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--version",
        "b1",
    ]);
    run(&[
        "publish",
        &tabs,
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
        "--version",
        "t1",
        "--expo-config",
        &config,
    ]);
    run(&[
        "publish",
        &blank,
        "--channel",
        "legacy",
        "--fingerprint",
        "fp1",
        "--version",
        "l1",
    ]);
    run(&[
        "publish",
        &blank,
        "--channel",
        "staging",
        "--fingerprint",
        "fp1",
        "--version",
        "s1",
    ]);
    run(&[
        "publish",
        &blank,
        "--channel",
        "beta",
        "--fingerprint",
        "fp1",
        "--version",
        "e1",
    ]);
    for p in ["ios", "android"] {
        run(&["ban", "s1", "--platform", p, "--reason", "bad build"]);
        run(&[
            "rollback",
            "--channel",
            "beta",
            "--platform",
            p,
            "--fingerprint",
            "fp1",
            "--to-embedded",
        ]);
    }
    let served = otapub_serve_on(&env, port, &[]);
    assert_eq!(served.base, base);
    (env, served)
}

struct Response {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("GET");
        Response {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.unwrap().to_vec(),
        }
    })
}

/// The parts of a multipart body, parsed by multer: (name, headers, bytes).
fn multipart(content_type: &str, body: Vec<u8>) -> Vec<(String, reqwest::header::HeaderMap, Vec<u8>)> {
    let mime: mime::Mime = content_type.parse().expect("a valid media type");
    assert_eq!(mime.essence_str(), "multipart/mixed");
    let boundary = mime
        .get_param(mime::BOUNDARY)
        .expect("a boundary parameter")
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
        let mut mp = multer::Multipart::new(stream, boundary);
        let mut parts = Vec::new();
        while let Some(field) = mp.next_field().await.expect("well-formed multipart") {
            let name = field.name().unwrap_or("").to_string();
            let headers = field.headers().clone();
            parts.push((name, headers, field.bytes().await.unwrap().to_vec()));
        }
        parts
    })
}

/// Checks one pointer as the client does; returns the signed JSON.
fn check_pointer(served: &Spawned, channel: &str, platform: &str, expected_part: &str) -> Value {
    let resp = get(
        &format!("{}/{channel}/{platform}/fp1/manifest", served.base),
        &[
            ("expo-platform", platform),
            ("expo-runtime-version", "fp1"),
            ("expo-protocol-version", "1"),
            ("expo-expect-signature", "sig, keyid=\"main\", alg=\"rsa-v1_5-sha256\""),
        ],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers["expo-protocol-version"], "1");
    assert_eq!(resp.headers["expo-sfv-version"], "0");
    assert_eq!(resp.headers["cache-control"], "public, max-age=0, s-maxage=60");
    let ct = resp.headers["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("multipart/mixed; boundary="), "{ct}");
    assert!(
        resp.body.ends_with(b"--\r\n"),
        "the closing delimiter ends with CRLF (iOS needs it)"
    );
    let parts = multipart(&ct, resp.body);
    let (name, headers, bytes) = &parts[0];
    assert_eq!(name, expected_part);
    assert_eq!(headers["content-type"], "application/json");
    // The signature header: a structured-field dictionary with sig, keyid, alg.
    let sig_header = headers
        .get("expo-signature")
        .expect("expo-signature part header")
        .to_str()
        .unwrap();
    let dict = sfv::Parser::parse_dictionary(sig_header.as_bytes()).expect("SFV dictionary");
    let string = |k: &str| match &dict[k] {
        sfv::ListEntry::Item(sfv::Item {
            bare_item: sfv::BareItem::String(s),
            ..
        }) => s.clone(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(string("keyid"), "main");
    assert_eq!(string("alg"), "rsa-v1_5-sha256");
    let sig = STANDARD.decode(string("sig")).expect("standard base64, padded");
    let key = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(expo_certificate_key());
    key.verify(bytes, &rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap())
        .expect("RSA signature over the part's exact bytes");
    serde_json::from_slice(bytes).expect("JSON part")
}

#[test]
fn every_pointer_is_what_the_stock_client_accepts() {
    let (_env, served) = published();
    for platform in ["ios", "android"] {
        // A live manifest.
        let doc = check_pointer(&served, "production", platform, "manifest");
        let id = doc["id"].as_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(id).is_ok() && id == id.to_lowercase() && id.len() == 36,
            "{id}"
        );
        assert!(
            chrono::NaiveDateTime::parse_from_str(doc["createdAt"].as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok()
        );
        assert_eq!(doc["runtimeVersion"], "fp1");
        assert_eq!(doc["metadata"]["otapub"]["version"], "t1");
        assert_eq!(doc["extra"]["expoClient"]["slug"], "app-tabs");
        let launch = &doc["launchAsset"];
        assert_eq!(launch["contentType"], "application/javascript");
        assert!(
            launch.get("fileExtension").is_none(),
            "the Expo spec: launchAsset.fileExtension SHOULD be omitted"
        );
        let mut assets = vec![launch.clone()];
        assets.extend(doc["assets"].as_array().unwrap().iter().cloned());
        assert_eq!(assets.len(), if platform == "ios" { 25 } else { 29 });
        for a in assets {
            let url = a["url"].as_str().unwrap();
            assert!(url.starts_with(&served.base), "absolute URL under the base: {url}");
            assert!(a == *launch || a["fileExtension"].as_str().unwrap().starts_with('.'));
            assert!(a["key"].as_str().unwrap().len() == 32);
            let resp = get(url, &[]);
            assert_eq!(resp.status, 200, "{url}");
            assert_eq!(resp.headers["cache-control"], "public, max-age=31536000, immutable");
            assert_eq!(
                resp.headers["content-type"].to_str().unwrap(),
                a["contentType"].as_str().unwrap()
            );
            assert_eq!(
                URL_SAFE_NO_PAD.encode(Sha256::digest(&resp.body)),
                a["hash"].as_str().unwrap(),
                "{url}"
            );
        }
        // The blank fixture, live on another channel.
        let doc = check_pointer(&served, "legacy", platform, "manifest");
        assert_eq!(doc["metadata"]["otapub"]["version"], "l1");
        assert_eq!(doc["assets"].as_array().unwrap().len(), 0);
        let launch = doc["launchAsset"]["url"].as_str().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(get(launch, &[]).body)),
            doc["launchAsset"]["hash"].as_str().unwrap()
        );
        // A noUpdateAvailable directive.
        let doc = check_pointer(&served, "staging", platform, "directive");
        assert_eq!(doc["type"], "noUpdateAvailable");
        // A rollBackToEmbedded directive.
        let doc = check_pointer(&served, "beta", platform, "directive");
        assert_eq!(doc["type"], "rollBackToEmbedded");
        assert!(chrono::NaiveDateTime::parse_from_str(
            doc["parameters"]["commitTime"].as_str().unwrap(),
            "%Y-%m-%dT%H:%M:%S%.3fZ"
        )
        .is_ok());
        // Header-routed: what a development build pointed at /<channel>/manifest gets.
        let routed = get(
            &format!("{}/production/manifest", served.base),
            &[("expo-platform", platform), ("expo-runtime-version", "fp1")],
        );
        let direct = get(&format!("{}/production/{platform}/fp1/manifest", served.base), &[]);
        assert_eq!(routed.body, direct.body);
    }
    assert_eq!(
        get(&format!("{}/production/ios/nope/manifest", served.base), &[]).status,
        404
    );
    assert_eq!(get(&format!("{}/../state/index.sqlite", served.base), &[]).status, 404);
}

#[test]
fn verify_url_accepts_the_served_tree_and_rejects_what_the_client_would() {
    let (env, served) = published();
    let verify = |base: &str, extra: &[&str]| {
        let mut c = env.cmd(&[
            "verify",
            "--store",
            "store",
            "--trust",
            "keys/throwaway.pub",
            "--url",
            base,
            "--expo-cert",
            EXPO_CERT,
        ]);
        c.args(extra);
        c.output().unwrap()
    };
    let out = verify(&served.base, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("8 pointers"), "{}", stdout(&out));

    // A keyid other than the app's.
    let out = verify(&served.base, &["--expo-keyid", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("keyid \"main\", but the app expects \"other\""),
        "{}",
        stdout(&out)
    );

    // A plain static server: no protocol headers.
    let port = free_port();
    let mut child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(env.store().join("public"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    wait_for_port(&mut child, port, "python3 -m http.server", None);
    let plain = Spawned {
        child,
        base: format!("http://127.0.0.1:{port}"),
        name: "python3 -m http.server",
    };
    let out = verify(&plain.base, &[]);
    drop(plain);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("no `expo-protocol-version: 1` header"),
        "{}",
        stdout(&out)
    );

    // One byte of the manifest changed after signing.
    env.tamper("public/production/android/fp1/manifest", |bytes| {
        let at = bytes.windows(12).position(|w| w == b"\"createdAt\":").unwrap() + 14;
        bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    });
    let out = verify(&served.base, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("production/android/fp1: expo-signature does not verify against the certificate"),
        "{text}"
    );
    assert!(!text.contains("production/ios/fp1"), "{text}");
}

#[test]
fn unsigned_manifests_are_reported_and_a_certificate_bound_to_an_eas_project_is_refused() {
    let env = TestEnv::new();
    env.otapub(&[
        "publish",
        &format!("{FIXTURES}/expo-blank/dist"),
        "--channel",
        "production",
        "--fingerprint",
        "fp1",
    ])
    .assert()
    .success();
    let out = env
        .cmd(&[
            "verify",
            "--store",
            "store",
            "--trust",
            "keys/throwaway.pub",
            "--expo-cert",
            EXPO_CERT,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("no expo-signature header"), "{}", stdout(&out));

    // A certificate carrying Expo project information (`<projectId>,<scopeKey>`).
    let mut params = rcgen::CertificateParams::new(vec!["Test".to_string()]).unwrap();
    let oid = [
        1, 2, 840, 113556, 1, 8000, 2554, 43437, 254, 128, 102, 157, 7894389, 20439, 2, 1,
    ];
    params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(
        &oid,
        b"\x0c\x0aproj,scope".to_vec(),
    ));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(env.path("eas.pem"), cert.pem()).unwrap();
    let out = env
        .cmd(&[
            "verify",
            "--store",
            "store",
            "--trust",
            "keys/throwaway.pub",
            "--expo-cert",
            "eas.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("carries Expo project information"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pkcs1_and_pkcs8_forms_of_the_key_both_sign_for_the_certificate() {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let env = TestEnv::new();
    let pkcs1 = std::fs::read_to_string(EXPO_KEY).unwrap();
    assert!(pkcs1.contains("\r\n") && pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(&pkcs1.replace("\r\n", "\n")).unwrap();
    let pkcs8 = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let blank = format!("{FIXTURES}/expo-blank/dist");
    for (channel, pem) in [("one", pkcs1.clone()), ("two", pkcs8.to_string())] {
        env.otapub_at(
            "2026-06-01T00:00:00Z",
            &[
                "publish",
                &blank,
                "--channel",
                channel,
                "--fingerprint",
                "fp1",
                "--platform",
                "ios",
                "--version",
                &format!("v-{channel}"),
            ],
        )
        .env("OTAPUB_EXPO_SIGNING_KEY", pem)
        .assert()
        .success();
        let body = env.read(&format!("public/{channel}/ios/fp1/manifest"));
        let ct = env.content_type(&format!("public/{channel}/ios/fp1/manifest"));
        let parts = multipart(&ct, body);
        let (_, h, bytes) = &parts[0];
        let sig = h["expo-signature"].to_str().unwrap().to_string();
        let dict = sfv::Parser::parse_dictionary(sig.as_bytes()).unwrap();
        let sfv::ListEntry::Item(sfv::Item {
            bare_item: sfv::BareItem::String(b64),
            ..
        }) = &dict["sig"]
        else {
            panic!("sig")
        };
        let raw = STANDARD.decode(b64).unwrap();
        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(expo_certificate_key())
            .verify(bytes, &rsa::pkcs1v15::Signature::try_from(raw.as_slice()).unwrap())
            .unwrap();
    }
}
