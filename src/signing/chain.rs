//! Certificate chains for Expo code signing (docs/format.md): the PEM
//! chain (leaf first, no root) a response carries in its `certificate_chain`
//! part, and the checks the stock client makes on it, taken from
//! expo-updates' `CertificateChain.swift` / `CodeSigningConfiguration.swift`
//! (iOS) and `CertificateChain.kt` (Android):
//!
//! - the client splits the part at `-----BEGIN CERTIFICATE-----` /
//!   `-----END CERTIFICATE-----` and appends the root the build embeds; an END
//!   before its BEGIN makes the iOS split take an inverted range and crash,
//!   so only clean pairs are accepted here;
//! - every certificate must be within its validity dates on the device clock;
//! - each certificate is signed by the next; the last (the embedded root) is
//!   self-signed and, when there is more than one, a CA (basicConstraints CA,
//!   keyUsage keyCertSign);
//! - the leaf has keyUsage digitalSignature and extendedKeyUsage codeSigning,
//!   and its key verifies the `expo-signature`.

use chrono::{DateTime, Utc};
use x509_parser::prelude::{FromDer, X509Certificate};

/// `-----BEGIN CERTIFICATE-----`.
pub const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
/// `-----END CERTIFICATE-----`.
pub const END: &str = "-----END CERTIFICATE-----";

/// OID of extendedKeyUsage codeSigning.
const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";

/// Splits PEM text into certificates (DER), accepting nothing but clean
/// BEGIN/END CERTIFICATE pairs with base64 between them and blank space
/// around them.
// Not pem::parse_many: it skips text outside blocks (a stray END included) and drops a trailing unpaired BEGIN, which the iOS client crashes on.
pub fn split_pem(text: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim();
        match (&mut body, line) {
            (None, "") => {}
            (None, BEGIN) => body = Some(String::new()),
            (None, other) => {
                return Err(format!(
                "line {}: {other:?} outside a BEGIN/END CERTIFICATE pair (the iOS client crashes on a stray marker)",
                n + 1
            ))
            }
            (Some(_), BEGIN) => return Err(format!("line {}: a second BEGIN before END", n + 1)),
            (Some(b), END) => {
                let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.as_bytes())
                    .map_err(|e| format!("line {}: the certificate's base64 does not decode ({e})", n + 1))?;
                out.push(der);
                body = None;
            }
            (Some(_), l) if l.starts_with("-----") => {
                return Err(format!("line {}: {l:?} inside a certificate", n + 1))
            }
            (Some(b), l) => b.push_str(l),
        }
    }
    if body.is_some() {
        return Err("a BEGIN CERTIFICATE without its END".into());
    }
    if out.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(out)
}

/// PEM text of certificates, one clean pair each, 64-column base64, LF
/// line ends.
pub fn to_pem(ders: &[Vec<u8>]) -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    ders.iter()
        .map(|der| pem::encode_config(&pem::Pem::new("CERTIFICATE", der.clone()), lf))
        .collect()
}

/// What one certificate says, as far as the chain rules go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject, as text.
    pub subject: String,
    /// Validity.
    pub not_before: DateTime<Utc>,
    /// Validity.
    pub not_after: DateTime<Utc>,
    /// Issuer and subject are the same name.
    pub self_issued: bool,
    /// basicConstraints CA and keyUsage keyCertSign.
    pub ca: bool,
    /// basicConstraints pathLenConstraint (none: unlimited).
    pub path_len: Option<u32>,
    /// keyUsage digitalSignature and extendedKeyUsage codeSigning.
    pub code_signing: bool,
    /// The SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// The serial number in upper-case hex, as `openssl x509 -serial` prints it.
    pub serial: String,
}

fn time(t: x509_parser::time::ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn parse(der: &[u8]) -> std::result::Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("not an X.509 certificate ({e})"))
}

/// Reads one certificate.
pub fn info(der: &[u8]) -> std::result::Result<CertInfo, String> {
    let c = parse(der)?;
    let key_usage = c.key_usage().ok().flatten().map(|e| *e.value);
    let constraints = c
        .basic_constraints()
        .ok()
        .flatten()
        .map(|b| (b.value.ca, b.value.path_len_constraint));
    let ca = constraints.is_some_and(|(ca, _)| ca) && key_usage.as_ref().is_some_and(|k| k.key_cert_sign());
    let eku_code_signing = c
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.code_signing || e.value.other.iter().any(|o| o.to_id_string() == CODE_SIGNING));
    Ok(CertInfo {
        subject: c.subject().to_string(),
        not_before: time(c.validity().not_before),
        not_after: time(c.validity().not_after),
        self_issued: c.subject().as_raw() == c.issuer().as_raw(),
        ca,
        path_len: constraints.and_then(|(_, len)| len),
        code_signing: key_usage.is_some_and(|k| k.digital_signature()) && eku_code_signing,
        spki: c.public_key().raw.to_vec(),
        serial: serial_hex(c.raw_serial()),
    })
}

