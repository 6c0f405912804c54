// Expo config plugin of otapub: points each platform's build at its own
// otapub pointer,
//   <baseUrl>/<channel>/<platform>/<runtime version>/manifest
// since one `updates.url` cannot name two runtime versions.
//
// app.json (`npx otapub init` writes this):
//   "plugins": [["otapub", { "baseUrl": "https://updates.example.com", "channel": "production" }]]
//
// With keys that rotate (a root CA embedded as updates.codeSigningCertificate,
// short-lived leaves from `otapub keys expo-leaf`, `otapub refresh`), add
// "certificateChain": true: the build then accepts the certificate_chain
// part each response carries. Expo's own plugin drops that switch from
// app.json, so this one writes it natively:
//   iOS      Expo.plist  EXUpdatesCodeSigningIncludeManifestResponseCertificateChain = true
//   Android  meta-data   expo.modules.updates.CODE_SIGNING_INCLUDE_MANIFEST_RESPONSE_CERTIFICATE_CHAIN = "true"
//
// The runtime version is resolved by the project's own expo-updates, as it
// does for a build (a string, or the appVersion, nativeVersion, sdkVersion or
// fingerprint policy) — for the fingerprint policy, that is the fingerprint
// `otapub publish` resolves too. It never comes from the plugin's props:
// props are part of the app config the fingerprint hashes. CI may set it
// instead (the value it resolved once for both the build and the publish):
//   OTAPUB_FINGERPRINT_IOS, OTAPUB_FINGERPRINT_ANDROID
// In an app `expo` is installed; on its own (the tests), @expo/config-plugins.
const { withAndroidManifest, withExpoPlist, AndroidConfig } = (() => {
  try {
    return require('expo/config-plugins');
  } catch {
    return require('@expo/config-plugins');
  }
})();

const ANDROID_URL_KEY = 'expo.modules.updates.EXPO_UPDATE_URL';
const IOS_CHAIN_KEY = 'EXUpdatesCodeSigningIncludeManifestResponseCertificateChain';
const ANDROID_CHAIN_KEY = 'expo.modules.updates.CODE_SIGNING_INCLUDE_MANIFEST_RESPONSE_CERTIFICATE_CHAIN';

function chainSwitch(props) {
  const v = props.certificateChain;
  if (v === undefined) return false;
  if (typeof v !== 'boolean') {
    throw new Error('otapub: "certificateChain" is true or false');
  }
  return v;
}

const RUNTIME_VERSION = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

// The runtime version a build of this project for `platform` gets.
async function runtimeVersion(projectRoot, platform) {
  const variable = `OTAPUB_FINGERPRINT_${platform.toUpperCase()}`;
  const given = process.env[variable];
  if (given) {
    if (!RUNTIME_VERSION.test(given)) {
      throw new Error(`otapub: ${variable}=${given} is not a valid runtime version`);
    }
    return given;
  }
  try {
    require.resolve('expo-updates/package.json', { paths: [projectRoot] });
  } catch {
    // No expo-updates: no build of this project takes updates.
    return null;
  }
  const at = require.resolve('expo-updates/utils/build/resolveRuntimeVersionAsync', { paths: [projectRoot] });
  const { resolveRuntimeVersionAsync } = require(at);
  const { runtimeVersion: rv } = await resolveRuntimeVersionAsync(projectRoot, platform, {}, {});
  if (rv == null) return null;
  if (!RUNTIME_VERSION.test(rv)) {
    throw new Error(
      `otapub: ${platform}'s runtime version ${JSON.stringify(rv)} cannot be a path in the update URL; ` +
        'use the appVersion or fingerprint policy, or a runtimeVersion of letters, digits, ".", "_" and "-"'
    );
  }
  return rv;
}

async function pointerUrl(props, config, platform) {
  const { baseUrl, channel } = props;
  if (!baseUrl || !channel) {
    throw new Error('otapub: set both "baseUrl" and "channel" in the plugin options');
  }
  const rv = await runtimeVersion(config.modRequest.projectRoot, platform);
  if (!rv) {
    // No runtime version: the build takes no updates (expo-updates disables them).
    return null;
  }
  return `${baseUrl.replace(/\/+$/, '')}/${channel}/${platform}/${rv}/manifest`;
}

module.exports = function withOtapubUpdates(config, props = {}) {
  const chain = chainSwitch(props);
  config = withExpoPlist(config, async (cfg) => {
    const url = await pointerUrl(props, cfg, 'ios');
    if (url) cfg.modResults.EXUpdatesURL = url;
    if (chain) cfg.modResults[IOS_CHAIN_KEY] = true;
    return cfg;
  });
  config = withAndroidManifest(config, async (cfg) => {
    const url = await pointerUrl(props, cfg, 'android');
    const app = AndroidConfig.Manifest.getMainApplicationOrThrow(cfg.modResults);
    if (url) {
      AndroidConfig.Manifest.addMetaDataItemToMainApplication(app, ANDROID_URL_KEY, url);
    }
    if (chain) {
      AndroidConfig.Manifest.addMetaDataItemToMainApplication(app, ANDROID_CHAIN_KEY, 'true');
    }
    return cfg;
  });
  return config;
};
