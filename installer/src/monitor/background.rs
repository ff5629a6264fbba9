//! A machine's console while it runs in the background (`start`): one Unix socket that
//! any number of clients attach to.
//!
//! The background process (`colinux-setup run-machine`) runs the monitor with its
//! console on pipes ([`super::RunOptions::console_in`], [`super::RunOptions::console_out`]).
//! [`Console::serve`] listens on a socket in the run's private folder (mode 0700: the
//! console is a root shell in the guest, so only the user who started the machine may
//! reach it): every byte the guest prints goes to every attached client (a new one
//! first gets the last few KB, so it sees the prompt), and what any client writes is
//! typed on the console.
//!
//! Two clients use it:
//!
//! - [`attach`] (`console`, and `shell` without a command): the terminal in raw mode,
//!   keys to the guest, its output to the terminal, until Ctrl-] (or the end of a piped
//!   input);
//! - [`run_command`] (`shell -- CMD`): types one command line between two markers and
//!   reads the console until the second one, which carries the command's exit status.
//!   The markers are typed with an empty pair of quotes inside (`COLINUX""-SHELL-…`), so
//!   the console's echo of the typed line never matches: only what the guest's shell
//!   prints does.
//!
//! # Limitations
//!
//! The console is the guest's one root shell (the busybox root's inittab respawns it),
//! not a private session: `shell -- CMD` needs that shell at its prompt (a program a
//! `console` user left running in it would read the typed line instead), and kernel
//! messages printed while the command runs are part of its output. `shell` commands wait
//! for each other (a lock file beside the socket). A guest with an ssh server is reached
//! with ssh through its slirp redirection or TAP address instead (`putty show`).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of the console a client gets when it attaches.
const BACKLOG: usize = 4096;
/// The key that detaches `console` from the guest (Ctrl-], as telnet's).
pub const DETACH: u8 = 0x1d;

/// Why a client could not use the console.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The socket is not there or refuses the connection (the machine stopped).
    #[error("cannot reach the machine's console {}: {source}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The socket named by the run record is not one this user's machine made.
    #[error("{} is not the console of a machine this user started ({why})", path.display())]
    NotOurs {
        /// The socket.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The command's end did not come in time.
    #[error(
        "the command did not finish within {secs} s (it may still run in the guest); what it printed:\n{output}"
    )]
    Timeout {
        /// The limit.
        secs: u64,
        /// What came so far.
        output: String,
    },
    /// The console closed (the machine stopped) before the command's end.
    #[error(
        "the machine's console closed before the command finished (the machine stopped?); what it printed:\n{output}"
    )]
    Closed {
        /// What came so far.
        output: String,
    },
    /// Reading or writing the console or the terminal failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The background side: the socket and the clients attached to it.
pub struct Console {
    clients: Arc<Mutex<Vec<UnixStream>>>,
    backlog: Arc<Mutex<VecDeque<u8>>>,
}

impl Console {
    /// Listens on `path` (in a private folder) and types what clients send into `input`,
    /// the guest's console input.
    pub fn serve(path: &Path, input: std::io::PipeWriter) -> std::io::Result<Console> {
        let listener = UnixListener::bind(path)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        let clients: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let backlog: Arc<Mutex<VecDeque<u8>>> = Arc::default();
        let input = Arc::new(Mutex::new(input));
        let (c, b) = (Arc::clone(&clients), Arc::clone(&backlog));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // A client that stops reading loses the console, not the guest.
                let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                let Ok(mut out) = stream.try_clone() else {
                    continue;
                };
                if let (Ok(mut clients), Ok(backlog)) = (c.lock(), b.lock()) {
                    let (a, z) = backlog.as_slices();
                    if out.write_all(a).and_then(|()| out.write_all(z)).is_err() {
                        continue;
                    }
                    clients.push(out);
                }
                let input = Arc::clone(&input);
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                            break;
                        };
                        let Ok(mut w) = input.lock() else { break };
                        if w.write_all(chunk).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(Console { clients, backlog })
    }

    /// What the run gives every console byte to ([`super::RunOptions::console_out`]).
    pub fn tap(&self) -> super::ConsoleTap {
        let (clients, backlog) = (Arc::clone(&self.clients), Arc::clone(&self.backlog));
        Arc::new(move |chunk: &[u8]| {
            if let Ok(mut b) = backlog.lock() {
                b.extend(chunk);
                let over = b.len().saturating_sub(BACKLOG);
                b.drain(..over);
            }
            if let Ok(mut cs) = clients.lock() {
                cs.retain_mut(|c| c.write_all(chunk).is_ok());
            }
        })
    }
}

