//! `msi install | uninstall | rollback | driver`: the entry points setup.msi's deferred
//! custom actions run (wix/main.wxs), with the MSI's public properties as
//! `--property KEY=VALUE` arguments.
//!
//! Why a command of its own and not `install --set ...`: Windows Installer formats the
//! custom action's command line with every property, given or not, so an unset
//! property arrives as `RAMMB=` (here: not given, the plan's default applies), and a
//! folder property ends with a backslash that would escape the closing quote, so the
//! .wxs writes `[INSTALLDIR].` and the trailing `\.` is dropped here. Everything else is
//! the ordinary install/uninstall: same plan, same journal and rollback, same exit codes.
//! The run's log goes to `%ProgramData%\colinux-setup\logs\msi-<action>-<time>.log` (on
//! other hosts [`crate::host::state_dir`]), named in the failure message msiexec's
//! verbose log carries.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::anyhow;
use clap::{Args, Subcommand};

use crate::cli::InstallArgs;
use crate::exit::Outcome;

/// The MSI's public properties this command takes.
pub const PROPERTIES: &[&str] = &[
    "INSTALLDIR",
    "RAMMB",
    "ROOTMB",
    "HOMEMB",
    "SWAPMB",
    "TAPNAME",
    "SUBNET",
    "MONITOR",
    "NOFIRSTBOOT",
    "ANSWERFILE",
    "PURGE",
    "KIT",
    "PROFILE",
    "HOSTNAME",
    "DRIVERSIGNER",
];

/// Written by `msi install` in a folder that already held a machine: its rollback then
/// keeps the images.
const KEEP_MARKER: &str = ".msi-kept-machine";

/// `msi` subcommands.
#[derive(Debug, Subcommand)]
pub enum MsiCommand {
    /// Provision the machine in INSTALLDIR (the install custom action).
    Install(MsiArgs),
    /// Remove the machine; its images are kept unless PURGE=1 (the uninstall action).
    Uninstall(MsiArgs),
    /// Undo a provisioning this install made, images included (the rollback action).
    Rollback(MsiArgs),
    /// Install the ring-0 driver when INSTALLDIR holds linux.sys (the driver action).
    Driver(MsiArgs),
    /// Remove the ring-0 driver when INSTALLDIR holds linux.sys (uninstall and rollback).
    DriverRemove(MsiArgs),
}

/// The properties, as the custom action passes them.
#[derive(Debug, Args)]
pub struct MsiArgs {
    /// A property: KEY=VALUE; an empty VALUE means not given.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Write the run's log here (default: a new file under %ProgramData%\colinux-setup\logs).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// msiexec's own log (the MsiLogFileLocation property, empty without /l): this run's
    /// log is written beside it, as LOG.colinux-setup-ACTION.log.
    /// A String, not a path: the property is empty when msiexec writes no log.
    #[arg(long, value_name = "FILE")]
    pub msi_log: Option<String>,
}

/// The given (non-empty) properties, in order; unknown keys are usage errors.
pub fn parse(props: &[String]) -> Result<Vec<(String, String)>, anyhow::Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for p in props {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--property {p}: expected KEY=VALUE"))?;
        let key = k.trim().to_ascii_uppercase();
        if !PROPERTIES.contains(&key.as_str()) {
            return Err(anyhow!(
                "--property {p}: unknown property {key}; known: {}",
                PROPERTIES.join(", ")
            ));
        }
        let mut value = v.trim().to_owned();
        if key == "INSTALLDIR" {
            value = folder(&value);
        }
        if value.is_empty() {
            continue;
        }
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
    }
    Ok(out)
}

/// `C:\coLinux\.` (how the .wxs passes a folder) and `C:\coLinux\` -> `C:\coLinux`.
fn folder(v: &str) -> String {
    let v = v
        .strip_suffix('.')
        .map_or(v, |s| if s.ends_with(['\\', '/']) { s } else { v });
    let t = v.trim_end_matches(['\\', '/']);
    // Keep a drive root (C:\) whole.
    if t.len() == 2 && t.ends_with(':') {
        return format!("{t}\\");
    }
    t.to_owned()
}

fn get<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The log file of this run: `--log`, else beside msiexec's log, else under the state
/// folder.
fn log_path(given: Option<PathBuf>, msi_log: Option<String>, action: &str) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    if let Some(m) = msi_log.filter(|m| !m.trim().is_empty()) {
        return PathBuf::from(format!("{}.colinux-setup-{action}.log", m.trim()));
    }
    {
        let dir = crate::host::state_dir().join("logs");
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!(
            "msi-{action}-{}-{}.log",
            crate::state::stamp(crate::state::now_secs()),
            std::process::id()
        ))
    }
}

