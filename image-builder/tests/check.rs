//! `check`: sound images (ours at every level and block size, and mke2fs's) report no
//! problems; images corrupted at documented offsets report the structure at fault; and
//! hostile bytes never make it panic.
//!
//! Offsets used to corrupt images (Documentation/filesystems/ext4/): the superblock at
//! byte 1024 (`s_log_block_size` 0x18, `s_feature_ro_compat` 0x64, `s_uuid` 0x68); the
//! descriptor table in the block after the superblock's (`bg_block_bitmap` 0x00,
//! `bg_inode_bitmap` 0x04, `bg_free_blocks_count_lo` 0x0C, `bg_checksum` 0x1E); the swap
//! magic in the last ten bytes of the first 4096-byte page.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use image_builder::{BuildOptions, CheckReport, Error, FsLevel, ImageKind, Source, build, check};

const LEVELS: [FsLevel; 4] = [
    FsLevel::Ext2,
    FsLevel::Ext3,
    FsLevel::Ext4Compat,
    FsLevel::Ext4Modern,
];

/// Non-zero bytes (zero blocks would become holes and map nothing).
fn noise(len: usize, salt: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| ((i ^ salt).wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect()
}

/// A small tree with everything a mapping can hold: a file past the 12 direct blocks
/// (> 48 KiB), a 5 MiB file (DIND on ext2/3), a sparse file, an empty file, nested
/// directories, fast and slow symlinks, hard links, a fifo and, where the host
/// filesystem keeps them, a shared set of user attributes.
fn tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    let sub = src.join("sub");
    let deeper = sub.join("deeper");
    std::fs::create_dir_all(&deeper).expect("mkdir");
    std::fs::create_dir(src.join("empty-dir")).expect("mkdir");
    std::fs::write(src.join("small.txt"), b"hello\n").expect("write");
    std::fs::write(src.join("medium.bin"), noise(60 * 1024, 1)).expect("write");
    std::fs::write(src.join("big.bin"), noise(5 << 20, 2)).expect("write");
    std::fs::write(src.join("empty"), b"").expect("write");
    let sparse = std::fs::File::create(src.join("sparse.bin")).expect("create");
    sparse.write_all_at(&noise(8192, 3), 0).expect("write");
    sparse
        .write_all_at(&noise(4096, 4), 1 << 20)
        .expect("write");
    drop(sparse);
    for i in 0..40 {
        std::fs::write(deeper.join(format!("file-{i:03}-with-a-long-name")), b"x").expect("w");
    }
    std::os::unix::fs::symlink("small.txt", src.join("fast-link")).expect("symlink");
    let long_target = format!("{}/target", "a-long-path-component".repeat(5));
    std::os::unix::fs::symlink(&long_target, src.join("slow-link")).expect("symlink");
    std::fs::hard_link(src.join("small.txt"), sub.join("hard")).expect("link");
    std::fs::hard_link(src.join("small.txt"), deeper.join("hard2")).expect("link");
    let ok = Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .expect("mkfifo runs");
    assert!(ok.success());
    for f in ["small.txt", "medium.bin"] {
        // Best effort: tmpfs and some overlay mounts refuse user attributes.
        let _ = rustix::fs::setxattr(
            src.join(f),
            "user.test",
            b"shared value",
            rustix::fs::XattrFlags::empty(),
        );
    }
    src
}

