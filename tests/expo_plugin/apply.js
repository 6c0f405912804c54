// Applies npm/otapub/app.plugin.js to an app config with
// @expo/config-plugins (from npm) in introspection mode — the mods run as in
// `expo prebuild`, against the base Expo.plist and AndroidManifest.xml the
// library provides — and prints what they produce, as JSON.
//
// usage: NODE_PATH=<node_modules with @expo/config-plugins> node apply.js PLUGIN PROPS_JSON
const path = require('path');
const os = require('os');
const fs = require('fs');
const { compileModsAsync, withPlugins } = require('@expo/config-plugins');

async function main() {
  const [plugin, propsJson] = process.argv.slice(2);
  const projectRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'otapub-plugin-'));
  let config = {
    name: 'demo',
    slug: 'demo',
    ios: { bundleIdentifier: 'com.example.demo' },
    android: { package: 'com.example.demo' },
    _internal: { projectRoot },
  };
  config = withPlugins(config, [[require(path.resolve(plugin)), JSON.parse(propsJson)]]);
  config = await compileModsAsync(config, { projectRoot, introspect: true, platforms: ['ios', 'android'] });
  const results = config._internal.modResults;
  const app = results.android.manifest.manifest.application[0];
  const metaData = Object.fromEntries((app['meta-data'] || []).map((m) => [m.$['android:name'], m.$['android:value']]));
  console.log(JSON.stringify({ expoPlist: results.ios.expoPlist, androidMetaData: metaData }));
}

main().catch((e) => {
  console.error(String(e && e.message ? e.message : e));
  process.exit(1);
});
