//! `--kit URL` against a real HTTP server that each test starts on 127.0.0.1
//! (common/http_server.rs): the same kit over HTTP and from a folder gives the same
//! machine; a warm cache makes no file requests; a dropped connection resumes with a
//! range request; a corrupted byte, a 404, a 503 that stays, a hang, a TLS failure and a
//! DNS failure each end in a clear error naming the URL, exit 1603, nothing installed and
//! nothing bad left in the cache; HTTP_PROXY is used and NO_PROXY bypasses it.
//!
//! No other address is contacted: the servers, the proxy and every URL are on
//! 127.0.0.1, and the DNS test runs in a network namespace with no network at all.
//!
//! Machines are installed for the monitor this host runs guests on (`common::host`); the
//! first boot's kit carries that monitor's kernel (and QEMU's initramfs).

use crate::common;
#[path = "common/http_server.rs"]
mod http_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{FAILED, SMALL, add_machine_files, cmd, host, host_cmd, kit_init, p, sha256, text};
use http_server::{Fault, Server};

/// The large file's size: a few MB, as a distribution tarball would be.
const BIG: usize = 3 << 20;

/// Proxy variables this test sets itself, removed from what it inherits.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kit-url-")
        .tempdir()
        .expect("tempdir")
}

/// Pseudo-random bytes (xorshift): incompressible, reproducible.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A kit folder `ROOT/kit`: a small root tree, a distribution with a large file, two
/// identical (empty) files, and kit.toml written by `kit init`.
fn make_kit(root: &Path) -> PathBuf {
    let kit = root.join("kit");
    let files: &[(&str, Vec<u8>)] = &[
        ("rootfs/etc/motd", b"welcome to the kit root\n".to_vec()),
        ("rootfs/etc/issue", b"kit 1.0\n".to_vec()),
        (
            "rootfs/usr/share/doc/README",
            b"a root from a kit\n".to_vec(),
        ),
        ("rootfs/var/log/empty-a", Vec::new()),
        ("rootfs/var/log/empty-b", Vec::new()),
        ("dist/colinux/README", b"the distribution\n".to_vec()),
        ("dist/colinux/big.bin", noise(BIG, 7)),
    ];
    for (rel, data) in files {
        let path = kit.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write");
    }
    kit_init(&kit, &["--name", "test-kit"]);
    kit
}

/// `install --unattended` of the small machine from `kit` (a URL or a folder).
fn install(prefix: &Path, kit: &str, cache: &Path, env: &[(&str, &str)]) -> Output {
    install_cmd(prefix, kit, cache, env, &[])
        .output()
        .expect("run install")
}

