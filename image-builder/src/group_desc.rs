//! Group descriptors (`struct ext4_group_desc`, Documentation/filesystems/ext4/
//! group_descr.rst): 32 bytes, or 64 with the 64bit feature. The table follows each
//! superblock copy.
//!
//! [`encode`] writes one for the writer, [`decode`] reads one for the readers; the
//! checksum functions serve both (the writer seals, `check` compares).

use crate::checksum::{crc16, crc32c_raw};
use crate::util::{get_u16le, get_u32le, hi32, lo32, put_u16le, put_u32le};

// Field offsets (group_descr.rst), the `_hi` halves past 0x20 only in 64-byte descriptors.
const BG_BLOCK_BITMAP_LO: usize = 0x00;
const BG_INODE_BITMAP_LO: usize = 0x04;
const BG_INODE_TABLE_LO: usize = 0x08;
const BG_FREE_BLOCKS_COUNT_LO: usize = 0x0c;
const BG_FREE_INODES_COUNT_LO: usize = 0x0e;
const BG_USED_DIRS_COUNT_LO: usize = 0x10;
const BG_FLAGS: usize = 0x12;
const BG_BLOCK_BITMAP_CSUM_LO: usize = 0x18;
const BG_INODE_BITMAP_CSUM_LO: usize = 0x1a;
const BG_ITABLE_UNUSED_LO: usize = 0x1c;
const BG_CHECKSUM: usize = 0x1e;
const BG_BLOCK_BITMAP_HI: usize = 0x20;
const BG_INODE_BITMAP_HI: usize = 0x24;
const BG_INODE_TABLE_HI: usize = 0x28;
const BG_FREE_BLOCKS_COUNT_HI: usize = 0x2c;
const BG_FREE_INODES_COUNT_HI: usize = 0x2e;
const BG_USED_DIRS_COUNT_HI: usize = 0x30;
const BG_ITABLE_UNUSED_HI: usize = 0x32;
const BG_BLOCK_BITMAP_CSUM_HI: usize = 0x38;
const BG_INODE_BITMAP_CSUM_HI: usize = 0x3a;
/// A descriptor this long carries the `_hi` halves.
pub(crate) const WIDE_DESC_SIZE: usize = 64;

/// `bg_flags`: the inode table and bitmap are not initialised (computed, not read).
pub(crate) const EXT4_BG_INODE_UNINIT: u16 = 0x0001;
/// `bg_flags`: the block bitmap is not initialised (computed, not read).
pub(crate) const EXT4_BG_BLOCK_UNINIT: u16 = 0x0002;
/// `bg_flags`: the inode table is zeroed (it is: unused inodes are holes).
pub(crate) const EXT4_BG_INODE_ZEROED: u16 = 0x0004;

/// The counts and positions of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupDesc {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks: u32,
    pub free_inodes: u32,
    pub used_dirs: u32,
    pub flags: u16,
    /// CRC32C of the bitmaps (metadata_csum; only the low halves in 32-byte descriptors).
    pub block_bitmap_csum: u32,
    pub inode_bitmap_csum: u32,
    /// Inode table entries at the end of the group never used (uninit_bg, metadata_csum).
    pub itable_unused: u32,
}

