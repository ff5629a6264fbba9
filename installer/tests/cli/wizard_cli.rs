//! The interactive wizard, driven in a real pseudo-terminal (expectrl) like a person
//! would: arrow keys, Enter, Esc, typed values and Ctrl-C. What the terminal shows is
//! rendered by a terminal emulator (the vt100 crate), so assertions read the screen a
//! person would see, and the screens it captures are those of a real run.
//!
//! - every page in the seed manual's order, Back from each page before the summary, an
//!   invalid folder (a space, refused for coLinux) and an invalid RAM value explained and
//!   asked again, changed defaults, answers saved on the summary, the install; then the
//!   saved answers replayed with `--unattended` give a byte-identical config.txt and
//!   byte-identical images;
//! - Ctrl-C on the sizes page, and Ctrl-C while the root image is being written (the
//!   test-only hook `COLINUX_SETUP_TEST_PAUSE_AT=image:root:writing`), ask once, then
//!   exit 1602 (66 on POSIX) leaving nothing of the run in or above the install folder.
//! - an existing install in the chosen folder: repair (as recorded), keep the images and
//!   choose the rest again, upgrade; its images stay byte for byte;
//! - the wizard's own answer keys (SLIRP, SERIAL, STARTMENU, TASKS) refuse bad values with
//!   the reason, through the same plan as `--set`;
//! - the default profile's first boot under its bar, on the monitor this host runs guests
//!   on (`common::host`: User-mode Linux, else QEMU); the default profile's machines are
//!   installed for that monitor, and waits are scaled for it.
//!
//! - the Windows-only pages (start-menu folder, extra tasks) of the i686 exe that
//!   setup-x86.msi carries, in a 32-bit Wine prefix (Windows 7 x86): what they choose is
//!   what the install records, and the "service" task makes the machine's service.
//!
//! With `COLINUX_SETUP_WRITE_SCREENS=1` the captured screens are written to
//! docs/wizard-screens.md and docs/wizard-screens-windows.md (scripts/wizard-screens
//! does this).

use crate::common;

use common::wine::{WinArch, Wine};
use common::{CANCELLED, cmd, host, host_args, p, secs, sha256, tempdir, text};
use expectrl::Expect;
use expectrl::process::unix::WaitStatus;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const UP: &str = "\x1b[A";
const DOWN: &str = "\x1b[B";
const ENTER: &str = "\r";
const ESC: &str = "\x1b";
const CTRL_C: &str = "\x03";
const COLS: u16 = 100;
const ROWS: u16 = 64;

/// The wizard in a pseudo-terminal, with what it has drawn so far.
struct Tty {
    s: expectrl::session::OsSession,
    vt: vt100::Parser,
    raw: Vec<u8>,
    shots: Vec<(String, String)>,
    eof: bool,
}

impl Tty {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Tty {
        let mut c = Command::new(common::BIN);
        c.args(args).envs(host().env());
        Tty::spawn_command(c, env)
    }

    /// `c` (colinux-setup, or Wine running the Windows exe) in a pseudo-terminal of
    /// COLS×ROWS, with the test hooks of the caller's environment cleared and then `env`
    /// set (so a test's own hook reaches the program).
    fn spawn_command(c: Command, env: &[(&str, &str)]) -> Tty {
        Tty::spawn_sized(c, env, COLS, ROWS)
    }

    /// [`Tty::spawn_command`] in a terminal of `cols`×`rows`.
    fn spawn_sized(mut c: Command, env: &[(&str, &str)], cols: u16, rows: u16) -> Tty {
        // The list of installed machines an install adds to is the tests', never the
        // user's.
        c.env(
            "XDG_STATE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("state-home"),
        )
        .env("TERM", "xterm-256color")
        .env("COLUMNS", cols.to_string())
        .env("LINES", rows.to_string())
        .env_remove("COLINUX_SETUP_TEST_PAUSE_AT")
        .env_remove("COLINUX_SETUP_TEST_FAIL_AT")
        .env_remove("COLINUX_SETUP_TEST_FIRST_BOOT");
        for (k, v) in env {
            c.env(k, v);
        }
        let mut s = expectrl::session::OsSession::spawn(c).expect("spawn in a pty");
        s.get_process_mut()
            .set_window_size(cols, rows)
            .expect("window size");
        Tty {
            s,
            vt: vt100::Parser::new(rows, cols, 0),
            raw: Vec::new(),
            shots: Vec::new(),
            eof: false,
        }
    }

