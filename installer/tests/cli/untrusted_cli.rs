//! Issue 19's regressions in the installer: what it reads from disk is untrusted input.
//! Each test is named after the item of the issue it guards and failed before its fix.
//!
//! - item 1: install-state.json may name any file; uninstall removes only a plain name
//!   in the install folder whose file is still what the install recorded (size and
//!   digest; an image: kind, size and UUID), and `status` reports the rest;
//! - item 8: what the install makes has fixed modes under any umask (0644 for what
//!   others read, 0600 for the journal and the images, 0755 for the folders it makes);
//! - item 9: a killed run's temporaries go with the next run; a file that is not an
//!   image of its kind is refused, not "kept"; `--dry-run` plans and refuses what the
//!   install does (kept images, a damaged state, a size too small for its content);
//! - item 6: a profile's strings cannot break the guest's files (control characters,
//!   whitespace in fstab fields, quotes in rcS), its image names cannot be the
//!   machine's own files, its users and uids are unique, and a size that would wrap
//!   around is refused by the dry run and the install alike;
//! - item 10: readers (config check|show, answer files, profile files, kit.toml,
//!   install-state.json) refuse what is not a regular file and read at most a stated
//!   limit, so a FIFO or /dev/zero neither blocks nor fills memory.
//!
//! Every command runs under a watchdog ([`common::output_within`]): a reader that waits
//! on a FIFO fails the test instead of hanging it.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{FAILED, SMALL, cmd, mkfifo, output_within, p, status_json, tempdir, text};
use serde_json::{Value, json};

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

/// `install --unattended --prefix PREFIX` with the small sizes and no first boot.
fn install(prefix: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["install", "--unattended", "--prefix", p(prefix)];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    run(&args)
}

fn read_state(prefix: &Path) -> Value {
    serde_json::from_slice(&fs::read(prefix.join("install-state.json")).expect("state"))
        .expect("json")
}

fn write_state(prefix: &Path, v: &Value) {
    fs::write(
        prefix.join("install-state.json"),
        serde_json::to_vec_pretty(v).expect("json"),
    )
    .expect("write state");
}

/// A record of install-state.json for `file`, made by the install, with a digest that
/// the file itself has (so only its place can make an uninstall refuse it).
fn record_of(file: &str, path: &Path, role: &str) -> Value {
    let bytes = fs::read(path).expect("read");
    let digest = common::sha256(path);
    json!({"file": file, "role": role, "bytes": bytes.len(), "digest": format!("sha256:{digest}"), "origin": "install"})
}

#[test]
fn issue19_item1_uninstall_removes_no_file_the_state_names_outside_the_folder() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    says(&install(&prefix, &[]), 0, &[]);
    let victim = t.path().join("victim.txt");
    fs::write(&victim, "not the machine's\n").expect("write");
    let abs = t.path().join("absolute.txt");
    fs::write(&abs, "not the machine's either\n").expect("write");
    // A folder inside the prefix that is a symbolic link to the parent folder.
    #[cfg(unix)]
    std::os::unix::fs::symlink(t.path(), prefix.join("link")).expect("symlink");
    let mut st = read_state(&prefix);
    let files = st["files"].as_array_mut().expect("files");
    files.push(record_of("../victim.txt", &victim, "config"));
    files.push(record_of(p(&abs), &abs, "kernel"));
    files.push(record_of("link/victim.txt", &victim, "home"));
    write_state(&prefix, &st);

    // status names each, and a machine whose state names files outside is not "fine".
    let o = run(&["status", "--prefix", p(&prefix)]);
    says(
        &o,
        1,
        &[
            "problem: install-state.json names the file `../victim.txt`",
            &format!("problem: install-state.json names the file `{}`", p(&abs)),
            "problem: install-state.json names the file `link/victim.txt`",
        ],
    );
    let v = status_json(&prefix);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(3), "{v}");

    for purge in [false, true] {
        let mut args = vec!["uninstall", "--prefix", p(&prefix)];
        if purge {
            args.push("--purge");
            says(&install(&prefix, &[]), 0, &[]);
            let mut st = read_state(&prefix);
            st["files"].as_array_mut().expect("files").push(record_of(
                "../victim.txt",
                &victim,
                "home",
            ));
            write_state(&prefix, &st);
        }
        let o = run(&args);
        says(
            &o,
            0,
            &["install-state.json names the file `../victim.txt`, which is a path"],
        );
        assert_eq!(
            fs::read_to_string(&victim).expect("victim is still there"),
            "not the machine's\n"
        );
        assert!(abs.exists(), "the absolute path was removed");
    }
    assert!(!prefix.join("root.img").exists(), "--purge took the images");
}

