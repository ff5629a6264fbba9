//! The Linux host: persistent TAP devices through `/dev/net/tun` ioctls, addresses,
//! links and routes over rtnetlink (blocking socket, one request at a time).
//!
//! The ioctls are those of the kernel's `include/uapi/linux/if_tun.h`: `TUNSETIFF` with
//! `IFF_TAP | IFF_NO_PI` creates (or attaches to) the device, `TUNSETOWNER` lets one
//! user attach a monitor to it without root, `TUNSETPERSIST` keeps it after the file
//! is closed. Everything else is rtnetlink (`RTM_GETLINK`/`GETADDR`/`GETROUTE` dumps,
//! `RTM_NEWADDR`, `RTM_DELADDR`, `RTM_SETLINK`, `RTM_DELLINK`), so the same code works
//! in any network namespace without reading sysfs. The TAP's owner, type and
//! persistence come from the link's `IFLA_LINKINFO` (`IFLA_TUN_*`, Linux 4.15+).
//!
//! Creating, configuring and deleting need `CAP_NET_ADMIN` in the network namespace
//! (and read-write access to `/dev/net/tun`); without them the error names the right.
//!
//! ## Limitations
//!
//! The ioctl numbers are those of the generic encoding (x86, x86-64, ARM, AArch64,
//! RISC-V, s390); MIPS, PowerPC and SPARC encode them differently and are not handled.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, Nla,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoTun, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::Error;
use crate::host::{Adapter, Spec, TapHost};
use crate::subnet::{Busy, Prefix, UseKind};

const TUN_PATH: &str = "/dev/net/tun";
// _IOW('T', 202..204, int) in if_tun.h.
const TUNSETIFF: u32 = 0x4004_54ca;
const TUNSETPERSIST: u32 = 0x4004_54cb;
const TUNSETOWNER: u32 = 0x4004_54cc;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
// IFLA_TUN_* (if_link.h).
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_PERSIST: u16 = 6;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags at the start of the
/// 24-byte union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

/// The running Linux host (its current network namespace).
#[derive(Debug, Default)]
pub struct LinuxHost;

impl LinuxHost {
    /// The host.
    pub fn new() -> LinuxHost {
        LinuxHost
    }
}

fn os(op: impl Into<String>, source: io::Error) -> Error {
    Error::Os {
        op: op.into(),
        source,
    }
}

/// Maps EPERM/EACCES to the missing right.
fn rights(action: String, e: io::Error, right: &str) -> Error {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Error::NoRight {
            right: right.to_owned(),
            action,
            detail: e.to_string(),
        },
        _ => os(action, e),
    }
}

/// Opens /dev/net/tun and attaches to (or creates) the TAP device `name`; the returned
/// file keeps it attached until dropped.
fn attach(name: &str) -> Result<std::fs::File, Error> {
    let action = format!("creating the TAP adapter {name}");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_PATH)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NoTapSupport {
                what: format!(
                    "{action}: {TUN_PATH} is absent: this host (or container) has no TUN/TAP device; load the `tun` module (modprobe tun) or give the container /dev/net/tun"
                ),
            },
            _ => rights(
                action.clone(),
                e,
                &format!("to open {TUN_PATH} read-write (root, or CAP_NET_ADMIN with access to the device)"),
            ),
        })?;
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    crate::host::linux_name_rule(name)?;
    let bytes = name.as_bytes();
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: `file` is an open /dev/net/tun descriptor and `req` is a live, properly
    // sized `struct ifreq` that TUNSETIFF reads and writes for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EBUSY) => os(
                format!("{action}: it is in use by a running monitor; stop the machine first"),
                e,
            ),
            _ => rights(action, e, "CAP_NET_ADMIN"),
        });
    }
    Ok(file)
}

fn tun_ioctl(
    file: &std::fs::File,
    request: u32,
    arg: libc::c_ulong,
    what: String,
) -> Result<(), Error> {
    // SAFETY: `file` is an attached /dev/net/tun descriptor; TUNSETPERSIST and
    // TUNSETOWNER take their argument by value and touch no memory of ours.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg) };
    if rc < 0 {
        return Err(rights(what, io::Error::last_os_error(), "CAP_NET_ADMIN"));
    }
    Ok(())
}

