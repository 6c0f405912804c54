//! `otapub log`: the audit events and operations recorded in the index.

use super::Context;
use crate::error::Result;
use crate::model::{AuditEvent, Operation};

/// The audit events, oldest first, and the operations.
pub async fn log(ctx: &Context<'_>) -> Result<(Vec<AuditEvent>, Vec<Operation>)> {
    let index = crate::commit::read_index(ctx.store).await?;
    Ok((index.audit_events()?, index.operations()?))
}
