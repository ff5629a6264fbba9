//! wsl-standin: a test double of `wsl.exe`, for setup.msi's tests under Wine
//! (installer/tests/cli/msi.rs), which has no WSL. Copied to
//! `C:\windows\system32\wsl.exe` of a Wine prefix, it answers the calls colinux-setup
//! makes (installer/src/wsl/windows.rs) as WSL 2's wsl.exe does where the installer
//! depends on the answer, and keeps its state where WSL keeps it: in the registry,
//! `HKCU\Software\Microsoft\Windows\CurrentVersion\Lxss\{GUID}` (`DistributionName`,
//! `BasePath`: the disk's folder with the `\\?\` prefix, `VhdFileName`, `Version` 2,
//! `State` 1, `DefaultUid` 0, `Flags` 15) and `Lxss\DefaultDistribution`, so a test
//! judges it with `reg query`, as the installer reads it.
//!
//! What it reproduces:
//! - `--import-in-place NAME FILE`: FILE must exist and be a VHDX (it starts with the
//!   signature `vhdxfile`); a taken name (WSL compares names without case) or a disk
//!   already registered is refused in WSL's words with exit -1.
//! - `--list --verbose` (`-l -v`): WSL's table, `  NAME  STATE  VERSION`, the default
//!   marked `* `; with no distribution, WSL's message and exit -1.
//! - `--status`, `--terminate NAME` (`-t`), `--shutdown`.
//! - `--unregister NAME`: deletes the key AND the disk, as WSL does, also for a disk
//!   registered in place (the installer's "nothing lost" logic must survive this).
//! - `-d NAME [-u USER] --exec ARGS...` (`-e`): fails when NAME is not registered or its
//!   disk is gone; otherwise simulates colinux-setup's first-boot command as the
//!   installer's recording host does (installer/src/wsl/recording.rs): it reads the
//!   distribution share at `colinux.dist=dir:/mnt/c/...`, mapped back to `C:\...`
//!   (WSL's drive automount), prints the lines and the marker the guest's script
//!   prints, and fails or hangs as the test hook `colinux.firstboot.test=fail|hang`
//!   asks. Any other command prints one line and succeeds.
//!
//! WSL's own messages are UTF-16LE, as wsl.exe writes them, unless `WSL_UTF8=1`; what
//! the command in the distribution prints is passed on as it is (UTF-8).
//!
//! What it does not do: run Linux (nothing is written into the disk), check the ext4
//! inside the VHDX, tell users apart (`-u` is taken and ignored), or keep a running
//! state (every distribution is listed `Stopped`). The logic is here, in the library,
//! tested on Linux with an in-memory registry; the program (src/main.rs) runs it on
//! the real registry only on Windows.

use std::io::Write;
use std::path::{Path, PathBuf};

#[cfg(windows)]
pub mod hkcu;

/// Where WSL keeps its distributions, under HKEY_CURRENT_USER.
pub const LXSS: &str = r"Software\Microsoft\Windows\CurrentVersion\Lxss";

/// The first-boot script's markers (installer/src/guest.rs).
const FIRST_BOOT_OK: &str = "COLINUX-SETUP-FIRST-BOOT: OK";
const FIRST_BOOT_FAILED: &str = "COLINUX-SETUP-FIRST-BOOT: FAILED";

/// One registered distribution: its `Lxss\{GUID}` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distro {
    /// The key's name, `{...}`.
    pub guid: String,
    /// `DistributionName`.
    pub name: String,
    /// `BasePath`: the disk's folder (`\\?\C:\...` on Windows).
    pub base_path: String,
    /// `VhdFileName`: the disk's file name in BasePath.
    pub vhd: String,
}

