//! The install's "machine service" step (answer `SERVICE=1`, coLinux monitor only), its
//! rollback, and the service's part of `status` and `uninstall`.
//!
//! The answers are checked when the plan is made ([`plan_answers`]): `SERVICE` is 1 or
//! 0, `SERVICENAME` a valid name, and `SERVICE=1` is refused for a monitor other than
//! coLinux, before anything is changed. The step runs after the driver step (the
//! service depends on the driver's). A service this install creates is journalled
//! first, so a rollback deletes it; one that was there before is updated to the plan
//! and reused, and never deleted by a rollback or an uninstall.

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::{DEFAULT_NAME, Installed};
use crate::engine::step::{Applied, HostStep, Named, undo_data};
use crate::engine::{Ctx, Entry, Journal, Removed, Summary};
use crate::plan::{Answers, Plan};
use crate::profile::Monitor;
use crate::state::{InstallState, RunLog};

/// The step's name: its record's key in install-state.json and its test hook.
pub const NAME: &str = "service";

/// The machine's recorded service, if any.
pub fn record(st: &InstallState) -> Result<Option<ServiceRecord>> {
    st.object(NAME)
}

/// The machine's Windows service step (SERVICE=1).
pub struct Service;

impl HostStep for Service {
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
        undo_data::<Named>("a service", undo, log)
            .and_then(|n| rollback(&n.name, log))
            .into_iter()
            .collect()
    }

    fn uninstall(
        &self,
        record: &serde_json::Value,
        log: &mut RunLog,
        out: &mut Removed,
    ) -> Result<()> {
        let rec = ServiceRecord::deserialize(record)
            .map_err(|e| anyhow!("install-state.json's service record cannot be read: {e}"))?;
        out.reboot_required |= uninstall(&rec, log, &mut out.removed, &mut out.not_removed)?;
        Ok(())
    }
}

/// The service, as install-state.json records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The service name.
    pub name: String,
    /// The host kind that made it (`windows-scm`, `recording`).
    pub host: String,
    /// What happened (`installed`, `already installed`, `updated: ...`).
    pub state: String,
    /// This tool created it (so uninstall removes it).
    #[serde(default)]
    pub created: bool,
    /// Its command line.
    pub command_line: String,
    /// The services it depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// Checks `SERVICE` and `SERVICENAME` against the monitor; returns the answers to
/// record (only those given, so other plans' answers stay as they were).
pub fn plan_answers(answers: &Answers, monitor: Monitor) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let wanted = match answers.get("SERVICE") {
        None => false,
        Some(a) => {
            let on = match a.value.to_ascii_lowercase().as_str() {
                "1" | "yes" | "true" | "on" => true,
                "0" | "no" | "false" | "off" | "" => false,
                _ => bail!(
                    "SERVICE={} ({}): expected 1 (run the machine as a Windows service at boot) or 0",
                    a.value,
                    a.origin
                ),
            };
            out.push(("SERVICE".to_owned(), if on { "1" } else { "0" }.to_owned()));
            on
        }
    };
    if let Some(a) = answers.get("SERVICENAME") {
        super::validate_name(&a.value).map_err(|e| anyhow!("SERVICENAME ({}): {e}", a.origin))?;
        out.push(("SERVICENAME".to_owned(), a.value.clone()));
    }
    if wanted && monitor != Monitor::Colinux {
        let origin = answers.get("SERVICE").map_or("", |a| a.origin.as_str());
        bail!(
            "SERVICE=1 ({origin}): the machine service runs colinux-daemon, so it exists only for the coLinux monitor (Windows); this plan's monitor is {}: run the machine with `colinux-setup boot`, or leave SERVICE=0",
            monitor.as_str()
        );
    }
    Ok(out)
}

/// The service name a plan asks for, when it asks for one: `SERVICE=1`, or the
/// wizard's "service" task (`TASKS=service`) when SERVICE is not given.
pub fn wanted(plan: &Plan) -> Option<String> {
    let asked = match plan.answers.get("SERVICE").map(String::as_str) {
        Some(v) => v == "1",
        None => plan.tasks.iter().any(|t| t == "service"),
    };
    (plan.monitor == Monitor::Colinux && asked).then(|| {
        plan.answers
            .get("SERVICENAME")
            .cloned()
            .unwrap_or_else(|| DEFAULT_NAME.to_owned())
    })
}

/// The `--dry-run` line of the step, when the plan has it.
pub fn describe(plan: &Plan) -> Option<String> {
    let name = wanted(plan)?;
    Some(
        match super::spec_for_config(&plan.prefix, &name, &plan.config) {
            Ok(s) => format!(
                "  service:        {} (starts at boot as {}, after {}; restarts after 1 s twice): {} (rolled back on failure; an existing one is reused)",
                s.name,
                s.account,
                s.dependencies.join(", "),
                s.command_line
            ),
            Err(e) => format!("  service:        {name}: {e}"),
        },
    )
}