/// A DER INTEGER's content as OpenSSL prints it: the magnitude's bytes in
/// upper-case hex, without the sign byte DER adds before a high bit.
fn serial_hex(raw: &[u8]) -> String {
    let mut bytes = raw;
    while let [0, rest @ ..] = bytes {
        if rest.is_empty() {
            break;
        }
        bytes = rest;
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Whether `child` carries a valid signature by `parent`'s key (RSA
/// PKCS#1 v1.5 with SHA-256, what Expo's certificates use) and names it as issuer.
pub fn signed_by(child: &[u8], parent: &[u8]) -> std::result::Result<(), String> {
    let (c, p) = (parse(child)?, parse(parent)?);
    if c.issuer().as_raw() != p.subject().as_raw() {
        return Err(format!(
            "its issuer {} is not the next certificate ({})",
            c.issuer(),
            p.subject()
        ));
    }
    let alg = c.signature_algorithm.algorithm.to_id_string();
    if alg != "1.2.840.113549.1.1.11" {
        return Err(format!("signed with {alg}, not sha256WithRSAEncryption"));
    }
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        &p.public_key().subject_public_key.data,
    )
    .verify(c.tbs_certificate.as_ref(), &c.signature_value.data)
    .map_err(|_| format!("its signature does not verify with the key of {}", p.subject()))
}

/// Checks a chain (leaf first) up to `root` as the client does at `now`.
/// The error names the certificate and the rule.
pub fn verify_chain(chain: &[Vec<u8>], root: &[u8], now: DateTime<Utc>) -> std::result::Result<CertInfo, String> {
    let all: Vec<&[u8]> = chain.iter().map(Vec::as_slice).chain(std::iter::once(root)).collect();
    let infos = all
        .iter()
        .map(|d| info(d))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for (i, c) in infos.iter().enumerate() {
        if now < c.not_before || now > c.not_after {
            return Err(format!(
                "certificate {i} ({}) is valid from {} to {}, not at {}",
                c.subject, c.not_before, c.not_after, now
            ));
        }
    }
    let root_info = &infos[infos.len() - 1];
    if !root_info.self_issued {
        return Err(format!("the root ({}) is not self-signed", root_info.subject));
    }
    signed_by(root, root).map_err(|e| format!("the root: {e}"))?;
    if all.len() > 1 && !root_info.ca {
        return Err(format!(
            "the root ({}) is not a CA (basicConstraints CA, keyUsage keyCertSign)",
            root_info.subject
        ));
    }
    for i in 0..all.len() - 1 {
        signed_by(all[i], all[i + 1]).map_err(|e| format!("certificate {i} ({}): {e}", infos[i].subject))?;
        if i > 0 && !infos[i].ca {
            return Err(format!("intermediate {i} ({}) is not a CA", infos[i].subject));
        }
    }
    // pathLenConstraint, from the root down (Android's CertificateChain.kt).
    let mut allowed = root_info.path_len.unwrap_or(u32::MAX);
    for i in (1..infos.len() - 1).rev() {
        if allowed == 0 {
            return Err(format!(
                "intermediate {i} ({}) breaks the pathLenConstraint of the certificates above it",
                infos[i].subject
            ));
        }
        allowed = (allowed - 1).min(infos[i].path_len.unwrap_or(u32::MAX));
    }
    if !infos[0].code_signing {
        return Err(format!(
            "the leaf ({}) lacks keyUsage digitalSignature or extendedKeyUsage codeSigning",
            infos[0].subject
        ));
    }
    Ok(infos[0].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_pairs_split() {
        let pem = to_pem(&[vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(split_pem(&pem).unwrap(), vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(split_pem(&pem.replace('\n', "\r\n")).unwrap().len(), 2);
        for bad in [
            format!("{END}\n{pem}"),
            format!("{pem}{BEGIN}\n"),
            format!("junk\n{pem}"),
            pem.replacen(END, &format!("{BEGIN}\n{END}"), 1),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_string(),
            String::new(),
        ] {
            assert!(split_pem(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pem_text_is_64_columns_with_lf_and_one_pair_per_certificate() {
        let a64 = "A".repeat(64);
        assert_eq!(
            to_pem(&[vec![0; 49], Vec::new()]),
            format!("{BEGIN}\n{a64}\nAA==\n{END}\n{BEGIN}\n{END}\n")
        );
    }

    #[test]
    fn serials_read_as_openssl_prints_them() {
        assert_eq!(serial_hex(&[0x00, 0xa1, 0x0b]), "A10B");
        assert_eq!(serial_hex(&[0x0a, 0xff]), "0AFF");
        assert_eq!(serial_hex(&[0x00]), "00");
    }
}
