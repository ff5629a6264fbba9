//! `boot --first-boot [--prefix DIR]`: runs the installed machine's first boot when it
//! is still to do (installed with `--no-first-boot`, or its monitor could not run at
//! install), as the install runs it: the same guest script, timeout and verdict
//! ([`crate::apply::first_boot_later`]). Exit 0 with the state's first boot `done`;
//! 1603 when it fails, the machine put back as it was and its first boot still pending;
//! 1602 on Ctrl-C (put back too); 1618 when the machine is in use. A first boot already
//! done is said, and nothing is booted (exit 0).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::apply::{self, Later};
use crate::engine::Ctx;
use crate::exit::{self, Outcome};
use crate::progress::Reporter;
use crate::state::RunLog;

/// Runs `boot --first-boot` for the machine in `prefix` (its state was read: it is there).
pub fn run(prefix: &Path, interrupt: &AtomicBool) -> Outcome {
    let mut log = RunLog::start("first-boot", None);
    let log_path = log.settle(prefix);
    exit::set_trailer(format!(
        "colinux-setup: the log of this run is {}",
        log_path.display()
    ));
    let mut rep = Reporter::new(false);
    let result = apply::first_boot_later(
        prefix,
        &mut Ctx {
            rep: &mut rep,
            log: &mut log,
            interrupt,
        },
    );
    rep.finish();
    match result {
        Ok(Later::Ran) => {
            log.line("first boot done");
            crate::out::outln!(
                "{}: first boot: done (the distribution is in the machine's home)",
                prefix.display()
            );
            Outcome::Done
        }
        Ok(Later::AlreadyDone) => {
            log.line("the first boot was done already; nothing was booted");
            crate::out::outln!(
                "{}: the first boot is done already; nothing to do (start the machine with `colinux-setup boot`)",
                prefix.display()
            );
            Outcome::Done
        }
        Ok(Later::NoFirstBoot) => {
            crate::out::outln!(
                "{}: this machine's profile has no first boot; nothing to do",
                prefix.display()
            );
            Outcome::Done
        }
        Err(e) => {
            let (outcome, msg) = super::apply_outcome(e);
            log.line(&format!("error: {msg}"));
            outcome
        }
    }
}
