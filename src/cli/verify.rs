//! `otapub verify`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use std::collections::BTreeSet;

use otapub::ops::status::LeafStatus;
use otapub::ops::verify::{verify, ServedLeaf, VerifyOptions};
use otapub::signing::ExpoCertificate;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Fetch every pointer and asset over HTTP from this base URL (the CDN, or `otapub serve`), as a device does
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    /// With --expo-ca: exit 1 when a certificate of a served chain (leaf, intermediate or root) expires within DAYS
    #[arg(long, value_name = "DAYS")]
    min_validity: Option<u32>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// The root certificate (DER) a build embeds: one self-signed certificate.
fn load_root(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bad = |reason: String| {
        otapub::Error::from(super::SettingsError::ExpoCa {
            path: path.to_path_buf(),
            reason,
        })
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    let ders = otapub::signing::chain::split_pem(&text).map_err(bad)?;
    let [der] = ders.as_slice() else {
        return Err(bad("holds more than one certificate; give the root the app embeds".into()).into());
    };
    let info = otapub::signing::chain::info(der).map_err(bad)?;
    if !info.self_issued {
        return Err(bad(format!(
            "{} is not self-signed: give the root the app embeds",
            info.subject
        ))
        .into());
    }
    Ok(der.clone())
}

/// How many pointers a leaf's line names before "and N more".
const NAMED_POINTERS: usize = 10;

/// One line per leaf the served responses carry, with the pointers whose
/// responses carry it (`P/rollout` for a pointer's rollout buckets): after a
/// rotation, whatever still serves the old leaf stands out.
fn leaf_lines(leaves: &[ServedLeaf]) -> Vec<String> {
    // Few distinct leaves: in the order the sorted responses first show them.
    let mut by_leaf: Vec<(&LeafStatus, BTreeSet<String>, usize)> = Vec::new();
    for l in leaves {
        let path = l.response.strip_suffix("/manifest").unwrap_or(&l.response);
        let name = match path.split_once("/rollout/") {
            Some((pointer, _)) => format!("{pointer}/rollout"),
            None => path.to_string(),
        };
        match by_leaf.iter_mut().find(|(leaf, ..)| **leaf == l.leaf) {
            Some((_, names, responses)) => {
                names.insert(name);
                *responses += 1;
            }
            None => by_leaf.push((&l.leaf, BTreeSet::from([name]), 1)),
        }
    }
    by_leaf
        .into_iter()
        .map(|(leaf, names, responses)| {
            let mut named: Vec<String> = names.iter().take(NAMED_POINTERS).cloned().collect();
            if names.len() > NAMED_POINTERS {
                named.push(format!("and {} more", names.len() - NAMED_POINTERS));
            }
            let plural = if responses == 1 { "" } else { "s" };
            format!(
                "served leaf {} (serial {}) until {} ({} days left): {responses} response{plural} on {}",
                leaf.subject,
                leaf.serial,
                leaf.not_after,
                leaf.days_left,
                named.join(", ")
            )
        })
        .collect()
}

pub async fn run(s: Settings, a: VerifyArgs) -> anyhow::Result<Outcome> {
    let trusted = s.trusted()?;
    let cert = s.expo_cert.as_deref().map(ExpoCertificate::load).transpose()?;
    let root = s.expo_ca.as_deref().map(load_root).transpose()?;
    if a.min_validity.is_some() && root.is_none() {
        return Err(otapub::Error::usage(
            "--min-validity checks the certificate chains responses carry: give the root the app embeds with --expo-ca",
        )
        .into());
    }
    let store = s.open_store().await?;
    let opts = VerifyOptions {
        expo_ca: root.as_deref(),
        min_validity: a.min_validity.map(|d| chrono::Duration::days(i64::from(d))),
        now: s.clock.now(),
        trusted: &trusted,
        expo_cert: cert.as_ref(),
        expo_keyid: &s.expo_keyid,
        url: a.url.as_deref(),
    };
    let report = verify(&s.context(store.as_ref()), &opts).await?;
    if s.json {
        s.print_json(&report)?;
    } else {
        for p in &report.problems {
            say!("{p}");
        }
        for line in leaf_lines(&report.served_leaves) {
            say!("{line}");
        }
        say!(
            "{} pointers, {} assets, {} patches checked: {} problems",
            report.pointers,
            report.assets,
            report.patches,
            report.problems.len()
        );
    }
    Ok(if report.problems.is_empty() {
        Outcome::Done
    } else {
        Outcome::Problems
    })
}
