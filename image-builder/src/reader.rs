//! Reading an existing image: the one place where what a filesystem says becomes reads
//! of the file, shared by `inspect`, `check` and an image read as a build source.
//!
//! An image is untrusted input. [`ImageFile`] opens only regular files and block
//! devices (a FIFO would block the open, and a stream has no offsets), learns the
//! file's real length once, and refuses any read that would run past it *before* it
//! allocates, so no size read from the image can size an allocation beyond the file.
//! [`Fs`] holds the decoded superblock and group descriptors and turns inode and block
//! numbers into such reads, bounded by the filesystem's own counts.
//!
//! An image file is raw (the disk's bytes as they are) or a dynamic VHDX: a file that
//! begins with the VHDX signature is decoded and checked at open ([`crate::vhdx`]), and
//! the one ext decoder then reads its virtual disk, whose length is the VHDX's virtual
//! size, through the same bounded reads. A VHDX's virtual disk can be far larger than
//! the file that holds it, so a read is also refused when it would allocate more bytes
//! than the file itself has (for a raw image the same bound, the file's length).

use std::fmt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::disk::DiskFormat;
use crate::error::Error;
use crate::features::INCOMPAT_64BIT;
use crate::group_desc::{self, GroupDesc, WIDE_DESC_SIZE};
use crate::output::read_at;
use crate::superblock::{SUPERBLOCK_LEN, SUPERBLOCK_OFFSET, Superblock, SuperblockError};
use crate::vhdx::VhdxError;
use crate::vhdx::header::FILE_SIGNATURE;
use crate::vhdx::reader::VhdxFile;

/// What holds the disk an image file is read as.
enum Backing {
    /// The file is the disk.
    Raw(File),
    /// A dynamic VHDX: reads at virtual offsets go through its block allocation table.
    Vhdx(Box<VhdxFile>),
}

/// An image file open for reading, with its length.
pub(crate) struct ImageFile {
    backing: Backing,
    path: PathBuf,
    /// The disk's length: the file's, or a VHDX's virtual size.
    len: u64,
    /// The file's own length (for a raw image, `len`).
    file_len: u64,
}

/// Why a read of an image failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The bytes asked for lie (partly) past the end of the file.
    PastEnd { offset: u64, len: u64 },
    /// The host could not read them.
    Io { offset: u64, source: io::Error },
    /// More bytes than the whole file has (a VHDX's virtual disk, larger than its file).
    Larger {
        offset: u64,
        len: u64,
        file_len: u64,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::PastEnd { offset, len } => write!(
                f,
                "byte {offset} is past the end of the image file ({len} bytes asked for)"
            ),
            ReadError::Io { offset, source } => write!(f, "cannot read byte {offset}: {source}"),
            ReadError::Larger {
                offset,
                len,
                file_len,
            } => write!(
                f,
                "{len} bytes asked for at byte {offset}, more than the whole file holds \
                 ({file_len} bytes)"
            ),
        }
    }
}

impl ReadError {
    /// The error `check` and `inspect` return for it (they stop on I/O errors).
    pub(crate) fn into_error(self, path: &Path) -> Error {
        let source = match self {
            ReadError::Io { source, .. } => source,
            e @ ReadError::PastEnd { .. } => {
                io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string())
            }
            e @ ReadError::Larger { .. } => {
                io::Error::new(io::ErrorKind::InvalidData, e.to_string())
            }
        };
        Error::Read {
            path: path.to_owned(),
            source,
        }
    }
}

impl ImageFile {
    /// Opens `path` as an image: a regular file or a block device, anything else
    /// refused with what it is. The file is opened without blocking, so a FIFO is
    /// refused instead of waiting for a writer. A file that begins with the VHDX
    /// signature is a VHDX, decoded and checked now; a file named `.vhdx` without it is
    /// refused.
    pub(crate) fn open(path: &Path) -> Result<ImageFile, Error> {
        let read_err = |e| Error::Read {
            path: path.to_owned(),
            source: e,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
            opts.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        }
        let file = opts.open(path).map_err(read_err)?;
        let md = file.metadata().map_err(read_err)?;
        if let Some(what) = not_an_image_file(&md) {
            return Err(Error::NotAnImage {
                path: path.to_owned(),
                reason: format!(
                    "it is {what}; an image is read from a regular file or a block device"
                ),
            });
        }
        // The end, not the metadata: a block device's metadata says 0 bytes.
        let file_len = (&file).seek(SeekFrom::End(0)).map_err(read_err)?;
        let mut sig = [0u8; 8];
        let n = read_at(&file, &mut sig, 0).map_err(read_err)?;
        let (backing, len) = if n == sig.len() && &sig == FILE_SIGNATURE {
            let vhdx = VhdxFile::open(file, file_len, path)?;
            let size = vhdx.virtual_size();
            (Backing::Vhdx(Box::new(vhdx)), size)
        } else if DiskFormat::from_path(path) == DiskFormat::Vhdx {
            return Err(Error::Vhdx {
                path: path.to_owned(),
                problem: VhdxError::Signature,
            });
        } else {
            (Backing::Raw(file), file_len)
        };
        Ok(ImageFile {
            backing,
            path: path.to_owned(),
            len,
            file_len,
        })
    }

