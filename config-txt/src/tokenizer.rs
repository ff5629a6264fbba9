//! colinux-daemon's `@file` tokenizer, byte for byte (colinux-spec.md §1.2, §1.3, §9.1-§9.4).
//!
//! The daemon scans a config file with a small state machine (`cmdline.c:27-157`):
//! - only `A-Z a-z 0-9 .` can start a token; any other byte outside a token is skipped;
//! - outside quotes, any byte `<= 0x20` ends a token; a `"` toggles quoted mode and stays
//!   in the token, and inside quotes only bytes `<= 0x1F` end it;
//! - `#` begins a comment to the end of the line, also inside a token and inside quotes;
//! - there is no escape and no line continuation;
//! - the first NUL byte ends the file.
//!
//! A token never spans lines (LF ends it in every state), so a token's location plus an
//! offset inside it locates any byte of it. Where the daemon silently does something a
//! reader would not expect (skipped bytes, a `#` cutting a value, a tab inside quotes, an
//! unterminated quote, a NUL), this module keeps the daemon's behaviour and adds a warning.
//!
//! A token's bytes are always one run of the source (every byte between its start and
//! the byte that ends it belongs to it, quotes included), so a token is stored as a
//! [`Span`] of the source: a few numbers, whatever its length. The source is held once,
//! by the caller, and a file's tokens take less memory than the file.

use crate::diagnostic::{Diagnostic, Location, show_bytes};

/// One token, as the daemon sees it: where its bytes are in its source, and the line
/// and column it starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// The index of the token's source (given to [`tokenize`]).
    pub src: u32,
    /// The offset of its first byte in the source (sources are at most
    /// [`MAX_SOURCE`] bytes, so 32 bits hold it).
    pub start: u32,
    /// Its length in bytes.
    pub len: u32,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in bytes.
    pub col: u32,
}

impl Span {
    /// The token's bytes in `source`, the bytes it was tokenized from.
    pub fn text<'a>(&self, source: &'a [u8]) -> &'a [u8] {
        let start = self.start as usize;
        source
            .get(start..start.saturating_add(self.len as usize))
            .unwrap_or_default()
    }

    /// Where the token starts, in the source named `file`.
    pub fn location(&self, file: &str) -> Location {
        Location {
            file: file.to_string(),
            line: self.line,
            col: self.col,
        }
    }
}

/// The largest source that is tokenized: 4 GiB - 1, so that a token's offset and length
/// fit 32 bits and a token takes 20 bytes. (A config.txt is a few hundred bytes.)
pub(crate) const MAX_SOURCE: usize = u32::MAX as usize;

/// Skipped-byte warnings reported per source before they are summarised: binary junk
/// would otherwise produce one per byte run.
const MAX_SKIP_WARNINGS: usize = 20;

fn starts_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.'
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Blank,
    Comment,
    Token { quoted: bool },
}

struct Skipped {
    loc: Location,
    bytes: Vec<u8>,
}

