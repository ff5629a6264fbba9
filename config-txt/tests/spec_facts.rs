//! One or more tests per fact of colinux-spec.md §9 ("Facts a Rust config writer/parser
//! must match exactly"), named after the fact; each cites its section.

use config_txt::daemon::{DaemonExit, running_monitors};
use config_txt::{
    Cobd, Config, LintOptions, Nic, Parsed, Source, WriteError, parse, parse_redirections,
    parse_sources, write,
};

fn p(text: &str) -> Parsed {
    parse(text.as_bytes(), "config.txt")
}

fn messages(parsed: &Parsed, severity_error: bool) -> Vec<String> {
    parsed
        .diagnostics
        .iter()
        .filter(|d| d.is_error() == severity_error)
        .map(|d| d.message.clone())
        .collect()
}

fn errors(parsed: &Parsed) -> Vec<String> {
    messages(parsed, true)
}

fn codes(parsed: &Parsed) -> Vec<&'static str> {
    parsed.diagnostics.iter().map(|d| d.code).collect()
}

fn lint_codes(parsed: &Parsed, opts: &LintOptions) -> Vec<&'static str> {
    parsed.lint(opts).iter().map(|d| d.code).collect()
}

// §9.1: only [A-Za-z0-9.] start a token; other leading bytes are dropped.
#[test]
fn fact_01_only_letters_digits_and_dot_start_a_token() {
    let parsed = p("kernel=vmlinux\n-d\n/dev/x\n_x=1\n.hidden\n9\n");
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    assert_eq!(
        parsed.config.boot_params,
        ["d", "dev/x", "x=1", ".hidden", "9"]
    );
    assert_eq!(
        codes(&parsed)
            .iter()
            .filter(|c| **c == "skipped-bytes")
            .count(),
        3
    );
}

// §9.1: the writer starts every line with a letter and never emits a daemon switch.
#[test]
fn fact_01_writer_starts_every_line_with_a_letter() {
    let mut cfg = Config::new("vmlinux");
    cfg.mem = Some(64);
    cfg.cobd.insert(0, Cobd::new("c:\\coLinux\\root.img"));
    cfg.root = Some("/dev/cobd0".into());
    cfg.boot_params = vec!["ro".into()];
    let text = write(&cfg).expect("writable");
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(line.as_bytes()[0].is_ascii_alphabetic(), "{line}");
    }
    cfg.boot_params = vec!["-s".into()];
    assert!(matches!(write(&cfg), Err(WriteError::BootParam { .. })));
}

// §9.2: tokens end at bytes <= 0x20; inside quotes only bytes <= 0x1F end them; quotes stay
// in the token (and are then removed around whole path values).
#[test]
fn fact_02_quotes_keep_spaces_and_control_bytes_end_tokens() {
    let parsed = p("kernel=\"C:\\Program Files\\coLinux\\vmlinux\"\nttys0=COM1,\"a\tb\"\n");
    assert_eq!(
        parsed.config.kernel.as_deref(),
        Some("C:\\Program Files\\coLinux\\vmlinux")
    );
    let ttys = &parsed.config.ttys[&0];
    assert_eq!((ttys.name.as_str(), ttys.mode.as_str()), ("COM1", "a"));
    assert_eq!(parsed.config.boot_params, ["b\""]);
    assert!(codes(&parsed).contains(&"control-in-quotes"));
}

// §9.3: `#` anywhere, even inside quotes, ends the token; values cannot contain it.
#[test]
fn fact_03_hash_ends_the_value_even_inside_quotes() {
    let parsed = p("kernel=vmlinux\nexec0=a.exe,\"x#y\"\nmem=64#c\n");
    assert_eq!(parsed.config.exec[&0].args, "x");
    assert_eq!(parsed.config.mem, Some(64));
    assert!(parsed.config.boot_params.is_empty());
    assert_eq!(
        codes(&parsed)
            .iter()
            .filter(|c| **c == "hash-in-value")
            .count(),
        2
    );
}

