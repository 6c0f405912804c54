//! `otapub keys expo-leaf`: leaves issued under a root (and an intermediate)
//! made here with rcgen, checked with OpenSSL — an implementation
//! independent of otapub's — for the chain, the dates and the usages, and
//! with Python's `cryptography` — a strict DER parser, as BoringSSL and
//! Apple's Security framework are on devices — for the encoding.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256};

/// An RSA CA, written to DIR/NAME.key and DIR/NAME.pem, as an issuer of more.
fn make_ca(dir: &Path, name: &str, parent: Option<&Issuer<'static, KeyPair>>) -> Issuer<'static, KeyPair> {
    make_ca_constrained(dir, name, parent, BasicConstraints::Unconstrained)
}

/// [`make_ca`] with a pathLenConstraint.
fn make_ca_constrained(
    dir: &Path,
    name: &str,
    parent: Option<&Issuer<'static, KeyPair>>,
    constraints: BasicConstraints,
) -> Issuer<'static, KeyPair> {
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).expect("RSA key");
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, format!("otapub test {name}"));
    p.distinguished_name.push(DnType::OrganizationName, "otapub tests");
    p.is_ca = IsCa::Ca(constraints);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(2);
    p.not_after = now + time::Duration::days(3650);
    let cert = match parent {
        None => p.self_signed(&key).expect("self-signed"),
        Some(issuer) => p.signed_by(&key, issuer).expect("signed"),
    };
    std::fs::create_dir_all(dir).unwrap();
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    // A CA that is not DER would make every check of what otapub issues under
    // it prove nothing.
    assert_strict_der(&dir.join(format!("{name}.pem")));
    Issuer::new(p, key)
}

/// Python's `cryptography`, which scripts/install-test-servers.sh installs.
fn pyx509() -> std::path::PathBuf {
    let python = tools_dir().join("pyx509/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import cryptography.x509"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "Python `cryptography` is not installed at {}: run scripts/install-test-servers.sh",
        python.display()
    );
    python
}

/// Loads each certificate of a PEM file with `cryptography`, reads every
/// extension (it parses them only when asked) and re-encodes the certificate;
/// prints one line per certificate, or the first failure and exits 1.
const STRICT_DER: &str = r#"
import base64, re, sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
text = open(sys.argv[1], encoding="ascii").read()
blocks = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
if not blocks:
    sys.exit("no certificate in " + sys.argv[1])
for i, block in enumerate(blocks):
    der = base64.b64decode("".join(block.split()), validate=True)
    try:
        cert = x509.load_der_x509_certificate(der)
        oids = [e.oid.dotted_string for e in cert.extensions]
        cert.public_key()
        cert.signature_hash_algorithm
        cert.not_valid_after_utc
    except Exception as e:
        sys.exit(f"certificate {i}: {type(e).__name__}: {e}")
    if cert.public_bytes(Encoding.DER) != der:
        sys.exit(f"certificate {i} ({cert.subject.rfc4514_string()}): re-encodes to other bytes")
    print(f"certificate {i} ({cert.subject.rfc4514_string()}): DER-exact; extensions {' '.join(oids)}")
"#;

