//! `tap install | remove | status`, the install's `tap` step and a guest on the TAP, end
//! to end in network namespaces the tests create (`ip netns add`) and delete: nothing
//! is changed on the host's own network and no traffic leaves them.
//!
//! The oracle is iproute2 (`ip -d -j link`, `ip -j addr`) for what the kernel has,
//! `setpriv` drops the right to create a TAP (CAP_NET_ADMIN) or runs as `nobody`, and
//! the end-to-end test reaches a guest (on the monitor this host runs guests on:
//! `common::host`) from the namespace with the host's busybox `ping` and `nc`. Machines
//! are installed for that monitor. These tests need root (they create namespaces).

use crate::common;

use common::{Booting, FAILED, SMALL, host, host_args, p, secs, tempdir, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        require_root_and_tools();
        let name = format!(
            "tapcli-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip netns exec NS PROGRAM ARGS`.
    fn exec(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program])
            .args(args)
            .stdin(Stdio::null())
            .env_remove("COLINUX_SETUP_TEST_PAUSE_AT")
            .env_remove("COLINUX_SETUP_TEST_FAIL_AT")
            .env_remove("COLINUX_SETUP_TEST_FIRST_BOOT")
            .env_remove("SUDO_UID");
        // The host monitor's accelerator, for the boots and their probes in here.
        for (k, v) in host().env() {
            c.env(k, v);
        }
        c
    }

    /// `colinux-setup ARGS` inside the namespace.
    fn bin(&self, args: &[&str]) -> Output {
        self.exec(common::BIN, args)
            .output()
            .expect("run colinux-setup")
    }

    /// `colinux-setup ARGS` inside the namespace, through `setpriv PRIV...`.
    fn bin_as(&self, setpriv: &[&str], args: &[&str]) -> Output {
        self.exec("setpriv", &[setpriv, &[common::BIN], args].concat())
            .output()
            .expect("run setpriv colinux-setup")
    }

    /// `ip ARGS` inside the namespace; must succeed.
    fn ip(&self, args: &[&str]) -> String {
        run_ok(&mut self.exec("ip", args))
    }

    /// The link `name` as `ip -d -j link show` reports it, or `None`.
    fn link(&self, name: &str) -> Option<serde_json::Value> {
        let o = self
            .exec("ip", &["-d", "-j", "link", "show", "dev", name])
            .output()
            .expect("ip");
        if !o.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ip -j");
        v.get(0).cloned()
    }

    /// `a.b.c.d/len` addresses of `name`.
    fn addrs(&self, name: &str) -> Vec<String> {
        let out = self.ip(&["-4", "-j", "addr", "show", "dev", name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j addr");
        v[0]["addr_info"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every link name in the namespace.
    fn links(&self) -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&self.ip(&["-j", "link", "show"])).expect("ip -j link");
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn require_root_and_tools() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the TAP tests create network namespaces and need root (run scripts/test as root or through sudo)"
    );
    for tool in ["ip", "setpriv", "busybox"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "`{tool}` is missing: install iproute2, util-linux and busybox-static (scripts/test does)"
        );
    }
    assert!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: this host has no TUN/TAP support (modprobe tun)"
    );
}

fn run_ok(c: &mut Command) -> String {
    let o = c.output().expect("spawn");
    assert!(o.status.success(), "{c:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn expect(o: &Output, code: i32, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    for n in needles {
        assert!(t.contains(n), "expected `{n}` in:\n{t}");
    }
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// A profile file: the minimal profile with a TAP adapter instead of slirp.
fn tap_profile(dir: &Path, name: &str, subnets: &[&str], optional: bool) -> PathBuf {
    let minimal = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/minimal.toml"),
    )
    .expect("profiles/minimal.toml");
    let quoted: Vec<String> = subnets.iter().map(|s| format!("\"{s}\"")).collect();
    let tap = format!(
        "[network.tap]\nname = \"{name}\"\nsubnets = [{}]\noptional = {optional}\n",
        quoted.join(", ")
    );
    assert!(
        minimal.contains("[network]\nslirp = []\n"),
        "minimal.toml changed: {minimal}"
    );
    let text = minimal.replace("[network]\nslirp = []\n", &tap);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write profile");
    path
}