/// Splits one `@file`'s bytes into tokens, appended to `tokens` as spans of `bytes`
/// (source number `src`), and appends warnings (and, for UTF-16, an error) to `diags`.
pub(crate) fn tokenize(
    bytes: &[u8],
    file: &str,
    src: u32,
    diags: &mut Vec<Diagnostic>,
    tokens: &mut Vec<Span>,
) {
    let start_loc = Location {
        file: file.to_string(),
        line: 1,
        col: 1,
    };
    let utf16 = bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]);
    if utf16 {
        // The daemon would read up to the first NUL, i.e. almost nothing; nobody writes
        // a UTF-16 file meaning that, so this is refused rather than warned about.
        diags.push(
            Diagnostic::error(
                "utf16",
                start_loc.clone(),
                "the file is UTF-16; colinux-daemon stops reading at the first NUL byte, so it would see almost nothing of it",
            )
            .with_help("save it as ANSI or UTF-8 (for example with Notepad's \"Save as\", encoding ANSI or UTF-8)"),
        );
    }
    if bytes.len() > MAX_SOURCE {
        diags.push(Diagnostic::error(
            "too-large",
            start_loc,
            format!(
                "the file is {} bytes; this checker reads files of at most {MAX_SOURCE} bytes (a config.txt is a few hundred)",
                bytes.len()
            ),
        ));
        return;
    }
    let mut end = bytes.len();
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        end = nul;
        if !utf16 {
            let loc = location_of(bytes, nul, file);
            diags.push(Diagnostic::warning(
                "nul-byte",
                loc,
                format!(
                    "NUL byte: colinux-daemon stops reading the file here; the remaining {} bytes are ignored",
                    bytes.len() - nul
                ),
            ));
        }
    }
    let bytes = &bytes[..end];
    // A UTF-8 byte order mark is junk to the daemon and harmless (spec §1.2): no warning.
    let mut i = if bytes.starts_with(&[0xef, 0xbb, 0xbf]) {
        3
    } else {
        0
    };

    let mut state = State::Blank;
    let mut line: u32 = 1;
    let mut line_start: usize = 0;
    let mut current: Option<Span> = None;
    let mut skipped: Option<Skipped> = None;
    let mut skip_warnings = 0usize;
    let mut skip_suppressed = 0usize;

    let loc_at = |line: u32, line_start: usize, i: usize| Location {
        file: file.to_string(),
        line,
        col: u32::try_from(i - line_start + 1).unwrap_or(u32::MAX),
    };

    while i < bytes.len() {
        let b = bytes[i];
        match state {
            State::Blank => {
                if b == b'#' {
                    flush_skipped(
                        &mut skipped,
                        None,
                        diags,
                        &mut skip_warnings,
                        &mut skip_suppressed,
                    );
                    state = State::Comment;
                } else if starts_token(b) {
                    let loc = loc_at(line, line_start, i);
                    current = Some(Span {
                        src,
                        // i < bytes.len() <= MAX_SOURCE (checked above).
                        start: u32::try_from(i).unwrap_or(u32::MAX),
                        len: 1,
                        line: loc.line,
                        col: loc.col,
                    });
                    state = State::Token { quoted: false };
                } else if is_blank(b) {
                    flush_skipped(
                        &mut skipped,
                        None,
                        diags,
                        &mut skip_warnings,
                        &mut skip_suppressed,
                    );
                } else {
                    match &mut skipped {
                        Some(s) => s.bytes.push(b),
                        None => {
                            skipped = Some(Skipped {
                                loc: loc_at(line, line_start, i),
                                bytes: vec![b],
                            })
                        }
                    }
                }
            }
            State::Comment => {}
            State::Token { quoted } => {
                let ends = if quoted { b <= 0x1f } else { b <= 0x20 };
                if ends || b == b'#' {
                    if let Some(tok) = current.take() {
                        let here = loc_at(line, line_start, i);
                        let text = tok.text(bytes);
                        if b == b'#' {
                            diags.push(
                                Diagnostic::warning(
                                    "hash-in-value",
                                    here,
                                    format!(
                                        "`#` ends the value here{}; colinux-daemon reads `{}` and treats the rest of the line as a comment",
                                        if quoted { ", even inside quotes" } else { "" },
                                        show_bytes(text)
                                    ),
                                )
                                .with_help("a value cannot contain `#`; put comments on their own line"),
                            );
                        } else if quoted && b != b'\n' && b != b'\r' {
                            diags.push(Diagnostic::warning(
                                "control-in-quotes",
                                here,
                                format!(
                                    "control byte 0x{b:02x} ends the token inside quotes; colinux-daemon reads `{}` and starts a new token after it",
                                    show_bytes(text)
                                ),
                            ).with_help("use spaces, not tabs, inside quoted values"));
                        } else if quoted {
                            diags.push(unterminated(&tok, bytes, file));
                        }
                        finish(
                            tok,
                            bytes,
                            &mut skipped,
                            tokens,
                            diags,
                            &mut skip_warnings,
                            &mut skip_suppressed,
                        );
                    }
                    state = if b == b'#' {
                        State::Comment
                    } else {
                        State::Blank
                    };
                } else {
                    if let Some(tok) = current.as_mut() {
                        tok.len += 1;
                    }
                    if b == b'"' {
                        state = State::Token { quoted: !quoted };
                    }
                }
            }
        }
        if b == b'\n' {
            line = line.saturating_add(1);
            line_start = i + 1;
            if state == State::Comment {
                state = State::Blank;
            }
        }
        i += 1;
    }
    if let Some(tok) = current.take() {
        if state == (State::Token { quoted: true }) {
            diags.push(unterminated(&tok, bytes, file));
        }
        finish(
            tok,
            bytes,
            &mut skipped,
            tokens,
            diags,
            &mut skip_warnings,
            &mut skip_suppressed,
        );
    }
    flush_skipped(
        &mut skipped,
        None,
        diags,
        &mut skip_warnings,
        &mut skip_suppressed,
    );
    if skip_suppressed > 0 {
        diags.push(Diagnostic::warning(
            "skipped-bytes",
            start_loc,
            format!("{skip_suppressed} more runs of skipped bytes are not reported one by one"),
        ));
    }
}

fn unterminated(tok: &Span, bytes: &[u8], file: &str) -> Diagnostic {
    Diagnostic::warning(
        "unterminated-quote",
        tok.location(file),
        format!(
            "unterminated quote: colinux-daemon ends the token at the end of the line and keeps the `\"` in `{}`",
            show_bytes(tok.text(bytes))
        ),
    )
    .with_help("close the quote on the same line")
}

