//! Every integration test, in one test binary (one link of the crate instead
//! of one per file). Each module was a file of its own under `tests/`; its
//! doc comment says what it covers. `cargo test --test it -- MODULE::` runs
//! one module (the filter is a substring: `s3::` selects the s3 module's
//! tests only, not `s3_concurrent::` or `s3_faults::`). A new test file is a
//! module here: a `.rs` file directly under `tests/` would be linked as a
//! binary of its own again.
//!
//! One process runs them all, several at a time: a test sets no process
//! environment and changes no working directory (it gives its child
//! `Command`s what they need), and takes its ports from
//! [`common::edge::free_port`], which never hands the same port out twice.

mod common;

// The CI files and IAM policies of deploy/: subcommands and flags that exist, S3 requests each role makes.
mod access;
// docs/architecture.md's import map held against `src/`.
mod architecture;
// Bad input: exit 2, a message that says how to fix it, the store unchanged.
mod bad_input;
// The benchmark's smoke run (bench/run.py on tiny data).
mod bench_smoke;
// The runtime-version guard: `--require-build` and the warning for a runtime no build has.
mod builds;
// `otapub completions` loaded into a real bash.
mod completions;
// Several publishers at once on one local store.
mod concurrency;
// The core scenario end to end on a local store.
mod core_scenario;
// Delta bytecode: hermesc against the pointer's bytecode, in a copy of the real Expo SDK 57 app.
mod delta_bytecode;
// The CDN templates (CloudFormation, Terraform) checked statically.
mod deploy_templates;
// `otapub diff V1 V2 --platform P`.
mod diff;
// The staged-rollout edge rule in `otapub serve`, nginx with njs, workerd and Lambda@Edge.
mod edge;
// `otapub embedded add`: a build's embedded launch asset recorded as a patch base.
mod embedded;
// What the stock expo-updates client accepts, served by `otapub serve`.
mod expo_client;
// npm/otapub/app.plugin.js applied by Expo's own @expo/config-plugins.
mod expo_plugin;
// The path a new user takes in a real Expo SDK 57 app.
mod expo_project;
// `otapub gc`: deletes exactly what no package references, past the grace period.
mod gc;
// `otapub insights ingest` and `otapub insights` against a real `otapub serve`'s access log.
mod insights;
// `otapub keys expo-leaf`, checked with OpenSSL.
mod keys;
// The kill soak: every mutating command killed at each write boundary and at random instants.
mod kill_soak;
// Property test of what a pointer serves against a reference model.
mod model;
// The npm distribution: packed, installed offline, run through `npx otapub`.
mod npm_package;
// `otapub ops` and `otapub ops sweep`: stale operations.
mod ops;
// otapub's BSDIFF40 patches against the reference bsdiff/bspatch 4.3.
mod patch_format;
// Launch-asset patches end to end on real successive Hermes bundles.
mod patches;
// The commit protocol under forced interleavings (`OTAPUB_FAULTS`).
mod protocol;
// Publishing real and synthetic exports: the tree, retries, determinism, the clock.
mod publish;
// The operators' page in headless Chromium, and the insta snapshots.
mod report;
// Retention: `gc --keep CHANNEL=N`.
mod retention;
// Staged rollouts through the real binary.
mod rollout;
// The S3 store against a real S3-compatible server, one writer at a time (moto, or s3s-fs).
mod s3;
// Several writers and crashes against moto.
mod s3_concurrent;
// The S3 client's retries through a misbehaving proxy.
mod s3_faults;
// A terminal that behaves: progress on a TTY, quiet when piped, JSON with `--json`.
mod terminal;
