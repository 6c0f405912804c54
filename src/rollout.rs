//! Staged rollouts, the pure rules (docs/format.md): which bucket a
//! device falls in, drawing a rollout's permutation of buckets, and the plan
//! a rollout starts with (the values themselves are `crate::model`'s). The edge rule in `deploy/` and `otapub serve` computes the same
//! bucket as [`bucket`].

use crate::error::{Error, ExitClass, Refusal, Result};
use crate::model::{Permutation, Strategy};

/// Default percentage added by a `linear` advance.
pub const DEFAULT_STEP: u8 = 10;
/// Default abort threshold of the health gate (failure rate).
pub const DEFAULT_ABORT_THRESHOLD: f64 = 0.05;

/// expo-eas-client's `deterministicUniformValue` of an `eas-client-id`:
/// a splitmix64 finalizer over the UUID's two big-endian halves, as a double
/// in [0, 1). `None` when the id is not a UUID.
pub fn uniform_value(client_id: &str) -> Option<f64> {
    let bytes = crate::names::uuid_bytes(client_id)?;
    let (hi, lo) = bytes.split_at(8);
    let h = u64::from_be_bytes(hi.try_into().ok()?);
    let l = u64::from_be_bytes(lo.try_into().ok()?);
    let mut z = h ^ l;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Some((z >> 11) as f64 / 9_007_199_254_740_992.0)
}

/// A device's bucket (0–99); `None` (the control) for an id that is not a UUID.
pub fn bucket(client_id: &str) -> Option<u8> {
    // value < 1, so value * 100 < 100 in doubles as well.
    uniform_value(client_id).map(|v| (v * 100.0).floor() as u8)
}

impl Permutation {
    /// A fresh random permutation, shuffled by a generator seeded from the
    /// OS. Only its result is a format (recorded in the index and the signed
    /// rollout record); devices and the edge compute the bucket, not this.
    pub fn random() -> Result<Permutation> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::try_from_rng(&mut rand::rngs::SysRng).map_err(|e| Error::Store {
            action: "draw",
            key: "a rollout's bucket permutation".into(),
            reason: format!("no OS randomness ({e})"),
        })?;
        Ok(Permutation::shuffled(&mut rng))
    }
}

/// How a rollout starts (`publish`/`promote --rollout P`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutPlan {
    /// Start percentage, 1–99.
    pub percent: u8,
    /// Strategy.
    pub strategy: Strategy,
    /// Step of a linear advance, 1–100.
    pub step: u8,
    /// Failure rate above which a gated advance aborts, 0–1.
    pub abort_threshold: f64,
}

/// A rollout plan's values that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The starting share is not 1–99.
    #[error("--rollout {percent}: give the starting share of devices in percent, 1 to 99 (100 is a plain publish)")]
    Percent {
        /// The share given.
        percent: u8,
    },
    /// The linear step is not 1–100.
    #[error("--step {step}: give the percentage a linear advance adds, 1 to 100")]
    Step {
        /// The step given.
        step: u8,
    },
    /// The abort threshold is not a rate from 0 to 1.
    #[error("--abort-threshold {abort_threshold}: give a failure rate from 0 to 1, e.g. 0.05 for 5 %")]
    AbortThreshold {
        /// The threshold given.
        abort_threshold: f64,
    },
}

impl Refusal for RolloutError {
    fn class(&self) -> ExitClass {
        match self {
            RolloutError::Percent { .. } | RolloutError::Step { .. } | RolloutError::AbortThreshold { .. } => {
                ExitClass::Input
            }
        }
    }
}

impl RolloutPlan {
    /// Checks the values a user gave.
    pub fn new(percent: u8, strategy: Strategy, step: u8, abort_threshold: f64) -> Result<RolloutPlan> {
        if !(1..=99).contains(&percent) {
            return Err(RolloutError::Percent { percent }.into());
        }
        if !(1..=100).contains(&step) {
            return Err(RolloutError::Step { step }.into());
        }
        if !(0.0..=1.0).contains(&abort_threshold) {
            return Err(RolloutError::AbortThreshold { abort_threshold }.into());
        }
        Ok(RolloutPlan {
            percent,
            strategy,
            step,
            abort_threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hyphenated_form_in_either_case_has_a_bucket() {
        let lower = "8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5f";
        assert_eq!(bucket(lower), bucket(&lower.to_uppercase()));
        assert!(bucket(lower).is_some_and(|b| b < 100));
        for bad in [
            "",
            "8c5f4b6e3b1a4f7e9d2c0a1b2c3d4e5f",
            "{8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5f}",
            "urn:uuid:8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5f",
            "8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5g",
            "8c5f4b6e-3b1a-4f7e-9d2c_0a1b2c3d4e5f",
            " 8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5",
            "8c5f4b6e-3b1a-4f7e-9d2c-0a1b2c3d4e5fé",
        ] {
            assert_eq!(bucket(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_all_zero_id_mixes_to_zero() {
        // h ^ l = 0 stays 0 through every step of the finalizer.
        assert_eq!(uniform_value("00000000-0000-0000-0000-000000000000"), Some(0.0));
        // h = l: the halves cancel.
        assert_eq!(bucket("01234567-89ab-cdef-0123-456789abcdef"), Some(0));
    }

    #[test]
    fn permutations_are_checked_and_buckets_only_grow() {
        let p = Permutation::random().unwrap();
        let again = Permutation::from_slice(p.as_slice()).unwrap();
        assert_eq!(p, again);
        let ten = p.buckets(10);
        let fifty = p.buckets(50);
        assert_eq!(ten.len(), 10);
        assert!(ten.iter().all(|b| fifty.contains(b)));
        assert_eq!(p.buckets(100), (0..100).collect::<Vec<u8>>());
        assert!(Permutation::from_slice(&[0; 100]).is_err());
        assert!(Permutation::from_slice(&[0; 99]).is_err());
        let mut out_of_range: Vec<u8> = (0..100).collect();
        out_of_range[5] = 100;
        assert!(Permutation::from_slice(&out_of_range).is_err());
    }

    #[test]
    fn strategies() {
        assert_eq!(Strategy::Linear.next(10, 10), 20);
        assert_eq!(Strategy::Linear.next(95, 10), 100);
        assert_eq!(Strategy::Canary.next(5, 10), 100);
        assert!(RolloutPlan::new(0, Strategy::Linear, 10, 0.05).is_err());
        assert!(RolloutPlan::new(100, Strategy::Linear, 10, 0.05).is_err());
        assert!(RolloutPlan::new(5, Strategy::Linear, 0, 0.05).is_err());
        assert!(RolloutPlan::new(5, Strategy::Linear, 10, 1.5).is_err());
        assert!(RolloutPlan::new(5, Strategy::Linear, 10, f64::NAN).is_err());
    }
}