    /// How the file holds the disk.
    pub(crate) fn format(&self) -> DiskFormat {
        match self.backing {
            Backing::Raw(_) => DiskFormat::Raw,
            Backing::Vhdx(_) => DiskFormat::Vhdx,
        }
    }

    /// The file's own length in bytes (a VHDX's, not its virtual disk's).
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Reads as much of `buf` as the disk holds at `offset`: the one place bytes of the
    /// disk are read, whatever holds it. Returns the count (short at the end).
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match &self.backing {
            Backing::Raw(f) => read_at(f, buf, offset),
            Backing::Vhdx(v) => v.read_at(buf, offset),
        }
    }

    /// Refuses an allocation of `len` bytes larger than the whole file: for a raw image
    /// implied by the bounds on the disk, for a VHDX the bound on its virtual disk.
    fn within_file(&self, offset: u64, len: u64) -> Result<(), ReadError> {
        if len > self.file_len {
            return Err(ReadError::Larger {
                offset,
                len,
                file_len: self.file_len,
            });
        }
        Ok(())
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The disk's length in bytes: the file's, or a VHDX's virtual size.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether `len` bytes at `offset` lie inside the file.
    fn inside(&self, offset: u64, len: u64) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// Reads exactly `len` bytes at `offset`; refused, before anything is allocated,
    /// when they run past the end of the file.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, ReadError> {
        let n = len as u64;
        if !self.inside(offset, n) {
            return Err(ReadError::PastEnd { offset, len: n });
        }
        self.within_file(offset, n)?;
        let mut buf = vec![0u8; len];
        let got = self
            .read_at(&mut buf, offset)
            .map_err(|source| ReadError::Io { offset, source })?;
        if got < len {
            // The file shrank under us.
            return Err(ReadError::PastEnd { offset, len: n });
        }
        Ok(buf)
    }

    /// Reads up to `len` bytes at `offset`, zeros past the end of the file; `len` may
    /// not exceed the file's length, so the allocation stays bounded by the file.
    pub(crate) fn read_padded(&self, offset: u64, len: usize) -> Result<Vec<u8>, ReadError> {
        if len as u64 > self.len {
            return Err(ReadError::PastEnd {
                offset,
                len: len as u64,
            });
        }
        self.within_file(offset, len as u64)?;
        let mut buf = vec![0u8; len];
        self.read_at(&mut buf, offset)
            .map_err(|source| ReadError::Io { offset, source })?;
        Ok(buf)
    }

    /// Reads into `buf` at `offset` (exactly: a short read is an error).
    pub(crate) fn read_into(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let got = self.read_at(buf, offset)?;
        if got < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the image file ends inside a file's data",
            ));
        }
        Ok(())
    }

    /// Reads and decodes the primary superblock.
    pub(crate) fn superblock(&self) -> Result<Superblock, SuperblockError> {
        // Min in u64 first: on a 32-bit host a file over 4 GiB does not fit a usize.
        let len = (SUPERBLOCK_LEN as u64).min(self.len) as usize;
        let raw = self.read_padded(SUPERBLOCK_OFFSET, len).unwrap_or_default();
        let raw = raw.get(..SUPERBLOCK_LEN).unwrap_or(&[]);
        // A file too short for a superblock has no magic either: say that, as a short
        // file is no image rather than a damaged one.
        Superblock::decode(raw).map_err(|e| match e {
            SuperblockError::Short(_) => SuperblockError::Magic(0),
            e => e,
        })
    }
}

/// What an open file is, when it is no regular file or block device.
fn not_an_image_file(md: &std::fs::Metadata) -> Option<&'static str> {
    let t = md.file_type();
    if t.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_block_device() {
            return None;
        }
        if t.is_fifo() {
            return Some("a named pipe (FIFO)");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some(if t.is_dir() { "a folder" } else { "not a file" })
}

