//! A host that changes nothing: it keeps the driver's state as a Windows service
//! manager would (registered, path, running, marked for deletion) and records each
//! action. `--dry-run` uses it to say what would happen; tests use it (through a JSON
//! state file, [`crate::scm::recording::StateFile`], shared with the installer's
//! recording service host) to drive the installer's driver steps on any host. Its
//! simulated failures are the SCM's, through [`ScmError::from_code`]: they read as the
//! real host's would.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DriverHost, Installed, Removed, Status};
use crate::scm::recording::StateFile;
use crate::scm::{Action, ScmError, Subject, code};

/// The simulated driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recorded {
    /// Registered.
    pub installed: bool,
    /// Its image path.
    pub path: Option<PathBuf>,
    /// Started.
    pub running: bool,
    /// Deleted while a handle was open: gone after a reboot.
    pub marked_for_deletion: bool,
    /// Simulates another program holding a handle: a delete is only a mark.
    pub handle_open: bool,
    /// Simulates a driver that fails to start (`StartService` fails).
    pub start_fails: bool,
    /// Simulates a manager that refuses every change (not elevated); written only
    /// when set, so the state file reads as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub access_denied: bool,
    /// Every action, in order.
    pub actions: Vec<String>,
}

/// The recording host; with a state file, the state survives between runs.
#[derive(Debug, Clone)]
pub struct RecordingHost {
    subject: Subject,
    /// The current state.
    pub state: Recorded,
    file: StateFile,
}

impl RecordingHost {
    /// A host where nothing is installed.
    pub fn new(name: &str) -> RecordingHost {
        RecordingHost {
            subject: Subject::driver(name),
            state: Recorded::default(),
            file: StateFile::memory(),
        }
    }

    /// A host whose state is kept in a JSON file (created when missing).
    pub fn with_file(name: &str, file: &Path) -> Result<RecordingHost, ScmError> {
        let (file, state) = StateFile::open(file)?;
        Ok(RecordingHost {
            subject: Subject::driver(name),
            state,
            file,
        })
    }

    /// The same state, no longer written back (a dry run on a recorded host).
    pub fn detached(mut self) -> RecordingHost {
        self.file = self.file.detached();
        self
    }

    fn act(&mut self, action: String) -> Result<(), ScmError> {
        self.state.actions.push(action);
        self.file.save(&self.state)
    }

    fn check_access(&self, action: Action) -> Result<(), ScmError> {
        if self.state.access_denied {
            return Err(ScmError::from_code(
                action,
                &self.subject,
                code::ACCESS_DENIED,
            ));
        }
        Ok(())
    }
}