// §9.3: the writer refuses a `#` in a value.
#[test]
fn fact_03_writer_refuses_hash_in_a_value() {
    let mut cfg = Config::new("vmlinux");
    cfg.cofs.insert(0, "c:\\share#1".into());
    assert!(matches!(write(&cfg), Err(WriteError::Hash { key, .. }) if key == "cofs0"));
}

// §9.4: no line continuation, no escapes.
#[test]
fn fact_04_no_line_continuation_or_escape() {
    let parsed = p("kernel=vmlinux \\\nmem=64\ncobd0=c:\\x\\\n");
    assert_eq!(parsed.config.mem, Some(64));
    // A `\` attached to a token stays part of it.
    assert_eq!(parsed.config.cobd[&0].path, "c:\\x\\");
    assert!(parsed.config.boot_params.is_empty());
}

// §9.4: parsing stops at the first NUL.
#[test]
fn fact_04_parsing_stops_at_the_first_nul() {
    let parsed = parse(b"kernel=vmlinux\nmem=64\0\ncobd0=c:\\x\n", "config.txt");
    assert!(parsed.config.cobd.is_empty());
    assert_eq!(parsed.config.mem, Some(64));
    assert!(codes(&parsed).contains(&"nul-byte"));
}

// §9.4 (and §1.2): a UTF-16 file is cut at its first NUL; it is refused.
#[test]
fn fact_04_utf16_file_is_an_error() {
    let utf16: Vec<u8> = std::iter::once([0xffu8, 0xfe])
        .chain("kernel=vmlinux\r\n".encode_utf16().map(u16::to_le_bytes))
        .flatten()
        .collect();
    let parsed = parse(&utf16, "config.txt");
    assert!(parsed.has_errors());
    assert!(codes(&parsed).contains(&"utf16"));
    assert_eq!(parsed.config.kernel, None);
}

// §9.4: a UTF-8 byte order mark is harmless.
#[test]
fn fact_04_utf8_bom_is_harmless() {
    let parsed = parse(b"\xef\xbb\xbfkernel=vmlinux\n", "config.txt");
    assert_eq!(parsed.config.kernel.as_deref(), Some("vmlinux"));
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
}

// §9.5: the first occurrence of a scalar wins; later ones go to the guest kernel.
#[test]
fn fact_05_first_scalar_wins_and_duplicates_reach_the_guest() {
    let parsed = p("kernel=vmlinux\nmem=64\nmem=128\n");
    assert_eq!(parsed.config.mem, Some(64));
    assert_eq!(parsed.config.boot_params, ["mem=128"]);
    let lint = parsed.lint(&LintOptions::default());
    let dup = lint
        .iter()
        .find(|d| d.code == "duplicate-scalar")
        .expect("duplicate reported");
    assert_eq!(dup.location.as_ref().map(|l| l.line), Some(3));
}

// §9.5: across @files too: `@a.conf @b.conf` takes mem from a.
#[test]
fn fact_05_first_wins_across_files() {
    let parsed = parse_sources(&[
        Source::File {
            name: "a.conf",
            text: b"kernel=vmlinux\nmem=64\n",
        },
        Source::File {
            name: "b.conf",
            text: b"mem=128\n",
        },
    ]);
    assert_eq!(parsed.config.mem, Some(64));
    assert_eq!(parsed.config.boot_params, ["mem=128"]);
}

// §9.5: keys are case-sensitive; `Mem=` goes to the guest.
#[test]
fn fact_05_keys_are_case_sensitive() {
    let parsed = p("kernel=vmlinux\nMem=64\n");
    assert_eq!(parsed.config.mem, None);
    assert_eq!(parsed.config.boot_params, ["Mem=64"]);
    assert!(codes(&parsed).contains(&"key-case"));
}

