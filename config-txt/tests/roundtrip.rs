//! Property tests: the writer round trip (`parse(write(m)) == m` for every valid model),
//! meaning kept through `write(parse(f))`, and no panic on any bytes (a fuzz-like run over
//! arbitrary bytes and over mutated valid files).
//!
//! The long run: `FUZZ_CASES=200000 cargo test -p config-txt --release --test roundtrip
//! -- --ignored --nocapture` (default 200000 cases for the ignored tests).

use std::collections::BTreeMap;

use config_txt::{
    Cobd, CobdMode, Cocon, ColorName, Config, ConsoleColor, Exec, LintOptions, Mac, Nic, Pci,
    PciKind, Scsi, ScsiType, Serial, parse, write,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z]:\\\\[a-zA-Z0-9 _.\\\\-]{0,30}",
        "\\.\\\\[a-zA-Z0-9_.]{1,12}",
        "/[a-z0-9/ ]{1,20}",
        "\\\\DosDevices\\\\[A-Z]:\\\\[a-z]{1,8}",
    ]
}

/// Free text for comma fields: commas, quotes and spaces included on purpose.
fn field_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9 ,\"=:/._-]{{0,{max}}}")).expect("regex")
}

fn mac() -> impl Strategy<Value = Option<Mac>> {
    proptest::option::of(any::<[u8; 6]>().prop_map(Mac))
}

fn nic() -> impl Strategy<Value = Nic> {
    prop_oneof![
        (field_text(20), mac()).prop_map(|(name, mac)| Nic::Tuntap { name, mac }),
        (field_text(20), mac(), any::<bool>()).prop_map(|(name, mac, promisc)| Nic::PcapBridge {
            name,
            mac,
            promisc
        }),
        (field_text(20), mac(), any::<bool>()).prop_map(|(name, mac, promisc)| Nic::NdisBridge {
            name,
            mac,
            promisc
        }),
        (mac(), field_text(60)).prop_map(|(mac, redirs)| Nic::Slirp { mac, redirs }),
    ]
}

fn scsi() -> impl Strategy<Value = Scsi> {
    (select(ScsiType::ALL.to_vec()), path(), 0u32..=1_048_576).prop_map(|(kind, path, size_mb)| {
        Scsi {
            kind,
            path,
            size_mb,
        }
    })
}

fn cocon() -> impl Strategy<Value = Cocon> {
    (16u32..400, 2u32..700, 0u32..=500).prop_map(|(cols, rows, sb)| Cocon {
        cols,
        rows,
        scrollback: (if sb == 0 { 500 } else { sb }).max(rows),
    })
}

fn color() -> impl Strategy<Value = ConsoleColor> {
    (
        select(ColorName::ALL.to_vec()),
        select(ColorName::ALL.to_vec()),
    )
        .prop_filter("fg != bg", |(a, b)| a != b)
        .prop_map(|(fg, bg)| ConsoleColor { fg, bg })
}

const TAKEN: [&str; 16] = [
    "kernel", "initrd", "mem", "cocon", "cursor", "color", "setcobd", "cobd", "scsi", "eth",
    "cofs", "ttys", "exec", "pci", "hd", "sd",
];

fn boot_param() -> impl Strategy<Value = String> {
    "[a-z0-9.][a-z0-9_.]{0,10}(=[a-z0-9/,.:]{0,10})?"
        .prop_filter("not a daemon key", |p| {
            !(p.contains('=') && TAKEN.iter().any(|k| p.starts_with(k)))
        })
        .prop_filter("not root=", |p| !p.starts_with("root="))
}

