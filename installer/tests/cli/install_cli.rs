//! The unattended install, status, uninstall and facts, end to end through the binary:
//! exit codes, messages, what is left on disk, and the images judged by `e2fsck -fn`,
//! `debugfs` and `config check`.
//!
//! Exit codes as a POSIX parent sees them: 1603 & 0xff = 67, 1602 & 0xff = 66,
//! 1618 & 0xff = 82, 2 for usage. Sizes are small (`--set ROOTMB=64 ...`) except for the
//! bfin-uclinux profile, whose full sizes (1 GB root, 1.8 GB home) are sparse and fast.
//! The minimal profile's machines are installed for the monitor this host runs guests
//! on (`common::install_cmd`: its kit and `--monitor`), and named with its devices.

use crate::common;

use common::{
    BUSY, CANCELLED, FAILED, SMALL, cmd, debugfs, dev, host, host_cmd, install_cmd, p, secs,
    sha256, status_json, tempdir, text,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    cmd(args).output().expect("run colinux-setup")
}

/// `install --unattended --prefix PREFIX EXTRA...`: the minimal profile on the host's
/// monitor; a profile `extra` names (bfin-uclinux: coLinux, never booted here; the bad
/// ones of `bad_inputs_…`) with its own.
fn install(prefix: &Path, extra: &[&str]) -> Output {
    if extra.contains(&"--profile") {
        let p = prefix.to_str().expect("utf-8 path");
        let mut args = vec!["install", "--unattended", "--prefix", p];
        args.extend_from_slice(extra);
        return run(&args);
    }
    install_cmd(prefix, extra)
        .output()
        .expect("run colinux-setup")
}

fn ok(o: Output) -> Output {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    o
}

fn fails(o: &Output, code: i32, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    for n in needles {
        assert!(t.contains(n), "expected `{n}` in:\n{t}");
    }
}

/// Every file under `dir` but logs/, with its sha256 (install-state.json without its
/// time and the words that chose the monitor): what "the same result" means.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let rel = e
                .path()
                .strip_prefix(dir)
                .expect("inside")
                .display()
                .to_string();
            if rel == "logs" {
                continue;
            }
            if e.file_type().expect("type").is_dir() {
                out.insert(rel + "/", String::new());
                stack.push(e.path());
            } else if rel == "install-state.json" {
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(e.path()).expect("read")).expect("json");
                v["installed_at"] = serde_json::Value::Null;
                // Whose words chose the monitor (`--monitor`, an answer file's line) is
                // provenance, like the time, not what is installed.
                v["monitor_why"] = serde_json::Value::Null;
                out.insert(rel, v.to_string());
            } else {
                out.insert(rel, sha256(&e.path()));
            }
        }
    }
    out
}

fn config_check(prefix: &Path) {
    let c = prefix.join("config.txt");
    ok(run(&["config", "check", c.to_str().expect("utf-8")]));
}

fn tmp() -> tempfile::TempDir {
    tempdir("install-cli-")
}

#[test]
fn minimal_profile_unattended_install_is_clean_and_a_second_run_changes_nothing() {
    let t = tmp();
    let prefix = t.path().join("machine");
    ok(install(&prefix, SMALL));
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("e2fsck -fn clean");
    }
    ok(run(&[
        "images",
        "check",
        prefix.join("swap.img").to_str().expect("utf-8"),
    ]));
    config_check(&prefix);
    let fstab = debugfs(&prefix.join("root.img"), "cat /etc/fstab");
    assert!(fstab.contains(&format!("{} / ext4 ", dev(0))), "{fstab}");
    assert!(
        fstab.contains(&format!("{} /home ext3 ", dev(1))),
        "{fstab}"
    );
    assert!(fstab.contains(&format!("{} swap swap ", dev(2))), "{fstab}");
    assert!(!fstab.contains("cobd"), "{fstab}");
    assert_eq!(
        debugfs(&prefix.join("root.img"), "cat /etc/hostname"),
        "colinux\n"
    );
    assert!(debugfs(&prefix.join("root.img"), "cat /etc/shadow").starts_with("root:*:"));
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config");
    assert!(config.contains(&format!("root={}", dev(0))), "{config}");
    assert!(config.contains("mem=128"), "{config}");

    let s = status_json(&prefix);
    assert_eq!(s["installed"], true);
    assert_eq!(s["profile"], "minimal");
    assert_eq!(s["monitor"], host().monitor.as_str());
    assert_eq!(s["config"]["ok"], true);
    assert_eq!(s["first_boot"], "skipped");
    let images = s["images"].as_array().expect("images");
    assert_eq!(images.len(), 3);
    let fs: Vec<&str> = images
        .iter()
        .map(|i| i["fs"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fs, ["ext4", "ext3", "swap"]);
    assert!(images.iter().all(|i| i["present"] == true));

    let before = snapshot(&prefix);
    let o = ok(install(&prefix, SMALL));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing changed"),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&prefix), before, "a second run changed something");
    assert!(
        !before
            .keys()
            .any(|k| k.contains("journal") || k.contains("partial") || k.contains("backup")),
        "{before:?}"
    );
    // One log per run, under <prefix>/logs.
    assert_eq!(
        std::fs::read_dir(prefix.join("logs"))
            .expect("logs")
            .count(),
        2
    );
}

