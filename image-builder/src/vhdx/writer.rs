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
    pub(crate) fn write(&mut self, offset: u64, data: &[u8], put: Put<'_>) -> io::Result<()> {
        let bs = u64::from(BLOCK_SIZE);
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let block = (pos / bs) as usize;
            let within = pos % bs;
            let take = ((bs - within) as usize).min(data.len() - done);
            let piece = &data[done..done + take];
            done += take;
            if block >= self.offsets_mb.len() {
                if is_zero(piece) {
                    continue;
                }
                self.offsets_mb.resize(block + 1, 0);
            }
            if self.offsets_mb[block] == 0 {
                if is_zero(piece) {
                    continue;
                }
                self.offsets_mb[block] = FIRST_PAYLOAD_MB + self.allocated;
                self.allocated += 1;
            }
            put(self.offsets_mb[block] * MIB + within, piece)?;
        }
        Ok(())
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
