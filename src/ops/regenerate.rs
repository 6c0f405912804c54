//! `otapub regenerate`: renders the whole public tree from the index and
//! writes only what differs, so a second run writes nothing and a deleted or
//! damaged object comes back byte for byte, without re-signing.
//!
//! Immutable objects are restored from the bytes the index recorded (they
//! belong to committed packages). Like every writer it goes through
//! [`commit::commit`]: a regenerate that read the index before a `ban`
//! committed can never put the banned package back. What differs is found
//! from one listing of `public/` where the store records that every commit's
//! pointers were written (`state/pointers-written.json`); elsewhere each
//! pointer object is asked for its generation.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{full_view, Context, Plan, UPLOAD_CONCURRENCY};
use crate::commit;
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::index::Index;
use crate::model::{Kind, NewEvent, PatchRow};
use crate::names::PointerId;
use crate::patch;
use crate::store::{ObjectInfo, ObjectMeta, IMMUTABLE_CACHE_CONTROL};
use crate::tree::{self, PublicObject};

/// What regenerate did (or would do).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegenerateOutcome {
    /// Objects rendered.
    pub rendered: usize,
    /// Keys written (or that would be, on a dry run).
    pub written: Vec<String>,
    /// Files and directories of a local store's public side that other
    /// users could not read (an older otapub wrote them 0600), made
    /// world-readable (or that would be, on a dry run).
    pub made_readable: Vec<String>,
}

/// Whether the store may not hold exactly `o`. One listing tells, by its
/// etags (S3, R2, MinIO and the local store report the MD5). A listing
/// without etags (some S3-compatible servers) proves only the size, unless
/// `verify_bytes` reads such objects back.
async fn differs(
    ctx: &Context<'_>,
    listed: &BTreeMap<String, ObjectInfo>,
    o: &PublicObject,
    verify_bytes: bool,
) -> Result<bool> {
    let Some(info) = listed.get(&o.key) else {
        return Ok(true);
    };
    match info.holds(&o.bytes) {
        Some(same) => Ok(!same),
        // A local store's listing lacks an etag only where the object's
        // metadata is missing or damaged: reading it back is cheap there.
        None if !verify_bytes && !ctx.store.is_local() => Ok(info.size != o.bytes.len() as u64),
        None => Ok(match ctx.store.get(&o.key).await? {
            Some(existing) => existing.bytes != o.bytes || existing.meta != o.meta,
            None => true,
        }),
    }
}

/// What differs between the store and the render of the index.
struct Survey {
    index: Index,
    /// Objects rendered.
    rendered: usize,
    /// Immutable objects (and remade patches) the store lacks or holds other bytes of.
    objects: Vec<PublicObject>,
    /// Pointers whose objects (or rollout objects) differ.
    pointers: BTreeSet<PointerId>,
    /// The keys that differ.
    keys: Vec<String>,
}

/// Regenerates the tree through the commit protocol, like every writer: it
/// waits for a gc's lease, probes the store's conditional writes, records
/// an operation when it has something to write, creates what the immutable
/// tree lacks, and writes the pointers that differ forward-only. With
/// nothing to write it writes nothing, not even the index. A dry run is
/// this on a [`crate::store::DryRunStore`].
pub async fn regenerate(ctx: &Context<'_>, verify_bytes: bool) -> Result<RegenerateOutcome> {
    let survey = survey(ctx, verify_bytes).await?;
    // A web server running as another user answers 403 for what it cannot
    // read (file modes only: no object's bytes change).
    let made_readable = ctx.store.unreadable_public(true).await?;
    let outcome = RegenerateOutcome {
        rendered: survey.rendered,
        written: survey.keys.clone(),
        made_readable,
    };
    let Survey {
        index,
        objects,
        pointers,
        ..
    } = survey;
    let actor = ctx.actor.clone();
    let mut out = commit::commit(ctx, Kind::Regenerate, Some(index), |idx, now| {
        if objects.is_empty() && pointers.is_empty() {
            return Ok(Plan::unchanged(outcome.clone(), BTreeSet::new()));
        }
        let event = NewEvent {
            action: Kind::Regenerate,
            target: ctx.store.url(),
            details: serde_json::json!({ "written": outcome.written }),
        };
        idx.transact(Kind::Regenerate, &actor, now, |_| Ok(((), vec![event])))?;
        Ok(Plan {
            objects: objects.clone(),
            ..Plan::index_only(outcome.clone(), pointers.clone())
        })
    })
    .await?;
    out.written.sort();
    out.written.dedup();
    Ok(out)
}

