//! setup.msi and setup-x86.msi, judged by msitools and by Wine's msiexec: the tables
//! (msiinfo), a silent install with properties (files, config.txt, images
//! e2fsck-clean, the steps the provisioning showed in msiexec's verbose log), an uninstall that keeps the images and one with PURGE=1 that removes
//! them, a provisioning failure that rolls the whole install back with exit 1603 (1627
//! under Wine), and the ring-0 driver from a kit: a signed test driver that Wine really
//! loads (its service key, Type 1, running) and one whose DriverEntry fails, which rolls
//! back images already built while keeping images and machines that were there before.
//!
//! On 64-bit Windows `auto` is WSL 2, which Wine lacks: the coLinux tests give
//! MONITOR=colinux there ([`props`]); setup.msi's WSL path runs against the stand-in
//! wsl.exe (tests/wsl-standin, in C:\windows\system32), judged by WSL's registry keys it
//! keeps (`reg query`), qemu-img and e2fsck: refused without WSL leaving nothing,
//! registered, kept by `/x`, purged, and a failed first boot rolled back.
//!
//! setup-x86.msi is run the same way in 32-bit prefixes (`WINEARCH=win32`, Windows 7
//! x86, where coLinux runs): the install, uninstall and purge, an i386 driver that loads
//! and one that fails, and the i686 exe's own commands, including an image past 4 GiB.
//! Its root image's busybox must be i386 and run (qemu-i386).
//!
//! The MSIs are built once per run by scripts/build-msi into target/msi/, with the
//! Windows exes cached in target-win/ (the first build compiles the standard library,
//! a few minutes on 2 cores for each exe; later ones only what changed). Each test has
//! its own Wine prefix. Needs wine, wine64, wine32:i386, wixl, msitools, e2fsprogs and
//! qemu-user (scripts/test's apt list); a missing tool fails the test with its name.

use crate::common;
use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::wine::{
    WinArch, Wine, build_msi, reg_value, reg_values, repo, require, windows_path, wsl_standin_exe,
};

/// Builds target/msi/setup.msi once for the whole test binary.
fn msi() -> &'static Path {
    static MSI: OnceLock<PathBuf> = OnceLock::new();
    MSI.get_or_init(|| build_msi("x64", "setup.msi"))
}

/// Builds target/msi/setup-x86.msi (the i686 exe, Debian's i386 busybox) once for the
/// whole test binary.
fn msi_x86() -> &'static Path {
    static MSI: OnceLock<PathBuf> = OnceLock::new();
    MSI.get_or_init(|| build_msi("x86", "setup-x86.msi"))
}

/// What setup.msi's tests do with a Wine prefix besides running commands.
impl Wine {
    /// `msiexec ARGS /qn /l*v LOG`; the exit code and the verbose log's text.
    fn msiexec(&self, args: &str, log_name: &str) -> (u32, String) {
        self.msiexec_env(args, log_name, &[])
    }

    /// [`Wine::msiexec`] with test hooks in its environment: Wine's msiexec runs the
    /// deferred custom actions in its own process tree, which inherits them.
    fn msiexec_env(&self, args: &str, log_name: &str, env: &[(&str, &str)]) -> (u32, String) {
        let log = self.dir.path().join(log_name);
        let (code, _) = self.run_env(
            &format!("start /wait msiexec {args} /qn /l*v {}", windows_path(&log)),
            env,
        );
        let bytes = std::fs::read(&log).unwrap_or_default();
        (code, decode_log(&bytes))
    }

    /// The text of the exe's logs of one msiexec run: those beside msiexec's log
    /// `LOG_NAME` (`LOG_NAME.colinux-setup-ACTION.log`, when msiexec passed its log's
    /// name) and all under ProgramData, which the exe uses when it did not (Wine leaves
    /// MsiLogFileLocation empty).
    fn exe_logs(&self, log_name: &str) -> String {
        let beside = format!("{log_name}.colinux-setup-");
        let mut logs: Vec<PathBuf> = Vec::new();
        for dir in [
            self.dir.path().to_owned(),
            self.c_drive("ProgramData/colinux-setup/logs"),
        ] {
            if let Ok(d) = std::fs::read_dir(&dir) {
                logs.extend(d.filter_map(Result::ok).map(|e| e.path()).filter(|p| {
                    p.file_name().is_some_and(|n| {
                        let n = n.to_string_lossy();
                        n.starts_with(&beside) || n.starts_with("msi-")
                    })
                }));
            }
        }
        logs.sort();
        let mut text = String::new();
        for l in logs {
            text += &format!("== {}\n", l.display());
            text += &std::fs::read_to_string(l).unwrap_or_default();
        }
        text
    }
}

