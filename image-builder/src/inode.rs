//! The inode record (`struct ext4_inode`, Documentation/filesystems/ext4/inodes.rst).
//!
//! 128-byte inodes (ext2/ext3 here) end after `osd2`; 256-byte inodes carry
//! `i_extra_isize` = 32 more bytes: the checksum's high half, nanoseconds and epoch bits
//! for each time, and the creation time. All four times are set to the entry's mtime:
//! the source's atime and ctime say when *this host* read or changed it, which is
//! neither reproducible nor meaningful inside the guest.
//!
//! [`InodeRec::encode`] writes a record for the writer; [`Inode::decode`] reads one for
//! the readers, with the same offsets; [`checksum`], [`decode_time`] and [`decode_dev`]
//! are the inverses the readers need.

use crate::checksum::{crc32c_raw, inode_seed};
use crate::tree::Timestamp;
use crate::util::{get_u16le, get_u32le, hi32, lo32, put_u16le, put_u32le};

/// File type bits of `i_mode`.
pub(crate) const S_IFMT: u16 = 0o170000;
pub(crate) const S_IFIFO: u16 = 0o010000;
pub(crate) const S_IFCHR: u16 = 0o020000;
pub(crate) const S_IFDIR: u16 = 0o040000;
pub(crate) const S_IFBLK: u16 = 0o060000;
pub(crate) const S_IFREG: u16 = 0o100000;
pub(crate) const S_IFLNK: u16 = 0o120000;
pub(crate) const S_IFSOCK: u16 = 0o140000;

/// `i_flags`: an AFS server inode (needs the imagic_inodes feature).
pub(crate) const EXT4_IMAGIC_FL: u32 = 0x0000_2000;
/// `i_flags`: the file is encrypted (needs the encrypt feature).
pub(crate) const EXT4_ENCRYPT_FL: u32 = 0x0000_0800;
/// `i_flags`: the directory has a hashed index.
pub(crate) const EXT4_INDEX_FL: u32 = 0x0000_1000;
/// `i_flags`: `i_blocks` counts filesystem blocks, not 512-byte sectors (huge_file).
pub(crate) const EXT4_HUGE_FILE_FL: u32 = 0x0004_0000;
/// `i_flags`: `i_block` holds an extent tree.
pub(crate) const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
/// `i_flags`: a verity file (needs the verity feature).
pub(crate) const EXT4_VERITY_FL: u32 = 0x0010_0000;
/// `i_flags`: the data lives inside the inode (needs the inline_data feature).
pub(crate) const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;
/// `i_flags`: a case-insensitive directory (needs the casefold feature).
pub(crate) const EXT4_CASEFOLD_FL: u32 = 0x4000_0000;

