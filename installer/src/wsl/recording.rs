//! A WSL host that runs nothing: it keeps distributions as WSL would (a unique name, a
//! disk registered in place, a state) in a JSON file and records each action. It
//! behaves as WSL does where the install depends on it: `import_in_place` needs the
//! disk to exist and be a VHDX, refuses a name or a disk already registered;
//! `unregister` deletes the disk (WSL's `--unregister` does, also for a disk
//! registered in place); running in a distribution whose disk is gone fails. A
//! distribution runs from `start` or `run` until `terminate`, as one with a process
//! left in it does under WSL.
//!
//! It cannot run a guest: `run` simulates the first-boot script (see [`simulate`]):
//! it reads the distribution share the script would read (dist.tar and SHA256SUMS at
//! the `colinux.dist=dir:` path) and prints the lines and marker the script prints,
//! or fails or hangs as the test hook `colinux.firstboot.test=fail|hang` asks; any other
//! command prints one line that says it ran. The state's `first_boot_exit` makes every
//! command end with another status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Distribution, RunOutput, WslError, WslHost};

/// One simulated distribution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Its disk, registered in place.
    pub disk: PathBuf,
    /// Running (after `start` or a command ran in it, until terminated).
    #[serde(default)]
    pub running: bool,
}

/// The simulated WSL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct State {
    /// The distributions, by name.
    pub distributions: BTreeMap<String, Recorded>,
    /// Simulates a command that ends with this status instead of 0.
    pub first_boot_exit: Option<i32>,
    /// Every action, in order.
    pub actions: Vec<String>,
}

/// The recording host; with a state file, the state survives between runs.
#[derive(Debug, Default)]
pub struct RecordingHost {
    /// The current state.
    pub state: State,
    file: Option<PathBuf>,
}

impl RecordingHost {
    /// A host with no distributions, in memory (unit tests).
    #[cfg(test)]
    pub fn new() -> RecordingHost {
        RecordingHost::default()
    }

    /// A host whose state is kept in a JSON file (created when missing). A file that
    /// is not this host's state is refused.
    pub fn with_file(file: &Path) -> Result<RecordingHost, WslError> {
        let failed = |e: String| WslError::Failed {
            op: format!("reading the recording WSL host's state {}", file.display()),
            message: e,
        };
        let state = match crate::input::read(file, 1 << 20, "a recording WSL host's state") {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| failed(e.to_string()))?,
            Err(e) if e.is_not_found() => State::default(),
            Err(e) => return Err(failed(e.reason())),
        };
        Ok(RecordingHost {
            state,
            file: Some(file.to_path_buf()),
        })
    }

    fn act(&mut self, action: String) -> Result<(), WslError> {
        self.state.actions.push(action);
        if let Some(f) = &self.file {
            let failed = |e: String| WslError::Failed {
                op: format!("writing {}", f.display()),
                message: e,
            };
            let bytes =
                serde_json::to_vec_pretty(&self.state).map_err(|e| failed(e.to_string()))?;
            std::fs::write(f, bytes).map_err(|e| failed(e.to_string()))?;
        }
        Ok(())
    }

    /// The distribution, when WSL could run it: registered, its disk there.
    fn runnable(&self, name: &str, op: &str) -> Result<Recorded, WslError> {
        let d = self.get(name)?.clone();
        if !d.disk.is_file() {
            return Err(WslError::Failed {
                op: op.to_owned(),
                message: format!("the distribution's disk {} is gone", d.disk.display()),
            });
        }
        Ok(d)
    }

    fn get(&self, name: &str) -> Result<&Recorded, WslError> {
        self.state
            .distributions
            .get(name)
            .ok_or_else(|| WslError::NotRegistered {
                name: name.to_owned(),
            })
    }
}

