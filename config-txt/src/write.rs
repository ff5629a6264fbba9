//! The writer: one canonical config.txt for a model (colinux-spec.md §9, the rules a
//! writer must follow).
//!
//! - every line starts with a letter (boot parameters: with a letter, digit or `.`, the
//!   bytes that can start a token), and holds one token;
//! - each single-valued key once, in sections with a comment saying what they are;
//! - values with spaces are quoted; comma fields use `,,` for an empty field and `""` for
//!   a literal quote; trailing empty fields are left out;
//! - boot parameters come last, so a kernel parameter that merely starts like a
//!   single-valued key (`memmap=`) follows the real key and is passed on (spec §1.5).
//!
//! It refuses what colinux-daemon could not read back: a `#` or control byte in a value,
//! a path over its limit, a `"` in a path, a kernel parameter the daemon would take as a
//! key, values the daemon rejects. As a last guard it parses its own output and refuses
//! to return text that reads back as a different model, so `parse(write(m)) == m`
//! whenever `write` succeeds.

use std::fmt::Write as _;

use crate::model::*;
use crate::parse::parse;
use crate::tokenizer::tokenize;

/// Why a model cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// `kernel` is not set.
    #[error("kernel: `kernel=` is mandatory (colinux-daemon interprets no other key without it)")]
    MissingKernel,
    /// A value contains `#`, which always starts a comment.
    #[error("{key}: a value cannot contain `#`, colinux-daemon ends the value there (`{value}`)")]
    Hash {
        /// The key, e.g. `cobd0`.
        key: String,
        /// The value.
        value: String,
    },
    /// A value contains a control character (a tab or line break ends a token).
    #[error("{key}: a value cannot contain control characters (`{value}`)")]
    Control {
        /// The key.
        key: String,
        /// The value, control characters escaped.
        value: String,
    },
    /// A value is longer than its daemon buffer.
    #[error("{key}: {len} bytes is over colinux-daemon's limit of {max}")]
    TooLong {
        /// The key (or `boot line`).
        key: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An index is outside its range.
    #[error("{key}{index}: index out of range 0..={max}")]
    Index {
        /// The key without index.
        key: &'static str,
        /// The index.
        index: u8,
        /// The highest index.
        max: u8,
    },
    /// A boot parameter would not reach the guest unchanged.
    #[error("boot parameter `{param}`: {reason}")]
    BootParam {
        /// The parameter.
        param: String,
        /// Why.
        reason: String,
    },
    /// A value colinux-daemon would refuse.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The written file would not read back as the same model.
    #[error("{key}: cannot be written so that colinux-daemon reads it back unchanged: {reason}")]
    NotRepresentable {
        /// What could not be written.
        key: String,
        /// Why.
        reason: String,
    },
}

fn escaped(s: &str) -> String {
    s.chars().flat_map(char::escape_default).collect()
}

/// Rejects bytes no token can carry.
fn check_text(key: &str, value: &str) -> Result<(), WriteError> {
    if value.contains('#') {
        return Err(WriteError::Hash {
            key: key.to_string(),
            value: value.to_string(),
        });
    }
    if value.bytes().any(|b| b <= 0x1f) {
        return Err(WriteError::Control {
            key: key.to_string(),
            value: escaped(value),
        });
    }
    Ok(())
}

