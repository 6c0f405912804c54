//! The health gate of `rollout advance`: the candidate's failure rate, from
//! a command of the operator's (`--gate-cmd`), from CDN access logs
//! (`--gate-log`, in any format `otapub insights ingest` reads that records
//! request headers; `--gate-format`, default JSON lines as `otapub serve
//! --access-log` writes them), or from what `otapub insights ingest` stored
//! (`--gate-insights`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;

use crate::error::{ExitClass, Refusal, Result};
use crate::index::Index;
use crate::insights::{self, failed_ids, Format, Headers};
use crate::model::GateReading;
use crate::names::PointerId;

/// A gate that cannot be measured: its command failed, or what it read is
/// not a reading. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// `sh` could not run the gate command.
    #[error(
        "gate: cannot run --gate-cmd {cmd:?} with sh ({reason}); otapub runs it with `sh -c`, which must be on PATH"
    )]
    CannotRun {
        /// The command.
        cmd: String,
        /// Why.
        reason: String,
    },
    /// The gate command exited with a failure.
    #[error("gate: --gate-cmd {cmd:?} failed ({status}); nothing changed — fix the command and run `otapub rollout advance` again")]
    CommandFailed {
        /// The command.
        cmd: String,
        /// How it exited.
        status: String,
    },
    /// The gate command printed something other than a reading.
    #[error("--gate-cmd {cmd:?} printed {printed:?}, not {{\"failed\": N, \"total\": M}} ({reason}); nothing changed")]
    NotAReading {
        /// The command.
        cmd: String,
        /// The start of what it printed.
        printed: String,
        /// Why it is not a reading.
        reason: String,
    },
    /// The gate command counted more failed devices than devices.
    #[error("--gate-cmd {cmd:?} reports {failed} failed of {total} in total; failed devices are counted in the total too. Nothing changed")]
    FailedAboveTotal {
        /// The command.
        cmd: String,
        /// The failed devices it reported.
        failed: u64,
        /// The total it reported.
        total: u64,
    },
    /// `--gate-format` names a log format that records no request headers.
    #[error("--gate-format {format}: these logs record no request headers, and the gate counts devices by eas-client-id; \
             use a log that records them (nginx, cloudfront-realtime, cloudflare, otapub: see deploy/) or --gate-insights")]
    NoHeaders {
        /// The format.
        format: String,
    },
    /// A JSON-lines log has a line that is not a JSON object.
    #[error("--gate-log {} line {line}: not a JSON object with the request headers ({reason}); \
             the gate reads one JSON object per request, as `otapub serve --access-log` writes (see deploy/README.md)", file.display())]
    NotJsonLine {
        /// The log file.
        file: PathBuf,
        /// The line number.
        line: u64,
        /// Why.
        reason: String,
    },
    /// A log has lines that are not of the `--gate-format` given.
    #[error("--gate-log {}: {skipped} of {lines} lines are not {format} log lines; give --gate-format the format the CDN wrote. Nothing changed", file.display())]
    WrongFormat {
        /// The log file.
        file: PathBuf,
        /// The format given.
        format: String,
        /// The lines not of that format.
        skipped: u64,
        /// All its lines.
        lines: u64,
    },
}

impl Refusal for GateError {
    fn class(&self) -> ExitClass {
        match self {
            GateError::CannotRun { .. } | GateError::CommandFailed { .. } => ExitClass::Environment,
            GateError::NotAReading { .. }
            | GateError::FailedAboveTotal { .. }
            | GateError::NoHeaders { .. }
            | GateError::NotJsonLine { .. }
            | GateError::WrongFormat { .. } => ExitClass::Input,
        }
    }
}

/// Where the failure rate comes from.
#[derive(Debug, Clone)]
pub enum Gate {
    /// A shell command that prints `{"failed": N, "total": M}`.
    Command(String),
    /// CDN access logs (files or folders, gzip or plain) in a format.
    Logs {
        /// The files.
        files: Vec<PathBuf>,
        /// Their format.
        format: Format,
    },
    /// What `otapub insights ingest` stored in the index: distinct devices
    /// over the days it keeps per device.
    Insights,
}

