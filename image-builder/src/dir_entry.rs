//! Directory blocks in the linear format (`struct ext4_dir_entry_2`,
//! Documentation/filesystems/ext4/directory.rst).
//!
//! Each entry is inode (4), rec_len (2), name_len (1), file_type (1) and the name,
//! padded to 4 bytes; the last entry of a block stretches its rec_len to the block's
//! end. With metadata_csum each block ends in a 12-byte fake entry (inode 0, rec_len
//! 12, name_len 0, type 0xDE) holding the CRC32C of the block before it, seeded by the
//! directory's inode. `.` and `..` open the first block.
//!
//! [`linear_blocks`] and [`seal`] write blocks for the writer; [`entries`],
//! [`has_tail`] and [`tail_checksum`] read them for the readers.

use crate::checksum::crc32c_raw;
use crate::inode::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK};
use crate::util::{get_u16le, get_u32le, put_u16le, put_u32le};

/// `file_type` values of directory entries.
pub(crate) const FT_REG: u8 = 1;
pub(crate) const FT_DIR: u8 = 2;
pub(crate) const FT_CHR: u8 = 3;
pub(crate) const FT_BLK: u8 = 4;
pub(crate) const FT_FIFO: u8 = 5;
pub(crate) const FT_SOCK: u8 = 6;
pub(crate) const FT_SYMLINK: u8 = 7;

/// Size of the checksum tail entry.
pub(crate) const TAIL_LEN: usize = 12;
/// The tail entry's `file_type` (EXT4_FT_DIR_CSUM).
const FT_DIR_CSUM: u8 = 0xde;
/// The fixed part of an entry: inode, rec_len, name_len, file_type.
const ENTRY_HEAD: usize = 8;

/// The `file_type` a directory entry naming an inode of `mode` must carry.
pub(crate) fn file_type_of(mode: u16) -> Option<u8> {
    Some(match mode & S_IFMT {
        S_IFREG => FT_REG,
        S_IFDIR => FT_DIR,
        S_IFCHR => FT_CHR,
        S_IFBLK => FT_BLK,
        S_IFIFO => FT_FIFO,
        S_IFSOCK => FT_SOCK,
        S_IFLNK => FT_SYMLINK,
        _ => return None,
    })
}

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
    b[t + 7] = FT_DIR_CSUM;
    let crc = crc32c_raw(inode_seed, &b[..t]);
    put_u32le(b, t + 8, crc);
}

/// Whether a directory block ends in the metadata_csum tail entry (inode 0, rec_len 12,
/// name_len 0, type 0xDE).
pub(crate) fn has_tail(block: &[u8]) -> bool {
    let t = block.len().saturating_sub(TAIL_LEN);
    get_u32le(block, t) == Some(0)
        && get_u16le(block, t + 4) == Some(TAIL_LEN as u16)
        && block.get(t + 6) == Some(&0)
        && block.get(t + 7) == Some(&FT_DIR_CSUM)
}

/// The tail's checksum as stored and as the block before it gives it.
pub(crate) fn tail_checksum(block: &[u8], inode_seed: u32) -> (u32, u32) {
    let t = block.len().saturating_sub(TAIL_LEN);
    let stored = get_u32le(block, t + 8).unwrap_or(0);
    (stored, crc32c_raw(inode_seed, &block[..t]))
}

/// `rec_len` as stored: blocks of 64 KiB keep the high bits in the low two
/// (the kernel's `ext4_rec_len_from_disk`).
pub(crate) fn rec_len(raw: u16, block_size: usize) -> usize {
    if block_size < 65536 {
        usize::from(raw)
    } else if raw == 65535 || raw == 0 {
        65536
    } else {
        usize::from(raw & 65532) | (usize::from(raw & 3) << 16)
    }
}

/// One entry of a directory block, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawEntry<'a> {
    /// Byte offset in the block.
    pub offset: usize,
    pub inode: u32,
    pub rec_len: usize,
    pub file_type: u8,
    pub name: &'a [u8],
}

/// Why a directory block's entries cannot be followed past `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DirBlockError {
    /// An entry starts too close to the end to hold its inode and rec_len.
    CutOff { offset: usize },
    /// A rec_len under 8, not a multiple of 4, past the end, or too short for the name.
    BadRecLen { offset: usize, rec_len: usize },
}

impl std::fmt::Display for DirBlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirBlockError::CutOff { offset } => {
                write!(f, "the entry at offset {offset} is cut off")
            }
            DirBlockError::BadRecLen { offset, rec_len } => {
                write!(f, "bad rec_len {rec_len} at offset {offset}")
            }
        }
    }
}

/// The named entries (inode not 0) of a linear directory block, up to byte `end` (the
/// block's length, or the start of its checksum tail). An htree index block reads as
/// one unnamed entry, as the format intends. After an error the iteration ends.
pub(crate) fn entries(block: &[u8], end: usize) -> Entries<'_> {
    Entries {
        block,
        end: end.min(block.len()),
        off: 0,
        done: false,
    }
}

