//! The install's "PuTTY session" step (answer `PUTTYSESSION=1` or a session name), its
//! rollback, and the session's part of `status` and `uninstall`.
//!
//! The session is part of the install, not a separate action, so it is undone with
//! everything else when a later step fails (setup.msi's own rollback actions cannot be
//! relied on for that: Wine's msiexec removes the program before it runs them). It is
//! checked when the plan is made ([`check`]): a machine whose config.txt gives no way
//! to the guest's port 22 is refused before anything is changed. A session of the same
//! name with other settings that this tool did not make is never overwritten.
//!
//! `PUTTYUSER=SID` (Windows) puts the session into that user's hive: setup.msi runs the
//! install as LocalSystem and passes the installing user's SID, so the session lands
//! where that user's PuTTY looks.

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::{DEFAULT_NAME, Session, Store};
use crate::engine::step::{Applied, HostStep, undo_data};
use crate::engine::{Ctx, Entry, Journal, Removed, Summary};
use crate::plan::{Answers, Plan};
use crate::state::{InstallState, RunLog};

/// The step's name: its record's key in install-state.json and its test hook.
pub const NAME: &str = "putty";

/// The machine's recorded PuTTY session, if any.
pub fn record(st: &InstallState) -> Result<Option<PuttyRecord>> {
    st.object(NAME)
}

/// What the rollback needs to remove a session this run is about to save.
#[derive(Serialize, Deserialize)]
struct Undo {
    store: Store,
    name: String,
}

/// The PuTTY saved session step (PUTTYSESSION).
pub struct Putty;

impl HostStep for Putty {
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
        undo_data::<Undo>("a PuTTY session", undo, log)
            .and_then(|u| rollback(&u.store, &u.name, log))
            .into_iter()
            .collect()
    }

    fn uninstall(
        &self,
        record: &serde_json::Value,
        log: &mut RunLog,
        out: &mut Removed,
    ) -> Result<()> {
        let rec = PuttyRecord::deserialize(record)
            .context("install-state.json's PuTTY session record cannot be read")?;
        uninstall(&rec, log, &mut out.removed, &mut out.not_removed);
        Ok(())
    }
}

/// The session, as install-state.json records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PuttyRecord {
    /// The session's name as PuTTY lists it.
    pub name: String,
    /// Where it is kept (`HKCU`, `HKU\SID`, or the sessions folder).
    pub store: Store,
    /// What it connects to.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// This tool wrote it (so uninstall removes it).
    #[serde(default)]
    pub created: bool,
}

/// Checks `PUTTYSESSION` and `PUTTYUSER`; returns the answers to record.
pub fn plan_answers(answers: &Answers) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(a) = answers.get("PUTTYSESSION") {
        let v = match a.value.to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" | "on" => "1".to_owned(),
            "0" | "no" | "false" | "off" | "" => "0".to_owned(),
            _ => {
                super::check_name(&a.value)
                    .map_err(|e| anyhow!("PUTTYSESSION ({}): {e}", a.origin))?;
                a.value.clone()
            }
        };
        out.push(("PUTTYSESSION".to_owned(), v));
    }
    if let Some(a) = answers.get("PUTTYUSER") {
        Store::user(&a.value).map_err(|e| anyhow!("{e} ({})", a.origin))?;
        out.push(("PUTTYUSER".to_owned(), a.value.clone()));
    }
    Ok(out)
}

/// The session name the plan asks for, when it asks for one.
pub fn wanted(plan: &Plan) -> Option<String> {
    match plan.answers.get("PUTTYSESSION").map(String::as_str) {
        None | Some("0") => None,
        Some("1") => Some(DEFAULT_NAME.to_owned()),
        Some(name) => Some(name.to_owned()),
    }
}

fn store(plan: &Plan) -> Result<Store> {
    match plan.answers.get("PUTTYUSER") {
        Some(sid) => Store::user(sid),
        None => Store::current(),
    }
}

/// The session of a plan (from its config.txt and TAP adapter), when it asks for one.
fn session(plan: &Plan) -> Result<Option<Session>> {
    let Some(name) = wanted(plan) else {
        return Ok(None);
    };
    let user = plan
        .users
        .iter()
        .find(|u| u.uid != 0)
        .map(|u| u.name.clone());
    super::from_config(
        &plan.config,
        "config.txt",
        plan.tap.as_ref().map(|t| t.guest_ip),
        &name,
        user,
    )
    .map(Some)
    .map_err(|e| anyhow!("PUTTYSESSION: {e}"))
}

/// Refuses, before any change, a plan that asks for a session its network cannot give.
pub fn check(plan: &Plan) -> Result<()> {
    session(plan)?;
    if wanted(plan).is_some() {
        store(plan)?;
    }
    Ok(())
}

