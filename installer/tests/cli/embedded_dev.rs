//! The embedded developer's machine end to end: the kit `scripts/make-kit embedded-dev`
//! makes from Debian packages (made once per target folder, `target/embedded-dev-kit`,
//! again when the script or the SDK changes), installed unattended with the profile
//! `embedded-dev` on the monitor this host offers. Its first boot builds the SDK's
//! example natively and for ARM and runs both; then, in the booted machine, a fresh
//! program compiles with both compilers and both print; e2fsck is clean after poweroff.
//! A kit with a wrong digest changes nothing; a kit without the cross compiler fails at
//! the first boot with the compiler's words, and the install is rolled back.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{FAILED, install_cmd, output_within, p, secs, tempdir, text};

/// The kit, made once per target folder (and when scripts/make-kit or the SDK is newer).
pub(crate) fn kit() -> &'static Path {
    static KIT: OnceLock<PathBuf> = OnceLock::new();
    KIT.get_or_init(|| {
        let target = e2e_tests::host_monitor::target_dir().expect("the target folder");
        fs::create_dir_all(&target).expect("target folder");
        let lock = fs::File::create(target.join("embedded-dev-kit.lock")).expect("lock file");
        lock.lock().expect("lock");
        let kit = target.join("embedded-dev-kit");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let made = fs::metadata(kit.join("kit.toml"))
            .and_then(|m| m.modified())
            .ok();
        let sources = [
            repo.join("scripts/make-kit"),
            repo.join("kits/embedded-dev/sdk/hello/hello.c"),
            repo.join("kits/embedded-dev/sdk/hello/Makefile"),
            repo.join("kits/embedded-dev/sdk/README"),
        ];
        let stale = sources.iter().any(|s| {
            let changed = fs::metadata(s).and_then(|m| m.modified()).ok();
            made.is_none() || changed > made
        });
        if stale {
            let o = Command::new(repo.join("scripts/make-kit"))
                .args(["embedded-dev", p(&kit), "--force"])
                .env("COLINUX_SETUP", crate::common::BIN)
                .output()
                .expect("run scripts/make-kit");
            assert!(
                o.status.success(),
                "scripts/make-kit embedded-dev failed: {}",
                text(&o)
            );
        }
        kit
    })
}

/// The answers of the machine's user.
const USER: &[&str] = &[
    "--profile",
    "embedded-dev",
    "--set",
    "USERNAME=ada",
    "--set",
    "USERPASSWORD=correct horse battery",
];

/// Copies the kit as hard links (its 200 MB archive is not copied), for a test to
/// change one file of it: a changed file is written anew, never through a link.
fn kit_copy(to: &Path) {
    let st = Command::new("cp")
        .arg("-al")
        .arg(kit())
        .arg(to)
        .status()
        .expect("cp -al");
    assert!(st.success());
}

/// Replaces kit.toml's entry for `path` with the size and digest of `file`'s bytes.
fn relist(kit: &Path, path: &str, size: u64, sha256: &str) {
    let toml = fs::read_to_string(kit.join("kit.toml")).expect("kit.toml");
    let mut out = Vec::new();
    let mut inside = false;
    for line in toml.lines() {
        if line.starts_with("path = ") {
            inside = line == format!("path = \"{path}\"");
        }
        out.push(match line {
            l if inside && l.starts_with("size = ") => format!("size = {size}"),
            l if inside && l.starts_with("sha256 = ") => format!("sha256 = \"{sha256}\""),
            l => l.to_owned(),
        });
    }
    fs::remove_file(kit.join("kit.toml")).expect("unlink kit.toml");
    fs::write(kit.join("kit.toml"), out.join("\n") + "\n").expect("kit.toml");
}

