//! The install's TAP adapter step ([`HostStep`] `tap`): creates the adapter the plan
//! chose (or reuses one of the same name) with the host address of its network, records
//! it in install-state.json, deletes on rollback and uninstall only an adapter this tool
//! created, and never one whose addresses show it is someone else's (a VPN's tap0).
//! Without the right to create it, an optional network is skipped (and recorded so)
//! instead of failing.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::engine::step::{Applied, HostStep, Named, undo_data};
use crate::engine::{Ctx, Entry, Journal, Removed, Summary};
use crate::plan::Plan;
use crate::state::{InstallState, RunLog};

/// The step's name: its record's key in install-state.json and its test hook.
pub const NAME: &str = "tap";

/// The TAP adapter, as install-state.json records it (`tap`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TapRecord {
    /// Name.
    pub name: String,
    /// /24.
    pub subnet: tap_setup::Subnet,
    /// What happened to it.
    pub state: String,
    /// This install created the adapter (so uninstall deletes it); `false` for an
    /// adapter that was there before, or none.
    #[serde(default)]
    pub created: bool,
    /// The host side's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    /// The guest's address (written into the guest's rcS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_ip: Option<Ipv4Addr>,
    /// Why the adapter was not created: networking was optional and it could not be
    /// made, or it belongs to another host (coLinux on Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The machine's recorded TAP adapter, if any.
pub fn record(st: &InstallState) -> Result<Option<TapRecord>> {
    st.object(NAME)
}

/// Keeps `rec` as the machine's TAP adapter.
pub fn set_record(st: &mut InstallState, rec: Option<&TapRecord>) -> Result<()> {
    st.set_object(NAME, rec)
}

fn undo_entry(name: &str) -> Result<Entry> {
    Entry::host(
        NAME,
        &Named {
            name: name.to_owned(),
        },
    )
}

/// The TAP adapter step.
pub struct Tap;

impl HostStep for Tap {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(
        &self,
        plan: &Plan,
        ctx: &mut Ctx<'_>,
        journal: &mut Journal,
        old: Option<&InstallState>,
        summary: &mut Summary,
    ) -> Result<Applied> {
        let rec = make(plan, ctx, journal, old, summary)?;
        Applied::record(rec.as_ref(), Vec::new())
    }

    fn roll_back(&self, undo: &serde_json::Value, log: &mut RunLog) -> Vec<String> {
        let Some(Named { name }) = undo_data("a TAP adapter", undo, log) else {
            return Vec::new();
        };
        let mut host = crate::netfacts::host();
        match tap_setup::remove(host.as_mut(), &name) {
            Ok(true) => vec![format!("removed the TAP adapter {name}")],
            Ok(false) => Vec::new(),
            Err(e) => {
                log.line(&format!("rollback: the TAP adapter {name}: {e}"));
                Vec::new()
            }
        }
    }

