//! What `otapub init` sets in the app config, as a pure edit of its JSON:
//! every key it does not own is kept as it was, in its order, and a config
//! that already has everything is left byte for byte.

use serde_json::{json, Map, Value};

use crate::error::{ExitClass, Refusal, Result};

/// What `otapub init` refuses in app.json: a shape it cannot add its keys to,
/// or keys the user set that it would have to overwrite.
#[derive(Debug, thiserror::Error)]
pub enum AppJsonError {
    /// app.json is not a JSON object.
    #[error("app.json is not a JSON object; fix it (it holds {{\"expo\": {{…}}}}), then run init again")]
    AppJsonNotObject,
    /// app.json's `expo` is not an object.
    #[error("app.json: `expo` is not an object; fix it, then run init again")]
    ExpoNotObject,
    /// An object init sets keys in is something else.
    #[error("app.json: {key} is not an object; fix it, then run init again")]
    NotObject {
        /// Its path in app.json.
        key: String,
    },
    /// `plugins` is not a list.
    #[error("app.json: {prefix}plugins is not a list; fix it, then run init again")]
    PluginsNotList {
        /// `expo.` when app.json wraps its config.
        prefix: &'static str,
    },
    /// app.json names another code-signing certificate.
    #[error("app.json already sets {prefix}updates.codeSigningCertificate to {other}: init would set {want:?}. Remove that key to let init set up the certificate, or configure otapub by hand (expo_key and expo_cert in otapub.toml; see docs/app-config.md)")]
    CertificateConflict {
        /// `expo.` when app.json wraps its config.
        prefix: &'static str,
        /// What app.json sets.
        other: String,
        /// What init would set.
        want: String,
    },
    /// app.json's code-signing metadata is not what otapub signs with.
    #[error("app.json already sets {prefix}updates.codeSigningMetadata to {other}: otapub signs as {metadata}. Make them agree (expo_keyid in otapub.toml), then run init again")]
    MetadataConflict {
        /// `expo.` when app.json wraps its config.
        prefix: &'static str,
        /// What app.json sets.
        other: String,
        /// What otapub signs as.
        metadata: String,
    },
}

impl Refusal for AppJsonError {
    fn class(&self) -> ExitClass {
        match self {
            AppJsonError::AppJsonNotObject
            | AppJsonError::ExpoNotObject
            | AppJsonError::NotObject { .. }
            | AppJsonError::PluginsNotList { .. }
            | AppJsonError::CertificateConflict { .. }
            | AppJsonError::MetadataConflict { .. } => ExitClass::Input,
        }
    }
}

/// The runtime-version policy init sets where the app has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimePolicy {
    /// `{"policy": "appVersion"}`, as `eas update:configure` sets.
    AppVersion,
    /// `{"policy": "fingerprint"}`.
    Fingerprint,
}

impl RuntimePolicy {
    fn value(self) -> Value {
        match self {
            RuntimePolicy::AppVersion => json!({ "policy": "appVersion" }),
            RuntimePolicy::Fingerprint => json!({ "policy": "fingerprint" }),
        }
    }
}

/// What the app config must say for otapub's updates to reach its builds.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The public URL of the store's `public/` folder.
    pub base_url: String,
    /// The channel builds check.
    pub channel: String,
    /// Set only where the app has no runtime version.
    pub policy: RuntimePolicy,
    /// The code-signing certificate, relative to the project (`./certs/certificate.pem`).
    pub certificate: String,
    /// Its keyid in `codeSigningMetadata`.
    pub keyid: String,
    /// Set only where `ios.bundleIdentifier` is missing.
    pub bundle_identifier: String,
    /// Set only where `android.package` is missing.
    pub package: String,
}

/// One change init makes, in words, and the key path it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key, e.g. `expo.updates.enabled`.
    pub key: String,
    /// The value it now has, as JSON.
    pub value: String,
    /// Why, for the user.
    pub why: &'static str,
}

