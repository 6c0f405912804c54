//! The Expo project otapub runs in (`otapub init`, `otapub publish` with no
//! export directory): found from its directory, its app config read and
//! edited, and the project's own tools run for what they decide — the
//! export, the public app config, each platform's runtime version. otapub
//! never re-implements what `expo` and `expo-updates` compute for a build.

pub mod app_json;
pub mod hermes;
pub mod init;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, ExitClass, Refusal, Result};
use crate::names::{Fingerprint, Platform};

/// The file that holds the app config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppConfigFile {
    /// A static `app.json`, which otapub edits in place.
    Json(PathBuf),
    /// `app.config.js` / `app.config.ts`: code, which otapub does not edit.
    Dynamic(PathBuf),
}

/// An Expo project: a folder whose package.json depends on `expo`.
#[derive(Debug, Clone)]
pub struct ExpoProject {
    /// The project's root (where package.json is).
    pub root: PathBuf,
    /// Where its app config lives.
    pub app_config: AppConfigFile,
    package: serde_json::Value,
}

impl ExpoProject {
    /// The Expo project at `dir`, or a usage error saying what to do.
    pub fn find(dir: &Path) -> Result<ExpoProject> {
        let package_path = dir.join("package.json");
        let not_expo = |why: &'static str| ProjectError::NotExpo {
            dir: display_dir(dir),
            why,
        };
        let text = match std::fs::read_to_string(&package_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_expo("no package.json").into()),
            Err(e) => return Err(Error::file("read", package_path)(e)),
        };
        let package: serde_json::Value = serde_json::from_str(&text).map_err(|e| ProjectError::PackageJsonInvalid {
            path: package_path.clone(),
            reason: e.to_string(),
        })?;
        if !lists(&package, "expo") {
            return Err(not_expo("its package.json does not depend on `expo`").into());
        }
        let dynamic = ["app.config.ts", "app.config.js", "app.config.mjs", "app.config.cjs"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file());
        Ok(ExpoProject {
            root: dir.to_path_buf(),
            app_config: match dynamic {
                Some(p) => AppConfigFile::Dynamic(p),
                None => AppConfigFile::Json(dir.join("app.json")),
            },
            package,
        })
    }

    /// Whether package.json lists `name` in its dependencies or devDependencies.
    pub fn depends_on(&self, name: &str) -> bool {
        lists(&self.package, name)
    }

    /// The project's own `npx`, run in its root, never installing anything.
    fn npx(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(if cfg!(windows) { "npx.cmd" } else { "npx" });
        cmd.arg("--no-install").args(args).current_dir(&self.root);
        cmd
    }

    /// Runs `npx --no-install ARGS` and returns its standard output, or,
    /// with `show`, lets it pass to standard error (standard output stays
    /// for otapub's own `--json`); standard error always passes through.
    fn npx_run(&self, args: &[&str], show: bool) -> Result<Vec<u8>> {
        let shown = format!("npx {}", args.join(" "));
        let mut cmd = self.npx(args);
        cmd.stdin(Stdio::null()).stderr(Stdio::inherit());
        if show {
            cmd.stdout(std::io::stderr());
        }
        let out = cmd.output().map_err(|e| tool_missing(&shown, e))?;
        if !out.status.success() {
            return Err(ProjectError::ToolFailed {
                shown,
                root: self.root.clone(),
                status: out.status.to_string(),
            }
            .into());
        }
        Ok(out.stdout)
    }

    fn capture(&self, args: &[&str]) -> Result<Vec<u8>> {
        self.npx_run(args, false)
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        self.npx_run(args, true).map(drop)
    }

    /// The public app config, as `expo config --type public --json` prints
    /// it (what a build embeds, and what updates carry as `expoClient`).
    pub fn public_config(&self) -> Result<serde_json::Value> {
        let out = self.capture(&["expo", "config", "--type", "public", "--json"])?;
        serde_json::from_slice(&out).map_err(|e| ProjectError::ConfigNotJson { reason: e.to_string() }.into())
    }

    /// The runtime version a build of this project for `platform` gets, as
    /// `expo-updates` resolves it (a string, or the appVersion,
    /// nativeVersion, sdkVersion or fingerprint policy).
    pub fn runtime_version(&self, platform: Platform) -> Result<Fingerprint> {
        if !self.depends_on("expo-updates") {
            return Err(ProjectError::NoExpoUpdates.into());
        }
        let p = platform.to_string();
        let out = self.capture(&["expo-updates", "runtimeversion:resolve", "--platform", &p])?;
        let resolved: Resolved = serde_json::from_slice(&out).map_err(|e| ProjectError::ResolveUnreadable {
            platform,
            reason: e.to_string(),
        })?;
        let Some(rv) = resolved.runtime_version else {
            return Err(ProjectError::NoRuntimeVersion { platform }.into());
        };
        rv.parse().map_err(|e: crate::names::InvalidName| {
            ProjectError::BadRuntimeVersion {
                platform,
                runtime_version: rv.clone(),
                reason: e.to_string(),
            }
            .into()
        })
    }

    /// Runs the project's `expo export` for `platform` into `out`. One
    /// platform per Metro process: exporting both in one renumbers module
    /// ids between the platforms' bundles and between identical runs, so an
    /// unchanged app would publish a new update and patches would grow.
    /// `js_only` asks for the JavaScript Expo would feed hermesc
    /// (`--no-bytecode --no-minify`: hermesc's `-O` minifies), for otapub to
    /// compile against a base.
    pub fn export(&self, platform: Platform, out: &Path, js_only: bool) -> Result<()> {
        let out_arg = out.to_string_lossy().into_owned();
        let p = platform.to_string();
        let mut args = vec!["expo", "export", "--platform", &p, "--output-dir", &out_arg];
        if js_only {
            // Metro's source map too, for otapub to compose with hermesc's.
            args.extend(["--no-bytecode", "--no-minify", "--source-maps"]);
        }
        self.run(&args)
    }

    /// What a publish run in the project takes from it: each platform's
    /// export (into `.otapub/export/<platform>`), the public app config, each platform's
    /// runtime version (unless `given`) and the last commit's subject. With
    /// `delta_bytecode`, the platforms on Hermes are exported as JavaScript
    /// for otapub to compile with the project's hermesc.
    pub fn export_for_publish(
        &self,
        platforms: &[Platform],
        given: Option<BTreeMap<Platform, Fingerprint>>,
        delta_bytecode: bool,
    ) -> Result<ProjectExport> {
        let fingerprints = match given {
            Some(map) => map,
            None => platforms
                .iter()
                .map(|&p| Ok((p, self.runtime_version(p)?)))
                .collect::<Result<_>>()?,
        };
        let work = self.root.join(".otapub");
        std::fs::create_dir_all(&work).map_err(Error::file("create", work.clone()))?;
        let expo_config = work.join("expo-config.json");
        let config = self.public_config()?;
        std::fs::write(&expo_config, config.to_string()).map_err(Error::file("write", expo_config.clone()))?;
        let on_hermes: BTreeSet<Platform> = platforms
            .iter()
            .copied()
            .filter(|&p| hermes::js_engine(&config, p) == "hermes")
            .collect();
        if delta_bytecode {
            for &p in platforms.iter().filter(|p| !on_hermes.contains(p)) {
                let engine = hermes::js_engine(&config, p);
                eprintln!("{p}: the app runs {engine}, not Hermes: published as Expo exports it");
            }
        }
        let delta = match delta_bytecode && !on_hermes.is_empty() {
            true => Some(hermes::DeltaPlan {
                hermesc: hermes::Hermesc::find(&self.root)?,
                platforms: on_hermes,
                project_root: self.root.clone(),
            }),
            false => None,
        };
        let mut exports = BTreeMap::new();
        for &p in platforms {
            let dir = self.root.join(init::EXPORT_DIR).join(p.as_str());
            self.export(p, &dir, delta.as_ref().is_some_and(|d| d.platforms.contains(&p)))?;
            exports.insert(p, dir);
        }
        Ok(ProjectExport {
            delta,
            exports,
            expo_config,
            fingerprints,
            message: self.last_commit_subject(),
        })
    }

    /// The subject of the last git commit, when the project is in a git
    /// repository (the default message of a publish).
    pub fn last_commit_subject(&self) -> Option<String> {
        let out = Command::new("git")
            .args(["log", "-1", "--format=%s"])
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let subject = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !subject.is_empty()).then_some(subject)
    }
}

