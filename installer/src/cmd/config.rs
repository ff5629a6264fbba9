//! `config check` and `config show`: config.txt as colinux-daemon reads it.
//!
//! The judging is done by the `config-txt` crate (colinux-spec.md §1 and §9); this module
//! only reads files and prints. `check` prints one `FILE:LINE:COL: error|warning: message`
//! line per finding (and an indented `help:` line where there is a fix) on stdout, a
//! summary on stderr, and fails when any file has an error. `show` prints the model.
//!
//! For the wsl monitor (`--monitor wsl`, or a config.txt with an install-state.json
//! beside it whose monitor is wsl), `check` then prints one
//! `FILE:LINE:COL: note: KEY: no WSL meaning (WHY)` per key WSL ignores
//! ([`crate::wsl::config_notes`], the plan's list of them): notes, not findings, so
//! the exit code is what it would be without them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use config_txt::{Config, LintOptions, Nic, Parsed};

use crate::exit::Outcome;
use crate::input;
use crate::profile::Monitor;

/// `config check [--monitor M] FILE...`.
pub fn check(files: &[PathBuf], monitor: Option<&str>) -> Outcome {
    let monitor = match monitor.map(|m| (m, Monitor::parse(m))) {
        Some((m, None)) => {
            return Outcome::Usage(anyhow!("--monitor {m}: use colinux, uml, qemu or wsl"));
        }
        Some((_, m)) => m,
        None => None,
    };
    let mut failed = false;
    for file in files {
        let name = file.display().to_string();
        let bytes = match load(file) {
            Ok(b) => b,
            Err(why) => {
                crate::out::outln!("{name}: error: {why}");
                failed = true;
                continue;
            }
        };
        let parsed = config_txt::parse(&bytes, &name);
        // Whether the machine has booted once is not known from a bare file, so the
        // "initrd after first boot" check is left to `status`, which knows.
        let diags = parsed.check(&LintOptions::default());
        for d in &diags {
            crate::out::outln!("{d}");
        }
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let warnings = diags.len() - errors;
        let st = machine_state(file);
        let notes = match monitor.or(st.as_ref().map(|s| s.monitor)) {
            Some(Monitor::Wsl) => crate::wsl::config_notes(&parsed, &swap_files(st.as_ref())),
            _ => Vec::new(),
        };
        for n in &notes {
            crate::out::outln!("{n}");
        }
        if notes.is_empty() {
            eprintln!("{name}: {errors} error(s), {warnings} warning(s)");
        } else {
            eprintln!(
                "{name}: {errors} error(s), {warnings} warning(s), {} note(s) on what WSL ignores",
                notes.len()
            );
        }
        failed |= errors > 0;
    }
    if failed {
        Outcome::CheckFailed
    } else {
        Outcome::Done
    }
}

/// The install of the machine `file` is the config.txt of: its install-state.json,
/// beside it; `None` for any other file, or a state that cannot be read (`status`
/// says what is wrong with it).
fn machine_state(file: &Path) -> Option<crate::state::InstallState> {
    if file.file_name()? != "config.txt" {
        return None;
    }
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    crate::state::InstallState::read(dir.unwrap_or(Path::new(".")))
        .ok()
        .flatten()
}

/// The file names of a machine's swap images (none without its state).
fn swap_files(st: Option<&crate::state::InstallState>) -> Vec<String> {
    st.map(|st| {
        st.files
            .iter()
            .filter(|f| f.role == crate::state::FileRole::Swap)
            .map(|f| f.file.clone())
            .collect()
    })
    .unwrap_or_default()
}

/// `config show [FILE | --prefix DIR] [--json]`.
pub fn show(file: Option<&Path>, prefix: Option<&Path>, json: bool) -> Outcome {
    let path = match (file, prefix) {
        (Some(_), Some(_)) => {
            return Outcome::Usage(anyhow!("give either FILE or --prefix DIR, not both"));
        }
        (Some(f), None) => f.to_path_buf(),
        (None, Some(p)) => p.join("config.txt"),
        (None, None) => {
            return Outcome::Usage(anyhow!(
                "give the config.txt to show, or --prefix DIR for an installed machine"
            ));
        }
    };
    let name = path.display().to_string();
    let bytes = match read_config(&path) {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(e),
    };
    let parsed = config_txt::parse(&bytes, &name);
    let diags = parsed.check(&LintOptions::default());
    if parsed.has_errors() {
        for d in &diags {
            eprintln!("{d}");
        }
        let errors = diags.iter().filter(|d| d.is_error()).count();
        return Outcome::Failed(anyhow!(
            "{name} has {errors} error(s); colinux-daemon would not start with it (see `colinux-setup config check {name}`)"
        ));
    }
    if json {
        let value = serde_json::json!({
            "file": name,
            "config": parsed.config,
            "boot_line": parsed.config.boot_line(),
            "implied_cofs31": parsed.config.implied_cofs31(),
            "diagnostics": diags,
        });
        match serde_json::to_string_pretty(&value) {
            Ok(text) => crate::out::outln!("{text}"),
            Err(e) => {
                return Outcome::Failed(anyhow!(e).context("cannot encode the model as JSON"));
            }
        }
    } else {
        crate::out::out!("{}", human(&name, &parsed));
        for d in &diags {
            eprintln!("{d}");
        }
    }
    Outcome::Done
}

