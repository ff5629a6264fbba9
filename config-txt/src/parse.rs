//! From tokens to the model, the way colinux-daemon's `config.c` does it
//! (colinux-spec.md §1.4-§1.7, §1.10, §9.5-§9.19).
//!
//! - Keys match by case-sensitive **prefix** on tokens that contain `=`; each lookup
//!   consumes the **first** match, so for single-valued keys the first occurrence wins
//!   and later duplicates go to the guest kernel command line.
//! - Keys are looked up in the daemon's fixed order: `kernel`, `mem`, `scsiN`, `setcobd`,
//!   `cobdN`, `sd*`, `hd*`, `ethN`, `cofsN`, `pciN`, `initrd`, `ttysN`, `execN`, `color`,
//!   `cocon`, `cursor`. Order matters only for look-alike prefixes (`memmap=` before
//!   `mem=` is fatal, after it harmless), and is kept for that reason.
//! - What is left becomes the guest command line, joined by single spaces and cut at
//!   255 bytes.
//!
//! Where the daemon fails, this module reports an error, with the daemon's own message
//! when the spec records one (`cmdline: Index not allowed for 'mem'`, `error parsing MAC
//! address: X`, ...). The daemon stops at its first error; this parser goes on, so that
//! one run reports every problem, and the model it returns then holds what could be read
//! (items in error are left out). Where the spec gives no wording, the message is ours
//! and does not pretend to be the daemon's.
//!
//! Choices where the spec is silent (all on the safe side: refuse rather than guess):
//! - an empty index on an indexed key (`pci=noacpi`) is an error (the daemon reads an
//!   uninitialised buffer, "in practice an error");
//! - `mem=`, `cocon=` and `color=` values longer than their buffers (18, 14, 30 bytes)
//!   are errors;
//! - `:cobdN` alias values must be `:cobd` followed by digits only;
//! - a value consisting of one `"`, and an empty path after quote removal, are errors;
//! - `pciN` function and unit must be plain digits; the messages for `pciN` are ours;
//! - values that are not UTF-8 are errors (see [`crate::model`]);
//! - a cut boot line is cut at a UTF-8 character boundary at or before byte 255.

use std::collections::BTreeMap;

use crate::cnum::{strtol0, strtol10, strtoul10};
use crate::diagnostic::{Diagnostic, Item, Location, Severity, show_bytes};
use crate::fields::{self, Field};
use crate::lint::{LintOptions, lint};
use crate::model::*;
use crate::tokenizer::{Span, tokenize};

/// One input of colinux-daemon, in command-line order.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The contents of an `@file`; `name` is used in diagnostics.
    File {
        /// The file name to report.
        name: &'a str,
        /// Its bytes.
        text: &'a [u8],
    },
    /// One command-line argument: a single token, never split (spec §1.3). Daemon
    /// switches (`-d`, `-t fltk`, ...) are not configuration and must not be passed here.
    Arg(&'a [u8]),
}

/// The result of reading config.txt sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The model. When [`Parsed::has_errors`] is true it holds only what could be read.
    pub config: Config,
    /// Errors and warnings in source order (file, line, column).
    pub diagnostics: Vec<Diagnostic>,
    spans: BTreeMap<Item, Location>,
}

impl Parsed {
    /// Whether colinux-daemon (or this crate, where it says so) would refuse the input.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Where a model item was read from.
    pub fn location(&self, item: Item) -> Option<&Location> {
        self.spans.get(&item)
    }

    /// Lints the model and places each finding on the line its item came from.
    pub fn lint(&self, options: &LintOptions) -> Vec<Diagnostic> {
        let mut out = lint(&self.config, options);
        for d in &mut out {
            if d.location.is_none()
                && let Some(item) = d.item
            {
                d.location = self.spans.get(&item).cloned();
            }
        }
        out
    }

    /// Parse diagnostics and lint findings together, sorted by place.
    pub fn check(&self, options: &LintOptions) -> Vec<Diagnostic> {
        let mut all = self.diagnostics.clone();
        all.extend(self.lint(options));
        sort_diagnostics(&mut all);
        all
    }
}

/// Sorts diagnostics by file, line and column (unplaced ones last), errors first on ties.
pub fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            (
                d.location.is_none(),
                d.location.as_ref().map(|l| (l.line, l.col)),
                std::cmp::Reverse(d.severity),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// Reads one config file, as `colinux-daemon @name` would.
pub fn parse(text: &[u8], name: &str) -> Parsed {
    parse_sources(&[Source::File { name, text }])
}

/// Reads several sources spliced in order into one token stream, as
/// `colinux-daemon @a.conf @b.conf mem=64` would (spec §1.2, §9.19).
pub fn parse_sources(sources: &[Source<'_>]) -> Parsed {
    let mut diags = Vec::new();
    // Tokens are spans of the sources, which are held once, by the caller.
    let mut toks = Vec::new();
    let mut first: Option<Location> = None;
    for (n, source) in sources.iter().enumerate() {
        let src = u32::try_from(n).unwrap_or(u32::MAX);
        match *source {
            Source::File { name, text } => {
                first.get_or_insert_with(|| Location {
                    file: name.to_string(),
                    line: 1,
                    col: 1,
                });
                tokenize(text, name, src, &mut diags, &mut toks);
            }
            Source::Arg(text) => {
                let loc = Location {
                    file: "argv".to_string(),
                    line: u32::try_from(n + 1).unwrap_or(u32::MAX),
                    col: 1,
                };
                first.get_or_insert_with(|| loc.clone());
                if text.first() == Some(&b'@') {
                    diags.push(Diagnostic::error(
                        "arg-file",
                        loc.clone(),
                        format!(
                            "`{}` names a file: give its contents as a file source",
                            show_bytes(text)
                        ),
                    ));
                    continue;
                }
                if !text.is_empty() {
                    toks.push(Span {
                        src,
                        start: 0,
                        // An argument longer than 4 GiB is read as its first 4 GiB.
                        len: u32::try_from(text.len()).unwrap_or(u32::MAX),
                        line: loc.line,
                        col: loc.col,
                    });
                }
            }
        }
    }
    let first = first.unwrap_or(Location {
        file: "config.txt".to_string(),
        line: 1,
        col: 1,
    });
    let mut p = Parser {
        used: vec![false; toks.len()],
        toks,
        sources,
        diags,
        spans: BTreeMap::new(),
        cfg: Config::default(),
        kernel_seen: false,
        per_code: BTreeMap::new(),
        suppressed: BTreeMap::new(),
        scratch: Diagnostic::new(Severity::Warning, "", None, ""),
    };
    p.run(first);
    p.summarise_suppressed();
    let mut diagnostics = p.diags;
    sort_diagnostics(&mut diagnostics);
    Parsed {
        config: p.cfg,
        diagnostics,
        spans: p.spans,
    }
}

/// A token as the parser works on it: its bytes (borrowed from its source) and where
/// it starts.
#[derive(Debug, Clone)]
struct Token<'a> {
    text: &'a [u8],
    loc: Location,
}

impl Token<'_> {
    /// The location of the byte at `offset` in this token.
    fn at(&self, offset: usize) -> Location {
        let mut loc = self.loc.clone();
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        loc.col = loc.col.saturating_add(offset);
        loc
    }
}

