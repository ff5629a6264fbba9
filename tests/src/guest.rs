//! Boots a real Linux kernel on the monitor this host offers ([`crate::host_monitor`]:
//! User-mode Linux where it runs guests, else QEMU with KVM, else QEMU's own TCG
//! emulation) to run a shell script against disk images: the "a real kernel mounts the
//! images" oracle.
//!
//! The guest's userland is the default kit's static busybox (`tools/busybox`) with its
//! applet links, and an `/init` that mounts proc/sys/dev, loads the kernel's modules
//! named in `/lib/modules/load-order` (QEMU's virtio drivers; UML has none), waits for
//! the disks, runs the script with `sh -e`, prints a success marker only when the
//! script exits 0, syncs and powers off with `poweroff -f`. Disks are attached in order;
//! the guest names them [`GuestRun::dev`] (`/dev/ubda`, … in UML; `/dev/vda`, … in
//! QEMU), and scripts and assertions use those names. The console (kernel messages and
//! the script's output) is captured with no terminal and no standard input; a hard
//! timeout kills the monitor's whole process group.
//!
//! - **User-mode Linux**: the kit's `uml/linux.uml`, the root a host folder mounted over
//!   hostfs, disks `ubdN=` (`ubdNr=` read-only), console on UML's stdout; its memory
//!   file and `uml_dir` in the run's temp dir. Debian 12's 6.1um4 boots a script that
//!   mounts an image in about 2 s.
//! - **QEMU**: the kit's `qemu/vmlinuz`, and an initrd made of the kit's `initrd.img`
//!   (gzip; busybox, the virtio modules and their load order) followed by a second,
//!   uncompressed `newc` archive ([`crate::cpio`]) with this run's `/init`, script, files
//!   and applet links: the kernel unpacks both, the later entries win. Disks are virtio
//!   drives (`readonly=on` for read-only ones), the console is the serial port on stdio.
//!   The same boot takes about 8 s with TCG on an idle machine.
//!
//! Timeouts are given as measured for UML and multiplied by the monitor's slowdown
//! ([`HostMonitor::timeout`]: ten for TCG).
//!
//! The exact command lines, for a root folder `R`, a temp dir `T`, an initrd `I`, one
//! disk and the accelerator `A` the probe found:
//!
//! ```text
//! TMPDIR=T linux.uml mem=128M root=/dev/root rootfstype=hostfs rootflags=R rw init=/init \
//!     con=null con0=null,fd:1 uml_dir=T umid=ID ubd0=DISK.img    # ubd0r= for read-only
//! qemu-system-x86_64 -accel A -m 128 -nographic -no-reboot -nic none -kernel vmlinuz \
//!     -initrd I -append "console=ttyS0 panic=-1 rdinit=/init" \
//!     -drive file=DISK.img,format=raw,if=virtio,index=0             # ,readonly=on
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

use crate::cpio::{Cpio, pad4};
use crate::host_monitor::{HostMonitor, host_monitor};
use crate::tools::tool;

/// Printed by `/init` after the script exited 0.
pub const SUCCESS_MARKER: &str = "E2E-GUEST-SCRIPT-OK";
/// Printed by `/init` after the script failed, followed by ` rc=N`.
pub const FAILURE_MARKER: &str = "E2E-GUEST-SCRIPT-FAILED";
/// Printed by `/init` before the script, followed by the kernel release (`uname -r`).
pub const KERNEL_MARKER: &str = "E2E-GUEST-KERNEL";

/// The least memory Debian's cloud kernel unpacks its initramfs in (it stops silently
/// at 64 MB).
const QEMU_MIN_MEM_MB: u32 = 128;

/// A guest boot to run: the monitor, disks, memory, the script, files for the guest
/// root, a timeout.
#[derive(Clone, Debug)]
pub struct GuestRun {
    monitor: HostMonitor,
    disks: Vec<(PathBuf, bool)>,
    mem_mb: u32,
    script: String,
    timeout_secs: u64,
    files: Vec<(PathBuf, Vec<u8>)>,
    kernel_args: Vec<String>,
}