/// Reads a config.txt to judge: a regular text file of at most
/// [`input::CONFIG_TXT_LIMIT`]. A file with a NUL byte near its start is not a config.txt
/// (colinux-daemon would stop reading at the NUL): it is refused as not text instead of
/// being judged token by token. UTF-16 is left to the parser, which says what to do.
pub fn read_config(path: &Path) -> anyhow::Result<Vec<u8>> {
    load(path).map_err(|why| anyhow!("{}: {why}", path.display()))
}

/// [`read_config`], the error saying why without the path.
fn load(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = input::read(path, input::CONFIG_TXT_LIMIT, "a config.txt")
        .map_err(|e| format!("cannot read the file: {}", e.reason()))?;
    if let Some(at) = input::binary_at(&bytes) {
        return Err(format!(
            "not a text file (a NUL byte at offset {at}); a config.txt is text, and colinux-daemon stops reading at the first NUL byte"
        ));
    }
    Ok(bytes)
}

fn mac_text(mac: Option<config_txt::Mac>) -> String {
    mac.map_or_else(
        || "(generated by the daemon)".to_string(),
        |m| m.to_string(),
    )
}

fn quoted(s: &str) -> String {
    if s.is_empty() {
        "(any)".to_string()
    } else {
        format!("\"{s}\"")
    }
}

/// The model as aligned `key  value` lines.
fn human(name: &str, parsed: &Parsed) -> String {
    let c: &Config = &parsed.config;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: String, v: String| rows.push((k, v));
    row("kernel".into(), c.kernel.clone().unwrap_or_default());
    if let Some(i) = &c.initrd {
        row("initrd".into(), i.clone());
    }
    if let Some(m) = c.mem {
        let text = if m == 0 {
            "automatic".to_string()
        } else {
            format!("{m} MB")
        };
        row("mem".into(), text);
    }
    if let Some(m) = c.setcobd {
        row("setcobd".into(), m.as_str().to_string());
    }
    for (n, d) in &c.cobd {
        let alias = d
            .alias
            .as_ref()
            .map(|a| format!("  (alias {a})"))
            .unwrap_or_default();
        row(format!("cobd{n}"), format!("{}{alias}", d.path));
    }
    for (n, s) in &c.scsi {
        row(
            format!("scsi{n}"),
            format!("{} {} ({} MB)", s.kind.as_str(), s.path, s.size_mb),
        );
    }
    for (n, nic) in &c.eth {
        let v = match nic {
            Nic::Tuntap { name, mac } => format!("tuntap {}  mac {}", quoted(name), mac_text(*mac)),
            Nic::PcapBridge { name, mac, promisc } | Nic::NdisBridge { name, mac, promisc } => {
                format!(
                    "{} {}  mac {}  {}",
                    nic.type_name(),
                    quoted(name),
                    mac_text(*mac),
                    if *promisc { "promisc" } else { "nopromisc" }
                )
            }
            Nic::Slirp { mac, redirs } => {
                let r = if redirs.is_empty() {
                    "none".to_string()
                } else {
                    redirs.clone()
                };
                format!("slirp  mac {}  redirections {r}", mac_text(*mac))
            }
        };
        row(format!("eth{n}"), v);
    }
    for (n, p) in &c.cofs {
        row(format!("cofs{n}"), p.clone());
    }
    if let Some(p) = c.implied_cofs31() {
        row("cofs31".into(), format!("{p}  (implied by initrd=)"));
    }
    for (n, p) in &c.pci {
        let kind = match p.kind {
            config_txt::PciKind::Scsi => "scsi",
            config_txt::PciKind::Network => "network",
        };
        row(
            format!("pci{n}"),
            format!("function {} {kind} {}", p.function, p.unit),
        );
    }
    for (n, t) in &c.ttys {
        let mode = if t.mode.is_empty() {
            String::new()
        } else {
            format!("  mode {}", t.mode)
        };
        row(format!("ttys{n}"), format!("{}{mode}", t.name));
    }
    for (n, e) in &c.exec {
        row(
            format!("exec{n}"),
            format!("{} {}", e.program, e.args).trim_end().to_string(),
        );
    }
    if let Some(k) = c.cocon {
        row(
            "cocon".into(),
            format!("{}x{}, scrollback {}", k.cols, k.rows, k.scrollback),
        );
    }
    if let Some(k) = c.cursor {
        row("cursor".into(), format!("{k}%"));
    }
    if let Some(k) = c.color {
        row(
            "color".into(),
            format!("{} on {}", k.fg.as_str(), k.bg.as_str()),
        );
    }
    row("boot line".into(), c.boot_line());
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "{name}");
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:width$}  {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lists_every_item_with_its_key() {
        let parsed = config_txt::parse(
            b"kernel=vmlinux\nmem=64\ncobd0=c:\\r.img\nhda1=:cobd0\neth0=slirp,,tcp:2222:22\nroot=/dev/cobd0\nro\n",
            "c.txt",
        );
        let text = human("c.txt", &parsed);
        assert!(
            text.contains("cobd0      c:\\r.img  (alias hda1)"),
            "{text}"
        );
        assert!(text.contains("mem        64 MB"), "{text}");
        assert!(text.contains("redirections tcp:2222:22"), "{text}");
        assert!(text.contains("boot line  root=/dev/cobd0 ro"), "{text}");
    }

    #[test]
    fn show_without_file_or_prefix_is_a_usage_error() {
        assert!(matches!(show(None, None, false), Outcome::Usage(_)));
    }
}
