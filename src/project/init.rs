//! `otapub init`: sets an Expo project up to publish with otapub — its
//! `otapub.toml`, its signing keys (never replacing one), the app config
//! (runtime version, code signing, the config plugin that points each
//! platform's build at its pointer) and `.gitignore`. Run twice, it changes
//! nothing.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::app_json::{self, Change, RuntimePolicy, Wanted};
use super::{AppConfigFile, ExpoProject};
use crate::error::{Error, ExitClass, Refusal, Result};
use crate::names::Channel;

/// The config file init writes, in the project's root.
pub const CONFIG_FILE: &str = "otapub.toml";
/// The ed25519 key (private; `.pub` beside it).
pub const SIGNING_KEY: &str = "keys/otapub";
/// The Expo code-signing key (private).
pub const EXPO_KEY: &str = "keys/expo-private-key.pem";
/// The certificate the app embeds (public, committed).
pub const EXPO_CERT: &str = "certs/certificate.pem";
/// Where `publish` writes the export.
pub const EXPORT_DIR: &str = ".otapub/export";

/// What `otapub init` refuses: a project, app config or `otapub.toml` it
/// cannot set up without overwriting what the user wrote.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A flag disagrees with what otapub.toml already says.
    #[error(
        "{} already says {key} = {have:?}, not {flag:?}; edit {} (init never rewrites it), then run init again",
        CONFIG_FILE,
        CONFIG_FILE
    )]
    ConfigDisagrees {
        /// The setting.
        key: String,
        /// What otapub.toml says.
        have: String,
        /// What the flag says.
        flag: String,
    },
    /// `--base-url` is not an http(s) URL.
    #[error("--base-url {base_url:?}: give the public http(s) URL of the store's public/ folder, e.g. https://updates.example.com")]
    BaseUrl {
        /// The URL given.
        base_url: String,
    },
    /// app.json is not JSON.
    #[error("{}: not valid JSON ({reason}); fix it, then run init again", path.display())]
    AppJsonInvalid {
        /// The app.json file.
        path: PathBuf,
        /// The parser's error.
        reason: String,
    },
    /// otapub.toml does not parse.
    #[error("{}: {reason} — fix it, then run init again", path.display())]
    ConfigInvalid {
        /// The otapub.toml file.
        path: PathBuf,
        /// The parser's error.
        reason: String,
    },
    /// The project has no expo-updates and `--no-install` was given.
    #[error("this project does not have expo-updates, so its builds take no updates: run `npx expo install expo-updates`, then init again (or init without --no-install)")]
    NoExpoUpdates,
    /// Installing expo-updates did not add it.
    #[error("`npx expo install expo-updates` did not add expo-updates to package.json; install it yourself, then run init again")]
    ExpoUpdatesNotAdded,
    /// The Expo key exists without its certificate.
    #[error("{} exists but {} does not: put the certificate builds embed at {}, or move the key away to let init make a new pair", EXPO_KEY, EXPO_CERT, EXPO_CERT)]
    KeyWithoutCertificate,
    /// The certificate exists without its Expo key.
    #[error("{} exists but its private key {} does not: put the key there (builds accept only updates signed by it), or move the certificate away to let init make a new pair", EXPO_CERT, EXPO_KEY)]
    CertificateWithoutKey,
    /// `--android-package` is not a Java package name.
    #[error("--android-package {package:?}: give a Java package name such as com.example.app (segments of letters, digits and _, each starting with a letter)")]
    AndroidPackage {
        /// The name given.
        package: String,
    },
}

impl Refusal for InitError {
    fn class(&self) -> ExitClass {
        match self {
            InitError::ConfigDisagrees { .. }
            | InitError::BaseUrl { .. }
            | InitError::AppJsonInvalid { .. }
            | InitError::ConfigInvalid { .. }
            | InitError::NoExpoUpdates
            | InitError::ExpoUpdatesNotAdded
            | InitError::KeyWithoutCertificate
            | InitError::CertificateWithoutKey
            | InitError::AndroidPackage { .. } => ExitClass::Input,
        }
    }
}

