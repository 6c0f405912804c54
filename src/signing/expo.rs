//! Expo code signing: the RSA key, the `expo-signature` header and the
//! certificate the app embeds.

use std::fs;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::{KeyError, KeySource};
use crate::error::{Error, Result};

/// The `alg` of Expo code signing.
pub const EXPO_ALG: &str = "rsa-v1_5-sha256";

/// OID of the Expo project information a certificate may carry
/// (`<projectId>,<scopeKey>`); the client then requires matching
/// `extra.eas.projectId` / `extra.scopeKey` in every manifest.
pub const EXPO_PROJECT_INFORMATION_OID: &str = "1.2.840.113556.1.8000.2554.43437.254.128.102.157.7894389.20439.2.1";

/// An RSA key for Expo code signing, with the keyid the app's
/// `codeSigningMetadata` names.
pub struct ExpoKey {
    key: aws_lc_rs::rsa::KeyPair,
    keyid: String,
    /// The chain sent with every signature (PEM, leaf first, no root).
    chain: Option<String>,
}

impl std::fmt::Debug for ExpoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExpoKey({})", self.keyid)
    }
}

/// Checks an Expo keyid: it is quoted in a structured header, so it is kept to safe characters.
pub fn check_expo_keyid(keyid: &str) -> Result<()> {
    if keyid.is_empty() || keyid.len() > 64 || !keyid.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(KeyError::ExpoKeyId {
            keyid: keyid.to_string(),
        }
        .into());
    }
    Ok(())
}

impl ExpoKey {
    /// Loads an RSA private key in PKCS#1 (`BEGIN RSA PRIVATE KEY`, what
    /// `npx expo-updates codesigning:generate` writes) or PKCS#8 PEM.
    pub fn load(source: &KeySource, keyid: &str) -> Result<ExpoKey> {
        check_expo_keyid(keyid)?;
        Ok(ExpoKey {
            key: rsa_from_pem(source)?,
            keyid: keyid.to_string(),
            chain: None,
        })
    }

    /// The key with the certificate chain (`--expo-chain`) every signed
    /// body will carry, checked at `now` as the client will check it (short
    /// of the root, which only the app holds): clean PEM pairs, the leaf is
    /// this key's with digitalSignature and codeSigning, each certificate
    /// signed by the next, intermediates are CAs, all within their dates,
    /// and no root in it.
    pub fn with_chain(mut self, label: &str, pem_text: &str, now: chrono::DateTime<chrono::Utc>) -> Result<ExpoKey> {
        let bad = |reason: String| {
            Error::from(KeyError::ExpoChain {
                label: label.to_string(),
                reason,
            })
        };
        let ders = super::chain::split_pem(pem_text).map_err(bad)?;
        let infos = ders
            .iter()
            .map(|d| super::chain::info(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(bad)?;
        if infos[0].spki != self.spki_der() {
            return Err(KeyError::ExpoChainNotThisKey {
                label: label.to_string(),
                subject: infos[0].subject.clone(),
            }
            .into());
        }
        if let Some(root) = infos.iter().find(|c| c.self_issued) {
            return Err(KeyError::ExpoChainHasRoot {
                label: label.to_string(),
                subject: root.subject.clone(),
            }
            .into());
        }
        if !infos[0].code_signing {
            return Err(KeyError::ExpoChainNotCodeSigning {
                label: label.to_string(),
                subject: infos[0].subject.clone(),
            }
            .into());
        }
        for (i, c) in infos.iter().enumerate() {
            if now < c.not_before {
                return Err(KeyError::ExpoChainNotYetValid {
                    label: label.to_string(),
                    subject: c.subject.clone(),
                    not_before: c.not_before,
                }
                .into());
            }
            if now > c.not_after {
                return Err(KeyError::ExpoChainExpired {
                    label: label.to_string(),
                    subject: c.subject.clone(),
                    not_after: c.not_after,
                }
                .into());
            }
            if i > 0 && !c.ca {
                return Err(KeyError::ExpoChainNotCa {
                    label: label.to_string(),
                    subject: c.subject.clone(),
                }
                .into());
            }
        }
        for pair in ders.windows(2) {
            super::chain::signed_by(&pair[0], &pair[1]).map_err(bad)?;
        }
        self.chain = Some(super::chain::to_pem(&ders));
        Ok(self)
    }

    /// The chain every signature is sent with, if any.
    pub fn chain(&self) -> Option<&str> {
        self.chain.as_deref()
    }

    /// The SubjectPublicKeyInfo (DER) of the key: what its certificate must carry.
    pub fn spki_der(&self) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer;
        aws_lc_rs::signature::KeyPair::public_key(&self.key)
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// The `expo-signature` header value over exactly `part`.
    pub fn signature_header(&self, part: &[u8]) -> String {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, part, &mut sig)
            .expect("RSA signing with a validated key and a buffer of the modulus length");
        format!(
            "sig=\"{}\", keyid=\"{}\", alg=\"{EXPO_ALG}\"",
            B64.encode(sig),
            self.keyid
        )
    }
}

/// Loads an RSA private key in PKCS#1 or PKCS#8 PEM.
pub(crate) fn rsa_from_pem(source: &KeySource) -> Result<aws_lc_rs::rsa::KeyPair> {
    let text = source.read_private_pem()?;
    let block = pem::parse(text.trim().as_bytes()).map_err(|_| KeyError::NotPem { path: source.label() })?;
    let key = match block.tag() {
        "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(block.contents()),
        "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(block.contents()),
        _ => return Err(KeyError::NotRsaPem { path: source.label() }.into()),
    }
    .map_err(|_| KeyError::UnusableRsa { path: source.label() })?;
    Ok(key)
}

/// The fields of an `expo-signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpoSignature {
    /// The signature bytes.
    pub sig: Vec<u8>,
    /// The keyid.
    pub keyid: String,
    /// The algorithm.
    pub alg: String,
}

