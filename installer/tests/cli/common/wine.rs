//! Wine for the Windows tests (msi.rs, service_wine.rs): a booted prefix of its own per
//! test, 64-bit (a WoW64 Windows 7 x64) or 32-bit (`WINEARCH=win32`, the Windows 7 x86
//! coLinux runs on; Debian's wine32 from the i386 architecture), commands run through
//! `cmd /c` with the exit code read from %ERRORLEVEL% (Wine's own exit status is only the
//! low byte), `reg query` output as values, and the Windows exe (and the stand-in
//! wsl.exe, tests/wsl-standin) built once per test binary into target-win/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Fails the test, naming the tool, when it is not on PATH.
pub fn require(tool: &str) {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join(tool).is_file());
    assert!(
        found,
        "{tool} is not installed; scripts/test installs it (packages wine wine64 wine32:i386 wixl msitools)"
    );
}

/// A Linux path as Wine's Z: drive sees it.
pub fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// Runs scripts/build-windows with `args` into target-win/ and returns
/// target-win/`built`, which it must have made.
fn build_windows(args: &[&str], built: &str) -> PathBuf {
    let root = repo();
    let o = Command::new(root.join("scripts/build-windows"))
        .args(args)
        .env("CARGO_TARGET_DIR", root.join("target-win"))
        .output()
        .expect("running scripts/build-windows");
    assert!(
        o.status.success(),
        "scripts/build-windows {} failed\n{}",
        args.join(" "),
        super::text(&o)
    );
    let file = root.join("target-win").join(built);
    assert!(file.is_file(), "{} was not built", file.display());
    file
}

/// Builds colinux-setup.exe for x86_64-win7-windows-gnu once for the whole test binary
/// (scripts/build-windows; a warm rebuild takes a minute or two); its path.
pub fn windows_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_windows(
            &["--target", "x86_64", "--no-wine"],
            "x86_64-win7-windows-gnu/release/colinux-setup.exe",
        )
    })
}

/// colinux-setup.exe for i686-win7-windows-gnu (32-bit Windows 7), built once for the
/// whole test binary; its path.
pub fn windows_exe_i686() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_windows(
            &["--target", "i686", "--no-wine"],
            "i686-win7-windows-gnu/release/colinux-setup.exe",
        )
    })
}

/// Builds the tests' stand-in for wsl.exe (tests/wsl-standin, a test double of WSL 2's
/// wsl.exe that keeps WSL's registry keys) for x86_64-win7-windows-gnu once for the
/// whole test binary, the way colinux-setup.exe is built (scripts/build-windows
/// --package wsl-standin); its path.
pub fn wsl_standin_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_windows(
            &[
                "--target",
                "x86_64",
                "--no-wine",
                "--package",
                "wsl-standin",
            ],
            "x86_64-win7-windows-gnu/release/wsl-standin.exe",
        )
    })
}

/// The Windows a prefix is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WinArch {
    /// 64-bit Windows (WINEARCH=win64), which also runs 32-bit programs.
    Win64,
    /// 32-bit Windows (WINEARCH=win32): only 32-bit programs, as on Windows 7 x86.
    Win32,
}

/// Runs scripts/build-msi for `arch` (x64, x86) once for the whole test binary (every
/// test file shares it: two builds at once would share target/msi/) and returns
/// target/msi/NAME; the exe is built (or found up to date) in target-win/, and the
/// MSI's files are staged in target/msi/stage-ARCH/ (bin/, assets/).
pub fn build_msi(arch: &str, name: &str) -> PathBuf {
    static X64: OnceLock<PathBuf> = OnceLock::new();
    static X86: OnceLock<PathBuf> = OnceLock::new();
    let cell = if arch == "x86" { &X86 } else { &X64 };
    cell.get_or_init(|| build_msi_now(arch, name)).clone()
}

fn build_msi_now(arch: &str, name: &str) -> PathBuf {
    let root = repo();
    let o = Command::new(root.join("scripts/build-msi"))
        .args(["--arch", arch])
        .env("CARGO_TARGET_DIR", root.join("target-win"))
        // The dialogs' tables are written by this very build of the program.
        .env("COLINUX_SETUP_NATIVE", env!("CARGO_BIN_EXE_colinux-setup"))
        .output()
        .expect("running scripts/build-msi");
    assert!(
        o.status.success(),
        "scripts/build-msi --arch {arch} failed\n{}",
        super::text(&o)
    );
    let msi = root.join("target/msi").join(name);
    assert!(msi.is_file(), "{} was not built", msi.display());
    msi
}

/// A Wine prefix of its own, booted.
pub struct Wine {
    /// Holds the prefix (`pfx/`) and the test's own files.
    pub dir: tempfile::TempDir,
    /// 64- or 32-bit.
    pub arch: WinArch,
}

impl Wine {
    /// A new 64-bit prefix in a temporary folder named after `label`, after `wineboot -i`.
    pub fn new(label: &str) -> Wine {
        Wine::new_arch(label, WinArch::Win64)
    }