/// An ext2/3/4 filesystem in an image file: its superblock and primary group
/// descriptors, read and decoded once.
pub(crate) struct Fs {
    pub file: ImageFile,
    pub sb: Superblock,
    /// The primary descriptor table as stored (for checksums) and decoded.
    pub gdt: Vec<u8>,
    pub descs: Vec<GroupDesc>,
}

/// Why a filesystem's descriptor table cannot be read.
#[derive(Debug)]
pub(crate) enum FsError {
    /// The table the superblock implies does not fit in the file.
    TableTooLarge { groups: u64, bytes: u64 },
    /// Reading it failed.
    Read(ReadError),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::TableTooLarge { groups, bytes } => write!(
                f,
                "its superblock gives {groups} block groups, whose descriptors ({bytes} bytes) \
                 do not fit in the file"
            ),
            FsError::Read(e) => write!(f, "its group descriptors cannot be read: {e}"),
        }
    }
}

impl Fs {
    /// Reads the descriptor table after the primary superblock. Its size, groups ×
    /// descriptor size, is the first thing a superblock makes a reader allocate: it
    /// must fit in the file.
    pub(crate) fn open(file: ImageFile, sb: Superblock) -> Result<Fs, FsError> {
        let groups = sb.groups();
        let ds = u64::from(sb.desc_size);
        let bytes = groups.saturating_mul(ds);
        let at = gdt_offset(&sb);
        let Ok(len) = usize::try_from(bytes) else {
            return Err(FsError::TableTooLarge { groups, bytes });
        };
        if !file.inside(at, bytes) {
            return Err(FsError::TableTooLarge { groups, bytes });
        }
        let gdt = file.read(at, len).map_err(FsError::Read)?;
        let wide = sb.feature_incompat & INCOMPAT_64BIT != 0 && ds as usize >= WIDE_DESC_SIZE;
        let descs = gdt
            .chunks_exact(ds as usize)
            .map(|d| group_desc::decode(d, wide).unwrap_or_default())
            .collect();
        Ok(Fs {
            file,
            sb,
            gdt,
            descs,
        })
    }

    /// The block size in bytes.
    pub(crate) fn bs(&self) -> u64 {
        u64::from(self.sb.block_size)
    }

    /// Reads the whole block `nr`, which must lie inside the filesystem (and the file).
    pub(crate) fn block(&self, nr: u64) -> Result<Vec<u8>, String> {
        if nr == 0 || nr >= self.sb.blocks_count {
            return Err(format!("block {nr} is outside the filesystem"));
        }
        self.file
            .read(nr * self.bs(), self.sb.block_size as usize)
            .map_err(|e| e.to_string())
    }

    /// Byte offset of inode `ino`'s record, from its group's inode table.
    pub(crate) fn inode_offset(&self, ino: u32) -> Result<u64, String> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(format!("inode {ino} does not exist"));
        }
        let idx = u64::from(ino - 1);
        let ipg = u64::from(self.sb.inodes_per_group);
        let table = usize::try_from(idx / ipg)
            .ok()
            .and_then(|g| self.descs.get(g))
            .map(|d| d.inode_table)
            .ok_or("its group has no inode table")?;
        table
            .checked_mul(self.bs())
            .and_then(|at| at.checked_add(idx % ipg * u64::from(self.sb.inode_size)))
            .ok_or_else(|| format!("inode {ino}'s table is at an impossible block {table}"))
    }

    /// Reads inode `ino`'s record (`s_inode_size` bytes).
    pub(crate) fn inode(&self, ino: u32) -> Result<Vec<u8>, String> {
        let at = self.inode_offset(ino)?;
        self.file
            .read(at, usize::from(self.sb.inode_size))
            .map_err(|e| e.to_string())
    }
}