/// Parses an `expo-signature` header as the structured-field dictionary it is.
pub fn parse_expo_signature(header: &str) -> std::result::Result<ExpoSignature, String> {
    let dict = sfv::Parser::parse_dictionary(header.as_bytes())
        .map_err(|e| format!("expo-signature is not a structured-field dictionary: {e}"))?;
    let string = |name: &str| -> std::result::Result<String, String> {
        match dict.get(name) {
            Some(sfv::ListEntry::Item(sfv::Item {
                bare_item: sfv::BareItem::String(s),
                ..
            })) => Ok(s.clone()),
            Some(_) => Err(format!("expo-signature {name} is not a string")),
            None => Err(format!("expo-signature has no {name}")),
        }
    };
    let sig = B64
        .decode(string("sig")?.as_bytes())
        .map_err(|e| format!("expo-signature sig is not base64: {e}"))?;
    let keyid = string("keyid").unwrap_or_else(|_| "root".to_string());
    let alg = string("alg").unwrap_or_else(|_| EXPO_ALG.to_string());
    Ok(ExpoSignature { sig, keyid, alg })
}

/// A code-signing certificate, as the app embeds it.
pub struct ExpoCertificate {
    public_key: Vec<u8>,
}

impl ExpoCertificate {
    /// Loads a PEM certificate; refuses one bound to an EAS project, whose
    /// manifests would need `extra.eas.projectId` and `extra.scopeKey`.
    pub fn load(path: &Path) -> Result<ExpoCertificate> {
        let label = || path.display().to_string();
        let bytes = fs::read(path).map_err(|e| KeyError::Unreadable {
            path: label(),
            reason: e.to_string(),
        })?;
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(&bytes).map_err(|_| KeyError::NotPemCertificate { path: label() })?;
        let cert = pem.parse_x509().map_err(|e| KeyError::NotX509 {
            path: label(),
            reason: e.to_string(),
        })?;
        if cert
            .extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == EXPO_PROJECT_INFORMATION_OID)
        {
            return Err(KeyError::EasCertificate { path: label() }.into());
        }
        let spki = cert.public_key();
        if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
            return Err(KeyError::NotRsaCertificate { path: label() }.into());
        }
        Ok(ExpoCertificate {
            public_key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// The key of a certificate's SubjectPublicKeyInfo (DER).
    pub fn from_spki(spki: &[u8]) -> std::result::Result<ExpoCertificate, String> {
        use x509_parser::prelude::FromDer;
        let (_, info) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).map_err(|e| format!("not a public key ({e})"))?;
        Ok(ExpoCertificate {
            public_key: info.subject_public_key.data.to_vec(),
        })
    }

    /// Checks an `expo-signature` header over `part` whatever its keyid, as
    /// the client does when the response carries the chain.
    pub fn verify_any_keyid(&self, part: &[u8], header: &str) -> std::result::Result<(), String> {
        let keyid = parse_expo_signature(header)?.keyid;
        self.verify(part, header, &keyid)
    }

    /// Checks an `expo-signature` header over `part` as the client does.
    pub fn verify(&self, part: &[u8], header: &str, keyid: &str) -> std::result::Result<(), String> {
        let s = parse_expo_signature(header)?;
        if s.alg != EXPO_ALG {
            return Err(format!("expo-signature alg {:?}, expected {EXPO_ALG:?}", s.alg));
        }
        if s.keyid != keyid {
            return Err(format!(
                "expo-signature keyid {:?}, but the app expects {keyid:?}",
                s.keyid
            ));
        }
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            &self.public_key,
        )
        .verify(part, &s.sig)
        .map_err(|_| "expo-signature does not verify against the certificate".to_string())
    }
}
