//! Installation profiles: what a machine is made of, as data (`profiles/*.toml`).
//!
//! A profile names its images (file, filesystem level, size rule, source, mount point,
//! cobd index), the swap rule, the network (slirp redirections, a TAP with candidate
//! subnets), cofs shares, guest users and passwords, the hostname, the first-boot script
//! and timeout, and the monitor. The shipped profiles are embedded in the binary
//! ([`SHIPPED`]); any other is read from a file path. A profile's *name* is a validated
//! word whose error lists the shipped names; its *contents* stay data, as rustup keeps
//! its component lists in the manifest.
//!
//! Unknown keys are errors with the key's path, line and the nearest known key
//! ([`crate::keys`]); every value is checked here, before a plan is made. A profile is
//! untrusted input, and its strings end up in the guest's files (/etc/fstab, passwd,
//! shadow, rcS), in config.txt and on the guest's kernel command line, so:
//!
//! - no string anywhere in a profile may hold a control character (a newline in a
//!   mount point would be a second line of /etc/fstab), checked over the whole TOML
//!   document with the key's path and line;
//! - a field of a file with a grammar keeps to it: no whitespace in an fstab field or a
//!   kernel command-line word, no `:` in a passwd or shadow field, guest paths absolute
//!   without `.` or `..`;
//! - image file names are unique (letter case aside: Windows and macOS folders do not
//!   tell them apart) and are not the machine's own files (config.txt,
//!   install-state.json, logs) nor a Windows device name; users' names and uids are
//!   unique;
//! - every size is at most [`MAX_IMAGE_MB`] (4 PiB), checked by [`check_size_mb`], the one
//!   check of the profile's sizes and of the answers' (ROOTMB, HOMEMB, SWAPMB) that
//!   both the install and its dry run go through.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use crate::keys::{self, Schema};

/// The profiles shipped in the binary: (name, TOML text).
pub const SHIPPED: &[(&str, &str)] = &[
    ("minimal", include_str!("../../profiles/minimal.toml")),
    (
        "bfin-uclinux",
        include_str!("../../profiles/bfin-uclinux.toml"),
    ),
    (
        "embedded-dev",
        include_str!("../../profiles/embedded-dev.toml"),
    ),
];

/// The default profile.
pub const DEFAULT: &str = "minimal";

/// The monitor that runs a machine's config.txt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Monitor {
    /// colinux-daemon (Windows 2000..7 32-bit, Linux 2.6 hosts).
    Colinux,
    /// User-mode Linux (`linux.uml`).
    Uml,
    /// QEMU.
    Qemu,
    /// WSL 2 (64-bit Windows 10 2004+ and 11): root as a VHDX registered with
    /// `wsl.exe --import-in-place` (see `crate::wsl`).
    Wsl,
}

impl Monitor {
    /// The word in answers and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Monitor::Colinux => "colinux",
            Monitor::Uml => "uml",
            Monitor::Qemu => "qemu",
            Monitor::Wsl => "wsl",
        }
    }

    /// Parses `colinux`, `uml` or `qemu` (any case).
    pub fn parse(s: &str) -> Option<Monitor> {
        match s.to_ascii_lowercase().as_str() {
            "colinux" => Some(Monitor::Colinux),
            "uml" => Some(Monitor::Uml),
            "qemu" => Some(Monitor::Qemu),
            "wsl" => Some(Monitor::Wsl),
            _ => None,
        }
    }

    /// The least guest RAM this monitor runs a guest with, and why. The monitors start
    /// guests with at least this much whatever config.txt says, so the plan refuses
    /// less: what config.txt says is what runs.
    pub const fn least_ram(self) -> (u32, &'static str) {
        match self {
            Monitor::Colinux => (8, "coLinux gives a guest at least 8 MB"),
            // Measured with Debian 12's kernels: see monitor/uml.rs and monitor/qemu.rs.
            Monitor::Uml => (
                128,
                "User-mode Linux runs a guest with at least 128 MB (Debian's UML kernel \
                 runs out of memory with less)",
            ),
            Monitor::Qemu => (
                128,
                "QEMU runs a guest with at least 128 MB (the distribution kernel stops \
                 unpacking its initramfs with less)",
            ),
            // WSL 2 sizes its one VM itself (.wslconfig); the machine's RAM has no
            // meaning there, so no floor binds it.
            Monitor::Wsl => (0, "WSL 2 sizes its own VM (.wslconfig)"),
        }
    }

    /// The guest device of block device `index` under this monitor: `/dev/cobdN`
    /// (coLinux), `/dev/ubdX` (UML: cobdN becomes ubdN), `/dev/vdX` (QEMU virtio).
    pub fn device(self, index: u8) -> String {
        let letter = char::from(b'a' + index.min(25));
        match self {
            Monitor::Colinux => format!("/dev/cobd{index}"),
            Monitor::Uml => format!("/dev/ubd{letter}"),
            Monitor::Qemu => format!("/dev/vd{letter}"),
            // WSL 2 attaches the distribution's VHDX as a SCSI disk (sdX) and mounts it
            // as / itself; no fstab line names it.
            Monitor::Wsl => format!("/dev/sd{letter}"),
        }
    }
}

