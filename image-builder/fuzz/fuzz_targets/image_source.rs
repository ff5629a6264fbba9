//! Fuzzes the image readers: an image as a build source (`build --from IMG`), `check`
//! and `inspect`, on real images with bytes changed where the metadata lives.
//!
//! The input is structure-aware: its first byte picks a base image (ours at each level,
//! ours at ext4-modern inside a VHDX, and mke2fs's from test_data/), the rest is a list
//! of patches, four bytes each: a 24-bit offset into the image's first 512 KiB
//! (superblock, descriptors, bitmaps, inode tables, directories, maps; in the VHDX, its
//! headers and region tables) and the byte to write there. A base byte past the
//! list of images takes the rest of the input as a whole image instead.
//!
//! What counts as a failure: a panic, an abort (a huge allocation), a hang (libFuzzer's
//! -timeout), or memory past -rss_limit_mb. Errors and losses are fine: they are the
//! readers saying no. Run (from image-builder/fuzz):
//!
//! ```sh
//! TMPDIR=/dev/shm cargo +nightly fuzz run -s none image_source -- \
//!     -timeout=20 -rss_limit_mb=2048 -max_total_time=1800
//! ```
//!
//! (`-s none`: the code under test is safe Rust, so the address sanitizer adds little but
//! halves the speed; debug assertions stay on, so an overflow is a finding. TMPDIR on a
//! tmpfs: each run writes and syncs two images.)
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use image_builder::{BuildOptions, DiskFormat, FsLevel, Source, build, check, inspect};
use libfuzzer_sys::fuzz_target;

/// Where the metadata of the base images lives; patches land here.
const HOT: usize = 512 << 10;

struct Bases {
    dir: tempfile::TempDir,
    images: Vec<Vec<u8>>,
}

/// A small tree with what the maps can hold: a file past 12 blocks (indirect blocks),
/// a sparse file, a folder over one block (htree on ext3/4), symlinks, a hard link, a
/// fifo, attributes.
fn tree(at: &Path) {
    std::fs::create_dir_all(at.join("d/e")).expect("mkdir");
    let bytes: Vec<u8> = (0u32..70_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    std::fs::write(at.join("big"), &bytes).expect("write");
    let f = std::fs::File::create(at.join("sparse")).expect("create");
    std::os::unix::fs::FileExt::write_all_at(&f, b"start", 0).expect("write");
    std::os::unix::fs::FileExt::write_all_at(&f, b"end", 300_000).expect("write");
    for i in 0..80 {
        std::fs::write(at.join(format!("d/name-{i:03}")), format!("{i}\n")).expect("write");
    }
    std::fs::write(at.join("d/e/small"), b"small\n").expect("write");
    std::os::unix::fs::symlink("d/e/small", at.join("fast")).expect("symlink");
    std::os::unix::fs::symlink("x".repeat(100), at.join("slow")).expect("symlink");
    std::fs::hard_link(at.join("d/e/small"), at.join("hard")).expect("link");
}

fn bases() -> &'static Bases {
    static B: OnceLock<Bases> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        tree(&src);
        let mut images = Vec::new();
        for level in [
            FsLevel::Ext2,
            FsLevel::Ext3,
            FsLevel::Ext4Compat,
            FsLevel::Ext4Modern,
        ] {
            let out = dir.path().join(format!("{}.img", level.name()));
            let mut o = BuildOptions::new(level, "3M".parse().expect("size"));
            o.block_size = 1024;
            o.sources.push(Source::Dir(src.clone()));
            build(&out, &o, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
            images.push(std::fs::read(&out).expect("read"));
            std::fs::remove_file(&out).expect("rm");
        }
        // The same image in a VHDX: its decoder runs before the ext decoder reads the disk.
        let out = dir.path().join("ext4.vhdx");
        let mut o = BuildOptions::new(FsLevel::Ext4Modern, "3M".parse().expect("size"));
        o.block_size = 1024;
        o.format = DiskFormat::Vhdx;
        o.sources.push(Source::Dir(src.clone()));
        build(&out, &o, &mut |_| {}, &AtomicBool::new(false)).expect("builds");
        images.push(std::fs::read(&out).expect("read"));
        std::fs::remove_file(&out).expect("rm");
        for packed in [
            &include_bytes!("../../test_data/ext4.img.zst")[..],
            &include_bytes!("../../test_data/ext2.img.zst")[..],
        ] {
            images.push(zstd::stream::decode_all(packed).expect("unpacks"));
        }
        Bases { dir, images }
    })
}

fn image_of(data: &[u8]) -> Option<Vec<u8>> {
    let (&pick, patches) = data.split_first()?;
    let b = bases();
    let Some(base) = b.images.get(usize::from(pick)) else {
        return Some(patches.to_vec());
    };
    let mut img = base.clone();
    let hot = HOT.min(img.len());
    for p in patches.chunks_exact(4) {
        let off = (usize::from(p[0]) << 16 | usize::from(p[1]) << 8 | usize::from(p[2])) % hot;
        img[off] = p[3];
    }
    Some(img)
}

fn scratch(name: &str) -> PathBuf {
    bases().dir.path().join(name)
}

fuzz_target!(|data: &[u8]| {
    let Some(img) = image_of(data) else {
        return;
    };
    let path = scratch("fuzzed.img");
    std::fs::write(&path, &img).expect("write");
    let _ = inspect(&path);
    let _ = check(&path);
    let out = scratch("out.img");
    let mut o = BuildOptions::new(FsLevel::Ext4Modern, "auto".parse().expect("size"));
    o.block_size = 1024;
    o.sources.push(Source::Image(path.clone()));
    if build(&out, &o, &mut |_| {}, &AtomicBool::new(false)).is_ok() {
        // What was built from a damaged image must itself be sound.
        let report = check(&out).expect("the new image checks");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        std::fs::remove_file(&out).expect("rm");
    }
});
