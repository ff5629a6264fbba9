//! Bad input: each case ends in a clear error that names the entry or value at fault,
//! and leaves nothing behind (no image, no temporary file, an existing file untouched).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use image_builder::{BuildOptions, Error, FsLevel, SizeSpec, Source, build};

fn opts(level: FsLevel, size: &str, sources: Vec<Source>) -> BuildOptions {
    let mut o = BuildOptions::new(level, size.parse::<SizeSpec>().expect("size parses"));
    o.sources = sources;
    o
}

fn run(out: &Path, o: &BuildOptions) -> Result<image_builder::BuildReport, Error> {
    build(out, o, &mut |_| {}, &AtomicBool::new(false))
}

/// The names in `dir`, so a test can assert nothing was left there.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir lists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A tree with one 2 MiB file of random-looking (non-zero) bytes.
fn tree_with_big_file(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let bytes: Vec<u8> = (0u32..2 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    std::fs::write(src.join("big"), bytes).expect("write");
    src
}

#[test]
fn content_larger_than_the_size_gives_the_minimum() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = tree_with_big_file(t.path());
    let out_dir = t.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let out = out_dir.join("small.img");
    let err = run(
        &out,
        &opts(FsLevel::Ext2, "1M", vec![Source::Dir(src.clone())]),
    )
    .expect_err("2 MiB cannot fit 1 MiB");
    let Error::TooSmall { size, minimum, .. } = &err else {
        panic!("wrong error: {err}")
    };
    assert_eq!(*size, 1 << 20);
    assert!(
        *minimum > 2 << 20,
        "minimum {minimum} must hold the 2 MiB file"
    );
    assert!(err.to_string().contains("needs at least"), "{err}");
    assert!(
        listing(&out_dir).is_empty(),
        "left behind: {:?}",
        listing(&out_dir)
    );
    // The minimum it names is enough.
    let fits = format!("{minimum}");
    run(&out, &opts(FsLevel::Ext2, &fits, vec![Source::Dir(src)])).expect("the named minimum fits");
}

#[test]
fn a_name_over_255_bytes_is_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let f = t.path().join("f");
    std::fs::write(&f, b"x").expect("write");
    let long = "n".repeat(256);
    let out = t.path().join("x.img");
    let err = run(
        &out,
        &opts(
            FsLevel::Ext4Modern,
            "8M",
            vec![Source::File {
                src: f,
                dest: format!("/etc/{long}"),
            }],
        ),
    )
    .expect_err("256-byte name");
    assert!(matches!(err, Error::NameTooLong { len: 256, .. }), "{err}");
    assert!(err.to_string().contains(&format!("/etc/{long}")), "{err}");
    assert!(!out.exists());
}

#[test]
fn unknown_fs_and_unmountable_levels_are_refused() {
    assert!(matches!(FsLevel::resolve("ext5", None), Err(Error::UnknownFs(ref s)) if s == "ext5"));
    let k = |s: &str| s.parse().expect("version");
    let err = FsLevel::resolve("ext4", Some(k("2.6.11"))).expect_err("ext4 on 2.6.11");
    assert!(err.to_string().contains("Linux 2.6.11"), "{err}");
    let err = FsLevel::resolve("ext4-modern", Some(k("2.6.33"))).expect_err("csum on 2.6.33");
    assert!(
        err.to_string().contains("metadata_csum") && err.to_string().contains("3.18"),
        "{err}"
    );
    assert!(FsLevel::resolve("ext3", Some(k("2.6.11"))).is_ok());
}

#[test]
fn a_missing_or_non_folder_source_is_named() {
    let t = tempfile::tempdir().expect("tempdir");
    let out = t.path().join("x.img");
    let missing = t.path().join("no-such-folder");
    let err = run(
        &out,
        &opts(FsLevel::Ext3, "8M", vec![Source::Dir(missing.clone())]),
    )
    .expect_err("missing");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    let file = t.path().join("plain");
    std::fs::write(&file, b"x").expect("write");
    let err = run(
        &out,
        &opts(FsLevel::Ext3, "8M", vec![Source::Dir(file.clone())]),
    )
    .expect_err("not a folder");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    assert!(!out.exists());
}

