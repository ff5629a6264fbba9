//! `service install | remove | status`: the machine as a Windows service that starts at
//! boot (colinux-daemon `--run-service`, see [`crate::service`]).
//!
//! - `install`: the service for the machine in `--prefix` (its config.txt decides the
//!   dependencies); creates it, or updates one of that name whose configuration
//!   differs. Refused for a machine installed for another monitor.
//! - `remove`: stop it when it runs, then delete it; 3010 when Windows finishes the
//!   deletion at the next reboot; nothing to do (0) when there is none.
//! - `status`: exit 0 when the service exists, 1 when not.
//!
//! The name is `--name`, else the install's `SERVICENAME`, else `coLinux`.
//! `--dry-run` uses an in-memory recording host and prints what would be done.
//! Test hook: `COLINUX_SETUP_TEST_SERVICE_HOST=FILE` replaces the host with a recording
//! host whose state is kept in FILE (JSON), so the tests can drive every path on Linux;
//! it is not part of the product's interface. Without it, Linux has no service host
//! and says so (exit 1603).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::exit::Outcome;
use crate::service::{self, Installed, Removed, SpecError, host_for};

/// `service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register the machine as a Windows service that starts at boot (after the
    /// CoLinuxDriver service); updates an existing one whose settings differ.
    Install(ServiceArgs),
    /// Stop and delete the service (exit 3010 when Windows needs a reboot to finish).
    Remove(ServiceArgs),
    /// Report the service's state and command line (exit 0 installed, 1 not).
    Status(ServiceArgs),
}

/// Options of every `service` subcommand.
#[derive(Debug, Args, Clone, Default)]
pub struct ServiceArgs {
    /// Install folder of the machine (default: the default profile's folder).
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// Service name (default: the install's SERVICENAME, else coLinux).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Say what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `service` subcommand.
pub fn run(cmd: ServiceCommand) -> Outcome {
    match cmd {
        ServiceCommand::Install(a) => install(&a),
        ServiceCommand::Remove(a) => remove(&a),
        ServiceCommand::Status(a) => status(&a),
    }
}

/// The name to use: `--name`, the install's SERVICENAME or recorded service, `coLinux`.
fn name_for(a: &ServiceArgs, prefix: &Path) -> Result<String, Outcome> {
    let name = match &a.name {
        Some(n) => n.clone(),
        None => match crate::state::InstallState::read(prefix) {
            Ok(Some(st)) => st
                .answers
                .get("SERVICENAME")
                .cloned()
                .or_else(|| service::step::record(&st).ok().flatten().map(|s| s.name))
                .unwrap_or_else(|| service::DEFAULT_NAME.to_owned()),
            Ok(None) => service::DEFAULT_NAME.to_owned(),
            Err(e) => return Err(Outcome::Failed(e)),
        },
    };
    service::validate_name(&name).map_err(|e| Outcome::Usage(anyhow!("--name: {e}")))?;
    Ok(name)
}

fn lock(prefix: &Path, dry_run: bool) -> Result<Option<crate::state::Lock>, Outcome> {
    if dry_run || !prefix.is_dir() {
        return Ok(None);
    }
    match crate::state::Lock::acquire(prefix) {
        Ok(l) => Ok(Some(l)),
        Err(e @ crate::state::LockError::Busy(_)) => Err(Outcome::Busy(anyhow!(e).context(
            "the machine is running in the foreground (boot) or being installed; stop it first, then change its service",
        ))),
        Err(e) => Err(Outcome::Failed(anyhow!(e))),
    }
}

fn suffix(dry_run: bool) -> &'static str {
    if dry_run {
        " (dry run: nothing was changed)"
    } else {
        ""
    }
}

