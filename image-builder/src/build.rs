//! `build`: from sources to a finished image, in one pass over the data.
//!
//! 1. The sources are read into a [`Tree`] (metadata only; file bytes stay on the host).
//! 2. Inode numbers are assigned ([`Numbering`]) and the content measured ([`sizing`]);
//!    the size is checked, or found (`auto`), before anything is written.
//! 3. The geometry is fixed ([`Geometry::plan`]) and each file's bytes are streamed to
//!    their final blocks in inode order: zero blocks become holes, runs are written
//!    with one call each, and the mapping (extents or block map) follows the data.
//! 4. Directories, symlinks and attribute blocks are written as their inodes come up;
//!    then the inode tables, bitmaps, descriptors and superblocks, from memory.
//! 5. The file is synced and renamed over the target.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::blockmap::BlockMapBuilder;
use crate::checksum::{crc32c_raw, fs_seed, inode_seed};
use crate::dir_entry::{self, DirEntry};
use crate::dir_htree;
use crate::error::Error;
use crate::extent::{self, Extent, MAX_EXTENT_LEN};
use crate::features::FsLevel;
use crate::group_desc::{self, GroupDesc};
use crate::inode::{self, InodeRec};
use crate::journal;
use crate::layout::{BlockMap, Geometry, Shape};
use crate::numbering::{FIRST_INO, Numbering};
use crate::output::{self, Output};
use crate::size::{Headroom, SizeSpec};
use crate::sizing::{self, Need};
use crate::source;
use crate::source::tar::{DataSink, TarInput};
use crate::superblock::{self, SuperFields};
use crate::tree::{FileData, Kind, Meta, NodeId, ROOT, Timestamp, Tree, Xattr};
use crate::xattr;

/// One thing that fills the image.
#[derive(Clone, Debug)]
pub enum Source {
    /// A host folder: its contents become the image's root.
    Dir(PathBuf),
    /// A tar archive (plain, gzip, xz, zstd or bzip2), streamed into the image.
    Tar(TarInput),
    /// An existing ext2/ext3/ext4 image, read (never written) and copied entry by entry.
    Image(PathBuf),
    /// One host file placed at `dest` inside the image (`--file SRC:DEST`).
    File {
        /// The host file.
        src: PathBuf,
        /// The absolute path inside the image.
        dest: String,
    },
}

/// Everything `build` needs to know.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Feature level.
    pub level: FsLevel,
    /// Image size.
    pub size: SizeSpec,
    /// Block size: 1024, 2048 or 4096.
    pub block_size: u32,
    /// Volume label, at most 16 bytes.
    pub label: Option<String>,
    /// Filesystem UUID; derived from the inputs when `None`.
    pub uuid: Option<[u8; 16]>,
    /// Owner and group given to every entry.
    pub owner: Option<(u32, u32)>,
    /// Sources, applied in order.
    pub sources: Vec<Source>,
    /// SOURCE_DATE_EPOCH: later times are clamped to it, and it dates the filesystem.
    pub source_date_epoch: Option<i64>,
    /// A seed for the UUID and directory hash seed (`--seed`): with one, they depend on
    /// the seed, label and file name only, so a rebuilt image keeps its UUID; without,
    /// they are derived from everything that defines the image.
    pub seed: Option<String>,
    /// Replace an existing output.
    pub force: bool,
}

impl Source {
    /// What a `--from` argument names: `-` is a tar stream on standard input, a folder
    /// is a folder, a file with an ext2/3/4 superblock is an image, any other file a tar
    /// archive.
    pub fn detect(path: &Path) -> Source {
        if path.as_os_str() == "-" {
            return Source::Tar(TarInput::Stdin);
        }
        if path.is_dir() {
            return Source::Dir(path.to_owned());
        }
        let mut head = [0u8; 2];
        let is_image = File::open(path)
            .is_ok_and(|f| output::read_at(&f, &mut head, 1024 + 0x38).is_ok_and(|n| n == 2))
            && u16::from_le_bytes(head) == crate::superblock::EXT4_MAGIC;
        if is_image {
            Source::Image(path.to_owned())
        } else {
            Source::Tar(TarInput::File(path.to_owned()))
        }
    }
}

impl BuildOptions {
    /// Options with defaults: 4096-byte blocks, no label, derived UUID, no sources.
    pub fn new(level: FsLevel, size: SizeSpec) -> BuildOptions {
        BuildOptions {
            level,
            size,
            block_size: 4096,
            label: None,
            uuid: None,
            owner: None,
            sources: Vec::new(),
            source_date_epoch: None,
            seed: None,
            force: false,
        }
    }
}

