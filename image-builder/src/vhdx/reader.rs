//! Reading a VHDX's virtual disk: the structures decoded and checked once, at open, in
//! the order MS-VHDX 2.2 gives (headers, log, region table, metadata, BAT); then reads at
//! virtual offsets become reads of the payload blocks, zeros where a block is not in the
//! file.
//!
//! Everything is untrusted: each read of a structure is checked against the file's
//! length before a buffer is sized for it, counts are bounded by the format's limits
//! (2047 entries, 64 TiB) and by the regions that hold them, every checksum is verified,
//! and a damaged copy of a header or region table is read from the other copy.

use std::fs::File;
use std::io;
use std::path::Path;

use super::bat::{self, BatShape};
use super::error::VhdxError;
use super::header::{self, HEADER_LEN, HEADER_OFFSETS, HEADER_SECTION_END, Header};
use super::log;
use super::metadata::{self, DiskParams};
use super::region::{self, TABLE_LEN, TABLE_OFFSETS};
use crate::error::Error;
use crate::output::read_at;

/// An open VHDX: its parameters and where each payload block is.
pub(crate) struct VhdxFile {
    file: File,
    params: DiskParams,
    /// File offset of each payload block; 0: the block reads as zeros.
    offsets: Vec<u64>,
}

/// Reads `len` bytes at `offset` of a `file_len`-byte file, refused (as `what` past the
/// end) before anything is allocated when they do not lie inside it.
fn read_inside(
    file: &File,
    file_len: u64,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Result<Vec<u8>, VhdxError>, io::Error> {
    let end = offset.saturating_add(len);
    if end > file_len {
        return Ok(Err(VhdxError::Truncated {
            len: file_len,
            need: end,
            what: what.to_owned(),
        }));
    }
    let mut buf = vec![0u8; len as usize];
    let got = read_at(file, &mut buf, offset)?;
    if got < buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file shrank while it was read",
        ));
    }
    Ok(Ok(buf))
}

impl VhdxFile {
    /// Decodes and checks `file` (`file_len` bytes long, at `path`), which begins with
    /// the VHDX signature.
    pub(crate) fn open(file: File, file_len: u64, path: &Path) -> Result<VhdxFile, Error> {
        let io_err = |e| Error::Read {
            path: path.to_owned(),
            source: e,
        };
        let bad = |problem| Error::Vhdx {
            path: path.to_owned(),
            problem,
        };
        // Flattens a read: I/O errors and format errors both end the open.
        let read = |offset: u64, len: u64, what: &str| -> Result<Vec<u8>, Error> {
            read_inside(&file, file_len, offset, len, what)
                .map_err(io_err)?
                .map_err(bad)
        };
        if file_len < HEADER_SECTION_END {
            return Err(bad(VhdxError::Truncated {
                len: file_len,
                need: HEADER_SECTION_END,
                what: "the header section".to_owned(),
            }));
        }
        let copy = |offset| -> Result<Result<Header, String>, Error> {
            let b = read(offset, HEADER_LEN as u64, "a header")?;
            Ok(Header::decode(&b))
        };
        let (h, _) =
            header::current(copy(HEADER_OFFSETS[0])?, copy(HEADER_OFFSETS[1])?).map_err(bad)?;
        h.check_log_region(file_len).map_err(bad)?;
        let log_region = (h.log_offset, u64::from(h.log_length));
        if h.log_guid != [0; 16] && log_region.1 > 0 {
            let bytes = read(log_region.0, log_region.1, "the log")?;
            if log::has_entries(&bytes, &h.log_guid) {
                return Err(bad(VhdxError::LogPending));
            }
        }

        let table = |offset| -> Result<Result<Vec<region::Region>, String>, Error> {
            Ok(region::decode(&read(
                offset,
                TABLE_LEN as u64,
                "a region table",
            )?))
        };
        let entries =
            region::choose(table(TABLE_OFFSETS[0])?, table(TABLE_OFFSETS[1])?).map_err(bad)?;
        let regions = region::resolve(&entries, file_len, log_region).map_err(bad)?;

        let (md_off, md_len) = regions.metadata;
        let md_table = read(md_off, metadata::TABLE_LEN as u64, "the metadata table")?;
        let mut item_err = None;
        let params = metadata::decode(&md_table, md_len, &mut |off, len| {
            // Inside the region, which lies inside the file: checked by resolve.
            read(md_off + off, len as u64, "a metadata item").map_err(|e| match e {
                Error::Vhdx { problem, .. } => problem,
                other => {
                    let text = other.to_string();
                    item_err = Some(other);
                    VhdxError::MetadataTable(text)
                }
            })
        });
        if let Some(e) = item_err {
            return Err(e);
        }
        let params = params.map_err(bad)?;

        let shape = BatShape::new(
            params.virtual_size,
            params.block_size,
            params.logical_sector,
        );
        let (bat_off, bat_len) = regions.bat;
        if shape.entries * 8 > bat_len {
            return Err(bad(VhdxError::BatTooSmall {
                room: bat_len / 8,
                need: shape.entries,
                size: params.virtual_size,
            }));
        }
        let bat_bytes = read(bat_off, shape.entries * 8, "the BAT")?;
        let offsets = bat::decode(
            &shape,
            &bat_bytes,
            params.virtual_size,
            file_len,
            &regions.taken,
        )
        .map_err(bad)?;
        Ok(VhdxFile {
            file,
            params,
            offsets,
        })
    }

    /// The virtual disk's size in bytes.
    pub(crate) fn virtual_size(&self) -> u64 {
        self.params.virtual_size
    }

    /// Reads up to `buf.len()` bytes of the virtual disk at `offset`; fewer at its end.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let size = self.params.virtual_size;
        if offset >= size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - offset) as usize;
        let bs = u64::from(self.params.block_size);
        let mut done = 0usize;
        while done < n {
            let pos = offset + done as u64;
            let block = (pos / bs) as usize;
            let within = pos % bs;
            let take = ((bs - within) as usize).min(n - done);
            let piece = &mut buf[done..done + take];
            match self.offsets.get(block) {
                Some(&at) if at != 0 => {
                    let got = read_at(&self.file, piece, at + within)?;
                    if got < take {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the VHDX file ends inside a payload block",
                        ));
                    }
                }
                _ => piece.fill(0),
            }
            done += take;
        }
        Ok(n)
    }
}
