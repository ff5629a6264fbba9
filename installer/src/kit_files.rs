//! The install's "place the machine files" step: the kit's monitor, kernel and initrd
//! files for the plan's monitor are copied into the install folder, and config.txt's
//! `kernel=` and `initrd=` name the copies. The machine never depends on the kit folder
//! after the install: a URL kit lives in a cache, a CD is ejected, a share goes away.
//!
//! Which files ([`select`], at plan time, from the kit's `kit.toml`; only files whose
//! `host` fits this host):
//!
//! - `colinux`: every file with role `monitor` (colinux-daemon and its helper programs,
//!   which the daemon starts from its own folder: colinux-spec.md §3), the coLinux
//!   kernel and the coLinux initrd (the first boot's module installer).
//! - `qemu`: an x86 kernel (the boot protocol's `HdrS` header, or a `bzImage*` /
//!   `vmlinuz*` name) and its initramfs (`initrd.img*`, the one named after the kernel's
//!   version when there are several).
//! - `uml`: a User-mode Linux kernel (a name with `uml` in it) of this host's
//!   architecture; without one, the host's `linux.uml` as before.
//!
//! Any other kernel (`vmlinux`) is a coLinux kernel, any other initrd a coLinux initrd.
//! Exactly one kernel is used: several candidates are refused with their names, unless
//! the profile's `kernel` names one of them. Folders in the kit path are flattened; two
//! files that would get the same name in the install folder (also one of the machine's
//! own files) are refused at plan time, naming both.
//!
//! The copy ([`step`]) follows the driver step's pattern: each file is journalled before
//! it is written (a rollback removes it, or restores the file it replaced), written
//! beside its target and renamed into place, checked again where it lies (size and
//! SHA-256 against kit.toml), and recorded in install-state.json with its role, so
//! `uninstall` removes it (the images stay), `status` reports a changed or missing one
//! ([`status`]), and a re-install keeps an intact copy and restores a changed one.
//! Programs (role `monitor`, a UML kernel, a kit file with an execute bit) are made
//! executable on Unix; the others are `0644`.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use driver_bundle::manifest::{self, Arch, Host, KitFile, Manifest, Role};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::{Ctx, Entry, Journal, Summary};
use crate::plan::Plan;
use crate::profile::Monitor;
use crate::state::{FileRecord, InstallState};

/// One kit file the machine runs from, and its name in the install folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MachineFile {
    /// `monitor`, `kernel` or `initrd`.
    pub role: Role,
    /// Its path in the kit (`/`-separated).
    pub kit_path: String,
    /// Its name in the install folder (the kit path's last part).
    pub file: String,
    /// Size in bytes (kit.toml).
    pub size: u64,
    /// SHA-256 (kit.toml).
    pub sha256: String,
    /// Made executable on Unix.
    pub executable: bool,
}

/// What [`select`] found: the files, and which of them config.txt names.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The files to copy, in kit.toml order.
    pub files: Vec<MachineFile>,
    /// The kernel's file name, when the kit has one for the monitor.
    pub kernel: Option<String>,
    /// The initrd's file name, when the kit has one for the monitor.
    pub initrd: Option<String>,
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What kind of kernel a kit file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A User-mode Linux kernel (a host program).
    Uml,
    /// An x86 boot-protocol kernel (bzImage) for QEMU.
    X86Boot,
    /// A coLinux kernel (`vmlinux`).
    Colinux,
}

/// Whether the file has the x86 boot protocol's `HdrS` magic at 0x202 (a bzImage).
/// Read before the kit is verified, only to classify: the install verifies every kit
/// file before it changes anything.
fn has_boot_header(path: &Path) -> bool {
    let mut head = [0u8; 0x206];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head.get(0x202..0x206) == Some(b"HdrS".as_slice())
}

