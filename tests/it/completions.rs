//! `otapub completions`: the generated script, loaded into a real bash,
//! completes subcommands and their flags (as a user's TAB would).

use crate::common::*;

/// What bash completes for `words` (the last one being typed), calling the
/// function as bash's `complete -F` does: command, current word, previous word.
/// `script` is a file: the generated script is longer than the 128 KiB one
/// argument may hold (Linux's MAX_ARG_STRLEN), so it cannot go through `-c`.
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let script = script.display();
    let program = format!(
        "source '{script}'\nCOMP_WORDS=({line}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _otapub otapub \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words.len() - 1
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let env = TestEnv::new();
    let out = env
        .otapub(&["completions", "bash"])
        .assert()
        .success()
        .get_output()
        .clone();
    let script = env.path("otapub.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .expect("bash");
    assert!(syntax.success(), "the script is valid bash");
    assert_eq!(bash_completes(&script, &["otapub", "pub"]), ["publish"]);
    let flags = bash_completes(&script, &["otapub", "publish", "--patch-"]);
    assert_eq!(flags, ["--patch-bases", "--patch-max-fraction"]);
    let rollout = bash_completes(&script, &["otapub", "rollout", "a"]);
    assert_eq!(rollout, ["advance", "abort"]);
    assert_eq!(bash_completes(&script, &["otapub", "insights", "in"]), ["ingest"]);

    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = env
            .otapub(&["completions", shell])
            .assert()
            .success()
            .get_output()
            .clone();
        assert!(stdout(&out).contains("embedded"), "{shell}");
    }
    let out = env
        .otapub(&["completions", "nushell"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(stderr(&out).contains("possible values: bash"), "{}", stderr(&out));
}
