//! The one-pass plan: where every group's superblock copy, descriptor table, bitmaps and
//! inode table go, and a block allocator over the rest.
//!
//! Every group starts with its metadata: a superblock copy and the descriptor table
//! (groups 0, 1 and powers of 3, 5 and 7 only: sparse_super), then its block bitmap,
//! inode bitmap and inode table. So a group's layout is a function of the group number
//! alone, and the filesystem can grow group by group while a stream is written, without
//! knowing its final size: that is what makes `--size auto` one pass for tar streams.
//! ext4 images carry the flex_bg feature, which lets the kernel and resize2fs place
//! *later* metadata anywhere; the layout written here is the classic one, which every
//! ext2/3/4 driver reads.
//!
//! The descriptor table of a growing filesystem cannot know how many groups it will
//! describe: a reserve is set aside after each superblock copy and the unused part is
//! freed when the size is known.
//!
//! No resize_inode: offline resize2fs still works, and nothing has to map reserved
//! descriptor blocks.

use crate::error::Error;
use crate::features::FsLevel;

/// Groups whose metadata the kernel may pack together (mke2fs's default, 2^4); recorded
/// in the superblock for flex_bg filesystems.
pub(crate) const LOG_GROUPS_PER_FLEX: u8 = 4;

/// Blocks past the metadata that a last group must hold to be worth keeping; smaller
/// remainders are left off the filesystem, as mke2fs does.
const MIN_LAST_GROUP_DATA: u64 = 50;

/// Groups a growing filesystem may reach (its descriptor reserve covers them):
/// 8192 groups are 256 GiB with 4 KiB blocks.
const GROWABLE_MAX_GROUPS: u64 = 8192;

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

/// The part of the geometry fixed before any data is written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub level: FsLevel,
    pub block_size: u32,
    pub first_data_block: u64,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub inode_size: u16,
    pub desc_size: u16,
    /// Blocks after each superblock copy kept for the descriptor table.
    pub gdt_reserve: u32,
    pub itable_blocks: u32,
}

impl Shape {
    /// A shape with `ipg` inodes and `gdt_reserve` descriptor blocks per group.
    fn new(level: FsLevel, block_size: u32, ipg: u32, gdt_reserve: u32) -> Result<Shape, Error> {
        if ![1024, 2048, 4096].contains(&block_size) {
            return Err(Error::BadBlockSize(block_size));
        }
        let inode_size = level.inode_size();
        let shape = Shape {
            level,
            block_size,
            first_data_block: u64::from(block_size == 1024),
            blocks_per_group: 8 * block_size,
            inodes_per_group: ipg,
            inode_size,
            desc_size: if level.is_64bit() { 64 } else { 32 },
            gdt_reserve,
            itable_blocks: ipg / (block_size / u32::from(inode_size)),
        };
        if shape.meta_len(0) + MIN_LAST_GROUP_DATA > u64::from(shape.blocks_per_group) {
            return Err(Error::TooLarge {
                size: u64::from(gdt_reserve) * u64::from(block_size),
                max: u64::from(shape.blocks_per_group) * u64::from(block_size),
            });
        }
        Ok(shape)
    }

    /// A shape for a filesystem whose size is not known yet: inodes by the default
    /// ratio, or more when the content is known to need them (`inodes` over `blocks`),
    /// descriptors reserved for up to 8192 groups.
    pub(crate) fn growable(
        level: FsLevel,
        block_size: u32,
        inodes: u64,
        blocks: u64,
    ) -> Result<Shape, Error> {
        let bpg = u64::from(8 * block_size);
        let by_ratio = bpg * u64::from(block_size) / inode_ratio(block_size);
        let groups = blocks.div_ceil(bpg).max(1);
        let ipg = ipg_for(level, block_size, by_ratio.max(inodes.div_ceil(groups)), 1);
        let reserve = (GROWABLE_MAX_GROUPS * desc_size(level)).div_ceil(u64::from(block_size));
        Shape::new(level, block_size, ipg, reserve as u32)
    }

