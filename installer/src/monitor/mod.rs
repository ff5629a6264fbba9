//! Monitors: one config.txt, three engines (see ../shared/design.md, "The monitor").
//!
//! [`command_line`] turns the config.txt model into the program and arguments of one
//! engine; [`run`] starts it in its own process group, streams its console (to the
//! terminal when asked, and line by line to a callback that logs it), enforces a
//! timeout, and stops the guest on Ctrl-C (or SIGTERM, SIGHUP): cleanly where the engine
//! allows it (UML: ctrl-alt-del through its management console, which the busybox
//! root's inittab turns into a poweroff), by killing the process group otherwise.
//!
//! A guest never outlives the run that started it: it is killed with it (a parent-death
//! signal), and it holds the machine's lock as long as it lives (it inherits the lock's
//! file), so a killed `boot` or install leaves neither a running guest nor a machine
//! that another run could take while the guest still writes to it.
//!
//! # Platform specific behavior
//!
//! The parent-death signal and the inherited lock are Unix's; on Windows the coLinux
//! daemon is its own service-like program and stops with its driver.

pub mod colinux;
pub mod probe;
pub mod probe_guest;
pub mod qemu;
pub mod reaper;
pub mod uml;

#[cfg(unix)]
pub mod background;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use config_txt::Config;

use crate::profile::Monitor;

/// Why a monitor cannot start a machine.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The engine is not installed or cannot run on this host.
    #[error("{0}")]
    NotRunnable(String),
    /// config.txt lacks something the engine needs, or holds something it cannot take.
    #[error("config.txt: {0}")]
    Config(String),
    /// Starting or watching the process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system error.
        source: std::io::Error,
    },
}

/// How a machine is started (everything but config.txt).
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// The console is the user's terminal (standard input is read); otherwise the guest
    /// gets no input.
    pub interactive: bool,
    /// Kernel parameters appended after config.txt's own.
    pub extra_params: Vec<String>,
    /// A private folder for the engine's run files (UML: `uml_dir`, `TMPDIR`).
    pub run_dir: PathBuf,
    /// The machine's name for the engine (UML `umid`).
    pub id: String,
    /// The config.txt file (coLinux reads it itself: `@FILE`).
    pub config_path: PathBuf,
    /// QEMU's accelerator.
    pub accel: probe::Accel,
    /// The host address slirp port forwards listen on (QEMU).
    pub forward_host: std::net::IpAddr,
    /// Read-only folders to share with the guest, by tag (QEMU virtfs; UML reads host
    /// paths through hostfs and needs nothing on the command line).
    pub extra_shares: Vec<(String, PathBuf)>,
    /// Read-only disk images attached after config.txt's block devices (QEMU: the first
    /// boot's distribution, since distribution kernels may lack 9p).
    pub extra_drives: Vec<PathBuf>,
}

#[cfg(test)]
impl BootOptions {
    /// What the command-line tests start from: a non-interactive run of machine `m1`
    /// with paths that need not exist, nothing extra.
    pub(crate) fn sample() -> BootOptions {
        BootOptions {
            interactive: false,
            extra_params: vec![],
            run_dir: PathBuf::from("/run/m"),
            id: "m1".into(),
            config_path: PathBuf::from("/nowhere/config.txt"),
            accel: probe::Accel::Tcg,
            forward_host: crate::plan::SLIRP_HOST_DEFAULT,
            extra_shares: vec![],
            extra_drives: vec![],
        }
    }
}

/// A program and its arguments, ready to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The engine's program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables to set.
    pub env: Vec<(String, PathBuf)>,
    /// UML's management console socket, for a clean stop.
    pub mconsole: Option<PathBuf>,
    /// QEMU's monitor socket (`-monitor unix:…`), for a clean stop; only a machine run
    /// in the background has one (in the foreground QEMU's monitor shares the terminal).
    pub qemu_monitor: Option<PathBuf>,
}

