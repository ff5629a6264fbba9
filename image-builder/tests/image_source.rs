//! An existing image as a build source trusts nothing it reads (issue 19, item 5): a
//! superblock whose block count would size a 36-petabyte allocation, an inode whose
//! size would make the copy run for hours, an unwritten extent outside the filesystem,
//! a descriptor table past the end of the file, and a file that is no regular file or
//! block device each end in a clear error or a listed loss, promptly, with nothing left
//! behind. The damage is done by debugfs (`sif`, `ssv`), which keeps checksums right, so
//! each case reaches the check it aims at.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use image_builder::{BuildOptions, Error, Event, FsLevel, Source, build, check, inspect};

/// Incompressible, non-zero bytes (zero blocks would become holes).
fn noise(len: usize) -> Vec<u8> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8 | 1
        })
        .collect()
}

/// An ext4 image (64bit, metadata_csum, 4 KiB blocks) of a small tree: /f (10000
/// bytes), /g, /d/h.
fn source_image(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::write(src.join("f"), noise(10_000)).expect("write");
    std::fs::write(src.join("g"), b"g\n").expect("write");
    std::fs::write(src.join("d/h"), b"h\n").expect("write");
    let img = dir.join("old.img");
    let mut o = BuildOptions::new(FsLevel::Ext4Modern, "8M".parse().expect("size"));
    o.sources.push(Source::Dir(src));
    build(&img, &o, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
    img
}

/// Runs one debugfs write request on `img`.
fn debugfs_w(img: &Path, req: &str) {
    let o = Command::new("debugfs")
        .args(["-w", "-R", req])
        .arg(img)
        .output()
        .expect("debugfs runs (e2fsprogs)");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("Invalid") && !err.contains("not found"),
        "debugfs {req}: {err}"
    );
}

/// Builds `out` from `img`; the result and the warnings.
fn rebuild(img: &Path, out: &Path) -> (Result<(), Error>, Vec<String>) {
    let mut o = BuildOptions::new(FsLevel::Ext4Modern, "auto".parse().expect("size"));
    o.sources.push(Source::Image(img.to_owned()));
    let mut warnings = Vec::new();
    let r = build(
        out,
        &o,
        &mut |e| {
            if let Event::Warning(w) = e {
                warnings.push(w);
            }
        },
        &AtomicBool::new(false),
    );
    (r.map(|_| ()), warnings)
}

/// What is in `dir` besides the source tree and the old image.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "src" && n != "old.img")
        .collect()
}

fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(img)
        .output()
        .expect("debugfs runs")
        .stdout
}

#[test]
fn a_block_count_of_petabytes_is_refused_before_anything_is_allocated() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = source_image(t.path());
    debugfs_w(&img, "ssv blocks_count_hi 0xffffffff");
    let out = t.path().join("new.img");
    let (r, _) = rebuild(&img, &out);
    let err = r.expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, Error::NotAnImage { .. }), "{msg}");
    assert!(
        msg.contains("old.img") && msg.contains("block groups") && msg.contains("do not fit"),
        "{msg}"
    );
    assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
    // inspect and check read the same superblock without trusting it either.
    let info = inspect(&img).expect("inspects");
    assert_eq!(info.blocks >> 32, 0xffff_ffff);
    let report = check(&img).expect("checks");
    assert!(
        report.problems.iter().any(|p| p.contains("superblock")),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_size_no_file_can_have_is_a_loss_and_a_large_one_is_copied_by_its_data() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = source_image(t.path());
    // 256 TiB - 1: more than an extent tree addresses with 4 KiB blocks (16 TiB).
    debugfs_w(&img, "sif /f size 0xffffffffffff");
    let out = t.path().join("new.img");
    let (r, warnings) = rebuild(&img, &out);
    r.expect("the rest is copied");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("/f: lost:") && w.contains("281474976710655 bytes")),
        "{warnings:?}"
    );
    assert_eq!(debugfs_cat(&out, "/g"), b"g\n");
    std::fs::remove_file(&out).expect("rm");

    // 8 TiB: a size the file may have, mostly hole. The copy reads its one extent and
    // skips the rest (before, every byte of the size went through the writer).
    debugfs_w(&img, "sif /f size 0x80000000000");
    let (r, warnings) = rebuild(&img, &out);
    r.expect("copies");
    assert!(warnings.is_empty(), "{warnings:?}");
    let stat = Command::new("debugfs")
        .args(["-R", "stat /f"])
        .arg(&out)
        .output()
        .expect("debugfs");
    let stat = String::from_utf8_lossy(&stat.stdout);
    assert!(stat.contains("Size: 8796093022208"), "{stat}");
    // Its data, read from the blocks debugfs says it has (cat would print 8 TiB).
    let blocks = Command::new("debugfs")
        .args(["-R", "blocks /f"])
        .arg(&out)
        .output()
        .expect("debugfs");
    let first: u64 = String::from_utf8_lossy(&blocks.stdout)
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .expect("a first block");
    let bytes = std::fs::read(&out).expect("read");
    let at = first as usize * 4096;
    assert_eq!(
        &bytes[at..at + 10_000],
        noise(10_000),
        "the data is the old file's"
    );
    assert!(check(&out).expect("checks").problems.is_empty());
}

#[test]
fn an_unwritten_extent_outside_the_filesystem_is_a_loss() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = source_image(t.path());
    // i_block words 3..5 hold the first extent: ee_block, then ee_len (low half) with
    // ee_start_hi, then ee_start_lo. Length 0x8001 is one unwritten block; block
    // 99999999 is past the 2048 blocks of the filesystem.
    debugfs_w(&img, "sif /g block[4] 0x8001");
    debugfs_w(&img, "sif /g block[5] 99999999");
    let out = t.path().join("new.img");
    let (r, warnings) = rebuild(&img, &out);
    r.expect("the rest is copied");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("/g: lost:") && w.contains("outside the filesystem")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("1 entries could not be read")),
        "{warnings:?}"
    );
    assert_eq!(debugfs_cat(&out, "/d/h"), b"h\n");
}

#[test]
fn a_file_cut_before_its_descriptors_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let img = source_image(t.path());
    // Keep the superblock, lose the descriptor table (block 1 with 4 KiB blocks).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .expect("open")
        .set_len(4096 + 16)
        .expect("truncate");
    let out = t.path().join("new.img");
    let err = rebuild(&img, &out).0.expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("old.img") && msg.contains("descriptors"),
        "{msg}"
    );
    assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
}

#[cfg(unix)]
#[test]
fn only_regular_files_and_block_devices_are_images() {
    let t = tempfile::tempdir().expect("tempdir");
    let fifo = t.path().join("pipe.img");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(ok.success());
    // Opening a FIFO for reading would wait for a writer: these return at once.
    for err in [
        inspect(&fifo).expect_err("not an image"),
        check(&fifo).expect_err("not an image"),
        rebuild(&fifo, &t.path().join("new.img"))
            .0
            .expect_err("not an image"),
    ] {
        let msg = err.to_string();
        assert!(
            msg.contains("pipe.img") && msg.contains("named pipe"),
            "{msg}"
        );
    }
    let err = inspect(t.path()).expect_err("a folder");
    assert!(err.to_string().contains("a folder"), "{err}");
    let err = inspect(Path::new("/dev/zero")).expect_err("a character device");
    assert!(err.to_string().contains("character device"), "{err}");
    assert_eq!(leftovers(t.path()), ["pipe.img"]);
}
