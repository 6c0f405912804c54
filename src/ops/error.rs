//! What the commands refuse: one variant per kind of refusal, grouped by the
//! command file (`ops/<command>.rs`) that refuses it, each message saying
//! how to fix it.

use std::path::PathBuf;

use crate::error::{ExitClass, Refusal};
use crate::names::{Channel, Platform, PointerId, Version};

/// A command's refusal of what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    // ban.rs, restamp.rs (promote), diff.rs
    /// `ban` with a blank reason.
    #[error("--reason is blank; say why the package is banned, e.g. --reason \"crash on launch\"")]
    BlankBanReason,
    /// No package of that version on that platform.
    #[error("no package {version} on {platform}; `otapub status` lists them")]
    NoPackage {
        /// The version asked for.
        version: Version,
        /// The platform.
        platform: Platform,
    },

    // builds.rs
    /// `builds add --note` that is not one short line.
    #[error("--note: give one line of at most 500 characters (e.g. the store version and build number)")]
    BadNote,

    // embedded.rs
    /// `--update-id` that is not a UUID.
    #[error("--update-id {id:?} is not a UUID (8-4-4-4-12 hex); take the build's embedded update id from its app.manifest (`id`)")]
    UpdateId {
        /// The id given.
        id: String,
    },
    /// The embedded bundle cannot be read.
    #[error("BUNDLE {}: cannot read it ({reason}); give the launch asset the build embeds (e.g. main.jsbundle or index.android.bundle)", path.display())]
    BundleUnreadable {
        /// The bundle given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The embedded bundle is empty.
    #[error("BUNDLE {} is empty; give the launch asset the build embeds", path.display())]
    BundleEmpty {
        /// The bundle given.
        path: PathBuf,
    },
    /// The embedded update id is recorded with another bundle.
    #[error("embedded update {id} is already recorded on {platform} with another bundle or fingerprint ({fingerprint}, {launch_asset}); an update id names one build's bundle: check --update-id against this build's app.manifest")]
    EmbeddedConflict {
        /// The update id.
        id: String,
        /// The platform.
        platform: Platform,
        /// The fingerprint recorded.
        fingerprint: String,
        /// The launch asset recorded.
        launch_asset: String,
    },

    // gc.rs
    /// `--keep CHANNEL=0`.
    #[error("--keep {channel}=0: keep at least 1 package (what a pointer serves is always kept anyway)")]
    KeepZero {
        /// The channel.
        channel: Channel,
    },
    /// `--keep` of one channel twice.
    #[error("--keep {channel}=… is given twice; give each channel once")]
    KeepTwice {
        /// The channel.
        channel: Channel,
    },
    /// `--keep` of a channel the index does not have.
    #[error("--keep {channel}={n}: no channel {channel} in the index (channels: {known}); check the spelling")]
    KeepUnknown {
        /// The channel.
        channel: Channel,
        /// How many to keep.
        n: usize,
        /// The channels there are (`none`).
        known: String,
    },

    // insights.rs
    /// A log that changed while it was ingested.
    #[error("{}: it changed while it was read; ingest a log file once it is complete (a rotated one). Nothing changed", path.display())]
    LogChanged {
        /// The log file.
        path: PathBuf,
    },

    // mod.rs
    /// The index records no base URL.
    #[error("index: the index records no base URL; publish once with --base-url")]
    NoRecordedBaseUrl,

    // operations.rs
    /// `ops sweep --older-than` under a minute.
    #[error("--older-than must be at least 1 minute: a younger operation may still be running")]
    SweepTooYoung,

    // publish.rs
    /// `--base-url` that is not an absolute http(s) URL.
    #[error("--base-url {url:?} is not an absolute http(s) URL; give the public URL of the store's public/ folder, e.g. https://updates.example.com")]
    BaseUrl {
        /// The URL given.
        url: String,
    },
    /// `--expo-config` that cannot be read.
    #[error("--expo-config {}: cannot read it ({reason}); write it with `npx expo config --type public --json > expoConfig.json`", path.display())]
    ExpoConfigUnreadable {
        /// The file given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `--expo-config` that is not JSON.
    #[error("--expo-config {}: not JSON ({reason}); pass the output of `npx expo config --type public --json`", path.display())]
    ExpoConfigNotJson {
        /// The file given.
        path: PathBuf,
        /// The parser's error.
        reason: String,
    },
    /// `--expo-config` that is JSON but no object.
    #[error("--expo-config {}: not a JSON object; pass the output of `npx expo config --type public --json`", path.display())]
    ExpoConfigNotObject {
        /// The file given.
        path: PathBuf,
    },
    /// A platform published without its export directory.
    #[error("every platform published needs its export directory")]
    NoExportDir,
    /// Nothing to publish.
    #[error("no platform to publish; pass --platform ios, android or all")]
    NoPlatform,
    /// `--base-url` that is not the one the store records.
    #[error("--base-url {given} differs from the base URL this store records ({recorded}); every asset URL depends on it — \
             drop --base-url, or pass --change-base-url to publish new packages under the new one")]
    BaseUrlDiffers {
        /// The URL given.
        given: String,
        /// The URL recorded.
        recorded: String,
    },
    /// The first publish to a remote store without `--base-url`.
    #[error("{store} has no base URL yet; the first publish must give one with --base-url (the public URL of its public/ folder)")]
    NoBaseUrlYet {
        /// The store's URL.
        store: String,
    },
    /// `--require-build` and no build recorded.
    #[error(
        "no build is recorded for {missing}, so no installed app would receive this update; \
             record each store build with `otapub builds add --platform P --runtime-version RV` (CI, after the build), \
             or publish without --require-build (require_build in otapub.toml)"
    )]
    NoBuild {
        /// The platform/runtime-version pairs without a build.
        missing: String,
    },
    /// `--version` taken by other content.
    #[error(
        "version {version} is already published on {platform} with different content; \
             publish with another --version, or omit --version to derive one from the content"
    )]
    VersionTaken {
        /// The version.
        version: Version,
        /// The platform.
        platform: Platform,
    },
    /// An export whose bundle path names no file.
    #[error("{}: the bundle has no file name; export the project again", dir.display())]
    BundleNoFileName {
        /// The export directory.
        dir: PathBuf,
    },

    // rebuild.rs
    /// `index rebuild` without `--trust`.
    #[error("index rebuild adopts only what verifies: pass --trust KEY.pub for each public key that signed the store's packages (e.g. --trust keys/release.pub)")]
    NoTrust,
    /// A directive that cannot be recovered, and no key to sign a new one.
    #[error("{pointer} has no live package and its noUpdateAvailable directive cannot be recovered from the store; pass --key to sign a new one")]
    DirectiveLost {
        /// The pointer.
        pointer: PointerId,
    },

    // refresh.rs
    /// `refresh` without an Expo key.
    #[error("refresh re-signs the Expo layer: give the current leaf with --expo-key and its chain with --expo-chain")]
    RefreshNeedsExpo,

    // restamp.rs, rollout.rs (which)
    /// A pointer with no packages.
    #[error(
        "nothing is published on {pointer}; check --channel, --platform and --fingerprint against `otapub status`"
    )]
    NothingPublished {
        /// The pointer.
        pointer: PointerId,
    },
    /// `rollback --to` a version that is not on the pointer.
    #[error("{version} is not a package of {pointer}; `otapub status` lists the versions you can roll back to")]
    NotOnPointer {
        /// The version.
        version: Version,
        /// The pointer.
        pointer: PointerId,
    },
    /// `rollback` with nothing earlier to go back to.
    #[error("{pointer} has no earlier unbanned bundle to roll back to; use --to VERSION, or --to-embedded to run the build's embedded update")]
    NoEarlier {
        /// The pointer.
        pointer: PointerId,
    },
    /// `promote` to the channel the package is on.
    #[error("{platform}/{version} is already on channel {channel}; to serve it again there use `otapub rollback --to {version}`")]
    AlreadyOnChannel {
        /// The platform.
        platform: Platform,
        /// The version.
        version: Version,
        /// The channel.
        channel: Channel,
    },

    // rollout.rs
    /// A change to a paused rollout that needs it running.
    #[error("the rollout on {pointer} is paused; `otapub rollout resume --channel {} --platform {} --fingerprint {}` before you {what}", pointer.channel, pointer.platform, pointer.fingerprint)]
    Paused {
        /// The pointer.
        pointer: PointerId,
        /// What was asked.
        what: &'static str,
    },
    /// No rollout on the pointer.
    #[error("no rollout runs on {pointer}; start one with `otapub publish … --rollout PERCENT` or `otapub promote … --rollout PERCENT` (`otapub rollout status` lists them)")]
    NoRollout {
        /// The pointer.
        pointer: PointerId,
    },
    /// `rollout abort` with a blank reason.
    #[error("--reason is blank; say why the rollout is aborted, e.g. --reason \"crash rate up\" (the candidate is banned with it)")]
    BlankAbortReason,
    /// `rollout set --percent` out of range.
    #[error("--percent {percent}: give the share of devices on the candidate, 1 to 100 (100 completes the rollout)")]
    Percent {
        /// The share given.
        percent: u8,
    },
    /// The rollout changed while its gate was measured.
    #[error("the rollout on {pointer} changed while the gate was measured; run the command again")]
    ChangedDuringGate {
        /// The pointer.
        pointer: PointerId,
    },
    /// `rollout set --percent` below the current share.
    #[error("--percent {percent} is below the rollout's {current} %: a rollout only grows (devices that took the candidate keep it); to go back use `otapub rollout pause` or `otapub rollout abort`")]
    PercentDown {
        /// The share given.
        percent: u8,
        /// The rollout's share.
        current: u8,
    },
    /// A gate on a directive candidate.
    #[error("the candidate is a directive, which no device reports; advance without a gate")]
    GateOnDirective,
    /// A rollout's candidate is not in the index.
    #[error("index: rollout candidate {candidate} is not in the index; restore the index with `otapub index rebuild`")]
    CandidateMissing {
        /// The candidate.
        candidate: Version,
    },
    /// A rollout record that does not parse.
    #[error(
        "index: the rollout record of {pointer} is unreadable ({reason}); run `otapub index rebuild --trust KEY.pub`"
    )]
    RecordUnreadable {
        /// The pointer.
        pointer: PointerId,
        /// Why.
        reason: String,
    },

    // steps.rs
    /// Re-stamping a banned package.
    #[error(
        "{platform}/{version} is banned and can never be served again; choose another version (see `otapub status`)"
    )]
    Banned {
        /// The platform.
        platform: Platform,
        /// The version.
        version: Version,
    },
    /// Re-stamping a retired package.
    #[error("{platform}/{version} was retired by `otapub gc --keep` and its bundle may be deleted; choose a newer version (see `otapub status`)")]
    Retired {
        /// The platform.
        platform: Platform,
        /// The version.
        version: Version,
    },
    /// Re-stamping a rollBackToEmbedded directive.
    #[error("{version} is a rollBackToEmbedded directive, not an update; use `otapub rollback --to-embedded` instead")]
    IsDirective {
        /// The version.
        version: Version,
    },
    /// A rollout whose candidate is not a package on its pointer (sealed or completed).
    #[error("index: the rollout on {pointer} names candidate {candidate} that is not a package there; restore the index with `otapub index rebuild`")]
    CandidateNotOnPointer {
        /// The pointer.
        pointer: PointerId,
        /// The candidate.
        candidate: Version,
    },
    /// A change to what a pointer with an active rollout serves.
    #[error("cannot {what}: {finish}")]
    Rolling {
        /// What was asked.
        what: String,
        /// The rollout, and how to finish it.
        finish: String,
    },
    /// `--rollout` on a pointer that serves nothing.
    #[error(
        "{pointer} serves nothing yet that devices could keep as the control of a rollout; publish without --rollout"
    )]
    NoControl {
        /// The pointer.
        pointer: PointerId,
    },

    // verify.rs
    /// `verify --url` that is not http(s).
    #[error("--url {url:?}: give the http(s) URL the app's update URLs start with")]
    VerifyUrl {
        /// The URL given.
        url: String,
    },
}

