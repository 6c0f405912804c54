//! What the index records of each command: its operation row, its audit
//! events and the result a retry finds.

/// An audit event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    /// When (createdAt format).
    pub time: String,
    /// Who.
    pub actor: String,
    /// What (`publish`, `ban`, ...).
    pub action: String,
    /// On what (`ios/v1`, a pointer, ...).
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
}

/// A new audit event, before it is recorded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What.
    pub action: &'static str,
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
    pub kind: String,
    /// Who ran it.
    pub actor: String,
}

/// An operation row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Operation {
    /// Row id.
    pub id: i64,
    /// Command.
    pub kind: String,
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
