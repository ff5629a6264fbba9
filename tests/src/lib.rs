//! Helpers for the end-to-end tests of `colinux-setup`.
//!
//! The tests judge disk images with real oracles, never with the writer's own reader:
//!
//! - [`oracle::e2fsck_clean`]: `e2fsck -fn` must exit 0 **and** print nothing but its pass
//!   lines and summary (some errors still exit 0).
//! - [`oracle::compare_tree`]: an independent reading of the image (crate `ext4-view` for
//!   the directory walk, bytes, modes, owners and symlinks; `debugfs` for inode numbers,
//!   times, devices and xattrs) compared with the source folder, entry by entry.
//! - [`guest::GuestRun`]: a real Linux kernel mounts the images and runs a shell script
//!   against them, on the monitor the host offers (User-mode Linux, else QEMU).
//!
//! Guests boot on the monitor the host offers ([`host_monitor::host_monitor`]: the
//! product's own probe decides, with the default kit's kernels), never on an assumed one;
//! where none works, the tests that boot fail with the probe's reasons.
//!
//! Test trees come from [`tree::gen_tree`] (the team's `gen-tree.py`, copied into
//! `tests/fixtures/`) and [`tree::every_kind_tree`] (one entry of every kind).
//!
//! Every test starts with [`require_tools`]: a missing tool is a failure that names the
//! Debian package to install, never a silent skip.

pub mod cpio;
pub mod guest;
pub mod host_monitor;
pub mod oracle;
pub mod tools;
pub mod tree;

mod debugfs;

pub use guest::{GuestOutput, GuestRun};
pub use host_monitor::{HostMonitor, Probe, host_monitor};
pub use oracle::{CompareOpts, compare_tree, e2fsck_clean, image_inodes};
pub use tools::{colinux_setup_bin, require_tools};
pub use tree::{EveryKind, TreeStats, every_kind_tree, gen_tree};
