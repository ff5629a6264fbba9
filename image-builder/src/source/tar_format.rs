//! The tar format, read as a stream: 512-byte headers (v7, ustar, GNU), pax extended
//! records (POSIX.1-2001, length-prefixed `LEN KEY=VALUE\n`), GNU long names (`L`, `K`)
//! and GNU old-style sparse files (`S`, with extension headers), each checked against its
//! header checksum. References: POSIX pax(1) "ustar Interchange Format" and "pax Header
//! Block"; GNU tar manual, "Tar Archive Format" (GNU sparse and long names).
//!
//! Data is handed out through [`TarReader::data`], a reader that yields the entry's
//! logical bytes (holes of sparse files as zeros, which the writer skips) and leaves the
//! stream at the next header.
//!
//! # Limits
//!
//! What the archive says is held in memory only up to stated limits, each refused with
//! the entry and its offset: a pax extended header (`x`, `g`) or GNU long name (`L`,
//! `K`) of at most [`MAX_EXTENDED`] bytes, at most that much of pax records in force at
//! once (the global ones, plus the local ones for one entry), a path or link target of
//! at most [`MAX_PATH`] bytes, and a GNU sparse map of at most [`MAX_SPARSE`] segments.
//! Pax records this reader uses (`size`, `uid`, `gid`, `mtime`) must be numbers; one
//! that is not is an error, not a record to skip.

use std::io::{self, Read};

use crate::source::tar::FileBytes;

/// The most bytes one extended header (pax or GNU long name) may hold, and the most of
/// pax records in force at once: 1 MiB, far above what attributes in one ext4 block
/// and a path need.
pub(crate) const MAX_EXTENDED: u64 = 1 << 20;
/// The longest path or link target: 64 KiB (Linux's PATH_MAX is 4 KiB; deeper trees
/// exist, but not ones sixteen times deeper).
pub(crate) const MAX_PATH: usize = 64 << 10;
/// The most segments of a GNU sparse map (16 bytes each in memory).
pub(crate) const MAX_SPARSE: usize = 1 << 20;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
    /// A type this reader does not store (its data is skipped).
    Other(u8),
}

/// One archive member with everything its headers and pax records said.
#[derive(Clone, Debug)]
pub(crate) struct TarEntry {
    /// Byte offset of the entry's first header (pax or long-name headers included).
    pub offset: u64,
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: (i64, u32),
    /// Logical size (for sparse files, with the holes).
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Extended attributes from `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*` records.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// `GNU.sparse.*` pax records were present (pax sparse formats are not read).
    pub pax_sparse: bool,
}

/// A format error, with where it happened.
#[derive(Debug)]
pub(crate) struct FormatError {
    pub offset: u64,
    pub entry: Option<Vec<u8>>,
    pub reason: String,
}

/// A tar stream being read.
pub(crate) struct TarReader<R> {
    r: R,
    pos: u64,
    global: Vec<PaxRecord>,
    /// Stored bytes of the current entry not read yet, and the padding after them.
    left: u64,
    pad: u64,
    /// The current entry's sparse map (offset, length) and logical size.
    sparse: Option<(Vec<(u64, u64)>, u64)>,
}

const BLOCK: usize = 512;

impl<R: Read> TarReader<R> {
    pub(crate) fn new(r: R) -> TarReader<R> {
        TarReader {
            r,
            pos: 0,
            global: Vec::new(),
            left: 0,
            pad: 0,
            sparse: None,
        }
    }

