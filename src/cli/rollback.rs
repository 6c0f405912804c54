//! `otapub rollback`.

use clap::Args;

use super::{GlobalArgs, Outcome, PointerArgs, Settings};
use otapub::names::Version;
use otapub::ops::restamp::{rollback, RollbackTarget};

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pointer: PointerArgs,
    /// Re-stamp this version of the pointer [default: one bundle back from the newest]
    #[arg(long, conflicts_with = "to_embedded")]
    to: Option<Version>,
    /// Serve a rollBackToEmbedded directive: devices run the update embedded in their build
    #[arg(long)]
    to_embedded: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: RollbackArgs) -> anyhow::Result<Outcome> {
    let pointer = a.pointer.pointer();
    let target = match (a.to, a.to_embedded) {
        (Some(v), _) => RollbackTarget::To(v),
        (None, true) => RollbackTarget::Embedded,
        (None, false) => RollbackTarget::Previous,
    };
    let store = s.open_store().await?;
    let signer = s.signer()?;
    let out = rollback(&s.context(store.as_ref()), &signer, &pointer, &target).await?;
    if s.json {
        s.print_json(&out)?;
    } else if let Some(orig) = &out.restamp_of {
        say!(
            "{}: serves {} (re-stamp of {}, createdAt {})",
            out.pointer,
            out.version,
            orig,
            out.created_at
        );
    } else {
        say!(
            "{}: serves rollBackToEmbedded {} (commitTime {})",
            out.pointer,
            out.version,
            out.created_at
        );
    }
    Ok(Outcome::Done)
}
