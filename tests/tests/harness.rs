//! Self-tests of the end-to-end harness (one integration binary, modules below).
//!
//! Our own image writer is not ready, so `mke2fs -d` and `mkswap` stand in for it here:
//! the oracles must accept their images, and must reject images the tests corrupt on
//! purpose. Tests that run the product use `e2e_tests::colinux_setup_bin()`.

#[path = "harness/common.rs"]
mod common;
#[path = "harness/compare.rs"]
mod compare;
#[path = "harness/e2fsck.rs"]
mod e2fsck;
#[path = "harness/guest.rs"]
mod guest;
#[path = "harness/tree.rs"]
mod tree;
