//! `otapub verify`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::verify::{verify, VerifyOptions};
use otapub::signing::ExpoCertificate;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Fetch every pointer and asset over HTTP from this base URL (the CDN, or `otapub serve`), as a device does
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: VerifyArgs) -> anyhow::Result<Outcome> {
    let trusted = s.trusted()?;
    let cert = s.expo_cert.as_deref().map(ExpoCertificate::load).transpose()?;
    let store = s.open_store().await?;
    let opts = VerifyOptions {
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
