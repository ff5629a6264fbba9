//! Batched `debugfs` requests and parsers for its output (e2fsprogs 1.47).
//!
//! One `debugfs -f CMDFILE IMAGE` process answers a whole batch. With `-f`, debugfs
//! echoes every request as a line `debugfs: REQUEST` on standard output before its
//! answer, which is how the answers are split. Requests name inodes as `<N>`, so no file
//! name ever has to be quoted; names in answers are read raw (`ls -p -r`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::tools::{run_capture, tool};

/// Runs `requests` (one line each) in one debugfs process, read-only.
/// Returns one raw answer (standard output bytes) per request, and debugfs's stderr.
pub(crate) fn batch(image: &Path, requests: &[String]) -> Result<(Vec<Vec<u8>>, String)> {
    if requests.is_empty() {
        return Ok((Vec::new(), String::new()));
    }
    let dir = tempfile::tempdir().context("temp dir for a debugfs request file")?;
    let cmdfile = dir.path().join("requests");
    let mut text = String::new();
    for r in requests {
        if r.contains('\n') {
            bail!("debugfs request contains a newline: {r:?}");
        }
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&cmdfile, text)?;
    let out = run_capture(
        Command::new(tool("debugfs")?)
            .arg("-f")
            .arg(&cmdfile)
            .arg(image)
            .env("LC_ALL", "C"),
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!(
            "debugfs on {} failed ({}): {stderr}",
            image.display(),
            out.status
        );
    }
    let answers = split_answers(&out.stdout, requests).with_context(|| {
        format!(
            "reading debugfs answers for {} (stderr: {stderr})",
            image.display()
        )
    })?;
    Ok((answers, stderr))
}

/// Splits debugfs -f output into one answer per request, checking the echoes.
fn split_answers(stdout: &[u8], requests: &[String]) -> Result<Vec<Vec<u8>>> {
    const ECHO: &[u8] = b"debugfs: ";
    let mut answers: Vec<Vec<u8>> = Vec::with_capacity(requests.len());
    for line in stdout.split_inclusive(|&b| b == b'\n') {
        if let Some(echo) = line.strip_prefix(ECHO) {
            let echo = echo.strip_suffix(b"\n").unwrap_or(echo);
            let expected = requests.get(answers.len()).with_context(|| {
                format!(
                    "more answers than requests at {:?}",
                    String::from_utf8_lossy(line)
                )
            })?;
            if echo == expected.as_bytes() {
                answers.push(Vec::new());
                continue;
            }
        }
        match answers.last_mut() {
            Some(a) => a.extend_from_slice(line),
            None => bail!(
                "debugfs printed {:?} before any request",
                String::from_utf8_lossy(line)
            ),
        }
    }
    if answers.len() != requests.len() {
        bail!(
            "debugfs answered {} of {} requests",
            answers.len(),
            requests.len()
        );
    }
    Ok(answers)
}

/// One entry of `ls -p -r`.
#[derive(Debug, Clone)]
pub(crate) struct LsEntry {
    pub ino: u32,
    /// Full `i_mode` (type and permission bits).
    pub mode: u32,
    pub name: Vec<u8>,
}

/// Parses an `ls -p -r` answer (`/INO/MODE/UID/GID/NAME/SIZE/` lines), without `.`/`..`.
pub(crate) fn parse_ls(answer: &[u8]) -> Result<Vec<LsEntry>> {
    let mut out = Vec::new();
    for line in answer.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&[u8]> = line.split(|&b| b == b'/').collect();
        let [empty, ino, mode, _uid, _gid, name, _size, tail] = parts.as_slice() else {
            bail!(
                "unexpected `ls -p` line {:?}",
                String::from_utf8_lossy(line)
            );
        };
        if !empty.is_empty() || !tail.is_empty() {
            bail!(
                "unexpected `ls -p` line {:?}",
                String::from_utf8_lossy(line)
            );
        }
        if *name == b"." || *name == b".." {
            continue;
        }
        let ino: u32 = std::str::from_utf8(ino)?
            .parse()
            .context("inode number in `ls -p`")?;
        if ino == 0 && name.is_empty() {
            // The fake entry that opens an htree index node (inode 0, no name): not a name.
            continue;
        }
        let mode = u32::from_str_radix(std::str::from_utf8(mode)?, 8).context("mode in `ls -p`")?;
        out.push(LsEntry {
            ino,
            mode,
            name: name.to_vec(),
        });
    }
    Ok(out)
}

/// What the oracle needs from `stat <ino>`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stat {
    /// `i_flags`.
    pub flags: u32,
    pub links: u32,
    pub mtime_sec: i64,
    /// Nanoseconds, when the inode has the extra time fields (256-byte inodes).
    pub mtime_nsec: Option<u32>,
    /// Device major/minor for device nodes.
    pub device: Option<(u32, u32)>,
}

impl Stat {
    /// The inode maps its blocks with extents (`EXT4_EXTENTS_FL`).
    pub fn uses_extents(&self) -> bool {
        self.flags & 0x8_0000 != 0
    }
}

