//! Tar streams as a source: plain, gzip (multi-member), xz, zstd or bzip2, detected from
//! their first bytes, read from a file or standard input, and never extracted: each
//! regular file's bytes go straight from the decompressor to their final blocks in the
//! image ([`DataSink`]), and only metadata stays in memory.
//!
//! Formats: ustar, GNU (long names and link names, sparse files) and pax (long names,
//! `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*` attributes, sub-second mtimes), through the
//! `tar` crate's header parsing. Names are kept as bytes, UTF-8 or not.
//!
//! Hostile archives: a leading `/` and `.` components are dropped (an absolute path means
//! the same place inside the image, as GNU tar extracts it); a `..` component is refused
//! with the entry and its offset, since no reading of it is safe. Nothing in an archive
//! can touch the host: entries only ever become inodes in the image. A hard link to a
//! name the archive has not given yet, a truncated or corrupt stream and a header
//! checksum error are errors naming the entry and its offset.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::extent::Extent;
use crate::source::Warn;
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

/// Where file bytes go: the image writer, which places them and returns their extents.
pub(crate) trait DataSink {
    /// Copies `size` bytes from `r` into newly allocated blocks.
    fn stream(
        &mut self,
        r: &mut dyn Read,
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
    let raw: Box<dyn Read> = match input {
        TarInput::File(p) => Box::new(std::fs::File::open(p).map_err(|e| Error::Read {
            path: p.clone(),
            source: e,
        })?),
        TarInput::Stdin => Box::new(std::io::stdin().lock()),
    };
    let reader = decompress(raw, &name)?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| archive_err(&name, None, 0, &e))?;
    let mut last_offset = 0u64;
    let mut saw_any = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(&name, None, last_offset, &e))?;
        saw_any = true;
        let offset = entry.raw_header_position();
        last_offset = offset;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let err = |reason: String| Error::Archive {
            archive: name.clone(),
            entry: Some(shown.clone()),
            offset,
            reason,
        };
        let comps = components(&raw_path).map_err(err)?;
        let etype = entry.header().entry_type();
        if comps.is_empty() {
            // "./" itself: the archive's root directory gives the image root its metadata.
            if etype.is_dir() {
                tree.nodes[ROOT].meta = meta_of(&mut entry, &name, offset, &shown)?;
            }
            continue;
        }
        let (leaf, parents) = comps.split_last().expect("components is not empty");
        let meta = meta_of(&mut entry, &name, offset, &shown)?;
        let image_path = format!(
            "/{}",
            comps
                .iter()
                .map(|c| String::from_utf8_lossy(c))
                .collect::<Vec<_>>()
                .join("/")
        );
        let parent_meta = Meta {
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: meta.mtime,
            xattrs: Vec::new(),
        };
        let parents: Vec<&[u8]> = parents.iter().map(Vec::as_slice).collect();
        let parent = tree.ensure_dir(&parents, &parent_meta)?;
        let kind = match etype {
            tar::EntryType::Directory => Kind::Dir(Default::default()),
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                let extents = if size == 0 {
                    Vec::new()
                } else {
                    let shown = shown.clone();
                    sink.stream(&mut entry, size, &move || shown.clone()).map_err(|e| match e {
                        Error::Read { source, .. } => err(format!("the stream ends or breaks inside this file's data ({source}); the archive is truncated or corrupt")),
                        other => other,
                    })?
                };
                Kind::File {
                    data: FileData::Written { extents },
                    size,
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.is_empty() {
                    return Err(err("a symlink with no target".into()));
                }
                Kind::Symlink(target)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let tcomps = components(&target).map_err(err)?;
                let Some(existing) = lookup(tree, &tcomps)
                    .filter(|&id| !matches!(tree.nodes[id].kind, Kind::Dir(_)))
                else {
                    return Err(err(format!(
                        "a hard link to '{}', which the archive has not given before it",
                        String::from_utf8_lossy(&target)
                    )));
                };
                link(tree, sink, parent, leaf, existing, &image_path)?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                if etype == tar::EntryType::Char {
                    Kind::CharDev { major, minor }
                } else {
                    Kind::BlockDev { major, minor }
                }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            other => {
                warn(format!(
                    "{name}: entry '{shown}' at byte {offset}: skipped: tar entry type {:?} is not a file",
                    other.as_byte() as char
                ));
                continue;
            }
        };
        let id = tree.add(Node { meta, kind });
        link(tree, sink, parent, leaf, id, &image_path)?;
    }
    if !saw_any {
        return Err(Error::Archive {
            archive: name,
            entry: None,
            offset: 0,
            reason: "no tar entries: the file is empty or not a tar archive".into(),
        });
    }
    Ok(())
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

