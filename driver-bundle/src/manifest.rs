//! The kit manifest, `kit.toml`: every file a kit ships, with its role, size, SHA-256,
//! target host and architecture, version and, for signed files, the pinned signer.
//!
//! A kit is a folder with `kit.toml` at its root. The installer verifies every file it
//! uses against this list before it changes anything, so a kit that was damaged or
//! tampered with in transit stops the install with the file's expected and actual values.
//! Folders the installer reads as trees (`rootfs/`, `dist/`) are listed file by file.
//!
//! Parsing is strict: unknown keys, a path that could leave the kit folder (`..`, an
//! absolute path, a drive letter, a backslash), a path listed twice (also when only the
//! letter case differs, because kits are unpacked on Windows too), a digest that is not
//! 64 hexadecimal digits and a `signer_ca` that the manifest does not itself list are all
//! errors naming the origin, line and column.
//!
//! ```toml
//! format = 1
//! name = "default-linux-x86_64"
//! version = "2026.11"
//!
//! [[file]]
//! path = "uml/linux.uml"
//! role = "kernel"
//! size = 12345
//! sha256 = "…64 lowercase hex…"
//! host = "linux"        # linux | windows | any (default any)
//! arch = "x86_64"       # x86_64 | i686 | any (default any)
//! version = "6.1.0"     # optional
//! signer = "sha256:…"   # optional: the signing certificate's SHA-256 thumbprint
//! # or signer_ca = "certs/ca.pem", a CA certificate listed in the same kit
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

/// The file name of a kit's manifest, at the kit folder's root.
pub const MANIFEST_NAME: &str = "kit.toml";

/// The manifest format this crate reads and writes.
pub const FORMAT: u32 = 1;

/// What a kit file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The virtual machine monitor (`colinux-daemon.exe`, `linux.uml`'s host side).
    Monitor,
    /// The guest kernel (`vmlinux`, `linux.uml`).
    Kernel,
    /// An initial ramdisk.
    Initrd,
    /// Kernel modules (a tarball or a tree).
    Modules,
    /// The ring-0 driver (`linux.sys`, `colinux.ko`).
    Driver,
    /// The TAP adapter driver.
    TapDriver,
    /// A file of the guest's root tree (`rootfs/`).
    Rootfs,
    /// A file of the distribution copied at first boot (`dist/`).
    Distribution,
    /// A host tool (busybox, a console, a network daemon).
    Tool,
    /// Anything else (certificates, documents).
    Other,
}

impl Role {
    /// Every role, in the order the manifest documentation lists them.
    pub const ALL: [Role; 10] = [
        Role::Monitor,
        Role::Kernel,
        Role::Initrd,
        Role::Modules,
        Role::Driver,
        Role::TapDriver,
        Role::Rootfs,
        Role::Distribution,
        Role::Tool,
        Role::Other,
    ];

    /// The name used in `kit.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Monitor => "monitor",
            Role::Kernel => "kernel",
            Role::Initrd => "initrd",
            Role::Modules => "modules",
            Role::Driver => "driver",
            Role::TapDriver => "tap-driver",
            Role::Rootfs => "rootfs",
            Role::Distribution => "distribution",
            Role::Tool => "tool",
            Role::Other => "other",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// The host a kit file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    /// Linux hosts.
    Linux,
    /// Windows hosts.
    Windows,
    /// Any host.
    #[default]
    Any,
}

impl Host {
    /// The host this program runs on.
    pub fn current() -> Host {
        if cfg!(windows) {
            Host::Windows
        } else {
            Host::Linux
        }
    }

    /// Whether a file for `self` is used on `host`.
    pub fn fits(self, host: Host) -> bool {
        self == Host::Any || host == Host::Any || self == host
    }
}

/// The architecture a kit file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// 64-bit x86.
    #[serde(rename = "x86_64")]
    X86_64,
    /// 32-bit x86.
    I686,
    /// Any architecture (data, scripts).
    #[default]
    Any,
}

