//! The region table (MS-VHDX 2.2.3): where the BAT and the metadata region are.
//!
//! Two identical copies sit at 192 KiB and 256 KiB, 64 KiB each: signature `regi`, a
//! CRC-32C over the whole 64 KiB with its own field as zero, the entry count (at most
//! 2047, what fits), then 32-byte entries: GUID, file offset, length, and a Required
//! flag. A required region a reader does not know makes the file unreadable to it
//! (2.2.3.2). Regions are 1 MiB aligned, a multiple of 1 MiB long (2.2.3.2), and overlap
//! neither each other, the header section nor the log.

use super::error::VhdxError;
use super::header::HEADER_SECTION_END;
use super::{KIB64, MIB, crc_with_zeroed, get_guid, get_u64le, guid_bytes, guid_text, put_u64le};
use crate::util::{get_u32le, put_u32le};

/// Where the two copies are.
pub(crate) const TABLE_OFFSETS: [u64; 2] = [3 * KIB64, 4 * KIB64];
/// A copy's length, and the range its checksum covers.
pub(crate) const TABLE_LEN: usize = 64 << 10;
/// The BAT region's GUID (2.2.3.2).
pub(crate) const BAT_REGION: u128 = 0x2DC2_7766_F623_4200_9D64_115E_9BFD_4A08;
/// The metadata region's GUID (2.2.3.2).
pub(crate) const METADATA_REGION: u128 = 0x8B7C_A206_4790_4B9A_B8FE_575F_050F_886E;

const SIGNATURE: &[u8; 4] = b"regi";
const RT_CHECKSUM: usize = 0x04;
const RT_ENTRY_COUNT: usize = 0x08;
const ENTRIES: usize = 16;
const ENTRY_LEN: usize = 32;
const MAX_ENTRIES: u32 = 2047;
const E_FILE_OFFSET: usize = 0x10;
const E_LENGTH: usize = 0x18;
const E_FLAGS: usize = 0x1c;

/// One region table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub(crate) guid: [u8; 16],
    pub(crate) offset: u64,
    pub(crate) length: u32,
    pub(crate) required: bool,
}

/// The regions this crate reads, found and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Regions {
    /// BAT region: offset and length.
    pub(crate) bat: (u64, u64),
    /// Metadata region: offset and length.
    pub(crate) metadata: (u64, u64),
    /// Every range of the file that holds no payload (start, end, name): the header
    /// section, the log and each region; no payload block may overlap one.
    pub(crate) taken: Vec<(u64, u64, String)>,
}

/// A 64 KiB region table holding `regions`, with its checksum.
pub(crate) fn encode(regions: &[Region]) -> Vec<u8> {
    let mut b = vec![0u8; TABLE_LEN];
    b[..4].copy_from_slice(SIGNATURE);
    put_u32le(&mut b, RT_ENTRY_COUNT, regions.len() as u32);
    for (i, r) in regions.iter().enumerate() {
        let e = ENTRIES + i * ENTRY_LEN;
        b[e..e + 16].copy_from_slice(&r.guid);
        put_u64le(&mut b, e + E_FILE_OFFSET, r.offset);
        put_u32le(&mut b, e + E_LENGTH, r.length);
        put_u32le(&mut b, e + E_FLAGS, u32::from(r.required));
    }
    let crc = crc_with_zeroed(&b, RT_CHECKSUM);
    put_u32le(&mut b, RT_CHECKSUM, crc);
    b
}

/// Decodes one copy; the error says why it is not a valid table.
pub(crate) fn decode(b: &[u8]) -> Result<Vec<Region>, String> {
    if b.len() < TABLE_LEN {
        return Err("it lies past the end of the file".to_owned());
    }
    if &b[..4] != SIGNATURE {
        return Err("its signature is not 'regi'".to_owned());
    }
    let stored = get_u32le(b, RT_CHECKSUM).unwrap_or(0);
    let actual = crc_with_zeroed(&b[..TABLE_LEN], RT_CHECKSUM);
    if stored != actual {
        return Err(format!(
            "its checksum is {stored:#010x}, but its bytes give {actual:#010x}"
        ));
    }
    let count = get_u32le(b, RT_ENTRY_COUNT).unwrap_or(0);
    if count > MAX_ENTRIES {
        return Err(format!(
            "it claims {count} entries; at most {MAX_ENTRIES} fit"
        ));
    }
    Ok((0..count as usize)
        .map(|i| {
            let e = ENTRIES + i * ENTRY_LEN;
            Region {
                guid: get_guid(b, e).unwrap_or_default(),
                offset: get_u64le(b, e + E_FILE_OFFSET).unwrap_or(0),
                length: get_u32le(b, e + E_LENGTH).unwrap_or(0),
                required: get_u32le(b, e + E_FLAGS).unwrap_or(0) & 1 != 0,
            }
        })
        .collect())
}