/// Compares the store with the render of the index, reading only: one
/// listing per area, and a HEAD per pointer object only where the store
/// has no record that every commit's pointers were written (a store last
/// written by an older otapub) — there a pointer's bytes may be right under
/// an older generation, which a stale writer could still overwrite.
async fn survey(ctx: &Context<'_>, verify_bytes: bool) -> Result<Survey> {
    // The listing of public/ (the slowest part: some servers walk the whole
    // bucket for it) runs while the index is read and rendered; embedded
    // patch bases' records are listed only where the index has some.
    let render = async {
        tracing::debug!("loading the index");
        let (index, written) = tokio::join!(commit::read_index(ctx.store), commit::read_written(ctx.store));
        let (index, written) = (index?, written?);
        let rendered = tokio::task::spawn_blocking(move || {
            tracing::debug!("rendering the immutable objects");
            let view = full_view(&index)?;
            let mut objects = Vec::new();
            for p in view.iter().flat_map(|v| &v.packages) {
                objects.extend(tree::package_objects(p)?);
            }
            // The signed records of embedded patch bases (few; compared like the rest).
            let embedded = crate::index::embedded_bases(index.conn())?;
            for e in &embedded {
                objects.push(super::embedded::embedded_record(e));
            }
            // A mark past the index (one restored from an older copy) proves nothing.
            let all_written = written > 0 && written == index.generation()?;
            // The pointers' objects too, while the listing is still running.
            let served = view
                .iter()
                .map(|v| Ok((tree::pointer_objects(v)?, tree::rollout_objects(v)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok::<_, crate::Error>((index, view, objects, all_written, !embedded.is_empty(), served))
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        let embedded_listed = if rendered.4 {
            ctx.store.list("state/embedded/").await?
        } else {
            Vec::new()
        };
        Ok::<_, crate::Error>((rendered, embedded_listed))
    };
    let listing = async {
        // One listing of public/ answers for the immutable objects, the
        // pointers and the patches at once.
        let listed = ctx.store.list("public/").await?;
        tracing::debug!("listed public/");
        Ok::<_, crate::Error>(listed)
    };
    let (rendered, listed) = tokio::join!(render, listing);
    let ((index, view, immutable, all_written, _, served), embedded_listed) = rendered?;
    let listed = listed?.into_iter().chain(embedded_listed);
    // Ordered, so a pointer's rollout objects are one range of it.
    let listed: BTreeMap<String, ObjectInfo> = listed.map(|o| (o.key.clone(), o)).collect();
    tracing::debug!("comparing {} objects with {} listed", immutable.len(), listed.len());
    let differing: Vec<Option<PublicObject>> = stream::iter(immutable.iter())
        .map(|o| {
            let listed = &listed;
            async move {
                // A listing cannot see metadata: where its etag says
                // "same bytes" the object is left alone; `check` compares everything.
                Ok::<_, crate::Error>(differs(ctx, listed, o, verify_bytes).await?.then(|| o.clone()))
            }
        })
        .buffered(UPLOAD_CONCURRENCY)
        .try_collect()
        .await?;
    let mut objects: Vec<PublicObject> = differing.into_iter().flatten().collect();
    objects.extend(lost_patches(ctx, &index, &listed, verify_bytes).await?);
    let mut keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    let mut pointers = BTreeSet::new();
    if all_written {
        for (v, (pointer_objects, rollout_objects)) in view.iter().zip(served) {
            let mut differ = Vec::new();
            for o in pointer_objects.into_iter().flatten() {
                if differs(ctx, &listed, &o, verify_bytes).await? {
                    differ.push(o.key);
                }
            }
            let prefix = v.pointer.rollout_prefix();
            let mut expected = HashSet::new();
            if let Some(ro) = rollout_objects {
                for o in std::iter::once(&ro.record).chain(&ro.buckets) {
                    expected.insert(o.key.clone());
                    if differs(ctx, &listed, o, verify_bytes).await? {
                        differ.push(o.key.clone());
                    }
                }
            }
            // Bucket objects the view no longer has are removed.
            differ.extend(
                listed
                    .range(prefix.clone()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(&prefix))
                    .filter(|k| !expected.contains(*k))
                    .cloned(),
            );
            if !differ.is_empty() {
                pointers.insert(v.pointer.clone());
                keys.extend(differ);
            }
        }
    } else {
        tracing::debug!("no record that every commit's pointers were written: asking for each pointer object");
        // Each pointer object is asked about (a HEAD) even where the listing's
        // etag shows the same bytes: only the HEAD returns its generation, and
        // a pointer's bytes can come back (a ban falls back to what it served
        // before) under an older generation, which a stale writer in between
        // may overwrite; writing the current stamp is what refuses that writer.
        for (v, written) in view.iter().zip(commit::check_views(ctx.store, &index, &view).await?) {
            if !written.is_empty() {
                pointers.insert(v.pointer.clone());
                keys.extend(written);
            }
        }
    }
    keys.sort();
    keys.dedup();
    Ok(Survey {
        rendered: immutable.len() + 2 * view.len(),
        index,
        objects,
        pointers,
        keys,
    })
}

/// Makes again each kept patch the store lost (or, with `verify_bytes`,
/// holds other bytes of): the same two bundles give the same bytes.
async fn lost_patches(
    ctx: &Context<'_>,
    index: &Index,
    listed: &BTreeMap<String, ObjectInfo>,
    verify_bytes: bool,
) -> Result<Vec<PublicObject>> {
    let rows: Vec<PatchRow> = crate::index::patches(index.conn())?
        .into_iter()
        .filter(|r| r.kept.is_some())
        .collect();
    let mut objects = Vec::new();
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
        match patch::make::remake(ctx.store, &row).await {
            Ok(bytes) => objects.push(PublicObject {
                key,
                bytes,
                meta: ObjectMeta::new(patch::CONTENT_TYPE, IMMUTABLE_CACHE_CONTROL),
            }),
            Err(e) => eprintln!("warning: {key} cannot be made again: {e}"),
        }
    }
    Ok(objects)
}
