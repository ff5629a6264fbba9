//! `images rebuild`, end to end through the binary: a minimal machine installed into a
//! temporary folder (no first boot, small sizes), its home.img filled with a few hundred
//! user files by `images build --force`, then rebuilt; files compared by sha256 after a
//! `debugfs rdump` (an independent reader), images judged by `e2fsck -fn`, and the
//! machine booted afterwards on the monitor this host runs guests on (`common::host`:
//! it is installed for that monitor, and its devices are named as that monitor does).
//!
//! `COLINUX_SETUP_TEST_PAUSE_AT=rebuild:home:writing|replace|state` is a test-only
//! hook (see installer/src/cmd/rebuild.rs): the rebuild stops there until killed.

use crate::common;

use common::{
    BUSY, Booting, SMALL, cmd, debugfs, dev, host_cmd, install_cmd, p, secs, sha256, text,
};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// `images rebuild home --size 48M` stopped by the test hook at `step` (until killed).
fn paused_rebuild(prefix: &Path, step: &str) -> std::process::Child {
    let err = prefix.with_file_name(format!("{}.err", step.replace(':', "-")));
    let child = cmd(&[
        "images",
        "rebuild",
        "--prefix",
        p(prefix),
        "home",
        "--size",
        "48M",
    ])
    .env("COLINUX_SETUP_TEST_PAUSE_AT", step)
    .stdout(Stdio::null())
    .stderr(File::create(&err).expect("err"))
    .spawn()
    .expect("rebuild");
    let start = Instant::now();
    while !std::fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("test hook: paused at")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no pause at {step}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn run(args: &[&str], code: i32) -> Output {
    let o = cmd(args).output().expect("run colinux-setup");
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    o
}

/// A machine with `n` user files in /home/u (and 3 in /home/keep): (tempdir, prefix,
/// sha256 of each file by its path under /home).
fn machine(n: usize, fs: &str) -> (tempfile::TempDir, PathBuf, BTreeMap<String, String>) {
    e2e_tests::require_tools().expect("tools");
    let t = tempfile::Builder::new()
        .prefix("rebuild-cli-")
        .tempdir()
        .expect("tempdir");
    let prefix = t.path().join("m");
    let o = install_cmd(&prefix, SMALL).output().expect("install");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let data = t.path().join("data");
    let mut sums = BTreeMap::new();
    for (dir, count) in [("u", n), ("keep", 3)] {
        std::fs::create_dir_all(data.join(dir)).expect("mkdir");
        for i in 0..count {
            let rel = format!("{dir}/f{i:03}.txt");
            let body: Vec<u8> = (0..(i * 97 % 9000 + 1))
                .map(|k| ((k * 31 + i * 7) % 251) as u8)
                .collect();
            std::fs::write(data.join(&rel), &body).expect("write");
            sums.insert(rel.clone(), sha256(&data.join(&rel)));
        }
    }
    run(
        &[
            "images",
            "build",
            "--force",
            p(&prefix.join("home.img")),
            "--fs",
            fs,
            "--size",
            "32M",
            "--label",
            "home",
            "--from",
            p(&data),
        ],
        0,
    );
    (t, prefix, sums)
}

/// Every file of `sums` in `image`, read back by `debugfs rdump`.
fn assert_files(image: &Path, sums: &BTreeMap<String, String>, skip_dir: Option<&str>) {
    let out = tempfile::tempdir().expect("tempdir");
    for dir in ["u", "keep"] {
        if Some(dir) == skip_dir {
            continue;
        }
        debugfs(image, &format!("rdump /{dir} {}", p(out.path())));
    }
    for (rel, sum) in sums {
        if skip_dir.is_some_and(|d| rel.starts_with(&format!("{d}/"))) {
            continue;
        }
        assert_eq!(&sha256(&out.path().join(rel)), sum, "{rel} in {image:?}");
    }
}

/// Boots the machine, lists /home/u and powers off; returns the console.
fn boot(prefix: &Path) -> String {
    let out = boot_with(
        prefix,
        "echo FILES=$(ls /home/u | wc -l); grep /home /proc/mounts; poweroff\n",
    );
    assert!(out.contains("guest colinux is up"), "{out}");
    out
}

fn status_home(prefix: &Path) -> serde_json::Value {
    let o = run(&["status", "--json", "--prefix", p(prefix)], 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["role"] == "home")
        .cloned()
        .expect("home")
}

#[test]
fn rebuilding_home_larger_keeps_every_file_and_the_machine_boots() {
    let (_t, prefix, sums) = machine(300, "ext3");
    let home = prefix.join("home.img");
    let o = run(
        &[
            "images",
            "rebuild",
            "--prefix",
            p(&prefix),
            "home",
            "--size",
            "64M",
        ],
        0,
    );
    assert!(
        text(&o).contains("home.img: rebuilt, 64 MiB ext3"),
        "{}",
        text(&o)
    );
    assert!(!prefix.join("home.img.bak").exists());
    assert!(!prefix.join("home.img.new").exists());
    e2e_tests::e2fsck_clean(&home).expect("e2fsck -fn clean");
    assert_files(&home, &sums, None);
    let h = status_home(&prefix);
    assert_eq!(h["size_mb"], 64, "{h}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.join("install-state.json")).expect("state"))
            .expect("state json");
    assert_eq!(st["answers"]["HOMEMB"], "64", "{st}");
    let rec = st["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["file"] == "home.img")
        .cloned()
        .expect("home record");
    assert_eq!(rec["bytes"], 64 << 20);
    assert_eq!(rec["fs"], "ext3");
    let out = boot(&prefix);
    assert!(out.contains("FILES=300"), "{out}");
    assert!(out.contains(&format!("{} /home ext3", dev(1))), "{out}");

    // Shrink back to auto with the backup kept.
    run(
        &[
            "images",
            "rebuild",
            "--prefix",
            p(&prefix),
            "home",
            "--size",
            "auto",
            "--keep-backup",
        ],
        0,
    );
    assert!(prefix.join("home.img.bak").exists());
    assert!(status_home(&prefix)["size_mb"].as_u64().expect("size") < 64);
    assert_files(&home, &sums, None);
}

#[test]
fn sigkill_during_a_rebuild_leaves_home_as_it_was_and_the_machine_bootable() {
    let (_t, prefix, sums) = machine(200, "ext3");
    let home = prefix.join("home.img");
    let before = sha256(&home);
    for step in ["rebuild:home:writing", "rebuild:home:replace"] {
        let mut child = paused_rebuild(&prefix, step);
        // The machine is locked while a rebuild runs.
        let o = cmd(&["images", "rebuild", "--prefix", p(&prefix), "home"])
            .output()
            .expect("second rebuild");
        assert_eq!(o.status.code(), Some(BUSY), "{}", text(&o));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        assert_eq!(
            sha256(&home),
            before,
            "home.img changed by a kill at {step}"
        );
    }
    e2e_tests::e2fsck_clean(&home).expect("e2fsck -fn clean");
    let out = boot(&prefix);
    assert!(out.contains("FILES=200"), "{out}");
    // The next rebuild clears what the killed ones left.
    run(&["images", "rebuild", "--prefix", p(&prefix), "home"], 0);
    assert_files(&home, &sums, None);
    let left: Vec<String> = std::fs::read_dir(&prefix)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".new") || n.contains(".partial") || n.ends_with(".bak"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn converting_home_to_ext4_needs_root_in_the_same_run_and_then_boots() {
    let (_t, prefix, sums) = machine(300, "ext3");
    let home = prefix.join("home.img");
    let before = sha256(&home);
    let o = run(
        &[
            "images",
            "rebuild",
            "--prefix",
            p(&prefix),
            "home",
            "--fs",
            "ext4",
        ],
        2,
    );
    assert!(
        text(&o).contains("rebuild root in the same run"),
        "{}",
        text(&o)
    );
    assert_eq!(sha256(&home), before);
    run(
        &[
            "images",
            "rebuild",
            "--prefix",
            p(&prefix),
            "root",
            "home",
            "--fs",
            "ext4",
        ],
        0,
    );
    let o = run(&["images", "inspect", "--json", p(&home)], 0);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(info["kind"], "ext4", "{info}");
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("e2fsck -fn clean");
    }
    assert_files(&home, &sums, None);
    assert!(debugfs(&prefix.join("root.img"), "cat /etc/fstab").contains("/home ext4"));
    let out = boot(&prefix);
    assert!(out.contains(&format!("{} /home ext4", dev(1))), "{out}");
    assert!(out.contains("FILES=300"), "{out}");
}

#[test]
fn a_damaged_home_rebuilds_clean_with_the_losses_listed() {
    let (_t, prefix, sums) = machine(300, "ext3");
    let home = prefix.join("home.img");
    // Zero the first directory block of /u.
    let blocks = debugfs(&home, "blocks /u");
    let block: u64 = blocks
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("blocks of /u: {blocks}"));
    let bs: u64 = debugfs(&home, "stats")
        .lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("block size");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&home)
        .expect("open");
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(block * bs)).expect("seek");
    f.write_all(&vec![0u8; usize::try_from(bs).expect("bs")])
        .expect("zero");
    drop(f);
    let damaged = sha256(&home);
    let o = run(&["images", "rebuild", "--prefix", p(&prefix), "home"], 0);
    let t = text(&o);
    assert!(t.contains("lost:"), "{t}");
    assert!(t.contains("could not be read"), "{t}");
    assert_ne!(sha256(&home), damaged);
    e2e_tests::e2fsck_clean(&home).expect("e2fsck -fn clean after the rebuild");
    assert_files(&home, &sums, Some("u"));
}

