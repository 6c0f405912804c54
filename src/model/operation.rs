//! What the index records of each command: its operation row, its audit
//! events and the result a retry finds, each named by a [`Kind`].

use std::str::FromStr;

/// An audit event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    /// When (createdAt format).
    pub time: String,
    /// Who.
    pub actor: String,
    /// What (`publish`, `ban`, ...).
    pub action: Kind,
    /// On what (`ios/v1`, a pointer, ...).
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
}

/// A new audit event, before it is recorded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What.
    pub action: Kind,
    /// On what.
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
}

/// A committed operation as `operation_results` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOperation {
    /// The invocation's id and commit (`ID:kind`).
    pub op_key: String,
    /// What the command reported (JSON).
    pub output: String,
    /// The pointers it affected (JSON).
    pub pointers: String,
    /// The generation it committed.
    pub generation: u64,
    /// What was run: the command and its arguments.
    pub invocation: String,
    /// Its kind (`publish`, `rollback`, …).
    pub kind: Kind,
    /// Who ran it.
    pub actor: String,
}

/// An operation row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Operation {
    /// Row id.
    pub id: i64,
    /// Command.
    pub kind: Kind,
    /// Who.
    pub actor: String,
    /// pending | running | succeeded | failed.
    pub state: String,
    /// The error of a failed operation.
    pub error: Option<String>,
    /// When it started.
    #[serde(rename = "startedAt")]
    pub started_at: String,
    /// When its state last changed.
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    /// The invocation's id and commit (`ID:kind`), when recorded.
    #[serde(rename = "operationId", default, skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
}

/// What was done: the kind of a committed operation (the `operations.kind`
/// column, the `ID:kind` its result is recorded under) and of an audit event
/// (the `audit_events.action` column). One vocabulary, stored and shown as
/// the strings of [`Kind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::Display, strum::VariantArray)]
#[strum(serialize_all = "kebab-case")]
pub enum Kind {
    /// `otapub publish`, and the event of each package it publishes.
    Publish,
    /// `otapub rollback`.
    Rollback,
    /// `otapub promote`, and the event of each re-stamp it makes.
    Promote,
    /// A package re-stamped (by a rollback, a ban's fallback, a rollout's end).
    Restamp,
    /// A rollBackToEmbedded directive published.
    RollbackToEmbedded,
    /// `otapub ban`, and the event of each package banned.
    Ban,
    /// `otapub regenerate`.
    Regenerate,
    /// `otapub refresh`.
    Refresh,
    /// `otapub index rebuild`.
    IndexRebuild,
    /// `otapub ops --sweep`: stale operations failed.
    OpsSweep,
    /// `otapub embedded add`.
    EmbeddedAdd,
    /// `otapub builds add`.
    BuildsAdd,
    /// `otapub insights ingest`.
    InsightsIngest,
    /// gc's first commit, which takes its lease.
    GcLease,
    /// gc's second commit, which ends its lease (also an audit event of
    /// indexes written before the lease).
    Gc,
    /// An object gc deleted.
    GcDelete,
    /// A package `gc --keep` retired.
    Retire,
    /// A rollout started (by `publish` or `promote --rollout`).
    RolloutStart,
    /// `otapub rollout set`.
    RolloutSet,
    /// `otapub rollout pause`.
    RolloutPause,
    /// `otapub rollout resume`.
    RolloutResume,
    /// `otapub rollout advance`.
    RolloutAdvance,
    /// `otapub rollout complete`, or an advance that reaches 100 %.
    RolloutComplete,
    /// `otapub rollout abort`, or a gated advance that trips.
    RolloutAbort,
    /// The transaction of an index the benchmark builds and seeds
    /// (`commit::seed_index`).
    Seed,
}

impl Kind {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        super::parse_name(s, "operation or event kind")
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_one_name() {
        let mut seen = std::collections::HashSet::new();
        for &kind in <Kind as strum::VariantArray>::VARIANTS {
            let name = kind.as_str();
            assert_eq!(name.parse::<Kind>(), Ok(kind));
            assert!(seen.insert(name), "{name} named twice");
        }
        assert_eq!(format!("[{:<8}]", Kind::Ban), "[ban     ]", "padded as a str is");
        assert!("rollout".parse::<Kind>().is_err());
        assert!("Publish".parse::<Kind>().is_err());
    }
}
