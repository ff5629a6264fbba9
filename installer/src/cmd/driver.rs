//! `driver verify | install | remove | status`: the coLinux ring-0 driver.
//!
//! - `verify FILE`: the file's Authenticode signature, checked without Windows APIs
//!   (`driver_bundle::authenticode`) against a pinned signer (`--signer CA.pem` or
//!   `--signer sha256:THUMBPRINT`). A checker: exit 0 trusted, 1 refused with the check
//!   that failed. `--allow-test-signing` accepts an intact file that does not chain to
//!   the pin, with a loud warning.
//! - `install`: the driver file in the install folder (`linux.sys` on Windows,
//!   `colinux.ko` on Linux) is verified (Authenticode for PE files), then registered
//!   and started on the host (`driver_bundle::host`); refused while the machine runs
//!   (the machine lock that `boot` and `install` hold: 1618).
//! - `remove`: stop and delete; 3010 when Windows finishes the deletion at the next reboot.
//! - `status`: exit 0 when the driver is installed, 1 when not.
//!
//! `--dry-run` uses the recording host and prints what would be done.
//! Test hook: `COLINUX_SETUP_TEST_DRIVER_HOST=FILE` replaces the host with a recording
//! host whose state is kept in FILE (JSON), so the tests can drive the install and
//! remove paths on any machine; it is not part of the product's interface.
//!
//! The host factory, the verified install and the signer policy are the engine's
//! ([`crate::driver::host`], [`crate::driver::signer`]): the install uses them too.
//! This module parses the arguments and renders the results.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use driver_bundle::authenticode::{self, Policy, Report};
use driver_bundle::host::{self, Installed, Removed};
use serde_json::json;

use crate::driver::host::{host_error, host_for, install_driver};
use crate::driver::signer::{is_pe, pin_from_arg, warn_loudly};
use crate::exit::Outcome;

/// `driver` subcommands.
#[derive(Debug, Subcommand)]
pub enum DriverCommand {
    /// Check a driver's (or any PE file's) Authenticode signature against a pinned
    /// signer; exit 0 trusted, 1 refused (with the check that failed).
    Verify(VerifyArgs),
    /// Verify the install folder's driver file and install it on the host (Windows:
    /// service CoLinuxDriver; Linux: the colinux module).
    Install(InstallArgs),
    /// Stop and remove the driver (exit 3010 when Windows needs a reboot to finish).
    Remove(HostArgs),
    /// Report the driver's state and path (exit 0 installed, 1 not).
    Status(HostArgs),
}

/// How to judge a signature.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The pinned signer: a CA certificate file (PEM or DER) the signer must chain to,
    /// or sha256:THUMBPRINT of the signing (or an issuing) certificate.
    #[arg(long, value_name = "CERT.pem|sha256:HEX")]
    pub signer: Option<String>,
    /// Accept a driver whose signature is intact but not trusted (test-signed); warns loudly.
    #[arg(long)]
    pub allow_test_signing: bool,
}

