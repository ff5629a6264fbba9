//! Windows implementations: `%ProgramData%`, free space through `GetDiskFreeSpaceExW`,
//! and the staged guest files as a tar stream.
//!
//! Why the tar stream: the image builder reads host folders with their Unix owners,
//! modes and devices, which NTFS does not have. The installer still stages the guest's
//! `/etc` files and trees in a folder (the same code on every host) and records the mode
//! each entry must have ([`record_mode`]); [`staged_as_tar`] then writes those folders
//! and files into one tar archive with the recorded modes, owner root, so the image is
//! the one a Linux host would build (`/etc/shadow` 0600, `rcS` executable).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use image_builder::{Source, TarInput};

/// Modes recorded for staged paths.
static MODES: Mutex<Option<HashMap<PathBuf, u32>>> = Mutex::new(None);
/// Symbolic links recorded for staged placeholder files: path -> target.
static LINKS: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// A file setup.msi installs beside the program: `INSTALLDIR\assets\NAME` when the
/// program is `INSTALLDIR\bin\colinux-setup.exe` (cargo-wix's layout), if it exists.
pub fn bundled_asset(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let root = exe.parent()?.parent()?;
    let p = root.join("assets").join(name);
    p.is_file().then_some(p)
}

/// `%ProgramData%` (machine-wide, writable by administrators and SYSTEM; never a user
/// profile, so the MSI's custom actions running as SYSTEM find the same folder).
pub fn program_data() -> PathBuf {
    std::env::var_os("ProgramData")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
}

/// Free bytes available to this user and total bytes of the volume holding `existing`.
pub fn volume_space(existing: &Path) -> Option<(u64, u64)> {
    use std::os::windows::ffi::OsStrExt as _;
    use windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW;
    let wide: Vec<u16> = existing
        .as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect();
    let (mut free, mut total, mut total_free) = (0u64, 0u64, 0u64);
    // SAFETY: `wide` is a NUL-terminated UTF-16 string that outlives the call; the three
    // out-pointers are valid, aligned u64s owned by this frame.
    let ok = unsafe { GetDiskFreeSpaceExW(wide.as_ptr(), &mut free, &mut total, &mut total_free) };
    (ok != 0).then_some((free, total))
}

/// Remembers the mode `path` must have in the image.
pub fn record_mode(path: &Path, mode: u32) {
    if let Ok(mut m) = MODES.lock() {
        m.get_or_insert_with(HashMap::new)
            .insert(path.to_owned(), mode);
    }
}

/// Remembers that the placeholder `link` is a symbolic link to `target`.
pub fn record_symlink(link: &Path, target: &str) {
    if let Ok(mut m) = LINKS.lock() {
        m.get_or_insert_with(HashMap::new)
            .insert(link.to_owned(), target.to_owned());
    }
}

fn link_of(path: &Path) -> Option<String> {
    LINKS
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(path).cloned()))
}

fn mode_of(path: &Path, default: u32) -> u32 {
    MODES
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(path).copied()))
        .unwrap_or(default)
}

/// Replaces the folder and file sources staged under `staging` by one tar archive
/// written there, keeping their order (a later entry replaces an earlier one, as the
/// builder layers sources). Other sources (tarballs, images) are kept as they are.
pub fn staged_as_tar(sources: Vec<Source>, staging: &Path) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    let mut n = 0;
    for s in sources {
        let archive = staging.join(format!("staged-{n}.tar"));
        match &s {
            Source::Dir(dir) => {
                n += 1;
                let mut b = builder(&archive)?;
                append_tree(&mut b, dir, "")?;
                finish(b, &archive)?;
            }
            Source::File { src, dest } => {
                n += 1;
                let mut b = builder(&archive)?;
                let name = dest.trim_start_matches('/');
                append_file(&mut b, src, name)?;
                finish(b, &archive)?;
            }
            _ => {
                out.push(s);
                continue;
            }
        }
        out.push(Source::Tar(TarInput::File(archive)));
    }
    Ok(out)
}

fn builder(archive: &Path) -> Result<tar::Builder<BufWriter<File>>> {
    let f = File::create(archive).with_context(|| format!("creating {}", archive.display()))?;
    Ok(tar::Builder::new(BufWriter::new(f)))
}

fn finish(b: tar::Builder<BufWriter<File>>, archive: &Path) -> Result<()> {
    b.into_inner()
        .and_then(|w| w.into_inner().map_err(std::io::IntoInnerError::into_error))
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", archive.display()))
}

fn header(md: &std::fs::Metadata, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    h.set_mtime(mtime);
    h
}

/// Appends `dir`'s entries in name order, each at `prefix/name`.
fn append_tree(b: &mut tar::Builder<BufWriter<File>>, dir: &Path, prefix: &str) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let path = e.path();
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let md = e
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        if md.is_dir() {
            let mut h = header(&md, mode_of(&path, 0o755));
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{name}/"), std::io::empty())
                .with_context(|| format!("adding {}", path.display()))?;
            append_tree(b, &path, &format!("{name}/"))?;
        } else if let Some(target) = link_of(&path) {
            let mut h = header(&md, 0o777);
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &name, &target)
                .with_context(|| format!("adding the link {}", path.display()))?;
        } else {
            append_file(b, &path, &name)?;
        }
    }
    Ok(())
}

fn append_file(b: &mut tar::Builder<BufWriter<File>>, src: &Path, name: &str) -> Result<()> {
    let md = std::fs::metadata(src).with_context(|| format!("reading {}", src.display()))?;
    let mut h = header(&md, mode_of(src, 0o644));
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(md.len());
    let f = File::open(src).with_context(|| format!("reading {}", src.display()))?;
    b.append_data(&mut h, name, f)
        .with_context(|| format!("adding {}", src.display()))
}
