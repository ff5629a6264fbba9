//! What colinux-daemon says back: its exit codes and the `--status-driver` line that
//! tells how many machines are running (colinux-spec.md §3.3, §9.20).
//!
//! These belong with the configuration because every tool that starts a machine from
//! config.txt has to read them.

/// colinux-daemon's exit status (Windows; `main.c:276-290`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DaemonExit {
    /// 0: success.
    Ok,
    /// 3: the driver's version does not match the daemon's.
    VersionMismatch,
    /// 14: the driver is missing or cannot be opened.
    DriverMissing,
    /// -1 (seen as 255 or 0xFFFFFFFF): anything else, including a configuration error.
    Failed,
    /// A status the daemon does not document.
    Other(i64),
}

impl DaemonExit {
    /// Classifies a process exit status, as a signed or an unsigned value.
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => DaemonExit::Ok,
            3 => DaemonExit::VersionMismatch,
            14 => DaemonExit::DriverMissing,
            -1 | 255 | 0xFFFF_FFFF => DaemonExit::Failed,
            other => DaemonExit::Other(other),
        }
    }
}

/// The literal prefix of the `--status-driver` line the original installer parses.
pub const MONITORS_LINE: &str = "current number of monitors: ";

/// The number of running machines in `colinux-daemon --status-driver` output, if the
/// line is there.
pub fn running_monitors(status_output: &str) -> Option<u32> {
    status_output.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(MONITORS_LINE)?;
        rest.trim().parse().ok()
    })
}
