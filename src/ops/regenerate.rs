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

/// Whether the store may not hold exactly `o`. One listing tells, by its
/// etags (S3, R2, MinIO and the local store report the MD5). A listing
/// without etags (some S3-compatible servers) proves only the size, unless
/// `verify_bytes` reads such objects back.
async fn differs(
    ctx: &Context<'_>,
    listed: &HashMap<String, ObjectInfo>,
    o: &PublicObject,
    verify_bytes: bool,
) -> Result<bool> {
    let Some(info) = listed.get(&o.key) else {
        return Ok(true);
    };
    match info.holds(&o.bytes) {
        Some(same) => Ok(!same),
        None if !verify_bytes => Ok(info.size != o.bytes.len() as u64),
        None => Ok(match ctx.store.get(&o.key).await? {
            Some(existing) => existing.bytes != o.bytes || existing.meta != o.meta,
            None => true,
        }),
    }
}

/// Regenerates the tree: immutable objects first, then pointers.
pub async fn regenerate(ctx: &Context<'_>, dry_run: bool, verify_bytes: bool) -> Result<RegenerateOutcome> {
    // The listing (often the slowest part) runs while the index is read and rendered.
    let render = async {
        super::trace(|| "loading the index".into());
        let index = Index::load(ctx.store).await?;
        tokio::task::spawn_blocking(move || {
            super::trace(|| "reading the index".into());
            let view = full_view(&index)?;
            super::trace(|| "rendering".into());
            let objects = tree::render(&view);
            super::trace(|| "rendered".into());
            objects
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    };
    let listing = async {
        let listed = ctx.store.list("public/").await;
        super::trace(|| "listed public/".into());
        listed
    };
    let (objects, listed) = tokio::join!(render, listing);
    let objects = objects?;
    let listed: HashMap<String, ObjectInfo> = listed?.into_iter().map(|o| (o.key.clone(), o)).collect();
    super::trace(|| format!("comparing {} objects with {} listed", objects.len(), listed.len()));
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
                    if !differs(ctx, listed, o, verify_bytes).await? {
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
    super::trace(|| "done".into());
    Ok(RegenerateOutcome {
        rendered: objects.len(),
        written,
    })
}
