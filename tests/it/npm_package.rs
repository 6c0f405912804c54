//! The npm distribution: `scripts/package-npm` packs this build's binary and
//! the `otapub` package, the tarballs install into a fresh npm project with
//! no network, and `npx otapub` runs the binary through the launcher
//! (npm/otapub/bin/otapub.js): version, arguments, stdin, exit codes,
//! signals, the `OTAPUB_BINARY` override and the errors a user can hit. One
//! list of targets (npm/otapub/targets.json) feeds the launcher, the
//! package's optionalDependencies and the release workflow: checked here.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn targets() -> Vec<Value> {
    read_json(&root().join("npm/otapub/targets.json"))["targets"]
        .as_array()
        .unwrap()
        .clone()
}

/// node and npm, or why the npm tests cannot run here.
fn node_and_npm() -> Result<(), String> {
    for tool in ["node", "npm"] {
        match Command::new(tool).arg("--version").output() {
            Ok(out) if out.status.success() => {}
            _ => return Err(format!("{tool} is not installed")),
        }
    }
    Ok(())
}

/// A command for npm tools isolated from the user's npm setup: no registry
/// access (`offline`), a throwaway cache, no user .npmrc.
fn npm_cmd(program: &str, project: &Path, work: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(project)
        .env("npm_config_offline", "true")
        .env("npm_config_cache", work.join("npm-cache"))
        .env("npm_config_userconfig", work.join("npmrc"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env_remove("OTAPUB_BINARY");
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

/// The host's row of targets.json (the platform package package-npm packs).
fn host_target() -> Value {
    let host = format!(
        "{}-{}",
        match std::env::consts::OS {
            "macos" => "darwin",
            "windows" => "win32",
            os => os,
        },
        match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            arch => arch,
        }
    );
    targets()
        .into_iter()
        .find(|t| format!("{}-{}", t["os"].as_str().unwrap(), t["cpu"].as_str().unwrap()) == host)
        .unwrap_or_else(|| panic!("no npm package for {host} in npm/otapub/targets.json"))
}

/// The tarball npm pack writes for a package name.
fn tarball_name(package: &str) -> String {
    format!("{}-{VERSION}.tgz", package.trim_start_matches('@').replace('/', "-"))
}

/// One file of a packed tarball.
fn packed_file(tarball: &Path, file: &str) -> Option<Vec<u8>> {
    let out = run(Command::new("tar")
        .arg("-xOzf")
        .arg(tarball)
        .arg(format!("package/{file}")));
    out.status.success().then_some(out.stdout)
}

fn packed_list(tarball: &Path) -> Vec<String> {
    let out = run(Command::new("tar").arg("-tvzf").arg(tarball));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn installed_from_package_npm_tarballs_npx_otapub_runs_this_build() {
    if let Err(why) = node_and_npm() {
        eprintln!("skipped: {why} (the npm distribution needs Node.js and npm)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let out_dir = work.join("out");

    // Pack this test's binary: no second cargo build.
    let packed = run(Command::new("node")
        .arg(root().join("scripts/package-npm"))
        .arg(&out_dir)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_otapub")));
    assert!(packed.status.success(), "{}", text(&packed.stderr));

    let target = host_target();
    let platform_package = target["package"].as_str().unwrap();
    let exe = target["exe"].as_str().unwrap();
    let mut tarballs: Vec<String> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    tarballs.sort();
    let mut want = vec![tarball_name("otapub"), tarball_name(platform_package)];
    want.sort();
    assert_eq!(tarballs, want);

    // The main package: the launcher, the config plugin, the targets; no install script.
    let main_tgz = out_dir.join(tarball_name("otapub"));
    let main_pkg: Value = serde_json::from_slice(&packed_file(&main_tgz, "package.json").unwrap()).unwrap();
    assert_eq!(main_pkg["version"], VERSION);
    assert_eq!(main_pkg["bin"]["otapub"], "bin/otapub.js");
    let scripts = main_pkg.get("scripts").and_then(Value::as_object);
    assert!(
        scripts.is_none_or(|s| s.keys().all(|k| !k.contains("install"))),
        "{main_pkg}"
    );
    assert_eq!(
        packed_file(&main_tgz, "app.plugin.js").unwrap(),
        fs::read(root().join("npm/otapub/app.plugin.js")).unwrap()
    );
    assert!(packed_file(&main_tgz, "bin/otapub.js").is_some());
    assert!(packed_file(&main_tgz, "targets.json").is_some());

    // The platform package: os/cpu, the binary as built, executable.
    let platform_tgz = out_dir.join(tarball_name(platform_package));
    let platform_pkg: Value = serde_json::from_slice(&packed_file(&platform_tgz, "package.json").unwrap()).unwrap();
    assert_eq!(platform_pkg["name"], platform_package);
    assert_eq!(platform_pkg["version"], VERSION);
    assert_eq!(platform_pkg["os"][0], target["os"]);
    assert_eq!(platform_pkg["cpu"][0], target["cpu"]);
    assert!(platform_pkg.get("scripts").is_none(), "{platform_pkg}");
    assert!(
        packed_file(&platform_tgz, exe).unwrap() == fs::read(env!("CARGO_BIN_EXE_otapub")).unwrap(),
        "the packed binary is not this build's"
    );
    #[cfg(unix)]
    assert!(
        packed_list(&platform_tgz)
            .iter()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(&format!("package/{exe}"))),
        "{:?}",
        packed_list(&platform_tgz)
    );

    // A fresh project installs every tarball with no registry: npm asks for
    // the other platforms' packages, finds none (offline; a 404 online),
    // and skips them as the optional dependencies they are.
    let project = work.join("app");
    fs::create_dir(&project).unwrap();
    fs::write(
        project.join("package.json"),
        r#"{"name": "app", "version": "1.0.0", "private": true}"#,
    )
    .unwrap();
    fs::write(work.join("npmrc"), "").unwrap();
    let mut install = npm_cmd("npm", &project, work);
    install.args(["install", "--save-dev"]);
    for t in &tarballs {
        install.arg(out_dir.join(t));
    }
    let installed = run(&mut install);
    assert!(
        installed.status.success(),
        "{}{}",
        text(&installed.stdout),
        text(&installed.stderr)
    );
    let mut scoped: Vec<String> = fs::read_dir(project.join("node_modules/@otapub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    scoped.sort();
    assert_eq!(
        scoped,
        [platform_package.trim_start_matches("@otapub/")],
        "only this platform's package is installed"
    );

    let npx = |args: &[&str]| {
        let mut c = npm_cmd("npx", &project, work);
        c.arg("otapub").args(args);
        c
    };

    // The binary runs: Cargo's version, its own exit code for bad usage.
    let v = run(&mut npx(&["--version"]));
    assert!(v.status.success(), "{}", text(&v.stderr));
    assert_eq!(text(&v.stdout).trim(), format!("otapub {VERSION}"));
    let bad = run(&mut npx(&["publish", "--no-such-flag"]));
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("--no-such-flag"), "{}", text(&bad.stderr));

    // Without its platform package (installed with --omit=optional, or on
    // another machine), the launcher names the package and how to get it.
    let modules = project.join("node_modules");
    let held = work.join("held");
    fs::rename(modules.join(platform_package), &held).unwrap();
    let missing = run(&mut npx(&["--version"]));
    fs::rename(&held, modules.join(platform_package)).unwrap();
    let err = text(&missing.stderr);
    assert_eq!(missing.status.code(), Some(3), "{err}");
    assert!(missing.stdout.is_empty());
    assert!(
        err.contains(&format!("{platform_package}, the package that holds otapub's binary")),
        "{err}"
    );
    assert!(err.contains("--omit=optional"), "{err}");
    assert!(err.contains(&format!("npm i -D {platform_package}@{VERSION}")), "{err}");

    // A platform package of another version (a hand-edited lockfile, a
    // partial upgrade) still runs, with a warning that says what to install.
    let installed_pkg = modules.join(platform_package).join("package.json");
    let original = fs::read(&installed_pkg).unwrap();
    let mut stale: Value = serde_json::from_slice(&original).unwrap();
    stale["version"] = "0.0.1".into();
    fs::write(&installed_pkg, stale.to_string()).unwrap();
    let mismatched = run(&mut npx(&["--version"]));
    fs::write(&installed_pkg, &original).unwrap();
    let err = text(&mismatched.stderr);
    assert!(mismatched.status.success(), "{err}");
    assert_eq!(text(&mismatched.stdout).trim(), format!("otapub {VERSION}"));
    assert!(
        err.contains(&format!("warning: {platform_package} is 0.0.1 but otapub is {VERSION}"))
            && err.contains(&format!("npm i -D {platform_package}@{VERSION}")),
        "{err}"
    );

    // A platform with no prebuilt binary: the list of those that exist and cargo install.
    let fake_arch = work.join("fake-arch.js");
    fs::write(
        &fake_arch,
        "Object.defineProperty(process, 'arch', { value: 'riscv64' });\n",
    )
    .unwrap();
    let unsupported = run(npm_cmd("node", &project, work)
        .arg("--require")
        .arg(&fake_arch)
        .arg(modules.join("otapub/bin/otapub.js"))
        .arg("--version"));
    let err = text(&unsupported.stderr);
    assert_eq!(unsupported.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "no prebuilt otapub for {}-riscv64",
            target["os"].as_str().unwrap()
        )),
        "{err}"
    );
    assert!(
        err.contains("linux-x64, linux-arm64, darwin-x64, darwin-arm64, win32-x64"),
        "{err}"
    );
    assert!(err.contains("cargo install otapub"), "{err}");

    #[cfg(unix)]
    launcher_passes_through(work, &project, &npx);
}

/// `OTAPUB_BINARY` runs another binary; arguments, stdin, stdout, the exit
/// code and a killing signal come through the launcher unchanged.
#[cfg(unix)]
fn launcher_passes_through(work: &Path, project: &Path, npx: &dyn Fn(&[&str]) -> Command) {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let fake = work.join("fake-otapub");
    fs::write(
        &fake,
        "#!/bin/sh\n\
         printf 'args:'; for a in \"$@\"; do printf ' [%s]' \"$a\"; done; echo\n\
         printf 'stdin:'; cat\n\
         [ \"$1\" = die ] && kill -TERM $$\n\
         exit 7\n",
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();

    let mut child = npx(&["two words", "--flag=x"])
        .env("OTAPUB_BINARY", &fake)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"from stdin").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "args: [two words] [--flag=x]\nstdin:from stdin");

    // Killed by a signal: the launcher ends by the same signal (run as npm
    // links it, without npx, which reports signals its own way).
    let killed = run(npm_cmd("node_modules/.bin/otapub", project, work)
        .arg("die")
        .env("OTAPUB_BINARY", &fake)
        .stdin(Stdio::null()));
    assert_eq!(
        killed.status.signal(),
        Some(15),
        "{:?} {}",
        killed.status,
        text(&killed.stderr)
    );

    // An override that is not there says so.
    let gone = run(npx(&["--version"]).env("OTAPUB_BINARY", work.join("nowhere")));
    assert_eq!(gone.status.code(), Some(3));
    assert!(text(&gone.stderr).contains("does not exist"), "{}", text(&gone.stderr));
}

#[test]
fn package_npm_refuses_a_binary_built_for_another_platform() {
    if let Err(why) = node_and_npm() {
        eprintln!("skipped: {why} (the npm distribution needs Node.js and npm)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("out");
    let host = host_target();
    let other = targets().into_iter().find(|t| t["os"] != host["os"]).unwrap();
    let platform = format!("{}-{}", other["os"].as_str().unwrap(), other["cpu"].as_str().unwrap());
    let out = run(Command::new("node")
        .arg(root().join("scripts/package-npm"))
        .arg(&out_dir)
        .args(["--binary", env!("CARGO_BIN_EXE_otapub"), "--platform", &platform]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("not {platform}")), "{err}");
    assert!(!out_dir.exists(), "nothing is written");

    let out = run(Command::new("node")
        .arg(root().join("scripts/package-npm"))
        .arg(&out_dir)
        .args(["--binary", env!("CARGO_BIN_EXE_otapub"), "--platform", "plan9-x64"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no npm package for plan9-x64"), "{err}");
}

/// Every target the release workflow builds has a platform package in
/// `otapub`'s optionalDependencies (at Cargo's version, exactly) and in the
/// launcher's table: the workflow's matrix, the package and the launcher all
/// read npm/otapub/targets.json.
#[test]
fn the_release_workflow_the_package_and_the_launcher_share_one_target_list() {
    let workflow: serde_yaml::Value =
        serde_yaml::from_slice(&fs::read(root().join(".github/workflows/release.yml")).unwrap()).unwrap();
    let jobs = &workflow["jobs"];
    let plan_steps = serde_yaml::to_string(&jobs["plan"]["steps"]).unwrap();
    assert!(
        plan_steps.contains("jq -c .targets npm/otapub/targets.json"),
        "the plan job reads the targets: {plan_steps}"
    );
    assert_eq!(
        jobs["build"]["strategy"]["matrix"]["include"].as_str(),
        Some("${{ fromJSON(needs.plan.outputs.targets) }}")
    );
    assert_eq!(jobs["npm"]["permissions"]["id-token"].as_str(), Some("write"));
    let npm_steps = serde_yaml::to_string(&jobs["npm"]["steps"]).unwrap();
    assert!(
        npm_steps.contains("npm publish \"$2\" --provenance --access public"),
        "{npm_steps}"
    );
    assert!(
        npm_steps.contains("'.targets[].package' npm/otapub/targets.json"),
        "{npm_steps}"
    );
    assert!(serde_yaml::to_string(&jobs["crate"])
        .unwrap()
        .contains("cargo publish --locked"));

    let targets = targets();
    assert_eq!(targets.len(), 5);
    for t in &targets {
        // Every field the workflow's matrix reads.
        for field in ["package", "os", "cpu", "rust", "runner", "exe"] {
            assert!(t[field].is_string(), "{field} in {t}");
        }
        if t["os"] == "linux" {
            assert!(
                t["rust"].as_str().unwrap().ends_with("-linux-musl"),
                "static Linux binaries: {t}"
            );
        }
    }

    let pkg = read_json(&root().join("npm/otapub/package.json"));
    assert_eq!(
        pkg["version"], VERSION,
        "npm/otapub/package.json's version is Cargo.toml's"
    );
    let optional = pkg["optionalDependencies"].as_object().unwrap();
    assert_eq!(optional.len(), targets.len());
    for t in &targets {
        assert_eq!(optional[t["package"].as_str().unwrap()], VERSION, "{t}");
    }

    // The launcher, on each target's os and cpu with nothing installed,
    // looks for that target's package.
    if let Err(why) = node_and_npm() {
        eprintln!("launcher table not checked: {why}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let launcher = work.path().join("otapub");
    fs::create_dir_all(launcher.join("bin")).unwrap();
    for f in ["bin/otapub.js", "targets.json", "package.json"] {
        fs::copy(root().join("npm/otapub").join(f), launcher.join(f)).unwrap();
    }
    for t in &targets {
        let preload = work.path().join("platform.js");
        fs::write(
            &preload,
            format!(
                "Object.defineProperty(process, 'platform', {{ value: {} }});\n\
                 Object.defineProperty(process, 'arch', {{ value: {} }});\n",
                t["os"], t["cpu"]
            ),
        )
        .unwrap();
        let out = run(Command::new("node")
            .arg("--require")
            .arg(&preload)
            .arg(launcher.join("bin/otapub.js"))
            .env_remove("OTAPUB_BINARY"));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.contains(&format!("{}, the package that holds", t["package"].as_str().unwrap())),
            "{t}: {err}"
        );
    }
}
