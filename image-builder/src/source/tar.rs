//! Tar streams as a source: plain, gzip (multi-member), xz, zstd or bzip2, detected from
//! their first bytes, read from a file or standard input, and never extracted: each
//! regular file's bytes go straight from the decompressor to their final blocks in the
//! image ([`DataSink`]), and only metadata stays in memory.
//!
//! Formats: ustar, GNU (long names and link names, old-style sparse files) and pax
//! (long names, sizes, owners, `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*` attributes,
//! sub-second mtimes), read by [`TarReader`] in this module. Names are kept as bytes,
//! UTF-8 or not. The reader is our own because the `tar` crate splits pax records at
//! newlines, which loses binary attribute values (security.capability, ACL blobs) that
//! contain one; pax records are length-prefixed and are read that way here.
//!
//! Hostile archives: a leading `/` and `.` components are dropped (an absolute path means
//! the same place inside the image, as GNU tar extracts it); a `..` component is refused
//! with the entry and its offset, since no reading of it is safe. Nothing in an archive
//! can touch the host: entries only ever become inodes in the image. A hard link to a
//! name the archive has not given yet, a truncated or corrupt stream and a header
//! checksum error are errors naming the entry and its offset.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::extent::Extent;
use crate::source::Warn;
use crate::source::compressed::Stream;
use crate::source::tar_format::{EntryKind, FormatError, TarEntry, TarReader};
use crate::tree::{FileData, Kind, Meta, Node, NodeId, ROOT, Timestamp, Tree, Xattr};

/// Where a tar stream comes from.
#[derive(Clone, Debug)]
pub enum TarInput {
    /// A file (plain or compressed tar).
    File(PathBuf),
    /// Standard input (`--from -`).
    Stdin,
}

impl TarInput {
    /// The name errors use.
    pub(crate) fn name(&self) -> String {
        match self {
            TarInput::File(p) => p.display().to_string(),
            TarInput::Stdin => "-".to_owned(),
        }
    }
}

/// One file's bytes as a source hands them over: a reader that may know where its
/// holes are (a sparse tar entry's map, an image file's extents), so that the sink
/// skips them instead of reading zeros. Time then follows the data, not the size.
pub(crate) trait FileBytes: Read {
    /// The first byte at or after `pos` that may hold data; `None` when none does
    /// (the rest reads as zeros). A source that does not know its holes says `pos`.
    fn next_data(&mut self, _pos: u64) -> Option<u64> {
        Some(_pos)
    }

    /// Moves `n` bytes on, over bytes `next_data` said hold no data.
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        skip_by_reading(self, n)
    }
}

/// Skips `n` bytes of `r` by reading and dropping them.
pub(crate) fn skip_by_reading<R: Read + ?Sized>(r: &mut R, n: u64) -> std::io::Result<()> {
    let mut left = n;
    let mut buf = [0u8; 8192];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let got = r.read(&mut buf[..want])?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= got as u64;
    }
    Ok(())
}

/// Where file bytes go: the image writer, which places them and returns their extents.
pub(crate) trait DataSink {
    /// Copies `size` bytes from `r` into newly allocated blocks.
    fn stream(
        &mut self,
        r: &mut dyn FileBytes,
        size: u64,
        name: &dyn Fn() -> String,
    ) -> Result<Vec<Extent>, Error>;
    /// Gives back the blocks of file data that no name refers to any more.
    fn release(&mut self, extents: &[Extent]);
}

