//! The monitor probe, end to end with real processes: `facts --json --kit` boots the
//! smallest guest in each monitor and says which run guests here and why not; what it
//! finds decides `MONITOR=auto`, the dry run's plan and the refusal of a monitor that
//! cannot run.
//!
//! The hosts this project meets are simulated with real programs, not with a switch in
//! the product: a kit whose `uml/linux.uml` is a program that prints what Debian's UML
//! prints on CPUs with AMX (`userspace - ptrace set fp regs failed, errno = 14`, then the
//! kernel panic) and keeps running, as the real one does; and a `qemu-system-x86_64`
//! first on PATH that, asked for KVM, prints the firmware's lines and `Probing EDD
//! (edd=off to disable)... ok` and then nothing (the nested-virtualisation hang), and
//! otherwise runs the real QEMU. The default kit (`common::host`) gives the real kernels.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{FAILED, cmd, host, kit_init, p, tempdir, text};

/// What Debian 12's linux.uml (6.1um4) prints on a CPU with AMX, as a program: the
/// kernel starts, the first guest process fails, the kernel panics and stays there.
const AMX_UML: &str = r#"#!/bin/sh
cat <<'EOF'
Checking that ptrace can change system call numbers...OK
Checking syscall emulation for ptrace...OK
Linux version 6.1.176 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 Mon Nov  3 00:00:00 UTC 2026
VFS: Mounted root (hostfs filesystem) on device 0:14.
This architecture does not have kernel memory protection.
Run /init as init process
userspace - ptrace set fp regs failed, errno = 14
Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b
CPU: 0 PID: 1 Comm: init Not tainted 6.1.176 #1
EOF
sleep 60
exit 1
"#;

/// `facts --json --kit KIT` (with `env`): the parsed output.
fn facts(kit: &Path, env: &[(&str, &str)], path: Option<&str>) -> serde_json::Value {
    let mut c = cmd(&["facts", "--json", "--kit", p(kit)]);
    c.env_remove("COLINUX_SETUP_QEMU_ACCEL");
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(path) = path {
        c.env("PATH", path);
    }
    let o = c.output().expect("facts");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// The verdict of `monitor` (`uml`, `qemu/kvm`, `qemu/tcg`, `colinux`) in `facts`.
fn verdict<'a>(facts: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let (monitor, accel) = name
        .split_once('/')
        .map_or((name, None), |(m, a)| (m, Some(a)));
    facts["monitors"]
        .as_array()
        .expect("monitors")
        .iter()
        .find(|v| v["monitor"] == monitor && v["accel"].as_str() == accel)
        .unwrap_or_else(|| panic!("no {name} in {facts:#}"))
}

/// Every monitor, with works (a bool) and a reason, and at least one that works here:
/// the one `auto` picks, the first that works of uml, qemu/kvm, qemu/tcg.
#[test]
fn facts_names_every_monitor_and_auto_picks_the_first_that_works_here() {
    let kit = &host().kit;
    let v = facts(kit, &[], None);
    for name in ["uml", "qemu/kvm", "qemu/tcg", "colinux", "wsl"] {
        let m = verdict(&v, name);
        assert!(m["works"].is_boolean(), "{name}: {m}");
        assert!(
            m["reason"].as_str().is_some_and(|r| r.len() > 5),
            "{name} has no reason: {m}"
        );
    }
    // The Windows monitors are named too, each saying why it does not run here.
    assert_eq!(verdict(&v, "wsl")["works"], false, "{v:#}");
    assert!(
        verdict(&v, "wsl")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("64-bit Windows 10 2004+ and 11")),
        "{v:#}"
    );
    assert_eq!(verdict(&v, "colinux")["works"], false, "{v:#}");
    assert!(
        verdict(&v, "colinux")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("32-bit Windows 2000..7 and Linux 2.6 hosts")),
        "{v:#}"
    );
    let first = ["uml", "qemu/kvm", "qemu/tcg"]
        .into_iter()
        .find(|n| verdict(&v, n)["works"] == true)
        .unwrap_or_else(|| panic!("no monitor runs guests on this host: {v:#}"));
    let auto = &v["auto"];
    let picked = match auto["accel"].as_str() {
        Some(a) => format!("{}/{a}", auto["monitor"].as_str().unwrap_or("")),
        None => auto["monitor"].as_str().unwrap_or("").to_owned(),
    };
    assert_eq!(picked, first, "{v:#}");
    assert!(
        auto["why"]
            .as_str()
            .is_some_and(|w| w.contains("the first that works of uml, qemu/kvm, qemu/tcg")),
        "{v:#}"
    );
    // The suite boots its guests on this same choice.
    assert_eq!(picked, host().name(), "{v:#}");
}

