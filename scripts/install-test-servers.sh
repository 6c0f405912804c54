#!/usr/bin/env bash
# Installs the S3-compatible servers the tests and the benchmark start on
# 127.0.0.1, once, under $OTAPUB_TOOLS_DIR (default ~/.cache/otapub):
#   - moto 5.2.5 in server mode, from PyPI: the only local server measured to get
#     conditional writes right under races;
#   - s3s-fs 0.14.1, from crates.io: checks SigV4 and writes to disk (its
#     conditional writes are not atomic under races).
set -euo pipefail
tools="${OTAPUB_TOOLS_DIR:-$HOME/.cache/otapub}"
mkdir -p "$tools"

if [ -x "$tools/moto-venv/bin/moto_server" ] && "$tools/moto-venv/bin/python" -c 'import moto, sys; sys.exit(moto.__version__ != "5.2.5")' 2>/dev/null; then
  echo "moto 5.2.5: already installed in $tools/moto-venv (skipping install)"
else
  echo "moto 5.2.5: installing into $tools/moto-venv"
  rm -rf "$tools/moto-venv"
  python3 -m venv "$tools/moto-venv"
  "$tools/moto-venv/bin/pip" install --quiet --disable-pip-version-check 'moto[s3]==5.2.5' flask flask-cors
fi

if [ -x "$tools/s3s-fs/bin/s3s-fs" ] && "$tools/s3s-fs/bin/s3s-fs" --version 2>/dev/null | grep -q '0\.14\.1'; then
  echo "s3s-fs 0.14.1: already installed in $tools/s3s-fs (skipping install)"
else
  echo "s3s-fs 0.14.1: installing into $tools/s3s-fs (about 3 minutes)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet --root "$tools/s3s-fs"
fi