/// What `otapub init` was asked.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The project's root.
    pub dir: PathBuf,
    /// `--store` [default: a local store, `otapub-data`].
    pub store: Option<String>,
    /// `--base-url` [default: `http://127.0.0.1:8080`, what `otapub serve` answers on].
    pub base_url: Option<String>,
    /// `--channel` [default: `production`].
    pub channel: Option<Channel>,
    /// The policy set where the app has no runtime version.
    pub policy: RuntimePolicy,
    /// `--ios-bundle-identifier`, set where the app has none.
    pub bundle_identifier: Option<String>,
    /// `--android-package`, set where the app has none.
    pub package: Option<String>,
    /// Install expo-updates when the project lacks it.
    pub install: bool,
}

/// What init did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InitOutcome {
    /// The config file, and whether init wrote it (false: it was there).
    pub config: PathBuf,
    /// Whether this run wrote the config file.
    #[serde(rename = "configWritten")]
    pub config_written: bool,
    /// Keys and certificates this run created.
    #[serde(rename = "keysCreated")]
    pub keys_created: Vec<PathBuf>,
    /// The app config file.
    #[serde(rename = "appConfig")]
    pub app_config: PathBuf,
    /// Changes made to app.json (or, for app.config.js/ts, to make by hand).
    #[serde(rename = "appConfigChanges")]
    pub app_config_changes: Vec<ChangeOut>,
    /// True when the app config is code: the changes are for the user to make.
    #[serde(rename = "appConfigByHand")]
    pub app_config_by_hand: bool,
    /// Lines added to .gitignore.
    #[serde(rename = "gitignoreAdded")]
    pub gitignore_added: Vec<String>,
    /// Whether expo-updates was installed by this run.
    #[serde(rename = "installedExpoUpdates")]
    pub installed_expo_updates: bool,
    /// Things the user should know.
    pub notes: Vec<String>,
}

/// One app-config change, for output.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeOut {
    /// The key.
    pub key: String,
    /// Its new value (JSON).
    pub value: String,
    /// Why.
    pub why: String,
}

impl From<Change> for ChangeOut {
    fn from(c: Change) -> ChangeOut {
        ChangeOut {
            key: c.key,
            value: c.value,
            why: c.why.to_string(),
        }
    }
}

/// What an existing otapub.toml says, of what init would write.
#[derive(Debug, serde::Deserialize)]
struct Existing {
    store: Option<String>,
    base_url: Option<String>,
    channel: Option<String>,
    expo_keyid: Option<String>,
}