    /// Reads what is there without waiting.
    fn pump(&mut self) {
        let mut buf = [0u8; 8192];
        loop {
            match self.s.try_read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => {
                    self.vt.process(&buf[..n]);
                    self.raw.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // EIO: the child closed the terminal.
                    self.eof = true;
                    return;
                }
            }
        }
    }

    fn screen(&self) -> String {
        self.vt.screen().contents()
    }

    /// Waits until the screen shows `needle` (as it is, or broken at spaces by the
    /// wizard to fit the terminal).
    fn wait_for(&mut self, needle: &str) {
        let flat_needle = flat(needle);
        self.wait_until(needle, |t| {
            let screen = t.screen();
            screen.contains(needle) || flat(&screen).contains(&flat_needle)
        });
    }

    /// Waits until the raw output holds `needle` (text that is drawn over at once).
    fn wait_raw(&mut self, needle: &str) {
        self.wait_until(needle, |t| String::from_utf8_lossy(&t.raw).contains(needle));
    }

    fn wait_until(&mut self, what: &str, done: impl Fn(&Tty) -> bool) {
        let start = Instant::now();
        loop {
            self.pump();
            if done(self) {
                // Let the page finish drawing before keys are sent.
                std::thread::sleep(Duration::from_millis(150));
                self.pump();
                return;
            }
            if self.eof || start.elapsed() > Duration::from_secs(secs(90)) {
                panic!(
                    "waited for `{what}` (eof {}); the screen:\n{}\n--- raw tail:\n{}",
                    self.eof,
                    self.screen(),
                    String::from_utf8_lossy(&self.raw[self.raw.len().saturating_sub(3000)..])
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn keys(&mut self, k: &str) {
        self.s.send(k).expect("send keys");
        // Esc alone must not run into the next key (it would read as an escape sequence).
        std::thread::sleep(Duration::from_millis(if k == ESC { 300 } else { 60 }));
        self.pump();
    }

    /// Replaces the text of the input field on screen with `value` and presses Enter.
    fn type_value(&mut self, value: &str) {
        self.keys(&"\x7f".repeat(120));
        self.keys(value);
        self.keys(ENTER);
    }

    /// Keeps the current screen as a capture named `name`.
    fn shot(&mut self, name: &str) {
        // Row by row: a full-width row is not joined to the next one.
        let text: Vec<String> = self
            .vt
            .screen()
            .rows(0, COLS)
            .map(|l| l.trim_end().to_owned())
            .collect();
        let trimmed = text.join("\n").trim_end().to_owned();
        self.shots.push((name.to_owned(), trimmed));
    }

    /// From the welcome page to the summary with every default (the license accepted).
    fn defaults_to_the_summary(&mut self) {
        self.wait_for("Welcome to the coLinux setup");
        self.keys(ENTER);
        self.wait_for("License agreement");
        self.keys(DOWN);
        self.keys(ENTER);
        for t in [
            "Install folder:",
            "RAM and image sizes",
            "Network and serial port",
        ] {
            self.wait_for(t);
            self.keys(ENTER);
        }
        self.wait_for("Ready to install");
    }

    /// Reads to the end and returns the exit code.
    fn exit_code(&mut self) -> i32 {
        let start = Instant::now();
        while !self.eof && start.elapsed() < Duration::from_secs(secs(120)) {
            self.pump();
            std::thread::sleep(Duration::from_millis(20));
        }
        match self.s.get_process().wait().expect("wait") {
            WaitStatus::Exited(_, code) => code,
            other => panic!(
                "the wizard did not exit normally: {other:?}\n{}",
                self.screen()
            ),
        }
    }
}

/// Everything in `dir`, recursively, as sorted relative paths.
/// The screen's words one space apart: a text the wizard broke at a space (to fit the
/// terminal) reads as one line again.
fn flat(screen: &str) -> String {
    screen.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = e.path();
            out.push(
                path.strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

fn write_screens(shots: &[(String, String)]) {
    if std::env::var_os("COLINUX_SETUP_WRITE_SCREENS").is_none() {
        return;
    }
    let mut md = String::from(
        "# The install wizard, page by page\n\n\
         Text captures of a real run: `installer/tests/cli/wizard_cli.rs` drives `colinux-setup`\n\
         in a pseudo-terminal (100×64) and renders what it draws with a terminal emulator\n\
         (the vt100 crate); `scripts/wizard-screens` regenerates this page. Colours are not\n\
         shown. The run installs the Blackfin kit's `bfin-uclinux` profile with smaller sizes into a\n\
         temporary folder; then the default profile is installed with its first boot (in\n\
         User-mode Linux where it runs guests, else QEMU), and a last run is cancelled with\n\
         Ctrl-C while it writes the root image.\n",
    );
    for (name, screen) in shots {
        md.push_str(&format!("\n## {name}\n\n```text\n{screen}\n```\n"));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/wizard-screens.md");
    std::fs::create_dir_all(path.parent().expect("docs")).expect("docs folder");
    std::fs::write(&path, md).expect("write docs/wizard-screens.md");
}

/// The walk through every page, shared by the capture run.
fn walk_and_install(tmp: &Path, tty: &mut Tty, shots_out: &mut Vec<(String, String)>) -> PathBuf {
    let prefix = tmp.join("machine");
    let answers = tmp.join("answers.toml");

    // Welcome: change the profile to the seed's kit.
    tty.wait_for("Welcome to the coLinux setup");
    tty.wait_for("Profile: minimal");
    tty.shot("Welcome");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("bfin-uclinux");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("Profile: bfin-uclinux");
    tty.wait_for("Monitor: colinux");
    tty.keys(ENTER);

    // License: not accepting keeps the page; accepting goes on.
    tty.wait_for("License agreement");
    tty.wait_for("GNU GENERAL PUBLIC LICENSE");
    tty.shot("License");
    tty.keys(ENTER);
    tty.wait_for("cannot be installed without accepting the license");
    tty.keys(DOWN);
    tty.keys(ENTER);

    // The kernel-level component warning (coLinux).
    tty.wait_for("a kernel-level component is installed");
    tty.wait_for("can destabilize or crash your system");
    tty.shot("Kernel-level component (coLinux only)");
    tty.keys(ENTER);

    // Install folder: a path with a space is refused with the reason, then corrected.
    tty.wait_for("Install folder:");
    tty.wait_for("Host check:");
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("Install folder ›");
    tty.type_value(p(&tmp.join("with space").join("machine")));
    tty.wait_for("contains a space; coLinux cannot use an install path with spaces");
    tty.shot("Install folder: a path with a space is refused");
    tty.type_value(p(&prefix));
    tty.wait_for(&format!("Install folder: {}", prefix.display()));
    tty.wait_for("the folder can be used");
    tty.shot("Install folder");
    tty.keys(ENTER);

    // Sizes: an impossible RAM value is explained and asked again; smaller images.
    tty.wait_for("RAM and image sizes");
    tty.wait_for("Guest RAM:");
    tty.shot("RAM and image sizes");
    for _ in 0..4 {
        tty.keys(UP);
    }
    tty.keys(ENTER);
    tty.wait_for("Guest RAM in MB ›");
    tty.type_value("99999");
    tty.wait_for("RAMMB=99999 (wizard): larger than this host allows");
    tty.shot("RAM and image sizes: an impossible value is explained and asked again");
    tty.type_value("128");
    tty.wait_for("Guest RAM: 128 MB");
    for (value, shown) in [
        ("64", "Root filesystem (root.img): 64 MB"),
        ("32", "/home (home.img): 32 MB"),
        ("300", "Swap (swap.img): 300 MB"),
    ] {
        tty.keys(DOWN);
        tty.keys(ENTER);
        tty.wait_for(" in MB ›");
        tty.type_value(value);
        tty.wait_for(shown);
    }
    tty.wait_for("128 MB for the guest leaves");
    tty.keys(DOWN);
    tty.keys(ENTER);

    // Network: other redirections and a serial port; Esc goes back a page and Next returns.
    tty.wait_for("Network and serial port");
    tty.wait_for("tcp:333:22/tcp:1000:1000/udp:69:69");
    tty.shot("Network and serial port");
    tty.keys(ESC);
    tty.wait_for("RAM and image sizes");
    tty.wait_for("Guest RAM: 128 MB");
    tty.keys(ENTER);
    tty.wait_for("Network and serial port");
    for _ in 0..4 {
        tty.keys(UP);
    }
    tty.keys(ENTER);
    tty.wait_for("Redirections (e.g.");
    tty.type_value("tcp:2222:22/udp:69:69");
    tty.wait_for("Slirp port redirections: tcp:2222:22/udp:69:69");
    for _ in 0..3 {
        tty.keys(DOWN);
    }
    tty.keys(ENTER);
    tty.wait_for("Serial port (e.g. COM1");
    tty.type_value("COM1");
    tty.wait_for("Serial port: COM1");
    tty.keys(DOWN);
    tty.keys(ENTER);

    // Summary; then Back through every page to the welcome page, and Next to here again.
    let titles = [
        "Network and serial port",
        "RAM and image sizes",
        "Install folder",
        "a kernel-level component is installed",
        "License agreement",
        "Welcome to the coLinux setup",
    ];
    tty.wait_for("Ready to install");
    tty.wait_for("serial port:    COM1");
    tty.wait_until("the password on the summary", |t| {
        flat(&t.screen()).contains("password bf533 from the Blackfin coLinux kit manual")
    });
    tty.shot("Summary");
    // The config.txt it will write.
    tty.keys(DOWN);
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("ttys0=COM1");
    tty.shot("Summary: config.txt and /etc/fstab");
    tty.keys(ENTER);
    tty.wait_for("Ready to install");
    tty.keys(UP);
    tty.keys(ENTER);
    for t in titles {
        tty.wait_for(t);
        // Back is the last entry of every page's menu (the welcome page has none).
        if t != titles[titles.len() - 1] {
            tty.keys(ESC);
        }
    }
    tty.keys(ENTER); // welcome: Next
    tty.wait_for("License agreement");
    tty.keys(ENTER); // the license stays accepted: the cursor is on "I accept"
    tty.wait_for("a kernel-level component is installed");
    for t in [
        "Install folder:",
        "RAM and image sizes",
        "Network and serial port",
    ] {
        tty.keys(ENTER);
        tty.wait_for(t);
    }
    tty.wait_for("Serial port: COM1");
    tty.keys(ENTER);
    tty.wait_for("Ready to install");

    // Save the answers, then install.
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("Answer file ›");
    tty.type_value(p(&answers));
    tty.wait_for("Saved the answers to");
    tty.keys(ENTER); // the cursor is back on Install
    tty.wait_for("Log of this install:");
    // Issue 21 item 6: a coLinux machine cannot start on this (Linux) host, so the finish
    // page does not send the user to `boot`; it says where the machine runs and what it
    // lacks, and the password the profile sets, with where it is written.
    let finish = flat(&tty.screen());
    for needle in [
        "It cannot start on this host",
        "32-bit Windows 2000..7",
        "a kit holding the coLinux files",
        "log in as uclinux with the password bf533 from the Blackfin coLinux kit",
    ] {
        assert!(finish.contains(needle), "`{needle}` not in:\n{finish}");
    }
    assert!(
        !finish.contains("colinux-setup boot --prefix"),
        "the finish page sends the user to boot:\n{finish}"
    );
    tty.shot("Progress and finish");
    shots_out.append(&mut tty.shots);
    prefix
}

#[test]
fn every_page_then_the_saved_answers_replay_the_same_install() {
    let tmp = tempdir("wizard-");
    let home = tmp.path().join("home");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&tmpdir).expect("tmp");
    let env = [("HOME", p(&home)), ("TMPDIR", p(&tmpdir))];
    // The wizard opens on the default profile (MONITOR=auto): with the kit of the host's
    // monitor its probe finds one here (where UML cannot run, a kit's QEMU kernel is the
    // only way), before the walk changes to the seed's coLinux profile.
    let kit = host().install_kit();
    let mut tty = Tty::spawn(&["install", "--kit", p(&kit)], &env);
    let mut shots = Vec::new();
    let prefix = walk_and_install(tmp.path(), &mut tty, &mut shots);
    let code = tty.exit_code();
    assert_eq!(code, 0, "{}", tty.screen());
    assert!(
        !tmp.path().join("with space").exists(),
        "the refused folder was made"
    );

    // What the wizard saved is what it installed.
    let answers = tmp.path().join("answers.toml");
    let saved = std::fs::read_to_string(&answers).expect("answer file");
    for line in [
        "PROFILE = \"bfin-uclinux\"",
        "MONITOR = \"colinux\"",
        "RAMMB = 128",
        "ROOTMB = 64",
        "HOMEMB = 32",
        "SWAPMB = 300",
        "SLIRP = \"tcp:2222:22/udp:69:69\"",
        "SERIAL = \"COM1\"",
    ] {
        assert!(
            saved.contains(line),
            "`{line}` not in the answers:\n{saved}"
        );
    }
    let config = std::fs::read(prefix.join("config.txt")).expect("config.txt");
    let config_text = String::from_utf8_lossy(&config).into_owned();
    for needle in ["mem=128", "ttys0=COM1", "tcp:2222:22/udp:69:69"] {
        assert!(
            config_text.contains(needle),
            "`{needle}` not in:\n{config_text}"
        );
    }
    let st = common::status_json(&prefix);
    assert_eq!(st["profile"], "bfin-uclinux", "{st}");

    // The saved answers, unattended, into the same folder (moved aside first): the same
    // config.txt and byte-identical images.
    let first = tmp.path().join("machine.wizard");
    std::fs::rename(&prefix, &first).expect("move the first install aside");
    let o = cmd(&["install", "--unattended", "--answers", p(&answers)])
        .env("HOME", &home)
        .env("TMPDIR", &tmpdir)
        .output()
        .expect("replay");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read(prefix.join("config.txt")).expect("config.txt"),
        config,
        "config.txt differs"
    );
    for img in ["root.img", "home.img", "swap.img"] {
        assert_eq!(
            sha256(&first.join(img)),
            sha256(&prefix.join(img)),
            "{img} differs between the wizard's install and the replay"
        );
    }

    // A first boot (on the host's monitor) under its bar, then a cancel during image
    // writing, complete the screens.
    shots.append(&mut first_boot(&tmp.path().join("first-boot")));
    let (_, mut more) = cancel_while_writing(&tmp.path().join("cancel"));
    shots.append(&mut more);
    write_screens(&shots);
}

/// The default profile with its first boot on the host's monitor: the console's last
/// line stays under the first boot's bar, and the finish page says it is done.
fn first_boot(dir: &Path) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir.join("tmp")).expect("tmp");
    let prefix = dir.join("m");
    let mut tty = Tty::spawn(
        &[
            &["install", "--prefix", p(&prefix)],
            host_args().as_slice(),
            &[
                "--set",
                "RAMMB=128",
                "--set",
                "HOMEMB=32",
                "--set",
                "SWAPMB=96",
            ],
        ]
        .concat(),
        &[("TMPDIR", p(&dir.join("tmp")))],
    );
    tty.defaults_to_the_summary();
    tty.keys(ENTER);
    // A console line of the guest under the first boot's bar.
    tty.wait_until("a console line under the first boot's bar", |t| {
        let rows: Vec<String> = t.vt.screen().rows(0, COLS).collect();
        rows.iter()
            .position(|r| r.starts_with("first boot in "))
            .and_then(|i| rows.get(i + 1))
            .is_some_and(|next| next.starts_with("    ") && next.trim().len() > 3)
    });
    let title = if host().is_uml() {
        "User-mode Linux"
    } else {
        "QEMU"
    };
    tty.shot(&format!(
        "Progress: the first boot in {title}, its console's last line under its bar"
    ));
    tty.wait_for("Log of this install:");
    tty.wait_for("First boot: done.");
    let code = tty.exit_code();
    assert_eq!(code, 0, "{}", tty.screen());
    assert_eq!(
        common::status_json(&prefix)["first_boot"],
        "done",
        "{}",
        tty.screen()
    );
    std::mem::take(&mut tty.shots)
}

/// Installs with the pause hook in the root image's writing, presses Ctrl-C, answers
/// yes; returns the install folder and the captured screens.
fn cancel_while_writing(dir: &Path) -> (PathBuf, Vec<(String, String)>) {
    std::fs::create_dir_all(dir.join("tmp")).expect("tmp");
    let prefix = dir.join("m");
    let tmpdir = dir.join("tmp");
    let mut tty = Tty::spawn(
        &[
            &["install", "--prefix", p(&prefix)],
            host_args().as_slice(),
            &[
                "--no-first-boot",
                "--set",
                "ROOTMB=64",
                "--set",
                "HOMEMB=32",
                "--set",
                "SWAPMB=64",
            ],
        ]
        .concat(),
        &[
            ("TMPDIR", p(&tmpdir)),
            ("COLINUX_SETUP_TEST_PAUSE_AT", "image:root:writing"),
        ],
    );
    tty.defaults_to_the_summary();
    tty.keys(ENTER);
    tty.wait_raw("test hook: paused at image:root:writing");
    tty.wait_for("root.img");
    tty.shot("Progress (paused by a test hook while root.img is written)");
    let partial = std::fs::read_dir(&prefix)
        .expect("the install folder exists while it installs")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".partial"));
    assert!(partial, "no half-written image: {:?}", listing(&prefix));
    tty.keys(CTRL_C);
    tty.wait_for("Cancel the installation and undo what it made?");
    tty.shot("Ctrl-C during the install asks once");
    tty.keys("y");
    tty.keys(ENTER);
    tty.wait_raw("cancelled");
    let code = tty.exit_code();
    assert_eq!(code, CANCELLED, "{}", tty.screen());
    assert!(!prefix.exists(), "left behind: {:?}", listing(&prefix));
    // Nothing but this run's log (kept in the temporary folder, named by the last line).
    let left = listing(dir);
    assert!(
        left.iter()
            .all(|f| f == "tmp"
                || (f.starts_with("tmp/colinux-setup-install-") && f.ends_with(".log"))),
        "left behind: {left:?}"
    );
    assert!(
        String::from_utf8_lossy(&tty.raw).contains("the log of this run is"),
        "{}",
        tty.screen()
    );
    (prefix, std::mem::take(&mut tty.shots))
}

