//! A store wrapper for dry runs: reads go to the wrapped store, writes are
//! recorded instead of performed (the sccache wrapper pattern, like
//! [`super::FaultyStore`]). Later reads of this run see what it recorded, so
//! the commit path runs unchanged on it — its conditional writes, the index
//! written back and read again — and nothing reaches the wrapped store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Body, CondPut, Object, ObjectInfo, ObjectMeta, Precondition, Store, Write};
use crate::error::{Error, Result};

/// What this run wrote to a key, as far as its own later reads go.
#[derive(Debug, Clone)]
enum Recorded {
    Written { body: Body, meta: ObjectMeta, etag: String },
    Deleted,
}

/// A store that only pretends to write.
pub struct DryRunStore<'a> {
    inner: &'a dyn Store,
    recorded: Mutex<BTreeMap<String, Recorded>>,
    writes: AtomicU64,
}

impl<'a> DryRunStore<'a> {
    /// Wraps `inner`, which this wrapper never writes to.
    pub fn new(inner: &'a dyn Store) -> DryRunStore<'a> {
        DryRunStore {
            inner,
            recorded: Mutex::new(BTreeMap::new()),
            writes: AtomicU64::new(0),
        }
    }

    fn recorded(&self, key: &str) -> Option<Recorded> {
        self.lock().get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Recorded>> {
        self.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, key: &str, body: Body, meta: &ObjectMeta) -> String {
        let etag = format!("dry-run-{}", self.writes.fetch_add(1, Ordering::SeqCst) + 1);
        self.lock().insert(
            key.to_string(),
            Recorded::Written {
                body,
                meta: meta.clone(),
                etag: etag.clone(),
            },
        );
        etag
    }
}

fn bytes_of(body: &Body) -> Result<Vec<u8>> {
    match body {
        Body::Bytes(b) => Ok(b.clone()),
        Body::File(path) => std::fs::read(path).map_err(Error::file("read", path.clone())),
    }
}

fn info_of(key: &str, body: &Body, meta: &ObjectMeta, etag: &str) -> Result<ObjectInfo> {
    let size = match body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(path) => std::fs::metadata(path)
            .map_err(Error::file("read", path.clone()))?
            .len(),
    };
    Ok(ObjectInfo {
        key: key.to_string(),
        size,
        etag: Some(etag.to_string()),
        modified: None,
        generation: meta.generation,
    })
}

#[async_trait]
impl Store for DryRunStore<'_> {
    fn url(&self) -> String {
        self.inner.url()
    }

    fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    async fn get(&self, key: &str) -> Result<Option<Object>> {
        match self.recorded(key) {
            None => self.inner.get(key).await,
            Some(Recorded::Deleted) => Ok(None),
            Some(Recorded::Written { body, meta, etag }) => Ok(Some(Object {
                bytes: bytes_of(&body)?,
                meta,
                etag,
            })),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self.recorded(key) {
            None => self.inner.head(key).await,
            Some(Recorded::Deleted) => Ok(None),
            Some(Recorded::Written { body, meta, etag }) => Ok(Some(info_of(key, &body, &meta, &etag)?)),
        }
    }

    async fn etag(&self, key: &str) -> Result<Option<String>> {
        match self.recorded(key) {
            None => self.inner.etag(key).await,
            Some(Recorded::Deleted) => Ok(None),
            Some(Recorded::Written { etag, .. }) => Ok(Some(etag)),
        }
    }

    async fn put(&self, _: &Write, key: &str, body: Body, meta: &ObjectMeta) -> Result<()> {
        self.record(key, body, meta);
        Ok(())
    }

    async fn put_if(
        &self,
        _: &Write,
        key: &str,
        bytes: Vec<u8>,
        meta: &ObjectMeta,
        cond: Precondition,
    ) -> Result<CondPut> {
        let current = self.etag(key).await?;
        let holds = match &cond {
            Precondition::Absent => current.is_none(),
            Precondition::Matches(want) => current.as_deref() == Some(want.as_str()),
        };
        if !holds {
            return Ok(CondPut::Conflict);
        }
        Ok(CondPut::Written(self.record(key, Body::Bytes(bytes), meta)))
    }

    async fn delete(&self, _: &Write, key: &str) -> Result<()> {
        self.lock().insert(key.to_string(), Recorded::Deleted);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut listed: BTreeMap<String, ObjectInfo> = self
            .inner
            .list(prefix)
            .await?
            .into_iter()
            .map(|o| (o.key.clone(), o))
            .collect();
        let recorded: Vec<(String, Recorded)> = self
            .lock()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (key, r) in recorded {
            match r {
                Recorded::Deleted => {
                    listed.remove(&key);
                }
                Recorded::Written { body, meta, etag } => {
                    listed.insert(key.clone(), info_of(&key, &body, &meta, &etag)?);
                }
            }
        }
        Ok(listed.into_values().collect())
    }

    // put_file_sha256: the trait's own, which records the file through `put`.

    /// Removes nothing (not the inner store's leftovers either): that would be a write.
    async fn clean_up(&self) -> Result<()> {
        Ok(())
    }

    /// What is unreadable, left as it is.
    async fn unreadable_public(&self, fix: bool) -> Result<Vec<String>> {
        let _ = fix;
        self.inner.unreadable_public(false).await
    }

    /// Taken as honoured: probing writes, and a dry run writes nothing.
    async fn probe_conditional_writes(&self, _: &Write) -> Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;

    /// The token commit would lend: this test writes to the stores directly.
    const W: &Write = &Write::mint();

    #[tokio::test]
    async fn writes_are_seen_by_later_reads_and_never_reach_the_wrapped_store() {
        let dir = tempfile::tempdir().unwrap();
        let inner = FsStore::new(dir.path().to_path_buf());
        let meta = ObjectMeta::new("text/plain", "no-store");
        inner
            .put(W, "a/kept", Body::Bytes(b"kept".to_vec()), &meta)
            .await
            .unwrap();
        inner
            .put(W, "a/gone", Body::Bytes(b"gone".to_vec()), &meta)
            .await
            .unwrap();
        let dry = DryRunStore::new(&inner);
        let written = dry
            .put_if(W, "a/new", b"new".to_vec(), &meta, Precondition::Absent)
            .await
            .unwrap();
        let CondPut::Written(etag) = written else {
            panic!("an absent key is written")
        };
        assert_eq!(
            dry.put_if(W, "a/new", b"again".to_vec(), &meta, Precondition::Absent)
                .await
                .unwrap(),
            CondPut::Conflict
        );
        assert_eq!(
            dry.put_if(W, "a/new", b"newer".to_vec(), &meta, Precondition::Matches(etag))
                .await
                .unwrap(),
            CondPut::Written("dry-run-2".into())
        );
        dry.delete(W, "a/gone").await.unwrap();
        let keys: Vec<String> = dry.list("a/").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["a/kept", "a/new"]);
        assert_eq!(dry.get("a/new").await.unwrap().unwrap().bytes, b"newer");
        assert!(dry.get("a/gone").await.unwrap().is_none());
        // The wrapped store is as it was.
        let keys: Vec<String> = inner.list("a/").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["a/gone", "a/kept"]);
    }
}