/// Sets the project at `opts.dir` up.
pub fn init(opts: &InitOptions, now: DateTime<Utc>) -> Result<InitOutcome> {
    let mut project = ExpoProject::find(&opts.dir)?;
    let root = project.root.clone();
    let mut out = InitOutcome {
        config: root.join(CONFIG_FILE),
        ..InitOutcome::default()
    };

    // 1. otapub.toml: kept when there; a flag that disagrees with it is refused.
    let existing = read_existing(&out.config)?;
    let pick = |flag: Option<String>, have: Option<String>, key: &str, default: &str| -> Result<String> {
        match (flag, have) {
            (Some(f), Some(h)) if f != h => Err(InitError::ConfigDisagrees {
                key: key.to_string(),
                have: h,
                flag: f,
            }
            .into()),
            (f, h) => Ok(f.or(h).unwrap_or_else(|| default.to_string())),
        }
    };
    let base_url = pick(
        opts.base_url.clone(),
        existing.as_ref().and_then(|e| e.base_url.clone()),
        "base_url",
        "http://127.0.0.1:8080",
    )?;
    let base_url = crate::names::public_base_url(&base_url).ok_or(InitError::BaseUrl { base_url })?;
    let store = pick(
        opts.store.clone(),
        existing.as_ref().and_then(|e| e.store.clone()),
        "store",
        "otapub-data",
    )?;
    let channel = pick(
        opts.channel.as_ref().map(Channel::to_string),
        existing.as_ref().and_then(|e| e.channel.clone()),
        "channel",
        "production",
    )?;
    let channel: Channel = channel.parse()?;
    let keyid = existing
        .as_ref()
        .and_then(|e| e.expo_keyid.clone())
        .unwrap_or_else(|| "main".into());

    // 2. The app config, planned before anything is written.
    let (name, slug) = identity(&project, &root);
    let reverse = reverse_dns(&slug);
    let want = Wanted {
        base_url: base_url.clone(),
        channel: channel.to_string(),
        policy: opts.policy,
        certificate: format!("./{EXPO_CERT}"),
        keyid,
        bundle_identifier: opts.bundle_identifier.clone().unwrap_or_else(|| reverse.clone()),
        package: opts.package.clone().unwrap_or_else(|| reverse.clone()),
    };
    if let Some(p) = &opts.package {
        check_package(p)?;
    }
    let planned = match &project.app_config {
        AppConfigFile::Json(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(Error::file("read", path.clone())(e)),
            };
            let mut doc: serde_json::Value = if text.trim().is_empty() {
                serde_json::json!({ "expo": { "name": name, "slug": slug } })
            } else {
                serde_json::from_str(&text).map_err(|e| InitError::AppJsonInvalid {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            };
            let changes = app_json::configure(&mut doc, &want)?;
            Some((path.clone(), text, doc, changes))
        }
        AppConfigFile::Dynamic(path) => {
            // Code: evaluate it to see what is missing; the user adds it.
            let evaluated = project.public_config()?;
            let mut doc = serde_json::json!({ "expo": evaluated });
            let changes = app_json::configure(&mut doc, &want)?;
            out.app_config = path.clone();
            out.app_config_by_hand = true;
            out.app_config_changes = changes.into_iter().map(ChangeOut::from).collect();
            None
        }
    };

    // 3. expo-updates: builds take no updates without it.
    if !project.depends_on("expo-updates") {
        if !opts.install {
            return Err(InitError::NoExpoUpdates.into());
        }
        project.run(&["expo", "install", "expo-updates"])?;
        project = ExpoProject::find(&root)?;
        if !project.depends_on("expo-updates") {
            return Err(InitError::ExpoUpdatesNotAdded.into());
        }
        out.installed_expo_updates = true;
    }

    // 4. Keys: created where none exist, never replaced.
    let signing = root.join(SIGNING_KEY);
    let signing_private = signing.with_extension("key");
    if !signing_private.exists() {
        let k = crate::signing::generate_key(&signing)?;
        out.keys_created.push(k.private_path);
        out.keys_created.push(k.public_path);
    }
    let (expo_key, expo_cert) = (root.join(EXPO_KEY), root.join(EXPO_CERT));
    match (expo_key.exists(), expo_cert.exists()) {
        (true, true) => {}
        (false, false) => {
            let c = crate::signing::create_app_certificate(&name, 10, &expo_key, &expo_cert, now)?;
            out.keys_created.push(c.key_path);
            out.keys_created.push(c.certificate_path);
        }
        (true, false) => return Err(InitError::KeyWithoutCertificate.into()),
        (false, true) => return Err(InitError::CertificateWithoutKey.into()),
    }

    // 5. otapub.toml.
    if existing.is_none() {
        write_file(&out.config, config_text(&store, &base_url, &channel).as_bytes())?;
        out.config_written = true;
    }

    // 6. The app config.
    if let Some((path, text, doc, changes)) = planned {
        if !changes.is_empty() {
            write_file(&path, app_json::to_text(&doc, &text).as_bytes())?;
        }
        out.app_config = path;
        out.app_config_changes = changes.into_iter().map(ChangeOut::from).collect();
    }

    // 7. .gitignore: private keys, the local store and the export out; the
    // certificate in (Expo's template ignores *.pem); native folders out
    // where prebuild makes them (else expo-updates takes the project for a
    // bare one, and its runtime-version policies stop resolving).
    let mut wanted = vec![
        format!("/{SIGNING_KEY}.key"),
        format!("/{EXPO_KEY}"),
        format!("!/{EXPO_CERT}"),
        "/.otapub/".to_string(),
    ];
    if is_local_in_project(&store) {
        wanted.push(format!("/{}/", store.trim_start_matches("./").trim_end_matches('/')));
    }
    for native in ["android", "ios"] {
        if tracked(&root, native) {
            out.notes.push(format!(
                "{native}/ is committed: expo-updates treats this as a bare project, where the runtime version must be a string (not a policy) and prebuild does not apply the config plugin; see docs/app-config.md"
            ));
        } else {
            wanted.push(format!("/{native}"));
        }
    }
    out.gitignore_added = add_to_gitignore(&root.join(".gitignore"), &wanted)?;
    if opts.bundle_identifier.is_none()
        && out
            .app_config_changes
            .iter()
            .any(|c| c.key.ends_with("ios.bundleIdentifier") || c.key.ends_with("android.package"))
    {
        out.notes.push(format!(
            "ios.bundleIdentifier / android.package were missing and are now {reverse:?} (from the slug); change them before your first store build if they are not yours"
        ));
    }
    Ok(out)
}

fn read_existing(path: &Path) -> Result<Option<Existing>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::file("read", path.to_path_buf())(e)),
    };
    // Only the keys init cares about (others are ignored here); the full
    // check is every command's.
    let existing = toml::from_str(&text).map_err(|e: toml::de::Error| InitError::ConfigInvalid {
        path: path.to_path_buf(),
        reason: e.message().to_string(),
    })?;
    Ok(Some(existing))
}

