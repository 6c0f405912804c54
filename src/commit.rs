//! The one commit protocol every writer goes through (docs/format.md):
//!
//! 1. read the index and the written mark (`state/pointers-written.json`);
//!    if this invocation's operation id already committed (a retry after a
//!    lost response or a crash), or an operation committed past the mark is
//!    this same command run before, only finish its pointers;
//! 2. wait while a `gc` holds its lease;
//! 3. apply the change in one transaction, which records the operation, its
//!    audit events, its result under the operation id, a new generation and
//!    the stamps of the pointers whose view it changed;
//! 4. upload assets (content-addressed), make the launch-asset patches the
//!    affected pointers' served updates lack (`crate::patch`, recorded in
//!    this transaction's index) and create immutable objects and patches
//!    (`If-None-Match: *`; an object already there with other bytes belongs to
//!    no committed package and is replaced only after this writer commits);
//! 5. write the index only if nobody else wrote it since step 1 — the commit
//!    point; on losing, go back to 1;
//! 6. write each affected pointer forward-only: replaced only when the stored
//!    stamp is not newer, by a conditional write on the etag just read; then
//!    re-read the index's etag and repeat from the newer index while other
//!    writers committed meanwhile. The pointers of operations committed past
//!    the mark go in the same pass, and the mark moves to this commit.
//!
//! Nothing else writes pointers, and nothing writes the index but through
//! here (`index rebuild` too, through [`commit_new_index`]); a gc's
//! deletions go through [`delete_under_lease`], so `ops/` writes and
//! deletes no object of its own — nor can it: every write of a
//! [`Store`] takes the [`Write`] token only this file makes (`WRITE`).

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Duration, DurationRound, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::index::{self, Index, INDEX_KEY};
use crate::model::{CommittedOperation, Kind, Rollout};
use crate::names::PointerId;
use crate::patch;
use crate::store::{Body, CondPut, DryRunStore, ObjectMeta, Precondition, Store, Write, IMMUTABLE_CACHE_CONTROL};
use crate::tree::{self, PointerView, PublicObject};

/// The permission every store write asks for ([`Write`]): made here and
/// nowhere else, so no write reaches a store but through this file.
const WRITE: &Write = &Write::mint();

/// How many times a command re-applies its change after losing a race.
pub const MAX_ATTEMPTS: u32 = 12;
/// Uploads in flight at once: a store in another region costs a round trip
/// per request, so more in flight is what keeps a publish near the network's
/// floor there (measured at 20 ms RTT: 0.83 s at 16, 0.62 s at 32, against
/// 0.54 s for `curl --parallel-max 16`); on loopback it makes no difference.
pub const UPLOAD_CONCURRENCY: usize = 32;

/// Pointers checked (HEAD, and a write where one is due) at once: the
/// forward-only rule needs each pointer object's generation, which only a
/// HEAD returns, so a full regenerate of 10,000 pointers is 20,000 small
/// requests.
const POINTER_CONCURRENCY: usize = 64;
/// From this many assets unknown to the index on, one listing replaces a HEAD each.
const LIST_INSTEAD_OF_HEAD: usize = 64;
/// How long a `gc` may hold the store; writers wait at most this long.
pub const GC_LEASE: Duration = Duration::minutes(5);
/// Settings key of the gc lease.
const LEASE_SETTING: &str = "gc_lease";
/// Settings key counting gc runs: uploads an earlier attempt made are not
/// trusted across one.
pub(crate) const GC_EPOCH_SETTING: &str = "gc_epoch";
/// Commits that do not wait for a gc's lease: the gc's own, and those that
/// reference no object (the lease keeps writers from referencing what gc deletes).
const LEASE_EXEMPT: [Kind; 2] = [Kind::Gc, Kind::OpsSweep];
/// Settings key recording that the store passed the conditional-write probe.
const LOCKING_SETTING: &str = "conditional_writes";

/// Where time comes from: the system clock, or a fixed instant (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// `Utc::now()`.
    #[default]
    System,
    /// Always this instant.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// Now, truncated to milliseconds (the precision of createdAt).
    pub fn now(&self) -> DateTime<Utc> {
        let t = match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
        };
        t.duration_trunc(Duration::milliseconds(1)).unwrap_or(t)
    }
}

/// What every command runs with.
pub struct Context<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// Who runs the command, for the audit log.
    pub actor: String,
    /// The clock.
    pub clock: Clock,
    /// Mutate a store that ignores conditional writes (one writer only).
    pub unsafe_no_locking: bool,
    /// This invocation's operation id: generated, or given (`--operation-id`)
    /// so that a CI retry of a command whose commit landed does not apply it twice.
    pub operation_id: String,
    /// What was run: the command and its own arguments (not the global
    /// options), so a rerun of a command whose commit landed but whose
    /// pointers were never written adopts that commit instead of applying
    /// its change twice. Empty: never adopt.
    pub invocation: String,
    /// Which launch-asset patches commits make.
    pub patches: patch::Policy,
    /// Progress bars (on a terminal only).
    pub progress: crate::progress::Progress,
}

/// A fresh random operation id.
pub fn new_operation_id() -> String {
    let mut bytes = [0u8; 16];
    // Without OS randomness, the clock and the pid still make ids distinct per run.
    if getrandom::getrandom(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&Utc::now().timestamp_nanos_opt().unwrap_or(0).to_be_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_be_bytes());
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

pub use crate::store::AssetUpload;

/// Reads the index from the store (an empty one when the store has none),
/// with the etag it was read at: what every command that only reads the
/// index starts from, and each commit attempt too.
pub async fn read_index(store: &dyn Store) -> Result<Index> {
    let (bytes, etag) = match store.get(INDEX_KEY).await? {
        Some(o) => (Some(o.bytes), Some(o.etag)),
        None => (None, None),
    };
    crate::off_runtime(|| Index::open(bytes.as_deref(), etag))
}

/// The outcome of writing the index back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Saved {
    /// Committed; the new etag.
    Committed(String),
    /// Another writer committed since this copy was read.
    Conflict,
}

