//! What an install leaves in its folder besides the machine: `install-state.json` (what
//! was made, with sizes and hashes, and the answers that made it), the lock file that
//! keeps a second install out (exit 1618), the write-ahead journal of an install in
//! progress, and one log file per run under `logs/`.
//!
//! Every file here is written beside its target and renamed into place.
//!
//! ## Modes
//!
//! What the install makes has a fixed mode, whatever the umask of the run (under umask
//! 000 everything would otherwise be writable by every local user, including the
//! config.txt that names the kernel `boot` runs, and the state an uninstall acts on):
//!
//! - [`PUBLIC_FILE`] (0644) for what others read and only the installer writes:
//!   config.txt, install-state.json (read by `status` for detection tools), the lock,
//!   logs, kit.toml, saved answers, the driver's copy, a rebuild's note;
//! - [`PRIVATE_FILE`] (0600) for the install's journal (the rollback acts on what it
//!   names, and nobody else needs to read it); the images are 0600 too, made so by the
//!   image builder's temporary file: they hold the guest's /etc/shadow and the user's
//!   files;
//! - [`FOLDER`] (0755) for the folders the install creates (the prefix, its missing
//!   parents, logs/); a folder that was there before keeps its mode.
//!
//! The kit's machine files are copied 0755 (programs) or 0644 ([`crate::kit_files`]).
//!
//! ## Limitations
//!
//! The lock is an advisory file lock (`File::try_lock`): it keeps out other
//! colinux-setup runs, not other programs. A SIGKILL releases it once every process
//! holding it is gone (the kernel closes the file), which is what lets a re-run finish
//! an interrupted install: colinux-setup itself, and the guest it started, which
//! inherits the lock and is killed with it (see `monitor::run`).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The state file's name in the prefix.
pub const STATE_FILE: &str = "install-state.json";
/// setup.msi's note for its rollback action (the `msi` command's): any uninstall removes it.
pub const MSI_NOTE_FILE: &str = ".msi-provisioned";
/// The lock file's name in the prefix.
pub const LOCK_FILE: &str = ".colinux-setup.lock";
/// The journal of an install that has not finished.
pub const JOURNAL_FILE: &str = ".colinux-setup-journal.json";
/// Logs folder.
pub const LOGS_DIR: &str = "logs";
/// What a plain `uninstall` kept: the records of the images it left in the folder,
/// which a later `uninstall --purge` removes when they are still those images.
pub const KEPT_FILE: &str = ".colinux-setup-kept.json";
/// The mode of a file others may read (see the module doc).
pub const PUBLIC_FILE: u32 = 0o644;
/// The mode of a file only its owner reads.
pub const PRIVATE_FILE: u32 = 0o600;
/// The mode of a folder the install creates.
pub const FOLDER: u32 = 0o755;

/// `install-state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstallState {
    /// Format of this file.
    pub format: u32,
    /// colinux-setup version that installed.
    pub version: String,
    /// Profile name.
    pub profile: String,
    /// Monitor.
    pub monitor: String,
    /// QEMU's accelerator, as the probe (or a first boot that fell back) found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<crate::monitor::probe::Accel>,
    /// Why this monitor (auto's choice, or who gave it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_why: Option<String>,
    /// Install folder.
    pub prefix: PathBuf,
    /// Digest of the plan.
    pub plan_digest: String,
    /// Answers that reproduce the install.
    pub answers: BTreeMap<String, String>,
    /// First boot: pending, skipped, none.
    pub first_boot: String,
    /// The TAP adapter, as planned.
    pub tap: Option<TapRecord>,
    /// The ring-0 driver (coLinux monitor), when the install handled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<crate::driver::DriverRecord>,
    /// The machine's Windows service (answer SERVICE=1), when the install made or reused one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<crate::service::step::ServiceRecord>,
    /// The PuTTY session (answer PUTTYSESSION), when the install saved or found one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub putty: Option<crate::putty::step::PuttyRecord>,
    /// Files of the machine.
    pub files: Vec<FileRecord>,
    /// Seconds since 1970 of the install that last changed something.
    pub installed_at: u64,
}

