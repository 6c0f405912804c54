//! The domain: plain, validated values every other room speaks in —
//! packages and their bans, re-stamps and content hashes, pointer
//! directives, rollouts, embedded patch bases, builds, launch-asset
//! patches, signatures, and the [`Kind`] of each operation and audit
//! event. Nothing here reads, writes, signs or renders: `index/` maps SQL
//! rows to these values, `tree.rs` renders them, `ops/` decides with them.
//! It imports only the plain values of `names.rs` and `digest.rs`.

mod asset;
mod operation;
mod package;
mod patch;
mod record;
mod rollout;
mod signatures;

pub use asset::*;
pub use operation::*;
pub use package::*;
pub use patch::*;
pub use record::*;
pub use rollout::*;
pub use signatures::*;

/// Reads back a name an enum of the model is stored as: the variant whose
/// name it is (strum's `IntoStaticStr`), else what was unknown, for the
/// damaged-index message.
fn parse_name<T: Copy + Into<&'static str> + strum::VariantArray + 'static>(s: &str, what: &str) -> Result<T, String> {
    T::VARIANTS
        .iter()
        .copied()
        .find(|v| Into::<&'static str>::into(*v) == s)
        .ok_or_else(|| format!("{what} {s:?} is unknown"))
}