/// Every certificate in the PEM file is strict DER, as `cryptography`
/// reads it; returns its report (one line per certificate).
fn assert_strict_der(pem: &Path) -> String {
    let out = Command::new(pyx509())
        .args(["-c", STRICT_DER])
        .arg(pem)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{} is not strict DER: {}{}",
        pem.display(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    (out.status.success(), format!("{}{}", stdout(&out), stderr(&out)))
}

fn certs_in(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

#[test]
fn a_leaf_under_the_root_verifies_with_openssl_and_has_the_client_s_usages() {
    let env = TestEnv::new();
    let dir = env.path("ca");
    make_ca(&dir, "root", None);
    let out = env
        .expo_leaf("ca/root", 30, "keys/leaf-a")
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .clone();
    let issued: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(issued["subject"], "CN=leaf-a");

    let keys = env.path("keys");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("leaf-a.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let chain = std::fs::read_to_string(keys.join("leaf-a.pem")).unwrap();
    assert_eq!(certs_in(&chain), 1, "the chain holds the leaf, not the root: {chain}");

    // OpenSSL: the leaf chains to the root, for code signing.
    let (ok, text) = openssl(
        &env.path(""),
        &["verify", "-CAfile", "ca/root.pem", "-purpose", "any", "keys/leaf-a.pem"],
    );
    assert!(ok && text.contains("OK"), "{text}");
    let (_, text) = openssl(&env.path(""), &["x509", "-in", "keys/leaf-a.pem", "-noout", "-text"]);
    assert!(
        text.contains("RSA Public-Key: (2048 bit)") || text.contains("Public-Key: (2048 bit)"),
        "{text}"
    );
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(text.contains("Code Signing"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(
        text.contains("Issuer: CN = otapub test root, O = otapub tests"),
        "{text}"
    );
    // notBefore a day back (slow clocks), notAfter 30 days on.
    let (ok, _) = openssl(
        &env.path(""),
        &[
            "x509",
            "-in",
            "keys/leaf-a.pem",
            "-noout",
            "-checkend",
            &(29 * 86400).to_string(),
        ],
    );
    assert!(ok, "valid for 29 more days");
    let (ok, _) = openssl(
        &env.path(""),
        &[
            "x509",
            "-in",
            "keys/leaf-a.pem",
            "-noout",
            "-checkend",
            &(31 * 86400).to_string(),
        ],
    );
    assert!(!ok, "expired within 31 days");
    let (_, dates) = openssl(
        &env.path(""),
        &["x509", "-in", "keys/leaf-a.pem", "-noout", "-startdate"],
    );
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%b %e")
        .to_string();
    assert!(dates.contains(&yesterday), "{dates} vs {yesterday}");
    // The key is the certificate's.
    let (_, from_key) = openssl(&keys, &["pkey", "-in", "leaf-a.key", "-pubout"]);
    let (_, from_cert) = openssl(&keys, &["x509", "-in", "leaf-a.pem", "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);
    // And it signs Expo bodies: publish with it works.
    env.publish_release("r1", "production", "fp")
        .args(["--expo-key", "keys/leaf-a.key"])
        .assert()
        .success();
}

#[test]
fn under_an_intermediate_the_chain_carries_it() {
    let env = TestEnv::new();
    let dir = env.path("ca");
    let root = make_ca(&dir, "root", None);
    make_ca(&dir, "inter", Some(&root));
    env.expo_leaf("ca/inter", 7, "keys/leaf").assert().success();
    let chain = std::fs::read_to_string(env.path("keys/leaf.pem")).unwrap();
    assert_eq!(certs_in(&chain), 2, "leaf, then the intermediate: {chain}");
    // The chain file as the response carries it, the root as the build embeds it.
    let (ok, text) = openssl(
        &env.path(""),
        &[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "keys/leaf.pem",
            "keys/leaf.pem",
        ],
    );
    assert!(ok && text.contains("OK"), "{text}");
}

#[test]
fn every_certificate_otapub_writes_is_strict_der() {
    let env = TestEnv::new();
    // The CAs that stand for the user's (make_ca checks they are DER too):
    // a root and an intermediate made with rcgen, and a root made with OpenSSL
    // (env.expo_leaves, as the other suites make it), each issuing leaves.
    let dir = env.path("ca");
    let root = make_ca(&dir, "root", None);
    make_ca(&dir, "inter", Some(&root));
    env.expo_leaf("ca/root", 30, "keys/under-root").assert().success();
    env.expo_leaf("ca/inter", 7, "keys/under-inter").assert().success();
    env.expo_leaves();
    assert_strict_der(&env.path("root.pem"));

    let mut chains: Vec<_> = std::fs::read_dir(env.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    chains.sort();
    let names: Vec<_> = chains
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["leaf-a.pem", "leaf-b.pem", "under-inter.pem", "under-root.pem"],
        "every chain otapub wrote"
    );
    for chain in &chains {
        let pem = std::fs::read_to_string(chain).unwrap();
        let report = assert_strict_der(chain);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), certs_in(&pem), "{}: {report}", chain.display());
        // The leaf's extensions were all read: basicConstraints (the one rcgen
        // 0.13 encoded with its DEFAULT), keyUsage, extendedKeyUsage.
        for oid in ["2.5.29.19", "2.5.29.15", "2.5.29.37"] {
            assert!(lines[0].contains(oid), "{}: {report}", chain.display());
        }
    }
    // The intermediate travels in the chain byte for byte as the user gave it.
    let given = std::fs::read_to_string(dir.join("inter.pem")).unwrap();
    let chain = std::fs::read_to_string(env.path("keys/under-inter.pem")).unwrap();
    let body = |pem: &str| {
        pem.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    let second = chain
        .split_inclusive("-----END CERTIFICATE-----")
        .nth(1)
        .expect("a second certificate");
    assert_eq!(body(second), body(&given));

    // The self-signed certificate `otapub init` makes for an app.
    let app = env.path("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("package.json"),
        r#"{"name":"a","dependencies":{"expo":"57.0.0","expo-updates":"57.0.0"}}"#,
    )
    .unwrap();
    std::fs::write(app.join("app.json"), r#"{"expo":{"name":"A","slug":"a"}}"#).unwrap();
    env.cmd(&["init", "--dir", "app", "--no-install"]).assert().success();
    let report = assert_strict_der(&app.join("certs/certificate.pem"));
    // keyUsage and extendedKeyUsage read; no basicConstraints at all.
    assert!(report.contains("2.5.29.15") && report.contains("2.5.29.37"), "{report}");
    assert!(!report.contains("2.5.29.19"), "{report}");
}

#[test]
fn bad_cas_and_names_are_refused_and_write_nothing() {
    let env = TestEnv::new();
    let dir = env.path("ca");
    make_ca(&dir, "root", None);
    make_ca(&dir, "other", None);
    let fixture = format!("{FIXTURES}/expo-codesigning");
    let issue = |key: &str, cert: &str, days: &str, out: &str| {
        env.cmd(&[
            "keys",
            "expo-leaf",
            "--ca-key",
            key,
            "--ca-cert",
            cert,
            "--days",
            days,
            "--out",
            out,
        ])
    };
    for (key, cert, days, needle) in [
        ("ca/root.key", "ca/root.pem", "0", "--days 0"),
        ("ca/root.key", "ca/root.pem", "5000", "--days 5000"),
        ("ca/other.key", "ca/root.pem", "30", "is not the key of"),
        (
            &format!("{fixture}/keys/private-key.pem"),
            &format!("{fixture}/certs/certificate.pem"),
            "30",
            "is not a CA",
        ),
        ("ca/root.key", "ca/missing.pem", "30", "cannot read it"),
    ] {
        let out = issue(key, cert, days, "keys/x").assert().code(2).get_output().clone();
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
        assert!(!env.path("keys/x.key").exists() && !env.path("keys/x.pem").exists());
    }
    // A stray marker in the CA file.
    let root = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    std::fs::write(dir.join("stray.pem"), format!("-----END CERTIFICATE-----\n{root}")).unwrap();
    let out = issue("ca/root.key", "ca/stray.pem", "30", "keys/x")
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(
        stderr(&out).contains("outside a BEGIN/END CERTIFICATE pair"),
        "{}",
        stderr(&out)
    );
    // Never overwrites a key.
    issue("ca/root.key", "ca/root.pem", "30", "keys/once")
        .assert()
        .success();
    let before = std::fs::read(env.path("keys/once.key")).unwrap();
    let out = issue("ca/root.key", "ca/root.pem", "30", "keys/once")
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(stderr(&out).contains("never overwrites"), "{}", stderr(&out));
    assert_eq!(std::fs::read(env.path("keys/once.key")).unwrap(), before);
}

/// A root and a 30-day leaf under it, in `ca/` and `keys/`.
fn root_and_leaf(env: &TestEnv, leaf: &str) {
    if !env.path("ca/root.key").exists() {
        make_ca(&env.path("ca"), "root", None);
    }
    env.expo_leaf("ca/root", 30, &format!("keys/{leaf}")).assert().success();
    assert_strict_der(&env.path(&format!("keys/{leaf}.pem")));
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn every_signed_body_carries_the_chain_and_verifies_up_to_the_root() {
    let env = TestEnv::new();
    root_and_leaf(&env, "leaf");
    let signing = ["--expo-key", "keys/leaf.key", "--expo-chain", "keys/leaf.pem"];
    env.publish_release("r1", "production", "fp")
        .args(signing)
        .assert()
        .success();
    env.publish_release("r2", "production", "fp")
        .args(signing)
        .assert()
        .success();
    env.rollback_to_embedded("android").args(signing).assert().success();
    let chain_file = std::fs::read_to_string(env.path("keys/leaf.pem")).unwrap();
    for key in [
        "public/production/ios/fp/manifest",
        "public/updates/r2/ios/manifest",
        "public/production/android/fp/manifest",
    ] {
        let (body, ct) = env.object(key).unwrap();
        let parts = parse_multipart(&ct, &body);
        let names: Vec<String> = parts.iter().map(|(h, _)| part_name(h)).collect();
        let (first, chain) = (
            &parts[0],
            parts
                .iter()
                .find(|(h, _)| part_name(h) == "certificate_chain")
                .expect("a certificate_chain part"),
        );
        assert_eq!(
            header(&chain.0, "content-type"),
            Some("application/x-pem-file"),
            "{key}: {names:?}"
        );
        assert_eq!(
            String::from_utf8(chain.1.clone()).unwrap(),
            chain_file,
            "{key}: the chain as issued"
        );
        // OpenSSL: the chain part up to the root, and the signature with the leaf's key.
        let dir = env.path("check");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("chain.pem"), &chain.1).unwrap();
        std::fs::write(dir.join("part"), &first.1).unwrap();
        let sig = header(&first.0, "expo-signature").expect("expo-signature");
        let b64 = sig
            .split("sig=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("sig=");
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
        std::fs::write(dir.join("sig"), raw).unwrap();
        let (ok, text) = openssl(&dir, &["verify", "-CAfile", "../ca/root.pem", "chain.pem"]);
        assert!(ok, "{key}: {text}");
        let (ok, pubkey) = openssl(&dir, &["x509", "-in", "chain.pem", "-noout", "-pubkey"]);
        assert!(ok);
        std::fs::write(dir.join("leaf.pub"), pubkey).unwrap();
        let (ok, text) = openssl(
            &dir,
            &["dgst", "-sha256", "-verify", "leaf.pub", "-signature", "sig", "part"],
        );
        assert!(ok && text.contains("Verified OK"), "{key}: {text}");
    }
    // The store stays whole, and a rebuilt index renders the same bytes.
    env.assert_consistent();
    let before = env.snapshot();
    env.otapub(&["index", "rebuild", "--force", "--trust", "keys/throwaway.pub"])
        .assert()
        .success();
    env.otapub(&["regenerate"]).args(signing).assert().success();
    let after = env.snapshot();
    let pointer = "public/production/ios/fp/manifest";
    assert_eq!(
        before.get(pointer),
        after.get(pointer),
        "the pointer's bytes, chain part included"
    );
    env.otapub(&["check"]).assert().success();

    // status names the serving leaf and its days left.
    let st = env.json(&["status"]);
    let leaf = &st["pointers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "ios")
        .unwrap()["expoLeaf"];
    assert_eq!(leaf["subject"], "CN=leaf", "{st}");
    assert!(matches!(leaf["daysLeft"].as_i64(), Some(29 | 30)), "{leaf}");

    // verify --expo-ca checks every served chain as the client does.
    env.otapub(&["verify", "--expo-ca", "ca/root.pem"]).assert().success();
    let problems = |args: &[&str], now: Option<&str>| -> String {
        let mut c = env.otapub(args);
        if let Some(t) = now {
            c.env("OTAPUB_NOW", t);
        }
        stdout(&c.assert().code(1).get_output().clone())
    };
    // The leaf has 30 days: a daily job asking for 60 is warned, naming it.
    let text = problems(&["verify", "--expo-ca", "ca/root.pem", "--min-validity", "60"], None);
    assert!(
        text.contains("CN=leaf expires at") && text.contains("within 60 days"),
        "{text}"
    );
    env.otapub(&["verify", "--expo-ca", "ca/root.pem", "--min-validity", "20"])
        .assert()
        .success();
    // Past the leaf's expiry every response fails, as on a device.
    let later = (chrono::Utc::now() + chrono::Duration::days(40)).to_rfc3339();
    let text = problems(&["verify", "--expo-ca", "ca/root.pem"], Some(&later));
    assert!(
        text.contains("certificate_chain: certificate 0 (CN=leaf) is valid from"),
        "{text}"
    );
    // Another root does not anchor it.
    make_ca(&env.path("ca2"), "root", None);
    let text = problems(&["verify", "--expo-ca", "ca2/root.pem"], None);
    assert!(
        text.contains("its signature does not verify") || text.contains("is not the next certificate"),
        "{text}"
    );
    // --min-validity needs the root.
    env.otapub(&["verify", "--min-validity", "3"]).assert().code(2);
}

#[test]
fn a_body_without_a_chain_fails_verify_with_the_root() {
    let env = TestEnv::new();
    root_and_leaf(&env, "leaf");
    env.publish_release("r1", "production", "fp")
        .args(["--expo-key", "keys/leaf.key"])
        .assert()
        .success();
    let out = env
        .otapub(&["verify", "--expo-ca", "ca/root.pem"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(stdout(&out).contains("no certificate_chain part"), "{}", stdout(&out));
}

#[test]
fn chains_the_client_would_reject_are_refused_and_change_nothing() {
    let env = TestEnv::new();
    root_and_leaf(&env, "leaf");
    root_and_leaf(&env, "other");
    env.publish_release("r0", "production", "fp").assert().success();
    // An intermediate under the root: a CA, not a code-signing leaf.
    let root_key = KeyPair::from_pem(&std::fs::read_to_string(env.path("ca/root.key")).unwrap()).unwrap();
    let root = Issuer::from_ca_cert_pem(&std::fs::read_to_string(env.path("ca/root.pem")).unwrap(), root_key).unwrap();
    make_ca(&env.path("ca"), "inter", Some(&root));
    let root = std::fs::read_to_string(env.path("ca/root.pem")).unwrap();
    let leaf = std::fs::read_to_string(env.path("keys/leaf.pem")).unwrap();
    std::fs::write(env.path("keys/with-root.pem"), format!("{leaf}{root}")).unwrap();
    std::fs::write(env.path("keys/stray.pem"), format!("{leaf}-----END CERTIFICATE-----\n")).unwrap();
    std::fs::write(env.path("keys/garbage.pem"), format!("hello\n{leaf}")).unwrap();
    let publish = |now: Option<&str>, extra: &[&str], needle: &str| {
        write_export(&env.path("export-rx"), "rx");
        let mut c = env.otapub(&[
            "publish",
            "export-rx",
            "--channel",
            "production",
            "--fingerprint",
            "fp",
            "--version",
            "rx",
        ]);
        c.args(extra);
        if let Some(t) = now {
            c.env("OTAPUB_NOW", t);
        }
        env.assert_writes_nothing(|| {
            let out = c.assert().code(2).get_output().clone();
            assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
        });
    };
    let k = |key: &'static str, chain: &'static str| ["--expo-key", key, "--expo-chain", chain];
    publish(
        None,
        &k("keys/other.key", "keys/leaf.pem"),
        "is not the certificate of --expo-key",
    );
    publish(None, &k("keys/leaf.key", "keys/with-root.pem"), "includes the root");
    publish(
        None,
        &k("ca/inter.key", "ca/inter.pem"),
        "lacks keyUsage digitalSignature or extendedKeyUsage codeSigning",
    );
    let later = (chrono::Utc::now() + chrono::Duration::days(40)).to_rfc3339();
    publish(Some(&later), &k("keys/leaf.key", "keys/leaf.pem"), "expired at");
    let earlier = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    publish(
        Some(&earlier),
        &k("keys/leaf.key", "keys/leaf.pem"),
        "is not valid before",
    );
    publish(
        None,
        &k("keys/leaf.key", "keys/stray.pem"),
        "outside a BEGIN/END CERTIFICATE pair",
    );
    publish(
        None,
        &k("keys/leaf.key", "keys/garbage.pem"),
        "outside a BEGIN/END CERTIFICATE pair",
    );
    publish(
        None,
        &["--expo-chain", "keys/leaf.pem"],
        "give that key with --expo-key too",
    );
}

/// The Expo body's parts of a served object: (first part headers, first part bytes, chain part).
fn served_parts(env: &TestEnv, key: &str) -> (Vec<(String, String)>, Vec<u8>, Option<String>) {
    let (body, ct) = env.object(key).unwrap_or_else(|| panic!("{key} missing"));
    let parts = parse_multipart(&ct, &body);
    let chain = parts
        .iter()
        .find(|(h, _)| part_name(h) == "certificate_chain")
        .map(|(_, b)| String::from_utf8(b.clone()).unwrap());
    (parts[0].0.clone(), parts[0].1.clone(), chain)
}

#[test]
fn refresh_rotates_the_leaf_without_changing_any_update() {
    let env = TestEnv::new();
    root_and_leaf(&env, "leaf1");
    env.expo_leaf("ca/root", 90, "keys/leaf2").assert().success();
    let one = ["--expo-key", "keys/leaf1.key", "--expo-chain", "keys/leaf1.pem"];
    let two = ["--expo-key", "keys/leaf2.key", "--expo-chain", "keys/leaf2.pem"];
    for r in ["r1", "r2"] {
        env.publish_release(r, "production", "fp").args(one).assert().success();
    }
    env.otapub(&["ban", "r2", "--platform", "ios", "--reason", "broken"])
        .args(one)
        .assert()
        .success();
    env.rollback_to_embedded("android").args(one).assert().success();
    env.publish_release("b1", "beta", "fp").args(one).assert().success();
    env.otapub(&["ban", "b1", "--platform", "ios", "--reason", "only one"])
        .args(one)
        .assert()
        .success();
    env.publish_release("s1", "staging", "fp").args(one).assert().success();
    env.publish_release("s2", "staging", "fp")
        .args(["--rollout", "40"])
        .args(one)
        .assert()
        .success();

    let served: Vec<String> = env
        .keys("public/")
        .into_iter()
        .filter(|k| k.ends_with("/manifest") && !k.starts_with("public/updates/"))
        .collect();
    assert!(
        served.iter().any(|k| k.contains("/rollout/")),
        "rollout buckets are served responses too: {served:?}"
    );
    assert!(served.len() >= 5, "{served:?}");
    let before: Vec<_> = served.iter().map(|k| served_parts(&env, k)).collect();
    let snapshot = env.snapshot();
    let leaf1 = std::fs::read_to_string(env.path("keys/leaf1.pem")).unwrap();
    let leaf2 = std::fs::read_to_string(env.path("keys/leaf2.pem")).unwrap();
    assert!(before.iter().all(|(_, _, c)| c.as_deref() == Some(leaf1.as_str())));

    // Past leaf1's expiry every response fails as on a device.
    let later = (chrono::Utc::now() + chrono::Duration::days(40)).to_rfc3339();
    env.otapub(&["verify", "--expo-ca", "ca/root.pem"])
        .env("OTAPUB_NOW", &later)
        .assert()
        .code(1);

    let out = env
        .otapub(&["refresh", "--json"])
        .args(two)
        .assert()
        .success()
        .get_output()
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!r["pointers"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(
        r["directives"].as_array().unwrap().len(),
        1,
        "beta/ios/fp serves a noUpdateAvailable directive: {r}"
    );

    // Every served response: the same part (no update id changed), a new
    // signature, the new chain; every envelope and immutable object as it was.
    for (key, (headers, part, _)) in served.iter().zip(&before) {
        let (h2, p2, c2) = served_parts(&env, key);
        assert_eq!(&p2, part, "{key}: the part bytes");
        assert_ne!(
            header(&h2, "expo-signature"),
            header(headers, "expo-signature"),
            "{key}"
        );
        assert_eq!(c2.as_deref(), Some(leaf2.as_str()), "{key}");
        let sha = |snap: &std::collections::BTreeMap<String, String>| {
            snap.get(&format!("{key}.json"))
                .map(|v| v.split(' ').next().unwrap_or("").to_string())
        };
        assert_eq!(
            sha(&snapshot),
            sha(&env.snapshot()),
            "{key}.json: the same envelope bytes"
        );
    }
    let after = env.snapshot();
    for (k, v) in &snapshot {
        if k.starts_with("public/updates/") || k.starts_with("public/assets/") {
            assert_eq!(
                after.get(k),
                Some(v),
                "{k} is immutable (bytes and metadata: not even rewritten)"
            );
        }
    }
    env.otapub(&["verify", "--expo-ca", "ca/root.pem"])
        .env("OTAPUB_NOW", &later)
        .assert()
        .success();
    env.otapub(&["check"]).assert().success();
    // A second run, and a regenerate, write nothing.
    env.assert_writes_nothing(|| {
        let out = env
            .otapub(&["refresh"])
            .args(two)
            .assert()
            .success()
            .get_output()
            .clone();
        assert!(stdout(&out).contains("nothing to refresh"), "{}", stdout(&out));
        env.otapub(&["regenerate"]).assert().success();
    });
    // A rebuilt index adopts the re-signed pointers (refresh again for the
    // rollout buckets, which it reads from their candidate's immutable twin).
    env.otapub(&["index", "rebuild", "--force", "--trust", "keys/throwaway.pub"])
        .assert()
        .success();
    let dry = env.json(&["regenerate", "--dry-run"]);
    let pointer_writes: Vec<&str> = dry["written"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .filter(|k| !k.contains("/rollout/"))
        .collect();
    assert_eq!(
        pointer_writes,
        Vec::<&str>::new(),
        "the rebuilt index renders the re-signed pointers as they are"
    );
    env.otapub(&["refresh"]).args(two).assert().success();
    env.assert_writes_nothing(|| {
        env.otapub(&["refresh"]).args(two).assert().success();
    });
    env.otapub(&["verify", "--expo-ca", "ca/root.pem"])
        .env("OTAPUB_NOW", &later)
        .assert()
        .success();
    // What the pointers serve after a later rollback is signed with the new leaf.
    env.otapub(&[
        "rollback",
        "--channel",
        "production",
        "--platform",
        "ios",
        "--fingerprint",
        "fp",
        "--to",
        "r1",
    ])
    .args(two)
    .assert()
    .success();
    env.otapub(&["verify", "--expo-ca", "ca/root.pem"])
        .env("OTAPUB_NOW", &later)
        .assert()
        .success();
}

#[test]
fn an_intermediate_under_a_root_with_path_length_zero_is_refused_as_android_does() {
    let env = TestEnv::new();
    let dir = env.path("ca");
    let root = make_ca_constrained(&dir, "root", None, BasicConstraints::Constrained(0));
    make_ca(&dir, "inter", Some(&root));
    env.expo_leaf("ca/inter", 30, "keys/leaf").assert().success();
    env.publish_release("r1", "production", "fp")
        .args(["--expo-key", "keys/leaf.key", "--expo-chain", "keys/leaf.pem"])
        .assert()
        .success();
    let out = env
        .otapub(&["verify", "--expo-ca", "ca/root.pem"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(stdout(&out).contains("pathLenConstraint"), "{}", stdout(&out));
    // OpenSSL agrees.
    let (ok, text) = openssl(
        &env.path(""),
        &[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "keys/leaf.pem",
            "keys/leaf.pem",
        ],
    );
    assert!(!ok, "{text}");
}

#[test]
fn verify_over_http_checks_the_chain_a_device_receives() {
    let env = TestEnv::new();
    root_and_leaf(&env, "leaf");
    let port = crate::common::edge::free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The chain from the environment, as CI passes it.
    let chain = std::fs::read_to_string(env.path("keys/leaf.pem")).unwrap();
    env.publish_release("r1", "production", "fp")
        .args(["--expo-key", "keys/leaf.key", "--base-url", &base])
        .env("OTAPUB_EXPO_CHAIN", &chain)
        .assert()
        .success();
    let _served = crate::common::edge::otapub_serve_on(&env, port, &[]);
    env.otapub(&["verify", "--url", &base, "--expo-ca", "ca/root.pem"])
        .assert()
        .success();
    let out = env
        .otapub(&[
            "verify",
            "--url",
            &base,
            "--expo-ca",
            "ca/root.pem",
            "--min-validity",
            "45",
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(stdout(&out).contains("within 45 days"), "{}", stdout(&out));
}