/// The monitor a profile or an answer asks for: one, or `auto` (the first that runs
/// guests on this host, found by the monitor probe: see `monitor::probe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MonitorRequest {
    /// The first monitor that works here.
    Auto,
    /// This monitor.
    Given(Monitor),
}

impl std::fmt::Display for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MonitorRequest {
    /// `auto`, or a monitor's word.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorRequest::Auto => "auto",
            MonitorRequest::Given(m) => m.as_str(),
        }
    }

    /// Parses `auto`, `colinux`, `uml` or `qemu` (any case).
    pub fn parse(s: &str) -> Option<MonitorRequest> {
        if s.eq_ignore_ascii_case("auto") {
            return Some(MonitorRequest::Auto);
        }
        Monitor::parse(s).map(MonitorRequest::Given)
    }
}

impl TryFrom<String> for MonitorRequest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        MonitorRequest::parse(&s)
            .ok_or_else(|| format!("unknown monitor {s:?}; use auto, colinux, uml, qemu or wsl"))
    }
}

impl From<MonitorRequest> for String {
    fn from(r: MonitorRequest) -> String {
        r.as_str().to_owned()
    }
}

/// A whole profile, as written in TOML.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name (`minimal`).
    pub name: String,
    /// One line saying what it installs.
    pub description: String,
    /// The monitor the machine is installed for: one, or `auto`.
    pub monitor: MonitorRequest,
    /// The guest's hostname.
    pub hostname: String,
    /// The oldest guest kernel that must mount the images (chooses filesystem features).
    pub guest_kernel: String,
    /// The guest kernel file written as `kernel=` (a kit file, relative to the prefix);
    /// for the `uml` monitor `linux.uml` is looked up on the host's PATH.
    #[serde(default)]
    pub kernel: Option<String>,
    /// SOURCE_DATE_EPOCH of the images: every time in them is clamped to it, so two
    /// installs of the same plan give byte-identical images.
    pub source_date_epoch: i64,
    /// Default install folder on Windows hosts (`C:\coLinux`).
    #[serde(default)]
    pub windows_prefix: Option<String>,
    /// Guest RAM rule.
    pub ram: RamRule,
    /// Filesystem images.
    #[serde(rename = "image")]
    pub images: Vec<ImageSpec>,
    /// The swap image.
    pub swap: SwapRule,
    /// Network adapters.
    #[serde(default)]
    pub network: Network,
    /// cofs shares.
    #[serde(default, rename = "share")]
    pub shares: Vec<Share>,
    /// Guest users.
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
    /// The first boot.
    #[serde(default)]
    pub first_boot: Option<FirstBoot>,
}

/// Guest RAM: bounds of the recommendation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RamRule {
    /// The least RAM the guest works with (MB).
    pub min_mb: u32,
    /// The most the recommendation gives (MB).
    pub max_mb: u32,
}

/// Which image an [`ImageSpec`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The root filesystem (`ROOTMB`); fstab, hostname and users are written into it.
    Root,
    /// /home, the user's data (`HOMEMB`); never replaced, removed only by `--purge`.
    Home,
}

impl Role {
    /// The answer key of its size.
    pub fn size_key(self) -> &'static str {
        match self {
            Role::Root => "ROOTMB",
            Role::Home => "HOMEMB",
        }
    }

    /// `root` or `home`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Home => "home",
        }
    }
}

/// What fills an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// A small root tree assembled from the host's static busybox (or the kit's
    /// `rootfs/` folder when `--kit` gives one).
    Busybox,
    /// Only the users' home folders.
    Empty,
    /// The kit's root filesystem: a tar archive the kit lists with role `rootfs`
    /// (streamed into the image, never unpacked on the host), or its `rootfs/` folder. The
    /// install refuses without a kit that has one. Its init is busybox's (`/sbin/init`),
    /// which runs the `/etc/inittab`, rcS and first-boot script written here, as for the
    /// built-in root; the rest of its userland (dash, GNU tools) runs them too.
    Kit,
}

