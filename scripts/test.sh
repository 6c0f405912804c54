#!/usr/bin/env bash
# Runs every test. CI calls exactly this (through .ci/run), from a clean checkout.
# The S3 tests start real servers on 127.0.0.1: this installs them first (once).
set -euo pipefail
cd "$(dirname "$0")/.."
export OTAPUB_TOOLS_DIR="${OTAPUB_TOOLS_DIR:-$HOME/.cache/otapub}"
scripts/install-test-servers.sh

echo "== every test (S3 tests on moto; the benchmark's smoke run included)"
# The smoke run drives the example as a program; `cargo test` builds it only as a test harness.
cargo build --locked --example bench_tools
cargo test --locked --all-targets
# --all-targets leaves out the doctests: the compile_fail examples on store::Write
# (code outside the crate can neither make the write token nor write without it).
cargo test --locked --doc
echo "== the sequential S3 tests again, on s3s-fs"
# `s3::` is the s3 module's tests only (not s3_concurrent::, not s3_faults::).
OTAPUB_TEST_S3_SERVER=s3s-fs cargo test --locked --test it -- s3::