/// Writes files into an image with `debugfs -w` (the guest's own changes, made without
/// booting): each `(path, body)`; folders on the way are made.
fn write_into(image: &Path, files: &[(&str, &[u8])]) {
    let t = tempfile::tempdir().expect("tempdir");
    let mut script = String::new();
    let mut made = std::collections::BTreeSet::new();
    for (i, (path, body)) in files.iter().enumerate() {
        let mut dir = String::new();
        for comp in path
            .trim_start_matches('/')
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            dir = format!("{dir}/{comp}");
            let exists = !debugfs(image, &format!("stat {dir}")).is_empty();
            if !exists && made.insert(dir.clone()) {
                script.push_str(&format!("mkdir {dir}\n"));
            }
        }
        let src = t.path().join(format!("f{i}"));
        std::fs::write(&src, body).expect("write");
        if !debugfs(image, &format!("stat {path}")).is_empty() {
            script.push_str(&format!("rm {path}\n"));
        }
        script.push_str(&format!("write {} {path}\n", p(&src)));
    }
    let cmds = t.path().join("cmds");
    std::fs::write(&cmds, script).expect("write");
    let o = std::process::Command::new(e2e_tests::tools::tool("debugfs").expect("debugfs"))
        .arg("-w")
        .arg("-f")
        .arg(&cmds)
        .arg(image)
        .output()
        .expect("debugfs");
    assert!(o.status.success(), "{}", text(&o));
}

