//! An existing ext2/ext3/ext4 image as a source: its tree, with all metadata, read
//! straight from the image file and fed to the writer in one pass, so an image can be
//! grown, shrunk (`--size auto`), converted to another level, or rescued. Or only
//! chosen paths of it, over what earlier sources built (a root rebuild's `preserve`
//! list): each path is looked up folder by folder and copied with everything below it.
//!
//! The structures are decoded by the same code `check` uses ([`crate::reader`], the
//! structure modules, [`crate::extent::walk`] and [`crate::blockmap::walk`]):
//! superblock, group descriptors, inodes, extent trees and block maps, linear directory
//! blocks (an htree directory's index blocks read as empty entries, as the format
//! intends, so every name is found by reading each block), fast and slow symlinks,
//! device numbers, and extended attributes from the attribute block and from inside
//! 256-byte inodes.
//!
//! It trusts nothing. The image must be a regular file or a block device; every read
//! is bounded by the file (a descriptor table, an inode or a block past its end is
//! refused before anything is allocated for it). A map that points outside the
//! filesystem (unwritten extents included), loops, is out of order, or maps more
//! blocks than the image has; a file size past what its map can address; a directory
//! seen twice; an unreadable inode: each makes that entry a *loss*, reported as a
//! warning, and the rest is still copied. All the maps of the image together may map
//! no more blocks than the image holds, so a damaged image cannot make the copy
//! larger or longer than a sound one of its size; and files are copied run by run,
//! holes skipped, so time follows the data, not the sizes the inodes claim. The old
//! image is never written to.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use crate::dir_entry::{self, TAIL_LEN};
use crate::error::Error;
use crate::features::{
    INCOMPAT_64BIT, INCOMPAT_COMPRESSION, INCOMPAT_ENCRYPT, INCOMPAT_INLINE_DATA, INCOMPAT_META_BG,
    RO_COMPAT_HUGE_FILE,
};
use crate::inode::{
    EXT4_EXTENTS_FL, EXT4_INLINE_DATA_FL, Inode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK,
    S_IFREG, S_IFSOCK,
};
use crate::mapping::{MapBlock, MapProblem, Run, Visitor};
use crate::reader::{Fs, FsError, ImageFile};
use crate::source::Warn;
use crate::source::tar::{DataSink, FileBytes};
use crate::superblock::SuperblockError;
use crate::tree::{FileData, Kind, Meta, Node, NodeId, ROOT, Tree, Xattr};

/// INCOMPAT features whose structures this reader does not read.
const UNREADABLE_INCOMPAT: u32 =
    INCOMPAT_COMPRESSION | INCOMPAT_META_BG | INCOMPAT_INLINE_DATA | INCOMPAT_ENCRYPT;

/// Bytes a file reader hands over per call at most.
const READ_CHUNK: u64 = 1 << 20;

/// One inode as read: decoded, with its record kept for in-inode attributes.
struct RawInode {
    ino: Inode,
    raw: Vec<u8>,
}

/// Reads the image at `path` into `tree`, streaming file bytes into `sink`; entries that
/// cannot be read are reported through `warn` and left out, and their number returned.
pub(crate) fn add_image(
    tree: &mut Tree,
    path: &Path,
    only: Option<&[String]>,
    sink: &mut dyn DataSink,
    warn: Warn<'_>,
) -> Result<u64, Error> {
    let not = |reason: String| Error::NotAnImage {
        path: path.to_owned(),
        reason,
    };
    let file = ImageFile::open(path)?;
    let sb = file.superblock().map_err(|e| match e {
        SuperblockError::Magic(_) => not("no ext2/3/4 superblock".to_owned()),
        e => not(e.to_string()),
    })?;
    if sb.feature_incompat & UNREADABLE_INCOMPAT != 0 {
        return Err(not(
            "it uses a feature this reader does not read (compression, meta_bg, inline_data or encryption)".to_owned(),
        ));
    }
    let fs = Fs::open(file, sb).map_err(|e| match e {
        FsError::Read(e) => e.into_error(path),
        e => not(e.to_string()),
    })?;
    // The most blocks all the maps together may map: a sound filesystem maps each of
    // its blocks once at most, and only blocks the file holds can be read.
    let budget = fs.sb.blocks_count.min(fs.file.len() / fs.bs());
    let mut walk = Walk {
        fs: &fs,
        sink,
        warn,
        links: HashMap::new(),
        seen_dirs: HashSet::new(),
        lost: 0,
        budget,
    };
    let root = walk
        .inode(2)
        .map_err(|e| not(format!("its root directory cannot be read: {e}")))?;
    if root.ino.file_type() != S_IFDIR {
        return Err(not("inode 2 is not a directory".to_owned()));
    }
    match only {
        None => {
            tree.nodes[ROOT].meta = meta_of(&fs, &root, &mut walk.warn, "/");
            walk.dir(tree, 2, ROOT, "")?;
        }
        Some(paths) => {
            for p in paths {
                walk.path(tree, p)?;
            }
        }
    }
    if walk.lost > 0 {
        (walk.warn)(format!(
            "{}: {} entries could not be read and were left out (listed above)",
            path.display(),
            walk.lost
        ));
    }
    Ok(walk.lost)
}

