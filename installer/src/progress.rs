//! How long work shows itself: an indicatif bar on a terminal, plain lines in logs, and
//! NDJSON events with `--json`; plus the interrupt flag that long work polls.
//!
//! # Platform specific behavior
//!
//! On Unix, SIGINT (Ctrl-C), SIGTERM (service managers, `kill`, IT tools) and SIGHUP (a
//! closed terminal or SSH session) all set the interrupt flag: the work in progress
//! stops, rolls back what it did and exits 1602. On Windows, Ctrl-C, Ctrl-Break and
//! closing the console do (crate ctrlc).

use std::io::{IsTerminal, Write};
#[cfg(unix)]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The signal that set the interrupt flag (0: none yet). Unix only: on Windows the
/// one stop is Ctrl-C.
#[cfg(unix)]
static SIGNAL: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the handlers once and returns the flag they set. Work checks the flag,
/// undoes what it did and returns; nothing is killed half-written.
pub fn install_interrupt_handler() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    // Once per process: tests call run() repeatedly.
    let flag = FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
            let which = SIGNAL.get_or_init(|| Arc::new(AtomicUsize::new(0)));
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                // Which one first, then the flag: the flag's reader may ask which.
                let _ = signal_hook::flag::register_usize(
                    sig,
                    Arc::clone(which),
                    usize::try_from(sig).unwrap_or(0),
                );
                let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
            }
        }
        #[cfg(windows)]
        {
            let f = Arc::clone(&flag);
            let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        }
        flag
    });
    ignore_file_size_signal();
    Arc::clone(flag)
}

/// What stopped the work, in words for messages: `Ctrl-C`, `SIGTERM` or `SIGHUP`.
pub fn stop_reason() -> &'static str {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGTERM};
        let sig = SIGNAL.get().map_or(0, |s| s.load(Ordering::SeqCst));
        if sig == usize::try_from(SIGTERM).unwrap_or(0) {
            return "SIGTERM";
        }
        if sig == usize::try_from(SIGHUP).unwrap_or(0) {
            return "SIGHUP";
        }
    }
    "Ctrl-C"
}

/// With `ulimit -f`, a write past the limit raises SIGXFSZ, which kills the process by
/// default and leaves the temporary image behind; ignored, the write fails with EFBIG
/// and the build cleans up and reports it.
#[cfg(unix)]
#[allow(unsafe_code)]
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code and
    // touches no memory; it is async-signal-safe and valid at any point of the program.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
fn ignore_file_size_signal() {}

/// Where progress goes.
pub enum Reporter {
    /// A bar on the terminal (stderr).
    Bar(ProgressBar),
    /// Plain lines on stderr, at most one every few seconds.
    Lines { last: Instant },
    /// NDJSON events on stdout.
    Json,
    /// Another renderer (the wizard's progress page: one bar per step). A trait
    /// object, so this layer names no type of the layers above it.
    Sink(Box<dyn Sink>),
}

/// A renderer of progress that a layer above supplies: the same events as the
/// built-in ones, shown its own way.
pub trait Sink {
    /// A step begins (or the current one enters a sub-phase).
    fn phase(&mut self, name: &str);
    /// Bytes done of a total.
    fn progress(&mut self, done: u64, total: u64);
    /// A line that replaces the last one (at most 100 characters).
    fn status(&mut self, line: &str);
    /// Something the user should know; the work goes on.
    fn warn(&mut self, msg: &str);
    /// The work ended.
    fn finish(&mut self);
}

impl Reporter {
    /// Chooses by `--json` and whether stderr is a terminal.
    pub fn new(json: bool) -> Reporter {
        if json {
            Reporter::Json
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:20} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            Reporter::Bar(bar)
        } else {
            Reporter::Lines {
                last: Instant::now(),
            }
        }
    }

    /// A step begins.
    pub fn phase(&mut self, name: &str) {
        match self {
            Reporter::Bar(b) => b.set_message(name.to_owned()),
            Reporter::Lines { .. } => eprintln!("colinux-setup: {name}"),
            Reporter::Json => emit(&serde_json::json!({"event": "phase", "name": name})),
            Reporter::Sink(s) => s.phase(name),
        }
    }

    /// Bytes done of a total.
    pub fn progress(&mut self, done: u64, total: u64) {
        match self {
            Reporter::Bar(b) => {
                b.set_length(total);
                b.set_position(done);
            }
            Reporter::Lines { last } => {
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    eprintln!("colinux-setup: {} of {} MiB", done >> 20, total >> 20);
                }
            }
            Reporter::Json => {
                emit(&serde_json::json!({"event": "progress", "done": done, "total": total}))
            }
            Reporter::Sink(s) => s.progress(done, total),
        }
    }

    /// A progress line that replaces the last one (a guest's console while it works):
    /// the bar's message on a terminal, a line every few seconds in logs, an event in JSON.
    pub fn status(&mut self, line: &str) {
        let line: String = line.chars().take(100).collect();
        match self {
            Reporter::Bar(b) => b.set_message(line),
            Reporter::Lines { last } => {
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    eprintln!("colinux-setup: {line}");
                }
            }
            Reporter::Json => emit(&serde_json::json!({"event": "console", "line": line})),
            Reporter::Sink(s) => s.status(&line),
        }
    }

    /// Something the user should know; the work goes on.
    pub fn warn(&mut self, msg: &str) {
        match self {
            Reporter::Bar(b) => b.suspend(|| eprintln!("colinux-setup: warning: {msg}")),
            Reporter::Lines { .. } => eprintln!("colinux-setup: warning: {msg}"),
            Reporter::Json => emit(&serde_json::json!({"event": "warning", "message": msg})),
            Reporter::Sink(s) => s.warn(msg),
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        match self {
            Reporter::Bar(b) => b.finish_and_clear(),
            Reporter::Sink(s) => s.finish(),
            Reporter::Lines { .. } | Reporter::Json => {}
        }
    }
}

/// Writes one NDJSON line on stdout.
pub fn emit(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}