    /// The largest filesystem this shape can describe, in blocks.
    pub(crate) fn max_blocks(&self) -> u64 {
        let by_gdt = u64::from(self.gdt_reserve) * u64::from(self.block_size)
            / u64::from(self.desc_size)
            * u64::from(self.blocks_per_group);
        let by_field = if self.level.is_64bit() {
            1u64 << 40
        } else {
            (1u64 << 32) - 1
        };
        by_gdt.min(by_field)
    }

    /// First block of group `g`.
    pub(crate) fn group_start(&self, g: u64) -> u64 {
        self.first_data_block + g * u64::from(self.blocks_per_group)
    }

    /// Metadata blocks at the start of group `g`.
    pub(crate) fn meta_len(&self, g: u64) -> u64 {
        let sb = if has_super(g as u32) {
            1 + u64::from(self.gdt_reserve)
        } else {
            0
        };
        sb + 2 + u64::from(self.itable_blocks)
    }

    /// Group `g`'s layout in a filesystem of `blocks_count` blocks.
    fn group(&self, g: u64, blocks_count: u64) -> GroupLayout {
        let start = self.group_start(g);
        let hs = has_super(g as u32);
        let bb = start
            + if hs {
                1 + u64::from(self.gdt_reserve)
            } else {
                0
            };
        GroupLayout {
            start,
            end: (start + u64::from(self.blocks_per_group)).min(blocks_count),
            has_super: hs,
            block_bitmap: bb,
            inode_bitmap: bb + 1,
            inode_table: bb + 2,
        }
    }

    /// The geometry of a filesystem of `blocks_count` blocks with this shape.
    fn geometry(&self, blocks_count: u64) -> Geometry {
        let ngroups =
            (blocks_count - self.first_data_block).div_ceil(u64::from(self.blocks_per_group));
        let groups = (0..ngroups).map(|g| self.group(g, blocks_count)).collect();
        Geometry {
            level: self.level,
            block_size: self.block_size,
            log_block_size: self.block_size.trailing_zeros() - 10,
            blocks_count,
            first_data_block: self.first_data_block,
            blocks_per_group: self.blocks_per_group,
            inodes_per_group: self.inodes_per_group,
            inode_size: self.inode_size,
            desc_size: self.desc_size,
            gdt_blocks: (ngroups * u64::from(self.desc_size)).div_ceil(u64::from(self.block_size))
                as u32,
            itable_blocks: self.itable_blocks,
            groups,
        }
    }
}

fn desc_size(level: FsLevel) -> u64 {
    if level.is_64bit() { 64 } else { 32 }
}

/// Bytes per inode: mke2fs.conf's inode_ratio, 16 KiB for 4 KiB blocks and 4 KiB for
/// the "small" filesystems that use 1 KiB blocks.
fn inode_ratio(block_size: u32) -> u64 {
    if block_size >= 4096 { 16384 } else { 4096 }
}

/// Inodes per group for `total` inodes over `groups` groups: rounded up to whole
/// inode-table blocks and bitmap bytes, at most one bitmap block's worth, and small
/// enough that a group's metadata leaves room for data.
fn ipg_for(level: FsLevel, block_size: u32, total: u64, groups: u64) -> u32 {
    let per_block = u64::from(block_size / u32::from(level.inode_size()));
    let align = per_block.max(8);
    let by_room = (u64::from(8 * block_size) / 2) * per_block; // itable at most half a group
    let max = u64::from(8 * block_size).min(by_room) / align * align;
    (total.div_ceil(groups).max(16).div_ceil(align) * align).min(max) as u32
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
    /// Descriptor table blocks actually used (the reserve beyond them is free).
    pub gdt_blocks: u32,
    /// Blocks of one group's inode table.
    pub itable_blocks: u32,
    pub groups: Vec<GroupLayout>,
}

