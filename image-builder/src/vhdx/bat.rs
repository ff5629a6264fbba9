//! The block allocation table (MS-VHDX 2.5): one 64-bit entry per payload block, with a
//! sector bitmap entry after every `chunk ratio` of them.
//!
//! An entry is a 3-bit state and, in bits 20..63, the block's file offset in MiB
//! (2.5.1). The chunk ratio is 2^23 × logical sector size / block size (2.5: 4096 for
//! 512-byte sectors and 1 MiB blocks), and a dynamic disk (no parent) has
//! `payload + (payload - 1) / chunk_ratio` entries (2.5.1: the last chunk's sector bitmap
//! entry is left out). Sector bitmap entries matter only to differencing disks; here they
//! stay SB_BLOCK_NOT_PRESENT and are not read.
//!
//! Payload states (2.5.1.1): NOT_PRESENT (0), UNDEFINED (1), ZERO (2) and UNMAPPED (3)
//! hold no data in the file and read as zeros, as QEMU and Hyper-V read them;
//! FULLY_PRESENT (6) is a block in the file; PARTIALLY_PRESENT (7) belongs to differencing
//! disks. A present block must lie inside the file and overlap neither another block nor
//! a region.

use super::error::VhdxError;
use super::{MIB, get_u64le, put_u64le};

/// Block not in the file (reads as zeros in a disk with no parent).
pub(crate) const PAYLOAD_BLOCK_NOT_PRESENT: u64 = 0;
/// Block in the file, at the entry's offset.
pub(crate) const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;
const PAYLOAD_BLOCK_PARTIALLY_PRESENT: u64 = 7;
const STATE_MASK: u64 = 7;
const OFFSET_SHIFT: u32 = 20;

/// The BAT's shape for one disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatShape {
    /// Payload block size in bytes.
    pub(crate) block_size: u64,
    /// Payload entries between two sector bitmap entries.
    pub(crate) chunk_ratio: u64,
    /// Payload blocks covering the virtual disk.
    pub(crate) payload_blocks: u64,
    /// Entries in all, sector bitmap entries included.
    pub(crate) entries: u64,
}

impl BatShape {
    /// The shape for a disk of `virtual_size` bytes (at least one sector), with blocks of
    /// `block_size` and sectors of `logical_sector` bytes (both checked already).
    pub(crate) fn new(virtual_size: u64, block_size: u32, logical_sector: u32) -> BatShape {
        let block_size = u64::from(block_size);
        let chunk_ratio = ((1u64 << 23) * u64::from(logical_sector)) / block_size;
        let payload_blocks = virtual_size.div_ceil(block_size).max(1);
        BatShape {
            block_size,
            chunk_ratio,
            payload_blocks,
            entries: payload_blocks + (payload_blocks - 1) / chunk_ratio,
        }
    }

    /// The BAT index of payload block `block`.
    pub(crate) fn index(&self, block: u64) -> u64 {
        block + block / self.chunk_ratio
    }

    /// The BAT's length in bytes, rounded up to whole MiB (a region's unit).
    pub(crate) fn region_len(&self) -> u64 {
        (self.entries * 8).div_ceil(MIB) * MIB
    }
}

/// An entry: `state` with the file offset `offset_mb` (in MiB).
pub(crate) fn encode_entry(state: u64, offset_mb: u64) -> u64 {
    state | (offset_mb << OFFSET_SHIFT)
}

/// Encodes the BAT entries of payload blocks `first..first + n` into `buf`, a piece of
/// the BAT beginning at BAT index `piece_start`: `offsets_mb[b]` is block b's offset in
/// MiB, 0 for a block not present.
pub(crate) fn encode_into(shape: &BatShape, offsets_mb: &[u64], piece_start: u64, buf: &mut [u8]) {
    let piece_end = piece_start + (buf.len() / 8) as u64;
    // The first payload block whose entry lies in the piece (entries before it belong
    // to earlier pieces).
    let first = piece_start - piece_start / (shape.chunk_ratio + 1);
    for (block, &mb) in offsets_mb.iter().enumerate().skip(first as usize) {
        let index = shape.index(block as u64);
        if index >= piece_end {
            break;
        }
        if mb != 0 && index >= piece_start {
            let at = ((index - piece_start) * 8) as usize;
            put_u64le(buf, at, encode_entry(PAYLOAD_BLOCK_FULLY_PRESENT, mb));
        }
    }
}