// Field offsets (inodes.rst), named after the kernel's fields.
const I_MODE: usize = 0x00;
const I_UID: usize = 0x02;
const I_SIZE_LO: usize = 0x04;
const I_ATIME: usize = 0x08;
const I_CTIME: usize = 0x0c;
const I_MTIME: usize = 0x10;
const I_DTIME: usize = 0x14;
const I_GID: usize = 0x18;
const I_LINKS_COUNT: usize = 0x1a;
const I_BLOCKS_LO: usize = 0x1c;
const I_FLAGS: usize = 0x20;
/// `i_block`: 60 bytes of block map, extent tree, symlink target or device number.
const I_BLOCK: usize = 0x28;
const I_GENERATION: usize = 0x64;
const I_FILE_ACL_LO: usize = 0x68;
const I_SIZE_HIGH: usize = 0x6c;
const I_OBSO_FADDR: usize = 0x70;
const L_I_BLOCKS_HIGH: usize = 0x74;
const L_I_FILE_ACL_HIGH: usize = 0x76;
const L_I_UID_HIGH: usize = 0x78;
const L_I_GID_HIGH: usize = 0x7a;
const I_CHECKSUM_LO: usize = 0x7c;
/// The fixed part every inode has; the extra fields follow.
pub(crate) const GOOD_OLD_INODE_SIZE: usize = 128;
const I_EXTRA_ISIZE: usize = 0x80;
const I_CHECKSUM_HI: usize = 0x82;
const I_CTIME_EXTRA: usize = 0x84;
const I_MTIME_EXTRA: usize = 0x88;
const I_ATIME_EXTRA: usize = 0x8c;
const I_CRTIME: usize = 0x90;
const I_CRTIME_EXTRA: usize = 0x94;
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
        let extra = buf.len() > GOOD_OLD_INODE_SIZE;
        let (secs_lo, time_extra) = encode_time(self.time, extra);
        put_u16le(buf, I_MODE, self.mode);
        put_u16le(buf, I_UID, (self.uid & 0xffff) as u16);
        put_u32le(buf, I_SIZE_LO, lo32(self.size));
        put_u32le(buf, I_ATIME, secs_lo);
        put_u32le(buf, I_CTIME, secs_lo);
        put_u32le(buf, I_MTIME, secs_lo);
        put_u16le(buf, I_GID, (self.gid & 0xffff) as u16);
        put_u16le(buf, I_LINKS_COUNT, self.links);
        // i_blocks counts 512-byte sectors unless EXT4_HUGE_FILE_FL is set (never here).
        let sectors = self.blocks * u64::from(block_size / 512);
        put_u32le(buf, I_BLOCKS_LO, lo32(sectors));
        put_u32le(buf, I_FLAGS, self.flags);
        buf[I_BLOCK..I_BLOCK + 60].copy_from_slice(&self.i_block);
        put_u32le(buf, I_FILE_ACL_LO, lo32(self.file_acl));
        put_u32le(buf, I_SIZE_HIGH, hi32(self.size));
        put_u16le(buf, L_I_BLOCKS_HIGH, (hi32(sectors) & 0xffff) as u16); // huge_file
        put_u16le(
            buf,
            L_I_FILE_ACL_HIGH,
            (hi32(self.file_acl) & 0xffff) as u16,
        );
        put_u16le(buf, L_I_UID_HIGH, (self.uid >> 16) as u16);
        put_u16le(buf, L_I_GID_HIGH, (self.gid >> 16) as u16);
        if extra {
            put_u16le(buf, I_EXTRA_ISIZE, EXTRA_ISIZE);
            put_u32le(buf, I_CTIME_EXTRA, time_extra);
            put_u32le(buf, I_MTIME_EXTRA, time_extra);
            put_u32le(buf, I_ATIME_EXTRA, time_extra);
            put_u32le(buf, I_CRTIME, secs_lo);
            put_u32le(buf, I_CRTIME_EXTRA, time_extra);
        }
        if let Some(fs_seed) = csum_seed {
            // Seeded by inode number and generation (0), over the whole slot with both
            // halves of the field zero (they are: the buffer was cleared).
            let crc = crc32c_raw(inode_seed(fs_seed, ino, 0), buf);
            put_u16le(buf, I_CHECKSUM_LO, (crc & 0xffff) as u16);
            if extra {
                put_u16le(buf, I_CHECKSUM_HI, (crc >> 16) as u16);
            }
        }
    }
}

/// An inode as read from an image: the fields the readers use, named after the kernel's
/// (without `i_`), the split halves joined where they are always halves. Halves that
/// count only under a feature (`l_i_blocks_high`, `l_i_file_acl_high`) are kept apart;
/// [`Inode::blocks`] and [`Inode::file_acl`] join them as the features say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Inode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub dtime: u32,
    pub links_count: u16,
    pub blocks_lo: u32,
    pub blocks_high: u16,
    pub flags: u32,
    pub block: [u8; 60],
    pub generation: u32,
    pub file_acl_lo: u32,
    pub file_acl_high: u16,
    /// `i_obso_faddr`, which must be 0.
    pub faddr: u32,
    /// `i_extra_isize`: 0 in a 128-byte inode.
    pub extra_isize: u16,
    /// `i_mtime` with `i_mtime_extra` where the extra fields reach it.
    pub mtime: Timestamp,
}

