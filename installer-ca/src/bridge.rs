//! The bridge apart from the Msi* calls: which properties to pass, the program's command
//! line, running it with a time limit, its answer as (name, value) pairs, the failure
//! message, the temporary copy of the program and its assets, and the log's text. The
//! installer is a [`Session`], so [`bridge`] runs whole on Linux in the unit tests, with
//! a shell script standing in for the program.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the program may take before it is stopped.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);
/// At most this many characters of the program's own words go into UI_ERROR.
pub(crate) const WORDS_MAX: usize = 1000;
/// The property with the list of properties passed to the program.
pub(crate) const LIST_PROPERTY: &str = "UI_PROPERTIES";
/// The property naming the dialog page.
pub(crate) const PAGE_PROPERTY: &str = "UI_PAGE";
/// The property the dialogs show a failure in.
pub(crate) const ERROR_PROPERTY: &str = "UI_ERROR";
/// The Binary table's row holding the program.
pub(crate) const PROGRAM_BINARY: &str = "ColinuxSetupExe";
/// The prefix of the Binary table's rows holding the program's assets
/// (`ColinuxSetupAsset.busybox`: `assets\busybox`).
pub(crate) const ASSET_PREFIX: &str = "ColinuxSetupAsset.";
/// The program's file name in the unpacked folder's `bin\`.
pub(crate) const PROGRAM_FILE: &str = "colinux-setup.exe";

/// How often the child is polled while it runs.
const POLL: Duration = Duration::from_millis(20);
/// How long its output may still take to arrive once it has exited (a grandchild could
/// hold the pipes open).
const GRACE: Duration = Duration::from_secs(2);
/// The most of each stream that is kept (the rest is read and dropped).
const STREAM_MAX: u64 = 4 << 20;
/// The size of the chunks the program is copied in.
const CHUNK: usize = 64 << 10;

/// Fills a buffer from a Binary row's data: the bytes written, 0 at the end.
pub(crate) type ReadRow<'a> = dyn FnMut(&mut [u8]) -> io::Result<usize> + 'a;

/// Takes one Binary row: its name and its data's reader.
pub(crate) type EachRow<'a> = dyn FnMut(&str, &mut ReadRow<'_>) -> io::Result<()> + 'a;

/// What the bridge needs from Windows Installer (`msi::Msi`), or from a test.
pub(crate) trait Session {
    /// The value of property `name` ("" when unset).
    fn property(&self, name: &str) -> Result<String, String>;
    /// Sets property `name`.
    fn set_property(&self, name: &str, value: &str) -> Result<(), String>;
    /// Calls `each(name, read)` for every row of the Binary table whose name `wanted`
    /// accepts, `read` filling a buffer at a time from the row's data (0: the end).
    fn binaries(&self, wanted: &dyn Fn(&str) -> bool, each: &mut EachRow<'_>) -> io::Result<()>;
    /// One line in the installer's log.
    fn log(&self, text: &str);
}

/// Why the program gave no answer: each one's [`Failure::message`] is UI_ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A property could not be read.
    Property(String),
    /// The program (or an asset) could not be written out of the MSI.
    Extract(String),
    /// The program could not be started.
    Start(String),
    /// It ran past the limit and was stopped; what it had said on stderr.
    Timeout {
        /// The limit.
        limit: Duration,
        /// Its stderr so far.
        stderr: String,
    },
    /// It exited with a code other than 0 (None: killed by a signal).
    Exit {
        /// Its exit code.
        code: Option<i32>,
        /// Its stderr.
        stderr: String,
    },
    /// It exited 0 but its stdout is not a JSON object of strings.
    Answer {
        /// What is wrong with it.
        why: String,
        /// Its stderr, or its stdout when stderr is empty.
        words: String,
    },
    /// The bridge itself panicked.
    Panic(String),
}

