//! Signing keys and signatures: ed25519 DSSE envelopes (always) over the exact
//! bytes a device receives, key loading from files, stdin or the environment,
//! and key generation.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::Signer as _;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::error::{ExitClass, Refusal, Result};
use crate::model::{DsseSignature, Signatures};

pub mod chain;
mod dsse;
mod expo;
mod keys;
mod leaf;

pub use dsse::*;
pub use expo::*;
pub use keys::*;
pub use leaf::*;

/// A signed payload ready to become an Expo body and an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Manifest or directive.
    pub part: crate::manifest::PartName,
    /// The exact part bytes.
    pub bytes: Vec<u8>,
}

impl Payload {
    /// The DSSE payload type.
    pub fn payload_type(&self) -> &'static str {
        match self.part {
            crate::manifest::PartName::Manifest => MANIFEST_PAYLOAD_TYPE,
            crate::manifest::PartName::Directive => DIRECTIVE_PAYLOAD_TYPE,
        }
    }
}

/// What the signing keys' commands and options refuse (`--key`, `keygen`,
/// `--expo-keyid`, `--expo-chain`); `LeafError` has `otapub keys`' own.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A mutating command was given no key.
    #[error("no signing key: pass --key keys/NAME.key or set OTAPUB_SIGNING_KEY (create a key with `otapub keygen --out keys/NAME`)")]
    NoSigningKey,
    /// `keygen --out` names no key.
    #[error("--out {} must name a key, e.g. `--out keys/release`", out.display())]
    OutName {
        /// The `--out` given.
        out: PathBuf,
    },
    /// `keygen` would overwrite a key file.
    #[error("{} already exists; keygen never overwrites a key — choose another --out name", path.display())]
    KeyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A key or certificate file cannot be read.
    #[error("key {path}: cannot read it: {reason}")]
    Unreadable {
        /// Where the key was looked for (`-` for stdin, `$VAR` for the environment).
        path: String,
        /// Why.
        reason: String,
    },
    /// A private key file that does not exist.
    #[error("key {path}: no such file — create a key with `otapub keygen --out {}`", stem.display())]
    NoSuchKey {
        /// The key file.
        path: String,
        /// The file without its extension, as `keygen --out` takes it.
        stem: PathBuf,
    },
    /// A private key path that is not a regular file.
    #[error("key {path}: not a regular file; give the path of the key file")]
    NotAFile {
        /// The path given.
        path: String,
    },
    /// A private key file others can read.
    #[error("key {path}: readable by group or others (mode {mode:o}); a private key must be private: run `chmod 600 {path}`")]
    NotPrivate {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Standard input cannot be read.
    #[error("key {path}: cannot read standard input: {reason}")]
    StdinUnreadable {
        /// `-`.
        path: String,
        /// Why.
        reason: String,
    },
    /// Not an ed25519 private key.
    #[error("key {path}: not an ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); create one with `otapub keygen --out keys/NAME`")]
    NotEd25519Private {
        /// Where the key came from.
        path: String,
    },
    /// Not an ed25519 public key.
    #[error("key {path}: not an ed25519 public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`, the .pub file `otapub keygen` writes)")]
    NotEd25519Public {
        /// The file.
        path: String,
    },
    /// An Expo key that is not PEM.
    #[error(
        "key {path}: not a PEM private key; pass the private-key.pem `npx expo-updates codesigning:generate` wrote"
    )]
    NotPem {
        /// Where the key came from.
        path: String,
    },
    /// A PEM block that is no RSA private key.
    #[error("key {path}: not an RSA private key (expected `BEGIN RSA PRIVATE KEY` or `BEGIN PRIVATE KEY`)")]
    NotRsaPem {
        /// Where the key came from.
        path: String,
    },
    /// An RSA key otapub cannot sign with.
    #[error("key {path}: not a usable RSA private key (2048 to 8192 bits) in PKCS#1 or PKCS#8")]
    UnusableRsa {
        /// Where the key came from.
        path: String,
    },
    /// A certificate file that is not PEM.
    #[error("key {path}: not a PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NotPemCertificate {
        /// The file.
        path: String,
    },
    /// A PEM certificate that does not parse.
    #[error("key {path}: not an X.509 certificate: {reason}")]
    NotX509 {
        /// The file.
        path: String,
        /// The parser's error.
        reason: String,
    },
    /// A certificate bound to an EAS project.
    #[error("key {path}: this certificate carries Expo project information, so the app would require extra.eas.projectId and extra.scopeKey in every manifest, which otapub does not write; generate a certificate without it (`npx expo-updates codesigning:generate`)")]
    EasCertificate {
        /// The file.
        path: String,
    },
    /// A certificate whose key is not RSA.
    #[error("key {path}: the certificate's key is not RSA; give the certificate of the app's RSA code-signing key")]
    NotRsaCertificate {
        /// The file.
        path: String,
    },
    /// The CA key cannot be serialized.
    #[error("key {path}: cannot serialize the CA key")]
    CaKeySerialize {
        /// Where the CA key came from.
        path: String,
    },
    /// The CA key's public half cannot be read.
    #[error("key {path}: cannot read the CA key's public half")]
    CaKeyPublic {
        /// Where the CA key came from.
        path: String,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed: {reason}")]
    NoRandomness {
        /// Its error.
        reason: String,
    },
    /// The Expo keyid has characters a structured header cannot carry.
    #[error("--expo-keyid {keyid:?}: use 1-64 letters, digits, `.`, `_` or `-`, as in the app's codeSigningMetadata (default `main`)")]
    ExpoKeyId {
        /// The keyid given.
        keyid: String,
    },
    /// The `--expo-chain` does not parse as PEM certificates, or one is not
    /// signed by the next.
    #[error("--expo-chain {label}: {reason}")]
    ExpoChain {
        /// Where the chain came from.
        label: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The chain's first certificate is not the `--expo-key`'s.
    #[error("--expo-chain {label}: its first certificate ({subject}) is not the certificate of --expo-key; give the chain `otapub keys expo-leaf` wrote next to that key")]
    ExpoChainNotThisKey {
        /// Where the chain came from.
        label: String,
        /// The certificate's subject.
        subject: String,
    },
    /// The chain includes the root the app embeds.
    #[error("--expo-chain {label}: it includes the root ({subject}); the app embeds the root and appends it itself — leave it out")]
    ExpoChainHasRoot {
        /// Where the chain came from.
        label: String,
        /// The root's subject.
        subject: String,
    },
    /// The leaf cannot sign code.
    #[error("--expo-chain {label}: the leaf ({subject}) lacks keyUsage digitalSignature or extendedKeyUsage codeSigning; issue one with `otapub keys expo-leaf`")]
    ExpoChainNotCodeSigning {
        /// Where the chain came from.
        label: String,
        /// The leaf's subject.
        subject: String,
    },
    /// A certificate of the chain is not valid yet.
    #[error("--expo-chain {label}: {subject} is not valid before {not_before}; wait until then, or check this machine's clock")]
    ExpoChainNotYetValid {
        /// Where the chain came from.
        label: String,
        /// The certificate's subject.
        subject: String,
        /// When it becomes valid.
        not_before: DateTime<Utc>,
    },
    /// A certificate of the chain has expired.
    #[error("--expo-chain {label}: {subject} expired at {not_after}; issue a new leaf (`otapub keys expo-leaf`) and run `otapub refresh`")]
    ExpoChainExpired {
        /// Where the chain came from.
        label: String,
        /// The certificate's subject.
        subject: String,
        /// When it expired.
        not_after: DateTime<Utc>,
    },
    /// An intermediate of the chain is not a CA.
    #[error("--expo-chain {label}: {subject} signs the certificate before it but is not a CA; give the chain of CAs the leaf was issued under")]
    ExpoChainNotCa {
        /// Where the chain came from.
        label: String,
        /// The intermediate's subject.
        subject: String,
    },
}

impl Refusal for KeyError {
    fn class(&self) -> ExitClass {
        match self {
            KeyError::NoSigningKey
            | KeyError::Unreadable { .. }
            | KeyError::NoSuchKey { .. }
            | KeyError::NotAFile { .. }
            | KeyError::NotPrivate { .. }
            | KeyError::StdinUnreadable { .. }
            | KeyError::NotEd25519Private { .. }
            | KeyError::NotEd25519Public { .. }
            | KeyError::NotPem { .. }
            | KeyError::NotRsaPem { .. }
            | KeyError::UnusableRsa { .. }
            | KeyError::NotPemCertificate { .. }
            | KeyError::NotX509 { .. }
            | KeyError::EasCertificate { .. }
            | KeyError::NotRsaCertificate { .. }
            | KeyError::CaKeySerialize { .. }
            | KeyError::CaKeyPublic { .. }
            | KeyError::OutName { .. }
            | KeyError::KeyExists { .. }
            | KeyError::NoRandomness { .. }
            | KeyError::ExpoKeyId { .. }
            | KeyError::ExpoChain { .. }
            | KeyError::ExpoChainNotThisKey { .. }
            | KeyError::ExpoChainHasRoot { .. }
            | KeyError::ExpoChainNotCodeSigning { .. }
            | KeyError::ExpoChainNotYetValid { .. }
            | KeyError::ExpoChainExpired { .. }
            | KeyError::ExpoChainNotCa { .. } => ExitClass::Input,
        }
    }
}

/// Every key a mutating command signs with.
#[derive(Debug)]
pub struct Signer {
    keys: Vec<Ed25519Key>,
    expo: Option<ExpoKey>,
}

impl Signer {
    /// A signer from at least one ed25519 key. Duplicate keys sign once.
    pub fn new(mut keys: Vec<Ed25519Key>, expo: Option<ExpoKey>) -> Result<Signer> {
        if keys.is_empty() {
            return Err(KeyError::NoSigningKey.into());
        }
        keys.sort_by(|a, b| a.keyid.cmp(&b.keyid));
        keys.dedup_by(|a, b| a.keyid == b.keyid);
        Ok(Signer { keys, expo })
    }

    /// Signs a manifest or directive payload with every key.
    pub fn sign_payload(&self, payload: &Payload) -> Signatures {
        let mut sigs = self.sign(payload.payload_type(), &payload.bytes);
        sigs.expo = self.expo.as_ref().map(|k| k.signature_header(&payload.bytes));
        sigs.expo_chain = self.expo.as_ref().and_then(|k| k.chain().map(str::to_string));
        sigs
    }

    /// The Expo layer of `part` with the current Expo key and chain:
    /// (`expo-signature`, `certificate_chain`); none without an Expo key.
    pub fn expo_layer(&self, part: &[u8]) -> Option<(String, Option<String>)> {
        self.expo
            .as_ref()
            .map(|k| (k.signature_header(part), k.chain().map(str::to_string)))
    }

    /// Signs `payload` for a DSSE envelope of `payload_type`.
    pub fn sign(&self, payload_type: &str, payload: &[u8]) -> Signatures {
        let message = pae(payload_type, payload);
        let dsse = self
            .keys
            .iter()
            .map(|k| DsseSignature {
                keyid: k.keyid.clone(),
                sig: B64.encode(k.key.sign(&message).to_bytes()),
            })
            .collect();
        Signatures {
            dsse,
            expo: None,
            expo_chain: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn test_key(seed: u8) -> Ed25519Key {
        Ed25519Key::from_signing_key(SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn envelope_verifies_and_tampering_is_caught() {
        let signer = Signer::new(vec![test_key(2), test_key(1)], None).unwrap();
        let sigs = signer.sign(MANIFEST_PAYLOAD_TYPE, b"{}");
        let bytes = envelope(MANIFEST_PAYLOAD_TYPE, b"{}", &sigs);
        let trusted = TrustedKeys {
            keys: vec![(test_key(1).keyid.clone(), test_key(1).key.verifying_key())],
        };
        let mut env = parse_envelope(&bytes).unwrap();
        assert!(trusted.verify(&env).is_ok());
        env.payload = b"{ }".to_vec();
        assert!(trusted.verify(&env).is_err());
        let untrusted = TrustedKeys {
            keys: vec![(test_key(3).keyid.clone(), test_key(3).key.verifying_key())],
        };
        assert!(untrusted.verify(&parse_envelope(&bytes).unwrap()).is_err());
    }
}
