//! config.txt: the coLinux 0.7 machine description, read and written exactly as
//! colinux-daemon 0.7.9 reads it.
//!
//! The facts come from `research/colinux-spec.md` §1 (grammar, keys, limits, messages)
//! and §9 (the rules a writer must follow), which were checked against the daemon's own
//! tokenizer and key parser. The daemon's documentation is wrong in places (the first
//! occurrence of a single-valued key wins; `#` ends a value even inside quotes; `""` in a
//! comma field is a literal quote); this crate follows the code, not the documentation.
//!
//! - [`parse()`] / [`parse_sources`]: bytes to a [`Config`] plus [`Diagnostic`]s. An error
//!   is something colinux-daemon refuses (with its own message where the spec records
//!   one); a warning is something it accepts but that surprises a reader.
//! - [`write()`]: a [`Config`] to one canonical file, or a [`WriteError`] when the model
//!   cannot be represented. `parse(write(m)).config == m` whenever it succeeds.
//! - [`lint()`] (or [`Parsed::lint`] to get line numbers): traps the daemon accepts.
//!
//! Bytes and text: the tokenizer works on bytes, as the daemon does; the model holds
//! UTF-8 strings, and values that are not UTF-8 are reported as errors (see [`model`]).
//!
//! ```
//! let parsed = config_txt::parse(b"kernel=vmlinux\nmem=64\ncobd0=c:\\coLinux\\root.img\nroot=/dev/cobd0\n", "config.txt");
//! assert!(!parsed.has_errors());
//! assert_eq!(parsed.config.mem, Some(64));
//! let text = config_txt::write(&parsed.config).expect("representable");
//! assert_eq!(config_txt::parse(text.as_bytes(), "again").config, parsed.config);
//! ```
#![forbid(unsafe_code)]

mod cnum;
pub mod daemon;
pub mod diagnostic;
mod fields;
pub mod lint;
pub mod model;
pub mod parse;
pub mod slirp;
mod tokenizer;
pub mod write;

pub use diagnostic::{Diagnostic, Item, Location, Severity};
pub use lint::{LintOptions, lint};
pub use model::{
    Cobd, CobdMode, Cocon, ColorName, Config, ConsoleColor, Exec, Mac, MacError, Nic, Pci, PciKind,
    Scsi, ScsiType, Serial,
};
pub use parse::{Parsed, Source, parse, parse_sources, sort_diagnostics};
pub use slirp::{Protocol, Redirection, RedirectionError, Redirections, parse_redirections};
pub use write::{Notes, WriteError, write, write_with};
