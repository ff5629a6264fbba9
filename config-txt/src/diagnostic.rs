//! Diagnostics: what the parser and the linter report, and where.
//!
//! A diagnostic is an `error` when colinux-daemon would refuse the configuration (or when
//! this crate refuses something it cannot represent faithfully, which is said in the
//! message), and a `warning` when the daemon accepts it but does something a reader of the
//! file would not expect (colinux-spec.md §1 and §9). Locations are 1-based line and
//! column, the column counted in bytes, because the daemon's tokenizer works on bytes
//! (spec §1.3).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The daemon accepts it, but it probably does not do what the author meant.
    Warning,
    /// The daemon (or this crate, when it says so) refuses it.
    Error,
}

impl Severity {
    /// Whether this is [`Severity::Error`].
    pub fn is_error(self) -> bool {
        self == Severity::Error
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A place in one source: the file (or command-line argument) name, line and column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    /// The name the source was given when it was parsed.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in bytes.
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// The model item a diagnostic is about, so that a linter finding on a model can be
/// placed back on the line it came from (see [`crate::Parsed::lint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Item {
    /// `kernel=`.
    Kernel,
    /// `initrd=`.
    Initrd,
    /// `mem=`.
    Mem,
    /// `setcobd=`.
    Setcobd,
    /// `cobdN=` (or the alias that allocated it).
    Cobd(u8),
    /// The `hd*`/`sd*` alias line that names `cobdN`.
    Alias(u8),
    /// `scsiN=`.
    Scsi(u8),
    /// `ethN=`.
    Eth(u8),
    /// `cofsN=`.
    Cofs(u8),
    /// `pciN=`.
    Pci(u8),
    /// `ttysN=`.
    Ttys(u8),
    /// `execN=`.
    Exec(u8),
    /// `cocon=`.
    Cocon,
    /// `cursor=`.
    Cursor,
    /// `color=`.
    Color,
    /// The `root=` boot parameter.
    Root,
    /// The boot parameter at this position of [`crate::Config::boot_params`].
    BootParam(usize),
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where, when known (a linter finding on a bare model has no location).
    pub location: Option<Location>,
    /// The model item concerned, when there is one.
    pub item: Option<Item>,
    /// A short stable identifier of the kind of finding, e.g. `eth-mac` or `cofs-whole-drive`.
    pub code: &'static str,
    /// What is wrong; where colinux-daemon has its own message, it is quoted.
    pub message: String,
    /// How to fix it, when there is a fix.
    pub help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(
        severity: Severity,
        code: &'static str,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            location,
            item: None,
            code,
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn error(
        code: &'static str,
        location: Location,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Error, code, Some(location), message)
    }

    pub(crate) fn warning(
        code: &'static str,
        location: Location,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, code, Some(location), message)
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn with_item(mut self, item: Item) -> Self {
        self.item = Some(item);
        self
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `FILE:LINE:COL: error: message`, then an indented `help:` line when there is a fix.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        write!(f, "{}: {}", self.severity, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n    help: {help}")?;
        }
        Ok(())
    }
}

/// Shows bytes from a config file in a message: text as is (invalid UTF-8 replaced),
/// control bytes escaped, and long values shortened so one diagnostic stays one line.
pub(crate) fn show_bytes(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let cut = &bytes[..bytes.len().min(MAX)];
    let mut out = String::new();
    for c in String::from_utf8_lossy(cut).chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    if bytes.len() > MAX {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}