/// What `build` reports while it works.
#[derive(Debug)]
pub enum Event {
    /// A step begins.
    Phase(&'static str),
    /// File data copied so far, in bytes.
    Progress {
        /// Bytes done.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// Something was skipped or changed; the build goes on.
    Warning(String),
}

/// What was built.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BuildReport {
    /// The image file.
    pub path: PathBuf,
    /// Feature level.
    pub level: FsLevel,
    /// Image size in bytes.
    pub size_bytes: u64,
    /// Block size.
    pub block_size: u32,
    /// Blocks in the filesystem.
    pub blocks: u64,
    /// Blocks free.
    pub free_blocks: u64,
    /// Inodes in the filesystem.
    pub inodes: u64,
    /// Inodes free.
    pub free_inodes: u64,
    /// Filesystem UUID.
    pub uuid: String,
    /// Volume label.
    pub label: String,
    /// Bytes of file data copied.
    pub data_bytes: u64,
}

/// Builds the image `out` from `opts`. `events` hears progress; `interrupt`, when set,
/// stops the build and removes what it wrote.
pub fn build(
    out: &Path,
    opts: &BuildOptions,
    events: &mut dyn FnMut(Event),
    interrupt: &AtomicBool,
) -> Result<BuildReport, Error> {
    let label = opts.label.clone().unwrap_or_default();
    if label.len() > 16 {
        return Err(Error::BadArgument(format!(
            "label '{label}' is {} bytes; at most 16 fit",
            label.len()
        )));
    }
    if ![1024, 2048, 4096].contains(&opts.block_size) {
        return Err(Error::BadBlockSize(opts.block_size));
    }
    output::check_target(out, opts.force)?;

    let bs = u64::from(opts.block_size);
    let streaming = opts
        .sources
        .iter()
        .any(|s| matches!(s, Source::Tar(_) | Source::Image(_)));
    events(Event::Phase("reading sources"));
    let mut tree = Tree::new(source::default_root(Timestamp {
        secs: opts.source_date_epoch.unwrap_or(0),
        nsec: 0,
    }));

    // Without a stream, the whole tree is known before anything is written: the size is
    // checked (or found) exactly first. With a stream, file bytes are written as they
    // arrive, into a filesystem of the given size or one that grows to fit.
    let growing = matches!(opts.size, SizeSpec::Auto(_));
    let (mut w, fixed) = if !streaming && !growing {
        // The whole tree is known before anything is written: an explicit size is
        // checked first, and refused with the minimum before any data moves.
        read_sources(&mut tree, opts, None, events)?;
        prepare(&mut tree, opts, events, None);
        let numbering = Numbering::new(&tree);
        let need = sizing::need(&tree, &numbering, opts.level, opts.block_size);
        let blocks_count = fixed_size(opts, &need)?;
        let (geometry, map) =
            Geometry::plan(opts.level, opts.block_size, blocks_count, need.inodes)?;
        let output = Output::create(out, geometry.blocks_count * bs, opts.force)?;
        (Writer::new(map, output), Some(geometry))
    } else {
        // File bytes are written as they arrive (streams) or as the tree is walked, into
        // a filesystem of the given size or one that grows to fit (`auto`).
        let (map, fixed) = match opts.size {
            SizeSpec::Bytes(b) => {
                let (g, m) = Geometry::plan(opts.level, opts.block_size, b / bs, 0)?;
                (m, Some(g))
            }
            SizeSpec::Auto(headroom) => {
                // Folders are scanned first, so their inode count can shape the groups;
                // a stream's cannot be known and gets the default ratio.
                let (mut inodes, mut blocks) = (0, 0);
                if !streaming {
                    read_sources(&mut tree, opts, None, events)?;
                    let numbering = Numbering::new(&tree);
                    let need = sizing::need(&tree, &numbering, opts.level, opts.block_size);
                    let pct = if let Headroom::Percent(p) = headroom {
                        u64::from(p)
                    } else {
                        0
                    };
                    inodes = need.inodes + need.inodes * pct / 100;
                    blocks = need.blocks;
                }
                let shape = Shape::growable(opts.level, opts.block_size, inodes, blocks)?;
                (BlockMap::growing(shape), None)
            }
        };
        let output = Output::create(
            out,
            fixed.as_ref().map_or(0, |g| g.blocks_count * bs),
            opts.force,
        )?;
        let mut w = Writer::new(map, output);
        w.count_overflow = fixed.is_some();
        if streaming {
            read_sources(&mut tree, opts, Some(&mut w), events)?;
        }
        prepare(&mut tree, opts, events, Some(&mut w));
        (w, fixed)
    };
    // Host files go in depth-first name order: the order `tar --sort=name` streams the
    // same tree in, so a folder and its tarball make the same image.
    w.copy_host_files(&mut tree, events, interrupt)?;
    if interrupt.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    let fs_time = filesystem_time(&tree, opts.source_date_epoch);
    check_symlinks(&tree, opts.block_size)?;
    let numbering = Numbering::new(&tree);
    let need = sizing::need(&tree, &numbering, opts.level, opts.block_size);
    if w.overflow > 0 {
        // A stream outgrew the size given: say how much it needs (counted, not written).
        let min = sizing::minimum_blocks(
            opts.level,
            opts.block_size,
            need.blocks + w.overflow,
            need.inodes,
        )?;
        return Err(Error::TooSmall {
            size: fixed.as_ref().map_or(0, |g| g.blocks_count * bs),
            minimum: min * bs,
            what: describe(&need),
        });
    }
    let uuid = opts
        .uuid
        .unwrap_or_else(|| derive_id(b"uuid", &tree, &numbering, opts, &label, fs_time, out));
    let hash_seed = derive_id(b"hash-seed", &tree, &numbering, opts, &label, fs_time, out);
    w.csum = opts.level.metadata_csum().then(|| fs_seed(&uuid));
    w.hash_seed = hash_seed;

    events(Event::Phase("writing"));
    let mut journal_backup = None;
    if let (Some(g), true) = (&fixed, opts.level.has_journal()) {
        journal_backup = Some(w.journal(journal_blocks(g.blocks_count, bs)?, &uuid, fs_time)?);
    }
    for (i, slot) in numbering.order.iter().enumerate() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let ino = FIRST_INO + i as u32;
        match slot {
            Some(id) => w.entry(&tree, &numbering, *id, ino, events, interrupt)?,
            None => w.lost_found(fs_time)?,
        }
    }
    w.entry(&tree, &numbering, ROOT, 2, events, interrupt)?;
    w.flush_xattrs()?;

