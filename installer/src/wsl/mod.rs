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
//! host name (`[network] hostname=`). [`Ignored`] is the one list of what WSL ignores
//! and why: the plan says each in a warning ([`adjust`]), `config check` in a note on
//! the config.txt line ([`config_notes`]). The home image stays its own raw image, which WSL cannot attach
//! (`wsl --mount --vhd` takes VHD(X) files, needs an administrator and mounts under
//! /mnt/wsl): the plan says so; home is not mounted in the distribution yet.
//!
//! ## A machine's life: start, stop, shell, console
//!
//! WSL runs a distribution while a process lives in it and stops it once it is idle,
//! so `start` leaves one there ([`WslHost::start`]: a detached `wsl.exe` running
//! `sleep` as root) and `stop` ends it with `wsl --terminate`; `shell -- CMD` runs
//! `/bin/sh -c CMD` as the distribution's default user ([`WslHost::run`] without a
//! user) and `console` opens its shell (the life commands, above this module).
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

/// What `start` leaves running in a distribution so that WSL keeps it running: `sleep`
/// for as long as a 32-bit `sleep` takes (68 years), replacing the shell.
pub const KEEP_ALIVE: &str = "exec sleep 2147483647";

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
    /// Ctrl-C (or a signal) stopped the operation (wsl.exe's `start`: the recording
    /// host waits for nothing).
    #[cfg_attr(not(windows), allow(dead_code))]
    #[error("{op}: stopped")]
    Interrupted {
        /// What was being done.
        op: String,
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

/// The `wsl.exe` calls the install, boot, status, uninstall and a machine's life
/// (`start`, `stop`, `shell`, `console`) make.
pub trait WslHost {
    /// `windows` (wsl.exe) or `recording`.
    fn kind(&self) -> &'static str;
    /// The registered distributions.
    fn list(&mut self) -> Result<Vec<Distribution>, WslError>;
    /// `wsl --import-in-place NAME DISK`: registers DISK (a VHDX with ext4) as NAME.
    fn import_in_place(&mut self, name: &str, disk: &Path) -> Result<(), WslError>;
    /// `wsl --terminate NAME`.
    fn terminate(&mut self, name: &str) -> Result<(), WslError>;
    /// Keeps NAME running until [`WslHost::terminate`]: WSL stops a distribution once
    /// nothing runs in it, so a process ([`KEEP_ALIVE`]) is left running in it as root,
    /// never waited for. Returns once WSL lists NAME `Running`; after `timeout` or on
    /// Ctrl-C the distribution is terminated and an error returned.
    fn start(
        &mut self,
        name: &str,
        timeout: Duration,
        interrupt: &AtomicBool,
    ) -> Result<(), WslError>;
    /// `wsl --unregister NAME`: as WSL does, this deletes the distribution's disk (use
    /// [`unregister_keeping_disk`]).
    fn unregister(&mut self, name: &str) -> Result<(), WslError>;
    /// `wsl -d NAME -u USER --exec ARGV...` (without `-u` when `user` is `None`: the
    /// distribution's default user, wsl.conf's), each output line to `line`; after
    /// `timeout` or on Ctrl-C its wsl.exe is killed (the command may live on in the
    /// distribution: the caller terminates it where that matters).
    fn run(
        &mut self,
        name: &str,
        user: Option<&str>,
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
    let mut w = vec![Ignored::Mem.said(&format!("RAMMB={}", plan.ram_mb))];
    w.push(format!(
        "{}; it is made, and not used under WSL",
        Ignored::Swap.said(&plan.swap.file)
    ));
    for img in plan.images.iter().filter(|i| i.role != Role::Root) {
        w.push(format!(
            "{}; it stays its own raw image, not mounted in the distribution",
            Ignored::Image.said(&format!("{} ({})", img.file, img.mount))
        ));
    }
    if plan.tap.is_some() {
        w.push(Ignored::Adapter.said("the TAP adapter"));
    }
    if plan.slirp.as_deref().is_some_and(|s| !s.trim().is_empty()) {
        w.push(Ignored::Slirp.said("the slirp port forwards"));
    }
    if plan.serial.is_some() {
        w.push(Ignored::Serial.said("the serial line"));
    }
    w.push(Ignored::Kernel.said("the kernel and initrd"));
    plan.warnings.extend(w);
    Ok(())
}

/// What of a coLinux machine WSL ignores, and why: the one list behind the plan's
/// warnings ([`adjust`]) and `config check`'s notes ([`config_notes`]). What WSL does
/// use is not here: the root image is the distribution's disk, and the shares (cofsN)
/// are drvfs lines in its fstab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// The guest's RAM (RAMMB, `mem=`).
    Mem,
    /// The swap image.
    Swap,
    /// An image that is not the root (home, another `cobdN=`, `scsiN=`).
    Image,
    /// A network adapter of the host: the TAP adapter, a bridge (`ethN=tuntap`, ...).
    Adapter,
    /// slirp and its port forwards (`ethN=slirp,...`).
    Slirp,
    /// The serial line (`ttysN=`).
    Serial,
    /// The kernel and initrd (`kernel=`, `initrd=`).
    Kernel,
    /// A kernel command-line parameter other than `root=`.
    BootParam,
    /// A PCI device of the host (`pciN=`).
    Pci,
    /// A program colinux-daemon starts with the machine (`execN=`).
    Exec,
    /// coLinux's console window (`cocon=`, `cursor=`, `color=`).
    Console,
    /// How colinux-daemon opens its block devices (`setcobd=`).
    Setcobd,
}

impl Ignored {
    /// Why WSL ignores it, in a few words.
    pub fn why(self) -> &'static str {
        match self {
            Ignored::Mem => {
                "WSL 2 runs every distribution in one VM sized by .wslconfig's `memory=`"
            }
            Ignored::Swap => "WSL 2 has its own swap, .wslconfig's `swap=`",
            Ignored::Image => {
                "WSL attaches only the distribution's own disk; `wsl --mount --vhd` takes VHDX files and needs an administrator"
            }
            Ignored::Adapter => "WSL 2 gives the distribution its own network",
            Ignored::Slirp => {
                "WSL 2 gives the distribution its own network and forwards its localhost ports to Windows itself"
            }
            Ignored::Serial => "a WSL distribution has no serial line",
            Ignored::Kernel => "WSL 2 boots its own kernel",
            Ignored::BootParam => {
                "WSL 2 boots its own kernel with its own command line, .wslconfig's `kernelCommandLine=`"
            }
            Ignored::Pci => "WSL 2 passes no PCI device of this host to a distribution",
            Ignored::Exec => "WSL starts no Windows program with a distribution",
            Ignored::Console => {
                "coLinux's console window; a WSL distribution's console is the terminal it runs in"
            }
            Ignored::Setcobd => "WSL attaches the distribution's disk itself",
        }
    }

    /// `WHAT: no WSL meaning (WHY)`.
    pub fn said(self, what: &str) -> String {
        format!("{what}: no WSL meaning ({})", self.why())
    }
}

