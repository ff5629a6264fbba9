//! The install's "place the machine files" step, end to end through the binary: the
//! kit's coLinux daemon, helpers, kernel and initrd copied byte-identically into the
//! install folder and named by config.txt (judged by `config check`), recorded, reported
//! by `status`, restored by a re-install and removed by `uninstall` (images kept); the
//! kernel of a kit for the host's monitor (User-mode Linux's, or QEMU's with its
//! initramfs) copied and booted on that monitor after the kit folder is gone;
//! a changed kit file, two kernels and a failed later step (rolled back) each leave
//! nothing behind; `--dry-run` lists the files and creates nothing.
#![cfg(unix)]

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    Booting, FAILED, SMALL, cmd, host, host_cmd, kit_init, p, secs, sha256, status_json, tempdir,
    text,
};

fn expect(o: &Output, code: i32, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    for n in needles {
        assert!(t.contains(n), "expected `{n}` in:\n{t}");
    }
}

/// The coLinux files of a kit, with distinct contents (any bytes: nothing runs them).
const COLINUX: &[(&str, &[u8])] = &[
    ("colinux/colinux-daemon.exe", b"MZ daemon"),
    ("colinux/colinux-console-nt.exe", b"MZ console"),
    ("kernel/vmlinux", b"\x7fELF a coLinux kernel"),
    ("kernel/initrd.gz", b"\x1f\x8b an initrd"),
];

/// A kit folder `t/NAME` holding `files`, its kit.toml made by `kit init` (`extra` its
/// --role/--host rules).
fn kit(t: &Path, name: &str, files: &[(&str, &[u8])], extra: &[&str]) -> PathBuf {
    let dir = t.join(name);
    for (path, bytes) in files {
        let f = dir.join(path);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(&f, bytes).expect("write");
    }
    kit_init(&dir, extra);
    dir
}

fn colinux_kit(t: &Path) -> PathBuf {
    kit(
        t,
        "kit",
        COLINUX,
        &[
            // colinux-*.exe are monitor files by their names; a Windows-only helper
            // is not copied on this (Linux) host.
            "--role",
            "win=monitor",
            "--host",
            "win=windows",
        ],
    )
}

