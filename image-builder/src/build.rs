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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::checksum::fs_seed;
use crate::disk::DiskFormat;
use crate::error::Error;
use crate::features::FsLevel;
use crate::journal;
use crate::layout::{BlockMap, Geometry, Shape};
use crate::numbering::{FIRST_INO, Numbering};
use crate::output::{self, Output};
use crate::size::{Headroom, SizeSpec};
use crate::sizing::{self, Need};
use crate::source;
use crate::source::tar::{DataSink, TarInput};
use crate::superblock::SuperFields;
use crate::tree::{Kind, ROOT, Timestamp, Tree};
use crate::writer::Writer;

/// One thing that fills the image.
#[derive(Clone, Debug)]
pub enum Source {
    /// A host folder: its contents become the image's root.
    Dir(PathBuf),
    /// A tar archive (plain, gzip, xz, zstd or bzip2), streamed into the image.
    Tar(TarInput),
    /// An existing ext2/ext3/ext4 image, read (never written) and copied entry by entry.
    Image(PathBuf),
    /// Only these absolute paths of an existing image (each a file, or a folder with
    /// everything below it), placed over what earlier sources put there; the folders on
    /// the way get the image's metadata where no earlier source made them. A path the
    /// image lacks is a warning. A root rebuild uses it to keep the user's `preserve`
    /// paths (e.g. /etc/ssh, /root) from the old root image.
    ImagePaths {
        /// The existing image (read, never written).
        image: PathBuf,
        /// Absolute paths inside it.
        paths: Vec<String>,
    },
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
    /// How the file holds the filesystem: raw, or inside a dynamic VHDX.
    pub format: DiskFormat,
}