// §9.5: the writer emits each scalar key once and refuses a repeated one as a boot parameter.
#[test]
fn fact_05_writer_emits_each_scalar_once() {
    let mut cfg = Config::new("vmlinux");
    cfg.mem = Some(64);
    let text = write(&cfg).expect("writable");
    assert_eq!(text.lines().filter(|l| l.starts_with("mem=")).count(), 1);
    cfg.boot_params = vec!["mem=128".into()];
    assert!(matches!(write(&cfg), Err(WriteError::BootParam { .. })));
}

// §9.6: a scalar key with a suffix is fatal when it comes first.
#[test]
fn fact_06_scalar_lookalike_before_the_key_is_fatal() {
    let parsed = p("kernel=vmlinux\nmemmap=1M$2M\nmem=64\n");
    assert_eq!(
        errors(&parsed),
        ["cmdline: Index not allowed for 'mem' (`memmap` is read as the `mem` key)"]
    );
    let parsed = p("kernelcore=4M\nkernel=vmlinux\n");
    assert!(
        errors(&parsed)
            .iter()
            .any(|e| e.starts_with("cmdline: Index not allowed for 'kernel'"))
    );
}

// §9.6: a look-alike after the real key is passed on.
#[test]
fn fact_06_scalar_lookalike_after_the_key_is_passed_on() {
    let parsed = p("kernel=vmlinux\nmem=64\nmemmap=1M$2M\n");
    assert!(!parsed.has_errors());
    assert_eq!(parsed.config.boot_params, ["memmap=1M$2M"]);
}

// §9.6: indexed keys reject a non-numeric or empty suffix (`pci=`, `ether=`).
#[test]
fn fact_06_indexed_lookalikes_are_fatal() {
    let parsed = p("kernel=vmlinux\npci=noacpi\n");
    assert!(codes(&parsed).contains(&"index-missing"));
    let parsed = p("kernel=vmlinux\nether=0,0,eth1\n");
    assert!(
        errors(&parsed)
            .iter()
            .any(|e| e.starts_with("cmdline: suffix not a number"))
    );
}

// §9.6: any `hd*=`/`sd*=` token becomes an alias; `hdc=ide-scsi` allocates a cobd.
#[test]
fn fact_06_hd_parameter_becomes_an_alias() {
    let parsed = p("kernel=vmlinux\ncobd0=c:\\root.img\nhdc=ide-scsi\n");
    assert_eq!(
        parsed.config.cobd[&1],
        Cobd {
            path: "ide-scsi".into(),
            alias: Some("hdc".into())
        }
    );
    assert!(codes(&parsed).contains(&"alias-path"));
    let parsed = p("kernel=vmlinux\nhdparm1=x\n");
    assert!(
        errors(&parsed)
            .iter()
            .any(|e| e.starts_with("cmdline: Index not allowed for 'hd'"))
    );
}

// §9.6: the writer refuses kernel parameters the daemon would swallow.
#[test]
fn fact_06_writer_refuses_swallowed_kernel_parameters() {
    let mut cfg = Config::new("vmlinux");
    for param in [
        "pci=noacpi",
        "ether=0,0,eth1",
        "hdc=ide-scsi",
        "memmap=1M$2M",
        "initrd_x=1",
    ] {
        cfg.boot_params = vec![param.into()];
        assert!(
            matches!(write(&cfg), Err(WriteError::BootParam { .. })),
            "{param}"
        );
    }
    // With mem= present, a mem look-alike follows it in the written file and is safe.
    cfg.mem = Some(64);
    cfg.boot_params = vec!["memmap=1M$2M".into()];
    let text = write(&cfg).expect("writable");
    assert_eq!(parse(text.as_bytes(), "w").config, cfg);
}

// §9.7: kernel= is mandatory.
#[test]
fn fact_07_kernel_is_mandatory() {
    let parsed = p("mem=64\ncobd0=c:\\root.img\n");
    assert!(codes(&parsed).contains(&"kernel-missing"));
    assert!(parsed.has_errors());
    assert_eq!(write(&Config::default()), Err(WriteError::MissingKernel));
}

