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

# The edge runtimes of the staged-rollout rule (tests/it/edge.rs):
#   - nginx with njs, from Debian's packages (nginx-light, libnginx-mod-http-js);
#   - workerd 1.20261117.1 (Cloudflare's Workers runtime), from the npm registry;
#   - Node.js runs the Lambda@Edge function (the machine's own).
if [ -x /usr/sbin/nginx ] && [ -f /usr/lib/nginx/modules/ngx_http_js_module.so ]; then
  echo "nginx + njs: already installed ($(/usr/sbin/nginx -v 2>&1); skipping install)"
elif command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "nginx + njs: installing nginx-light and libnginx-mod-http-js with apt-get"
  apt-get install -y -q nginx-light libnginx-mod-http-js >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q nginx-light libnginx-mod-http-js >/dev/null; }
else
  echo "nginx + njs: not installed, and this is not root on a Debian machine: install nginx and libnginx-mod-http-js, or tests/it/edge.rs fails" >&2
fi

workerd_version=1.20261117.1
if [ -x "$tools/edge/node_modules/@cloudflare/workerd-linux-64/bin/workerd" ] \
  && [ "$(node -p "require('$tools/edge/node_modules/workerd/package.json').version" 2>/dev/null)" = "$workerd_version" ]; then
  echo "workerd $workerd_version: already installed in $tools/edge (skipping install)"
else
  echo "workerd $workerd_version: installing into $tools/edge with npm"
  rm -rf "$tools/edge"
  mkdir -p "$tools/edge"
  (cd "$tools/edge" && npm install --silent --no-audit --no-fund --no-save "workerd@$workerd_version" >/dev/null)
fi

# Colin Percival's bsdiff/bspatch 4.3 (Debian's bsdiff package): the reference
# the patch tests check otapub's BSDIFF40 patches against (tests/it/patch_format.rs).
if [ -x /usr/bin/bspatch ] && [ -x /usr/bin/bsdiff ]; then
  echo "bsdiff 4.3: already installed (skipping install)"
elif command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "bsdiff 4.3: installing Debian's bsdiff package with apt-get"
  apt-get install -y -q bsdiff >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q bsdiff >/dev/null; }
else
  echo "bsdiff 4.3: not installed, and this is not root on a Debian machine: install bsdiff, or tests/it/patch_format.rs fails" >&2
fi

# Headless Chromium for the operators' page (tests/it/report.rs): Debian's
# chromium, driven by playwright-core 1.64.1 from the npm registry (no browser
# download: it uses /usr/bin/chromium).
if [ -x /usr/bin/chromium ]; then
  echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null); skipping install)"
elif command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "chromium: installing Debian's chromium package with apt-get (about a minute)"
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
else
  echo "chromium: not installed, and this is not root on a Debian machine: install chromium, or tests/it/report.rs fails" >&2
fi
playwright_version=1.64.1
if [ "$(node -p "require('$tools/browser/node_modules/playwright-core/package.json').version" 2>/dev/null)" = "$playwright_version" ]; then
  echo "playwright-core $playwright_version: already installed in $tools/browser (skipping install)"
else
  echo "playwright-core $playwright_version: installing into $tools/browser with npm"
  rm -rf "$tools/browser"
  mkdir -p "$tools/browser"
  (cd "$tools/browser" && npm install --silent --no-audit --no-fund --no-save "playwright-core@$playwright_version" >/dev/null)
fi

# Expo's config-plugin library, to apply npm/otapub/app.plugin.js as
# `expo prebuild` does (tests/it/expo_plugin.rs).
plugins_version=9.1.7
if [ "$(node -p "require('$tools/expo-plugins/node_modules/@expo/config-plugins/package.json').version" 2>/dev/null)" = "$plugins_version" ]; then
  echo "@expo/config-plugins $plugins_version: already installed in $tools/expo-plugins (skipping install)"
else
  echo "@expo/config-plugins $plugins_version: installing into $tools/expo-plugins with npm"
  rm -rf "$tools/expo-plugins"
  mkdir -p "$tools/expo-plugins"
  (cd "$tools/expo-plugins" && npm install --silent --no-audit --no-fund --no-save "@expo/config-plugins@$plugins_version" >/dev/null)
