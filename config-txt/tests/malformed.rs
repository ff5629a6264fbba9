//! Malformed input gives diagnostics, never a panic, and in linear time.

use std::time::{Duration, Instant};

use config_txt::{LintOptions, Parsed, parse, write};

fn run(bytes: &[u8]) -> Parsed {
    let start = Instant::now();
    let parsed = parse(bytes, "bad.txt");
    let _ = parsed.lint(&LintOptions::after_first_boot());
    if !parsed.has_errors() {
        let _ = write(&parsed.config);
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    parsed
}

#[test]
fn binary_junk_is_an_error_not_a_panic() {
    // A deterministic pseudo-random megabyte (xorshift), no NUL so that all of it is read.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let junk: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8).max(1)
        })
        .collect();
    let parsed = run(&junk);
    assert!(parsed.has_errors());
}

#[test]
fn utf16_is_an_error() {
    let text: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(
            "kernel=vmlinux\r\nmem=64\r\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    assert!(run(&text).has_errors());
    let be: Vec<u8> = [0xfe, 0xff]
        .into_iter()
        .chain(
            "kernel=vmlinux\r\n"
                .encode_utf16()
                .flat_map(u16::to_be_bytes),
        )
        .collect();
    assert!(run(&be).has_errors());
}

#[test]
fn megabyte_lines_are_errors_or_warnings() {
    let long = "a".repeat(1 << 20);
    assert!(run(format!("kernel={long}\n").as_bytes()).has_errors());
    let p = run(format!("kernel=vmlinux\ncobd0={long}\n").as_bytes());
    assert!(p.diagnostics.iter().any(|d| d.code == "path-truncated"));
    let p = run(format!("kernel=vmlinux\n{long}\n").as_bytes());
    assert!(
        p.diagnostics
            .iter()
            .any(|d| d.code == "boot-line-truncated")
    );
    assert_eq!(p.config.boot_line().len(), 255);
    let p = run(format!("kernel=vmlinux\neth0=tuntap,\"{long}\n").as_bytes());
    assert!(p.diagnostics.iter().any(|d| d.code == "unterminated-quote"));
    let many = "cobd0=x\n".repeat(1 << 17);
    let p = run(format!("kernel=vmlinux\n{many}").as_bytes());
    assert!(p.has_errors());
}

#[test]
fn unterminated_quotes_are_reported() {
    let p = run(b"kernel=\"c:\\coLinux\\vmlinux\ncobd0=\"c:\\x\n");
    assert_eq!(
        p.diagnostics
            .iter()
            .filter(|d| d.code == "unterminated-quote")
            .count(),
        2
    );
    // The quote stays in the path: the daemon would look for a file named `"c:\...`.
    assert_eq!(p.config.kernel.as_deref(), Some("\"c:\\coLinux\\vmlinux"));
}

#[test]
fn indices_out_of_range_are_errors() {
    for line in [
        "cobd99999999999999999999=x",
        "eth-1=tuntap",
        "exec+9=x",
        "cofs4294967296=x",
    ] {
        let p = run(format!("kernel=vmlinux\n{line}\n").as_bytes());
        assert!(
            p.diagnostics.iter().any(|d| d.code == "index-out-of-range"),
            "{line}: {:?}",
            p.diagnostics
        );
    }
}

#[test]
fn non_utf8_values_are_errors() {
    let p = run(b"kernel=vmlinux\ncobd0=c:\\\xe9t\xe9.img\n");
    assert!(p.diagnostics.iter().any(|d| d.code == "not-utf8"));
}
