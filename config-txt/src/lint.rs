//! The linter: configurations colinux-daemon accepts but that will hurt (colinux-spec.md
//! §1.7-§1.11, §6.4, §7, §8).
//!
//! It works on the model, so it can judge a configuration built in memory as well as one
//! read from a file; [`crate::Parsed::lint`] places each finding on the line of its item.
//! Most findings are warnings. The exceptions are slirp redirections the slirp helper
//! refuses (the machine then starts without that network): those are errors.

use crate::diagnostic::{Diagnostic, Item, Severity};
use crate::model::{Config, MEM_RANGE_MB, Nic};
use crate::slirp::{Protocol, parse_redirections};

/// What the linter needs to know beyond the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LintOptions {
    /// The machine has completed its first boot, so `initrd=` should be gone (spec §7).
    pub first_boot_done: bool,
}

impl LintOptions {
    /// Options for a machine that has booted once already.
    pub fn after_first_boot() -> Self {
        LintOptions {
            first_boot_done: true,
        }
    }
}

fn finding(severity: Severity, code: &'static str, item: Item, message: String) -> Diagnostic {
    Diagnostic::new(severity, code, None, message).with_item(item)
}

fn warn(code: &'static str, item: Item, message: String) -> Diagnostic {
    finding(Severity::Warning, code, item, message)
}

/// `C:`, `C:\` or `C:/`: a whole drive.
fn is_whole_drive(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b.len() == 2 || (b.len() == 3 && matches!(b[2], b'\\' | b'/')))
}

/// Absolute for the daemon: `X:\`, `X:/`, UNC or `\\.\`, NT device paths, or a
/// Linux-host absolute path. `\x` (current drive) and `X:x` (current folder of X:) are not.
fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/'))
        || path.starts_with("\\\\")
        || path.starts_with('/')
        || path.starts_with("\\Device\\")
        || path.starts_with("\\DosDevices\\")
}

/// Every host path of the model, with its item and key name.
fn paths(cfg: &Config) -> Vec<(Item, String, &str)> {
    let mut out: Vec<(Item, String, &str)> = Vec::new();
    if let Some(k) = &cfg.kernel {
        out.push((Item::Kernel, "kernel".into(), k));
    }
    if let Some(i) = &cfg.initrd {
        out.push((Item::Initrd, "initrd".into(), i));
    }
    for (n, c) in &cfg.cobd {
        out.push((Item::Cobd(*n), format!("cobd{n}"), &c.path));
    }
    for (n, s) in &cfg.scsi {
        out.push((Item::Scsi(*n), format!("scsi{n}"), &s.path));
    }
    for (n, p) in &cfg.cofs {
        out.push((Item::Cofs(*n), format!("cofs{n}"), p));
    }
    out
}

/// Lints a model. Findings carry their [`Item`]; their location is filled in by
/// [`crate::Parsed::lint`] when the model came from a file.
pub fn lint(cfg: &Config, options: &LintOptions) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    lint_paths(cfg, &mut out);
    lint_mem(cfg, &mut out);
    lint_boot_params(cfg, &mut out);
    lint_nics(cfg, &mut out);
    lint_aliases(cfg, &mut out);
    lint_programs(cfg, &mut out);
    if cfg.initrd.is_some() {
        if options.first_boot_done {
            out.push(
                warn(
                    "initrd-after-first-boot",
                    Item::Initrd,
                    "`initrd=` is still set after the first boot: every boot reinstalls the modules, and if that fails \
                     the initrd waits for Enter on the console, which hangs a machine started without one"
                        .to_string(),
                )
                .with_help("remove the `initrd=` line (colinux-setup does this after a successful first boot)"),
            );
        }
        if cfg.cofs.contains_key(&31) {
            out.push(
                warn(
                    "cofs31-taken",
                    Item::Cofs(31),
                    "`cofs31` is set, so colinux-daemon does not map it to the initrd's folder and the initrd cannot \
                     install the kernel modules"
                        .to_string(),
                )
                .with_help("use another cofs index for this share while `initrd=` is set"),
            );
        }
    }
    out
}