/// What a guest boot produced.
#[derive(Clone, Debug)]
pub struct GuestOutput {
    /// The engine it ran on: `uml`, `qemu/kvm` or `qemu/tcg`.
    pub engine: String,
    /// Everything the monitor printed: kernel messages, the script's stdout and stderr.
    pub console: String,
    /// The script exited 0 (the success marker line was printed) and the monitor
    /// exited 0 before the timeout.
    pub ok: bool,
    /// The timeout expired and the process group was killed.
    pub timed_out: bool,
    /// The monitor's exit code (`None` when killed by a signal).
    pub exit_code: Option<i32>,
    /// The kernel release the guest reported (`uname -r`), if it got that far.
    pub kernel: Option<String>,
    /// Wall time of the boot.
    pub elapsed: Duration,
}

impl GuestOutput {
    /// Returns `self` when [`ok`](Self::ok), else an error that includes the console.
    pub fn require_ok(self) -> Result<Self> {
        if self.ok {
            return Ok(self);
        }
        bail!(
            "the guest failed on {} (timed out: {}, exit code {:?}); console:\n{}",
            self.engine,
            self.timed_out,
            self.exit_code,
            self.console
        )
    }
}

impl GuestRun {
    /// A boot on this host's monitor (an error, with the probe's reasons, when none
    /// works): no disks, 128 MiB of guest memory, an empty script, a 60 s timeout (for
    /// UML; scaled for the monitor).
    pub fn new() -> Result<Self> {
        Ok(Self::on(host_monitor()?))
    }

    /// A boot on `monitor`.
    pub fn on(monitor: &HostMonitor) -> Self {
        Self {
            monitor: monitor.clone(),
            disks: Vec::new(),
            mem_mb: 128,
            script: String::new(),
            timeout_secs: 60,
            files: Vec::new(),
            kernel_args: Vec::new(),
        }
    }

    /// The monitor it boots on.
    pub fn monitor(&self) -> &HostMonitor {
        &self.monitor
    }

    /// The guest's device of disk `index` (the `index`-th [`Self::disk`]).
    pub fn dev(&self, index: u8) -> String {
        self.monitor.dev(index)
    }

    /// The kernel's name of disk `index` (`ubda`, `vda`), as its messages print it.
    pub fn dev_name(&self, index: u8) -> String {
        self.monitor.dev_name(index)
    }

    /// Attaches the next disk, read-write when `rw`, else read-only.
    pub fn disk(mut self, path: impl Into<PathBuf>, rw: bool) -> Self {
        self.disks.push((path.into(), rw));
        self
    }

    /// Guest memory in MiB (QEMU gets at least 128).
    pub fn mem_mb(mut self, mb: u32) -> Self {
        self.mem_mb = mb;
        self
    }

    /// The shell script (busybox `sh`, run with `-e`) the guest runs as root.
    pub fn script(mut self, script: impl Into<String>) -> Self {
        self.script = script.into();
        self
    }

