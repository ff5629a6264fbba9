//! Dynamic VHDX (MS-VHDX, version 1): the virtual disk format of Hyper-V and WSL 2, written
//! and read natively, one structure per module with its encoder beside its decoder:
//! `header` (file type identifier, the two headers), `region` (the two region tables),
//! `metadata` (the metadata table and its five system items), `bat` (block allocation
//! table), `log` (only to see that no log waits to be replayed), then the two drivers:
//! `writer` (the one-pass image behind [`crate::output`]) and `reader` (the virtual disk
//! behind [`crate::VirtualDisk`]).
//!
//! # Why our own
//!
//! Of the crates on crates.io (December 2026), `vhdx-rs` 0.2 writes VHDX but needs Rust
//! 1.96 (we build with 1.95), draws its GUIDs at random (no reproducible file) and writes
//! through its own sector I/O layer, not at offsets of a one-pass writer; `vhdx-core` 0.4
//! and `vhdx` 0.1 only read. None refuses what we must refuse (an unknown *required*
//! metadata item, overlapping BAT entries) with an error that names the structure. The
//! format is small where we use it: fixed-offset headers, two tables and a flat array.
//!
//! # The file this crate writes
//!
//! ```text
//! 0       file type identifier "vhdxfile" + creator        (MS-VHDX 2.2.1)
//! 64 KiB  header 1 (sequence 1)   128 KiB header 2 (sequence 2, the current one)  (2.2.2)
//! 192 KiB region table 1          256 KiB region table 2 (the same)              (2.2.3)
//! 1 MiB   log region, 1 MiB, empty (log GUID zero: nothing to replay)            (2.3.3)
//! 2 MiB   metadata region, 1 MiB: table, then items from 64 KiB                  (2.6)
//! 3 MiB   payload blocks, 1 MiB each, in the order the image's writes first touch them
//! end     BAT region (rounded up to 1 MiB)                                       (2.5)
//! ```
//!
//! The BAT comes last because a growing filesystem (`--size auto`) knows its size, and so
//! the BAT's length, only when it is done. Every region and block is 1 MiB aligned, as
//! 2.2.3.1 and 2.5.1 require. Blocks never written stay PAYLOAD_BLOCK_NOT_PRESENT and take
//! no room; unwritten parts of a present block are holes of the sparse host file.
//!
//! The log region exists although it is empty: readers that open the disk for writing
//! (QEMU, Hyper-V, WSL) write their BAT updates through it, and QEMU refuses a header whose
//! LogOffset is below 1 MiB even when no log is in use.
//!
//! ## Block size: 1 MiB
//!
//! ext4 puts a superblock backup and group metadata every 128 MiB group (sparse_super keeps
//! backups in groups 0, 1 and powers of 3, 5 and 7), and each touched block of a dynamic
//! VHDX is allocated whole: with Hyper-V's default 32 MiB blocks, a 10 GiB filesystem that
//! holds 100 MiB of files makes a file several hundred MiB long. Hyper-V allocates host
//! space per block (Linux's storvsc reports the VHDX block size as the discard granularity,
//! kernel commit 11d9874c), and guides for WSL 2 ext4 disks create them with
//! `New-VHD -BlockSizeBytes 1MB`. 1 MiB is the smallest block the format allows (2.6.2.1).

pub(crate) mod bat;
pub(crate) mod error;
pub(crate) mod header;
pub(crate) mod log;
pub(crate) mod metadata;
pub(crate) mod reader;
pub(crate) mod region;
pub(crate) mod writer;

pub use error::VhdxError;

/// 1 MiB: the alignment of every region and payload block, and the unit of BAT offsets.
pub(crate) const MIB: u64 = 1 << 20;
/// 64 KiB: the size of each object of the header section (2.2).
pub(crate) const KIB64: u64 = 64 << 10;
/// The largest virtual disk the format allows: 64 TiB (2.6.2.2).
pub(crate) const MAX_VIRTUAL_SIZE: u64 = 64 << 40;
/// Payload block size this crate writes (see the module doc).
pub(crate) const BLOCK_SIZE: u32 = 1 << 20;
/// Logical sector size this crate writes: 512, what every BIOS-era tool and guest expects.
pub(crate) const LOGICAL_SECTOR: u32 = 512;
/// Physical sector size this crate writes: 4096, the ext4 block size and today's disks'.
pub(crate) const PHYSICAL_SECTOR: u32 = 4096;

/// A GUID as MS-VHDX stores it: the first three fields little-endian, the last eight
/// bytes as they are (the Windows `GUID` struct; section 2.1, "GUID").
pub(crate) fn guid_bytes(g: u128) -> [u8; 16] {
    uuid::Uuid::from_u128(g).to_bytes_le()
}

/// The text form of a stored GUID, for errors.
pub(crate) fn guid_text(b: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes_le(*b)
        .hyphenated()
        .to_string()
        .to_uppercase()
}

/// Standard CRC-32C (Castagnoli) of `data` with the 4-byte checksum field at `at` taken as
/// zero, as every VHDX checksum is computed (2.2.2, 2.2.3, 2.3.1.1).
pub(crate) fn crc_with_zeroed(data: &[u8], at: usize) -> u32 {
    let c = crc32c::crc32c(&data[..at]);
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, &data[at + 4..])
}

/// Reads a little-endian u64 at `off`; `None` when the slice is too short.
pub(crate) fn get_u64le(buf: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(off..off + 8)?.try_into().ok()?))
}

/// Writes `v` at `off`, little-endian.
pub(crate) fn put_u64le(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The 16 bytes at `off`.
pub(crate) fn get_guid(buf: &[u8], off: usize) -> Option<[u8; 16]> {
    buf.get(off..off + 16)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_stored_mixed_endian() {
        // The BAT region's GUID 2DC27766-F623-4200-9D64-115E9BFD4A08 as qemu's vhdx.c
        // spells it field by field (data1 0x2dc27766 little-endian first).
        let b = guid_bytes(0x2DC2_7766_F623_4200_9D64_115E_9BFD_4A08);
        assert_eq!(&b[..8], &[0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42]);
        assert_eq!(&b[8..], &[0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08]);
        assert_eq!(guid_text(&b), "2DC27766-F623-4200-9D64-115E9BFD4A08");
    }

    #[test]
    fn checksum_skips_its_own_field() {
        let mut a = vec![7u8; 64];
        let c1 = crc_with_zeroed(&a, 4);
        a[4..8].copy_from_slice(&c1.to_le_bytes());
        assert_eq!(crc_with_zeroed(&a, 4), c1);
        a[4..8].fill(0);
        assert_eq!(crc32c::crc32c(&a), c1);
    }
}