#[test]
fn ctrl_c_while_an_image_is_written_asks_then_rolls_back() {
    let tmp = tempdir("wizard-cancel-");
    let (prefix, _) = cancel_while_writing(tmp.path());
    assert!(!prefix.exists());
}

#[test]
fn ctrl_c_on_the_sizes_page_asks_then_cancels_with_nothing_made() {
    let tmp = tempdir("wizard-sizes-");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir_all(&tmpdir).expect("tmp");
    let prefix = tmp.path().join("deep").join("m");
    let mut tty = Tty::spawn(
        &[&["install", "--prefix", p(&prefix)], host_args().as_slice()].concat(),
        &[("TMPDIR", p(&tmpdir))],
    );
    tty.wait_for("Welcome to the coLinux setup");
    tty.keys(ENTER);
    tty.wait_for("License agreement");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("Install folder:");
    tty.keys(ENTER);
    tty.wait_for("RAM and image sizes");
    // Ctrl-C, then "no": the page stays.
    tty.keys(CTRL_C);
    tty.wait_for("Cancel the installation? Nothing has been changed yet");
    tty.keys("n");
    tty.keys(ENTER);
    tty.wait_for("Choose a value to change, or go on");
    // Ctrl-C inside a value's prompt, then "yes".
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for(" in MB ›");
    tty.keys(CTRL_C);
    tty.wait_for("Cancel the installation? Nothing has been changed yet");
    tty.keys("y");
    tty.keys(ENTER);
    let code = tty.exit_code();
    assert_eq!(code, CANCELLED, "{}", tty.screen());
    assert!(
        String::from_utf8_lossy(&tty.raw).contains("cancelled in the wizard; nothing was changed"),
        "{}",
        tty.screen()
    );
    assert!(
        !tmp.path().join("deep").exists(),
        "{:?}",
        listing(tmp.path())
    );
    let left = listing(tmp.path());
    assert!(
        left.iter()
            .all(|f| f == "tmp"
                || (f.starts_with("tmp/colinux-setup-install-") && f.ends_with(".log"))),
        "left behind: {left:?}"
    );
}

