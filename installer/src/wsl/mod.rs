//! WSL 2 as a monitor (64-bit Windows 10 2004+ and 11): the machine's root is built
//! as ext4 in a VHDX (`root.vhdx`), registered as a WSL distribution with
//! `wsl.exe --import-in-place NAME root.vhdx`, and its first boot runs the profile's
//! first-boot script inside it through `wsl.exe -d NAME -u root --exec /bin/sh -c ...`,
//! with the distribution share reached the way WSL reaches Windows files: its automount
//! of the install drive (`C:\Machines\x\...` is `/mnt/c/Machines/x/...` inside).
//!
//! Every `wsl.exe` call goes through the [`WslHost`] seam: [`windows`] runs `wsl.exe`
//! (cfg(windows)); [`recording`] keeps distributions in a JSON file and behaves as WSL
//! does where it matters to the install (import-in-place registers, a name is unique,
//! unregister deletes the disk); it is selected by the test hook
//! `COLINUX_SETUP_TEST_WSL_HOST=FILE` ([`host_for`]). Without either (Linux), the
//! monitor probe refuses `wsl` in the host's words ([`host_supports`]).
//!
//! ## Nothing lost: unregister deletes the disk
//!
//! `wsl --unregister` deletes the distribution's disk, also one registered in place
//! (microsoft/WSL#12427, #9932: by design). The machine's root.vhdx is the user's data
//! and the uninstall keeps images unless PURGE, so every unregister of ours goes
//! through [`unregister_keeping_disk`]: terminate the distribution (WSL detaches its
//! disk), rename the disk aside in its own folder (`.root.vhdx.wsl-unregistering`: a
//! rename, so no copy of a large image and no second disk's worth of space), unregister
//! (WSL finds no disk to delete), rename it back. The choice over the alternatives:
//! importing a copy in place doubles the disk and leaves two roots to tell apart;
//! `wsl --export` is slow and needs the space too. Should the run stop between the
//! renames, the next run of the install or uninstall puts the disk back
//! ([`restore_aside`]) before anything else; the uninstall's file step then keeps or
//! (PURGE) removes root.vhdx by the same rules as every other image.
//!
//! ## What config.txt means under WSL
//!
//! WSL runs one VM for all distributions: the machine's RAM (`mem=`) has no
//! per-distribution meaning (`.wslconfig`'s `memory=` is the whole VM's), nor do the
//! swap image (`.wslconfig`'s `swap=`), the TAP adapter, slirp port forwards (WSL
//! forwards localhost itself), the serial line or the kernel and initrd (WSL's own).
//! Shares become drvfs lines in fstab (WSL mounts them with `mountFsTab`); the default
//! user goes into `/etc/wsl.conf` (`[user] default=`) as the root is built, with the
//! host name (`[network] hostname=`). The plan says each of these in a warning
//! ([`adjust`]). The home image stays its own raw image, which WSL cannot attach
//! (`wsl --mount --vhd` takes VHD(X) files, needs an administrator and mounts under
//! /mnt/wsl): the plan says so; home is not mounted in the distribution yet.
//!
//! ## Limitations
//!
//! None of this has run on real Windows: the [`windows`] host is written from WSL's
//! documentation and built for Windows, and the tests run the recording host on Linux.
//! The recording host simulates the first-boot script (its markers, the test hook's
//! failure and hang) instead of running it: no guest runs here.

pub mod recording;
pub mod step;
#[cfg(windows)]
pub mod windows;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::{Answers, Plan};
use crate::profile::{Monitor, Role};

/// The test hook that selects the recording host: a JSON state file.
pub const TEST_HOST_ENV: &str = "COLINUX_SETUP_TEST_WSL_HOST";

/// Why the wsl monitor is refused on a host without WSL.
pub const NO_WSL: &str = "WSL runs only on 64-bit Windows 10 2004+ and 11, with WSL 2 turned on";

/// How a user turns WSL 2 on without installing a distribution of Microsoft's (the
/// machine is the distribution): Microsoft's own command, from an administrator's prompt.
pub const ENABLE_WSL: &str = "in a command prompt run as administrator, `wsl --install --no-distribution`, then restart Windows";

/// A failure of a WSL operation, in WSL's words where it gave some.
#[derive(Debug, thiserror::Error)]
pub enum WslError {
    /// This host has no WSL (not made on Windows, where wsl.exe says why itself).
    #[cfg_attr(windows, allow(dead_code))]
    #[error("{0}")]
    Unavailable(String),
    /// No distribution has this name.
    #[error("there is no WSL distribution named {name}")]
    NotRegistered {
        /// The name.
        name: String,
    },
    /// The name is taken.
    #[error("a WSL distribution named {name} is already registered")]
    AlreadyRegistered {
        /// The name.
        name: String,
    },
    /// An operation failed.
    #[error("{op}: {message}")]
    Failed {
        /// What was being done.
        op: String,
        /// What WSL (or the file system) said.
        message: String,
    },
}

