#!/usr/bin/env bash
# Makes two successive real `expo export` outputs of the blank template, a
# one-line change apart (tests/data/expo-successive/PROVENANCE.txt), into DIR,
# and embedded-ios.hbc: what a Release build of the first one's app embeds
# (`expo export:embed` as Xcode's bundle phase runs it for a Hermes app, then
# the project's hermesc -O, as react-native-xcode.sh does).
#   scripts/make-successive-exports.sh DIR      (needs Node.js 20 and the npm registry; ~3 minutes)
set -euo pipefail
out="$(realpath -m "${1:?usage: $0 DIR}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export EXPO_NO_TELEMETRY=1 CI=1
cd "$work"
npx --yes create-expo-app@latest app --template expo-template-blank@57.0.28 --no-install
cd app
node -e 'const p=require("./package.json"); p.overrides={"@expo/env":"2.4.3"}; require("fs").writeFileSync("package.json", JSON.stringify(p,null,2))'
npm install --no-audit --no-fund
EXPO_OFFLINE=1 npx expo export --platform all --output-dir dist1
mkdir -p embed
entry="$(node -e 'console.log(require("./package.json").main || "index.js")')"
EXPO_OFFLINE=1 npx expo export:embed --platform ios --dev false --minify true --unstable-transform-profile hermes \
  --entry-file "$entry" --bundle-output embed/main.jsbundle --assets-dest embed
hermesc="$(find node_modules -path '*linux64-bin/hermesc' -type f | head -1)"
[ -x "$hermesc" ] || { echo "no linux64 hermesc under node_modules" >&2; exit 1; }
"$hermesc" -emit-binary -O -max-diagnostic-width=80 -out embed/main.hbc embed/main.jsbundle
sed -i 's/Open up App.js to start working on your app!/Open up App.js to start working on your app, version two!/' App.js
grep -q "version two" App.js
EXPO_OFFLINE=1 npx expo export --platform all --output-dir dist2
EXPO_OFFLINE=1 npx expo config --type public --json > expoConfig.json
mkdir -p "$out"
cp -r dist1 dist2 expoConfig.json "$out"/
cp embed/main.hbc "$out"/embedded-ios.hbc
cp App.js "$out"/App-v2.js
echo "wrote $out"
