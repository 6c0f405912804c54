//! The one live-package rule: for one (channel, platform, fingerprint), the
//! non-banned package with the newest createdAt. Everything that needs to know
//! what a pointer serves asks here.

use super::Package;

/// The live package among the packages of one pointer, if any.
pub fn live_package(packages: &[Package]) -> Option<&Package> {
    packages.iter().filter(|p| p.ban.is_none()).max_by_key(|p| p.created_at)
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

/// The state of a pointer from all of its packages.
pub fn pointer_state(packages: &[Package]) -> PointerState<'_> {
    match live_package(packages) {
        Some(p) => PointerState::Live(p),
        None if packages.is_empty() => PointerState::Empty,
        None => PointerState::NoUpdateAvailable,
    }
}