#[test]
fn issue19_item1_uninstall_keeps_what_changed_since_the_install_and_says_so() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    says(&install(&prefix, &[]), 0, &[]);
    // The user's own file in the folder, named by a forged record with a wrong digest.
    let notes = prefix.join("notes.txt");
    fs::write(&notes, "my notes\n").expect("write");
    let mut st = read_state(&prefix);
    let mut forged = record_of("notes.txt", &notes, "kernel");
    forged["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
    st["files"].as_array_mut().expect("files").push(forged);
    write_state(&prefix, &st);
    // The user edited config.txt; swap.img was replaced by another swap area of the
    // same size; the guest wrote into home.img (its digest changes, its UUID does not).
    let config = prefix.join("config.txt");
    let mut edited = fs::read_to_string(&config).expect("config");
    edited.push_str("# my own note\n");
    fs::write(&config, &edited).expect("edit");
    let swap = prefix.join("swap.img");
    fs::remove_file(&swap).expect("rm swap");
    says(
        &run(&[
            "images",
            "swap",
            p(&swap),
            "--size",
            "64M",
            "--label",
            "other",
        ]),
        0,
        &[],
    );
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut home = fs::OpenOptions::new()
            .write(true)
            .open(prefix.join("home.img"))
            .expect("open home");
        home.seek(SeekFrom::Start(20 << 20)).expect("seek");
        home.write_all(&[0xaa; 4096]).expect("write");
    }

    let o = run(&["uninstall", "--purge", "--prefix", p(&prefix)]);
    says(
        &o,
        0,
        &[
            "notes.txt changed since the install; it is not what the install made, so it was kept",
            "config.txt changed since the install",
            "swap.img is another image (UUID",
        ],
    );
    assert_eq!(fs::read_to_string(&notes).expect("notes"), "my notes\n");
    assert_eq!(fs::read_to_string(&config).expect("config"), edited);
    assert!(swap.exists(), "another swap area was removed");
    assert!(
        !prefix.join("home.img").exists(),
        "the guest's writes kept home.img"
    );
    assert!(!prefix.join("root.img").exists());
    assert!(!prefix.join("install-state.json").exists());
}

#[test]
fn issue19_item1_uninstall_removes_no_service_or_putty_session_the_install_did_not_make() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    let host = t.path().join("host.json");
    let puttydir = t.path().join("putty");
    let sessions = puttydir.join("sessions");
    fs::create_dir_all(&sessions).expect("mkdir");
    let other_session = sessions.join("work");
    fs::write(&other_session, "HostName=work.example\nPortNumber=22\n").expect("write");
    let mut args = vec![
        "install",
        "--unattended",
        "--monitor",
        "colinux",
        "--prefix",
        p(&prefix),
    ];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&["--set", "SERVICE=1", "--set", "SERVICENAME=vm1"]);
    let mut c = cmd(&args);
    c.env("COLINUX_SETUP_TEST_SERVICE_HOST", &host);
    says(&output_within(c, 120), 0, &[]);
    // Another service on the host, with its own command line.
    let mut h: Value = serde_json::from_slice(&fs::read(&host).expect("host")).expect("json");
    let mut other = h["services"]["vm1"].clone();
    other["spec"]["name"] = json!("Other");
    other["spec"]["command_line"] = json!("C:\\Other\\other.exe");
    h["services"]["Other"] = other;
    fs::write(&host, serde_json::to_vec_pretty(&h).expect("json")).expect("write host");
    // The state now claims the install made that service and the user's PuTTY session.
    let mut st = read_state(&prefix);
    st["service"]["name"] = json!("Other");
    st["putty"] = json!({"name": "work", "store": p(&sessions), "host": "localhost", "port": 2222, "created": true});
    write_state(&prefix, &st);

    let mut c = cmd(&["uninstall", "--prefix", p(&prefix)]);
    c.env("COLINUX_SETUP_TEST_SERVICE_HOST", &host)
        .env("PUTTYDIR", &puttydir);
    let o = output_within(c, 60);
    says(
        &o,
        0,
        &[
            "the service Other runs `C:\\Other\\other.exe`, not the command line the install recorded",
            "the PuTTY session \"work\"",
            "no longer connects to localhost port 2222 as the install saved it; it was kept",
        ],
    );
    let h: Value = serde_json::from_slice(&fs::read(&host).expect("host")).expect("json");
    assert!(
        h["services"].get("Other").is_some(),
        "the other service was removed: {h}"
    );
    assert!(
        other_session.exists(),
        "the user's PuTTY session was removed"
    );
}