    let geometry = match fixed {
        Some(g) => g,
        None => {
            // A growing filesystem ends here: journal last, then the size that holds it all.
            let SizeSpec::Auto(headroom) = opts.size else {
                unreachable!("a fixed size has a geometry")
            };
            let (extra_blocks, inodes) = match headroom {
                Headroom::None => (0, need.inodes),
                Headroom::Percent(p) => (
                    w.map.high_water() * u64::from(p) / 100,
                    need.inodes + need.inodes * u64::from(p) / 100,
                ),
                Headroom::Bytes(b) => (b.div_ceil(bs), need.inodes),
            };
            if opts.level.has_journal() {
                let estimate = (w.map.high_water() + extra_blocks).max(2048);
                journal_backup = Some(w.journal(journal_blocks(estimate, bs)?, &uuid, fs_time)?);
            }
            Geometry::finish(&mut w.map, inodes, extra_blocks)?
        }
    };
    if u64::from(numbering.last_ino()) > geometry.inodes_count() {
        let min = sizing::minimum_blocks(opts.level, opts.block_size, need.blocks, need.inodes)?;
        return Err(Error::TooSmall {
            size: geometry.blocks_count * bs,
            minimum: min * bs,
            what: describe(&need),
        });
    }

    events(Event::Phase("writing metadata"));
    let (free_blocks, free_inodes) = w.metadata(
        &geometry,
        &SuperFields {
            free_blocks: 0,
            free_inodes: 0,
            uuid,
            label: label.as_bytes(),
            hash_seed,
            time: clamp_u32(fs_time),
            journal_backup,
        },
        numbering.last_ino(),
    )?;

    events(Event::Phase("syncing"));
    w.out.set_len(geometry.blocks_count * bs)?;
    w.out.commit(opts.force)?;
    Ok(BuildReport {
        path: out.to_owned(),
        level: opts.level,
        size_bytes: geometry.blocks_count * bs,
        block_size: opts.block_size,
        blocks: geometry.blocks_count,
        free_blocks,
        inodes: geometry.inodes_count(),
        free_inodes,
        uuid: uuid::Uuid::from_bytes(uuid).hyphenated().to_string(),
        label,
        data_bytes: w.total,
    })
}

/// The journal length for a filesystem of `blocks` blocks.
fn journal_blocks(blocks: u64, bs: u64) -> Result<u64, Error> {
    journal::default_blocks(blocks).ok_or(Error::TooSmall {
        size: blocks * bs,
        minimum: 2048 * bs,
        what: "a journal (ext3/ext4)".to_owned(),
    })
}

/// The block count of an explicit size, refused (with the minimum) when the content
/// cannot fit.
fn fixed_size(opts: &BuildOptions, need: &Need) -> Result<u64, Error> {
    let bs = u64::from(opts.block_size);
    let b = match opts.size {
        SizeSpec::Bytes(b) => b,
        SizeSpec::Auto(_) => unreachable!("an automatic size grows to fit"),
    };
    let bc = b / bs;
    match sizing::room(opts.level, opts.block_size, bc, need.inodes) {
        Some((_, _, free)) if free >= need.blocks => Ok(bc),
        _ => {
            let min =
                sizing::minimum_blocks(opts.level, opts.block_size, need.blocks, need.inodes)?;
            Err(Error::TooSmall {
                size: b,
                minimum: min * bs,
                what: describe(need),
            })
        }
    }
}

/// What every tree goes through after its sources: lost+found made a directory,
/// owners mapped, times clamped.
fn prepare(
    tree: &mut Tree,
    opts: &BuildOptions,
    events: &mut dyn FnMut(Event),
    w: Option<&mut Writer>,
) {
    // lost+found must be a directory (e2fsck and the kernel put orphans there): a
    // source's non-directory of that name at the top gives way to it.
    if tree
        .child(ROOT, b"lost+found")
        .is_some_and(|id| !matches!(tree.nodes[id].kind, Kind::Dir(_)))
    {
        tree.unlink(ROOT, b"lost+found");
        events(Event::Warning(
            "/lost+found: replaced by a directory (the filesystem's own lost+found)".to_owned(),
        ));
    }
    let released = tree.take_released();
    if let Some(w) = w {
        for e in &released {
            w.release(e);
        }
    }
    if let Some((uid, gid)) = opts.owner {
        tree.map_owner(uid, gid);
    }
    if let Some(limit) = opts.source_date_epoch {
        tree.clamp_times(limit);
    }
}

/// Bytes read from a source file per call.
const COPY_CHUNK: usize = 1 << 20;

fn read_sources(
    tree: &mut Tree,
    opts: &BuildOptions,
    mut sink: Option<&mut Writer>,
    events: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    let mut warn = |m: String| events(Event::Warning(m));
    for s in &opts.sources {
        match s {
            Source::Dir(p) => source::dir::add_dir(tree, p, &mut warn)?,
            Source::File { src, dest } => source::add_file(tree, src, dest)?,
            Source::Tar(input) => {
                let sink = sink.as_deref_mut().expect("a stream is read with a writer");
                source::tar::add_tar(tree, input, sink, &mut warn)?;
            }
            Source::Image(path) => {
                let sink = sink.as_deref_mut().expect("an image is read with a writer");
                source::image::add_image(tree, path, sink, &mut warn)?;
            }
        }
    }
    Ok(())
}