// §9.8: duplicate indices are fatal, with the daemon's message.
#[test]
fn fact_08_duplicate_indices_are_fatal() {
    let parsed = p("kernel=vmlinux\ncobd0=a\ncobd0=b\ncofs1=c:\\x\ncofs1=c:\\y\n");
    let errs = errors(&parsed);
    assert!(
        errs.contains(&"cobd0 double defined".to_string()),
        "{errs:?}"
    );
    assert!(
        errs.contains(&"warning cofs1 double defined".to_string()),
        "{errs:?}"
    );
    assert_eq!(parsed.config.cobd[&0].path, "a");
}

// §9.8: index ranges cobd/cofs/ttys/scsi/pci 0-31, eth 0-15, exec 0-7.
#[test]
fn fact_08_index_ranges() {
    let ok = p(
        "kernel=vmlinux\ncobd31=a\ncofs31=b\nttys31=COM1\nscsi31=disk,d\neth15=tuntap\nexec7=x.exe\n",
    );
    assert!(!ok.has_errors(), "{:?}", ok.diagnostics);
    for (line, msg) in [
        ("cobd32=a", "cmdline: invalid cobd index: 32"),
        ("cofs32=a", "cmdline: invalid cofs index: 32"),
        ("ttys32=COM1", "cmdline: invalid ttys index: 32"),
        ("scsi32=disk,d", "cmdline: invalid scsi index: 32"),
        ("pci32=0,scsi,0", "cmdline: invalid pci index: 32"),
        ("eth16=tuntap", "cmdline: invalid eth index: 16"),
        ("exec8=x.exe", "cmdline: invalid exec index: 8"),
    ] {
        let parsed = p(&format!("kernel=vmlinux\n{line}\n"));
        assert_eq!(errors(&parsed), [msg], "{line}");
    }
}

// §9.9: `""` in a comma field is a literal quote; `"` protects commas; `,,` is empty.
#[test]
fn fact_09_doubled_quote_is_literal_and_commas_can_be_quoted() {
    let parsed = p(
        "kernel=vmlinux\neth0=tuntap,\"\",02:00:00:00:00:01\nexec0=\"\"\"C:\\Program Files\\X\\x.exe\"\"\",\"-a,b\"\n",
    );
    assert_eq!(
        parsed.config.eth[&0],
        Nic::Tuntap {
            name: "\"".into(),
            mac: "02:00:00:00:00:01".parse().ok()
        }
    );
    assert!(codes(&parsed).contains(&"empty-field-quotes"));
    let exec = &parsed.config.exec[&0];
    assert_eq!(exec.program, "\"C:\\Program Files\\X\\x.exe\"");
    assert_eq!(exec.args, "-a,b");
}

// §9.9: an over-long field spills into the next one (a 70-byte TAP name breaks the MAC).
#[test]
fn fact_09_overlong_field_spills_into_the_next() {
    let name = "N".repeat(70);
    let parsed = p(&format!(
        "kernel=vmlinux\neth0=tuntap,{name},02:00:00:00:00:01\n"
    ));
    assert!(
        errors(&parsed).contains(&"error parsing MAC address: NNNNNNN".to_string()),
        "{:?}",
        parsed.diagnostics
    );
    assert!(codes(&parsed).contains(&"field-overflow"));
}

// §9.9: the writer writes an empty field as `,,` and refuses an over-long one.
#[test]
fn fact_09_writer_uses_empty_fields_and_refuses_overflow() {
    let mut cfg = Config::new("vmlinux");
    cfg.eth.insert(
        0,
        Nic::Slirp {
            mac: None,
            redirs: "tcp:2222:22".into(),
        },
    );
    let text = write(&cfg).expect("writable");
    assert!(text.contains("\neth0=slirp,,tcp:2222:22\n"), "{text}");
    cfg.eth.insert(
        1,
        Nic::Tuntap {
            name: "N".repeat(64),
            mac: None,
        },
    );
    assert!(matches!(
        write(&cfg),
        Err(WriteError::TooLong { max: 63, .. })
    ));
}