/// `colinux-setup ARGS` under umask 000 (through sh, which sets it and execs the binary,
/// so the process is the binary itself).
fn umask_000(args: &[&str]) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(common::BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .env_remove("COLINUX_SETUP_TEST_PAUSE_AT")
        .env_remove("COLINUX_SETUP_TEST_FAIL_AT")
        .env_remove("COLINUX_SETUP_TEST_FIRST_BOOT");
    sh
}

/// Starts `c` (an install) with the test hook that stops it at `step`, and returns once
/// it is there.
fn paused_at(mut c: std::process::Command, step: &str) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = c
        .env("COLINUX_SETUP_TEST_PAUSE_AT", step)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let marker = format!("test hook: paused at {step}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&marker) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!("the install never reached step {step}");
    }
    child
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[cfg(unix)]
#[test]
fn issue19_item8_modes_do_not_follow_the_umask() {
    let t = tempdir("untrusted-");
    let top = t.path().join("a");
    let prefix = top.join("b/m");
    let answers = t.path().join("answers.toml");
    let mut args = vec!["install", "--unattended", "--prefix", p(&prefix)];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&["--save-answers", p(&answers)]);

    // While an install is under way: its journal is private.
    let mut child = paused_at(umask_000(&args), "swap");
    let journal = mode(&prefix.join(".colinux-setup-journal.json"));
    assert_eq!(journal, 0o600, "the journal is {journal:o}");
    child.kill().expect("kill");
    let _ = child.wait();

    says(&output_within(umask_000(&args), 120), 0, &[]);
    for (path, want) in [
        (top.clone(), 0o755),
        (top.join("b"), 0o755),
        (prefix.clone(), 0o755),
        (prefix.join("logs"), 0o755),
        (prefix.join("config.txt"), 0o644),
        (prefix.join("install-state.json"), 0o644),
        (prefix.join(".colinux-setup.lock"), 0o644),
        (prefix.join("root.img"), 0o600),
        (prefix.join("home.img"), 0o600),
        (prefix.join("swap.img"), 0o600),
        (answers.clone(), 0o644),
    ] {
        assert_eq!(mode(&path), want, "{}: {:o}", path.display(), mode(&path));
    }
    let logs: Vec<_> = fs::read_dir(prefix.join("logs"))
        .expect("logs")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!logs.is_empty());
    for log in logs {
        assert_eq!(mode(&log), 0o644, "{}", log.display());
    }

    // A kit's kit.toml, written by `kit init`.
    let kit = t.path().join("kit");
    fs::create_dir_all(&kit).expect("mkdir");
    fs::write(kit.join("linux.uml"), b"kernel").expect("write");
    says(
        &output_within(umask_000(&["kit", "init", p(&kit)]), 60),
        0,
        &[],
    );
    assert_eq!(mode(&kit.join("kit.toml")), 0o644);

    // The log of a run that fails before the install folder exists, in the temporary
    // folder others share.
    let o = output_within(
        umask_000(&[
            "install",
            "--unattended",
            "--prefix",
            p(&t.path().join("n")),
            "--set",
            "RAMMB=1",
        ]),
        60,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let log = err
        .lines()
        .find_map(|l| l.strip_prefix("colinux-setup: the log of this run is "))
        .expect("the log's path");
    assert_eq!(mode(Path::new(log)), 0o644, "{log}");
    let _ = fs::remove_file(log);
}