impl Distro {
    /// The disk: BasePath without its `\\?\` prefix, joined with VhdFileName.
    pub fn disk(&self) -> PathBuf {
        Path::new(
            self.base_path
                .strip_prefix(r"\\?\")
                .unwrap_or(&self.base_path),
        )
        .join(&self.vhd)
    }
}

/// WSL's registry keys.
pub trait Registry {
    /// The `Lxss\{GUID}` keys that name a distribution.
    fn distributions(&self) -> Vec<Distro>;
    /// `Lxss\DefaultDistribution`.
    fn default_guid(&self) -> Option<String>;
    /// Writes `Lxss\{GUID}`.
    fn add(&mut self, d: &Distro) -> std::io::Result<()>;
    /// Deletes `Lxss\{GUID}`.
    fn remove(&mut self, guid: &str) -> std::io::Result<()>;
    /// Sets (or, `None`, deletes) `Lxss\DefaultDistribution`.
    fn set_default(&mut self, guid: Option<&str>) -> std::io::Result<()>;
}

/// Where the program writes: wsl.exe's own lines in its encoding, the command's as
/// they are.
pub struct Out<'a> {
    utf8: bool,
    w: &'a mut dyn Write,
}

impl<'a> Out<'a> {
    /// UTF-8 (`WSL_UTF8=1`) or UTF-16LE messages, to `w`.
    pub fn new(utf8: bool, w: &'a mut dyn Write) -> Out<'a> {
        Out { utf8, w }
    }

    /// One line of wsl.exe's own (CRLF).
    fn say(&mut self, line: &str) {
        let s = format!("{line}\r\n");
        let bytes: Vec<u8> = if self.utf8 {
            s.into_bytes()
        } else {
            s.encode_utf16().flat_map(u16::to_le_bytes).collect()
        };
        // A closed pipe is the reader's business: WSL's exit status still tells.
        let _ = self.w.write_all(&bytes);
    }

    /// One line printed by the command in the distribution.
    fn guest(&mut self, line: &str) {
        let _ = writeln!(self.w, "{line}");
        let _ = self.w.flush();
    }

    /// WSL's failure: its message, its error code line, exit -1.
    fn fail(&mut self, message: &str, code: &str) -> i32 {
        self.say(message);
        self.say(&format!("Error code: {code}"));
        -1
    }
}

/// Runs wsl.exe's command line `args` (without the program's name) against `reg`;
/// the exit code.
pub fn run(args: &[String], reg: &mut dyn Registry, out: &mut Out<'_>) -> i32 {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["--import-in-place", name, file] => import_in_place(reg, out, name, Path::new(file)),
        ["--list" | "-l", rest @ ..] if rest.iter().all(|r| matches!(*r, "--verbose" | "-v")) => {
            list(reg, out, !rest.is_empty())
        }
        ["--status"] => {
            if let Some(d) = default(reg) {
                out.say(&format!("Default Distribution: {}", d.name));
            }
            out.say("Default Version: 2");
            0
        }
        ["--shutdown"] => 0,
        ["--terminate" | "-t", name] => match find(reg, name) {
            Some(_) => {
                out.say("The operation completed successfully.");
                0
            }
            None => not_found(out),
        },
        ["--unregister", name] => unregister(reg, out, name),
        _ => exec(reg, out, &a),
    }
}