/// msiexec writes its log in UTF-16LE under Wine; plain text otherwise.
fn decode_log(bytes: &[u8]) -> String {
    if bytes.len() >= 2 && bytes[1] == 0 || bytes.starts_with(&[0xff, 0xfe]) {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn msiinfo_export(table: &str) -> Vec<Vec<String>> {
    export_from(msi(), table)
}

fn export_from(msi: &Path, table: &str) -> Vec<Vec<String>> {
    require("msiinfo");
    // In a folder of its own: a table with streams (Binary) is exported with its
    // streams as files in the current folder.
    let scratch = common::tempdir("msiinfo");
    let o = Command::new("msiinfo")
        .arg("export")
        .arg(msi)
        .arg(table)
        .current_dir(scratch.path())
        .output()
        .expect("msiinfo");
    assert!(
        o.status.success(),
        "msiinfo export {table}\n{}",
        common::text(&o)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(3) // column names, types, table name
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// setup.msi's public answer properties, as the program lists them (`msi properties`,
/// from its one list of answer keys); the design's fixed keys must be among them.
fn public() -> Vec<String> {
    let o = Command::new(common::BIN)
        .args(["msi", "properties"])
        .output()
        .expect("running colinux-setup msi properties");
    assert!(o.status.success(), "msi properties: {o:?}");
    let all: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|p| p != "USERSID")
        .collect();
    for fixed in [
        "INSTALLDIR",
        "RAMMB",
        "ROOTMB",
        "HOMEMB",
        "SWAPMB",
        "TAPNAME",
        "SUBNET",
        "MONITOR",
        "NOFIRSTBOOT",
        "ANSWERFILE",
        "PURGE",
    ] {
        assert!(
            all.iter().any(|p| p == fixed),
            "{fixed} is not a property: {all:?}"
        );
    }
    all
}

#[test]
fn tables_say_per_machine_upgradable_and_deferred_no_impersonate() {
    let props = msiinfo_export("Property");
    let prop = |k: &str| {
        props
            .iter()
            .find(|r| r[0] == k)
            .map(|r| r[1].clone())
            .unwrap_or_else(|| panic!("no Property {k}: {props:?}"))
    };
    assert_eq!(prop("ALLUSERS"), "1");
    assert_eq!(
        prop("UpgradeCode"),
        "{6F0C7E2A-3B1D-4C55-9A8E-2D4B7C1E0F93}"
    );
    let secure = prop("SecureCustomProperties");
    let secure: Vec<&str> = secure.split(';').collect();
    for p in public() {
        assert!(
            secure.contains(&p.as_str()),
            "SecureCustomProperties lacks {p}: {secure:?}"
        );
    }

    // Custom actions: in-script (0x400), not impersonated (0x800); the rollback one
    // also 0x100. Unprovision and the rollback are the exe from the installed file
    // (0x12); Provision is installer-ca's DLL from the Binary table (0x01), which runs
    // that exe and shows its steps on the progress page.
    let cas = msiinfo_export("CustomAction");
    let ty = |a: &str| -> u32 {
        cas.iter()
            .find(|r| r[0] == a)
            .and_then(|r| r[1].parse().ok())
            .unwrap_or_else(|| panic!("no CustomAction {a}: {cas:?}"))
    };
    let row = |a: &str| cas.iter().find(|r| r[0] == a).expect("a CustomAction row");
    for (a, kind) in [("Provision", 0x01), ("Unprovision", 0x12)] {
        let t = ty(a);
        assert_eq!(t & 0x3f, kind, "{a}: type {t} is not of kind {kind:#x}");
        assert_ne!(t & 0x400, 0, "{a}: type {t} is not deferred");
        assert_eq!(t & 0x100, 0, "{a}: type {t} must not be a rollback action");
        assert_ne!(t & 0x800, 0, "{a}: type {t} is impersonated");
    }
    assert_eq!(
        (row("Provision")[2].as_str(), row("Provision")[3].as_str()),
        ("ColinuxSetupCa", "ColinuxSetupProvision"),
        "Provision is not installer-ca's provisioning entry point"
    );
    let binaries: Vec<String> = msiinfo_export("Binary")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(
        binaries.iter().any(|b| b == "ColinuxSetupCa"),
        "no Binary row ColinuxSetupCa for Provision: {binaries:?}"
    );
    let t = ty("ProvisionRollback");
    assert_eq!(
        t & 0x500,
        0x500,
        "ProvisionRollback: type {t} is not a rollback action"
    );
    assert_ne!(t & 0x800, 0, "ProvisionRollback: type {t} is impersonated");
    // The features ask the provisioning for their part by setting a property (51).
    for (a, property) in [
        ("PuttyFromFeature", "PUTTYSESSION"),
        ("ServiceFromFeature", "SERVICE"),
    ] {
        assert_eq!(ty(a) & 0x3f, 51, "{a}");
        let row = cas.iter().find(|r| r[0] == a).expect("row");
        assert_eq!((row[2].as_str(), row[3].as_str()), (property, "1"), "{a}");
    }
    // Provision's CustomActionData (a type-51 action setting the property Provision):
    // the installed exe's path, then the command line the exe action had, with --json.
    assert_eq!(ty("ProvisionData") & 0x3f, 51);
    let provision = row("ProvisionData");
    assert_eq!(
        provision[2], "Provision",
        "ProvisionData sets {}",
        provision[2]
    );
    assert!(
        provision[3].starts_with("\"[#SetupExe]\" msi install --json --property "),
        "ProvisionData: {}",
        provision[3]
    );
    for p in public().iter().filter(|p| *p != "PURGE") {
        assert!(
            provision[3].contains(&format!("\"{p}=[{p}]")),
            "Provision does not pass {p}: {}",
            provision[3]
        );
    }
    assert!(
        provision[3].contains("\"USERSID=[UserSID]\""),
        "Provision does not pass the installing user's SID: {}",
        provision[3]
    );
    let features = msiinfo_export("Feature");
    let level = |f: &str| -> u32 {
        features
            .iter()
            .find(|r| r[0] == f)
            .and_then(|r| r[5].parse().ok())
            .unwrap_or_else(|| panic!("no Feature {f}: {features:?}"))
    };
    assert_eq!(level("Program"), 1);
    for f in ["PuttySession", "MachineService"] {
        assert!(level(f) > 1, "{f} is optional (ADDLOCAL=Program,{f})");
    }

    // The order: the features' properties are set once feature states are known and
    // before the script; the rollback before its action, all inside the script,
    // provisioning after the files are in place, unprovisioning before they go.
    let seq = msiinfo_export("InstallExecuteSequence");
    let at = |a: &str| -> u32 {
        seq.iter()
            .find(|r| r[0] == a)
            .and_then(|r| r[2].parse().ok())
            .unwrap_or_else(|| panic!("{a} is not in InstallExecuteSequence"))
    };
    let (init, fin) = (at("InstallInitialize"), at("InstallFinalize"));
    for a in ["PuttyFromFeature", "ServiceFromFeature"] {
        assert!(at("CostFinalize") < at(a) && at(a) < init, "{a}");
    }
    assert!(init < at("Unprovision") && at("Unprovision") < at("RemoveFiles"));
    assert!(at("InstallFiles") < at("ProvisionRollback"));
    assert!(at("ProvisionRollback") < at("Provision") && at("Provision") < fin);
    assert!(at("InstallFiles") < at("ProvisionData") && at("ProvisionData") < at("Provision"));
    assert!(at("FindRelatedProducts") < init && at("RemoveExistingProducts") < init);

    let upgrade = msiinfo_export("Upgrade");
    assert!(
        upgrade
            .iter()
            .all(|r| r[0] == "{6F0C7E2A-3B1D-4C55-9A8E-2D4B7C1E0F93}"),
        "{upgrade:?}"
    );
    assert!(
        upgrade
            .iter()
            .any(|r| r.last().is_some_and(|v| v == "WIX_UPGRADE_DETECTED"))
    );

    let files: Vec<String> = msiinfo_export("File")
        .into_iter()
        .map(|r| r[2].clone())
        .collect();
    for f in [
        "colinux-setup.exe",
        "minimal.toml",
        "bfin-uclinux.toml",
        "busybox",
        "busybox.applets",
    ] {
        assert!(
            files.iter().any(|n| n.ends_with(f)),
            "File table lacks {f}: {files:?}"
        );
    }
    let reg = msiinfo_export("Registry");
    // HKLM (2), the key (wixl writes it with a trailing backslash), detection values.
    for (name, value) in [
        ("InstallDir", "[INSTALLDIR]"),
        ("Version", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(
            reg.iter().any(|r| r[1] == "2"
                && r[2].trim_end_matches('\\') == "Software\\colinux-setup"
                && r[3] == name
                && r[4] == value),
            "no HKLM Software\\colinux-setup {name}={value}: {reg:?}"
        );
    }
    let sc = msiinfo_export("Shortcut");
    assert_eq!(sc.len(), 4, "{sc:?}");
}

/// What `msiexec /i` leaves, checked from the Linux side and by the installed exe.
fn check_installed(w: &Wine, dir: &str) {
    let root = w.c_drive(dir);
    assert!(root.join("bin/colinux-setup.exe").is_file());
    assert!(root.join("profiles/minimal.toml").is_file());
    let config = std::fs::read_to_string(root.join("config.txt")).expect("config.txt");
    assert!(
        config.contains("mem=48"),
        "RAMMB=48 not in config.txt:\n{config}"
    );
    assert!(
        config.contains(&format!("C:\\{dir}\\root.img")),
        "root image path:\n{config}"
    );
    let (code, o) = w.run(&format!(
        "C:\\{dir}\\bin\\colinux-setup.exe config check C:\\{dir}\\config.txt"
    ));
    assert_eq!(code, 0, "config check\n{}", common::text(&o));
    for img in ["root.img", "home.img"] {
        e2e_tests::oracle::e2fsck_clean(&root.join(img)).unwrap_or_else(|e| panic!("{img}: {e:#}"));
    }
    let root_mb = std::fs::metadata(root.join("root.img"))
        .expect("root.img")
        .len()
        >> 20;
    assert_eq!(root_mb, 64, "ROOTMB=64");
    assert!(root.join("swap.img").is_file());
    let o = w.reg_query("HKLM\\Software\\colinux-setup");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("C:\\{dir}")),
        "{}",
        common::text(&o)
    );
}

const PROPS: &str = "RAMMB=48 ROOTMB=64 HOMEMB=32 SWAPMB=64 NOFIRSTBOOT=1";

/// [`PROPS`] for a coLinux machine on `w`'s Windows. These tests are about coLinux's
/// machine (its config.txt and raw images, the ring-0 driver, the machine service, TAP,
/// the PuTTY session over slirp): on 64-bit Windows `auto` is WSL 2 alone (and, Wine
/// having no wsl.exe, the install would stop before any change), so they name coLinux
/// there, as a user making a machine for a 32-bit Windows 7 host does; on 32-bit
/// Windows they leave the monitor to `auto`, which is coLinux there. The WSL path has
/// its own tests (`x64_msi_..._wsl_...`, with the stand-in wsl.exe).
fn props(w: &Wine) -> String {
    match w.arch {
        WinArch::Win64 => format!("{PROPS} MONITOR=colinux"),
        WinArch::Win32 => PROPS.to_owned(),
    }
}

#[test]
fn silent_install_then_uninstall_keeps_images_and_purge_removes_them() {
    let w = Wine::new("install");
    install_uninstall_purge(&w, msi(), "cl");
}

/// `msiexec /i MSI INSTALLDIR=C:\DIR` with the test's properties, checked; `/x` keeps the
/// images; installed again over them; `/x PURGE=1` removes them.
fn install_uninstall_purge(w: &Wine, msi: &Path, dir: &str) {
    let msi = windows_path(msi);
    let props = props(w);
    let (code, log) = w.msiexec(
        &format!("/i {msi} INSTALLDIR=C:\\{dir} {props}"),
        "install.log",
    );
    assert_eq!(code, 0, "msiexec /i failed; log:\n{log}");
    // The provisioning showed its steps as it went (ActionText and ActionData, which a
    // silent install's verbose log keeps).
    let steps = provision_steps(&log);
    for step in [
        "checking the host",
        "building root.img",
        "building home.img",
        "writing swap.img",
        "writing config.txt",
    ] {
        assert!(
            steps.iter().any(|s| s == step),
            "Provision did not show the step {step:?}; it showed {steps:?}; log:\n{log}"
        );
    }
    check_installed(w, dir);
    if w.arch == WinArch::Win32 {
        check_i386_root(w, dir);
    }

    let o = w.reg_query(PUTTY_KEY);
    assert!(
        !o.status.success(),
        "a PuTTY session without the feature\n{}",
        common::text(&o)
    );

    let (code, log) = w.msiexec(&format!("/x {msi}"), "uninstall.log");
    assert_eq!(code, 0, "msiexec /x failed; log:\n{log}");
    let root = w.c_drive(dir);
    assert!(
        !root.join("bin/colinux-setup.exe").exists(),
        "the program is left"
    );
    assert!(!root.join("config.txt").exists(), "config.txt is left");
    for img in ["root.img", "home.img", "swap.img"] {
        assert!(root.join(img).is_file(), "{img} was not kept");
    }
    e2e_tests::oracle::e2fsck_clean(&root.join("home.img")).expect("kept home.img");
    let o = w.reg_query("HKLM\\Software\\colinux-setup");
    assert!(
        !o.status.success(),
        "registry key left\n{}",
        common::text(&o)
    );

    // Installed again over the kept images, then removed with PURGE=1.
    let (code, log) = w.msiexec(
        &format!("/i {msi} INSTALLDIR=C:\\{dir} {props}"),
        "install2.log",
    );
    assert_eq!(code, 0, "msiexec /i over kept images failed; log:\n{log}");
    assert!(root.join("config.txt").is_file());
    let (code, log) = w.msiexec(&format!("/x {msi} PURGE=1"), "purge.log");
    assert_eq!(code, 0, "msiexec /x PURGE=1 failed; log:\n{log}");
    for img in [
        "root.img",
        "home.img",
        "swap.img",
        "config.txt",
        "bin/colinux-setup.exe",
    ] {
        assert!(!root.join(img).exists(), "{img} left after PURGE=1");
    }
}

/// The steps installer-ca's provisioning sent, from a silent install's verbose log: its
/// ACTIONSTART message (`Action HH:MM:SS: Provision. STEP`, the progress page's text)
/// followed by its ACTIONDATA message for the same step (`STEP`: Wine leaves out the
/// template's `Provision: `, which Windows writes).
fn provision_steps(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log.lines().map(str::trim_end).collect();
    lines
        .windows(2)
        .filter_map(|pair| {
            let (_, step) = pair[0].split_once(": Provision. ")?;
            let data = pair[1].strip_prefix("Provision: ").unwrap_or(pair[1]);
            (pair[0].starts_with("Action ") && !step.is_empty() && data == step)
                .then(|| step.to_owned())
        })
        .collect()
}

/// The root image C:\DIR\root.img of a 32-bit install is a coLinux root: its
/// /bin/busybox (read out with debugfs) is a static i386 program, ELF class 32 and
/// machine 3, that runs its shell (qemu-i386 as a Pentium II: Debian's i386 packages are
/// built for i686), /bin/sh is a link to it, and the install said nothing about a root
/// coLinux cannot run.
fn check_i386_root(w: &Wine, dir: &str) {
    let img = w.c_drive(dir).join("root.img");
    // Named busybox: it picks its applet from argv[0].
    let out = w.dir.path().join(format!("{dir}-root-bin"));
    std::fs::create_dir_all(&out).expect("mkdir");
    let busybox = out.join("busybox");
    let o = Command::new("debugfs")
        .arg("-R")
        .arg(format!("dump /bin/busybox {}", busybox.display()))
        .arg(&img)
        .output()
        .expect("debugfs (package e2fsprogs)");
    assert!(o.status.success(), "{}", common::text(&o));
    let b = std::fs::read(&busybox).expect("/bin/busybox read out of root.img");
    assert_eq!(&b[..4], b"\x7fELF", "/bin/busybox is not ELF");
    assert_eq!(b[4], 1, "/bin/busybox is not ELF class 32");
    assert_eq!(elf_machine(&busybox), 3, "/bin/busybox is not i386");
    std::fs::set_permissions(
        &busybox,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    require("qemu-i386");
    let o = Command::new("qemu-i386")
        .args(["-cpu", "pentium2"])
        .arg(&busybox)
        .args(["sh", "-c", "echo guest shell: $((6 * 7)); ls /"])
        .output()
        .expect("qemu-i386 (package qemu-user)");
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("guest shell: 42"),
        "the root's busybox does not run as i386\n{}",
        common::text(&o)
    );
    let sh = common::debugfs(&img, "stat /bin/sh");
    assert!(
        sh.contains("Type: symlink") && sh.contains("\"/bin/busybox\""),
        "/bin/sh: {sh}"
    );
    let ours = w.exe_logs("install.log");
    assert!(
        ours.contains("busybox tree from") && !ours.contains("not i386"),
        "the install's log warns about the root or is missing:\n{ours}"
    );
}

/// The done-when of setup-x86.msi: on 32-bit Windows 7 (a win32 prefix) its silent
/// install with properties exits 0 and writes C:\coLinux with e2fsck-clean images, a
/// config.txt `config check` passes, and a root whose busybox is i386 and runs; `/x`
/// keeps the images and PURGE=1 removes them.
#[test]
fn x86_msi_installs_on_32_bit_windows_7_an_i386_root_kept_by_uninstall_removed_by_purge() {
    let w = Wine::new_arch("x86-install", WinArch::Win32);
    install_uninstall_purge(&w, msi_x86(), "coLinux");
}

/// setup-x86.msi with a kit whose signed driver is i386 (as coLinux's linux.sys): a
/// running kernel service with the machine service after it until `/x`; a driver that
/// fails to start rolls the whole install back, images built before it included.
#[test]
fn x86_msi_runs_the_kits_i386_driver_until_uninstall_and_rolls_back_one_that_fails() {
    let w = Wine::new_arch("x86-driver", WinArch::Win32);
    driver_runs_until_the_uninstall(&w, msi_x86());
    let kit = driver_kit(&w, "badkit", 0xC000_0001);
    a_failing_driver_leaves_a_fresh_folder_empty(&w, &windows_path(msi_x86()), &kit);
}

/// WSL's keys in the installing user's hive, where wsl.exe (here the stand-in) keeps
/// its distributions and colinux-setup reads their disks.
const LXSS_KEY: &str = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Lxss";

/// The sizes of the WSL tests' machine; its first boot runs (in the stand-in's
/// simulation of the guest's script).
const WSL_PROPS: &str = "ROOTMB=64 HOMEMB=32 SWAPMB=64";

/// Turns WSL 2 on, as far as the installer can tell: the stand-in wsl.exe
/// (tests/wsl-standin, a real PE program: Wine starts a script named wsl.exe without
/// waiting for it) where Windows has wsl.exe, %SystemRoot%\System32.
fn install_wsl_standin(w: &Wine) {
    let to = w.c_drive("windows/system32/wsl.exe");
    std::fs::copy(wsl_standin_exe(), &to).expect("copy the stand-in to system32\\wsl.exe");
}

/// The registered distributions: each `Lxss\{GUID}` key's values (name to value, as
/// `reg query /s` prints them).
fn wsl_distributions(w: &Wine) -> Vec<BTreeMap<String, String>> {
    let o = w
        .cmd("wine")
        .args(["reg", "query", LXSS_KEY, "/s"])
        .output()
        .expect("wine reg");
    if !o.status.success() {
        return Vec::new();
    }
    let mut keys = Vec::new();
    let mut key: Option<BTreeMap<String, String>> = None;
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        if l.starts_with("HKEY_") {
            keys.extend(key.take());
            if l.trim_end().ends_with('}') {
                key = Some(BTreeMap::new());
            }
        } else if let Some(k) = key.as_mut() {
            let mut f = l.split_whitespace();
            if let (Some(name), Some(ty)) = (f.next(), f.next())
                && ty.starts_with("REG_")
            {
                k.insert(name.to_owned(), f.collect::<Vec<_>>().join(" "));
            }
        }
    }
    keys.extend(key);
    keys
}

/// What is left in C:\DIR (nothing when it is gone).
fn left_in(w: &Wine, dir: &str) -> Vec<PathBuf> {
    std::fs::read_dir(w.c_drive(dir))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A refused or rolled-back install left nothing: no file in C:\DIR (no config.txt,
/// image, install-state or program), no registration of the program, no distribution.
fn nothing_left(w: &Wine, dir: &str, log: &str) {
    let left = left_in(w, dir);
    assert!(left.is_empty(), "left in C:\\{dir}: {left:?}; log:\n{log}");
    let o = w.reg_query("HKLM\\Software\\colinux-setup");
    assert!(!o.status.success(), "registry left\n{}", common::text(&o));
    let d = wsl_distributions(w);
    assert!(d.is_empty(), "a WSL distribution left: {d:?}");
}

/// install-state.json of C:\DIR.
fn install_state(w: &Wine, dir: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(w.c_drive(dir).join("install-state.json")).expect("install-state.json"),
    )
    .expect("install-state.json is JSON")
}

/// setup.msi on 64-bit Windows, whose `auto` is WSL 2: without wsl.exe the silent
/// install stops before any change, saying how to turn WSL 2 on; with it (the stand-in)
/// it builds root.vhdx (qemu-img and e2fsck find it clean), registers it in place (WSL's
/// registry key: BasePath the install folder), first-boots in it, and `status` says
/// so; `/x` unregisters it and keeps root.vhdx byte for byte, although WSL's unregister
/// deletes disks; installed again over it, `/x PURGE=1` removes it.
#[test]
fn x64_msi_without_wsl_changes_nothing_with_it_registers_root_vhdx_kept_by_uninstall_purged() {
    let msi = windows_path(msi());
    let w = Wine::new("wsl");
    let install = format!("/i {msi} INSTALLDIR=C:\\wsl {WSL_PROPS}");

    // 1. WSL 2 is not turned on (Wine has no wsl.exe).
    assert!(
        !w.c_drive("windows/system32/wsl.exe").exists(),
        "this Wine has a wsl.exe of its own"
    );
    let (code, log) = w.msiexec(&install, "nowsl.log");
    // Windows reports 1603; Wine's msiexec 1627 for the same failure. Wine's msiexec
    // log does not carry what the custom action printed: the exe's own log says why.
    assert!(code == 1603 || code == 1627, "exit {code}; log:\n{log}");
    let ours = w.exe_logs("nowsl.log");
    for words in ["wsl --install --no-distribution", "MONITOR=colinux"] {
        assert!(
            ours.contains(words),
            "the colinux-setup log does not say {words}:\n{ours}"
        );
    }
    nothing_left(&w, "wsl", &log);

    // 2. With WSL 2.
    install_wsl_standin(&w);
    let (code, log) = w.msiexec(&install, "install.log");
    assert_eq!(code, 0, "msiexec /i failed; log:\n{log}");
    let root = w.c_drive("wsl");
    let vhdx = root.join("root.vhdx");
    assert!(
        !root.join("root.img").exists(),
        "a raw root beside root.vhdx"
    );
    let o = Command::new("qemu-img")
        .args(["check", "-f", "vhdx"])
        .arg(&vhdx)
        .output()
        .expect("qemu-img (package qemu-utils)");
    assert!(o.status.success(), "qemu-img check: {}", common::text(&o));
    let raw = w.dir.path().join("root.raw");
    let o = Command::new("qemu-img")
        .args(["convert", "-f", "vhdx", "-O", "raw"])
        .arg(&vhdx)
        .arg(&raw)
        .output()
        .expect("qemu-img convert");
    assert!(o.status.success(), "qemu-img convert: {}", common::text(&o));
    e2e_tests::oracle::e2fsck_clean(&raw).expect("root.vhdx's ext4");
    let conf = common::debugfs(&raw, "cat /etc/wsl.conf");
    assert!(conf.contains("hostname=colinux"), "/etc/wsl.conf:\n{conf}");
    std::fs::remove_file(&raw).expect("rm root.raw");

    let distributions = wsl_distributions(&w);
    assert_eq!(distributions.len(), 1, "{distributions:?}");
    let d = &distributions[0];
    let value = |n: &str| d.get(n).map(String::as_str);
    assert_eq!(value("DistributionName"), Some("colinux"), "{d:?}");
    assert_eq!(value("BasePath"), Some("\\\\?\\C:\\wsl"), "{d:?}");
    assert_eq!(value("VhdFileName"), Some("root.vhdx"), "{d:?}");
    assert_eq!(value("Version"), Some("0x2"), "{d:?}");

    let state = install_state(&w, "wsl");
    assert_eq!(state["monitor"], "wsl", "{state}");
    assert_eq!(state["first_boot"], "done", "{state}");
    assert_eq!(state["wsl"]["name"], "colinux", "{state}");
    assert_eq!(state["wsl"]["created"], true, "{state}");
    assert_eq!(state["wsl"]["host"], "windows", "{state}");
    let ours = w.exe_logs("install.log");
    assert!(
        ours.contains("console: COLINUX-SETUP-FIRST-BOOT: OK"),
        "the first boot's marker is not in the log:\n{ours}"
    );

    let (code, o) = w.run("C:\\wsl\\bin\\colinux-setup.exe status --prefix C:\\wsl");
    assert_eq!(code, 0, "status\n{}", common::text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("colinux: registered, stopped"),
        "status\n{}",
        common::text(&o)
    );

    // 3. The uninstall unregisters, and root.vhdx is kept as it was.
    let before = common::sha256(&vhdx);
    let (code, log) = w.msiexec(&format!("/x {msi}"), "uninstall.log");
    assert_eq!(code, 0, "msiexec /x failed; log:\n{log}");
    let d = wsl_distributions(&w);
    assert!(d.is_empty(), "still registered after /x: {d:?}");
    assert_eq!(common::sha256(&vhdx), before, "root.vhdx changed or lost");
    for img in ["home.img", "swap.img"] {
        assert!(root.join(img).is_file(), "{img} was not kept");
    }
    for gone in [
        "bin/colinux-setup.exe",
        "config.txt",
        "install-state.json",
        ".root.vhdx.wsl-unregistering",
    ] {
        assert!(!root.join(gone).exists(), "{gone} left after /x");
    }

    // 4. Installed again over the kept disk (registered again), then purged.
    let (code, log) = w.msiexec(&install, "install2.log");
    assert_eq!(code, 0, "msiexec /i over the kept disk failed; log:\n{log}");
    let d = wsl_distributions(&w);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].get("BasePath").map(String::as_str),
        Some("\\\\?\\C:\\wsl"),
        "{d:?}"
    );
    assert_eq!(
        common::sha256(&vhdx),
        before,
        "the kept root.vhdx was changed"
    );
    let (code, log) = w.msiexec(&format!("/x {msi} PURGE=1"), "purge.log");
    assert_eq!(code, 0, "msiexec /x PURGE=1 failed; log:\n{log}");
    nothing_left(&w, "wsl", &log);
}

