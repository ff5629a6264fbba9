//! TAP setup: one host-only network adapter for a coLinux (or User-mode Linux, QEMU)
//! guest, on a private /24 that collides with no route or address of the host.
//!
//! - [`subnet`]: the network: candidates, what the host already uses, the choice
//!   (`.1` for the host, `.2` for the guest); an explicit network that collides is an
//!   error naming what it collides with.
//! - [`host`]: the [`TapHost`] seam and the operations on it: [`install`] (create or
//!   reuse an adapter of the same name, address, up; undone when a part fails),
//!   [`remove`], [`choose_subnet`]; [`RecordingHost`] for `--dry-run` and tests.
//! - `linux` (Linux): persistent TAP devices over `/dev/net/tun`, owned by the user who
//!   runs the monitor, configured over rtnetlink.
//! - `windows` (Windows): a TAP-Windows adapter of the kit's driver (hardware id
//!   `tap0801co`), found by hardware id and connection name.
//!
//! The installer (`colinux-setup tap`, the install plan's `tap` step) is the only
//! consumer; this crate never prints.
//!
//! # Platform specific behavior
//!
//! [`system_host`] is the Linux host on Linux and the Windows host on Windows; on other
//! hosts every operation fails with [`Error::NoTapSupport`].
//!
//! # Limitations
//!
//! IPv4 only; one /24 per adapter. The network is checked against the host's routes
//! and addresses when it is chosen and at each boot; a VPN that comes up later is
//! only noticed then.
//!
//! # Example
//!
//! ```
//! use tap_setup::{RecordingHost, Spec, Subnet, install};
//! let mut host = RecordingHost::default();
//! let spec = Spec { name: "tap-colinux".into(), subnet: Subnet::parse("10.213.77.0/24")?, owner: Some(1000) };
//! let done = install(&mut host, &spec)?;
//! assert!(done.created && done.adapter.up);
//! assert_eq!(done.adapter.addresses[0].to_string(), "10.213.77.1/24");
//! # Ok::<(), tap_setup::Error>(())
//! ```
#![deny(missing_docs)]

mod error;
pub mod host;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod subnet;
#[cfg(windows)]
pub mod windows;

pub use error::Error;
pub use host::{
    Adapter, Installed, RecordingHost, Spec, TapHost, check_name, check_name_here, choose_subnet,
    install, remove,
};
pub use subnet::{Busy, Choice, Prefix, Subnet, default_candidates};

/// The host this program runs on.
pub fn system_host() -> Box<dyn TapHost> {
    #[cfg(target_os = "linux")]
    {
        Box::new(linux::LinuxHost::new())
    }
    #[cfg(windows)]
    {
        Box::new(windows::WindowsHost::new())
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        Box::new(Unsupported)
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
struct Unsupported;

#[cfg(not(any(target_os = "linux", windows)))]
impl TapHost for Unsupported {
    fn busy(&mut self) -> Result<Vec<Busy>, Error> {
        Err(unsupported())
    }
    fn find(&mut self, _: &str) -> Result<Option<Adapter>, Error> {
        Err(unsupported())
    }
    fn create(&mut self, _: &Spec) -> Result<bool, Error> {
        Err(unsupported())
    }
    fn set_owner(&mut self, _: &str, _: Option<u32>) -> Result<(), Error> {
        Err(unsupported())
    }
    fn configure(&mut self, _: &Spec) -> Result<(), Error> {
        Err(unsupported())
    }
    fn delete(&mut self, _: &str) -> Result<(), Error> {
        Err(unsupported())
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
fn unsupported() -> Error {
    Error::NoTapSupport {
        what: "TAP adapters are managed on Linux and Windows hosts only".into(),
    }
}