    fn err(&self, offset: u64, entry: Option<&[u8]>, reason: impl Into<String>) -> FormatError {
        FormatError {
            offset,
            entry: entry.map(<[u8]>::to_vec),
            reason: reason.into(),
        }
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of stream before the
    /// first byte.
    fn read_block(&mut self, buf: &mut [u8], entry: Option<&[u8]>) -> Result<bool, FormatError> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(self.err(
                        self.pos,
                        entry,
                        "the stream ends inside a header: the archive is truncated",
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(self.err(
                        self.pos,
                        entry,
                        format!("cannot read the stream: {e}; the archive is corrupt"),
                    ));
                }
            }
        }
        self.pos += buf.len() as u64;
        Ok(true)
    }

    /// Reads `n` bytes of an extension entry's data (pax records, long names).
    fn read_data(&mut self, n: u64, entry: Option<&[u8]>) -> Result<Vec<u8>, FormatError> {
        if n > MAX_EXTENDED {
            return Err(self.err(
                self.pos,
                entry,
                format!(
                    "an extended header of {n} bytes is more than the {MAX_EXTENDED} bytes \
                     this reader takes: the archive is corrupt or hostile"
                ),
            ));
        }
        let padded = n.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut v = vec![0u8; padded as usize];
        if !self.read_block(&mut v, entry)? {
            return Err(self.err(
                self.pos,
                entry,
                "the stream ends inside an extended header: the archive is truncated",
            ));
        }
        v.truncate(n as usize);
        Ok(v)
    }

    /// Skips what is left of the current entry's data.
    fn skip_rest(&mut self) -> Result<(), FormatError> {
        let mut sink = [0u8; 8192];
        let mut n = self.left + self.pad;
        while n > 0 {
            let k = n.min(sink.len() as u64) as usize;
            if !self.read_block(&mut sink[..k], None)? {
                return Err(self.err(
                    self.pos,
                    None,
                    "the stream ends inside an entry's data: the archive is truncated",
                ));
            }
            n -= k as u64;
        }
        self.left = 0;
        self.pad = 0;
        self.sparse = None;
        Ok(())
    }

    /// The next entry, or `None` at the end of the archive.
    pub(crate) fn next_entry(&mut self) -> Result<Option<TarEntry>, FormatError> {
        self.skip_rest()?;
        let start = self.pos;
        let mut local: Vec<PaxRecord> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut h = [0u8; BLOCK];
            let at = self.pos;
            if !self.read_block(&mut h, None)? {
                if at == 0 {
                    return Err(self.err(0, None, "the stream is empty: not a tar archive"));
                }
                // Some writers end without the two zero blocks: the end of the stream at a
                // header boundary ends the archive.
                return Ok(None);
            }
            if h.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let name = field_str(&h[0..100]).to_vec();
            check_checksum(&h).map_err(|r| self.err(at, Some(&name), r))?;
            let typeflag = h[156];
            let num = |f: &[u8], what: &str| {
                parse_num(f).ok_or_else(|| {
                    self.err(
                        at,
                        Some(&name),
                        format!("the {what} field is not a number: the header is corrupt"),
                    )
                })
            };
            let size = num(&h[124..136], "size")?;
            match typeflag {
                b'x' | b'g' => {
                    let data = self.read_data(size, Some(&name))?;
                    let recs = parse_pax(&data).map_err(|r| self.err(at, Some(&name), r))?;
                    if typeflag == b'x' {
                        local.extend(recs)
                    } else {
                        self.global.extend(recs)
                    }
                    let held: usize = self
                        .global
                        .iter()
                        .chain(&local)
                        .map(|(k, v)| k.len() + v.len())
                        .sum();
                    if held as u64 > MAX_EXTENDED {
                        return Err(self.err(
                            at,
                            Some(&name),
                            format!(
                                "pax records of {held} bytes in force at once are more than \
                                 the {MAX_EXTENDED} bytes this reader takes: the archive is \
                                 corrupt or hostile"
                            ),
                        ));
                    }
                    continue;
                }
                b'L' | b'K' => {
                    let mut data = self.read_data(size, Some(&name))?;
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    if typeflag == b'L' {
                        long_name = Some(data)
                    } else {
                        long_link = Some(data)
                    }
                    continue;
                }
                _ => {}
            }
            let ustar = &h[257..263] == b"ustar\0";
            let mut path = if ustar && h[345] != 0 {
                let mut p = field_str(&h[345..500]).to_vec();
                p.push(b'/');
                p.extend_from_slice(&name);
                p
            } else {
                name.clone()
            };
            let mut link = field_str(&h[157..257]).to_vec();
            if let Some(n) = long_name.take() {
                path = n;
            }
            if let Some(l) = long_link.take() {
                link = l;
            }
            let kind = match typeflag {
                b'0' | 0 | b'7' | b'S' => EntryKind::Regular,
                b'1' => EntryKind::HardLink,
                b'2' => EntryKind::Symlink,
                b'3' => EntryKind::Char,
                b'4' => EntryKind::Block,
                b'5' => EntryKind::Dir,
                b'6' => EntryKind::Fifo,
                other => EntryKind::Other(other),
            };
            // A v7 regular file whose name ends in '/' is a directory.
            let kind = if kind == EntryKind::Regular && typeflag == 0 && path.ends_with(b"/") {
                EntryKind::Dir
            } else {
                kind
            };
            let mut e = TarEntry {
                offset: start,
                path,
                link,
                kind,
                mode: num(&h[100..108], "mode")? as u32,
                uid: num(&h[108..116], "uid")?,
                gid: num(&h[116..124], "gid")?,
                mtime: (
                    i64::try_from(num(&h[136..148], "mtime")?).unwrap_or(i64::MAX),
                    0,
                ),
                size,
                dev_major: num(&h[329..337], "devmajor").unwrap_or(0) as u32,
                dev_minor: num(&h[337..345], "devminor").unwrap_or(0) as u32,
                xattrs: Vec::new(),
                pax_sparse: false,
            };
            let mut stored = size;
            for (k, v) in self.global.iter().chain(local.iter()) {
                apply_pax(&mut e, &mut stored, k, v)
                    .map_err(|r| self.err(start, Some(&e.path), r))?;
            }
            for (what, len) in [("path", e.path.len()), ("link target", e.link.len())] {
                if len > MAX_PATH {
                    // The name shown is cut: the message must stay readable.
                    let shown = &e.path[..e.path.len().min(100)];
                    return Err(self.err(
                        start,
                        Some(shown),
                        format!(
                            "its {what} is {len} bytes, more than the {MAX_PATH} bytes this \
                             reader takes: the archive is corrupt or hostile"
                        ),
                    ));
                }
            }
            if typeflag == b'S' {
                // GNU old sparse: up to 4 (offset, length) pairs in the header, more in
                // extension blocks; the logical size is `realsize`.
                let mut map = Vec::new();
                read_sparse(&h[386..482], &mut map);
                let mut extended = h[482] != 0;
                while extended {
                    let mut x = [0u8; BLOCK];
                    if !self.read_block(&mut x, Some(&e.path))? {
                        return Err(self.err(
                            self.pos,
                            Some(&e.path),
                            "the stream ends inside a sparse map: the archive is truncated",
                        ));
                    }
                    read_sparse(&x[..504], &mut map);
                    extended = x[504] != 0;
                    if map.len() > MAX_SPARSE {
                        return Err(self.err(
                            at,
                            Some(&e.path),
                            format!(
                                "its sparse map has more than the {MAX_SPARSE} segments this \
                                 reader takes: the archive is corrupt or hostile"
                            ),
                        ));
                    }
                }
                let real = parse_num(&h[483..495]).ok_or_else(|| {
                    self.err(
                        at,
                        Some(&e.path),
                        "the sparse file's real size is not a number",
                    )
                })?;
                let stored_total = map.iter().try_fold(0u64, |sum, (_, l)| sum.checked_add(*l));
                // Segments in order and apart, each inside the file: what GNU tar
                // writes, and what reading the data in one pass needs.
                let in_order = map.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0);
                if stored_total != Some(stored)
                    || !in_order
                    || map
                        .iter()
                        .any(|(o, l)| o.checked_add(*l).is_none_or(|end| end > real))
                {
                    return Err(self.err(
                        at,
                        Some(&e.path),
                        "the sparse map does not match the data: the archive is corrupt",
                    ));
                }
                e.size = real;
                self.sparse = Some((map, real));
            }
            if matches!(
                e.kind,
                EntryKind::HardLink
                    | EntryKind::Symlink
                    | EntryKind::Dir
                    | EntryKind::Char
                    | EntryKind::Block
                    | EntryKind::Fifo
            ) {
                // These carry no data, whatever a size field says (hard links in pax may).
                e.size = 0;
            }
            self.left = stored;
            self.pad = stored.div_ceil(BLOCK as u64) * BLOCK as u64 - stored;
            return Ok(Some(e));
        }
    }

    /// The stream, where the archive ended.
    pub(crate) fn into_inner(self) -> R {
        self.r
    }

    /// A reader of the current entry's logical bytes.
    pub(crate) fn data(&mut self) -> EntryData<'_, R> {
        EntryData {
            t: self,
            logical: 0,
            seg: 0,
        }
    }
}

