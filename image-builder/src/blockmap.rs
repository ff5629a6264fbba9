//! Block maps: how ext2 and ext3 map a file's blocks (`i_block[0..15]`,
//! Documentation/filesystems/ext4/blockmap.rst).
//!
//! Twelve direct pointers, then one indirect block (IND), one double-indirect (DIND)
//! and one triple-indirect (TIND), each holding block size / 4 pointers. A zero pointer
//! is a hole; an indirect block whose pointers are all holes is not allocated at all.
//! Indirect blocks count in `i_blocks`.
//!
//! [`BlockMapBuilder`] encodes a map for the writer; [`walk`] reads one for the
//! readers, reporting runs to a [`Visitor`].

use std::collections::BTreeMap;

use crate::mapping::{MapBlock, Run, Visitor};
use crate::util::{get_u32le, put_u32le};

/// Direct pointers in `i_block`, before the IND, DIND and TIND slots.
const DIRECT: usize = 12;

/// One level of the map: pointers by slot, and the child blocks below them.
#[derive(Default)]
struct Node {
    slots: BTreeMap<u32, u32>,
    children: BTreeMap<u32, Node>,
}

impl Node {
    fn child(&mut self, slot: u32) -> &mut Node {
        self.children.entry(slot).or_default()
    }
}

/// A block map being filled in.
pub(crate) struct BlockMapBuilder {
    per_block: u64,
    direct: [u32; 12],
    ind: Option<Node>,
    dind: Option<Node>,
    tind: Option<Node>,
}

/// An encoded block map: `i_block` and the indirect blocks to write.
pub(crate) struct EncodedMap {
    pub i_block: [u8; 60],
    pub blocks: Vec<(u64, Vec<u8>)>,
}

impl BlockMapBuilder {
    pub(crate) fn new(block_size: u32) -> BlockMapBuilder {
        BlockMapBuilder {
            per_block: u64::from(block_size / 4),
            direct: [0; 12],
            ind: None,
            dind: None,
            tind: None,
        }
    }

    /// Maps file block `logical` to `physical` (below 2^32: ext2/ext3 are 32-bit).
    pub(crate) fn set(&mut self, logical: u64, physical: u32) {
        let p = self.per_block;
        if logical < 12 {
            self.direct[logical as usize] = physical;
            return;
        }
        let l = logical - 12;
        if l < p {
            self.ind
                .get_or_insert_with(Node::default)
                .slots
                .insert(l as u32, physical);
            return;
        }
        let l = l - p;
        if l < p * p {
            let n = self
                .dind
                .get_or_insert_with(Node::default)
                .child((l / p) as u32);
            n.slots.insert((l % p) as u32, physical);
            return;
        }
        let l = l - p * p;
        let top = self.tind.get_or_insert_with(Node::default);
        let mid = top.child((l / (p * p)) as u32);
        let leaf = mid.child(((l / p) % p) as u32);
        leaf.slots.insert((l % p) as u32, physical);
    }

    /// Indirect blocks needed for a file of `n` blocks with no holes (for sizing).
    pub(crate) fn indirect_blocks(n: u64, block_size: u32) -> u64 {
        let p = u64::from(block_size / 4);
        if n <= 12 {
            return 0;
        }
        let mut rest = n - 12;
        let mut total = 1; // IND
        rest = rest.saturating_sub(p);
        if rest > 0 {
            let leaves = rest.min(p * p).div_ceil(p);
            total += 1 + leaves;
            rest = rest.saturating_sub(p * p);
        }
        if rest > 0 {
            let leaves = rest.div_ceil(p);
            let mids = leaves.div_ceil(p);
            total += 1 + mids + leaves;
        }
        total
    }

    /// Allocates the indirect blocks (through `alloc`) and encodes everything. `None`
    /// when `alloc` runs out.
    pub(crate) fn encode(
        self,
        block_size: u32,
        alloc: &mut dyn FnMut() -> Option<u64>,
    ) -> Option<EncodedMap> {
        let mut i_block = [0u8; 60];
        for (i, p) in self.direct.iter().enumerate() {
            put_u32le(&mut i_block, 4 * i, *p);
        }
        let mut blocks = Vec::new();
        for (slot, node) in [(12usize, self.ind), (13, self.dind), (14, self.tind)] {
            if let Some(node) = node {
                let nr = write_node(node, block_size, alloc, &mut blocks)?;
                put_u32le(&mut i_block, 4 * slot, u32::try_from(nr).ok()?);
            }
        }
        Some(EncodedMap { i_block, blocks })
    }
}