/// The table to use: copy 1, or copy 2 when copy 1 is damaged.
pub(crate) fn choose(
    first: Result<Vec<Region>, String>,
    second: Result<Vec<Region>, String>,
) -> Result<Vec<Region>, VhdxError> {
    match (first, second) {
        (Ok(t), _) | (Err(_), Ok(t)) => Ok(t),
        (Err(first), Err(second)) => Err(VhdxError::RegionTables { first, second }),
    }
}

/// Finds the BAT and metadata regions and checks every region: unique known regions, no
/// unknown required one, 1 MiB alignment, inside a `file_len`-byte file, no overlap with
/// the header section, the log (`log`: offset, length) or each other.
pub(crate) fn resolve(
    entries: &[Region],
    file_len: u64,
    log: (u64, u64),
) -> Result<Regions, VhdxError> {
    let (bat_guid, md_guid) = (guid_bytes(BAT_REGION), guid_bytes(METADATA_REGION));
    let mut bat = None;
    let mut metadata = None;
    let mut taken: Vec<(u64, u64, String)> =
        vec![(0, HEADER_SECTION_END, "the header section".into())];
    if log.1 > 0 {
        taken.push((log.0, log.0 + log.1, "the log".into()));
    }
    for r in entries {
        let name = if r.guid == bat_guid {
            "BAT".to_owned()
        } else if r.guid == md_guid {
            "metadata".to_owned()
        } else if r.required {
            return Err(VhdxError::UnknownRequiredRegion(guid_text(&r.guid)));
        } else {
            format!("region {}", guid_text(&r.guid))
        };
        let (off, len) = (r.offset, u64::from(r.length));
        if !off.is_multiple_of(MIB) || !len.is_multiple_of(MIB) || len == 0 {
            return Err(VhdxError::BadRegion(format!(
                "the {name} region (offset {off}, length {len}) is not a whole number of MiB at a MiB boundary"
            )));
        }
        let end = off.saturating_add(len);
        if end > file_len {
            return Err(VhdxError::Truncated {
                len: file_len,
                need: end,
                what: format!("the {name} region"),
            });
        }
        if let Some((_, _, other)) = taken.iter().find(|(s, e, _)| off < *e && *s < end) {
            return Err(VhdxError::BadRegion(format!(
                "the {name} region (offset {off}, length {len}) overlaps {other}"
            )));
        }
        let slot = if r.guid == bat_guid {
            Some(&mut bat)
        } else if r.guid == md_guid {
            Some(&mut metadata)
        } else {
            None
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(VhdxError::BadRegion(format!(
                    "the region table names the {name} region twice"
                )));
            }
            *slot = Some((off, len));
        }
        taken.push((off, end, format!("the {name} region")));
    }
    Ok(Regions {
        bat: bat.ok_or(VhdxError::MissingRegion("BAT"))?,
        metadata: metadata.ok_or(VhdxError::MissingRegion("metadata"))?,
        taken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<Region> {
        vec![
            Region {
                guid: guid_bytes(METADATA_REGION),
                offset: 2 * MIB,
                length: MIB as u32,
                required: true,
            },
            Region {
                guid: guid_bytes(BAT_REGION),
                offset: 3 * MIB,
                length: MIB as u32,
                required: true,
            },
        ]
    }

    #[test]
    fn a_table_round_trips_and_resolves() {
        let t = decode(&encode(&table())).expect("valid");
        assert_eq!(t, table());
        let r = resolve(&t, 4 * MIB, (MIB, MIB)).expect("resolves");
        assert_eq!(r.bat, (3 * MIB, MIB));
        assert_eq!(r.metadata, (2 * MIB, MIB));
    }

    #[test]
    fn refusals_name_the_problem() {
        let mut b = encode(&table());
        b[100] ^= 1;
        assert!(decode(&b).expect_err("crc").contains("checksum"));
        let mut t = table();
        t[1].offset = 2 * MIB;
        let e = resolve(&t, 4 * MIB, (MIB, MIB))
            .expect_err("overlap")
            .to_string();
        assert!(e.contains("overlaps the metadata region"), "{e}");
        let e = resolve(&table(), 3 * MIB, (MIB, MIB))
            .expect_err("short")
            .to_string();
        assert!(e.contains("BAT region"), "{e}");
        let mut t = table();
        t.push(Region {
            guid: [5; 16],
            offset: 5 * MIB,
            length: MIB as u32,
            required: true,
        });
        assert!(matches!(
            resolve(&t, 8 * MIB, (MIB, MIB)),
            Err(VhdxError::UnknownRequiredRegion(_))
        ));
        t[2].required = false;
        assert!(resolve(&t, 8 * MIB, (MIB, MIB)).is_ok());
        assert_eq!(
            resolve(&table()[..1], 4 * MIB, (MIB, MIB)),
            Err(VhdxError::MissingRegion("BAT"))
        );
    }
}
