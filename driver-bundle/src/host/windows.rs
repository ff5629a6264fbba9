//! The coLinux driver on Windows: a kernel-driver service in the Service Control
//! Manager, made the way `colinux-daemon --install-driver` makes it (colinux-spec.md
//! §3.2: `CreateService(CoLinuxDriver, SERVICE_KERNEL_DRIVER, SERVICE_AUTO_START,
//! SERVICE_ERROR_NORMAL, path)`), but idempotent and with every result checked, through
//! the SCM wrapper ([`crate::scm::windows`]):
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
//! unquote it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{DriverHost, Installed, Removed, Status};
use crate::scm::windows::{
    Change, Manager, NewService, SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, SERVICE_ALL_ACCESS,
    SERVICE_KERNEL_DRIVER, SERVICE_QUERY_CONFIG, SERVICE_QUERY_STATUS, Service, Stopped,
};
use crate::scm::{Action, ScmError, StartType, Subject};

/// The Service Control Manager of this machine, for one kernel-driver service.
#[derive(Debug)]
pub struct ScmHost {
    subject: Subject,
}

/// The path a driver service's `ImagePath` names (the kernel stores some as
/// `\??\C:\...`).
fn image_path(svc: &Service) -> Result<Option<PathBuf>, ScmError> {
    Ok(svc
        .config()?
        .image_path
        .map(|p| PathBuf::from(p.strip_prefix(r"\??\").map(str::to_owned).unwrap_or(p))))
}

impl ScmHost {
    /// The service `name` (coLinux: `CoLinuxDriver`).
    pub fn new(name: &str) -> ScmHost {
        ScmHost {
            subject: Subject::driver(name),
        }
    }
}

impl DriverHost for ScmHost {
    fn kind(&self) -> &'static str {
        "windows-scm"
    }

    fn name(&self) -> &str {
        &self.subject.name
    }

    fn install(&mut self, path: &Path, start: bool) -> Result<Installed, ScmError> {
        let scm = Manager::connect(SC_MANAGER_ALL_ACCESS, &self.subject)?;
        let image = path.to_string_lossy().into_owned();
        let new = NewService {
            service_type: SERVICE_KERNEL_DRIVER,
            start: StartType::Auto,
            image_path: image.clone(),
            display_name: None,
            dependencies: Vec::new(),
            account: None,
        };
        let (svc, outcome) = match scm.create(&self.subject, &new, SERVICE_ALL_ACCESS)? {
            Some(svc) => (svc, Installed::Created),
            None => {
                // It exists: open it (gone meanwhile is an error, not a retry loop).
                let svc = scm
                    .open(&self.subject, SERVICE_ALL_ACCESS)?
                    .ok_or_else(|| ScmError::NotInstalled {
                        action: Action::Open,
                        subject: self.subject.clone(),
                    })?;
                let old = image_path(&svc)?;
                if old.as_deref() == Some(path) {
                    (svc, Installed::AlreadyInstalled)
                } else {
                    svc.change(&Change {
                        image_path: Some(image),
                        ..Change::default()
                    })?;
                    (
                        svc,
                        Installed::PathUpdated {
                            old: old.unwrap_or_default(),
                        },
                    )
                }
            }
        };
        if start && let Err(e) = svc.start() {
            if outcome == Installed::Created {
                let _ = svc.delete();
            }
            return Err(e);
        }
        Ok(outcome)
    }

    fn remove(&mut self) -> Result<Removed, ScmError> {
        let scm = Manager::connect(SC_MANAGER_ALL_ACCESS, &self.subject)?;
        let Some(svc) = scm.open(&self.subject, SERVICE_ALL_ACCESS)? else {
            return Ok(Removed::NotInstalled);
        };
        match svc.stop(Duration::from_secs(10))? {
            Stopped::Stopped | Stopped::NotRunning => svc.delete(),
            // A driver without an unload routine cannot be stopped: it stays loaded
            // until the next boot, which also finishes the deletion.
            Stopped::CannotStop => match svc.delete()? {
                Removed::NotInstalled => Ok(Removed::NotInstalled),
                _ => Ok(Removed::RebootRequired),
            },
        }
    }

    fn status(&mut self) -> Result<Status, ScmError> {
        // Query rights only: status works without elevation (coLinux's needed it).
        let scm = Manager::connect(SC_MANAGER_CONNECT, &self.subject)?;
        let Some(svc) = scm.open(&self.subject, SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG)?
        else {
            return Ok(Status::absent(&self.subject.name));
        };
        Ok(Status {
            name: self.subject.name.clone(),
            installed: true,
            state: svc.state()?.as_string(),
            path: image_path(&svc)?,
            marked_for_deletion: false,
        })
    }
}
