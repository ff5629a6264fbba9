//! The coLinux driver on Windows: a kernel-driver service in the Service Control
//! Manager, made the way `colinux-daemon --install-driver` makes it (colinux-spec.md
//! §3.2: `CreateService(CoLinuxDriver, SERVICE_KERNEL_DRIVER, SERVICE_AUTO_START,
//! SERVICE_ERROR_NORMAL, path)`), but idempotent and with every result checked:
//!
//! - install: an existing service with the same image path is left as it is; one with
//!   another path gets the new path (`ChangeServiceConfigW`); a start failure deletes a
//!   service this call created, as the daemon does.
//! - remove: stop (`ControlService(STOP)`, waiting up to 10 s for STOPPED), then
//!   `DeleteService`; `ERROR_SERVICE_MARKED_FOR_DELETE`, or a driver that cannot be
//!   stopped (no unload routine), means a reboot finishes it.
//! - start: `ERROR_SERVICE_DATABASE_LOCKED` (another service is starting) is retried.
//! - status: `QueryServiceStatus` and `QueryServiceConfigW` (state and image path).
//!
//! The image path of a kernel driver is not quoted (the kernel's loader does not
//! unquote it; windows-service special-cases this too).
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_INSUFFICIENT_BUFFER, ERROR_INVALID_SERVICE_CONTROL,
    ERROR_SERVICE_ALREADY_RUNNING, ERROR_SERVICE_DATABASE_LOCKED, ERROR_SERVICE_DOES_NOT_EXIST,
    ERROR_SERVICE_EXISTS, ERROR_SERVICE_MARKED_FOR_DELETE, ERROR_SERVICE_NOT_ACTIVE, GetLastError,
};
use windows_sys::Win32::System::Services::{
    ChangeServiceConfigW, CloseServiceHandle, ControlService, CreateServiceW, DeleteService,
    OpenSCManagerW, OpenServiceW, QUERY_SERVICE_CONFIGW, QueryServiceConfigW, QueryServiceStatus,
    SC_HANDLE, SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, SERVICE_ALL_ACCESS, SERVICE_AUTO_START,
    SERVICE_CONTROL_STOP, SERVICE_ERROR_NORMAL, SERVICE_KERNEL_DRIVER, SERVICE_NO_CHANGE,
    SERVICE_QUERY_CONFIG, SERVICE_QUERY_STATUS, SERVICE_RUNNING, SERVICE_START_PENDING,
    SERVICE_STATUS, SERVICE_STOP_PENDING, SERVICE_STOPPED, StartServiceW,
};

use super::{DriverHost, HostError, Installed, Removed, Status};

/// A service handle, closed on drop.
struct Handle(SC_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the handle came from OpenSCManagerW/OpenServiceW/CreateServiceW,
            // is non-null and is closed exactly once, here.
            unsafe { CloseServiceHandle(self.0) };
        }
    }
}

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

fn last_error() -> u32 {
    // SAFETY: GetLastError has no preconditions.
    unsafe { GetLastError() }
}

fn os_error(op: &str, code: u32) -> HostError {
    match code {
        ERROR_ACCESS_DENIED => HostError::AccessDenied { op: op.to_owned() },
        _ => {
            // io::Error's text for codes Windows has no message for is noise.
            let text = std::io::Error::from_raw_os_error(code as i32).to_string();
            let message = if text.contains("FormatMessageW") {
                format!("Windows has no text for error {code:#010x}")
            } else {
                text
            };
            HostError::Os {
                op: op.to_owned(),
                code,
                message,
            }
        }
    }
}

/// The Service Control Manager of this machine, for one kernel-driver service.
#[derive(Debug)]
pub struct ScmHost {
    name: String,
}

impl ScmHost {
    /// The service `name` (coLinux: `CoLinuxDriver`).
    pub fn new(name: &str) -> ScmHost {
        ScmHost {
            name: name.to_owned(),
        }
    }

    fn manager(&self, access: u32) -> Result<Handle, HostError> {
        // SAFETY: null machine and database names select the local active database.
        let h = unsafe { OpenSCManagerW(null(), null(), access) };
        if h.is_null() {
            return Err(os_error(
                "opening the Service Control Manager",
                last_error(),
            ));
        }
        Ok(Handle(h))
    }

    /// Opens the service; `None` when it does not exist.
    fn open(&self, scm: &Handle, access: u32) -> Result<Option<Handle>, HostError> {
        let name = wide(OsStr::new(&self.name));
        // SAFETY: scm is an open manager handle; name is NUL-terminated and outlives the call.
        let h = unsafe { OpenServiceW(scm.0, name.as_ptr(), access) };
        if h.is_null() {
            let code = last_error();
            if code == ERROR_SERVICE_DOES_NOT_EXIST {
                return Ok(None);
            }
            return Err(os_error(
                &format!("opening the {} service", self.name),
                code,
            ));
        }
        Ok(Some(Handle(h)))
    }

