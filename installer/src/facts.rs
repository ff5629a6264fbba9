//! Host facts (RAM, CPUs, OS, architecture, free space on the install volume) and the
//! sizes recommended from them, each with the rule that produced it.
//!
//! [`gather`] is the only function that asks the host; [`recommend`] and [`ram_limits`]
//! are pure functions of [`HostFacts`] and the profile, so the rules are unit-tested
//! with the Blackfin coLinux kit manual's own examples (a 256 MB host gives 128, 512 MB gives 256).
//!
//! Free space is asked of the install folder's own volume (`statvfs` on the folder, or
//! on its nearest existing parent), not matched from a list of mounted disks.
//!
//! # Platform specific behavior
//!
//! RAM, CPUs and OS come from `sysinfo` on every host. Free space is read with
//! `statvfs` on Unix; on other hosts it is reported as unknown until the Windows build
//! asks `GetDiskFreeSpaceExW`, and the space check is then skipped with a warning.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::profile::{Monitor, Profile, Role};

/// What the host is.
#[derive(Clone, Debug, Serialize)]
pub struct HostFacts {
    /// Total RAM in MB.
    pub total_ram_mb: u64,
    /// Available RAM in MB.
    pub available_ram_mb: u64,
    /// Logical CPUs.
    pub cpus: usize,
    /// Operating system, e.g. `Linux (Debian GNU/Linux 12)`.
    pub os: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    /// The install folder's volume, when it could be asked.
    pub volume: Option<Volume>,
}

/// Free space of the volume that holds a folder.
#[derive(Clone, Debug, Serialize)]
pub struct Volume {
    /// The folder asked about.
    pub path: PathBuf,
    /// The folder actually queried: `path`, or its nearest existing parent.
    pub queried: PathBuf,
    /// Bytes available to this user.
    pub free_bytes: u64,
    /// Size of the volume in bytes.
    pub total_bytes: u64,
}

/// Reads the host's facts; `prefix` is the install folder whose volume is asked.
pub fn gather(prefix: &Path) -> HostFacts {
    use sysinfo::{MemoryRefreshKind, RefreshKind, System};
    let sys = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let os = System::long_os_version()
        .or_else(System::name)
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    HostFacts {
        total_ram_mb: sys.total_memory() >> 20,
        available_ram_mb: sys.available_memory() >> 20,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os,
        arch: std::env::consts::ARCH.to_owned(),
        volume: volume(prefix),
    }
}

/// The nearest existing folder at or above `path`.
pub fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let mut p = Some(path);
    while let Some(cur) = p {
        if cur.is_dir() {
            return Some(cur.to_owned());
        }
        p = cur.parent();
    }
    None
}

#[cfg(unix)]
fn volume(path: &Path) -> Option<Volume> {
    let queried = nearest_existing(path)?;
    let st = rustix::fs::statvfs(&queried).ok()?;
    Some(Volume {
        path: path.to_owned(),
        free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        queried,
    })
}

#[cfg(windows)]
fn volume(path: &Path) -> Option<Volume> {
    let queried = nearest_existing(path)?;
    let (free_bytes, total_bytes) = crate::host::volume_space(&queried)?;
    Some(Volume {
        path: path.to_owned(),
        free_bytes,
        total_bytes,
        queried,
    })
}

#[cfg(not(any(unix, windows)))]
fn volume(_path: &Path) -> Option<Volume> {
    None
}

/// RAM the host leaves for itself (the Blackfin coLinux kit manual: "Windows ... should have at least
/// 128MB left").
pub const HOST_KEEPS_MB: u64 = 128;
/// coLinux's driver refuses hosts with more physical memory than this.
pub const COLINUX_MAX_HOST_MB: u64 = 4096;
/// coLinux's guest RAM range.
pub const COLINUX_RAM_MB: (u32, u32) = (8, 984);

/// The guest RAM a value must lie in, with the reason for each bound.
#[derive(Clone, Debug, Serialize)]
pub struct RamLimits {
    /// Least.
    pub min_mb: u32,
    /// Why.
    pub min_rule: String,
    /// Most.
    pub max_mb: u32,
    /// Why.
    pub max_rule: String,
    /// Values must be multiples of this (4 on coLinux).
    pub multiple_of: u32,
}

