//! A real kernel (User-mode Linux) mounts the stand-in images, reads and writes them, and
//! swaps on an mkswap image; the harness reports failures and enforces its timeout.

use std::process::Command;

use anyhow::{Result, ensure};
use e2e_tests::tools::{run_ok, tool};
use e2e_tests::tree::sha256_manifest as manifest;
use e2e_tests::{UmlRun, e2fsck_clean, gen_tree, require_tools};

use crate::common::{debugfs_read, mke2fs};

#[test]
fn guest_verifies_writes_ext4_and_swaps() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    gen_tree(&src, 200, 2, 11, false)?;
    let (sums, files) = manifest(&src)?;
    ensure!(files >= 200, "only {files} files in the manifest");
    let img = tmp.path().join("root.img");
    mke2fs("ext4", &src, &img, "64M", &[])?;
    let swap = tmp.path().join("swap.img");
    std::fs::File::create(&swap)?.set_len(8 << 20)?;
    run_ok(
        Command::new(tool("mkswap")?)
            .arg("-L")
            .arg("e2eswap")
            .arg(&swap),
    )?;

    let script = r#"
mkdir -p /mnt/root
mount -t ext4 -o rw /dev/ubda /mnt/root
grep '^/dev/ubda /mnt/root ext4 rw' /proc/mounts
cd /mnt/root
sha256sum -c -s /manifest.sha256
echo "sha256 manifest verified: $(wc -l < /manifest.sha256) files"
echo written-by-uml > /mnt/root/from-guest.txt
cd /
umount /mnt/root
swapon /dev/ubdb
grep '^/dev/ubdb ' /proc/swaps
swapoff /dev/ubdb
"#;
    let out = UmlRun::new()
        .disk(&img, true)
        .disk(&swap, true)
        .mem_mb(128)
        .file("/manifest.sha256", sums)
        .script(script)
        .timeout(60)
        .run()?
        .require_ok()?;
    eprintln!("UML kernel {:?}, boot took {:?}", out.kernel, out.elapsed);
    ensure!(
        out.kernel.as_deref().is_some_and(|k| !k.is_empty()),
        "no kernel version:\n{}",
        out.console
    );
    ensure!(
        out.console
            .contains(&format!("sha256 manifest verified: {files} files")),
        "{}",
        out.console
    );
    ensure!(
        out.console.contains("EXT4-fs (ubda): mounted filesystem"),
        "{}",
        out.console
    );
    e2fsck_clean(&img)?;
    let written = debugfs_read(&img, "cat /from-guest.txt")?;
    ensure!(
        written == b"written-by-uml\n",
        "debugfs cat gave {:?}",
        String::from_utf8_lossy(&written)
    );
    Ok(())
}

/// The Debian UML kernel mounts ext2 and ext3 images too (read-only disks here).
#[test]
fn guest_mounts_ext2_and_ext3() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    std::fs::create_dir(&src)?;
    std::fs::write(src.join("hello"), b"hello from the host\n")?;
    let ext2 = tmp.path().join("ext2.img");
    let ext3 = tmp.path().join("ext3.img");
    mke2fs("ext2", &src, &ext2, "8M", &["-I", "128"])?;
    mke2fs("ext3", &src, &ext3, "8M", &[])?;
    let script = r#"
mkdir -p /mnt/a /mnt/b
mount -t ext2 -o ro /dev/ubda /mnt/a
mount -t ext3 -o ro /dev/ubdb /mnt/b
grep -E '^/dev/ubd[ab] ' /proc/mounts
test "$(cat /mnt/a/hello)" = "hello from the host"
test "$(cat /mnt/b/hello)" = "hello from the host"
umount /mnt/a
umount /mnt/b
"#;
    let out = UmlRun::new()
        .disk(&ext2, false)
        .disk(&ext3, false)
        .script(script)
        .timeout(60)
        .run()?
        .require_ok()?;
    ensure!(
        out.console.contains("/dev/ubda /mnt/a ext2 ro"),
        "{}",
        out.console
    );
    ensure!(
        out.console.contains("/dev/ubdb /mnt/b ext3 ro"),
        "{}",
        out.console
    );
    e2fsck_clean(&ext2)?;
    e2fsck_clean(&ext3)
}

#[test]
fn failing_script_is_reported() -> Result<()> {
    require_tools()?;
    let out = UmlRun::new()
        .script("echo before\nfalse\necho after\n")
        .timeout(60)
        .run()?;
    ensure!(
        !out.ok && !out.timed_out,
        "a failing script must not be ok: {out:?}"
    );
    ensure!(
        out.console.contains("before") && !out.console.contains("after"),
        "{}",
        out.console
    );
    ensure!(
        out.console.contains("E2E-UML-SCRIPT-FAILED rc=1"),
        "{}",
        out.console
    );
    ensure!(out.require_ok().is_err());
    Ok(())
}

#[test]
fn timeout_kills_the_guest() -> Result<()> {
    require_tools()?;
    let out = UmlRun::new()
        .script("echo sleeping\nsleep 600\n")
        .timeout(5)
        .run()?;
    ensure!(out.timed_out && !out.ok, "{out:?}");
    ensure!(out.elapsed.as_secs() < 15, "took {:?}", out.elapsed);
    ensure!(out.console.contains("sleeping"), "{}", out.console);
    Ok(())
}
