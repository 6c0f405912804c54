//! Signing keys and signatures: ed25519 DSSE envelopes (always) over the exact
//! bytes a device receives, key loading from files, stdin or the environment,
//! and key generation.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// DSSE payload type of a manifest envelope.
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.otapub.manifest+json";
/// DSSE payload type of a directive envelope.
pub const DIRECTIVE_PAYLOAD_TYPE: &str = "application/vnd.otapub.directive+json";
/// DSSE payload type of a signed ban record.
pub const BAN_PAYLOAD_TYPE: &str = "application/vnd.otapub.ban+json";

/// Where a private key comes from. Never a command-line value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM file.
    File(PathBuf),
    /// PEM on standard input (`-`).
    Stdin,
    /// PEM in an environment variable, read by the caller.
    Env {
        /// The variable's name, for messages.
        var: String,
        /// Its value.
        pem: String,
    },
}

impl KeySource {
    /// `-` means stdin; anything else is a path.
    pub fn from_arg(arg: &Path) -> KeySource {
        if arg == Path::new("-") {
            KeySource::Stdin
        } else {
            KeySource::File(arg.to_path_buf())
        }
    }

    /// How the source is named in messages.
    pub fn label(&self) -> String {
        match self {
            KeySource::File(p) => p.display().to_string(),
            KeySource::Stdin => "-".to_string(),
            KeySource::Env { var, .. } => format!("${var}"),
        }
    }

    /// Reads the PEM text, refusing a key file others can read.
    pub fn read_private_pem(&self) -> Result<String> {
        let key_err = |reason: String| Error::Key {
            path: self.label(),
            reason,
        };
        match self {
            KeySource::File(path) => {
                let meta = fs::metadata(path).map_err(|e| {
                    key_err(if e.kind() == std::io::ErrorKind::NotFound {
                        format!(
                            "no such file — create a key with `otapub keygen --out {}`",
                            path.with_extension("").display()
                        )
                    } else {
                        format!("cannot read it: {e}")
                    })
                })?;
                if !meta.is_file() {
                    return Err(key_err("not a regular file".into()));
                }
                check_private_mode(&meta).map_err(|mode| {
                    key_err(format!(
                        "readable by group or others (mode {mode:o}); a private key must be private: run `chmod 600 {}`",
                        path.display()
                    ))
                })?;
                fs::read_to_string(path).map_err(|e| key_err(format!("cannot read it: {e}")))
            }
            KeySource::Stdin => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| key_err(format!("cannot read standard input: {e}")))?;
                Ok(s)
            }
            KeySource::Env { pem, .. } => Ok(pem.clone()),
        }
    }
}

#[cfg(unix)]
fn check_private_mode(meta: &fs::Metadata) -> std::result::Result<(), u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        Err(mode)
    } else {
        Ok(())
    }
}

#[cfg(not(unix))]
fn check_private_mode(_meta: &fs::Metadata) -> std::result::Result<(), u32> {
    Ok(())
}

/// keyid = first 16 hex characters of SHA-256 of the raw 32-byte public key.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex(&digest[..8])
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// One ed25519 signing key with its keyid.
pub struct Ed25519Key {
    key: SigningKey,
    keyid: String,
}

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ed25519Key({})", self.keyid)
    }
}

impl Ed25519Key {
    /// Loads a PKCS#8 PEM ed25519 private key.
    pub fn load(source: &KeySource) -> Result<Ed25519Key> {
        let pem = source.read_private_pem()?;
        let key = SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| Error::Key {
            path: source.label(),
            reason: "not an ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); create one with `otapub keygen --out keys/NAME`".into(),
        })?;
        Ok(Ed25519Key::from_signing_key(key))
    }

    fn from_signing_key(key: SigningKey) -> Ed25519Key {
        let keyid = key_id(&key.verifying_key());
        Ed25519Key { key, keyid }
    }

    /// The keyid.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }
}

/// A DSSE signature as stored in the index and in envelopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsseSignature {
    /// First 16 hex chars of SHA-256 of the public key.
    pub keyid: String,
    /// Standard base64 of the 64-byte signature.
    pub sig: String,
}

