//! A machine's life after the install: `list`, `start`, `stop`, `console`, `shell`.
//!
//! - `list [--json]`: every machine this user installed (the registry,
//!   [`crate::machines`]) with its monitor, state (running, stopped, missing, damaged),
//!   RAM, images and network. Exit 0; 1603 when the registry itself is damaged.
//! - `start [--prefix DIR] [--timeout SECS] [--json]`: runs the machine in the background and
//!   returns once its guest is up (its shell's prompt after the root's "is up" line),
//!   exit 0; 1618 when it runs already or another run holds its lock; 1603 when it
//!   cannot start or does not come up in time (then with the last console lines);
//!   1602 when Ctrl-C stopped it while it came up (the guest is stopped too).
//!   The background process is `colinux-setup run-machine` (hidden), in a session of
//!   its own: it holds the machine's lock as `boot` does, logs the console to
//!   `<prefix>/logs/colinux-setup-start-*.log`, serves the console on a socket
//!   ([`crate::monitor::background`]) and leaves a run record in the folder while it
//!   lives.
//! - `stop [--prefix DIR] [--timeout SECS] [--json]`: a clean poweroff (ctrl-alt-del through
//!   UML's management console or QEMU's monitor, as `boot` does on Ctrl-C), and after
//!   `--timeout` seconds the machine's processes are killed. Exit 0 when it stopped, and
//!   0 when it was not running (it says so: stopping a stopped machine is done).
//!   `start --json` and `stop --json` print their result as one JSON document, as
//!   `status --json` does; errors go to standard error with their exit code.
//! - `console [--prefix DIR]`: attaches the terminal to the running guest's console;
//!   Ctrl-] detaches. Exit 0; 1603 when the machine is not running.
//! - `shell [--prefix DIR] [--timeout SECS] [-- COMMAND...]`: runs one command in the
//!   guest's console shell and exits with its status, its output on standard output
//!   (as ssh does); without a command, the console. 1603 when the machine is not
//!   running or the command did not finish in time.
//!
//! A machine installed for the wsl monitor is its WSL distribution: `start`, `stop`,
//! `console`, `shell` and its `list` state go through WSL ([`wsl`]), with the same exit
//! codes and words.
//!
//! # Platform specific behavior
//!
//! The background machinery is Unix's (sessions, process groups, Unix sockets, Linux's
//! /proc for the run record); on Windows these commands say they are not supported yet,
//! except for a wsl machine, whose life is WSL's on every host.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::anyhow;
use serde_json::{Value, json};

use crate::exit::Outcome;
use crate::machines;
use crate::profile::Monitor;
use crate::state::InstallState;

mod wsl;

/// `start`'s default wait for the guest (QEMU without KVM takes about ten times UML's
/// few seconds).
pub const START_TIMEOUT: u64 = 300;
/// `stop`'s default wait for the clean poweroff.
pub const STOP_TIMEOUT: u64 = 60;
/// `shell`'s default wait for a command.
pub const SHELL_TIMEOUT: u64 = 600;

/// The line the background process prints when the guest is up.
#[cfg_attr(not(unix), allow(dead_code))]
const READY: &str = "colinux-setup: ready";
/// The prefix of console lines it passes to `start` while the guest comes up.
#[cfg_attr(not(unix), allow(dead_code))]
const CONSOLE: &str = "console: ";