/// Decodes the payload entries of `bat` (the BAT's first `shape.entries` × 8 bytes) of a
/// `file_len`-byte file whose regions are `taken` (start, end, name): for each payload
/// block, its file offset, or 0 when it reads as zeros. `virtual_size` bounds the last
/// block's data.
pub(crate) fn decode(
    shape: &BatShape,
    bat: &[u8],
    virtual_size: u64,
    file_len: u64,
    taken: &[(u64, u64, String)],
) -> Result<Vec<u64>, VhdxError> {
    let mut offsets = Vec::with_capacity(shape.payload_blocks as usize);
    let mut present = Vec::new();
    for block in 0..shape.payload_blocks {
        let index = shape.index(block);
        let entry = get_u64le(bat, (index * 8) as usize).unwrap_or(0);
        let bad = |problem: String| VhdxError::BadBatEntry {
            index,
            block,
            problem,
        };
        let offset = (entry >> OFFSET_SHIFT).saturating_mul(MIB);
        match entry & STATE_MASK {
            // NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED: no data in the file.
            PAYLOAD_BLOCK_NOT_PRESENT..=3 => offsets.push(0),
            PAYLOAD_BLOCK_FULLY_PRESENT => {
                let data = shape
                    .block_size
                    .min(virtual_size - block * shape.block_size);
                let end = offset.saturating_add(data);
                if end > file_len {
                    return Err(bad(format!(
                        "its block at file offset {offset} ends at byte {end}, past the end of the file ({file_len} bytes)"
                    )));
                }
                let full_end = offset.saturating_add(shape.block_size);
                if let Some((_, _, name)) =
                    taken.iter().find(|(s, e, _)| offset < *e && *s < full_end)
                {
                    return Err(bad(format!(
                        "its block at file offset {offset} overlaps {name}"
                    )));
                }
                offsets.push(offset);
                present.push((offset, index, block));
            }
            PAYLOAD_BLOCK_PARTIALLY_PRESENT => {
                return Err(bad(
                    "it is PARTIALLY_PRESENT, a state only differencing disks use".to_owned(),
                ));
            }
            state => return Err(bad(format!("its state {state} is not defined"))),
        }
    }
    present.sort_unstable();
    for pair in present.windows(2) {
        let ((a_off, _, a_block), (b_off, b_index, b_block)) = (pair[0], pair[1]);
        if b_off < a_off + shape.block_size {
            return Err(VhdxError::BadBatEntry {
                index: b_index,
                block: b_block,
                problem: format!(
                    "its block at file offset {b_off} overlaps payload block {a_block}'s at {a_off}"
                ),
            });
        }
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_spec() {
        // 512-byte sectors, 1 MiB blocks: chunk ratio 4096 (2.5, table of examples).
        let s = BatShape::new(10 << 30, 1 << 20, 512);
        assert_eq!(s.chunk_ratio, 4096);
        assert_eq!(s.payload_blocks, 10240);
        assert_eq!(s.entries, 10240 + 2);
        assert_eq!(s.index(4095), 4095);
        assert_eq!(s.index(4096), 4097);
        // 32 MiB blocks: chunk ratio 128.
        assert_eq!(BatShape::new(1 << 30, 32 << 20, 512).chunk_ratio, 128);
        assert_eq!(BatShape::new(1, 1 << 20, 512).entries, 1);
    }

    #[test]
    fn entries_round_trip_in_pieces() {
        let s = BatShape::new(9000 << 20, 1 << 20, 512);
        let mut mb = vec![0u64; s.payload_blocks as usize];
        mb[0] = 3;
        mb[4095] = 4;
        mb[4096] = 5;
        mb[8999] = 6;
        let mut whole = vec![0u8; (s.entries * 8) as usize];
        // Encoded in two pieces split inside the second chunk.
        let split = 5000 * 8;
        encode_into(&s, &mb, 0, &mut whole[..split]);
        encode_into(&s, &mb, 5000, &mut whole[split..]);
        assert_eq!(get_u64le(&whole, 4096 * 8), Some(0), "sector bitmap entry");
        let taken = vec![(0, MIB, "the header section".to_owned())];
        let got = decode(&s, &whole, 9000 << 20, 7 * MIB, &taken).expect("valid");
        assert_eq!(got[0], 3 * MIB);
        assert_eq!(got[4095], 4 * MIB);
        assert_eq!(got[4096], 5 * MIB);
        assert_eq!(got[8999], 6 * MIB);
        assert_eq!(got.iter().filter(|&&o| o != 0).count(), 4);
    }

    #[test]
    fn damaged_entries_are_named() {
        let s = BatShape::new(4 << 20, 1 << 20, 512);
        let taken = vec![(0, MIB, "the header section".to_owned())];
        let bat = |entries: &[u64]| {
            entries
                .iter()
                .flat_map(|e| e.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let e = decode(
            &s,
            &bat(&[encode_entry(6, 9), 0, 0, 0]),
            4 << 20,
            5 * MIB,
            &taken,
        )
        .expect_err("outside");
        assert!(e.to_string().contains("past the end of the file"), "{e}");
        let e = decode(
            &s,
            &bat(&[encode_entry(6, 2), encode_entry(6, 2), 0, 0]),
            4 << 20,
            5 * MIB,
            &taken,
        )
        .expect_err("overlap");
        assert!(e.to_string().contains("overlaps payload block 0"), "{e}");
        let e = decode(
            &s,
            &bat(&[encode_entry(6, 0), 0, 0, 0]),
            4 << 20,
            5 * MIB,
            &taken,
        )
        .expect_err("header");
        assert!(e.to_string().contains("the header section"), "{e}");
        let e = decode(&s, &bat(&[5, 0, 0, 0]), 4 << 20, 5 * MIB, &taken).expect_err("state");
        assert!(e.to_string().contains("state 5"), "{e}");
    }
}
