//! `kit init`, `kit verify` and the install's kit check: a kit whose files do not match
//! its kit.toml (wrong SHA-256, missing file, an extra file in a tree, no kit.toml, a
//! broken kit.toml) is refused naming the file with expected and actual values, and the
//! install stops before it changes anything (exit 1603, the install folder not created).

use crate::common;

use std::fs;
use std::path::Path;

use common::{FAILED, SMALL, cmd, kit_init, p, sha256, tempdir, text};

/// A small kit: a root tree (with a symlink, as busybox roots have), a distribution
/// file and a kernel-named file.
fn make_kit(dir: &Path) {
    fs::create_dir_all(dir.join("rootfs/bin")).expect("mkdir");
    fs::create_dir_all(dir.join("rootfs/etc")).expect("mkdir");
    fs::create_dir_all(dir.join("dist/colinux")).expect("mkdir");
    fs::write(dir.join("rootfs/bin/busybox"), b"not really busybox\n").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink("busybox", dir.join("rootfs/bin/sh")).expect("symlink");
    fs::write(dir.join("rootfs/etc/motd"), b"kit motd\n").expect("write");
    fs::write(dir.join("dist/colinux/README"), b"from the kit\n").expect("write");
    fs::write(dir.join("linux.uml"), vec![7u8; 4096]).expect("write");
}

fn verify(dir: &Path) -> std::process::Output {
    cmd(&["kit", "verify", p(dir)])
        .output()
        .expect("kit verify")
}

#[test]
fn init_lists_every_file_and_verify_accepts_it() {
    let t = tempdir("kit-cli");
    let kit = t.path().join("kit");
    make_kit(&kit);
    kit_init(&kit, &["--role", "linux.uml=kernel", "--kit-version", "7"]);
    let toml = fs::read_to_string(kit.join("kit.toml")).expect("kit.toml");
    // Checked against sha256sum, an independent hasher.
    let want = sha256(&kit.join("linux.uml"));
    assert!(toml.contains(&format!("sha256 = \"{want}\"")), "{toml}");
    assert!(
        toml.contains("path = \"rootfs/etc/motd\"\nrole = \"rootfs\""),
        "{toml}"
    );
    assert!(
        toml.contains("path = \"dist/colinux/README\"\nrole = \"distribution\""),
        "{toml}"
    );
    assert!(
        toml.contains("path = \"linux.uml\"\nrole = \"kernel\"\nsize = 4096"),
        "{toml}"
    );
    assert!(toml.contains("version = \"7\""), "{toml}");
    // The symlink is not content: not listed, and not a problem under rootfs/.
    assert!(!toml.contains("rootfs/bin/sh"), "{toml}");
    let o = verify(&kit);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("4 file(s), 0 problem(s)"), "{}", text(&o));

    // A second init without --force keeps the first.
    let o = cmd(&["kit", "init", p(&kit)]).output().expect("kit init");
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    // A bad role names the rule.
    let o = cmd(&[
        "kit",
        "init",
        p(&kit),
        "--force",
        "--role",
        "linux.uml=kernal",
    ])
    .output()
    .expect("kit init");
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(text(&o).contains("unknown role `kernal`"), "{}", text(&o));
    assert_eq!(
        fs::read_to_string(kit.join("kit.toml")).expect("kept"),
        toml
    );
}

#[test]
fn verify_lists_each_problem() {
    let t = tempdir("kit-cli");
    let kit = t.path().join("kit");
    make_kit(&kit);
    kit_init(&kit, &[]);
    let good = sha256(&kit.join("linux.uml"));
    // Same size, one byte different: only the digest can tell.
    let mut bytes = fs::read(kit.join("linux.uml")).expect("read");
    bytes[100] ^= 1;
    fs::write(kit.join("linux.uml"), &bytes).expect("write");
    let bad = sha256(&kit.join("linux.uml"));
    fs::remove_file(kit.join("rootfs/etc/motd")).expect("rm");
    fs::write(kit.join("dist/colinux/extra"), b"dropped in\n").expect("write");
    fs::write(kit.join("dist/colinux/README"), b"longer than before\n").expect("write");

    let o = verify(&kit);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "linux.uml: sha256 mismatch: expected {good}, actual {bad}"
        )),
        "{out}"
    );
    assert!(
        out.contains("rootfs/etc/motd: missing from the kit"),
        "{out}"
    );
    assert!(
        out.contains("dist/colinux/extra: in the kit folder but not listed"),
        "{out}"
    );
    assert!(
        out.contains("dist/colinux/README: size mismatch: expected 13 bytes, actual 19 bytes"),
        "{out}"
    );
    assert!(out.contains("4 problem(s)"), "{out}");

    let o = cmd(&["kit", "verify", p(&kit), "--json"])
        .output()
        .expect("json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(4), "{v}");
}

