//! `otapub keys …`: Expo signing leaves under an offline root.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{GlobalArgs, Outcome, Settings};
use otapub::signing::{issue_leaf, KeySource};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Issue a short-lived Expo code-signing leaf (RSA-2048) under the root the app embeds; run where the root key lives, never in CI
    ExpoLeaf {
        /// The CA's private key (the root's, or an intermediate's), PKCS#1 or PKCS#8 PEM
        #[arg(long, value_name = "FILE")]
        ca_key: PathBuf,
        /// The CA's certificate (PEM)
        #[arg(long, value_name = "FILE")]
        ca_cert: PathBuf,
        /// Days the leaf is valid from now (refresh well before)
        #[arg(long, value_name = "N")]
        days: u32,
        /// Writes OUT.key (private, mode 0600, never overwritten) and OUT.pem (the chain without the root), e.g. keys/leaf-2026-12
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
        #[command(flatten)]
        global: GlobalArgs,
    },
}

impl KeysArgs {
    pub fn global(&self) -> &GlobalArgs {
        match &self.command {
            KeysCommand::ExpoLeaf { global, .. } => global,
        }
    }
}

pub fn run(s: Settings, a: KeysArgs) -> anyhow::Result<Outcome> {
    let KeysCommand::ExpoLeaf {
        ca_key,
        ca_cert,
        days,
        out,
        ..
    } = a.command;
    let leaf = issue_leaf(&KeySource::from_arg(&ca_key), &ca_cert, days, &out, s.clock.now())?;
    if s.json {
        s.print_json(&leaf)?;
    } else {
        say!("issued {} valid until {}", leaf.subject, leaf.not_after);
        say!("private key {} (give it to --expo-key)", leaf.key_path.display());
        say!("chain       {} (give it to --expo-chain)", leaf.chain_path.display());
    }
    Ok(Outcome::Done)
}