/// One filesystem image.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// root or home.
    pub role: Role,
    /// File name in the prefix.
    pub file: String,
    /// Filesystem level (ext2, ext3, ext4, ext4-compat, ext4-modern).
    pub fs: String,
    /// Recommended size in MB.
    pub size_mb: u64,
    /// Why that size (shown by `facts` and `--dry-run`).
    pub size_rule: String,
    /// Mount point in the guest.
    pub mount: String,
    /// Block device index (cobdN; ubdN, vdN on the other monitors).
    pub cobd: u8,
    /// What fills it.
    pub source: ImageSource,
    /// With `source = "kit"`: the size is at least the kit's root content plus this
    /// share of it (free room for the user's work), `size_mb` being the least it is.
    #[serde(default)]
    pub headroom_pct: Option<u32>,
    /// Guest paths (files or folders) that `images rebuild root` copies from the old
    /// root image into the new one, e.g. `/etc/ssh` and `/root`: what the user made in
    /// the guest and wants to outlive a fresh root from the kit.
    #[serde(default)]
    pub preserve: Vec<String>,
}

/// The swap image: `factor` × guest RAM, at least `min_mb`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRule {
    /// File name.
    pub file: String,
    /// Block device index.
    pub cobd: u8,
    /// Swap = factor × RAM (the Blackfin coLinux kit manual: larger than the guest's RAM).
    pub factor: u32,
    /// Lower bound in MB.
    pub min_mb: u64,
}

/// Network adapters: eth0 slirp (when `slirp` is set), then a TAP.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// eth0 slirp redirections (`tcp:333:22`); `None` means no slirp adapter.
    #[serde(default)]
    pub slirp: Option<Vec<String>>,
    /// A TAP adapter on a free class C network.
    #[serde(default)]
    pub tap: Option<Tap>,
}

/// The TAP adapter.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tap {
    /// Connection name (`TAPNAME`).
    pub name: String,
    /// Candidate /24 networks, first free one wins (`SUBNET` pins one); none: the
    /// defaults of `tap_setup::default_candidates`.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Networking is optional: without the right to create the adapter the install goes
    /// on without it (status says so) instead of rolling back.
    #[serde(default)]
    pub optional: bool,
}

/// One cofs share.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// cofs index.
    pub cofs: u8,
    /// Host folder; `.` means the install folder.
    pub host: String,
    /// Mount point in the guest.
    pub mount: String,
    /// fstab options.
    #[serde(default = "default_share_options")]
    pub options: String,
}

fn default_share_options() -> String {
    "defaults,noatime".to_owned()
}

/// One guest user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Home folder.
    pub home: String,
    /// Login shell.
    #[serde(default = "default_shell")]
    pub shell: String,
    /// Clear-text password (stored only as a SHA-512 crypt hash in /etc/shadow).
    #[serde(default)]
    pub password: Option<String>,
    /// A ready crypt hash instead of `password`.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Where a built-in profile's `password` is written for its users (the Blackfin
    /// coLinux kit manual): the plan and the finish page show the password with it. A
    /// profile file's password is the user's own and is never shown.
    #[serde(default)]
    pub password_from: Option<String>,
    /// The person who will use the machine: the name is the answer USERNAME (this
    /// profile's `name` when none is given), the home folder `/home/NAME`, and the
    /// password the answer USERPASSWORD or USERPASSWORDHASH, which the install requires
    /// (the wizard asks for both): such a profile never carries a shared password.
    #[serde(default)]
    pub ask: bool,
}

fn default_shell() -> String {
    "/bin/sh".to_owned()
}

/// The first boot: a script the guest runs once, and how long it may take.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstBoot {
    /// What it does, in words.
    pub description: String,
    /// Seconds before it counts as failed.
    pub timeout_secs: u64,
    /// The guest folder the distribution is unpacked into.
    #[serde(default = "default_first_boot_target")]
    pub target: String,
    /// Install the monitor kernel's loadable modules into the root image's
    /// /lib/modules (as coLinux's first boot unpacked vmlinux-modules.tar.gz): the kit's
    /// `modules/VERSION/` folder, or for User-mode Linux the host's
    /// /usr/lib/uml/modules/VERSION (Debian package user-mode-linux).
    #[serde(default)]
    pub modules: bool,
    /// Commands the guest runs after the distribution is unpacked, in `target`, as the
    /// user who owns it (root when it is not a user's home), one `sh -c` each and in
    /// order; their output goes to the console and the install log, and the first that
    /// fails fails the first boot (and the install) with it. A profile's commands run
    /// inside the guest only, as the kit's programs do.
    #[serde(default)]
    pub run: Vec<String>,
}