/// Who must have signed a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The signing certificate's SHA-256 thumbprint (64 lowercase hex digits).
    Thumbprint(String),
    /// A CA certificate in the kit (its path, itself a listed file) the signer chains to.
    Ca(String),
}

/// One file of a kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KitFile {
    /// Relative, `/`-separated path inside the kit folder.
    pub path: String,
    /// What the file is for.
    pub role: Role,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, 64 lowercase hex digits.
    pub sha256: String,
    /// The host the file is for.
    pub host: Host,
    /// The architecture the file is for.
    pub arch: Arch,
    /// The file's own version, when the kit author gave one.
    pub version: Option<String>,
    /// The pinned signer, for signed files.
    pub signer: Option<Signer>,
}

/// A parsed, validated `kit.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Free text naming the kit.
    pub name: String,
    /// Free text version of the kit.
    pub version: String,
    /// Every file, in manifest order.
    pub files: Vec<KitFile>,
}

/// The most of a `kit.toml` that is read, here and by the installer's download: a
/// listed file takes about 200 bytes, so this is room for some 300,000 files (a Debian
/// root tree has 20,000 to 40,000).
pub const MANIFEST_LIMIT: u64 = 64 << 20;

/// A manifest that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The kit folder has no `kit.toml`.
    #[error(
        "{}: no {MANIFEST_NAME}; a kit folder lists its files with their sizes and SHA-256 in {MANIFEST_NAME} (write one with `colinux-setup kit init DIR`)",
        dir.display()
    )]
    Missing {
        /// The kit folder.
        dir: PathBuf,
    },
    /// `kit.toml` is not a regular file (a FIFO, a device, a folder): never read.
    #[error("{} is not a regular file; a kit's {MANIFEST_NAME} is a text file", path.display())]
    NotAFile {
        /// The manifest's path.
        path: PathBuf,
    },
    /// `kit.toml` is larger than [`MANIFEST_LIMIT`].
    #[error(
        "{} is larger than {} MiB, the most a kit's {MANIFEST_NAME} may be (about 300,000 files)",
        path.display(),
        MANIFEST_LIMIT >> 20
    )]
    TooLarge {
        /// The manifest's path.
        path: PathBuf,
    },
    /// `kit.toml` exists but could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The text is not a valid manifest.
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        /// Where the text came from (a path or a URL).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong, and what is expected.
        message: String,
    },
}

/// A kit file that does not match its manifest entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The file is not in the kit folder.
    #[error(
        "{path}: missing from the kit (expected {expected_size} bytes, sha256 {expected_sha256})"
    )]
    Missing {
        /// The manifest path.
        path: String,
        /// The listed size.
        expected_size: u64,
        /// The listed digest.
        expected_sha256: String,
    },
    /// The path names something other than a regular file.
    #[error("{path}: not a regular file in the kit")]
    NotAFile {
        /// The manifest path.
        path: String,
    },
    /// The file could not be read.
    #[error("{path}: cannot read it: {source}")]
    Read {
        /// The manifest path.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The size differs from the listed one.
    #[error(
        "{path}: size mismatch: expected {expected} bytes, actual {actual} bytes (sha256 expected {expected_sha256}, actual {actual_sha256})"
    )]
    SizeMismatch {
        /// The manifest path.
        path: String,
        /// The listed size.
        expected: u64,
        /// The size on disk.
        actual: u64,
        /// The listed digest.
        expected_sha256: String,
        /// The digest on disk.
        actual_sha256: String,
    },
    /// The content differs from the listed digest.
    #[error("{path}: sha256 mismatch: expected {expected}, actual {actual} ({size} bytes)")]
    DigestMismatch {
        /// The manifest path.
        path: String,
        /// The listed digest.
        expected: String,
        /// The digest on disk.
        actual: String,
        /// The size (which matched).
        size: u64,
    },
}

