//! Validated names: every value that becomes part of an object key or a file
//! path is one of these newtypes, checked once at the edge (docs/format.md).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value that failed validation, with the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct InvalidName {
    /// Which kind of name ("channel", "fingerprint", ...).
    pub what: &'static str,
    /// The value as given.
    pub value: String,
    /// The rule it must follow.
    pub rule: &'static str,
}

/// A mobile platform; a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple iOS.
    Ios,
    /// Google Android.
    Android,
}

impl Platform {
    /// Both platforms, in the order the tree lists them.
    pub const ALL: [Platform; 2] = [Platform::Android, Platform::Ios];

    /// The lowercase name used in paths and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ios" => Ok(Platform::Ios),
            "android" => Ok(Platform::Android),
            _ => Err(InvalidName {
                what: "platform",
                value: s.to_string(),
                rule: "must be `ios` or `android`",
            }),
        }
    }
}

fn is_path_safe(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $check:expr) => {
        name_type!($(#[$doc])* $name, $what, $rule, $check, $check);
    };
    // `$stored` checks what is read back (deserialized): otapub's own
    // derived names may be longer than a user may type.
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $check:expr, $stored:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok($name(s.to_string()))
                } else {
                    Err(InvalidName { what: $what, value: s.to_string(), rule: $rule })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                let stored: fn(&str) -> bool = $stored;
                if stored(&s) {
                    Ok($name(s))
                } else {
                    Err(InvalidName { what: $what, value: s, rule: $rule })
                }
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A release track baked into a build's update URL.
    Channel,
    "channel",
    "use 1-32 characters of a-z, 0-9 and `-`, not `assets` or `updates`",
    |s| {
        !s.is_empty()
            && s.len() <= 32
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s != "assets"
            && s != "updates"
    }
);

name_type!(
    /// The runtime version a native build carries.
    Fingerprint,
    "fingerprint",
    "use 1-128 characters of A-Z, a-z, 0-9, `.`, `_` and `-`, not starting with `.`",
    |s| is_path_safe(s, 128)
);

name_type!(
    /// The immutable path component one published update lives under.
    ///
    /// Versions given by a user are at most 100 characters; otapub's own
    /// re-stamp suffix (`.r<N>`) may take a stored version past that.
    Version,
    "version",
    "use 1-100 characters of A-Z, a-z, 0-9, `.`, `_` and `-`, not starting with `.`",
    |s| is_path_safe(s, 100),
    |s| is_path_safe(s, MAX_STORED_VERSION)
);

/// The longest version otapub derives or reads back (a re-stamp appends
/// `.r<N>` to a version of up to 100 characters).
const MAX_STORED_VERSION: usize = 200;

impl Version {
    /// A version otapub derives itself (re-stamps, directives, content
    /// versions): checked like one read back, so an over-long one is an
    /// error, never a name that escapes the rules.
    pub(crate) fn derived(s: String) -> Result<Version, InvalidName> {
        Version::stored(&s)
    }

    /// A version read back from the store or the index: input like any
    /// other, checked with the relaxed length of derived versions.
    pub fn stored(s: &str) -> Result<Version, InvalidName> {
        if is_path_safe(s, MAX_STORED_VERSION) {
            Ok(Version(s.to_string()))
        } else {
            Err(InvalidName {
                what: "stored version",
                value: s.to_string(),
                rule: "1-200 chars of [A-Za-z0-9._-], not starting with `.`",
            })
        }
    }
}

/// One pointer: the URL a build checks, fixed per (channel, platform, fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PointerId {
    /// Release track.
    pub channel: Channel,
    /// Platform.
    pub platform: Platform,
    /// Runtime version.
    pub fingerprint: Fingerprint,
}

impl PointerId {
    /// The key of the pointer's Expo body under the store root.
    pub fn manifest_key(&self) -> String {
        format!(
            "public/{}/{}/{}/manifest",
            self.channel, self.platform, self.fingerprint
        )
    }

    /// The key of the pointer's DSSE envelope under the store root.
    pub fn envelope_key(&self) -> String {
        format!("{}.json", self.manifest_key())
    }

    /// The key of the pointer's signed rollout record.
    pub fn rollout_record_key(&self) -> String {
        format!("public/{self}/rollout.json")
    }

    /// Where the pointer's rollout buckets live (with a trailing slash).
    pub fn rollout_prefix(&self) -> String {
        format!("public/{self}/rollout/")
    }

    /// The key of the Expo body a candidate bucket serves.
    pub fn bucket_key(&self, bucket: u8) -> String {
        format!("{}{bucket:02}/manifest", self.rollout_prefix())
    }
}

impl fmt::Display for PointerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.channel, self.platform, self.fingerprint)
    }
}

/// The public base URL of a store's `public/` folder, as asset URLs and
/// update URLs start with it: an absolute http(s) URL with a host, no
/// whitespace, query or fragment; its trailing slashes dropped. `None` when
/// it is not one (each caller says how to fix it).
pub fn public_base_url(url: &str) -> Option<String> {
    let trimmed = url.trim_end_matches('/');
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))?;
    (!host.is_empty() && !trimmed.contains(char::is_whitespace) && !trimmed.contains(['?', '#']))
        .then(|| trimmed.to_string())
}

/// The bytes of `id` when it is a UUID in its 8-4-4-4-12 hex form, either
/// case (the only form the stock client sends; braces, URNs and simple hex
/// are not).
pub fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    if id.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(id).ok().map(|u| *u.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_base_url_is_an_absolute_http_url_without_trailing_slashes() {
        assert_eq!(
            public_base_url("https://cdn.example.com/ota/").as_deref(),
            Some("https://cdn.example.com/ota")
        );
        assert_eq!(
            public_base_url("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for bad in [
            "",
            "cdn.example.com",
            "ftp://cdn",
            "https://",
            "https:///",
            "https://a b",
            "https://a/?x",
            "https://a/#x",
        ] {
            assert_eq!(public_base_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_restamp_of_a_longest_version_reads_back() {
        // A user may give 100 characters; the re-stamp adds `.r1`, and an
        // operation result recording it must deserialize on a retry.
        let long = "v".repeat(100);
        assert!(long.parse::<Version>().is_ok());
        assert!(format!("{long}x").parse::<Version>().is_err());
        let restamp = Version::derived(format!("{long}.r1")).expect("derived");
        let json = serde_json::to_string(&restamp).expect("serialize");
        assert_eq!(serde_json::from_str::<Version>(&json).expect("read back"), restamp);
        assert!(Version::derived("x".repeat(201)).is_err());
        assert!(serde_json::from_str::<Version>("\"../x\"").is_err());
    }

    #[test]
    fn rejects_path_escapes_and_bad_characters() {
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "é", "a\\b"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
            assert!(bad.parse::<Channel>().is_err(), "{bad:?}");
        }
        assert!("assets".parse::<Channel>().is_err());
        assert!("updates".parse::<Channel>().is_err());
        assert!("Production".parse::<Channel>().is_err());
        assert!("a".repeat(33).parse::<Channel>().is_err());
        assert!("a".repeat(101).parse::<Version>().is_err());
        assert!("a".repeat(129).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn accepts_the_documented_forms() {
        assert!("v1.3.18355.fc38c23d".parse::<Version>().is_ok());
        assert!("a".repeat(100).parse::<Version>().is_ok());
        assert!("production-2".parse::<Channel>().is_ok());
        assert!("1.0.0_abc-DEF".parse::<Fingerprint>().is_ok());
        assert_eq!("ios".parse::<Platform>(), Ok(Platform::Ios));
        assert!("web".parse::<Platform>().is_err());
    }
}