/// Writes the index back if nobody else wrote it since it was read (the
/// commit point).
async fn save_index(store: &dyn Store, index: &mut Index) -> Result<Saved> {
    let bytes = index.to_bytes()?;
    let cond = match index.etag() {
        Some(e) => Precondition::Matches(e.to_string()),
        None => Precondition::Absent,
    };
    let meta = ObjectMeta::new("application/vnd.sqlite3", "no-store");
    match store.put_if(WRITE, INDEX_KEY, bytes, &meta, cond).await? {
        CondPut::Written(etag) => {
            // The chain of index versions, for diagnosing a server whose
            // conditional writes are not atomic (two writes from one etag);
            // logged under the index's target, where it always was
            // (`RUST_LOG=otapub::index=debug`).
            tracing::debug!(
                target: "otapub::index",
                "index written: from {} to {etag}",
                index.etag().unwrap_or("(none)")
            );
            index.stored_as(etag.clone());
            Ok(Saved::Committed(etag))
        }
        CondPut::Conflict => Ok(Saved::Conflict),
    }
}

/// What a change plans to write around its commit.
pub struct Plan<T> {
    /// What the command reports.
    pub output: T,
    /// Whether the index changed (and must be written back).
    pub changed: bool,
    /// Assets to upload before the commit: those the index did not know.
    pub assets: Vec<AssetUpload>,
    /// Immutable objects and state records to create before the commit.
    pub objects: Vec<PublicObject>,
    /// Pointers to render and write after the commit.
    pub pointers: BTreeSet<PointerId>,
    /// Pointers whose served updates need patches made although their view
    /// did not change (a new embedded base); those of `pointers` always do.
    pub patch_for: BTreeSet<PointerId>,
}

impl<T> Plan<T> {
    /// A change of the index alone: no uploads, no objects.
    pub fn index_only(output: T, pointers: BTreeSet<PointerId>) -> Plan<T> {
        Plan {
            changed: true,
            ..Plan::unchanged(output, pointers)
        }
    }

    /// A plan that changes nothing but still makes sure `pointers` match the index.
    pub fn unchanged(output: T, pointers: BTreeSet<PointerId>) -> Plan<T> {
        Plan {
            output,
            changed: false,
            assets: Vec::new(),
            objects: Vec::new(),
            pointers,
            patch_for: BTreeSet::new(),
        }
    }
}

/// The gc lease, as recorded in the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    /// The operation id of the gc holding it.
    pub op: String,
    /// Who runs it.
    pub actor: String,
    /// Until when (ms since the epoch).
    pub until: i64,
}

/// The lease in force at `now`, if any.
pub fn active_lease(index: &Index, now: DateTime<Utc>) -> Result<Option<Lease>> {
    let Some(raw) = index.setting(LEASE_SETTING)? else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let lease: Lease = serde_json::from_str(&raw).map_err(|e| CommitError::LeaseUnreadable {
        raw: raw.clone(),
        reason: e.to_string(),
    })?;
    Ok((lease.until > index::to_ms(now)).then_some(lease))
}

/// Takes (or renews) the gc lease inside a transaction.
pub(crate) fn take_lease(conn: &rusqlite::Connection, lease: &Lease) -> Result<()> {
    let json = serde_json::to_string(lease).map_err(|e| CommitError::LeaseUnwritable { reason: e.to_string() })?;
    index::set_setting(conn, LEASE_SETTING, &json)
}

/// Releases the gc lease inside a transaction.
pub(crate) fn release_lease(conn: &rusqlite::Connection) -> Result<()> {
    index::set_setting(conn, LEASE_SETTING, "")
}

/// A gc's deletions while it holds the lease, one key at a time in order:
/// they stop past `deadline` (ms since the epoch, on the command's clock) or
/// once `longest` has passed since `taken` (on the monotonic clock), and at
/// the first failure. Returns the keys deleted and that failure.
pub async fn delete_under_lease(
    ctx: &Context<'_>,
    keys: &[String],
    deadline: i64,
    taken: std::time::Instant,
    longest: std::time::Duration,
) -> (Vec<String>, Option<Error>) {
    let mut deleted = Vec::new();
    for key in keys {
        if index::to_ms(ctx.clock.now()) > deadline || taken.elapsed() > longest {
            break;
        }
        if let Err(e) = ctx.store.delete(WRITE, key).await {
            return (deleted, Some(e));
        }
        deleted.push(key.clone());
    }
    (deleted, None)
}

/// Asks the store's conditional-write probe ahead of the commit (which asks
/// again and gets the same answer without a request), for a writer that has
/// other work to overlap it with: a publish, while its files hash. Only
/// where the commit will ask: an S3 store not yet verified by `index`.
pub async fn probe_ahead(store: &dyn Store, index: &Index) -> Result<()> {
    if probe_due(store, index)? {
        tracing::debug!("checking conditional writes (while the files hash)");
        store.probe_conditional_writes(WRITE).await?;
    }
    Ok(())
}

/// Whether the store's conditional writes are still to be probed: an S3
/// store the index does not record as verified.
fn probe_due(store: &dyn Store, index: &Index) -> Result<bool> {
    Ok(!store.is_local() && index.setting(LOCKING_SETTING)?.as_deref() != Some("verified"))
}

