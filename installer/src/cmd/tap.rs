//! `tap install | remove | status`: the host-only TAP adapter of a machine (issue 8), on
//! its own or for an installed machine (`--prefix`: the name and network recorded in
//! install-state.json, which is updated).
//!
//! - `install`: creates the adapter, or reuses one of the same name, with the host
//!   address `.1` of its /24 and the link up, owned by the user who will run the
//!   monitor. The network is `--subnet`, else the recorded one, else the first free
//!   default candidate; a network that collides with a route or an address of the host
//!   is refused naming what it collides with.
//! - `remove`: deletes the adapter (only a TAP adapter; any other interface of that name
//!   is refused).
//! - `status`: name, MAC, addresses, up, owner; exit 0 when the adapter is there (with
//!   the recorded address when there is one), 1 when not.
//!
//! [`boot_check`] is `boot`'s re-check: the network chosen at install must still be
//! free, and the adapter there.
//!
//! Exit codes: 0, 1 (status: no adapter), 2 (usage), 3010 (made, but Windows asks for a
//! reboot), 1603 (failed; a missing right is named), 1618 (the machine's lock is held).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::exit::Outcome;
use crate::state::{self, InstallState, Lock, LockError, STATE_FILE};
use crate::tap::TapRecord;

/// The adapter name when neither `--name` nor an installed machine gives one.
pub const DEFAULT_NAME: &str = "tap-colinux";

/// `tap` subcommands.
#[derive(Debug, Subcommand)]
pub enum TapCommand {
    /// Create the TAP adapter (or reuse one of the same name), address it and bring it up.
    Install(TapInstallArgs),
    /// Delete the TAP adapter.
    Remove(TapArgs),
    /// Show the TAP adapter: name, MAC, address, up, owner (exit 1 when it is absent).
    Status(TapArgs),
}

