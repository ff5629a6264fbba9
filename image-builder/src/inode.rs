//! The inode record (`struct ext4_inode`, Documentation/filesystems/ext4/inodes.rst).
//!
//! 128-byte inodes (ext2/ext3 here) end after `osd2`; 256-byte inodes carry
//! `i_extra_isize` = 32 more bytes: the checksum's high half, nanoseconds and epoch bits
//! for each time, and the creation time. All four times are set to the entry's mtime:
//! the source's atime and ctime say when *this host* read or changed it, which is
//! neither reproducible nor meaningful inside the guest.

use crate::checksum::{crc32c_raw, inode_seed};
use crate::tree::Timestamp;
use crate::util::{hi32, lo32, put_u16le, put_u32le};

/// File type bits of `i_mode`.
pub(crate) const S_IFIFO: u16 = 0o010000;
pub(crate) const S_IFCHR: u16 = 0o020000;
pub(crate) const S_IFDIR: u16 = 0o040000;
pub(crate) const S_IFBLK: u16 = 0o060000;
pub(crate) const S_IFREG: u16 = 0o100000;
pub(crate) const S_IFLNK: u16 = 0o120000;

/// `i_flags`: the directory has a hashed index.
pub(crate) const EXT4_INDEX_FL: u32 = 0x0000_1000;
/// `i_flags`: `i_block` holds an extent tree.
pub(crate) const EXT4_EXTENTS_FL: u32 = 0x0008_0000;

const I_CHECKSUM_LO: usize = 0x7c;
const I_CHECKSUM_HI: usize = 0x82;
/// Bytes past 128 that this writer fills (through `i_projid`).
pub(crate) const EXTRA_ISIZE: u16 = 32;

/// One inode, ready to encode.
#[derive(Clone, Debug)]
pub(crate) struct InodeRec {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub time: Timestamp,
    pub links: u16,
    /// Blocks charged to the inode (data and mapping blocks), in filesystem blocks.
    pub blocks: u64,
    pub flags: u32,
    pub i_block: [u8; 60],
    pub file_acl: u64,
}

impl Default for InodeRec {
    fn default() -> Self {
        InodeRec {
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            time: Timestamp::default(),
            links: 0,
            blocks: 0,
            flags: 0,
            i_block: [0; 60],
            file_acl: 0,
        }
    }
}

impl InodeRec {
    /// Encodes into `buf` (one inode slot of `inode_size` bytes). `csum_seed` is the
    /// filesystem seed when metadata_csum is on.
    pub(crate) fn encode(&self, buf: &mut [u8], ino: u32, block_size: u32, csum_seed: Option<u32>) {
        buf.fill(0);
        let extra = buf.len() > 128;
        let (secs_lo, time_extra) = encode_time(self.time, extra);
        put_u16le(buf, 0x00, self.mode);
        put_u16le(buf, 0x02, (self.uid & 0xffff) as u16);
        put_u32le(buf, 0x04, lo32(self.size));
        put_u32le(buf, 0x08, secs_lo); // i_atime
        put_u32le(buf, 0x0c, secs_lo); // i_ctime
        put_u32le(buf, 0x10, secs_lo); // i_mtime
        put_u16le(buf, 0x18, (self.gid & 0xffff) as u16);
        put_u16le(buf, 0x1a, self.links);
        // i_blocks counts 512-byte sectors unless EXT4_HUGE_FILE_FL is set (never here).
        let sectors = self.blocks * u64::from(block_size / 512);
        put_u32le(buf, 0x1c, lo32(sectors));
        put_u32le(buf, 0x20, self.flags);
        buf[0x28..0x64].copy_from_slice(&self.i_block);
        put_u32le(buf, 0x68, lo32(self.file_acl));
        put_u32le(buf, 0x6c, hi32(self.size));
        put_u16le(buf, 0x74, (hi32(sectors) & 0xffff) as u16); // l_i_blocks_high (huge_file)
        put_u16le(buf, 0x76, (hi32(self.file_acl) & 0xffff) as u16);
        put_u16le(buf, 0x78, (self.uid >> 16) as u16);
        put_u16le(buf, 0x7a, (self.gid >> 16) as u16);
        if extra {
            put_u16le(buf, 0x80, EXTRA_ISIZE);
            put_u32le(buf, 0x84, time_extra); // i_ctime_extra
            put_u32le(buf, 0x88, time_extra); // i_mtime_extra
            put_u32le(buf, 0x8c, time_extra); // i_atime_extra
            put_u32le(buf, 0x90, secs_lo); // i_crtime
            put_u32le(buf, 0x94, time_extra);
        }
        if let Some(fs_seed) = csum_seed {
            // Checksum over the whole slot with both halves of the field zero (they are:
            // the buffer was cleared), seeded by inode number and generation (0).
            let crc = crc32c_raw(inode_seed(fs_seed, ino, 0), buf);
            put_u16le(buf, I_CHECKSUM_LO, (crc & 0xffff) as u16);
            if extra {
                put_u16le(buf, I_CHECKSUM_HI, (crc >> 16) as u16);
            }
        }
    }
}

/// (32-bit seconds, `*_extra` word). The extra word holds two epoch bits (seconds past
/// the signed 32-bit range, for dates until 2446) and the nanoseconds shifted by two.
/// Without extra fields the time is clamped to the signed 32-bit range (1901..2038).
fn encode_time(t: Timestamp, extra: bool) -> (u32, u32) {
    if !extra {
        let s = t.secs.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
        return ((s as i32) as u32, 0);
    }
    // Representable: -2^31 .. 2^34 - 2^31 - 1.
    let s = t
        .secs
        .clamp(i64::from(i32::MIN), (1i64 << 34) - (1i64 << 31) - 1);
    let epoch = ((s - i64::from(s as i32)) >> 32) as u32 & 3;
    ((s as i32) as u32, epoch | (t.nsec.min(999_999_999) << 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_past_2038_use_the_epoch_bits() {
        // 2100-01-01: one epoch past the signed 32-bit range.
        let (lo, extra) = encode_time(
            Timestamp {
                secs: 4_102_444_800,
                nsec: 5,
            },
            true,
        );
        assert_eq!(extra & 3, 1);
        assert_eq!(extra >> 2, 5);
        assert_eq!(i64::from(lo as i32) + (1 << 32), 4_102_444_800);
    }

    #[test]
    fn small_inodes_clamp_times() {
        let (lo, extra) = encode_time(
            Timestamp {
                secs: 1 << 40,
                nsec: 7,
            },
            false,
        );
        assert_eq!((lo, extra), (i32::MAX as u32, 0));
    }

    #[test]
    fn checksum_fills_both_halves() {
        let rec = InodeRec {
            mode: S_IFREG | 0o644,
            links: 1,
            ..Default::default()
        };
        let mut buf = vec![0u8; 256];
        rec.encode(&mut buf, 12, 4096, Some(0x1234_5678));
        let lo = u32::from(u16::from_le_bytes([buf[0x7c], buf[0x7d]]));
        let hi = u32::from(u16::from_le_bytes([buf[0x82], buf[0x83]]));
        let mut zeroed = buf.clone();
        zeroed[0x7c..0x7e].fill(0);
        zeroed[0x82..0x84].fill(0);
        assert_eq!(
            lo | (hi << 16),
            crc32c_raw(inode_seed(0x1234_5678, 12, 0), &zeroed)
        );
    }
}
