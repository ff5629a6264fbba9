//! `inspect`: what an image is, read from its superblock (or swap header), without
//! trusting it further than the fields it reads.

use std::path::Path;

use crate::disk::{DiskFormat, VirtualDisk};
use crate::error::Error;
use crate::features::feature_names;
use crate::util::{get_u16le, get_u32le};

/// The kind of image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// ext2 (no journal, no extents).
    Ext2,
    /// ext3 (journal, no extents).
    Ext3,
    /// ext4 (extents or other ext4 features).
    Ext4,
    /// Linux swap, version 1.
    Swap,
}

/// What [`inspect`] found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageInfo {
    /// Kind.
    pub kind: ImageKind,
    /// How the file holds the disk (raw, or a VHDX's virtual disk).
    pub format: DiskFormat,
    /// File size in bytes.
    pub file_bytes: u64,
    /// Filesystem (or swap area) size in bytes.
    pub size_bytes: u64,
    /// Block (or page) size.
    pub block_size: u32,
    /// Feature names, mke2fs spelling (empty for swap).
    pub features: Vec<String>,
    /// Label.
    pub label: String,
    /// UUID.
    pub uuid: String,
    /// Blocks (or pages).
    pub blocks: u64,
    /// Free blocks, as the superblock counts them.
    pub free_blocks: u64,
    /// Used blocks.
    pub used_blocks: u64,
    /// Inodes.
    pub inodes: u64,
    /// Free inodes.
    pub free_inodes: u64,
    /// Used inodes.
    pub used_inodes: u64,
    /// Inode size in bytes.
    pub inode_size: u16,
    /// Block groups.
    pub groups: u64,
    /// Whether the filesystem was cleanly unmounted.
    pub clean: bool,
}

/// Reads the image at `path` and describes it.
pub fn inspect(path: &Path) -> Result<ImageInfo, Error> {
    let file = VirtualDisk::open(path)?;
    let (format, file_bytes) = (file.format(), file.file_len());
    let mut head = vec![0u8; 4096];
    let n = file.read_at(&mut head, 0).map_err(|e| Error::Read {
        path: path.to_owned(),
        source: e,
    })?;
    head.truncate(n);
    let not = |reason: &str| Error::NotAnImage {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if head.len() == 4096 && &head[4086..] == b"SWAPSPACE2" {
        let last_page = u64::from(get_u32le(&head, 1028).ok_or_else(|| not("short swap header"))?);
        let label = cstr(&head[1052..1068]);
        return Ok(ImageInfo {
            kind: ImageKind::Swap,
            format,
            file_bytes,
            size_bytes: (last_page + 1) * 4096,
            block_size: 4096,
            features: Vec::new(),
            label,
            uuid: uuid_str(&head[1036..1052]),
            blocks: last_page + 1,
            free_blocks: last_page,
            used_blocks: 1,
            inodes: 0,
            free_inodes: 0,
            used_inodes: 0,
            inode_size: 0,
            groups: 0,
            clean: true,
        });
    }
    let sb = Superblock::parse(&head)
        .ok_or_else(|| not("no ext2/3/4 superblock at byte 1024 and no swap signature"))?;
    let (compat, incompat, ro) = (sb.compat, sb.incompat, sb.ro_compat);
    let kind = if incompat
        & (crate::features::INCOMPAT_EXTENTS
            | crate::features::INCOMPAT_FLEX_BG
            | crate::features::INCOMPAT_64BIT)
        != 0
        || ro & (crate::features::RO_COMPAT_HUGE_FILE | crate::features::RO_COMPAT_METADATA_CSUM)
            != 0
    {
        ImageKind::Ext4
    } else if compat & crate::features::COMPAT_HAS_JOURNAL != 0 {
        ImageKind::Ext3
    } else {
        ImageKind::Ext2
    };
    Ok(ImageInfo {
        kind,
        format,
        file_bytes,
        size_bytes: sb.blocks_count * u64::from(sb.block_size),
        block_size: sb.block_size,
        features: feature_names(compat, incompat, ro),
        label: cstr(&head[1024 + 0x78..1024 + 0x88]),
        uuid: uuid_str(&head[1024 + 0x68..1024 + 0x78]),
        blocks: sb.blocks_count,
        free_blocks: sb.free_blocks,
        used_blocks: sb.blocks_count.saturating_sub(sb.free_blocks),
        inodes: u64::from(sb.inodes_count),
        free_inodes: u64::from(sb.free_inodes),
        used_inodes: u64::from(sb.inodes_count.saturating_sub(sb.free_inodes)),
        inode_size: sb.inode_size,
        groups: sb.groups(),
        clean: sb.state & 1 == 1,
    })
}

/// The superblock fields the reader uses, validated enough to do arithmetic with.
#[derive(Clone, Debug)]
pub(crate) struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub free_blocks: u64,
    pub free_inodes: u32,
    pub first_data_block: u32,
    pub block_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub state: u16,
    pub inode_size: u16,
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
    pub desc_size: u16,
    pub uuid: [u8; 16],
}

