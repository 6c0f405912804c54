//! `otapub regenerate`: renders the whole public tree from the index and
//! writes only what differs, so a second run writes nothing and a deleted or
//! damaged object comes back byte for byte, without re-signing.

use serde::Serialize;

use super::{full_view, write_if_different, Context};
use crate::error::Result;
use crate::index::Index;
use crate::tree;

/// What regenerate did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct RegenerateOutcome {
    /// Objects rendered.
    pub rendered: usize,
    /// Keys written (or that would be, on a dry run).
    pub written: Vec<String>,
}

/// Regenerates the tree.
pub async fn regenerate(ctx: &Context<'_>, dry_run: bool) -> Result<RegenerateOutcome> {
    let index = Index::load(ctx.store).await?;
    let objects = tree::render(&full_view(&index)?)?;
    let mut written = Vec::new();
    for o in &objects {
        let differs = if dry_run {
            match ctx.store.get(&o.key).await? {
                Some(existing) => existing.bytes != o.bytes || existing.meta != o.meta,
                None => true,
            }
        } else {
            write_if_different(ctx.store, o).await?
        };
        if differs {
            written.push(o.key.clone());
        }
    }
    Ok(RegenerateOutcome {
        rendered: objects.len(),
        written,
    })
}