impl Geometry {
    /// Lays out an image of exactly `blocks_count` blocks (a runt last group dropped)
    /// holding at least `min_inodes` inodes. Returns the geometry and the block bitmap
    /// with every metadata block marked.
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
        let fdb = u64::from(block_size == 1024);
        let bpg = u64::from(8 * block_size);
        let too_small = |bc: u64, what: &str| Error::TooSmall {
            size: bc * bs,
            minimum: 0,
            what: what.to_owned(),
        };
        if blocks_count < fdb + 64 {
            return Err(too_small(blocks_count, "an ext2/3/4 filesystem"));
        }
        let max_field = if level.is_64bit() {
            1u64 << 40
        } else {
            (1u64 << 32) - 1
        };
        if blocks_count > max_field {
            return Err(Error::TooLarge {
                size: blocks_count * bs,
                max: max_field * bs,
            });
        }
        let mut blocks_count = blocks_count;
        loop {
            let ngroups = (blocks_count - fdb).div_ceil(bpg);
            let gdt = u32::try_from((ngroups * desc_size(level)).div_ceil(bs))
                .map_err(|_| too_small(blocks_count, "descriptors"))?;
            let by_ratio = blocks_count * bs / inode_ratio(block_size);
            let ipg = ipg_for(level, block_size, by_ratio.max(min_inodes), ngroups);
            if u64::from(ipg) * ngroups < min_inodes {
                return Err(Error::TooSmall {
                    size: blocks_count * bs,
                    minimum: min_inodes.div_ceil(u64::from(ipg)) * bpg * bs,
                    what: format!("{min_inodes} inodes"),
                });
            }
            let shape = Shape::new(level, block_size, ipg, gdt)?;
            let last = ngroups - 1;
            let last_len = blocks_count - shape.group_start(last);
            if last_len < shape.meta_len(last) + MIN_LAST_GROUP_DATA {
                if ngroups == 1 {
                    return Err(too_small(
                        blocks_count,
                        "the group metadata (bitmaps and inode table)",
                    ));
                }
                blocks_count = shape.group_start(last);
                continue;
            }
            let mut map = BlockMap::new(shape, blocks_count, false);
            map.materialize(ngroups);
            return Ok((shape.geometry(blocks_count), map));
        }
    }

    /// Ends a growing filesystem: picks the size that holds what was written, `inodes`
    /// inodes and `headroom` free blocks, frees the unused descriptor reserve, and
    /// returns the geometry.
    pub(crate) fn finish(
        map: &mut BlockMap,
        inodes: u64,
        headroom: u64,
    ) -> Result<Geometry, Error> {
        let shape = map.shape;
        let bpg = u64::from(shape.blocks_per_group);
        let inode_groups = inodes.div_ceil(u64::from(shape.inodes_per_group)).max(1);
        let mut target = (map.high_water() + headroom).max(
            shape.group_start(inode_groups - 1)
                + shape.meta_len(inode_groups - 1)
                + MIN_LAST_GROUP_DATA,
        );
        let ngroups = (target - shape.first_data_block).div_ceil(bpg);
        let last = ngroups - 1;
        target = target.max(shape.group_start(last) + shape.meta_len(last) + MIN_LAST_GROUP_DATA);
        if target > shape.max_blocks() {
            return Err(Error::TooLarge {
                size: target * u64::from(shape.block_size),
                max: shape.max_blocks() * u64::from(shape.block_size),
            });
        }
        map.set_capacity(target);
        map.materialize(ngroups);
        let g = shape.geometry(target);
        for grp in g.groups.iter().filter(|grp| grp.has_super) {
            map.clear(
                grp.start + 1 + u64::from(g.gdt_blocks),
                u64::from(shape.gdt_reserve - g.gdt_blocks),
            );
        }
        Ok(g)
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
/// Which blocks are in use, for the whole filesystem, and the allocator over it.
///
/// Data goes at the lowest free blocks in order, so a tree lands packed at the front of
/// the image in inode order (what the reader will read together), and a file's blocks
/// are contiguous except where metadata interrupts them. A growing map adds groups
/// (with their metadata marked) as allocation reaches them.
#[derive(Clone, Debug)]
pub(crate) struct BlockMap {
    shape: Shape,
    bits: Vec<u64>,
    /// Blocks the map covers now.
    blocks_count: u64,
    /// Groups whose metadata is marked.
    groups: u64,
    growable: bool,
    cursor: u64,
    used: u64,
    high_water: u64,
}

impl BlockMap {
    fn new(shape: Shape, blocks_count: u64, growable: bool) -> BlockMap {
        let fdb = shape.first_data_block;
        let mut m = BlockMap {
            shape,
            bits: Vec::new(),
            blocks_count: 0,
            groups: 0,
            growable,
            cursor: fdb,
            used: 0,
            high_water: 0,
        };
        m.set_capacity(blocks_count);
        // Block 0 of a 1 KiB-block filesystem is the boot block, outside every group.
        if fdb > 0 {
            m.mark(0, fdb);
            m.used -= fdb;
        }
        m
    }

    /// An empty map that grows as blocks are allocated.
    pub(crate) fn growing(shape: Shape) -> BlockMap {
        let mut m = BlockMap::new(shape, shape.group_start(1), true);
        m.materialize(1);
        m
    }

    /// Blocks the map covers now (the image size, for a fixed one).
    pub(crate) fn capacity(&self) -> u64 {
        self.blocks_count
    }

    /// The shape the map lays groups out with.
    pub(crate) fn shape(&self) -> Shape {
        self.shape
    }

    fn set_capacity(&mut self, blocks: u64) {
        self.blocks_count = blocks;
        let words = usize::try_from(blocks.div_ceil(64)).unwrap_or(usize::MAX);
        if words > self.bits.len() {
            self.bits.resize(words, 0);
        }
    }

    /// Marks the metadata of groups up to `n` (exclusive).
    fn materialize(&mut self, n: u64) {
        while self.groups < n {
            let g = self.groups;
            let start = self.shape.group_start(g);
            let len = self
                .shape
                .meta_len(g)
                .min(self.blocks_count.saturating_sub(start));
            self.mark(start, len);
            self.groups += 1;
        }
    }

    /// Adds one group to a growing map; false when it cannot grow.
    fn grow(&mut self) -> bool {
        if !self.growable {
            return false;
        }
        let next = self.shape.group_start(self.groups + 1);
        if next > self.shape.max_blocks() {
            return false;
        }
        self.set_capacity(next);
        self.materialize(self.groups + 1);
        true
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
        if len > 0 {
            self.high_water = self.high_water.max(start + len);
        }
    }

    /// Frees `len` blocks from `start` (a replaced file's data, an unused reserve).
    pub(crate) fn clear(&mut self, start: u64, len: u64) {
        for b in start..start + len {
            let w = &mut self.bits[(b / 64) as usize];
            let bit = 1u64 << (b % 64);
            if *w & bit != 0 {
                *w &= !bit;
                self.used -= 1;
            }
        }
        self.cursor = self.cursor.min(start);
    }

    /// Blocks in use (metadata and data), not counting a 1 KiB filesystem's boot block.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// One past the highest block ever allocated or marked.
    pub(crate) fn high_water(&self) -> u64 {
        self.high_water
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

    /// Allocates up to `max` contiguous blocks at the allocation cursor and returns
    /// (first block, count); `None` when the image is full.
    pub(crate) fn alloc_run(&mut self, max: u64) -> Option<(u64, u64)> {
        let start = loop {
            match self.next_free(self.cursor) {
                Some(s) => break s,
                None if self.grow() => {}
                None => return None,
            }
        };
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
    fn a_growing_map_adds_groups_and_frees_the_unused_reserve() {
        let shape = Shape::growable(FsLevel::Ext4Modern, 4096, 0, 0).expect("shape");
        let mut map = BlockMap::growing(shape);
        let mut total = 0;
        while total < 40_000 {
            let (_, n) = map.alloc_run(32768).expect("grows");
            total += n;
        }
        let g = Geometry::finish(&mut map, 100, 0).expect("finishes");
        assert_eq!(g.groups.len(), 2);
        assert_eq!(g.gdt_blocks, 1);
        assert!(
            !map.is_set(2),
            "the descriptor reserve past the first block is free again"
        );
        assert_eq!(g.blocks_count, map.high_water());
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