#[test]
fn issue19_item9_temporaries_of_a_killed_run_are_removed_by_the_next_run() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    says(&install(&prefix, &[]), 0, &[]);
    // What a SIGKILL while the journal, the state or config.txt was written leaves.
    let leftovers = [
        "..colinux-setup-journal.json.99999.tmp",
        ".install-state.json.4242.tmp",
        ".config.txt.4242.tmp",
    ];
    let plant = || {
        for l in leftovers {
            fs::write(prefix.join(l), "{\"half\": ").expect("write");
        }
    };
    plant();
    says(&install(&prefix, &[]), 0, &[]);
    for l in leftovers {
        assert!(!prefix.join(l).exists(), "{l} survived the re-install");
    }
    plant();
    says(
        &run(&["uninstall", "--purge", "--prefix", p(&prefix)]),
        0,
        &[],
    );
    assert!(
        !prefix.exists(),
        "uninstall --purge left {:?}",
        fs::read_dir(&prefix).map(|d| d.count())
    );
}

#[test]
fn issue19_item9_a_file_that_is_not_an_image_of_its_kind_is_refused_not_kept() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    fs::create_dir_all(&prefix).expect("mkdir");
    let root = prefix.join("root.img");
    fs::write(&root, "hello world").expect("write");
    for dry in [true, false] {
        let o = install(&prefix, if dry { &["--dry-run"] } else { &[] });
        says(
            &o,
            FAILED,
            &[
                "root.img exists (11 bytes) and is not an ext2/ext3/ext4 image",
                "move it away (or remove it) and run the install again",
            ],
        );
    }
    assert_eq!(fs::read_to_string(&root).expect("root.img"), "hello world");
    let left: Vec<String> = fs::read_dir(&prefix)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "logs")
        .collect();
    assert_eq!(left, ["root.img"], "the install made something");
    // A swap area where the home image belongs.
    fs::remove_file(&root).expect("rm");
    says(
        &run(&[
            "images",
            "swap",
            p(&prefix.join("home.img")),
            "--size",
            "32M",
        ]),
        0,
        &[],
    );
    says(
        &install(&prefix, &[]),
        FAILED,
        &["home.img exists and is a swap area, not an ext2/ext3/ext4 image"],
    );

    // Made by the install, then replaced by text: status does not call it installed.
    fs::remove_file(prefix.join("home.img")).expect("rm");
    says(&install(&prefix, &[]), 0, &[]);
    fs::write(&root, "hello world").expect("write");
    says(
        &run(&["status", "--prefix", p(&prefix)]),
        1,
        &["problem: root.img is 11 bytes, the install recorded"],
    );
}

#[test]
fn issue19_item9_dry_run_plans_and_refuses_what_the_install_does() {
    let t = tempdir("untrusted-");
    // A home image with the user's data: the dry run says it is kept, as the install does.
    let prefix = t.path().join("m");
    fs::create_dir_all(&prefix).expect("mkdir");
    let home = prefix.join("home.img");
    says(
        &run(&["images", "build", p(&home), "--fs", "ext3", "--size", "16M"]),
        0,
        &[],
    );
    let before = common::sha256(&home);
    let o = install(&prefix, &["--dry-run", "--json"]);
    says(&o, 0, &[]);
    let plan: Value = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "plan")
        .expect("a plan event");
    let files = plan["files"].as_array().expect("files");
    let action = |f: &str| {
        files
            .iter()
            .find(|a| a["file"] == f)
            .map(|a| (a["action"].clone(), a["found"].clone()))
    };
    assert_eq!(
        action("root.img"),
        Some((json!("build"), Value::Null)),
        "{plan}"
    );
    assert_eq!(
        action("home.img"),
        Some((
            json!("keep"),
            json!("16 MB ext3, not made by this install: kept with its data")
        )),
        "{plan}"
    );
    says(
        &install(&prefix, &["--dry-run"]),
        0,
        &["home.img: 16 MB ext3, not made by this install: kept with its data"],
    );
    says(&install(&prefix, &[]), 0, &["kept home.img"]);
    assert_eq!(common::sha256(&home), before);

    // A damaged install-state.json: both refuse it.
    fs::write(prefix.join("install-state.json"), "{bad").expect("write");
    for dry in [true, false] {
        says(
            &install(&prefix, if dry { &["--dry-run"] } else { &[] }),
            FAILED,
            &["install-state.json is damaged; move it away and run the install again"],
        );
    }

    // An install killed after its images were built: the dry run with the same answers
    // keeps them, as the install that continues does; with other answers they are
    // built again, after the install rolls the interrupted one back.
    let killed = t.path().join("killed");
    let mut args = vec!["install", "--unattended", "--prefix", p(&killed)];
    args.extend_from_slice(SMALL);
    let mut child = paused_at(cmd(&args), "swap");
    child.kill().expect("kill");
    let _ = child.wait();
    let plan_files = |extra: &[&str]| -> Vec<Value> {
        let o = install(&killed, &[&["--dry-run", "--json"], extra].concat());
        says(&o, 0, &[]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "plan")
            .and_then(|v| v["files"].as_array().cloned())
            .expect("files")
    };
    let same = plan_files(&[]);
    assert_eq!(same[0]["file"], "root.img");
    assert_eq!(same[0]["action"], "keep", "{same:?}");
    assert!(
        same[0]["found"]
            .as_str()
            .is_some_and(|f| f.ends_with("built by the interrupted install of these answers")),
        "{same:?}"
    );
    let other = plan_files(&["--set", "RAMMB=136"]);
    assert_eq!(other[0]["action"], "build", "{other:?}");
    assert_eq!(
        other[0]["found"],
        "made by an interrupted install of other answers, which is rolled back first"
    );

    // A size too small for the image's content: both refuse it before any change.
    let fresh = t.path().join("fresh");
    for dry in [true, false] {
        let mut args = vec![];
        if dry {
            args.push("--dry-run");
        }
        args.extend(["--set", "HOMEMB=4"]);
        says(
            &install(&fresh, &args),
            FAILED,
            &[
                "HOMEMB=4: home.img is too small for what goes into it",
                "give HOMEMB=8 or more",
            ],
        );
        assert!(!fresh.exists(), "the install made {}", fresh.display());
    }
}