fn meta_of(fs: &Fs, ino: &RawInode, warn: &mut Warn<'_>, path: &str) -> Meta {
    let xattrs = xattrs(fs, ino).unwrap_or_else(|e| {
        warn(format!("{path}: extended attributes lost: {e}"));
        Vec::new()
    });
    Meta {
        perm: ino.ino.mode & 0o7777,
        uid: ino.ino.uid,
        gid: ino.ino.gid,
        mtime: ino.ino.mtime,
        xattrs,
    }
}

/// Extended attributes: from inside the inode, then the attribute block.
fn xattrs(fs: &Fs, ino: &RawInode) -> Result<Vec<Xattr>, String> {
    let mut out = Vec::new();
    if let Some(region) = crate::xattr::in_inode(&ino.raw) {
        crate::xattr::decode_entries(region, region, &mut out).map_err(|e| e.to_string())?;
    }
    let acl = ino
        .ino
        .file_acl(fs.sb.feature_incompat & INCOMPAT_64BIT != 0);
    if acl != 0 {
        let b = fs.block(acl)?;
        if crate::xattr::decode_header(&b).is_none() {
            return Err(format!("attribute block {acl} has a bad magic number"));
        }
        crate::xattr::decode_block(&b, &mut out).map_err(|e| e.to_string())?;
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A mapping walk's visitor for copying: the runs in file order, each mapping block
/// read once, the first problem kept (the entry is then a loss), every block mapped
/// charged to the image's budget.
struct Collect<'a> {
    fs: &'a Fs,
    seen: HashSet<u64>,
    runs: Vec<Run>,
    problem: Option<String>,
    budget: &'a mut u64,
}

impl Collect<'_> {
    fn fail(&mut self, what: String) {
        self.problem.get_or_insert(what);
    }

    fn charge(&mut self, n: u64) -> bool {
        match self.budget.checked_sub(n) {
            Some(left) => {
                *self.budget = left;
                true
            }
            None => {
                self.fail("the image maps more blocks than it has".to_owned());
                false
            }
        }
    }
}

impl Visitor for Collect<'_> {
    type Error = String;

    fn enter(&mut self, nr: u64, kind: MapBlock) -> bool {
        if self.problem.is_some() {
            return false;
        }
        if !self.seen.insert(nr) {
            let what = match kind {
                MapBlock::ExtentTree => "extent",
                MapBlock::Indirect(_) => "indirect",
            };
            self.fail(format!("{what} block {nr} is used twice"));
            return false;
        }
        self.charge(1)
    }

    fn read(&mut self, nr: u64) -> Result<Vec<u8>, String> {
        self.fs.block(nr)
    }

    fn data(&mut self, run: Run) {
        if self.problem.is_some() {
            return;
        }
        // Block 0 is never data (it holds the boot block and superblock, or is the
        // "no block" of a map), so the filesystem's data starts at 1 at the earliest.
        let first = u64::from(self.fs.sb.first_data_block).max(1);
        if let Err(p) = run.inside(first, self.fs.sb.blocks_count) {
            self.fail(p.to_string());
            return;
        }
        // An unwritten extent reads as zeros: a hole to the copy.
        if run.init && self.charge(run.len) {
            self.runs.push(run);
        }
    }

    fn problem(&mut self, p: MapProblem) {
        self.fail(p.to_string());
    }

    fn gave_up(&self) -> bool {
        self.problem.is_some()
    }
}

/// Reads a file's bytes through its runs (sorted, apart), holes as zeros; the writer
/// asks where data is, and skips the rest.
struct FileReader<'a> {
    file: &'a ImageFile,
    bs: u64,
    runs: Vec<Run>,
    size: u64,
    pos: u64,
}

