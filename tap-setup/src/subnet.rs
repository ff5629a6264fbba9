//! The network a TAP adapter lives on: a private /24 chosen so that it overlaps no route
//! and no interface address of the host (../shared/research/anchors-installers.md §4.3).
//!
//! The host side takes `.1` and the guest `.2`. A candidate is refused when any busy
//! prefix of the host overlaps it in either direction (a /16 route covering it, or a /30
//! address inside it); the adapter's own address and connected route are not counted
//! against it, so that a re-run (or a boot) with the adapter in place agrees with the
//! install.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// An IPv4 prefix (network and length), e.g. a route's destination or an address with
/// its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefix {
    /// The address (for an interface address: the address itself, not the network).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Prefix {
    /// The mask of `len` leading ones.
    fn mask(len: u8) -> u32 {
        match len {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l.min(32))),
        }
    }

    /// Whether two prefixes share an address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        let m = Prefix::mask(self.len.min(other.len));
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A private class C network (`10.x.y.0/24`, `172.16-31.x.0/24`, `192.168.x.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet([u8; 3]);

impl Subnet {
    /// Parses `a.b.c.0/24` (the `/24` may be left out); only private networks are taken.
    pub fn parse(text: &str) -> Result<Subnet, Error> {
        let bad = |reason: &str| Error::BadSubnet {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let t = text.trim();
        let (addr, len) = t.split_once('/').unwrap_or((t, "24"));
        if len != "24" {
            return Err(bad("only /24 networks are used (a.b.c.0/24)"));
        }
        let ip: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("not an IPv4 network such as 10.12.12.0/24"))?;
        let [a, b, c, d] = ip.octets();
        if d != 0 {
            return Err(bad("the network address of a /24 ends in .0"));
        }
        if !(a == 10 || (a == 172 && (16..=31).contains(&b)) || (a == 192 && b == 168)) {
            return Err(bad("not a private network (10/8, 172.16/12, 192.168/16)"));
        }
        Ok(Subnet([a, b, c]))
    }

    /// The network as a prefix.
    pub fn prefix(&self) -> Prefix {
        Prefix {
            addr: self.host_addr(0),
            len: 24,
        }
    }

    fn host_addr(&self, d: u8) -> Ipv4Addr {
        let [a, b, c] = self.0;
        Ipv4Addr::new(a, b, c, d)
    }

    /// The host side's address (`.1`).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_addr(1)
    }

    /// The guest's address (`.2`).
    pub fn guest_ip(&self) -> Ipv4Addr {
        self.host_addr(2)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/24", self.host_addr(0))
    }
}

/// As its text (`10.12.12.0/24`), the form answers and install-state.json hold.
impl Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// From its text, checked as [`Subnet::parse`] checks an answer.
impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Subnet::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Subnet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Subnet::parse(s)
    }
}

/// The candidates when a profile names none: class C networks in each private range,
/// away from the ranges other software takes by default (home routers' 192.168.0/1,
/// VirtualBox's 192.168.56/21, slirp's 10.0.2, Docker's 172.17/16, corporate VPNs'
/// low 10.x networks).
pub fn default_candidates() -> Vec<Subnet> {
    [
        [10, 213, 77],
        [10, 213, 78],
        [172, 29, 77],
        [172, 29, 78],
        [192, 168, 213],
        [192, 168, 214],
        [10, 242, 13],
        [172, 30, 213],
    ]
    .into_iter()
    .map(Subnet)
    .collect()
}

/// What a host network is used by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UseKind {
    /// A route's destination.
    Route,
    /// An address on an interface.
    Address,
}

/// A prefix the host uses: a route or an interface address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Busy {
    /// The prefix.
    pub prefix: Prefix,
    /// Route or address.
    pub kind: UseKind,
    /// The interface, when known.
    pub dev: Option<String>,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            UseKind::Route => "the route",
            UseKind::Address => "the address",
        };
        write!(f, "{what} {}", self.prefix)?;
        if let Some(d) = &self.dev {
            write!(f, " on {d}")?;
        }
        Ok(())
    }
}

/// Why `subnet` cannot be used, or `None` when it is free. Uses on the interface
/// `own` (the adapter itself) do not count.
pub fn conflict(subnet: Subnet, busy: &[Busy], own: Option<&str>) -> Option<String> {
    let p = subnet.prefix();
    let hits: Vec<String> = busy
        .iter()
        .filter(|b| own.is_none() || b.dev.as_deref() != own)
        // A default route (length 0) covers everything and says nothing about local use.
        .filter(|b| b.prefix.len > 0 && b.prefix.overlaps(&p))
        .map(|b| format!("overlaps {b}"))
        .collect();
    (!hits.is_empty()).then(|| hits.join(", "))
}

/// One candidate and why it was or was not taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The network.
    pub subnet: String,
    /// Why it is busy; `None` when free.
    pub reason: Option<String>,
}

/// The chosen network and every candidate examined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// The network.
    #[serde(serialize_with = "display")]
    pub subnet: Subnet,
    /// Every candidate in order, with the reason each busy one is not used.
    pub candidates: Vec<Candidate>,
}

fn display<S: serde::Serializer>(v: &Subnet, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Chooses the network: `pinned` when given (an error naming what it collides with when
/// it is busy), else the first free candidate (an error listing each reason when none
/// is). An empty candidate list means [`default_candidates`].
pub fn choose(
    candidates: &[Subnet],
    pinned: Option<Subnet>,
    busy: &[Busy],
    own: Option<&str>,
) -> Result<Choice, Error> {
    if let Some(s) = pinned {
        return match conflict(s, busy, own) {
            Some(with) => Err(Error::SubnetBusy {
                subnet: s.to_string(),
                with,
            }),
            None => Ok(Choice {
                subnet: s,
                candidates: vec![Candidate {
                    subnet: s.to_string(),
                    reason: None,
                }],
            }),
        };
    }
    let defaults;
    let list = if candidates.is_empty() {
        defaults = default_candidates();
        &defaults
    } else {
        candidates
    };
    // Every candidate is judged, so that a plan shows why each was or was not taken.
    let seen: Vec<Candidate> = list
        .iter()
        .map(|&s| Candidate {
            subnet: s.to_string(),
            reason: conflict(s, busy, own),
        })
        .collect();
    if let Some(i) = seen.iter().position(|c| c.reason.is_none()) {
        return Ok(Choice {
            subnet: list[i],
            candidates: seen,
        });
    }
    Err(Error::NoFreeSubnet {
        tried: seen
            .iter()
            .map(|c| format!("{}: {}", c.subnet, c.reason.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(s: &str, dev: &str) -> Busy {
        let (a, l) = s.split_once('/').expect("prefix");
        Busy {
            prefix: Prefix {
                addr: a.parse().expect("addr"),
                len: l.parse().expect("len"),
            },
            kind: UseKind::Route,
            dev: Some(dev.to_owned()),
        }
    }

    #[test]
    fn parse_refuses_what_is_not_a_private_24() {
        assert_eq!(
            Subnet::parse("10.1.2.0/24").expect("ok").to_string(),
            "10.1.2.0/24"
        );
        assert_eq!(
            Subnet::parse("192.168.7.0").expect("ok").host_ip(),
            Ipv4Addr::new(192, 168, 7, 1)
        );
        for bad in [
            "8.8.8.0/24",
            "10.1.1.0/16",
            "10.1.1.5/24",
            "172.32.0.0/24",
            "x",
            "",
        ] {
            assert!(
                matches!(Subnet::parse(bad), Err(Error::BadSubnet { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn overlaps_in_both_directions_and_ignores_default_and_own() {
        let busy = vec![
            route("0.0.0.0/0", "eth0"),
            route("10.213.0.0/16", "vpn0"),
            route("172.29.77.8/30", "wg0"),
            route("192.168.213.0/24", "tap-colinux"),
        ];
        let c = choose(&[], None, &busy, Some("tap-colinux")).expect("a free one");
        assert_eq!(c.subnet.to_string(), "172.29.78.0/24");
        assert!(
            c.candidates[0]
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("10.213.0.0/16 on vpn0")
        );
        assert!(
            c.candidates[2]
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("172.29.77.8/30")
        );
        // The adapter's own route does not make its network busy.
        let own = choose(
            &[Subnet::parse("192.168.213.0/24").expect("ok")],
            None,
            &busy,
            Some("tap-colinux"),
        )
        .expect("own network");
        assert_eq!(own.subnet.to_string(), "192.168.213.0/24");
        let pinned = choose(&[], Subnet::parse("10.213.5.0/24").ok(), &busy, None);
        match pinned {
            Err(Error::SubnetBusy { with, .. }) => assert!(with.contains("vpn0"), "{with}"),
            other => panic!("{other:?}"),
        }
        let all = [Subnet::parse("10.213.1.0/24").expect("ok")];
        assert!(matches!(
            choose(&all, None, &busy, None),
            Err(Error::NoFreeSubnet { .. })
        ));
    }
}