/// The shipped minimal profile with `from` replaced by `to`, written as a profile file.
fn profile_with(dir: &Path, name: &str, from: &str, to: &str) -> String {
    let shipped = include_str!("../../../profiles/minimal.toml");
    assert!(shipped.contains(from), "{from}");
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, shipped.replacen(from, to, 1)).expect("write profile");
    p(&path).to_owned()
}

#[test]
fn issue19_item6_profiles_that_would_break_the_machine_are_refused_by_dry_run_and_install() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    let home_file = "file = \"home.img\"";
    let home_mount = "mount = \"/home\"";
    let root_user = "[[user]]\nname = \"root\"\nuid = 0\ngid = 0\nhome = \"/root\"\n";
    let cases = [
        (
            "own-file",
            home_file,
            "file = \"config.txt\"",
            "`config.txt`: an image cannot be named after the machine's own config.txt",
        ),
        (
            "own-state",
            home_file,
            "file = \"Install-State.JSON\"",
            "cannot be named after the machine's own",
        ),
        (
            "same-name",
            home_file,
            "file = \"ROOT.IMG\"",
            "two images have the same file name (letter case aside)",
        ),
        (
            "device",
            home_file,
            "file = \"nul.img\"",
            "nul is a device on Windows",
        ),
        (
            "newline",
            home_mount,
            "mount = \"/home\\n/dev/ubda /mnt ext4 defaults 0 0\"",
            "image[1].mount: has the control character U+000A",
        ),
        (
            "space",
            home_mount,
            "mount = \"/my home\"",
            "image[1].mount: `/my home` has whitespace",
        ),
        (
            "two-roots",
            root_user,
            &format!("{root_user}\n{root_user}"),
            "user[1].name: `root` is given twice",
        ),
        (
            "two-uids",
            root_user,
            &format!(
                "{root_user}\n[[user]]\nname = \"toor\"\nuid = 0\ngid = 0\nhome = \"/root\"\n"
            ),
            "user[1].uid: 0 is also the uid of `root`",
        ),
        (
            "huge",
            "size_mb = 128",
            "size_mb = 18446744073709551615",
            "image[1].size_mb: 18446744073709551615 MB is larger than the largest image colinux-setup makes (4294967296 MB, 4 PiB)",
        ),
        (
            "target",
            "target = \"/home\"",
            "target = \"/home init=/bin/sh\"",
            "first_boot.target: `/home init=/bin/sh` has whitespace",
        ),
    ];
    for (name, from, to, error) in cases {
        let profile = profile_with(t.path(), name, from, to);
        for dry in [true, false] {
            let mut extra = vec!["--profile", profile.as_str()];
            if dry {
                extra.push("--dry-run");
            }
            says(&install(&prefix, &extra), FAILED, &[error]);
            assert!(!prefix.exists(), "{name}: the install made {}", p(&prefix));
        }
    }
    // An answer that would wrap around (2^44 MB is 2^64 bytes, i.e. 0).
    for dry in [true, false] {
        let mut extra = vec!["--set", "HOMEMB=17592186044416"];
        if dry {
            extra.push("--dry-run");
        }
        says(
            &install(&prefix, &extra),
            FAILED,
            &[
                "HOMEMB=17592186044416 (--set HOMEMB): 17592186044416 MB is larger than the largest image",
            ],
        );
        assert!(!prefix.exists());
    }
}

