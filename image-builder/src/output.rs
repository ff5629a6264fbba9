//! The image file being written: a temporary sibling of the target, written at offsets
//! (blocks never written stay holes), synced, and renamed into place only when complete.
//!
//! A VHDX output ([`DiskFormat::Vhdx`]) is the same temporary file holding a dynamic
//! VHDX: writes at virtual offsets go through [`VhdxWriter`] to payload blocks, and its
//! tables are written at [`Output::commit`], before the sync and the rename.
//!
//! Dropping an [`Output`] that was not committed deletes the temporary file, so an
//! error or an interrupt leaves nothing partial behind. A SIGKILL can leave the
//! temporary `.NAME.*.partial` file (never a partial target); the next build ignores it.
//!
//! # Platform specific behavior
//!
//! On Unix, unwritten ranges are holes of the sparse file. On Windows NTFS files are
//! only sparse once marked so: the temporary file is marked with FSCTL_SET_SPARSE
//! before its length is set; where the volume cannot (FAT32, exFAT) unwritten ranges
//! read as zeros but take disk space.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::disk::DiskFormat;
use crate::error::Error;
use crate::vhdx::writer::VhdxWriter;

/// An image file under construction.
pub(crate) struct Output {
    tmp: NamedTempFile,
    target: PathBuf,
    /// A VHDX's block mapping; `None` for a raw image.
    vhdx: Option<VhdxWriter>,
    /// The disk's size (a VHDX's virtual size, set at the end).
    len: u64,
    /// What identifies the image, for a VHDX's GUIDs.
    seed: Vec<u8>,
}

impl Output {
    /// Creates the temporary file beside `target` for a disk of `len` bytes (0: set at
    /// the end) held as `format`. Refuses an existing `target` unless `force`, and a VHDX
    /// larger than the format allows.
    pub(crate) fn create(
        target: &Path,
        len: u64,
        force: bool,
        format: DiskFormat,
    ) -> Result<Output, Error> {
        check_target(target, force)?;
        if format == DiskFormat::Vhdx && len > crate::vhdx::MAX_VIRTUAL_SIZE {
            return Err(Error::TooLarge {
                size: len,
                max: crate::vhdx::MAX_VIRTUAL_SIZE,
            });
        }
        let dir = parent_dir(target);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| Error::Write {
                path: target.to_owned(),
                source: e,
            })?;
        let vhdx = (format == DiskFormat::Vhdx).then(VhdxWriter::default);
        let out = Output {
            tmp,
            target: target.to_owned(),
            len,
            vhdx,
            seed: Vec::new(),
        };
        #[cfg(windows)]
        set_sparse(out.file());
        if out.vhdx.is_none() {
            out.file().set_len(len).map_err(|e| out.err(e))?;
        }
        Ok(out)
    }

    fn file(&self) -> &File {
        self.tmp.as_file()
    }

    fn err(&self, e: io::Error) -> Error {
        Error::Write {
            path: self.tmp.path().to_owned(),
            source: e,
        }
    }

    /// Writes `data` at byte `offset` of the disk.
    pub(crate) fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let file = self.tmp.as_file();
        let res = match &mut self.vhdx {
            None => write_all_at(file, data, offset),
            Some(v) => v.write(offset, data, &mut |at, d| write_all_at(file, d, at)),
        };
        res.map_err(|e| self.err(e))
    }

    /// Sets the disk's size (the image's size, once a growing image knows it).
    pub(crate) fn set_len(&mut self, len: u64) -> Result<(), Error> {
        self.len = len;
        if self.vhdx.is_some() {
            return Ok(());
        }
        self.file().set_len(len).map_err(|e| self.err(e))
    }

    /// Names what identifies the image (its UUID and the like): a VHDX's GUIDs are
    /// derived from it, so the same image gives the same file.
    pub(crate) fn identify(&mut self, seed: &[u8]) {
        self.seed = seed.to_vec();
    }

    /// Writes a VHDX's tables, syncs the file and renames it over the target.
    pub(crate) fn commit(self, force: bool) -> Result<(), Error> {
        if let Some(v) = &self.vhdx {
            if self.len > crate::vhdx::MAX_VIRTUAL_SIZE {
                return Err(Error::TooLarge {
                    size: self.len,
                    max: crate::vhdx::MAX_VIRTUAL_SIZE,
                });
            }
            let file = self.tmp.as_file();
            let end = v
                .finish(self.len, &self.seed, &mut |at, d| write_all_at(file, d, at))
                .map_err(|e| self.err(e))?
                .map_err(|problem| Error::Vhdx {
                    path: self.target.clone(),
                    problem,
                })?;
            file.set_len(end).map_err(|e| self.err(e))?;
        }
        self.file().sync_all().map_err(|e| self.err(e))?;
        let target = self.target.clone();
        let res = if force {
            self.tmp.persist(&target).map(|_| ())
        } else {
            self.tmp.persist_noclobber(&target).map(|_| ())
        };
        res.map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                Error::OutputExists(target.clone())
            } else {
                Error::Write {
                    path: target.clone(),
                    source: e.error,
                }
            }
        })
    }
}

/// Refuses an existing target (unless `force`) and a target that is a folder.
pub(crate) fn check_target(target: &Path, force: bool) -> Result<(), Error> {
    match std::fs::symlink_metadata(target) {
        Ok(md) if md.is_dir() => Err(Error::Write {
            path: target.to_owned(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "it is a folder"),
        }),
        Ok(_) if !force => Err(Error::OutputExists(target.to_owned())),
        _ => Ok(()),
    }
}

/// The folder a target is written in ("." for a bare file name).
pub(crate) fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn write_all_at(f: &File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, data, offset)
}

/// Marks `f` sparse, so the ranges never written take no disk space. Best effort: a
/// volume without sparse files (FAT32, exFAT) refuses, and the image is still correct.
#[cfg(windows)]
#[allow(unsafe_code)]
fn set_sparse(f: &File) {
    use std::os::windows::io::AsRawHandle as _;
    use windows_sys::Win32::System::IO::DeviceIoControl;
    use windows_sys::Win32::System::Ioctl::FSCTL_SET_SPARSE;
    let mut returned = 0u32;
    // SAFETY: the handle is the open file's and outlives the call; FSCTL_SET_SPARSE
    // takes no input or output buffer (null, 0), `returned` is a valid u32, and the
    // call is synchronous (no OVERLAPPED).
    let _ = unsafe {
        DeviceIoControl(
            f.as_raw_handle(),
            FSCTL_SET_SPARSE,
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
            0,
            &mut returned,
            std::ptr::null_mut(),
        )
    };
}

#[cfg(windows)]
fn write_all_at(f: &File, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !data.is_empty() {
        let n = f.seek_write(data, offset)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing"));
        }
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Reads as much of `buf` as the file holds from `offset`; returns the count.
pub(crate) fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(f, &mut buf[done..], offset + done as u64);
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(f, &mut buf[done..], offset + done as u64);
        match n {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