/// Reads the archive `input` into `tree`, layering it over what is there.
pub(crate) fn add_tar(
    tree: &mut Tree,
    input: &TarInput,
    sink: &mut dyn DataSink,
    warn: Warn<'_>,
) -> Result<(), Error> {
    let name = input.name();
    let mut reader = open(input)?;
    let fmt_err = |e: FormatError| Error::Archive {
        archive: name.clone(),
        entry: e.entry.map(|p| String::from_utf8_lossy(&p).into_owned()),
        offset: e.offset,
        reason: e.reason,
    };
    while let Some(e) = reader.next_entry().map_err(fmt_err)? {
        let offset = e.offset;
        let shown = String::from_utf8_lossy(&e.path).into_owned();
        let err = |reason: String| Error::Archive {
            archive: name.clone(),
            entry: Some(shown.clone()),
            offset,
            reason,
        };
        if e.pax_sparse {
            return Err(err("a pax sparse file (GNU.sparse.* records) is not supported; make the archive with --format=gnu for sparse files, or without --sparse".into()));
        }
        if e.path.is_empty() {
            return Err(err("the entry has an empty name; every entry must name a file (the archive is corrupt)".into()));
        }
        let comps = components(&e.path).map_err(err)?;
        let meta = meta_of(&e);
        if comps.is_empty() {
            // "./" itself: the archive's root directory gives the image root its metadata.
            if e.kind == EntryKind::Dir {
                tree.nodes[ROOT].meta = meta;
                continue;
            }
            return Err(err(
                "the name is the archive's root folder, but the entry is no folder (the archive is corrupt)"
                    .into(),
            ));
        }
        let (leaf, parents) = comps.split_last().expect("components is not empty");
        let image_path = crate::source::image_path(&comps);
        let parent_meta = Meta {
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: meta.mtime,
            xattrs: Vec::new(),
        };
        let parents: Vec<&[u8]> = parents.iter().map(Vec::as_slice).collect();
        let parent = tree.ensure_dir(&parents, &parent_meta)?;
        let kind = match e.kind {
            EntryKind::Dir => Kind::Dir(Default::default()),
            EntryKind::Regular => {
                let extents = if e.size == 0 {
                    Vec::new()
                } else {
                    let shown2 = shown.clone();
                    sink.stream(&mut reader.data(), e.size, &move || shown2.clone())
                        .map_err(|x| match x {
                            Error::Read { source, .. } => {
                                err(format!("{source}; the archive is truncated or corrupt"))
                            }
                            other => other,
                        })?
                };
                Kind::File {
                    data: FileData::Written { extents },
                    size: e.size,
                }
            }
            EntryKind::Symlink => {
                if e.link.is_empty() {
                    return Err(err("a symlink with no target".into()));
                }
                Kind::Symlink(e.link.clone())
            }
            EntryKind::HardLink => {
                let tcomps = components(&e.link).map_err(err)?;
                let Some(existing) = lookup(tree, &tcomps)
                    .filter(|&id| !matches!(tree.nodes[id].kind, Kind::Dir(_)))
                else {
                    return Err(err(format!(
                        "a hard link to '{}', which the archive has not given before it",
                        String::from_utf8_lossy(&e.link)
                    )));
                };
                link(tree, sink, parent, leaf, existing, &image_path)?;
                continue;
            }
            EntryKind::Char => Kind::CharDev {
                major: e.dev_major,
                minor: e.dev_minor,
            },
            EntryKind::Block => Kind::BlockDev {
                major: e.dev_major,
                minor: e.dev_minor,
            },
            EntryKind::Fifo => Kind::Fifo,
            EntryKind::Other(t) => {
                warn(format!(
                    "{name}: entry '{shown}' at byte {offset}: skipped: tar entry type '{}' is not a file",
                    char::from(t)
                ));
                continue;
            }
        };
        let id = tree.add(Node { meta, kind });
        link(tree, sink, parent, leaf, id, &image_path)?;
    }
    finish(reader, &name)
}

/// The archive `input` as a tar reader over its (decompressed) stream.
fn open(input: &TarInput) -> Result<TarReader<Stream<Box<dyn Read>>>, Error> {
    let raw: Box<dyn Read> = match input {
        TarInput::File(p) => Box::new(std::fs::File::open(p).map_err(|e| Error::Read {
            path: p.clone(),
            source: e,
        })?),
        TarInput::Stdin => Box::new(std::io::stdin().lock()),
    };
    let stream = Stream::open(raw).map_err(|e| Error::Read {
        path: Path::new(&input.name()).to_owned(),
        source: e,
    })?;
    Ok(TarReader::new(stream))
}