/// File blocks a block map of `block_size`-byte blocks can address: 12 direct, then
/// p, p² and p³ through IND, DIND and TIND (p = block size / 4).
pub(crate) fn max_blocks(block_size: u32) -> u64 {
    let p = u64::from(block_size / 4);
    DIRECT as u64 + p + p * p + p * p * p
}

/// Walks the block map in `i_block` (`block_size`-byte indirect blocks): every
/// non-zero pointer is a one-block run, in file order; indirect blocks are read when
/// the visitor enters them.
pub(crate) fn walk<V: Visitor>(i_block: &[u8], block_size: u32, v: &mut V) -> Result<(), V::Error> {
    let per = u64::from(block_size / 4);
    let ptr = |i: usize| u64::from(get_u32le(i_block, 4 * i).unwrap_or(0));
    for i in 0..DIRECT {
        if ptr(i) != 0 {
            v.data(Run {
                logical: i as u64,
                physical: ptr(i),
                len: 1,
                init: true,
            });
        }
    }
    let mut base = DIRECT as u64;
    for (slot, level) in [(DIRECT, 1u32), (DIRECT + 1, 2), (DIRECT + 2, 3)] {
        if ptr(slot) != 0 {
            indirect(ptr(slot), level, base, per, v)?;
        }
        base += per.pow(level);
    }
    Ok(())
}

/// One indirect block at `level` (1 IND .. 3 TIND) whose first pointer maps file block
/// `base`.
fn indirect<V: Visitor>(
    nr: u64,
    level: u32,
    base: u64,
    per: u64,
    v: &mut V,
) -> Result<(), V::Error> {
    if !v.enter(nr, MapBlock::Indirect(level)) {
        return Ok(());
    }
    let block = v.read(nr)?;
    let span = per.pow(level - 1);
    for j in 0..per {
        let p = u64::from(get_u32le(&block, (4 * j) as usize).unwrap_or(0));
        if p == 0 {
            continue;
        }
        if v.gave_up() {
            return Ok(());
        }
        let logical = base + j * span;
        if level == 1 {
            v.data(Run {
                logical,
                physical: p,
                len: 1,
                init: true,
            });
        } else {
            indirect(p, level - 1, logical, per, v)?;
        }
    }
    Ok(())
}

