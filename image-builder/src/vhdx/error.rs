//! What can be wrong with a VHDX file, one variant per structure, each naming the copy,
//! entry or item at fault and the value found, so that a user (or a test) learns which
//! part of the file is damaged. [`crate::Error::Vhdx`] carries it with the file's path.

/// Why a file is not a VHDX this crate reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VhdxError {
    /// The file does not begin with the file type identifier.
    #[error("it does not begin with the VHDX signature 'vhdxfile' (MS-VHDX 2.2.1)")]
    Signature,
    /// The file is shorter than the header section and the regions it names.
    #[error("the file is {len} bytes long; a VHDX needs at least {need} bytes here ({what})")]
    Truncated {
        /// The file's length.
        len: u64,
        /// The length needed.
        need: u64,
        /// What lies past the end.
        what: String,
    },
    /// Neither header is valid (2.2.2).
    #[error("both headers are damaged: header 1: {first}; header 2: {second}")]
    Headers {
        /// Why header 1 is refused.
        first: String,
        /// Why header 2 is refused.
        second: String,
    },
    /// Both headers are valid, with the same sequence number but different contents.
    #[error(
        "headers 1 and 2 both carry sequence number {0} but differ, so neither is the current one"
    )]
    HeadersDisagree(u64),
    /// The current header names a log region the format does not allow.
    #[error("the current header's log region is invalid: {0}")]
    Log(String),
    /// The log holds entries that must be replayed before the disk can be read.
    #[error(
        "its log holds updates that were never applied (the disk was not closed cleanly); replay them first with `qemu-img check -r all FILE`, or by attaching the disk once in Windows"
    )]
    LogPending,
    /// Neither region table is valid (2.2.3).
    #[error("both region tables are damaged: region table 1: {first}; region table 2: {second}")]
    RegionTables {
        /// Why copy 1 is refused.
        first: String,
        /// Why copy 2 is refused.
        second: String,
    },
    /// A region the format requires is missing (2.2.3.2).
    #[error("the region table has no {0} region")]
    MissingRegion(&'static str),
    /// A region this reader does not know is marked required (2.2.3.2: such a file must
    /// not be opened).
    #[error("the region table names a required region {0} this reader does not know")]
    UnknownRequiredRegion(String),
    /// A region lies outside the file, is misaligned or overlaps another.
    #[error("{0}")]
    BadRegion(String),
    /// The metadata table is damaged (2.6.1).
    #[error("the metadata table is damaged: {0}")]
    MetadataTable(String),
    /// A metadata item every VHDX must have is missing (2.6.2).
    #[error("the metadata has no {0} item")]
    MissingMetadata(&'static str),
    /// A metadata item this reader does not know is marked required (2.6.1.2).
    #[error("the metadata names a required item {0} this reader does not know")]
    UnknownRequiredMetadata(String),
    /// A metadata item is out of place or holds a value the format does not allow.
    #[error("metadata item {item}: {problem}")]
    BadMetadata {
        /// The item's name.
        item: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The disk is a differencing disk: its data lives partly in a parent file.
    #[error(
        "it is a differencing disk (HasParent): its data is partly in its parent disk; merge it first (Hyper-V's Edit Disk, or `qemu-img convert`)"
    )]
    Differencing,
    /// The BAT is damaged (2.5).
    #[error("BAT entry {index} (payload block {block}): {problem}")]
    BadBatEntry {
        /// The entry's index in the BAT.
        index: u64,
        /// The payload block it maps.
        block: u64,
        /// What is wrong.
        problem: String,
    },
    /// The BAT region is too small for the virtual disk.
    #[error("the BAT region holds {room} entries, but a {size}-byte disk needs {need}")]
    BatTooSmall {
        /// Entries the region holds.
        room: u64,
        /// Entries needed.
        need: u64,
        /// The virtual disk size.
        size: u64,
    },
}
