//! `driver verify | install | remove | status` and the install's driver step, against
//! files signed by osslsigncode with a test PKI made by openssl in the test.
//!
//! The host side runs through the recording host of the test hook
//! (`COLINUX_SETUP_TEST_DRIVER_HOST=FILE`, the JSON state of a simulated service
//! manager): the Windows Service Control Manager itself is exercised under Wine by
//! tests/msi.rs (a test driver Wine really loads, installed and removed by setup.msi).

use crate::common;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{BUSY, FAILED, SMALL, cmd, kit_init, p, tempdir, text};
use support::{Pki, minimal_pe};

const REBOOT: i32 = 3010 & 0xff;

struct Fixture {
    t: tempfile::TempDir,
    pki: Pki,
    unsigned: PathBuf,
    sys: PathBuf,
}

fn fixture() -> Fixture {
    let t = tempdir("driver-cli");
    let pki = Pki::new(&t.path().join("pki"));
    let unsigned = t.path().join("unsigned.sys");
    std::fs::write(&unsigned, minimal_pe(b"\xc3coLinux test driver")).expect("write");
    let sys = t.path().join("linux.sys");
    pki.sign("chain.pem", "leaf.key", &unsigned, &sys);
    Fixture {
        t,
        pki,
        unsigned,
        sys,
    }
}

fn verify(file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["driver", "verify", p(file)];
    args.extend_from_slice(extra);
    cmd(&args).output().expect("driver verify")
}

fn expect(o: &Output, code: i32, words: &[&str]) {
    let all = text(o);
    assert_eq!(o.status.code(), Some(code), "{all}");
    for w in words {
        assert!(all.contains(w), "missing {w:?} in\n{all}");
    }
}

/// A copy of `src` with one byte flipped at `at` (from the end when negative).
fn flipped(src: &Path, dst: &Path, at: isize) -> PathBuf {
    let mut d = std::fs::read(src).expect("read");
    let i = if at < 0 {
        d.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    d[i] ^= 0x10;
    std::fs::write(dst, &d).expect("write");
    dst.to_path_buf()
}

#[test]
fn verify_accepts_the_pinned_signer_and_names_each_failed_check() {
    let f = fixture();
    let ca = f.pki.path("ca.pem");
    expect(
        &verify(&f.sys, &["--signer", p(&ca)]),
        0,
        &["trusted", "CN=coLinux Test Publisher", "chain:"],
    );
    let leaf = f.pki.thumbprint("leaf.pem");
    let o = verify(&f.sys, &["--signer", &format!("sha256:{leaf}"), "--json"]);
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["trusted"], true);
    assert_eq!(v["report"]["thumbprint"], leaf.as_str());
    // A .exe-named copy is the same file to Authenticode.
    let exe = f.t.path().join("driver.exe");
    std::fs::copy(&f.sys, &exe).expect("copy");
    expect(&verify(&exe, &["--signer", p(&ca)]), 0, &["trusted"]);

    let body = flipped(&f.sys, &f.t.path().join("body.sys"), 0x210);
    expect(
        &verify(&body, &["--signer", p(&ca)]),
        1,
        &[
            "refused: file digest check failed",
            "changed after it was signed",
        ],
    );
    // The signature ends the file (no unsigned attributes), before the 8-byte padding.
    let sig = flipped(&f.sys, &f.t.path().join("sig.sys"), -12);
    let o = verify(&sig, &["--signer", p(&ca), "--json"]);
    expect(&o, 1, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["check"], "signature", "{v}");
    expect(
        &verify(&f.sys, &["--signer", p(&f.pki.path("other-ca.pem"))]),
        1,
        &["refused: chain check failed", "Some Other Root"],
    );
    let expired = f.t.path().join("expired.sys");
    f.pki
        .sign("expired-chain.pem", "expired.key", &f.unsigned, &expired);
    expect(
        &verify(&expired, &["--signer", p(&ca)]),
        1,
        &["refused: validity check failed", "expired"],
    );
    expect(
        &verify(&f.unsigned, &["--signer", p(&ca)]),
        1,
        &["refused: unsigned check failed"],
    );

    // Test-signing: accepted only when asked, and loudly.
    expect(
        &verify(
            &f.sys,
            &[
                "--signer",
                p(&f.pki.path("other-ca.pem")),
                "--allow-test-signing",
            ],
        ),
        0,
        &[
            "NOT trusted",
            "WARNING: TEST-SIGNING ALLOWED",
            "chain check failed",
            "test mode",
        ],
    );
    expect(
        &verify(&body, &["--allow-test-signing"]),
        1,
        &["file digest check failed"],
    );
    // No pin, no test-signing: a usage error that says what to give.
    expect(&verify(&f.sys, &[]), 2, &["--signer"]);
    expect(
        &verify(&f.sys, &["--signer", "sha256:abc"]),
        2,
        &["64 hexadecimal"],
    );
}

