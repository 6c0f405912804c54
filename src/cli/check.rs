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
    let problems = check(&s.context(store.as_ref())).await?;
    if s.json {
        s.print_json(&serde_json::json!({ "problems": problems }))?;
    } else {
        for p in &problems {
            say!("{p}");
        }
        say!("{} problems", problems.len());
    }
    Ok(if problems.is_empty() {
        Outcome::Done
    } else {
        Outcome::Problems
    })
}
