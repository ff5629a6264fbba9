//! `BuildOptions::check_fit`: what `build` refuses before it writes, found without
//! writing (issue 19, item 9: an install and its dry run refuse a size too small for its
//! content before they change anything).

use image_builder::{BuildOptions, Error, FsLevel, SizeSpec, Source, build};

fn options(dir: &std::path::Path, mb: u64) -> BuildOptions {
    let mut o = BuildOptions::new(
        FsLevel::resolve("ext3", None).expect("ext3"),
        SizeSpec::Bytes(mb << 20),
    );
    o.sources = vec![Source::Dir(dir.to_owned())];
    o
}

#[test]
fn check_fit_refuses_what_build_refuses_and_writes_nothing() {
    let t = tempfile::tempdir().expect("tempdir");
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("uclinux")).expect("mkdir");
    let small = options(&tree, 4);
    let Err(Error::TooSmall { minimum, .. }) = small.check_fit() else {
        panic!("4 MiB of ext3 fits?");
    };
    let out = t.path().join("home.img");
    match build(&out, &small, &mut |_| {}, &Default::default()) {
        Err(Error::TooSmall { minimum: m, .. }) => assert_eq!(m, minimum),
        other => panic!("build: {other:?}"),
    }
    assert!(!out.exists());
    let fits = options(&tree, minimum.div_ceil(1 << 20));
    fits.check_fit().expect("the minimum fits");
    build(&out, &fits, &mut |_| {}, &Default::default()).expect("and builds");
    assert_eq!(
        std::fs::read_dir(t.path()).expect("ls").count(),
        2,
        "only the tree and the image"
    );
}