#[test]
fn bfin_uclinux_profile_follows_the_seed() {
    let t = tmp();
    let prefix = t.path().join("bfin");
    let o = ok(install(
        &prefix,
        &["--profile", "bfin-uclinux", "--no-first-boot"],
    ));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("first boot: skipped"),
        "{}",
        text(&o)
    );
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("e2fsck -fn clean");
    }
    config_check(&prefix);
    let root = prefix.join("root.img");
    let fstab = debugfs(&root, "cat /etc/fstab");
    for line in [
        "/dev/cobd0 / ext3 ",
        "/dev/cobd1 /home ext3 ",
        "/dev/cobd2 swap swap ",
        "cofs0 /windows cofs defaults,noatime",
    ] {
        assert!(fstab.contains(line), "`{line}` missing from\n{fstab}");
    }
    // Passwords are SHA-512 crypt hashes of bf533 in /etc/shadow.
    let shadow = debugfs(&root, "cat /etc/shadow");
    for user in ["root", "uclinux"] {
        let line = shadow
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap_or_else(|| panic!("{user} not in {shadow}"));
        let hash = line.split(':').nth(1).expect("hash field");
        assert!(hash.starts_with("$6$"), "{hash}");
        let parsed = sha_crypt::PasswordHash::new(hash).expect("MCF hash");
        use sha_crypt::PasswordVerifier;
        sha_crypt::ShaCrypt::default()
            .verify_password(b"bf533", &parsed)
            .expect("the hash is of bf533");
    }
    assert!(!shadow.contains("bf533"), "clear text password in shadow");
    assert!(debugfs(&root, "cat /etc/passwd").contains("uclinux:x:1000:1000:"));
    let info = |f: &str| {
        let o = ok(run(&[
            "images",
            "inspect",
            "--json",
            prefix.join(f).to_str().expect("utf-8"),
        ]));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("json")
    };
    assert_eq!(info("root.img")["size_bytes"], 1024u64 << 20);
    assert_eq!(info("home.img")["size_bytes"], 1843u64 << 20);
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config");
    assert!(
        config.contains(",tcp:333:22/tcp:1000:1000/udp:69:69"),
        "{config}"
    );
    assert!(config.contains("eth1=tuntap,bfin-colinux-tap,"), "{config}");
    assert!(config.contains("root=/dev/cobd0"), "{config}");
    assert!(config.contains("cofs0=c:\\"), "{config}");
    let s = status_json(&prefix);
    assert_eq!(s["profile"], "bfin-uclinux");
    assert_eq!(s["monitor"], "colinux");
    assert_eq!(s["first_boot"], "skipped");
    let ram: u64 = s["answers"]["RAMMB"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("RAMMB");
    let swap = info("swap.img")["size_bytes"].as_u64().expect("swap size") >> 20;
    assert!(swap > ram, "swap {swap} MB not larger than RAM {ram} MB");
    assert!(
        s["tap"]["subnet"]
            .as_str()
            .is_some_and(|n| n.ends_with(".0/24")),
        "{s}"
    );
    // Nothing is rewritten by a second run: sizes and modification times stay (hashing
    // 5 GB of sparse images twice would only slow the suite down).
    let before = stat_snapshot(&prefix);
    ok(install(
        &prefix,
        &["--profile", "bfin-uclinux", "--no-first-boot"],
    ));
    assert_eq!(stat_snapshot(&prefix), before);
}

