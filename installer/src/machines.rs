//! The machines of this user, and whether each runs.
//!
//! Two small files, both read as untrusted input (bounded, regular files only, see
//! [`crate::input`]):
//!
//! - the **registry** (`$XDG_STATE_HOME/colinux-setup/machines.json`, else
//!   `~/.local/state/colinux-setup/machines.json`; `%LOCALAPPDATA%\colinux-setup\machines.json`
//!   on Windows): the install folder of every machine this user installed. An install
//!   adds its folder (so does a `start`, for machines installed before the list
//!   existed), an uninstall removes it; `list` reads it. It only names folders:
//!   what a machine is comes from its own install-state.json, so an entry whose folder
//!   is gone is shown as missing, never trusted further. Changes are read-modify-write
//!   under a lock file beside it, so two installs at once keep both entries.
//! - the **run record** (`<prefix>/.colinux-setup-running.json`): written by the process
//!   that keeps a machine running in the background (`start`), removed when it ends. A
//!   record counts only while the process it names is alive and is still that process
//!   (same start time, and its command line is colinux-setup's `run-machine`), so a
//!   record left by a crash or a host reboot never makes a machine look running.
//!
//! # Platform specific behavior
//!
//! The run record is checked through Linux's `/proc`; elsewhere no machine counts as
//! running in the background (the background start is Linux-only for now).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[cfg(unix)]
use std::os::unix::ffi::OsStrExt as _;

/// The registry's file name in its folder.
pub const REGISTRY_FILE: &str = "machines.json";
/// The run record's file name in the install folder.
pub const RUN_FILE: &str = ".colinux-setup-running.json";
/// The hidden command the background process runs as (`colinux-setup run-machine`).
#[cfg_attr(not(unix), allow(dead_code))]
pub const RUN_COMMAND: &str = "run-machine";

/// Why the registry could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Neither `XDG_STATE_HOME` nor `HOME` (`LOCALAPPDATA` on Windows) is set.
    #[error(
        "cannot find the folder for the list of machines: set HOME (or XDG_STATE_HOME; LOCALAPPDATA on Windows)"
    )]
    NoHome,
    /// The file is there but is not a list of machines.
    #[error(
        "the list of installed machines {} is damaged ({why}); move it away: the next install or uninstall writes a new one (machines installed before are then not listed until installed again)", path.display()
    )]
    Damaged {
        /// The registry file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// It could not be read or written.
    #[error("cannot {what} the list of installed machines {}: {source}", path.display())]
    Io {
        /// read, write, lock.
        what: &'static str,
        /// The registry file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The registry file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Registry {
    /// Format of this file (1).
    pub format: u32,
    /// One entry per install folder.
    pub machines: Vec<Entry>,
}

/// One installed machine.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Its install folder (absolute).
    pub prefix: PathBuf,
    /// Seconds since 1970 when it was first listed.
    pub added_at: u64,
}

/// Where the registry lives for this user.
pub fn registry_path() -> Result<PathBuf, RegistryError> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    #[cfg(windows)]
    let dir = non_empty("LOCALAPPDATA").map(|d| d.join("colinux-setup"));
    #[cfg(not(windows))]
    let dir = non_empty("XDG_STATE_HOME")
        .filter(|d| d.is_absolute())
        .or_else(|| non_empty("HOME").map(|h| h.join(".local").join("state")))
        .map(|d| d.join("colinux-setup"));
    dir.map(|d| d.join(REGISTRY_FILE))
        .ok_or(RegistryError::NoHome)
}

/// Reads the registry at `path`; an absent file is an empty registry.
pub fn read(path: &Path) -> Result<Registry, RegistryError> {
    let bytes = match crate::input::read(path, crate::input::STATE_LIMIT, "a machines.json") {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Ok(Registry {
                format: 1,
                machines: Vec::new(),
            });
        }
        Err(e) => {
            return Err(RegistryError::Damaged {
                path: path.to_owned(),
                why: e.reason(),
            });
        }
    };
    let reg: Registry = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Damaged {
        path: path.to_owned(),
        why: format!("not the JSON colinux-setup writes: {e}"),
    })?;
    if reg.format != 1 {
        return Err(RegistryError::Damaged {
            path: path.to_owned(),
            why: format!("format {} is not one this colinux-setup reads", reg.format),
        });
    }
    if let Some(e) = reg.machines.iter().find(|e| !e.prefix.is_absolute()) {
        return Err(RegistryError::Damaged {
            path: path.to_owned(),
            why: format!("{} is not an absolute folder", e.prefix.display()),
        });
    }
    Ok(reg)
}

/// Adds `prefix` to this user's registry (an entry that is there keeps its place).
pub fn register(prefix: &Path) -> Result<(), RegistryError> {
    let prefix = canonical(&std::path::absolute(prefix).unwrap_or_else(|_| prefix.to_owned()));
    change(|reg| {
        if !reg.machines.iter().any(|e| e.prefix == prefix) {
            reg.machines.push(Entry {
                prefix: prefix.clone(),
                added_at: crate::state::now_secs(),
            });
        }
    })
}

/// Removes `prefix` from this user's registry (nothing when it is not there).
pub fn unregister(prefix: &Path) -> Result<(), RegistryError> {
    let prefix = std::path::absolute(prefix).unwrap_or_else(|_| prefix.to_owned());
    let gone = canonical(&prefix);
    let path = registry_path()?;
    if !path.exists() {
        return Ok(());
    }
    change(|reg| {
        reg.machines
            .retain(|e| e.prefix != prefix && e.prefix != gone && canonical(&e.prefix) != gone)
    })
}