/// One rtnetlink request; returns every message of the answer (a dump's parts, or
/// nothing for an acknowledged change).
fn request(
    msg: RouteNetlinkMessage,
    flags: u16,
    what: &str,
) -> Result<Vec<RouteNetlinkMessage>, Error> {
    let mut socket = Socket::new(NETLINK_ROUTE)
        .map_err(|e| os(format!("{what}: opening a netlink socket"), e))?;
    socket
        .bind_auto()
        .map_err(|e| os(format!("{what}: binding a netlink socket"), e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| os(format!("{what}: connecting a netlink socket"), e))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket
        .send(&buf, 0)
        .map_err(|e| os(format!("{what}: sending to netlink"), e))?;
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let mut out = Vec::new();
    loop {
        let (data, _) = socket
            .recv_from_full()
            .map_err(|e| os(format!("{what}: reading from netlink"), e))?;
        if data.is_empty() {
            return Err(Error::Protocol {
                op: what.to_owned(),
                detail: "empty netlink answer".into(),
            });
        }
        let mut offset = 0;
        while offset < data.len() {
            let part = &data[offset..];
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(part).map_err(|e| {
                Error::Protocol {
                    op: what.to_owned(),
                    detail: e.to_string(),
                }
            })?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => match e.code {
                    None => return Ok(out),
                    Some(_) => {
                        let io = e.to_io();
                        return Err(rights(what.to_owned(), io, "CAP_NET_ADMIN"));
                    }
                },
                NetlinkPayload::InnerMessage(inner) => {
                    out.push(inner);
                    if !dump {
                        return Ok(out);
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

fn links() -> Result<Vec<LinkMessage>, Error> {
    let msgs = request(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        NLM_F_DUMP,
        "listing the network interfaces",
    )?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .collect())
}

fn link_name(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// IPv4 addresses: (interface index, address, prefix length).
fn addresses() -> Result<Vec<(u32, Ipv4Addr, u8)>, Error> {
    let mut q = AddressMessage::default();
    q.header.family = AddressFamily::Inet;
    let msgs = request(
        RouteNetlinkMessage::GetAddress(q),
        NLM_F_DUMP,
        "listing the host's addresses",
    )?;
    let mut out = Vec::new();
    for m in msgs {
        let RouteNetlinkMessage::NewAddress(a) = m else {
            continue;
        };
        if a.header.family != AddressFamily::Inet {
            continue;
        }
        let find = |local: bool| {
            a.attributes.iter().find_map(|at| match (at, local) {
                (AddressAttribute::Local(IpAddr::V4(ip)), true)
                | (AddressAttribute::Address(IpAddr::V4(ip)), false) => Some(*ip),
                _ => None,
            })
        };
        if let Some(ip) = find(true).or_else(|| find(false)) {
            out.push((a.header.index, ip, a.header.prefix_len));
        }
    }
    Ok(out)
}

fn names() -> Result<BTreeMap<u32, String>, Error> {
    Ok(links()?
        .iter()
        .filter_map(|l| link_name(l).map(|n| (l.header.index, n.to_owned())))
        .collect())
}

/// The TAP facts of a link's IFLA_LINKINFO: (is a tun device, is TAP, owner, persistent).
fn tun_info(l: &LinkMessage) -> (bool, bool, Option<u32>, bool) {
    let mut tun = false;
    let (mut tap, mut owner, mut persist) = (false, None, false);
    for a in &l.attributes {
        let LinkAttribute::LinkInfo(infos) = a else {
            continue;
        };
        for i in infos {
            match i {
                LinkInfo::Kind(InfoKind::Tun) => tun = true,
                LinkInfo::Data(InfoData::Tun(nlas)) => {
                    for n in nlas {
                        let InfoTun::Other(n) = n else {
                            continue;
                        };
                        let v = nla_value(n);
                        match n.kind() {
                            IFLA_TUN_OWNER if v.len() == 4 => {
                                owner = Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]));
                            }
                            IFLA_TUN_TYPE => tap = v.first() == Some(&(IFF_TAP as u8)),
                            IFLA_TUN_PERSIST => persist = v.first() == Some(&1),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    (tun, tap, owner, persist)
}

fn nla_value(n: &DefaultNla) -> Vec<u8> {
    let mut v = vec![0; n.value_len()];
    n.emit_value(&mut v);
    v
}

fn find_link(name: &str) -> Result<Option<LinkMessage>, Error> {
    Ok(links()?.into_iter().find(|l| link_name(l) == Some(name)))
}

impl TapHost for LinuxHost {
    fn busy(&mut self) -> Result<Vec<Busy>, Error> {
        let names = names()?;
        let mut out = Vec::new();
        for (index, addr, len) in addresses()? {
            out.push(Busy {
                prefix: Prefix { addr, len },
                kind: UseKind::Address,
                dev: names.get(&index).cloned(),
            });
        }
        let mut q = RouteMessage::default();
        q.header.address_family = AddressFamily::Inet;
        let routes = request(
            RouteNetlinkMessage::GetRoute(q),
            NLM_F_DUMP,
            "listing the host's routes",
        )?;
        for m in routes {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.address_family != AddressFamily::Inet
                || r.header.destination_prefix_length == 0
            {
                continue;
            }
            let mut dest = None;
            let mut dev = None;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dest = Some(*ip),
                    RouteAttribute::Oif(i) => dev = names.get(i).cloned(),
                    _ => {}
                }
            }
            if let Some(addr) = dest {
                out.push(Busy {
                    prefix: Prefix {
                        addr,
                        len: r.header.destination_prefix_length,
                    },
                    kind: UseKind::Route,
                    dev,
                });
            }
        }
        Ok(out)
    }

    fn find(&mut self, name: &str) -> Result<Option<Adapter>, Error> {
        let Some(l) = find_link(name)? else {
            return Ok(None);
        };
        let (tun, tap, owner, persistent) = tun_info(&l);
        let mac = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(b) if b.len() == 6 => Some(
                b.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
            _ => None,
        });
        let addresses = addresses()?
            .into_iter()
            .filter(|(i, _, _)| *i == l.header.index)
            .map(|(_, addr, len)| Prefix { addr, len })
            .collect();
        Ok(Some(Adapter {
            name: name.to_owned(),
            mac,
            addresses,
            up: l.header.flags.contains(LinkFlags::Up),
            owner,
            is_tap: tun && tap,
            persistent,
        }))
    }

    fn create(&mut self, spec: &Spec) -> Result<bool, Error> {
        let file = attach(&spec.name)?;
        let result = (|| {
            if let Some(uid) = spec.owner {
                tun_ioctl(
                    &file,
                    TUNSETOWNER,
                    libc::c_ulong::from(uid),
                    format!("giving the TAP adapter {} to uid {uid}", spec.name),
                )?;
            }
            tun_ioctl(
                &file,
                TUNSETPERSIST,
                1,
                format!("making the TAP adapter {} persistent", spec.name),
            )
        })();
        // Without persistence the device goes when `file` closes: nothing is left.
        result.map(|()| false)
    }

    fn set_owner(&mut self, name: &str, owner: Option<u32>) -> Result<(), Error> {
        // The kernel has no "no owner" value to set back; only a new owner is applied.
        let Some(uid) = owner else {
            return Ok(());
        };
        let file = attach(name)?;
        tun_ioctl(
            &file,
            TUNSETOWNER,
            libc::c_ulong::from(uid),
            format!("giving the TAP adapter {name} to uid {uid}"),
        )
    }

    fn configure(&mut self, spec: &Spec) -> Result<(), Error> {
        let l = find_link(&spec.name)?.ok_or_else(|| Error::Protocol {
            op: format!("configuring {}", spec.name),
            detail: "the adapter is not there".into(),
        })?;
        let index = l.header.index;
        let ours = spec.subnet.host_ip();
        for (i, addr, len) in addresses()? {
            if i == index && !(addr == ours && len == 24) {
                let mut m = AddressMessage::default();
                m.header.family = AddressFamily::Inet;
                m.header.index = index;
                m.header.prefix_len = len;
                m.attributes.push(AddressAttribute::Local(IpAddr::V4(addr)));
                request(
                    RouteNetlinkMessage::DelAddress(m),
                    NLM_F_ACK,
                    &format!("removing the old address {addr}/{len} from {}", spec.name),
                )?;
            }
        }
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.index = index;
        m.header.prefix_len = 24;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(ours)));
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(ours)));
        let [a, b, c, _] = ours.octets();
        m.attributes
            .push(AddressAttribute::Broadcast(Ipv4Addr::new(a, b, c, 255)));
        request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            &format!("setting the address {ours}/24 on {}", spec.name),
        )?;
        let mut up = LinkMessage::default();
        up.header.index = index;
        up.header.flags = LinkFlags::Up;
        up.header.change_mask = LinkFlags::Up;
        request(
            RouteNetlinkMessage::SetLink(up),
            NLM_F_ACK,
            &format!("bringing {} up", spec.name),
        )?;
        Ok(())
    }

    fn delete(&mut self, name: &str) -> Result<(), Error> {
        let Some(l) = find_link(name)? else {
            return Ok(());
        };
        let mut m = LinkMessage::default();
        m.header.index = l.header.index;
        request(
            RouteNetlinkMessage::DelLink(m),
            NLM_F_ACK,
            &format!("deleting the TAP adapter {name}"),
        )?;
        Ok(())
    }
}
