//! The download cache: files keyed by their sha256, and kit folders made from them.
//!
//! ```text
//! CACHE/objects/<sha256>        a file whose content has that digest (checked again before each use)
//! CACHE/objects/<sha256>.part   a download in progress; resumed by the next run
//! CACHE/folders/<16 hex>/       a kit folder: kit.toml plus hard links to the objects
//! ```
//!
//! The kit folder is what the rest of the installer sees (`--kit DIR`), so a kit from a
//! URL goes down exactly the same path as one from a folder. Its files are hard links to
//! the objects (copies where the volume cannot link), except that a digest listed twice
//! in one kit is linked once and copied after: the image builder stores files that share
//! an inode as hard links, and a folder kit's two identical files are two inodes.
//!
//! The default place is `$XDG_CACHE_HOME/colinux-setup/kits` (else
//! `~/.cache/colinux-setup/kits`) on Unix and the machine-wide
//! `%ProgramData%\colinux-setup\cache` on Windows; `--cache DIR` or
//! `COLINUX_SETUP_CACHE` choose another.
//!
//! # Limitations
//! A manifest carries no file modes: kit files are created with the default mode
//! (0666 less the umask), so a `rootfs/` tree that needs executables should come as a
//! folder kit. Nothing is ever evicted from the cache.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use driver_bundle::manifest::{self, KitFile, MANIFEST_NAME};

use super::error::DownloadError;

/// The cache folder to use: `explicit`, else `COLINUX_SETUP_CACHE`, else the default.
pub fn location(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("COLINUX_SETUP_CACHE").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return std::path::absolute(&p).unwrap_or(p);
    }
    default_location()
}

#[cfg(windows)]
fn default_location() -> PathBuf {
    // Machine-wide: an MSI running as SYSTEM and an administrator share one cache.
    let base = std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
    base.join("colinux-setup").join("cache")
}

#[cfg(not(windows))]
fn default_location() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("colinux-setup").join("folders")
}

/// A cache folder.
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creates) the cache at `root`.
    pub fn open(root: &Path) -> Result<Cache, DownloadError> {
        for sub in ["objects", "folders"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|e| DownloadError::io(&d, e))?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    /// Where the object with this digest lives.
    pub fn object(&self, sha256: &str) -> PathBuf {
        self.root.join("objects").join(sha256)
    }

    /// Where its download in progress lives.
    pub fn part(&self, sha256: &str) -> PathBuf {
        self.root.join("objects").join(format!("{sha256}.part"))
    }

    /// Whether the object for `f` is present and still has the right size and digest.
    /// A damaged object is deleted (and `Ok(false)` returned), so it is fetched again.
    pub fn has(&self, f: &KitFile) -> Result<bool, DownloadError> {
        let obj = self.object(&f.sha256);
        match check(&obj, f.size, &f.sha256) {
            Ok(true) => Ok(true),
            Ok(false) => {
                remove(&obj)?;
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(DownloadError::io(&obj, e)),
        }
    }

    /// Moves a verified download into place.
    pub fn commit(&self, sha256: &str) -> Result<(), DownloadError> {
        let (part, obj) = (self.part(sha256), self.object(sha256));
        fs::rename(&part, &obj).map_err(|e| DownloadError::io(&obj, e))
    }

    /// Makes (or reuses) the kit folder for manifest text `text` listing `files`, every
    /// one of them already a verified object; returns its path.
    pub fn materialise(&self, text: &str, files: &[KitFile]) -> Result<PathBuf, DownloadError> {
        let key = super::sha256_hex(text.as_bytes());
        let key = key.get(..16).unwrap_or(&key);
        let dir = self.root.join("folders").join(key);
        if self.still_good(&dir, text, files) {
            return Ok(dir);
        }
        let tmp = self
            .root
            .join("folders")
            .join(format!("{key}.tmp-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| DownloadError::io(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| DownloadError::io(&tmp, e))?;
        let made = self.fill(&tmp, text, files).and_then(|()| {
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(|e| DownloadError::io(&dir, e))?;
            }
            fs::rename(&tmp, &dir).map_err(|e| DownloadError::io(&dir, e))
        });
        if made.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        made.map(|()| dir)
    }

    fn fill(&self, dir: &Path, text: &str, files: &[KitFile]) -> Result<(), DownloadError> {
        let top = dir.join(MANIFEST_NAME);
        fs::write(&top, text).map_err(|e| DownloadError::io(&top, e))?;
        let mut linked = std::collections::BTreeSet::new();
        for f in files {
            let dst = manifest::host_path(dir, &f.path);
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent).map_err(|e| DownloadError::io(parent, e))?;
            }
            let obj = self.object(&f.sha256);
            let link = linked.insert(f.sha256.as_str()) && fs::hard_link(&obj, &dst).is_ok();
            if !link {
                fs::copy(&obj, &dst).map_err(|e| DownloadError::io(&dst, e))?;
            }
        }
        Ok(())
    }

    /// Whether an existing kit folder is exactly this kit: the same kit.toml, nothing
    /// else in it, and every file the object itself (same inode) or a copy that still
    /// verifies.
    fn still_good(&self, dir: &Path, text: &str, files: &[KitFile]) -> bool {
        if fs::read_to_string(dir.join(MANIFEST_NAME)).ok().as_deref() != Some(text) {
            return false;
        }
        let mut want: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        want.push(MANIFEST_NAME);
        want.sort_unstable();
        match manifest::walk(dir) {
            Ok(have) if have.iter().map(String::as_str).eq(want.iter().copied()) => {}
            _ => return false,
        }
        files.iter().all(|f| {
            let p = manifest::host_path(dir, &f.path);
            same_file(&p, &self.object(&f.sha256)) || manifest::verify_file(dir, f).is_ok()
        })
    }
}

