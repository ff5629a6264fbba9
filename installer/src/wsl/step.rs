//! The install's "register the WSL distribution" step (HostStep `wsl`, wsl monitor
//! only), its rollback, and the distribution's part of `status` and `uninstall`.
//!
//! The root image (root.vhdx) is built before this step; the step registers it in
//! place. A distribution this run registers is journalled first, so a failure later
//! (the first boot, the state) unregisters it; one of the same name with the same disk
//! (a repair or re-run) is reused and never unregistered by a rollback; one of the same
//! name with another disk is not this machine's: the step fails (and rolls back)
//! without touching it. Every unregister keeps the disk ([`super::unregister_keeping_disk`]):
//! the image goes only as the file steps decide (a rollback removes the root.vhdx this
//! run built; an uninstall keeps it unless PURGE).

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::engine::step::{Applied, HostStep, undo_data};
use crate::engine::{Ctx, Entry, Journal, Removed, Summary};
use crate::plan::Plan;
use crate::profile::Monitor;
use crate::state::{InstallState, RunLog};

/// The step's name: its record's key in install-state.json and its test hook.
pub const NAME: &str = "wsl";

/// The distribution, as install-state.json records it (and as its journal entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WslRecord {
    /// The distribution's name.
    pub name: String,
    /// Its disk (the machine's root image), registered in place.
    pub disk: PathBuf,
    /// The host kind that registered it (`windows`, `recording`).
    #[serde(default)]
    pub host: String,
    /// This tool registered it (so rollback and uninstall unregister it).
    #[serde(default)]
    pub created: bool,
}

/// The journal entry's undo data.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Undo {
    name: String,
    disk: PathBuf,
}

/// The machine's recorded distribution, if any.
pub fn record(st: &InstallState) -> Result<Option<WslRecord>> {
    st.object(NAME)
}

/// The WSL registration step.
pub struct Wsl;

