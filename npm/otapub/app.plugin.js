// Expo config plugin: points each platform's build at its own otapub pointer,
//   <baseUrl>/<channel>/<platform>/<fingerprint>/manifest
// since one `updates.url` cannot name two fingerprints.
//
// app.json:
//   "runtimeVersion": { "policy": "fingerprint" },
//   "plugins": [["./plugins/with-otapub-updates", { "baseUrl": "https://updates.example.com", "channel": "production" }]]
//
// With keys that rotate (a root CA embedded as updates.codeSigningCertificate,
// short-lived leaves from `otapub keys expo-leaf`, `otapub refresh`), add
// "certificateChain": true: the build then accepts the certificate_chain
// part each response carries. Expo's own plugin drops that switch from
// app.json, so this one writes it natively:
//   iOS      Expo.plist  EXUpdatesCodeSigningIncludeManifestResponseCertificateChain = true
//   Android  meta-data   expo.modules.updates.CODE_SIGNING_INCLUDE_MANIFEST_RESPONSE_CERTIFICATE_CHAIN = "true"
//
// The fingerprints come from the environment, not from the plugin's props:
// props are part of the app config the fingerprint hashes, so putting the
// fingerprint there would change it. CI computes them first:
//   export OTAPUB_FINGERPRINT_IOS=$(npx expo-updates runtimeversion:resolve --platform ios | jq -r .runtimeVersion)
//   export OTAPUB_FINGERPRINT_ANDROID=$(npx expo-updates runtimeversion:resolve --platform android | jq -r .runtimeVersion)
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
    throw new Error('with-otapub-updates: "certificateChain" is true or false');
  }
  return v;
}

function pointerUrl({ baseUrl, channel }, platform) {
  if (!baseUrl || !channel) {
    throw new Error('with-otapub-updates: set both "baseUrl" and "channel" in the plugin options');
  }
  const variable = `OTAPUB_FINGERPRINT_${platform.toUpperCase()}`;
  const fingerprint = process.env[variable];
  if (!fingerprint) {
    // Evaluating the config to compute the fingerprint itself: nothing to set yet.
    return null;
  }
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(fingerprint)) {
    throw new Error(`with-otapub-updates: ${variable}=${fingerprint} is not a valid fingerprint`);
  }
  return `${baseUrl.replace(/\/+$/, '')}/${channel}/${platform}/${fingerprint}/manifest`;
}

module.exports = function withOtapubUpdates(config, props = {}) {
  const chain = chainSwitch(props);
  config = withExpoPlist(config, (cfg) => {
    const url = pointerUrl(props, 'ios');
    if (url) cfg.modResults.EXUpdatesURL = url;
    if (chain) cfg.modResults[IOS_CHAIN_KEY] = true;
    return cfg;
  });
  config = withAndroidManifest(config, (cfg) => {
    const url = pointerUrl(props, 'android');
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