/// Reads the compressed stream of an ended archive to its end. The archive has ended; a
/// compressed stream has not yet: its checksums (gzip's CRC32 and length of every
/// member, xz's and zstd's frame checks, bzip2's block and stream CRCs) come at its end,
/// and nothing may follow it.
fn finish(reader: TarReader<Stream<Box<dyn Read>>>, name: &str) -> Result<(), Error> {
    let mut stream = reader.into_inner();
    if let Some(format) = stream.format() {
        stream.finish().map_err(|e| Error::CorruptStream {
            archive: name.to_owned(),
            format: format.name(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// What a tar archive holds, counted from its headers alone: enough to size an image
/// before building it (an installer shows and checks the size in its plan, before any
/// byte is written). Hard links count once; every count is an upper bound of what the
/// archive becomes, since later entries may replace earlier ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarContent {
    /// Archive entries (each becomes at most one inode).
    pub entries: u64,
    /// Bytes of regular-file data.
    pub file_bytes: u64,
    /// 4 KiB blocks the entries' data takes: each file's data rounded up, one block per
    /// folder and per long symlink.
    pub blocks_4k: u64,
    /// The bytes of the regular files asked for by path (`etc/passwd`; the last entry
    /// of a path wins, as in the image), each at most [`KEPT_LIMIT`] bytes.
    pub kept: Vec<(String, Vec<u8>)>,
}

/// The most bytes [`tar_content`] keeps of one file asked for; a larger one is an error.
pub const KEPT_LIMIT: u64 = 1 << 20;

/// Counts what the archive `input` holds ([`TarContent`]), reading it to its end as a
/// build does: the same formats, and the same errors for a damaged archive or stream.
/// The regular files at the paths in `keep` (relative, `/`-separated, as `etc/passwd`)
/// are kept: an installer merges its own lines into them.
pub fn tar_content(input: &TarInput, keep: &[&str]) -> Result<TarContent, Error> {
    let name = input.name();
    let mut reader = open(input)?;
    let mut c = TarContent::default();
    while let Some(e) = reader
        .next_entry()
        .map_err(|e: FormatError| Error::Archive {
            archive: name.clone(),
            entry: e.entry.map(|p| String::from_utf8_lossy(&p).into_owned()),
            offset: e.offset,
            reason: e.reason,
        })?
    {
        c.entries += 1;
        match e.kind {
            EntryKind::Regular => {
                c.file_bytes += e.size;
                c.blocks_4k += e.size.div_ceil(4096);
                let comps = components(&e.path).unwrap_or_default();
                let path = comps.join(&b'/');
                if let Some(want) = keep.iter().find(|k| k.as_bytes() == path.as_slice()) {
                    let err = |reason: String| Error::Archive {
                        archive: name.clone(),
                        entry: Some((*want).to_owned()),
                        offset: e.offset,
                        reason,
                    };
                    if e.size > KEPT_LIMIT {
                        return Err(err(format!(
                            "{} bytes; a file read from the archive may have {KEPT_LIMIT} at most",
                            e.size
                        )));
                    }
                    let mut bytes = Vec::new();
                    reader
                        .data()
                        .take(KEPT_LIMIT)
                        .read_to_end(&mut bytes)
                        .map_err(|io| err(io.to_string()))?;
                    c.kept.retain(|(k, _)| k != want);
                    c.kept.push(((*want).to_owned(), bytes));
                }
            }
            EntryKind::Dir => c.blocks_4k += 1,
            // A symlink of 60 bytes or more does not fit in its inode.
            EntryKind::Symlink if e.link.len() >= 60 => c.blocks_4k += 1,
            _ => {}
        }
    }
    finish(reader, &name)?;
    Ok(c)
}

/// Names `node` in `parent`, giving back the data of whatever the name replaced.
fn link(
    tree: &mut Tree,
    sink: &mut dyn DataSink,
    parent: NodeId,
    leaf: &[u8],
    node: NodeId,
    path: &str,
) -> Result<(), Error> {
    tree.link(parent, leaf, node, path)?;
    for extents in tree.take_released() {
        sink.release(&extents);
    }
    Ok(())
}

/// The node at `comps` below the root.
fn lookup(tree: &Tree, comps: &[Vec<u8>]) -> Option<NodeId> {
    comps.iter().try_fold(ROOT, |cur, c| tree.child(cur, c))
}

/// A path's components, with `/` and `.` dropped; `..` refused.
fn components(path: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(
                    "the path has a '..' component; entries must stay inside the image (refused)"
                        .into(),
                );
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// Mode bits, owner, time and attributes of an entry.
fn meta_of(e: &TarEntry) -> Meta {
    // Sorted by name; a later record for the same name wins, as a later field would.
    let xattrs: std::collections::BTreeMap<&[u8], &[u8]> = e
        .xattrs
        .iter()
        .filter(|(n, _)| {
            n.starts_with(b"user.") || n.starts_with(b"security.") || n.starts_with(b"trusted.")
        })
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let xattrs = xattrs
        .into_iter()
        .map(|(n, v)| Xattr {
            name: n.to_vec(),
            value: v.to_vec(),
        })
        .collect();
    Meta {
        perm: (e.mode & 0o7777) as u16,
        uid: u32::try_from(e.uid).unwrap_or(u32::MAX),
        gid: u32::try_from(e.gid).unwrap_or(u32::MAX),
        mtime: Timestamp {
            secs: e.mtime.0,
            nsec: e.mtime.1,
        },
        xattrs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(
            components(b"/etc//./passwd").ok(),
            Some(vec![b"etc".to_vec(), b"passwd".to_vec()])
        );
        assert!(components(b"a/../../etc/shadow").is_err());
        assert_eq!(components(b"./").ok(), Some(vec![]));
    }
}
