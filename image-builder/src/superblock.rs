//! The superblock (`struct ext4_super_block`, Documentation/filesystems/ext4/super.rst),
//! written at byte 1024 of the image and, as a backup with `s_block_group_nr` set, at the
//! start of every group that sparse_super gives a copy.
//!
//! [`encode`] writes one for the writer; [`Superblock::decode`] reads one for the
//! readers (`inspect`, `check`, an image as a build source). Both name each field's
//! offset with the same constant, so a field is read where it is written.

use std::fmt;

use crate::checksum::crc32c_raw;
use crate::features::{FsLevel, INCOMPAT_64BIT, INCOMPAT_CSUM_SEED, RO_COMPAT_METADATA_CSUM};
use crate::layout::{Geometry, LOG_GROUPS_PER_FLEX};
use crate::util::{get_u16le, get_u32le, hi32, lo32, put_u16le, put_u32le};

/// Superblock magic.
pub(crate) const EXT4_MAGIC: u16 = 0xef53;
/// Where the primary superblock starts, whatever the block size.
pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
/// The superblock's length on disk.
pub(crate) const SUPERBLOCK_LEN: usize = 1024;

// Field offsets (super.rst's table), named after the kernel's fields.
const S_INODES_COUNT: usize = 0x00;
const S_BLOCKS_COUNT_LO: usize = 0x04;
const S_R_BLOCKS_COUNT_LO: usize = 0x08;
const S_FREE_BLOCKS_COUNT_LO: usize = 0x0c;
const S_FREE_INODES_COUNT: usize = 0x10;
const S_FIRST_DATA_BLOCK: usize = 0x14;
const S_LOG_BLOCK_SIZE: usize = 0x18;
const S_LOG_CLUSTER_SIZE: usize = 0x1c;
const S_BLOCKS_PER_GROUP: usize = 0x20;
const S_CLUSTERS_PER_GROUP: usize = 0x24;
const S_INODES_PER_GROUP: usize = 0x28;
const S_MTIME: usize = 0x2c;
const S_WTIME: usize = 0x30;
const S_MNT_COUNT: usize = 0x34;
const S_MAX_MNT_COUNT: usize = 0x36;
pub(crate) const S_MAGIC: usize = 0x38;
const S_STATE: usize = 0x3a;
const S_ERRORS: usize = 0x3c;
const S_LASTCHECK: usize = 0x40;
const S_CREATOR_OS: usize = 0x48;
const S_REV_LEVEL: usize = 0x4c;
const S_FIRST_INO: usize = 0x54;
const S_INODE_SIZE: usize = 0x58;
const S_BLOCK_GROUP_NR: usize = 0x5a;
const S_FEATURE_COMPAT: usize = 0x5c;
/// `s_feature_incompat` (backups may differ from the primary in needs_recovery only).
pub(crate) const S_FEATURE_INCOMPAT: usize = 0x60;
const S_FEATURE_RO_COMPAT: usize = 0x64;
const S_UUID: usize = 0x68;
const S_VOLUME_NAME: usize = 0x78;
const S_RESERVED_GDT_BLOCKS: usize = 0xce;
const S_JOURNAL_INUM: usize = 0xe0;
const S_LAST_ORPHAN: usize = 0xe8;
const S_HASH_SEED: usize = 0xec;
const S_DEF_HASH_VERSION: usize = 0xfc;
const S_JNL_BACKUP_TYPE: usize = 0xfd;
const S_DESC_SIZE: usize = 0xfe;
const S_DEFAULT_MOUNT_OPTS: usize = 0x100;
const S_MKFS_TIME: usize = 0x108;
const S_JNL_BLOCKS: usize = 0x10c;
const S_BLOCKS_COUNT_HI: usize = 0x150;
const S_FREE_BLOCKS_COUNT_HI: usize = 0x158;
const S_MIN_EXTRA_ISIZE: usize = 0x15c;
const S_WANT_EXTRA_ISIZE: usize = 0x15e;
const S_FLAGS: usize = 0x160;
const S_LOG_GROUPS_PER_FLEX: usize = 0x174;
const S_CHECKSUM_TYPE: usize = 0x175;
const S_USR_QUOTA_INUM: usize = 0x240;
const S_GRP_QUOTA_INUM: usize = 0x244;
const S_BACKUP_BGS: usize = 0x24c;
const S_PRJ_QUOTA_INUM: usize = 0x26c;
const S_CHECKSUM_SEED: usize = 0x270;
const S_ORPHAN_FILE_INUM: usize = 0x280;
/// `s_checksum`: CRC32C of the 1020 bytes before it.
pub(crate) const S_CHECKSUM: usize = 0x3fc;