/// Issue 21 item 8: the pre-filled folder field edits as a shell line: Ctrl-U clears it
/// and Ctrl-W takes the word before the cursor, so what is typed replaces the default
/// instead of being appended to it; Esc goes back to the page.
#[test]
fn ctrl_u_and_ctrl_w_clear_the_prefilled_folder() {
    let tmp = tempdir("wizard-keys-");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir_all(&tmpdir).expect("tmp");
    let first = tmp.path().join("first");
    let second = tmp.path().join("second");
    let third = tmp.path().join("third");
    let mut tty = Tty::spawn(
        &[&["install", "--prefix", p(&first)], host_args().as_slice()].concat(),
        &[("TMPDIR", p(&tmpdir))],
    );
    tty.wait_for("Welcome to the coLinux setup");
    tty.keys(ENTER);
    tty.wait_for("License agreement");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for(&format!("Install folder: {}", first.display()));
    for (key, to) in [("\x15", &second), ("\x17", &third)] {
        tty.keys(UP);
        tty.keys(ENTER);
        tty.wait_for("Install folder ›");
        tty.keys(key);
        tty.keys(p(to));
        tty.keys(ENTER);
        tty.wait_for(&format!("Install folder: {}\n", to.display()));
    }
    // Esc in the field: back to the page, the folder as it was.
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("Install folder ›");
    tty.keys("/typed-then-abandoned");
    tty.keys(ESC);
    tty.wait_for("Change the folder");
    tty.wait_for(&format!("Install folder: {}\n", third.display()));
    assert!(!tty.screen().contains("abandoned"), "{}", tty.screen());
    tty.keys(CTRL_C);
    tty.wait_for("Cancel the installation? Nothing has been changed yet");
    tty.keys("y");
    tty.keys(ENTER);
    assert_eq!(tty.exit_code(), CANCELLED, "{}", tty.screen());
}

