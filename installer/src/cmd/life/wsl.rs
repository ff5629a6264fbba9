//! `start`, `stop`, `console`, `shell` and the `list` state of a machine installed for
//! the wsl monitor, on every host, through the [`crate::wsl::WslHost`] seam (wsl.exe on
//! Windows, the recording host of the test hook elsewhere).
//!
//! The machine is its WSL distribution, which WSL runs while a process lives in it:
//! - `start` leaves one there ([`crate::wsl::WslHost::start`]) and returns once WSL
//!   lists it Running: exit 0; 1618 when it runs already (started here, by a shell of
//!   its own, or by `boot`) or another run holds the machine's lock; 1603 when it
//!   cannot start; 1602 when Ctrl-C stopped it while it started.
//! - `stop` runs `sync` in it as root (bounded by `--timeout`: a terminated
//!   distribution's writes are not flushed otherwise), then `wsl --terminate`; exit 0,
//!   and 0 when it was not running (it says so), as for the other monitors.
//! - `shell -- CMD` runs `/bin/sh -c CMD` as the distribution's default user (wsl.conf's),
//!   its output (standard output and error, as wsl.exe passes them) on standard output,
//!   its exit status ours; `console` (and `shell` without a command) opens the
//!   distribution's shell on this terminal (`wsl -d NAME`). Both need it running (1603
//!   otherwise, as for the other monitors).
//!
//! Nothing here unregisters a distribution or touches its disk: a distribution that is
//! not registered, registered with another disk, or whose disk is gone is refused with
//! its name and what to do.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::{Value, json};

use crate::exit::Outcome;
use crate::state::{InstallState, Lock, LockError};
use crate::wsl::step::WslRecord;
use crate::wsl::{Distribution, WslError, WslHost};

/// What the life commands say for the engine.
const ENGINE: &str = "WSL 2";

/// The machine's distribution as WSL has it now, with the host that asked.
struct Found {
    host: Box<dyn WslHost>,
    rec: WslRecord,
    now: Distribution,
}

impl Found {
    fn running(&self) -> bool {
        self.now.state.eq_ignore_ascii_case("Running")
    }
}

/// The machine's recorded distribution (its name checked as WSL takes it: it is passed
/// to wsl.exe), or the error that says what to do.
fn record(prefix: &Path, st: &InstallState) -> anyhow::Result<WslRecord> {
    let rec = crate::wsl::step::record(st)?.ok_or_else(|| {
        anyhow!(
            "install-state.json of {} records no WSL distribution; run the install again (`colinux-setup install --prefix {}`)",
            prefix.display(),
            prefix.display()
        )
    })?;
    crate::wsl::check_name(&rec.name).map_err(|e| {
        anyhow!(
            "install-state.json of {}: its wsl record: {e}; run the install again",
            prefix.display()
        )
    })?;
    Ok(rec)
}

/// The machine's distribution, registered with its own disk (and, with `disk`, that
/// disk there), or the error that names it and says what to do.
fn find(prefix: &Path, st: &InstallState, disk: bool) -> anyhow::Result<Found> {
    let rec = record(prefix, st)?;
    let status = format!("`colinux-setup status --prefix {}`", prefix.display());
    let mut host = crate::wsl::host_for().map_err(|e| {
        anyhow!(e).context(format!(
            "cannot ask WSL about the distribution {} of the machine in {}",
            rec.name,
            prefix.display()
        ))
    })?;
    let list = host.list().map_err(|e| {
        anyhow!(e).context(format!(
            "cannot ask WSL about the distribution {} of the machine in {}",
            rec.name,
            prefix.display()
        ))
    })?;
    let Some(now) = list.into_iter().find(|d| d.name == rec.name) else {
        return Err(anyhow!(
            "the WSL distribution {} of the machine in {} is not registered; run the install again to register it (`colinux-setup install --prefix {}`; {status} shows what is there)",
            rec.name,
            prefix.display(),
            prefix.display()
        ));
    };
    if let Some(other) = now
        .disk
        .as_deref()
        .filter(|d| !crate::wsl::same_disk(d, &rec.disk))
    {
        return Err(anyhow!(
            "the WSL distribution {} is registered with the disk {}, not this machine's {}: it is not this machine's and was left as it is; see {status}",
            rec.name,
            other.display(),
            rec.disk.display()
        ));
    }
    if disk && !rec.disk.is_file() {
        let aside = crate::wsl::aside_path(&rec.disk);
        let why = if aside.is_file() {
            format!(
                " (an interrupted unregister left it as {}: the install or the uninstall puts it back)",
                aside.display()
            )
        } else {
            String::new()
        };
        return Err(anyhow!(
            "the disk {} of the WSL distribution {} is gone{why}; WSL cannot run the machine without it: put it back, or reinstall the machine (`colinux-setup install --prefix {}`); {status} shows what is missing",
            rec.disk.display(),
            rec.name,
            prefix.display()
        ));
    }
    Ok(Found { host, rec, now })
}