/// `service install`: registers the service of the machine in `a.prefix`.
pub fn install(a: &ServiceArgs) -> Outcome {
    let prefix = crate::cmd::default_prefix(a.prefix.clone());
    let name = match name_for(a, &prefix) {
        Ok(n) => n,
        Err(o) => return o,
    };
    match crate::state::InstallState::read(&prefix) {
        Ok(Some(st)) if st.monitor != crate::profile::Monitor::Colinux => {
            return Outcome::Failed(anyhow!(
                "{}: this machine is installed for the {} monitor; the machine service runs colinux-daemon and exists only for the coLinux monitor (run it with `colinux-setup boot`)",
                prefix.display(),
                st.monitor
            ));
        }
        Ok(_) => {}
        Err(e) => return Outcome::Failed(e),
    }
    // The host first: on a host without one, that is the answer, whatever the folder.
    let mut h = match host_for(a.dry_run) {
        Ok(h) => h,
        Err(e) => return Outcome::Failed(e),
    };
    let spec = match service::spec_for_prefix(&prefix, &name) {
        Ok(s) => s,
        Err(e @ SpecError::BadName { .. }) => return Outcome::Usage(anyhow!(e)),
        Err(e) => return Outcome::Failed(anyhow!(e)),
    };
    let _lock = match lock(&prefix, a.dry_run) {
        Ok(l) => l,
        Err(o) => return o,
    };
    match h.install(&spec) {
        Ok(outcome) => {
            if a.json {
                let status = h.status(&name).ok();
                crate::out::outln!(
                    "{}",
                    json!({"action": "install", "host": h.kind(), "dry_run": a.dry_run, "outcome": outcome, "spec": spec, "status": status})
                );
            } else {
                let what = match &outcome {
                    Installed::Created => "installed; it starts at the next boot".to_owned(),
                    Installed::AlreadyInstalled => "already installed; nothing to do".to_owned(),
                    Installed::Updated { changed } => format!("updated ({})", changed.join(", ")),
                };
                crate::out::outln!(
                    "service {name} ({}): {what}{}\n  command line: {}\n  depends on:   {}",
                    h.kind(),
                    suffix(a.dry_run),
                    spec.command_line,
                    spec.dependencies.join(", ")
                );
            }
            Outcome::Done
        }
        Err(e) => {
            Outcome::Failed(anyhow!(e).context(format!("the service host ({}) refused", h.kind())))
        }
    }
}

/// `service remove`: stops and deletes the service.
pub fn remove(a: &ServiceArgs) -> Outcome {
    let prefix = crate::cmd::default_prefix(a.prefix.clone());
    let name = match name_for(a, &prefix) {
        Ok(n) => n,
        Err(o) => return o,
    };
    let _lock = match lock(&prefix, a.dry_run) {
        Ok(l) => l,
        Err(o) => return o,
    };
    let mut h = match host_for(a.dry_run) {
        Ok(h) => h,
        Err(e) => return Outcome::Failed(e),
    };
    match h.remove(&name) {
        Ok(outcome) => {
            if a.json {
                crate::out::outln!(
                    "{}",
                    json!({"action": "remove", "host": h.kind(), "dry_run": a.dry_run, "name": name, "outcome": outcome})
                );
            } else {
                crate::out::outln!(
                    "service {name} ({}): {}{}",
                    h.kind(),
                    match outcome {
                        Removed::Removed => "stopped and removed",
                        Removed::NotInstalled => "not installed; nothing to do",
                        Removed::RebootRequired =>
                            "marked for deletion; Windows removes it at the next reboot",
                    },
                    suffix(a.dry_run)
                );
            }
            if outcome == Removed::RebootRequired {
                Outcome::RebootRequired
            } else {
                Outcome::Done
            }
        }
        Err(e) => {
            Outcome::Failed(anyhow!(e).context(format!("the service host ({}) refused", h.kind())))
        }
    }
}

/// `service status`: exit 0 when the service exists, 1 when not.
pub fn status(a: &ServiceArgs) -> Outcome {
    let prefix = crate::cmd::default_prefix(a.prefix.clone());
    let name = match name_for(a, &prefix) {
        Ok(n) => n,
        Err(o) => return o,
    };
    let mut h = match host_for(a.dry_run) {
        Ok(h) => h,
        Err(e) => return Outcome::Failed(e),
    };
    match h.status(&name) {
        Ok(s) => {
            if a.json {
                crate::out::outln!("{}", json!({"host": h.kind(), "service": s}));
            } else {
                crate::out::outln!(
                    "service {} ({}): {}{}",
                    s.name,
                    h.kind(),
                    if s.installed { "installed, " } else { "" },
                    s.state
                );
                if let Some(c) = &s.command_line {
                    crate::out::outln!("  command line: {c}");
                }
                if let Some(st) = &s.start {
                    crate::out::outln!("  start:        {st}");
                }
                if !s.dependencies.is_empty() {
                    crate::out::outln!("  depends on:   {}", s.dependencies.join(", "));
                }
                if s.marked_for_deletion {
                    crate::out::outln!("  marked for deletion: gone after a reboot");
                }
            }
            if s.installed {
                Outcome::Done
            } else {
                Outcome::CheckFailed
            }
        }
        Err(e) => {
            Outcome::Failed(anyhow!(e).context(format!("the service host ({}) refused", h.kind())))
        }
    }
}