/// The plugin's name in `plugins`: the npm package that carries it.
pub const PLUGIN: &str = "otapub";

/// Edits `doc` (the whole app.json) to what `want` asks; returns the
/// changes made, none when it already says everything.
pub fn configure(doc: &mut Value, want: &Wanted) -> Result<Vec<Change>> {
    let root = doc.as_object_mut().ok_or(AppJsonError::AppJsonNotObject)?;
    // app.json holds {"expo": {…}}; a config without the wrapper is read as the expo object itself.
    let wrapped = root.contains_key("expo") || !(root.contains_key("name") || root.contains_key("slug"));
    let expo = if wrapped {
        root.entry("expo")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or(AppJsonError::ExpoNotObject)?
    } else {
        root
    };
    let prefix = if wrapped { "expo." } else { "" };
    let mut changes = Vec::new();
    let mut set = |obj: &mut Map<String, Value>, path: &str, key: &str, value: Value, why: &'static str| {
        changes.push(Change {
            key: format!("{prefix}{path}"),
            value: value.to_string(),
            why,
        });
        obj.insert(key.to_string(), value);
    };

    let has_rv = expo.contains_key("runtimeVersion")
        || ["ios", "android"]
            .iter()
            .any(|p| expo.get(*p).and_then(|o| o.get("runtimeVersion")).is_some());
    if !has_rv {
        set(
            expo,
            "runtimeVersion",
            "runtimeVersion",
            want.policy.value(),
            "builds had no runtime version, so updates were disabled",
        );
    }

    let updates = object_at(expo, "updates", &format!("{prefix}updates"))?;
    if updates.get("enabled") != Some(&Value::Bool(true)) {
        set(
            updates,
            "updates.enabled",
            "enabled",
            Value::Bool(true),
            "builds check for updates",
        );
    }
    match updates.get("codeSigningCertificate") {
        None => set(
            updates,
            "updates.codeSigningCertificate",
            "codeSigningCertificate",
            Value::String(want.certificate.clone()),
            "builds accept only updates signed by your key",
        ),
        Some(Value::String(c)) if same_path(c, &want.certificate) => {}
        Some(other) => {
            return Err(AppJsonError::CertificateConflict {
                prefix,
                other: other.to_string(),
                want: want.certificate.clone(),
            }
            .into())
        }
    }
    let metadata = json!({ "keyid": want.keyid, "alg": "rsa-v1_5-sha256" });
    match updates.get("codeSigningMetadata") {
        None => set(
            updates,
            "updates.codeSigningMetadata",
            "codeSigningMetadata",
            metadata,
            "the key id and algorithm builds check",
        ),
        Some(m) if *m == metadata => {}
        Some(other) => {
            return Err(AppJsonError::MetadataConflict {
                prefix,
                other: other.to_string(),
                metadata: metadata.to_string(),
            }
            .into())
        }
    }

    // `expo prebuild` writes these when missing, which moves the fingerprint.
    let ios = object_at(expo, "ios", &format!("{prefix}ios"))?;
    if !ios.contains_key("bundleIdentifier") {
        set(
            ios,
            "ios.bundleIdentifier",
            "bundleIdentifier",
            Value::String(want.bundle_identifier.clone()),
            "prebuild would write it otherwise, moving the fingerprint",
        );
    }
    let android = object_at(expo, "android", &format!("{prefix}android"))?;
    if !android.contains_key("package") {
        set(
            android,
            "android.package",
            "package",
            Value::String(want.package.clone()),
            "prebuild would write it otherwise, moving the fingerprint",
        );
    }

    let options = json!({ "baseUrl": want.base_url, "channel": want.channel });
    let plugins = match expo.entry("plugins").or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(a) => a,
        _ => return Err(AppJsonError::PluginsNotList { prefix }.into()),
    };
    let entry = json!([PLUGIN, options]);
    let at = plugins.iter().position(|p| match p {
        Value::String(s) => s == PLUGIN,
        Value::Array(a) => a.first().and_then(Value::as_str) == Some(PLUGIN),
        _ => false,
    });
    let plugin_changed = match at {
        None => {
            plugins.push(entry.clone());
            true
        }
        Some(i) if plugins[i] == entry => false,
        Some(i) => {
            plugins[i] = entry.clone();
            true
        }
    };
    if plugin_changed {
        changes.push(Change {
            key: format!("{prefix}plugins[\"{PLUGIN}\"]"),
            value: entry.to_string(),
            why: "each platform's build checks <base-url>/<channel>/<platform>/<runtime version>/manifest",
        });
    }
    Ok(changes)
}

