//! Slirp port redirections, as `colinux-slirp-net-daemon` reads its `-r` argument
//! (colinux-spec.md §4.3, §9.18; `slirp/co_main.c:150-196`).
//!
//! Syntax: `proto:hostport:guestport[:count]`, joined by `/`. The protocol (`tcp`/`udp`)
//! is case-insensitive; at the start of each segment the remaining text must be at least
//! 7 bytes; `count` must be above 0; reading stops silently at the first byte after a
//! number that is neither `:` nor `/`. colinux-daemon itself does not check any of this:
//! it passes the text on, and the slirp helper refuses it when the machine starts, so the
//! model keeps the text and this module says what the helper will make of it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cnum::strtol10;

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One redirection: host ports `host_port..host_port+count` to guest ports
/// `guest_port..guest_port+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirection {
    /// Protocol.
    pub protocol: Protocol,
    /// First host port (as the helper reads it; not range-checked by coLinux).
    pub host_port: i32,
    /// First guest port.
    pub guest_port: i32,
    /// Number of consecutive ports, at least 1.
    pub count: i32,
}

impl fmt::Display for Redirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.protocol.as_str(),
            self.host_port,
            self.guest_port
        )?;
        if self.count != 1 {
            write!(f, ":{}", self.count)?;
        }
        Ok(())
    }
}

/// Joins redirections the way the slirp helper reads them (`/`-separated).
pub fn join(redirections: &[Redirection]) -> String {
    redirections
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("/")
}

/// What the slirp helper refuses (`conet-slirp-daemon: Error in redirection '<s>'`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("conet-slirp-daemon: Error in redirection '{segment}' ({reason})")]
pub struct RedirectionError {
    /// Byte offset of the bad segment in the redirection text.
    pub offset: usize,
    /// The remaining text from that segment on.
    pub segment: String,
    /// Why.
    pub reason: &'static str,
}

/// What the helper makes of a redirection text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirections {
    /// The redirections it sets up.
    pub list: Vec<Redirection>,
    /// Offset of text it ignores silently (after a number, a byte that is not `:` or `/`).
    pub ignored_from: Option<usize>,
}

/// Reads a redirection text as the slirp helper does. An empty text means none.
pub fn parse_redirections(text: &str) -> Result<Redirections, RedirectionError> {
    let s = text.as_bytes();
    let mut list = Vec::new();
    let mut at = 0usize;
    if s.is_empty() {
        return Ok(Redirections {
            list,
            ignored_from: None,
        });
    }
    loop {
        let seg = &s[at..];
        let fail = |reason| RedirectionError {
            offset: at,
            segment: String::from_utf8_lossy(seg).into_owned(),
            reason,
        };
        if seg.len() < 7 {
            return Err(fail("fewer than 7 characters left, shorter than `tcp:1:2`"));
        }
        let protocol = match seg[..3].to_ascii_lowercase().as_slice() {
            b"tcp" => Protocol::Tcp,
            b"udp" => Protocol::Udp,
            _ => return Err(fail("the protocol must be tcp or udp")),
        };
        if seg[3] != b':' {
            return Err(fail("expected `:` after the protocol"));
        }
        let mut p = 4;
        let host = strtol0_dec(&seg[p..]);
        if host.1 == 0 {
            return Err(fail("the host port is not a number"));
        }
        p += host.1;
        if seg.get(p) != Some(&b':') {
            return Err(fail("expected `:` after the host port"));
        }
        p += 1;
        let guest = strtol0_dec(&seg[p..]);
        if guest.1 == 0 {
            return Err(fail("the guest port is not a number"));
        }
        p += guest.1;
        let mut count = 1;
        if seg.get(p) == Some(&b':') {
            p += 1;
            let c = strtol0_dec(&seg[p..]);
            if c.1 == 0 || c.0 <= 0 {
                return Err(fail("the count must be a number above 0"));
            }
            count = c.0;
            p += c.1;
        }
        list.push(Redirection {
            protocol,
            host_port: host.0,
            guest_port: guest.0,
            count,
        });
        match seg.get(p) {
            None => {
                return Ok(Redirections {
                    list,
                    ignored_from: None,
                });
            }
            Some(b'/') => at += p + 1,
            Some(_) => {
                return Ok(Redirections {
                    list,
                    ignored_from: Some(at + p),
                });
            }
        }
    }
}

/// The helper reads numbers with `strtol` base 10: (value, bytes used).
fn strtol0_dec(s: &[u8]) -> (i32, usize) {
    let n = strtol10(s);
    (n.value, n.used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seed_redirections() {
        let r = parse_redirections("tcp:333:22/tcp:1000:1000/udp:69:69").expect("valid");
        assert_eq!(r.list.len(), 3);
        assert_eq!(r.list[2].protocol, Protocol::Udp);
        assert_eq!(join(&r.list), "tcp:333:22/tcp:1000:1000/udp:69:69");
    }

    #[test]
    fn protocol_is_case_insensitive_and_count_is_optional() {
        let r = parse_redirections("TCP:2222:22:3").expect("valid");
        assert_eq!(r.list[0].count, 3);
        assert_eq!(r.list[0].protocol, Protocol::Tcp);
    }

    #[test]
    fn short_segment_and_zero_count_are_errors() {
        assert!(parse_redirections("tcp:1:2/udp:1").is_err());
        assert!(parse_redirections("tcp:1:2:0").is_err());
        assert!(parse_redirections("icmp:1:2").is_err());
    }

    #[test]
    fn trailing_junk_after_a_number_stops_reading_silently() {
        let r = parse_redirections("tcp:1:2x/udp:3:4").expect("valid");
        assert_eq!(r.list.len(), 1);
        assert_eq!(r.ignored_from, Some(7));
    }
}