impl Source {
    /// What a `--from` argument names: `-` is a tar stream on standard input, a folder
    /// is a folder, a regular file or block device with an ext2/3/4 superblock, or a
    /// VHDX (by its signature or a `.vhdx` name), is an image, anything else a tar
    /// archive. A pipe (`--from <(curl ...)`, a FIFO) is
    /// only ever a tar stream, and is not opened here: a stream is read once.
    pub fn detect(path: &Path) -> Source {
        if path.as_os_str() == "-" {
            return Source::Tar(TarInput::Stdin);
        }
        if path.is_dir() {
            return Source::Dir(path.to_owned());
        }
        let seekable = std::fs::metadata(path).is_ok_and(|md| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileTypeExt as _;
                md.is_file() || md.file_type().is_block_device()
            }
            #[cfg(not(unix))]
            {
                md.is_file()
            }
        });
        if crate::disk::is_vhdx(path, seekable) {
            // Damaged or not, a VHDX is meant as a disk: its reader says what is wrong.
            return Source::Image(path.to_owned());
        }
        let mut head = [0u8; 2];
        let is_image = seekable
            && File::open(path).is_ok_and(|f| {
                output::read_at(
                    &f,
                    &mut head,
                    crate::superblock::SUPERBLOCK_OFFSET + crate::superblock::S_MAGIC as u64,
                )
                .is_ok_and(|n| n == 2)
            })
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
            format: DiskFormat::Raw,
        }
    }

    /// Checks, without writing anything, what [`build`] checks before it writes: the
    /// label and block size, and for folder and file sources at an explicit size that
    /// the content fits (the sources are read as `build` reads them; the error is the
    /// one `build` would return, e.g. [`Error::TooSmall`] with the minimum). A stream's
    /// content is known only as it is written, and an automatic size always fits, so
    /// those are not read. For callers that must refuse before they change anything
    /// (an install that builds several images, and its dry run).
    pub fn check_fit(&self) -> Result<(), Error> {
        let label = self.label.as_deref().unwrap_or_default();
        if label.len() > 16 {
            return Err(Error::BadArgument(format!(
                "label '{label}' is {} bytes; at most 16 fit",
                label.len()
            )));
        }
        if ![1024, 2048, 4096].contains(&self.block_size) {
            return Err(Error::BadBlockSize(self.block_size));
        }
        let streaming = self.sources.iter().any(|s| {
            matches!(
                s,
                Source::Tar(_) | Source::Image(_) | Source::ImagePaths { .. }
            )
        });
        if streaming || matches!(self.size, SizeSpec::Auto(_)) {
            return Ok(());
        }
        let mut tree = Tree::new(source::default_root(Timestamp {
            secs: self.source_date_epoch.unwrap_or(0),
            nsec: 0,
        }));
        let events = &mut |_: Event| {};
        read_sources(&mut tree, self, None, events)?;
        prepare(&mut tree, self, events, None);
        let numbering = Numbering::new(&tree);
        let need = sizing::need(&tree, &numbering, self.level, self.block_size);
        let blocks_count = fixed_size(self, &need)?;
        let (geometry, _) = Geometry::plan(self.level, self.block_size, blocks_count, need.inodes)?;
        if self.level.has_journal() {
            journal_blocks(geometry.blocks_count, u64::from(self.block_size))?;
        }
        Ok(())
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
    /// How the file holds the filesystem.
    pub format: DiskFormat,
    /// Entries of an image source that could not be read and were left out (each was
    /// reported by an [`Event::Warning`] naming it); 0 for every other source.
    pub lost_entries: u64,
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
    let streaming = opts.sources.iter().any(|s| {
        matches!(
            s,
            Source::Tar(_) | Source::Image(_) | Source::ImagePaths { .. }
        )
    });
    events(Event::Phase("reading sources"));
    let mut tree = Tree::new(source::default_root(Timestamp {
        secs: opts.source_date_epoch.unwrap_or(0),
        nsec: 0,
    }));

    // Without a stream, the whole tree is known before anything is written: the size is
    // checked (or found) exactly first. With a stream, file bytes are written as they
    // arrive, into a filesystem of the given size or one that grows to fit.
    let growing = matches!(opts.size, SizeSpec::Auto(_));
    let mut lost_entries = 0;
    let (mut w, fixed) = if !streaming && !growing {
        // The whole tree is known before anything is written: an explicit size is
        // checked first, and refused with the minimum before any data moves.
        lost_entries = read_sources(&mut tree, opts, None, events)?;
        prepare(&mut tree, opts, events, None);
        let numbering = Numbering::new(&tree);
        let need = sizing::need(&tree, &numbering, opts.level, opts.block_size);
        let blocks_count = fixed_size(opts, &need)?;
        let (geometry, map) =
            Geometry::plan(opts.level, opts.block_size, blocks_count, need.inodes)?;
        let output = Output::create(out, geometry.blocks_count * bs, opts.force, opts.format)?;
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
                    lost_entries = read_sources(&mut tree, opts, None, events)?;
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
            opts.format,
        )?;
        let mut w = Writer::new(map, output);
        w.count_overflow = fixed.is_some();
        if streaming {
            lost_entries = read_sources(&mut tree, opts, Some(&mut w), events)?;
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
    w.out.identify(&[&uuid[..], &hash_seed[..]].concat());
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
        format: opts.format,
        lost_entries,
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

/// Reads every source into `tree`; returns how many entries of image sources could not
/// be read and were left out.
fn read_sources(
    tree: &mut Tree,
    opts: &BuildOptions,
    mut sink: Option<&mut Writer>,
    events: &mut dyn FnMut(Event),
) -> Result<u64, Error> {
    let mut warn = |m: String| events(Event::Warning(m));
    let mut lost = 0;
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
                lost += source::image::add_image(tree, path, None, sink, &mut warn)?;
            }
            Source::ImagePaths { image, paths } => {
                let sink = sink.as_deref_mut().expect("an image is read with a writer");
                lost += source::image::add_image(tree, image, Some(paths), sink, &mut warn)?;
            }
        }
    }
    Ok(lost)
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
        h.update(crate::disk::id_name(out, opts.format));
        return finish_id(h);
    }
    h.update(opts.level.name().as_bytes());
    h.update(opts.block_size.to_le_bytes());
    h.update(format!("{:?}", opts.size).as_bytes());
    h.update(label.as_bytes());
    h.update(time.to_le_bytes());
    h.update(crate::disk::id_name(out, opts.format));
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