/// The signatures of one signed payload, as the index records them so the
/// exact bytes can be rebuilt without re-signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Signatures {
    /// ed25519 signatures over DSSE's PAE, sorted by keyid.
    pub dsse: Vec<DsseSignature>,
    /// The `expo-signature` part header value, when Expo code signing is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expo: Option<String>,
}

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
        return Err(Error::usage(format!(
            "--expo-keyid {keyid:?}: use 1-64 letters, digits, `.`, `_` or `-`, as in the app's codeSigningMetadata (default `main`)"
        )));
    }
    Ok(())
}

impl ExpoKey {
    /// Loads an RSA private key in PKCS#1 (`BEGIN RSA PRIVATE KEY`, what
    /// `npx expo-updates codesigning:generate` writes) or PKCS#8 PEM.
    pub fn load(source: &KeySource, keyid: &str) -> Result<ExpoKey> {
        check_expo_keyid(keyid)?;
        let text = source.read_private_pem()?;
        let key_err = |reason: &str| Error::Key {
            path: source.label(),
            reason: reason.to_string(),
        };
        let block = pem::parse(text.trim().as_bytes()).map_err(|_| {
            key_err("not a PEM private key; pass the private-key.pem `npx expo-updates codesigning:generate` wrote")
        })?;
        let key = match block.tag() {
            "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(block.contents()),
            "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(block.contents()),
            _ => {
                return Err(key_err(
                    "not an RSA private key (expected `BEGIN RSA PRIVATE KEY` or `BEGIN PRIVATE KEY`)",
                ))
            }
        }
        .map_err(|_| key_err("not a usable RSA private key (2048 to 8192 bits) in PKCS#1 or PKCS#8"))?;
        Ok(ExpoKey {
            key,
            keyid: keyid.to_string(),
        })
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
        let key_err = |reason: String| Error::Key {
            path: path.display().to_string(),
            reason,
        };
        let bytes = fs::read(path).map_err(|e| key_err(format!("cannot read it: {e}")))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
            .map_err(|_| key_err("not a PEM certificate (`-----BEGIN CERTIFICATE-----`)".into()))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| key_err(format!("not an X.509 certificate: {e}")))?;
        if cert
            .extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == EXPO_PROJECT_INFORMATION_OID)
        {
            return Err(key_err(
                "this certificate carries Expo project information, so the app would require extra.eas.projectId and extra.scopeKey in every manifest, which otapub does not write; generate a certificate without it (`npx expo-updates codesigning:generate`)".into(),
            ));
        }
        let spki = cert.public_key();
        if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
            return Err(key_err("the certificate's key is not RSA".into()));
        }
        Ok(ExpoCertificate {
            public_key: spki.subject_public_key.data.to_vec(),
        })
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
            return Err(Error::usage(
                "no signing key: pass --key keys/NAME.key or set OTAPUB_SIGNING_KEY (create a key with `otapub keygen --out keys/NAME`)",
            ));
        }
        keys.sort_by(|a, b| a.keyid.cmp(&b.keyid));
        keys.dedup_by(|a, b| a.keyid == b.keyid);
        Ok(Signer { keys, expo })
    }

    /// Signs a manifest or directive payload with every key.
    pub fn sign_payload(&self, payload: &crate::tree::Payload) -> Signatures {
        let mut sigs = self.sign(payload.payload_type(), &payload.bytes);
        sigs.expo = self.expo.as_ref().map(|k| k.signature_header(&payload.bytes));
        sigs
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
        Signatures { dsse, expo: None }
    }
}

#[derive(Serialize, Deserialize)]
struct EnvelopeJson {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<DsseSignature>,
}

/// The DSSE envelope bytes: compact JSON, signatures sorted by keyid.
pub fn envelope(payload_type: &str, payload: &[u8], sigs: &Signatures) -> Vec<u8> {
    let mut signatures = sigs.dsse.clone();
    signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    let env = EnvelopeJson {
        payload_type: payload_type.to_string(),
        payload: B64.encode(payload),
        signatures,
    };
    serde_json::to_vec(&env).expect("an envelope of strings serializes")
}

