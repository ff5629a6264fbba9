//! The checksums ext4 stores: raw CRC32C for `metadata_csum`, CRC16 for `uninit_bg`.
//!
//! The kernel's `ext4_chksum` is CRC32C (Castagnoli, reflected polynomial 0x82F63B78)
//! *without* the final inversion, seeded by the caller. The `crc32c` crate computes the
//! standard form, which inverts on the way in and out, so the raw form with seed `s` is
//! `!crc32c_append(!s, data)` (see the kernel's Documentation/filesystems/ext4/
//! overview.rst, "Checksums"). Every structure feeds its own checksum field as zeros;
//! the encoders do that by computing the checksum before they store it.

/// CRC-16 (ANSI, reflected polynomial 0xA001) as the kernel's `crc16`: the group
/// descriptor checksum of `uninit_bg` (`gdt_csum`) filesystems.
pub(crate) fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Raw CRC32C of `data`, continuing from `seed`, as the kernel's `ext4_chksum`.
pub(crate) fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// The filesystem checksum seed: `crc32c_raw(~0, s_uuid)` (no `metadata_csum_seed`).
pub(crate) fn fs_seed(uuid: &[u8; 16]) -> u32 {
    crc32c_raw(!0, uuid)
}

/// The per-inode seed used by inodes, directory blocks and extent blocks:
/// the fs seed, then the inode number, then the generation, both little-endian.
pub(crate) fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let s = crc32c_raw(fs_seed, &ino.to_le_bytes());
    crc32c_raw(s, &generation.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_form_matches_the_standard_check_value() {
        // The standard CRC-32C of "123456789" is 0xE3069283 (RFC 3720, appendix B.4);
        // the raw form seeded with ~0 is its complement.
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn crc16_matches_the_standard_check_value() {
        // CRC-16/ARC of "123456789" is 0xBB3D (the kernel's crc16 with seed 0).
        assert_eq!(crc16(0, b"123456789"), 0xbb3d);
    }

    #[test]
    fn raw_form_chains() {
        let whole = crc32c_raw(7, b"abcdef");
        let parts = crc32c_raw(crc32c_raw(7, b"abc"), b"def");
        assert_eq!(whole, parts);
    }
}
