//! The kill soak: every mutating command is killed — at each of its write
//! boundaries (the fault wrapper aborts the process before its Nth write)
//! and at random instants (SIGKILL after a random share of the command's
//! own running time) — and after every kill an independent reader checks
//! the tree the way a device would: every pointer and every immutable
//! manifest verifies with the public key, every asset it names exists with
//! the hash it names, and no pointer serves an older createdAt than before.
//! Then the command is rerun with the same `--operation-id` and must
//! succeed, after which `otapub check` must find nothing wrong.
//!
//! `OTAPUB_SOAK_TRIALS` random kills per command (default 20, what CI runs;
//! `scripts/kill-soak.sh` runs 200). The seed of every random choice is
//! `OTAPUB_SOAK_SEED` when set, else a fresh random one (drawn by rand's
//! seeded `StdRng`); it is printed first and with any failure, and
//! `OTAPUB_SOAK_SEED` set to it replays the run.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::common::*;

/// One mutating command under test: what to set up before each trial
/// (never killed) and the command itself.
struct Subject {
    name: &'static str,
    prepare: fn(&TestEnv, usize),
    args: fn(usize) -> Vec<String>,
    /// Runs for seconds (real bundles to diff): a quarter of the random kills.
    heavy: bool,
}

fn publish(env: &TestEnv, release: &str, channel: &str) {
    env.publish_release(release, channel, "fp1").assert().success();
    std::fs::remove_dir_all(env.path(&format!("export-{release}"))).expect("remove export");
}

/// Completes the rollout a previous trial left running on production/ios/fp1.
fn end_rollouts(env: &TestEnv) {
    let _ = env
        .otapub(&[
            "rollout",
            "complete",
            "--channel",
            "production",
            "--platform",
            "ios",
            "--fingerprint",
            "fp1",
        ])
        .output();
}

/// A rollout of a new candidate at 2 % on production/ios/fp1, paused if asked.
fn fresh_rollout(env: &TestEnv, t: usize, paused: bool) {
    end_rollouts(env);
    let release = format!("c{t}");
    env.publish_release(&release, "production", "fp1")
        .args(["--platform", "ios", "--rollout", "2"])
        .assert()
        .success();
    std::fs::remove_dir_all(env.path(&format!("export-{release}"))).expect("remove export");
    if paused {
        env.otapub(&rollout_args(&["pause"]).iter().map(String::as_str).collect::<Vec<_>>())
            .assert()
            .success();
    }
}

/// `rollout SUB` on production/ios/fp1, then `rest`.
fn rollout_args(sub_and_rest: &[&str]) -> Vec<String> {
    let mut v = vec![
        "rollout",
        sub_and_rest[0],
        "--channel",
        "production",
        "--platform",
        "ios",
        "--fingerprint",
        "fp1",
    ];
    v.extend_from_slice(&sub_and_rest[1..]);
    strings(&v)
}