/// A first boot in the distribution that fails (the first-boot test hook, passed to the
/// provisioning through msiexec's environment): 1603, the distribution this install
/// registered is unregistered, and nothing is left.
#[test]
fn x64_msi_wsl_first_boot_that_fails_unregisters_the_distribution_and_leaves_nothing() {
    let msi = windows_path(msi());
    let w = Wine::new("wslfail");
    install_wsl_standin(&w);
    let (code, log) = w.msiexec_env(
        &format!("/i {msi} INSTALLDIR=C:\\wslfail {WSL_PROPS}"),
        "fail.log",
        &[("COLINUX_SETUP_TEST_FIRST_BOOT", "fail")],
    );
    assert!(code == 1603 || code == 1627, "exit {code}; log:\n{log}");
    let ours = w.exe_logs("fail.log");
    for words in [
        "registered the WSL distribution colinux",
        "test hook: failing on purpose",
        "the first boot failed",
        "unregistered the WSL distribution colinux",
    ] {
        assert!(
            ours.contains(words),
            "the colinux-setup log does not say {words}:\n{ours}"
        );
    }
    nothing_left(&w, "wslfail", &log);
}

#[test]
fn invalid_subnet_rolls_the_whole_install_back() {
    let msi = windows_path(msi());
    let w = Wine::new("rollback");
    let (code, log) = w.msiexec(
        &format!(
            "/i {msi} INSTALLDIR=C:\\bad {} SUBNET=300.1.2.0/24",
            props(&w)
        ),
        "bad.log",
    );
    // Windows reports 1603; Wine's msiexec reports 1627 for the same failure.
    assert!(code == 1603 || code == 1627, "exit {code}; log:\n{log}");
    assert!(
        log.contains("Provision"),
        "the log does not name the failed action:\n{log}"
    );
    let root = w.c_drive("bad");
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left after the rollback: {left:?}");
    let o = w.reg_query("HKLM\\Software\\colinux-setup");
    assert!(
        !o.status.success(),
        "registry key left\n{}",
        common::text(&o)
    );
    // The exe's own log, under ProgramData or beside msiexec's, says why.
    let ours = w.exe_logs("bad.log");
    assert!(
        ours.contains("SUBNET"),
        "no colinux-setup log names SUBNET:\n{ours}"
    );
}

