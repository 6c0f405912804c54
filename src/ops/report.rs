//! `otapub report`: what the operators' page shows, read from the index.
//! [`crate::report`] renders it; this module only gathers it, so the page
//! and its JSON always say the same.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::operations::{is_stale, stale_cutoff};
use super::rollout::RolloutStatus;
use super::status::{
    package_actors, status_from, BanInfo, EmbeddedStatus, HistoryEntry, LeafStatus, PackageSummary, PatchStatus,
};
use super::Context;
use crate::error::Result;
use crate::index::Index;
use crate::manifest::format_time;
use crate::model::{AuditEvent, GateReading, Lifecycle, Operation, Strategy};

/// How many audit events the page lists, newest first.
pub const RECENT_EVENTS: usize = 50;

/// Everything the page shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// When it was made.
    #[serde(rename = "generatedAt")]
    pub generated_at: String,
    /// The store it describes.
    pub store: String,
    /// The recorded base URL.
    #[serde(rename = "baseUrl")]
    pub base_url: Option<String>,
    /// The index's commit count.
    pub generation: u64,
    /// Counts for the page's header.
    pub summary: Summary,
    /// Every pointer, sorted.
    pub pointers: Vec<ReportPointer>,
    /// Builds' embedded updates recorded as patch bases.
    pub embedded: Vec<EmbeddedStatus>,
    /// The last audit events, newest first.
    pub events: Vec<AuditEvent>,
    /// Operations that failed, newest first.
    #[serde(rename = "failedOperations")]
    pub failed_operations: Vec<Operation>,
    /// Operations still `running` past [`stale_after`](crate::ops::operations::stale_after), oldest first.
    #[serde(rename = "staleOperations")]
    pub stale_operations: Vec<Operation>,
}

/// Counts at a glance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Pointers.
    pub pointers: usize,
    /// Packages (re-stamps included).
    pub packages: usize,
    /// Banned packages.
    pub banned: usize,
    /// Rollouts running or paused.
    #[serde(rename = "activeRollouts")]
    pub active_rollouts: usize,
    /// Failed operations.
    #[serde(rename = "failedOperations")]
    pub failed_operations: usize,
}

/// One pointer, as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportPointer {
    /// Channel.
    pub channel: String,
    /// Platform.
    pub platform: String,
    /// Fingerprint (runtime version).
    pub fingerprint: String,
    /// What devices without a rollout bucket get, in words.
    pub serves: String,
    /// The live package, when one is served.
    pub live: Option<PackageSummary>,
    /// The latest rollout of the pointer, finished ones included.
    pub rollout: Option<ReportRollout>,
    /// Patches of the served updates.
    pub patches: Vec<PatchStatus>,
    /// Banned packages, newest first.
    pub bans: Vec<ReportBan>,
    /// Re-stamps, newest first.
    pub restamps: Vec<ReportRestamp>,
    /// Every package, newest first.
    pub history: Vec<HistoryEntry>,
    /// The Expo signing leaf the pointer's response (update or directive)
    /// carries, if a chain is used.
    #[serde(rename = "expoLeaf", skip_serializing_if = "Option::is_none")]
    pub expo_leaf: Option<LeafStatus>,
    /// What the CDN's access logs say (`otapub insights ingest`), when any named the pointer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insights: Option<super::insights::PointerInsights>,
}

/// A rollout, as the page shows it: what `otapub rollout status` shows
/// ([`RolloutStatus`]: the signed `rollout.json` the tree serves, and the
/// gate, reason and dates of the row).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportRollout {
    /// Candidate version.
    pub candidate: String,
    /// Control version (what the other devices get).
    pub control: Option<String>,
    /// created, running, paused, completed or aborted.
    pub state: Lifecycle,
    /// Whether it still serves buckets.
    pub active: bool,
    /// Share of devices on the candidate.
    pub percent: u8,
    /// How many of the 100 buckets serve the candidate.
    pub buckets: usize,
    /// The Expo signing leaf the candidate buckets' responses carry.
    #[serde(rename = "expoLeaf", skip_serializing_if = "Option::is_none")]
    pub expo_leaf: Option<LeafStatus>,
    /// linear or canary.
    pub strategy: Strategy,
    /// Percent added per advance.
    pub step: u8,
    /// Failure rate that aborts an advance.
    #[serde(rename = "abortThreshold")]
    pub abort_threshold: f64,
    /// The last gate reading.
    pub gate: Option<GateView>,
    /// Why it was aborted.
    pub reason: Option<String>,
    /// When it started.
    #[serde(rename = "startedAt")]
    pub started_at: String,
    /// When it last changed.
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
}

