//! Driver bundle: the part of colinux-setup that checks a kit and installs the coLinux
//! ring-0 driver.
//!
//! - [`manifest`]: `kit.toml`, the list of a kit's files with role, size, SHA-256, host,
//!   architecture and pinned signer; [`manifest::verify_file`] checks one file by
//!   streaming it. The installer verifies every file it uses before it changes anything.
//! - [`authenticode`]: Authenticode signatures of PE files (drivers, executables)
//!   checked without Windows APIs: file digest, signed attributes, signature, chain to
//!   a pinned certificate or CA, usage and validity; each refusal names its check.
//! - [`host`]: the ring-0 driver installed, removed and reported on behind one trait,
//!   [`host::DriverHost`]: Windows (Service Control Manager), Linux (the `colinux`
//!   module) and a recording host for `--dry-run` and tests.
//! - [`scm`]: the one Service Control Manager wrapper (`scm::windows`, over
//!   `windows-sys`) and its one error, [`scm::ScmError`], for the driver's host and the
//!   installer's machine service alike; the recording hosts' state file.
//! - `wintrust` (Windows only): `WinVerifyTrust`'s verdict, reported beside ours.
//!
//! The crate never prints; the `colinux-setup` binary renders its results.
#![deny(missing_docs)]

pub mod authenticode;
pub mod host;
pub mod manifest;
pub mod scm;
#[cfg(windows)]
pub mod wintrust;
