//! `putty install | remove | show`, judged by PuTTY itself: `plink -load NAME` (Debian
//! package putty-tools) reads the saved session we wrote and opens an SSH connection to
//! a listener of the test, which must receive PuTTY's SSH banner on the port the
//! machine's slirp redirection names. (On Windows the same session goes to the registry;
//! tests/msi.rs checks that under Wine.)

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{FAILED, SMALL, cmd, install_cmd, p, tempdir, text};

/// Installs a small machine (for the host's monitor) with the given extra answers.
fn machine(dir: &Path, extra: &[&str]) {
    let o = install_cmd(dir, &[SMALL, extra].concat())
        .output()
        .expect("install");
    assert_eq!(o.status.code(), Some(0), "install\n{}", text(&o));
}

fn putty(puttydir: &Path, args: &[&str]) -> Output {
    cmd(args)
        .env("PUTTYDIR", puttydir)
        .output()
        .expect("colinux-setup putty")
}

/// Runs `plink -load NAME` and returns the first line a listener on `listener` got.
fn banner_through_plink(puttydir: &Path, name: &str, listener: TcpListener) -> String {
    assert!(
        Path::new("/usr/bin/plink").is_file(),
        "plink is not installed; scripts/test installs it (package putty-tools)"
    );
    let mut plink = Command::new("plink")
        .args(["-batch", "-load", name])
        .env("PUTTYDIR", puttydir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plink");
    // A watchdog, not a timing assertion: a plink that never connects fails the test
    // instead of hanging it.
    listener.set_nonblocking(true).expect("nonblocking");
    let mut waited = Duration::ZERO;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(_)) = plink.try_wait() {
                    let o = plink.wait_with_output().expect("plink output");
                    panic!("plink exited without connecting\n{}", text(&o));
                }
                assert!(waited < Duration::from_secs(60), "plink did not connect");
                std::thread::sleep(Duration::from_millis(50));
                waited += Duration::from_millis(50);
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("reading plink's banner");
    drop(stream);
    let _ = plink.kill();
    let _ = plink.wait();
    line
}

