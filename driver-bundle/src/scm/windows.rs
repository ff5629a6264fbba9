//! Safe handles over the Service Control Manager API (`windows-sys`): [`Manager`]
//! (`OpenSCManagerW`) opens and creates [`Service`]s, which are queried, changed,
//! started, stopped and deleted. Every call's failure becomes an [`ScmError`] through
//! [`ScmError::from_code`], naming the action and the service. This module holds all
//! the `unsafe` code of both service hosts; each block says why it is sound.

#![allow(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::GetLastError;
use windows_sys::Win32::System::Registry::{HKEY_LOCAL_MACHINE, RRF_RT_REG_MULTI_SZ, RegGetValueW};
use windows_sys::Win32::System::Services::{
    ChangeServiceConfig2W, ChangeServiceConfigW, CloseServiceHandle, ControlService,
    CreateServiceW, DeleteService, OpenSCManagerW, OpenServiceW, QUERY_SERVICE_CONFIGW,
    QueryServiceConfig2W, QueryServiceConfigW, QueryServiceStatus, SC_ACTION, SC_ACTION_NONE,
    SC_ACTION_RESTART, SC_HANDLE, SERVICE_CONFIG_DESCRIPTION, SERVICE_CONFIG_FAILURE_ACTIONS,
    SERVICE_CONTROL_STOP, SERVICE_DESCRIPTIONW, SERVICE_FAILURE_ACTIONSW, SERVICE_NO_CHANGE,
    SERVICE_STATUS, StartServiceW,
};

pub use windows_sys::Win32::System::Services::{
    SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, SC_MANAGER_CREATE_SERVICE, SERVICE_ALL_ACCESS,
    SERVICE_CHANGE_CONFIG, SERVICE_ERROR_NORMAL, SERVICE_KERNEL_DRIVER, SERVICE_QUERY_CONFIG,
    SERVICE_QUERY_STATUS, SERVICE_START, SERVICE_STOP, SERVICE_WIN32_OWN_PROCESS,
};

use super::{
    Action, FailureAction, FailureActions, Removed, ScmError, StartType, State, Subject, code,
};

/// The standard `DELETE` access right (winnt.h), which a service handle needs to be
/// deleted.
pub const DELETE: u32 = 0x0001_0000;

fn wide(s: &str) -> Vec<u16> {
    OsStr::new(s)
        .encode_wide()
        .chain(std::iter::once(0))
        .collect()
}

/// A `REG_MULTI_SZ`-style list: each string NUL-terminated, one more NUL at the end.
fn multi_sz(items: &[String]) -> Vec<u16> {
    let mut out = Vec::new();
    for s in items {
        out.extend(OsStr::new(s).encode_wide());
        out.push(0);
    }
    out.push(0);
    out
}

fn last_error() -> u32 {
    // SAFETY: GetLastError has no preconditions.
    unsafe { GetLastError() }
}

/// The length in u16s of the NUL-terminated UTF-16 string at `p`.
///
/// # Safety
/// `p` points to a NUL-terminated UTF-16 string that stays alive and unchanged during
/// the call.
unsafe fn wide_len(p: *const u16) -> usize {
    let mut len = 0usize;
    // SAFETY: p is NUL-terminated (the caller's promise); we stop at the terminator.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    len
}

/// The NUL-terminated UTF-16 string at `p`, or `None` for a null pointer.
///
/// # Safety
/// `p` is null or points to a NUL-terminated UTF-16 string that stays alive and
/// unchanged during the call.
unsafe fn read_wide(p: *const u16) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: p is a NUL-terminated string (the caller's promise), and p..p+len are
    // its initialised u16s.
    let slice = unsafe { std::slice::from_raw_parts(p, wide_len(p)) };
    Some(OsString::from_wide(slice).to_string_lossy().into_owned())
}