/// The `service` step. Returns the record for install-state.json.
pub fn step(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    journal: &mut Journal,
    old: Option<&InstallState>,
    summary: &mut Summary,
) -> Result<Option<ServiceRecord>> {
    let old_rec = old.map(record).transpose()?.flatten();
    let Some(name) = wanted(plan) else {
        if let Some(r) = old_rec.as_ref().filter(|r| r.created) {
            // Turning the feature off does not delete what an earlier install made:
            // uninstall still knows it (the record is kept).
            let w = format!(
                "the service {} an earlier install made is kept; remove it with `colinux-setup service remove --prefix {} --name {}`",
                r.name,
                plan.prefix.display(),
                r.name
            );
            ctx.rep.warn(&w);
            summary.warnings.push(w);
        }
        return Ok(old_rec.filter(|r| r.created));
    };
    ctx.rep
        .phase(&format!("registering the machine service {name}"));
    if let Some(r) = old_rec.as_ref().filter(|r| r.created && r.name != name) {
        // A renamed service: the old one is not deleted behind the user's back, but
        // from now on it is theirs (install-state records the new one).
        let w = format!(
            "the service {} an earlier install made is kept and no longer removed by uninstall; remove it with `colinux-setup service remove --prefix {} --name {}`",
            r.name,
            plan.prefix.display(),
            r.name
        );
        ctx.rep.warn(&w);
        summary.warnings.push(w);
    }
    let spec = super::spec_for_config(&plan.prefix, &name, &plan.config)?;
    let daemon = plan.prefix.join(super::DAEMON_EXE);
    if !daemon.is_file() {
        // The kit brought no daemon (the machine-files step warned already): the service
        // is made as asked, but it cannot start until the daemon is there.
        let w = format!(
            "the service {name} runs {}, which is not there: it fails at every boot until a kit with colinux-daemon.exe (role monitor) is installed",
            daemon.display()
        );
        ctx.rep.warn(&w);
        summary.warnings.push(w);
    }
    let mut host = super::host_for(false)?;
    let existed = host
        .status(&name)
        .map_err(|e| anyhow!(e).context(format!("asking the host about the service {name}")))?
        .installed;
    let entry = Entry::host(NAME, &Named { name: name.clone() })?;
    let ours_before = journal.entries.contains(&entry)
        || old_rec
            .as_ref()
            .is_some_and(|r| r.created && r.name == name);
    if !existed {
        journal.push(entry)?;
    }
    let outcome = host.install(&spec).map_err(|e| {
        anyhow!(e).context(format!(
            "cannot register the machine service {name}; run the install as an administrator, or leave SERVICE=0"
        ))
    })?;
    let state = match &outcome {
        Installed::Created => "installed".to_owned(),
        Installed::AlreadyInstalled => "already installed".to_owned(),
        Installed::Updated { changed } => format!("updated ({})", changed.join(", ")),
    };
    if outcome != Installed::AlreadyInstalled {
        summary.changed.push(format!("service {name}"));
    }
    ctx.log.line(&format!(
        "service {name} ({}): {state}: {}",
        host.kind(),
        spec.command_line
    ));
    Ok(Some(ServiceRecord {
        name,
        host: host.kind().to_owned(),
        state,
        created: !existed || ours_before,
        command_line: spec.command_line,
        dependencies: spec.dependencies,
    }))
}

/// Rollback of a journalled service: delete it; returns what was done.
pub fn rollback(name: &str, log: &mut RunLog) -> Option<String> {
    let result = super::host_for(false).and_then(|mut h| h.remove(name).map_err(|e| anyhow!(e)));
    crate::engine::step::rolled_back(&format!("service {name}"), result, log)
}

/// Uninstall: removes a service this tool created, if it still runs the command line
/// the install recorded (install-state.json is untrusted: its record must not make the
/// uninstall delete another service; one that changed is kept and said in `kept`).
/// `Ok(true)` when a reboot finishes it.
pub fn uninstall(
    rec: &ServiceRecord,
    log: &mut RunLog,
    removed: &mut Vec<String>,
    kept: &mut Vec<String>,
) -> Result<bool> {
    if !rec.created {
        log.line(&format!(
            "the service {} was there before this install: kept",
            rec.name
        ));
        return Ok(false);
    }
    let mut host = super::host_for(false)?;
    if let Ok(now) = host.status(&rec.name)
        && now.installed
        && let Some(cmd) = now.command_line.filter(|c| *c != rec.command_line)
    {
        let line = format!(
            "the service {} runs `{cmd}`, not the command line the install recorded (`{}`); it was kept",
            rec.name, rec.command_line
        );
        log.line(&line);
        kept.push(line);
        return Ok(false);
    }
    let outcome = host.remove(&rec.name).map_err(|e| {
        anyhow!(e).context(format!(
            "cannot remove the service {} this install made; run the uninstall as an administrator",
            rec.name
        ))
    })?;
    Ok(crate::engine::step::uninstalled(
        &format!("service {}", rec.name),
        outcome,
        log,
        removed,
    ))
}

/// The service's part of `status --json`: the record and what the host says now.
pub fn status(rec: Option<&ServiceRecord>) -> serde_json::Value {
    let Some(rec) = rec else {
        return serde_json::json!({"state": "not installed (SERVICE=0)"});
    };
    let now = super::host_for(false).and_then(|mut h| h.status(&rec.name).map_err(|e| anyhow!(e)));
    serde_json::json!({
        "name": rec.name,
        "installed_state": rec.state,
        "created": rec.created,
        "command_line": rec.command_line,
        "dependencies": rec.dependencies,
        "host": match now {
            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
            Err(e) => serde_json::json!({"error": format!("{e:#}")}),
        },
    })
}

/// Used by `status` text output.
pub fn status_line(v: &serde_json::Value) -> String {
    match v.get("host") {
        Some(h) if h.get("error").is_none() => format!(
            "{} ({}{}), now {}",
            v["name"].as_str().unwrap_or(""),
            v["installed_state"].as_str().unwrap_or(""),
            if v["created"].as_bool() == Some(true) {
                ""
            } else {
                "; it was there before, uninstall keeps it"
            },
            h["state"].as_str().unwrap_or("unknown")
        ),
        Some(h) => format!(
            "{}: cannot ask the host: {}",
            v["name"].as_str().unwrap_or(""),
            h["error"].as_str().unwrap_or("")
        ),
        None => v["state"].as_str().unwrap_or("").to_owned(),
    }
}
