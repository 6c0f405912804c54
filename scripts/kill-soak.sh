#!/usr/bin/env bash
# The SIGKILL soak of every mutating command (publish, ban, ban --rollback,
# rollback, promote, regenerate, gc, publish --rollout, rollout set, pause,
# resume, advance, complete, abort, embedded add, index rebuild): each is killed at each of
# its write boundaries and at N random instants (default 200), the tree is read
# back after every kill by an independent reader (tests/it/kill_soak.rs), the
# command is rerun to completion and `otapub check` must pass. Prints the
# counts per command. CI runs the same test with 20 random kills.
# It prints its seed first ("soak seed: S"), and again with any failure.
#   scripts/kill-soak.sh [N]        OTAPUB_SOAK_SEED=S replays a run;
#                                   OTAPUB_SOAK_ONLY="rollout set" soaks one command
set -euo pipefail
cd "$(dirname "$0")/.."
export OTAPUB_SOAK_TRIALS="${1:-200}"
cargo test --locked --test it -- kill_soak:: --nocapture 2>&1 | grep --line-buffered -v '^\s*$'
