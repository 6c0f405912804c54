//! The real Expo app the project tests run in: Expo's SDK 57 template,
//! cached by scripts/install-test-servers.sh, copied per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::tools_dir;

/// The cached template app, or why the test cannot run (printed).
pub fn template_app() -> Option<PathBuf> {
    let app = tools_dir().join("expo-app-sdk57");
    if app.join("node_modules/expo-updates").is_dir() && Command::new("node").arg("--version").output().is_ok() {
        Some(app)
    } else {
        eprintln!(
            "SKIPPED: no Expo app at {} or no node — scripts/install-test-servers.sh creates it (scripts/test.sh runs that first)",
            app.display()
        );
        None
    }
}

/// A copy of the template app: its files copied, node_modules hard-linked
/// (nothing here writes into a package's files; npm replaces by renaming).
pub fn copy_app(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let flag = if name == "node_modules" { "-al" } else { "-a" };
        let status = Command::new("cp")
            .arg(flag)
            .arg(entry.path())
            .arg(to.join(&name))
            .status()
            .unwrap();
        assert!(status.success(), "cp {flag} {}", entry.path().display());
    }
}

/// `program ARGS` in `dir`, as a CI job outside any CI service runs it.
pub fn run(dir: &Path, program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("EXPO_NO_TELEMETRY", "1")
        .env("CI", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

/// [`run`], which must succeed.
pub fn ok(dir: &Path, program: &Path, args: &[&str]) -> Output {
    let out = run(dir, program, args);
    assert!(
        out.status.success(),
        "{} {args:?} in {}: {}\n{}\n{}",
        program.display(),
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
