//! `boot`: runs an installed machine in the foreground in its monitor (or the one
//! `--monitor` names), its console on the terminal and, line by line, in
//! `<prefix>/logs/colinux-setup-boot-*.log`.
//!
//! `boot --first-boot` runs the machine's pending first boot instead
//! ([`super::first_boot`]).
//!
//! Exit codes: 0 when the guest powers off normally (the monitor exits 0); 1602 when
//! Ctrl-C stopped it (UML: ctrl-alt-del through its management console, which the
//! busybox root turns into a clean poweroff; after 15 s, or for other engines, the
//! process group is killed); 1603 when `--timeout` passed (the process group is
//! killed), the kernel panicked, the monitor failed, or it cannot run on this host;
//! 1618 when an install, uninstall or another boot holds the machine's lock.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::anyhow;

use crate::exit::{self, Outcome};
use crate::monitor::probe::{self, Accel, Engine, HostProber, Kernels};
use crate::monitor::{self, BootOptions, RunOptions};
use crate::profile::Monitor;
use crate::state::{InstallState, Lock, LockError, RunLog};

/// How long a KVM guest may print nothing after the firmware before it counts as hung
/// and the machine is started again without KVM.
const KVM_STALL: Duration = Duration::from_secs(20);

/// The installed machine's config.txt, read as untrusted input (bounded, text only)
/// and parsed; one with errors is refused with the command that lists them. `boot` and
/// the background `start` run a machine from it.
pub(crate) fn machine_config(config_path: &Path) -> anyhow::Result<config_txt::Parsed> {
    let text = crate::cmd::config::read_config(config_path)
        .map_err(|e| e.context("re-install the machine"))?;
    let parsed = config_txt::parse(&text, &config_path.display().to_string());
    if parsed.has_errors() {
        return Err(anyhow!(
            "{} has errors; run `colinux-setup config check {}`",
            config_path.display(),
            config_path.display()
        ));
    }
    Ok(parsed)
}