/// Whether `path` has `size` bytes with digest `sha256`.
fn check(path: &Path, size: u64, sha256: &str) -> io::Result<bool> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() || meta.len() != size {
        return Ok(false);
    }
    let (digest, n) = manifest::sha256_reader(fs::File::open(path)?)?;
    Ok(n == size && digest == sha256)
}

/// Deletes a file; one that is already gone is fine.
pub fn remove(path: &Path) -> Result<(), DownloadError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DownloadError::io(path, e)),
    }
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.is_file() && x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &Path, _: &Path) -> bool {
    // No inode numbers in std here: the caller re-hashes instead.
    false
}

#[cfg(test)]
mod tests {
    use driver_bundle::manifest::{Arch, Host, Role};

    use super::*;

    fn file(path: &str, data: &[u8]) -> KitFile {
        KitFile {
            path: path.to_owned(),
            role: Role::Distribution,
            size: data.len() as u64,
            sha256: super::super::sha256_hex(data),
            host: Host::Any,
            arch: Arch::Any,
            version: None,
            signer: None,
        }
    }

    fn put(cache: &Cache, data: &[u8]) {
        let f = file("x", data);
        fs::write(cache.part(&f.sha256), data).expect("write");
        cache.commit(&f.sha256).expect("commit");
    }

    #[test]
    fn a_damaged_object_is_deleted_and_reported_missing() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(t.path()).expect("open");
        let f = file("dist/a", b"right");
        put(&cache, b"right");
        assert!(cache.has(&f).expect("has"));
        fs::write(cache.object(&f.sha256), b"wrong").expect("damage");
        assert!(!cache.has(&f).expect("has"));
        assert!(!cache.object(&f.sha256).exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_kit_folder_links_each_digest_once_and_is_reused_while_it_is_intact() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(t.path()).expect("open");
        let files = [
            file("rootfs/a", b""),
            file("rootfs/b", b""),
            file("dist/c", b"data"),
        ];
        put(&cache, b"");
        put(&cache, b"data");
        let dir = cache.materialise("text", &files).expect("materialise");
        let ino = |p: &str| fs::metadata(dir.join(p)).expect("stat").ino();
        // Two files with one digest are two inodes, as in a folder kit.
        assert_ne!(ino("rootfs/a"), ino("rootfs/b"));
        let obj = fs::metadata(cache.object(&files[2].sha256)).expect("stat");
        assert_eq!(ino("dist/c"), obj.ino());
        assert_eq!(
            fs::read_to_string(dir.join("kit.toml")).expect("read"),
            "text"
        );
        // Intact: the same folder, untouched (a rebuild would copy `rootfs/b` anew
        // while the old one still exists, so its inode would change).
        let before = ino("rootfs/b");
        let again = cache.materialise("text", &files).expect("again");
        assert_eq!(again, dir);
        assert_eq!(ino("rootfs/b"), before);
        // A stray file makes it rebuilt without the stray.
        fs::write(dir.join("dist/stray"), b"?").expect("write");
        let again = cache.materialise("text", &files).expect("rebuilt");
        assert!(!again.join("dist/stray").exists());
    }
}