/// The install command, with more arguments.
fn install_cmd(
    prefix: &Path,
    kit: &str,
    cache: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Command {
    let mut c = host_cmd(
        &[
            &[
                "install",
                "--unattended",
                "--prefix",
                p(prefix),
                "--kit",
                kit,
                "--cache",
                p(cache),
                "--monitor",
                &host().monitor,
            ],
            SMALL,
            extra,
        ]
        .concat(),
    );
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    c.env_remove("COLINUX_SETUP_CACHE")
        .env("COLINUX_SETUP_HTTP_BACKOFF_MS", "50");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn expect(o: &Output, code: i32, needles: &[&str]) {
    let all = text(o);
    assert_eq!(o.status.code(), Some(code), "{all}");
    for n in needles {
        assert!(all.contains(n), "missing {n:?} in\n{all}");
    }
}

/// The files under `dir`, relative, sorted (folders left out).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under").display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// What a machine is, for comparing two installs into the same prefix: config.txt
/// with the kit folder's path taken out, and the digest of every image.
fn machine(prefix: &Path, kit_dir: &Path) -> (String, Vec<(String, String)>) {
    let config = std::fs::read_to_string(prefix.join("config.txt"))
        .expect("config.txt")
        .replace(p(kit_dir), "KIT");
    let images = ["root.img", "home.img", "swap.img"]
        .iter()
        .map(|i| (i.to_string(), sha256(&prefix.join(i))))
        .collect();
    (config, images)
}

/// The folder a URL install made its kit from, as its log says.
fn kit_dir_of(prefix: &Path) -> PathBuf {
    let logs = prefix.join("logs");
    for e in std::fs::read_dir(&logs).expect("logs").flatten() {
        let t = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(i) = t.find("; kit folder ") {
            let rest = &t[i + "; kit folder ".len()..];
            return PathBuf::from(rest.lines().next().unwrap_or_default());
        }
    }
    panic!("no kit folder in the logs of {}", prefix.display());
}

/// The requests a cold install makes: kit.toml, and one per distinct non-empty file
/// (an empty file needs no request; a digest listed twice is fetched once).
fn cold_requests(kit: &Path) -> usize {
    let mut digests: Vec<String> = files_under(kit)
        .iter()
        .filter(|f| f.as_str() != "kit.toml")
        .map(|f| kit.join(f))
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
        .map(|f| sha256(&f))
        .collect();
    digests.sort();
    digests.dedup();
    1 + digests.len()
}

/// The sha256 kit.toml lists for a kit path.
fn listed_sha(kit: &Path, path: &str) -> String {
    let t = std::fs::read_to_string(kit.join("kit.toml")).expect("kit.toml");
    let at = t
        .find(&format!("path = \"{path}\""))
        .unwrap_or_else(|| panic!("{path} not in kit.toml"));
    let rest = &t[at..];
    let s = rest.find("sha256 = \"").expect("sha256") + "sha256 = \"".len();
    rest[s..s + 64].to_owned()
}

fn assert_nothing_installed(prefix: &Path) {
    assert!(
        !prefix.exists() || files_under(prefix).is_empty(),
        "something was installed: {:?}",
        files_under(prefix)
    );
}

/// The cache holds only verified objects: no partial download, no file whose name is
/// not its own digest.
fn assert_cache_clean(cache: &Path) {
    for f in files_under(&cache.join("objects")) {
        assert!(!f.ends_with(".part"), "a partial download was left: {f}");
        let path = cache.join("objects").join(&f);
        assert_eq!(sha256(&path), f, "a bad object was left in the cache");
    }
}

#[test]
fn a_kit_from_a_url_installs_the_same_machine_as_from_a_folder_and_a_warm_cache_fetches_nothing() {
    let t = tmp();
    let kit = make_kit(t.path());
    let server = Server::serve(t.path());
    let cache = t.path().join("cache");
    let prefix = t.path().join("m");
    let cold = cold_requests(&kit);

    let clock = std::time::Instant::now();
    let o = install(&prefix, &server.url("kit/"), &cache, &[]);
    eprintln!("install from the URL, cold cache: {:?}", clock.elapsed());
    expect(&o, 0, &["installed profile"]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), cold, "kit.toml and each file once: {reqs:#?}");
    assert!(reqs.iter().all(|r| r.status == 200), "{reqs:#?}");
    let kit_dir = kit_dir_of(&prefix);
    assert!(kit_dir.starts_with(&cache), "{}", kit_dir.display());
    // The local kit folder is the served kit, file for file.
    assert_eq!(files_under(&kit_dir), files_under(&kit));
    for f in files_under(&kit) {
        assert_eq!(sha256(&kit_dir.join(&f)), sha256(&kit.join(&f)), "{f}");
    }
    // The root image holds the kit's root tree.
    let motd = common::debugfs(&prefix.join("root.img"), "cat /etc/motd");
    assert_eq!(motd, "welcome to the kit root\n");
    let from_url = machine(&prefix, &kit_dir);

    // The same kit from its folder, into the same prefix: the same machine.
    let o = cmd(&["uninstall", "--purge", "--prefix", p(&prefix)])
        .output()
        .expect("uninstall");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let clock = std::time::Instant::now();
    let o = install(&prefix, p(&kit), &cache, &[]);
    eprintln!("install from the folder: {:?}", clock.elapsed());
    expect(&o, 0, &["installed profile"]);
    let from_folder = machine(&prefix, &kit);
    assert_eq!(from_url, from_folder);

    // Again from the URL with the cache warm: only kit.toml is asked for.
    let o = cmd(&["uninstall", "--purge", "--prefix", p(&prefix)])
        .output()
        .expect("uninstall");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    server.reset_log();
    let clock = std::time::Instant::now();
    let o = install(&prefix, &server.url("kit/kit.toml"), &cache, &[]);
    eprintln!("install from the URL, warm cache: {:?}", clock.elapsed());
    expect(&o, 0, &["installed profile"]);
    let reqs = server.requests();
    assert_eq!(
        reqs.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/kit/kit.toml"],
        "a warm cache fetches kit.toml only"
    );
    assert_eq!(machine(&prefix, &kit_dir_of(&prefix)), from_folder);
    assert_cache_clean(&cache);
}

#[test]
fn a_connection_dropped_halfway_resumes_with_a_range_request() {
    let t = tmp();
    make_kit(t.path());
    let server = Server::serve(t.path());
    let big = "/kit/dist/colinux/big.bin";
    server.fault(big, Fault::DropHalfwayOnce);
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let o = install(&prefix, &server.url("kit/"), &cache, &[]);
    expect(&o, 0, &["installed profile", "broke off", "retrying"]);
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == big)
        .collect();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(reqs[0].range, None);
    assert_eq!(reqs[1].range, Some(format!("bytes={}-", BIG / 2)));
    assert_eq!(reqs[1].status, 206);
    let sent = server.body_bytes(big);
    eprintln!(
        "big.bin: {BIG} bytes, {sent} sent in {} requests ({:.3} x)",
        reqs.len(),
        sent as f64 / BIG as f64
    );
    assert!((sent as f64) < 1.2 * BIG as f64, "{sent} bytes sent");
    assert_eq!(
        sha256(&kit_dir_of(&prefix).join("dist/colinux/big.bin")),
        sha256(&t.path().join("kit/dist/colinux/big.bin"))
    );
    assert_cache_clean(&cache);
}

