//! `otapub gc`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::names::Channel;
use otapub::ops::gc::gc;
use otapub::store::{DryRunStore, Store};

fn parse_keep(s: &str) -> Result<(Channel, usize), String> {
    let (channel, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: give CHANNEL=N, e.g. production=50"))?;
    let channel = channel.parse::<Channel>().map_err(|e| format!("{channel:?}: {e}"))?;
    let n = n
        .parse::<usize>()
        .map_err(|_| format!("{n:?}: N is how many packages to keep, a whole number such as 50"))?;
    Ok((channel, n))
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// List what would be deleted, delete nothing
    #[arg(long)]
    dry_run: bool,
    /// Keep unreferenced objects younger than this many hours (a publish may be uploading them)
    #[arg(long, default_value_t = 24)]
    grace_hours: u32,
    /// Retention: keep the newest N packages of each pointer of CHANNEL (repeatable); older ones are retired — no rollback target, bundle deleted once unused — never what a pointer, a running rollout or a kept patch base reaches [default: keep all]
    #[arg(long = "keep", value_name = "CHANNEL=N", value_parser = parse_keep)]
    keep: Vec<(Channel, usize)>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: GcArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let grace = chrono::Duration::hours(i64::from(a.grace_hours));
    // A dry run is the same gc on a store that records its writes and
    // deletions instead of making them.
    let dry = DryRunStore::new(store.as_ref());
    let store: &dyn Store = if a.dry_run { &dry } else { store.as_ref() };
    let out = gc(&s.context(store), grace, &a.keep).await?;
    if s.json {
        s.print_json(&out)?;
    } else {
        let retire = if a.dry_run { "would retire" } else { "retired" };
        for p in &out.retired {
            say!("{retire} {p}");
        }
        let verb = if a.dry_run { "would delete" } else { "deleted" };
        for k in &out.deleted {
            say!("{verb} {k}");
        }
        say!(
            "{} objects {verb}; {} unreferenced but younger than {} h kept",
            out.deleted.len(),
            out.kept_recent,
            a.grace_hours
        );
    }
    Ok(Outcome::Done)
}
