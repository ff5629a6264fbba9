//! What the installer's end-to-end suites share: the binary, exit codes as a POSIX
//! parent sees them, small install sizes, the monitor guests boot on here, and the
//! independent readers they judge machines with (debugfs, sha256sum, `status --json`).
//!
//! Guests boot on the monitor this host offers, never an assumed one: [`host`] is the
//! product's own probe (`facts --json` with the default kit's kernels, made once per
//! target folder: `e2e_tests::host_monitor`), User-mode Linux where it runs guests, else
//! QEMU with KVM, else QEMU's own emulation. [`install_cmd`] and [`host_cmd`] give a run
//! that monitor (`--kit` with its machine files, `--monitor`, and QEMU's accelerator in
//! the environment), [`dev`] names the guest's disks as that monitor does, and [`secs`]
//! scales a bound measured with UML for it (ten times for TCG). Where no monitor works,
//! [`host`] fails the test with the probe's reasons.
//!
//! Each test binary uses a part of this module, hence the allowance for unused items.
#![allow(dead_code)]

pub mod wine;

use e2e_tests::HostMonitor;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_colinux-setup");
/// 1603 & 0xff.
pub const FAILED: i32 = 1603 & 0xff;
/// 1602 & 0xff.
pub const CANCELLED: i32 = 1602 & 0xff;
/// 1618 & 0xff.
pub const BUSY: i32 = 1618 & 0xff;
/// Small sizes, and no first boot (tested in boot_cli.rs): enough for a machine that
/// installs in well under a second.
pub const SMALL: &[&str] = &[
    "--set",
    "NOFIRSTBOOT=1",
    "--set",
    "RAMMB=128",
    "--set",
    "ROOTMB=64",
    "--set",
    "HOMEMB=32",
    "--set",
    "SWAPMB=64",
];

/// The monitor guests boot on here; a failure with the probe's reasons when none works.
pub fn host() -> &'static HostMonitor {
    e2e_tests::host_monitor().unwrap_or_else(|e| panic!("{e:#}"))
}

/// `cmd(args)` with the environment of the host's monitor (QEMU's accelerator, so the
/// run's own probe goes straight to the one that works here).
pub fn host_cmd(args: &[&str]) -> Command {
    host_cmd_on(host(), args)
}

/// `cmd(args)` with the environment of monitor `m`.
pub fn host_cmd_on(m: &HostMonitor, args: &[&str]) -> Command {
    let mut c = cmd(args);
    for (k, v) in m.env() {
        c.env(k, v);
    }
    c
}

/// `install --unattended --prefix PREFIX` on the host's monitor (`--kit` with its
/// machine files, `--monitor`), then `extra`; with [`host_cmd`]'s environment. A
/// `--kit` or `--monitor` in `extra` is the test's own and replaces the host's.
pub fn install_cmd(prefix: &Path, extra: &[&str]) -> Command {
    install_cmd_on(host(), prefix, extra)
}

/// [`install_cmd`] on monitor `m`.
pub fn install_cmd_on(m: &HostMonitor, prefix: &Path, extra: &[&str]) -> Command {
    let host_args = m.install_args();
    let mut args = vec!["install", "--unattended", "--prefix", p(prefix)];
    for pair in host_args.chunks(2) {
        if !extra.contains(&pair[0].as_str()) {
            args.extend(pair.iter().map(String::as_str));
        }
    }
    args.extend_from_slice(extra);
    host_cmd_on(m, &args)
}

/// The install options of the host's monitor (`--kit KIT --monitor M`), for argument
/// lists built by hand.
pub fn host_args() -> Vec<&'static str> {
    static ARGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ARGS.get_or_init(|| host().install_args())
        .iter()
        .map(String::as_str)
        .collect()
}

/// A bound in seconds measured with User-mode Linux, for the host's monitor.
pub fn secs(uml: u64) -> u64 {
    host().timeout(uml)
}

/// The guest's device of the machine's disk `index` (`/dev/ubda`, `/dev/vda`, …).
pub fn dev(index: u8) -> String {
    host().dev(index)
}

/// What the guest kernel prints when busybox's `poweroff` ends it on monitor `m`: UML
/// halts, a PC (QEMU) powers down.
pub fn powered_off(m: &HostMonitor) -> &'static str {
    if m.is_uml() {
        "reboot: System halted"
    } else {
        "reboot: Power down"
    }
}

/// Hard-links (or copies) monitor `m`'s machine files (its kit: a kernel, and QEMU's
/// initramfs) into the folder of a test's own kit, at the same paths, before
/// [`kit_init`] lists them: the kit then carries what the machine boots from.
pub fn add_machine_files(kit: &Path, m: &HostMonitor) {
    let from = m.install_kit();
    let toml = std::fs::read_to_string(from.join("kit.toml")).expect("the monitor's kit.toml");
    for rel in toml
        .lines()
        .filter_map(|l| l.strip_prefix("path = \""))
        .map(|p| p.trim_end_matches('"'))
    {
        let to = kit.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        if std::fs::hard_link(from.join(rel), &to).is_err() {
            std::fs::copy(from.join(rel), &to).expect("copy a machine file");
        }
    }
}

/// Copies monitor `m`'s machine files into an installed machine's folder, beside its
/// config.txt (`vmlinuz` and `initrd.img`, or `linux.uml`), where `boot --monitor`
/// looks for the other monitor's kernel.
pub fn place_machine_files(prefix: &Path, m: &HostMonitor) {
    let kit = m.install_kit();
    let toml = std::fs::read_to_string(kit.join("kit.toml")).expect("the monitor's kit.toml");
    for rel in toml
        .lines()
        .filter_map(|l| l.strip_prefix("path = \""))
        .map(|p| p.trim_end_matches('"'))
    {
        let name = Path::new(rel).file_name().expect("a file name");
        std::fs::copy(kit.join(rel), prefix.join(name)).expect("copy a machine file");
    }
}

