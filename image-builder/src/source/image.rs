//! An existing ext2/ext3/ext4 image as a source: its tree, with all metadata, read
//! straight from the image file and fed to the writer in one pass, so an image can be
//! grown, shrunk (`--size auto`), converted to another level, or rescued. Or only
//! chosen paths of it, over what earlier sources built (a root rebuild's `preserve`
//! list): each path is looked up folder by folder and copied with everything below it.
//!
//! The reader is small and read-only: superblock, group descriptors, inodes, extent
//! trees and block maps, linear directory blocks (an htree directory's index blocks read
//! as empty entries, as the format intends, so every name is found by reading each
//! block), fast and slow symlinks, device numbers, and extended attributes from the
//! attribute block and from inside 256-byte inodes. It trusts nothing: a block number
//! outside the image, a looping extent tree, a directory seen twice or an unreadable
//! inode makes that entry a *loss*, reported as a warning, and the rest is still copied.
//! The old image is never written to.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use crate::disk::VirtualDisk;
use crate::error::Error;
use crate::extent::Extent;
use crate::inspect::Superblock;
use crate::source::Warn;
use crate::source::tar::DataSink;
use crate::tree::{FileData, Kind, Meta, Node, NodeId, ROOT, Timestamp, Tree, Xattr};
use crate::util::{get_u16le, get_u32le};

/// The open image and its geometry.
struct Image<'a> {
    file: VirtualDisk,
    path: &'a Path,
    sb: Superblock,
    /// Inode table block of each group.
    itables: Vec<u64>,
    bs: u64,
}

/// What one inode says.
struct RawInode {
    mode: u16,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: Timestamp,
    flags: u32,
    i_block: [u8; 60],
    file_acl: u64,
    blocks_512: u64,
    raw: Vec<u8>,
}

const S_IFMT: u16 = 0o170000;
const EXTENTS_FL: u32 = 0x0008_0000;
const INLINE_DATA_FL: u32 = 0x1000_0000;

