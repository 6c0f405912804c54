//! `otapub builds` and `otapub builds add`.

use clap::{Args, Subcommand};

use super::{GlobalArgs, Outcome, Settings};
use otapub::names::{Fingerprint, Platform};
use otapub::ops::builds;

#[derive(Debug, Args)]
pub struct BuildsArgs {
    #[command(subcommand)]
    command: Option<BuildsCommand>,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
enum BuildsCommand {
    /// Record a build in the field (run it in CI after a store build)
    Add(AddArgs),
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The build's platform
    #[arg(long)]
    platform: Platform,
    /// The build's runtime version (`npx expo-updates runtimeversion:resolve --platform P`)
    #[arg(long, visible_alias = "fingerprint", value_name = "RV")]
    runtime_version: Fingerprint,
    /// What the build is, e.g. "1.4.0 (212), TestFlight"
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    global: GlobalArgs,
}

impl BuildsArgs {
    pub fn global(&self) -> anyhow::Result<GlobalArgs> {
        match &self.command {
            Some(BuildsCommand::Add(a)) => self.global.clone().merge(a.global.clone()),
            None => Ok(self.global.clone()),
        }
    }
}

pub async fn run(s: Settings, a: BuildsArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    match a.command {
        Some(BuildsCommand::Add(add)) => {
            let signer = s.signer()?;
            let row = builds::add(
                &s.context(store.as_ref()),
                &signer,
                add.platform,
                &add.runtime_version,
                add.note,
            )
            .await?;
            if s.json {
                s.print_json(&row)?;
            } else if row.new {
                say!(
                    "{}/{}: build recorded; publishes to it reach installed apps",
                    row.platform,
                    row.runtime_version
                );
            } else {
                say!(
                    "{}/{}: already recorded; nothing changed",
                    row.platform,
                    row.runtime_version
                );
            }
        }
        None => {
            let rows = builds::list(&s.context(store.as_ref())).await?;
            if s.json {
                s.print_json(&rows)?;
            } else if rows.is_empty() {
                say!("no build recorded: `otapub builds add --platform P --runtime-version RV` after each store build");
            } else {
                say!("{:<8} {:<42} {:<20} note", "platform", "runtime version", "added");
                for r in rows {
                    say!(
                        "{:<8} {:<42} {:<20} {}",
                        r.platform,
                        r.runtime_version,
                        r.added_at,
                        r.note.unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(Outcome::Done)
}
