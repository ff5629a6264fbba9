//! Reading a file we do not trust into memory: config.txt (`config check|show`,
//! `status`), answer files, profile files, install-state.json and the install's journal.
//!
//! Every such file is read the same way, so that no reader can be made to wait or to
//! grow without bound:
//!
//! - only a regular file is read (a symbolic link is followed to one). A FIFO, a device
//!   such as /dev/zero, a socket or a folder is refused by its kind. On Unix the file is
//!   opened with `O_NONBLOCK` and judged by `fstat` of what was opened, so a FIFO never
//!   blocks the open and a file swapped after a check is still judged by what is read;
//! - at most `limit` bytes are read, and a larger file is refused with the limit in the
//!   error: what a reader keeps in memory is bounded by the limit, whatever the file
//!   claims or grows to while it is read.
//!
//! The limits are far above what each file holds in practice (a config.txt is a few
//! hundred bytes; 1 MiB is thousands of times that) and far below what would strain a
//! host.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most of a config.txt that is read (colinux-daemon's files are a few hundred
/// bytes; its kernel command line holds 255).
pub const CONFIG_TXT_LIMIT: u64 = 1 << 20;
/// The most of an answer file that is read (`KEY = value` lines; some hundred bytes).
pub const ANSWERS_LIMIT: u64 = 1 << 20;
/// The most of a profile file that is read (the shipped ones are about 4 KB).
pub const PROFILE_LIMIT: u64 = 1 << 20;
/// The most of install-state.json, the journal or a rebuild's note that is read (a
/// machine's state is a few KB).
pub const STATE_LIMIT: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// There is no such file.
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// It is something other than a regular file.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is, in words (`a FIFO (named pipe)`, `a character device`).
        kind: &'static str,
    },
    /// It is larger than the reader's limit.
    #[error(
        "{} is larger than {}, the most colinux-setup reads of {what}", path.display(), Size(*limit)
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
        /// What kind of file the reader expected (`a config.txt`).
        what: &'static str,
    },
    /// It is not UTF-8 text.
    #[error("{} is not UTF-8 text (the first bad byte is at offset {offset})", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// Where the text stops being UTF-8.
        offset: usize,
    },
    /// The system refused to open or read it.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ReadError {
    /// Whether the file does not exist (callers for whom that means "none yet").
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }

    /// Why, without the path: for messages that name the file first (`FILE: error: ...`).
    pub fn reason(&self) -> String {
        match self {
            ReadError::NotFound { .. } => "no such file".to_owned(),
            ReadError::NotAFile { kind, .. } => format!("it is {kind}, not a regular file"),
            ReadError::TooLarge { limit, what, .. } => format!(
                "it is larger than {}, the most colinux-setup reads of {what}",
                Size(*limit)
            ),
            ReadError::NotText { offset, .. } => {
                format!("it is not UTF-8 text (the first bad byte is at offset {offset})")
            }
            ReadError::Io { source, .. } => source.to_string(),
        }
    }
}

/// A byte count as people read it: `1 MiB (1048576 bytes)`.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
            write!(f, "{} MiB ({b} bytes)", b >> 20)
        } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
            write!(f, "{} KiB ({b} bytes)", b >> 10)
        } else {
            write!(f, "{b} bytes")
        }
    }
}

/// Opens `path` for reading only if it is a regular file (following symbolic links),
/// without ever waiting on a FIFO.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    let io = |source: std::io::Error| {
        // A path below a file (`a-file/config.txt`) names nothing either.
        if matches!(
            source.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ) {
            ReadError::NotFound {
                path: path.to_owned(),
            }
        } else {
            ReadError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let file = open_nonblocking(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_owned(),
            kind: kind_of(&meta.file_type()),
        });
    }
    Ok(file)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. It
    // changes nothing for a regular file, the only kind that is then read.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    // Windows has no FIFOs in the file system (named pipes live under \\.\pipe\), and
    // opening a device by a path such as NUL or CON returns at once; the kind is judged
    // from the open file's metadata.
    File::open(path)
}

/// What a file type is, in words.
pub fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        return "a symbolic link";
    }
    "not a file"
}

/// Reads all of the regular file `path`, refusing one of more than `limit` bytes;
/// `what` names the kind of file in that error (`a config.txt`).
pub fn read(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path)?;
    let too_large = || ReadError::TooLarge {
        path: path.to_owned(),
        limit,
        what,
    };
    let claimed = file.metadata().map(|m| m.len()).unwrap_or(0);
    if claimed > limit {
        return Err(too_large());
    }
    // The length read is what counts: the file may grow while it is read. One byte
    // more than the limit is asked for, to tell "exactly the limit" from "more".
    let mut buf = Vec::with_capacity(usize::try_from(claimed).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64, what: &'static str) -> Result<String, ReadError> {
    let bytes = read(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| ReadError::NotText {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Where a binary file gives itself away: the offset of a NUL byte among the first
/// 8 KiB (the rule git and grep use), unless the text is UTF-16, which has NULs and is
/// left to the reader that knows what to say about it.
pub fn binary_at(bytes: &[u8]) -> Option<usize> {
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return None;
    }
    bytes.iter().take(8 << 10).position(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_at_the_limit_is_read_and_one_byte_more_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("f");
        std::fs::write(&f, vec![b'a'; 16]).expect("write");
        assert_eq!(read(&f, 16, "a test file").expect("read").len(), 16);
        let e = read(&f, 15, "a test file").expect_err("too large");
        assert!(matches!(e, ReadError::TooLarge { limit: 15, .. }), "{e}");
        assert!(
            e.to_string()
                .contains("is larger than 15 bytes, the most colinux-setup reads of a test file"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn devices_fifos_and_folders_are_refused_by_kind_without_blocking() {
        let d = tempfile::tempdir().expect("tempdir");
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        for (path, kind) in [
            (fifo.as_path(), "a FIFO (named pipe)"),
            (Path::new("/dev/zero"), "a character device"),
            (d.path(), "a folder"),
        ] {
            match read(path, 1 << 20, "a test file") {
                Err(ReadError::NotAFile { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
    }

    #[test]
    fn nul_bytes_mark_binary_files_but_not_utf16_text() {
        assert_eq!(binary_at(b"kernel=vmlinux\n"), None);
        assert_eq!(binary_at(b"\x7fELF\x02\x01\x01\x00"), Some(7));
        assert_eq!(binary_at(b"\xff\xfek\x00e\x00"), None);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(Size(1 << 20).to_string(), "1 MiB (1048576 bytes)");
        assert_eq!(Size(4096).to_string(), "4 KiB (4096 bytes)");
        assert_eq!(Size(15).to_string(), "15 bytes");
    }
}
