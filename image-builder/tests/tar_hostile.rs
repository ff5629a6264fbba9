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

// ---------------------------------------------------------------------------------
// Input without bounds (issue 19, item 10): what an archive says is held in memory only
// up to stated limits, numbers are numbers, every entry has a name, and what the image
// cannot hold is named by the entry's name.

/// A GNU long name (`L`) member carrying `name`.
fn long_name(name: &[u8]) -> Vec<u8> {
    let mut data = name.to_vec();
    data.push(0);
    member(b"././@LongLink", b'L', &data, b"")
}

#[test]
fn an_empty_name_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let mut a = member(b"ok", b'0', b"fine", b"");
    a.extend(member(b"", b'0', b"nameless", b""));
    a.extend(end());
    let err = build_from(&a, t.path()).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("byte 1024") && msg.contains("empty name"),
        "{msg}"
    );
    assert_nothing_left(t.path());
    // A file named like the root folder.
    let mut a = member(b"./", b'0', b"not a folder", b"");
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(msg.contains("'./'") && msg.contains("root folder"), "{msg}");
    assert_nothing_left(t.path());
}

#[test]
fn pax_numbers_must_be_numbers() {
    let t = tempfile::tempdir().expect("tempdir");
    for (key, value) in [
        ("size", &b"99999999999999999999"[..]),
        ("uid", b"root"),
        ("mtime", b"yesterday"),
    ] {
        let mut a = pax(&[(key, value)]);
        a.extend(member(b"victim", b'0', b"data", b""));
        a.extend(end());
        let err = build_from(&a, t.path()).expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("'victim'")
                && msg.contains("byte 0")
                && msg.contains(&format!("{key}={}", String::from_utf8_lossy(value))),
            "{msg}"
        );
        assert_nothing_left(t.path());
    }
}

#[test]
fn names_and_extended_headers_are_capped() {
    let t = tempfile::tempdir().expect("tempdir");
    // A 1 MB name of 500,000 components (34 s and 505 MB before): refused at once by
    // its length, naming the entry by its first 100 bytes.
    let deep = b"a/".repeat(500_000);
    let mut a = long_name(&deep);
    a.extend(member(b"short", b'0', b"x", b""));
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(
        msg.contains("path is 1000000 bytes")
            && msg.contains("65536")
            && msg.contains("at byte 0")
            && msg.len() < 400,
        "a path over 64 KiB: {msg}"
    );
    assert_nothing_left(t.path());
    // An extended header over 1 MiB.
    let mut a = long_name(&b"a".repeat(1 << 20));
    a.extend(member(b"short", b'0', b"x", b""));
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(
        msg.contains("1048577 bytes") && msg.contains("1048576"),
        "an extended header over 1 MiB: {msg}"
    );
    assert_nothing_left(t.path());
    // A pax path over 64 KiB.
    let mut a = pax(&[("path", &b"b/".repeat(40_000)[..])]);
    a.extend(member(b"short", b'0', b"x", b""));
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(
        msg.contains("80000 bytes") && msg.contains("65536"),
        "a path over 64 KiB: {msg}"
    );
    assert_nothing_left(t.path());
    // Pax records pile up across headers: their sum is capped too.
    let mut a = Vec::new();
    for i in 0..3 {
        a.extend(pax(&[(&format!("comment{i}"), &vec![b'c'; 400_000][..])]));
    }
    a.extend(member(b"short", b'0', b"x", b""));
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(msg.contains("in force at once"), "{msg}");
    assert_nothing_left(t.path());
}

#[test]
fn a_deep_path_under_the_cap_builds() {
    // 30,000 nested folders (a 60 KB name): within the limits, so it is built, and in
    // time linear in the depth (the path is walked once per level).
    let t = tempfile::tempdir().expect("tempdir");
    let mut deep = b"d/".repeat(30_000);
    deep.extend_from_slice(b"leaf");
    let mut a = long_name(&deep);
    a.extend(member(b"ignored-short-name", b'0', b"bottom\n", b""));
    a.extend(end());
    let img = build_from(&a, t.path()).expect("builds");
    let report = check(&img).expect("checks");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report.inodes_reachable,
        30_000 + 3,
        "folders, leaf, root, lost+found"
    );
}

#[test]
fn what_the_image_cannot_hold_is_named_by_the_entry() {
    let t = tempfile::tempdir().expect("tempdir");
    // Attributes over one 4 KiB block.
    let mut a = pax(&[("SCHILY.xattr.user.big", &vec![b'v'; 5000][..])]);
    a.extend(member(b"etc/big-attrs", b'0', b"x", b""));
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(
        msg.contains("'/etc/big-attrs'") && msg.contains("one block holds 4096"),
        "{msg}"
    );
    assert!(!msg.contains("inode"), "{msg}");
    assert_nothing_left(t.path());
    // 65,001 names for one file.
    let mut a = member(b"target", b'0', b"x", b"");
    for i in 0..65_000 {
        a.extend(member(format!("l{i}").as_bytes(), b'1', b"", b"target"));
    }
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(
        msg.contains("65001 hard links") && (msg.contains("'/target'") || msg.contains("'/l")),
        "{msg}"
    );
    assert!(!msg.contains("inode"), "{msg}");
    assert_nothing_left(t.path());
}

