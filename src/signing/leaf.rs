//! `otapub keys expo-leaf`: a short-lived Expo code-signing leaf issued by an
//! offline root (or an intermediate given as the CA), so the Expo key rotates
//! without a new app build (docs/format.md). X.509 is written by
//! rcgen and read back by x509-parser; nothing here encodes DER by hand.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::chain;
use super::KeySource;
use crate::error::{Error, ExitClass, Refusal, Result};

/// What `expo-leaf` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedLeaf {
    /// The leaf's private key (PKCS#8 PEM, mode 0600).
    #[serde(rename = "keyPath")]
    pub key_path: PathBuf,
    /// The chain: the leaf, then the CA when it is an intermediate.
    #[serde(rename = "chainPath")]
    pub chain_path: PathBuf,
    /// The leaf's subject.
    pub subject: String,
    /// Valid from (one day in the past, for slow device clocks).
    #[serde(rename = "notBefore")]
    pub not_before: String,
    /// Valid until.
    #[serde(rename = "notAfter")]
    pub not_after: String,
}

/// What `otapub keys expo-leaf` and `otapub keys expo-app-certificate`
/// refuse, and the failures of issuing a certificate.
#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    /// `--days` is out of range.
    #[error(
        "--days {days}: give 1 to 825; a leaf is meant to be short-lived (e.g. 30) and refreshed before it expires"
    )]
    Days {
        /// The days given.
        days: u32,
    },
    /// `--out` names no file.
    #[error("--out {}: give a path such as keys/leaf-2026-12", out.display())]
    OutName {
        /// The `--out` given.
        out: PathBuf,
    },
    /// The leaf's key file exists already.
    #[error("--out {}: exists; otapub never overwrites a key — choose another name", path.display())]
    KeyExists {
        /// The key file.
        path: PathBuf,
    },
    /// The CA certificate file cannot be read.
    #[error("--ca-cert {}: cannot read it ({reason}); give the CA's certificate file", path.display())]
    CaCertUnreadable {
        /// The CA certificate file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The CA certificate does not parse.
    #[error("--ca-cert {}: {reason}", path.display())]
    CaCert {
        /// The CA certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA certificate file holds several certificates.
    #[error("--ca-cert {}: holds more than one certificate; give the one CA that signs the leaf", path.display())]
    CaCertNotOne {
        /// The CA certificate file.
        path: PathBuf,
    },
    /// The CA certificate cannot sign certificates.
    #[error("--ca-cert {}: is not a CA (basicConstraints CA and keyUsage keyCertSign); give the root the app embeds, or an intermediate under it", path.display())]
    NotCa {
        /// The CA certificate file.
        path: PathBuf,
    },
    /// The CA certificate has expired.
    #[error("--ca-cert {}: expired at {not_after}; give a CA certificate that is still valid", path.display())]
    CaExpired {
        /// The CA certificate file.
        path: PathBuf,
        /// When it expired.
        not_after: DateTime<Utc>,
    },
    /// The CA key is not the CA certificate's.
    #[error("--ca-key {ca_key} is not the key of --ca-cert {}; give the pair the root was made with", ca_cert.display())]
    KeyMismatch {
        /// Where the CA key came from.
        ca_key: String,
        /// The CA certificate file.
        ca_cert: PathBuf,
    },
    /// The key or certificate file of a new app certificate exists already.
    #[error("{}: exists; otapub never overwrites a key or its certificate", path.display())]
    CertificateExists {
        /// The existing file.
        path: PathBuf,
    },
    /// No RSA key could be generated.
    #[error("cannot generate an RSA key")]
    GenerateKey,
    /// The new RSA key could not be serialized.
    #[error("cannot serialize the new key")]
    SerializeKey,
    /// The OS gave no randomness for a serial number.
    #[error("no OS randomness for a serial number ({reason})")]
    NoRandomness {
        /// The OS's error.
        reason: String,
    },
    /// rcgen could not issue the leaf.
    #[error("cannot issue the leaf: {reason}")]
    Issue {
        /// rcgen's error.
        reason: String,
    },
    /// rcgen could not make the self-signed certificate.
    #[error("cannot make the certificate: {reason}")]
    MakeCertificate {
        /// rcgen's error.
        reason: String,
    },
    /// The issued leaf does not verify against its CA.
    #[error("the issued leaf does not chain to the CA: {reason}")]
    LeafDoesNotChain {
        /// Why.
        reason: String,
    },
    /// The issued leaf does not parse.
    #[error("the issued leaf does not read back: {reason}")]
    LeafUnreadable {
        /// Why.
        reason: String,
    },
    /// The made certificate does not parse.
    #[error("the certificate does not read back: {reason}")]
    CertificateUnreadable {
        /// Why.
        reason: String,
    },
}

impl Refusal for LeafError {
    fn class(&self) -> ExitClass {
        match self {
            LeafError::Days { .. }
            | LeafError::OutName { .. }
            | LeafError::KeyExists { .. }
            | LeafError::CaCertUnreadable { .. }
            | LeafError::CaCert { .. }
            | LeafError::CaCertNotOne { .. }
            | LeafError::NotCa { .. }
            | LeafError::CaExpired { .. }
            | LeafError::KeyMismatch { .. }
            | LeafError::CertificateExists { .. }
            | LeafError::GenerateKey
            | LeafError::SerializeKey
            | LeafError::NoRandomness { .. }
            | LeafError::Issue { .. }
            | LeafError::MakeCertificate { .. }
            | LeafError::LeafDoesNotChain { .. }
            | LeafError::LeafUnreadable { .. }
            | LeafError::CertificateUnreadable { .. } => ExitClass::Input,
        }
    }
}

/// Issues a leaf valid for `days` from `now` under the CA (`ca_key`,
/// `ca_cert`), named after the last component of `out`; writes `OUT.key`
/// (never overwritten) and `OUT.pem`.
pub fn issue_leaf(ca_key: &KeySource, ca_cert: &Path, days: u32, out: &Path, now: DateTime<Utc>) -> Result<IssuedLeaf> {
    if !(1..=825).contains(&days) {
        return Err(LeafError::Days { days }.into());
    }
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| LeafError::OutName { out: out.to_path_buf() })?;
    let key_path = out.with_file_name(format!("{name}.key"));
    let chain_path = out.with_file_name(format!("{name}.pem"));
    if key_path.exists() {
        return Err(LeafError::KeyExists { path: key_path }.into());
    }

    // The CA: its certificate (a CA that can sign certificates) and its key.
    let bad_ca = |reason: String| LeafError::CaCert {
        path: ca_cert.to_path_buf(),
        reason,
    };
    let ca_pem = std::fs::read_to_string(ca_cert).map_err(|e| LeafError::CaCertUnreadable {
        path: ca_cert.to_path_buf(),
        reason: e.to_string(),
    })?;
    let ca_ders = chain::split_pem(&ca_pem).map_err(bad_ca)?;
    let [ca_der] = ca_ders.as_slice() else {
        return Err(LeafError::CaCertNotOne {
            path: ca_cert.to_path_buf(),
        }
        .into());
    };
    let ca_info = chain::info(ca_der).map_err(bad_ca)?;
    if !ca_info.ca {
        return Err(LeafError::NotCa {
            path: ca_cert.to_path_buf(),
        }
        .into());
    }
    if now > ca_info.not_after {
        return Err(LeafError::CaExpired {
            path: ca_cert.to_path_buf(),
            not_after: ca_info.not_after,
        }
        .into());
    }
    let ca_pair = super::expo::rsa_from_pem(ca_key)?;
    let ca_pkcs8 = ca_pair
        .as_der()
        .map_err(|_| super::KeyError::CaKeySerialize { path: ca_key.label() })?;
    let ca_public = aws_lc_rs::signature::KeyPair::public_key(&ca_pair)
        .as_der()
        .map_err(|_| super::KeyError::CaKeyPublic { path: ca_key.label() })?;
    if ca_public.as_ref() != ca_info.spki.as_slice() {
        return Err(LeafError::KeyMismatch {
            ca_key: ca_key.label(),
            ca_cert: ca_cert.to_path_buf(),
        }
        .into());
    }
    let rcgen_err = |e: rcgen::Error| LeafError::Issue { reason: e.to_string() };
    let ca_rcgen = rcgen::KeyPair::try_from(ca_pkcs8.as_ref()).map_err(rcgen_err)?;
    // The issuer's name and key identifier, as the CA certificate has them.
    let issuer = rcgen::Issuer::from_ca_cert_der(&ca_der.as_slice().into(), ca_rcgen).map_err(rcgen_err)?;

    // The leaf: a fresh RSA-2048 key.
    let leaf =
        aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| LeafError::GenerateKey)?;
    let leaf_pkcs8 = leaf.as_der().map_err(|_| LeafError::SerializeKey)?;
    let leaf_rcgen = rcgen::KeyPair::try_from(leaf_pkcs8.as_ref()).map_err(rcgen_err)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.not_before = to_offset(now - Duration::days(1));
    params.not_after = to_offset(now + Duration::days(i64::from(days)));
    // basicConstraints with cA omitted (DER forbids encoding its DEFAULT
    // FALSE: rcgen 0.13 wrote it, and strict parsers — BoringSSL, Apple's,
    // Python's `cryptography` — refused the leaf): says "not a CA" to any
    // verifier, which the client's chain rules leave to the leaf.
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    params.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 16];
    getrandom::getrandom(&mut serial).map_err(|e| LeafError::NoRandomness { reason: e.to_string() })?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.signed_by(&leaf_rcgen, &issuer).map_err(rcgen_err)?;
    let leaf_der = cert.der().to_vec();

    // Read back: the leaf must chain to the CA as a device checks it.
    chain::signed_by(&leaf_der, ca_der).map_err(|reason| LeafError::LeafDoesNotChain { reason })?;
    let mut ders = vec![leaf_der.clone()];
    if !ca_info.self_issued {
        ders.push(ca_der.clone());
    }
    let info = chain::info(&leaf_der).map_err(|reason| LeafError::LeafUnreadable { reason })?;

    if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(Error::file("create", dir.to_path_buf()))?;
    }
    let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", leaf_pkcs8.as_ref().to_vec()));
    write_new_private(&key_path, key_pem.as_bytes())?;
    std::fs::write(&chain_path, chain::to_pem(&ders)).map_err(Error::file("write", chain_path.clone()))?;
    Ok(IssuedLeaf {
        key_path,
        chain_path,
        subject: info.subject,
        not_before: crate::manifest::format_time(info.not_before),
        not_after: crate::manifest::format_time(info.not_after),
    })
}

