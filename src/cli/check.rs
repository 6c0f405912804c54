//! `otapub check`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::check::check;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let checked = check(&s.context(store.as_ref())).await?;
    if s.json {
        s.print_json(&checked)?;
    } else {
        for p in &checked.problems {
            say!("{p}");
        }
        if !checked.retired.is_empty() {
            say!(
                "{} packages retired by `gc --keep` (kept in history; their bundles may be deleted): {}",
                checked.retired.len(),
                checked.retired.join(", ")
            );
        }
        say!("{} problems", checked.problems.len());
    }
    Ok(if checked.problems.is_empty() {
        Outcome::Done
    } else {
        Outcome::Problems
    })
}