impl Launch {
    /// The command line as one shell-like line (for logs and messages).
    pub fn display(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.env {
            s.push_str(&format!("{k}={} ", v.display()));
        }
        s.push_str(&self.program.display().to_string());
        for a in &self.args {
            s.push(' ');
            if a.contains(' ') {
                s.push_str(&format!("'{a}'"));
            } else {
                s.push_str(a);
            }
        }
        s
    }
}

/// The command line of `monitor` for `config`.
pub fn command_line(
    monitor: Monitor,
    config: &Config,
    opts: &BootOptions,
) -> Result<Launch, MonitorError> {
    if monitor != Monitor::Qemu {
        raw_disks_only(monitor, config)?;
    }
    match monitor {
        Monitor::Uml => uml::command_line(config, opts),
        Monitor::Qemu => qemu::command_line(config, opts),
        Monitor::Colinux => colinux::command_line(config, opts),
        Monitor::Wsl => Err(MonitorError::Config(
            "a wsl machine runs through wsl.exe, not a monitor program: `colinux-setup boot` opens its shell".to_owned(),
        )),
    }
}

/// Refuses a VHDX disk (`cobdN=` named `.vhdx`, as `images build` names them) for an
/// engine that reads raw images only: User-mode Linux's ubd and the coLinux block device
/// would read the VHDX's own structures as the filesystem.
fn raw_disks_only(monitor: Monitor, config: &Config) -> Result<(), MonitorError> {
    let engine = match monitor {
        Monitor::Uml => "User-mode Linux",
        Monitor::Colinux => "coLinux",
        Monitor::Qemu | Monitor::Wsl => return Ok(()),
    };
    for (n, cobd) in &config.cobd {
        let path = Path::new(&cobd.path);
        if image_builder::DiskFormat::from_path(path) == image_builder::DiskFormat::Vhdx {
            let raw = path.with_extension("img");
            return Err(MonitorError::Config(format!(
                "cobd{n}={} is a VHDX disk, which {engine} cannot read (it reads raw \
                 images); boot it with --monitor qemu, or make a raw copy with \
                 `colinux-setup images build {} --from {} --fs FS --size SIZE` (its \
                 filesystem and size as `colinux-setup images inspect {}` shows them) and \
                 name that in cobd{n}=",
                cobd.path,
                raw.display(),
                cobd.path,
                cobd.path
            )));
        }
    }
    Ok(())
}

/// Finds `name` on PATH (or takes it as a path when it holds a `/`).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if name.contains('/') {
        return p.is_file().then(|| p.to_owned());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// Checks that `launch` can start here; the message says what to install or choose.
pub fn check_runnable(monitor: Monitor, launch: &Launch) -> Result<(), MonitorError> {
    if monitor == Monitor::Colinux {
        return colinux::check_runnable(launch);
    }
    let exists = if launch.program.components().count() > 1 {
        launch.program.is_file()
    } else {
        find_program(&launch.program.display().to_string()).is_some()
    };
    if !exists {
        let hint = match monitor {
            Monitor::Uml => "install User-mode Linux (Debian: apt-get install user-mode-linux)",
            Monitor::Qemu => "install QEMU (Debian: apt-get install qemu-system-x86)",
            Monitor::Colinux | Monitor::Wsl => "",
        };
        return Err(MonitorError::NotRunnable(format!(
            "the {} monitor's program {} is not installed; {hint}, or choose another monitor with --monitor",
            monitor.as_str(),
            launch.program.display()
        )));
    }
    Ok(())
}

/// Lines the guest prints that decide a run's outcome.
pub const PANIC_MARKER: &str = "Kernel panic";

