//! setup.msi's dialogs with a real client: Wine's msiexec on a virtual X display (Xvfb),
//! driven by keystrokes (xdotool) as a user would drive it, each page read back by OCR
//! (tesseract) from a screenshot of its window (xwd), so a page counts as shown only
//! when its words can be read on it (no empty or clipped dialog passes).
//!
//! - the full walk: every page in the Blackfin coLinux kit manual's order, this host's
//!   recommended values on them, a folder, RAM, sizes, port forwards, a TAP subnet (the
//!   walk's profile is the default one with a TAP adapter) and a start-menu folder typed
//!   in, Install; the progress page names the install's steps as they run; what was
//!   typed is what config.txt, install-state.json, the images and the start menu hold;
//! - a refused value (a folder with a space, for coLinux) shown in the program's words
//!   over its page, which stays; Back through every page; Cancel asks (No keeps the
//!   page), then Yes: 1602, nothing left.
//!
//! `COLINUX_SETUP_SCREENS=DIR` keeps a screenshot of every page in DIR
//! (scripts/msi-screens writes docs/msi-screens/ with it).
//!
//! The coLinux monitor is asked for on the command line (MONITOR=colinux): it has every
//! page (the driver warning is coLinux's), and a 64-bit Wine has no WSL, which the
//! default monitor of setup.msi needs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::wine::{Wine, build_msi, reg_values, require, windows_path};

/// A virtual X display of its own (Xvfb), removed with it.
struct Display {
    xvfb: Child,
    number: u32,
    /// Screenshots and their OCR input.
    shots: PathBuf,
    taken: std::cell::Cell<u32>,
}

