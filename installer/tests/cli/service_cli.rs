//! `service install | remove | status` and the install's service step (`SERVICE=1`),
//! on Linux through the recording host of the test hook
//! (`COLINUX_SETUP_TEST_SERVICE_HOST=FILE`, the JSON state of a simulated Service
//! Control Manager). The real Service Control Manager is exercised under Wine by
//! service_wine.rs.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{FAILED, SMALL, cmd, p, tempdir, text};

const REBOOT: i32 = 3010 & 0xff;
const HOOK: &str = "COLINUX_SETUP_TEST_SERVICE_HOST";

fn expect(o: &Output, code: i32, words: &[&str]) {
    let all = text(o);
    assert_eq!(o.status.code(), Some(code), "{all}");
    for w in words {
        assert!(all.contains(w), "missing {w:?} in\n{all}");
    }
}

fn host_state(host: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(host).expect("host state")).expect("host json")
}

fn service(host: &Path, args: &[&str]) -> Output {
    let mut a = vec!["service"];
    a.extend_from_slice(args);
    cmd(&a).env(HOOK, host).output().expect("service")
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

#[test]
fn service_command_creates_is_idempotent_updates_and_removes() {
    let t = tempdir("service-cli");
    let host = t.path().join("host.json");
    let m = t.path().join("m");
    std::fs::create_dir(&m).expect("mkdir");
    std::fs::write(
        m.join("config.txt"),
        "kernel=vmlinux\ncobd0=root.img\neth0=tuntap,TAP1\nroot=/dev/cobd0\n",
    )
    .expect("config");
    let mp = p(&m);

    let o = service(&host, &["install", "--prefix", mp]);
    expect(&o, 0, &["service coLinux (recording): installed"]);
    let s = host_state(&host);
    let svc = &s["services"]["coLinux"]["spec"];
    assert_eq!(
        svc["command_line"],
        format!("\"{mp}/colinux-daemon.exe\" @{mp}/config.txt --run-service coLinux"),
        "{s}"
    );
    assert_eq!(
        svc["dependencies"],
        serde_json::json!(["CoLinuxDriver", "tap0801co"])
    );
    assert_eq!(svc["start"], "auto");
    assert_eq!(svc["account"], "LocalSystem");
    assert_eq!(svc["display_name"], format!("coLinux machine ({mp})"));
    assert_eq!(
        svc["failure"],
        serde_json::json!({"reset_secs": 90, "actions": [
            {"action": "restart", "delay_ms": 1000},
            {"action": "restart", "delay_ms": 1000},
            {"action": "none", "delay_ms": 0}]})
    );
    assert_eq!(actions(&host).len(), 1);

    // Again: nothing to do, nothing done.
    let o = service(&host, &["install", "--prefix", mp]);
    expect(&o, 0, &["already installed; nothing to do"]);
    assert_eq!(actions(&host).len(), 1, "{:?}", actions(&host));

    // config.txt without the TAP: the dependencies follow.
    std::fs::write(m.join("config.txt"), "kernel=vmlinux\neth0=slirp\n").expect("config");
    let o = service(&host, &["install", "--prefix", mp, "--json"]);
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v["outcome"]["updated"]["changed"],
        serde_json::json!(["dependencies"]),
        "{v}"
    );
    assert_eq!(
        host_state(&host)["services"]["coLinux"]["spec"]["dependencies"],
        serde_json::json!(["CoLinuxDriver"])
    );

    // A second service for the same folder would have the same display name: refused,
    // as the SCM refuses it.
    expect(
        &service(&host, &["install", "--prefix", mp, "--name", "vm two"]),
        FAILED,
        &["already has the display name", "error 1078"],
    );
    // Another folder, another name; a name with a space is quoted for MSVCRT.
    let m2 = t.path().join("m2");
    std::fs::create_dir(&m2).expect("mkdir");
    std::fs::write(m2.join("config.txt"), "kernel=vmlinux\n").expect("config");
    let o = service(&host, &["install", "--prefix", p(&m2), "--name", "vm two"]);
    expect(&o, 0, &["--run-service \"vm two\""]);
    expect(
        &service(&host, &["status", "--prefix", mp, "--name", "vm two"]),
        0,
        &["installed, stopped"],
    );

    // A dry run says what it would do and changes nothing.
    let before = std::fs::read(&host).expect("read");
    expect(
        &service(&host, &["remove", "--prefix", mp, "--dry-run"]),
        0,
        &["stopped and removed (dry run: nothing was changed)"],
    );
    assert_eq!(std::fs::read(&host).expect("read"), before);

    // Remove stops a running service first; a second remove has nothing to do.
    let mut s = host_state(&host);
    s["services"]["coLinux"]["running"] = true.into();
    std::fs::write(&host, s.to_string()).expect("write");
    expect(
        &service(&host, &["remove", "--prefix", mp]),
        0,
        &["stopped and removed"],
    );
    let a = actions(&host);
    assert_eq!(
        a[a.len() - 2..],
        ["stop coLinux", "delete coLinux"],
        "{a:?}"
    );
    expect(
        &service(&host, &["remove", "--prefix", mp]),
        0,
        &["not installed; nothing to do"],
    );
    expect(
        &service(&host, &["status", "--prefix", mp]),
        1,
        &["not-installed"],
    );

    // A handle held elsewhere: Windows finishes at the next reboot (3010).
    let mut s = host_state(&host);
    s["services"]["vm two"]["handle_open"] = true.into();
    std::fs::write(&host, s.to_string()).expect("write");
    expect(
        &service(&host, &["remove", "--prefix", mp, "--name", "vm two"]),
        REBOOT,
        &["marked for deletion"],
    );
    expect(
        &service(&host, &["install", "--prefix", mp, "--name", "vm two"]),
        FAILED,
        &["marked for deletion; reboot"],
    );
}

