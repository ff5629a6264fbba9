//! Compressed tarballs are read to the end of their compressed stream, so every
//! checksum the format carries is verified and nothing may follow the stream: a flipped
//! byte inside the compressed data, a wrong gzip CRC or ISIZE, a damaged xz or zstd
//! check, a damaged bzip2 block or stream CRC, a stream cut short by four bytes, and
//! garbage after the stream each end in an error naming the archive, with nothing left
//! behind (issue 19, item 2). The archives are made by the real tools (tar, gzip, xz,
//! zstd, bzip2), and each damaged archive is shown to be refused by the tool itself
//! (`gzip -t` and friends), so the test damages what the format protects.
//!
//! Where to flip a byte "inside the compressed data" so that only the checksum can tell:
//! the file in the archive is incompressible, so gzip, xz and zstd store it verbatim
//! (stored deflate blocks, uncompressed LZMA2 chunks, raw zstd blocks) and a flipped byte
//! there changes one byte of the output and nothing of the structure. bzip2 has no stored
//! blocks; its block CRC (bytes 10..14, the first block starting at byte 4 after "BZh9"
//! and the 48-bit block magic) and the stream CRC (the last 32 bits before the padding
//! of the last byte) are flipped instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use image_builder::{BuildOptions, Error, FsLevel, Source, TarInput, build};

/// Incompressible bytes (a xorshift stream).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// A tar archive (GNU tar) of one 300 KB incompressible file and a small text file.
fn tarball(dir: &Path) -> Vec<u8> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("data.bin"), noise(300_000, 0x5eed)).expect("write");
    std::fs::write(src.join("notes.txt"), b"a small text file\n").expect("write");
    let out = Command::new("tar")
        .args([
            "--create",
            "--sort=name",
            "--numeric-owner",
            "--file",
            "-",
            "-C",
        ])
        .arg(&src)
        .arg(".")
        .output()
        .expect("tar runs");
    assert!(out.status.success());
    out.stdout
}

/// `tool ARGS` with `input` on stdin; its stdout.
fn pipe(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        // The tool may stop reading early (a damaged stream); that is its verdict.
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("waits");
    let _ = feeder.join();
    out.stdout
}

/// Whether `tool -t` accepts `bytes` (the real tool's verdict on a damaged stream).
fn tool_accepts(tool: &str, bytes: &[u8]) -> bool {
    let mut child = Command::new(tool)
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let data = bytes.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let status = child.wait().expect("waits");
    let _ = feeder.join();
    status.success()
}

fn build_from(archive: &[u8], dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let src = dir.join(name);
    std::fs::write(&src, archive).expect("write archive");
    let out = dir.join("out.img");
    let mut o = BuildOptions::new(FsLevel::Ext4Modern, "auto".parse().expect("size"));
    o.sources.push(Source::Tar(TarInput::File(src)));
    build(&out, &o, &mut |_| {}, &AtomicBool::new(false)).map(|_| out)
}

/// The build from `archive` fails naming the archive and `words`, and leaves only the
/// archive behind.
fn refused(archive: &[u8], dir: &Path, name: &str, words: &[&str]) {
    let err = build_from(archive, dir, name).expect_err("a damaged stream is refused");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains(name), "the error names the archive: {msg}");
    for w in words {
        assert!(msg.contains(w), "the error says {w:?}: {msg}");
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains(".tar.") && n != "src")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Flips every bit of the byte at `at`.
fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] ^= 0xff;
    v
}

/// The damaged variants every format gets: cut by four bytes, and with garbage after.
fn cut_and_garbage(tool: &str, z: &[u8], dir: &Path, ext: &str) {
    let cut = &z[..z.len() - 4];
    assert!(!tool_accepts(tool, cut), "{tool} -t refuses the cut stream");
    refused(cut, dir, &format!("cut.tar.{ext}"), &["corrupt"]);
    let mut garbage = z.to_vec();
    garbage.extend_from_slice(b"trailing garbage\n");
    refused(
        &garbage,
        dir,
        &format!("garbage.tar.{ext}"),
        &["corrupt", "after"],
    );
}

