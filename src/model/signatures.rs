//! The signatures of one signed payload, as the index records them.

use serde::{Deserialize, Serialize};

/// A DSSE signature as stored in the index and in envelopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsseSignature {
    /// First 16 hex chars of SHA-256 of the public key.
    pub keyid: String,
    /// Standard base64 of the 64-byte signature.
    pub sig: String,
}

/// The signatures of one signed payload, as the index records them so the
/// exact bytes can be rebuilt without re-signing. Made only by `signing`
/// (`Signer::sign`, and `Signatures::adopt`, which verifies) and by reading
/// back what the index recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signatures {
    /// ed25519 signatures over DSSE's PAE, sorted by keyid.
    pub(crate) dsse: Vec<DsseSignature>,
    /// The `expo-signature` part header value, when Expo code signing is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expo: Option<String>,
    /// The `certificate_chain` part sent with it (PEM, leaf first, no root),
    /// when the Expo key signs under a root the app embeds.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "expoChain")]
    pub(crate) expo_chain: Option<String>,
}

impl Signatures {
    /// The `expo-signature` header value, when Expo code signing was configured.
    pub fn expo(&self) -> Option<&str> {
        self.expo.as_deref()
    }

    /// The same ed25519 signatures with another Expo layer.
    pub fn with_expo(&self, expo: String, chain: Option<String>) -> Signatures {
        Signatures {
            dsse: self.dsse.clone(),
            expo: Some(expo),
            expo_chain: chain,
        }
    }

    /// The `certificate_chain` part, when the Expo key signs with a chain.
    pub fn expo_chain(&self) -> Option<&str> {
        self.expo_chain.as_deref()
    }
}