/// Issue 21 item 6: the kit's own profile on this Linux host makes a coLinux machine that
/// cannot start here. The install's last words do not send the user to `boot`: they say
/// where it runs and what it lacks, and the password the profile sets (the manual's).
#[test]
fn bfin_uclinux_on_linux_says_where_it_runs_and_its_password_not_to_boot() {
    let t = tmp();
    let prefix = t.path().join("bfin");
    let o = ok(install(
        &prefix,
        &[
            "--profile",
            "bfin-uclinux",
            "--no-first-boot",
            "--set",
            "ROOTMB=16",
            "--set",
            "HOMEMB=8",
            "--set",
            "RAMMB=128",
            "--set",
            "SWAPMB=16",
        ],
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "It cannot start on this host: coLinux cannot run on this linux",
        "coLinux, which runs on 32-bit Windows 2000..7 and Linux 2.6 hosts with at most 4 GB of RAM: install it on such a host",
        "It still needs the coLinux kernel (vmlinux) and colinux-daemon",
        "install again with --kit DIR|URL",
        "install again with --monitor uml or --monitor qemu",
        "log in as uclinux with the password bf533 from the Blackfin coLinux kit manual; change it with passwd",
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{}", text(&o));
    }
    assert!(
        !out.contains("colinux-setup boot --prefix") && !out.contains("boot --first-boot --prefix"),
        "the install sends the user to boot a machine that cannot start here:\n{out}"
    );
    // `status` does not send the user to boot it here either.
    let o = ok(run(&["status", "--prefix", p(&prefix)]));
    let st = String::from_utf8_lossy(&o.stdout);
    assert!(st.contains("first boot: skipped (it runs with"), "{st}");
    assert!(!st.contains("--first-boot --prefix"), "{st}");
    // The plan shows it too; a profile file's own password never.
    let sizes = [
        "--set",
        "ROOTMB=64",
        "--set",
        "HOMEMB=32",
        "--set",
        "SWAPMB=160",
    ];
    let o = ok(install(
        &prefix,
        &[
            &["--profile", "bfin-uclinux", "--no-first-boot", "--dry-run"][..],
            &sizes,
        ]
        .concat(),
    ));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("password bf533 from the Blackfin coLinux kit manual"),
        "{}",
        text(&o)
    );
    let file = t.path().join("mine.toml");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/bfin-uclinux.toml"),
    )
    .expect("profile");
    std::fs::write(&file, shipped.replace("bf533", "my-own-secret")).expect("write");
    let o = ok(install(
        &t.path().join("mine"),
        &[
            &["--profile", p(&file), "--no-first-boot", "--dry-run"][..],
            &sizes,
        ]
        .concat(),
    ));
    assert!(!text(&o).contains("my-own-secret"), "{}", text(&o));
}

/// Issue 21 item 8: what users read says where a value came from in their words ("set
/// with --set RAMMB", "chosen in the wizard", "from answers.toml:2"), not the team's
/// ("shipped", "given (...)"), and a Linux example folder on Linux.
#[test]
fn the_plan_speaks_users_words() {
    let t = tmp();
    let answers = t.path().join("answers.toml");
    std::fs::write(&answers, "# sizes\nHOMEMB = 8\n").expect("answers");
    let o = ok(install(
        &t.path().join("m"),
        &[
            "--profile",
            "bfin-uclinux",
            "--no-first-boot",
            "--dry-run",
            "--answers",
            p(&answers),
            "--set",
            "RAMMB=128",
            "--set",
            "ROOTMB=16",
            "--set",
            "SWAPMB=16",
        ],
    ));
    // What the program wrote (text() adds the test's own "exit Some(0)" line).
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for needle in [
        "Plan: profile bfin-uclinux (built-in), monitor colinux",
        "guest RAM:      128 MB (set with --set RAMMB)",
        "16 MB ext3 on / as /dev/cobd0 (set with --set ROOTMB)",
        &format!(
            "8 MB ext3 on /home as /dev/cobd1 (from {}:2)",
            answers.display()
        ),
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{out}");
    }
    for word in ["shipped", "given (", "Some("] {
        assert!(!out.contains(word), "`{word}` in:\n{out}");
    }
    // A folder with a space, refused for coLinux, with an example of this host's kind.
    let o = install(
        &t.path().join("a b"),
        &["--profile", "bfin-uclinux", "--no-first-boot", "--dry-run"],
    );
    fails(&o, FAILED, &["contains a space", "e.g. /"]);
    assert!(!text(&o).contains("C:\\"), "{}", text(&o));
}

