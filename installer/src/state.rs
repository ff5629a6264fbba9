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
    pub monitor: crate::profile::Monitor,
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
    /// Where the first boot stands.
    pub first_boot: FirstBoot,
    /// The host objects the install made or found (TAP adapter, driver, service, PuTTY
    /// session), each under its step's name (`tap`, `driver`, ...), as the step wrote
    /// it: the step decodes it ([`InstallState::object`]).
    #[serde(flatten)]
    pub objects: BTreeMap<String, serde_json::Value>,
    /// Files of the machine.
    pub files: Vec<FileRecord>,
    /// Seconds since 1970 of the install that last changed something.
    pub installed_at: u64,
}

/// One file of the machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Name in the prefix.
    pub file: String,
    /// What the file is to the machine.
    pub role: FileRole,
    /// Size in bytes when recorded.
    pub bytes: u64,
    /// Content digest when made by the install (`sparse-sha256:` for images, see
    /// [`file_digest`]; `sha256:` for config.txt); user data is not hashed.
    pub digest: Option<String>,
    /// Who made it.
    pub origin: Origin,
    /// The filesystem level (`ext3`, `ext4-compat`, ...) when `images rebuild` changed or
    /// recorded it; absent in states written by the install (the profile names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<image_builder::FsLevel>,
    /// An image's filesystem or swap UUID when recorded: what identifies the image
    /// once the guest has written into it (which changes its digest). Absent for other
    /// files and in states written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// What a recorded file is to the machine (`role` in install-state.json).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileRole {
    /// The root filesystem image.
    Root,
    /// The /home image.
    Home,
    /// The swap image.
    Swap,
    /// config.txt.
    Config,
    /// The copy of the ring-0 driver.
    Driver,
    /// The kit's monitor program.
    Monitor,
    /// The kit's guest kernel.
    Kernel,
    /// The kit's initial ramdisk.
    Initrd,
}

impl FileRole {
    /// The word in install-state.json and in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileRole::Root => "root",
            FileRole::Home => "home",
            FileRole::Swap => "swap",
            FileRole::Config => "config",
            FileRole::Driver => "driver",
            FileRole::Monitor => "monitor",
            FileRole::Kernel => "kernel",
            FileRole::Initrd => "initrd",
        }
    }

    /// A disk image (root, home, swap): the guest writes into it, so it is identified
    /// by kind, size and UUID rather than by its digest.
    pub fn is_image(self) -> bool {
        matches!(self, FileRole::Root | FileRole::Home | FileRole::Swap)
    }

    /// One of the kit's files the machine runs from (monitor, kernel, initrd).
    pub fn is_machine_file(self) -> bool {
        matches!(
            self,
            FileRole::Monitor | FileRole::Kernel | FileRole::Initrd
        )
    }
}

impl std::fmt::Display for FileRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<crate::profile::Role> for FileRole {
    fn from(r: crate::profile::Role) -> FileRole {
        match r {
            crate::profile::Role::Root => FileRole::Root,
            crate::profile::Role::Home => FileRole::Home,
        }
    }
}

impl TryFrom<driver_bundle::manifest::Role> for FileRole {
    /// A kit role the install never copies into the folder.
    type Error = driver_bundle::manifest::Role;
    fn try_from(r: driver_bundle::manifest::Role) -> Result<FileRole, Self::Error> {
        use driver_bundle::manifest::Role as Kit;
        match r {
            Kit::Monitor => Ok(FileRole::Monitor),
            Kit::Kernel => Ok(FileRole::Kernel),
            Kit::Initrd => Ok(FileRole::Initrd),
            Kit::Driver => Ok(FileRole::Driver),
            other => Err(other),
        }
    }
}

/// Who made a recorded file (`origin` in install-state.json).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Made by colinux-setup: a rollback or `uninstall --purge` may remove it.
    Install,
    /// Was there before the install (a user's image): never touched.
    Kept,
}

/// Where the machine's first boot stands (`first_boot` in install-state.json and in
/// the plan).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstBoot {
    /// To run: at the end of the install, or later with `boot --first-boot`.
    Pending,
    /// Not run because NOFIRSTBOOT asked so; `boot --first-boot` runs it.
    Skipped,
    /// The profile has no first boot.
    #[default]
    None,
    /// It ran and succeeded.
    Done,
}

impl FirstBoot {
    /// The word in install-state.json and in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FirstBoot::Pending => "pending",
            FirstBoot::Skipped => "skipped",
            FirstBoot::None => "none",
            FirstBoot::Done => "done",
        }
    }

    /// Still to run (pending or skipped): `boot --first-boot` runs it.
    pub fn is_outstanding(self) -> bool {
        matches!(self, FirstBoot::Pending | FirstBoot::Skipped)
    }
}