fn lint_paths(cfg: &Config, out: &mut Vec<Diagnostic>) {
    for (item, key, path) in paths(cfg) {
        if let Item::Cofs(n) = item
            && is_whole_drive(path)
        {
            out.push(
                warn(
                    "cofs-whole-drive",
                    item,
                    format!(
                        "`{key}={path}` shares a whole drive: colinux-daemon runs with administrator rights, so the \
                         guest can change any file on it"
                    ),
                )
                .with_help(format!("share one folder instead, e.g. `cofs{n}={}\\coLinux\\share`", &path[..2])),
            );
        }
        if path.contains(' ') {
            out.push(
                warn(
                    "path-spaces",
                    item,
                    format!(
                        "the `{key}` path `{path}` contains spaces: it works in config.txt only when quoted, and \
                         coLinux's service and helper command lines drop the quotes"
                    ),
                )
                .with_help("install coLinux and its images in a folder without spaces, e.g. C:\\coLinux"),
            );
        }
        let device = matches!(item, Item::Scsi(n) if cfg.scsi.get(&n).is_some_and(|s| !s.kind.canonicalised()));
        if !device && !is_absolute(path) {
            out.push(
                warn(
                    "relative-path",
                    item,
                    format!(
                        "the `{key}` path `{path}` is relative: colinux-daemon resolves it against the folder it is \
                         started from, not the folder of config.txt"
                    ),
                )
                .with_help("write the full path, or always start colinux-daemon from this folder"),
            );
        }
        if path.starts_with("\\??\\") || path.starts_with("\\Volume{") {
            out.push(
                warn(
                    "path-nt-prefix",
                    item,
                    format!(
                        "colinux-daemon does not recognise `{path}` as a device path and mangles it"
                    ),
                )
                .with_help("write `\\DosDevices\\C:\\...` or a plain `C:\\...` path"),
            );
        }
    }
}

fn lint_mem(cfg: &Config, out: &mut Vec<Diagnostic>) {
    let Some(mem) = cfg.mem else {
        return;
    };
    if mem == 0 {
        return;
    }
    if !MEM_RANGE_MB.contains(&mem) {
        let clamped = mem.clamp(*MEM_RANGE_MB.start(), *MEM_RANGE_MB.end());
        out.push(
            warn(
                "mem-range",
                Item::Mem,
                format!("the coLinux driver clamps guest RAM to 8..984 MB, so `mem={mem}` gives {clamped} MB"),
            )
            .with_help(format!("write `mem={}`", clamped - clamped % 4)),
        );
    } else if mem % 4 != 0 {
        out.push(
            warn(
                "mem-multiple-of-4",
                Item::Mem,
                format!("`mem={mem}` is not a multiple of 4 MB; older coLinux kernels crash with such sizes"),
            )
            .with_help(format!("write `mem={}`", mem - mem % 4)),
        );
    }
}

const SCALAR_KEYS: [&str; 7] = [
    "kernel", "initrd", "mem", "cocon", "cursor", "color", "setcobd",
];

fn lint_boot_params(cfg: &Config, out: &mut Vec<Diagnostic>) {
    for (i, p) in cfg.boot_params.iter().enumerate() {
        let Some((key, _)) = p.split_once('=') else {
            continue;
        };
        if SCALAR_KEYS.contains(&key) {
            out.push(
                warn(
                    "duplicate-scalar",
                    Item::BootParam(i),
                    format!(
                        "`{key}=` is given twice: colinux-daemon uses the first one and passes `{p}` to the guest \
                         kernel (not the last one, as its documentation says)"
                    ),
                )
                .with_help(format!("keep one `{key}=` line")),
            );
        }
    }
}

fn lint_nics(cfg: &Config, out: &mut Vec<Diagnostic>) {
    let mut macs: Vec<(u8, crate::model::Mac)> = Vec::new();
    // (eth index, protocol, first host port, count)
    let mut ports: Vec<(u8, Protocol, i64, i64)> = Vec::new();
    for (&n, nic) in &cfg.eth {
        let item = Item::Eth(n);
        match nic.mac() {
            None => out.push(
                warn(
                    "mac-missing",
                    item,
                    format!(
                        "eth{n} has no MAC: colinux-daemon makes one up and stores it per number of running \
                         machines, so it can change, and the guest renames its interface"
                    ),
                )
                .with_help("give a fixed, locally administered MAC such as 02:00:00:00:00:01"),
            ),
            Some(mac) => {
                if mac.is_multicast() {
                    out.push(warn(
                        "mac-multicast",
                        item,
                        format!("eth{n}: {mac} is a multicast (group) address, which no adapter can use"),
                    ));
                } else if !mac.is_locally_administered() {
                    out.push(
                        warn(
                            "mac-not-local",
                            item,
                            format!(
                                "eth{n}: {mac} is not a locally administered address and may clash with real hardware"
                            ),
                        )
                        .with_help("use a MAC whose first byte has bit 0x02 set, e.g. 02:..."),
                    );
                }
                if let Some((m, _)) = macs.iter().find(|(_, other)| *other == mac) {
                    out.push(warn("mac-duplicate", item, format!("eth{n} has the same MAC {mac} as eth{m}")));
                }
                macs.push((n, mac));
            }
        }
        let Nic::Slirp { redirs, .. } = nic else {
            continue;
        };
        match parse_redirections(redirs) {
            Err(e) => out.push(
                finding(
                    Severity::Error,
                    "slirp-redirection",
                    item,
                    format!("eth{n}: the slirp helper refuses the redirections: {e}"),
                )
                .with_help(
                    "write redirections as tcp|udp:HOSTPORT:GUESTPORT[:COUNT], joined by `/`",
                ),
            ),
            Ok(r) => {
                if let Some(at) = r.ignored_from {
                    out.push(warn(
                        "slirp-redirection-ignored",
                        item,
                        format!(
                            "eth{n}: the slirp helper silently ignores `{}` in the redirections",
                            redirs.get(at..).unwrap_or("")
                        ),
                    ));
                }
                for red in r.list {
                    let host_end = i64::from(red.host_port) + i64::from(red.count) - 1;
                    let guest_end = i64::from(red.guest_port) + i64::from(red.count) - 1;
                    if red.host_port < 1
                        || red.guest_port < 1
                        || host_end > 65535
                        || guest_end > 65535
                    {
                        out.push(warn(
                            "slirp-port-range",
                            item,
                            format!("eth{n}: the redirection `{red}` uses ports outside 1..65535"),
                        ));
                    }
                    let start = i64::from(red.host_port);
                    let count = i64::from(red.count);
                    if let Some((m, _, s, _)) = ports.iter().find(|(_, proto, s, c)| {
                        *proto == red.protocol && start < s + c && *s < start + count
                    }) {
                        let shared = start.max(*s);
                        let other = if *m == n {
                            "this adapter".to_string()
                        } else {
                            format!("eth{m}")
                        };
                        out.push(
                            warn(
                                "slirp-collision",
                                item,
                                format!(
                                    "eth{n}: host {} port {shared} is already redirected by {other}; the second bind \
                                     fails and the slirp helper only warns",
                                    red.protocol.as_str()
                                ),
                            )
                            .with_help("give every redirection its own host port"),
                        );
                    }
                    ports.push((n, red.protocol, start, count));
                }
            }
        }
    }
}

