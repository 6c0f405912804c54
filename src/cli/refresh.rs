//! `otapub refresh`.

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};
use otapub::ops::refresh::refresh;

#[derive(Debug, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings) -> anyhow::Result<Outcome> {
    let signer = s.signer()?;
    let store = s.open_store().await?;
    let out = refresh(&s.context(store.as_ref()), &signer).await?;
    if s.json {
        s.print_json(&out)?;
        return Ok(Outcome::Done);
    }
    if out.pointers.is_empty() {
        say!("every served response already carries this key's signature and chain: nothing to refresh");
        return Ok(Outcome::Done);
    }
    say!(
        "re-signed {} packages and {} directives; rewrote {} pointers (no update id changed)",
        out.packages.len(),
        out.directives.len(),
        out.pointers.len()
    );
    Ok(Outcome::Done)
}