#[test]
fn gzip_members_are_read_to_their_end() {
    let t = tempfile::tempdir().expect("tempdir");
    let tar = tarball(t.path());
    let z = pipe("gzip", &["-c", "-n"], &tar);
    build_from(&z, t.path(), "sound.tar.gz").expect("a sound stream builds");
    std::fs::remove_file(t.path().join("out.img")).expect("rm");

    // A byte of the stored data.data.bin starts after the gzip header and tar header.
    let inside = z.len() / 3;
    let bad = flipped(&z, inside);
    assert!(
        !tool_accepts("gzip", &bad),
        "gzip -t refuses the flipped byte"
    );
    refused(&bad, t.path(), "flipped.tar.gz", &["corrupt"]);
    // The trailer: CRC32, then ISIZE, little-endian, the last eight bytes.
    refused(
        &flipped(&z, z.len() - 8),
        t.path(),
        "crc.tar.gz",
        &["corrupt"],
    );
    refused(
        &flipped(&z, z.len() - 4),
        t.path(),
        "isize.tar.gz",
        &["corrupt"],
    );
    cut_and_garbage("gzip", &z, t.path(), "gz");

    // Multi-member: the archive split in two members; the second member's CRC is
    // checked as well as the first's.
    let half = tar.len() / 2;
    let mut two = pipe("gzip", &["-c", "-n"], &tar[..half]);
    two.extend(pipe("gzip", &["-c", "-n"], &tar[half..]));
    build_from(&two, t.path(), "two.tar.gz").expect("two sound members build");
    std::fs::remove_file(t.path().join("out.img")).expect("rm");
    refused(
        &flipped(&two, two.len() - 8),
        t.path(),
        "two-crc.tar.gz",
        &["corrupt"],
    );
}

#[test]
fn xz_streams_are_read_to_their_end() {
    let t = tempfile::tempdir().expect("tempdir");
    let tar = tarball(t.path());
    let z = pipe("xz", &["-c"], &tar);
    build_from(&z, t.path(), "sound.tar.xz").expect("a sound stream builds");
    std::fs::remove_file(t.path().join("out.img")).expect("rm");
    let bad = flipped(&z, z.len() / 3);
    assert!(!tool_accepts("xz", &bad), "xz -t refuses the flipped byte");
    refused(&bad, t.path(), "flipped.tar.xz", &["corrupt"]);
    cut_and_garbage("xz", &z, t.path(), "xz");
}

#[test]
fn zstd_frames_are_read_to_their_end() {
    let t = tempfile::tempdir().expect("tempdir");
    let tar = tarball(t.path());
    // zstd writes a content checksum by default (--check).
    let z = pipe("zstd", &["-c", "-q"], &tar);
    build_from(&z, t.path(), "sound.tar.zst").expect("a sound stream builds");
    std::fs::remove_file(t.path().join("out.img")).expect("rm");
    let bad = flipped(&z, z.len() / 3);
    assert!(
        !tool_accepts("zstd", &bad),
        "zstd -t refuses the flipped byte"
    );
    refused(&bad, t.path(), "flipped.tar.zst", &["corrupt"]);
    // The frame's checksum: its last four bytes.
    refused(
        &flipped(&z, z.len() - 2),
        t.path(),
        "check.tar.zst",
        &["corrupt"],
    );
    cut_and_garbage("zstd", &z, t.path(), "zst");
}

#[test]
fn bzip2_streams_are_read_to_their_end() {
    let t = tempfile::tempdir().expect("tempdir");
    let tar = tarball(t.path());
    let z = pipe("bzip2", &["-c"], &tar);
    build_from(&z, t.path(), "sound.tar.bz2").expect("a sound stream builds");
    std::fs::remove_file(t.path().join("out.img")).expect("rm");
    // The first block's CRC (bytes 10..14) and the stream CRC (the top bit of the last
    // byte is one of its bits: the padding after it is under 8 bits).
    let block_crc = flipped(&z, 11);
    assert!(!tool_accepts("bzip2", &block_crc), "bzip2 -t refuses it");
    refused(&block_crc, t.path(), "block.tar.bz2", &["corrupt"]);
    let mut stream_crc = z.clone();
    *stream_crc.last_mut().expect("bytes") ^= 0x80;
    assert!(!tool_accepts("bzip2", &stream_crc), "bzip2 -t refuses it");
    refused(&stream_crc, t.path(), "stream.tar.bz2", &["corrupt"]);
    cut_and_garbage("bzip2", &z, t.path(), "bz2");
}
