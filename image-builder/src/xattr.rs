//! Extended attribute blocks (`struct ext4_xattr_header`, `ext4_xattr_entry`;
//! Documentation/filesystems/ext4/attributes.rst).
//!
//! Every inode with attributes points (`i_file_acl`) at one block: a 32-byte header
//! (magic 0xEA020000, reference count, block count 1, hash, checksum), entries sorted by
//! (name index, name length, name), a 4-byte zero terminator, and the values packed
//! from the end of the block. Inodes with the same attributes share one block through
//! the reference count. Attributes are never stored inside the inode: 128-byte inodes
//! have no room, and one layout keeps both paths one.

use crate::checksum::crc32c_raw;
use crate::tree::Xattr;
use crate::util::{put_u16le, put_u32le};

const MAGIC: u32 = 0xea02_0000;
const HEADER_LEN: usize = 32;
const ENTRY_HEAD: usize = 16;

/// Splits a full attribute name into (name index, suffix) as the kernel stores it.
fn name_index(name: &[u8]) -> Option<(u8, &[u8])> {
    const PREFIXES: &[(&[u8], u8)] = &[(b"user.", 1), (b"trusted.", 4), (b"security.", 6)];
    PREFIXES
        .iter()
        .find_map(|(p, i)| name.strip_prefix(*p).map(|rest| (*i, rest)))
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
    put_u32le(&mut b, 8, 1); // h_blocks
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
        b[off] = name.len() as u8;
        b[off + 1] = *idx;
        put_u16le(&mut b, off + 2, voff as u16);
        put_u32le(&mut b, off + 4, 0); // e_value_inum
        put_u32le(&mut b, off + 8, value.len() as u32);
        put_u32le(&mut b, off + 12, entry_hash(name, value));
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
    put_u32le(&mut b, 0x0c, h);
    Ok(b)
}

/// Sets the reference count and, with metadata_csum, the checksum (seeded by the fs
/// seed and the block's own number).
pub(crate) fn seal(b: &mut [u8], refcount: u32, block_nr: u64, fs_seed: Option<u32>) {
    put_u32le(b, 4, refcount);
    if let Some(seed) = fs_seed {
        put_u32le(b, 0x10, 0);
        let crc = crc32c_raw(crc32c_raw(seed, &block_nr.to_le_bytes()), b);
        put_u32le(b, 0x10, crc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