struct Parser<'a> {
    /// Every token of every source, in order, as spans of `sources`.
    toks: Vec<Span>,
    /// Which tokens a key has taken (the rest make the boot line).
    used: Vec<bool>,
    sources: &'a [Source<'a>],
    diags: Vec<Diagnostic>,
    spans: BTreeMap<Item, Location>,
    cfg: Config,
    /// A `kernel...=` token was found (even a bad one), so "kernel missing" would be noise.
    kernel_seen: bool,
    /// How many findings of each kind are kept.
    per_code: BTreeMap<&'static str, usize>,
    /// Findings not kept, by kind: how many, and the first of them.
    suppressed: BTreeMap<&'static str, (usize, Diagnostic)>,
    /// Where the `help` of a finding that is not kept goes.
    scratch: Diagnostic,
}

/// The most findings of one kind listed one by one; the rest are counted on one line.
pub const MAX_PER_CODE: usize = 100;

/// A key token found by a lookup: the token, and the offset of the value (after `=`).
struct Hit<'a> {
    tok: Token<'a>,
    value_at: usize,
}

impl Hit<'_> {
    fn value(&self) -> &[u8] {
        &self.tok.text[self.value_at..]
    }
    fn value_loc(&self) -> Location {
        self.tok.at(self.value_at)
    }
}

const SCALAR_KEYS: [&str; 7] = [
    "kernel", "initrd", "mem", "cocon", "cursor", "color", "setcobd",
];
const INDEXED_KEYS: [&str; 7] = ["cobd", "scsi", "eth", "cofs", "ttys", "exec", "pci"];

fn collision_help(key: &str) -> String {
    format!(
        "colinux-daemon takes every token that starts with `{key}` and contains `=` as its `{key}` key; \
         a guest kernel parameter with this prefix cannot be passed through config.txt"
    )
}

fn strip_quotes(v: &[u8]) -> Result<&[u8], ()> {
    if v == b"\"" {
        return Err(());
    }
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        Ok(&v[1..v.len() - 1])
    } else {
        Ok(v)
    }
}