/// A `config check` note: a config.txt key WSL ignores, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The line it is on, when the parser placed it.
    pub location: Option<config_txt::Location>,
    /// The key as written (`mem`, `cobd1`, `eth0`, a boot parameter's name).
    pub key: String,
    /// Why WSL ignores it.
    pub ignored: Ignored,
}

/// `FILE:LINE:COL: note: KEY: no WSL meaning (WHY)`, as the checker's other lines.
impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        write!(f, "note: {}", self.ignored.said(&self.key))
    }
}

/// The index of the root's `cobdN`: the one `root=` names, under any monitor's device
/// names (`/dev/cobd0`, `/dev/ubda`, `/dev/vda`, `/dev/sda`, a partition of one) or an
/// alias (`hda1=:cobd0`, `root=/dev/hda1`); else cobd0, coLinux's convention.
fn root_cobd(config: &config_txt::Config) -> u8 {
    let Some(root) = config.root.as_deref() else {
        return 0;
    };
    let named = |dev: &str| {
        root.strip_prefix(dev)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
    };
    let all = [Monitor::Colinux, Monitor::Uml, Monitor::Qemu, Monitor::Wsl];
    config
        .cobd
        .iter()
        .find(|(i, d)| {
            all.iter().any(|m| named(&m.device(**i)))
                || d.alias
                    .as_deref()
                    .is_some_and(|a| root.strip_prefix("/dev/") == Some(a))
        })
        .map_or(0, |(i, _)| *i)
}

