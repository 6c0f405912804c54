//! Insights from the CDN's own access logs (`otapub insights ingest`): each
//! CDN's log format read into one [`Hit`] per request ([`formats`]), and the
//! rules that turn hits into per-day figures of each update ([`derive`](mod@derive)).
//! No SDK in the app: the stock expo-updates client's request headers say
//! which update a device runs and which failed to launch; formats that do
//! not log request headers give downloads only, never device counts.

pub mod derive;
pub mod formats;

use std::path::{Path, PathBuf};

use crate::error::{ExitClass, Refusal, Result};

pub use formats::{parse, Format, LineReader, Parsed};

/// The ids an `expo-recent-failed-update-ids` header names (an RFC 8941
/// list of strings), lowercased; `None` when it is not such a list.
pub fn failed_ids(header: &str) -> Option<Vec<String>> {
    let list = sfv::Parser::parse_list(header.as_bytes()).ok()?;
    list.into_iter()
        .map(|entry| match entry {
            sfv::ListEntry::Item(sfv::Item {
                bare_item: sfv::BareItem::String(s),
                ..
            }) => Some(s.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The request headers of the stock client that insights read, as sent
/// (empty values already dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// `eas-client-id`: a random per-install UUID.
    pub client_id: Option<String>,
    /// `expo-current-update-id`: the update the device runs.
    pub current: Option<String>,
    /// `expo-recent-failed-update-ids`: an RFC 8941 list of updates that failed to launch.
    pub failed: Option<String>,
    /// `a-im`: `bsdiff` when the client takes a patch.
    pub a_im: Option<String>,
    /// `expo-requested-update-id`: the update whose launch asset is downloaded.
    pub requested: Option<String>,
}

impl Headers {
    /// The headers of a JSON object's string members (a JSON log line, or
    /// its request-headers object).
    pub fn from_json(o: &serde_json::Map<String, serde_json::Value>) -> Headers {
        let mut h = Headers::default();
        for (k, v) in o {
            if let Some(v) = v.as_str() {
                h.set(k, v);
            }
        }
        h
    }

    /// Sets the header `name` (any case) when it is one insights read and
    /// `value` is not empty (nginx logs a header not sent as "" or "-").
    pub fn set(&mut self, name: &str, value: &str) {
        let value = value.trim();
        if value.is_empty() || value == "-" {
            return;
        }
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "eas-client-id" => &mut self.client_id,
            "expo-current-update-id" => &mut self.current,
            "expo-recent-failed-update-ids" => &mut self.failed,
            "a-im" => &mut self.a_im,
            "expo-requested-update-id" => &mut self.requested,
            _ => return,
        };
        *slot = Some(value.to_string());
    }
}

/// One request, as any format logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// When (ms since the epoch, UTC).
    pub time_ms: i64,
    /// The request path, without the query.
    pub path: String,
    /// The response status.
    pub status: u16,
    /// Bytes sent, when logged.
    pub bytes: Option<u64>,
    /// The request headers; `None` when the format logs none.
    pub headers: Option<Headers>,
    /// Whether the response carried `im: bsdiff`, when the format logs it.
    pub patch_served: Option<bool>,
}

/// The access logs otapub cannot read.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A log file or folder that cannot be opened.
    #[error("{}: cannot read it ({error}); give access log files or folders of them", path.display())]
    Unreadable {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A log file whose bytes cannot be read (a broken gzip, say).
    #[error("{}: cannot read it ({error}); give the log as the CDN delivered it, gzip'd or plain", path.display())]
    Undecodable {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A folder of logs that cannot be listed.
    #[error("{}: cannot list it ({error}); give folders of logs otapub may read", path.display())]
    Unlistable {
        /// The folder.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl Refusal for IngestError {
    fn class(&self) -> ExitClass {
        match self {
            IngestError::Unreadable { .. } | IngestError::Undecodable { .. } | IngestError::Unlistable { .. } => {
                ExitClass::Input
            }
        }
    }
}

/// Opens a log file for reading line by line, gunzipping it when it is gzip.
pub fn open_log(path: &Path) -> Result<Box<dyn std::io::BufRead>> {
    use std::io::BufRead;
    let cannot = |error: std::io::Error| IngestError::Unreadable {
        path: path.to_path_buf(),
        error,
    };
    let mut file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(cannot)?);
    let gzip = file.fill_buf().map_err(cannot)?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(file)
    })
}

/// Calls `each` with every line of a log file (gzip or plain; invalid UTF-8
/// replaced), and returns the SHA-256 of its (gunzipped) bytes.
pub fn each_line(path: &Path, mut each: impl FnMut(&str)) -> Result<[u8; 32]> {
    use sha2::Digest;
    let mut reader = open_log(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n =
            std::io::BufRead::read_until(&mut reader, b'\n', &mut buf).map_err(|error| IngestError::Undecodable {
                path: path.to_path_buf(),
                error,
            })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf);
        each(&String::from_utf8_lossy(&buf));
    }
    Ok(hasher.finalize().into())
}

/// The files to read: each file given, and the files under each folder
/// given (recursively, sorted, hidden ones skipped).
pub fn log_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|error| IngestError::Unreadable { path: p.clone(), error })?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let read = std::fs::read_dir(dir).map_err(|error| IngestError::Unlistable {
        path: dir.to_path_buf(),
        error,
    })?;
    let mut entries: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_ids_are_an_sfv_list_of_strings() {
        assert_eq!(
            failed_ids(r#""A-b", "c""#),
            Some(vec!["a-b".to_string(), "c".to_string()])
        );
        assert_eq!(failed_ids("abc"), None, "a token, not a string");
        assert_eq!(failed_ids(r#""unterminated"#), None);
        assert_eq!(failed_ids(""), Some(vec![]));
    }
}