fn kind(kit: &Path, f: &KitFile) -> Kind {
    let name = name_of(&f.path).to_ascii_lowercase();
    if has_boot_header(&manifest::host_path(kit, &f.path)) {
        Kind::X86Boot
    } else if name.contains("uml") {
        Kind::Uml
    } else if name.starts_with("bzimage") || name.starts_with("vmlinuz") {
        Kind::X86Boot
    } else {
        Kind::Colinux
    }
}

fn arch_fits(a: Arch) -> bool {
    match a {
        Arch::Any => true,
        Arch::X86_64 => cfg!(target_arch = "x86_64"),
        Arch::I686 => cfg!(target_arch = "x86"),
    }
}

fn names(files: &[&KitFile]) -> String {
    files
        .iter()
        .map(|f| f.path.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kit's machine files for `monitor` (see the module doc). `profile_kernel` is the
/// profile's `kernel`, which picks one of several kernels; `reserved` are the names of
/// the machine's own files (config.txt, the images), which no kit file may take.
/// A kit that cannot be read gives nothing here: the install's host check reports it.
pub fn select(
    kit: &Path,
    monitor: Monitor,
    profile_kernel: Option<&str>,
    reserved: &[String],
) -> Result<Selection> {
    let Ok(m) = Manifest::load(kit) else {
        return Ok(Selection::default());
    };
    let here: Vec<&KitFile> = m
        .files
        .iter()
        .filter(|f| f.host.fits(Host::current()))
        .collect();
    let kernels: Vec<&KitFile> = here
        .iter()
        .copied()
        .filter(|f| f.role == Role::Kernel)
        .filter(|f| match monitor {
            Monitor::Colinux => kind(kit, f) == Kind::Colinux,
            Monitor::Qemu => kind(kit, f) == Kind::X86Boot,
            Monitor::Uml => kind(kit, f) == Kind::Uml && arch_fits(f.arch),
            // WSL 2 boots its own kernel.
            Monitor::Wsl => false,
        })
        .collect();
    let kernel = match kernels.as_slice() {
        [] => None,
        [one] => Some(*one),
        many => {
            let named = profile_kernel.and_then(|k| {
                many.iter()
                    .copied()
                    .find(|f| f.path == k || name_of(&f.path) == k)
            });
            match named {
                Some(f) => Some(f),
                None => bail!(
                    "KIT={}: the kit has {} kernels for the {} monitor ({}); keep one, or name it in the profile's `kernel`",
                    kit.display(),
                    many.len(),
                    monitor.as_str(),
                    names(many)
                ),
            }
        }
    };
    let initrds: Vec<&KitFile> = here
        .iter()
        .copied()
        .filter(|f| f.role == Role::Initrd)
        .filter(|f| {
            let qemu_initrd = name_of(&f.path).starts_with("initrd.img");
            match monitor {
                Monitor::Colinux => !qemu_initrd,
                Monitor::Qemu => kernel.is_some() && qemu_initrd,
                Monitor::Uml | Monitor::Wsl => false,
            }
        })
        .collect();
    let initrd = match initrds.as_slice() {
        [] => None,
        [one] => Some(*one),
        many => {
            // Debian names a kernel's initramfs after its version: vmlinuz-V, initrd.img-V.
            let version = kernel
                .map(|k| name_of(&k.path))
                .and_then(|n| n.split_once('-'))
                .map(|(_, v)| v);
            match version.and_then(|v| {
                many.iter()
                    .copied()
                    .find(|f| name_of(&f.path) == format!("initrd.img-{v}"))
            }) {
                Some(f) => Some(f),
                None => bail!(
                    "KIT={}: the kit has {} initrds for the {} monitor ({}); keep one",
                    kit.display(),
                    many.len(),
                    monitor.as_str(),
                    names(many)
                ),
            }
        }
    };
    let mut chosen: Vec<&KitFile> = Vec::new();
    if monitor == Monitor::Colinux {
        chosen.extend(here.iter().copied().filter(|f| f.role == Role::Monitor));
    }
    chosen.extend(kernel);
    chosen.extend(initrd);
    // kit.toml order, so the copy and the records follow the kit author's list.
    chosen.sort_by_key(|f| m.files.iter().position(|g| g.path == f.path));
    let mut files: Vec<MachineFile> = Vec::new();
    for f in &chosen {
        let file = name_of(&f.path).to_owned();
        if let Some(r) = reserved.iter().find(|r| r.eq_ignore_ascii_case(&file)) {
            bail!(
                "KIT={}: the kit's {} ({}) would be copied into the install folder as {file}, which is the machine's own {r}; rename it in the kit",
                kit.display(),
                f.path,
                f.role
            );
        }
        if let Some(other) = files.iter().find(|o| o.file.eq_ignore_ascii_case(&file)) {
            bail!(
                "KIT={}: the kit's {} and {} would both be copied into the install folder as {file}; rename one of them in the kit",
                kit.display(),
                other.kit_path,
                f.path
            );
        }
        let host_exec = executable_in_kit(&manifest::host_path(kit, &f.path));
        files.push(MachineFile {
            role: f.role,
            kit_path: f.path.clone(),
            file,
            size: f.size,
            sha256: f.sha256.clone(),
            executable: f.role == Role::Monitor
                || (f.role == Role::Kernel && monitor == Monitor::Uml)
                || host_exec,
        });
    }
    Ok(Selection {
        files,
        kernel: kernel.map(|k| name_of(&k.path).to_owned()),
        initrd: initrd.map(|i| name_of(&i.path).to_owned()),
    })
}

#[cfg(unix)]
fn executable_in_kit(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn executable_in_kit(_path: &Path) -> bool {
    false
}

#[cfg(unix)]
fn set_mode(file: &fs::File, executable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(fs::Permissions::from_mode(if executable {
        0o755
    } else {
        0o644
    }))
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _executable: bool) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn fix_mode(path: &Path, executable: bool) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if !executable || mode & 0o111 == 0o111 {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))?;
    Ok(true)
}

#[cfg(not(unix))]
fn fix_mode(_path: &Path, _executable: bool) -> Result<bool> {
    Ok(false)
}

/// SHA-256 and size of a regular file, streamed; `None` when it cannot be read (or is
/// not a regular file: a FIFO would never end).
fn digest_of(path: &Path) -> Option<(String, u64)> {
    let f = crate::input::open_regular(path).ok()?;
    manifest::sha256_reader(f).ok()
}

/// As a kit entry named by its place in the install folder (for the check of the copy).
fn as_entry(f: &MachineFile) -> KitFile {
    KitFile {
        path: f.file.clone(),
        role: f.role,
        size: f.size,
        sha256: f.sha256.clone(),
        host: Host::Any,
        arch: Arch::Any,
        version: None,
        signer: None,
    }
}

/// Copies `src` to `dest` through a sibling temporary file (the journal's rollback
/// removes such leftovers), hashing on the way: a kit file that changed since the kit
/// was verified is refused before it is renamed into place.
fn copy_checked(src: &Path, dest: &Path, f: &MachineFile) -> Result<()> {
    let tmp = dest.with_file_name(format!(".{}.{}.tmp", f.file, std::process::id()));
    let res = (|| -> Result<()> {
        let mut input =
            fs::File::open(src).with_context(|| format!("reading the kit's {}", src.display()))?;
        let mut out =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut h = Sha256::new();
        let mut n: u64 = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let k = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", src.display()));
                }
            };
            let chunk = buf.get(..k).unwrap_or_default();
            h.update(chunk);
            out.write_all(chunk)
                .with_context(|| format!("writing {}", tmp.display()))?;
            n += k as u64;
        }
        let actual = crate::plan::hex(&h.finalize());
        if n != f.size || actual != f.sha256 {
            bail!(
                "the kit's {} changed while it was copied: kit.toml says {} bytes, sha256 {}; read {n} bytes, sha256 {actual}; check the kit's medium and run the install again",
                f.kit_path,
                f.size,
                f.sha256
            );
        }
        set_mode(&out, f.executable)
            .with_context(|| format!("setting the mode of {}", tmp.display()))?;
        out.sync_all()
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, dest).with_context(|| format!("renaming into {}", dest.display()))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// The step: copies the plan's machine files into the install folder. Returns their
/// records for install-state.json.
pub fn step(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    journal: &mut Journal,
    old: Option<&InstallState>,
    summary: &mut Summary,
) -> Result<Vec<FileRecord>> {
    for w in colinux_warnings(plan) {
        ctx.rep.warn(&w);
        summary.warnings.push(w);
    }
    let Some(kit) = plan.kit.as_ref().filter(|_| !plan.machine_files.is_empty()) else {
        return Ok(Vec::new());
    };
    ctx.rep.phase("placing the kit's machine files");
    let mut records = Vec::new();
    for f in &plan.machine_files {
        if ctx.interrupt.load(std::sync::atomic::Ordering::SeqCst) {
            bail!(
                "cancelled ({}) while placing the kit's machine files",
                crate::progress::stop_reason()
            );
        }
        let dest = plan.prefix.join(&f.file);
        crate::engine::remove_partials(&dest);
        if dest.is_dir() {
            bail!(
                "{}: is a folder, where the kit's {} ({}) belongs; move it away",
                dest.display(),
                f.kit_path,
                f.role
            );
        }
        let intact = digest_of(&dest).is_some_and(|(d, n)| d == f.sha256 && n == f.size);
        if intact {
            let moded = fix_mode(&dest, f.executable)?;
            let ours = journal
                .entries
                .iter()
                .any(|e| matches!(e, Entry::File { path } if *path == dest))
                || old.is_some_and(|s| s.files.iter().any(|r| r.file == f.file));
            ctx.log.line(&format!(
                "{}: already in place and intact{}{}",
                f.file,
                if ours {
                    ""
                } else {
                    " (identical to the kit's)"
                },
                if moded { "; made executable" } else { "" }
            ));
            summary.kept.push(f.file.clone());
        } else {
            if dest.exists() {
                let backup = dest.with_file_name(format!(".{}.backup", f.file));
                let owned = journal.entries.iter().any(|e| {
                    matches!(e, Entry::File { path } | Entry::Replace { path, .. } if *path == dest)
                });
                if !owned {
                    journal.push(Entry::Replace {
                        path: dest.clone(),
                        backup: backup.clone(),
                    })?;
                    fs::rename(&dest, &backup)
                        .with_context(|| format!("moving {} aside", dest.display()))?;
                }
                ctx.log.line(&format!(
                    "{}: differs from the kit's {}; restored from the kit",
                    f.file, f.kit_path
                ));
            } else {
                journal.push(Entry::File { path: dest.clone() })?;
            }
            copy_checked(&manifest::host_path(kit, &f.kit_path), &dest, f)?;
            summary.changed.push(f.file.clone());
        }
        // Checked again where the monitor will read it: the copy is what the machine uses.
        manifest::verify_file(&plan.prefix, &as_entry(f)).map_err(|e| {
            anyhow!(
                "the kit's {} copied into the install folder: {e}",
                f.kit_path
            )
        })?;
        ctx.log.line(&format!(
            "{} ({}): {} bytes, sha256 {}, from the kit's {}",
            f.file, f.role, f.size, f.sha256, f.kit_path
        ));
        records.push(FileRecord {
            file: f.file.clone(),
            role: crate::state::FileRole::try_from(f.role).map_err(|r| {
                anyhow!(
                    "the kit's {} ({r}) is not a file the machine runs from",
                    f.kit_path
                )
            })?,
            bytes: f.size,
            digest: Some(format!("sha256:{}", f.sha256)),
            origin: crate::state::Origin::Install,
            fs: None,
            uuid: None,
        });
    }
    Ok(records)
}

