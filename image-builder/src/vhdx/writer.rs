//! Writing a dynamic VHDX in the image writer's one pass: writes at virtual offsets land
//! in payload blocks allocated at their first non-zero write, one after another from
//! 3 MiB on; the BAT, the metadata, the region tables and the headers are written once,
//! at the end, when the disk's size is known (see the module doc of [`super`] for the
//! file's layout).
//!
//! The file depends only on the order and contents of the writes, the virtual size and
//! the identity seed: the same image gives the same bytes. Zeros written to a block not
//! yet allocated are not written at all (the block reads as zeros already), so the file
//! holds only blocks with data, as a raw image's holes hold none.

use std::io;

use sha2::{Digest, Sha256};

use super::bat::{self, BatShape};
use super::error::VhdxError;
use super::header::{self, HEADER_OFFSETS, Header};
use super::metadata::{self, DiskParams};
use super::region::{self, BAT_REGION, METADATA_REGION, Region, TABLE_OFFSETS};
use super::{BLOCK_SIZE, LOGICAL_SECTOR, MAX_VIRTUAL_SIZE, MIB, PHYSICAL_SECTOR, guid_bytes};
use crate::util::is_zero;

/// The log region: 1 MiB at 1 MiB, left empty.
const LOG_MB: u64 = 1;
/// The metadata region: 1 MiB at 2 MiB.
const METADATA_MB: u64 = 2;
/// The first payload block's place.
const FIRST_PAYLOAD_MB: u64 = 3;
/// What the file type identifier names as its creator.
const CREATOR: &str = "colinux-setup image-builder";

/// Where a file write goes: `(file offset, bytes)`.
pub(crate) type Put<'a> = &'a mut dyn FnMut(u64, &[u8]) -> io::Result<()>;

/// The payload blocks allocated so far.
#[derive(Debug, Default)]
pub(crate) struct VhdxWriter {
    /// File offset in MiB of each payload block written; 0 for none.
    offsets_mb: Vec<u64>,
    /// Blocks allocated.
    allocated: u64,
}

