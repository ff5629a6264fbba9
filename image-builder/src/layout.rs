//! The one-pass plan: where every group's superblock copy, descriptor table, bitmaps and
//! inode table go, and a block allocator over the rest.
//!
//! The geometry is fixed before any data is written: block size, blocks per group
//! (8 × block size, one bitmap block), inodes per group, and so the metadata positions.
//! Without flex_bg (ext2, ext3) each group starts with its superblock copy and
//! descriptor table (groups 0, 1 and powers of 3, 5 and 7 only: sparse_super), then its
//! block bitmap, inode bitmap and inode table, as mke2fs lays them out. With flex_bg
//! (ext4) the bitmaps and inode tables of 16 groups are packed at the start of the
//! first group of the 16, leaving long free runs for file data (ext4 `flex_bg`,
//! Documentation/filesystems/ext4/blockgroup.rst).
//!
//! No resize_inode: offline resize2fs still works, and nothing has to map reserved
//! descriptor blocks.

use crate::error::Error;
use crate::features::FsLevel;

/// Groups whose metadata one flex group packs together (mke2fs's default, 2^4).
pub(crate) const LOG_GROUPS_PER_FLEX: u8 = 4;

/// Blocks past the metadata that a last group must hold to be worth keeping; smaller
/// remainders are left off the filesystem, as mke2fs does.
const MIN_LAST_GROUP_DATA: u64 = 50;

/// Where one group's metadata lives.
#[derive(Clone, Debug)]
pub(crate) struct GroupLayout {
    /// First block of the group.
    pub start: u64,
    /// One past the last block of the group.
    pub end: u64,
    /// Whether a superblock copy and descriptor table start the group.
    pub has_super: bool,
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
}

/// The whole geometry of an image.
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    pub level: FsLevel,
    pub block_size: u32,
    pub log_block_size: u32,
    pub blocks_count: u64,
    pub first_data_block: u64,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub inode_size: u16,
    pub desc_size: u16,
    pub gdt_blocks: u32,
    /// Blocks of one group's inode table.
    #[cfg_attr(not(test), expect(dead_code, reason = "the layout tests read it"))]
    pub itable_blocks: u32,
    pub groups: Vec<GroupLayout>,
}