impl Display {
    fn new(shots: &Path) -> Display {
        for tool in ["Xvfb", "xdotool", "xwd", "convert", "tesseract"] {
            require(tool);
        }
        std::fs::create_dir_all(shots).expect("mkdir");
        // A display number nobody uses: no socket and no lock file.
        let number = (100 + std::process::id() % 400..600)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free X display number");
        let xvfb = Command::new("Xvfb")
            .args([
                &format!(":{number}"),
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb");
        let d = Display {
            xvfb,
            number,
            shots: shots.to_owned(),
            taken: std::cell::Cell::new(0),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(&format!("/tmp/.X11-unix/X{number}")).exists() {
            assert!(Instant::now() < deadline, "Xvfb :{number} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn name(&self) -> String {
        format!(":{}", self.number)
    }

    fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DISPLAY", self.name());
        c
    }

    /// The visible windows titled "coLinux Setup", oldest first (a spawned dialog is
    /// the last).
    fn windows(&self) -> Vec<String> {
        let o = self
            .tool("xdotool")
            .args(["search", "--onlyvisible", "--name", "^coLinux Setup$"])
            .output()
            .expect("xdotool search");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn top(&self) -> Option<String> {
        self.windows().pop()
    }

    /// Gives the top dialog the keyboard focus. Keys then go through the X server's
    /// test extension as a keyboard's would, with their modifiers (events sent to a
    /// window directly lose Shift: `:` arrives as `;`).
    fn focus(&self) {
        let w = self.top().expect("a setup window to type into");
        let o = self
            .tool("xdotool")
            .args(["windowfocus", "--sync", &w])
            .output()
            .expect("xdotool windowfocus");
        assert!(o.status.success(), "xdotool windowfocus failed");
    }

    /// Keys to the top dialog, one after another (xdotool's names: alt+n, Tab, ...).
    fn keys(&self, keys: &[&str]) {
        self.focus();
        for k in keys {
            let o = self
                .tool("xdotool")
                .args(["key", k])
                .output()
                .expect("xdotool key");
            assert!(o.status.success(), "xdotool key {k} failed");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Clicks the top dialog at (`x`, `y`) in dialog units (the Control table's), as a
    /// user puts the caret in a field: the window is the dialog's width in units scaled.
    fn click(&self, x: i32, y: i32) {
        let w = self.top().expect("a setup window to click");
        let o = self
            .tool("xdotool")
            .args(["getwindowgeometry", &w])
            .output()
            .expect("xdotool getwindowgeometry");
        let text = String::from_utf8_lossy(&o.stdout);
        let width: f64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Geometry: "))
            .and_then(|g| g.split('x').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no geometry of window {w}: {text}"));
        let scale = width / 370.0;
        let (px, py) = (
            (f64::from(x) * scale).round().to_string(),
            (f64::from(y) * scale).round().to_string(),
        );
        let o = self
            .tool("xdotool")
            .args(["mousemove", "--window", &w, &px, &py, "click", "1"])
            .output()
            .expect("xdotool click");
        assert!(o.status.success(), "xdotool click failed");
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Replaces the text of the focused field with `text`.
    fn retype(&self, text: &str) {
        self.keys(&["End", "shift+Home", "BackSpace"]);
        let o = self
            .tool("xdotool")
            .args(["type", "--delay", "40", text])
            .output()
            .expect("xdotool type");
        assert!(o.status.success(), "xdotool type failed");
        std::thread::sleep(Duration::from_millis(200));
    }

    /// A screenshot of the top dialog, and its text by OCR (from a copy at twice the
    /// size, which tesseract reads better at this font size).
    fn read(&self) -> (PathBuf, String) {
        let Some(w) = self.top() else {
            return (PathBuf::new(), String::new());
        };
        let n = self.taken.get() + 1;
        self.taken.set(n);
        let png = self.shots.join(format!("shot-{n:03}.png"));
        let xwd = self.shots.join("shot.xwd");
        let ok = self
            .tool("xwd")
            .args(["-silent", "-id", &w, "-out"])
            .arg(&xwd)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("convert")
                .arg(format!("xwd:{}", xwd.display()))
                .arg(&png)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            return (png, String::new());
        }
        let big = self.shots.join("ocr.png");
        let _ = Command::new("convert")
            .arg(&png)
            .args(["-resize", "200%"])
            .arg(&big)
            .status();
        let o = Command::new("tesseract")
            .arg(&big)
            .arg("-")
            .stderr(Stdio::null())
            .output()
            .expect("tesseract");
        (png, words(&String::from_utf8_lossy(&o.stdout)))
    }

    /// Waits until the top dialog reads `text`; its screenshot (kept as `name` when
    /// screenshots are asked for) and its text.
    fn wait_for(&self, text: &str, name: &str, secs: u64) -> String {
        let want = letters(text);
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (png, read) = self.read();
            if letters(&read).contains(&want) {
                // Read it again once it has had time to paint all of its controls: the
                // title can be there before the texts the custom action filled.
                std::thread::sleep(Duration::from_millis(1500));
                let (png, read) = self.read();
                if let Some(dir) = std::env::var_os("COLINUX_SETUP_SCREENS") {
                    std::fs::create_dir_all(&dir).expect("mkdir");
                    std::fs::copy(&png, Path::new(&dir).join(format!("{name}.png")))
                        .expect("keep the screenshot");
                }
                return read;
            }
            assert!(
                Instant::now() < deadline,
                "after {secs} s the dialog does not read {text:?}; it reads: {read} ({})",
                png.display()
            );
            std::thread::sleep(Duration::from_millis(700));
        }
    }
}

impl Display {
    /// Waits until the top dialog reads `done` (as [`Display::wait_for`]) while taking
    /// screenshots of it as fast as xwd can (the whole install may take two seconds),
    /// then reads each distinct one that is the progress page (`page`) by OCR: which
    /// of `steps` the page showed. The screenshot of the last step seen (its bar the
    /// furthest) is kept as `09x-progress` when screenshots are asked for.
    fn watch_progress(&self, page: &str, steps: &[&str], done: &str, name: &str) -> Vec<String> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let frames = {
            let (display, dir, stop) = (self.name(), self.shots.clone(), stop.clone());
            std::thread::spawn(move || record_frames(&display, &dir, &stop))
        };
        self.wait_for(done, name, 600);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let frames = frames.join().expect("the screenshots' thread");
        let mut seen: Vec<String> = Vec::new();
        for xwd in frames {
            let png = xwd.with_extension("png");
            let ok = Command::new("convert")
                .arg(format!("xwd:{}", xwd.display()))
                .args(["-resize", "200%"])
                .arg(&png)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                continue;
            }
            let o = Command::new("tesseract")
                .arg(&png)
                .arg("-")
                .stderr(Stdio::null())
                .output()
                .expect("tesseract");
            let read = letters(&String::from_utf8_lossy(&o.stdout));
            if !read.contains(&letters(page)) {
                continue;
            }
            for step in steps {
                if read.contains(&letters(step)) && !seen.iter().any(|s| s == step) {
                    if let Some(dir) = std::env::var_os("COLINUX_SETUP_SCREENS") {
                        std::fs::create_dir_all(&dir).expect("mkdir");
                        let _ = Command::new("convert")
                            .arg(format!("xwd:{}", xwd.display()))
                            .arg(Path::new(&dir).join("09x-progress.png"))
                            .status();
                    }
                    seen.push((*step).to_owned());
                }
            }
        }
        seen
    }
}

/// Screenshots (xwd) of display `display`'s top setup dialog into `dir` until `stop`,
/// each one kept only when it differs from the one before; their files, in order.
fn record_frames(display: &str, dir: &Path, stop: &std::sync::atomic::AtomicBool) -> Vec<PathBuf> {
    let mut kept: Vec<PathBuf> = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    let mut n = 0u32;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && kept.len() < 400 {
        std::thread::sleep(Duration::from_millis(30));
        let o = Command::new("xdotool")
            .env("DISPLAY", display)
            .args(["search", "--onlyvisible", "--name", "^coLinux Setup$"])
            .output();
        let Some(w) = o.ok().and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .last()
                .map(str::to_owned)
        }) else {
            continue;
        };
        n += 1;
        let file = dir.join(format!("frame-{n:04}.xwd"));
        let ok = Command::new("xwd")
            .env("DISPLAY", display)
            .args(["-silent", "-id", &w, "-out"])
            .arg(&file)
            .status()
            .is_ok_and(|s| s.success());
        let bytes = if ok {
            std::fs::read(&file).unwrap_or_default()
        } else {
            Vec::new()
        };
        if bytes.is_empty() || bytes == last {
            let _ = std::fs::remove_file(&file);
        } else {
            last = bytes;
            kept.push(file);
        }
    }
    kept
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

/// What a text says for comparing it with OCR's reading: its letters and digits only,
/// in lower case (OCR misreads punctuation and case: "kerneL-level", ":" as ";").
fn letters(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Text with its whitespace folded to single spaces and OCR's usual swaps undone, for
/// the messages of a failed assertion.
fn words(s: &str) -> String {
    s.replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{201c}', '\u{201d}'], "\"")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// msiexec on the display, with a verbose log; not waited for.
fn start_msiexec(w: &Wine, d: &Display, msi: &Path, props: &str, log: &Path) -> Child {
    let mut c = w.cmd("wine");
    c.env("DISPLAY", d.name()).args(["msiexec", "/i"]);
    c.arg(windows_path(msi));
    c.args(props.split_whitespace());
    c.arg("/l*v").arg(windows_path(log));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c.spawn().expect("msiexec")
}

/// Waits for msiexec to end; its exit code as a POSIX shell sees it (1602 is 66).
fn exit_of(mut child: Child, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("msiexec did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn msi() -> PathBuf {
    build_msi("x64", "setup.msi")
}

/// One dialog walk at a time: two Wine sessions drawing and reading their screens at
/// once on two cores slow each other past the keystrokes' pacing.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The first pages up to the folder: welcome (with this host's facts, from the
/// program), license (Next refused until accepted), the driver warning.
fn to_folder(d: &Display) {
    let welcome = d.wait_for("Welcome to the coLinux setup", "01-welcome", 180);
    assert!(
        letters(&welcome).contains("thiscomputer"),
        "no host facts: {welcome}"
    );
    d.keys(&["alt+n"]);
    d.wait_for("License agreement", "02-license", 90);
    // Next does nothing before the license is accepted.
    d.keys(&["alt+n"]);
    std::thread::sleep(Duration::from_secs(1));
    d.wait_for("License agreement", "02-license", 5);
    d.keys(&["alt+a", "alt+n"]);
    d.wait_for("A kernel-level component", "03-driver", 60);
    d.keys(&["alt+n"]);
    d.wait_for("Install folder", "04-folder", 60);
}

/// The walk's profile: the default one with a TAP adapter (which the network page's
/// subnet field is for), optional as the Blackfin profile's is, so the install goes on
/// where Wine cannot make the adapter. Its candidates: the page suggests the first.
fn tap_profile(w: &Wine) -> String {
    let minimal =
        std::fs::read_to_string(crate::common::wine::repo().join("profiles/minimal.toml"))
            .expect("profiles/minimal.toml");
    let text = minimal.replacen("name = \"minimal\"", "name = \"walk-tap\"", 1)
        + "\n[network.tap]\nname = \"colinux-walk\"\nsubnets = [\"10.12.12.0/24\", \"10.77.42.0/24\"]\noptional = true\n";
    std::fs::write(w.c_drive("walk-tap.toml"), text).expect("the walk's profile");
    "C:\\walk-tap.toml".to_owned()
}

/// The suggested subnet (the walk profile's first candidate) and the one typed instead.
const SUGGESTED_SUBNET: &str = "10.12.12.0/24";
const TYPED_SUBNET: &str = "10.91.17.0/24";

/// Steps the provisioning reports (installer/src/apply.rs and the image builder's
/// phases, `root.img: writing`...), which the progress page shows as they start
/// (installer-ca's ColinuxSetupProvision). None is in the text the page shows before
/// the first step ("Building the machine: its images, config.txt, ...").
const STEPS: &[&str] = &[
    "checking the host",
    "root.img",
    "home.img",
    "writing swap.img",
    "writing config.txt",
    "setting up the TAP adapter",
    "checking the installed machine",
];

#[test]
fn a_double_click_walks_the_pages_and_installs_what_was_typed_on_them() {
    let _one = one_at_a_time();
    let w = Wine::new("msi-walk");
    let d = Display::new(&w.dir.path().join("shots"));
    let log = w.dir.path().join("walk.log");
    let profile = tap_profile(&w);
    let child = start_msiexec(
        &w,
        &d,
        &msi(),
        &format!("MONITOR=colinux NOFIRSTBOOT=1 PROFILE={profile}"),
        &log,
    );
    to_folder(&d);
    d.retype("C:\\walk");
    d.keys(&["alt+n"]);
    let sizes = d.wait_for("Guest RAM and image sizes", "05-sizes", 90);
    // The host's recommendation, in the plan's words.
    assert!(
        letters(&sizes).contains("ofthehost"),
        "no recommendation: {sizes}"
    );
    d.retype("64");
    d.keys(&["Tab"]);
    d.retype("96");
    d.keys(&["Tab"]);
    d.retype("48");
    d.keys(&["Tab"]);
    d.retype("80");
    d.keys(&["alt+n"]);
    let network = d.wait_for("Network and serial port", "06-network", 90);
    // The program's free subnet is suggested; another free one is typed over it (the
    // fields: port forwards, TAP adapter, subnet).
    assert!(
        letters(&network).contains(&letters(SUGGESTED_SUBNET)),
        "no suggested subnet: {network}"
    );
    d.retype("tcp:2222:22");
    d.keys(&["Tab", "Tab"]);
    d.retype(TYPED_SUBNET);
    d.keys(&["alt+n"]);
    d.wait_for("Start menu folder", "07-start-menu", 90);
    d.retype("Walk Machine");
    d.keys(&["alt+n"]);
    d.wait_for("Extra tasks", "08-tasks", 90);
    d.keys(&["alt+n"]);
    let ready = d.wait_for("Ready to install", "09-ready", 90);
    // What was typed, on the summary (letters and digits: OCR misreads the small
    // print's punctuation and may read "tcp" as "tep"; config.txt is checked below).
    for want in [
        "Folder: C:\\walk",
        "Guest RAM: 64 MB",
        "root.img: 96 MB",
        "2222:22",
    ] {
        assert!(
            letters(&ready).contains(&letters(want)),
            "the summary lacks {want:?}: {ready}"
        );
    }
    d.keys(&["alt+i"]);
    // The progress page names the steps as they run.
    let shown = d.watch_progress(
        "Installing the machine",
        STEPS,
        "The machine is installed",
        "10-finish",
    );
    eprintln!("the progress page showed: {shown:?}");
    assert!(
        !shown.is_empty(),
        "the progress page showed none of the install's steps {STEPS:?}"
    );
    d.keys(&["alt+f"]);
    let code = exit_of(child, 120);
    let log_text = std::fs::read(&log).unwrap_or_default();
    assert_eq!(
        code,
        0,
        "msiexec failed; its log:\n{}",
        String::from_utf8_lossy(&log_text)
    );
    let m = w.c_drive("walk");
    let config = std::fs::read_to_string(m.join("config.txt")).expect("config.txt");
    assert!(config.contains("\nmem=64\n"), "{config}");
    assert!(config.contains("tcp:2222:22"), "{config}");
    // The typed subnet: the answer config.txt records, the TAP adapter's record (made,
    // or skipped where Wine cannot make it), and the guest's address on it (.2) in the
    // root image's rcS.
    assert!(
        config.contains(&format!("SUBNET={TYPED_SUBNET}")),
        "{config}"
    );
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(m.join("install-state.json")).expect("install-state.json"),
    )
    .expect("install-state.json is JSON");
    let subnets = values_of(&state, "subnet");
    assert_eq!(subnets, [TYPED_SUBNET], "the TAP record's subnet: {state}");
    let rcs = debugfs_cat(&m.join("root.img"), "/etc/init.d/rcS");
    assert!(
        rcs.contains("ifconfig eth1 10.91.17.2 netmask 255.255.255.0"),
        "the guest's rcS: {rcs}"
    );
    for (file, mb) in [("root.img", 96), ("home.img", 48), ("swap.img", 80)] {
        let len = std::fs::metadata(m.join(file)).expect(file).len();
        assert_eq!(len, mb << 20, "{file}");
    }
    // The start menu of all users, or (Wine puts ProgramMenuFolder there) the user's.
    let menus = [
        w.c_drive("ProgramData/Microsoft/Windows/Start Menu/Programs/Walk Machine"),
        w.c_drive("users/root/AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Walk Machine"),
    ];
    let user = std::env::var("USER").unwrap_or_default();
    let theirs = w.c_drive(&format!(
        "users/{user}/AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Walk Machine"
    ));
    assert!(
        menus
            .iter()
            .chain([&theirs])
            .any(|m| m.join("Start coLinux.lnk").is_file()),
        "no Start coLinux shortcut in a start-menu folder Walk Machine: {menus:?}"
    );
    let reg = reg_values(&w.reg_query("HKLM\\Software\\colinux-setup"));
    assert!(!reg.is_empty(), "setup.msi's registry key is missing");
}

/// Every string value of a member named `key` anywhere in `v`.
fn values_of(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                if k == key
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                }
                out.extend(values_of(v, key));
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| out.extend(values_of(v, key))),
        _ => {}
    }
    out
}

/// A file of an ext image, read out with debugfs.
fn debugfs_cat(image: &Path, file: &str) -> String {
    require("debugfs");
    let o = Command::new("debugfs")
        .args(["-R", &format!("cat {file}")])
        .arg(image)
        .stderr(Stdio::null())
        .output()
        .expect("debugfs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_refused_folder_is_shown_on_its_page_back_goes_through_every_page_and_cancel_leaves_nothing() {
    let _one = one_at_a_time();
    let w = Wine::new("msi-back");
    let d = Display::new(&w.dir.path().join("shots"));
    let log = w.dir.path().join("back.log");
    let child = start_msiexec(&w, &d, &msi(), "MONITOR=colinux NOFIRSTBOOT=1", &log);
    to_folder(&d);
    d.retype("C:\\with space");
    d.keys(&["alt+n"]);
    let refused = d.wait_for("contains a space", "11-refused", 90);
    assert!(letters(&refused).contains("installdir"), "{refused}");
    d.keys(&["Return"]);
    d.wait_for("Install folder", "04-folder-again", 30);
    // The caret back in the folder's field (its Control row: x 150..355, y 56..74).
    d.click(250, 65);
    d.retype("C:\\back");
    // The field's text, then the page's text after it (OCR reads ":\" as it likes).
    d.wait_for("back The machine's images", "04-folder-fixed", 30);
    d.keys(&["alt+n"]);
    let pages = [
        ("Guest RAM and image sizes", "sizes"),
        ("Network and serial port", "network"),
        ("Start menu folder", "start-menu"),
        ("Extra tasks", "tasks"),
        ("Ready to install", "ready"),
    ];
    for (i, (title, name)) in pages.iter().enumerate() {
        d.wait_for(title, &format!("back-{i}-{name}"), 90);
        if i + 1 < pages.len() {
            d.keys(&["alt+n"]);
        }
    }
    for title in [
        "Extra tasks",
        "Start menu folder",
        "Network and serial port",
        "Guest RAM and image sizes",
        "Install folder",
        "A kernel-level component",
        "License agreement",
        "Welcome to the coLinux setup",
    ] {
        d.keys(&["alt+b"]);
        d.wait_for(title, "back", 60);
    }
    // Cancel on the first page (its button: x 304..360, y 243..260; Wine's dialogs
    // give Esc to no button) asks first: No keeps the page.
    d.click(332, 251);
    d.wait_for("Cancel the installation", "11x-cancel", 60);
    d.keys(&["alt+n"]);
    d.wait_for("Welcome to the coLinux setup", "back-kept", 60);
    // Yes: 1602 (66 in a shell), nothing made; Windows Installer shows the cancelled
    // page, whose Finish ends setup.
    d.click(332, 251);
    d.wait_for("Cancel the installation", "back-cancel-again", 60);
    d.keys(&["alt+y"]);
    d.wait_for("Setup was cancelled", "12-cancelled", 60);
    d.keys(&["alt+f"]);
    let code = exit_of(child, 120);
    assert_eq!(code, 1602 & 0xff, "Cancel did not end setup with 1602");
    for dir in ["back", "with space", "coLinux"] {
        assert!(!w.c_drive(dir).exists(), "C:\\{dir} was made");
    }
    let o = w.reg_query("HKLM\\Software\\colinux-setup");
    assert!(!o.status.success(), "setup.msi's registry key was written");
}

/// `msi ui` as the dialogs' DLL runs it, on this host (no Wine): its JSON properties.
fn ui_json(page: &str, props: &[&str]) -> (i32, serde_json::Map<String, serde_json::Value>) {
    let mut args = vec!["msi", "ui", "--page", page];
    for p in props {
        args.extend(["--property", p]);
    }
    let o = crate::common::cmd(&args).output().expect("msi ui");
    let code = o.status.code().unwrap_or(-1);
    let json = serde_json::from_slice(&o.stdout).unwrap_or_default();
    (code, json)
}

fn prop<'a>(json: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> &'a str {
    json.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {json:?}"))
}

#[test]
fn msi_ui_fills_the_hosts_values_keeps_their_rules_and_refuses_in_the_plans_words() {
    let dir = crate::common::tempdir("msi-ui");
    let installdir = format!("INSTALLDIR={}/m\\", dir.path().display());
    let base = [installdir.as_str(), "MONITOR=colinux", "NOFIRSTBOOT=1"];
    let (code, start) = ui_json("start", &base);
    assert_eq!(code, 0);
    assert_eq!(prop(&start, "UI_ERROR"), "");
    assert_eq!(prop(&start, "UI_COLINUX"), "1");
    let ram = prop(&start, "RAMMB").to_owned();
    assert!(ram.parse::<u32>().is_ok_and(|r| r > 0), "{ram}");
    assert!(
        prop(&start, "UI_SIZES").contains("of the host"),
        "{start:?}"
    );
    assert!(prop(&start, "UI_WELCOME").contains("This computer:"));
    // The values it filled, passed back untouched, keep the host's rule; one the user
    // typed is the user's.
    let filled = format!("UI_FILLED={}", prop(&start, "UI_FILLED"));
    let ram_given = format!("RAMMB={ram}");
    let mut props = base.to_vec();
    props.extend([ram_given.as_str(), "ROOTMB=300", filled.as_str()]);
    let (code, sizes) = ui_json("sizes", &props);
    assert_eq!(code, 0);
    let text = prop(&sizes, "UI_SIZES");
    assert!(text.contains("of the host"), "{text}");
    assert!(text.contains("root.img 300 MB: from setup.msi"), "{text}");
    assert!(!prop(&sizes, "UI_FILLED").contains("ROOTMB"), "{sizes:?}");
    // A value the plan refuses: its words, exit 0 (the dialog shows them), no values.
    let mut bad = base.to_vec();
    bad.push("RAMMB=99999999");
    let (code, refused) = ui_json("sizes", &bad);
    assert_eq!(code, 0);
    assert!(
        prop(&refused, "UI_ERROR").contains("RAMMB=99999999 (setup.msi)"),
        "{refused:?}"
    );
    assert!(!refused.contains_key("RAMMB"), "{refused:?}");
    // A folder with a space, for coLinux: refused, nothing made.
    let spaced = format!("INSTALLDIR={}/with space\\", dir.path().display());
    let (_, refused) = ui_json("folder", &[spaced.as_str(), "MONITOR=colinux"]);
    assert!(
        prop(&refused, "UI_ERROR").contains("contains a space"),
        "{refused:?}"
    );
    assert!(!dir.path().join("with space").exists());
    assert!(!dir.path().join("m").exists(), "msi ui made the folder");
    // A property setup.msi does not have is a usage error.
    let (code, _) = ui_json("sizes", &["NOSUCH=1"]);
    assert_eq!(code, 2);
}
