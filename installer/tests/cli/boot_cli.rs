//! The first boot and `boot`, end to end through the binary, with real boots on the
//! monitor this host offers (`common::host`: User-mode Linux, about 2-3 s a boot, else
//! QEMU with KVM, else QEMU's TCG, about ten times slower): the populated /home read
//! back with `debugfs`, images judged by `e2fsck -fn`, exit codes as a POSIX parent sees
//! them (1603 & 0xff = 67, 1602 & 0xff = 66). Device names and console words are the
//! monitor's (`/dev/ubda` or `/dev/vda`; UML halts, QEMU powers down), and bounds measured
//! with UML are scaled for it (`common::secs`). Tests about one monitor (switching a
//! machine to the other one and back, UML's kernel modules, QEMU's share image) run on it
//! where it works here, and where it does not, assert that it is refused before any
//! change with the probe's reason.
//!
//! `COLINUX_SETUP_TEST_FIRST_BOOT=fail|hang|panic` is a test-only hook of the installer
//! (see installer/src/firstboot.rs): it makes the guest's first-boot script fail or hang,
//! or the guest kernel panic.

use crate::common;

use common::{
    Booting, CANCELLED, FAILED, add_machine_files, assert_refused_here, cmd, debugfs, dev, host,
    host_cmd, host_cmd_on, install_cmd, install_cmd_on, kit_init, p, place_machine_files,
    powered_off, secs, status_json, tempdir, text,
};
use e2e_tests::HostMonitor;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SIZES: &[&str] = &[
    "--set",
    "RAMMB=128",
    "--set",
    "ROOTMB=64",
    "--set",
    "HOMEMB=32",
    "--set",
    "SWAPMB=96",
    // The kernel modules (105 MB) need a larger root; one test installs them.
    "--set",
    "MODULES=0",
];

/// An install on the host's monitor, small, with `extra` and the first-boot test `hook`.
fn install(prefix: &Path, extra: &[&str], hook: Option<&str>) -> Output {
    let mut c = install_cmd(prefix, &[SIZES, extra].concat());
    if let Some(h) = hook {
        c.env("COLINUX_SETUP_TEST_FIRST_BOOT", h);
    }
    c.output().expect("run colinux-setup")
}

fn expect(o: &Output, code: i32, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    for n in needles {
        assert!(t.contains(n), "expected `{n}` in:\n{t}");
    }
}

fn logs(prefix: &Path, kind: &str) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(prefix.join("logs"))
        .expect("logs")
        .flatten()
    {
        if e.file_name().to_string_lossy().contains(kind) {
            all.push_str(&std::fs::read_to_string(e.path()).expect("log"));
        }
    }
    all
}

fn tmp() -> tempfile::TempDir {
    tempdir("boot-cli-")
}

#[test]
fn install_with_first_boot_populates_home_and_records_it() {
    let t = tmp();
    let prefix = t.path().join("m");
    let start = Instant::now();
    let o = install(&prefix, &[], None);
    expect(&o, 0, &["first boot: done"]);
    eprintln!("install with first boot: {:?}", start.elapsed());
    let log = logs(&prefix, "install");
    for needle in [
        "console: COLINUX-SETUP-FIRST-BOOT: OK".to_owned(),
        format!("first boot: swap on: {}", dev(2)),
        format!("first boot: mounted: {} on / (ext4)", dev(0)),
        format!("first boot: mounted: {} on /home (ext3)", dev(1)),
        "first boot: unpacked and checked 2 files in /home".to_owned(),
    ] {
        assert!(log.contains(&needle), "`{needle}` not in the log:\n{log}");
    }
    let home = prefix.join("home.img");
    let readme = debugfs(&home, "cat /colinux/README");
    assert!(
        readme.contains("installed by colinux-setup") && readme.contains("profile minimal"),
        "{readme}"
    );
    assert!(debugfs(&home, "cat /colinux/bin/motd").contains("Welcome"));
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("e2fsck -fn clean after the first boot");
    }
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config.txt");
    assert_initrd(&config, &prefix, host());
    let s = status_json(&prefix);
    assert_eq!(s["first_boot"], "done", "{s}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.join("install-state.json")).expect("state"))
            .expect("json");
    assert_eq!(st["first_boot"], "done");
    // A second run does not boot again and changes nothing.
    let o = install(&prefix, &[], None);
    expect(&o, 0, &["nothing changed"]);
}

/// No first-boot-only `initrd=` is left in config.txt; QEMU's is its kernel's initramfs
/// (the virtio drivers, the kit's copy beside config.txt), needed at every boot.
fn assert_initrd(config: &str, prefix: &Path, m: &HostMonitor) {
    if m.is_uml() {
        assert!(!config.contains("initrd="), "{config}");
    } else {
        let kernels = format!("initrd={}", p(&prefix.join("initrd.img")));
        assert!(config.contains(&kernels), "`{kernels}` not in {config}");
    }
}

