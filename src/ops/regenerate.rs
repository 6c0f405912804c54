//! `otapub regenerate`: renders the whole public tree from the index and
//! writes only what differs, so a second run writes nothing and a deleted or
//! damaged object comes back byte for byte, without re-signing.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use super::{full_view, Context, UPLOAD_CONCURRENCY};
use crate::error::Result;
use crate::index::Index;
use crate::store::{Body, ObjectInfo};
use crate::tree::{self, PublicObject};

/// What regenerate did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct RegenerateOutcome {
    /// Objects rendered.
    pub rendered: usize,
    /// Keys written (or that would be, on a dry run).
    pub written: Vec<String>,
}

/// Whether the store holds exactly `o`: from one listing where its etag tells
/// (S3), otherwise by reading the object back.
async fn differs(ctx: &Context<'_>, listed: &HashMap<String, ObjectInfo>, o: &PublicObject) -> Result<bool> {
    match listed.get(&o.key).map(|info| info.holds(&o.bytes)) {
        None => Ok(true),
        Some(Some(same)) => Ok(!same),
        Some(None) => Ok(match ctx.store.get(&o.key).await? {
            Some(existing) => existing.bytes != o.bytes || existing.meta != o.meta,
            None => true,
        }),
    }
}

/// Regenerates the tree: immutable objects first, then pointers.
pub async fn regenerate(ctx: &Context<'_>, dry_run: bool) -> Result<RegenerateOutcome> {
    let index = Index::load(ctx.store).await?;
    let objects = tree::render(&full_view(&index)?)?;
    let listed: HashMap<String, ObjectInfo> =
        ctx.store.list("public/").await?.into_iter().map(|o| (o.key.clone(), o)).collect();
    let (immutable, pointers): (Vec<&PublicObject>, Vec<&PublicObject>) =
        objects.iter().partition(|o| o.key.starts_with("public/updates/"));
    let mut written = Vec::new();
    for group in [immutable, pointers] {
        let done: Vec<Option<String>> = stream::iter(group)
            .map(|o| {
                let listed = &listed;
                async move {
                    // A listing cannot see metadata: where its etag says
                    // "same bytes" the object is left alone; `check` compares everything.
                    if !differs(ctx, listed, o).await? {
                        return Ok::<_, crate::Error>(None);
                    }
                    if !dry_run {
                        ctx.store.put(&o.key, Body::Bytes(o.bytes.clone()), &o.meta).await?;
                    }
                    Ok(Some(o.key.clone()))
                }
            })
            .buffered(UPLOAD_CONCURRENCY)
            .try_collect()
            .await?;
        written.extend(done.into_iter().flatten());
    }
    Ok(RegenerateOutcome { rendered: objects.len(), written })
}
