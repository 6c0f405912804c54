//! `otapub insights ingest` and `otapub insights`: the CDN's access logs
//! turned into daily figures per update (`crate::insights` reads the
//! formats and derives the figures), stored in the index through the commit
//! protocol, and read back newest first.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{commit, Context, Plan};
use crate::error::Result;
use crate::index::{self, Index, IndexCatalog, IngestedFile, InsightRow, NewEvent};
use crate::insights::derive::{day_of, Facts};
use crate::insights::{self as logs, Format, Hit};

/// What happened to one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileOutcome {
    /// The file.
    pub path: String,
    /// Lines read.
    pub lines: u64,
    /// Lines that counted (a check-in, a download).
    pub used: u64,
    /// Malformed lines, skipped.
    pub skipped: u64,
    /// True when these bytes were ingested before: nothing of it counted again.
    pub duplicate: bool,
}

/// What `insights ingest` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestOutcome {
    /// The format read.
    pub format: String,
    /// Each file.
    pub files: Vec<FileOutcome>,
    /// Lines read, in files not ingested before.
    pub read: u64,
    /// Of those, lines that counted.
    pub used: u64,
    /// Of those, malformed lines.
    pub skipped: u64,
    /// Whether device figures could be derived (the format logs request headers).
    pub devices_known: bool,
}

struct LogFile {
    path: PathBuf,
    sha256: [u8; 32],
    hits: Vec<Hit>,
    lines: u64,
    skipped: u64,
}

/// Reads the files (folders: every file under them; gzip or plain) and
/// adds what they say to the index. A file whose bytes were ingested
/// before counts once.
pub async fn ingest(
    ctx: &Context<'_>,
    format: Format,
    fields: Option<Vec<String>>,
    paths: &[PathBuf],
) -> Result<IngestOutcome> {
    let files = logs::log_files(paths)?;
    let mut read = Vec::new();
    for path in files {
        let bytes = logs::read_log(&path)?;
        let sha256 = index::sha256(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let parsed = logs::parse(format, &text, fields.as_deref());
        read.push(LogFile {
            path,
            sha256,
            hits: parsed.hits,
            lines: parsed.lines,
            skipped: parsed.skipped,
        });
    }
    commit(ctx, "insights-ingest", None, |idx, now| {
        let catalog = IndexCatalog::load(idx.conn())?;
        let mut facts = Facts::default();
        let mut outcome = IngestOutcome {
            format: format.to_string(),
            files: Vec::new(),
            read: 0,
            used: 0,
            skipped: 0,
            devices_known: format.logs_headers(),
        };
        let mut seen = BTreeSet::new();
        let mut ingested = Vec::new();
        for f in &read {
            let duplicate = !seen.insert(f.sha256) || index::log_ingested(idx.conn(), &f.sha256)?;
            let before = facts.used;
            if !duplicate {
                for h in &f.hits {
                    facts.add(h, &catalog);
                }
            }
            let used = facts.used - before;
            if !duplicate {
                outcome.read += f.lines;
                outcome.used += used;
                outcome.skipped += f.skipped;
                ingested.push(IngestedFile {
                    sha256: f.sha256,
                    format: format.to_string(),
                    lines: f.lines,
                    used,
                    skipped: f.skipped,
                });
            }
            outcome.files.push(FileOutcome {
                path: f.path.display().to_string(),
                lines: f.lines,
                used,
                skipped: f.skipped,
                duplicate,
            });
        }
        if ingested.is_empty() {
            return Ok(Plan::unchanged(outcome, BTreeSet::new()));
        }
        let out = outcome.clone();
        idx.transact("insights-ingest", &ctx.actor, now, |tx| {
            index::merge_insights(tx, &facts, &ingested, index::to_ms(now))?;
            let event = NewEvent {
                action: "insights-ingest",
                target: format.to_string(),
                details: serde_json::json!({
                    "files": ingested.len(),
                    "read": out.read,
                    "used": out.used,
                    "skipped": out.skipped,
                }),
            };
            Ok((Plan::index_only(out.clone(), BTreeSet::new()), vec![event]))
        })
    })
    .await
}

/// The figures of the last `days` days (today included), newest day first.
pub async fn insights(ctx: &Context<'_>, days: u32) -> Result<Vec<InsightRow>> {
    let index = Index::load(ctx.store).await?;
    let today = day_of(index::to_ms(ctx.clock.now()));
    index::insight_rows(index.conn(), today - i64::from(days.max(1)) + 1)
}
