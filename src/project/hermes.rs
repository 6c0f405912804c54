//! Hermes bytecode: the project's own `hermesc`, found as Expo's export
//! finds it, run with the flags Expo's export uses, plus `-base-bytecode`
//! (hermesc's delta-optimizing mode) when a base of the same bytecode
//! version is given, so the new bytecode keeps the base's layout wherever
//! the source allows and a device's patch stays small.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, ExitClass, Refusal, Result};
use crate::names::Platform;

/// The JS engine the app config gives a platform (`ios.jsEngine`, else
/// `jsEngine`, else Hermes, Expo's default).
pub fn js_engine(config: &serde_json::Value, platform: Platform) -> &str {
    config
        .get(platform.as_str())
        .and_then(|c| c.get("jsEngine"))
        .or_else(|| config.get("jsEngine"))
        .and_then(|e| e.as_str())
        .unwrap_or("hermes")
}

/// A publish's delta bytecode: the platforms exported as JavaScript and the
/// compiler to turn them into bytecode against what their devices run.
#[derive(Debug, Clone)]
pub struct DeltaPlan {
    /// The project's hermesc.
    pub hermesc: Hermesc,
    /// The platforms on Hermes.
    pub platforms: BTreeSet<Platform>,
    /// The project's root, where its own source-map composer is found.
    pub project_root: PathBuf,
}

/// The JS of an export made with `--source-maps`, without the trailing
/// `//# sourceMappingURL=` and `//# debugId=` lines Metro adds: the exact
/// bytes the same export without source maps gives, which is what Expo's
/// own export compiles (the comments would change the bytecode's source
/// hash, and the URL names the dev server).
pub fn without_map_comments(js: &[u8]) -> &[u8] {
    // Trailing lines, from the end: blank ones and Metro's two comments;
    // cut only where a comment was (a file without them stays as it is).
    let (mut end, mut cut) = (js.len(), js.len());
    while let Some(nl) = js[..end].iter().rposition(|&b| b == b'\n') {
        let line = &js[nl + 1..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"//# sourceMappingURL=") || line.starts_with(b"//# debugId=") {
            cut = nl;
        } else if !line.is_empty() {
            break;
        }
        end = nl;
    }
    &js[..cut]
}

/// The project's Hermes compiler or Node.js that cannot be found or run,
/// or that failed.
#[derive(Debug, thiserror::Error)]
pub enum HermesError {
    /// `node` cannot be run.
    #[error("cannot run node ({reason}); install Node.js")]
    NoNode {
        /// Why.
        reason: String,
    },
    /// The project's source-map composer failed.
    #[error("composing the source maps failed ({status}): {stderr}; fix what it reports (run `npm install` in the project if a module is missing), or publish with --no-delta-bytecode")]
    ComposeFailed {
        /// How it exited.
        status: String,
        /// What it printed.
        stderr: String,
    },
    /// The project has no hermesc.
    #[error("cannot find the project's hermesc ({why}); run `npm install` in {}, or publish with --no-delta-bytecode", project.display())]
    NotFound {
        /// Where it was looked for.
        why: &'static str,
        /// The project's root.
        project: PathBuf,
    },
    /// hermesc cannot be run.
    #[error("cannot run {} ({reason}); reinstall the project's node_modules, or publish with --no-delta-bytecode", path.display())]
    CannotRun {
        /// The compiler.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// hermesc names no bytecode version.
    #[error("{} -version names no HBC bytecode version; is it a Hermes compiler? Publish with --no-delta-bytecode to skip it", path.display())]
    NoVersion {
        /// The compiler.
        path: PathBuf,
    },
    /// hermesc failed to compile the bundle.
    #[error("{} could not compile {} ({status}): {stderr}; fix the error it reports, or publish with --no-delta-bytecode", path.display(), js.display())]
    CompileFailed {
        /// The compiler.
        path: PathBuf,
        /// The bundle.
        js: PathBuf,
        /// How it exited.
        status: String,
        /// What it printed.
        stderr: String,
    },
}

impl Refusal for HermesError {
    fn class(&self) -> ExitClass {
        match self {
            HermesError::NoNode { .. }
            | HermesError::ComposeFailed { .. }
            | HermesError::NotFound { .. }
            | HermesError::CannotRun { .. }
            | HermesError::NoVersion { .. }
            | HermesError::CompileFailed { .. } => ExitClass::Input,
        }
    }
}

/// Composes Metro's source map of the JS (`metro_map`) with hermesc's map
/// of the bytecode (`hermes_map`, rewritten in place), with the project's
/// own composer — `composeSourceMaps` of `@expo/metro-config`, else of
/// `metro-source-map` — as Expo's export does: the result maps the
/// bytecode to the app's sources, for crash reporting.
pub fn compose_source_maps(project_root: &Path, metro_map: &Path, hermes_map: &Path) -> Result<()> {
    let out = Command::new("node")
        .arg("-e")
        .arg(COMPOSE_JS)
        .arg(project_root)
        .arg(metro_map)
        .arg(hermes_map)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| HermesError::NoNode { reason: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HermesError::ComposeFailed {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
        .into())
    }
}

/// `node -e COMPOSE_JS ROOT METRO_MAP HERMES_MAP`: see [`compose_source_maps`].
const COMPOSE_JS: &str = r#"
const [root, metroMap, hermesMap] = process.argv.slice(1);
const fs = require('fs'), path = require('path');
const from = [root];
try { from.push(path.dirname(require.resolve('expo/package.json', { paths: [root] }))); } catch {}
let compose;
for (const id of ['@expo/metro-config/build/serializer/sourceMap', 'metro-source-map']) {
  try { compose = require(require.resolve(id, { paths: from })).composeSourceMaps; } catch {}
  if (compose) break;
}
if (!compose) { console.error('neither @expo/metro-config nor metro-source-map is installed in ' + root); process.exit(3); }
const maps = [metroMap, hermesMap].map((p) => JSON.parse(fs.readFileSync(p, 'utf8')));
fs.writeFileSync(hermesMap, JSON.stringify(compose(maps)));
"#;

/// The first 8 bytes of every Hermes bytecode file (little-endian).
pub const HBC_MAGIC: u64 = 0x1F19_03C1_03BC_1FC6;

/// The bytecode version of a Hermes bytecode file (the `u32` after its
/// magic), or `None` when `bytes` is not one.
pub fn bytecode_version(bytes: &[u8]) -> Option<u32> {
    let magic = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    if magic != HBC_MAGIC {
        return None;
    }
    Some(u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?))
}