#[test]
fn a_failing_first_boot_script_exits_1603_with_the_console_and_rolls_back() {
    let t = tmp();
    let prefix = t.path().join("m");
    let o = install(&prefix, &[], Some("fail"));
    expect(
        &o,
        FAILED,
        &[
            "the first-boot script failed",
            "| colinux-setup: first boot: test hook: failing on purpose",
            "COLINUX-SETUP-FIRST-BOOT: FAILED rc=1",
            "what it made has been removed",
        ],
    );
    assert!(!prefix.exists(), "the prefix was not rolled back");
}

#[test]
fn a_guest_kernel_panic_exits_1603_and_rolls_back() {
    let t = tmp();
    let prefix = t.path().join("m");
    let o = install(&prefix, &[], Some("panic"));
    // The hook boots with init= naming no program: UML's kernel runs init= itself; QEMU's
    // initramfs cannot switch to it and its /init ends (the kernel's words differ).
    let panic = if host().is_uml() {
        "the guest kernel panicked (Kernel panic - not syncing: Requested init"
    } else {
        "Kernel panic - not syncing: Attempted to kill init!"
    };
    expect(
        &o,
        FAILED,
        &[
            "the guest kernel panicked (",
            panic,
            "the last console lines:",
        ],
    );
    assert!(!prefix.exists(), "the prefix was not rolled back");
}

#[test]
fn a_first_boot_past_the_profiles_timeout_exits_1603_and_rolls_back() {
    let t = tmp();
    let prefix = t.path().join("m");
    let profile = t.path().join("quick.toml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/minimal.toml"
    ))
    .expect("minimal.toml")
    // Long enough for a loaded machine to reach the hanging script (UML boots in ~2 s).
    .replace("timeout_secs = 60", "timeout_secs = 15");
    std::fs::write(&profile, text).expect("write profile");
    let o = install(&prefix, &["--profile", p(&profile)], Some("hang"));
    // The product scales the profile's timeout for the monitor as `secs` does (TCG: 10x).
    expect(
        &o,
        FAILED,
        &[
            &format!(
                "did not finish within {} s (the profile's first_boot.timeout_secs",
                secs(15)
            ),
            "| colinux-setup: first boot: test hook: hanging on purpose",
        ],
    );
    assert!(!prefix.exists(), "the prefix was not rolled back");
}

#[test]
fn the_colinux_profile_skips_the_first_boot_on_this_host_with_a_warning() {
    let t = tmp();
    let prefix = t.path().join("m");
    let o = cmd(&[
        "install",
        "--unattended",
        "--profile",
        "bfin-uclinux",
        "--prefix",
        p(&prefix),
    ])
    .output()
    .expect("run");
    expect(
        &o,
        0,
        &[
            "the first boot was not run: coLinux cannot run on this",
            "--monitor uml",
            "first boot: pending",
        ],
    );
    assert_eq!(status_json(&prefix)["first_boot"], "pending");
}

/// `boot --prefix PREFIX EXTRA...` on monitor `m` and its console on pipes.
fn booting(m: &HostMonitor, prefix: &Path, extra: &[&str]) -> Booting {
    Booting::spawn(host_cmd_on(
        m,
        &[&["boot", "--prefix", p(prefix)], extra].concat(),
    ))
}

fn installed(t: &tempfile::TempDir) -> std::path::PathBuf {
    let prefix = t.path().join("m");
    expect(&install(&prefix, &[], None), 0, &["first boot: done"]);
    prefix
}

/// User-mode Linux's loadable modules (the host's user-mode-linux package) go into
/// /lib/modules at the first boot, and the guest kernel loads one. Where UML runs no
/// guests, an install for it with its modules is refused before any change instead.
#[test]
fn the_first_boot_installs_the_uml_kernel_modules_and_the_guest_loads_one() {
    let t = tmp();
    let prefix = t.path().join("m");
    let uml = match host().other("uml") {
        Ok(uml) => uml,
        Err(why) => {
            let o = install_cmd_on(
                &host().on("uml"),
                &prefix,
                &[SIZES, &["--set", "MODULES=1", "--set", "ROOTMB=192"]].concat(),
            )
            .output()
            .expect("install");
            assert_refused_here(&o, Some(&prefix), "uml", &why);
            return;
        }
    };
    let host_modules = Path::new("/usr/lib/uml/modules");
    let version = std::fs::read_dir(host_modules)
        .expect("user-mode-linux's modules (scripts/test installs the package)")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a modules folder");
    let install_uml = |extra: &[&str]| {
        install_cmd_on(&uml, &prefix, &[SIZES, extra].concat())
            .output()
            .expect("install")
    };
    // Too small a root for the modules is refused before any change, with the numbers.
    let o = install_uml(&["--set", "MODULES=1"]);
    expect(&o, FAILED, &["too small for the kernel modules", "ROOTMB="]);
    assert!(!prefix.exists());
    let o = install_uml(&["--set", "MODULES=1", "--set", "ROOTMB=192"]);
    expect(&o, 0, &["first boot: done"]);
    let log = logs(&prefix, "install");
    assert!(
        log.contains(&format!("first boot: kernel modules installed: {version}")),
        "{log}"
    );
    let root = prefix.join("root.img");
    e2e_tests::e2fsck_clean(&root).expect("root clean");
    // Read back by an independent reader: byte for byte the host's module.
    let rel = "kernel/drivers/block/loop.ko";
    let out = t.path().join("loop.ko");
    debugfs(
        &root,
        &format!("dump /lib/modules/{version}/{rel} {}", p(&out)),
    );
    assert_eq!(
        common::sha256(&out),
        common::sha256(&host_modules.join(&version).join(rel))
    );
    // The guest kernel loads it.
    let mut b = booting(&uml, &prefix, &["--timeout", "30"]);
    b.wait_for("/ # ", 20);
    b.type_line("modprobe loop && grep -c '^loop ' /proc/modules && echo MOD=OK; poweroff\n");
    let (code, out) = b.wait(20);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("MOD=OK"), "{out}");
}

