//! `otapub index rebuild`.

use clap::{Args, Subcommand};

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::rebuild::rebuild;

#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

impl IndexArgs {
    pub fn global(&self) -> &GlobalArgs {
        match &self.command {
            IndexCommand::Rebuild(a) => &a.global,
        }
    }
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Rebuild the index from the store alone (immutable objects, ban records, pointers), adopting only what verifies with --trust keys
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
struct RebuildArgs {
    /// Replace an existing index
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    global: GlobalArgs,
}

pub async fn run(s: Settings, a: IndexArgs) -> anyhow::Result<Outcome> {
    let IndexCommand::Rebuild(a) = a.command;
    let store = s.open_store().await?;
    // A key is needed only to sign a noUpdateAvailable directive the store lost.
    let signer = if s.keys.is_empty() { None } else { Some(s.signer()?) };
    let trusted = s.trusted()?;
    let out = rebuild(&s.context(store.as_ref()), signer.as_ref(), a.force, &trusted).await?;
    if s.json {
        s.print_json(&out)?;
        return Ok(Outcome::Done);
    }
    for line in &out.skipped {
        say!("skipped {line}");
    }
    say!(
        "recovered {} packages, {} bans, {} rollouts, {} embedded bases, {} builds and {} patches",
        out.packages,
        out.bans,
        out.rollouts,
        out.embedded,
        out.builds,
        out.patches
    );
    if !out.unconfirmed.is_empty() {
        say!("newer than what their pointer serves (a lost pointer write, or a publish that died before its commit) — keep them with `otapub regenerate`, or ban them:");
        for line in &out.unconfirmed {
            say!("  {line}");
        }
    }
    Ok(Outcome::Done)
}