/// The alias names the guest's cobd driver knows: `hda`..`hdh` with index 0..20 and
/// `sda`..`sdp` with index 0..15 (spec §6.1, the top index being off by one).
fn known_alias(name: &str) -> bool {
    let b = name.as_bytes();
    if b.len() < 3 {
        return false;
    }
    let (last_letter, max) = match &b[..2] {
        b"hd" => (b'h', 20u32),
        b"sd" => (b'p', 15u32),
        _ => return false,
    };
    if !(b'a'..=last_letter).contains(&b[2]) {
        return false;
    }
    let rest = &name[3..];
    rest.is_empty()
        || (rest.bytes().all(|c| c.is_ascii_digit())
            && !rest.starts_with('0')
            && rest.parse::<u32>().is_ok_and(|i| i <= max))
}

fn lint_aliases(cfg: &Config, out: &mut Vec<Diagnostic>) {
    for (n, c) in &cfg.cobd {
        if let Some(alias) = &c.alias
            && !known_alias(alias)
        {
            out.push(warn(
                "alias-unknown",
                Item::Alias(*n),
                format!(
                    "the guest's cobd driver knows no alias `{alias}` (only hda..hdh with 0..20 and sda..sdp with \
                     0..15); it logs `alias {alias} is unknown` and creates nothing"
                ),
            ));
        }
    }
}

fn lint_programs(cfg: &Config, out: &mut Vec<Diagnostic>) {
    for (n, e) in &cfg.exec {
        if e.program.contains(' ') && !e.program.starts_with('"') {
            out.push(
                warn(
                    "exec-spaces",
                    Item::Exec(*n),
                    format!(
                        "exec{n}: the program `{}` contains spaces; colinux-daemon starts `<program> <args>` without \
                         quoting, so Windows splits it at the first space",
                        e.program
                    ),
                )
                .with_help(format!("embed quotes: exec{n}=\"\"\"{}\"\"\"", e.program)),
            );
        }
    }
    for (n, t) in &cfg.ttys {
        if t.name.contains(' ') {
            out.push(warn(
                "ttys-spaces",
                Item::Ttys(*n),
                format!("ttys{n}: the device name `{}` is passed unquoted to the serial helper, which splits it at the space", t.name),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_drive_and_absolute_paths() {
        assert!(is_whole_drive("c:\\"));
        assert!(is_whole_drive("D:"));
        assert!(!is_whole_drive("c:\\x"));
        assert!(is_absolute("c:\\coLinux\\root.img"));
        assert!(is_absolute("\\\\srv\\share"));
        assert!(!is_absolute(".\\root.img"));
        assert!(!is_absolute("\\root.img"));
        assert!(!is_absolute("c:root.img"));
    }

    #[test]
    fn alias_names_the_guest_knows() {
        assert!(known_alias("hda1"));
        assert!(known_alias("sdp"));
        assert!(!known_alias("hdi"));
        assert!(!known_alias("sda16"));
        assert!(!known_alias("hdc-x"));
    }
}