/// `s_flags`: directory hashes treat name bytes as signed chars, as x86 (the only
/// coLinux architecture) does natively: kernels before the flag existed hash with the
/// native signedness, so this is the choice every i386 kernel reads right.
const EXT2_FLAGS_SIGNED_HASH: u32 = 0x0001;
/// `s_default_mount_opts`: user_xattr and acl, as mke2fs sets.
const DEFAULT_MOUNT_OPTS: u32 = 0x0004 | 0x0008;
/// `s_def_hash_version`: half MD4.
pub(crate) const HASH_HALF_MD4: u8 = 1;
/// `s_checksum_type`: CRC32C, the only one defined.
pub(crate) const CHECKSUM_TYPE_CRC32C: u8 = 1;
/// `s_state`: cleanly unmounted.
pub(crate) const STATE_VALID_FS: u16 = 0x0001;
/// `s_state`: the kernel found errors.
pub(crate) const STATE_ERROR_FS: u16 = 0x0002;
/// The largest `s_log_block_size`: 64 KiB blocks (1024 << 6).
const MAX_LOG_BLOCK_SIZE: u32 = 6;

/// The values of a superblock that are not part of the geometry.
pub(crate) struct SuperFields<'a> {
    pub free_blocks: u64,
    pub free_inodes: u32,
    pub uuid: [u8; 16],
    pub label: &'a [u8],
    pub hash_seed: [u8; 16],
    pub time: u32,
    /// The journal inode's `i_block` and size, backed up in `s_jnl_blocks`.
    pub journal_backup: Option<([u8; 60], u64)>,
}

