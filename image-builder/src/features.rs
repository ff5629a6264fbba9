//! Feature levels: which ext2/ext3/ext4 features an image carries, and which guest
//! kernels can mount it read-write.
//!
//! A kernel that does not know a feature ignores it when it is COMPAT, mounts the
//! filesystem read-only when it is RO_COMPAT, and refuses it when it is INCOMPAT
//! (ext4(5), "KERNEL SUPPORT"). So a level is only offered for a kernel that knows
//! every RO_COMPAT and INCOMPAT feature in it; the "since" versions below are the ones
//! ext4(5) lists.
//!
//! | level         | features                                                             |
//! |---------------|----------------------------------------------------------------------|
//! | `ext2`        | ext_attr, dir_index, filetype, sparse_super, large_file; 128-byte inodes |
//! | `ext3`        | ext2 + has_journal                                                   |
//! | `ext4-compat` | ext3 + extent, flex_bg, huge_file, dir_nlink, extra_isize; 256-byte inodes (2.6.28..) |
//! | `ext4-modern` | ext4-compat + metadata_csum, 64bit (Debian 12's mke2fs defaults; 3.18..) |
//!
//! Not offered: metadata_csum_seed (INCOMPAT, 4.4), orphan_file (5.15), inline_data,
//! large_dir: none is needed to hold a tree, and each shuts out older guests.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

// The feature bits (Documentation/filesystems/ext4/super.rst, s_feature_compat,
// s_feature_incompat and s_feature_ro_compat), named as the kernel names them. The
// writer sets a few; the readers (check, inspect, the image source) test the others.

/// COMPAT: directory preallocation.
pub(crate) const COMPAT_DIR_PREALLOC: u32 = 0x0001;
/// COMPAT: "imagic inodes" (AFS server inodes).
pub(crate) const COMPAT_IMAGIC_INODES: u32 = 0x0002;
/// COMPAT: the journal is inode 8.
pub(crate) const COMPAT_HAS_JOURNAL: u32 = 0x0004;
/// COMPAT: extended attribute blocks.
pub(crate) const COMPAT_EXT_ATTR: u32 = 0x0008;
/// COMPAT: reserved descriptor blocks for growing, owned by inode 7.
pub(crate) const COMPAT_RESIZE_INODE: u32 = 0x0010;
/// COMPAT: hashed directory indexes may be present.
pub(crate) const COMPAT_DIR_INDEX: u32 = 0x0020;
/// COMPAT: superblock backups only in the two groups `s_backup_bgs` names.
pub(crate) const COMPAT_SPARSE_SUPER2: u32 = 0x0200;
/// COMPAT: fast commits in the journal.
pub(crate) const COMPAT_FAST_COMMIT: u32 = 0x0400;
/// COMPAT: an orphan file (`s_orphan_file_inum`) instead of the orphan list.
pub(crate) const COMPAT_ORPHAN_FILE: u32 = 0x1000;
/// INCOMPAT: compression (never finished in Linux).
pub(crate) const INCOMPAT_COMPRESSION: u32 = 0x0001;
/// INCOMPAT: directory entries carry the file type.
pub(crate) const INCOMPAT_FILETYPE: u32 = 0x0002;
/// INCOMPAT: the journal needs recovery (set while mounted).
pub(crate) const INCOMPAT_RECOVER: u32 = 0x0004;
/// INCOMPAT: this is an external journal device.
pub(crate) const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
/// INCOMPAT: descriptor blocks spread over meta block groups.
pub(crate) const INCOMPAT_META_BG: u32 = 0x0010;
/// INCOMPAT: files are mapped by extents.
pub(crate) const INCOMPAT_EXTENTS: u32 = 0x0040;
/// INCOMPAT: block numbers and group descriptors are 64-bit.
pub(crate) const INCOMPAT_64BIT: u32 = 0x0080;
/// INCOMPAT: multiple mount protection.
pub(crate) const INCOMPAT_MMP: u32 = 0x0100;
/// INCOMPAT: group metadata may live outside its group.
pub(crate) const INCOMPAT_FLEX_BG: u32 = 0x0200;
/// INCOMPAT: large attribute values live in inodes of their own.
pub(crate) const INCOMPAT_EA_INODE: u32 = 0x0400;
/// INCOMPAT: data in directory entries (Lustre).
pub(crate) const INCOMPAT_DIRDATA: u32 = 0x1000;
/// INCOMPAT: the checksum seed is stored (`s_checksum_seed`), not derived from the UUID.
pub(crate) const INCOMPAT_CSUM_SEED: u32 = 0x2000;
/// INCOMPAT: directories over 2 GiB or with a three-level htree.
pub(crate) const INCOMPAT_LARGEDIR: u32 = 0x4000;
/// INCOMPAT: small files and directories inside the inode.
pub(crate) const INCOMPAT_INLINE_DATA: u32 = 0x8000;
/// INCOMPAT: encrypted files.
pub(crate) const INCOMPAT_ENCRYPT: u32 = 0x10000;
/// INCOMPAT: case-insensitive directories.
pub(crate) const INCOMPAT_CASEFOLD: u32 = 0x20000;
/// RO_COMPAT: superblock backups only in groups 0, 1 and powers of 3, 5 and 7.
pub(crate) const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
/// RO_COMPAT: files over 2 GiB.
pub(crate) const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
/// RO_COMPAT: 48-bit block counts in inodes.
pub(crate) const RO_COMPAT_HUGE_FILE: u32 = 0x0008;
/// RO_COMPAT: group descriptors carry a CRC16 (`uninit_bg`).
pub(crate) const RO_COMPAT_GDT_CSUM: u32 = 0x0010;
/// RO_COMPAT: more than 65,000 subdirectories.
pub(crate) const RO_COMPAT_DIR_NLINK: u32 = 0x0020;
/// RO_COMPAT: inodes have the extra fields (nanosecond times, creation time).
pub(crate) const RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
/// RO_COMPAT: quota inodes.
pub(crate) const RO_COMPAT_QUOTA: u32 = 0x0100;
/// RO_COMPAT: blocks are allocated in clusters.
pub(crate) const RO_COMPAT_BIGALLOC: u32 = 0x0200;
/// RO_COMPAT: CRC32C on all metadata.
pub(crate) const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;
/// RO_COMPAT: the filesystem may only be mounted read-only.
pub(crate) const RO_COMPAT_READONLY: u32 = 0x1000;
/// RO_COMPAT: project quotas.
pub(crate) const RO_COMPAT_PROJECT: u32 = 0x2000;
/// RO_COMPAT: verity files.
pub(crate) const RO_COMPAT_VERITY: u32 = 0x8000;
/// RO_COMPAT: the orphan file has entries.
pub(crate) const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;

