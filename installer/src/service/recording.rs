//! A service host that changes nothing: it keeps services as the Service Control
//! Manager would (configuration, running, marked for deletion) and records each action.
//! `--dry-run` uses it in memory to say what would happen; the tests use it through a
//! JSON state file (the `COLINUX_SETUP_TEST_SERVICE_HOST` hook of
//! [`super::host_for`]) to drive the installer's service steps on Linux. The state
//! file and the failures are driver-bundle's SCM wrapper's, as for the driver's
//! recording host: a refusal here reads as the real SCM's (through
//! [`ScmError::from_code`]), and a dry run on a recorded host writes nothing, for both.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use driver_bundle::scm::recording::StateFile;
use driver_bundle::scm::{Action, ScmError, Subject, code};

use super::{Installed, Removed, ServiceHost, Spec, Status};

/// One simulated service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedService {
    /// Its configuration.
    pub spec: Spec,
    /// Started.
    #[serde(default)]
    pub running: bool,
    /// Deleted while a handle was open: gone after a reboot.
    #[serde(default)]
    pub marked_for_deletion: bool,
    /// Simulates another program holding a handle: a delete is only a mark.
    #[serde(default)]
    pub handle_open: bool,
}

/// The simulated Service Control Manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recorded {
    /// The services, by name.
    pub services: BTreeMap<String, RecordedService>,
    /// Simulates a manager that refuses every change (not elevated).
    pub access_denied: bool,
    /// Every action, in order.
    pub actions: Vec<String>,
}

/// The recording host; with a state file, the state survives between runs.
#[derive(Debug, Clone, Default)]
pub struct RecordingHost {
    /// The current state.
    pub state: Recorded,
    file: StateFile,
}

impl RecordingHost {
    /// A host with no services.
    pub fn new() -> RecordingHost {
        RecordingHost::default()
    }

    /// A host whose state is kept in a JSON file (created when missing).
    pub fn with_file(file: &Path) -> Result<RecordingHost, ScmError> {
        let (file, state) = StateFile::open(file)?;
        Ok(RecordingHost { state, file })
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

    fn check_access(&self, action: Action, name: &str) -> Result<(), ScmError> {
        if self.state.access_denied {
            return Err(ScmError::from_code(
                action,
                &Subject::service(name),
                code::ACCESS_DENIED,
            ));
        }
        Ok(())
    }
}

/// The fields of `new` that differ from `old`, by name.
pub fn differences(old: &Spec, new: &Spec) -> Vec<String> {
    let mut d = Vec::new();
    let mut check = |differs: bool, what: &str| {
        if differs {
            d.push(what.to_owned());
        }
    };
    check(old.command_line != new.command_line, "command line");
    check(old.display_name != new.display_name, "display name");
    check(old.description != new.description, "description");
    check(old.dependencies != new.dependencies, "dependencies");
    check(old.start != new.start, "start type");
    check(!old.account.eq_ignore_ascii_case(&new.account), "account");
    check(old.failure != new.failure, "failure actions");
    d
}

impl ServiceHost for RecordingHost {
    fn kind(&self) -> &'static str {
        "recording"
    }

    fn install(&mut self, spec: &Spec) -> Result<Installed, ScmError> {
        let subject = Subject::service(&spec.name);
        self.check_access(Action::Create, &spec.name)?;
        let duplicate = self.state.services.iter().any(|(n, s)| {
            n != &spec.name && s.spec.display_name.eq_ignore_ascii_case(&spec.display_name)
        });
        match self.state.services.get_mut(&spec.name) {
            Some(s) if s.marked_for_deletion => Err(ScmError::from_code(
                Action::Create,
                &subject,
                code::SERVICE_MARKED_FOR_DELETE,
            )),
            Some(s) => {
                let changed = differences(&s.spec, spec);
                if changed.is_empty() {
                    return Ok(Installed::AlreadyInstalled);
                }
                s.spec = spec.clone();
                self.act(format!("change {} ({})", spec.name, changed.join(", ")))?;
                Ok(Installed::Updated { changed })
            }
            None if duplicate => {
                // As the SCM: display names are unique too (ERROR_DUPLICATE_SERVICE_NAME).
                Err(ScmError::NameTaken {
                    action: Action::Create,
                    subject,
                    display_name: Some(spec.display_name.clone()),
                })
            }
            None => {
                self.state.services.insert(
                    spec.name.clone(),
                    RecordedService {
                        spec: spec.clone(),
                        running: false,
                        marked_for_deletion: false,
                        handle_open: false,
                    },
                );
                self.act(format!(
                    "create {} own-process {} {} depends on {}: {}",
                    spec.name,
                    spec.start,
                    spec.account,
                    spec.dependencies.join(","),
                    spec.command_line
                ))?;
                Ok(Installed::Created)
            }
        }
    }

    fn remove(&mut self, name: &str) -> Result<Removed, ScmError> {
        match self.state.services.get(name) {
            None => return Ok(Removed::NotInstalled),
            Some(s) if s.marked_for_deletion => return Ok(Removed::RebootRequired),
            Some(_) => self.check_access(Action::Delete, name)?,
        }
        let Some(s) = self.state.services.get_mut(name) else {
            return Ok(Removed::NotInstalled);
        };
        let was_running = std::mem::take(&mut s.running);
        let marked = s.handle_open;
        if marked {
            s.marked_for_deletion = true;
        } else {
            self.state.services.remove(name);
        }
        if was_running {
            self.act(format!("stop {name}"))?;
        }
        if marked {
            self.act(format!("delete {name} (marked for deletion)"))?;
            return Ok(Removed::RebootRequired);
        }
        self.act(format!("delete {name}"))?;
        Ok(Removed::Removed)
    }

    fn status(&mut self, name: &str) -> Result<Status, ScmError> {
        let Some(s) = self.state.services.get(name) else {
            return Ok(Status::absent(name));
        };
        Ok(Status {
            name: name.to_owned(),
            installed: true,
            state: if s.running { "running" } else { "stopped" }.to_owned(),
            command_line: Some(s.spec.command_line.clone()),
            start: Some(s.spec.start.clone()),
            dependencies: s.spec.dependencies.clone(),
            marked_for_deletion: s.marked_for_deletion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_updates_what_differs_and_remove_stops_first() {
        let mut h = RecordingHost::new();
        let a = super::super::spec(Path::new("/m"), "coLinux", b"kernel=vmlinux\n").expect("a");
        assert_eq!(h.install(&a).expect("create"), Installed::Created);
        assert_eq!(h.install(&a).expect("again"), Installed::AlreadyInstalled);
        let b = super::super::spec(Path::new("/m"), "coLinux", b"kernel=vmlinux\neth0=tuntap\n")
            .expect("b");
        assert_eq!(
            h.install(&b).expect("update"),
            Installed::Updated {
                changed: vec!["dependencies".into()]
            }
        );
        assert_eq!(h.state.actions.len(), 2, "{:?}", h.state.actions);
        if let Some(s) = h.state.services.get_mut("coLinux") {
            s.running = true;
            s.handle_open = true;
        }
        assert_eq!(
            h.remove("coLinux").expect("remove"),
            Removed::RebootRequired
        );
        assert_eq!(h.state.actions[2], "stop coLinux");
        assert!(h.status("coLinux").expect("status").marked_for_deletion);
        assert!(matches!(
            h.install(&a),
            Err(ScmError::MarkedForDeletion { .. })
        ));
        assert_eq!(h.remove("other").expect("none"), Removed::NotInstalled);
    }
}
