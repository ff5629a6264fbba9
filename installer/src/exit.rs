//! Exit codes, and the one place where an outcome becomes one.
//!
//! Checkers (`config check`, `images check`, `driver verify`, `kit verify`) exit 0 when
//! all is well and 1 when they found a problem. Everything else follows Windows
//! Installer, because deployment tools (SCCM, Intune, Group Policy) read these codes:
//! 0 success, 3010 success but reboot required, 1602 cancelled by the user, 1603 fatal
//! error, 1618 another install is running, and 2 for a command-line usage error.
//!
//! Process exit codes above 255 are truncated by POSIX hosts; on Windows the full value
//! reaches the caller. [`report`] returns the Windows value; `main` passes what the host
//! can carry.

/// Success.
pub const SUCCESS: u8 = 0;
/// A checker found a problem.
pub const CHECK_FAILED: u8 = 1;
/// The command line could not be understood.
pub const USAGE: u8 = 2;
/// Windows Installer's ERROR_INSTALL_FAILURE, as seen by a POSIX shell (1603 & 0xff).
pub const FATAL: u16 = 1603;
/// Windows Installer's ERROR_INSTALL_USEREXIT.
pub const CANCELLED: u16 = 1602;
/// Windows Installer's ERROR_INSTALL_ALREADY_RUNNING.
pub const ALREADY_RUNNING: u16 = 1618;
/// Windows Installer's ERROR_SUCCESS_REBOOT_REQUIRED (3010 & 0xff = 194 on POSIX).
pub const REBOOT_REQUIRED: u16 = 3010;

/// A line printed after an error, last (the path of the run's log).
static TRAILER: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Sets the line printed last when the command fails (e.g. where its log is).
pub fn set_trailer(line: String) {
    if let Ok(mut t) = TRAILER.lock() {
        *t = Some(line);
    }
}

fn print_trailer() {
    if let Ok(t) = TRAILER.lock()
        && let Some(line) = t.as_ref()
    {
        eprintln!("{line}");
    }
}

/// What a command ended with.
#[derive(Debug)]
pub enum Outcome {
    /// The command did what it was asked.
    Done,
    /// A checker ran and found problems (it has printed them).
    CheckFailed,
    /// The user interrupted the command; what it had done has been undone.
    Cancelled(anyhow::Error),
    /// The command failed; the error chain says what, where and what to do.
    Failed(anyhow::Error),
    /// The command line was well-formed but its values were not (exit 2).
    Usage(anyhow::Error),
    /// Another install holds the lock (1618); nothing was changed.
    Busy(anyhow::Error),
    /// Done, but a reboot finishes it (3010), e.g. a driver marked for deletion.
    RebootRequired,
    /// `shell -- COMMAND` ran the command in the guest (or a wsl machine's shell ended):
    /// its exit status, as ssh passes it.
    GuestStatus(u8),
}

/// Prints an error chain the way every command does: `error:` line, `caused by:` lines,
/// then any `help:` hint the chain carries.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("colinux-setup: error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Maps an outcome to the process exit status, printing any error first.
pub fn report(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Done => SUCCESS,
        Outcome::GuestStatus(code) => code,
        Outcome::RebootRequired => truncate(REBOOT_REQUIRED),
        Outcome::CheckFailed => CHECK_FAILED,
        Outcome::Usage(err) => {
            print_error(&err);
            USAGE
        }
        Outcome::Cancelled(err) => {
            print_error(&err);
            print_trailer();
            truncate(CANCELLED)
        }
        Outcome::Failed(err) => {
            print_error(&err);
            print_trailer();
            truncate(FATAL)
        }
        Outcome::Busy(err) => {
            print_error(&err);
            print_trailer();
            truncate(ALREADY_RUNNING)
        }
    }
}

/// The low byte of a Windows Installer code: what a POSIX parent sees. On Windows the
/// whole value is returned by `std::process::exit` in `main`.
fn truncate(code: u16) -> u8 {
    #[cfg(windows)]
    {
        // ExitCode::from(u8) cannot carry 1603 on Windows; exit directly instead.
        std::process::exit(i32::from(code));
    }
    #[cfg(not(windows))]
    {
        (code & 0xff) as u8
    }
}