impl Failure {
    /// UI_ERROR's text: what failed, in the user's words, then the program's own.
    pub(crate) fn message(&self) -> String {
        let lead = "colinux-setup could not check these answers";
        let (what, words) = match self {
            Failure::Property(e) => (format!("the installer could not read {e}"), ""),
            Failure::Extract(e) => (
                format!("the installer could not unpack the program ({e})"),
                "",
            ),
            Failure::Start(e) => (format!("the program could not be started ({e})"), ""),
            Failure::Timeout { limit, stderr } => (
                format!(
                    "the program gave no answer within {} seconds and was stopped",
                    limit.as_secs()
                ),
                stderr.as_str(),
            ),
            Failure::Exit { code, stderr } => (
                match code {
                    Some(c) => format!("the program stopped with exit code {c}"),
                    None => "the program was stopped before it finished".to_owned(),
                },
                stderr.as_str(),
            ),
            Failure::Answer { why, words } => (
                format!("the program's answer is not a JSON object of strings ({why})"),
                words.as_str(),
            ),
            Failure::Panic(e) => (format!("the installer's bridge to it failed ({e})"), ""),
        };
        if words.is_empty() {
            format!("{lead}: {what}.")
        } else {
            format!("{lead}: {what}. It said: {words}")
        }
    }
}

/// The names in UI_PROPERTIES: split at `;`, trimmed, empty ones and repeats left out.
pub(crate) fn property_names(list: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for n in list.split(';').map(str::trim).filter(|n| !n.is_empty()) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// The program's arguments: `msi ui --page PAGE --property NAME=VALUE...`, each value as
/// the MSI has it.
pub(crate) fn ui_args(page: &str, answers: &[(String, String)]) -> Vec<String> {
    let mut args = vec![
        "msi".to_owned(),
        "ui".to_owned(),
        "--page".to_owned(),
        page.to_owned(),
    ];
    for (name, value) in answers {
        args.push("--property".to_owned());
        args.push(format!("{name}={value}"));
    }
    args
}

/// `exe args`, without a console window on Windows (CREATE_NO_WINDOW).
pub(crate) fn command(exe: &Path, args: &[String]) -> Command {
    let mut c = Command::new(exe);
    c.args(args);
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt as _;
        /// CREATE_NO_WINDOW (Win32_System_Threading, a feature the bridge needs for
        /// nothing else).
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        c.creation_flags(CREATE_NO_WINDOW);
    }
    c
}

/// A finished run.
#[derive(Debug)]
pub(crate) struct Ran {
    /// Its exit code (None: killed by a signal).
    pub(crate) code: Option<i32>,
    /// Its stdout.
    pub(crate) stdout: Vec<u8>,
    /// Its stderr.
    pub(crate) stderr: Vec<u8>,
    /// How long it took.
    pub(crate) took: Duration,
}

/// Runs `cmd` with stdin null and its output captured; kills it after `limit`.
pub(crate) fn run(mut cmd: Command, limit: Duration) -> Result<Ran, Failure> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| Failure::Start(e.to_string()))?;
    let (tx, rx) = mpsc::channel();
    let mut readers = 0;
    if let Some(s) = child.stdout.take() {
        drain(s, true, tx.clone());
        readers += 1;
    }
    if let Some(s) = child.stderr.take() {
        drain(s, false, tx.clone());
        readers += 1;
    }
    drop(tx);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < limit => thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::Start(format!("waiting for it failed: {e}")));
            }
        }
    };
    let took = started.elapsed();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + GRACE;
    for _ in 0..readers {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((true, bytes)) => stdout = bytes,
            Ok((false, bytes)) => stderr = bytes,
            Err(_) => break,
        }
    }
    match status {
        Some(status) => Ok(Ran {
            code: status.code(),
            stdout,
            stderr,
            took,
        }),
        None => Err(Failure::Timeout {
            limit,
            stderr: words(&stderr),
        }),
    }
}

/// Reads `stream` to its end on a thread of its own, keeps the first [`STREAM_MAX`]
/// bytes and sends them, tagged `is_stdout`.
fn drain(stream: impl Read + Send + 'static, is_stdout: bool, tx: mpsc::Sender<(bool, Vec<u8>)>) {
    thread::spawn(move || {
        let mut stream = stream;
        let mut kept = Vec::new();
        let _ = (&mut stream).take(STREAM_MAX).read_to_end(&mut kept);
        let _ = io::copy(&mut stream, &mut io::sink());
        let _ = tx.send((is_stdout, kept));
    });
}

/// The program's verdict on a run: the properties to set (UI_ERROR first, cleared,
/// unless the answer sets it), or why there are none.
pub(crate) fn judge(ran: &Ran) -> Result<Vec<(String, String)>, Failure> {
    if ran.code != Some(0) {
        return Err(Failure::Exit {
            code: ran.code,
            stderr: words(&ran.stderr),
        });
    }
    let mut pairs = parse_answer(&ran.stdout).map_err(|why| {
        let said = if ran.stderr.iter().all(u8::is_ascii_whitespace) {
            &ran.stdout
        } else {
            &ran.stderr
        };
        Failure::Answer {
            why,
            words: words(said),
        }
    })?;
    if !pairs.iter().any(|(n, _)| n == ERROR_PROPERTY) {
        pairs.insert(0, (ERROR_PROPERTY.to_owned(), String::new()));
    }
    Ok(pairs)
}