/// See [`entries`].
pub(crate) struct Entries<'a> {
    block: &'a [u8],
    end: usize,
    off: usize,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<RawEntry<'a>, DirBlockError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done && self.off < self.end {
            let off = self.off;
            let b = self.block;
            let (Some(inode), Some(raw)) = (get_u32le(b, off), get_u16le(b, off + 4)) else {
                self.done = true;
                return Some(Err(DirBlockError::CutOff { offset: off }));
            };
            let rec = rec_len(raw, b.len());
            let name_len = usize::from(b.get(off + 6).copied().unwrap_or(0));
            let file_type = b.get(off + 7).copied().unwrap_or(0);
            if rec < ENTRY_HEAD
                || !rec.is_multiple_of(4)
                || off + rec > self.end
                || (inode != 0 && ENTRY_HEAD + name_len > rec)
            {
                self.done = true;
                return Some(Err(DirBlockError::BadRecLen {
                    offset: off,
                    rec_len: rec,
                }));
            }
            self.off += rec;
            if inode == 0 {
                continue;
            }
            return Some(Ok(RawEntry {
                offset: off,
                inode,
                rec_len: rec,
                file_type,
                name: &b[off + ENTRY_HEAD..off + ENTRY_HEAD + name_len],
            }));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;

    /// The root directory of test_data/ext4.img: one block (debugfs "blocks /"),
    /// found through the root inode's extent.
    fn root_block() -> Vec<u8> {
        let img = test_data::ext4();
        let at = 50 * 1024 + 256; // inode 2, slot 1
        let ino = crate::inode::Inode::decode(&img[at..at + 256]).expect("inode");
        let run = crate::extent::decode_leaf(&ino.block[12..24]).expect("leaf");
        test_data::block(img, run.physical).to_vec()
    }

    #[test]
    fn reads_what_mke2fs_wrote() {
        let b = root_block();
        assert!(has_tail(&b));
        let names: Vec<(Vec<u8>, u32, u8)> = entries(&b, b.len() - TAIL_LEN)
            .map(|e| e.map(|e| (e.name.to_vec(), e.inode, e.file_type)))
            .collect::<Result<_, _>>()
            .expect("sound");
        let want: Vec<(Vec<u8>, u32, u8)> = vec![
            (b".".to_vec(), 2, FT_DIR),
            (b"..".to_vec(), 2, FT_DIR),
            (b"lost+found".to_vec(), 11, FT_DIR),
            (b"attr".to_vec(), 12, FT_REG),
            (b"big".to_vec(), 13, FT_DIR),
            (b"link".to_vec(), 134, FT_SYMLINK),
            (b"sparse".to_vec(), 135, FT_REG),
        ];
        assert_eq!(names, want);
        let img = test_data::ext4();
        let sb = crate::superblock::Superblock::decode(&img[1024..2048]).expect("sb");
        let seed = crate::checksum::inode_seed(sb.csum_seed().expect("csum"), 2, 0);
        let (stored, computed) = tail_checksum(&b, seed);
        assert_eq!(stored, computed);
    }

    #[test]
    fn each_broken_chain_is_named() {
        let pristine = root_block();
        let end = pristine.len() - TAIL_LEN;
        // The first entry's rec_len (offset 4): 6 is under 8, 13 not a multiple of 4,
        // 2000 past the end; then a name longer than its record.
        for (rec, want) in [(6u16, 6usize), (13, 13), (2000, 2000)] {
            let mut b = pristine.clone();
            put_u16le(&mut b, 4, rec);
            let got: Vec<_> = entries(&b, end).collect();
            assert_eq!(
                got,
                [Err(DirBlockError::BadRecLen {
                    offset: 0,
                    rec_len: want
                })]
            );
        }
        let mut b = pristine.clone();
        b[6] = 9; // "." with a 9-byte name in a 12-byte record
        assert_eq!(
            entries(&b, end).next(),
            Some(Err(DirBlockError::BadRecLen {
                offset: 0,
                rec_len: 12
            }))
        );
        // A chain that stops 2 bytes before the end cannot hold another entry.
        let short = &pristine[..end + 2];
        let last = entries(short, end + 2).last();
        assert!(matches!(last, Some(Err(_))), "{last:?}");
        let mut b = pristine.clone();
        b[end + 7] = 0;
        assert!(!has_tail(&b));
    }

    #[test]
    fn what_is_laid_out_reads_back() {
        let names: Vec<Vec<u8>> = (0..50).map(|i| format!("n{i}").into_bytes()).collect();
        let list: Vec<DirEntry<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| DirEntry {
                ino: 20 + i as u32,
                file_type: FT_FIFO,
                name: n,
            })
            .collect();
        let mut back = Vec::new();
        for mut b in linear_blocks(&list, 1024, true) {
            seal(&mut b, 5);
            assert!(has_tail(&b));
            let (stored, computed) = tail_checksum(&b, 5);
            assert_eq!(stored, computed);
            for e in entries(&b, 1024 - TAIL_LEN) {
                let e = e.expect("sound");
                back.push((e.name.to_vec(), e.inode));
            }
        }
        let want: Vec<(Vec<u8>, u32)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), 20 + i as u32))
            .collect();
        assert_eq!(back, want);
        assert_eq!(rec_len(0, 65536), 65536);
        assert_eq!(rec_len(4 | 1, 65536), 4 | (1 << 16));
        assert_eq!(file_type_of(S_IFLNK | 0o777), Some(FT_SYMLINK));
        assert_eq!(file_type_of(0o170000), None);
    }

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
