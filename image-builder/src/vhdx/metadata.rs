//! The metadata region (MS-VHDX 2.6): what the virtual disk is.
//!
//! The region starts with a 64 KiB table: signature `metadata`, an entry count (at most
//! 2047), then 32-byte entries: item GUID, offset (from the region's start, at least
//! 64 KiB: items follow the table), length, and flags IsUser, IsVirtualDisk, IsRequired.
//! Five system items are required in every VHDX (2.6.2): File Parameters (block size,
//! LeaveBlocksAllocated, HasParent), Virtual Disk Size, Virtual Disk ID, Logical Sector
//! Size and Physical Sector Size. A required item a reader does not know makes the file
//! unreadable to it (2.6.1.2); a duplicate item makes it ambiguous.

use super::error::VhdxError;
use super::{KIB64, MAX_VIRTUAL_SIZE, get_guid, get_u64le, guid_bytes, guid_text};
use crate::util::{get_u16le, get_u32le, put_u16le, put_u32le};

/// The table's length: items start after it.
pub(crate) const TABLE_LEN: usize = 64 << 10;

const SIGNATURE: &[u8; 8] = b"metadata";
const MD_ENTRY_COUNT: usize = 0x0a;
const ENTRIES: usize = 32;
const ENTRY_LEN: usize = 32;
const MAX_ENTRIES: u16 = 2047;
const E_OFFSET: usize = 0x10;
const E_LENGTH: usize = 0x14;
const E_FLAGS: usize = 0x18;
const IS_VIRTUAL_DISK: u32 = 1 << 1;
const IS_REQUIRED: u32 = 1 << 2;

/// The system items (2.6.2), in the order this crate writes them: GUID, name, length,
/// flags.
const ITEMS: [(u128, &str, u32, u32); 5] = [
    (
        0xCAA1_6737_FA36_4D43_B3B6_33F0_AA44_E76B,
        "File Parameters",
        8,
        IS_REQUIRED,
    ),
    (
        0x2FA5_4224_CD1B_4876_B211_5DBE_D83B_F4B8,
        "Virtual Disk Size",
        8,
        IS_VIRTUAL_DISK | IS_REQUIRED,
    ),
    (
        0xBECA_12AB_B2E6_4523_93EF_C309_E000_C746,
        "Virtual Disk ID",
        16,
        IS_VIRTUAL_DISK | IS_REQUIRED,
    ),
    (
        0x8141_BF1D_A96F_4709_BA47_F233_A8FA_AB5F,
        "Logical Sector Size",
        4,
        IS_VIRTUAL_DISK | IS_REQUIRED,
    ),
    (
        0xCDA3_48C7_445D_4471_9CC9_E988_5251_C556,
        "Physical Sector Size",
        4,
        IS_VIRTUAL_DISK | IS_REQUIRED,
    ),
];
/// The parent locator of a differencing disk (2.6.2.6): known, never required here.
const PARENT_LOCATOR: u128 = 0xA8D3_5F2D_B30B_454D_ABF7_D3D8_4834_AB0C;

/// File Parameters' flags (2.6.2.1).
const LEAVE_BLOCKS_ALLOCATED: u32 = 1 << 0;
const HAS_PARENT: u32 = 1 << 1;

/// What the metadata says about the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DiskParams {
    /// Payload block size: a power of two, 1 MiB to 256 MiB.
    pub(crate) block_size: u32,
    /// A fixed disk (every block allocated).
    pub(crate) leave_blocks_allocated: bool,
    /// The virtual disk's size in bytes.
    pub(crate) virtual_size: u64,
    /// The disk's identity (the SCSI page 83 identifier guests see).
    pub(crate) disk_id: [u8; 16],
    /// 512 or 4096.
    pub(crate) logical_sector: u32,
    /// 512 or 4096.
    pub(crate) physical_sector: u32,
}

