//! Whole files: the seed manual's config (seed §3.2, with its comment lines) and a file
//! in the style of coLinux 0.7.9's own `conf/example.conf`.

use config_txt::{Cobd, Config, LintOptions, Nic, parse, write};

const SEED: &[u8] = include_bytes!("data/seed-config.txt");
const EXAMPLE: &[u8] = include_bytes!("data/example-0.7.9-style.conf");

/// The seed's line 18 is `eth0=slirp,"",tcp:...`: `""` is a literal quote, so the slirp
/// MAC field reads `"` and the daemon fails with "error parsing MAC address" (spec §9.9, §9.11).
#[test]
fn seed_eth0_line_is_an_error_with_its_line_and_fix() {
    let parsed = parse(SEED, "seed-config.txt");
    let errors: Vec<_> = parsed.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0];
    assert_eq!(e.message, "error parsing MAC address: \"");
    let loc = e.location.as_ref().expect("located");
    assert_eq!(
        (loc.file.as_str(), loc.line, loc.col),
        ("seed-config.txt", 18, 12)
    );
    let help = e.help.as_deref().expect("a fix");
    assert!(
        help.contains("`eth0=slirp,,tcp:333:22/tcp:1000:1000/udp:69:69`"),
        "{help}"
    );
    assert_eq!(
        e.to_string().lines().next(),
        Some("seed-config.txt:18:12: error: error parsing MAC address: \"")
    );
}

fn seed_fixed() -> Vec<u8> {
    let text = String::from_utf8(SEED.to_vec()).expect("ASCII");
    text.replace("eth0=slirp,\"\",", "eth0=slirp,,")
        .into_bytes()
}

fn seed_model() -> Config {
    let mut cfg = Config::new("vmlinux");
    cfg.mem = Some(120);
    cfg.initrd = Some(".\\initrd.gz".into());
    cfg.cobd.insert(0, Cobd::new(".\\root.img"));
    cfg.cobd.insert(1, Cobd::new(".\\home.img"));
    cfg.cobd.insert(2, Cobd::new(".\\swap.img"));
    cfg.cofs.insert(0, "c:\\".into());
    cfg.cofs.insert(1, ".".into());
    cfg.cofs.insert(2, "d:\\".into());
    cfg.root = Some("/dev/cobd0".into());
    cfg.eth.insert(
        0,
        Nic::Slirp {
            mac: None,
            redirs: "tcp:333:22/tcp:1000:1000/udp:69:69".into(),
        },
    );
    cfg.eth.insert(
        1,
        Nic::Tuntap {
            name: String::new(),
            mac: None,
        },
    );
    cfg
}

#[test]
fn seed_with_eth0_fixed_parses_into_the_expected_model() {
    let parsed = parse(&seed_fixed(), "seed-config.txt");
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.config, seed_model());
    assert_eq!(parsed.config.implied_cofs31().as_deref(), Some(".\\"));
}

#[test]
fn seed_whole_drive_shares_are_warnings() {
    let parsed = parse(&seed_fixed(), "seed-config.txt");
    let lint = parsed.lint(&LintOptions::default());
    assert!(lint.iter().all(|d| !d.is_error()), "{lint:?}");
    let drives: Vec<u32> = lint
        .iter()
        .filter(|d| d.code == "cofs-whole-drive")
        .filter_map(|d| d.location.as_ref().map(|l| l.line))
        .collect();
    assert_eq!(drives, [13, 29]);
}

/// write(parse(f)) keeps the meaning: the canonical file reads back as the same model.
#[test]
fn seed_rewritten_keeps_its_meaning() {
    let model = parse(&seed_fixed(), "seed").config;
    let text = write(&model).expect("writable");
    assert!(
        text.contains("\neth0=slirp,,tcp:333:22/tcp:1000:1000/udp:69:69\n"),
        "{text}"
    );
    let again = parse(text.as_bytes(), "rewritten");
    assert!(again.diagnostics.is_empty(), "{:?}", again.diagnostics);
    assert_eq!(again.config, model);
}

#[test]
fn example_079_style_parses_cleanly() {
    let parsed = parse(EXAMPLE, "example.conf");
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let cfg = &parsed.config;
    assert_eq!(cfg.kernel.as_deref(), Some("vmlinux"));
    assert_eq!(cfg.cobd.len(), 1);
    assert_eq!(cfg.cobd[&0].path, "c:\\coLinux\\root_fs");
    assert_eq!(cfg.initrd.as_deref(), Some("initrd.gz"));
    assert_eq!(cfg.mem, None);
    assert!(cfg.eth.is_empty());
    assert!(cfg.exec.is_empty());
    assert_eq!(cfg.root.as_deref(), Some("/dev/cobd0"));
    assert_eq!(cfg.boot_params, ["ro"]);
    assert_eq!(cfg.ttys[&0].name, "COM1");
    assert_eq!(
        cfg.ttys[&0].mode,
        "BAUD=115200 PARITY=n DATA=8 STOP=1 dtr=on rts=on"
    );
    let text = write(cfg).expect("writable");
    assert!(
        text.contains("\nttys0=COM1,\"BAUD=115200 PARITY=n DATA=8 STOP=1 dtr=on rts=on\"\n"),
        "{text}"
    );
    assert_eq!(parse(text.as_bytes(), "w").config, *cfg);
}