impl VhdxWriter {
    /// Writes `data` at virtual byte `offset` through `put`.
    ///
    /// The pieces of `data` that land back to back in the file (consecutive blocks
    /// allocated one after another, as a long write of new data allocates them) go out in
    /// one `put`: a write that crosses block boundaries costs the host one call, as it
    /// does for a raw image, not one per 1 MiB block. Pieces never overlap, so the file
    /// holds the same bytes whatever the calls' grouping.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8], put: Put<'_>) -> io::Result<()> {
        let bs = u64::from(BLOCK_SIZE);
        let mut done = 0usize;
        // The run not yet written: its file offset and its range of `data`.
        let mut run: Option<(u64, usize, usize)> = None;
        while done < data.len() {
            let pos = offset + done as u64;
            let block = (pos / bs) as usize;
            let within = pos % bs;
            let take = ((bs - within) as usize).min(data.len() - done);
            let (start, end) = (done, done + take);
            done = end;
            let Some(at) = self.place(block, within, &data[start..end]) else {
                continue;
            };
            match &mut run {
                // Contiguous in `data` (nothing skipped between) and in the file.
                Some((run_at, s, e)) if *e == start && *run_at + (*e - *s) as u64 == at => {
                    *e = end;
                }
                _ => {
                    if let Some((run_at, s, e)) = run.replace((at, start, end)) {
                        put(run_at, &data[s..e])?;
                    }
                }
            }
        }
        if let Some((run_at, s, e)) = run {
            put(run_at, &data[s..e])?;
        }
        Ok(())
    }

    /// The file offset for `piece`, which lies at byte `within` of payload block `block`,
    /// allocating the block when the piece is its first with data; `None` for zeros bound
    /// for a block not allocated (it reads as zeros already).
    fn place(&mut self, block: usize, within: u64, piece: &[u8]) -> Option<u64> {
        if block >= self.offsets_mb.len() {
            if is_zero(piece) {
                return None;
            }
            self.offsets_mb.resize(block + 1, 0);
        }
        if self.offsets_mb[block] == 0 {
            if is_zero(piece) {
                return None;
            }
            self.offsets_mb[block] = FIRST_PAYLOAD_MB + self.allocated;
            self.allocated += 1;
        }
        Some(self.offsets_mb[block] * MIB + within)
    }

    /// The first byte after the payload blocks: where the BAT goes.
    fn payload_end(&self) -> u64 {
        (FIRST_PAYLOAD_MB + self.allocated) * MIB
    }

    /// Writes the BAT, metadata, region tables, headers and file identifier for a disk of
    /// `virtual_size` bytes; returns the file's length. `seed` identifies the image: the
    /// disk's GUIDs are derived from it.
    pub(crate) fn finish(
        &self,
        virtual_size: u64,
        seed: &[u8],
        put: Put<'_>,
    ) -> Result<Result<u64, VhdxError>, io::Error> {
        let unit = u64::from(LOGICAL_SECTOR);
        if virtual_size == 0
            || virtual_size > MAX_VIRTUAL_SIZE
            || !virtual_size.is_multiple_of(unit)
        {
            return Ok(Err(VhdxError::BadMetadata {
                item: "Virtual Disk Size",
                problem: format!(
                    "{virtual_size} bytes is not a multiple of {unit} from {unit} to 64 TiB"
                ),
            }));
        }
        let shape = BatShape::new(virtual_size, BLOCK_SIZE, LOGICAL_SECTOR);
        if self.offsets_mb.len() as u64 > shape.payload_blocks {
            return Ok(Err(VhdxError::Truncated {
                len: virtual_size,
                need: self.offsets_mb.len() as u64 * u64::from(BLOCK_SIZE),
                what: "data written past the end of the disk".to_owned(),
            }));
        }
        let bat_at = self.payload_end();
        let bat_len = shape.region_len();
        // The BAT in 1 MiB pieces, all-zero pieces left as holes.
        let mut piece = vec![0u8; MIB as usize];
        let mut index = 0;
        while index < shape.entries {
            let n = (shape.entries - index).min(MIB / 8);
            let buf = &mut piece[..(n * 8) as usize];
            buf.fill(0);
            bat::encode_into(&shape, &self.offsets_mb, index, buf);
            if !is_zero(buf) {
                put(bat_at + index * 8, buf)?;
            }
            index += n;
        }

        let id = |purpose: &[u8]| {
            let mut h = Sha256::new();
            h.update(b"colinux-setup vhdx id v1\0");
            h.update(purpose);
            h.update(virtual_size.to_le_bytes());
            h.update(seed);
            let d = h.finalize();
            let mut g = [0u8; 16];
            g.copy_from_slice(&d[..16]);
            // An RFC 9562 version 8 UUID, like the filesystem's.
            g[7] = (g[7] & 0x0f) | 0x80;
            g[8] = (g[8] & 0x3f) | 0x80;
            g
        };
        put(
            METADATA_MB * MIB,
            &metadata::encode(&DiskParams {
                block_size: BLOCK_SIZE,
                leave_blocks_allocated: false,
                virtual_size,
                disk_id: id(b"disk"),
                logical_sector: LOGICAL_SECTOR,
                physical_sector: PHYSICAL_SECTOR,
            }),
        )?;
        let bat_len32 = match u32::try_from(bat_len) {
            Ok(l) => l,
            Err(_) => {
                return Ok(Err(VhdxError::BatTooSmall {
                    room: u64::from(u32::MAX) / 8,
                    need: shape.entries,
                    size: virtual_size,
                }));
            }
        };
        let table = region::encode(&[
            Region {
                guid: guid_bytes(BAT_REGION),
                offset: bat_at,
                length: bat_len32,
                required: true,
            },
            Region {
                guid: guid_bytes(METADATA_REGION),
                offset: METADATA_MB * MIB,
                length: MIB as u32,
                required: true,
            },
        ]);
        for at in TABLE_OFFSETS {
            put(at, &table)?;
        }
        // Two valid headers; the second, with the higher sequence number, is current.
        for (i, at) in HEADER_OFFSETS.into_iter().enumerate() {
            let h = Header {
                sequence: i as u64 + 1,
                file_write: id(b"file write"),
                data_write: id(b"data write"),
                log_guid: [0; 16],
                log_length: MIB as u32,
                log_offset: LOG_MB * MIB,
            };
            put(at, &h.encode())?;
        }
        put(0, &header::encode_file_identifier(CREATOR))?;
        Ok(Ok(bat_at + bat_len))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::vhdx::reader::VhdxFile;

    /// Writes through the writer into a real file and reads it back.
    fn round_trip(writes: &[(u64, Vec<u8>)], size: u64) -> (VhdxFile, u64) {
        let t = tempfile::NamedTempFile::new().expect("temp");
        let f = t.as_file();
        let mut put =
            |off: u64, data: &[u8]| std::os::unix::fs::FileExt::write_all_at(f, data, off);
        let mut w = VhdxWriter::default();
        for (off, data) in writes {
            w.write(*off, data, &mut put).expect("write");
        }
        let len = w
            .finish(size, b"seed", &mut put)
            .expect("io")
            .expect("finish");
        f.set_len(len).expect("len");
        let file = t.reopen().expect("reopen");
        (
            VhdxFile::open(file, len, t.path()).expect("reads back"),
            len,
        )
    }

    #[test]
    fn writes_read_back_and_zeros_allocate_nothing() {
        let size = 10 << 20;
        let data = vec![0xabu8; 3000];
        let (v, len) = round_trip(
            &[
                (MIB - 1000, data.clone()),
                (5 * MIB, vec![0; 4096]),
                (9 * MIB + 17, vec![1, 2, 3]),
            ],
            size,
        );
        assert_eq!(v.virtual_size(), size);
        // Blocks 0, 1 and 9 allocated; 5 not (zeros).
        assert_eq!(len, (FIRST_PAYLOAD_MB + 3) * MIB + MIB);
        let mut buf = vec![0u8; 3000];
        v.read_at(&mut buf, MIB - 1000).expect("read");
        assert_eq!(buf, data);
        let mut buf = vec![9u8; 5];
        v.read_at(&mut buf, 9 * MIB + 16).expect("read");
        assert_eq!(buf, [0, 1, 2, 3, 0]);
        let mut buf = vec![9u8; 10];
        assert_eq!(v.read_at(&mut buf, size - 4).expect("read"), 4);
        assert_eq!(&buf[..4], &[0; 4]);
    }

    #[test]
    fn pieces_back_to_back_in_the_file_go_out_in_one_call() {
        let mut w = VhdxWriter::default();
        let mut calls = Vec::new();
        let mut put = |at: u64, d: &[u8]| {
            calls.push((at, d.len()));
            Ok(())
        };
        // Three new blocks, allocated one after another: one call.
        w.write(MIB / 2, &vec![1u8; 3 * MIB as usize], &mut put)
            .expect("write");
        // Zeros for block 5 (not allocated) split the write, although block 6 then
        // comes next in the file.
        let mut data = vec![2u8; 3 * MIB as usize];
        data[MIB as usize..2 * MIB as usize].fill(0);
        w.write(4 * MIB, &data, &mut put).expect("write");
        // Blocks 1 and 2 are side by side in the file: one call; block 5, allocated
        // now, is not beside block 4: two.
        w.write(2 * MIB - 10, &[3u8; 20], &mut put).expect("write");
        w.write(5 * MIB - 10, &[4u8; 20], &mut put).expect("write");
        let first = FIRST_PAYLOAD_MB * MIB;
        assert_eq!(
            calls,
            [
                (first + MIB / 2, 3 * MIB as usize),
                (first + 4 * MIB, MIB as usize),
                (first + 5 * MIB, MIB as usize),
                (first + 2 * MIB - 10, 20),
                (first + 5 * MIB - 10, 10),
                (first + 6 * MIB, 10),
            ]
        );
    }

    #[test]
    fn larger_than_the_format_allows_is_refused_before_writing() {
        let t = tempfile::tempdir().expect("tempdir");
        let out = t.path().join("x.vhdx");
        let r = crate::output::Output::create(
            &out,
            MAX_VIRTUAL_SIZE + MIB,
            false,
            crate::disk::DiskFormat::Vhdx,
        );
        assert!(matches!(r, Err(crate::error::Error::TooLarge { .. })));
        assert_eq!(std::fs::read_dir(t.path()).expect("dir").count(), 0);
    }

    #[test]
    fn a_disk_with_no_data_is_valid() {
        let (v, len) = round_trip(&[], 1 << 20);
        assert_eq!(v.virtual_size(), 1 << 20);
        assert_eq!(len, 4 * MIB);
    }
}
