//! Boots a real Linux kernel in User-mode Linux (Debian package `user-mode-linux`,
//! `/usr/bin/linux.uml`) to run a shell script against disk images.
//!
//! The guest's root filesystem is a host folder made in a temp dir and mounted over
//! hostfs: a static busybox (`busybox-static`) as `/bin/busybox` with its applet links, and
//! an `/init` that mounts proc/sys/dev, runs the script with `sh -e`, prints a success
//! marker only when the script exits 0, syncs and powers off with `poweroff -f`.
//!
//! Disks are attached in order as `ubd0`, `ubd1`, … (guest `/dev/ubda`, `/dev/ubdb`, …).
//! The console (kernel messages and the script's output) is captured from UML's stdout
//! and stderr, with no terminal and no standard input (`con=null con0=null,fd:1`). UML's
//! memory file and its `uml_dir` live in the run's temp dir (`TMPDIR`). A hard timeout
//! kills UML's whole process group.
//!
//! Measured here with Debian 12's user-mode-linux 6.1um4: the guest reports kernel
//! `6.1.176`, it mounts ext2, ext3 and ext4 (all built in, `ext3` is served by the ext4
//! driver) and swaps on an `mkswap` image; a boot that mounts an image and powers off
//! takes about 2 s.
//!
//! The exact command line, for a root folder `R`, a temp dir `T` and one disk:
//!
//! ```text
//! TMPDIR=T linux.uml mem=128M root=/dev/root rootfstype=hostfs rootflags=R rw init=/init \
//!     con=null con0=null,fd:1 uml_dir=T umid=ID ubd0=DISK.img    # ubd0r= for read-only
//! ```

use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tools::tool;

/// Printed by `/init` after the script exited 0.
pub const SUCCESS_MARKER: &str = "E2E-UML-SCRIPT-OK";
/// Printed by `/init` after the script failed, followed by ` rc=N`.
pub const FAILURE_MARKER: &str = "E2E-UML-SCRIPT-FAILED";
/// Printed by `/init` before the script, followed by the kernel release (`uname -r`).
pub const KERNEL_MARKER: &str = "E2E-UML-KERNEL";

/// A UML boot to run: disks, memory, the script, files for the guest root, a timeout.
#[derive(Clone, Debug)]
pub struct UmlRun {
    disks: Vec<(PathBuf, bool)>,
    mem_mb: u32,
    script: String,
    timeout: Duration,
    files: Vec<(PathBuf, Vec<u8>)>,
    kernel_args: Vec<String>,
}

/// What a UML boot produced.
#[derive(Clone, Debug)]
pub struct UmlOutput {
    /// Everything UML printed: kernel messages, the script's stdout and stderr.
    pub console: String,
    /// The script exited 0 (the success marker line was printed) and UML exited 0
    /// before the timeout.
    pub ok: bool,
    /// The timeout expired and the process group was killed.
    pub timed_out: bool,
    /// UML's exit code (`None` when killed by a signal).
    pub exit_code: Option<i32>,
    /// The kernel release the guest reported (`uname -r`), if it got that far.
    pub kernel: Option<String>,
    /// Wall time of the boot.
    pub elapsed: Duration,
}

impl UmlOutput {
    /// Returns `self` when [`ok`](Self::ok), else an error that includes the console.
    pub fn require_ok(self) -> Result<Self> {
        if self.ok {
            return Ok(self);
        }
        bail!(
            "UML guest failed (timed out: {}, exit code {:?}); console:\n{}",
            self.timed_out,
            self.exit_code,
            self.console
        )
    }
}

impl Default for UmlRun {
    fn default() -> Self {
        Self::new()
    }
}

impl UmlRun {
    /// No disks, 128 MiB of guest memory, an empty script, a 60 s timeout.
    pub fn new() -> Self {
        Self {
            disks: Vec::new(),
            mem_mb: 128,
            script: String::new(),
            timeout: Duration::from_secs(60),
            files: Vec::new(),
            kernel_args: Vec::new(),
        }
    }

    /// Attaches the next disk (`ubd0`, `ubd1`, …; guest `/dev/ubda`, `/dev/ubdb`, …),
    /// read-write when `rw`, else read-only (`ubdNr=`).
    pub fn disk(mut self, path: impl Into<PathBuf>, rw: bool) -> Self {
        self.disks.push((path.into(), rw));
        self
    }

    /// Guest memory in MiB.
    pub fn mem_mb(mut self, mb: u32) -> Self {
        self.mem_mb = mb;
        self
    }

    /// The shell script (busybox `sh`, run with `-e`) the guest runs as root.
    pub fn script(mut self, script: impl Into<String>) -> Self {
        self.script = script.into();
        self
    }

    /// Hard timeout in seconds for the whole boot.
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// Puts a file into the guest's root folder at `guest_path` (absolute, e.g.
    /// `/manifest.sha256`) before the boot.
    pub fn file(mut self, guest_path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((guest_path.into(), contents.into()));
        self
    }

