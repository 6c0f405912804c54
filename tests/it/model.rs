//! Property test of the rules that decide what a pointer serves — the live
//! package, the default rollback target, re-stamps, bans and their
//! fallbacks — against a small reference model written here from the rules in `docs/format.md`:
//! random sequences of publish / ban / rollback / promote and staged
//! rollouts (start, set, pause, resume, complete, abort) on two channels and
//! two platforms, run through the real binary; after every step the exit
//! code and `status --json` (what each pointer serves, its history, its
//! running rollout) must equal the model's.
//!
//! `PROPTEST_CASES` sets the number of sequences (default 12).

use std::collections::BTreeMap;

use crate::common::*;
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
    PublishRollout {
        channel: usize,
        platform: usize,
        percent: u8,
    },
    Rollout {
        channel: usize,
        platform: usize,
        change: Change,
    },
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Set(u8),
    Pause,
    Resume,
    Complete,
    Abort,
}

/// A running (or paused) rollout of the model.
#[derive(Debug, Clone)]
struct Campaign {
    candidate: String,
    percent: u8,
    paused: bool,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize).prop_map(|channel| Op::Publish { channel }),
        2 => (0..2usize, 0..8usize, any::<bool>()).prop_map(|(platform, pick, rollback)| Op::Ban { platform, pick, rollback }),
        2 => (0..2usize, 0..2usize).prop_map(|(channel, platform)| Op::Rollback { channel, platform }),
        1 => (0..2usize, 0..2usize, 0..8usize).prop_map(|(channel, platform, pick)| Op::RollbackTo { channel, platform, pick }),
        1 => (0..2usize, 0..2usize).prop_map(|(channel, platform)| Op::RollbackToEmbedded { channel, platform }),
        1 => (0..2usize, 0..8usize, 0..2usize).prop_map(|(platform, pick, to)| Op::Promote { platform, pick, to }),
        2 => (0..2usize, 0..2usize, 1..100u8).prop_map(|(channel, platform, percent)| Op::PublishRollout { channel, platform, percent }),
        3 => (0..2usize, 0..2usize, change()).prop_map(|(channel, platform, change)| Op::Rollout { channel, platform, change }),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        2 => (0..=101u8).prop_map(Change::Set),
        1 => Just(Change::Pause),
        1 => Just(Change::Resume),
        1 => Just(Change::Complete),
        1 => Just(Change::Abort),
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
    /// Per platform and channel, the rollout that holds the pointer.
    rollouts: [[Option<Campaign>; 2]; 2],
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

    /// The live package: the newest unbanned one, leaving out the
    /// candidate of a rollout that holds the pointer.
    fn live(&self, platform: usize, channel: usize) -> Option<Pkg> {
        let candidate = self.rollouts[platform][channel].as_ref().map(|r| r.candidate.clone());
        self.pointer(platform, channel)
            .into_iter()
            .filter(|p| !p.banned && Some(&p.version) != candidate.as_ref())
            .max_by_key(|p| p.created)
            .cloned()
    }

    /// Ends the rollout on a pointer whose candidate was just banned: the
    /// control is re-stamped (a new embedded directive when it is one).
    fn finish_abort(&mut self, platform: usize, channel: usize) {
        self.rollouts[platform][channel] = None;
        match self.live(platform, channel) {
            Some(control) if control.update => self.restamp(platform, &control, channel),
            Some(_) => self.push_embedded(platform, channel),
            None => {}
        }
    }

    /// A rollBackToEmbedded directive: its version is derived from a hash,
    /// read back from `status` after the step.
    fn push_embedded(&mut self, platform: usize, channel: usize) {
        let created = self.created_on(platform, channel);
        self.pkgs[platform].push(Pkg {
            version: String::new(),
            channel,
            original: String::new(),
            created,
            banned: false,
            update: false,
        });
    }

    /// Bans an original and its re-stamps on every channel; returns
    /// whether anything was left to ban. A rollout whose candidate is
    /// banned is aborted; with `rollback`, a pointer whose live package was
    /// banned re-stamps its fallback.
    fn ban_family(&mut self, platform: usize, original: &str, rollback: bool) -> bool {
        let family: Vec<usize> = (0..self.pkgs[platform].len())
            .filter(|&i| self.pkgs[platform][i].original == original)
            .collect();
        if family.iter().all(|&i| self.pkgs[platform][i].banned) {
            return false;
        }
        let mut channels: Vec<usize> = family.iter().map(|&i| self.pkgs[platform][i].channel).collect();
        channels.sort();
        channels.dedup();
        let live_before: Vec<(usize, Option<String>)> = channels
            .iter()
            .map(|&c| (c, self.live(platform, c).map(|p| p.version)))
            .collect();
        let banned: Vec<String> = family.iter().map(|&i| self.pkgs[platform][i].version.clone()).collect();
        for &i in &family {
            self.pkgs[platform][i].banned = true;
        }
        for (c, before) in live_before {
            if self.rollouts[platform][c]
                .as_ref()
                .is_some_and(|r| banned.contains(&r.candidate))
            {
                self.finish_abort(platform, c);
                continue;
            }
            let was_banned_live = before.is_some_and(|v| banned.contains(&v));
            if let (true, true, Some(fallback)) = (rollback, was_banned_live, self.live(platform, c)) {
                if fallback.update {
                    self.restamp(platform, &fallback, c);
                }
            }
        }
        true
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
            let held = (0..2).any(|p| model.rollouts[p][channel].is_some());
            for platform in (0..2).filter(|_| !held) {
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
            let outcome = if held { Outcome::Refused } else { Outcome::Changed };
            (args.iter().map(|s| s.to_string()).collect(), outcome)
        }
        Op::PublishRollout {
            channel,
            platform,
            percent,
        } => {
            model.published += 1;
            let version = format!("p{}", model.published);
            write_export(&env.path("export"), &version);
            let args: Vec<String> = [
                "publish",
                "export",
                "--channel",
                CHANNELS[channel],
                "--fingerprint",
                "fp",
                "--version",
                &version,
                "--platform",
                PLATFORMS[platform],
                "--rollout",
                &percent.to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if model.rollouts[platform][channel].is_some() || model.live(platform, channel).is_none() {
                (args, Outcome::Refused)
            } else {
                let created = model.created_on(platform, channel);
                model.pkgs[platform].push(Pkg {
                    version: version.clone(),
                    channel,
                    original: version.clone(),
                    created,
                    banned: false,
                    update: true,
                });
                model.rollouts[platform][channel] = Some(Campaign {
                    candidate: version,
                    percent,
                    paused: false,
                });
                (args, Outcome::Changed)
            }
        }
        Op::Rollout {
            channel,
            platform,
            change,
        } => {
            let mut args: Vec<String> = [
                "rollout",
                "",
                "--channel",
                CHANNELS[channel],
                "--platform",
                PLATFORMS[platform],
                "--fingerprint",
                "fp",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let (sub, extra): (&str, Vec<String>) = match change {
                Change::Set(p) => ("set", vec!["--percent".into(), p.to_string()]),
                Change::Pause => ("pause", vec![]),
                Change::Resume => ("resume", vec![]),
                Change::Complete => ("complete", vec![]),
                Change::Abort => ("abort", vec!["--reason".into(), "model".into()]),
            };
            args[1] = sub.into();
            args.extend(extra);
            let outcome = match (model.rollouts[platform][channel].clone(), change) {
                (_, Change::Set(p)) if !(1..=100).contains(&p) => Outcome::Refused,
                (None, _) => Outcome::Refused,
                (Some(r), Change::Set(_)) if r.paused => Outcome::Refused,
                (Some(r), Change::Set(p)) if p < r.percent => Outcome::Refused,
                (Some(r), Change::Set(p)) if p == r.percent => Outcome::Unchanged,
                (Some(r), Change::Set(p)) if p < 100 => {
                    model.rollouts[platform][channel] = Some(Campaign { percent: p, ..r });
                    Outcome::Changed
                }
                (Some(r), Change::Pause) if r.paused => Outcome::Unchanged,
                (Some(r), Change::Resume) if !r.paused => Outcome::Unchanged,
                (Some(r), Change::Pause | Change::Resume) => {
                    model.rollouts[platform][channel] = Some(Campaign { paused: !r.paused, ..r });
                    Outcome::Changed
                }
                (Some(r), Change::Set(_) | Change::Complete) => {
                    // The candidate becomes live: at once when it is the
                    // newest unbanned package, else by a re-stamp.
                    model.rollouts[platform][channel] = None;
                    let live = model.live(platform, channel);
                    if live.as_ref().is_none_or(|l| l.version != r.candidate) {
                        let candidate = model.pkgs[platform]
                            .iter()
                            .find(|p| p.version == r.candidate)
                            .cloned()
                            .expect("candidate");
                        model.restamp(platform, &candidate, channel);
                    }
                    Outcome::Changed
                }
                (Some(r), Change::Abort) => {
                    let original = model.pkgs[platform]
                        .iter()
                        .find(|p| p.version == r.candidate)
                        .expect("candidate")
                        .original
                        .clone();
                    model.ban_family(platform, &original, false);
                    Outcome::Changed
                }
            };
            (args, outcome)
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
            if model.ban_family(platform, &target.original, rollback) {
                (args, Outcome::Changed)
            } else {
                (args, Outcome::Unchanged)
            }
        }
        Op::Rollback { channel, platform } => {
            let args = rollback_args(channel, platform);
            if model.pointer(platform, channel).is_empty() || model.rollouts[platform][channel].is_some() {
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
            if model.rollouts[platform][channel].is_some() {
                (args, Outcome::Refused)
            } else if source.update && live.is_some_and(|l| l.original == source.original) {
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
            if model.pointer(platform, channel).is_empty() || model.rollouts[platform][channel].is_some() {
                (args, Outcome::Refused)
            } else if model.live(platform, channel).is_some_and(|l| !l.update) {
                (args, Outcome::Unchanged)
            } else {
                model.push_embedded(platform, channel);
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
            if source.channel == to || model.rollouts[platform][to].is_some() {
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
    name_directives(env, model);
    compare(env, model, op);
}

/// The rollBackToEmbedded directives the step made are named by a hash of
/// their content: the model takes each name from the same place in the
/// pointer's real history (its createdAt order is the model's own).
fn name_directives(env: &TestEnv, model: &mut Model) {
    if model.pkgs.iter().flatten().all(|p| !p.version.is_empty()) {
        return;
    }
    let status = env.json(&["status"]);
    for (platform, platform_name) in PLATFORMS.iter().enumerate() {
        for (channel, channel_name) in CHANNELS.iter().enumerate() {
            let Some(real) = status["pointers"]
                .as_array()
                .expect("pointers")
                .iter()
                .find(|p| p["channel"] == *channel_name && p["platform"] == *platform_name)
            else {
                continue;
            };
            let oldest_first: Vec<String> = real["history"]
                .as_array()
                .expect("history")
                .iter()
                .rev()
                .map(|h| h["version"].as_str().expect("version").to_string())
                .collect();
            let mut mine: Vec<&mut Pkg> = model.pkgs[platform]
                .iter_mut()
                .filter(|p| p.channel == channel)
                .collect();
            mine.sort_by_key(|p| p.created);
            for (p, name) in mine.into_iter().zip(&oldest_first) {
                if p.version.is_empty() {
                    p.version = name.clone();
                    p.original = name.clone();
                }
            }
        }
    }
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

/// What a pointer serves, its history ((version, banned), newest first),
/// and its rollout (candidate, percent, paused).
type PointerView = (String, Vec<(String, bool)>, Option<(String, u64, bool)>);

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
            (
                p["serves"].as_str().expect("serves").to_string(),
                history,
                p.get("rollout").map(|r| {
                    (
                        r["candidate"].as_str().expect("candidate").to_string(),
                        r["percent"].as_u64().expect("percent"),
                        r["state"] == "paused",
                    )
                }),
            ),
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
            let rollout = model.rollouts[platform][channel]
                .as_ref()
                .map(|r| (r.candidate.clone(), u64::from(r.percent), r.paused));
            expected.insert(
                (channel_name.to_string(), platform_name.to_string()),
                (serves, history, rollout),
            );
        }
    }
    assert_eq!(real, expected, "after {op:?}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        max_shrink_iters: 200,
        // Failures are kept in tests/it/model.proptest-regressions, beside
        // this file (the default, SourceParallel, would look for
        // tests/proptest-regressions/model.txt now that tests/it has a main.rs).
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
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