/// Encodes descriptor `group` into `b` (`desc_size` bytes). `fs_seed` is set when
/// metadata_csum is on.
pub(crate) fn encode(d: &GroupDesc, b: &mut [u8], group: u32, fs_seed: Option<u32>) {
    b.fill(0);
    put_u32le(b, BG_BLOCK_BITMAP_LO, lo32(d.block_bitmap));
    put_u32le(b, BG_INODE_BITMAP_LO, lo32(d.inode_bitmap));
    put_u32le(b, BG_INODE_TABLE_LO, lo32(d.inode_table));
    put_u16le(b, BG_FREE_BLOCKS_COUNT_LO, (d.free_blocks & 0xffff) as u16);
    put_u16le(b, BG_FREE_INODES_COUNT_LO, (d.free_inodes & 0xffff) as u16);
    put_u16le(b, BG_USED_DIRS_COUNT_LO, (d.used_dirs & 0xffff) as u16);
    put_u16le(b, BG_FLAGS, d.flags);
    put_u16le(
        b,
        BG_BLOCK_BITMAP_CSUM_LO,
        (d.block_bitmap_csum & 0xffff) as u16,
    );
    put_u16le(
        b,
        BG_INODE_BITMAP_CSUM_LO,
        (d.inode_bitmap_csum & 0xffff) as u16,
    );
    put_u16le(b, BG_ITABLE_UNUSED_LO, (d.itable_unused & 0xffff) as u16);
    if b.len() >= WIDE_DESC_SIZE {
        put_u32le(b, BG_BLOCK_BITMAP_HI, hi32(d.block_bitmap));
        put_u32le(b, BG_INODE_BITMAP_HI, hi32(d.inode_bitmap));
        put_u32le(b, BG_INODE_TABLE_HI, hi32(d.inode_table));
        put_u16le(b, BG_FREE_BLOCKS_COUNT_HI, (d.free_blocks >> 16) as u16);
        put_u16le(b, BG_FREE_INODES_COUNT_HI, (d.free_inodes >> 16) as u16);
        put_u16le(b, BG_USED_DIRS_COUNT_HI, (d.used_dirs >> 16) as u16);
        put_u16le(b, BG_ITABLE_UNUSED_HI, (d.itable_unused >> 16) as u16);
        put_u16le(
            b,
            BG_BLOCK_BITMAP_CSUM_HI,
            (d.block_bitmap_csum >> 16) as u16,
        );
        put_u16le(
            b,
            BG_INODE_BITMAP_CSUM_HI,
            (d.inode_bitmap_csum >> 16) as u16,
        );
    }
    if let Some(seed) = fs_seed {
        let crc = crc32c_checksum(b, group, seed);
        put_u16le(b, BG_CHECKSUM, crc);
    }
}

/// Decodes one descriptor of `d.len()` bytes (32, or 64 and more under 64bit); the
/// `_hi` halves count when `wide` (64bit with descriptors of 64 bytes or more). `None`
/// when `d` is shorter than `wide` asks for.
pub(crate) fn decode(d: &[u8], wide: bool) -> Option<GroupDesc> {
    let hi32 = |off| -> Option<u64> {
        Some(if wide {
            u64::from(get_u32le(d, off)?) << 32
        } else {
            0
        })
    };
    let hi16 = |off| -> Option<u32> {
        Some(if wide {
            u32::from(get_u16le(d, off)?) << 16
        } else {
            0
        })
    };
    Some(GroupDesc {
        block_bitmap: u64::from(get_u32le(d, BG_BLOCK_BITMAP_LO)?) | hi32(BG_BLOCK_BITMAP_HI)?,
        inode_bitmap: u64::from(get_u32le(d, BG_INODE_BITMAP_LO)?) | hi32(BG_INODE_BITMAP_HI)?,
        inode_table: u64::from(get_u32le(d, BG_INODE_TABLE_LO)?) | hi32(BG_INODE_TABLE_HI)?,
        free_blocks: u32::from(get_u16le(d, BG_FREE_BLOCKS_COUNT_LO)?)
            | hi16(BG_FREE_BLOCKS_COUNT_HI)?,
        free_inodes: u32::from(get_u16le(d, BG_FREE_INODES_COUNT_LO)?)
            | hi16(BG_FREE_INODES_COUNT_HI)?,
        used_dirs: u32::from(get_u16le(d, BG_USED_DIRS_COUNT_LO)?) | hi16(BG_USED_DIRS_COUNT_HI)?,
        flags: get_u16le(d, BG_FLAGS)?,
        block_bitmap_csum: u32::from(get_u16le(d, BG_BLOCK_BITMAP_CSUM_LO)?)
            | hi16(BG_BLOCK_BITMAP_CSUM_HI)?,
        inode_bitmap_csum: u32::from(get_u16le(d, BG_INODE_BITMAP_CSUM_LO)?)
            | hi16(BG_INODE_BITMAP_CSUM_HI)?,
        itable_unused: u32::from(get_u16le(d, BG_ITABLE_UNUSED_LO)?) | hi16(BG_ITABLE_UNUSED_HI)?,
    })
}

/// `bg_checksum` as stored in descriptor `d`.
pub(crate) fn stored_checksum(d: &[u8]) -> u16 {
    get_u16le(d, BG_CHECKSUM).unwrap_or(0)
}

/// The metadata_csum descriptor checksum: the low 16 bits of crc32c(fs seed, group
/// number, the descriptor with `bg_checksum` zero).
pub(crate) fn crc32c_checksum(d: &[u8], group: u32, fs_seed: u32) -> u16 {
    let mut zeroed = d.to_vec();
    if let Some(f) = zeroed.get_mut(BG_CHECKSUM..BG_CHECKSUM + 2) {
        f.fill(0);
    }
    let crc = crc32c_raw(crc32c_raw(fs_seed, &group.to_le_bytes()), &zeroed);
    (crc & 0xffff) as u16
}