/// tests/data/expo-successive's second export with its iOS bundle edited
/// at a place that depends on `t`: release `t` of one app.
fn successive_export(to: &Path, t: usize) {
    let from = Path::new(FIXTURES).join("expo-successive/dist2");
    let _ = std::fs::remove_dir_all(to);
    let js = "_expo/static/js/ios";
    std::fs::create_dir_all(to.join(js)).expect("export dir");
    std::fs::copy(from.join("metadata.json"), to.join("metadata.json")).expect("metadata.json");
    for e in std::fs::read_dir(from.join(js)).expect("bundle dir") {
        let e = e.expect("entry");
        let mut bytes = std::fs::read(e.path()).expect("bundle");
        let at = 10_000 + (t * 7919) % (bytes.len() - 20_000);
        bytes[at..at + 12].copy_from_slice(format!("release {t:04}").as_bytes());
        std::fs::write(to.join(js).join(e.file_name()), bytes).expect("bundle");
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn subjects() -> Vec<Subject> {
    vec![
        Subject {
            heavy: false,
            name: "publish",
            prepare: |env, t| write_export(&env.path("next"), &format!("p{t}")),
            args: |t| {
                strings(&[
                    "publish",
                    "next",
                    "--channel",
                    "production",
                    "--fingerprint",
                    "fp1",
                    "--version",
                    &format!("p{t}"),
                ])
            },
        },
        Subject {
            heavy: true,
            // Real bundles a few bytes apart: each trial diffs one pair and
            // creates a patch object before its commit.
            name: "patched publish",
            prepare: |env, t| successive_export(&env.path("next-real"), t),
            args: |t| {
                strings(&[
                    "publish",
                    "next-real",
                    "--channel",
                    "patched",
                    "--fingerprint",
                    "fp1",
                    "--platform",
                    "ios",
                    "--patch-bases",
                    "1",
                    "--version",
                    &format!("x{t}"),
                ])
            },
        },
        Subject {
            heavy: false,
            name: "ban",
            prepare: |env, t| publish(env, &format!("b{t}"), "production"),
            args: |t| strings(&["ban", &format!("b{t}"), "--platform", "ios", "--reason", "soak"]),
        },
        Subject {
            heavy: false,
            name: "ban --rollback",
            prepare: |env, t| publish(env, &format!("r{t}"), "production"),
            args: |t| {
                strings(&[
                    "ban",
                    &format!("r{t}"),
                    "--platform",
                    "android",
                    "--reason",
                    "soak",
                    "--rollback",
                ])
            },
        },
        Subject {
            heavy: false,
            name: "rollback",
            prepare: |env, t| publish(env, &format!("k{t}"), "production"),
            args: |_| {
                strings(&[
                    "rollback",
                    "--channel",
                    "production",
                    "--platform",
                    "ios",
                    "--fingerprint",
                    "fp1",
                ])
            },
        },
        Subject {
            heavy: false,
            name: "promote",
            prepare: |env, t| publish(env, &format!("s{t}"), "staging"),
            args: |t| strings(&["promote", &format!("s{t}"), "--platform", "ios", "--to", "production"]),
        },
        Subject {
            heavy: false,
            name: "regenerate",
            // A publish whose pointer writes all fail leaves its commit for
            // regenerate to serve (it says so and exits 3).
            prepare: |env, t| {
                let mut c = env.publish_release(&format!("g{t}"), "production", "fp1");
                c.env("OTAPUB_FAULTS", "fail@put_if:public/production/*#*");
                c.assert().code(3);
            },
            args: |_| strings(&["regenerate"]),
        },
        Subject {
            heavy: false,
            name: "gc",
            // Two objects nobody references, as a publish killed mid-upload leaves.
            prepare: |env, t| {
                for i in 0..2 {
                    let name = hex(&<sha2::Sha256 as sha2::Digest>::digest(format!("orphan {t} {i}")));
                    std::fs::write(env.store().join("public/assets").join(name), b"orphan").expect("orphan");
                }
            },
            args: |_| strings(&["gc", "--grace-hours", "0"]),
        },
        Subject {
            heavy: false,
            name: "ops sweep",
            // A gc killed holding its lease, its clock set a day back (ten
            // minutes on each trial, past the last one's lease): a stale
            // operation for the sweep. Its leftover is older still.
            prepare: |env, t| {
                let name = hex(&<sha2::Sha256 as sha2::Digest>::digest(format!("stale {t}")));
                let path = env.store().join("public/assets").join(name);
                std::fs::write(&path, b"orphan").expect("orphan");
                let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86400);
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(two_days_ago))
                    .expect("set the leftover's mtime");
                let then = chrono::Utc::now() - chrono::Duration::days(1) + chrono::Duration::minutes(10 * t as i64);
                env.otapub_at(&then.to_rfc3339(), &["gc", "--grace-hours", "0"])
                    .env("OTAPUB_FAULTS", "kill@delete:public/assets/*#1")
                    .assert()
                    .failure();
            },
            args: |_| strings(&["ops", "sweep"]),
        },
        Subject {
            heavy: false,
            name: "refresh",
            // A release signed with leaf A each trial; the command re-signs
            // every served response with leaf B.
            prepare: |env, t| {
                env.expo_leaves();
                env.publish_release(&format!("f{t}"), "production", "fp1")
                    .args(["--expo-key", "keys/leaf-a.key", "--expo-chain", "keys/leaf-a.pem"])
                    .assert()
                    .success();
            },
            args: |_| {
                strings(&[
                    "refresh",
                    "--expo-key",
                    "keys/leaf-b.key",
                    "--expo-chain",
                    "keys/leaf-b.pem",
                ])
            },
        },
        Subject {
            heavy: false,
            name: "gc --keep",
            // A new release on a channel that keeps one: each trial retires
            // the one before and deletes its bundles (the first trial has one
            // before it too, or its write boundaries would go uncounted).
            prepare: |env, t| {
                if t == 1 {
                    publish(env, "k0", "retain");
                }
                publish(env, &format!("k{t}"), "retain")
            },
            args: |_| strings(&["gc", "--grace-hours", "0", "--keep", "retain=1"]),
        },
        Subject {
            heavy: false,
            name: "publish --rollout",
            prepare: |env, t| {
                end_rollouts(env);
                write_export(&env.path("next"), &format!("q{t}"));
            },
            args: |t| {
                strings(&[
                    "publish",
                    "next",
                    "--channel",
                    "production",
                    "--fingerprint",
                    "fp1",
                    "--version",
                    &format!("q{t}"),
                    "--platform",
                    "ios",
                    "--rollout",
                    "2",
                ])
            },
        },
        Subject {
            heavy: false,
            name: "rollout set",
            prepare: |env, t| fresh_rollout(env, t, false),
            args: |_| rollout_args(&["set", "--percent", "4"]),
        },
        Subject {
            heavy: false,
            name: "rollout pause",
            prepare: |env, t| fresh_rollout(env, t, false),
            args: |_| rollout_args(&["pause"]),
        },
        Subject {
            heavy: false,
            name: "rollout resume",
            prepare: |env, t| fresh_rollout(env, t, true),
            args: |_| rollout_args(&["resume"]),
        },
        Subject {
            heavy: false,
            name: "rollout advance",
            prepare: |env, t| fresh_rollout(env, t, false),
            args: |_| rollout_args(&["advance"]),
        },
        Subject {
            heavy: false,
            name: "rollout complete",
            prepare: |env, t| fresh_rollout(env, t, false),
            args: |_| rollout_args(&["complete"]),
        },
        Subject {
            heavy: false,
            name: "rollout abort",
            prepare: |env, t| fresh_rollout(env, t, false),
            args: |_| rollout_args(&["abort", "--reason", "soak"]),
        },
        Subject {
            heavy: false,
            name: "embedded add",
            prepare: |env, t| {
                std::fs::write(env.path("embedded.bundle"), format!("embedded bundle {t}")).expect("bundle")
            },
            args: |t| {
                strings(&[
                    "embedded",
                    "add",
                    "--platform",
                    "ios",
                    "--fingerprint",
                    "fp1",
                    "--update-id",
                    &format!("00000000-0000-4000-8000-{t:012}"),
                    "embedded.bundle",
                ])
            },
        },
        Subject {
            heavy: false,
            name: "index rebuild",
            prepare: |env, t| publish(env, &format!("i{t}"), "production"),
            args: |_| strings(&["index", "rebuild", "--force", "--trust", "keys/throwaway.pub"]),
        },
    ]
}