    fn uninstall(
        &self,
        record: &serde_json::Value,
        log: &mut RunLog,
        out: &mut Removed,
    ) -> Result<()> {
        let t = TapRecord::deserialize(record)
            .context("install-state.json's TAP adapter record cannot be read")?;
        if !t.created {
            return Ok(());
        }
        let mut host = crate::netfacts::host();
        // The record is untrusted: an adapter of that name whose addresses do not
        // include the one the install gave it is someone else's (a VPN's tap0), kept.
        let others = match (host.find(&t.name), &t.host_ip) {
            (Ok(Some(a)), Some(ip))
                if !a.addresses.is_empty() && !a.addresses.iter().any(|p| p.addr == *ip) =>
            {
                Some(
                    a.addresses
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
            _ => None,
        };
        let result = match others {
            Some(addrs) => {
                let line = format!(
                    "the TAP adapter {} has the address {addrs}, not {} as the install made it; it was kept",
                    t.name,
                    t.host_ip.map(|ip| ip.to_string()).unwrap_or_default()
                );
                log.line(&line);
                out.not_removed.push(line);
                Ok(false)
            }
            None => tap_setup::remove(host.as_mut(), &t.name),
        };
        match result {
            Ok(true) => {
                log.line(&format!("removed the TAP adapter {}", t.name));
                out.removed.push(format!("TAP adapter {}", t.name));
            }
            Ok(false) => log.line(&format!("the TAP adapter {} was not removed", t.name)),
            Err(e) => {
                return Err(anyhow!(e).context(format!(
                    "cannot remove the TAP adapter {} this install created; run the uninstall as root or with CAP_NET_ADMIN",
                    t.name
                )));
            }
        }
        Ok(())
    }
}

/// The `tap` step: creates the adapter (or reuses one of the same name) with the host
/// address of the plan's network. An adapter created here is journalled first, so a
/// rollback deletes it; one that was there before is never deleted. Without the right
/// to create it, an optional network is skipped (and recorded so) instead of failing.
fn make(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    journal: &mut Journal,
    old: Option<&InstallState>,
    summary: &mut Summary,
) -> Result<Option<TapRecord>> {
    let Some(t) = &plan.tap else {
        return Ok(None);
    };
    ctx.rep.phase(&format!(
        "setting up the TAP adapter {} on {}",
        t.name, t.subnet
    ));
    let mut record = TapRecord {
        name: t.name.clone(),
        subnet: t.subnet,
        state: String::new(),
        created: false,
        host_ip: Some(t.host_ip),
        guest_ip: Some(t.guest_ip),
        skipped: None,
    };
    if !t.here {
        ctx.log
            .line(&format!("TAP adapter {}: {}", t.name, t.state));
        record.state = "not created on this host".into();
        record.skipped = Some(t.state.clone());
        return Ok(Some(record));
    }
    let spec = tap_setup::Spec {
        name: t.name.clone(),
        subnet: t.subnet,
        owner: t.owner,
    };
    let entry = undo_entry(&t.name)?;
    let ours_before = journal.entries.contains(&entry)
        || old
            .and_then(|s| crate::tap::record(s).ok().flatten())
            .is_some_and(|r| r.created && r.name == t.name);
    let mut host = crate::netfacts::host();
    let existed = host
        .find(&t.name)
        .with_context(|| format!("looking for the TAP adapter {}", t.name))?
        .is_some();
    if !existed {
        journal.push(entry)?;
    }
    match tap_setup::install(host.as_mut(), &spec) {
        Ok(done) => {
            record.created = done.created || ours_before;
            record.state = if done.created {
                format!("created, {} up", t.host_ip)
            } else {
                format!("reused, {} up", t.host_ip)
            };
            if done.created {
                summary.changed.push(format!("TAP adapter {}", t.name));
            }
            if done.reboot_required {
                let w = format!(
                    "Windows asks for a reboot before the TAP adapter {} can be used",
                    t.name
                );
                ctx.rep.warn(&w);
                summary.warnings.push(w);
            }
            ctx.log.line(&format!(
                "TAP adapter {}: {} (owner {}, MAC {})",
                t.name,
                record.state,
                done.adapter
                    .owner
                    .map_or("none".to_owned(), |u| format!("uid {u}")),
                done.adapter.mac.as_deref().unwrap_or("unknown")
            ));
            Ok(Some(record))
        }
        Err(
            e @ (tap_setup::Error::NoRight { .. }
            | tap_setup::Error::NoTapSupport { .. }
            | tap_setup::Error::BadName { .. }),
        ) if t.optional => {
            let w = format!(
                "the TAP adapter {} was not created: {e}; the profile marks networking optional, so the machine is installed without it (create it later with `colinux-setup tap install --prefix {}` as a user who may)",
                t.name,
                plan.prefix.display()
            );
            ctx.rep.warn(&w);
            summary.warnings.push(w);
            record.state = "skipped (networking optional)".into();
            record.skipped = Some(e.to_string());
            Ok(Some(record))
        }
        Err(e) => {
            let hint = if matches!(
                e,
                tap_setup::Error::NoRight { .. } | tap_setup::Error::NoTapSupport { .. }
            ) {
                "; run the install as root or with CAP_NET_ADMIN, or mark networking optional in the profile ([network.tap] optional = true)"
            } else {
                ""
            };
            Err(anyhow!(e).context(format!(
                "the TAP adapter {} on {} could not be set up{hint}",
                t.name, t.subnet
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(tap: serde_json::Value) -> InstallState {
        serde_json::from_value(serde_json::json!({
            "format": 1, "version": "0", "profile": "minimal", "monitor": "uml",
            "prefix": "/m", "plan_digest": "d", "answers": {}, "first_boot": "none",
            "tap": tap, "files": [], "installed_at": 0
        }))
        .expect("a state")
    }

    fn written() -> serde_json::Value {
        serde_json::json!({"name": "tap0", "subnet": "10.12.12.0/24", "state": "created",
            "created": true, "host_ip": "10.12.12.1", "guest_ip": "10.12.12.2"})
    }

    #[test]
    fn the_record_reads_into_its_types_and_round_trips() {
        let mut st = state_with(written());
        let rec = record(&st).expect("decodes").expect("is there");
        assert_eq!(rec.subnet.guest_ip(), Ipv4Addr::new(10, 12, 12, 2));
        assert_eq!(rec.host_ip, Some(Ipv4Addr::new(10, 12, 12, 1)));
        set_record(&mut st, Some(&rec)).expect("encodes");
        assert_eq!(st.objects["tap"], written());
        set_record(&mut st, None).expect("removes");
        assert!(record(&st).expect("absent").is_none());
        assert!(
            record(&state_with(serde_json::Value::Null))
                .expect("null")
                .is_none()
        );
    }

    #[test]
    fn a_record_with_a_public_network_or_a_bad_address_is_refused() {
        for (key, bad) in [("subnet", "8.8.8.0/24"), ("guest_ip", "10.12.12.300")] {
            let mut v = written();
            v[key] = bad.into();
            let e = record(&state_with(v)).expect_err(key);
            assert!(format!("{e:#}").contains("is damaged"), "{key}: {e:#}");
        }
    }
}
