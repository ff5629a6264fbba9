//! The one Service Control Manager wrapper of colinux-setup: the coLinux driver's
//! kernel-driver service ([`crate::host`]) and the installer's machine service (the
//! `colinux-setup` binary's `service` module) both go through it, and both report
//! failures as one error type, [`ScmError`].
//!
//! - [`ScmError`]: every failure of a service host, naming what was attempted
//!   ([`Action`]) on which service ([`Subject`]) and saying what to do. Win32 codes are
//!   mapped to it in one place, [`ScmError::from_code`], which is plain Rust: the
//!   recording hosts (for `--dry-run` and the tests, on any host) report a simulated
//!   failure through the same mapping and the same words as the real SCM.
//! - `windows` (`cfg(windows)`): safe handles over the SCM API (open, create, change,
//!   describe, failure actions, start, stop, delete, status, configuration), the only
//!   `unsafe` code of both hosts.
//! - [`recording`]: the JSON state file both recording hosts keep.
//! - [`State`], [`StartType`], [`FailureActions`], [`Removed`]: what the SCM reports,
//!   as types.
//!
//! # Why `windows-sys`
//!
//! The wrapper is written over `windows-sys` (the raw API), not `windows-service`:
//! `windows-sys` is already what driver-bundle, tap-setup and image-builder use (one
//! Windows API crate in the workspace, one version in Cargo.lock); the machine service
//! needs its `ImagePath` stored byte for byte (`windows-service` joins and quotes the
//! program and arguments its own way, which made the installer call
//! `ChangeServiceConfigW` beside it anyway); a kernel driver's path must not be quoted
//! at all; and the errors are Win32 codes here, mapped once, instead of a second
//! crate's error enum to unwrap first.
//!
//! # Platform specific behavior
//!
//! Wine 8's services.exe, which the tests run the Windows code under, differs from
//! Windows in three ways the wrapper allows for: it accepts failure actions but does
//! not keep them, and cannot read them back (`ERROR_INVALID_LEVEL`:
//! `windows::Service::failure_actions` returns `None`, and the caller writes them
//! again instead of comparing); `QueryServiceConfigW` returns no dependencies
//! (`lpDependencies = NULL; /* TODO */`), so `windows::Service::config` reads them from
//! the service's registry key (`DependOnService`), where the SCM keeps them; and
//! `ChangeServiceConfigW` with no dependencies clears them, so a service that has some
//! is changed with its dependencies given again (`windows::Change::dependencies`;
//! Windows takes the same call the same way).

pub mod recording;
#[cfg(windows)]
pub mod windows;

use std::fmt;
use std::path::PathBuf;

