//! setup.msi's provisioning with the installer's progress page: the deferred custom
//! action `Provision` (type 1 + in-script + no-impersonate, entry `ColinuxSetupProvision`)
//! runs the installed colinux-setup.exe with the command line in CustomActionData, reads
//! the NDJSON progress events it prints (`--json`), and turns each step into messages
//! Windows Installer shows: the step's text as the action's text (ACTIONSTART, which
//! the progress page's ActionText control shows, and ACTIONDATA, which a silent
//! install's verbose log keeps), and the step's own progress as the bar (PROGRESS).
//!
//! Why a DLL and not the exe itself as the custom action: an EXE custom action cannot
//! send messages to the installer, so the page showed one text for the whole
//! provisioning. The program stays the one that does the work, with the same command
//! line as the EXE action had (the path quoted, then the arguments as Windows Installer
//! formatted them), so its own log, its exit code and the rollback action are as they
//! were: exit 0 is success; any other code fails the action (ERROR_INSTALL_FAILURE), as
//! Windows Installer judges an EXE action's non-zero code, and the install rolls back.
//!
//! Everything but the Msi* calls is here, unit-tested on Linux with a shell script as
//! the program; `msi` implements [`Installer`].

use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What the custom action returns: success.
pub(crate) const ERROR_SUCCESS: u32 = 0;
/// What the custom action returns when the provisioning failed: the install fails
/// and rolls back.
pub(crate) const ERROR_INSTALL_FAILURE: u32 = 1603;
/// The custom action's name in the messages (the CustomAction row it runs as).
pub(crate) const ACTION: &str = "Provision";
/// The ticks of one step's bar (Wine's progress bar counts 512 ticks a unit).
pub(crate) const TICKS: u32 = 1 << 20;
/// The bar moves in steps of at least this many ticks (1 %): every message crosses
/// a process boundary, and the program reports every write.
const MOVE_MIN: u32 = TICKS / 100;
/// The longest NDJSON line kept (the plan's event is the longest); the rest of a
/// longer line is dropped.
const LINE_MAX: u64 = 1 << 20;
/// The most of the program's stderr kept for the log.
const STDERR_MAX: u64 = 64 << 10;
/// At most this many characters of the program's stderr go into the log.
const STDERR_WORDS: usize = 4000;
/// How often the program is polled while it runs.
const POLL: Duration = Duration::from_millis(50);
/// How long its output may still take to arrive once it has exited (a process it
/// started could hold the pipes open).
const GRACE: Duration = Duration::from_secs(2);

/// What the provisioning needs from Windows Installer (`msi::Msi`), or from a test.
pub(crate) trait Installer {
    /// The CustomActionData property: the program's quoted path, then its arguments.
    fn action_data(&self) -> Result<String, String>;
    /// One line in the installer's log (INSTALLMESSAGE_INFO).
    fn log(&self, text: &str);
    /// A step begins: its text as the action's (ACTIONSTART) and as its data
    /// (ACTIONDATA).
    fn step(&self, text: &str);
    /// The progress bar: reset to `total` ticks, or moved on by some.
    fn bar(&self, tick: Bar);
}

/// A progress message (INSTALLMESSAGE_PROGRESS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bar {
    /// Field 1 = 0: the bar empty, `total` ticks to fill, forward, while executing.
    Reset(u32),
    /// Field 1 = 2: this many ticks more.
    Move(u32),
}

/// Why the program could not be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// CustomActionData could not be read.
    Data(String),
    /// CustomActionData is not `"PROGRAM" ARGUMENTS`.
    Command(String),
    /// The program could not be started or waited for.
    Start(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Data(e) => write!(f, "CustomActionData could not be read ({e})"),
            Failure::Command(e) => write!(f, "CustomActionData is not a command line: {e}"),
            Failure::Start(e) => write!(f, "the program could not be run ({e})"),
        }
    }
}

/// CustomActionData as the program and the rest of its command line: `"PATH" ARGS`
/// (a Windows path has no `"` in it).
pub(crate) fn split_command(data: &str) -> Result<(PathBuf, String), Failure> {
    let quoted = data.trim_start().strip_prefix('"').ok_or_else(|| {
        Failure::Command("it does not start with the program's quoted path".into())
    })?;
    let (program, rest) = quoted
        .split_once('"')
        .ok_or_else(|| Failure::Command("the program's path has no closing quote".into()))?;
    if program.trim().is_empty() {
        return Err(Failure::Command("the program's path is empty".into()));
    }
    Ok((PathBuf::from(program), rest.trim().to_owned()))
}

