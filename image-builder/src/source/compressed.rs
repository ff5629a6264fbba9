//! Compressed tar streams, read member by member to the very end of the input, so that
//! every checksum the format carries is verified and nothing may follow the stream.
//!
//! A tar archive ends with two zero blocks, well before its compressed stream does: the
//! stream's own checks (gzip's CRC32 and ISIZE after each member, xz's check after each
//! block and the index after the stream, zstd's frame checksum, bzip2's block and
//! stream CRCs) come after the last byte the tar reader needs. [`Members`] decodes one
//! member (gzip member, xz stream, zstd frame, bzip2 stream) at a time with the
//! libraries' single-member decoders, which verify the member's checks when it ends;
//! between members it looks at what follows itself: the next member's magic, the end of
//! the input, or (xz only) stream padding, zero bytes in multiples of four, as the xz
//! format allows. Anything else is trailing data, refused with its offset. The tar
//! source reads it to its end ([`Members::finish`]) once the archive has ended.
//!
//! Errors are `io::Error`s whose text says what is wrong in the user's words, with the
//! library's own words in parentheses: they reach the user through the tar reader (in
//! the middle of an entry) or through `Error::CorruptStream` (at the end).

use std::io::{self, BufRead, Read};

/// The compressions a tar source may use, told apart by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC: &[u8] = b"BZh";

impl Format {
    /// The format whose magic `head` starts with.
    pub(crate) fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(GZIP_MAGIC) {
            Some(Format::Gzip)
        } else if head.starts_with(ZSTD_MAGIC) {
            Some(Format::Zstd)
        } else if head.starts_with(XZ_MAGIC) {
            Some(Format::Xz)
        } else if head.starts_with(BZIP2_MAGIC) {
            Some(Format::Bzip2)
        } else {
            None
        }
    }

    /// The name users know it by.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
            Format::Bzip2 => "bzip2",
        }
    }

    /// Whether `head` (at least 4 bytes, or the rest of the input) starts another member.
    fn starts_member(self, head: &[u8]) -> bool {
        match self {
            // zstd skippable frames (magic 0x184D2A50..5F) are frames too: the decoder
            // passes over them.
            Format::Zstd => {
                head.starts_with(ZSTD_MAGIC)
                    || (head.len() >= 4
                        && head[1..4] == [0x2a, 0x4d, 0x18]
                        && head[0] & 0xf0 == 0x50)
            }
            other => Format::sniff(head) == Some(other),
        }
    }
}

/// The raw input, buffered: it counts the bytes consumed (the offset, in the file, of
/// whatever comes next) and can show the next few bytes whole, even where a buffer
/// refill would cut a magic number in two.
pub(crate) struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    consumed: u64,
}

impl<R: Read> Input<R> {
    /// Buffers `inner` with `capacity` bytes.
    pub(crate) fn new(inner: R, capacity: usize) -> Input<R> {
        Input {
            inner,
            buf: vec![0; capacity.max(16)],
            pos: 0,
            end: 0,
            consumed: 0,
        }
    }

    /// The next `n` bytes (fewer only at the end of the input), not consumed.
    pub(crate) fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.pos < n {
            // Move what is left to the front, then read behind it.
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            while self.end < n.min(self.buf.len()) {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(0) => break,
                    Ok(k) => self.end += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.end.min(self.pos + n)])
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(out.len());
            out[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Input<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
                    Ok(k) => {
                        self.end = k;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.pos);
        self.pos += n;
        self.consumed += n as u64;
    }
}

/// One member being decoded.
enum Member<R: Read> {
    Gzip(flate2::bufread::GzDecoder<Input<R>>),
    Xz(liblzma::bufread::XzDecoder<Input<R>>),
    Zstd(zstd::stream::read::Decoder<'static, Input<R>>),
    Bzip2(bzip2::bufread::BzDecoder<Input<R>>),
}

impl<R: Read> Member<R> {
    fn start(format: Format, r: Input<R>) -> io::Result<Member<R>> {
        Ok(match format {
            Format::Gzip => Member::Gzip(flate2::bufread::GzDecoder::new(r)),
            Format::Xz => Member::Xz(liblzma::bufread::XzDecoder::new(r)),
            Format::Zstd => {
                Member::Zstd(zstd::stream::read::Decoder::with_buffer(r)?.single_frame())
            }
            Format::Bzip2 => Member::Bzip2(bzip2::bufread::BzDecoder::new(r)),
        })
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Member::Gzip(d) => d.read(buf),
            Member::Xz(d) => d.read(buf),
            Member::Zstd(d) => d.read(buf),
            Member::Bzip2(d) => d.read(buf),
        }
    }

