//! `e2fsck_clean` accepts good images and rejects corrupted ones, including corruption
//! that e2fsck reports with exit status 0.

use std::process::Command;

use anyhow::{Result, ensure};
use e2e_tests::tools::{run_capture, tool};
use e2e_tests::{e2fsck_clean, every_kind_tree, require_tools};

use crate::common::{debugfs_write, expect_err, mke2fs};

#[test]
fn clean_on_mke2fs_images_of_every_kind() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    every_kind_tree(&src)?;
    for (fs, extra) in [
        ("ext2", &["-b", "4096", "-I", "128"][..]),
        ("ext3", &[][..]),
        ("ext4", &[][..]),
    ] {
        let img = tmp.path().join(format!("{fs}.img"));
        mke2fs(fs, &src, &img, "32M", extra)?;
        e2fsck_clean(&img)?;
    }
    Ok(())
}

#[test]
fn fails_on_wrong_group_free_blocks_count() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    every_kind_tree(&src)?;
    let img = tmp.path().join("bad.img");
    mke2fs("ext4", &src, &img, "32M", &[])?;
    e2fsck_clean(&img)?;
    debugfs_write(&img, &["set_bg 1 free_blocks_count 7".into()])?;
    let err = expect_err(
        e2fsck_clean(&img),
        "e2fsck_clean on a corrupted group descriptor",
    );
    ensure!(
        err.contains("Free blocks count wrong for group #1"),
        "{err}"
    );
    ensure!(err.contains("exit status 4"), "{err}");
    Ok(())
}

/// A wrong superblock free-blocks count makes e2fsck print a problem but exit 0: the
/// oracle must still fail.
#[test]
fn fails_when_e2fsck_exits_0_but_prints_a_problem() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    every_kind_tree(&src)?;
    let img = tmp.path().join("bad.img");
    mke2fs("ext4", &src, &img, "32M", &[])?;
    debugfs_write(&img, &["ssv free_blocks_count 1234".into()])?;
    let raw = run_capture(Command::new(tool("e2fsck")?).arg("-fn").arg(&img))?;
    ensure!(
        raw.status.code() == Some(0),
        "precondition: e2fsck exits 0 here, got {}",
        raw.status
    );
    let err = expect_err(
        e2fsck_clean(&img),
        "e2fsck_clean on a wrong superblock count",
    );
    ensure!(
        err.contains("exit status 0") && err.contains("Free blocks count wrong (1234"),
        "{err}"
    );
    Ok(())
}

/// A last write time ahead of this host's clock (a guest's clock, a host clock stepped
/// back) is about clocks, not the filesystem: clean. The same image with a structural
/// error still fails.
#[test]
fn a_write_time_ahead_of_the_clock_is_clean_and_corruption_still_fails() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    every_kind_tree(&src)?;
    let img = tmp.path().join("ahead.img");
    mke2fs("ext4", &src, &img, "32M", &[])?;
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    debugfs_write(
        &img,
        &[format!("ssv wtime @{ahead}"), format!("ssv mtime @{ahead}")],
    )?;
    let raw = run_capture(
        Command::new(tool("e2fsck")?)
            .arg("-fn")
            .arg(&img)
            .env("LC_ALL", "C"),
    )?;
    let said = String::from_utf8_lossy(&raw.stdout).into_owned();
    ensure!(
        said.contains("in the future"),
        "precondition: plain e2fsck reports the time: {said}"
    );
    e2fsck_clean(&img)?;
    debugfs_write(&img, &["ssv free_blocks_count 1234".into()])?;
    let err = expect_err(e2fsck_clean(&img), "e2fsck_clean on a wrong count");
    ensure!(err.contains("Free blocks count wrong (1234"), "{err}");
    Ok(())
}

#[test]
fn fails_on_a_file_that_is_not_a_filesystem() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let img = tmp.path().join("zeros.img");
    std::fs::write(&img, vec![0u8; 1 << 20])?;
    let err = expect_err(e2fsck_clean(&img), "e2fsck_clean on zeros");
    ensure!(err.contains("is not clean"), "{err}");
    Ok(())
}