impl<'a> Parser<'a> {
    /// The token stored as `span`.
    fn token(&self, span: &Span) -> Token<'a> {
        let (name, bytes) = match self.sources.get(span.src as usize) {
            Some(Source::File { name, text }) => (*name, *text),
            Some(Source::Arg(text)) => ("argv", *text),
            None => ("", &[][..]),
        };
        Token {
            text: span.text(bytes),
            loc: span.location(name),
        }
    }

    fn error(
        &mut self,
        code: &'static str,
        loc: Location,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::error(code, loc, msg))
    }

    fn warn(
        &mut self,
        code: &'static str,
        loc: Location,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::warning(code, loc, msg))
    }

    /// Keeps a finding, unless [`MAX_PER_CODE`] of its kind are kept already: then it is
    /// counted for one summary line (and the caller's `help` goes to a scratch copy).
    /// A file repeating one mistake thousands of times costs a few lines, not memory
    /// in proportion.
    fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        let kept = self.per_code.entry(d.code).or_default();
        if *kept < MAX_PER_CODE {
            *kept += 1;
            self.diags.push(d);
            let last = self.diags.len() - 1;
            return &mut self.diags[last];
        }
        let more = self
            .suppressed
            .entry(d.code)
            .or_insert_with(|| (0, d.clone()));
        more.0 += 1;
        if d.is_error() {
            more.1.severity = Severity::Error;
        }
        self.scratch = d;
        &mut self.scratch
    }

    /// One line for each kind of finding that had more than [`MAX_PER_CODE`].
    fn summarise_suppressed(&mut self) {
        for (code, (n, first)) in std::mem::take(&mut self.suppressed) {
            self.diags.push(Diagnostic::new(
                first.severity,
                code,
                first.location,
                format!(
                    "{n} more finding(s) like the {MAX_PER_CODE} `{code}` above, from here on, are not listed one by one"
                ),
            ));
        }
    }

    /// Consumes the first unused token at or after `*from` that starts with `key` and
    /// contains `=`. Earlier tokens that did not match cannot match later (tokens are only
    /// ever consumed), so a caller looping on one key passes its cursor to stay linear.
    fn take(&mut self, key: &str, from: &mut usize) -> Option<Token<'a>> {
        while *from < self.toks.len() {
            let i = *from;
            *from += 1;
            if self.used[i] {
                continue;
            }
            let span = self.toks[i];
            let text = self.text(&span);
            if text.starts_with(key.as_bytes()) && text.contains(&b'=') {
                self.used[i] = true;
                return Some(self.token(&span));
            }
        }
        None
    }

    /// The bytes of the token stored as `span`.
    fn text(&self, span: &Span) -> &'a [u8] {
        match self.sources.get(span.src as usize) {
            Some(Source::File { text, .. } | Source::Arg(text)) => span.text(text),
            None => &[],
        }
    }

    /// Single-valued key: the first match wins; a suffix before `=` is fatal.
    fn scalar(&mut self, key: &str) -> Option<Hit<'a>> {
        let tok = self.take(key, &mut 0)?;
        let eq = tok
            .text
            .iter()
            .position(|&b| b == b'=')
            .unwrap_or(tok.text.len());
        if eq != key.len() {
            let h = collision_help(key);
            self.error(
                "key-index-not-allowed",
                tok.loc.clone(),
                format!(
                    "cmdline: Index not allowed for '{key}' (`{}` is read as the `{key}` key)",
                    show_bytes(&tok.text[..eq])
                ),
            )
            .help = Some(format!(
                "{h}; a look-alike placed after the real `{key}=` line is passed on"
            ));
            return None;
        }
        if eq + 1 >= tok.text.len() {
            self.error(
                "missing-value",
                tok.loc.clone(),
                format!("cmdline: Missing arguments for '{key}'"),
            );
            return None;
        }
        Some(Hit {
            value_at: eq + 1,
            tok,
        })
    }

    /// Indexed key: every match, with its index checked against `max`.
    fn indexed(&mut self, key: &str, max: u8) -> Vec<(u8, Hit<'a>)> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(tok) = self.take(key, &mut from) {
            let eq = tok
                .text
                .iter()
                .position(|&b| b == b'=')
                .unwrap_or(tok.text.len());
            let suffix = &tok.text[key.len()..eq];
            if eq + 1 >= tok.text.len() {
                self.error(
                    "missing-value",
                    tok.loc.clone(),
                    format!(
                        "cmdline: Missing arguments for '{key}{}'",
                        show_bytes(suffix)
                    ),
                );
                continue;
            }
            if suffix.is_empty() {
                let h = collision_help(key);
                self.error(
                    "index-missing",
                    tok.loc.clone(),
                    format!(
                        "`{key}=` has no index; colinux-daemon reads an uninitialised buffer here and fails"
                    ),
                )
                .help = Some(h);
                continue;
            }
            let n = strtoul10(suffix);
            if n.used == 0 {
                let h = collision_help(key);
                self.error(
                    "index-not-number",
                    tok.loc.clone(),
                    format!(
                        "cmdline: suffix not a number (`{}` is read as the `{key}` key)",
                        show_bytes(&tok.text[..eq])
                    ),
                )
                .help = Some(h);
                continue;
            }
            if n.value > u32::from(max) {
                self.error(
                    "index-out-of-range",
                    tok.at(key.len()),
                    format!("cmdline: invalid {key} index: {}", n.value),
                )
                .help = Some(format!("{key} indices run from 0 to {max}"));
                continue;
            }
            if n.used < suffix.len() {
                self.warn(
                    "index-trailing",
                    tok.at(key.len() + n.used),
                    format!(
                        "colinux-daemon reads `{}` as {key}{} and ignores `{}`",
                        show_bytes(&tok.text[..eq]),
                        n.value,
                        show_bytes(&suffix[n.used..])
                    ),
                );
            }
            // n.value <= max <= 31 here.
            let idx = u8::try_from(n.value).unwrap_or(u8::MAX);
            out.push((
                idx,
                Hit {
                    value_at: eq + 1,
                    tok,
                },
            ));
        }
        out
    }

    /// Whether `item` (`keyN`) was defined before: then this definition is reported as
    /// the daemon reports it (the first one wins) and is to be skipped.
    fn again(&mut self, key: &str, n: u8, item: Item, loc: &Location) -> bool {
        let Some(first) = self.spans.get(&item).cloned() else {
            return false;
        };
        self.double_defined(key, n, loc.clone(), Some(&first));
        true
    }

    fn double_defined(&mut self, key: &str, n: u8, loc: Location, first: Option<&Location>) {
        let msg = if key == "cofs" {
            format!("warning cofs{n} double defined")
        } else {
            format!("{key}{n} double defined")
        };
        let help = first.map(|f| format!("{key}{n} is first defined at {f}; keep one"));
        let d = self.error("double-defined", loc, msg);
        d.help = help;
    }

    fn utf8(&mut self, bytes: &[u8], loc: &Location, what: &str) -> Option<String> {
        match String::from_utf8(bytes.to_vec()) {
            Ok(s) => Some(s),
            Err(_) => {
                self.error(
                    "not-utf8",
                    loc.clone(),
                    format!(
                        "{what} is not UTF-8 (`{}`); the coLinux driver reads such bytes as UTF-8 and the daemon as ANSI, \
                         so colinux-setup does not guess what it names",
                        show_bytes(bytes)
                    ),
                )
                .help = Some("save config.txt as UTF-8, or use ASCII names".to_string());
                None
            }
        }
    }

    /// `kernel=`/`initrd=`: at most 254 bytes, quotes removed only around the whole value.
    fn loader_path(&mut self, key: &str, hit: &Hit) -> Option<String> {
        let v = hit.value();
        if v.len() > MAX_KERNEL_PATH {
            self.error(
                "path-too-long",
                hit.value_loc(),
                format!(
                    "the `{key}=` value is {} bytes; colinux-daemon fails, without saying why, at 255 bytes or more",
                    v.len()
                ),
            )
            .help = Some("move the file to a shorter path".to_string());
            return None;
        }
        self.path_text(key, v, &hit.value_loc())
    }

    /// Quote removal, emptiness and UTF-8 for any path value.
    fn path_text(&mut self, what: &str, v: &[u8], loc: &Location) -> Option<String> {
        let Ok(inner) = strip_quotes(v) else {
            self.error(
                "bad-path",
                loc.clone(),
                format!("the `{what}` value is a lone `\"`, not a path"),
            );
            return None;
        };
        if inner.is_empty() {
            self.error(
                "bad-path",
                loc.clone(),
                format!("the `{what}` path is empty"),
            );
            return None;
        }
        self.utf8(inner, loc, &format!("the `{what}` path"))
    }

    /// A canonicalised device path (`cobdN`, `cofsN`, path aliases): truncated at 255 bytes.
    fn device_path(&mut self, what: &str, v: &[u8], loc: &Location) -> Option<String> {
        let mut v = v;
        if v.len() > MAX_PATH {
            self.warn(
                "path-truncated",
                loc.clone(),
                format!(
                    "the `{what}` value is {} bytes; colinux-daemon cuts it to its first 255 bytes",
                    v.len()
                ),
            )
            .help = Some("move the file to a shorter path".to_string());
            v = &v[..MAX_PATH];
        }
        self.path_text(what, v, loc)
    }

    /// Splits comma fields, warning about spills and ignored text.
    fn split(
        &mut self,
        key: &str,
        hit: &Hit,
        at: usize,
        sizes: &[usize],
        extra_note: &str,
    ) -> Vec<Field> {
        let value = &hit.tok.text[at..];
        let s = fields::split(value, sizes);
        for (i, f) in s.fields.iter().enumerate() {
            if f.overflowed {
                self.warn(
                    "field-overflow",
                    hit.tok.at(at + f.start),
                    format!(
                        "field {} of `{key}` is longer than its {} bytes; colinux-daemon spills the rest into the next field",
                        i + 1,
                        sizes[i]
                    ),
                );
            }
        }
        if let Some(off) = s.ignored_from {
            self.warn(
                "extra-fields",
                hit.tok.at(at + off),
                format!(
                    "colinux-daemon ignores `{}` at the end of `{key}`{extra_note}",
                    show_bytes(&value[off..])
                ),
            );
        }
        s.fields
    }

    fn run(&mut self, first: Location) {
        self.kernel();
        self.mem();
        self.scsi();
        self.setcobd();
        self.cobd();
        self.aliases("sd");
        self.aliases("hd");
        self.eth();
        self.cofs();
        self.pci();
        self.initrd();
        self.ttys();
        self.exec();
        self.color();
        self.cocon();
        self.cursor();
        if self.cfg.kernel.is_none() && !self.kernel_seen {
            self.error(
                "kernel-missing",
                first,
                "no `kernel=`: colinux-daemon interprets no other key without it and does not start",
            )
            .help = Some("add a line `kernel=vmlinux` (the path of the coLinux kernel)".to_string());
        }
        self.boot_line();
    }

    fn kernel(&mut self) {
        self.kernel_seen = self.toks.iter().any(|t| {
            let text = self.text(t);
            text.starts_with(b"kernel") && text.contains(&b'=')
        });
        if let Some(hit) = self.scalar("kernel") {
            self.spans.insert(Item::Kernel, hit.tok.loc.clone());
            self.cfg.kernel = self.loader_path("kernel", &hit);
        }
    }

    fn initrd(&mut self) {
        if let Some(hit) = self.scalar("initrd") {
            self.spans.insert(Item::Initrd, hit.tok.loc.clone());
            self.cfg.initrd = self.loader_path("initrd", &hit);
        }
    }

    fn mem(&mut self) {
        let Some(hit) = self.scalar("mem") else {
            return;
        };
        self.spans.insert(Item::Mem, hit.tok.loc.clone());
        let v = hit.value().to_vec();
        if v.len() > 18 {
            self.error(
                "value-too-long",
                hit.value_loc(),
                format!(
                    "the `mem=` value is {} bytes, longer than the daemon's 18-byte buffer",
                    v.len()
                ),
            );
            return;
        }
        let n = strtoul10(&v);
        if n.used == 0 {
            self.error(
                "mem-not-number",
                hit.value_loc(),
                format!(
                    "`mem={}` is not a number; colinux-daemon fails without saying why",
                    show_bytes(&v)
                ),
            )
            .help = Some("write the guest RAM in MB, e.g. `mem=128`".to_string());
            return;
        }
        if n.used < v.len() || n.negative || n.overflow {
            let d = self.warn(
                "mem-reads-as",
                hit.value_loc(),
                format!(
                    "colinux-daemon reads `mem={}` as {} MB",
                    show_bytes(&v),
                    n.value
                ),
            );
            d.help = Some(format!(
                "write `mem={}` (decimal MB, nothing after it)",
                n.value
            ));
        }
        self.cfg.mem = Some(n.value);
    }

    fn setcobd(&mut self) {
        let Some(hit) = self.scalar("setcobd") else {
            return;
        };
        self.spans.insert(Item::Setcobd, hit.tok.loc.clone());
        self.cfg.setcobd = match hit.value() {
            b"async" => Some(CobdMode::Async),
            b"sync" => Some(CobdMode::Sync),
            _ => {
                self.error(
                    "setcobd-value",
                    hit.value_loc(),
                    "error: setcobd option only allowed 'async' or 'sync'",
                );
                None
            }
        };
    }

    fn scsi(&mut self) {
        for (n, hit) in self.indexed("scsi", MAX_SCSI) {
            let loc = hit.tok.loc.clone();
            if self.again("scsi", n, Item::Scsi(n), &loc) {
                continue;
            }
            let f = self.split(
                &format!("scsi{n}"),
                &hit,
                hit.value_at,
                &[15, MAX_PATH, 15],
                " (the optional 4th field `shared` exists only in coLinux 0.7.10)",
            );
            let kind_text = &f[0].bytes;
            let Some(kind) = ScsiType::ALL
                .into_iter()
                .find(|t| t.as_str().as_bytes() == kind_text.as_slice())
            else {
                self.error(
                    "scsi-type",
                    hit.value_loc(),
                    format!("scsi{n}: unknown type: {}", show_bytes(kind_text)),
                )
                .help = Some("the types are disk, cdrom, cdrw, tape, changer and pass".to_string());
                continue;
            };
            let ploc = hit.tok.at(hit.value_at + f[1].start);
            let path = if kind.canonicalised() {
                self.path_text(&format!("scsi{n}"), &f[1].bytes, &ploc)
            } else if f[1].bytes.is_empty() {
                self.error(
                    "bad-path",
                    ploc.clone(),
                    format!("the `scsi{n}` path is empty"),
                );
                None
            } else {
                self.utf8(&f[1].bytes, &ploc, &format!("the `scsi{n}` path"))
            };
            let sloc = hit.tok.at(hit.value_at + f[2].start);
            let size = strtol10(&f[2].bytes);
            if size.used == 0 && !f[2].bytes.is_empty() {
                self.warn(
                    "scsi-size",
                    sloc.clone(),
                    format!(
                        "the size `{}` is not a number; colinux-daemon reads 0",
                        show_bytes(&f[2].bytes)
                    ),
                );
            }
            let size_mb = match u32::try_from(size.value) {
                Ok(s) if s <= MAX_SCSI_SIZE_MB => s,
                _ => {
                    self.error(
                        "scsi-size",
                        sloc,
                        format!(
                            "scsi{n}: Size {} out of range (0..{MAX_SCSI_SIZE_MB} MB)",
                            size.value
                        ),
                    );
                    continue;
                }
            };
            if let Some(path) = path {
                self.spans.insert(Item::Scsi(n), loc);
                self.cfg.scsi.insert(
                    n,
                    Scsi {
                        kind,
                        path,
                        size_mb,
                    },
                );
            }
        }
    }

    fn cobd(&mut self) {
        for (n, hit) in self.indexed("cobd", MAX_COBD) {
            let loc = hit.tok.loc.clone();
            if self.again("cobd", n, Item::Cobd(n), &loc) {
                continue;
            }
            if let Some(path) = self.device_path(&format!("cobd{n}"), hit.value(), &hit.value_loc())
            {
                self.spans.insert(Item::Cobd(n), loc);
                self.cfg.cobd.insert(n, Cobd::new(path));
            }
        }
    }

    /// `sd*`/`hd*` aliases: `:cobdN` names an existing device, a path allocates the lowest
    /// free index (spec §1.7).
    fn aliases(&mut self, key: &str) {
        let mut from = 0;
        while let Some(tok) = self.take(key, &mut from) {
            let eq = tok
                .text
                .iter()
                .position(|&b| b == b'=')
                .unwrap_or(tok.text.len());
            let suffix = &tok.text[key.len()..eq];
            if suffix.len() > 4 {
                let h = collision_help(key);
                self.error(
                    "key-index-not-allowed",
                    tok.loc.clone(),
                    format!(
                        "cmdline: Index not allowed for '{key}' (`{}`: an alias name has at most 4 characters after `{key}`)",
                        show_bytes(&tok.text[..eq])
                    ),
                )
                .help = Some(h);
                continue;
            }
            if eq + 1 >= tok.text.len() {
                self.error(
                    "missing-value",
                    tok.loc.clone(),
                    format!(
                        "cmdline: Missing arguments for '{key}{}'",
                        show_bytes(suffix)
                    ),
                );
                continue;
            }
            let Some(name) = self.utf8(&tok.text[..eq], &tok.loc, "the alias name") else {
                continue;
            };
            let hit = Hit {
                value_at: eq + 1,
                tok,
            };
            let value = hit.value().to_vec();
            if value.first() == Some(&b':') {
                let digits = value.strip_prefix(b":cobd").unwrap_or(b"");
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    self.error(
                        "alias-value",
                        hit.value_loc(),
                        format!("invalid alias: {}", show_bytes(&value)),
                    )
                    .help = Some(format!(
                        "write `{name}=:cobdN` with N the cobd index, or `{name}=PATH`"
                    ));
                    continue;
                }
                let n = strtoul10(digits).value;
                if n > u32::from(MAX_COBD) {
                    self.error(
                        "alias-value",
                        hit.value_loc(),
                        format!("invalid cobd index {n}"),
                    );
                    continue;
                }
                let n = u8::try_from(n).unwrap_or(u8::MAX);
                match self.cfg.cobd.get_mut(&n) {
                    None => {
                        self.error(
                            "alias-unused",
                            hit.value_loc(),
                            format!("alias on unused cobd{n}"),
                        )
                        .help = Some(format!("define `cobd{n}=PATH` too"));
                    }
                    Some(c) if c.alias.is_some() => {
                        self.error(
                            "alias-twice",
                            hit.tok.loc.clone(),
                            format!("error, alias cannot be used twice for cobd{n}"),
                        );
                    }
                    Some(c) => {
                        c.alias = Some(name);
                        self.spans.insert(Item::Alias(n), hit.tok.loc.clone());
                    }
                }
            } else {
                let Some(n) = (0..=MAX_COBD).find(|i| !self.cfg.cobd.contains_key(i)) else {
                    self.error(
                        "alias-full",
                        hit.tok.loc.clone(),
                        "no available cobd for new alias",
                    );
                    continue;
                };
                let Some(path) = self.device_path(&name, &value, &hit.value_loc()) else {
                    continue;
                };
                if !path.contains(['\\', '/', ':', '.']) {
                    self.warn(
                        "alias-path",
                        hit.tok.loc.clone(),
                        format!(
                            "`{name}=` is a daemon key: colinux-daemon makes `{path}` the image of cobd{n} \
                             instead of passing `{name}={path}` to the guest kernel"
                        ),
                    )
                    .help = Some(collision_help(key));
                }
                self.spans.insert(Item::Cobd(n), hit.tok.loc.clone());
                self.spans.insert(Item::Alias(n), hit.tok.loc.clone());
                self.cfg.cobd.insert(
                    n,
                    Cobd {
                        path,
                        alias: Some(name),
                    },
                );
            }
        }
    }

    fn mac(&mut self, key: &str, hit: &Hit, at: usize, f: &Field) -> Result<Option<Mac>, ()> {
        if f.bytes.is_empty() {
            return Ok(None);
        }
        let loc = hit.tok.at(at + f.start);
        let text = String::from_utf8_lossy(&f.bytes).into_owned();
        match text.parse::<Mac>() {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                let help = if f.quote_trap {
                    Some(quote_trap_help(hit.tok.text, at + f.start))
                } else {
                    Some(format!(
                        "`{key}` wants a MAC as 17 characters hh:hh:hh:hh:hh:hh, e.g. 02:00:00:00:00:01"
                    ))
                };
                let d = self.error("eth-mac", loc, e.to_string());
                d.help = help;
                Err(())
            }
        }
    }

    fn name_trap(&mut self, key: &str, hit: &Hit, at: usize, f: &Field, what: &str) {
        if f.quote_trap {
            let help = quote_trap_help(hit.tok.text, at + f.start);
            self.warn(
                "empty-field-quotes",
                hit.tok.at(at + f.start),
                format!("`\"\"` in a comma field is a literal `\"`: colinux-daemon reads the {what} of `{key}` as `\"`"),
            )
            .help = Some(help);
        }
    }

    fn eth(&mut self) {
        const TYPES: [&str; 4] = ["tuntap", "pcap-bridge", "ndis-bridge", "slirp"];
        for (n, hit) in self.indexed("eth", MAX_ETH) {
            let key = format!("eth{n}");
            let loc = hit.tok.loc.clone();
            if self.again("eth", n, Item::Eth(n), &loc) {
                continue;
            }
            let v = hit.value();
            let kind = TYPES.into_iter().find(|t| {
                v.starts_with(t.as_bytes())
                    && v.get(t.len()).is_none_or(|b| !b.is_ascii_alphabetic())
            });
            let Some(kind) = kind else {
                let word = v.split(|&b| b == b',').next().unwrap_or(v);
                self.error(
                    "eth-type",
                    hit.value_loc(),
                    format!("unsupported network transport type: {}", show_bytes(word)),
                )
                .help = Some(
                    "supported types are: tuntap, pcap-bridge, ndis-bridge, slirp".to_string(),
                );
                continue;
            };
            // The byte after the type word is skipped whatever it is (normally `,`).
            let at = (hit.value_at + kind.len() + 1).min(hit.tok.text.len());
            if let Some(&sep) = v.get(kind.len())
                && sep != b','
            {
                self.warn(
                    "eth-separator",
                    hit.tok.at(hit.value_at + kind.len()),
                    format!(
                        "colinux-daemon skips the `{}` after `{kind}` as if it were a comma",
                        show_bytes(&[sep])
                    ),
                );
            }
            let nic = match kind {
                "tuntap" => {
                    let f = self.split(
                        &key,
                        &hit,
                        at,
                        &[MAX_NAME, MAX_MAC_FIELD, MAX_MAC_FIELD],
                        "",
                    );
                    self.name_trap(&key, &hit, at, &f[0], "TAP name");
                    if !f[2].bytes.is_empty() {
                        self.warn(
                            "eth-host-ip",
                            hit.tok.at(at + f[2].start),
                            "colinux-daemon ignores the host IP field of a tuntap adapter",
                        )
                        .help = Some("give the host side its address on the host (colinux-setup tap install)".to_string());
                    }
                    let Ok(mac) = self.mac(&key, &hit, at, &f[1]) else {
                        continue;
                    };
                    let Some(name) = self.utf8(&f[0].bytes, &loc, "the adapter name") else {
                        continue;
                    };
                    Nic::Tuntap { name, mac }
                }
                "pcap-bridge" | "ndis-bridge" => {
                    let f = self.split(&key, &hit, at, &[MAX_NAME, MAX_MAC_FIELD, 9], "");
                    self.name_trap(&key, &hit, at, &f[0], "adapter name");
                    let Ok(mac) = self.mac(&key, &hit, at, &f[1]) else {
                        continue;
                    };
                    let promisc = match f[2].bytes.as_slice() {
                        b"" | b"promisc" => true,
                        b"nopromisc" => false,
                        other => {
                            let who = if kind == "pcap-bridge" {
                                "PCAP"
                            } else {
                                "Ndis"
                            };
                            self.error(
                                "eth-promisc",
                                hit.tok.at(at + f[2].start),
                                format!(
                                    "error: {who} bridge option only allowed 'promisc' or 'nopromisc' (got `{}`)",
                                    show_bytes(other)
                                ),
                            );
                            continue;
                        }
                    };
                    let Some(name) = self.utf8(&f[0].bytes, &loc, "the adapter name") else {
                        continue;
                    };
                    if kind == "pcap-bridge" {
                        Nic::PcapBridge { name, mac, promisc }
                    } else {
                        Nic::NdisBridge { name, mac, promisc }
                    }
                }
                _ => {
                    let f = self.split(&key, &hit, at, &[MAX_MAC_FIELD, MAX_REDIRS], "");
                    let Ok(mac) = self.mac(&key, &hit, at, &f[0]) else {
                        continue;
                    };
                    let Some(redirs) = self.utf8(&f[1].bytes, &loc, "the redirections") else {
                        continue;
                    };
                    Nic::Slirp { mac, redirs }
                }
            };
            self.spans.insert(Item::Eth(n), loc);
            self.cfg.eth.insert(n, nic);
        }
    }

    fn cofs(&mut self) {
        for (n, hit) in self.indexed("cofs", MAX_COFS) {
            let loc = hit.tok.loc.clone();
            if self.again("cofs", n, Item::Cofs(n), &loc) {
                continue;
            }
            if let Some(path) = self.device_path(&format!("cofs{n}"), hit.value(), &hit.value_loc())
            {
                self.spans.insert(Item::Cofs(n), loc);
                self.cfg.cofs.insert(n, path);
            }
        }
    }

    fn pci(&mut self) {
        for (n, hit) in self.indexed("pci", MAX_PCI) {
            let loc = hit.tok.loc.clone();
            if self.again("pci", n, Item::Pci(n), &loc) {
                continue;
            }
            let key = format!("pci{n}");
            let f = self.split(&key, &hit, hit.value_at, &[7, 15, 7], "");
            let digits = |b: &[u8]| -> Option<u32> {
                if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                Some(strtoul10(b).value)
            };
            let Some(function) = digits(&f[0].bytes).filter(|v| *v <= 7) else {
                self.error(
                    "pci-function",
                    hit.value_loc(),
                    format!(
                        "{key}: the function `{}` is not a number from 0 to 7",
                        show_bytes(&f[0].bytes)
                    ),
                );
                continue;
            };
            let kind = match f[1].bytes.as_slice() {
                b"scsi" => PciKind::Scsi,
                b"network" | b"net" => PciKind::Network,
                other => {
                    self.error(
                        "pci-type",
                        hit.tok.at(hit.value_at + f[1].start),
                        format!(
                            "{key}: the type `{}` is not supported by the shipped daemon (scsi, network or net)",
                            show_bytes(other)
                        ),
                    );
                    continue;
                }
            };
            let uloc = hit.tok.at(hit.value_at + f[2].start);
            let unit = digits(&f[2].bytes).and_then(|u| u8::try_from(u).ok());
            let enabled = match (kind, unit) {
                (PciKind::Scsi, Some(u)) => self.cfg.scsi.contains_key(&u),
                (PciKind::Network, Some(u)) => self.cfg.eth.contains_key(&u),
                (_, None) => false,
            };
            let (Some(unit), true) = (unit, enabled) else {
                let what = if kind == PciKind::Scsi { "scsi" } else { "eth" };
                self.error(
                    "pci-unit",
                    uloc,
                    format!(
                        "{key}: the unit `{}` is not a configured {what}N",
                        show_bytes(&f[2].bytes)
                    ),
                );
                continue;
            };
            self.spans.insert(Item::Pci(n), loc);
            self.cfg.pci.insert(
                n,
                Pci {
                    function: u8::try_from(function).unwrap_or(0),
                    kind,
                    unit,
                },
            );
        }
    }

    fn ttys(&mut self) {
        for (n, hit) in self.indexed("ttys", MAX_TTYS) {
            let loc = hit.tok.loc.clone();
            if self.again("ttys", n, Item::Ttys(n), &loc) {
                continue;
            }
            let Some((name, mode)) = self.two_texts(
                &hit,
                &format!("ttys{n}"),
                [MAX_NAME, MAX_TTYS_MODE],
                Some("device name"),
                ("ttys-name", "missing host serial device name"),
                ["the serial device name", "the serial mode"],
            ) else {
                continue;
            };
            self.spans.insert(Item::Ttys(n), loc);
            self.cfg.ttys.insert(n, Serial { name, mode });
        }
    }

    /// The two comma fields of `ttysN=` / `execN=`: the first required (else the error
    /// `missing.0` with the message `missing.1 for KEY`), both UTF-8; `trap` names the
    /// first field for the name traps.
    fn two_texts(
        &mut self,
        hit: &Hit,
        key: &str,
        limits: [usize; 2],
        trap: Option<&str>,
        missing: (&'static str, &str),
        whats: [&str; 2],
    ) -> Option<(String, String)> {
        let f = self.split(key, hit, hit.value_at, &limits, "");
        if let Some(what) = trap {
            self.name_trap(key, hit, hit.value_at, &f[0], what);
        }
        if f[0].bytes.is_empty() {
            self.error(
                missing.0,
                hit.value_loc(),
                format!("{} for {key}", missing.1),
            );
            return None;
        }
        let loc = &hit.tok.loc;
        let first = self.utf8(&f[0].bytes, loc, whats[0]);
        let second = self.utf8(&f[1].bytes, loc, whats[1]);
        Some((first?, second?))
    }

    fn exec(&mut self) {
        for (n, hit) in self.indexed("exec", MAX_EXEC) {
            let loc = hit.tok.loc.clone();
            if self.again("exec", n, Item::Exec(n), &loc) {
                continue;
            }
            let Some((program, args)) = self.two_texts(
                &hit,
                &format!("exec{n}"),
                [MAX_EXEC_PROG, MAX_EXEC_ARGS],
                None,
                ("exec-program", "missing program path"),
                ["the program", "the arguments"],
            ) else {
                continue;
            };
            self.spans.insert(Item::Exec(n), loc);
            self.cfg.exec.insert(n, Exec { program, args });
        }
    }

    fn color(&mut self) {
        let Some(hit) = self.scalar("color") else {
            return;
        };
        self.spans.insert(Item::Color, hit.tok.loc.clone());
        let v = hit.value().to_vec();
        let shown = show_bytes(&v);
        if v.len() > 30 {
            self.error(
                "value-too-long",
                hit.value_loc(),
                format!(
                    "the `color=` value is {} bytes, longer than the daemon's 30-byte buffer",
                    v.len()
                ),
            );
            return;
        }
        let mut parts = v.splitn(2, |&b| b == b',');
        let fg = parts
            .next()
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(ColorName::from_name);
        let bg = parts
            .next()
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(ColorName::from_name);
        let (Some(fg), Some(bg)) = (fg, bg) else {
            self.error("color-value", hit.value_loc(), format!("Invalid arg ({shown}) for color"))
                .help = Some(
                "write `color=FG,BG` with lowercase names: black red green brown blue magenta cyan gray darkgray \
                 brightred brightgreen yellow brightblue brightmagenta brightcyan white"
                    .to_string(),
            );
            return;
        };
        if fg == bg {
            self.error(
                "color-same",
                hit.value_loc(),
                format!("Warning, foreground == background: {shown}"),
            );
            return;
        }
        self.cfg.color = Some(ConsoleColor { fg, bg });
    }

    fn cocon(&mut self) {
        let Some(hit) = self.scalar("cocon") else {
            return;
        };
        self.spans.insert(Item::Cocon, hit.tok.loc.clone());
        let v = hit.value().to_vec();
        let shown = show_bytes(&v);
        if v.len() > 14 {
            self.error(
                "value-too-long",
                hit.value_loc(),
                format!(
                    "the `cocon=` value is {} bytes, longer than the daemon's 14-byte buffer",
                    v.len()
                ),
            );
            return;
        }
        // COLS<sep>ROWS[<sep>SCROLLBACK], each strtol base 0, each <sep> one byte of any kind.
        let cols = strtol0(&v);
        let mut p = cols.used;
        let rows = if p < v.len() {
            p += 1;
            let r = strtol0(&v[p..]);
            p += r.used;
            r.value
        } else {
            0
        };
        let sb = if cols.used > 0 && p < v.len() {
            p += 1;
            strtol0(&v[p..]).value
        } else {
            0
        };
        if cols.value < 16 || rows < 2 || sb > 500 {
            self.error(
                "cocon-value",
                hit.value_loc(),
                format!("Invalid args ({shown}) for cocon"),
            )
            .help = Some(
                "write `cocon=COLSxROWSxSCROLLBACK` with COLS >= 16, ROWS >= 2, SCROLLBACK <= 500"
                    .to_string(),
            );
            return;
        }
        let sb = if sb == 0 { 500 } else { sb };
        let sb = sb.max(rows);
        // All three are positive here.
        let pos = |x: i32| u32::try_from(x).unwrap_or(0);
        self.cfg.cocon = Some(Cocon {
            cols: pos(cols.value),
            rows: pos(rows),
            scrollback: pos(sb),
        });
    }

    fn cursor(&mut self) {
        let Some(hit) = self.scalar("cursor") else {
            return;
        };
        self.spans.insert(Item::Cursor, hit.tok.loc.clone());
        let v = hit.value().to_vec();
        let n = strtol0(&v);
        if n.used == 0 {
            self.warn(
                "cursor-reads-as",
                hit.value_loc(),
                format!(
                    "`cursor={}` is not a number; colinux-daemon reads 0 (no cursor)",
                    show_bytes(&v)
                ),
            );
        }
        match u8::try_from(n.value) {
            Ok(c) if c <= 100 => self.cfg.cursor = Some(c),
            _ => {
                self.error(
                    "cursor-value",
                    hit.value_loc(),
                    format!("Invalid arg ({}) for cursor", n.value),
                )
                .help = Some("the cursor size is a percentage from 0 to 100".to_string());
            }
        }
    }

    /// Everything not taken as a key, joined by single spaces and cut at 255 bytes.
    fn boot_line(&mut self) {
        // The tokens left are visited where they are stored, not copied: there may be
        // as many as the file has bytes, while the boot line keeps at most 255.
        let mut count = 0usize;
        let mut total = 0usize;
        for i in 0..self.toks.len() {
            if self.used[i] {
                continue;
            }
            let tok = self.token(&self.toks[i]);
            self.case_lookalike(&tok);
            count += 1;
            total += tok.text.len();
        }
        let total = total + count.saturating_sub(1);
        let mut kept: Vec<(String, Location)> = Vec::new();
        let mut len = 0usize;
        for i in 0..self.toks.len() {
            if self.used[i] {
                continue;
            }
            let tok = self.token(&self.toks[i]);
            let text = self
                .utf8(tok.text, &tok.loc, "this boot parameter")
                .unwrap_or_else(|| String::from_utf8_lossy(tok.text).into_owned());
            let sep = usize::from(!kept.is_empty());
            if len + sep + text.len() <= MAX_BOOT_LINE {
                len += sep + text.len();
                kept.push((text, tok.loc.clone()));
                continue;
            }
            let room = MAX_BOOT_LINE.saturating_sub(len + sep);
            let mut cut = room.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let partial = &text[..cut];
            self.warn(
                "boot-line-truncated",
                tok.loc.clone(),
                format!(
                    "the guest kernel command line is {total} bytes; colinux-daemon cuts it at 255, so the guest gets {} and nothing after it",
                    if partial.is_empty() { "nothing of this parameter".to_string() } else { format!("only `{partial}` of this parameter") }
                ),
            )
            .help = Some("remove boot parameters, or shorten them".to_string());
            if !partial.is_empty() {
                kept.push((partial.to_string(), tok.loc.clone()));
            }
            break;
        }
        let mut roots: Vec<Location> = Vec::new();
        for (text, loc) in kept {
            if let Some(root) = text.strip_prefix("root=") {
                self.cfg.root = Some(root.to_string());
                self.spans.insert(Item::Root, loc.clone());
                roots.push(loc);
            } else {
                self.spans
                    .insert(Item::BootParam(self.cfg.boot_params.len()), loc);
                self.cfg.boot_params.push(text);
            }
        }
        if roots.len() > 1 {
            let root = self.cfg.root.clone().unwrap_or_default();
            for loc in &roots[..roots.len() - 1] {
                self.warn(
                    "duplicate-root",
                    loc.clone(),
                    format!("several `root=` parameters: Linux uses the last one, `root={root}`"),
                )
                .help = Some("keep one `root=` line".to_string());
            }
        }
    }

    /// `Kernel=`, `MEM=`, `Cobd0=`: keys are case-sensitive, so these reach the guest.
    fn case_lookalike(&mut self, tok: &Token<'_>) {
        let Some(eq) = tok.text.iter().position(|&b| b == b'=') else {
            return;
        };
        let word = &tok.text[..eq];
        let lower = word.to_ascii_lowercase();
        if lower == word {
            return;
        }
        let is_key = SCALAR_KEYS.iter().any(|k| lower == k.as_bytes())
            || INDEXED_KEYS.iter().any(|k| {
                lower
                    .strip_prefix(k.as_bytes())
                    .is_some_and(|rest| !rest.is_empty() && rest.iter().all(u8::is_ascii_digit))
            });
        if is_key {
            let lw = String::from_utf8_lossy(&lower).into_owned();
            self.warn(
                "key-case",
                tok.loc.clone(),
                format!(
                    "`{}=` is not a daemon key (keys are case-sensitive); colinux-daemon passes it to the guest kernel",
                    show_bytes(word)
                ),
            )
            .help = Some(format!("write `{lw}=`"));
        }
    }
}

/// The fix for `,"",`: the same token with that `""` removed.
fn quote_trap_help(token: &[u8], at: usize) -> String {
    let mut fixed = token[..at].to_vec();
    fixed.extend_from_slice(token.get(at + 2..).unwrap_or(b""));
    format!(
        "`\"\"` in a comma field is a literal `\"`, not an empty field; write an empty field as `,,`: `{}`",
        String::from_utf8_lossy(&fixed)
    )
}