fn too_long(key: &str, len: usize, max: usize) -> Result<(), WriteError> {
    if len > max {
        Err(WriteError::TooLong {
            key: key.to_string(),
            len,
            max,
        })
    } else {
        Ok(())
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> WriteError {
    WriteError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// A whole-value path (`kernel`, `initrd`, `cobdN`, `cofsN`): quoted when it has spaces.
fn path_value(key: &str, path: &str, max: usize) -> Result<String, WriteError> {
    check_text(key, path)?;
    if path.is_empty() {
        return Err(invalid(key, "the path is empty"));
    }
    if path.contains('"') {
        return Err(invalid(
            key,
            "a path cannot contain `\"` (colinux-daemon strips quotes from paths)",
        ));
    }
    let v = if path.contains(' ') {
        format!("\"{path}\"")
    } else {
        path.to_string()
    };
    too_long(key, v.len(), max)?;
    Ok(v)
}

/// One comma field: `"` doubled, the whole field quoted when it has `,` or a space.
fn field(key: &str, text: &str, max: usize) -> Result<String, WriteError> {
    check_text(key, text)?;
    too_long(key, text.len(), max)?;
    let esc = text.replace('"', "\"\"");
    Ok(if text.contains([',', ' ']) {
        format!("\"{esc}\"")
    } else {
        esc
    })
}

/// Fields joined by commas, trailing empty fields dropped.
fn fields(parts: &[String]) -> String {
    let keep = parts
        .iter()
        .rposition(|p| !p.is_empty())
        .map_or(0, |i| i + 1);
    parts[..keep].join(",")
}

fn check_index(key: &'static str, index: u8, max: u8) -> Result<(), WriteError> {
    if index > max {
        Err(WriteError::Index { key, index, max })
    } else {
        Ok(())
    }
}

const INDEXED_KEYS: [&str; 7] = ["cobd", "scsi", "eth", "cofs", "ttys", "exec", "pci"];

/// Refuses a boot parameter that colinux-daemon would not pass to the guest as it is.
fn check_boot_param(cfg: &Config, param: &str, is_root: bool) -> Result<(), WriteError> {
    let refuse = |reason: String| WriteError::BootParam {
        param: param.to_string(),
        reason,
    };
    if param.is_empty() {
        return Err(refuse("empty".to_string()));
    }
    if param.contains('#') {
        return Err(refuse("`#` would start a comment".to_string()));
    }
    if !param.as_bytes()[0].is_ascii_alphanumeric() && !param.starts_with('.') {
        return Err(refuse(
            "colinux-daemon drops leading bytes other than a letter, a digit or `.`".to_string(),
        ));
    }
    if !is_root && param.starts_with("root=") {
        return Err(refuse("set `Config::root` instead".to_string()));
    }
    if param.contains('=') {
        for key in INDEXED_KEYS.iter().chain(&["hd", "sd"]) {
            if param.starts_with(key) {
                return Err(refuse(format!(
                    "colinux-daemon takes every `{key}...=` token as its `{key}` key, so it cannot reach the guest"
                )));
            }
        }
        let scalars: [(&str, bool); 7] = [
            ("kernel", cfg.kernel.is_some()),
            ("initrd", cfg.initrd.is_some()),
            ("mem", cfg.mem.is_some()),
            ("cocon", cfg.cocon.is_some()),
            ("cursor", cfg.cursor.is_some()),
            ("color", cfg.color.is_some()),
            ("setcobd", cfg.setcobd.is_some()),
        ];
        for (key, present) in scalars {
            if !param.starts_with(key) {
                continue;
            }
            if param.as_bytes().get(key.len()) == Some(&b'=') {
                return Err(refuse(format!(
                    "it repeats the daemon key `{key}=`; colinux-daemon would read the first and pass this one to the guest"
                )));
            }
            if !present {
                return Err(refuse(format!(
                    "without a `{key}=` line before it, colinux-daemon reads it as the `{key}` key and fails \
                     (\"Index not allowed for '{key}'\")"
                )));
            }
        }
    }
    let mut diags = Vec::new();
    let mut toks = Vec::new();
    tokenize(param.as_bytes(), "", 0, &mut diags, &mut toks);
    if toks.len() != 1 || toks[0].text(param.as_bytes()) != param.as_bytes() || !diags.is_empty() {
        return Err(refuse(
            "it does not read back as one token (control characters, unbalanced quotes or spaces outside quotes)"
                .to_string(),
        ));
    }
    Ok(())
}

/// The comments the writer puts above each section: what the lines mean to the program
/// that reads the file. They are comments only, so they never change what is read;
/// [`Notes::colinux`] (what [`write`] uses) speaks of colinux-daemon, and a program that
/// reads the same grammar for another monitor gives its own words to [`write_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notes {
    /// The opening lines, each without its `# `.
    pub header: Vec<String>,
    /// Above `kernel=`.
    pub kernel: String,
    /// Above `initrd=`.
    pub initrd: String,
    /// Above `mem=`.
    pub mem: String,
    /// Above the `cobdN=` lines.
    pub cobd: String,
    /// Above the `ethN=` lines.
    pub eth: String,
    /// Above the boot parameters (`root=` first).
    pub boot: String,
}

impl Notes {
    /// colinux-daemon's words: the comments of [`write`].
    pub fn colinux() -> Notes {
        Notes {
            header: vec![
                "coLinux machine configuration, read by colinux-daemon 0.7 (colinux-daemon @config.txt).".to_string(),
                "One setting per line. `#` starts a comment, even inside quotes, so values cannot contain it.".to_string(),
                "Relative paths are resolved against the folder colinux-daemon is started from.".to_string(),
            ],
            kernel: "Guest kernel (vmlinux), loaded by colinux-daemon.".to_string(),
            initrd: "Initial RAM disk: installs the kernel modules; needed for the first boot only.".to_string(),
            mem: "Guest RAM in MB (0: automatic; the driver clamps it to 8..984).".to_string(),
            cobd: "Block devices: cobdN is /dev/cobdN in the guest (one filesystem or swap per image).".to_string(),
            eth: "Network adapters: tuntap,NAME,MAC | pcap-bridge,NAME,MAC,nopromisc | ndis-bridge,... | slirp,MAC,REDIRECTIONS".to_string(),
            boot: "Guest kernel command line, in this order (255 bytes at most).".to_string(),
        }
    }
}

/// Writes the canonical config.txt of a model, with colinux-daemon's comments.
pub fn write(cfg: &Config) -> Result<String, WriteError> {
    write_with(cfg, &Notes::colinux())
}

/// [`write`] with other comments: the same settings, byte for byte, under `notes`.
/// A note that would not stay one comment line (a line break in it) is refused.
pub fn write_with(cfg: &Config, notes: &Notes) -> Result<String, WriteError> {
    let all = notes.header.iter().chain([
        &notes.kernel,
        &notes.initrd,
        &notes.mem,
        &notes.cobd,
        &notes.eth,
        &notes.boot,
    ]);
    for n in all {
        if n.contains(['\n', '\r']) {
            return Err(invalid(
                "comment",
                format!("`{}` is not one line", escaped(n)),
            ));
        }
    }
    let mut out = String::new();
    // `writeln!` into a String cannot fail.
    macro_rules! line {
        ($($arg:tt)*) => {{ let _ = writeln!(out, $($arg)*); }};
    }
    for h in &notes.header {
        line!("# {h}");
    }

    let kernel = cfg.kernel.as_deref().ok_or(WriteError::MissingKernel)?;
    line!();
    line!("# {}", notes.kernel);
    line!("kernel={}", path_value("kernel", kernel, MAX_KERNEL_PATH)?);
    if let Some(initrd) = &cfg.initrd {
        line!("# {}", notes.initrd);
        line!("initrd={}", path_value("initrd", initrd, MAX_KERNEL_PATH)?);
    }
    if let Some(mem) = cfg.mem {
        line!();
        line!("# {}", notes.mem);
        line!("mem={mem}");
    }

    if cfg.setcobd.is_some() || !cfg.cobd.is_empty() {
        line!();
        line!("# {}", notes.cobd);
    }
    if let Some(mode) = cfg.setcobd {
        line!("setcobd={}", mode.as_str());
    }
    for (&n, c) in &cfg.cobd {
        check_index("cobd", n, MAX_COBD)?;
        line!(
            "cobd{n}={}",
            path_value(&format!("cobd{n}"), &c.path, MAX_PATH)?
        );
    }
    let aliased: Vec<_> = cfg
        .cobd
        .iter()
        .filter_map(|(n, c)| c.alias.as_ref().map(|a| (n, a)))
        .collect();
    if !aliased.is_empty() {
        line!("# Aliases: the same device under a second name in the guest.");
    }
    for (n, alias) in aliased {
        let key = format!("alias of cobd{n}");
        let suffix = alias
            .strip_prefix("hd")
            .or_else(|| alias.strip_prefix("sd"));
        match suffix {
            Some(s) if s.len() <= 4 && !s.contains('=') => {}
            _ => {
                return Err(invalid(
                    &key,
                    format!("`{alias}` is not hd or sd followed by at most 4 characters"),
                ));
            }
        }
        check_text(&key, alias)?;
        line!("{alias}=:cobd{n}");
    }

    if !cfg.scsi.is_empty() {
        line!();
        line!("# SCSI devices: TYPE,PATH,SIZE_MB (a size above 0 creates or resizes the file).");
    }
    for (&n, s) in &cfg.scsi {
        check_index("scsi", n, MAX_SCSI)?;
        let key = format!("scsi{n}");
        if s.path.is_empty() {
            return Err(invalid(&key, "the path is empty"));
        }
        if s.kind.canonicalised() && s.path.contains('"') {
            return Err(invalid(
                &key,
                "a path cannot contain `\"` (colinux-daemon strips quotes from paths)",
            ));
        }
        if s.size_mb > MAX_SCSI_SIZE_MB {
            return Err(invalid(
                &key,
                format!(
                    "size {} MB is out of range 0..{MAX_SCSI_SIZE_MB}",
                    s.size_mb
                ),
            ));
        }
        let size = if s.size_mb == 0 {
            String::new()
        } else {
            s.size_mb.to_string()
        };
        line!(
            "{key}={}",
            fields(&[
                s.kind.as_str().to_string(),
                field(&key, &s.path, MAX_PATH)?,
                size
            ])
        );
    }

    if !cfg.eth.is_empty() {
        line!();
        line!("# {}", notes.eth);
    }
    for (&n, nic) in &cfg.eth {
        check_index("eth", n, MAX_ETH)?;
        let key = format!("eth{n}");
        let mac = |m: &Option<Mac>| m.map(|m| m.to_string()).unwrap_or_default();
        let parts = match nic {
            Nic::Tuntap { name, mac: m } => vec![field(&key, name, MAX_NAME)?, mac(m)],
            Nic::PcapBridge {
                name,
                mac: m,
                promisc,
            }
            | Nic::NdisBridge {
                name,
                mac: m,
                promisc,
            } => vec![
                field(&key, name, MAX_NAME)?,
                mac(m),
                if *promisc {
                    String::new()
                } else {
                    "nopromisc".to_string()
                },
            ],
            Nic::Slirp { mac: m, redirs } => vec![mac(m), field(&key, redirs, MAX_REDIRS)?],
        };
        let rest = fields(&parts);
        if rest.is_empty() {
            line!("{key}={}", nic.type_name());
        } else {
            line!("{key}={},{rest}", nic.type_name());
        }
    }

    if !cfg.cofs.is_empty() {
        line!();
        line!("# Host folders shared with the guest: mount -t cofs N /mnt/point");
    }
    for (&n, path) in &cfg.cofs {
        check_index("cofs", n, MAX_COFS)?;
        line!(
            "cofs{n}={}",
            path_value(&format!("cofs{n}"), path, MAX_PATH)?
        );
    }

    if !cfg.pci.is_empty() {
        line!();
        line!("# PCI slots: FUNCTION,TYPE,UNIT.");
    }
    for (&n, p) in &cfg.pci {
        check_index("pci", n, MAX_PCI)?;
        let key = format!("pci{n}");
        if p.function > 7 {
            return Err(invalid(
                &key,
                format!("function {} is out of range 0..7", p.function),
            ));
        }
        let (kind, enabled) = match p.kind {
            PciKind::Scsi => ("scsi", cfg.scsi.contains_key(&p.unit)),
            PciKind::Network => ("network", cfg.eth.contains_key(&p.unit)),
        };
        if !enabled {
            return Err(invalid(
                &key,
                format!("unit {} is not a configured {kind} device", p.unit),
            ));
        }
        line!("{key}={},{kind},{}", p.function, p.unit);
    }

    if !cfg.ttys.is_empty() {
        line!();
        line!("# Serial ports: HOST_DEVICE,MODE.");
    }
    for (&n, t) in &cfg.ttys {
        check_index("ttys", n, MAX_TTYS)?;
        let key = format!("ttys{n}");
        if t.name.is_empty() {
            return Err(invalid(&key, "the host device name is empty"));
        }
        line!(
            "{key}={}",
            fields(&[
                field(&key, &t.name, MAX_NAME)?,
                field(&key, &t.mode, MAX_TTYS_MODE)?
            ])
        );
    }

    if !cfg.exec.is_empty() {
        line!();
        line!("# Programs started with the machine: PROGRAM,ARGUMENTS.");
    }
    for (&n, e) in &cfg.exec {
        check_index("exec", n, MAX_EXEC)?;
        let key = format!("exec{n}");
        if e.program.is_empty() {
            return Err(invalid(&key, "the program is empty"));
        }
        line!(
            "{key}={}",
            fields(&[
                field(&key, &e.program, MAX_EXEC_PROG)?,
                field(&key, &e.args, MAX_EXEC_ARGS)?
            ])
        );
    }

    if cfg.cocon.is_some() || cfg.cursor.is_some() || cfg.color.is_some() {
        line!();
        line!("# Console: COLSxROWSxSCROLLBACK, cursor size in percent, FOREGROUND,BACKGROUND.");
    }
    if let Some(c) = cfg.cocon {
        let ok = c.cols >= 16
            && c.rows >= 2
            && c.scrollback >= c.rows
            && c.scrollback <= c.rows.max(500)
            && i32::try_from(c.cols).is_ok()
            && i32::try_from(c.rows).is_ok();
        if !ok {
            return Err(invalid(
                "cocon",
                format!(
                    "{}x{}x{} is invalid (columns >= 16, rows >= 2, rows <= scrollback <= 500 or rows)",
                    c.cols, c.rows, c.scrollback
                ),
            ));
        }
        let v = if c.scrollback > 500 {
            format!("{}x{}", c.cols, c.rows)
        } else {
            format!("{}x{}x{}", c.cols, c.rows, c.scrollback)
        };
        too_long("cocon", v.len(), 14)?;
        line!("cocon={v}");
    }
    if let Some(c) = cfg.cursor {
        if c > 100 {
            return Err(invalid("cursor", format!("{c} is over 100 percent")));
        }
        line!("cursor={c}");
    }
    if let Some(c) = cfg.color {
        if c.fg == c.bg {
            return Err(invalid("color", "foreground and background are the same"));
        }
        line!("color={},{}", c.fg.as_str(), c.bg.as_str());
    }

    if cfg.root.is_some() || !cfg.boot_params.is_empty() {
        line!();
        line!("# {}", notes.boot);
    }
    if let Some(root) = &cfg.root {
        check_boot_param(cfg, &format!("root={root}"), true)?;
        line!("root={root}");
    }
    for p in &cfg.boot_params {
        check_boot_param(cfg, p, false)?;
        line!("{p}");
    }
    let boot = cfg.boot_line();
    too_long("boot line", boot.len(), MAX_BOOT_LINE)?;

    // The last guard: the text must read back as this very model.
    let back = parse(out.as_bytes(), "config.txt");
    if let Some(e) = back.diagnostics.iter().find(|d| d.is_error()) {
        return Err(WriteError::NotRepresentable {
            key: "config".to_string(),
            reason: e.message.clone(),
        });
    }
    if back.config != *cfg {
        return Err(WriteError::NotRepresentable {
            key: "config".to_string(),
            reason: first_difference(cfg, &back.config),
        });
    }
    Ok(out)
}

fn first_difference(want: &Config, got: &Config) -> String {
    macro_rules! cmp {
        ($($f:ident),*) => {$(
            if want.$f != got.$f {
                return format!("`{}` reads back as {:?} instead of {:?}", stringify!($f), got.$f, want.$f);
            }
        )*};
    }
    cmp!(
        kernel,
        initrd,
        mem,
        setcobd,
        cobd,
        scsi,
        eth,
        cofs,
        pci,
        ttys,
        exec,
        cocon,
        cursor,
        color,
        root,
        boot_params
    );
    "it reads back differently".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Config {
        let mut c = Config::new("/m/linux.uml".to_string());
        c.mem = Some(128);
        c.cobd.insert(0, Cobd::new("/m/root.img".to_string()));
        c.root = Some("/dev/ubda".to_string());
        c
    }

    /// Other comments change nothing colinux-daemon reads: the same lines once the
    /// comments are left out, and the same model read back.
    #[test]
    fn other_notes_change_only_comments() {
        let c = model();
        let colinux = write(&c).expect("write");
        assert!(colinux.starts_with("# coLinux machine configuration, read by colinux-daemon 0.7"));
        let mut notes = Notes::colinux();
        notes.header = vec!["read by another program".to_string()];
        notes.cobd = "cobd0 is /dev/ubda".to_string();
        notes.kernel = "the guest kernel".to_string();
        let other = write_with(&c, &notes).expect("write_with");
        assert!(!other.contains("colinux-daemon"), "{other}");
        assert!(other.contains("# cobd0 is /dev/ubda\n"), "{other}");
        let settings = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(settings(&colinux), settings(&other));
        assert_eq!(parse(other.as_bytes(), "config.txt").config, c);
    }

    #[test]
    fn a_note_of_two_lines_is_refused() {
        let mut notes = Notes::colinux();
        notes.mem = "one\nkernel=/evil".to_string();
        assert!(matches!(
            write_with(&model(), &notes),
            Err(WriteError::Invalid { .. })
        ));
    }
}