/// The bounds of guest RAM on this host, for this profile and monitor.
pub fn ram_limits(f: &HostFacts, p: &Profile, m: Monitor) -> RamLimits {
    let host_max = f.total_ram_mb.saturating_sub(HOST_KEEPS_MB);
    let mut max = host_max;
    let mut max_rule = format!(
        "the host has {} MB and keeps at least {HOST_KEEPS_MB} MB for itself",
        f.total_ram_mb
    );
    let mut min = u64::from(p.ram.min_mb);
    let mut min_rule = format!("profile {}: the guest needs at least {min} MB", p.name);
    let (least, least_rule) = m.least_ram();
    if min < u64::from(least) {
        min = u64::from(least);
        min_rule = least_rule.to_owned();
    }
    if m == Monitor::Colinux {
        let driver = if f.total_ram_mb >= 256 {
            f.total_ram_mb - 64
        } else {
            f.total_ram_mb * 3 / 4
        };
        let cap = u64::from(COLINUX_RAM_MB.1).min(driver);
        if cap < max {
            max = cap;
            max_rule = format!(
                "coLinux gives a guest at most 984 MB, and at most host RAM - 64 MB ({driver} MB on this host)"
            );
        }
    }
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    RamLimits {
        min_mb: clamp(min),
        min_rule,
        max_mb: clamp(max),
        max_rule,
        multiple_of: if m == Monitor::Colinux { 4 } else { 1 },
    }
}

/// One recommended size and the rule that gave it.
#[derive(Clone, Debug, Serialize)]
pub struct Sized {
    /// MB.
    pub mb: u64,
    /// Why.
    pub rule: String,
}

/// Recommended sizes for a profile on this host.
#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    /// Guest RAM.
    pub ram: Sized,
    /// Swap, from the recommended RAM.
    pub swap: Sized,
    /// Root filesystem.
    pub root: Sized,
    /// /home, when the profile has one.
    pub home: Option<Sized>,
    /// Plain statements about this host (coLinux on a host over 4 GB, too little RAM).
    pub notes: Vec<String>,
}