fn install(kit: &Path, prefix: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "install",
        "--unattended",
        "--monitor",
        "colinux",
        "--kit",
        p(kit),
        "--prefix",
        p(prefix),
    ];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    cmd(&args).output().expect("install")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn machine_files(prefix: &Path) -> Vec<(String, String)> {
    let st = status_json(prefix);
    st["machine_files"]
        .as_array()
        .unwrap_or_else(|| panic!("machine_files in {st}"))
        .iter()
        .map(|m| {
            (
                m["file"].as_str().unwrap_or("").to_owned(),
                m["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn colinux_files_are_copied_named_by_config_txt_recorded_restored_and_uninstalled() {
    let t = tempdir("kit-files-");
    let kit = colinux_kit(t.path());
    std::fs::create_dir_all(kit.join("win")).expect("mkdir");
    std::fs::write(kit.join("win/colinux-net-daemon.exe"), b"MZ net").expect("write");
    kit_init(&kit, &["--role", "win=monitor", "--host", "win=windows"]);
    let prefix = t.path().join("machine");

    // The dry run lists the files and creates nothing.
    let o = install(&kit, &prefix, &["--dry-run"]);
    expect(
        &o,
        0,
        &[
            "machine file:   colinux-daemon.exe (monitor, 9 bytes, executable) copied from the kit's colinux/colinux-daemon.exe",
            "machine file:   vmlinux (kernel",
            "machine file:   initrd.gz (initrd",
            &format!("kernel={}", prefix.join("vmlinux").display()),
            &format!("initrd={}", prefix.join("initrd.gz").display()),
        ],
    );
    assert!(!text(&o).contains("colinux-net-daemon"), "{}", text(&o));
    assert!(!prefix.exists());

    let o = install(&kit, &prefix, &[]);
    expect(&o, 0, &[]);
    assert!(
        !text(&o).contains("no kit provides"),
        "no missing-file warning with a full kit:\n{}",
        text(&o)
    );
    for (path, bytes) in COLINUX {
        let name = path.rsplit('/').next().expect("name");
        assert_eq!(
            std::fs::read(prefix.join(name)).expect("copied"),
            *bytes,
            "{name}"
        );
    }
    assert!(!prefix.join("colinux-net-daemon.exe").exists());
    assert_eq!(mode(&prefix.join("colinux-daemon.exe")), 0o755);
    assert_eq!(mode(&prefix.join("vmlinux")), 0o644);
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config.txt");
    assert!(
        config.contains(&format!("kernel={}\n", prefix.join("vmlinux").display())),
        "{config}"
    );
    assert!(
        config.contains(&format!("initrd={}\n", prefix.join("initrd.gz").display())),
        "{config}"
    );
    expect(
        &cmd(&["config", "check", p(&prefix.join("config.txt"))])
            .output()
            .expect("config check"),
        0,
        &[],
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.join("install-state.json")).expect("state"))
            .expect("state json");
    let files = state["files"].as_array().expect("files");
    for (name, role) in [
        ("colinux-daemon.exe", "monitor"),
        ("colinux-console-nt.exe", "monitor"),
        ("vmlinux", "kernel"),
        ("initrd.gz", "initrd"),
    ] {
        let r = files
            .iter()
            .find(|f| f["file"] == name)
            .unwrap_or_else(|| panic!("{name} recorded in {state}"));
        assert_eq!(r["role"], role, "{r}");
        assert_eq!(
            r["digest"].as_str(),
            Some(format!("sha256:{}", sha256(&prefix.join(name))).as_str()),
            "{r}"
        );
    }
    assert!(
        machine_files(&prefix).iter().all(|(_, s)| s == "ok"),
        "{:?}",
        machine_files(&prefix)
    );
    // The machine does not need the kit any more.
    std::fs::rename(&kit, t.path().join("kit-moved")).expect("move the kit away");
    let kit = t.path().join("kit-moved");

    // A changed copy and a missing one are reported, and a re-install restores both.
    std::fs::write(prefix.join("vmlinux"), b"damaged").expect("damage");
    std::fs::remove_file(prefix.join("colinux-console-nt.exe")).expect("remove");
    let now = machine_files(&prefix);
    assert!(
        now.contains(&("vmlinux".into(), "changed".into())),
        "{now:?}"
    );
    assert!(
        now.contains(&("colinux-console-nt.exe".into(), "missing".into())),
        "{now:?}"
    );
    let o = cmd(&["status", "--prefix", p(&prefix)])
        .output()
        .expect("status");
    expect(&o, 0, &["vmlinux", "changed since the install"]);
    let o = install(&kit, &prefix, &[]);
    expect(&o, 0, &[]);
    assert_eq!(
        std::fs::read(prefix.join("vmlinux")).expect("restored"),
        COLINUX[2].1
    );
    assert_eq!(
        std::fs::read(prefix.join("colinux-console-nt.exe")).expect("restored"),
        COLINUX[1].1
    );
    assert!(machine_files(&prefix).iter().all(|(_, s)| s == "ok"));
    assert!(!prefix.join(".vmlinux.backup").exists());

    // A re-install over intact copies changes nothing.
    let before = std::fs::metadata(prefix.join("vmlinux"))
        .and_then(|m| m.modified())
        .expect("mtime");
    expect(&install(&kit, &prefix, &[]), 0, &[]);
    let after = std::fs::metadata(prefix.join("vmlinux"))
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(before, after, "an intact copy is kept, not rewritten");

    // uninstall removes the copies and keeps the images.
    expect(
        &cmd(&["uninstall", "--prefix", p(&prefix)])
            .output()
            .expect("uninstall"),
        0,
        &[],
    );
    for (path, _) in COLINUX {
        let name = path.rsplit('/').next().expect("name");
        assert!(!prefix.join(name).exists(), "{name} left behind");
    }
    for img in ["root.img", "home.img", "swap.img"] {
        assert!(prefix.join(img).exists(), "{img} kept");
    }
}

#[test]
fn without_the_colinux_files_the_install_warns_how_to_add_them() {
    let t = tempdir("kit-files-");
    let kit = kit(t.path(), "kit", &[("notes.txt", b"no machine files")], &[]);
    let prefix = t.path().join("machine");
    let o = install(&kit, &prefix, &["--dry-run"]);
    expect(
        &o,
        0,
        &["warning: kernel=", "no kit provides the coLinux kernel"],
    );
    assert!(!prefix.exists());
    let o = install(&kit, &prefix, &[]);
    expect(
        &o,
        0,
        &[
            "no kit provides the coLinux kernel",
            "no kit provides the coLinux daemon",
            "kit.toml roles kernel and monitor",
        ],
    );
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config.txt");
    assert!(
        config.contains(&format!("kernel={}\n", prefix.join("vmlinux").display())),
        "{config}"
    );
    assert!(!config.contains("initrd="), "{config}");
}

#[test]
fn a_kit_file_changed_after_kit_toml_is_refused_before_any_change() {
    let t = tempdir("kit-files-");
    let kit = colinux_kit(t.path());
    std::fs::write(kit.join("kernel/vmlinux"), b"\x7fELF another kernel").expect("change");
    let prefix = t.path().join("machine");
    let o = install(&kit, &prefix, &[]);
    expect(
        &o,
        FAILED,
        &[
            "kernel/vmlinux",
            "does not match its kit.toml",
            "nothing was changed",
        ],
    );
    assert!(!prefix.exists(), "{}", text(&o));
}

#[test]
fn two_kernels_or_two_files_of_one_name_are_refused_naming_both() {
    let t = tempdir("kit-files-");
    let mut files = COLINUX.to_vec();
    files.push(("kernel/vmlinux-2.6.33", b"\x7fELF a second kernel"));
    let kit2 = kit(
        t.path(),
        "two-kernels",
        &files,
        &["--role", "colinux=monitor"],
    );
    let prefix = t.path().join("machine");
    let o = install(&kit2, &prefix, &[]);
    expect(
        &o,
        FAILED,
        &[
            "2 kernels for the colinux monitor",
            "kernel/vmlinux, kernel/vmlinux-2.6.33",
        ],
    );
    assert!(!prefix.exists());

    let mut files = COLINUX.to_vec();
    files.push(("tools/colinux-daemon.exe", b"MZ another daemon"));
    let same = kit(
        t.path(),
        "same-name",
        &files,
        &["--role", "colinux=monitor", "--role", "tools=monitor"],
    );
    let o = install(&same, &prefix, &[]);
    expect(
        &o,
        FAILED,
        &[
            "colinux/colinux-daemon.exe and tools/colinux-daemon.exe",
            "rename one",
        ],
    );
    assert!(!prefix.exists());
}

#[test]
fn a_failed_later_step_rolls_the_copies_back_and_restores_a_replaced_file() {
    let t = tempdir("kit-files-");
    let kit = colinux_kit(t.path());

    // A new folder: everything goes.
    let prefix = t.path().join("machine");
    let o = cmd(&[
        &[
            "install",
            "--unattended",
            "--monitor",
            "colinux",
            "--kit",
            p(&kit),
            "--prefix",
            p(&prefix),
        ],
        SMALL,
    ]
    .concat())
    .env("COLINUX_SETUP_TEST_FAIL_AT", "state")
    .output()
    .expect("install");
    expect(
        &o,
        FAILED,
        &[
            "placing the kit's machine files",
            "failure injected at step state",
            "rolling back",
        ],
    );
    assert!(!prefix.exists(), "{}", text(&o));

    // A folder where a user put a kernel of their own: it is back after the rollback.
    let prefix = t.path().join("existing");
    std::fs::create_dir(&prefix).expect("mkdir");
    std::fs::write(prefix.join("vmlinux"), b"the user's kernel").expect("write");
    let o = cmd(&[
        &[
            "install",
            "--unattended",
            "--monitor",
            "colinux",
            "--kit",
            p(&kit),
            "--prefix",
            p(&prefix),
        ],
        SMALL,
    ]
    .concat())
    .env("COLINUX_SETUP_TEST_FAIL_AT", "config")
    .output()
    .expect("install");
    expect(&o, FAILED, &["failure injected at step config"]);
    assert_eq!(
        std::fs::read(prefix.join("vmlinux")).expect("restored"),
        b"the user's kernel"
    );
    let left: Vec<String> = std::fs::read_dir(&prefix)
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "logs")
        .collect();
    assert_eq!(left, ["vmlinux"], "{}", text(&o));
}

/// A kit with the host monitor's machine files (User-mode Linux's kernel, or QEMU's
/// kernel and initramfs, from the default kit): they are copied into the machine's folder,
/// the first boot runs the copies, and the machine boots from them once the kit is gone.
#[test]
fn a_kit_kernel_is_copied_and_the_machine_boots_it_without_the_kit() {
    let here = host();
    let source = here.install_kit();
    let (kernel, initrd) = if here.is_uml() {
        ("uml/linux.uml", None)
    } else {
        ("qemu/vmlinuz", Some("qemu/initrd.img"))
    };
    let files: Vec<(&str, Vec<u8>)> = [Some(kernel), initrd]
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f,
                std::fs::read(source.join(f)).expect("the default kit's file"),
            )
        })
        .collect();
    let listed: Vec<(&str, &[u8])> = files.iter().map(|(f, b)| (*f, b.as_slice())).collect();
    let t = tempdir("kit-files-");
    let kit = kit(t.path(), "kit", &listed, &[]);
    // As kits are unpacked from archives or CDs: no execute bit; a UML kernel's copy gets
    // one (it is a program), QEMU's kernel is data.
    for (f, _) in &files {
        std::fs::set_permissions(kit.join(f), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let prefix = t.path().join("machine");
    let o = host_cmd(&[
        "install",
        "--unattended",
        "--monitor",
        &here.monitor,
        "--kit",
        p(&kit),
        "--prefix",
        p(&prefix),
        "--set",
        "RAMMB=128",
        "--set",
        "ROOTMB=64",
        "--set",
        "HOMEMB=32",
        "--set",
        "SWAPMB=96",
        "--set",
        "MODULES=0",
    ])
    .output()
    .expect("install");
    expect(&o, 0, &["first boot: done"]);
    let name = |f: &str| Path::new(f).file_name().expect("name").to_owned();
    let copy = prefix.join(name(kernel));
    assert_eq!(sha256(&copy), sha256(&source.join(kernel)));
    assert_eq!(mode(&copy), if here.is_uml() { 0o755 } else { 0o644 });
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config.txt");
    assert!(
        config.contains(&format!("kernel={}\n", copy.display())),
        "{config}"
    );
    if let Some(initrd) = initrd {
        let copy = prefix.join(name(initrd));
        assert_eq!(sha256(&copy), sha256(&source.join(initrd)));
        assert!(
            config.contains(&format!("initrd={}\n", copy.display())),
            "{config}"
        );
    }
    // The first boot ran the copy.
    let log: String = std::fs::read_dir(prefix.join("logs"))
        .expect("logs")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        log.lines()
            .any(|l| l.contains("command line:") && l.contains(&format!("{} ", copy.display()))),
        "{log}"
    );

    // The kit goes away; the machine still boots, with the copied kernel.
    std::fs::remove_dir_all(&kit).expect("remove the kit");
    let mut b = Booting::spawn(host_cmd(&[
        "boot",
        "--prefix",
        p(&prefix),
        "--timeout",
        &secs(120).to_string(),
    ]));
    b.wait_for("colinux-setup: guest colinux is up", secs(120));
    b.wait_for("/ # ", secs(20));
    b.type_line("cat /home/colinux/README; poweroff\n");
    let (code, out) = b.wait(secs(60));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("installed by colinux-setup"), "{out}");

    expect(
        &cmd(&["uninstall", "--prefix", p(&prefix)])
            .output()
            .expect("uninstall"),
        0,
        &[],
    );
    assert!(!copy.exists());
    assert!(prefix.join("root.img").exists());
}

/// coLinux kernels are 32-bit x86: a built-in root made from a busybox of another
/// architecture is said to be unbootable; a kit's own rootfs/ is not second-guessed.
#[test]
fn a_colinux_machine_whose_root_busybox_is_not_i386_is_warned_about() {
    let t = tempdir("kit-files-");
    let prefix = t.path().join("machine");
    let bare = kit(t.path(), "bare", &[("notes.txt", b"no rootfs")], &[]);
    let o = install(&bare, &prefix, &["--dry-run"]);
    let machine = std::fs::read("/bin/busybox").expect("busybox-static")[18];
    if machine == 3 {
        expect(&o, 0, &[]);
        assert!(!text(&o).contains("not i386"), "{}", text(&o));
    } else {
        expect(
            &o,
            0,
            &["not i386", "a coLinux kernel (32-bit x86) cannot run it"],
        );
    }
    let with_root = kit(t.path(), "rooted", &[("rootfs/etc/motd", b"hello\n")], &[]);
    let o = install(&with_root, &prefix, &["--dry-run"]);
    expect(&o, 0, &[]);
    assert!(!text(&o).contains("not i386"), "{}", text(&o));
}