/// `first_boot.target` for the home folder of the machine's user (the first user that is
/// not root: the asked one, when there is one).
pub const HOME_TARGET: &str = "~";

fn default_first_boot_target() -> String {
    "/home".to_owned()
}

static IMAGE_SCHEMA: Schema = Schema {
    keys: &[
        "role",
        "file",
        "fs",
        "size_mb",
        "size_rule",
        "mount",
        "cobd",
        "source",
        "headroom_pct",
        "preserve",
    ],
    children: &[],
};
static TAP_SCHEMA: Schema = Schema {
    keys: &["name", "subnets", "optional"],
    children: &[],
};
static NETWORK_SCHEMA: Schema = Schema {
    keys: &["slirp", "tap"],
    children: &[("tap", &TAP_SCHEMA)],
};
static PROFILE_SCHEMA: Schema = Schema {
    keys: &[
        "name",
        "description",
        "monitor",
        "hostname",
        "guest_kernel",
        "kernel",
        "source_date_epoch",
        "windows_prefix",
        "ram",
        "image",
        "swap",
        "network",
        "share",
        "user",
        "first_boot",
    ],
    children: &[
        (
            "ram",
            &Schema {
                keys: &["min_mb", "max_mb"],
                children: &[],
            },
        ),
        ("image", &IMAGE_SCHEMA),
        (
            "swap",
            &Schema {
                keys: &["file", "cobd", "factor", "min_mb"],
                children: &[],
            },
        ),
        ("network", &NETWORK_SCHEMA),
        (
            "share",
            &Schema {
                keys: &["cofs", "host", "mount", "options"],
                children: &[],
            },
        ),
        (
            "user",
            &Schema {
                keys: &[
                    "name",
                    "uid",
                    "gid",
                    "home",
                    "shell",
                    "password",
                    "password_hash",
                    "password_from",
                    "ask",
                ],
                children: &[],
            },
        ),
        (
            "first_boot",
            &Schema {
                keys: &["description", "timeout_secs", "target", "modules", "run"],
                children: &[],
            },
        ),
    ],
};

/// Where a profile came from: a shipped name or a file.
#[derive(Clone, Debug, Serialize)]
pub struct Loaded {
    /// The profile.
    pub profile: Profile,
    /// `shipped:NAME` or the file's path.
    pub origin: String,
    /// The file, when it came from one.
    pub file: Option<PathBuf>,
}

/// Whether `name_or_path` names a profile file (anything with a `/`, `\\` or ending in
/// `.toml`) rather than a built-in profile.
pub fn is_path(name_or_path: &str) -> bool {
    name_or_path.contains(['/', '\\']) || name_or_path.ends_with(".toml")
}

/// The built-in profile called `name`, or the error that lists them (with the nearest
/// name): a name on the command line that is none of them is a usage error, checked
/// before anything is read.
pub fn builtin(name: &str) -> Result<&'static str> {
    if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
        return Ok(text);
    }
    let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    let hint = keys::nearest(name, &names)
        .map(|n| format!("did you mean `{n}`? "))
        .unwrap_or_default();
    bail!(
        "PROFILE: no built-in profile is called `{name}`; {hint}the built-in profiles are: {} (or give the path of a profile file)",
        names.join(", ")
    );
}

/// Loads a built-in profile by name, or a profile file by path ([`is_path`]).
pub fn load(name_or_path: &str) -> Result<Loaded> {
    if !is_path(name_or_path) {
        let text = builtin(name_or_path)?;
        let profile = parse(text, &format!("built-in profile {name_or_path}"))?;
        return Ok(Loaded {
            profile,
            origin: format!("shipped:{name_or_path}"),
            file: None,
        });
    }
    let path = Path::new(name_or_path);
    let text =
        crate::input::read_text(path, crate::input::PROFILE_LIMIT, "a profile").map_err(|e| {
            anyhow!("PROFILE: {e}; give a profile file (TOML, like profiles/minimal.toml)")
        })?;
    let profile = parse(&text, &path.display().to_string())?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    Ok(Loaded {
        profile,
        origin: abs.display().to_string(),
        file: Some(abs),
    })
}

