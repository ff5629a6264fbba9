//! The ring-0 driver on the host, behind one trait: install (idempotent), remove (stop
//! first), status.
//!
//! - Windows ([`windows::ScmHost`], `cfg(windows)`): the Service Control Manager, as
//!   coLinux's own `colinux-daemon --install-driver` does (colinux-spec.md §3): service
//!   `CoLinuxDriver`, `SERVICE_KERNEL_DRIVER`, auto start, the image path in the install
//!   folder. A service "marked for deletion" (a handle still open somewhere) is gone
//!   only after a reboot: remove reports [`Removed::RebootRequired`] (3010).
//! - Linux ([`linux::ModuleHost`]): the `colinux` kernel module, loaded with `insmod`
//!   and unloaded with `rmmod`; status from `/proc/modules` (colinux-spec.md §5: the
//!   module makes `/proc/colinux`, there is no device node).
//! - [`recording::RecordingHost`]: no host at all; it keeps the driver's state in
//!   memory (or a JSON file) and records each action, for `--dry-run` and tests.
//!
//! Every host reports failures as [`ScmError`], the one error of the SCM wrapper
//! ([`crate::scm`]), which the Windows host is built on; the recording host reports
//! its simulated failures through the same mapping, and the Linux host through the
//! same variants (access denied, a program that failed).
//!
//! The trait does not know about locks or monitors: refusing to install while a
//! machine runs is the caller's job (the installer holds the machine lock).

pub mod linux;
pub mod recording;
#[cfg(windows)]
pub mod windows;

use std::path::{Path, PathBuf};

use crate::scm::ScmError;

/// The coLinux driver's service name on Windows (`driver.h`: `CoLinuxDriver`).
pub const SERVICE_NAME: &str = "CoLinuxDriver";
/// The driver file's name on Windows (`os/winnt/os.h`: `linux.sys`).
pub const WINDOWS_DRIVER_FILE: &str = "linux.sys";
/// The kernel module's name on Linux.
pub const MODULE_NAME: &str = "colinux";
/// The kernel module's file name on Linux.
pub const LINUX_DRIVER_FILE: &str = "colinux.ko";

/// The driver's file name on the host this program runs on.
pub fn driver_file_name() -> &'static str {
    if cfg!(windows) {
        WINDOWS_DRIVER_FILE
    } else {
        LINUX_DRIVER_FILE
    }
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Installed {
    /// The driver was registered (and started, when asked).
    Created,
    /// It was already installed with this path; nothing changed (started if asked).
    AlreadyInstalled,
    /// It was installed with another path, now changed to this one.
    PathUpdated {
        /// The path it had.
        old: PathBuf,
    },
}

/// What a remove did (the SCM wrapper's, shared with the installer's machine service).
pub use crate::scm::Removed;

/// The driver's state on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The service or module name.
    pub name: String,
    /// Whether it is registered (Windows) or loaded (Linux).
    pub installed: bool,
    /// `not-installed`, `stopped`, `running`, `start-pending`, `stop-pending`,
    /// `live` (a loaded module), `loading`, `unloading`, or the host's raw value.
    pub state: String,
    /// The driver file the host uses, when it says.
    pub path: Option<PathBuf>,
    /// Windows: the service is marked for deletion (gone after a reboot).
    pub marked_for_deletion: bool,
}

impl Status {
    /// The status of a driver that is not there.
    pub fn absent(name: &str) -> Status {
        Status {
            name: name.to_owned(),
            installed: false,
            state: "not-installed".to_owned(),
            path: None,
            marked_for_deletion: false,
        }
    }
}

/// Installs, removes and reports the driver on one host.
pub trait DriverHost {
    /// Which host this is (`windows-scm`, `linux-module`, `recording`).
    fn kind(&self) -> &'static str;
    /// The service or module name.
    fn name(&self) -> &str;
    /// Registers the driver file at `path` (absolute); idempotent. With `start`, also
    /// loads it (a start failure undoes a registration made by this call).
    fn install(&mut self, path: &Path, start: bool) -> Result<Installed, ScmError>;
    /// Stops and removes the driver; removing what is not there is not an error.
    fn remove(&mut self) -> Result<Removed, ScmError>;
    /// Reports the driver's state.
    fn status(&mut self) -> Result<Status, ScmError>;
}

/// The real host of this machine.
pub fn native() -> Box<dyn DriverHost> {
    #[cfg(windows)]
    {
        Box::new(windows::ScmHost::new(SERVICE_NAME))
    }
    #[cfg(not(windows))]
    {
        Box::new(linux::ModuleHost::new(MODULE_NAME))
    }
}
