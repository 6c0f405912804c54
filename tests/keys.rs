//! `otapub keys expo-leaf`: leaves issued under a root (and an intermediate)
//! made here with rcgen, checked with OpenSSL — an implementation
//! independent of otapub's — for the chain, the dates and the usages.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256};

/// An RSA CA: (key, certificate), written to DIR/NAME.key and DIR/NAME.pem.
fn make_ca(dir: &Path, name: &str, parent: Option<(&KeyPair, &rcgen::Certificate)>) -> (KeyPair, rcgen::Certificate) {
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).expect("RSA key");
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, format!("otapub test {name}"));
    p.distinguished_name.push(DnType::OrganizationName, "otapub tests");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
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
        Some((pk, pc)) => p.signed_by(&key, pc, pk).expect("signed"),
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
    (key, cert)
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
        .cmd(&[
            "keys",
            "expo-leaf",
            "--ca-key",
            "ca/root.key",
            "--ca-cert",
            "ca/root.pem",
            "--days",
            "30",
            "--out",
            "keys/leaf-a",
            "--json",
        ])
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
    let (rk, rc) = make_ca(&dir, "root", None);
    make_ca(&dir, "inter", Some((&rk, &rc)));
    env.cmd(&[
        "keys",
        "expo-leaf",
        "--ca-key",
        "ca/inter.key",
        "--ca-cert",
        "ca/inter.pem",
        "--days",
        "7",
        "--out",
        "keys/leaf",
    ])
    .assert()
    .success();
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
