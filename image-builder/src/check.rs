//! `check`: a structural check of an image, read from the file alone and independent
//! of the writer's state, so that it judges images made by mke2fs, by an older build of
//! this crate, or by a guest that has mounted them, by the same rules.
//!
//! The on-disk facts come from the kernel's Documentation/filesystems/ext4/ (the same
//! pages each structure module cites), and the structures are read by those modules'
//! decoders and walks (shared with `inspect` and an image read as a source); this
//! module holds the rules, the ones e2fsck's passes 1 to 5 enforce, restricted to what
//! a freshly written or cleanly unmounted image must hold.
//! e2fsck itself is run separately by the CLI when the host has it (never on Windows),
//! so this check is what every host can rely on.
//!
//! # What is checked
//!
//! Swap images: version 1, `last_page + 1` pages fit the file, at least ten pages
//! (`swapon`'s minimum), magic `SWAPSPACE2`, no bad pages. A version 0 header
//! (`SWAP-SPACE`, dropped by Linux 2.5.22) is recognised and reported as a problem.
//!
//! ext2/3/4, in the order a reader depends on the structures:
//!
//! 1. The superblock: magic, geometry that arithmetic can trust (blocks per group and
//!    inodes per group within one bitmap block, inode and descriptor sizes), the whole
//!    filesystem inside the file, `inodes_count = groups × inodes_per_group`, the
//!    checksum with `metadata_csum`, the clean state, and backup superblocks (sparse_super
//!    groups 0, 1 and powers of 3, 5, 7; sparse_super2's two groups; every group
//!    without either) that agree with the primary on the geometry. A wrong geometry
//!    would make every later offset wrong, so a bad primary stops the check there.
//! 2. The group descriptors: bitmaps and inode tables inside the filesystem (inside
//!    their own group without flex_bg), overlapping neither each other nor the
//!    superblock and descriptor copies; the descriptor checksum (`metadata_csum`'s
//!    CRC32C or `uninit_bg`'s CRC16); the bitmap checksums.
//! 3. The bitmaps against the counts: free bits over each group's real length equal
//!    the descriptor's counts, padding bits past the end are set, the sums equal the
//!    superblock's. Groups flagged BLOCK_UNINIT / INODE_UNINIT (only meaningful with a
//!    group checksum feature) are computed, as the kernel computes them, not read.
//! 4. The inodes: the tables are streamed group by group (up to `itable_unused`). Every
//!    inode the bitmap marks is read: its checksum, its flags against the features,
//!    and its blocks mapped through its extent tree
//!    (magic 0xF30A, depth, sorted non-overlapping entries, tree block checksums) or
//!    its block map (12 direct, IND, DIND, TIND). Every free inode must be blank or
//!    deleted (link count 0, a real deletion time), as e2fsck takes anything else for
//!    a lost file or an orphan list; records whose first 128 bytes are zero count as
//!    blank whatever their checksum, as libext2fs counts them. The directory tree is then walked
//!    from the root: every block's `rec_len` chain must cover it exactly, names must be
//!    well formed and typed like their inodes, `.` and `..` must be right, and
//!    directories must have one name each. Every marked inode from `s_first_ino` on
//!    must be reachable (the journal, resize, quota and orphan-file inodes excepted: the
//!    superblock names them), every reachable inode must be marked, each link count
//!    must equal the names found (2 + subdirectories for a directory; 1 meaning "many"
//!    under dir_nlink), and the journal inode must be a regular file whose size matches
//!    its blocks and whose first block holds a jbd2 superblock.
//! 5. The blocks: every block an inode maps (data, extent tree, indirect, attribute
//!    blocks) lies inside the filesystem, outside the metadata, is referenced once
//!    (attribute blocks are shared, and their `h_refcount` must equal the inodes that
//!    point at them), and is marked used; the bitmaps mark nothing else (no leaks);
//!    and each inode's `i_blocks` equals what it maps.
//!
//! # Hostile input
//!
//! An image is untrusted input: every read goes through `get()` and `Option` (and no
//! read of the file allocates more than the file holds), all offsets are computed with
//! checked arithmetic or from values already bounded by the geometry (all inode tables
//! must fit in the filesystem, which must fit in the file), each mapped block is claimed once (so a loop in an extent tree or block map
//! is a "referenced twice" problem, not a hang), the total number of block claims is
//! bounded by the block count, and the number of problem lines is capped. Memory is one
//! bit per block (three maps) and a few bytes per inode; inode tables are streamed.
//!
//! # Not checked
//!
//! The contents of htree index blocks beyond their checksums (they are parsed as the
//! empty-looking entries the kernel makes them look like), extended attribute entries
//! beyond the block header, the journal's log, and backup descriptor tables beyond their
//! bitmap and table positions (the kernel does not keep their counts current). Images
//! with meta_bg, bigalloc, inline_data and a few rarer INCOMPAT features are checked up
//! to their superblock; `not_checked` says so.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use crate::checksum::inode_seed;
use crate::dir_entry::{self, DirBlockError, file_type_of as entry_type};
use crate::error::Error;
use crate::features::{
    COMPAT_HAS_JOURNAL, COMPAT_IMAGIC_INODES, COMPAT_ORPHAN_FILE, COMPAT_RESIZE_INODE,
    COMPAT_SPARSE_SUPER2, INCOMPAT_64BIT, INCOMPAT_CASEFOLD, INCOMPAT_COMPRESSION,
    INCOMPAT_CSUM_SEED, INCOMPAT_DIRDATA, INCOMPAT_EA_INODE, INCOMPAT_ENCRYPT, INCOMPAT_EXTENTS,
    INCOMPAT_FILETYPE, INCOMPAT_FLEX_BG, INCOMPAT_INLINE_DATA, INCOMPAT_JOURNAL_DEV,
    INCOMPAT_META_BG, INCOMPAT_RECOVER, RO_COMPAT_BIGALLOC, RO_COMPAT_DIR_NLINK,
    RO_COMPAT_GDT_CSUM, RO_COMPAT_HUGE_FILE, RO_COMPAT_METADATA_CSUM, RO_COMPAT_PROJECT,
    RO_COMPAT_QUOTA, RO_COMPAT_SPARSE_SUPER, RO_COMPAT_VERITY,
};
use crate::group_desc::{self, EXT4_BG_BLOCK_UNINIT, EXT4_BG_INODE_UNINIT, GroupDesc};
use crate::inode::{
    self, EXT4_CASEFOLD_FL, EXT4_ENCRYPT_FL, EXT4_EXTENTS_FL, EXT4_HUGE_FILE_FL, EXT4_IMAGIC_FL,
    EXT4_INDEX_FL, EXT4_INLINE_DATA_FL, EXT4_VERITY_FL, Inode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO,
    S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use crate::inspect::{ImageKind, inspect_file};
use crate::mapping::{MapBlock, MapProblem, Run, Visitor};
use crate::reader::{Fs, ImageFile};
use crate::superblock::{CHECKSUM_TYPE_CRC32C, STATE_ERROR_FS, Superblock};
use crate::swap::{SwapHeader, SwapMagic};

/// What [`check`] found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// The kind of image found (`check` returns `Err(NotAnImage)` when there is none).
    pub kind: Option<ImageKind>,
    /// Problems, one line each, naming the structure (group N, inode N, block N, path);
    /// empty when the image is sound.
    pub problems: Vec<String>,
    /// Inodes marked in use in the inode bitmaps (reserved inodes included).
    pub inodes_in_use: u64,
    /// Inodes reachable by name from the root directory (the root included).
    pub inodes_reachable: u64,
    /// Blocks taken by superblocks, descriptor tables, bitmaps and inode tables.
    pub metadata_blocks: u64,
    /// Distinct blocks that inodes reference (data, mapping and attribute blocks).
    pub blocks_referenced: u64,
    /// Parts of the image this checker could not judge, and why; not problems.
    pub not_checked: Vec<String>,
}