/// Issue 21 item 8, in a terminal of 120×40: every page's text is broken at spaces (no
/// row is filled to the last column, as a line the terminal wraps mid-word is), the
/// summary of the seed's profile fits the 40 rows with its menu (its first row, the
/// title, is still on screen), and the whole license is shown a screen at a time.
#[test]
fn pages_fit_a_120_by_40_terminal_and_the_license_is_paged() {
    let tmp = tempdir("wizard-fit-");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir_all(&tmpdir).expect("tmp");
    let prefix = tmp.path().join("m");
    let mut c = Command::new(common::BIN);
    c.args([
        "install",
        "--profile",
        "bfin-uclinux",
        "--prefix",
        p(&prefix),
        "--set",
        "ROOTMB=16",
        "--set",
        "HOMEMB=8",
        "--set",
        "SWAPMB=16",
    ])
    .envs(host().env());
    let (cols, rows) = (120u16, 40u16);
    let mut tty = Tty::spawn_sized(c, &[("TMPDIR", p(&tmpdir))], cols, rows);
    let full_rows = |t: &Tty| -> Vec<String> {
        t.vt.screen()
            .rows(0, cols)
            .filter(|r| r.trim_end().chars().count() >= usize::from(cols))
            .collect()
    };
    tty.wait_for("Welcome to the coLinux setup");
    tty.keys(ENTER);
    tty.wait_for("License agreement");
    // The whole license: a screen at a time, never more rows than the terminal has.
    for _ in 0..2 {
        tty.keys(DOWN);
    }
    tty.keys(ENTER);
    tty.wait_for("-- lines 1-37 of ");
    tty.wait_for("GNU GENERAL PUBLIC LICENSE");
    tty.keys(" ");
    tty.wait_for("-- lines 38-74 of ");
    tty.keys("b");
    tty.wait_for("-- lines 1-37 of ");
    tty.keys("q");
    tty.wait_for("I accept the agreement");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("a kernel-level component is installed");
    assert!(full_rows(&tty).is_empty(), "{:?}", full_rows(&tty));
    tty.keys(ENTER);
    for t in [
        "Install folder:",
        "RAM and image sizes",
        "Network and serial port",
    ] {
        tty.wait_for(t);
        assert!(full_rows(&tty).is_empty(), "{t}: {:?}", full_rows(&tty));
        tty.keys(ENTER);
    }
    tty.wait_for("Ready to install");
    tty.wait_for("< Back");
    let screen = tty.screen();
    assert!(
        screen
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("colinux-setup ")),
        "the summary's top scrolled away:\n{screen}"
    );
    assert!(
        screen.contains("more lines: choose \"Show the whole plan\""),
        "{screen}"
    );
    assert!(full_rows(&tty).is_empty(), "{:?}", full_rows(&tty));
    // The whole plan, paged.
    for _ in 0..3 {
        tty.keys(DOWN);
    }
    tty.keys(ENTER);
    tty.wait_for("The whole plan");
    tty.wait_for("-- lines 1-37 of ");
    tty.keys("q");
    tty.wait_for("Ready to install");
    tty.keys(CTRL_C);
    tty.wait_for("Cancel the installation? Nothing has been changed yet");
    tty.keys("y");
    tty.keys(ENTER);
    assert_eq!(tty.exit_code(), CANCELLED, "{}", tty.screen());
    assert!(!prefix.exists());
}