/// How a run ended.
#[derive(Debug)]
pub struct RunResult {
    /// The engine's exit code (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// The timeout expired and the process group was killed.
    pub timed_out: bool,
    /// Ctrl-C stopped the guest.
    pub interrupted: bool,
    /// The guest kernel panicked (the run was stopped).
    pub panicked: bool,
    /// The guest printed nothing after the firmware within
    /// [`RunOptions::stall_after`]; the run was stopped.
    pub stalled: bool,
    /// The kernel's panic line, when it panicked.
    pub panic_line: Option<String>,
    /// The last console lines.
    pub tail: VecDeque<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl RunResult {
    /// The last console line that says something.
    pub fn last_line(&self) -> Option<&str> {
        self.tail
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
    }

    /// The last `n` console lines, one string.
    pub fn tail_text(&self, n: usize) -> String {
        let skip = self.tail.len().saturating_sub(n);
        self.tail
            .iter()
            .skip(skip)
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Watching a run.
pub struct RunOptions<'a> {
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// Ctrl-C.
    pub interrupt: &'a AtomicBool,
    /// Copy the console to standard output as it comes.
    pub echo: bool,
    /// Give the guest our standard input.
    pub stdin: bool,
    /// On Ctrl-C, ask the guest to power off (and wait up to 15 s) before killing it;
    /// otherwise kill at once (a first boot is rolled back anyway).
    pub clean_stop: bool,
    /// Stop the run when the guest has printed nothing but firmware lines after this
    /// long (see [`is_firmware_line`]): a KVM guest that hangs after the firmware.
    pub stall_after: Option<Duration>,
    /// How long a clean stop may take before the process group is killed.
    pub stop_grace: Duration,
    /// The guest's console input comes from this pipe (a machine in the background:
    /// whoever attaches writes into it), instead of [`RunOptions::stdin`]'s choice.
    pub console_in: Option<&'a std::io::PipeReader>,
    /// Every byte of the console as it comes, prompts without a newline included (a
    /// machine in the background: its attached consoles).
    pub console_out: Option<ConsoleTap>,
}

/// Where the raw console bytes of a run go besides its lines.
pub type ConsoleTap = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// How long `boot` and the first boot give a guest to power off after Ctrl-C.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// Asks the guest to power off the way its engine allows: ctrl-alt-del through UML's
/// management console or QEMU's monitor (the busybox root's inittab turns it into a
/// poweroff). `false` when the engine has no way (then it must be killed).
pub fn request_clean_stop(launch: &Launch) -> bool {
    launch.mconsole.as_deref().is_some_and(uml::ctrl_alt_del)
        || launch
            .qemu_monitor
            .as_deref()
            .is_some_and(qemu::ctrl_alt_del)
}

/// Lines printed before a guest's kernel runs: the PC firmware's on the serial console
/// (`SeaBIOS (version …)`, `iPXE (…)` and its `Press Ctrl-B to configure iPXE …`,
/// `Booting from ROM..`, `Probing EDD (edd=off to disable)... ok` from the kernel's
/// real-mode setup), QEMU's own warnings on its standard error (`qemu-system-x86_64:
/// warning: host doesn't support requested feature …`), blank lines. A guest whose
/// console shows only these has not reached its kernel.
pub fn is_firmware_line(line: &str) -> bool {
    let l = line.trim();
    l.is_empty()
        || [
            "SeaBIOS",
            "iPXE",
            "Booting from",
            "Probing EDD",
            "Press ESC",
            // iPXE's prompt (QEMU's default network card's boot ROM, SeaBIOS 1.16).
            "Press Ctrl-B",
            "Machine UUID",
            "qemu-system",
        ]
        .iter()
        .any(|p| l.starts_with(p))
}

/// A console line as text: ANSI escape sequences (`ESC [ … letter`, `ESC ] … BEL`,
/// two-byte `ESC c`) and other control characters removed, tabs kept. The guest's
/// firmware resets and clears the terminal (`ESC c ESC [?7l ESC [2J`); such bytes must
/// reach neither a log nor a progress line.
pub fn clean_line(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    // CSI: parameters and intermediates, then one final byte @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ESC \.
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(c) if ('('..='/').contains(&c) => {
                    // Character set selection: one more byte.
                    chars.next();
                }
                _ => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Starts `launch` in its own process group and waits for it; `on_line` gets every
/// console line (to log it, show progress, or look for markers).
pub fn run(
    launch: &Launch,
    opts: &RunOptions<'_>,
    on_line: &mut dyn FnMut(&str),
) -> Result<RunResult, MonitorError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| MonitorError::Io { what, source }
    };
    let (reader, writer) = std::io::pipe().map_err(io("creating the console pipe"))?;
    let stdin = match opts.console_in {
        Some(p) => Stdio::from(
            p.try_clone()
                .map_err(io("duplicating the console's input pipe"))?,
        ),
        None if opts.stdin => Stdio::inherit(),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(&launch.program);
    cmd.args(&launch.args)
        .stdin(stdin)
        .stdout(
            writer
                .try_clone()
                .map_err(io("duplicating the console pipe"))?,
        )
        .stderr(writer);
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
        die_with_parent(&mut cmd);
    }
    // The guest holds the machine's lock too: while any of its processes lives, no other
    // run can take the machine, even after this process was killed.
    let locks = crate::state::held_locks();
    #[cfg(unix)]
    for l in &locks {
        rustix::io::fcntl_setfd(l, rustix::io::FdFlags::empty())
            .map_err(|e| io("passing the machine's lock to the guest")(e.into()))?;
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(io(&format!("starting {}", launch.program.display())))?;
    drop(cmd);
    drop(locks);
    // The guest's process group dies with this run, however it ends. Without a reaper
    // (it could not be started) the monitor still dies with us; its helpers might not.
    let reaper = reaper::Reaper::watch(child.id()).ok();
    let (tx, rx) = mpsc::channel::<String>();
    let echo = opts.echo;
    let tap = opts.console_out.clone();
    let reader_thread = std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = [0u8; 4096];
        let mut line = Vec::new();
        let mut out = std::io::stdout();
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let chunk = buf.get(..n).unwrap_or_default();
            if echo {
                let _ = out.write_all(chunk);
                let _ = out.flush();
            }
            if let Some(tap) = &tap {
                tap(chunk);
            }
            for &b in chunk {
                if b == b'\n' {
                    let s = clean_line(&String::from_utf8_lossy(&line));
                    line.clear();
                    if tx.send(s).is_err() {
                        return;
                    }
                } else {
                    line.push(b);
                }
            }
        }
        if !line.is_empty() {
            let _ = tx.send(clean_line(&String::from_utf8_lossy(&line)));
        }
    });
    let mut tail = VecDeque::new();
    let mut timed_out = false;
    let mut interrupted = false;
    let mut panicked = false;
    let mut stalled = false;
    let mut alive = false;
    let mut panic_line: Option<String> = None;
    let mut stop_requested: Option<Instant> = None;
    let mut take =
        |l: String, tail: &mut VecDeque<String>, panicked: &mut bool, alive: &mut bool| {
            *alive |= !is_firmware_line(&l);
            if l.contains(PANIC_MARKER) && !*panicked {
                *panicked = true;
                panic_line = Some(l.clone());
            }
            on_line(&l);
            tail.push_back(l);
            if tail.len() > 40 {
                tail.pop_front();
            }
        };
    let status = loop {
        while let Ok(l) = rx.try_recv() {
            take(l, &mut tail, &mut panicked, &mut alive);
        }
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => return Err(io("waiting for the monitor")(e)),
        }
        let over = opts.timeout.is_some_and(|t| start.elapsed() >= t);
        let stop_overdue = stop_requested.is_some_and(|t| t.elapsed() >= opts.stop_grace);
        let silent = !alive && opts.stall_after.is_some_and(|t| start.elapsed() >= t);
        if over || stop_overdue || silent || (panicked && stop_requested.is_none()) {
            timed_out |= over;
            stalled |= silent && !over;
            kill_group(&child);
            break child.wait().ok();
        }
        if opts.interrupt.load(Ordering::SeqCst) && stop_requested.is_none() {
            interrupted = true;
            stop_requested = Some(Instant::now());
            // A clean stop where the engine has a way; else kill.
            if !opts.clean_stop || !request_clean_stop(launch) {
                kill_group(&child);
                break child.wait().ok();
            }
        }
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(20)) {
            take(l, &mut tail, &mut panicked, &mut alive);
        }
    };
    // Helpers of the engine may hold the pipe a moment longer; drain what is there.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => take(l, &mut tail, &mut panicked, &mut alive),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if reader_thread.is_finished() {
                    break;
                }
            }
        }
    }
    // Whatever of the guest is left once its monitor ended goes with it; then the
    // reaper can go without killing anything.
    kill_group(&child);
    if let Some(r) = reaper {
        r.release();
    }
    Ok(RunResult {
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        interrupted,
        panicked,
        stalled,
        panic_line,
        tail,
        elapsed: start.elapsed(),
    })
}