/// The TAP adapter of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TapRecord {
    /// Name.
    pub name: String,
    /// /24.
    pub subnet: String,
    /// What happened to it.
    pub state: String,
    /// This install created the adapter (so uninstall deletes it); `false` for an
    /// adapter that was there before, or none.
    #[serde(default)]
    pub created: bool,
    /// The host side's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The guest's address (written into the guest's rcS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_ip: Option<String>,
    /// Why the adapter was not created: networking was optional and it could not be
    /// made, or it belongs to another host (coLinux on Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// One file of the machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Name in the prefix.
    pub file: String,
    /// root, home, swap, config.
    pub role: String,
    /// Size in bytes when recorded.
    pub bytes: u64,
    /// Content digest when made by the install (`sparse-sha256:` for images, see
    /// [`file_digest`]; `sha256:` for config.txt); user data is not hashed.
    pub digest: Option<String>,
    /// `install` (made by colinux-setup) or `kept` (was there before; never touched).
    pub origin: String,
    /// The filesystem level (`ext3`, `ext4-compat`, ...) when `images rebuild` changed or
    /// recorded it; absent in states written by the install (the profile names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<String>,
    /// An image's filesystem or swap UUID when recorded: what identifies the image
    /// once the guest has written into it (which changes its digest). Absent for other
    /// files and in states written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// The roles of disk images among [`FileRecord::role`].
pub fn is_image_role(role: &str) -> bool {
    matches!(role, "root" | "home" | "swap")
}

/// Checks a file name read from install-state.json (or a rebuild's note): it must be
/// one plain name in the install folder, the only kind the install records. A name
/// with a folder separator, `.` or `..`, a drive or stream colon, or a control
/// character could reach outside the folder (an absolute path replaces the folder in
/// a join; `C:x` does on Windows), so it is never used. Since the name is one
/// component, its only parent is the install folder itself: no symbolic link inside
/// the folder can lead a path out of it.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name == "." || name == ".." {
        return Err("names a folder, not a file in the install folder");
    }
    if name.contains(['/', '\\']) {
        return Err("is a path, not a plain file name in the install folder");
    }
    if name.contains(':') {
        return Err("has a drive or stream colon");
    }
    if name.chars().any(char::is_control) {
        return Err("has control characters");
    }
    Ok(())
}

/// What is at the place a [`FileRecord`] names, compared with what the install recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The file the install recorded: same size and digest (for an image, which the
    /// guest writes into: the same kind of image, size and UUID).
    Same,
    /// Nothing is there.
    Missing,
    /// Something else is there; why, in words (`is 11 bytes, the install recorded ...`).
    Other(String),
}

/// Compares the file `rec` names in `prefix` with what the install recorded. `Err`
/// when the record's name is not a plain name in the folder ([`check_name`]): then
/// nothing was looked at. Reads at most the file itself (streamed, never a FIFO or a
/// device), so a hostile record costs no more than hashing one regular file.
pub fn find(prefix: &Path, rec: &FileRecord) -> Result<Found, String> {
    check_name(&rec.file).map_err(|why| format!("`{}`, which {why}", rec.file))?;
    let path = prefix.join(&rec.file);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Ok(Found::Other(format!("cannot be read ({e})"))),
    };
    if meta.file_type().is_symlink() {
        return Ok(Found::Other(
            "is a symbolic link, which the install never makes".to_owned(),
        ));
    }
    if !meta.is_file() {
        return Ok(Found::Other(format!(
            "is {}, not the file the install made",
            crate::input::kind_of(&meta.file_type())
        )));
    }
    if is_image_role(&rec.role) {
        if meta.len() != rec.bytes {
            return Ok(Found::Other(format!(
                "is {} bytes, the install recorded {} bytes",
                meta.len(),
                rec.bytes
            )));
        }
        return Ok(same_image(&path, rec));
    }
    if meta.len() != rec.bytes {
        return Ok(Found::Other(format!(
            "changed since the install (it is {} bytes, the install recorded {})",
            meta.len(),
            rec.bytes
        )));
    }
    let Some(want) = rec.digest.as_deref() else {
        return Ok(Found::Other(
            "has no recorded digest to compare it with".to_owned(),
        ));
    };
    match digest_like(&path, want) {
        Ok(now) if now == want => Ok(Found::Same),
        Ok(_) => Ok(Found::Other("changed since the install".to_owned())),
        Err(e) => Ok(Found::Other(format!("cannot be read ({e:#})"))),
    }
}

/// An image is the one the install recorded when it is still an image of its role's
/// kind and, where recorded, has the same UUID (or else the same digest: states
/// written before UUIDs were recorded identify a booted image by kind and size).
fn same_image(path: &Path, rec: &FileRecord) -> Found {
    let info = match crate::input::open_regular(path) {
        Ok(_) => image_builder::inspect(path).ok(),
        Err(e) => return Found::Other(e.to_string()),
    };
    let Some(info) = info else {
        return Found::Other("is not a disk image".to_owned());
    };
    let swap = info.kind == image_builder::ImageKind::Swap;
    if swap != (rec.role == "swap") {
        return Found::Other(format!(
            "is {}, not the {} image the install recorded",
            if swap { "a swap area" } else { "a filesystem" },
            rec.role
        ));
    }
    match &rec.uuid {
        Some(u) if !u.eq_ignore_ascii_case(&info.uuid) => Found::Other(format!(
            "is another image (UUID {}; the install recorded {u})",
            info.uuid
        )),
        _ => Found::Same,
    }
}