/// "No" to the cancel question on the summary page, typed as `n` then Enter, keeps the
/// page: the Enter belongs to the question, not to the page's highlighted Install (it
/// used to start the install). A later "yes" cancels with nothing made.
#[test]
fn no_to_the_cancel_question_on_the_summary_page_does_not_start_the_install() {
    let tmp = tempdir("wizard-no-");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir_all(&tmpdir).expect("tmp");
    let prefix = tmp.path().join("m");
    let mut tty = Tty::spawn(
        &[
            &["install", "--prefix", p(&prefix)],
            host_args().as_slice(),
            &["--no-first-boot"],
        ]
        .concat(),
        &[("TMPDIR", p(&tmpdir))],
    );
    tty.defaults_to_the_summary();
    let question = "Cancel the installation? Nothing has been changed yet";
    tty.keys(CTRL_C);
    tty.wait_for(question);
    tty.keys("n");
    tty.keys(ENTER);
    // Time for an install to start if the Enter reached the page.
    std::thread::sleep(Duration::from_secs(2));
    tty.pump();
    let raw = String::from_utf8_lossy(&tty.raw).into_owned();
    assert!(
        !raw.contains("Log of this install:") && !prefix.exists(),
        "\"no\" to cancelling started the install:\n{}",
        tty.screen()
    );
    tty.keys(CTRL_C);
    tty.wait_until("the question asked again", |t| {
        String::from_utf8_lossy(&t.raw).matches(question).count() >= 2
    });
    tty.keys("y");
    tty.keys(ENTER);
    assert_eq!(tty.exit_code(), CANCELLED, "{}", tty.screen());
    assert!(!prefix.exists(), "{:?}", listing(tmp.path()));
}

#[test]
fn an_existing_install_is_repaired_upgraded_or_kept_with_its_images() {
    let tmp = tempdir("wizard-existing-");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir_all(&tmpdir).expect("tmp");
    let prefix = tmp.path().join("m");
    let o = common::install_cmd(
        &prefix,
        &[
            "--no-first-boot",
            "--set",
            "RAMMB=128",
            "--set",
            "HOMEMB=32",
            "--set",
            "SWAPMB=96",
        ],
    )
    .env("TMPDIR", &tmpdir)
    .output()
    .expect("install");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let images = ["root.img", "home.img", "swap.img"];
    let before: Vec<String> = images.iter().map(|i| sha256(&prefix.join(i))).collect();
    let config_before = std::fs::read_to_string(prefix.join("config.txt")).expect("config");

    // Repair: the recorded answers, straight to the summary; nothing needs to change.
    let mut tty = Tty::spawn(
        &["install", "--prefix", p(&prefix)],
        &[("TMPDIR", p(&tmpdir))],
    );
    tty.wait_for("Welcome to the coLinux setup");
    tty.keys(ENTER);
    tty.wait_for("License agreement");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("An installation is in this folder: profile minimal");
    tty.shot("Install folder with an existing installation");
    for _ in 0..3 {
        tty.keys(UP);
    }
    tty.keys(ENTER);
    tty.wait_for("Ready to install");
    tty.wait_for("guest RAM:      128 MB");
    tty.keys(ENTER);
    tty.wait_for("nothing needed to change");
    assert_eq!(tty.exit_code(), 0, "{}", tty.screen());
    assert_eq!(
        std::fs::read_to_string(prefix.join("config.txt")).expect("config"),
        config_before
    );

    // Keep the images, choose the rest again: more RAM; the images stay byte for byte.
    let mut tty = Tty::spawn(
        &["install", "--prefix", p(&prefix)],
        &[("TMPDIR", p(&tmpdir))],
    );
    tty.wait_for("Welcome to the coLinux setup");
    tty.keys(ENTER);
    tty.wait_for("License agreement");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("An installation is in this folder");
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("RAM and image sizes");
    tty.wait_for("/home (home.img): 32 MB");
    for _ in 0..4 {
        tty.keys(UP);
    }
    tty.keys(ENTER);
    tty.wait_for("Guest RAM in MB ›");
    tty.type_value("160");
    tty.wait_for("Guest RAM: 160 MB");
    for _ in 0..4 {
        tty.keys(DOWN);
    }
    tty.keys(ENTER);
    tty.wait_for("Network and serial port");
    tty.keys(ENTER);
    tty.wait_for("Ready to install");
    tty.keys(ENTER);
    tty.wait_for("Log of this install:");
    tty.wait_for("Kept as they were: root.img, home.img, swap.img");
    assert_eq!(tty.exit_code(), 0, "{}", tty.screen());
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config");
    assert!(config.contains("mem=160"), "{config}");
    let after: Vec<String> = images.iter().map(|i| sha256(&prefix.join(i))).collect();
    assert_eq!(before, after, "an image of the existing install changed");

    // Upgrade: this version's defaults (the recommended RAM again), the recorded profile,
    // monitor and image sizes; straight to the summary; the images stay byte for byte.
    let mut tty = Tty::spawn(
        &["install", "--prefix", p(&prefix)],
        &[("TMPDIR", p(&tmpdir))],
    );
    tty.wait_for("Welcome to the coLinux setup");
    tty.keys(ENTER);
    tty.wait_for("License agreement");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("An installation is in this folder");
    tty.keys(UP);
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("Ready to install");
    tty.wait_for("guest RAM:      ");
    // An answer's rule says where it came from: "set with", "from", "chosen in".
    assert!(
        !["(set with", "(from ", "(chosen "].iter().any(|w| tty
            .screen()
            .contains(&format!("guest RAM:      160 MB {w}"))),
        "the upgrade kept the old RAM answer:\n{}",
        tty.screen()
    );
    tty.keys(ENTER);
    tty.wait_for("Log of this install:");
    assert_eq!(tty.exit_code(), 0, "{}", tty.screen());
    let upgraded: Vec<String> = images.iter().map(|i| sha256(&prefix.join(i))).collect();
    assert_eq!(before, upgraded, "an image changed in the upgrade");
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config");
    assert!(!config.contains("mem=160\n"), "{config}");
}

