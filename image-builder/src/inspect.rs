//! `inspect`: what an image is, read from its superblock (or swap header), without
//! trusting it further than the fields it reads.

use std::path::Path;

use crate::disk::DiskFormat;
use crate::error::Error;
use crate::features::{
    COMPAT_HAS_JOURNAL, INCOMPAT_64BIT, INCOMPAT_EXTENTS, INCOMPAT_FLEX_BG, RO_COMPAT_HUGE_FILE,
    RO_COMPAT_METADATA_CSUM, feature_names,
};
use crate::reader::ImageFile;
use crate::superblock::{Superblock, SuperblockError};
use crate::swap::{PAGE_SIZE, SwapHeader, SwapMagic};

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
    inspect_file(&ImageFile::open(path)?)
}

/// Describes the open image `img` (`check` opens it once for both).
pub(crate) fn inspect_file(img: &ImageFile) -> Result<ImageInfo, Error> {
    let path = img.path();
    let (format, file_bytes, disk_bytes) = (img.format(), img.file_len(), img.len());
    let not = |reason: String| Error::NotAnImage {
        path: path.to_owned(),
        reason,
    };
    let head = img
        .read_padded(0, PAGE_SIZE.min(disk_bytes) as usize)
        .map_err(|e| e.into_error(path))?;
    if let Some(h) = SwapHeader::decode(&head).filter(|h| h.magic == SwapMagic::V1) {
        let pages = u64::from(h.last_page) + 1;
        return Ok(ImageInfo {
            kind: ImageKind::Swap,
            format,
            file_bytes,
            size_bytes: pages * PAGE_SIZE,
            block_size: PAGE_SIZE as u32,
            features: Vec::new(),
            label: cstr(&h.label),
            uuid: uuid_str(&h.uuid),
            blocks: pages,
            free_blocks: u64::from(h.last_page),
            used_blocks: 1,
            inodes: 0,
            free_inodes: 0,
            used_inodes: 0,
            inode_size: 0,
            groups: 0,
            clean: true,
        });
    }
    let sb = img.superblock().map_err(|e| match e {
        SuperblockError::Magic(_) => {
            not("no ext2/3/4 superblock at byte 1024 and no swap signature".to_owned())
        }
        e => not(e.to_string()),
    })?;
    Ok(ImageInfo {
        kind: kind_of(&sb),
        format,
        file_bytes,
        // Saturating: a damaged superblock may count more bytes than a u64 holds.
        size_bytes: sb.blocks_count.saturating_mul(u64::from(sb.block_size)),
        block_size: sb.block_size,
        features: feature_names(sb.feature_compat, sb.feature_incompat, sb.feature_ro_compat),
        label: cstr(&sb.volume_name),
        uuid: uuid_str(&sb.uuid),
        blocks: sb.blocks_count,
        free_blocks: sb.free_blocks_count,
        used_blocks: sb.blocks_count.saturating_sub(sb.free_blocks_count),
        inodes: u64::from(sb.inodes_count),
        free_inodes: u64::from(sb.free_inodes_count),
        used_inodes: u64::from(sb.inodes_count.saturating_sub(sb.free_inodes_count)),
        inode_size: sb.inode_size,
        groups: sb.groups(),
        clean: sb.clean(),
    })
}

/// ext4 when any ext4-only feature is on, ext3 with a journal, else ext2.
pub(crate) fn kind_of(sb: &Superblock) -> ImageKind {
    if sb.feature_incompat & (INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG | INCOMPAT_64BIT) != 0
        || sb.feature_ro_compat & (RO_COMPAT_HUGE_FILE | RO_COMPAT_METADATA_CSUM) != 0
    {
        ImageKind::Ext4
    } else if sb.feature_compat & COMPAT_HAS_JOURNAL != 0 {
        ImageKind::Ext3
    } else {
        ImageKind::Ext2
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn uuid_str(b: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*b).hyphenated().to_string()
}