/// The Windows exe itself under Wine: help, host facts from Windows APIs, an image built
/// from a tarball (e2fsck-clean, and clean by `images check`), a folder source refused
/// with the reason, config.txt checked, a kit and its signed driver verified.
#[test]
fn windows_exe_answers_facts_and_builds_images_under_wine() {
    msi();
    let w = Wine::new("exe");
    exe_commands(&w, "x86_64");
}

/// The i686 exe of setup-x86.msi under 32-bit Wine (Windows 7 x86): the same commands,
/// and an image larger than 4 GiB, past every 32-bit file offset, whose backup superblock
/// written at 6.1 GiB recovers it with e2fsck, and whose unwritten ranges are holes.
#[test]
fn x86_exe_answers_facts_builds_images_past_4_gib_and_verifies_kits_under_32_bit_wine() {
    msi_x86();
    let w = Wine::new_arch("x86-exe", WinArch::Win32);
    exe_commands(&w, "i686");
    let exe = exe_path("i686");

    // 6600 MiB of ext4 at 4 KiB blocks: 52 groups of 128 MiB, so sparse_super puts
    // backups in groups 1, 3, 5, 7, 9, 25, 27 and 49, the last at 6272 MiB.
    let dir = w.dir.path();
    let img = dir.join("big.img");
    let (code, o) = w.run(&format!(
        "{exe} images build {} --fs ext4 --size 6600M --from {}",
        windows_path(&img),
        windows_path(&dir.join("src.tar"))
    ));
    assert_eq!(code, 0, "images build 6600M\n{}", common::text(&o));
    let md = std::fs::metadata(&img).expect("big.img");
    assert_eq!(md.len(), 6600 << 20);
    let allocated = std::os::unix::fs::MetadataExt::blocks(&md) * 512;
    assert!(
        allocated < 256 << 20,
        "6600 MiB image takes {allocated} bytes on disk: its empty ranges were written"
    );
    e2e_tests::oracle::e2fsck_clean(&img).expect("6600 MiB image built by the i686 exe");
    // Recovery from the backup at 6272 MiB: e2fsck reads it (and its descriptor table)
    // and rebuilds what a backup does not vouch for (the bitmaps of groups left
    // uninitialised: from a backup it treats them as initialised, as it does with
    // mke2fs's images); the recovered copy is then clean.
    let copy = dir.join("from-backup.img");
    let cp = Command::new("cp")
        .args(["--sparse=always"])
        .arg(&img)
        .arg(&copy)
        .output()
        .expect("cp");
    assert!(cp.status.success(), "{}", common::text(&cp));
    let backup = Command::new("e2fsck")
        .args(["-fy", "-B", "4096", "-b", &(49 * 32768).to_string()])
        .arg(&copy)
        .output()
        .expect("e2fsck (package e2fsprogs)");
    let said = common::text(&backup);
    assert!(
        matches!(backup.status.code(), Some(0 | 1))
            && !said.contains("Bad magic")
            && !said.contains("Superblock invalid"),
        "the backup superblock at 6272 MiB is not sound\n{said}"
    );
    e2e_tests::oracle::e2fsck_clean(&copy).expect("recovered from the backup at 6272 MiB");
    std::fs::remove_file(&copy).expect("remove the copy");
    let (code, o) = w.run(&format!("{exe} images check {}", windows_path(&img)));
    assert_eq!(code, 0, "images check 6600M\n{}", common::text(&o));
}