/// The object under `key`, created when missing.
fn object_at<'a>(obj: &'a mut Map<String, Value>, key: &str, shown: &str) -> Result<&'a mut Map<String, Value>> {
    obj.entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| AppJsonError::NotObject { key: shown.to_string() }.into())
}

fn same_path(a: &str, b: &str) -> bool {
    a.trim_start_matches("./") == b.trim_start_matches("./")
}

/// `doc` as JSON text in the file's own style: its indentation (two spaces
/// when it has none) and its final newline.
pub fn to_text(doc: &Value, original: &str) -> String {
    let indent: String = original
        .lines()
        .nth(1)
        .map(|l| l.chars().take_while(|c| *c == ' ' || *c == '\t').collect())
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| "  ".into());
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(doc, &mut ser).expect("a JSON value serializes");
    let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
    if original.is_empty() || original.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> Wanted {
        Wanted {
            base_url: "https://u.example.com".into(),
            channel: "production".into(),
            policy: RuntimePolicy::AppVersion,
            certificate: "./certs/certificate.pem".into(),
            keyid: "main".into(),
            bundle_identifier: "com.app".into(),
            package: "com.app".into(),
        }
    }

    #[test]
    fn a_second_run_changes_nothing_and_other_keys_keep_their_order() {
        let mut doc: Value =
            serde_json::from_str(r#"{"expo":{"name":"a","slug":"a","zeta":1,"alpha":{"b":2,"a":1}}}"#).unwrap();
        let first = configure(&mut doc, &want()).unwrap();
        assert_eq!(first.len(), 7, "{first:?}");
        let keys: Vec<&String> = doc["expo"].as_object().unwrap().keys().collect();
        assert_eq!(&keys[..4], ["name", "slug", "zeta", "alpha"]);
        let again = doc.clone();
        assert!(configure(&mut doc, &want()).unwrap().is_empty());
        assert_eq!(doc, again);
    }

    #[test]
    fn an_existing_runtime_version_and_identifiers_are_kept() {
        let mut doc: Value = serde_json::from_str(
            r#"{"expo":{"runtimeVersion":"1.2","ios":{"bundleIdentifier":"x.y"},"android":{"package":"x.y"}}}"#,
        )
        .unwrap();
        configure(&mut doc, &want()).unwrap();
        assert_eq!(doc["expo"]["runtimeVersion"], "1.2");
        assert_eq!(doc["expo"]["ios"]["bundleIdentifier"], "x.y");
    }

    #[test]
    fn another_certificate_is_refused() {
        let mut doc: Value =
            serde_json::from_str(r#"{"expo":{"updates":{"codeSigningCertificate":"./mine.pem"}}}"#).unwrap();
        assert!(configure(&mut doc, &want()).is_err());
    }

    #[test]
    fn text_keeps_the_files_indentation_and_final_newline() {
        let doc: Value = serde_json::from_str(r#"{"a":{"b":1}}"#).unwrap();
        assert_eq!(
            to_text(&doc, "{\n    \"a\": 1\n}\n"),
            "{\n    \"a\": {\n        \"b\": 1\n    }\n}\n"
        );
        assert_eq!(to_text(&doc, "{\"a\":1}"), "{\n  \"a\": {\n    \"b\": 1\n  }\n}");
    }
}
