//! The Expo Updates protocol v1 documents otapub signs: the manifest, the
//! directives, and the `multipart/mixed` body that carries either. Everything
//! here is a pure function of its inputs, so the same package always renders
//! to the same bytes.

use chrono::{DateTime, Utc};

use crate::digest::Sha256Digest;
use crate::docs::{
    AssetDoc, CommitTimeDoc, DirectiveDoc, DirectiveExtraDoc, ExtraDoc, ManifestDoc, MetadataDoc, OtapubDoc, PointerDoc,
};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::model::AssetRef;
use crate::names::{Channel, Fingerprint, Platform, Version};

/// Content type of every launch asset (bundle).
pub const BUNDLE_CONTENT_TYPE: &str = "application/javascript";

/// The createdAt / commitTime format the expo-updates client parses.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The content type an asset is served with, from its extension.
pub fn asset_content_type(ext: &str) -> String {
    mime_guess::from_ext(ext)
        .first_or_octet_stream()
        .essence_str()
        .to_string()
}

/// The fields of one update's manifest.
#[derive(Debug, Clone)]
pub struct ManifestFields<'a> {
    /// Manifest id (canonical UUID).
    pub id: &'a str,
    /// createdAt.
    pub created_at: DateTime<Utc>,
    /// Runtime version the update targets.
    pub fingerprint: &'a Fingerprint,
    /// Channel.
    pub channel: &'a Channel,
    /// Platform.
    pub platform: Platform,
    /// Version path component.
    pub version: &'a Version,
    /// The original of a re-stamp.
    pub restamp_of: Option<&'a Version>,
    /// Free-text message.
    pub message: Option<&'a str>,
    /// Public base URL of `public/`, without a trailing slash.
    pub base_url: &'a str,
    /// The bundle.
    pub launch_asset: &'a AssetRef,
    /// The other assets, in metadata.json order.
    pub assets: &'a [AssetRef],
    /// Compact JSON of the public app config, embedded as `extra.expoClient`.
    pub expo_client: Option<&'a RawValue>,
    /// Whether the launch asset carries `fileExtension` (manifests signed
    /// before the Expo spec's SHOULD-omit was followed).
    pub launch_file_extension: bool,
}

fn asset_doc(a: &AssetRef, content_type: String, base_url: &str) -> AssetDoc {
    AssetDoc {
        hash: a.sha256.expo_hash(),
        key: a.key.clone(),
        content_type,
        file_extension: Some(format!(".{}", a.ext)),
        url: format!("{base_url}/assets/{}", a.sha256),
    }
}

/// The exact bytes of the manifest part.
pub fn manifest_bytes(f: &ManifestFields<'_>) -> Vec<u8> {
    let doc = ManifestDoc {
        id: f.id.to_string(),
        created_at: format_time(f.created_at),
        runtime_version: f.fingerprint.to_string(),
        launch_asset: AssetDoc {
            // The Expo spec says the launch asset's fileExtension SHOULD be
            // omitted; manifests signed before otapub followed it keep theirs.
            file_extension: f.launch_file_extension.then(|| format!(".{}", f.launch_asset.ext)),
            ..asset_doc(f.launch_asset, BUNDLE_CONTENT_TYPE.to_string(), f.base_url)
        },
        assets: f
            .assets
            .iter()
            .map(|a| asset_doc(a, asset_content_type(&a.ext), f.base_url))
            .collect(),
        metadata: MetadataDoc {
            otapub: OtapubDoc {
                channel: f.channel.to_string(),
                platform: f.platform.to_string(),
                version: f.version.to_string(),
                restamp_of: f.restamp_of.map(Version::to_string),
                message: f.message.map(str::to_string),
            },
        },
        extra: f.expo_client.map(|c| ExtraDoc {
            expo_client: Some(c.to_owned()),
        }),
    };
    serde_json::to_vec(&doc).expect("a manifest of strings serializes")
}

