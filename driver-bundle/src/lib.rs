//! Driver bundle: the part of colinux-setup that checks a kit and installs the coLinux
//! ring-0 driver.
//!
//! This crate is a placeholder in the workspace laid out by ../shared/design.md: it
//! compiles and exports nothing yet. The work is tracked as the "Driver bundle" issue:
//! kit manifests (`kit.toml`: file, role, size, sha256, signer), Authenticode checks
//! against a pinned signer, and driver install/remove/status behind one host trait
//! (Windows service control, Linux module loading, a recording host for tests).
#![forbid(unsafe_code)]
