//! `otapub gc`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::gc::gc;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// List what would be deleted, delete nothing
    #[arg(long)]
    dry_run: bool,
    /// Keep unreferenced objects younger than this many hours (a publish may be uploading them)
    #[arg(long, default_value_t = 24)]
    grace_hours: u32,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: GcArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let grace = chrono::Duration::hours(i64::from(a.grace_hours));
    let out = gc(&s.context(store.as_ref()), a.dry_run, grace).await?;
    if s.json {
        s.print_json(&out)?;
    } else {
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