impl VerifyError {
    /// The manifest path of the file the error is about.
    pub fn path(&self) -> &str {
        match self {
            VerifyError::Missing { path, .. }
            | VerifyError::NotAFile { path }
            | VerifyError::Read { path, .. }
            | VerifyError::SizeMismatch { path, .. }
            | VerifyError::DigestMismatch { path, .. } => path,
        }
    }
}

// The text as written: spans kept for the checks serde cannot express.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    format: Spanned<u32>,
    name: String,
    version: String,
    #[serde(default)]
    file: Vec<RawFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: Spanned<String>,
    role: Role,
    size: u64,
    sha256: Spanned<String>,
    #[serde(default)]
    host: Host,
    #[serde(default)]
    arch: Arch,
    version: Option<String>,
    signer: Option<Spanned<String>>,
    signer_ca: Option<Spanned<String>>,
}

#[derive(Serialize)]
struct OutManifest<'a> {
    format: u32,
    name: &'a str,
    version: &'a str,
    file: Vec<OutFile<'a>>,
}

#[derive(Serialize)]
struct OutFile<'a> {
    path: &'a str,
    role: Role,
    size: u64,
    sha256: &'a str,
    #[serde(skip_serializing_if = "is_any_host")]
    host: Host,
    #[serde(skip_serializing_if = "is_any_arch")]
    arch: Arch,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer_ca: Option<&'a str>,
}

fn is_any_host(h: &Host) -> bool {
    *h == Host::Any
}

fn is_any_arch(a: &Arch) -> bool {
    *a == Arch::Any
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Checks a manifest path: relative, `/`-separated, no empty, `.` or `..` component, no
/// backslash, colon or control character (they mean something else on Windows).
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("an empty path".to_owned());
    }
    if path.starts_with('/') {
        return Err(format!(
            "`{path}` is absolute; paths are relative to the kit folder"
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| *c == '\\' || *c == ':' || c.is_control())
    {
        return Err(format!(
            "`{}` contains {:?}; paths are '/'-separated and portable",
            path.escape_debug(),
            c
        ));
    }
    for comp in path.split('/') {
        match comp {
            "" => {
                return Err(format!(
                    "`{path}` has an empty component (`//` or a trailing `/`)"
                ));
            }
            "." | ".." => {
                return Err(format!(
                    "`{path}` has a `{comp}` component; paths stay inside the kit folder"
                ));
            }
            _ => {}
        }
    }
    if path == MANIFEST_NAME {
        return Err(format!("{MANIFEST_NAME} cannot list itself"));
    }
    Ok(())
}

/// Checks and normalises a SHA-256 written as 64 hex digits (returned in lowercase).
fn check_hex64(s: &str, what: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "{what} `{}` is not a SHA-256: expected 64 hexadecimal digits",
            s.escape_debug()
        ))
    }
}