/// A Linux kernel version, e.g. 2.6.33 (the guest that must mount the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u16, pub u16, pub u16);

impl FromStr for KernelVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadKernelVersion(s.to_owned());
        // Accept "2.6.33", "2.6.33.7-co-0.7.9", "6.1": the leading dotted numbers count.
        let head: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = head.split('.').filter(|p| !p.is_empty()).map(u16::from_str);
        let major = parts.next().ok_or_else(bad)?.map_err(|_| bad())?;
        let minor = parts.next().ok_or_else(bad)?.map_err(|_| bad())?;
        let patch = parts.next().transpose().map_err(|_| bad())?.unwrap_or(0);
        Ok(KernelVersion(major, minor, patch))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// As its text (`2.6.33`).
impl serde::Serialize for KernelVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// From its text, as [`KernelVersion::from_str`] reads it.
impl<'de> serde::Deserialize<'de> for KernelVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// As its name (`ext4-compat`), the word `--fs` takes.
impl fmt::Display for FsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The four feature levels the writer lays out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsLevel {
    /// ext2 for Linux 2.6.11 and later: no journal, block maps, 128-byte inodes.
    Ext2,
    /// ext3: ext2 plus an internal journal.
    Ext3,
    /// ext4 that 2.6.28..2.6.33 kernels mount read-write (no checksums, no 64bit).
    Ext4Compat,
    /// ext4 with metadata_csum and 64bit, as mke2fs makes it today (kernels 3.18+).
    Ext4Modern,
}

/// One feature with the class it belongs to and the first kernel that knows it.
struct FeatureFact {
    name: &'static str,
    since: KernelVersion,
}

