//! A machine's life after the install (issue 21 item 10): `list`, `start`, `stop`,
//! `console`, `shell`, end to end through the binary with a real guest on the monitor
//! this host offers (`common::host`: User-mode Linux, else QEMU with KVM, else QEMU's
//! TCG; bounds measured with UML are scaled by `common::secs`).
//!
//! Every test has its own list of machines (`XDG_STATE_HOME` in its temporary folder),
//! never the user's. A test that started a machine stops it when it ends, however it
//! ends ([`Running`]), so a failed test leaves no guest behind.

use crate::common;

use common::{BUSY, FAILED, SMALL, cmd, debugfs, host, host_cmd, install_cmd, p, secs, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// A test's folder: the machine's prefix and its own list of machines.
struct Fixture {
    _dir: tempfile::TempDir,
    prefix: PathBuf,
    state: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = common::tempdir("life-cli-");
        Fixture {
            prefix: dir.path().join("m"),
            state: dir.path().join("state"),
            _dir: dir,
        }
    }

    /// `colinux-setup ARGS` with the host's monitor and this test's list.
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run colinux-setup")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = host_cmd(args);
        c.env("XDG_STATE_HOME", &self.state);
        c
    }

    /// A small machine without its first boot (the first boot is boot_cli.rs's).
    fn install(&self) {
        let o = install_cmd(&self.prefix, SMALL)
            .env("XDG_STATE_HOME", &self.state)
            .output()
            .expect("install");
        expect(&o, 0, &["installed profile minimal"]);
    }

    fn on(&self, command: &str) -> Vec<String> {
        vec![
            command.to_owned(),
            "--prefix".into(),
            p(&self.prefix).into(),
        ]
    }

    /// `list --json`'s machines.
    fn list(&self) -> Vec<serde_json::Value> {
        let o = self.run(&["list", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        v["machines"].as_array().cloned().unwrap_or_default()
    }
}

fn expect(o: &Output, code: i32, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    for n in needles {
        assert!(t.contains(n), "expected `{n}` in:\n{t}");
    }
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The run record's process, killed when the test ends while it still runs (its reaper
/// then kills the guest).
struct Running(PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let Ok(rec) = std::fs::read(self.0.join(".colinux-setup-running.json")) else {
            return;
        };
        let rec: serde_json::Value = serde_json::from_slice(&rec).unwrap_or_default();
        if let Some(pid) = rec["pid"].as_u64() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("run-machine") {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Whether another process holds the machine's lock now.
fn locked(prefix: &Path) -> bool {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(prefix.join(".colinux-setup.lock"))
        .expect("the lock file");
    match f.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(e) => panic!("{e}"),
    }
}

/// The issue's "done when": start, list shows it running, shell runs a command, stop,
/// list shows it stopped; and on the way, what a running machine keeps out (1618), its
/// console, its log, and images clean after the stop.
#[test]
fn a_machine_started_in_the_background_runs_commands_and_stops_cleanly() {
    let f = Fixture::new();
    f.install();
    let m = f.list();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["state"], "stopped", "{m:?}");
    assert_eq!(m[0]["monitor"], host().monitor.as_str(), "{m:?}");
    // The RAM config.txt gives the guest (the plan's, from RAMMB).
    let ram = common::status_json(&f.prefix)["answers"]["RAMMB"]
        .as_str()
        .and_then(|r| r.parse::<u64>().ok());
    assert_eq!(m[0]["ram_mb"].as_u64(), ram, "{m:?}");
    assert_eq!(m[0]["prefix"], p(&f.prefix), "{m:?}");
    let images: Vec<&str> = m[0]["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|i| i["file"].as_str())
        .collect();
    assert_eq!(images, ["root.img", "home.img", "swap.img"]);
    assert_eq!(m[0]["network"][0]["kind"], "slirp", "{m:?}");

    let _guard = Running(f.prefix.clone());
    let t0 = Instant::now();
    let o = f.run(&[
        "start",
        "--prefix",
        p(&f.prefix),
        "--timeout",
        &secs(60).to_string(),
    ]);
    let started = t0.elapsed();
    expect(&o, 0, &["started the machine in", "in the background"]);
    eprintln!(
        "start: {:.1} s to the guest's prompt",
        started.as_secs_f64()
    );
    // It holds the machine's lock as `boot` does, and keeps every other run out.
    assert!(locked(&f.prefix), "a running machine holds its lock");
    let m = f.list();
    assert_eq!(m[0]["state"], "running", "{m:?}");
    assert!(m[0]["pid"].as_u64().is_some(), "{m:?}");
    let o = f.run(&["list"]);
    expect(&o, 0, &["running", p(&f.prefix), "STATE"]);
    let st = common::status_json(&f.prefix);
    assert_eq!(st["running"]["pid"], m[0]["pid"], "{st}");
    expect(
        &f.run(&args(&f.on("start"))),
        BUSY,
        &["is running already", "colinux-setup stop --prefix"],
    );
    expect(
        &f.run(&["boot", "--prefix", p(&f.prefix), "--timeout", "5"]),
        BUSY,
        &["running the machine in", "colinux-setup stop --prefix"],
    );
    expect(&f.run(&args(&f.on("uninstall"))), BUSY, &[]);
    assert!(f.prefix.join("root.img").exists());
    // Another machine whose folder holds this one's run record (copied, or hostile) is
    // not running, and stopping it does not stop this one.
    let other = f.prefix.with_file_name("other");
    let o = install_cmd(&other, SMALL)
        .env("XDG_STATE_HOME", &f.state)
        .output()
        .expect("install");
    expect(&o, 0, &[]);
    std::fs::copy(
        f.prefix.join(".colinux-setup-running.json"),
        other.join(".colinux-setup-running.json"),
    )
    .expect("copy the run record");
    let m = f.list();
    assert_eq!(m[1]["prefix"], p(&other), "{m:?}");
    assert_eq!(m[1]["state"], "stopped", "{m:?}");
    expect(
        &f.run(&["stop", "--prefix", p(&other)]),
        0,
        &["is not running"],
    );
    assert_eq!(f.list()[0]["state"], "running");
    // The same machine through a symbolic link to its folder.
    let link = f.prefix.with_file_name("link");
    std::os::unix::fs::symlink(&f.prefix, &link).expect("symlink");
    let o = f.run(&["shell", "--prefix", p(&link), "--", "echo via-link"]);
    expect(&o, 0, &["via-link"]);

    // A command in the guest: its output on stdout, its status as the exit code.
    let t1 = Instant::now();
    let o = f.run(&[
        "shell",
        "--prefix",
        p(&f.prefix),
        "--",
        "cat /etc/hostname; echo $((6*7)); echo LIFE-NOTE > /root/life-note; (exit 7)",
    ]);
    eprintln!("shell: {:.2} s for one command", t1.elapsed().as_secs_f64());
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out, "colinux\n42\n", "{}", text(&o));
    let o = f.run(&[
        "shell",
        "--prefix",
        p(&f.prefix),
        "--",
        "grep -c ' / ' /proc/mounts",
    ]);
    expect(&o, 0, &[]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "1",
        "{}",
        text(&o)
    );
    // The console: what is typed on it runs, what the guest prints comes back.
    let mut c = f.cmd(&args(&f.on("console")));
    c.stdin(std::process::Stdio::piped());
    let mut child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("console");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"echo CONSOLE-$((40+2))\n")
            .expect("type a line");
    }
    let o = child.wait_with_output().expect("console");
    expect(&o, 0, &["CONSOLE-42"]);

    let t2 = Instant::now();
    let o = f.run(&args(&f.on("stop")));
    let stopped = t2.elapsed();
    expect(&o, 0, &["stopped the machine in"]);
    assert!(
        !text(&o).contains("killed"),
        "a clean poweroff:\n{}",
        text(&o)
    );
    eprintln!("stop: {:.1} s to a clean poweroff", stopped.as_secs_f64());
    assert!(!locked(&f.prefix), "a stopped machine leaves its lock free");
    assert!(!f.prefix.join(".colinux-setup-running.json").exists());
    let m = f.list();
    assert_eq!(m[0]["state"], "stopped", "{m:?}");
    assert!(common::status_json(&f.prefix)["running"].is_null());
    // A clean poweroff: the filesystems are clean at once, and the guest's write is in
    // root.img (read back by debugfs).
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&f.prefix.join(img)).expect("clean after stop");
    }
    assert_eq!(
        debugfs(&f.prefix.join("root.img"), "cat /root/life-note").trim(),
        "LIFE-NOTE"
    );
    let logs: String = std::fs::read_dir(f.prefix.join("logs"))
        .expect("logs")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-start-"))
        .map(|e| std::fs::read_to_string(e.path()).expect("log"))
        .collect();
    assert!(
        logs.contains("console: colinux-setup: guest colinux is up"),
        "{logs}"
    );
    assert!(logs.contains("stop requested true"), "{logs}");
    // Stopping a stopped machine is done already.
    expect(
        &f.run(&args(&f.on("stop"))),
        0,
        &["is not running; nothing to do"],
    );
}

