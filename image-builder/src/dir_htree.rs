//! Hashed directory indexes (htree, `dir_index`; Documentation/filesystems/ext4/
//! directory.rst, "Hash Tree Directories").
//!
//! A directory over one block is written as an index: block 0 is the dx_root (fake `.`
//! and `..` entries, then `dx_root_info` and the `(hash, block)` table), the other blocks
//! are ordinary leaf blocks holding the names sorted by hash, one hash range each. Past
//! what one root can index (about 500 leaves with 4 KiB blocks), a second level of
//! dx_node blocks is used; two levels hold millions of names, and more would need the
//! large_dir feature that 2.6 kernels lack. With metadata_csum each index block ends in
//! a `dx_tail` checksum and each leaf in the usual dirent tail.
//!
//! The hash is half-MD4 (`s_def_hash_version` 1) over the name, seeded by `s_hash_seed`,
//! with name bytes read as signed chars (`EXT2_FLAGS_SIGNED_HASH`, x86's native choice,
//! which old i386 kernels use whatever the flag says), as the kernel's `ext4fs_dirhash`
//! computes it; the low bit is always clear, and marks a leaf that continues a run of
//! equal hashes from the previous one.
//!
//! [`blocks`] writes an index for the writer; [`count_offset`] and [`index_checksum`]
//! read an index block's checksum for `check` (the names themselves are read as linear
//! blocks, since an index block looks like one empty entry).

use crate::checksum::crc32c_raw;
use crate::dir_entry::{self, DirEntry, TAIL_LEN};
use crate::util::{get_u16le, get_u32le, put_u16le, put_u32le};

/// `dx_root`: the `dx_root_info` follows the fake `.` and `..` entries at 0x18; its
/// `info_length` byte (at 0x1d) says how long it is, and the count/limit follows it.
const DX_ROOT_INFO: usize = 0x18;
const DX_ROOT_INFO_LENGTH: usize = 0x1d;
/// `dx_node`: one fake entry spans the block, then the count/limit at 8.
const DX_NODE_COUNTLIMIT: usize = 8;

/// `dx_root_info.hash_version`: half MD4 (signedness comes from the superblock's flags).
const DX_HASH_HALF_MD4: u8 = 1;

/// The directory hash of `name`: half-MD4 over 32-byte chunks, signed bytes.
pub(crate) fn name_hash(name: &[u8], seed: &[u8; 16]) -> u32 {
    let mut buf: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let seed_words: [u32; 4] = std::array::from_fn(|i| {
        u32::from_le_bytes([
            seed[4 * i],
            seed[4 * i + 1],
            seed[4 * i + 2],
            seed[4 * i + 3],
        ])
    });
    if seed_words.iter().any(|&w| w != 0) {
        buf = seed_words;
    }
    let mut p = name;
    let mut len = name.len() as i64;
    loop {
        let input = str2hashbuf(p, len, 8);
        half_md4_transform(&mut buf, &input);
        len -= 32;
        if len <= 0 {
            break;
        }
        p = &p[32..];
    }
    let hash = buf[1] & !1;
    // 0xfffffffe is the end-of-directory marker of 32-bit hashes.
    if hash == 0x7fff_ffff << 1 {
        (0x7fff_ffff - 1) << 1
    } else {
        hash
    }
}

/// Packs up to `num` words from the message, padded with the length, as the kernel's
/// `str2hashbuf_signed`: each byte is sign-extended before it is added.
fn str2hashbuf(msg: &[u8], len: i64, num: usize) -> [u32; 8] {
    let l = len.max(0) as u32;
    let mut pad = l | (l << 8);
    pad |= pad << 16;
    let mut val = pad;
    let take = (len.max(0) as usize).min(num * 4).min(msg.len());
    let mut out = [pad; 8];
    let mut k = 0;
    for (i, &c) in msg[..take].iter().enumerate() {
        val = (i32::from(c as i8) as u32).wrapping_add(val << 8);
        if i % 4 == 3 {
            out[k] = val;
            k += 1;
            val = pad;
        }
    }
    if k < num {
        out[k] = val;
    }
    out
}

