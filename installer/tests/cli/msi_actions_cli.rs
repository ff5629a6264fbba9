//! setup.msi's custom actions as commands (`msi install | rollback | uninstall`), run on
//! this host: what the MSI's rollback action does after each kind of install. Under Wine
//! that action never runs (Wine's msiexec removes the installed program first; msi.rs
//! shows the install's own journal undoing a failed provisioning), so its rules are
//! proven here, on the same code: a machine this install made goes (but not images it
//! found and kept), a machine that was there before stays byte for byte, and a failed
//! provisioning (which has undone itself) is left alone. And `msi install --json`, as
//! setup.msi's provisioning action runs it: its steps as events, the same outcome.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{FAILED, SMALL, cmd, host, install_cmd, p, sha256, tempdir, text};

const MARKER: &str = ".msi-provisioned";

/// `msi ACTION --property INSTALLDIR=DIR\. --property K=V...`, as the MSI formats it;
/// an install gets the host's monitor and its kit (`KIT`, `MONITOR`) first.
fn msi(action: &str, dir: &Path, props: &[&str]) -> Output {
    let installdir = format!("INSTALLDIR={}/.", dir.display());
    let mut args = vec!["msi", action, "--property", installdir.as_str()];
    let on_host = [
        format!("KIT={}", host().install_kit().display()),
        format!("MONITOR={}", host().monitor),
    ];
    if action == "install" {
        for prop in &on_host {
            args.extend(["--property", prop.as_str()]);
        }
    }
    for prop in props {
        args.extend(["--property", prop]);
    }
    // An unset property arrives empty: it means "not given".
    args.extend(["--property", "RAMMB=", "--msi-log", ""]);
    cmd(&args).output().expect("msi")
}

const PROPS: &[&str] = &["ROOTMB=64", "HOMEMB=32", "SWAPMB=64", "NOFIRSTBOOT=1"];

fn digests(dir: &Path, files: &[&str]) -> Vec<String> {
    files.iter().map(|f| sha256(&dir.join(f))).collect()
}

#[test]
fn the_rollback_removes_a_machine_this_install_made() {
    let t = tempdir("msi-new");
    let dir = t.path().join("m");
    let o = msi("install", &dir, PROPS);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join(MARKER)).expect("marker"),
        "new"
    );
    let o = msi("rollback", &dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !dir.exists(),
        "left after the rollback: {:?}",
        std::fs::read_dir(&dir).map(|d| d.count())
    );

    // The note goes with any uninstall: `uninstall --purge` leaves no folder behind.
    let o = msi("install", &dir, PROPS);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(dir.join(MARKER).is_file());
    let o = cmd(&["uninstall", "--purge", "--prefix", p(&dir)])
        .output()
        .expect("uninstall");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!dir.exists(), "uninstall --purge left the folder");
}

#[test]
fn the_rollback_leaves_a_machine_that_was_there_before_and_a_failed_provisioning() {
    let t = tempdir("msi-existing");
    let dir = t.path().join("m");
    let o = install_cmd(&dir, SMALL).output().expect("install");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let files = [
        "root.img",
        "home.img",
        "swap.img",
        "config.txt",
        "install-state.json",
    ];
    let before = digests(&dir, &files);

    // Provisioned again by the MSI (same sizes: a repair), then rolled back.
    let o = msi(
        "install",
        &dir,
        &[
            "RAMMB=128",
            "ROOTMB=64",
            "HOMEMB=32",
            "SWAPMB=64",
            "NOFIRSTBOOT=1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join(MARKER)).expect("marker"),
        "existing"
    );
    let o = msi("rollback", &dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("was there before this install"),
        "{}",
        text(&o)
    );
    assert_eq!(
        digests(&dir, &["root.img", "home.img", "swap.img"]),
        before[..3]
    );
    assert!(dir.join("config.txt").is_file() && dir.join("install-state.json").is_file());
    assert!(!dir.join(MARKER).exists());

    // A provisioning that fails undoes itself and leaves no note: the rollback that
    // follows changes nothing.
    let before = digests(&dir, &files);
    let o = msi("install", &dir, &["SUBNET=300.1.2.0/24"]);
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    assert!(!dir.join(MARKER).exists());
    let o = msi("rollback", &dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("did not complete"), "{}", text(&o));
    assert_eq!(digests(&dir, &files), before);
}

#[test]
fn the_rollback_keeps_images_an_earlier_uninstall_left() {
    let t = tempdir("msi-kept");
    let dir = t.path().join("m");
    let o = msi("install", &dir, PROPS);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = msi("uninstall", &dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!dir.join(MARKER).exists(), "the uninstall left the note");
    let images = ["root.img", "home.img", "swap.img"];
    let before = digests(&dir, &images);

    // Installed again over the kept images, then rolled back: they stay.
    let o = msi("install", &dir, PROPS);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = msi("rollback", &dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("it was there before this install"),
        "{}",
        text(&o)
    );
    assert_eq!(digests(&dir, &images), before);
    for f in ["config.txt", "install-state.json", MARKER] {
        assert!(!dir.join(f).exists(), "{f} left");
    }
}

/// `msi install --json`, as setup.msi's provisioning action runs it: its stdout is one
/// JSON event a line (the steps' phases, which the progress page shows, then done), the
/// exit code and the rollback's note are those of the install without it; a refused
/// install says why in an error event and exits 1603, as without it.
#[test]
fn msi_install_json_prints_the_steps_as_events_with_the_same_outcome() {
    let t = tempdir("msi-json");
    let dir = t.path().join("m");
    let mut props = PROPS.to_vec();
    props.push("HOSTNAME=json");
    let with = |dir: &Path, props: &[&str]| {
        let installdir = format!("INSTALLDIR={}/.", dir.display());
        let kit = format!("KIT={}", host().install_kit().display());
        let monitor = format!("MONITOR={}", host().monitor);
        let mut args = vec!["msi", "install", "--json"];
        for prop in [&installdir, &kit, &monitor] {
            args.extend(["--property", prop.as_str()]);
        }
        for prop in props {
            args.extend(["--property", prop]);
        }
        cmd(&args).output().expect("msi install --json")
    };
    let o = with(&dir, &props);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "phase")
        .filter_map(|e| e["name"].as_str())
        .collect();
    for step in ["building root.img", "writing config.txt"] {
        assert!(phases.contains(&step), "no phase {step:?}: {phases:?}");
    }
    assert_eq!(events.last().map(|e| &e["event"]), Some(&"done".into()));
    assert_eq!(
        std::fs::read_to_string(dir.join(MARKER)).expect("marker"),
        "new"
    );

    let bad = tempdir("msi-json-bad");
    let dir = bad.path().join("m");
    let o = with(&dir, &["SUBNET=300.1.2.0/24"]);
    assert_eq!(o.status.code(), Some(FAILED), "{}", text(&o));
    let last = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .expect("an event");
    assert_eq!(last["event"], "error", "{last}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("SUBNET")),
        "{last}"
    );
    assert!(!dir.join(MARKER).exists());
}
