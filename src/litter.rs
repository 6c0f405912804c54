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
        Some(pid) if Path::new("/proc/self").exists() => !is_live_process(pid),
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

/// Whether `pid` is a running process. Any program may hold such a file:
/// the otapub binary under whatever name it was installed, or another
/// program built on the library (the benchmark's seeding tool, which holds
/// an index copy for minutes); a reused pid only keeps a dead writer's file
/// until that process ends. (`/proc/<n>` also exists for any thread id `n`,
/// hence the thread-group check.)
fn is_live_process(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse::<u32>().ok());
    tgid == Some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_a_running_process_stays_whatever_its_name_and_one_of_a_dead_process_goes() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 runs, and is not otapub: its file stays (it could be a
        // renamed otapub binary or another program using the library).
        let live = dir.path().join("otapub-index-1-abc.sqlite");
        std::fs::write(&live, b"x").unwrap();
        remove_if_left_behind(&live, "otapub-index-", Duration::from_secs(1));
        assert!(live.exists());
        // A pid past the kernel's limit never runs.
        let dead = dir.path().join("otapub-index-4294967294-abc.sqlite");
        std::fs::write(&dead, b"x").unwrap();
        remove_if_left_behind(&dead, "otapub-index-", Duration::from_secs(1));
        assert!(!dead.exists());
    }
}