/// Checks the image at `path`. Errors only when the file cannot be read or is not an
/// image at all; everything wrong inside an image is a line of `problems`.
pub fn check(path: &Path) -> Result<CheckReport, Error> {
    let img = ImageFile::open(path)?;
    let info = match inspect_file(&img) {
        Ok(info) => info,
        Err(e @ Error::NotAnImage { .. }) => {
            // A version 0 swap header is a swap image all the same, only unusable.
            return match version0_swap(&img)? {
                Some(report) => Ok(report),
                None => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    let mut report = CheckReport {
        kind: Some(info.kind),
        ..CheckReport::default()
    };
    let mut problems = Problems::default();
    if info.kind == ImageKind::Swap {
        check_swap(&img, &mut problems)?;
    } else {
        check_ext(img, &mut problems, &mut report)?;
    }
    report.problems = problems.finish();
    Ok(report)
}

/// The most problem lines a report carries; a badly damaged image would otherwise
/// produce one per block.
const MAX_PROBLEMS: usize = 1000;

#[derive(Default)]
struct Problems {
    list: Vec<String>,
    dropped: u64,
}

impl Problems {
    fn push(&mut self, line: String) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(line);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.list
                .push(format!("... and {} more problems", self.dropped));
        }
        self.list
    }
}

/// Reads `len` bytes at `offset`; reads past the end of the file yield zeros (a short
/// image is reported once, by the size check, not at every read), but never more than
/// the file holds are allocated.
fn read(img: &ImageFile, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    img.read_padded(offset, len)
        .map_err(|e| e.into_error(img.path()))
}

// ---------------------------------------------------------------------------------
// Swap

const SWAP_PAGE: u64 = crate::swap::PAGE_SIZE;

fn check_swap(img: &ImageFile, p: &mut Problems) -> Result<(), Error> {
    let head = read(img, 0, SWAP_PAGE as usize)?;
    let Some(h) = SwapHeader::decode(&head).filter(|h| h.magic == SwapMagic::V1) else {
        p.push("swap header: magic is not SWAPSPACE2".to_owned());
        return Ok(());
    };
    if h.version != 1 {
        p.push(format!("swap header: version is {}, not 1", h.version));
    }
    let last_page = u64::from(h.last_page);
    let pages = last_page + 1;
    if pages < crate::swap::MIN_PAGES {
        p.push(format!(
            "swap header: {pages} pages; swapon needs at least {}",
            crate::swap::MIN_PAGES
        ));
    }
    let need = pages * SWAP_PAGE;
    if need > img.len() {
        p.push(format!(
            "swap header: last_page {last_page} needs {need} bytes, but the file has {}",
            img.len()
        ));
    }
    let bad = h.nr_badpages;
    if bad != 0 {
        p.push(format!(
            "swap header: {bad} bad pages listed; expected none"
        ));
    }
    Ok(())
}

/// `Some` report when `path` holds a version 0 swap header (magic `SWAP-SPACE`).
fn version0_swap(img: &ImageFile) -> Result<Option<CheckReport>, Error> {
    if img.len() < SWAP_PAGE {
        return Ok(None);
    }
    let head = read(img, 0, SWAP_PAGE as usize)?;
    if SwapHeader::decode(&head).map(|h| h.magic) != Some(SwapMagic::V0) {
        return Ok(None);
    }
    Ok(Some(CheckReport {
        kind: Some(ImageKind::Swap),
        problems: vec![
            "swap header: magic is SWAP-SPACE (version 0, unsupported since Linux 2.5.22), \
             not SWAPSPACE2; run mkswap again"
                .to_owned(),
        ],
        ..CheckReport::default()
    }))
}

// ---------------------------------------------------------------------------------
// ext2/3/4

/// INCOMPAT features whose structures this checker does not read, with their names.
const UNREAD_INCOMPAT: &[(u32, &str)] = &[
    (INCOMPAT_COMPRESSION, "compression"),
    (INCOMPAT_JOURNAL_DEV, "journal_dev"),
    (INCOMPAT_META_BG, "meta_bg"),
    (INCOMPAT_EA_INODE, "ea_inode"),
    (INCOMPAT_DIRDATA, "dirdata"),
    (INCOMPAT_INLINE_DATA, "inline_data"),
];

fn type_name(mode: u16) -> &'static str {
    match mode & S_IFMT {
        S_IFREG => "regular file",
        S_IFDIR => "directory",
        S_IFLNK => "symlink",
        S_IFCHR => "character device",
        S_IFBLK => "block device",
        S_IFIFO => "fifo",
        S_IFSOCK => "socket",
        _ => "unknown type",
    }
}

/// A bit per item, for the whole filesystem.
#[derive(Default)]
struct Bits {
    words: Vec<u64>,
}

/// `n` copies of `value`, or [`Error::TooLargeToCheck`] where the host cannot give the
/// memory: the counts come from the image, and a small VHDX (or a sparse file) can claim
/// a 64 TiB disk with 4 billion inodes, whose tables an infallible allocation would
/// abort the process on.
fn filled<T: Clone>(n: u64, value: T, what: impl FnOnce() -> String) -> Result<Vec<T>, Error> {
    let bytes = n.saturating_mul(std::mem::size_of::<T>() as u64);
    let too_large = |what: String| Error::TooLargeToCheck { what, bytes };
    let Ok(len) = usize::try_from(n) else {
        return Err(too_large(what()));
    };
    let mut v = Vec::new();
    if v.try_reserve_exact(len).is_err() {
        return Err(too_large(what()));
    }
    v.resize(len, value);
    Ok(v)
}

impl Bits {
    fn new(n: u64) -> Result<Bits, Error> {
        Ok(Bits {
            words: filled(n.div_ceil(64), 0, || format!("a map of its {n} blocks"))?,
        })
    }

    fn get(&self, i: u64) -> bool {
        usize::try_from(i / 64)
            .ok()
            .and_then(|w| self.words.get(w))
            .is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    /// Sets bit `i`; returns whether it was already set.
    fn set(&mut self, i: u64) -> bool {
        let Some(w) = usize::try_from(i / 64)
            .ok()
            .and_then(|w| self.words.get_mut(w))
        else {
            return false;
        };
        let bit = 1u64 << (i % 64);
        let was = *w & bit != 0;
        *w |= bit;
        was
    }
}

fn bit(bytes: &[u8], i: u64) -> bool {
    usize::try_from(i / 8)
        .ok()
        .and_then(|b| bytes.get(b))
        .is_some_and(|b| (b >> (i % 8)) & 1 == 1)
}

/// The geometry read from the superblock, bounded so offsets cannot overflow.
struct Geo {
    /// The image (for errors).
    path: std::path::PathBuf,
    bs: u64,
    blocks: u64,
    first_data: u64,
    bpg: u64,
    ipg: u32,
    isz: usize,
    groups: u32,
    inodes: u32,
    first_ino: u32,
    desc_size: usize,
    gdt_blocks: u64,
    rsv_gdt: u64,
    compat: u32,
    incompat: u32,
    ro: u32,
    /// The metadata_csum seed, when metadata_csum is on.
    seed: Option<u32>,
    uuid: [u8; 16],
    backup_bgs: [u32; 2],
}

impl Geo {
    fn has_super(&self, g: u32) -> bool {
        if g == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return self.backup_bgs.contains(&g);
        }
        if self.ro & RO_COMPAT_SPARSE_SUPER != 0 {
            return crate::layout::has_super(g);
        }
        true
    }

    fn start(&self, g: u32) -> u64 {
        self.first_data + u64::from(g) * self.bpg
    }

    fn end(&self, g: u32) -> u64 {
        (self.start(g) + self.bpg).min(self.blocks)
    }

    fn in_fs(&self, b: u64) -> bool {
        b >= self.first_data && b < self.blocks
    }

    fn itable_blocks(&self) -> u64 {
        (u64::from(self.ipg) * self.isz as u64).div_ceil(self.bs)
    }

    fn huge_file(&self) -> bool {
        self.ro & RO_COMPAT_HUGE_FILE != 0
    }

    fn wide_desc(&self) -> bool {
        self.incompat & INCOMPAT_64BIT != 0 && self.desc_size >= 64
    }

    fn uninit_ok(&self) -> bool {
        self.seed.is_some() || self.ro & RO_COMPAT_GDT_CSUM != 0
    }
}

/// What reading one inode found, kept per inode number.
#[derive(Clone, Copy, Default)]
struct Slot {
    mode: u16,
    links: u16,
    /// Directory entries naming this inode (`.` and `..` included).
    names: u32,
    flags: u8,
}

const SLOT_MARKED: u8 = 1;
const SLOT_READ: u8 = 2;
const SLOT_QUEUED: u8 = 4;

/// A directory's blocks, kept from the inode pass to the tree walk.
struct DirInfo {
    /// (file block, filesystem block), in file order; only blocks inside the fs.
    blocks: Vec<(u64, u64)>,
    /// Blocks the size says it has.
    size_blocks: u64,
    indexed: bool,
    generation: u32,
}

/// What mapping one inode found.
#[derive(Default)]
struct Mapped {
    data: u64,
    tree: u64,
    /// One past the last initialised file block.
    init_end: u64,
    first_physical: Option<u64>,
    list: Option<Vec<(u64, u64)>>,
}

/// The journal inode as the inode pass saw it.
struct JournalSeen {
    mode: u16,
    size: u64,
    data: u64,
    first: Option<u64>,
}

