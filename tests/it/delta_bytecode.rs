//! Delta bytecode: `otapub publish` in a Hermes project compiles each
//! update's bytecode with the project's own hermesc against what the
//! pointer's devices run (`-base-bytecode`). In a copy of the real Expo SDK
//! 57 template app (tests/it/expo_project.rs): the first publish compiles
//! normally (no base) and gives exactly the bytes of the project's hermesc
//! run by hand; a changed screen compiles against the served update, keeps
//! its bytecode version, and the patch a device downloads (applied with the
//! reference `bspatch`) rebuilds it byte for byte, smaller than the patch of
//! a normal compile; a publish with no change is no new update. In a Hermes
//! VM whose compiler and VM come from one release (hermes-engine-cli
//! 0.12.0), a program and the app's own bundles (both platforms, before and
//! after the change) compiled with and without a base print the same.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::expo::{copy_app, ok, template_app};
use crate::common::{sha256_hex, tools_dir};
use serde_json::Value;

/// hermes-engine-cli's VM and compiler, or why the test cannot run.
fn hermes_vm() -> Option<(PathBuf, PathBuf)> {
    let bin = tools_dir().join("hermes-engine-cli/node_modules/hermes-engine-cli/linux64-bin");
    if bin.join("hermes").is_file() && bin.join("hermesc").is_file() {
        Some((bin.join("hermes"), bin.join("hermesc")))
    } else {
        eprintln!(
            "SKIPPED: no Hermes VM at {} — scripts/install-test-servers.sh installs hermes-engine-cli",
            bin.display()
        );
        None
    }
}

fn otapub(app: &Path, args: &[&str]) -> Output {
    ok(app, Path::new(env!("CARGO_BIN_EXE_otapub")), args)
}

fn git(app: &Path, args: &[&str]) {
    let mut all = vec!["-c", "user.name=otapub", "-c", "user.email=tests@otapub.invalid"];
    all.extend(args);
    ok(app, Path::new("git"), &all);
}

/// The template app after `otapub init`. The config plugin entry init adds
/// is taken out again: it needs otapub's npm package installed, which
/// tests/it/expo_project.rs covers, and a publish does not use it.
fn initialised_app(tmp: &Path) -> Option<PathBuf> {
    let template = template_app()?;
    let app = tmp.join("app");
    copy_app(&template, &app);
    otapub(&app, &["init", "--no-install"]);
    let path = app.join("app.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["expo"]["plugins"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p.get(0).and_then(Value::as_str) != Some("otapub"));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-qm", "otapub init"]);
    Some(app)
}

/// The project's hermesc (the path Expo's export takes for react-native 0.83+).
fn project_hermesc(app: &Path) -> PathBuf {
    app.join("node_modules/hermes-compiler/hermesc/linux64-bin/hermesc")
}

/// The bytecode version in an HBC header.
fn hbc_version(bytes: &[u8]) -> u32 {
    assert_eq!(
        &bytes[..8],
        &0x1F19_03C1_03BC_1FC6u64.to_le_bytes(),
        "Hermes bytecode magic"
    );
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

/// One platform's export after a publish: (the JS, the published bytecode's path).
fn exported(app: &Path, platform: &str) -> (PathBuf, PathBuf) {
    let dir = app.join(".otapub/export").join(platform);
    let meta: Value = serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    let bundle = dir.join(meta["fileMetadata"][platform]["bundle"].as_str().unwrap());
    assert_eq!(bundle.extension().unwrap(), "hbc", "metadata.json names the bytecode");
    (bundle.with_extension("js"), bundle)
}

/// Reads a published launch asset back from the store by its SHA-256.
fn stored_asset(app: &Path, bytes: &[u8]) -> Vec<u8> {
    std::fs::read(app.join("otapub-data/public/assets").join(sha256_hex(bytes))).expect("the bundle is in the store")
}

/// Compiles a copy of `js` in `dir`, under the names the export gives the
/// JS and the bytecode, with Expo's flags and no base.
fn compile_by_hand(hermesc: &Path, dir: &Path, js: &Path, hbc: &Path) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let js_name = js.file_name().unwrap().to_str().unwrap();
    let hbc_name = hbc.file_name().unwrap().to_str().unwrap();
    std::fs::copy(js, dir.join(js_name)).unwrap();
    ok(
        dir,
        hermesc,
        &["-emit-binary", "-out", hbc_name, js_name, "-O", "-output-source-map"],
    );
    std::fs::read(dir.join(hbc_name)).unwrap()
}