/// One event of the program's NDJSON (installer/src/progress.rs), as far as the
/// installer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// `{"event":"phase","name":...}`: a step begins.
    Phase(String),
    /// `{"event":"progress","done":...,"total":...}`: the step's bytes.
    Progress {
        /// Done so far.
        done: u64,
        /// Of this many.
        total: u64,
    },
    /// `{"event":"warning","message":...}`.
    Warning(String),
    /// `{"event":"error","message":...}`: why the install failed.
    Error(String),
    /// Any other event (the plan, console lines, done): not shown.
    Other,
    /// A line that is not a JSON event: logged as it is.
    Text(String),
}

/// A line of the program's stdout as an [`Event`].
pub(crate) fn parse_event(line: &[u8]) -> Event {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Event::Text(text.to_owned());
    };
    let string = |k: &str| o.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let number = |k: &str| o.get(k).and_then(serde_json::Value::as_u64);
    match o.get("event").and_then(|v| v.as_str()) {
        Some("phase") => string("name").map_or(Event::Other, Event::Phase),
        Some("progress") => match (number("done"), number("total")) {
            (Some(done), Some(total)) => Event::Progress { done, total },
            _ => Event::Other,
        },
        Some("warning") => string("message").map_or(Event::Other, Event::Warning),
        Some("error") => string("message").map_or(Event::Other, Event::Error),
        Some(_) => Event::Other,
        None => Event::Text(text.to_owned()),
    }
}

/// The provisioning's bar. How many steps an install has is the program's business (it
/// depends on the plan), so the bar cannot count them: each step gets a quarter of what
/// is left of the bar when it starts, filled by its bytes as it reports them, and the
/// bar ends full when the program succeeds. It moves with every step, never backwards,
/// and is not full before the end.
#[derive(Debug, Default)]
pub(crate) struct StepBar {
    /// Whether the bar was reset to [`TICKS`] (at the first step).
    started: bool,
    /// Where the bar is.
    at: u32,
    /// Where the current step's share begins.
    from: u32,
    /// The current step's share.
    share: u32,
}

impl StepBar {
    /// A step begins: the last one's share filled, a quarter of the rest for this one.
    pub(crate) fn step(&mut self) -> Vec<Bar> {
        let mut out = Vec::new();
        if self.started {
            out.extend(self.move_to(self.from.saturating_add(self.share)));
        } else {
            self.started = true;
            out.push(Bar::Reset(TICKS));
        }
        self.from = self.at;
        self.share = (TICKS - self.at) / 4;
        out
    }

    /// `done` of `total` bytes of the current step.
    pub(crate) fn advance(&mut self, done: u64, total: u64) -> Option<Bar> {
        if !self.started || total == 0 {
            return None;
        }
        let part = u128::from(done.min(total)) * u128::from(self.share) / u128::from(total);
        let to = self
            .from
            .saturating_add(u32::try_from(part).unwrap_or(self.share));
        if to.saturating_sub(self.at) >= MOVE_MIN {
            self.move_to(to)
        } else {
            None
        }
    }

    /// The provisioning succeeded: the bar full.
    pub(crate) fn end(&mut self) -> Option<Bar> {
        if self.started {
            self.move_to(TICKS)
        } else {
            None
        }
    }

    /// Moves the bar forward to `to` (never past its end); None when it is there.
    fn move_to(&mut self, to: u32) -> Option<Bar> {
        let to = to.min(TICKS);
        let by = to.checked_sub(self.at).filter(|b| *b > 0)?;
        self.at = to;
        Some(Bar::Move(by))
    }
}

/// The program's command: `program` with `args` as its command line's rest, exactly as
/// Windows Installer ran the EXE action (`"PATH" ARGS`), without a console window.
#[cfg(windows)]
pub(crate) fn command(program: &std::path::Path, args: &str) -> Command {
    use std::os::windows::process::CommandExt as _;
    /// CREATE_NO_WINDOW (Win32_System_Threading, a feature needed for nothing else).
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    let mut c = Command::new(program);
    if !args.is_empty() {
        c.raw_arg(args);
    }
    c.creation_flags(CREATE_NO_WINDOW);
    c
}

/// Elsewhere (the unit tests) the rest is split as a Windows program's C runtime
/// splits its command line, since only Windows passes a command line whole.
#[cfg(not(windows))]
pub(crate) fn command(program: &std::path::Path, args: &str) -> Command {
    let mut c = Command::new(program);
    c.args(split_windows(args));
    c
}