    /// Hard timeout for the whole boot, in seconds as measured for UML; the run waits
    /// that times the monitor's slowdown.
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout_secs = secs;
        self
    }

    /// Puts a file into the guest's root at `guest_path` (absolute, e.g.
    /// `/manifest.sha256`) before the boot.
    pub fn file(mut self, guest_path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((guest_path.into(), contents.into()));
        self
    }

    /// Appends an argument to the guest kernel's command line.
    pub fn kernel_arg(mut self, arg: impl Into<String>) -> Self {
        self.kernel_args.push(arg.into());
        self
    }

    /// Boots the guest and waits for it to power off or for the timeout.
    /// Fails only when the boot cannot be set up; judge the guest with [`GuestOutput::ok`].
    pub fn run(self) -> Result<GuestOutput> {
        let tmp = tempfile::Builder::new()
            .prefix("e2e-guest-")
            .tempdir()
            .context("temp dir for a guest boot")?;
        let mut disks = Vec::new();
        for (disk, rw) in &self.disks {
            let disk = std::path::absolute(disk)?;
            if !disk.is_file() {
                bail!("guest disk {} does not exist", disk.display());
            }
            disks.push((disk, *rw));
        }
        let cmd = if self.monitor.is_uml() {
            self.uml_command(tmp.path(), &disks)?
        } else {
            self.qemu_command(tmp.path(), &disks)?
        };
        let timeout = Duration::from_secs(self.monitor.timeout(self.timeout_secs));
        let (console, timed_out, exit_code, elapsed) = run_group(cmd, timeout)?;
        let kernel = console.lines().find_map(|l| {
            l.strip_prefix(KERNEL_MARKER)
                .map(|rest| rest.trim().to_string())
        });
        let script_ok = console.lines().any(|l| l.trim_end() == SUCCESS_MARKER);
        Ok(GuestOutput {
            engine: self.monitor.name(),
            ok: script_ok && !timed_out && exit_code == Some(0),
            console,
            timed_out,
            exit_code,
            kernel,
            elapsed,
        })
    }

    /// `/init`: the same for both monitors (what it does not need is a no-op there).
    fn init(&self) -> String {
        let devs: Vec<String> = (0..self.disks.len())
            .map(|i| self.dev(u8::try_from(i).unwrap_or(25)))
            .collect();
        format!(
            r#"#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs dev /dev
# QEMU's kernel has its virtio drivers as modules (the kit's initramfs lists them).
if [ -f /lib/modules/load-order ]; then
  for m in $(cat /lib/modules/load-order); do
    insmod /lib/modules/$m.ko || echo "E2E-GUEST: cannot load module $m"
  done
fi
for d in {devs}; do
  i=0
  while [ ! -b $d ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  [ -b $d ] || echo "E2E-GUEST: no disk $d"
done
echo "{KERNEL_MARKER} $(uname -r)"
cd /
sh -e /script.sh
rc=$?
if [ "$rc" = 0 ]; then echo "{SUCCESS_MARKER}"; else echo "{FAILURE_MARKER} rc=$rc"; fi
sync
poweroff -f
"#,
            devs = devs.join(" ")
        )
    }

    /// The guest's files by path (without the leading `/`): /init, /script.sh, the
    /// caller's files.
    fn root_files(&self) -> Result<Vec<(String, u32, Vec<u8>)>> {
        let mut v = vec![
            ("init".to_owned(), 0o755, self.init().into_bytes()),
            (
                "script.sh".to_owned(),
                0o644,
                self.script.clone().into_bytes(),
            ),
        ];
        for (guest_path, contents) in &self.files {
            let rel = guest_path
                .strip_prefix("/")
                .with_context(|| format!("guest path {} must be absolute", guest_path.display()))?;
            let rel = rel
                .to_str()
                .with_context(|| format!("guest path {} is not UTF-8", guest_path.display()))?;
            v.push((rel.to_owned(), 0o644, contents.clone()));
        }
        Ok(v)
    }

    fn uml_command(&self, tmp: &Path, disks: &[(PathBuf, bool)]) -> Result<Command> {
        let linux = self.monitor.uml_kernel();
        let root = tmp.join("root");
        let uml_tmp = tmp.join("tmp");
        std::fs::create_dir_all(&uml_tmp)?;
        for d in ["bin", "proc", "sys", "dev", "mnt", "tmp", "etc"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        let busybox = self.monitor.busybox();
        std::fs::copy(&busybox, root.join("bin/busybox"))
            .with_context(|| format!("copying {}", busybox.display()))?;
        for applet in applets(&busybox)? {
            symlink("busybox", root.join("bin").join(applet))?;
        }
        for (rel, mode, contents) in self.root_files()? {
            let host = root.join(rel);
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&host, contents)
                .with_context(|| format!("writing {}", host.display()))?;
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))?;
        }

        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let umid = format!(
            "e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new(&linux);
        cmd.arg(format!("mem={}M", self.mem_mb))
            .args(["root=/dev/root", "rootfstype=hostfs"])
            .arg(format!("rootflags={}", uml_path(&root)?))
            .args(["rw", "init=/init", "con=null", "con0=null,fd:1"])
            .arg(format!("uml_dir={}", uml_path(&uml_tmp)?))
            .arg(format!("umid={umid}"));
        for (i, (disk, rw)) in disks.iter().enumerate() {
            let flag = if *rw { "" } else { "r" };
            cmd.arg(format!("ubd{i}{flag}={}", uml_path(disk)?));
        }
        cmd.args(&self.kernel_args)
            .env("TMPDIR", &uml_tmp)
            .current_dir(tmp);
        Ok(cmd)
    }

    fn qemu_command(&self, tmp: &Path, disks: &[(PathBuf, bool)]) -> Result<Command> {
        let qemu = tool("qemu-system-x86_64")?;
        let mut initrd = std::fs::read(self.monitor.qemu_initrd())
            .with_context(|| format!("reading {}", self.monitor.qemu_initrd().display()))?;
        // The next archive must start on a 4-byte boundary of the whole initrd.
        pad4(&mut initrd);
        initrd.extend(self.overlay()?);
        let initrd_path = tmp.join("initrd.img");
        std::fs::write(&initrd_path, initrd)?;
        let accel = self.monitor.accel.as_deref().unwrap_or("tcg");
        let mut append = vec![
            "console=ttyS0".to_owned(),
            "panic=-1".into(),
            "rdinit=/init".into(),
        ];
        append.extend(self.kernel_args.iter().cloned());
        let mut cmd = Command::new(qemu);
        cmd.args(["-accel", accel, "-m"])
            .arg(self.mem_mb.max(QEMU_MIN_MEM_MB).to_string())
            .args(["-nographic", "-no-reboot", "-nic", "none", "-kernel"])
            .arg(qemu_path(&self.monitor.qemu_kernel())?)
            .arg("-initrd")
            .arg(qemu_path(&initrd_path)?)
            .arg("-append")
            .arg(append.join(" "));
        for (i, (disk, rw)) in disks.iter().enumerate() {
            let ro = if *rw { "" } else { ",readonly=on" };
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio,index={i}{ro}",
                qemu_path(disk)?
            ));
        }
        cmd.current_dir(tmp);
        Ok(cmd)
    }

    /// The second initramfs archive: folders, busybox and its applet links, /init, the
    /// script and the caller's files.
    fn overlay(&self) -> Result<Vec<u8>> {
        let mut c = Cpio::new();
        let mut dirs: Vec<String> = ["bin", "proc", "sys", "dev", "mnt", "tmp", "etc"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let files = self.root_files()?;
        for (rel, _, _) in &files {
            let mut parent = Path::new(rel).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                dirs.push(p.to_string_lossy().into_owned());
                parent = p.parent();
            }
        }
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            c.dir(d)?;
        }
        let busybox = self.monitor.busybox();
        let bytes =
            std::fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?;
        c.file("bin/busybox", 0o755, &bytes)?;
        for applet in applets(&busybox)? {
            c.symlink(&format!("bin/{applet}"), "busybox")?;
        }
        for (rel, mode, contents) in &files {
            c.file(rel, *mode, contents)?;
        }
        c.finish()
    }
}

