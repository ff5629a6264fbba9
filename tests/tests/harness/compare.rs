//! `compare_tree` accepts faithful images (made by `mke2fs -d`, the stand-in writer) and
//! reports every difference precisely when an image is altered.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use e2e_tests::tree::SPARSE_BIG_SECOND_RUN;
use e2e_tests::{
    CompareOpts, compare_tree, e2fsck_clean, every_kind_tree, gen_tree, image_inodes, require_tools,
};
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};

use crate::common::{debugfs_read, debugfs_write, expect_err, mke2fs, mke2fs_opts};

/// An every-kind tree and its `mke2fs -t FS` image in a temp dir.
fn every_kind_image(fs: &str, extra: &[&str]) -> Result<(tempfile::TempDir, PathBuf, PathBuf)> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    let made = every_kind_tree(&src)?;
    for note in made.notes {
        eprintln!("note: {note}");
    }
    let img = tmp.path().join(format!("{fs}.img"));
    mke2fs(fs, &src, &img, "32M", extra)?;
    // The writer skips sockets by design; mke2fs copies them. Remove it like the writer.
    debugfs_write(&img, &["rm /socket".into()])?;
    Ok((tmp, src, img))
}

/// The differences listed by a failed comparison (the lines after the header).
fn diff_lines(err: &str) -> Vec<String> {
    err.lines().skip(1).map(|l| l.trim().to_string()).collect()
}

fn inode(image: &Path, path: &str) -> Result<u32> {
    image_inodes(image)?
        .get(Path::new(path))
        .copied()
        .with_context(|| format!("{path} not in the image"))
}

#[test]
fn every_kind_ext4_matches() -> Result<()> {
    let (_tmp, src, img) = every_kind_image("ext4", &[])?;
    e2fsck_clean(&img)?;
    compare_tree(&src, &img, &mke2fs_opts())
}

/// ext3 with 1 KiB blocks: block maps, holes spanning whole indirect blocks.
#[test]
fn every_kind_ext3_1k_blocks_matches() -> Result<()> {
    let (_tmp, src, img) = every_kind_image("ext3", &["-b", "1024"])?;
    compare_tree(&src, &img, &mke2fs_opts())
}

/// ext2 with 4 KiB blocks and 128-byte inodes (no nanoseconds, no in-inode xattrs).
#[test]
fn every_kind_ext2_4k_blocks_128_byte_inodes_matches() -> Result<()> {
    let (_tmp, src, img) = every_kind_image("ext2", &["-b", "4096", "-I", "128"])?;
    // The case ext4-view 1.0 cannot read on its own: compare_tree falls back to debugfs.
    let fs = ext4_view::Ext4::load_from_path(&img).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Ok(data) = fs.read("/sparse-big") {
        eprintln!(
            "note: ext4-view now reads whole-indirect-block holes ({} bytes)",
            data.len()
        );
    }
    compare_tree(&src, &img, &mke2fs_opts())
}

#[test]
fn gen_tree_ext4_and_ext3_match() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    let stats = gen_tree(&src, 300, 5, 3, true)?;
    ensure!(
        stats.files == 300 && stats.hardlinks > 0 && stats.symlinks > 0,
        "{stats:?}"
    );
    for fs in ["ext4", "ext3"] {
        let img = tmp.path().join(format!("{fs}.img"));
        mke2fs(fs, &src, &img, "64M", &[])?;
        e2fsck_clean(&img)?;
        compare_tree(&src, &img, &mke2fs_opts()).with_context(|| format!("{fs} image"))?;
    }
    Ok(())
}

/// Overwrites the first byte of block `index` of the file `path` in `image` with `new`,
/// checking that it was `old` before.
fn patch_byte(image: &Path, path: &str, index: u64, old: u8, new: u8) -> Result<()> {
    let ino = inode(image, path)?;
    let block: u64 = String::from_utf8(debugfs_read(image, &format!("bmap <{ino}> {index}"))?)?
        .trim()
        .parse()
        .context("bmap answer")?;
    ensure!(block != 0, "block {index} of {path} is a hole");
    let stats = String::from_utf8(debugfs_read(image, "stats")?)?;
    let block_size: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .context("no block size in debugfs stats")?
        .trim()
        .parse()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)?;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, block * block_size)?;
    ensure!(
        byte[0] == old,
        "expected byte {old:#x} of {path}, found {:#x}",
        byte[0]
    );
    file.write_all_at(&[new], block * block_size)?;
    Ok(())
}

/// One changed data byte: e2fsck cannot see it (data is not checksummed), compare_tree
/// reports exactly that file.
#[test]
fn detects_one_changed_byte() -> Result<()> {
    let (_tmp, src, img) = every_kind_image("ext4", &[])?;
    patch_byte(&img, "/regular.txt", 0, b'a', b'A')?;
    e2fsck_clean(&img)?;
    let err = expect_err(compare_tree(&src, &img, &mke2fs_opts()), "changed byte");
    let lines = diff_lines(&err);
    ensure!(
        lines.len() == 1
            && lines[0].starts_with("/regular.txt: content differs from byte 0 (sha256 "),
        "{err}"
    );
    Ok(())
}