struct Ext<'a> {
    img: ImageFile,
    p: &'a mut Problems,
    g: Geo,
    descs: Vec<GroupDesc>,
    /// Fixed metadata: superblock and descriptor copies, bitmaps, inode tables.
    meta: Bits,
    /// Reserved descriptor blocks, owned by the resize inode when there is one.
    rsv: Bits,
    /// Blocks some inode references.
    refd: Bits,
    referenced: u64,
    claims_left: u64,
    gave_up: bool,
    slots: Vec<Slot>,
    table_ok: Vec<bool>,
    dirs: HashMap<u32, DirInfo>,
    /// Attribute block -> (referencing inodes, first of them).
    xattrs: HashMap<u64, (u32, u32)>,
    journal_ino: u32,
    resize_ino: u32,
    journal: Option<JournalSeen>,
    /// Inodes the superblock names (journal, quota, orphan file): in use without a name.
    special: Vec<u32>,
    /// The superblock's free counts, compared with the bitmaps' at the end.
    sb_free_inodes: u64,
    sb_free_blocks: u64,
}

fn check_ext(img: ImageFile, p: &mut Problems, report: &mut CheckReport) -> Result<(), Error> {
    let Ok(sb) = img.superblock() else {
        // inspect decoded it a moment ago; the file changed under us.
        p.push("superblock: no longer readable".to_owned());
        return Ok(());
    };
    let primary = read(&img, crate::superblock::SUPERBLOCK_OFFSET, 1024)?;
    let Some(g) = superblock(&img, &sb, p, report) else {
        return Ok(());
    };
    // The superblock's geometry fits the file (superblock() stopped otherwise), so the
    // descriptor table does too.
    let fs = match Fs::open(img, sb) {
        Ok(fs) => fs,
        Err(crate::reader::FsError::Read(e)) => return Err(e.into_error(&g.path)),
        Err(e) => {
            p.push(format!("superblock: {e}"));
            return Ok(());
        }
    };
    descriptors(&fs, &g, p);
    backups(&fs.file, &g, &primary, &fs.gdt, p)?;
    let Fs {
        file: img,
        sb,
        descs,
        ..
    } = fs;
    let n = g.blocks;
    // The largest table first, so that a filesystem too large to check here fails
    // before the block maps are filled.
    let slots = filled(u64::from(g.inodes) + 1, Slot::default(), || {
        format!("its {} inodes", g.inodes)
    })?;
    let mut ext = Ext {
        img,
        p,
        descs,
        meta: Bits::new(n)?,
        rsv: Bits::new(n)?,
        refd: Bits::new(n)?,
        referenced: 0,
        claims_left: n.saturating_add(4096),
        gave_up: false,
        slots,
        table_ok: vec![false; g.groups as usize],
        dirs: HashMap::new(),
        xattrs: HashMap::new(),
        journal_ino: 0,
        resize_ino: 0,
        journal: None,
        special: Vec::new(),
        sb_free_inodes: u64::from(sb.free_inodes_count),
        sb_free_blocks: sb.free_blocks_count,
        g,
    };
    ext.special_inodes(&sb);
    ext.metadata_map();
    ext.inode_bitmaps(report)?;
    ext.inode_pass()?;
    ext.walk()?;
    ext.after_walk(report);
    ext.xattr_blocks()?;
    ext.block_bitmaps(report)?;
    Ok(())
}

/// Checks the primary superblock and derives the geometry; `None` stops the check.
fn superblock(
    img: &ImageFile,
    sb: &Superblock,
    p: &mut Problems,
    report: &mut CheckReport,
) -> Option<Geo> {
    let bs = u64::from(sb.block_size);
    let (compat, incompat, ro) = (sb.feature_compat, sb.feature_incompat, sb.feature_ro_compat);
    for (bit, name) in UNREAD_INCOMPAT {
        if incompat & bit != 0 {
            report.not_checked.push(format!(
                "the {name} feature: this checker does not read its structures; only the \
                 superblock was checked"
            ));
        }
    }
    if ro & RO_COMPAT_BIGALLOC != 0 {
        report.not_checked.push(
            "the bigalloc feature: bitmaps count clusters; only the superblock was checked"
                .to_owned(),
        );
    }
    let Some(fs_bytes) = sb.blocks_count.checked_mul(bs) else {
        p.push("superblock: blocks_count × block size overflows".to_owned());
        return None;
    };
    let mut fatal = false;
    if fs_bytes > img.len() {
        p.push(format!(
            "superblock: {} blocks of {bs} bytes need {fs_bytes} bytes, but the file has {}",
            sb.blocks_count,
            img.len()
        ));
        fatal = true;
    }
    let want_first = u32::from(bs == 1024);
    if sb.first_data_block != want_first {
        p.push(format!(
            "superblock: first_data_block is {}, expected {want_first} for {bs}-byte blocks",
            sb.first_data_block
        ));
        fatal = true;
    }
    let groups = sb.groups();
    let Ok(groups32) = u32::try_from(groups) else {
        p.push(format!("superblock: {groups} block groups is impossible"));
        return None;
    };
    let inodes = groups.checked_mul(u64::from(sb.inodes_per_group));
    if inodes != Some(u64::from(sb.inodes_count)) {
        p.push(format!(
            "superblock: inodes_count is {}, but {groups} groups × {} inodes per group is {}",
            sb.inodes_count,
            sb.inodes_per_group,
            inodes.map_or("too many".to_owned(), |n| n.to_string())
        ));
        fatal = true;
    }
    let first_ino = sb.first_ino;
    if first_ino < 11 || first_ino > sb.inodes_count {
        p.push(format!(
            "superblock: first non-reserved inode is {first_ino}; expected 11..={}",
            sb.inodes_count
        ));
        fatal = true;
    }
    let metadata_csum = ro & RO_COMPAT_METADATA_CSUM != 0;
    if metadata_csum {
        if sb.checksum_type != CHECKSUM_TYPE_CRC32C {
            p.push("superblock: checksum type is not crc32c (1)".to_owned());
        }
        if sb.checksum != sb.computed_checksum {
            p.push(format!(
                "superblock: checksum is {:#010x}, the contents give {:#010x}",
                sb.checksum, sb.computed_checksum
            ));
        }
        if ro & RO_COMPAT_GDT_CSUM != 0 {
            p.push("superblock: both metadata_csum and uninit_bg are set".to_owned());
        }
    } else if incompat & INCOMPAT_CSUM_SEED != 0 {
        p.push("superblock: metadata_csum_seed without metadata_csum".to_owned());
    }
    if !sb.clean() {
        p.push("superblock: the filesystem was not cleanly unmounted".to_owned());
    }
    if sb.state & STATE_ERROR_FS != 0 {
        p.push("superblock: the kernel recorded errors on this filesystem".to_owned());
    }
    let last_orphan = sb.last_orphan;
    if last_orphan != 0 {
        p.push(format!(
            "superblock: the orphan list is not empty (inode {last_orphan}); the filesystem \
             was not cleanly unmounted"
        ));
    }
    if incompat & INCOMPAT_RECOVER != 0 {
        p.push("superblock: the journal needs recovery (needs_recovery is set)".to_owned());
    }
    let is64 = incompat & INCOMPAT_64BIT != 0;
    let desc_size = usize::from(sb.desc_size);
    if is64 && (desc_size < 64 || !desc_size.is_power_of_two()) {
        p.push(format!(
            "superblock: descriptor size {desc_size} with 64bit; expected a power of two >= 64"
        ));
        fatal = true;
    }
    if !is64 && sb.blocks_count > u64::from(u32::MAX) {
        p.push("superblock: more than 2^32 blocks without the 64bit feature".to_owned());
        fatal = true;
    }
    let itable = (u64::from(sb.inodes_per_group) * u64::from(sb.inode_size)).div_ceil(bs);
    if fatal || !report.not_checked.is_empty() {
        return None;
    }
    let free_blocks_ok = sb.free_blocks_count <= sb.blocks_count;
    if !free_blocks_ok {
        p.push(format!(
            "superblock: {} free blocks of {}",
            sb.free_blocks_count, sb.blocks_count
        ));
    }
    let gdt_blocks = (groups * desc_size as u64).div_ceil(bs);
    let rsv_gdt = u64::from(sb.reserved_gdt_blocks);
    let g = Geo {
        path: img.path().to_owned(),
        bs,
        blocks: sb.blocks_count,
        first_data: u64::from(sb.first_data_block),
        bpg: u64::from(sb.blocks_per_group),
        ipg: sb.inodes_per_group,
        isz: usize::from(sb.inode_size),
        groups: groups32,
        inodes: sb.inodes_count,
        first_ino,
        desc_size,
        gdt_blocks,
        rsv_gdt,
        compat,
        incompat,
        ro,
        seed: sb.csum_seed(),
        uuid: sb.uuid,
        backup_bgs: sb.backup_bgs,
    };
    // Group 0's fixed metadata alone must fit, or nothing below is meaningful.
    let fixed = 1 + gdt_blocks + rsv_gdt + 2 + itable;
    if g.first_data + fixed > g.blocks {
        p.push(format!(
            "superblock: {} blocks cannot hold the superblock, {gdt_blocks} descriptor blocks \
             and one group's bitmaps and inode table",
            g.blocks
        ));
        return None;
    }
    // Every group's inode table lies in the filesystem, apart from every other: all of
    // them together cannot outgrow it. (This also bounds the inode count, which sizes
    // what the check keeps per inode, by the file.)
    if u64::from(groups32).saturating_mul(itable) > g.blocks {
        p.push(format!(
            "superblock: {groups} groups' inode tables of {itable} blocks each do not fit in \
             {} blocks",
            g.blocks
        ));
        return None;
    }
    Some(g)
}