fn half_md4_transform(buf: &mut [u32; 4], x: &[u32; 8]) {
    const K2: u32 = 0x5a82_7999;
    const K3: u32 = 0x6ed9_eba1;
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    let (mut a, mut b, mut c, mut d) = (buf[0], buf[1], buf[2], buf[3]);
    macro_rules! round {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a
                .wrapping_add($f($b, $c, $d))
                .wrapping_add($x)
                .rotate_left($s);
        };
    }
    round!(f, a, b, c, d, x[0], 3);
    round!(f, d, a, b, c, x[1], 7);
    round!(f, c, d, a, b, x[2], 11);
    round!(f, b, c, d, a, x[3], 19);
    round!(f, a, b, c, d, x[4], 3);
    round!(f, d, a, b, c, x[5], 7);
    round!(f, c, d, a, b, x[6], 11);
    round!(f, b, c, d, a, x[7], 19);
    round!(g, a, b, c, d, x[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, x[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, x[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, x[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, x[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, x[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, x[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, x[6].wrapping_add(K2), 13);
    round!(h, a, b, c, d, x[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, x[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, x[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, x[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, x[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, x[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, x[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, x[4].wrapping_add(K3), 15);
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

/// Index entries a root block holds.
fn root_limit(bs: usize, csum: bool) -> usize {
    (bs - 32 - if csum { 8 } else { 0 }) / 8
}

/// Index entries a dx_node block holds.
fn node_limit(bs: usize, csum: bool) -> usize {
    (bs - 8 - if csum { 8 } else { 0 }) / 8
}

/// Blocks an indexed directory of `leaves` leaf blocks takes in all.
pub(crate) fn total_blocks(leaves: u64, bs: usize, csum: bool) -> u64 {
    let rl = root_limit(bs, csum) as u64;
    let nodes = if leaves <= rl {
        0
    } else {
        leaves.div_ceil(node_limit(bs, csum) as u64)
    };
    1 + nodes + leaves
}

/// Lays out an indexed directory: `entries` are the names (without `.` and `..`).
/// Returns every block in logical order, leaves already sealed when `inode_seed` is given
/// (metadata_csum). `None` when the names need more than two index levels.
pub(crate) fn blocks(
    entries: &[DirEntry<'_>],
    dir_ino: u32,
    parent_ino: u32,
    bs: usize,
    hash_seed: &[u8; 16],
    inode_seed: Option<u32>,
) -> Option<Vec<Vec<u8>>> {
    let csum = inode_seed.is_some();
    let mut hashed: Vec<(u32, &DirEntry<'_>)> = entries
        .iter()
        .map(|e| (name_hash(e.name, hash_seed), e))
        .collect();
    hashed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(b.1.name)));

    // Leaves: fill each in hash order; an index hash is its first name's hash, with the
    // low bit set when that hash continues from the previous leaf.
    let usable = bs - if csum { TAIL_LEN } else { 0 };
    let mut leaves: Vec<(u32, Vec<DirEntry<'_>>)> = Vec::new();
    let mut used = 0usize;
    let mut prev_hash: Option<u32> = None;
    for (h, e) in &hashed {
        let len = dir_entry::entry_len(e.name.len());
        if leaves.is_empty() || used + len > usable {
            let key = if prev_hash == Some(*h) { h | 1 } else { *h };
            leaves.push((key, Vec::new()));
            used = 0;
        }
        leaves.last_mut()?.1.push((*e).clone());
        used += len;
        prev_hash = Some(*h);
    }
    let rl = root_limit(bs, csum);
    let nl = node_limit(bs, csum);
    let two_levels = leaves.len() > rl;
    if two_levels && leaves.len().div_ceil(nl) > rl {
        return None;
    }
    // Logical block numbers: root 0, then index nodes, then leaves.
    let node_count = if two_levels {
        leaves.len().div_ceil(nl)
    } else {
        0
    };
    let first_leaf = 1 + node_count;
    let mut out = Vec::with_capacity(first_leaf + leaves.len());

    // Root.
    let mut root = vec![0u8; bs];
    put_u32le(&mut root, 0, dir_ino);
    put_u16le(&mut root, 4, 12);
    root[6] = 1;
    root[7] = dir_entry::FT_DIR;
    root[8] = b'.';
    put_u32le(&mut root, 12, parent_ino);
    put_u16le(&mut root, 16, (bs - 12) as u16);
    root[18] = 2;
    root[19] = dir_entry::FT_DIR;
    root[20] = b'.';
    root[21] = b'.';
    root[24 + 4] = DX_HASH_HALF_MD4;
    root[24 + 5] = 8; // info_length
    root[24 + 6] = u8::from(two_levels); // indirect_levels
    let top: Vec<(u32, u32)> = if two_levels {
        leaves
            .chunks(nl)
            .enumerate()
            .map(|(i, c)| (c[0].0, (1 + i) as u32))
            .collect()
    } else {
        leaves
            .iter()
            .enumerate()
            .map(|(i, l)| (l.0, (first_leaf + i) as u32))
            .collect()
    };
    write_index(&mut root, 32, rl, &top);
    if let Some(seed) = inode_seed {
        seal_index(&mut root, 32, rl, top.len(), seed);
    }
    out.push(root);

    // Index nodes.
    if two_levels {
        for (ci, chunk) in leaves.chunks(nl).enumerate() {
            let mut node = vec![0u8; bs];
            // A fake empty dirent spanning the block, so old code reads it as a directory.
            put_u16le(&mut node, 4, bs as u16);
            let table: Vec<(u32, u32)> = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| (l.0, (first_leaf + ci * nl + i) as u32))
                .collect();
            write_index(&mut node, 8, nl, &table);
            if let Some(seed) = inode_seed {
                seal_index(&mut node, 8, nl, table.len(), seed);
            }
            out.push(node);
        }
    }

    // Leaves.
    for (_, names) in &leaves {
        let mut b = dir_entry::linear_blocks(names, bs, csum).pop()?;
        if let Some(seed) = inode_seed {
            dir_entry::seal(&mut b, seed);
        }
        out.push(b);
    }
    Some(out)
}

/// Writes a `dx_countlimit` at `at` and the table after it; the first entry's hash
/// field is the count/limit itself (its hash is implied to be 0).
fn write_index(b: &mut [u8], at: usize, limit: usize, table: &[(u32, u32)]) {
    put_u16le(b, at, limit as u16);
    put_u16le(b, at + 2, table.len() as u16);
    for (i, &(hash, block)) in table.iter().enumerate() {
        if i > 0 {
            put_u32le(b, at + 8 * i, hash);
        }
        put_u32le(b, at + 8 * i + 4, block);
    }
}

/// The `dx_tail` checksum: over the block up to the end of the used entries, then the
/// tail's reserved word and a zero checksum (the kernel's `ext4_dx_csum`).
fn seal_index(b: &mut [u8], at: usize, limit: usize, count: usize, inode_seed: u32) {
    let tail = at + 8 * limit;
    b[tail..tail + 8].fill(0);
    let c = dx_csum(b, at, limit, count, inode_seed).unwrap_or(0);
    put_u32le(b, tail + 4, c);
}

/// `ext4_dx_csum` over the block whose count/limit is at `at`; `None` when the table or
/// its tail would run past the block.
fn dx_csum(b: &[u8], at: usize, limit: usize, count: usize, inode_seed: u32) -> Option<u32> {
    let tail = at + 8 * limit;
    let c = crc32c_raw(inode_seed, b.get(..at + 8 * count)?);
    let c = crc32c_raw(c, b.get(tail..tail + 4)?);
    Some(crc32c_raw(c, &[0; 4]))
}

/// Where the count/limit of an index block sits, judged from its first entry as the
/// kernel does: a fake entry spanning the block is a `dx_node`; in a directory's first
/// block, a `.` of rec_len 12 is the `dx_root`. `None`: not an index block.
pub(crate) fn count_offset(block: &[u8], first_block: bool) -> Option<usize> {
    let first_rec = get_u16le(block, 4).map(|r| dir_entry::rec_len(r, block.len()));
    if first_rec == Some(block.len()) {
        Some(DX_NODE_COUNTLIMIT)
    } else if first_block && first_rec == Some(12) {
        Some(DX_ROOT_INFO + usize::from(block.get(DX_ROOT_INFO_LENGTH).copied().unwrap_or(8)))
    } else {
        None
    }
}

/// An index block's `dx_tail` checksum, as stored and as computed, for the count/limit
/// at `at`; `None` when the table does not fit the block.
pub(crate) fn index_checksum(block: &[u8], at: usize, inode_seed: u32) -> Option<(u32, u32)> {
    let limit = usize::from(get_u16le(block, at)?);
    let count = usize::from(get_u16le(block, at + 2)?);
    let stored = get_u32le(block, at + 8 * limit + 4)?;
    Some((stored, dx_csum(block, at, limit, count, inode_seed)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;

    #[test]
    fn reads_the_index_e2fsck_wrote() {
        // test_data/ext4.img's /big (inode 13, slot 12): e2fsck -D indexed it; its
        // blocks are 1123-1124 and 1137-1138 (debugfs "stat /big"), the root first.
        let img = test_data::ext4();
        let sb = crate::superblock::Superblock::decode(&img[1024..2048]).expect("sb");
        let seed = crate::checksum::inode_seed(sb.csum_seed().expect("csum"), 13, 0);
        let root = test_data::block(img, 1123);
        let at = count_offset(root, true).expect("a dx_root");
        assert_eq!(at, 0x20);
        let (stored, computed) = index_checksum(root, at, seed).expect("fits");
        assert_eq!(stored, computed);
        // The same block is no root when it is not the first, and leaves are no index.
        assert_eq!(count_offset(root, false), None);
        assert_eq!(count_offset(test_data::block(img, 1124), false), None);
        // A count over the limit runs past the block.
        let mut bad = root.to_vec();
        put_u16le(&mut bad, at, 200);
        assert_eq!(index_checksum(&bad, at, seed), None);
        let mut bad = root.to_vec();
        bad[at + 4] ^= 1; // the first entry's block number
        let (stored, computed) = index_checksum(&bad, at, seed).expect("fits");
        assert_ne!(stored, computed);
    }

    #[test]
    fn what_is_indexed_verifies() {
        let names: Vec<Vec<u8>> = (0..400)
            .map(|i| format!("file-{i:04}").into_bytes())
            .collect();
        let list: Vec<DirEntry<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| DirEntry {
                ino: 12 + i as u32,
                file_type: dir_entry::FT_REG,
                name: n,
            })
            .collect();
        let out = blocks(&list, 11, 2, 1024, &[3; 16], Some(77)).expect("indexes");
        let at = count_offset(&out[0], true).expect("root");
        let (stored, computed) = index_checksum(&out[0], at, 77).expect("fits");
        assert_eq!(stored, computed);
    }

    #[test]
    fn hashes_have_the_low_bit_clear_and_depend_on_the_seed() {
        let a = name_hash(b"hello", &[0; 16]);
        let b = name_hash(b"hello", &[1; 16]);
        assert_eq!(a & 1, 0);
        assert_ne!(a, b);
        assert_ne!(
            name_hash(b"hello1", &[0; 16]),
            name_hash(b"hello2", &[0; 16])
        );
        // Names over 32 bytes hash every chunk.
        let long_a = [b'x'; 40];
        let mut long_b = long_a;
        long_b[39] = b'y';
        assert_ne!(name_hash(&long_a, &[0; 16]), name_hash(&long_b, &[0; 16]));
    }
}