/// The text of config.txt an install writes: the plan's, without the first-boot-only
/// `initrd=` once the recorded first boot is done (for QEMU the initrd is the kernel's
/// initramfs, needed at every boot, and stays).
pub fn config_after(plan: &Plan, old: Option<&InstallState>) -> Result<String> {
    let done = old.is_some_and(|s| s.first_boot == crate::state::FirstBoot::Done);
    crate::machine::text(plan, &config_for(plan, done))
}

/// The plan's config.txt model, without the first-boot-only `initrd=` once the first
/// boot is `done` (QEMU's initrd is its kernel's initramfs and stays).
pub fn config_for(plan: &Plan, first_boot_done: bool) -> config_txt::Config {
    let mut config = plan.config.clone();
    if first_boot_done && plan.monitor != Monitor::Qemu {
        config.initrd = None;
    }
    config
}

/// The `--dry-run` lines of the machine files.
pub fn describe(plan: &Plan) -> String {
    let mut s = String::new();
    for f in &plan.machine_files {
        s.push_str(&format!(
            "  machine file:   {} ({}, {} bytes{}) copied from the kit's {}, checked against kit.toml\n",
            f.file,
            f.role,
            f.size,
            if f.executable { ", executable" } else { "" },
            f.kit_path
        ));
    }
    for w in colinux_warnings(plan) {
        s.push_str(&format!("  warning: {w}\n"));
    }
    s
}