#[test]
fn create_reuse_status_and_remove() {
    let ns = Netns::new();
    let o = ns.bin(&[
        "tap",
        "install",
        "--name",
        "tapc0",
        "--subnet",
        "10.55.1.0/24",
        "--owner",
        "1234",
    ]);
    expect(
        &o,
        0,
        &[
            "TAP adapter tapc0 created",
            "10.55.1.1 on 10.55.1.0/24",
            "uid 1234",
        ],
    );
    let link = ns.link("tapc0").expect("the adapter exists");
    let info = &link["linkinfo"];
    assert_eq!(info["info_kind"], "tun", "{link}");
    assert_eq!(info["info_data"]["type"], "tap", "{link}");
    assert_eq!(info["info_data"]["pi"], false, "{link}");
    assert_eq!(info["info_data"]["persist"], true, "{link}");
    assert_eq!(info["info_data"]["user"], 1234, "{link}");
    assert!(
        link["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP"),
        "{link}"
    );
    assert_eq!(ns.addrs("tapc0"), ["10.55.1.1/24"]);
    let index = link["ifindex"].clone();

    // A second run reuses it: same interface, one address, nothing new.
    let o = ns.bin(&[
        "tap",
        "install",
        "--name",
        "tapc0",
        "--subnet",
        "10.55.1.0/24",
        "--owner",
        "1234",
    ]);
    expect(&o, 0, &["TAP adapter tapc0 reused"]);
    assert_eq!(ns.link("tapc0").expect("still there")["ifindex"], index);
    assert_eq!(ns.addrs("tapc0"), ["10.55.1.1/24"]);
    assert_eq!(ns.links().len(), 2, "lo and tapc0 only: {:?}", ns.links());

    // Status reads what iproute2 reads.
    let o = ns.bin(&["tap", "status", "--name", "tapc0", "--json"]);
    expect(&o, 0, &[]);
    let s = json(&o);
    let ad = &s["host"]["adapter"];
    assert_eq!(ad["mac"], link["address"], "{s}");
    assert_eq!(ad["addresses"][0], "10.55.1.1/24", "{s}");
    assert_eq!(ad["up"], true);
    assert_eq!(ad["owner"], 1234);
    assert_eq!(ad["persistent"], true);

    // Moving it to another network replaces its address.
    let o = ns.bin(&[
        "tap",
        "install",
        "--name",
        "tapc0",
        "--subnet",
        "10.55.2.0/24",
    ]);
    expect(&o, 0, &["reused"]);
    assert_eq!(ns.addrs("tapc0"), ["10.55.2.1/24"]);

    let o = ns.bin(&["tap", "remove", "--name", "tapc0"]);
    expect(&o, 0, &["TAP adapter tapc0 removed"]);
    assert!(ns.link("tapc0").is_none(), "{:?}", ns.links());
    let o = ns.bin(&["tap", "remove", "--name", "tapc0"]);
    expect(&o, 0, &["nothing to do"]);
    let o = ns.bin(&["tap", "status", "--name", "tapc0"]);
    expect(&o, 1, &["not present"]);
}

#[test]
fn an_interface_that_is_not_a_tap_is_never_touched() {
    let ns = Netns::new();
    ns.ip(&["tuntap", "add", "dev", "tunx", "mode", "tun"]);
    let o = ns.bin(&[
        "tap",
        "install",
        "--name",
        "tunx",
        "--subnet",
        "10.55.9.0/24",
    ]);
    expect(&o, FAILED, &["tunx", "is not a TAP adapter"]);
    let o = ns.bin(&["tap", "remove", "--name", "tunx"]);
    expect(&o, FAILED, &["is not a TAP adapter"]);
    assert!(ns.link("tunx").is_some());
    assert!(ns.addrs("tunx").is_empty());
    // Names the kernel cannot take are refused with the reason.
    let o = ns.bin(&[
        "tap",
        "install",
        "--name",
        "a-name-far-too-long",
        "--subnet",
        "10.55.9.0/24",
    ]);
    expect(&o, FAILED, &["at most 15 bytes"]);
    let o = ns.bin(&[
        "tap",
        "install",
        "--name",
        "a,b",
        "--subnet",
        "10.55.9.0/24",
    ]);
    expect(&o, FAILED, &["--name"]);
    let o = ns.bin(&["tap", "install", "--name", "tapz", "--subnet", "8.8.8.0/24"]);
    expect(&o, FAILED, &["not a private network"]);
    let o = ns.bin(&["tap", "install", "--prefix", "/nonexistent/machine"]);
    expect(
        &o,
        FAILED,
        &["no machine is installed in /nonexistent/machine"],
    );
    let o = ns.bin(&["tap", "install", "--subnet"]);
    expect(&o, 2, &["--subnet"]);
    assert_eq!(ns.links().len(), 2, "{:?}", ns.links());
}

