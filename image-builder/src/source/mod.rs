//! Sources: what fills an image. Each source adds its entries into a [`Tree`], in the
//! order given, so later sources replace earlier entries.
//!
//! - [`dir`]: a host folder (Unix hosts: lstat, xattrs, hard links, devices);
//! - [`tar`]: a tar stream, plain or compressed ([`compressed`]: read to the end of
//!   the compressed stream, every check verified), whose file bytes are written as they
//!   arrive;
//! - [`image`]: an existing ext2/3/4 image, read without mounting it;
//! - [`add_file`]: one host file at a path inside the image (`--file SRC:DEST`).

pub(crate) mod compressed;
pub(crate) mod dir;
pub(crate) mod image;
pub(crate) mod tar;
pub(crate) mod tar_format;

use std::path::Path;

use crate::error::Error;
use crate::tree::{FileData, Kind, Meta, Node, Timestamp, Tree};

/// Something the sources report while they read (the writer turns it into an event).
pub(crate) type Warn<'a> = &'a mut dyn FnMut(String);

/// Adds (or replaces) the host file `src` as `dest` inside the image. Missing parent
/// directories are made with mode 0755, owned by root, dated like the file.
pub(crate) fn add_file(tree: &mut Tree, src: &Path, dest: &str) -> Result<(), Error> {
    let comps: Vec<&[u8]> = dest
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::as_bytes)
        .collect();
    if comps.iter().any(|c| *c == b"..") {
        return Err(Error::BadArgument(format!(
            "--file destination '{dest}' must not contain '..'"
        )));
    }
    let Some((name, parents)) = comps.split_last() else {
        return Err(Error::BadArgument(format!(
            "--file destination '{dest}' names no file"
        )));
    };
    let md = std::fs::metadata(src).map_err(|e| Error::Read {
        path: src.to_owned(),
        source: e,
    })?;
    if !md.is_file() {
        return Err(Error::BadArgument(format!(
            "--file source '{}' is not a regular file",
            src.display()
        )));
    }
    let mtime = dir::mtime_of(&md);
    let perm = dir::perm_of(&md);
    let (uid, gid) = dir::owner_of(&md);
    let parent_meta = Meta {
        perm: 0o755,
        uid: 0,
        gid: 0,
        mtime,
        xattrs: Vec::new(),
    };
    let parent = tree.ensure_dir(parents, &parent_meta)?;
    let size = md.len();
    let data = if size == 0 {
        FileData::Empty
    } else {
        FileData::Host {
            path: src.to_owned(),
            ranges: None,
        }
    };
    let node = tree.add(Node {
        meta: Meta {
            perm,
            uid,
            gid,
            mtime,
            xattrs: Vec::new(),
        },
        kind: Kind::File { data, size },
    });
    tree.link(parent, name, node, &image_path(&comps))?;
    Ok(())
}

/// The absolute path inside the image of these components, for messages.
pub(crate) fn image_path<C: AsRef<[u8]>>(comps: &[C]) -> String {
    let parts: Vec<_> = comps
        .iter()
        .map(|c| String::from_utf8_lossy(c.as_ref()))
        .collect();
    format!("/{}", parts.join("/"))
}

/// The metadata of a root directory when no folder gives one.
pub(crate) fn default_root(mtime: Timestamp) -> Meta {
    Meta {
        perm: 0o755,
        uid: 0,
        gid: 0,
        mtime,
        xattrs: Vec::new(),
    }
}