/// A registered distribution, as the host lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    /// Its name.
    pub name: String,
    /// `Stopped`, `Running`, `Installing`, ... (WSL's word).
    pub state: String,
    /// Its disk, when the host says it.
    #[serde(default)]
    pub disk: Option<PathBuf>,
}

/// How a command run inside a distribution ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// Its exit status (`None`: killed).
    pub exit_code: Option<i32>,
    /// Stopped at the timeout.
    pub timed_out: bool,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
}

/// The `wsl.exe` calls the install, boot, status and uninstall make.
pub trait WslHost {
    /// `windows` (wsl.exe) or `recording`.
    fn kind(&self) -> &'static str;
    /// The registered distributions.
    fn list(&mut self) -> Result<Vec<Distribution>, WslError>;
    /// `wsl --import-in-place NAME DISK`: registers DISK (a VHDX with ext4) as NAME.
    fn import_in_place(&mut self, name: &str, disk: &Path) -> Result<(), WslError>;
    /// `wsl --terminate NAME`.
    fn terminate(&mut self, name: &str) -> Result<(), WslError>;
    /// `wsl --unregister NAME`: as WSL does, this deletes the distribution's disk (use
    /// [`unregister_keeping_disk`]).
    fn unregister(&mut self, name: &str) -> Result<(), WslError>;
    /// `wsl -d NAME -u USER --exec ARGV...`, each output line to `line`, stopped after
    /// `timeout` or on Ctrl-C.
    fn run(
        &mut self,
        name: &str,
        user: &str,
        argv: &[String],
        timeout: Duration,
        interrupt: &AtomicBool,
        line: &mut dyn FnMut(&str),
    ) -> Result<RunOutput, WslError>;
    /// `wsl -d NAME`: the distribution's shell on this terminal; its exit status.
    fn shell(&mut self, name: &str) -> Result<i32, WslError>;
}

/// The host to use: the recording host when the test hook names a state file, wsl.exe
/// on Windows, else none (an error in the host's words).
pub fn host_for() -> Result<Box<dyn WslHost>, WslError> {
    if let Some(file) = std::env::var_os(TEST_HOST_ENV).filter(|f| !f.is_empty()) {
        return Ok(Box::new(recording::RecordingHost::with_file(Path::new(
            &file,
        ))?));
    }
    #[cfg(windows)]
    {
        Ok(Box::new(windows::WslExe))
    }
    #[cfg(not(windows))]
    {
        Err(WslError::Unavailable(NO_WSL.to_owned()))
    }
}

/// Whether WSL 2 can run distributions here: the probe's verdict (`Ok`: why it works).
pub fn host_supports() -> Result<String, String> {
    if std::env::var_os(TEST_HOST_ENV).is_some_and(|f| !f.is_empty()) {
        return Ok(format!("the recording WSL host ({TEST_HOST_ENV}, tests)"));
    }
    #[cfg(windows)]
    {
        windows::supports()
    }
    #[cfg(not(windows))]
    {
        Err(NO_WSL.to_owned())
    }
}

/// The distribution's name: `WSLNAME`, else the machine's host name.
pub fn name(plan: &Plan) -> String {
    plan.answers
        .get("WSLNAME")
        .cloned()
        .unwrap_or_else(|| plan.hostname.clone())
}

/// Checks a distribution name as WSL takes it: 1..=64 of letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "{name:?}: a WSL distribution name has 1 to 64 characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{name:?}: WSL takes letters, digits, `.`, `_` and `-` in a distribution name, not {c:?}"
        ));
    }
    Ok(())
}

/// Checks `WSLNAME` (only for the wsl monitor); returns the answers to record.
pub fn plan_answers(answers: &Answers, monitor: Monitor) -> anyhow::Result<Vec<(String, String)>> {
    let Some(a) = answers.get("WSLNAME") else {
        return Ok(Vec::new());
    };
    if monitor != Monitor::Wsl {
        anyhow::bail!(
            "WSLNAME={} ({}): names the WSL distribution of a machine for the wsl monitor; this plan's monitor is {}: leave WSLNAME out, or give MONITOR=wsl",
            a.value,
            a.origin,
            monitor.as_str()
        );
    }
    check_name(&a.value).map_err(|e| anyhow::anyhow!("WSLNAME ({}): {e}", a.origin))?;
    Ok(vec![("WSLNAME".to_owned(), a.value.clone())])
}