/// A parsed envelope: the payload bytes and signatures.
#[derive(Debug)]
pub struct Envelope {
    /// The payload type.
    pub payload_type: String,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The signatures as given.
    pub signatures: Vec<DsseSignature>,
}

/// Parses an envelope without checking signatures.
pub fn parse_envelope(bytes: &[u8]) -> std::result::Result<Envelope, String> {
    let env: EnvelopeJson = serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    let payload = B64
        .decode(env.payload.as_bytes())
        .map_err(|e| format!("payload is not base64: {e}"))?;
    Ok(Envelope {
        payload_type: env.payload_type,
        payload,
        signatures: env.signatures,
    })
}

/// Public keys a verifier trusts.
#[derive(Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl TrustedKeys {
    /// Loads SPKI PEM public keys.
    pub fn load(paths: &[PathBuf]) -> Result<TrustedKeys> {
        let mut keys = Vec::new();
        for path in paths {
            let key_err = |reason: String| Error::Key {
                path: path.display().to_string(),
                reason,
            };
            let pem = fs::read_to_string(path).map_err(|e| key_err(format!("cannot read it: {e}")))?;
            let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| {
                key_err("not an ed25519 public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`, the .pub file `otapub keygen` writes)".into())
            })?;
            keys.push((key_id(&key), key));
        }
        Ok(TrustedKeys { keys })
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Ok when at least one signature by a trusted key verifies strictly.
    pub fn verify(&self, env: &Envelope) -> std::result::Result<(), String> {
        let message = pae(&env.payload_type, &env.payload);
        let mut seen_trusted = false;
        for s in &env.signatures {
            let Some((_, key)) = self.keys.iter().find(|(id, _)| *id == s.keyid) else {
                continue;
            };
            seen_trusted = true;
            let Ok(raw) = B64.decode(s.sig.as_bytes()) else {
                return Err(format!("signature by {} is not base64", s.keyid));
            };
            let Ok(sig) = Signature::from_slice(&raw) else {
                return Err(format!("signature by {} is not 64 bytes", s.keyid));
            };
            if key.verify_strict(&message, &sig).is_err() {
                return Err(format!("signature by {} does not verify", s.keyid));
            }
        }
        if seen_trusted {
            Ok(())
        } else {
            let ids: Vec<&str> = env.signatures.iter().map(|s| s.keyid.as_str()).collect();
            Err(format!("no signature by a trusted key (signed by: {})", ids.join(", ")))
        }
    }
}

/// What `keygen` wrote.
#[derive(Debug, Serialize)]
pub struct GeneratedKey {
    /// The private key file.
    pub private_path: PathBuf,
    /// The public key file.
    pub public_path: PathBuf,
    /// The keyid.
    pub keyid: String,
}

/// Writes `<out>.key` (PKCS#8 PEM, mode 0600) and `<out>.pub` (SPKI PEM); never overwrites.
pub fn generate_key(out: &Path) -> Result<GeneratedKey> {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.is_empty() || name.starts_with('.') {
        return Err(Error::usage(format!(
            "--out {} must name a key, e.g. `--out keys/release`",
            out.display()
        )));
    }
    let private_path = out.with_file_name(format!("{name}.key"));
    let public_path = out.with_file_name(format!("{name}.pub"));
    for p in [&private_path, &public_path] {
        if p.exists() {
            return Err(Error::usage(format!(
                "{} already exists; keygen never overwrites a key — choose another --out name",
                p.display()
            )));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| Error::usage(format!("the system random number generator failed: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an ed25519 key encodes as PKCS#8");
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("an ed25519 key encodes as SPKI");
    if let Some(dir) = private_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(Error::file("create directory", dir))?;
    }
    write_new(&private_path, private_pem.as_bytes(), 0o600)?;
    write_new(&public_path, public_pem.as_bytes(), 0o644)?;
    Ok(GeneratedKey {
        private_path,
        public_path,
        keyid: key_id(&key.verifying_key()),
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(Error::file("create", path))?;
    f.write_all(bytes).map_err(Error::file("write", path))?;
    f.sync_all().map_err(Error::file("sync", path))
}

#[cfg(test)]
mod tests {
    use super::*;

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
