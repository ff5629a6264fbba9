//! How many blocks the content needs, and the smallest image that holds it.
//!
//! The count is an upper bound computed from metadata alone: file data as the host
//! stores it (holes known from the source are not counted), mapping blocks for files
//! without further holes, directory blocks exactly as [`crate::dir_entry`] packs them,
//! one block per slow symlink and per distinct attribute set. Zero blocks found while
//! copying only make the result smaller, never larger, so a build sized from this count
//! cannot run out of room.

use std::collections::HashSet;

use crate::blockmap::BlockMapBuilder;
use crate::dir_entry::{TAIL_LEN, entry_len};
use crate::error::Error;
use crate::extent::{MAX_EXTENT_LEN, tree_blocks};
use crate::features::FsLevel;
use crate::journal;
use crate::layout::{BlockMap, Geometry};
use crate::numbering::Numbering;
use crate::tree::{FileData, Kind, Tree};

/// What the content needs, independent of the image size.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Need {
    /// Blocks for data, mapping, directories, symlinks and attributes.
    pub blocks: u64,
    /// Inodes, reserved ones included.
    pub inodes: u64,
    /// Bytes of file data to copy (for progress).
    pub data_bytes: u64,
}

/// Blocks lost+found gets when it is made here: 16 KiB, as mke2fs makes it.
pub(crate) fn lost_found_blocks(block_size: u32) -> u64 {
    (16384 / u64::from(block_size)).clamp(2, 12)
}

/// Counts what `tree` needs at this level and block size.
pub(crate) fn need(tree: &Tree, numbering: &Numbering, level: FsLevel, block_size: u32) -> Need {
    let bs = u64::from(block_size);
    let mut blocks = 0u64;
    let mut data_bytes = 0u64;
    let mut xattr_sets = HashSet::new();
    let map_blocks = |n: u64, extents: u64| -> u64 {
        if level.is_ext4() {
            tree_blocks(extents, block_size)
        } else {
            BlockMapBuilder::indirect_blocks(n, block_size)
        }
    };
    for (id, node) in tree.nodes.iter().enumerate() {
        if numbering.ino_of[id] == 0 {
            continue;
        }
        if !node.meta.xattrs.is_empty() {
            xattr_sets.insert(node.meta.xattrs.clone());
        }
        match &node.kind {
            Kind::File {
                data: FileData::Host { ranges, .. },
                size,
            } => {
                let (n, runs) = match ranges {
                    None => (size.div_ceil(bs), 1),
                    Some(r) => (
                        r.iter().map(|(s, e)| e.div_ceil(bs) - s / bs).sum(),
                        r.len() as u64,
                    ),
                };
                // One more extent per group crossed, for metadata that splits a run.
                let extents = runs + n / MAX_EXTENT_LEN + n / u64::from(8 * block_size) + 1;
                let logical = size.div_ceil(bs);
                blocks += n + map_blocks(logical, extents);
                data_bytes += size;
            }
            Kind::File {
                data: FileData::Written { extents },
                size,
            } => {
                // Already in place: its blocks count, its bytes are already copied.
                let n: u64 = extents.iter().map(|e| u64::from(e.len)).sum();
                blocks += n + map_blocks(size.div_ceil(bs), extents.len() as u64);
            }
            Kind::Dir(entries) => {
                let tail = level.metadata_csum();
                // The root also names a lost+found made by the writer.
                let extra = (id == crate::tree::ROOT
                    && numbering.order.first().is_some_and(Option::is_none))
                .then_some(b"lost+found".len());
                let n = dir_blocks(
                    entries.keys().map(|k| k.len()).chain(extra),
                    block_size as usize,
                    tail,
                );
                // An indexed directory: a root, maybe index nodes, and leaves packed in
                // hash order.
                let n = if n > 1 && level.has_journal() {
                    let lens = entries.keys().map(|k| k.len()).chain(extra).map(entry_len);
                    let (total, longest) = lens.fold((0, 0), |(t, m), l| (t + l, m.max(l)));
                    let usable = block_size as usize - if tail { TAIL_LEN } else { 0 };
                    // A leaf is closed only when the next name does not fit, so each
                    // closed leaf holds more than `usable - longest` bytes.
                    let leaves = (total / (usable - longest + 1) + 1) as u64;
                    crate::dir_htree::total_blocks(leaves, block_size as usize, tail)
                } else {
                    n
                };
                blocks += n + map_blocks(n, n.div_ceil(MAX_EXTENT_LEN) + 1);
            }
            Kind::Symlink(t) if t.len() >= 60 => blocks += 1,
            _ => {}
        }
    }
    if numbering.order.first().is_some_and(Option::is_none) {
        let n = lost_found_blocks(block_size);
        blocks += n + map_blocks(n, 1);
    }
    blocks += xattr_sets.len() as u64;
    Need {
        blocks,
        inodes: u64::from(numbering.last_ino()),
        data_bytes,
    }
}

/// Blocks a linear directory with names of these lengths takes.
pub(crate) fn dir_blocks(names: impl Iterator<Item = usize>, block_size: usize, tail: bool) -> u64 {
    let usable = block_size - if tail { TAIL_LEN } else { 0 };
    let mut blocks = 1u64;
    let mut used = entry_len(1) + entry_len(2);
    for len in names {
        let l = entry_len(len);
        if used + l > usable {
            blocks += 1;
            used = 0;
        }
        used += l;
    }
    blocks
}

/// Free blocks an image of `blocks_count` blocks offers the content (after metadata and
/// the journal), or `None` when no filesystem of that size can be laid out.
pub(crate) fn room(
    level: FsLevel,
    block_size: u32,
    blocks_count: u64,
    inodes: u64,
) -> Option<(Geometry, BlockMap, u64)> {
    let (g, map) = Geometry::plan(level, block_size, blocks_count, inodes).ok()?;
    let journal = if level.has_journal() {
        journal::default_blocks(g.blocks_count)?
    } else {
        0
    };
    let jmap = if level.is_ext4() {
        tree_blocks(journal.div_ceil(MAX_EXTENT_LEN) + 1, block_size)
    } else {
        BlockMapBuilder::indirect_blocks(journal, block_size)
    };
    let free = g
        .blocks_count
        .checked_sub(map.used() + journal + jmap + g.first_data_block)?;
    Some((g, map, free))
}

/// The smallest block count whose image holds `need` blocks of content and `inodes`.
pub(crate) fn minimum_blocks(
    level: FsLevel,
    block_size: u32,
    need: u64,
    inodes: u64,
) -> Result<u64, Error> {
    let fits =
        |bc: u64| room(level, block_size, bc, inodes).is_some_and(|(_, _, free)| free >= need);
    // Grow until it fits, then bisect back down.
    let mut hi = (need + need / 16 + 256).max(2048);
    let limit = if level.is_64bit() {
        1u64 << 40
    } else {
        (1u64 << 32) - 1
    };
    while !fits(hi) {
        if hi >= limit {
            return Err(Error::TooLarge {
                size: hi * u64::from(block_size),
                max: limit * u64::from(block_size),
            });
        }
        hi = (hi + hi / 4).min(limit);
    }
    let mut lo = need.min(hi);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) { hi = mid } else { lo = mid }
    }
    Ok(hi)
}