/// Where `monitor` runs no guests here ([`HostMonitor::other`] gave `why`): `o`, an
/// install or boot on it, was refused (1603), naming the monitor and the probe's cause;
/// an install's `prefix` was not created.
pub fn assert_refused_here(o: &Output, prefix: Option<&Path>, monitor: &str, why: &str) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(FAILED), "{t}");
    let title = match monitor {
        "uml" => "User-mode Linux",
        "qemu" => "QEMU",
        other => other,
    };
    assert!(
        t.contains(&format!("MONITOR={monitor}")),
        "the refusal names {monitor}:\n{t}"
    );
    assert!(
        t.contains(&format!("{title} cannot run a guest on this host")),
        "{t}"
    );
    // The probe's cause, as `facts` found it (its first clause: timings differ per run).
    let cause = why
        .split_once(": ")
        .map_or(why, |(_, r)| r)
        .split(['(', ';'])
        .next()
        .unwrap_or(why)
        .trim();
    assert!(
        t.contains(cause),
        "`{cause}` (the probe's reason) not in:\n{t}"
    );
    if let Some(prefix) = prefix {
        assert!(
            !prefix.exists(),
            "a refused install created {}",
            prefix.display()
        );
    }
}

/// `colinux-setup ARGS` with no standard input and none of the test-only hooks set; the
/// list of installed machines (`XDG_STATE_HOME`) is the tests' own, never the user's.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
        .env(
            "XDG_STATE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("state-home"),
        )
        .env_remove("COLINUX_SETUP_TEST_PAUSE_AT")
        .env_remove("COLINUX_SETUP_TEST_FAIL_AT")
        .env_remove("COLINUX_SETUP_TEST_FIRST_BOOT");
    c
}

/// Exit code and both streams, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A path as the `&str` an argument list takes.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A temporary folder named for the suite, after checking the oracles are installed.
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    e2e_tests::require_tools().expect("tools");
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir")
}

/// `debugfs -R REQUEST IMAGE`'s standard output.
pub fn debugfs(image: &Path, request: &str) -> String {
    let o = Command::new(e2e_tests::tools::tool("debugfs").expect("debugfs"))
        .arg("-R")
        .arg(request)
        .arg(image)
        .output()
        .expect("debugfs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The sha256 of a file, by the host's sha256sum.
pub fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(o.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `status --json` of a prefix.
pub fn status_json(prefix: &Path) -> serde_json::Value {
    let o = cmd(&["status", "--json", "--prefix", p(prefix)])
        .output()
        .expect("status");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// Writes `DIR/kit.toml` for a kit folder with `colinux-setup kit init DIR EXTRA...`
/// (every file listed with its size and SHA-256), as a kit author would.
pub fn kit_init(dir: &Path, extra: &[&str]) {
    let mut args = vec!["kit", "init", p(dir), "--force"];
    args.extend_from_slice(extra);
    let o = cmd(&args).output().expect("run kit init");
    assert_eq!(
        o.status.code(),
        Some(0),
        "kit init {}\n{}",
        dir.display(),
        text(&o)
    );
}

/// A running `boot` (or any command) with its console on pipes: what it prints is
/// gathered as it comes, lines can be typed into it, and it is killed when dropped (a
/// failed test leaves no guest running).
pub struct Booting {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Booting {
    /// Starts `c` with piped standard input, output and error.
    pub fn spawn(mut c: Command) -> Booting {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = Arc::new(Mutex::new(Vec::new()));
        for mut r in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            });
        }
        Booting { child, out }
    }

    /// Everything printed so far (standard output and error, interleaved).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().expect("lock")).into_owned()
    }

    /// Waits until `needle` was printed; fails after `secs` or when the process ended.
    pub fn wait_for(&mut self, needle: &str, secs: u64) {
        let start = Instant::now();
        while !self.text().contains(needle) {
            if start.elapsed() > Duration::from_secs(secs)
                || self.child.try_wait().ok().flatten().is_some()
            {
                let _ = self.child.kill();
                panic!("`{needle}` did not come in {secs} s:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id (to send it a signal).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Types `line` on the console.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.flush().expect("flush");
    }

    /// Waits for the end (at most `secs`): the exit code and everything printed.
    pub fn wait(mut self, secs: u64) -> (Option<i32>, String) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(200));
                return (st.code(), self.text());
            }
            if start.elapsed() > Duration::from_secs(secs) {
                let _ = self.child.kill();
                panic!("it did not end in {secs} s:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Booting {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `c` to its end and returns what it printed, as `Command::output` does; a run
/// still going after `secs` is killed and fails the test (a watchdog for a command that
/// would wait forever, e.g. on a FIFO: not a measure of speed).
pub fn output_within(mut c: Command, secs: u64) -> Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipes = Vec::new();
    for mut r in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        pipes.push(std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        }));
    }
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {secs} s: it waits on its input");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = pipes.into_iter().map(|t| t.join().expect("reader thread"));
    Output {
        status,
        stdout: out.next().unwrap_or_default(),
        stderr: out.next().unwrap_or_default(),
    }
}

/// Makes a FIFO (named pipe) at `path`, by the host's mkfifo.
pub fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}