/// Allocates `node`'s block (before its children, so a map reads forwards), fills it
/// and returns its number.
fn write_node(
    node: Node,
    block_size: u32,
    alloc: &mut dyn FnMut() -> Option<u64>,
    out: &mut Vec<(u64, Vec<u8>)>,
) -> Option<u64> {
    let nr = alloc()?;
    let idx = out.len();
    out.push((nr, Vec::new()));
    let mut b = vec![0u8; block_size as usize];
    for (slot, p) in &node.slots {
        put_u32le(&mut b, 4 * *slot as usize, *p);
    }
    for (slot, child) in node.children {
        let c = write_node(child, block_size, alloc, out)?;
        put_u32le(&mut b, 4 * slot as usize, u32::try_from(c).ok()?);
    }
    out[idx].1 = b;
    Some(nr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MapProblem;
    use crate::test_data;

    /// Records runs, entering each block once, reading from `img` (1 KiB blocks).
    struct Seen<'a> {
        img: &'a [u8],
        entered: Vec<(u64, MapBlock)>,
        runs: Vec<Run>,
    }

    impl Visitor for Seen<'_> {
        type Error = ();
        fn enter(&mut self, nr: u64, kind: MapBlock) -> bool {
            !self.entered.iter().any(|(n, _)| *n == nr) && {
                self.entered.push((nr, kind));
                true
            }
        }
        fn read(&mut self, nr: u64) -> Result<Vec<u8>, ()> {
            Ok(test_data::block(self.img, nr).to_vec())
        }
        fn data(&mut self, run: Run) {
            self.runs.push(run);
        }
        fn problem(&mut self, p: MapProblem) {
            panic!("a block map walk has no problems of its own: {p}")
        }
    }

    #[test]
    fn walks_what_mke2fs_wrote() {
        // test_data/ext2.img: /big.bin is inode 12 (slot 11 of the table, 128-byte
        // inodes), 300 blocks: 12 direct, 256 through IND, 32 through DIND.
        let img = test_data::ext2();
        let sb = crate::superblock::Superblock::decode(&img[1024..2048]).expect("sb");
        let gd = crate::group_desc::decode(&test_data::block(img, 2)[..32], false).expect("gd");
        let at = (gd.inode_table * 1024 + 11 * u64::from(sb.inode_size)) as usize;
        let ino = crate::inode::Inode::decode(&img[at..at + 128]).expect("inode");
        assert_eq!(ino.size, 300 * 1024);
        let mut v = Seen {
            img,
            entered: Vec::new(),
            runs: Vec::new(),
        };
        walk(&ino.block, 1024, &mut v).expect("reads");
        let logical: Vec<u64> = v.runs.iter().map(|r| r.logical).collect();
        assert_eq!(logical, (0..300).collect::<Vec<u64>>());
        let kinds: Vec<MapBlock> = v.entered.iter().map(|(_, k)| *k).collect();
        assert_eq!(
            kinds,
            [
                MapBlock::Indirect(1),
                MapBlock::Indirect(2),
                MapBlock::Indirect(1)
            ]
        );
        // i_blocks: 300 data blocks and 3 mapping blocks, in 512-byte sectors.
        assert_eq!(ino.blocks(false), 2 * 303);
        // Each data block holds 'b's (make.sh), so the map points at the data.
        assert!(
            v.runs
                .iter()
                .all(|r| test_data::block(img, r.physical).iter().all(|&c| c == b'b'))
        );
    }

    #[test]
    fn what_is_encoded_walks_back() {
        let mut m = BlockMapBuilder::new(1024);
        let want: Vec<u64> = vec![0, 11, 12, 12 + 255, 12 + 256, 12 + 256 + 65536 + 3];
        for (i, &l) in want.iter().enumerate() {
            m.set(l, 1000 + i as u32);
        }
        let mut img = vec![0u8; 2048 * 1024];
        let mut next = 1;
        let enc = m
            .encode(1024, &mut || {
                next += 1;
                Some(next)
            })
            .expect("encodes");
        for (nr, b) in &enc.blocks {
            img[*nr as usize * 1024..(*nr as usize + 1) * 1024].copy_from_slice(b);
        }
        let mut v = Seen {
            img: &img,
            entered: Vec::new(),
            runs: Vec::new(),
        };
        walk(&enc.i_block, 1024, &mut v).expect("reads");
        let got: Vec<(u64, u64)> = v.runs.iter().map(|r| (r.logical, r.physical)).collect();
        let expect: Vec<(u64, u64)> = want
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, 1000 + i as u64))
            .collect();
        assert_eq!(got, expect);
        assert_eq!(max_blocks(1024), 12 + 256 + 65536 + 16_777_216);
    }

    #[test]
    fn a_map_pointing_at_itself_ends() {
        let mut img = vec![0u8; 8 * 1024];
        // DIND at block 5 whose first pointer is block 5 again.
        img[5 * 1024..5 * 1024 + 4].copy_from_slice(&5u32.to_le_bytes());
        let mut i_block = [0u8; 60];
        i_block[4 * 13..4 * 13 + 4].copy_from_slice(&5u32.to_le_bytes());
        let mut v = Seen {
            img: &img,
            entered: Vec::new(),
            runs: Vec::new(),
        };
        walk(&i_block, 1024, &mut v).expect("reads");
        assert_eq!(v.entered, [(5, MapBlock::Indirect(2))]);
        assert!(v.runs.is_empty());
    }

    #[test]
    fn indirect_counts_match_what_encode_allocates() {
        for n in [
            1u64,
            12,
            13,
            12 + 1024,
            12 + 1025,
            12 + 1024 + 1024 * 1024 + 1,
        ] {
            let mut m = BlockMapBuilder::new(4096);
            for l in 0..n {
                m.set(l, 7);
            }
            let mut count = 0;
            let enc = m.encode(4096, &mut || {
                count += 1;
                Some(count)
            });
            assert!(enc.is_some());
            assert_eq!(count, BlockMapBuilder::indirect_blocks(n, 4096), "n = {n}");
        }
    }

    #[test]
    fn holes_allocate_no_indirect_blocks() {
        let mut m = BlockMapBuilder::new(1024);
        m.set(0, 5);
        m.set(12 + 256 + 300, 9); // in the DIND range only
        let mut count = 0;
        let enc = m
            .encode(1024, &mut || {
                count += 1;
                Some(100 + count)
            })
            .expect("encodes");
        assert_eq!(count, 2, "DIND and one leaf, no IND");
        assert_eq!(&enc.i_block[48..52], &[0, 0, 0, 0]);
    }
}
