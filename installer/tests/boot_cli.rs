//! The first boot and `boot`, end to end through the binary, with real User-mode Linux
//! boots (Debian's `linux.uml`, about 2-3 s each): the populated /home read back with
//! `debugfs`, images judged by `e2fsck -fn`, exit codes as a POSIX parent sees them
//! (1603 & 0xff = 67, 1602 & 0xff = 66).
//!
//! `COLINUX_SETUP_TEST_FIRST_BOOT=fail|hang|panic` is a test-only hook of the installer
//! (see installer/src/firstboot.rs): it makes the guest's first-boot script fail or hang,
//! or the guest kernel panic.

mod common;

use common::{Booting, CANCELLED, FAILED, cmd, debugfs, kit_init, p, status_json, tempdir, text};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SIZES: &[&str] = &[
    "--set",
    "RAMMB=64",
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

fn install(prefix: &Path, extra: &[&str], hook: Option<&str>) -> Output {
    let mut c = cmd(&[
        &["install", "--unattended", "--prefix", p(prefix)],
        SIZES,
        extra,
    ]
    .concat());
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
        "console: COLINUX-SETUP-FIRST-BOOT: OK",
        "first boot: swap on: /dev/ubdc",
        "first boot: mounted: /dev/ubda on / (ext4)",
        "first boot: mounted: /dev/ubdb on /home (ext3)",
        "first boot: unpacked and checked 2 files in /home",
    ] {
        assert!(log.contains(needle), "`{needle}` not in the log:\n{log}");
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
    assert!(!config.contains("initrd="), "{config}");
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
    expect(
        &o,
        FAILED,
        &[
            "the guest kernel panicked (Kernel panic - not syncing: Requested init",
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
    expect(
        &o,
        FAILED,
        &[
            "did not finish within the profile's 15 s",
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

/// `boot --prefix PREFIX EXTRA...` (with `env` set) and its console on pipes.
fn booting(prefix: &Path, extra: &[&str], env: &[(&str, &str)]) -> Booting {
    let mut c = cmd(&[&["boot", "--prefix", p(prefix)], extra].concat());
    for (k, v) in env {
        c.env(k, v);
    }
    Booting::spawn(c)
}

fn installed(t: &tempfile::TempDir) -> std::path::PathBuf {
    let prefix = t.path().join("m");
    expect(&install(&prefix, &[], None), 0, &["first boot: done"]);
    prefix
}

#[test]
fn the_first_boot_installs_the_uml_kernel_modules_and_the_guest_loads_one() {
    let host = Path::new("/usr/lib/uml/modules");
    let version = std::fs::read_dir(host)
        .expect("user-mode-linux's modules (scripts/test installs the package)")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a modules folder");
    let t = tmp();
    let prefix = t.path().join("m");
    // Too small a root for the modules is refused before any change, with the numbers.
    let o = install(&prefix, &["--set", "MODULES=1"], None);
    expect(&o, FAILED, &["too small for the kernel modules", "ROOTMB="]);
    assert!(!prefix.exists());
    let o = install(
        &prefix,
        &["--set", "MODULES=1", "--set", "ROOTMB=192"],
        None,
    );
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
        common::sha256(&host.join(&version).join(rel))
    );
    // The guest kernel loads it.
    let mut b = booting(&prefix, &["--timeout", "30"], &[]);
    b.wait_for("/ # ", 20);
    b.type_line("modprobe loop && grep -c '^loop ' /proc/modules && echo MOD=OK; poweroff\n");
    let (code, out) = b.wait(20);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("MOD=OK"), "{out}");
}

/// Puts a distribution kernel for QEMU beside `prefix`'s config.txt: Debian's cloud
/// kernel and a virtio initramfs, made once by `scripts/qemu-kernel` (two tests fetching
/// the package at once could meet apt's locks).
fn qemu_kernel(prefix: &Path) {
    static KERNEL: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = KERNEL.get_or_init(|| {
        // In target/tmp: kept between runs, removed with `cargo clean`.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-kernel");
        if dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file() {
            return dir;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/qemu-kernel");
        let o = Command::new(&script)
            .arg(&dir)
            .output()
            .expect("scripts/qemu-kernel");
        assert!(o.status.success(), "{}", text(&o));
        dir
    });
    std::fs::create_dir_all(prefix).expect("prefix");
    for f in ["vmlinuz", "initrd.img"] {
        std::fs::copy(dir.join(f), prefix.join(f)).expect("copy the QEMU kernel");
    }
}

/// Boots `prefix` with `boot --monitor M` (switching it when M is not its monitor),
/// waits for the shell, types `line`; returns the exit code and the console.
fn boot_in(prefix: &Path, monitor: &str, line: &str) -> (Option<i32>, String) {
    // TCG: /dev/kvm of nested virtual machines opens, but its guests may hang.
    let mut b = booting(
        prefix,
        &["--monitor", monitor, "--timeout", "150"],
        &[("COLINUX_SETUP_QEMU_ACCEL", "tcg")],
    );
    b.wait_for("colinux-setup: guest colinux is up", 120);
    b.wait_for("/ # ", 20);
    b.type_line(line);
    b.wait(60)
}

#[test]
fn qemu_boots_the_machine_installed_for_uml_after_switching_and_back() {
    let t = tmp();
    let prefix = installed(&t);
    qemu_kernel(&prefix);
    let (code, out) = boot_in(
        &prefix,
        "qemu",
        "cat /home/colinux/README; grep /dev/vd /proc/mounts; grep -c vdc /proc/swaps; poweroff\n",
    );
    assert_eq!(code, Some(0), "{out}");
    for needle in [
        "switching this machine from the uml monitor to qemu",
        "The first boot unpacked this folder",
        "/dev/vda / ext4",
        "/dev/vdb /home ext3",
        "reboot: Power down",
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{out}");
    }
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config");
    assert!(config.contains("root=/dev/vda"), "{config}");
    assert!(!config.contains("initrd="), "{config}");
    assert_eq!(status_json(&prefix)["monitor"], "qemu");
    let root = prefix.join("root.img");
    assert!(debugfs(&root, "cat /etc/fstab").contains("/dev/vdb"));
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("clean after the QEMU boot");
    }
    // And back: UML devices again, the populated system intact.
    let (code, out) = boot_in(&prefix, "uml", "cat /home/colinux/README; poweroff\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("The first boot unpacked this folder"), "{out}");
    assert!(debugfs(&root, "cat /etc/fstab").contains("/dev/ubdb"));
    assert_eq!(status_json(&prefix)["monitor"], "uml");
}

#[test]
fn an_install_for_qemu_first_boots_in_qemu_from_a_share_image() {
    let t = tmp();
    let prefix = t.path().join("m");
    qemu_kernel(&prefix);
    let o = cmd(&[
        &[
            "install",
            "--unattended",
            "--monitor",
            "qemu",
            "--prefix",
            p(&prefix),
        ],
        SIZES,
    ]
    .concat())
    .env("COLINUX_SETUP_QEMU_ACCEL", "tcg")
    .output()
    .expect("install");
    expect(&o, 0, &["first boot: done"]);
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

#[test]
fn boot_reaches_a_shell_on_the_populated_system_and_powers_off_on_request() {
    let t = tmp();
    let prefix = installed(&t);
    let mut b = booting(&prefix, &["--timeout", "30"], &[]);
    b.wait_for("colinux-setup: guest colinux is up", 20);
    b.wait_for("/ # ", 10);
    b.type_line("cat /home/colinux/README; poweroff\n");
    let (code, out) = b.wait(20);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("The first boot unpacked this folder"), "{out}");
    assert!(out.contains("reboot: System halted"), "{out}");
    assert!(logs(&prefix, "boot").contains("console: colinux-setup: guest colinux is up"));
    e2e_tests::e2fsck_clean(&prefix.join("root.img")).expect("root clean after poweroff");
    e2e_tests::e2fsck_clean(&prefix.join("home.img")).expect("home clean after poweroff");
}

#[test]
fn boot_timeout_stops_the_guest_with_1603() {
    let t = tmp();
    let prefix = installed(&t);
    let start = Instant::now();
    let o = cmd(&["boot", "--prefix", p(&prefix), "--timeout", "3"])
        .output()
        .expect("boot");
    expect(
        &o,
        FAILED,
        &["--timeout 3 s passed", "the log of this run is"],
    );
    // A watchdog, not a speed check: the guest was stopped rather than left running.
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    // A killed guest leaves its ext3/ext4 journals to replay (the next mount does); a
    // read-only e2fsck then reports the unreplayed state, so it is not asserted clean.
}

#[test]
fn ctrl_c_stops_the_guest_cleanly_with_1602() {
    let t = tmp();
    let prefix = installed(&t);
    let mut b = booting(&prefix, &["--timeout", "30"], &[]);
    b.wait_for("/ # ", 20);
    let st = Command::new("kill")
        .args(["-INT", &b.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let (code, out) = b.wait(25);
    assert_eq!(code, Some(CANCELLED), "{out}");
    assert!(out.contains("stopped by Ctrl-C"), "{out}");
    assert!(
        out.contains("reboot: System halted"),
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
    let o = cmd(&[
        "install",
        "--unattended",
        "--dry-run",
        "--monitor",
        "qemu",
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
    for (monitor, why) in [
        ("qemu", "QEMU cannot boot"),
        ("colinux", "nothing was changed"),
    ] {
        let o = cmd(&["boot", "--prefix", p(&prefix), "--monitor", monitor])
            .output()
            .expect("boot");
        expect(&o, FAILED, &[why, "nothing was changed"]);
        assert_eq!(common::sha256(&root), before.0, "{monitor}");
        assert_eq!(
            std::fs::read(prefix.join("config.txt")).expect("config"),
            before.1
        );
        assert_eq!(status_json(&prefix)["monitor"], "uml");
    }
}

#[test]
fn bfin_uclinux_first_boots_in_uml_with_a_5000_file_distribution() {
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
    kit_init(&kit, &[]);
    let start = Instant::now();
    let o = cmd(&[
        "install",
        "--unattended",
        "--profile",
        "bfin-uclinux",
        "--monitor",
        "uml",
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
    // The Windows shares are noauto in UML's fstab; every other entry was mounted.
    assert!(log.contains("first boot: mounted: /dev/ubdb on /home (ext3)"));
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
    let mut c = cmd(&[&["install", "--unattended", "--prefix", p(&prefix)], SIZES].concat());
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
    while !String::from_utf8_lossy(&seen.lock().expect("lock")).contains("first boot in uml") {
        assert!(start.elapsed() < Duration::from_secs(20), "no first boot");
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
        stopped.elapsed() < Duration::from_secs(30),
        "{:?}",
        stopped.elapsed()
    );
    assert!(!prefix.exists(), "the prefix was not rolled back");
}