/// Makes the monitor die with this process: the kernel sends it SIGKILL when the thread
/// that started it ends (`PR_SET_PDEATHSIG`), so a guest never outlives the run that
/// owns the machine, however that run ends (SIGKILL included). The monitor's own
/// children are the [`reaper`]'s.
#[cfg(unix)]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes two system calls (prctl, getppid)
    // through rustix, which allocate nothing and take no lock, and builds its error from
    // an errno without allocating.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // The parent may have died before the prctl: then nothing would ever come.
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

/// How a monitor process ended, in words: `exit 3`, or `killed by a signal`.
pub fn exit_words(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".to_owned(),
    }
}

/// Kills the child's whole process group (the engine and its helpers).
fn kill_group(child: &std::process::Child) {
    #[cfg(unix)]
    {
        let pgid = rustix::process::Pid::from_child(child);
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    {
        let _ = child;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_that_read_raw_images_only_refuse_a_vhdx_disk_and_say_what_to_do() {
        let c = "kernel=/m/vmlinux\ncobd0=/m/root.img\ncobd1=/m/home.vhdx\n\
                 root=/dev/ubda\n";
        let parsed = config_txt::parse(c.as_bytes(), "config.txt");
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        for (monitor, engine) in [
            (Monitor::Uml, "User-mode Linux"),
            (Monitor::Colinux, "coLinux"),
        ] {
            let e = command_line(monitor, &parsed.config, &BootOptions::sample())
                .expect_err("a VHDX disk is refused");
            let shown = e.to_string();
            for needle in [
                "cobd1=/m/home.vhdx is a VHDX disk",
                engine,
                "--monitor qemu",
                "colinux-setup images build /m/home.img --from /m/home.vhdx --fs FS --size SIZE",
                "images inspect /m/home.vhdx",
            ] {
                assert!(shown.contains(needle), "`{needle}` not in: {shown}");
            }
        }
        assert!(command_line(Monitor::Qemu, &parsed.config, &BootOptions::sample()).is_ok());
    }

    #[test]
    fn console_lines_lose_escape_sequences_and_control_bytes_but_keep_text() {
        // What QEMU's firmware prints before its banner: reset, no wrap, clear screen.
        assert_eq!(
            clean_line("\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS (version 1.16.2)\r"),
            "SeaBIOS (version 1.16.2)"
        );
        assert_eq!(
            clean_line("\u{1b}]0;title\u{7}a\tb\u{1b}(Bc"),
            "a\tbc",
            "OSC, a tab kept, a charset selection"
        );
        assert_eq!(
            clean_line("[    0.000000] Linux version 6.1"),
            "[    0.000000] Linux version 6.1"
        );
        assert_eq!(clean_line("héllo\u{0}"), "héllo");
    }

    #[test]
    fn firmware_and_qemu_lines_do_not_count_as_a_running_guest() {
        for l in [
            "",
            "SeaBIOS (version 1.16.2-debian-1.16.2-1)",
            "iPXE (https://ipxe.org) 00:03.0 CA00 PCI2.10 PnP PMM+06FCB4A0+06F0B4A0 CA00",
            // As Debian 12's QEMU 7.2 prints it (after the clean-up of its \r).
            "Press Ctrl-B to configure iPXE (PCI 00:03.0)...",
            "Booting from ROM..",
            "Probing EDD (edd=off to disable)... ok",
            "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]",
        ] {
            assert!(is_firmware_line(l), "{l}");
        }
        for l in [
            "[    0.000000] Linux version 6.1.0-57-cloud-amd64",
            "Run /init as init process",
            "COLINUX-SETUP-PROBE-OK",
        ] {
            assert!(!is_firmware_line(l), "{l}");
        }
    }
}