impl Inode {
    /// Decodes one inode slot (`s_inode_size` bytes); `None` under 128 bytes.
    pub(crate) fn decode(raw: &[u8]) -> Option<Inode> {
        let fixed = raw.get(..GOOD_OLD_INODE_SIZE)?;
        let u16_at = |off| get_u16le(fixed, off).unwrap_or(0);
        let u32_at = |off| get_u32le(fixed, off).unwrap_or(0);
        let extra_isize = if raw.len() > GOOD_OLD_INODE_SIZE {
            get_u16le(raw, I_EXTRA_ISIZE).unwrap_or(0)
        } else {
            0
        };
        // i_mtime_extra counts when the extra fields reach past it.
        let mtime_extra = (GOOD_OLD_INODE_SIZE + usize::from(extra_isize) >= I_MTIME_EXTRA + 4)
            .then(|| get_u32le(raw, I_MTIME_EXTRA).unwrap_or(0));
        let mut block = [0u8; 60];
        block.copy_from_slice(&fixed[I_BLOCK..I_BLOCK + 60]);
        Some(Inode {
            mode: u16_at(I_MODE),
            uid: u32::from(u16_at(I_UID)) | (u32::from(u16_at(L_I_UID_HIGH)) << 16),
            gid: u32::from(u16_at(I_GID)) | (u32::from(u16_at(L_I_GID_HIGH)) << 16),
            size: u64::from(u32_at(I_SIZE_LO)) | (u64::from(u32_at(I_SIZE_HIGH)) << 32),
            dtime: u32_at(I_DTIME),
            links_count: u16_at(I_LINKS_COUNT),
            blocks_lo: u32_at(I_BLOCKS_LO),
            blocks_high: u16_at(L_I_BLOCKS_HIGH),
            flags: u32_at(I_FLAGS),
            block,
            generation: u32_at(I_GENERATION),
            file_acl_lo: u32_at(I_FILE_ACL_LO),
            file_acl_high: u16_at(L_I_FILE_ACL_HIGH),
            faddr: u32_at(I_OBSO_FADDR),
            extra_isize,
            mtime: decode_time(u32_at(I_MTIME), mtime_extra),
        })
    }

    /// The file type bits of the mode.
    pub(crate) fn file_type(&self) -> u16 {
        self.mode & S_IFMT
    }

    /// `i_blocks`: with huge_file the high 16 bits count too.
    pub(crate) fn blocks(&self, huge_file: bool) -> u64 {
        u64::from(self.blocks_lo)
            | if huge_file {
                u64::from(self.blocks_high) << 32
            } else {
                0
            }
    }

    /// `i_file_acl`: the attribute block; the high 16 bits count under 64bit only (the
    /// kernel's `ext4_file_acl`).
    pub(crate) fn file_acl(&self, is64: bool) -> u64 {
        u64::from(self.file_acl_lo)
            | if is64 {
                u64::from(self.file_acl_high) << 32
            } else {
                0
            }
    }
}

/// Whether an inode record is blank: its first 128 bytes zero. libext2fs accepts such a
/// record whatever its checksum and extra fields hold (it was never written).
pub(crate) fn is_blank(raw: &[u8]) -> bool {
    raw.iter().take(GOOD_OLD_INODE_SIZE).all(|&b| b == 0)
}

/// An inode checksum as stored and as the record gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checksum {
    pub stored: u32,
    pub computed: u32,
}

/// Why an inode's checksum cannot be computed: `i_extra_isize` runs past the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExtraIsizeTooLarge {
    pub extra_isize: u16,
    pub inode_size: usize,
}

