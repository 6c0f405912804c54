//! The library's error type: one variant per failed operation, carrying what
//! failed, and the exit-code class each belongs to (docs/format.md). What a
//! room refuses is that room's own enum ([`Refusal`], held as
//! [`Error::Refused`]).

use std::path::PathBuf;

use crate::names::InvalidName;

/// Result with otapub's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a failure maps to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// 2: bad input or usage; nothing was written.
    Input,
    /// 3: storage, network or environment failure.
    Environment,
    /// 4: lost a concurrent-update race after retries.
    Race,
}

impl ExitClass {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            ExitClass::Input => 2,
            ExitClass::Environment => 3,
            ExitClass::Race => 4,
        }
    }
}

/// A room's own refusal: the room's enum of what it refuses (one variant per
/// kind, carrying the data), each message saying how to fix it, and the exit
/// class of each variant. A room stands above this one, so `Error` holds its
/// refusal boxed (`Error::Refused`); the room's `class` is an exhaustive
/// `match` over its own variants.
pub trait Refusal: std::error::Error + Send + Sync + 'static {
    /// The exit-code class of this refusal.
    fn class(&self) -> ExitClass;
}

impl<R: Refusal> From<R> for Error {
    fn from(r: R) -> Error {
        Error::Refused(Box::new(r))
    }
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name (channel, version, ...) broke its rule.
    #[error(transparent)]
    Name(#[from] InvalidName),

    /// A room refused what it was given (`signing::LeafError`,
    /// `store::StoreError`, `ops::OpError`, ...); its message says how to fix it.
    #[error("{0}")]
    Refused(Box<dyn Refusal>),

    /// Command-line flags that cannot be used together; the message says how
    /// to fix it. (What a room refuses is its own enum: `Refused`.)
    #[error("{0}")]
    Usage(String),

    /// A local file could not be read or written.
    #[error("{action} {path}: {source}")]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// The store failed to read or write an object.
    #[error("store: {action} {key}: {reason}")]
    Store {
        /// What was being done ("read", "write", ...).
        action: &'static str,
        /// The object key.
        key: String,
        /// The cause.
        reason: String,
    },

    /// The index could not be read or written.
    #[error("index: {0}")]
    Index(#[from] rusqlite::Error),

    /// The S3 server ignores conditional writes.
    #[error("{store} ignores conditional writes (a second `If-None-Match: *` write of one object succeeded), so two publishers at once could silently lose each other's work; use a server that honours them (AWS S3, Cloudflare R2, MinIO), or pass --unsafe-no-locking if only one writer ever runs")]
    NoLocking {
        /// The store's URL.
        store: String,
    },

    /// A storage failure before the commit point: nothing was committed.
    #[error("{source:#}\nnothing was committed: running the command again is safe")]
    BeforeCommit {
        /// What failed.
        source: Box<Error>,
    },

    /// The index write failed in a way that does not say whether it landed.
    #[error("{source:#}\nthe index write may or may not have landed: run the same command again with --operation-id {operation_id} to finish it without applying it twice")]
    MaybeCommitted {
        /// The invocation's operation id.
        operation_id: String,
        /// What failed.
        source: Box<Error>,
    },

    /// The change is committed, but writing the pointers failed.
    #[error("{source:#}\ncommitted; the pointers are not all written yet: run `otapub regenerate`")]
    AfterCommit {
        /// What failed.
        source: Box<Error>,
    },

    /// A gc kept its lease on the store far longer than a gc takes.
    #[error("`otapub gc` (operation {operation}, by {actor}) has held the store for over 10 minutes; if it died, run `otapub gc` again once its lease has ended (see `otapub log`), then run this command again")]
    Leased {
        /// The gc's operation id.
        operation: String,
        /// Who ran it.
        actor: String,
    },

    /// Other writers kept committing first.
    #[error("lost the race to update the index {attempts} times in a row: other writers kept committing first; run the command again")]
    Race {
        /// How many times the commit was tried.
        attempts: u32,
    },
}

impl Error {
    /// The exit-code class of this error.
    pub fn class(&self) -> ExitClass {
        match self {
            Error::Refused(r) => r.class(),
            Error::Name(_) | Error::Usage(_) => ExitClass::Input,
            Error::File { .. }
            | Error::Store { .. }
            | Error::Index(_)
            | Error::NoLocking { .. }
            | Error::BeforeCommit { .. }
            | Error::MaybeCommitted { .. }
            | Error::AfterCommit { .. } => ExitClass::Environment,
            Error::Race { .. } | Error::Leased { .. } => ExitClass::Race,
        }
    }

    /// Marks a failure after the commit point.
    pub fn after_commit(self) -> Error {
        match self {
            Error::AfterCommit { .. } => self,
            e => Error::AfterCommit { source: Box::new(e) },
        }
    }

    /// Marks a storage failure before the commit point (bad input and races
    /// keep their own messages).
    pub fn before_commit(self) -> Error {
        match self {
            Error::File { .. } | Error::Store { .. } | Error::Index(_) => {
                Error::BeforeCommit { source: Box::new(self) }
            }
            e => e,
        }
    }

    /// A usage error with a message that says how to fix it.
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    /// The room's refusal this error is, if it is one of type `R`.
    pub fn refusal<R: Refusal>(&self) -> Option<&R> {
        match self {
            Error::Refused(r) => (r.as_ref() as &dyn std::error::Error).downcast_ref::<R>(),
            _ => None,
        }
    }

    pub(crate) fn file(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::File { action, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::CommitError;
    use crate::export::ExportError;
    use crate::gate::GateError;
    use crate::index::IndexError;
    use crate::insights::IngestError;
    use crate::names::{Channel, Platform, PointerId};
    use crate::ops::OpError;
    use crate::patch::PolicyError;
    use crate::project::app_json::AppJsonError;
    use crate::project::hermes::HermesError;
    use crate::project::init::InitError;
    use crate::project::ProjectError;
    use crate::report::TemplateError;
    use crate::rollout::RolloutError;
    use crate::serve::ServeError;
    use crate::signing::{KeyError, LeafError};
    use crate::store::StoreError;
    use crate::tree::RenderError;

    fn io() -> std::io::Error {
        std::io::Error::other("boom")
    }

    fn pointer() -> PointerId {
        PointerId {
            channel: "production".parse().unwrap(),
            platform: Platform::Ios,
            fingerprint: "1.0.0".parse().unwrap(),
        }
    }

    /// One value of each variant of `Error`, and of each room's refusal
    /// (one of each class where a room has several), with the class
    /// docs/format.md gives it: a variant mapped to the wrong exit code fails.
    #[test]
    fn every_variant_has_its_exit_class() {
        use ExitClass::{Environment, Input, Race};
        let store = || Error::Store {
            action: "read",
            key: "k".into(),
            reason: "r".into(),
        };
        let cases: Vec<(Error, ExitClass)> = vec![
            (Error::from("".parse::<Channel>().unwrap_err()), Input),
            (Error::usage("give it once"), Input),
            (Error::file("read", "f")(io()), Environment),
            (store(), Environment),
            (Error::Index(rusqlite::Error::QueryReturnedNoRows), Environment),
            (Error::NoLocking { store: "s3://b".into() }, Environment),
            (store().before_commit(), Environment),
            (
                Error::MaybeCommitted {
                    operation_id: "op".into(),
                    source: Box::new(store()),
                },
                Environment,
            ),
            (store().after_commit(), Environment),
            (
                Error::Leased {
                    operation: "op".into(),
                    actor: "ci".into(),
                },
                Race,
            ),
            (Error::Race { attempts: 5 }, Race),
            // The rooms' refusals, bottom floor up.
            (RolloutError::Step { step: 0 }.into(), Input),
            (LeafError::Days { days: 0 }.into(), Input),
            (KeyError::NoSigningKey.into(), Input),
            (
                IngestError::Unlistable {
                    path: "logs".into(),
                    error: io(),
                }
                .into(),
                Input,
            ),
            (IndexError::Empty.into(), Environment),
            (ExportError::NotADirectory { dir: "dist".into() }.into(), Input),
            (StoreError::Empty.into(), Input),
            (ProjectError::NoExpoUpdates.into(), Input),
            (HermesError::NoVersion { path: "hermesc".into() }.into(), Input),
            (InitError::NoExpoUpdates.into(), Input),
            (AppJsonError::ExpoNotObject.into(), Input),
            (RenderError::NoDirective { pointer: pointer() }.into(), Environment),
            (PolicyError::Bases { bases: 21 }.into(), Input),
            (
                GateError::CommandFailed {
                    cmd: "false".into(),
                    status: "exit status: 1".into(),
                }
                .into(),
                Environment,
            ),
            (
                GateError::NoHeaders {
                    format: "cloudfront".into(),
                }
                .into(),
                Input,
            ),
            (CommitError::ResultUnreadable { reason: "r".into() }.into(), Environment),
            (CommitError::SeedNotNew.into(), Input),
            (OpError::NoRecordedBaseUrl.into(), Environment),
            (OpError::BlankBanReason.into(), Input),
            (TemplateError::Json { reason: "r".into() }.into(), Environment),
            (TemplateError::NoPage { reason: "r".into() }.into(), Input),
            (
                ServeError::Listen {
                    addr: "127.0.0.1:1".parse().unwrap(),
                    reason: "r".into(),
                }
                .into(),
                Input,
            ),
        ];
        for (e, class) in &cases {
            assert_eq!(e.class(), *class, "{e:?}");
        }
        assert_eq!(
            cases
                .iter()
                .map(|(_, c)| c.code())
                .collect::<std::collections::BTreeSet<_>>(),
            [2, 3, 4].into()
        );
    }

    /// A room's refusal keeps its message and can be told apart again.
    #[test]
    fn a_refusal_reads_as_its_room_wrote_it() {
        let e = Error::from(StoreError::Empty);
        assert_eq!(
            e.to_string(),
            "--store is empty; give a directory such as ./otapub-data"
        );
        assert!(matches!(e.refusal::<StoreError>(), Some(StoreError::Empty)));
        assert!(e.refusal::<OpError>().is_none());
    }
}
