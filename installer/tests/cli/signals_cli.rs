//! Signals and guests: SIGTERM and SIGHUP mean what Ctrl-C means (stop, roll back,
//! 1602); a killed `boot` takes its guest with it and frees the machine; port forwards
//! listen on 127.0.0.1 unless an answer asks for another address.
//!
//! Guests boot on the monitor this host offers (`e2e_tests::host_monitor`); the port
//! forward test needs QEMU, which runs on every host (without KVM where it hangs).

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BUSY, Booting, CANCELLED, FAILED, SMALL, cmd, p, text};

fn tmp() -> tempfile::TempDir {
    common::tempdir("signals-")
}

fn kill(pid: u32, signal: &str) {
    let st = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -{signal} {pid}");
}

#[test]
fn sigterm_and_sighup_during_an_install_roll_back_with_1602() {
    for signal in ["TERM", "HUP"] {
        let t = tmp();
        let prefix = t.path().join("m");
        let mut c = cmd(&[&["install", "--unattended", "--prefix", p(&prefix)], SMALL].concat());
        c.env("COLINUX_SETUP_TEST_PAUSE_AT", "image:home");
        let mut b = Booting::spawn(c);
        b.wait_for("test hook: paused at image:home", 60);
        assert!(prefix.join("root.img").exists(), "root was built first");
        kill(b.id(), signal);
        let (code, out) = b.wait(60);
        assert_eq!(code, Some(CANCELLED), "SIG{signal}:\n{out}");
        assert!(
            out.contains(&format!("cancelled (SIG{signal})")),
            "SIG{signal}:\n{out}"
        );
        assert!(
            !prefix.exists(),
            "SIG{signal}: the install was not rolled back: {:?}",
            std::fs::read_dir(&prefix)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
    }
}

/// The direct child of `parent`: the monitor `boot` started (the leader of the guest's
/// process group).
fn child_of(parent: u32) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: the comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

/// Whether any process of process group `pgid` lives (zombies count as gone).
fn group_alive(pgid: u32) -> bool {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten().any(|e| {
                std::fs::read_to_string(e.path().join("stat")).is_ok_and(|stat| {
                    let fields: Vec<&str> = stat
                        .rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().collect())
                        .unwrap_or_default();
                    // state ppid pgrp
                    fields.first() != Some(&"Z")
                        && fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
                })
            })
        })
        .unwrap_or(false)
}