impl FileReader<'_> {
    /// The first run that ends after file block `lblock`.
    fn run_at(&self, lblock: u64) -> Option<&Run> {
        let i = self.runs.partition_point(|r| r.logical + r.len <= lblock);
        self.runs.get(i)
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let bs = self.bs;
        let lblock = self.pos / bs;
        let within = self.pos % bs;
        let want = (buf.len() as u64).min(self.size - self.pos).min(READ_CHUNK);
        let n = match self.run_at(lblock).copied() {
            Some(r) if r.logical <= lblock => {
                let left_in_run = (r.logical + r.len - lblock) * bs - within;
                let n = want.min(left_in_run) as usize;
                let off = (r.physical + (lblock - r.logical))
                    .checked_mul(bs)
                    .and_then(|o| o.checked_add(within))
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "a file's data lies past any byte offset",
                        )
                    })?;
                self.file.read_into(&mut buf[..n], off)?;
                n
            }
            next => {
                // A hole up to the next run (or the end).
                let next = next.map_or(self.size, |r| r.logical * bs);
                let n = want.min(next - self.pos) as usize;
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl FileBytes for FileReader<'_> {
    fn next_data(&mut self, pos: u64) -> Option<u64> {
        let lblock = pos / self.bs;
        self.run_at(lblock).map(|r| {
            if r.logical <= lblock {
                pos
            } else {
                r.logical * self.bs
            }
        })
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.pos += n;
        Ok(())
    }
}

struct Walk<'a, 'w> {
    fs: &'a Fs,
    sink: &'a mut dyn DataSink,
    warn: Warn<'w>,
    /// Old inode number -> node, for hard links.
    links: HashMap<u32, NodeId>,
    seen_dirs: HashSet<u32>,
    lost: u64,
    /// Blocks the maps may still map (see `add_image`).
    budget: u64,
}

impl Walk<'_, '_> {
    fn loss(&mut self, path: &str, what: String) {
        self.lost += 1;
        (self.warn)(format!(
            "{}: {path}: lost: {what}",
            self.fs.file.path().display()
        ));
    }

    fn inode(&self, ino: u32) -> Result<RawInode, String> {
        let raw = self.fs.inode(ino)?;
        // The superblock decoder saw to records of 128 bytes at least.
        let decoded = Inode::decode(&raw).ok_or("its record is too short")?;
        Ok(RawInode { ino: decoded, raw })
    }

    /// The runs that map an inode's blocks, in file order. `charge`: count them against
    /// the image's budget (a lookup that only reads a folder's names again does not).
    fn runs(&mut self, ino: &RawInode, charge: bool) -> Result<Vec<Run>, String> {
        let i = &ino.ino;
        if i.flags & EXT4_INLINE_DATA_FL != 0 {
            return Err("inline data is not read".into());
        }
        let mut spare = u64::MAX;
        let mut v = Collect {
            fs: self.fs,
            seen: HashSet::new(),
            runs: Vec::new(),
            problem: None,
            budget: if charge { &mut self.budget } else { &mut spare },
        };
        let bs = self.fs.sb.block_size;
        if i.flags & EXT4_EXTENTS_FL != 0 {
            crate::extent::walk(&i.block, bs, None, &mut v)?;
        } else {
            crate::blockmap::walk(&i.block, bs, &mut v)?;
        }
        if let Some(p) = v.problem {
            return Err(p);
        }
        // Both walks report runs in file order and refuse overlaps; the reader relies on it.
        if v.runs
            .windows(2)
            .any(|w| w[0].logical + w[0].len > w[1].logical)
        {
            return Err("its map is out of order".into());
        }
        Ok(v.runs)
    }

    /// The names in a directory's blocks, in order; `Err` when its map is unreadable.
    /// Damaged blocks are losses; the names before the damage are kept.
    fn names(
        &mut self,
        raw: &RawInode,
        path: &str,
        charge: bool,
    ) -> Result<Vec<(Vec<u8>, u32)>, String> {
        let runs = self.runs(raw, charge)?;
        let mut names = Vec::new();
        for e in &runs {
            for i in 0..e.len {
                let nr = e.physical + i;
                let b = match self.fs.block(nr) {
                    Ok(b) => b,
                    Err(err) => {
                        self.loss(
                            path,
                            format!("a directory block: {err}; the names in it are lost"),
                        );
                        continue;
                    }
                };
                let end = if dir_entry::has_tail(&b) {
                    b.len() - TAIL_LEN
                } else {
                    b.len()
                };
                for entry in dir_entry::entries(&b, end) {
                    match entry {
                        Ok(e) if !e.name.is_empty() => names.push((e.name.to_vec(), e.inode)),
                        Ok(_) => {}
                        Err(err) => self.loss(
                            path,
                            format!(
                                "directory block {nr} is damaged ({err}); the names after the \
                                 damage are lost"
                            ),
                        ),
                    }
                }
            }
        }
        Ok(names)
    }

