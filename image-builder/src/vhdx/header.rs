//! The header section's fixed objects: the file type identifier at byte 0 (MS-VHDX
//! 2.2.1) and the two headers at 64 KiB and 128 KiB (2.2.2).
//!
//! A header is 4 KiB: signature `head`, a CRC-32C over all 4 KiB with its own field as
//! zero, the sequence number, three GUIDs (FileWriteGuid, DataWriteGuid, LogGuid), the
//! log and format versions (0 and 1) and where the log is. Two copies exist so that an
//! update can never leave a file with no valid header: the valid copy with the higher
//! sequence number is the current one, and a file with one damaged copy is read through
//! the other (2.2.2.1).

use super::error::VhdxError;
use super::{KIB64, MIB, crc_with_zeroed, get_guid, get_u64le, put_u64le};
use crate::util::{get_u16le, get_u32le, put_u16le, put_u32le};

/// The file type identifier's signature (2.2.1).
pub(crate) const FILE_SIGNATURE: &[u8; 8] = b"vhdxfile";
/// Where the headers are (2.2).
pub(crate) const HEADER_OFFSETS: [u64; 2] = [KIB64, 2 * KIB64];
/// A header's length, and the range its checksum covers.
pub(crate) const HEADER_LEN: usize = 4096;
/// The end of the header section: nothing else may lie below 1 MiB (2.2).
pub(crate) const HEADER_SECTION_END: u64 = MIB;

const HEADER_SIGNATURE: &[u8; 4] = b"head";
const H_CHECKSUM: usize = 0x04;
const H_SEQUENCE: usize = 0x08;
const H_FILE_WRITE_GUID: usize = 0x10;
const H_DATA_WRITE_GUID: usize = 0x20;
const H_LOG_GUID: usize = 0x30;
const H_LOG_VERSION: usize = 0x40;
const H_VERSION: usize = 0x42;
const H_LOG_LENGTH: usize = 0x44;
const H_LOG_OFFSET: usize = 0x48;

/// The file type identifier: the signature and the creator, UTF-16LE in the 512 bytes
/// after it ("diagnostic only", 2.2.1). The rest of its 64 KiB stays zero.
pub(crate) fn encode_file_identifier(creator: &str) -> Vec<u8> {
    let mut b = vec![0u8; 8 + 512];
    b[..8].copy_from_slice(FILE_SIGNATURE);
    for (i, unit) in creator.encode_utf16().take(255).enumerate() {
        put_u16le(&mut b, 8 + 2 * i, unit);
    }
    b
}

/// One header's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Higher is newer.
    pub(crate) sequence: u64,
    /// Changes whenever the file is first written in a session.
    pub(crate) file_write: [u8; 16],
    /// Changes whenever the virtual disk's contents are first written in a session.
    pub(crate) data_write: [u8; 16],
    /// Zero: the log is empty.
    pub(crate) log_guid: [u8; 16],
    /// Log region length (a multiple of 1 MiB).
    pub(crate) log_length: u32,
    /// Log region offset (a multiple of 1 MiB, at least 1 MiB).
    pub(crate) log_offset: u64,
}