/// The metadata region's contents: the table, then the items from 64 KiB on, together
/// (`TABLE_LEN` + 40 bytes).
pub(crate) fn encode(p: &DiskParams) -> Vec<u8> {
    let mut b = vec![0u8; TABLE_LEN];
    b[..8].copy_from_slice(SIGNATURE);
    put_u16le(&mut b, MD_ENTRY_COUNT, ITEMS.len() as u16);
    let mut values = Vec::new();
    let mut fp = [0u8; 8];
    put_u32le(&mut fp, 0, p.block_size);
    put_u32le(
        &mut fp,
        4,
        if p.leave_blocks_allocated {
            LEAVE_BLOCKS_ALLOCATED
        } else {
            0
        },
    );
    values.push(fp.to_vec());
    values.push(p.virtual_size.to_le_bytes().to_vec());
    values.push(p.disk_id.to_vec());
    values.push(p.logical_sector.to_le_bytes().to_vec());
    values.push(p.physical_sector.to_le_bytes().to_vec());
    let mut at = TABLE_LEN;
    for (i, ((guid, _, len, flags), value)) in ITEMS.iter().zip(values).enumerate() {
        let e = ENTRIES + i * ENTRY_LEN;
        b[e..e + 16].copy_from_slice(&guid_bytes(*guid));
        put_u32le(&mut b, e + E_OFFSET, at as u32);
        put_u32le(&mut b, e + E_LENGTH, *len);
        put_u32le(&mut b, e + E_FLAGS, *flags);
        b.extend_from_slice(&value);
        at += value.len();
    }
    b
}

/// Decodes the metadata: `table` is the region's first 64 KiB, `region_len` its length,
/// and `read(offset, len)` reads `len` bytes at `offset` from the region's start (called
/// only for the five system items, inside the region).
pub(crate) fn decode(
    table: &[u8],
    region_len: u64,
    read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, VhdxError>,
) -> Result<DiskParams, VhdxError> {
    if table.len() < TABLE_LEN || &table[..8] != SIGNATURE {
        return Err(VhdxError::MetadataTable(
            "its signature is not 'metadata'".to_owned(),
        ));
    }
    let count = get_u16le(table, MD_ENTRY_COUNT).unwrap_or(0);
    if count > MAX_ENTRIES {
        return Err(VhdxError::MetadataTable(format!(
            "it claims {count} entries; at most {MAX_ENTRIES} fit"
        )));
    }
    let mut found: [Option<Vec<u8>>; 5] = Default::default();
    let known: Vec<[u8; 16]> = ITEMS.iter().map(|i| guid_bytes(i.0)).collect();
    for i in 0..usize::from(count) {
        let e = ENTRIES + i * ENTRY_LEN;
        let guid = get_guid(table, e).unwrap_or_default();
        let offset = u64::from(get_u32le(table, e + E_OFFSET).unwrap_or(0));
        let length = get_u32le(table, e + E_LENGTH).unwrap_or(0);
        let flags = get_u32le(table, e + E_FLAGS).unwrap_or(0);
        let Some(k) = known.iter().position(|g| *g == guid) else {
            if flags & IS_REQUIRED != 0 && guid != guid_bytes(PARENT_LOCATOR) {
                return Err(VhdxError::UnknownRequiredMetadata(guid_text(&guid)));
            }
            continue;
        };
        let (_, name, want_len, _) = ITEMS[k];
        let bad = |problem: String| VhdxError::BadMetadata {
            item: name,
            problem,
        };
        if found[k].is_some() {
            return Err(bad("the table names it twice".to_owned()));
        }
        if length != want_len {
            return Err(bad(format!(
                "it is {length} bytes long; it must be {want_len}"
            )));
        }
        if offset < KIB64 || offset + u64::from(length) > region_len {
            return Err(bad(format!(
                "it lies at offset {offset}, outside the region's item area (64 KiB to {region_len})"
            )));
        }
        found[k] = Some(read(offset, length as usize)?);
    }
    let [fp, size, id, logical, physical] = found;
    let missing = |k: usize| VhdxError::MissingMetadata(ITEMS[k].1);
    let fp = fp.ok_or_else(|| missing(0))?;
    let size = size.ok_or_else(|| missing(1))?;
    let id = id.ok_or_else(|| missing(2))?;
    let logical = logical.ok_or_else(|| missing(3))?;
    let physical = physical.ok_or_else(|| missing(4))?;

    let block_size = get_u32le(&fp, 0).unwrap_or(0);
    let flags = get_u32le(&fp, 4).unwrap_or(0);
    if !block_size.is_power_of_two() || !(1 << 20..=256 << 20).contains(&block_size) {
        return Err(VhdxError::BadMetadata {
            item: "File Parameters",
            problem: format!("block size {block_size} is not a power of two from 1 MiB to 256 MiB"),
        });
    }
    if flags & HAS_PARENT != 0 {
        return Err(VhdxError::Differencing);
    }
    let sector = |v: &[u8], item: &'static str| {
        let s = get_u32le(v, 0).unwrap_or(0);
        if s == 512 || s == 4096 {
            Ok(s)
        } else {
            Err(VhdxError::BadMetadata {
                item,
                problem: format!("{s} is not 512 or 4096"),
            })
        }
    };
    let logical_sector = sector(&logical, "Logical Sector Size")?;
    let physical_sector = sector(&physical, "Physical Sector Size")?;
    let virtual_size = get_u64le(&size, 0).unwrap_or(0);
    if virtual_size == 0
        || virtual_size > MAX_VIRTUAL_SIZE
        || !virtual_size.is_multiple_of(u64::from(logical_sector))
    {
        return Err(VhdxError::BadMetadata {
            item: "Virtual Disk Size",
            problem: format!(
                "{virtual_size} bytes is not a multiple of the {logical_sector}-byte logical sector from 1 sector to 64 TiB"
            ),
        });
    }
    Ok(DiskParams {
        block_size,
        leave_blocks_allocated: flags & LEAVE_BLOCKS_ALLOCATED != 0,
        virtual_size,
        disk_id: get_guid(&id, 0).unwrap_or_default(),
        logical_sector,
        physical_sector,
    })
}

