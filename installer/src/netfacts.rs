//! The installer's side of the TAP adapter (issue 8): which host the `tap-setup` crate
//! works on, and which user will run the monitor (the adapter's owner). The subnet
//! choice, the adapter and its checks live in the `tap-setup` crate.

use tap_setup::TapHost;

/// The TAP host this program runs on.
pub fn host() -> Box<dyn TapHost> {
    tap_setup::system_host()
}

/// The user who will run the monitor: the one who called sudo, else this process's.
/// `None` on hosts without user ids (Windows: the adapter has no owner).
pub fn monitor_user() -> Option<u32> {
    #[cfg(unix)]
    {
        let me = rustix::process::getuid().as_raw();
        if me == 0
            && let Some(uid) = std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok())
        {
            return Some(uid);
        }
        Some(me)
    }
    #[cfg(not(unix))]
    {
        None
    }
}