/// Encodes the 1024-byte superblock for group `group` (0 for the primary).
pub(crate) fn encode(g: &Geometry, f: &SuperFields<'_>, group: u16) -> [u8; SUPERBLOCK_LEN] {
    let mut b = [0u8; SUPERBLOCK_LEN];
    let level: FsLevel = g.level;
    let (compat, incompat, ro) = level.feature_words();
    put_u32le(
        &mut b,
        S_INODES_COUNT,
        u32::try_from(g.inodes_count()).unwrap_or(u32::MAX),
    );
    put_u32le(&mut b, S_BLOCKS_COUNT_LO, lo32(g.blocks_count));
    put_u32le(&mut b, S_R_BLOCKS_COUNT_LO, 0); // no blocks reserved for root
    put_u32le(&mut b, S_FREE_BLOCKS_COUNT_LO, lo32(f.free_blocks));
    put_u32le(&mut b, S_FREE_INODES_COUNT, f.free_inodes);
    put_u32le(&mut b, S_FIRST_DATA_BLOCK, g.first_data_block as u32);
    put_u32le(&mut b, S_LOG_BLOCK_SIZE, g.log_block_size);
    put_u32le(&mut b, S_LOG_CLUSTER_SIZE, g.log_block_size); // no bigalloc
    put_u32le(&mut b, S_BLOCKS_PER_GROUP, g.blocks_per_group);
    put_u32le(&mut b, S_CLUSTERS_PER_GROUP, g.blocks_per_group);
    put_u32le(&mut b, S_INODES_PER_GROUP, g.inodes_per_group);
    put_u32le(&mut b, S_MTIME, 0); // never mounted
    put_u32le(&mut b, S_WTIME, f.time);
    put_u16le(&mut b, S_MNT_COUNT, 0);
    put_u16le(&mut b, S_MAX_MNT_COUNT, 0xffff); // -1: no forced checks
    put_u16le(&mut b, S_MAGIC, EXT4_MAGIC);
    put_u16le(&mut b, S_STATE, STATE_VALID_FS);
    put_u16le(&mut b, S_ERRORS, 1); // continue
    put_u32le(&mut b, S_LASTCHECK, f.time);
    put_u32le(&mut b, S_CREATOR_OS, 0); // Linux
    put_u32le(&mut b, S_REV_LEVEL, 1); // dynamic inode sizes
    put_u32le(&mut b, S_FIRST_INO, 11);
    put_u16le(&mut b, S_INODE_SIZE, g.inode_size);
    put_u16le(&mut b, S_BLOCK_GROUP_NR, group);
    put_u32le(&mut b, S_FEATURE_COMPAT, compat);
    put_u32le(&mut b, S_FEATURE_INCOMPAT, incompat);
    put_u32le(&mut b, S_FEATURE_RO_COMPAT, ro);
    b[S_UUID..S_UUID + 16].copy_from_slice(&f.uuid);
    let n = f.label.len().min(16);
    b[S_VOLUME_NAME..S_VOLUME_NAME + n].copy_from_slice(&f.label[..n]);
    if level.has_journal() {
        put_u32le(&mut b, S_JOURNAL_INUM, 8);
    }
    b[S_HASH_SEED..S_HASH_SEED + 16].copy_from_slice(&f.hash_seed);
    b[S_DEF_HASH_VERSION] = HASH_HALF_MD4;
    if level.is_64bit() {
        put_u16le(&mut b, S_DESC_SIZE, g.desc_size);
    }
    put_u32le(&mut b, S_DEFAULT_MOUNT_OPTS, DEFAULT_MOUNT_OPTS);
    put_u32le(&mut b, S_MKFS_TIME, f.time);
    if let Some((i_block, size)) = &f.journal_backup {
        b[S_JNL_BACKUP_TYPE] = 1; // EXT3_JNL_BACKUP_BLOCKS
        b[S_JNL_BLOCKS..S_JNL_BLOCKS + 60].copy_from_slice(i_block);
        put_u32le(&mut b, S_JNL_BLOCKS + 60, hi32(*size));
        put_u32le(&mut b, S_JNL_BLOCKS + 64, lo32(*size));
    }
    if level.is_64bit() {
        put_u32le(&mut b, S_BLOCKS_COUNT_HI, hi32(g.blocks_count));
        put_u32le(&mut b, S_FREE_BLOCKS_COUNT_HI, hi32(f.free_blocks));
    }
    if level.is_ext4() {
        put_u16le(&mut b, S_MIN_EXTRA_ISIZE, crate::inode::EXTRA_ISIZE);
        put_u16le(&mut b, S_WANT_EXTRA_ISIZE, crate::inode::EXTRA_ISIZE);
        b[S_LOG_GROUPS_PER_FLEX] = LOG_GROUPS_PER_FLEX;
    }
    put_u32le(&mut b, S_FLAGS, EXT2_FLAGS_SIGNED_HASH);
    if level.metadata_csum() {
        b[S_CHECKSUM_TYPE] = CHECKSUM_TYPE_CRC32C;
        let crc = crc32c_raw(!0, &b[..S_CHECKSUM]);
        put_u32le(&mut b, S_CHECKSUM, crc);
    }
    b
}

/// A superblock as read from an image: the fields the readers use, named after the
/// kernel's (without `s_`), with the 64-bit halves joined as the features say and the
/// geometry checked enough that arithmetic on it cannot divide by zero or overflow a
/// block's worth of bits. Nothing more is trusted: each reader checks the rest against
/// the file and the filesystem's own limits before it sizes anything by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub inodes_count: u32,
    /// `s_blocks_count_lo`, with `s_blocks_count_hi` under 64bit.
    pub blocks_count: u64,
    pub free_blocks_count: u64,
    pub free_inodes_count: u32,
    pub first_data_block: u32,
    /// 1024 << `s_log_block_size`: 1 KiB to 64 KiB.
    pub block_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub state: u16,
    pub rev_level: u32,
    /// `s_first_ino`; 11 for revision 0, which has no such field.
    pub first_ino: u32,
    /// `s_inode_size`; 128 for revision 0.
    pub inode_size: u16,
    pub block_group_nr: u16,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub reserved_gdt_blocks: u16,
    pub journal_inum: u32,
    pub last_orphan: u32,
    /// `s_desc_size` under 64bit, else 32.
    pub desc_size: u16,
    pub checksum_type: u8,
    pub checksum_seed: u32,
    pub usr_quota_inum: u32,
    pub grp_quota_inum: u32,
    pub prj_quota_inum: u32,
    pub orphan_file_inum: u32,
    pub backup_bgs: [u32; 2],
    /// `s_checksum` as stored, and as the other 1020 bytes give it.
    pub checksum: u32,
    pub computed_checksum: u32,
}

