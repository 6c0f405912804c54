//! `otapub status`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::model::PackageKind;
use otapub::ops::status::{status, LeafStatus};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// The leaf a response carries, with a warning when it expires soon.
fn signed_by(l: &LeafStatus) -> String {
    let warn = if l.days_left < 0 {
        "  EXPIRED: every update check fails until `otapub refresh` with a new leaf"
    } else if l.days_left < 14 {
        "  (issue a new leaf and run `otapub refresh` soon)"
    } else {
        ""
    };
    format!(
        "signed by {} (serial {}) until {} ({} days left){warn}",
        l.subject, l.serial, l.not_after, l.days_left
    )
}

pub async fn run(s: Settings) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    let st = status(&s.context(store.as_ref())).await?;
    if s.json {
        s.print_json(&st)?;
        return Ok(Outcome::Done);
    }
    if st.pointers.is_empty() {
        say!(
            "nothing published in {} yet; start with `otapub publish DIR --channel C --fingerprint FP`",
            s.store_url
        );
        return Ok(Outcome::Done);
    }
    for p in &st.pointers {
        say!("{}/{}/{}  serves {}", p.channel, p.platform, p.fingerprint, p.serves);
        if let Some(l) = &p.expo_leaf {
            say!("    {}", signed_by(l));
        }
        if let Some(r) = &p.rollout {
            say!(
                "    rollout: {} to {} % of devices ({})",
                r.candidate,
                r.percent,
                r.state
            );
            if let Some(l) = &r.expo_leaf {
                say!("      its buckets {}", signed_by(l));
            }
        }
        for x in &p.patches {
            let Some(size) = x.size else {
                say!(
                    "    no patch to {} from {}: the bundles share almost nothing (devices get the full {} bytes)",
                    x.to,
                    x.from,
                    x.full_size
                );
                continue;
            };
            let share = 100.0 * size as f64 / x.full_size.max(1) as f64;
            let kept = if x.kept {
                ""
            } else {
                ", not kept: devices get the full asset"
            };
            say!(
                "    patch to {} from {}: {size} of {} bytes ({share:.1} %){kept}",
                x.to,
                x.from,
                x.full_size
            );
        }
        for h in &p.history {
            let mut line = format!("    {:<40} {}", h.version, h.created_at);
            if h.kind != PackageKind::Update {
                line.push_str(&format!("  {}", h.kind));
            }
            if let Some(o) = &h.restamp_of {
                line.push_str(&format!("  re-stamp of {o}"));
            }
            if let Some(t) = &h.retired {
                line.push_str(&format!("  retired {t}"));
            }
            if let Some(b) = &h.banned {
                line.push_str(&format!(
                    "  BANNED by {} at {}: {}",
                    b.by,
                    b.at,
                    b.reason.escape_debug()
                ));
            }
            say!("{line}");
        }
    }
    for e in &st.embedded {
        say!(
            "embedded {}/{}: update {} (launch asset {}), a patch base",
            e.platform,
            e.fingerprint,
            e.update_id,
            e.launch_asset
        );
    }
    Ok(Outcome::Done)
}