/// Issue 21 item 8: a profile name on the command line that names no built-in profile is
/// a usage error (2), as an unknown --set key is; a damaged profile file stays 1603.
#[test]
fn an_unknown_profile_name_is_a_usage_error() {
    let t = tmp();
    let prefix = t.path().join("m");
    for args in [
        &[
            "install",
            "--unattended",
            "--profile",
            "minimall",
            "--prefix",
            p(&prefix),
        ][..],
        &[
            "install",
            "--unattended",
            "--set",
            "PROFILE=nosuch",
            "--prefix",
            p(&prefix),
        ],
        &[
            "install",
            "--dry-run",
            "--profile",
            "nosuch",
            "--prefix",
            p(&prefix),
        ],
        &["facts", "--profile", "nosuch"],
    ] {
        let o = run(args);
        fails(
            &o,
            2,
            &[
                "no built-in profile is called",
                "the built-in profiles are: minimal, bfin-uclinux, embedded-dev",
            ],
        );
        assert!(!text(&o).contains("shipped"), "{}", text(&o));
    }
    assert!(
        text(&run(&[
            "install",
            "--unattended",
            "--profile",
            "minimall",
            "--prefix",
            p(&prefix)
        ]))
        .contains("did you mean `minimal`?")
    );
    assert!(!prefix.exists());
    let bad = t.path().join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\nnot toml [").expect("write");
    fails(
        &run(&[
            "install",
            "--unattended",
            "--profile",
            p(&bad),
            "--prefix",
            p(&prefix),
        ]),
        FAILED,
        &["bad.toml"],
    );
}

/// Issue 21 item 8: a folder on a volume that holds no files (/proc) is refused as such,
/// before its free space ("0 MB free") is taken for the reason.
#[test]
fn a_folder_where_no_file_can_be_written_is_named_as_such() {
    let o = run(&[
        "install",
        "--unattended",
        "--profile",
        "bfin-uclinux",
        "--prefix",
        "/proc/colinux-setup-test",
        "--no-first-boot",
        "--set",
        "ROOTMB=64",
    ]);
    fails(
        &o,
        FAILED,
        &[
            "INSTALLDIR=/proc/colinux-setup-test: files cannot be written in /proc",
            "choose another folder, e.g. /",
        ],
    );
    assert!(!text(&o).contains("MB free"), "{}", text(&o));
}

/// Issue 21 item 4: a QEMU install without a kernel for QEMU (no kit carries one) is
/// refused before any work, in the dry run as in the install, saying how to get one.
#[test]
fn qemu_without_a_kernel_is_refused_before_any_work_with_the_fix() {
    let t = tmp();
    let prefix = t.path().join("m");
    let pfx = prefix.to_str().expect("utf-8 path");
    for dry in [true, false] {
        let mut args = vec![
            "install",
            "--unattended",
            "--monitor",
            "qemu",
            "--prefix",
            pfx,
        ];
        if dry {
            args.push("--dry-run");
        }
        let o = run(&args);
        fails(
            &o,
            FAILED,
            &[
                "MONITOR=qemu (--monitor)",
                "no x86-64 kernel for QEMU",
                "scripts/make-default-kit DIR",
            ],
        );
        assert!(!prefix.exists(), "dry run {dry}: {}", text(&o));
    }
}

/// Every file of the folder but logs/, with its size and modification time.
fn stat_snapshot(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name() != "logs")
        .map(|e| {
            let m = e.metadata().expect("metadata");
            (
                e.file_name().to_string_lossy().into_owned(),
                (m.len(), m.modified().expect("mtime")),
            )
        })
        .collect()
}

/// Spawns an install that stops at `step` (test hook) and returns once it is there.
fn paused_install(prefix: &Path, step: &str, extra: &[&str]) -> Child {
    let mut child = install_cmd(prefix, extra)
        .env("COLINUX_SETUP_TEST_PAUSE_AT", step)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let marker = format!("test hook: paused at {step}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&marker) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the install never reached step {step}"));
    child
}

#[test]
fn sigkill_at_each_step_then_a_rerun_ends_as_an_uninterrupted_install() {
    let t = tmp();
    let prefix = t.path().join("m");
    ok(install(&prefix, SMALL));
    let reference = snapshot(&prefix);
    ok(run(&[
        "uninstall",
        "--purge",
        "--prefix",
        prefix.to_str().expect("utf-8"),
    ]));
    assert!(!prefix.exists(), "purge leaves no folder");
    for step in [
        "prefix",
        "image:root",
        "image:root:writing",
        "image:home:writing",
        "swap",
        "config",
        "state",
        "commit",
    ] {
        let mut child = paused_install(&prefix, step, SMALL);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        ok(install(&prefix, SMALL));
        assert_eq!(
            snapshot(&prefix),
            reference,
            "after SIGKILL at {step} and a re-run"
        );
        e2e_tests::e2fsck_clean(&prefix.join("root.img")).expect("clean root");
        ok(run(&[
            "uninstall",
            "--purge",
            "--prefix",
            prefix.to_str().expect("utf-8"),
        ]));
    }
    // A kill, then a failing re-run: everything the interrupted install made goes.
    let child = paused_install(&prefix, "config", SMALL);
    let mut child = child;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let o = install_cmd(&prefix, SMALL)
        .env("COLINUX_SETUP_TEST_FAIL_AT", "state")
        .output()
        .expect("run");
    fails(
        &o,
        FAILED,
        &["failure injected at step state", "the log of this run is"],
    );
    assert!(
        !prefix.exists(),
        "rolled back to nothing: {:?}",
        snapshot(&prefix)
    );
}

/// A home.img with files, made before the install by `images build`.
fn user_home(dir: &Path, prefix: &Path) -> String {
    let data = dir.join("homedata");
    std::fs::create_dir_all(data.join("uclinux/project")).expect("mkdir");
    std::fs::write(
        data.join("uclinux/project/main.c"),
        "int main(void) { return 0; }\n",
    )
    .expect("write");
    std::fs::create_dir_all(prefix).expect("prefix");
    let img = prefix.join("home.img");
    ok(run(&[
        "images",
        "build",
        img.to_str().expect("utf-8"),
        "--fs",
        "ext3",
        "--size",
        "16M",
        "--from",
        data.to_str().expect("utf-8"),
    ]));
    sha256(&img)
}