/// Win32 error codes the wrapper acts on, as plain numbers so that the mapping is the
/// same on every host (`cfg(windows)` checks them against `windows-sys` below).
pub mod code {
    /// `ERROR_FILE_NOT_FOUND`.
    pub const FILE_NOT_FOUND: u32 = 2;
    /// `ERROR_ACCESS_DENIED`.
    pub const ACCESS_DENIED: u32 = 5;
    /// `ERROR_INVALID_PARAMETER`.
    pub const INVALID_PARAMETER: u32 = 87;
    /// `ERROR_INSUFFICIENT_BUFFER`.
    pub const INSUFFICIENT_BUFFER: u32 = 122;
    /// `ERROR_INVALID_NAME`.
    pub const INVALID_NAME: u32 = 123;
    /// `ERROR_INVALID_LEVEL` (Wine: a configuration it cannot read back).
    pub const INVALID_LEVEL: u32 = 124;
    /// `ERROR_INVALID_IMAGE_HASH`: the driver's signature is refused.
    pub const INVALID_IMAGE_HASH: u32 = 577;
    /// `ERROR_INVALID_SERVICE_CONTROL`: a driver without an unload routine.
    pub const INVALID_SERVICE_CONTROL: u32 = 1052;
    /// `ERROR_SERVICE_REQUEST_TIMEOUT`.
    pub const SERVICE_REQUEST_TIMEOUT: u32 = 1053;
    /// `ERROR_SERVICE_DATABASE_LOCKED`: another service is starting.
    pub const SERVICE_DATABASE_LOCKED: u32 = 1055;
    /// `ERROR_SERVICE_ALREADY_RUNNING`.
    pub const SERVICE_ALREADY_RUNNING: u32 = 1056;
    /// `ERROR_INVALID_SERVICE_ACCOUNT`.
    pub const INVALID_SERVICE_ACCOUNT: u32 = 1057;
    /// `ERROR_SERVICE_DISABLED`.
    pub const SERVICE_DISABLED: u32 = 1058;
    /// `ERROR_CIRCULAR_DEPENDENCY`.
    pub const CIRCULAR_DEPENDENCY: u32 = 1059;
    /// `ERROR_SERVICE_DOES_NOT_EXIST`.
    pub const SERVICE_DOES_NOT_EXIST: u32 = 1060;
    /// `ERROR_SERVICE_NOT_ACTIVE`.
    pub const SERVICE_NOT_ACTIVE: u32 = 1062;
    /// `ERROR_SERVICE_DEPENDENCY_FAIL`.
    pub const SERVICE_DEPENDENCY_FAIL: u32 = 1068;
    /// `ERROR_SERVICE_LOGON_FAILED`.
    pub const SERVICE_LOGON_FAILED: u32 = 1069;
    /// `ERROR_SERVICE_MARKED_FOR_DELETE`.
    pub const SERVICE_MARKED_FOR_DELETE: u32 = 1072;
    /// `ERROR_SERVICE_EXISTS`.
    pub const SERVICE_EXISTS: u32 = 1073;
    /// `ERROR_SERVICE_DEPENDENCY_DELETED`.
    pub const SERVICE_DEPENDENCY_DELETED: u32 = 1075;
    /// `ERROR_DUPLICATE_SERVICE_NAME`: the name or display name is taken.
    pub const DUPLICATE_SERVICE_NAME: u32 = 1078;
    /// `ERROR_SHUTDOWN_IN_PROGRESS`.
    pub const SHUTDOWN_IN_PROGRESS: u32 = 1115;
    /// `ERROR_DRIVER_BLOCKED`.
    pub const DRIVER_BLOCKED: u32 = 1275;
}

#[cfg(windows)]
const _: () = {
    use windows_sys::Win32::Foundation as F;
    assert!(code::FILE_NOT_FOUND == F::ERROR_FILE_NOT_FOUND);
    assert!(code::ACCESS_DENIED == F::ERROR_ACCESS_DENIED);
    assert!(code::INVALID_PARAMETER == F::ERROR_INVALID_PARAMETER);
    assert!(code::INSUFFICIENT_BUFFER == F::ERROR_INSUFFICIENT_BUFFER);
    assert!(code::INVALID_NAME == F::ERROR_INVALID_NAME);
    assert!(code::INVALID_LEVEL == F::ERROR_INVALID_LEVEL);
    assert!(code::INVALID_IMAGE_HASH == F::ERROR_INVALID_IMAGE_HASH);
    assert!(code::INVALID_SERVICE_CONTROL == F::ERROR_INVALID_SERVICE_CONTROL);
    assert!(code::SERVICE_REQUEST_TIMEOUT == F::ERROR_SERVICE_REQUEST_TIMEOUT);
    assert!(code::SERVICE_DATABASE_LOCKED == F::ERROR_SERVICE_DATABASE_LOCKED);
    assert!(code::SERVICE_ALREADY_RUNNING == F::ERROR_SERVICE_ALREADY_RUNNING);
    assert!(code::INVALID_SERVICE_ACCOUNT == F::ERROR_INVALID_SERVICE_ACCOUNT);
    assert!(code::SERVICE_DISABLED == F::ERROR_SERVICE_DISABLED);
    assert!(code::CIRCULAR_DEPENDENCY == F::ERROR_CIRCULAR_DEPENDENCY);
    assert!(code::SERVICE_DOES_NOT_EXIST == F::ERROR_SERVICE_DOES_NOT_EXIST);
    assert!(code::SERVICE_NOT_ACTIVE == F::ERROR_SERVICE_NOT_ACTIVE);
    assert!(code::SERVICE_DEPENDENCY_FAIL == F::ERROR_SERVICE_DEPENDENCY_FAIL);
    assert!(code::SERVICE_LOGON_FAILED == F::ERROR_SERVICE_LOGON_FAILED);
    assert!(code::SERVICE_MARKED_FOR_DELETE == F::ERROR_SERVICE_MARKED_FOR_DELETE);
    assert!(code::SERVICE_EXISTS == F::ERROR_SERVICE_EXISTS);
    assert!(code::SERVICE_DEPENDENCY_DELETED == F::ERROR_SERVICE_DEPENDENCY_DELETED);
    assert!(code::DUPLICATE_SERVICE_NAME == F::ERROR_DUPLICATE_SERVICE_NAME);
    assert!(code::SHUTDOWN_IN_PROGRESS == F::ERROR_SHUTDOWN_IN_PROGRESS);
    assert!(code::DRIVER_BLOCKED == F::ERROR_DRIVER_BLOCKED);
};