/// Runs `list`.
pub fn list(json_out: bool) -> Outcome {
    let reg = match machines::registry_path().and_then(|p| machines::read(&p).map(|r| (p, r))) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(anyhow!(e)),
    };
    let (path, reg) = reg;
    let mut listing = wsl::Listing::default();
    let all: Vec<Value> = reg
        .machines
        .iter()
        .map(|e| describe(&e.prefix, &mut listing))
        .collect();
    if json_out {
        crate::out::outln!("{}", json!({"registry": path, "machines": all}));
        return Outcome::Done;
    }
    if all.is_empty() {
        crate::out::outln!(
            "no machines installed (install one with `colinux-setup install`; the list is {})",
            path.display()
        );
        return Outcome::Done;
    }
    crate::out::outln!(
        "{:<8} {:<9} {:<8} {:>7}  {:<28} {:<24} FOLDER",
        "NAME",
        "MONITOR",
        "STATE",
        "RAM",
        "IMAGES",
        "NETWORK"
    );
    for m in &all {
        let s = |k: &str| m[k].as_str().unwrap_or("-").to_owned();
        let images: Vec<String> = m["images"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["file"].as_str().map(str::to_owned))
            .collect();
        let network: Vec<String> = m["network"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["text"].as_str().map(str::to_owned))
            .collect();
        crate::out::outln!(
            "{:<8} {:<9} {:<8} {:>7}  {:<28} {:<24} {}",
            s("name"),
            s("monitor"),
            s("state"),
            m["ram_mb"]
                .as_u64()
                .map_or("-".to_owned(), |r| format!("{r} MB")),
            if images.is_empty() {
                "-".to_owned()
            } else {
                images.join(",")
            },
            if network.is_empty() {
                "none".to_owned()
            } else {
                network.join(",")
            },
            s("prefix"),
        );
        if let Some(why) = m["problem"].as_str() {
            crate::out::outln!("         {why}");
        }
    }
    Outcome::Done
}

/// One machine as `list` shows it (a wsl machine's state as WSL lists its distribution).
fn describe(prefix: &Path, listing: &mut wsl::Listing) -> Value {
    let st = match InstallState::read(prefix) {
        Ok(Some(st)) => st,
        Ok(None) => {
            return json!({"prefix": prefix, "state": "missing",
                "problem": format!("no machine is installed in {} any more; `colinux-setup uninstall --prefix {}` takes it off the list", prefix.display(), prefix.display())});
        }
        Err(e) => {
            return json!({"prefix": prefix, "state": "damaged", "problem": format!("{e:#}")});
        }
    };
    let run = machines::running(prefix);
    let config = prefix.join("config.txt");
    let parsed = crate::cmd::config::read_config(&config)
        .ok()
        .map(|b| config_txt::parse(&b, &config.display().to_string()));
    let ram_mb = parsed
        .as_ref()
        .and_then(|p| p.config.mem)
        .or_else(|| st.answers.get("RAMMB").and_then(|r| r.parse().ok()));
    let mut network = Vec::new();
    for (n, nic) in parsed.iter().flat_map(|p| p.config.eth.iter()) {
        network.push(match nic {
            config_txt::Nic::Slirp { redirs, .. } => {
                let r = redirs.as_str();
                json!({"eth": n, "kind": "slirp", "redirections": r,
                    "text": if r.is_empty() { "slirp".to_owned() } else { format!("slirp {r}") }})
            }
            config_txt::Nic::Tuntap { name, .. } => {
                let guest = crate::tap::record(&st)
                    .ok()
                    .flatten()
                    .and_then(|t| t.guest_ip);
                json!({"eth": n, "kind": "tap", "name": name, "guest_ip": guest,
                    "text": match &guest { Some(ip) => format!("tap {name} {ip}"), None => format!("tap {name}") }})
            }
            config_txt::Nic::PcapBridge { name, .. } | config_txt::Nic::NdisBridge { name, .. } => {
                json!({"eth": n, "kind": "bridge", "name": name, "text": format!("bridge {name}")})
            }
        });
    }
    let images: Vec<Value> = st
        .files
        .iter()
        .filter(|f| f.role.is_image())
        .map(|f| json!({"file": f.file, "role": f.role, "mb": f.bytes >> 20}))
        .collect();
    let mut v = json!({
        "prefix": prefix,
        "name": st.answers.get("HOSTNAME").cloned().unwrap_or_else(|| "colinux".to_owned()),
        "profile": st.profile,
        "monitor": st.monitor,
        "state": if run.is_some() { "running" } else { "stopped" },
        "pid": run.as_ref().map(|r| r.pid),
        "engine": run.as_ref().map(|r| r.engine.clone()),
        "started_at": run.as_ref().map(|r| r.started_at),
        "log": run.as_ref().map(|r| r.log.clone()),
        "ram_mb": ram_mb,
        "images": images,
        "network": network,
        "first_boot": st.first_boot,
    });
    if st.monitor == Monitor::Wsl {
        // No background process: the state is the distribution's, as WSL lists it;
        // its RAM and network are WSL's, not config.txt's.
        let w = wsl::list_state(prefix, &st, listing);
        v["state"] = w["state"].clone();
        v["engine"] = w.get("engine").cloned().unwrap_or(Value::Null);
        v["distribution"] = w.get("distribution").cloned().unwrap_or(Value::Null);
        v["ram_mb"] = Value::Null;
        v["network"] = json!([{"kind": "wsl", "text": "WSL's own"}]);
        if let Some(p) = w.get("problem") {
            v["problem"] = p.clone();
        }
    }
    v
}

