//! The write-ahead journal of an install that has not committed: every change is
//! recorded here first, then made, so that a failure, a Ctrl-C or a SIGKILL can be
//! undone by this run or the next one. It records files and folders itself and host
//! objects as opaque [`Entry::Host`] entries that the step which made them undoes: the
//! journal names no step.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::remove_partials;
use crate::state::{self, JOURNAL_FILE, RunLog};

/// Undoes one host object's entry: `(step, undo, log)` -> lines for the summary.
pub type UndoHost<'a> = &'a dyn Fn(&str, &serde_json::Value, &mut RunLog) -> Vec<String>;

/// One change, recorded before it is made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    /// A folder created (removed on rollback when empty).
    Dir {
        /// The folder.
        path: PathBuf,
    },
    /// A file created (removed on rollback).
    File {
        /// The file.
        path: PathBuf,
    },
    /// A host object about to be made by a [`HostStep`](super::step::HostStep) (a TAP
    /// adapter, the driver, the service, a PuTTY session): undone on rollback by the step
    /// named `step`, from what it recorded in `undo`.
    Host {
        /// The step's name.
        step: String,
        /// What the step needs to undo it (its name, where it is kept).
        undo: serde_json::Value,
    },
    /// A file replaced: the old one was renamed to `backup`.
    Replace {
        /// The file.
        path: PathBuf,
        /// The old content's place until commit.
        backup: PathBuf,
    },
}

impl Entry {
    /// A host object's entry for `step`, with what the step needs to undo it.
    pub fn host<T: Serialize>(step: &str, undo: &T) -> Result<Entry> {
        Ok(Entry::Host {
            step: step.to_owned(),
            undo: serde_json::to_value(undo)
                .with_context(|| format!("encoding the journal entry of {step}"))?,
        })
    }
}

/// The write-ahead journal of an install that has not committed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Journal {
    /// Digest of the plan being installed.
    pub plan_digest: String,
    /// Changes, in order.
    pub entries: Vec<Entry>,
    #[serde(skip)]
    pub(super) path: PathBuf,
}

impl Journal {
    /// A new, empty journal for the plan with `digest` in `prefix`.
    pub fn fresh(prefix: &Path, digest: &str) -> Journal {
        Journal {
            plan_digest: digest.to_owned(),
            entries: Vec::new(),
            path: prefix.join(JOURNAL_FILE),
        }
    }

    /// The journal an interrupted run left in `prefix`, if any.
    pub fn load(prefix: &Path) -> Result<Option<Journal>> {
        let path = prefix.join(JOURNAL_FILE);
        match crate::input::read(&path, crate::input::STATE_LIMIT, "an install's journal") {
            Ok(b) => {
                let mut j: Journal = serde_json::from_slice(&b).with_context(|| {
                    format!(
                        "{} (an interrupted install's journal) is damaged",
                        path.display()
                    )
                })?;
                j.path = path;
                Ok(Some(j))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "{} (an interrupted install's journal) cannot be read; move it away and run the install again",
                path.display()
            ))),
        }
    }

    /// Records `e` (once) and saves the journal, before the change is made.
    pub fn push(&mut self, e: Entry) -> Result<()> {
        if !self.entries.contains(&e) {
            self.entries.push(e);
        }
        self.save()
    }

    fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).context("encoding the journal")?;
        state::write_atomic_mode(&self.path, &bytes, state::PRIVATE_FILE)
    }

    /// Whether this run made or replaced `path` (so it is not backed up again).
    pub fn owns(&self, path: &Path) -> bool {
        self.entries.iter().any(|e| match e {
            Entry::File { path: p } | Entry::Replace { path: p, .. } => p == path,
            Entry::Dir { .. } | Entry::Host { .. } => false,
        })
    }

    /// Undoes every entry in reverse order; returns what was undone. Host objects are
    /// undone by `undo_host(step, undo, log)`, which the install sequence gives (the
    /// journal knows no step).
    pub fn rollback(&self, log: &mut RunLog, undo_host: UndoHost<'_>) -> Vec<String> {
        let mut done = Vec::new();
        for e in self.entries.iter().rev() {
            match e {
                Entry::File { path } => {
                    if path.exists() && fs::remove_file(path).is_ok() {
                        done.push(format!("removed {}", path.display()));
                    }
                    remove_partials(path);
                }
                Entry::Replace { path, backup } => {
                    if backup.exists() && fs::rename(backup, path).is_ok() {
                        done.push(format!("restored {}", path.display()));
                    }
                }
                Entry::Host { step, undo } => done.extend(undo_host(step, undo, log)),
                Entry::Dir { path } => {
                    // Our own bookkeeping files go first; anything else keeps the folder.
                    for f in [state::LOCK_FILE, JOURNAL_FILE] {
                        let _ = fs::remove_file(path.join(f));
                    }
                    if fs::remove_dir(path).is_ok() {
                        done.push(format!("removed folder {}", path.display()));
                    }
                }
            }
        }
        let _ = fs::remove_file(&self.path);
        for d in &done {
            log.line(&format!("rollback: {d}"));
        }
        done
    }

    /// The install is done: backups of replaced files and the journal go.
    pub fn commit(&self) -> Result<()> {
        for e in &self.entries {
            if let Entry::Replace { backup, .. } = e
                && backup.exists()
            {
                fs::remove_file(backup)
                    .with_context(|| format!("removing the backup {}", backup.display()))?;
            }
        }
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", self.path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn a_rollback_undoes_files_and_hands_host_objects_to_their_step_in_reverse() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let log_path = dir.path().join("run.log");
        let mut log = RunLog::start("test", Some(&log_path));
        let mut j = Journal::fresh(dir.path(), "digest");
        let made = dir.path().join("made.img");
        j.push(Entry::File { path: made.clone() })
            .expect("journalled");
        fs::write(&made, b"x").expect("written");
        let first = serde_json::json!({"name": "tap9"});
        j.push(Entry::host("tap", &first).expect("entry"))
            .expect("journalled");
        j.push(Entry::host("later", &7).expect("entry"))
            .expect("journalled");
        // Written before the change: a new run reads the same entries.
        let again = Journal::load(dir.path()).expect("reads").expect("is there");
        assert_eq!(again.entries, j.entries);

        let calls = RefCell::new(Vec::new());
        let undo = |step: &str, v: &serde_json::Value, _: &mut RunLog| {
            calls.borrow_mut().push((step.to_owned(), v.clone()));
            vec![format!("undid {step}")]
        };
        let done = again.rollback(&mut log, &undo);
        assert_eq!(
            *calls.borrow(),
            [
                ("later".to_owned(), serde_json::json!(7)),
                ("tap".to_owned(), first)
            ]
        );
        assert_eq!(
            done[..2],
            ["undid later".to_owned(), "undid tap".to_owned()]
        );
        assert!(!made.exists(), "the file the install made is removed");
        assert!(!dir.path().join(JOURNAL_FILE).exists(), "the journal goes");
    }

    #[test]
    fn a_damaged_journal_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        fs::write(
            dir.path().join(JOURNAL_FILE),
            br#"{"plan_digest":"d","entries":[{"kind":"tap","name":"x"}]}"#,
        )
        .expect("written");
        let e = Journal::load(dir.path()).expect_err("an entry kind no version writes");
        assert!(format!("{e:#}").contains("is damaged"), "{e:#}");
    }
}
