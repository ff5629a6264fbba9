//! Test trees: the team's deterministic generator and a hand-made tree with one entry of
//! every kind the writer must handle.
//!
//! [`gen_tree`] runs `tests/fixtures/gen-tree.py` (a copy of the team's tool, so the
//! repository does not depend on anything outside it). [`every_kind_tree`] builds the
//! edge cases by hand; what needs root (devices, owners, `security.*` xattrs) is skipped
//! with a note when the test does not run as root or the host filesystem refuses it.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use crate::tools::{run_ok, tool};

/// Counts printed by `gen-tree.py` (its JSON summary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Directories, including the root.
    pub dirs: u64,
    /// Regular files created with content (hard-link names not included).
    pub files: u64,
    /// Bytes of regular-file data (the sparse file not included).
    pub bytes: u64,
    /// Extra hard-link names.
    pub hardlinks: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Symbolic links with a target of 60 bytes or more (stored in a block).
    pub slow_symlinks: u64,
    /// Empty regular files.
    pub empty: u64,
    /// FIFOs.
    pub fifos: u64,
    /// Files given a `user.test` xattr (0 when the host filesystem refuses them).
    pub xattr_files: u64,
    /// Sparse files (one, 64 MiB apparent size).
    pub sparse_files: u64,
    /// Device nodes (0 unless `devices` was asked for and the process may mknod).
    pub devices: u64,
    /// Entries of the one big flat directory.
    pub bigdir_entries: u64,
}

/// Path of the copied generator script.
pub fn gen_tree_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gen-tree.py")
}

/// Generates a deterministic tree at `dest` (which must not exist) with `files` regular
/// files holding about `mbytes` × 10⁶ bytes, from `seed`; `devices` also creates three
/// device nodes (root only; silently none otherwise, see [`TreeStats::devices`]).
///
/// Always present: a 64 MiB sparse file with three 64 KiB data runs (its holes span whole
/// indirect blocks on ext2/ext3), three FIFOs, hard links, fast and slow symlinks,
/// 255-byte and UTF-8 names, fixed mtimes. Note that the first 4,000 files all go into
/// one flat directory `usr_lib_bigdir`, so small trees are mostly that directory.
pub fn gen_tree(
    dest: &Path,
    files: u32,
    mbytes: u32,
    seed: u64,
    devices: bool,
) -> Result<TreeStats> {
    if files < 13 {
        bail!("gen_tree needs at least 13 files (12 large files absorb the byte budget)");
    }
    let mut cmd = Command::new(tool("python3")?);
    cmd.arg(gen_tree_script())
        .arg(dest)
        .args(["--files", &files.to_string()])
        .args(["--mbytes", &mbytes.to_string()])
        .args(["--seed", &seed.to_string()])
        .env("PYTHONHASHSEED", "0");
    if devices {
        cmd.arg("--devices");
    }
    let out =
        run_ok(&mut cmd).with_context(|| format!("generating a tree at {}", dest.display()))?;
    parse_stats(&String::from_utf8_lossy(&out.stdout))
}

/// Parses the flat `{"key": integer, ...}` JSON summary of `gen-tree.py`.
fn parse_stats(json: &str) -> Result<TreeStats> {
    let mut stats = TreeStats::default();
    let body = json
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .with_context(|| format!("gen-tree.py printed no JSON object: {json:?}"))?;
    for item in body.split(',') {
        let (key, value) = item
            .split_once(':')
            .with_context(|| format!("bad gen-tree.py summary item {item:?}"))?;
        let key = key.trim().trim_matches('"');
        let value: u64 = value
            .trim()
            .parse()
            .with_context(|| format!("bad gen-tree.py value for {key}: {value:?}"))?;
        let slot = match key {
            "dirs" => &mut stats.dirs,
            "files" => &mut stats.files,
            "bytes" => &mut stats.bytes,
            "hardlinks" => &mut stats.hardlinks,
            "symlinks" => &mut stats.symlinks,
            "slow_symlinks" => &mut stats.slow_symlinks,
            "empty" => &mut stats.empty,
            "fifos" => &mut stats.fifos,
            "xattr_files" => &mut stats.xattr_files,
            "sparse_files" => &mut stats.sparse_files,
            "devices" => &mut stats.devices,
            "bigdir_entries" => &mut stats.bigdir_entries,
            _ => continue,
        };
        *slot = value;
    }
    Ok(stats)
}