impl std::fmt::Display for FirstBoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    if rec.role.is_image() {
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
    if swap != (rec.role == FileRole::Swap) {
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
    /// The record the step `step` keeps here, decoded; `None` when there is none. A
    /// record that does not decode is a damaged state (the file is untrusted).
    pub fn object<T: serde::de::DeserializeOwned>(&self, step: &str) -> Result<Option<T>> {
        match self.objects.get(step) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => T::deserialize(v).map(Some).with_context(|| {
                format!(
                    "{} is damaged: its `{step}` record cannot be read; move it away and run the install again to rewrite it",
                    self.prefix.join(STATE_FILE).display()
                )
            }),
        }
    }

    /// Keeps `record` as the step `step`'s (or removes the step's record).
    pub fn set_object<T: Serialize>(&mut self, step: &str, record: Option<&T>) -> Result<()> {
        match record {
            Some(r) => {
                let v = serde_json::to_value(r)
                    .with_context(|| format!("encoding the `{step}` record"))?;
                self.objects.insert(step.to_owned(), v);
            }
            None => {
                self.objects.remove(step);
            }
        }
        Ok(())
    }

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

    /// A state as the install writes it, as JSON.
    fn written() -> serde_json::Value {
        serde_json::json!({
            "format": 1, "version": "0", "profile": "minimal", "monitor": "uml",
            "prefix": "/m", "plan_digest": "d", "answers": {}, "first_boot": "skipped",
            "tap": {"name": "tap0", "subnet": "10.12.12.0/24", "state": "created", "created": true,
                    "host_ip": "10.12.12.1", "guest_ip": "10.12.12.2"},
            "files": [
                {"file": "root.img", "role": "root", "bytes": 1, "digest": null, "origin": "install", "fs": "ext4-compat"},
                {"file": "home.img", "role": "home", "bytes": 1, "digest": null, "origin": "kept"},
                {"file": "vmlinux", "role": "kernel", "bytes": 1, "digest": null, "origin": "install"}
            ],
            "installed_at": 0
        })
    }

    fn read_json(v: &serde_json::Value) -> Result<Option<InstallState>> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        fs::write(dir.path().join(STATE_FILE), v.to_string()).expect("writing the state");
        InstallState::read(dir.path())
    }

    #[test]
    fn a_state_reads_into_its_types_and_writes_back_the_same_words() {
        let st = read_json(&written())
            .expect("the state reads")
            .expect("there is a state");
        assert_eq!(st.monitor, crate::profile::Monitor::Uml);
        assert_eq!(st.first_boot, FirstBoot::Skipped);
        assert!(st.first_boot.is_outstanding());
        // A host object's record is kept as written, for its step to decode.
        #[derive(serde::Deserialize)]
        struct Named {
            name: String,
        }
        let tap: Named = st.object("tap").expect("decodes").expect("is there");
        assert_eq!(tap.name, "tap0");
        assert!(st.object::<Named>("driver").expect("absent").is_none());
        let e = st.object::<u32>("tap").expect_err("not a number");
        assert!(
            format!("{e:#}").contains("its `tap` record cannot be read"),
            "{e:#}"
        );
        let roles: Vec<_> = st.files.iter().map(|f| (f.role, f.origin)).collect();
        assert_eq!(
            roles,
            [
                (FileRole::Root, Origin::Install),
                (FileRole::Home, Origin::Kept),
                (FileRole::Kernel, Origin::Install)
            ]
        );
        assert!(st.files[0].role.is_image() && !st.files[2].role.is_image());
        assert!(st.files[2].role.is_machine_file());
        assert_eq!(st.files[0].fs, Some(image_builder::FsLevel::Ext4Compat));
        // Written back, every value is the word it was read from.
        let back = serde_json::to_value(&st).expect("the state encodes");
        let mut want = written();
        want["accel"] = serde_json::Value::Null;
        for (k, v) in want.as_object().expect("an object") {
            if !v.is_null() {
                assert_eq!(&back[k], v, "{k}");
            }
        }
    }

    #[test]
    fn a_state_with_a_value_of_no_known_kind_is_refused_as_damaged() {
        type Spoil = fn(&mut serde_json::Value);
        let cases: [(&str, Spoil); 5] = [
            ("monitor", |v| v["monitor"] = "vmware".into()),
            ("first boot", |v| v["first_boot"] = "half".into()),
            ("role", |v| v["files"][0]["role"] = "../etc".into()),
            ("origin", |v| v["files"][1]["origin"] = "someone".into()),
            ("filesystem", |v| v["files"][0]["fs"] = "ntfs".into()),
        ];
        for (what, spoil) in cases {
            let mut v = written();
            spoil(&mut v);
            let e = read_json(&v).expect_err(what);
            let text = format!("{e:#}");
            assert!(
                text.contains("install-state.json is damaged; move it away"),
                "{what}: {text}"
            );
        }
    }

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
