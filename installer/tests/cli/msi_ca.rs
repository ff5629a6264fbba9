//! setup.msi's dialog bridge (installer-ca: colinux_setup_ca.dll, entry point
//! ColinuxSetupUi) under Wine's msiexec. A small MSI built here with wixl and msibuild
//! carries the DLL (Binary `ColinuxSetupCa`), the real colinux-setup.exe (Binary
//! `ColinuxSetupExe`) and the assets it plans with (`ColinuxSetupAsset.busybox`, this
//! host's static busybox, and `.busybox.applets`, its applet list), as setup.msi does;
//! it runs the bridge as an immediate type-1 custom action in
//! InstallExecuteSequence (so `/qn` runs it, before the registry is written), and
//! writes the properties the bridge set into HKLM\Software\colinux-setup-ca-test,
//! which `reg query` reads back. The oracle for the values is the same exe's own
//! `msi ui`, installed with its assets in the same prefix.
//!
//! The x86_64 build runs in a 64-bit prefix; the i686 one (whose stdcall export must be
//! the plain name MSI asks for) in a 32-bit prefix, as on Windows 7 x86. The exes and
//! DLLs are built by scripts/build-windows into target-win/ (once per test binary,
//! shared with msi.rs); each test has its own prefix. Needs wine, wine64, wine32:i386,
//! wixl, msitools and busybox-static.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::wine::{WinArch, Wine, reg_value, reg_values, require, windows_exe, windows_path};

/// The registry key the test MSI writes the properties into.
const KEY: &str = r"HKLM\Software\colinux-setup-ca-test";
/// The properties it writes there.
const WRITTEN: [&str; 7] = [
    "INSTALLDIR",
    "RAMMB",
    "ROOTMB",
    "SUBNET",
    "STARTMENU",
    "UI_PAGE",
    "UI_ERROR",
];

/// One Windows build: wixl's architecture, the prefix it runs in, the exe and the DLL.
struct Build {
    /// `wixl -a`: x64 or x86.
    wixl_arch: &'static str,
    /// The prefix's Windows.
    win: WinArch,
    /// colinux-setup.exe.
    exe: PathBuf,
    /// colinux_setup_ca.dll, beside it.
    dll: PathBuf,
}

impl Build {
    /// The x86_64 exe and DLL, for a 64-bit prefix.
    fn x64() -> Build {
        Build::of("x64", WinArch::Win64, windows_exe())
    }

    /// The i686 exe and DLL (built once per test binary), for a 32-bit prefix.
    fn x86() -> Build {
        let exe = common::wine::windows_exe_i686();
        Build::of("x86", WinArch::Win32, exe)
    }

    fn of(wixl_arch: &'static str, win: WinArch, exe: &Path) -> Build {
        let dll = exe.with_file_name("colinux_setup_ca.dll");
        for f in [exe, &dll] {
            assert!(f.is_file(), "{} was not built", f.display());
        }
        Build {
            wixl_arch,
            win,
            exe: exe.to_owned(),
            dll,
        }
    }
}

