//! How an image file holds its disk ([`DiskFormat`]: raw, or a dynamic VHDX), and the
//! public view of that disk ([`VirtualDisk`]). Reading goes through the one image reader,
//! [`crate::reader::ImageFile`], which `inspect`, `check` and an image read as a build
//! source share: it recognises a VHDX by its signature (refusing a `.vhdx` file that
//! lacks it), decodes and checks it at open ([`crate::vhdx`]) and reads its virtual disk
//! through the block allocation table, blocks not in the file reading as zeros.
//! [`VirtualDisk`] adds a position for `Read + Seek` (what copies a VHDX's disk for
//! `e2fsck`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::Error;
use crate::output::read_at;
use crate::reader::ImageFile;
use crate::vhdx::header::FILE_SIGNATURE;

/// How an image file holds its disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// The disk's bytes, as they are (holes left sparse).
    #[default]
    Raw,
    /// A dynamic VHDX (Hyper-V, WSL 2): only blocks with data are in the file.
    Vhdx,
}

impl DiskFormat {
    /// The format a file name asks for: VHDX for a `.vhdx` name (any case), raw otherwise.
    pub fn from_path(path: &Path) -> DiskFormat {
        match path.extension() {
            Some(e) if e.eq_ignore_ascii_case("vhdx") => DiskFormat::Vhdx,
            _ => DiskFormat::Raw,
        }
    }

    /// Its name, as `--format` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Vhdx => "vhdx",
        }
    }
}

impl std::str::FromStr for DiskFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<DiskFormat, Error> {
        match s {
            "raw" => Ok(DiskFormat::Raw),
            "vhdx" => Ok(DiskFormat::Vhdx),
            _ => Err(Error::BadArgument(format!(
                "unknown disk format '{s}': use raw or vhdx"
            ))),
        }
    }
}

/// An image file opened for reading, as the disk it holds: the reader every image goes
/// through ([`crate::reader::ImageFile`]), with a position for `Read + Seek`.
pub struct VirtualDisk {
    img: ImageFile,
    pos: u64,
}

impl std::fmt::Debug for VirtualDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualDisk")
            .field("path", &self.img.path())
            .field("format", &self.format())
            .field("len", &self.len())
            .finish()
    }
}

/// The file name an image's identifiers (UUID, hash seed) are derived from: its own, but
/// for a VHDX the name the raw image of the same stem has (`root.vhdx` -> `root.img`), so
/// that a VHDX holds byte for byte the filesystem of the raw image built from the same
/// inputs.
pub(crate) fn id_name(out: &Path, format: DiskFormat) -> Vec<u8> {
    let name = match format {
        DiskFormat::Raw => out.file_name(),
        DiskFormat::Vhdx => out.file_stem(),
    };
    let mut v = name
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default();
    if format == DiskFormat::Vhdx {
        v.extend_from_slice(b".img");
    }
    v
}

/// Whether `path`, a regular file or block device (`seekable`), is or is named as a
/// VHDX: its name ends in `.vhdx`, or it begins with the VHDX signature. A pipe never is
/// (it is only ever a tar stream, and is not opened here: opening one waits for a
/// writer, and reading it would consume it).
pub(crate) fn is_vhdx(path: &Path, seekable: bool) -> bool {
    let mut sig = [0u8; 8];
    seekable
        && (DiskFormat::from_path(path) == DiskFormat::Vhdx
            || File::open(path).is_ok_and(|f| read_at(&f, &mut sig, 0).is_ok_and(|n| n == 8))
                && &sig == FILE_SIGNATURE)
}

impl VirtualDisk {
    /// Opens `path` as [`crate::reader::ImageFile`] does: a VHDX when it begins with the
    /// VHDX signature (decoded and checked now), a raw image otherwise; a file named
    /// `.vhdx` without the signature, and anything but a regular file or block device,
    /// are refused.
    pub fn open(path: &Path) -> Result<VirtualDisk, Error> {
        Ok(VirtualDisk {
            img: ImageFile::open(path)?,
            pos: 0,
        })
    }

    /// How the file holds the disk.
    pub fn format(&self) -> DiskFormat {
        self.img.format()
    }

    /// The disk's size in bytes (a VHDX's virtual size).
    pub fn len(&self) -> u64 {
        self.img.len()
    }

    /// Whether the disk has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's own length in bytes.
    pub fn file_len(&self) -> u64 {
        self.img.file_len()
    }

    /// Reads as much of `buf` as the disk holds from `offset`; returns the count (0 at
    /// or past its end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.img.read_at(buf, offset)
    }
}

impl Read for VirtualDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for VirtualDisk {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the disk",
            )
        })?;
        Ok(self.pos)
    }
}
