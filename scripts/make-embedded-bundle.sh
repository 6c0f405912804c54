#!/usr/bin/env bash
# Makes the launch asset a release build of the first successive export's app
# embeds (tests/data/expo-successive/PROVENANCE.txt): the same template and
# versions, `npx expo export:embed` as Xcode's "Bundle React Native code and
# images" phase runs it for a Release build of a Hermes app (dev false,
# minified, Hermes transform profile), then the project's Hermes compiler
# with -O as react-native-xcode.sh does. Writes DIR/embedded-ios.hbc.
#   scripts/make-embedded-bundle.sh DIR      (needs Node.js 20 and the npm registry; ~3 minutes)
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
mkdir -p build
entry="$(node -e 'console.log(require("./package.json").main || "index.js")')"
EXPO_OFFLINE=1 npx expo export:embed --platform ios --dev false --minify true --unstable-transform-profile hermes \
  --entry-file "$entry" --bundle-output build/main.jsbundle --assets-dest build
hermesc="$(find node_modules -path '*linux64-bin/hermesc' -type f | head -1)"
[ -x "$hermesc" ] || { echo "no linux64 hermesc under node_modules" >&2; exit 1; }
"$hermesc" -emit-binary -O -max-diagnostic-width=80 -out build/main.hbc build/main.jsbundle
mkdir -p "$out"
cp build/main.hbc "$out/embedded-ios.hbc"
echo "wrote $out/embedded-ios.hbc (hermesc $("$hermesc" -version | grep -o 'Hermes release version: [^ ]*' || true))"
