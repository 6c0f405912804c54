//! The core scenario of the issue, end to end through the real binary on a
//! local store, with the tree read back independently of otapub's own types.

#[test]
fn publish_ban_rollback_regenerate_verify() {
    crate::common::scenario::core_scenario(&crate::common::TestEnv::new());
}