/// What kind of thing a host acts on: it decides the noun in messages and the advice
/// for missing rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Win32 service (the machine: colinux-daemon `--run-service`).
    Service,
    /// A kernel-driver service (the coLinux driver, `CoLinuxDriver`).
    Driver,
    /// A Linux kernel module (the coLinux driver on Linux, `colinux`).
    Module,
}

/// The service (or module) an operation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The service (key) name, or the module name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
}

impl Subject {
    /// A Win32 service.
    pub fn service(name: &str) -> Subject {
        Subject {
            name: name.to_owned(),
            kind: Kind::Service,
        }
    }

    /// A kernel-driver service.
    pub fn driver(name: &str) -> Subject {
        Subject {
            name: name.to_owned(),
            kind: Kind::Driver,
        }
    }

    /// A Linux kernel module.
    pub fn module(name: &str) -> Subject {
        Subject {
            name: name.to_owned(),
            kind: Kind::Module,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = match self.kind {
            Kind::Service => "service",
            Kind::Driver => "driver",
            Kind::Module => "module",
        };
        write!(f, "the {} {noun}", self.name)
    }
}

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Opening the Service Control Manager.
    Connect,
    /// Opening a service.
    Open,
    /// Creating a service.
    Create,
    /// Changing a service's configuration (`ChangeServiceConfigW`).
    Change,
    /// Writing its description or failure actions (`ChangeServiceConfig2W`).
    Configure,
    /// Reading its state or configuration.
    Query,
    /// Starting it (loading a module).
    Start,
    /// Stopping it (unloading a module).
    Stop,
    /// Deleting it.
    Delete,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Connect => "opening the Service Control Manager for",
            Action::Open => "opening",
            Action::Create => "creating",
            Action::Change => "changing",
            Action::Configure => "configuring",
            Action::Query => "querying",
            Action::Start => "starting",
            Action::Stop => "stopping",
            Action::Delete => "deleting",
        })
    }
}

