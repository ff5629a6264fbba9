//! The machine service on Windows: the Service Control Manager through the
//! `windows-service` crate (mullvad), plus one `ChangeServiceConfigW` call that stores
//! the command line exactly as [`super::Spec::command_line`] has it (the crate quotes
//! the program only when it has spaces; we always quote it, as the daemon does).
//!
//! - install: `CreateService`, or on `ERROR_SERVICE_EXISTS` compare the configuration
//!   (`QueryServiceConfig`, failure actions) and change what differs; a service marked
//!   for deletion can only come back after a reboot.
//! - remove: `ControlService(STOP)` when it runs (the daemon shuts the guest down),
//!   wait for STOPPED (up to 60 s), then `DeleteService`;
//!   `ERROR_SERVICE_MARKED_FOR_DELETE` means a reboot finishes it.
//! - status: `QueryServiceStatusEx` and `QueryServiceConfig`.
//!
//! Wine's services.exe (8.0) differs from Windows in three ways this module allows for:
//! it accepts failure actions but does not keep them (`SERVICE_CONFIG_FAILURE_ACTIONS
//! not implemented`) and cannot read them back (`ERROR_INVALID_LEVEL`): then they are
//! written each time and not compared; `QueryServiceConfig` returns no dependencies
//! (`lpDependencies = NULL; /* TODO */`): then they are read from the service's
//! registry key, where the SCM keeps them (`DependOnService`); and
//! `ChangeServiceConfig` with no dependencies clears them: the command line is set
//! with the dependencies given again (the same call on Windows).
#![allow(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::windows::ffi::OsStrExt;
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use windows_service::Error as WsError;
use windows_service::service::{
    Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceDependency,
    ServiceErrorControl, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo,
    ServiceStartType, ServiceState, ServiceType,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_INVALID_LEVEL, ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_EXISTS,
    ERROR_SERVICE_MARKED_FOR_DELETE, ERROR_SERVICE_NOT_ACTIVE, GetLastError,
};
use windows_sys::Win32::System::Services::{ChangeServiceConfigW, SERVICE_NO_CHANGE};

use super::{FailurePolicy, Installed, Removed, ServiceError, ServiceHost, Spec, Status};

fn code_of(e: &WsError) -> Option<u32> {
    match e {
        WsError::Winapi(io) => io.raw_os_error().map(|c| c as u32),
        _ => None,
    }
}

fn os_error(op: &str, e: &WsError) -> ServiceError {
    match code_of(e) {
        Some(ERROR_ACCESS_DENIED) => ServiceError::AccessDenied { op: op.to_owned() },
        Some(code) => ServiceError::Os {
            op: op.to_owned(),
            code,
            message: match e {
                WsError::Winapi(io) => io.to_string(),
                other => other.to_string(),
            },
        },
        None => ServiceError::Failed {
            op: op.to_owned(),
            message: e.to_string(),
        },
    }
}

fn info(spec: &Spec) -> ServiceInfo {
    ServiceInfo {
        name: OsString::from(&spec.name),
        display_name: OsString::from(&spec.display_name),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: spec.exe.clone().into(),
        launch_arguments: spec.args.iter().map(OsString::from).collect(),
        dependencies: spec
            .dependencies
            .iter()
            .map(|d| ServiceDependency::Service(OsString::from(d)))
            .collect(),
        account_name: Some(OsString::from(&spec.account)),
        account_password: None,
    }
}

fn failure_actions(p: &FailurePolicy) -> ServiceFailureActions {
    ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(u64::from(
            p.reset_secs,
        ))),
        reboot_msg: None,
        command: None,
        actions: Some(
            p.actions
                .iter()
                .map(|a| ServiceAction {
                    action_type: if a.action == "restart" {
                        ServiceActionType::Restart
                    } else {
                        ServiceActionType::None
                    },
                    delay: Duration::from_millis(u64::from(a.delay_ms)),
                })
                .collect(),
        ),
    }
}

/// The dependencies `QueryServiceConfig` gave, or when it gave none (Wine), those in
/// the service's registry key.
fn dependencies_of(name: &str, queried: &[ServiceDependency]) -> Vec<String> {
    if !queried.is_empty() {
        return queried
            .iter()
            .map(|x| x.to_system_identifier().to_string_lossy().into_owned())
            .collect();
    }
    let key = format!("SYSTEM\\CurrentControlSet\\Services\\{name}");
    winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE)
        .open_subkey_with_flags(&key, winreg::enums::KEY_READ)
        .and_then(|k| k.get_value::<Vec<String>, _>("DependOnService"))
        .unwrap_or_default()
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect()
}

/// The Service Control Manager of this machine.
#[derive(Debug, Default)]
pub struct ScmHost;

