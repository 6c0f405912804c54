//! A terminal that behaves: progress bars on a TTY (run under `script`, which
//! gives the command a real pseudo-terminal), nothing but the result when
//! piped, nothing at all with `--quiet`, and only JSON with `--json`.

use std::process::Command;

use crate::common::*;

/// Runs `otapub ARGS` (against the test store) on a pseudo-terminal; the transcript.
fn on_tty(env: &TestEnv, args: &[&str]) -> String {
    let cmd = env.std_otapub(args);
    let mut line = vec![cmd.get_program().to_string_lossy().into_owned()];
    line.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &shell_words::join(&line), "/dev/null"])
        .current_dir(env.dir.path())
        .env_remove("OTAPUB_NOW")
        .env("USER", "tester")
        .output()
        .expect("script (util-linux)");
    assert!(out.status.success(), "{}", stdout(&out));
    stdout(&out)
}

/// `publish` of the tabs fixture to `channel`, then `extra`.
fn publish(channel: &str, extra: &[&str]) -> Vec<String> {
    let tabs = format!("{FIXTURES}/expo-tabs/dist");
    let mut v = vec![
        "publish",
        &tabs,
        "--channel",
        channel,
        "--fingerprint",
        "fp",
        "--platform",
        "ios",
    ];
    v.extend_from_slice(extra);
    v.into_iter().map(str::to_string).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn progress_bars_only_on_a_terminal() {
    let env = TestEnv::new();

    // On a terminal: the bars are drawn (the first publish uploads every asset).
    let tty = on_tty(&env, &refs(&publish("production", &[])));
    assert!(tty.contains("hashing files"), "{tty:?}");
    assert!(tty.contains("uploading assets"), "{tty:?}");
    assert!(tty.contains("published production/ios/fp"), "{tty:?}");

    // Piped: the result only, no bar and no escape sequence.
    let out = env
        .otapub(&refs(&publish("staging", &[])))
        .assert()
        .success()
        .get_output()
        .clone();
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains("published staging/ios/fp"), "{o}");
    assert!(
        !e.contains("hashing") && !o.contains('\u{1b}') && !e.contains('\u{1b}'),
        "{e:?}"
    );

    // --quiet on a terminal: nothing on success (warnings would show: the
    // build the update is for is recorded, so there is none).
    env.otapub(&["builds", "add", "--platform", "ios", "--runtime-version", "fp"])
        .assert()
        .success();
    let quiet = on_tty(&env, &refs(&publish("beta", &["--quiet"])));
    assert_eq!(quiet.trim(), "", "{quiet:?}");

    // --json on a terminal: the JSON and nothing else.
    let json = on_tty(&env, &refs(&publish("qa", &["--json"])));
    assert!(
        !json.contains("hashing files") && !json.contains("uploading"),
        "{json:?}"
    );
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json:?}"));
    assert!(v.is_object(), "{v}");

    // --quiet with --json still prints the JSON; a failure still says why.
    let out = env
        .otapub(&["status", "--json", "--quiet"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok());
    let out = env
        .otapub(&["ban", "nope", "--platform", "ios", "--reason", "x", "--quiet"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(!stderr(&out).is_empty());
}