/// The time that dates the filesystem itself: SOURCE_DATE_EPOCH, or else the newest
/// time in the tree (so that the same tree gives the same image), never later than now.
fn filesystem_time(tree: &Tree, sde: Option<i64>) -> i64 {
    if let Some(t) = sde {
        return t;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    tree.newest_mtime().map_or(0, |t| t.secs).clamp(0, now)
}

fn clamp_u32(t: i64) -> u32 {
    u32::try_from(t.clamp(0, i64::from(u32::MAX))).unwrap_or(0)
}

fn describe(need: &Need) -> String {
    format!(
        "the content ({} bytes of file data, {} inodes)",
        need.data_bytes, need.inodes
    )
}

/// Refuses symlink targets that do not fit one block (e2fsck and the kernel allow no
/// more), naming the entry, before anything is written.
fn check_symlinks(tree: &Tree, block_size: u32) -> Result<(), Error> {
    let max = block_size as usize - 1;
    let mut stack = vec![(ROOT, String::new())];
    while let Some((id, path)) = stack.pop() {
        let Kind::Dir(entries) = &tree.nodes[id].kind else {
            continue;
        };
        for (name, &child) in entries {
            let p = format!("{path}/{}", String::from_utf8_lossy(name));
            match &tree.nodes[child].kind {
                Kind::Symlink(t) if t.len() > max || t.is_empty() => {
                    return Err(Error::SymlinkTooLong {
                        path: p,
                        len: t.len(),
                        max,
                    });
                }
                Kind::Dir(_) => stack.push((child, p)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// A 16-byte identifier derived from everything that defines the image, so that the
/// same inputs give the same UUID and hash seed on any host (RFC 9562 version 8).
fn derive_id(
    purpose: &[u8],
    tree: &Tree,
    numbering: &Numbering,
    opts: &BuildOptions,
    label: &str,
    time: i64,
    out: &Path,
) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"colinux-setup image id v1\0");
    h.update(purpose);
    if let Some(seed) = &opts.seed {
        h.update(b"seed\0");
        h.update(seed.as_bytes());
        h.update(b"\0");
        h.update(label.as_bytes());
        h.update(b"\0");
        h.update(
            out.file_name()
                .map(|n| n.as_encoded_bytes().to_vec())
                .unwrap_or_default(),
        );
        return finish_id(h);
    }
    h.update(opts.level.name().as_bytes());
    h.update(opts.block_size.to_le_bytes());
    h.update(format!("{:?}", opts.size).as_bytes());
    h.update(label.as_bytes());
    h.update(time.to_le_bytes());
    h.update(
        out.file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .unwrap_or_default(),
    );
    for (id, node) in tree.nodes.iter().enumerate() {
        let ino = numbering.ino_of[id];
        if ino == 0 {
            continue;
        }
        h.update(ino.to_le_bytes());
        h.update(node.meta.perm.to_le_bytes());
        h.update(node.meta.uid.to_le_bytes());
        h.update(node.meta.gid.to_le_bytes());
        h.update(node.meta.mtime.secs.to_le_bytes());
        match &node.kind {
            Kind::Dir(e) => {
                for (name, child) in e {
                    h.update(name);
                    h.update(numbering.ino_of[*child].to_le_bytes());
                }
            }
            Kind::File { size, .. } => h.update(size.to_le_bytes()),
            Kind::Symlink(t) => h.update(t),
            _ => {}
        }
    }
    finish_id(h)
}

/// The first 16 bytes of the digest, marked as an RFC 9562 version 8 UUID.
fn finish_id(h: Sha256) -> [u8; 16] {
    let d = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    id[6] = (id[6] & 0x0f) | 0x80;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// State while writing.
struct Writer {
    shape: Shape,
    map: BlockMap,
    out: Output,
    csum: Option<u32>,
    /// When a stream outgrows a fixed size: keep reading and count the blocks it would
    /// need, so the error can name the minimum.
    count_overflow: bool,
    overflow: u64,
    /// `s_hash_seed`, for directory indexes.
    hash_seed: [u8; 16],
    /// Encoded inodes by number.
    inodes: HashMap<u32, InodeRec>,
    /// Attribute block contents, their block number and reference count.
    xattr_blocks: HashMap<Vec<u8>, (u64, u32)>,
    done: u64,
    total: u64,
    buf: Vec<u8>,
}

impl Writer {
    fn new(map: BlockMap, out: Output) -> Writer {
        Writer {
            shape: map.shape(),
            map,
            out,
            csum: None,
            count_overflow: false,
            overflow: 0,
            hash_seed: [0; 16],
            inodes: HashMap::new(),
            xattr_blocks: HashMap::new(),
            done: 0,
            total: 0,
            buf: vec![0u8; COPY_CHUNK],
        }
    }

    fn bs(&self) -> u64 {
        u64::from(self.shape.block_size)
    }
    fn full(&self) -> Error {
        Error::TooSmall {
            size: self.map.capacity() * self.bs(),
            minimum: 0,
            what: "the content".to_owned(),
        }
    }

    fn alloc_one(&mut self) -> Option<u64> {
        self.map.alloc_run(1).map(|(s, _)| s)
    }

    /// Allocates `n` blocks as extents (runs stop at metadata and at the longest extent).
    fn alloc_extents(&mut self, logical: u32, n: u64) -> Result<Vec<Extent>, Error> {
        let mut out = Vec::new();
        let mut left = n;
        let mut l = logical;
        while left > 0 {
            let (start, got) = self
                .map
                .alloc_run(left.min(MAX_EXTENT_LEN))
                .ok_or_else(|| self.full())?;
            push_extent(
                &mut out,
                Extent {
                    logical: l,
                    physical: start,
                    len: got as u16,
                },
            );
            l += got as u32;
            left -= got;
        }
        Ok(out)
    }

    /// Encodes a mapping for `extents` and writes its tree or indirect blocks.
    /// Returns (`i_block`, mapping blocks, flags).
    fn map_blocks(&mut self, extents: &[Extent], ino: u32) -> Result<([u8; 60], u64, u32), Error> {
        let bs = self.shape.block_size;
        let (i_block, blocks) = if self.shape.level.is_ext4() {
            let seed = self.csum.map(|s| inode_seed(s, ino, 0));
            let mut alloc = || self.map.alloc_run(1).map(|(s, _)| s);
            let t = extent::encode(extents, bs, seed, &mut alloc).ok_or_else(|| self.full())?;
            (t.i_block, t.blocks)
        } else {
            let mut m = BlockMapBuilder::new(bs);
            for e in extents {
                for i in 0..u64::from(e.len) {
                    let p = u32::try_from(e.physical + i).map_err(|_| self.full())?;
                    m.set(u64::from(e.logical) + i, p);
                }
            }
            let mut alloc = || self.map.alloc_run(1).map(|(s, _)| s);
            let enc = m.encode(bs, &mut alloc).ok_or_else(|| self.full())?;
            (enc.i_block, enc.blocks)
        };
        for (nr, b) in &blocks {
            self.out.write_at(nr * self.bs(), b)?;
        }
        let flags = if self.shape.level.is_ext4() {
            inode::EXT4_EXTENTS_FL
        } else {
            0
        };
        Ok((i_block, blocks.len() as u64, flags))
    }

    /// Writes `blocks` (whole blocks) to newly allocated space; returns the extents.
    fn write_blocks(&mut self, blocks: &[Vec<u8>]) -> Result<Vec<Extent>, Error> {
        let extents = self.alloc_extents(0, blocks.len() as u64)?;
        for e in &extents {
            for i in 0..usize::from(e.len) {
                let b = &blocks[e.logical as usize + i];
                self.out.write_at((e.physical + i as u64) * self.bs(), b)?;
            }
        }
        Ok(extents)
    }

    /// The journal: inode 8, contiguous, its superblock in its first block.
    fn journal(&mut self, n: u64, uuid: &[u8; 16], time: i64) -> Result<([u8; 60], u64), Error> {
        let extents = self.alloc_extents(0, n)?;
        let jsb = journal::superblock(self.shape.block_size, n as u32, uuid);
        self.out.write_at(extents[0].physical * self.bs(), &jsb)?;
        let (i_block, map_blocks, flags) = self.map_blocks(&extents, 8)?;
        let size = n * self.bs();
        self.inodes.insert(
            8,
            InodeRec {
                mode: inode::S_IFREG | 0o600,
                size,
                time: Timestamp {
                    secs: time,
                    nsec: 0,
                },
                links: 1,
                blocks: n + map_blocks,
                flags,
                i_block,
                ..Default::default()
            },
        );
        Ok((i_block, size))
    }

    /// lost+found made here: inode 11, 0700, root's, 16 KiB of empty directory blocks.
    fn lost_found(&mut self, time: i64) -> Result<(), Error> {
        let bs = self.shape.block_size as usize;
        let tail = self.csum.is_some();
        let mut blocks = dir_entry::linear_blocks(
            &[
                DirEntry {
                    ino: FIRST_INO,
                    file_type: dir_entry::FT_DIR,
                    name: b".",
                },
                DirEntry {
                    ino: 2,
                    file_type: dir_entry::FT_DIR,
                    name: b"..",
                },
            ],
            bs,
            tail,
        );
        while (blocks.len() as u64) < sizing::lost_found_blocks(self.shape.block_size) {
            blocks.push(dir_entry::empty_block(bs, tail));
        }
        let meta = Meta {
            perm: 0o700,
            uid: 0,
            gid: 0,
            mtime: Timestamp {
                secs: time,
                nsec: 0,
            },
            xattrs: Vec::new(),
        };
        self.dir_inode(FIRST_INO, &meta, blocks, 2, false)
    }

    /// Seals, writes and maps directory blocks, and records the directory's inode.
    fn dir_inode(
        &mut self,
        ino: u32,
        meta: &Meta,
        mut blocks: Vec<Vec<u8>>,
        links: u32,
        indexed: bool,
    ) -> Result<(), Error> {
        // Index blocks come sealed; linear blocks get their tails here.
        if let (Some(s), false) = (self.csum, indexed) {
            let seed = inode_seed(s, ino, 0);
            for b in &mut blocks {
                dir_entry::seal(b, seed);
            }
        }
        let extents = self.write_blocks(&blocks)?;
        let (i_block, map_blocks, mut flags) = self.map_blocks(&extents, ino)?;
        if indexed {
            flags |= inode::EXT4_INDEX_FL;
        }
        let ext4 = self.shape.level.is_ext4();
        let links = if links > 65_000 && ext4 {
            1 // dir_nlink: "many"
        } else if links > 32_000 && !ext4 {
            return Err(Error::BadEntry {
                path: format!("inode {ino}"),
                reason: format!(
                    "{} subdirectories; ext2/ext3 hold at most 31998 (use ext4)",
                    links - 2
                ),
            });
        } else {
            links as u16
        };
        let file_acl = self.xattr_block(&meta.xattrs, ino)?;
        self.inodes.insert(
            ino,
            InodeRec {
                mode: inode::S_IFDIR | meta.perm,
                uid: meta.uid,
                gid: meta.gid,
                size: blocks.len() as u64 * self.bs(),
                time: meta.mtime,
                links: links as u16,
                blocks: blocks.len() as u64 + map_blocks + u64::from(file_acl != 0),
                flags,
                i_block,
                file_acl,
            },
        );
        Ok(())
    }

    /// The attribute block for `attrs` (shared with every inode that has the same set).
    fn xattr_block(&mut self, attrs: &[Xattr], ino: u32) -> Result<u64, Error> {
        if attrs.is_empty() {
            return Ok(0);
        }
        let content = xattr::encode(attrs, self.shape.block_size as usize).map_err(|reason| {
            Error::BadEntry {
                path: format!("inode {ino}"),
                reason,
            }
        })?;
        if let Some((nr, refs)) = self.xattr_blocks.get_mut(&content) {
            *refs += 1;
            return Ok(*nr);
        }
        let nr = self.alloc_one().ok_or_else(|| self.full())?;
        self.xattr_blocks.insert(content, (nr, 1));
        Ok(nr)
    }

    /// Writes the attribute blocks, now that their reference counts are known.
    fn flush_xattrs(&mut self) -> Result<(), Error> {
        for (content, (nr, refs)) in std::mem::take(&mut self.xattr_blocks) {
            let mut b = content;
            xattr::seal(&mut b, refs, nr, self.csum);
            self.out.write_at(nr * self.bs(), &b)?;
        }
        Ok(())
    }

    /// Writes one entry's data (if any) and records its inode.
    fn entry(
        &mut self,
        tree: &Tree,
        numbering: &Numbering,
        id: NodeId,
        ino: u32,
        events: &mut dyn FnMut(Event),
        interrupt: &AtomicBool,
    ) -> Result<(), Error> {
        let node = &tree.nodes[id];
        let meta = &node.meta;
        let links = numbering.links[id];
        if !matches!(node.kind, Kind::Dir(_)) && links > 65_000 {
            return Err(Error::BadEntry {
                path: format!("inode {ino}"),
                reason: format!("{links} hard links; at most 65000"),
            });
        }
        let mut rec = InodeRec {
            uid: meta.uid,
            gid: meta.gid,
            time: meta.mtime,
            links: links as u16,
            ..Default::default()
        };
        match &node.kind {
            Kind::Dir(children) => {
                let parent = if id == ROOT { 2 } else { 0 };
                let mut entries = vec![
                    DirEntry {
                        ino,
                        file_type: dir_entry::FT_DIR,
                        name: b".",
                    },
                    DirEntry {
                        ino: parent,
                        file_type: dir_entry::FT_DIR,
                        name: b"..",
                    },
                ];
                for (name, &child) in children {
                    entries.push(DirEntry {
                        ino: numbering.ino_of[child],
                        file_type: file_type(&tree.nodes[child].kind),
                        name,
                    });
                }
                if id == ROOT && numbering.order.first().is_some_and(Option::is_none) {
                    entries.push(DirEntry {
                        ino: FIRST_INO,
                        file_type: dir_entry::FT_DIR,
                        name: b"lost+found",
                    });
                    // Names stay sorted: lost+found goes where byte order puts it.
                    entries[2..].sort_by(|a, b| a.name.cmp(b.name));
                }
                if id != ROOT {
                    entries[1].ino = numbering.ino_of[numbering.parent[id]];
                }
                let bs = self.shape.block_size as usize;
                let blocks = dir_entry::linear_blocks(&entries, bs, self.csum.is_some());
                // Over one block, ext3 and ext4 get a hashed index (ext2 drivers cannot
                // keep one up to date).
                if blocks.len() > 1 && self.shape.level.has_journal() {
                    let seed = self.csum.map(|s| inode_seed(s, ino, 0));
                    if let Some(indexed) = dir_htree::blocks(
                        &entries[2..],
                        ino,
                        entries[1].ino,
                        bs,
                        &self.hash_seed,
                        seed,
                    ) {
                        return self.dir_inode(ino, meta, indexed, links, true);
                    }
                }
                return self.dir_inode(ino, meta, blocks, links, false);
            }
            Kind::File { data, size } => {
                rec.mode = inode::S_IFREG | meta.perm;
                rec.size = *size;
                let extents = match data {
                    FileData::Empty => Vec::new(),
                    FileData::Written { extents } => extents.clone(),
                    FileData::Host { path, ranges } => {
                        self.copy_file(path, *size, ranges.as_deref(), events, interrupt)?
                    }
                };
                let data_blocks: u64 = extents.iter().map(|e| u64::from(e.len)).sum();
                let (i_block, map_blocks, flags) = self.map_blocks(&extents, ino)?;
                rec.i_block = i_block;
                rec.blocks = data_blocks + map_blocks;
                rec.flags = flags;
            }
            Kind::Symlink(target) => {
                rec.mode = inode::S_IFLNK | 0o777;
                rec.size = target.len() as u64;
                if target.len() < 60 {
                    // Fast symlink: the target lives in i_block, no blocks, no extents.
                    rec.i_block[..target.len()].copy_from_slice(target);
                } else {
                    let mut b = vec![0u8; self.shape.block_size as usize];
                    b[..target.len()].copy_from_slice(target);
                    let extents = self.write_blocks(&[b])?;
                    let (i_block, map_blocks, flags) = self.map_blocks(&extents, ino)?;
                    rec.i_block = i_block;
                    rec.blocks = 1 + map_blocks;
                    rec.flags = flags;
                }
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                let t = if matches!(node.kind, Kind::CharDev { .. }) {
                    inode::S_IFCHR
                } else {
                    inode::S_IFBLK
                };
                rec.mode = t | meta.perm;
                encode_dev(&mut rec.i_block, *major, *minor);
            }
            Kind::Fifo => rec.mode = inode::S_IFIFO | meta.perm,
        }
        rec.file_acl = self.xattr_block(&meta.xattrs, ino)?;
        if rec.file_acl != 0 {
            rec.blocks += 1;
        }
        self.inodes.insert(ino, rec);
        Ok(())
    }

    /// Copies every host file's bytes into the image, depth first in name order, and
    /// records where they went.
    fn copy_host_files(
        &mut self,
        tree: &mut Tree,
        events: &mut dyn FnMut(Event),
        interrupt: &AtomicBool,
    ) -> Result<(), Error> {
        let pending: u64 = tree
            .nodes
            .iter()
            .map(|n| match &n.kind {
                Kind::File {
                    data: FileData::Host { .. },
                    size,
                } => *size,
                _ => 0,
            })
            .sum();
        self.total = self.done + pending;
        let mut stack: Vec<(Vec<NodeId>, usize)> = vec![(children(tree, ROOT), 0)];
        while let Some((list, i)) = stack.last_mut() {
            let Some(&id) = list.get(*i) else {
                stack.pop();
                continue;
            };
            *i += 1;
            match &tree.nodes[id].kind {
                Kind::Dir(_) => stack.push((children(tree, id), 0)),
                Kind::File {
                    data: FileData::Host { path, ranges },
                    size,
                } => {
                    let (path, ranges, size) = (path.clone(), ranges.clone(), *size);
                    let extents =
                        self.copy_file(&path, size, ranges.as_deref(), events, interrupt)?;
                    tree.nodes[id].kind = Kind::File {
                        data: FileData::Written { extents },
                        size,
                    };
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Streams a host file into the image: holes in `ranges` and all-zero blocks stay
    /// holes; each run of data blocks is written with one call.
    fn copy_file(
        &mut self,
        path: &Path,
        size: u64,
        ranges: Option<&[(u64, u64)]>,
        events: &mut dyn FnMut(Event),
        interrupt: &AtomicBool,
    ) -> Result<Vec<Extent>, Error> {
        let bs = self.bs();
        let file = File::open(path).map_err(|e| Error::Read {
            path: path.to_owned(),
            source: e,
        })?;
        let whole = [(0, size)];
        let ranges = ranges.unwrap_or(&whole);
        let mut extents: Vec<Extent> = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        let mut last_end = 0u64;
        let done_before = self.done;
        for &(start, end) in ranges {
            let mut pos = (start / bs * bs).max(last_end);
            let end = end.min(size);
            while pos < end {
                if interrupt.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                let want = ((end - pos).div_ceil(bs) * bs).min(buf.len() as u64) as usize;
                let got =
                    output::read_at(&file, &mut buf[..want], pos).map_err(|e| Error::Read {
                        path: path.to_owned(),
                        source: e,
                    })?;
                let expect = (size - pos).min(want as u64) as usize;
                if got < expect {
                    return Err(Error::SourceChanged {
                        path: path.to_owned(),
                        expected: size,
                    });
                }
                buf[got..want].fill(0);
                self.write_chunk(&buf[..want], pos / bs, &mut extents)?;
                pos += want as u64;
            }
            last_end = pos;
        }
        self.buf = buf;
        self.done = done_before + size;
        events(Event::Progress {
            done: self.done,
            total: self.total,
        });
        Ok(extents)
    }

    /// Writes the non-zero blocks of `chunk` (file block `first` onward) to new blocks.
    fn write_chunk(
        &mut self,
        chunk: &[u8],
        first: u64,
        extents: &mut Vec<Extent>,
    ) -> Result<(), Error> {
        let bs = self.bs() as usize;
        let nblocks = chunk.len() / bs;
        let mut i = 0;
        while i < nblocks {
            if crate::util::is_zero(&chunk[i * bs..(i + 1) * bs]) {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < nblocks && !crate::util::is_zero(&chunk[j * bs..(j + 1) * bs]) {
                j += 1;
            }
            // Blocks i..j hold data: place them, in as few runs as the free space allows.
            let mut k = i;
            while k < j {
                let Some((start, got)) = self.map.alloc_run(((j - k) as u64).min(MAX_EXTENT_LEN))
                else {
                    if self.count_overflow {
                        self.overflow += (j - k) as u64;
                        break;
                    }
                    return Err(self.full());
                };
                let got = got as usize;
                self.out
                    .write_at(start * bs as u64, &chunk[k * bs..(k + got) * bs])?;
                let logical = u32::try_from(first + k as u64).map_err(|_| self.full())?;
                push_extent(
                    extents,
                    Extent {
                        logical,
                        physical: start,
                        len: got as u16,
                    },
                );
                k += got;
            }
            i = j;
        }
        Ok(())
    }

    /// Writes inode tables, bitmaps, descriptors and superblocks. Returns the free
    /// block and inode counts.
    fn metadata(
        &mut self,
        g: &Geometry,
        fields: &SuperFields<'_>,
        last_ino: u32,
    ) -> Result<(u64, u64), Error> {
        let bs = g.bs();
        let isz = usize::from(g.inode_size);
        let ipg = g.inodes_per_group;
        let mut descs = vec![0u8; g.gdt_blocks as usize * bs as usize];
        let mut total_free_blocks = 0u64;
        let mut total_free_inodes = 0u64;
        let mut used_dirs = vec![0u32; g.groups.len()];
        for (&ino, rec) in &self.inodes {
            if rec.mode & 0o170000 == inode::S_IFDIR {
                used_dirs[((ino - 1) / ipg) as usize] += 1;
            }
        }
        for (gi, grp) in g.groups.iter().enumerate() {
            let first_ino = gi as u32 * ipg + 1;
            // Inode table: only blocks holding used inodes are written; the rest are holes.
            let used_here = last_ino.saturating_sub(first_ino - 1).min(ipg);
            if used_here > 0 {
                let bytes = (used_here as usize * isz).div_ceil(bs as usize) * bs as usize;
                let mut table = vec![0u8; bytes];
                for k in 0..used_here {
                    let ino = first_ino + k;
                    if let Some(rec) = self.inodes.get(&ino) {
                        let slot = &mut table[k as usize * isz..(k as usize + 1) * isz];
                        rec.encode(slot, ino, g.block_size, self.csum);
                    }
                }
                self.out.write_at(grp.inode_table * bs, &table)?;
            }
            // Inode bitmap: inodes 1..=last_ino are in use; bits past ipg are padding.
            let mut ibm = vec![0u8; bs as usize];
            for k in 0..used_here {
                ibm[(k / 8) as usize] |= 1 << (k % 8);
            }
            for k in ipg..(bs as u32 * 8) {
                ibm[(k / 8) as usize] |= 1 << (k % 8);
            }
            let bits = grp.end - grp.start;
            let bbm = self.map.group_bitmap(grp.start, bits, bs as usize);
            let free_blocks = bits
                - (0..bits)
                    .filter(|i| bbm[(*i / 8) as usize] & (1 << (i % 8)) != 0)
                    .count() as u64;
            let free_inodes = ipg - used_here;
            total_free_blocks += free_blocks;
            total_free_inodes += u64::from(free_inodes);
            let (bcs, ics) = match self.csum {
                Some(s) => (
                    crc32c_raw(s, &bbm[..(g.blocks_per_group / 8) as usize]),
                    crc32c_raw(s, &ibm[..(ipg / 8) as usize]),
                ),
                None => (0, 0),
            };
            self.out.write_at(grp.block_bitmap * bs, &bbm)?;
            self.out.write_at(grp.inode_bitmap * bs, &ibm)?;
            let d = GroupDesc {
                block_bitmap: grp.block_bitmap,
                inode_bitmap: grp.inode_bitmap,
                inode_table: grp.inode_table,
                free_blocks: free_blocks as u32,
                free_inodes,
                used_dirs: used_dirs[gi],
                block_bitmap_csum: bcs,
                inode_bitmap_csum: ics,
            };
            let ds = usize::from(g.desc_size);
            group_desc::encode(&d, &mut descs[gi * ds..(gi + 1) * ds], gi as u32, self.csum);
        }
        let fields = SuperFields {
            free_blocks: total_free_blocks,
            free_inodes: total_free_inodes as u32,
            ..*fields
        };
        for (gi, grp) in g.groups.iter().enumerate().filter(|(_, grp)| grp.has_super) {
            let sb = superblock::encode(g, &fields, gi as u16);
            // The primary sits at byte 1024 whatever the block size; copies start their group.
            let sb_off = if gi == 0 { 1024 } else { grp.start * bs };
            self.out.write_at(sb_off, &sb)?;
            self.out.write_at((grp.start + 1) * bs, &descs)?;
        }
        Ok((total_free_blocks, total_free_inodes))
    }
}

impl DataSink for Writer {
    fn stream(
        &mut self,
        r: &mut dyn Read,
        size: u64,
        name: &dyn Fn() -> String,
    ) -> Result<Vec<Extent>, Error> {
        let bs = self.bs();
        let mut buf = std::mem::take(&mut self.buf);
        let mut extents = Vec::new();
        let mut pos = 0u64;
        let result = (|| {
            while pos < size {
                let want = (size - pos).min(buf.len() as u64) as usize;
                let mut got = 0;
                while got < want {
                    match r.read(&mut buf[got..want]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            return Err(Error::Read {
                                path: PathBuf::from(name()),
                                source: e,
                            });
                        }
                    }
                }
                if got < want {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{} of {size} bytes", pos + got as u64),
                    );
                    return Err(Error::Read {
                        path: PathBuf::from(name()),
                        source: e,
                    });
                }
                let padded = (want as u64).div_ceil(bs) as usize * bs as usize;
                buf[want..padded].fill(0);
                self.write_chunk(&buf[..padded], pos / bs, &mut extents)?;
                pos += want as u64;
                self.done += want as u64;
            }
            Ok(())
        })();
        self.buf = buf;
        result.map(|()| extents)
    }

    fn release(&mut self, extents: &[Extent]) {
        for e in extents {
            self.map.clear(e.physical, u64::from(e.len));
        }
    }
}

/// The children of directory `id`, in name order.
fn children(tree: &Tree, id: NodeId) -> Vec<NodeId> {
    match &tree.nodes[id].kind {
        Kind::Dir(e) => e.values().copied().collect(),
        _ => Vec::new(),
    }
}

/// Appends an extent, merging it into the last one when they continue each other.
fn push_extent(v: &mut Vec<Extent>, e: Extent) {
    if let Some(last) = v.last_mut() {
        let contiguous = u64::from(last.logical) + u64::from(last.len) == u64::from(e.logical)
            && last.physical + u64::from(last.len) == e.physical;
        if contiguous && u64::from(last.len) + u64::from(e.len) <= MAX_EXTENT_LEN {
            last.len += e.len;
            return;
        }
    }
    v.push(e);
}

/// Device numbers in `i_block`: the old 16-bit form in word 0 when both fit in a byte,
/// else the new 32-bit form in word 1 (as the kernel's `new_encode_dev`).
fn encode_dev(i_block: &mut [u8; 60], major: u32, minor: u32) {
    if major < 256 && minor < 256 {
        crate::util::put_u32le(i_block, 0, (major << 8) | minor);
    } else {
        let v = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12);
        crate::util::put_u32le(i_block, 4, v);
    }
}

fn file_type(k: &Kind) -> u8 {
    match k {
        Kind::Dir(_) => dir_entry::FT_DIR,
        Kind::File { .. } => dir_entry::FT_REG,
        Kind::Symlink(_) => dir_entry::FT_SYMLINK,
        Kind::CharDev { .. } => dir_entry::FT_CHR,
        Kind::BlockDev { .. } => dir_entry::FT_BLK,
        Kind::Fifo => dir_entry::FT_FIFO,
    }
}