/// Where the primary descriptor table starts: the block after the superblock's.
pub(crate) fn gdt_offset(sb: &Superblock) -> u64 {
    (u64::from(sb.first_data_block) + 1) * u64::from(sb.block_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.img");
        std::fs::write(&p, bytes).expect("write");
        (dir, p)
    }

    #[test]
    fn reads_past_the_end_are_refused_before_allocating() {
        let (_d, p) = image(&[7u8; 4096]);
        let f = ImageFile::open(&p).expect("opens");
        assert_eq!(f.len(), 4096);
        assert_eq!(f.read(4000, 96).expect("inside"), vec![7u8; 96]);
        assert!(matches!(
            f.read(4000, 97),
            Err(ReadError::PastEnd {
                offset: 4000,
                len: 97
            })
        ));
        // An absurd length fails on the bound, not on an allocation.
        assert!(matches!(
            f.read(u64::MAX - 1, usize::MAX),
            Err(ReadError::PastEnd { .. })
        ));
        assert!(f.read_padded(0, usize::MAX).is_err());
        let padded = f.read_padded(4090, 10).expect("padded");
        assert_eq!(padded, [7, 7, 7, 7, 7, 7, 0, 0, 0, 0]);
    }

    #[test]
    fn a_descriptor_table_larger_than_the_file_is_refused() {
        let img = crate::test_data::ext4().to_vec();
        let (_d, p) = image(&img);
        let f = ImageFile::open(&p).expect("opens");
        let mut sb = f.superblock().expect("superblock");
        // s_blocks_count_hi = 0xffffffff: 2^45 groups of 64-byte descriptors.
        sb.blocks_count |= 0xffff_ffff << 32;
        match Fs::open(f, sb) {
            Err(FsError::TableTooLarge { groups, .. }) => assert!(groups > 1 << 40),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a table larger than the file was read"),
        }
    }

    #[test]
    fn inodes_and_blocks_are_bounded_by_the_filesystem() {
        let (_d, p) = image(crate::test_data::ext4());
        let f = ImageFile::open(&p).expect("opens");
        let sb = f.superblock().expect("superblock");
        let fs = Fs::open(f, sb).expect("opens");
        assert_eq!(fs.inode_offset(1), Ok(50 * 1024));
        assert!(fs.inode_offset(0).is_err());
        assert_eq!(fs.inode_offset(257), Err("inode 257 does not exist".into()));
        assert!(fs.block(2048).is_err());
        assert_eq!(fs.block(2047).map(|b| b.len()), Ok(1024));
    }

    /// `bytes` at the start of a VHDX whose virtual disk is `size` bytes long.
    fn vhdx(bytes: &[u8], size: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.vhdx");
        let mut out =
            crate::output::Output::create(&p, size, false, DiskFormat::Vhdx).expect("create");
        out.write_at(0, bytes).expect("write");
        out.set_len(size).expect("len");
        out.identify(b"reader test");
        out.commit(false).expect("commit");
        (dir, p)
    }

    #[test]
    fn a_vhdx_is_read_as_its_virtual_disk_by_the_same_decoder() {
        let img = crate::test_data::ext4();
        let (_d, p) = vhdx(img, img.len() as u64);
        let f = ImageFile::open(&p).expect("opens");
        assert_eq!(f.format(), DiskFormat::Vhdx);
        assert_eq!(f.len(), img.len() as u64);
        assert!(f.file_len() > f.len(), "headers and tables take room");
        assert_eq!(f.read(1024, 1024).expect("superblock"), &img[1024..2048]);
        let sb = f.superblock().expect("superblock");
        let fs = Fs::open(f, sb).expect("opens");
        assert_eq!(fs.inode_offset(1), Ok(50 * 1024));
        assert_eq!(fs.block(2047).map(|b| b.len()), Ok(1024));
        // The same bound as a raw image of that length: nothing past the disk's end.
        assert!(matches!(
            fs.file.read(img.len() as u64 - 10, 11),
            Err(ReadError::PastEnd { .. })
        ));
    }

    #[test]
    fn a_vhdx_disk_larger_than_its_file_allocates_no_more_than_the_file() {
        // 1 TiB of virtual disk in a file of a few MiB: a read inside the disk but
        // larger than the whole file is refused before allocating.
        let (_d, p) = vhdx(crate::test_data::ext4(), 1 << 40);
        let f = ImageFile::open(&p).expect("opens");
        assert_eq!(f.len(), 1 << 40);
        let big = f.file_len() + 1;
        let err = f.read(1 << 30, big as usize).expect_err("refused");
        assert!(matches!(err, ReadError::Larger { .. }), "{err}");
        assert!(f.read_padded(0, big as usize).is_err());
        // Blocks not in the file read as zeros.
        assert_eq!(f.read(1 << 39, 4096).expect("zeros"), vec![0u8; 4096]);
    }

    #[test]
    fn a_vhdx_name_without_the_signature_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("raw.vhdx");
        std::fs::write(&p, crate::test_data::ext4()).expect("write");
        let err = ImageFile::open(&p).err().expect("refused");
        assert!(
            matches!(
                err,
                Error::Vhdx {
                    problem: VhdxError::Signature,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let err = ImageFile::open(&p).err().expect("refused");
        assert!(
            err.to_string().contains("named pipe"),
            "the error names what it is: {err}"
        );
        let err = ImageFile::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("a folder"), "{err}");
    }
}
