//! `otapub insights` and `otapub insights ingest`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{GlobalArgs, Outcome, Settings};
use otapub::insights::formats::FORMAT_NAMES;
use otapub::insights::Format;
use otapub::ops::insights::{ingest, insights};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InsightsArgs {
    #[command(subcommand)]
    command: Option<InsightsCommand>,
    /// How many days back, today included
    #[arg(long, default_value_t = 30, value_name = "N")]
    days: u32,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
enum InsightsCommand {
    /// Read CDN access logs (files or folders, gzip or plain) into the index
    Ingest(IngestArgs),
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// The log format
    #[arg(long, value_name = "F", value_parser = parse_format, long_help = format!("The log format: {FORMAT_NAMES}"))]
    format: Format,
    /// The fields of a CloudFront real-time log record, in order (comma-separated;
    /// default: those deploy/cloudfront configures)
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    fields: Option<Vec<String>>,
    /// Log files, or folders of them
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    global: GlobalArgs,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

impl InsightsArgs {
    pub fn global(&self) -> &GlobalArgs {
        match &self.command {
            Some(InsightsCommand::Ingest(a)) => &a.global,
            None => &self.global,
        }
    }
}

fn or_null(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub async fn run(s: Settings, a: InsightsArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let ctx = s.context(store.as_ref());
    if let Some(InsightsCommand::Ingest(i)) = a.command {
        let out = ingest(&ctx, i.format, i.fields, &i.files).await?;
        if s.json {
            s.print_json(&out)?;
            return Ok(Outcome::Done);
        }
        for f in out.files.iter().filter(|f| f.duplicate) {
            say!("{}: ingested before; not counted again", f.path);
        }
        say!(
            "{} lines read, {} used, {} skipped (malformed), {} file(s) new of {}",
            out.read,
            out.used,
            out.skipped,
            out.files.iter().filter(|f| !f.duplicate).count(),
            out.files.len()
        );
        if !out.devices_known {
            say!(
                "{} logs record no request headers: downloads only, device figures stay unknown (see deploy/ for a log that records them)",
                out.format
            );
        }
        return Ok(Outcome::Done);
    }
    let rows = insights(&ctx, a.days).await?;
    if s.json {
        s.print_json(&rows)?;
        return Ok(Outcome::Done);
    }
    if rows.is_empty() {
        say!(
            "no insights in the last {} days; read access logs with `otapub insights ingest --format F FILE…`",
            a.days
        );
        return Ok(Outcome::Done);
    }
    say!(
        "{:<10}  {:<28}  {:<36}  {:<24}  {:>9}  {:>7}  {:>7}  {:>6}",
        "day",
        "pointer",
        "update",
        "version",
        "downloads",
        "patches",
        "devices",
        "failed"
    );
    for r in &rows {
        say!(
            "{:<10}  {:<28}  {:<36}  {:<24}  {:>9}  {:>7}  {:>7}  {:>6}",
            r.day,
            format!("{}/{}/{}", r.channel, r.platform, r.runtime_version),
            r.update_id,
            r.version.as_deref().unwrap_or("(embedded)"),
            r.downloads,
            r.patch_downloads,
            or_null(r.devices),
            or_null(r.failed_devices)
        );
    }
    Ok(Outcome::Done)
}