/// The path of the Windows exe scripts/build-windows built for `arch` (x86_64, i686).
fn exe_path(arch: &str) -> String {
    windows_path(&repo().join(format!(
        "target-win/{arch}-win7-windows-gnu/release/colinux-setup.exe"
    )))
}

/// The exe for `arch` (already built) in `w`: help, facts, images build and check from a
/// tarball, a folder source refused, config check, kit verify and driver verify.
fn exe_commands(w: &Wine, arch: &str) {
    let exe = exe_path(arch);
    let (code, o) = w.run(&format!("{exe} --help"));
    assert_eq!(code, 0, "{}", common::text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("msi"),
        "{}",
        common::text(&o)
    );

    let facts = || -> serde_json::Value {
        let o = w
            .cmd("wine")
            .args([&exe, "facts", "--json"])
            .output()
            .expect("wine facts");
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("facts --json: {e}\n{}", common::text(&o)))
    };
    // The default (UML) profile is installed for the monitor the Windows build's `auto`
    // finds: WSL 2 on 64-bit Windows, which without wsl.exe says how to turn it on;
    // coLinux on 32-bit Windows.
    let want_monitor = if arch == "x86_64" {
        let facts = facts();
        assert!(facts["auto"]["monitor"].is_null(), "{facts}");
        assert!(
            facts["auto"]["why"]
                .as_str()
                .is_some_and(|s| s.contains("wsl --install --no-distribution")),
            "{facts}"
        );
        install_wsl_standin(w);
        "wsl"
    } else {
        "colinux"
    };
    let facts = facts();
    assert!(
        facts["host"]["os"]
            .as_str()
            .is_some_and(|s| s.contains("Windows")),
        "{facts}"
    );
    assert!(
        facts["host"]["volume"]["free_bytes"]
            .as_u64()
            .is_some_and(|v| v > 0),
        "{facts}"
    );
    assert_eq!(facts["monitor"], want_monitor, "{facts}");
    assert_eq!(facts["auto"]["monitor"], want_monitor, "{facts}");
    let want = if arch == "i686" { "x86" } else { "x86_64" };
    assert_eq!(facts["host"]["arch"], want, "{facts}");

    // A tarball made by the host's tar, with a mode and an owner NTFS could not hold.
    let dir = w.dir.path();
    std::fs::create_dir_all(dir.join("src/etc")).expect("mkdir");
    std::fs::write(dir.join("src/etc/secret"), "s3cret\n").expect("write");
    let o = Command::new("tar")
        .current_dir(dir)
        .args([
            "--owner=0",
            "--group=0",
            "--mode=go-rwx",
            "-cf",
            "src.tar",
            "-C",
            "src",
            ".",
        ])
        .output()
        .expect("tar");
    assert!(o.status.success(), "{}", common::text(&o));
    let img = dir.join("out.img");
    let (code, o) = w.run(&format!(
        "{exe} images build {} --fs ext4 --size 8M --from {}",
        windows_path(&img),
        windows_path(&dir.join("src.tar"))
    ));
    assert_eq!(code, 0, "images build\n{}", common::text(&o));
    e2e_tests::oracle::e2fsck_clean(&img).expect("image built on Windows");
    assert!(common::debugfs(&img, "stat /etc/secret").contains("Mode:  0600"));

    let (code, o) = w.run(&format!(
        "{exe} images build {} --fs ext4 --size 8M --from {}",
        windows_path(&dir.join("dir.img")),
        windows_path(&dir.join("src"))
    ));
    assert_ne!(code, 0, "a folder source must be refused on Windows");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("give a tarball instead"),
        "{}",
        common::text(&o)
    );
    assert!(!dir.join("dir.img").exists());
    let (code, o) = w.run(&format!("{exe} images check {}", windows_path(&img)));
    assert_eq!(code, 0, "images check\n{}", common::text(&o));

    // config.txt: the seed manual's (an eth0 error at 18:12) and the same one fixed.
    let seed = include_str!("../../../config-txt/tests/data/seed-config.txt");
    std::fs::write(dir.join("seed.txt"), seed).expect("write");
    std::fs::write(
        dir.join("fixed.txt"),
        seed.replace("slirp,\"\",", "slirp,,"),
    )
    .expect("write");
    let (code, o) = w.run(&format!(
        "{exe} config check {}",
        windows_path(&dir.join("seed.txt"))
    ));
    assert_eq!(
        code,
        1,
        "config check of the seed's config.txt\n{}",
        common::text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("seed.txt:18:12: error: error parsing MAC address"),
        "{}",
        common::text(&o)
    );
    let (code, o) = w.run(&format!(
        "{exe} config check {}",
        windows_path(&dir.join("fixed.txt"))
    ));
    assert_eq!(
        code,
        0,
        "config check of a good config.txt\n{}",
        common::text(&o)
    );

    // A kit with this Windows's signed driver: verified whole, its driver against the
    // pinned CA and refused against another; one changed byte fails the kit.
    let kit = driver_kit(w, "vkit", 0);
    let (code, o) = w.run(&format!("{exe} kit verify {kit}"));
    assert_eq!(code, 0, "kit verify\n{}", common::text(&o));
    let pki = w.dir.path().join("pki-vkit");
    for (ca, want) in [("ca.pem", 0), ("other-ca.pem", 1)] {
        let (code, o) = w.run(&format!(
            "{exe} driver verify {kit}\\linux.sys --signer {}",
            windows_path(&pki.join(ca))
        ));
        assert_eq!(
            code,
            want,
            "driver verify --signer {ca}\n{}",
            common::text(&o)
        );
    }
    let daemon = w.c_drive("vkit/colinux-daemon.exe");
    let mut bytes = std::fs::read(&daemon).expect("daemon");
    bytes[0] ^= 1;
    std::fs::write(&daemon, bytes).expect("write");
    let (code, o) = w.run(&format!("{exe} kit verify {kit}"));
    assert_eq!(code, 1, "kit verify of a changed kit\n{}", common::text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("colinux-daemon.exe"),
        "{}",
        common::text(&o)
    );
}

