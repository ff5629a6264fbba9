//! Extended attribute blocks (`struct ext4_xattr_header`, `ext4_xattr_entry`;
//! Documentation/filesystems/ext4/attributes.rst).
//!
//! Every inode with attributes points (`i_file_acl`) at one block: a 32-byte header
//! (magic 0xEA020000, reference count, block count 1, hash, checksum), entries sorted by
//! (name index, name length, name), a 4-byte zero terminator, and the values packed
//! from the end of the block. Inodes with the same attributes share one block through
//! the reference count. Attributes are never stored inside the inode: 128-byte inodes
//! have no room, and one layout keeps both paths one.
//!
//! [`encode`] and [`seal`] write a block for the writer; [`decode_header`],
//! [`decode_entries`], [`in_inode`] and [`block_checksum`] read attributes for the
//! readers, from a block or from the space after an inode's extra fields (other tools
//! put small attributes there).

use std::fmt;

use crate::checksum::crc32c_raw;
use crate::tree::Xattr;
use crate::util::{get_u16le, get_u32le, put_u16le, put_u32le};

/// `h_magic` of a block, and the word that opens the attribute space in an inode.
pub(crate) const MAGIC: u32 = 0xea02_0000;
const HEADER_LEN: usize = 32;
const ENTRY_HEAD: usize = 16;
// Header fields (`struct ext4_xattr_header`).
const H_REFCOUNT: usize = 0x04;
const H_BLOCKS: usize = 0x08;
const H_HASH: usize = 0x0c;
const H_CHECKSUM: usize = 0x10;
// Entry fields (`struct ext4_xattr_entry`).
const E_NAME_LEN: usize = 0;
const E_NAME_INDEX: usize = 1;
const E_VALUE_OFFS: usize = 2;
const E_VALUE_INUM: usize = 4;
const E_VALUE_SIZE: usize = 8;
const E_HASH: usize = 12;

/// The name indexes images carry, with the prefix each stands for.
const PREFIXES: &[(&[u8], u8)] = &[(b"user.", 1), (b"trusted.", 4), (b"security.", 6)];

/// Splits a full attribute name into (name index, suffix) as the kernel stores it.
fn name_index(name: &[u8]) -> Option<(u8, &[u8])> {
    PREFIXES
        .iter()
        .find_map(|(p, i)| name.strip_prefix(*p).map(|rest| (*i, rest)))
}

/// The prefix a name index stands for (`None`: a namespace images do not carry, such
/// as POSIX ACLs, index 2 and 3).
fn prefix_of(index: u8) -> Option<&'static [u8]> {
    PREFIXES.iter().find(|(_, i)| *i == index).map(|(p, _)| *p)
}

/// The kernel's per-entry hash (`ext4_xattr_hash_entry`): the name's bytes (as signed
/// chars, as 2.6 kernels compute it) then the value's little-endian words.
fn entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 5) ^ (h >> 27) ^ (c as i8 as i32 as u32);
    }
    for w in value.chunks(4) {
        let mut word = [0u8; 4];
        word[..w.len()].copy_from_slice(w);
        h = (h << 16) ^ (h >> 16) ^ u32::from_le_bytes(word);
    }
    h
}