fn find(reg: &dyn Registry, name: &str) -> Option<Distro> {
    reg.distributions()
        .into_iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The default distribution: `DefaultDistribution`, else the first.
fn default(reg: &dyn Registry) -> Option<Distro> {
    let all = reg.distributions();
    let guid = reg.default_guid();
    all.iter()
        .find(|d| Some(&d.guid) == guid.as_ref())
        .or(all.first())
        .cloned()
}

fn not_found(out: &mut Out<'_>) -> i32 {
    out.fail(
        "There is no distribution with the supplied name.",
        "Wsl/Service/WSL_E_DISTRO_NOT_FOUND",
    )
}

fn no_distributions(out: &mut Out<'_>) -> i32 {
    out.say("Windows Subsystem for Linux has no installed distributions.");
    out.say("You can resolve this by installing a distribution with the instructions below:");
    out.say("");
    out.say("Use 'wsl.exe --list --online' to list available distributions");
    out.say("and 'wsl.exe --install <Distro>' to install.");
    out.fail("", "Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND")
}

/// The same disk path, as Windows compares them (without case).
fn same_path(a: &Path, b: &Path) -> bool {
    a.to_string_lossy()
        .eq_ignore_ascii_case(&b.to_string_lossy())
}

fn import_in_place(reg: &mut dyn Registry, out: &mut Out<'_>, name: &str, file: &Path) -> i32 {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !name_ok {
        return out.fail(
            "The supplied distribution name is invalid.",
            "Wsl/Service/RegisterDistro/WSL_E_DISTRO_INVALID_NAME",
        );
    }
    if find(reg, name).is_some() {
        return out.fail(
            "A distribution with the supplied name already exists. Use --name to choose a different name.",
            "Wsl/Service/RegisterDistro/ERROR_ALREADY_EXISTS",
        );
    }
    let disk = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let mut signature = [0u8; 8];
    let read = std::fs::File::open(&disk)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut signature));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return out.fail(
                "The system cannot find the file specified.",
                "Wsl/Service/RegisterDistro/ERROR_FILE_NOT_FOUND",
            );
        }
        Ok(()) if &signature == b"vhdxfile" => {}
        _ => {
            return out.fail(
                "The specified file is not a valid virtual hard disk (VHDX).",
                "Wsl/Service/RegisterDistro/HCS_E_INVALID_STATE",
            );
        }
    }
    if let Some(other) = reg
        .distributions()
        .into_iter()
        .find(|d| same_path(&d.disk(), &disk))
    {
        return out.fail(
            &format!(
                "The virtual hard disk is already in use by the distribution {}.",
                other.name
            ),
            "Wsl/Service/RegisterDistro/ERROR_SHARING_VIOLATION",
        );
    }
    let folder = disk.parent().unwrap_or(Path::new("")).display().to_string();
    let drive = folder.as_bytes().get(1) == Some(&b':');
    let d = Distro {
        guid: new_guid(),
        name: name.to_owned(),
        base_path: if drive {
            format!(r"\\?\{folder}")
        } else {
            folder
        },
        vhd: disk
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
    };
    // The first distribution becomes the default, as in WSL.
    let has_default = reg
        .default_guid()
        .is_some_and(|g| reg.distributions().iter().any(|x| x.guid == g));
    let written = reg.add(&d).and_then(|()| {
        if has_default {
            Ok(())
        } else {
            reg.set_default(Some(&d.guid))
        }
    });
    if let Err(e) = written {
        return out.fail(&e.to_string(), "Wsl/Service/RegisterDistro/E_FAIL");
    }
    out.say("The operation completed successfully.");
    0
}

fn list(reg: &dyn Registry, out: &mut Out<'_>, verbose: bool) -> i32 {
    let Some(first) = default(reg) else {
        return no_distributions(out);
    };
    // The default first, as WSL lists them.
    let mut all = vec![first.clone()];
    all.extend(
        reg.distributions()
            .into_iter()
            .filter(|d| d.guid != first.guid),
    );
    if verbose {
        let w = all.iter().map(|d| d.name.len()).max().unwrap_or(0).max(4);
        out.say(&format!("  {:<w$}    {:<15} VERSION", "NAME", "STATE"));
        for d in &all {
            let mark = if d.guid == first.guid { '*' } else { ' ' };
            out.say(&format!("{mark} {:<w$}    {:<15} 2", d.name, "Stopped"));
        }
    } else {
        out.say("Windows Subsystem for Linux Distributions:");
        for d in &all {
            let tag = if d.guid == first.guid {
                " (Default)"
            } else {
                ""
            };
            out.say(&format!("{}{tag}", d.name));
        }
    }
    0
}

fn unregister(reg: &mut dyn Registry, out: &mut Out<'_>, name: &str) -> i32 {
    let Some(d) = find(reg, name) else {
        return not_found(out);
    };
    out.say("Unregistering.");
    let was_default = reg.default_guid().as_ref() == Some(&d.guid);
    if let Err(e) = reg.remove(&d.guid) {
        return out.fail(&e.to_string(), "Wsl/Service/UnregisterDistro/E_FAIL");
    }
    if was_default {
        let next = reg.distributions().into_iter().next().map(|x| x.guid);
        let _ = reg.set_default(next.as_deref());
    }
    // As WSL: the disk goes with the registration, also one registered in place.
    match std::fs::remove_file(d.disk()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return out.fail(&e.to_string(), "Wsl/Service/UnregisterDistro/E_FAIL");
        }
        _ => {}
    }
    out.say("The operation completed successfully.");
    0
}

