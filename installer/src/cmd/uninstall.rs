//! `uninstall [--prefix DIR] [--purge]`: removes config.txt, install-state and the lock;
//! the images (root, home with the user's data, swap) stay unless `--purge`, which also
//! removes the logs and the folder when it is then empty. An interrupted install's
//! journal is rolled back first. Nothing installed is not an error (exit 0).
//!
//! A plain uninstall records the images it kept (`.colinux-setup-kept.json`, written as
//! install-state.json is); a later `uninstall --purge` removes those that are still the
//! same images (kind, size and UUID), keeps and names any other, and removes the folder
//! when nothing else is in it.
//!
//! install-state.json is read as untrusted input: a file it names is removed only when
//! the name is a plain name in the folder and the file is still what the install
//! recorded (size and digest; an image, which the guest writes into: its kind, size and
//! UUID); a service, PuTTY session or TAP adapter only when it is still what the
//! install made (its command line, host and port, address). The rest is kept and said
//! on stderr (and as `not_removed` with `--json`); the uninstall still exits 0, having
//! removed what was the install's.

use std::path::Path;

use crate::apply::{self, ApplyError, Purge};
use crate::exit::{self, Outcome};
use crate::state::RunLog;

/// Runs `uninstall`.
pub fn run(prefix: &Path, purge: Purge, json: bool, log_file: Option<&Path>) -> Outcome {
    let mut log = RunLog::start("uninstall", log_file);
    exit::set_trailer(format!(
        "colinux-setup: the log of this run is {}",
        log.path.display()
    ));
    let result = apply::uninstall(prefix, purge, &mut log);
    // The log goes into the folder only when something was uninstalled there (and the
    // folder is still there: --purge removes it).
    let log_path = if matches!(result, Ok(Some(_))) {
        log.settle(prefix)
    } else {
        log.path.clone()
    };
    exit::set_trailer(format!(
        "colinux-setup: the log of this run is {}",
        log_path.display()
    ));
    if result.is_ok()
        && let Err(e) = crate::machines::unregister(prefix)
    {
        log.line(&format!("warning: {e}"));
        eprintln!("colinux-setup: warning: {e}");
    }
    match result {
        Ok(None) => {
            if json {
                crate::out::outln!(
                    "{}",
                    serde_json::json!({"event": "done", "installed": false, "prefix": prefix})
                );
            } else {
                crate::out::outln!(
                    "{}: nothing is installed here; nothing to do",
                    prefix.display()
                );
                if purge == Purge::No && prefix.join(crate::state::KEPT_FILE).exists() {
                    crate::out::outln!(
                        "  an earlier uninstall kept the images here: remove them with --purge"
                    );
                }
            }
            Outcome::Done
        }
        Ok(Some(r)) => {
            log.line(&format!("removed {:?}; kept {:?}", r.removed, r.kept));
            if json {
                crate::out::outln!(
                    "{}",
                    serde_json::json!({"event": "done", "prefix": prefix, "purge": purge == Purge::All, "removed": r.removed, "kept": r.kept, "not_removed": r.not_removed, "rolled_back": r.rolled_back, "earlier_uninstall": r.earlier, "log": log_path})
                );
            } else if r.earlier {
                crate::out::outln!(
                    "{}: nothing is installed here; removed the images an earlier uninstall kept: {}",
                    prefix.display(),
                    if r.removed.is_empty() {
                        "none".to_owned()
                    } else {
                        r.removed.join(", ")
                    }
                );
            } else {
                crate::out::outln!(
                    "uninstalled {}: removed {} file(s)",
                    prefix.display(),
                    r.removed.len()
                );
                for k in &r.kept {
                    if purge == Purge::MadeByInstall {
                        crate::out::outln!("  kept {k} (it was there before this install)");
                    } else {
                        crate::out::outln!("  kept {k} (remove the images with --purge)");
                    }
                }
            }
            for n in &r.not_removed {
                eprintln!("colinux-setup: warning: {n}");
            }
            if r.reboot_required {
                eprintln!(
                    "colinux-setup: Windows finishes removing the driver or the machine service at the next reboot (exit 3010)"
                );
                return Outcome::RebootRequired;
            }
            Outcome::Done
        }
        Err(ApplyError::Busy(e)) => Outcome::Busy(e),
        Err(ApplyError::Cancelled(e)) => Outcome::Cancelled(e),
        Err(ApplyError::Failed(e)) => Outcome::Failed(e),
    }
}
