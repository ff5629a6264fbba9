//! `tar_content` counts what an archive holds from its headers, as GNU tar lists it, so
//! that an installer can size an image before building it; a damaged stream is the same
//! error a build gives.

use std::path::Path;
use std::process::Command;

use image_builder::{Error, TarInput, tar_content};

fn run(cmd: &mut Command) {
    let st = cmd.status().expect("run a tool");
    assert!(st.success(), "{cmd:?}: {st}");
}

/// A tree with files of awkward sizes, a folder, a hard link and a long symlink,
/// archived by GNU tar with zstd.
fn archive(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("d/e")).expect("mkdir");
    std::fs::write(src.join("empty"), b"").expect("write");
    std::fs::write(src.join("d/one"), vec![7u8; 1]).expect("write");
    std::fs::write(src.join("d/e/page"), vec![7u8; 4096]).expect("write");
    std::fs::write(src.join("big"), vec![7u8; 10_000]).expect("write");
    std::fs::hard_link(src.join("big"), src.join("big-link")).expect("link");
    std::os::unix::fs::symlink("x".repeat(80), src.join("long")).expect("symlink");
    std::os::unix::fs::symlink("big", src.join("short")).expect("symlink");
    let out = dir.join("a.tar.zst");
    run(Command::new("tar")
        .args(["--zstd", "-cf"])
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg("."));
    out
}

#[test]
fn counts_what_gnu_tar_lists() {
    let t = tempfile::tempdir().expect("tempdir");
    let a = archive(t.path());
    let c = tar_content(&TarInput::File(a.clone()), &["d/one", "nothing"]).expect("count");
    let list = Command::new("tar")
        .args(["--zstd", "-tvf"])
        .arg(&a)
        .output()
        .expect("tar -tv");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert_eq!(c.entries, listed.lines().count() as u64, "{listed}");
    // The hard link's data is stored once: 1 + 4096 + 10000 bytes.
    assert_eq!(c.file_bytes, 14_097, "{c:?}");
    // Data 1 + 1 + 3 blocks, folders ., d, d/e, the long symlink.
    assert_eq!(c.blocks_4k, 5 + 3 + 1, "{c:?}");
    // Asked-for files are kept with their bytes; a path the archive lacks is not there.
    assert_eq!(c.kept, vec![("d/one".to_owned(), vec![7u8])]);
}

#[test]
fn a_damaged_stream_is_the_builds_error() {
    let t = tempfile::tempdir().expect("tempdir");
    let a = archive(t.path());
    let mut bytes = std::fs::read(&a).expect("read");
    bytes.truncate(bytes.len() - 4);
    let cut = t.path().join("cut.tar.zst");
    std::fs::write(&cut, &bytes).expect("write");
    let err = tar_content(&TarInput::File(cut), &[]).expect_err("a cut stream");
    assert!(
        matches!(
            err,
            Error::CorruptStream { .. } | Error::Archive { .. } | Error::Read { .. }
        ),
        "{err:?}"
    );
    let missing =
        tar_content(&TarInput::File(t.path().join("none.tar")), &[]).expect_err("missing");
    assert!(missing.to_string().contains("none.tar"), "{missing}");
}
