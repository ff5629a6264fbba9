//! # image-builder
//!
//! Builds ext2, ext3 and ext4 filesystem images, and swap images, natively: no mkfs,
//! no mount, no loop device and no root rights, so the same code runs inside a Windows
//! installer and on a developer's Linux box.
//!
//! The principal entry point is [`build`]: it takes [`BuildOptions`] (a feature
//! [`FsLevel`], a [`SizeSpec`], [`Source`]s) and writes a finished image in one pass over
//! the data, reporting [`Event`]s. [`write_swap`] writes a swap image with a mkswap v1
//! header. [`inspect()`] reads an image back and describes it; [`check()`] verifies its
//! structure. The `colinux-setup` binary's `images` commands are thin wrappers.
//!
//! ## Why a writer of our own
//!
//! mke2fs -d needs e2fsprogs on the host (not on Windows), scans directories linearly
//! (quadratic in directory size), needs fakeroot for root-owned files, and cannot size
//! an image to its content; genext2fs writes only ext2; the Rust crates that write ext4
//! (arcbox-ext4) have no journal, no checksums and drop FIFOs, xattrs and holes
//! (../shared/research/anchors-images.md, sections 1 to 3). The on-disk format is
//! documented and stable, and a writer that never edits what it wrote is small: each
//! structure is encoded once, from memory, at its final place.
//!
//! ## Layout of the crate
//!
//! One module per on-disk structure (`superblock`, `group_desc`, `inode`, `extent`,
//! `blockmap`, `dir_entry`, `dir_htree`, `xattr`, `journal`, `swap`, `checksum`), each
//! with its encoder for the writer and its decoder for the readers side by side, as
//! gix-index pairs decode and write; the walks over a file's map (`mapping`) and the
//! reading of an existing image (`reader`) are shared by `inspect`, `check` and an image
//! read as a source, so ext is decoded once. Then the plan (`layout`, `numbering`,
//! `sizing`), the tree and its sources (`tree`, `source`), and the drivers (`build`,
//! `swap`, `inspect`, `check`, `output`).
//!
//! ## Untrusted input
//!
//! Everything read from disk or a stream is untrusted: an image must be a regular file
//! or a block device, no read runs past its end and nothing is allocated before its size
//! is checked against the file; every count an image gives (groups, inodes, blocks a map
//! points at, a file's size) is bounded by the file and the filesystem's own limits. A
//! compressed tarball is read to the end of its stream, every checksum verified, nothing
//! after it accepted; what an archive makes the reader hold in memory is capped (see the
//! tar reader's limits).
//!
//! ## Limitations
//!
//! - Folder sources need a Unix host (Windows folders carry no Unix metadata).
//! - POSIX ACLs (`system.posix_acl_*`) are not copied; user, trusted and security
//!   attributes are, in one shared block per distinct set.
//! - ext2 directories stay linear at any size (htree is written for ext3 and ext4 only,
//!   since the ext2 driver does not keep an index up to date).
//! - Block size 1024, 2048 or 4096; images up to 16 TiB (4 KiB blocks, no 64bit) or
//!   4 PiB (ext4-modern).
//!
//! ## Example
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use image_builder::{build, BuildOptions, FsLevel, SizeSpec, Source};
//!
//! let mut opts = BuildOptions::new(FsLevel::Ext3, "auto+10%".parse()?);
//! opts.sources.push(Source::Dir("rootfs".into()));
//! opts.label = Some("root".into());
//! let report = build("root.img".as_ref(), &opts, &mut |_event| {}, &AtomicBool::new(false))?;
//! println!("{} bytes, {} blocks free", report.size_bytes, report.free_blocks);
//! # Ok::<(), image_builder::Error>(())
//! ```
// One ioctl (output.rs: marking a Windows image file sparse) needs `unsafe`; it is
// allowed there alone.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod blockmap;
mod build;
mod check;
mod checksum;
mod dir_entry;
mod dir_htree;
mod disk;
mod error;
mod extent;
mod features;
mod group_desc;
mod inode;
mod inspect;
mod journal;
mod layout;
mod mapping;
mod numbering;
mod output;
mod reader;
mod size;
mod sizing;
mod source;
mod superblock;
mod swap;
#[cfg(test)]
mod test_data;
mod tree;
mod util;
mod vhdx;
mod writer;
mod xattr;

pub use build::{BuildOptions, BuildReport, Event, Source, build};
pub use check::{CheckReport, check};
pub use disk::{DiskFormat, VirtualDisk};
pub use error::Error;
pub use features::{FsLevel, KernelVersion, feature_names};
pub use inspect::{ImageInfo, ImageKind, inspect};
pub use size::{Headroom, SizeSpec, parse_bytes};
pub use source::tar::{KEPT_LIMIT, TarContent, TarInput, tar_content};
pub use swap::{PAGE_SIZE, SwapOptions, SwapReport, write_swap};
pub use tree::Timestamp;
pub use vhdx::VhdxError;