// §9.10: the type must be followed by the end or one non-letter; positional layouts.
#[test]
fn fact_10_eth_type_keyword_and_layouts() {
    let parsed = p(
        "kernel=vmlinux\neth0=tuntap2\neth1=slirp,02:00:00:00:00:02,tcp:1:2\neth2=pcap-bridge,LAN,02:00:00:00:00:03,nopromisc\n",
    );
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    assert!(matches!(&parsed.config.eth[&0], Nic::Tuntap { name, mac: None } if name.is_empty()));
    assert!(
        matches!(&parsed.config.eth[&1], Nic::Slirp { mac: Some(_), redirs } if redirs == "tcp:1:2")
    );
    assert!(matches!(
        &parsed.config.eth[&2],
        Nic::PcapBridge { promisc: false, .. }
    ));
    for bad in ["tap", "slirpy", "Tuntap"] {
        let parsed = p(&format!("kernel=vmlinux\neth0={bad}\n"));
        assert_eq!(
            errors(&parsed),
            [format!("unsupported network transport type: {bad}")]
        );
    }
}

// §9.11: a MAC is exactly 17 characters hh:hh:hh:hh:hh:hh, either case.
#[test]
fn fact_11_mac_is_exactly_17_characters() {
    let parsed = p("kernel=vmlinux\neth0=tuntap,,02:AB:cd:00:00:01\n");
    assert!(
        matches!(&parsed.config.eth[&0], Nic::Tuntap { mac: Some(m), .. } if m.0 == [2, 0xab, 0xcd, 0, 0, 1])
    );
    for bad in [
        "02:00:00:00:00:1",
        "02-00-00-00-00-01",
        "02:00:00:00:00:0g",
        "02:00:00:00:00:011",
    ] {
        let parsed = p(&format!("kernel=vmlinux\neth0=tuntap,,{bad}\n"));
        assert_eq!(
            errors(&parsed),
            [format!("error parsing MAC address: {bad}")]
        );
    }
}

// §9.12: kernel/initrd at most 254 bytes; other paths cut at 255; quotes removed only
// when both first and last characters are quotes.
#[test]
fn fact_12_path_limits_and_quote_stripping() {
    let ok = p(&format!("kernel={}\n", "k".repeat(254)));
    assert!(!ok.has_errors());
    let bad = p(&format!("kernel={}\n", "k".repeat(255)));
    assert!(codes(&bad).contains(&"path-too-long"));
    let cut = p(&format!("kernel=vmlinux\ncobd0={}\n", "c".repeat(300)));
    assert_eq!(cut.config.cobd[&0].path.len(), 255);
    assert!(codes(&cut).contains(&"path-truncated"));
    let half = p("kernel=a\"b\"\n");
    assert_eq!(half.config.kernel.as_deref(), Some("a\"b\""));
}

// §9.12: the writer refuses paths over the limits.
#[test]
fn fact_12_writer_refuses_long_paths() {
    let cfg = Config::new("k".repeat(255));
    assert!(matches!(
        write(&cfg),
        Err(WriteError::TooLong { max: 254, .. })
    ));
    let mut cfg = Config::new("vmlinux");
    cfg.cobd.insert(0, Cobd::new("c".repeat(256)));
    assert!(matches!(
        write(&cfg),
        Err(WriteError::TooLong { max: 255, .. })
    ));
}