    fn into_inner(self) -> Input<R> {
        match self {
            Member::Gzip(d) => d.into_inner(),
            Member::Xz(d) => d.into_inner(),
            Member::Zstd(d) => d.into_inner(),
            Member::Bzip2(d) => d.into_inner(),
        }
    }
}

enum State<R: Read> {
    /// Inside a member (boxed: a decoder's state is large, the others small).
    Member(Box<Member<R>>),
    /// Between members (or before the first).
    Between(Input<R>),
    /// The input has ended after a whole member.
    Done,
    /// An error was returned; reading on returns it again.
    Failed(io::ErrorKind, String),
}

/// The decompressed bytes of every member of a compressed stream, in order.
pub(crate) struct Members<R: Read> {
    format: Format,
    state: State<R>,
}

impl<R: Read> Members<R> {
    /// Decodes `input`, a stream in `format` (sniffed from its first bytes).
    pub(crate) fn new(format: Format, input: Input<R>) -> Members<R> {
        Members {
            format,
            state: State::Between(input),
        }
    }

    /// Reads what is left to the end of the input, so that the last members' checks
    /// are verified and trailing data is seen.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn fail(&mut self, kind: io::ErrorKind, msg: String) -> io::Error {
        self.state = State::Failed(kind, msg.clone());
        io::Error::new(kind, msg)
    }

    /// What a decoder's error means, said plainly.
    fn damaged(&mut self, e: &io::Error, at: u64) -> io::Error {
        let name = self.format.name();
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return self.fail(
                e.kind(),
                format!(
                    "the {name} data stops at byte {at} of the file, before its end ({e}): the \
                     file is cut short"
                ),
            );
        }
        // A checksum fails where the member it covers ends: the damage lies there or
        // anywhere before.
        self.fail(
            io::ErrorKind::InvalidData,
            format!("the {name} data is damaged at or before byte {at} of the file ({e})"),
        )
    }

    /// Between members: the next member, the end, or trailing data.
    fn next_member(&mut self, mut r: Input<R>) -> io::Result<()> {
        let name = self.format.name();
        // xz allows stream padding between and after streams: zero bytes, a multiple
        // of four of them.
        let mut padding = 0u64;
        loop {
            let at = r.consumed;
            let head = match r.peek(6) {
                Ok(h) => h.to_vec(),
                Err(e) => return Err(self.fail(e.kind(), format!("cannot read the stream: {e}"))),
            };
            if head.is_empty() {
                if !padding.is_multiple_of(4) {
                    return Err(self.fail(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{padding} zero bytes end the {name} stream; stream padding comes \
                             in multiples of four"
                        ),
                    ));
                }
                self.state = State::Done;
                return Ok(());
            }
            if self.format == Format::Xz && head[0] == 0 {
                let zeros = head.iter().take_while(|&&b| b == 0).count();
                padding += zeros as u64;
                r.consume(zeros);
                continue;
            }
            if !padding.is_multiple_of(4) || !self.format.starts_member(&head) {
                let what = if at == 0 {
                    format!("it does not start as {name} data does")
                } else {
                    format!(
                        "after the end of the {name} data, at byte {at} of the file, come bytes \
                         that are not {name}: trailing data is refused"
                    )
                };
                return Err(self.fail(io::ErrorKind::InvalidData, what));
            }
            return match Member::start(self.format, r) {
                Ok(m) => {
                    self.state = State::Member(Box::new(m));
                    Ok(())
                }
                Err(e) => Err(self.fail(e.kind(), format!("the {name} data is damaged ({e})"))),
            };
        }
    }
}