/// A command line's arguments by the Microsoft C runtime's rules: whitespace outside
/// quotes separates; `"` toggles quoting; 2n backslashes before `"` are n backslashes
/// and the quote toggles, 2n+1 are n and a literal `"`; other backslashes are literal.
#[cfg(any(test, not(windows)))]
pub(crate) fn split_windows(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut arg = String::new();
    let (mut quoted, mut started, mut slashes) = (false, false, 0usize);
    for c in line.chars() {
        match c {
            '\\' => {
                slashes += 1;
                started = true;
            }
            '"' => {
                arg.extend(std::iter::repeat_n('\\', slashes / 2));
                if slashes % 2 == 1 {
                    arg.push('"');
                } else {
                    quoted = !quoted;
                }
                slashes = 0;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                arg.extend(std::iter::repeat_n('\\', slashes));
                slashes = 0;
                if started {
                    args.push(std::mem::take(&mut arg));
                    started = false;
                }
            }
            c => {
                arg.extend(std::iter::repeat_n('\\', slashes));
                slashes = 0;
                arg.push(c);
                started = true;
            }
        }
    }
    arg.extend(std::iter::repeat_n('\\', slashes));
    if started {
        args.push(arg);
    }
    args
}

/// How a run ended.
#[derive(Debug)]
pub(crate) struct Ended {
    /// Its exit code (None: it ended without one).
    pub(crate) code: Option<i32>,
    /// Its stderr, as much as was kept.
    pub(crate) stderr: Vec<u8>,
    /// How long it ran.
    pub(crate) took: Duration,
}