// §9.13: do not write `\??\` paths; the daemon mangles them.
#[test]
fn fact_13_nt_prefixed_paths_are_flagged() {
    let parsed = p("kernel=vmlinux\ncobd0=\\??\\C:\\root.img\ncobd1=\\DosDevices\\C:\\home.img\n");
    let lint = parsed.lint(&LintOptions::default());
    let nt: Vec<_> = lint.iter().filter(|d| d.code == "path-nt-prefix").collect();
    assert_eq!(nt.len(), 1);
    assert_eq!(nt[0].location.as_ref().map(|l| l.line), Some(2));
    // `\DosDevices\` passes through and is absolute: no relative-path warning for it.
    assert!(
        !lint
            .iter()
            .any(|d| d.code == "relative-path" && d.location.as_ref().map(|l| l.line) == Some(3))
    );
}

// §9.14: initrd= implies cofs31 = dirname(initrd) unless cofs31 is set.
#[test]
fn fact_14_initrd_implies_cofs31() {
    let parsed = p("kernel=vmlinux\ninitrd=c:\\coLinux\\initrd.gz\n");
    assert_eq!(
        parsed.config.implied_cofs31().as_deref(),
        Some("c:\\coLinux\\")
    );
    assert_eq!(
        p("kernel=vmlinux\ninitrd=initrd.gz\n")
            .config
            .implied_cofs31()
            .as_deref(),
        Some(".")
    );
    let taken = p("kernel=vmlinux\ninitrd=initrd.gz\ncofs31=c:\\share\n");
    assert_eq!(taken.config.implied_cofs31(), None);
    assert!(lint_codes(&taken, &LintOptions::default()).contains(&"cofs31-taken"));
}

// §9.15: mem is decimal MB; text after the number is ignored; 0 means automatic.
#[test]
fn fact_15_mem_is_decimal_megabytes() {
    let parsed = p("kernel=vmlinux\nmem=64M\n");
    assert_eq!(parsed.config.mem, Some(64));
    assert!(codes(&parsed).contains(&"mem-reads-as"));
    assert_eq!(p("kernel=vmlinux\nmem=0x40\n").config.mem, Some(0));
    assert!(codes(&p("kernel=vmlinux\nmem=abc\n")).contains(&"mem-not-number"));
    let auto = p("kernel=vmlinux\nmem=0\n");
    assert!(
        auto.lint(&LintOptions::default())
            .iter()
            .all(|d| !d.code.starts_with("mem"))
    );
}

// §9.15: the driver clamps to 8..984.
#[test]
fn fact_15_mem_is_clamped_to_8_984() {
    for mem in [4, 1024] {
        let parsed = p(&format!("kernel=vmlinux\nmem={mem}\n"));
        assert!(
            lint_codes(&parsed, &LintOptions::default()).contains(&"mem-range"),
            "{mem}"
        );
    }
    let ok = p("kernel=vmlinux\nmem=984\n");
    assert!(!lint_codes(&ok, &LintOptions::default()).contains(&"mem-range"));
}

// §9.16: cocon/cursor use strtol base 0; cocon takes any one separator; colours are exact.
#[test]
fn fact_16_cocon_cursor_base_0_and_exact_colours() {
    let parsed = p("kernel=vmlinux\ncocon=0x50x25\ncursor=010\ncolor=white,blue\n");
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let c = parsed.config.cocon.expect("cocon");
    assert_eq!((c.cols, c.rows, c.scrollback), (80, 25, 500));
    assert_eq!(parsed.config.cursor, Some(8));
    let c = p("kernel=vmlinux\ncocon=100,40,20\n")
        .config
        .cocon
        .expect("cocon");
    assert_eq!((c.cols, c.rows, c.scrollback), (100, 40, 40));
    assert_eq!(
        errors(&p("kernel=vmlinux\ncocon=10x25\n")),
        ["Invalid args (10x25) for cocon"]
    );
    assert_eq!(
        errors(&p("kernel=vmlinux\ncursor=101\n")),
        ["Invalid arg (101) for cursor"]
    );
    assert_eq!(
        errors(&p("kernel=vmlinux\ncolor=White,blue\n")),
        ["Invalid arg (White,blue) for color"]
    );
    assert_eq!(
        errors(&p("kernel=vmlinux\ncolor=red,red\n")),
        ["Warning, foreground == background: red,red"]
    );
}

