//! Property test of the rules that decide what a pointer serves — the live
//! package, the default rollback target, re-stamps, bans and their
//! fallbacks — against a small reference model written here from SPEC.md:
//! random sequences of publish / ban / rollback / promote on two channels
//! and two platforms, run through the real binary; after every step the
//! exit code and `status --json` must equal the model's.
//!
//! `PROPTEST_CASES` sets the number of sequences (default 12).

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;

const CHANNELS: [&str; 2] = ["production", "staging"];
const PLATFORMS: [&str; 2] = ["ios", "android"];

#[derive(Debug, Clone)]
enum Op {
    Publish {
        channel: usize,
    },
    Ban {
        platform: usize,
        pick: usize,
        rollback: bool,
    },
    Rollback {
        channel: usize,
        platform: usize,
    },
    RollbackTo {
        channel: usize,
        platform: usize,
        pick: usize,
    },
    RollbackToEmbedded {
        channel: usize,
        platform: usize,
    },
    Promote {
        platform: usize,
        pick: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize).prop_map(|channel| Op::Publish { channel }),
        2 => (0..2usize, 0..8usize, any::<bool>()).prop_map(|(platform, pick, rollback)| Op::Ban { platform, pick, rollback }),
        2 => (0..2usize, 0..2usize).prop_map(|(channel, platform)| Op::Rollback { channel, platform }),
        1 => (0..2usize, 0..2usize, 0..8usize).prop_map(|(channel, platform, pick)| Op::RollbackTo { channel, platform, pick }),
        1 => (0..2usize, 0..2usize).prop_map(|(channel, platform)| Op::RollbackToEmbedded { channel, platform }),
        1 => (0..2usize, 0..8usize, 0..2usize).prop_map(|(platform, pick, to)| Op::Promote { platform, pick, to }),
    ]
}

/// One package of the model. `created` is a logical clock: every command
/// runs later than the one before, as the real ones do.
#[derive(Debug, Clone)]
struct Pkg {
    version: String,
    channel: usize,
    original: String,
    created: u64,
    banned: bool,
    update: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// Per platform, every package in creation order.
    pkgs: [Vec<Pkg>; 2],
    now: u64,
    published: usize,
}

/// What the model predicts a command does.
enum Outcome {
    Changed,
    Unchanged,
    Refused,
}

impl Model {
    fn pointer(&self, platform: usize, channel: usize) -> Vec<&Pkg> {
        self.pkgs[platform].iter().filter(|p| p.channel == channel).collect()
    }

    fn live(&self, platform: usize, channel: usize) -> Option<Pkg> {
        self.pointer(platform, channel)
            .into_iter()
            .filter(|p| !p.banned)
            .max_by_key(|p| p.created)
            .cloned()
    }

    fn original_time(&self, platform: usize, p: &Pkg) -> u64 {
        self.pkgs[platform]
            .iter()
            .find(|o| o.version == p.original)
            .map_or(p.created, |o| o.created)
    }

    fn newest(&self, platform: usize, channel: usize) -> Option<u64> {
        self.pointer(platform, channel).iter().map(|p| p.created).max()
    }

    /// A new package on a pointer, later than everything on it.
    fn created_on(&self, platform: usize, channel: usize) -> u64 {
        match self.newest(platform, channel) {
            Some(n) if n >= self.now => n + 1,
            _ => self.now,
        }
    }

    fn restamp(&mut self, platform: usize, source: &Pkg, channel: usize) {
        let n = self.pkgs[platform]
            .iter()
            .filter(|p| p.original == source.original && p.version != p.original)
            .count()
            + 1;
        let created = self.created_on(platform, channel);
        self.pkgs[platform].push(Pkg {
            version: format!("{}.r{n}", source.original),
            channel,
            original: source.original.clone(),
            created,
            banned: false,
            update: true,
        });
    }

