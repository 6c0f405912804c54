#!/usr/bin/env bash
# The benchmark, one command: installs what it measures against (the local S3
# servers, awscli), builds otapub in release mode, generates its own data and
# prints each figure as a ratio against its baseline; writes bench/RESULTS.md.
#   bench/run.sh            every figure, 5 runs each (about 10 minutes)
#   bench/run.sh --smoke    a few small files, one run (the test suite runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
export OTAPUB_TOOLS_DIR="${OTAPUB_TOOLS_DIR:-$HOME/.cache/otapub}"
scripts/install-test-servers.sh
exec python3 bench/run.py "$@"
