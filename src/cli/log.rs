//! `otapub log`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::log::log;

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let (events, operations) = log(&s.context(store.as_ref())).await?;
    if s.json {
        s.print_json(&serde_json::json!({ "events": events, "operations": operations }))?;
        return Ok(Outcome::Done);
    }
    for e in &events {
        say!(
            "{}  {:<12} {:<20} {}  {}",
            e.time,
            e.actor,
            e.action,
            e.target,
            e.details
        );
    }
    for o in operations.iter().filter(|o| o.state == "failed") {
        say!(
            "failed operation {} ({} by {}): {}",
            o.id,
            o.kind,
            o.actor,
            o.error.as_deref().unwrap_or("")
        );
    }
    Ok(Outcome::Done)
}