/// The text of a machine that is not running.
fn not_running(prefix: &Path, what: &str) -> anyhow::Error {
    anyhow!(
        "the machine in {} is not running; start it with `colinux-setup start --prefix {}`, then {what}",
        prefix.display(),
        prefix.display()
    )
}

/// The machine installed in `prefix`, or the error that says there is none.
fn installed(prefix: &Path) -> Result<InstallState, anyhow::Error> {
    match InstallState::read(prefix) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(anyhow!(
            "no machine is installed in {}; install one with `colinux-setup install --unattended --prefix {}`, or give --prefix",
            prefix.display(),
            prefix.display()
        )),
        Err(e) => Err(e),
    }
}

/// The machine in `prefix` when it is installed for the wsl monitor, whose life is
/// WSL's on every host; any other (or a state that cannot be read, which the
/// platform's commands report) is `None`.
fn wsl_machine(prefix: &Path) -> Option<InstallState> {
    InstallState::read(prefix)
        .ok()
        .flatten()
        .filter(|s| s.monitor == Monitor::Wsl)
}

/// Runs `start`.
pub fn start(prefix: &Path, timeout: u64, json_out: bool, interrupt: &AtomicBool) -> Outcome {
    match wsl_machine(prefix) {
        Some(st) => wsl::start(prefix, &st, timeout, json_out, interrupt),
        None => platform::start(prefix, timeout, json_out, interrupt),
    }
}

/// Runs `stop`.
pub fn stop(prefix: &Path, timeout: u64, json_out: bool, interrupt: &AtomicBool) -> Outcome {
    match wsl_machine(prefix) {
        Some(st) => wsl::stop(prefix, &st, timeout, json_out, interrupt),
        None => platform::stop(prefix, timeout, json_out),
    }
}

/// Runs `console`.
pub fn console(prefix: &Path) -> Outcome {
    match wsl_machine(prefix) {
        Some(st) => wsl::console(prefix, &st),
        None => platform::console(prefix),
    }
}

/// Runs `shell`.
pub fn shell(prefix: &Path, command: &[String], timeout: u64, interrupt: &AtomicBool) -> Outcome {
    match wsl_machine(prefix) {
        Some(st) => wsl::shell(prefix, &st, command, timeout, interrupt),
        None => platform::shell(prefix, command, timeout),
    }
}

#[cfg(unix)]
use unix as platform;
#[cfg(unix)]
pub use unix::run_machine;

#[cfg(not(unix))]
use other as platform;
#[cfg(not(unix))]
pub use other::run_machine;

/// Hosts without the background machinery: the commands say so (after saying whether a
/// machine is installed at all).
#[cfg(not(unix))]
mod other {
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    use anyhow::anyhow;

    use super::installed;
    use crate::exit::Outcome;

    fn unsupported(prefix: &Path, what: &str) -> Outcome {
        let st = match installed(prefix) {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(e),
        };
        Outcome::Failed(anyhow!(
            "`colinux-setup {what}` of a machine for the {} monitor is not supported on this host yet (only of a wsl machine); run the machine in {} with `colinux-setup boot --prefix {}`, or as a service (`colinux-setup service install`)",
            st.monitor.as_str(),
            prefix.display(),
            prefix.display()
        ))
    }

    pub(super) fn start(prefix: &Path, _timeout: u64, _json: bool, _: &AtomicBool) -> Outcome {
        unsupported(prefix, "start")
    }

    pub(super) fn stop(prefix: &Path, _timeout: u64, _json: bool) -> Outcome {
        unsupported(prefix, "stop")
    }

    pub(super) fn console(prefix: &Path) -> Outcome {
        unsupported(prefix, "console")
    }

