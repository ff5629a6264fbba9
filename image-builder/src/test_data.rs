//! Real images for the decoders' unit tests: made by mke2fs, debugfs and e2fsck
//! (`test_data/make.sh`, which lists what each holds) and stored zstd-compressed, as
//! ext4-view keeps its test images. Each structure's tests read a real block from them,
//! patch a documented offset, and assert the exact error.

use std::sync::OnceLock;

fn unpack(packed: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(packed).expect("the test image decompresses")
}

/// `test_data/ext4.img`: 2 MiB, 1 KiB blocks, mke2fs's ext4 defaults (metadata_csum,
/// 64bit), an extent tree of depth 1, an htree directory, attributes in the inode and in
/// a block, a fast symlink.
pub(crate) fn ext4() -> &'static [u8] {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| unpack(include_bytes!("../test_data/ext4.img.zst")))
}

/// `test_data/ext2.img`: 1 MiB, 1 KiB blocks, a 300-block file mapped through direct,
/// indirect and double-indirect blocks.
pub(crate) fn ext2() -> &'static [u8] {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| unpack(include_bytes!("../test_data/ext2.img.zst")))
}

/// The block `nr` of `img` (1 KiB blocks).
pub(crate) fn block(img: &[u8], nr: u64) -> &[u8] {
    let at = usize::try_from(nr * 1024).expect("small image");
    &img[at..at + 1024]
}