/// What a machine that does not run refuses, and says what to do.
#[test]
fn commands_on_a_machine_that_does_not_run_say_what_to_do() {
    let f = Fixture::new();
    // Nothing installed: start, stop, shell and console name the folder and the install.
    for c in ["start", "stop", "console", "shell"] {
        expect(
            &f.run(&args(&f.on(c))),
            FAILED,
            &["no machine is installed in", p(&f.prefix)],
        );
    }
    f.install();
    expect(
        &f.run(&[&args(&f.on("shell"))[..], &["--", "true"]].concat()),
        FAILED,
        &["is not running; start it with `colinux-setup start --prefix"],
    );
    expect(
        &f.run(&args(&f.on("console"))),
        FAILED,
        &["is not running; start it with"],
    );
    expect(
        &f.run(&args(&f.on("stop"))),
        0,
        &["is not running; nothing to do"],
    );
    // A run record left by a crash (its process is gone, or is another program: here
    // this test) does not make the machine running.
    for pid in [std::process::id(), 4_000_000] {
        std::fs::write(
            f.prefix.join(".colinux-setup-running.json"),
            format!(
                r#"{{"format":1,"pid":{pid},"pid_start":0,"monitor":"uml","engine":"User-mode Linux","console":"/nonexistent/console.sock","log":"/nonexistent.log","started_at":1}}"#
            ),
        )
        .expect("a stale record");
        assert_eq!(f.list()[0]["state"], "stopped");
        expect(
            &f.run(&[&args(&f.on("shell"))[..], &["--", "true"]].concat()),
            FAILED,
            &["is not running"],
        );
        expect(&f.run(&args(&f.on("stop"))), 0, &["is not running"]);
        assert!(
            !f.prefix.join(".colinux-setup-running.json").exists(),
            "stop removes a stale record"
        );
    }
    // A damaged record is a machine that does not run, not a crash.
    std::fs::write(f.prefix.join(".colinux-setup-running.json"), "{garbage").expect("write");
    assert_eq!(f.list()[0]["state"], "stopped");
    // A start that does not come up in time is stopped: nothing runs, the lock is free.
    let _guard = Running(f.prefix.clone());
    expect(
        &f.run(&[&args(&f.on("start"))[..], &["--timeout", "0"]].concat()),
        FAILED,
        &["did not come up within 0 s"],
    );
    assert_eq!(f.list()[0]["state"], "stopped");
    let until = Instant::now() + std::time::Duration::from_secs(10);
    while locked(&f.prefix) && Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!locked(&f.prefix), "a failed start leaves the lock free");
    // Ctrl-C while the guest comes up (its monitor is probed first, over a second):
    // 1602, and the machine does not run.
    let b = common::Booting::spawn(f.cmd(&args(&f.on("start"))));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let st = Command::new("kill")
        .args(["-INT", &b.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let (code, out) = b.wait(secs(20));
    assert_eq!(code, Some(common::CANCELLED), "{out}");
    assert!(
        out.contains("stopped by Ctrl-C while the guest came up"),
        "{out}"
    );
    assert_eq!(f.list()[0]["state"], "stopped");
    let until = Instant::now() + std::time::Duration::from_secs(10);
    while locked(&f.prefix) && Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!locked(&f.prefix), "a cancelled start leaves the lock free");
}