// §9.17: the boot line is the leftover tokens joined by spaces, cut at 255 bytes.
#[test]
fn fact_17_boot_line_is_cut_at_255_bytes() {
    let words: Vec<String> = (0..40).map(|i| format!("param{i:02}=xxxxx")).collect();
    let parsed = p(&format!("kernel=vmlinux\n{}\n", words.join("\n")));
    let line = parsed.config.boot_line();
    assert_eq!(line.len(), 255);
    assert!(words.join(" ").starts_with(&line));
    assert!(codes(&parsed).contains(&"boot-line-truncated"));
    let mut cfg = Config::new("vmlinux");
    cfg.boot_params = words;
    assert!(matches!(
        write(&cfg),
        Err(WriteError::TooLong { max: 255, .. })
    ));
}

// §9.17: order is kept; root= is forwarded, not a daemon key.
#[test]
fn fact_17_boot_parameters_keep_their_order() {
    let parsed = p("ro\nkernel=vmlinux\ninit=/bin/sh\nroot=/dev/cobd0\nquiet\n");
    assert_eq!(parsed.config.root.as_deref(), Some("/dev/cobd0"));
    assert_eq!(parsed.config.boot_params, ["ro", "init=/bin/sh", "quiet"]);
}

// §9.18: slirp redirections: tcp|udp:host:guest[:count] joined by `/`.
#[test]
fn fact_18_slirp_redirection_syntax() {
    let r = parse_redirections("tcp:2222:22/UDP:69:69:2").expect("valid");
    assert_eq!(r.list.len(), 2);
    assert_eq!(r.list[1].count, 2);
    assert!(parse_redirections("tcp:1:2/x").is_err());
    assert!(parse_redirections("tcp:1:2:0").is_err());
    let parsed = p("kernel=vmlinux\neth0=slirp,02:00:00:00:00:01,tcp:1:2/bad\n");
    assert!(!parsed.has_errors(), "the daemon itself accepts it");
    assert!(lint_codes(&parsed, &LintOptions::default()).contains(&"slirp-redirection"));
}

// §9.19: several @files are spliced in order; there is no nesting.
#[test]
fn fact_19_files_are_spliced_in_order_without_nesting() {
    let parsed = parse_sources(&[
        Source::File {
            name: "a.conf",
            text: b"kernel=vmlinux\n@other.conf\nro\n",
        },
        Source::Arg(b"root=/dev/ram0"),
        Source::File {
            name: "b.conf",
            text: b"quiet\n",
        },
    ]);
    assert_eq!(parsed.config.boot_params, ["other.conf", "ro", "quiet"]);
    assert_eq!(parsed.config.root.as_deref(), Some("/dev/ram0"));
    let nested = parsed
        .diagnostics
        .iter()
        .find(|d| d.code == "nested-file")
        .expect("warned");
    assert_eq!(
        nested.location.as_ref().map(|l| (l.file.as_str(), l.line)),
        Some(("a.conf", 2))
    );
}

// §9.20: daemon exit codes and the --status-driver monitors line.
#[test]
fn fact_20_daemon_exit_codes_and_status_line() {
    assert_eq!(DaemonExit::from_code(0), DaemonExit::Ok);
    assert_eq!(DaemonExit::from_code(3), DaemonExit::VersionMismatch);
    assert_eq!(DaemonExit::from_code(14), DaemonExit::DriverMissing);
    assert_eq!(DaemonExit::from_code(-1), DaemonExit::Failed);
    assert_eq!(DaemonExit::from_code(0xFFFF_FFFF), DaemonExit::Failed);
    let out = "checking if the driver is installed\ncurrent state: 4 (fully initialized)\ncurrent number of monitors: 2\n";
    assert_eq!(running_monitors(out), Some(2));
    assert_eq!(running_monitors("driver not installed\n"), None);
}