/// What a publish takes from the project.
#[derive(Debug, Clone)]
pub struct ProjectExport {
    /// Each platform's export (`.otapub/export/<platform>`).
    pub exports: BTreeMap<Platform, PathBuf>,
    /// The public app config, as a file.
    pub expo_config: PathBuf,
    /// Each platform's runtime version.
    pub fingerprints: BTreeMap<Platform, Fingerprint>,
    /// The last commit's subject.
    pub message: Option<String>,
    /// The platforms exported as JavaScript, for otapub to compile.
    pub delta: Option<hermes::DeltaPlan>,
}

/// What `expo-updates runtimeversion:resolve` prints.
#[derive(serde::Deserialize)]
struct Resolved {
    #[serde(rename = "runtimeVersion")]
    runtime_version: Option<String>,
}

/// Whether a package.json lists `name` in dependencies or devDependencies.
fn lists(package: &serde_json::Value, name: &str) -> bool {
    ["dependencies", "devDependencies"]
        .iter()
        .any(|k| package.get(k).and_then(|d| d.get(name)).is_some())
}

fn tool_missing(shown: &str, e: std::io::Error) -> Error {
    ProjectError::ToolMissing {
        shown: shown.to_string(),
        reason: e.to_string(),
    }
    .into()
}

/// What otapub cannot do with the Expo project: it is none, or its own
/// tools (run through npx) fail or print what otapub cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The folder is not an Expo project.
    #[error("{dir} is not an Expo project ({why}); run this from your app's root, where package.json and app.json are (or create an app with `npx create-expo-app`)")]
    NotExpo {
        /// The folder, as shown.
        dir: String,
        /// Why not.
        why: &'static str,
    },
    /// package.json is not JSON.
    #[error("{}: not valid JSON ({reason}); fix it, then run otapub again", path.display())]
    PackageJsonInvalid {
        /// The package.json file.
        path: PathBuf,
        /// The parser's error.
        reason: String,
    },
    /// npx cannot be run.
    #[error("cannot run `{shown}` ({reason}); otapub runs the project's own Expo tools through npx: install Node.js and run `npm install` in the project")]
    ToolMissing {
        /// The command.
        shown: String,
        /// Why.
        reason: String,
    },
    /// One of the project's tools failed.
    #[error("`{shown}` failed in {} ({status}); fix what it reports above, then run otapub again", root.display())]
    ToolFailed {
        /// The command.
        shown: String,
        /// The project's root.
        root: PathBuf,
        /// How it exited.
        status: String,
    },
    /// `expo config` printed no JSON.
    #[error("`npx expo config --type public --json` printed something that is not JSON ({reason}); run it yourself to see why")]
    ConfigNotJson {
        /// The parser's error.
        reason: String,
    },
    /// The project has no expo-updates.
    #[error("expo-updates is not installed in this project, so no build can take updates; run `npx otapub init` (or `npx expo install expo-updates`)")]
    NoExpoUpdates,
    /// `runtimeversion:resolve` printed what otapub cannot read.
    #[error("`npx expo-updates runtimeversion:resolve --platform {platform}` printed something otapub cannot read ({reason}); run it yourself to see why")]
    ResolveUnreadable {
        /// The platform.
        platform: Platform,
        /// The parser's error.
        reason: String,
    },
    /// The app config sets no runtime version.
    #[error("the app config sets no runtime version for {platform}, so its builds take no updates; run `npx otapub init` (it sets {{\"policy\": \"appVersion\"}}) or set expo.runtimeVersion")]
    NoRuntimeVersion {
        /// The platform.
        platform: Platform,
    },
    /// The runtime version cannot be a URL path segment.
    #[error("{platform}'s runtime version {runtime_version:?} cannot be a path in the update URL ({reason}); use the appVersion or fingerprint policy, or a runtimeVersion string of letters, digits, `.`, `_` and `-`")]
    BadRuntimeVersion {
        /// The platform.
        platform: Platform,
        /// The runtime version resolved.
        runtime_version: String,
        /// The rule it breaks.
        reason: String,
    },
}

impl Refusal for ProjectError {
    fn class(&self) -> ExitClass {
        match self {
            ProjectError::NotExpo { .. }
            | ProjectError::PackageJsonInvalid { .. }
            | ProjectError::ToolMissing { .. }
            | ProjectError::ToolFailed { .. }
            | ProjectError::ConfigNotJson { .. }
            | ProjectError::NoExpoUpdates
            | ProjectError::ResolveUnreadable { .. }
            | ProjectError::NoRuntimeVersion { .. }
            | ProjectError::BadRuntimeVersion { .. } => ExitClass::Input,
        }
    }
}

fn display_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() || dir == Path::new(".") {
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| ".".into())
    } else {
        dir.display().to_string()
    }
}
