//! Swap images: the Linux swap header, version 1 (`union swap_header` in the kernel's
//! include/linux/swap.h), as mkswap writes it.
//!
//! The header fills the first page: bytes 0..1024 are left for boot code, then
//! `version` = 1, `last_page`, `nr_badpages` = 0, the UUID and a 16-byte label, and the
//! magic `SWAPSPACE2` in the page's last ten bytes. The page size is the guest's, 4096
//! on i386 and x86_64, not the host's. The rest of the file is a hole. The version 0
//! format (`SWAP-SPACE`) left the kernel in 2.5.22, so v1 suits every 2.6 guest.
//!
//! [`encode_header`] writes the header page; [`SwapHeader::decode`] reads one back for
//! `inspect` and `check`.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::disk::DiskFormat;
use crate::error::Error;
use crate::output::Output;
use crate::util::{get_u32le, put_u32le};

// Offsets in the header page (`union swap_header`'s `info`, after 1024 bytes of
// boot code space).
const VERSION: usize = 1024;
const LAST_PAGE: usize = 1028;
const NR_BADPAGES: usize = 1032;
const SWS_UUID: usize = 1036;
const SWS_VOLUME: usize = 1052;
/// The magic's ten bytes end the first page.
const MAGIC_AT: usize = PAGE_SIZE as usize - 10;
const MAGIC_V1: &[u8; 10] = b"SWAPSPACE2";
/// Version 0's magic, unsupported since Linux 2.5.22.
const MAGIC_V0: &[u8; 10] = b"SWAP-SPACE";

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
    let page = encode_header((pages - 1) as u32, &uuid, label.as_bytes());
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

/// The header page of a version 1 swap area whose last page is `last_page`.
pub(crate) fn encode_header(last_page: u32, uuid: &[u8; 16], label: &[u8]) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE as usize];
    put_u32le(&mut page, VERSION, 1);
    put_u32le(&mut page, LAST_PAGE, last_page);
    put_u32le(&mut page, NR_BADPAGES, 0);
    page[SWS_UUID..SWS_UUID + 16].copy_from_slice(uuid);
    let n = label.len().min(16);
    page[SWS_VOLUME..SWS_VOLUME + n].copy_from_slice(&label[..n]);
    page[MAGIC_AT..].copy_from_slice(MAGIC_V1);
    page
}

/// Which swap magic a page ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SwapMagic {
    /// `SWAPSPACE2`: version 1.
    V1,
    /// `SWAP-SPACE`: version 0, which no 2.6 kernel uses.
    V0,
}

/// A swap header as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SwapHeader {
    pub magic: SwapMagic,
    pub version: u32,
    pub last_page: u32,
    pub nr_badpages: u32,
    pub uuid: [u8; 16],
    pub label: [u8; 16],
}

impl SwapHeader {
    /// Decodes the first page of a file; `None` when it is shorter than a page or ends
    /// in no swap magic.
    pub(crate) fn decode(page: &[u8]) -> Option<SwapHeader> {
        let page = page.get(..PAGE_SIZE as usize)?;
        let magic = match &page[MAGIC_AT..] {
            m if m == MAGIC_V1 => SwapMagic::V1,
            m if m == MAGIC_V0 => SwapMagic::V0,
            _ => return None,
        };
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&page[SWS_UUID..SWS_UUID + 16]);
        let mut label = [0u8; 16];
        label.copy_from_slice(&page[SWS_VOLUME..SWS_VOLUME + 16]);
        Some(SwapHeader {
            magic,
            version: get_u32le(page, VERSION)?,
            last_page: get_u32le(page, LAST_PAGE)?,
            nr_badpages: get_u32le(page, NR_BADPAGES)?,
            uuid,
            label,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_mkswap_wrote() {
        // mkswap -U 5d2f9d6e-0c1a-4b7e-9c3d-2a1b0c9d8e7f -L swap of a 64 KiB file.
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("swap");
        std::fs::write(&f, vec![0u8; 64 << 10]).expect("write");
        let made = std::process::Command::new("mkswap")
            .args([
                "-q",
                "-U",
                "5d2f9d6e-0c1a-4b7e-9c3d-2a1b0c9d8e7f",
                "-L",
                "swap",
            ])
            .arg(&f)
            .status()
            .expect("mkswap runs (util-linux)");
        assert!(made.success());
        let page = std::fs::read(&f).expect("read");
        let h = SwapHeader::decode(&page).expect("a swap header");
        assert_eq!(
            (h.magic, h.version, h.last_page, h.nr_badpages),
            (SwapMagic::V1, 1, 15, 0)
        );
        assert_eq!(&h.label[..5], b"swap\0");
        assert_eq!(
            uuid::Uuid::from_bytes(h.uuid).to_string(),
            "5d2f9d6e-0c1a-4b7e-9c3d-2a1b0c9d8e7f"
        );
    }

    #[test]
    fn what_is_encoded_decodes_and_other_magics_are_told_apart() {
        let mut page = encode_header(255, &[4; 16], b"lbl");
        let h = SwapHeader::decode(&page).expect("v1");
        assert_eq!(
            (h.last_page, h.uuid, &h.label[..4]),
            (255, [4; 16], &b"lbl\0"[..])
        );
        page[MAGIC_AT..].copy_from_slice(MAGIC_V0);
        assert_eq!(
            SwapHeader::decode(&page).map(|h| h.magic),
            Some(SwapMagic::V0)
        );
        page[MAGIC_AT..].copy_from_slice(b"SWAPXXXXXX");
        assert_eq!(SwapHeader::decode(&page), None);
        assert_eq!(SwapHeader::decode(&page[..100]), None);
    }
}