/// The machine files' part of `status --json`: each recorded file, present, and
/// whether it still matches the digest the install recorded.
pub fn status(prefix: &Path, st: &InstallState) -> Vec<serde_json::Value> {
    st.files
        .iter()
        .filter(|r| r.role.is_machine_file())
        // A name that is not a plain name in the folder is never opened (status lists
        // it as a problem of install-state.json).
        .filter(|r| crate::state::check_name(&r.file).is_ok())
        .map(|r| {
            let path = prefix.join(&r.file);
            let now = digest_of(&path);
            let state = match (&now, &r.digest) {
                (None, _) => "missing",
                (Some((d, n)), Some(want))
                    if *n == r.bytes && want.strip_prefix("sha256:") == Some(d.as_str()) =>
                {
                    "ok"
                }
                _ => "changed",
            };
            serde_json::json!({
                "file": r.file,
                "role": r.role,
                "path": path,
                "state": state,
                "bytes": now.as_ref().map(|(_, n)| *n),
            })
        })
        .collect()
}

/// The warnings of a coLinux plan whose kernel or daemon neither the kit provides nor
/// the install folder already holds: the machine cannot start until they are there.
pub fn colinux_warnings(plan: &Plan) -> Vec<String> {
    if plan.monitor != Monitor::Colinux {
        return Vec::new();
    }
    let hint = if plan.kit.is_some() {
        "add it to the kit (kit.toml roles kernel and monitor) and install again"
    } else {
        "install with --kit DIR|URL holding the coLinux files (kit.toml roles kernel and monitor), or copy them there by hand"
    };
    let mut out = Vec::new();
    let kernel_in_kit = plan.machine_files.iter().any(|f| f.role == Role::Kernel);
    if !kernel_in_kit && !Path::new(&plan.kernel).is_file() {
        out.push(format!(
            "kernel={}: no kit provides the coLinux kernel, and the machine cannot start without it; {hint}",
            plan.kernel
        ));
    }
    let daemon = ["colinux-daemon.exe", "colinux-daemon"];
    let in_kit = plan
        .machine_files
        .iter()
        .any(|f| daemon.iter().any(|d| f.file.eq_ignore_ascii_case(d)));
    if !in_kit && !daemon.iter().any(|d| plan.prefix.join(d).is_file()) {
        out.push(format!(
            "colinux-daemon: no kit provides the coLinux daemon and its helpers (colinux-console-nt, colinux-net-daemon, ...) for {}, where the machine is started from; {hint}",
            plan.prefix.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kit_with(files: &[(&str, &str, &[u8])]) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        let mut toml = String::from("format = 1\nname = \"t\"\nversion = \"1\"\n");
        for (path, role, bytes) in files {
            let p = manifest::host_path(d.path(), path);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, bytes).expect("write");
            let sum = crate::plan::hex(&Sha256::digest(bytes));
            toml.push_str(&format!(
                "\n[[file]]\npath = \"{path}\"\nrole = \"{role}\"\nsize = {}\nsha256 = \"{sum}\"\n",
                bytes.len()
            ));
        }
        fs::write(d.path().join("kit.toml"), toml).expect("kit.toml");
        d
    }

    fn bzimage() -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b
    }

    #[test]
    fn each_monitor_takes_its_own_kernel_and_initrd() {
        let bz = bzimage();
        let kit = kit_with(&[
            ("colinux/colinux-daemon.exe", "monitor", b"d"),
            ("colinux/vmlinux", "kernel", b"k"),
            ("colinux/initrd.gz", "initrd", b"i"),
            ("uml/linux.uml", "kernel", b"u"),
            ("qemu/kernel-6.1", "kernel", &bz),
            ("qemu/initrd.img-6.1", "initrd", b"q"),
        ]);
        let c = select(kit.path(), Monitor::Colinux, None, &[]).expect("colinux");
        let names: Vec<&str> = c.files.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(names, ["colinux-daemon.exe", "vmlinux", "initrd.gz"]);
        assert_eq!(c.kernel.as_deref(), Some("vmlinux"));
        assert_eq!(c.initrd.as_deref(), Some("initrd.gz"));
        assert!(c.files[0].executable && !c.files[1].executable);

        let u = select(kit.path(), Monitor::Uml, None, &[]).expect("uml");
        assert_eq!(u.kernel.as_deref(), Some("linux.uml"));
        assert_eq!(u.initrd, None);
        assert_eq!(u.files.len(), 1);
        assert!(u.files[0].executable);

        // Found by its boot header, whatever its name.
        let q = select(kit.path(), Monitor::Qemu, None, &[]).expect("qemu");
        assert_eq!(q.kernel.as_deref(), Some("kernel-6.1"));
        assert_eq!(q.initrd.as_deref(), Some("initrd.img-6.1"));
    }

    #[test]
    fn two_kernels_or_one_name_twice_are_refused_naming_both() {
        let kit = kit_with(&[("a/vmlinux", "kernel", b"1"), ("vmlinux-2", "kernel", b"2")]);
        let e = select(kit.path(), Monitor::Colinux, None, &[]).expect_err("two kernels");
        assert!(e.to_string().contains("a/vmlinux, vmlinux-2"), "{e}");
        // The profile's kernel picks one.
        let s = select(kit.path(), Monitor::Colinux, Some("vmlinux-2"), &[]).expect("named");
        assert_eq!(s.kernel.as_deref(), Some("vmlinux-2"));

        let kit = kit_with(&[
            ("a/colinux-daemon.exe", "monitor", b"1"),
            ("b/colinux-daemon.exe", "monitor", b"2"),
        ]);
        let e = select(kit.path(), Monitor::Colinux, None, &[]).expect_err("clash");
        let t = e.to_string();
        assert!(
            t.contains("a/colinux-daemon.exe and b/colinux-daemon.exe"),
            "{t}"
        );

        let kit = kit_with(&[("x/config.txt", "monitor", b"1")]);
        let e = select(kit.path(), Monitor::Colinux, None, &["config.txt".into()])
            .expect_err("reserved");
        assert!(e.to_string().contains("machine's own config.txt"), "{e}");
    }
}