/// Checks the primary descriptor table (the reader has decoded it).
fn descriptors(fs: &Fs, g: &Geo, p: &mut Problems) {
    for (gi, desc) in (0..g.groups).zip(&fs.descs) {
        let off = gi as usize * g.desc_size;
        let d = &fs.gdt[off..off + g.desc_size];
        let stored = group_desc::stored_checksum(d);
        let computed = if let Some(seed) = g.seed {
            Some(group_desc::crc32c_checksum(d, gi, seed))
        } else if g.ro & RO_COMPAT_GDT_CSUM != 0 {
            Some(group_desc::crc16_checksum(d, gi, &g.uuid))
        } else {
            None
        };
        if let Some(c) = computed
            && c != stored
        {
            p.push(format!(
                "group {gi}: descriptor checksum is {stored:#06x}, the contents give {c:#06x}"
            ));
        }
        let len = g.end(gi) - g.start(gi);
        if u64::from(desc.free_blocks) > len {
            p.push(format!(
                "group {gi}: descriptor says {} free blocks, but the group has {len}",
                desc.free_blocks
            ));
        }
        if desc.free_inodes > g.ipg {
            p.push(format!(
                "group {gi}: descriptor says {} free inodes, but the group has {}",
                desc.free_inodes, g.ipg
            ));
        }
        if g.uninit_ok() && desc.itable_unused > g.ipg {
            p.push(format!(
                "group {gi}: {} unused inode table entries of {}",
                desc.itable_unused, g.ipg
            ));
        }
    }
}

/// Compares every backup superblock (and its descriptor table's positions) with the
/// primary: a tool that falls back to a backup must find the same filesystem.
fn backups(
    img: &ImageFile,
    g: &Geo,
    primary: &[u8],
    primary_gdt: &[u8],
    p: &mut Problems,
) -> Result<(), Error> {
    for gi in 1..g.groups {
        if !g.has_super(gi) {
            continue;
        }
        let at = g.start(gi) * g.bs;
        let b = read(img, at, 1024)?;
        let differ = crate::superblock::geometry_differences(primary, &b);
        if !differ.is_empty() {
            p.push(format!(
                "group {gi}: backup superblock (block {}) differs from the primary in {}",
                g.start(gi),
                differ.join(", ")
            ));
            continue;
        }
        // Its geometry is the primary's, which decoded: so does it.
        let Ok(backup) = Superblock::decode(&b) else {
            continue;
        };
        if let Ok(nr) = u16::try_from(gi)
            && backup.block_group_nr != nr
            && backup.rev_level >= 1
        {
            p.push(format!(
                "group {gi}: backup superblock's block_group_nr is {}, not {gi}",
                backup.block_group_nr
            ));
        }
        if g.seed.is_some() && backup.checksum != backup.computed_checksum {
            p.push(format!(
                "group {gi}: backup superblock checksum is {:#010x}, the contents give {:#010x}",
                backup.checksum, backup.computed_checksum
            ));
        }
        let gdt = read(img, (g.start(gi) + 1) * g.bs, primary_gdt.len())?;
        for d in 0..g.groups as usize {
            let r = d * g.desc_size;
            let same =
                |lo: usize, hi: usize| gdt.get(r + lo..r + hi) == primary_gdt.get(r + lo..r + hi);
            if !same(0, 0x0c) || (g.wide_desc() && !same(0x20, 0x2c)) {
                p.push(format!(
                    "group {gi}: backup descriptor of group {d} places its bitmaps or inode \
                     table elsewhere than the primary"
                ));
                break;
            }
        }
    }
    Ok(())
}