/// Runs an `msi` subcommand.
pub fn run(cmd: MsiCommand, interrupt: &AtomicBool) -> Outcome {
    let (action, args) = match cmd {
        MsiCommand::Install(a) => ("install", a),
        MsiCommand::Uninstall(a) => ("uninstall", a),
        MsiCommand::Rollback(a) => ("rollback", a),
        MsiCommand::Driver(a) => ("driver", a),
        MsiCommand::DriverRemove(a) => ("driver-remove", a),
    };
    let props = match parse(&args.properties) {
        Ok(p) => p,
        Err(e) => return Outcome::Usage(e),
    };
    let Some(prefix) = get(&props, "INSTALLDIR").map(PathBuf::from) else {
        return Outcome::Usage(anyhow!(
            "msi {action}: INSTALLDIR is not set; the custom action passes --property \"INSTALLDIR=[INSTALLDIR].\""
        ));
    };
    let log = log_path(args.log, args.msi_log, action);
    eprintln!("colinux-setup: msi {action}: log {}", log.display());
    match action {
        "install" => {
            // A machine that was there before this install is never purged by the
            // rollback of this one (its images may hold the user's data).
            if prefix.join(crate::state::STATE_FILE).is_file() {
                let _ = std::fs::write(prefix.join(KEEP_MARKER), b"");
            }
            let mut set = Vec::new();
            for (k, v) in &props {
                if !matches!(k.as_str(), "ANSWERFILE" | "PURGE" | "DRIVERSIGNER") {
                    set.push(format!("{k}={v}"));
                }
            }
            let a = InstallArgs {
                prefix: Some(prefix),
                answers: get(&props, "ANSWERFILE").map(PathBuf::from),
                set,
                unattended: true,
                log: Some(log),
                ..InstallArgs::default()
            };
            crate::cmd::install::run(a, interrupt)
        }
        "uninstall" | "rollback" => {
            if !prefix.join(crate::state::STATE_FILE).is_file() {
                // Nothing was provisioned (or it was already removed): nothing to undo.
                eprintln!(
                    "colinux-setup: msi {action}: no machine in {}; nothing to do",
                    prefix.display()
                );
                return Outcome::Done;
            }
            let purge = if action == "rollback" {
                !prefix.join(KEEP_MARKER).is_file()
            } else {
                get(&props, "PURGE").is_some_and(|v| v == "1")
            };
            crate::cmd::uninstall::run(&prefix, purge, false, Some(&log))
        }
        _ => {
            use crate::cmd::driver::{DriverCommand, HostArgs, InstallArgs, TrustArgs};
            let file = prefix.join("linux.sys");
            if !file.is_file() {
                eprintln!(
                    "colinux-setup: msi {action}: {} holds no linux.sys (the kit has no driver); skipped",
                    prefix.display()
                );
                return Outcome::Done;
            }
            let host = HostArgs {
                prefix: Some(prefix),
                dry_run: false,
                json: false,
            };
            if action == "driver-remove" {
                return crate::cmd::driver::run(DriverCommand::Remove(host));
            }
            // The install step already installs a kit's driver with the kit's pinned
            // signer; this action only re-pins it to a signer the administrator gives.
            let Some(signer) = get(&props, "DRIVERSIGNER") else {
                eprintln!(
                    "colinux-setup: msi driver: no DRIVERSIGNER; the install step handled the kit's driver"
                );
                return Outcome::Done;
            };
            crate::cmd::driver::run(DriverCommand::Install(InstallArgs {
                host,
                file: Some(file),
                trust: TrustArgs {
                    signer: Some(signer.to_owned()),
                    allow_test_signing: false,
                },
                no_start: false,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_lose_the_dot_and_trailing_separator() {
        assert_eq!(folder(r"C:\coLinux\."), r"C:\coLinux");
        assert_eq!(folder(r"C:\coLinux\"), r"C:\coLinux");
        assert_eq!(folder(r"C:\."), r"C:\");
        assert_eq!(folder("/srv/m/."), "/srv/m");
        assert_eq!(folder("/srv/m.d"), "/srv/m.d");
    }

    #[test]
    fn empty_properties_are_not_given_and_unknown_ones_refused() {
        let p = parse(&[
            "RAMMB=".into(),
            "ROOTMB=64".into(),
            "INSTALLDIR=C:\\m\\.".into(),
        ])
        .expect("valid");
        assert_eq!(
            p,
            vec![
                ("ROOTMB".into(), "64".into()),
                ("INSTALLDIR".into(), "C:\\m".into())
            ]
        );
        let e = parse(&["RAMM=64".into()]).expect_err("unknown");
        assert!(e.to_string().contains("unknown property RAMM"), "{e}");
        assert!(parse(&["RAMMB".into()]).is_err());
    }
}