/// Runs `boot`.
pub fn run(
    prefix: &Path,
    monitor_arg: Option<&str>,
    timeout: Option<u64>,
    first_boot: bool,
    interrupt: &AtomicBool,
) -> Outcome {
    let monitor = match monitor_arg.map(|m| (m, Monitor::parse(m))) {
        Some((m, None)) => {
            return Outcome::Usage(anyhow!("--monitor {m}: use colinux, uml, qemu or wsl"));
        }
        Some((_, Some(m))) => Some(m),
        None => None,
    };
    let state = match InstallState::read(prefix) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Outcome::Failed(anyhow!(
                "no machine is installed in {}; install one with `colinux-setup install --unattended --prefix {}`, or give --prefix",
                prefix.display(),
                prefix.display()
            ));
        }
        Err(e) => return Outcome::Failed(e),
    };
    if first_boot {
        return super::first_boot::run(prefix, interrupt);
    }
    let installed = state.monitor;
    // The TAP network was free at install; VPNs and other adapters come and go.
    if let Err(e) = crate::cmd::tap::boot_check(prefix, &state) {
        return Outcome::Failed(e.context("the machine's network is not ready"));
    }
    let monitor = monitor.unwrap_or(installed);
    if monitor == Monitor::Wsl || installed == Monitor::Wsl {
        return wsl_shell(prefix, &state, monitor);
    }
    let mut log = RunLog::start("boot", None);
    let log_path = log.settle(prefix);
    exit::set_trailer(format!(
        "colinux-setup: the log of this run is {}",
        log_path.display()
    ));
    let config_path = prefix.join("config.txt");
    let mut parsed = match machine_config(&config_path) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e),
    };
    let lock = match Lock::acquire(prefix) {
        Ok(l) => l,
        Err(e @ LockError::Busy(_)) => return Outcome::Busy(anyhow!(e)),
        Err(e) => return Outcome::Failed(anyhow!(e)),
    };
    // A killed `boot --first-boot` left half-written images: they are put back first.
    for d in crate::apply::roll_back_killed_first_boot(prefix, &mut log) {
        eprintln!("colinux-setup: an interrupted first boot was rolled back: {d}");
    }
    let run_dir = match tempfile::Builder::new()
        .prefix("colinux-setup-run-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            return Outcome::Failed(
                anyhow!(e).context("creating a run folder in the temporary folder"),
            );
        }
    };
    // The monitor is probed once now: what ran at install may not run today (another
    // host, a new kernel, nested virtualisation switched off).
    let kernels = Kernels::of_config(&parsed.config, &config_path);
    let choice = match probe::for_boot(monitor, state.accel, &kernels, &HostProber) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Failed(anyhow!(e).context(if monitor == installed {
                "the machine cannot be started here".to_owned()
            } else {
                format!(
                    "the machine cannot be started in the {} monitor; nothing was changed",
                    monitor.as_str()
                )
            }));
        }
    };
    let mut engine = choice.engine();
    log.line(&format!("monitor: {} ({})", engine.title(), choice.why));
    for v in &choice.verdicts {
        log.line(&format!("probe {}", v.line()));
    }
    // The console reads our standard input, a terminal or not (a pipe can drive the guest).
    let interactive = true;
    let mut opts = BootOptions {
        interactive,
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
    if monitor != installed {
        // Whether it can run there at all is known before anything is changed.
        if let Err(e) = monitor::command_line(monitor, &parsed.config, &opts)
            .and_then(|l| monitor::check_runnable(monitor, &l))
        {
            return Outcome::Failed(anyhow!(e).context(format!(
                "the machine cannot be started in the {} monitor; nothing was changed",
                monitor.as_str()
            )));
        }
        // The devices differ (/dev/ubda, /dev/vda, /dev/cobd0): root's /etc/fstab and
        // config.txt are rewritten for the new monitor, which the machine then keeps.
        eprintln!(
            "colinux-setup: switching this machine from the {} monitor to {}: /etc/fstab in its root image and config.txt now name {} devices",
            installed.as_str(),
            monitor.as_str(),
            monitor.device(0)
        );
        if let Err(e) = crate::rebuild::switch_monitor(prefix, monitor, &mut log, interrupt) {
            return Outcome::Failed(e.context(format!(
                "switching the machine in {} to the {} monitor; it is as it was",
                prefix.display(),
                monitor.as_str()
            )));
        }
        match std::fs::read(&config_path) {
            Ok(t) => parsed = config_txt::parse(&t, &config_path.display().to_string()),
            Err(e) => {
                return Outcome::Failed(
                    anyhow!(e).context(format!("reading {}", config_path.display())),
                );
            }
        }
    }
    let launch = match monitor::command_line(monitor, &parsed.config, &opts)
        .and_then(|l| monitor::check_runnable(monitor, &l).map(|()| l))
    {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(anyhow!(e).context("the machine cannot be started")),
    };
    log.line(&format!("command line: {}", launch.display()));
    let run = |launch: &monitor::Launch, engine: Engine, log: &mut RunLog| {
        monitor::run(
            launch,
            &RunOptions {
                timeout: timeout.map(Duration::from_secs),
                interrupt,
                echo: true,
                stdin: true,
                clean_stop: true,
                stall_after: (engine == Engine::Qemu(Accel::Kvm)).then_some(KVM_STALL),
                stop_grace: monitor::STOP_GRACE,
                console_in: None,
                console_out: None,
            },
            &mut |line| log.line(&format!("console: {line}")),
        )
    };
    let mut result = run(&launch, engine, &mut log);
    if matches!(&result, Ok(r) if r.stalled) {
        eprintln!(
            "\ncolinux-setup: the KVM guest printed nothing after the firmware within {} s: KVM guests hang on \
             this host; starting it again without KVM (QEMU's own emulation, about ten times slower)",
            KVM_STALL.as_secs()
        );
        log.line("KVM guest stalled after the firmware; booting again with TCG");
        engine = Engine::Qemu(Accel::Tcg);
        opts.accel = Accel::Tcg;
        result = monitor::command_line(monitor, &parsed.config, &opts)
            .and_then(|l| run(&l, engine, &mut log));
    }
    drop(lock);
    let r = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(anyhow!(e)),
    };
    log.line(&format!(
        "ended after {:.1} s: {}, timed out {}, interrupted {}, panic {}",
        r.elapsed.as_secs_f64(),
        monitor::exit_words(r.exit_code),
        r.timed_out,
        r.interrupted,
        r.panicked
    ));
    if r.interrupted {
        return Outcome::Cancelled(anyhow!(
            "stopped by {} after {:.0} s",
            crate::progress::stop_reason(),
            r.elapsed.as_secs_f64()
        ));
    }
    if r.timed_out {
        return Outcome::Failed(anyhow!(
            "--timeout {} s passed; the guest was stopped (its process group killed: its journals are replayed at the next boot); the last console lines:\n{}",
            timeout.unwrap_or(0),
            r.tail_text(10)
        ));
    }
    if r.panicked {
        return Outcome::Failed(anyhow!(
            "the guest kernel panicked ({}); the last console lines:\n{}",
            r.panic_line.as_deref().unwrap_or("").trim(),
            r.tail_text(15)
        ));
    }
    match r.exit_code {
        Some(0) => Outcome::Done,
        code => {
            let meaning = match (monitor, code) {
                (Monitor::Colinux, Some(c)) => monitor::colinux::exit_meaning(c),
                _ => "the monitor failed",
            };
            Outcome::Failed(anyhow!(
                "{meaning} ({}); the last console lines:\n{}",
                monitor::exit_words(code),
                r.tail_text(15)
            ))
        }
    }
}

