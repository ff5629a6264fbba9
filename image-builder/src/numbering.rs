//! Inode numbers and link counts: the tree walked breadth-first from the root in byte
//! order of names, so the same tree always gets the same numbers (and a directory's
//! children sit next to each other in the inode table).
//!
//! Inodes 1 to 10 are reserved (2 is the root, 8 the journal); 11 is lost+found, the
//! source's own if it has one at the top, else one made here; the tree follows from 12.

use std::collections::VecDeque;

use crate::tree::{Kind, NodeId, ROOT, Tree};

/// The first inode number not reserved by the filesystem.
pub(crate) const FIRST_INO: u32 = 11;

/// Inode numbers and link counts for every reachable node.
pub(crate) struct Numbering {
    /// Inode number of each node (0: not reachable, not written).
    pub ino_of: Vec<u32>,
    /// Nodes in inode order from 11 (`None` at 11 when lost+found is made here).
    pub order: Vec<Option<NodeId>>,
    /// Names each node has (for directories: 2 + subdirectories).
    pub links: Vec<u32>,
    /// Each directory's parent directory (the root is its own parent).
    pub parent: Vec<NodeId>,
}

impl Numbering {
    pub(crate) fn new(tree: &Tree) -> Numbering {
        let n = tree.nodes.len();
        let mut ino_of = vec![0u32; n];
        let mut links = vec![0u32; n];
        let mut parent = vec![ROOT; n];
        let mut order: Vec<Option<NodeId>> = vec![None];
        ino_of[ROOT] = 2;
        links[ROOT] = 2;
        let source_lf = tree
            .child(ROOT, b"lost+found")
            .filter(|&id| matches!(tree.nodes[id].kind, Kind::Dir(_)));
        if let Some(lf) = source_lf {
            ino_of[lf] = FIRST_INO;
            order[0] = Some(lf);
        }
        let mut next = FIRST_INO + 1;
        let mut queue = VecDeque::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            let Kind::Dir(entries) = &tree.nodes[dir].kind else {
                continue;
            };
            for &child in entries.values() {
                let is_dir = matches!(tree.nodes[child].kind, Kind::Dir(_));
                if is_dir {
                    // A subdirectory's ".." names its parent; its own "." names itself.
                    links[dir] += 1;
                    links[child] += 2;
                } else {
                    links[child] += 1;
                }
                if ino_of[child] == 0 {
                    ino_of[child] = next;
                    next += 1;
                    order.push(Some(child));
                }
                // Directories have one name each, so each is queued once.
                if is_dir {
                    parent[child] = dir;
                    queue.push_back(child);
                }
            }
        }
        if source_lf.is_none() {
            // The root's lost+found made here is a subdirectory too.
            links[ROOT] += 1;
        }
        Numbering {
            ino_of,
            order,
            links,
            parent,
        }
    }

    /// The highest inode number in use.
    pub(crate) fn last_ino(&self) -> u32 {
        FIRST_INO + self.order.len() as u32 - 1
    }
}
