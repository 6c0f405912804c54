//! The one live-package rule: for one (channel, platform, fingerprint), the
//! non-banned package with the newest createdAt — leaving out the candidate
//! of a rollout that still runs there, which only its buckets serve, and
//! packages `gc --keep` retired (their bundles may be gone).
//! Everything that needs to know what a pointer serves asks here.

use crate::model::{Package, Rollout};

/// The live package among the packages of one pointer, if any, given the
/// pointer's latest rollout (only an active one changes the answer).
pub fn live_package<'a>(packages: &'a [Package], rollout: Option<&Rollout>) -> Option<&'a Package> {
    let candidate = rollout.filter(|r| r.state.is_active()).map(|r| &r.candidate);
    packages
        .iter()
        .filter(|p| p.ban.is_none() && p.retired.is_none() && Some(&p.version) != candidate)
        .max_by_key(|p| p.created_at)
}

/// What a pointer serves.
#[derive(Debug, Clone, Copy)]
pub enum PointerState<'a> {
    /// No package at all: the pointer has no objects.
    Empty,
    /// A live package (an update or a rollBackToEmbedded directive).
    Live(&'a Package),
    /// Packages, but none live: a `noUpdateAvailable` directive.
    NoUpdateAvailable,
}

/// The state of a pointer from all of its packages and its latest rollout.
pub fn pointer_state<'a>(packages: &'a [Package], rollout: Option<&Rollout>) -> PointerState<'a> {
    match live_package(packages, rollout) {
        Some(p) => PointerState::Live(p),
        None if packages.is_empty() => PointerState::Empty,
        None => PointerState::NoUpdateAvailable,
    }
}
