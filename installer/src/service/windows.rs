//! The machine service on Windows: the Service Control Manager through driver-bundle's
//! SCM wrapper ([`driver_bundle::scm::windows`], the driver host's too), which stores
//! the command line exactly as [`super::Spec::command_line`] has it (the program always
//! quoted, as the daemon does) and holds all the `unsafe` code.
//!
//! - install: `CreateService`, or on `ERROR_SERVICE_EXISTS` compare the configuration
//!   (`QueryServiceConfig`, failure actions) and change what differs; a service marked
//!   for deletion can only come back after a reboot.
//! - remove: `ControlService(STOP)` when it runs (the daemon shuts the guest down),
//!   wait for STOPPED (up to 60 s), then `DeleteService`;
//!   `ERROR_SERVICE_MARKED_FOR_DELETE` means a reboot finishes it.
//! - status: `QueryServiceStatus` and `QueryServiceConfig`.
//!
//! Wine's services.exe (8.0) differs from Windows in three ways this module allows for
//! (the wrapper's "Platform specific behavior"): it accepts failure actions but does
//! not keep them (`SERVICE_CONFIG_FAILURE_ACTIONS not implemented`) and cannot read
//! them back (`ERROR_INVALID_LEVEL`): then they are written each time and not
//! compared; `QueryServiceConfig` returns no dependencies (`lpDependencies = NULL; /*
//! TODO */`): then the wrapper reads them from the service's registry key, where the
//! SCM keeps them (`DependOnService`); and `ChangeServiceConfig` with no dependencies
//! clears them: every change gives the dependencies again (the same call on Windows).
//!
//! The service is opened with `SERVICE_START` as well to install it: Windows wants it
//! on the handle that sets a restart failure action.

use std::time::Duration;

use driver_bundle::scm::windows::{
    Change, DELETE, Manager, NewService, SC_MANAGER_CONNECT, SC_MANAGER_CREATE_SERVICE,
    SERVICE_CHANGE_CONFIG, SERVICE_QUERY_CONFIG, SERVICE_QUERY_STATUS, SERVICE_START, SERVICE_STOP,
    SERVICE_WIN32_OWN_PROCESS, Service, Stopped,
};
use driver_bundle::scm::{
    Action, FailureAction, FailureActions, ScmError, StartType, Subject, code,
};

use super::{FailurePolicy, Installed, Removed, ServiceHost, Spec, Status};

/// How long a stop may take: the daemon shuts the guest down on STOP.
const STOP_WAIT: Duration = Duration::from_secs(60);

fn failure_actions(p: &FailurePolicy) -> FailureActions {
    FailureActions {
        reset_secs: p.reset_secs,
        actions: p
            .actions
            .iter()
            .map(|a| FailureAction {
                restart: a.action == "restart",
                delay_ms: a.delay_ms,
            })
            .collect(),
    }
}

fn new_service(spec: &Spec) -> NewService {
    NewService {
        service_type: SERVICE_WIN32_OWN_PROCESS,
        start: StartType::Auto,
        image_path: spec.command_line.clone(),
        display_name: Some(spec.display_name.clone()),
        dependencies: spec.dependencies.clone(),
        account: Some(spec.account.clone()),
    }
}

fn change(spec: &Spec) -> Change {
    Change {
        service_type: Some(SERVICE_WIN32_OWN_PROCESS),
        start: Some(StartType::Auto),
        image_path: Some(spec.command_line.clone()),
        display_name: Some(spec.display_name.clone()),
        account: Some(spec.account.clone()),
        // Always given, even when empty: Wine clears them otherwise.
        dependencies: Some(spec.dependencies.clone()),
    }
}

/// Writes the settings `CreateService` does not take.
fn finish(svc: &Service, spec: &Spec) -> Result<(), ScmError> {
    svc.set_description(&spec.description)?;
    svc.set_failure_actions(&failure_actions(&spec.failure))
}

