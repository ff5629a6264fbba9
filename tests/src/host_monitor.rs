//! The monitor this host offers for test guests, and the kit that carries its kernels.
//!
//! Hosts differ: on some, User-mode Linux panics at the first guest process (CPUs with
//! AMX) and KVM guests hang after the firmware (nested virtualisation); QEMU without
//! KVM works everywhere, ten times slower. A test that boots a guest never assumes
//! one: it asks [`host_monitor`], which asks the product itself (`colinux-setup facts
//! --json --kit KIT`: a real probe boot of each monitor) which monitor `auto` picks, and
//! boots on that one, with timeouts times [`HostMonitor::slowdown`]. When no monitor
//! works at all, every such test fails with the probe's reasons; nothing is skipped.
//!
//! The kit is the default one (`scripts/make-default-kit`: Debian's UML kernel, a QEMU
//! kernel and initramfs, busybox), made once per target folder (`target/guest-kit`)
//! under a file lock, so that the test binaries running side by side share one. The
//! probe's answer is kept beside it (`target/guest-kit.probe.json`) for the rest of the
//! suite run: it is made again when the binary under test is newer.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::tools::colinux_setup_bin;

/// What the probe found, and how to boot on it.
#[derive(Clone, Debug)]
pub struct HostMonitor {
    /// `uml` or `qemu`.
    pub monitor: String,
    /// QEMU's accelerator: `kvm` or `tcg`.
    pub accel: Option<String>,
    /// The product's reason for the choice.
    pub why: String,
    /// The default kit: its kernels are the ones probed.
    pub kit: PathBuf,
}

impl HostMonitor {
    /// How much slower than UML a guest runs here: 10 without KVM, else 1.
    pub fn slowdown(&self) -> u32 {
        if self.accel.as_deref() == Some("tcg") {
            10
        } else {
            1
        }
    }

    /// `secs` (a bound measured for UML) scaled for this monitor.
    pub fn timeout(&self, secs: u64) -> u64 {
        secs.saturating_mul(u64::from(self.slowdown()))
    }

    /// Whether the machine runs in User-mode Linux.
    pub fn is_uml(&self) -> bool {
        self.monitor == "uml"
    }

    /// The guest's block device of disk `index`: `/dev/ubdX` (UML), `/dev/vdX` (QEMU).
    pub fn dev(&self, index: u8) -> String {
        let letter = char::from(b'a' + index.min(25));
        if self.is_uml() {
            format!("/dev/ubd{letter}")
        } else {
            format!("/dev/vd{letter}")
        }
    }

    /// The install options that put a machine on this monitor: the kit and the monitor.
    pub fn install_args(&self) -> Vec<String> {
        vec![
            "--kit".into(),
            self.kit.display().to_string(),
            "--monitor".into(),
            self.monitor.clone(),
        ]
    }

    /// Environment for a `colinux-setup` run, so that its own probe goes straight to
    /// the accelerator found here (`COLINUX_SETUP_QEMU_ACCEL`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match &self.accel {
            Some(a) => vec![("COLINUX_SETUP_QEMU_ACCEL", a.clone())],
            None => Vec::new(),
        }
    }
}

/// The target folder of this build (`target/`), from the test binary's own path
/// (`target/debug/deps/NAME-HASH`).
pub fn target_dir() -> Result<PathBuf> {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(std::path::absolute(PathBuf::from(t))?);
    }
    let exe = std::env::current_exe().context("the test binary's path")?;
    exe.ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent())
        .and_then(Path::parent)
        .map(Path::to_owned)
        .context("the test binary is not in target/PROFILE/deps")
}