/// Why bytes are not a superblock whose geometry arithmetic can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SuperblockError {
    /// Fewer than 1024 bytes.
    Short(usize),
    /// `s_magic` is not 0xEF53.
    Magic(u16),
    /// `s_log_block_size` above 6 (64 KiB blocks).
    LogBlockSize(u32),
    /// `s_blocks_per_group` zero or more than one bitmap block counts.
    BlocksPerGroup(u32),
    /// `s_inodes_per_group` zero or more than one bitmap block counts.
    InodesPerGroup(u32),
    /// `s_inode_size` under 128, not a power of two, or over the block size.
    InodeSize(u16),
    /// `s_desc_size` outside 32..=1024 under 64bit.
    DescSize(u16),
    /// `s_blocks_count` leaves no block after `s_first_data_block`.
    NoBlocks { blocks: u64, first: u32 },
}

impl fmt::Display for SuperblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuperblockError::Short(n) => write!(f, "the file ends {n} bytes into the superblock"),
            SuperblockError::Magic(_) => f.write_str("no ext2/3/4 superblock at byte 1024"),
            SuperblockError::LogBlockSize(l) => {
                write!(f, "its superblock gives a block size of 1024 << {l} bytes")
            }
            SuperblockError::BlocksPerGroup(n) => {
                write!(f, "its superblock gives {n} blocks per group")
            }
            SuperblockError::InodesPerGroup(n) => {
                write!(f, "its superblock gives {n} inodes per group")
            }
            SuperblockError::InodeSize(n) => write!(f, "its superblock gives {n}-byte inodes"),
            SuperblockError::DescSize(n) => {
                write!(f, "its superblock gives {n}-byte group descriptors")
            }
            SuperblockError::NoBlocks { blocks, first } => write!(
                f,
                "its superblock gives {blocks} blocks, with the first data block at {first}"
            ),
        }
    }
}