    fn dir(&mut self, tree: &mut Tree, ino: u32, node: NodeId, path: &str) -> Result<(), Error> {
        if !self.seen_dirs.insert(ino) {
            self.loss(
                path,
                format!("directory inode {ino} is named twice (a loop); left out"),
            );
            return Ok(());
        }
        let raw = match self.inode(ino) {
            Ok(r) => r,
            Err(e) => {
                self.loss(path, e);
                return Ok(());
            }
        };
        let names = match self.names(&raw, path, true) {
            Ok(n) => n,
            Err(e) => {
                self.loss(path, format!("its blocks cannot be mapped: {e}"));
                return Ok(());
            }
        };
        for (name, child) in names {
            if name == b"."
                || name == b".."
                || (ino == 2 && name == b"lost+found" && self.lost_found_is_empty(child))
            {
                continue;
            }
            let cpath = format!("{path}/{}", String::from_utf8_lossy(&name));
            if crate::tree::check_name(&name, &cpath).is_err() {
                // A damaged entry ('/' or NUL in its name): the rest is still copied.
                self.loss(&cpath, "its name is not a valid file name".into());
                continue;
            }
            self.entry(tree, node, &name, child, &cpath)?;
        }
        Ok(())
    }

    /// Copies inode `child` (and, for a directory, everything below it) into the tree
    /// as `name` in directory `node`.
    fn entry(
        &mut self,
        tree: &mut Tree,
        node: NodeId,
        name: &[u8],
        child: u32,
        cpath: &str,
    ) -> Result<(), Error> {
        if let Some(&existing) = self.links.get(&child) {
            tree.link(node, name, existing, cpath)?;
            return Ok(());
        }
        let raw = match self.inode(child) {
            Ok(r) => r,
            Err(e) => {
                self.loss(cpath, e);
                return Ok(());
            }
        };
        let meta = meta_of(self.fs, &raw, &mut self.warn, cpath);
        let kind = match self.kind(&raw, cpath) {
            Ok(Some(k)) => k,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.loss(cpath, e);
                return Ok(());
            }
        };
        let is_dir = matches!(kind, Kind::Dir(_));
        let id = tree.add(Node { meta, kind });
        let id = tree.link(node, name, id, cpath)?;
        for extents in tree.take_released() {
            self.sink.release(&extents);
        }
        if is_dir {
            self.dir(tree, child, id, cpath)?;
        } else {
            self.links.insert(child, id);
        }
        Ok(())
    }

    /// Copies one absolute path of the image (a file, or a folder with everything below
    /// it) over what the tree holds there; the folders on the way are created with the
    /// image's metadata where the tree lacks them. A path the image does not have is
    /// reported, not a loss: the user asked to keep it, and there is nothing to keep.
    fn path(&mut self, tree: &mut Tree, want: &str) -> Result<(), Error> {
        let comps: Vec<&[u8]> = want
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::as_bytes)
            .collect();
        if comps.iter().any(|c| *c == b"..") || comps.is_empty() {
            return Err(Error::BadEntry {
                path: want.to_owned(),
                reason: "a kept path must be absolute, below /, without `..`".into(),
            });
        }
        let image = self.fs.file.path().display().to_string();
        let mut ino = 2u32;
        let mut node = ROOT;
        let mut at = String::new();
        for (i, comp) in comps.iter().enumerate() {
            let name_s = String::from_utf8_lossy(comp);
            let cpath = format!("{at}/{name_s}");
            let found = match self.lookup(ino, comp, &cpath) {
                Ok(f) => f,
                Err(e) => {
                    self.loss(&cpath, e);
                    return Ok(());
                }
            };
            let Some(child) = found else {
                (self.warn)(format!(
                    "{want}: not in {image} ({cpath} is missing); nothing kept for it"
                ));
                return Ok(());
            };
            if i + 1 == comps.len() {
                return self.entry(tree, node, comp, child, &cpath);
            }
            let raw = match self.inode(child) {
                Ok(r) => r,
                Err(e) => {
                    self.loss(&cpath, e);
                    return Ok(());
                }
            };
            if raw.ino.file_type() != S_IFDIR {
                (self.warn)(format!(
                    "{want}: {cpath} is not a folder in {image}; nothing kept for it"
                ));
                return Ok(());
            }
            node = match tree.child(node, comp) {
                Some(id) if matches!(tree.nodes[id].kind, Kind::Dir(_)) => id,
                _ => {
                    let meta = meta_of(self.fs, &raw, &mut self.warn, &cpath);
                    let id = tree.add(Node {
                        meta,
                        kind: Kind::Dir(Default::default()),
                    });
                    let id = tree.link(node, comp, id, &cpath)?;
                    for extents in tree.take_released() {
                        self.sink.release(&extents);
                    }
                    id
                }
            };
            ino = child;
            at = cpath;
        }
        Ok(())
    }

    /// The inode named `name` in directory inode `dir`.
    fn lookup(&mut self, dir: u32, name: &[u8], path: &str) -> Result<Option<u32>, String> {
        let raw = self.inode(dir)?;
        let names = self.names(&raw, path, false)?;
        Ok(names.into_iter().find(|(n, _)| n == name).map(|(_, i)| i))
    }

    /// lost+found with nothing in it is the old filesystem's own: the new one makes its
    /// own. One with entries is kept (those are recovered files).
    fn lost_found_is_empty(&mut self, ino: u32) -> bool {
        let Ok(raw) = self.inode(ino) else {
            return true;
        };
        let Ok(runs) = self.runs(&raw, false) else {
            return true;
        };
        let mut empty = true;
        for e in &runs {
            for i in 0..e.len {
                if let Ok(b) = self.fs.block(e.physical + i) {
                    // Names before any damage count; damage itself is judged when the
                    // folder is copied.
                    empty &= dir_entry::entries(&b, b.len())
                        .map_while(Result::ok)
                        .all(|e| e.name.is_empty() || e.name == b"." || e.name == b"..");
                }
            }
        }
        empty
    }

    fn kind(&mut self, raw: &RawInode, path: &str) -> Result<Option<Kind>, String> {
        let i = &raw.ino;
        let bs = self.fs.bs();
        Ok(Some(match i.file_type() {
            S_IFDIR => Kind::Dir(Default::default()),
            S_IFREG => {
                // Logical block numbers are 32-bit in an extent tree; a block map
                // reaches as far as its triple-indirect block.
                let addressable = if i.flags & EXT4_EXTENTS_FL != 0 {
                    crate::extent::LOGICAL_LIMIT
                } else {
                    crate::blockmap::max_blocks(self.fs.sb.block_size)
                };
                let max = addressable.saturating_mul(bs);
                if i.size > max {
                    return Err(format!(
                        "its size of {} bytes is more than a file on this filesystem can \
                         hold ({max} bytes)",
                        i.size
                    ));
                }
                let runs = self.runs(raw, true)?;
                let extents = if i.size == 0 {
                    Vec::new()
                } else {
                    let mut r = FileReader {
                        file: &self.fs.file,
                        bs,
                        runs,
                        size: i.size,
                        pos: 0,
                    };
                    let p = path.to_owned();
                    self.sink
                        .stream(&mut r, i.size, &move || p.clone())
                        .map_err(|e| e.to_string())?
                };
                Kind::File {
                    data: FileData::Written { extents },
                    size: i.size,
                }
            }
            S_IFLNK => {
                let is64 = self.fs.sb.feature_incompat & INCOMPAT_64BIT != 0;
                let huge = self.fs.sb.feature_ro_compat & RO_COMPAT_HUGE_FILE != 0;
                // An attribute block counts in i_blocks: a fast symlink has that and no
                // more.
                let ea = if i.file_acl(is64) != 0 { bs / 512 } else { 0 };
                let len = usize::try_from(i.size).map_err(|_| "a symlink too long")?;
                let target = if i.blocks(huge) == ea && len < 60 {
                    i.block[..len].to_vec()
                } else {
                    let runs = self.runs(raw, true)?;
                    let first = runs.first().ok_or("a slow symlink with no block")?;
                    let b = self.fs.block(first.physical)?;
                    b.get(..len)
                        .ok_or("a symlink longer than its block")?
                        .to_vec()
                };
                if target.is_empty() {
                    return Err("an empty symlink".into());
                }
                Kind::Symlink(target)
            }
            t @ (S_IFCHR | S_IFBLK) => {
                let (major, minor) = crate::inode::decode_dev(&i.block);
                if t == S_IFCHR {
                    Kind::CharDev { major, minor }
                } else {
                    Kind::BlockDev { major, minor }
                }
            }
            S_IFIFO => Kind::Fifo,
            S_IFSOCK => {
                (self.warn)(format!("{path}: skipped: sockets are not stored in images"));
                return Ok(None);
            }
            other => return Err(format!("unknown file type {other:o}")),
        }))
    }
}
