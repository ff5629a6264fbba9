//! Group descriptors (`struct ext4_group_desc`, Documentation/filesystems/ext4/
//! group_descr.rst): 32 bytes, or 64 with the 64bit feature. The table follows each
//! superblock copy.

use crate::checksum::crc32c_raw;
use crate::util::{hi32, lo32, put_u16le, put_u32le};

const BG_CHECKSUM: usize = 0x1e;
/// `bg_flags`: the inode table is zeroed (it is: unused inodes are holes).
const EXT4_BG_INODE_ZEROED: u16 = 0x0004;

/// The counts and positions of one group.
pub(crate) struct GroupDesc {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks: u32,
    pub free_inodes: u32,
    pub used_dirs: u32,
    /// CRC32C of the bitmaps (metadata_csum).
    pub block_bitmap_csum: u32,
    pub inode_bitmap_csum: u32,
}

/// Encodes descriptor `group` into `b` (`desc_size` bytes). `fs_seed` is set when
/// metadata_csum is on.
pub(crate) fn encode(d: &GroupDesc, b: &mut [u8], group: u32, fs_seed: Option<u32>) {
    b.fill(0);
    put_u32le(b, 0x00, lo32(d.block_bitmap));
    put_u32le(b, 0x04, lo32(d.inode_bitmap));
    put_u32le(b, 0x08, lo32(d.inode_table));
    put_u16le(b, 0x0c, (d.free_blocks & 0xffff) as u16);
    put_u16le(b, 0x0e, (d.free_inodes & 0xffff) as u16);
    put_u16le(b, 0x10, (d.used_dirs & 0xffff) as u16);
    if fs_seed.is_some() {
        put_u16le(b, 0x12, EXT4_BG_INODE_ZEROED);
        put_u16le(b, 0x18, (d.block_bitmap_csum & 0xffff) as u16);
        put_u16le(b, 0x1a, (d.inode_bitmap_csum & 0xffff) as u16);
    }
    if b.len() >= 64 {
        put_u32le(b, 0x20, hi32(d.block_bitmap));
        put_u32le(b, 0x24, hi32(d.inode_bitmap));
        put_u32le(b, 0x28, hi32(d.inode_table));
        put_u16le(b, 0x2c, (d.free_blocks >> 16) as u16);
        put_u16le(b, 0x2e, (d.free_inodes >> 16) as u16);
        put_u16le(b, 0x30, (d.used_dirs >> 16) as u16);
        if fs_seed.is_some() {
            put_u16le(b, 0x38, (d.block_bitmap_csum >> 16) as u16);
            put_u16le(b, 0x3a, (d.inode_bitmap_csum >> 16) as u16);
        }
    }
    if let Some(seed) = fs_seed {
        // crc32c(seed, group number, descriptor with bg_checksum zero), low 16 bits.
        let crc = crc32c_raw(crc32c_raw(seed, &group.to_le_bytes()), b);
        put_u16le(b, BG_CHECKSUM, (crc & 0xffff) as u16);
    }
}