/// What each pointer object serves, by key: a manifest's id, or a
/// directive's whole JSON.
type Seen = BTreeMap<String, String>;

/// Every pointer object (`manifest` and `manifest.json` under
/// `public/<channel>/<platform>/<fingerprint>/`), relative to the store root.
fn pointer_objects(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(channels) = std::fs::read_dir(root.join("public")) else {
        return out;
    };
    for c in channels.flatten() {
        let channel = c.file_name().to_string_lossy().to_string();
        if channel == "assets" || channel == "updates" {
            continue;
        }
        for p in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(p.path()).into_iter().flatten().flatten() {
                let platform = p.file_name().to_string_lossy().to_string();
                let fp = f.file_name().to_string_lossy().to_string();
                let pointer = format!("public/{channel}/{platform}/{fp}");
                for name in ["manifest", "manifest.json", "rollout.json"] {
                    if f.path().join(name).is_file() {
                        out.push(format!("{pointer}/{name}"));
                    }
                }
                // Rollout buckets: each is read as the device in it reads it.
                for b in std::fs::read_dir(f.path().join("rollout"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let bb = b.file_name().to_string_lossy().to_string();
                    for name in ["manifest", "manifest.json"] {
                        if b.path().join(name).is_file() {
                            out.push(format!("{pointer}/rollout/{bb}/{name}"));
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// Reads one pointer object as its consumer does — `manifest` as the
/// expo-updates client (RSA expo-signature over the part), `manifest.json`
/// as a DSSE verifier — checks every asset it names, and returns what it
/// serves. Panics on anything wrong.
fn read_object(env: &TestEnv, key: &str) -> String {
    use rsa::signature::Verifier;
    if let Some(pointer) = key
        .strip_prefix("public/")
        .and_then(|k| k.strip_suffix("/rollout.json"))
    {
        // The signed record: what it says is what it serves.
        return env.rollout_record(pointer).to_string();
    }
    let (part, name) = if key.ends_with(".json") {
        let payload = verify_envelope(&env.read(key), &env.public_key());
        let v: serde_json::Value = serde_json::from_slice(&payload).expect("payload JSON");
        let name = if v.get("launchAsset").is_some() {
            "manifest"
        } else {
            "directive"
        };
        (payload, name.to_string())
    } else {
        let (body, ct) = env.object(key).expect("exists");
        let parts = parse_multipart(&ct, &body);
        let (headers, part) = &parts[0];
        let sig = headers
            .iter()
            .find(|(n, _)| n == "expo-signature")
            .map(|(_, v)| v.clone())
            .expect("expo-signature");
        let sig = sig
            .split("sig=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("sig=");
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig).expect("base64 sig");
        // With a certificate_chain part the client checks with its leaf's
        // key (`refresh` subject); otherwise with the embedded certificate.
        let key = parts
            .iter()
            .find(|(h, _)| part_name(h) == "certificate_chain")
            .map(|(_, pem)| {
                use rsa::pkcs1::DecodeRsaPublicKey;
                let (_, block) = x509_parser::pem::parse_x509_pem(pem).expect("a PEM chain");
                let cert = block.parse_x509().expect("an X.509 leaf");
                rsa::RsaPublicKey::from_pkcs1_der(&cert.public_key().subject_public_key.data).expect("an RSA key")
            })
            .unwrap_or_else(expo_certificate_key);
        rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
            .verify(
                part,
                &rsa::pkcs1v15::Signature::try_from(raw.as_slice()).expect("signature"),
            )
            .expect("the expo-signature verifies against the certificate");
        (part.clone(), part_name(headers))
    };
    let doc: serde_json::Value = serde_json::from_slice(&part).expect("JSON part");
    let fields: Vec<&str> = key.split('/').collect();
    if name == "manifest" {
        assert_eq!(doc["runtimeVersion"], fields[3]);
        assert_eq!(doc["metadata"]["otapub"]["channel"], fields[1]);
        assert_eq!(doc["metadata"]["otapub"]["platform"], fields[2]);
        env.check_assets(&doc);
        doc["id"].as_str().expect("id").to_string()
    } else {
        assert_eq!(name, "directive");
        assert_eq!(doc["extra"]["otapub"]["channel"], fields[1]);
        doc.to_string()
    }
}

/// Checks every pointer object; returns what each serves, or what is wrong.
fn read_tree(env: &TestEnv) -> Result<Seen, String> {
    // What is wrong is returned (and printed once, with the trial); the
    // default hook would print every caught panic with a backtrace.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let seen = read_pointers(env);
    std::panic::set_hook(hook);
    seen
}

fn read_pointers(env: &TestEnv) -> Result<Seen, String> {
    let mut seen = Seen::new();
    for key in pointer_objects(&env.store()) {
        let served = catch_unwind(AssertUnwindSafe(|| read_object(env, &key))).map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("{key}: {msg}")
        })?;
        seen.insert(key, served);
    }
    Ok(seen)
}

/// After a kill each pointer object serves what it served before the
/// command or what it serves once the command completed — never a third,
/// older view, and never nothing once it served something.
fn between(before: &Seen, killed: &Seen, after: &Seen) -> Result<(), String> {
    for key in before.keys().chain(killed.keys()).chain(after.keys()) {
        let (b, k, a) = (before.get(key), killed.get(key), after.get(key));
        if k != b && k != a {
            return Err(format!(
                "{key} served {k:?} after the kill: neither {b:?} (before) nor {a:?} (after)"
            ));
        }
        // A rollout bucket may go (pause, complete, abort); a pointer never.
        if b.is_some() && (k.is_none() || a.is_none()) && !key.contains("/rollout/") {
            return Err(format!("{key} disappeared"));
        }
    }
    // Once complete, the two objects of each pointer agree.
    for (key, served) in after.iter().filter(|(k, _)| k.ends_with("/manifest.json")) {
        let body = key.trim_end_matches(".json");
        if after.get(body) != Some(served) {
            return Err(format!("{body} and its manifest.json disagree after the rerun"));
        }
    }
    Ok(())
}

fn run(env: &TestEnv, args: &[String], op: &str, faults: Option<&str>) -> std::process::Command {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--operation-id", op]);
    let mut c = env.std_otapub(&all);
    if let Some(f) = faults {
        c.env("OTAPUB_FAULTS", f);
    }
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c
}

#[derive(Default)]
struct Tally {
    trials: usize,
    killed: usize,
    consistent: usize,
    completed: usize,
    failures: Vec<String>,
}

/// One trial: kill the command (by `faults`, or after `after`), read the
/// tree, rerun to completion, read it again and `check` it.
fn trial(
    env: &TestEnv,
    subject: &Subject,
    t: usize,
    faults: Option<&str>,
    after: Option<Duration>,
    seen: &mut Seen,
    tally: &mut Tally,
) -> Duration {
    (subject.prepare)(env, t);
    // What the pointers serve right before the command (the set-up moved some).
    match read_tree(env) {
        Ok(s) => *seen = s,
        Err(e) => tally
            .failures
            .push(format!("{} trial {t}: after the set-up: {e}", subject.name)),
    }
    let args = (subject.args)(t);
    if std::env::var_os("OTAPUB_SOAK_VERBOSE").is_some() {
        let st = env.otapub(&["rollout", "status"]).output().expect("status");
        eprintln!("before {} trial {t}: {}", subject.name, stdout(&st).trim());
    }
    let op = format!("soak-{}-{t}", subject.name.replace(' ', "-"));
    let mut child = run(env, &args, &op, faults).spawn().expect("spawn otapub");
    if let Some(d) = after {
        std::thread::sleep(d);
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("wait");
    if std::env::var_os("OTAPUB_SOAK_VERBOSE").is_some() {
        eprintln!("{} trial {t}: {} {}", subject.name, out.status, stderr(&out).trim());
    }
    tally.trials += 1;
    if !out.status.success() {
        tally.killed += 1;
    }
    let label = format!("{} trial {t} ({})", subject.name, faults.unwrap_or("random kill"));
    let killed = read_tree(env);
    let start = Instant::now();
    let rerun = run(env, &args, &op, None).output().expect("rerun");
    let took = start.elapsed();
    let checked = env.otapub(&["check"]).output().expect("check");
    let after = read_tree(env);
    match &killed {
        Ok(k) => match after.as_ref().map(|a| between(seen, k, a)) {
            Ok(Err(e)) => tally.failures.push(format!("{label}: {e}")),
            _ => tally.consistent += 1,
        },
        Err(e) => tally.failures.push(format!("{label}: after the kill: {e}")),
    }
    match (rerun.status.success(), checked.status.success(), after) {
        (true, true, Ok(a)) => {
            tally.completed += 1;
            *seen = a;
        }
        (r, c, tree) => tally.failures.push(format!(
            "{label}: rerun ok={r} ({}), check ok={c} ({}), tree {:?}",
            stderr(&rerun).trim(),
            stdout(&checked).trim(),
            tree.err()
        )),
    }
    took
}

/// `OTAPUB_SOAK_SEED` when set (a number, or the test fails), else a fresh
/// random one.
fn soak_seed() -> u64 {
    match std::env::var("OTAPUB_SOAK_SEED") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("OTAPUB_SOAK_SEED={v:?}: not a number")),
        Err(_) => {
            let mut bytes = [0u8; 8];
            getrandom::getrandom(&mut bytes).expect("random seed");
            u64::from_le_bytes(bytes)
        }
    }
}

#[test]
fn every_mutating_command_survives_kills() {
    let seed = soak_seed();
    let replay = format!("soak seed: {seed} (rerun with OTAPUB_SOAK_SEED={seed})");
    eprintln!("{replay}");
    // Every failure, a panic included, names the seed that replays it.
    if let Err(e) = catch_unwind(AssertUnwindSafe(|| soak(seed, &replay))) {
        let what = e
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| e.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        panic!("{what}\n{replay}");
    }
}

fn soak(seed: u64, replay: &str) {
    let random: usize = std::env::var("OTAPUB_SOAK_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    eprintln!("kill soak: {random} random kills per command");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut all_ok = true;
    // OTAPUB_SOAK_ONLY=NAME runs one command's soak (e.g. "rollout set").
    let only = std::env::var("OTAPUB_SOAK_ONLY").ok();
    for subject in subjects()
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name))
    {
        let env = TestEnv::new();
        // Every command signs for the stock client too, so the reader can
        // check `manifest` objects as a device does.
        let key = env.install_expo_key();
        std::fs::write(env.path("otapub.toml"), format!("expo_key = {key:?}\n")).expect("config");
        publish(&env, "base1", "production");
        publish(&env, "base2", "production");
        publish(&env, "base3", "staging");
        let mut seen = read_tree(&env).expect("a consistent start");
        let mut tally = Tally::default();
        let mut t = 0;
        // Each write boundary, until the command runs past its last write.
        let mut boundaries = 0;
        let mut last = loop {
            t += 1;
            let rule = format!("kill@write:*#{}", boundaries + 1);
            let killed_before = tally.killed;
            let took = trial(&env, &subject, t, Some(&rule), None, &mut seen, &mut tally);
            if tally.killed == killed_before {
                break took;
            }
            boundaries += 1;
            assert!(boundaries < 200, "{}: more than 200 writes?", subject.name);
        };
        // A command whose first trial writes nothing was never killed at a
        // boundary: its set-up left it nothing to do.
        if boundaries == 0 {
            tally
                .failures
                .push("no write boundary: the set-up leaves the command nothing to do".into());
        }
        // Random instants within the command's own running time.
        let random = if subject.heavy { random.div_ceil(4) } else { random };
        for _ in 0..random {
            t += 1;
            let micros = (last.as_micros() as u64).max(1000);
            // A share of that time drawn from the seed (not the time modulo
            // a draw): one seed replays the same shares however fast it runs.
            let share: f64 = rng.random();
            let after = Duration::from_micros((micros as f64 * share) as u64);
            last = last.max(trial(&env, &subject, t, None, Some(after), &mut seen, &mut tally));
        }
        // Killed processes leave no temporary files once a command has run.
        let litter: Vec<String> = env.keys("").into_iter().filter(|k| k.contains(".otapub-tmp")).collect();
        if !litter.is_empty() {
            tally.failures.push(format!("litter left: {litter:?}"));
        }
        eprintln!(
            "{:>15}: {} write boundaries + {random} random instants: {} killed, consistent after the kill {}/{}, rerun completed and checked {}/{}",
            subject.name, boundaries, tally.killed, tally.consistent, tally.trials, tally.completed, tally.trials
        );
        for f in &tally.failures {
            eprintln!("    {f} [{replay}]");
        }
        all_ok &= tally.failures.is_empty();
    }
    assert!(all_ok, "the kill soak found inconsistencies (above)");
}