    /// Appends an argument to the UML kernel command line (e.g. `eth0=slirp`).
    pub fn kernel_arg(mut self, arg: impl Into<String>) -> Self {
        self.kernel_args.push(arg.into());
        self
    }

    /// Boots UML and waits for it to power off or for the timeout.
    /// Fails only when the boot cannot be set up; judge the guest with [`UmlOutput::ok`].
    pub fn run(self) -> Result<UmlOutput> {
        let linux = tool("linux.uml")?;
        let busybox = tool("busybox")?;
        let tmp = tempfile::Builder::new()
            .prefix("e2e-uml-")
            .tempdir()
            .context("temp dir for a UML boot")?;
        let root = tmp.path().join("root");
        let uml_tmp = tmp.path().join("tmp");
        std::fs::create_dir_all(&uml_tmp)?;
        make_root(&root, &busybox, &self.script)?;
        for (guest_path, contents) in &self.files {
            let rel = guest_path
                .strip_prefix("/")
                .with_context(|| format!("guest path {} must be absolute", guest_path.display()))?;
            let host = root.join(rel);
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&host, contents)
                .with_context(|| format!("writing {}", host.display()))?;
        }

        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let umid = format!(
            "e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new(linux);
        cmd.arg(format!("mem={}M", self.mem_mb))
            .args(["root=/dev/root", "rootfstype=hostfs"])
            .arg(format!("rootflags={}", path_arg(&root)?))
            .args(["rw", "init=/init", "con=null", "con0=null,fd:1"])
            .arg(format!("uml_dir={}", path_arg(&uml_tmp)?))
            .arg(format!("umid={umid}"));
        for (i, (disk, rw)) in self.disks.iter().enumerate() {
            let disk = std::path::absolute(disk)?;
            if !disk.is_file() {
                bail!("UML disk {} does not exist", disk.display());
            }
            let flag = if *rw { "" } else { "r" };
            cmd.arg(format!("ubd{i}{flag}={}", path_arg(&disk)?));
        }
        cmd.args(&self.kernel_args);
        let (reader, writer) = std::io::pipe().context("pipe for the UML console")?;
        cmd.env("TMPDIR", &uml_tmp)
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);

        let start = Instant::now();
        let mut child = cmd.spawn().context("starting linux.uml")?;
        // Close our copies of the pipe's write end, or the reader never sees EOF.
        drop(cmd);
        let buf = Arc::new(Mutex::new(Vec::new()));
        let reader_thread = {
            let buf = Arc::clone(&buf);
            let mut reader = reader;
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = reader.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut b) = buf.lock() {
                        b.extend_from_slice(&chunk[..n]);
                    }
                }
            })
        };

        let pgid = rustix::process::Pid::from_child(&child);
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if start.elapsed() >= self.timeout {
                timed_out = true;
                // The leader is not reaped yet, so the group id is still ours.
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = start.elapsed();
        // UML's helpers exit with it; give the reader a moment to drain the pipe.
        let drain_deadline = Instant::now() + Duration::from_secs(3);
        while !reader_thread.is_finished() && Instant::now() < drain_deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if reader_thread.is_finished() {
            let _ = reader_thread.join();
        }
        let bytes = buf.lock().map(|b| b.clone()).unwrap_or_default();
        let console = String::from_utf8_lossy(&bytes).replace('\r', "");

        let kernel = console.lines().find_map(|l| {
            l.strip_prefix(KERNEL_MARKER)
                .map(|rest| rest.trim().to_string())
        });
        let script_ok = console.lines().any(|l| l.trim_end() == SUCCESS_MARKER);
        let exit_code = status.code();
        Ok(UmlOutput {
            ok: script_ok && !timed_out && exit_code == Some(0),
            console,
            timed_out,
            exit_code,
            kernel,
            elapsed,
        })
    }
}

/// UML splits its arguments on `,` and `=`; refuse paths it would misread.
fn path_arg(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))?;
    if s.contains([',', '=', ' ', ':']) {
        bail!("path {s:?} contains a character UML cannot take in an argument");
    }
    Ok(s.to_string())
}

/// Creates the guest root folder: busybox and its applets, mount points, /init, /script.sh.
fn make_root(root: &Path, busybox: &Path, script: &str) -> Result<()> {
    for d in ["bin", "proc", "sys", "dev", "mnt", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let bin = root.join("bin");
    std::fs::copy(busybox, bin.join("busybox"))
        .with_context(|| format!("copying {}", busybox.display()))?;
    let list = Command::new(busybox)
        .arg("--list")
        .stdin(Stdio::null())
        .output()
        .context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", bin.join(applet))?;
    }
    let init = format!(
        r#"#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs dev /dev
echo "{KERNEL_MARKER} $(uname -r)"
cd /
sh -e /script.sh
rc=$?
if [ "$rc" = 0 ]; then echo "{SUCCESS_MARKER}"; else echo "{FAILURE_MARKER} rc=$rc"; fi
sync
poweroff -f
"#
    );
    std::fs::write(root.join("init"), init)?;
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(root.join("script.sh"), script)?;
    Ok(())
}
