//! The blocks an inode maps, as the readers see them: one walk over an extent tree
//! ([`crate::extent::walk`]) or a block map ([`crate::blockmap::walk`]) that reports
//! what it finds to a [`Visitor`]. `check` judges every run and mapping block; an image
//! read as a build source copies the runs and makes a damaged map a loss. The walks
//! decode and bound the structure (depth, entry counts, order, ranges); the visitor
//! decides which blocks may be read (each at most once, so a loop is a "used twice",
//! not a hang) and how much it will follow.

use std::fmt;

/// A run of data blocks: file blocks `logical..logical + len` are filesystem blocks
/// `physical..physical + len`; `init` is false for an unwritten (preallocated) extent,
/// which reads as zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
    pub init: bool,
}

impl Run {
    /// Whether the run lies inside the filesystem's blocks `first_data..blocks`; the
    /// problem names the run otherwise. Both readers refuse data outside, unwritten
    /// extents included (their blocks are allocated all the same).
    pub(crate) fn inside(&self, first_data: u64, blocks: u64) -> Result<(), MapProblem> {
        let Some(end) = self.physical.checked_add(self.len) else {
            return Err(MapProblem::ImpossibleBlock {
                logical: self.logical,
                physical: self.physical,
            });
        };
        if self.len > 0 && (self.physical < first_data || self.physical >= blocks || end > blocks) {
            return Err(MapProblem::Outside {
                run: *self,
                first_data,
                blocks,
            });
        }
        Ok(())
    }
}

/// What kind of mapping block a map points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapBlock {
    /// An extent tree node (index or leaf block).
    ExtentTree,
    /// An indirect block of a block map: 1 IND, 2 DIND, 3 TIND.
    Indirect(u32),
}

impl MapBlock {
    /// The word `check` uses for it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            MapBlock::ExtentTree => "extent tree",
            MapBlock::Indirect(_) => "indirect",
        }
    }
}

/// Something wrong in a map, with where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapProblem {
    /// The root's `eh_depth` is over the kernel's EXT4_MAX_EXTENT_DEPTH (5).
    DepthTooLarge { depth: u16 },
    /// A node's `eh_magic` is not 0xF30A.
    Magic { depth: u16 },
    /// A node's `eh_depth` is not one less than its parent's.
    DepthMismatch { depth: u16, found: u16 },
    /// `eh_entries` over `eh_max`, or `eh_max` over what the node has room for.
    TooManyEntries { entries: u16, max: u16, cap: u16 },
    /// An entry starts before the previous one ends or outside the parent's range.
    OutOfOrder { first: u64, lo: u64, hi: u64 },
    /// A leaf entry of length 0.
    ZeroLength { first: u64 },
    /// A leaf entry runs past the range its parent gives it.
    PastParent {
        first: u64,
        end: u64,
        lo: u64,
        hi: u64,
    },
    /// A tree block's checksum tail does not match.
    Checksum {
        block: u64,
        stored: u32,
        computed: u32,
    },
    /// A tree block's `eh_max` leaves no room for the checksum tail.
    NoChecksumRoom { block: u64 },
    /// A data run whose end overflows a block number.
    ImpossibleBlock { logical: u64, physical: u64 },
    /// A data run outside the filesystem.
    Outside {
        run: Run,
        first_data: u64,
        blocks: u64,
    },
}

impl fmt::Display for MapProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapProblem::DepthTooLarge { depth } => write!(
                f,
                "extent tree depth {depth} exceeds {}",
                crate::extent::MAX_DEPTH
            ),
            MapProblem::Magic { depth } => {
                write!(f, "extent header magic is wrong (depth {depth})")
            }
            MapProblem::DepthMismatch { depth, found } => {
                write!(f, "extent node at depth {depth} says depth {found}")
            }
            MapProblem::TooManyEntries { entries, max, cap } => write!(
                f,
                "extent node has {entries} entries of {max} (room for {cap})"
            ),
            MapProblem::OutOfOrder { first, lo, hi } => write!(
                f,
                "extent entry for file block {first} is out of order or outside its parent's \
                 range ({lo}..{hi})"
            ),
            MapProblem::ZeroLength { first } => {
                write!(f, "zero-length extent at file block {first}")
            }
            MapProblem::PastParent { first, end, lo, hi } => write!(
                f,
                "extent {first}..{end} runs past its parent's range ({lo}..{hi})"
            ),
            MapProblem::Checksum {
                block,
                stored,
                computed,
            } => write!(
                f,
                "extent block {block} checksum is {stored:#x}, the contents give {computed:#x}"
            ),
            MapProblem::NoChecksumRoom { block } => {
                write!(f, "extent block {block} has no room for its checksum")
            }
            MapProblem::ImpossibleBlock { logical, physical } => {
                write!(
                    f,
                    "file block {logical} maps to impossible block {physical}"
                )
            }
            MapProblem::Outside {
                run,
                first_data,
                blocks,
            } => write!(
                f,
                "file blocks {}..{} map to blocks {}..{}, outside the filesystem \
                 ({first_data}..{blocks})",
                run.logical,
                run.logical + run.len,
                run.physical,
                run.physical + run.len
            ),
        }
    }
}

/// What a walk reports to. The walk calls `data` and `problem` as it goes, asks
/// `enter` before it reads a mapping block and `gave_up` where a block map would
/// otherwise go on; the visitor keeps the bookkeeping (which blocks were seen, budgets).
pub(crate) trait Visitor {
    /// What reading a block can fail with.
    type Error;
    /// Whether to read and follow the mapping block `nr`. A visitor must say no to a
    /// block it has said yes to before: that is what ends a loop.
    fn enter(&mut self, nr: u64, kind: MapBlock) -> bool;
    /// Reads the whole block `nr` (one `enter` accepted).
    fn read(&mut self, nr: u64) -> Result<Vec<u8>, Self::Error>;
    /// A run of data blocks, in map order (not checked against the filesystem: see
    /// [`Run::inside`]).
    fn data(&mut self, run: Run);
    /// A problem; the walk leaves the node it is in (or, for a bad entry, that entry)
    /// and goes on with the rest.
    fn problem(&mut self, problem: MapProblem);
    /// Whether the visitor has stopped following this map (a block map's loops ask).
    fn gave_up(&self) -> bool {
        false
    }
}