/// The list of machines is untrusted input: a damaged one is named with what to do, a
/// folder that is gone is shown as missing, an uninstall takes its machine off.
#[test]
fn the_list_of_machines_is_read_as_untrusted_input() {
    let f = Fixture::new();
    let o = f.run(&["list"]);
    expect(&o, 0, &["no machines installed"]);
    assert_eq!(f.list(), Vec::<serde_json::Value>::new());
    f.install();
    let gone = f.prefix.with_file_name("gone");
    let registry = f.state.join("colinux-setup").join("machines.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&registry).expect("the registry")).expect("json");
    v["machines"]
        .as_array_mut()
        .expect("machines")
        .push(serde_json::json!({"prefix": gone, "added_at": 1}));
    std::fs::write(&registry, v.to_string()).expect("write");
    let m = f.list();
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[1]["state"], "missing", "{m:?}");
    expect(
        &f.run(&["list"]),
        0,
        &["missing", "colinux-setup uninstall --prefix"],
    );
    // An uninstall takes the machine off the list (an uninstall of nothing too).
    expect(&f.run(&args(&f.on("uninstall"))), 0, &[]);
    let o = f
        .cmd(&["uninstall", "--prefix", p(&gone)])
        .output()
        .expect("uninstall");
    expect(&o, 0, &[]);
    assert_eq!(f.list(), Vec::<serde_json::Value>::new());
    // Damaged: not JSON, another format, a relative folder, a FIFO, too large.
    for (bytes, needle) in [
        (
            &b"{\"machines\": [tru"[..],
            "not the JSON colinux-setup writes",
        ),
        (br#"{"format":2,"machines":[]}"#, "format 2"),
        (
            br#"{"format":1,"machines":[{"prefix":"../x","added_at":1}]}"#,
            "not an absolute folder",
        ),
    ] {
        std::fs::write(&registry, bytes).expect("write");
        for json in [false, true] {
            let o = f.run(if json { &["list", "--json"] } else { &["list"] });
            expect(&o, FAILED, &[p(&registry), needle, "move it away"]);
        }
    }
    std::fs::write(&registry, vec![b' '; 2 << 20]).expect("write");
    expect(&f.run(&["list"]), FAILED, &[p(&registry), "larger than"]);
    std::fs::remove_file(&registry).expect("rm");
    common::mkfifo(&registry);
    let o = common::output_within(f.cmd(&["list"]), 10);
    expect(&o, FAILED, &[p(&registry), "FIFO", "move it away"]);
    // An install with a damaged list still installs, and says the list was not written.
    let o = install_cmd(&f.prefix, SMALL)
        .env("XDG_STATE_HOME", &f.state)
        .output()
        .expect("install");
    expect(&o, 0, &["warning:", "machines.json"]);
    // Without any folder for the list: said, not a crash.
    let o = cmd(&["list"])
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOME")
        .output()
        .expect("list");
    expect(&o, FAILED, &["set HOME"]);
}

/// A background process that dies (SIGKILL, as the OOM killer or a crash would) takes
/// its guest with it: the machine is stopped, its lock free, and it starts again.
#[test]
fn a_killed_background_process_takes_its_guest_with_it() {
    let f = Fixture::new();
    f.install();
    let _guard = Running(f.prefix.clone());
    let start = || {
        f.run(&[
            "start",
            "--prefix",
            p(&f.prefix),
            "--timeout",
            &secs(60).to_string(),
        ])
    };
    // A machine the list does not know (installed before it existed) joins it when
    // started.
    std::fs::remove_file(f.state.join("colinux-setup").join("machines.json")).expect("rm");
    assert_eq!(f.list(), Vec::<serde_json::Value>::new());
    expect(&start(), 0, &["started the machine in"]);
    let m = f.list();
    assert_eq!(m.len(), 1, "{m:?}");
    let pid = m[0]["pid"].as_u64().expect("a running machine's pid");
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let until = Instant::now() + std::time::Duration::from_secs(secs(10));
    while locked(&f.prefix) && Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !locked(&f.prefix),
        "the guest went with its background process"
    );
    // Its run record is still there, but names a process that is gone.
    assert!(f.prefix.join(".colinux-setup-running.json").exists());
    assert_eq!(f.list()[0]["state"], "stopped");
    expect(
        &f.run(&[&args(&f.on("shell"))[..], &["--", "true"]].concat()),
        FAILED,
        &["is not running"],
    );
    // Again, with the results as JSON.
    let o = f.run(&[
        "start",
        "--json",
        "--prefix",
        p(&f.prefix),
        "--timeout",
        &secs(60).to_string(),
    ]);
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("start --json");
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["monitor"], host().monitor.as_str(), "{v}");
    assert_ne!(v["pid"].as_u64(), Some(pid), "{v}");
    assert_eq!(v["pid"], f.list()[0]["pid"], "{v}");
    let o = f.run(&[&args(&f.on("shell"))[..], &["--", "echo again"]].concat());
    expect(&o, 0, &["again"]);
    let o = f.run(&[&args(&f.on("stop"))[..], &["--json"]].concat());
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stop --json");
    assert_eq!(v["was_running"], true, "{v}");
    assert_eq!(v["clean_poweroff"], true, "{v}");
    assert_eq!(f.list()[0]["state"], "stopped");
    let o = f.run(&[&args(&f.on("stop"))[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stop --json");
    assert_eq!(v["was_running"], false, "{v}");
}

/// `console` on a terminal: raw mode (Ctrl-C goes to the guest, not to `console`),
/// what is typed runs in the guest, Ctrl-] detaches with exit 0 and the machine runs on.
#[test]
fn console_on_a_terminal_passes_every_key_and_detaches_with_ctrl_close_bracket() {
    use expectrl::Expect as _;
    use expectrl::process::unix::WaitStatus;
    let f = Fixture::new();
    f.install();
    let _guard = Running(f.prefix.clone());
    expect(
        &f.run(&[
            "start",
            "--prefix",
            p(&f.prefix),
            "--timeout",
            &secs(60).to_string(),
        ]),
        0,
        &["started the machine in"],
    );
    let mut c = Command::new(common::BIN);
    c.args(["console", "--prefix", p(&f.prefix)])
        .env("XDG_STATE_HOME", &f.state)
        .env("TERM", "xterm");
    let mut s = expectrl::session::OsSession::spawn(c).expect("console in a pty");
    let mut raw = Vec::new();
    let mut wait_raw = |s: &mut expectrl::session::OsSession, needle: &str| {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&raw).contains(needle) {
            match s.try_read(&mut buf) {
                Ok(n) if n > 0 => raw.extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
            assert!(
                start.elapsed().as_secs() < secs(20),
                "`{needle}` did not come:\n{}",
                String::from_utf8_lossy(&raw)
            );
        }
    };
    wait_raw(&mut s, "Ctrl-] detaches");
    s.send("echo PTY-$((2+3))\r").expect("type");
    wait_raw(&mut s, "PTY-5");
    // Ctrl-C in raw mode reaches the guest's shell (whose line editor drops the line
    // typed so far), not `console`, which stays attached.
    s.send("echo DROPPED").expect("type");
    s.send("\u{3}").expect("Ctrl-C");
    s.send("echo AFTER-$((3+4))\r").expect("type");
    wait_raw(&mut s, "AFTER-7");
    s.send("\u{1d}").expect("Ctrl-]");
    let start = Instant::now();
    let status = loop {
        match s.get_process().status() {
            Ok(WaitStatus::StillAlive) if start.elapsed().as_secs() < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other,
        }
    };
    assert!(matches!(status, Ok(WaitStatus::Exited(_, 0))), "{status:?}");
    assert_eq!(f.list()[0]["state"], "running", "the machine runs on");
    expect(&f.run(&args(&f.on("stop"))), 0, &["stopped the machine in"]);
}
