//! `install --monitor wsl` (issue 22 items 2, 3, 5), a wsl machine's `start`, `stop`,
//! `shell`, `console` and `list`, and `config check`'s notes on what WSL ignores, on
//! Linux, through the recording WSL
//! host of the test hook (`COLINUX_SETUP_TEST_WSL_HOST=FILE`: the JSON state of a
//! simulated WSL that registers a disk in place and, as WSL does, deletes it on
//! unregister). WSL itself cannot run here: the first-boot script is simulated by the
//! recording host; root.vhdx is judged by `qemu-img check` and, converted to raw, by
//! e2fsck and debugfs. Nothing here has run on real Windows.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::{BUSY, FAILED, cmd, debugfs, p, sha256, tempdir, text};

const HOOK: &str = "COLINUX_SETUP_TEST_WSL_HOST";
const SIZES: &[&str] = &[
    "--set",
    "RAMMB=128",
    "--set",
    "ROOTMB=64",
    "--set",
    "HOMEMB=32",
    "--set",
    "SWAPMB=64",
];

fn expect(o: &Output, code: i32, words: &[&str]) {
    let all = text(o);
    assert_eq!(o.status.code(), Some(code), "{all}");
    for w in words {
        assert!(all.contains(w), "missing {w:?} in\n{all}");
    }
}

fn install(host: &Path, prefix: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut a = vec![
        "install",
        "--unattended",
        "--prefix",
        p(prefix),
        "--monitor",
        "wsl",
    ];
    a.extend_from_slice(SIZES);
    a.extend_from_slice(extra);
    let mut c = cmd(&a);
    c.env(HOOK, host);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("install")
}

fn run(host: &Path, args: &[&str]) -> Output {
    cmd(args).env(HOOK, host).output().expect("run")
}

fn host_state(host: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(host).expect("host state")).expect("host json")
}

