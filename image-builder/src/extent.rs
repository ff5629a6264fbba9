//! Extent trees (`struct ext4_extent_header`, `ext4_extent`, `ext4_extent_idx`;
//! Documentation/filesystems/ext4/ifork.rst).
//!
//! The inode's `i_block` holds a header and up to four entries. More extents than that
//! go into leaf blocks of (block size − 12) / 12 entries each, indexed from the inode,
//! with further index levels as needed. With metadata_csum every tree block ends with a
//! 4-byte CRC32C seeded by the owning inode, placed right after `eh_max` entries.

use crate::checksum::crc32c_raw;
use crate::util::{hi32, lo32, put_u16le, put_u32le};

const EH_MAGIC: u16 = 0xf30a;
/// The longest initialised extent.
pub(crate) const MAX_EXTENT_LEN: u64 = 32768;

/// A run of blocks: `len` file blocks from `logical` are at `physical..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    pub logical: u32,
    pub physical: u64,
    pub len: u16,
}

/// An encoded extent tree: the inode's `i_block` and the tree blocks to allocate.
pub(crate) struct ExtentTree {
    pub i_block: [u8; 60],
    /// Tree blocks (leaves, then each index level), in the order their numbers were
    /// handed out by `alloc`.
    pub blocks: Vec<(u64, Vec<u8>)>,
}

/// Encodes `extents` (sorted by logical block, at most [`MAX_EXTENT_LEN`] each).
/// `alloc` hands out one block number per tree block; `csum` is the inode's checksum
/// seed when metadata_csum is on. Returns `None` when `alloc` runs out.
pub(crate) fn encode(
    extents: &[Extent],
    block_size: u32,
    csum: Option<u32>,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Option<ExtentTree> {
    let per_block = ((block_size - 12) / 12) as usize;
    let mut i_block = [0u8; 60];
    if extents.len() <= 4 {
        header(&mut i_block, extents.len(), 4, 0);
        for (i, e) in extents.iter().enumerate() {
            leaf_entry(&mut i_block[12 + 12 * i..], e);
        }
        return Some(ExtentTree {
            i_block,
            blocks: Vec::new(),
        });
    }
    let mut blocks = Vec::new();
    // Level 0: leaves. Each level yields (first logical block, block number) pairs.
    let mut level: Vec<(u32, u64)> = Vec::new();
    for chunk in extents.chunks(per_block) {
        let mut b = vec![0u8; block_size as usize];
        header(&mut b, chunk.len(), per_block, 0);
        for (i, e) in chunk.iter().enumerate() {
            leaf_entry(&mut b[12 + 12 * i..], e);
        }
        let nr = alloc()?;
        tail(&mut b, per_block, csum);
        blocks.push((nr, b));
        level.push((chunk[0].logical, nr));
    }
    let mut depth: u16 = 1;
    while level.len() > 4 {
        let mut up = Vec::new();
        for chunk in level.chunks(per_block) {
            let mut b = vec![0u8; block_size as usize];
            header(&mut b, chunk.len(), per_block, depth);
            for (i, (logical, nr)) in chunk.iter().enumerate() {
                index_entry(&mut b[12 + 12 * i..], *logical, *nr);
            }
            let nr = alloc()?;
            tail(&mut b, per_block, csum);
            blocks.push((nr, b));
            up.push((chunk[0].0, nr));
        }
        level = up;
        depth += 1;
    }
    header(&mut i_block, level.len(), 4, depth);
    for (i, (logical, nr)) in level.iter().enumerate() {
        index_entry(&mut i_block[12 + 12 * i..], *logical, *nr);
    }
    Some(ExtentTree { i_block, blocks })
}

/// Tree blocks needed for `n` extents (for sizing before allocation).
pub(crate) fn tree_blocks(n: u64, block_size: u32) -> u64 {
    let per = u64::from((block_size - 12) / 12);
    let mut total = 0;
    let mut level = n;
    while level > 4 {
        level = level.div_ceil(per);
        total += level;
    }
    total
}

fn header(b: &mut [u8], entries: usize, max: usize, depth: u16) {
    put_u16le(b, 0, EH_MAGIC);
    put_u16le(b, 2, entries as u16);
    put_u16le(b, 4, max as u16);
    put_u16le(b, 6, depth);
}

fn leaf_entry(b: &mut [u8], e: &Extent) {
    put_u32le(b, 0, e.logical);
    put_u16le(b, 4, e.len);
    put_u16le(b, 6, (hi32(e.physical) & 0xffff) as u16);
    put_u32le(b, 8, lo32(e.physical));
}

fn index_entry(b: &mut [u8], logical: u32, nr: u64) {
    put_u32le(b, 0, logical);
    put_u32le(b, 4, lo32(nr));
    put_u16le(b, 8, (hi32(nr) & 0xffff) as u16);
}

fn tail(b: &mut [u8], per_block: usize, csum: Option<u32>) {
    if let Some(seed) = csum {
        let end = 12 + 12 * per_block;
        let crc = crc32c_raw(seed, &b[..end]);
        put_u32le(b, end, crc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(n: u32) -> Vec<Extent> {
        (0..n)
            .map(|i| Extent {
                logical: i * 2,
                physical: 1000 + u64::from(i) * 3,
                len: 1,
            })
            .collect()
    }

    #[test]
    fn four_extents_stay_in_the_inode() {
        let mut next = 0;
        let t = encode(&runs(4), 4096, None, &mut || {
            next += 1;
            Some(next)
        })
        .expect("encodes");
        assert!(t.blocks.is_empty());
        assert_eq!(u16::from_le_bytes([t.i_block[2], t.i_block[3]]), 4);
    }

    #[test]
    fn many_extents_make_a_deeper_tree() {
        let n = 340 * 5 + 1;
        let mut next = 100;
        let t = encode(&runs(n), 4096, Some(1), &mut || {
            next += 1;
            Some(next)
        })
        .expect("encodes");
        // 6 leaves, one index block above them, then the root in the inode.
        assert_eq!(t.blocks.len(), 7);
        assert_eq!(tree_blocks(u64::from(n), 4096), 7);
        assert_eq!(u16::from_le_bytes([t.i_block[6], t.i_block[7]]), 2, "depth");
    }
}