/// The strings of a double-NUL-terminated list at `p` (empty for a null pointer).
///
/// # Safety
/// `p` is null or points to a list of NUL-terminated UTF-16 strings ended by an empty
/// one, alive and unchanged during the call.
unsafe fn read_multi_sz(mut p: *const u16) -> Vec<String> {
    let mut out = Vec::new();
    if p.is_null() {
        return out;
    }
    loop {
        // SAFETY: p is the start of one NUL-terminated string of the list (the
        // caller's promise for the first; the next starts after a terminator, and
        // the list ends with an empty one, where the loop stops).
        let len = unsafe { wide_len(p) };
        if len == 0 {
            return out;
        }
        // SAFETY: p..p+len are that string's initialised u16s.
        let slice = unsafe { std::slice::from_raw_parts(p, len) };
        out.push(OsString::from_wide(slice).to_string_lossy().into_owned());
        // SAFETY: p+len is the string's terminator, so p+len+1 is still inside the list.
        p = unsafe { p.add(len + 1) };
    }
}

/// A buffer of `bytes` bytes aligned for the pointer-holding structures the SCM writes
/// into it (u64 elements).
fn aligned(bytes: u32) -> (Vec<u64>, u32) {
    let buf = vec![0u64; (bytes as usize).div_ceil(8).max(8)];
    let size = u32::try_from(buf.len() * 8).unwrap_or(u32::MAX);
    (buf, size)
}

/// An SCM handle, closed on drop.
#[derive(Debug)]
struct Handle(SC_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from OpenSCManagerW/OpenServiceW/CreateServiceW, is
        // non-null (checked where it was made) and is closed exactly once, here.
        unsafe { CloseServiceHandle(self.0) };
    }
}

/// The Service Control Manager of this machine, opened for one service's operations.
#[derive(Debug)]
pub struct Manager {
    handle: Handle,
}

/// A new service's configuration (`CreateServiceW`).
#[derive(Debug, Clone)]
pub struct NewService {
    /// The service type: [`SERVICE_WIN32_OWN_PROCESS`], [`SERVICE_KERNEL_DRIVER`].
    pub service_type: u32,
    /// When it starts.
    pub start: StartType,
    /// What the SCM stores as `ImagePath`, byte for byte (a command line, or a driver's
    /// unquoted path).
    pub image_path: String,
    /// What the Services console shows; the service name when `None`.
    pub display_name: Option<String>,
    /// Services that must run first.
    pub dependencies: Vec<String>,
    /// The account it runs as (`LocalSystem` when `None`; drivers take none).
    pub account: Option<String>,
}

/// A service's configuration as the SCM reports it (`QueryServiceConfigW`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `dwServiceType`.
    pub service_type: u32,
    /// `dwStartType`.
    pub start: StartType,
    /// `ImagePath`, as stored.
    pub image_path: Option<String>,
    /// The display name.
    pub display_name: String,
    /// The account it runs as.
    pub account: Option<String>,
    /// The services it depends on (from the registry key when the SCM gives none:
    /// Wine).
    pub dependencies: Vec<String>,
}

/// A configuration change (`ChangeServiceConfigW`): `None` keeps a setting.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The new service type.
    pub service_type: Option<u32>,
    /// The new start type.
    pub start: Option<StartType>,
    /// The new `ImagePath`, byte for byte.
    pub image_path: Option<String>,
    /// The new display name.
    pub display_name: Option<String>,
    /// The new account.
    pub account: Option<String>,
    /// The new dependencies (`Some(vec![])`: none). Give them on every change of a
    /// service that has some, whatever else changes: Wine's `ChangeServiceConfigW`
    /// clears them when it gets none (`None`), which Windows keeps.
    pub dependencies: Option<Vec<String>>,
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It ran and has stopped.
    Stopped,
    /// It was not running.
    NotRunning,
    /// It cannot be stopped (`ERROR_INVALID_SERVICE_CONTROL`: a driver without an
    /// unload routine stays loaded until the next boot).
    CannotStop,
}

