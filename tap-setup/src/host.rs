//! The one seam between the TAP logic and a host: [`TapHost`], implemented by the Linux
//! and Windows hosts and by [`RecordingHost`] (for `--dry-run` and tests), and the
//! operations built on it: [`install`] (create or reuse, address, up; a created adapter
//! is removed again when a later part fails), [`remove`] and [`choose_subnet`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::Error;
use crate::subnet::{self, Busy, Choice, Prefix, Subnet};

/// An adapter as the host reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Adapter {
    /// Interface (Linux) or connection (Windows) name.
    pub name: String,
    /// MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// IPv4 addresses with their prefix lengths.
    #[serde(serialize_with = "display_all")]
    pub addresses: Vec<Prefix>,
    /// Administratively up.
    pub up: bool,
    /// The user allowed to attach to it (Linux uid), when it has one.
    pub owner: Option<u32>,
    /// Whether it is a TAP adapter (Linux: a tun device in TAP mode; Windows: the kit's
    /// hardware id); anything else of that name is never touched.
    pub is_tap: bool,
    /// Whether it outlives the process that made it (Linux TUNSETPERSIST).
    pub persistent: bool,
}

fn display_all<S: serde::Serializer>(v: &[Prefix], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

/// What an adapter should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Its name (Linux: at most 15 bytes, the kernel's IFNAMSIZ less the NUL).
    pub name: String,
    /// Its network; the host takes `.1`.
    pub subnet: Subnet,
    /// The user who will attach the monitor to it (Linux uid; `None`: root only).
    pub owner: Option<u32>,
}

/// The host operations a TAP setup needs. Each is one small step so that [`install`]
/// can undo what it did.
pub trait TapHost {
    /// Every route destination and interface address of the host.
    fn busy(&mut self) -> Result<Vec<Busy>, Error>;
    /// The adapter of that name (any kind), if there is one.
    fn find(&mut self, name: &str) -> Result<Option<Adapter>, Error>;
    /// Creates a persistent TAP adapter named `spec.name`, owned by `spec.owner`.
    /// Returns `true` when the host asks for a reboot before it can be used.
    fn create(&mut self, spec: &Spec) -> Result<bool, Error>;
    /// Gives an existing TAP adapter its owner (when it differs).
    fn set_owner(&mut self, name: &str, owner: Option<u32>) -> Result<(), Error>;
    /// Sets `spec.subnet`'s `.1/24` on the adapter (other IPv4 addresses removed) and
    /// brings it up.
    fn configure(&mut self, spec: &Spec) -> Result<(), Error>;
    /// Deletes the adapter.
    fn delete(&mut self, name: &str) -> Result<(), Error>;
}

/// What [`install`] did.
#[derive(Clone, Debug, Serialize)]
pub struct Installed {
    /// The adapter afterwards.
    pub adapter: Adapter,
    /// `true` when this call created it; `false` when it existed and was reused.
    pub created: bool,
    /// The host asks for a reboot (Windows; exit 3010).
    pub reboot_required: bool,
}

/// Checks a name before any host call: 1..63 characters without `# , "` (config.txt
/// cannot carry them), `/` or control characters. The Linux host also refuses names
/// over 15 bytes (the kernel's IFNAMSIZ) when it creates one.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bad = |reason: &str| {
        Err(Error::BadName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() || name.len() > 63 {
        return bad("it must be 1..63 characters");
    }
    if name.contains(['#', ',', '"', '/']) || name.contains(char::is_control) {
        return bad("it cannot hold # , \" / or control characters");
    }
    if name == "." || name == ".." {
        return bad("it cannot be . or ..");
    }
    Ok(())
}

/// [`check_name`] and the rules of this host's own adapters, for a plan to refuse a name
/// before any change: on Linux at most 15 bytes (the kernel's IFNAMSIZ less the NUL),
/// without `:` or blanks. Elsewhere the same as [`check_name`].
pub fn check_name_here(name: &str) -> Result<(), Error> {
    check_name(name)?;
    if cfg!(target_os = "linux") {
        linux_name_rule(name)?;
    }
    Ok(())
}

/// The Linux kernel's rule for an interface name.
pub(crate) fn linux_name_rule(name: &str) -> Result<(), Error> {
    if name.len() > 15 || name.contains(':') || name.contains(char::is_whitespace) {
        return Err(Error::BadName {
            name: name.to_owned(),
            reason: "Linux interface names are at most 15 bytes, without ':' or blanks".into(),
        });
    }
    Ok(())
}

