//! The tree to be written: every entry's metadata, kept in memory, with file contents
//! left where they are (a host path) until the writer streams them into place.
//!
//! Sources (folders now, tar streams later) are layered into one [`Tree`] in order: a
//! later entry replaces an earlier one at the same path, and a directory over a
//! directory merges, taking the later one's metadata. Hard links are one node with
//! several names. Memory is about 100 bytes per entry plus names and xattrs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::Error;

/// Index of a node in [`Tree::nodes`].
pub(crate) type NodeId = usize;

/// The root directory's node.
pub(crate) const ROOT: NodeId = 0;

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    /// Seconds (may be negative).
    pub secs: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

/// One extended attribute, with its full name (`user.comment`, `security.selinux`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Metadata every entry has.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    /// Permission bits, including setuid, setgid and sticky (0o7777).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    pub xattrs: Vec<Xattr>,
}

/// Where a regular file's bytes come from.
#[derive(Clone, Debug)]
pub(crate) enum FileData {
    /// No bytes (an empty file).
    Empty,
    /// Bytes already written to the image (streamed from a tar archive).
    Written { extents: Vec<crate::extent::Extent> },
    /// A host file, read when the writer reaches it.
    Host {
        path: PathBuf,
        /// Byte ranges that hold data, for files the host stores sparse; `None` means
        /// the whole file. Zero blocks inside ranges still become holes.
        ranges: Option<Vec<(u64, u64)>>,
    },
}

/// What an entry is.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Dir(BTreeMap<Vec<u8>, NodeId>),
    File { data: FileData, size: u64 },
    Symlink(Vec<u8>),
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
    Fifo,
}

/// One entry: one inode in the image.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub meta: Meta,
    pub kind: Kind,
}

/// The whole tree, root first.
#[derive(Debug)]
pub struct Tree {
    pub(crate) nodes: Vec<Node>,
    /// How many names each node has (to know when a replaced file's data is free).
    names: Vec<u32>,
    /// Written data that lost its last name, for the writer to free.
    released: Vec<Vec<crate::extent::Extent>>,
}

impl Tree {
    /// A tree with only a root directory.
    pub(crate) fn new(root: Meta) -> Tree {
        Tree {
            nodes: vec![Node {
                meta: root,
                kind: Kind::Dir(BTreeMap::new()),
            }],
            names: vec![1],
            released: Vec::new(),
        }
    }