#[test]
fn service_command_refuses_bad_input_with_nothing_changed() {
    let t = tempdir("service-bad");
    let host = t.path().join("host.json");
    let m = t.path().join("m");
    std::fs::create_dir(&m).expect("mkdir");
    let mp = p(&m);
    // No config.txt: say where and what to do.
    expect(
        &service(&host, &["install", "--prefix", mp]),
        FAILED,
        &["config.txt: cannot read it; install the machine there first"],
    );
    // A config.txt colinux-daemon would refuse.
    std::fs::write(m.join("config.txt"), "kernel=vmlinux\ncobd0=a\ncobd0=b\n").expect("config");
    expect(
        &service(&host, &["install", "--prefix", mp]),
        FAILED,
        &["colinux-daemon would refuse it"],
    );
    std::fs::write(m.join("config.txt"), "kernel=vmlinux\n").expect("config");
    for (name, why) in [
        ("a/b", "has a / or \\"),
        ("", "empty"),
        ("@x", "starts with - or @"),
    ] {
        expect(
            &service(&host, &["install", "--prefix", mp, "--name", name]),
            2,
            &[why],
        );
    }
    let long = "n".repeat(257);
    expect(
        &service(&host, &["install", "--prefix", mp, "--name", &long]),
        2,
        &["257 characters"],
    );
    assert!(!host.exists(), "nothing was recorded");
    // Not elevated: the host's refusal, named.
    std::fs::write(&host, r#"{"access_denied": true}"#).expect("write");
    expect(
        &service(&host, &["install", "--prefix", mp]),
        FAILED,
        &["access denied; run as an administrator"],
    );
    // Without the hook, Linux has no service host, and says so.
    let o = cmd(&["service", "install", "--prefix", mp])
        .env_remove(HOOK)
        .output()
        .expect("service");
    expect(&o, FAILED, &["a machine service exists only on Windows"]);
}

fn install(host: &Path, prefix: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "install",
        "--unattended",
        "--monitor",
        "colinux",
        "--prefix",
        p(prefix),
    ];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    cmd(&args).env(HOOK, host).output().expect("install")
}

