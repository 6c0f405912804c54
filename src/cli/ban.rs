//! `otapub ban`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::names::{Platform, Version};
use otapub::ops::ban::ban;

#[derive(Debug, Args)]
pub struct BanArgs {
    /// The version to ban (its re-stamps are banned with it)
    version: Version,
    /// Its platform
    #[arg(long)]
    platform: Platform,
    /// Why; recorded with your name and the time, and irreversible
    #[arg(long)]
    reason: String,
    /// Also re-stamp the fallback where the banned package was live, so devices already on it move off it
    #[arg(long)]
    rollback: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: BanArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let signer = s.signer()?;
    let out = ban(
        &s.context(store.as_ref()),
        &signer,
        a.platform,
        &a.version,
        &a.reason,
        a.rollback,
    )
    .await?;
    if s.json {
        s.print_json(&out)?;
    } else if out.already_banned {
        say!("{}/{} is already banned; nothing changed", a.platform, a.version);
    } else {
        let list: Vec<&str> = out.banned.iter().map(|v| v.as_str()).collect();
        say!("banned on {}: {}", a.platform, list.join(", "));
        for r in &out.restamped {
            say!(
                "{}: re-stamped {} as {} (createdAt {})",
                r.pointer,
                r.restamp_of.as_ref().map_or("", |v| v.as_str()),
                r.version,
                r.created_at
            );
        }
    }
    Ok(Outcome::Done)
}