/// The content of an attribute block for `attrs`, with refcount, hash and checksum left
/// to [`seal`]. Errors name the problem (unsupported namespace, too large).
pub(crate) fn encode(attrs: &[Xattr], block_size: usize) -> Result<Vec<u8>, String> {
    let mut items: Vec<(u8, &[u8], &[u8])> = Vec::with_capacity(attrs.len());
    for a in attrs {
        let (idx, suffix) = name_index(&a.name).ok_or_else(|| {
            format!(
                "attribute '{}' is in a namespace images do not carry",
                String::from_utf8_lossy(&a.name)
            )
        })?;
        if suffix.len() > 255 {
            return Err(format!(
                "attribute name '{}' is over 255 bytes",
                String::from_utf8_lossy(&a.name)
            ));
        }
        items.push((idx, suffix, &a.value));
    }
    items.sort_by(|a, b| (a.0, a.1.len(), a.1).cmp(&(b.0, b.1.len(), b.1)));
    let need: usize = HEADER_LEN
        + 4
        + items
            .iter()
            .map(|(_, n, v)| (ENTRY_HEAD + n.len()).div_ceil(4) * 4 + v.len().div_ceil(4) * 4)
            .sum::<usize>();
    if need > block_size {
        return Err(format!(
            "its extended attributes take {need} bytes; one block holds {block_size}"
        ));
    }
    let mut b = vec![0u8; block_size];
    put_u32le(&mut b, 0, MAGIC);
    put_u32le(&mut b, H_BLOCKS, 1);
    let mut off = HEADER_LEN;
    let mut value_end = block_size;
    for (idx, name, value) in &items {
        let vlen = value.len().div_ceil(4) * 4;
        let voff = if value.is_empty() {
            0
        } else {
            value_end - vlen
        };
        if !value.is_empty() {
            b[voff..voff + value.len()].copy_from_slice(value);
            value_end = voff;
        }
        b[off + E_NAME_LEN] = name.len() as u8;
        b[off + E_NAME_INDEX] = *idx;
        put_u16le(&mut b, off + E_VALUE_OFFS, voff as u16);
        put_u32le(&mut b, off + E_VALUE_INUM, 0);
        put_u32le(&mut b, off + E_VALUE_SIZE, value.len() as u32);
        put_u32le(&mut b, off + E_HASH, entry_hash(name, value));
        b[off + ENTRY_HEAD..off + ENTRY_HEAD + name.len()].copy_from_slice(name);
        off += (ENTRY_HEAD + name.len()).div_ceil(4) * 4;
    }
    // Block hash (`ext4_xattr_rehash`): the entry hashes folded together.
    let mut h: u32 = 0;
    let mut e = HEADER_LEN;
    while e < off {
        let eh = u32::from_le_bytes([b[e + 12], b[e + 13], b[e + 14], b[e + 15]]);
        h = (h << 16) ^ (h >> 16) ^ eh;
        e += (ENTRY_HEAD + usize::from(b[e])).div_ceil(4) * 4;
    }
    put_u32le(&mut b, H_HASH, h);
    Ok(b)
}

/// Sets the reference count and, with metadata_csum, the checksum (seeded by the fs
/// seed and the block's own number).
pub(crate) fn seal(b: &mut [u8], refcount: u32, block_nr: u64, fs_seed: Option<u32>) {
    put_u32le(b, H_REFCOUNT, refcount);
    if let Some(seed) = fs_seed {
        let (_, crc) = block_checksum(b, block_nr, seed);
        put_u32le(b, H_CHECKSUM, crc);
    }
}

/// An attribute block's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub refcount: u32,
    pub blocks: u32,
}

/// Decodes a block's header; `None` when `h_magic` is wrong.
pub(crate) fn decode_header(block: &[u8]) -> Option<Header> {
    (get_u32le(block, 0)? == MAGIC).then_some(())?;
    Some(Header {
        refcount: get_u32le(block, H_REFCOUNT)?,
        blocks: get_u32le(block, H_BLOCKS)?,
    })
}

/// A block's checksum as stored and as computed: crc32c seeded by the fs seed and the
/// block number, over the block with `h_checksum` zero.
pub(crate) fn block_checksum(block: &[u8], block_nr: u64, fs_seed: u32) -> (u32, u32) {
    let stored = get_u32le(block, H_CHECKSUM).unwrap_or(0);
    let mut z = block.to_vec();
    if let Some(f) = z.get_mut(H_CHECKSUM..H_CHECKSUM + 4) {
        f.fill(0);
    }
    (
        stored,
        crc32c_raw(crc32c_raw(fs_seed, &block_nr.to_le_bytes()), &z),
    )
}

