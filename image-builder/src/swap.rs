//! Swap images: the Linux swap header, version 1 (`union swap_header` in the kernel's
//! include/linux/swap.h), as mkswap writes it.
//!
//! The header fills the first page: bytes 0..1024 are left for boot code, then
//! `version` = 1, `last_page`, `nr_badpages` = 0, the UUID and a 16-byte label, and the
//! magic `SWAPSPACE2` in the page's last ten bytes. The page size is the guest's, 4096
//! on i386 and x86_64, not the host's. The rest of the file is a hole. The version 0
//! format (`SWAP-SPACE`) left the kernel in 2.5.22, so v1 suits every 2.6 guest.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::disk::DiskFormat;
use crate::error::Error;
use crate::output::Output;
use crate::util::put_u32le;

/// The guest page size every coLinux, UML and QEMU x86 guest uses.
pub const PAGE_SIZE: u64 = 4096;
/// The fewest pages `swapon` accepts.
pub const MIN_PAGES: u64 = 10;

/// What to write.
#[derive(Clone, Debug)]
pub struct SwapOptions {
    /// Size in bytes (rounded down to whole pages).
    pub size: u64,
    /// Label, at most 16 bytes.
    pub label: Option<String>,
    /// UUID; derived from the size, label and file name when `None`.
    pub uuid: Option<[u8; 16]>,
    /// Replace an existing file.
    pub force: bool,
    /// How the file holds the swap area: raw, or inside a dynamic VHDX.
    pub format: DiskFormat,
}

/// What was written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SwapReport {
    /// Pages in the swap area, the header page included.
    pub pages: u64,
    /// Bytes.
    pub size_bytes: u64,
    /// UUID.
    pub uuid: String,
    /// Label.
    pub label: String,
}

/// Writes a swap image at `out`.
pub fn write_swap(out: &Path, opts: &SwapOptions) -> Result<SwapReport, Error> {
    let pages = opts.size / PAGE_SIZE;
    if pages < MIN_PAGES {
        return Err(Error::TooSmall {
            size: opts.size,
            minimum: MIN_PAGES * PAGE_SIZE,
            what: "a swap area (10 pages)".to_owned(),
        });
    }
    // last_page is a 32-bit field: at most 2^32 pages.
    if pages > u64::from(u32::MAX) {
        return Err(Error::TooLarge {
            size: opts.size,
            max: u64::from(u32::MAX) * PAGE_SIZE,
        });
    }
    let label = opts.label.clone().unwrap_or_default();
    if label.len() > 16 {
        return Err(Error::BadArgument(format!(
            "label '{label}' is {} bytes; at most 16 fit",
            label.len()
        )));
    }
    let uuid = opts.uuid.unwrap_or_else(|| {
        let mut h = Sha256::new();
        h.update(b"colinux-setup swap id v1\0");
        h.update(pages.to_le_bytes());
        h.update(label.as_bytes());
        h.update(crate::disk::id_name(out, opts.format));
        let d = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        id[6] = (id[6] & 0x0f) | 0x80;
        id[8] = (id[8] & 0x3f) | 0x80;
        id
    });
    let mut page = vec![0u8; PAGE_SIZE as usize];
    put_u32le(&mut page, 1024, 1); // version
    put_u32le(&mut page, 1028, (pages - 1) as u32); // last_page
    put_u32le(&mut page, 1032, 0); // nr_badpages
    page[1036..1052].copy_from_slice(&uuid);
    page[1052..1052 + label.len()].copy_from_slice(label.as_bytes());
    page[PAGE_SIZE as usize - 10..].copy_from_slice(b"SWAPSPACE2");
    let mut output = Output::create(out, pages * PAGE_SIZE, opts.force, opts.format)?;
    output.write_at(0, &page)?;
    output.identify(&uuid);
    output.commit(opts.force)?;
    Ok(SwapReport {
        pages,
        size_bytes: pages * PAGE_SIZE,
        uuid: uuid::Uuid::from_bytes(uuid).hyphenated().to_string(),
        label,
    })
}