fn publish(app: &Path) -> (Value, String) {
    let out = otapub(app, &["publish", "--json"]);
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ids(published: &Value) -> std::collections::BTreeMap<String, (String, bool)> {
    published["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_string(),
                (p["id"].as_str().unwrap().to_string(), p["new"].as_bool().unwrap()),
            )
        })
        .collect()
}

/// `bsdiff OLD NEW` with the reference tool: the patch's size.
fn bsdiff_size(dir: &Path, old: &[u8], new: &[u8]) -> u64 {
    let (o, n, p) = (dir.join("bsd.old"), dir.join("bsd.new"), dir.join("bsd.patch"));
    std::fs::write(&o, old).unwrap();
    std::fs::write(&n, new).unwrap();
    ok(
        dir,
        Path::new("/usr/bin/bsdiff"),
        &[o.to_str().unwrap(), n.to_str().unwrap(), p.to_str().unwrap()],
    );
    std::fs::metadata(&p).unwrap().len()
}

/// `bspatch OLD NEW PATCH` with the reference tool: the rebuilt file.
fn bspatch(dir: &Path, old: &[u8], patch: &[u8]) -> Vec<u8> {
    let (o, n, p) = (dir.join("bsp.old"), dir.join("bsp.new"), dir.join("bsp.patch"));
    std::fs::write(&o, old).unwrap();
    std::fs::write(&p, patch).unwrap();
    ok(
        dir,
        Path::new("/usr/bin/bspatch"),
        &[o.to_str().unwrap(), n.to_str().unwrap(), p.to_str().unwrap()],
    );
    std::fs::read(&n).unwrap()
}

