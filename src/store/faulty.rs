//! A store wrapper that injects faults into chosen requests, so tests can
//! stop, fail, delay, lose the response of, or crash a command at an exact
//! point of the commit protocol (the sccache wrapper pattern). It is active
//! only when `OTAPUB_FAULTS` is set — a test hook, like `OTAPUB_NOW`.
//!
//! `OTAPUB_FAULTS` holds rules separated by `;`, each `ACTION@OP:KEY#N`:
//! - ACTION: `fail` (an error instead of the request), `lost` (the request
//!   is carried out, then reported as failed — for a conditional write, as
//!   the 412 a client's retry of it would get), `kill` (the process aborts
//!   before the request, as on SIGKILL), `delay=MS`, `pause` (waits before
//!   the request until the file `$OTAPUB_FAULT_DIR/resume-I` exists, after
//!   creating `$OTAPUB_FAULT_DIR/paused-I`; I is the rule's 0-based position);
//! - OP: `get`, `head`, `etag`, `put`, `put_if`, `delete`, `list`, `write`
//!   (any of `put`, `put_if`, `delete`: a write boundary) or `*`;
//! - KEY: an exact key, or a prefix ending in `*`;
//! - N: the Nth matching request (1-based), or `*` for every one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::{Body, CondPut, Object, ObjectInfo, ObjectMeta, Precondition, Store, Write};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Fail,
    Lost,
    Kill,
    Delay(u64),
    Pause,
}

#[derive(Debug)]
struct Rule {
    action: Action,
    op: String,
    key: String,
    nth: Option<usize>,
    seen: AtomicUsize,
}

impl Rule {
    fn matches(&self, op: &str, key: &str) -> bool {
        let op_matches = match self.op.as_str() {
            "*" => true,
            "write" => matches!(op, "put" | "put_if" | "delete"),
            want => want == op,
        };
        op_matches
            && match self.key.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == self.key,
            }
    }
}

fn parse_rule(text: &str) -> Option<Rule> {
    let (action, rest) = text.split_once('@')?;
    let (op, rest) = rest.split_once(':')?;
    let (key, nth) = rest.rsplit_once('#')?;
    let action = match action {
        "fail" => Action::Fail,
        "lost" => Action::Lost,
        "kill" => Action::Kill,
        "pause" => Action::Pause,
        d => Action::Delay(d.strip_prefix("delay=")?.parse().ok()?),
    };
    let nth = if nth == "*" { None } else { Some(nth.parse().ok()?) };
    Some(Rule {
        action,
        op: op.to_string(),
        key: key.to_string(),
        nth,
        seen: AtomicUsize::new(0),
    })
}

/// A store whose chosen requests misbehave.
pub struct FaultyStore {
    inner: Box<dyn Store>,
    rules: Vec<Rule>,
    dir: PathBuf,
}

impl FaultyStore {
    /// Wraps `inner` with the rules of `spec` (see the module docs).
    pub fn new(inner: Box<dyn Store>, spec: &str, dir: PathBuf) -> Result<FaultyStore> {
        let rules = spec
            .split(';')
            .filter(|r| !r.trim().is_empty())
            .map(|r| parse_rule(r.trim()).ok_or_else(|| super::StoreError::FaultRule { rule: r.to_string() }))
            .collect::<std::result::Result<_, _>>()?;
        Ok(FaultyStore { inner, rules, dir })
    }

    /// What to do before a request: the first rule whose turn it is.
    async fn before(&self, op: &str, key: &str) -> Result<Option<Action>> {
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.matches(op, key) {
                continue;
            }
            let n = rule.seen.fetch_add(1, Ordering::SeqCst) + 1;
            if rule.nth.is_some_and(|want| want != n) {
                continue;
            }
            match &rule.action {
                Action::Fail => {
                    return Err(Error::Store {
                        action: "reach",
                        key: key.to_string(),
                        reason: format!("injected failure ({op})"),
                    })
                }
                Action::Kill => {
                    eprintln!("otapub: injected crash before {op} {key}");
                    std::process::abort();
                }
                Action::Delay(ms) => tokio::time::sleep(std::time::Duration::from_millis(*ms)).await,
                Action::Pause => pause(&self.dir, i).await,
                Action::Lost => return Ok(Some(Action::Lost)),
            }
        }
        Ok(None)
    }
}

async fn pause(dir: &Path, rule: usize) {
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(format!("paused-{rule}")), b"");
    let resume = dir.join(format!("resume-{rule}"));
    // Bounded: a test that forgets to resume does not hang forever.
    for _ in 0..6000 {
        if resume.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn lost(op: &str, key: &str) -> Error {
    Error::Store {
        action: "hear back from",
        key: key.to_string(),
        reason: format!("injected lost response ({op})"),
    }
}

impl FaultyStore {
    /// Runs `request` after the rules for (op, key) had their say; a `lost`
    /// rule lets it run, then answers with `on_lost` instead.
    async fn around<T>(
        &self,
        op: &str,
        key: &str,
        request: impl std::future::Future<Output = Result<T>>,
        on_lost: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let action = self.before(op, key).await?;
        let out = request.await?;
        if action == Some(Action::Lost) {
            return on_lost();
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn url(&self) -> String {
        self.inner.url()
    }

    fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    async fn get(&self, key: &str) -> Result<Option<Object>> {
        self.around("get", key, self.inner.get(key), || Err(lost("get", key)))
            .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.around("head", key, self.inner.head(key), || Err(lost("head", key)))
            .await
    }

    async fn etag(&self, key: &str) -> Result<Option<String>> {
        self.around("etag", key, self.inner.etag(key), || Err(lost("etag", key)))
            .await
    }

    async fn put(&self, w: &Write, key: &str, body: Body, meta: &ObjectMeta) -> Result<()> {
        self.around("put", key, self.inner.put(w, key, body, meta), || Err(lost("put", key)))
            .await
    }

    async fn put_if(
        &self,
        w: &Write,
        key: &str,
        bytes: Vec<u8>,
        meta: &ObjectMeta,
        cond: Precondition,
    ) -> Result<CondPut> {
        // A lost response to a conditional write that landed: the client's
        // retry of it is refused.
        let request = self.inner.put_if(w, key, bytes, meta, cond);
        self.around("put_if", key, request, || Ok(CondPut::Conflict)).await
    }

    async fn delete(&self, w: &Write, key: &str) -> Result<()> {
        self.around("delete", key, self.inner.delete(w, key), || Err(lost("delete", key)))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.around("list", prefix, self.inner.list(prefix), || Err(lost("list", prefix)))
            .await
    }

    async fn put_file_sha256(
        &self,
        w: &Write,
        key: &str,
        path: &Path,
        sha256: &Sha256Digest,
        meta: &ObjectMeta,
    ) -> Result<()> {
        let request = self.inner.put_file_sha256(w, key, path, sha256, meta);
        self.around("put", key, request, || Err(lost("put", key))).await
    }

    async fn clean_up(&self) -> Result<()> {
        self.inner.clean_up().await
    }

    async fn unreadable_public(&self, fix: bool) -> Result<Vec<String>> {
        self.inner.unreadable_public(fix).await
    }

    async fn probe_conditional_writes(&self, w: &Write) -> Result<bool> {
        self.inner.probe_conditional_writes(w).await
    }
}