impl Superblock {
    /// Parses the superblock from the first 2048+ bytes of an image; `None` when there is
    /// none or its geometry is impossible.
    pub(crate) fn parse(head: &[u8]) -> Option<Superblock> {
        let s = head.get(1024..2048)?;
        if get_u16le(s, 0x38)? != crate::superblock::EXT4_MAGIC {
            return None;
        }
        let log = get_u32le(s, 0x18)?;
        if log > 6 {
            return None;
        }
        let block_size = 1024u32 << log;
        let incompat = get_u32le(s, 0x60)?;
        let is64 = incompat & crate::features::INCOMPAT_64BIT != 0;
        let hi = |off| {
            if is64 {
                get_u32le(s, off).map(u64::from).unwrap_or(0) << 32
            } else {
                0
            }
        };
        let desc_size = if is64 { get_u16le(s, 0xfe)? } else { 32 };
        let rev = get_u32le(s, 0x4c)?;
        let sb = Superblock {
            inodes_count: get_u32le(s, 0x00)?,
            blocks_count: u64::from(get_u32le(s, 0x04)?) | hi(0x150),
            free_blocks: u64::from(get_u32le(s, 0x0c)?) | hi(0x158),
            free_inodes: get_u32le(s, 0x10)?,
            first_data_block: get_u32le(s, 0x14)?,
            block_size,
            blocks_per_group: get_u32le(s, 0x20)?,
            inodes_per_group: get_u32le(s, 0x28)?,
            state: get_u16le(s, 0x3a)?,
            inode_size: if rev == 0 { 128 } else { get_u16le(s, 0x58)? },
            compat: get_u32le(s, 0x5c)?,
            incompat,
            ro_compat: get_u32le(s, 0x64)?,
            desc_size,
            uuid: s[0x68..0x78].try_into().ok()?,
        };
        let sane = sb.blocks_per_group > 0
            && sb.blocks_per_group <= 8 * block_size
            && sb.inodes_per_group > 0
            && sb.inodes_per_group <= 8 * block_size
            && sb.inode_size >= 128
            && sb.inode_size.is_power_of_two()
            && u32::from(sb.inode_size) <= block_size
            && (32..=1024).contains(&sb.desc_size)
            && sb.blocks_count > u64::from(sb.first_data_block);
        sane.then_some(sb)
    }

    /// Number of block groups.
    pub(crate) fn groups(&self) -> u64 {
        (self.blocks_count - u64::from(self.first_data_block))
            .div_ceil(u64::from(self.blocks_per_group))
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn uuid_str(b: &[u8]) -> String {
    <[u8; 16]>::try_from(b)
        .map(|a| uuid::Uuid::from_bytes(a).hyphenated().to_string())
        .unwrap_or_default()
}
