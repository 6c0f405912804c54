//! `otapub promote`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::names::{Channel, Platform, Version};
use otapub::ops::restamp::promote;

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The version to promote
    version: Version,
    /// Its platform
    #[arg(long)]
    platform: Platform,
    /// The channel to serve it on
    #[arg(long)]
    to: Channel,
    #[command(flatten)]
    rollout: super::rollout::StartArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: PromoteArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let signer = s.signer()?;
    let plan = a.rollout.plan()?;
    let out = promote(
        &s.context(store.as_ref()),
        &signer,
        a.platform,
        &a.version,
        &a.to,
        plan.as_ref(),
    )
    .await?;
    if s.json {
        s.print_json(&out)?;
    } else {
        say!(
            "{}: serves {} (re-stamp of {}, createdAt {})",
            out.pointer,
            out.version,
            a.version,
            out.created_at
        );
    }
    Ok(Outcome::Done)
}