impl Refusal for OpError {
    fn class(&self) -> ExitClass {
        match self {
            OpError::NoRecordedBaseUrl
            | OpError::CandidateNotOnPointer { .. }
            | OpError::CandidateMissing { .. }
            | OpError::RecordUnreadable { .. } => ExitClass::Environment,
            OpError::BlankBanReason
            | OpError::NoPackage { .. }
            | OpError::BadNote
            | OpError::UpdateId { .. }
            | OpError::BundleUnreadable { .. }
            | OpError::BundleEmpty { .. }
            | OpError::EmbeddedConflict { .. }
            | OpError::KeepZero { .. }
            | OpError::KeepTwice { .. }
            | OpError::KeepUnknown { .. }
            | OpError::LogChanged { .. }
            | OpError::SweepTooYoung
            | OpError::BaseUrl { .. }
            | OpError::ExpoConfigUnreadable { .. }
            | OpError::ExpoConfigNotJson { .. }
            | OpError::ExpoConfigNotObject { .. }
            | OpError::NoExportDir
            | OpError::NoPlatform
            | OpError::BaseUrlDiffers { .. }
            | OpError::NoBaseUrlYet { .. }
            | OpError::NoBuild { .. }
            | OpError::VersionTaken { .. }
            | OpError::BundleNoFileName { .. }
            | OpError::NoTrust
            | OpError::DirectiveLost { .. }
            | OpError::RefreshNeedsExpo
            | OpError::NothingPublished { .. }
            | OpError::NotOnPointer { .. }
            | OpError::NoEarlier { .. }
            | OpError::AlreadyOnChannel { .. }
            | OpError::Paused { .. }
            | OpError::NoRollout { .. }
            | OpError::BlankAbortReason
            | OpError::Percent { .. }
            | OpError::ChangedDuringGate { .. }
            | OpError::PercentDown { .. }
            | OpError::GateOnDirective
            | OpError::Banned { .. }
            | OpError::Retired { .. }
            | OpError::IsDirective { .. }
            | OpError::Rolling { .. }
            | OpError::NoControl { .. }
            | OpError::VerifyUrl { .. } => ExitClass::Input,
        }
    }
}