    fn query_status(&self, svc: &Handle) -> Result<SERVICE_STATUS, HostError> {
        let mut st = SERVICE_STATUS::default();
        // SAFETY: svc is an open service handle; st is a valid SERVICE_STATUS to fill.
        if unsafe { QueryServiceStatus(svc.0, &mut st) } == 0 {
            return Err(os_error(
                &format!("querying the {} service", self.name),
                last_error(),
            ));
        }
        Ok(st)
    }

    /// The service's image path, as registered.
    fn query_path(&self, svc: &Handle) -> Result<Option<PathBuf>, HostError> {
        let op = format!("reading the {} service's configuration", self.name);
        let mut needed: u32 = 0;
        // SAFETY: a null buffer of size 0 asks for the needed size only.
        let ok = unsafe { QueryServiceConfigW(svc.0, null_mut(), 0, &mut needed) };
        if ok == 0 && last_error() != ERROR_INSUFFICIENT_BUFFER {
            return Err(os_error(&op, last_error()));
        }
        // u64 elements keep the buffer aligned for QUERY_SERVICE_CONFIGW's pointers.
        let mut buf = vec![0u64; (needed as usize).div_ceil(8).max(8)];
        let size = u32::try_from(buf.len() * 8).unwrap_or(u32::MAX);
        let cfg = buf.as_mut_ptr().cast::<QUERY_SERVICE_CONFIGW>();
        // SAFETY: buf is writable, aligned and `size` bytes long, at least `needed`.
        if unsafe { QueryServiceConfigW(svc.0, cfg, size, &mut needed) } == 0 {
            return Err(os_error(&op, last_error()));
        }
        // SAFETY: the call succeeded, so cfg points to an initialised structure whose
        // string pointers are null or NUL-terminated strings inside buf.
        let p = unsafe { (*cfg).lpBinaryPathName };
        if p.is_null() {
            return Ok(None);
        }
        let mut len = 0usize;
        // SAFETY: p is NUL-terminated (see above); we stop at the terminator.
        while unsafe { *p.add(len) } != 0 {
            len += 1;
        }
        // SAFETY: p..p+len are initialised u16s inside buf, which is still alive.
        let slice = unsafe { std::slice::from_raw_parts(p, len) };
        let s = std::ffi::OsString::from_wide(slice);
        // The kernel stores driver paths as \??\C:\... when set by some tools.
        let s = s.to_string_lossy();
        let s = s.strip_prefix(r"\??\").unwrap_or(&s);
        Ok(Some(PathBuf::from(s)))
    }

    /// Starts the driver. `ERROR_SERVICE_DATABASE_LOCKED` is transient (the manager is
    /// starting another service, e.g. right after boot, and refuses a second start
    /// meanwhile), so it is retried for up to 30 s before it counts as a failure.
    fn start(&self, svc: &Handle) -> Result<(), HostError> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            // SAFETY: svc is an open service handle; no arguments are passed.
            if unsafe { StartServiceW(svc.0, 0, null()) } != 0 {
                return Ok(());
            }
            match last_error() {
                ERROR_SERVICE_ALREADY_RUNNING => return Ok(()),
                ERROR_SERVICE_DATABASE_LOCKED if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                code => {
                    return Err(os_error(
                        &format!("starting the {} driver", self.name),
                        code,
                    ));
                }
            }
        }
    }

    fn delete(&self, svc: &Handle) -> Result<Removed, HostError> {
        // SAFETY: svc is an open service handle with DELETE access.
        if unsafe { DeleteService(svc.0) } == 0 {
            let code = last_error();
            if code == ERROR_SERVICE_MARKED_FOR_DELETE {
                return Ok(Removed::RebootRequired);
            }
            return Err(os_error(
                &format!("deleting the {} service", self.name),
                code,
            ));
        }
        Ok(Removed::Removed)
    }
}