/// A kit in `C:\NAME` holding the ring-0 driver, `loadable_driver(status)` signed by a
/// test CA pinned in kit.toml (`signer_ca`), and stand-ins for the daemon and the kernel
/// (role monitor and kernel: copied into INSTALLDIR, never run here).
fn driver_kit(w: &Wine, name: &str, status: u32) -> String {
    let pki = support::Pki::new(&w.dir.path().join(format!("pki-{name}")));
    let kit = w.c_drive(name);
    std::fs::create_dir_all(kit.join("certs")).expect("mkdir kit");
    std::fs::write(
        kit.join("colinux-daemon.exe"),
        b"MZ stand-in for colinux-daemon",
    )
    .expect("write daemon");
    std::fs::write(kit.join("vmlinux"), b"stand-in for the coLinux kernel").expect("write kernel");
    let unsigned = w.dir.path().join(format!("{name}-unsigned.sys"));
    // winedevice runs drivers of its own Windows: x86-64 in a 64-bit prefix, i386 in a
    // 32-bit one (as linux.sys is on the 32-bit Windows coLinux runs on).
    let arch = match w.arch {
        WinArch::Win64 => support::Arch::X86_64,
        WinArch::Win32 => support::Arch::I386,
    };
    std::fs::write(&unsigned, support::loadable_driver_for(arch, status)).expect("write driver");
    pki.sign("chain.pem", "leaf.key", &unsigned, &kit.join("linux.sys"));
    std::fs::copy(pki.path("ca.pem"), kit.join("certs/ca.pem")).expect("copy CA");
    common::kit_init(&kit, &["--signer", "linux.sys=certs/ca.pem"]);
    format!("C:\\{name}")
}

