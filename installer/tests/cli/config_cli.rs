//! `colinux-setup config check FILE...` and `config show [FILE | --prefix DIR] [--json]`,
//! run as a user would run them.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_colinux-setup");

/// The seed manual's configuration (section 3.2), with its `eth0=slirp,"",...` line.
const SEED: &str = include_str!("../../../config-txt/tests/data/seed-config.txt");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("colinux-setup runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path.display().to_string()
}

#[test]
fn check_reports_the_seed_eth0_error_with_line_column_and_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(dir.path(), "config.txt", SEED);
    let out = run(&["config", "check", &file]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "{file}:18:12: error: error parsing MAC address: \""
        )),
        "{text}"
    );
    assert!(
        text.contains("help: `\"\"` in a comma field is a literal `\"`, not an empty field; write an empty field as `,,`: `eth0=slirp,,tcp:333:22/tcp:1000:1000/udp:69:69`"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{file}:13:1: warning: `cofs0=c:\\` shares a whole drive"
        )),
        "{text}"
    );
}

#[test]
fn check_passes_with_warnings_only_and_fails_if_any_file_has_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_file(
        dir.path(),
        "good.txt",
        &SEED.replace("slirp,\"\",", "slirp,,"),
    );
    let out = run(&["config", "check", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{good}:29:1: warning:"))),
        "{text}"
    );
    assert!(!text.contains(": error:"), "{text}");

    let bad = write_file(dir.path(), "bad.txt", "mem=64\n");
    let out = run(&["config", "check", &good, &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("{bad}:1:1: error: no `kernel=`")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_of_a_missing_file_is_a_failed_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.txt").display().to_string();
    let out = run(&["config", "check", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with(&format!("{missing}: error: cannot read the file")));
}

#[test]
fn show_json_prints_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(
        dir.path(),
        "config.txt",
        "kernel=vmlinux\nmem=128\ncobd0=c:\\coLinux\\root.img\neth0=tuntap,\"TAP coLinux\",02:00:00:00:00:01\nroot=/dev/cobd0\nro\n",
    );
    let out = run(&["config", "show", "--json", &file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["config"]["kernel"], "vmlinux");
    assert_eq!(v["config"]["mem"], 128);
    assert_eq!(v["config"]["cobd"]["0"]["path"], "c:\\coLinux\\root.img");
    assert_eq!(v["config"]["eth"]["0"]["type"], "tuntap");
    assert_eq!(v["config"]["eth"]["0"]["name"], "TAP coLinux");
    assert_eq!(v["config"]["eth"]["0"]["mac"], "02:00:00:00:00:01");
    assert_eq!(v["boot_line"], "root=/dev/cobd0 ro");
}

#[test]
fn show_with_prefix_reads_prefix_config_txt() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_file(dir.path(), "config.txt", "kernel=vmlinux\nmem=64\n");
    let prefix = dir.path().display().to_string();
    let out = run(&["config", "show", "--prefix", &prefix]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("kernel     vmlinux"), "{text}");
    assert!(text.contains("mem        64 MB"), "{text}");
}

#[test]
fn show_of_a_broken_file_fails_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_file(dir.path(), "config.txt", SEED);
    let out = run(&["config", "show", &file]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error parsing MAC address"), "{err}");
    assert!(out.stdout.is_empty());
}
