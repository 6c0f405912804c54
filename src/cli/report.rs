//! `otapub report`.

use std::path::PathBuf;

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::report::report;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Folder to write index.html and report.json to (created if missing)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: ReportArgs) -> anyhow::Result<Outcome> {
    let templates = s.templates()?;
    let store = s.open_store().await?;
    let r = report(&s.context(store.as_ref())).await?;
    let page = otapub::report::write(&a.out, &r, &templates)?;
    if s.json {
        s.print_json(&serde_json::json!({
            "page": page,
            "json": a.out.join("report.json"),
            "summary": r.summary,
        }))?;
    } else {
        say!(
            "wrote {} ({} pointers, {} packages, {} banned, {} active rollouts, {} failed operations) and report.json",
            page.display(),
            r.summary.pointers,
            r.summary.packages,
            r.summary.banned,
            r.summary.active_rollouts,
            r.summary.failed_operations
        );
    }
    Ok(Outcome::Done)
}
