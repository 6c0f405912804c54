// Expo config plugin: points each platform's build at its own otapub pointer,
//   <baseUrl>/<channel>/<platform>/<fingerprint>/manifest
// since one `updates.url` cannot name two fingerprints.
//
// app.json:
//   "runtimeVersion": { "policy": "fingerprint" },
//   "plugins": [["./plugins/with-otapub-updates", { "baseUrl": "https://updates.example.com", "channel": "production" }]]
//
// The fingerprints come from the environment, not from the plugin's props:
// props are part of the app config the fingerprint hashes, so putting the
// fingerprint there would change it. CI computes them first:
//   export OTAPUB_FINGERPRINT_IOS=$(npx expo-updates runtimeversion:resolve --platform ios | jq -r .runtimeVersion)
//   export OTAPUB_FINGERPRINT_ANDROID=$(npx expo-updates runtimeversion:resolve --platform android | jq -r .runtimeVersion)
const { withAndroidManifest, withExpoPlist, AndroidConfig } = require('expo/config-plugins');

const ANDROID_URL_KEY = 'expo.modules.updates.EXPO_UPDATE_URL';

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
  config = withExpoPlist(config, (cfg) => {
    const url = pointerUrl(props, 'ios');
    if (url) cfg.modResults.EXUpdatesURL = url;
    return cfg;
  });
  config = withAndroidManifest(config, (cfg) => {
    const url = pointerUrl(props, 'android');
    if (url) {
      const app = AndroidConfig.Manifest.getMainApplicationOrThrow(cfg.modResults);
      AndroidConfig.Manifest.addMetaDataItemToMainApplication(app, ANDROID_URL_KEY, url);
    }
    return cfg;
  });
  return config;
};
