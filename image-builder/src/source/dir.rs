//! A host folder as a source: every entry with its metadata, read with `lstat`, its
//! extended attributes with `llistxattr`/`lgetxattr`, hard links found by (device,
//! inode), and sparse files mapped with `SEEK_DATA`/`SEEK_HOLE` so holes stay holes.
//!
//! Entries are visited in byte order of their names, so the same folder always gives the
//! same tree. Sockets cannot be stored meaningfully in an image and are skipped with a
//! warning, as mke2fs -d does.
//!
//! # Platform specific behavior
//!
//! Unix hosts only. On Windows a folder has no Unix owners, modes or devices; kits ship
//! their trees as tarballs there, and this source reports that it is not available.

#[cfg(unix)]
use std::collections::HashMap;
use std::fs::Metadata;
use std::path::Path;

use crate::error::Error;
use crate::source::Warn;
#[cfg(unix)]
use crate::tree::{Meta, NodeId, ROOT};
use crate::tree::{Timestamp, Tree};

#[cfg(unix)]
use std::os::unix::fs::MetadataExt;

/// Reads the folder `root` into `tree`, layering it over what is there.
#[cfg(unix)]
pub(crate) fn add_dir(tree: &mut Tree, root: &Path, warn: Warn<'_>) -> Result<(), Error> {
    let md = std::fs::symlink_metadata(root).map_err(|e| Error::Read {
        path: root.to_owned(),
        source: e,
    })?;
    if !md.is_dir() {
        return Err(Error::Read {
            path: root.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"),
        });
    }
    // The folder's own metadata becomes the root directory's.
    tree.nodes[ROOT].meta = meta_of(root, &md)?;
    let mut walk = Walk {
        tree,
        links: HashMap::new(),
        warn,
    };
    walk.dir(root, ROOT, "")
}

#[cfg(not(unix))]
pub(crate) fn add_dir(_tree: &mut Tree, root: &Path, _warn: Warn<'_>) -> Result<(), Error> {
    Err(Error::BadArgument(format!(
        "'{}': folders can be read only on Unix hosts (they carry no Unix owners, modes or devices here); give a tarball instead",
        root.display()
    )))
}

#[cfg(unix)]
struct Walk<'t, 'w> {
    tree: &'t mut Tree,
    /// (st_dev, st_ino) of multiply-linked entries already added.
    links: HashMap<(u64, u64), NodeId>,
    warn: Warn<'w>,
}

#[cfg(unix)]
impl Walk<'_, '_> {
    fn dir(&mut self, host: &Path, node: NodeId, image_path: &str) -> Result<(), Error> {
        use std::os::unix::ffi::OsStrExt;
        let read_err = |e| Error::Read {
            path: host.to_owned(),
            source: e,
        };
        let mut entries: Vec<_> = std::fs::read_dir(host)
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        entries.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
        for entry in entries {
            let name = entry.file_name();
            let name = name.as_bytes();
            let path = entry.path();
            let ipath = format!("{image_path}/{}", String::from_utf8_lossy(name));
            let md = std::fs::symlink_metadata(&path).map_err(|e| Error::Read {
                path: path.clone(),
                source: e,
            })?;
            let ft = md.file_type();
            if !ft.is_dir()
                && md.nlink() > 1
                && let Some(&existing) = self.links.get(&(md.dev(), md.ino()))
            {
                self.tree.link(node, name, existing, &ipath)?;
                continue;
            }
            let Some(kind) = kind_of(&path, &md, &ipath, self.warn)? else {
                continue;
            };
            let meta = meta_of(&path, &md)?;
            let id = self.tree.add(crate::tree::Node { meta, kind });
            let id = self.tree.link(node, name, id, &ipath)?;
            if ft.is_dir() {
                self.dir(&path, id, &ipath)?;
            } else if md.nlink() > 1 {
                self.links.insert((md.dev(), md.ino()), id);
            }
        }
        Ok(())
    }
}