impl HostStep for Wsl {
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
        let rec = step(plan, ctx, journal, old, summary)?;
        Applied::record(rec.as_ref(), Vec::new())
    }

    fn roll_back(&self, undo: &serde_json::Value, log: &mut RunLog) -> Vec<String> {
        let Some(u) = undo_data::<Undo>("a WSL distribution", undo, log) else {
            return Vec::new();
        };
        match unregister(&u.name, &u.disk, log) {
            Ok(Some(line)) => vec![line],
            Ok(None) => Vec::new(),
            Err(e) => {
                log.line(&format!("rollback: the WSL distribution {}: {e:#}", u.name));
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
        let rec = WslRecord::deserialize(record)
            .map_err(|e| anyhow!("install-state.json's wsl record cannot be read: {e}"))?;
        super::check_name(&rec.name)
            .map_err(|e| anyhow!("install-state.json's wsl record: {e}"))?;
        if !rec.created {
            log.line(&format!(
                "the WSL distribution {} was there before this install: kept",
                rec.name
            ));
            return Ok(());
        }
        let line = unregister(&rec.name, &rec.disk, log).map_err(|e| {
            anyhow!(e).context(format!(
                "cannot unregister the WSL distribution {} this install registered; nothing was removed: run the uninstall again",
                rec.name
            ))
        })?;
        match line {
            Some(l) => out
                .removed
                .push(l.trim_start_matches("unregistered ").to_owned()),
            None => out.not_removed.push(format!(
                "the WSL distribution {} is not registered with {} any more: left as it is",
                rec.name,
                rec.disk.display()
            )),
        }
        Ok(())
    }
}

/// Unregisters `name` if it is still registered with `disk`, keeping the disk; the
/// summary line, or `None` when it is not (gone, or another disk: not ours to touch).
fn unregister(name: &str, disk: &std::path::Path, log: &mut RunLog) -> Result<Option<String>> {
    if super::restore_aside(disk)? {
        log.line(&format!(
            "put back {} (an earlier unregister was interrupted)",
            disk.display()
        ));
    }
    let mut host = super::host_for()?;
    let now = host.list()?;
    match now.iter().find(|d| d.name == name) {
        None => {
            log.line(&format!("the WSL distribution {name} was already gone"));
            Ok(None)
        }
        Some(d)
            if d.disk
                .as_deref()
                .is_some_and(|x| !super::same_disk(x, disk)) =>
        {
            log.line(&format!(
                "the WSL distribution {name} now has the disk {}, not {}: kept",
                d.disk.as_deref().unwrap_or(disk).display(),
                disk.display()
            ));
            Ok(None)
        }
        Some(_) => {
            super::unregister_keeping_disk(host.as_mut(), name, disk)?;
            log.line(&format!(
                "unregistered the WSL distribution {name} (its disk {} kept)",
                disk.display()
            ));
            Ok(Some(format!("unregistered WSL distribution {name}")))
        }
    }
}

/// The `wsl` step. Returns the record for install-state.json.
pub fn step(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    journal: &mut Journal,
    old: Option<&InstallState>,
    summary: &mut Summary,
) -> Result<Option<WslRecord>> {
    let old_rec = old.map(record).transpose()?.flatten();
    if plan.monitor != Monitor::Wsl {
        if let Some(r) = old_rec.as_ref().filter(|r| r.created) {
            let w = format!(
                "the WSL distribution {} an earlier install registered is kept (this plan's monitor is {}); uninstall still unregisters it, keeping its disk",
                r.name,
                plan.monitor.as_str()
            );
            ctx.rep.warn(&w);
            summary.warnings.push(w);
        }
        return Ok(old_rec.filter(|r| r.created));
    }
    let name = super::name(plan);
    let disk = super::disk(plan).ok_or_else(|| anyhow!("the plan has no root image"))?;
    if super::restore_aside(&disk)? {
        ctx.log.line(&format!(
            "put back {} (an earlier unregister was interrupted)",
            disk.display()
        ));
    }
    ctx.rep
        .phase(&format!("registering the WSL distribution {name}"));
    let mut host = super::host_for()?;
    let now = host
        .list()
        .map_err(|e| anyhow!(e).context("asking WSL for its distributions"))?;
    let entry = Entry::host(
        NAME,
        &Undo {
            name: name.clone(),
            disk: disk.clone(),
        },
    )?;
    let ours_before = journal.entries.contains(&entry)
        || old_rec
            .as_ref()
            .is_some_and(|r| r.created && r.name == name && super::same_disk(&r.disk, &disk));
    let created = match now.iter().find(|d| d.name.eq_ignore_ascii_case(&name)) {
        Some(d)
            if d.name == name && d.disk.as_deref().is_none_or(|x| super::same_disk(x, &disk)) =>
        {
            ctx.log.line(&format!(
                "the WSL distribution {name} is registered with {} already: reused",
                disk.display()
            ));
            ours_before
        }
        Some(d) => bail!(
            "a WSL distribution named {} is already registered{}; it is not this machine's and was left as it is: give the machine another name (WSLNAME=NAME), or remove that one first (`wsl --unregister {}` deletes its disk)",
            d.name,
            d.disk
                .as_ref()
                .map(|x| format!(" with the disk {}", x.display()))
                .unwrap_or_default(),
            d.name
        ),
        None => {
            journal.push(entry)?;
            host.import_in_place(&name, &disk).map_err(|e| {
                anyhow!(e).context(format!(
                    "cannot register the WSL distribution {name} (`wsl --import-in-place {name} {}`)",
                    disk.display()
                ))
            })?;
            summary.changed.push(format!("WSL distribution {name}"));
            ctx.log.line(&format!(
                "registered the WSL distribution {name} ({}) in place: {}",
                host.kind(),
                disk.display()
            ));
            true
        }
    };
    Ok(Some(WslRecord {
        name,
        disk,
        host: host.kind().to_owned(),
        created,
    }))
}

/// The distribution's part of `status --json`: the record and what WSL says now.
pub fn status(rec: Option<&WslRecord>) -> serde_json::Value {
    let Some(rec) = rec else {
        return serde_json::json!({"state": "not registered"});
    };
    let now = super::host_for().and_then(|mut h| h.list());
    serde_json::json!({
        "name": rec.name,
        "disk": rec.disk,
        "created": rec.created,
        "host": match now {
            Ok(list) => match list.into_iter().find(|d| d.name == rec.name) {
                Some(d) if d.disk.as_deref().is_none_or(|x| super::same_disk(x, &rec.disk)) =>
                    serde_json::json!({"registered": true, "state": d.state}),
                Some(d) => serde_json::json!({"registered": true, "state": d.state,
                    "other_disk": d.disk}),
                None => serde_json::json!({"registered": false, "state": "not registered"}),
            },
            Err(e) => serde_json::json!({"error": e.to_string()}),
        },
    })
}

/// The `status` text line of the distribution.
pub fn status_line(v: &serde_json::Value) -> String {
    let name = v["name"].as_str().unwrap_or("");
    match v.get("host") {
        Some(h) if h.get("error").is_some() => format!(
            "{name}: cannot ask WSL: {}",
            h["error"].as_str().unwrap_or("")
        ),
        Some(h) if h["registered"] == true && h.get("other_disk").is_some() => format!(
            "{name}: registered with another disk ({}), not this machine's",
            h["other_disk"].as_str().unwrap_or("")
        ),
        Some(h) if h["registered"] == true => format!(
            "{name}: registered, {}",
            h["state"].as_str().unwrap_or("unknown").to_lowercase()
        ),
        Some(_) => format!("{name}: not registered (`colinux-setup install` registers it again)"),
        None => v["state"].as_str().unwrap_or("").to_owned(),
    }
}
