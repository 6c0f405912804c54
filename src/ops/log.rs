//! `otapub log`: the audit events and operations recorded in the index.

use super::Context;
use crate::error::Result;
use crate::index::{AuditEvent, Index, Operation};

/// The audit events, oldest first, and the operations.
pub async fn log(ctx: &Context<'_>) -> Result<(Vec<AuditEvent>, Vec<Operation>)> {
    let index = Index::load(ctx.store).await?;
    Ok((index.audit_events()?, index.operations()?))
}