#[test]
fn the_embedded_developers_machine_compiles_and_runs_a_fresh_program_natively_and_for_arm() {
    let t = tempdir("embedded-dev");
    let prefix = t.path().join("machine");
    let answers = t.path().join("answers.txt");
    let mut args = USER.to_vec();
    args.extend(["--kit", p(kit()), "--save-answers", p(&answers)]);
    let o = output_within(install_cmd(&prefix, &args), secs(120));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let log = fs::read_dir(prefix.join("logs"))
        .expect("logs")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("install"))
        .map(|e| fs::read_to_string(e.path()).expect("log"))
        .expect("the install log");
    // The first boot built the SDK's example for both and ran both (the log has the console).
    for said in [
        "running `make -C sdk/hello run` in /home/ada as ada",
        "Hello from a program built for x86-64, running on x86_64 (embedded-dev)",
        "Hello from a program built for 32-bit ARM (arm-linux-gnueabihf), running on armv7l",
        "the profile's steps succeeded",
    ] {
        assert!(log.contains(said), "the install log lacks `{said}`:\n{log}");
    }
    // The password is in no file of ours; its hash only where the user asked for it.
    let saved = fs::read_to_string(&answers).expect("answers");
    assert!(saved.contains("USERNAME = \"ada\""), "{saved}");
    assert!(saved.contains("USERPASSWORDHASH"), "{saved}");
    let config = fs::read_to_string(prefix.join("config.txt")).expect("config.txt");
    for (what, textual) in [
        ("answers", &saved),
        ("config.txt", &config),
        ("log", &log),
        ("output", &out),
    ] {
        assert!(
            !textual.contains("correct horse"),
            "the password is in the {what}"
        );
    }
    assert!(
        !config.contains("$6$"),
        "the hash is in config.txt:\n{config}"
    );
    // The image's users: ada with a SHA-512 crypt hash, Debian's own users kept.
    let root = prefix.join("root.img");
    let shadow = crate::common::debugfs(&root, "cat /etc/shadow");
    assert!(shadow.lines().any(|l| l.starts_with("ada:$6$")), "{shadow}");
    let passwd = crate::common::debugfs(&root, "cat /etc/passwd");
    assert!(
        passwd.contains("ada:x:1000:1000:ada:/home/ada:/bin/bash"),
        "{passwd}"
    );
    assert!(
        passwd.lines().any(|l| l.starts_with("_apt:")),
        "Debian's users are kept: {passwd}"
    );

    // A fresh program in the booted machine, compiled by its user with both compilers.
    let run = |command: &str, args: &[&str], within: u64| {
        let mut c = crate::common::host_cmd(&[command, "--prefix", p(&prefix)]);
        c.args(args);
        output_within(c, within)
    };
    /// Stops the machine however the test ends, so that no guest outlives it.
    struct Running<'a>(&'a Path);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            let _ = crate::common::host_cmd(&["stop", "--prefix", p(self.0)]).output();
        }
    }
    let o = run("start", &[], secs(60));
    let running = Running(&prefix);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // eth0 is slirp: up with 10.0.2.15 and a default route through 10.0.2.2, where the
    // monitor gives the guest a network (QEMU; UML with the host's slirp program), else
    // the boot says why not.
    let o = run(
        "shell",
        &[
            "--",
            "ifconfig eth0 | grep -c 'inet addr:10.0.2.15'; grep -c '0202000A' /proc/net/route",
        ],
        secs(30),
    );
    let net = text(&o);
    let slirp_here = Command::new("sh")
        .args(["-c", "command -v slirp"])
        .status()
        .is_ok_and(|s| s.success());
    if !crate::common::host().is_uml() || slirp_here {
        assert!(net.contains("1\n1"), "eth0 configured: {net}");
    } else {
        let start_log = fs::read_dir(prefix.join("logs"))
            .expect("logs")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("start"))
            .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        assert!(
            start_log.contains("eth0 (slirp) could not be brought up")
                && start_log.contains("apt-get install slirp"),
            "the boot says why eth0 is down: {start_log}"
        );
    }
    // The kit's ssh server runs, with host keys of this machine's own; where the monitor
    // forwards eth0's ports (QEMU), ada logs in with a key from this host.
    let o = run(
        "shell",
        &["--", "pidof sshd && ls /etc/ssh/ssh_host_ed25519_key"],
        secs(30),
    );
    assert_eq!(o.status.code(), Some(0), "sshd runs: {}", text(&o));
    if crate::common::host().is_uml() {
        assert!(
            out.contains("eth0's redirections (tcp:2222:22) are not applied"),
            "the plan says UML forwards no port: {out}"
        );
    } else {
        let key = t.path().join("key");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f", p(&key)])
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        let public = fs::read_to_string(key.with_extension("pub")).expect("key.pub");
        let line = format!(
            "mkdir -p /home/ada/.ssh && echo '{}' > /home/ada/.ssh/authorized_keys && chown -R ada /home/ada/.ssh && chmod 700 /home/ada/.ssh",
            public.trim()
        );
        let o = run("shell", &["--", &line], secs(30));
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let o = output_within(
            {
                let mut c = Command::new("ssh");
                c.args([
                    "-p",
                    "2222",
                    "-i",
                    p(&key),
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "ConnectTimeout=60",
                    "ada@127.0.0.1",
                    "id -un && uname -n",
                ]);
                c
            },
            secs(30),
        );
        let said = text(&o);
        assert!(said.contains("ada\nembedded-dev"), "ssh as ada: {said}");
    }
    let write = r#"printf '#include <stdio.h>\nint main(void)\n{\n#ifdef __arm__\n\tputs("fresh program: ARM");\n#else\n\tputs("fresh program: native");\n#endif\n\treturn 0;\n}\n' > /home/ada/fresh.c && chown ada /home/ada/fresh.c"#;
    let o = run("shell", &["--", write], secs(30));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let build = "su -s /bin/sh ada -c \"cd && gcc -Wall -o fresh fresh.c && ./fresh && arm-linux-gnueabihf-gcc -Wall -static -o fresh-arm fresh.c && qemu-arm-static ./fresh-arm\"";
    let o = run(
        "shell",
        &["--timeout", &secs(60).to_string(), "--", build],
        secs(90),
    );
    let said = text(&o);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(said.contains("fresh program: native"), "{said}");
    assert!(said.contains("fresh program: ARM"), "{said}");
    let o = run("stop", &[], secs(60));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    drop(running);
    for img in ["root.img", "home.img"] {
        e2e_tests::e2fsck_clean(&prefix.join(img)).expect("e2fsck -fn clean after poweroff");
    }
}