#[test]
fn the_install_step_creates_rolls_back_and_uninstalls_only_its_own_service() {
    let t = tempdir("service-step");
    let host = t.path().join("host.json");
    let prefix = t.path().join("machine");
    let on = ["--set", "SERVICE=1", "--set", "SERVICENAME=vm1"];

    // A dry run shows the step and changes nothing.
    let o = install(&host, &prefix, &[&on[..], &["--dry-run"]].concat());
    expect(
        &o,
        0,
        &["service:        vm1 (starts at boot as LocalSystem, after CoLinuxDriver"],
    );
    assert!(!host.exists() && !prefix.exists(), "{}", text(&o));

    // A failure after the service step deletes the service it made, with the rest.
    let o = cmd(&[
        &[
            "install",
            "--unattended",
            "--monitor",
            "colinux",
            "--prefix",
            p(&prefix),
        ],
        SMALL,
        &on[..],
    ]
    .concat())
    .env(HOOK, &host)
    .env("COLINUX_SETUP_TEST_FAIL_AT", "state")
    .output()
    .expect("install");
    expect(&o, FAILED, &["failure injected at step state"]);
    assert_eq!(host_state(&host)["services"], serde_json::json!({}));
    assert_eq!(
        actions(&host).last().map(String::as_str),
        Some("delete vm1")
    );
    assert!(!prefix.exists(), "{}", text(&o));

    // Installed, recorded, shown by status; a re-install changes nothing. Without a
    // kit there is no colinux-daemon.exe in the folder: the service is made, with a
    // warning that it cannot start until the daemon is there.
    expect(
        &install(&host, &prefix, &on),
        0,
        &[
            "service vm1",
            "fails at every boot until a kit with colinux-daemon.exe",
        ],
    );
    let s = host_state(&host);
    assert_eq!(
        s["services"]["vm1"]["spec"]["command_line"],
        format!(
            "\"{0}/colinux-daemon.exe\" @{0}/config.txt --run-service vm1",
            p(&prefix)
        )
    );
    let n = actions(&host).len();
    let st = cmd(&["status", "--json", "--prefix", p(&prefix)])
        .env(HOOK, &host)
        .output()
        .expect("status");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status json");
    assert_eq!(st["service"]["created"], true, "{st}");
    assert_eq!(st["service"]["host"]["state"], "stopped", "{st}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.join("install-state.json")).expect("state"))
            .expect("json");
    assert_eq!(saved["service"]["name"], "vm1");
    assert_eq!(saved["answers"]["SERVICE"], "1");
    expect(&install(&host, &prefix, &on), 0, &[]);
    assert_eq!(actions(&host).len(), n, "{:?}", actions(&host));
    // `service status` finds the install's SERVICENAME by itself.
    expect(
        &service(&host, &["status", "--prefix", p(&prefix)]),
        0,
        &["service vm1"],
    );

    // Turning SERVICE off later keeps the service, says how to remove it, and
    // uninstall still knows it.
    let o = install(&host, &prefix, &["--set", "SERVICE=0"]);
    expect(&o, 0, &["the service vm1 an earlier install made is kept"]);
    assert!(host_state(&host)["services"]["vm1"].is_object());

    // Uninstall removes the service this install made, before the driver.
    expect(
        &cmd(&["uninstall", "--prefix", p(&prefix)])
            .env(HOOK, &host)
            .output()
            .expect("uninstall"),
        0,
        &[],
    );
    assert_eq!(host_state(&host)["services"], serde_json::json!({}));
}

#[test]
fn a_service_that_was_there_before_is_updated_but_never_deleted() {
    let t = tempdir("service-pre");
    let host = t.path().join("host.json");
    let prefix = t.path().join("machine");
    let other = t.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("config.txt"), "kernel=vmlinux\n").expect("config");
    // Someone's own service of that name, for another folder.
    expect(
        &service(&host, &["install", "--prefix", p(&other)]),
        0,
        &["installed"],
    );

    let o = cmd(&[
        &[
            "install",
            "--unattended",
            "--monitor",
            "colinux",
            "--prefix",
            p(&prefix),
        ],
        SMALL,
        &["--set", "SERVICE=1"],
    ]
    .concat())
    .env(HOOK, &host)
    .env("COLINUX_SETUP_TEST_FAIL_AT", "state")
    .output()
    .expect("install");
    expect(&o, FAILED, &["failure injected at step state"]);
    assert!(
        host_state(&host)["services"]["coLinux"].is_object(),
        "a rollback keeps a service it did not make"
    );

    expect(&install(&host, &prefix, &["--set", "SERVICE=1"]), 0, &[]);
    let s = host_state(&host);
    assert!(
        s["services"]["coLinux"]["spec"]["command_line"]
            .as_str()
            .unwrap_or_default()
            .contains(p(&prefix)),
        "updated to this machine: {s}"
    );
    assert!(
        actions(&host)
            .iter()
            .any(|a| a.starts_with("change coLinux (command line, display name, description")),
        "{:?}",
        actions(&host)
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.join("install-state.json")).expect("state"))
            .expect("json");
    assert_eq!(saved["service"]["created"], false, "{saved}");
    expect(
        &cmd(&["uninstall", "--prefix", p(&prefix)])
            .env(HOOK, &host)
            .output()
            .expect("uninstall"),
        0,
        &[],
    );
    assert!(
        host_state(&host)["services"]["coLinux"].is_object(),
        "uninstall keeps a service it did not make"
    );
}

