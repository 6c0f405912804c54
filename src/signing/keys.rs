//! Private keys: where they come from (files, stdin, the environment),
//! their file permissions, ed25519 keyids, and `keygen`.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Serialize;

use super::KeyError;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

/// Where a private key comes from. Never a command-line value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM file.
    File(PathBuf),
    /// PEM on standard input (`-`).
    Stdin,
    /// PEM in an environment variable, read by the caller.
    Env {
        /// The variable's name, for messages.
        var: String,
        /// Its value.
        pem: String,
    },
}

impl KeySource {
    /// `-` means stdin; anything else is a path.
    pub fn from_arg(arg: &Path) -> KeySource {
        if arg == Path::new("-") {
            KeySource::Stdin
        } else {
            KeySource::File(arg.to_path_buf())
        }
    }

    /// How the source is named in messages.
    pub fn label(&self) -> String {
        match self {
            KeySource::File(p) => p.display().to_string(),
            KeySource::Stdin => "-".to_string(),
            KeySource::Env { var, .. } => format!("${var}"),
        }
    }

    /// Reads public PEM text (a certificate chain): no mode check.
    pub fn read_text(&self) -> Result<String> {
        match self {
            KeySource::File(path) => fs::read_to_string(path).map_err(|e| {
                KeyError::Unreadable {
                    path: self.label(),
                    reason: e.to_string(),
                }
                .into()
            }),
            _ => self.read_private_pem(),
        }
    }

    /// Reads a private key's PEM text, refusing a key file others can read.
    pub fn read_private_pem(&self) -> Result<String> {
        let unreadable = |e: std::io::Error| KeyError::Unreadable {
            path: self.label(),
            reason: e.to_string(),
        };
        match self {
            KeySource::File(path) => {
                let meta = fs::metadata(path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        KeyError::NoSuchKey {
                            path: self.label(),
                            stem: path.with_extension(""),
                        }
                    } else {
                        unreadable(e)
                    }
                })?;
                if !meta.is_file() {
                    return Err(KeyError::NotAFile { path: self.label() }.into());
                }
                check_private_mode(&meta).map_err(|mode| KeyError::NotPrivate {
                    path: self.label(),
                    mode,
                })?;
                Ok(fs::read_to_string(path).map_err(unreadable)?)
            }
            KeySource::Stdin => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| KeyError::StdinUnreadable {
                        path: self.label(),
                        reason: e.to_string(),
                    })?;
                Ok(s)
            }
            KeySource::Env { pem, .. } => Ok(pem.clone()),
        }
    }
}

#[cfg(unix)]
fn check_private_mode(meta: &fs::Metadata) -> std::result::Result<(), u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        Err(mode)
    } else {
        Ok(())
    }
}

#[cfg(not(unix))]
fn check_private_mode(_meta: &fs::Metadata) -> std::result::Result<(), u32> {
    Ok(())
}

/// keyid = first 16 hex characters of SHA-256 of the raw 32-byte public key.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256Digest::of(key.as_bytes()).to_hex()[..16].to_string()
}

/// One ed25519 signing key with its keyid.
pub struct Ed25519Key {
    pub(super) key: SigningKey,
    pub(super) keyid: String,
}

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ed25519Key({})", self.keyid)
    }
}

impl Ed25519Key {
    /// Loads a PKCS#8 PEM ed25519 private key.
    pub fn load(source: &KeySource) -> Result<Ed25519Key> {
        let pem = source.read_private_pem()?;
        let key =
            SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| KeyError::NotEd25519Private { path: source.label() })?;
        Ok(Ed25519Key::from_signing_key(key))
    }

    pub(super) fn from_signing_key(key: SigningKey) -> Ed25519Key {
        let keyid = key_id(&key.verifying_key());
        Ed25519Key { key, keyid }
    }

    /// The keyid.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }
}

/// What `keygen` wrote.
#[derive(Debug, Serialize)]
pub struct GeneratedKey {
    /// The private key file.
    pub private_path: PathBuf,
    /// The public key file.
    pub public_path: PathBuf,
    /// The keyid.
    pub keyid: String,
}

/// Writes `<out>.key` (PKCS#8 PEM, mode 0600) and `<out>.pub` (SPKI PEM); never overwrites.
pub fn generate_key(out: &Path) -> Result<GeneratedKey> {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.is_empty() || name.starts_with('.') {
        return Err(KeyError::OutName { out: out.to_path_buf() }.into());
    }
    let private_path = out.with_file_name(format!("{name}.key"));
    let public_path = out.with_file_name(format!("{name}.pub"));
    for p in [&private_path, &public_path] {
        if p.exists() {
            return Err(KeyError::KeyExists { path: p.clone() }.into());
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::NoRandomness { reason: e.to_string() })?;
    let key = SigningKey::from_bytes(&seed);
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an ed25519 key encodes as PKCS#8");
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("an ed25519 key encodes as SPKI");
    if let Some(dir) = private_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(Error::file("create directory", dir))?;
    }
    write_new(&private_path, private_pem.as_bytes(), 0o600)?;
    write_new(&public_path, public_pem.as_bytes(), 0o644)?;
    Ok(GeneratedKey {
        private_path,
        public_path,
        keyid: key_id(&key.verifying_key()),
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(Error::file("create", path))?;
    f.write_all(bytes).map_err(Error::file("write", path))?;
    f.sync_all().map_err(Error::file("sync", path))
}