/// Holds an exclusive lock on `path` (created) until dropped.
struct FileLock(#[allow(dead_code)] File);

impl FileLock {
    fn take(path: &Path) -> Result<FileLock> {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(FileLock(f))
    }
}

/// The default kit, made once per target folder.
pub fn kit() -> Result<PathBuf> {
    static KIT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    KIT.get_or_init(|| make_kit().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn make_kit() -> Result<PathBuf> {
    let target = target_dir()?;
    std::fs::create_dir_all(&target)?;
    let _lock = FileLock::take(&target.join("guest-kit.lock"))?;
    let kit = target.join("guest-kit");
    if kit.join("kit.toml").is_file() {
        return Ok(kit);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-default-kit");
    let out = Command::new(&script)
        .arg(&kit)
        .arg("--force")
        .env("COLINUX_SETUP", colinux_setup_bin()?)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() || !kit.join("kit.toml").is_file() {
        bail!(
            "{} {} failed ({}):\n{}{}",
            script.display(),
            kit.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(kit)
}

/// The monitor the product picks on this host (see the module doc). An error (no
/// monitor works, the kit cannot be made) fails the test that asked, with the reason.
pub fn host_monitor() -> Result<&'static HostMonitor> {
    static FOUND: OnceLock<std::result::Result<HostMonitor, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| probe().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("no monitor to boot test guests on: {e}"))
}

fn probe() -> Result<HostMonitor> {
    let kit = kit()?;
    let bin = colinux_setup_bin()?;
    // Beside the kit, not in it: a kit holds only what its kit.toml lists.
    let cache = kit.with_extension("probe.json");
    let _lock = FileLock::take(&kit.with_extension("probe.lock"))?;
    let fresh = |p: &Path| -> bool {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((m(p), m(&bin)), (Some(c), Some(b)) if c >= b)
    };
    let json = if fresh(&cache) {
        std::fs::read_to_string(&cache).with_context(|| format!("reading {}", cache.display()))?
    } else {
        let out = Command::new(&bin)
            .args(["facts", "--json", "--kit"])
            .arg(&kit)
            .output()
            .context("running colinux-setup facts --json")?;
        if !out.status.success() {
            bail!(
                "colinux-setup facts --json failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        std::fs::write(&cache, &text).with_context(|| format!("writing {}", cache.display()))?;
        text
    };
    parse_auto(&json, kit)
}

/// Reads `facts --json`'s `auto` object.
fn parse_auto(json: &str, kit: PathBuf) -> Result<HostMonitor> {
    let v: serde_json::Value = serde_json::from_str(json).context("facts --json")?;
    let auto = &v["auto"];
    let why = auto["why"].as_str().unwrap_or_default().to_owned();
    let Some(monitor) = auto["monitor"].as_str() else {
        bail!("{why}");
    };
    Ok(HostMonitor {
        monitor: monitor.to_owned(),
        accel: auto["accel"].as_str().map(str::to_owned),
        why,
        kit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_read_with_its_accelerator_and_a_failed_probe_is_an_error() {
        let m = parse_auto(
            r#"{"auto": {"monitor": "qemu", "accel": "tcg", "why": "QEMU without KVM runs guests here"}}"#,
            PathBuf::from("/k"),
        )
        .expect("qemu");
        assert_eq!((m.slowdown(), m.dev(1).as_str()), (10, "/dev/vdb"));
        assert_eq!(m.timeout(60), 600);
        assert_eq!(
            m.env(),
            vec![("COLINUX_SETUP_QEMU_ACCEL", "tcg".to_owned())]
        );
        let m = parse_auto(
            r#"{"auto": {"monitor": "uml", "accel": null, "why": "x"}}"#,
            PathBuf::from("/k"),
        )
        .expect("uml");
        assert_eq!((m.slowdown(), m.dev(0).as_str()), (1, "/dev/ubda"));
        let e = parse_auto(
            r#"{"auto": {"monitor": null, "why": "no monitor can run a guest on this host (uml: ...)"}}"#,
            PathBuf::from("/k"),
        )
        .expect_err("none");
        assert!(e.to_string().contains("no monitor can run a guest"), "{e}");
    }
}
