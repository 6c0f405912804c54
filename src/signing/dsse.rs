//! DSSE v1 envelopes signed with ed25519: the pre-authentication
//! encoding, the envelope bytes, parsing and verification with trusted keys.

use std::fs;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::key_id;
use crate::error::Result;
use crate::model::{DsseSignature, Signatures};

/// DSSE payload type of a manifest envelope.
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.otapub.manifest+json";
/// DSSE payload type of a directive envelope.
pub const DIRECTIVE_PAYLOAD_TYPE: &str = "application/vnd.otapub.directive+json";
/// DSSE payload type of a signed ban record.
pub const BAN_PAYLOAD_TYPE: &str = "application/vnd.otapub.ban+json";
/// DSSE payload type of a pointer's rollout record (`P/rollout.json`).
pub const ROLLOUT_PAYLOAD_TYPE: &str = "application/vnd.otapub.rollout+json";
/// DSSE payload type of an embedded patch base's record (`state/embedded/…`).
pub const EMBEDDED_PAYLOAD_TYPE: &str = "application/vnd.otapub.embedded+json";
/// payloadType of a build's record (`state/builds/`).
pub const BUILD_PAYLOAD_TYPE: &str = "application/vnd.otapub.build+json";

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

impl Signatures {
    /// The signatures of an envelope read from the store, adopted only if
    /// one of them verifies with a trusted key; `expo` is the
    /// `expo-signature` header of its Expo twin (checked by the renderer,
    /// which must reproduce the exact bytes read).
    pub fn adopt(
        env: &Envelope,
        trusted: &TrustedKeys,
        expo: Option<String>,
        expo_chain: Option<String>,
    ) -> std::result::Result<Signatures, String> {
        trusted.verify(env)?;
        Ok(Signatures {
            dsse: env.signatures.clone(),
            expo,
            expo_chain,
        })
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
    pub(super) keys: Vec<(String, VerifyingKey)>,
}

impl TrustedKeys {
    /// Loads SPKI PEM public keys.
    pub fn load(paths: &[PathBuf]) -> Result<TrustedKeys> {
        let mut keys = Vec::new();
        for path in paths {
            let label = || path.display().to_string();
            let pem = fs::read_to_string(path).map_err(|e| super::KeyError::Unreadable {
                path: label(),
                reason: e.to_string(),
            })?;
            let key = VerifyingKey::from_public_key_pem(pem.trim())
                .map_err(|_| super::KeyError::NotEd25519Public { path: label() })?;
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