/// Parses and checks a profile's TOML text; `name` says where it came from.
pub fn parse(text: &str, name: &str) -> Result<Profile> {
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| keys::line_of(text, s.start)).unwrap_or(1);
        anyhow!(
            "profile {name}: line {line}: not valid TOML: {}",
            e.message().trim()
        )
    })?;
    if let Some(u) = keys::find_unknown(text, doc.get_ref(), &PROFILE_SCHEMA) {
        bail!("profile {name}: {u}");
    }
    if let Some(c) = find_control(text, doc.get_ref(), "") {
        bail!("profile {name}: {c}");
    }
    let profile: Profile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| keys::line_of(text, s.start)).unwrap_or(1);
        anyhow!("profile {name}: line {line}: {}", e.message().trim())
    })?;
    validate(&profile).map_err(|e| anyhow!("profile {name}: {e}"))?;
    Ok(profile)
}

/// The largest image, in MB: 4 PiB, the most an ext4 filesystem of 4 KiB blocks with
/// 64-bit block numbers (2^40 blocks) holds; the image builder refuses what a given
/// level cannot lay out (16 TiB without 64-bit numbers), the free-space check what the
/// volume cannot hold. A size in MB is turned into bytes (`<< 20`) and summed in many
/// places; below this bound that never wraps around.
pub const MAX_IMAGE_MB: u64 = 1 << 32;

/// Checks an image or swap size in MB: above 0 and at most [`MAX_IMAGE_MB`]; the error
/// says the bound.
pub fn check_size_mb(mb: u64) -> Result<(), String> {
    if mb == 0 {
        return Err("an image needs a size above 0".to_owned());
    }
    if mb > MAX_IMAGE_MB {
        return Err(format!(
            "{mb} MB is larger than the largest image colinux-setup makes ({MAX_IMAGE_MB} MB, 4 PiB)"
        ));
    }
    Ok(())
}

/// Files of the machine itself in the install folder, which no image may be named
/// (names starting with `.`, the lock, the journal and backups, are refused anyway).
const OWN_FILES: &[&str] = &[
    "config.txt",
    crate::state::STATE_FILE,
    crate::state::LOGS_DIR,
];

/// Names that are devices on Windows, also with an extension (`nul.img`).
const WINDOWS_DEVICES: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// The first string of the document with a control character: its key path and line,
/// and the character. A profile's strings are written into the guest's files, config.txt
/// and the kernel command line, where such a character starts a new line or field.
fn find_control(text: &str, table: &toml::de::DeTable<'_>, prefix: &str) -> Option<String> {
    use toml::de::DeValue;
    fn value(text: &str, v: &toml::Spanned<DeValue<'_>>, path: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => s.chars().find(|c| c.is_control()).map(|c| {
                format!(
                    "line {}: {path}: has the control character U+{:04X}; no string of a profile may have one (they are written into the guest's files)",
                    keys::line_of(text, v.span().start),
                    u32::from(c)
                )
            }),
            DeValue::Table(t) => find_control(text, t, path),
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| value(text, item, &format!("{path}[{i}]"))),
            _ => None,
        }
    }
    table.iter().find_map(|(k, v)| {
        let name: &str = k.get_ref();
        if name.chars().any(char::is_control) {
            return Some(format!(
                "line {}: a key has a control character",
                keys::line_of(text, k.span().start)
            ));
        }
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        value(text, v, &path)
    })
}

/// A field of /etc/fstab or a word of the kernel command line: no whitespace (it would
/// split the field) and no `#` at its start (a comment).
fn check_word(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.chars().any(char::is_whitespace) {
        return Err(
            "has whitespace, which would split it in /etc/fstab or on the kernel command line",
        );
    }
    if value.starts_with('#') {
        return Err("starts with `#`, which starts a comment in /etc/fstab");
    }
    Ok(())
}

/// A mount point: an absolute guest path (`/` itself for the root) without `.` or `..`,
/// and a single fstab field.
fn check_mount(path: &str) -> Result<(), &'static str> {
    check_word(path)?;
    if path == "/" {
        return Ok(());
    }
    check_guest_path(path)
}

/// A guest path a user names: absolute, below `/`, no `.` or `..` components, no NUL.
pub fn check_guest_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be an absolute guest path");
    }
    if path.contains('\0') {
        return Err("must not contain NUL");
    }
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if comps.is_empty() {
        return Err("names the whole root; name the folders to keep");
    }
    if comps.iter().any(|c| *c == "." || *c == "..") {
        return Err("must not contain `.` or `..`");
    }
    Ok(())
}