impl Superblock {
    /// Decodes the 1024 superblock bytes `s` (the primary at byte 1024, or a backup).
    pub(crate) fn decode(s: &[u8]) -> Result<Superblock, SuperblockError> {
        let s = s
            .get(..SUPERBLOCK_LEN)
            .ok_or(SuperblockError::Short(s.len()))?;
        // Every offset below is inside the 1024 bytes: the reads cannot fail.
        let u16_at = |off| get_u16le(s, off).unwrap_or(0);
        let u32_at = |off| get_u32le(s, off).unwrap_or(0);
        let s_magic = u16_at(S_MAGIC);
        if s_magic != EXT4_MAGIC {
            return Err(SuperblockError::Magic(s_magic));
        }
        let s_log_block_size = u32_at(S_LOG_BLOCK_SIZE);
        if s_log_block_size > MAX_LOG_BLOCK_SIZE {
            return Err(SuperblockError::LogBlockSize(s_log_block_size));
        }
        let block_size = 1024u32 << s_log_block_size;
        let feature_incompat = u32_at(S_FEATURE_INCOMPAT);
        let is64 = feature_incompat & INCOMPAT_64BIT != 0;
        // The high halves count only under 64bit; without it they are padding.
        let hi = |off| {
            if is64 {
                u64::from(u32_at(off)) << 32
            } else {
                0
            }
        };
        let s_rev_level = u32_at(S_REV_LEVEL);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&s[S_UUID..S_UUID + 16]);
        let mut volume_name = [0u8; 16];
        volume_name.copy_from_slice(&s[S_VOLUME_NAME..S_VOLUME_NAME + 16]);
        let sb = Superblock {
            inodes_count: u32_at(S_INODES_COUNT),
            blocks_count: u64::from(u32_at(S_BLOCKS_COUNT_LO)) | hi(S_BLOCKS_COUNT_HI),
            free_blocks_count: u64::from(u32_at(S_FREE_BLOCKS_COUNT_LO))
                | hi(S_FREE_BLOCKS_COUNT_HI),
            free_inodes_count: u32_at(S_FREE_INODES_COUNT),
            first_data_block: u32_at(S_FIRST_DATA_BLOCK),
            block_size,
            blocks_per_group: u32_at(S_BLOCKS_PER_GROUP),
            inodes_per_group: u32_at(S_INODES_PER_GROUP),
            state: u16_at(S_STATE),
            rev_level: s_rev_level,
            // Revision 0 (EXT2_GOOD_OLD_REV) has fixed 128-byte inodes and 11 reserved.
            first_ino: if s_rev_level == 0 {
                11
            } else {
                u32_at(S_FIRST_INO)
            },
            inode_size: if s_rev_level == 0 {
                128
            } else {
                u16_at(S_INODE_SIZE)
            },
            block_group_nr: u16_at(S_BLOCK_GROUP_NR),
            feature_compat: u32_at(S_FEATURE_COMPAT),
            feature_incompat,
            feature_ro_compat: u32_at(S_FEATURE_RO_COMPAT),
            uuid,
            volume_name,
            reserved_gdt_blocks: u16_at(S_RESERVED_GDT_BLOCKS),
            journal_inum: u32_at(S_JOURNAL_INUM),
            last_orphan: u32_at(S_LAST_ORPHAN),
            desc_size: if is64 { u16_at(S_DESC_SIZE) } else { 32 },
            checksum_type: s[S_CHECKSUM_TYPE],
            checksum_seed: u32_at(S_CHECKSUM_SEED),
            usr_quota_inum: u32_at(S_USR_QUOTA_INUM),
            grp_quota_inum: u32_at(S_GRP_QUOTA_INUM),
            prj_quota_inum: u32_at(S_PRJ_QUOTA_INUM),
            orphan_file_inum: u32_at(S_ORPHAN_FILE_INUM),
            backup_bgs: [u32_at(S_BACKUP_BGS), u32_at(S_BACKUP_BGS + 4)],
            checksum: u32_at(S_CHECKSUM),
            computed_checksum: crc32c_raw(!0, &s[..S_CHECKSUM]),
        };
        // A bitmap is one block: a group cannot count more blocks or inodes than its bits.
        let bits = 8 * block_size;
        if sb.blocks_per_group == 0 || sb.blocks_per_group > bits {
            return Err(SuperblockError::BlocksPerGroup(sb.blocks_per_group));
        }
        if sb.inodes_per_group == 0 || sb.inodes_per_group > bits {
            return Err(SuperblockError::InodesPerGroup(sb.inodes_per_group));
        }
        if sb.inode_size < 128
            || !sb.inode_size.is_power_of_two()
            || u32::from(sb.inode_size) > block_size
        {
            return Err(SuperblockError::InodeSize(sb.inode_size));
        }
        if !(32..=1024).contains(&sb.desc_size) {
            return Err(SuperblockError::DescSize(sb.desc_size));
        }
        if sb.blocks_count <= u64::from(sb.first_data_block) {
            return Err(SuperblockError::NoBlocks {
                blocks: sb.blocks_count,
                first: sb.first_data_block,
            });
        }
        Ok(sb)
    }

    /// Number of block groups (at least 1: `decode` saw a block past the first).
    pub(crate) fn groups(&self) -> u64 {
        (self.blocks_count - u64::from(self.first_data_block))
            .div_ceil(u64::from(self.blocks_per_group))
    }

    /// The metadata_csum seed, when metadata_csum is on: `s_checksum_seed` under
    /// metadata_csum_seed, else derived from the UUID.
    pub(crate) fn csum_seed(&self) -> Option<u32> {
        (self.feature_ro_compat & RO_COMPAT_METADATA_CSUM != 0).then(|| {
            if self.feature_incompat & INCOMPAT_CSUM_SEED != 0 {
                self.checksum_seed
            } else {
                crate::checksum::fs_seed(&self.uuid)
            }
        })
    }

    /// Whether the filesystem was cleanly unmounted.
    pub(crate) fn clean(&self) -> bool {
        self.state & STATE_VALID_FS != 0
    }
}