/// A directive a pointer can serve instead of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// Nothing to download: the pointer has packages but none is live.
    NoUpdateAvailable,
    /// Run the update embedded in the build, committed at this time.
    RollBackToEmbedded {
        /// Newer than everything else on the pointer.
        commit_time: DateTime<Utc>,
    },
}

/// The exact bytes of a directive part, bound to its pointer so a signed
/// directive cannot be replayed on another one.
pub fn directive_bytes(d: &Directive, channel: &Channel, platform: Platform, fingerprint: &Fingerprint) -> Vec<u8> {
    let (kind, parameters) = match d {
        Directive::NoUpdateAvailable => ("noUpdateAvailable", None),
        Directive::RollBackToEmbedded { commit_time } => (
            "rollBackToEmbedded",
            Some(CommitTimeDoc {
                commit_time: format_time(*commit_time),
            }),
        ),
    };
    let doc = DirectiveDoc {
        kind: kind.to_string(),
        parameters,
        extra: DirectiveExtraDoc {
            otapub: PointerDoc {
                channel: channel.to_string(),
                platform: platform.to_string(),
                fingerprint: fingerprint.to_string(),
            },
        },
    };
    serde_json::to_vec(&doc).expect("a directive of strings serializes")
}

/// What a multipart body carries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartName {
    /// An update manifest (followed by an `extensions` part).
    Manifest,
    /// A directive.
    Directive,
}

impl PartName {
    /// The form-data name.
    pub fn as_str(self) -> &'static str {
        match self {
            PartName::Manifest => "manifest",
            PartName::Directive => "directive",
        }
    }
}

/// Part body of the `extensions` part that follows a manifest.
pub const EXTENSIONS: &[u8] = br#"{"assetRequestHeaders":{}}"#;

/// A rendered multipart body and its boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartBody {
    /// Boundary, `[A-Za-z0-9-]` only.
    pub boundary: String,
    /// The body bytes.
    pub bytes: Vec<u8>,
}

impl MultipartBody {
    /// `multipart/mixed; boundary=<boundary>`.
    pub fn content_type(&self) -> String {
        format!("multipart/mixed; boundary={}", self.boundary)
    }
}

/// Builds the Expo response body: the signed part, then `extensions` for a
/// manifest. `expo_signature` is the value of the `expo-signature` part
/// header when Expo code signing is configured.
pub fn multipart(name: PartName, part: &[u8], expo_signature: Option<&str>, chain: Option<&str>) -> MultipartBody {
    multipart_framed(name, part, expo_signature, chain, Framing::Inline)
}

/// The part headers' content-disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `inline`, as the Expo spec's "Multipart Response" section requires.
    Inline,
    /// `form-data`, as otapub wrote before: tolerated by clients, not
    /// conformant; only recognised, to migrate stores.
    LegacyFormData,
}