const DRIVER_KEY: &str = "HKLM\\System\\CurrentControlSet\\Services\\CoLinuxDriver";

const SERVICE_KEY: &str = "HKLM\\System\\CurrentControlSet\\Services\\coLinux";

#[test]
fn a_signed_driver_from_the_kit_is_a_running_kernel_service_until_the_uninstall() {
    let w = Wine::new("driver");
    driver_runs_until_the_uninstall(&w, msi());
}

/// An install from a kit with a signed driver that loads, and the MachineService
/// feature: the driver's service key, the driver running, the machine service, the
/// record; `/x` removes the services and the kit's files and keeps the images.
fn driver_runs_until_the_uninstall(w: &Wine, msi: &Path) {
    let msi = windows_path(msi);
    let kit = driver_kit(w, "kit", 0);
    let (code, log) = w.msiexec(
        &format!(
            "/i {msi} INSTALLDIR=C:\\drv KIT={kit} {} ADDLOCAL=Program,MachineService",
            props(w)
        ),
        "install.log",
    );
    assert_eq!(code, 0, "msiexec /i with a driver kit failed; log:\n{log}");
    let root = w.c_drive("drv");
    assert_eq!(
        std::fs::read(root.join("linux.sys")).expect("linux.sys in INSTALLDIR"),
        std::fs::read(w.c_drive("kit/linux.sys")).expect("kit driver"),
        "the installed driver is not the kit's"
    );

    let o = w.reg_query(DRIVER_KEY);
    assert!(o.status.success(), "no service key\n{}", common::text(&o));
    let values = reg_values(&o);
    let value = |n: &str| {
        reg_value(&values, n).unwrap_or_else(|| panic!("{DRIVER_KEY} has no {n}: {values:?}"))
    };
    assert_eq!(value("Type"), "0x1", "SERVICE_KERNEL_DRIVER");
    assert_eq!(
        value("Start"),
        "0x2",
        "SERVICE_AUTO_START, as colinux-daemon"
    );
    assert_eq!(value("ImagePath"), "C:\\drv\\linux.sys");

    // Wine's winedevice loaded it: DriverEntry ran and returned STATUS_SUCCESS.
    let (code, o) = w.run("C:\\drv\\bin\\colinux-setup.exe driver status --prefix C:\\drv");
    assert_eq!(code, 0, "{}", common::text(&o));
    let said =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("running") && said.contains("C:\\drv\\linux.sys"),
        "driver status: {said}"
    );
    // The MachineService feature: the machine as a service at boot, after the driver,
    // running the daemon the kit brought into INSTALLDIR.
    assert!(
        root.join("colinux-daemon.exe").is_file(),
        "the kit's daemon was not copied"
    );
    let config = std::fs::read_to_string(root.join("config.txt")).expect("config.txt");
    assert!(config.contains("kernel=C:\\drv\\vmlinux"), "{config}");
    let o = w.reg_query(SERVICE_KEY);
    assert!(
        o.status.success(),
        "no machine service\n{}",
        common::text(&o)
    );
    let svc = reg_values(&o);
    let has = |n: &str, v: &str| reg_value(&svc, n).as_deref() == Some(v);
    assert!(has("Type", "0x10"), "own process: {svc:?}");
    assert!(has("Start", "0x2"), "starts at boot: {svc:?}");
    assert!(
        svc.iter()
            .any(|v| v.name == "DependOnService" && v.value.contains("CoLinuxDriver")),
        "{svc:?}"
    );
    assert!(
        has(
            "ImagePath",
            "\"C:\\drv\\colinux-daemon.exe\" @C:\\drv\\config.txt --run-service coLinux"
        ),
        "{svc:?}"
    );

    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("install-state.json")).expect("install-state.json"),
    )
    .expect("state json");
    assert_eq!(state["service"]["created"], true, "{state}");
    assert_eq!(state["driver"]["name"], "CoLinuxDriver", "{state}");
    assert_eq!(state["driver"]["created"], true, "{state}");
    assert!(
        state["driver"]["signer"]
            .as_str()
            .is_some_and(|s| s.contains("coLinux Test")),
        "{state}"
    );

    let (code, log) = w.msiexec(&format!("/x {msi}"), "uninstall.log");
    assert_eq!(code, 0, "msiexec /x failed; log:\n{log}");
    let o = w.reg_query(DRIVER_KEY);
    assert!(
        !o.status.success(),
        "the driver service outlived the uninstall\n{}",
        common::text(&o)
    );
    let o = w.reg_query(SERVICE_KEY);
    assert!(
        !o.status.success(),
        "the machine service outlived the uninstall\n{}",
        common::text(&o)
    );
    assert!(
        !root.join("colinux-daemon.exe").exists(),
        "the daemon is left"
    );
    assert!(!root.join("linux.sys").exists(), "linux.sys left");
    for img in ["root.img", "home.img", "swap.img"] {
        assert!(root.join(img).is_file(), "{img} was not kept");
    }
}

fn digests(dir: &Path, files: &[&str]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|f| (f.to_string(), common::sha256(&dir.join(f))))
        .collect()
}

/// The install failed (1603; 1627 under Wine) and left no driver service and no
/// registry key.
fn failed_without_driver(w: &Wine, code: u32, log: &str) {
    assert!(code == 1603 || code == 1627, "exit {code}; log:\n{log}");
    let o = w.reg_query(DRIVER_KEY);
    assert!(!o.status.success(), "service left\n{}", common::text(&o));
    let o = w.reg_query("HKLM\\Software\\colinux-setup");
    assert!(!o.status.success(), "registry left\n{}", common::text(&o));
}