/// What [`every_kind_tree`] managed to create (root-only parts depend on the host).
#[derive(Clone, Debug, Default)]
pub struct EveryKind {
    /// Char and block devices were created (needs root).
    pub devices: bool,
    /// Entries were chowned to various uids/gids (needs root).
    pub owners: bool,
    /// `user.*` xattrs were set (the host filesystem may refuse them).
    pub user_xattrs: bool,
    /// `security.*` xattrs were set (needs root and host support).
    pub security_xattrs: bool,
    /// Why something was skipped, one line each.
    pub notes: Vec<String>,
}

/// Size of the big sparse file `sparse-big` (4 MiB + 128 KiB).
pub const SPARSE_BIG_LEN: u64 = (4 << 20) + (128 << 10);
/// Offset of the second data run of `sparse-big` (4 MiB + 64 KiB): the hole before it
/// spans the whole range of the first indirect block (48 KiB..4 MiB + 48 KiB with 4 KiB
/// blocks, 12 KiB..268 KiB with 1 KiB blocks).
pub const SPARSE_BIG_SECOND_RUN: u64 = (4 << 20) + (64 << 10);

/// Makes a small tree at `dest` (created; it must not exist or be empty) with one entry of
/// every kind, all paths relative to `dest`:
///
/// - `regular.txt` (text, 0644, `user.comment` xattr, `security.e2e` when allowed),
///   `empty` (0 bytes), `modes/`: `setuid` 4755, `setgid` 2750, `private` 0600,
///   `readonly` 0444, `none` 0000 (root only); `modes/sticky/` 1777 and
///   `modes/setgid-dir/` 2775;
/// - `sparse-big` (4 MiB + 128 KiB: 4 KiB of data at 0, at 4 MiB + 64 KiB and at the end,
///   so one hole spans a whole indirect block's range for 1 KiB and 4 KiB blocks)
///   and `sparse-small` (20 KiB + trailing hole: small holes inside direct blocks);
/// - `dir/sub/deeper/` with a file, `dir` carries `user.bin` (binary) and `user.empty`;
/// - `links/fast` (fast symlink, < 60 bytes), `links/slow` (100-byte target),
///   `links/dangling`;
/// - `hard/a`, `hard/b`, `dir/sub/c`: three names of one file;
/// - `dev/null` c 1:3, `dev/big-char` c 300:70000, `dev/sda` b 8:0, `dev/big-block`
///   b 259:300 (root only);
/// - `fifo`, and `socket` (a unix socket: the writer must skip it with a warning);
/// - owners (root only): uid/gid 1000:1000, 0:5, 65534:65534, 100000:200000;
/// - a 255-byte name, UTF-8 names (`utf8/café-日本語-ß.txt`, `utf8/répertoire/`);
/// - fixed mtimes with nanoseconds on every entry, the root included (set last).
pub fn every_kind_tree(dest: &Path) -> Result<EveryKind> {
    if dest.exists() && fs::read_dir(dest)?.next().is_some() {
        bail!("{} exists and is not empty", dest.display());
    }
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let is_root = rustix::process::geteuid().is_root();
    let mut made = EveryKind::default();
    let p = |rel: &str| dest.join(rel);

    for d in [
        "dir/sub/deeper",
        "links",
        "hard",
        "dev",
        "modes/sticky",
        "modes/setgid-dir",
        "utf8/répertoire",
    ] {
        fs::create_dir_all(p(d)).with_context(|| format!("mkdir {d}"))?;
    }
    write_file(
        &p("regular.txt"),
        b"a regular file\nwith two lines\n",
        0o644,
    )?;
    write_file(&p("empty"), b"", 0o644)?;
    write_file(
        &p("dir/sub/deeper/leaf.bin"),
        &pseudo_random(5000, 7),
        0o640,
    )?;
    write_file(&p("utf8/café-日本語-ß.txt"), "ünïcødé\n".as_bytes(), 0o644)?;
    write_file(&p("utf8/répertoire/fichier"), b"x", 0o644)?;
    let long_name = format!("{}.txt", "n".repeat(251));
    debug_assert_eq!(long_name.len(), 255);
    write_file(&p(&long_name), b"long name\n", 0o644)?;

    // Modes.
    for (name, mode) in [
        ("modes/setuid", 0o4755),
        ("modes/private", 0o600),
        ("modes/readonly", 0o444),
        ("modes/setgid", 0o2750),
    ] {
        write_file(&p(name), name.as_bytes(), mode)?;
    }
    if is_root {
        // Unreadable for anyone but root: a non-root writer could not copy it.
        write_file(&p("modes/none"), b"no permissions\n", 0o000)?;
    } else {
        made.notes.push("not root: no mode-0000 file".into());
    }
    set_mode(&p("modes/sticky"), 0o1777)?;
    set_mode(&p("modes/setgid-dir"), 0o2775)?;

    // Sparse files.
    {
        let mut f = fs::File::create(p("sparse-big"))?;
        for (off, seed) in [
            (0u64, 1u64),
            (SPARSE_BIG_SECOND_RUN, 2),
            (SPARSE_BIG_LEN - 4096, 3),
        ] {
            f.seek(SeekFrom::Start(off))?;
            f.write_all(&pseudo_random(4096, seed))?;
        }
        let mut f = fs::File::create(p("sparse-small"))?;
        f.write_all(&pseudo_random(4096, 4))?;
        f.seek(SeekFrom::Start(16 << 10))?;
        f.write_all(&pseudo_random(4096, 5))?;
        f.set_len(64 << 10)?;
    }

    // Symlinks.
    symlink("../regular.txt", p("links/fast"))?;
    let slow_target = format!("../dir/sub/deeper/{}", "s".repeat(82));
    debug_assert_eq!(slow_target.len(), 100);
    symlink(&slow_target, p("links/slow"))?;
    symlink("/does/not/exist", p("links/dangling"))?;

    // Hard links: three names of one file.
    write_file(&p("hard/a"), b"three names, one inode\n", 0o644)?;
    fs::hard_link(p("hard/a"), p("hard/b"))?;
    fs::hard_link(p("hard/a"), p("dir/sub/c"))?;

    // FIFO and socket.
    rustix::fs::mknodat(
        CWD,
        p("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .context("mkfifo")?;
    drop(std::os::unix::net::UnixListener::bind(p("socket")).context("binding a unix socket")?);

    // Devices (root only).
    if is_root {
        for (name, ty, maj, min) in [
            ("dev/null", FileType::CharacterDevice, 1, 3),
            ("dev/big-char", FileType::CharacterDevice, 300, 70000),
            ("dev/sda", FileType::BlockDevice, 8, 0),
            ("dev/big-block", FileType::BlockDevice, 259, 300),
        ] {
            rustix::fs::mknodat(
                CWD,
                p(name),
                ty,
                Mode::from_raw_mode(0o660),
                rustix::fs::makedev(maj, min),
            )
            .with_context(|| format!("mknod {name}"))?;
        }
        made.devices = true;
    } else {
        made.notes.push("not root: no device nodes".into());
    }

    // Xattrs.
    match rustix::fs::lsetxattr(
        p("regular.txt"),
        "user.comment",
        b"hello xattr",
        XattrFlags::empty(),
    ) {
        Ok(()) => {
            rustix::fs::lsetxattr(
                p("dir"),
                "user.bin",
                &[0u8, 0xff, 0x10, b'"', b'\n'],
                XattrFlags::empty(),
            )?;
            rustix::fs::lsetxattr(p("dir"), "user.empty", b"", XattrFlags::empty())?;
            rustix::fs::lsetxattr(p("hard/a"), "user.long", &[b'L'; 120], XattrFlags::empty())?;
            made.user_xattrs = true;
        }
        Err(e) => made
            .notes
            .push(format!("host filesystem refuses user.* xattrs: {e}")),
    }
    match rustix::fs::lsetxattr(
        p("regular.txt"),
        "security.e2e",
        b"sec\0value",
        XattrFlags::empty(),
    ) {
        Ok(()) => {
            rustix::fs::lsetxattr(
                p("links/slow"),
                "security.e2e",
                b"on a symlink",
                XattrFlags::empty(),
            )?;
            made.security_xattrs = true;
        }
        Err(e) => made
            .notes
            .push(format!("cannot set security.* xattrs here: {e}")),
    }

    // Owners (root only).
    if is_root {
        for (name, uid, gid) in [
            ("regular.txt", 1000, 1000),
            ("dir", 0, 5),
            ("links/slow", 65534, 65534),
            ("hard/a", 100_000, 200_000),
            ("modes/sticky", 1000, 100),
            ("fifo", 7, 8),
        ] {
            lchown(p(name), Some(uid), Some(gid)).with_context(|| format!("chown {name}"))?;
        }
        if made.devices {
            lchown(p("dev/big-char"), Some(0), Some(6))?;
        }
        made.owners = true;
    } else {
        made.notes
            .push("not root: every entry is owned by the current user".into());
    }

    // Fixed mtimes with nanoseconds, children before parents.
    let mut all = Vec::new();
    collect_paths(dest, &mut all)?;
    all.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    for (i, path) in all
        .iter()
        .chain(std::iter::once(&dest.to_path_buf()))
        .enumerate()
    {
        let i = i64::try_from(i)?;
        let nsec = if i % 5 == 0 {
            0
        } else {
            123_456_789 + i * 1_000_003
        };
        let mtime = Timespec {
            tv_sec: 1_500_000_000 + i * 86_400 + 17,
            tv_nsec: nsec,
        };
        let atime = Timespec {
            tv_sec: 1_400_000_000 + i,
            tv_nsec: 5,
        };
        rustix::fs::utimensat(
            CWD,
            path,
            &Timestamps {
                last_access: atime,
                last_modification: mtime,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("setting times on {}", path.display()))?;
    }
    Ok(made)
}

fn collect_paths(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_paths(&path, out)?;
        }
        out.push(path);
    }
    Ok(())
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Deterministic incompressible bytes (xorshift), never all zero.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every path under `dir` (not `dir` itself), depth first.
pub fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            out.extend(walk(&path)?);
        }
        out.push(path);
    }
    Ok(out)
}

/// A `sha256sum -c` manifest of every regular file under `root` (paths `./REL`), made by
/// the host's `sha256sum` (hashing 64 MiB in an unoptimized test build is slow), and the
/// number of files in it. Names `sha256sum` would have to escape are refused, since the
/// guest's busybox reads the manifest.
pub fn sha256_manifest(root: &Path) -> Result<(String, usize)> {
    let mut files = Vec::new();
    for path in walk(root)? {
        if fs::symlink_metadata(&path)?.is_file() {
            files.push(Path::new(".").join(path.strip_prefix(root)?));
        }
    }
    files.sort();
    let out = run_ok(
        Command::new("sha256sum")
            .arg("--")
            .args(&files)
            .current_dir(root),
    )?;
    let text = String::from_utf8(out.stdout).context("sha256sum output")?;
    anyhow::ensure!(
        text.lines().count() == files.len(),
        "sha256sum listed {} of {} files",
        text.lines().count(),
        files.len()
    );
    anyhow::ensure!(
        !text.lines().any(|l| l.starts_with('\\')),
        "a name sha256sum had to escape"
    );
    Ok((text, files.len()))
}