/// [`multipart`] with a chosen framing.
pub fn multipart_framed(
    name: PartName,
    part: &[u8],
    expo_signature: Option<&str>,
    chain: Option<&str>,
    framing: Framing,
) -> MultipartBody {
    let disposition = match framing {
        Framing::Inline => "inline",
        Framing::LegacyFormData => "form-data",
    };
    let mut seed = Sha256::new();
    seed.update(name.as_str());
    seed.update(part);
    let mut digest = Sha256Digest::from_bytes(seed.finalize().into());
    // A boundary must not occur in what it separates; a hash of the content
    // practically never does, but rehash until it provably doesn't.
    let boundary = loop {
        let b = format!("otapub-{}", &digest.to_hex()[..32]);
        if !contains(part, b.as_bytes()) && !chain.is_some_and(|c| contains(c.as_bytes(), b.as_bytes())) {
            break b;
        }
        digest = Sha256Digest::of(digest.as_bytes());
    };
    let mut out = Vec::with_capacity(part.len() + 512);
    let mut push_part = |name: &str, content_type: &str, body: &[u8], sig: Option<&str>| {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(format!("content-disposition: {disposition}; name=\"{name}\"\r\n").as_bytes());
        out.extend_from_slice(format!("content-type: {content_type}\r\n").as_bytes());
        if let Some(sig) = sig {
            out.extend_from_slice(format!("expo-signature: {sig}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    };
    push_part(name.as_str(), "application/json", part, expo_signature);
    if name == PartName::Manifest {
        push_part("extensions", "application/json", EXTENSIONS, None);
    }
    if let Some(chain) = chain {
        push_part("certificate_chain", "application/x-pem-file", chain.as_bytes(), None);
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    MultipartBody { boundary, bytes: out }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One part of a parsed multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPart {
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Exact body bytes.
    pub body: Vec<u8>,
}

impl ParsedPart {
    /// The first header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The `name` parameter of content-disposition.
    pub fn name(&self) -> Option<&str> {
        let cd = self.header("content-disposition")?;
        let start = cd.find("name=\"")? + 6;
        let end = cd[start..].find('"')? + start;
        Some(&cd[start..end])
    }
}

/// The boundary named by a `multipart/mixed` content type.
pub fn boundary_of(content_type: &str) -> Option<&str> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
}

/// Parses a body with the strict framing otapub writes (and the client reads).
pub fn parse_multipart(boundary: &str, body: &[u8]) -> Result<Vec<ParsedPart>, String> {
    let delim = format!("--{boundary}");
    let closing = format!("--{boundary}--\r\n");
    if !body.ends_with(closing.as_bytes()) {
        return Err("body does not end with the closing boundary and CRLF".into());
    }
    if !body.starts_with(format!("{delim}\r\n").as_bytes()) {
        return Err("body does not start with the boundary".into());
    }
    let inner = &body[..body.len() - closing.len()];
    let sep = format!("\r\n{delim}\r\n");
    let mut parts = Vec::new();
    let mut rest = &inner[delim.len() + 2..];
    loop {
        let (chunk, next) = match find(rest, sep.as_bytes()) {
            Some(i) => (&rest[..i], Some(&rest[i + sep.len()..])),
            None => {
                let Some(stripped) = rest.strip_suffix(b"\r\n") else {
                    return Err("last part does not end with CRLF".into());
                };
                (stripped, None)
            }
        };
        let Some(h) = find(chunk, b"\r\n\r\n") else {
            return Err("part has no blank line after its headers".into());
        };
        let head = std::str::from_utf8(&chunk[..h]).map_err(|_| "part headers are not UTF-8".to_string())?;
        let mut headers = Vec::new();
        for line in head.split("\r\n") {
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| format!("malformed part header {line:?}"))?;
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        parts.push(ParsedPart {
            headers,
            body: chunk[h + 4..].to_vec(),
        });
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    Ok(parts)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_round_trips_and_ends_with_crlf() {
        let body = multipart(PartName::Manifest, br#"{"id":"x"}"#, Some("sig=\"a\""), None);
        assert!(body.bytes.ends_with(format!("--{}--\r\n", body.boundary).as_bytes()));
        assert!(body.boundary.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        let parts = parse_multipart(boundary_of(&body.content_type()).unwrap(), &body.bytes).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name(), Some("manifest"));
        assert_eq!(parts[0].body, br#"{"id":"x"}"#);
        assert_eq!(parts[0].header("expo-signature"), Some("sig=\"a\""));
        assert_eq!(parts[1].body, EXTENSIONS);
        // With a chain: a third part, PEM.
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let body = multipart(PartName::Directive, b"{}", Some("sig=\"a\""), Some(pem));
        let parts = parse_multipart(boundary_of(&body.content_type()).unwrap(), &body.bytes).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].name(), Some("certificate_chain"));
        assert_eq!(parts[1].header("content-type"), Some("application/x-pem-file"));
        assert_eq!(parts[1].body, pem.as_bytes());
    }

    #[test]
    fn time_has_milliseconds_and_z() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(t), "2026-11-22T10:00:00.000Z");
    }
}