#[test]
fn a_users_home_image_survives_everything_but_purge() {
    let t = tmp();
    let prefix = t.path().join("m");
    let home = prefix.join("home.img");
    let digest = user_home(t.path(), &prefix);
    let p = prefix.to_str().expect("utf-8");

    ok(install(&prefix, SMALL));
    assert_eq!(sha256(&home), digest, "install");
    let s = status_json(&prefix);
    let h = &s["images"].as_array().expect("images")[1];
    assert_eq!(h["file"], "home.img");
    assert_eq!(h["origin"], "kept");
    assert!(debugfs(&home, "cat /uclinux/project/main.c").contains("int main"));

    ok(install(&prefix, SMALL));
    assert_eq!(sha256(&home), digest, "re-install");

    // A failed re-install with other answers: config.txt and state come back as they were.
    let before = snapshot(&prefix);
    let mut other: Vec<&str> = SMALL.to_vec();
    other[3] = "RAMMB=136";
    let o = install_cmd(&prefix, &other)
        .env("COLINUX_SETUP_TEST_FAIL_AT", "state")
        .output()
        .expect("run");
    fails(&o, FAILED, &["failure injected"]);
    assert_eq!(snapshot(&prefix), before, "failed install rolled back");
    assert_eq!(sha256(&home), digest, "failed install");

    let o = ok(run(&["uninstall", "--prefix", p]));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("kept"),
        "{}",
        text(&o)
    );
    assert_eq!(sha256(&home), digest, "uninstall");
    assert!(prefix.join("root.img").exists() && prefix.join("swap.img").exists());
    assert!(!prefix.join("config.txt").exists() && !prefix.join("install-state.json").exists());
    assert_eq!(status_json(&prefix)["installed"], false);

    // Installing again over kept images keeps them, then --purge removes everything.
    ok(install(&prefix, SMALL));
    assert_eq!(sha256(&home), digest, "install over kept images");
    ok(run(&["uninstall", "--purge", "--prefix", p]));
    assert!(!prefix.exists(), "{:?}", snapshot(&prefix));
}

#[test]
fn bad_inputs_fail_with_the_key_and_leave_the_prefix_as_it_was() {
    let t = tmp();
    let prefix = t.path().join("existing");
    std::fs::create_dir_all(&prefix).expect("mkdir");
    std::fs::write(prefix.join("keep.txt"), "mine").expect("write");
    let before = snapshot(&prefix);
    let fresh = t.path().join("fresh");

    let answers = t.path().join("answers.toml");
    std::fs::write(&answers, "RAMMB = 128\nRAMBM = 128\n").expect("write");
    let a = answers.to_str().expect("utf-8");
    let bad_toml = t.path().join("bad.toml");
    std::fs::write(&bad_toml, "name = \"x\"\n[ram\nmin_mb = 1\n").expect("write");
    let unknown_key = t.path().join("unknown.toml");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/minimal.toml"
    ))
    .expect("profile");
    std::fs::write(
        &unknown_key,
        shipped.replacen("min_mb = 16", "min_mbb = 16", 1),
    )
    .expect("write");

    let cases: Vec<(Vec<String>, i32, Vec<&str>)> = vec![
        (
            vec!["--answers".into(), a.into()],
            FAILED,
            vec!["answers.toml:2", "RAMBM", "did you mean `RAMMB`"],
        ),
        (
            vec!["--set".into(), "RAMBM=64".into()],
            2,
            vec!["RAMBM", "did you mean `RAMMB`"],
        ),
        (vec!["--set".into(), "RAMMB".into()], 2, vec!["KEY=VALUE"]),
        (
            vec!["--set".into(), "RAMMB=99999999".into()],
            FAILED,
            vec!["RAMMB=99999999", "larger than this host allows", "MB"],
        ),
        // The monitor starts a guest with at least 128 MB: less is refused, not
        // written as a mem= that does not run.
        (
            vec!["--set".into(), "RAMMB=64".into()],
            FAILED,
            vec![
                "RAMMB=64",
                "too small",
                "runs a guest with at least 128 MB",
                "give RAMMB=128 or more",
            ],
        ),
        // config.txt's serial port is coLinux's: UML and QEMU would drop it.
        (
            vec!["--set".into(), "SERIAL=ttyUSB0".into()],
            FAILED,
            vec![
                "SERIAL=ttyUSB0",
                "monitor gives the guest no host serial port",
                "leave SERIAL empty",
            ],
        ),
        (
            vec!["--set".into(), "HOMEMB=100000000".into()],
            FAILED,
            vec!["not enough free space", "MB free", "HOMEMB"],
        ),
        (
            vec![
                "--kit".into(),
                t.path().join("no-such-kit").display().to_string(),
            ],
            FAILED,
            vec!["KIT", "no-such-kit: no such folder"],
        ),
        (
            vec!["--profile".into(), bad_toml.display().to_string()],
            FAILED,
            vec!["bad.toml", "line 2", "not valid TOML"],
        ),
        (
            vec!["--profile".into(), unknown_key.display().to_string()],
            FAILED,
            vec!["unknown.toml", "ram.min_mbb", "did you mean `min_mb`"],
        ),
        // A name on the command line that names no built-in profile is a usage error, as
        // an unknown --set key is (issue 21 item 8; it was 1603).
        (
            vec!["--profile".into(), "minimall".into()],
            2,
            vec!["PROFILE", "did you mean `minimal`"],
        ),
        (
            vec!["--monitor".into(), "vmware".into()],
            2,
            vec!["--monitor vmware"],
        ),
    ];
    for target in [&prefix, &fresh] {
        for (extra, code, needles) in &cases {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let o = install(target, &extra);
            fails(&o, *code, needles);
            if *code == FAILED {
                let err = String::from_utf8_lossy(&o.stderr);
                let last = err.lines().last().unwrap_or("");
                assert!(
                    last.contains("the log of this run is"),
                    "last line names the log: {err}"
                );
            }
            assert_eq!(snapshot(&prefix), before, "{extra:?} changed the prefix");
            assert!(!fresh.exists(), "{extra:?} created the prefix");
        }
    }

    // A prefix with a space, for the coLinux monitor.
    let spaced = t.path().join("with space");
    let o = install(&spaced, &["--profile", "bfin-uclinux"]);
    fails(
        &o,
        FAILED,
        &["INSTALLDIR", "with space", "contains a space"],
    );
    assert!(!spaced.exists());
    // The same folder is fine for the host's monitor (User-mode Linux or QEMU).
    ok(install(&spaced, SMALL));
}