/// The program's stdout as (name, value) pairs: one JSON object, every value a string,
/// every name a property name.
pub(crate) fn parse_answer(stdout: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value: serde_json::Value = serde_json::from_slice(stdout).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(members) = value else {
        return Err("it is not an object".to_owned());
    };
    members
        .into_iter()
        .map(|(name, value)| {
            if !is_property_name(&name) {
                return Err(format!("{name:?} is not a property name"));
            }
            match value {
                serde_json::Value::String(v) => Ok((name, v)),
                other => Err(format!("{name} is {other}, not a string")),
            }
        })
        .collect()
}

/// A Windows Installer property name (an Identifier: a letter or `_`, then letters,
/// digits, `_` and `.`; at most 72 characters).
pub(crate) fn is_property_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 72
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The program's own words: its output as text, trimmed, at most [`WORDS_MAX`]
/// characters (then "...").
pub(crate) fn words(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(WORDS_MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The name of the temporary folder the program is unpacked into.
pub(crate) fn temp_name(pid: u32, counter: u32) -> String {
    format!("colinux-setup-ui-{pid}-{counter}")
}

/// Where Binary row `name` goes in the unpacked folder, as setup.msi installs the
/// program: [`PROGRAM_BINARY`] as `bin\colinux-setup.exe`, an asset
/// `ColinuxSetupAsset.FILE` as `assets\FILE` (FILE: letters, digits, `_`, `-` and `.`,
/// not `.` or `..`); None for every other row.
pub(crate) fn place(name: &str) -> Option<PathBuf> {
    if name == PROGRAM_BINARY {
        return Some(Path::new("bin").join(PROGRAM_FILE));
    }
    let file = name.strip_prefix(ASSET_PREFIX)?;
    let plain = file
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    (plain && !file.is_empty() && file != "." && file != "..")
        .then(|| Path::new("assets").join(file))
}

/// The program unpacked: its folder and the exe in it.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// `TEMP\colinux-setup-ui-PID-N`, removed after the run.
    pub(crate) folder: PathBuf,
    /// `FOLDER\bin\colinux-setup.exe`.
    pub(crate) exe: PathBuf,
}

/// Writes the program and its assets from the Binary table into a new folder in `temp`
/// ([`temp_name`], the first free counter), laid out by [`place`]. A missing or empty
/// program is refused; on any error the folder is removed.
pub(crate) fn unpack(session: &impl Session, temp: &Path) -> io::Result<Unpacked> {
    let folder = create_unique_dir(temp)?;
    let unpacked = (|| {
        std::fs::create_dir(folder.join("bin"))?;
        std::fs::create_dir(folder.join("assets"))?;
        let mut program_bytes = 0;
        session.binaries(&|name| place(name).is_some(), &mut |name, read| {
            let Some(to) = place(name) else {
                return Ok(());
            };
            let n = write_new(&folder.join(to), read)?;
            if name == PROGRAM_BINARY {
                program_bytes = n;
            }
            Ok(())
        })?;
        if program_bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("it has no Binary row {PROGRAM_BINARY}, or an empty one"),
            ));
        }
        Ok(Unpacked {
            exe: folder.join("bin").join(PROGRAM_FILE),
            folder: folder.clone(),
        })
    })();
    if unpacked.is_err() {
        remove_best_effort(&folder);
    }
    unpacked
}

/// Writes a new file `path` from `read` (a buffer at a time, 0: the end); the bytes
/// written.
fn write_new(
    path: &Path,
    read: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    // Elsewhere than on Windows (the unit tests) the program is a script to run.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o755);
    let mut file = options
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = read(&mut buf)?.min(buf.len());
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        total += n;
    }
    file.flush()?;
    Ok(total)
}

/// A new folder in `temp` named [`temp_name`] with this process's id and the next free
/// counter.
fn create_unique_dir(temp: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    for _ in 0..1000 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = temp.join(temp_name(std::process::id(), n));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free colinux-setup-ui-* name in {}", temp.display()),
    ))
}