/// Which adapter.
#[derive(Debug, Args)]
pub struct TapArgs {
    /// An installed machine: its recorded adapter name and network (install-state.json
    /// is updated).
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// The adapter's name (default: the machine's, else tap-colinux).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `tap install`.
#[derive(Debug, Args)]
pub struct TapInstallArgs {
    /// Which adapter.
    #[command(flatten)]
    pub which: TapArgs,
    /// The network, a private /24 (default: the machine's, else the first free default).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The uid allowed to attach a monitor to it (default: the sudo caller, else you).
    #[arg(long, value_name = "UID")]
    pub owner: Option<u32>,
    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs a `tap` command.
pub fn run(cmd: TapCommand) -> Outcome {
    let result = match cmd {
        TapCommand::Install(a) => install(&a),
        TapCommand::Remove(a) => remove(&a),
        TapCommand::Status(a) => status(&a),
    };
    match result {
        Ok(o) => o,
        Err(e) => match e.downcast::<LockError>() {
            Ok(l @ LockError::Busy(_)) => Outcome::Busy(anyhow!(l)),
            Ok(l) => Outcome::Failed(anyhow!(l)),
            Err(e) => Outcome::Failed(e),
        },
    }
}

/// The machine's state when `--prefix` is given (an error when nothing is installed).
fn machine(prefix: Option<&Path>) -> Result<Option<(PathBuf, InstallState)>> {
    let Some(p) = prefix else {
        return Ok(None);
    };
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    match InstallState::read(&p)? {
        Some(st) => Ok(Some((p, st))),
        None => bail!(
            "no machine is installed in {}; give the install folder, or --name without --prefix",
            p.display()
        ),
    }
}

fn resolve_name(a: &TapArgs, st: Option<&InstallState>) -> Result<String> {
    let recorded = st.map(crate::tap::record).transpose()?.flatten();
    let name = match (&a.name, recorded.as_ref()) {
        (Some(n), _) => n.clone(),
        (None, Some(t)) => t.name.clone(),
        (None, None) if st.is_some() => {
            bail!("the machine's profile has no TAP adapter; give --name to manage one by name")
        }
        (None, None) => DEFAULT_NAME.to_owned(),
    };
    tap_setup::check_name(&name).map_err(|e| anyhow!("--name: {e}"))?;
    Ok(name)
}

/// Writes the machine's TAP record, under its lock.
fn record(prefix: &Path, mut st: InstallState, rec: TapRecord) -> Result<()> {
    let _lock = Lock::acquire(prefix)?;
    crate::tap::set_record(&mut st, Some(&rec))?;
    let bytes = serde_json::to_vec_pretty(&st).context("encoding install-state.json")?;
    state::write_atomic(&prefix.join(STATE_FILE), &bytes)
}

fn install(a: &TapInstallArgs) -> Result<Outcome> {
    let m = machine(a.which.prefix.as_deref())?;
    let st = m.as_ref().map(|(_, s)| s);
    let name = resolve_name(&a.which, st)?;
    let recorded = st
        .map(crate::tap::record)
        .transpose()?
        .flatten()
        .filter(|t| t.name == name)
        .map(|t| t.subnet.to_string());
    let pinned = match a.subnet.as_ref().or(recorded.as_ref()) {
        Some(s) => Some(tap_setup::Subnet::parse(s).map_err(|e| {
            if a.subnet.is_some() {
                anyhow!("--subnet: {e}")
            } else {
                anyhow!("the machine's recorded network: {e}")
            }
        })?),
        None => None,
    };
    let mut host = crate::netfacts::host();
    let choice = tap_setup::choose_subnet(host.as_mut(), &[], pinned, &name).map_err(|e| {
        anyhow!(e).context(match (&a.subnet, &recorded) {
            (Some(s), _) => format!("--subnet {s} cannot be used; choose a free network"),
            (None, Some(s)) => format!(
                "the network {s} recorded at install cannot be used any more (the host's network changed); give a free one with --subnet"
            ),
            (None, None) => "no free network for the TAP adapter; give one with --subnet".into(),
        })
    })?;
    let spec = tap_setup::Spec {
        name: name.clone(),
        subnet: choice.subnet,
        owner: a.owner.or_else(crate::netfacts::monitor_user),
    };
    if a.dry_run {
        let mut rec = tap_setup::RecordingHost::snapshot(host.as_mut(), &name)?;
        let done = tap_setup::install(&mut rec, &spec)?;
        if a.which.json {
            crate::out::outln!(
                "{}",
                json!({"dry_run": true, "name": name, "subnet": spec.subnet.to_string(),
                       "host_ip": spec.subnet.host_ip().to_string(), "guest_ip": spec.subnet.guest_ip().to_string(),
                       "owner": spec.owner, "would_create": done.created, "steps": rec.log, "candidates": choice.candidates})
            );
        } else {
            crate::out::outln!(
                "dry run: TAP adapter {name} on {} (host {}, guest {}):",
                spec.subnet,
                spec.subnet.host_ip(),
                spec.subnet.guest_ip()
            );
            for c in &choice.candidates {
                crate::out::outln!(
                    "  candidate {}: {}",
                    c.subnet,
                    c.reason.as_deref().unwrap_or("free")
                );
            }
            for l in &rec.log {
                crate::out::outln!("  would {l}");
            }
        }
        return Ok(Outcome::Done);
    }
    let done = tap_setup::install(host.as_mut(), &spec)
        .map_err(|e| anyhow!(e).context(format!("setting up the TAP adapter {name}")))?;
    if let Some((prefix, st)) = m {
        let was_ours = crate::tap::record(&st)?.is_some_and(|t| t.created && t.name == name);
        let rec = TapRecord {
            name: name.clone(),
            subnet: spec.subnet,
            state: format!(
                "{} by `tap install`, {} up",
                if done.created { "created" } else { "reused" },
                spec.subnet.host_ip()
            ),
            created: done.created || was_ours,
            host_ip: Some(spec.subnet.host_ip()),
            guest_ip: Some(spec.subnet.guest_ip()),
            skipped: None,
        };
        record(&prefix, st, rec)?;
    }
    if a.which.json {
        crate::out::outln!(
            "{}",
            json!({"name": name, "subnet": spec.subnet.to_string(), "created": done.created,
                   "reboot_required": done.reboot_required, "adapter": done.adapter, "candidates": choice.candidates})
        );
    } else {
        crate::out::outln!(
            "TAP adapter {name} {}: {} on {} (guest {}), owner {}",
            if done.created { "created" } else { "reused" },
            spec.subnet.host_ip(),
            spec.subnet,
            spec.subnet.guest_ip(),
            done.adapter
                .owner
                .map_or("root only".to_owned(), |u| format!("uid {u}"))
        );
    }
    if done.reboot_required {
        eprintln!("colinux-setup: Windows asks for a reboot before the adapter can be used");
        return Ok(Outcome::RebootRequired);
    }
    Ok(Outcome::Done)
}

fn remove(a: &TapArgs) -> Result<Outcome> {
    let m = machine(a.prefix.as_deref())?;
    let name = resolve_name(a, m.as_ref().map(|(_, s)| s))?;
    let mut host = crate::netfacts::host();
    let removed = tap_setup::remove(host.as_mut(), &name)
        .map_err(|e| anyhow!(e).context(format!("removing the TAP adapter {name}")))?;
    if let Some((prefix, st)) = m
        && let Some(mut rec) = crate::tap::record(&st)?.filter(|t| t.name == name)
    {
        rec.created = false;
        rec.state = "removed by `tap remove`".into();
        record(&prefix, st, rec)?;
    }
    if a.json {
        crate::out::outln!("{}", json!({"name": name, "removed": removed}));
    } else if removed {
        crate::out::outln!("TAP adapter {name} removed");
    } else {
        crate::out::outln!("there is no TAP adapter {name}; nothing to do");
    }
    Ok(Outcome::Done)
}

/// The adapter's state as JSON, and whether it is there as expected.
pub fn adapter_json(name: &str, expected_ip: Option<Ipv4Addr>) -> (serde_json::Value, bool) {
    let mut host = crate::netfacts::host();
    match host.find(name) {
        Ok(Some(ad)) => {
            let has_ip = expected_ip
                .is_none_or(|ip| ad.addresses.iter().any(|p| p.addr == ip && p.len == 24));
            let ok = ad.is_tap && has_ip;
            (
                json!({"present": true, "ok": ok, "adapter": ad, "expected_address": expected_ip}),
                ok,
            )
        }
        Ok(None) => (json!({"present": false, "ok": false}), false),
        Err(e) => (
            json!({"present": null, "ok": false, "error": e.to_string()}),
            false,
        ),
    }
}

fn status(a: &TapArgs) -> Result<Outcome> {
    let m = machine(a.prefix.as_deref())?;
    let st = m.as_ref().map(|(_, s)| s);
    let name = resolve_name(a, st)?;
    let rec = st
        .map(crate::tap::record)
        .transpose()?
        .flatten()
        .filter(|t| t.name == name);
    let (live, ok) = adapter_json(&name, rec.as_ref().and_then(|r| r.host_ip));
    let network = rec.as_ref().map(|r| network_check(r, &name));
    if a.json {
        crate::out::outln!(
            "{}",
            json!({"name": name, "host": live, "recorded": rec, "network_conflict": network.clone().flatten()})
        );
    } else {
        match live.get("adapter") {
            Some(ad) => crate::out::outln!(
                "TAP adapter {name}: MAC {}, address {}, {}, owner {}{}",
                ad["mac"].as_str().unwrap_or("unknown"),
                ad["addresses"]
                    .as_array()
                    .map(|v| v
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(" "))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "none".into()),
                if ad["up"].as_bool() == Some(true) {
                    "up"
                } else {
                    "down"
                },
                ad["owner"]
                    .as_u64()
                    .map_or("root only".to_owned(), |u| format!("uid {u}")),
                if ad["is_tap"].as_bool() == Some(true) {
                    ""
                } else {
                    " (not a TAP adapter)"
                }
            ),
            None => match live.get("error").and_then(|e| e.as_str()) {
                Some(e) => crate::out::outln!("TAP adapter {name}: cannot be read: {e}"),
                None => crate::out::outln!("TAP adapter {name}: not present on this host"),
            },
        }
        if let Some(r) = &rec {
            crate::out::outln!(
                "  recorded: {} on {}, {}{}",
                r.host_ip.map_or("?".to_owned(), |ip| ip.to_string()),
                r.subnet,
                r.state,
                if r.created {
                    " (created by this tool; uninstall removes it)"
                } else {
                    ""
                }
            );
            if let Some(why) = &r.skipped {
                crate::out::outln!("  not created at install: {why}");
            }
        }
        if let Some(Some(c)) = &network {
            crate::out::outln!("  warning: {c}");
        }
    }
    Ok(if ok {
        Outcome::Done
    } else {
        Outcome::CheckFailed
    })
}

/// Whether the recorded network now collides with the host's (other than the adapter's
/// own use of it): the message, or `None`.
fn network_check(rec: &TapRecord, name: &str) -> Option<String> {
    let subnet = rec.subnet;
    let mut host = crate::netfacts::host();
    let busy = host.busy().ok()?;
    tap_setup::subnet::conflict(subnet, &busy, Some(name)).map(|with| {
        format!(
            "the network {subnet} chosen at install now {with}: the host's network changed since the install"
        )
    })
}

/// `boot`'s re-check of the machine's TAP adapter: its network must still be free and
/// the adapter there with its address. A skipped (optional) adapter is a warning.
pub fn boot_check(prefix: &Path, st: &InstallState) -> Result<()> {
    let Some(rec) = &crate::tap::record(st)? else {
        return Ok(());
    };
    if let Some(why) = &rec.skipped {
        eprintln!(
            "colinux-setup: warning: the machine has no TAP adapter (not created at install: {why}); \
             its eth on the TAP will be down. Create it with `colinux-setup tap install --prefix {}`",
            prefix.display()
        );
        return Ok(());
    }
    if let Some(msg) = network_check(rec, &rec.name) {
        bail!(
            "{msg}; the guest ({}) would not be reachable. Remove the other network, or move the machine to a free one: \
             `colinux-setup tap install --prefix {} --subnet 10.x.y.0/24`, then re-install with SUBNET=10.x.y.0/24 \
             so the guest's address follows",
            rec.guest_ip
                .map_or("its address".to_owned(), |ip| ip.to_string()),
            prefix.display()
        );
    }
    let (live, ok) = adapter_json(&rec.name, rec.host_ip);
    if !ok {
        bail!(
            "the TAP adapter {} of this machine is {} (expected {} on {}); set it up again with `colinux-setup tap install --prefix {}`",
            rec.name,
            if live["present"].as_bool() == Some(true) {
                "there without its address"
            } else {
                "not on this host"
            },
            rec.host_ip.map_or("?".to_owned(), |ip| ip.to_string()),
            rec.subnet,
            prefix.display()
        );
    }
    Ok(())
}