impl DriverHost for RecordingHost {
    fn kind(&self) -> &'static str {
        "recording"
    }

    fn name(&self) -> &str {
        &self.subject.name
    }

    fn install(&mut self, path: &Path, start: bool) -> Result<Installed, ScmError> {
        self.check_access(Action::Create)?;
        if self.state.marked_for_deletion {
            return Err(ScmError::from_code(
                Action::Create,
                &self.subject,
                code::SERVICE_MARKED_FOR_DELETE,
            ));
        }
        let outcome = if !self.state.installed {
            self.state.installed = true;
            self.state.path = Some(path.to_path_buf());
            self.act(format!(
                "create {} kernel-driver auto-start {}",
                self.subject.name,
                path.display()
            ))?;
            Installed::Created
        } else if self.state.path.as_deref() != Some(path) {
            let old = self
                .state
                .path
                .replace(path.to_path_buf())
                .unwrap_or_default();
            self.act(format!(
                "change {} path {}",
                self.subject.name,
                path.display()
            ))?;
            Installed::PathUpdated { old }
        } else {
            Installed::AlreadyInstalled
        };
        if start && !self.state.running {
            if self.state.start_fails {
                if outcome == Installed::Created {
                    self.state.installed = false;
                    self.state.path = None;
                    self.act(format!("delete {} (start failed)", self.subject.name))?;
                }
                return Err(ScmError::Os {
                    action: Action::Start,
                    subject: self.subject.clone(),
                    code: code::FILE_NOT_FOUND,
                    message: "the driver could not be loaded (simulated)".to_owned(),
                });
            }
            self.state.running = true;
            self.act(format!("start {}", self.subject.name))?;
        }
        Ok(outcome)
    }

    fn remove(&mut self) -> Result<Removed, ScmError> {
        if !self.state.installed {
            return Ok(Removed::NotInstalled);
        }
        if self.state.marked_for_deletion {
            return Ok(Removed::RebootRequired);
        }
        self.check_access(Action::Delete)?;
        if self.state.running {
            self.state.running = false;
            self.act(format!("stop {}", self.subject.name))?;
        }
        if self.state.handle_open {
            self.state.marked_for_deletion = true;
            self.act(format!(
                "delete {} (marked for deletion)",
                self.subject.name
            ))?;
            return Ok(Removed::RebootRequired);
        }
        self.state.installed = false;
        self.state.path = None;
        self.act(format!("delete {}", self.subject.name))?;
        Ok(Removed::Removed)
    }

    fn status(&mut self) -> Result<Status, ScmError> {
        if !self.state.installed {
            return Ok(Status::absent(&self.subject.name));
        }
        Ok(Status {
            name: self.subject.name.clone(),
            installed: true,
            state: if self.state.running {
                "running"
            } else {
                "stopped"
            }
            .to_owned(),
            path: self.state.path.clone(),
            marked_for_deletion: self.state.marked_for_deletion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_remove_reports_a_reboot_when_marked() {
        let mut h = RecordingHost::new("CoLinuxDriver");
        let p = Path::new("/m/linux.sys");
        assert_eq!(h.install(p, true).expect("install"), Installed::Created);
        assert_eq!(
            h.install(p, true).expect("again"),
            Installed::AlreadyInstalled
        );
        assert_eq!(h.state.actions.len(), 2, "{:?}", h.state.actions);
        let q = Path::new("/n/linux.sys");
        assert_eq!(
            h.install(q, false).expect("moved"),
            Installed::PathUpdated {
                old: p.to_path_buf()
            }
        );
        assert_eq!(h.status().expect("status").state, "running");
        h.state.handle_open = true;
        assert_eq!(h.remove().expect("remove"), Removed::RebootRequired);
        assert!(h.status().expect("status").marked_for_deletion);
        assert!(matches!(
            h.install(p, false),
            Err(ScmError::MarkedForDeletion { .. })
        ));
        let mut h = RecordingHost::new("CoLinuxDriver");
        assert_eq!(h.remove().expect("remove"), Removed::NotInstalled);
        h.state.start_fails = true;
        assert!(h.install(p, true).is_err());
        let e = h.install(p, true).expect_err("start fails");
        assert!(
            e.to_string()
                .starts_with("starting the CoLinuxDriver driver: the driver could not be loaded"),
            "{e}"
        );
        assert!(
            !h.status().expect("status").installed,
            "a failed start undoes the create"
        );
        h.state.access_denied = true;
        let e = h.install(p, false).expect_err("denied");
        assert!(matches!(e, ScmError::AccessDenied { .. }), "{e}");
        assert!(
            e.to_string().contains(
                "creating the CoLinuxDriver driver: access denied; run as an administrator"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_state_file_keeps_its_format_and_a_detached_host_writes_nothing() {
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("host.json");
        let mut h = RecordingHost::with_file("colinux", &f).expect("new");
        h.install(Path::new("/m/colinux.ko"), true)
            .expect("install");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&f).expect("read")).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "installed": true, "path": "/m/colinux.ko", "running": true,
                "marked_for_deletion": false, "handle_open": false, "start_fails": false,
                "actions": ["create colinux kernel-driver auto-start /m/colinux.ko", "start colinux"]
            })
        );
        let before = std::fs::read(&f).expect("read");
        let mut d = RecordingHost::with_file("colinux", &f)
            .expect("again")
            .detached();
        assert_eq!(d.remove().expect("remove"), Removed::Removed);
        assert_eq!(std::fs::read(&f).expect("read"), before);
    }
}