/// A kit like the default one whose UML is [`AMX_UML`] (kit.toml by `kit init`: sizes
/// and SHA-256 right), with the real QEMU kernel and initramfs (hard links).
fn amx_kit(dir: &Path) -> PathBuf {
    let kit = dir.join("amx-kit");
    std::fs::create_dir_all(kit.join("uml")).expect("mkdir");
    std::fs::create_dir_all(kit.join("qemu")).expect("mkdir");
    let uml = kit.join("uml/linux.uml");
    std::fs::write(&uml, AMX_UML).expect("write");
    std::fs::set_permissions(&uml, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for f in ["qemu/vmlinuz", "qemu/initrd.img"] {
        let from = host().kit.join(f);
        if std::fs::hard_link(&from, kit.join(f)).is_err() {
            std::fs::copy(&from, kit.join(f)).expect("copy");
        }
    }
    kit_init(&kit, &[]);
    kit
}

/// The environment that limits QEMU to the accelerator that works here (the KVM probe
/// is the next test's subject), or why QEMU runs no guests here.
fn qemu_env() -> Vec<(&'static str, String)> {
    match host().other("qemu") {
        Ok(q) => q.env(),
        Err(why) => panic!("QEMU runs no guests on this host, so nothing can replace UML: {why}"),
    }
}

#[test]
fn a_uml_that_panics_as_on_amx_cpus_is_named_and_qemu_is_chosen_instead() {
    let t = tempdir("probe-amx-");
    let kit = amx_kit(t.path());
    let env = qemu_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // facts: UML does not work, in the host's words; auto is QEMU.
    let v = facts(&kit, &env, None);
    let uml = verdict(&v, "uml");
    assert_eq!(uml["works"], false, "{v:#}");
    let reason = uml["reason"].as_str().unwrap_or_default();
    for needle in [
        "the guest kernel panicked at its first process",
        "`userspace - ptrace set fp regs failed, errno = 14`",
        "Attempted to kill init!",
    ] {
        assert!(reason.contains(needle), "`{needle}` not in {reason}");
    }
    assert_eq!(v["auto"]["monitor"], "qemu", "{v:#}");

    // The dry run says which monitor and why, with every probe.
    let prefix = t.path().join("m");
    let dry = |extra: &[&str]| -> Output {
        let mut c = cmd(&[
            &[
                "install",
                "--unattended",
                "--dry-run",
                "--kit",
                p(&kit),
                "--prefix",
                p(&prefix),
            ],
            extra,
        ]
        .concat());
        c.env_remove("COLINUX_SETUP_QEMU_ACCEL")
            .envs(env.iter().copied());
        c.output().expect("install --dry-run")
    };
    let o = dry(&[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for needle in [
        "Plan: profile minimal (built-in), monitor qemu",
        "  monitor:        QEMU",
        "runs guests here: the first that works of uml, qemu/",
        "probe uml: does not work here: the guest kernel panicked at its first process: \
         `userspace - ptrace set fp regs failed, errno = 14`",
        "root=/dev/vda",
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{out}");
    }
    assert!(!prefix.exists(), "the dry run made {}", prefix.display());

    // UML given by name: refused before any change, naming the cause and what works.
    let mut c = cmd(&[
        "install",
        "--unattended",
        "--monitor",
        "uml",
        "--kit",
        p(&kit),
        "--prefix",
        p(&prefix),
    ]);
    c.env_remove("COLINUX_SETUP_QEMU_ACCEL")
        .envs(env.iter().copied());
    let o = c.output().expect("install --monitor uml");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(FAILED), "{out}");
    for needle in [
        "MONITOR=uml (--monitor): User-mode Linux cannot run a guest on this host",
        "`userspace - ptrace set fp regs failed, errno = 14`",
        "works here (give --monitor qemu, or MONITOR=auto)",
        "the log of this run is",
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{out}");
    }
    assert!(
        !prefix.exists(),
        "a refused install made {}",
        prefix.display()
    );
}

/// A `qemu-system-x86_64` that hangs after the firmware when asked for KVM (what nested
/// virtual machines do) and is the real one otherwise; PATH with it first.
fn hanging_kvm(dir: &Path) -> String {
    let real = e2e_tests::tools::tool("qemu-system-x86_64").expect("QEMU (qemu-system-x86)");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let fake = bin.join("qemu-system-x86_64");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             # Asked for KVM: the firmware's lines, the kernel's real-mode setup, then nothing.\n\
             case \" $* \" in *\" -accel kvm \"*)\n\
             printf 'qemu-system-x86_64: warning: host doesn'\"'\"'t support requested feature: CPUID.01H:ECX.pni [bit 0]\\n'\n\
             printf '\\033c\\033[?7l\\033[2J\\033[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\\r\\n\\r\\n\\r\\n'\n\
             printf 'iPXE (http://ipxe.org) 00:03.0 CA00 PCI2.10 PnP PMM+06FCEFD0+06F0EFD0 CA00\\r\\n'\n\
             printf 'Press Ctrl-B to configure iPXE (PCI 00:03.0)...\\r          \\r\\n\\r\\n\\r\\n'\n\
             printf 'Booting from ROM...\\r\\nProbing EDD (edd=off to disable)... ok\\r\\n'\n\
             exec sleep 600;;\n\
             esac\n\
             exec {} \"$@\"\n",
            real.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", bin.display())
}

#[test]
fn kvm_guests_that_hang_after_the_firmware_are_named_and_tcg_is_used() {
    let t = tempdir("probe-kvm-");
    let path = hanging_kvm(t.path());
    let v = facts(&host().kit, &[], Some(&path));
    let kvm = verdict(&v, "qemu/kvm");
    assert_eq!(kvm["works"], false, "{v:#}");
    let reason = kvm["reason"].as_str().unwrap_or_default();
    if let Err(no_kvm) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        // Without /dev/kvm the probe never starts QEMU with KVM: that is what it says.
        eprintln!("/dev/kvm does not open here ({no_kvm}): the KVM probe says why instead");
        assert!(reason.contains("/dev/kvm"), "{reason}");
    } else {
        for needle in [
            "KVM guests hang here: nothing after the firmware within",
            "(the last line: `Probing EDD (edd=off to disable)... ok`)",
            "QEMU said: `qemu-system-x86_64: warning: host doesn't support requested feature",
        ] {
            assert!(reason.contains(needle), "`{needle}` not in {reason}");
        }
    }
    assert_eq!(verdict(&v, "qemu/tcg")["works"], true, "{v:#}");
    // auto: UML where it runs guests here, else QEMU without KVM.
    let uml_works = verdict(&v, "uml")["works"] == true;
    let auto = &v["auto"];
    if uml_works {
        assert_eq!(auto["monitor"], "uml", "{v:#}");
    } else {
        assert_eq!(
            (auto["monitor"].as_str(), auto["accel"].as_str()),
            (Some("qemu"), Some("tcg")),
            "{v:#}"
        );
    }

    // QEMU given by name: the plan runs it without KVM and says why.
    let prefix = t.path().join("m");
    let o = cmd(&[
        "install",
        "--unattended",
        "--dry-run",
        "--monitor",
        "qemu",
        "--kit",
        p(&host().on("qemu").install_kit()),
        "--prefix",
        p(&prefix),
    ])
    .env_remove("COLINUX_SETUP_QEMU_ACCEL")
    .env("PATH", &path)
    .output()
    .expect("install --dry-run");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for needle in [
        "  monitor:        QEMU without KVM (TCG emulation) (qemu was asked for, and QEMU without KVM (TCG emulation) runs guests here)",
        "probe qemu/kvm: does not work here:",
        "probe qemu/tcg: works",
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{out}");
    }
    assert!(!prefix.exists());
}