/// The bytes of one entry.
pub(crate) struct EntryData<'a, R> {
    t: &'a mut TarReader<R>,
    logical: u64,
    seg: usize,
}

impl<R: Read> EntryData<'_, R> {
    fn read_stored(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.t.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.t.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends inside this entry's data",
            ));
        }
        self.t.left -= n as u64;
        self.t.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> FileBytes for EntryData<'_, R> {
    fn next_data(&mut self, pos: u64) -> Option<u64> {
        let Some((map, _)) = &self.t.sparse else {
            return Some(pos);
        };
        // The first segment with data that ends after `pos` (the map is in order).
        let i = map.partition_point(|&(o, l)| o + l <= pos);
        map[i..]
            .iter()
            .find(|&&(_, l)| l > 0)
            .map(|&(o, _)| o.max(pos))
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        if self.t.sparse.is_none() {
            // Without a map every byte is stored (and `next_data` never says to skip).
            return crate::source::tar::skip_by_reading(self, n);
        }
        // Only holes are skipped (`next_data` said so): no stored byte is passed over.
        self.logical += n;
        Ok(())
    }
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((map, real)) = self.t.sparse.clone() else {
            let n = self.read_stored(buf)?;
            self.logical += n as u64;
            return Ok(n);
        };
        if self.logical >= real || buf.is_empty() {
            return Ok(0);
        }
        // Past finished segments; then either inside a segment (stored bytes) or in the
        // hole before the next one (zeros).
        while self.seg < map.len() && map[self.seg].0 + map[self.seg].1 <= self.logical {
            self.seg += 1;
        }
        let (next_off, next_len) = map.get(self.seg).copied().unwrap_or((real, 0));
        if self.logical < next_off {
            let n = ((next_off - self.logical).min(buf.len() as u64)) as usize;
            buf[..n].fill(0);
            self.logical += n as u64;
            return Ok(n);
        }
        let in_seg = (next_off + next_len - self.logical).min(buf.len() as u64) as usize;
        let n = self.read_stored(&mut buf[..in_seg])?;
        self.logical += n as u64;
        Ok(n)
    }
}

