//! One use-case function per command. Each mutating command follows the
//! commit protocol of SPEC: read the index, apply its change in one
//! transaction, write assets and immutable objects, write the index back only
//! if nobody else did meanwhile (the commit point), then write the pointers it
//! affected and re-check that no later commit made them stale.

pub mod ban;
pub mod check;
pub mod gc;
pub mod log;
pub mod publish;
pub mod rebuild;
pub mod regenerate;
pub mod restamp;
pub mod status;
pub mod verify;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Duration, DurationRound, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::index::{self, Index, Package, Saved, StoredDirective};
use crate::names::PointerId;
use crate::signing::Signer;
use crate::store::{Body, ObjectMeta, Store, IMMUTABLE_CACHE_CONTROL, INDEX_KEY};
use crate::tree::{self, PointerView, PublicObject};

static TRACE_START: std::sync::OnceLock<Option<std::time::Instant>> = std::sync::OnceLock::new();

/// With `OTAPUB_TRACE=1`, prints a phase and the milliseconds since the first
/// trace to stderr: where a command spends its time, without a profiler.
pub fn trace(phase: impl FnOnce() -> String) {
    let start = TRACE_START.get_or_init(|| std::env::var_os("OTAPUB_TRACE").map(|_| std::time::Instant::now()));
    if let Some(start) = start {
        eprintln!(
            "otapub trace {:>8.1} ms  {}",
            start.elapsed().as_secs_f64() * 1000.0,
            phase()
        );
    }
}

/// How many times a command re-applies its change after losing a race.
pub const MAX_ATTEMPTS: u32 = 12;

/// Waits a random time that doubles with each lost race (up to a second), so
/// writers that collided do not collide again in lockstep.
async fn backoff(attempt: u32) {
    let mut r = [0u8; 2];
    let _ = getrandom::getrandom(&mut r);
    let cap_ms = (25u64 << attempt.min(6)).min(1000);
    let ms = u64::from(u16::from_le_bytes(r)) % (cap_ms + 1);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
/// Uploads in flight at once.
pub const UPLOAD_CONCURRENCY: usize = 16;
/// From this many assets unknown to the index on, one listing replaces a HEAD each.
const LIST_INSTEAD_OF_HEAD: usize = 64;

/// Where time comes from: the system clock, or a fixed instant (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// `Utc::now()`.
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
}

/// Settings key recording that the store passed the conditional-write probe.
const LOCKING_SETTING: &str = "conditional_writes";

/// Refuses to mutate a store whose server ignores conditional writes, since
/// concurrent writers would then silently lose each other's work.
async fn ensure_locking(ctx: &Context<'_>, index: &Index) -> Result<bool> {
    if ctx.store.is_local() || index.setting(LOCKING_SETTING)?.as_deref() == Some("verified") {
        return Ok(false);
    }
    if ctx.store.probe_conditional_writes().await? {
        return Ok(true);
    }
    if ctx.unsafe_no_locking {
        return Ok(false);
    }
    Err(Error::NoLocking { store: ctx.store.url() })
}

/// A createdAt strictly newer than `newest` on the pointer, whatever the clock says.
pub fn next_created_at(now: DateTime<Utc>, newest: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match newest {
        Some(n) if n >= now => n + Duration::milliseconds(1),
        _ => now,
    }
}

/// A canonical UUID derived from what makes a package unique, so the same
/// inputs always give the same manifest.
pub fn derive_manifest_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"otapub manifest id");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// An asset a publish needs in the store.
#[derive(Debug, Clone)]
pub struct AssetUpload {
    /// SHA-256 hex.
    pub sha256: String,
    /// The local file.
    pub path: PathBuf,
    /// Its Content-Type.
    pub content_type: String,
}

/// What a change plans to write around its commit.
pub struct Plan<T> {
    /// What the command reports.
    pub output: T,
    /// Whether the index changed (and must be written back).
    pub changed: bool,
    /// Assets to upload before the commit: those the index did not know.
    pub assets: Vec<AssetUpload>,
    /// Immutable objects and state records to write before the commit.
    pub objects: Vec<PublicObject>,
    /// Pointers to render and write after the commit.
    pub pointers: BTreeSet<PointerId>,
}