/// Runs `cmd` (stdin null) until it exits, handing each line of its stdout to `line`
/// as it comes; its stderr is kept. No time limit: the provisioning takes as long as
/// its steps (the first boot has its own), as the EXE action did.
pub(crate) fn run_streaming(
    mut cmd: Command,
    line: &mut dyn FnMut(&[u8]),
) -> Result<Ended, Failure> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| Failure::Start(e.to_string()))?;
    let (tx, lines) = mpsc::channel::<Vec<u8>>();
    if let Some(out) = child.stdout.take() {
        thread::spawn(move || read_lines(out, &tx));
    } else {
        drop(tx);
    }
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(err) = child.stderr.take() {
        thread::spawn(move || {
            let mut err = err;
            let mut kept = Vec::new();
            let _ = (&mut err).take(STDERR_MAX).read_to_end(&mut kept);
            let _ = io::copy(&mut err, &mut io::sink());
            let _ = err_tx.send(kept);
        });
    } else {
        drop(err_tx);
    }
    let mut exited = None;
    let mut deadline = None;
    loop {
        match lines.recv_timeout(POLL) {
            Ok(l) => line(&l),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if exited.is_none() {
            match child.try_wait() {
                Ok(Some(status)) => {
                    exited = Some(status);
                    deadline = Some(Instant::now() + GRACE);
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Failure::Start(format!("waiting for it failed: {e}")));
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    let status = match exited {
        Some(s) => s,
        None => child
            .wait()
            .map_err(|e| Failure::Start(format!("waiting for it failed: {e}")))?,
    };
    let took = started.elapsed();
    let stderr = err_rx
        .recv_timeout(deadline.map_or(GRACE, |d| {
            d.saturating_duration_since(Instant::now()).max(POLL)
        }))
        .unwrap_or_default();
    Ok(Ended {
        code: status.code(),
        stderr,
        took,
    })
}

/// Sends `stream`'s lines (without their line ends; each at most [`LINE_MAX`] bytes,
/// the rest of a longer one dropped) until its end or until nobody listens.
fn read_lines(stream: impl Read, tx: &mpsc::Sender<Vec<u8>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut buf = Vec::new();
        match (&mut reader).take(LINE_MAX).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.last() != Some(&b'\n') && buf.len() as u64 == LINE_MAX {
            // The rest of an overlong line, up to its end.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut reader).take(LINE_MAX).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if tx.send(buf).is_err() {
            return;
        }
    }
}

/// The program's stderr for the log: trimmed, at most [`STDERR_WORDS`] characters.
fn stderr_words(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(STDERR_WORDS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The custom action: runs the command line of CustomActionData, shows its steps and
/// their progress, logs what it did; ERROR_SUCCESS when the program exits 0, else
/// ERROR_INSTALL_FAILURE.
pub(crate) fn provision(installer: &impl Installer) -> u32 {
    let log = |text: &str| installer.log(&format!("{ACTION}: {text}"));
    match run_program(installer, &log) {
        Ok(ended) => {
            let said = stderr_words(&ended.stderr);
            if !said.is_empty() {
                log(&format!("the program said: {said}"));
            }
            let code = ended
                .code
                .map_or_else(|| "no exit code".to_owned(), |c| format!("exit code {c}"));
            log(&format!(
                "the program ended with {code} after {:.1} s",
                ended.took.as_secs_f64()
            ));
            if ended.code == Some(0) {
                ERROR_SUCCESS
            } else {
                ERROR_INSTALL_FAILURE
            }
        }
        Err(failure) => {
            log(&failure.to_string());
            ERROR_INSTALL_FAILURE
        }
    }
}

/// Runs the program of CustomActionData, turning its events into the installer's
/// messages as they come.
fn run_program(installer: &impl Installer, log: &impl Fn(&str)) -> Result<Ended, Failure> {
    let data = installer.action_data().map_err(Failure::Data)?;
    let (program, args) = split_command(&data)?;
    log(&format!("running \"{}\" {args}", program.display()));
    let mut bar = StepBar::default();
    let ended = run_streaming(
        command(&program, &args),
        &mut |line| match parse_event(line) {
            Event::Phase(name) => {
                installer.step(&name);
                for tick in bar.step() {
                    installer.bar(tick);
                }
            }
            Event::Progress { done, total } => {
                if let Some(tick) = bar.advance(done, total) {
                    installer.bar(tick);
                }
            }
            Event::Warning(w) => log(&format!("warning: {w}")),
            Event::Error(e) => log(&format!("error: {e}")),
            Event::Text(t) if !t.is_empty() => log(&t),
            Event::Text(_) | Event::Other => {}
        },
    )?;
    if ended.code == Some(0)
        && let Some(tick) = bar.end()
    {
        installer.bar(tick);
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn the_command_line_is_the_quoted_program_then_the_rest_as_it_is() {
        let (p, rest) = split_command(
            r#""C:\coLinux\bin\colinux-setup.exe" msi install --json --property "INSTALLDIR=C:\coLinux\." "#,
        )
        .expect("a command line");
        assert_eq!(p, PathBuf::from(r"C:\coLinux\bin\colinux-setup.exe"));
        assert_eq!(
            rest,
            r#"msi install --json --property "INSTALLDIR=C:\coLinux\.""#
        );
        let (p, rest) = split_command(r#" "C:\p q\x.exe""#).expect("no arguments");
        assert_eq!((p, rest.as_str()), (PathBuf::from(r"C:\p q\x.exe"), ""));
        for bad in [
            "",
            "C:\\x.exe msi",
            "\"C:\\x.exe msi",
            "\"\" msi",
            "\" \" msi",
        ] {
            assert!(
                matches!(split_command(bad), Err(Failure::Command(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn arguments_split_as_the_c_runtime_splits_them() {
        assert_eq!(
            split_windows(
                r#"msi install --property "INSTALLDIR=C:\coLinux\." --property "RAMMB=" --property "HOSTNAME=a b""#
            ),
            [
                "msi",
                "install",
                "--property",
                r"INSTALLDIR=C:\coLinux\.",
                "--property",
                "RAMMB=",
                "--property",
                "HOSTNAME=a b"
            ]
        );
        assert_eq!(split_windows(r#"a\\"b c" d"#), [r"a\b c", "d"]);
        assert_eq!(split_windows(r#"a\"b c"#), ["a\"b", "c"]);
        assert_eq!(split_windows(r#""" x  "#), ["", "x"]);
        assert!(split_windows("   ").is_empty());
    }

    #[test]
    fn events_are_read_as_the_program_prints_them() {
        assert_eq!(
            parse_event(br#"{"event":"phase","name":"building root.img"}"#),
            Event::Phase("building root.img".into())
        );
        assert_eq!(
            parse_event(br#"{"event":"progress","done":5,"total":10}"#),
            Event::Progress { done: 5, total: 10 }
        );
        assert_eq!(
            parse_event(br#"{"event":"warning","message":"slow"}"#),
            Event::Warning("slow".into())
        );
        assert_eq!(
            parse_event(br#"{"event":"error","message":"SUBNET: bad"}"#),
            Event::Error("SUBNET: bad".into())
        );
        for other in [
            &br#"{"event":"plan","plan":{}}"#[..],
            br#"{"event":"console","line":"login:"}"#,
            br#"{"event":"phase","name":7}"#,
            br#"{"event":"progress","done":-1,"total":10}"#,
        ] {
            assert_eq!(parse_event(other), Event::Other);
        }
        assert_eq!(
            parse_event(b"not json \xff\r"),
            Event::Text("not json \u{fffd}".into())
        );
        assert_eq!(parse_event(b"[1,2]"), Event::Text("[1,2]".into()));
    }

    #[test]
    fn the_bar_moves_with_every_step_and_its_bytes_and_ends_full() {
        let mut bar = StepBar::default();
        assert_eq!(bar.advance(5, 10), None, "no step yet");
        assert_eq!(bar.end(), None, "no step: the bar was never ours");
        // The first step resets the bar; a quarter of it is the step's.
        assert_eq!(bar.step(), [Bar::Reset(TICKS)]);
        let quarter = TICKS / 4;
        assert_eq!(bar.advance(1, 1000), None, "less than 1 %");
        assert_eq!(bar.advance(0, 0), None);
        assert_eq!(bar.advance(500, 1000), Some(Bar::Move(quarter / 2)));
        assert_eq!(bar.advance(400, 1000), None, "never backwards");
        assert_eq!(bar.advance(u64::MAX, 1000), Some(Bar::Move(quarter / 2)));
        assert_eq!(bar.advance(1000, 1000), None, "its share is full");
        // The next step: a quarter of the rest; a step without bytes is filled when the
        // next one starts.
        assert_eq!(bar.step(), []);
        let rest = (TICKS - quarter) / 4;
        assert_eq!(bar.step(), [Bar::Move(rest)]);
        // Totals past 2^64 / TICKS do not overflow.
        let third = (TICKS - quarter - rest) / 4;
        assert_eq!(bar.advance(u64::MAX, u64::MAX), Some(Bar::Move(third)));
        // Many steps never fill it; the end does.
        let mut moved = quarter + rest + third;
        for _ in 0..100 {
            for tick in bar.step() {
                let Bar::Move(by) = tick else {
                    panic!("reset again: {tick:?}")
                };
                moved += by;
            }
        }
        assert!(moved < TICKS, "{moved}");
        assert_eq!(bar.end(), Some(Bar::Move(TICKS - moved)));
        assert_eq!(bar.end(), None);
    }

    /// The installer as a test sees it: CustomActionData, and every message in order.
    struct Fake {
        data: Result<String, String>,
        said: RefCell<Vec<String>>,
    }

    impl Fake {
        fn new(data: &str) -> Fake {
            Fake {
                data: Ok(data.to_owned()),
                said: RefCell::default(),
            }
        }
    }

    impl Installer for Fake {
        fn action_data(&self) -> Result<String, String> {
            self.data.clone()
        }
        fn log(&self, text: &str) {
            self.said.borrow_mut().push(format!("log {text}"));
        }
        fn step(&self, text: &str) {
            self.said.borrow_mut().push(format!("step {text}"));
        }
        fn bar(&self, tick: Bar) {
            self.said.borrow_mut().push(format!("bar {tick:?}"));
        }
    }

    /// A program: a shell script in `dir` running `body`.
    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("colinux-setup.exe");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[test]
    fn each_step_is_shown_with_its_bar_and_the_exit_code_decides() {
        let _l = crate::spawn_lock();
        let dir = tempfile::tempdir().expect("tempdir");
        let program = script(
            dir.path(),
            r#"for a in "$@"; do echo "arg $a" >&2; done
echo '{"event":"plan","plan":{"x":1}}'
echo '{"event":"phase","name":"building root.img"}'
echo '{"event":"progress","done":50,"total":100}'
echo '{"event":"progress","done":100,"total":100}'
echo '{"event":"warning","message":"[careful]"}'
echo '{"event":"phase","name":"writing config.txt"}'
echo '{"event":"done","exit":0}'
exit 0"#,
        );
        let fake = Fake::new(&format!(
            r#""{}" msi install --json --property "HOSTNAME=a b" --property "RAMMB=""#,
            program.display()
        ));
        assert_eq!(provision(&fake), ERROR_SUCCESS);
        let said = fake.said.borrow();
        let quarter = TICKS / 4;
        let shown: Vec<&str> = said
            .iter()
            .map(String::as_str)
            .filter(|s| !s.starts_with("log "))
            .collect();
        assert_eq!(
            shown,
            [
                "step building root.img".to_owned(),
                format!("bar Reset({TICKS})"),
                format!("bar Move({})", quarter / 2),
                format!("bar Move({})", quarter / 2),
                "step writing config.txt".to_owned(),
                format!("bar Move({})", TICKS - quarter),
            ],
            "the end fills the bar"
        );
        assert!(
            said.iter()
                .any(|s| s == "log Provision: warning: [careful]"),
            "{said:?}"
        );
        // The program got its arguments as the C runtime splits the command line.
        let args = said
            .iter()
            .find(|s| s.starts_with("log Provision: the program said:"))
            .expect("its stderr logged");
        assert!(
            args.contains(
                "arg --json\narg --property\narg HOSTNAME=a b\narg --property\narg RAMMB="
            ),
            "{args}"
        );
        assert!(
            said.last()
                .is_some_and(|s| s.starts_with("log Provision: the program ended with exit code 0")),
            "{said:?}"
        );
    }

    #[test]
    fn a_failure_of_the_program_fails_the_action_with_its_words_in_the_log() {
        let _l = crate::spawn_lock();
        let dir = tempfile::tempdir().expect("tempdir");
        let program = script(
            dir.path(),
            r#"echo '{"event":"phase","name":"checking the host"}'
echo '{"event":"error","message":"SUBNET (setup.msi): not a subnet"}'
echo 'colinux-setup: error: SUBNET' >&2
exit 3"#,
        );
        let fake = Fake::new(&format!(r#""{}" msi install"#, program.display()));
        assert_eq!(provision(&fake), ERROR_INSTALL_FAILURE);
        let said = fake.said.borrow();
        for want in [
            "step checking the host",
            "log Provision: error: SUBNET (setup.msi): not a subnet",
            "log Provision: the program said: colinux-setup: error: SUBNET",
        ] {
            assert!(said.iter().any(|s| s == want), "{want}: {said:?}");
        }
        assert!(
            said.iter()
                .any(|s| s.starts_with("log Provision: the program ended with exit code 3")),
            "{said:?}"
        );
    }

    #[test]
    fn bad_data_or_a_missing_program_fails_the_action_and_says_why() {
        let _l = crate::spawn_lock();
        let fake = Fake::new("msi install");
        assert_eq!(provision(&fake), ERROR_INSTALL_FAILURE);
        assert!(
            fake.said.borrow()[0].contains("CustomActionData is not a command line"),
            "{:?}",
            fake.said.borrow()
        );
        let fake = Fake::new(r#""/nonexistent/colinux-setup.exe" msi install"#);
        assert_eq!(provision(&fake), ERROR_INSTALL_FAILURE);
        assert!(
            fake.said
                .borrow()
                .iter()
                .any(|s| s.contains("the program could not be run")),
            "{:?}",
            fake.said.borrow()
        );
        let fake = Fake {
            data: Err("error 6".into()),
            said: RefCell::default(),
        };
        assert_eq!(provision(&fake), ERROR_INSTALL_FAILURE);
        assert_eq!(
            fake.said.borrow()[0],
            "log Provision: CustomActionData could not be read (error 6)"
        );
    }

    #[test]
    fn overlong_lines_are_cut_and_the_next_line_still_read() {
        let mut input = vec![b'x'; (LINE_MAX as usize) * 2 + 10];
        input.extend_from_slice(b"\n{\"event\":\"phase\",\"name\":\"next\"}\r\nlast");
        let (tx, rx) = mpsc::channel();
        read_lines(&input[..], &tx);
        drop(tx);
        let got: Vec<Vec<u8>> = rx.iter().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].len() as u64, LINE_MAX);
        assert_eq!(parse_event(&got[1]), Event::Phase("next".into()));
        assert_eq!(got[2], b"last");
    }

    #[test]
    fn a_program_that_leaves_its_stdout_to_a_child_still_ends_the_action() {
        let _l = crate::spawn_lock();
        let dir = tempfile::tempdir().expect("tempdir");
        // The background sleep holds stdout open after the program exits.
        let program = script(
            dir.path(),
            "echo '{\"event\":\"phase\",\"name\":\"a\"}'; sleep 30 & exit 0",
        );
        let fake = Fake::new(&format!(r#""{}""#, program.display()));
        let t = Instant::now();
        assert_eq!(provision(&fake), ERROR_SUCCESS);
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
        assert!(fake.said.borrow().iter().any(|s| s == "step a"));
    }
}
