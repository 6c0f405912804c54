//! `otapub regenerate`: renders the whole public tree from the index and
//! writes only what differs, so a second run writes nothing and a deleted or
//! damaged object comes back byte for byte, without re-signing.
//!
//! Immutable objects are restored from the bytes the index recorded (they
//! belong to committed packages). Pointers go through the commit protocol's
//! forward-only write: a regenerate that read the index before a `ban`
//! committed can never put the banned package back.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use super::{full_view, Context, UPLOAD_CONCURRENCY};
use crate::commit;
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::index::Index;
use crate::index::PatchRow;
use crate::patch;
use crate::store::{Body, ObjectInfo, ObjectMeta, IMMUTABLE_CACHE_CONTROL};
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
        tracing::debug!("loading the index");
        let index = Index::load(ctx.store).await?;
        tokio::task::spawn_blocking(move || {
            tracing::debug!("rendering the immutable objects");
            let view = full_view(&index)?;
            let mut objects = Vec::new();
            for p in view.iter().flat_map(|v| &v.packages) {
                objects.extend(tree::package_objects(p)?);
            }
            // The signed records of embedded patch bases (few; compared like the rest).
            for e in crate::index::embedded_bases(index.conn())? {
                objects.push(super::embedded::embedded_record(&e));
            }
            Ok::<_, crate::Error>((index, view, objects))
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    };
    let listing = async {
        let mut listed = ctx.store.list("public/updates/").await?;
        listed.extend(ctx.store.list("state/embedded/").await?);
        tracing::debug!("listed public/updates/ and state/embedded/");
        Ok::<_, crate::Error>(listed)
    };
    let (rendered, listed) = tokio::join!(render, listing);
    let (index, view, immutable) = rendered?;
    let listed: HashMap<String, ObjectInfo> = listed?.into_iter().map(|o| (o.key.clone(), o)).collect();
    tracing::debug!("comparing {} objects with {} listed", immutable.len(), listed.len());
    let done: Vec<Option<String>> = stream::iter(&immutable)
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
    let mut written: Vec<String> = done.into_iter().flatten().collect();
    written.extend(restore_patches(ctx, &index, dry_run, verify_bytes).await?);
    tracing::debug!("writing pointers");
    let pointer_objects = 2 * view.len();
    // Each pointer object is asked about (a HEAD) even where a listing's
    // etag shows the same bytes: only the HEAD returns its generation, and a
    // pointer's bytes can come back (a ban falls back to what it served
    // before) under an older generation, which a stale writer in between
    // may overwrite; writing the current stamp is what refuses that writer.
    let pointers = commit::write_views(ctx.store, &index, &view, dry_run).await?;
    // Like every writer: while others committed meanwhile, once more from the newer index.
    written.extend(if dry_run {
        pointers
    } else {
        commit::converge_pointers(ctx.store, index, commit::Pointers::All, pointers).await?
    });
    written.sort();
    written.dedup();
    if !dry_run {
        ctx.store.clean_up().await?;
    }
    tracing::debug!("done");
    Ok(RegenerateOutcome {
        rendered: immutable.len() + pointer_objects,
        written,
    })
}

/// Makes again each kept patch the store lost (or, with `verify_bytes`,
/// holds other bytes of): the same two bundles give the same bytes.
async fn restore_patches(ctx: &Context<'_>, index: &Index, dry_run: bool, verify_bytes: bool) -> Result<Vec<String>> {
    let rows: Vec<PatchRow> = crate::index::patches(index.conn())?
        .into_iter()
        .filter(|r| r.kept.is_some())
        .collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let listed: HashMap<String, ObjectInfo> = ctx
        .store
        .list("public/patches/")
        .await?
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    let mut written = Vec::new();
    for row in rows {
        let key = row.key();
        let lost = match listed.get(&key) {
            None => true,
            Some(info) if Some(info.size) != row.size => true,
            Some(_) if verify_bytes => match ctx.store.get(&key).await? {
                Some(o) => Some(Sha256Digest::of(&o.bytes)) != row.kept || o.meta.content_type != patch::CONTENT_TYPE,
                None => true,
            },
            Some(_) => false,
        };
        if !lost {
            continue;
        }
        if dry_run {
            written.push(key);
            continue;
        }
        match patch::make::remake(ctx.store, &row).await {
            Ok(bytes) => {
                let meta = ObjectMeta::new(patch::CONTENT_TYPE, IMMUTABLE_CACHE_CONTROL);
                ctx.store.put(&key, Body::Bytes(bytes), &meta).await?;
                written.push(key);
            }
            Err(e) => eprintln!("warning: {key} cannot be made again: {e}"),
        }
    }
    Ok(written)
}
