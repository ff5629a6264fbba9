//! TAP setup: one host-only network adapter for a coLinux (or User-mode Linux) guest,
//! on a private /24 that collides with no route or address of the host.
//!
//! This crate is a placeholder in the workspace laid out by ../shared/design.md: it
//! compiles and exports nothing yet. The work is tracked as the "TAP setup" issue:
//! free-subnet choice, persistent Linux TAP devices over /dev/net/tun and netlink,
//! TAP-Windows adapters through SetupAPI, behind one host trait with a recording host.
#![forbid(unsafe_code)]
