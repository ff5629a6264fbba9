//! The tree generators make what they promise.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use anyhow::{Context, Result, ensure};
use e2e_tests::tree::{SPARSE_BIG_LEN, walk};
use e2e_tests::{every_kind_tree, gen_tree, require_tools};

#[test]
fn gen_tree_is_deterministic_and_reports_counts() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let a = gen_tree(&tmp.path().join("a"), 60, 1, 7, false)?;
    let b = gen_tree(&tmp.path().join("b"), 60, 1, 7, false)?;
    ensure!(a == b, "same seed, different stats: {a:?} vs {b:?}");
    ensure!(
        a.files == 60 && a.fifos == 3 && a.sparse_files == 1,
        "{a:?}"
    );
    ensure!(
        a.bytes > 900_000 && a.bytes <= 1_000_000,
        "about 1 MB of data expected: {a:?}"
    );
    // Same bytes too: compare every regular file of the two trees.
    let mut compared = 0;
    for entry in walk(&tmp.path().join("a"))? {
        let rel = entry.strip_prefix(tmp.path().join("a"))?;
        let other = tmp.path().join("b").join(rel);
        let md = std::fs::symlink_metadata(&entry)?;
        if md.is_file() {
            ensure!(
                std::fs::read(&entry)? == std::fs::read(&other)?,
                "{} differs",
                rel.display()
            );
            compared += 1;
        } else {
            ensure!(
                std::fs::symlink_metadata(&other).is_ok(),
                "{} missing in b",
                rel.display()
            );
        }
    }
    ensure!(compared >= 60, "only {compared} files compared");
    let c = gen_tree(&tmp.path().join("c"), 60, 1, 8, false)?;
    ensure!(c.bytes != a.bytes, "another seed should give another tree");
    Ok(())
}

#[test]
fn every_kind_tree_has_every_kind() -> Result<()> {
    require_tools()?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("t");
    let made = every_kind_tree(&root)?;
    for note in &made.notes {
        eprintln!("note: {note}");
    }
    let md = |p: &str| std::fs::symlink_metadata(root.join(p)).with_context(|| p.to_string());
    ensure!(md("regular.txt")?.is_file() && md("empty")?.len() == 0);
    ensure!(md("links/fast")?.file_type().is_symlink());
    ensure!(
        std::fs::read_link(root.join("links/fast"))?
            .as_os_str()
            .len()
            < 60
    );
    ensure!(
        std::fs::read_link(root.join("links/slow"))?
            .as_os_str()
            .len()
            > 60
    );
    ensure!(md("hard/a")?.nlink() == 3 && md("hard/a")?.ino() == md("dir/sub/c")?.ino());
    ensure!(md("fifo")?.file_type().is_fifo());
    ensure!(md("socket")?.file_type().is_socket());
    ensure!(md("modes/setuid")?.mode() & 0o7777 == 0o4755);
    ensure!(md("modes/sticky")?.mode() & 0o7777 == 0o1777);
    let long = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().len() == 255);
    ensure!(long, "no 255-byte name");
    ensure!(md("utf8/café-日本語-ß.txt")?.is_file());
    // Sparse: mostly holes, one of them longer than 4 MiB + 48 KiB.
    let sp = md("sparse-big")?;
    ensure!(
        sp.len() == SPARSE_BIG_LEN && sp.blocks() * 512 < 64 * 1024,
        "sparse-big not sparse: {sp:?}"
    );
    ensure!(md("sparse-small")?.blocks() * 512 < 64 * 1024);
    // Nanosecond mtimes on some entries, fixed everywhere.
    ensure!(md("regular.txt")?.mtime() < 1_700_000_000);
    let with_nanos = walk(&root)?
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.mtime_nsec() != 0))
        .count();
    ensure!(
        with_nanos > 10,
        "only {with_nanos} entries have nanosecond mtimes"
    );
    if made.devices {
        let big = md("dev/big-char")?;
        ensure!(big.file_type().is_char_device());
        ensure!(rustix::fs::major(big.rdev()) == 300 && rustix::fs::minor(big.rdev()) == 70000);
        ensure!(md("dev/big-block")?.file_type().is_block_device());
    }
    if made.owners {
        ensure!(md("hard/a")?.uid() == 100_000 && md("hard/a")?.gid() == 200_000);
    }
    if made.user_xattrs {
        let v = rustix::fs::lgetxattr_query(root.join("regular.txt"), "user.comment")?;
        ensure!(v == "hello xattr".len());
    }
    let is_root = rustix::process::geteuid().is_root();
    ensure!(
        made.devices == is_root && made.owners == is_root,
        "root-only parts: {made:?}"
    );
    Ok(())
}
