//! `otapub publish`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{GlobalArgs, Outcome, Settings};
use otapub::error::Error;
use otapub::names::{Channel, Fingerprint, Platform, Version};
use otapub::ops::publish::{publish, PublishOptions};

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
    /// The directory `npx expo export` wrote
    dir: PathBuf,
    /// Release channel, e.g. production
    #[arg(long)]
    channel: Channel,
    /// Runtime version: FP for every platform, or ios=FP1 and android=FP2 (repeat the flag)
    #[arg(long, required = true, value_name = "FP | PLATFORM=FP")]
    fingerprint: Vec<String>,
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

pub async fn run(s: Settings, a: PublishArgs) -> anyhow::Result<Outcome> {
    let opts = PublishOptions {
        dir: a.dir,
        channel: a.channel,
        fingerprints: fingerprints(&a.fingerprint, &a.platform.platforms())?,
        version: a.version,
        message: a.message,
        expo_config: a.expo_config,
        base_url: s.base_url.clone(),
        change_base_url: a.change_base_url,
        rollout: a.rollout.plan()?,
    };
    let store = s.open_store().await?;
    let signer = s.signer()?;
    let out = publish(&s.context(store.as_ref()), &signer, &opts).await?;
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
