//! Extent trees (`struct ext4_extent_header`, `ext4_extent`, `ext4_extent_idx`;
//! Documentation/filesystems/ext4/ifork.rst).
//!
//! The inode's `i_block` holds a header and up to four entries. More extents than that
//! go into leaf blocks of (block size − 12) / 12 entries each, indexed from the inode,
//! with further index levels as needed. With metadata_csum every tree block ends with a
//! 4-byte CRC32C seeded by the owning inode, placed right after `eh_max` entries.
//!
//! [`encode`] builds a tree for the writer; [`walk`] reads one for the readers,
//! reporting runs and problems to a [`Visitor`].

use crate::checksum::crc32c_raw;
use crate::mapping::{MapBlock, MapProblem, Run, Visitor};
use crate::util::{get_u16le, get_u32le, hi32, lo32, put_u16le, put_u32le};

const EH_MAGIC: u16 = 0xf30a;
/// The header (`struct ext4_extent_header`) and each entry are 12 bytes.
const HEADER_LEN: usize = 12;
const ENTRY_LEN: usize = 12;
/// Entries in the inode's own 60-byte `i_block`.
const ROOT_ENTRIES: u16 = 4;
/// The kernel's EXT4_MAX_EXTENT_DEPTH.
pub(crate) const MAX_DEPTH: u16 = 5;
/// An `ee_len` above this marks an unwritten extent of `ee_len - 32768` blocks.
const UNWRITTEN_BIAS: u16 = 32768;
/// Logical block numbers are 32-bit: a tree covers file blocks 0..2^32.
pub(crate) const LOGICAL_LIMIT: u64 = 1 << 32;
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

/// An extent header (`struct ext4_extent_header`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub entries: u16,
    pub max: u16,
    pub depth: u16,
}

/// Decodes the header at the start of `node`; `None` when the magic is wrong.
pub(crate) fn decode_header(node: &[u8]) -> Option<Header> {
    (get_u16le(node, 0)? == EH_MAGIC).then_some(())?;
    Some(Header {
        entries: get_u16le(node, 2)?,
        max: get_u16le(node, 4)?,
        depth: get_u16le(node, 6)?,
    })
}

/// Decodes a leaf entry (`struct ext4_extent`) as a run: `ee_block`, `ee_len` (over
/// 32768: unwritten), `ee_start_hi:ee_start_lo`.
pub(crate) fn decode_leaf(e: &[u8]) -> Option<Run> {
    let raw_len = get_u16le(e, 4)?;
    let (len, init) = if raw_len > UNWRITTEN_BIAS {
        (raw_len - UNWRITTEN_BIAS, false)
    } else {
        (raw_len, true)
    };
    Some(Run {
        logical: u64::from(get_u32le(e, 0)?),
        physical: u64::from(get_u32le(e, 8)?) | (u64::from(get_u16le(e, 6)?) << 32),
        len: u64::from(len),
        init,
    })
}

/// Decodes an index entry (`struct ext4_extent_idx`): (`ei_block`, child block).
pub(crate) fn decode_index(e: &[u8]) -> Option<(u64, u64)> {
    Some((
        u64::from(get_u32le(e, 0)?),
        u64::from(get_u32le(e, 4)?) | (u64::from(get_u16le(e, 8)?) << 32),
    ))
}

/// A tree block's checksum tail, as stored and as computed (`None`: `eh_max` leaves
/// no room for it in the block).
pub(crate) fn block_checksum(block: &[u8], inode_seed: u32) -> Option<(u32, u32)> {
    let max = usize::from(get_u16le(block, 4)?);
    let t = HEADER_LEN + ENTRY_LEN * max;
    let stored = get_u32le(block, t)?;
    Some((stored, crc32c_raw(inode_seed, block.get(..t)?)))
}

/// Walks the extent tree whose root is the inode's `i_block`, with `block_size`-byte
/// tree blocks; `csum` is the inode's checksum seed when tree blocks carry checksums.
/// Entries must be sorted, inside their parent's range, and nodes one level apart;
/// what breaks that is a problem and the node is left there.
pub(crate) fn walk<V: Visitor>(
    i_block: &[u8],
    block_size: u32,
    csum: Option<u32>,
    v: &mut V,
) -> Result<(), V::Error> {
    let depth = get_u16le(i_block, 6).unwrap_or(0);
    if depth > MAX_DEPTH {
        v.problem(MapProblem::DepthTooLarge { depth });
        return Ok(());
    }
    let cap = u16::try_from((block_size as usize - HEADER_LEN) / ENTRY_LEN).unwrap_or(u16::MAX);
    let mut w = Walk { cap, csum, v };
    w.node(i_block, ROOT_ENTRIES, depth, 0, LOGICAL_LIMIT)
}

struct Walk<'v, V> {
    /// Entries a tree block has room for.
    cap: u16,
    csum: Option<u32>,
    v: &'v mut V,
}