/// Waits a random time that doubles with each lost race (up to a second), so
/// writers that collided do not collide again in lockstep.
// Not backon: its jitter adds to the delay ([d, 2d), past the 1 s cap) where this draws in [0, cap], and the commit loop's state across attempts is no retried closure.
async fn backoff(attempt: u32) {
    let mut r = [0u8; 2];
    let _ = getrandom::getrandom(&mut r);
    let cap_ms = (25u64 << attempt.min(6)).min(1000);
    let ms = u64::from(u16::from_le_bytes(r)) % (cap_ms + 1);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

fn json_err(e: serde_json::Error) -> Error {
    CommitError::ResultUnreadable { reason: e.to_string() }.into()
}

/// What the commit path refuses, and the records of its own it cannot read.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The gc lease setting does not parse.
    #[error("index: the gc lease {raw:?} is unreadable ({reason}); run `otapub gc` again")]
    LeaseUnreadable {
        /// The setting as stored.
        raw: String,
        /// The parser's error.
        reason: String,
    },
    /// The gc lease cannot be serialized.
    #[error("index: {reason}")]
    LeaseUnwritable {
        /// serde's error.
        reason: String,
    },
    /// A recorded operation result does not parse.
    #[error(
        "index: a recorded operation result is unreadable ({reason}); restore the index with `otapub index rebuild`"
    )]
    ResultUnreadable {
        /// The parser's error.
        reason: String,
    },
    /// `index rebuild` without `--force` on a store that has an index.
    #[error("{store} already has an index; pass --force to replace it with one rebuilt from the store")]
    HasIndex {
        /// The store's URL.
        store: String,
    },
    /// A seeded index that was read from a store.
    #[error("a seeded index must be a new one (Index::open(None, None))")]
    SeedNotNew,
    /// Seeding a store that has an index.
    #[error("{store} already has an index; seed an empty store")]
    SeedHasIndex {
        /// The store's URL.
        store: String,
    },
}

impl crate::error::Refusal for CommitError {
    fn class(&self) -> crate::error::ExitClass {
        use crate::error::ExitClass;
        match self {
            CommitError::LeaseUnreadable { .. }
            | CommitError::LeaseUnwritable { .. }
            | CommitError::ResultUnreadable { .. } => ExitClass::Environment,
            CommitError::HasIndex { .. } | CommitError::SeedNotNew | CommitError::SeedHasIndex { .. } => {
                ExitClass::Input
            }
        }
    }
}

/// The id a commit of an invocation is recorded under: one per commit
/// (gc commits twice, as `gc-lease` and `gc`).
pub fn operation_key(operation_id: &str, kind: Kind) -> String {
    format!("{operation_id}:{kind}")
}

/// Runs a change under the commit protocol. `apply` gets a fresh copy of the
/// index on every attempt; an error from it is bad input and nothing has been
/// written. `preloaded` is an index the caller read already (while it did
/// other work), used for the first attempt.
pub async fn commit<T: Serialize + DeserializeOwned>(
    ctx: &Context<'_>,
    kind: Kind,
    preloaded: Option<Index>,
    apply: impl FnMut(&mut Index, DateTime<Utc>) -> Result<Plan<T>>,
) -> Result<T> {
    run(ctx, kind, Source::Stored(preloaded), apply).await
}

/// [`commit`] for a change that replaces the whole index (`index rebuild`):
/// `apply` gets a new, empty index on every attempt, which is written over
/// the stored one (if any, and only with `replace`) under the same
/// protocol — the gc lease of the stored index (when it can be read) is
/// waited for, the store probed, an operation recorded, and every pointer
/// in the plan written forward-only after the commit.
pub async fn commit_new_index<T: Serialize + DeserializeOwned>(
    ctx: &Context<'_>,
    kind: Kind,
    replace: bool,
    apply: impl FnMut(&mut Index, DateTime<Utc>) -> Result<Plan<T>>,
) -> Result<T> {
    run(ctx, kind, Source::New { replace }, apply).await
}

/// Seeds an empty store with an index built outside any command (the
/// benchmark's large indexes, made with [`Index::open`] and
/// [`Index::transact`]): writes it as the store's first index, then every
/// pointer it holds forward-only at the stamps it records. No lease, probe or
/// operation record: nothing else may be using the store. Refused when the
/// store has an index already.
pub async fn seed_index(store: &dyn Store, index: &mut Index) -> Result<()> {
    if index.etag().is_some() {
        return Err(CommitError::SeedNotNew.into());
    }
    if save_index(store, index).await? == Saved::Conflict {
        return Err(CommitError::SeedHasIndex {
            store: store.url().to_string(),
        }
        .into());
    }
    let views = full_view(index)?;
    write_views(store, index, &views).await?;
    Ok(())
}

/// Where each attempt's index comes from.
enum Source {
    /// The stored index (or, for the first attempt, one read already).
    Stored(Option<Index>),
    /// A new, empty index that replaces the stored one.
    New {
        /// Whether an existing index may be replaced.
        replace: bool,
    },
}

/// One attempt's index, the written mark as stored (moved forward from
/// there), the generation up to which this attempt takes every commit as
/// written, and the gc lease in force (for a new index, the stored one's).
struct Loaded {
    index: Index,
    mark: Mark,
    written: u64,
    lease: Option<Lease>,
}