impl Image<'_> {
    fn read(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; len];
        let n = self
            .file
            .read_at(&mut b, off)
            .map_err(|e| format!("cannot read byte {off}: {e}"))?;
        if n < len {
            return Err(format!("byte {off} is past the end of the image file"));
        }
        Ok(b)
    }

    fn block(&self, nr: u64) -> Result<Vec<u8>, String> {
        if nr == 0 || nr >= self.sb.blocks_count {
            return Err(format!("block {nr} is outside the filesystem"));
        }
        self.read(nr * self.bs, self.bs as usize)
    }

    fn inode(&self, ino: u32) -> Result<RawInode, String> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(format!("inode {ino} does not exist"));
        }
        let idx = u64::from(ino - 1);
        let g = (idx / u64::from(self.sb.inodes_per_group)) as usize;
        let within = idx % u64::from(self.sb.inodes_per_group);
        let table = *self.itables.get(g).ok_or("its group has no inode table")?;
        let isz = u64::from(self.sb.inode_size);
        let raw = self.read(table * self.bs + within * isz, isz as usize)?;
        let f = |o| get_u32le(&raw, o).unwrap_or(0);
        let h = |o| get_u16le(&raw, o).unwrap_or(0);
        let extra = if raw.len() > 128 {
            usize::from(h(0x80))
        } else {
            0
        };
        // i_mtime_extra (0x88) is there when the extra fields reach past it.
        let (nsec, epoch) = if extra >= 0x88 + 4 - 0x80 {
            (f(0x88) >> 2, i64::from(f(0x88) & 3))
        } else {
            (0, 0)
        };
        let mtime = Timestamp {
            secs: i64::from(f(0x10) as i32) + (epoch << 32),
            nsec: nsec.min(999_999_999),
        };
        let mut i_block = [0u8; 60];
        i_block.copy_from_slice(&raw[0x28..0x64]);
        let huge = self.sb.ro_compat & crate::features::RO_COMPAT_HUGE_FILE != 0;
        Ok(RawInode {
            mode: h(0),
            uid: u32::from(h(0x02)) | (u32::from(h(0x78)) << 16),
            gid: u32::from(h(0x18)) | (u32::from(h(0x7a)) << 16),
            size: u64::from(f(0x04)) | (u64::from(f(0x6c)) << 32),
            mtime,
            flags: f(0x20),
            i_block,
            file_acl: u64::from(f(0x68)) | (u64::from(h(0x76)) << 32),
            blocks_512: u64::from(f(0x1c)) | if huge { u64::from(h(0x74)) << 32 } else { 0 },
            raw,
        })
    }

    /// The runs that map an inode's blocks, in logical order.
    fn runs(&self, ino: &RawInode) -> Result<Vec<Extent>, String> {
        let mut out = Vec::new();
        let mut budget = self.sb.blocks_count.min(1 << 32);
        if ino.flags & INLINE_DATA_FL != 0 {
            return Err("inline data is not read".into());
        }
        if ino.flags & EXTENTS_FL != 0 {
            self.extent_node(&ino.i_block, 0, &mut out, &mut budget, &mut HashSet::new())?;
        } else {
            let ptr = |i: usize| u64::from(get_u32le(&ino.i_block, 4 * i).unwrap_or(0));
            let per = self.bs / 4;
            for i in 0..12 {
                if ptr(i) != 0 {
                    out.push(Extent {
                        logical: i as u32,
                        physical: ptr(i),
                        len: 1,
                    });
                }
            }
            let mut seen = HashSet::new();
            let mut logical = 12u64;
            for (slot, depth) in [(12usize, 1u32), (13, 2), (14, 3)] {
                let span = per.pow(depth);
                if ptr(slot) != 0 {
                    self.indirect(ptr(slot), depth, logical, &mut out, &mut seen)?;
                }
                logical += span;
            }
        }
        out.sort_by_key(|e| e.logical);
        Ok(out)
    }

    fn indirect(
        &self,
        nr: u64,
        depth: u32,
        first: u64,
        out: &mut Vec<Extent>,
        seen: &mut HashSet<u64>,
    ) -> Result<(), String> {
        if !seen.insert(nr) {
            return Err(format!("indirect block {nr} is used twice"));
        }
        let b = self.block(nr)?;
        let per = self.bs / 4;
        let span = per.pow(depth - 1);
        for i in 0..per {
            let p = u64::from(get_u32le(&b, (4 * i) as usize).unwrap_or(0));
            if p == 0 {
                continue;
            }
            let logical = first + i * span;
            if depth == 1 {
                let logical = u32::try_from(logical).map_err(|_| "a block map past 2^32 blocks")?;
                out.push(Extent {
                    logical,
                    physical: p,
                    len: 1,
                });
            } else {
                self.indirect(p, depth - 1, logical, out, seen)?;
            }
        }
        Ok(())
    }

    fn extent_node(
        &self,
        node: &[u8],
        level: u32,
        out: &mut Vec<Extent>,
        budget: &mut u64,
        seen: &mut HashSet<u64>,
    ) -> Result<(), String> {
        if get_u16le(node, 0) != Some(0xf30a) {
            return Err("an extent header has a bad magic number".into());
        }
        let entries = usize::from(get_u16le(node, 2).unwrap_or(0));
        let depth = get_u16le(node, 6).unwrap_or(0);
        if level > 5 || entries * 12 + 12 > node.len() {
            return Err("an extent tree is malformed".into());
        }
        for i in 0..entries {
            let e = &node[12 + 12 * i..24 + 12 * i];
            let logical = get_u32le(e, 0).unwrap_or(0);
            if depth == 0 {
                let len = get_u16le(e, 4).unwrap_or(0);
                if len > 32768 {
                    continue; // uninitialised: reads as zeros, a hole to the copy
                }
                let physical = u64::from(get_u32le(e, 8).unwrap_or(0))
                    | (u64::from(get_u16le(e, 6).unwrap_or(0)) << 32);
                if physical
                    .checked_add(u64::from(len))
                    .is_none_or(|end| end > self.sb.blocks_count)
                    || physical == 0
                {
                    return Err(format!(
                        "an extent points outside the filesystem (block {physical})"
                    ));
                }
                *budget = budget
                    .checked_sub(u64::from(len))
                    .ok_or("an extent tree maps more blocks than the image has")?;
                out.push(Extent {
                    logical,
                    physical,
                    len,
                });
            } else {
                let child = u64::from(get_u32le(e, 4).unwrap_or(0))
                    | (u64::from(get_u16le(e, 8).unwrap_or(0)) << 32);
                if !seen.insert(child) {
                    return Err(format!("extent block {child} is used twice"));
                }
                let b = self.block(child)?;
                self.extent_node(&b, level + 1, out, budget, seen)?;
            }
        }
        Ok(())
    }

    /// Extended attributes: from inside the inode, then the attribute block.
    fn xattrs(&self, ino: &RawInode) -> Result<Vec<Xattr>, String> {
        let mut out = Vec::new();
        if ino.raw.len() > 128 {
            let extra = usize::from(get_u16le(&ino.raw, 0x80).unwrap_or(0));
            let start = 128 + extra;
            if get_u32le(&ino.raw, start) == Some(0xea02_0000) {
                let region = &ino.raw[start + 4..];
                parse_entries(region, region, &mut out)?;
            }
        }
        if ino.file_acl != 0 {
            let b = self.block(ino.file_acl)?;
            if get_u32le(&b, 0) != Some(0xea02_0000) {
                return Err(format!(
                    "attribute block {} has a bad magic number",
                    ino.file_acl
                ));
            }
            parse_entries(&b[32..], &b, &mut out)?;
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Attribute entries from `entries`; value offsets count from the start of `values` (the
/// block, or inside an inode the first entry).
fn parse_entries(entries: &[u8], values: &[u8], out: &mut Vec<Xattr>) -> Result<(), String> {
    let mut off = 0;
    while off + 16 <= entries.len() && get_u32le(entries, off) != Some(0) {
        let name_len = usize::from(entries[off]);
        let index = entries[off + 1];
        let voff = usize::from(get_u16le(entries, off + 2).unwrap_or(0));
        let vinum = get_u32le(entries, off + 4).unwrap_or(0);
        let vsize = get_u32le(entries, off + 8).unwrap_or(0) as usize;
        let name = entries
            .get(off + 16..off + 16 + name_len)
            .ok_or("an attribute name runs past its block")?;
        let prefix: &[u8] = match index {
            1 => b"user.",
            4 => b"trusted.",
            6 => b"security.",
            _ => b"",
        };
        if !prefix.is_empty() && vinum == 0 {
            let value = values
                .get(voff..voff + vsize)
                .ok_or("an attribute value runs past its block")?;
            let mut full = prefix.to_vec();
            full.extend_from_slice(name);
            out.push(Xattr {
                name: full,
                value: value.to_vec(),
            });
        }
        off += (16 + name_len).div_ceil(4) * 4;
    }
    Ok(())
}

/// Reads a file's bytes through its runs, holes as zeros.
struct FileReader<'a> {
    img: &'a Image<'a>,
    runs: Vec<Extent>,
    size: u64,
    pos: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let bs = self.img.bs;
        let lblock = self.pos / bs;
        let within = self.pos % bs;
        let want = (buf.len() as u64).min(self.size - self.pos);
        let run = self.runs.iter().find(|e| {
            u64::from(e.logical) <= lblock && lblock < u64::from(e.logical) + u64::from(e.len)
        });
        let n = match run {
            Some(e) => {
                let left_in_run = (u64::from(e.logical) + u64::from(e.len) - lblock) * bs - within;
                let n = want.min(left_in_run).min(1 << 20) as usize;
                let off = (e.physical + lblock - u64::from(e.logical)) * bs + within;
                let got = self.img.file.read_at(&mut buf[..n], off)?;
                if got < n {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the image file ends inside a file's data",
                    ));
                }
                n
            }
            None => {
                // A hole up to the next run (or the end).
                let next = self
                    .runs
                    .iter()
                    .map(|e| u64::from(e.logical))
                    .filter(|&l| l > lblock)
                    .min()
                    .map_or(self.size, |l| l * bs);
                let n = want.min(next - self.pos).min(1 << 20) as usize;
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads the image at `path` into `tree`, streaming file bytes into `sink`; entries that
/// cannot be read are reported through `warn` and left out.
pub(crate) fn add_image(
    tree: &mut Tree,
    path: &Path,
    only: Option<&[String]>,
    sink: &mut dyn DataSink,
    warn: Warn<'_>,
) -> Result<(), Error> {
    let not = |reason: &str| Error::NotAnImage {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let file = VirtualDisk::open(path)?;
    let mut head = vec![0u8; 2048];
    let n = file.read_at(&mut head, 0).map_err(|e| Error::Read {
        path: path.to_owned(),
        source: e,
    })?;
    head.truncate(n);
    let sb = Superblock::parse(&head).ok_or_else(|| not("no ext2/3/4 superblock"))?;
    const UNREADABLE_INCOMPAT: u32 = 0x0001 | 0x0010 | 0x8000 | 0x10000; // compression, meta_bg, inline_data, encrypt
    if sb.incompat & UNREADABLE_INCOMPAT != 0 {
        return Err(not(
            "it uses a feature this reader does not read (compression, meta_bg, inline_data or encryption)",
        ));
    }
    let bs = u64::from(sb.block_size);
    let gdt_at = (u64::from(sb.first_data_block) + 1) * bs;
    let groups = sb.groups();
    let ds = u64::from(sb.desc_size);
    let gdt = {
        let len = usize::try_from(groups * ds).map_err(|_| not("too many groups"))?;
        let mut b = vec![0u8; len];
        let got = file.read_at(&mut b, gdt_at).map_err(|e| Error::Read {
            path: path.to_owned(),
            source: e,
        })?;
        if got < len {
            return Err(not("the group descriptors are past the end of the file"));
        }
        b
    };
    let wide = ds >= 64;
    let itables = (0..groups as usize)
        .map(|g| {
            let d = &gdt[g * ds as usize..];
            u64::from(get_u32le(d, 8).unwrap_or(0))
                | if wide {
                    u64::from(get_u32le(d, 0x28).unwrap_or(0)) << 32
                } else {
                    0
                }
        })
        .collect();
    let img = Image {
        file,
        path,
        sb,
        itables,
        bs,
    };
    let mut walk = Walk {
        img: &img,
        sink,
        warn,
        links: HashMap::new(),
        seen_dirs: HashSet::new(),
        lost: 0,
    };
    let root = img
        .inode(2)
        .map_err(|e| not(&format!("its root directory cannot be read: {e}")))?;
    if root.mode & S_IFMT != 0o040000 {
        return Err(not("inode 2 is not a directory"));
    }
    match only {
        None => {
            tree.nodes[ROOT].meta = meta_of(&img, &root, &mut walk.warn, "/");
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
            img.path.display(),
            walk.lost
        ));
    }
    Ok(())
}

fn meta_of(img: &Image<'_>, ino: &RawInode, warn: &mut Warn<'_>, path: &str) -> Meta {
    let xattrs = img.xattrs(ino).unwrap_or_else(|e| {
        warn(format!("{path}: extended attributes lost: {e}"));
        Vec::new()
    });
    Meta {
        perm: ino.mode & 0o7777,
        uid: ino.uid,
        gid: ino.gid,
        mtime: ino.mtime,
        xattrs,
    }
}

struct Walk<'a, 'w> {
    img: &'a Image<'a>,
    sink: &'a mut dyn DataSink,
    warn: Warn<'w>,
    /// Old inode number -> node, for hard links.
    links: HashMap<u32, NodeId>,
    seen_dirs: HashSet<u32>,
    lost: u64,
}

impl Walk<'_, '_> {
    fn loss(&mut self, path: &str, what: String) {
        self.lost += 1;
        (self.warn)(format!("{}: {path}: lost: {what}", self.img.path.display()));
    }

    fn dir(&mut self, tree: &mut Tree, ino: u32, node: NodeId, path: &str) -> Result<(), Error> {
        if !self.seen_dirs.insert(ino) {
            self.loss(
                path,
                format!("directory inode {ino} is named twice (a loop); left out"),
            );
            return Ok(());
        }
        let raw = match self.img.inode(ino) {
            Ok(r) => r,
            Err(e) => {
                self.loss(path, e);
                return Ok(());
            }
        };
        let runs = match self.img.runs(&raw) {
            Ok(r) => r,
            Err(e) => {
                self.loss(path, format!("its blocks cannot be mapped: {e}"));
                return Ok(());
            }
        };
        let mut names: Vec<(Vec<u8>, u32)> = Vec::new();
        for e in &runs {
            for i in 0..u64::from(e.len) {
                let b = match self.img.block(e.physical + i) {
                    Ok(b) => b,
                    Err(err) => {
                        self.loss(
                            path,
                            format!("a directory block: {err}; the names in it are lost"),
                        );
                        continue;
                    }
                };
                if let Err(err) = parse_dir_block(&b, &mut names) {
                    self.loss(path, format!("directory block {} is damaged ({err}); the names after the damage are lost", e.physical + i));
                }
            }
        }
        for (name, child) in names {
            if name == b"."
                || name == b".."
                || (ino == 2 && name == b"lost+found" && self.lost_found_is_empty(child))
            {
                continue;
            }
            let cpath = format!("{path}/{}", String::from_utf8_lossy(&name));
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
        let raw = match self.img.inode(child) {
            Ok(r) => r,
            Err(e) => {
                self.loss(cpath, e);
                return Ok(());
            }
        };
        let meta = meta_of(self.img, &raw, &mut self.warn, cpath);
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
        let mut ino = 2u32;
        let mut node = ROOT;
        let mut at = String::new();
        for (i, comp) in comps.iter().enumerate() {
            let name_s = String::from_utf8_lossy(comp);
            let cpath = format!("{at}/{name_s}");
            let found = match self.lookup(ino, comp) {
                Ok(f) => f,
                Err(e) => {
                    self.loss(&cpath, e);
                    return Ok(());
                }
            };
            let Some(child) = found else {
                (self.warn)(format!(
                    "{want}: not in {} ({cpath} is missing); nothing kept for it",
                    self.img.path.display()
                ));
                return Ok(());
            };
            if i + 1 == comps.len() {
                return self.entry(tree, node, comp, child, &cpath);
            }
            let raw = match self.img.inode(child) {
                Ok(r) => r,
                Err(e) => {
                    self.loss(&cpath, e);
                    return Ok(());
                }
            };
            if raw.mode & S_IFMT != 0o040000 {
                (self.warn)(format!(
                    "{want}: {cpath} is not a folder in {}; nothing kept for it",
                    self.img.path.display()
                ));
                return Ok(());
            }
            node = match tree.child(node, comp) {
                Some(id) if matches!(tree.nodes[id].kind, Kind::Dir(_)) => id,
                _ => {
                    let meta = meta_of(self.img, &raw, &mut self.warn, &cpath);
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
    fn lookup(&self, dir: u32, name: &[u8]) -> Result<Option<u32>, String> {
        let raw = self.img.inode(dir)?;
        let runs = self.img.runs(&raw)?;
        let mut names = Vec::new();
        for e in &runs {
            for i in 0..u64::from(e.len) {
                let b = self.img.block(e.physical + i)?;
                parse_dir_block(&b, &mut names)?;
            }
        }
        Ok(names.into_iter().find(|(n, _)| n == name).map(|(_, i)| i))
    }

    /// lost+found with nothing in it is the old filesystem's own: the new one makes its
    /// own. One with entries is kept (those are recovered files).
    fn lost_found_is_empty(&self, ino: u32) -> bool {
        let Ok(raw) = self.img.inode(ino) else {
            return true;
        };
        let Ok(runs) = self.img.runs(&raw) else {
            return true;
        };
        let mut names = Vec::new();
        for e in &runs {
            for i in 0..u64::from(e.len) {
                if let Ok(b) = self.img.block(e.physical + i) {
                    let _ = parse_dir_block(&b, &mut names);
                }
            }
        }
        names.iter().all(|(n, _)| n == b"." || n == b"..")
    }

    fn kind(&mut self, raw: &RawInode, path: &str) -> Result<Option<Kind>, String> {
        Ok(Some(match raw.mode & S_IFMT {
            0o040000 => Kind::Dir(Default::default()),
            0o100000 => {
                let runs = self.img.runs(raw)?;
                let extents = if raw.size == 0 {
                    Vec::new()
                } else {
                    let mut r = FileReader {
                        img: self.img,
                        runs,
                        size: raw.size,
                        pos: 0,
                    };
                    let p = path.to_owned();
                    self.sink
                        .stream(&mut r, raw.size, &move || p.clone())
                        .map_err(|e| e.to_string())?
                };
                Kind::File {
                    data: FileData::Written { extents },
                    size: raw.size,
                }
            }
            0o120000 => {
                let ea = if raw.file_acl != 0 {
                    self.img.bs / 512
                } else {
                    0
                };
                let len = usize::try_from(raw.size).map_err(|_| "a symlink too long")?;
                let target = if raw.blocks_512 == ea && len < 60 {
                    raw.i_block[..len].to_vec()
                } else {
                    let runs = self.img.runs(raw)?;
                    let first = runs.first().ok_or("a slow symlink with no block")?;
                    let b = self.img.block(first.physical)?;
                    b.get(..len)
                        .ok_or("a symlink longer than its block")?
                        .to_vec()
                };
                if target.is_empty() {
                    return Err("an empty symlink".into());
                }
                Kind::Symlink(target)
            }
            t @ (0o020000 | 0o060000) => {
                let old = get_u32le(&raw.i_block, 0).unwrap_or(0);
                let (major, minor) = if old != 0 {
                    ((old >> 8) & 0xff, old & 0xff)
                } else {
                    let new = get_u32le(&raw.i_block, 4).unwrap_or(0);
                    ((new & 0xfff00) >> 8, (new & 0xff) | ((new >> 12) & 0xfff00))
                };
                if t == 0o020000 {
                    Kind::CharDev { major, minor }
                } else {
                    Kind::BlockDev { major, minor }
                }
            }
            0o010000 => Kind::Fifo,
            0o140000 => {
                (self.warn)(format!("{path}: skipped: sockets are not stored in images"));
                return Ok(None);
            }
            other => return Err(format!("unknown file type {other:o}")),
        }))
    }
}

/// Appends the names of a linear directory block (index blocks read as empty entries).
fn parse_dir_block(b: &[u8], names: &mut Vec<(Vec<u8>, u32)>) -> Result<(), String> {
    let mut off = 0;
    while off + 8 <= b.len() {
        let ino = get_u32le(b, off).unwrap_or(0);
        let rec = usize::from(get_u16le(b, off + 4).unwrap_or(0));
        let name_len = usize::from(b[off + 6]);
        if rec < 8 || off + rec > b.len() || (ino != 0 && 8 + name_len > rec) {
            return Err(format!("bad entry at offset {off}"));
        }
        if ino != 0 && name_len > 0 {
            names.push((b[off + 8..off + 8 + name_len].to_vec(), ino));
        }
        off += rec;
    }
    Ok(())
}
