//! The command line: clap types and their translation into library options.
//! No clap type goes below this module.

/// `println!` that ends the process quietly when stdout is closed (`| head`)
/// instead of panicking, as ripgrep does.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!($($arg)*))
    };
}

mod ban;
mod builds;
mod check;
mod completions;
mod diff;
mod embedded;
mod gc;
mod index;
mod init;
mod insights;
mod keygen;
mod keys;
mod log;
mod ops;
mod promote;
mod publish;
mod refresh;
mod regenerate;
mod report;
mod rollback;
mod rollout;
mod serve;
mod status;
mod verify;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use otapub::error::Error;
use otapub::names::{Channel, Fingerprint, Platform, PointerId};
use otapub::ops::{Clock, Context};
use otapub::patch::Policy as PatchPolicy;
use otapub::signing::{Ed25519Key, ExpoKey, KeySource, Signer, TrustedKeys};
use otapub::store::{self, S3Options, Store};

/// Publish signed over-the-air updates for Expo / React Native apps as a static tree.
#[derive(Debug, Parser)]
#[command(name = "otapub", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes, before or after the subcommand. They are
/// declared on both levels (not as clap globals) so a repeatable one given on
/// both sides keeps every value (clap issue 1570).
#[derive(Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The store: a directory, file:///abs/dir or s3://bucket/prefix [default: ./otapub-data]
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Config file [default: ./otapub.toml when present]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Public URL of the store's public/ folder, used in asset URLs
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// ed25519 signing key, PKCS#8 PEM (repeatable: every key signs; `-` reads stdin). Env: OTAPUB_SIGNING_KEY holds a PEM
    #[arg(long = "key", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// A public key `verify` accepts (repeatable) [default: keys/*.pub]
    #[arg(long = "trust", value_name = "FILE")]
    trust: Vec<PathBuf>,
    /// RSA key for Expo code signing, PKCS#1 or PKCS#8 PEM (`-` reads stdin). Env: OTAPUB_EXPO_SIGNING_KEY holds a PEM
    #[arg(long, value_name = "FILE")]
    expo_key: Option<PathBuf>,
    /// keyid of the Expo code-signing key, as in the app's codeSigningMetadata [default: main]
    #[arg(long, value_name = "ID")]
    expo_keyid: Option<String>,
    /// Code-signing certificate (as the app embeds it) that `verify --url` checks Expo signatures against
    #[arg(long, value_name = "FILE")]
    expo_cert: Option<PathBuf>,
    /// The PEM chain (leaf first, no root) of --expo-key, sent in every signed Expo body (`otapub keys expo-leaf` writes it). Env: OTAPUB_EXPO_CHAIN holds the PEM
    #[arg(long, value_name = "FILE")]
    expo_chain: Option<PathBuf>,
    /// The root certificate the app embeds when responses carry a chain: `verify` checks every served chain up to it
    #[arg(long, value_name = "FILE")]
    expo_ca: Option<PathBuf>,
    /// Who runs the command, for the audit log [default: $GITHUB_ACTOR, $GITLAB_USER_LOGIN or $USER]
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
    /// Machine-readable output on stdout
    #[arg(long)]
    json: bool,
    /// Print nothing but errors and warnings (and --json output); no progress bars
    #[arg(long, short = 'q')]
    quiet: bool,
    /// S3: path-style addressing (automatic for IP and localhost endpoints)
    #[arg(long)]
    path_style: bool,
    /// S3: write even though the server ignores conditional writes (only safe with a single writer)
    #[arg(long)]
    unsafe_no_locking: bool,
    /// Id of this invocation: give the same one when retrying a command (CI retries) so a change that already committed is not applied twice [default: random]
    #[arg(long, value_name = "ID")]
    operation_id: Option<String>,
    /// Launch-asset patches: how many of a pointer's newest earlier bundles are patch bases [default: 3; config: patch_bases]
    #[arg(long, value_name = "N")]
    patch_bases: Option<usize>,
    /// Launch-asset patches: keep a patch only when smaller than this share of the full asset [default: 0.6; config: patch_max_fraction]
    #[arg(long, value_name = "F")]
    patch_max_fraction: Option<f64>,
    /// Folder of templates replacing the embedded ones of `report` and `serve`'s /_otapub/ page (report.html, report.css) [config: templates]
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
}