/// A service host operation that failed: the one error of the SCM wrapper, the driver
/// hosts ([`crate::host::DriverHost`]) and the installer's service hosts, real or
/// recording. Each variant names what was attempted on which service and says what to
/// do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScmError {
    /// Not elevated (Windows), not root (Linux), or a recording host told to refuse.
    #[error("{}: access denied; {}", doing(*action, subject), rights(subject.kind))]
    AccessDenied {
        /// What was attempted.
        action: Action,
        /// On what.
        subject: Subject,
    },
    /// The service was deleted while a handle was open: nothing of that name can be
    /// made until a reboot.
    #[error(
        "{}: the {} service is marked for deletion; reboot, then install again",
        doing(*action, subject),
        subject.name
    )]
    MarkedForDeletion {
        /// What was attempted.
        action: Action,
        /// On what.
        subject: Subject,
    },
    /// Another service has this name as its display name, or this display name
    /// (`ERROR_DUPLICATE_SERVICE_NAME`).
    #[error(
        "{}: another service already has the display name {} (error 1078); give this one another name, or remove the other service",
        doing(*action, subject),
        display_name.as_deref().map_or_else(|| "it asks for".to_owned(), |d| format!("\"{d}\""))
    )]
    NameTaken {
        /// What was attempted.
        action: Action,
        /// On what.
        subject: Subject,
        /// The display name asked for, when known.
        display_name: Option<String>,
    },
    /// The service is not there (deleted meanwhile, or never made).
    #[error("{}: it is not installed (error 1060); install it first", doing(*action, subject))]
    NotInstalled {
        /// What was attempted.
        action: Action,
        /// On what.
        subject: Subject,
    },
    /// A stop was asked for and the service still runs.
    #[error(
        "stopping {subject}: it did not stop within {secs} s; stop the coLinux machine that uses it, then remove it again"
    )]
    NotStopped {
        /// On what.
        subject: Subject,
        /// How long we waited.
        secs: u64,
    },
    /// Another Win32 failure, with its code, the system's text and what to do.
    #[error("{}: {message} (error {code}); {}", doing(*action, subject), advice(*code))]
    Os {
        /// What was attempted.
        action: Action,
        /// On what.
        subject: Subject,
        /// The Win32 error code.
        code: u32,
        /// The system's text for it (or the recording host's).
        message: String,
    },
    /// A helper program failed (Linux: `insmod`, `rmmod`), or could not be run.
    #[error("{}: {detail}", doing(*action, subject))]
    Program {
        /// What was attempted.
        action: Action,
        /// On what.
        subject: Subject,
        /// What happened and what to do (the program's own words when it ran).
        detail: String,
    },
    /// A host file could not be read (Linux: `/proc/modules`).
    #[error("{}: {}: {source}; check that /proc is mounted", doing(*action, subject), path.display())]
    Io {
        /// What was attempted.
        action: Action,
        /// On what.
        subject: Subject,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A recording host's state file cannot be read or written.
    #[error(
        "{}: the recording service host's state cannot be {what} ({detail}); fix the JSON or delete the file",
        path.display()
    )]
    StateFile {
        /// The JSON state file.
        path: PathBuf,
        /// `read` or `written`.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// This host has no Service Control Manager for what was asked.
    #[error("{feature} exists only on Windows (under the Service Control Manager); {instead}")]
    Unsupported {
        /// What was asked for (e.g. "a machine service").
        feature: String,
        /// What to do on this host instead.
        instead: String,
    },
}

/// "starting the coLinux service", "loading the colinux module": what was attempted, in
/// words.
fn doing(action: Action, subject: &Subject) -> String {
    match (subject.kind, action) {
        (Kind::Module, Action::Start) => format!("loading {subject}"),
        (Kind::Module, Action::Stop) => format!("unloading {subject}"),
        (Kind::Module, Action::Query) => format!("looking for {subject}"),
        _ => format!("{action} {subject}"),
    }
}

/// The advice for missing rights, by what is acted on.
fn rights(kind: Kind) -> &'static str {
    match kind {
        Kind::Module => "run as root",
        Kind::Service | Kind::Driver => "run as an administrator (an elevated prompt)",
    }
}

