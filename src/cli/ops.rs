//! `otapub ops`, `otapub ops sweep`.

use clap::{Args, Subcommand};

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::operations::stale_after;
use otapub::ops::operations::{list, sweep};

#[derive(Debug, Args)]
pub struct OpsArgs {
    #[command(subcommand)]
    command: Option<OpsCommand>,
    /// Show at most this many, newest first (0: all)
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// An operation pending or running longer than this many minutes is stale [default: 10, twice a gc's lease]
    #[arg(long, value_name = "MINUTES")]
    stale_after: Option<u32>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
enum OpsCommand {
    /// Mark operations stuck in pending or running failed (their process died)
    Sweep {
        /// Only those started more than this many minutes ago [default: 10, twice a gc's lease]
        #[arg(long, value_name = "MINUTES")]
        older_than: Option<u32>,
        #[command(flatten)]
        global: GlobalArgs,
    },
}

impl OpsArgs {
    /// The global options given after `ops` and after `ops sweep`.
    pub fn global(&self) -> anyhow::Result<GlobalArgs> {
        match &self.command {
            Some(OpsCommand::Sweep { global, .. }) => self.global.clone().merge(global.clone()),
            None => Ok(self.global.clone()),
        }
    }
}

fn minutes(m: Option<u32>) -> chrono::Duration {
    m.map_or_else(stale_after, |m| chrono::Duration::minutes(i64::from(m)))
}

pub async fn run(s: Settings, a: OpsArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let ctx = s.context(store.as_ref());
    if let Some(OpsCommand::Sweep { older_than, .. }) = a.command {
        let swept = sweep(&ctx, minutes(older_than)).await?;
        if s.json {
            s.print_json(&swept)?;
        } else if swept.failed.is_empty() {
            say!("no operation is stuck: nothing to sweep");
        }
        for o in swept.failed.iter().filter(|_| !s.json) {
            say!(
                "marked failed: operation {} ({} by {}, started {})",
                o.id,
                o.kind,
                o.actor,
                o.started_at
            );
        }
        return Ok(Outcome::Done);
    }
    let mut ops = list(&ctx, minutes(a.stale_after)).await?;
    if a.limit > 0 {
        ops.truncate(a.limit);
    }
    if s.json {
        s.print_json(&ops)?;
        return Ok(Outcome::Done);
    }
    if ops.is_empty() {
        say!("no operations recorded yet");
    }
    for v in &ops {
        let o = &v.operation;
        let state = if v.stale {
            format!("{} (STALE)", o.state)
        } else {
            o.state.clone()
        };
        let mut line = format!(
            "{:>5}  {}  {:<14} {:<18} {:<12}",
            o.id, o.started_at, o.kind, state, o.actor
        );
        if let Some(e) = &o.error {
            line.push_str(&format!("  {e}"));
        }
        say!("{}", line.trim_end());
    }
    if ops.iter().any(|v| v.stale) {
        say!("stale operations never finished (their process likely died); `otapub ops sweep` marks them failed");
    }
    Ok(Outcome::Done)
}