/// Boots `prefix` with `boot --monitor M` on `m` (switching it when M is not its
/// monitor), waits for the shell, types `line`; returns the exit code and the console.
fn boot_in(prefix: &Path, m: &HostMonitor, line: &str) -> (Option<i32>, String) {
    let t = |s| m.timeout(s);
    let mut b = booting(
        m,
        prefix,
        &["--monitor", &m.monitor, "--timeout", &t(150).to_string()],
    );
    b.wait_for("colinux-setup: guest colinux is up", t(120));
    b.wait_for("/ # ", t(20));
    b.type_line(line);
    b.wait(t(60))
}

/// A machine installed for the host's monitor boots in the other one (its kernel put
/// beside config.txt; root's fstab and config.txt rewritten for its devices) with the
/// populated system, and back. Where the other monitor runs no guests here, the switch
/// is refused before anything is changed, naming the probe's cause.
#[test]
fn a_machine_switches_to_the_other_monitor_and_back() {
    let here = host();
    let other_name = if here.is_uml() { "qemu" } else { "uml" };
    let t = tmp();
    let prefix = installed(&t);
    let root = prefix.join("root.img");
    let other = match here.other(other_name) {
        Ok(other) => other,
        Err(why) => {
            place_machine_files(&prefix, &here.on(other_name));
            let before = (
                common::sha256(&root),
                std::fs::read(prefix.join("config.txt")).expect("config"),
            );
            let o = host_cmd_on(
                &here.on(other_name),
                &["boot", "--prefix", p(&prefix), "--monitor", other_name],
            )
            .output()
            .expect("boot");
            assert_refused_here(&o, None, other_name, &why);
            expect(&o, FAILED, &["nothing was changed"]);
            assert_eq!(common::sha256(&root), before.0);
            assert_eq!(
                std::fs::read(prefix.join("config.txt")).expect("config"),
                before.1
            );
            assert_eq!(status_json(&prefix)["monitor"], here.monitor.as_str());
            return;
        }
    };
    place_machine_files(&prefix, &other);
    let (code, out) = boot_in(
        &prefix,
        &other,
        &format!(
            "cat /home/colinux/README; grep {} /proc/mounts; grep -c {} /proc/swaps; poweroff\n",
            other.dev(0).trim_end_matches('a'),
            other.dev_name(2)
        ),
    );
    assert_eq!(code, Some(0), "{out}");
    for needle in [
        format!(
            "switching this machine from the {} monitor to {}",
            here.monitor, other.monitor
        ),
        "The first boot unpacked this folder".to_owned(),
        format!("{} / ext4", other.dev(0)),
        format!("{} /home ext3", other.dev(1)),
        powered_off(&other).to_owned(),
    ] {
        assert!(out.contains(&needle), "`{needle}` not in:\n{out}");
    }
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config");
    assert!(
        config.contains(&format!("root={}", other.dev(0))),
        "{config}"
    );
    assert_initrd(&config, &prefix, &other);
    assert_eq!(status_json(&prefix)["monitor"], other.monitor.as_str());
    assert!(debugfs(&root, "cat /etc/fstab").contains(&other.dev(1)));
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("clean after the other monitor's boot");
    }
    // And back: the host monitor's devices again, the populated system intact.
    let (code, out) = boot_in(&prefix, here, "cat /home/colinux/README; poweroff\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("The first boot unpacked this folder"), "{out}");
    assert!(debugfs(&root, "cat /etc/fstab").contains(&here.dev(1)));
    assert_eq!(status_json(&prefix)["monitor"], here.monitor.as_str());
}

/// Installs a machine for QEMU in `prefix`, first boot included, and returns QEMU's
/// monitor; where QEMU runs no guests here, asserts that the install is refused before
/// any change, with the probe's reason, and returns `None`.
fn installed_for_qemu(prefix: &Path) -> Option<HostMonitor> {
    let qemu = match host().other("qemu") {
        Ok(q) => q,
        Err(why) => {
            let o = install_cmd_on(&host().on("qemu"), prefix, SIZES)
                .output()
                .expect("install");
            assert_refused_here(&o, Some(prefix), "qemu", &why);
            return None;
        }
    };
    let o = install_cmd_on(&qemu, prefix, SIZES)
        .output()
        .expect("install");
    expect(&o, 0, &["first boot: done"]);
    Some(qemu)
}