impl DriverHost for ScmHost {
    fn kind(&self) -> &'static str {
        "windows-scm"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn install(&mut self, path: &Path, start: bool) -> Result<Installed, HostError> {
        let scm = self.manager(SC_MANAGER_ALL_ACCESS)?;
        let name = wide(OsStr::new(&self.name));
        let image = wide(path.as_os_str());
        // SAFETY: scm is open; every string is NUL-terminated and outlives the call;
        // the optional arguments are null.
        let h = unsafe {
            CreateServiceW(
                scm.0,
                name.as_ptr(),
                name.as_ptr(),
                SERVICE_ALL_ACCESS,
                SERVICE_KERNEL_DRIVER,
                SERVICE_AUTO_START,
                SERVICE_ERROR_NORMAL,
                image.as_ptr(),
                null(),
                null_mut(),
                null(),
                null(),
                null(),
            )
        };
        let (svc, outcome) = if h.is_null() {
            let code = last_error();
            match code {
                ERROR_SERVICE_EXISTS => {
                    let svc =
                        self.open(&scm, SERVICE_ALL_ACCESS)?
                            .ok_or_else(|| HostError::Failed {
                                op: format!("opening the {} service", self.name),
                                message: "it exists and does not exist".to_owned(),
                            })?;
                    let old = self.query_path(&svc)?;
                    if old.as_deref() == Some(path) {
                        (svc, Installed::AlreadyInstalled)
                    } else {
                        // SAFETY: svc is open; image is NUL-terminated; SERVICE_NO_CHANGE
                        // and nulls keep every other setting.
                        let ok = unsafe {
                            ChangeServiceConfigW(
                                svc.0,
                                SERVICE_NO_CHANGE,
                                SERVICE_NO_CHANGE,
                                SERVICE_NO_CHANGE,
                                image.as_ptr(),
                                null(),
                                null_mut(),
                                null(),
                                null(),
                                null(),
                                null(),
                            )
                        };
                        if ok == 0 {
                            return Err(os_error(
                                &format!("changing the {} service's path", self.name),
                                last_error(),
                            ));
                        }
                        (
                            svc,
                            Installed::PathUpdated {
                                old: old.unwrap_or_default(),
                            },
                        )
                    }
                }
                ERROR_SERVICE_MARKED_FOR_DELETE => {
                    return Err(HostError::MarkedForDeletion {
                        op: format!("creating the {} service", self.name),
                        name: self.name.clone(),
                    });
                }
                _ => {
                    return Err(os_error(
                        &format!("creating the {} service", self.name),
                        code,
                    ));
                }
            }
        } else {
            (Handle(h), Installed::Created)
        };
        if start && let Err(e) = self.start(&svc) {
            if outcome == Installed::Created {
                let _ = self.delete(&svc);
            }
            return Err(e);
        }
        Ok(outcome)
    }

    fn remove(&mut self) -> Result<Removed, HostError> {
        let scm = self.manager(SC_MANAGER_ALL_ACCESS)?;
        let Some(svc) = self.open(&scm, SERVICE_ALL_ACCESS)? else {
            return Ok(Removed::NotInstalled);
        };
        let mut st = SERVICE_STATUS::default();
        // SAFETY: svc is open; st is a valid SERVICE_STATUS to fill.
        if unsafe { ControlService(svc.0, SERVICE_CONTROL_STOP, &mut st) } == 0 {
            let code = last_error();
            if code == ERROR_INVALID_SERVICE_CONTROL {
                // A driver without an unload routine cannot be stopped: it stays loaded
                // until the next boot, which also finishes the deletion.
                return match self.delete(&svc)? {
                    Removed::NotInstalled => Ok(Removed::NotInstalled),
                    _ => Ok(Removed::RebootRequired),
                };
            }
            if code != ERROR_SERVICE_NOT_ACTIVE {
                return Err(os_error(
                    &format!("stopping the {} driver", self.name),
                    code,
                ));
            }
        } else {
            let until = Instant::now() + Duration::from_secs(10);
            while self.query_status(&svc)?.dwCurrentState != SERVICE_STOPPED {
                if Instant::now() > until {
                    return Err(HostError::Failed {
                        op: format!("stopping the {} driver", self.name),
                        message: "it did not stop within 10 s (a monitor may still use it)"
                            .to_owned(),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.delete(&svc)
    }

    fn status(&mut self) -> Result<Status, HostError> {
        // Query rights only: status works without elevation (coLinux's needed it).
        let scm = self.manager(SC_MANAGER_CONNECT)?;
        let Some(svc) = self.open(&scm, SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG)? else {
            return Ok(Status::absent(&self.name));
        };
        let st = self.query_status(&svc)?;
        let state = match st.dwCurrentState {
            SERVICE_STOPPED => "stopped".to_owned(),
            SERVICE_RUNNING => "running".to_owned(),
            SERVICE_START_PENDING => "start-pending".to_owned(),
            SERVICE_STOP_PENDING => "stop-pending".to_owned(),
            n => format!("state-{n}"),
        };
        Ok(Status {
            name: self.name.clone(),
            installed: true,
            state,
            path: self.query_path(&svc)?,
            marked_for_deletion: false,
        })
    }
}
