//! What differs between the hosts the installer runs on, behind one API: where the
//! machine-wide state and logs live, how much room a volume has, and (on Windows, whose
//! folders carry no Unix modes) how the installer's staged guest files keep the modes it
//! meant for them.
//!
//! The Windows implementations are in [`windows`]; the Unix ones are small enough to
//! live here. Callers never test the platform themselves.

#[cfg(windows)]
pub mod windows;

#[cfg(not(unix))]
use std::path::Path;
use std::path::PathBuf;

/// The folder for machine-wide state and logs of colinux-setup itself (not of one
/// machine): `%ProgramData%\colinux-setup` on Windows, `/var/log/colinux-setup` for root
/// on Unix, else the temporary folder.
pub fn state_dir() -> PathBuf {
    #[cfg(windows)]
    {
        windows::program_data().join("colinux-setup")
    }
    #[cfg(not(windows))]
    {
        if rustix::process::geteuid().is_root() {
            PathBuf::from("/var/log/colinux-setup")
        } else {
            std::env::temp_dir().join("colinux-setup")
        }
    }
}

/// Free and total bytes of the volume that holds `existing` (an existing folder).
#[cfg(windows)]
pub fn volume_space(existing: &Path) -> Option<(u64, u64)> {
    windows::volume_space(existing)
}

/// Records the Unix mode a staged file or folder must have inside the image. On Unix
/// the mode is on the file itself; on Windows it is remembered here and applied when
/// the staged tree is turned into a tar stream (`windows::staged_as_tar`).
#[cfg(not(unix))]
pub fn record_mode(path: &Path, mode: u32) {
    #[cfg(windows)]
    windows::record_mode(path, mode);
    #[cfg(not(windows))]
    let _ = (path, mode);
}

/// Records that the placeholder file `link` stands for a symbolic link to `target`
/// (Windows, where the staged tree cannot hold Unix symlinks).
#[cfg(not(unix))]
pub fn record_symlink(link: &Path, target: &str) {
    #[cfg(windows)]
    windows::record_symlink(link, target);
    #[cfg(not(windows))]
    let _ = (link, target);
}

/// The monitor a profile is installed for here when none is asked for: the profile's,
/// except that User-mode Linux runs only on Linux hosts, so on Windows a profile made
/// for it is installed for the monitor `auto` finds there (WSL 2 on 64-bit Windows,
/// coLinux on 32-bit: see `monitor::probe::auto_order`).
pub fn default_monitor(profile: crate::profile::MonitorRequest) -> crate::profile::MonitorRequest {
    use crate::profile::{Monitor, MonitorRequest};
    match profile {
        MonitorRequest::Given(Monitor::Uml) if cfg!(windows) => MonitorRequest::Auto,
        other => other,
    }
}