prop_compose! {
    fn config()(
        kernel in path(),
        initrd in proptest::option::of(path()),
        mem in proptest::option::of(any::<u32>()),
        setcobd in proptest::option::of(select(vec![CobdMode::Async, CobdMode::Sync])),
        cobd in btree_map(0u8..=31, (path(), proptest::option::of("(hd|sd)[a-z0-9]{0,4}")), 0..5),
        scsi in btree_map(0u8..=31, scsi(), 0..3),
        eth in btree_map(0u8..=15, nic(), 0..4),
        cofs in btree_map(0u8..=31, path(), 0..4),
        pci in vec((0u8..=31, 0u8..=7, any::<bool>(), 0u8..=31), 0..3),
        ttys in btree_map(0u8..=31, ("[A-Za-z0-9 ,\"]{1,20}", field_text(40)), 0..3),
        exec in btree_map(0u8..=7, ("[A-Za-z0-9 :\\\\\",.]{1,30}", field_text(60)), 0..3),
        cocon in proptest::option::of(cocon()),
        cursor in proptest::option::of(0u8..=100),
        color in proptest::option::of(color()),
        root in proptest::option::of("/dev/[a-z0-9]{1,8}"),
        boot_params in vec(boot_param(), 0..6),
    ) -> Config {
        let cobd: BTreeMap<u8, Cobd> = cobd.into_iter().map(|(n, (path, alias))| (n, Cobd { path, alias })).collect();
        let mut cfg = Config {
            kernel: Some(kernel),
            initrd,
            mem,
            setcobd,
            cobd,
            scsi,
            eth,
            cofs,
            pci: BTreeMap::new(),
            ttys: ttys.into_iter().map(|(n, (name, mode))| (n, Serial { name, mode })).collect(),
            exec: exec.into_iter().map(|(n, (program, args))| (n, Exec { program, args })).collect(),
            cocon,
            cursor,
            color,
            root,
            boot_params,
        };
        // PCI slots must name configured units; keep the generated ones that do.
        for (n, function, scsi, unit) in pci {
            let (kind, ok) = if scsi {
                (PciKind::Scsi, cfg.scsi.contains_key(&unit))
            } else {
                (PciKind::Network, cfg.eth.contains_key(&unit))
            };
            if ok {
                cfg.pci.insert(n, Pci { function, kind, unit });
            }
        }
        cfg
    }
}

/// Random edits of a valid file: insert, delete or replace bytes.
fn mutate(text: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for &(pos, op, b) in edits {
        let at = if bytes.is_empty() {
            0
        } else {
            pos % (bytes.len() + 1)
        };
        match op % 3 {
            0 => bytes.insert(at, b),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ if at < bytes.len() => bytes[at] = b,
            _ => bytes.push(b),
        }
    }
    bytes
}

/// Any bytes: no panic; when accepted, the rewritten file keeps the model.
fn check_any(bytes: &[u8]) -> Result<(), TestCaseError> {
    let parsed = parse(bytes, "fuzz.txt");
    let _ = parsed.check(&LintOptions::after_first_boot());
    for d in &parsed.diagnostics {
        let _ = d.to_string();
    }
    if !parsed.has_errors()
        && let Ok(text) = write(&parsed.config)
    {
        let again = parse(text.as_bytes(), "rewritten");
        prop_assert!(!again.has_errors(), "{:?}", again.diagnostics);
        prop_assert_eq!(&again.config, &parsed.config);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_valid_model_round_trips(cfg in config()) {
        let text = write(&cfg).map_err(|e| TestCaseError::fail(format!("refused a valid model: {e}")))?;
        let parsed = parse(text.as_bytes(), "written.txt");
        prop_assert!(!parsed.has_errors(), "{:?}\n{}", parsed.diagnostics, text);
        prop_assert_eq!(&parsed.config, &cfg);
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let first = line.as_bytes()[0];
            prop_assert!(first.is_ascii_alphanumeric() || first == b'.', "{}", line);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        check_any(&bytes)?;
    }

    #[test]
    fn arbitrary_config_like_text_never_panics(text in "(kernel=|mem=|cobd[0-9]{1,2}=|eth[0-9]=|slirp|tuntap|,|\"|#|=|:|[a-z0-9]{1,6}| |\t|\n|\\\\){0,60}") {
        check_any(text.as_bytes())?;
    }

    #[test]
    fn mutated_valid_files_never_panic(cfg in config(), edits in vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)) {
        let text = write(&cfg).map_err(|e| TestCaseError::fail(format!("refused a valid model: {e}")))?;
        check_any(&mutate(&text, &edits))?;
    }
}

fn long_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: long_cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// The long fuzz-like run over arbitrary bytes (ignored by default; see the module doc).
    #[test]
    #[ignore]
    fn long_run_arbitrary_bytes(bytes in vec(any::<u8>(), 0..4096)) {
        check_any(&bytes)?;
    }

    /// The long run over mutated valid files.
    #[test]
    #[ignore]
    fn long_run_mutated_valid_files(cfg in config(), edits in vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..12)) {
        let text = write(&cfg).map_err(|e| TestCaseError::fail(format!("refused a valid model: {e}")))?;
        check_any(&mutate(&text, &edits))?;
    }
}
