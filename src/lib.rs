//! otapub publishes over-the-air updates for Expo / React Native apps as a
//! signed static tree on S3-compatible storage: no update server, manifests
//! that cannot be tampered with on the CDN, and an index that can regenerate
//! the whole tree at any time.
//!
//! Data flows one way: input → validated names ([`names`]) → an index
//! transaction ([`index`]) → [`tree::render`] → the difference written to the
//! [`store`]. Each command is one function in [`ops`].

#![deny(missing_docs)]

pub mod commit;
pub mod digest;
pub mod docs;
pub mod error;
pub mod export;
pub mod gate;
pub mod index;
pub mod insights;
pub(crate) mod litter;
pub mod manifest;
pub mod model;
pub mod names;
pub mod ops;
pub mod patch;
pub mod progress;
pub mod project;
pub mod report;
pub mod rollout;
pub mod serve;
pub mod signing;
pub mod store;
pub mod tree;

pub use error::{Error, ExitClass, Result};

/// Runs blocking work — SQLite transactions, signing, rendering — without
/// stalling the runtime's other tasks (uploads in flight): on a
/// multi-threaded runtime the worker hands its tasks to others first.
pub fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
