//! `otapub serve`.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use super::{GlobalArgs, Outcome, Settings};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: ServeArgs) -> anyhow::Result<Outcome> {
    let store: Arc<dyn otapub::store::Store> = Arc::from(s.open_store().await?);
    eprintln!("serving {} public/ on http://{} (Ctrl-C stops)", store.url(), a.addr);
    otapub::serve::serve(store, a.addr).await?;
    Ok(Outcome::Done)
}