/// The uninit_bg (gdt_csum) descriptor checksum: crc16 of the UUID, the group number
/// and the descriptor around `bg_checksum`, as the kernel's `ext4_group_desc_csum`.
pub(crate) fn crc16_checksum(d: &[u8], group: u32, uuid: &[u8; 16]) -> u16 {
    let mut crc = crc16(!0, uuid);
    crc = crc16(crc, &group.to_le_bytes());
    crc = crc16(crc, d.get(..BG_CHECKSUM).unwrap_or(d));
    if let Some(rest) = d.get(BG_CHECKSUM + 2..) {
        crc = crc16(crc, rest);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;

    /// Group 0's descriptor of test_data/ext4.img (64 bytes, block 2).
    fn real() -> Vec<u8> {
        test_data::block(test_data::ext4(), 2)[..64].to_vec()
    }

    #[test]
    fn decodes_what_mke2fs_wrote() {
        // dumpe2fs test_data/ext4.img: "Group 0: (Blocks 1-2047) csum 0x6efa" (no
        // flags), bitmaps at 18 and 34, inode table at 50-113, 909 free blocks, 121
        // free inodes, 3 directories, 121 unused inodes; bitmap checksums 0xd775d404
        // and 0xf2fc6c01.
        let d = decode(&real(), true).expect("decodes");
        assert_eq!(
            d,
            GroupDesc {
                block_bitmap: 18,
                inode_bitmap: 34,
                inode_table: 50,
                free_blocks: 909,
                free_inodes: 121,
                used_dirs: 3,
                flags: 0,
                block_bitmap_csum: 0xd775_d404,
                inode_bitmap_csum: 0xf2fc_6c01,
                itable_unused: 121,
            }
        );
        let sb = crate::superblock::Superblock::decode(&test_data::ext4()[1024..2048])
            .expect("superblock");
        let seed = sb.csum_seed().expect("metadata_csum");
        assert_eq!(stored_checksum(&real()), 0x6efa);
        assert_eq!(crc32c_checksum(&real(), 0, seed), 0x6efa);
    }

    #[test]
    fn a_changed_field_changes_the_checksum_and_the_value() {
        let mut d = real();
        d[BG_INODE_TABLE_HI] = 1; // inode table at block 2^32 + 50
        let sb = crate::superblock::Superblock::decode(&test_data::ext4()[1024..2048])
            .expect("superblock");
        let seed = sb.csum_seed().expect("metadata_csum");
        assert_ne!(crc32c_checksum(&d, 0, seed), stored_checksum(&d));
        assert_eq!(
            decode(&d, true).map(|g| g.inode_table),
            Some((1 << 32) + 50)
        );
        // A 32-byte descriptor has no high halves.
        assert_eq!(decode(&d[..32], false).map(|g| g.inode_table), Some(50));
        assert_eq!(decode(&d[..32], true), None);
    }

    #[test]
    fn what_is_encoded_decodes_to_the_same_values() {
        let d = GroupDesc {
            block_bitmap: (3 << 32) | 17,
            inode_bitmap: 33,
            inode_table: 49,
            free_blocks: 0x1_2345,
            free_inodes: 0x2_0001,
            used_dirs: 7,
            flags: EXT4_BG_INODE_ZEROED,
            block_bitmap_csum: 0xdead_beef,
            inode_bitmap_csum: 0x1234_5678,
            itable_unused: 0,
        };
        let mut b = vec![0u8; 64];
        encode(&d, &mut b, 5, Some(42));
        assert_eq!(decode(&b, true).as_ref(), Some(&d));
        assert_eq!(crc32c_checksum(&b, 5, 42), stored_checksum(&b));
        let mut narrow = vec![0u8; 32];
        encode(&d, &mut narrow, 5, None);
        let back = decode(&narrow, false).expect("decodes");
        assert_eq!((back.block_bitmap, back.free_blocks), (17, 0x2345));
    }

    #[test]
    fn crc16_covers_the_descriptor_around_its_checksum() {
        let uuid = [1u8; 16];
        let mut d = vec![0u8; 64];
        d[0] = 5;
        let a = crc16_checksum(&d, 3, &uuid);
        d[BG_CHECKSUM] = 0xff; // the checksum field itself is left out
        assert_eq!(crc16_checksum(&d, 3, &uuid), a);
        d[0x30] = 1; // a high half counts
        assert_ne!(crc16_checksum(&d, 3, &uuid), a);
    }
}