/// Creates the adapter (or reuses one of the same name), sets its address and brings it
/// up. The network must be free on the host, apart from the adapter's own use of it. An
/// adapter created here is deleted again if a later part fails.
pub fn install(host: &mut dyn TapHost, spec: &Spec) -> Result<Installed, Error> {
    check_name(&spec.name)?;
    let busy = host.busy()?;
    if let Some(with) = subnet::conflict(spec.subnet, &busy, Some(&spec.name)) {
        return Err(Error::SubnetBusy {
            subnet: spec.subnet.to_string(),
            with,
        });
    }
    let (created, reboot_required) = match host.find(&spec.name)? {
        Some(a) if !a.is_tap => {
            return Err(Error::NotTap {
                name: spec.name.clone(),
                kind: "another kind of interface".into(),
            });
        }
        Some(a) => {
            if a.owner != spec.owner {
                host.set_owner(&spec.name, spec.owner)?;
            }
            (false, false)
        }
        None => (true, host.create(spec)?),
    };
    let done = host.configure(spec).and_then(|()| {
        host.find(&spec.name)?.ok_or_else(|| Error::Protocol {
            op: format!("reading back {}", spec.name),
            detail: "the adapter vanished".into(),
        })
    });
    match done {
        Ok(adapter) => Ok(Installed {
            adapter,
            created,
            reboot_required,
        }),
        Err(e) => {
            if created {
                let _ = host.delete(&spec.name);
            }
            Err(e)
        }
    }
}

/// Deletes the TAP adapter `name`; `Ok(false)` when there is none. An interface of that
/// name that is not a TAP adapter is refused.
pub fn remove(host: &mut dyn TapHost, name: &str) -> Result<bool, Error> {
    check_name(name)?;
    match host.find(name)? {
        None => Ok(false),
        Some(a) if !a.is_tap => Err(Error::NotTap {
            name: name.to_owned(),
            kind: "another kind of interface".into(),
        }),
        Some(_) => host.delete(name).map(|()| true),
    }
}

/// Chooses the adapter's network on this host (see [`subnet::choose`]); the adapter
/// `name`'s own routes and addresses do not count.
pub fn choose_subnet(
    host: &mut dyn TapHost,
    candidates: &[Subnet],
    pinned: Option<Subnet>,
    name: &str,
) -> Result<Choice, Error> {
    let busy = host.busy()?;
    subnet::choose(candidates, pinned, &busy, Some(name))
}

/// A host in memory: what it would do is recorded in [`RecordingHost::log`]. Used for
/// `--dry-run` (seeded from the real host by [`RecordingHost::snapshot`]) and tests.
#[derive(Clone, Debug, Default)]
pub struct RecordingHost {
    /// Routes and addresses other than the adapters'.
    pub busy: Vec<Busy>,
    /// Adapters by name.
    pub adapters: BTreeMap<String, Adapter>,
    /// What was done, one line per step.
    pub log: Vec<String>,
    /// Makes `create` fail with a missing right (tests).
    pub deny_create: Option<String>,
}

impl RecordingHost {
    /// A copy of what `real` reports: its busy prefixes and the adapter `name`.
    pub fn snapshot(real: &mut dyn TapHost, name: &str) -> Result<RecordingHost, Error> {
        let mut h = RecordingHost {
            busy: real.busy()?,
            ..RecordingHost::default()
        };
        if let Some(a) = real.find(name)? {
            h.adapters.insert(name.to_owned(), a);
        }
        Ok(h)
    }
}

impl TapHost for RecordingHost {
    fn busy(&mut self) -> Result<Vec<Busy>, Error> {
        let mut all = self.busy.clone();
        for a in self.adapters.values() {
            for p in &a.addresses {
                all.push(Busy {
                    prefix: *p,
                    kind: subnet::UseKind::Address,
                    dev: Some(a.name.clone()),
                });
            }
        }
        Ok(all)
    }

    fn find(&mut self, name: &str) -> Result<Option<Adapter>, Error> {
        Ok(self.adapters.get(name).cloned())
    }