#[test]
fn verify_refuses_a_broken_or_missing_manifest() {
    let t = tempdir("kit-cli");
    let kit = t.path().join("kit");
    make_kit(&kit);
    let o = verify(&kit);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no kit.toml"), "{}", text(&o));

    kit_init(&kit, &[]);
    let toml = fs::read_to_string(kit.join("kit.toml")).expect("read");
    let broken = toml.replacen("role = \"rootfs\"", "role = \"rootfz\"", 1);
    let line = broken
        .lines()
        .position(|l| l.contains("rootfz"))
        .expect("replaced")
        + 1;
    fs::write(kit.join("kit.toml"), &broken).expect("write");
    let o = verify(&kit);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("kit.toml:{line}:8: unknown variant `rootfz`")),
        "{}",
        text(&o)
    );
    let escaping = toml.replacen("path = \"linux.uml\"", "path = \"../linux.uml\"", 1);
    fs::write(kit.join("kit.toml"), &escaping).expect("write");
    let o = verify(&kit);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("paths stay inside the kit folder"),
        "{}",
        text(&o)
    );
}

/// Runs an unattended install with `--kit`, expecting 1603 before any change.
fn install_refused(kit: &Path, prefix: &Path, want: &[&str]) {
    let mut args = vec![
        "install",
        "--unattended",
        "--prefix",
        p(prefix),
        "--monitor",
        "uml",
        "--kit",
        p(kit),
    ];
    args.extend_from_slice(SMALL);
    let o = cmd(&args).output().expect("install");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(FAILED), "{out}");
    for w in want {
        assert!(out.contains(w), "missing {w:?} in\n{out}");
    }
    assert!(!prefix.exists(), "the install folder was created: {out}");
}

#[test]
fn install_stops_before_any_change_on_a_bad_kit() {
    let t = tempdir("kit-cli");
    let kit = t.path().join("kit");
    let prefix = t.path().join("machine");
    make_kit(&kit);

    install_refused(&kit, &prefix, &["KIT", "no kit.toml", "kit init"]);

    kit_init(&kit, &[]);
    let good = sha256(&kit.join("rootfs/etc/motd"));
    fs::write(kit.join("rootfs/etc/motd"), b"kit mot!\n").expect("write");
    let bad = sha256(&kit.join("rootfs/etc/motd"));
    install_refused(
        &kit,
        &prefix,
        &[
            "does not match its kit.toml",
            &format!("rootfs/etc/motd: sha256 mismatch: expected {good}, actual {bad}"),
            "nothing was changed",
        ],
    );

    fs::remove_file(kit.join("rootfs/etc/motd")).expect("rm");
    install_refused(
        &kit,
        &prefix,
        &[&format!(
            "rootfs/etc/motd: missing from the kit (expected 9 bytes, sha256 {good})"
        )],
    );

    // A file slipped into a tree the installer copies would reach the guest unverified.
    kit_init(&kit, &[]);
    fs::write(kit.join("rootfs/etc/evil"), b"x").expect("write");
    install_refused(
        &kit,
        &prefix,
        &["rootfs/etc/evil: in the kit folder but not listed"],
    );

    // The dry run runs the same check and says so in the plan.
    fs::remove_file(kit.join("rootfs/etc/evil")).expect("rm");
    let mut args = vec![
        "install",
        "--unattended",
        "--dry-run",
        "--prefix",
        p(&prefix),
        "--monitor",
        "uml",
        "--kit",
        p(&kit),
    ];
    args.extend_from_slice(SMALL);
    let o = cmd(&args).output().expect("dry run");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("verify kit:"), "{}", text(&o));
    assert!(!prefix.exists());
}

#[test]
fn install_uses_a_verified_kit() {
    let t = tempdir("kit-cli");
    let kit = t.path().join("kit");
    let prefix = t.path().join("machine");
    make_kit(&kit);
    kit_init(&kit, &[]);
    let mut args = vec![
        "install",
        "--unattended",
        "--prefix",
        p(&prefix),
        "--monitor",
        "uml",
        "--kit",
        p(&kit),
    ];
    args.extend_from_slice(SMALL);
    let o = cmd(&args).output().expect("install");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The kit's root tree is in the root image.
    let motd = common::debugfs(&prefix.join("root.img"), "cat /etc/motd");
    assert!(motd.contains("kit motd"), "{motd}");
}