#[test]
fn the_subnet_choice_skips_networks_busy_by_routes_and_addresses() {
    let ns = Netns::new();
    // The first default candidates made busy: an address inside 10.213.77/24, a route
    // covering 10.213.78/24, a /16 route over 172.29.77/24 and 172.29.78/24.
    ns.ip(&["tuntap", "add", "dev", "busy0", "mode", "tap"]);
    ns.ip(&["link", "set", "busy0", "up"]);
    ns.ip(&["addr", "add", "10.213.77.200/24", "dev", "busy0"]);
    ns.ip(&["route", "add", "10.213.78.0/23", "dev", "busy0"]);
    ns.ip(&["route", "add", "172.29.0.0/16", "dev", "busy0"]);
    let o = ns.bin(&["tap", "install", "--name", "tapc1", "--dry-run", "--json"]);
    expect(&o, 0, &[]);
    let d = json(&o);
    assert_eq!(d["subnet"], "192.168.213.0/24", "{d}");
    assert_eq!(d["would_create"], true);
    let reasons: Vec<String> = d["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| format!("{}: {}", c["subnet"], c["reason"]))
        .collect();
    assert_eq!(reasons.len(), 8, "every default candidate: {reasons:?}");
    assert!(
        reasons[0].contains("the address 10.213.77.200/24 on busy0"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("the route 10.213.78.0/23 on busy0"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("the route 172.29.0.0/16 on busy0"),
        "{reasons:?}"
    );
    assert!(reasons[4].ends_with("null"), "{reasons:?}");
    // The dry run changed nothing.
    assert!(ns.link("tapc1").is_none());
    let o = ns.bin(&["tap", "install", "--name", "tapc1"]);
    expect(&o, 0, &["created", "192.168.213.1 on 192.168.213.0/24"]);
    assert_eq!(ns.addrs("tapc1"), ["192.168.213.1/24"]);
    // Its own network does not count against it on the next run.
    let o = ns.bin(&["tap", "install", "--name", "tapc1"]);
    expect(&o, 0, &["reused", "192.168.213.0/24"]);
}

#[test]
fn an_explicit_colliding_subnet_is_refused_with_the_reason() {
    let t = tempdir("tap-cli-");
    let ns = Netns::new();
    ns.ip(&["tuntap", "add", "dev", "office0", "mode", "tap"]);
    ns.ip(&["addr", "add", "10.66.0.9/16", "dev", "office0"]);
    let o = ns.bin(&[
        "tap",
        "install",
        "--name",
        "tapc2",
        "--subnet",
        "10.66.3.0/24",
    ]);
    expect(
        &o,
        FAILED,
        &[
            "--subnet 10.66.3.0/24 cannot be used",
            "10.66.0.9/16 on office0",
        ],
    );
    assert!(ns.link("tapc2").is_none());
    // The same through the install's SUBNET answer: refused before anything is made.
    let profile = tap_profile(t.path(), "tapc2", &["10.67.1.0/24"], false);
    let prefix = t.path().join("m");
    let o = ns.bin(
        &[
            &[
                "install",
                "--unattended",
                "--prefix",
                p(&prefix),
                "--profile",
                p(&profile),
            ],
            host_args().as_slice(),
            SMALL,
            &["--set", "SUBNET=10.66.3.0/24"],
        ]
        .concat(),
    );
    expect(&o, FAILED, &["SUBNET", "10.66.0.9/16 on office0"]);
    assert!(!prefix.exists());
    assert!(ns.link("tapc2").is_none());
}

#[test]
fn without_cap_net_admin_the_install_fails_naming_the_right_and_rolls_back() {
    let t = tempdir("tap-cli-");
    let ns = Netns::new();
    let profile = tap_profile(t.path(), "tapc3", &["10.68.1.0/24"], false);
    let prefix = t.path().join("m");
    let drop_cap = ["--inh-caps=-net_admin", "--bounding-set=-net_admin"];
    let o = ns.bin_as(&drop_cap, &install_args(&prefix, &profile));
    expect(&o, FAILED, &["TAP adapter tapc3", "CAP_NET_ADMIN"]);
    assert!(!prefix.exists(), "rolled back: the folder it made is gone");
    assert!(ns.link("tapc3").is_none());

    // As `nobody`, /dev/net/tun itself cannot be opened: that is named.
    let o = ns.bin_as(
        &["--reuid=65534", "--regid=65534", "--clear-groups"],
        &[
            "tap",
            "install",
            "--name",
            "tapc3",
            "--subnet",
            "10.68.1.0/24",
        ],
    );
    expect(&o, FAILED, &["/dev/net/tun"]);
    assert!(ns.link("tapc3").is_none());
}

#[test]
fn an_optional_network_is_skipped_without_the_right_and_status_says_so() {
    let t = tempdir("tap-cli-");
    let ns = Netns::new();
    let profile = tap_profile(t.path(), "tapc4", &["10.69.1.0/24"], true);
    let prefix = t.path().join("m");
    let o = ns.bin_as(
        &["--inh-caps=-net_admin", "--bounding-set=-net_admin"],
        &install_args(&prefix, &profile),
    );
    expect(&o, 0, &["networking optional", "CAP_NET_ADMIN"]);
    assert!(ns.link("tapc4").is_none());
    let s = json(&ns.bin(&["status", "--json", "--prefix", p(&prefix)]));
    assert_eq!(s["tap"]["name"], "tapc4", "{s}");
    assert!(
        s["tap"]["skipped"]
            .as_str()
            .unwrap_or("")
            .contains("CAP_NET_ADMIN"),
        "{s}"
    );
    let o = ns.bin(&["tap", "status", "--prefix", p(&prefix)]);
    expect(
        &o,
        1,
        &["not present", "not created at install", "CAP_NET_ADMIN"],
    );
    // Made later by hand, it is recorded; the uninstall then removes it.
    let o = ns.bin(&["tap", "install", "--prefix", p(&prefix)]);
    expect(&o, 0, &["TAP adapter tapc4 created", "10.69.1.1"]);
    let o = ns.bin(&["tap", "status", "--prefix", p(&prefix)]);
    expect(&o, 0, &["10.69.1.1/24", "created by this tool"]);
    let o = ns.bin(&["uninstall", "--prefix", p(&prefix)]);
    expect(&o, 0, &["uninstalled"]);
    assert!(ns.link("tapc4").is_none());
}

#[test]
fn a_failure_after_the_tap_step_removes_the_adapter_it_made_but_not_one_it_found() {
    let t = tempdir("tap-cli-");
    let ns = Netns::new();
    let profile = tap_profile(t.path(), "tapc5", &["10.70.1.0/24"], false);
    let prefix = t.path().join("m");
    let args = install_args(&prefix, &profile);
    let o = ns
        .exec(common::BIN, &args)
        .env("COLINUX_SETUP_TEST_FAIL_AT", "state")
        .output()
        .expect("install");
    expect(&o, FAILED, &["failure injected at step state"]);
    assert!(ns.link("tapc5").is_none(), "the rollback deleted it");
    assert!(!prefix.exists());

    // An adapter that was there before is reused, kept by a rollback and by uninstall.
    ns.ip(&["tuntap", "add", "dev", "tapc5", "mode", "tap"]);
    let o = ns
        .exec(common::BIN, &args)
        .env("COLINUX_SETUP_TEST_FAIL_AT", "state")
        .output()
        .expect("install");
    expect(&o, FAILED, &[]);
    assert!(ns.link("tapc5").is_some());
    let o = ns.bin(&args);
    expect(&o, 0, &[]);
    let s = json(&ns.bin(&["status", "--json", "--prefix", p(&prefix)]));
    assert_eq!(s["tap"]["created"], false, "{s}");
    assert_eq!(ns.addrs("tapc5"), ["10.70.1.1/24"]);
    expect(&ns.bin(&["uninstall", "--prefix", p(&prefix)]), 0, &[]);
    assert!(ns.link("tapc5").is_some(), "not ours: kept");
}

/// `install --unattended --prefix PREFIX --profile PROFILE` with the small sizes, for
/// the host's monitor.
fn install_args<'a>(prefix: &'a Path, profile: &'a Path) -> Vec<&'a str> {
    [
        &[
            "install",
            "--unattended",
            "--prefix",
            p(prefix),
            "--profile",
            p(profile),
        ],
        host_args().as_slice(),
        SMALL,
    ]
    .concat()
}

/// A `boot` inside the namespace with its console on pipes.
fn booting(ns: &Netns, prefix: &Path) -> Booting {
    Booting::spawn(ns.exec(
        common::BIN,
        &[
            "boot",
            "--prefix",
            p(prefix),
            "--timeout",
            &secs(120).to_string(),
        ],
    ))
}

#[test]
fn a_guest_on_the_tap_answers_the_host_and_uninstall_leaves_no_adapter() {
    let t = tempdir("tap-cli-");
    let ns = Netns::new();
    let profile = tap_profile(t.path(), "tape2e", &["10.71.7.0/24"], false);
    let prefix = t.path().join("m");
    let o = ns.bin(&install_args(&prefix, &profile));
    expect(&o, 0, &[]);
    let config = std::fs::read_to_string(prefix.join("config.txt")).expect("config.txt");
    assert!(config.contains("eth0=tuntap,tape2e,"), "{config}");
    assert_eq!(ns.addrs("tape2e"), ["10.71.7.1/24"]);

    let start = Instant::now();
    let mut boot = booting(&ns, &prefix);
    boot.wait_for("is up", secs(60));
    // Typed once the shell reads (a PC's serial port drops what comes before).
    boot.wait_for("/ # ", secs(20));
    // The guest serves one line over TCP; the host reaches it by ping and by connect.
    boot.type_line("echo guest-tcp-ok | nc -l -p 7777 &\n");
    let mut pinged = false;
    for _ in 0..40 {
        let o = ns
            .exec("busybox", &["ping", "-c", "1", "-W", "1", "10.71.7.2"])
            .output()
            .expect("ping");
        if o.status.success() {
            pinged = true;
            break;
        }
    }
    assert!(
        pinged,
        "the guest did not answer ping on 10.71.7.2:\n{}",
        boot.text()
    );
    let mut got = String::new();
    for _ in 0..40 {
        let o = ns
            .exec("busybox", &["nc", "-w", "2", "10.71.7.2", "7777"])
            .output()
            .expect("nc");
        got = String::from_utf8_lossy(&o.stdout).into_owned();
        if got.contains("guest-tcp-ok") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        got.contains("guest-tcp-ok"),
        "no answer over TCP ({got:?}):\n{}",
        boot.text()
    );
    eprintln!("boot to ping and TCP answer: {:?}", start.elapsed());
    boot.type_line("poweroff -f\n");
    let _ = boot.wait(secs(60));

    // The host's network changed: boot says so before starting anything.
    ns.ip(&["tuntap", "add", "dev", "vpn0", "mode", "tap"]);
    ns.ip(&["link", "set", "vpn0", "up"]);
    ns.ip(&["route", "add", "10.71.0.0/16", "dev", "vpn0"]);
    let o = ns.bin(&["boot", "--prefix", p(&prefix), "--timeout", "30"]);
    expect(
        &o,
        FAILED,
        &[
            "10.71.7.0/24",
            "the route 10.71.0.0/16 on vpn0",
            "network changed since the install",
        ],
    );
    ns.ip(&["link", "del", "vpn0"]);

    let o = ns.bin(&["uninstall", "--prefix", p(&prefix)]);
    expect(&o, 0, &["uninstalled"]);
    assert!(ns.link("tape2e").is_none(), "{:?}", ns.links());
    assert_eq!(ns.links(), ["lo"]);
}

#[test]
fn an_uninstall_without_the_right_keeps_everything_and_can_be_run_again() {
    let t = tempdir("tap-cli-");
    let ns = Netns::new();
    let profile = tap_profile(t.path(), "tapc6", &["10.72.1.0/24"], false);
    let prefix = t.path().join("m");
    let args = install_args(&prefix, &profile);
    expect(&ns.bin(&args), 0, &["TAP adapter tapc6"]);
    let s = json(&ns.bin(&["status", "--json", "--prefix", p(&prefix)]));
    assert_eq!(s["tap"]["created"], true, "{s}");
    assert_eq!(s["tap_adapter"]["ok"], true, "{s}");
    assert_eq!(
        s["tap_adapter"]["adapter"]["addresses"][0], "10.72.1.1/24",
        "{s}"
    );
    let o = ns.bin_as(
        &["--inh-caps=-net_admin", "--bounding-set=-net_admin"],
        &["uninstall", "--prefix", p(&prefix)],
    );
    expect(
        &o,
        FAILED,
        &["cannot remove the TAP adapter tapc6", "CAP_NET_ADMIN"],
    );
    assert!(prefix.join("config.txt").exists());
    assert!(prefix.join("install-state.json").exists());
    assert!(ns.link("tapc6").is_some());
    expect(
        &ns.bin(&["uninstall", "--prefix", p(&prefix)]),
        0,
        &["uninstalled"],
    );
    assert!(ns.link("tapc6").is_none());
    assert!(!prefix.join("install-state.json").exists());
}