impl Manager {
    /// The local SCM's active database with `access` (`SC_MANAGER_*`), to act on
    /// `subject`.
    pub fn connect(access: u32, subject: &Subject) -> Result<Manager, ScmError> {
        // SAFETY: null machine and database names select the local active database.
        let h = unsafe { OpenSCManagerW(null(), null(), access) };
        if h.is_null() {
            return Err(ScmError::from_code(Action::Connect, subject, last_error()));
        }
        Ok(Manager { handle: Handle(h) })
    }

    /// Opens `subject` with `access` (`SERVICE_*`, [`DELETE`]); `None` when it does not
    /// exist.
    pub fn open(&self, subject: &Subject, access: u32) -> Result<Option<Service>, ScmError> {
        let name = wide(&subject.name);
        // SAFETY: the manager handle is open; name is NUL-terminated and outlives the call.
        let h = unsafe { OpenServiceW(self.handle.0, name.as_ptr(), access) };
        if h.is_null() {
            let code = last_error();
            if code == code::SERVICE_DOES_NOT_EXIST {
                return Ok(None);
            }
            return Err(ScmError::from_code(Action::Open, subject, code));
        }
        Ok(Some(Service {
            handle: Handle(h),
            subject: subject.clone(),
        }))
    }

    /// Creates `subject` as `new`, opened with `access`; `None` when a service of that
    /// name exists (`ERROR_SERVICE_EXISTS`). A service marked for deletion is
    /// [`ScmError::MarkedForDeletion`]; a taken display name [`ScmError::NameTaken`].
    pub fn create(
        &self,
        subject: &Subject,
        new: &NewService,
        access: u32,
    ) -> Result<Option<Service>, ScmError> {
        let name = wide(&subject.name);
        let display = wide(new.display_name.as_deref().unwrap_or(&subject.name));
        let image = wide(&new.image_path);
        let deps = multi_sz(&new.dependencies);
        let account = new.account.as_deref().map(wide);
        // SAFETY: the manager handle is open; every string is NUL-terminated (deps
        // double-NUL-terminated) and outlives the call; the load order group, tag and
        // password are null (none; an account such as LocalSystem takes no password).
        let h = unsafe {
            CreateServiceW(
                self.handle.0,
                name.as_ptr(),
                display.as_ptr(),
                access,
                new.service_type,
                new.start.raw(),
                SERVICE_ERROR_NORMAL,
                image.as_ptr(),
                null(),
                null_mut(),
                deps.as_ptr(),
                account.as_ref().map_or(null(), |a| a.as_ptr()),
                null(),
            )
        };
        if h.is_null() {
            return match last_error() {
                code::SERVICE_EXISTS => Ok(None),
                code::DUPLICATE_SERVICE_NAME => Err(ScmError::NameTaken {
                    action: Action::Create,
                    subject: subject.clone(),
                    display_name: new.display_name.clone(),
                }),
                code => Err(ScmError::from_code(Action::Create, subject, code)),
            };
        }
        Ok(Some(Service {
            handle: Handle(h),
            subject: subject.clone(),
        }))
    }
}

/// An open service.
#[derive(Debug)]
pub struct Service {
    handle: Handle,
    subject: Subject,
}

impl Service {
    fn fail(&self, action: Action) -> ScmError {
        ScmError::from_code(action, &self.subject, last_error())
    }

    /// Its current state (`QueryServiceStatus`; needs `SERVICE_QUERY_STATUS`).
    pub fn state(&self) -> Result<State, ScmError> {
        let mut st = SERVICE_STATUS::default();
        // SAFETY: the service handle is open; st is a valid SERVICE_STATUS to fill.
        if unsafe { QueryServiceStatus(self.handle.0, &mut st) } == 0 {
            return Err(self.fail(Action::Query));
        }
        Ok(State::from_raw(st.dwCurrentState))
    }