/// Loads the index for one attempt.
async fn load_for_attempt(ctx: &Context<'_>, source: &mut Source) -> Result<Loaded> {
    match source {
        Source::Stored(preloaded) => {
            let preloaded = preloaded.take();
            let (index, written) = tokio::join!(
                async {
                    match preloaded {
                        Some(index) => Ok(index),
                        None => read_index(ctx.store).await,
                    }
                },
                read_mark(ctx.store)
            );
            let index = index?;
            let lease = active_lease(&index, ctx.clock.now())?;
            let mark = written?;
            // A mark past the index (one restored from an older copy, or read
            // just before a commit the mark already covers) proves nothing
            // about this index: nothing is taken as written then.
            let written = if mark.0 > index.generation()? { 0 } else { mark.0 };
            Ok(Loaded {
                index,
                mark,
                written,
                lease,
            })
        }
        Source::New { replace } => {
            let existing = ctx.store.get(INDEX_KEY).await?;
            let etag = match &existing {
                Some(_) if !*replace => {
                    return Err(CommitError::HasIndex {
                        store: ctx.store.url().to_string(),
                    }
                    .into())
                }
                Some(o) => Some(o.etag.clone()),
                None => None,
            };
            // The index being replaced may be unreadable (why it is rebuilt):
            // then it holds no lease anyone can honour.
            let lease = existing
                .and_then(|o| Index::open(Some(&o.bytes), None).ok())
                .and_then(|old| active_lease(&old, ctx.clock.now()).ok().flatten());
            let mut index = crate::off_runtime(|| Index::open(None, etag))?;
            // The new index continues above the written mark, so a commit
            // after it is never taken for one the mark already covers.
            let mark = read_mark(ctx.store).await?;
            index.raise_generation(mark.0)?;
            Ok(Loaded {
                index,
                written: mark.0,
                mark,
                lease,
            })
        }
    }
}