    /// A new prefix of `arch` in a temporary folder named after `label`, booted.
    pub fn new_arch(label: &str, arch: WinArch) -> Wine {
        require("wine");
        if arch == WinArch::Win32 {
            // Debian's wine32 (i386) puts the 32-bit loader here; without it a win32
            // prefix cannot be made.
            assert!(
                Path::new("/usr/lib/wine/wine").is_file(),
                "32-bit Wine is not installed: scripts/test installs it (dpkg --add-architecture i386; apt-get install wine32:i386)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("wine-{label}-"))
            .tempdir()
            .expect("tempdir");
        let w = Wine { dir, arch };
        let o = w
            .cmd("wine")
            .args(["wineboot", "-i"])
            .output()
            .expect("wineboot");
        assert!(
            o.status.success(),
            "wineboot -i failed\n{}",
            super::text(&o)
        );
        // Wait until the boot's wineserver (and its services.exe, winedevice.exe) has
        // gone: Wine 8 cannot start a kernel driver in the session that booted the
        // prefix (StartService times out, 1053), only in a fresh one.
        let o = w
            .cmd("wineserver")
            .arg("-w")
            .output()
            .expect("wineserver -w");
        assert!(
            o.status.success(),
            "wineserver -w failed\n{}",
            super::text(&o)
        );
        // A 64-bit Windows has a SysWOW64 folder for its 32-bit programs; Windows 7 x86
        // has none.
        assert_eq!(
            w.c_drive("windows/syswow64").is_dir(),
            arch == WinArch::Win64,
            "the prefix is not the {arch:?} Windows asked for"
        );
        w
    }

    /// The prefix.
    pub fn prefix(&self) -> PathBuf {
        self.dir.path().join("pfx")
    }

    /// `program` with the prefix, no debug output and no Mono/Gecko prompts.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = self.cmd_in_terminal(program);
        c.stdin(std::process::Stdio::null());
        c
    }

    /// `program` with the prefix's environment and the standard streams left alone, for
    /// a pseudo-terminal to take (the wizard).
    pub fn cmd_in_terminal(&self, program: &str) -> Command {
        // Debian's `wine` runs the 32-bit loader whenever wine32 is installed, and in a
        // 64-bit prefix that loader starts the 32-bit builtins (cmd, msiexec, reg: the
        // registry's 32-bit view): each Windows gets its own loader.
        let loader = match self.arch {
            WinArch::Win64 => "/usr/lib/wine/wine64",
            WinArch::Win32 => "/usr/lib/wine/wine",
        };
        let program = if program == "wine" && Path::new(loader).is_file() {
            loader
        } else {
            program
        };
        let mut c = Command::new(program);
        let winearch = match self.arch {
            WinArch::Win64 => "win64",
            WinArch::Win32 => "win32",
        };
        c.env("WINEPREFIX", self.prefix())
            .env("WINEARCH", winearch)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
        c
    }

    /// Copies the program as setup.msi installs it (`bin\colinux-setup.exe`, `assets\`
    /// with the busybox the built-in root is made from) from target/msi/stage-ARCH into
    /// `C:\NAME`, without installing the MSI; returns `C:\NAME\bin\colinux-setup.exe`.
    pub fn stage_program(&self, arch: &str, name: &str) -> String {
        let stage = repo().join("target/msi").join(format!("stage-{arch}"));
        let to = self.c_drive(name);
        for sub in ["bin", "assets"] {
            std::fs::create_dir_all(to.join(sub)).expect("mkdir");
            for e in std::fs::read_dir(stage.join(sub)).expect("the staged MSI files") {
                let e = e.expect("entry");
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).expect("copy");
            }
        }
        format!("C:\\{name}\\bin\\colinux-setup.exe")
    }

    /// `C:\NAME` as the Linux path inside the prefix.
    pub fn c_drive(&self, name: &str) -> PathBuf {
        self.prefix().join("drive_c").join(name)
    }

    /// Runs `CMDLINE` through `cmd /c`: its %ERRORLEVEL% and the output.
    pub fn run(&self, cmdline: &str) -> (u32, Output) {
        self.run_env(cmdline, &[])
    }

    /// [`Wine::run`] with these variables in the environment, which Wine passes on to
    /// the Windows processes it starts (the test hooks).
    pub fn run_env(&self, cmdline: &str, env: &[(&str, &str)]) -> (u32, Output) {
        let o = self
            .cmd("wine")
            .envs(env.iter().copied())
            .args([
                "cmd",
                "/c",
                &format!("{cmdline} & echo ERRORLEVEL=%ERRORLEVEL%"),
            ])
            .output()
            .expect("wine cmd");
        let out = String::from_utf8_lossy(&o.stdout);
        let code = out
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("ERRORLEVEL="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ERRORLEVEL line\n{}", super::text(&o)));
        (code, o)
    }

    /// `wine reg query KEY`.
    pub fn reg_query(&self, key: &str) -> Output {
        self.cmd("wine")
            .args(["reg", "query", key])
            .output()
            .expect("wine reg")
    }
}

/// One `NAME  REG_TYPE  VALUE` line of `reg query`.
#[derive(Clone, Debug)]
pub struct RegValue {
    /// The value's name.
    pub name: String,
    /// `REG_SZ`, `REG_DWORD`, ...
    pub ty: String,
    /// The value as reg prints it (`0x2` for a DWORD).
    pub value: String,
}

/// The values `reg query` printed.
pub fn reg_values(o: &Output) -> Vec<RegValue> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?;
            let ty = f.next()?;
            ty.starts_with("REG_").then(|| RegValue {
                name: name.to_owned(),
                ty: ty.to_owned(),
                value: f.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// The value called `name`, as printed.
pub fn reg_value(values: &[RegValue], name: &str) -> Option<String> {
    values
        .iter()
        .find(|v| v.name == name)
        .map(|v| v.value.clone())
}