/// The machine's lock, held while `start` or `stop` changes the distribution: an
/// install, uninstall or `boot` of the machine has it busy (1618).
fn lock(prefix: &Path) -> Result<Lock, Outcome> {
    match Lock::acquire(prefix) {
        Ok(l) => Ok(l),
        Err(e @ LockError::Busy(_)) => Err(Outcome::Busy(anyhow!(e))),
        Err(e) => Err(Outcome::Failed(anyhow!(e))),
    }
}

/// Runs `start` of a wsl machine.
pub(super) fn start(
    prefix: &Path,
    st: &InstallState,
    timeout: u64,
    json_out: bool,
    interrupt: &AtomicBool,
) -> Outcome {
    let _lock = match lock(prefix) {
        Ok(l) => l,
        Err(o) => return o,
    };
    let mut found = match find(prefix, st, true) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let name = found.rec.name.clone();
    if found.running() {
        return Outcome::Busy(anyhow!(
            "the machine in {} is running already (its WSL distribution {} is Running); `colinux-setup stop --prefix {}` stops it",
            prefix.display(),
            name,
            prefix.display()
        ));
    }
    if !found.now.state.eq_ignore_ascii_case("Stopped") {
        return Outcome::Failed(anyhow!(
            "the WSL distribution {name} of the machine in {} is {} (WSL's word); wait until WSL is done with it, then start it again",
            prefix.display(),
            found.now.state
        ));
    }
    // A machine installed before the list existed joins it when it is started; a list
    // that cannot be written costs the listing, not the start.
    if let Err(e) = crate::machines::register(prefix) {
        eprintln!("colinux-setup: warning: {e}");
    }
    let started = Instant::now();
    match found
        .host
        .start(&name, Duration::from_secs(timeout), interrupt)
    {
        Ok(()) => {}
        Err(WslError::Interrupted { .. }) => {
            return Outcome::Cancelled(anyhow!(
                "stopped by {} while the WSL distribution {name} started; the machine in {} is not running",
                crate::progress::stop_reason(),
                prefix.display()
            ));
        }
        Err(e) => {
            return Outcome::Failed(anyhow!(e).context(format!(
                "the machine in {} did not start (its WSL distribution {name})",
                prefix.display()
            )));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if json_out {
        crate::out::outln!(
            "{}",
            json!({"prefix": prefix, "state": "running", "seconds": seconds, "pid": null,
                "monitor": "wsl", "engine": ENGINE, "distribution": name, "log": null})
        );
        return Outcome::Done;
    }
    crate::out::outln!(
        "started the machine in {} (its WSL distribution {name}, {ENGINE}) in {seconds:.1} s; `colinux-setup shell --prefix {} -- COMMAND` runs commands in it, `colinux-setup console --prefix {}` opens its shell, `colinux-setup stop --prefix {}` stops it",
        prefix.display(),
        prefix.display(),
        prefix.display(),
        prefix.display()
    );
    Outcome::Done
}

/// Runs `stop` of a wsl machine.
pub(super) fn stop(
    prefix: &Path,
    st: &InstallState,
    timeout: u64,
    json_out: bool,
    interrupt: &AtomicBool,
) -> Outcome {
    let _lock = match lock(prefix) {
        Ok(l) => l,
        Err(o) => return o,
    };
    // Its disk is not needed to stop it.
    let mut found = match find(prefix, st, false) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let name = found.rec.name.clone();
    if !found.running() {
        if json_out {
            crate::out::outln!(
                "{}",
                json!({"prefix": prefix, "state": "stopped", "was_running": false, "distribution": name})
            );
            return Outcome::Done;
        }
        crate::out::outln!(
            "the machine in {} is not running (its WSL distribution {name} is {}); nothing to do",
            prefix.display(),
            found.now.state
        );
        return Outcome::Done;
    }
    let started = Instant::now();
    // `wsl --terminate` ends the distribution at once: what its page cache holds is
    // written first, as a poweroff would.
    let argv = ["/bin/sh".to_owned(), "-c".to_owned(), "sync".to_owned()];
    let synced = match found.host.run(
        &name,
        Some("root"),
        &argv,
        Duration::from_secs(timeout),
        interrupt,
        &mut |_| {},
    ) {
        Ok(r) if r.exit_code == Some(0) => true,
        Ok(r) => {
            eprintln!(
                "colinux-setup: warning: `sync` in the WSL distribution {name} {}; terminating it anyway",
                if r.timed_out {
                    format!("did not finish within {timeout} s (--timeout)")
                } else if r.interrupted {
                    "was stopped".to_owned()
                } else {
                    format!("ended with {}", crate::monitor::exit_words(r.exit_code))
                }
            );
            false
        }
        Err(e) => {
            eprintln!(
                "colinux-setup: warning: `sync` in the WSL distribution {name}: {e}; terminating it anyway"
            );
            false
        }
    };
    if let Err(e) = found.host.terminate(&name) {
        return Outcome::Failed(anyhow!(e).context(format!(
            "cannot stop the machine in {} (`wsl --terminate {name}`); `wsl --shutdown` stops every distribution",
            prefix.display()
        )));
    }
    let seconds = started.elapsed().as_secs_f64();
    if json_out {
        crate::out::outln!(
            "{}",
            json!({"prefix": prefix, "state": "stopped", "was_running": true,
                "clean_poweroff": synced, "seconds": seconds, "distribution": name})
        );
    } else {
        crate::out::outln!(
            "stopped the machine in {} (its WSL distribution {name}: `wsl --terminate`) ({seconds:.1} s)",
            prefix.display()
        );
    }
    Outcome::Done
}

/// The running machine's distribution, or the error that says it is not running.
fn running(prefix: &Path, st: &InstallState, what: &str) -> anyhow::Result<Found> {
    let found = find(prefix, st, true)?;
    if found.running() {
        Ok(found)
    } else {
        Err(super::not_running(prefix, what))
    }
}

/// Runs `console` of a wsl machine: the distribution's shell on this terminal.
pub(super) fn console(prefix: &Path, st: &InstallState) -> Outcome {
    let mut found = match running(prefix, st, "open its shell") {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let name = found.rec.name.clone();
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!(
            "colinux-setup: the shell of the WSL distribution {name} (the machine in {}); `exit` leaves it, and the machine runs on",
            prefix.display()
        );
    }
    match found.host.shell(&name) {
        Ok(0) => Outcome::Done,
        // As ssh does: the shell's status is ours.
        Ok(code) => Outcome::GuestStatus(u8::try_from(code).unwrap_or(255)),
        Err(e) => Outcome::Failed(anyhow!(e).context(format!(
            "cannot open the shell of the WSL distribution {name}"
        ))),
    }
}

/// Runs `shell -- COMMAND` of a wsl machine.
pub(super) fn shell(
    prefix: &Path,
    st: &InstallState,
    command: &[String],
    timeout: u64,
    interrupt: &AtomicBool,
) -> Outcome {
    if command.is_empty() {
        return console(prefix, st);
    }
    let mut found = match running(prefix, st, "run commands in it") {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let name = found.rec.name.clone();
    // One line for a shell, as the other monitors type it on the guest's console.
    let argv = ["/bin/sh".to_owned(), "-c".to_owned(), command.join(" ")];
    let result = found.host.run(
        &name,
        None,
        &argv,
        Duration::from_secs(timeout),
        interrupt,
        &mut |l| crate::out::outln!("{l}"),
    );
    match result {
        Ok(r) if r.interrupted => Outcome::Cancelled(anyhow!(
            "stopped by {}; the command may still run in the WSL distribution {name}",
            crate::progress::stop_reason()
        )),
        Ok(r) if r.timed_out => Outcome::Failed(anyhow!(
            "the command did not finish within {timeout} s (--timeout); it may still run in the WSL distribution {name} (`colinux-setup stop --prefix {}` stops the machine)",
            prefix.display()
        )),
        Ok(r) => match r.exit_code {
            Some(code) => Outcome::GuestStatus(u8::try_from(code).unwrap_or(255)),
            None => Outcome::Failed(anyhow!(
                "the command in the WSL distribution {name} was killed before it ended"
            )),
        },
        Err(e) => Outcome::Failed(anyhow!(e).context(format!(
            "cannot run the command in the WSL distribution {name}"
        ))),
    }
}

/// The distributions WSL lists, asked once for all the machines of one `list`.
#[derive(Default)]
pub(super) struct Listing(Option<Result<Vec<Distribution>, String>>);

impl Listing {
    fn get(&mut self) -> &Result<Vec<Distribution>, String> {
        self.0.get_or_insert_with(|| {
            crate::wsl::host_for()
                .and_then(|mut h| h.list())
                .map_err(|e| e.to_string())
        })
    }
}

/// A wsl machine's part of `list`: its state (`running`, `stopped`; `damaged` when its
/// distribution is not registered as installed, `unknown` when WSL cannot be asked),
/// its distribution, and the problem when there is one.
pub(super) fn list_state(prefix: &Path, st: &InstallState, listing: &mut Listing) -> Value {
    let rec = match record(prefix, st) {
        Ok(r) => r,
        Err(e) => return json!({"state": "damaged", "problem": format!("{e:#}")}),
    };
    let status = format!("`colinux-setup status --prefix {}`", prefix.display());
    match listing.get() {
        Err(e) => json!({"state": "unknown", "distribution": rec.name,
            "problem": format!("cannot ask WSL about the distribution {}: {e}", rec.name)}),
        Ok(all) => match all.iter().find(|d| d.name == rec.name) {
            None => json!({"state": "damaged", "distribution": rec.name,
                "problem": format!("its WSL distribution {} is not registered; run the install again to register it (see {status})", rec.name)}),
            Some(d)
                if d.disk
                    .as_deref()
                    .is_some_and(|x| !crate::wsl::same_disk(x, &rec.disk)) =>
            {
                json!({"state": "damaged", "distribution": rec.name,
                    "problem": format!("its WSL distribution {} is registered with another disk, not this machine's (see {status})", rec.name)})
            }
            Some(d) if d.state.eq_ignore_ascii_case("Running") => {
                json!({"state": "running", "distribution": rec.name, "engine": ENGINE})
            }
            Some(_) => json!({"state": "stopped", "distribution": rec.name}),
        },
    }
}
