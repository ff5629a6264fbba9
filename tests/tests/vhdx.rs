//! VHDX disks from `colinux-setup images build`, judged end to end: a gen-tree tree in a
//! VHDX passes `qemu-img check`, converts (`qemu-img convert -O raw`) byte for byte to the
//! raw image built from the same inputs, which `e2fsck -fn` finds clean and which reads
//! back equal to its source (ext4-view and debugfs, [`compare_tree`]); and an existing
//! VHDX as a source (`--from old.vhdx`) is grown and converted without losing an entry.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, ensure};
use e2e_tests::tools::run_capture;
use e2e_tests::{
    CompareOpts, colinux_setup_bin, compare_tree, e2fsck_clean, gen_tree, require_tools,
};

/// Runs `colinux-setup images build OUT ARGS...`.
fn build(out: &Path, args: &[&str]) -> Result<()> {
    let o = run_capture(
        Command::new(colinux_setup_bin()?)
            .args(["images", "build"])
            .arg(out)
            .args(args)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    )?;
    ensure!(
        o.status.success(),
        "images build {}: {}",
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}

/// `qemu-img check` passes; returns the raw conversion (beside the VHDX).
fn check_and_convert(vhdx: &Path) -> Result<PathBuf> {
    let o = run_capture(
        Command::new("qemu-img")
            .args(["check", "-f", "vhdx"])
            .arg(vhdx),
    )?;
    ensure!(
        o.status.success(),
        "qemu-img check {}: {}{}",
        vhdx.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let raw = vhdx.with_extension("converted");
    let o = run_capture(
        Command::new("qemu-img")
            .args(["convert", "-f", "vhdx", "-O", "raw"])
            .arg(vhdx)
            .arg(&raw),
    )?;
    ensure!(
        o.status.success(),
        "qemu-img convert: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(raw)
}

fn same_file(a: &Path, b: &Path) -> Result<()> {
    let o = run_capture(Command::new("cmp").arg(a).arg(b))?;
    ensure!(
        o.status.success(),
        "{} and {} differ: {}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&o.stdout)
    );
    Ok(())
}

#[test]
fn a_gen_tree_tree_in_a_vhdx_is_the_raw_image() -> Result<()> {
    require_tools()?;
    let t = tempfile::tempdir()?;
    let src = t.path().join("src");
    gen_tree(&src, 600, 40, 22, false)?;
    let from = src.to_str().expect("utf-8 path");
    let vhdx = t.path().join("root.vhdx");
    let img = t.path().join("root.img");
    for out in [&vhdx, &img] {
        build(out, &["--fs", "ext4", "--size", "auto+20%", "--from", from])?;
    }
    let raw = check_and_convert(&vhdx)?;
    same_file(&raw, &img)?;
    e2fsck_clean(&raw)?;
    compare_tree(&src, &raw, &CompareOpts::default())?;
    // The VHDX holds only what has data: no more than the raw image's allocated blocks
    // plus its own tables and the 1 MiB rounding of each block.
    let vhdx_len = std::fs::metadata(&vhdx)?.len();
    let used = rustix::fs::stat(&img)?.st_blocks as u64 * 512;
    ensure!(
        vhdx_len < used + (used / 4) + (16 << 20),
        "the VHDX is {vhdx_len} bytes for {used} bytes of raw image data"
    );
    Ok(())
}

#[test]
fn an_old_vhdx_is_grown_and_converted() -> Result<()> {
    require_tools()?;
    let t = tempfile::tempdir()?;
    let src = t.path().join("src");
    gen_tree(&src, 300, 20, 23, false)?;
    let old = t.path().join("old.vhdx");
    build(
        &old,
        &[
            "--fs",
            "ext3",
            "--size",
            "auto",
            "--from",
            src.to_str().expect("utf-8"),
        ],
    )?;
    let old_s = old.to_str().expect("utf-8");

    // Grown, and converted to ext4, still a VHDX.
    let grown = t.path().join("grown.vhdx");
    build(&grown, &["--fs", "ext4", "--size", "512M", "--from", old_s])?;
    let raw = check_and_convert(&grown)?;
    e2fsck_clean(&raw)?;
    compare_tree(&src, &raw, &CompareOpts::default())?;

    // Out of the VHDX into a raw image (ext2), and back into a VHDX from it.
    let img = t.path().join("plain.img");
    build(
        &img,
        &["--fs", "ext2", "--size", "auto+10%", "--from", old_s],
    )?;
    e2fsck_clean(&img)?;
    compare_tree(&src, &img, &CompareOpts::default())?;
    let back = t.path().join("back.vhdx");
    build(
        &back,
        &[
            "--fs",
            "ext4",
            "--size",
            "auto",
            "--from",
            img.to_str().expect("utf-8"),
        ],
    )?;
    let raw = check_and_convert(&back)?;
    e2fsck_clean(&raw)?;
    compare_tree(&src, &raw, &CompareOpts::default())?;
    Ok(())
}