async fn run<T: Serialize + DeserializeOwned>(
    ctx: &Context<'_>,
    kind: Kind,
    mut source: Source,
    mut apply: impl FnMut(&mut Index, DateTime<Utc>) -> Result<Plan<T>>,
) -> Result<T> {
    let op_key = operation_key(&ctx.operation_id, kind);
    let mut uploaded = HashSet::new();
    // Immutable keys an earlier attempt of this invocation created: they hold
    // its uncommitted leftovers (a key someone committed since would not be
    // in this attempt's plan), so a retry defers them without asking again.
    let mut created: HashSet<String> = HashSet::new();
    let mut gc_epoch: Option<Option<String>> = None;
    let mut patch_cache = patch::make::Cache::default();
    let mut attempt = 0;
    // Waiting for a gc lease is bounded in real time too: a lease stamped
    // by a fixed clock (OTAPUB_NOW) or a far-off one must not hang a writer.
    let started = std::time::Instant::now();
    while attempt < MAX_ATTEMPTS {
        tracing::debug!("loading the index");
        let Loaded {
            mut index,
            mark,
            written,
            lease,
        } = load_for_attempt(ctx, &mut source).await?;
        let unfinished = index.committed_after(written)?;
        let leftovers = pointers_of(&unfinished)?;
        let none = BTreeSet::new();
        if let Some((output, pointers)) = index.committed_operation(&op_key)? {
            // This invocation's change is already in the index: a retry after
            // a lost response, or a rerun with the same --operation-id.
            tracing::debug!("operation {op_key} already committed");
            let output: T = serde_json::from_str(&output).map_err(json_err)?;
            let pointers: BTreeSet<PointerId> = serde_json::from_str(&pointers).map_err(json_err)?;
            let generation = index.generation()?;
            let wrote = write_pointers(
                ctx.store,
                index,
                &pointers,
                &none,
                &leftovers,
                Some((generation, &mark)),
            )
            .await
            .map_err(Error::after_commit)?;
            say_finished(&unfinished, wrote);
            ctx.store.clean_up().await?;
            return Ok(output);
        }
        // Commits whose pointers may not all be written: a command killed or
        // failed after its commit point (or one still writing them). If one
        // is this very command run before, it is finished instead of applied
        // again; otherwise their pointers are written with this command's
        // own, after its commit — not before, which would only widen the
        // window in which concurrent writers race for the index.
        let rerun = (!ctx.invocation.is_empty())
            .then(|| {
                unfinished
                    .iter()
                    .rev()
                    .find(|u| u.invocation == ctx.invocation && u.op_key.ends_with(&format!(":{kind}")))
            })
            .flatten();
        if let Some(r) = rerun {
            let generation = index.generation()?;
            let wrote = write_pointers(ctx.store, index, &none, &none, &leftovers, Some((generation, &mark))).await?;
            say_finished(&unfinished, wrote);
            eprintln!(
                "note: that `{}` is this command run before: finished it instead of applying it again",
                r.kind
            );
            ctx.store.clean_up().await?;
            return serde_json::from_str(&r.output).map_err(json_err);
        }
        let now = ctx.clock.now();
        if !LEASE_EXEMPT.contains(&kind) {
            if let Some(lease) = lease {
                if started.elapsed() > GC_LEASE.to_std().unwrap_or_default() * 2 {
                    return Err(Error::Leased {
                        operation: lease.op,
                        actor: lease.actor,
                    });
                }
                wait_for_lease(&lease, now).await;
                continue;
            }
        }
        let epoch = index.setting(GC_EPOCH_SETTING)?;
        if gc_epoch.as_ref().is_some_and(|e| *e != epoch) {
            // A gc ran since the last attempt: what that attempt uploaded may be gone.
            uploaded.clear();
        }
        gc_epoch = Some(epoch);
        index.set_operation_id(&op_key);
        tracing::debug!("applying the change");
        let plan = crate::off_runtime(|| apply(&mut index, now))?;
        let mut fresh = BTreeSet::new();
        // The patches devices of the affected pointers can ask for and no
        // commit made yet: made below, recorded in this commit.
        let pairs = if plan.changed {
            let pointers = plan.pointers.union(&plan.patch_for).cloned().collect();
            let wanted = patch::plan::wanted(index.conn(), &pointers, &ctx.patches)?;
            patch::plan::missing(index.conn(), wanted)?
        } else {
            Vec::new()
        };
        if plan.changed {
            let output = serde_json::to_string(&plan.output).map_err(json_err)?;
            let pointers = serde_json::to_string(&plan.pointers).map_err(json_err)?;
            let generation = index.bump_generation()?;
            index.record_result(&op_key, &output, &pointers, generation, &ctx.invocation)?;
            for p in &plan.pointers {
                if index.pointer_stamp(p)? == 0 {
                    fresh.insert(p.clone());
                }
                let view = pointer_view(&index, p)?;
                if let Some([_, body]) = tree::pointer_objects(&view)? {
                    index.restamp_pointer(p, &Sha256Digest::of(&body.bytes), generation)?;
                }
            }
        }
        let writes = plan.changed || !plan.pointers.is_empty() || !plan.objects.is_empty() || !plan.assets.is_empty();
        let needs_probe = writes && probe_due(ctx.store, &index)?;
        // The probe of the store's conditional writes (three requests, once
        // per store) comes before anything else is written: a store that
        // ignores them is refused with nothing changed.
        let probed = if needs_probe {
            tracing::debug!("checking conditional writes");
            Some(ctx.store.probe_conditional_writes(WRITE).await?)
        } else {
            None
        };
        match probed {
            Some(true) if plan.changed => index::set_setting(index.conn(), LOCKING_SETTING, "verified")?,
            Some(false) if !ctx.unsafe_no_locking => return Err(Error::NoLocking { store: ctx.store.url() }),
            _ => {}
        }
        let prepare = async {
            tracing::debug!("uploading {} assets", plan.assets.len());
            upload_assets(ctx.store, &plan.assets, &mut uploaded, &ctx.progress).await?;
            let patches = patch::make::make(
                ctx.store,
                &pairs,
                &plan.assets,
                &ctx.patches,
                &mut patch_cache,
                &ctx.progress,
            )
            .await;
            tracing::debug!(
                "creating {} immutable objects",
                plan.objects.len() + patches.objects.len()
            );
            let todo: Vec<&PublicObject> = plan.objects.iter().chain(&patches.objects).collect();
            let created_before = &created;
            let results: Vec<(&PublicObject, bool)> = stream::iter(todo)
                .map(|o| async move {
                    let mine = !created_before.contains(&o.key) && create_immutable(ctx.store, o).await?;
                    Ok::<_, Error>((o, mine))
                })
                .buffer_unordered(UPLOAD_CONCURRENCY)
                .try_collect()
                .await?;
            let mut replace_after_commit = Vec::new();
            let mut keys = Vec::new();
            for (o, mine) in results {
                if !mine {
                    replace_after_commit.push(o.clone());
                }
                keys.push(o.key.clone());
            }
            Ok::<_, Error>((patches.rows, replace_after_commit, keys))
        };
        let prepared = prepare.await;
        let written = async {
            let (patch_rows, replace_after_commit, keys) = prepared?;
            created.extend(keys);
            for row in &patch_rows {
                index::insert_patch(index.conn(), row)?;
            }
            tracing::debug!("writing the index");
            let saved = if plan.changed {
                save_index(ctx.store, &mut index)
                    .await
                    .map_err(|e| Error::MaybeCommitted {
                        operation_id: ctx.operation_id.clone(),
                        source: Box::new(e),
                    })?
            } else {
                Saved::Committed(index.etag().unwrap_or_default().to_string())
            };
            Ok::<_, Error>((saved, replace_after_commit))
        }
        .await;
        match written {
            Ok((Saved::Committed(_), replace)) => {
                let finished = async {
                    // This writer owns these keys now: what was there belonged
                    // to no committed package.
                    for o in replace {
                        ctx.store
                            .put(WRITE, &o.key, Body::Bytes(o.bytes.clone()), &o.meta)
                            .await?;
                    }
                    tracing::debug!("writing {} pointers", plan.pointers.len());
                    // Every commit up to this one has its pointers written
                    // after the first pass: the next writer need not look at them.
                    let generation = index.generation()?;
                    let wrote = write_pointers(
                        ctx.store,
                        index,
                        &plan.pointers,
                        &fresh,
                        &leftovers,
                        Some((generation, &mark)),
                    )
                    .await?;
                    say_finished(&unfinished, wrote);
                    Ok::<_, Error>(())
                }
                .await;
                if plan.changed {
                    finished.map_err(Error::after_commit)?;
                } else {
                    finished?;
                }
                ctx.store.clean_up().await?;
                tracing::debug!("done");
                return Ok(plan.output);
            }
            Ok((Saved::Conflict, _)) => {
                tracing::debug!("lost the race (attempt {})", attempt + 1);
                backoff(attempt).await;
                attempt += 1;
            }
            Err(e) => {
                record_failure(ctx, kind, &e).await;
                return Err(e.before_commit());
            }
        }
    }
    Err(Error::Race { attempts: MAX_ATTEMPTS })
}

/// The state object recording the newest generation up to which every
/// commit's pointers are known to be written (`{"generation": N}`).
pub const WRITTEN_KEY: &str = "state/pointers-written.json";

#[derive(Debug, Serialize, Deserialize)]
struct WrittenMark {
    generation: u64,
}

/// The generation up to which every commit's pointers are written (0 when
/// nothing is known: a store written by an older otapub, or a mark that
/// cannot be read — then every operation that recorded its generation is
/// looked at again, which costs requests, never correctness).
pub async fn read_written(store: &dyn Store) -> Result<u64> {
    Ok(read_mark(store).await?.0)
}

