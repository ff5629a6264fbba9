//! The log (MS-VHDX 2.3), read only to learn whether it holds updates still to apply.
//!
//! Writers update the BAT and metadata through a circular log: each entry (4 KiB
//! aligned, signature `loge`, a CRC-32C over the entry, the header's LogGuid) describes
//! sectors to write. A file closed cleanly has LogGuid zero, or no valid entry carrying
//! it (2.3.3: only entries with the current LogGuid count). Replaying is left to the
//! tools that write VHDX (QEMU, Windows); this reader refuses a disk that needs it,
//! instead of reading stale tables. This crate writes no entries at all.

use super::crc_with_zeroed;
use crate::util::get_u32le;

const ENTRY_SIGNATURE: &[u8; 4] = b"loge";
const L_CHECKSUM: usize = 0x04;
const L_ENTRY_LENGTH: usize = 0x08;
const L_LOG_GUID: usize = 0x20;
const SECTOR: usize = 4096;

/// Whether `log` (the whole log region) holds an entry of the log `guid`: a 4 KiB
/// sector that begins an entry with that GUID and a valid checksum (or that runs past
/// the end of the region, wrapping around: counted as pending without its checksum).
pub(crate) fn has_entries(log: &[u8], guid: &[u8; 16]) -> bool {
    (0..log.len() / SECTOR).any(|i| {
        let s = &log[i * SECTOR..];
        if &s[..4] != ENTRY_SIGNATURE || &s[L_LOG_GUID..L_LOG_GUID + 16] != guid {
            return false;
        }
        let len = get_u32le(s, L_ENTRY_LENGTH).unwrap_or(0) as usize;
        if len < SECTOR || !len.is_multiple_of(SECTOR) {
            return false;
        }
        match s.get(..len) {
            Some(entry) => {
                crc_with_zeroed(entry, L_CHECKSUM) == get_u32le(s, L_CHECKSUM).unwrap_or(0)
            }
            None => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::put_u32le;

    #[test]
    fn only_a_valid_entry_of_the_current_log_counts() {
        let guid = [7u8; 16];
        let mut log = vec![0u8; 4 * SECTOR];
        assert!(!has_entries(&log, &guid));
        let e = SECTOR;
        log[e..e + 4].copy_from_slice(ENTRY_SIGNATURE);
        put_u32le(&mut log, e + L_ENTRY_LENGTH, SECTOR as u32);
        log[e + L_LOG_GUID..e + L_LOG_GUID + 16].copy_from_slice(&guid);
        let crc = crc_with_zeroed(&log[e..e + SECTOR], L_CHECKSUM);
        put_u32le(&mut log, e + L_CHECKSUM, crc);
        assert!(has_entries(&log, &guid));
        assert!(!has_entries(&log, &[8u8; 16]), "another log's entry");
        log[e + 100] ^= 1;
        assert!(!has_entries(&log, &guid), "a torn entry");
    }
}
