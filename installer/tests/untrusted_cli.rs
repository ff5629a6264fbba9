//! Issue 19's regressions in the installer: what it reads from disk is untrusted input.
//! Each test is named after the item of the issue it guards and failed before its fix.
//!
//! - item 10: readers (config check|show, answer files, profile files, kit.toml,
//!   install-state.json) refuse what is not a regular file and read at most a stated
//!   limit, so a FIFO or /dev/zero neither blocks nor fills memory.
//!
//! Every command runs under a watchdog ([`common::output_within`]): a reader that waits
//! on a FIFO fails the test instead of hanging it.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{FAILED, cmd, mkfifo, output_within, p, tempdir, text};

/// `colinux-setup ARGS`, failing the test if it is still running after 60 s.
fn run(args: &[&str]) -> Output {
    output_within(cmd(args), 60)
}

/// The exit code is `code` and the output says every one of `needles`.
fn says(o: &Output, code: i32, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    for n in needles {
        assert!(t.contains(n), "expected `{n}` in:\n{t}");
    }
}

/// A text file of `bytes` bytes (one `x` a line), to go over a reader's limit.
fn big_text(path: &Path, bytes: usize) {
    fs::write(path, "x\n".repeat(bytes / 2 + 1)).expect("write");
}

#[test]
fn issue19_item10_config_check_refuses_devices_fifos_binaries_and_huge_files() {
    let t = tempdir("untrusted-");
    let fifo = t.path().join("fifo.txt");
    mkfifo(&fifo);
    let binary = t.path().join("binary.txt");
    fs::write(&binary, b"\x7fELF\x02\x01\x01\x00\x00\x00kernel=vmlinux\n").expect("write");
    let huge = t.path().join("huge.txt");
    big_text(&huge, (1 << 20) + 2);
    for (file, says_what) in [
        (
            "/dev/zero",
            "cannot read the file: it is a character device, not a regular file",
        ),
        (
            p(&fifo),
            "cannot read the file: it is a FIFO (named pipe), not a regular file",
        ),
        (p(&binary), "not a text file (a NUL byte at offset 7)"),
        (
            p(&huge),
            "cannot read the file: it is larger than 1 MiB (1048576 bytes), the most colinux-setup reads of a config.txt",
        ),
    ] {
        let check = run(&["config", "check", file]);
        says(&check, 1, &[&format!("{file}: error: {says_what}")]);
        says(&run(&["config", "show", file]), FAILED, &[says_what]);
    }
}

#[test]
fn issue19_item10_answer_and_profile_files_must_be_regular_files_of_bounded_size() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    let fifo = t.path().join("answers.toml");
    mkfifo(&fifo);
    let o = run(&[
        "install",
        "--unattended",
        "--dry-run",
        "--answers",
        p(&fifo),
    ]);
    says(
        &o,
        FAILED,
        &[
            "ANSWERFILE",
            "answers.toml is a FIFO (named pipe), not a regular file",
        ],
    );
    let huge = t.path().join("huge.toml");
    big_text(&huge, (1 << 20) + 2);
    let o = run(&[
        "install",
        "--unattended",
        "--dry-run",
        "--answers",
        p(&huge),
    ]);
    says(
        &o,
        FAILED,
        &[
            "huge.toml is larger than 1 MiB (1048576 bytes), the most colinux-setup reads of an answer file",
        ],
    );
    let profile = t.path().join("profile.toml");
    mkfifo(&profile);
    let o = run(&[
        "install",
        "--unattended",
        "--dry-run",
        "--prefix",
        p(&prefix),
        "--profile",
        p(&profile),
    ]);
    says(
        &o,
        FAILED,
        &[
            "PROFILE",
            "profile.toml is a FIFO (named pipe), not a regular file",
        ],
    );
    let o = run(&[
        "install",
        "--unattended",
        "--dry-run",
        "--prefix",
        p(&prefix),
        "--profile",
        p(&huge),
    ]);
    says(&o, FAILED, &["huge.toml is larger than 1 MiB", "a profile"]);
    assert!(!prefix.exists());
}

#[test]
fn issue19_item10_an_install_state_that_is_a_fifo_or_huge_is_refused_by_every_command() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    fs::create_dir_all(&prefix).expect("mkdir");
    let state = prefix.join("install-state.json");
    mkfifo(&state);
    let pre = p(&prefix);
    for args in [
        vec!["status", "--prefix", pre],
        vec!["uninstall", "--prefix", pre],
        vec![
            "install",
            "--unattended",
            "--prefix",
            pre,
            "--set",
            "NOFIRSTBOOT=1",
        ],
    ] {
        says(
            &run(&args),
            FAILED,
            &["install-state.json is a FIFO (named pipe), not a regular file"],
        );
    }
    fs::remove_file(&state).expect("rm");
    big_text(&state, (1 << 20) + 2);
    says(
        &run(&["status", "--prefix", pre]),
        FAILED,
        &["install-state.json is larger than 1 MiB"],
    );
    assert!(state.exists(), "the state is left as it was");
}

#[test]
fn issue19_item10_kit_toml_must_be_a_regular_file_of_at_most_64_mib() {
    let t = tempdir("untrusted-");
    let kit = t.path().join("kit");
    fs::create_dir_all(&kit).expect("mkdir");
    let manifest = kit.join("kit.toml");
    mkfifo(&manifest);
    says(
        &run(&["kit", "verify", p(&kit)]),
        1,
        &["kit.toml is not a regular file"],
    );
    fs::remove_file(&manifest).expect("rm");
    // Sparse: 64 MiB and one byte of holes, read as zeros.
    fs::File::create(&manifest)
        .and_then(|f| f.set_len((64 << 20) + 1))
        .expect("kit.toml");
    says(
        &run(&["kit", "verify", p(&kit)]),
        1,
        &["kit.toml is larger than 64 MiB"],
    );
}
