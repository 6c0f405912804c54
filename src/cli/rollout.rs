//! `otapub rollout …`, and the `--rollout` options of `publish` and `promote`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{GlobalArgs, Outcome, PointerArgs, Settings};
use otapub::error::Error;
use otapub::gate::Gate;
use otapub::model::Strategy;
use otapub::ops::rollout::{self, Change, RolloutOutcome};
use otapub::rollout::{RolloutPlan, DEFAULT_ABORT_THRESHOLD, DEFAULT_STEP};

/// `--strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Each advance adds the step; reaching 100 completes
    Linear,
    /// One advance goes from the start percentage to 100
    Canary,
}

/// How `publish` and `promote` start a rollout.
#[derive(Debug, Args)]
#[command(next_help_heading = "Staged rollout")]
pub struct StartArgs {
    /// Serve the new package to this share of devices only (1-99 %), the rest keep what they have
    #[arg(long, value_name = "PERCENT")]
    rollout: Option<u8>,
    /// How `otapub rollout advance` moves
    #[arg(long, value_enum, requires = "rollout", default_value_t = StrategyArg::Linear)]
    strategy: StrategyArg,
    /// Percentage a linear advance adds
    #[arg(long, requires = "rollout", default_value_t = DEFAULT_STEP)]
    step: u8,
    /// Failure rate above which a gated advance aborts the rollout
    #[arg(long, requires = "rollout", default_value_t = DEFAULT_ABORT_THRESHOLD)]
    abort_threshold: f64,
}