/// `debugfs cat` of one file.
fn cat(image: &Path, path: &str) -> String {
    debugfs(image, &format!("cat {path}"))
}

#[test]
fn rebuilding_root_keeps_the_preserved_paths_and_nothing_else_of_the_old_root() {
    let (_t, prefix, _sums) = machine(5, "ext3");
    let root = prefix.join("root.img");
    let fstab_before = cat(&root, "/etc/fstab");
    write_into(
        &root,
        &[
            ("/etc/ssh/ssh_host_ed25519_key", b"KEY-made-in-the-guest\n"),
            ("/root/notes.txt", b"notes of root\n"),
            ("/root/.profile", b"export PS1='# '\n"),
            ("/etc/dropbear/key", b"DROPBEAR\n"),
            ("/opt/junk/file", b"not kept\n"),
        ],
    );
    // /etc/fstab damaged in the guest: the rebuild writes the plan's.
    write_into(&root, &[("/etc/fstab", b"garbage\n")]);
    e2e_tests::e2fsck_clean(&root).expect("the test's own edits are clean");
    let o = run(
        &[
            "images",
            "rebuild",
            "--prefix",
            p(&prefix),
            "root",
            "--preserve",
            "/etc/dropbear/",
        ],
        0,
    );
    let out = text(&o);
    assert!(
        out.contains("keeping /etc/dropbear, /etc/ssh, /lib/modules, /root")
            && out.contains("/lib/modules: not in"),
        "{out}"
    );
    e2e_tests::e2fsck_clean(&root).expect("rebuilt root is clean");
    assert_eq!(
        cat(&root, "/etc/ssh/ssh_host_ed25519_key"),
        "KEY-made-in-the-guest\n"
    );
    assert_eq!(cat(&root, "/root/notes.txt"), "notes of root\n");
    assert_eq!(cat(&root, "/root/.profile"), "export PS1='# '\n");
    assert_eq!(cat(&root, "/etc/dropbear/key"), "DROPBEAR\n");
    assert_eq!(cat(&root, "/etc/fstab"), fstab_before);
    assert!(
        debugfs(&root, "ls /opt").find("junk").is_none(),
        "{}",
        debugfs(&root, "ls -l /opt")
    );
    // The kit's files are fresh: busybox is there and the machine boots, reading the kept file.
    let con = boot_with(&prefix, "cat /root/notes.txt; poweroff\n");
    assert!(con.contains("notes of root"), "{con}");

    // --no-preserve keeps nothing.
    run(
        &[
            "images",
            "rebuild",
            "--prefix",
            p(&prefix),
            "root",
            "--no-preserve",
        ],
        0,
    );
    assert!(cat(&root, "/root/notes.txt").is_empty());
    // A bad path is a usage error and changes nothing.
    let before = sha256(&root);
    let o = run(
        &[
            "images",
            "rebuild",
            "--prefix",
            p(&prefix),
            "root",
            "--preserve",
            "../etc",
        ],
        2,
    );
    assert!(text(&o).contains("absolute guest path"), "{}", text(&o));
    assert_eq!(sha256(&root), before);
}