/// `[-d NAME] [-u USER] [--exec|-e|--] ARGS...`: a command (or, without one, the
/// shell) in a distribution.
fn exec(reg: &dyn Registry, out: &mut Out<'_>, a: &[&str]) -> i32 {
    let mut name = None;
    let mut command: &[&str] = &[];
    let mut i = 0;
    while i < a.len() {
        match a[i] {
            "-d" | "--distribution" => {
                name = a.get(i + 1).copied();
                i += 2;
            }
            "-u" | "--user" => i += 2,
            "--exec" | "-e" | "--" => {
                command = &a[i + 1..];
                break;
            }
            o if o.starts_with('-') => {
                return out.fail(
                    &format!("Invalid command line argument: {o}"),
                    "Wsl/E_INVALIDARG",
                );
            }
            _ => {
                command = &a[i..];
                break;
            }
        }
    }
    let d = match name {
        Some(n) => match find(reg, n) {
            Some(d) => d,
            None => return not_found(out),
        },
        None => match default(reg) {
            Some(d) => d,
            None => return no_distributions(out),
        },
    };
    if !d.disk().is_file() {
        return out.fail(
            "The system cannot find the file specified.",
            "Wsl/Service/CreateInstance/MountDisk/HCS/ERROR_FILE_NOT_FOUND",
        );
    }
    if command.is_empty() {
        out.guest(&format!(
            "wsl-standin: the shell of {} (nothing runs here)",
            d.name
        ));
        return 0;
    }
    simulate(command, out)
}

/// A path inside a distribution as Windows sees it: WSL's automount `/mnt/c/a/b` is
/// `C:\a\b`; any other path is returned as it is (the unit tests' Linux folders).
pub fn windows_path(p: &str) -> PathBuf {
    let b = p.as_bytes();
    if p.starts_with("/mnt/")
        && b.len() >= 6
        && b[5].is_ascii_alphabetic()
        && matches!(b.get(6), None | Some(b'/'))
    {
        let drive = char::from(b[5].to_ascii_uppercase());
        let rest = p.get(7..).unwrap_or("").replace('/', "\\");
        return PathBuf::from(format!("{drive}:\\{rest}"));
    }
    PathBuf::from(p)
}

