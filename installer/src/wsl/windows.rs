//! The WSL host on Windows: `wsl.exe` (System32) through std::process::Command, its
//! messages in UTF-8 (`WSL_UTF8=1`; UTF-16LE, its older default, is decoded too), the
//! distributions' disks from the registry (`HKCU\Software\Microsoft\Windows\
//! CurrentVersion\Lxss\{GUID}`: `DistributionName`, `BasePath`, `VhdFileName`).
//!
//! `start` leaves a detached, windowless `wsl.exe` running [`super::KEEP_ALIVE`] in the
//! distribution (WSL stops an idle one) and polls `wsl --list --verbose` until it says
//! Running.
//!
//! Never run on real Windows yet: written from WSL's documentation (`wsl --help`) and
//! built for x86_64 Windows; see the module doc of [`super`].

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Distribution, RunOutput, WslError, WslHost};

/// wsl.exe.
pub struct WslExe;

fn program() -> PathBuf {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
    Path::new(&root).join("System32").join("wsl.exe")
}

fn command() -> Command {
    let mut c = Command::new(program());
    c.env("WSL_UTF8", "1");
    c
}

/// wsl.exe's own output as text (UTF-8, or UTF-16LE when it is that).
fn text(bytes: &[u8]) -> String {
    if bytes.len() >= 2 && bytes.iter().skip(1).step_by(2).all(|b| *b == 0) {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs wsl.exe with `args` to the end: its output, or an error in its words.
fn call(op: &str, args: &[&std::ffi::OsStr]) -> Result<String, WslError> {
    let out = command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| WslError::Failed {
            op: op.to_owned(),
            message: format!("cannot run {}: {e}", program().display()),
        })?;
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if out.status.success() {
        Ok(said)
    } else {
        Err(WslError::Failed {
            op: op.to_owned(),
            message: said.trim().to_owned(),
        })
    }
}

/// The probe's verdict: wsl.exe is there and `wsl --status` succeeds.
pub fn supports() -> Result<String, String> {
    if !cfg!(target_pointer_width = "64") && std::env::var_os("PROCESSOR_ARCHITEW6432").is_none() {
        return Err(super::NO_WSL.to_owned());
    }
    if !program().is_file() {
        return Err(format!(
            "{} is not there: {}; to turn WSL 2 on: {}",
            program().display(),
            super::NO_WSL,
            super::ENABLE_WSL
        ));
    }
    call("wsl --status", &["--status".as_ref()])
        .map(|_| "wsl.exe answers `wsl --status`".to_owned())
        .map_err(|e| format!("{e}; to turn WSL 2 on: {}", super::ENABLE_WSL))
}

/// The disks of the registered distributions, by name, from the registry.
fn disks() -> Vec<(String, PathBuf)> {
    let Ok(lxss) = winreg::RegKey::predef(winreg::enums::HKEY_CURRENT_USER)
        .open_subkey("Software\\Microsoft\\Windows\\CurrentVersion\\Lxss")
    else {
        return Vec::new();
    };
    lxss.enum_keys()
        .flatten()
        .filter_map(|k| lxss.open_subkey(&k).ok())
        .filter_map(|d| {
            let name: String = d.get_value("DistributionName").ok()?;
            let base: String = d.get_value("BasePath").ok()?;
            let vhd: String = d
                .get_value("VhdFileName")
                .unwrap_or_else(|_| "ext4.vhdx".to_owned());
            let base = base.strip_prefix("\\\\?\\").unwrap_or(&base).to_owned();
            Some((name, Path::new(&base).join(vhd)))
        })
        .collect()
}

impl WslHost for WslExe {
    fn kind(&self) -> &'static str {
        "windows"
    }

    fn list(&mut self) -> Result<Vec<Distribution>, WslError> {
        let disks = disks();
        let out = match call(
            "wsl --list --verbose",
            &["--list".as_ref(), "--verbose".as_ref()],
        ) {
            Ok(o) => o,
            // No distribution at all: wsl.exe says so and fails.
            Err(_) if disks.is_empty() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        // "  NAME      STATE           VERSION", the default marked with "* ".
        Ok(out
            .lines()
            .skip(1)
            .filter_map(|l| {
                let words: Vec<&str> = l
                    .trim_start_matches([' ', '*'])
                    .split_whitespace()
                    .collect();
                let [name, state, _version] = words.as_slice() else {
                    return None;
                };
                Some(Distribution {
                    name: (*name).to_owned(),
                    state: (*state).to_owned(),
                    disk: disks
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, d)| d.clone()),
                })
            })
            .collect())
    }

    fn import_in_place(&mut self, name: &str, disk: &Path) -> Result<(), WslError> {
        call(
            &format!("wsl --import-in-place {name} {}", disk.display()),
            &[
                "--import-in-place".as_ref(),
                name.as_ref(),
                disk.as_os_str(),
            ],
        )
        .map(|_| ())
    }

    fn terminate(&mut self, name: &str) -> Result<(), WslError> {
        call(
            &format!("wsl --terminate {name}"),
            &["--terminate".as_ref(), name.as_ref()],
        )
        .map(|_| ())
    }

    fn start(
        &mut self,
        name: &str,
        timeout: Duration,
        interrupt: &AtomicBool,
    ) -> Result<(), WslError> {
        use std::os::windows::process::CommandExt as _;
        // A console of its own that no one sees (no window, no Ctrl-C from ours), and out
        // of our job when the job allows it: a job that kills its processes when it
        // closes (a terminal's, a deployment tool's) would end the machine with us.
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        const CREATE_BREAKAWAY_FROM_JOB: u32 = 0x0100_0000;
        let op = format!(
            "wsl -d {name} -u root --exec /bin/sh -c '{}'",
            super::KEEP_ALIVE
        );
        let spawn = |flags: u32| {
            command()
                .args(["-d", name, "-u", "root", "--exec", "/bin/sh", "-c"])
                .arg(super::KEEP_ALIVE)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .creation_flags(flags)
                .spawn()
        };
        let flags = CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW;
        let mut child = match spawn(flags | CREATE_BREAKAWAY_FROM_JOB) {
            // A job that does not allow breaking away refuses the flag.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => spawn(flags),
            other => other,
        }
        .map_err(|e| WslError::Failed {
            op: op.clone(),
            message: format!("cannot run {}: {e}", program().display()),
        })?;
        let started = Instant::now();
        let stop = |host: &mut Self, child: &mut std::process::Child| {
            let _ = child.kill();
            let _ = host.terminate(name);
        };
        loop {
            // Looked at, never waited for: it is to live on after this process.
            if let Ok(Some(status)) = child.try_wait() {
                return Err(WslError::Failed {
                    op,
                    message: format!(
                        "wsl.exe ended ({status}) before the distribution ran; `wsl -d {name}` shows why"
                    ),
                });
            }
            if self
                .list()?
                .iter()
                .any(|d| d.name == name && d.state.eq_ignore_ascii_case("Running"))
            {
                return Ok(());
            }
            if interrupt.load(Ordering::SeqCst) {
                stop(self, &mut child);
                return Err(WslError::Interrupted { op });
            }
            if started.elapsed() > timeout {
                stop(self, &mut child);
                return Err(WslError::Failed {
                    op,
                    message: format!(
                        "WSL did not list {name} as Running within {} s; it was terminated",
                        timeout.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn unregister(&mut self, name: &str) -> Result<(), WslError> {
        call(
            &format!("wsl --unregister {name}"),
            &["--unregister".as_ref(), name.as_ref()],
        )
        .map(|_| ())
    }

    fn run(
        &mut self,
        name: &str,
        user: Option<&str>,
        argv: &[String],
        timeout: Duration,
        interrupt: &AtomicBool,
        line: &mut dyn FnMut(&str),
    ) -> Result<RunOutput, WslError> {
        let op = match user {
            Some(u) => format!("wsl -d {name} -u {u}"),
            None => format!("wsl -d {name}"),
        };
        let mut c = command();
        c.args(["-d", name]);
        if let Some(u) = user {
            c.args(["-u", u]);
        }
        let mut child = c
            .arg("--exec")
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| WslError::Failed {
                op: op.clone(),
                message: format!("cannot run {}: {e}", program().display()),
            })?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            }));
        }
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                for l in BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            }));
        }
        drop(tx);
        let start = Instant::now();
        let mut result = RunOutput::default();
        loop {
            while let Ok(l) = rx.try_recv() {
                line(&l);
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    result.exit_code = status.code();
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(WslError::Failed {
                        op,
                        message: e.to_string(),
                    });
                }
            }
            let stop = if interrupt.load(Ordering::SeqCst) {
                result.interrupted = true;
                true
            } else if start.elapsed() > timeout {
                result.timed_out = true;
                true
            } else {
                false
            };
            if stop {
                // The caller decides whether the distribution goes too (the first boot
                // terminates it; `shell` leaves the machine running).
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for r in readers {
            let _ = r.join();
        }
        while let Ok(l) = rx.try_recv() {
            line(&l);
        }
        Ok(result)
    }

    fn shell(&mut self, name: &str) -> Result<i32, WslError> {
        let status = command()
            .args(["-d", name])
            .status()
            .map_err(|e| WslError::Failed {
                op: format!("wsl -d {name}"),
                message: format!("cannot run {}: {e}", program().display()),
            })?;
        Ok(status.code().unwrap_or(1))
    }
}