#[cfg(target_os = "linux")]
#[test]
fn an_output_folder_that_cannot_be_written_is_named() {
    // /proc refuses new files even to root.
    let out = Path::new("/proc/colinux-setup-test.img");
    let err = run(out, &opts(FsLevel::Ext2, "8M", Vec::new())).expect_err("cannot write /proc");
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(
        err.to_string().contains("/proc/colinux-setup-test.img"),
        "{err}"
    );
}

#[test]
fn an_existing_output_is_kept_without_force() {
    let t = tempfile::tempdir().expect("tempdir");
    let out = t.path().join("home.img");
    std::fs::write(&out, b"precious user data").expect("write");
    let err = run(&out, &opts(FsLevel::Ext3, "8M", Vec::new())).expect_err("exists");
    assert!(matches!(err, Error::OutputExists(_)), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read(&out).expect("read"), b"precious user data");
    let mut o = opts(FsLevel::Ext3, "8M", Vec::new());
    o.force = true;
    run(&out, &o).expect("--force replaces it");
    assert_eq!(listing(t.path()), vec!["home.img".to_owned()]);
}

#[test]
fn an_interrupted_build_leaves_nothing() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = tree_with_big_file(t.path());
    let out_dir = t.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let err = build(
        &out_dir.join("x.img"),
        &opts(FsLevel::Ext4Modern, "16M", vec![Source::Dir(src)]),
        &mut |_| {},
        &AtomicBool::new(true),
    )
    .expect_err("interrupted");
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert!(
        listing(&out_dir).is_empty(),
        "left behind: {:?}",
        listing(&out_dir)
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_target_longer_than_a_block_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let target = "d/".repeat(700); // 1400 bytes: more than a 1 KiB block holds
    std::os::unix::fs::symlink(&target, src.join("deep")).expect("symlink");
    let mut o = opts(FsLevel::Ext2, "8M", vec![Source::Dir(src)]);
    o.block_size = 1024;
    let out = t.path().join("x.img");
    let err = run(&out, &o).expect_err("too long");
    assert!(
        matches!(
            err,
            Error::SymlinkTooLong {
                len: 1400,
                max: 1023,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("'/deep'"), "{err}");
    assert!(!out.exists());
}

#[test]
fn bad_sizes_and_block_sizes_are_refused() {
    for s in ["", "12Q", "auto-3", "-1M"] {
        assert!(
            matches!(s.parse::<SizeSpec>(), Err(Error::BadSize(_))),
            "{s:?}"
        );
    }
    let t = tempfile::tempdir().expect("tempdir");
    let mut o = opts(FsLevel::Ext2, "8M", Vec::new());
    o.block_size = 3000;
    assert!(matches!(
        run(&t.path().join("x.img"), &o),
        Err(Error::BadBlockSize(3000))
    ));
    let mut o = opts(FsLevel::Ext2, "8M", Vec::new());
    o.label = Some("a-label-longer-than-16".into());
    assert!(matches!(
        run(&t.path().join("x.img"), &o),
        Err(Error::BadArgument(_))
    ));
}

#[test]
fn a_lost_found_that_is_no_directory_gives_way() {
    let t = tempfile::tempdir().expect("tempdir");
    let f = t.path().join("f");
    std::fs::write(&f, b"not a directory").expect("write");
    let out = t.path().join("x.img");
    let mut warnings = Vec::new();
    let o = opts(
        FsLevel::Ext3,
        "8M",
        vec![Source::File {
            src: f,
            dest: "/lost+found".into(),
        }],
    );
    build(
        &out,
        &o,
        &mut |e| {
            if let image_builder::Event::Warning(w) = e {
                warnings.push(w)
            }
        },
        &AtomicBool::new(false),
    )
    .expect("builds");
    assert!(
        warnings.iter().any(|w| w.contains("/lost+found")),
        "{warnings:?}"
    );
    let report = image_builder::check(&out).expect("checks");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
