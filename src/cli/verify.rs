//! `otapub verify`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::verify::verify;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings) -> anyhow::Result<Outcome> {
    let trusted = s.trusted()?;
    let store = s.open_store().await?;
    let report = verify(&s.context(store.as_ref()), &trusted).await?;
    if s.json {
        s.print_json(&report)?;
    } else {
        for p in &report.problems {
            say!("{p}");
        }
        say!(
            "{} pointers, {} assets checked: {} problems",
            report.pointers,
            report.assets,
            report.problems.len()
        );
    }
    Ok(if report.problems.is_empty() {
        Outcome::Done
    } else {
        Outcome::Problems
    })
}