#[test]
fn the_network_and_windows_answers_refuse_bad_values_with_the_reason() {
    let tmp = tempdir("wizard-keys-");
    let prefix = tmp.path().join("m");
    let dry = |set: &str| {
        cmd(&[
            "install",
            "--unattended",
            "--dry-run",
            "--profile",
            "bfin-uclinux",
            "--prefix",
            p(&prefix),
            "--set",
            set,
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .expect("dry run")
    };
    for (set, needle) in [
        ("SLIRP=tcp:99999:22", "tcp:99999:22: ports are 1..65535"),
        ("SLIRP=tcp:22", "SLIRP=tcp:22 (--set SLIRP)"),
        ("SLIRP=tcp:333:22x", "would silently ignore part of it"),
        (
            "SERIAL=COM 1",
            "a serial port is a device name without spaces",
        ),
        (
            "TASKS=putty",
            "unknown task `putty`; the tasks are startmenu, desktop, service",
        ),
        (
            "STARTMENU=a/b",
            "a start-menu folder name is 1..120 characters",
        ),
    ] {
        let o = dry(set);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(common::FAILED), "{set}: {t}");
        assert!(t.contains(needle), "{set}: expected `{needle}` in:\n{t}");
    }
    // A machine for User-mode Linux gets its adapter on this Linux host, whose kernel
    // takes names of at most 15 bytes; the coLinux machine's is made on Windows later.
    let tap = |monitor: &str| {
        cmd(&[
            "install",
            "--unattended",
            "--dry-run",
            "--profile",
            "bfin-uclinux",
            "--monitor",
            monitor,
            "--prefix",
            p(&prefix),
            "--set",
            "NOFIRSTBOOT=1",
            "--set",
            "TAPNAME=tap-colinux-16by",
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .expect("dry run")
    };
    let o = tap("uml");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(common::FAILED), "{t}");
    assert!(
        t.contains("TAPNAME=tap-colinux-16by") && t.contains("at most 15 bytes"),
        "{t}"
    );
    let o = tap("colinux");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!prefix.exists(), "a refused dry run made the folder");
    let o = dry("SERIAL=COM2");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("\nttys0=COM2\n"), "{t}");
    let o = dry("SLIRP=");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("eth0=slirp,") && l.matches(',').count() == 1),
        "slirp without redirections: {t}"
    );
}

/// The pages only Windows shows, seen for real: the i686 exe as setup-x86.msi installs it
/// (`bin\`, and `assets\` with the i386 busybox), in a 32-bit Wine prefix (Windows 7
/// x86), driven through Wine's console in a pseudo-terminal. The start-menu folder and
/// the tasks chosen there are what the install records, and the "service" task makes
/// the machine's Windows service (Wine's service manager, read back with `reg query`).
#[test]
fn x86_windows_pages_under_32_bit_wine_choose_the_start_menu_folder_and_the_tasks() {
    common::wine::build_msi("x86", "setup-x86.msi");
    let w = Wine::new_arch("wizard-x86", WinArch::Win32);
    let exe = w.stage_program("x86", "tools");
    let mut c = w.cmd_in_terminal("wine");
    c.args([
        exe.as_str(),
        "install",
        "--prefix",
        "C:\\wiz",
        "--set",
        "RAMMB=48",
        "--set",
        "ROOTMB=64",
        "--set",
        "HOMEMB=32",
        "--set",
        "SWAPMB=64",
    ]);
    let mut tty = Tty::spawn_command(c, &[]);

    tty.wait_for("Welcome to the coLinux setup");
    tty.wait_for("This host: Microsoft Windows");
    assert!(tty.screen().contains(", x86, "), "{}", tty.screen());
    tty.wait_for("step 1 of 9");
    tty.shot("Welcome (Windows 7 x86)");
    tty.keys(ENTER);
    tty.wait_for("License agreement");
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("a kernel-level component is installed");
    tty.keys(ENTER);
    tty.wait_for("Install folder: C:\\wiz");
    tty.keys(ENTER);
    tty.wait_for("RAM and image sizes");
    tty.wait_for("Guest RAM: 48 MB");
    // The root is made from the i386 busybox beside the exe: nothing to warn about.
    assert!(!tty.screen().contains("not i386"), "{}", tty.screen());
    tty.keys(ENTER);
    tty.wait_for("Network and serial port");
    tty.keys(ENTER);

    // Start-menu folder: another name.
    tty.wait_for("Start-menu folder");
    tty.wait_for("Start-menu folder: coLinux (minimal)");
    tty.shot("Start-menu folder (Windows only)");
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("Start-menu folder ›");
    tty.type_value("coLinux 32-bit");
    tty.wait_for("Start-menu folder: coLinux 32-bit");
    tty.keys(ENTER);

    // Additional tasks: the service and the desktop shortcut turned on.
    tty.wait_for("Additional tasks");
    tty.wait_for("[x] a start-menu entry that boots the machine");
    tty.wait_for("[ ] run the machine as a Windows service");
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("[x] run the machine as a Windows service");
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("[x] a desktop shortcut that boots the machine");
    tty.shot("Additional tasks (Windows only)");
    tty.keys(DOWN);
    tty.keys(DOWN);
    tty.keys(ENTER);

    tty.wait_for("Ready to install");
    tty.wait_for("start menu:     coLinux 32-bit");
    tty.wait_for("extra tasks:    startmenu, desktop, service");
    tty.shot("Summary (Windows 7 x86)");
    tty.keys(ENTER);
    tty.wait_for("Log of this install:");
    let code = tty.exit_code();
    assert_eq!(code, 0, "{}", tty.screen());

    let prefix = w.c_drive("wiz");
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(prefix.join("install-state.json")).expect("install-state.json"),
    )
    .expect("state json");
    assert_eq!(st["answers"]["STARTMENU"], "coLinux 32-bit", "{st}");
    let tasks = st["answers"]["TASKS"].as_str().unwrap_or_default();
    let mut tasks: Vec<&str> = tasks.split(',').collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["desktop", "service", "startmenu"], "{st}");
    assert_eq!(st["service"]["created"], true, "{st}");
    let o = w.reg_query("HKLM\\System\\CurrentControlSet\\Services\\coLinux");
    let svc = common::wine::reg_values(&o);
    assert_eq!(
        common::wine::reg_value(&svc, "ImagePath").as_deref(),
        Some("\"C:\\wiz\\colinux-daemon.exe\" @C:\\wiz\\config.txt --run-service coLinux"),
        "{}",
        text(&o)
    );
    e2e_tests::oracle::e2fsck_clean(&prefix.join("root.img")).expect("root.img");
    if std::env::var_os("COLINUX_SETUP_WRITE_SCREENS").is_some() {
        let mut md = String::from(
            "# The install wizard's Windows pages\n\n\
             Text captures of a real run of the i686 exe that setup-x86.msi installs, in a\n\
             32-bit Wine prefix (Windows 7 x86), driven in a pseudo-terminal (100×64) by\n\
             `installer/tests/cli/wizard_cli.rs`; `scripts/wizard-screens` regenerates this page\n\
             with docs/wizard-screens.md. Only Windows shows the start-menu folder and extra\n\
             tasks pages.\n",
        );
        for (name, screen) in &tty.shots {
            md.push_str(&format!("\n## {name}\n\n```text\n{screen}\n```\n"));
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/wizard-screens-windows.md");
        std::fs::write(&path, md).expect("write docs/wizard-screens-windows.md");
    }
}