    /// Its configuration (`QueryServiceConfigW`; needs `SERVICE_QUERY_CONFIG`).
    pub fn config(&self) -> Result<Config, ScmError> {
        let mut needed: u32 = 0;
        // SAFETY: a null buffer of size 0 asks for the needed size only.
        let ok = unsafe { QueryServiceConfigW(self.handle.0, null_mut(), 0, &mut needed) };
        if ok == 0 {
            let code = last_error();
            if code != code::INSUFFICIENT_BUFFER {
                return Err(ScmError::from_code(Action::Query, &self.subject, code));
            }
        }
        let (mut buf, size) = aligned(needed);
        let cfg = buf.as_mut_ptr().cast::<QUERY_SERVICE_CONFIGW>();
        // SAFETY: buf is writable, aligned for QUERY_SERVICE_CONFIGW and `size` bytes
        // long, at least `needed`.
        if unsafe { QueryServiceConfigW(self.handle.0, cfg, size, &mut needed) } == 0 {
            return Err(self.fail(Action::Query));
        }
        // SAFETY: the call succeeded, so cfg points to an initialised structure whose
        // string pointers are null or NUL-terminated strings (the dependencies a
        // double-NUL-terminated list) inside buf, which lives until the end of this
        // function.
        let (c, image_path, display_name, account, queried) = unsafe {
            let c = &*cfg;
            (
                c,
                read_wide(c.lpBinaryPathName),
                read_wide(c.lpDisplayName),
                read_wide(c.lpServiceStartName),
                read_multi_sz(c.lpDependencies),
            )
        };
        let dependencies = if queried.is_empty() {
            registry_dependencies(&self.subject.name)
        } else {
            queried
        };
        Ok(Config {
            service_type: c.dwServiceType,
            start: StartType::from_raw(c.dwStartType),
            image_path,
            display_name: display_name.unwrap_or_default(),
            account,
            dependencies,
        })
    }

    /// Changes the settings `change` gives (`ChangeServiceConfigW`; needs
    /// `SERVICE_CHANGE_CONFIG`).
    pub fn change(&self, change: &Change) -> Result<(), ScmError> {
        let image = change.image_path.as_deref().map(wide);
        let display = change.display_name.as_deref().map(wide);
        let account = change.account.as_deref().map(wide);
        let deps = change.dependencies.as_deref().map(multi_sz);
        let ptr = |s: &Option<Vec<u16>>| s.as_ref().map_or(null(), |v| v.as_ptr());
        // SAFETY: the service handle is open; every string given is NUL-terminated
        // (deps double-NUL-terminated) and outlives the call; SERVICE_NO_CHANGE and
        // null pointers keep the settings not given.
        let ok = unsafe {
            ChangeServiceConfigW(
                self.handle.0,
                change.service_type.unwrap_or(SERVICE_NO_CHANGE),
                change.start.map_or(SERVICE_NO_CHANGE, StartType::raw),
                SERVICE_NO_CHANGE,
                ptr(&image),
                null(),
                null_mut(),
                ptr(&deps),
                ptr(&account),
                null(),
                ptr(&display),
            )
        };
        if ok == 0 {
            return Err(match last_error() {
                code::DUPLICATE_SERVICE_NAME => ScmError::NameTaken {
                    action: Action::Change,
                    subject: self.subject.clone(),
                    display_name: change.display_name.clone(),
                },
                code => ScmError::from_code(Action::Change, &self.subject, code),
            });
        }
        Ok(())
    }

    /// Sets the Services console's description (`ChangeServiceConfig2W`).
    pub fn set_description(&self, text: &str) -> Result<(), ScmError> {
        let mut text = wide(text);
        let info = SERVICE_DESCRIPTIONW {
            lpDescription: text.as_mut_ptr(),
        };
        // SAFETY: the service handle is open; info points to a SERVICE_DESCRIPTIONW
        // whose string is NUL-terminated; both outlive the call, which only reads them.
        let ok = unsafe {
            ChangeServiceConfig2W(
                self.handle.0,
                SERVICE_CONFIG_DESCRIPTION,
                (&raw const info).cast(),
            )
        };
        if ok == 0 {
            return Err(self.fail(Action::Configure));
        }
        Ok(())
    }