    pub(super) fn shell(prefix: &Path, _command: &[String], _timeout: u64) -> Outcome {
        unsupported(prefix, "shell")
    }

    /// The background process.
    pub fn run_machine(prefix: &Path, _interrupt: &AtomicBool) -> Outcome {
        unsupported(prefix, "start")
    }
}

#[cfg(unix)]
mod unix {
    use std::io::{BufRead as _, Write as _};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::{Duration, Instant};

    use anyhow::anyhow;

    use super::{CONSOLE, READY, installed, not_running};
    use crate::exit::Outcome;
    use crate::machines::{self, RunRecord};
    use crate::monitor::background::{self, Console};
    use crate::monitor::probe::{self, Accel, HostProber, Kernels};
    use crate::monitor::{self, BootOptions, RunOptions};
    use crate::profile::Monitor;
    use crate::state::{Lock, LockError, RunLog};

    /// How long the background process gives the guest to power off after `stop` asked
    /// (`stop --timeout` kills it sooner); a bound for a stop nobody waits for.
    const BACKGROUND_GRACE: Duration = Duration::from_secs(600);

    /// Runs `start`.
    pub fn start(prefix: &Path, timeout: u64, json_out: bool, interrupt: &AtomicBool) -> Outcome {
        if let Err(e) = installed(prefix) {
            return Outcome::Failed(e);
        }
        // A machine installed before the list existed joins it when it is started; a
        // list that cannot be written costs the listing, not the start.
        if let Err(e) = machines::register(prefix) {
            eprintln!("colinux-setup: warning: {e}");
        }
        if let Some(r) = machines::running(prefix) {
            return Outcome::Busy(anyhow!(
                "the machine in {} is running already (background process {}, since {}); `colinux-setup stop --prefix {}` stops it",
                prefix.display(),
                r.pid,
                crate::state::stamp(r.started_at),
                prefix.display()
            ));
        }
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return Outcome::Failed(anyhow!(e).context("finding colinux-setup itself")),
        };
        let (reader, writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(anyhow!(e).context("creating a pipe")),
        };
        let err_writer = match writer.try_clone() {
            Ok(w) => w,
            Err(e) => return Outcome::Failed(anyhow!(e).context("creating a pipe")),
        };
        let mut cmd = Command::new(exe);
        cmd.arg(machines::RUN_COMMAND)
            .arg("--prefix")
            .arg(prefix)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(err_writer);
        new_session(&mut cmd);
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed(anyhow!(e).context("starting the background process"));
            }
        };
        drop(cmd);
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut tail: Vec<String> = Vec::new();
        let mut said: Vec<String> = Vec::new();
        let mut up_at: Option<Instant> = None;
        let deadline = Duration::from_secs(timeout);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l == READY => break,
                Ok(l) => {
                    if let Some(c) = l.strip_prefix(CONSOLE) {
                        if c.starts_with("colinux-setup: guest ") && c.ends_with(" is up") {
                            up_at.get_or_insert_with(Instant::now);
                        }
                        tail.push(c.to_owned());
                        if tail.len() > 15 {
                            tail.remove(0);
                        }
                    } else {
                        said.push(l);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // The background process ended (or closed its output) before the
                    // guest was up: its own words say why.
                    let code = child.wait().ok().and_then(|s| s.code());
                    return ended_early(prefix, code, &said, &tail);
                }
            }
            // A root without a prompt after its "is up" line: up is up.
            if up_at.is_some_and(|t| t.elapsed() > Duration::from_secs(10)) {
                break;
            }
            if interrupt.load(Ordering::SeqCst) {
                let _ = child.kill();
                let _ = child.wait();
                machines::remove_run(prefix);
                return Outcome::Cancelled(anyhow!(
                    "stopped by {} while the guest came up; the machine in {} is not running",
                    crate::progress::stop_reason(),
                    prefix.display()
                ));
            }
            if started.elapsed() >= deadline {
                // Killing the background process kills the guest (its reaper) and frees
                // the lock.
                let _ = child.kill();
                let _ = child.wait();
                machines::remove_run(prefix);
                return Outcome::Failed(anyhow!(
                    "the guest did not come up within {timeout} s (--timeout); it was stopped. The last console lines:\n{}",
                    lines(&tail)
                ));
            }
        }
        // The background process lives on in its own session; its exit status is of no
        // one's concern (the kernel reaps it once this process ends).
        drop(child);
        let rec = machines::running(prefix);
        if json_out {
            crate::out::outln!(
                "{}",
                serde_json::json!({"prefix": prefix, "state": "running", "seconds": started.elapsed().as_secs_f64(),
                    "pid": rec.as_ref().map(|r| r.pid), "monitor": rec.as_ref().map(|r| r.monitor.clone()),
                    "engine": rec.as_ref().map(|r| r.engine.clone()), "log": rec.as_ref().map(|r| r.log.clone())})
            );
            return Outcome::Done;
        }
        crate::out::outln!(
            "started the machine in {} in the background ({}) in {:.1} s; `colinux-setup shell --prefix {}` runs commands in it, `colinux-setup console --prefix {}` attaches to its console, `colinux-setup stop --prefix {}` stops it",
            prefix.display(),
            rec.as_ref().map_or("", |r| r.engine.as_str()),
            started.elapsed().as_secs_f64(),
            prefix.display(),
            prefix.display(),
            prefix.display()
        );
        if let Some(r) = rec {
            crate::out::outln!("log: {}", r.log.display());
        }
        Outcome::Done
    }

    fn lines(tail: &[String]) -> String {
        tail.iter()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What `start` says when the background process ended before the guest was up.
    fn ended_early(prefix: &Path, code: Option<i32>, said: &[String], tail: &[String]) -> Outcome {
        // Its error lines, without its `error:` prefix (this run prints its own).
        let words = said
            .iter()
            .map(|l| {
                l.trim_start_matches("colinux-setup: error: ")
                    .trim_start_matches("colinux-setup: ")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let words = if words.is_empty() {
            "the background process ended without saying why".to_owned()
        } else {
            words
        };
        let busy = i32::from(crate::exit::ALREADY_RUNNING as u8);
        if code == Some(busy) {
            return Outcome::Busy(anyhow!("{words}"));
        }
        machines::remove_run(prefix);
        if tail.is_empty() {
            Outcome::Failed(anyhow!(
                "the machine in {} did not start: {words}",
                prefix.display()
            ))
        } else {
            Outcome::Failed(anyhow!(
                "the machine in {} did not start: {words}\nthe last console lines:\n{}",
                prefix.display(),
                lines(tail)
            ))
        }
    }

    /// Makes the background process the leader of a new session: no terminal, so
    /// neither Ctrl-C in the shell that ran `start` nor its logout reaches it.
    #[allow(unsafe_code)]
    fn new_session(cmd: &mut Command) {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: setsid is one system call through rustix,
        // which allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                Ok(())
            });
        }
    }

    /// What the background process tells `start`, until the guest is up; then nothing
    /// more (its output is then /dev/null, as `start` has ended).
    struct Report {
        ready: bool,
    }

    impl Report {
        fn line(&mut self, l: &str) {
            if !self.ready {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{l}");
                let _ = out.flush();
            }
        }

        fn ready(&mut self) {
            if self.ready {
                return;
            }
            self.line(READY);
            self.ready = true;
            // `start` ends now and closes the pipe: from here on anything written to
            // standard output or error goes nowhere instead of failing.
            if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                let _ = rustix::stdio::dup2_stdout(&null);
                let _ = rustix::stdio::dup2_stderr(&null);
            }
        }
    }

    /// Watches the raw console for the guest coming up: the root's rcS line
    /// (`colinux-setup: guest NAME is up`), then its shell's prompt (`/ # `), whose
    /// escapes (busybox's line editing asks for the cursor position, ESC [6n, right
    /// after it) do not count. Chunks may split either anywhere.
    #[derive(Default)]
    pub(super) struct UpWatch {
        seen: String,
        up: bool,
    }

    impl UpWatch {
        /// Takes the next console bytes; `true` once the prompt came after the line.
        pub(super) fn feed(&mut self, chunk: &[u8]) -> bool {
            self.seen.push_str(&String::from_utf8_lossy(chunk));
            if !self.up
                && let Some(at) = self.seen.find(" is up")
                && self
                    .seen
                    .get(..at)
                    .is_some_and(|s| s.contains("colinux-setup: guest "))
            {
                self.up = true;
                self.seen = self
                    .seen
                    .get(at + " is up".len()..)
                    .unwrap_or_default()
                    .to_owned();
            }
            let ready = self.up && {
                let text = monitor::clean_line(&self.seen);
                let t = text.trim_end_matches(' ');
                text.ends_with(' ') && (t.ends_with('#') || t.ends_with('$'))
            };
            // Only the end matters (the marker is far shorter than what is kept).
            if self.seen.len() > 512 {
                let cut = self.seen.len() - 256;
                let cut = (cut..self.seen.len())
                    .find(|i| self.seen.is_char_boundary(*i))
                    .unwrap_or(self.seen.len());
                self.seen.drain(..cut);
            }
            ready
        }
    }

    /// The background process (`colinux-setup run-machine --prefix DIR`): starts the
    /// machine as `boot` would, with its console on a socket, and waits for its end.
    pub fn run_machine(prefix: &Path, interrupt: &AtomicBool) -> Outcome {
        let state = match installed(prefix) {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(e),
        };
        let monitor = state.monitor;
        if let Err(e) = crate::cmd::tap::boot_check(prefix, &state) {
            return Outcome::Failed(e.context("the machine's network is not ready"));
        }
        let mut log = RunLog::start("start", None);
        let log_path = log.settle(prefix);
        let config_path = prefix.join("config.txt");
        let parsed = match crate::cmd::boot::machine_config(&config_path) {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(e),
        };
        let lock = match Lock::acquire(prefix) {
            Ok(l) => l,
            Err(e @ LockError::Busy(_)) => return Outcome::Busy(anyhow!(e)),
            Err(e) => return Outcome::Failed(anyhow!(e)),
        };
        for d in crate::apply::roll_back_killed_first_boot(prefix, &mut log) {
            log.line(&format!("an interrupted first boot was rolled back: {d}"));
        }
        // Private (0700): the console socket in it is a root shell in the guest.
        let run_dir = match tempfile::Builder::new()
            .prefix("colinux-setup-run-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
        {
            Ok(d) => d,
            Err(e) => {
                return Outcome::Failed(
                    anyhow!(e).context("creating a run folder in the temporary folder"),
                );
            }
        };
        let kernels = Kernels::of_config(&parsed.config, &config_path);
        let choice = match probe::for_boot(monitor, state.accel, &kernels, &HostProber) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed(anyhow!(e).context("the machine cannot be started here"));
            }
        };
        let engine = choice.engine();
        log.line(&format!("monitor: {} ({})", engine.title(), choice.why));
        let opts = BootOptions {
            // The console is the socket's: its input is read.
            interactive: true,
            extra_params: Vec::new(),
            run_dir: run_dir.path().to_owned(),
            id: format!("colinux-setup-{}", std::process::id()),
            config_path: config_path.clone(),
            accel: engine.accel().unwrap_or(Accel::Tcg),
            forward_host: state
                .answers
                .get("SLIRPHOST")
                .and_then(|h| h.parse().ok())
                .unwrap_or(crate::plan::SLIRP_HOST_DEFAULT),
            extra_shares: Vec::new(),
            extra_drives: Vec::new(),
        };
        let mut launch = match monitor::command_line(monitor, &parsed.config, &opts)
            .and_then(|l| monitor::check_runnable(monitor, &l).map(|()| l))
        {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(anyhow!(e).context("the machine cannot be started")),
        };
        if monitor == Monitor::Qemu {
            // QEMU's monitor on a socket of its own, for the clean stop; the serial
            // console alone is then on standard input and output.
            let sock = run_dir.path().join("qemu-monitor.sock");
            launch.args.extend([
                "-monitor".to_owned(),
                format!("unix:{},server=on,wait=off", sock.display()),
            ]);
            launch.qemu_monitor = Some(sock);
        }
        log.line(&format!("command line: {}", launch.display()));
        let (console_in, console_writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(anyhow!(e).context("creating the console pipe")),
        };
        let socket = run_dir.path().join("console.sock");
        let console = match Console::serve(&socket, console_writer) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed(
                    anyhow!(e).context(format!("serving the console on {}", socket.display())),
                );
            }
        };
        let Some(pid_start) = machines::start_time(std::process::id()) else {
            return Outcome::Failed(anyhow!(
                "cannot read this process's start time from /proc; the background start needs Linux's /proc"
            ));
        };
        let record = RunRecord {
            format: 1,
            pid: std::process::id(),
            pid_start,
            monitor: monitor.as_str().to_owned(),
            engine: engine.title().to_owned(),
            console: socket.clone(),
            log: log_path.clone(),
            started_at: crate::state::now_secs(),
        };
        if let Err(e) = machines::write_run(prefix, &record) {
            return Outcome::Failed(e);
        }
        // The guest is up once its root said so and its shell prompts: the tap sees
        // every byte, prompts without a newline included.
        let report = Arc::new(Mutex::new(Report { ready: false }));
        let tap = {
            let report = Arc::clone(&report);
            let inner = console.tap();
            let watch = Mutex::new(UpWatch::default());
            Arc::new(move |chunk: &[u8]| {
                inner(chunk);
                let up = watch.lock().is_ok_and(|mut w| w.feed(chunk));
                if up && let Ok(mut r) = report.lock() {
                    r.ready();
                }
            }) as monitor::ConsoleTap
        };
        let result = monitor::run(
            &launch,
            &RunOptions {
                timeout: None,
                interrupt,
                echo: false,
                stdin: false,
                clean_stop: true,
                stall_after: None,
                stop_grace: BACKGROUND_GRACE,
                console_in: Some(&console_in),
                console_out: Some(tap),
            },
            &mut |line| {
                log.line(&format!("console: {line}"));
                if let Ok(mut r) = report.lock() {
                    r.line(&format!("{CONSOLE}{line}"));
                }
            },
        );
        machines::remove_run(prefix);
        drop(lock);
        let r = match result {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(anyhow!(e)),
        };
        log.line(&format!(
            "ended after {:.1} s: {}, stop requested {}, panic {}",
            r.elapsed.as_secs_f64(),
            monitor::exit_words(r.exit_code),
            r.interrupted,
            r.panicked
        ));
        if r.panicked {
            return Outcome::Failed(anyhow!(
                "the guest kernel panicked ({})",
                r.panic_line.as_deref().unwrap_or("").trim()
            ));
        }
        match r.exit_code {
            Some(0) => Outcome::Done,
            code => Outcome::Failed(anyhow!(
                "the monitor ended ({}) before the guest was up",
                monitor::exit_words(code)
            )),
        }
    }

    /// Runs `stop`.
    pub fn stop(prefix: &Path, timeout: u64, json_out: bool) -> Outcome {
        let Some(rec) = machines::running(prefix) else {
            if let Err(e) = installed(prefix) {
                return Outcome::Failed(e);
            }
            machines::remove_run(prefix);
            if json_out {
                crate::out::outln!(
                    "{}",
                    serde_json::json!({"prefix": prefix, "state": "stopped", "was_running": false})
                );
                return Outcome::Done;
            }
            crate::out::outln!(
                "the machine in {} is not running; nothing to do",
                prefix.display()
            );
            return Outcome::Done;
        };
        let start = Instant::now();
        let Some(pid) = i32::try_from(rec.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return Outcome::Failed(anyhow!("the run record names no process"));
        };
        // SIGTERM: the background process asks the guest to power off (as `boot` does
        // on Ctrl-C) and waits for it.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let gone = |secs: u64| {
            let until = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < until {
                if !machines::is_alive(rec.pid, rec.pid_start, prefix) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            !machines::is_alive(rec.pid, rec.pid_start, prefix)
        };
        let clean = gone(timeout);
        if !clean {
            // Killing the background process kills the guest's whole process group (its
            // reaper, see monitor::reaper).
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            if !gone(10) {
                return Outcome::Failed(anyhow!(
                    "the background process {} of the machine in {} does not end; end it with `kill -9 {}`",
                    rec.pid,
                    prefix.display(),
                    rec.pid
                ));
            }
            machines::remove_run(prefix);
        }
        // The lock is free once every process of the guest has gone.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match Lock::acquire(prefix) {
                Ok(l) => {
                    drop(l);
                    break;
                }
                Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => {
                    return Outcome::Failed(
                        anyhow!(e)
                            .context("the machine stopped, but some process still holds its lock"),
                    );
                }
            }
        }
        if json_out {
            crate::out::outln!(
                "{}",
                serde_json::json!({"prefix": prefix, "state": "stopped", "was_running": true,
                    "clean_poweroff": clean, "seconds": start.elapsed().as_secs_f64()})
            );
            if !clean {
                eprintln!(
                    "colinux-setup: warning: the guest did not power off within {timeout} s (--timeout); it was killed"
                );
            }
        } else if clean {
            crate::out::outln!(
                "stopped the machine in {} ({:.1} s)",
                prefix.display(),
                start.elapsed().as_secs_f64()
            );
        } else {
            eprintln!(
                "colinux-setup: warning: the guest did not power off within {timeout} s (--timeout); it was killed: its filesystems' journals are replayed at the next boot"
            );
            crate::out::outln!("stopped the machine in {} (killed)", prefix.display());
        }
        Outcome::Done
    }

    /// The running machine's record, or the error that says it is not running.
    fn running(prefix: &Path, what: &str) -> Result<RunRecord, anyhow::Error> {
        installed(prefix)?;
        machines::running(prefix).ok_or_else(|| not_running(prefix, what))
    }

    /// Runs `console`.
    pub fn console(prefix: &Path) -> Outcome {
        let rec = match running(prefix, "attach to its console") {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        if rustix::termios::isatty(std::io::stdin()) {
            eprintln!(
                "colinux-setup: the console of the machine in {}; Ctrl-] detaches (the machine runs on)\r",
                prefix.display()
            );
        }
        match background::attach(&rec.console) {
            Ok(true) => {
                eprintln!("\r\ncolinux-setup: the machine stopped\r");
                Outcome::Done
            }
            Ok(false) => Outcome::Done,
            Err(e) => Outcome::Failed(anyhow!(e)),
        }
    }

    /// Runs `shell`.
    pub fn shell(prefix: &Path, command: &[String], timeout: u64) -> Outcome {
        if command.is_empty() {
            return console(prefix);
        }
        let rec = match running(prefix, "run commands in it") {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        let line = command.join(" ");
        if line.contains(['\n', '\r']) {
            return Outcome::Usage(anyhow!(
                "the command is typed on the guest's console as one line: it cannot hold a line break"
            ));
        }
        match background::run_command(&rec.console, &line, Duration::from_secs(timeout)) {
            Ok(r) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(r.output.as_bytes());
                let _ = out.flush();
                Outcome::GuestStatus(u8::try_from(r.status).unwrap_or(255))
            }
            Err(e) => Outcome::Failed(anyhow!(e)),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::unix::UpWatch;

    #[test]
    fn the_guest_is_up_at_the_prompt_after_its_line_however_the_console_is_cut() {
        // As UML's console gave it here: the line, then busybox's prompt and its
        // cursor-position query.
        let bytes: &[u8] = b"mounting...\r\ncolinux-setup: guest colinux is up\r\n/ # \x1b[6n";
        for cut in 1..bytes.len() {
            let mut w = UpWatch::default();
            let (a, b) = bytes.split_at(cut);
            let ready = w.feed(a) | w.feed(b);
            assert!(ready, "cut at {cut}");
        }
        // A prompt before the line, or a line without a prompt, is not up.
        let mut w = UpWatch::default();
        assert!(!w.feed(b"/ # "));
        assert!(!w.feed(b"colinux-setup: guest colinux is up\r\n"));
        assert!(!w.feed(b"echo hi\r\nhi\r\n"));
        assert!(w.feed(b"/ # "));
        // Long boots: what is kept stays bounded and the line is still found.
        let mut w = UpWatch::default();
        for _ in 0..1000 {
            assert!(!w.feed("[    0.1] kernel line é\r\n".as_bytes()));
        }
        assert!(!w.feed(b"colinux-setup: guest x is up\r\n"));
        assert!(w.feed(b"# "));
    }
}