/// The geometry fields in which a backup superblock `backup` differs from `primary`
/// (both 1024 bytes as stored), by name. needs_recovery lives in the primary only,
/// while the journal is dirty, so that bit is not compared.
pub(crate) fn geometry_differences(primary: &[u8], backup: &[u8]) -> Vec<&'static str> {
    const FIELDS: &[(usize, usize, &str)] = &[
        (S_INODES_COUNT, 4, "inodes_count"),
        (S_BLOCKS_COUNT_LO, 4, "blocks_count"),
        (S_FIRST_DATA_BLOCK, 4, "first_data_block"),
        (S_LOG_BLOCK_SIZE, 4, "log_block_size"),
        (S_BLOCKS_PER_GROUP, 4, "blocks_per_group"),
        (S_INODES_PER_GROUP, 4, "inodes_per_group"),
        (S_MAGIC, 2, "magic"),
        (S_INODE_SIZE, 2, "inode_size"),
        (S_FEATURE_INCOMPAT, 4, "feature_incompat"),
        (S_UUID, 16, "uuid"),
        (S_DESC_SIZE, 2, "desc_size"),
        (S_BLOCKS_COUNT_HI, 4, "blocks_count_hi"),
    ];
    let field = |b: &[u8], off: usize, len: usize| {
        let mut v = b.get(off..off + len).map(<[u8]>::to_vec);
        if off == S_FEATURE_INCOMPAT
            && let Some(v) = v.as_mut()
        {
            v[0] &= !(crate::features::INCOMPAT_RECOVER as u8);
        }
        v
    };
    FIELDS
        .iter()
        .filter(|&&(off, len, _)| field(primary, off, len) != field(backup, off, len))
        .map(|&(_, _, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;

    fn real() -> Vec<u8> {
        test_data::ext4()[1024..2048].to_vec()
    }

    /// Sets a little-endian u32 and, like a tool that edits the field properly, the
    /// checksum, so a test reaches the check it aims at.
    fn patch_u32(b: &mut [u8], off: usize, v: u32) {
        put_u32le(b, off, v);
        let crc = crc32c_raw(!0, &b[..S_CHECKSUM]);
        put_u32le(b, S_CHECKSUM, crc);
    }

    #[test]
    fn decodes_what_mke2fs_wrote() {
        // dumpe2fs -h of test_data/ext4.img (test_data/make.sh).
        let sb = Superblock::decode(&real()).expect("decodes");
        assert_eq!(sb.inodes_count, 256);
        assert_eq!(sb.blocks_count, 2048);
        assert_eq!(sb.free_blocks_count, 909);
        assert_eq!(sb.free_inodes_count, 121);
        assert_eq!(sb.first_data_block, 1);
        assert_eq!(sb.block_size, 1024);
        assert_eq!(sb.blocks_per_group, 8192);
        assert_eq!(sb.inodes_per_group, 256);
        assert_eq!((sb.first_ino, sb.inode_size, sb.desc_size), (11, 256, 64));
        assert_eq!(sb.reserved_gdt_blocks, 15);
        assert_eq!(sb.journal_inum, 8);
        assert_eq!(sb.checksum, 0x5f84_bc5c);
        assert_eq!(sb.computed_checksum, sb.checksum);
        assert_eq!(sb.checksum_type, CHECKSUM_TYPE_CRC32C);
        assert!(sb.clean());
        assert_eq!(sb.groups(), 1);
        assert_eq!(
            crate::features::feature_names(
                sb.feature_compat,
                sb.feature_incompat,
                sb.feature_ro_compat
            )
            .join(" "),
            "has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg \
             sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"
        );
        assert_eq!(
            uuid::Uuid::from_bytes(sb.uuid).to_string(),
            "5d2f9d6e-0c1a-4b7e-9c3d-2a1b0c9d8e7f"
        );
    }

    #[test]
    fn each_impossible_geometry_is_named() {
        let cases: [(usize, u32, SuperblockError); 5] = [
            (S_LOG_BLOCK_SIZE, 7, SuperblockError::LogBlockSize(7)),
            (S_BLOCKS_PER_GROUP, 0, SuperblockError::BlocksPerGroup(0)),
            (
                S_BLOCKS_PER_GROUP,
                8193,
                SuperblockError::BlocksPerGroup(8193),
            ),
            (S_INODES_PER_GROUP, 0, SuperblockError::InodesPerGroup(0)),
            (
                S_BLOCKS_COUNT_LO,
                1,
                SuperblockError::NoBlocks {
                    blocks: 1,
                    first: 1,
                },
            ),
        ];
        for (off, v, want) in cases {
            let mut b = real();
            patch_u32(&mut b, off, v);
            assert_eq!(Superblock::decode(&b), Err(want), "offset {off:#x} = {v}");
        }
        let mut b = real();
        put_u16le(&mut b, S_INODE_SIZE, 200);
        assert_eq!(Superblock::decode(&b), Err(SuperblockError::InodeSize(200)));
        let mut b = real();
        put_u16le(&mut b, S_DESC_SIZE, 16);
        assert_eq!(Superblock::decode(&b), Err(SuperblockError::DescSize(16)));
        let mut b = real();
        put_u16le(&mut b, S_MAGIC, 0x1234);
        assert_eq!(Superblock::decode(&b), Err(SuperblockError::Magic(0x1234)));
        assert_eq!(
            Superblock::decode(&b[..100]),
            Err(SuperblockError::Short(100))
        );
    }

    #[test]
    fn high_halves_count_only_under_64bit() {
        let mut b = real();
        patch_u32(&mut b, S_BLOCKS_COUNT_HI, 0xffff_ffff);
        let sb = Superblock::decode(&b).expect("decodes");
        assert_eq!(sb.blocks_count, 0xffff_ffff_0000_0800);
        let incompat = u32::from_le_bytes(b[0x60..0x64].try_into().expect("4 bytes"));
        patch_u32(&mut b, S_FEATURE_INCOMPAT, incompat & !INCOMPAT_64BIT);
        let sb = Superblock::decode(&b).expect("decodes");
        assert_eq!((sb.blocks_count, sb.desc_size), (2048, 32));
    }

    #[test]
    fn backups_differ_in_named_fields_only() {
        let a = real();
        let mut b = a.clone();
        b[S_FEATURE_INCOMPAT] |= crate::features::INCOMPAT_RECOVER as u8;
        b[S_MTIME] ^= 0xff;
        assert_eq!(geometry_differences(&a, &b), Vec::<&str>::new());
        b[S_INODES_PER_GROUP] ^= 1;
        b[S_UUID + 15] ^= 1;
        assert_eq!(geometry_differences(&a, &b), ["inodes_per_group", "uuid"]);
    }

    #[test]
    fn a_changed_byte_breaks_the_checksum() {
        let mut b = real();
        b[S_MTIME] ^= 1;
        let sb = Superblock::decode(&b).expect("decodes");
        assert_ne!(sb.checksum, sb.computed_checksum);
    }

    #[test]
    fn what_the_writer_encodes_decodes_to_the_same_values() {
        let level = FsLevel::Ext4Modern;
        let (g, _) = Geometry::plan(level, 4096, 100_000, 1000).expect("plans");
        let fields = SuperFields {
            free_blocks: 12_345,
            free_inodes: 678,
            uuid: [7; 16],
            label: b"root",
            hash_seed: [9; 16],
            time: 1_700_000_000,
            journal_backup: None,
        };
        let b = encode(&g, &fields, 0);
        let sb = Superblock::decode(&b).expect("decodes");
        assert_eq!(sb.blocks_count, g.blocks_count);
        assert_eq!(u64::from(sb.inodes_count), g.inodes_count());
        assert_eq!(sb.free_blocks_count, 12_345);
        assert_eq!(sb.free_inodes_count, 678);
        assert_eq!(sb.blocks_per_group, g.blocks_per_group);
        assert_eq!(sb.inodes_per_group, g.inodes_per_group);
        assert_eq!((sb.inode_size, sb.desc_size), (g.inode_size, g.desc_size));
        assert_eq!(&sb.volume_name[..5], b"root\0");
        assert_eq!(sb.uuid, [7; 16]);
        assert_eq!(sb.checksum, sb.computed_checksum);
        assert_eq!(sb.csum_seed(), Some(crate::checksum::fs_seed(&[7; 16])));
        assert_eq!(
            level.feature_words(),
            (sb.feature_compat, sb.feature_incompat, sb.feature_ro_compat)
        );
    }
}