/// Why attribute entries cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XattrError {
    /// An entry's name runs past the space that holds it.
    NameRunsPast,
    /// A value's offset and size run past the space that holds it.
    ValueRunsPast,
}

impl fmt::Display for XattrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XattrError::NameRunsPast => "an attribute name runs past its block",
            XattrError::ValueRunsPast => "an attribute value runs past its block",
        })
    }
}

/// Appends the attributes of the entries in `entries` (up to the zero word that ends
/// them); value offsets count from the start of `values` (the block, or inside an
/// inode the first entry). Entries in namespaces images do not carry, and values kept
/// in inodes of their own (ea_inode), are left out.
pub(crate) fn decode_entries(
    entries: &[u8],
    values: &[u8],
    out: &mut Vec<Xattr>,
) -> Result<(), XattrError> {
    let mut off = 0;
    while off + ENTRY_HEAD <= entries.len() && get_u32le(entries, off) != Some(0) {
        let name_len = usize::from(entries[off + E_NAME_LEN]);
        let index = entries[off + E_NAME_INDEX];
        let voff = usize::from(get_u16le(entries, off + E_VALUE_OFFS).unwrap_or(0));
        let vinum = get_u32le(entries, off + E_VALUE_INUM).unwrap_or(0);
        let vsize = get_u32le(entries, off + E_VALUE_SIZE).unwrap_or(0);
        let name = entries
            .get(off + ENTRY_HEAD..off + ENTRY_HEAD + name_len)
            .ok_or(XattrError::NameRunsPast)?;
        if let (Some(prefix), 0) = (prefix_of(index), vinum) {
            let value = usize::try_from(vsize)
                .ok()
                .and_then(|n| voff.checked_add(n))
                .and_then(|end| values.get(voff..end))
                .ok_or(XattrError::ValueRunsPast)?;
            let mut full = prefix.to_vec();
            full.extend_from_slice(name);
            out.push(Xattr {
                name: full,
                value: value.to_vec(),
            });
        }
        off += (ENTRY_HEAD + name_len).div_ceil(4) * 4;
    }
    Ok(())
}

/// The attributes of a block whose magic is right.
pub(crate) fn decode_block(block: &[u8], out: &mut Vec<Xattr>) -> Result<(), XattrError> {
    decode_entries(block.get(HEADER_LEN..).unwrap_or(&[]), block, out)
}