#[test]
fn a_template_app_publishes_bytecode_compiled_against_what_devices_run() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(app) = initialised_app(tmp.path()) else { return };
    let hermesc = project_hermesc(&app);
    let version_line = String::from_utf8(ok(&app, &hermesc, &["-version"]).stdout).unwrap();
    let compiler_version: u32 = version_line
        .lines()
        .find_map(|l| l.trim().strip_prefix("HBC bytecode version:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // The first publish: nothing served, nothing embedded — a normal compile.
    let (first, stderr) = publish(&app);
    for platform in ["ios", "android"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("{platform}: ")) && l.ends_with("compiled without a base")),
            "{platform}: {stderr}"
        );
    }
    let first_ids = ids(&first);
    assert_eq!(first_ids.len(), 2);
    let mut v1 = std::collections::BTreeMap::new();
    for platform in ["ios", "android"] {
        let (js, hbc) = exported(&app, platform);
        let published = stored_asset(&app, &std::fs::read(&hbc).unwrap());
        assert_eq!(
            hbc_version(&published),
            compiler_version,
            "{platform}: the project's hermesc's bytecode version"
        );
        // The source map beside the export maps the bytecode to the app's
        // own sources: hermesc's map composed with Metro's, as Expo does.
        let map: Value = serde_json::from_slice(&std::fs::read(hbc.with_extension("hbc.map")).unwrap()).unwrap();
        assert!(
            map["sources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s.as_str().unwrap_or_default().ends_with("src/app/index.tsx")),
            "{platform}: the map names the app's sources"
        );
        assert!(
            map.get("x_hermes_function_offsets").is_some(),
            "{platform}: hermesc's function offsets are kept"
        );
        assert!(
            !std::fs::read_to_string(&js).unwrap().contains("//# sourceMappingURL="),
            "{platform}: the JS compiled is the export's without Metro's map comments"
        );
        // The project's hermesc run by hand with Expo's flags on a copy of
        // the JS under the same names (they are in the debug info): the
        // same bytes (the compile is deterministic, and is Expo's own on
        // the JS Expo's export feeds hermesc).
        let by_hand = compile_by_hand(&hermesc, &tmp.path().join(format!("{platform}-v1")), &js, &hbc);
        assert_eq!(
            sha256_hex(&by_hand),
            sha256_hex(&published),
            "{platform}: a plain compile"
        );
        v1.insert(platform, published);
        std::fs::copy(&js, tmp.path().join(format!("{platform}-v1.js"))).unwrap();
    }

    // A changed screen: compiled against the served update.
    let screen = app.join("src/app/index.tsx");
    let text = std::fs::read_to_string(&screen).unwrap();
    let row = r#"<HintRow title="Dev tools" hint={getDevMenuHint()} />"#;
    assert!(text.contains(row), "the template's home screen has its Dev tools row");
    let changed = text.replacen(
        row,
        &format!("{row}\n          <HintRow title=\"Smaller updates\" hint={{<ThemedText type=\"code\">delta bytecode</ThemedText>}} />"),
        1,
    );
    std::fs::write(&screen, changed).unwrap();
    git(&app, &["commit", "-qam", "a new row on the home screen"]);
    let (second, stderr) = publish(&app);
    let second_ids = ids(&second);
    for platform in ["ios", "android"] {
        assert!(
            stderr.contains(&format!("{platform}: bytecode compiled against update")),
            "{platform}: {stderr}"
        );
        assert!(second_ids[platform].1, "{platform}: a new update");
        let (js, hbc) = exported(&app, platform);
        let v2 = stored_asset(&app, &std::fs::read(&hbc).unwrap());
        assert_eq!(
            hbc_version(&v2),
            compiler_version,
            "{platform}: same bytecode version as a normal compile"
        );
        // What a device on the first update downloads, applied with the
        // reference bspatch, rebuilds the served bundle byte for byte.
        let patch_path = app
            .join("otapub-data/public/patches")
            .join(&second_ids[platform].0)
            .join(&first_ids[platform].0);
        let patch = std::fs::read(&patch_path).unwrap_or_else(|e| panic!("{}: {e}", patch_path.display()));
        let rebuilt = bspatch(tmp.path(), &v1[platform], &patch);
        assert_eq!(
            sha256_hex(&rebuilt),
            sha256_hex(&v2),
            "{platform}: bspatch rebuilds the served bundle"
        );
        // And delta bytecode is what made it small: the patch to a normal
        // compile of the same JS is larger.
        let plain = compile_by_hand(&hermesc, &tmp.path().join(format!("{platform}-v2")), &js, &hbc);
        assert_ne!(plain, v2, "{platform}: compiled against a base, not plainly");
        let plain_patch = bsdiff_size(tmp.path(), &v1[platform], &plain);
        eprintln!(
            "{platform}: patch {} bytes with delta bytecode, {plain_patch} without (bundle {} bytes)",
            patch.len(),
            v2.len()
        );
        assert!(
            (patch.len() as u64) < plain_patch,
            "{platform}: delta patch {} vs plain {plain_patch}",
            patch.len()
        );
        the_real_bundle_runs_the_same_in_a_hermes_vm(
            &app,
            &tmp.path().join(format!("{platform}-vm")),
            &tmp.path().join(format!("{platform}-v1.js")),
            &js,
        );
    }

    // No change: the served bytecode is reused, no new update.
    let (third, stderr) = publish(&app);
    assert_eq!(ids(&third).len(), 2);
    for (platform, (id, new)) in ids(&third) {
        assert!(!new, "{platform}: an unchanged app is no new update ({stderr})");
        assert_eq!(id, second_ids[&platform].0);
        assert!(
            stderr.contains(&format!("{platform}: the JavaScript is unchanged")),
            "{stderr}"
        );
    }

    // Turned off: Expo's own export and compile, published as exported.
    let out = otapub(&app, &["publish", "--platform", "ios", "--no-delta-bytecode", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("bytecode compiled") && !stderr.contains("is reused"),
        "{stderr}"
    );
    let (js, hbc) = exported(&app, "ios");
    assert!(!js.exists(), "Expo's export compiled the bytecode itself");
    let expo_compiled = std::fs::read(&hbc).unwrap();
    // Published as is: the store holds it under its own hash (stored_asset fails otherwise).
    stored_asset(&app, &expo_compiled);
    assert_eq!(hbc_version(&expo_compiled), compiler_version);
}

#[test]
fn delta_bytecode_falls_back_to_a_plain_compile_or_the_export_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(app) = initialised_app(tmp.path()) else { return };
    let hermesc = project_hermesc(&app);

    // The pointer serves an update whose bytecode version is not the one
    // this hermesc writes (an update published before the app moved to a new
    // React Native): a base of another version cannot be used.
    let served = tmp.path().join("older-export");
    ok(
        tmp.path(),
        Path::new("cp"),
        &[
            "-a",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/expo-tabs/dist")
                .to_str()
                .unwrap(),
            served.to_str().unwrap(),
        ],
    );
    let meta: Value = serde_json::from_slice(&std::fs::read(served.join("metadata.json")).unwrap()).unwrap();
    let old_bundle = served.join(meta["fileMetadata"]["ios"]["bundle"].as_str().unwrap());
    let mut bytes = std::fs::read(&old_bundle).unwrap();
    let older = hbc_version(&bytes) - 2;
    bytes[8..12].copy_from_slice(&older.to_le_bytes());
    std::fs::write(&old_bundle, &bytes).unwrap();
    otapub(
        &app,
        &[
            "publish",
            served.to_str().unwrap(),
            "--platform",
            "ios",
            "--runtime-version",
            "1.0.0",
            "--message",
            "an update built by an older hermesc",
        ],
    );
    // And android runs JavaScriptCore: nothing to compile.
    let path = app.join("app.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["expo"]["android"]["jsEngine"] = "jsc".into();
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    git(&app, &["commit", "-qam", "android on JavaScriptCore"]);

    let (published, stderr) = publish(&app);
    let ids = ids(&published);
    assert_eq!(ids.len(), 2, "{stderr}");
    let served_version = published["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "ios")
        .and_then(|p| p["runtimeVersion"].as_str())
        .unwrap()
        .to_string();
    assert_eq!(served_version, "1.0.0", "the older update and this one share a pointer");
    assert!(
        stderr.contains(&format!(
            "is bytecode version {older}, this hermesc writes {}",
            older + 2
        )) && stderr.contains("ios: ")
            && stderr.contains("bytecode compiled without a base"),
        "ios: the fallback and its reason are said: {stderr}"
    );
    let (js, hbc) = exported(&app, "ios");
    let published_ios = stored_asset(&app, &std::fs::read(&hbc).unwrap());
    let by_hand = compile_by_hand(&hermesc, &tmp.path().join("ios-plain"), &js, &hbc);
    assert_eq!(
        sha256_hex(&by_hand),
        sha256_hex(&published_ios),
        "ios: a plain compile with Expo's flags"
    );

    // android: Expo's export of JavaScript, published as exported.
    assert!(
        stderr.contains("android: the app runs jsc, not Hermes: published as Expo exports it")
            && !stderr
                .lines()
                .any(|l| l.starts_with("android: ") && l.contains("compiled")),
        "android: nothing compiled, and said why: {stderr}"
    );
    let dir = app.join(".otapub/export/android");
    let meta: Value = serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    let bundle = std::fs::read(dir.join(meta["fileMetadata"]["android"]["bundle"].as_str().unwrap())).unwrap();
    assert_ne!(
        &bundle[..8],
        &0x1F19_03C1_03BC_1FC6u64.to_le_bytes(),
        "android: JavaScript, not bytecode"
    );
    assert_eq!(
        stored_asset(&app, &bundle),
        bundle,
        "android: the export's bundle as is"
    );
}

/// A program whose second version adds code, changes strings and moves
/// functions: compiled against the first, it must print what the normal
/// compile prints.
const PROGRAM_V1: &str = r#"
'use strict';
function Shape(n) { this.n = n; }
Shape.prototype.area = function () { return 0; };
Shape.prototype.toString = function () { return this.n + ':' + this.area().toFixed(3); };
function shape(name, area) { function S() { Shape.call(this, name); this.args = [].slice.call(arguments); } S.prototype = Object.create(Shape.prototype); S.prototype.area = function () { return area.apply(null, this.args); }; return S; }
const Circle = shape('circle', r => Math.PI * r * r);
const Rect = shape('rect', (w, h) => w * h);
function* fib(n) { let a = 0, b = 1; for (let i = 0; i < n; i++) { yield a; [a, b] = [b, a + b]; } }
const words = 'the quick brown fox jumps over the lazy dog'.split(' ');
const counts = words.reduce((m, w) => (m[w] = (m[w] || 0) + 1, m), {});
const shapes = [new Circle(1), new Rect(2, 3), new Circle(0.5)];
print(JSON.stringify(counts));
print(shapes.map(String).join(', '));
print([...fib(20)].join(' '));
print(/(\w+)@(\w+)\.com/.exec('mail: someone@example.com')[2]);
try { null.x; } catch (e) { print(e instanceof TypeError); }
"#;

const PROGRAM_V2: &str = r#"
'use strict';
function greet(name) { return `hello, ${name}!`; }
function Shape(n) { this.n = n; }
Shape.prototype.area = function () { return 0; };
Shape.prototype.toString = function () { return this.n + ':' + this.area().toFixed(3); };
function shape(name, area) { function S() { Shape.call(this, name); this.args = [].slice.call(arguments); } S.prototype = Object.create(Shape.prototype); S.prototype.area = function () { return area.apply(null, this.args); }; return S; }
const Circle = shape('circle', r => Math.PI * r * r);
const Square = shape('square', s => s * s);
const Rect = shape('rect', (w, h) => w * h);
function* fib(n) { let a = 0, b = 1; for (let i = 0; i < n; i++) { yield a; [a, b] = [b, a + b]; } }
const words = 'the quick brown fox jumps over the lazy dog and the cat'.split(' ');
const counts = words.reduce((m, w) => (m[w] = (m[w] || 0) + 1, m), {});
const shapes = [new Circle(1), new Square(4), new Rect(2, 3), new Circle(0.5)];
print(greet('delta bytecode'));
print(JSON.stringify(counts));
print(shapes.map(String).join(', '));
print([...fib(25)].join(' '));
print(/(\w+)@(\w+)\.com/.exec('mail: someone@example.com')[2]);
try { null.x; } catch (e) { print(e instanceof TypeError, e.message.length > 0); }
print(Object.keys(counts).sort().join('|'));
"#;

/// `hermesc` with Expo's flags on `dir/js`, against `base` when given: the
/// bytecode written to `dir/out`.
fn compile_in(hermesc: &Path, dir: &Path, out: &str, js: &str, base: Option<&str>) -> Vec<u8> {
    let mut args = vec!["-emit-binary", "-out", out, js, "-O"];
    if let Some(b) = base {
        args.extend(["-base-bytecode", b]);
    }
    ok(dir, hermesc, &args);
    std::fs::read(dir.join(out)).unwrap()
}

/// The app's real bundles, before and after the one-screen change, run in
/// hermes-engine-cli's VM: made runnable there by
/// tests/data/hermes-vm/prepare.js (lowered to what Hermes 0.12 compiles,
/// native side stood in for, every module required in turn and the shape of
/// its exports printed), compiled by that release's hermesc — the new one
/// plainly and against the old one's bytecode. Both print the same, module
/// for module.
fn the_real_bundle_runs_the_same_in_a_hermes_vm(app: &Path, dir: &Path, v1_js: &Path, v2_js: &Path) {
    let Some((vm, hermesc)) = hermes_vm() else { return };
    std::fs::create_dir_all(dir).unwrap();
    let prepare = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hermes-vm/prepare.js");
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    ok(
        dir,
        Path::new("node"),
        &[&arg(&prepare), &arg(app), &arg(v1_js), "v1.js", &arg(v2_js), "v2.js"],
    );
    compile_in(&hermesc, dir, "v1.hbc", "v1.js", None);
    let plain = compile_in(&hermesc, dir, "v2.hbc", "v2.js", None);
    let delta = compile_in(&hermesc, dir, "v2-delta.hbc", "v2.js", Some("v1.hbc"));
    assert_ne!(plain, delta, "{}: -base-bytecode changes the layout", dir.display());
    let plain_out = ok(dir, &vm, &["v2.hbc"]);
    let delta_out = ok(dir, &vm, &["v2-delta.hbc"]);
    let printed = String::from_utf8(plain_out.stdout).unwrap();
    let summary = printed.lines().last().unwrap_or_default();
    let loaded: usize = summary
        .strip_prefix("modules loaded ")
        .and_then(|rest| rest.strip_suffix(", threw 0"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}: every module loads: {summary}", dir.display()));
    assert!(loaded > 1000, "{}: the whole app ran, {loaded} modules", dir.display());
    assert!(
        printed == String::from_utf8(delta_out.stdout).unwrap() && plain_out.stderr == delta_out.stderr,
        "{}: compiled against a base, the bundle prints what its plain compile prints",
        dir.display()
    );
    eprintln!("{}: {loaded} modules print the same both ways", dir.display());
}

#[test]
fn bytecode_compiled_against_a_base_runs_the_same_in_a_hermes_vm() {
    let Some((vm, hermesc)) = hermes_vm() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("v1.js"), PROGRAM_V1).unwrap();
    std::fs::write(dir.join("v2.js"), PROGRAM_V2).unwrap();
    let compile = |out: &str, js: &str, base: Option<&str>| compile_in(&hermesc, dir, out, js, base);
    compile("v1.hbc", "v1.js", None);
    let plain = compile("v2.hbc", "v2.js", None);
    let delta = compile("v2-delta.hbc", "v2.js", Some("v1.hbc"));
    assert_ne!(plain, delta, "-base-bytecode changes the layout");
    assert_eq!(hbc_version(&plain), hbc_version(&delta));
    assert_eq!(
        delta,
        compile("v2-delta-again.hbc", "v2.js", Some("v1.hbc")),
        "deterministic"
    );
    let plain_out = ok(dir, &vm, &["v2.hbc"]);
    let delta_out = ok(dir, &vm, &["v2-delta.hbc"]);
    let printed = String::from_utf8(plain_out.stdout).unwrap();
    assert!(
        printed.contains("hello, delta bytecode!") && printed.contains("square:16.000"),
        "{printed}"
    );
    assert_eq!(printed, String::from_utf8(delta_out.stdout).unwrap());
    assert_eq!(plain_out.stderr, delta_out.stderr);
}
