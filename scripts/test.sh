#!/usr/bin/env bash
# Runs every test. CI calls exactly this (through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