/// The attribute space inside an inode record: after the 128 fixed bytes and
/// `i_extra_isize`, a magic word, then entries whose values count from the first
/// entry. `None` when the inode has none.
pub(crate) fn in_inode(raw: &[u8]) -> Option<&[u8]> {
    if raw.len() <= crate::inode::GOOD_OLD_INODE_SIZE {
        return None;
    }
    let extra = usize::from(get_u16le(raw, 0x80)?);
    let start = crate::inode::GOOD_OLD_INODE_SIZE + extra;
    (get_u32le(raw, start)? == MAGIC).then(|| &raw[start + 4..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;

    #[test]
    fn reads_what_debugfs_wrote() {
        // test_data/ext4.img's /attr (inode 12, slot 11): user.colour=blue inside the
        // inode, a 300-byte user.big in block 1136 (debugfs "stat /attr").
        let img = test_data::ext4();
        let at = 50 * 1024 + 11 * 256;
        let raw = &img[at..at + 256];
        let region = in_inode(raw).expect("in-inode attributes");
        let mut got = Vec::new();
        decode_entries(region, region, &mut got).expect("sound");
        let block = test_data::block(img, 1136);
        let h = decode_header(block).expect("magic");
        assert_eq!(
            h,
            Header {
                refcount: 1,
                blocks: 1
            }
        );
        decode_block(block, &mut got).expect("sound");
        let names: Vec<&[u8]> = got.iter().map(|x| x.name.as_slice()).collect();
        assert_eq!(names, [&b"user.colour"[..], b"user.big"]);
        assert_eq!(got[0].value, b"blue");
        assert_eq!(got[1].value, vec![b'x'; 300]);
        let sb = crate::superblock::Superblock::decode(&img[1024..2048]).expect("sb");
        let (stored, computed) = block_checksum(block, 1136, sb.csum_seed().expect("csum"));
        assert_eq!(stored, computed);
    }

    #[test]
    fn entries_running_past_their_block_are_named() {
        let block = test_data::block(test_data::ext4(), 1136).to_vec();
        let mut b = block.clone();
        // A 255-byte name still fits the block; a value 4 GiB long does not.
        b[HEADER_LEN + E_NAME_LEN] = 255;
        put_u32le(&mut b, HEADER_LEN + E_VALUE_SIZE, 0xffff_ffff);
        assert_eq!(
            decode_block(&b, &mut Vec::new()),
            Err(XattrError::ValueRunsPast)
        );
        let mut b = block.clone();
        put_u16le(&mut b, HEADER_LEN + E_VALUE_OFFS, 1000);
        assert_eq!(
            decode_block(&b, &mut Vec::new()),
            Err(XattrError::ValueRunsPast)
        );
        let mut b = block[..HEADER_LEN + 20].to_vec();
        b[HEADER_LEN + E_NAME_LEN] = 10;
        assert_eq!(
            decode_block(&b, &mut Vec::new()),
            Err(XattrError::NameRunsPast)
        );
        let mut b = block;
        b[3] = 0; // h_magic 0xEA020000, little-endian: its high byte
        assert_eq!(decode_header(&b), None);
    }

    #[test]
    fn what_is_encoded_decodes_to_the_same_attributes() {
        let attrs = vec![
            Xattr {
                name: b"security.selinux".to_vec(),
                value: b"system_u:object_r:etc_t:s0".to_vec(),
            },
            Xattr {
                name: b"user.a".to_vec(),
                value: b"a\nb\0".to_vec(),
            },
        ];
        let mut b = encode(&attrs, 1024).expect("fits");
        seal(&mut b, 3, 99, Some(5));
        let mut back = Vec::new();
        decode_block(&b, &mut back).expect("sound");
        back.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(back, attrs);
        assert_eq!(
            decode_header(&b),
            Some(Header {
                refcount: 3,
                blocks: 1
            })
        );
        let (stored, computed) = block_checksum(&b, 99, 5);
        assert_eq!(stored, computed);
    }

    #[test]
    fn entries_are_sorted_and_values_packed_at_the_end() {
        let attrs = vec![
            Xattr {
                name: b"user.zz".to_vec(),
                value: b"1".to_vec(),
            },
            Xattr {
                name: b"security.selinux".to_vec(),
                value: b"system_u:object_r:etc_t:s0".to_vec(),
            },
            Xattr {
                name: b"user.a".to_vec(),
                value: b"hello".to_vec(),
            },
        ];
        let b = encode(&attrs, 1024).expect("fits");
        // user (index 1) before security (6); within user, shorter names first.
        assert_eq!((b[32], b[33]), (1, 1));
        assert_eq!(&b[48..49], b"a");
        let first_voff = usize::from(u16::from_le_bytes([b[34], b[35]]));
        assert_eq!(&b[first_voff..first_voff + 5], b"hello");
    }

    #[test]
    fn oversized_and_foreign_attributes_are_refused() {
        let big = vec![Xattr {
            name: b"user.big".to_vec(),
            value: vec![1; 5000],
        }];
        assert!(encode(&big, 4096).is_err());
        let acl = vec![Xattr {
            name: b"system.posix_acl_access".to_vec(),
            value: vec![2; 4],
        }];
        assert!(encode(&acl, 4096).is_err());
    }
}
