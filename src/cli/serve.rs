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
    /// Append one JSON line per request to FILE (what `rollout advance --gate-log` reads)
    #[arg(long, value_name = "FILE")]
    access_log: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

pub async fn run(s: Settings, a: ServeArgs) -> anyhow::Result<Outcome> {
    let store: Arc<dyn otapub::store::Store> = Arc::from(s.open_store().await?);
    eprintln!("serving {} public/ on http://{} (Ctrl-C stops)", store.url(), a.addr);
    let log = match &a.access_log {
        Some(path) => Some(Arc::new(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    otapub::Error::from(super::SettingsError::AccessLog {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
                })?,
        ))),
        None => None,
    };
    let options = otapub::serve::Options {
        log,
        templates: s.templates()?,
        clock: s.clock,
    };
    eprintln!("the operators' page: http://{}{}", a.addr, otapub::serve::REPORT_PATH);
    otapub::serve::serve(store, a.addr, options).await?;
    Ok(Outcome::Done)
}
