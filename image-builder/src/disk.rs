//! The virtual disk an image is read from: the one place where `inspect`, `check` and an
//! image read as a build source open an image file. A raw image is its own file; a VHDX
//! (recognised by its signature, or refused when a `.vhdx` file lacks it) is decoded and
//! checked at open ([`crate::vhdx`]) and read through its block allocation table, blocks
//! not in the file reading as zeros. Either way the readers see the same disk, through
//! positional reads ([`VirtualDisk::read_at`]) or `Read + Seek`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::output::read_at;
use crate::vhdx::VhdxError;
use crate::vhdx::header::FILE_SIGNATURE;
use crate::vhdx::reader::VhdxFile;

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

enum Inner {
    Raw(File),
    Vhdx(Box<VhdxFile>),
}

/// An image file opened for reading, as the disk it holds.
pub struct VirtualDisk {
    inner: Inner,
    path: PathBuf,
    file_len: u64,
    pos: u64,
}

impl std::fmt::Debug for VirtualDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualDisk")
            .field("path", &self.path)
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

/// Whether `path` is (or is named as) a VHDX: it begins with the VHDX signature, or its
/// name ends in `.vhdx`.
pub(crate) fn is_vhdx(path: &Path) -> bool {
    let mut sig = [0u8; 8];
    DiskFormat::from_path(path) == DiskFormat::Vhdx
        || File::open(path).is_ok_and(|f| read_at(&f, &mut sig, 0).is_ok_and(|n| n == 8))
            && &sig == FILE_SIGNATURE
}

impl VirtualDisk {
    /// Opens `path`: a VHDX when it begins with the VHDX signature (decoded and checked
    /// now), a raw image otherwise. A file named `.vhdx` without the signature is refused.
    pub fn open(path: &Path) -> Result<VirtualDisk, Error> {
        let err = |e| Error::Read {
            path: path.to_owned(),
            source: e,
        };
        let file = File::open(path).map_err(err)?;
        // The end, not the metadata: a block device's metadata says 0 bytes.
        let file_len = (&file).seek(SeekFrom::End(0)).map_err(err)?;
        let mut sig = [0u8; 8];
        let n = read_at(&file, &mut sig, 0).map_err(err)?;
        let inner = if n == 8 && &sig == FILE_SIGNATURE {
            Inner::Vhdx(Box::new(VhdxFile::open(file, file_len, path)?))
        } else if DiskFormat::from_path(path) == DiskFormat::Vhdx {
            return Err(Error::Vhdx {
                path: path.to_owned(),
                problem: VhdxError::Signature,
            });
        } else {
            Inner::Raw(file)
        };
        Ok(VirtualDisk {
            inner,
            path: path.to_owned(),
            file_len,
            pos: 0,
        })
    }

    /// How the file holds the disk.
    pub fn format(&self) -> DiskFormat {
        match self.inner {
            Inner::Raw(_) => DiskFormat::Raw,
            Inner::Vhdx(_) => DiskFormat::Vhdx,
        }
    }

    /// The disk's size in bytes (a VHDX's virtual size).
    pub fn len(&self) -> u64 {
        match &self.inner {
            Inner::Raw(_) => self.file_len,
            Inner::Vhdx(v) => v.virtual_size(),
        }
    }

    /// Whether the disk has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's own length in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Reads as much of `buf` as the disk holds from `offset`; returns the count (0 at
    /// or past its end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match &self.inner {
            Inner::Raw(f) => read_at(f, buf, offset),
            Inner::Vhdx(v) => v.read_at(buf, offset),
        }
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
