//! A real kernel, on the monitor this host offers (User-mode Linux, else QEMU), mounts
//! the stand-in images, reads and writes them, and swaps on an mkswap image; the harness
//! reports failures and enforces its timeout.

use std::process::Command;

use anyhow::{Result, ensure};
use e2e_tests::guest::FAILURE_MARKER;
use e2e_tests::tools::{run_ok, tool};
use e2e_tests::tree::sha256_manifest as manifest;
use e2e_tests::{GuestRun, e2fsck_clean, gen_tree, require_tools};

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

    let run = GuestRun::new()?;
    let (root, swap_dev) = (run.dev(0), run.dev(1));
    let script = format!(
        r#"
mkdir -p /mnt/root
mount -t ext4 -o rw {root} /mnt/root
grep '^{root} /mnt/root ext4 rw' /proc/mounts
cd /mnt/root
sha256sum -c -s /manifest.sha256
echo "sha256 manifest verified: $(wc -l < /manifest.sha256) files"
echo written-by-the-guest > /mnt/root/from-guest.txt
cd /
umount /mnt/root
swapon {swap_dev}
grep '^{swap_dev} ' /proc/swaps
swapoff {swap_dev}
"#
    );
    let ext4_mounted = format!("EXT4-fs ({}): mounted filesystem", run.dev_name(0));
    let out = run
        .disk(&img, true)
        .disk(&swap, true)
        .mem_mb(128)
        .file("/manifest.sha256", sums)
        .script(script)
        .timeout(60)
        .run()?
        .require_ok()?;
    eprintln!(
        "{}: kernel {:?}, boot took {:?}",
        out.engine, out.kernel, out.elapsed
    );
    // The kit's kernel ran (its version as kit.toml lists it), not one found elsewhere.
    let kit = e2e_tests::host_monitor()?;
    let kernel = if kit.is_uml() {
        "uml/linux.uml"
    } else {
        "qemu/vmlinuz"
    };
    let want = kit_version(&kit.kit, kernel)?;
    ensure!(
        out.kernel.as_deref() == Some(want.as_str()),
        "the guest ran kernel {:?}, not the kit's {kernel} {want}:\n{}",
        out.kernel,
        out.console
    );
    ensure!(
        out.console
            .contains(&format!("sha256 manifest verified: {files} files")),
        "{}",
        out.console
    );
    ensure!(out.console.contains(&ext4_mounted), "{}", out.console);
    e2fsck_clean(&img)?;
    let written = debugfs_read(&img, "cat /from-guest.txt")?;
    ensure!(
        written == b"written-by-the-guest\n",
        "debugfs cat gave {:?}",
        String::from_utf8_lossy(&written)
    );
    Ok(())
}

/// The guest kernel mounts ext2 and ext3 images too (read-only disks here).
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
    let run = GuestRun::new()?;
    let (a, b) = (run.dev(0), run.dev(1));
    let script = format!(
        r#"
mkdir -p /mnt/a /mnt/b
mount -t ext2 -o ro {a} /mnt/a
mount -t ext3 -o ro {b} /mnt/b
grep -E '^({a}|{b}) ' /proc/mounts
test "$(cat /mnt/a/hello)" = "hello from the host"
test "$(cat /mnt/b/hello)" = "hello from the host"
umount /mnt/a
umount /mnt/b
"#
    );
    let out = run
        .disk(&ext2, false)
        .disk(&ext3, false)
        .script(script)
        .timeout(60)
        .run()?
        .require_ok()?;
    ensure!(
        out.console.contains(&format!("{a} /mnt/a ext2 ro")),
        "{}",
        out.console
    );
    ensure!(
        out.console.contains(&format!("{b} /mnt/b ext3 ro")),
        "{}",
        out.console
    );
    e2fsck_clean(&ext2)?;
    e2fsck_clean(&ext3)
}

/// The `version` kit.toml gives the kit file `path`.
fn kit_version(kit: &std::path::Path, path: &str) -> Result<String> {
    let toml = std::fs::read_to_string(kit.join("kit.toml"))?;
    let entry = toml
        .split("[[file]]")
        .find(|e| e.contains(&format!("path = \"{path}\"")))
        .ok_or_else(|| anyhow::anyhow!("{path} is not in {}/kit.toml", kit.display()))?;
    entry
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_owned())
        .ok_or_else(|| anyhow::anyhow!("{path} has no version in kit.toml"))
}

#[test]
fn failing_script_is_reported() -> Result<()> {
    require_tools()?;
    let out = GuestRun::new()?
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
        out.console.contains(&format!("{FAILURE_MARKER} rc=1")),
        "{}",
        out.console
    );
    ensure!(out.require_ok().is_err());
    Ok(())
}

#[test]
fn timeout_kills_the_guest() -> Result<()> {
    require_tools()?;
    let run = GuestRun::new()?;
    // A watchdog, scaled like the timeout: the guest was killed, not waited for.
    let limit = run.monitor().timeout(15);
    let out = run.script("echo sleeping\nsleep 600\n").timeout(5).run()?;
    ensure!(out.timed_out && !out.ok, "{out:?}");
    ensure!(out.elapsed.as_secs() < limit, "took {:?}", out.elapsed);
    ensure!(out.console.contains("sleeping"), "{}", out.console);
    Ok(())
}