#[test]
fn without_a_terminal_and_without_unattended_it_fails_at_once() {
    let t = tmp();
    let prefix = t.path().join("m");
    let start = Instant::now();
    let o = run(&["install", "--prefix", prefix.to_str().expect("utf-8")]);
    fails(&o, FAILED, &["--unattended", "no terminal"]);
    // A watchdog: it failed instead of waiting for input.
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(!prefix.exists());
    // The bare command is `install`.
    let o = run(&["--prefix", prefix.to_str().expect("utf-8")]);
    fails(&o, FAILED, &["--unattended"]);
}

#[test]
fn saved_answers_reproduce_the_same_config_and_images() {
    let t = tmp();
    let prefix = t.path().join("m");
    let answers = t.path().join("answers.toml");
    let p = prefix.to_str().expect("utf-8");
    let mut args = vec![
        "install",
        "--unattended",
        "--prefix",
        p,
        "--profile",
        "bfin-uclinux",
        "--no-first-boot",
    ];
    args.extend_from_slice(&[
        "--set",
        "RAMMB=128",
        "--set",
        "ROOTMB=96",
        "--set",
        "HOMEMB=64",
        "--set",
        "SWAPMB=256",
    ]);
    args.extend_from_slice(&["--save-answers", answers.to_str().expect("utf-8")]);
    ok(run(&args));
    let saved = std::fs::read_to_string(&answers).expect("answers");
    for k in [
        "PROFILE = \"bfin-uclinux\"",
        "RAMMB = 128",
        "ROOTMB = 96",
        "SUBNET = ",
        "NOFIRSTBOOT = 1",
    ] {
        assert!(saved.contains(k), "{k} not in\n{saved}");
    }
    let first = snapshot(&prefix);
    ok(run(&["uninstall", "--purge", "--prefix", p]));
    assert!(!prefix.exists());
    ok(run(&[
        "install",
        "--unattended",
        "--answers",
        answers.to_str().expect("utf-8"),
    ]));
    let second = snapshot(&prefix);
    for f in ["config.txt", "root.img", "home.img", "swap.img"] {
        assert_eq!(first.get(f), second.get(f), "{f} differs");
    }
    assert_eq!(first, second);
}