/// Runs a change under the commit protocol. `apply` gets a fresh copy of the
/// index on every attempt; an error from it is bad input and nothing has been
/// written.
pub(crate) async fn commit<T>(
    ctx: &Context<'_>,
    kind: &str,
    apply: impl FnMut(&mut Index, DateTime<Utc>) -> Result<Plan<T>>,
) -> Result<T> {
    commit_from(ctx, kind, None, apply).await
}

/// [`commit`], whose first attempt starts from an index the caller already
/// read (while it did other work).
pub(crate) async fn commit_from<T>(
    ctx: &Context<'_>,
    kind: &str,
    mut preloaded: Option<Index>,
    mut apply: impl FnMut(&mut Index, DateTime<Utc>) -> Result<Plan<T>>,
) -> Result<T> {
    let mut uploaded = HashSet::new();
    for attempt in 0..MAX_ATTEMPTS {
        trace(|| "loading the index".into());
        let mut index = match preloaded.take() {
            Some(index) => index,
            None => Index::load(ctx.store).await?,
        };
        trace(|| "applying the change".into());
        let plan = apply(&mut index, ctx.clock.now())?;
        trace(|| "checking conditional writes".into());
        if ensure_locking(ctx, &index).await? && plan.changed {
            index::set_setting(index.conn(), LOCKING_SETTING, "verified")?;
        }
        let written = async {
            trace(|| format!("uploading {} assets", plan.assets.len()));
            upload_assets(ctx.store, &plan.assets, &mut uploaded).await?;
            trace(|| format!("writing {} immutable objects", plan.objects.len()));
            for o in &plan.objects {
                ctx.store.put(&o.key, Body::Bytes(o.bytes.clone()), &o.meta).await?;
            }
            trace(|| "writing the index".into());
            if plan.changed {
                index.save(ctx.store).await
            } else {
                Ok(Saved::Committed(index.etag().unwrap_or_default().to_string()))
            }
        }
        .await;
        match written {
            Ok(Saved::Committed(_)) => {
                trace(|| format!("writing {} pointers", plan.pointers.len()));
                converge_pointers(ctx.store, index, &plan.pointers).await?;
                trace(|| "done".into());
                return Ok(plan.output);
            }
            Ok(Saved::Conflict) => {
                trace(|| format!("lost the race (attempt {})", attempt + 1));
                backoff(attempt).await;
                continue;
            }
            Err(e) => {
                record_failure(ctx, kind, &e).await;
                return Err(e);
            }
        }
    }
    Err(Error::Race { attempts: MAX_ATTEMPTS })
}

/// Best effort: a command that failed after it started writing says so in the index.
async fn record_failure(ctx: &Context<'_>, kind: &str, error: &Error) {
    let Ok(mut index) = Index::load(ctx.store).await else {
        return;
    };
    if index
        .record_failure(kind, &ctx.actor, ctx.clock.now(), &format!("{error:#}"))
        .is_ok()
    {
        let _ = index.save(ctx.store).await;
    }
}