#[test]
fn a_server_that_ignores_the_range_is_read_again_from_the_start() {
    let t = tmp();
    let kit = make_kit(t.path());
    let server = Server::serve(t.path());
    let big = "/kit/dist/colinux/big.bin";
    let cache = t.path().join("cache");
    // A partial download from an earlier run, which this server will not resume.
    let sha = listed_sha(&kit, "dist/colinux/big.bin");
    std::fs::create_dir_all(cache.join("objects")).expect("mkdir");
    let whole = std::fs::read(kit.join("dist/colinux/big.bin")).expect("read");
    std::fs::write(
        cache.join("objects").join(format!("{sha}.part")),
        &whole[..1000],
    )
    .expect("write part");
    server.fault(big, Fault::IgnoreRange);
    let prefix = t.path().join("m");
    let o = install(&prefix, &server.url("kit/"), &cache, &[]);
    expect(&o, 0, &["installed profile", "does not resume"]);
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == big)
        .collect();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].range, Some("bytes=1000-".to_owned()));
    assert_eq!(reqs[0].status, 200);
    assert_eq!(
        sha256(&cache.join("objects").join(&sha)),
        sha,
        "the object is the whole file"
    );
    assert_cache_clean(&cache);
}

#[test]
fn a_corrupted_byte_stops_the_install_names_both_digests_and_leaves_nothing() {
    let t = tmp();
    let kit = make_kit(t.path());
    let server = Server::serve(t.path());
    let big = "/kit/dist/colinux/big.bin";
    server.fault(big, Fault::Corrupt);
    let mut bad = std::fs::read(kit.join("dist/colinux/big.bin")).expect("read");
    bad[BIG / 2] ^= 1;
    let bad_path = t.path().join("bad.bin");
    std::fs::write(&bad_path, &bad).expect("write");
    let (expected, actual) = (listed_sha(&kit, "dist/colinux/big.bin"), sha256(&bad_path));
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let o = install(&prefix, &server.url("kit/"), &cache, &[]);
    expect(
        &o,
        FAILED,
        &[
            "dist/colinux/big.bin",
            &server.url("kit/dist/colinux/big.bin"),
            &expected,
            &actual,
            "nothing was installed",
        ],
    );
    assert_nothing_installed(&prefix);
    assert_cache_clean(&cache);
    assert!(!cache.join("objects").join(&expected).exists());
    // Only one request: a wrong file is not fetched again and again.
    assert_eq!(
        server.requests().iter().filter(|r| r.path == big).count(),
        1
    );
}