impl ReportRollout {
    /// The page's view of a rollout as `rollout status` reads it, whose
    /// buckets serve `expo_leaf`.
    fn of(st: RolloutStatus, expo_leaf: Option<LeafStatus>) -> ReportRollout {
        ReportRollout {
            candidate: st.candidate.version,
            control: st.control.map(|c| c.version),
            state: st.state,
            active: st.state.is_active(),
            percent: st.percent,
            buckets: st.buckets.len(),
            expo_leaf,
            strategy: st.strategy,
            step: st.step,
            abort_threshold: st.abort_threshold,
            gate: st.gate.map(|g| GateView {
                reading: g,
                rate_percent: g.rate().map(|x| (x * 1000.0).round() / 10.0),
            }),
            reason: st.reason,
            started_at: st.started_at,
            updated_at: st.updated_at,
        }
    }
}

/// A gate reading with its rate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GateView {
    /// Devices that reported the candidate failed, of those that reported it.
    #[serde(flatten)]
    pub reading: GateReading,
    /// failed / total, in percent (none without devices).
    #[serde(rename = "ratePercent")]
    pub rate_percent: Option<f64>,
}

/// A ban.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportBan {
    /// The banned version.
    pub version: String,
    /// Why, who, when.
    #[serde(flatten)]
    pub ban: BanInfo,
}

/// A re-stamp.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportRestamp {
    /// The re-stamp's version.
    pub version: String,
    /// The version it re-stamps.
    pub of: String,
    /// Its createdAt.
    #[serde(rename = "createdAt")]
    pub created_at: String,
}

/// Reads the report from the store's index.
pub async fn report(ctx: &Context<'_>) -> Result<Report> {
    let index = crate::commit::read_index(ctx.store).await?;
    report_of(&index, &ctx.store.url(), ctx.clock.now())
}

/// The report an index records, as of `now`.
pub fn report_of(index: &Index, store: &str, now: DateTime<Utc>) -> Result<Report> {
    let views = super::full_view(index)?;
    let status = status_from(index, &views, now)?;
    let events = index.audit_events()?;
    let actors = package_actors(&events);
    let today = crate::insights::derive::day_of(crate::index::to_ms(now));
    let insight_rows = crate::index::insight_rows(index.conn(), today - i64::from(super::insights::PAGE_DAYS) + 1)?;
    let mut pointers = Vec::new();
    let mut packages = 0;
    for (st, view) in status.pointers.into_iter().zip(&views) {
        packages += st.history.len();
        let live = crate::index::live::live_package(&view.packages, view.rollout.as_ref())
            .map(|p| PackageSummary::of(p, &actors));
        let rollout = view
            .rollout
            .as_ref()
            .map(|r| {
                let leaf = st.rollout.as_ref().and_then(|x| x.expo_leaf.clone());
                super::rollout::status_of(r).map(|shown| ReportRollout::of(shown, leaf))
            })
            .transpose()?;
        let bans = st
            .history
            .iter()
            .filter_map(|h| {
                h.banned.clone().map(|ban| ReportBan {
                    version: h.version.clone(),
                    ban,
                })
            })
            .collect();
        let restamps = st
            .history
            .iter()
            .filter_map(|h| {
                h.restamp_of.clone().map(|of| ReportRestamp {
                    version: h.version.clone(),
                    of,
                    created_at: h.created_at.clone(),
                })
            })
            .collect();
        let rows: Vec<&crate::index::InsightRow> = insight_rows
            .iter()
            .filter(|r| r.channel == st.channel && r.platform == st.platform && r.runtime_version == st.fingerprint)
            .collect();
        let insights = super::insights::pointer_insights(
            &rows,
            // During a rollout the live package is its control, shown as such.
            live.as_ref()
                .filter(|_| !rollout.as_ref().is_some_and(|r| r.active))
                .map(|l| l.version.as_str()),
            rollout.as_ref().filter(|r| r.active).map(|r| r.candidate.as_str()),
            rollout.as_ref().filter(|r| r.active).and_then(|r| r.control.as_deref()),
        );
        pointers.push(ReportPointer {
            insights,
            channel: st.channel,
            platform: st.platform,
            fingerprint: st.fingerprint,
            serves: st.serves,
            live,
            rollout,
            patches: st.patches,
            bans,
            restamps,
            history: st.history,
            expo_leaf: st.expo_leaf,
        });
    }
    let operations = index.operations()?;
    let cutoff = stale_cutoff(now, None);
    let failed_operations: Vec<Operation> = operations
        .iter()
        .rev()
        .filter(|o| o.state == "failed")
        .cloned()
        .collect();
    let stale_operations = operations.iter().filter(|o| is_stale(o, &cutoff)).cloned().collect();
    let summary = Summary {
        pointers: pointers.len(),
        packages,
        banned: pointers.iter().map(|p| p.bans.len()).sum(),
        active_rollouts: pointers
            .iter()
            .filter(|p| p.rollout.as_ref().is_some_and(|r| r.active))
            .count(),
        failed_operations: failed_operations.len(),
    };
    Ok(Report {
        generated_at: format_time(now),
        store: store.to_string(),
        base_url: status.base_url,
        generation: index.generation()?,
        summary,
        pointers,
        embedded: status.embedded,
        events: events.into_iter().rev().take(RECENT_EVENTS).collect(),
        failed_operations,
        stale_operations,
    })
}
