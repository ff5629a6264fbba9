//! The typed model of one coLinux 0.7 machine, as colinux-daemon understands its
//! config.txt (colinux-spec.md §1.7 key reference, §1.10 limits).
//!
//! The model stores what the daemon *reads*, not how it was spelled: quotes the daemon
//! removes are removed, comma fields are split, `""` has become `"`, MAC addresses are
//! bytes. Two files with the same model make the daemon do the same thing, which is what
//! the writer's round trip (`parse(write(m)) == m`) relies on.
//!
//! Text is stored as `String`: the coLinux kernel driver reads path bytes as UTF-8 (spec
//! §1.8) while user mode goes through the ANSI code page, so a non-UTF-8 value has no
//! single meaning. The parser refuses such values with an error rather than guess.
//!
//! Empty comma fields (a TAP name left empty to mean "the first coLinux TAP") are empty
//! strings; optional single-valued keys are `Option`s.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Highest `cobdN`, `cofsN`, `ttysN`, `scsiN` and `pciN` index (spec §1.10).
pub const MAX_COBD: u8 = 31;
/// Highest `cofsN` index.
pub const MAX_COFS: u8 = 31;
/// Highest `ttysN` index.
pub const MAX_TTYS: u8 = 31;
/// Highest `scsiN` index.
pub const MAX_SCSI: u8 = 31;
/// Highest `pciN` index.
pub const MAX_PCI: u8 = 31;
/// Highest `ethN` index.
pub const MAX_ETH: u8 = 15;
/// Highest `execN` index.
pub const MAX_EXEC: u8 = 7;
/// Longest `kernel=`/`initrd=` value; 255 bytes or more is a (silent) daemon error.
pub const MAX_KERNEL_PATH: usize = 254;
/// Longest other path value; the daemon truncates beyond this (`co_pathname_t`).
pub const MAX_PATH: usize = 255;
/// Longest guest kernel command line; the daemon truncates beyond this.
pub const MAX_BOOT_LINE: usize = 255;
/// Longest NIC name and serial device name (comma field buffers, spec §9.9).
pub const MAX_NAME: usize = 63;
/// Longest MAC field.
pub const MAX_MAC_FIELD: usize = 39;
/// Longest slirp redirection string.
pub const MAX_REDIRS: usize = 254;
/// Longest `ttysN` mode field.
pub const MAX_TTYS_MODE: usize = 255;
/// Longest `execN` program field.
pub const MAX_EXEC_PROG: usize = 255;
/// Longest `execN` arguments field.
pub const MAX_EXEC_ARGS: usize = 511;
/// Largest `scsiN` size in MB.
pub const MAX_SCSI_SIZE_MB: u32 = 1_048_576;
/// The guest RAM range the coLinux driver clamps `mem=` to (spec §1.9).
pub const MEM_RANGE_MB: std::ops::RangeInclusive<u32> = 8..=984;

/// One machine: everything colinux-daemon takes from its `@file`s and arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// `kernel=`: the vmlinux the daemon loads. Mandatory: without it the daemon
    /// interprets no other key (spec §1.6). `None` only in a model parsed from a broken file.
    pub kernel: Option<String>,
    /// `initrd=`: loaded on boot; also maps `cofs31` to its folder unless `cofs31` is set.
    pub initrd: Option<String>,
    /// `mem=` in MB as the daemon reads it (`0` means automatic).
    pub mem: Option<u32>,
    /// `setcobd=`: how block devices are driven (default sync).
    pub setcobd: Option<CobdMode>,
    /// `cobdN=` images, with the `hd*`/`sd*` alias that names each one in the guest.
    pub cobd: BTreeMap<u8, Cobd>,
    /// `scsiN=` devices.
    pub scsi: BTreeMap<u8, Scsi>,
    /// `ethN=` network adapters.
    pub eth: BTreeMap<u8, Nic>,
    /// `cofsN=` host folders shared with the guest (as written, before canonicalisation).
    pub cofs: BTreeMap<u8, String>,
    /// `pciN=` PCI slots.
    pub pci: BTreeMap<u8, Pci>,
    /// `ttysN=` serial ports.
    pub ttys: BTreeMap<u8, Serial>,
    /// `execN=` programs started with the machine.
    pub exec: BTreeMap<u8, Exec>,
    /// `cocon=` console geometry.
    pub cocon: Option<Cocon>,
    /// `cursor=` cursor size in percent (0 = none).
    pub cursor: Option<u8>,
    /// `color=` console colours.
    pub color: Option<ConsoleColor>,
    /// The `root=` boot parameter (Linux uses the last one, so the model keeps that one).
    pub root: Option<String>,
    /// The other boot parameters, in order, as the guest kernel receives them
    /// (`ro`, `init=...`, and anything the daemon did not take as a key).
    pub boot_params: Vec<String>,
}

