#!/usr/bin/env bash
# otapub's main job on the local default store: build, make a throwaway
# signing key once, publish the example export, show what is live and check it
# as a device would. Safe to run again: the same export is the same publish.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/release/otapub"
[ -f keys/dev.key ] || "$bin" keygen --out keys/dev
"$bin" publish examples/expo-blank/dist --channel production --fingerprint demo \
  --key keys/dev.key --expo-config examples/expo-blank/expoConfig.json --message "quickstart"
"$bin" status
"$bin" verify --trust keys/dev.pub
echo "The tree is in ./otapub-data/public. Serve it as the CDN would: $bin serve  (then $bin verify --url http://127.0.0.1:8080)"