    fn create(&mut self, spec: &Spec) -> Result<bool, Error> {
        if let Some(right) = &self.deny_create {
            return Err(Error::NoRight {
                right: right.clone(),
                action: format!("creating the TAP adapter {}", spec.name),
                detail: "denied by the recording host".into(),
            });
        }
        self.log.push(format!(
            "create TAP {} owned by {}",
            spec.name,
            spec.owner.map_or("root".to_owned(), |u| format!("uid {u}"))
        ));
        self.adapters.insert(
            spec.name.clone(),
            Adapter {
                name: spec.name.clone(),
                mac: None,
                addresses: Vec::new(),
                up: false,
                owner: spec.owner,
                is_tap: true,
                persistent: true,
            },
        );
        Ok(false)
    }

    fn set_owner(&mut self, name: &str, owner: Option<u32>) -> Result<(), Error> {
        self.log.push(format!("set owner of {name}"));
        if let Some(a) = self.adapters.get_mut(name) {
            a.owner = owner;
        }
        Ok(())
    }

    fn configure(&mut self, spec: &Spec) -> Result<(), Error> {
        let addr: Ipv4Addr = spec.subnet.host_ip();
        self.log
            .push(format!("address {addr}/24 on {}, link up", spec.name));
        if let Some(a) = self.adapters.get_mut(&spec.name) {
            a.addresses = vec![Prefix { addr, len: 24 }];
            a.up = true;
        }
        Ok(())
    }

    fn delete(&mut self, name: &str) -> Result<(), Error> {
        self.log.push(format!("delete {name}"));
        self.adapters.remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnet::UseKind;

    fn spec(s: &str) -> Spec {
        Spec {
            name: "tap-colinux".into(),
            subnet: Subnet::parse(s).expect("subnet"),
            owner: Some(1000),
        }
    }

    #[test]
    fn a_name_is_checked_with_this_hosts_rules() {
        let long = "abcdefghijklmnop"; // 16 bytes
        assert!(
            check_name(long).is_ok(),
            "the portable rule allows 63 characters"
        );
        assert!(check_name_here(&long[..15]).is_ok());
        assert_eq!(check_name_here(long).is_err(), cfg!(target_os = "linux"));
        assert_eq!(check_name_here("tap:0").is_err(), cfg!(target_os = "linux"));
        let e = linux_name_rule(long).expect_err("16 bytes").to_string();
        assert!(e.contains("at most 15 bytes"), "{e}");
        assert!(
            check_name_here("a,b").is_err(),
            "config.txt cannot carry a comma"
        );
    }

    #[test]
    fn create_then_reuse_then_remove() {
        let mut h = RecordingHost::default();
        let first = install(&mut h, &spec("10.9.8.0/24")).expect("create");
        assert!(first.created);
        assert_eq!(first.adapter.addresses[0].to_string(), "10.9.8.1/24");
        // Its own address does not make its network busy on the second run.
        let again = install(&mut h, &spec("10.9.8.0/24")).expect("reuse");
        assert!(!again.created);
        assert_eq!(h.log.iter().filter(|l| l.starts_with("create")).count(), 1);
        assert!(remove(&mut h, "tap-colinux").expect("remove"));
        assert!(!remove(&mut h, "tap-colinux").expect("absent"));
    }

    #[test]
    fn busy_network_and_denied_create_leave_nothing() {
        let mut h = RecordingHost {
            busy: vec![Busy {
                prefix: Prefix {
                    addr: Ipv4Addr::new(10, 9, 0, 0),
                    len: 16,
                },
                kind: UseKind::Route,
                dev: Some("eth0".into()),
            }],
            ..RecordingHost::default()
        };
        match install(&mut h, &spec("10.9.8.0/24")) {
            Err(Error::SubnetBusy { with, .. }) => assert!(with.contains("10.9.0.0/16 on eth0")),
            other => panic!("{other:?}"),
        }
        h.deny_create = Some("CAP_NET_ADMIN".into());
        let e = install(&mut h, &spec("10.7.8.0/24")).expect_err("denied");
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        assert!(h.adapters.is_empty());
    }

    #[test]
    fn bad_names_are_refused_before_any_host_call() {
        let mut h = RecordingHost::default();
        for name in ["", "a/b"] {
            let mut s = spec("10.9.8.0/24");
            s.name = name.into();
            assert!(
                matches!(install(&mut h, &s), Err(Error::BadName { .. })),
                "{name}"
            );
        }
        assert!(h.log.is_empty());
    }
}
