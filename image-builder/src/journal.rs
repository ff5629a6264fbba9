//! The internal journal of ext3 and ext4: inode 8, and its superblock (jbd2
//! `journal_superblock_t`, Documentation/filesystems/ext4/journal.rst).
//!
//! The jbd2 structures are big-endian, unlike the rest of ext4. A fresh journal is
//! clean: `s_start` = 0 tells the kernel there is nothing to replay, so every block
//! after the superblock may stay zero (a hole in the image file) although all of them
//! are allocated to inode 8.

use crate::util::{get_u32be, put_u32be};

const JBD2_MAGIC: u32 = 0xc03b_3998;
/// Block type: a version 2 superblock.
const JBD2_SUPERBLOCK_V2: u32 = 4;

/// Journal length in filesystem blocks for a filesystem of `blocks` blocks, as
/// e2fsprogs' `ext2fs_default_journal_size` chooses it; `None` when the filesystem is
/// too small to carry a journal (under 2048 blocks).
pub(crate) fn default_blocks(blocks: u64) -> Option<u64> {
    Some(match blocks {
        0..2048 => return None,
        2048..32768 => 1024,
        32768..262144 => 4096,
        262144..524288 => 8192,
        524288..4194304 => 16384,
        4194304..8388608 => 32768,
        8388608..16777216 => 65536,
        16777216..33554432 => 131072,
        _ => 262144,
    })
}

/// The journal superblock (first block of the journal), for a journal of `maxlen`
/// blocks on the filesystem `uuid`.
pub(crate) fn superblock(block_size: u32, maxlen: u32, uuid: &[u8; 16]) -> Vec<u8> {
    let mut b = vec![0u8; block_size as usize];
    put_u32be(&mut b, 0x00, JBD2_MAGIC);
    put_u32be(&mut b, 0x04, JBD2_SUPERBLOCK_V2);
    put_u32be(&mut b, 0x0c, block_size); // s_blocksize
    put_u32be(&mut b, 0x10, maxlen); // s_maxlen
    put_u32be(&mut b, 0x14, 1); // s_first: the log starts after this block
    put_u32be(&mut b, 0x18, 1); // s_sequence
    // s_start stays 0: the journal is clean, nothing to recover.
    b[0x30..0x40].copy_from_slice(uuid);
    put_u32be(&mut b, 0x40, 1); // s_nr_users: this filesystem
    b
}

/// Whether `block` opens with a jbd2 block header (`h_magic`), as a journal's first
/// block must.
pub(crate) fn has_magic(block: &[u8]) -> bool {
    get_u32be(block, 0) == Some(JBD2_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_mke2fs_wrote_opens_with_the_magic() {
        // test_data/ext4.img's journal is inode 8 (slot 7 of the table at block 50); its
        // first block, found through its first extent, holds the jbd2 superblock.
        let img = crate::test_data::ext4();
        let at = 50 * 1024 + 7 * 256;
        let ino = crate::inode::Inode::decode(&img[at..at + 256]).expect("inode 8");
        let run = crate::extent::decode_leaf(&ino.block[12..24]).expect("an extent");
        assert!(has_magic(crate::test_data::block(img, run.physical)));
        assert!(!has_magic(crate::test_data::block(img, run.physical + 1)));
        assert!(has_magic(&superblock(1024, 1024, &[0; 16])));
    }

    #[test]
    fn sizes_follow_e2fsprogs() {
        assert_eq!(default_blocks(1000), None);
        assert_eq!(default_blocks(20_000), Some(1024));
        // 1 GiB of 4 KiB blocks is 262144 blocks: a 32 MiB journal.
        assert_eq!(default_blocks(262_144), Some(8192));
    }
}