fn merge_one<T: PartialEq + std::fmt::Debug>(name: &str, a: Option<T>, b: Option<T>) -> anyhow::Result<Option<T>> {
    match (a, b) {
        (Some(a), Some(b)) if a != b => Err(Error::usage(format!(
            "--{name} is given twice with different values ({a:?} and {b:?}); give it once"
        ))
        .into()),
        (a, b) => Ok(b.or(a)),
    }
}

impl GlobalArgs {
    fn merge(self, sub: GlobalArgs) -> anyhow::Result<GlobalArgs> {
        Ok(GlobalArgs {
            store: merge_one("store", self.store, sub.store)?,
            config: merge_one("config", self.config, sub.config)?,
            base_url: merge_one("base-url", self.base_url, sub.base_url)?,
            keys: self.keys.into_iter().chain(sub.keys).collect(),
            trust: self.trust.into_iter().chain(sub.trust).collect(),
            expo_key: merge_one("expo-key", self.expo_key, sub.expo_key)?,
            expo_keyid: merge_one("expo-keyid", self.expo_keyid, sub.expo_keyid)?,
            expo_cert: merge_one("expo-cert", self.expo_cert, sub.expo_cert)?,
            expo_chain: merge_one("expo-chain", self.expo_chain, sub.expo_chain)?,
            expo_ca: merge_one("expo-ca", self.expo_ca, sub.expo_ca)?,
            actor: merge_one("actor", self.actor, sub.actor)?,
            json: self.json || sub.json,
            quiet: self.quiet || sub.quiet,
            path_style: self.path_style || sub.path_style,
            unsafe_no_locking: self.unsafe_no_locking || sub.unsafe_no_locking,
            operation_id: merge_one("operation-id", self.operation_id, sub.operation_id)?,
            patch_bases: merge_one("patch-bases", self.patch_bases, sub.patch_bases)?,
            patch_max_fraction: merge_one("patch-max-fraction", self.patch_max_fraction, sub.patch_max_fraction)?,
            templates: merge_one("templates", self.templates, sub.templates)?,
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up the Expo project here: otapub.toml, keys, app config, .gitignore
    Init(init::InitArgs),
    /// Create an ed25519 signing key pair
    Keygen(keygen::KeygenArgs),
    /// Expo code-signing keys over time: `keys expo-leaf` issues a leaf under the app's root
    Keys(keys::KeysArgs),
    /// Publish an `expo export` directory
    Publish(publish::PublishArgs),
    /// Ban a package, irreversibly
    Ban(ban::BanArgs),
    /// Roll a pointer back by re-stamping an earlier bundle
    Rollback(rollback::RollbackArgs),
    /// Re-stamp a package into another channel
    Promote(promote::PromoteArgs),
    /// Staged rollouts: set, pause, resume, advance, complete, abort, status, which
    Rollout(rollout::RolloutArgs),
    /// Builds' embedded updates, recorded as patch bases
    Embedded(embedded::EmbeddedArgs),
    /// The builds in the field per (platform, runtime version); `builds add` records one
    Builds(Box<builds::BuildsArgs>),
    /// Devices, downloads and failures per update, from the CDN's access logs (`insights ingest`)
    Insights(Box<insights::InsightsArgs>),
    /// Render the public tree from the index and write what differs
    Regenerate(regenerate::RegenerateArgs),
    /// Re-sign every served Expo response with the current leaf and chain (no update id changes)
    Refresh(refresh::RefreshArgs),
    /// Show what each pointer serves, and its history
    Status(status::StatusArgs),
    /// Show the audit log
    Log(log::LogArgs),
    /// What changed between two packages: launch asset, assets, app config, messages
    Diff(diff::DiffArgs),
    /// Write the operators' status page (HTML + JSON) to a folder
    Report(report::ReportArgs),
    /// List operations and their lifecycle; `ops sweep` fails stuck ones
    Ops(Box<ops::OpsArgs>),
    /// Check every pointer as a device would
    Verify(verify::VerifyArgs),
    /// Check the store against the index
    Check(check::CheckArgs),
    /// Maintain the index
    Index(index::IndexArgs),
    /// Serve public/ as the CDN would, for development and tests
    Serve(serve::ServeArgs),
    /// Delete what no package references (older than a grace period)
    Gc(gc::GcArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(completions::CompletionsArgs),
}

/// The pointer a command acts on: `--channel --platform --fingerprint`.
#[derive(Debug, Args)]
pub struct PointerArgs {
    /// Channel
    #[arg(long)]
    channel: Channel,
    /// Platform
    #[arg(long)]
    platform: Platform,
    /// Fingerprint (runtime version)
    #[arg(long)]
    fingerprint: Fingerprint,
}

impl PointerArgs {
    pub fn pointer(&self) -> PointerId {
        PointerId {
            channel: self.channel.clone(),
            platform: self.platform,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// The config file (`otapub.toml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    store: Option<String>,
    base_url: Option<String>,
    #[serde(default)]
    key: Vec<PathBuf>,
    #[serde(default)]
    trust: Vec<PathBuf>,
    expo_key: Option<PathBuf>,
    expo_keyid: Option<String>,
    expo_cert: Option<PathBuf>,
    expo_chain: Option<PathBuf>,
    expo_ca: Option<PathBuf>,
    actor: Option<String>,
    path_style: Option<bool>,
    /// `when_required` for servers that reject the SDK's default upload checksums.
    s3_request_checksums: Option<String>,
    /// Seconds an S3 request may wait for the server's next bytes.
    s3_read_timeout_secs: Option<u64>,
    patch_bases: Option<usize>,
    patch_max_fraction: Option<f64>,
    templates: Option<PathBuf>,
    /// The channel `publish` uses when given none.
    channel: Option<String>,
    /// Refuse to publish to a runtime version with no recorded build.
    require_build: Option<bool>,
    /// Compile each update's Hermes bytecode against what devices run (default true).
    delta_bytecode: Option<bool>,
}

/// The settings (otapub.toml, the environment, flags naming files) a command
/// cannot use. Always turned into an `otapub::Error` (`Error::from`) before it
/// becomes an `anyhow::Error`, so the exit code comes from its class.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file cannot be read.
    #[error("--config {}: cannot read it ({reason}); give the path of an otapub.toml", path.display())]
    ConfigUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file does not parse (the message names the line and key).
    #[error("{message}")]
    ConfigInvalid {
        /// Where and what, from `config_error`.
        message: String,
    },
    /// The config file's channel breaks the naming rule.
    #[error("{}: channel = {channel:?}: {reason}", path.display())]
    ConfigChannel {
        /// The config file.
        path: PathBuf,
        /// The channel.
        channel: String,
        /// The rule it breaks.
        reason: String,
    },
    /// `OTAPUB_NOW` is not a time.
    #[error(
        "OTAPUB_NOW={value:?} is not an RFC 3339 time ({reason}); give one such as 2026-01-01T00:00:00Z, or unset it"
    )]
    Now {
        /// The variable's value.
        value: String,
        /// The parser's error.
        reason: String,
    },
    /// `s3_request_checksums` is neither value.
    #[error("s3_request_checksums = {value:?}: use \"when_supported\" (the default) or \"when_required\"")]
    Checksums {
        /// The value given.
        value: String,
    },
    /// `s3_read_timeout_secs = 0`.
    #[error("s3_read_timeout_secs = 0: give the seconds a request may wait for the server, e.g. 60")]
    ReadTimeoutZero,
    /// `--operation-id` with characters an operation id cannot have.
    #[error("--operation-id {id:?}: use 1-128 chars of [A-Za-z0-9._-], e.g. publish-$GITHUB_RUN_ID (the same on every retry of one CI run)")]
    OperationId {
        /// The id given.
        id: String,
    },
    /// The access log cannot be opened.
    #[error("--access-log {}: cannot open it for appending ({reason}); give a file otapub may write", path.display())]
    AccessLog {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `--expo-ca` is not the one root certificate an app embeds.
    #[error("--expo-ca {}: {reason}", path.display())]
    ExpoCa {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// `publish` with no directory outside an Expo project.
    #[error("{reason}\n(or give the directory `npx expo export` wrote: otapub publish DIR --runtime-version RV)")]
    NoProject {
        /// Why the folder is no Expo project otapub can export.
        reason: String,
    },
}

impl otapub::error::Refusal for SettingsError {
    fn class(&self) -> otapub::ExitClass {
        match self {
            SettingsError::ConfigUnreadable { .. }
            | SettingsError::ConfigInvalid { .. }
            | SettingsError::ConfigChannel { .. }
            | SettingsError::Now { .. }
            | SettingsError::Checksums { .. }
            | SettingsError::ReadTimeoutZero
            | SettingsError::OperationId { .. }
            | SettingsError::AccessLog { .. }
            | SettingsError::ExpoCa { .. }
            | SettingsError::NoProject { .. } => otapub::ExitClass::Input,
        }
    }
}

fn read_config(explicit: Option<&Path>) -> anyhow::Result<(Option<PathBuf>, ConfigFile)> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new("otapub.toml").is_file() => PathBuf::from("otapub.toml"),
        None => return Ok((None, ConfigFile::default())),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::from(SettingsError::ConfigUnreadable {
            path: path.clone(),
            reason: e.to_string(),
        })
    })?;
    let cfg: ConfigFile = toml::from_str(&text).map_err(|e| {
        Error::from(SettingsError::ConfigInvalid {
            message: config_error(&path, &text, &e),
        })
    })?;
    Ok((Some(path), cfg))
}

/// "FILE line N: `KEY`: what is wrong", from where the parser stopped.
fn config_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let Some(at) = e.span().map(|s| s.start.min(text.len())) else {
        return format!("{}: {}", path.display(), e.message());
    };
    let line = text[..at].matches('\n').count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or_default();
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    let what = match key {
        Some(k) => format!("`{k}`: "),
        None => String::new(),
    };
    format!(
        "{} line {line}: {what}{} (the README's \"Options and configuration\" section lists each key and its type)",
        path.display(),
        e.message()
    )
}

/// Everything resolved from flags, environment and config file.
pub struct Settings {
    store_url: String,
    base_url: Option<String>,
    keys: Vec<KeySource>,
    trust: Vec<PathBuf>,
    expo_key: Option<KeySource>,
    expo_keyid: String,
    expo_cert: Option<PathBuf>,
    expo_chain: Option<KeySource>,
    expo_ca: Option<PathBuf>,
    json: bool,
    progress: otapub::progress::Progress,
    actor: String,
    clock: Clock,
    s3: S3Options,
    unsafe_no_locking: bool,
    operation_id: String,
    invocation: String,
    patches: PatchPolicy,
    templates: Option<PathBuf>,
    channel: Option<Channel>,
    require_build: bool,
    delta_bytecode: bool,
}

impl Settings {
    fn resolve(g: GlobalArgs, invocation: &str) -> anyhow::Result<Settings> {
        QUIET.store(g.quiet, std::sync::atomic::Ordering::Relaxed);
        let (config_path, cfg) = read_config(g.config.as_deref())?;
        // Paths in the config file are relative to the file.
        let base = config_path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let mut keys: Vec<KeySource> = g.keys.iter().map(|p| KeySource::from_arg(p)).collect();
        // Not clap's `env` (here and for the two Expo variables below): the variable holds the PEM itself where the flag names a file, and an empty one is ignored.
        if let Ok(pem) = std::env::var("OTAPUB_SIGNING_KEY") {
            if !pem.trim().is_empty() {
                keys.push(KeySource::Env {
                    var: "OTAPUB_SIGNING_KEY".into(),
                    pem,
                });
            }
        }
        if keys.is_empty() {
            keys = cfg.key.into_iter().map(|p| KeySource::File(rel(p))).collect();
        }
        if keys.iter().filter(|k| **k == KeySource::Stdin).count() > 1 {
            return Err(Error::usage("--key - is given twice; standard input holds one key").into());
        }
        let trust = if g.trust.is_empty() {
            cfg.trust.into_iter().map(rel).collect()
        } else {
            g.trust
        };
        let expo_key = match (g.expo_key, std::env::var("OTAPUB_EXPO_SIGNING_KEY")) {
            (Some(p), _) => Some(KeySource::from_arg(&p)),
            (None, Ok(pem)) if !pem.trim().is_empty() => Some(KeySource::Env {
                var: "OTAPUB_EXPO_SIGNING_KEY".into(),
                pem,
            }),
            _ => cfg.expo_key.map(|p| KeySource::File(rel(p))),
        };
        if expo_key == Some(KeySource::Stdin) && keys.contains(&KeySource::Stdin) {
            return Err(Error::usage("--key - and --expo-key - both read standard input, which holds one key").into());
        }
        let expo_cert = g.expo_cert.or(cfg.expo_cert.map(rel));
        let expo_chain = match (g.expo_chain, std::env::var("OTAPUB_EXPO_CHAIN")) {
            (Some(p), _) => Some(KeySource::File(p)),
            (None, Ok(pem)) if !pem.trim().is_empty() => Some(KeySource::Env {
                var: "OTAPUB_EXPO_CHAIN".into(),
                pem,
            }),
            _ => cfg.expo_chain.map(|p| KeySource::File(rel(p))),
        };
        let expo_keyid = g.expo_keyid.or(cfg.expo_keyid).unwrap_or_else(|| "main".to_string());
        let actor = g
            .actor
            .or(cfg.actor)
            .or_else(|| {
                ["GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER"]
                    .iter()
                    .find_map(|v| std::env::var(v).ok())
            })
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        // No flag: a test and replay hook, read only from the environment.
        let clock = match std::env::var("OTAPUB_NOW") {
            Ok(t) => Clock::Fixed(
                chrono::DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| {
                        Error::from(SettingsError::Now {
                            value: t.clone(),
                            reason: e.to_string(),
                        })
                    })?
                    .with_timezone(&chrono::Utc),
            ),
            Err(_) => Clock::System,
        };
        let checksums = cfg
            .s3_request_checksums
            .or_else(|| std::env::var("AWS_REQUEST_CHECKSUM_CALCULATION").ok());
        let checksums_when_required = match checksums.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("when_supported") => false,
            Some("when_required") => true,
            Some(other) => {
                return Err(Error::from(SettingsError::Checksums {
                    value: other.to_string(),
                })
                .into())
            }
        };
        let s3 = S3Options {
            path_style: if g.path_style { Some(true) } else { cfg.path_style },
            checksums_when_required,
            read_timeout: match cfg.s3_read_timeout_secs {
                Some(0) => return Err(Error::from(SettingsError::ReadTimeoutZero).into()),
                Some(s) => std::time::Duration::from_secs(s),
                None => store::DEFAULT_READ_TIMEOUT,
            },
        };
        let operation_id = match g.operation_id {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 128
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
            {
                id
            }
            Some(id) => return Err(Error::from(SettingsError::OperationId { id: id.to_string() }).into()),
            None => {
                ci_operation_id(|k| std::env::var(k).ok(), invocation).unwrap_or_else(otapub::commit::new_operation_id)
            }
        };
        let defaults = PatchPolicy::default();
        let patches = PatchPolicy::new(
            g.patch_bases.or(cfg.patch_bases).unwrap_or(defaults.bases),
            g.patch_max_fraction
                .or(cfg.patch_max_fraction)
                .unwrap_or(defaults.max_fraction),
        )?;
        let channel = cfg
            .channel
            .map(|c| {
                c.parse::<Channel>().map_err(|e| {
                    Error::from(SettingsError::ConfigChannel {
                        path: config_path.clone().unwrap_or_else(|| PathBuf::from("otapub.toml")),
                        channel: c.clone(),
                        reason: e.to_string(),
                    })
                })
            })
            .transpose()?;
        Ok(Settings {
            channel,
            require_build: cfg.require_build.unwrap_or(false),
            delta_bytecode: cfg.delta_bytecode.unwrap_or(true),
            templates: g.templates.or(cfg.templates.map(rel)),
            patches,
            s3,
            unsafe_no_locking: g.unsafe_no_locking,
            operation_id,
            invocation: invocation.to_string(),
            store_url: g.store.or(cfg.store).unwrap_or_else(|| "./otapub-data".to_string()),
            base_url: g.base_url.or(cfg.base_url),
            keys,
            trust,
            expo_key,
            expo_keyid,
            expo_cert,
            expo_chain,
            expo_ca: g.expo_ca.or(cfg.expo_ca.map(rel)),
            json: g.json,
            progress: if g.json || g.quiet {
                otapub::progress::Progress::hidden()
            } else {
                otapub::progress::Progress::on_terminal()
            },
            actor,
            clock,
        })
    }

    async fn open_store(&self) -> anyhow::Result<Box<dyn Store>> {
        Ok(store::open(&self.store_url, &self.s3).await?)
    }

    fn context<'a>(&self, store: &'a dyn Store) -> Context<'a> {
        Context {
            store,
            actor: self.actor.clone(),
            clock: self.clock,
            unsafe_no_locking: self.unsafe_no_locking,
            operation_id: self.operation_id.clone(),
            invocation: self.invocation.clone(),
            patches: self.patches,
            progress: self.progress,
        }
    }

    /// The report templates: the embedded ones, with `--templates` overrides.
    fn templates(&self) -> anyhow::Result<otapub::report::Templates> {
        Ok(match &self.templates {
            Some(dir) => otapub::report::Templates::with_overrides(dir)?,
            None => otapub::report::Templates::default(),
        })
    }

    fn signer(&self) -> anyhow::Result<Signer> {
        let keys = self.keys.iter().map(Ed25519Key::load).collect::<Result<Vec<_>, _>>()?;
        let mut expo = self
            .expo_key
            .as_ref()
            .map(|k| ExpoKey::load(k, &self.expo_keyid))
            .transpose()?;
        if let Some(chain) = &self.expo_chain {
            let Some(key) = expo.take() else {
                return Err(Error::usage(
                    "--expo-chain is the certificate chain of an Expo signing key: give that key with --expo-key too",
                )
                .into());
            };
            let text = chain.read_text()?;
            expo = Some(key.with_chain(&chain.label(), &text, self.clock.now())?);
        }
        Ok(Signer::new(keys, expo)?)
    }

    fn trusted(&self) -> anyhow::Result<TrustedKeys> {
        let mut paths = self.trust.clone();
        if paths.is_empty() {
            if let Ok(dir) = std::fs::read_dir("keys") {
                paths = dir
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                    .collect();
                paths.sort();
            }
        }
        if paths.is_empty() {
            return Err(Error::usage(
                "no trusted public key: pass --trust keys/NAME.pub (the .pub file `otapub keygen` wrote)",
            )
            .into());
        }
        Ok(TrustedKeys::load(&paths)?)
    }

    fn print_json<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<()> {
        write_stdout(format_args!(
            "{}",
            serde_json::to_string_pretty(value).context("cannot write JSON")?
        ));
        Ok(())
    }
}

