//! `otapub completions`: the generated script, loaded into a real bash,
//! completes subcommands and their flags (as a user's TAB would).

mod common;

use common::*;

/// What bash completes for `words` (the last one being typed), calling the
/// function as bash's `complete -F` does: command, current word, previous word.
///
/// The script is sourced from a file: it is longer than one argument may be
/// (Linux's 128 KiB MAX_ARG_STRLEN).
fn bash_completes(script: &str, words: &[&str]) -> Vec<String> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    let line = words.join(" ");
    let program = format!(
        "source {}\nCOMP_WORDS=({line}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _otapub otapub \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.path().display(),
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
    let script = stdout(&out);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &script).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(file.path())
        .status()
        .expect("bash");
    assert!(syntax.success(), "the script is valid bash");
    assert_eq!(bash_completes(&script, &["otapub", "pub"]), ["publish"]);
    let flags = bash_completes(&script, &["otapub", "publish", "--patch-"]);
    assert_eq!(flags, ["--patch-bases", "--patch-max-fraction"]);
    let rollout = bash_completes(&script, &["otapub", "rollout", "a"]);
    assert_eq!(rollout, ["advance", "abort"]);

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