/// The plan of a wsl machine: root becomes `root.vhdx` (VHDX), the host name must be a
/// distribution name (unless WSLNAME gives one), and what has no WSL meaning is said
/// in warnings. Nothing for another monitor.
pub fn adjust(plan: &mut Plan) -> anyhow::Result<()> {
    if plan.monitor != Monitor::Wsl {
        return Ok(());
    }
    check_name(&name(plan)).map_err(|e| {
        anyhow::anyhow!(
            "the machine's WSL distribution is named after its host name, which WSL does not take: {e}; give WSLNAME=NAME"
        )
    })?;
    for img in plan.images.iter_mut().filter(|i| i.role == Role::Root) {
        let stem = Path::new(&img.file)
            .file_stem()
            .map_or_else(|| "root".to_owned(), |s| s.to_string_lossy().into_owned());
        img.file = format!("{stem}.vhdx");
        img.path = plan.prefix.join(&img.file);
    }
    let mut w = vec![format!(
        "RAMMB={}: no WSL meaning (WSL 2 runs every distribution in one VM sized by .wslconfig's `memory=`)",
        plan.ram_mb
    )];
    w.push(format!(
        "{}: no WSL meaning (WSL 2 has its own swap, .wslconfig's `swap=`); it is made, and not used under WSL",
        plan.swap.file
    ));
    for img in plan.images.iter().filter(|i| i.role != Role::Root) {
        w.push(format!(
            "{} ({}) stays its own raw image, which WSL cannot attach (`wsl --mount --vhd` takes VHDX files and needs an administrator): it is not mounted in the distribution",
            img.file, img.mount
        ));
    }
    if plan.tap.is_some() {
        w.push(
            "the TAP adapter: no WSL meaning (WSL 2 gives the distribution its own network)"
                .to_owned(),
        );
    }
    if plan.slirp.as_deref().is_some_and(|s| !s.trim().is_empty()) {
        w.push("the slirp port forwards: no WSL meaning (WSL forwards the distribution's localhost ports to Windows itself)".to_owned());
    }
    if plan.serial.is_some() {
        w.push("the serial line: no WSL meaning".to_owned());
    }
    w.push("the kernel and initrd: no WSL meaning (WSL 2 boots its own kernel)".to_owned());
    plan.warnings.extend(w);
    Ok(())
}

/// `/etc/wsl.conf` of a wsl machine's root: its default user (the profile's first user
/// that is not root, else root), its host name, fstab mounted by WSL (the shares).
pub fn wsl_conf(plan: &Plan) -> String {
    let user = plan
        .users
        .iter()
        .find(|u| u.uid != 0)
        .map_or("root", |u| u.name.as_str());
    format!(
        "# /etc/wsl.conf, written by colinux-setup for the wsl monitor (profile {}).\n\
         [boot]\nsystemd=false\n\n\
         [user]\ndefault={user}\n\n\
         [network]\nhostname={}\ngenerateHosts=false\n\n\
         [automount]\nenabled=true\nmountFsTab=true\n",
        plan.profile, plan.hostname
    )
}

/// The machine's disk (the root image's path).
pub fn disk(plan: &Plan) -> Option<PathBuf> {
    plan.images
        .iter()
        .find(|i| i.role == Role::Root)
        .map(|i| i.path.clone())
}

/// The `--dry-run` line of the WSL registration, for a wsl plan.
pub fn describe(plan: &Plan) -> Option<String> {
    if plan.monitor != Monitor::Wsl {
        return None;
    }
    Some(format!(
        "  WSL:            distribution {} registered with `wsl --import-in-place {} {}` (unregistered on failure only if this run registered it; the disk is kept unless PURGE)",
        name(plan),
        name(plan),
        disk(plan).unwrap_or_default().display()
    ))
}

/// Where a Windows path is inside a WSL distribution: its automount of the drive
/// (`C:\a\b` is `/mnt/c/a/b`; `\\?\C:\a` too). A path that is no drive path (the
/// recording host's Linux paths) is returned as it is.
pub fn wsl_path(path: &str) -> String {
    let p = path.strip_prefix(r"\\?\").unwrap_or(path);
    let b = p.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        let drive = char::from(b[0].to_ascii_lowercase());
        let rest = p[2..].replace('\\', "/");
        let rest = rest.trim_start_matches('/');
        return if rest.is_empty() {
            format!("/mnt/{drive}")
        } else {
            format!("/mnt/{drive}/{rest}")
        };
    }
    path.to_owned()
}