/// Parses a `stat <ino>` answer.
pub(crate) fn parse_stat(answer: &[u8]) -> Result<Stat> {
    let text = String::from_utf8_lossy(answer);
    let mut st = Stat::default();
    let mut saw_mtime = false;
    let mut saw_inode = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("Inode: ") {
            saw_inode = true;
            let flags = rest
                .split("Flags: 0x")
                .nth(1)
                .context("no Flags in `stat`")?;
            let flags = flags.split_whitespace().next().unwrap_or(flags);
            st.flags = u32::from_str_radix(flags, 16).context("Flags in `stat`")?;
        } else if let Some(rest) = trimmed.strip_prefix("Links: ") {
            let n = rest.split_whitespace().next().unwrap_or(rest);
            st.links = n.parse().context("Links in `stat`")?;
        } else if let Some(rest) = trimmed.strip_prefix("mtime: 0x") {
            saw_mtime = true;
            let value = rest.split(" -- ").next().unwrap_or(rest).trim();
            let (lo, extra) = match value.split_once(':') {
                Some((lo, extra)) => (
                    lo,
                    Some(u32::from_str_radix(extra, 16).context("mtime extra")?),
                ),
                None => (value, None),
            };
            let lo = u32::from_str_radix(lo, 16).context("mtime in `stat`")?;
            // Signed 32-bit seconds, plus the epoch bits of the extra field.
            let lo = i64::from(lo.cast_signed());
            match extra {
                Some(extra) => {
                    st.mtime_sec = lo + (i64::from(extra & 3) << 32);
                    st.mtime_nsec = Some(extra >> 2);
                }
                None => st.mtime_sec = lo,
            }
        } else if let Some(idx) = trimmed.find("Device major/minor number: ") {
            let rest = &trimmed[idx + "Device major/minor number: ".len()..];
            let dec = rest.split_whitespace().next().unwrap_or(rest);
            let (maj, min) = dec.split_once(':').context("device number in `stat`")?;
            st.device = Some((maj.parse()?, min.parse()?));
        }
    }
    if !saw_inode || !saw_mtime {
        bail!("unexpected `stat` answer: {text:?}");
    }
    Ok(st)
}

/// Parses an `ea_list` answer into (name, value length) pairs.
pub(crate) fn parse_ea_list(answer: &[u8]) -> Result<Vec<(Vec<u8>, usize)>> {
    let mut out = Vec::new();
    for line in answer.split(|&b| b == b'\n') {
        if line.is_empty() || line == b"Extended attributes:" {
            continue;
        }
        let Some(line) = line.strip_prefix(b"  ") else {
            bail!(
                "unexpected `ea_list` line {:?}",
                String::from_utf8_lossy(line)
            );
        };
        // "NAME (LEN)" or "NAME (LEN) = VALUE": the first " (" followed by digits and ")".
        let mut found = None;
        for i in 0..line.len().saturating_sub(1) {
            if &line[i..i + 2] != b" (" {
                continue;
            }
            let rest = &line[i + 2..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || rest.get(digits) != Some(&b')') {
                continue;
            }
            let after = &rest[digits + 1..];
            if after.is_empty() || after.starts_with(b" = ") {
                let len: usize = std::str::from_utf8(&rest[..digits])?.parse()?;
                found = Some((line[..i].to_vec(), len));
                break;
            }
        }
        match found {
            Some(f) => out.push(f),
            None => bail!(
                "unexpected `ea_list` line {:?}",
                String::from_utf8_lossy(line)
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn stat_with_extra_fields() -> Result<()> {
        let s = parse_stat(
            b"Inode: 13   Type: character special    Mode:  0644   Flags: 0x80000\n\
              Links: 2   Blockcount: 0\n \
              mtime: 0x5e0be100:1d6f3454 -- Wed Jan  1 00:00:00 2020\n\
              (New-style) Device major/minor number: 300:70000 (hex 12c:11170)\n",
        )?;
        assert_eq!(s.flags, 0x80000);
        assert_eq!(s.links, 2);
        assert_eq!(s.mtime_sec, 0x5e0b_e100);
        assert_eq!(s.mtime_nsec, Some(0x1d6f_3454 >> 2));
        assert_eq!(s.device, Some((300, 70000)));
        Ok(())
    }

    #[test]
    fn stat_small_inode_and_negative_time() -> Result<()> {
        let s = parse_stat(b"Inode: 12   Type: regular    Mode:  0644   Flags: 0x0\nLinks: 1\nmtime: 0xffffffff -- x\n")?;
        assert_eq!(s.mtime_sec, -1);
        assert_eq!(s.mtime_nsec, None);
        assert!(!s.uses_extents());
        Ok(())
    }

    #[test]
    fn ea_list_lines() -> Result<()> {
        let l = parse_ea_list(
            b"Extended attributes:\n  user.x (8) = \"a (1) b\"\n  user.e (0)\n  user.big (300)\n",
        )?;
        assert_eq!(
            l,
            vec![
                (b"user.x".to_vec(), 8),
                (b"user.e".to_vec(), 0),
                (b"user.big".to_vec(), 300)
            ]
        );
        assert!(parse_ea_list(b"garbage\n").is_err());
        Ok(())
    }

    #[test]
    fn ls_lines() -> Result<()> {
        let l =
            parse_ls(b"/2/040755/0/0/.//\n/2/040755/0/0/..//\n/12/100644/0/0/caf\xc3\xa9/6/\n")?;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].ino, 12);
        assert_eq!(l[0].mode, 0o100644);
        assert_eq!(l[0].name, "café".as_bytes());
        assert!(parse_ls(b"/12/100644/0/0/a/b/6/\n").is_err());
        Ok(())
    }

    #[test]
    fn answers_split_on_echoes() -> Result<()> {
        let reqs = vec!["stat <2>".to_string(), "ls -p -r <2>".to_string()];
        let a = split_answers(
            b"debugfs: stat <2>\nA\nB\ndebugfs: ls -p -r <2>\nC\n",
            &reqs,
        )?;
        assert_eq!(a, vec![b"A\nB\n".to_vec(), b"C\n".to_vec()]);
        assert!(split_answers(b"debugfs: stat <2>\n", &reqs).is_err());
        Ok(())
    }
}