impl ScmHost {
    /// The local SCM.
    pub fn new() -> ScmHost {
        ScmHost
    }

    fn manager(&self, access: ServiceManagerAccess) -> Result<ServiceManager, ServiceError> {
        ServiceManager::local_computer(None::<&str>, access)
            .map_err(|e| os_error("opening the Service Control Manager", &e))
    }

    fn open(
        &self,
        scm: &ServiceManager,
        name: &str,
        access: ServiceAccess,
    ) -> Result<Option<Service>, ServiceError> {
        match scm.open_service(name, access) {
            Ok(s) => Ok(Some(s)),
            Err(e) if code_of(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => Ok(None),
            Err(e) => Err(os_error(&format!("opening the {name} service"), &e)),
        }
    }

    /// Stores `spec.command_line` as the service's ImagePath, unchanged.
    fn set_command_line(&self, svc: &Service, spec: &Spec) -> Result<(), ServiceError> {
        let line: Vec<u16> = OsStr::new(&spec.command_line)
            .encode_wide()
            .chain(std::iter::once(0))
            .collect();
        // REG_MULTI_SZ layout: each name NUL-terminated, one more NUL at the end.
        let mut deps: Vec<u16> = Vec::new();
        for d in &spec.dependencies {
            deps.extend(OsStr::new(d).encode_wide());
            deps.push(0);
        }
        deps.push(0);
        // SAFETY: the handle is open with CHANGE_CONFIG; `line` is NUL-terminated and
        // `deps` double-NUL-terminated, both outlive the call; SERVICE_NO_CHANGE and
        // nulls keep every other setting.
        let ok = unsafe {
            ChangeServiceConfigW(
                svc.raw_handle(),
                SERVICE_NO_CHANGE,
                SERVICE_NO_CHANGE,
                SERVICE_NO_CHANGE,
                line.as_ptr(),
                null(),
                null_mut(),
                deps.as_ptr(),
                null(),
                null(),
                null(),
            )
        };
        if ok == 0 {
            // SAFETY: GetLastError has no preconditions.
            let code = unsafe { GetLastError() };
            return Err(os_error(
                &format!("setting the {} service's command line", spec.name),
                &WsError::Winapi(std::io::Error::from_raw_os_error(code as i32)),
            ));
        }
        Ok(())
    }

    /// Writes the settings `CreateService` does not take.
    fn finish(&self, svc: &Service, spec: &Spec) -> Result<(), ServiceError> {
        let op = format!("configuring the {} service", spec.name);
        self.set_command_line(svc, spec)?;
        svc.set_description(&spec.description)
            .map_err(|e| os_error(&op, &e))?;
        svc.update_failure_actions(failure_actions(&spec.failure))
            .map_err(|e| os_error(&op, &e))
    }

    fn differences(&self, svc: &Service, spec: &Spec) -> Result<Vec<String>, ServiceError> {
        let op = format!("reading the {} service's configuration", spec.name);
        let cfg = svc.query_config().map_err(|e| os_error(&op, &e))?;
        let mut d = Vec::new();
        if cfg.executable_path.as_os_str() != OsStr::new(&spec.command_line) {
            d.push("command line".to_owned());
        }
        if cfg.display_name != OsStr::new(&spec.display_name) {
            d.push("display name".to_owned());
        }
        if cfg.start_type != ServiceStartType::AutoStart {
            d.push("start type".to_owned());
        }
        if !cfg.service_type.contains(ServiceType::OWN_PROCESS) {
            d.push("service type".to_owned());
        }
        let deps = dependencies_of(&spec.name, &cfg.dependencies);
        if deps != spec.dependencies {
            d.push("dependencies".to_owned());
        }
        let account = cfg
            .account_name
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !account.eq_ignore_ascii_case(&spec.account)
            && !account.eq_ignore_ascii_case(&format!(".\\{}", spec.account))
        {
            d.push("account".to_owned());
        }
        match svc.get_failure_actions() {
            Ok(f)
                if f.reset_period != failure_actions(&spec.failure).reset_period
                    || f.actions != failure_actions(&spec.failure).actions =>
            {
                d.push("failure actions".to_owned());
            }
            Ok(_) => {}
            // Wine cannot read them back: write them again, quietly.
            Err(e) if code_of(&e) == Some(ERROR_INVALID_LEVEL) => {
                svc.update_failure_actions(failure_actions(&spec.failure))
                    .map_err(|e| os_error(&op, &e))?;
            }
            Err(e) => return Err(os_error(&op, &e)),
        }
        Ok(d)
    }
}

impl ServiceHost for ScmHost {
    fn kind(&self) -> &'static str {
        "windows-scm"
    }

