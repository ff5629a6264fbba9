//! `colinux-setup images ...` as users and scripts run it: exit codes, messages, JSON,
//! and what is left on disk when things go wrong.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_colinux-setup");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("colinux-setup runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Exit status as a POSIX parent sees it: 1603 arrives as 1603 & 0xff.
const FATAL: i32 = 1603 & 0xff;

#[test]
fn build_check_and_inspect_an_image() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::write(src.join("etc/motd"), b"welcome\n").expect("write");
    let fstab = t.path().join("fstab");
    std::fs::write(&fstab, b"/dev/cobd0 / ext3 defaults 0 1\n").expect("write");
    let img = t.path().join("root.img");
    let img_s = img.to_str().expect("utf-8 path");
    let from = src.to_str().expect("utf-8");
    let file = format!("{}:/etc/fstab", fstab.display());
    let o = run(&[
        "images", "build", img_s, "--fs", "ext3", "--kernel", "2.6.33", "--size", "auto+20%",
        "--from", from, "--file", &file, "--label", "root", "--owner", "0:0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ext3"));

    let o = run(&["images", "inspect", img_s, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect --json is JSON");
    assert_eq!(v["kind"], "ext3");
    assert_eq!(v["label"], "root");
    assert!(
        v["features"]
            .as_array()
            .expect("features")
            .iter()
            .any(|f| f == "has_journal")
    );
    assert!(v["free_blocks"].as_u64().expect("free") > 0);

    let o = run(&["images", "check", img_s]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

#[test]
fn json_progress_is_ndjson_ending_in_done() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = t.path().join("x.img");
    let o = run(&[
        "images",
        "build",
        img.to_str().expect("utf-8"),
        "--fs",
        "ext4",
        "--size",
        "8M",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(lines.iter().any(|l| l["event"] == "phase"));
    let last = lines.last().expect("events");
    assert_eq!(last["event"], "done");
    assert_eq!(last["image"]["level"], "ext4-modern");
}

#[test]
fn usage_errors_exit_2_and_say_what_to_do() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = t.path().join("x.img");
    let img_s = img.to_str().expect("utf-8");
    for (args, needle) in [
        (
            vec!["images", "build", img_s, "--fs", "ext5", "--size", "8M"],
            "unknown filesystem 'ext5'",
        ),
        (
            vec!["images", "build", img_s, "--fs", "ext3", "--size", "lots"],
            "'lots' is not a size",
        ),
        (
            vec![
                "images", "build", img_s, "--fs", "ext3", "--size", "8M", "--owner", "root",
            ],
            "--owner 'root'",
        ),
        (
            vec![
                "images", "build", img_s, "--fs", "ext3", "--size", "8M", "--file", "fstab",
            ],
            "--file 'fstab'",
        ),
        (
            vec![
                "images", "build", img_s, "--fs", "ext4", "--kernel", "2.6.11", "--size", "8M",
            ],
            "Linux 2.6.11",
        ),
        (vec!["images", "frobnicate"], "frobnicate"),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    assert!(listing(t.path()).is_empty());
}

#[test]
fn too_small_fails_with_1603_and_the_minimum() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let data: Vec<u8> = (0u32..3 << 20).map(|i| (i % 251) as u8 | 1).collect();
    std::fs::write(src.join("data"), data).expect("write");
    let out = t.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let img = out.join("x.img");
    let o = run(&[
        "images",
        "build",
        img.to_str().expect("utf-8"),
        "--fs",
        "ext2",
        "--size",
        "2M",
        "--from",
        src.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(FATAL), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs at least"), "{}", stderr(&o));
    assert!(listing(&out).is_empty());
}

#[cfg(unix)]
#[test]
fn a_full_disk_fails_cleanly() {
    // `ulimit -f` stands in for a full disk: writes past 2 MiB fail with EFBIG.
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let data: Vec<u8> = (0u32..6 << 20).map(|i| (i % 253) as u8 | 1).collect();
    std::fs::write(src.join("data"), data).expect("write");
    let out = t.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let img = out.join("x.img");
    let script = format!(
        "ulimit -f 2048; exec '{BIN}' images build '{}' --fs ext4 --size 16M --from '{}'",
        img.display(),
        src.display()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("sh runs");
    assert_eq!(o.status.code(), Some(FATAL), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    assert!(listing(&out).is_empty(), "left behind: {:?}", listing(&out));
}

#[test]
fn swap_images_are_checked() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = t.path().join("swap.img");
    let img_s = img.to_str().expect("utf-8");
    let o = run(&["images", "swap", img_s, "--size", "64M", "--label", "swap"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["images", "inspect", img_s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["kind"], "swap");
    assert_eq!(v["blocks"], 16384);
    assert_eq!(v["label"], "swap");
    let o = run(&["images", "swap", img_s, "--size", "64M"]);
    assert_eq!(o.status.code(), Some(FATAL), "an existing swap is kept");
    let o = run(&["images", "swap", img_s, "--size", "16K", "--force"]);
    assert_eq!(o.status.code(), Some(FATAL));
    assert!(stderr(&o).contains("10 pages"), "{}", stderr(&o));
}

#[test]
fn check_fails_on_a_file_that_is_no_image() {
    let t = tempfile::tempdir().expect("tempdir");
    let junk = t.path().join("junk.img");
    std::fs::write(&junk, vec![0x5a; 8192]).expect("write");
    let o = run(&["images", "check", junk.to_str().expect("utf-8")]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("is not an ext2/ext3/ext4 or swap image"),
        "{}",
        stderr(&o)
    );
}

/// Issue 19, item 5: a superblock no reader recognises is what the checker found, so
/// `images check` exits 1 like every checker, not 1603.
#[cfg(unix)]
#[test]
fn check_of_an_unrecognisable_superblock_exits_1() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = t.path().join("x.img");
    let img_s = img.to_str().expect("utf-8");
    let o = run(&["images", "build", img_s, "--fs", "ext4", "--size", "8M"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // s_blocks_per_group (superblock offset 0x20) of 0: no geometry can follow.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(&f, &[0, 0, 0, 0], 1024 + 0x20).expect("write");
    let o = run(&["images", "check", img_s]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not an ext2/ext3/ext4 or swap image")
            && stderr(&o).contains("0 blocks per group"),
        "{}",
        stderr(&o)
    );
    let o = run(&["images", "check", &format!("{img_s}.missing")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
}

#[cfg(unix)]
#[test]
fn a_tar_stream_on_standard_input() {
    use std::io::Write;
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::write(src.join("etc/hostname"), b"colinux\n").expect("write");
    let tar = Command::new("tar")
        .args(["-cz", "-C"])
        .arg(&src)
        .arg(".")
        .output()
        .expect("tar runs");
    assert!(tar.status.success());
    let img = t.path().join("x.img");
    let mut child = Command::new(BIN)
        .args([
            "images",
            "build",
            img.to_str().expect("utf-8"),
            "--fs",
            "ext3",
            "--size",
            "auto",
            "--from",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&tar.stdout)
        .expect("feeds the stream");
    let o = child.wait_with_output().expect("waits");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["images", "check", img.to_str().expect("utf-8")]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_seed_fixes_the_uuid() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let uuid = |content: &str| {
        std::fs::write(src.join("f"), content).expect("write");
        let img = t.path().join("x.img");
        let o = run(&[
            "images",
            "build",
            img.to_str().expect("utf-8"),
            "--fs",
            "ext4",
            "--size",
            "auto",
            "--from",
            src.to_str().expect("utf-8"),
            "--seed",
            "home-1",
            "--force",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = run(&["images", "inspect", img.to_str().expect("utf-8"), "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        v["uuid"].as_str().expect("uuid").to_owned()
    };
    assert_eq!(uuid("one"), uuid("a longer content"));
}

/// `images build OUT.vhdx`: a VHDX by its name (or `--format vhdx`), read back by check
/// (e2fsck judging its virtual disk) and inspect; `--format raw` for a `.vhdx` name is a
/// usage error; a damaged VHDX is a problem the checker finds (exit 1), named.
#[test]
fn vhdx_images_by_name_or_format() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::write(src.join("etc/hostname"), b"wsl\n").expect("write");
    let from = src.to_str().expect("utf-8");
    let vhdx = t.path().join("ext4.vhdx");
    let vhdx_s = vhdx.to_str().expect("utf-8");
    let o = run(&[
        "images", "build", vhdx_s, "--fs", "ext4", "--size", "256M", "--from", from,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("in a VHDX"));
    let bytes = std::fs::read(&vhdx).expect("read");
    assert_eq!(&bytes[..8], b"vhdxfile");
    assert!(bytes.len() < 16 << 20, "{} bytes", bytes.len());

    let o = run(&["images", "check", vhdx_s]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("e2fsck -fn: clean"), "{out}");
    let o = run(&["images", "inspect", vhdx_s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["format"], "vhdx");
    assert_eq!(v["kind"], "ext4");
    assert_eq!(v["size_bytes"], 256 << 20);

    // --format vhdx under another name; --format raw under a .vhdx name is refused.
    let other = t.path().join("root.disk");
    let o = run(&[
        "images",
        "build",
        other.to_str().expect("utf-8"),
        "--fs",
        "ext2",
        "--size",
        "16M",
        "--format",
        "vhdx",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(&std::fs::read(&other).expect("read")[..8], b"vhdxfile");
    let raw_named_vhdx = t.path().join("raw.vhdx");
    let o = run(&[
        "images",
        "build",
        raw_named_vhdx.to_str().expect("utf-8"),
        "--fs",
        "ext2",
        "--size",
        "16M",
        "--format",
        "raw",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("ends in .vhdx"), "{}", stderr(&o));
    assert!(!raw_named_vhdx.exists());
    let o = run(&[
        "images", "build", "x.img", "--fs", "ext2", "--size", "16M", "--format", "qcow2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("use raw or vhdx"), "{}", stderr(&o));

    // A VHDX as a source: grown and converted to a raw image.
    let grown = t.path().join("grown.img");
    let o = run(&[
        "images",
        "build",
        grown.to_str().expect("utf-8"),
        "--fs",
        "ext3",
        "--size",
        "64M",
        "--from",
        vhdx_s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Swap in a VHDX.
    let swap = t.path().join("swap.vhdx");
    let o = run(&[
        "images",
        "swap",
        swap.to_str().expect("utf-8"),
        "--size",
        "32M",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["images", "check", swap.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Both headers damaged: check finds it (exit 1) and says which structure.
    let mut b = bytes.clone();
    b[(64 << 10) + 0x200] ^= 0xff;
    b[(128 << 10) + 0x200] ^= 0xff;
    let bad = t.path().join("bad.vhdx");
    std::fs::write(&bad, &b).expect("write");
    let o = run(&["images", "check", bad.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("both headers are damaged"),
        "{}",
        stderr(&o)
    );
    // As a source: refused before anything is written.
    let out = t.path().join("from-bad.img");
    let o = run(&[
        "images",
        "build",
        out.to_str().expect("utf-8"),
        "--fs",
        "ext4",
        "--size",
        "auto",
        "--from",
        bad.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(FATAL), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("both headers are damaged"),
        "{}",
        stderr(&o)
    );
    assert!(!listing(t.path()).iter().any(|n| n.contains("from-bad")));
}

/// A reader that goes away (`images inspect root.img | head -1`) ends the report, not the
/// command: no panic, exit 0, the image untouched.
#[test]
fn a_reader_that_goes_away_ends_the_report_without_a_panic() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = t.path().join("r.img");
    let o = run(&[
        "images",
        "build",
        &img.display().to_string(),
        "--fs",
        "ext4",
        "--size",
        "8M",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for args in [
        vec!["images", "inspect", img.to_str().expect("utf-8")],
        vec!["images", "inspect", "--json", img.to_str().expect("utf-8")],
        vec!["images", "check", img.to_str().expect("utf-8")],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("colinux-setup runs");
        // The reader closes its end before anything is written.
        drop(child.stdout.take());
        let o = child.wait_with_output().expect("it ends");
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
    let o = run(&["images", "check", img.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
}