/// The metadata_csum checksum of inode `ino` in the record `raw`: crc32c seeded by the
/// filesystem seed, the inode number and `i_generation`, over the record with both
/// checksum halves zero. The high half exists when the extra fields reach it;
/// otherwise only the low 16 bits are stored and compared.
pub(crate) fn checksum(raw: &[u8], ino: u32, fs_seed: u32) -> Result<Checksum, ExtraIsizeTooLarge> {
    let big = raw.len() > GOOD_OLD_INODE_SIZE;
    let extra = if big {
        usize::from(get_u16le(raw, I_EXTRA_ISIZE).unwrap_or(0))
    } else {
        0
    };
    if big && GOOD_OLD_INODE_SIZE + extra > raw.len() {
        return Err(ExtraIsizeTooLarge {
            extra_isize: extra as u16,
            inode_size: raw.len(),
        });
    }
    let has_hi = big && GOOD_OLD_INODE_SIZE + extra >= I_CHECKSUM_HI + 2;
    let mut z = raw.to_vec();
    for (off, on) in [(I_CHECKSUM_LO, true), (I_CHECKSUM_HI, has_hi)] {
        if on && let Some(f) = z.get_mut(off..off + 2) {
            f.fill(0);
        }
    }
    let generation = get_u32le(raw, I_GENERATION).unwrap_or(0);
    let crc = crc32c_raw(inode_seed(fs_seed, ino, generation), &z);
    let lo = u32::from(get_u16le(raw, I_CHECKSUM_LO).unwrap_or(0));
    Ok(if has_hi {
        Checksum {
            stored: lo | (u32::from(get_u16le(raw, I_CHECKSUM_HI).unwrap_or(0)) << 16),
            computed: crc,
        }
    } else {
        Checksum {
            stored: lo,
            computed: crc & 0xffff,
        }
    })
}

/// A time from its 32-bit seconds and, with the extra fields, its `*_extra` word (epoch
/// bits and nanoseconds): the inverse of `encode_time`.
pub(crate) fn decode_time(secs_lo: u32, extra: Option<u32>) -> Timestamp {
    let base = i64::from(secs_lo as i32);
    match extra {
        Some(x) => Timestamp {
            secs: base + (i64::from(x & 3) << 32),
            nsec: (x >> 2).min(999_999_999),
        },
        None => Timestamp {
            secs: base,
            nsec: 0,
        },
    }
}

/// Device numbers in `i_block`: the old 16-bit form in word 0 when both fit in a byte,
/// else the new 32-bit form in word 1 (as the kernel's `new_encode_dev`).
pub(crate) fn encode_dev(i_block: &mut [u8; 60], major: u32, minor: u32) {
    if major < 256 && minor < 256 {
        put_u32le(i_block, 0, (major << 8) | minor);
    } else {
        let v = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12);
        put_u32le(i_block, 4, v);
    }
}