fn validate(p: &Profile) -> Result<()> {
    if p.name.is_empty()
        || !p
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("name: `{}` must be letters, digits, - or _", p.name);
    }
    check_hostname(&p.hostname).map_err(|e| anyhow!("hostname: {e}"))?;
    let kernel: image_builder::KernelVersion = p
        .guest_kernel
        .parse()
        .map_err(|e| anyhow!("guest_kernel: {e}"))?;
    if p.ram.min_mb == 0 || p.ram.min_mb > p.ram.max_mb {
        bail!(
            "ram: min_mb ({}) must be above 0 and at most max_mb ({})",
            p.ram.min_mb,
            p.ram.max_mb
        );
    }
    let mut indices = vec![p.swap.cobd];
    let mut files = vec![p.swap.file.as_str()];
    let roots = p.images.iter().filter(|i| i.role == Role::Root).count();
    if roots != 1 {
        bail!("image: exactly one image must have role = \"root\" (found {roots})");
    }
    if p.images.iter().filter(|i| i.role == Role::Home).count() > 1 {
        bail!("image: at most one image may have role = \"home\"");
    }
    for (i, img) in p.images.iter().enumerate() {
        let at = format!("image[{i}]");
        image_builder::FsLevel::resolve(&img.fs, Some(kernel))
            .map_err(|e| anyhow!("{at}.fs: {e}"))?;
        check_size_mb(img.size_mb).map_err(|e| anyhow!("{at}.size_mb: {e}"))?;
        check_mount(&img.mount).map_err(|e| {
            anyhow!(
                "{at}.mount: `{}` {e}; a mount point is an absolute guest path",
                img.mount
            )
        })?;
        for (k, path) in img.preserve.iter().enumerate() {
            check_guest_path(path).map_err(|e| anyhow!("{at}.preserve[{k}]: `{path}` {e}"))?;
        }
        match (img.headroom_pct, img.source) {
            (Some(p), ImageSource::Kit) if p > 1000 => {
                bail!("{at}.headroom_pct: {p} is more than 1000 (ten times the content)")
            }
            (Some(_), src) if src != ImageSource::Kit => {
                bail!(
                    "{at}.headroom_pct: only an image with source = \"kit\" is sized from its content"
                )
            }
            _ => {}
        }
        if img.source == ImageSource::Kit && img.role != Role::Root {
            bail!("{at}.source: only the root image comes from the kit's root filesystem");
        }
        if img.role == Role::Root && img.mount != "/" {
            bail!(
                "{at}.mount: the root image mounts on `/`, not `{}`",
                img.mount
            );
        }
        indices.push(img.cobd);
        files.push(&img.file);
    }
    for f in &files {
        if f.is_empty() || f.contains(['/', '\\', ':', ' ', ',']) || f.starts_with('.') {
            bail!(
                "`{f}`: image file names are plain names (no folders, spaces, commas or leading dot)"
            );
        }
        let lower = f.to_ascii_lowercase();
        if OWN_FILES.contains(&lower.as_str()) {
            bail!(
                "`{f}`: an image cannot be named after the machine's own {f} in the install folder; choose another name"
            );
        }
        let stem = lower.split('.').next().unwrap_or_default();
        if WINDOWS_DEVICES.contains(&stem) {
            bail!("`{f}`: {stem} is a device on Windows, not a file; choose another name");
        }
    }
    // Letter case aside: Windows and macOS folders do not tell ROOT.IMG from root.img.
    let mut sorted: Vec<String> = files.iter().map(|f| f.to_ascii_lowercase()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != files.len() {
        bail!("image/swap: two images have the same file name (letter case aside)");
    }
    for &n in &indices {
        if n > config_txt::model::MAX_COBD {
            bail!("cobd {n}: block device indices are 0..=31");
        }
    }
    let mut idx = indices.clone();
    idx.sort_unstable();
    idx.dedup();
    if idx.len() != indices.len() {
        bail!("image/swap: two images use the same cobd index");
    }
    if p.swap.factor == 0 {
        bail!("swap.factor: must be at least 1");
    }
    check_size_mb(p.swap.min_mb).map_err(|e| anyhow!("swap.min_mb: {e}"))?;
    if let Some(redirs) = &p.network.slirp
        && !redirs.is_empty()
    {
        config_txt::parse_redirections(&redirs.join("/"))
            .map_err(|e| anyhow!("network.slirp: {e}"))?;
    }
    if let Some(tap) = &p.network.tap {
        if tap.name.is_empty() || tap.name.len() > 63 || tap.name.contains(['#', ',', '"']) {
            bail!(
                "network.tap.name: `{}` must be 1..63 characters without # , or \"",
                tap.name
            );
        }
        for (i, s) in tap.subnets.iter().enumerate() {
            parse_subnet(s).map_err(|e| anyhow!("network.tap.subnets[{i}]: {e}"))?;
        }
    }
    let mut cofs: Vec<u8> = p.shares.iter().map(|s| s.cofs).collect();
    for (i, s) in p.shares.iter().enumerate() {
        if s.cofs > config_txt::model::MAX_COFS {
            bail!("share[{i}].cofs: {} is not in 0..=31", s.cofs);
        }
        check_mount(&s.mount).map_err(|e| {
            anyhow!(
                "share[{i}].mount: `{}` {e}; a mount point is an absolute guest path",
                s.mount
            )
        })?;
        check_word(&s.options).map_err(|e| anyhow!("share[{i}].options: `{}` {e}", s.options))?;
    }
    let n = cofs.len();
    cofs.sort_unstable();
    cofs.dedup();
    if cofs.len() != n {
        bail!("share: two shares use the same cofs index");
    }
    for (i, u) in p.users.iter().enumerate() {
        if u.name.is_empty()
            || !u
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            bail!(
                "user[{i}].name: `{}` must be lower-case letters, digits, _ or -",
                u.name
            );
        }
        if p.users[..i].iter().any(|o| o.name == u.name) {
            bail!(
                "user[{i}].name: `{}` is given twice; each user is one line of /etc/passwd",
                u.name
            );
        }
        if let Some(o) = p.users[..i].iter().find(|o| o.uid == u.uid) {
            bail!(
                "user[{i}].uid: {} is also the uid of `{}`; each user has its own uid",
                u.uid,
                o.name
            );
        }
        if u.password.is_some() && u.password_hash.is_some() {
            bail!("user[{i}]: give password or password_hash, not both");
        }
        if u.password_from.is_some() && u.password.is_none() {
            bail!("user[{i}].password_from: says where `password` is written; give `password` too");
        }
        for field in [&u.home, &u.shell] {
            if field.contains([':', '\n']) {
                bail!("user[{i}]: `{field}` cannot contain `:` or a line break");
            }
        }
        check_guest_path(&u.home).map_err(|e| anyhow!("user[{i}].home: `{}` {e}", u.home))?;
        if let Some(h) = &u.password_hash
            && h.contains([':', '\n'])
        {
            bail!("user[{i}].password_hash: cannot contain `:` or a line break");
        }
    }
    let asked: Vec<&User> = p.users.iter().filter(|u| u.ask).collect();
    if asked.len() > 1 {
        bail!(
            "user: only one user may have ask = true (its name and password are the answers USERNAME and USERPASSWORD)"
        );
    }
    if let Some(u) = asked.first() {
        if u.uid == 0 {
            bail!(
                "user `{}`: root cannot be asked for; ask = true is for the machine's user",
                u.name
            );
        }
        if u.password.is_some() || u.password_hash.is_some() {
            bail!(
                "user `{}`: ask = true takes the password from the install's answers; remove password and password_hash",
                u.name
            );
        }
    }
    if let Some(fb) = &p.first_boot {
        // colinux.target=DIR on the guest's kernel command line; `~` is the user's home.
        if fb.target == HOME_TARGET {
            if !p.users.iter().any(|u| u.uid != 0) {
                bail!(
                    "first_boot.target: `~` is the home of the machine's user, and the profile has no user but root"
                );
            }
        } else {
            check_word(&fb.target)
                .and_then(|()| check_guest_path(&fb.target))
                .map_err(|e| anyhow!("first_boot.target: `{}` {e}", fb.target))?;
        }
        for (i, c) in fb.run.iter().enumerate() {
            if c.trim().is_empty() {
                bail!(
                    "first_boot.run[{i}]: is empty; give a command, e.g. \"make -C sdk/hello run\""
                );
            }
        }
    }
    if p.users.first().is_none_or(|u| u.uid != 0) {
        bail!("user: the first user must be root (uid 0)");
    }
    Ok(())
}