fi

# Python's `cryptography` 51.0.1, from PyPI: a strict DER parser that is not
# otapub's (Rust's x509-parser accepts what DER forbids), to check that every
# certificate otapub writes re-encodes byte for byte (tests/it/keys.rs).
cryptography_version=51.0.1
if [ -x "$tools/pyx509/bin/python" ] && "$tools/pyx509/bin/python" -c "import cryptography, sys; sys.exit(cryptography.__version__ != '$cryptography_version')" 2>/dev/null; then
  echo "cryptography $cryptography_version: already installed in $tools/pyx509 (skipping install)"
else
  echo "cryptography $cryptography_version: installing into $tools/pyx509"
  rm -rf "$tools/pyx509"
  python3 -m venv "$tools/pyx509"
  "$tools/pyx509/bin/pip" install --quiet --disable-pip-version-check "cryptography==$cryptography_version"
fi

# A real Expo app from Expo's published template, for the project tests
# (tests/it/expo_project.rs): create-expo-app 5.0.0 with expo-template-default
# 57.0.28 (Expo SDK 57), plus expo-updates; every dependency pinned by
# tests/data/expo-app/package-lock.json and installed once with `npm ci`.
# The tests copy it; only this first run pays for the install.
repo="$(cd "$(dirname "$0")/.." && pwd)"
expo_app="$tools/expo-app-sdk57"
expo_sum=$(cat "$repo/tests/data/expo-app/package.json" "$repo/tests/data/expo-app/package-lock.json" | sha256sum | cut -c1-16)
if [ -f "$expo_app.ready" ] && [ "$(cat "$expo_app.ready")" = "$expo_sum" ] && [ -d "$expo_app/node_modules/expo-updates" ]; then
  echo "Expo app (SDK 57 template): already in $expo_app (skipping install)"
else
  echo "Expo app (SDK 57 template): creating $expo_app with create-expo-app and npm ci (about two minutes)"
  rm -rf "$expo_app" "$expo_app.ready" "$expo_app.tmp"
  mkdir -p "$expo_app.tmp"
  (cd "$expo_app.tmp" && npx --yes create-expo-app@5.0.0 app --template expo-template-default@57.0.28 --no-install >/dev/null)
  cp "$repo/tests/data/expo-app/package.json" "$repo/tests/data/expo-app/package-lock.json" "$expo_app.tmp/app/"
  (cd "$expo_app.tmp/app" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  (cd "$expo_app.tmp/app" && { [ -d .git ] || git init -q; } && git add -A \
    && git -c user.name=otapub -c user.email=tests@otapub.invalid commit -qm "create-expo-app, expo-template-default 57.0.28")
  mv "$expo_app.tmp/app" "$expo_app"
  rm -rf "$expo_app.tmp"
  echo "$expo_sum" > "$expo_app.ready"
fi

# A Hermes VM for Linux whose compiler and VM come from one Hermes release
# (hermes-engine-cli 0.12.0 from the npm registry: hermes and hermesc,
# bytecode version 89): tests/it/delta_bytecode.rs runs bytecode compiled with
# and without -base-bytecode in it and compares what the programs print.
hermes_cli_version=0.12.0
if [ -x "$tools/hermes-engine-cli/node_modules/hermes-engine-cli/linux64-bin/hermes" ] \
  && [ "$(node -p "require('$tools/hermes-engine-cli/node_modules/hermes-engine-cli/package.json').version" 2>/dev/null)" = "$hermes_cli_version" ]; then
  echo "hermes-engine-cli $hermes_cli_version: already installed in $tools/hermes-engine-cli (skipping install)"
else
  echo "hermes-engine-cli $hermes_cli_version: installing into $tools/hermes-engine-cli with npm"
  rm -rf "$tools/hermes-engine-cli"
  mkdir -p "$tools/hermes-engine-cli"
  (cd "$tools/hermes-engine-cli" && npm install --silent --no-audit --no-fund --no-save "hermes-engine-cli@$hermes_cli_version" >/dev/null)
fi