/// The node kind of a host entry; `None` for entries that are skipped (sockets).
#[cfg(unix)]
fn kind_of(
    path: &Path,
    md: &Metadata,
    ipath: &str,
    warn: Warn<'_>,
) -> Result<Option<crate::tree::Kind>, Error> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;

    use crate::tree::{FileData, Kind};

    let ft = md.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir(Default::default())
    } else if ft.is_file() {
        let size = md.len();
        let data = if size == 0 {
            FileData::Empty
        } else {
            // Fewer allocated bytes than the length means the host keeps holes: map them
            // now so the writer reads only data.
            let sparse = md.blocks().saturating_mul(512) < size;
            let ranges = if sparse {
                Some(data_ranges(path, size)?)
            } else {
                None
            };
            FileData::Host {
                path: path.to_owned(),
                ranges,
            }
        };
        Kind::File { data, size }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| Error::Read {
            path: path.to_owned(),
            source: e,
        })?;
        Kind::Symlink(target.as_os_str().as_bytes().to_vec())
    } else if ft.is_char_device() || ft.is_block_device() {
        let rdev = md.rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        if ft.is_char_device() {
            Kind::CharDev { major, minor }
        } else {
            Kind::BlockDev { major, minor }
        }
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        warn(format!(
            "{ipath}: skipped: sockets are not stored in images (they are made by the program that listens on them)"
        ));
        return Ok(None);
    };
    Ok(Some(kind))
}

/// The byte ranges of a sparse host file that hold data (`SEEK_DATA`/`SEEK_HOLE`).
#[cfg(unix)]
fn data_ranges(path: &Path, size: u64) -> Result<Vec<(u64, u64)>, Error> {
    use rustix::fs::SeekFrom;
    let err = |e: std::io::Error| Error::Read {
        path: path.to_owned(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut ranges = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match rustix::fs::seek(&file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            // No SEEK_DATA on this filesystem: the whole file is data.
            Err(rustix::io::Errno::INVAL) => return Ok(vec![(0, size)]),
            Err(e) => return Err(err(e.into())),
        };
        let end = rustix::fs::seek(&file, SeekFrom::Hole(start))
            .map_err(|e| err(e.into()))?
            .min(size);
        if end > start {
            ranges.push((start, end));
        }
        pos = end.max(start + 1);
    }
    Ok(ranges)
}

/// Mode bits, owner, time and xattrs of a host entry.
#[cfg(unix)]
fn meta_of(path: &Path, md: &Metadata) -> Result<Meta, Error> {
    let (uid, gid) = owner_of(md);
    Ok(Meta {
        perm: perm_of(md),
        uid,
        gid,
        mtime: mtime_of(md),
        xattrs: xattrs_of(path)?,
    })
}

/// Permission bits (0o7777) of a host entry.
pub(crate) fn perm_of(md: &Metadata) -> u16 {
    #[cfg(unix)]
    {
        (md.mode() & 0o7777) as u16
    }
    #[cfg(not(unix))]
    {
        if md.permissions().readonly() {
            0o444
        } else {
            0o644
        }
    }
}

/// Owner and group of a host entry (root on hosts without Unix owners).
pub(crate) fn owner_of(md: &Metadata) -> (u32, u32) {
    #[cfg(unix)]
    {
        (md.uid(), md.gid())
    }
    #[cfg(not(unix))]
    {
        let _ = md;
        (0, 0)
    }
}

/// Modification time of a host entry.
pub(crate) fn mtime_of(md: &Metadata) -> Timestamp {
    #[cfg(unix)]
    {
        Timestamp {
            secs: md.mtime(),
            nsec: u32::try_from(md.mtime_nsec()).unwrap_or(0),
        }
    }
    #[cfg(not(unix))]
    {
        let d = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        Timestamp {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nsec: d.subsec_nanos(),
        }
    }
}

/// The extended attributes of a host entry, names sorted. ACLs (`system.posix_acl_*`)
/// are stored by ext4 in its own compact format and are not copied yet.
#[cfg(unix)]
fn xattrs_of(path: &Path) -> Result<Vec<crate::tree::Xattr>, Error> {
    let err = |e: rustix::io::Errno| Error::Read {
        path: path.to_owned(),
        source: e.into(),
    };
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            // The host filesystem has no xattrs at all.
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !(name.starts_with(b"user.")
            || name.starts_with(b"security.")
            || name.starts_with(b"trusted."))
        {
            continue;
        }
        let cname = std::ffi::CString::new(name).map_err(|_| err(rustix::io::Errno::INVAL))?;
        let mut value = vec![0u8; 256];
        let n = loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                // Removed since it was listed: nothing to copy.
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(err(e)),
            }
        };
        if n != usize::MAX {
            value.truncate(n);
            out.push(crate::tree::Xattr {
                name: name.to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
