//! What a command prints on stdout: its report, its JSON. A reader that goes away
//! (`colinux-setup images inspect root.img | head -1`) ends what stdout can show, not the
//! command: Rust's `println!` panics on a closed pipe, which would abort an install or
//! an uninstall half-way and print a panic where the user asked for a report. Here a
//! line that cannot be written is dropped and the command goes on; its exit code still
//! says how it ended. (Restoring the default SIGPIPE action instead would kill the
//! process outright, including the background machine's, which writes to sockets.)

use std::io::Write as _;

/// Writes `args` to stdout; a write error (a closed pipe, a full disk behind a
/// redirection) drops the text.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
}

/// Writes `args` and a newline to stdout, as [`write`].
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// `println!` for reports on stdout (see the module doc).
macro_rules! outln {
    () => {
        $crate::out::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::write_line(format_args!($($arg)*))
    };
}

/// `print!` for reports on stdout (see the module doc).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};