fn host_state(file: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(file).expect("host state")).expect("host json")
}

fn driver(host: &Path, args: &[&str]) -> Output {
    let mut c = cmd(&[&["driver"], args].concat());
    c.env("COLINUX_SETUP_TEST_DRIVER_HOST", host);
    c.output().expect("driver")
}

#[test]
fn install_remove_status_through_the_host_trait() {
    let f = fixture();
    let prefix = f.t.path().join("m");
    std::fs::create_dir_all(&prefix).expect("mkdir");
    let file = prefix.join("linux.sys");
    std::fs::copy(&f.sys, &file).expect("copy");
    let host = f.t.path().join("host.json");
    let ca = f.pki.path("ca.pem");
    let inst = [
        "install",
        "--prefix",
        p(&prefix),
        "--file",
        p(&file),
        "--signer",
        p(&ca),
    ];

    // A tampered driver is refused before the host is touched.
    let bad = flipped(&f.sys, &prefix.join("bad.sys"), 0x210);
    let o = driver(
        &host,
        &[
            "install",
            "--prefix",
            p(&prefix),
            "--file",
            p(&bad),
            "--signer",
            p(&ca),
        ],
    );
    expect(
        &o,
        FAILED,
        &["file digest check failed", "nothing was installed"],
    );
    assert!(!host.exists(), "the host was touched: {}", text(&o));

    expect(
        &driver(&host, &inst),
        0,
        &["installed", "CN=coLinux Test Publisher"],
    );
    let s = host_state(&host);
    assert_eq!(s["installed"], true);
    assert_eq!(s["running"], true);
    assert_eq!(s["path"], p(&file));
    expect(&driver(&host, &inst), 0, &["already installed"]);
    assert_eq!(
        host_state(&host)["actions"].as_array().map(Vec::len),
        Some(2)
    );
    let o = driver(&host, &["status", "--json"]);
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["driver"]["state"], "running");
    assert_eq!(v["driver"]["path"], p(&file));

    // Refused while the machine is in use: `boot` and `install` hold this lock.
    let lock = prefix.join(".colinux-setup.lock");
    std::fs::write(&lock, b"").expect("lock file");
    // --no-fork: the lock dies with the process we kill (no sleeping child keeps it).
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(&lock)
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("flock (util-linux)");
    // Only once flock holds the lock (a second, non-blocking flock then fails) is the
    // remove tried: before that it would run, and rightly.
    let mut held = false;
    for _ in 0..200 {
        let probe = Command::new("flock")
            .args(["--nonblock", "--conflict-exit-code", "9"])
            .arg(&lock)
            .arg("true")
            .status()
            .expect("flock");
        if probe.code() == Some(9) {
            held = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(held, "flock did not take the lock");
    let o = driver(&host, &["remove", "--prefix", p(&prefix)]);
    let _ = holder.kill();
    let _ = holder.wait();
    expect(&o, BUSY, &["running", "stop it first"]);
    assert_eq!(host_state(&host)["installed"], true);

    expect(
        &driver(&host, &["remove", "--prefix", p(&prefix)]),
        0,
        &["stopped and removed"],
    );
    let s = host_state(&host);
    assert_eq!(s["installed"], false);
    let actions: Vec<&str> = s["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(
        actions[2..],
        ["stop colinux", "delete colinux"],
        "{actions:?}"
    );
    expect(&driver(&host, &["status"]), 1, &["not-installed"]);
    expect(
        &driver(&host, &["remove", "--prefix", p(&prefix)]),
        0,
        &["not installed; nothing to do"],
    );

    // Another program holds a handle: Windows only marks the service; 3010.
    expect(&driver(&host, &inst), 0, &["installed"]);
    let mut s = host_state(&host);
    s["handle_open"] = serde_json::Value::Bool(true);
    std::fs::write(&host, s.to_string()).expect("write");
    expect(
        &driver(&host, &["remove", "--prefix", p(&prefix)]),
        REBOOT,
        &["marked for deletion"],
    );
    expect(
        &driver(&host, &inst),
        FAILED,
        &["marked for deletion; reboot"],
    );

    // --dry-run changes nothing.
    let before = std::fs::read(&host).expect("read");
    let mut c = cmd(&[
        "driver",
        "install",
        "--prefix",
        p(&prefix),
        "--file",
        p(&file),
        "--signer",
        p(&ca),
        "--dry-run",
    ]);
    let o = c.output().expect("dry run");
    expect(&o, 0, &["dry run: nothing was changed"]);
    assert_eq!(std::fs::read(&host).expect("read"), before);

    // Issue 20: a dry run on the test hook's host reads its state and writes nothing,
    // as the service's does (it used to act on the file).
    let o = driver(
        &host,
        &[
            "install",
            "--prefix",
            p(&prefix),
            "--file",
            p(&file),
            "--signer",
            p(&ca),
            "--dry-run",
        ],
    );
    expect(&o, FAILED, &["marked for deletion; reboot"]);
    expect(
        &driver(&host, &["remove", "--prefix", p(&prefix), "--dry-run"]),
        REBOOT,
        &[
            "marked for deletion; Windows removes it at the next reboot (dry run: nothing was changed)",
        ],
    );
    assert_eq!(std::fs::read(&host).expect("read"), before);

    // Not elevated: the same refusal, in the same words, as the service host's.
    let mut s = host_state(&host);
    s["marked_for_deletion"] = false.into();
    s["installed"] = false.into();
    s["access_denied"] = true.into();
    std::fs::write(&host, s.to_string()).expect("write");
    expect(
        &driver(&host, &inst),
        FAILED,
        &[
            "creating the colinux driver: access denied; run as an administrator",
            "the driver host (recording) refused",
        ],
    );
}

/// A kit with the signed driver and its CA, for the coLinux monitor.
fn driver_kit(f: &Fixture, driver: &Path, signer: Option<&str>) -> PathBuf {
    let kit = f.t.path().join("kit");
    let _ = std::fs::remove_dir_all(&kit);
    std::fs::create_dir_all(kit.join("certs")).expect("mkdir");
    std::fs::copy(driver, kit.join("linux.sys")).expect("copy");
    std::fs::copy(f.pki.path("ca.pem"), kit.join("certs/ca.pem")).expect("copy");
    match signer {
        Some(s) => kit_init(&kit, &["--signer", &format!("linux.sys={s}")]),
        None => kit_init(&kit, &[]),
    }
    kit
}

fn install(host: &Path, kit: &Path, prefix: &Path, extra: &[&str]) -> Output {
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
    let mut c = cmd(&args);
    c.env("COLINUX_SETUP_TEST_DRIVER_HOST", host);
    c.output().expect("install")
}

#[test]
fn the_install_verifies_installs_and_rolls_back_the_driver_and_uninstall_removes_it() {
    let f = fixture();
    let host = f.t.path().join("host.json");
    let prefix = f.t.path().join("machine");
    let kit = driver_kit(&f, &f.sys, Some("certs/ca.pem"));
    expect(
        &cmd(&["kit", "verify", p(&kit)])
            .output()
            .expect("kit verify"),
        0,
        &["Authenticode signature trusted"],
    );

    // A failure after the driver step rolls the driver back with everything else.
    let mut args = vec![
        "install",
        "--unattended",
        "--monitor",
        "colinux",
        "--kit",
        p(&kit),
        "--prefix",
        p(&prefix),
    ];
    args.extend_from_slice(SMALL);
    let o = cmd(&args)
        .env("COLINUX_SETUP_TEST_DRIVER_HOST", &host)
        .env("COLINUX_SETUP_TEST_FAIL_AT", "state")
        .output()
        .expect("install");
    expect(&o, FAILED, &["failure injected at step state"]);
    let s = host_state(&host);
    assert_eq!(s["installed"], false, "{s}");
    assert!(s["actions"].to_string().contains("delete"), "{s}");
    assert!(!prefix.exists(), "{}", text(&o));

    let o = install(&host, &kit, &prefix, &[]);
    expect(&o, 0, &["driver colinux"]);
    let s = host_state(&host);
    assert_eq!(s["installed"], true, "{s}");
    assert_eq!(s["path"], p(&prefix.join("linux.sys")));
    assert_eq!(
        std::fs::read(prefix.join("linux.sys")).expect("driver copied"),
        std::fs::read(&f.sys).expect("read")
    );
    let o = cmd(&["status", "--json", "--prefix", p(&prefix)])
        .env("COLINUX_SETUP_TEST_DRIVER_HOST", &host)
        .output()
        .expect("status");
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status json");
    assert_eq!(st["driver"]["host"]["state"], "running", "{st}");
    assert_eq!(st["driver"]["created"], true, "{st}");
    assert!(
        st["driver"]["signer"]
            .as_str()
            .unwrap_or_default()
            .contains("coLinux Test Publisher"),
        "{st}"
    );

    let o = cmd(&["uninstall", "--prefix", p(&prefix)])
        .env("COLINUX_SETUP_TEST_DRIVER_HOST", &host)
        .output()
        .expect("uninstall");
    expect(&o, 0, &[]);
    assert_eq!(host_state(&host)["installed"], false);
    assert!(!prefix.join("linux.sys").exists());
}

#[test]
fn the_install_refuses_an_untrusted_driver_before_any_change() {
    let f = fixture();
    let host = f.t.path().join("host.json");
    let prefix = f.t.path().join("machine");

    // Signed by a leaf of another CA than the one the kit pins.
    let other = f.t.path().join("other.sys");
    let pki2 = Pki::new(&f.t.path().join("pki2"));
    pki2.sign("chain.pem", "leaf.key", &f.unsigned, &other);
    let kit = driver_kit(&f, &other, Some("certs/ca.pem"));
    // `kit verify` says the same, as a checker.
    expect(
        &cmd(&["kit", "verify", p(&kit)])
            .output()
            .expect("kit verify"),
        1,
        &["linux.sys: chain check failed", "1 problem(s)"],
    );
    expect(
        &install(&host, &kit, &prefix, &[]),
        FAILED,
        &["linux.sys", "chain check failed", "nothing was changed"],
    );
    assert!(!prefix.exists());
    assert!(!host.exists());

    // Pinned by a thumbprint that is not the signer's.
    let kit = driver_kit(
        &f,
        &f.sys,
        Some(&format!("sha256:{}", f.pki.thumbprint("other-ca.pem"))),
    );
    expect(
        &install(&host, &kit, &prefix, &[]),
        FAILED,
        &["chain check failed"],
    );
    assert!(!prefix.exists());

    // No signer pinned: refused, unless TESTSIGNING=1, which installs with a loud warning.
    let kit = driver_kit(&f, &other, None);
    expect(
        &install(&host, &kit, &prefix, &[]),
        FAILED,
        &["no pinned signer", "TESTSIGNING=1"],
    );
    assert!(!prefix.exists());
    assert!(!host.exists());
    let o = install(&host, &kit, &prefix, &["--set", "TESTSIGNING=1"]);
    expect(&o, 0, &["TEST-SIGNING ALLOWED"]);
    assert_eq!(host_state(&host)["installed"], true);
    let log = std::fs::read_dir(prefix.join("logs"))
        .expect("logs")
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(log.contains("WARNING: TEST-SIGNING ALLOWED"), "{log}");
}