/// What to do about a Win32 code that has no variant of its own.
pub fn advice(code: u32) -> &'static str {
    match code {
        code::FILE_NOT_FOUND => {
            "the program or driver file it names is missing or cannot be loaded; install the kit again"
        }
        code::INVALID_IMAGE_HASH => {
            "Windows refuses the driver's signature: use a driver signed for this Windows, or turn test signing on (bcdedit /set testsigning on, then reboot) for a test-signed one"
        }
        code::DRIVER_BLOCKED => {
            "Windows blocks this driver (its block list or this machine's policy); use another build of the driver"
        }
        code::SERVICE_REQUEST_TIMEOUT => {
            "the program did not answer the Service Control Manager in time; see the System event log for why"
        }
        code::SERVICE_DATABASE_LOCKED => {
            "another program is changing services; try again in a minute"
        }
        code::SERVICE_DISABLED => {
            "the service is disabled; set its start type back (sc config NAME start= auto)"
        }
        code::SERVICE_DEPENDENCY_FAIL | code::SERVICE_DEPENDENCY_DELETED => {
            "a service it depends on did not start or is gone; install or start that one first"
        }
        code::CIRCULAR_DEPENDENCY => "its dependencies form a loop; remove the loop",
        code::INVALID_SERVICE_ACCOUNT | code::SERVICE_LOGON_FAILED => {
            "the account it runs as is not valid here; run it as LocalSystem"
        }
        code::INVALID_SERVICE_CONTROL => {
            "it cannot take that request in its current state; wait until it has started or stopped, then try again"
        }
        code::SERVICE_EXISTS => {
            "a service of that name exists already; remove it or choose another name"
        }
        code::INVALID_NAME | code::INVALID_PARAMETER => {
            "Windows refuses the name or a setting; use a plain service name"
        }
        code::SHUTDOWN_IN_PROGRESS => "Windows is shutting down; try again after the restart",
        _ => "see the System event log for the Service Control Manager's reason",
    }
}

/// The system's text for a Win32 code: Windows' own on Windows; elsewhere (recording
/// hosts) the few this wrapper names.
pub fn message(code: u32) -> String {
    #[cfg(windows)]
    {
        // A code does not overflow i32 (Win32 codes are 16-bit values in a u32).
        let text =
            std::io::Error::from_raw_os_error(i32::try_from(code).unwrap_or(i32::MAX)).to_string();
        // io::Error's text for codes Windows has no message for is noise.
        if text.contains("FormatMessageW") {
            format!("Windows has no text for error {code:#010x}")
        } else {
            text
        }
    }
    #[cfg(not(windows))]
    {
        match code {
            code::FILE_NOT_FOUND => "the system cannot find the file specified",
            code::ACCESS_DENIED => "access is denied",
            code::INVALID_IMAGE_HASH => "Windows cannot verify the digital signature for this file",
            code::SERVICE_REQUEST_TIMEOUT => {
                "the service did not respond to the start or control request in a timely fashion"
            }
            code::SERVICE_DATABASE_LOCKED => "the service database is locked",
            code::SERVICE_DISABLED => "the service cannot be started because it is disabled",
            code::SERVICE_DOES_NOT_EXIST => {
                "the specified service does not exist as an installed service"
            }
            code::SERVICE_MARKED_FOR_DELETE => "the specified service has been marked for deletion",
            code::DUPLICATE_SERVICE_NAME => {
                "the name is already in use as either a service name or a service display name"
            }
            _ => "Windows error",
        }
        .to_owned()
    }
}

impl ScmError {
    /// The error for Win32 code `code` from `action` on `subject`: the codes with a
    /// meaning of their own get their variant, the rest [`ScmError::Os`] with the
    /// system's text and [`advice`]. The same on every host, so a recording host's
    /// simulated failure reads as the real one.
    pub fn from_code(action: Action, subject: &Subject, code: u32) -> ScmError {
        let subject = subject.clone();
        match code {
            code::ACCESS_DENIED => ScmError::AccessDenied { action, subject },
            code::SERVICE_MARKED_FOR_DELETE => ScmError::MarkedForDeletion { action, subject },
            code::DUPLICATE_SERVICE_NAME => ScmError::NameTaken {
                action,
                subject,
                display_name: None,
            },
            code::SERVICE_DOES_NOT_EXIST => ScmError::NotInstalled { action, subject },
            _ => ScmError::Os {
                action,
                subject,
                code,
                message: message(code),
            },
        }
    }