/// QEMU's first boot reads the distribution from a read-only share image (virtfs has no
/// Windows host support). Where QEMU runs no guests here, the install is refused before
/// any change instead.
#[test]
fn an_install_for_qemu_first_boots_in_qemu_from_a_share_image() {
    let t = tmp();
    let prefix = t.path().join("m");
    if installed_for_qemu(&prefix).is_none() {
        return;
    }
    let log = logs(&prefix, "install");
    for needle in [
        "-drive file=",
        "readonly=on",
        "colinux.dist=disk:/dev/vdd",
        "first boot: swap on: /dev/vdc",
        "first boot: mounted: /dev/vda on / (ext4)",
        "first boot: mounted: /dev/vdb on /home (ext3)",
        "first boot: unpacked and checked 2 files in /home",
        "console: COLINUX-SETUP-FIRST-BOOT: OK",
    ] {
        assert!(log.contains(needle), "`{needle}` not in the log:\n{log}");
    }
    let home = prefix.join("home.img");
    assert!(debugfs(&home, "cat /colinux/README").contains("monitor qemu"));
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("clean after the first boot");
    }
}

/// A VHDX disk from `images build` boots in QEMU (`format=vhdx`, chosen by the file's
/// name): the machine's root rebuilt as root.vhdx and named in config.txt comes up with
/// the populated system, the guest's writes land in the VHDX (read back through
/// `qemu-img convert`), and `qemu-img check`, `images check` and e2fsck find it clean.
/// Where QEMU runs no guests here, the install for it is refused before any change.
#[test]
fn qemu_boots_a_machine_whose_root_disk_is_a_vhdx() {
    let t = tmp();
    let prefix = t.path().join("m");
    let Some(qemu) = installed_for_qemu(&prefix) else {
        return;
    };
    let (raw, vhdx) = (prefix.join("root.img"), prefix.join("root.vhdx"));
    let o = cmd(&[
        "images",
        "build",
        p(&vhdx),
        "--fs",
        "ext4",
        "--size",
        "64M",
        "--from",
        p(&raw),
    ])
    .output()
    .expect("images build");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::remove_file(&raw).expect("the raw root goes: only the VHDX can boot");
    let config = prefix.join("config.txt");
    let before = std::fs::read_to_string(&config).expect("config.txt");
    let after = before.replace("root.img", "root.vhdx");
    assert_ne!(before, after, "config.txt names root.img:\n{before}");
    std::fs::write(&config, after).expect("config.txt");

    let (code, out) = boot_in(
        &prefix,
        &qemu,
        "grep ' / ' /proc/mounts; cat /home/colinux/README; echo VHDX-WRITE > /vhdx-note; \
         sync; poweroff\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("/dev/vda / ext4"), "{out}");
    assert!(out.contains("The first boot unpacked this folder"), "{out}");
    assert!(
        logs(&prefix, "boot").contains(&format!("file={},format=vhdx", p(&vhdx))),
        "the boot's command line opens root.vhdx as VHDX"
    );

    let o = Command::new("qemu-img")
        .args(["check", "-f", "vhdx", p(&vhdx)])
        .output()
        .expect("qemu-img check");
    assert!(o.status.success(), "qemu-img check: {}", text(&o));
    let o = cmd(&["images", "check", p(&vhdx)]).output().expect("check");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let back = t.path().join("back.img");
    let o = Command::new("qemu-img")
        .args(["convert", "-f", "vhdx", "-O", "raw", p(&vhdx), p(&back)])
        .output()
        .expect("qemu-img convert");
    assert!(o.status.success(), "qemu-img convert: {}", text(&o));
    e2e_tests::e2fsck_clean(&back).expect("the VHDX's filesystem is clean after poweroff");
    assert_eq!(debugfs(&back, "cat /vhdx-note").trim(), "VHDX-WRITE");
}

#[test]
fn boot_reaches_a_shell_on_the_populated_system_and_powers_off_on_request() {
    let t = tmp();
    let prefix = installed(&t);
    let mut b = booting(host(), &prefix, &["--timeout", &secs(30).to_string()]);
    b.wait_for("colinux-setup: guest colinux is up", secs(20));
    b.wait_for("/ # ", secs(10));
    b.type_line("cat /home/colinux/README; poweroff\n");
    let (code, out) = b.wait(secs(20));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("The first boot unpacked this folder"), "{out}");
    assert!(out.contains(powered_off(host())), "{out}");
    assert!(logs(&prefix, "boot").contains("console: colinux-setup: guest colinux is up"));
    e2e_tests::e2fsck_clean(&prefix.join("root.img")).expect("root clean after poweroff");
    e2e_tests::e2fsck_clean(&prefix.join("home.img")).expect("home clean after poweroff");
}

