//! Staged rollouts as data: the recorded permutation of buckets, the
//! strategy, the lifecycle, a campaign and its gate reading. The rules that
//! use them (a device's bucket, the start plan) are `crate::rollout`'s.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::SignedRecord;
use crate::names::{PointerId, Version};

/// How many buckets devices fall into.
pub const BUCKETS: usize = 100;

/// The order in which buckets join a rollout: a permutation of 0–99 drawn
/// once when the rollout starts; at p % the candidate buckets are its first p.
#[derive(Clone, PartialEq, Eq)]
pub struct Permutation([u8; BUCKETS]);

impl fmt::Debug for Permutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permutation({:?})", &self.0[..])
    }
}

impl Permutation {
    /// A permutation drawn with `rng` (otapub draws it with the OS's
    /// randomness: [`Permutation::random`] in `rollout.rs`).
    pub fn shuffled(rng: &mut impl rand::Rng) -> Permutation {
        use rand::seq::SliceRandom;
        let mut order: [u8; BUCKETS] = std::array::from_fn(|i| i as u8);
        order.shuffle(rng);
        Permutation(order)
    }

    /// A permutation read back (index, signed record): exactly 0–99, each once.
    pub fn from_slice(order: &[u8]) -> std::result::Result<Permutation, String> {
        if order.len() != BUCKETS {
            return Err(format!(
                "a bucket permutation has {} entries, not {BUCKETS}",
                order.len()
            ));
        }
        let mut seen = [false; BUCKETS];
        for &b in order {
            let slot = seen
                .get_mut(usize::from(b))
                .ok_or_else(|| format!("bucket {b} is out of range 0-99"))?;
            if *slot {
                return Err(format!("bucket {b} appears twice in a permutation"));
            }
            *slot = true;
        }
        let mut out = [0u8; BUCKETS];
        out.copy_from_slice(order);
        Ok(Permutation(out))
    }

    /// The order, as stored.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The candidate buckets at `percent`, sorted.
    pub fn buckets(&self, percent: u8) -> Vec<u8> {
        let mut b = self.0[..usize::from(percent.min(100))].to_vec();
        b.sort_unstable();
        b
    }
}

/// How `rollout advance` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Adds the step each advance; reaching 100 completes.
    Linear,
    /// From the start percentage to 100 in one advance.
    Canary,
}

impl Strategy {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The percentage after one advance from `percent`.
    pub fn next(self, percent: u8, step: u8) -> u8 {
        match self {
            Strategy::Linear => percent.saturating_add(step).min(100),
            Strategy::Canary => 100,
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Strategy, String> {
        match s {
            "linear" => Ok(Strategy::Linear),
            "canary" => Ok(Strategy::Canary),
            other => Err(format!("strategy {other:?} is not linear or canary")),
        }
    }
}

/// The lifecycle: created → running ⇄ paused → completed | aborted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::Display, strum::VariantArray,
)]
#[strum(serialize_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Recorded, not serving yet (only inside the transaction that starts it).
    Created,
    /// Candidate buckets serve the candidate.
    Running,
    /// No new device gets the candidate.
    Paused,
    /// The candidate is the pointer's live package. Terminal.
    Completed,
    /// The candidate is banned, the control re-stamped. Terminal.
    Aborted,
}

impl Lifecycle {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the rollout still holds its pointer.
    pub fn is_active(self) -> bool {
        matches!(self, Lifecycle::Created | Lifecycle::Running | Lifecycle::Paused)
    }
}

impl FromStr for Lifecycle {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Lifecycle, String> {
        super::parse_name(s, "rollout state")
    }
}

/// A gate reading: devices that reported the candidate failed, of those
/// that reported it at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GateReading {
    /// Distinct devices whose recent failures name the candidate.
    pub failed: u64,
    /// Distinct devices that report the candidate as current or failed.
    pub total: u64,
}

impl GateReading {
    /// The failure rate (`None` with no device counted).
    pub fn rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.failed as f64 / self.total as f64)
    }
}

/// A staged rollout (a campaign) on one pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Row id.
    pub id: i64,
    /// The pointer.
    pub pointer: PointerId,
    /// The candidate package.
    pub candidate: Version,
    /// The package live when the rollout started (none if it was a bare pointer).
    pub control: Option<Version>,
    /// How `advance` moves.
    pub strategy: Strategy,
    /// Step of a linear advance.
    pub step: u8,
    /// Failure rate above which a gated advance aborts.
    pub abort_threshold: f64,
    /// Share of buckets on the candidate.
    pub percent: u8,
    /// The order buckets join in.
    pub permutation: Permutation,
    /// Lifecycle state.
    pub state: Lifecycle,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The generation of the commit that last changed it.
    pub generation: u64,
    /// The signed `rollout.json` of that commit.
    pub record: SignedRecord,
    /// The last gate reading.
    pub gate: Option<GateReading>,
    /// Why it was aborted.
    pub reason: Option<String>,
}

impl Rollout {
    /// The candidate buckets that have objects now: those of the
    /// percentage while running, none otherwise.
    pub fn live_buckets(&self) -> Vec<u8> {
        if self.state == Lifecycle::Running {
            self.permutation.buckets(self.percent)
        } else {
            Vec::new()
        }
    }
}
