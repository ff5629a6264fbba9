//! The writer: places file bytes in their final blocks, then writes directories,
//! symlinks, mapping blocks, attribute blocks, the journal, and last the inode tables,
//! bitmaps, descriptors and superblocks, all from memory. [`crate::build`] drives it.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::blockmap::BlockMapBuilder;
use crate::build::Event;
use crate::checksum::{crc32c_raw, inode_seed};
use crate::dir_entry::{self, DirEntry};
use crate::dir_htree;
use crate::error::Error;
use crate::extent::{self, Extent, MAX_EXTENT_LEN};
use crate::group_desc::{self, GroupDesc};
use crate::inode::{self, InodeRec};
use crate::journal;
use crate::layout::{BlockMap, Geometry, Shape};
use crate::numbering::{FIRST_INO, Numbering};
use crate::output::{self, Output};
use crate::sizing;
use crate::source::tar::{DataSink, FileBytes};
use crate::superblock::{self, SuperFields};
use crate::tree::{FileData, Kind, Meta, NodeId, ROOT, Timestamp, Tree, Xattr};
use crate::xattr;

/// Bytes read from a source file per call.
const COPY_CHUNK: usize = 1 << 20;

/// State while writing.
pub(crate) struct Writer {
    pub(crate) shape: Shape,
    pub(crate) map: BlockMap,
    pub(crate) out: Output,
    pub(crate) csum: Option<u32>,
    /// When a stream outgrows a fixed size: keep reading and count the blocks it would
    /// need, so the error can name the minimum.
    pub(crate) count_overflow: bool,
    pub(crate) overflow: u64,
    /// `s_hash_seed`, for directory indexes.
    pub(crate) hash_seed: [u8; 16],
    /// Encoded inodes by number.
    pub(crate) inodes: HashMap<u32, InodeRec>,
    /// Attribute block contents, their block number and reference count.
    pub(crate) xattr_blocks: HashMap<Vec<u8>, (u64, u32)>,
    pub(crate) done: u64,
    pub(crate) total: u64,
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(map: BlockMap, out: Output) -> Writer {
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

    pub(crate) fn bs(&self) -> u64 {
        u64::from(self.shape.block_size)
    }
    pub(crate) fn full(&self) -> Error {
        Error::TooSmall {
            size: self.map.capacity() * self.bs(),
            minimum: 0,
            what: "the content".to_owned(),
        }
    }

    pub(crate) fn alloc_one(&mut self) -> Option<u64> {
        self.map.alloc_run(1).map(|(s, _)| s)
    }

    /// Allocates `n` blocks as extents (runs stop at metadata and at the longest extent).
    pub(crate) fn alloc_extents(&mut self, logical: u32, n: u64) -> Result<Vec<Extent>, Error> {
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
    pub(crate) fn map_blocks(
        &mut self,
        extents: &[Extent],
        ino: u32,
    ) -> Result<([u8; 60], u64, u32), Error> {
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
    pub(crate) fn write_blocks(&mut self, blocks: &[Vec<u8>]) -> Result<Vec<Extent>, Error> {
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
    pub(crate) fn journal(
        &mut self,
        n: u64,
        uuid: &[u8; 16],
        time: i64,
    ) -> Result<([u8; 60], u64), Error> {
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
    pub(crate) fn lost_found(&mut self, time: i64) -> Result<(), Error> {
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
    pub(crate) fn dir_inode(
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
    pub(crate) fn xattr_block(&mut self, attrs: &[Xattr], ino: u32) -> Result<u64, Error> {
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
    pub(crate) fn flush_xattrs(&mut self) -> Result<(), Error> {
        for (content, (nr, refs)) in std::mem::take(&mut self.xattr_blocks) {
            let mut b = content;
            xattr::seal(&mut b, refs, nr, self.csum);
            self.out.write_at(nr * self.bs(), &b)?;
        }
        Ok(())
    }

    /// Writes one entry's data (if any) and records its inode. What the image cannot
    /// hold (too many links or subdirectories, attributes over a block) is named by the
    /// entry's path in the tree, which is the user's name for it.
    pub(crate) fn entry(
        &mut self,
        tree: &Tree,
        numbering: &Numbering,
        id: NodeId,
        ino: u32,
        events: &mut dyn FnMut(Event),
        interrupt: &AtomicBool,
    ) -> Result<(), Error> {
        self.entry_inode(tree, numbering, id, ino, events, interrupt)
            .map_err(|e| match e {
                Error::BadEntry { reason, .. } => Error::BadEntry {
                    path: tree.path_of(id),
                    reason,
                },
                e => e,
            })
    }

    fn entry_inode(
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
                // A block map addresses 12 + p + p² + p³ blocks, an extent tree 2^32: a
                // larger file (a sparse one from a tarball or an ext4 image) cannot be
                // mapped, and e2fsck and the kernel refuse such a size.
                let addressable = if self.shape.level.is_ext4() {
                    extent::LOGICAL_LIMIT
                } else {
                    crate::blockmap::max_blocks(self.shape.block_size)
                };
                let max = addressable * self.bs();
                if *size > max {
                    return Err(Error::BadEntry {
                        path: String::new(),
                        reason: format!(
                            "{size} bytes is more than a file on {} with {}-byte blocks can \
                             hold ({max} bytes); use ext4 or 4096-byte blocks",
                            self.shape.level.name(),
                            self.shape.block_size
                        ),
                    });
                }
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
                inode::encode_dev(&mut rec.i_block, *major, *minor);
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
    pub(crate) fn copy_host_files(
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
    pub(crate) fn copy_file(
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
    pub(crate) fn write_chunk(
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
    pub(crate) fn metadata(
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
            // With metadata_csum a group that holds nothing but its own metadata is
            // left uninitialised, as mke2fs leaves it: the kernel and e2fsck compute its
            // bitmaps (the superblock copy and descriptor table, the bitmaps and the
            // inode table, all inside the group in this layout), so nothing is written
            // in it. An image's unused groups then take no room: in a VHDX each written
            // group cost a 1 MiB block (a 1 TiB disk was an 8 GiB file). Group 0 and the
            // last group are always written out, as mke2fs does.
            let uninit_ok = self.csum.is_some() && gi != 0 && gi + 1 != g.groups.len();
            let own_metadata = if grp.has_super {
                1 + u64::from(g.gdt_blocks)
            } else {
                0
            } + 2
                + u64::from(g.itable_blocks);
            let block_uninit = uninit_ok && bits - free_blocks == own_metadata;
            let inode_uninit = uninit_ok && used_here == 0;
            if !block_uninit {
                self.out.write_at(grp.block_bitmap * bs, &bbm)?;
            }
            if !inode_uninit {
                self.out.write_at(grp.inode_bitmap * bs, &ibm)?;
            }
            let mut flags = 0;
            if self.csum.is_some() {
                // The inode table is zeroed (unused inodes are holes); only
                // metadata_csum images say so, as mke2fs does.
                flags |= group_desc::EXT4_BG_INODE_ZEROED;
            }
            if block_uninit {
                flags |= group_desc::EXT4_BG_BLOCK_UNINIT;
            }
            if inode_uninit {
                flags |= group_desc::EXT4_BG_INODE_UNINIT;
            }
            let d = GroupDesc {
                block_bitmap: grp.block_bitmap,
                inode_bitmap: grp.inode_bitmap,
                inode_table: grp.inode_table,
                free_blocks: free_blocks as u32,
                free_inodes,
                used_dirs: used_dirs[gi],
                flags,
                block_bitmap_csum: bcs,
                inode_bitmap_csum: ics,
                itable_unused: if inode_uninit { ipg } else { 0 },
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
        r: &mut dyn FileBytes,
        size: u64,
        name: &dyn Fn() -> String,
    ) -> Result<Vec<Extent>, Error> {
        let bs = self.bs();
        let mut buf = std::mem::take(&mut self.buf);
        let chunk = buf.len() as u64;
        let mut extents = Vec::new();
        let mut pos = 0u64;
        let result = (|| {
            while pos < size {
                // Chunks with no data are skipped whole, to the chunk that holds the next
                // data: reading them would only find zeros, which stay holes. `pos` stays
                // a multiple of the chunk, so the blocks written (and their extents) are
                // the same as when every chunk is read.
                let next = r.next_data(pos).map_or(size, |n| n.min(size));
                let to = if next >= size {
                    size
                } else {
                    (next / chunk * chunk).max(pos)
                };
                if to > pos {
                    r.skip(to - pos).map_err(|e| Error::Read {
                        path: PathBuf::from(name()),
                        source: e,
                    })?;
                    self.done += to - pos;
                    pos = to;
                    continue;
                }
                let want = (size - pos).min(chunk) as usize;
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