impl Geometry {
    /// Lays out an image of `blocks_count` blocks holding at least `min_inodes` inodes.
    /// Returns the geometry and the block bitmap with every metadata block marked.
    pub(crate) fn plan(
        level: FsLevel,
        block_size: u32,
        blocks_count: u64,
        min_inodes: u64,
    ) -> Result<(Geometry, BlockMap), Error> {
        if ![1024, 2048, 4096].contains(&block_size) {
            return Err(Error::BadBlockSize(block_size));
        }
        let bs = u64::from(block_size);
        let log_block_size = block_size.trailing_zeros() - 10;
        let first_data_block = u64::from(block_size == 1024);
        let bpg = 8 * block_size;
        let inode_size = level.inode_size();
        let desc_size: u16 = if level.is_64bit() { 64 } else { 32 };
        let max_blocks = if level.is_64bit() {
            1u64 << 40
        } else {
            (1u64 << 32) - 1
        };
        if blocks_count > max_blocks {
            return Err(Error::TooLarge {
                size: blocks_count * bs,
                max: max_blocks * bs,
            });
        }
        let mut blocks_count = blocks_count;
        let too_small = |bc: u64, what: &str| Error::TooSmall {
            size: bc * bs,
            minimum: 0,
            what: what.to_owned(),
        };
        if blocks_count < first_data_block + 64 {
            return Err(too_small(blocks_count, "an ext2/3/4 filesystem"));
        }
        let inodes_per_block = block_size / u32::from(inode_size);
        // Bytes per inode: mke2fs.conf's inode_ratio, 16 KiB for 4 KiB blocks and
        // 4 KiB for the "small" filesystems that use 1 KiB blocks.
        let inode_ratio: u64 = if block_size >= 4096 { 16384 } else { 4096 };
        loop {
            let ngroups = (blocks_count - first_data_block).div_ceil(u64::from(bpg));
            let ngroups_u32 = u32::try_from(ngroups).map_err(|_| Error::TooLarge {
                size: blocks_count * bs,
                max: max_blocks * bs,
            })?;
            let gdt_blocks = u32::try_from((ngroups * u64::from(desc_size)).div_ceil(bs))
                .map_err(|_| too_small(blocks_count, "descriptors"))?;
            // Inodes: the ratio's share, or what the content needs, whichever is more,
            // rounded to whole inode-table blocks and to bytes of the inode bitmap.
            let by_ratio = (blocks_count * bs / inode_ratio).div_ceil(ngroups);
            let by_need = min_inodes.div_ceil(ngroups);
            let align = u64::from(inodes_per_block.max(8));
            let mut ipg = by_ratio.max(by_need).max(16).div_ceil(align) * align;
            let ipg_max = u64::from(8 * block_size);
            if ipg > ipg_max {
                if by_need > ipg_max {
                    return Err(Error::TooSmall {
                        size: blocks_count * bs,
                        minimum: min_inodes.div_ceil(ipg_max) * u64::from(bpg) * bs,
                        what: format!("{min_inodes} inodes"),
                    });
                }
                ipg = ipg_max;
            }
            let ipg = u32::try_from(ipg).map_err(|_| too_small(blocks_count, "inodes"))?;
            let itable_blocks = ipg / inodes_per_block;
            let flex = level.is_ext4();

            // Drop a last group too small to be worth its metadata.
            let last_start = first_data_block + (ngroups - 1) * u64::from(bpg);
            let last_len = blocks_count - last_start;
            let last_has_super = has_super(ngroups_u32 - 1);
            let last_meta = if last_has_super {
                1 + u64::from(gdt_blocks)
            } else {
                0
            } + if flex {
                0
            } else {
                2 + u64::from(itable_blocks)
            };
            if ngroups > 1 && last_len < last_meta + MIN_LAST_GROUP_DATA {
                blocks_count = last_start;
                continue;
            }

            let mut map = BlockMap::new(blocks_count, first_data_block);
            let mut groups = Vec::with_capacity(ngroups_u32 as usize);
            for g in 0..ngroups_u32 {
                let start = first_data_block + u64::from(g) * u64::from(bpg);
                let end = (start + u64::from(bpg)).min(blocks_count);
                let hs = has_super(g);
                if hs {
                    map.mark(start, 1 + u64::from(gdt_blocks));
                }
                groups.push(GroupLayout {
                    start,
                    end,
                    has_super: hs,
                    block_bitmap: 0,
                    inode_bitmap: 0,
                    inode_table: 0,
                });
            }
            let geo_err = || Error::TooSmall {
                size: blocks_count * bs,
                minimum: 0,
                what: "the group metadata (bitmaps and inode tables)".to_owned(),
            };
            if flex {
                let per_flex = 1usize << LOG_GROUPS_PER_FLEX;
                for first in (0..groups.len()).step_by(per_flex) {
                    let members = first..(first + per_flex).min(groups.len());
                    let from = groups[first].start;
                    for g in members.clone() {
                        groups[g].block_bitmap =
                            map.alloc_contiguous(from, 1).ok_or_else(geo_err)?;
                    }
                    for g in members.clone() {
                        groups[g].inode_bitmap =
                            map.alloc_contiguous(from, 1).ok_or_else(geo_err)?;
                    }
                    for g in members {
                        groups[g].inode_table = map
                            .alloc_contiguous(from, u64::from(itable_blocks))
                            .ok_or_else(geo_err)?;
                    }
                }
            } else {
                for grp in &mut groups {
                    let mut at = grp.start
                        + if grp.has_super {
                            1 + u64::from(gdt_blocks)
                        } else {
                            0
                        };
                    if at + 2 + u64::from(itable_blocks) > grp.end {
                        return Err(geo_err());
                    }
                    grp.block_bitmap = at;
                    grp.inode_bitmap = at + 1;
                    grp.inode_table = at + 2;
                    map.mark(at, 2 + u64::from(itable_blocks));
                    at += 2 + u64::from(itable_blocks);
                    let _ = at;
                }
            }
            let geometry = Geometry {
                level,
                block_size,
                log_block_size,
                blocks_count,
                first_data_block,
                blocks_per_group: bpg,
                inodes_per_group: ipg,
                inode_size,
                desc_size,
                gdt_blocks,
                itable_blocks,
                groups,
            };
            return Ok((geometry, map));
        }
    }

    /// Total inodes.
    pub(crate) fn inodes_count(&self) -> u64 {
        self.groups.len() as u64 * u64::from(self.inodes_per_group)
    }

    /// Block size as u64, for offset arithmetic.
    pub(crate) fn bs(&self) -> u64 {
        u64::from(self.block_size)
    }
}

/// Whether group `g` holds a superblock copy under sparse_super: 0, 1, and powers of
/// 3, 5 and 7.
pub(crate) fn has_super(g: u32) -> bool {
    fn power_of(mut n: u32, base: u32) -> bool {
        while n > 1 && n.is_multiple_of(base) {
            n /= base;
        }
        n == 1
    }
    g <= 1 || power_of(g, 3) || power_of(g, 5) || power_of(g, 7)
}

/// Which blocks are in use, for the whole filesystem, and the allocator over it.
///
/// Data goes at the lowest free blocks in order, so a tree lands packed at the front of
/// the image in inode order (what the reader will read together), and a file's blocks
/// are contiguous except where metadata interrupts them.
#[derive(Clone, Debug)]
pub(crate) struct BlockMap {
    bits: Vec<u64>,
    blocks_count: u64,
    cursor: u64,
    used: u64,
}