/// The `--dry-run` line of the step, when the plan has it.
pub fn describe(plan: &Plan) -> Option<String> {
    match (session(plan), store(plan)) {
        (Ok(Some(s)), Ok(st)) => Some(format!(
            "  PuTTY session: \"{}\": ssh {}{} port {} ({}; from {})",
            s.name,
            s.user
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            s.host,
            s.port,
            st.location(&s.name),
            s.from
        )),
        (Ok(None), _) => None,
        (Err(e), _) | (_, Err(e)) => Some(format!("  PuTTY session: {e:#}")),
    }
}

/// The `putty` step. Returns the record for install-state.json.
pub fn step(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    journal: &mut Journal,
    old: Option<&InstallState>,
    summary: &mut Summary,
) -> Result<Option<PuttyRecord>> {
    let old_rec = old.map(record).transpose()?.flatten();
    let Some(s) = session(plan)? else {
        return Ok(old_rec.filter(|r| r.created));
    };
    let store = store(plan)?;
    ctx.rep
        .phase(&format!("saving the PuTTY session {}", s.name));
    let at = store.location(&s.name);
    let ours_before = old_rec
        .as_ref()
        .is_some_and(|r| r.created && r.name == s.name && r.store == store);
    let stored = store.read(&s.name)?;
    let exists = stored.is_some();
    let same = stored.is_some_and(|st| s.is_stored_as(&st));
    if exists && !same && !ours_before {
        bail!(
            "a PuTTY session \"{}\" with other settings is already there ({at}) and was not made by colinux-setup: it is kept; choose another name with PUTTYSESSION=NAME",
            s.name
        );
    }
    if !same {
        let entry = Entry::host(
            NAME,
            &Undo {
                store: store.clone(),
                name: s.name.clone(),
            },
        )?;
        if !exists {
            journal.push(entry)?;
        }
        store
            .save(&s)
            .with_context(|| format!("saving the PuTTY session \"{}\" ({at})", s.name))?;
        summary.changed.push(format!("PuTTY session {}", s.name));
    }
    ctx.log.line(&format!(
        "PuTTY session \"{}\": ssh {}:{} ({at}; from {}){}",
        s.name,
        s.host,
        s.port,
        s.from,
        if same { ", already there" } else { "" }
    ));
    Ok(Some(PuttyRecord {
        name: s.name,
        store,
        host: s.host,
        port: s.port,
        created: !exists || ours_before,
    }))
}

/// Rollback of a journalled session: remove it; returns what was done.
pub fn rollback(store: &Store, name: &str, log: &mut RunLog) -> Option<String> {
    match store.remove(name) {
        Ok(true) => Some(format!("removed the PuTTY session {name}")),
        Ok(false) => None,
        Err(e) => {
            log.line(&format!("rollback: the PuTTY session {name}: {e:#}"));
            None
        }
    }
}

/// Uninstall: removes a session this tool wrote, if it still connects where the install
/// recorded (install-state.json is untrusted: its record must not make the uninstall
/// remove another session, or a file of another store). A failure is a warning in the
/// log (the user's hive may not be loaded when someone else uninstalls), never a stop;
/// a session that changed is kept and said in `kept`.
pub fn uninstall(
    rec: &PuttyRecord,
    log: &mut RunLog,
    removed: &mut Vec<String>,
    kept: &mut Vec<String>,
) {
    if !rec.created {
        log.line(&format!(
            "the PuTTY session {} was there before this install: kept",
            rec.name
        ));
        return;
    }
    match rec.store.read(&rec.name) {
        Ok(None) => {
            log.line(&format!("the PuTTY session {} was already gone", rec.name));
            return;
        }
        Ok(Some(settings)) => {
            let get = |k: &str| {
                settings
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
            };
            let port = rec.port.to_string();
            if get("HostName") != Some(rec.host.as_str()) || get("PortNumber") != Some(&port) {
                let line = format!(
                    "the PuTTY session \"{}\" ({}) no longer connects to {} port {} as the install saved it; it was kept",
                    rec.name,
                    rec.store.location(&rec.name),
                    rec.host,
                    rec.port
                );
                log.line(&line);
                kept.push(line);
                return;
            }
        }
        Err(e) => {
            log.line(&format!(
                "WARNING: the PuTTY session {} ({}) was not removed: {e:#}",
                rec.name,
                rec.store.location(&rec.name)
            ));
            return;
        }
    }
    match rec.store.remove(&rec.name) {
        Ok(true) => {
            log.line(&format!("removed the PuTTY session {}", rec.name));
            removed.push(format!("PuTTY session {}", rec.name));
        }
        Ok(false) => log.line(&format!("the PuTTY session {} was already gone", rec.name)),
        Err(e) => log.line(&format!(
            "WARNING: the PuTTY session {} ({}) was not removed: {e:#}",
            rec.name,
            rec.store.location(&rec.name)
        )),
    }
}
