//! What the installer's end-to-end suites share: the binary, exit codes as a POSIX
//! parent sees them, small install sizes, and the independent readers they judge
//! machines with (debugfs, sha256sum, `status --json`).
//!
//! Each test binary uses a part of this module, hence the allowance for unused items.
#![allow(dead_code)]

pub mod wine;

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
    "RAMMB=32",
    "--set",
    "ROOTMB=64",
    "--set",
    "HOMEMB=32",
    "--set",
    "SWAPMB=64",
];

/// `colinux-setup ARGS` with no standard input and none of the test-only hooks set.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
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