impl FsLevel {
    /// Resolves a `--fs` name and an optional `--kernel` into a level, refusing a
    /// combination that kernel cannot mount read-write.
    ///
    /// `ext4` alone means the modern level; with a kernel older than 3.18 it means the
    /// compat level, since that kernel would mount metadata_csum read-only.
    pub fn resolve(name: &str, kernel: Option<KernelVersion>) -> Result<FsLevel, Error> {
        let level = match name {
            "ext2" => FsLevel::Ext2,
            "ext3" => FsLevel::Ext3,
            "ext4-compat" => FsLevel::Ext4Compat,
            "ext4-modern" => FsLevel::Ext4Modern,
            "ext4" => match kernel {
                Some(k) if k < KernelVersion(3, 18, 0) => FsLevel::Ext4Compat,
                _ => FsLevel::Ext4Modern,
            },
            other => return Err(Error::UnknownFs(other.to_owned())),
        };
        if let Some(kernel) = kernel {
            level.check_kernel(kernel)?;
        }
        Ok(level)
    }

    /// Refuses the level when `kernel` lacks one of its RO_COMPAT or INCOMPAT features.
    pub fn check_kernel(self, kernel: KernelVersion) -> Result<(), Error> {
        for fact in self.needed_features() {
            if kernel < fact.since {
                return Err(Error::Unmountable {
                    level: self,
                    kernel,
                    feature: fact.name,
                    since: fact.since,
                });
            }
        }
        Ok(())
    }

    fn needed_features(self) -> Vec<FeatureFact> {
        let mut v = vec![FeatureFact {
            name: "ext2 revision 1 (filetype, sparse_super, large_file)",
            since: KernelVersion(2, 2, 0),
        }];
        if self.has_journal() {
            v.push(FeatureFact {
                name: "has_journal (ext3)",
                since: KernelVersion(2, 4, 15),
            });
        }
        if self.is_ext4() {
            v.push(FeatureFact {
                name: "extent, flex_bg, huge_file, dir_nlink, extra_isize (ext4)",
                since: KernelVersion(2, 6, 28),
            });
        }
        if self.metadata_csum() {
            v.push(FeatureFact {
                name: "metadata_csum",
                since: KernelVersion(3, 18, 0),
            });
        }
        v
    }

    /// The name users type (`--fs`).
    pub fn name(self) -> &'static str {
        match self {
            FsLevel::Ext2 => "ext2",
            FsLevel::Ext3 => "ext3",
            FsLevel::Ext4Compat => "ext4-compat",
            FsLevel::Ext4Modern => "ext4-modern",
        }
    }

    /// The type to name in fstab and `mount -t`.
    pub fn fstab_type(self) -> &'static str {
        match self {
            FsLevel::Ext2 => "ext2",
            FsLevel::Ext3 => "ext3",
            FsLevel::Ext4Compat | FsLevel::Ext4Modern => "ext4",
        }
    }

    pub(crate) fn has_journal(self) -> bool {
        self != FsLevel::Ext2
    }

    pub(crate) fn is_ext4(self) -> bool {
        matches!(self, FsLevel::Ext4Compat | FsLevel::Ext4Modern)
    }

    pub(crate) fn metadata_csum(self) -> bool {
        self == FsLevel::Ext4Modern
    }

    pub(crate) fn is_64bit(self) -> bool {
        self == FsLevel::Ext4Modern
    }

    /// 128-byte inodes on ext2/ext3 (safe for every 2.6 kernel); 256 on ext4, which
    /// needs the extra fields for nanosecond times and the inode checksum's high half.
    pub(crate) fn inode_size(self) -> u16 {
        if self.is_ext4() { 256 } else { 128 }
    }

    /// (compat, incompat, ro_compat) feature words.
    pub(crate) fn feature_words(self) -> (u32, u32, u32) {
        let mut compat = COMPAT_EXT_ATTR | COMPAT_DIR_INDEX;
        let mut incompat = INCOMPAT_FILETYPE;
        let mut ro = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE;
        if self.has_journal() {
            compat |= COMPAT_HAS_JOURNAL;
        }
        if self.is_ext4() {
            incompat |= INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG;
            ro |= RO_COMPAT_HUGE_FILE | RO_COMPAT_DIR_NLINK | RO_COMPAT_EXTRA_ISIZE;
        }
        if self.metadata_csum() {
            ro |= RO_COMPAT_METADATA_CSUM;
        }
        if self.is_64bit() {
            incompat |= INCOMPAT_64BIT;
        }
        (compat, incompat, ro)
    }
}