fn registered(host: &Path) -> Vec<(String, String)> {
    if !host.exists() {
        return Vec::new();
    }
    host_state(host)["distributions"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(n, d)| (n.clone(), d["disk"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn actions(host: &Path) -> Vec<String> {
    host_state(host)["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// qemu-img check, then a raw copy judged by e2fsck -fn; the raw copy's path.
fn judge_vhdx(vhdx: &Path) -> std::path::PathBuf {
    let o = Command::new("qemu-img")
        .args(["check", "-f", "vhdx", p(vhdx)])
        .output()
        .expect("qemu-img check");
    assert!(o.status.success(), "qemu-img check: {}", text(&o));
    let raw = vhdx.with_extension("raw-copy");
    let o = Command::new("qemu-img")
        .args(["convert", "-f", "vhdx", "-O", "raw", p(vhdx), p(&raw)])
        .output()
        .expect("qemu-img convert");
    assert!(o.status.success(), "qemu-img convert: {}", text(&o));
    e2e_tests::oracle::e2fsck_clean(&raw).expect("e2fsck");
    raw
}

#[test]
fn without_wsl_the_monitor_is_refused_before_any_change() {
    let t = tempdir("wsl-none");
    let m = t.path().join("m");
    let mut a = vec![
        "install",
        "--unattended",
        "--prefix",
        p(&m),
        "--monitor",
        "wsl",
    ];
    a.extend_from_slice(SIZES);
    let o = cmd(&a).env_remove(HOOK).output().expect("install");
    expect(
        &o,
        FAILED,
        &[
            "MONITOR=wsl",
            "WSL runs only on 64-bit Windows 10 2004+ and 11",
        ],
    );
    assert!(!text(&o).contains("NOFIRSTBOOT"), "{}", text(&o));
    assert!(!m.exists(), "nothing is made");
    // Names a WSL distribution only for the wsl monitor.
    let mut a = vec![
        "install",
        "--unattended",
        "--prefix",
        p(&m),
        "--monitor",
        "qemu",
        "--no-first-boot",
        "--set",
        "WSLNAME=x",
        "--dry-run",
    ];
    a.extend_from_slice(SIZES);
    expect(&cmd(&a).output().expect("dry run"), FAILED, &["WSLNAME=x"]);
}

#[test]
fn install_registers_first_boots_reports_keeps_the_images_and_purges() {
    let t = tempdir("wsl-life");
    let host = t.path().join("host.json");
    let m = t.path().join("m");
    let dry = install(&host, &m, &["--dry-run"], &[]);
    expect(
        &dry,
        0,
        &[
            "root.vhdx",
            "wsl --import-in-place colinux",
            "RAMMB=128: no WSL meaning",
            "no WSL meaning",
        ],
    );
    assert!(!host.exists() || registered(&host).is_empty());

    let o = install(&host, &m, &[], &[]);
    expect(&o, 0, &["WSL distribution colinux", "first boot: done"]);
    let vhdx = m.join("root.vhdx");
    assert_eq!(
        registered(&host),
        vec![("colinux".to_owned(), p(&vhdx).to_owned())]
    );
    let acts = actions(&host);
    assert!(acts[0].starts_with("import-in-place colinux "), "{acts:?}");
    assert!(
        acts.iter().any(|a| a.starts_with(
            "run colinux as root: /bin/sh -c export COLINUX_FIRSTBOOT_ARGS='colinux.firstboot"
        )),
        "{acts:?}"
    );
    assert_eq!(acts.last().map(String::as_str), Some("terminate colinux"));
    assert!(!m.join("root.img").exists());
    // The disk: a VHDX qemu-img finds clean, ext4 e2fsck finds clean, with wsl.conf.
    let raw = judge_vhdx(&vhdx);
    let conf = debugfs(&raw, "cat /etc/wsl.conf");
    assert!(conf.contains("[user]\ndefault="), "{conf}");
    assert!(conf.contains("hostname=colinux"), "{conf}");
    let fstab = debugfs(&raw, "cat /etc/fstab");
    assert!(
        !fstab.contains("/dev/"),
        "WSL mounts the root itself:\n{fstab}"
    );
    std::fs::remove_file(&raw).expect("rm raw");
    // The log has the first boot's console and its marker.
    let logs: String = std::fs::read_dir(m.join("logs"))
        .expect("logs")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("console: COLINUX-SETUP-FIRST-BOOT: OK"),
        "{logs}"
    );

    // status: registered, and its state.
    let o = run(&host, &["status", "--prefix", p(&m)]);
    expect(&o, 0, &["WSL distribution: colinux: registered, stopped"]);
    let o = run(&host, &["status", "--json", "--prefix", p(&m)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["wsl"]["host"]["registered"], true, "{v}");
    assert_eq!(v["wsl"]["host"]["state"], "Stopped", "{v}");
    assert_eq!(v["monitor"], "wsl");

    // boot opens the distribution's shell.
    expect(&run(&host, &["boot", "--prefix", p(&m)]), 0, &[]);
    assert_eq!(
        actions(&host).last().map(String::as_str),
        Some("shell colinux")
    );

    // Unregistered elsewhere: status says so (exit 1).
    let saved = std::fs::read(&host).expect("read");
    let mut gone = host_state(&host);
    gone["distributions"] = serde_json::json!({});
    std::fs::write(&host, gone.to_string()).expect("write");
    expect(
        &run(&host, &["status", "--prefix", p(&m)]),
        1,
        &["colinux: not registered"],
    );
    std::fs::write(&host, saved).expect("restore");

    // A plain uninstall unregisters and keeps every image, root.vhdx as it was.
    let before = sha256(&vhdx);
    let o = run(&host, &["uninstall", "--prefix", p(&m)]);
    expect(&o, 0, &["kept", "root.vhdx"]);
    assert!(registered(&host).is_empty());
    assert!(
        actions(&host).contains(&"unregister colinux (no disk to delete)".to_owned()),
        "{:?}",
        actions(&host)
    );
    assert_eq!(sha256(&vhdx), before, "root.vhdx survives the unregister");
    assert!(m.join("home.img").exists() && m.join("swap.img").exists());
    assert!(!m.join("install-state.json").exists());

    // Installing again over the kept images registers them again; the first boot of
    // kept images waits for `boot --first-boot`, which runs it in the distribution.
    let o = install(&host, &m, &[], &[]);
    expect(&o, 0, &["WSL distribution colinux", "first boot: pending"]);
    assert_eq!(registered(&host).len(), 1);
    let o = run(&host, &["boot", "--first-boot", "--prefix", p(&m)]);
    expect(&o, 0, &["first boot in WSL 2", "first boot: done"]);
    // --purge unregisters and removes the images.
    let o = run(&host, &["uninstall", "--purge", "--prefix", p(&m)]);
    expect(&o, 0, &[]);
    assert!(registered(&host).is_empty());
    assert!(!vhdx.exists() && !m.join("home.img").exists());
}

#[test]
fn a_failure_at_each_step_rolls_back_and_unregisters_only_its_own() {
    let t = tempdir("wsl-fail");
    let host = t.path().join("host.json");
    for (n, env) in [
        ("COLINUX_SETUP_TEST_FAIL_AT", "image:root"),
        ("COLINUX_SETUP_TEST_FAIL_AT", "wsl"),
        ("COLINUX_SETUP_TEST_FAIL_AT", "first-boot"),
        ("COLINUX_SETUP_TEST_FAIL_AT", "state"),
        ("COLINUX_SETUP_TEST_FAIL_AT", "commit"),
        ("COLINUX_SETUP_TEST_FIRST_BOOT", "fail"),
        ("COLINUX_SETUP_TEST_FIRST_BOOT", "hang"),
    ] {
        let m = t.path().join(format!("m-{}", env.replace(':', "-")));
        let o = install(&host, &m, &[], &[(n, env)]);
        assert_eq!(o.status.code(), Some(FAILED), "{n}={env}: {}", text(&o));
        assert!(
            registered(&host).is_empty(),
            "{n}={env}: {:?}",
            registered(&host)
        );
        assert!(
            !m.join("root.vhdx").exists(),
            "{n}={env}: the run's image goes"
        );
        if env == "fail" {
            expect(&o, FAILED, &["the first-boot script failed"]);
        }
        if env == "hang" {
            expect(&o, FAILED, &["did not finish within"]);
        }
    }
    // A distribution of the same name with another disk is not this machine's: the
    // install fails, and it and its disk stay.
    let other = t.path().join("other.vhdx");
    let o = cmd(&["images", "build", p(&other), "--fs", "ext4", "--size", "8M"])
        .output()
        .expect("build");
    expect(&o, 0, &[]);
    std::fs::write(
        &host,
        serde_json::json!({"distributions": {"colinux": {"disk": p(&other)}}}).to_string(),
    )
    .expect("host");
    let m = t.path().join("m-taken");
    let o = install(&host, &m, &[], &[]);
    expect(
        &o,
        FAILED,
        &[
            "a WSL distribution named colinux is already registered",
            "WSLNAME",
        ],
    );
    assert_eq!(
        registered(&host),
        vec![("colinux".to_owned(), p(&other).to_owned())]
    );
    assert!(other.is_file());
    assert!(!m.join("root.vhdx").exists());
    // Another name is free.
    let o = install(&host, &m, &["--set", "WSLNAME=second"], &[]);
    expect(&o, 0, &["WSL distribution second"]);
    assert_eq!(registered(&host).len(), 2);

    // A re-run that fails keeps the registration an earlier install made (and its disk).
    let o = install(
        &host,
        &m,
        &["--set", "WSLNAME=second"],
        &[("COLINUX_SETUP_TEST_FAIL_AT", "state")],
    );
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(registered(&host).iter().any(|(n, _)| n == "second"));
    assert!(m.join("root.vhdx").is_file());
}

#[test]
fn damaged_states_are_refused_and_an_interrupted_unregister_is_put_back() {
    let t = tempdir("wsl-damaged");
    let host = t.path().join("host.json");
    let m = t.path().join("m");
    // A recording state that is not one: refused, and the install rolls back.
    std::fs::write(&host, b"{\"distributions\": 7}").expect("host");
    let o = install(&host, &m, &[], &[]);
    expect(&o, FAILED, &["recording WSL host's state"]);
    assert!(!m.join("root.vhdx").exists());
    std::fs::remove_file(&host).expect("rm");

    expect(&install(&host, &m, &[], &[]), 0, &[]);
    // install-state.json's wsl record damaged: the uninstall refuses before any change.
    let state_path = m.join("install-state.json");
    let good = std::fs::read_to_string(&state_path).expect("state");
    let mut st: serde_json::Value = serde_json::from_str(&good).expect("json");
    st["wsl"]["name"] = serde_json::json!("a b; rm -rf /");
    std::fs::write(&state_path, st.to_string()).expect("write");
    let o = run(&host, &["uninstall", "--prefix", p(&m)]);
    expect(&o, FAILED, &["wsl record"]);
    assert_eq!(registered(&host).len(), 1);
    assert!(state_path.exists() && m.join("root.vhdx").exists());
    std::fs::write(&state_path, &good).expect("restore");

    // An unregister interrupted between its renames left the disk aside: the next
    // uninstall puts it back first, then keeps it.
    let vhdx = m.join("root.vhdx");
    let before = sha256(&vhdx);
    let aside = m.join(".root.vhdx.wsl-unregistering");
    std::fs::rename(&vhdx, &aside).expect("aside");
    // A killed first boot's distribution share is swept too.
    let share = m.join(".colinux-setup-dist-killed");
    std::fs::create_dir_all(share.join("tree")).expect("share");
    let o = run(&host, &["uninstall", "--prefix", p(&m)]);
    expect(&o, 0, &["root.vhdx"]);
    assert!(!aside.exists());
    assert!(!share.exists());
    assert_eq!(sha256(&vhdx), before);
    assert!(registered(&host).is_empty());
    // The images that uninstall kept go with a later --purge.
    let o = run(&host, &["uninstall", "--purge", "--prefix", p(&m)]);
    expect(&o, 0, &["root.vhdx"]);
    assert!(!vhdx.exists() && !m.exists());
}

/// `install` with the recording host, paused at `step` (the test hook), then killed.
fn killed_at(host: &Path, prefix: &Path, step: &str) {
    let mut a = vec![
        "install",
        "--unattended",
        "--prefix",
        p(prefix),
        "--monitor",
        "wsl",
    ];
    a.extend_from_slice(SIZES);
    let mut c = cmd(&a);
    c.env(HOOK, host).env("COLINUX_SETUP_TEST_PAUSE_AT", step);
    let mut b = common::Booting::spawn(c);
    b.wait_for(&format!("test hook: paused at {step}"), 60);
    let o = Command::new("kill")
        .args(["-KILL", &b.id().to_string()])
        .output()
        .expect("kill");
    assert!(o.status.success(), "kill: {}", text(&o));
    let (code, _) = b.wait(30);
    assert_ne!(code, Some(0));
}

#[test]
fn an_install_killed_after_registering_is_finished_by_a_rerun_or_undone_by_uninstall() {
    let t = tempdir("wsl-kill");
    let host = t.path().join("host.json");
    let m = t.path().join("m");
    // Killed after the registration: the rerun takes the journal over, reuses the
    // distribution as its own and finishes.
    killed_at(&host, &m, "first-boot");
    assert_eq!(registered(&host).len(), 1);
    let o = install(&host, &m, &[], &[]);
    expect(&o, 0, &["first boot: done"]);
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.join("install-state.json")).expect("state"))
            .expect("json");
    assert_eq!(st["wsl"]["created"], true, "{st}");
    expect(
        &run(&host, &["uninstall", "--purge", "--prefix", p(&m)]),
        0,
        &[],
    );
    assert!(registered(&host).is_empty() && !m.exists());

    // Killed again, then uninstalled: the journal's rollback unregisters what the run
    // registered and removes the image it built.
    killed_at(&host, &m, "first-boot");
    assert_eq!(registered(&host).len(), 1);
    let o = run(&host, &["uninstall", "--prefix", p(&m)]);
    expect(&o, 0, &[]);
    assert!(registered(&host).is_empty(), "{:?}", registered(&host));
    assert!(!m.join("root.vhdx").exists());
}

/// `colinux-setup ARGS` with the recording host and a list of machines of the test's own.
fn life(host: &Path, state: &Path, args: &[&str]) -> Output {
    cmd(args)
        .env(HOOK, host)
        .env("XDG_STATE_HOME", state)
        .output()
        .expect("run")
}

/// `list --json`'s one machine.
fn listed(host: &Path, state: &Path) -> serde_json::Value {
    let o = life(host, state, &["list", "--json"]);
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let all = v["machines"].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 1, "{v}");
    all[0].clone()
}

fn running(host: &Path) -> bool {
    host_state(host)["distributions"]["colinux"]["running"] == true
}

/// The "done when" for wsl: start, list and status show it running, shell runs a
/// command (its output ours, its status ours), console opens its shell, stop, stopped;
/// and what is refused: a second start (1618), a stop of a stopped machine (nothing to
/// do, as for the other monitors), shell and console of a stopped one, and a start or
/// stop of a distribution that is not registered or whose disk is gone, with nothing
/// changed. Nothing is ever unregistered.
#[test]
fn start_list_shell_console_stop_through_the_recording_host() {
    let t = tempdir("wsl-start");
    let host = t.path().join("host.json");
    let state = t.path().join("state");
    let m = t.path().join("m");
    let on = |c: &'static str| vec![c, "--prefix", p(&m)];
    let o = install(
        &host,
        &m,
        &["--no-first-boot"],
        &[("XDG_STATE_HOME", p(&state))],
    );
    expect(&o, 0, &["WSL distribution colinux"]);
    let v = listed(&host, &state);
    assert_eq!(
        (v["monitor"].as_str(), v["state"].as_str()),
        (Some("wsl"), Some("stopped")),
        "{v}"
    );
    assert_eq!(v["distribution"], "colinux", "{v}");

    // Stopped: stop has nothing to do; shell and console need it running. WSL is asked,
    // never changed.
    let before = std::fs::read(&host).expect("host");
    expect(
        &life(&host, &state, &on("stop")),
        0,
        &["is not running", "nothing to do"],
    );
    expect(
        &life(&host, &state, &["shell", "--prefix", p(&m), "--", "true"]),
        FAILED,
        &["is not running; start it with `colinux-setup start --prefix"],
    );
    expect(
        &life(&host, &state, &on("console")),
        FAILED,
        &["is not running; start it with"],
    );
    assert_eq!(std::fs::read(&host).expect("host"), before);

    // start leaves a process running in it, and returns.
    let o = life(&host, &state, &on("start"));
    expect(
        &o,
        0,
        &["started the machine in", "WSL distribution colinux"],
    );
    assert!(running(&host));
    assert_eq!(
        actions(&host).last().map(String::as_str),
        Some("start colinux: exec sleep 2147483647")
    );
    let v = listed(&host, &state);
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["engine"], "WSL 2", "{v}");
    expect(&life(&host, &state, &["list"]), 0, &["wsl", "running"]);
    expect(
        &life(&host, &state, &on("status")),
        0,
        &[
            "running (its WSL distribution colinux)",
            "WSL distribution: colinux: registered, running",
        ],
    );
    let o = life(&host, &state, &["status", "--json", "--prefix", p(&m)]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(s["running"]["distribution"], "colinux", "{s}");

    // A second start: busy, and WSL is not asked to start anything.
    let n = actions(&host).len();
    expect(
        &life(&host, &state, &on("start")),
        BUSY,
        &["is running already", "colinux-setup stop --prefix"],
    );
    assert_eq!(actions(&host).len(), n);

    // shell runs the command as the default user: its output on stdout, its status ours.
    let o = life(
        &host,
        &state,
        &["shell", "--prefix", p(&m), "--", "echo", "hi"],
    );
    expect(&o, 0, &[]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("recording WSL host: ran the command"),
        "{}",
        text(&o)
    );
    assert_eq!(
        actions(&host).last().map(String::as_str),
        Some("run colinux as the default user: /bin/sh -c echo hi")
    );
    let mut failing = host_state(&host);
    failing["first_boot_exit"] = serde_json::json!(3);
    std::fs::write(&host, failing.to_string()).expect("write");
    let o = life(&host, &state, &["shell", "--prefix", p(&m), "--", "false"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let mut ok = host_state(&host);
    ok["first_boot_exit"] = serde_json::Value::Null;
    std::fs::write(&host, ok.to_string()).expect("write");
    // console (and shell without a command) opens its shell.
    expect(&life(&host, &state, &on("console")), 0, &[]);
    assert_eq!(
        actions(&host).last().map(String::as_str),
        Some("shell colinux")
    );
    expect(&life(&host, &state, &on("shell")), 0, &[]);

    // stop: sync as root, then terminate.
    let o = life(&host, &state, &["stop", "--json", "--prefix", p(&m)]);
    expect(&o, 0, &[]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(s["was_running"], true, "{s}");
    assert_eq!(s["clean_poweroff"], true, "{s}");
    let acts = actions(&host);
    assert_eq!(
        acts[acts.len() - 2..],
        [
            "run colinux as root: /bin/sh -c sync".to_owned(),
            "terminate colinux".to_owned()
        ]
    );
    assert!(!running(&host));
    assert_eq!(listed(&host, &state)["state"], "stopped");
    expect(
        &life(&host, &state, &on("status")),
        0,
        &["not running (`colinux-setup start --prefix"],
    );

    // config check of the machine's config.txt says what WSL ignores, without --monitor.
    let config = m.join("config.txt");
    let o = life(&host, &state, &["config", "check", p(&config)]);
    expect(
        &o,
        0,
        &[
            ": note: mem: no WSL meaning (WSL 2 runs every distribution in one VM",
            "no WSL meaning (WSL 2 has its own swap",
            ": note: kernel: no WSL meaning",
        ],
    );

    // Unregistered behind our back: start and stop refuse, naming it and what to do,
    // and change nothing; list shows it damaged.
    let saved = std::fs::read(&host).expect("read");
    let mut gone = host_state(&host);
    gone["distributions"] = serde_json::json!({});
    std::fs::write(&host, gone.to_string()).expect("write");
    let before = std::fs::read(&host).expect("host");
    let install_state = std::fs::read(m.join("install-state.json")).expect("state");
    for c in ["start", "stop"] {
        expect(
            &life(&host, &state, &on(c)),
            FAILED,
            &[
                "the WSL distribution colinux of the machine in",
                "is not registered",
                "colinux-setup install --prefix",
                "colinux-setup status --prefix",
            ],
        );
    }
    assert_eq!(std::fs::read(&host).expect("host"), before);
    assert_eq!(
        std::fs::read(m.join("install-state.json")).expect("state"),
        install_state
    );
    let v = listed(&host, &state);
    assert_eq!(v["state"], "damaged", "{v}");
    assert!(
        v["problem"]
            .as_str()
            .is_some_and(|p| p.contains("colinux is not registered")),
        "{v}"
    );
    std::fs::write(&host, &saved).expect("restore");

    // Its disk gone: start refuses and says so; nothing is unregistered.
    let vhdx = m.join("root.vhdx");
    let away = t.path().join("root.vhdx.away");
    std::fs::rename(&vhdx, &away).expect("away");
    expect(
        &life(&host, &state, &on("start")),
        FAILED,
        &[
            "root.vhdx of the WSL distribution colinux is gone",
            "reinstall the machine",
        ],
    );
    assert_eq!(std::fs::read(&host).expect("host"), saved);
    std::fs::rename(&away, &vhdx).expect("back");
    assert_eq!(registered(&host).len(), 1);
    assert!(
        !actions(&host).iter().any(|a| a.starts_with("unregister")),
        "{:?}",
        actions(&host)
    );
}

/// `config check --monitor wsl FILE`: after the usual lines, a note for each key WSL
/// ignores, on its line; the root's cobd, the shares and root= have a WSL meaning and
/// get none. Notes are not findings: the exit code is the same without them.
#[test]
fn config_check_notes_what_wsl_ignores_without_changing_the_verdict() {
    let t = tempdir("wsl-config");
    let f = t.path().join("machine.conf");
    std::fs::write(
        &f,
        "kernel=vmlinux\nmem=64\ncobd0=/m/root.img\ncobd1=/m/home.img\neth0=slirp,,tcp:2222:22\ncofs0=/m/share\nttys0=COM1\nroot=/dev/cobd0\nro\n",
    )
    .expect("write");
    let plain = cmd(&["config", "check", p(&f)]).output().expect("check");
    assert!(!text(&plain).contains("note:"), "{}", text(&plain));
    let o = cmd(&["config", "check", "--monitor", "wsl", p(&f)])
        .output()
        .expect("check");
    assert_eq!(o.status.code(), plain.status.code(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let name = p(&f);
    for want in [
        format!("{name}:1:1: note: kernel: no WSL meaning (WSL 2 boots its own kernel)"),
        format!("{name}:2:1: note: mem: no WSL meaning"),
        format!(
            "{name}:4:1: note: cobd1: no WSL meaning (WSL attaches only the distribution's own disk"
        ),
        format!("{name}:5:1: note: eth0: no WSL meaning"),
        format!("{name}:7:1: note: ttys0: no WSL meaning"),
        format!("{name}:9:1: note: ro: no WSL meaning"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{}", text(&o));
    }
    for not in ["cobd0:", "cofs0:", "root:"] {
        assert!(!out.contains(&format!("note: {not}")), "{}", text(&o));
    }
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("note(s) on what WSL ignores"),
        "{}",
        text(&o)
    );
    // Other monitors: no notes; an unknown one is a usage error.
    let o = cmd(&["config", "check", "--monitor", "qemu", p(&f)])
        .output()
        .expect("check");
    assert!(!text(&o).contains("note:"), "{}", text(&o));
    expect(
        &cmd(&["config", "check", "--monitor", "vmware", p(&f)])
            .output()
            .expect("check"),
        2,
        &["--monitor vmware: use colinux, uml, qemu or wsl"],
    );
}