/// `--quiet`: human-readable lines are not printed.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one human-readable line to stdout unless `--quiet`.
pub fn emit(args: std::fmt::Arguments<'_>) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        write_stdout(args);
    }
}

/// Writes one line to stdout; a closed pipe ends the process with success.
fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(3);
    }
}

/// How the command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Done,
    /// Exit 1: a check found problems.
    Problems,
}

/// The global options print as `..`: a command's `Debug` form is then the
/// command and its own arguments, which is what identifies a rerun
/// ([`invocation`]); where the store or the keys come from does not.
impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

/// What was run, for recognising a rerun of the same command: the
/// subcommand and its parsed arguments, without the global options (so the
/// order of flags, `--key` paths or `--json` make no difference).
fn invocation(command: &Command) -> String {
    format!("{command:?}")
}

/// The operation id of a CI job, when one runs: the same on every retry of
/// the job (GitHub Actions' re-run keeps `GITHUB_RUN_ID` and `GITHUB_JOB`; a
/// GitLab retry keeps `CI_PIPELINE_ID` and `CI_JOB_NAME`), and distinct for
/// two different commands in one job (a hash of the job and the command with
/// its arguments). `GITHUB_RUN_ATTEMPT` is left out on purpose: a re-run of a
/// job is the same operation.
fn ci_operation_id(env: impl Fn(&str) -> Option<String>, invocation: &str) -> Option<String> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let (ci, run, job) = if set("GITHUB_ACTIONS").is_some() {
        ("github", set("GITHUB_RUN_ID")?, set("GITHUB_JOB")?)
    } else if set("GITLAB_CI").is_some() {
        ("gitlab", set("CI_PIPELINE_ID")?, set("CI_JOB_NAME")?)
    } else if set("CIRCLECI").is_some() {
        ("circleci", set("CIRCLE_WORKFLOW_ID")?, set("CIRCLE_JOB")?)
    } else if set("BUILDKITE").is_some() {
        (
            "buildkite",
            set("BUILDKITE_BUILD_ID")?,
            set("BUILDKITE_STEP_KEY").or_else(|| set("BUILDKITE_LABEL"))?,
        )
    } else {
        return None;
    };
    let clean = |v: &str, max: usize| -> String {
        v.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(max)
            .collect()
    };
    let digest = otapub::digest::Sha256Digest::of(format!("{job}\n{invocation}").as_bytes()).to_string();
    Some(format!(
        "{ci}-{}-{}-{}",
        clean(&run, 40),
        clean(&job, 40),
        &digest[..16]
    ))
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    tracing::debug!("start");
    let Cli { global, command } = cli;
    let invocation = invocation(&command);
    // The global options given before the subcommand, merged with those after it.
    let settings = |sub: &GlobalArgs| Settings::resolve(global.clone().merge(sub.clone())?, &invocation);
    match command {
        Command::Init(a) => {
            // init writes otapub.toml: it takes the flags as given, not merged with a config.
            let given = global.clone().merge(a.global.clone())?;
            init::run(settings(&a.global)?, a, given.store, given.base_url)
        }
        Command::Keygen(a) => keygen::run(a),
        Command::Keys(a) => keys::run(settings(a.global())?, a),
        Command::Publish(a) => publish::run(settings(&a.global)?, a).await,
        Command::Ban(a) => ban::run(settings(&a.global)?, a).await,
        Command::Rollback(a) => rollback::run(settings(&a.global)?, a).await,
        Command::Promote(a) => promote::run(settings(&a.global)?, a).await,
        Command::Regenerate(a) => regenerate::run(settings(&a.global)?, a).await,
        Command::Refresh(a) => refresh::run(settings(&a.global)?).await,
        Command::Status(a) => status::run(settings(&a.global)?).await,
        Command::Log(a) => log::run(settings(&a.global)?).await,
        Command::Diff(a) => diff::run(settings(&a.global)?, a).await,
        Command::Report(a) => report::run(settings(&a.global)?, a).await,
        Command::Ops(a) => ops::run(settings(&a.global()?)?, *a).await,
        Command::Verify(a) => verify::run(settings(&a.global)?, a).await,
        Command::Check(a) => check::run(settings(&a.global)?).await,
        Command::Gc(a) => gc::run(settings(&a.global)?, a).await,
        Command::Serve(a) => serve::run(settings(&a.global)?, a).await,
        Command::Index(a) => index::run(settings(a.global())?, a).await,
        Command::Rollout(a) => rollout::run(settings(a.global())?, a).await,
        Command::Embedded(a) => embedded::run(settings(a.global())?, a).await,
        Command::Builds(a) => builds::run(settings(&a.global()?)?, *a).await,
        Command::Insights(a) => insights::run(settings(a.global())?, *a).await,
        Command::Completions(a) => completions::run(a),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_ci_job_gives_one_operation_id_per_command_and_keeps_it_on_a_retry() {
        let github = |run: &'static str, attempt: &'static str| {
            move |k: &str| {
                match k {
                    "GITHUB_ACTIONS" => Some("true"),
                    "GITHUB_RUN_ID" => Some(run),
                    "GITHUB_JOB" => Some("publish"),
                    "GITHUB_RUN_ATTEMPT" => Some(attempt),
                    _ => None,
                }
                .map(str::to_string)
            }
        };
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            invocation(&cli.command)
        };
        let rollback = parse(&[
            "otapub",
            "rollback",
            "--channel",
            "c",
            "--platform",
            "ios",
            "--fingerprint",
            "f",
        ]);
        // The same command with its flags in another order and other global options.
        let again = parse(&[
            "otapub",
            "--json",
            "rollback",
            "--fingerprint",
            "f",
            "--platform",
            "ios",
            "--channel",
            "c",
            "--key",
            "k",
        ]);
        assert_eq!(rollback, again);
        let first = ci_operation_id(github("77", "1"), &rollback).unwrap();
        assert_eq!(
            ci_operation_id(github("77", "2"), &again),
            Some(first.clone()),
            "a re-run"
        );
        assert!(first.starts_with("github-77-publish-"), "{first}");
        let android = parse(&[
            "otapub",
            "rollback",
            "--channel",
            "c",
            "--platform",
            "android",
            "--fingerprint",
            "f",
        ]);
        assert_ne!(
            ci_operation_id(github("77", "1"), &android),
            Some(first.clone()),
            "another target"
        );
        assert_ne!(
            ci_operation_id(github("78", "1"), &rollback),
            Some(first),
            "another run"
        );
        let gitlab = |k: &str| {
            match k {
                "GITLAB_CI" => Some("true"),
                "CI_PIPELINE_ID" => Some("9"),
                "CI_JOB_NAME" => Some("ota publish"),
                _ => None,
            }
            .map(str::to_string)
        };
        let id = ci_operation_id(gitlab, &rollback).unwrap();
        assert!(id.starts_with("gitlab-9-ota-publish-"), "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        assert_eq!(ci_operation_id(|_: &str| None, &rollback), None, "outside CI");
    }

    #[test]
    fn repeatable_keys_before_and_after_the_subcommand_all_count() {
        let cli = Cli::try_parse_from(["otapub", "--key", "a", "status", "--key", "b"]).unwrap();
        let Command::Status(s) = cli.command else {
            panic!("status")
        };
        let merged = cli.global.merge(s.global).unwrap();
        assert_eq!(merged.keys, [PathBuf::from("a"), PathBuf::from("b")]);
    }
}