/// colinux-setup's first-boot command (`/bin/sh -c "export
/// COLINUX_FIRSTBOOT_ARGS='...'; ..."`), as the guest's script would answer it; the
/// same lines as installer/src/wsl/recording.rs's simulation.
fn simulate(command: &[&str], out: &mut Out<'_>) -> i32 {
    let script = command.last().copied().unwrap_or("");
    let args: Vec<&str> = script
        .split_once("COLINUX_FIRSTBOOT_ARGS='")
        .and_then(|(_, r)| r.split_once('\''))
        .map_or_else(Vec::new, |(a, _)| a.split_whitespace().collect());
    let arg = |k: &str| {
        args.iter()
            .find_map(|w| w.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    };
    if !args.contains(&"colinux.firstboot") {
        out.guest(&format!(
            "wsl-standin: ran the command (nothing to simulate): {}",
            command.join(" ")
        ));
        return 0;
    }
    out.guest("colinux-setup: first boot: mounted: (WSL mounts the root itself)");
    match arg("colinux.firstboot.test") {
        Some("fail") => {
            out.guest("colinux-setup: first boot: test hook: failing on purpose");
            out.guest(&format!("{FIRST_BOOT_FAILED} rc=1"));
            return 0;
        }
        Some("hang") => {
            out.guest("colinux-setup: first boot: test hook: hanging on purpose");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        }
        _ => {}
    }
    let target = arg("colinux.target").unwrap_or("/home");
    let Some(share) = arg("colinux.dist").and_then(|d| d.strip_prefix("dir:")) else {
        out.guest("colinux-setup: first boot: unknown distribution share");
        out.guest(&format!("{FIRST_BOOT_FAILED} rc=1"));
        return 0;
    };
    let dir = windows_path(share);
    match (
        dir.join("dist.tar").is_file(),
        std::fs::read_to_string(dir.join("SHA256SUMS")),
    ) {
        (true, Ok(sums)) => {
            let n = sums.lines().count();
            out.guest(&format!(
                "colinux-setup: first boot: unpacking the distribution into {target}"
            ));
            out.guest(&format!("colinux-setup: first boot: unpacked {n} entries"));
            out.guest(&format!(
                "colinux-setup: first boot: unpacked and checked {n} files in {target}"
            ));
            out.guest(FIRST_BOOT_OK);
        }
        _ => {
            out.guest(&format!(
                "tar: can't open '{share}/dist.tar': No such file or directory"
            ));
            out.guest(&format!("{FIRST_BOOT_FAILED} rc=1"));
        }
    }
    0
}

/// A new key name, `{xxxxxxxx-xxxx-4xxx-xxxx-xxxxxxxxxxxx}`, from the standard
/// library's randomly seeded hasher (no dependency for one GUID).
fn new_guid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (word(), word());
    format!(
        "{{{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}}}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry in memory.
    #[derive(Default)]
    struct Memory {
        keys: Vec<Distro>,
        default: Option<String>,
    }

    impl Registry for Memory {
        fn distributions(&self) -> Vec<Distro> {
            self.keys.clone()
        }
        fn default_guid(&self) -> Option<String> {
            self.default.clone()
        }
        fn add(&mut self, d: &Distro) -> std::io::Result<()> {
            self.keys.push(d.clone());
            Ok(())
        }
        fn remove(&mut self, guid: &str) -> std::io::Result<()> {
            self.keys.retain(|d| d.guid != guid);
            Ok(())
        }
        fn set_default(&mut self, guid: Option<&str>) -> std::io::Result<()> {
            self.default = guid.map(str::to_owned);
            Ok(())
        }
    }

    /// Runs `args`: the exit code and the output, decoded.
    fn wsl(reg: &mut Memory, utf8: bool, args: &[&str]) -> (i32, String) {
        let mut bytes = Vec::new();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let code = run(&args, reg, &mut Out::new(utf8, &mut bytes));
        let text = if utf8 {
            String::from_utf8(bytes).expect("utf-8")
        } else {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).expect("utf-16")
        };
        (code, text)
    }

    fn vhdx(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, b"vhdxfile and then the rest of the disk").expect("write");
        p
    }

    fn tmp(label: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "wsl-standin-{label}-{}-{}",
            std::process::id(),
            new_guid()
        ));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn import_list_and_unregister_as_wsl_does_the_disk_going_with_it() {
        let dir = tmp("import");
        let disk = vhdx(&dir, "root.vhdx");
        let mut reg = Memory::default();
        let (code, said) = wsl(&mut reg, false, &["--list", "--verbose"]);
        assert_eq!(code, -1, "{said}");
        assert!(said.contains("no installed distributions"), "{said}");

        let d = disk.display().to_string();
        assert_eq!(wsl(&mut reg, true, &["--import-in-place", "m1", &d]).0, 0);
        assert_eq!(reg.keys.len(), 1);
        assert_eq!(reg.keys[0].base_path, dir.display().to_string());
        assert_eq!(reg.keys[0].vhd, "root.vhdx");
        assert_eq!(reg.default.as_ref(), Some(&reg.keys[0].guid));
        assert!(reg.keys[0].guid.starts_with('{') && reg.keys[0].guid.len() == 38);
        // A taken name (without case), the same disk, a raw image, no file: refused.
        for (name, file) in [
            ("M1", d.clone()),
            ("m2", d.clone()),
            ("m3", dir.join("none.vhdx").display().to_string()),
            ("bad name", d.clone()),
        ] {
            let (code, said) = wsl(&mut reg, true, &["--import-in-place", name, &file]);
            assert_eq!(code, -1, "{name}: {said}");
            assert!(said.contains("Error code: Wsl/"), "{said}");
        }
        std::fs::write(dir.join("raw.img"), [0u8; 512]).expect("raw");
        let raw = dir.join("raw.img").display().to_string();
        assert_eq!(wsl(&mut reg, true, &["--import-in-place", "r", &raw]).0, -1);
        let other = vhdx(&dir, "other.vhdx").display().to_string();
        assert_eq!(
            wsl(
                &mut reg,
                true,
                &["--import-in-place", "longer-name", &other]
            )
            .0,
            0
        );

        // UTF-16LE without WSL_UTF8, as wsl.exe writes; the default first, with "* ".
        let (code, said) = wsl(&mut reg, false, &["-l", "-v"]);
        assert_eq!(code, 0);
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "STATE", "VERSION"]
        );
        assert!(lines[1].starts_with("* m1 "), "{said}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["longer-name", "Stopped", "2"]
        );
        assert!(said.ends_with("\r\n"));
        assert_eq!(wsl(&mut reg, true, &["--status"]).0, 0);
        assert_eq!(wsl(&mut reg, true, &["--terminate", "m1"]).0, 0);
        assert_eq!(wsl(&mut reg, true, &["--terminate", "nope"]).0, -1);

        // Unregister deletes the disk, and the default moves on.
        assert_eq!(wsl(&mut reg, true, &["--unregister", "m1"]).0, 0);
        assert!(!disk.exists(), "the disk outlived --unregister");
        assert_eq!(reg.keys.len(), 1);
        assert_eq!(reg.default.as_ref(), Some(&reg.keys[0].guid));
        assert_eq!(wsl(&mut reg, true, &["--unregister", "m1"]).0, -1);
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn the_first_boot_is_simulated_from_the_share_and_fails_on_request() {
        let dir = tmp("boot");
        let disk = vhdx(&dir, "root.vhdx");
        let share = dir.join(".share");
        std::fs::create_dir_all(&share).expect("mkdir");
        let mut reg = Memory::default();
        let script = |extra: &str| {
            format!(
                "export COLINUX_FIRSTBOOT_ARGS='colinux.firstboot colinux.target=/home colinux.dist=dir:{}{extra}'; if sh /etc/init.d/firstboot; then echo ok; fi; sync",
                share.display()
            )
        };
        let boot = |reg: &mut Memory, s: &str| {
            wsl(
                reg,
                true,
                &["-d", "m", "-u", "root", "--exec", "/bin/sh", "-c", s],
            )
        };
        let (code, said) = boot(&mut reg, &script(""));
        assert_eq!(code, -1, "not registered: {said}");
        assert!(said.contains("WSL_E_DISTRO_NOT_FOUND"), "{said}");
        let d = disk.display().to_string();
        assert_eq!(wsl(&mut reg, true, &["--import-in-place", "m", &d]).0, 0);

        // No dist.tar yet: the script's tar fails.
        let (code, said) = boot(&mut reg, &script(""));
        assert_eq!(code, 0);
        assert!(
            said.contains("COLINUX-SETUP-FIRST-BOOT: FAILED rc=1")
                && said.contains("tar: can't open"),
            "{said}"
        );
        std::fs::write(share.join("dist.tar"), b"tar").expect("tar");
        std::fs::write(share.join("SHA256SUMS"), "a  x\nb  y\n").expect("sums");
        let (code, said) = boot(&mut reg, &script(""));
        assert_eq!(code, 0);
        assert!(
            said.contains("unpacked and checked 2 files in /home"),
            "{said}"
        );
        assert!(
            said.lines().any(|l| l == "COLINUX-SETUP-FIRST-BOOT: OK"),
            "{said}"
        );
        let (_, said) = boot(&mut reg, &script(" colinux.firstboot.test=fail"));
        assert!(
            said.contains("failing on purpose") && said.contains("FAILED rc=1"),
            "{said}"
        );
        assert!(!said.contains("FIRST-BOOT: OK"), "{said}");
        // Another command: one line, success.
        let (code, said) = wsl(&mut reg, true, &["-d", "m", "--exec", "true"]);
        assert_eq!((code, said.lines().count()), (0, 1), "{said}");

        // The disk gone (unregistered elsewhere, deleted): the distribution cannot start.
        std::fs::remove_file(&disk).expect("rm");
        let (code, said) = boot(&mut reg, &script(""));
        assert_eq!(code, -1, "{said}");
        assert!(said.contains("ERROR_FILE_NOT_FOUND"), "{said}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn drive_automount_paths_map_back_to_windows_paths() {
        assert_eq!(
            windows_path("/mnt/c/coLinux/.colinux-setup-dist-x"),
            PathBuf::from(r"C:\coLinux\.colinux-setup-dist-x")
        );
        assert_eq!(windows_path("/mnt/d"), PathBuf::from(r"D:\"));
        assert_eq!(windows_path("/mnt/wsl/x"), PathBuf::from("/mnt/wsl/x"));
        assert_eq!(windows_path("/tmp/x"), PathBuf::from("/tmp/x"));
    }
}