    /// Adds a node and returns its id; it has no name until [`Tree::link`].
    pub(crate) fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.names.push(0);
        self.nodes.len() - 1
    }

    /// The child named `name` of directory `dir`, if any.
    pub(crate) fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &self.nodes[dir].kind {
            Kind::Dir(entries) => entries.get(name).copied(),
            _ => None,
        }
    }

    /// Gives `node` the name `name` in directory `dir`, replacing what was there.
    /// A directory placed over a directory merges into it (see the module doc).
    /// Returns the node that now holds the name.
    pub(crate) fn link(
        &mut self,
        dir: NodeId,
        name: &[u8],
        node: NodeId,
        path: &str,
    ) -> Result<NodeId, Error> {
        check_name(name, path)?;
        if let Some(old) = self.child(dir, name) {
            let both_dirs = matches!(self.nodes[old].kind, Kind::Dir(_))
                && matches!(self.nodes[node].kind, Kind::Dir(_));
            if both_dirs && old != node {
                self.nodes[old].meta = self.nodes[node].meta.clone();
                return Ok(old);
            }
        }
        match &mut self.nodes[dir].kind {
            Kind::Dir(entries) => {
                let old = entries.insert(name.to_vec(), node);
                self.names[node] += 1;
                if let Some(old) = old.filter(|&o| o != node) {
                    self.names[old] -= 1;
                    self.collect_orphans(old);
                } else if old == Some(node) {
                    self.names[node] -= 1;
                }
                Ok(node)
            }
            _ => Err(Error::BadEntry {
                path: path.to_owned(),
                reason: "its parent is not a directory".into(),
            }),
        }
    }

    /// Removes the name `name` from directory `dir`.
    pub(crate) fn unlink(&mut self, dir: NodeId, name: &[u8]) {
        let old = match &mut self.nodes[dir].kind {
            Kind::Dir(entries) => entries.remove(name),
            _ => None,
        };
        if let Some(old) = old {
            self.names[old] -= 1;
            self.collect_orphans(old);
        }
    }

    /// Written data whose last name was replaced or removed since the last call.
    pub(crate) fn take_released(&mut self) -> Vec<Vec<crate::extent::Extent>> {
        std::mem::take(&mut self.released)
    }

    /// When `id` has no name left: its written data, and its children's, recursively.
    fn collect_orphans(&mut self, id: NodeId) {
        if self.names[id] > 0 {
            return;
        }
        match &mut self.nodes[id].kind {
            Kind::File {
                data: FileData::Written { extents },
                ..
            } => {
                let e = std::mem::take(extents);
                self.released.push(e);
            }
            Kind::Dir(entries) => {
                let children: Vec<NodeId> = std::mem::take(entries).into_values().collect();
                for c in children {
                    self.names[c] -= 1;
                    self.collect_orphans(c);
                }
            }
            _ => {}
        }
    }

    /// The directory at `path` (components below the root), created with `meta` where
    /// missing. A non-directory in the way is replaced by a directory, as a later
    /// source would replace it.
    pub(crate) fn ensure_dir(
        &mut self,
        components: &[&[u8]],
        meta: &Meta,
    ) -> Result<NodeId, Error> {
        let mut cur = ROOT;
        let mut path = String::new();
        for comp in components {
            path.push('/');
            path.push_str(&String::from_utf8_lossy(comp));
            cur = match self.child(cur, comp) {
                Some(id) if matches!(self.nodes[id].kind, Kind::Dir(_)) => id,
                _ => {
                    let id = self.add(Node {
                        meta: meta.clone(),
                        kind: Kind::Dir(BTreeMap::new()),
                    });
                    self.link(cur, comp, id, &path)?
                }
            };
        }
        Ok(cur)
    }

    /// The path of `id` inside the image (the first name found), for messages: a
    /// search of the whole tree, so for errors only.
    pub(crate) fn path_of(&self, id: NodeId) -> String {
        if id == ROOT {
            return "/".to_owned();
        }
        let mut stack: Vec<(NodeId, String)> = vec![(ROOT, String::new())];
        while let Some((dir, path)) = stack.pop() {
            let Kind::Dir(entries) = &self.nodes[dir].kind else {
                continue;
            };
            for (name, &child) in entries {
                let p = format!("{path}/{}", String::from_utf8_lossy(name));
                if child == id {
                    return p;
                }
                if matches!(self.nodes[child].kind, Kind::Dir(_)) {
                    stack.push((child, p));
                }
            }
        }
        // Not reachable by name: the writer only writes named nodes.
        format!("(unnamed entry {id})")
    }

    /// Sets every entry's owner and group (`--owner UID:GID`).
    pub(crate) fn map_owner(&mut self, uid: u32, gid: u32) {
        for n in &mut self.nodes {
            n.meta.uid = uid;
            n.meta.gid = gid;
        }
    }

    /// Clamps every time after `limit` to `limit` (SOURCE_DATE_EPOCH).
    pub(crate) fn clamp_times(&mut self, limit: i64) {
        for n in &mut self.nodes {
            if n.meta.mtime.secs > limit || (n.meta.mtime.secs == limit && n.meta.mtime.nsec > 0) {
                n.meta.mtime = Timestamp {
                    secs: limit,
                    nsec: 0,
                };
            }
        }
    }

    /// The newest mtime in the tree, or `None` for an empty tree.
    pub(crate) fn newest_mtime(&self) -> Option<Timestamp> {
        self.nodes.iter().map(|n| n.meta.mtime).max()
    }
}

/// Refuses names ext2/3/4 cannot hold: empty, `.`/`..`, with `/` or NUL, over 255 bytes.
pub(crate) fn check_name(name: &[u8], path: &str) -> Result<(), Error> {
    if name.len() > 255 {
        return Err(Error::NameTooLong {
            path: path.to_owned(),
            len: name.len(),
        });
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::BadEntry {
            path: path.to_owned(),
            reason: "not a valid file name".into(),
        });
    }
    Ok(())
}