/// busybox's applets (`busybox --list`), but busybox itself.
fn applets(busybox: &Path) -> Result<Vec<String>> {
    let list = Command::new(busybox)
        .arg("--list")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{} --list", busybox.display()))?;
    Ok(String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_owned)
        .collect())
}

/// Starts `cmd` in its own process group with its console on one pipe and no standard
/// input; waits for its end or `timeout` (then kills the group). Returns the console,
/// whether it timed out, the exit code and the wall time.
fn run_group(mut cmd: Command, timeout: Duration) -> Result<(String, bool, Option<i32>, Duration)> {
    let (reader, writer) = std::io::pipe().context("pipe for the guest console")?;
    cmd.stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))?;
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
        if start.elapsed() >= timeout {
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
    Ok((console, timed_out, status.code(), elapsed))
}

/// UML splits its arguments on `,` and `=`; refuse paths it would misread.
fn uml_path(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))?;
    if s.contains([',', '=', ' ', ':']) {
        bail!("path {s:?} contains a character UML cannot take in an argument");
    }
    Ok(s.to_string())
}

/// QEMU splits `-drive` options on `,`; refuse paths it would misread.
fn qemu_path(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))?;
    if s.contains(',') {
        bail!("path {s:?} contains a comma, which QEMU's options cannot take");
    }
    Ok(s.to_string())
}