impl Manifest {
    /// Parses and validates manifest text; `origin` (a path or URL) prefixes errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
        let at = |span: Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            ManifestError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, e.message().trim_end().to_owned())
        })?;
        if *raw.format.get_ref() != FORMAT {
            return Err(at(
                raw.format.span(),
                format!(
                    "format {} is not supported; this colinux-setup reads format {FORMAT}",
                    raw.format.get_ref()
                ),
            ));
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut files = Vec::with_capacity(raw.file.len());
        let mut ca_refs = Vec::new();
        for f in raw.file {
            let path = f.path.get_ref().clone();
            check_path(&path).map_err(|m| at(f.path.span(), format!("path: {m}")))?;
            if let Some(first) = seen.insert(path.to_lowercase(), path.clone()) {
                return Err(at(
                    f.path.span(),
                    format!(
                        "path `{path}` is listed twice (first as `{first}`; Windows folders ignore letter case)"
                    ),
                ));
            }
            let sha256 =
                check_hex64(f.sha256.get_ref(), "sha256").map_err(|m| at(f.sha256.span(), m))?;
            let signer = match (f.signer, f.signer_ca) {
                (Some(s), Some(_)) => {
                    return Err(at(
                        s.span(),
                        "give `signer` (a thumbprint) or `signer_ca` (a CA file), not both"
                            .to_owned(),
                    ));
                }
                (Some(s), None) => {
                    let hex = s.get_ref().strip_prefix("sha256:").ok_or_else(|| {
                        at(
                            s.span(),
                            format!(
                                "signer `{}`: expected `sha256:` and the signing certificate's 64-hex-digit SHA-256 thumbprint",
                                s.get_ref().escape_debug()
                            ),
                        )
                    })?;
                    Some(Signer::Thumbprint(
                        check_hex64(hex, "signer thumbprint").map_err(|m| at(s.span(), m))?,
                    ))
                }
                (None, Some(ca)) => {
                    check_path(ca.get_ref())
                        .map_err(|m| at(ca.span(), format!("signer_ca: {m}")))?;
                    ca_refs.push(ca.clone());
                    Some(Signer::Ca(ca.into_inner()))
                }
                (None, None) => None,
            };
            files.push(KitFile {
                path,
                role: f.role,
                size: f.size,
                sha256,
                host: f.host,
                arch: f.arch,
                version: f.version,
                signer,
            });
        }
        for ca in ca_refs {
            if !files.iter().any(|f: &KitFile| f.path == *ca.get_ref()) {
                return Err(at(
                    ca.span(),
                    format!(
                        "signer_ca `{}` is not listed in the manifest; list the CA certificate as a file (role \"other\") so it is verified too",
                        ca.get_ref()
                    ),
                ));
            }
        }
        Ok(Manifest {
            name: raw.name,
            version: raw.version,
            files,
        })
    }

    /// Reads and parses `DIR/kit.toml`: a regular file (a FIFO or a device is refused
    /// before it is opened, so reading never waits on one) of at most
    /// [`MANIFEST_LIMIT`] bytes, whatever it grows to while it is read.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST_NAME);
        let read_err = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                ManifestError::Missing {
                    dir: dir.to_path_buf(),
                }
            } else {
                ManifestError::Read {
                    path: path.clone(),
                    source,
                }
            }
        };
        // Judged before the open: opening a FIFO for reading waits for a writer.
        let meta = fs::metadata(&path).map_err(read_err)?;
        if !meta.is_file() {
            return Err(ManifestError::NotAFile { path });
        }
        if meta.len() > MANIFEST_LIMIT {
            return Err(ManifestError::TooLarge { path });
        }
        let file = fs::File::open(&path).map_err(read_err)?;
        if !file.metadata().map_err(read_err)?.is_file() {
            return Err(ManifestError::NotAFile { path });
        }
        let mut bytes = Vec::new();
        file.take(MANIFEST_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(ManifestError::TooLarge { path });
        }
        let text = String::from_utf8(bytes).map_err(|e| ManifestError::Read {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
        })?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// The manifest as `kit.toml` text; [`Manifest::parse`] reads it back unchanged.
    pub fn to_toml(&self) -> String {
        let out = OutManifest {
            format: FORMAT,
            name: &self.name,
            version: &self.version,
            file: self
                .files
                .iter()
                .map(|f| OutFile {
                    path: &f.path,
                    role: f.role,
                    size: f.size,
                    sha256: &f.sha256,
                    host: f.host,
                    arch: f.arch,
                    version: f.version.as_deref(),
                    signer: match &f.signer {
                        Some(Signer::Thumbprint(t)) => Some(format!("sha256:{t}")),
                        _ => None,
                    },
                    signer_ca: match &f.signer {
                        Some(Signer::Ca(p)) => Some(p.as_str()),
                        _ => None,
                    },
                })
                .collect(),
        };
        // Every field is a string, an integer or a table of them: serialising cannot fail.
        toml::to_string(&out).unwrap_or_default()
    }

    /// The entry for a manifest path, if listed.
    pub fn get(&self, path: &str) -> Option<&KitFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The files under a folder of the kit (`"rootfs"` lists `rootfs/...`).
    pub fn under<'a>(&'a self, folder: &'a str) -> impl Iterator<Item = &'a KitFile> + 'a {
        self.files.iter().filter(move |f| {
            f.path
                .strip_prefix(folder)
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Verifies every listed file, returning every problem found (empty when all match).
    pub fn verify_all(&self, dir: &Path) -> Vec<VerifyError> {
        self.files
            .iter()
            .filter_map(|f| verify_file(dir, f).err())
            .collect()
    }

    /// Regular files and symlinks under `dir` (the kit folder) that the manifest does
    /// not list, as manifest paths; `kit.toml` itself is not reported.
    pub fn unlisted(&self, dir: &Path) -> io::Result<Vec<String>> {
        let listed: std::collections::BTreeSet<&str> =
            self.files.iter().map(|f| f.path.as_str()).collect();
        let mut out = Vec::new();
        for p in walk(dir)? {
            if p != MANIFEST_NAME && !listed.contains(p.as_str()) {
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// Every non-directory entry under `dir`, as sorted `/`-separated relative paths.
/// Symlinks are listed, not followed.
pub fn walk(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        for e in fs::read_dir(&abs)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type()?.is_dir() {
                stack.push((e.path(), r));
            } else {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The host path of a manifest path inside `dir`.
pub fn host_path(dir: &Path, path: &str) -> PathBuf {
    let mut p = dir.to_path_buf();
    p.extend(path.split('/'));
    p
}

/// SHA-256 and size of a reader, streamed.
pub fn sha256_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n: u64 = 0;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(buf.get(..k).unwrap_or_default());
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Checks one kit file against its entry: present, a regular file (a symlink is
/// refused: its target could be anything on the host), the listed size and SHA-256.
/// The content is streamed, never held in memory.
pub fn verify_file(dir: &Path, f: &KitFile) -> Result<(), VerifyError> {
    let p = host_path(dir, &f.path);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VerifyError::Missing {
                path: f.path.clone(),
                expected_size: f.size,
                expected_sha256: f.sha256.clone(),
            });
        }
        Err(source) => {
            return Err(VerifyError::Read {
                path: f.path.clone(),
                source,
            });
        }
    };
    if !meta.is_file() {
        return Err(VerifyError::NotAFile {
            path: f.path.clone(),
        });
    }
    let read_err = |source| VerifyError::Read {
        path: f.path.clone(),
        source,
    };
    let file = fs::File::open(&p).map_err(read_err)?;
    let (actual, size) = sha256_reader(file).map_err(read_err)?;
    if size != f.size {
        return Err(VerifyError::SizeMismatch {
            path: f.path.clone(),
            expected: f.size,
            actual: size,
            expected_sha256: f.sha256.clone(),
            actual_sha256: actual,
        });
    }
    if actual != f.sha256 {
        return Err(VerifyError::DigestMismatch {
            path: f.path.clone(),
            expected: f.sha256.clone(),
            actual,
            size,
        });
    }
    Ok(())
}

/// Describes a file on disk as a manifest entry (size and SHA-256 computed), for
/// `kit init` and kit builders.
pub fn describe(dir: &Path, path: &str, role: Role) -> io::Result<KitFile> {
    let file = fs::File::open(host_path(dir, path))?;
    let (sha256, size) = sha256_reader(file)?;
    Ok(KitFile {
        path: path.to_owned(),
        role,
        size,
        sha256,
        host: Host::Any,
        arch: Arch::Any,
        version: None,
        signer: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"format = 1
name = "t"
version = "1"

[[file]]
path = "uml/linux.uml"
role = "kernel"
size = 3
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
host = "linux"
arch = "x86_64"
version = "6.1.0"

[[file]]
path = "certs/ca.pem"
role = "other"
size = 0
sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

[[file]]
path = "win/linux.sys"
role = "driver"
size = 0
sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
host = "windows"
signer_ca = "certs/ca.pem"
"#;

    fn err(text: &str) -> (usize, String) {
        match Manifest::parse(text, "kit.toml") {
            Err(ManifestError::Invalid { line, message, .. }) => (line, message),
            other => panic!("expected an invalid manifest, got {other:?}"),
        }
    }

    #[test]
    fn parses_and_round_trips() {
        let m = Manifest::parse(GOOD, "kit.toml").expect("valid");
        assert_eq!(m.files.len(), 3);
        assert_eq!(m.files[0].role, Role::Kernel);
        assert_eq!(m.files[0].host, Host::Linux);
        assert_eq!(m.files[0].arch, Arch::X86_64);
        assert_eq!(m.files[1].host, Host::Any);
        assert_eq!(m.files[2].role, Role::Driver);
        // Upper-case hex is accepted and normalised.
        assert_eq!(&m.files[2].sha256[..4], "e3b0");
        assert_eq!(m.files[2].signer, Some(Signer::Ca("certs/ca.pem".into())));
        let again = Manifest::parse(&m.to_toml(), "again").expect("own output parses");
        assert_eq!(again, m);
    }

    #[test]
    fn errors_name_the_line() {
        let bad_role = GOOD.replace("role = \"kernel\"", "role = \"kernal\"");
        let (line, msg) = err(&bad_role);
        assert_eq!(line, 7, "{msg}");
        assert!(msg.contains("kernal"), "{msg}");

        let (line, msg) = err(&GOOD.replace("uml/linux.uml", "../linux.uml"));
        assert_eq!(line, 6);
        assert!(msg.contains("`..`"), "{msg}");

        let (line, msg) = err(&GOOD.replace("uml/linux.uml", "/abs"));
        assert_eq!(line, 6);
        assert!(msg.contains("absolute"), "{msg}");

        let (line, msg) = err(&GOOD.replace("uml/linux.uml", "uml\\\\x"));
        assert_eq!(line, 6);
        assert!(msg.contains("'\\\\'"), "{msg}");

        let (line, msg) = err(&GOOD.replace("ba7816bf", "zz7816bf"));
        assert_eq!(line, 9);
        assert!(msg.contains("64 hexadecimal"), "{msg}");

        let (line, msg) = err(&GOOD.replace("certs/ca.pem\"\nrole", "UML/LINUX.UML\"\nrole"));
        assert_eq!(line, 15);
        assert!(msg.contains("listed twice"), "{msg}");

        let (line, msg) = err(&GOOD.replace(
            "signer_ca = \"certs/ca.pem\"",
            "signer_ca = \"certs/x.pem\"",
        ));
        assert_eq!(line, 26);
        assert!(msg.contains("not listed"), "{msg}");

        let (line, msg) = err(&GOOD.replace("signer_ca = \"certs/ca.pem\"", "signer = \"ab\""));
        assert_eq!(line, 26);
        assert!(msg.contains("thumbprint"), "{msg}");

        let (line, msg) = err(&GOOD.replace("format = 1", "format = 2"));
        assert_eq!(line, 1);
        assert!(msg.contains("format 2"), "{msg}");

        let (line, msg) = err(&GOOD.replace("host = \"linux\"", "hots = \"linux\""));
        assert_eq!(line, 10);
        assert!(msg.contains("hots"), "{msg}");

        let (line, msg) = err(&GOOD.replace("size = 3", "size = -3"));
        assert_eq!(line, 8, "{msg}");

        let (line, _) = err("format = 1\nname = \"x\"\nversion = [\n");
        assert_eq!(line, 3);
    }

    #[test]
    fn paths() {
        for bad in [
            "", "a//b", "a/", "./a", "a/./b", "c:/x", "kit.toml", "a\u{7}",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "rootfs/etc/passwd", "dist/.hidden", "a b/c"] {
            assert!(check_path(good).is_ok(), "{good:?} refused");
        }
    }
}