/// Where item `k`'s entry is in the table (for tests that damage one field).
#[cfg(test)]
pub(crate) fn entry_offset(k: usize) -> usize {
    ENTRIES + k * ENTRY_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DiskParams {
        DiskParams {
            block_size: 1 << 20,
            leave_blocks_allocated: false,
            virtual_size: 64 << 20,
            disk_id: [3; 16],
            logical_sector: 512,
            physical_sector: 4096,
        }
    }

    fn decode_bytes(b: &[u8]) -> Result<DiskParams, VhdxError> {
        decode(&b[..TABLE_LEN], 1 << 20, &mut |off, len| {
            Ok(b[off as usize..off as usize + len].to_vec())
        })
    }

    #[test]
    fn metadata_round_trips() {
        assert_eq!(decode_bytes(&encode(&params())), Ok(params()));
    }

    #[test]
    fn each_rule_is_enforced() {
        let mut p = params();
        p.block_size = 3 << 20;
        assert!(matches!(
            decode_bytes(&encode(&p)),
            Err(VhdxError::BadMetadata {
                item: "File Parameters",
                ..
            })
        ));
        p.block_size = 512 << 20;
        assert!(decode_bytes(&encode(&p)).is_err());
        let mut p = params();
        p.virtual_size = 1000;
        assert!(matches!(
            decode_bytes(&encode(&p)),
            Err(VhdxError::BadMetadata {
                item: "Virtual Disk Size",
                ..
            })
        ));
        let mut p = params();
        p.logical_sector = 1024;
        assert!(decode_bytes(&encode(&p)).is_err());

        // An unknown required item, then the same item not required (ignored).
        let mut b = encode(&params());
        let e = entry_offset(4);
        b[e] ^= 0xff;
        assert!(matches!(
            decode_bytes(&b),
            Err(VhdxError::UnknownRequiredMetadata(_))
        ));
        put_u32le(&mut b, e + E_FLAGS, IS_VIRTUAL_DISK);
        assert_eq!(
            decode_bytes(&b),
            Err(VhdxError::MissingMetadata("Physical Sector Size"))
        );

        // HasParent.
        let mut b = encode(&params());
        put_u32le(&mut b, TABLE_LEN + 4, HAS_PARENT);
        assert_eq!(decode_bytes(&b), Err(VhdxError::Differencing));
    }
}