impl<V: Visitor> Walk<'_, V> {
    /// One node (holding at most `cap` entries, at `depth`, covering file blocks
    /// `lo..hi`); a problem in its header or order leaves it there.
    fn node(
        &mut self,
        node: &[u8],
        cap: u16,
        depth: u16,
        lo: u64,
        hi: u64,
    ) -> Result<(), V::Error> {
        let Some(h) = decode_header(node) else {
            self.v.problem(MapProblem::Magic { depth });
            return Ok(());
        };
        if h.depth != depth {
            self.v.problem(MapProblem::DepthMismatch {
                depth,
                found: h.depth,
            });
            return Ok(());
        }
        if h.max > cap || h.entries > h.max {
            self.v.problem(MapProblem::TooManyEntries {
                entries: h.entries,
                max: h.max,
                cap,
            });
            return Ok(());
        }
        let mut prev_end = lo;
        let n = usize::from(h.entries);
        for i in 0..n {
            let e = HEADER_LEN + ENTRY_LEN * i;
            let Some(ent) = node.get(e..e + ENTRY_LEN) else {
                return Ok(());
            };
            let first = u64::from(get_u32le(ent, 0).unwrap_or(0));
            if first < prev_end || first >= hi {
                self.v.problem(MapProblem::OutOfOrder { first, lo, hi });
                return Ok(());
            }
            if depth == 0 {
                let Some(run) = decode_leaf(ent) else {
                    return Ok(());
                };
                if run.len == 0 {
                    self.v.problem(MapProblem::ZeroLength { first });
                    continue;
                }
                let end = first + run.len;
                if end > hi {
                    self.v
                        .problem(MapProblem::PastParent { first, end, lo, hi });
                }
                self.v.data(run);
                prev_end = end;
            } else {
                let child = decode_index(ent).map_or(0, |(_, c)| c);
                // The next entry's start ends this one's range.
                let next = if i + 1 < n {
                    node.get(e + ENTRY_LEN..e + ENTRY_LEN + 4)
                        .and_then(|b| get_u32le(b, 0))
                        .map_or(hi, u64::from)
                } else {
                    hi
                };
                prev_end = first + 1;
                if !self.v.enter(child, MapBlock::ExtentTree) {
                    continue;
                }
                let block = self.v.read(child)?;
                if let Some(seed) = self.csum {
                    match block_checksum(&block, seed) {
                        Some((stored, computed)) if stored != computed => {
                            self.v.problem(MapProblem::Checksum {
                                block: child,
                                stored,
                                computed,
                            });
                        }
                        Some(_) => {}
                        None => self.v.problem(MapProblem::NoChecksumRoom { block: child }),
                    }
                }
                self.node(&block, self.cap, depth - 1, first, next)?;
            }
        }
        Ok(())
    }
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
    use crate::test_data;

    /// Records what a walk reports, entering each block once.
    #[derive(Default)]
    struct Seen {
        img: Vec<u8>,
        entered: Vec<u64>,
        runs: Vec<Run>,
        problems: Vec<MapProblem>,
    }

    impl Visitor for Seen {
        type Error = ();
        fn enter(&mut self, nr: u64, _kind: MapBlock) -> bool {
            !self.entered.contains(&nr) && {
                self.entered.push(nr);
                true
            }
        }
        fn read(&mut self, nr: u64) -> Result<Vec<u8>, ()> {
            Ok(test_data::block(&self.img, nr).to_vec())
        }
        fn data(&mut self, run: Run) {
            self.runs.push(run);
        }
        fn problem(&mut self, p: MapProblem) {
            self.problems.push(p);
        }
    }

    /// test_data/ext4.img's /sparse: inode 135, slot 134 of the table at block 50; its
    /// tree block is 1130 (debugfs: "(ETB0):1130, (0):1125, (3):1126, ...").
    fn sparse_inode(img: &[u8]) -> (Vec<u8>, u32) {
        let at = 50 * 1024 + 134 * 256;
        let raw = &img[at..at + 256];
        let sb = crate::superblock::Superblock::decode(&img[1024..2048]).expect("sb");
        let seed = crate::checksum::inode_seed(sb.csum_seed().expect("csum"), 135, 0);
        (raw[0x28..0x64].to_vec(), seed)
    }

    #[test]
    fn walks_what_mke2fs_wrote() {
        let mut v = Seen {
            img: test_data::ext4().to_vec(),
            ..Seen::default()
        };
        let (i_block, seed) = sparse_inode(&v.img.clone());
        walk(&i_block, 1024, Some(seed), &mut v).expect("reads");
        assert_eq!(v.problems, []);
        assert_eq!(v.entered, [1130]);
        let want: Vec<(u64, u64)> = [
            (0, 1125),
            (3, 1126),
            (6, 1127),
            (9, 1128),
            (12, 1129),
            (15, 1131),
            (18, 1132),
            (21, 1133),
            (24, 1134),
            (27, 1135),
        ]
        .into();
        let got: Vec<(u64, u64)> = v.runs.iter().map(|r| (r.logical, r.physical)).collect();
        assert_eq!(got, want);
        assert!(v.runs.iter().all(|r| r.len == 1 && r.init));
    }

    #[test]
    fn each_broken_tree_is_named() {
        let pristine = test_data::ext4().to_vec();
        let (i_block, seed) = sparse_inode(&pristine);
        let leaf = 1130 * 1024;
        // (what to patch in the leaf block, the problem)
        let cases: [(usize, &[u8], MapProblem); 4] = [
            (0, &[0x0b, 0xf3], MapProblem::Magic { depth: 0 }),
            (6, &[1, 0], MapProblem::DepthMismatch { depth: 0, found: 1 }),
            // eh_entries 100 of eh_max 84 (1 KiB blocks hold 84 entries).
            (
                2,
                &[100, 0],
                MapProblem::TooManyEntries {
                    entries: 100,
                    max: 84,
                    cap: 84,
                },
            ),
            // The second entry (at 24) starts at file block 0, before the first ends.
            (
                24,
                &[0, 0, 0, 0],
                MapProblem::OutOfOrder {
                    first: 0,
                    lo: 0,
                    hi: 1 << 32,
                },
            ),
        ];
        for (off, bytes, want) in cases {
            let mut img = pristine.clone();
            img[leaf + off..leaf + off + bytes.len()].copy_from_slice(bytes);
            let mut v = Seen {
                img,
                ..Seen::default()
            };
            walk(&i_block, 1024, None, &mut v).expect("reads");
            assert_eq!(v.problems, [want], "patch at {off}");
        }
        // The same leaf with its checksum seed: a patched byte breaks its tail.
        let mut img = pristine.clone();
        img[leaf + 12 + 4] = 2; // first extent 2 blocks long
        let mut v = Seen {
            img,
            ..Seen::default()
        };
        walk(&i_block, 1024, Some(seed), &mut v).expect("reads");
        assert!(
            matches!(v.problems[..], [MapProblem::Checksum { block: 1130, .. }]),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn a_tree_pointing_at_itself_ends() {
        let mut img = test_data::ext4().to_vec();
        let (mut i_block, _) = sparse_inode(&img);
        // Make the leaf an index block (depth 1 below a depth-2 root) pointing at itself.
        i_block[6] = 2;
        let leaf = 1130 * 1024;
        img[leaf + 6] = 1;
        img[leaf + 2] = 1;
        img[leaf + 12..leaf + 24].copy_from_slice(&[0, 0, 0, 0, 0x6a, 0x04, 0, 0, 0, 0, 0, 0]);
        let mut v = Seen {
            img,
            ..Seen::default()
        };
        walk(&i_block, 1024, None, &mut v).expect("reads");
        assert_eq!(v.entered, [1130]);
        assert!(v.runs.is_empty());
    }

    #[test]
    fn the_root_depth_is_bounded_and_unwritten_extents_are_flagged() {
        let mut i_block = [0u8; 60];
        header(&mut i_block, 1, 4, 6);
        let mut v = Seen::default();
        walk(&i_block, 4096, None, &mut v).expect("reads");
        assert_eq!(v.problems, [MapProblem::DepthTooLarge { depth: 6 }]);
        let mut i_block = [0u8; 60];
        header(&mut i_block, 1, 4, 0);
        leaf_entry(
            &mut i_block[12..],
            &Extent {
                logical: 5,
                physical: 900,
                len: 32768 + 3,
            },
        );
        let mut v = Seen::default();
        walk(&i_block, 4096, None, &mut v).expect("reads");
        assert_eq!(
            v.runs,
            [Run {
                logical: 5,
                physical: 900,
                len: 3,
                init: false
            }]
        );
    }

    #[test]
    fn what_is_encoded_walks_back_to_the_same_runs() {
        let ext = runs(340 * 5 + 1);
        let mut next = 100;
        let t = encode(&ext, 4096, Some(7), &mut || {
            next += 1;
            Some(next)
        })
        .expect("encodes");
        // A 4 KiB "image" holding just the tree blocks, at their numbers.
        struct Tree(Vec<(u64, Vec<u8>)>, Vec<Run>, Vec<MapProblem>);
        impl Visitor for Tree {
            type Error = ();
            fn enter(&mut self, _nr: u64, _kind: MapBlock) -> bool {
                true
            }
            fn read(&mut self, nr: u64) -> Result<Vec<u8>, ()> {
                self.0
                    .iter()
                    .find(|(n, _)| *n == nr)
                    .map(|(_, b)| b.clone())
                    .ok_or(())
            }
            fn data(&mut self, run: Run) {
                self.1.push(run);
            }
            fn problem(&mut self, p: MapProblem) {
                self.2.push(p);
            }
        }
        let mut v = Tree(t.blocks, Vec::new(), Vec::new());
        walk(&t.i_block, 4096, Some(7), &mut v).expect("reads");
        assert_eq!(v.2, []);
        let back: Vec<Extent> =
            v.1.iter()
                .map(|r| Extent {
                    logical: r.logical as u32,
                    physical: r.physical,
                    len: r.len as u16,
                })
                .collect();
        assert_eq!(back, ext);
    }

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