/// Names of the feature bits set in the three words, in mke2fs's spelling.
pub fn feature_names(compat: u32, incompat: u32, ro_compat: u32) -> Vec<String> {
    const COMPAT: &[(u32, &str)] = &[
        (COMPAT_DIR_PREALLOC, "dir_prealloc"),
        (COMPAT_IMAGIC_INODES, "imagic_inodes"),
        (COMPAT_HAS_JOURNAL, "has_journal"),
        (COMPAT_EXT_ATTR, "ext_attr"),
        (COMPAT_RESIZE_INODE, "resize_inode"),
        (COMPAT_DIR_INDEX, "dir_index"),
        (COMPAT_SPARSE_SUPER2, "sparse_super2"),
        (COMPAT_FAST_COMMIT, "fast_commit"),
        (COMPAT_ORPHAN_FILE, "orphan_file"),
    ];
    const INCOMPAT: &[(u32, &str)] = &[
        (INCOMPAT_COMPRESSION, "compression"),
        (INCOMPAT_FILETYPE, "filetype"),
        (INCOMPAT_RECOVER, "needs_recovery"),
        (INCOMPAT_JOURNAL_DEV, "journal_dev"),
        (INCOMPAT_META_BG, "meta_bg"),
        (INCOMPAT_EXTENTS, "extent"),
        (INCOMPAT_64BIT, "64bit"),
        (INCOMPAT_MMP, "mmp"),
        (INCOMPAT_FLEX_BG, "flex_bg"),
        (INCOMPAT_EA_INODE, "ea_inode"),
        (INCOMPAT_DIRDATA, "dirdata"),
        (INCOMPAT_CSUM_SEED, "metadata_csum_seed"),
        (INCOMPAT_LARGEDIR, "large_dir"),
        (INCOMPAT_INLINE_DATA, "inline_data"),
        (INCOMPAT_ENCRYPT, "encrypt"),
        (INCOMPAT_CASEFOLD, "casefold"),
    ];
    const RO: &[(u32, &str)] = &[
        (RO_COMPAT_SPARSE_SUPER, "sparse_super"),
        (RO_COMPAT_LARGE_FILE, "large_file"),
        (RO_COMPAT_HUGE_FILE, "huge_file"),
        (RO_COMPAT_GDT_CSUM, "uninit_bg"),
        (RO_COMPAT_DIR_NLINK, "dir_nlink"),
        (RO_COMPAT_EXTRA_ISIZE, "extra_isize"),
        (RO_COMPAT_QUOTA, "quota"),
        (RO_COMPAT_BIGALLOC, "bigalloc"),
        (RO_COMPAT_METADATA_CSUM, "metadata_csum"),
        (RO_COMPAT_READONLY, "read-only"),
        (RO_COMPAT_PROJECT, "project"),
        (RO_COMPAT_VERITY, "verity"),
        (RO_COMPAT_ORPHAN_PRESENT, "orphan_present"),
    ];
    let mut names = Vec::new();
    for (word, table) in [(compat, COMPAT), (incompat, INCOMPAT), (ro_compat, RO)] {
        let mut rest = word;
        for (bit, name) in table {
            if word & bit != 0 {
                names.push((*name).to_owned());
                rest &= !bit;
            }
        }
        for i in 0..32 {
            if rest & (1 << i) != 0 {
                names.push(format!("unknown_0x{:x}", 1u32 << i));
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> KernelVersion {
        s.parse().expect("test version parses")
    }

    #[test]
    fn ext4_means_compat_for_a_2_6_33_guest() {
        assert_eq!(
            FsLevel::resolve("ext4", Some(k("2.6.33"))).ok(),
            Some(FsLevel::Ext4Compat)
        );
        assert_eq!(
            FsLevel::resolve("ext4", None).ok(),
            Some(FsLevel::Ext4Modern)
        );
    }

    #[test]
    fn ext4_is_refused_for_2_6_11() {
        let err = FsLevel::resolve("ext4", Some(k("2.6.11"))).expect_err("2.6.11 has no ext4");
        assert!(err.to_string().contains("2.6.28"), "{err}");
    }

    #[test]
    fn modern_is_refused_for_2_6_33() {
        let err = FsLevel::resolve("ext4-modern", Some(k("2.6.33"))).expect_err("no csum");
        assert!(err.to_string().contains("metadata_csum"), "{err}");
    }

    #[test]
    fn colinux_kernel_strings_parse() {
        assert_eq!(k("2.6.33.7-co-0.7.9"), KernelVersion(2, 6, 33));
        assert_eq!(k("6.1"), KernelVersion(6, 1, 0));
        assert!("x".parse::<KernelVersion>().is_err());
    }

    #[test]
    fn unknown_fs_is_named() {
        let err = FsLevel::resolve("btrfs", None).expect_err("unknown");
        assert!(err.to_string().contains("btrfs"));
    }
}
