//! Host tools the oracles need, and the path of the `colinux-setup` binary under test.
//!
//! [`require_tools`] is called first by every test: a missing tool is a test **failure**
//! naming the Debian package that provides it (CI installs them; nothing is skipped).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// A host tool and the Debian package that provides it.
struct Tool {
    name: &'static str,
    package: &'static str,
}

/// Every tool the helpers of this crate run.
const TOOLS: &[Tool] = &[
    Tool {
        name: "e2fsck",
        package: "e2fsprogs",
    },
    Tool {
        name: "debugfs",
        package: "e2fsprogs",
    },
    Tool {
        name: "mke2fs",
        package: "e2fsprogs",
    },
    Tool {
        name: "mkswap",
        package: "util-linux",
    },
    Tool {
        name: "python3",
        package: "python3",
    },
    Tool {
        name: "busybox",
        package: "busybox-static",
    },
    Tool {
        name: "qemu-img",
        package: "qemu-utils",
    },
];

/// The monitors' programs, needed only where the host's monitor is theirs: guests boot
/// on the kit's kernels (see `host_monitor`), and the probe says when a monitor is
/// missing. Listed for [`tool`]'s message.
const MONITOR_TOOLS: &[Tool] = &[
    Tool {
        name: "qemu-system-x86_64",
        package: "qemu-system-x86",
    },
    Tool {
        name: "linux.uml",
        package: "user-mode-linux",
    },
];

/// Folders searched after `$PATH` (CI users often lack the `sbin` folders in `$PATH`).
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Checks that every tool the oracles use is installed: `e2fsck`, `debugfs`, `mke2fs`
/// (e2fsprogs), `mkswap` (util-linux), `python3` and a **statically linked** `busybox`
/// (busybox-static; the installer's guest root has no libc). The monitors are not
/// checked here: the host's probe decides which one guests run on, and fails with its
/// reasons when none can.
///
/// Fails with one line per missing tool and the `apt-get install` line that fixes it.
pub fn require_tools() -> Result<()> {
    static CHECK: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    CHECK
        .get_or_init(|| {
            let mut missing = Vec::new();
            let mut packages: Vec<&str> = Vec::new();
            for tool in TOOLS {
                let problem = match find_tool(tool.name) {
                    None => Some(format!("`{}` not found", tool.name)),
                    Some(path) if tool.name == "busybox" => match is_static_elf(&path) {
                        Ok(true) => None,
                        Ok(false) => Some(format!(
                            "{} is dynamically linked; the guest root needs a static busybox",
                            path.display()
                        )),
                        Err(e) => Some(format!("cannot inspect {}: {e:#}", path.display())),
                    },
                    Some(_) => None,
                };
                if let Some(problem) = problem {
                    missing.push(format!("  {problem} (Debian package {})", tool.package));
                    if !packages.contains(&tool.package) {
                        packages.push(tool.package);
                    }
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "the end-to-end tests need host tools that are missing:\n{}\n\
                     install them with: apt-get install -y {}",
                    missing.join("\n"),
                    packages.join(" ")
                ))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Finds `name` in `$PATH`, then in the usual `sbin`/`bin` folders.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// The full path of a required tool, or an error naming its package.
pub fn tool(name: &str) -> Result<PathBuf> {
    if let Some(path) = find_tool(name) {
        return Ok(path);
    }
    let package = TOOLS
        .iter()
        .chain(MONITOR_TOOLS)
        .find(|t| t.name == name)
        .map_or("?", |t| t.package);
    bail!("`{name}` not found; install the Debian package {package}")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// True when the ELF file (either class, little-endian) has no `PT_INTERP` program
/// header (no dynamic loader).
fn is_static_elf(path: &Path) -> Result<bool> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let field = |off: usize, len: usize| -> Result<u64> {
        let bytes = off
            .checked_add(len)
            .and_then(|end| data.get(off..end))
            .with_context(|| format!("{} is truncated", path.display()))?;
        let mut v = 0u64;
        for (i, b) in bytes.iter().enumerate() {
            v |= u64::from(*b) << (8 * i);
        }
        Ok(v)
    };
    if data.get(0..4) != Some(b"\x7fELF") || data.get(5) != Some(&1) {
        bail!("{} is not a little-endian ELF file", path.display());
    }
    // Elf32_Ehdr and Elf64_Ehdr place e_phoff, e_phentsize and e_phnum differently.
    let (phoff, phentsize, phnum) = match data.get(4) {
        Some(1) => (field(0x1c, 4)?, field(0x2a, 2)?, field(0x2c, 2)?),
        Some(2) => (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?),
        _ => bail!("{} has an unknown ELF class", path.display()),
    };
    for i in 0..phnum {
        const PT_INTERP: u64 = 3;
        let at = usize::try_from(phoff.saturating_add(i.saturating_mul(phentsize)))?;
        if field(at, 4)? == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs `cmd` to completion with no standard input, capturing its output.
/// Fails only when it cannot be started; the caller judges the exit status.
pub fn run_capture(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))
}

/// Runs `cmd` and requires exit status 0; the error shows the command and its output.
pub fn run_ok(cmd: &mut Command) -> Result<Output> {
    let out = run_capture(cmd)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The path of this workspace's `colinux-setup` binary, for tests that run the product.
///
/// It is `target/<profile>/colinux-setup`, found from the test executable's own path
/// (`target/<profile>/deps/<test>-<hash>`), so `CARGO_TARGET_DIR` and `--release` are
/// honoured. When it is missing, `cargo build -p colinux-setup` is run once (same target
/// folder and profile) and its result is used; a build failure is an error.
pub fn colinux_setup_bin() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| locate_or_build_bin().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn locate_or_build_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the test executable's path")?;
    let deps = exe
        .parent()
        .context("test executable has no parent folder")?;
    // `target/<profile>/deps/x` normally; `target/<profile>/x` when run from elsewhere.
    let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().context("deps folder has no parent")?
    } else {
        deps
    };
    let bin = profile_dir.join(format!("colinux-setup{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return Ok(bin);
    }
    let target_dir = profile_dir
        .parent()
        .context("profile folder has no parent (target folder)")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("profile folder name is not UTF-8")?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("tests crate has no parent folder")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", "colinux-setup", "--bin", "colinux-setup"])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    run_ok(&mut cmd).context("building colinux-setup for the end-to-end tests")?;
    if !bin.is_file() {
        bail!(
            "`cargo build -p colinux-setup` succeeded but {} is missing",
            bin.display()
        );
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real programs of both classes as the oracle: busybox-static has no loader, dash
    /// (64-bit) and the 32-bit Wine loader (ELF32, i386) ask for one.
    #[test]
    fn static_and_dynamic_programs_of_both_classes_are_told_apart() {
        for (path, package, want) in [
            ("/bin/busybox", "busybox-static", true),
            ("/bin/sh", "dash", false),
            ("/usr/lib/wine/wine", "wine32:i386", false),
        ] {
            let got = is_static_elf(Path::new(path))
                .unwrap_or_else(|e| panic!("{e:#} (package {package}; scripts/test installs it)"));
            assert_eq!(got, want, "{path}");
        }
    }
}