/// A 12-byte numeric header field: octal, or GNU base-256 past 11 octal digits.
fn num12(v: u64) -> [u8; 12] {
    let mut f = [0u8; 12];
    if v < 1 << 33 {
        f[..12].copy_from_slice(format!("{v:011o}\0").as_bytes());
    } else {
        f[0] = 0x80;
        f[4..].copy_from_slice(&v.to_be_bytes());
    }
    f
}

/// One GNU old-style sparse member (`S`): `map` is (offset, length) pairs, at most 4.
fn gnu_sparse(name: &[u8], real: u64, map: &[(u64, u64)], data: &[u8]) -> Vec<u8> {
    let mut h = header(name, b'S', data.len() as u64, b"");
    // ustar magic off: GNU headers say "ustar  \0".
    h[257..265].copy_from_slice(b"ustar  \0");
    for (i, (o, l)) in map.iter().enumerate() {
        let at = 386 + 24 * i;
        h[at..at + 12].copy_from_slice(&num12(*o));
        h[at + 12..at + 24].copy_from_slice(&num12(*l));
    }
    h[483..495].copy_from_slice(&num12(real));
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h.extend_from_slice(data);
    h.resize(h.len().div_ceil(512) * 512, 0);
    h
}

#[test]
fn sparse_maps_in_order_are_copied_by_their_data_and_others_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    // 1 TiB of file with two 512-byte runs: the copy reads the runs and skips the holes.
    let tib = 1u64 << 40;
    let mut a = gnu_sparse(
        b"disk.img",
        tib,
        &[(0, 512), (tib - 4096, 512)],
        &[[b'A'; 512], [b'Z'; 512]].concat(),
    );
    a.extend(end());
    let img = build_from(&a, t.path()).expect("builds");
    let stat = debugfs(&img, "stat /disk.img");
    assert!(stat.contains("Size: 1099511627776"), "{stat}");
    assert!(check(&img).expect("checks").problems.is_empty());
    assert!(std::fs::metadata(&img).expect("stat").len() < 64 << 20);
    std::fs::remove_file(&img).expect("rm");
    // The same runs out of order: refused.
    let mut a = gnu_sparse(
        b"disk.img",
        tib,
        &[(tib - 4096, 512), (0, 512)],
        &[[b'Z'; 512], [b'A'; 512]].concat(),
    );
    a.extend(end());
    let msg = build_from(&a, t.path()).expect_err("refused").to_string();
    assert!(
        msg.contains("'disk.img'") && msg.contains("sparse map"),
        "{msg}"
    );
    assert_nothing_left(t.path());
}

#[cfg(unix)]
#[test]
fn a_tarball_from_a_named_pipe_is_read_as_a_stream() {
    let t = tempfile::tempdir().expect("tempdir");
    let fifo = t.path().join("in.tar");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(ok.success());
    let mut a = member(b"etc/hostname", b'0', b"colinux\n", b"");
    a.extend(end());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .expect("opens the pipe");
            f.write_all(&a).expect("writes the stream");
        })
    };
    // detect() does not open the pipe (a stream is read once).
    let source = Source::detect(&fifo);
    assert!(
        matches!(&source, Source::Tar(TarInput::File(p)) if p == &fifo),
        "{source:?}"
    );
    let out = t.path().join("out.img");
    let mut o = BuildOptions::new(FsLevel::Ext3, "auto".parse().expect("size"));
    o.sources.push(source);
    build(&out, &o, &mut |_| {}, &AtomicBool::new(false)).expect("builds from the pipe");
    writer.join().expect("the writer ends");
    assert_eq!(debugfs(&out, "cat /etc/hostname"), "colinux\n");
}

#[test]
fn a_file_larger_than_a_block_map_addresses_is_refused() {
    // ext2 with 1 KiB blocks maps 16 GiB per file at most; a sparse 1 TiB file with data
    // at its end made the block map's encoder index past a block (a panic) before.
    let t = tempfile::tempdir().expect("tempdir");
    let tib = 1u64 << 40;
    let mut a = gnu_sparse(
        b"disk.img",
        tib,
        &[(0, 512), (tib - 4096, 512)],
        &[[b'A'; 512], [b'Z'; 512]].concat(),
    );
    a.extend(end());
    let src = t.path().join("in.tar");
    std::fs::write(&src, &a).expect("write");
    let out = t.path().join("out.img");
    let mut o = BuildOptions::new(FsLevel::Ext2, "auto".parse().expect("size"));
    o.block_size = 1024;
    o.sources.push(Source::Tar(TarInput::File(src)));
    let err = build(&out, &o, &mut |_| {}, &AtomicBool::new(false)).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("'/disk.img'") && msg.contains("1099511627776 bytes") && msg.contains("ext4"),
        "{msg}"
    );
    assert_nothing_left(t.path());
}