/// An install into C:\fresh from `kit`, whose driver fails to start after root, home and
/// swap were built: all of it is rolled back and the folder left empty.
fn a_failing_driver_leaves_a_fresh_folder_empty(w: &Wine, msi: &str, kit: &str) {
    let (code, log) = w.msiexec(
        &format!("/i {msi} INSTALLDIR=C:\\fresh KIT={kit} {}", props(w)),
        "fresh.log",
    );
    failed_without_driver(w, code, &log);
    let ours = w.exe_logs("fresh.log");
    assert!(
        ours.contains("starting the CoLinuxDriver driver"),
        "the log does not say the driver did not start:\n{ours}"
    );
    assert!(
        ours.contains("rollback: removed") && ours.contains("root.img"),
        "root.img was not built and rolled back:\n{ours}"
    );
    let left: Vec<_> = std::fs::read_dir(w.c_drive("fresh"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left after the rollback: {left:?}");
}

/// A driver whose DriverEntry fails makes the driver step fail after the images were
/// built: the MSI rolls back what this install made and nothing else.
#[test]
fn a_driver_that_fails_to_start_rolls_back_only_what_this_install_made() {
    let msi = windows_path(msi());
    let w = Wine::new("badriver");
    let kit = driver_kit(&w, "badkit", 0xC000_0001);
    let failed = |code: u32, log: &str| failed_without_driver(&w, code, log);
    let props = props(&w);

    // 1. A fresh folder: the images were built, then removed with everything else.
    a_failing_driver_leaves_a_fresh_folder_empty(&w, &msi, &kit);

    // 2. Images kept by an earlier uninstall are not this install's to remove.
    let (code, log) = w.msiexec(&format!("/i {msi} INSTALLDIR=C:\\again {props}"), "a1.log");
    assert_eq!(code, 0, "{log}");
    let (code, log) = w.msiexec(&format!("/x {msi}"), "a2.log");
    assert_eq!(code, 0, "{log}");
    let again = w.c_drive("again");
    let images = ["root.img", "home.img", "swap.img"];
    let before = digests(&again, &images);
    let (code, log) = w.msiexec(
        &format!("/i {msi} INSTALLDIR=C:\\again KIT={kit} {props}"),
        "a3.log",
    );
    failed(code, &log);
    assert_eq!(digests(&again, &images), before, "kept images changed");
    for f in [
        "config.txt",
        "install-state.json",
        "bin",
        ".msi-provisioned",
    ] {
        assert!(!again.join(f).exists(), "{f} left after the rollback");
    }

    // 3. A machine provisioned before (by the program itself, outside the MSI) is left
    //    exactly as it was: images, config.txt and its install-state. A coLinux
    //    machine (MONITOR=colinux: the 64-bit exe's `auto` is WSL 2, which Wine lacks),
    //    and the MSI's install over it asks for coLinux too, so that it fails at the
    //    driver, after the images, and not at the monitor probe before any change.
    let exe = w.stage_program("x64", "tools");
    let (code, o) = w.run(&format!(
        "{exe} install --unattended --prefix C:\\keep --set MONITOR=colinux \
         --set RAMMB=48 --set ROOTMB=64 --set HOMEMB=32 --set SWAPMB=64 --set NOFIRSTBOOT=1"
    ));
    assert_eq!(code, 0, "install by the exe\n{}", common::text(&o));
    let keep = w.c_drive("keep");
    let files = [
        "root.img",
        "home.img",
        "swap.img",
        "config.txt",
        "install-state.json",
    ];
    let before = digests(&keep, &files);
    let (code, log) = w.msiexec(
        &format!("/i {msi} INSTALLDIR=C:\\keep KIT={kit} RAMMB=64 MONITOR=colinux"),
        "keep.log",
    );
    failed(code, &log);
    let log = log + &w.exe_logs("keep.log");
    assert_eq!(
        digests(&keep, &files),
        before,
        "the existing machine changed"
    );
    assert!(
        !keep.join(".msi-provisioned").exists(),
        "a failed provisioning left its note for the rollback; msiexec log:\n{log}"
    );
    assert!(!keep.join("bin").exists(), "the MSI's program left");
    e2e_tests::oracle::e2fsck_clean(&keep.join("home.img")).expect("home.img");
}

const PUTTY_KEY: &str = "HKCU\\Software\\SimonTatham\\PuTTY\\Sessions\\coLinux";

#[test]
fn the_putty_session_feature_saves_the_users_session_from_config_txt() {
    let msi = windows_path(msi());
    let w = Wine::new("putty");
    let (code, log) = w.msiexec(
        &format!(
            "/i {msi} INSTALLDIR=C:\\pt {} SLIRP=tcp:2222:22 ADDLOCAL=Program,PuttySession",
            props(&w)
        ),
        "install.log",
    );
    assert_eq!(code, 0, "msiexec /i failed; log:\n{log}");
    let config = std::fs::read_to_string(w.c_drive("pt/config.txt")).expect("config.txt");
    assert!(
        config
            .lines()
            .any(|l| l.starts_with("eth0=slirp,") && l.ends_with(",tcp:2222:22")),
        "{config}"
    );
    let o = w.reg_query(PUTTY_KEY);
    assert!(o.status.success(), "no session\n{}", common::text(&o));
    let values = reg_values(&o);
    for (name, value) in [
        ("HostName", "localhost"),
        ("PortNumber", "0x8ae"),
        ("Protocol", "ssh"),
    ] {
        assert!(
            reg_value(&values, name).as_deref() == Some(value),
            "{name}={value} not in {values:?}"
        );
    }

    let (code, log) = w.msiexec(&format!("/x {msi}"), "uninstall.log");
    assert_eq!(code, 0, "msiexec /x failed; log:\n{log}");
    let o = w.reg_query(PUTTY_KEY);
    assert!(
        !o.status.success(),
        "the session outlived the uninstall\n{}",
        common::text(&o)
    );

    // Asked for without a way to the guest's ssh port: refused before any change.
    let (code, log) = w.msiexec(
        &format!(
            "/i {msi} INSTALLDIR=C:\\pt2 {} ADDLOCAL=Program,PuttySession",
            props(&w)
        ),
        "noport.log",
    );
    assert!(code == 1603 || code == 1627, "exit {code}; log:\n{log}");
    assert!(
        !w.c_drive("pt2/config.txt").exists(),
        "the provisioning was not rolled back"
    );
    let ours = w.exe_logs("noport.log");
    assert!(
        ours.contains("PUTTYSESSION") && ours.contains("SLIRP=tcp:2222:22"),
        "the log does not say why:\n{ours}"
    );
}

/// The `Machine` field of a PE file's COFF header.
fn pe_machine(path: &Path) -> u16 {
    let b = std::fs::read(path).expect("read PE");
    let at = u32::from_le_bytes(b[0x3c..0x40].try_into().expect("e_lfanew")) as usize;
    assert_eq!(
        &b[at..at + 4],
        b"PE\0\0",
        "{} is not a PE file",
        path.display()
    );
    u16::from_le_bytes([b[at + 4], b[at + 5]])
}

/// The `e_machine` field of an ELF file.
fn elf_machine(path: &Path) -> u16 {
    let b = std::fs::read(path).expect("read ELF");
    assert_eq!(&b[..4], b"\x7fELF", "{} is not an ELF file", path.display());
    u16::from_le_bytes([b[18], b[19]])
}

/// setup-x86.msi is for the 32-bit Windows where coLinux runs: an Intel package of
/// 32-bit components carrying the i686 exe and Debian's i386 busybox (a coLinux kernel
/// is 32-bit x86), while setup.msi carries x86-64 ones. Read back with msitools'
/// msiextract and the files' own headers. (The x86 package is installed under 32-bit
/// Wine by the x86_ tests.)
#[test]
fn the_x86_msi_carries_32_bit_components_the_i686_exe_and_an_i386_busybox() {
    require("msiextract");
    for (msi, template, bit64, pe, elf) in [
        (msi_x86(), "Intel;1033", false, 0x14c, 3),
        (msi(), "x64;1033", true, 0x8664, 62),
    ] {
        let o = Command::new("msiinfo")
            .arg("suminfo")
            .arg(msi)
            .output()
            .expect("msiinfo suminfo");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&format!("Template: {template}")),
            "{}: {}",
            msi.display(),
            common::text(&o)
        );
        for c in export_from(msi, "Component") {
            let attributes: u32 = c[3].parse().expect("Attributes");
            assert_eq!(
                attributes & 256 != 0,
                bit64,
                "{}: component {} has attributes {attributes}",
                msi.display(),
                c[0]
            );
        }
        let out = tempfile::tempdir().expect("tempdir");
        let o = Command::new("msiextract")
            .arg("-C")
            .arg(out.path())
            .arg(msi)
            .output()
            .expect("msiextract");
        assert!(o.status.success(), "{}", common::text(&o));
        let root = out.path().join("coLinux");
        assert_eq!(
            pe_machine(&root.join("bin/colinux-setup.exe")),
            pe,
            "{}",
            msi.display()
        );
        let busybox = root.join("assets/busybox");
        assert_eq!(elf_machine(&busybox), elf, "{}", msi.display());
        // The applet list shipped beside it is the binary's own (a static i386 program
        // runs on this x86-64 kernel too).
        // An MSI keeps no Unix modes.
        std::fs::set_permissions(
            &busybox,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let o = Command::new(&busybox)
            .arg("--list-full")
            .output()
            .expect("run the shipped busybox");
        assert!(o.status.success(), "{}", common::text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            std::fs::read_to_string(root.join("assets/busybox.applets")).expect("applets"),
            "{}",
            msi.display()
        );
    }
}
