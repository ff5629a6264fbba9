//! The linter's traps (issue #4, item 4), each on a file the daemon accepts.

use config_txt::{LintOptions, Severity, parse};

fn lint(text: &str, opts: &LintOptions) -> Vec<(&'static str, Severity, u32)> {
    let parsed = parse(text.as_bytes(), "config.txt");
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    parsed
        .lint(opts)
        .into_iter()
        .map(|d| (d.code, d.severity, d.location.map_or(0, |l| l.line)))
        .collect()
}

fn has(found: &[(&'static str, Severity, u32)], code: &str, line: u32) -> bool {
    found.iter().any(|(c, _, l)| *c == code && *l == line)
}

const BASE: &str = "kernel=c:\\coLinux\\vmlinux\n";

#[test]
fn whole_drive_cofs_share_is_a_warning() {
    let f = lint(
        &format!("{BASE}cofs0=C:\\\ncofs1=d:\ncofs2=c:\\share\n"),
        &LintOptions::default(),
    );
    assert!(has(&f, "cofs-whole-drive", 2));
    assert!(has(&f, "cofs-whole-drive", 3));
    assert!(!has(&f, "cofs-whole-drive", 4));
}

#[test]
fn paths_with_spaces_are_warnings() {
    let f = lint(
        &format!("{BASE}cobd0=\"C:\\Program Files\\coLinux\\root.img\"\n"),
        &LintOptions::default(),
    );
    assert!(has(&f, "path-spaces", 2));
}

#[test]
fn relative_paths_are_warnings() {
    let f = lint(
        "kernel=vmlinux\ncobd0=.\\root.img\ncobd1=\\\\srv\\share\\home.img\n",
        &LintOptions::default(),
    );
    assert!(has(&f, "relative-path", 1));
    assert!(has(&f, "relative-path", 2));
    assert!(!has(&f, "relative-path", 3));
}

#[test]
fn mem_not_a_multiple_of_4_and_out_of_range() {
    let f = lint(&format!("{BASE}mem=130\n"), &LintOptions::default());
    assert!(has(&f, "mem-multiple-of-4", 2));
    let f = lint(&format!("{BASE}mem=1000\n"), &LintOptions::default());
    assert!(has(&f, "mem-range", 2));
    let f = lint(&format!("{BASE}mem=128\n"), &LintOptions::default());
    assert!(f.iter().all(|(c, _, _)| !c.starts_with("mem")));
}

#[test]
fn duplicate_scalars_are_warnings_on_the_later_line() {
    let f = lint(
        &format!("{BASE}initrd=initrd.gz\ninitrd=other.gz\n"),
        &LintOptions::default(),
    );
    assert!(has(&f, "duplicate-scalar", 3));
}

#[test]
fn initrd_after_first_boot_is_a_warning_only_then() {
    let text = format!("{BASE}initrd=c:\\coLinux\\initrd.gz\n");
    assert!(!has(
        &lint(&text, &LintOptions::default()),
        "initrd-after-first-boot",
        2
    ));
    assert!(has(
        &lint(&text, &LintOptions::after_first_boot()),
        "initrd-after-first-boot",
        2
    ));
}

#[test]
fn slirp_redirections_that_collide_or_are_malformed() {
    let f = lint(
        &format!(
            "{BASE}eth0=slirp,02:00:00:00:00:01,tcp:2222:22/tcp:2220:80:5\neth1=slirp,02:00:00:00:00:02,udp:1:2/tcp:5\n"
        ),
        &LintOptions::default(),
    );
    assert!(has(&f, "slirp-collision", 2));
    assert!(
        f.iter()
            .any(|(c, s, l)| *c == "slirp-redirection" && *s == Severity::Error && *l == 3)
    );
    let f = lint(
        &format!("{BASE}eth0=slirp,02:00:00:00:00:01,tcp:2222:22/udp:2222:22\n"),
        &LintOptions::default(),
    );
    assert!(
        !f.iter().any(|(c, _, _)| c.starts_with("slirp")),
        "tcp and udp do not collide: {f:?}"
    );
}

#[test]
fn mac_not_locally_administered_is_a_warning() {
    let f = lint(
        &format!("{BASE}eth0=tuntap,,00:11:22:33:44:55\neth1=tuntap,,02:11:22:33:44:55\n"),
        &LintOptions::default(),
    );
    assert!(has(&f, "mac-not-local", 2));
    assert!(!has(&f, "mac-not-local", 3));
}

#[test]
fn empty_field_written_as_two_quotes_is_reported() {
    // The name field of a tuntap adapter reads as `"`: the daemon accepts it but looks for
    // an adapter called `"`. The MAC case is an error (see tests/files.rs).
    let parsed = parse(
        format!("{BASE}eth0=tuntap,\"\",02:00:00:00:00:01\n").as_bytes(),
        "c",
    );
    let d = parsed
        .diagnostics
        .iter()
        .find(|d| d.code == "empty-field-quotes")
        .expect("reported");
    assert_eq!(d.severity, Severity::Warning);
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("`eth0=tuntap,,02:00:00:00:00:01`"))
    );
}

#[test]
fn unknown_alias_names_are_warnings() {
    let f = lint(
        &format!("{BASE}cobd0=c:\\r.img\nhdz1=:cobd0\n"),
        &LintOptions::default(),
    );
    assert!(has(&f, "alias-unknown", 3));
}

#[test]
fn exec_program_with_spaces_needs_embedded_quotes() {
    let f = lint(
        &format!("{BASE}exec0=\"C:\\Program Files\\X\\x.exe\",-a\n"),
        &LintOptions::default(),
    );
    assert!(has(&f, "exec-spaces", 2));
    let f = lint(
        &format!("{BASE}exec0=\"\"\"C:\\Program Files\\X\\x.exe\"\"\",-a\n"),
        &LintOptions::default(),
    );
    assert!(!has(&f, "exec-spaces", 2));
}