/// The same in a block-mapped sparse file that ext4-view 1.0 cannot read (debugfs
/// fallback): the change after the big hole is found.
#[test]
fn detects_one_changed_byte_after_a_big_hole_on_ext2() -> Result<()> {
    let (_tmp, src, img) = every_kind_image("ext2", &["-b", "4096", "-I", "128"])?;
    let data = std::fs::read(src.join("sparse-big"))?;
    let at = SPARSE_BIG_SECOND_RUN;
    let old = data[usize::try_from(at)?];
    patch_byte(&img, "/sparse-big", at / 4096, old, !old)?;
    let err = expect_err(
        compare_tree(&src, &img, &mke2fs_opts()),
        "changed byte after a hole",
    );
    let lines = diff_lines(&err);
    let want = format!("/sparse-big: content differs from byte {at} ");
    ensure!(lines.len() == 1 && lines[0].starts_with(&want), "{err}");
    Ok(())
}

/// A file replaced with `debugfs write`: new bytes, and the metadata debugfs gives it.
#[test]
fn detects_a_file_rewritten_by_debugfs() -> Result<()> {
    let (tmp, src, img) = every_kind_image("ext4", &[])?;
    let other = tmp.path().join("other");
    std::fs::write(&other, b"not the original content")?;
    debugfs_write(
        &img,
        &[
            "rm /dir/sub/deeper/leaf.bin".into(),
            "cd /dir/sub/deeper".into(),
            format!("write {} leaf.bin", other.display()),
        ],
    )?;
    let err = expect_err(compare_tree(&src, &img, &mke2fs_opts()), "rewritten file");
    for want in [
        "/dir/sub/deeper/leaf.bin: size 5000 in the source, 24 in the image",
        "/dir/sub/deeper/leaf.bin: content differs from byte 0 ",
        "/dir/sub/deeper/leaf.bin: mode 0640 in the source",
    ] {
        ensure!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    ensure!(
        diff_lines(&err)
            .iter()
            .all(|l| l.starts_with("/dir/sub/deeper")),
        "{err}"
    );
    Ok(())
}

#[test]
fn detects_mode_owner_mtime_xattr_and_device_changes() -> Result<()> {
    let (_tmp, src, img) = every_kind_image("ext4", &[])?;
    let has_devices = src.join("dev/null").exists();
    let has_xattrs = rustix::fs::lgetxattr_query(src.join("dir"), "user.empty").is_ok();
    let mut requests = vec![
        format!("sif <{}> mode 0100644", inode(&img, "/modes/private")?),
        format!("sif <{}> uid 4242", inode(&img, "/regular.txt")?),
        format!("sif <{}> mtime @1234567", inode(&img, "/hard/a")?),
    ];
    let mut expected = vec![
        "/modes/private: mode 0600 in the source, 0644 in the image".to_string(),
        "/dir/sub/c: mtime ".into(),
        "/hard/a: mtime ".into(),
        "/hard/b: mtime ".into(),
        "/regular.txt: owner ".into(),
    ];
    if has_xattrs {
        requests.push(format!(
            "ea_set <{}> user.comment changed",
            inode(&img, "/regular.txt")?
        ));
        requests.push(format!("ea_rm <{}> user.empty", inode(&img, "/dir")?));
        expected.push("/regular.txt: xattr user.comment is \"hello xattr\" in the source, \"changed\" in the image".into());
        expected.push("/dir: xattr user.empty missing from the image".into());
    }
    if has_devices {
        // Old encoding in i_block[0]: 1:3 becomes 1:4.
        requests.push(format!(
            "sif <{}> block[0] 0x0104",
            inode(&img, "/dev/null")?
        ));
        expected
            .push("/dev/null: device Some((1, 3)) in the source, Some((1, 4)) in the image".into());
    }
    debugfs_write(&img, &requests)?;
    let err = expect_err(compare_tree(&src, &img, &mke2fs_opts()), "altered metadata");
    let lines = diff_lines(&err);
    for want in &expected {
        ensure!(
            lines.iter().any(|l| l.starts_with(want.as_str())),
            "missing {want:?} in:\n{err}"
        );
    }
    ensure!(
        lines.len() == expected.len(),
        "expected {} differences:\n{err}",
        expected.len()
    );
    ensure!(err.contains(", 4242:"), "{err}");
    ensure!(err.contains("in the source, 1234567 in the image"), "{err}");
    Ok(())
}

#[test]
fn detects_missing_extra_entries_and_hard_link_changes() -> Result<()> {
    let (_tmp, src, img) = every_kind_image("ext4", &[])?;
    std::fs::remove_file(src.join("empty"))?;
    std::fs::write(src.join("new.txt"), b"new")?;
    // hard/b now shares regular.txt's inode in the source.
    let hard_mtime = std::fs::symlink_metadata(src.join("hard"))?;
    std::fs::remove_file(src.join("hard/b"))?;
    std::fs::hard_link(src.join("regular.txt"), src.join("hard/b"))?;
    set_mtime(
        &src.join("hard"),
        hard_mtime.mtime(),
        hard_mtime.mtime_nsec(),
    )?;
    let err = expect_err(compare_tree(&src, &img, &mke2fs_opts()), "changed source");
    for want in [
        "/empty: in the image but not in the source",
        "/new.txt: missing from the image",
        "/hard/b, /regular.txt: these names share one inode in the source but not in the image",
        "/dir/sub/c, /hard/a, /hard/b: these names share one inode in the image but not in the source",
        "/hard/b: content differs from byte 0 ",
    ] {
        ensure!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    Ok(())
}

/// With default options, nanoseconds and the root folder are compared: mke2fs's image
/// fails, and passes once debugfs gives it the source's nanoseconds and root metadata.
#[test]
fn default_options_check_nanoseconds_and_root() -> Result<()> {
    let (_tmp, src, img) = every_kind_image("ext4", &[])?;
    let err = expect_err(
        compare_tree(&src, &img, &CompareOpts::default()),
        "mke2fs drops nanoseconds",
    );
    ensure!(
        err.contains("/regular.txt: mtime nanoseconds ") || err.contains(": mtime nanoseconds "),
        "{err}"
    );
    ensure!(
        err.contains("\n  /: mtime "),
        "root mtime should differ:\n{err}"
    );
    let mut requests = Vec::new();
    for (path, ino) in image_inodes(&img)? {
        let host = src.join(path.strip_prefix("/")?);
        let Ok(md) = std::fs::symlink_metadata(&host) else {
            continue; // lost+found
        };
        requests.push(format!(
            "sif <{ino}> mtime_extra {}",
            u64::try_from(md.mtime_nsec())? << 2
        ));
        if ino == 2 {
            requests.push(format!("sif <2> mtime @{}", md.mtime()));
            requests.push(format!("sif <2> mode 0{:o}", md.mode()));
            requests.push(format!("sif <2> uid {}", md.uid()));
            requests.push(format!("sif <2> gid {}", md.gid()));
        }
    }
    debugfs_write(&img, &requests)?;
    compare_tree(&src, &img, &CompareOpts::default())?;
    e2fsck_clean(&img)
}

#[test]
fn owner_option_expects_one_owner_everywhere() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    gen_tree(&src, 30, 1, 5, false)?;
    let img = tmp.path().join("ext4.img");
    mke2fs("ext4", &src, &img, "80M", &[])?;
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    compare_tree(
        &src,
        &img,
        &CompareOpts {
            owner: Some(me),
            ..mke2fs_opts()
        },
    )?;
    let err = expect_err(
        compare_tree(
            &src,
            &img,
            &CompareOpts {
                owner: Some((4321, 8765)),
                ..mke2fs_opts()
            },
        ),
        "wrong owner",
    );
    let lines = diff_lines(&err);
    // Every entry but the root (root_metadata off) and lost+found.
    let n = image_inodes(&img)?.len() - 2;
    ensure!(lines.len() == n, "expected {n} owner lines:\n{err}");
    ensure!(
        lines
            .iter()
            .all(|l| l.contains(": owner 4321:8765 expected (--owner), ")),
        "{err}"
    );
    Ok(())
}

#[test]
fn overlay_files_are_compared_by_bytes() -> Result<()> {
    let (tmp, src, img) = every_kind_image("ext4", &[])?;
    let fstab = tmp.path().join("fstab");
    std::fs::write(&fstab, b"/dev/ubda / ext4 defaults 0 1\n")?;
    debugfs_write(
        &img,
        &[
            "mkdir /etc".into(),
            format!("write {} /etc/fstab", fstab.display()),
        ],
    )?;
    let err = expect_err(compare_tree(&src, &img, &mke2fs_opts()), "no overlay given");
    ensure!(
        err.contains("/etc: in the image but not in the source"),
        "{err}"
    );
    ensure!(
        err.contains("/etc/fstab: in the image but not in the source"),
        "{err}"
    );
    let overlay = BTreeMap::from([(PathBuf::from("/etc/fstab"), fstab.clone())]);
    compare_tree(
        &src,
        &img,
        &CompareOpts {
            overlay,
            ..mke2fs_opts()
        },
    )?;
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, b"/dev/ubdb / ext4 defaults 0 1\n")?;
    let overlay = BTreeMap::from([(PathBuf::from("/etc/fstab"), wrong)]);
    let err = expect_err(
        compare_tree(
            &src,
            &img,
            &CompareOpts {
                overlay,
                ..mke2fs_opts()
            },
        ),
        "wrong overlay",
    );
    let lines = diff_lines(&err);
    ensure!(
        lines.len() == 1 && lines[0].starts_with("/etc/fstab: content differs from byte 8 "),
        "{err}"
    );
    Ok(())
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) -> Result<()> {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}