    /// SPEC's default rollback target: the newest unbanned bundle whose
    /// original was published before the original of the pointer's newest
    /// package (banned included when finding the newest).
    fn default_target(&self, platform: usize, channel: usize) -> Option<Pkg> {
        let pkgs = self.pointer(platform, channel);
        let newest = pkgs.iter().max_by_key(|p| p.created)?;
        let limit = self.original_time(platform, newest);
        pkgs.iter()
            .filter(|p| !p.banned && p.update && self.original_time(platform, p) < limit)
            .max_by_key(|p| (self.original_time(platform, p), p.created))
            .map(|p| (*p).clone())
    }
}

/// Runs one step on the model and on the binary; panics on a difference.
fn step(env: &TestEnv, model: &mut Model, op: &Op) {
    model.now += 1_000;
    let (args, outcome): (Vec<String>, Outcome) = match *op {
        Op::Publish { channel } => {
            model.published += 1;
            let version = format!("p{}", model.published);
            write_export(&env.path("export"), &version);
            for platform in 0..2 {
                let created = model.created_on(platform, channel);
                model.pkgs[platform].push(Pkg {
                    version: version.clone(),
                    channel,
                    original: version.clone(),
                    created,
                    banned: false,
                    update: true,
                });
            }
            let args = [
                "publish",
                "export",
                "--channel",
                CHANNELS[channel],
                "--fingerprint",
                "fp",
                "--version",
                &version,
            ];
            (args.iter().map(|s| s.to_string()).collect(), Outcome::Changed)
        }
        Op::Ban {
            platform,
            pick,
            rollback,
        } => {
            let all = &model.pkgs[platform];
            if all.is_empty() {
                return;
            }
            let target = all[pick % all.len()].clone();
            let mut args = vec![
                "ban".to_string(),
                target.version.clone(),
                "--platform".into(),
                PLATFORMS[platform].into(),
                "--reason".into(),
                "model".into(),
            ];
            if rollback {
                args.push("--rollback".into());
            }
            let family: Vec<usize> = (0..all.len()).filter(|&i| all[i].original == target.original).collect();
            if family.iter().all(|&i| all[i].banned) {
                (args, Outcome::Unchanged)
            } else {
                let channels: Vec<usize> = {
                    let mut c: Vec<usize> = family.iter().map(|&i| all[i].channel).collect();
                    c.sort();
                    c.dedup();
                    c
                };
                let live_before: Vec<(usize, Option<String>)> = channels
                    .iter()
                    .map(|&c| (c, model.live(platform, c).map(|p| p.version)))
                    .collect();
                let banned: Vec<String> = family.iter().map(|&i| all[i].version.clone()).collect();
                for &i in &family {
                    model.pkgs[platform][i].banned = true;
                }
                if rollback {
                    for (c, before) in live_before {
                        let was_banned_live = before.is_some_and(|v| banned.contains(&v));
                        if let (true, Some(fallback)) = (was_banned_live, model.live(platform, c)) {
                            if fallback.update {
                                model.restamp(platform, &fallback, c);
                            }
                        }
                    }
                }
                (args, Outcome::Changed)
            }
        }
        Op::Rollback { channel, platform } => {
            let args = rollback_args(channel, platform);
            if model.pointer(platform, channel).is_empty() {
                (args, Outcome::Refused)
            } else if let Some(target) = model.default_target(platform, channel) {
                model.restamp(platform, &target, channel);
                (args, Outcome::Changed)
            } else {
                (args, Outcome::Refused)
            }
        }
        Op::RollbackTo {
            channel,
            platform,
            pick,
        } => {
            let pkgs = model.pointer(platform, channel);
            if pkgs.is_empty() {
                return;
            }
            let source = pkgs[pick % pkgs.len()].clone();
            let mut args = rollback_args(channel, platform);
            args.extend(["--to".into(), source.version.clone()]);
            let live = model.live(platform, channel);
            if source.update && live.is_some_and(|l| l.original == source.original) {
                (args, Outcome::Unchanged)
            } else if source.banned || !source.update {
                (args, Outcome::Refused)
            } else {
                model.restamp(platform, &source, channel);
                (args, Outcome::Changed)
            }
        }
        Op::RollbackToEmbedded { channel, platform } => {
            let mut args = rollback_args(channel, platform);
            args.push("--to-embedded".into());
            if model.pointer(platform, channel).is_empty() {
                (args, Outcome::Refused)
            } else if model.live(platform, channel).is_some_and(|l| !l.update) {
                (args, Outcome::Unchanged)
            } else {
                // The version is derived from a hash: read it from the output.
                let created = model.created_on(platform, channel);
                model.pkgs[platform].push(Pkg {
                    version: String::new(),
                    channel,
                    original: String::new(),
                    created,
                    banned: false,
                    update: false,
                });
                (args, Outcome::Changed)
            }
        }
        Op::Promote { platform, pick, to } => {
            let all = &model.pkgs[platform];
            if all.is_empty() {
                return;
            }
            let source = all[pick % all.len()].clone();
            let args: Vec<String> = [
                "promote",
                &source.version,
                "--platform",
                PLATFORMS[platform],
                "--to",
                CHANNELS[to],
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let live = model.live(platform, to);
            if source.channel == to {
                (args, Outcome::Refused)
            } else if live.is_some_and(|l| l.update && l.original == source.original) {
                (args, Outcome::Unchanged)
            } else if source.banned || !source.update {
                (args, Outcome::Refused)
            } else {
                model.restamp(platform, &source, to);
                (args, Outcome::Changed)
            }
        }
    };
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.otapub(&argv).arg("--json").output().expect("run otapub");
    let want = match outcome {
        Outcome::Changed | Outcome::Unchanged => 0,
        Outcome::Refused => 2,
    };
    assert_eq!(out.status.code(), Some(want), "{op:?} {argv:?}: {}", stderr(&out));
    if let Op::RollbackToEmbedded { platform, .. } = *op {
        if matches!(outcome, Outcome::Changed) {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json output");
            let version = v["version"].as_str().expect("version").to_string();
            let last = model.pkgs[platform].last_mut().expect("just pushed");
            last.version = version.clone();
            last.original = version;
        }
    }
    compare(env, model, op);
}

fn rollback_args(channel: usize, platform: usize) -> Vec<String> {
    [
        "rollback",
        "--channel",
        CHANNELS[channel],
        "--platform",
        PLATFORMS[platform],
        "--fingerprint",
        "fp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What a pointer serves, and its history: (version, banned), newest first.
type PointerView = (String, Vec<(String, bool)>);

/// `status --json` against the model: what each pointer serves, and its
/// history (versions newest first, with their bans).
fn compare(env: &TestEnv, model: &Model, op: &Op) {
    let status = env.json(&["status"]);
    let mut real: BTreeMap<(String, String), PointerView> = BTreeMap::new();
    for p in status["pointers"].as_array().expect("pointers") {
        let history = p["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|h| {
                (
                    h["version"].as_str().expect("version").to_string(),
                    h.get("banned").is_some(),
                )
            })
            .collect();
        real.insert(
            (
                p["channel"].as_str().expect("channel").into(),
                p["platform"].as_str().expect("platform").into(),
            ),
            (p["serves"].as_str().expect("serves").to_string(), history),
        );
    }
    let mut expected = BTreeMap::new();
    for (platform, platform_name) in PLATFORMS.iter().enumerate() {
        for (channel, channel_name) in CHANNELS.iter().enumerate() {
            let mut pkgs = model.pointer(platform, channel);
            if pkgs.is_empty() {
                continue;
            }
            pkgs.sort_by_key(|p| std::cmp::Reverse(p.created));
            let serves = match model.live(platform, channel) {
                Some(l) if l.update => l.version,
                Some(l) => format!("rollBackToEmbedded ({})", l.version),
                None => "noUpdateAvailable".to_string(),
            };
            let history = pkgs.iter().map(|p| (p.version.clone(), p.banned)).collect();
            expected.insert((channel_name.to_string(), platform_name.to_string()), (serves, history));
        }
    }
    assert_eq!(real, expected, "after {op:?}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn status_follows_the_reference_model(ops in proptest::collection::vec(op(), 1..14)) {
        let env = TestEnv::new();
        let mut model = Model::default();
        for op in &ops {
            step(&env, &mut model, op);
        }
    }
}
