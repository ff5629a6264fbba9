//! Wine for the Windows tests (msi.rs, service_wine.rs): a booted prefix of its own per
//! test, commands run through `cmd /c` with the exit code read from %ERRORLEVEL% (Wine's
//! own exit status is only the low byte), `reg query` output as values, and the Windows
//! exe built once per test binary into target-win/.

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
        "{tool} is not installed; scripts/test installs it (packages wine wine64 wixl msitools)"
    );
}

/// A Linux path as Wine's Z: drive sees it.
pub fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// Builds colinux-setup.exe for x86_64-win7-windows-gnu once for the whole test binary
/// (scripts/build-windows; a warm rebuild takes a minute or two); its path.
pub fn windows_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let root = repo();
        let o = Command::new(root.join("scripts/build-windows"))
            .args(["--target", "x86_64", "--no-wine"])
            .env("CARGO_TARGET_DIR", root.join("target-win"))
            .output()
            .expect("running scripts/build-windows");
        assert!(
            o.status.success(),
            "scripts/build-windows failed\n{}",
            super::text(&o)
        );
        let exe = root.join("target-win/x86_64-win7-windows-gnu/release/colinux-setup.exe");
        assert!(exe.is_file(), "{} was not built", exe.display());
        exe
    })
}

/// A Wine prefix of its own, booted.
pub struct Wine {
    /// Holds the prefix (`pfx/`) and the test's own files.
    pub dir: tempfile::TempDir,
}

impl Wine {
    /// A new prefix in a temporary folder named after `label`, after `wineboot -i`.
    pub fn new(label: &str) -> Wine {
        require("wine");
        require("wineboot");
        let dir = tempfile::Builder::new()
            .prefix(&format!("wine-{label}-"))
            .tempdir()
            .expect("tempdir");
        let w = Wine { dir };
        let o = w.cmd("wineboot").arg("-i").output().expect("wineboot");
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
        w
    }

    /// The prefix.
    pub fn prefix(&self) -> PathBuf {
        self.dir.path().join("pfx")
    }

    /// `program` with the prefix, no debug output and no Mono/Gecko prompts.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("WINEPREFIX", self.prefix())
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .stdin(std::process::Stdio::null());
        c
    }

    /// `C:\NAME` as the Linux path inside the prefix.
    pub fn c_drive(&self, name: &str) -> PathBuf {
        self.prefix().join("drive_c").join(name)
    }

    /// Runs `CMDLINE` through `cmd /c`: its %ERRORLEVEL% and the output.
    pub fn run(&self, cmdline: &str) -> (u32, Output) {
        let o = self
            .cmd("wine")
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