fn build_image(dir: &Path, src: &Path, level: FsLevel, block_size: u32) -> PathBuf {
    let out = dir.join(format!("{}-{block_size}.img", level.name()));
    let mut opts = BuildOptions::new(level, "16M".parse().expect("size"));
    opts.block_size = block_size;
    opts.sources.push(Source::Dir(src.to_owned()));
    build(&out, &opts, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
    out
}

fn sound(path: &Path) -> CheckReport {
    let report = check(path).expect("checks");
    assert!(
        report.problems.is_empty(),
        "{}: {:#?}",
        path.display(),
        report.problems
    );
    report
}

fn copy(from: &Path, name: &str) -> PathBuf {
    let to = from.with_file_name(name);
    std::fs::copy(from, &to).expect("copy");
    to
}

fn has(report: &CheckReport, parts: &[&str]) -> bool {
    report
        .problems
        .iter()
        .any(|p| parts.iter().all(|part| p.contains(part)))
}

fn assert_has(report: &CheckReport, parts: &[&str]) {
    assert!(
        has(report, parts),
        "no problem mentions {parts:?}: {:#?}",
        report.problems
    );
}

/// (block size, descriptor size, byte offset of group 0's descriptor, metadata_csum).
fn geometry(img: &std::fs::File) -> (u64, usize, u64, bool) {
    let mut sb = [0u8; 1024];
    img.read_exact_at(&mut sb, 1024).expect("read");
    let le32 = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().expect("4 bytes"));
    let bs = 1024u64 << le32(0x18);
    let is64 = le32(0x60) & 0x80 != 0;
    let desc_size = if is64 {
        usize::from(u16::from_le_bytes([sb[0xfe], sb[0xff]]))
    } else {
        32
    };
    let first_data = u64::from(le32(0x14));
    let csum = le32(0x64) & 0x400 != 0;
    (bs, desc_size, (first_data + 1) * bs, csum)
}

/// Rewrites group 0's descriptor with `edit`, recomputing its checksum under
/// metadata_csum (crc32c_raw(crc32c_raw(seed, le32 0), desc with bg_checksum zeroed)).
fn edit_desc0(path: &Path, edit: impl FnOnce(&mut [u8])) {
    let img = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let (_, desc_size, at, csum) = geometry(&img);
    let mut d = vec![0u8; desc_size];
    img.read_exact_at(&mut d, at).expect("read");
    edit(&mut d);
    if csum {
        let mut uuid = [0u8; 16];
        img.read_exact_at(&mut uuid, 1024 + 0x68).expect("read");
        let raw = |seed: u32, data: &[u8]| !crc32c::crc32c_append(!seed, data);
        d[0x1e] = 0;
        d[0x1f] = 0;
        let crc = raw(raw(raw(!0, &uuid), &0u32.to_le_bytes()), &d);
        d[0x1e..0x20].copy_from_slice(&((crc & 0xffff) as u16).to_le_bytes());
    }
    img.write_all_at(&d, at).expect("write");
}

fn desc0_u32(path: &Path, off: usize) -> u64 {
    let img = std::fs::File::open(path).expect("open");
    let (_, _, at, _) = geometry(&img);
    let mut b = [0u8; 4];
    img.read_exact_at(&mut b, at + off as u64).expect("read");
    u64::from(u32::from_le_bytes(b))
}

fn debugfs(img: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(img)
        .output()
        .expect("debugfs runs (e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn our_images_are_sound_at_every_level_and_block_size() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = tree(t.path());
    for level in LEVELS {
        for bs in [1024, 4096] {
            let img = build_image(t.path(), &src, level, bs);
            let r = sound(&img);
            let want = match level {
                FsLevel::Ext2 => ImageKind::Ext2,
                FsLevel::Ext3 => ImageKind::Ext3,
                _ => ImageKind::Ext4,
            };
            assert_eq!(r.kind, Some(want));
            // 12 inodes of the tree's + root + lost+found at least.
            assert!(r.inodes_reachable >= 14, "{level:?}/{bs}: {r:?}");
            assert!(r.blocks_referenced > (5 << 20) / u64::from(bs), "{r:?}");
            assert!(r.not_checked.is_empty());
        }
    }
}

#[test]
fn mke2fs_images_are_sound() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = tree(t.path());
    for (i, (fs, extra)) in [
        ("ext2", &[][..]),
        ("ext3", &[][..]),
        ("ext4", &[][..]),
        ("ext4", &["-b", "4096"][..]),
        ("ext4", &["-O", "^metadata_csum,^64bit,uninit_bg"][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let img = t.path().join(format!("mke2fs-{i}-{fs}.img"));
        let status = Command::new("mke2fs")
            .args(["-q", "-F", "-t", fs])
            .args(extra)
            .arg("-d")
            .arg(&src)
            .arg(&img)
            .arg("16M")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("mke2fs runs (e2fsprogs)");
        assert!(status.success(), "mke2fs -t {fs} {extra:?}");
        let r = sound(&img);
        assert!(r.inodes_reachable >= 14, "{fs} {extra:?}: {r:?}");
    }
}

#[test]
fn a_wrong_free_block_count_in_group_0_is_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = tree(t.path());
    for level in LEVELS {
        let img = copy(&build_image(t.path(), &src, level, 4096), "free.img");
        let before = desc0_u32(&img, 0x0c) & 0xffff;
        edit_desc0(&img, |d| {
            let v = u16::from_le_bytes([d[0x0c], d[0x0d]]).wrapping_sub(3);
            d[0x0c..0x0e].copy_from_slice(&v.to_le_bytes());
        });
        let r = check(&img).expect("checks");
        assert_has(
            &r,
            &[
                "group 0",
                &format!("descriptor says {} free blocks", before - 3),
                &format!("the block bitmap has {before}"),
            ],
        );
        // Only the count is wrong: the checksum was recomputed.
        assert!(!has(&r, &["descriptor checksum"]), "{:#?}", r.problems);
    }
}

#[test]
fn a_cleared_inode_bitmap_bit_is_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = tree(t.path());
    for level in LEVELS {
        let img = copy(&build_image(t.path(), &src, level, 4096), "ibm.img");
        // Inode 12 is the first entry of the tree (inode numbers are given breadth
        // first in byte order of names: "big.bin"); its bit is bit 3 of byte 1.
        let at = desc0_u32(&img, 0x04) * 4096 + 1;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&img)
            .expect("open");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).expect("read");
        assert_eq!(b[0] & 0x08, 0x08);
        f.write_all_at(&[b[0] & !0x08], at).expect("write");
        let r = check(&img).expect("checks");
        assert_has(&r, &["inode 12 (/big.bin)", "free in the inode bitmap"]);
        assert_has(&r, &["group 0", "free inodes"]);
    }
}