    /// The Win32 code behind this error, when there is one.
    pub fn code(&self) -> Option<u32> {
        match self {
            ScmError::AccessDenied { .. } => Some(code::ACCESS_DENIED),
            ScmError::MarkedForDeletion { .. } => Some(code::SERVICE_MARKED_FOR_DELETE),
            ScmError::NameTaken { .. } => Some(code::DUPLICATE_SERVICE_NAME),
            ScmError::NotInstalled { .. } => Some(code::SERVICE_DOES_NOT_EXIST),
            ScmError::Os { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What a remove did (the driver's and the machine service's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Removed {
    /// Stopped and deleted.
    Removed,
    /// Nothing was installed.
    NotInstalled,
    /// Deleted, but the host finishes only after a reboot (Windows: marked for deletion).
    RebootRequired,
}

/// A service's current state (`SERVICE_STATUS.dwCurrentState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `SERVICE_STOPPED`.
    Stopped,
    /// `SERVICE_START_PENDING`.
    StartPending,
    /// `SERVICE_STOP_PENDING`.
    StopPending,
    /// `SERVICE_RUNNING`.
    Running,
    /// `SERVICE_CONTINUE_PENDING`.
    ContinuePending,
    /// `SERVICE_PAUSE_PENDING`.
    PausePending,
    /// `SERVICE_PAUSED`.
    Paused,
    /// A value Windows did not document.
    Other(u32),
}

impl State {
    /// From `dwCurrentState`.
    pub fn from_raw(n: u32) -> State {
        match n {
            1 => State::Stopped,
            2 => State::StartPending,
            3 => State::StopPending,
            4 => State::Running,
            5 => State::ContinuePending,
            6 => State::PausePending,
            7 => State::Paused,
            n => State::Other(n),
        }
    }

    /// The word status reports (`stopped`, `running`, `start-pending`, ...).
    pub fn as_string(self) -> String {
        match self {
            State::Stopped => "stopped".to_owned(),
            State::StartPending => "start-pending".to_owned(),
            State::StopPending => "stop-pending".to_owned(),
            State::Running => "running".to_owned(),
            State::ContinuePending => "continue-pending".to_owned(),
            State::PausePending => "pause-pending".to_owned(),
            State::Paused => "paused".to_owned(),
            State::Other(n) => format!("state-{n}"),
        }
    }
}

/// A service's start type (`dwStartType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartType {
    /// `SERVICE_BOOT_START` (drivers).
    Boot,
    /// `SERVICE_SYSTEM_START` (drivers).
    System,
    /// `SERVICE_AUTO_START`: at boot.
    Auto,
    /// `SERVICE_DEMAND_START`.
    Demand,
    /// `SERVICE_DISABLED`.
    Disabled,
    /// A value Windows did not document.
    Other(u32),
}

impl StartType {
    /// From `dwStartType`.
    pub fn from_raw(n: u32) -> StartType {
        match n {
            0 => StartType::Boot,
            1 => StartType::System,
            2 => StartType::Auto,
            3 => StartType::Demand,
            4 => StartType::Disabled,
            n => StartType::Other(n),
        }
    }

    /// `dwStartType`.
    pub fn raw(self) -> u32 {
        match self {
            StartType::Boot => 0,
            StartType::System => 1,
            StartType::Auto => 2,
            StartType::Demand => 3,
            StartType::Disabled => 4,
            StartType::Other(n) => n,
        }
    }

    /// The word status reports (`auto`, `demand`, `disabled`, `system`, `boot`).
    pub fn as_string(self) -> String {
        match self {
            StartType::Boot => "boot".to_owned(),
            StartType::System => "system".to_owned(),
            StartType::Auto => "auto".to_owned(),
            StartType::Demand => "demand".to_owned(),
            StartType::Disabled => "disabled".to_owned(),
            StartType::Other(n) => format!("start-{n}"),
        }
    }
}

/// One failure action (`SC_ACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureAction {
    /// Restart the service (`SC_ACTION_RESTART`), or nothing (`SC_ACTION_NONE`).
    pub restart: bool,
    /// Milliseconds before the action.
    pub delay_ms: u32,
}

/// What the SCM does when a service dies (`SERVICE_FAILURE_ACTIONSW`, without a reboot
/// message or command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureActions {
    /// Seconds without a failure after which the count starts again.
    pub reset_secs: u32,
    /// The first, second and later failures' actions.
    pub actions: Vec<FailureAction>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win32_codes_map_to_their_variant_the_same_on_every_host() {
        let d = Subject::driver("CoLinuxDriver");
        let s = Subject::service("coLinux");
        assert!(matches!(
            ScmError::from_code(Action::Create, &s, 5),
            ScmError::AccessDenied {
                action: Action::Create,
                ..
            }
        ));
        assert!(matches!(
            ScmError::from_code(Action::Create, &d, 1072),
            ScmError::MarkedForDeletion { .. }
        ));
        assert!(matches!(
            ScmError::from_code(Action::Create, &s, 1078),
            ScmError::NameTaken {
                display_name: None,
                ..
            }
        ));
        assert!(matches!(
            ScmError::from_code(Action::Open, &s, 1060),
            ScmError::NotInstalled { .. }
        ));
        match ScmError::from_code(Action::Start, &d, 577) {
            ScmError::Os { code: 577, .. } => {}
            e => panic!("577: {e:?}"),
        }
        for c in [2, 5, 577, 1060, 1072, 1078, 4242] {
            assert_eq!(ScmError::from_code(Action::Stop, &s, c).code(), Some(c));
        }
    }

    #[test]
    fn every_message_names_the_action_and_the_subject_and_says_what_to_do() {
        let d = Subject::driver("CoLinuxDriver");
        let s = Subject::service("coLinux");
        let m = Subject::module("colinux");
        let cases = [
            (
                ScmError::from_code(Action::Create, &s, 5),
                "creating the coLinux service: access denied; run as an administrator",
            ),
            (
                ScmError::from_code(Action::Stop, &m, 5),
                "unloading the colinux module: access denied; run as root",
            ),
            (
                ScmError::from_code(Action::Create, &d, 1072),
                "creating the CoLinuxDriver driver: the CoLinuxDriver service is marked for deletion; reboot, then install again",
            ),
            (
                ScmError::NameTaken {
                    action: Action::Create,
                    subject: s.clone(),
                    display_name: Some("coLinux machine (C:\\m)".into()),
                },
                "another service already has the display name \"coLinux machine (C:\\m)\" (error 1078); give this one another name",
            ),
            (
                ScmError::from_code(Action::Start, &d, 577),
                "starting the CoLinuxDriver driver: ",
            ),
            (
                ScmError::from_code(Action::Start, &d, 577),
                "(error 577); Windows refuses the driver's signature",
            ),
            (
                ScmError::from_code(Action::Delete, &s, 4242),
                "deleting the coLinux service: ",
            ),
            (
                ScmError::from_code(Action::Delete, &s, 4242),
                "(error 4242); see the System event log",
            ),
            (
                ScmError::NotStopped {
                    subject: s.clone(),
                    secs: 60,
                },
                "stopping the coLinux service: it did not stop within 60 s; stop the coLinux machine",
            ),
            (
                ScmError::Unsupported {
                    feature: "a machine service".into(),
                    instead: "run it with boot".into(),
                },
                "a machine service exists only on Windows",
            ),
        ];
        for (e, words) in cases {
            let text = e.to_string();
            assert!(text.contains(words), "{words:?} not in {text:?}");
        }
    }

    #[test]
    fn states_and_start_types_read_as_status_reports_them() {
        assert_eq!(State::from_raw(1).as_string(), "stopped");
        assert_eq!(State::from_raw(4).as_string(), "running");
        assert_eq!(State::from_raw(2).as_string(), "start-pending");
        assert_eq!(State::from_raw(9).as_string(), "state-9");
        for n in 0..6 {
            assert_eq!(StartType::from_raw(n).raw(), n);
        }
        assert_eq!(StartType::from_raw(2).as_string(), "auto");
        assert_eq!(StartType::from_raw(3).as_string(), "demand");
    }
}