impl<R: Read> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Ok(0),
                State::Failed(kind, msg) => {
                    self.state = State::Failed(kind, msg.clone());
                    return Err(io::Error::new(kind, msg));
                }
                State::Between(r) => self.next_member(r)?,
                State::Member(mut m) => match m.read(buf) {
                    Ok(0) => self.state = State::Between(m.into_inner()),
                    Ok(n) => {
                        self.state = State::Member(m);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        self.state = State::Member(m);
                    }
                    Err(e) => {
                        let at = m.into_inner().consumed;
                        return Err(self.damaged(&e, at));
                    }
                },
            }
        }
    }
}

/// A tar source's bytes: plain, or decompressed member by member.
pub(crate) enum Stream<R: Read> {
    Plain(Input<R>),
    Compressed(Box<Members<R>>),
}

impl<R: Read> Stream<R> {
    /// Opens `raw`, decompressing it when its first bytes name a format.
    pub(crate) fn open(raw: R) -> io::Result<Stream<R>> {
        let mut input = Input::new(raw, 1 << 20);
        Ok(match Format::sniff(input.peek(6)?) {
            Some(f) => Stream::Compressed(Box::new(Members::new(f, input))),
            None => Stream::Plain(input),
        })
    }

    /// The compression, if any.
    pub(crate) fn format(&self) -> Option<Format> {
        match self {
            Stream::Plain(_) => None,
            Stream::Compressed(m) => Some(m.format),
        }
    }

    /// Reads a compressed stream to the end of its input (see [`Members::finish`]); a
    /// plain stream has no checks and is left where the archive ended.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Compressed(m) => m.finish(),
        }
    }
}

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(i) => i.read(buf),
            Stream::Compressed(m) => m.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("compresses");
        e.finish().expect("compresses")
    }

    fn read_all(format: Format, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Members::new(format, Input::new(input, 16)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_follow_each_other_and_nothing_else_may() {
        let mut two = gz(b"hello ");
        two.extend(gz(b"world"));
        assert_eq!(
            read_all(Format::Gzip, &two).expect("two members"),
            b"hello world"
        );
        let mut junk = two.clone();
        junk.extend_from_slice(b"\0\0\0\0");
        let err = read_all(Format::Gzip, &junk).expect_err("trailing zeros");
        assert!(
            err.to_string().contains(&format!("at byte {}", two.len())),
            "{err}"
        );
    }

    #[test]
    fn a_magic_cut_by_a_buffer_refill_is_seen_whole() {
        // A 16-byte buffer: the second member's magic straddles refills somewhere.
        let mut many = Vec::new();
        for i in 0..20u8 {
            many.extend(gz(&[i; 3]));
        }
        let want: Vec<u8> = (0..20u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(read_all(Format::Gzip, &many).expect("20 members"), want);
    }

    #[test]
    fn xz_stream_padding_is_zeros_in_fours() {
        let mut xz = Vec::new();
        let mut e = liblzma::write::XzEncoder::new(&mut xz, 6);
        e.write_all(b"padded").expect("compresses");
        e.finish().expect("compresses");
        let mut padded = xz.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(
            read_all(Format::Xz, &padded).expect("padding of 8"),
            b"padded"
        );
        let mut odd = xz.clone();
        odd.extend_from_slice(&[0; 3]);
        let err = read_all(Format::Xz, &odd).expect_err("padding of 3");
        assert!(err.to_string().contains("multiples of four"), "{err}");
    }

    #[test]
    fn an_error_is_returned_again() {
        let mut bad = gz(b"some data to damage");
        let n = bad.len();
        bad[n - 8] ^= 1; // the CRC
        let mut m = Members::new(Format::Gzip, Input::new(&bad[..], 4096));
        let mut out = Vec::new();
        let first = m.read_to_end(&mut out).expect_err("a bad CRC");
        let again = m.read(&mut [0u8; 4]).expect_err("still bad");
        assert_eq!(first.to_string(), again.to_string());
        assert!(first.to_string().contains("damaged"), "{first}");
    }
}