#[test]
fn a_second_concurrent_install_exits_1618_and_ctrl_c_rolls_back_with_1602() {
    let t = tmp();
    let prefix = t.path().join("m");
    let mut first = paused_install(&prefix, "swap", SMALL);
    let o = install(&prefix, SMALL);
    fails(
        &o,
        BUSY,
        &["another colinux-setup run", "the log of this run is"],
    );
    let o = run(&["uninstall", "--prefix", prefix.to_str().expect("utf-8")]);
    fails(&o, BUSY, &["another colinux-setup run"]);
    // Ctrl-C to the first: it undoes what it made and exits 1602.
    signal(&first, "INT");
    let status = first.wait().expect("wait");
    assert_eq!(status.code(), Some(CANCELLED));
    assert!(!prefix.exists(), "rolled back: {:?}", snapshot(&prefix));
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(st.success());
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let t = tmp();
    let prefix = t.path().join("m");
    let o = ok(run(&[
        "install",
        "--dry-run",
        "--json",
        "--profile",
        "bfin-uclinux",
        "--prefix",
        prefix.to_str().expect("utf-8"),
    ]));
    let v: serde_json::Value = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("ndjson"))
        .find(|v| v["event"] == "plan")
        .expect("a plan event");
    assert_eq!(v["event"], "plan");
    assert_eq!(v["plan"]["monitor"], "colinux");
    assert_eq!(v["plan"]["images"][0]["device"], "/dev/cobd0");
    assert_eq!(v["plan"]["first_boot"]["state"], "pending");
    assert!(
        v["plan"]["tap"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() == 4)
    );
    assert!(!prefix.exists());
    let host_args = host().install_args();
    let mut args = vec![
        "install",
        "--dry-run",
        "--prefix",
        prefix.to_str().expect("utf-8"),
    ];
    args.extend(host_args.iter().map(String::as_str));
    let o = ok(host_cmd(&args).output().expect("run colinux-setup"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing was changed"));
    assert!(!prefix.exists());
}

#[test]
fn facts_report_host_and_recommendations_with_rules() {
    let o = ok(run(&["facts", "--json", "--profile", "bfin-uclinux"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v["host"]["total_ram_mb"].as_u64().is_some_and(|m| m > 0));
    assert!(v["host"]["volume"]["free_bytes"].as_u64().is_some());
    let ram = v["recommended"]["ram"]["mb"].as_u64().expect("ram");
    assert!(ram.is_multiple_of(4) && (128..=984).contains(&ram), "{v}");
    assert!(v["recommended"]["swap"]["mb"].as_u64().expect("swap") > ram);
    assert_eq!(v["recommended"]["root"]["mb"], 1024);
    assert_eq!(v["recommended"]["home"]["mb"], 1843);
    assert!(
        v["recommended"]["ram"]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("128 MB"))
    );
    if v["host"]["total_ram_mb"].as_u64().unwrap_or(0) > 4096 {
        assert!(
            v["recommended"]["notes"]
                .to_string()
                .contains("more than 4 GB"),
            "{v}"
        );
    }
}

/// The installed machine boots when its monitor is started by hand, not by colinux-setup
/// (`colinux.poweroff` makes its init print the mounts and power off): User-mode Linux
/// with the machine's copy of the kit's kernel, or QEMU with its kernel and initramfs.
#[test]
fn the_installed_minimal_machine_boots_on_the_hosts_monitor() {
    let t = tmp();
    let prefix = t.path().join("m");
    ok(install(&prefix, SMALL));
    let img = |f: &str| prefix.join(f).display().to_string();
    let mut monitor = if host().is_uml() {
        let uml_dir = t.path().join("uml");
        std::fs::create_dir_all(&uml_dir).expect("mkdir");
        let mut c = Command::new(prefix.join("linux.uml"));
        c.args([
            "mem=128M",
            "root=/dev/ubda",
            "con=null",
            "con0=null,fd:1",
            "colinux.poweroff",
        ])
        .arg(format!("ubd0={}", img("root.img")))
        .arg(format!("ubd1={}", img("home.img")))
        .arg(format!("ubd2={}", img("swap.img")))
        .arg(format!("uml_dir={}", uml_dir.display()))
        .arg("umid=install-cli")
        .env("TMPDIR", &uml_dir);
        c
    } else {
        let mut c = Command::new("qemu-system-x86_64");
        c.args([
            "-accel",
            host().accel.as_deref().unwrap_or("tcg"),
            "-m",
            "128",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
            "-kernel",
            &img("vmlinuz"),
            "-initrd",
            &img("initrd.img"),
            "-append",
            "root=/dev/vda console=ttyS0 panic=-1 colinux.poweroff",
        ]);
        for (i, f) in ["root.img", "home.img", "swap.img"].iter().enumerate() {
            c.arg("-drive")
                .arg(format!("file={},format=raw,if=virtio,index={i}", img(f)));
        }
        c
    };
    let mut child = monitor
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("the monitor");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        let _ = tx.send(s);
    });
    let limit = secs(90);
    let console = rx
        .recv_timeout(Duration::from_secs(limit))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill")
                .args(["-9", &format!("-{}", child.id())])
                .status();
            panic!("{} did not power off in {limit} s", host().name())
        });
    let _ = child.wait();
    assert!(
        console.contains("colinux-setup: guest colinux is up"),
        "{console}"
    );
    assert!(
        console.contains(&format!("{} /home ext3", dev(1)))
            || console.contains(&format!("{} /home ext4", dev(1))),
        "{console}"
    );
    assert!(console.contains(&dev(2)), "swap not on: {console}");
    e2e_tests::e2fsck_clean(&PathBuf::from(img("root.img"))).expect("root clean after the boot");
}