/// (major, minor) from `i_block`: the old form when word 0 is set, else the new form
/// (the kernel's `old_decode_dev` / `new_decode_dev`).
pub(crate) fn decode_dev(i_block: &[u8; 60]) -> (u32, u32) {
    let old = get_u32le(i_block, 0).unwrap_or(0);
    if old != 0 {
        ((old >> 8) & 0xff, old & 0xff)
    } else {
        let new = get_u32le(i_block, 4).unwrap_or(0);
        ((new & 0xfff00) >> 8, (new & 0xff) | ((new >> 12) & 0xfff00))
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
    use crate::test_data;

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
    fn decodes_what_mke2fs_wrote() {
        // debugfs "stat /sparse" of test_data/ext4.img: inode 135, regular, 0644, size
        // 27656, i_blocks 22, flags 0x80000, mtime 0x5f5e1000, 32 extra bytes, checksum
        // 0x03e94fd6. Inode 135 is slot 134 of group 0's table at block 50.
        let img = test_data::ext4();
        let at = 50 * 1024 + 134 * 256;
        let raw = &img[at..at + 256];
        let ino = Inode::decode(raw).expect("decodes");
        assert_eq!(ino.mode, S_IFREG | 0o644);
        assert_eq!(
            (ino.size, ino.links_count, ino.blocks(true)),
            (27656, 1, 22)
        );
        assert_eq!(ino.flags, EXT4_EXTENTS_FL);
        assert_eq!(ino.extra_isize, 32);
        assert_eq!(
            ino.mtime,
            Timestamp {
                secs: 0x5f5e_1000,
                nsec: 0
            }
        );
        let sb = crate::superblock::Superblock::decode(&img[1024..2048]).expect("superblock");
        let c = checksum(raw, 135, sb.csum_seed().expect("csum")).expect("fits");
        assert_eq!((c.stored, c.computed), (0x03e9_4fd6, 0x03e9_4fd6));
        // The same record as inode 136 has another checksum.
        let c = checksum(raw, 136, sb.csum_seed().expect("csum")).expect("fits");
        assert_ne!(c.stored, c.computed);
    }

    #[test]
    fn an_extra_isize_past_the_record_is_named() {
        let img = test_data::ext4();
        let at = 50 * 1024 + 134 * 256;
        let mut raw = img[at..at + 256].to_vec();
        put_u16le(&mut raw, I_EXTRA_ISIZE, 200);
        assert_eq!(
            checksum(&raw, 135, 0),
            Err(ExtraIsizeTooLarge {
                extra_isize: 200,
                inode_size: 256
            })
        );
        // Only the low half is stored when the extra fields end before i_checksum_hi.
        put_u16le(&mut raw, I_EXTRA_ISIZE, 2);
        let c = checksum(&raw, 135, 0).expect("fits");
        assert!(c.computed <= 0xffff && c.stored <= 0xffff);
        assert_eq!(Inode::decode(&raw[..100]), None);
    }

    #[test]
    fn feature_dependent_halves() {
        let mut raw = vec![0u8; 256];
        put_u32le(&mut raw, I_FILE_ACL_LO, 5);
        put_u16le(&mut raw, L_I_FILE_ACL_HIGH, 1);
        put_u32le(&mut raw, I_BLOCKS_LO, 8);
        put_u16le(&mut raw, L_I_BLOCKS_HIGH, 2);
        let ino = Inode::decode(&raw).expect("decodes");
        assert_eq!(
            (ino.file_acl(true), ino.file_acl(false)),
            ((1 << 32) | 5, 5)
        );
        assert_eq!((ino.blocks(true), ino.blocks(false)), ((2 << 32) | 8, 8));
    }

    #[test]
    fn what_is_encoded_decodes_to_the_same_values() {
        let rec = InodeRec {
            mode: S_IFREG | 0o640,
            uid: 0x1_0005,
            gid: 0x2_0007,
            size: (3 << 32) | 12,
            time: Timestamp {
                secs: 4_102_444_800,
                nsec: 123,
            },
            links: 3,
            blocks: 10,
            flags: EXT4_EXTENTS_FL,
            i_block: [9; 60],
            file_acl: 77,
        };
        let mut buf = vec![0u8; 256];
        rec.encode(&mut buf, 12, 4096, Some(99));
        let d = Inode::decode(&buf).expect("decodes");
        assert_eq!(
            (d.mode, d.uid, d.gid, d.size),
            (rec.mode, rec.uid, rec.gid, rec.size)
        );
        assert_eq!(
            (d.links_count, d.flags, d.block),
            (3, EXT4_EXTENTS_FL, [9; 60])
        );
        assert_eq!(d.blocks(true), 80, "ten 4 KiB blocks are 80 sectors");
        assert_eq!(d.file_acl(false), 77);
        assert_eq!(d.mtime, rec.time);
        let c = checksum(&buf, 12, 99).expect("fits");
        assert_eq!(c.stored, c.computed);
        // 128-byte records keep the time to the second, clamped to 32 bits.
        let mut small = vec![0u8; 128];
        rec.encode(&mut small, 12, 4096, None);
        let d = Inode::decode(&small).expect("decodes");
        assert_eq!(
            d.mtime,
            Timestamp {
                secs: i64::from(i32::MAX),
                nsec: 0
            }
        );
    }

    #[test]
    fn device_numbers_round_trip_in_both_forms() {
        for (major, minor) in [(1, 3), (8, 255), (259, 0), (4095, 0xfffff), (7, 300)] {
            let mut b = [0u8; 60];
            encode_dev(&mut b, major, minor);
            assert_eq!(decode_dev(&b), (major, minor), "{major}:{minor}");
        }
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