/// Applies one pax record to an entry; a record this reader uses must be well formed.
fn apply_pax(e: &mut TarEntry, stored: &mut u64, k: &[u8], v: &[u8]) -> Result<(), String> {
    let num = || {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                format!(
                    "the pax record {}={} is not a number that fits 64 bits: the archive is corrupt",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(&v[..v.len().min(40)])
                )
            })
    };
    // POSIX: an empty value for a standard keyword removes the record, and the header's
    // own field stands. (An attribute's empty value is a value.)
    let standard = matches!(
        k,
        b"path" | b"linkpath" | b"size" | b"uid" | b"gid" | b"mtime"
    );
    if standard && v.is_empty() {
        return Ok(());
    }
    match k {
        b"path" => e.path = v.to_vec(),
        b"linkpath" => e.link = v.to_vec(),
        b"size" => {
            let n = num()?;
            e.size = n;
            *stored = n;
        }
        b"uid" => e.uid = num()?,
        b"gid" => e.gid = num()?,
        b"mtime" => {
            e.mtime = parse_pax_time(v).ok_or_else(|| {
                format!(
                    "the pax record mtime={} is not a time: the archive is corrupt",
                    String::from_utf8_lossy(&v[..v.len().min(40)])
                )
            })?;
        }
        _ if k.starts_with(b"SCHILY.xattr.") => e.xattrs.push((k[13..].to_vec(), v.to_vec())),
        _ if k.starts_with(b"LIBARCHIVE.xattr.") => {
            // libarchive percent-encodes the name and base64-encodes the value.
            if let (Some(n), Some(val)) = (percent_decode(&k[17..]), base64_decode(v)) {
                e.xattrs.push((n, val));
            }
        }
        _ if k.starts_with(b"GNU.sparse.") => e.pax_sparse = true,
        _ => {}
    }
    Ok(())
}

/// One pax record: key and value, both bytes.
type PaxRecord = (Vec<u8>, Vec<u8>);