use std::os::unix::process::CommandExt as _;

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn uninstall_then_uninstall_purge_removes_the_kept_images_and_the_folder() {
    let t = tmp();
    let prefix = t.path().join("m");
    let p = prefix.to_str().expect("utf-8");
    ok(install(&prefix, SMALL));
    let o = ok(run(&["uninstall", "--prefix", p]));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("root.img (remove the images with --purge)"),
        "{out}"
    );
    for img in ["root.img", "home.img", "swap.img"] {
        assert!(prefix.join(img).exists(), "{img}: {}", text(&o));
    }
    let o = ok(run(&["uninstall", "--purge", "--prefix", p]));
    let t2 = text(&o);
    assert!(!t2.contains("nothing to do"), "{t2}");
    for img in ["root.img", "home.img", "swap.img"] {
        assert!(t2.contains(img), "{img} not said removed:\n{t2}");
    }
    assert!(!prefix.exists(), "{:?}\n{t2}", names(&prefix));
    // Nothing left: a third run has nothing to do.
    let o = ok(run(&["uninstall", "--purge", "--prefix", p]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing to do"));
}

#[test]
fn a_kept_image_changed_after_uninstall_is_kept_by_purge_with_the_reason() {
    let t = tmp();
    let prefix = t.path().join("m");
    let p = prefix.to_str().expect("utf-8");
    ok(install(&prefix, SMALL));
    ok(run(&["uninstall", "--prefix", p]));
    // home.img grows by a byte; root.img is replaced by another file of its name.
    let home = prefix.join("home.img");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&home)
        .expect("open home.img");
    std::io::Write::write_all(&mut f, b"x").expect("append");
    drop(f);
    let home_digest = sha256(&home);
    let root = prefix.join("root.img");
    std::fs::remove_file(&root).expect("rm root.img");
    std::fs::write(&root, "the user's notes\n").expect("write root.img");
    let o = ok(run(&["uninstall", "--purge", "--prefix", p]));
    let t2 = text(&o);
    assert!(
        t2.contains("home.img is ") && t2.contains("bytes, the install recorded"),
        "{t2}"
    );
    assert!(
        t2.contains("root.img is ") && t2.contains("it was kept"),
        "{t2}"
    );
    assert_eq!(sha256(&home), home_digest);
    assert_eq!(
        std::fs::read_to_string(&root).expect("root.img"),
        "the user's notes\n"
    );
    // swap.img was still what the install made: it went. The folder stays for the rest.
    assert!(!prefix.join("swap.img").exists(), "{t2}");
    assert_eq!(names(&prefix), ["home.img", "logs", "root.img"], "{t2}");
}

#[test]
fn a_kept_images_record_that_names_outside_the_folder_is_not_followed() {
    let t = tmp();
    let prefix = t.path().join("m");
    let p = prefix.to_str().expect("utf-8");
    ok(install(&prefix, SMALL));
    ok(run(&["uninstall", "--prefix", p]));
    let record = prefix.join(".colinux-setup-kept.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("the kept images' record"))
            .expect("json");
    // A victim outside the folder that is an image of the recorded kind, size and UUID.
    let victim = t.path().join("victim.img");
    std::fs::copy(prefix.join("swap.img"), &victim).expect("copy");
    let files = v["files"].as_array_mut().expect("files");
    let swap = files
        .iter_mut()
        .find(|f| f["file"] == "swap.img")
        .expect("swap record");
    swap["file"] = serde_json::Value::from("../victim.img");
    std::fs::write(&record, serde_json::to_vec(&v).expect("json")).expect("write");
    let o = ok(run(&["uninstall", "--purge", "--prefix", p]));
    let t2 = text(&o);
    assert!(victim.exists(), "{t2}");
    assert!(t2.contains("../victim.img"), "{t2}");
    assert!(prefix.join("swap.img").exists(), "{t2}");
    assert!(!prefix.join("root.img").exists(), "{t2}");
    // A symbolic link as the record is refused before anything is removed.
    let t3 = tmp();
    let prefix = t3.path().join("m");
    let p = prefix.to_str().expect("utf-8");
    ok(install(&prefix, SMALL));
    ok(run(&["uninstall", "--prefix", p]));
    let record = prefix.join(".colinux-setup-kept.json");
    let elsewhere = t3.path().join("record.json");
    std::fs::rename(&record, &elsewhere).expect("move");
    std::os::unix::fs::symlink(&elsewhere, &record).expect("symlink");
    let o = run(&["uninstall", "--purge", "--prefix", p]);
    fails(&o, FAILED, &["symbolic link"]);
    assert!(prefix.join("root.img").exists());
}