fn finish(
    tok: Span,
    bytes: &[u8],
    skipped: &mut Option<Skipped>,
    tokens: &mut Vec<Span>,
    diags: &mut Vec<Diagnostic>,
    count: &mut usize,
    suppressed: &mut usize,
) {
    flush_skipped(skipped, Some((&tok, bytes)), diags, count, suppressed);
    tokens.push(tok);
}

/// Reports a run of skipped bytes. `next` is the token that follows it directly (on the
/// same line, with nothing in between), whose text the reader probably thinks includes them.
fn flush_skipped(
    skipped: &mut Option<Skipped>,
    next: Option<(&Span, &[u8])>,
    diags: &mut Vec<Diagnostic>,
    count: &mut usize,
    suppressed: &mut usize,
) {
    let Some(s) = skipped.take() else {
        return;
    };
    if *count >= MAX_SKIP_WARNINGS {
        *suppressed += 1;
        return;
    }
    *count += 1;
    let adjacent = next
        .filter(|(t, _)| {
            t.line == s.loc.line && u64::from(t.col) == u64::from(s.loc.col) + s.bytes.len() as u64
        })
        .map(|(t, bytes)| t.text(bytes));
    let shown = show_bytes(&s.bytes);
    let diag = match adjacent {
        Some(tok) if s.bytes.ends_with(b"@") => Diagnostic::warning(
            "nested-file",
            s.loc,
            format!(
                "`@` files do not nest: colinux-daemon drops the `{shown}` and passes `{}` to the guest kernel",
                show_bytes(tok)
            ),
        )
        .with_help("give every @file on the colinux-daemon command line instead"),
        Some(tok) => Diagnostic::warning(
            "skipped-bytes",
            s.loc,
            format!(
                "`{shown}` is skipped: a token can only start with a letter, a digit or `.`, so colinux-daemon reads `{}`",
                show_bytes(tok)
            ),
        )
        .with_help(
            "start every line with a letter; daemon switches such as -d or -t cannot be given in a file",
        ),
        None => Diagnostic::warning(
            "skipped-bytes",
            s.loc,
            format!(
                "`{shown}` is skipped: only a letter, a digit or `.` can start a token; comments start with `#`"
            ),
        ),
    };
    diags.push(diag);
}

/// Line and column of byte `offset` in `bytes`.
fn location_of(bytes: &[u8], offset: usize, file: &str) -> Location {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    Location {
        file: file.to_string(),
        line: u32::try_from(line).unwrap_or(u32::MAX),
        col: u32::try_from(offset - line_start + 1).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(input: &[u8], d: &mut Vec<Diagnostic>) -> Vec<Span> {
        let mut out = Vec::new();
        tokenize(input, "t", 0, d, &mut out);
        out
    }

    fn toks(input: &[u8]) -> Vec<Vec<u8>> {
        let mut d = Vec::new();
        spans(input, &mut d)
            .into_iter()
            .map(|t| t.text(input).to_vec())
            .collect()
    }

    #[test]
    fn spec_1_3_examples() {
        assert_eq!(
            toks(br#"cobd0="c:\coLinux\root_fs""#),
            vec![br#"cobd0="c:\coLinux\root_fs""#.to_vec()]
        );
        assert_eq!(toks(b"mem=64 # comment"), vec![b"mem=64".to_vec()]);
        assert_eq!(toks(b"mem=64#c"), vec![b"mem=64".to_vec()]);
        assert_eq!(
            toks(b"-d\n/dev/x\n@other.conf\n_x=1"),
            vec![
                b"d".to_vec(),
                b"dev/x".to_vec(),
                b"other.conf".to_vec(),
                b"x=1".to_vec()
            ]
        );
        assert_eq!(
            toks(br#""eth0=tuntap,x""#),
            vec![br#"eth0=tuntap,x""#.to_vec()]
        );
        assert_eq!(
            toks(br#"exec0=a.exe,"x#y""#),
            vec![br#"exec0=a.exe,"x"#.to_vec()]
        );
        assert_eq!(
            toks(b"ttys0=COM1,\"a\tb\""),
            vec![b"ttys0=COM1,\"a".to_vec(), b"b\"".to_vec()]
        );
        assert_eq!(
            toks(br#"foo"bar baz"qux"#),
            vec![br#"foo"bar baz"qux"#.to_vec()]
        );
    }

    #[test]
    fn tokens_carry_line_and_column() {
        let mut d = Vec::new();
        let t = spans(b"# c\n  mem=64\r\nkernel=x", &mut d);
        assert_eq!((t[0].line, t[0].col), (2, 3));
        assert_eq!((t[1].line, t[1].col), (3, 1));
        assert!(d.is_empty());
    }
}