/// `boot` of a wsl machine: its distribution's shell (`wsl -d NAME`) on this terminal,
/// under the machine's lock; the shell's exit status decides (0: done).
fn wsl_shell(prefix: &Path, state: &InstallState, monitor: Monitor) -> Outcome {
    if monitor != state.monitor {
        return Outcome::Failed(anyhow!(
            "the machine in {} is installed for {}, and WSL runs only its own distributions: a wsl machine boots with --monitor wsl, and another machine cannot boot in WSL (install it with --monitor wsl)",
            prefix.display(),
            state.monitor.as_str()
        ));
    }
    let rec = match crate::wsl::step::record(state) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Outcome::Failed(anyhow!(
                "install-state.json of {} records no WSL distribution; run the install again",
                prefix.display()
            ));
        }
        Err(e) => return Outcome::Failed(e),
    };
    let _lock = match Lock::acquire(prefix) {
        Ok(l) => l,
        Err(e @ LockError::Busy(_)) => return Outcome::Busy(anyhow!(e)),
        Err(e) => return Outcome::Failed(anyhow!(e)),
    };
    let result = crate::wsl::host_for().and_then(|mut h| {
        let now = h.list()?;
        match now.iter().find(|d| d.name == rec.name) {
            Some(_) => h.shell(&rec.name).map(Some),
            None => Ok(None),
        }
    });
    match result {
        Ok(Some(0)) => Outcome::Done,
        Ok(Some(code)) => Outcome::Failed(anyhow!(
            "the shell of the WSL distribution {} ended with exit status {code}",
            rec.name
        )),
        Ok(None) => Outcome::Failed(anyhow!(
            "the WSL distribution {} is not registered; run the install again (`colinux-setup install --prefix {}`)",
            rec.name,
            prefix.display()
        )),
        Err(e) => Outcome::Failed(anyhow!(e).context(format!(
            "cannot open the shell of the WSL distribution {}",
            rec.name
        ))),
    }
}