/// The embedded developer's machine has no default password: the wizard's user page
/// (after the network) will not go on without one, takes it twice without showing it,
/// and the name and password chosen there are the machine's (its /etc/shadow hash is
/// the password's, checked by openssl); the password is never on the screen.
#[test]
fn the_user_page_asks_a_name_and_a_hidden_password_that_the_machine_gets() {
    let tmp = tempdir("wizard-user-");
    let prefix = tmp.path().join("m");
    let kit = crate::embedded_dev::kit();
    let mut tty = Tty::spawn(
        &[
            "install",
            "--prefix",
            p(&prefix),
            "--profile",
            "embedded-dev",
            "--kit",
            p(kit),
            "--monitor",
            &host().monitor,
            "--no-first-boot",
        ],
        &[],
    );
    tty.wait_for("Welcome to the coLinux setup");
    tty.keys(ENTER);
    tty.wait_for("License agreement");
    tty.keys(DOWN);
    tty.keys(ENTER);
    for t in [
        "Install folder:",
        "RAM and image sizes",
        "Network and serial port",
    ] {
        tty.wait_for(t);
        tty.keys(ENTER);
    }
    tty.wait_for("Your user");
    tty.wait_for("Password: not chosen yet");
    tty.shot("The machine's user");
    // Next without a password: refused, the page stays.
    tty.keys(ENTER);
    tty.wait_for("choose a password first: this machine has no default one");
    tty.keys(ENTER);
    tty.wait_for("Choose a value to change, or go on");
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("Password");
    tty.keys("s3cret-Pw");
    tty.keys(ENTER);
    tty.wait_for("Type it again");
    tty.keys("s3cret-Pw");
    tty.keys(ENTER);
    tty.wait_for("Password: chosen");
    // The name: the cursor is on the password; up to the name.
    tty.keys(UP);
    tty.keys(ENTER);
    tty.wait_for("User name ›");
    tty.type_value("grace");
    tty.wait_for("User name: grace");
    tty.keys(DOWN);
    tty.keys(DOWN);
    tty.keys(ENTER);
    tty.wait_for("Ready to install");
    tty.wait_for("grace (uid 1000, /home/grace)");
    tty.keys(ENTER);
    assert_eq!(tty.exit_code(), 0, "{}", tty.screen());
    let raw = String::from_utf8_lossy(&tty.raw).into_owned();
    assert!(!raw.contains("s3cret-Pw"), "the password was shown");
    let shadow = common::debugfs(&prefix.join("root.img"), "cat /etc/shadow");
    let hash = shadow
        .lines()
        .find_map(|l| l.strip_prefix("grace:"))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no grace in /etc/shadow: {shadow}"));
    // $6$rounds=N$SALT$HASH: openssl computes the same from the password and salt.
    let salt = hash.split('$').nth(3).expect("the salt");
    let rounds = hash.split('$').nth(2).expect("the rounds");
    let o = Command::new("openssl")
        .args([
            "passwd",
            "-6",
            "-salt",
            &format!("{rounds}${salt}"),
            "s3cret-Pw",
        ])
        .output()
        .expect("openssl passwd");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        hash,
        "{}",
        text(&o)
    );
    let passwd = common::debugfs(&prefix.join("root.img"), "cat /etc/passwd");
    assert!(
        passwd.contains("grace:x:1000:1000:grace:/home/grace:/bin/bash"),
        "{passwd}"
    );
}
