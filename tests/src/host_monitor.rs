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
//! Tests that are about one monitor (a machine switched between monitors, UML's own
//! kernel modules) read [`HostMonitor::probes`]: every monitor's verdict, so that they do
//! on this host what works here, or assert the refusal, with the probe's reason, where
//! it does not.
//!
//! The kit is the default one (`scripts/make-default-kit`: Debian's UML kernel, a QEMU
//! kernel and initramfs, busybox), made once per target folder (`target/guest-kit`)
//! under a file lock, so that the test binaries running side by side share one. The
//! probe's answer is kept beside it (`guest-kit.probe.json`: a kit holds nothing its
//! kit.toml does not list) for the rest of the suite run: it is made again when the
//! binary under test is newer.
//!
//! Installs get a kit of one monitor's machine files ([`HostMonitor::install_args`]:
//! `target/guest-kit-uml` with the UML kernel, `target/guest-kit-qemu` with QEMU's kernel
//! and initramfs; hard links into the default kit, and its kit.toml's entries): an install
//! verifies every file of its kit, and the default kit's UML modules alone are 108 MB.

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
    /// Every monitor's verdict, in the order `facts` probed them.
    pub probes: Vec<Probe>,
}

/// One monitor's verdict, as `facts --json` reports it in `monitors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// `uml`, `qemu` or `colinux`.
    pub monitor: String,
    /// QEMU's accelerator.
    pub accel: Option<String>,
    /// It ran a guest process here.
    pub works: bool,
    /// What happened, in the host's words.
    pub reason: String,
}

impl Probe {
    /// `uml`, `qemu/kvm`, `qemu/tcg`.
    pub fn name(&self) -> String {
        match &self.accel {
            Some(a) => format!("{}/{a}", self.monitor),
            None => self.monitor.clone(),
        }
    }
}

impl HostMonitor {
    /// `uml`, `qemu/kvm` or `qemu/tcg`: the engine guests run on here.
    pub fn name(&self) -> String {
        match &self.accel {
            Some(a) => format!("{}/{a}", self.monitor),
            None => self.monitor.clone(),
        }
    }

