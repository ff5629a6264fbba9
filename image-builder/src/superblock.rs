//! The superblock (`struct ext4_super_block`, Documentation/filesystems/ext4/super.rst),
//! written at byte 1024 of the image and, as a backup with `s_block_group_nr` set, at the
//! start of every group that sparse_super gives a copy.

use crate::checksum::crc32c_raw;
use crate::features::FsLevel;
use crate::layout::{Geometry, LOG_GROUPS_PER_FLEX};
use crate::util::{hi32, lo32, put_u16le, put_u32le};

/// Superblock magic.
pub(crate) const EXT4_MAGIC: u16 = 0xef53;
const S_CHECKSUM: usize = 0x3fc;
/// `s_flags`: directory hashes treat name bytes as signed chars, as x86 (the only
/// coLinux architecture) does natively: kernels before the flag existed hash with the
/// native signedness, so this is the choice every i386 kernel reads right.
const EXT2_FLAGS_SIGNED_HASH: u32 = 0x0001;
/// `s_default_mount_opts`: user_xattr and acl, as mke2fs sets.
const DEFAULT_MOUNT_OPTS: u32 = 0x0004 | 0x0008;
/// `s_def_hash_version`: half MD4.
pub(crate) const HASH_HALF_MD4: u8 = 1;

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
pub(crate) fn encode(g: &Geometry, f: &SuperFields<'_>, group: u16) -> [u8; 1024] {
    let mut b = [0u8; 1024];
    let level: FsLevel = g.level;
    let (compat, incompat, ro) = level.feature_words();
    put_u32le(
        &mut b,
        0x00,
        u32::try_from(g.inodes_count()).unwrap_or(u32::MAX),
    );
    put_u32le(&mut b, 0x04, lo32(g.blocks_count));
    put_u32le(&mut b, 0x08, 0); // s_r_blocks_count: no blocks reserved for root
    put_u32le(&mut b, 0x0c, lo32(f.free_blocks));
    put_u32le(&mut b, 0x10, f.free_inodes);
    put_u32le(&mut b, 0x14, g.first_data_block as u32);
    put_u32le(&mut b, 0x18, g.log_block_size);
    put_u32le(&mut b, 0x1c, g.log_block_size); // s_log_cluster_size (no bigalloc)
    put_u32le(&mut b, 0x20, g.blocks_per_group);
    put_u32le(&mut b, 0x24, g.blocks_per_group); // s_clusters_per_group
    put_u32le(&mut b, 0x28, g.inodes_per_group);
    put_u32le(&mut b, 0x2c, 0); // s_mtime: never mounted
    put_u32le(&mut b, 0x30, f.time); // s_wtime
    put_u16le(&mut b, 0x34, 0); // s_mnt_count
    put_u16le(&mut b, 0x36, 0xffff); // s_max_mnt_count = -1: no forced checks
    put_u16le(&mut b, 0x38, EXT4_MAGIC);
    put_u16le(&mut b, 0x3a, 1); // s_state: cleanly unmounted
    put_u16le(&mut b, 0x3c, 1); // s_errors: continue
    put_u32le(&mut b, 0x40, f.time); // s_lastcheck
    put_u32le(&mut b, 0x48, 0); // s_creator_os: Linux
    put_u32le(&mut b, 0x4c, 1); // s_rev_level: dynamic inode sizes
    put_u32le(&mut b, 0x54, 11); // s_first_ino
    put_u16le(&mut b, 0x58, g.inode_size);
    put_u16le(&mut b, 0x5a, group);
    put_u32le(&mut b, 0x5c, compat);
    put_u32le(&mut b, 0x60, incompat);
    put_u32le(&mut b, 0x64, ro);
    b[0x68..0x78].copy_from_slice(&f.uuid);
    let n = f.label.len().min(16);
    b[0x78..0x78 + n].copy_from_slice(&f.label[..n]);
    if level.has_journal() {
        put_u32le(&mut b, 0xe0, 8); // s_journal_inum
    }
    b[0xec..0xfc].copy_from_slice(&f.hash_seed);
    b[0xfc] = HASH_HALF_MD4;
    if level.is_64bit() {
        put_u16le(&mut b, 0xfe, g.desc_size);
    }
    put_u32le(&mut b, 0x100, DEFAULT_MOUNT_OPTS);
    put_u32le(&mut b, 0x108, f.time); // s_mkfs_time
    if let Some((i_block, size)) = &f.journal_backup {
        b[0xfd] = 1; // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS
        b[0x10c..0x10c + 60].copy_from_slice(i_block);
        put_u32le(&mut b, 0x10c + 60, hi32(*size));
        put_u32le(&mut b, 0x10c + 64, lo32(*size));
    }
    if level.is_64bit() {
        put_u32le(&mut b, 0x150, hi32(g.blocks_count));
        put_u32le(&mut b, 0x158, hi32(f.free_blocks));
    }
    if level.is_ext4() {
        put_u16le(&mut b, 0x15c, crate::inode::EXTRA_ISIZE); // s_min_extra_isize
        put_u16le(&mut b, 0x15e, crate::inode::EXTRA_ISIZE); // s_want_extra_isize
        b[0x174] = LOG_GROUPS_PER_FLEX;
    }
    put_u32le(&mut b, 0x160, EXT2_FLAGS_SIGNED_HASH);
    if level.metadata_csum() {
        b[0x175] = 1; // s_checksum_type: crc32c
        let crc = crc32c_raw(!0, &b[..S_CHECKSUM]);
        put_u32le(&mut b, S_CHECKSUM, crc);
    }
    b
}