/// Checks a hostname: 1..63 of letters, digits and `-`, not starting or ending with `-`.
pub fn check_hostname(h: &str) -> Result<()> {
    if h.is_empty()
        || h.len() > 63
        || h.starts_with('-')
        || h.ends_with('-')
        || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        bail!("`{h}` is not a hostname (1..63 letters, digits and -, not at either end)");
    }
    Ok(())
}

/// Parses `a.b.c.0/24` (a class C network) into its first three octets.
pub fn parse_subnet(s: &str) -> Result<[u8; 3]> {
    let bad = || anyhow!("`{s}` is not a class C network such as 10.12.12.0/24");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    if len != "24" {
        return Err(bad());
    }
    let o: Vec<u8> = addr
        .split('.')
        .map(str::parse::<u8>)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    match o.as_slice() {
        [a, b, c, 0] => {
            let private =
                *a == 10 || (*a == 172 && (16..=31).contains(b)) || (*a == 192 && *b == 168);
            if !private {
                bail!("`{s}` is not a private network (10/8, 172.16/12, 192.168/16)");
            }
            Ok([*a, *b, *c])
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_parse() {
        for (name, text) in SHIPPED {
            let p = parse(text, name).expect("shipped profile is valid");
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn an_asked_user_a_kit_root_and_first_boot_steps_are_checked() {
        let ed = builtin("embedded-dev").expect("shipped");
        let p = parse(ed, "embedded-dev").expect("valid");
        assert!(p.users.iter().any(|u| u.ask && u.uid == 1000));
        assert_eq!(
            p.first_boot.as_ref().map(|f| f.target.as_str()),
            Some(HOME_TARGET)
        );
        for (from, to, said) in [
            // A shared password for the asked user.
            (
                "ask = true",
                "ask = true\npassword = \"x\"",
                "remove password",
            ),
            // Root cannot be asked for.
            ("uid = 1000", "uid = 0", "0 is also the uid of `root`"),
            // Headroom only for a kit root, within bounds.
            ("headroom_pct = 50", "headroom_pct = 5000", "more than 1000"),
            (
                "source = \"empty\"",
                "source = \"empty\"\nheadroom_pct = 5",
                "only an image with source = \"kit\"",
            ),
            (
                "source = \"empty\"",
                "source = \"kit\"",
                "only the root image comes from the kit",
            ),
            (
                "run = [\"make -C sdk/hello run\"]",
                "run = [\" \"]",
                "first_boot.run[0]: is empty",
            ),
        ] {
            let text = ed.replacen(from, to, 1);
            assert_ne!(text, ed, "{from}");
            let err = parse(&text, "x").map(|_| ()).expect_err(said);
            assert!(format!("{err:#}").contains(said), "{said}: {err:#}");
        }
        // Two asked users.
        let two = format!(
            "{ed}\n[[user]]\nname = \"other\"\nuid = 1001\ngid = 1001\nhome = \"/home/other\"\nask = true\n"
        );
        let err = parse(&two, "x").map(|_| ()).expect_err("two asked");
        assert!(
            format!("{err:#}").contains("only one user may have ask = true"),
            "{err:#}"
        );
        // `~` needs a user who is not root.
        let minimal = builtin("minimal").expect("shipped").replacen(
            "target = \"/home\"",
            "target = \"~\"",
            1,
        );
        let err = parse(&minimal, "x").map(|_| ()).expect_err("no user");
        assert!(format!("{err:#}").contains("no user but root"), "{err:#}");
    }

    #[test]
    fn unknown_key_names_path_line_and_suggestion() {
        let text = SHIPPED[0].1.replacen("size_rule", "size_rul", 1);
        let err = parse(&text, "x").expect_err("unknown key").to_string();
        assert!(err.contains("image[0].size_rul"), "{err}");
        assert!(err.contains("did you mean `size_rule`"), "{err}");
    }

    #[test]
    fn monitor_requests_parse_auto_and_every_monitor_in_any_case() {
        assert_eq!(MonitorRequest::parse("AUTO"), Some(MonitorRequest::Auto));
        assert_eq!(
            MonitorRequest::parse("Qemu"),
            Some(MonitorRequest::Given(Monitor::Qemu))
        );
        assert_eq!(MonitorRequest::parse("vmware"), None);
        assert_eq!(MonitorRequest::Auto.as_str(), "auto");
    }

    #[test]
    fn devices_follow_the_monitor() {
        assert_eq!(Monitor::Colinux.device(2), "/dev/cobd2");
        assert_eq!(Monitor::Uml.device(1), "/dev/ubdb");
        assert_eq!(Monitor::Qemu.device(0), "/dev/vda");
    }

    #[test]
    fn subnets() {
        assert_eq!(parse_subnet("10.12.12.0/24").expect("ok"), [10, 12, 12]);
        assert!(parse_subnet("8.8.8.0/24").is_err());
        assert!(parse_subnet("10.1.1.0/16").is_err());
    }
}