#[test]
fn boot_timeout_stops_the_guest_with_1603() {
    let t = tmp();
    let prefix = installed(&t);
    let start = Instant::now();
    let o = host_cmd(&["boot", "--prefix", p(&prefix), "--timeout", "3"])
        .output()
        .expect("boot");
    expect(
        &o,
        FAILED,
        &["--timeout 3 s passed", "the log of this run is"],
    );
    // A watchdog, not a speed check: the guest was stopped rather than left running.
    assert!(
        start.elapsed() < Duration::from_secs(secs(60)),
        "{:?}",
        start.elapsed()
    );
    // A killed guest leaves its ext3/ext4 journals to replay (the next mount does); a
    // read-only e2fsck then reports the unreplayed state, so it is not asserted clean.
}

/// Ctrl-C stops the guest with 1602. In UML it is a clean poweroff (ctrl-alt-del through
/// its management console) and root is clean at once; QEMU's guest is killed (boot.rs:
/// no clean stop there), so its root is judged after the next boot replayed the journal.
#[test]
fn ctrl_c_stops_the_guest_cleanly_with_1602() {
    let t = tmp();
    let prefix = installed(&t);
    let mut b = booting(host(), &prefix, &["--timeout", &secs(30).to_string()]);
    b.wait_for("/ # ", secs(20));
    let st = Command::new("kill")
        .args(["-INT", &b.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let (code, out) = b.wait(secs(25));
    assert_eq!(code, Some(CANCELLED), "{out}");
    assert!(out.contains("stopped by Ctrl-C"), "{out}");
    let out = if host().is_uml() {
        out
    } else {
        let mut b = booting(host(), &prefix, &["--timeout", &secs(30).to_string()]);
        b.wait_for("/ # ", secs(20));
        b.type_line("poweroff\n");
        let (code, out) = b.wait(secs(20));
        assert_eq!(code, Some(0), "{out}");
        out
    };
    assert!(
        out.contains(powered_off(host())),
        "not a clean poweroff:\n{out}"
    );
    e2e_tests::e2fsck_clean(&prefix.join("root.img")).expect("root clean after Ctrl-C");
}

#[test]
fn boot_needs_an_installed_machine_and_a_known_monitor() {
    let t = tmp();
    let o = cmd(&["boot", "--prefix", p(&t.path().join("none"))])
        .output()
        .expect("boot");
    expect(&o, FAILED, &["no machine is installed"]);
    let o = cmd(&["boot", "--prefix", p(t.path()), "--monitor", "vmware"])
        .output()
        .expect("boot");
    expect(&o, 2, &["--monitor vmware"]);
}

#[test]
fn qemu_names_virtio_disks_by_rank_when_cobd_indices_have_gaps() {
    let t = tmp();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/minimal.toml");
    let gaps = std::fs::read_to_string(shipped)
        .expect("minimal.toml")
        .replace("cobd = 1", "cobd = 4")
        .replace("cobd = 2", "cobd = 7");
    let profile = t.path().join("gaps.toml");
    std::fs::write(&profile, gaps).expect("write");
    // The plan's naming is tested, on any host: with no boot planned the monitor is not
    // probed (a planned first boot needs QEMU to run here, and a kit with its kernel).
    let o = cmd(&[
        "install",
        "--unattended",
        "--dry-run",
        "--monitor",
        "qemu",
        "--set",
        "NOFIRSTBOOT=1",
        "--profile",
        p(&profile),
        "--prefix",
        p(&t.path().join("m")),
    ])
    .output()
    .expect("dry run");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for needle in [
        "/dev/vda / ext4",
        "/dev/vdb /home ext3",
        "/dev/vdc swap swap",
        "root=/dev/vda",
        "cobd4=",
        "cobd7=",
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{out}");
    }
}

#[test]
fn a_monitor_that_cannot_run_here_is_refused_before_the_machine_is_switched() {
    let t = tmp();
    let prefix = t.path().join("m");
    let o = install(&prefix, &["--set", "NOFIRSTBOOT=1"], None);
    expect(&o, 0, &["installed profile minimal"]);
    let root = prefix.join("root.img");
    let before = (
        common::sha256(&root),
        std::fs::read(prefix.join("config.txt")).expect("config"),
    );
    // A machine installed for UML has no kernel QEMU can boot; where QEMU is the host's
    // monitor, User-mode Linux is the one that cannot run guests here.
    let other = if host().is_uml() {
        ("qemu", "QEMU cannot boot")
    } else {
        ("uml", "User-mode Linux cannot run a guest on this host")
    };
    for (monitor, why) in [other, ("colinux", "nothing was changed")] {
        let o = host_cmd(&["boot", "--prefix", p(&prefix), "--monitor", monitor])
            .output()
            .expect("boot");
        expect(&o, FAILED, &[why, "nothing was changed"]);
        assert_eq!(common::sha256(&root), before.0, "{monitor}");
        assert_eq!(
            std::fs::read(prefix.join("config.txt")).expect("config"),
            before.1
        );
        assert_eq!(status_json(&prefix)["monitor"], host().monitor.as_str());
    }
}

/// The seed's profile (a coLinux machine) first-boots on the host's monitor from a kit
/// with a 5,000-file distribution and the monitor's kernel.
#[test]
fn bfin_uclinux_first_boots_with_a_5000_file_distribution() {
    let t = tmp();
    let prefix = t.path().join("m");
    let kit = t.path().join("kit");
    let dist = kit.join("dist");
    for i in 0..5000 {
        let d = dist.join(format!("uclinux-dist/d{:02}", i / 100));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(
            d.join(format!("f{i:04}.c")),
            format!("/* file {i} */\nint f{i}(void) {{ return {i}; }}\n"),
        )
        .expect("write");
    }
    add_machine_files(&kit, host());
    kit_init(&kit, &[]);
    let start = Instant::now();
    let o = host_cmd(&[
        "install",
        "--unattended",
        "--profile",
        "bfin-uclinux",
        "--monitor",
        &host().monitor,
        "--kit",
        p(&kit),
        "--prefix",
        p(&prefix),
        "--set",
        "RAMMB=128",
        "--set",
        "SWAPMB=256",
        "--set",
        "HOMEMB=256",
    ])
    .output()
    .expect("install");
    expect(&o, 0, &["first boot: done"]);
    eprintln!(
        "bfin-uclinux install with first boot: {:?}",
        start.elapsed()
    );
    let log = logs(&prefix, "install");
    assert!(
        log.contains("first boot: unpacked and checked 5000 files in /home"),
        "{log}"
    );
    // Progress while unpacking: every 50 entries, and the last (5,000 files, 50 folders,
    // uclinux-dist/ and ./).
    for n in [50, 2500, 5052] {
        assert!(
            log.contains(&format!("first boot: unpacked {n} entries")),
            "{n} entries: {log}"
        );
    }
    // The Windows shares are noauto in the fstab of UML and QEMU; every other entry was
    // mounted.
    assert!(log.contains(&format!("first boot: mounted: {} on /home (ext3)", dev(1))));
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("e2fsck -fn clean");
    }
    // Read the populated /home back with debugfs and compare every file with the kit's.
    let out = t.path().join("rdump");
    std::fs::create_dir_all(&out).expect("mkdir");
    let o = Command::new(e2e_tests::tools::tool("debugfs").expect("debugfs"))
        .arg("-R")
        .arg(format!("rdump /uclinux-dist {}", p(&out)))
        .arg(prefix.join("home.img"))
        .output()
        .expect("debugfs rdump");
    assert!(o.status.success(), "{}", text(&o));
    let mut n = 0;
    for i in 0..5000 {
        let rel = format!("uclinux-dist/d{:02}/f{i:04}.c", i / 100);
        let want = std::fs::read(dist.join(&rel)).expect("kit file");
        let got = std::fs::read(out.join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(got, want, "{rel}");
        n += 1;
    }
    assert_eq!(n, 5000);
    assert_eq!(status_json(&prefix)["first_boot"], "done");
}

#[test]
fn ctrl_c_during_the_first_boot_stops_the_guest_and_rolls_back_with_1602() {
    let t = tmp();
    let prefix = t.path().join("m");
    let mut c = install_cmd(&prefix, SIZES);
    c.env("COLINUX_SETUP_TEST_FIRST_BOOT", "hang")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("install");
    let mut err = child.stderr.take().expect("stderr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            s2.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    });
    let start = Instant::now();
    while !String::from_utf8_lossy(&seen.lock().expect("lock")).contains("first boot in ") {
        assert!(
            start.elapsed() < Duration::from_secs(secs(20)),
            "no first boot"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let stopped = Instant::now();
    let code = child.wait().expect("wait").code();
    std::thread::sleep(Duration::from_millis(200));
    let err = String::from_utf8_lossy(&seen.lock().expect("lock")).into_owned();
    assert_eq!(code, Some(CANCELLED), "{err}");
    assert!(err.contains("cancelled (Ctrl-C)"), "{err}");
    // A watchdog: the run ended on the interrupt instead of waiting for the guest.
    assert!(
        stopped.elapsed() < Duration::from_secs(secs(30)),
        "{:?}",
        stopped.elapsed()
    );
    assert!(!prefix.exists(), "the prefix was not rolled back");
}

/// `boot --first-boot --prefix PREFIX` on the host's monitor, with the first-boot test
/// `hook`.
fn first_boot_later(prefix: &Path, hook: Option<&str>) -> Output {
    let mut c = host_cmd(&["boot", "--first-boot", "--prefix", p(prefix)]);
    if let Some(h) = hook {
        c.env("COLINUX_SETUP_TEST_FIRST_BOOT", h);
    }
    c.output().expect("run colinux-setup boot --first-boot")
}

/// The files of the machine and their sha256, to tell that a run left them as they were.
fn digests(prefix: &Path) -> Vec<(String, String)> {
    ["root.img", "home.img", "swap.img", "config.txt"]
        .iter()
        .map(|f| ((*f).to_owned(), common::sha256(&prefix.join(f))))
        .collect()
}

#[test]
fn a_first_boot_left_by_no_first_boot_runs_later_with_boot_first_boot() {
    let t = tmp();
    let prefix = t.path().join("m");
    let o = install(&prefix, &["--no-first-boot"], None);
    expect(&o, 0, &["first boot: skipped"]);
    assert_eq!(debugfs(&prefix.join("home.img"), "ls -l /colinux"), "");
    let o = first_boot_later(&prefix, None);
    expect(&o, 0, &["first boot: done"]);
    let log = logs(&prefix, "first-boot");
    for needle in [
        "console: COLINUX-SETUP-FIRST-BOOT: OK".to_owned(),
        format!("first boot: mounted: {} on /home (ext3)", dev(1)),
        "first boot: unpacked and checked 2 files in /home".to_owned(),
    ] {
        assert!(log.contains(&needle), "`{needle}` not in the log:\n{log}");
    }
    let home = prefix.join("home.img");
    let readme = debugfs(&home, "cat /colinux/README");
    assert!(
        readme.contains("installed by colinux-setup") && readme.contains("profile minimal"),
        "{readme}"
    );
    assert!(debugfs(&home, "cat /colinux/bin/motd").contains("Welcome"));
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("e2fsck -fn clean after the first boot");
    }
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config.txt");
    assert_initrd(&config, &prefix, host());
    let s = status_json(&prefix);
    assert_eq!(s["first_boot"], "done", "{s}");
    let o = cmd(&["status", "--prefix", p(&prefix)])
        .output()
        .expect("status");
    expect(&o, 0, &["first boot: done"]);
    // The state records what the first boot wrote: the files are still the machine's
    // (an uninstall removes config.txt, which it checks against its recorded digest).
    let o = cmd(&["uninstall", "--prefix", p(&prefix)])
        .output()
        .expect("uninstall");
    expect(&o, 0, &["kept"]);
    let t2 = text(&o);
    assert!(!t2.contains("warning"), "{t2}");
    assert!(!prefix.join("config.txt").exists(), "{t2}");
    // No copy of an image is left beside it.
    let left: Vec<String> = std::fs::read_dir(&prefix)
        .expect("read prefix")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup") || n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_failing_first_boot_run_later_exits_1603_and_leaves_the_machine_as_it_was() {
    let t = tmp();
    let prefix = t.path().join("m");
    expect(
        &install(&prefix, &["--no-first-boot"], None),
        0,
        &["first boot: skipped"],
    );
    let before = digests(&prefix);
    let o = first_boot_later(&prefix, Some("fail"));
    expect(
        &o,
        FAILED,
        &[
            "the first-boot script failed",
            "COLINUX-SETUP-FIRST-BOOT: FAILED rc=1",
            "the machine is as it was before the first boot",
            "its first boot is still pending",
        ],
    );
    // What the message says: every file is as it was, the first boot still to do.
    assert_eq!(digests(&prefix), before);
    assert_eq!(status_json(&prefix)["first_boot"], "skipped");
    assert!(!prefix.join(".colinux-setup-journal.json").exists());
    assert_eq!(debugfs(&prefix.join("home.img"), "ls -l /colinux"), "");
    // A panic of the guest kernel too.
    let o = first_boot_later(&prefix, Some("panic"));
    expect(&o, FAILED, &["the guest kernel panicked ("]);
    assert_eq!(digests(&prefix), before);
    // And it then runs.
    expect(&first_boot_later(&prefix, None), 0, &["first boot: done"]);
    assert!(debugfs(&prefix.join("home.img"), "cat /colinux/README").contains("colinux-setup"));
}

#[test]
fn boot_first_boot_says_when_it_is_done_already_and_needs_a_machine() {
    let t = tmp();
    let prefix = installed(&t);
    let before = digests(&prefix);
    let start = Instant::now();
    let o = first_boot_later(&prefix, Some("fail"));
    expect(&o, 0, &["the first boot is done already; nothing to do"]);
    assert!(start.elapsed() < Duration::from_secs(10), "it booted");
    assert_eq!(digests(&prefix), before);
    assert_eq!(status_json(&prefix)["first_boot"], "done");
    // No machine: the error of `boot`.
    let none = t.path().join("none");
    let plain = cmd(&["boot", "--prefix", p(&none)]).output().expect("boot");
    let o = cmd(&["boot", "--first-boot", "--prefix", p(&none)])
        .output()
        .expect("boot --first-boot");
    expect(&o, FAILED, &["no machine is installed"]);
    assert_eq!(o.stderr, plain.stderr);
}

#[test]
fn a_pending_first_boot_names_its_command_and_a_plain_reinstall_runs_it() {
    let t = tmp();
    let prefix = t.path().join("m");
    // The user's own home.img in the folder: the install keeps it and does not write
    // into it, so the first boot stays pending, and every run says how to run it.
    let data = t.path().join("homedata");
    std::fs::create_dir_all(data.join("project")).expect("mkdir");
    std::fs::write(data.join("project/notes"), "mine\n").expect("write");
    std::fs::create_dir_all(&prefix).expect("prefix");
    let home = prefix.join("home.img");
    let o = cmd(&[
        "images",
        "build",
        p(&home),
        "--fs",
        "ext3",
        "--size",
        "16M",
        "--from",
        p(&data),
    ])
    .output()
    .expect("images build");
    expect(&o, 0, &[]);
    let run_it = format!("colinux-setup boot --first-boot --prefix {}", p(&prefix));
    let o = install(&prefix, &[], None);
    expect(&o, 0, &["first boot: pending", &run_it]);
    let o = install(&prefix, &[], None);
    expect(&o, 0, &["nothing changed", "first boot: pending", &run_it]);
    let o = cmd(&["status", "--prefix", p(&prefix)])
        .output()
        .expect("status");
    expect(&o, 0, &["first boot: pending", &run_it]);
    // The user moves their home.img away: the same install again builds a new one and
    // runs the pending first boot, into the root and swap images it made (kept).
    std::fs::rename(&home, t.path().join("my-home.img")).expect("move home.img");
    let root_before = common::sha256(&prefix.join("root.img"));
    let o = install(&prefix, &[], None);
    expect(&o, 0, &["first boot: done"]);
    assert!(debugfs(&home, "cat /colinux/README").contains("colinux-setup"));
    assert_ne!(common::sha256(&prefix.join("root.img")), root_before);
    assert_eq!(status_json(&prefix)["first_boot"], "done");
    let o = install(&prefix, &[], None);
    expect(&o, 0, &["nothing changed"]);
    // Other answers that keep the images as they are do not write into them: an install
    // with --no-first-boot, then one without, keeps the images and names the command.
    let other = t.path().join("o");
    expect(
        &install(&other, &["--no-first-boot"], None),
        0,
        &["first boot: skipped"],
    );
    let before = digests(&other);
    let run_it = format!("colinux-setup boot --first-boot --prefix {}", p(&other));
    let o = install(&other, &[], None);
    expect(
        &o,
        0,
        &[
            "the images were kept as they are",
            "first boot: pending",
            &run_it,
        ],
    );
    let after = digests(&other);
    assert_eq!(after[..3], before[..3], "an image was written into");
}

/// Starts `boot --first-boot` with the hanging first-boot script and SIGKILLs it once
/// the guest hangs (its mounts made: the images written into). The guest holds the
/// machine's lock until the reaper has stopped it: see [`unless_busy`].
fn kill_a_hanging_first_boot(prefix: &Path) {
    let mut c = host_cmd(&["boot", "--first-boot", "--prefix", p(prefix)]);
    c.env("COLINUX_SETUP_TEST_FIRST_BOOT", "hang");
    let mut b = Booting::spawn(c);
    b.wait_for("first boot in ", secs(30));
    // The console goes into the run's log.
    let start = Instant::now();
    while !logs(prefix, "first-boot").contains("hanging on purpose") {
        assert!(
            start.elapsed() < Duration::from_secs(secs(30)),
            "the guest did not reach the hook:\n{}",
            b.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = Command::new("kill")
        .args(["-KILL", &b.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let _ = b.wait(secs(10));
    assert!(prefix.join(".colinux-setup-journal.json").exists());
}

/// Runs `c` until it is not refused as busy (the killed run's guest is still going).
fn unless_busy(mut make: impl FnMut() -> Command) -> Output {
    let start = Instant::now();
    loop {
        let o = make().output().expect("run");
        if o.status.code() != Some(common::BUSY) || start.elapsed() > Duration::from_secs(secs(30))
        {
            return o;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_killed_first_boot_run_later_is_put_back_by_the_next_run() {
    let t = tmp();
    let prefix = t.path().join("m");
    expect(
        &install(&prefix, &["--no-first-boot"], None),
        0,
        &["first boot: skipped"],
    );
    let before = digests(&prefix);
    kill_a_hanging_first_boot(&prefix);
    // The killed guest had mounted the images: they are not as they were.
    assert_ne!(digests(&prefix), before);
    // The next `boot --first-boot` puts the images back first; its own failure then
    // puts back its copies: every file is as it was before the killed run.
    let o = unless_busy(|| {
        let mut c = host_cmd(&["boot", "--first-boot", "--prefix", p(&prefix)]);
        c.env("COLINUX_SETUP_TEST_FIRST_BOOT", "fail");
        c
    });
    expect(
        &o,
        FAILED,
        &[
            "an interrupted first boot: restored",
            "the first-boot script failed",
        ],
    );
    assert_eq!(digests(&prefix), before, "{}", text(&o));
    // A plain `boot` after a killed first boot puts the images back before it starts.
    kill_a_hanging_first_boot(&prefix);
    let o = unless_busy(|| cmd(&["boot", "--prefix", p(&prefix), "--timeout", "1"]));
    let t2 = text(&o);
    assert!(
        t2.contains("an interrupted first boot was rolled back: restored"),
        "{t2}"
    );
    assert!(!prefix.join(".colinux-setup-journal.json").exists(), "{t2}");
    let left: Vec<String> = std::fs::read_dir(&prefix)
        .expect("read prefix")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(status_json(&prefix)["first_boot"], "skipped");
}