impl Header {
    /// The 4 KiB header with its checksum.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[..4].copy_from_slice(HEADER_SIGNATURE);
        put_u64le(&mut b, H_SEQUENCE, self.sequence);
        b[H_FILE_WRITE_GUID..H_FILE_WRITE_GUID + 16].copy_from_slice(&self.file_write);
        b[H_DATA_WRITE_GUID..H_DATA_WRITE_GUID + 16].copy_from_slice(&self.data_write);
        b[H_LOG_GUID..H_LOG_GUID + 16].copy_from_slice(&self.log_guid);
        put_u16le(&mut b, H_LOG_VERSION, 0);
        put_u16le(&mut b, H_VERSION, 1);
        put_u32le(&mut b, H_LOG_LENGTH, self.log_length);
        put_u64le(&mut b, H_LOG_OFFSET, self.log_offset);
        let crc = crc_with_zeroed(&b, H_CHECKSUM);
        put_u32le(&mut b, H_CHECKSUM, crc);
        b
    }

    /// Decodes one 4 KiB copy; the error says why it is not a valid header.
    pub(crate) fn decode(b: &[u8]) -> Result<Header, String> {
        if b.len() < HEADER_LEN {
            return Err("it lies past the end of the file".to_owned());
        }
        if &b[..4] != HEADER_SIGNATURE {
            return Err("its signature is not 'head'".to_owned());
        }
        let stored = get_u32le(b, H_CHECKSUM).unwrap_or(0);
        let actual = crc_with_zeroed(&b[..HEADER_LEN], H_CHECKSUM);
        if stored != actual {
            return Err(format!(
                "its checksum is {stored:#010x}, but its bytes give {actual:#010x}"
            ));
        }
        let version = get_u16le(b, H_VERSION).unwrap_or(0);
        if version != 1 {
            return Err(format!("its version is {version}, not 1"));
        }
        let log_version = get_u16le(b, H_LOG_VERSION).unwrap_or(0);
        if log_version != 0 {
            return Err(format!("its log version is {log_version}, not 0"));
        }
        let field = |off| get_guid(b, off).unwrap_or_default();
        Ok(Header {
            sequence: get_u64le(b, H_SEQUENCE).unwrap_or(0),
            file_write: field(H_FILE_WRITE_GUID),
            data_write: field(H_DATA_WRITE_GUID),
            log_guid: field(H_LOG_GUID),
            log_length: get_u32le(b, H_LOG_LENGTH).unwrap_or(0),
            log_offset: get_u64le(b, H_LOG_OFFSET).unwrap_or(0),
        })
    }

    /// Checks where the log is (2.2.2: LogOffset a multiple of 1 MiB and at least 1 MiB,
    /// LogLength a multiple of 1 MiB), and that it lies inside a `file_len`-byte file.
    pub(crate) fn check_log_region(&self, file_len: u64) -> Result<(), VhdxError> {
        let (off, len) = (self.log_offset, u64::from(self.log_length));
        if off < MIB || !off.is_multiple_of(MIB) {
            return Err(VhdxError::Log(format!(
                "LogOffset {off} is not a multiple of 1 MiB from 1 MiB on"
            )));
        }
        if !len.is_multiple_of(MIB) {
            return Err(VhdxError::Log(format!(
                "LogLength {len} is not a multiple of 1 MiB"
            )));
        }
        if len > 0 && off.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(VhdxError::Truncated {
                len: file_len,
                need: off.saturating_add(len),
                what: "the log region".to_owned(),
            });
        }
        Ok(())
    }
}

/// The current header of two decoded copies (2.2.2.1): the only valid one, or the valid
/// one with the higher sequence number. Two valid copies with the same number are
/// accepted only when they are the same (Microsoft's Disk2vhd writes such files).
pub(crate) fn current(
    first: Result<Header, String>,
    second: Result<Header, String>,
) -> Result<(Header, u8), VhdxError> {
    match (first, second) {
        (Ok(a), Err(_)) => Ok((a, 1)),
        (Err(_), Ok(b)) => Ok((b, 2)),
        (Err(first), Err(second)) => Err(VhdxError::Headers { first, second }),
        (Ok(a), Ok(b)) => {
            if a.sequence > b.sequence {
                Ok((a, 1))
            } else if b.sequence > a.sequence {
                Ok((b, 2))
            } else if a == b {
                Ok((a, 1))
            } else {
                Err(VhdxError::HeadersDisagree(a.sequence))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sequence: u64) -> Header {
        Header {
            sequence,
            file_write: [1; 16],
            data_write: [2; 16],
            log_guid: [0; 16],
            log_length: MIB as u32,
            log_offset: MIB,
        }
    }

    #[test]
    fn a_header_round_trips() {
        let h = header(7);
        assert_eq!(Header::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_error() {
        let mut b = header(7).encode();
        b[0x900] ^= 1;
        let e = Header::decode(&b).expect_err("damaged");
        assert!(e.contains("checksum"), "{e}");
    }

    #[test]
    fn the_higher_sequence_number_is_current() {
        assert_eq!(current(Ok(header(3)), Ok(header(4))).map(|c| c.1), Ok(2));
        assert_eq!(current(Ok(header(5)), Ok(header(4))).map(|c| c.1), Ok(1));
        assert_eq!(current(Ok(header(3)), Err("x".into())).map(|c| c.1), Ok(1));
        assert_eq!(current(Err("x".into()), Ok(header(3))).map(|c| c.1), Ok(2));
        let mut other = header(3);
        other.data_write = [9; 16];
        assert_eq!(
            current(Ok(header(3)), Ok(other)),
            Err(VhdxError::HeadersDisagree(3))
        );
    }

    #[test]
    fn log_region_rules() {
        let mut h = header(1);
        assert!(h.check_log_region(4 * MIB).is_ok());
        h.log_offset = 4096;
        assert!(h.check_log_region(4 * MIB).is_err());
        h.log_offset = MIB;
        h.log_length = 4096;
        assert!(h.check_log_region(4 * MIB).is_err());
        h.log_length = MIB as u32;
        assert!(h.check_log_region(MIB).is_err());
    }
}