/// The mark as read: its generation and its etag (`None`: absent).
type Mark = (u64, Option<String>);

async fn read_mark(store: &dyn Store) -> Result<Mark> {
    let Some(obj) = store.get(WRITTEN_KEY).await? else {
        return Ok((0, None));
    };
    match serde_json::from_slice::<WrittenMark>(&obj.bytes) {
        Ok(m) => Ok((m.generation, Some(obj.etag))),
        Err(e) => {
            tracing::warn!("{WRITTEN_KEY} is unreadable ({e}): every recorded operation's pointers are checked again");
            Ok((0, Some(obj.etag)))
        }
    }
}

/// Moves the mark forward to `generation` (never back). Best effort: a mark
/// left behind only makes the next writer check those pointers again.
async fn mark_written(store: &dyn Store, generation: u64, read: &Mark) {
    if let Err(e) = advance_mark(store, generation, read).await {
        tracing::warn!("cannot record that the pointers are written up to generation {generation}: {e:#}");
    }
}

/// `read`: the mark as this writer read it, tried first (one request when
/// nobody moved it since).
async fn advance_mark(store: &dyn Store, generation: u64, read: &Mark) -> Result<()> {
    let bytes = serde_json::to_vec(&WrittenMark { generation }).map_err(json_err)?;
    let meta = ObjectMeta::new("application/json", "no-store");
    let mut known = Some(read.clone());
    for _ in 0..MAX_ATTEMPTS {
        let (stored, etag) = match known.take() {
            Some(m) => m,
            None => read_mark(store).await?,
        };
        if etag.is_some() && stored >= generation {
            return Ok(());
        }
        let cond = match etag {
            Some(e) => Precondition::Matches(e),
            None => Precondition::Absent,
        };
        if let CondPut::Written(_) = store.put_if(WRITE, WRITTEN_KEY, bytes.clone(), &meta, cond).await? {
            return Ok(());
        }
    }
    Err(Error::Race { attempts: MAX_ATTEMPTS })
}

/// Says which operations' pointers this command wrote for them (nothing
/// when their own writer had written them already).
fn say_finished(unfinished: &[CommittedOperation], objects: usize) {
    if objects == 0 {
        return;
    }
    let names: Vec<String> = unfinished
        .iter()
        .map(|u| {
            let id = u.op_key.rsplit_once(':').map_or(u.op_key.as_str(), |(id, _)| id);
            format!("`{}` by {} (operation {id})", u.kind, u.actor)
        })
        .collect();
    eprintln!(
        "note: committed but not all written: {}; wrote their pointers ({objects} objects)",
        names.join(", ")
    );
}

/// The pointers the given operations affected.
fn pointers_of(ops: &[CommittedOperation]) -> Result<BTreeSet<PointerId>> {
    let mut all = BTreeSet::new();
    for u in ops {
        let pointers: BTreeSet<PointerId> = serde_json::from_str(&u.pointers).map_err(json_err)?;
        all.extend(pointers);
    }
    Ok(all)
}

/// Sleeps until the gc lease may have been released (checked again then).
async fn wait_for_lease(lease: &Lease, now: DateTime<Utc>) {
    eprintln!(
        "waiting: `otapub gc` (operation {}, by {}) holds the store until {}",
        lease.op,
        lease.actor,
        index::from_ms(lease.until).map_or_else(|_| lease.until.to_string(), crate::manifest::format_time)
    );
    let left = (lease.until - index::to_ms(now)).clamp(50, 2000);
    tokio::time::sleep(std::time::Duration::from_millis(left as u64)).await;
}

/// Best effort: a command that failed after it started writing says so in the index.
async fn record_failure(ctx: &Context<'_>, kind: Kind, error: &Error) {
    let Ok(mut index) = read_index(ctx.store).await else {
        return;
    };
    if index
        .record_failure(kind, &ctx.actor, ctx.clock.now(), &format!("{error:#}"))
        .is_ok()
    {
        let _ = save_index(ctx.store, &mut index).await;
    }
}