impl BlockMap {
    fn new(blocks_count: u64, first_data_block: u64) -> BlockMap {
        let words = usize::try_from(blocks_count.div_ceil(64)).unwrap_or(usize::MAX);
        let mut m = BlockMap {
            bits: vec![0; words],
            blocks_count,
            cursor: first_data_block,
            used: 0,
        };
        // Block 0 of a 1 KiB-block filesystem is the boot block, outside every group.
        if first_data_block > 0 {
            m.mark(0, first_data_block);
            m.used -= first_data_block;
        }
        m
    }

    /// Whether block `b` is in use.
    pub(crate) fn is_set(&self, b: u64) -> bool {
        self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    /// Marks `len` blocks from `start` as used.
    pub(crate) fn mark(&mut self, start: u64, len: u64) {
        for b in start..start + len {
            let w = &mut self.bits[(b / 64) as usize];
            let bit = 1u64 << (b % 64);
            if *w & bit == 0 {
                *w |= bit;
                self.used += 1;
            }
        }
    }

    /// Blocks in use (metadata and data), not counting a 1 KiB filesystem's boot block.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// The first free block at or after `from`.
    fn next_free(&self, from: u64) -> Option<u64> {
        let mut b = from;
        while b < self.blocks_count {
            let w = self.bits[(b / 64) as usize];
            if w == u64::MAX {
                b = (b / 64 + 1) * 64;
                continue;
            }
            if w & (1 << (b % 64)) == 0 {
                return Some(b);
            }
            b += 1;
        }
        None
    }

    /// Allocates `len` contiguous free blocks at or after `from` (for inode tables).
    fn alloc_contiguous(&mut self, from: u64, len: u64) -> Option<u64> {
        let mut start = self.next_free(from)?;
        loop {
            let mut n = 0;
            while n < len && start + n < self.blocks_count && !self.is_set(start + n) {
                n += 1;
            }
            if n == len {
                self.mark(start, len);
                return Some(start);
            }
            if start + n >= self.blocks_count {
                return None;
            }
            start = self.next_free(start + n)?;
        }
    }

    /// Allocates up to `max` contiguous blocks at the allocation cursor and returns
    /// (first block, count); `None` when the image is full.
    pub(crate) fn alloc_run(&mut self, max: u64) -> Option<(u64, u64)> {
        let start = self.next_free(self.cursor)?;
        let mut n = 0;
        while n < max && start + n < self.blocks_count && !self.is_set(start + n) {
            n += 1;
        }
        self.mark(start, n);
        self.cursor = start + n;
        Some((start, n))
    }

    /// The bytes of the block bitmap for blocks `start..start + bits`, padded with ones
    /// to `bytes` (blocks past the end of the filesystem count as used).
    pub(crate) fn group_bitmap(&self, start: u64, bits: u64, bytes: usize) -> Vec<u8> {
        let mut out = vec![0xffu8; bytes];
        for byte in out.iter_mut().take(bits.div_ceil(8) as usize) {
            *byte = 0;
        }
        for i in 0..bits {
            if self.is_set(start + i) {
                out[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        // Pad the last partial byte too.
        for i in bits..(bits.div_ceil(8) * 8) {
            out[(i / 8) as usize] |= 1 << (i % 8);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let with: Vec<u32> = (0..100).filter(|&g| has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }

    #[test]
    fn ext3_groups_start_with_their_metadata() {
        let (g, map) = Geometry::plan(FsLevel::Ext3, 4096, 100_000, 100).expect("plans");
        assert_eq!(g.groups.len(), 4);
        assert_eq!(
            g.groups[1].block_bitmap,
            32768 + 1 + u64::from(g.gdt_blocks)
        );
        assert_eq!(g.groups[2].block_bitmap, 65536);
        assert!(map.is_set(32768) && !map.is_set(65536 + 2 + u64::from(g.itable_blocks)));
    }

    #[test]
    fn ext4_packs_metadata_in_the_first_group() {
        let (g, _) = Geometry::plan(FsLevel::Ext4Modern, 4096, 200_000, 100).expect("plans");
        for grp in &g.groups {
            assert!(grp.inode_table < 32768, "{grp:?}");
        }
    }

    #[test]
    fn a_runt_last_group_is_dropped() {
        let (g, _) = Geometry::plan(FsLevel::Ext2, 4096, 32768 + 20, 100).expect("plans");
        assert_eq!(g.blocks_count, 32768);
        assert_eq!(g.groups.len(), 1);
    }

    #[test]
    fn allocator_skips_metadata() {
        let (g, mut map) = Geometry::plan(FsLevel::Ext2, 4096, 70_000, 100).expect("plans");
        let first_data = g.groups[0].inode_table + u64::from(g.itable_blocks);
        let (start, n) = map.alloc_run(1 << 20).expect("room");
        assert_eq!(start, first_data);
        assert_eq!(
            start + n,
            32768,
            "a run stops at the next group's superblock copy"
        );
    }
}