/// Recommends guest RAM, swap, root and home sizes.
///
/// RAM: half of the host's RAM, but never so much that the host keeps less than 128 MB
/// (the Blackfin coLinux kit manual: 256 MB → 128, 512 MB → 256), capped by the profile's `max_mb` and
/// the monitor's range, rounded down to a multiple of 4 on coLinux, and at least the
/// profile's `min_mb` and the monitor's least ([`Monitor::least_ram`]). Swap: `factor` × that RAM, at least the profile's `min_mb` ("a bigger swap
/// size than ... the RAM size"). Root and home: the profile's sizes and rules.
pub fn recommend(f: &HostFacts, p: &Profile, m: Monitor) -> Recommendation {
    let limits = ram_limits(f, p, m);
    let half = f.total_ram_mb / 2;
    let mut ram = half
        .min(u64::from(limits.max_mb))
        .min(u64::from(p.ram.max_mb));
    let multiple = u64::from(limits.multiple_of);
    ram -= ram % multiple;
    let mut rule = format!(
        "half of the host's {} MB, host keeps at least {HOST_KEEPS_MB} MB, at most {} MB ({}){}",
        f.total_ram_mb,
        limits.max_mb.min(p.ram.max_mb),
        if limits.max_mb < p.ram.max_mb {
            limits.max_rule.clone()
        } else {
            format!("profile {}", p.name)
        },
        if multiple > 1 {
            format!(", multiple of {multiple}")
        } else {
            String::new()
        }
    );
    let mut notes = Vec::new();
    if ram < u64::from(limits.min_mb) {
        ram = u64::from(limits.min_mb);
        rule = limits.min_rule.clone();
        notes.push(format!(
            "this host has {} MB of RAM: the guest's minimum of {} MB leaves the host less than half",
            f.total_ram_mb, limits.min_mb
        ));
    }
    if m == Monitor::Colinux && f.total_ram_mb > COLINUX_MAX_HOST_MB {
        notes.push(format!(
            "coLinux does not run on hosts with more than 4 GB of RAM (its driver refuses them); this host has {} MB. \
             The machine can be installed here, but colinux-daemon will not start on this host; use the uml or qemu monitor here",
            f.total_ram_mb
        ));
    }
    let swap_mb = (ram * u64::from(p.swap.factor)).max(p.swap.min_mb);
    let swap = Sized {
        mb: swap_mb,
        rule: format!(
            "larger than the guest's RAM: {} × {ram} MB, at least {} MB",
            p.swap.factor, p.swap.min_mb
        ),
    };
    let size_of = |role: Role| {
        p.images.iter().find(|i| i.role == role).map(|i| Sized {
            mb: i.size_mb,
            rule: i.size_rule.clone(),
        })
    };
    Recommendation {
        ram: Sized { mb: ram, rule },
        swap,
        root: size_of(Role::Root).unwrap_or(Sized {
            mb: 0,
            rule: String::new(),
        }),
        home: size_of(Role::Home),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(mb: u64) -> HostFacts {
        HostFacts {
            total_ram_mb: mb,
            available_ram_mb: mb,
            cpus: 1,
            os: "test".into(),
            arch: "x86".into(),
            volume: None,
        }
    }

    fn bfin() -> Profile {
        crate::profile::load("bfin-uclinux")
            .expect("shipped")
            .profile
    }

    #[test]
    fn the_seed_manuals_examples() {
        let p = bfin();
        assert_eq!(recommend(&host(256), &p, Monitor::Colinux).ram.mb, 128);
        assert_eq!(recommend(&host(512), &p, Monitor::Colinux).ram.mb, 256);
        let r = recommend(&host(512), &p, Monitor::Colinux);
        assert!(r.swap.mb > r.ram.mb, "swap larger than RAM");
        assert_eq!(r.root.mb, 1024);
        assert_eq!(r.home.as_ref().map(|h| h.mb), Some(1843));
        assert!(r.notes.is_empty());
    }

    #[test]
    fn colinux_limits_are_said_plainly() {
        let p = bfin();
        let r = recommend(&host(8192), &p, Monitor::Colinux);
        assert!(r.ram.mb <= 984 && r.ram.mb.is_multiple_of(4));
        assert!(r.notes.iter().any(|n| n.contains("more than 4 GB")));
        let l = ram_limits(&host(8192), &p, Monitor::Colinux);
        assert_eq!(l.max_mb, 984);
        assert_eq!(ram_limits(&host(512), &p, Monitor::Uml).max_mb, 384);
    }

    /// What config.txt says is what runs: the monitors' own floor is the plan's, and
    /// the text and JSON agree on rounding (multiples of 4 on coLinux only).
    #[test]
    fn each_monitors_least_ram_is_the_lower_bound_and_rounding_is_colinuxs_only() {
        let minimal = crate::profile::load("minimal").expect("shipped").profile;
        assert!(
            minimal.ram.min_mb < 128,
            "the profile alone would allow less"
        );
        for m in [Monitor::Uml, Monitor::Qemu] {
            let l = ram_limits(&host(4096), &minimal, m);
            assert_eq!(l.min_mb, 128, "{m:?}");
            assert!(l.min_rule.contains("at least 128 MB"), "{}", l.min_rule);
            assert_eq!(l.multiple_of, 1);
            let r = recommend(&host(1030), &minimal, m);
            assert!(!r.ram.rule.contains("multiple of"), "{}", r.ram.rule);
        }
        let c = ram_limits(&host(1024), &minimal, Monitor::Colinux);
        assert_eq!(
            (c.min_mb, c.multiple_of),
            (16, 4),
            "the profile's 16 MB is above coLinux's 8"
        );
        let r = recommend(&host(1030), &minimal, Monitor::Colinux);
        assert!(r.ram.rule.contains("multiple of 4"), "{}", r.ram.rule);
        assert!(r.ram.mb.is_multiple_of(4));
        // A host too small for the floor: the floor, said plainly.
        let r = recommend(&host(192), &minimal, Monitor::Uml);
        assert_eq!(r.ram.mb, 128);
        assert!(r.ram.rule.contains("User-mode Linux"), "{}", r.ram.rule);
    }
}