/// The notes of `config check` for a config.txt read for the wsl monitor: every key
/// WSL ignores, in file order. `swaps` are the file names of the machine's swap images
/// (from its install-state.json), told apart from its other images; a bare file has
/// none, and its images other than the root are images.
pub fn config_notes(parsed: &config_txt::Parsed, swaps: &[String]) -> Vec<Note> {
    use config_txt::Item;
    let c = &parsed.config;
    let mut notes = Vec::new();
    let mut note = |item: Item, key: String, ignored: Ignored| {
        notes.push(Note {
            location: parsed.location(item).cloned(),
            key,
            ignored,
        });
    };
    if c.kernel.is_some() {
        note(Item::Kernel, "kernel".to_owned(), Ignored::Kernel);
    }
    if c.initrd.is_some() {
        note(Item::Initrd, "initrd".to_owned(), Ignored::Kernel);
    }
    if c.mem.is_some() {
        note(Item::Mem, "mem".to_owned(), Ignored::Mem);
    }
    if c.setcobd.is_some() {
        note(Item::Setcobd, "setcobd".to_owned(), Ignored::Setcobd);
    }
    let root = root_cobd(c);
    for (&n, d) in c.cobd.iter().filter(|(n, _)| **n != root) {
        // The file name, whichever separator the path was written with.
        let file = d.path.rsplit(['/', '\\']).next().unwrap_or(&d.path);
        let swap = swaps.iter().any(|s| s.eq_ignore_ascii_case(file));
        let item = if parsed.location(Item::Cobd(n)).is_some() {
            Item::Cobd(n)
        } else {
            Item::Alias(n)
        };
        note(
            item,
            format!("cobd{n}"),
            if swap { Ignored::Swap } else { Ignored::Image },
        );
    }
    for &n in c.scsi.keys() {
        note(Item::Scsi(n), format!("scsi{n}"), Ignored::Image);
    }
    for (&n, nic) in &c.eth {
        let ignored = match nic {
            config_txt::Nic::Slirp { .. } => Ignored::Slirp,
            _ => Ignored::Adapter,
        };
        note(Item::Eth(n), format!("eth{n}"), ignored);
    }
    for &n in c.pci.keys() {
        note(Item::Pci(n), format!("pci{n}"), Ignored::Pci);
    }
    for &n in c.ttys.keys() {
        note(Item::Ttys(n), format!("ttys{n}"), Ignored::Serial);
    }
    for &n in c.exec.keys() {
        note(Item::Exec(n), format!("exec{n}"), Ignored::Exec);
    }
    for (item, key, set) in [
        (Item::Cocon, "cocon", c.cocon.is_some()),
        (Item::Cursor, "cursor", c.cursor.is_some()),
        (Item::Color, "color", c.color.is_some()),
    ] {
        if set {
            note(item, key.to_owned(), Ignored::Console);
        }
    }
    for (i, p) in c.boot_params.iter().enumerate() {
        let key = p.split_once('=').map_or(p.as_str(), |(k, _)| k);
        note(Item::BootParam(i), key.to_owned(), Ignored::BootParam);
    }
    notes.sort_by_key(|n| {
        (
            n.location.is_none(),
            n.location.as_ref().map(|l| (l.line, l.col)),
        )
    });
    notes
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
    fn config_check_notes_every_key_wsl_ignores_and_not_the_root_or_the_shares() {
        let text = b"kernel=vmlinux\ninitrd=initrd.gz\nmem=64\ncobd0=c:\\m\\root.img\ncobd1=c:\\m\\Swap.img\ncobd2=/m/home.img\neth0=slirp,,tcp:2222:22\neth1=tuntap,tap0\ncofs0=c:\\share\nttys0=COM1\nroot=/dev/cobd0\nro\n";
        let parsed = config_txt::parse(text, "c.txt");
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let notes = config_notes(&parsed, &["swap.img".to_owned()]);
        let got: Vec<(String, Ignored)> =
            notes.iter().map(|n| (n.key.clone(), n.ignored)).collect();
        let want = [
            ("kernel", Ignored::Kernel),
            ("initrd", Ignored::Kernel),
            ("mem", Ignored::Mem),
            ("cobd1", Ignored::Swap),
            ("cobd2", Ignored::Image),
            ("eth0", Ignored::Slirp),
            ("eth1", Ignored::Adapter),
            ("ttys0", Ignored::Serial),
            ("ro", Ignored::BootParam),
        ];
        let want: Vec<(String, Ignored)> =
            want.iter().map(|(k, i)| ((*k).to_owned(), *i)).collect();
        assert_eq!(got, want);
        // Each on its line, in the checker's words.
        assert_eq!(
            notes[2].to_string(),
            format!(
                "c.txt:3:1: note: mem: no WSL meaning ({})",
                Ignored::Mem.why()
            )
        );
        assert!(notes.iter().all(|n| n.location.is_some()));
        // The root is the cobd root= names, under any monitor's device names or an alias.
        for (root, noted) in [
            ("root=/dev/sdb", "cobd0"),
            ("root=/dev/ubdb1", "cobd0"),
            ("hda1=:cobd1\nroot=/dev/hda1", "cobd0"),
            ("root=/dev/vda", "cobd1"),
        ] {
            let text = format!("kernel=k\ncobd0=/m/a.img\ncobd1=/m/b.img\n{root}\n");
            let parsed = config_txt::parse(text.as_bytes(), "c.txt");
            let keys: Vec<String> = config_notes(&parsed, &[])
                .into_iter()
                .filter(|n| n.key.starts_with("cobd"))
                .map(|n| n.key)
                .collect();
            assert_eq!(keys, vec![noted.to_owned()], "{root}");
        }
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