/// The name a disk is renamed to while its distribution is unregistered.
pub fn aside_path(disk: &Path) -> PathBuf {
    let name = disk
        .file_name()
        .map_or_else(|| "disk".to_owned(), |n| n.to_string_lossy().into_owned());
    disk.with_file_name(format!(".{name}.wsl-unregistering"))
}

/// Puts back a disk an interrupted unregister left aside; `true` when it did.
pub fn restore_aside(disk: &Path) -> std::io::Result<bool> {
    let aside = aside_path(disk);
    if aside.is_file() && !disk.exists() {
        std::fs::rename(&aside, disk)?;
        return Ok(true);
    }
    Ok(false)
}

/// Unregisters `name` without losing its disk `disk` (see the module doc): terminate,
/// rename the disk aside, unregister, rename it back. When the disk cannot be renamed
/// (still attached), nothing is unregistered.
pub fn unregister_keeping_disk(
    host: &mut dyn WslHost,
    name: &str,
    disk: &Path,
) -> Result<(), WslError> {
    match host.terminate(name) {
        Ok(()) | Err(WslError::NotRegistered { .. }) => {}
        Err(e) => return Err(e),
    }
    let aside = aside_path(disk);
    let moved = if disk.is_file() {
        if aside.exists() {
            return Err(WslError::Failed {
                op: format!("keeping {} while {name} is unregistered", disk.display()),
                message: format!(
                    "{} is in the way (an earlier run's?); move it away and run this again",
                    aside.display()
                ),
            });
        }
        std::fs::rename(disk, &aside).map_err(|e| WslError::Failed {
            op: format!("keeping {} while {name} is unregistered", disk.display()),
            message: format!(
                "{e}; the disk is still in use: run `wsl --shutdown` and run this again"
            ),
        })?;
        true
    } else {
        false
    };
    let result = host.unregister(name);
    if moved {
        std::fs::rename(&aside, disk).map_err(|e| WslError::Failed {
            op: format!("putting {} back", disk.display()),
            message: format!(
                "{e}; the image is safe as {}: rename it to {}",
                aside.display(),
                disk.display()
            ),
        })?;
    }
    result
}

/// Whether two disk paths name the same file (Windows paths compare without case).
pub fn same_disk(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) if x == y => true,
        _ => {
            cfg!(windows)
                && a.to_string_lossy()
                    .eq_ignore_ascii_case(&b.to_string_lossy())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_are_reached_through_the_drive_automount() {
        assert_eq!(wsl_path(r"C:\Machines\m\dist"), "/mnt/c/Machines/m/dist");
        assert_eq!(wsl_path(r"\\?\D:\x"), "/mnt/d/x");
        assert_eq!(wsl_path("e:"), "/mnt/e");
        assert_eq!(wsl_path("/tmp/x"), "/tmp/x");
    }

    #[test]
    fn distribution_names_follow_wsl() {
        assert!(check_name("colinux-1.x_y").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("é").is_err());
    }

    #[test]
    fn an_unregister_keeps_the_disk_and_an_interrupted_one_is_restored() {
        let dir = tempfile::tempdir().expect("tmp");
        let disk = dir.path().join("root.vhdx");
        let mut opts = image_builder::BuildOptions::new(
            image_builder::FsLevel::Ext2,
            image_builder::SizeSpec::Bytes(8 << 20),
        );
        opts.format = image_builder::DiskFormat::Vhdx;
        image_builder::build(&disk, &opts, &mut |_| {}, &AtomicBool::new(false)).expect("vhdx");
        let bytes = std::fs::read(&disk).expect("disk");
        let mut h = recording::RecordingHost::new();
        // WSL registers VHDX disks only, each under one name.
        let raw = dir.path().join("raw.img");
        std::fs::write(&raw, vec![0u8; 4096]).expect("raw");
        assert!(h.import_in_place("r", &raw).is_err());
        h.import_in_place("m", &disk).expect("import");
        assert!(matches!(
            h.import_in_place("m", &disk),
            Err(WslError::AlreadyRegistered { .. })
        ));
        assert!(h.import_in_place("n", &disk).is_err());
        unregister_keeping_disk(&mut h, "m", &disk).expect("unregister");
        assert_eq!(std::fs::read(&disk).expect("kept"), bytes);
        assert!(h.list().expect("list").is_empty());
        // A plain unregister deletes it, as WSL does.
        h.import_in_place("m", &disk).expect("import");
        h.unregister("m").expect("unregister");
        assert!(!disk.exists());
        std::fs::write(aside_path(&disk), &bytes).expect("aside");
        assert!(restore_aside(&disk).expect("restore"));
        assert_eq!(std::fs::read(&disk).expect("back"), bytes);
    }
}
