//! `otapub insights ingest` and `otapub insights`: the CDN's access logs
//! turned into daily figures per update (`crate::insights` reads the
//! formats and derives the figures), stored in the index through the commit
//! protocol, and read back newest first.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{commit, Context, Plan};
use crate::error::Result;
use crate::index::{self, IndexCatalog, IngestedFile, InsightRow};
use crate::insights::derive::{day_of, Facts};
use crate::insights::{self as logs, Format, LineReader};
use crate::model::{Kind, NewEvent};

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

/// Reads the files (folders: every file under them; gzip or plain) and
/// adds what they say to the index. A file whose bytes were ingested
/// before counts once. Files are read as streams, twice: once for their
/// hashes before the commit (an unreadable file changes nothing), once to
/// count them against the index the commit applies to.
pub async fn ingest(
    ctx: &Context<'_>,
    format: Format,
    fields: Option<Vec<String>>,
    paths: &[PathBuf],
) -> Result<IngestOutcome> {
    let files = logs::log_files(paths)?;
    let mut hashed = Vec::new();
    for path in files {
        let sha256 = crate::off_runtime(|| logs::each_line(&path, |_| {}))?;
        hashed.push((path, sha256));
    }
    commit(ctx, Kind::InsightsIngest, None, |idx, now| {
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
        for (path, sha256) in &hashed {
            let duplicate = !seen.insert(*sha256) || index::log_ingested(idx.conn(), sha256)?;
            let mut reader = LineReader::new(format, fields.as_deref());
            let before = facts.used;
            if !duplicate {
                let read = crate::off_runtime(|| {
                    logs::each_line(path, |line| {
                        if let Some(hit) = reader.line(line) {
                            facts.add(&hit, &catalog);
                        }
                    })
                })?;
                if read != *sha256 {
                    return Err(super::OpError::LogChanged { path: path.clone() }.into());
                }
                outcome.read += reader.lines;
                outcome.used += facts.used - before;
                outcome.skipped += reader.skipped;
                ingested.push(IngestedFile {
                    sha256: *sha256,
                    format: format.to_string(),
                    lines: reader.lines,
                    used: facts.used - before,
                    skipped: reader.skipped,
                });
            }
            outcome.files.push(FileOutcome {
                path: path.display().to_string(),
                lines: reader.lines,
                used: facts.used - before,
                skipped: reader.skipped,
                duplicate,
            });
        }
        if ingested.is_empty() {
            return Ok(Plan::unchanged(outcome, BTreeSet::new()));
        }
        let out = outcome.clone();
        idx.transact(Kind::InsightsIngest, &ctx.actor, now, |tx| {
            index::merge_insights(tx, &facts, &ingested, index::to_ms(now))?;
            let event = NewEvent {
                action: Kind::InsightsIngest,
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
    let index = crate::commit::read_index(ctx.store).await?;
    let today = day_of(index::to_ms(ctx.clock.now()));
    index::insight_rows(index.conn(), today - i64::from(days.max(1)) + 1)
}

/// Days of figures the page shows.
pub const PAGE_DAYS: u32 = 30;
const CHART_WIDTH: u32 = 600;
const CHART_HEIGHT: u32 = 160;
const CHART_PAD: u32 = 24;
/// Line colours, one per update (cycled).
const PALETTE: [&str; 6] = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2"];

/// What the page shows of a pointer's insights.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PointerInsights {
    /// Devices per update and day, as an inline SVG's lines; none when no
    /// log of those days recorded request headers.
    pub adoption: Option<AdoptionChart>,
    /// The live update's failures on the newest day with device figures.
    pub live: Option<FailureView>,
    /// A rollout's candidate, likewise.
    pub candidate: Option<FailureView>,
    /// A rollout's control, likewise.
    pub control: Option<FailureView>,
    /// Launch-asset downloads over the days shown.
    pub downloads: u64,
    /// Of those, patches.
    #[serde(rename = "patchDownloads")]
    pub patch_downloads: u64,
    /// Bytes sent as patches.
    #[serde(rename = "patchBytes")]
    pub patch_bytes: u64,
    /// Bytes saved by patches: what full downloads would have sent, less what the patches sent.
    #[serde(rename = "savedBytes")]
    pub saved_bytes: u64,
}

/// Devices per update over the days, as polylines in an SVG's coordinates.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdoptionChart {
    /// The SVG's width.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// The first day (left edge).
    #[serde(rename = "firstDay")]
    pub first_day: String,
    /// The last day (right edge).
    #[serde(rename = "lastDay")]
    pub last_day: String,
    /// The top of the y axis, in devices.
    pub max: u64,
    /// One line per update.
    pub series: Vec<AdoptionSeries>,
}

/// One update's line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdoptionSeries {
    /// The update's version (or its id, for an embedded update).
    pub label: String,
    /// Its colour.
    pub color: &'static str,
    /// `x,y` pairs of the polyline.
    pub points: String,
    /// Devices on the last day.
    pub last: u64,
}

/// An update's failure rate on one day.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailureView {
    /// The version.
    pub version: String,
    /// The day.
    pub day: String,
    /// Devices whose latest check-in reports running it.
    pub devices: u64,
    /// Devices that reported it failed to launch.
    pub failed: u64,
    /// failed / (devices + failed), in percent.
    #[serde(rename = "ratePercent")]
    pub rate_percent: Option<f64>,
}

fn failure_of(rows: &[&InsightRow], version: Option<&str>) -> Option<FailureView> {
    let version = version?;
    // Rows are newest day first.
    let r = rows
        .iter()
        .find(|r| r.version.as_deref() == Some(version) && r.devices.is_some())?;
    let (devices, failed) = (r.devices.unwrap_or(0), r.failed_devices.unwrap_or(0));
    let total = devices + failed;
    Some(FailureView {
        version: version.to_string(),
        day: r.day.clone(),
        devices,
        failed,
        rate_percent: (total > 0).then(|| ((failed as f64 * 1000.0) / total as f64).round() / 10.0),
    })
}

/// The page's view of one pointer's rows (newest day first); `None` when
/// no log named it.
pub fn pointer_insights(
    rows: &[&InsightRow],
    live: Option<&str>,
    candidate: Option<&str>,
    control: Option<&str>,
) -> Option<PointerInsights> {
    if rows.is_empty() {
        return None;
    }
    let days: Vec<&str> = rows
        .iter()
        .filter(|r| r.devices.is_some())
        .map(|r| r.day.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let adoption = (!days.is_empty()).then(|| {
        let mut labels: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.devices.is_some())
            .map(|r| {
                (
                    r.update_id.clone(),
                    r.version.clone().unwrap_or_else(|| r.update_id.clone()),
                )
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        labels.sort_by(|a, b| a.1.cmp(&b.1));
        let max = rows.iter().filter_map(|r| r.devices).max().unwrap_or(0).max(1);
        let span = (CHART_WIDTH - 2 * CHART_PAD) as f64;
        let x = |i: usize| {
            if days.len() == 1 {
                f64::from(CHART_WIDTH) / 2.0
            } else {
                f64::from(CHART_PAD) + span * i as f64 / (days.len() - 1) as f64
            }
        };
        let y = |n: u64| {
            f64::from(CHART_HEIGHT - CHART_PAD) - f64::from(CHART_HEIGHT - 2 * CHART_PAD) * n as f64 / max as f64
        };
        let series = labels
            .iter()
            .enumerate()
            .map(|(k, (id, label))| {
                let per_day: Vec<u64> = days
                    .iter()
                    .map(|d| {
                        rows.iter()
                            .find(|r| &r.update_id == id && r.day == *d)
                            .and_then(|r| r.devices)
                            .unwrap_or(0)
                    })
                    .collect();
                let points = per_day
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{:.1},{:.1}", x(i), y(*n)))
                    .collect::<Vec<_>>()
                    .join(" ");
                AdoptionSeries {
                    label: label.clone(),
                    color: PALETTE[k % PALETTE.len()],
                    points,
                    last: per_day.last().copied().unwrap_or(0),
                }
            })
            .collect();
        AdoptionChart {
            width: CHART_WIDTH,
            height: CHART_HEIGHT,
            first_day: days.first().map(|d| d.to_string()).unwrap_or_default(),
            last_day: days.last().map(|d| d.to_string()).unwrap_or_default(),
            max,
            series,
        }
    });
    let sum = |f: fn(&InsightRow) -> u64| rows.iter().map(|r| f(r)).sum::<u64>();
    let patch_bytes = sum(|r| r.patch_bytes);
    Some(PointerInsights {
        adoption,
        live: failure_of(rows, live),
        candidate: failure_of(rows, candidate),
        control: failure_of(rows, control),
        downloads: sum(|r| r.downloads),
        patch_downloads: sum(|r| r.patch_downloads),
        patch_bytes,
        saved_bytes: sum(|r| r.patch_full_bytes).saturating_sub(patch_bytes),
    })
}
