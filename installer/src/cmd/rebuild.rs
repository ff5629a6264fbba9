//! `images rebuild [--prefix DIR] [root|home|swap]... [--size SIZE] [--fs FS] [--keep-backup]`:
//! the command. It finds the machine, takes its lock, runs the rebuild engine
//! ([`crate::rebuild`], where what is rebuilt and how is described) and reports.
//!
//! The run holds the machine's lock (exit 1618 when an install, uninstall, boot or
//! other rebuild holds it: a running monitor holds it through `boot`); an interrupted
//! install's journal is refused (finish or uninstall it first).

use std::sync::atomic::AtomicBool;

use anyhow::anyhow;

use super::cli::{MachineImage, RebuildArgs};
use crate::apply;
use crate::exit::Outcome;
use crate::progress::Reporter;
use crate::rebuild::{self, Image, Request, Stop};
use crate::state::{InstallState, JOURNAL_FILE, Lock, LockError, RunLog};

/// Runs `images rebuild`.
pub fn run(a: &RebuildArgs, interrupt: &AtomicBool) -> Outcome {
    let prefix = super::default_prefix(a.prefix.clone());
    let mut log = RunLog::start("rebuild", None);
    let log_path = log.settle(&prefix);
    crate::exit::set_trailer(format!(
        "colinux-setup: the log of this run is {}",
        log_path.display()
    ));
    let st = match InstallState::read(&prefix) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Outcome::Failed(anyhow!(
                "no machine is installed in {}; give --prefix DIR of an installed machine",
                prefix.display()
            ));
        }
        Err(e) => return Outcome::Failed(e),
    };
    let lock = match Lock::acquire(&prefix) {
        Ok(l) => l,
        Err(e @ LockError::Busy(_)) => {
            return Outcome::Busy(anyhow!(e).context(
                "the machine is in use (a boot, install, uninstall or rebuild holds its lock); stop the machine first",
            ));
        }
        Err(e) => return Outcome::Failed(anyhow!(e)),
    };
    apply::sweep_temporaries(&prefix);
    if prefix.join(JOURNAL_FILE).exists() {
        return Outcome::Failed(anyhow!(
            "an interrupted install left its journal in {}; run the install again to finish it (or uninstall) before rebuilding",
            prefix.display()
        ));
    }
    let mut rep = Reporter::new(false);
    let result = rebuild::rebuild(&request(a), &prefix, st, &mut rep, &mut log, interrupt);
    rep.finish();
    drop(lock);
    match result {
        Ok(lost) => {
            if lost > 0 {
                eprintln!(
                    "colinux-setup: warning: {lost} entr{} of the old image could not be read and {} not in the new one (listed above as `lost:`); everything else was kept",
                    if lost == 1 { "y" } else { "ies" },
                    if lost == 1 { "is" } else { "are" }
                );
            }
            Outcome::Done
        }
        Err(Stop::Usage(e)) => Outcome::Usage(e),
        Err(Stop::Cancelled(e)) => Outcome::Cancelled(e),
        Err(Stop::Failed(e)) => {
            log.line(&format!("error: {e:#}"));
            Outcome::Failed(e)
        }
    }
}

/// The engine's request from the command line's arguments.
fn request(a: &RebuildArgs) -> Request {
    Request {
        images: a
            .images
            .iter()
            .map(|i| match i {
                MachineImage::Root => Image::Root,
                MachineImage::Home => Image::Home,
                MachineImage::Swap => Image::Swap,
            })
            .collect(),
        size: a.size.clone(),
        fs: a.fs.clone(),
        keep_backup: a.keep_backup,
        preserve: a.preserve.clone(),
        no_preserve: a.no_preserve,
    }
}