/// What `otapub init` wrote for an app without code signing.
#[derive(Debug, Clone, Serialize)]
pub struct AppCertificate {
    /// The private key (PKCS#8 PEM, mode 0600).
    #[serde(rename = "keyPath")]
    pub key_path: PathBuf,
    /// The self-signed certificate the app embeds.
    #[serde(rename = "certificatePath")]
    pub certificate_path: PathBuf,
    /// Its subject.
    pub subject: String,
    /// Valid until.
    #[serde(rename = "notAfter")]
    pub not_after: String,
}

/// Creates an Expo code-signing key and the self-signed certificate an app
/// embeds (`updates.codeSigningCertificate`), as `expo-updates
/// codesigning:generate` makes them: RSA-2048, digitalSignature and
/// codeSigning, valid `years`. Never replaces a key.
pub fn create_app_certificate(
    common_name: &str,
    years: u32,
    key_path: &Path,
    certificate_path: &Path,
    now: DateTime<Utc>,
) -> Result<AppCertificate> {
    for p in [key_path, certificate_path] {
        if p.exists() {
            return Err(LeafError::CertificateExists { path: p.to_path_buf() }.into());
        }
    }
    let rcgen_err = |e: rcgen::Error| LeafError::MakeCertificate { reason: e.to_string() };
    let key =
        aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| LeafError::GenerateKey)?;
    let pkcs8 = key.as_der().map_err(|_| LeafError::SerializeKey)?;
    let key_rcgen = rcgen::KeyPair::try_from(pkcs8.as_ref()).map_err(rcgen_err)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    params.not_before = to_offset(now - Duration::days(1));
    params.not_after = to_offset(now + Duration::days(365 * i64::from(years)));
    params.is_ca = rcgen::IsCa::NoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    let mut serial = [0u8; 16];
    getrandom::getrandom(&mut serial).map_err(|e| LeafError::NoRandomness { reason: e.to_string() })?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key_rcgen).map_err(rcgen_err)?;
    let der = cert.der().to_vec();
    let info = chain::info(&der).map_err(|reason| LeafError::CertificateUnreadable { reason })?;
    for p in [key_path, certificate_path] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::file("create", dir.to_path_buf()))?;
        }
    }
    let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    write_new_private(key_path, key_pem.as_bytes())?;
    std::fs::write(certificate_path, chain::to_pem(&[der]))
        .map_err(Error::file("write", certificate_path.to_path_buf()))?;
    Ok(AppCertificate {
        key_path: key_path.to_path_buf(),
        certificate_path: certificate_path.to_path_buf(),
        subject: info.subject,
        not_after: crate::manifest::format_time(info.not_after),
    })
}

fn to_offset(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Creates a private key file, mode 0600, refusing to replace one.
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            LeafError::KeyExists {
                path: path.to_path_buf(),
            }
            .into()
        } else {
            Error::file("create", path.to_path_buf())(e)
        }
    })?;
    f.write_all(bytes).map_err(Error::file("write", path.to_path_buf()))?;
    Ok(())
}
