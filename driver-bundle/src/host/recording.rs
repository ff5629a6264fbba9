//! A host that changes nothing: it keeps the driver's state as a Windows service
//! manager would (registered, path, running, marked for deletion) and records each
//! action. `--dry-run` uses it to say what would happen; tests use it (through a JSON
//! state file) to drive the installer's driver steps on any host.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DriverHost, HostError, Installed, Removed, Status};

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
    /// Every action, in order.
    pub actions: Vec<String>,
}

/// The recording host; with a state file, the state survives between runs.
#[derive(Debug, Clone)]
pub struct RecordingHost {
    name: String,
    /// The current state.
    pub state: Recorded,
    file: Option<PathBuf>,
}

impl RecordingHost {
    /// A host where nothing is installed.
    pub fn new(name: &str) -> RecordingHost {
        RecordingHost {
            name: name.to_owned(),
            state: Recorded::default(),
            file: None,
        }
    }

    /// A host whose state is kept in a JSON file (created when missing).
    pub fn with_file(name: &str, file: &Path) -> Result<RecordingHost, HostError> {
        let state = match std::fs::read(file) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| HostError::Failed {
                op: format!("reading {}", file.display()),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Recorded::default(),
            Err(e) => {
                return Err(HostError::Failed {
                    op: format!("reading {}", file.display()),
                    message: e.to_string(),
                });
            }
        };
        Ok(RecordingHost {
            name: name.to_owned(),
            state,
            file: Some(file.to_path_buf()),
        })
    }

    fn act(&mut self, action: String) -> Result<(), HostError> {
        self.state.actions.push(action);
        self.save()
    }

    fn save(&self) -> Result<(), HostError> {
        if let Some(f) = &self.file {
            let bytes = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
            std::fs::write(f, bytes).map_err(|e| HostError::Failed {
                op: format!("writing {}", f.display()),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

impl DriverHost for RecordingHost {
    fn kind(&self) -> &'static str {
        "recording"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn install(&mut self, path: &Path, start: bool) -> Result<Installed, HostError> {
        if self.state.marked_for_deletion {
            return Err(HostError::MarkedForDeletion {
                op: format!("creating the {} service", self.name),
                name: self.name.clone(),
            });
        }
        let outcome = if !self.state.installed {
            self.state.installed = true;
            self.state.path = Some(path.to_path_buf());
            self.act(format!(
                "create {} kernel-driver auto-start {}",
                self.name,
                path.display()
            ))?;
            Installed::Created
        } else if self.state.path.as_deref() != Some(path) {
            let old = self
                .state
                .path
                .replace(path.to_path_buf())
                .unwrap_or_default();
            self.act(format!("change {} path {}", self.name, path.display()))?;
            Installed::PathUpdated { old }
        } else {
            Installed::AlreadyInstalled
        };
        if start && !self.state.running {
            if self.state.start_fails {
                if outcome == Installed::Created {
                    self.state.installed = false;
                    self.state.path = None;
                    self.act(format!("delete {} (start failed)", self.name))?;
                }
                return Err(HostError::Os {
                    op: format!("starting the {} service", self.name),
                    code: 2,
                    message: "the driver could not be loaded (simulated)".to_owned(),
                });
            }
            self.state.running = true;
            self.act(format!("start {}", self.name))?;
        }
        Ok(outcome)
    }

    fn remove(&mut self) -> Result<Removed, HostError> {
        if !self.state.installed {
            return Ok(Removed::NotInstalled);
        }
        if self.state.marked_for_deletion {
            return Ok(Removed::RebootRequired);
        }
        if self.state.running {
            self.state.running = false;
            self.act(format!("stop {}", self.name))?;
        }
        if self.state.handle_open {
            self.state.marked_for_deletion = true;
            self.act(format!("delete {} (marked for deletion)", self.name))?;
            return Ok(Removed::RebootRequired);
        }
        self.state.installed = false;
        self.state.path = None;
        self.act(format!("delete {}", self.name))?;
        Ok(Removed::Removed)
    }

    fn status(&mut self) -> Result<Status, HostError> {
        if !self.state.installed {
            return Ok(Status::absent(&self.name));
        }
        Ok(Status {
            name: self.name.clone(),
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
            Err(HostError::MarkedForDeletion { .. })
        ));
        let mut h = RecordingHost::new("CoLinuxDriver");
        assert_eq!(h.remove().expect("remove"), Removed::NotInstalled);
        h.state.start_fails = true;
        assert!(h.install(p, true).is_err());
        assert!(
            !h.status().expect("status").installed,
            "a failed start undoes the create"
        );
    }
}