#[test]
fn a_missing_file_404_is_not_retried_and_a_lasting_503_gives_up_after_the_retries() {
    let t = tmp();
    make_kit(t.path());
    let server = Server::serve(t.path());
    let readme = "/kit/dist/colinux/README";
    server.fault(readme, Fault::Status(404));
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let o = install(&prefix, &server.url("kit/"), &cache, &[]);
    expect(
        &o,
        FAILED,
        &[&server.url("kit/dist/colinux/README"), "404", "not found"],
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.path == readme)
            .count(),
        1
    );
    assert_nothing_installed(&prefix);
    assert_cache_clean(&cache);

    server.reset_log();
    server.fault(readme, Fault::Status(503));
    let o = install(
        &prefix,
        &server.url("kit/"),
        &cache,
        &[("COLINUX_SETUP_HTTP_RETRIES", "2")],
    );
    expect(
        &o,
        FAILED,
        &[
            &server.url("kit/dist/colinux/README"),
            "503",
            "gave up after 3 attempts",
        ],
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.path == readme)
            .count(),
        3
    );
    assert_nothing_installed(&prefix);
    assert_cache_clean(&cache);

    // A kit URL with no kit.toml at all.
    let o = install(&prefix, &server.url("nothing-here/"), &cache, &[]);
    expect(&o, FAILED, &[&server.url("nothing-here/kit.toml"), "404"]);
    assert_nothing_installed(&prefix);
}

#[test]
fn a_server_that_hangs_times_out_with_the_url() {
    let t = tmp();
    make_kit(t.path());
    let server = Server::serve(t.path());
    let big = "/kit/dist/colinux/big.bin";
    server.fault(big, Fault::Hang);
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let o = install(
        &prefix,
        &server.url("kit/"),
        &cache,
        &[
            ("COLINUX_SETUP_HTTP_TIMEOUT_SECS", "1"),
            ("COLINUX_SETUP_HTTP_RETRIES", "1"),
        ],
    );
    expect(
        &o,
        FAILED,
        &[
            &server.url("kit/dist/colinux/big.bin"),
            "no answer within 1 s",
            "gave up after 2 attempts",
        ],
    );
    assert_nothing_installed(&prefix);
    assert_cache_clean(&cache);
}

#[test]
fn a_tls_failure_names_the_url() {
    let t = tmp();
    make_kit(t.path());
    // A plain HTTP server answers the TLS handshake with HTTP: a real TLS failure.
    let server = Server::serve(t.path());
    let url = format!("https://{}/kit/", server.addr);
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let o = install(&prefix, &url, &cache, &[]);
    expect(&o, FAILED, &[&format!("{url}kit.toml"), "TLS failure"]);
    assert_nothing_installed(&prefix);
}

#[test]
fn a_dns_failure_names_the_url() {
    let t = tmp();
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    // In a network namespace of its own (no interface up), no resolver can be reached:
    // the lookup fails without a packet leaving the machine.
    let probe = Command::new("unshare").args(["-rn", "true"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs `unshare -rn` (util-linux, user namespaces): {probe:?}"
    );
    let url = "http://kit.colinux-setup.invalid/kit/";
    let mut c = Command::new("unshare");
    c.args(["-rn", common::BIN, "install", "--unattended"])
        .args(["--prefix", p(&prefix), "--kit", url, "--cache", p(&cache)])
        .args(["--monitor", &host().monitor])
        .args(SMALL)
        .stdin(std::process::Stdio::null());
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    let o = c.output().expect("unshare");
    expect(
        &o,
        FAILED,
        &[
            "http://kit.colinux-setup.invalid/kit/kit.toml",
            "cannot resolve the host name",
        ],
    );
    assert_nothing_installed(&prefix);
}

#[test]
fn http_proxy_is_used_and_no_proxy_bypasses_it() {
    let t = tmp();
    let kit = make_kit(t.path());
    let server = Server::serve(t.path());
    let proxy = Server::proxy();
    let cold = cold_requests(&kit);
    let proxy_url = format!("http://{}", proxy.addr);
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let o = install(
        &prefix,
        &server.url("kit/"),
        &cache,
        &[("HTTP_PROXY", &proxy_url)],
    );
    expect(&o, 0, &["installed profile"]);
    let via = proxy.requests();
    assert_eq!(via.len(), cold, "{via:#?}");
    assert!(
        via.iter().all(|r| r.absolute && r.status == 200),
        "{via:#?}"
    );
    assert_eq!(server.requests().len(), cold);

    // NO_PROXY names the server: the proxy sees nothing.
    let o = cmd(&["uninstall", "--purge", "--prefix", p(&prefix)])
        .output()
        .expect("uninstall");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    proxy.reset_log();
    server.reset_log();
    let o = install(
        &prefix,
        &server.url("kit/"),
        &t.path().join("cache2"),
        &[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "127.0.0.1")],
    );
    expect(&o, 0, &["installed profile"]);
    assert!(proxy.requests().is_empty(), "{:#?}", proxy.requests());
    assert_eq!(server.requests().len(), cold);
}