#[test]
fn plink_opens_ssh_on_the_redirected_port_from_the_saved_session() {
    let t = tempdir("putty");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let prefix = t.path().join("machine");
    machine(
        &prefix,
        &["--set", &format!("SLIRP=tcp:{port}:22/udp:69:69")],
    );
    let puttydir = t.path().join("putty");

    // --dry-run says what it would save and writes nothing.
    let o = putty(
        &puttydir,
        &["putty", "install", "--prefix", p(&prefix), "--dry-run"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(&format!("port {port}")), "{}", text(&o));
    assert!(!puttydir.exists(), "a dry run wrote {}", puttydir.display());

    let o = putty(
        &puttydir,
        &[
            "putty",
            "install",
            "--prefix",
            p(&prefix),
            "--name",
            "my coLinux",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // PuTTY's own escaping of the name: the space is %20.
    let file = puttydir.join("sessions/my%20coLinux");
    let saved = std::fs::read_to_string(&file).expect("the session file");
    assert!(saved.contains(&format!("PortNumber={port}\n")), "{saved}");

    let line = banner_through_plink(&puttydir, "my coLinux", listener);
    assert!(
        line.starts_with("SSH-2.0-PuTTY"),
        "the listener on the redirected port got {line:?}, not PuTTY's SSH banner"
    );

    let o = putty(
        &puttydir,
        &["putty", "show", "--name", "my coLinux", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["settings"]["HostName"], "localhost", "{v}");
    assert_eq!(v["settings"]["Protocol"], "ssh", "{v}");

    let o = putty(&puttydir, &["putty", "remove", "--name", "my coLinux"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!file.exists(), "the session file is left");
    let o = putty(&puttydir, &["putty", "remove", "--name", "my coLinux"]);
    assert_eq!(o.status.code(), Some(0), "a second remove: {}", text(&o));
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    let o = putty(&puttydir, &["putty", "show", "--name", "my coLinux"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn a_machine_without_a_way_to_its_ssh_port_is_refused_and_nothing_is_written() {
    let t = tempdir("putty-none");
    let prefix = t.path().join("machine");
    // The minimal profile's slirp has no redirections.
    machine(&prefix, &[]);
    let puttydir = t.path().join("putty");
    let o = putty(&puttydir, &["putty", "install", "--prefix", p(&prefix)]);
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(
        text(&o).contains("guest port 22") && text(&o).contains("SLIRP=tcp:2222:22"),
        "{}",
        text(&o)
    );
    assert!(!puttydir.exists(), "something was written");

    // No machine at all.
    let o = putty(
        &puttydir,
        &["putty", "install", "--prefix", p(&t.path().join("none"))],
    );
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(text(&o).contains("config.txt"), "{}", text(&o));

    // Bad names.
    for bad in ["", "a/b"] {
        let o = putty(&puttydir, &["putty", "remove", "--name", bad]);
        assert_eq!(o.status.code(), Some(FAILED), "{bad:?}: {}", text(&o));
        assert!(text(&o).contains("session name"), "{}", text(&o));
    }
    assert!(!puttydir.exists(), "something was written");
}

/// `install` (for the host's monitor) with `--set` answers and PUTTYDIR; the output.
fn install(dir: &Path, puttydir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = install_cmd(dir, &[SMALL, extra].concat());
    c.env("PUTTYDIR", puttydir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("install")
}

#[test]
fn the_install_saves_the_session_rolls_it_back_and_uninstall_removes_it() {
    let t = tempdir("putty-step");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let slirp = format!("SLIRP=tcp:{port}:22");
    let answers = ["--set", slirp.as_str(), "--set", "PUTTYSESSION=1"];
    let puttydir = t.path().join("putty");
    let session = puttydir.join("sessions/coLinux");
    let prefix = t.path().join("machine");

    // The dry run names the session and writes nothing.
    let mut args = answers.to_vec();
    args.push("--dry-run");
    let o = install(&prefix, &puttydir, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "PuTTY session: \"coLinux\": ssh localhost port {port}"
        )),
        "{}",
        text(&o)
    );
    assert!(!puttydir.exists() && !prefix.exists());

    // A later step fails: the session goes with everything else.
    let o = install(
        &prefix,
        &puttydir,
        &answers,
        &[("COLINUX_SETUP_TEST_FAIL_AT", "first-boot")],
    );
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(!session.exists(), "the rollback left the session");
    assert!(!prefix.exists(), "the rollback left the machine");

    let o = install(&prefix, &puttydir, &answers, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let line = banner_through_plink(&puttydir, "coLinux", listener);
    assert!(line.starts_with("SSH-2.0-PuTTY"), "got {line:?}");
    let o = cmd(&["status", "--prefix", p(&prefix), "--json"])
        .output()
        .expect("status");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status json");
    assert_eq!(v["putty"]["name"], "coLinux", "{v}");
    assert_eq!(v["putty"]["port"], port, "{v}");
    assert_eq!(v["putty"]["created"], true, "{v}");

    // A repair keeps it; uninstall removes it and keeps the images.
    let o = install(&prefix, &puttydir, &answers, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(session.is_file());
    let o = cmd(&["uninstall", "--prefix", p(&prefix)])
        .env("PUTTYDIR", &puttydir)
        .output()
        .expect("uninstall");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!session.exists(), "uninstall left the session");
    assert!(
        prefix.join("home.img").is_file(),
        "uninstall took the images"
    );
}

#[test]
fn a_session_the_install_cannot_make_is_refused_before_any_change() {
    let t = tempdir("putty-refused");
    let puttydir = t.path().join("putty");
    let prefix = t.path().join("machine");

    // No way to the guest's ssh port.
    let o = install(&prefix, &puttydir, &["--set", "PUTTYSESSION=1"], &[]);
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(text(&o).contains("SLIRP=tcp:2222:22"), "{}", text(&o));
    assert!(!prefix.exists() && !puttydir.exists());

    // A user's own session of that name, with other settings, is never overwritten.
    std::fs::create_dir_all(puttydir.join("sessions")).expect("mkdir");
    let mine = puttydir.join("sessions/work%20box");
    std::fs::write(&mine, "HostName=10.0.0.9\nPortNumber=22\nProtocol=ssh\n").expect("write");
    let o = install(
        &prefix,
        &puttydir,
        &[
            "--set",
            "SLIRP=tcp:2222:22",
            "--set",
            "PUTTYSESSION=work box",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(text(&o).contains("already there"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&mine).expect("mine"),
        "HostName=10.0.0.9\nPortNumber=22\nProtocol=ssh\n"
    );
    assert!(!prefix.exists(), "the failed install left the machine");

    // Bad values.
    for bad in ["PUTTYSESSION=a/b", "PUTTYUSER=S-1-5-21-1"] {
        let o = install(
            &prefix,
            &puttydir,
            &["--set", "SLIRP=tcp:2222:22", "--set", bad],
            &[],
        );
        assert_ne!(o.status.code(), Some(0), "{bad}: {}", text(&o));
        let key = bad.split('=').next().unwrap_or_default();
        assert!(text(&o).contains(key), "{bad}: {}", text(&o));
        assert!(!prefix.exists());
    }
}
