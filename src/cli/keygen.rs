//! `otapub keygen`.

use std::path::PathBuf;

use clap::Args;

use super::Outcome;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Writes OUT.key (private, mode 0600) and OUT.pub, e.g. keys/release
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    /// Machine-readable output on stdout
    #[arg(long)]
    json: bool,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<Outcome> {
    let k = otapub::signing::generate_key(&args.out)?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&k)?);
    } else {
        say!("keyid {}", k.keyid);
        say!(
            "private key {} (keep it secret; it is ignored by git under keys/)",
            k.private_path.display()
        );
        say!(
            "public key  {} (give it to `otapub verify --trust`)",
            k.public_path.display()
        );
    }
    Ok(Outcome::Done)
}