#[test]
fn ctrl_c_during_a_download_keeps_what_arrived_and_the_next_run_resumes_it() {
    let t = tmp();
    let kit = make_kit(t.path());
    let server = Server::serve(t.path());
    let big = "/kit/dist/colinux/big.bin";
    server.fault(big, Fault::Slow);
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let part = cache
        .join("objects")
        .join(format!("{}.part", listed_sha(&kit, "dist/colinux/big.bin")));
    let child = install_cmd(&prefix, &server.url("kit/"), &cache, &[], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("install");
    let start = std::time::Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < (BIG / 4) as u64 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the download did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let o = child.wait_with_output().expect("wait");
    expect(&o, common::CANCELLED, &["cancelled (Ctrl-C)", "resumes"]);
    assert_nothing_installed(&prefix);
    let kept = std::fs::metadata(&part)
        .expect("the partial file is kept")
        .len();
    assert!(kept > 0 && kept < BIG as u64, "{kept}");

    // The next run asks for the rest only, and reports it as NDJSON with --json. (The
    // server logs the first run's request once its write fails on the closed socket.)
    while !server.requests().iter().any(|r| r.path == big) {
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.clear_faults();
    server.reset_log();
    let o = install_cmd(&prefix, &server.url("kit/"), &cache, &[], &["--json"])
        .output()
        .expect("install");
    expect(&o, 0, &[]);
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == big)
        .collect();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].range, Some(format!("bytes={kept}-")));
    assert_eq!(reqs[0].body_bytes, BIG as u64 - kept);
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "phase" && e["name"] == "download dist/colinux/big.bin"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "progress" && e["done"] == BIG && e["total"] == BIG),
        "no progress event for the whole file"
    );
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some(serde_json::json!("done"))
    );
    assert_cache_clean(&cache);
}

#[test]
fn kit_verify_checks_a_kit_at_a_url() {
    let t = tmp();
    make_kit(t.path());
    let server = Server::serve(t.path());
    let verify = |cache: &Path| {
        let mut c = cmd(&["kit", "verify", &server.url("kit/")]);
        for v in PROXY_VARS {
            c.env_remove(v);
        }
        c.env("COLINUX_SETUP_CACHE", cache)
            .output()
            .expect("kit verify")
    };
    let o = verify(&t.path().join("cache"));
    expect(&o, 0, &["0 problem(s)"]);
    server.fault("/kit/rootfs/etc/motd", Fault::Corrupt);
    let cache = t.path().join("cache2");
    let o = verify(&cache);
    expect(&o, 1, &["rootfs/etc/motd", "does not match kit.toml"]);
    assert_cache_clean(&cache);
    server.fault("/kit/rootfs/etc/motd", Fault::Status(500));
    let o = verify(&t.path().join("cache3"));
    expect(&o, FAILED, &["500", "server error"]);
}

#[test]
fn a_distribution_from_a_url_reaches_home_in_the_first_boot() {
    let t = common::tempdir("kit-url-boot-");
    let kit = t.path().join("kit");
    std::fs::create_dir_all(kit.join("dist/colinux")).expect("mkdir");
    std::fs::write(kit.join("dist/colinux/hello.txt"), "from the web\n").expect("write");
    std::fs::write(kit.join("dist/colinux/data.bin"), noise(200_000, 3)).expect("write");
    add_machine_files(&kit, host());
    kit_init(&kit, &[]);
    let server = Server::serve(t.path());
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let mut c = host_cmd(&[
        "install",
        "--unattended",
        "--prefix",
        p(&prefix),
        "--monitor",
        &host().monitor,
        "--kit",
        &server.url("kit/"),
        "--cache",
        p(&cache),
        "--set",
        "MODULES=0",
        "--set",
        "RAMMB=128",
        "--set",
        "ROOTMB=64",
        "--set",
        "HOMEMB=32",
        "--set",
        "SWAPMB=64",
    ]);
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    let o = c.output().expect("install");
    expect(&o, 0, &["first boot: done"]);
    let home = prefix.join("home.img");
    assert_eq!(
        common::debugfs(&home, "cat /colinux/hello.txt"),
        "from the web\n"
    );
    let out = t.path().join("data.bin");
    let d = Command::new(e2e_tests::tools::tool("debugfs").expect("debugfs"))
        .arg("-R")
        .arg(format!("dump /colinux/data.bin {}", p(&out)))
        .arg(&home)
        .output()
        .expect("debugfs dump");
    assert!(d.status.success(), "{}", text(&d));
    assert_eq!(sha256(&out), sha256(&kit.join("dist/colinux/data.bin")));
}

