//! Block maps: how ext2 and ext3 map a file's blocks (`i_block[0..15]`,
//! Documentation/filesystems/ext4/blockmap.rst).
//!
//! Twelve direct pointers, then one indirect block (IND), one double-indirect (DIND)
//! and one triple-indirect (TIND), each holding block size / 4 pointers. A zero pointer
//! is a hole; an indirect block whose pointers are all holes is not allocated at all.
//! Indirect blocks count in `i_blocks`.

use std::collections::BTreeMap;

use crate::util::put_u32le;

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
