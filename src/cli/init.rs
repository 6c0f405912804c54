//! `otapub init`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{GlobalArgs, Outcome, Settings};
use otapub::names::Channel;
use otapub::project::app_json::RuntimePolicy;
use otapub::project::init::{init, InitOptions};

/// The runtime-version policy init sets where the app has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// The app's version (`expo.version`), as `eas update:configure` sets
    #[value(name = "appVersion", alias = "app-version")]
    AppVersion,
    /// A hash of everything native the build depends on
    Fingerprint,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's root [default: the current directory]
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The channel builds check [default: production]
    #[arg(long)]
    channel: Option<Channel>,
    /// Where the app has no runtimeVersion, the policy to set
    #[arg(long, value_enum, default_value_t = PolicyArg::AppVersion)]
    runtime_version_policy: PolicyArg,
    /// ios.bundleIdentifier, where the app has none [default: com.<slug>]
    #[arg(long, value_name = "ID")]
    ios_bundle_identifier: Option<String>,
    /// android.package, where the app has none [default: com.<slug>]
    #[arg(long, value_name = "NAME")]
    android_package: Option<String>,
    /// Do not install expo-updates when the project lacks it (init then stops and says so)
    #[arg(long)]
    no_install: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub fn run(
    s: Settings,
    a: InitArgs,
    store_flag: Option<String>,
    base_url_flag: Option<String>,
) -> anyhow::Result<Outcome> {
    let opts = InitOptions {
        dir: a.dir,
        store: store_flag,
        base_url: base_url_flag,
        channel: a.channel,
        policy: match a.runtime_version_policy {
            PolicyArg::AppVersion => RuntimePolicy::AppVersion,
            PolicyArg::Fingerprint => RuntimePolicy::Fingerprint,
        },
        bundle_identifier: a.ios_bundle_identifier,
        package: a.android_package,
        install: !a.no_install,
    };
    let out = init(&opts, s.clock.now())?;
    if s.json {
        s.print_json(&out)?;
        return Ok(Outcome::Done);
    }
    if out.config_written {
        say!("wrote {}", out.config.display());
    } else {
        say!("kept {} (init never rewrites it)", out.config.display());
    }
    if out.installed_expo_updates {
        say!("installed expo-updates");
    }
    for k in &out.keys_created {
        say!("created {}", k.display());
    }
    if out.app_config_by_hand {
        if out.app_config_changes.is_empty() {
            say!("{}: already configured", out.app_config.display());
        } else {
            say!(
                "{} is code, which init does not edit: set these in the config it returns, then run init again to check:",
                out.app_config.display()
            );
            for c in &out.app_config_changes {
                say!("  {} = {}   // {}", c.key, c.value, c.why);
            }
        }
    } else if out.app_config_changes.is_empty() {
        say!("{}: already configured", out.app_config.display());
    } else {
        for c in &out.app_config_changes {
            say!("{}: set {} = {} ({})", out.app_config.display(), c.key, c.value, c.why);
        }
    }
    for l in &out.gitignore_added {
        say!(".gitignore: added {l}");
    }
    for n in &out.notes {
        say!("note: {n}");
    }
    if out.config_written || !out.keys_created.is_empty() || !out.app_config_changes.is_empty() {
        say!("next: `npx expo prebuild` (or your build), then `npx otapub publish`");
    } else {
        say!("nothing to change");
    }
    Ok(Outcome::Done)
}
