//! One interface for the install's steps that make an object outside the install
//! folder: the TAP adapter, the ring-0 driver, the machine's Windows service, the
//! PuTTY session. Each step owns its part of the plan, its journal entries
//! ([`super::Entry::Host`]), its record in install-state.json (under its
//! [`HostStep::name`], decoded by the step itself) and its uninstall; the engine and
//! the state know none of them. Adding a host object is one module implementing
//! [`HostStep`] and one line in the install sequence (`apply::HOST_STEPS`).
//!
//! The model is rustup's transaction (each change recorded before it is made, undone in
//! reverse) and tap-setup's host seam: every operation undoes itself.

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Ctx, Journal, Removed, Summary};
use crate::plan::Plan;
use crate::state::{FileRecord, InstallState, RunLog};

/// The undo data of a host object known by its name alone (the TAP adapter, the
/// driver, the service).
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Named {
    /// The object's name.
    pub name: String,
}

/// The undo data a step journalled, decoded; one that does not decode (the journal is
/// read from disk) is logged as `what` and left, and the rollback goes on.
pub fn undo_data<T: serde::de::DeserializeOwned>(
    what: &str,
    undo: &serde_json::Value,
    log: &mut RunLog,
) -> Option<T> {
    match T::deserialize(undo) {
        Ok(v) => Some(v),
        Err(e) => {
            log.line(&format!(
                "rollback: {what} entry that cannot be read ({e}): {undo}; left as it is"
            ));
            None
        }
    }
}

/// What a step's apply leaves for install-state.json.
#[derive(Debug, Default)]
pub struct Applied {
    /// Its record (kept under the step's name), or `None` when the plan asked for nothing.
    pub record: Option<serde_json::Value>,
    /// Files it placed in the install folder (the driver's copy).
    pub files: Vec<FileRecord>,
}

impl Applied {
    /// The step's typed record, encoded for install-state.json.
    pub fn record<T: Serialize>(record: Option<&T>, files: Vec<FileRecord>) -> Result<Applied> {
        Ok(Applied {
            record: record
                .map(serde_json::to_value)
                .transpose()
                .context("encoding a record for install-state.json")?,
            files,
        })
    }
}

/// A step of the install that makes a host object.
pub trait HostStep: Sync {
    /// Its name: the key of its record in install-state.json, of its journal entries,
    /// and its test hook (`COLINUX_SETUP_TEST_FAIL_AT=NAME`).
    fn name(&self) -> &'static str;

    /// Makes (or finds) the object the plan asks for. Whatever it makes is journalled
    /// first (`Entry::Host` with this step's name), so that [`HostStep::roll_back`]
    /// undoes it if the install fails later; an object that was there before is never
    /// journalled. `old` is the state an earlier install recorded.
    fn apply(
        &self,
        plan: &Plan,
        ctx: &mut Ctx<'_>,
        journal: &mut Journal,
        old: Option<&InstallState>,
        summary: &mut Summary,
    ) -> Result<Applied>;

    /// Undoes one of its journal entries (`undo`, as it wrote it): lines for the
    /// summary. A failure is logged and the rollback goes on with the rest.
    fn roll_back(&self, undo: &serde_json::Value, log: &mut RunLog) -> Vec<String>;

    /// Removes what its record (untrusted: read from install-state.json) says this
    /// tool made; what it did goes into `out`. An error stops the uninstall before any
    /// file is removed, so it can be run again.
    fn uninstall(
        &self,
        record: &serde_json::Value,
        log: &mut RunLog,
        out: &mut Removed,
    ) -> Result<()>;
}

/// What a rollback says about a host object it removed (`what`: `driver NAME`,
/// `service NAME`): the line for the summary, or `None` when nothing was there; a
/// failure is logged, since a rollback goes on with the rest.
pub fn rolled_back(
    what: &str,
    result: Result<driver_bundle::host::Removed>,
    log: &mut RunLog,
) -> Option<String> {
    use driver_bundle::host::Removed;
    match result {
        Ok(Removed::Removed) => Some(format!("removed the {what}")),
        Ok(Removed::RebootRequired) => Some(format!(
            "removed the {what} (Windows finishes at the next reboot)"
        )),
        Ok(Removed::NotInstalled) => None,
        Err(e) => {
            log.line(&format!("rollback: the {what}: {e:#}"));
            None
        }
    }
}

/// What an uninstall says about a host object it removed (`what`: `driver NAME`,
/// `service NAME`); `true` when a reboot finishes the removal.
pub fn uninstalled(
    what: &str,
    outcome: driver_bundle::host::Removed,
    log: &mut RunLog,
    removed: &mut Vec<String>,
) -> bool {
    use driver_bundle::host::Removed;
    match outcome {
        Removed::Removed => {
            log.line(&format!("removed the {what}"));
            removed.push(what.to_owned());
            false
        }
        Removed::RebootRequired => {
            log.line(&format!(
                "the {what} is marked for deletion: a reboot finishes it"
            ));
            removed.push(format!("{what} (after a reboot)"));
            true
        }
        Removed::NotInstalled => {
            log.line(&format!("the {what} was already gone"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_data_decodes_or_logs_what_it_leaves() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("run.log");
        let mut log = RunLog::start("test", Some(&path));
        let good = serde_json::json!({"name": "tap7"});
        let n: Option<Named> = undo_data("a TAP adapter", &good, &mut log);
        assert_eq!(n.map(|n| n.name).as_deref(), Some("tap7"));
        let bad = serde_json::json!({"nom": 3});
        assert!(undo_data::<Named>("a TAP adapter", &bad, &mut log).is_none());
        drop(log);
        let text = std::fs::read_to_string(&path).expect("the log");
        assert!(
            text.contains("rollback: a TAP adapter entry that cannot be read")
                && text.contains("left as it is"),
            "{text}"
        );
    }
}
