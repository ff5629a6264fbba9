//! The engine under the install's steps: the run's context (progress, log, Ctrl-C),
//! the write-ahead [`journal`], the test hooks, what a run did ([`Summary`],
//! [`Removed`]), and the [`step::HostStep`] interface every step that makes a host
//! object implements. It names no step: the install sequence (`apply`) lists them.
//!
//! ## Test hooks (test-only)
//!
//! `COLINUX_SETUP_TEST_PAUSE_AT=STEP` stops at a step (printing `test hook: paused at
//! STEP` on stderr) until the process is killed or interrupted (then the run cancels);
//! `COLINUX_SETUP_TEST_FAIL_AT=STEP` makes the step fail (see `apply` for the steps).

pub mod journal;
pub mod step;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::progress::Reporter;
use crate::state::{self, FirstBoot, RunLog};

pub use journal::{Entry, Journal};

/// The test-only hooks (see the module doc).
pub struct Hooks {
    pause_at: Option<String>,
    fail_at: Option<String>,
}

impl Hooks {
    /// The hooks the environment asks for.
    pub fn from_env() -> Hooks {
        Hooks {
            pause_at: std::env::var("COLINUX_SETUP_TEST_PAUSE_AT").ok(),
            fail_at: std::env::var("COLINUX_SETUP_TEST_FAIL_AT").ok(),
        }
    }

    /// Pauses or fails at `step` when asked to.
    pub fn at(&self, step: &str, interrupt: &AtomicBool) -> Result<()> {
        if self.pause_at.as_deref() == Some(step) {
            eprintln!("colinux-setup: test hook: paused at {step}");
            let start = Instant::now();
            while !interrupt.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if self.fail_at.as_deref() == Some(step) {
            bail!("test hook: failure injected at step {step}");
        }
        Ok(())
    }
}

/// Everything a step needs.
pub struct Ctx<'a> {
    /// Progress.
    pub rep: &'a mut Reporter,
    /// The run's log.
    pub log: &'a mut RunLog,
    /// Ctrl-C.
    pub interrupt: &'a AtomicBool,
}

/// What the install did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Files made or replaced.
    pub changed: Vec<String>,
    /// Files that were there and were kept.
    pub kept: Vec<String>,
    /// Things to know.
    pub warnings: Vec<String>,
    /// The first boot's state after this run.
    pub first_boot: FirstBoot,
}

/// What `uninstall` did.
#[derive(Debug, Default, Serialize)]
pub struct Removed {
    /// Removed.
    pub removed: Vec<String>,
    /// Kept (images, unless --purge).
    pub kept: Vec<String>,
    /// Rolled back from an interrupted install.
    pub rolled_back: Vec<String>,
    /// Files install-state.json names that were not removed although the uninstall
    /// would have: not what the install recorded, or named outside the install
    /// folder. One sentence each.
    pub not_removed: Vec<String>,
    /// The driver is marked for deletion: a reboot finishes the uninstall (3010).
    pub reboot_required: bool,
    /// Nothing was installed: these were the images an earlier uninstall kept, which
    /// `--purge` removed.
    pub earlier: bool,
}

/// The error of a run stopped by Ctrl-C (or SIGTERM, SIGHUP).
pub fn cancelled() -> anyhow::Error {
    anyhow!(
        "cancelled ({}); what this install made has been removed",
        crate::progress::stop_reason()
    )
}

/// Stops the run when it was interrupted.
pub fn check_interrupt(flag: &AtomicBool) -> Result<()> {
    if flag.load(Ordering::SeqCst) {
        return Err(cancelled());
    }
    Ok(())
}

/// Writes `bytes` to `path` unless it already holds them; a different file is kept in
/// a backup until the install commits.
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    journal: &mut Journal,
    summary: &mut Summary,
) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match fs::read(path) {
        Ok(old) if old == bytes => return Ok(()),
        Ok(_) => {
            if !journal.owns(path) {
                let backup = path.with_file_name(format!(".{name}.backup"));
                journal.push(Entry::Replace {
                    path: path.to_owned(),
                    backup: backup.clone(),
                })?;
                fs::rename(path, &backup)
                    .with_context(|| format!("moving {} aside", path.display()))?;
            }
        }
        Err(_) => {
            journal.push(Entry::File {
                path: path.to_owned(),
            })?;
        }
    }
    state::write_atomic(path, bytes)?;
    summary.changed.push(name);
    Ok(())
}

/// Removes the image builder's temporary siblings of `target` (`.NAME.*.partial`), which
/// a SIGKILL during a build leaves behind.
pub fn remove_partials(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && (n.ends_with(".partial") || n.ends_with(".tmp")) {
            let _ = fs::remove_file(e.path());
        }
    }
}