#[test]
fn a_zeroed_directory_block_orphans_what_it_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = tree(t.path());
    for level in LEVELS {
        let img = copy(&build_image(t.path(), &src, level, 4096), "dir.img");
        let blocks = debugfs(&img, "blocks /sub/deeper");
        let first: u64 = blocks
            .split_whitespace()
            .next()
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("debugfs gave no blocks: {blocks:?}"));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .expect("open");
        f.write_all_at(&[0u8; 4096], first * 4096).expect("write");
        let r = check(&img).expect("checks");
        assert_has(
            &r,
            &["(/sub/deeper)", "block 0", "bad rec_len 0 at offset 0"],
        );
        assert_has(
            &r,
            &["regular file", "marked in use but no directory names it"],
        );
        assert!(
            !has(&r, &["block bitmap"]),
            "unreachable files keep their blocks: {:#?}",
            r.problems
        );
    }
}

#[test]
fn swap_images() {
    let t = tempfile::tempdir().expect("tempdir");
    let swap = t.path().join("swap.img");
    image_builder::write_swap(
        &swap,
        &image_builder::SwapOptions {
            size: 1 << 20,
            label: Some("swap".into()),
            uuid: None,
            force: false,
            format: image_builder::DiskFormat::Raw,
        },
    )
    .expect("writes");
    let r = check(&swap).expect("checks");
    assert_eq!(r.kind, Some(ImageKind::Swap));
    assert!(r.problems.is_empty(), "{:?}", r.problems);

    // A truncated file: last_page says more pages than there are.
    let short = copy(&swap, "short.img");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .expect("open")
        .set_len(64 * 1024)
        .expect("truncate");
    assert_has(&check(&short).expect("checks"), &["last_page 255", "65536"]);

    // Version 0 magic: a swap image, but unusable.
    let v0 = copy(&swap, "v0.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&v0)
        .expect("open");
    f.write_all_at(b"SWAP-SPACE", 4086).expect("write");
    let r = check(&v0).expect("checks");
    assert_eq!(r.kind, Some(ImageKind::Swap));
    assert_has(&r, &["SWAP-SPACE", "not SWAPSPACE2"]);

    // Any other magic: not an image at all.
    f.write_all_at(b"SWAPXXXXXX", 4086).expect("write");
    let err = check(&v0).expect_err("bad magic");
    assert!(matches!(err, Error::NotAnImage { .. }), "{err}");
    assert!(err.to_string().contains("no swap signature"), "{err}");
}

#[test]
fn a_wrong_superblock_checksum_and_geometry_are_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = tree(t.path());
    let img = copy(
        &build_image(t.path(), &src, FsLevel::Ext4Modern, 4096),
        "sb.img",
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .expect("open");
    // s_mtime: harmless to the geometry, fatal to the checksum.
    f.write_all_at(&[1, 2, 3, 4], 1024 + 0x2c).expect("write");
    assert_has(&check(&img).expect("checks"), &["superblock: checksum"]);

    // A blocks_count beyond the file: stop before reading anything it implies.
    let big = copy(&build_image(t.path(), &src, FsLevel::Ext2, 1024), "big.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .expect("open");
    f.write_all_at(&(1u32 << 30).to_le_bytes(), 1024 + 4)
        .expect("write");
    let r = check(&big).expect("checks");
    assert_has(&r, &["superblock", "but the file has"]);
}

#[test]
fn hostile_bytes_never_panic() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("small-src");
    std::fs::create_dir_all(src.join("d/e")).expect("mkdir");
    std::fs::write(src.join("f"), noise(70 * 1024, 9)).expect("write");
    std::fs::write(src.join("d/e/g"), b"g").expect("write");
    std::os::unix::fs::symlink("x".repeat(80), src.join("l")).expect("symlink");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for level in LEVELS {
        let out = t.path().join(format!("h-{}.img", level.name()));
        let mut opts = BuildOptions::new(level, "3M".parse().expect("size"));
        opts.block_size = 1024;
        opts.sources.push(Source::Dir(src.clone()));
        build(&out, &opts, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
        sound(&out);
        let pristine = std::fs::read(&out).expect("read");
        let hot = 300 * 1024; // superblock, descriptors, bitmaps, inodes, dirs, maps
        for round in 0..60 {
            let mut bytes = pristine.clone();
            for _ in 0..(1 + round % 8) * 4 {
                let at = (next() % hot as u64) as usize;
                bytes[at] = next() as u8;
            }
            let img = t.path().join("hostile.img");
            std::fs::write(&img, &bytes).expect("write");
            // Ok or NotAnImage, never a panic or a hang.
            match check(&img) {
                Ok(_) | Err(Error::NotAnImage { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
    }
}

/// The check is no blunter than e2fsck: on single random bytes written over the
/// metadata of our images and of a mke2fs image, both find a problem or neither does.
#[test]
fn agrees_with_e2fsck_on_random_corruption() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("d/e")).expect("mkdir");
    std::fs::write(src.join("f"), noise(200_000, 5)).expect("write");
    for i in 0..30 {
        std::fs::write(src.join(format!("d/e/g{i}")), b"g").expect("write");
    }
    std::os::unix::fs::symlink("x".repeat(80), src.join("l")).expect("symlink");
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut disagreements = Vec::new();
    let mut found = 0;
    for maker in ["mke2fs", "ext2", "ext3", "ext4-compat", "ext4-modern"] {
        let out = t.path().join(format!("{maker}.img"));
        if maker == "mke2fs" {
            let ok = Command::new("mke2fs")
                .args(["-q", "-F", "-t", "ext4", "-d"])
                .arg(&src)
                .arg(&out)
                .arg("3M")
                .stdout(std::process::Stdio::null())
                .status()
                .expect("mke2fs runs");
            assert!(ok.success());
        } else {
            let level = FsLevel::resolve(maker, None).expect("level");
            let mut opts = BuildOptions::new(level, "3M".parse().expect("size"));
            opts.block_size = 1024;
            opts.sources.push(Source::Dir(src.clone()));
            build(&out, &opts, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
        }
        let pristine = std::fs::read(&out).expect("read");
        for _ in 0..60 {
            let mut bytes = pristine.clone();
            let at = (next() % 400_000) as usize;
            bytes[at] = next() as u8;
            let img = t.path().join("flipped.img");
            std::fs::write(&img, &bytes).expect("write");
            let ours = check(&img).map_or(true, |r| !r.problems.is_empty());
            let theirs = !Command::new("e2fsck")
                .arg("-fn")
                .arg(&img)
                .output()
                .expect("e2fsck runs")
                .status
                .success();
            found += usize::from(ours);
            if ours != theirs {
                disagreements.push(format!("{maker}: byte {at} (e2fsck: {theirs})"));
            }
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    assert!(found > 5, "the corruption should hit metadata now and then");
}