impl WslHost for RecordingHost {
    fn kind(&self) -> &'static str {
        "recording"
    }

    fn list(&mut self) -> Result<Vec<Distribution>, WslError> {
        Ok(self
            .state
            .distributions
            .iter()
            .map(|(n, d)| Distribution {
                name: n.clone(),
                state: if d.running { "Running" } else { "Stopped" }.to_owned(),
                disk: Some(d.disk.clone()),
            })
            .collect())
    }

    fn import_in_place(&mut self, name: &str, disk: &Path) -> Result<(), WslError> {
        let op = format!("wsl --import-in-place {name} {}", disk.display());
        if self.state.distributions.contains_key(name) {
            return Err(WslError::AlreadyRegistered {
                name: name.to_owned(),
            });
        }
        if let Some((other, _)) = self
            .state
            .distributions
            .iter()
            .find(|(_, d)| super::same_disk(&d.disk, disk))
        {
            return Err(WslError::Failed {
                op,
                message: format!("the disk is in use by the distribution {other}"),
            });
        }
        match image_builder::VirtualDisk::open(disk).map(|d| d.format()) {
            Ok(image_builder::DiskFormat::Vhdx) => {}
            Ok(_) => {
                return Err(WslError::Failed {
                    op,
                    message: "not a VHDX file (WSL registers VHDX disks in place)".to_owned(),
                });
            }
            Err(e) => {
                return Err(WslError::Failed {
                    op,
                    message: e.to_string(),
                });
            }
        }
        self.state.distributions.insert(
            name.to_owned(),
            Recorded {
                disk: disk.to_owned(),
                running: false,
            },
        );
        self.act(format!("import-in-place {name} {}", disk.display()))
    }

    fn terminate(&mut self, name: &str) -> Result<(), WslError> {
        self.get(name)?;
        if let Some(d) = self.state.distributions.get_mut(name) {
            d.running = false;
        }
        self.act(format!("terminate {name}"))
    }

    fn start(
        &mut self,
        name: &str,
        _timeout: Duration,
        _interrupt: &AtomicBool,
    ) -> Result<(), WslError> {
        self.runnable(name, &format!("wsl -d {name} (start)"))?;
        if let Some(r) = self.state.distributions.get_mut(name) {
            r.running = true;
        }
        self.act(format!("start {name}: {}", super::KEEP_ALIVE))
    }

    fn unregister(&mut self, name: &str) -> Result<(), WslError> {
        let d = self.get(name)?.clone();
        self.state.distributions.remove(name);
        // As WSL: the disk goes with the registration.
        let deleted = match std::fs::remove_file(&d.disk) {
            Ok(()) => "its disk deleted",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no disk to delete",
            Err(e) => {
                return Err(WslError::Failed {
                    op: format!("wsl --unregister {name}"),
                    message: format!("deleting {}: {e}", d.disk.display()),
                });
            }
        };
        self.act(format!("unregister {name} ({deleted})"))
    }

    fn run(
        &mut self,
        name: &str,
        user: Option<&str>,
        argv: &[String],
        _timeout: Duration,
        _interrupt: &AtomicBool,
        line: &mut dyn FnMut(&str),
    ) -> Result<RunOutput, WslError> {
        self.runnable(name, &format!("wsl -d {name}"))?;
        if let Some(r) = self.state.distributions.get_mut(name) {
            r.running = true;
        }
        self.act(format!(
            "run {name} as {}: {}",
            user.unwrap_or("the default user"),
            argv.join(" ")
        ))?;
        let mut out = simulate(argv, line);
        if let Some(code) = self.state.first_boot_exit {
            out.exit_code = Some(code);
        }
        Ok(out)
    }

    fn shell(&mut self, name: &str) -> Result<i32, WslError> {
        self.get(name)?;
        self.act(format!("shell {name}"))?;
        Ok(0)
    }
}

/// The first-boot command's output as the guest's script would print it: the script
/// reads its arguments from `COLINUX_FIRSTBOOT_ARGS='...'` in the command.
fn simulate(argv: &[String], line: &mut dyn FnMut(&str)) -> RunOutput {
    let script = argv.last().map_or("", String::as_str);
    let args: Vec<&str> = script
        .split_once("COLINUX_FIRSTBOOT_ARGS='")
        .and_then(|(_, r)| r.split_once('\''))
        .map_or_else(Vec::new, |(a, _)| a.split_whitespace().collect());
    let arg = |k: &str| {
        args.iter()
            .find_map(|w| w.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    };
    let ok = RunOutput {
        exit_code: Some(0),
        ..RunOutput::default()
    };
    if !args.contains(&"colinux.firstboot") {
        line("recording WSL host: ran the command (nothing to simulate)");
        return ok;
    }
    line("colinux-setup: first boot: mounted: (WSL mounts the root itself)");
    match arg("colinux.firstboot.test") {
        Some("fail") => {
            line("colinux-setup: first boot: test hook: failing on purpose");
            line(&format!("{} rc=1", crate::guest::FIRST_BOOT_FAILED));
            return ok;
        }
        Some("hang") => {
            line("colinux-setup: first boot: test hook: hanging on purpose");
            return RunOutput {
                exit_code: None,
                timed_out: true,
                interrupted: false,
            };
        }
        _ => {}
    }
    let target = arg("colinux.target").unwrap_or("/home");
    let Some(dir) = arg("colinux.dist").and_then(|d| d.strip_prefix("dir:")) else {
        line("colinux-setup: first boot: unknown distribution share");
        line(&format!("{} rc=1", crate::guest::FIRST_BOOT_FAILED));
        return ok;
    };
    let dir = Path::new(dir);
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS"));
    match (dir.join("dist.tar").is_file(), sums) {
        (true, Ok(sums)) => {
            let n = sums.lines().count();
            line(&format!(
                "colinux-setup: first boot: unpacking the distribution into {target}"
            ));
            line(&format!("colinux-setup: first boot: unpacked {n} entries"));
            line(&format!(
                "colinux-setup: first boot: unpacked and checked {n} files in {target}"
            ));
            line(crate::guest::FIRST_BOOT_OK);
        }
        _ => {
            line(&format!(
                "tar: can't open '{}/dist.tar': No such file or directory",
                dir.display()
            ));
            line(&format!("{} rc=1", crate::guest::FIRST_BOOT_FAILED));
        }
    }
    ok
}