    /// Sets the failure actions (`ChangeServiceConfig2W`; a restart action needs the
    /// handle to have `SERVICE_START` too). Wine 8 accepts them and keeps nothing.
    pub fn set_failure_actions(&self, f: &FailureActions) -> Result<(), ScmError> {
        let mut actions: Vec<SC_ACTION> = f
            .actions
            .iter()
            .map(|a| SC_ACTION {
                Type: if a.restart {
                    SC_ACTION_RESTART
                } else {
                    SC_ACTION_NONE
                },
                Delay: a.delay_ms,
            })
            .collect();
        let info = SERVICE_FAILURE_ACTIONSW {
            dwResetPeriod: f.reset_secs,
            // Null: the reboot message and the command are kept as they are (none).
            lpRebootMsg: null_mut(),
            lpCommand: null_mut(),
            cActions: u32::try_from(actions.len()).unwrap_or(u32::MAX),
            lpsaActions: actions.as_mut_ptr(),
        };
        // SAFETY: the service handle is open; info and the actions it points to (cActions
        // of them) outlive the call, which only reads them.
        let ok = unsafe {
            ChangeServiceConfig2W(
                self.handle.0,
                SERVICE_CONFIG_FAILURE_ACTIONS,
                (&raw const info).cast(),
            )
        };
        if ok == 0 {
            return Err(self.fail(Action::Configure));
        }
        Ok(())
    }