impl Config {
    /// A configuration with just the kernel.
    pub fn new(kernel: impl Into<String>) -> Self {
        Config {
            kernel: Some(kernel.into()),
            ..Config::default()
        }
    }

    /// The guest kernel command line: `root=` first, then the other boot parameters,
    /// which is the order the writer emits them in.
    pub fn boot_line(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(root) = &self.root {
            parts.push(format!("root={root}"));
        }
        parts.extend(self.boot_params.iter().cloned());
        parts.join(" ")
    }

    /// The folder the daemon maps to `cofs31` by itself: the initrd's folder, unless
    /// `cofs31` is set (spec §1.7 `initrd`, §9.14). Windows rule: the text up to and
    /// including the last `\` or `/`, or `.` when there is none.
    pub fn implied_cofs31(&self) -> Option<String> {
        if self.cofs.contains_key(&31) {
            return None;
        }
        let initrd = self.initrd.as_ref()?;
        Some(match initrd.rfind(['\\', '/']) {
            Some(i) => initrd[..=i].to_string(),
            None => ".".to_string(),
        })
    }
}

/// `setcobd=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CobdMode {
    /// `async`.
    Async,
    /// `sync` (the daemon's default).
    Sync,
}

impl CobdMode {
    /// The word in config.txt.
    pub fn as_str(self) -> &'static str {
        match self {
            CobdMode::Async => "async",
            CobdMode::Sync => "sync",
        }
    }
}

/// One `cobdN` block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cobd {
    /// The image or device path, as written (quotes removed).
    pub path: String,
    /// The `hd*`/`sd*` alias naming it in the guest, e.g. `hda1`; at most one per device.
    pub alias: Option<String>,
}

impl Cobd {
    /// A device without alias.
    pub fn new(path: impl Into<String>) -> Self {
        Cobd {
            path: path.into(),
            alias: None,
        }
    }
}

/// `scsiN` device types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScsiType {
    /// `disk`.
    Disk,
    /// `cdrom`.
    Cdrom,
    /// `cdrw`.
    Cdrw,
    /// `tape`.
    Tape,
    /// `changer` (path not canonicalised).
    Changer,
    /// `pass` (path not canonicalised).
    Pass,
}

impl ScsiType {
    /// All types, in the daemon's order.
    pub const ALL: [ScsiType; 6] = [
        ScsiType::Disk,
        ScsiType::Cdrom,
        ScsiType::Cdrw,
        ScsiType::Tape,
        ScsiType::Changer,
        ScsiType::Pass,
    ];

    /// The word in config.txt.
    pub fn as_str(self) -> &'static str {
        match self {
            ScsiType::Disk => "disk",
            ScsiType::Cdrom => "cdrom",
            ScsiType::Cdrw => "cdrw",
            ScsiType::Tape => "tape",
            ScsiType::Changer => "changer",
            ScsiType::Pass => "pass",
        }
    }

    /// Whether the daemon canonicalises (and strips quotes from) this type's path.
    pub fn canonicalised(self) -> bool {
        !matches!(self, ScsiType::Changer | ScsiType::Pass)
    }
}

/// One `scsiN` device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scsi {
    /// Device type.
    #[serde(rename = "type")]
    pub kind: ScsiType,
    /// Image or device path.
    pub path: String,
    /// Size in MB; when above 0 the host driver creates or resizes the file to it.
    pub size_mb: u32,
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Whether the locally administered bit is set (what an installer should write, spec §1.11).
    pub fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Whether the group (multicast) bit is set, which no NIC address may have.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A MAC address that is not `hh:hh:hh:hh:hh:hh`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error parsing MAC address: {0}")]
pub struct MacError(pub String);

