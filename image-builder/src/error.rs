//! The one error type of the image builder. Every variant names the entry, file or
//! value at fault, so the binary can say what went wrong, where, and what to do.

use std::io;
use std::path::PathBuf;

use crate::features::{FsLevel, KernelVersion};
use crate::vhdx::VhdxError;

/// What can go wrong while building, inspecting or checking an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--fs` named no level this writer makes.
    #[error("unknown filesystem '{0}': use ext2, ext3, ext4, ext4-compat or ext4-modern")]
    UnknownFs(String),
    /// `--kernel` is not a version.
    #[error("'{0}' is not a kernel version (expected e.g. 2.6.33)")]
    BadKernelVersion(String),
    /// The level has a feature the named guest kernel cannot mount read-write.
    #[error(
        "{} cannot be mounted read-write by Linux {kernel}: it needs {feature}, which Linux knows since {since}; choose an older level (ext3 for 2.6.x before 2.6.28, ext4-compat for 2.6.28..3.17)",
        level.name()
    )]
    Unmountable {
        /// The level asked for.
        level: FsLevel,
        /// The guest kernel.
        kernel: KernelVersion,
        /// The feature it lacks.
        feature: &'static str,
        /// The first kernel that has it.
        since: KernelVersion,
    },
    /// A size could not be read.
    #[error(
        "'{0}' is not a size: use bytes or a K, M, G or T suffix (e.g. 512M), or auto, auto+20%, auto+256M"
    )]
    BadSize(String),
    /// The content (or the requested geometry) does not fit the requested size.
    #[error("{what} needs at least {minimum} bytes ({} MiB), but the image is {size} bytes; give --size {}M or more, or --size auto", minimum.div_ceil(1 << 20), minimum.div_ceil(1 << 20))]
    TooSmall {
        /// The size asked for.
        size: u64,
        /// The smallest size that holds it.
        minimum: u64,
        /// What does not fit.
        what: String,
    },
    /// The image would be larger than this writer lays out.
    #[error("{size} bytes is larger than the largest image this writer makes ({max} bytes)")]
    TooLarge {
        /// The size asked for.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Checking the filesystem needs more memory than the host gives: its tables are
    /// sized by the counts in its superblock (a 60 TiB disk has 4 billion inodes).
    #[error(
        "checking this filesystem needs {bytes} bytes of memory for {what}, more than this host \
         gives; check it on a host with more memory"
    )]
    TooLargeToCheck {
        /// What the memory is for (e.g. "its 4026531840 inodes").
        what: String,
        /// The bytes asked for.
        bytes: u64,
    },
    /// A block size other than 1024, 2048 or 4096.
    #[error("block size {0} is not supported: use 1024, 2048 or 4096")]
    BadBlockSize(u32),
    /// An entry name longer than ext4's 255 bytes.
    #[error("'{path}': the name is {len} bytes; ext2/3/4 names are at most 255 bytes")]
    NameTooLong {
        /// The entry, as a path inside the image.
        path: String,
        /// Its name's length in bytes.
        len: usize,
    },
    /// A symlink target that does not fit one block.
    #[error("'{path}': the symlink target is {len} bytes; at most {max} fit this block size")]
    SymlinkTooLong {
        /// The entry.
        path: String,
        /// The target's length.
        len: usize,
        /// The most that fits.
        max: usize,
    },
    /// A source folder or file could not be read.
    #[error("cannot read '{}'", path.display())]
    Read {
        /// The host path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A source file's size changed while the image was being written.
    #[error("'{}' changed while it was being copied (expected {expected} bytes); build again from a quiet tree", path.display())]
    SourceChanged {
        /// The host path.
        path: PathBuf,
        /// The size seen when the tree was scanned.
        expected: u64,
    },
    /// The output could not be written (full disk, file size limit, no rights).
    #[error("cannot write '{}'", path.display())]
    Write {
        /// The output (or its temporary sibling).
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The output exists and `force` was not given.
    #[error("'{}' exists; it is kept as it is (give --force to replace it)", .0.display())]
    OutputExists(PathBuf),
    /// A `--file SRC:DEST`, `--owner`, `--label` or `--uuid` value is malformed.
    #[error("{0}")]
    BadArgument(String),
    /// An entry kind the image cannot hold where it was asked to go.
    #[error("'{path}': {reason}")]
    BadEntry {
        /// The entry, as a path inside the image.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A tar archive is truncated, corrupt or hostile.
    #[error("{archive}: {}{reason}", entry.as_ref().map(|e| format!("entry '{e}' at byte {offset}: ")).unwrap_or_else(|| format!("at byte {offset}: ")))]
    Archive {
        /// The archive (a path, or `-` for standard input).
        archive: String,
        /// The entry at fault, when its header could be read.
        entry: Option<String>,
        /// Byte offset of the entry's header in the uncompressed stream.
        offset: u64,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A compressed tarball's stream is damaged: a checksum does not match, it ends
    /// early, or bytes follow it.
    #[error("{archive}: {reason}; the archive is corrupt")]
    CorruptStream {
        /// The archive (a path, or `-` for standard input).
        archive: String,
        /// The compression: gzip, xz, zstd or bzip2.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The build was interrupted (Ctrl-C); nothing was left behind.
    #[error("interrupted; no image was written")]
    Interrupted,
    /// A file given to `inspect` or `check` is not an image this crate reads.
    #[error("'{}' is not an ext2/ext3/ext4 or swap image: {reason}", path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A VHDX file is damaged, or is a kind of VHDX this crate does not read.
    #[error("'{}' is not a VHDX this tool can read: {problem}", path.display())]
    Vhdx {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the structure.
        problem: VhdxError,
    },
}