/// Uploads what is not in the store yet: one HEAD per asset the index does
/// not know (the plan lists only those), none for one already uploaded by an
/// earlier attempt.
async fn upload_assets(store: &dyn Store, assets: &[AssetUpload], uploaded: &mut HashSet<String>) -> Result<()> {
    let todo: Vec<&AssetUpload> = assets.iter().filter(|a| !uploaded.contains(&a.sha256)).collect();
    // Many unknown assets (a first publish, a lost index): one listing of
    // assets/ answers for all of them in far fewer requests than a HEAD each.
    let listed: Option<HashSet<String>> = if todo.len() >= LIST_INSTEAD_OF_HEAD {
        Some(store.list("public/assets/").await?.into_iter().map(|o| o.key).collect())
    } else {
        None
    };
    let listed = &listed;
    let done: Vec<String> = stream::iter(todo)
        .map(|a| async move {
            let key = format!("public/assets/{}", a.sha256);
            let present = match listed {
                Some(keys) => keys.contains(&key),
                None => store.head(&key).await?.is_some(),
            };
            if !present {
                let meta = ObjectMeta {
                    content_type: a.content_type.clone(),
                    cache_control: IMMUTABLE_CACHE_CONTROL.into(),
                };
                store.put_file_sha256(&key, &a.path, &a.sha256, &meta).await?;
            }
            Ok::<_, Error>(a.sha256.clone())
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .try_collect()
        .await?;
    uploaded.extend(done);
    Ok(())
}

/// Writes an object unless the store already holds exactly it. Returns whether it wrote.
/// A HEAD answers where the store's etag is the MD5 of the bytes (S3);
/// otherwise the object is read back.
pub(crate) async fn write_if_different(store: &dyn Store, o: &PublicObject) -> Result<bool> {
    let same = match store.head(&o.key).await? {
        None => false,
        Some(info) => match info.holds(&o.bytes) {
            Some(same) => same,
            None => store
                .get(&o.key)
                .await?
                .is_some_and(|e| e.bytes == o.bytes && e.meta == o.meta),
        },
    };
    if same {
        return Ok(false);
    }
    store.put(&o.key, Body::Bytes(o.bytes.clone()), &o.meta).await?;
    Ok(true)
}

/// The current view of some pointers.
pub(crate) fn pointer_view(index: &Index, pointer: &PointerId) -> Result<PointerView> {
    Ok(PointerView {
        pointer: pointer.clone(),
        packages: index.pointer_packages(pointer)?,
        directive: index.pointer_directive(pointer)?,
    })
}

/// Every pointer's view.
pub(crate) fn full_view(index: &Index) -> Result<Vec<PointerView>> {
    index
        .all_pointers()?
        .into_iter()
        .map(|(pointer, packages)| {
            let directive = index.pointer_directive(&pointer)?;
            Ok(PointerView {
                pointer,
                packages,
                directive,
            })
        })
        .collect()
}

async fn write_pointers(store: &dyn Store, index: &Index, pointers: &BTreeSet<PointerId>) -> Result<()> {
    for p in pointers {
        let v = pointer_view(index, p)?;
        if let Some(objs) = tree::pointer_objects(&v.pointer, &v.packages, v.directive.as_ref())? {
            // The Expo body first: it is what devices fetch; `verify` reports a
            // pair left disagreeing by a crash, and `regenerate` heals it.
            for o in objs.iter().rev() {
                write_if_different(store, o).await?;
            }
        }
    }
    Ok(())
}

/// Writes the pointers from the committed index, then re-reads the index's
/// etag: while another writer has committed since, renders them again from
/// the newer index, so the last writer always leaves them matching.
async fn converge_pointers(store: &dyn Store, mut index: Index, pointers: &BTreeSet<PointerId>) -> Result<()> {
    for _ in 0..MAX_ATTEMPTS * 4 {
        write_pointers(store, &index, pointers).await?;
        let now = store.etag(INDEX_KEY).await?;
        if now.as_deref() == index.etag() {
            return Ok(());
        }
        index = Index::load(store).await?;
    }
    Err(Error::Race {
        attempts: MAX_ATTEMPTS * 4,
    })
}

/// Signs a pointer's noUpdateAvailable directive once, when it has packages but none live.
pub(crate) fn ensure_no_update_directive(conn: &Connection, signer: &Signer, pointer: &PointerId) -> Result<()> {
    let packages = index::pointer_packages(conn, pointer)?;
    if packages.is_empty() || index::live::live_package(&packages).is_some() {
        return Ok(());
    }
    if index::pointer_directive(conn, pointer)?.is_some() {
        return Ok(());
    }
    let payload = tree::no_update_payload(pointer);
    let signatures = signer.sign_payload(&payload);
    let body_sha256 = index::sha256_hex(&tree::signed_pair(&payload, &signatures).body);
    index::put_pointer_directive(
        conn,
        pointer,
        &StoredDirective {
            signatures,
            body_sha256,
        },
    )
}

/// Signs and records a new package; returns it with its immutable objects.
pub(crate) fn stamp(conn: &Connection, signer: &Signer, mut p: Package) -> Result<(Package, [PublicObject; 2])> {
    let payload = tree::package_payload(&p);
    p.signatures = signer.sign_payload(&payload);
    p.body_sha256 = index::sha256_hex(&tree::signed_pair(&payload, &p.signatures).body);
    p.id = index::insert_package(conn, &p)?;
    let objects = tree::package_objects(&p)?;
    Ok((p, objects))
}

/// The base URL recorded in the index, for commands that make new manifests.
pub(crate) fn recorded_base_url(conn: &Connection) -> Result<String> {
    index::get_setting(conn, BASE_URL_SETTING)?
        .ok_or_else(|| Error::IndexContent("the index records no base URL; publish once with --base-url".into()))
}

/// Settings key of the public base URL.
pub const BASE_URL_SETTING: &str = "base_url";