/// The host's folder name under `hermesc/` in react-native's packages.
fn platform_executable() -> Option<&'static str> {
    if cfg!(target_os = "macos") {
        Some("osx-bin/hermesc")
    } else if cfg!(target_os = "linux") {
        Some("linux64-bin/hermesc")
    } else if cfg!(windows) {
        Some("win64-bin/hermesc.exe")
    } else {
        None
    }
}

/// Node's resolution of `node_modules/<name>` from `from`: the first
/// `node_modules/<name>/package.json` in `from` or a folder above it.
fn resolve_package(from: &Path, name: &str) -> Option<PathBuf> {
    from.ancestors()
        .map(|d| d.join("node_modules").join(name))
        .find(|d| d.join("package.json").is_file())
}

/// A project's `hermesc`.
#[derive(Debug, Clone)]
pub struct Hermesc {
    /// The executable.
    pub path: PathBuf,
    /// The bytecode version it writes.
    pub bytecode_version: u32,
    /// What identifies this compiler and its flags: a changed compiler never
    /// reuses bytecode another one wrote.
    pub identity: String,
}

impl Hermesc {
    /// The `hermesc` the project's build uses, in the order Expo's export
    /// looks for it (`@expo/metro-config`'s exportHermes.js):
    /// `$REACT_NATIVE_OVERRIDE_HERMES_DIR/build/bin/hermesc`, a Hermes built
    /// from source under react-native, the `hermes-compiler` package
    /// (react-native 0.83+), react-native's `sdks/hermesc`.
    pub fn find(project_root: &Path) -> Result<Hermesc> {
        let missing = |why: &'static str| HermesError::NotFound {
            why,
            project: project_root.to_path_buf(),
        };
        let rn =
            resolve_package(project_root, "react-native").ok_or_else(|| missing("react-native is not installed"))?;
        let exe = platform_executable().ok_or_else(|| missing("no hermesc is built for this operating system"))?;
        let compiler_root = resolve_package(&rn, "hermes-compiler");
        let candidates = [
            std::env::var_os("REACT_NATIVE_OVERRIDE_HERMES_DIR").map(|d| PathBuf::from(d).join("build/bin/hermesc")),
            Some(rn.join("ReactAndroid/hermes-engine/build/hermes/bin/hermesc")),
            compiler_root.map(|r| r.join("hermesc").join(exe)),
            Some(rn.join("sdks/hermesc").join(exe)),
        ];
        let path = candidates
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
            .ok_or_else(|| missing("neither hermes-compiler nor react-native/sdks has one"))?;
        Hermesc::at(path)
    }

    /// The compiler at `path`, with its bytecode version (from `-version`).
    pub fn at(path: PathBuf) -> Result<Hermesc> {
        let out = Command::new(&path)
            .arg("-version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| HermesError::CannotRun {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let bytecode_version = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("HBC bytecode version:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| HermesError::NoVersion { path: path.clone() })?;
        let binary = crate::export::hash_file(&path, false)?.sha256;
        let identity = format!(
            "hermesc-sha256:{binary} hbc:{bytecode_version} flags:{}",
            FLAGS.join(" ")
        );
        Ok(Hermesc {
            path,
            bytecode_version,
            identity,
        })
    }

    /// Compiles `js` into `out` with Expo's export flags for a minified
    /// build (`-emit-binary -O`) and a source map (`out.map`), against
    /// `base` (a bytecode file of this compiler's version) when given. The
    /// same JS, base and compiler give the same bytes.
    ///
    /// hermesc runs in the JS file's folder and is given plain file names:
    /// the name it is given is written into the bytecode's debug info, and
    /// Expo's export gives a random temporary path, which makes its bytes
    /// differ on every run.
    pub fn compile(&self, js: &Path, out: &Path, base: Option<&Path>) -> Result<()> {
        let dir = js
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = |p: &Path| -> Result<PathBuf> {
            Ok(match (p.parent(), p.file_name()) {
                (Some(d), Some(n)) if d == dir => PathBuf::from(n),
                _ => std::path::absolute(p).map_err(Error::file("resolve", p.to_path_buf()))?,
            })
        };
        let mut cmd = Command::new(std::path::absolute(&self.path).map_err(Error::file("resolve", self.path.clone()))?);
        cmd.current_dir(dir)
            .arg("-emit-binary")
            .arg("-out")
            .arg(name(out)?)
            .arg(name(js)?)
            .args(FLAGS);
        if let Some(b) = base {
            cmd.arg("-base-bytecode").arg(name(b)?);
        }
        let output = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(|e| HermesError::CannotRun {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        if !output.status.success() {
            return Err(HermesError::CompileFailed {
                path: self.path.clone(),
                js: js.to_path_buf(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            }
            .into());
        }
        Ok(())
    }
}

/// The flags after `-emit-binary -out X.hbc X.js`: Expo's for a minified
/// export with source maps.
const FLAGS: &[&str] = &["-O", "-output-source-map"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_engine_per_platform_then_app_then_hermes() {
        let config = serde_json::json!({"jsEngine": "jsc", "ios": {"jsEngine": "hermes"}});
        assert_eq!(js_engine(&config, Platform::Ios), "hermes");
        assert_eq!(js_engine(&config, Platform::Android), "jsc");
        assert_eq!(js_engine(&serde_json::json!({}), Platform::Ios), "hermes");
        assert_eq!(js_engine(&serde_json::json!({"jsEngine": 3}), Platform::Ios), "hermes");
    }

    #[test]
    fn version_from_the_header_only() {
        let mut hbc = HBC_MAGIC.to_le_bytes().to_vec();
        hbc.extend(98u32.to_le_bytes());
        assert_eq!(bytecode_version(&hbc), Some(98));
        hbc.extend([0; 100]);
        assert_eq!(bytecode_version(&hbc), Some(98));
        for n in 0..12 {
            assert_eq!(bytecode_version(&hbc[..n]), None, "{n} bytes");
        }
        assert_eq!(bytecode_version(b"var __BUNDLE_START_TIME__=1;"), None);
        let mut wrong = hbc.clone();
        wrong[0] ^= 1;
        assert_eq!(bytecode_version(&wrong), None);
    }

    #[test]
    fn map_comments_are_taken_off_the_end_only() {
        let js = b"__r(0);\n//# sourceMappingURL=http://localhost:8081/a.js.map\n//# debugId=0389\n";
        assert_eq!(without_map_comments(js), b"__r(0);");
        assert_eq!(without_map_comments(b"__r(0);"), b"__r(0);");
        assert_eq!(
            without_map_comments(b"__r(0);\n\n"),
            b"__r(0);\n\n",
            "no comment, nothing cut"
        );
        let inside = b"a();\n//# sourceMappingURL=x\nb();";
        assert_eq!(without_map_comments(inside), inside);
    }
}
