//! `otapub publish`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{GlobalArgs, Outcome, Settings};
use otapub::error::Error;
use otapub::names::{Channel, Fingerprint, Platform, Version};
use otapub::ops::publish::{publish, PublishOptions};
use otapub::project::{ExpoProject, ProjectExport};

/// Which platforms to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformArg {
    /// iOS only.
    Ios,
    /// Android only.
    Android,
    /// Both.
    All,
}

impl PlatformArg {
    pub fn platforms(self) -> Vec<Platform> {
        match self {
            PlatformArg::Ios => vec![Platform::Ios],
            PlatformArg::Android => vec![Platform::Android],
            PlatformArg::All => Platform::ALL.to_vec(),
        }
    }
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The directory `npx expo export` wrote [default: run from an Expo project, otapub runs its `expo export`]
    dir: Option<PathBuf>,
    /// Release channel, e.g. production [default: `channel` in otapub.toml]
    #[arg(long)]
    channel: Option<Channel>,
    /// Runtime version: RV for every platform, or ios=RV1 and android=RV2 (repeat the flag) [default, in an Expo project: resolved as expo-updates does for a build]
    #[arg(long, visible_alias = "runtime-version", value_name = "RV | PLATFORM=RV")]
    fingerprint: Vec<String>,
    /// Refuse (exit 2, nothing written) when no build is recorded for a platform's runtime version [config: require_build]
    #[arg(long)]
    require_build: bool,
    /// Which platforms to publish
    #[arg(long, value_enum, default_value_t = PlatformArg::All)]
    platform: PlatformArg,
    /// Version to publish under [default: derived from the content]
    #[arg(long)]
    version: Option<Version>,
    /// A message recorded in the manifest and the audit log
    #[arg(long)]
    message: Option<String>,
    /// Public app config (`npx expo config --type public --json`), embedded as extra.expoClient
    #[arg(long, value_name = "FILE")]
    expo_config: Option<PathBuf>,
    /// Publish the bytecode Expo's export compiles, not bytecode compiled against what devices run [config: delta_bytecode = false]
    #[arg(long)]
    no_delta_bytecode: bool,
    /// Accept a --base-url other than the one the store records
    #[arg(long)]
    change_base_url: bool,
    #[command(flatten)]
    rollout: super::rollout::StartArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `--fingerprint FP` or `--fingerprint ios=A --fingerprint android=B`.
fn fingerprints(values: &[String], platforms: &[Platform]) -> Result<BTreeMap<Platform, Fingerprint>, Error> {
    let mut map = BTreeMap::new();
    let plain: Vec<&String> = values.iter().filter(|v| !v.contains('=')).collect();
    if !plain.is_empty() {
        if values.len() > 1 {
            return Err(Error::usage(
                "give one --fingerprint FP for every platform, or --fingerprint ios=FP1 --fingerprint android=FP2, not both",
            ));
        }
        let fp: Fingerprint = plain[0].parse()?;
        return Ok(platforms.iter().map(|&p| (p, fp.clone())).collect());
    }
    for v in values {
        let (p, fp) = v.split_once('=').expect("filtered on '='");
        let platform: Platform = p.parse()?;
        if map.insert(platform, fp.parse::<Fingerprint>()?).is_some() {
            return Err(Error::usage(format!("--fingerprint {platform}=… is given twice")));
        }
    }
    for p in platforms {
        if !map.contains_key(p) {
            return Err(Error::usage(format!(
                "no fingerprint for {p}: add --fingerprint {p}=FP (compute it with `npx expo-updates runtimeversion:resolve --platform {p}`)"
            )));
        }
    }
    map.retain(|p, _| platforms.contains(p));
    Ok(map)
}

/// Runs the Expo project's own tools for a publish run in it.
fn from_project(a: &PublishArgs, platforms: &[Platform], delta_bytecode: bool) -> Result<ProjectExport, Error> {
    let project = ExpoProject::find(Path::new("."))
        .map_err(|e| Error::from(super::SettingsError::NoProject { reason: e.to_string() }))?;
    let given = if a.fingerprint.is_empty() {
        None
    } else {
        Some(fingerprints(&a.fingerprint, platforms)?)
    };
    project.export_for_publish(platforms, given, delta_bytecode)
}

pub async fn run(s: Settings, a: PublishArgs) -> anyhow::Result<Outcome> {
    let platforms = a.platform.platforms();
    let channel = match (a.channel.clone(), s.channel.clone()) {
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => return Err(Error::usage(
            "no channel: pass --channel (e.g. production), or set channel in otapub.toml (`npx otapub init` writes it)",
        )
        .into()),
    };
    let (exports, expo_config, fps, message, delta) = match &a.dir {
        Some(dir) => {
            if a.fingerprint.is_empty() {
                return Err(Error::usage(
                    "--runtime-version is required with an export directory: give RV for every platform or ios=RV1 and android=RV2 (`npx expo-updates runtimeversion:resolve --platform P` prints it), or run `otapub publish` with no directory in the Expo project to have otapub export and resolve it",
                )
                .into());
            }
            (
                platforms.iter().map(|&p| (p, dir.clone())).collect(),
                a.expo_config.clone(),
                fingerprints(&a.fingerprint, &platforms)?,
                a.message.clone(),
                None,
            )
        }
        None => {
            let p = from_project(&a, &platforms, s.delta_bytecode && !a.no_delta_bytecode)?;
            (
                p.exports,
                Some(a.expo_config.clone().unwrap_or(p.expo_config)),
                p.fingerprints,
                a.message.clone().or(p.message),
                p.delta,
            )
        }
    };
    let opts = PublishOptions {
        exports,
        channel,
        fingerprints: fps,
        version: a.version,
        message,
        expo_config,
        base_url: s.base_url.clone(),
        change_base_url: a.change_base_url,
        rollout: a.rollout.plan()?,
        require_build: a.require_build || s.require_build,
        delta,
    };
    let store = s.open_store().await?;
    let signer = s.signer()?;
    let out = publish(&s.context(store.as_ref()), &signer, &opts).await?;
    for p in out.packages.iter().filter(|p| !p.build_recorded) {
        eprintln!(
            "warning: no build of {} with runtime version {} is recorded, so no installed app may receive this update; \
             record each store build with `otapub builds add --platform {} --runtime-version {}` (--require-build makes this an error)",
            p.platform, p.runtime_version, p.platform, p.runtime_version
        );
    }
    if s.json {
        s.print_json(&out)?;
    } else {
        let how = if out.derived_version {
            " (derived from the content)"
        } else {
            ""
        };
        say!("version {}{how}", out.version);
        for p in &out.packages {
            let state = if p.new {
                "published"
            } else {
                "already published, pointers checked"
            };
            say!(
                "{}: {} {} id {} createdAt {}",
                p.platform,
                state,
                p.pointer,
                p.id,
                p.created_at
            );
        }
    }
    Ok(Outcome::Done)
}