fn install_for_host(prefix: &Path) {
    let m = e2e_tests::host_monitor().expect("a monitor that runs guests here");
    let mut args: Vec<String> = ["install", "--unattended", "--prefix", p(prefix)]
        .map(str::to_owned)
        .to_vec();
    args.extend(m.install_args());
    args.extend(SMALL.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = cmd(&refs);
    c.envs(m.env());
    let o = c.output().expect("install");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_killed_boot_takes_its_guest_with_it_and_frees_the_machine() {
    let m = e2e_tests::host_monitor().expect("a monitor that runs guests here");
    for signal in ["KILL", "TERM"] {
        let t = tmp();
        let prefix = t.path().join("m");
        install_for_host(&prefix);
        let mut c = cmd(&["boot", "--prefix", p(&prefix)]);
        c.envs(m.env());
        let mut b = Booting::spawn(c);
        b.wait_for("/ # ", m.timeout(60));
        let guest = child_of(b.id()).expect("the monitor process of the guest");
        assert!(group_alive(guest), "the guest runs");
        // While the guest runs, the machine is taken (and a rebuild says so).
        assert!(!lock_free(&prefix), "the machine's lock is not held");
        let o = cmd(&["images", "rebuild", "--prefix", p(&prefix), "swap"])
            .output()
            .expect("rebuild");
        assert_eq!(o.status.code(), Some(BUSY), "{}", text(&o));
        kill(b.id(), signal);
        let (code, out) = b.wait(m.timeout(30));
        if signal == "TERM" {
            assert_eq!(code, Some(CANCELLED), "{out}");
            assert!(out.contains("stopped by SIGTERM"), "{out}");
        } else {
            assert_eq!(code, None, "killed by SIGKILL:\n{out}");
        }
        let start = Instant::now();
        while group_alive(guest) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "SIG{signal}: the guest (process group {guest}) outlived its boot:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The machine is free again once the guest is gone.
        assert!(lock_free(&prefix), "SIG{signal}: the lock is still held");
    }
}

/// Whether another run could take the machine's lock now.
fn lock_free(prefix: &Path) -> bool {
    let f = std::fs::File::options()
        .write(true)
        .open(prefix.join(".colinux-setup.lock"))
        .expect("the machine's lock file");
    f.try_lock().is_ok()
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The local address of the listener on `port`, as `ss -ltnH` shows it.
fn listener(port: u16) -> Option<String> {
    let o = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .stdin(Stdio::null())
        .output()
        .expect("ss (Debian package iproute2)");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(str::to_owned)
        .next()
}

#[test]
fn qemu_port_forwards_listen_on_loopback_unless_an_answer_asks_otherwise() {
    let m = e2e_tests::host_monitor().expect("a monitor that runs guests here");
    for (answer, want) in [(None, "127.0.0.1"), (Some("0.0.0.0"), "0.0.0.0")] {
        let t = tmp();
        let prefix = t.path().join("m");
        let port = free_port();
        let mut args: Vec<String> = vec![
            "install".into(),
            "--unattended".into(),
            "--prefix".into(),
            p(&prefix).into(),
            "--kit".into(),
            m.kit.display().to_string(),
            "--monitor".into(),
            "qemu".into(),
            "--set".into(),
            format!("SLIRP=tcp:{port}:22"),
        ];
        if let Some(a) = answer {
            args.extend(["--set".into(), format!("SLIRPHOST={a}")]);
        }
        args.extend(SMALL.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = cmd(&refs).output().expect("install");
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        // The listen address does not depend on the accelerator: QEMU's own emulation,
        // which runs on every host, saves the KVM probe on hosts where KVM hangs.
        let mut c = cmd(&["boot", "--prefix", p(&prefix), "--timeout", "300"]);
        c.env("COLINUX_SETUP_QEMU_ACCEL", "tcg");
        let b = Booting::spawn(c);
        let start = Instant::now();
        let local = loop {
            if let Some(l) = listener(port) {
                break l;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "nothing listens on port {port}:\n{}",
                b.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(local, format!("{want}:{port}"), "{answer:?}:\n{}", b.text());
        drop(b);
    }
}

#[test]
fn colinux_forwards_cannot_be_limited_and_uml_says_it_applies_none() {
    let t = tmp();
    let prefix = t.path().join("m");
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "install",
            "--unattended",
            "--dry-run",
            "--prefix",
            p(&prefix),
            "--set",
            "SLIRP=tcp:3333:22",
            "--set",
            "NOFIRSTBOOT=1",
        ];
        args.extend_from_slice(extra);
        cmd(&args).output().expect("install --dry-run")
    };
    let o = plan(&["--monitor", "colinux", "--set", "SLIRPHOST=127.0.0.1"]);
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(
        text(&o).contains("coLinux's slirp always listens on every interface"),
        "{}",
        text(&o)
    );
    let o = plan(&["--monitor", "colinux"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("listen on every interface of the host"),
        "{}",
        text(&o)
    );
    let o = plan(&["--monitor", "uml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("are not applied in User-mode Linux"),
        "{}",
        text(&o)
    );
    let o = plan(&["--monitor", "qemu", "--set", "SLIRPHOST=localhost"]);
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(text(&o).contains("SLIRPHOST=localhost"), "{}", text(&o));
    assert!(!prefix.exists());
}

#[test]
fn an_install_killed_during_its_first_boot_leaves_no_guest_and_the_next_run_rolls_back() {
    let m = e2e_tests::host_monitor().expect("a monitor that runs guests here");
    let t = tmp();
    let prefix = t.path().join("m");
    let mut args: Vec<String> = ["install", "--unattended", "--prefix", p(&prefix)]
        .map(str::to_owned)
        .to_vec();
    args.extend(m.install_args());
    args.extend(
        [
            "--set",
            "RAMMB=128",
            "--set",
            "ROOTMB=64",
            "--set",
            "HOMEMB=32",
            "--set",
            "SWAPMB=64",
            "--set",
            "MODULES=0",
        ]
        .map(str::to_owned),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = cmd(&refs);
    c.envs(m.env()).env("COLINUX_SETUP_TEST_FIRST_BOOT", "hang");
    let mut b = Booting::spawn(c);
    b.wait_for("first boot in", m.timeout(120));
    // The guest is up once its monitor runs; give it a moment to start its processes.
    let start = Instant::now();
    let guest = loop {
        if let Some(g) = child_of(b.id()).filter(|g| group_alive(*g)) {
            break g;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", b.text());
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(3));
    kill(b.id(), "KILL");
    let (code, out) = b.wait(30);
    assert_eq!(code, None, "{out}");
    let start = Instant::now();
    while group_alive(guest) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the first boot's guest outlived the killed install:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lock_free(&prefix), "the lock outlived the guest");
    // The next run takes the journal over; a failing one rolls everything back.
    let mut c = cmd(&refs);
    c.envs(m.env())
        .env("COLINUX_SETUP_TEST_FAIL_AT", "first-boot");
    let o = c.output().expect("install");
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(!prefix.exists(), "not rolled back: {}", text(&o));
}