/// The settings of the service that differ from `spec`, by name.
fn differences(svc: &Service, spec: &Spec) -> Result<Vec<String>, ScmError> {
    let cfg = svc.config()?;
    let mut d = Vec::new();
    if cfg.image_path.as_deref() != Some(spec.command_line.as_str()) {
        d.push("command line".to_owned());
    }
    if cfg.display_name != spec.display_name {
        d.push("display name".to_owned());
    }
    if cfg.start != StartType::Auto {
        d.push("start type".to_owned());
    }
    if cfg.service_type & SERVICE_WIN32_OWN_PROCESS == 0 {
        d.push("service type".to_owned());
    }
    if cfg.dependencies != spec.dependencies {
        d.push("dependencies".to_owned());
    }
    let account = cfg.account.unwrap_or_default();
    if !account.eq_ignore_ascii_case(&spec.account)
        && !account.eq_ignore_ascii_case(&format!(".\\{}", spec.account))
    {
        d.push("account".to_owned());
    }
    let wanted = failure_actions(&spec.failure);
    match svc.failure_actions()? {
        Some(f) if f != wanted => d.push("failure actions".to_owned()),
        Some(_) => {}
        // Wine cannot read them back: write them again, quietly.
        None => svc.set_failure_actions(&wanted)?,
    }
    Ok(d)
}

/// The Service Control Manager of this machine.
#[derive(Debug, Default)]
pub struct ScmHost;

impl ScmHost {
    /// The local SCM.
    pub fn new() -> ScmHost {
        ScmHost
    }
}

impl ServiceHost for ScmHost {
    fn kind(&self) -> &'static str {
        "windows-scm"
    }

    fn install(&mut self, spec: &Spec) -> Result<Installed, ScmError> {
        let subject = Subject::service(&spec.name);
        let scm = Manager::connect(SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE, &subject)?;
        let access =
            SERVICE_QUERY_CONFIG | SERVICE_CHANGE_CONFIG | SERVICE_QUERY_STATUS | SERVICE_START;
        if let Some(svc) = scm.create(&subject, &new_service(spec), access)? {
            if let Err(e) = finish(&svc, spec) {
                // Half made is not made: delete what this call created.
                if let Ok(Some(s)) = scm.open(&subject, DELETE) {
                    let _ = s.delete();
                }
                return Err(e);
            }
            return Ok(Installed::Created);
        }
        // It exists (gone meanwhile is an error, not a retry loop).
        let svc = scm
            .open(&subject, access)?
            .ok_or_else(|| ScmError::NotInstalled {
                action: Action::Open,
                subject: subject.clone(),
            })?;
        let changed = differences(&svc, spec)?;
        if changed.is_empty() {
            return Ok(Installed::AlreadyInstalled);
        }
        svc.change(&change(spec))?;
        finish(&svc, spec)?;
        Ok(Installed::Updated { changed })
    }

    fn remove(&mut self, name: &str) -> Result<Removed, ScmError> {
        let subject = Subject::service(name);
        let scm = Manager::connect(SC_MANAGER_CONNECT, &subject)?;
        let Some(svc) = scm.open(&subject, SERVICE_QUERY_STATUS | SERVICE_STOP | DELETE)? else {
            return Ok(Removed::NotInstalled);
        };
        match svc.stop(STOP_WAIT)? {
            Stopped::Stopped | Stopped::NotRunning => svc.delete(),
            // A service that cannot take a stop now (starting): not deleted running.
            Stopped::CannotStop => Err(ScmError::from_code(
                Action::Stop,
                &subject,
                code::INVALID_SERVICE_CONTROL,
            )),
        }
    }

    fn status(&mut self, name: &str) -> Result<Status, ScmError> {
        let subject = Subject::service(name);
        // Query rights only: status works without elevation.
        let scm = Manager::connect(SC_MANAGER_CONNECT, &subject)?;
        let Some(svc) = scm.open(&subject, SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG)? else {
            return Ok(Status::absent(name));
        };
        let state = svc.state()?;
        let cfg = svc.config()?;
        Ok(Status {
            name: name.to_owned(),
            installed: true,
            state: state.as_string(),
            command_line: cfg.image_path,
            start: Some(cfg.start.as_string()),
            dependencies: cfg.dependencies,
            marked_for_deletion: false,
        })
    }
}