/// Connects to the console at `path`, which must be a socket of this user.
pub fn connect(path: &Path) -> Result<UnixStream, ConsoleError> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let not_ours = |why: String| ConsoleError::NotOurs {
        path: path.to_owned(),
        why,
    };
    let meta = std::fs::symlink_metadata(path).map_err(|source| ConsoleError::Connect {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_socket() {
        return Err(not_ours("it is not a socket".into()));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(not_ours(format!("it belongs to user id {}", meta.uid())));
    }
    UnixStream::connect(path).map_err(|source| ConsoleError::Connect {
        path: path.to_owned(),
        source,
    })
}

/// What a command run through the console printed and how it ended.
#[derive(Debug)]
pub struct CommandResult {
    /// Its output (standard output and error, as the console shows them; `\r` removed).
    pub output: String,
    /// Its exit status in the guest.
    pub status: i32,
}

/// Runs `command` in the guest's console shell and waits for it, at most `timeout`.
pub fn run_command(
    socket: &Path,
    command: &str,
    timeout: Duration,
) -> Result<CommandResult, ConsoleError> {
    let io = |what| move |source| ConsoleError::Io { what, source };
    // One command at a time: the shell reads typed lines in order, but two commands'
    // output would interleave on the one console.
    let lock_path = socket.with_file_name("shell.lock");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io("opening the console's shell lock"))?;
    lock.lock()
        .map_err(io("waiting for another shell command"))?;
    let mut s = connect(socket)?;
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let (begin, end) = markers(&nonce);
    let line = typed_line(&nonce, command);
    s.write_all(line.as_bytes())
        .map_err(io("typing the command on the console"))?;
    let start = Instant::now();
    let mut pending = Vec::new();
    let mut output = String::new();
    let mut inside = false;
    let mut buf = [0u8; 4096];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(ConsoleError::Timeout {
                secs: timeout.as_secs(),
                output,
            });
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .map_err(io("reading the console"))?;
        let n = match s.read(&mut buf) {
            Ok(0) => return Err(ConsoleError::Closed { output }),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(io("reading the console")(e)),
        };
        pending.extend_from_slice(buf.get(..n).unwrap_or_default());
        while let Some(at) = pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=at).collect();
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim_end_matches(['\n', '\r']).replace('\r', "");
            if !inside {
                inside = text.contains(&begin);
                continue;
            }
            if let Some(i) = text.find(&end) {
                output.push_str(text.get(..i).unwrap_or_default());
                let status = text
                    .get(i + end.len()..)
                    .unwrap_or_default()
                    .trim()
                    .parse()
                    .unwrap_or(-1);
                return Ok(CommandResult { output, status });
            }
            output.push_str(&text);
            output.push('\n');
        }
    }
}

/// What the guest's shell prints before and after a command (the end marker is
/// followed by its status).
fn markers(nonce: &str) -> (String, String) {
    (
        format!("COLINUX-SHELL-BEGIN-{nonce}"),
        format!("COLINUX-SHELL-END-{nonce} rc="),
    )
}

/// The line typed on the console for `command`. Ctrl-U first: whatever was typed on
/// the console line is dropped. One line, so the shell prints no prompt between the
/// command and the end marker; the command goes through `eval` as one quoted word, so a
/// trailing `&` or `# comment` in it cannot swallow the marker; the markers are written
/// with `""` inside, so the console's echo of this line matches neither.
fn typed_line(nonce: &str, command: &str) -> String {
    format!(
        "\u{15}echo COLINUX\"\"-SHELL-BEGIN-{nonce}; eval {}; echo \"COLINUX\"\"-SHELL-END-{nonce} rc=$?\"\n",
        sh_quote(command)
    )
}

/// `text` as one word of a shell command line: in single quotes, each `'` as `'\''`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Attaches the terminal (or piped standard input and output) to the console until
/// Ctrl-] on a terminal, the end of piped input, or the machine's end. `Ok(true)` when
/// the console closed because the machine stopped.
pub fn attach(socket: &Path) -> Result<bool, ConsoleError> {
    let io = |what| move |source| ConsoleError::Io { what, source };
    let s = connect(socket)?;
    let stdin = std::io::stdin();
    let tty = rustix::termios::isatty(&stdin);
    // Raw mode: every key (Ctrl-C included) goes to the guest; restored on return.
    let _raw = if tty { RawTerminal::enter() } else { None };
    let mut to_guest = s.try_clone().map_err(io("opening the console"))?;
    let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = Arc::clone(&detached);
    std::thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        let mut buf = [0u8; 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let chunk = buf.get(..n).unwrap_or_default();
            let key = if tty {
                chunk.iter().position(|b| *b == DETACH)
            } else {
                None
            };
            let send = key.map_or(chunk, |k| chunk.get(..k).unwrap_or_default());
            if to_guest.write_all(send).is_err() {
                break;
            }
            if n == 0 || key.is_some() {
                d.store(true, std::sync::atomic::Ordering::SeqCst);
                // A terminal detaches at once; piped input gets a moment for the
                // output of what it typed.
                let _ = to_guest.shutdown(if tty {
                    std::net::Shutdown::Both
                } else {
                    std::net::Shutdown::Write
                });
                break;
            }
        }
    });
    let mut out = std::io::stdout();
    let mut s = s;
    let mut buf = [0u8; 4096];
    loop {
        let quiet = detached.load(std::sync::atomic::Ordering::SeqCst);
        if quiet {
            s.set_read_timeout(Some(Duration::from_secs(1)))
                .map_err(io("reading the console"))?;
        } else {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .map_err(io("reading the console"))?;
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(!detached.load(std::sync::atomic::Ordering::SeqCst)),
            Ok(n) => {
                let _ = out.write_all(buf.get(..n).unwrap_or_default());
                let _ = out.flush();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if quiet {
                    return Ok(false);
                }
            }
            Err(e) => return Err(io("reading the console")(e)),
        }
    }
}

/// The terminal in raw mode while this lives.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_line_never_matches_its_own_markers_and_quotes_the_command() {
        let (begin, end) = markers("42-7");
        for command in [
            "true",
            "echo COLINUX-SHELL-END-42-7 rc=0'",
            "a & # b",
            "it's",
        ] {
            let line = typed_line("42-7", command);
            // The console echoes what is typed: neither marker may appear in it.
            assert!(!line.contains(&begin), "{line}");
            assert!(!line.contains(&end) || command.contains(&end), "{line}");
            assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
        }
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert!(typed_line("1", "a & # b").contains("eval 'a & # b';"));
    }
}
