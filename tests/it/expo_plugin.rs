//! npm/otapub/app.plugin.js applied to an app config by Expo's own
//! @expo/config-plugins (from npm, installed by scripts/install-test-servers.sh),
//! in the introspection mode `expo prebuild` uses: the Expo.plist keys and
//! Android meta-data it produces are read back.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn node_modules() -> PathBuf {
    let dir = crate::common::tools_dir().join("expo-plugins/node_modules");
    assert!(
        dir.join("@expo/config-plugins").exists(),
        "@expo/config-plugins is not installed: run scripts/install-test-servers.sh"
    );
    dir
}

/// Runs the plugin with `props` and the fingerprints in the environment.
fn apply(props: &str, fingerprints: Option<(&str, &str)>) -> Result<Value, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut c = Command::new("node");
    c.arg(root.join("tests/expo_plugin/apply.js"))
        .arg(root.join("npm/otapub/app.plugin.js"))
        .arg(props)
        .env("NODE_PATH", node_modules())
        .env_remove("OTAPUB_FINGERPRINT_IOS")
        .env_remove("OTAPUB_FINGERPRINT_ANDROID");
    if let Some((ios, android)) = fingerprints {
        c.env("OTAPUB_FINGERPRINT_IOS", ios)
            .env("OTAPUB_FINGERPRINT_ANDROID", android);
    }
    let out = c.output().expect("node");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("the script prints JSON"))
}

const CHAIN_IOS: &str = "EXUpdatesCodeSigningIncludeManifestResponseCertificateChain";
const CHAIN_ANDROID: &str = "expo.modules.updates.CODE_SIGNING_INCLUDE_MANIFEST_RESPONSE_CERTIFICATE_CHAIN";

#[test]
fn the_plugin_sets_the_pointer_urls_and_the_chain_switch_natively() {
    let v = apply(
        r#"{"baseUrl": "https://updates.example.com/", "channel": "production", "certificateChain": true}"#,
        Some(("fpios", "fpandroid")),
    )
    .unwrap();
    assert_eq!(
        v["expoPlist"]["EXUpdatesURL"],
        "https://updates.example.com/production/ios/fpios/manifest"
    );
    assert_eq!(v["expoPlist"][CHAIN_IOS], true);
    let meta = &v["androidMetaData"];
    assert_eq!(
        meta["expo.modules.updates.EXPO_UPDATE_URL"],
        "https://updates.example.com/production/android/fpandroid/manifest"
    );
    assert_eq!(meta[CHAIN_ANDROID], "true");

    // Without the option, no switch; while the fingerprint is being computed, no URL either.
    let v = apply(
        r#"{"baseUrl": "https://updates.example.com", "channel": "production"}"#,
        None,
    )
    .unwrap();
    assert!(
        v["expoPlist"].get(CHAIN_IOS).is_none() && v["expoPlist"].get("EXUpdatesURL").is_none(),
        "{v}"
    );
    assert!(v["androidMetaData"].get(CHAIN_ANDROID).is_none(), "{v}");

    // Bad options say how to fix them.
    let e = apply(
        r#"{"baseUrl": "https://u.example.com", "channel": "p", "certificateChain": "yes"}"#,
        None,
    )
    .unwrap_err();
    assert!(e.contains("\"certificateChain\" is true or false"), "{e}");
    let e = apply(r#"{"channel": "p"}"#, Some(("a", "b"))).unwrap_err();
    assert!(e.contains("set both \"baseUrl\" and \"channel\""), "{e}");
}