#[test]
fn the_plan_refuses_service_answers_it_cannot_honour_before_any_change() {
    let t = tempdir("service-plan");
    let host = t.path().join("host.json");
    let prefix = t.path().join("machine");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--monitor", "uml", "--set", "SERVICE=1"],
            "exists only for the coLinux monitor (Windows); this plan's monitor is uml",
        ),
        (
            &["--monitor", "colinux", "--set", "SERVICENAME=a\\b"],
            "SERVICENAME (--set SERVICENAME): service name \"a\\\\b\": has a / or \\",
        ),
        (
            &["--monitor", "colinux", "--set", "SERVICE=maybe"],
            "SERVICE=maybe (--set SERVICE): expected 1",
        ),
        (
            &[
                "--monitor",
                "colinux",
                "--set",
                "SERVICE=1",
                "--set",
                "SERVICENAME=-x",
            ],
            "starts with - or @",
        ),
    ];
    for (extra, why) in cases {
        let mut args = vec!["install", "--unattended", "--prefix", p(&prefix)];
        args.extend_from_slice(SMALL);
        args.extend_from_slice(extra);
        let o = cmd(&args).env(HOOK, &host).output().expect("install");
        let all = text(&o);
        assert_ne!(o.status.code(), Some(0), "{all}");
        assert!(all.contains(why), "missing {why:?} in\n{all}");
        assert!(!prefix.exists() && !host.exists(), "{all}");
    }
    // In an answer file too.
    let answers = t.path().join("answers.toml");
    std::fs::write(&answers, "MONITOR = \"qemu\"\nSERVICE = 1\n").expect("write");
    let mut args = vec![
        "install",
        "--unattended",
        "--prefix",
        p(&prefix),
        "--answers",
        p(&answers),
    ];
    args.extend_from_slice(SMALL);
    let o = cmd(&args).env(HOOK, &host).output().expect("install");
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("answers.toml"), "{}", text(&o));
    assert!(!prefix.exists() && !host.exists());
}

#[test]
fn an_uninstall_whose_service_windows_deletes_at_reboot_exits_3010() {
    let t = tempdir("service-reboot");
    let host = t.path().join("host.json");
    let prefix = t.path().join("machine");
    expect(&install(&host, &prefix, &["--set", "SERVICE=1"]), 0, &[]);
    let mut s = host_state(&host);
    s["services"]["coLinux"]["running"] = true.into();
    s["services"]["coLinux"]["handle_open"] = true.into();
    std::fs::write(&host, s.to_string()).expect("write");
    let o = cmd(&["uninstall", "--prefix", p(&prefix)])
        .env(HOOK, &host)
        .output()
        .expect("uninstall");
    expect(&o, REBOOT, &["at the next reboot (exit 3010)"]);
    let s = host_state(&host);
    assert_eq!(s["services"]["coLinux"]["marked_for_deletion"], true, "{s}");
    assert_eq!(
        s["services"]["coLinux"]["running"], false,
        "stopped first: {s}"
    );
    assert!(!prefix.join("install-state.json").exists());
}

#[test]
fn the_wizards_service_task_makes_the_service_unless_service_says_otherwise() {
    let t = tempdir("service-task");
    let host = t.path().join("host.json");
    let prefix = t.path().join("machine");
    expect(
        &install(&host, &prefix, &["--set", "TASKS=startmenu,service"]),
        0,
        &["service coLinux"],
    );
    assert!(
        host_state(&host)["services"]["coLinux"].is_object(),
        "{}",
        host_state(&host)
    );
    let other = t.path().join("other");
    let host2 = t.path().join("host2.json");
    expect(
        &install(
            &host2,
            &other,
            &["--set", "TASKS=service", "--set", "SERVICE=0"],
        ),
        0,
        &[],
    );
    assert!(!host2.exists() || host_state(&host2)["services"] == serde_json::json!({}));
}