/// Builds `DIR/ca-test.msi` for `build`: the bridge with UI_PROPERTIES=`list`,
/// UI_PAGE=`page` and the other properties `props`, then a component writing
/// [`WRITTEN`] under [`KEY`].
fn bridge_msi(
    dir: &Path,
    build: &Build,
    list: &str,
    page: &str,
    props: &[(&str, &str)],
) -> PathBuf {
    require("wixl");
    require("msibuild");
    // wixl takes relative source paths only.
    std::fs::copy(&build.dll, dir.join("ca.dll")).expect("copy the dll");
    std::fs::copy(&build.exe, dir.join("program.exe")).expect("copy the exe");
    stage_assets(dir);
    let mut properties = format!(
        "<Property Id=\"UI_PROPERTIES\" Value=\"{list}\"/>\n<Property Id=\"UI_PAGE\" Value=\"{page}\"/>\n"
    );
    for (k, v) in props {
        properties += &format!("<Property Id=\"{k}\" Value=\"{v}\"/>\n");
    }
    let values: String = WRITTEN
        .iter()
        .map(|n| {
            format!(
                "<RegistryValue Root=\"HKLM\" Key=\"Software\\colinux-setup-ca-test\" Name=\"{n}\" Type=\"string\" Value=\"[{n}]\"{}/>\n",
                if *n == "RAMMB" { " KeyPath=\"yes\"" } else { "" }
            )
        })
        .collect();
    let win64 = if build.win == WinArch::Win64 {
        "yes"
    } else {
        "no"
    };
    let wxs = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="*" Name="colinux-setup-ca test" Language="1033" Version="1.0.0" Manufacturer="colinux-setup tests" UpgradeCode="{{5C2B0A4E-7D19-4E0B-9F3A-6B1C2D3E4F50}}">
    <Package InstallerVersion="500" Compressed="yes" InstallScope="perMachine"/>
    <Media Id="1" Cabinet="ca.cab" EmbedCab="yes"/>
    <Binary Id="ColinuxSetupCa" SourceFile="ca.dll"/>
    <Binary Id="ColinuxSetupExe" SourceFile="program.exe"/>
    <Binary Id="ColinuxSetupAsset.busybox" SourceFile="busybox"/>
    <Binary Id="ColinuxSetupAsset.busybox.applets" SourceFile="busybox.applets"/>
    {properties}
    <CustomAction Id="ColinuxSetupUi" BinaryKey="ColinuxSetupCa" DllEntry="ColinuxSetupUi" Execute="immediate" Return="check"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Component Id="Values" Guid="{{7A3E5F10-2B4C-4D6E-8F01-A2B3C4D5E6F7}}" Win64="{win64}">
        {values}
      </Component>
    </Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="Values"/></Feature>
    <InstallExecuteSequence>
      <Custom Action="ColinuxSetupUi" Sequence="1001"/>
    </InstallExecuteSequence>
  </Product>
</Wix>
"#
    );
    std::fs::write(dir.join("ca-test.wxs"), wxs).expect("write the wxs");
    let o = Command::new("wixl")
        .args(["-a", build.wixl_arch, "-o", "ca-test.msi", "ca-test.wxs"])
        .current_dir(dir)
        .output()
        .expect("wixl");
    assert!(o.status.success(), "wixl\n{}", common::text(&o));
    let msi = dir.join("ca-test.msi");
    // wixl writes 2049 (no-impersonate); setup.msi's bridge is a plain type 1: a DLL
    // in the Binary table, run synchronously, its return code checked.
    let o = Command::new("msibuild")
        .arg(&msi)
        .args([
            "-q",
            "UPDATE `CustomAction` SET `Type` = 1 WHERE `Action` = 'ColinuxSetupUi'",
        ])
        .output()
        .expect("msibuild");
    assert!(o.status.success(), "msibuild\n{}", common::text(&o));
    msi
}

/// This host's static busybox and its applet list in `dir` (`busybox`,
/// `busybox.applets`), as scripts/build-msi makes the x64 MSI's assets (the i686 exe
/// takes them too: `msi ui` only plans with them).
fn stage_assets(dir: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox is not installed; scripts/test installs it (package busybox-static)"
    );
    std::fs::copy(busybox, dir.join("busybox")).expect("copy busybox");
    let o = Command::new(busybox)
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    assert!(
        o.status.success(),
        "busybox --list-full\n{}",
        common::text(&o)
    );
    std::fs::write(dir.join("busybox.applets"), &o.stdout).expect("write the applet list");
}

