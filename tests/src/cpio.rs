//! A writer of uncompressed cpio archives in the `newc` format, the one the Linux kernel
//! unpacks as an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! [`crate::guest`] appends one such archive (the test's `/init`, script and files) to
//! the default kit's gzip-compressed `initrd.img`: the kernel unpacks concatenated
//! archives one after the other, and a later entry replaces an earlier one of the same
//! name. Each member must start on a 4-byte boundary of the whole initrd, which is why
//! [`pad4`] exists.
//!
//! Each entry is a 110-byte header of 13 eight-digit hex fields after the magic
//! `070701`, the NUL-terminated name padded to 4 bytes, then the data padded to 4 bytes;
//! the archive ends with an entry named `TRAILER!!!`. Names have no leading `/`.

use anyhow::{Result, bail};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// An archive being written, in memory.
#[derive(Debug, Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl Cpio {
    /// An empty archive.
    pub fn new() -> Cpio {
        Cpio {
            bytes: Vec::new(),
            // Inode numbers only have to differ between entries (no hard links here).
            next_ino: 1000,
        }
    }

    /// A folder (`name` like `mnt` or `lib/modules`), mode 0755.
    pub fn dir(&mut self, name: &str) -> Result<()> {
        self.entry(name, S_IFDIR | 0o755, b"")
    }

    /// A regular file with `mode`'s permission bits.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(name, S_IFREG | (mode & 0o7777), data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        self.entry(name, S_IFLNK | 0o777, target.as_bytes())
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.header("TRAILER!!!", 0, 0, 0)?;
        Ok(self.bytes)
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        if name.is_empty() || name.starts_with('/') || name.contains('\0') {
            bail!("cpio: bad entry name {name:?}");
        }
        self.next_ino += 1;
        let size = u32::try_from(data.len())
            .map_err(|_| anyhow::anyhow!("cpio: {name} is larger than 4 GiB"))?;
        self.header(name, self.next_ino, mode, size)?;
        self.bytes.extend_from_slice(data);
        pad4(&mut self.bytes);
        Ok(())
    }

    fn header(&mut self, name: &str, ino: u32, mode: u32, size: u32) -> Result<()> {
        let namesize = u32::try_from(name.len() + 1)?;
        let nlink = if mode & S_IFDIR == S_IFDIR { 2 } else { 1 };
        // magic, then ino mode uid gid nlink mtime filesize devmajor devminor
        // rdevmajor rdevminor namesize check.
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, namesize, 0];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        pad4(&mut self.bytes);
        Ok(())
    }
}

/// Zero bytes up to the next multiple of 4 (the kernel skips zeros between archives
/// only in whole 4-byte steps).
pub fn pad4(bytes: &mut Vec<u8>) {
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// busybox's `cpio` (the same code as the guest's initramfs tools) reads the archive
    /// back: names, kinds and bytes.
    #[test]
    fn the_host_cpio_lists_and_extracts_what_was_written() -> Result<()> {
        let mut c = Cpio::new();
        c.dir("bin")?;
        c.file("bin/hello", 0o755, b"odd length!")?;
        c.symlink("bin/sh", "hello")?;
        c.file("init", 0o644, b"")?;
        let bytes = c.finish()?;
        assert!(bytes.len().is_multiple_of(4));
        let dir = tempfile::tempdir()?;
        let archive = dir.path().join("a.cpio");
        std::fs::write(&archive, &bytes)?;
        let out = std::process::Command::new(crate::tools::tool("busybox")?)
            .args(["cpio", "-idm", "-F"])
            .arg(&archive)
            .current_dir(dir.path())
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(dir.path().join("bin/hello"))?, b"odd length!");
        assert_eq!(
            std::fs::read_link(dir.path().join("bin/sh"))?,
            std::path::Path::new("hello")
        );
        assert!(dir.path().join("init").is_file());
        Ok(())
    }
}