/// Mode bits, owner, time and attributes from an entry's header and pax records.
fn meta_of<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    offset: u64,
    shown: &str,
) -> Result<Meta, Error> {
    let h = entry.header();
    let bad = |what: &str, e: std::io::Error| Error::Archive {
        archive: name.to_owned(),
        entry: Some(shown.to_owned()),
        offset,
        reason: format!("bad {what} field: {e}"),
    };
    let perm = (h.mode().map_err(|e| bad("mode", e))? & 0o7777) as u16;
    let uid = u32::try_from(h.uid().map_err(|e| bad("uid", e))?).unwrap_or(u32::MAX);
    let gid = u32::try_from(h.gid().map_err(|e| bad("gid", e))?).unwrap_or(u32::MAX);
    let mut mtime = Timestamp {
        secs: i64::try_from(h.mtime().map_err(|e| bad("mtime", e))?).unwrap_or(i64::MAX),
        nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Ok(Some(pax)) = entry.pax_extensions() {
        for ext in pax.flatten() {
            let key = ext.key_bytes();
            if let Some(attr) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push(Xattr {
                    name: attr.to_vec(),
                    value: ext.value_bytes().to_vec(),
                });
            } else if let Some(attr) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                // libarchive percent-encodes the name and base64-encodes the value.
                if let (Some(n), Some(v)) = (percent_decode(attr), base64_decode(ext.value_bytes()))
                {
                    xattrs.push(Xattr { name: n, value: v });
                }
            } else if key.starts_with(b"GNU.sparse.") {
                // pax sparse files (formats 0.1 to 1.0) carry a map the tar crate does not
                // read: their bytes would come out wrong, so refuse them.
                return Err(Error::Archive {
                    archive: name.to_owned(),
                    entry: Some(shown.to_owned()),
                    offset,
                    reason: "a pax sparse file (GNU.sparse.* records) is not supported; make the archive with --format=gnu for sparse files, or without --sparse".into(),
                });
            } else if key == b"mtime" {
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    mtime = t;
                }
            }
        }
    }
    xattrs.retain(|x| {
        x.name.starts_with(b"user.")
            || x.name.starts_with(b"security.")
            || x.name.starts_with(b"trusted.")
    });
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    xattrs.dedup_by(|a, b| a.name == b.name);
    Ok(Meta {
        perm,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// A pax time, `SECONDS[.FRACTION]`.
fn parse_pax_time(v: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    // A negative time with a fraction counts back from the whole second below.
    if secs < 0 && nsec > 0 {
        Some(Timestamp {
            secs: secs - 1,
            nsec: 1_000_000_000 - nsec,
        })
    } else {
        Some(Timestamp { secs, nsec })
    }
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s: Vec<u8> = s
        .iter()
        .copied()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Wraps `raw` in the decompressor its first bytes call for.
fn decompress(raw: Box<dyn Read>, name: &str) -> Result<Box<dyn Read>, Error> {
    let mut buf = BufReader::with_capacity(1 << 20, raw);
    let head = buf
        .fill_buf()
        .map_err(|e| Error::Read {
            path: Path::new(name).to_owned(),
            source: e,
        })?
        .to_vec();
    let wrap = |e: std::io::Error| Error::Archive {
        archive: name.to_owned(),
        entry: None,
        offset: 0,
        reason: format!("cannot start decompressing: {e}"),
    };
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf).map_err(wrap)?)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(buf))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(buf))
    } else {
        Box::new(buf)
    })
}

/// An archive error from the `tar` crate, with where it happened.
fn archive_err(name: &str, entry: Option<String>, offset: u64, e: &std::io::Error) -> Error {
    Error::Archive {
        archive: name.to_owned(),
        entry,
        offset,
        reason: format!("{e}; the archive is truncated, corrupt or not a tar stream"),
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

    #[test]
    fn pax_times_and_encodings() {
        assert_eq!(
            parse_pax_time(b"1600000000.123456789"),
            Some(Timestamp {
                secs: 1_600_000_000,
                nsec: 123_456_789
            })
        );
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(Timestamp {
                secs: 12,
                nsec: 500_000_000
            })
        );
        assert_eq!(base64_decode(b"aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(percent_decode(b"user.a%3Db"), Some(b"user.a=b".to_vec()));
    }
}
