//! Same inputs, same bytes: the image depends on the tree and the options only, not on
//! the host clock, the output folder or the order the host lists directories in.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use image_builder::{BuildOptions, FsLevel, Source, build};

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/ssh")).expect("mkdir");
    std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    for i in 0..200 {
        std::fs::write(
            root.join(format!("usr/bin/tool{i:03}")),
            format!("#!/bin/sh\necho {i}\n").repeat(i + 1),
        )
        .expect("write");
    }
    std::fs::write(root.join("etc/hostname"), b"colinux\n").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink("../usr/bin/tool001", root.join("etc/ssh/link")).expect("symlink");
}

fn build_into(out: &Path, src: &Path, level: FsLevel) {
    let mut o = BuildOptions::new(level, "auto+10%".parse().expect("size"));
    o.sources.push(Source::Dir(src.to_owned()));
    o.owner = Some((0, 0));
    o.source_date_epoch = Some(1_700_000_000);
    build(out, &o, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
}

#[test]
fn two_builds_are_byte_identical() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    make_tree(&src);
    for level in [
        FsLevel::Ext2,
        FsLevel::Ext3,
        FsLevel::Ext4Compat,
        FsLevel::Ext4Modern,
    ] {
        let a = t.path().join("a");
        let b = t.path().join("b");
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(&b).expect("mkdir");
        build_into(&a.join("root.img"), &src, level);
        // The same tree again, created in another order and at another time.
        let src2 = t.path().join(format!("src2-{}", level.name()));
        make_tree(&src2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        build_into(&b.join("root.img"), &src2, level);
        let (x, y) = (
            std::fs::read(a.join("root.img")).expect("read"),
            std::fs::read(b.join("root.img")).expect("read"),
        );
        assert_eq!(x.len(), y.len(), "{level:?}");
        let first_diff = x.iter().zip(&y).position(|(p, q)| p != q);
        assert_eq!(
            first_diff, None,
            "{level:?}: images differ at byte {first_diff:?}"
        );
        std::fs::remove_dir_all(&a).expect("rm");
        std::fs::remove_dir_all(&b).expect("rm");
    }
}

#[cfg(unix)]
#[test]
fn images_are_sparse() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    make_tree(&src);
    let img = t.path().join("big.img");
    let mut o = BuildOptions::new(FsLevel::Ext4Modern, "256M".parse().expect("size"));
    o.sources.push(Source::Dir(src));
    build(&img, &o, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
    let md = std::fs::metadata(&img).expect("stat");
    assert_eq!(md.len(), 256 << 20);
    // Holes: far less than the 256 MiB apparent size is allocated on the host.
    assert!(
        md.blocks() * 512 < 8 << 20,
        "{} bytes allocated",
        md.blocks() * 512
    );
}

#[test]
fn a_seed_keeps_the_uuid_across_content_changes() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    make_tree(&src);
    let uuid_of = |out: &Path, seed: Option<&str>| {
        let mut o = BuildOptions::new(FsLevel::Ext4Modern, "auto".parse().expect("size"));
        o.sources.push(Source::Dir(src.clone()));
        o.seed = seed.map(str::to_owned);
        o.force = true;
        build(out, &o, &mut |_| {}, &AtomicBool::new(false))
            .expect("builds")
            .uuid
    };
    let img = t.path().join("home.img");
    let seeded = uuid_of(&img, Some("machine-42"));
    let unseeded = uuid_of(&img, None);
    std::fs::write(src.join("etc/hostname"), b"another-host\n").expect("write");
    assert_eq!(
        uuid_of(&img, Some("machine-42")),
        seeded,
        "same seed, same UUID"
    );
    assert_ne!(
        uuid_of(&img, None),
        unseeded,
        "without a seed the UUID follows the content"
    );
    assert_ne!(uuid_of(&img, Some("machine-43")), seeded);
}