/// `msiexec /i MSI /qn /l*v LOG`: the exit code and the log's text.
fn install(w: &Wine, msi: &Path) -> (u32, String) {
    let log = w.dir.path().join("ca-test.log");
    let (code, _) = w.run(&format!(
        "start /wait msiexec /i {} /qn /l*v {}",
        windows_path(msi),
        windows_path(&log)
    ));
    let bytes = std::fs::read(&log).unwrap_or_default();
    // msiexec writes its log in UTF-16LE under Wine.
    let text = if bytes.len() >= 2 && (bytes[1] == 0 || bytes.starts_with(&[0xff, 0xfe])) {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (code, text)
}

/// The values under [`KEY`], by name ("" for an empty one).
fn written(w: &Wine) -> Vec<(String, String)> {
    let o = w.reg_query(KEY);
    assert!(o.status.success(), "reg query {KEY}\n{}", common::text(&o));
    let values = reg_values(&o);
    WRITTEN
        .iter()
        .map(|n| ((*n).to_owned(), reg_value(&values, n).unwrap_or_default()))
        .collect()
}

/// The bridge's copies of the program left in the prefix's temporary folders.
fn leftovers(w: &Wine) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if e.file_name()
                .to_string_lossy()
                .starts_with("colinux-setup-ui-")
            {
                found.push(p);
            } else if p.is_dir() && depth > 0 {
                walk(&p, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(&w.c_drive("users"), 5, &mut found);
    walk(&w.c_drive("windows/temp"), 1, &mut found);
    found
}

/// `reg query` prints an empty value as nothing after its type; [`reg_value`] gives
/// "" then. Values with spaces come back joined by single spaces.
fn as_reg_prints(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The properties the first tests pass: a coLinux machine (64-bit Windows has no
/// monitor of its own under Wine), in a folder given with the trailing backslash MSI
/// gives folders; the rest for the program to recommend.
const PASSED: [(&str, &str); 4] = [
    ("INSTALLDIR", r"C:\coLinux-ca-test\"),
    ("RAMMB", ""),
    ("SUBNET", ""),
    ("MONITOR", "colinux"),
];

#[test]
fn bridge_sets_the_properties_the_program_prints() {
    sets_what_the_program_prints(&Build::x64(), "msi-ca");
}

#[test]
fn bridge_i686_exports_the_plain_name_and_runs_on_32_bit_windows() {
    sets_what_the_program_prints(&Build::x86(), "msi-ca-x86");
}

/// Installs the bridge's test MSI for `build` in a new prefix with [`PASSED`]; the
/// registry must hold what the exe's own `msi ui` prints, the log the bridge's lines,
/// and no temporary copy may be left.
fn sets_what_the_program_prints(build: &Build, label: &str) {
    let w = Wine::new_arch(label, build.win);
    let list: Vec<&str> = PASSED.iter().map(|(k, _)| *k).collect();
    let given: Vec<(&str, &str)> = PASSED.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let msi = bridge_msi(w.dir.path(), build, &list.join(";"), "sizes", &given);

    // The oracle: the program's own answer to the same question, in the same prefix,
    // installed as setup.msi installs it (bin\, assets\).
    let oracle = w.c_drive("oracle");
    std::fs::create_dir_all(oracle.join("bin")).expect("mkdir");
    std::fs::create_dir_all(oracle.join("assets")).expect("mkdir");
    for a in ["busybox", "busybox.applets"] {
        std::fs::copy(w.dir.path().join(a), oracle.join("assets").join(a)).expect("copy");
    }
    let exe = oracle.join("bin/colinux-setup.exe");
    std::fs::copy(&build.exe, &exe).expect("copy the exe");
    let mut args = vec![
        "msi".to_owned(),
        "ui".to_owned(),
        "--page".to_owned(),
        "sizes".to_owned(),
    ];
    for (k, v) in PASSED {
        args.push("--property".to_owned());
        args.push(format!("{k}={v}"));
    }
    let o = w
        .cmd("wine")
        .arg(&exe)
        .args(&args)
        .output()
        .expect("wine colinux-setup msi ui");
    assert!(o.status.success(), "msi ui\n{}", common::text(&o));
    let answer: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&o.stdout).expect("msi ui prints a JSON object");
    let said = |k: &str| {
        answer
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        said("UI_ERROR").is_empty() && !said("RAMMB").is_empty() && said("UI_PAGE") == "sizes",
        "msi ui refuses the answers or recommends no RAM: {answer:?}"
    );
    assert_eq!(
        said("INSTALLDIR"),
        r"C:\coLinux-ca-test\",
        "the folder, passed with its trailing backslash, came back as given"
    );

    let t = std::time::Instant::now();
    let (code, log) = install(&w, &msi);
    assert_eq!(code, 0, "msiexec /i failed\n{log}");
    eprintln!("{label}: msiexec with the bridge took {:?}", t.elapsed());
    let got = written(&w);
    let want: Vec<(String, String)> = WRITTEN
        .iter()
        .map(|n| ((*n).to_owned(), as_reg_prints(&said(n))))
        .collect();
    assert_eq!(got, want, "the registry has not what msi ui printed\n{log}");
    assert!(
        log.contains("ColinuxSetupUi: the program answered in"),
        "the bridge logged nothing\n{log}"
    );
    assert_eq!(
        leftovers(&w),
        Vec::<PathBuf>::new(),
        "temporary copies left"
    );
}

#[test]
fn bridge_puts_a_failed_run_in_ui_error_and_the_install_goes_on() {
    let w = Wine::new("msi-ca-fail");
    // NOTAPROPERTY is no property of setup.msi: `msi ui` refuses its command line
    // (exit 2) and says why on stderr.
    let msi = bridge_msi(
        w.dir.path(),
        &Build::x64(),
        "RAMMB;NOTAPROPERTY",
        "sizes",
        &[("RAMMB", "77")],
    );
    let (code, log) = install(&w, &msi);
    assert_eq!(code, 0, "the bridge stopped the install\n{log}");
    let got = written(&w);
    let value = |n: &str| {
        got.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let e = value("UI_ERROR");
    assert!(
        e.starts_with(
            "colinux-setup could not check these answers: the program stopped with exit code 2. It said: "
        ) && e.contains("unknown property NOTAPROPERTY"),
        "UI_ERROR: {e}\n{log}"
    );
    assert_eq!(value("RAMMB"), "77", "a failed run changes no answer");
    assert!(
        log.contains("ColinuxSetupUi: colinux-setup could not check these answers"),
        "the bridge logged nothing\n{log}"
    );
    assert_eq!(
        leftovers(&w),
        Vec::<PathBuf>::new(),
        "temporary copies left"
    );
}