/// Pax records: `LEN KEY=VALUE\n`, where LEN counts the whole record, so values may
/// hold any byte, newlines included.
fn parse_pax(mut data: &[u8]) -> Result<Vec<PaxRecord>, String> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let bad = || "a pax record is malformed: the archive is corrupt".to_owned();
        let sp = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// A pax time, `SECONDS[.FRACTION]`, as (seconds, nanoseconds).
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    // A negative time with a fraction counts back from the whole second below.
    if secs < 0 && nsec > 0 {
        Some((secs - 1, 1_000_000_000 - nsec))
    } else {
        Some((secs, nsec))
    }
}

fn read_sparse(b: &[u8], map: &mut Vec<(u64, u64)>) {
    for e in b.chunks_exact(24) {
        let (Some(off), Some(len)) = (parse_num(&e[..12]), parse_num(&e[12..])) else {
            break;
        };
        if e[..12].iter().all(|&c| c == 0) {
            break;
        }
        map.push((off, len));
    }
}

/// The bytes of a NUL-terminated header field.
fn field_str(f: &[u8]) -> &[u8] {
    &f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())]
}

/// A numeric header field: octal digits (space or NUL padded), or GNU base-256 when the
/// first byte has its high bit set.
pub(crate) fn parse_num(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|&b| b & 0x80 != 0) {
        if f[0] == 0xff {
            return None; // negative
        }
        let mut v: u64 = u64::from(f[0] & 0x7f);
        for &b in &f[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let t: Vec<u8> = f
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if t.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for b in t {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// The header checksum: the sum of its bytes with the checksum field read as spaces,
/// unsigned (POSIX) or signed (some old writers).
fn check_checksum(h: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_num(&h[148..156])
        .ok_or("the header checksum field is not a number: the header is corrupt")?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(format!(
            "header checksum error (stored {stored}, computed {unsigned}): the archive is corrupt"
        ))
    }
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let s: Vec<u8> = s
        .iter()
        .copied()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_values_may_hold_newlines() {
        let rec = b"27 SCHILY.xattr.user.b=a\nb\n12 uid=1000\n";
        let v = parse_pax(rec).expect("parses");
        assert_eq!(v[0], (b"SCHILY.xattr.user.b".to_vec(), b"a\nb".to_vec()));
        assert_eq!(v[1], (b"uid".to_vec(), b"1000".to_vec()));
        assert!(parse_pax(b"99 path=x\n").is_err());
    }

    #[test]
    fn empty_pax_values_remove_a_keyword_but_are_an_attribute_value() {
        let mut e = TarEntry {
            offset: 0,
            path: b"from-header".to_vec(),
            link: Vec::new(),
            kind: EntryKind::Regular,
            mode: 0o644,
            uid: 7,
            gid: 7,
            mtime: (1, 0),
            size: 5,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            pax_sparse: false,
        };
        let mut stored = 5;
        for k in [&b"path"[..], b"size", b"uid", b"mtime"] {
            apply_pax(&mut e, &mut stored, k, b"").expect("an empty value is allowed");
        }
        assert_eq!(
            (e.path.as_slice(), e.size, stored, e.uid),
            (&b"from-header"[..], 5, 5, 7)
        );
        apply_pax(&mut e, &mut stored, b"SCHILY.xattr.user.empty", b"").expect("kept");
        assert_eq!(e.xattrs, [(b"user.empty".to_vec(), Vec::new())]);
        let err = apply_pax(&mut e, &mut stored, b"gid", b"-1").expect_err("not a number");
        assert!(err.contains("gid=-1"), "{err}");
    }

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(parse_num(b"0000644\0"), Some(0o644));
        assert_eq!(parse_num(b"   17 \0"), Some(0o17));
        assert_eq!(
            parse_num(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            Some(1 << 32)
        );
        assert_eq!(parse_num(b"12x4"), None);
    }

    #[test]
    fn pax_times_and_encodings() {
        assert_eq!(
            parse_pax_time(b"1600000000.123456789"),
            Some((1_600_000_000, 123_456_789))
        );
        assert_eq!(parse_pax_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(base64_decode(b"aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(percent_decode(b"user.a%3Db"), Some(b"user.a=b".to_vec()));
    }
}
