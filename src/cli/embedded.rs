//! `otapub embedded add`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{GlobalArgs, Outcome, Settings};
use otapub::names::{Fingerprint, Platform};
use otapub::ops::embedded::add;

#[derive(Debug, Args)]
pub struct EmbeddedArgs {
    #[command(subcommand)]
    command: EmbeddedCommand,
}

#[derive(Debug, Subcommand)]
enum EmbeddedCommand {
    /// Record the launch asset a release build embeds as a patch base
    Add(AddArgs),
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The build's platform
    #[arg(long)]
    platform: Platform,
    /// The build's runtime version
    #[arg(long)]
    fingerprint: Fingerprint,
    /// The embedded update's id (`id` in the build's app.manifest)
    #[arg(long, value_name = "UUID")]
    update_id: String,
    /// The embedded launch asset (main.jsbundle, index.android.bundle)
    bundle: PathBuf,
    #[command(flatten)]
    global: GlobalArgs,
}

impl EmbeddedArgs {
    pub fn global(&self) -> &GlobalArgs {
        match &self.command {
            EmbeddedCommand::Add(a) => &a.global,
        }
    }
}

pub async fn run(s: Settings, a: EmbeddedArgs) -> anyhow::Result<Outcome> {
    let EmbeddedCommand::Add(a) = a.command;
    let store = s.open_store().await?;
    let signer = s.signer()?;
    let out = add(
        &s.context(store.as_ref()),
        &signer,
        a.platform,
        &a.fingerprint,
        &a.update_id,
        &a.bundle,
    )
    .await?;
    if s.json {
        s.print_json(&out)?;
    } else if out.new {
        say!(
            "{}/{}: embedded update {} recorded as a patch base (launch asset {}, {} bytes)",
            out.platform,
            out.fingerprint,
            out.update_id,
            out.launch_asset,
            out.size
        );
    } else {
        say!(
            "{}: embedded update {} is already recorded; nothing changed",
            out.platform,
            out.update_id
        );
    }
    Ok(Outcome::Done)
}
