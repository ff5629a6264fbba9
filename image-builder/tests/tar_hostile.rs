//! Hostile and broken tar archives: each ends in a clear error naming the entry and its
//! offset, with no output file; what the docs promise to normalise is normalised.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use image_builder::{BuildOptions, Error, FsLevel, Source, TarInput, build, check};

/// One 512-byte ustar header with a correct checksum.
fn header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14300000000\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A member: header plus data padded to 512.
fn member(name: &[u8], typeflag: u8, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut v = header(name, typeflag, data.len() as u64, link);
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

/// A pax extended header carrying `records` for the next member.
fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body_len = 1 + k.len() + 1 + v.len() + 1;
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    member(b"PaxHeader", b'x', &data, b"")
}

fn end() -> Vec<u8> {
    vec![0u8; 1024]
}

fn build_from(archive: &[u8], dir: &Path) -> Result<std::path::PathBuf, Error> {
    let src = dir.join("in.tar");
    std::fs::write(&src, archive).expect("write archive");
    let out = dir.join("out.img");
    let mut o = BuildOptions::new(FsLevel::Ext4Modern, "auto".parse().expect("size"));
    o.sources.push(Source::Tar(TarInput::File(src)));
    build(&out, &o, &mut |_| {}, &AtomicBool::new(false)).map(|_| out)
}

fn assert_nothing_left(dir: &Path) {
    assert!(!dir.join("out.img").exists(), "an image was left behind");
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "in.tar")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn debugfs(img: &Path, req: &str) -> String {
    let o = Command::new("debugfs")
        .arg("-R")
        .arg(req)
        .arg(img)
        .output()
        .expect("debugfs runs (e2fsprogs)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn dot_dot_is_refused_with_entry_and_offset() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut a = member(b"ok.txt", b'0', b"fine", b"");
    a.extend(member(b"a/../../etc/shadow", b'0', b"evil", b""));
    a.extend(end());
    let err = build_from(&a, t.path()).expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, Error::Archive { offset: 1024, .. }), "{msg}");
    assert!(
        msg.contains("'a/../../etc/shadow'") && msg.contains("byte 1024") && msg.contains(".."),
        "{msg}"
    );
    assert_nothing_left(t.path());
}

#[test]
fn absolute_paths_land_inside_the_image() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut a = member(b"/etc/motd", b'0', b"hello\n", b"");
    a.extend(member(b"./etc//issue", b'0', b"issue\n", b""));
    a.extend(end());
    let img = build_from(&a, t.path()).expect("builds");
    assert_eq!(debugfs(&img, "cat /etc/motd"), "hello\n");
    assert_eq!(debugfs(&img, "cat /etc/issue"), "issue\n");
    assert!(check(&img).expect("checks").problems.is_empty());
}

#[test]
fn a_hard_link_to_a_missing_target_is_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut a = member(b"x", b'0', b"x", b"");
    a.extend(member(b"link", b'1', b"", b"not/there"));
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(
        msg.contains("'link'") && msg.contains("not/there") && msg.contains("byte 1024"),
        "{msg}"
    );
    assert_nothing_left(t.path());
}

#[test]
fn a_truncated_stream_is_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let big = vec![7u8; 100_000];
    let mut a = member(b"first", b'0', b"one", b"");
    a.extend(member(b"big.bin", b'0', &big, b""));
    a.truncate(1024 + 512 + 40_000);
    let msg = build_from(&a, t.path()).expect_err("truncated").to_string();
    assert!(
        msg.contains("'big.bin'") && msg.contains("truncated"),
        "{msg}"
    );
    assert_nothing_left(t.path());

    // The same inside gzip: cut the compressed stream.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut whole = member(
        b"big.bin",
        b'0',
        &(0..200_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
        b"",
    );
    whole.extend(end());
    gz.write_all(&whole).expect("gzip");
    let mut z = gz.finish().expect("gzip");
    z.truncate(z.len() / 2);
    let msg = build_from(&z, t.path())
        .expect_err("truncated gzip")
        .to_string();
    assert!(
        msg.contains("big.bin") || msg.contains("truncated") || msg.contains("corrupt"),
        "{msg}"
    );
    assert_nothing_left(t.path());
}

#[test]
fn a_header_checksum_error_is_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut a = member(b"good", b'0', b"x", b"");
    let mut bad = member(b"damaged.conf", b'0', b"y", b"");
    bad[130] ^= 0x01; // inside the size field: the checksum no longer matches
    a.extend(bad);
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("corrupt").to_string();
    assert!(
        msg.contains("checksum") && msg.contains("'damaged.conf'") && msg.contains("byte 1024"),
        "{msg}"
    );
    assert_nothing_left(t.path());
}

#[test]
fn junk_and_empty_files_are_not_archives() {
    let t = tempfile::tempdir().expect("tempdir");
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 256) as u8).collect();
    let msg = build_from(&junk, t.path()).expect_err("junk").to_string();
    assert!(msg.contains("checksum") || msg.contains("corrupt"), "{msg}");
    assert_nothing_left(t.path());
    let msg = build_from(b"", t.path()).expect_err("empty").to_string();
    assert!(msg.contains("empty"), "{msg}");
    assert_nothing_left(t.path());
}

#[test]
fn later_entries_replace_earlier_ones_and_free_their_blocks() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut a = member(b"etc/config", b'0', &vec![1u8; 300_000], b"");
    a.extend(member(b"etc/config", b'0', b"short\n", b""));
    a.extend(member(b"opt/", b'5', b"", b""));
    a.extend(member(b"opt/tool", b'0', &vec![2u8; 200_000], b""));
    a.extend(member(b"opt", b'0', b"opt is a file now\n", b""));
    a.extend(end());
    let img = build_from(&a, t.path()).expect("builds");
    assert_eq!(debugfs(&img, "cat /etc/config"), "short\n");
    assert_eq!(debugfs(&img, "cat /opt"), "opt is a file now\n");
    let report = check(&img).expect("checks");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .expect("e2fsck runs");
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn binary_attributes_and_raw_names_survive() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut a = pax(&[
        ("SCHILY.xattr.user.blob", b"a\nb\x00\xff"),
        ("mtime", b"1600000000.5"),
    ]);
    a.extend(member(b"caf\xe9-latin1.txt", b'0', b"bytes", b""));
    a.extend(end());
    let img = build_from(&a, t.path()).expect("builds");
    let listing = debugfs(&img, "ls -l /");
    assert!(listing.contains("caf"), "{listing}");
    let report = check(&img).expect("checks");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // debugfs cannot take a non-UTF-8 path as an argument: address the inode by number.
    let stat = debugfs(&img, "ea_list <12>");
    assert!(stat.contains("user.blob (5) = 61 0a 62 00 ff"), "{stat}");
}
