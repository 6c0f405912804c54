//! `otapub regenerate`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::regenerate::regenerate;
use otapub::store::{DryRunStore, Store};

#[derive(Debug, Args)]
pub struct RegenerateArgs {
    /// List what would be written, write nothing
    #[arg(long)]
    dry_run: bool,
    /// Read back every object whose listing carries no MD5 etag, instead of trusting its size
    #[arg(long)]
    verify_bytes: bool,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: RegenerateArgs) -> anyhow::Result<Outcome> {
    let store = s.open_store().await?;
    // A dry run is the same regenerate on a store that records its writes
    // instead of making them.
    let dry = DryRunStore::new(store.as_ref());
    let store: &dyn Store = if a.dry_run { &dry } else { store.as_ref() };
    let out = regenerate(&s.context(store), a.verify_bytes).await?;
    if s.json {
        s.print_json(&out)?;
    } else {
        let verb = if a.dry_run { "would write" } else { "wrote" };
        for k in &out.written {
            say!("{verb} {k}");
        }
        say!("{} objects rendered, {} {verb}", out.rendered, out.written.len());
        if !out.made_readable.is_empty() {
            let verb = if a.dry_run { "would make" } else { "made" };
            say!(
                "{verb} {} files and directories of the public side readable by other users (a web server running as another user answered 403)",
                out.made_readable.len()
            );
        }
    }
    Ok(Outcome::Done)
}