/// What a gate command prints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandReading {
    failed: u64,
    total: u64,
}

impl Gate {
    /// Measures the candidate's failure rate (`index`: the one just read).
    pub fn measure(&self, candidate_id: &str, pointer: &PointerId, index: &Index) -> Result<GateReading> {
        match self {
            Gate::Command(cmd) => run_command(cmd, candidate_id, pointer),
            Gate::Logs { files, format } => read_logs(files, *format, candidate_id),
            Gate::Insights => {
                let (failed, total) = crate::index::insight_gate(index.conn(), candidate_id)?;
                Ok(GateReading { failed, total })
            }
        }
    }
}

fn run_command(cmd: &str, candidate_id: &str, pointer: &PointerId) -> Result<GateReading> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("OTAPUB_CANDIDATE_ID", candidate_id)
        .env("OTAPUB_POINTER", pointer.to_string())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| GateError::CannotRun {
            cmd: cmd.to_string(),
            reason: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(GateError::CommandFailed {
            cmd: cmd.to_string(),
            status: output.status.to_string(),
        }
        .into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let reading: CommandReading = serde_json::from_str(text.trim()).map_err(|e| GateError::NotAReading {
        cmd: cmd.to_string(),
        printed: text.chars().take(200).collect(),
        reason: e.to_string(),
    })?;
    if reading.failed > reading.total {
        return Err(GateError::FailedAboveTotal {
            cmd: cmd.to_string(),
            failed: reading.failed,
            total: reading.total,
        }
        .into());
    }
    Ok(GateReading {
        failed: reading.failed,
        total: reading.total,
    })
}

/// Counts distinct devices: failed when `expo-recent-failed-update-ids`
/// names the candidate, in the total when they report it as current or failed.
fn read_logs(paths: &[PathBuf], format: Format, candidate_id: &str) -> Result<GateReading> {
    if !format.logs_headers() {
        return Err(GateError::NoHeaders {
            format: format.to_string(),
        }
        .into());
    }
    let candidate = candidate_id.to_ascii_lowercase();
    let mut failed: HashSet<String> = HashSet::new();
    let mut total: HashSet<String> = HashSet::new();
    let mut count = |h: &Headers| {
        let Some(device) = h.client_id.as_deref().map(str::to_ascii_lowercase) else {
            return;
        };
        // A header a device garbled counts as naming nothing: one bad
        // client must not hold the gate for everyone.
        let failed_now = h
            .failed
            .as_deref()
            .and_then(failed_ids)
            .is_some_and(|ids| ids.contains(&candidate));
        let current = h
            .current
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase() == candidate);
        if failed_now {
            failed.insert(device.clone());
        }
        if failed_now || current {
            total.insert(device);
        }
    };
    // Each file streamed line by line (gzip or plain), never read whole.
    for file in insights::log_files(paths)? {
        let mut first_error: Option<GateError> = None;
        if matches!(format, Format::Otapub | Format::Nginx) {
            let mut n = 0u64;
            crate::off_runtime(|| {
                insights::each_line(&file, |line| {
                    n += 1;
                    if first_error.is_some() || line.trim().is_empty() {
                        return;
                    }
                    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) {
                        Ok(entry) => count(&Headers::from_json(&entry)),
                        Err(e) => {
                            first_error = Some(GateError::NotJsonLine {
                                file: file.clone(),
                                line: n,
                                reason: e.to_string(),
                            })
                        }
                    }
                })
            })?;
        } else {
            let mut reader = insights::LineReader::new(format, None);
            crate::off_runtime(|| {
                insights::each_line(&file, |line| {
                    if let Some(h) = reader.line(line).and_then(|hit| hit.headers) {
                        count(&h);
                    }
                })
            })?;
            if reader.skipped > 0 {
                first_error = Some(GateError::WrongFormat {
                    file: file.clone(),
                    format: format.to_string(),
                    skipped: reader.skipped,
                    lines: reader.lines,
                });
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
    }
    Ok(GateReading {
        failed: failed.len() as u64,
        total: total.len() as u64,
    })
}
