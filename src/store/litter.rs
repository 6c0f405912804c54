//! Temporary files named for the process that writes them (the local
//! store's `.otapub-tmp-<pid>-…`, the index copies `otapub-index-<pid>-…` in
//! the temp directory), so a later run can tell what a killed writer left
//! from what a live one is still writing, and remove only the former.

use std::path::Path;
use std::time::Duration;

/// The file-name prefix this process gives its temporary files of a kind.
pub(crate) fn own_prefix(kind: &str) -> String {
    format!("{kind}{}-", std::process::id())
}

/// Removes `path` if its name says a process wrote it that no longer runs.
/// Where that cannot be told (no /proc, no pid in the name), only a file
/// older than `max_age` goes. Best effort: a file that cannot be removed stays.
pub(crate) fn remove_if_left_behind(path: &Path, kind: &str, max_age: Duration) {
    let Some(rest) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(kind))
    else {
        return;
    };
    let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
    let stale = match pid {
        Some(pid) if pid == std::process::id() => false,
        Some(pid) if Path::new("/proc/self").exists() => !is_otapub_process(pid),
        _ => std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age),
    };
    if stale {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether `pid` is a running process of this same program: a pid can be
/// reused, and `/proc/<n>` also exists for any thread id `n`.
fn is_otapub_process(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse::<u32>().ok());
    if tgid != Some(pid) {
        return false;
    }
    // The same command name (an upgraded otapub still running counts).
    static OURS: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let ours = OURS.get_or_init(|| std::fs::read_to_string("/proc/self/comm").ok());
    match (std::fs::read_to_string(format!("/proc/{pid}/comm")), ours) {
        (Ok(theirs), Some(ours)) => &theirs == ours,
        _ => true,
    }
}
