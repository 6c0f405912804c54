//! `otapub diff`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::names::{Platform, Version};
use otapub::ops::diff::{diff, AssetEntry, Side};

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier version
    v1: Version,
    /// The later version
    v2: Version,
    /// Platform
    #[arg(long)]
    platform: Platform,
    #[command(flatten)]
    pub global: GlobalArgs,
}

fn size(n: Option<u64>) -> String {
    n.map_or_else(|| "? bytes".to_string(), |n| format!("{n} bytes"))
}

fn side(label: &str, side: &Side) {
    let s = &side.package;
    let mut line = format!(
        "{label} {} ({}, {}) on {}, createdAt {}",
        s.version,
        s.kind,
        if s.id.is_empty() { "no id" } else { &s.id },
        side.pointer,
        s.created_at
    );
    if let Some(o) = &s.restamp_of {
        line.push_str(&format!(", re-stamp of {o}"));
    }
    say!("{line}");
    say!(
        "    by {}: {}",
        s.actor.as_deref().unwrap_or("unknown"),
        s.message.as_deref().unwrap_or("(no message)")
    );
    if let Some(r) = &side.banned {
        say!("    BANNED: {}", r.escape_debug());
    }
}

fn asset(sign: char, a: &AssetEntry) {
    say!("  {sign} {}.{}  {}  {}", a.key, a.ext, a.sha256, size(a.size));
}

pub async fn run(s: Settings, a: DiffArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let d = diff(&s.context(store.as_ref()), a.platform, &a.v1, &a.v2).await?;
    if s.json {
        s.print_json(&d)?;
        return Ok(Outcome::Done);
    }
    side("---", &d.from);
    side("+++", &d.to);
    let l = &d.launch_asset;
    match (&l.from, &l.to) {
        (Some(f), Some(t)) if l.same => say!("launch asset: unchanged ({}, {})", t.sha256, size(t.size)),
        (Some(f), Some(t)) => {
            say!(
                "launch asset: {} ({}) -> {} ({})",
                f.sha256,
                size(f.size),
                t.sha256,
                size(t.size)
            );
            if let Some(delta) = l.delta {
                say!("    {delta:+} bytes");
            }
            if let Some(p) = l.patch_size {
                say!(
                    "    devices on {} download a {p}-byte bsdiff patch",
                    d.from.package.version
                );
            }
        }
        _ => say!("launch asset: none on the rollBackToEmbedded side"),
    }
    say!(
        "assets: {} added, {} removed, {} changed, {} unchanged",
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.unchanged
    );
    for x in &d.added {
        asset('+', x);
    }
    for x in &d.removed {
        asset('-', x);
    }
    for c in &d.changed {
        asset('-', &c.from);
        asset('+', &c.to);
    }
    if d.expo_client_diff.is_empty() {
        say!("app config (extra.expoClient): unchanged");
    } else {
        say!("app config (extra.expoClient):");
        say!("{}", d.expo_client_diff.trim_end());
    }
    Ok(Outcome::Done)
}