fn config_text(store: &str, base_url: &str, channel: &Channel) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "# otapub's settings for this app, written by `npx otapub init`. Every\n\
         # otapub command run here reads them; paths are relative to this file.\n\
         # In CI, OTAPUB_SIGNING_KEY and OTAPUB_EXPO_SIGNING_KEY (the PEM texts)\n\
         # take the place of the key files, which are never committed.\n\
         \n\
         # Where the tree is written: a folder, or s3://bucket/prefix.\n\
         store = {}\n\
         # The public URL of the store's public/ folder (your CDN).\n\
         base_url = {}\n\
         # The channel `otapub publish` publishes to when given none.\n\
         channel = {}\n\
         key = [{}]\n\
         trust = [{}]\n\
         expo_key = {}\n\
         expo_cert = {}\n\
         # Refuse to publish to a runtime version no recorded build has (`otapub builds add`).\n\
         require_build = false\n",
        q(store),
        q(base_url),
        q(channel.as_str()),
        q(&format!("{SIGNING_KEY}.key")),
        q(&format!("{SIGNING_KEY}.pub")),
        q(EXPO_KEY),
        q(EXPO_CERT),
    )
}

/// The app's name and slug (for the certificate's subject and the default
/// identifiers), from app.json or package.json.
fn identity(project: &ExpoProject, root: &Path) -> (String, String) {
    let from_json = match &project.app_config {
        AppConfigFile::Json(p) => std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|v| v.get("expo").cloned().unwrap_or(v)),
        AppConfigFile::Dynamic(_) => None,
    };
    let field = |k: &str| {
        from_json
            .as_ref()
            .and_then(|e| e.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let package_name = project.package.get("name").and_then(|v| v.as_str()).map(str::to_string);
    let dir_name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let slug = field("slug")
        .or(package_name.clone())
        .or(dir_name)
        .unwrap_or_else(|| "app".into());
    let name = field("name").or(package_name).unwrap_or_else(|| slug.clone());
    (name, slug)
}

/// `com.<slug>`: letters and digits of the slug, starting with a letter.
fn reverse_dns(slug: &str) -> String {
    let mut s: String = slug
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s.insert_str(0, "app");
    }
    format!("com.{s}")
}

fn check_package(p: &str) -> Result<()> {
    let ok = p.split('.').count() >= 2
        && p.split('.').all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_alphabetic())
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(InitError::AndroidPackage { package: p.to_string() }.into())
    }
}

fn is_local_in_project(store: &str) -> bool {
    let s = store.strip_prefix("file://").unwrap_or(store);
    !s.contains("://") && !Path::new(s).is_absolute() && !s.starts_with("..")
}

/// Whether git tracks anything under `dir` of the project.
fn tracked(root: &Path, dir: &str) -> bool {
    std::process::Command::new("git")
        .args(["ls-files", "--", dir])
        .current_dir(root)
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty())
        .unwrap_or(false)
}

/// Appends the lines `.gitignore` lacks, under one comment; returns them.
fn add_to_gitignore(path: &Path, lines: &[String]) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::file("read", path.to_path_buf())(e)),
    };
    let have: std::collections::BTreeSet<&str> = text.lines().map(str::trim).collect();
    let missing: Vec<String> = lines.iter().filter(|l| !have.contains(l.as_str())).cloned().collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    let mut new = text.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    if !have.contains("# otapub") {
        if !new.is_empty() {
            new.push('\n');
        }
        new.push_str("# otapub\n");
    }
    for l in &missing {
        new.push_str(l);
        new.push('\n');
    }
    write_file(path, new.as_bytes())?;
    Ok(missing)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::file("write", path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_from_a_slug_are_valid_package_names() {
        assert_eq!(reverse_dns("my-app"), "com.myapp");
        assert_eq!(reverse_dns("2048"), "com.app2048");
        assert!(check_package(&reverse_dns("My App!")).is_ok());
        assert!(check_package("com").is_err());
        assert!(check_package("com.1x").is_err());
    }
}