impl StartArgs {
    pub fn plan(&self) -> Result<Option<RolloutPlan>, Error> {
        let strategy = match self.strategy {
            StrategyArg::Linear => Strategy::Linear,
            StrategyArg::Canary => Strategy::Canary,
        };
        self.rollout
            .map(|p| RolloutPlan::new(p, strategy, self.step, self.abort_threshold))
            .transpose()
    }
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Raise the share of devices on the candidate (only grows; 100 completes)
    Set {
        #[command(flatten)]
        pointer: PointerArgs,
        /// The new share, 1-100 %
        #[arg(long)]
        percent: u8,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Stop serving the candidate to new devices (devices that have it keep it)
    Pause {
        #[command(flatten)]
        pointer: PointerArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Serve the candidate buckets again
    Resume {
        #[command(flatten)]
        pointer: PointerArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Take one step of the strategy; with a gate, abort instead when the candidate fails too often
    Advance {
        #[command(flatten)]
        pointer: PointerArgs,
        /// A shell command that prints {"failed": N, "total": M} for the candidate (env OTAPUB_CANDIDATE_ID)
        #[arg(long, value_name = "CMD", conflicts_with = "gate_log")]
        gate_cmd: Option<String>,
        /// CDN access logs, files or folders, gzip or plain (format: --gate-format)
        #[arg(long, value_name = "FILE", num_args = 1..)]
        gate_log: Vec<PathBuf>,
        /// The format of --gate-log: otapub (JSON lines, as `otapub serve --access-log` writes), nginx, cloudfront-realtime, cloudflare
        #[arg(long, value_name = "F", default_value = "otapub", value_parser = |s: &str| s.parse::<otapub::insights::Format>())]
        gate_format: otapub::insights::Format,
        /// Read the devices from what `otapub insights ingest` stored
        #[arg(long, conflicts_with_all = ["gate_cmd", "gate_log"])]
        gate_insights: bool,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Make the candidate the pointer's live package for every device
    Complete {
        #[command(flatten)]
        pointer: PointerArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Ban the candidate and move the devices that took it back to the control
    Abort {
        #[command(flatten)]
        pointer: PointerArgs,
        /// Why; recorded as the candidate's ban reason
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Every rollout: percent, buckets, lifecycle, gate readings
    Status {
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Which package one device gets from a pointer
    Which {
        #[command(flatten)]
        pointer: PointerArgs,
        /// The device's eas-client-id
        #[arg(long, value_name = "ID")]
        client_id: String,
        #[command(flatten)]
        global: GlobalArgs,
    },
}

impl RolloutArgs {
    pub fn global(&self) -> &GlobalArgs {
        match &self.command {
            RolloutCommand::Set { global, .. }
            | RolloutCommand::Pause { global, .. }
            | RolloutCommand::Resume { global, .. }
            | RolloutCommand::Advance { global, .. }
            | RolloutCommand::Complete { global, .. }
            | RolloutCommand::Abort { global, .. }
            | RolloutCommand::Status { global }
            | RolloutCommand::Which { global, .. } => global,
        }
    }
}

fn report(s: &Settings, out: &RolloutOutcome) -> anyhow::Result<()> {
    if s.json {
        return s.print_json(out);
    }
    let state = out.state.as_str();
    if !out.changed {
        say!(
            "{}: the rollout of {} is already {state} at {} %; nothing changed",
            out.pointer,
            out.candidate,
            out.percent
        );
    } else {
        say!(
            "{}: rollout of {} {state} at {} % ({} buckets)",
            out.pointer,
            out.candidate,
            out.percent,
            out.buckets.len()
        );
    }
    if let Some(note) = &out.note {
        say!("{note}");
    }
    if let Some(r) = &out.restamped {
        say!(
            "{}: re-stamped {} as {} (createdAt {})",
            r.pointer,
            r.restamp_of.as_ref().map_or("the embedded update", |v| v.as_str()),
            r.version,
            r.created_at
        );
    }
    Ok(())
}

fn print_status(list: &[rollout::RolloutStatus]) {
    if list.is_empty() {
        say!("no rollout yet; start one with `otapub publish … --rollout PERCENT`");
    }
    for r in list {
        let control = r
            .control
            .as_ref()
            .map_or("nothing (noUpdateAvailable)".to_string(), |c| c.version.clone());
        say!(
            "{}  {} {} %  candidate {}  control {}  {} step {}  abort above {:.1} %",
            r.pointer,
            r.state.as_str(),
            r.percent,
            r.candidate.version,
            control,
            r.strategy.as_str(),
            r.step,
            r.abort_threshold * 100.0
        );
        if let Some(g) = r.gate {
            let rate = g.rate().map_or("-".to_string(), |x| format!("{:.2} %", x * 100.0));
            say!("    gate: {} of {} devices failed ({rate})", g.failed, g.total);
        }
        if let Some(reason) = &r.reason {
            say!("    aborted: {}", reason.escape_debug());
        }
    }
}

fn print_which(w: &rollout::Which) {
    let bucket = w
        .bucket
        .map_or("none (not a UUID: gets the control)".to_string(), |b| format!("{b:02}"));
    let serves = w
        .serves
        .as_ref()
        .map_or("noUpdateAvailable".to_string(), |x| x.version.clone());
    let side = if w.candidate { " (the rollout's candidate)" } else { "" };
    say!("bucket {bucket}: serves {serves}{side}");
}

pub async fn run(s: Settings, a: RolloutArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let ctx = s.context(store.as_ref());
    let (pointer, change) = match a.command {
        RolloutCommand::Status { .. } => {
            let list = rollout::status(&ctx).await?;
            if s.json {
                s.print_json(&list)?;
            } else {
                print_status(&list);
            }
            return Ok(Outcome::Done);
        }
        RolloutCommand::Which { pointer, client_id, .. } => {
            let w = rollout::which(&ctx, &pointer.pointer(), &client_id).await?;
            if s.json {
                s.print_json(&w)?;
            } else {
                print_which(&w);
            }
            return Ok(Outcome::Done);
        }
        RolloutCommand::Advance {
            pointer,
            gate_cmd,
            gate_log,
            gate_format,
            gate_insights,
            ..
        } => {
            let gate = match (gate_cmd, gate_log) {
                (Some(cmd), _) => Some(Gate::Command(cmd)),
                (None, files) if !files.is_empty() => Some(Gate::Logs {
                    files,
                    format: gate_format,
                }),
                _ if gate_insights => Some(Gate::Insights),
                _ => None,
            };
            let signer = s.signer()?;
            let out = rollout::advance(&ctx, &signer, &pointer.pointer(), gate.as_ref()).await?;
            report(&s, &out.rollout)?;
            return Ok(if out.passed { Outcome::Done } else { Outcome::Problems });
        }
        RolloutCommand::Set { pointer, percent, .. } => (pointer, Change::Set(percent)),
        RolloutCommand::Pause { pointer, .. } => (pointer, Change::Pause),
        RolloutCommand::Resume { pointer, .. } => (pointer, Change::Resume),
        RolloutCommand::Complete { pointer, .. } => (pointer, Change::Complete),
        RolloutCommand::Abort { pointer, reason, .. } => (pointer, Change::Abort(reason)),
    };
    let signer = s.signer()?;
    let out = rollout::change(&ctx, &signer, &pointer.pointer(), change).await?;
    report(&s, &out)?;
    Ok(Outcome::Done)
}