#[test]
fn a_kit_with_a_wrong_digest_changes_nothing() {
    let t = tempdir("embedded-dev-digest");
    let bad = t.path().join("kit");
    kit_copy(&bad);
    let size = fs::metadata(bad.join("rootfs.tar.zst"))
        .expect("archive")
        .len();
    relist(&bad, "rootfs.tar.zst", size, &"0".repeat(64));
    let prefix = t.path().join("machine");
    let mut args = USER.to_vec();
    args.extend(["--kit", p(&bad)]);
    let o = output_within(install_cmd(&prefix, &args), secs(60));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(FAILED), "{out}");
    assert!(
        out.contains("rootfs.tar.zst"),
        "the error names the file: {out}"
    );
    assert!(!prefix.exists(), "nothing is made: {out}");
}

#[test]
fn a_kit_without_the_cross_compiler_fails_the_first_boot_with_its_words_and_rolls_back() {
    let t = tempdir("embedded-dev-nocross");
    let bad = t.path().join("kit");
    kit_copy(&bad);
    // The archive without the cross compiler's drivers (gcc, gcc-12 and friends).
    let archive = bad.join("rootfs.tar.zst");
    fs::remove_file(&archive).expect("unlink the archive");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar --delete --wildcards -f - './usr/bin/arm-linux-gnueabihf-gcc*' | zstd -q -T0 -3 > '{}'",
            p(&kit().join("rootfs.tar.zst")),
            p(&archive)
        ))
        .status()
        .expect("zstd | tar --delete | zstd");
    assert!(st.success());
    let size = fs::metadata(&archive).expect("archive").len();
    relist(
        &bad,
        "rootfs.tar.zst",
        size,
        &crate::common::sha256(&archive),
    );
    let prefix = t.path().join("machine");
    let mut args = USER.to_vec();
    args.extend(["--kit", p(&bad)]);
    let o = output_within(install_cmd(&prefix, &args), secs(120));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(FAILED), "{out}");
    // make's words about the missing compiler, and the step that failed.
    assert!(
        out.contains("arm-linux-gnueabihf-gcc: No such file or directory")
            || out.contains("arm-linux-gnueabihf-gcc: not found"),
        "the compiler's words: {out}"
    );
    assert!(out.contains("`make -C sdk/hello run` failed"), "{out}");
    assert!(!prefix.exists(), "the install is rolled back: {out}");
}

#[test]
fn without_a_password_or_with_a_bad_name_nothing_is_made() {
    let t = tempdir("embedded-dev-nopw");
    let prefix = t.path().join("machine");
    for (extra, said) in [
        (
            vec!["--set", "USERNAME=ada"],
            "the machine's user ada needs a password, and profile embedded-dev has none of its own",
        ),
        (
            vec!["--set", "USERNAME=Ada Lovelace", "--set", "USERPASSWORD=x"],
            "USERNAME=Ada Lovelace (--set USERNAME): a user name is 1..32 lower-case letters",
        ),
        (
            vec!["--set", "USERNAME=root", "--set", "USERPASSWORD=x"],
            "USERNAME=root (--set USERNAME): the machine already has a user root",
        ),
        (
            vec!["--set", "USERNAME=daemon", "--set", "USERPASSWORD=x"],
            "USERNAME=daemon (--set USERNAME): the kit's root filesystem already has a user daemon (uid 1)",
        ),
        (
            vec!["--set", "USERPASSWORDHASH=plain"],
            "USERPASSWORDHASH (--set USERPASSWORDHASH): not a crypt hash",
        ),
    ] {
        let mut args = vec!["--profile", "embedded-dev", "--kit", p(kit())];
        args.extend(extra);
        let o = output_within(install_cmd(&prefix, &args), secs(60));
        let out = text(&o);
        assert_eq!(o.status.code(), Some(FAILED), "{out}");
        assert!(out.contains(said), "`{said}` in: {out}");
        assert!(!prefix.exists(), "nothing is made: {out}");
    }
    // No kit: the profile says how to make one.
    let o = output_within(
        crate::common::cmd(&[
            "install",
            "--unattended",
            "--dry-run",
            "--prefix",
            p(&prefix),
            "--profile",
            "embedded-dev",
            "--set",
            "USERPASSWORD=x",
        ]),
        60,
    );
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("scripts/make-kit embedded-dev DIR"), "{out}");
}