/// The digest of `path` in the form of `want` (`sha256:` or `sparse-sha256:`).
fn digest_like(path: &Path, want: &str) -> Result<String> {
    if want.starts_with("sparse-sha256:") {
        return file_digest(path);
    }
    let f = crate::input::open_regular(path)?;
    let (hex, _) = driver_bundle::manifest::sha256_reader(f)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("sha256:{hex}"))
}

impl InstallState {
    /// Reads `<prefix>/install-state.json`; `Ok(None)` when there is none.
    /// It is read as untrusted input: a regular file of at most
    /// [`crate::input::STATE_LIMIT`]; the file names it records are checked where they
    /// are used ([`find`]).
    pub fn read(prefix: &Path) -> Result<Option<InstallState>> {
        let path = prefix.join(STATE_FILE);
        let damaged = || {
            format!(
                "{} is damaged; move it away and run the install again to rewrite it",
                path.display()
            )
        };
        match crate::input::read(&path, crate::input::STATE_LIMIT, "an install-state.json") {
            Ok(b) => serde_json::from_slice(&b).map(Some).with_context(damaged),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(damaged())),
        }
    }
}

/// Writes `bytes` to `path` through a sibling temporary file, synced and renamed; the
/// file is [`PUBLIC_FILE`] (0644) whatever the umask.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, PUBLIC_FILE)
}

/// [`write_atomic`] with the file's `mode` (Unix; ignored elsewhere).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        // A temporary of this name left by a killed run of the same pid goes first; then
        // it is created new, so a link planted at its name is never followed.
        let _ = fs::remove_file(&tmp);
        let mut f = create_new(&tmp, mode)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", path.display()))
}

/// Creates `path`, which must not exist (a symbolic link there is not followed), with
/// exactly `mode`: the umask is undone by setting the mode on the open file.
pub fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode);
    let f = o.open(path)?;
    set_file_mode(&f, mode)?;
    Ok(f)
}

#[cfg(unix)]
fn set_file_mode(f: &File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    f.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_file_mode(_f: &File, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Creates the folder `path` (its parent must exist) with mode [`FOLDER`] whatever the
/// umask; `AlreadyExists` when it is there (its mode is then left as it is).
pub fn create_folder(path: &Path) -> std::io::Result<()> {
    fs::create_dir(path)?;
    set_folder_mode(path, FOLDER)
}

#[cfg(unix)]
fn set_folder_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_folder_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// A digest of an image file's content that skips its holes: `sparse-sha256:HEX`, the
/// sha256 of the file length, then each data region's offset, length and bytes (found
/// with SEEK_DATA / SEEK_HOLE). Equal files give equal digests; hashing a 2 GB image
/// that is mostly holes reads only its data. Where holes cannot be found (other hosts),
/// every byte is one region.
pub fn file_digest(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom};
    let ctx = || format!("cannot read {}", path.display());
    let mut f = File::open(path).with_context(ctx)?;
    let len = f.metadata().with_context(ctx)?.len();
    let mut h = Sha256::new();
    h.update(len.to_le_bytes());
    let mut buf = vec![0u8; 1 << 20];
    for (start, end) in data_regions(&f, len) {
        h.update(start.to_le_bytes());
        h.update((end - start).to_le_bytes());
        f.seek(SeekFrom::Start(start)).with_context(ctx)?;
        let mut left = end - start;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            f.read_exact(&mut buf[..n]).with_context(ctx)?;
            h.update(&buf[..n]);
            left -= n as u64;
        }
    }
    Ok(format!("sparse-sha256:{}", crate::plan::hex(&h.finalize())))
}

#[cfg(unix)]
pub(crate) fn data_regions(f: &File, len: u64) -> Vec<(u64, u64)> {
    use rustix::fs::{SeekFrom, seek};
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < len {
        let Ok(start) = seek(f, SeekFrom::Data(at)) else {
            break;
        };
        let end = seek(f, SeekFrom::Hole(start)).unwrap_or(len).min(len);
        if end <= start {
            break;
        }
        out.push((start, end));
        at = end;
    }
    out
}

#[cfg(not(unix))]
pub(crate) fn data_regions(_f: &File, len: u64) -> Vec<(u64, u64)> {
    vec![(0, len)]
}

/// The install lock of a prefix, held until dropped.
pub struct Lock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// Second handles on the locks this process holds, by path. A guest started while one
/// is held inherits it ([`held_locks`]), so the machine stays locked as long as any
/// process of the guest lives, even after this process was killed (the lock is the
/// open file's: every handle of it must be closed before another run gets it).
static HELD: std::sync::Mutex<Vec<(PathBuf, File)>> = std::sync::Mutex::new(Vec::new());