/// Read-modify-write under the registry's lock file.
fn change(f: impl FnOnce(&mut Registry)) -> Result<(), RegistryError> {
    let path = registry_path()?;
    let io = |what, source| RegistryError::Io {
        what,
        path: path.clone(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create the folder of", e))?;
    let lock_path = dir.join(".machines.lock");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| io("lock", e))?;
    // Held only for the read-modify-write below: two installs at once wait in turn.
    lock.lock().map_err(|e| io("lock", e))?;
    let mut reg = read(&path)?;
    f(&mut reg);
    reg.format = 1;
    let bytes = serde_json::to_vec_pretty(&reg).unwrap_or_default();
    crate::state::write_atomic_mode(&path, &bytes, crate::state::PRIVATE_FILE)
        .map_err(|e| io("write", std::io::Error::other(format!("{e:#}"))))
}

/// What the background process records about itself in the install folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// Format of this file (1).
    pub format: u32,
    /// The background process (`colinux-setup run-machine`).
    pub pid: u32,
    /// Its start time in clock ticks after the host's boot (`/proc/PID/stat` field 22):
    /// a reused pid has another.
    pub pid_start: u64,
    /// The monitor (uml, qemu).
    pub monitor: String,
    /// The engine in words (`User-mode Linux`, `QEMU with KVM`).
    pub engine: String,
    /// The console's socket, which `console` and `shell` connect to.
    pub console: PathBuf,
    /// The run's log (the console, line by line).
    pub log: PathBuf,
    /// Seconds since 1970 when it started.
    pub started_at: u64,
}

/// Writes the run record of `prefix`.
#[cfg_attr(not(unix), allow(dead_code))]
pub fn write_run(prefix: &Path, rec: &RunRecord) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(rec).unwrap_or_default();
    crate::state::write_atomic(&prefix.join(RUN_FILE), &bytes)
}

/// Removes the run record of `prefix` (the machine stopped).
#[cfg_attr(not(unix), allow(dead_code))]
pub fn remove_run(prefix: &Path) {
    let _ = std::fs::remove_file(prefix.join(RUN_FILE));
}

/// The run record of `prefix` when its process is alive and is still the one that wrote
/// it; `None` otherwise (no record, a damaged one, or one left by a crash or a reboot).
pub fn running(prefix: &Path) -> Option<RunRecord> {
    let bytes = crate::input::read(&prefix.join(RUN_FILE), 64 * 1024, "a run record").ok()?;
    let rec: RunRecord = serde_json::from_slice(&bytes).ok()?;
    (rec.format == 1 && is_alive(rec.pid, rec.pid_start, prefix)).then_some(rec)
}

/// Whether process `pid` lives, started at `start` (see [`RunRecord::pid_start`]) and
/// runs colinux-setup's [`RUN_COMMAND`] for `prefix` (`run-machine --prefix PREFIX`): a
/// record naming another machine's background process is not this machine's.
#[cfg(unix)]
pub fn is_alive(pid: u32, start: u64, prefix: &Path) -> bool {
    if pid == 0 {
        return false;
    }
    let Some(now) = start_time(pid) else {
        return false;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    // The same folder however it was written (`../m`, a symbolic link).
    let same_folder = args.get(3).is_some_and(|a| {
        let a = Path::new(std::ffi::OsStr::from_bytes(a));
        a == prefix || canonical(a) == canonical(prefix)
    });
    now == start
        && args.get(1).copied() == Some(RUN_COMMAND.as_bytes())
        && args.get(2).copied() == Some(b"--prefix".as_slice())
        && same_folder
}

/// No machine runs in the background off Unix (see the module doc).
#[cfg(not(unix))]
pub fn is_alive(_pid: u32, _start: u64, _prefix: &Path) -> bool {
    false
}

/// `path` with its links and `..` resolved, when it exists; else as it is.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Process `pid`'s start time (`/proc/PID/stat` field 22), when it lives (Linux).
#[cfg_attr(not(unix), allow(dead_code))]
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and `)`: the
    // fields after it start after the last `)`. Field 3 is the first of them.
    let rest = stat.rsplit_once(')')?.1;
    let st = rest.split_whitespace().nth(22 - 3)?.parse().ok()?;
    // A zombie has ended: it runs nothing any more.
    (rest.split_whitespace().next() != Some("Z")).then_some(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_registry_is_named_with_what_to_do() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join(REGISTRY_FILE);
        assert_eq!(read(&path).expect("absent = empty").machines, vec![]);
        for (bytes, needle) in [
            (&b"{not json"[..], "not the JSON"),
            (br#"{"format":7,"machines":[]}"#, "format 7"),
            (
                br#"{"format":1,"machines":[{"prefix":"rel","added_at":1}]}"#,
                "rel is not an absolute",
            ),
        ] {
            std::fs::write(&path, bytes).expect("write");
            let e = read(&path).expect_err("damaged").to_string();
            assert!(e.contains(needle), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("move it away"), "{e}");
        }
    }

    #[test]
    fn this_process_is_alive_only_with_its_own_start_time_and_command() {
        let me = std::process::id();
        let start = start_time(me).expect("our own start time");
        // The test binary does not run `run-machine`.
        let here = Path::new("/");
        assert!(!is_alive(me, start, here));
        assert!(!is_alive(me, start + 1, here));
        assert!(!is_alive(0, 0, here));
    }
}
