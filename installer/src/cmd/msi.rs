//! `msi install | uninstall | rollback`: the entry points setup.msi's deferred custom
//! actions run (wix/main.wxs), with the MSI's public properties as `--property KEY=VALUE`
//! arguments.
//!
//! Everything the MSI provisions (images, config.txt, the kit's files, TAP, the driver
//! with DRIVERSIGNER as its pin, the machine service of the MachineService feature, the
//! PuTTY session of the PuttySession feature in the installing user's hive, UserSID) is
//! one `msi install`: one journal, so a failure anywhere undoes all of it before the
//! action returns. The MSI's own rollback action (`msi rollback`) is for a failure of a
//! later standard action; it removes what this install made and leaves a machine that
//! was there before alone. (Under Wine it never runs: Wine's msiexec removes the
//! installed program before it runs rollback actions.)
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

use super::cli::InstallArgs;
use crate::exit::Outcome;

/// Written by `msi install` when the provisioning succeeded: `new` when the folder held
/// no machine before, `existing` when it did. The MSI's rollback action reads it: no
/// marker means the provisioning failed and its own journal has already undone it
/// (nothing more to do); `new` means a later failure must remove the machine this
/// install made (not images it found and kept); `existing` means the machine that was
/// there before is left alone. Removed at the start of every `msi install` (so a stale
/// one never decides), by the rollback and by the uninstall.
const MARKER: &str = crate::state::MSI_NOTE_FILE;

/// `msi` subcommands.
#[derive(Debug, Subcommand)]
pub enum MsiCommand {
    /// Provision the machine in INSTALLDIR (the install custom action).
    Install(MsiArgs),
    /// Remove the machine; its images are kept unless PURGE=1 (the uninstall action).
    Uninstall(MsiArgs),
    /// Undo a provisioning this install made, with the images it made (the rollback
    /// action); a machine that was there before is left as it is.
    Rollback(MsiArgs),
    /// List setup.msi's public properties, one per line (for its build and tests).
    #[command(hide = true)]
    Properties,
    /// What setup.msi's dialogs show and whether their answers can be installed, as a
    /// JSON object of properties (run by the dialogs' DLL custom action on every Next).
    #[command(hide = true)]
    Ui(UiArgs),
    /// Write the dialogs' tables (.idt files and INSERTs) for scripts/build-msi.
    #[command(hide = true)]
    UiTables(UiTablesArgs),
    /// Print the dialogs as a WiX fragment (wix/ui.wxs, for a WiX build on Windows).
    #[command(hide = true)]
    UiWxs,
}

/// `msi ui`'s arguments.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// The page being left (`start` before the first).
    #[arg(long, default_value = "start")]
    pub page: String,
    /// A property: KEY=VALUE; an empty VALUE means not given.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

/// `msi ui-tables`'s arguments.
#[derive(Debug, Args)]
pub struct UiTablesArgs {
    /// The folder to write the tables into.
    pub dir: PathBuf,
    /// The dialogs' DLL custom action (colinux_setup_ca.dll), for the Binary table.
    #[arg(long)]
    pub dll: PathBuf,
    /// colinux-setup.exe, for the Binary table (the DLL runs it).
    #[arg(long)]
    pub exe: PathBuf,
    /// A file of the program's assets folder the exe needs to plan (the busybox the
    /// built-in root is made from, its applet list); the DLL puts it in `assets\`
    /// beside the exe's `bin\`, as the install does.
    #[arg(long = "asset", value_name = "FILE")]
    pub assets: Vec<PathBuf>,
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
    /// Progress as NDJSON events on stdout, as `install --json` prints them: setup.msi's
    /// provisioning action (installer-ca's ColinuxSetupProvision) reads them to show each
    /// step on the progress page. Logs and exit codes are the same without it.
    #[arg(long)]
    pub json: bool,
}