/// Handles on every lock this process holds now (see [`HELD`]).
pub fn held_locks() -> Vec<File> {
    HELD.lock()
        .map(|held| {
            held.iter()
                .filter_map(|(_, f)| f.try_clone().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Ok(mut held) = HELD.lock() {
            held.retain(|(p, _)| p != &self.path);
        }
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it.
    #[error(
        "another colinux-setup run is installing, uninstalling or running the machine in {0} (it holds {0}/{LOCK_FILE}); wait for it to finish (a machine started in the background: `colinux-setup stop --prefix {0}`), then run again"
    )]
    Busy(String),
    /// The lock file could not be opened.
    #[error("cannot open the lock file {path}")]
    Io {
        /// The lock file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Lock {
    /// Takes the lock of `prefix` (which must exist) without waiting.
    pub fn acquire(prefix: &Path) -> Result<Lock, LockError> {
        let path = prefix.join(LOCK_FILE);
        let io = |e| LockError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let file = match create_new(&path, PUBLIC_FILE) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                OpenOptions::new().write(true).open(&path).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        };
        // An advisory lock held as long as the file is open: the kernel drops it when the
        // process dies, however it dies, so a SIGKILLed install never blocks the next.
        let locked = file.try_lock();
        match locked {
            Ok(()) => {
                if let (Ok(mut held), Ok(second)) = (HELD.lock(), file.try_clone()) {
                    held.push((path.clone(), second));
                }
                Ok(Lock { _file: file, path })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(LockError::Busy(prefix.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io {
                path: path.display().to_string(),
                source: e,
            }),
        }
    }
}

/// Seconds since 1970.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYYMMDDTHHMMSSZ` for a time in seconds since 1970 (UTC).
pub fn stamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The log of one run: timestamped lines in a file. It is started in the temporary
/// folder (the prefix may not exist yet, or may be removed by a rollback) and moved
/// into `<prefix>/logs/` when the run ends with the prefix in place.
pub struct RunLog {
    /// Where it is now.
    pub path: PathBuf,
    file: Option<File>,
    fixed: bool,
}

impl RunLog {
    /// Starts a log for `command` (`install`, `uninstall`); `given` is `--log FILE`.
    pub fn start(command: &str, given: Option<&Path>) -> RunLog {
        let (path, fixed) = match given {
            Some(p) => (p.to_owned(), true),
            None => (
                std::env::temp_dir().join(format!(
                    "colinux-setup-{command}-{}-{}.log",
                    stamp(now_secs()),
                    std::process::id()
                )),
                false,
            ),
        };
        // A new log is PUBLIC_FILE whatever the umask, and created new: in the shared
        // temporary folder a link planted at its name is not followed. A `--log FILE`
        // that exists is appended to as it is.
        let file = match create_new(&path, PUBLIC_FILE) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && fixed => {
                OpenOptions::new().append(true).open(&path)
            }
            other => other,
        }
        .ok();
        let mut log = RunLog { path, file, fixed };
        log.line(&format!(
            "colinux-setup {} {command}, pid {}",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ));
        log
    }

    /// Appends one line.
    pub fn line(&mut self, msg: &str) {
        if let Some(f) = &mut self.file {
            for l in msg.lines() {
                let _ = writeln!(f, "{} {l}", stamp(now_secs()));
            }
        }
    }

    /// Moves the log into `<prefix>/logs/` (unless `--log` fixed its place) and returns
    /// where it is.
    pub fn settle(&mut self, prefix: &Path) -> PathBuf {
        if self.fixed || !prefix.is_dir() {
            return self.path.clone();
        }
        let dir = prefix.join(LOGS_DIR);
        match create_folder(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(_) => return self.path.clone(),
        }
        let Some(name) = self.path.file_name() else {
            return self.path.clone();
        };
        let target = dir.join(name);
        if let Some(f) = &self.file {
            let _ = f.sync_all();
        }
        let moved = fs::rename(&self.path, &target).is_ok()
            || (fs::copy(&self.path, &target).is_ok() && fs::remove_file(&self.path).is_ok());
        if moved {
            self.path = target;
            self.file = OpenOptions::new().append(true).open(&self.path).ok();
        }
        self.path.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_names_are_plain_names_in_the_folder() {
        for ok in ["root.img", "config.txt", "vmlinux-2.6.33", "..x"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../victim.txt",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "C:x",
            "x\ny",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stamps_are_utc_calendar_dates() {
        assert_eq!(stamp(0), "19700101T000000Z");
        assert_eq!(stamp(1_735_689_600), "20250101T000000Z");
        assert_eq!(stamp(951_782_400 + 3661), "20000229T010101Z");
    }
}
