//! Directory blocks in the linear format (`struct ext4_dir_entry_2`,
//! Documentation/filesystems/ext4/directory.rst).
//!
//! Each entry is inode (4), rec_len (2), name_len (1), file_type (1) and the name,
//! padded to 4 bytes; the last entry of a block stretches its rec_len to the block's
//! end. With metadata_csum each block ends in a 12-byte fake entry (inode 0, rec_len
//! 12, name_len 0, type 0xDE) holding the CRC32C of the block before it, seeded by the
//! directory's inode. `.` and `..` open the first block.

use crate::checksum::crc32c_raw;
use crate::util::{put_u16le, put_u32le};

/// `file_type` values of directory entries.
pub(crate) const FT_REG: u8 = 1;
pub(crate) const FT_DIR: u8 = 2;
pub(crate) const FT_CHR: u8 = 3;
pub(crate) const FT_BLK: u8 = 4;
pub(crate) const FT_FIFO: u8 = 5;
pub(crate) const FT_SYMLINK: u8 = 7;

/// Size of the checksum tail entry.
pub(crate) const TAIL_LEN: usize = 12;

/// One name in a directory.
#[derive(Clone, Debug)]
pub(crate) struct DirEntry<'a> {
    pub ino: u32,
    pub file_type: u8,
    pub name: &'a [u8],
}

/// Bytes an entry with a name of `len` bytes takes (rounded to 4).
pub(crate) fn entry_len(len: usize) -> usize {
    (8 + len).div_ceil(4) * 4
}

/// Lays `entries` (with `.` and `..` first) into blocks. `tail` reserves room for the
/// checksum entry. Returns the blocks without checksums (see [`seal`]).
pub(crate) fn linear_blocks(
    entries: &[DirEntry<'_>],
    block_size: usize,
    tail: bool,
) -> Vec<Vec<u8>> {
    let usable = block_size - if tail { TAIL_LEN } else { 0 };
    let mut blocks = Vec::new();
    let mut cur = vec![0u8; block_size];
    let mut used = 0usize;
    let mut last_off: Option<usize> = None;
    for e in entries {
        let len = entry_len(e.name.len());
        if used + len > usable {
            finish_block(&mut cur, last_off, used, usable);
            blocks.push(std::mem::replace(&mut cur, vec![0u8; block_size]));
            used = 0;
        }
        put_u32le(&mut cur, used, e.ino);
        put_u16le(&mut cur, used + 4, len as u16);
        cur[used + 6] = e.name.len() as u8;
        cur[used + 7] = e.file_type;
        cur[used + 8..used + 8 + e.name.len()].copy_from_slice(e.name);
        last_off = Some(used);
        used += len;
    }
    finish_block(&mut cur, last_off, used, usable);
    blocks.push(cur);
    blocks
}

/// An empty directory block (one unused entry spanning it), as lost+found's spare
/// blocks are.
pub(crate) fn empty_block(block_size: usize, tail: bool) -> Vec<u8> {
    let mut b = vec![0u8; block_size];
    finish_block(
        &mut b,
        None,
        0,
        block_size - if tail { TAIL_LEN } else { 0 },
    );
    b
}

/// Stretches the last entry to the end of the usable area (or writes an empty entry
/// spanning a block that has none).
fn finish_block(b: &mut [u8], last_off: Option<usize>, used: usize, usable: usize) {
    match last_off {
        Some(off) => {
            let rec = usable - off;
            put_u16le(b, off + 4, rec as u16);
        }
        None => {
            debug_assert_eq!(used, 0);
            put_u32le(b, 0, 0);
            put_u16le(b, 4, usable as u16);
        }
    }
}

/// Writes the checksum tail of a leaf block (metadata_csum), seeded by the directory's
/// inode seed.
pub(crate) fn seal(b: &mut [u8], inode_seed: u32) {
    let n = b.len();
    let t = n - TAIL_LEN;
    b[t..].fill(0);
    put_u16le(b, t + 4, TAIL_LEN as u16);
    b[t + 7] = 0xde;
    let crc = crc32c_raw(inode_seed, &b[..t]);
    put_u32le(b, t + 8, crc);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec_lens(b: &[u8]) -> Vec<usize> {
        let mut v = Vec::new();
        let mut off = 0;
        while off < b.len() {
            let r = usize::from(u16::from_le_bytes([b[off + 4], b[off + 5]]));
            assert!(r >= 8, "rec_len {r} at offset {off} breaks the chain");
            v.push(r);
            off += r;
        }
        v
    }

    #[test]
    fn rec_lens_cover_each_block_exactly() {
        let names: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("file-{i:05}-with-a-longer-name").into_bytes())
            .collect();
        let entries: Vec<DirEntry<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| DirEntry {
                ino: 12 + i as u32,
                file_type: FT_REG,
                name: n,
            })
            .collect();
        for tail in [false, true] {
            let mut blocks = linear_blocks(&entries, 1024, tail);
            assert!(blocks.len() > 5);
            for b in &mut blocks {
                if tail {
                    seal(b, 7);
                }
                assert_eq!(rec_lens(b).iter().sum::<usize>(), 1024);
            }
        }
    }
}
