//! `check`: a structural check of an image, read from the file alone and independent
//! of the writer's state, so that it judges images made by mke2fs, by an older build of
//! this crate, or by a guest that has mounted them, by the same rules.
//!
//! The on-disk facts come from the kernel's Documentation/filesystems/ext4/ (the same
//! pages each encoder module cites); the rules are the ones e2fsck's passes 1 to 5
//! enforce, restricted to what a freshly written or cleanly unmounted image must hold.
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
//! An image is untrusted input: every read goes through `get()` and `Option`, all
//! offsets are computed with checked arithmetic or from values already bounded by the
//! geometry, each mapped block is claimed once (so a loop in an extent tree or block map
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
use std::path::{Path, PathBuf};

use crate::checksum::{crc32c_raw, inode_seed};
use crate::disk::VirtualDisk;
use crate::error::Error;
use crate::features::{
    COMPAT_HAS_JOURNAL, INCOMPAT_64BIT, INCOMPAT_EXTENTS, INCOMPAT_FILETYPE, INCOMPAT_FLEX_BG,
    RO_COMPAT_DIR_NLINK, RO_COMPAT_HUGE_FILE, RO_COMPAT_METADATA_CSUM, RO_COMPAT_SPARSE_SUPER,
};
use crate::inode::{
    EXT4_EXTENTS_FL, EXT4_INDEX_FL, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG,
};
use crate::inspect::{ImageKind, Superblock};
use crate::util::{get_u16le, get_u32be, get_u32le};

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
    let info = match crate::inspect::inspect(path) {
        Ok(info) => info,
        Err(e @ Error::NotAnImage { .. }) => {
            // A version 0 swap header is a swap image all the same, only unusable.
            return match version0_swap(path)? {
                Some(report) => Ok(report),
                None => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    let img = Image::open(path)?;
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

/// The image file, read at offsets; reads past its end yield zeros (a short image is
/// reported once, by the size check, not at every read).
struct Image {
    file: VirtualDisk,
    path: PathBuf,
    len: u64,
}

impl Image {
    fn open(path: &Path) -> Result<Image, Error> {
        let file = VirtualDisk::open(path)?;
        let len = file.len();
        Ok(Image {
            file,
            path: path.to_owned(),
            len,
        })
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; len];
        self.file
            .read_at(&mut buf, offset)
            .map_err(|e| Error::Read {
                path: self.path.clone(),
                source: e,
            })?;
        Ok(buf)
    }
}

// ---------------------------------------------------------------------------------
// Swap

const SWAP_PAGE: u64 = crate::swap::PAGE_SIZE;

fn check_swap(img: &Image, p: &mut Problems) -> Result<(), Error> {
    let head = img.read(0, SWAP_PAGE as usize)?;
    if head.get(4086..) != Some(&b"SWAPSPACE2"[..]) {
        p.push("swap header: magic is not SWAPSPACE2".to_owned());
    }
    let version = get_u32le(&head, 1024).unwrap_or(0);
    if version != 1 {
        p.push(format!("swap header: version is {version}, not 1"));
    }
    let last_page = u64::from(get_u32le(&head, 1028).unwrap_or(0));
    let pages = last_page + 1;
    if pages < crate::swap::MIN_PAGES {
        p.push(format!(
            "swap header: {pages} pages; swapon needs at least {}",
            crate::swap::MIN_PAGES
        ));
    }
    let need = pages * SWAP_PAGE;
    if need > img.len {
        p.push(format!(
            "swap header: last_page {last_page} needs {need} bytes, but the file has {}",
            img.len
        ));
    }
    let bad = get_u32le(&head, 1032).unwrap_or(0);
    if bad != 0 {
        p.push(format!(
            "swap header: {bad} bad pages listed; expected none"
        ));
    }
    Ok(())
}

/// `Some` report when `path` holds a version 0 swap header (magic `SWAP-SPACE`).
fn version0_swap(path: &Path) -> Result<Option<CheckReport>, Error> {
    let img = Image::open(path)?;
    if img.len < SWAP_PAGE {
        return Ok(None);
    }
    let head = img.read(0, SWAP_PAGE as usize)?;
    if head.get(4086..) != Some(&b"SWAP-SPACE"[..]) {
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
// ext2/3/4: constants the writer does not need

const COMPAT_RESIZE_INODE: u32 = 0x0010;
const COMPAT_SPARSE_SUPER2: u32 = 0x0200;
const COMPAT_ORPHAN_FILE: u32 = 0x1000;
const INCOMPAT_RECOVER: u32 = 0x0004;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
const RO_COMPAT_QUOTA: u32 = 0x0100;
const RO_COMPAT_PROJECT: u32 = 0x2000;

/// INCOMPAT features whose structures this checker does not read, with their names.
const UNREAD_INCOMPAT: &[(u32, &str)] = &[
    (0x0001, "compression"),
    (0x0008, "journal_dev"),
    (0x0010, "meta_bg"),
    (0x0400, "ea_inode"),
    (0x1000, "dirdata"),
    (0x8000, "inline_data"),
];
const RO_COMPAT_BIGALLOC: u32 = 0x0200;

const BG_INODE_UNINIT: u16 = 0x0001;
const BG_BLOCK_UNINIT: u16 = 0x0002;

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const EXT4_HUGE_FILE_FL: u32 = 0x0004_0000;
const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;

const EXTENT_MAGIC: u16 = 0xf30a;
/// The kernel's EXT4_MAX_EXTENT_DEPTH.
const MAX_EXTENT_DEPTH: u16 = 5;
const XATTR_MAGIC: u32 = 0xea02_0000;
const JBD2_MAGIC: u32 = 0xc03b_3998;
const DIR_TAIL_TYPE: u8 = 0xde;

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

/// The directory entry `file_type` an inode of `mode` must be named with.
fn entry_type(mode: u16) -> Option<u8> {
    Some(match mode & S_IFMT {
        S_IFREG => 1,
        S_IFDIR => 2,
        S_IFCHR => 3,
        S_IFBLK => 4,
        S_IFIFO => 5,
        S_IFSOCK => 6,
        S_IFLNK => 7,
        _ => return None,
    })
}

/// A bit per item, for the whole filesystem.
struct Bits {
    words: Vec<u64>,
}

impl Bits {
    fn new(n: u64) -> Bits {
        Bits {
            words: vec![0; usize::try_from(n.div_ceil(64)).unwrap_or(0)],
        }
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

/// One group descriptor's fields.
#[derive(Clone, Default)]
struct Desc {
    block_bitmap: u64,
    inode_bitmap: u64,
    inode_table: u64,
    free_blocks: u32,
    free_inodes: u32,
    used_dirs: u32,
    itable_unused: u32,
    flags: u16,
    block_bitmap_csum: u32,
    inode_bitmap_csum: u32,
}

fn parse_desc(d: &[u8], wide: bool) -> Option<Desc> {
    let hi32 = |off| -> Option<u64> {
        Some(if wide {
            u64::from(get_u32le(d, off)?) << 32
        } else {
            0
        })
    };
    let hi16 = |off| -> Option<u32> {
        Some(if wide {
            u32::from(get_u16le(d, off)?) << 16
        } else {
            0
        })
    };
    Some(Desc {
        block_bitmap: u64::from(get_u32le(d, 0x00)?) | hi32(0x20)?,
        inode_bitmap: u64::from(get_u32le(d, 0x04)?) | hi32(0x24)?,
        inode_table: u64::from(get_u32le(d, 0x08)?) | hi32(0x28)?,
        free_blocks: u32::from(get_u16le(d, 0x0c)?) | hi16(0x2c)?,
        free_inodes: u32::from(get_u16le(d, 0x0e)?) | hi16(0x2e)?,
        used_dirs: u32::from(get_u16le(d, 0x10)?) | hi16(0x30)?,
        flags: get_u16le(d, 0x12)?,
        block_bitmap_csum: u32::from(get_u16le(d, 0x18)?) | hi16(0x38)?,
        inode_bitmap_csum: u32::from(get_u16le(d, 0x1a)?) | hi16(0x3a)?,
        itable_unused: u32::from(get_u16le(d, 0x1c)?) | hi16(0x32)?,
    })
}

/// CRC-16 (ANSI, reflected polynomial 0xA001) as the kernel's `crc16`, for uninit_bg.
fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    crc
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
    img: Image,
    p: &'a mut Problems,
    g: Geo,
    descs: Vec<Desc>,
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
}

fn check_ext(img: Image, p: &mut Problems, report: &mut CheckReport) -> Result<(), Error> {
    let head = img.read(0, 2048)?;
    let Some(sb) = Superblock::parse(&head) else {
        // inspect parsed it a moment ago; the file changed under us.
        p.push("superblock: no longer readable".to_owned());
        return Ok(());
    };
    let Some(g) = superblock(&img, &head, &sb, p, report) else {
        return Ok(());
    };
    let Some(descs) = descriptors(&img, &g, p)? else {
        return Ok(());
    };
    backups(&img, &g, &head, p)?;
    let n = g.blocks;
    let mut ext = Ext {
        img,
        p,
        descs,
        meta: Bits::new(n),
        rsv: Bits::new(n),
        refd: Bits::new(n),
        referenced: 0,
        claims_left: n.saturating_add(4096),
        gave_up: false,
        slots: vec![Slot::default(); g.inodes as usize + 1],
        table_ok: vec![false; g.groups as usize],
        dirs: HashMap::new(),
        xattrs: HashMap::new(),
        journal_ino: 0,
        resize_ino: 0,
        journal: None,
        special: Vec::new(),
        g,
    };
    ext.special_inodes(&head);
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
    img: &Image,
    head: &[u8],
    sb: &Superblock,
    p: &mut Problems,
    report: &mut CheckReport,
) -> Option<Geo> {
    let s = head.get(1024..2048)?;
    let bs = u64::from(sb.block_size);
    let (compat, incompat, ro) = (sb.compat, sb.incompat, sb.ro_compat);
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
    if fs_bytes > img.len {
        p.push(format!(
            "superblock: {} blocks of {bs} bytes need {fs_bytes} bytes, but the file has {}",
            sb.blocks_count, img.len
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
    let rev = get_u32le(s, 0x4c).unwrap_or(0);
    let first_ino = if rev == 0 {
        11
    } else {
        get_u32le(s, 0x54).unwrap_or(0)
    };
    if first_ino < 11 || first_ino > sb.inodes_count {
        p.push(format!(
            "superblock: first non-reserved inode is {first_ino}; expected 11..={}",
            sb.inodes_count
        ));
        fatal = true;
    }
    let metadata_csum = ro & RO_COMPAT_METADATA_CSUM != 0;
    if metadata_csum {
        if s.get(0x175) != Some(&1) {
            p.push("superblock: checksum type is not crc32c (1)".to_owned());
        }
        let stored = get_u32le(s, 0x3fc).unwrap_or(0);
        let computed = crc32c_raw(!0, s.get(..0x3fc)?);
        if stored != computed {
            p.push(format!(
                "superblock: checksum is {stored:#010x}, the contents give {computed:#010x}"
            ));
        }
        if ro & RO_COMPAT_GDT_CSUM != 0 {
            p.push("superblock: both metadata_csum and uninit_bg are set".to_owned());
        }
    } else if incompat & INCOMPAT_CSUM_SEED != 0 {
        p.push("superblock: metadata_csum_seed without metadata_csum".to_owned());
    }
    let state = sb.state;
    if state & 1 == 0 {
        p.push("superblock: the filesystem was not cleanly unmounted".to_owned());
    }
    if state & 2 != 0 {
        p.push("superblock: the kernel recorded errors on this filesystem".to_owned());
    }
    let last_orphan = get_u32le(s, 0xe8).unwrap_or(0);
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
    let free_blocks_ok = sb.free_blocks <= sb.blocks_count;
    if !free_blocks_ok {
        p.push(format!(
            "superblock: {} free blocks of {}",
            sb.free_blocks, sb.blocks_count
        ));
    }
    let seed = metadata_csum.then(|| {
        if incompat & INCOMPAT_CSUM_SEED != 0 {
            get_u32le(s, 0x270).unwrap_or(0)
        } else {
            crate::checksum::fs_seed(&sb.uuid)
        }
    });
    let gdt_blocks = (groups * desc_size as u64).div_ceil(bs);
    let rsv_gdt = u64::from(get_u16le(s, 0xce).unwrap_or(0));
    let g = Geo {
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
        seed,
        uuid: sb.uuid,
        backup_bgs: [
            get_u32le(s, 0x24c).unwrap_or(0),
            get_u32le(s, 0x250).unwrap_or(0),
        ],
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
    Some(g)
}

/// Reads and checks the primary descriptor table; `None` stops the check.
fn descriptors(img: &Image, g: &Geo, p: &mut Problems) -> Result<Option<Vec<Desc>>, Error> {
    let len = u64::from(g.groups) * g.desc_size as u64;
    let Ok(len) = usize::try_from(len) else {
        return Ok(None);
    };
    let raw = img.read((g.first_data + 1) * g.bs, len)?;
    let mut descs = Vec::with_capacity(g.groups as usize);
    for gi in 0..g.groups {
        let off = gi as usize * g.desc_size;
        let Some(d) = raw.get(off..off + g.desc_size) else {
            return Ok(None);
        };
        let Some(desc) = parse_desc(d, g.wide_desc()) else {
            return Ok(None);
        };
        let stored = get_u16le(d, 0x1e).unwrap_or(0);
        let mut zeroed = d.to_vec();
        zeroed[0x1e] = 0;
        zeroed[0x1f] = 0;
        let computed = if let Some(seed) = g.seed {
            let crc = crc32c_raw(crc32c_raw(seed, &gi.to_le_bytes()), &zeroed);
            Some((crc & 0xffff) as u16)
        } else if g.ro & RO_COMPAT_GDT_CSUM != 0 {
            let mut crc = crc16(!0, &g.uuid);
            crc = crc16(crc, &gi.to_le_bytes());
            crc = crc16(crc, &d[..0x1e]);
            if g.desc_size > 0x20 {
                crc = crc16(crc, &d[0x20..]);
            }
            Some(crc)
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
        descs.push(desc);
    }
    Ok(Some(descs))
}

/// Compares every backup superblock (and its descriptor table's positions) with the
/// primary: a tool that falls back to a backup must find the same filesystem.
fn backups(img: &Image, g: &Geo, head: &[u8], p: &mut Problems) -> Result<(), Error> {
    let Some(primary) = head.get(1024..2048) else {
        return Ok(());
    };
    let primary_gdt = img.read((g.first_data + 1) * g.bs, g.groups as usize * g.desc_size)?;
    // (offset, length, name) of the fields that define the geometry.
    const FIELDS: &[(usize, usize, &str)] = &[
        (0x00, 4, "inodes_count"),
        (0x04, 4, "blocks_count"),
        (0x14, 4, "first_data_block"),
        (0x18, 4, "log_block_size"),
        (0x20, 4, "blocks_per_group"),
        (0x28, 4, "inodes_per_group"),
        (0x38, 2, "magic"),
        (0x58, 2, "inode_size"),
        (0x60, 4, "feature_incompat"),
        (0x68, 16, "uuid"),
        (0xfe, 2, "desc_size"),
        (0x150, 4, "blocks_count_hi"),
    ];
    for gi in 1..g.groups {
        if !g.has_super(gi) {
            continue;
        }
        let at = g.start(gi) * g.bs;
        let b = img.read(at, 1024)?;
        let mut differ: Vec<&str> = Vec::new();
        for &(off, len, name) in FIELDS {
            let mut want = primary.get(off..off + len).map(<[u8]>::to_vec);
            // needs_recovery lives in the primary only, while the journal is dirty.
            if off == 0x60
                && let Some(w) = want.as_mut()
            {
                w[0] &= !(INCOMPAT_RECOVER as u8);
            }
            let mut have = b.get(off..off + len).map(<[u8]>::to_vec);
            if off == 0x60
                && let Some(h) = have.as_mut()
            {
                h[0] &= !(INCOMPAT_RECOVER as u8);
            }
            if want != have {
                differ.push(name);
            }
        }
        if !differ.is_empty() {
            p.push(format!(
                "group {gi}: backup superblock (block {}) differs from the primary in {}",
                g.start(gi),
                differ.join(", ")
            ));
            continue;
        }
        if let Ok(nr) = u16::try_from(gi)
            && get_u16le(&b, 0x5a) != Some(nr)
            && get_u32le(&b, 0x4c).unwrap_or(0) >= 1
        {
            p.push(format!(
                "group {gi}: backup superblock's block_group_nr is {}, not {gi}",
                get_u16le(&b, 0x5a).unwrap_or(0)
            ));
        }
        if g.seed.is_some() {
            let stored = get_u32le(&b, 0x3fc).unwrap_or(0);
            let computed = crc32c_raw(!0, &b[..0x3fc]);
            if stored != computed {
                p.push(format!(
                    "group {gi}: backup superblock checksum is {stored:#010x}, the contents \
                     give {computed:#010x}"
                ));
            }
        }
        let gdt = img.read((g.start(gi) + 1) * g.bs, primary_gdt.len())?;
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
    fn special_inodes(&mut self, head: &[u8]) {
        let s = head.get(1024..2048).unwrap_or(&[]);
        let sb_ino = |off| get_u32le(s, off).unwrap_or(0);
        if self.g.compat & COMPAT_HAS_JOURNAL != 0 {
            self.journal_ino = sb_ino(0xe0);
        }
        if self.g.compat & COMPAT_RESIZE_INODE != 0 {
            self.resize_ino = 7;
        }
        let mut special = vec![self.journal_ino];
        if self.g.ro & RO_COMPAT_QUOTA != 0 {
            special.extend([sb_ino(0x240), sb_ino(0x244)]);
        }
        if self.g.ro & RO_COMPAT_PROJECT != 0 {
            special.push(sb_ino(0x26c));
        }
        if self.g.compat & COMPAT_ORPHAN_FILE != 0 {
            special.push(sb_ino(0x280));
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
        let g = &self.g;
        let mut meta = Bits::new(g.blocks);
        let mut rsv = Bits::new(g.blocks);
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
        self.img.read(b * self.g.bs, self.g.bs as usize)
    }

    /// Reads the inode bitmaps, checks them against the counts, and marks the slots.
    fn inode_bitmaps(&mut self, report: &mut CheckReport) -> Result<(), Error> {
        let g = &self.g;
        let mut total_free = 0u64;
        let mut in_use = 0u64;
        for gi in 0..g.groups {
            let d = &self.descs[gi as usize];
            let uninit = g.uninit_ok() && d.flags & BG_INODE_UNINIT != 0;
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
            let bm = self.img.read(d.inode_bitmap * g.bs, g.bs as usize)?;
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
                let crc = crc32c_raw(seed, bm.get(..n).unwrap_or(&bm));
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
        let sb_free = crate::inspect::Superblock::parse(&self.img.read(0, 2048)?)
            .map_or(0, |s| u64::from(s.free_inodes));
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
            } else if d.flags & BG_INODE_UNINIT != 0 {
                0
            } else {
                ipg.saturating_sub(d.itable_unused as usize)
            };
            let table = d.inode_table * self.g.bs;
            let first = gi as usize * ipg + 1;
            let mut k = 0usize;
            while k < scan {
                let n = per_chunk.min(scan - k);
                let buf = self.img.read(table + (k * isz) as u64, n * isz)?;
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
        if ino < self.g.first_ino || blank(raw) {
            return;
        }
        let mode = get_u16le(raw, 0x00).unwrap_or(0);
        let links = get_u16le(raw, 0x1a).unwrap_or(0);
        let dtime = get_u32le(raw, 0x14).unwrap_or(0);
        if let Some(seed) = self.g.seed {
            self.inode_csum(ino, raw, seed, get_u32le(raw, 0x64).unwrap_or(0));
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
        Ok(Some(self.img.read(off, g.isz)?))
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
        if blank(raw) {
            if !reserved && marked {
                self.p.push(format!(
                    "inode {ino} is marked in use but its record is empty"
                ));
            }
            return Ok(());
        }
        let f16 = |off| get_u16le(raw, off).unwrap_or(0);
        let f32 = |off| get_u32le(raw, off).unwrap_or(0);
        let mode = f16(0x00);
        let links = f16(0x1a);
        let flags = f32(0x20);
        let generation = f32(0x64);
        let size = u64::from(f32(0x04)) | (u64::from(f32(0x6c)) << 32);
        let acl_hi = u64::from(f16(0x76));
        let file_acl = u64::from(f32(0x68))
            | if self.g.incompat & INCOMPAT_64BIT != 0 {
                acl_hi << 32
            } else {
                0
            };
        if acl_hi != 0 && self.g.incompat & INCOMPAT_64BIT == 0 {
            self.p.push(format!(
                "inode {ino}: high half of i_file_acl is {acl_hi} without the 64bit feature"
            ));
        }
        let iblocks = u64::from(f32(0x1c))
            | if self.g.huge_file() {
                u64::from(f16(0x74)) << 32
            } else {
                0
            };
        self.slots[slot_i].mode = mode;
        self.slots[slot_i].links = links;
        let kind = mode & S_IFMT;
        if let Some(seed) = self.g.seed {
            self.inode_csum(ino, raw, seed, generation);
        }
        if reserved && mode == 0 && ino != self.resize_ino {
            // An unused reserved inode (bad blocks list, undelete, ...): no mapping.
            let dtime = f32(0x14);
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
        if f32(0x14) != 0 && links != 0 {
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
            (0x0000_2000u32, self.g.compat & 0x0002 != 0, "imagic"),
            (0x0000_0800, self.g.incompat & 0x1_0000 != 0, "encrypt"),
            (0x4000_0000, self.g.incompat & 0x2_0000 != 0, "casefold"),
            (0x0010_0000, self.g.ro & 0x8000 != 0, "verity"),
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
        if f32(0x70) != 0 {
            self.p.push(format!(
                "inode {ino}: obsolete fragment address i_faddr is {}, not 0",
                f32(0x70)
            ));
        }
        let i_block = raw.get(0x28..0x64).unwrap_or(&[]);
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
                self.extent_root(ino, i_block, seed, &mut m)?;
            }
        } else {
            self.block_map(ino, i_block, &mut m)?;
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

    fn inode_csum(&mut self, ino: u32, raw: &[u8], seed: u32, generation: u32) {
        let extra = if raw.len() > 128 {
            usize::from(get_u16le(raw, 0x80).unwrap_or(0))
        } else {
            0
        };
        if raw.len() > 128 && 128 + extra > raw.len() {
            self.p.push(format!(
                "inode {ino}: extra_isize {extra} does not fit a {}-byte inode",
                raw.len()
            ));
            return;
        }
        let has_hi = raw.len() > 128 && 128 + extra >= 0x84;
        let mut z = raw.to_vec();
        z[0x7c] = 0;
        z[0x7d] = 0;
        if has_hi {
            z[0x82] = 0;
            z[0x83] = 0;
        }
        let crc = crc32c_raw(inode_seed(seed, ino, generation), &z);
        let lo = u32::from(get_u16le(raw, 0x7c).unwrap_or(0));
        let (want, have) = if has_hi {
            (
                crc,
                lo | (u32::from(get_u16le(raw, 0x82).unwrap_or(0)) << 16),
            )
        } else {
            (crc & 0xffff, lo)
        };
        if want != have {
            self.p.push(format!(
                "inode {ino}: checksum is {have:#x}, the contents give {want:#x}"
            ));
        }
    }

    /// Records a run of data blocks `physical..+len` at file block `logical`.
    fn data_run(
        &mut self,
        ino: u32,
        logical: u64,
        physical: u64,
        len: u64,
        init: bool,
        m: &mut Mapped,
    ) {
        m.data += len;
        if init {
            m.init_end = m.init_end.max(logical + len);
        }
        if logical == 0 && len > 0 {
            m.first_physical = Some(physical);
        }
        let Some(end) = physical.checked_add(len) else {
            self.p.push(format!(
                "inode {ino}: file block {logical} maps to impossible block {physical}"
            ));
            return;
        };
        if len > 0 && (!self.g.in_fs(physical) || end > self.g.blocks) {
            self.p.push(format!(
                "inode {ino}: file blocks {logical}..{} map to blocks {physical}..{end}, \
                 outside the filesystem ({}..{})",
                logical + len,
                self.g.first_data,
                self.g.blocks
            ));
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

    fn extent_root(
        &mut self,
        ino: u32,
        i_block: &[u8],
        seed: Option<u32>,
        m: &mut Mapped,
    ) -> Result<(), Error> {
        let depth = get_u16le(i_block, 6).unwrap_or(0);
        if depth > MAX_EXTENT_DEPTH {
            self.p.push(format!(
                "inode {ino}: extent tree depth {depth} exceeds {MAX_EXTENT_DEPTH}"
            ));
            return Ok(());
        }
        self.extent_node(ino, i_block, 4, depth, 0, 1 << 32, seed, m)
    }

    /// Checks one extent tree node (`node`, holding at most `cap` entries, at `depth`,
    /// covering file blocks `lo..hi`) and descends.
    #[allow(clippy::too_many_arguments)]
    fn extent_node(
        &mut self,
        ino: u32,
        node: &[u8],
        cap: u16,
        depth: u16,
        lo: u64,
        hi: u64,
        seed: Option<u32>,
        m: &mut Mapped,
    ) -> Result<(), Error> {
        if get_u16le(node, 0) != Some(EXTENT_MAGIC) {
            self.p.push(format!(
                "inode {ino}: extent header magic is wrong (depth {depth})"
            ));
            return Ok(());
        }
        let entries = get_u16le(node, 2).unwrap_or(0);
        let max = get_u16le(node, 4).unwrap_or(0);
        let d = get_u16le(node, 6).unwrap_or(0);
        if d != depth {
            self.p.push(format!(
                "inode {ino}: extent node at depth {depth} says depth {d}"
            ));
            return Ok(());
        }
        if max > cap || entries > max {
            self.p.push(format!(
                "inode {ino}: extent node has {entries} entries of {max} (room for {cap})"
            ));
            return Ok(());
        }
        let mut prev_end = lo;
        let n = usize::from(entries);
        for i in 0..n {
            let e = 12 + 12 * i;
            let Some(ent) = node.get(e..e + 12) else {
                return Ok(());
            };
            let first = u64::from(get_u32le(ent, 0).unwrap_or(0));
            if first < prev_end || first >= hi {
                self.p.push(format!(
                    "inode {ino}: extent entry for file block {first} is out of order or \
                     outside its parent's range ({lo}..{hi})"
                ));
                return Ok(());
            }
            if depth == 0 {
                let raw_len = get_u16le(ent, 4).unwrap_or(0);
                let (len, init) = if raw_len > 32768 {
                    (raw_len - 32768, false)
                } else {
                    (raw_len, true)
                };
                let physical = u64::from(get_u32le(ent, 8).unwrap_or(0))
                    | (u64::from(get_u16le(ent, 6).unwrap_or(0)) << 32);
                if len == 0 {
                    self.p.push(format!(
                        "inode {ino}: zero-length extent at file block {first}"
                    ));
                    continue;
                }
                let end = first + u64::from(len);
                if end > hi {
                    self.p.push(format!(
                        "inode {ino}: extent {first}..{end} runs past its parent's range ({lo}..{hi})"
                    ));
                }
                self.data_run(ino, first, physical, u64::from(len), init, m);
                prev_end = end;
            } else {
                let child = u64::from(get_u32le(ent, 4).unwrap_or(0))
                    | (u64::from(get_u16le(ent, 8).unwrap_or(0)) << 32);
                let next = if i + 1 < n {
                    node.get(e + 12..e + 16)
                        .and_then(|b| get_u32le(b, 0))
                        .map_or(hi, u64::from)
                } else {
                    hi
                };
                m.tree += 1;
                prev_end = first + 1;
                if !self.claim(ino, child, "extent tree") {
                    continue;
                }
                let block = self.read_block(child)?;
                let cap = ((self.g.bs - 12) / 12).min(u64::from(u16::MAX)) as u16;
                if let Some(seed) = seed {
                    let cmax = usize::from(get_u16le(&block, 4).unwrap_or(0));
                    let t = 12 + 12 * cmax;
                    match (block.get(..t), get_u32le(&block, t)) {
                        (Some(body), Some(stored)) => {
                            let crc = crc32c_raw(seed, body);
                            if crc != stored {
                                self.p.push(format!(
                                    "inode {ino}: extent block {child} checksum is {stored:#x}, \
                                     the contents give {crc:#x}"
                                ));
                            }
                        }
                        _ => self.p.push(format!(
                            "inode {ino}: extent block {child} has no room for its checksum"
                        )),
                    }
                }
                self.extent_node(ino, &block, cap, depth - 1, first, next, seed, m)?;
            }
        }
        Ok(())
    }

    /// Maps an ext2/ext3 block map: 12 direct pointers, then IND, DIND and TIND.
    fn block_map(&mut self, ino: u32, i_block: &[u8], m: &mut Mapped) -> Result<(), Error> {
        let per = self.g.bs / 4;
        for i in 0..12u64 {
            let ptr = u64::from(get_u32le(i_block, (4 * i) as usize).unwrap_or(0));
            if ptr != 0 {
                self.data_run(ino, i, ptr, 1, true, m);
            }
        }
        let mut base = 12u64;
        for (slot, level) in [(12usize, 1u32), (13, 2), (14, 3)] {
            let ptr = u64::from(get_u32le(i_block, 4 * slot).unwrap_or(0));
            if ptr != 0 {
                self.indirect(ino, ptr, level, base, m)?;
            }
            base += per.pow(level);
        }
        Ok(())
    }

    fn indirect(
        &mut self,
        ino: u32,
        ptr: u64,
        level: u32,
        base: u64,
        m: &mut Mapped,
    ) -> Result<(), Error> {
        m.tree += 1;
        if !self.claim(ino, ptr, "indirect") {
            return Ok(());
        }
        let block = self.read_block(ptr)?;
        let per = self.g.bs / 4;
        let span = per.pow(level - 1);
        for j in 0..per {
            let p = u64::from(get_u32le(&block, (4 * j) as usize).unwrap_or(0));
            if p == 0 {
                continue;
            }
            if self.gave_up {
                return Ok(());
            }
            let logical = base + j * span;
            if level == 1 {
                self.data_run(ino, logical, p, 1, true, m);
            } else {
                self.indirect(ino, p, level - 1, logical, m)?;
            }
        }
        Ok(())
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
            let tail = has_tail(&block);
            if let Some(seed) = seed {
                self.dir_csum(dir, shown, logical, &block, tail, info.indexed, seed);
            }
            let end = if tail { bs - 12 } else { bs };
            let mut off = 0usize;
            while off < end {
                let (Some(ino), Some(rec)) = (get_u32le(&block, off), get_u16le(&block, off + 4))
                else {
                    self.p.push(format!(
                        "directory inode {dir} ({shown}): block {logical}: entry at offset {off} \
                         is cut off"
                    ));
                    break;
                };
                let rec = rec_len(rec, bs);
                let name_len = usize::from(block.get(off + 6).copied().unwrap_or(0));
                let ftype = block.get(off + 7).copied().unwrap_or(0);
                if rec < 8
                    || !rec.is_multiple_of(4)
                    || off + rec > end
                    || (ino != 0 && 8 + name_len > rec)
                {
                    self.p.push(format!(
                        "directory inode {dir} ({shown}): block {logical}: bad rec_len {rec} \
                         at offset {off}"
                    ));
                    break;
                }
                let here = off;
                off += rec;
                if ino == 0 {
                    continue;
                }
                let name = &block[here + 8..here + 8 + name_len];
                let index = count;
                count += 1;
                self.dir_entry(
                    dir, parent, shown, path, logical, index, ino, name, ftype, filetype, queue,
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
        let bs = block.len();
        if tail {
            let stored = get_u32le(block, bs - 4).unwrap_or(0);
            let crc = crc32c_raw(seed, &block[..bs - 12]);
            if crc != stored {
                self.p.push(format!(
                    "directory inode {dir} ({shown}): block {logical} checksum is {stored:#x}, \
                     the contents give {crc:#x}"
                ));
            }
            return;
        }
        // htree index blocks carry a dx_tail after their entries instead.
        let first_rec = get_u16le(block, 4).map(|r| rec_len(r, bs));
        let count_offset = if indexed && first_rec == Some(bs) {
            Some(8)
        } else if indexed && logical == 0 && first_rec == Some(12) {
            Some(0x18 + usize::from(block.get(0x1d).copied().unwrap_or(8)))
        } else {
            None
        };
        let verified = count_offset.and_then(|co| {
            let limit = usize::from(get_u16le(block, co)?);
            let count = usize::from(get_u16le(block, co + 2)?);
            let t = co + 8 * limit;
            let body = block.get(..co + 8 * count)?;
            let reserved = block.get(t..t + 4)?;
            let stored = get_u32le(block, t + 4)?;
            // As the kernel's ext4_dx_csum: the entries, dt_reserved, then a zero checksum.
            let crc = crc32c_raw(crc32c_raw(crc32c_raw(seed, body), reserved), &[0; 4]);
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
            let uninit = g.uninit_ok() && d.flags & BG_INODE_UNINIT != 0;
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
                            if let Ok(blk) = self.img.read(b * g.bs, 1024)
                                && get_u32be(&blk, 0) != Some(JBD2_MAGIC)
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
            if get_u32le(&block, 0) != Some(XATTR_MAGIC) {
                self.p.push(format!(
                    "attribute block {b} (inode {first}): magic is wrong"
                ));
                continue;
            }
            let count = get_u32le(&block, 4).unwrap_or(0);
            if count != refs {
                self.p.push(format!(
                    "attribute block {b}: h_refcount is {count}, but {refs} inodes point at it"
                ));
            }
            let nblocks = get_u32le(&block, 8).unwrap_or(0);
            if nblocks != 1 {
                self.p
                    .push(format!("attribute block {b}: h_blocks is {nblocks}, not 1"));
            }
            if let Some(seed) = self.g.seed {
                let stored = get_u32le(&block, 0x10).unwrap_or(0);
                let mut z = block.clone();
                z[0x10..0x14].fill(0);
                let crc = crc32c_raw(crc32c_raw(seed, &b.to_le_bytes()), &z);
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
            let uninit = g.uninit_ok() && d.flags & BG_BLOCK_UNINIT != 0;
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
                self.img.read(d.block_bitmap * g.bs, g.bs as usize)?
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
                    let crc = crc32c_raw(seed, bm.get(..n).unwrap_or(&bm));
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
        let sb_free = crate::inspect::Superblock::parse(&self.img.read(0, 2048)?)
            .map_or(0, |s| s.free_blocks);
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

/// Whether an inode record is blank: its first 128 bytes zero. libext2fs accepts such a
/// record whatever its checksum and extra fields hold (it was never written), and so
/// does this check.
fn blank(raw: &[u8]) -> bool {
    raw.iter().take(128).all(|&b| b == 0)
}

/// Whether a directory block ends in the metadata_csum tail entry (inode 0, rec_len 12,
/// name_len 0, type 0xDE).
fn has_tail(block: &[u8]) -> bool {
    let t = block.len().saturating_sub(12);
    get_u32le(block, t) == Some(0)
        && get_u16le(block, t + 4) == Some(12)
        && block.get(t + 6) == Some(&0)
        && block.get(t + 7) == Some(&DIR_TAIL_TYPE)
}

/// `rec_len` as stored: 64 KiB blocks keep the high bits in the low two.
fn rec_len(raw: u16, bs: usize) -> usize {
    if bs < 65536 {
        usize::from(raw)
    } else if raw == 65535 || raw == 0 {
        65536
    } else {
        usize::from(raw & 65532) | (usize::from(raw & 3) << 16)
    }
}