/// `driver verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The file to check (.sys, .exe, .dll).
    pub file: PathBuf,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `driver install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// The driver file (default: linux.sys on Windows, colinux.ko on Linux, in the
    /// install folder).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Register the driver without starting it.
    #[arg(long)]
    pub no_start: bool,
}

/// Options every host action takes.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// Install folder (default: the default profile's folder).
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// Say what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `driver` subcommand.
pub fn run(cmd: DriverCommand) -> Outcome {
    match cmd {
        DriverCommand::Verify(a) => verify_cmd(&a),
        DriverCommand::Install(a) => install_cmd(&a),
        DriverCommand::Remove(a) => remove_cmd(&a),
        DriverCommand::Status(a) => status_cmd(&a),
    }
}

fn policy(trust: &TrustArgs) -> Result<Policy> {
    let pin = trust.signer.as_deref().map(pin_from_arg).transpose()?;
    if pin.is_none() && !trust.allow_test_signing {
        bail!(
            "no pinned signer: give --signer CA.pem or --signer sha256:THUMBPRINT (the kit's signer), or --allow-test-signing for a test-signed driver"
        );
    }
    Ok(Policy {
        pin,
        at: SystemTime::now(),
        allow_test_signing: trust.allow_test_signing,
    })
}

fn report_lines(file: &Path, r: &Report) -> String {
    let mut s = format!(
        "{}: signed by \"{}\" (sha256:{}), issued by \"{}\", valid {} to {}\n  chain: {}\n  authenticode {} {}\n",
        file.display(),
        r.signer,
        r.thumbprint,
        r.issuer,
        r.not_before,
        r.not_after,
        r.chain.join(" <- "),
        r.digest_algorithm,
        r.file_digest
    );
    if let Some(t) = &r.signing_time {
        s.push_str(&format!("  signing time: {t}\n"));
    }
    s.push_str(&format!(
        "  timestamp: {}\n",
        r.timestamp.as_deref().unwrap_or("none")
    ));
    s
}

fn verify_cmd(a: &VerifyArgs) -> Outcome {
    let policy = match policy(&a.trust) {
        Ok(p) => p,
        Err(e) => return Outcome::Usage(e),
    };
    let data = match std::fs::read(&a.file) {
        Ok(d) => d,
        Err(e) => {
            return Outcome::Failed(anyhow!(e).context(format!("reading {}", a.file.display())));
        }
    };
    match authenticode::verify(&data, &policy) {
        Ok(r) => {
            if a.json {
                crate::out::outln!(
                    "{}",
                    json!({"file": a.file, "trusted": r.warnings.is_empty(), "accepted": true, "report": r})
                );
            } else {
                crate::out::out!("{}", report_lines(&a.file, &r));
                crate::out::outln!(
                    "{}: {}",
                    a.file.display(),
                    if r.warnings.is_empty() {
                        "trusted"
                    } else {
                        "accepted (NOT trusted: test-signing allowed)"
                    }
                );
            }
            warn_loudly(&r);
            Outcome::Done
        }
        Err(e) => {
            if a.json {
                crate::out::outln!(
                    "{}",
                    json!({"file": a.file, "trusted": false, "accepted": false, "check": e.check.as_str(), "message": e.to_string()})
                );
            } else {
                crate::out::outln!("{}: refused: {e}", a.file.display());
            }
            Outcome::CheckFailed
        }
    }
}

fn lock(prefix: &Path) -> Result<Option<crate::state::Lock>, Outcome> {
    if !prefix.is_dir() {
        return Ok(None);
    }
    match crate::state::Lock::acquire(prefix) {
        Ok(l) => Ok(Some(l)),
        Err(e @ crate::state::LockError::Busy(_)) => Err(Outcome::Busy(anyhow!(e).context(
            "the machine is running (boot) or being installed; stop it first, then change its driver",
        ))),
        Err(e) => Err(Outcome::Failed(anyhow!(e))),
    }
}

/// What a dry run adds to its result line (the same words as `service`'s).
fn dry_run_suffix(dry_run: bool) -> &'static str {
    if dry_run {
        " (dry run: nothing was changed)"
    } else {
        ""
    }
}

fn install_cmd(a: &InstallArgs) -> Outcome {
    let prefix = crate::cmd::default_prefix(a.host.prefix.clone());
    let file = a
        .file
        .clone()
        .unwrap_or_else(|| prefix.join(host::driver_file_name()));
    if !file.is_file() {
        return Outcome::Failed(anyhow!(
            "{}: no driver file; install a kit with the driver (role \"driver\") or give --file",
            file.display()
        ));
    }
    let policy = if is_pe(&file) {
        match policy(&a.trust) {
            Ok(p) => Some(p),
            Err(e) => return Outcome::Usage(e),
        }
    } else {
        None
    };
    let _lock = match lock(&prefix) {
        Ok(l) => l,
        Err(o) => return o,
    };
    let mut h = match host_for(a.host.dry_run) {
        Ok(h) => h,
        Err(e) => return Outcome::Failed(e),
    };
    match install_driver(h.as_mut(), &file, policy.as_ref(), !a.no_start) {
        Ok((outcome, report)) => {
            let status = h.status().ok();
            if a.host.json {
                crate::out::outln!(
                    "{}",
                    json!({"action": "install", "host": h.kind(), "dry_run": a.host.dry_run, "outcome": outcome, "signature": report, "status": status})
                );
            } else {
                let what = match &outcome {
                    Installed::Created => "installed".to_owned(),
                    Installed::AlreadyInstalled => "already installed; nothing to do".to_owned(),
                    Installed::PathUpdated { old } => {
                        format!("path changed from {}", old.display())
                    }
                };
                if let Some(r) = &report {
                    crate::out::out!("{}", report_lines(&file, r));
                }
                crate::out::outln!(
                    "driver {} ({}): {what}{}",
                    h.name(),
                    h.kind(),
                    dry_run_suffix(a.host.dry_run)
                );
            }
            Outcome::Done
        }
        Err(e) => Outcome::Failed(e),
    }
}

fn remove_cmd(a: &HostArgs) -> Outcome {
    let prefix = crate::cmd::default_prefix(a.prefix.clone());
    let _lock = match lock(&prefix) {
        Ok(l) => l,
        Err(o) => return o,
    };
    let mut h = match host_for(a.dry_run) {
        Ok(h) => h,
        Err(e) => return Outcome::Failed(e),
    };
    match h.remove() {
        Ok(outcome) => {
            if a.json {
                crate::out::outln!(
                    "{}",
                    json!({"action": "remove", "host": h.kind(), "dry_run": a.dry_run, "outcome": outcome})
                );
            } else {
                crate::out::outln!(
                    "driver {} ({}): {}{}",
                    h.name(),
                    h.kind(),
                    match outcome {
                        Removed::Removed => "stopped and removed",
                        Removed::NotInstalled => "not installed; nothing to do",
                        Removed::RebootRequired =>
                            "marked for deletion; Windows removes it at the next reboot",
                    },
                    dry_run_suffix(a.dry_run)
                );
            }
            if outcome == Removed::RebootRequired {
                Outcome::RebootRequired
            } else {
                Outcome::Done
            }
        }
        Err(e) => Outcome::Failed(host_error(e, h.kind())),
    }
}

fn status_cmd(a: &HostArgs) -> Outcome {
    let mut h = match host_for(a.dry_run) {
        Ok(h) => h,
        Err(e) => return Outcome::Failed(e),
    };
    match h.status() {
        Ok(s) => {
            if a.json {
                crate::out::outln!("{}", json!({"host": h.kind(), "driver": s}));
            } else {
                crate::out::outln!(
                    "driver {} ({}): {}{}{}",
                    s.name,
                    h.kind(),
                    s.state,
                    s.path
                        .as_ref()
                        .map(|p| format!(", {}", p.display()))
                        .unwrap_or_default(),
                    if s.marked_for_deletion {
                        ", marked for deletion (reboot)"
                    } else {
                        ""
                    }
                );
            }
            if s.installed {
                Outcome::Done
            } else {
                Outcome::CheckFailed
            }
        }
        Err(e) => Outcome::Failed(host_error(e, h.kind())),
    }
}