#[test]
fn a_kill_after_the_rename_is_finished_by_the_next_rebuild() {
    let (_t, prefix, sums) = machine(20, "ext3");
    let home = prefix.join("home.img");
    let mut child = paused_rebuild(&prefix, "rebuild:home:state");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // The new image is in place; the state still has the old record.
    assert_eq!(std::fs::metadata(&home).expect("home").len(), 48 << 20);
    let recorded = |prefix: &Path| -> u64 {
        let st: serde_json::Value = serde_json::from_slice(
            &std::fs::read(prefix.join("install-state.json")).expect("state"),
        )
        .expect("json");
        st["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["file"] == "home.img")
            .and_then(|f| f["bytes"].as_u64())
            .expect("home record")
    };
    assert_eq!(recorded(&prefix), 32 << 20);
    // The next rebuild (of another image) records what the killed one put in place.
    run(&["images", "rebuild", "--prefix", p(&prefix), "swap"], 0);
    assert_eq!(recorded(&prefix), 48 << 20);
    assert!(!prefix.join(".rebuild-pending.json").exists());
    assert_files(&home, &sums, None);
}

/// Boots the machine, types `input` on its console once the shell is there (a PC's
/// serial port drops what comes before), returns the console.
fn boot_with(prefix: &Path, input: &str) -> String {
    let mut b = Booting::spawn(host_cmd(&[
        "boot",
        "--prefix",
        p(prefix),
        "--timeout",
        &secs(30).to_string(),
    ]));
    b.wait_for("/ # ", secs(30));
    b.type_line(input);
    let (code, out) = b.wait(secs(40));
    assert_eq!(code, Some(0), "{out}");
    out
}