/// Exactly 17 characters `hh:hh:hh:hh:hh:hh`, hex digits in either case (spec §9.11).
impl FromStr for Mac {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let err = || MacError(s.to_string());
        if bytes.len() != 17 {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (i, slot) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i < 5 && bytes[at + 2] != b':' {
                return Err(err());
            }
            let hi = hex_digit(bytes[at]).ok_or_else(err)?;
            let lo = hex_digit(bytes[at + 1]).ok_or_else(err)?;
            *slot = hi << 4 | lo;
        }
        Ok(Mac(out))
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One `ethN` network adapter (spec §1.7 `ethN`, §9.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Nic {
    /// `tuntap,NAME,MAC`: a TAP adapter; empty name means the first coLinux TAP found.
    Tuntap {
        /// Connection name of the TAP adapter (exact, case-sensitive).
        name: String,
        /// Guest MAC; `None` lets the daemon generate and remember one.
        mac: Option<Mac>,
    },
    /// `pcap-bridge,NAME,MAC,promisc|nopromisc`: bridged through WinPcap.
    PcapBridge {
        /// Host adapter name (exact match preferred, else first containing it).
        name: String,
        /// Guest MAC.
        mac: Option<Mac>,
        /// Promiscuous mode (the default).
        promisc: bool,
    },
    /// `ndis-bridge,NAME,MAC,promisc|nopromisc`: kernel-mode bridge.
    NdisBridge {
        /// Host connection name.
        name: String,
        /// Guest MAC.
        mac: Option<Mac>,
        /// Promiscuous mode (the default).
        promisc: bool,
    },
    /// `slirp,MAC,REDIRS`: user-mode NAT. The first field is the MAC, not a name.
    Slirp {
        /// Guest MAC.
        mac: Option<Mac>,
        /// Port redirections as written (`tcp:2222:22/udp:69:69`); checked by the slirp
        /// helper at run time, see [`crate::slirp::parse_redirections`].
        redirs: String,
    },
}

impl Nic {
    /// The transport word in config.txt.
    pub fn type_name(&self) -> &'static str {
        match self {
            Nic::Tuntap { .. } => "tuntap",
            Nic::PcapBridge { .. } => "pcap-bridge",
            Nic::NdisBridge { .. } => "ndis-bridge",
            Nic::Slirp { .. } => "slirp",
        }
    }

    /// The MAC address, if one is set.
    pub fn mac(&self) -> Option<Mac> {
        match self {
            Nic::Tuntap { mac, .. }
            | Nic::PcapBridge { mac, .. }
            | Nic::NdisBridge { mac, .. }
            | Nic::Slirp { mac, .. } => *mac,
        }
    }
}

/// `pciN` slot kinds that the shipped daemon supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PciKind {
    /// `scsi`: the unit is a `scsiN`.
    Scsi,
    /// `network` (or `net`): the unit is an `ethN`.
    Network,
}

/// One `pciN=FUNC,TYPE,UNIT` slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pci {
    /// PCI function, 0..=7.
    pub function: u8,
    /// What sits in the slot.
    pub kind: PciKind,
    /// The `scsiN` or `ethN` index, which must be configured.
    pub unit: u8,
}

/// One `ttysN=NAME,MODE` serial port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serial {
    /// Host device, e.g. `COM1` (passed unquoted to the serial helper).
    pub name: String,
    /// Mode string, e.g. `BAUD=115200 PARITY=n DATA=8 STOP=1`; empty for none.
    pub mode: String,
}

/// One `execN=PROG,ARGS` program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    /// The program, exactly as `CreateProcess` receives it (embed `"` when it has spaces).
    pub program: String,
    /// Its arguments; empty for none.
    pub args: String,
}

/// `cocon=COLSxROWSxSCROLLBACK`, stored as the daemon ends up using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cocon {
    /// Columns, at least 16.
    pub cols: u32,
    /// Rows, at least 2.
    pub rows: u32,
    /// Scrollback lines: at least `rows`, at most 500 unless `rows` is larger.
    pub scrollback: u32,
}

/// Console colour names, exact and lowercase in config.txt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum ColorName {
    Black,
    Red,
    Green,
    Brown,
    Blue,
    Magenta,
    Cyan,
    Gray,
    Darkgray,
    Brightred,
    Brightgreen,
    Yellow,
    Brightblue,
    Brightmagenta,
    Brightcyan,
    White,
}

impl ColorName {
    /// All names, in attribute order (value 0..=15).
    pub const ALL: [ColorName; 16] = [
        ColorName::Black,
        ColorName::Red,
        ColorName::Green,
        ColorName::Brown,
        ColorName::Blue,
        ColorName::Magenta,
        ColorName::Cyan,
        ColorName::Gray,
        ColorName::Darkgray,
        ColorName::Brightred,
        ColorName::Brightgreen,
        ColorName::Yellow,
        ColorName::Brightblue,
        ColorName::Brightmagenta,
        ColorName::Brightcyan,
        ColorName::White,
    ];

    /// The word in config.txt.
    pub fn as_str(self) -> &'static str {
        match self {
            ColorName::Black => "black",
            ColorName::Red => "red",
            ColorName::Green => "green",
            ColorName::Brown => "brown",
            ColorName::Blue => "blue",
            ColorName::Magenta => "magenta",
            ColorName::Cyan => "cyan",
            ColorName::Gray => "gray",
            ColorName::Darkgray => "darkgray",
            ColorName::Brightred => "brightred",
            ColorName::Brightgreen => "brightgreen",
            ColorName::Yellow => "yellow",
            ColorName::Brightblue => "brightblue",
            ColorName::Brightmagenta => "brightmagenta",
            ColorName::Brightcyan => "brightcyan",
            ColorName::White => "white",
        }
    }

    /// The exact (case-sensitive) name, as the daemon matches it.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// `color=FG,BG`; the daemon refuses `fg == bg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleColor {
    /// Foreground.
    pub fg: ColorName,
    /// Background.
    pub bg: ColorName,
}