/// Deletes the folder `path` and all in it, retrying a little while Windows still holds
/// the image of a process that has just exited; gives up silently.
pub(crate) fn remove_best_effort(path: &Path) {
    for _ in 0..20 {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                thread::sleep(Duration::from_millis(100))
            }
            _ => return,
        }
    }
}

/// `text` for field 0 of a message record, which Windows Installer formats: `[`, `]`,
/// `{` and `}` escaped as `[\x]`, so the program's words are logged as they are.
pub(crate) fn msi_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '[' | ']' | '{' | '}') {
            out.push_str("[\\");
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

/// How long a value may be in the log's line of what the program answered.
const LOG_VALUE_MAX: usize = 80;

/// A property's value on one log line: line breaks as `\n`, at most [`LOG_VALUE_MAX`]
/// characters (then "...").
pub(crate) fn log_value(v: &str) -> String {
    let one_line = v.replace("\r\n", "\n").replace(['\r', '\n'], "\\n");
    match one_line.char_indices().nth(LOG_VALUE_MAX) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// The custom action: asks the program about page UI_PAGE with the properties
/// UI_PROPERTIES names, and sets what it answers, or UI_ERROR. Logs what it did.
pub(crate) fn bridge(session: &impl Session, dir: &Path, limit: Duration) {
    let log = |text: &str| session.log(&format!("ColinuxSetupUi: {text}"));
    let outcome = ask(session, dir, limit, &log);
    let pairs = match outcome {
        Ok(pairs) => pairs,
        Err(failure) => {
            let message = failure.message();
            log(&message);
            vec![(ERROR_PROPERTY.to_owned(), message)]
        }
    };
    for (name, value) in &pairs {
        if let Err(e) = session.set_property(name, value) {
            log(&format!("could not set {name}: {e}"));
        }
    }
}

/// Reads the properties, runs the program and judges its answer.
fn ask(
    session: &impl Session,
    dir: &Path,
    limit: Duration,
    log: &impl Fn(&str),
) -> Result<Vec<(String, String)>, Failure> {
    let list = session.property(LIST_PROPERTY).map_err(Failure::Property)?;
    let page = session.property(PAGE_PROPERTY).map_err(Failure::Property)?;
    let answers = property_names(&list)
        .into_iter()
        .map(|n| Ok((n.to_owned(), session.property(n)?)))
        .collect::<Result<Vec<_>, String>>()
        .map_err(Failure::Property)?;
    let args = ui_args(&page, &answers);
    let unpacked = unpack(session, dir).map_err(|e| Failure::Extract(e.to_string()))?;
    log(&format!(
        "running {} {}",
        unpacked.exe.display(),
        args.join(" ")
    ));
    let ran = run(command(&unpacked.exe, &args), limit);
    remove_best_effort(&unpacked.folder);
    let ran = ran?;
    let pairs = judge(&ran)?;
    let set: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", log_value(v)))
        .collect();
    log(&format!(
        "the program answered in {:.1} s: {}",
        ran.took.as_secs_f64(),
        set.join("; ")
    ));
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        crate::spawn_lock()
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn names_are_split_trimmed_and_once_each() {
        assert_eq!(
            property_names(" RAMMB ;SUBNET;;RAMMB; INSTALLDIR;"),
            ["RAMMB", "SUBNET", "INSTALLDIR"]
        );
        assert!(property_names("").is_empty());
        assert!(property_names(" ; ").is_empty());
    }

    #[test]
    fn args_pass_every_value_as_it_is() {
        let answers = vec![
            (
                "INSTALLDIR".to_owned(),
                "C:\\Program Files\\coLinux\\".to_owned(),
            ),
            ("RAMMB".to_owned(), String::new()),
            ("HOSTNAME".to_owned(), "a=b c".to_owned()),
        ];
        assert_eq!(
            ui_args("sizes", &answers),
            [
                "msi",
                "ui",
                "--page",
                "sizes",
                "--property",
                "INSTALLDIR=C:\\Program Files\\coLinux\\",
                "--property",
                "RAMMB=",
                "--property",
                "HOSTNAME=a=b c",
            ]
        );
        assert_eq!(ui_args("", &[]), ["msi", "ui", "--page", ""]);
    }

    #[test]
    fn an_answer_is_an_object_of_strings_with_property_names() {
        let pairs = parse_answer(br#" {"RAMMB":"256","SUBNET":"10.0.3.0/24","UI_ERROR":""} "#)
            .expect("an answer");
        let mut pairs = pairs;
        pairs.sort();
        assert_eq!(
            pairs,
            [
                ("RAMMB".to_owned(), "256".to_owned()),
                ("SUBNET".to_owned(), "10.0.3.0/24".to_owned()),
                ("UI_ERROR".to_owned(), String::new()),
            ]
        );
        assert_eq!(parse_answer(b"{}"), Ok(vec![]));
        for (bad, says) in [
            (&b"colinux-setup 0.1.0\n"[..], "expected"),
            (b"", "EOF"),
            (b"[\"RAMMB\"]", "not an object"),
            (b"\"x\"", "not an object"),
            (br#"{"RAMMB":256}"#, "RAMMB is 256, not a string"),
            (br#"{"RAMMB":null}"#, "RAMMB is null, not a string"),
            (br#"{"A B":"1"}"#, "\"A B\" is not a property name"),
            (br#"{"":"1"}"#, "not a property name"),
            (br#"{"RAMMB":"1"} {"#, "trailing"),
        ] {
            let e = parse_answer(bad).expect_err("refused");
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn property_names_are_msi_identifiers() {
        for ok in ["RAMMB", "UI_ERROR", "_x", "a.b1", &"A".repeat(72)] {
            assert!(is_property_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", ".a", &"A".repeat(73)] {
            assert!(!is_property_name(bad), "{bad}");
        }
    }

    #[test]
    fn words_are_trimmed_and_capped() {
        assert_eq!(words(b"  error: no\r\n"), "error: no");
        let long = "é".repeat(WORDS_MAX + 5);
        let w = words(long.as_bytes());
        assert_eq!(w.chars().count(), WORDS_MAX + 3);
        assert!(w.ends_with("é..."));
        assert_eq!(words(&"x".repeat(WORDS_MAX).into_bytes()).len(), WORDS_MAX);
        assert_eq!(words(b"\xff ok"), "\u{fffd} ok");
    }

    #[test]
    fn messages_say_what_failed_and_the_programs_words() {
        let lead = "colinux-setup could not check these answers: ";
        let cases = [
            (
                Failure::Exit {
                    code: Some(2),
                    stderr: "error: unrecognized subcommand 'ui'".into(),
                },
                "the program stopped with exit code 2. It said: error: unrecognized subcommand 'ui'",
            ),
            (
                Failure::Exit {
                    code: None,
                    stderr: String::new(),
                },
                "the program was stopped before it finished.",
            ),
            (
                Failure::Timeout {
                    limit: LIMIT,
                    stderr: "still thinking".into(),
                },
                "the program gave no answer within 60 seconds and was stopped. It said: still thinking",
            ),
            (
                Failure::Answer {
                    why: "expected value at line 1 column 1".into(),
                    words: "colinux-setup 0.1.0".into(),
                },
                "the program's answer is not a JSON object of strings (expected value at line 1 column 1). It said: colinux-setup 0.1.0",
            ),
            (
                Failure::Extract("disk full".into()),
                "the installer could not unpack the program (disk full).",
            ),
            (
                Failure::Start("access denied".into()),
                "the program could not be started (access denied).",
            ),
            (
                Failure::Panic("oops".into()),
                "the installer's bridge to it failed (oops).",
            ),
            (
                Failure::Property("the property RAMMB (error 6)".into()),
                "the installer could not read the property RAMMB (error 6).",
            ),
        ];
        for (f, rest) in cases {
            assert_eq!(f.message(), format!("{lead}{rest}"));
        }
    }

    #[test]
    fn judge_takes_exit_0_with_an_object_and_clears_ui_error() {
        let ran = |code, out: &str, err: &str| Ran {
            code,
            stdout: out.as_bytes().to_vec(),
            stderr: err.as_bytes().to_vec(),
            took: Duration::ZERO,
        };
        assert_eq!(
            judge(&ran(Some(0), r#"{"RAMMB":"256"}"#, "a warning")),
            Ok(vec![
                ("UI_ERROR".to_owned(), String::new()),
                ("RAMMB".to_owned(), "256".to_owned())
            ])
        );
        assert_eq!(
            judge(&ran(Some(0), r#"{"UI_ERROR":"RAM: too much"}"#, "")),
            Ok(vec![("UI_ERROR".to_owned(), "RAM: too much".to_owned())])
        );
        assert_eq!(
            judge(&ran(Some(1), r#"{"RAMMB":"256"}"#, " bad page\n")),
            Err(Failure::Exit {
                code: Some(1),
                stderr: "bad page".into()
            })
        );
        // Not JSON: its stderr when it said something there, else its stdout.
        let Err(Failure::Answer { words, .. }) = judge(&ran(Some(0), "colinux-setup 0.1.0\n", ""))
        else {
            panic!("not an answer")
        };
        assert_eq!(words, "colinux-setup 0.1.0");
        let Err(Failure::Answer { words, .. }) = judge(&ran(Some(0), "", "no answer\n")) else {
            panic!("not an answer")
        };
        assert_eq!(words, "no answer");
    }

    #[test]
    fn run_captures_both_streams_and_the_code() {
        let _l = lock();
        let ran = run(sh("echo out; echo err >&2; exit 3"), LIMIT).expect("ran");
        assert_eq!(ran.code, Some(3));
        assert_eq!(ran.stdout, b"out\n");
        assert_eq!(ran.stderr, b"err\n");
        // stdin is null: a program reading it sees the end at once.
        let ran = run(sh("cat; echo done"), LIMIT).expect("ran");
        assert_eq!((ran.code, &ran.stdout[..]), (Some(0), &b"done\n"[..]));
    }

    #[test]
    fn run_stops_a_program_past_the_limit() {
        let _l = lock();
        let t = Instant::now();
        let e = run(
            sh("echo slow >&2; exec sleep 30"),
            Duration::from_millis(300),
        )
        .expect_err("stopped");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert_eq!(
            e,
            Failure::Timeout {
                limit: Duration::from_millis(300),
                stderr: "slow".into()
            }
        );
    }

    #[test]
    fn run_names_a_program_that_cannot_start() {
        let _l = lock();
        let e = run(Command::new("/nonexistent/colinux-setup-ui.exe"), LIMIT)
            .expect_err("no such program");
        assert!(matches!(&e, Failure::Start(s) if !s.is_empty()), "{e:?}");
    }

    #[test]
    fn rows_are_placed_as_setup_msi_installs_them() {
        let p = |n: &str| place(n).map(|p| p.to_string_lossy().replace('\\', "/"));
        assert_eq!(
            p("ColinuxSetupExe").as_deref(),
            Some("bin/colinux-setup.exe")
        );
        assert_eq!(
            p("ColinuxSetupAsset.busybox").as_deref(),
            Some("assets/busybox")
        );
        assert_eq!(
            p("ColinuxSetupAsset.busybox.applets").as_deref(),
            Some("assets/busybox.applets")
        );
        for other in [
            "ColinuxSetupCa",
            "ColinuxSetupAsset.",
            "ColinuxSetupAsset..",
            "ColinuxSetupAsset...",
            "ColinuxSetupAsset.a/b",
            "ColinuxSetupAsset.a\\b",
            "ColinuxSetupAsset.C:x",
            "colinuxsetupexe",
            "",
        ] {
            assert_eq!(p(other), None, "{other}");
        }
        // "..." is three dots: a name, not a way out of assets\.
        assert_eq!(p("ColinuxSetupAsset.x..y").as_deref(), Some("assets/x..y"));
    }

    #[test]
    fn unpack_lays_out_bin_and_assets_in_a_new_folder_each_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let program: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let fake = Fake::with_rows(vec![
            ("ColinuxSetupCa", b"the dll".to_vec()),
            ("ColinuxSetupExe", program.clone()),
            ("ColinuxSetupAsset.busybox", b"ELF".to_vec()),
            ("ColinuxSetupAsset.busybox.applets", b"/bin/sh\n".to_vec()),
            ("ColinuxSetupAsset..", b"escape".to_vec()),
            ("Other", b"x".to_vec()),
        ]);
        let a = unpack(&fake, dir.path()).expect("unpacked");
        let b = unpack(&fake, dir.path()).expect("unpacked");
        assert_ne!(a.folder, b.folder);
        for u in [&a, &b] {
            assert_eq!(u.folder.parent(), Some(dir.path()));
            let name = u
                .folder
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            assert!(
                name.starts_with(&format!("colinux-setup-ui-{}-", std::process::id())),
                "{name}"
            );
            assert_eq!(u.exe, u.folder.join("bin").join("colinux-setup.exe"));
            assert_eq!(std::fs::read(&u.exe).expect("exe"), program);
            let assets = u.folder.join("assets");
            assert_eq!(
                std::fs::read(assets.join("busybox")).expect("asset"),
                b"ELF"
            );
            let mut listed: Vec<String> = std::fs::read_dir(&assets)
                .expect("assets")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            listed.sort();
            assert_eq!(listed, ["busybox", "busybox.applets"]);
            assert_eq!(std::fs::read_dir(&u.folder).expect("folder").count(), 2);
        }
        assert_eq!(
            *fake.read.borrow(),
            [
                "ColinuxSetupExe",
                "ColinuxSetupAsset.busybox",
                "ColinuxSetupAsset.busybox.applets"
            ]
            .repeat(2),
            "only the rows it places are read"
        );
        remove_best_effort(&a.folder);
        assert!(!a.folder.exists());
    }

    #[test]
    fn unpack_refuses_a_missing_empty_or_broken_program_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (rows, says) in [
            (
                vec![("ColinuxSetupAsset.busybox", b"ELF".to_vec())],
                "no Binary row ColinuxSetupExe",
            ),
            (
                vec![("ColinuxSetupExe", Vec::new())],
                "no Binary row ColinuxSetupExe, or an empty one",
            ),
            (vec![("ColinuxSetupExe", BROKEN.to_vec())], "stream broke"),
            (
                vec![
                    ("ColinuxSetupExe", b"MZ".to_vec()),
                    ("ColinuxSetupAsset.busybox", BROKEN.to_vec()),
                ],
                "stream broke",
            ),
        ] {
            let e = unpack(&Fake::with_rows(rows), dir.path()).expect_err("refused");
            assert!(e.to_string().contains(says), "{e}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn logged_values_are_one_short_line() {
        assert_eq!(log_value("256"), "256");
        assert_eq!(log_value("a\r\nb\nc"), "a\\nb\\nc");
        let long = log_value(&"x".repeat(200));
        assert_eq!(long, format!("{}...", "x".repeat(LOG_VALUE_MAX)));
    }

    #[test]
    fn log_text_is_escaped_for_msi_formatting() {
        assert_eq!(
            msi_escape("Usage: colinux-setup msi [OPTIONS] {x}"),
            "Usage: colinux-setup msi [\\[]OPTIONS[\\]] [\\{]x[\\}]"
        );
        assert_eq!(msi_escape("plain"), "plain");
    }

    /// A Binary row whose stream fails after its first byte.
    const BROKEN: &[u8] = b"BROKEN";

    /// The installer as a test sees it: properties in a list, the Binary table's rows,
    /// the log; which rows were read.
    struct Fake {
        props: RefCell<Vec<(String, String)>>,
        rows: Vec<(String, Vec<u8>)>,
        read: RefCell<Vec<String>>,
        logs: RefCell<Vec<String>>,
    }

    impl Fake {
        /// `props`, and a shell script `script` as the program (none: no program row)
        /// with an applet list as its one asset.
        fn new(props: &[(&str, &str)], script: Option<&str>) -> Fake {
            let mut rows = vec![("ColinuxSetupAsset.busybox.applets", b"/bin/sh".to_vec())];
            if let Some(script) = script {
                rows.push((
                    "ColinuxSetupExe",
                    format!("#!/bin/sh\n{script}\n").into_bytes(),
                ));
            }
            let mut fake = Fake::with_rows(rows);
            *fake.props.get_mut() = props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            fake
        }

        fn with_rows(rows: Vec<(&str, Vec<u8>)>) -> Fake {
            Fake {
                props: RefCell::default(),
                rows: rows.into_iter().map(|(n, d)| (n.to_owned(), d)).collect(),
                read: RefCell::default(),
                logs: RefCell::default(),
            }
        }

        fn get(&self, name: &str) -> Option<String> {
            self.props
                .borrow()
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    impl Session for Fake {
        fn property(&self, name: &str) -> Result<String, String> {
            Ok(self.get(name).unwrap_or_default())
        }

        fn set_property(&self, name: &str, value: &str) -> Result<(), String> {
            let mut props = self.props.borrow_mut();
            props.retain(|(k, _)| k != name);
            props.push((name.to_owned(), value.to_owned()));
            Ok(())
        }

        fn binaries(
            &self,
            wanted: &dyn Fn(&str) -> bool,
            each: &mut EachRow<'_>,
        ) -> io::Result<()> {
            for (name, data) in &self.rows {
                if !wanted(name) {
                    continue;
                }
                self.read.borrow_mut().push(name.clone());
                let broken = data == BROKEN;
                let mut at = 0;
                each(name, &mut |buf: &mut [u8]| {
                    if broken && at > 0 {
                        return Err(io::Error::other("stream broke"));
                    }
                    let step = if broken { 1 } else { 5000 };
                    let n = buf.len().min(data.len() - at).min(step);
                    buf[..n].copy_from_slice(&data[at..at + n]);
                    at += n;
                    Ok(n)
                })?;
            }
            Ok(())
        }

        fn log(&self, text: &str) {
            self.logs.borrow_mut().push(text.to_owned());
        }
    }

    const PROPS: &[(&str, &str)] = &[
        ("UI_PROPERTIES", "RAMMB;SUBNET;INSTALLDIR"),
        ("UI_PAGE", "sizes"),
        ("RAMMB", "128"),
        ("INSTALLDIR", "C:\\coLinux\\"),
        ("UI_ERROR", "an earlier failure"),
    ];

    #[test]
    fn bridge_sets_the_programs_answer_and_removes_its_copy() {
        let _l = lock();
        let dir = tempfile::tempdir().expect("tempdir");
        // The stand-in answers with its arguments, one property each, and the asset
        // it finds in ..\assets, as the program finds its busybox.
        let fake = Fake::new(
            PROPS,
            Some(
                r#"applets=$(cat "$(dirname "$0")/../assets/busybox.applets")
printf '{"A1":"%s","A2":"%s","A3":"%s","A4":"%s","A5":"%s","A6":"%s","A7":"%s","A8":"%s","A9":"%s","A10":"%s","APPLETS":"%s"}' "$@" "$applets" | sed 's/\\/\\\\/g'"#,
            ),
        );
        bridge(&fake, dir.path(), LIMIT);
        let got = |n: &str| fake.get(n).unwrap_or_else(|| panic!("{n} unset"));
        let args: Vec<String> = (1..=10).map(|i| got(&format!("A{i}"))).collect();
        assert_eq!(
            args,
            [
                "msi",
                "ui",
                "--page",
                "sizes",
                "--property",
                "RAMMB=128",
                "--property",
                "SUBNET=",
                "--property",
                "INSTALLDIR=C:\\coLinux\\"
            ]
        );
        assert_eq!(got("APPLETS"), "/bin/sh");
        assert_eq!(got("UI_ERROR"), "", "a success clears UI_ERROR");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "the unpacked folder is left"
        );
        let logs = fake.logs.borrow();
        assert!(
            logs.iter()
                .any(|l| l.starts_with("ColinuxSetupUi: the program answered in")
                    && l.contains("A4=sizes")),
            "{logs:?}"
        );
    }

    #[test]
    fn bridge_puts_a_failure_in_ui_error_with_the_programs_words() {
        let _l = lock();
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = Fake::new(
            PROPS,
            Some("echo 'error: unrecognized subcommand ui' >&2; exit 2"),
        );
        bridge(&fake, dir.path(), LIMIT);
        let e = fake.get("UI_ERROR").expect("UI_ERROR");
        assert_eq!(
            e,
            "colinux-setup could not check these answers: the program stopped with exit code 2. It said: error: unrecognized subcommand ui"
        );
        assert_eq!(fake.get("RAMMB").as_deref(), Some("128"), "left alone");
        assert!(
            fake.logs.borrow().iter().any(|l| l.ends_with(&e)),
            "{:?}",
            fake.logs.borrow()
        );
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);

        let fake = Fake::new(PROPS, Some("echo colinux-setup 0.1.0"));
        bridge(&fake, dir.path(), LIMIT);
        let e = fake.get("UI_ERROR").expect("UI_ERROR");
        assert!(
            e.contains("not a JSON object of strings")
                && e.ends_with("It said: colinux-setup 0.1.0"),
            "{e}"
        );

        let fake = Fake::new(PROPS, Some("exec sleep 30"));
        bridge(&fake, dir.path(), Duration::from_millis(200));
        let e = fake.get("UI_ERROR").expect("UI_ERROR");
        assert!(e.contains("no answer within 0 seconds"), "{e}");

        let fake = Fake::new(PROPS, None);
        bridge(&fake, dir.path(), LIMIT);
        let e = fake.get("UI_ERROR").expect("UI_ERROR");
        assert_eq!(
            e,
            "colinux-setup could not check these answers: the installer could not unpack the program (it has no Binary row ColinuxSetupExe, or an empty one)."
        );
    }
}