    /// The first engine of `monitor` that works here (`qemu` finds KVM or TCG), as a
    /// [`HostMonitor`] to boot on; or why none does, in the probe's words.
    pub fn other(&self, monitor: &str) -> std::result::Result<HostMonitor, String> {
        let of: Vec<&Probe> = self
            .probes
            .iter()
            .filter(|p| p.monitor == monitor)
            .collect();
        if let Some(p) = of.iter().find(|p| p.works) {
            return Ok(HostMonitor {
                monitor: p.monitor.clone(),
                accel: p.accel.clone(),
                why: p.reason.clone(),
                kit: self.kit.clone(),
                probes: self.probes.clone(),
            });
        }
        if of.is_empty() {
            return Err(format!("facts --json reported no probe of {monitor}"));
        }
        Err(of
            .iter()
            .map(|p| format!("{}: {}", p.name(), p.reason))
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// `monitor` with its kit, whether or not it runs guests here: to show that a run on
    /// it is refused where it does not.
    pub fn on(&self, monitor: &str) -> HostMonitor {
        HostMonitor {
            monitor: monitor.to_owned(),
            accel: None,
            why: format!("{monitor}, asked for by the test"),
            kit: self.kit.clone(),
            probes: self.probes.clone(),
        }
    }

    /// The default kit's User-mode Linux kernel (`scripts/make-default-kit`'s layout).
    pub fn uml_kernel(&self) -> PathBuf {
        self.kit.join("uml/linux.uml")
    }

    /// The default kit's x86-64 kernel for QEMU.
    pub fn qemu_kernel(&self) -> PathBuf {
        self.kit.join("qemu/vmlinuz")
    }

    /// The initramfs of [`Self::qemu_kernel`]: its virtio modules, in load order.
    pub fn qemu_initrd(&self) -> PathBuf {
        self.kit.join("qemu/initrd.img")
    }

    /// The default kit's static busybox (the guests' userland).
    pub fn busybox(&self) -> PathBuf {
        self.kit.join("tools/busybox")
    }

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
        format!("/dev/{}", self.dev_name(index))
    }

    /// The kernel's name of disk `index` (`ubda`, `vda`), as in `EXT4-fs (vda): …`.
    pub fn dev_name(&self, index: u8) -> String {
        let letter = char::from(b'a' + index.min(25));
        if self.is_uml() {
            format!("ubd{letter}")
        } else {
            format!("vd{letter}")
        }
    }

    /// The kit installs get: the default kit's files for this monitor only.
    pub fn install_kit(&self) -> PathBuf {
        monitor_kit(&self.kit, &self.monitor)
    }

    /// The install options that put a machine on this monitor: its kit and the monitor.
    pub fn install_args(&self) -> Vec<String> {
        vec![
            "--kit".into(),
            self.install_kit().display().to_string(),
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
    if !kit.join("kit.toml").is_file() {
        run_make_default_kit(&kit)?;
    }
    for monitor in ["uml", "qemu"] {
        make_monitor_kit(&kit, monitor)?;
    }
    Ok(kit)
}

/// Where the kit of `monitor`'s machine files lives: beside the default kit.
fn monitor_kit(kit: &Path, monitor: &str) -> PathBuf {
    let name = kit.file_name().map(|n| n.to_string_lossy().into_owned());
    kit.with_file_name(format!(
        "{}-{monitor}",
        name.as_deref().unwrap_or("guest-kit")
    ))
}

/// The entries of the default kit's kit.toml that `monitor` boots from (its kernel and
/// initrd, in its folder), with the kit's header.
fn monitor_manifest(toml: &str, monitor: &str) -> (String, Vec<String>) {
    let mut parts = toml.split("\n[[file]]");
    let mut out = parts.next().unwrap_or_default().to_owned();
    let mut paths = Vec::new();
    for entry in parts {
        let path = entry
            .lines()
            .find_map(|l| l.strip_prefix("path = \""))
            .map(|p| p.trim_end_matches('"').to_owned());
        let machine_file = entry
            .lines()
            .any(|l| l == "role = \"kernel\"" || l == "role = \"initrd\"");
        if let Some(path) = path.filter(|p| machine_file && p.starts_with(&format!("{monitor}/"))) {
            out.push_str("\n[[file]]");
            out.push_str(entry);
            paths.push(path);
        }
    }
    (out, paths)
}

/// Makes (or brings up to date) `monitor`'s kit beside the default kit `kit`.
fn make_monitor_kit(kit: &Path, monitor: &str) -> Result<()> {
    let toml = std::fs::read_to_string(kit.join("kit.toml"))
        .with_context(|| format!("reading {}/kit.toml", kit.display()))?;
    let (manifest, paths) = monitor_manifest(&toml, monitor);
    if paths.is_empty() {
        bail!("{}/kit.toml lists no {monitor} kernel", kit.display());
    }
    let dir = monitor_kit(kit, monitor);
    if std::fs::read_to_string(dir.join("kit.toml"))
        .ok()
        .as_deref()
        == Some(manifest.as_str())
    {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    for p in &paths {
        let (from, to) = (kit.join(p), dir.join(p));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    std::fs::write(dir.join("kit.toml"), manifest)
        .with_context(|| format!("writing {}/kit.toml", dir.display()))
}

fn run_make_default_kit(kit: &Path) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-default-kit");
    let out = Command::new(&script)
        .arg(kit)
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
    Ok(())
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

/// Reads `facts --json`'s `auto` object and its `monitors` list.
fn parse_auto(json: &str, kit: PathBuf) -> Result<HostMonitor> {
    let v: serde_json::Value = serde_json::from_str(json).context("facts --json")?;
    let auto = &v["auto"];
    let why = auto["why"].as_str().unwrap_or_default().to_owned();
    let Some(monitor) = auto["monitor"].as_str() else {
        bail!("{why}");
    };
    let probes = v["monitors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| Probe {
                    monitor: m["monitor"].as_str().unwrap_or_default().to_owned(),
                    accel: m["accel"].as_str().map(str::to_owned),
                    works: m["works"].as_bool().unwrap_or(false),
                    reason: m["reason"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(HostMonitor {
        monitor: monitor.to_owned(),
        accel: auto["accel"].as_str().map(str::to_owned),
        why,
        kit,
        probes,
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
            r#"{"auto": {"monitor": "uml", "accel": null, "why": "x"},
                "monitors": [{"monitor": "uml", "works": true, "reason": "ran"},
                             {"monitor": "qemu", "accel": "kvm", "works": false, "reason": "KVM guests hang here"},
                             {"monitor": "qemu", "accel": "tcg", "works": true, "reason": "ran"}]}"#,
            PathBuf::from("/k"),
        )
        .expect("uml");
        assert_eq!((m.slowdown(), m.dev(0).as_str()), (1, "/dev/ubda"));
        assert_eq!((m.name().as_str(), m.dev_name(1).as_str()), ("uml", "ubdb"));
        let q = m.other("qemu").expect("qemu works");
        assert_eq!((q.name().as_str(), q.slowdown()), ("qemu/tcg", 10));
        let m = parse_auto(
            r#"{"auto": {"monitor": "qemu", "accel": "tcg", "why": "x"},
                "monitors": [{"monitor": "uml", "works": false, "reason": "ptrace set fp regs failed"}]}"#,
            PathBuf::from("/k"),
        )
        .expect("qemu");
        let e = m.other("uml").expect_err("uml does not work");
        assert!(e.contains("uml: ptrace set fp regs failed"), "{e}");
        let e = parse_auto(
            r#"{"auto": {"monitor": null, "why": "no monitor can run a guest on this host (uml: ...)"}}"#,
            PathBuf::from("/k"),
        )
        .expect_err("none");
        assert!(e.to_string().contains("no monitor can run a guest"), "{e}");
    }

    #[test]
    fn a_monitor_kit_lists_that_monitors_kernel_and_initrd_only() {
        let toml = "format = 1\nname = \"k\"\n\n[[file]]\npath = \"uml/linux.uml\"\nrole = \"kernel\"\nsize = 1\n\n\
                    [[file]]\npath = \"uml/modules-6.1.tar\"\nrole = \"modules\"\nsize = 2\n\n\
                    [[file]]\npath = \"qemu/vmlinuz\"\nrole = \"kernel\"\nsize = 3\n\n\
                    [[file]]\npath = \"qemu/initrd.img\"\nrole = \"initrd\"\nsize = 4\n";
        let (m, paths) = monitor_manifest(toml, "uml");
        assert_eq!(paths, ["uml/linux.uml"]);
        assert!(m.starts_with("format = 1\nname = \"k\"\n"), "{m}");
        assert!(m.contains("size = 1") && !m.contains("size = 2"), "{m}");
        let (m, paths) = monitor_manifest(toml, "qemu");
        assert_eq!(paths, ["qemu/vmlinuz", "qemu/initrd.img"]);
        assert!(m.contains("size = 4") && !m.contains("linux.uml"), "{m}");
        assert_eq!(
            monitor_kit(Path::new("/t/guest-kit"), "qemu"),
            Path::new("/t/guest-kit-qemu")
        );
    }
}