    /// The failure actions (`QueryServiceConfig2W`); `None` when the SCM cannot say
    /// (`ERROR_INVALID_LEVEL`: Wine 8).
    pub fn failure_actions(&self) -> Result<Option<FailureActions>, ScmError> {
        let mut needed: u32 = 0;
        // SAFETY: a null buffer of size 0 asks for the needed size only.
        let ok = unsafe {
            QueryServiceConfig2W(
                self.handle.0,
                SERVICE_CONFIG_FAILURE_ACTIONS,
                null_mut(),
                0,
                &mut needed,
            )
        };
        if ok == 0 {
            match last_error() {
                code::INSUFFICIENT_BUFFER => {}
                code::INVALID_LEVEL => return Ok(None),
                code => return Err(ScmError::from_code(Action::Query, &self.subject, code)),
            }
        }
        let (mut buf, size) = aligned(needed);
        let p = buf.as_mut_ptr().cast::<u8>();
        // SAFETY: buf is writable, aligned for SERVICE_FAILURE_ACTIONSW and `size` bytes
        // long, at least `needed`.
        if unsafe {
            QueryServiceConfig2W(
                self.handle.0,
                SERVICE_CONFIG_FAILURE_ACTIONS,
                p,
                size,
                &mut needed,
            )
        } == 0
        {
            return match last_error() {
                code::INVALID_LEVEL => Ok(None),
                code => Err(ScmError::from_code(Action::Query, &self.subject, code)),
            };
        }
        // SAFETY: the call succeeded: buf starts with an initialised
        // SERVICE_FAILURE_ACTIONSW whose lpsaActions is null or points to cActions
        // SC_ACTIONs inside buf, which is still alive.
        let (reset, actions) = unsafe {
            let f = &*p.cast::<SERVICE_FAILURE_ACTIONSW>();
            let actions = if f.lpsaActions.is_null() || f.cActions == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(f.lpsaActions, f.cActions as usize)
            };
            (f.dwResetPeriod, actions.to_vec())
        };
        Ok(Some(FailureActions {
            reset_secs: reset,
            actions: actions
                .iter()
                .map(|a| FailureAction {
                    restart: a.Type == SC_ACTION_RESTART,
                    delay_ms: a.Delay,
                })
                .collect(),
        }))
    }

    /// Starts it (`StartServiceW`, no arguments; needs `SERVICE_START`); one already
    /// running is not an error. `ERROR_SERVICE_DATABASE_LOCKED` is transient (the SCM
    /// is starting another service, e.g. right after boot, and refuses a second start
    /// meanwhile), so it is retried for up to 30 s before it counts as a failure.
    pub fn start(&self) -> Result<(), ScmError> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            // SAFETY: the service handle is open; no arguments are passed.
            if unsafe { StartServiceW(self.handle.0, 0, null()) } != 0 {
                return Ok(());
            }
            match last_error() {
                code::SERVICE_ALREADY_RUNNING => return Ok(()),
                code::SERVICE_DATABASE_LOCKED if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                code => return Err(ScmError::from_code(Action::Start, &self.subject, code)),
            }
        }
    }

    /// Stops it (`ControlService(STOP)`; needs `SERVICE_STOP` and
    /// `SERVICE_QUERY_STATUS`) and waits up to `wait` for `SERVICE_STOPPED`
    /// ([`ScmError::NotStopped`] after that).
    pub fn stop(&self, wait: Duration) -> Result<Stopped, ScmError> {
        let mut st = SERVICE_STATUS::default();
        // SAFETY: the service handle is open; st is a valid SERVICE_STATUS to fill.
        if unsafe { ControlService(self.handle.0, SERVICE_CONTROL_STOP, &mut st) } == 0 {
            return match last_error() {
                code::SERVICE_NOT_ACTIVE => Ok(Stopped::NotRunning),
                code::INVALID_SERVICE_CONTROL => Ok(Stopped::CannotStop),
                code => Err(ScmError::from_code(Action::Stop, &self.subject, code)),
            };
        }
        let until = Instant::now() + wait;
        while self.state()? != State::Stopped {
            if Instant::now() > until {
                return Err(ScmError::NotStopped {
                    subject: self.subject.clone(),
                    secs: wait.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Stopped::Stopped)
    }

    /// Deletes it (`DeleteService`; needs [`DELETE`]); [`Removed::RebootRequired`]
    /// when it is marked for deletion already (`ERROR_SERVICE_MARKED_FOR_DELETE`: a
    /// handle was open elsewhere at an earlier delete, so only a reboot finishes it).
    pub fn delete(&self) -> Result<Removed, ScmError> {
        // SAFETY: the service handle is open.
        if unsafe { DeleteService(self.handle.0) } == 0 {
            return match last_error() {
                code::SERVICE_MARKED_FOR_DELETE => Ok(Removed::RebootRequired),
                code => Err(ScmError::from_code(Action::Delete, &self.subject, code)),
            };
        }
        Ok(Removed::Removed)
    }
}

/// The `DependOnService` value of a service's registry key, where the SCM keeps its
/// dependencies (read when `QueryServiceConfigW` gives none: Wine's TODO); empty when
/// there is none or it cannot be read.
fn registry_dependencies(name: &str) -> Vec<String> {
    let key = wide(&format!("SYSTEM\\CurrentControlSet\\Services\\{name}"));
    let value = wide("DependOnService");
    let mut bytes: u32 = 0;
    // SAFETY: key and value are NUL-terminated and outlive the call; a null data
    // pointer asks for the size only.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_MULTI_SZ,
            null_mut(),
            null_mut(),
            &mut bytes,
        )
    };
    if rc != 0 || bytes == 0 {
        return Vec::new();
    }
    // Room for the terminators RegGetValueW adds when the stored value lacks them.
    let mut buf = vec![0u16; (bytes as usize).div_ceil(2) + 2];
    let mut size = u32::try_from(buf.len() * 2).unwrap_or(u32::MAX);
    // SAFETY: as above; buf is writable and `size` bytes long.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_MULTI_SZ,
            null_mut(),
            buf.as_mut_ptr().cast(),
            &mut size,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    buf.split(|&c| c == 0)
        .take_while(|s| !s.is_empty())
        .map(|s| OsString::from_wide(s).to_string_lossy().into_owned())
        .collect()
}