/// `openssl ARGS` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs openssl (Debian: apt-get install openssl): {e}")
        });
    assert!(o.status.success(), "openssl {args:?}\n{}", text(&o));
}

/// `openssl s_server -WWW`: a real HTTPS server for the files under `dir`, on
/// 127.0.0.1, with a certificate for 127.0.0.1 signed by a CA of the test's own.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path, pki: &Path) -> TlsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(pki.join("leaf.pem"))
            .arg("-key")
            .arg(pki.join("leaf.key"))
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < std::time::Duration::from_secs(20));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA (`ca.pem`) and a server certificate for 127.0.0.1 (`leaf.pem`, `leaf.key`).
fn make_pki(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=colinux-setup test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

#[test]
fn a_kit_over_https_installs_when_its_ca_is_trusted_and_fails_clearly_when_not() {
    let t = tmp();
    let kit = make_kit(t.path());
    let pki = t.path().join("pki");
    make_pki(&pki);
    let server = TlsServer::start(t.path(), &pki);
    let url = format!("https://127.0.0.1:{}/kit/", server.port);
    let prefix = t.path().join("m");
    let ca = pki.join("ca.pem");
    // SSL_CERT_FILE adds the test CA to what this machine trusts.
    let o = install_cmd(
        &prefix,
        &url,
        &t.path().join("cache"),
        &[("SSL_CERT_FILE", p(&ca))],
        &[],
    )
    .env_remove("SSL_CERT_DIR")
    .output()
    .expect("install");
    expect(&o, 0, &["installed profile"]);
    let kit_dir = kit_dir_of(&prefix);
    for f in files_under(&kit) {
        assert_eq!(sha256(&kit_dir.join(&f)), sha256(&kit.join(&f)), "{f}");
    }
    // The system's trust store alone does not know the test CA.
    let prefix2 = t.path().join("m2");
    let o = install_cmd(&prefix2, &url, &t.path().join("cache2"), &[], &[])
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("install");
    expect(
        &o,
        FAILED,
        &[&format!("{url}kit.toml"), "TLS failure", "certificate"],
    );
    assert_nothing_installed(&prefix2);
}

#[test]
fn files_for_another_host_are_not_fetched() {
    let t = tmp();
    let kit = make_kit(t.path());
    let other = if cfg!(windows) { "linux" } else { "windows" };
    std::fs::create_dir_all(kit.join("drv")).expect("mkdir");
    std::fs::write(kit.join("drv/colinux.sys"), noise(4096, 9)).expect("write");
    kit_init(
        &kit,
        &["--name", "test-kit", "--host", &format!("drv={other}")],
    );
    let server = Server::serve(t.path());
    let (cache, prefix) = (t.path().join("cache"), t.path().join("m"));
    let o = install(&prefix, &server.url("kit/"), &cache, &[]);
    expect(&o, 0, &["installed profile"]);
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.path == "/kit/drv/colinux.sys"),
        "{:#?}",
        server.requests()
    );
    let kit_dir = kit_dir_of(&prefix);
    assert!(!kit_dir.join("drv").exists());
    let listed = std::fs::read_to_string(kit_dir.join("kit.toml")).expect("kit.toml");
    assert!(!listed.contains("drv/colinux.sys"), "{listed}");
    assert!(listed.contains("dist/colinux/big.bin"), "{listed}");
    // The local kit is a whole kit by itself.
    let o = cmd(&["kit", "verify", p(&kit_dir)])
        .output()
        .expect("verify");
    expect(&o, 0, &["0 problem(s)"]);
}
