#!/usr/bin/env bash
# otapub's main job on the local default store: build, make a throwaway
# signing key once, publish the example export, show what is live and check it
# as a device would. Safe to run again: the same export is the same publish.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -t 2 ]; then
  step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
else
  step() { printf '\n==> %s\n' "$*" >&2; }
fi
bin="${CARGO_TARGET_DIR:-target}/release/otapub"
if [ -x "$bin" ]; then
  step "building otapub (release; only what changed since the last build)"
else
  step "building otapub (release): the first build compiles about 400 crates and takes a few minutes; cargo shows its progress below"
fi
cargo build --release --locked
if [ ! -f keys/dev.key ]; then
  step "making a throwaway ed25519 signing key in keys/dev.key"
  "$bin" keygen --out keys/dev
fi
step "publishing examples/expo-blank/dist to channel production (store: ./otapub-data)"
"$bin" publish examples/expo-blank/dist --channel production --fingerprint demo \
  --key keys/dev.key --expo-config examples/expo-blank/expoConfig.json --message "quickstart"
step "what each pointer serves"
"$bin" status
step "checking every pointer as a device would"
"$bin" verify --trust keys/dev.pub
step "done"
echo "The tree is in ./otapub-data/public. Serve it as the CDN would: $bin serve"
echo "  then check it over HTTP: $bin verify --url http://127.0.0.1:8080"
echo "  and open the operators' page: http://127.0.0.1:8080/_otapub/"