#[test]
fn issue19_item6_a_quote_in_a_home_folder_stays_a_name_in_the_guests_rcs() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    let profile = profile_with(
        t.path(),
        "quote",
        "home = \"/root\"\n",
        "home = \"/root\"\n\n[[user]]\nname = \"x\"\nuid = 1000\ngid = 1000\nhome = \"/home/x'; reboot; '\"\n",
    );
    says(&install(&prefix, &["--profile", &profile]), 0, &[]);
    let rcs = common::debugfs(&prefix.join("root.img"), "cat /etc/init.d/rcS");
    assert!(
        rcs.contains(
            r"mkdir -p '/home/x'\''; reboot; '\''' && chown 1000:1000 '/home/x'\''; reboot; '\'''"
        ),
        "{rcs}"
    );
    assert!(!rcs.contains("'/home/x'; reboot"), "{rcs}");
}

#[test]
fn issue19_item1_a_rebuild_writes_only_in_the_machines_folder_whatever_the_state_says() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    says(&install(&prefix, &[]), 0, &[]);
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("mkdir");
    fs::write(elsewhere.join("root.img"), "the user's\n").expect("write");
    let mut st = read_state(&prefix);
    st["answers"]["INSTALLDIR"] = json!(p(&elsewhere));
    write_state(&prefix, &st);
    says(
        &run(&["images", "rebuild", "--prefix", p(&prefix), "root"]),
        0,
        &[],
    );
    assert_eq!(
        fs::read_to_string(elsewhere.join("root.img")).expect("root.img"),
        "the user's\n"
    );
    assert_eq!(fs::read_dir(&elsewhere).expect("ls").count(), 1);
    e2e_tests::e2fsck_clean(&prefix.join("root.img")).expect("the rebuilt root");
}

/// A network namespace for the TAP test, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("untrusted-{}", std::process::id());
        let st = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add (the test needs root and iproute2)");
        assert!(st.success(), "ip netns add {name}");
        Netns(name)
    }

    fn exec(&self, program: &str, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.0, program])
            .args(args)
            .stdin(std::process::Stdio::null())
            .env_remove("SUDO_UID");
        c
    }

    fn ok(&self, args: &[&str]) {
        let o = self.exec("ip", args).output().expect("ip");
        assert!(o.status.success(), "ip {args:?}: {}", text(&o));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

#[test]
fn issue19_item1_uninstall_removes_no_tap_adapter_the_install_did_not_make() {
    let t = tempdir("untrusted-");
    let prefix = t.path().join("m");
    says(&install(&prefix, &[]), 0, &[]);
    // Someone else's TAP adapter, with its own address, in a namespace of the test.
    let ns = Netns::new();
    ns.ok(&["tuntap", "add", "dev", "othertap", "mode", "tap"]);
    ns.ok(&["addr", "add", "10.99.99.1/24", "dev", "othertap"]);
    let mut st = read_state(&prefix);
    st["tap"] = json!({"name": "othertap", "subnet": "10.12.12.0/24", "state": "created, 10.12.12.1 up", "created": true, "host_ip": "10.12.12.1", "guest_ip": "10.12.12.2"});
    write_state(&prefix, &st);
    let o = output_within(
        ns.exec(common::BIN, &["uninstall", "--prefix", p(&prefix)]),
        60,
    );
    says(
        &o,
        0,
        &[
            "the TAP adapter othertap has the address 10.99.99.1/24, not 10.12.12.1 as the install made it; it was kept",
        ],
    );
    ns.ok(&["link", "show", "othertap"]);
}