impl Ext<'_> {
    fn special_inodes(&mut self, sb: &Superblock) {
        if self.g.compat & COMPAT_HAS_JOURNAL != 0 {
            self.journal_ino = sb.journal_inum;
        }
        if self.g.compat & COMPAT_RESIZE_INODE != 0 {
            self.resize_ino = 7;
        }
        let mut special = vec![self.journal_ino];
        if self.g.ro & RO_COMPAT_QUOTA != 0 {
            special.extend([sb.usr_quota_inum, sb.grp_quota_inum]);
        }
        if self.g.ro & RO_COMPAT_PROJECT != 0 {
            special.push(sb.prj_quota_inum);
        }
        if self.g.compat & COMPAT_ORPHAN_FILE != 0 {
            special.push(sb.orphan_file_inum);
        }
        special.retain(|&i| i != 0 && i != 2);
        for &i in &special {
            if i > self.g.inodes {
                self.p.push(format!(
                    "superblock: names special inode {i}, beyond the {} inodes",
                    self.g.inodes
                ));
            }
        }
        self.special = special;
    }

    /// Marks the fixed metadata, reporting any structure outside the filesystem or on
    /// top of another.
    fn metadata_map(&mut self) {
        // The maps allocated (empty) with the checker are filled here.
        let mut meta = std::mem::take(&mut self.meta);
        let mut rsv = std::mem::take(&mut self.rsv);
        let g = &self.g;
        let mut problems = Vec::new();
        let resize = g.compat & COMPAT_RESIZE_INODE != 0;
        let mut claim = |start: u64, len: u64, what: String, reserved: bool| {
            let Some(end) = start.checked_add(len) else {
                problems.push(format!("{what}: block {start} is impossible"));
                return false;
            };
            if start < g.first_data || end > g.blocks {
                problems.push(format!(
                    "{what} (blocks {start}..{end}) lies outside the filesystem ({}..{})",
                    g.first_data, g.blocks
                ));
                return false;
            }
            let mut overlap = None;
            for b in start..end {
                if meta.get(b) || rsv.get(b) {
                    overlap.get_or_insert(b);
                    continue;
                }
                if reserved {
                    rsv.set(b);
                } else {
                    meta.set(b);
                }
            }
            if let Some(b) = overlap {
                problems.push(format!(
                    "{what} (blocks {start}..{end}) overlaps other metadata at block {b}"
                ));
            }
            true
        };
        for gi in 0..g.groups {
            if g.has_super(gi) {
                let s = g.start(gi);
                claim(s, 1, format!("group {gi}: superblock"), false);
                claim(
                    s + 1,
                    g.gdt_blocks,
                    format!("group {gi}: descriptor table"),
                    false,
                );
                if g.rsv_gdt > 0 {
                    claim(
                        s + 1 + g.gdt_blocks,
                        g.rsv_gdt,
                        format!("group {gi}: reserved descriptor blocks"),
                        resize,
                    );
                }
            }
        }
        let flex = g.incompat & INCOMPAT_FLEX_BG != 0;
        let mut table_ok = vec![false; g.groups as usize];
        let mut outside = Vec::new();
        for (gi, d) in self.descs.iter().enumerate() {
            let gi32 = gi as u32;
            let own = g.start(gi32)..g.end(gi32);
            let itb = g.itable_blocks();
            for (start, len, name) in [
                (d.block_bitmap, 1, "block bitmap"),
                (d.inode_bitmap, 1, "inode bitmap"),
                (d.inode_table, itb, "inode table"),
            ] {
                let ok = claim(start, len, format!("group {gi}: {name}"), false);
                if name == "inode table" {
                    table_ok[gi] = ok;
                }
                if ok && !flex && !(own.contains(&start) && start + len <= own.end) {
                    outside.push(format!(
                        "group {gi}: {name} at block {start} lies outside its group ({}..{}) \
                         without flex_bg",
                        own.start, own.end
                    ));
                }
            }
        }
        for line in problems.into_iter().chain(outside) {
            self.p.push(line);
        }
        self.meta = meta;
        self.rsv = rsv;
        self.table_ok = table_ok;
    }

    fn read_block(&self, b: u64) -> Result<Vec<u8>, Error> {
        read(&self.img, b * self.g.bs, self.g.bs as usize)
    }

    /// Reads the inode bitmaps, checks them against the counts, and marks the slots.
    fn inode_bitmaps(&mut self, report: &mut CheckReport) -> Result<(), Error> {
        let g = &self.g;
        let mut total_free = 0u64;
        let mut in_use = 0u64;
        for gi in 0..g.groups {
            let d = &self.descs[gi as usize];
            let uninit = g.uninit_ok() && d.flags & EXT4_BG_INODE_UNINIT != 0;
            let first = u64::from(gi) * u64::from(g.ipg) + 1;
            if uninit {
                total_free += u64::from(g.ipg);
                if d.free_inodes != g.ipg {
                    self.p.push(format!(
                        "group {gi}: INODE_UNINIT, but the descriptor says {} free inodes of {}",
                        d.free_inodes, g.ipg
                    ));
                }
                if first <= u64::from(g.first_ino) {
                    self.p.push(format!(
                        "group {gi}: INODE_UNINIT, but it holds the reserved inodes"
                    ));
                }
                continue;
            }
            if !g.in_fs(d.inode_bitmap) {
                continue;
            }
            let bm = read(&self.img, d.inode_bitmap * g.bs, g.bs as usize)?;
            let mut free = 0u32;
            for i in 0..u64::from(g.ipg) {
                if bit(&bm, i) {
                    in_use += 1;
                    let ino = (first + i) as usize;
                    if let Some(s) = self.slots.get_mut(ino) {
                        s.flags |= SLOT_MARKED;
                    }
                } else {
                    free += 1;
                }
            }
            total_free += u64::from(free);
            if free != d.free_inodes {
                self.p.push(format!(
                    "group {gi}: descriptor says {} free inodes, the inode bitmap has {free}",
                    d.free_inodes
                ));
            }
            if let Some(i) = (u64::from(g.ipg)..g.bs * 8).find(|&i| !bit(&bm, i)) {
                self.p.push(format!(
                    "group {gi}: inode bitmap padding (bit {i} on) is not set"
                ));
            }
            if g.uninit_ok() && d.itable_unused > 0 {
                let used_end = u64::from(g.ipg.saturating_sub(d.itable_unused));
                if let Some(i) = (used_end..u64::from(g.ipg)).find(|&i| bit(&bm, i)) {
                    self.p.push(format!(
                        "group {gi}: inode {} is in use but lies in the unused part of the \
                         inode table (itable_unused {})",
                        first + i,
                        d.itable_unused
                    ));
                }
            }
            if let Some(seed) = g.seed {
                let n = (g.ipg / 8) as usize;
                let crc = crate::checksum::crc32c_raw(seed, bm.get(..n).unwrap_or(&bm));
                let (want, have) = if g.wide_desc() {
                    (crc, d.inode_bitmap_csum)
                } else {
                    (crc & 0xffff, d.inode_bitmap_csum & 0xffff)
                };
                if want != have {
                    self.p.push(format!(
                        "group {gi}: inode bitmap checksum is {have:#x}, the bitmap gives {want:#x}"
                    ));
                }
            }
        }
        let sb_free = self.sb_free_inodes;
        if total_free != sb_free {
            self.p.push(format!(
                "superblock: says {sb_free} free inodes, the group descriptors' bitmaps have \
                 {total_free}"
            ));
        }
        for ino in 1..g.first_ino.min(g.inodes + 1) {
            if self.slots[ino as usize].flags & SLOT_MARKED == 0 {
                self.p.push(format!(
                    "inode {ino} is reserved but free in the inode bitmap"
                ));
            }
        }
        report.inodes_in_use = in_use;
        Ok(())
    }

    /// Streams the inode tables group by group: every marked inode is read in full;
    /// free ones must look free (e2fsck would otherwise take them for lost files).
    fn inode_pass(&mut self) -> Result<(), Error> {
        let isz = self.g.isz;
        let per_chunk = (1usize << 20) / isz;
        let ipg = self.g.ipg as usize;
        for gi in 0..self.g.groups {
            if !self.table_ok[gi as usize] {
                continue;
            }
            let d = &self.descs[gi as usize];
            // Past itable_unused (and in INODE_UNINIT groups) the table may be garbage.
            let scan = if !self.g.uninit_ok() {
                ipg
            } else if d.flags & EXT4_BG_INODE_UNINIT != 0 {
                0
            } else {
                ipg.saturating_sub(d.itable_unused as usize)
            };
            let table = d.inode_table * self.g.bs;
            let first = gi as usize * ipg + 1;
            let mut k = 0usize;
            while k < scan {
                let n = per_chunk.min(scan - k);
                let buf = read(&self.img, table + (k * isz) as u64, n * isz)?;
                for j in 0..n {
                    let ino = first + k + j;
                    let raw = &buf[j * isz..(j + 1) * isz];
                    if self.slots[ino].flags & SLOT_MARKED != 0 {
                        self.inode(ino as u32, raw, true)?;
                    } else {
                        self.free_inode(ino as u32, raw);
                    }
                }
                k += n;
            }
        }
        Ok(())
    }

    /// A free inode: all zeros, or a deleted inode (links 0, deletion time set).
    fn free_inode(&mut self, ino: u32, raw: &[u8]) {
        if ino < self.g.first_ino || inode::is_blank(raw) {
            return;
        }
        let Some(i) = Inode::decode(raw) else {
            return;
        };
        let (mode, links, dtime) = (i.mode, i.links_count, i.dtime);
        if let Some(seed) = self.g.seed {
            self.inode_csum(ino, raw, seed);
        }
        if links != 0 {
            self.p.push(format!(
                "inode {ino} is free in the inode bitmap, but its record is in use ({}, \
                 link count {links})",
                type_name(mode)
            ));
        } else if mode != 0 && dtime == 0 {
            self.p.push(format!(
                "inode {ino} is free, but its record has a mode and no deletion time"
            ));
        } else if dtime != 0 && dtime <= self.g.inodes {
            // The orphan list links inodes through i_dtime; e2fsck reads so small a
            // "time" as a link of a list the superblock no longer heads.
            self.p.push(format!(
                "inode {ino} is free, but its deletion time {dtime} reads as an orphan list link"
            ));
        }
    }

    /// Reads one inode on its own (one the walk found named but not marked).
    fn read_inode(&self, ino: u32) -> Result<Option<Vec<u8>>, Error> {
        let g = &self.g;
        let gi = ((ino - 1) / g.ipg) as usize;
        if !self.table_ok.get(gi).copied().unwrap_or(false) {
            return Ok(None);
        }
        let idx = u64::from((ino - 1) % g.ipg);
        let off = self.descs[gi].inode_table * g.bs + idx * g.isz as u64;
        Ok(Some(read(&self.img, off, g.isz)?))
    }

    /// Claims block `b` for inode `ino`; `true` when it is newly claimed and may be
    /// read (descended into).
    fn claim(&mut self, ino: u32, b: u64, what: &str) -> bool {
        if self.gave_up {
            return false;
        }
        if self.claims_left == 0 {
            self.gave_up = true;
            self.p.push(
                "more block references than the filesystem has blocks; block checks stopped"
                    .to_owned(),
            );
            return false;
        }
        self.claims_left -= 1;
        if !self.g.in_fs(b) {
            self.p.push(format!(
                "inode {ino}: {what} block {b} lies outside the filesystem ({}..{})",
                self.g.first_data, self.g.blocks
            ));
            return false;
        }
        if self.meta.get(b) || (self.rsv.get(b) && ino != self.resize_ino) {
            self.p.push(format!(
                "inode {ino}: {what} block {b} is filesystem metadata"
            ));
            return false;
        }
        if self.refd.set(b) {
            self.p.push(format!(
                "inode {ino}: {what} block {b} is also referenced elsewhere"
            ));
            return false;
        }
        self.referenced += 1;
        true
    }

    /// Reads inode `ino` from its slot bytes: checksum, type, mapping, counts.
    fn inode(&mut self, ino: u32, raw: &[u8], marked: bool) -> Result<(), Error> {
        let slot_i = ino as usize;
        self.slots[slot_i].flags |= SLOT_READ;
        let reserved = ino < self.g.first_ino && ino != 2;
        if inode::is_blank(raw) {
            if !reserved && marked {
                self.p.push(format!(
                    "inode {ino} is marked in use but its record is empty"
                ));
            }
            return Ok(());
        }
        // The inode size is at least 128 (the superblock decoder saw to it).
        let Some(rec) = Inode::decode(raw) else {
            return Ok(());
        };
        let mode = rec.mode;
        let links = rec.links_count;
        let flags = rec.flags;
        let generation = rec.generation;
        let size = rec.size;
        let is64 = self.g.incompat & INCOMPAT_64BIT != 0;
        let acl_hi = rec.file_acl_high;
        let file_acl = rec.file_acl(is64);
        if acl_hi != 0 && !is64 {
            self.p.push(format!(
                "inode {ino}: high half of i_file_acl is {acl_hi} without the 64bit feature"
            ));
        }
        let iblocks = rec.blocks(self.g.huge_file());
        self.slots[slot_i].mode = mode;
        self.slots[slot_i].links = links;
        let kind = mode & S_IFMT;
        if let Some(seed) = self.g.seed {
            self.inode_csum(ino, raw, seed);
        }
        if reserved && mode == 0 && ino != self.resize_ino {
            // An unused reserved inode (bad blocks list, undelete, ...): no mapping.
            let dtime = rec.dtime;
            if dtime != 0 && dtime <= self.g.inodes {
                self.p.push(format!(
                    "inode {ino} is reserved, but its deletion time {dtime} reads as an orphan \
                     list link"
                ));
            }
            return Ok(());
        }
        if entry_type(mode).is_none() {
            self.p.push(format!(
                "inode {ino}: mode {mode:#o} has no valid file type"
            ));
            return Ok(());
        }
        if links == 0 && !reserved {
            self.p.push(format!(
                "inode {ino} ({}) is in use but its link count is 0",
                type_name(mode)
            ));
        }
        if rec.dtime != 0 && links != 0 {
            self.p.push(format!(
                "inode {ino} ({}) is in use but has a deletion time",
                type_name(mode)
            ));
        }
        if flags & EXT4_INLINE_DATA_FL != 0 {
            self.p.push(format!(
                "inode {ino}: inline data without the inline_data feature"
            ));
            return Ok(());
        }
        for (flag, needs, name) in [
            (
                EXT4_IMAGIC_FL,
                self.g.compat & COMPAT_IMAGIC_INODES != 0,
                "imagic",
            ),
            (
                EXT4_ENCRYPT_FL,
                self.g.incompat & INCOMPAT_ENCRYPT != 0,
                "encrypt",
            ),
            (
                EXT4_CASEFOLD_FL,
                self.g.incompat & INCOMPAT_CASEFOLD != 0,
                "casefold",
            ),
            (EXT4_VERITY_FL, self.g.ro & RO_COMPAT_VERITY != 0, "verity"),
            (EXT4_INDEX_FL, kind == S_IFDIR, "htree index"),
        ] {
            if flags & flag != 0 && !needs {
                self.p.push(format!(
                    "inode {ino} ({}): has the {name} flag, which this filesystem or file type \
                     does not allow",
                    type_name(mode)
                ));
            }
        }
        if rec.faddr != 0 {
            self.p.push(format!(
                "inode {ino}: obsolete fragment address i_faddr is {}, not 0",
                rec.faddr
            ));
        }
        let i_block = &rec.block[..];
        let is_dir = kind == S_IFDIR;
        let want_list = is_dir;
        let mut m = Mapped {
            list: want_list.then(Vec::new),
            ..Mapped::default()
        };
        let acl_blocks = u64::from(file_acl != 0);
        let sectors = self.g.bs / 512;
        let acl_units = if self.g.huge_file() && flags & EXT4_HUGE_FILE_FL != 0 {
            acl_blocks
        } else {
            acl_blocks * sectors
        };
        let fast_symlink = kind == S_IFLNK
            && flags & EXT4_EXTENTS_FL == 0
            && size < 60
            && iblocks.saturating_sub(acl_units) == 0;
        let no_blocks = matches!(kind, S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK);
        if fast_symlink {
            let text = i_block.get(..size as usize).unwrap_or(&[]);
            if size == 0 || text.contains(&0) {
                self.p.push(format!(
                    "inode {ino}: fast symlink of size {size} holds a shorter target"
                ));
            }
        } else if no_blocks {
            if flags & EXT4_EXTENTS_FL != 0 {
                self.p.push(format!(
                    "inode {ino}: a {} with an extent tree",
                    type_name(mode)
                ));
            }
        } else if flags & EXT4_EXTENTS_FL != 0 {
            if self.g.incompat & INCOMPAT_EXTENTS == 0 {
                self.p.push(format!(
                    "inode {ino}: extent flag without the extent feature"
                ));
            } else {
                let seed = self.g.seed.map(|s| inode_seed(s, ino, generation));
                let bs = self.g.bs as u32;
                crate::extent::walk(
                    i_block,
                    bs,
                    seed,
                    &mut MapCheck {
                        ext: self,
                        ino,
                        m: &mut m,
                    },
                )?;
            }
        } else {
            let bs = self.g.bs as u32;
            crate::blockmap::walk(
                i_block,
                bs,
                &mut MapCheck {
                    ext: self,
                    ino,
                    m: &mut m,
                },
            )?;
        }
        // i_blocks: 512-byte units, or filesystem blocks with HUGE_FILE_FL.
        let want_blocks = m.data + m.tree + acl_blocks;
        let want_units = if self.g.huge_file() && flags & EXT4_HUGE_FILE_FL != 0 {
            want_blocks
        } else {
            want_blocks * sectors
        };
        if iblocks != want_units {
            self.p.push(format!(
                "inode {ino} ({}): i_blocks is {iblocks}, but it maps {} data, {} mapping and \
                 {acl_blocks} attribute blocks ({want_units})",
                type_name(mode),
                m.data,
                m.tree
            ));
        }
        let size_blocks = size.div_ceil(self.g.bs);
        if (kind == S_IFREG || kind == S_IFLNK || is_dir) && m.init_end > size_blocks {
            self.p.push(format!(
                "inode {ino} ({}): block {} is mapped past its size of {size} bytes",
                type_name(mode),
                m.init_end - 1
            ));
        }
        if kind == S_IFLNK && !fast_symlink && (size >= self.g.bs || size == 0 || m.data != 1) {
            self.p.push(format!(
                "inode {ino}: slow symlink of {size} bytes maps {} blocks (expected 1)",
                m.data
            ));
        }
        if file_acl != 0 {
            let e = self.xattrs.entry(file_acl).or_insert((0, ino));
            e.0 = e.0.saturating_add(1);
        }
        if is_dir {
            if !size.is_multiple_of(self.g.bs) || size == 0 {
                self.p.push(format!(
                    "directory inode {ino}: size {size} is not a positive multiple of the \
                     block size"
                ));
            }
            self.dirs.insert(
                ino,
                DirInfo {
                    blocks: m.list.take().unwrap_or_default(),
                    size_blocks,
                    indexed: flags & EXT4_INDEX_FL != 0,
                    generation,
                },
            );
        }
        if ino == self.journal_ino {
            self.journal = Some(JournalSeen {
                mode,
                size,
                data: m.data,
                first: m.first_physical,
            });
        }
        Ok(())
    }

    fn inode_csum(&mut self, ino: u32, raw: &[u8], seed: u32) {
        match inode::checksum(raw, ino, seed) {
            Err(e) => self.p.push(format!(
                "inode {ino}: extra_isize {} does not fit a {}-byte inode",
                e.extra_isize, e.inode_size
            )),
            Ok(c) if c.stored != c.computed => self.p.push(format!(
                "inode {ino}: checksum is {:#x}, the contents give {:#x}",
                c.stored, c.computed
            )),
            Ok(_) => {}
        }
    }

    /// Records a run of data blocks and claims each of them.
    fn data_run(&mut self, ino: u32, run: Run, m: &mut Mapped) {
        let Run {
            logical,
            physical,
            len,
            init,
        } = run;
        m.data += len;
        if init {
            m.init_end = m.init_end.max(logical + len);
        }
        if logical == 0 && len > 0 {
            m.first_physical = Some(physical);
        }
        if let Err(problem) = run.inside(self.g.first_data, self.g.blocks) {
            self.p.push(format!("inode {ino}: {problem}"));
            return;
        }
        for i in 0..len {
            if self.gave_up {
                return;
            }
            let b = physical + i;
            self.claim(ino, b, "data");
            if let Some(list) = m.list.as_mut() {
                list.push((logical + i, b));
            }
        }
    }

    /// Walks the directory tree from the root, counting names.
    fn walk(&mut self) -> Result<(), Error> {
        if self.slots.get(2).is_none_or(|s| s.flags & SLOT_MARKED == 0) {
            self.p
                .push("inode 2 (the root directory) is free in the inode bitmap".to_owned());
            if self.slots.get(2).is_some_and(|s| s.flags & SLOT_READ == 0)
                && let Some(raw) = self.read_inode(2)?
            {
                self.inode(2, &raw, false)?;
            }
        }
        if self.slots.get(2).is_none_or(|s| s.mode & S_IFMT != S_IFDIR) {
            self.p
                .push("inode 2 (the root directory) is not a directory".to_owned());
            return Ok(());
        }
        self.slots[2].flags |= SLOT_QUEUED;
        let mut queue = VecDeque::from([(2u32, 2u32, String::new())]);
        while let Some((dir, parent, path)) = queue.pop_front() {
            let Some(info) = self.dirs.remove(&dir) else {
                continue;
            };
            self.directory(dir, parent, &path, info, &mut queue)?;
        }
        Ok(())
    }

    fn directory(
        &mut self,
        dir: u32,
        parent: u32,
        path: &str,
        info: DirInfo,
        queue: &mut VecDeque<(u32, u32, String)>,
    ) -> Result<(), Error> {
        let shown = if path.is_empty() { "/" } else { path };
        let bs = self.g.bs as usize;
        let filetype = self.g.incompat & INCOMPAT_FILETYPE != 0;
        let seed = self.g.seed.map(|s| inode_seed(s, dir, info.generation));
        let mut expect = 0u64;
        let mut count = 0usize;
        for &(logical, b) in &info.blocks {
            if logical != expect {
                self.p.push(format!(
                    "directory inode {dir} ({shown}): file block {expect} is a hole"
                ));
            }
            expect = logical + 1;
            let block = self.read_block(b)?;
            let tail = dir_entry::has_tail(&block);
            if let Some(seed) = seed {
                self.dir_csum(dir, shown, logical, &block, tail, info.indexed, seed);
            }
            let end = if tail { bs - dir_entry::TAIL_LEN } else { bs };
            for e in dir_entry::entries(&block, end) {
                let e = match e {
                    Ok(e) => e,
                    Err(DirBlockError::CutOff { offset }) => {
                        self.p.push(format!(
                            "directory inode {dir} ({shown}): block {logical}: entry at offset \
                             {offset} is cut off"
                        ));
                        break;
                    }
                    Err(DirBlockError::BadRecLen { offset, rec_len }) => {
                        self.p.push(format!(
                            "directory inode {dir} ({shown}): block {logical}: bad rec_len \
                             {rec_len} at offset {offset}"
                        ));
                        break;
                    }
                };
                let index = count;
                count += 1;
                self.dir_entry(
                    dir,
                    parent,
                    shown,
                    path,
                    logical,
                    index,
                    e.inode,
                    e.name,
                    e.file_type,
                    filetype,
                    queue,
                )?;
            }
        }
        if info.blocks.is_empty() || expect < info.size_blocks {
            self.p.push(format!(
                "directory inode {dir} ({shown}): maps {} of the {} blocks its size says",
                info.blocks.len(),
                info.size_blocks
            ));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dir_entry(
        &mut self,
        dir: u32,
        parent: u32,
        shown: &str,
        path: &str,
        logical: u64,
        index: usize,
        ino: u32,
        name: &[u8],
        ftype: u8,
        filetype: bool,
        queue: &mut VecDeque<(u32, u32, String)>,
    ) -> Result<(), Error> {
        let shown_name = String::from_utf8_lossy(name);
        let child_path = format!("{path}/{shown_name}");
        let is_dot = name == b".";
        let is_dotdot = name == b"..";
        if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
            self.p.push(format!(
                "directory inode {dir} ({shown}): entry naming inode {ino} has an invalid name"
            ));
        }
        if ino > self.g.inodes {
            self.p.push(format!(
                "directory inode {dir} ({shown}): '{shown_name}' names inode {ino}, beyond the \
                 {} inodes",
                self.g.inodes
            ));
            return Ok(());
        }
        let first_entries = logical == 0 && index < 2;
        if is_dot || is_dotdot || first_entries {
            let (want_name, want_ino): (&[u8], u32) = if logical == 0 && index == 0 {
                (b".", dir)
            } else if logical == 0 && index == 1 {
                (b"..", parent)
            } else {
                (name, 0)
            };
            if name != want_name {
                self.p.push(format!(
                    "directory inode {dir} ({shown}): entry {index} of block 0 is '{shown_name}', \
                     expected '{}'",
                    String::from_utf8_lossy(want_name)
                ));
            } else if want_ino == 0 {
                self.p.push(format!(
                    "directory inode {dir} ({shown}): a second '{shown_name}' entry in block \
                     {logical}"
                ));
            } else if ino != want_ino {
                self.p.push(format!(
                    "directory inode {dir} ({shown}): '{shown_name}' names inode {ino}, \
                     expected {want_ino}"
                ));
            }
        }
        let slot = &mut self.slots[ino as usize];
        slot.names = slot.names.saturating_add(1);
        if slot.flags & SLOT_MARKED == 0 && slot.names == 1 {
            self.p.push(format!(
                "inode {ino} ({child_path}) is in use but free in the inode bitmap"
            ));
            if slot.flags & SLOT_READ == 0
                && let Some(raw) = self.read_inode(ino)?
            {
                self.inode(ino, &raw, false)?;
            }
        }
        let mode = self.slots[ino as usize].mode;
        if is_dot || is_dotdot {
            return Ok(());
        }
        if ino < self.g.first_ino && ino != 2 || self.special.contains(&ino) {
            self.p.push(format!(
                "directory inode {dir} ({shown}): '{shown_name}' names reserved inode {ino}"
            ));
        }
        if filetype && mode != 0 && entry_type(mode) != Some(ftype) {
            self.p.push(format!(
                "{child_path}: entry type {ftype} does not match inode {ino}, a {}",
                type_name(mode)
            ));
        }
        if mode & S_IFMT == S_IFDIR {
            let s = &mut self.slots[ino as usize];
            if s.flags & SLOT_QUEUED != 0 || ino == 2 {
                self.p.push(format!(
                    "directory inode {ino} has more than one name (also {child_path})"
                ));
            } else {
                s.flags |= SLOT_QUEUED;
                queue.push_back((ino, dir, child_path));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dir_csum(
        &mut self,
        dir: u32,
        shown: &str,
        logical: u64,
        block: &[u8],
        tail: bool,
        indexed: bool,
        seed: u32,
    ) {
        if tail {
            let (stored, crc) = dir_entry::tail_checksum(block, seed);
            if crc != stored {
                self.p.push(format!(
                    "directory inode {dir} ({shown}): block {logical} checksum is {stored:#x}, \
                     the contents give {crc:#x}"
                ));
            }
            return;
        }
        // htree index blocks carry a dx_tail after their entries instead.
        let count_offset = indexed
            .then(|| crate::dir_htree::count_offset(block, logical == 0))
            .flatten();
        let verified = count_offset.and_then(|co| {
            let (stored, crc) = crate::dir_htree::index_checksum(block, co, seed)?;
            Some(crc == stored)
        });
        match verified {
            Some(true) => {}
            Some(false) => self.p.push(format!(
                "directory inode {dir} ({shown}): index block {logical} checksum does not match"
            )),
            None => self.p.push(format!(
                "directory inode {dir} ({shown}): block {logical} has no checksum tail"
            )),
        }
    }

    /// After the walk: reachability, link counts, the journal, directory counts.
    fn after_walk(&mut self, report: &mut CheckReport) {
        let g = &self.g;
        let dir_nlink = g.ro & RO_COMPAT_DIR_NLINK != 0;
        let mut reachable = 0u64;
        let mut dirs_per_group = vec![0u32; g.groups as usize];
        let mut lines = Vec::new();
        for ino in 1..=g.inodes {
            let s = self.slots[ino as usize];
            let is_dir = s.mode & S_IFMT == S_IFDIR;
            if s.flags & SLOT_MARKED != 0 && is_dir {
                dirs_per_group[((ino - 1) / g.ipg) as usize] += 1;
            }
            if s.names > 0 {
                reachable += 1;
            }
            let ordinary = ino == 2 || ino >= g.first_ino;
            if !ordinary || self.special.contains(&ino) {
                continue;
            }
            if s.flags & SLOT_MARKED != 0 && s.names == 0 {
                if s.flags & SLOT_READ != 0 && s.mode != 0 {
                    lines.push(format!(
                        "inode {ino} ({}) is marked in use but no directory names it",
                        type_name(s.mode)
                    ));
                }
                continue;
            }
            if s.names == 0 || s.mode == 0 {
                continue;
            }
            let links = u32::from(s.links);
            let ok = links == s.names || (is_dir && dir_nlink && links == 1 && s.names > 65_000);
            if !ok {
                lines.push(format!(
                    "inode {ino} ({}): link count is {links}, but {} names it",
                    type_name(s.mode),
                    if is_dir {
                        format!("{} (2 + subdirectories)", s.names)
                    } else {
                        s.names.to_string()
                    }
                ));
            }
        }
        for (gi, d) in self.descs.iter().enumerate() {
            let uninit = g.uninit_ok() && d.flags & EXT4_BG_INODE_UNINIT != 0;
            if !uninit && d.used_dirs != dirs_per_group[gi] {
                lines.push(format!(
                    "group {gi}: descriptor says {} directories, the inode bitmap and table \
                     have {}",
                    d.used_dirs, dirs_per_group[gi]
                ));
            }
        }
        if self.journal_ino != 0 {
            let ino = self.journal_ino;
            match &self.journal {
                None => lines.push(format!(
                    "journal inode {ino}: not in use (has_journal is set)"
                )),
                Some(j) => {
                    if j.mode & S_IFMT != S_IFREG {
                        lines.push(format!(
                            "journal inode {ino}: a {}, not a regular file",
                            type_name(j.mode)
                        ));
                    }
                    if j.size == 0 || j.size != j.data.saturating_mul(g.bs) {
                        lines.push(format!(
                            "journal inode {ino}: size {} bytes, but it maps {} blocks",
                            j.size, j.data
                        ));
                    }
                    match j.first {
                        Some(b) if g.in_fs(b) => {
                            if let Ok(blk) = read(&self.img, b * g.bs, 1024)
                                && !crate::journal::has_magic(&blk)
                            {
                                lines.push(format!(
                                    "journal inode {ino}: block {b} does not start with a jbd2 \
                                     superblock"
                                ));
                            }
                        }
                        _ => lines.push(format!(
                            "journal inode {ino}: its first block is not mapped"
                        )),
                    }
                }
            }
        }
        for l in lines {
            self.p.push(l);
        }
        report.inodes_reachable = reachable;
    }

    /// Claims each attribute block once and checks its header against the inodes that
    /// point at it.
    fn xattr_blocks(&mut self) -> Result<(), Error> {
        let mut blocks: Vec<(u64, (u32, u32))> =
            self.xattrs.iter().map(|(b, v)| (*b, *v)).collect();
        blocks.sort_unstable();
        for (b, (refs, first)) in blocks {
            if !self.claim(first, b, "attribute") {
                continue;
            }
            let block = self.read_block(b)?;
            let Some(h) = crate::xattr::decode_header(&block) else {
                self.p.push(format!(
                    "attribute block {b} (inode {first}): magic is wrong"
                ));
                continue;
            };
            let count = h.refcount;
            if count != refs {
                self.p.push(format!(
                    "attribute block {b}: h_refcount is {count}, but {refs} inodes point at it"
                ));
            }
            let nblocks = h.blocks;
            if nblocks != 1 {
                self.p
                    .push(format!("attribute block {b}: h_blocks is {nblocks}, not 1"));
            }
            if let Some(seed) = self.g.seed {
                let (stored, crc) = crate::xattr::block_checksum(&block, b, seed);
                if crc != stored {
                    self.p.push(format!(
                        "attribute block {b}: checksum is {stored:#x}, the contents give {crc:#x}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Compares each group's block bitmap with the metadata and the references.
    fn block_bitmaps(&mut self, report: &mut CheckReport) -> Result<(), Error> {
        let g = &self.g;
        let mut total_free = 0u64;
        let mut used_on_disk = 0u64;
        let mut meta_count = 0u64;
        let mut lines = Vec::new();
        for gi in 0..g.groups {
            let d = &self.descs[gi as usize];
            let (start, end) = (g.start(gi), g.end(gi));
            let len = end - start;
            let uninit = g.uninit_ok() && d.flags & EXT4_BG_BLOCK_UNINIT != 0;
            let bm = if uninit {
                // The kernel computes such a bitmap: the group's own metadata only.
                let mut v = vec![0u8; g.bs as usize];
                for i in 0..len {
                    if self.meta.get(start + i) || self.rsv.get(start + i) {
                        v[(i / 8) as usize] |= 1 << (i % 8);
                    }
                }
                v
            } else if g.in_fs(d.block_bitmap) {
                read(&self.img, d.block_bitmap * g.bs, g.bs as usize)?
            } else {
                continue;
            };
            let mut free = 0u64;
            let mut wrong_used: Vec<(u64, u64)> = Vec::new();
            let mut wrong_free: Vec<(u64, u64)> = Vec::new();
            for i in 0..len {
                let b = start + i;
                let on = bit(&bm, i);
                if self.meta.get(b) {
                    meta_count += 1;
                }
                if on {
                    used_on_disk += 1;
                } else {
                    free += 1;
                }
                let expected = self.meta.get(b) || self.refd.get(b);
                if on != expected {
                    let v = if on { &mut wrong_used } else { &mut wrong_free };
                    match v.last_mut() {
                        Some(r) if r.1 == b => r.1 = b + 1,
                        _ => v.push((b, b + 1)),
                    }
                }
            }
            total_free += free;
            if free != u64::from(d.free_blocks) {
                lines.push(format!(
                    "group {gi}: descriptor says {} free blocks, the block bitmap has {free}",
                    d.free_blocks
                ));
            }
            if !uninit {
                if let Some(i) = (len..g.bs * 8).find(|&i| !bit(&bm, i)) {
                    lines.push(format!(
                        "group {gi}: block bitmap padding (bit {i} on) is not set"
                    ));
                }
                if let Some(seed) = g.seed {
                    let n = (g.bpg / 8) as usize;
                    let crc = crate::checksum::crc32c_raw(seed, bm.get(..n).unwrap_or(&bm));
                    let (want, have) = if g.wide_desc() {
                        (crc, d.block_bitmap_csum)
                    } else {
                        (crc & 0xffff, d.block_bitmap_csum & 0xffff)
                    };
                    if want != have {
                        lines.push(format!(
                            "group {gi}: block bitmap checksum is {have:#x}, the bitmap gives \
                             {want:#x}"
                        ));
                    }
                }
            }
            if !self.gave_up {
                let show = |(a, b): (u64, u64)| {
                    if b - a == 1 {
                        format!("block {a}")
                    } else {
                        format!("blocks {a}..{b}")
                    }
                };
                for r in wrong_used.into_iter().take(8) {
                    lines.push(format!(
                        "group {gi}: {} marked used in the block bitmap, but nothing uses it",
                        show(r)
                    ));
                }
                for r in wrong_free.into_iter().take(8) {
                    lines.push(format!(
                        "group {gi}: {} in use but free in the block bitmap",
                        show(r)
                    ));
                }
            }
        }
        let sb_free = self.sb_free_blocks;
        if total_free != sb_free {
            lines.push(format!(
                "superblock: says {sb_free} free blocks, the block bitmaps have {total_free}"
            ));
        }
        if !self.gave_up && used_on_disk != meta_count + self.referenced {
            lines.push(format!(
                "block bitmaps mark {used_on_disk} blocks used, but metadata takes {meta_count} \
                 and inodes reference {}",
                self.referenced
            ));
        }
        for l in lines {
            self.p.push(l);
        }
        report.metadata_blocks = meta_count;
        report.blocks_referenced = self.referenced;
        Ok(())
    }
}

/// The check's side of a mapping walk: each mapping block is claimed (so counted and
/// read once), each run claimed block by block, each problem a line.
struct MapCheck<'e, 'p, 'm> {
    ext: &'e mut Ext<'p>,
    ino: u32,
    m: &'m mut Mapped,
}

impl Visitor for MapCheck<'_, '_, '_> {
    type Error = Error;

    fn enter(&mut self, nr: u64, kind: MapBlock) -> bool {
        self.m.tree += 1;
        self.ext.claim(self.ino, nr, kind.name())
    }

    fn read(&mut self, nr: u64) -> Result<Vec<u8>, Error> {
        self.ext.read_block(nr)
    }

    fn data(&mut self, run: Run) {
        self.ext.data_run(self.ino, run, self.m);
    }

    fn problem(&mut self, problem: MapProblem) {
        self.ext.p.push(format!("inode {}: {problem}", self.ino));
    }

    fn gave_up(&self) -> bool {
        self.ext.gave_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table sized by a hostile count is an error the caller can report, never an
    /// abort (a 60 TiB VHDX from `images build` asked for 48 GB here and killed the
    /// process with "memory allocation failed").
    #[test]
    fn a_table_larger_than_memory_is_an_error_not_an_abort() {
        let Err(e) = filled(u64::MAX / 2, Slot::default(), || "its inodes".to_owned()) else {
            panic!("more than an address space was given");
        };
        let shown = e.to_string();
        assert!(
            shown.contains("bytes of memory for its inodes") && shown.contains("more memory"),
            "{shown}"
        );
        assert!(matches!(e, Error::TooLargeToCheck { bytes, .. } if bytes >= u64::MAX / 2));
        assert!(Bits::new(u64::MAX).is_err(), "2^64 bits");
        assert_eq!(filled(3, 7u8, String::new).expect("small"), [7, 7, 7]);
    }
}