    fn install(&mut self, spec: &Spec) -> Result<Installed, ServiceError> {
        let scm =
            self.manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
        let access = ServiceAccess::QUERY_CONFIG
            | ServiceAccess::CHANGE_CONFIG
            | ServiceAccess::QUERY_STATUS;
        let op = format!("creating the {} service", spec.name);
        match scm.create_service(&info(spec), access) {
            Ok(svc) => {
                if let Err(e) = self.finish(&svc, spec) {
                    // Half made is not made: delete what this call created.
                    if let Ok(Some(s)) = self.open(&scm, &spec.name, ServiceAccess::DELETE) {
                        let _ = s.delete();
                    }
                    return Err(e);
                }
                Ok(Installed::Created)
            }
            Err(e) if code_of(&e) == Some(ERROR_SERVICE_MARKED_FOR_DELETE) => {
                Err(ServiceError::MarkedForDeletion {
                    op,
                    name: spec.name.clone(),
                })
            }
            Err(e) if code_of(&e) == Some(ERROR_SERVICE_EXISTS) => {
                let svc =
                    self.open(&scm, &spec.name, access)?
                        .ok_or_else(|| ServiceError::Failed {
                            op: op.clone(),
                            message: "it exists and does not exist".to_owned(),
                        })?;
                let changed = self.differences(&svc, spec)?;
                if changed.is_empty() {
                    return Ok(Installed::AlreadyInstalled);
                }
                let cop = format!("changing the {} service", spec.name);
                svc.change_config(&info(spec))
                    .map_err(|e| match code_of(&e) {
                        Some(ERROR_SERVICE_MARKED_FOR_DELETE) => ServiceError::MarkedForDeletion {
                            op: cop.clone(),
                            name: spec.name.clone(),
                        },
                        _ => os_error(&cop, &e),
                    })?;
                self.finish(&svc, spec)?;
                Ok(Installed::Updated { changed })
            }
            Err(e) => Err(os_error(&op, &e)),
        }
    }

    fn remove(&mut self, name: &str) -> Result<Removed, ServiceError> {
        let scm = self.manager(ServiceManagerAccess::CONNECT)?;
        let Some(svc) = self.open(
            &scm,
            name,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )?
        else {
            return Ok(Removed::NotInstalled);
        };
        let op = format!("stopping the {name} service");
        match svc.stop() {
            Ok(_) => {
                // The daemon shuts the guest down on STOP: give it the time a shutdown takes.
                let until = Instant::now() + Duration::from_secs(60);
                loop {
                    let st = svc.query_status().map_err(|e| os_error(&op, &e))?;
                    if st.current_state == ServiceState::Stopped {
                        break;
                    }
                    if Instant::now() > until {
                        return Err(ServiceError::Failed {
                            op,
                            message: "it did not stop within 60 s; stop the machine, then remove the service again".to_owned(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            Err(e) if code_of(&e) == Some(ERROR_SERVICE_NOT_ACTIVE) => {}
            Err(e) => return Err(os_error(&op, &e)),
        }
        match svc.delete() {
            Ok(()) => Ok(Removed::Removed),
            Err(e) if code_of(&e) == Some(ERROR_SERVICE_MARKED_FOR_DELETE) => {
                Ok(Removed::RebootRequired)
            }
            Err(e) => Err(os_error(&format!("deleting the {name} service"), &e)),
        }
    }

    fn status(&mut self, name: &str) -> Result<Status, ServiceError> {
        // Query rights only: status works without elevation.
        let scm = self.manager(ServiceManagerAccess::CONNECT)?;
        let Some(svc) = self.open(
            &scm,
            name,
            ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
        )?
        else {
            return Ok(Status::absent(name));
        };
        let op = format!("querying the {name} service");
        let st = svc.query_status().map_err(|e| os_error(&op, &e))?;
        let cfg = svc.query_config().map_err(|e| os_error(&op, &e))?;
        let state = match st.current_state {
            ServiceState::Stopped => "stopped",
            ServiceState::StartPending => "start-pending",
            ServiceState::StopPending => "stop-pending",
            ServiceState::Running => "running",
            ServiceState::ContinuePending => "continue-pending",
            ServiceState::PausePending => "pause-pending",
            ServiceState::Paused => "paused",
        };
        Ok(Status {
            name: name.to_owned(),
            installed: true,
            state: state.to_owned(),
            command_line: Some(cfg.executable_path.display().to_string()),
            start: Some(
                match cfg.start_type {
                    ServiceStartType::AutoStart => "auto",
                    ServiceStartType::OnDemand => "demand",
                    ServiceStartType::Disabled => "disabled",
                    ServiceStartType::SystemStart => "system",
                    ServiceStartType::BootStart => "boot",
                }
                .to_owned(),
            ),
            dependencies: dependencies_of(name, &cfg.dependencies),
            marked_for_deletion: false,
        })
    }
}