/// Uploads what is not in the store yet: one HEAD per asset the index does
/// not know (the plan lists only those), none for one already uploaded by an
/// earlier attempt. Assets are content-addressed: writing one again writes
/// the same bytes.
async fn upload_assets(
    store: &dyn Store,
    assets: &[AssetUpload],
    uploaded: &mut HashSet<Sha256Digest>,
    progress: &crate::progress::Progress,
) -> Result<()> {
    let todo: Vec<&AssetUpload> = assets.iter().filter(|a| !uploaded.contains(&a.sha256)).collect();
    let bar = progress.items(todo.len() as u64, "uploading assets");
    let bar = &bar;
    // Many unknown assets (a first publish, a lost index): one listing of
    // assets/ answers for all of them in far fewer requests than a HEAD each.
    let listed: Option<HashSet<String>> = if todo.len() >= LIST_INSTEAD_OF_HEAD {
        Some(store.list("public/assets/").await?.into_iter().map(|o| o.key).collect())
    } else {
        None
    };
    let listed = &listed;
    let done: Vec<Sha256Digest> = stream::iter(todo)
        .map(|a| async move {
            let key = format!("public/assets/{}", a.sha256);
            let present = match listed {
                Some(keys) => keys.contains(&key),
                None => store.head(&key).await?.is_some(),
            };
            if !present {
                let meta = ObjectMeta::new(a.content_type.clone(), IMMUTABLE_CACHE_CONTROL);
                store.put_file_sha256(WRITE, &key, &a.path, &a.sha256, &meta).await?;
            }
            bar.inc(1);
            Ok::<_, Error>(a.sha256)
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .try_collect()
        .await?;
    bar.finish_and_clear();
    uploaded.extend(done);
    Ok(())
}

/// Creates an immutable object unless the key exists (`If-None-Match: *`).
/// Returns whether the store now holds exactly these bytes; `false` means the
/// key holds something else, which belongs to no committed package (the
/// caller's snapshot has no package there) and may be replaced once the
/// caller has committed — never before.
async fn create_immutable(store: &dyn Store, o: &PublicObject) -> Result<bool> {
    match store
        .put_if(WRITE, &o.key, o.bytes.clone(), &o.meta, Precondition::Absent)
        .await?
    {
        CondPut::Written(_) => Ok(true),
        CondPut::Conflict => Ok(store.get(&o.key).await?.is_some_and(|e| e.bytes == o.bytes)),
    }
}

/// What a forward-only write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// It wrote (or, on a dry run, would write).
    Written,
    /// The store holds these bytes at this stamp already.
    Same,
    /// The store holds a newer view: this writer is stale.
    Newer,
}

/// Writes a mutable object only forward: replaced only when the stored stamp
/// is older than `stamp` (or equal, with other bytes: damage to heal), by a
/// conditional write on the etag just read, so a writer holding an older view
/// can never put it back. Returns whether it wrote.
pub async fn write_forward(store: &dyn Store, o: &PublicObject, stamp: u64) -> Result<bool> {
    Ok(forward(store, o, stamp, false).await? == Forward::Written)
}

/// The forward-only write. With `keep_older_same`, an object that already
/// holds these bytes under an older stamp is left as it is (a rollout bucket
/// that joined earlier: its stamp only decides who may remove it).
async fn forward(store: &dyn Store, o: &PublicObject, stamp: u64, keep_older_same: bool) -> Result<Forward> {
    let meta = ObjectMeta {
        generation: Some(stamp),
        ..o.meta.clone()
    };
    for _ in 0..MAX_ATTEMPTS {
        let cond = match store.head(&o.key).await? {
            None => Precondition::Absent,
            Some(info) => {
                let stored = info.generation.unwrap_or(0);
                if stored > stamp {
                    return Ok(Forward::Newer);
                }
                if stored == stamp || keep_older_same {
                    let same = match info.holds(&o.bytes) {
                        Some(same) => same,
                        None => store.get(&o.key).await?.is_some_and(|e| e.bytes == o.bytes),
                    };
                    if same {
                        return Ok(Forward::Same);
                    }
                }
                let etag = match info.etag {
                    Some(e) if !e.is_empty() => e,
                    _ => store.etag(&o.key).await?.ok_or_else(|| Error::Store {
                        action: "write",
                        key: o.key.clone(),
                        reason: "the object vanished while it was being replaced".into(),
                    })?,
                };
                Precondition::Matches(etag)
            }
        };
        match store.put_if(WRITE, &o.key, o.bytes.clone(), &meta, cond).await? {
            CondPut::Written(_) => return Ok(Forward::Written),
            CondPut::Conflict => continue,
        }
    }
    Err(Error::Race { attempts: MAX_ATTEMPTS })
}

/// The current view of one pointer.
pub fn pointer_view(index: &Index, pointer: &PointerId) -> Result<PointerView> {
    Ok(PointerView {
        pointer: pointer.clone(),
        packages: index.pointer_packages(pointer)?,
        directive: index.pointer_directive(pointer)?,
        rollout: index::latest_rollout(index.conn(), pointer)?,
    })
}

/// Every pointer's view.
pub fn full_view(index: &Index) -> Result<Vec<PointerView>> {
    let mut rollouts: std::collections::HashMap<PointerId, Rollout> = index::latest_rollouts(index.conn())?
        .into_iter()
        .map(|r| (r.pointer.clone(), r))
        .collect();
    index
        .all_pointers()?
        .into_iter()
        .map(|(pointer, packages)| {
            let directive = index.pointer_directive(&pointer)?;
            let rollout = rollouts.remove(&pointer);
            Ok(PointerView {
                pointer,
                packages,
                directive,
                rollout,
            })
        })
        .collect()
}

/// Writes one pointer's objects forward: the Expo body first (what devices fetch); `verify`
/// reports a pair a crash left disagreeing and `regenerate` heals it. Then
/// its rollout: the record first — a writer that finds a newer record is
/// stale and leaves the buckets alone —, the buckets it lacks, and the
/// removal of buckets no longer in the view (unless a newer view wrote them).
pub async fn write_view(store: &dyn Store, index: &Index, v: &PointerView) -> Result<Vec<String>> {
    write_view_as(store, index, v, false).await
}

/// [`write_view`]; `fresh`: the index had never stamped this pointer before
/// this commit, so its objects are most likely absent — each is first
/// created with `If-None-Match: *` (one request instead of a HEAD and a
/// write), and only if one is there after all goes the forward-only way.
async fn write_view_as(store: &dyn Store, index: &Index, v: &PointerView, fresh: bool) -> Result<Vec<String>> {
    let stamp = index.pointer_stamp(&v.pointer)?;
    let mut written = Vec::new();
    if let Some(objs) = tree::pointer_objects(v)? {
        for o in objs.iter().rev() {
            if fresh {
                let meta = ObjectMeta {
                    generation: Some(stamp),
                    ..o.meta.clone()
                };
                if let CondPut::Written(_) = store
                    .put_if(WRITE, &o.key, o.bytes.clone(), &meta, Precondition::Absent)
                    .await?
                {
                    written.push(o.key.clone());
                    continue;
                }
            }
            if forward(store, o, stamp, false).await? == Forward::Written {
                written.push(o.key.clone());
            }
        }
    }
    let Some(ro) = tree::rollout_objects(v)? else {
        return Ok(written);
    };
    match forward(store, &ro.record, ro.stamp, false).await? {
        Forward::Newer => return Ok(written),
        Forward::Written => written.push(ro.record.key.clone()),
        Forward::Same => {}
    }
    let mut listed: std::collections::BTreeMap<String, crate::store::ObjectInfo> = store
        .list(&v.pointer.rollout_prefix())
        .await?
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    // Pair by pair, envelope first and body last (as for the pointer: a
    // bucket's envelope is in place when its Expo body appears); before each
    // pair, the record is read again: once a newer commit has changed the
    // rollout, this writer stops, so a stale writer cannot put back a
    // bucket that commit removed (short of the instant between that read
    // and its write).
    for pair in ro.buckets.chunks(2) {
        let todo: Vec<&PublicObject> = pair
            .iter()
            .filter(|o| listed.remove(&o.key).and_then(|i| i.holds(&o.bytes)) != Some(true))
            .collect();
        if todo.is_empty() {
            continue;
        }
        let newer = store
            .head(&ro.record.key)
            .await?
            .is_some_and(|i| i.generation.unwrap_or(0) > ro.stamp);
        if newer {
            return Ok(written);
        }
        for o in todo {
            match forward(store, o, ro.stamp, true).await? {
                Forward::Written => written.push(o.key.clone()),
                Forward::Same => {}
                Forward::Newer => return Ok(written),
            }
        }
    }
    for (key, info) in listed {
        let generation = match info.generation {
            Some(g) => Some(g),
            None => store.head(&key).await?.map(|i| i.generation.unwrap_or(0)),
        };
        if generation.is_some_and(|g| g <= ro.stamp) {
            store.delete(WRITE, &key).await?;
            written.push(key);
        }
    }
    Ok(written)
}

/// Writes the views forward, several pointers at once; returns the keys written.
pub async fn write_views(store: &dyn Store, index: &Index, views: &[PointerView]) -> Result<Vec<String>> {
    let done: Vec<Vec<String>> = stream::iter(views)
        .map(|v| write_view(store, index, v))
        .buffered(POINTER_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(done.into_iter().flatten().collect())
}

/// What writing each view forward would write, per view: written to a
/// [`DryRunStore`], which reads the store and writes nothing to it.
pub async fn check_views(store: &dyn Store, index: &Index, views: &[PointerView]) -> Result<Vec<Vec<String>>> {
    let dry = DryRunStore::new(store);
    let dry = &dry;
    stream::iter(views)
        .map(|v| write_view(dry, index, v))
        .buffered(POINTER_CONCURRENCY)
        .try_collect()
        .await
}

/// Which pointers to converge.
#[derive(Debug, Clone, Copy)]
pub enum Pointers<'a> {
    /// These.
    Some(&'a BTreeSet<PointerId>),
    /// Every pointer of the index.
    All,
}

/// Re-reads the index's etag after pointer writes: while another writer has
/// committed since `index` was read, renders `which` again from the newer
/// index and writes them, so the last writer always leaves them matching.
/// `written` are the keys already written from `index`; returns them with
/// what the later rounds wrote.
pub async fn converge_pointers(
    store: &dyn Store,
    mut index: Index,
    which: Pointers<'_>,
    mut written: Vec<String>,
) -> Result<Vec<String>> {
    for _ in 0..MAX_ATTEMPTS * 4 {
        if store.etag(INDEX_KEY).await?.as_deref() == index.etag() {
            written.sort();
            written.dedup();
            return Ok(written);
        }
        index = read_index(store).await?;
        let views = match which {
            Pointers::Some(set) => set
                .iter()
                .map(|p| pointer_view(&index, p))
                .collect::<Result<Vec<_>>>()?,
            Pointers::All => full_view(&index)?,
        };
        written.extend(write_views(store, &index, &views).await?);
    }
    Err(Error::Race {
        attempts: MAX_ATTEMPTS * 4,
    })
}

/// Writes `pointers` forward from the committed `index`, then converges;
/// the `fresh` ones were never stamped before this commit. The `leftovers`
/// of operations committed earlier but maybe not written go in the same
/// pass (not converged: that is their own writers' part). With `mark`, once the first
/// pass is done every commit up to that generation is written: the mark is
/// moved while the index's etag is read again. Returns how many objects the
/// leftovers needed.
async fn write_pointers(
    store: &dyn Store,
    index: Index,
    pointers: &BTreeSet<PointerId>,
    fresh: &BTreeSet<PointerId>,
    leftovers: &BTreeSet<PointerId>,
    mark: Option<(u64, &Mark)>,
) -> Result<usize> {
    let views = pointers
        .union(leftovers)
        .map(|p| pointer_view(&index, p))
        .collect::<Result<Vec<_>>>()?;
    let done: Vec<Vec<String>> = stream::iter(&views)
        .map(|v| write_view_as(store, &index, v, fresh.contains(&v.pointer)))
        .buffered(POINTER_CONCURRENCY)
        .try_collect()
        .await?;
    let mut written = Vec::new();
    let mut for_leftovers = 0;
    for (v, keys) in views.iter().zip(done) {
        if pointers.contains(&v.pointer) {
            written.extend(keys);
        } else {
            for_leftovers += keys.len();
        }
    }
    let marking = async {
        if let Some((generation, read)) = mark {
            mark_written(store, generation, read).await;
        }
    };
    let (converged, ()) = tokio::join!(
        converge_pointers(store, index, Pointers::Some(pointers), written),
        marking
    );
    converged?;
    Ok(for_leftovers)
}