/// The given (non-empty) properties, in order; unknown keys are usage errors.
pub fn parse(props: &[String]) -> Result<Vec<(String, String)>, anyhow::Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for p in props {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--property {p}: expected KEY=VALUE"))?;
        let key = k.trim().to_ascii_uppercase();
        let known = crate::answer_keys::msi_properties();
        if !known.contains(&key.as_str()) {
            return Err(anyhow!(
                "--property {p}: unknown property {key}; known: {}",
                known.join(", ")
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
        MsiCommand::Properties => {
            for p in crate::answer_keys::msi_properties() {
                crate::out::outln!("{p}");
            }
            return Outcome::Done;
        }
        MsiCommand::Ui(a) => return ui(&a),
        MsiCommand::UiWxs => {
            crate::out::out!("{}", crate::wizard::msi::wxs::text());
            return Outcome::Done;
        }
        MsiCommand::UiTables(a) => {
            return match crate::wizard::msi::idt::write(&a.dir, &a.dll, &a.exe, &a.assets) {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Failed(anyhow!(e).context("writing setup.msi's dialog tables")),
            };
        }
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
            let marker = prefix.join(MARKER);
            if let Err(e) = std::fs::remove_file(&marker)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Outcome::Failed(anyhow!(
                    "cannot remove the stale {}: {e}",
                    marker.display()
                ));
            }
            let existed = prefix.join(crate::state::STATE_FILE).is_file();
            let mut set = Vec::new();
            for (k, v) in &props {
                if !matches!(k.as_str(), "ANSWERFILE" | "PURGE" | "USERSID") {
                    set.push(format!("{k}={v}"));
                }
            }
            // The install runs as LocalSystem: a PuTTY session goes to the hive of the
            // user who started msiexec (the UserSID property), where their PuTTY looks.
            if let (Some(sid), Some(p)) = (get(&props, "USERSID"), get(&props, "PUTTYSESSION"))
                && p != "0"
            {
                set.push(format!("PUTTYUSER={sid}"));
            }
            let a = InstallArgs {
                prefix: Some(prefix),
                answers: get(&props, "ANSWERFILE").map(PathBuf::from),
                set,
                unattended: true,
                log: Some(log),
                json: args.json,
                ..InstallArgs::default()
            };
            let outcome = crate::cmd::install::run(a, interrupt);
            if matches!(outcome, Outcome::Done | Outcome::RebootRequired) {
                let what: &[u8] = if existed { b"existing" } else { b"new" };
                if let Err(e) = crate::state::write_atomic(&marker, what) {
                    return Outcome::Failed(e.context(
                        "the machine is provisioned, but the note for the MSI's rollback could not be written",
                    ));
                }
            }
            outcome
        }
        "uninstall" | "rollback" => {
            let marker = prefix.join(MARKER);
            let provisioned = std::fs::read(&marker).ok();
            let _ = std::fs::remove_file(&marker);
            if action == "rollback" {
                let why = match provisioned.as_deref() {
                    None => Some("the provisioning did not complete and has undone itself"),
                    Some(b"new") => None,
                    Some(_) => Some("the machine was there before this install"),
                };
                if let Some(why) = why {
                    let mut run_log = crate::state::RunLog::start("rollback", Some(&log));
                    let msg = format!("msi rollback: {why}; {} is left as it is", prefix.display());
                    run_log.line(&msg);
                    eprintln!("colinux-setup: {msg}");
                    return Outcome::Done;
                }
            }
            if !prefix.join(crate::state::STATE_FILE).is_file() {
                // Nothing was provisioned (or it was already removed): nothing to undo.
                eprintln!(
                    "colinux-setup: msi {action}: no machine in {}; nothing to do",
                    prefix.display()
                );
                return Outcome::Done;
            }
            use crate::apply::Purge;
            let purge = if action == "rollback" {
                Purge::MadeByInstall
            } else if get(&props, "PURGE").is_some_and(|v| v == "1") {
                Purge::All
            } else {
                Purge::No
            };
            crate::cmd::uninstall::run(&prefix, purge, args.json, Some(&log))
        }
        _ => unreachable_action(action),
    }
}

/// `msi ui`: the dialogs' properties as one JSON object on standard output. A refusal
/// of the answers is a property (UI_ERROR) the dialogs show, not a failure of the run.
fn ui(a: &UiArgs) -> Outcome {
    use crate::wizard::msi::answers::{self, FILLED};
    let (filled, rest): (Vec<&String>, Vec<&String>) = a
        .properties
        .iter()
        .partition(|p| p.split_once('=').is_some_and(|(k, _)| k.trim() == FILLED));
    let filled = filled
        .last()
        .and_then(|p| p.split_once('='))
        .map_or("", |(_, v)| v);
    let rest: Vec<String> = rest.into_iter().cloned().collect();
    let props = match parse(&rest) {
        Ok(p) => p,
        Err(e) => return Outcome::Usage(e),
    };
    let shown = answers::properties(&a.page, &props, filled);
    match serde_json::to_string(&shown) {
        Ok(json) => {
            crate::out::outln!("{json}");
            Outcome::Done
        }
        Err(e) => Outcome::Failed(anyhow!(e).context("writing the dialogs' properties")),
    }
}

/// Every action is matched above; this keeps the match total without a panic.
fn unreachable_action(action: &str) -> Outcome {
    Outcome::Usage(anyhow!("msi {action}: not an action"))
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
