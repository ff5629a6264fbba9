//! One typed [`Plan`] from the profile < answer file < `--set KEY=VALUE` (and flags) <
//! wizard answers.
//!
//! Raw input is first only checked for syntax ([`Answers`]: known keys, one value each,
//! where each came from), then resolved against the profile and the host's facts into a
//! [`Plan`] in which every value is known and validated. Only a `Plan` reaches the apply
//! engine and `--dry-run`; [`Plan::answers`] are the answers that reproduce it exactly
//! (`--save-answers`).
//!
//! Answer keys are the MSI property names of ../shared/design.md: `INSTALLDIR`, `RAMMB`,
//! `ROOTMB`, `HOMEMB`, `SWAPMB`, `TAPNAME`, `SUBNET`, `MONITOR`, `NOFIRSTBOOT`,
//! `ANSWERFILE` (on the command line only), plus `PROFILE`, `HOSTNAME` and `KIT`.
//! `PURGE` belongs to `uninstall`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use crate::facts::{self, HostFacts};
use crate::keys;
use crate::monitor::probe::{self, Choice, Kernels, Prober};
use crate::profile::{self, ImageSource, Loaded, Monitor, MonitorRequest, Role};
use crate::state::FirstBoot;

/// The extra tasks `TASKS` may name (Windows shortcuts and service; recorded by the
/// install, made by the Windows host integration).
pub const TASK_WORDS: &[&str] = &["startmenu", "desktop", "service"];

/// One answer and where it came from (`answers.toml:3`, `--set`, `--prefix`, `wizard`).
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// The value, as text.
    pub value: String,
    /// Where it was given.
    pub origin: String,
}

impl Answer {
    /// Where the value came from, in words that read inside a rule's parentheses:
    /// "set with --set RAMMB", "chosen in the wizard", "from answers.toml:3".
    pub fn origin_words(&self) -> String {
        origin_words(&self.origin)
    }
}

/// The origin every wizard answer carries.
pub const WIZARD_ORIGIN: &str = "wizard";

/// [`Answer::origin_words`] of an origin.
pub fn origin_words(origin: &str) -> String {
    if origin == WIZARD_ORIGIN {
        "chosen in the wizard".to_owned()
    } else if origin.starts_with("--") {
        format!("set with {origin}")
    } else {
        format!("from {origin}")
    }
}

/// Raw answers, later ones overriding earlier ones.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Answers(pub BTreeMap<String, Answer>);

impl Answers {
    /// Sets `key` (checked against [`crate::answer_keys::ALL`]).
    pub fn set(&mut self, key: &str, value: &str, origin: &str) -> Result<()> {
        let upper = key.trim();
        if crate::answer_keys::find(upper).is_none() {
            let known = crate::answer_keys::names();
            let hint = keys::nearest(upper, &known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_else(|| format!("; the keys are: {}", known.join(", ")));
            bail!("{origin}: unknown answer key `{upper}`{hint}");
        }
        if upper == "PURGE" {
            bail!(
                "{origin}: PURGE applies to `colinux-setup uninstall --purge`, not to an install"
            );
        }
        self.0.insert(
            upper.to_owned(),
            Answer {
                value: value.trim().to_owned(),
                origin: origin.to_owned(),
            },
        );
        Ok(())
    }

    /// Parses `KEY=VALUE` from `--set`.
    pub fn set_pair(&mut self, pair: &str) -> Result<()> {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--set `{pair}`: expected KEY=VALUE, e.g. --set RAMMB=256"))?;
        self.set(k, v, &format!("--set {}", k.trim()))
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&Answer> {
        self.0.get(key)
    }

    /// Reads an answer file (TOML: `KEY = value` lines, as `--save-answers` writes them).
    pub fn read_file(&mut self, path: &Path) -> Result<()> {
        let name = path.display().to_string();
        let text = crate::input::read_text(path, crate::input::ANSWERS_LIMIT, "an answer file")
            .map_err(|e| anyhow!("ANSWERFILE: {e}; give an answer file (TOML `KEY = value` lines, as --save-answers writes them)"))?;
        let doc = DeTable::parse(&text).map_err(|e| {
            let line = e.span().map(|s| keys::line_of(&text, s.start)).unwrap_or(1);
            anyhow!(
                "{name}:{line}: not a valid answer file (TOML `KEY = value` lines): {}",
                e.message().trim()
            )
        })?;
        for (k, v) in doc.get_ref() {
            let line = keys::line_of(&text, k.span().start);
            let origin = format!("{name}:{line}");
            let value = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.as_str().to_owned(),
                DeValue::Boolean(b) => if *b { "1" } else { "0" }.to_owned(),
                other => bail!(
                    "{origin}: {}: expected a string, number or true/false, not a {}",
                    k.get_ref(),
                    other.type_str()
                ),
            };
            if k.get_ref() == "ANSWERFILE" {
                bail!("{origin}: ANSWERFILE cannot be given inside an answer file");
            }
            self.set(k.get_ref(), &value, &origin)?;
        }
        Ok(())
    }
}

/// An image of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct ImagePlan {
    /// root or home.
    pub role: Role,
    /// File name.
    pub file: String,
    /// Full path.
    pub path: PathBuf,
    /// Filesystem level (`ext3`, `ext4-compat`).
    pub fs: image_builder::FsLevel,
    /// Type in fstab (the level's).
    pub fstab_type: &'static str,
    /// Size in MB.
    pub size_mb: u64,
    /// Why that size.
    pub size_rule: String,
    /// Guest mount point.
    pub mount: String,
    /// Block device index.
    pub cobd: u8,
    /// Guest device under the plan's monitor.
    pub device: String,
    /// What fills it.
    pub source: SourcePlan,
    /// Guest paths a root rebuild keeps from the old image (profile `preserve`).
    pub preserve: Vec<String>,
}

/// What fills an image.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourcePlan {
    /// The host's static busybox and the directories a Linux root needs.
    Busybox {
        /// The busybox binary.
        busybox: PathBuf,
    },
    /// The kit's `rootfs/` folder.
    KitRootfs {
        /// The folder.
        dir: PathBuf,
    },
    /// The kit's root filesystem archive (kit.toml role `rootfs`), streamed into the
    /// image; what it holds was counted from its headers when the plan was made.
    KitArchive {
        /// The archive.
        file: PathBuf,
        /// Its entries.
        entries: u64,
        /// Bytes of file data in it.
        file_bytes: u64,
    },
    /// Only the users' home folders.
    Empty,
}

/// The swap image.
#[derive(Clone, Debug, Serialize)]
pub struct SwapPlan {
    /// File name.
    pub file: String,
    /// Full path.
    pub path: PathBuf,
    /// Size in MB.
    pub size_mb: u64,
    /// Why.
    pub size_rule: String,
    /// Block device index.
    pub cobd: u8,
    /// Guest device.
    pub device: String,
}

/// The TAP adapter: made by the install's `tap` step (and by `colinux-setup tap
/// install`) on the network chosen here, the guest's address written into its rcS.
#[derive(Clone, Debug, Serialize)]
pub struct TapPlan {
    /// Connection name.
    pub name: String,
    /// The chosen /24.
    pub subnet: tap_setup::Subnet,
    /// The host side's address.
    pub host_ip: std::net::Ipv4Addr,
    /// The guest's address.
    pub guest_ip: std::net::Ipv4Addr,
    /// The guest's interface (`eth0`, or `eth1` after a slirp adapter).
    pub eth: u8,
    /// The user who will run the monitor and may attach to the adapter (Linux uid).
    pub owner: Option<u32>,
    /// The profile marks networking optional: without the right to create the adapter
    /// the install goes on without it.
    pub optional: bool,
    /// The install creates the adapter on this host: `false` for the coLinux monitor
    /// on a host other than Windows (the adapter belongs where coLinux runs).
    pub here: bool,
    /// Every candidate, and why it was or was not taken.
    pub candidates: Vec<Candidate>,
    /// What happens to the adapter.
    pub state: String,
}

/// One candidate subnet.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    /// `10.12.12.0/24`.
    pub subnet: String,
    /// Free on this host.
    pub free: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// A guest user.
#[derive(Clone, Debug, Serialize)]
pub struct UserPlan {
    /// Login.
    pub name: String,
    /// Uid.
    pub uid: u32,
    /// Gid.
    pub gid: u32,
    /// Home.
    pub home: String,
    /// Shell.
    pub shell: String,
    /// The /etc/shadow hash (`*` when locked).
    pub hash: String,
    /// A built-in profile's password and where it is written for users (`password_from`):
    /// shown by the plan and the finish page. Never a profile file's (the user's own), and
    /// never in the JSON plan nor the digest.
    #[serde(skip)]
    pub known_password: Option<KnownPassword>,
    /// The machine's user, whose name and password are the install's answers (profile
    /// `ask`); the wizard has a page for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asked: bool,
    /// Asked, and no password given yet: the plan can be shown (and the wizard asks),
    /// but the install refuses it ([`Plan::missing_password`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_password: bool,
}

/// A built-in profile's documented password ([`UserPlan::known_password`]).
#[derive(Clone, Debug, PartialEq)]
pub struct KnownPassword {
    /// The password.
    pub password: String,
    /// Where it is written (the Blackfin coLinux kit manual).
    pub from: String,
}

impl Plan {
    /// The refusal of a plan whose machine user has no password yet (profile `ask`):
    /// such a profile has no shared default, so the install needs one.
    pub fn missing_password(&self) -> Option<String> {
        self.users.iter().find(|u| u.needs_password).map(|u| {
            format!(
                "the machine's user {} needs a password, and profile {} has none of its own: give USERPASSWORD=... (or USERPASSWORDHASH=...) in an answer file or with --set, or run the wizard, which asks; USERNAME=... chooses the name",
                u.name, self.profile
            )
        })
    }
}

impl UserPlan {
    /// What the user needs to log in: "log in as uclinux with the password bf533 from the
    /// Blackfin coLinux kit manual; change it with passwd", for a built-in profile's
    /// documented password only.
    pub fn login_words(&self) -> Option<String> {
        self.known_password.as_ref().map(|k| {
            format!(
                "log in as {} with the password {} from {}; change it with passwd",
                self.name, k.password, k.from
            )
        })
    }
}

/// A cofs share.
#[derive(Clone, Debug, Serialize)]
pub struct SharePlan {
    /// Index.
    pub cofs: u8,
    /// Host folder (`.` resolved to the prefix).
    pub host: String,
    /// Guest mount point.
    pub mount: String,
    /// fstab options.
    pub options: String,
}

/// The first boot.
#[derive(Clone, Debug, Serialize)]
pub struct FirstBootPlan {
    /// Pending (to run), skipped (NOFIRSTBOOT) or none (the profile has no first boot).
    pub state: FirstBoot,
    /// What it does.
    pub description: Option<String>,
    /// Timeout in seconds.
    pub timeout_secs: Option<u64>,
    /// The guest folder the distribution is unpacked into.
    pub target: Option<String>,
    /// Commands run after the distribution is unpacked (profile `first_boot.run`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<String>,
    /// The user they run as, and who owns the target (`None`: root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// The kernel modules the first boot installs into /lib/modules: the folder
    /// `VERSION/` and its size in bytes (profile `first_boot.modules`, answer MODULES).
    pub modules: Option<ModulesPlan>,
}

/// Kernel modules to install at the first boot.
#[derive(Clone, Debug, Serialize)]
pub struct ModulesPlan {
    /// The host folder named after the kernel version (holds kernel/, modules.dep...).
    pub dir: PathBuf,
    /// The kernel version (the folder's name).
    pub version: String,
    /// Bytes of all its files.
    pub bytes: u64,
}

/// Everything an install will do, every value known.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Profile name.
    pub profile: String,
    /// `shipped:NAME` (a built-in profile; the word is data, kept as install-state and
    /// the digest have it) or the profile file. Users read "built-in" ([`describe`]).
    pub profile_origin: String,
    /// The install folder (absolute).
    pub prefix: PathBuf,
    /// Monitor.
    pub monitor: Monitor,
    /// How the monitor was chosen: what was asked, the probe's verdicts, and QEMU's
    /// accelerator ([`crate::monitor::probe`]).
    pub monitor_choice: Choice,
    /// Hostname.
    pub hostname: String,
    /// Guest RAM.
    pub ram_mb: u32,
    /// Why.
    pub ram_rule: String,
    /// `kernel=` of config.txt.
    pub kernel: String,
    /// The oldest guest kernel that must mount the images.
    pub guest_kernel: image_builder::KernelVersion,
    /// `--kit DIR`.
    pub kit: Option<PathBuf>,
    /// The kit's monitor, kernel and initrd files copied into the install folder
    /// ([`crate::kit_files`]); config.txt's `kernel=` and `initrd=` name the copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_files: Vec<crate::kit_files::MachineFile>,
    /// `initrd=` of config.txt (the kit's initrd, copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    /// Filesystem images, root first.
    pub images: Vec<ImagePlan>,
    /// Swap.
    pub swap: SwapPlan,
    /// eth0 slirp redirections (`None`: no slirp adapter).
    pub slirp: Option<String>,
    /// The host address the redirections listen on (`SLIRPHOST`; 127.0.0.1 unless an
    /// answer asks for another: a forwarded ssh port must not face the network by
    /// default). coLinux's slirp always listens on every interface (0.0.0.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slirp_host: Option<std::net::IpAddr>,
    /// The TAP adapter.
    pub tap: Option<TapPlan>,
    /// `ttys0=` of config.txt: the host's serial port given to the guest (`SERIAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The start-menu folder of the shortcuts (`STARTMENU`; Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_menu: Option<String>,
    /// Extra tasks (`TASKS`: words of [`TASK_WORDS`]; Windows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    /// Shares.
    pub shares: Vec<SharePlan>,
    /// Users.
    pub users: Vec<UserPlan>,
    /// First boot.
    pub first_boot: FirstBootPlan,
    /// SOURCE_DATE_EPOCH of the images.
    pub source_date_epoch: i64,
    /// /etc/fstab of the root image.
    pub fstab: String,
    /// config.txt's model; its text is [`Plan::config_text`].
    pub config: config_txt::Config,
    /// Things the user should know.
    pub warnings: Vec<String>,
    /// Answers that reproduce this plan exactly.
    pub answers: BTreeMap<String, String>,
}

impl Plan {
    /// The text of config.txt as the install writes it.
    pub fn config_text(&self) -> Result<String> {
        crate::machine::text(self, &self.config)
    }

    /// The plan's digest: identical plans have identical digests.
    ///
    /// The texts that say where a value came from (rules, warnings) are left out, so the
    /// same values given by `--set` or by an answer file give the same digest.
    pub fn digest(&self) -> String {
        let mut p = self.clone();
        // How the monitor was found (and the accelerator, which decides only how fast it
        // runs) is not part of what is installed: the monitor itself is.
        p.monitor_choice.verdicts.clear();
        p.monitor_choice.why.clear();
        p.monitor_choice.requested.clear();
        p.monitor_choice.accel = None;
        p.ram_rule.clear();
        p.swap.size_rule.clear();
        p.warnings.clear();
        for i in &mut p.images {
            i.size_rule.clear();
        }
        // What the host looks like around the TAP adapter is not part of what is installed.
        if let Some(t) = &mut p.tap {
            t.state.clear();
            t.candidates.clear();
        }
        let json = serde_json::to_vec(&p).unwrap_or_default();
        hex(&Sha256::digest(&json))
    }

    /// The answer file that reproduces this plan (`--save-answers`).
    pub fn answer_file(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# colinux-setup answers (profile {}); reproduce with: colinux-setup install --unattended --answers FILE",
            self.profile
        );
        for (k, v) in &self.answers {
            let quoted = toml_string(v);
            if v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty() && v.len() < 16 {
                let _ = writeln!(s, "{k} = {v}");
            } else {
                let _ = writeln!(s, "{k} = {quoted}");
            }
        }
        s
    }

    /// The image files, root and home first, then swap: (file name, path, MB).
    pub fn files(&self) -> Vec<(String, PathBuf, u64)> {
        let mut v: Vec<_> = self
            .images
            .iter()
            .map(|i| (i.file.clone(), i.path.clone(), i.size_mb))
            .collect();
        v.push((
            self.swap.file.clone(),
            self.swap.path.clone(),
            self.swap.size_mb,
        ));
        v
    }
}

fn toml_string(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The default install folder when `INSTALLDIR` is not given.
pub fn default_prefix(profile: &profile::Profile) -> PathBuf {
    if cfg!(windows) {
        return PathBuf::from(
            profile
                .windows_prefix
                .clone()
                .unwrap_or_else(|| format!("C:\\coLinux-{}", profile.name)),
        );
    }
    let base = if rustix_is_root() {
        PathBuf::from("/var/lib/colinux-setup")
    } else {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(".local/share/colinux-setup")
    };
    base.join(&profile.name)
}

/// A folder to give as an example in messages, one of this host's kind: `C:\coLinux` on
/// Windows, a folder in the home folder (or /var/lib for root) on Linux.
pub fn example_folder() -> String {
    if cfg!(windows) {
        return "C:\\coLinux".to_owned();
    }
    if rustix_is_root() {
        return "/var/lib/colinux-setup/machine".to_owned();
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join("colinux").display().to_string())
        .unwrap_or_else(|| "~/colinux".to_owned())
}

#[cfg(unix)]
fn rustix_is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(unix))]
fn rustix_is_root() -> bool {
    false
}

fn number(a: &Answer, key: &str) -> Result<u64> {
    a.value.parse::<u64>().map_err(|_| {
        anyhow!(
            "{key}={} ({}): not a whole number of MB; write e.g. {key}=256",
            a.value,
            a.origin
        )
    })
}

fn flag(a: &Answer, key: &str) -> Result<bool> {
    match a.value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" | "" => Ok(false),
        _ => bail!("{key}={} ({}): expected 1 or 0", a.value, a.origin),
    }
}

/// Resolves answers against the profile and the host into one plan; `prober` finds
/// the monitors that run guests here (a real boot of the smallest guest, or a table in
/// tests).
pub fn resolve(
    answers: &Answers,
    loaded: &Loaded,
    host: &HostFacts,
    prober: &dyn Prober,
) -> Result<Plan> {
    let p = &loaded.profile;
    let mut warnings = Vec::new();
    let (request, request_origin) = match answers.get("MONITOR") {
        Some(a) => (
            MonitorRequest::parse(&a.value).ok_or_else(|| {
                anyhow!(
                    "MONITOR={} ({}): unknown monitor; use auto, colinux, uml, qemu or wsl",
                    a.value,
                    a.origin
                )
            })?,
            a.origin.clone(),
        ),
        None => (
            crate::host::default_monitor(p.monitor),
            format!("profile {}", p.name),
        ),
    };
    #[cfg(windows)]
    if request == MonitorRequest::Given(Monitor::Uml) {
        bail!(
            "MONITOR=uml: User-mode Linux runs only on Linux hosts; on Windows use MONITOR=colinux (the default here)"
        );
    }
    let prefix = match answers.get("INSTALLDIR") {
        Some(a) if a.value.is_empty() => bail!("INSTALLDIR ({}): empty", a.origin),
        Some(a) => std::path::absolute(&a.value)
            .with_context(|| format!("INSTALLDIR={} ({}): not a usable path", a.value, a.origin))?,
        None => default_prefix(p),
    };
    let kit = match answers.get("KIT") {
        Some(a) => Some(
            std::path::absolute(&a.value)
                .with_context(|| format!("KIT={} ({}): not a usable path", a.value, a.origin))?,
        ),
        None => None,
    };
    let no_first_boot = match answers.get("NOFIRSTBOOT") {
        Some(a) => flag(a, "NOFIRSTBOOT")?,
        None => false,
    };
    // The monitor must run guests here when the plan boots the machine.
    let boots = p.first_boot.is_some() && !no_first_boot;
    let kernels = probe_kernels(kit.as_deref(), p, &prefix);
    let monitor_choice = probe::choose(request, &request_origin, boots, &kernels, prober)?;
    let monitor = monitor_choice.monitor;
    check_prefix_rules(&prefix, monitor, p, answers)?;
    let hostname = match answers.get("HOSTNAME") {
        Some(a) => {
            profile::check_hostname(&a.value)
                .map_err(|e| anyhow!("HOSTNAME ({}): {e}", a.origin))?;
            a.value.clone()
        }
        None => p.hostname.clone(),
    };

    // RAM and sizes.
    let rec = facts::recommend(host, p, monitor);
    warnings.extend(rec.notes.iter().cloned());
    let limits = facts::ram_limits(host, p, monitor);
    let (ram_mb, ram_rule) = match answers.get("RAMMB") {
        Some(a) => {
            let v = number(a, "RAMMB")?;
            if v > u64::from(limits.max_mb) {
                bail!(
                    "RAMMB={v} ({}): larger than this host allows: {}, so at most {} MB; give RAMMB={} or less (recommended: {})",
                    a.origin,
                    limits.max_rule,
                    limits.max_mb,
                    limits.max_mb,
                    rec.ram.mb
                );
            }
            if v < u64::from(limits.min_mb) {
                bail!(
                    "RAMMB={v} ({}): too small: {}; give RAMMB={} or more",
                    a.origin,
                    limits.min_rule,
                    limits.min_mb
                );
            }
            if v % u64::from(limits.multiple_of) != 0 {
                bail!(
                    "RAMMB={v} ({}): coLinux needs a multiple of 4 MB (older coLinux kernels crash otherwise); give RAMMB={}",
                    a.origin,
                    v - v % 4
                );
            }
            (v, a.origin_words())
        }
        None => (rec.ram.mb, rec.ram.rule.clone()),
    };
    let ram_mb = u32::try_from(ram_mb).map_err(|_| anyhow!("RAMMB: {ram_mb} is too large"))?;

    let kernel_version: image_builder::KernelVersion = p
        .guest_kernel
        .parse()
        .map_err(|e| anyhow!("profile {}: guest_kernel: {e}", p.name))?;
    let mut images = Vec::new();
    for spec in &p.images {
        let key = spec.role.size_key();
        let (size_mb, size_rule) = match answers.get(key) {
            Some(a) => {
                let v = number(a, key)?;
                profile::check_size_mb(v).map_err(|e| anyhow!("{key}={v} ({}): {e}", a.origin))?;
                if v < spec.size_mb {
                    warnings.push(format!(
                        "{key}={v} is below the profile's recommended {} MB ({})",
                        spec.size_mb, spec.size_rule
                    ));
                }
                (v, a.origin_words())
            }
            None => (spec.size_mb, spec.size_rule.clone()),
        };
        let level = image_builder::FsLevel::resolve(&spec.fs, Some(kernel_version))
            .map_err(|e| anyhow!("profile {}: {}: {e}", p.name, spec.file))?;
        let source = match spec.source {
            ImageSource::Empty => SourcePlan::Empty,
            ImageSource::Kit => kit_root(kit.as_deref(), &p.name)?,
            // A kit's rootfs/ folder, when present, replaces the busybox root; a kit
            // without one (only a distribution, kernels) keeps it. A kit folder that
            // does not exist is reported by the host check.
            ImageSource::Busybox => match kit
                .as_ref()
                .filter(|k| !k.is_dir() || k.join("rootfs").is_dir())
            {
                Some(k) => SourcePlan::KitRootfs {
                    dir: k.join("rootfs"),
                },
                None => {
                    let busybox = find_busybox();
                    warnings.extend(crate::guest::busybox_misfit(&busybox, monitor));
                    SourcePlan::Busybox { busybox }
                }
            },
        };
        let (size_mb, size_rule) = match (&source, spec.headroom_pct) {
            (
                &SourcePlan::KitArchive {
                    entries,
                    file_bytes,
                    ref file,
                },
                Some(pct),
            ) => {
                let need = content_mb(entries, file_bytes);
                match answers.get(key) {
                    Some(a) if size_mb < need => bail!(
                        "{key}={size_mb} ({}): the kit's root filesystem {} holds {} MB in {entries} files, which needs an image of at least {need} MB; give {key}={} or more",
                        a.origin,
                        file.display(),
                        file_bytes >> 20,
                        need + need * u64::from(pct) / 100
                    ),
                    Some(_) => (size_mb, size_rule),
                    None => {
                        let auto = need + need * u64::from(pct) / 100;
                        (
                            auto.max(spec.size_mb),
                            format!(
                                "the kit's root filesystem holds {} MB in {entries} files: {need} MB as an image, plus {pct}% for your work, at least {} MB",
                                file_bytes >> 20,
                                spec.size_mb
                            ),
                        )
                    }
                }
            }
            _ => (size_mb, size_rule),
        };
        images.push(ImagePlan {
            role: spec.role,
            file: spec.file.clone(),
            path: prefix.join(&spec.file),
            fs: level,
            fstab_type: level.fstab_type(),
            size_mb,
            size_rule,
            mount: spec.mount.clone(),
            cobd: spec.cobd,
            device: monitor.device(spec.cobd),
            source,
            preserve: spec.preserve.clone(),
        });
    }
    images.sort_by_key(|i| (i.role != Role::Root, i.cobd));
    let swap_rec = (u64::from(ram_mb) * u64::from(p.swap.factor)).max(p.swap.min_mb);
    let (swap_mb, swap_rule) = match answers.get("SWAPMB") {
        Some(a) => {
            let v = number(a, "SWAPMB")?;
            profile::check_size_mb(v).map_err(|e| anyhow!("SWAPMB={v} ({}): {e}", a.origin))?;
            if v <= u64::from(ram_mb) {
                warnings.push(format!(
                    "SWAPMB={v} is not larger than the guest's RAM ({ram_mb} MB); the Blackfin coLinux kit manual asks for more swap than RAM"
                ));
            }
            (v, a.origin_words())
        }
        None => (
            swap_rec,
            format!(
                "larger than the guest's RAM: {} × {ram_mb} MB, at least {} MB",
                p.swap.factor, p.swap.min_mb
            ),
        ),
    };
    // The one check of every size (the profile's were checked when it was loaded);
    // RAM × factor is checked here, where it is computed.
    profile::check_size_mb(swap_mb).map_err(|e| anyhow!("SWAPMB: {e}"))?;
    let swap = SwapPlan {
        file: p.swap.file.clone(),
        path: prefix.join(&p.swap.file),
        size_mb: swap_mb,
        size_rule: swap_rule,
        cobd: p.swap.cobd,
        device: monitor.device(p.swap.cobd),
    };

    // Network.
    let slirp = match answers.get("SLIRP") {
        Some(a) => {
            let v = a.value.trim();
            if !v.is_empty() {
                let parsed = config_txt::parse_redirections(v).map_err(|e| {
                    anyhow!(
                        "SLIRP={v} ({}): {e}; write redirections as PROTO:HOSTPORT:GUESTPORT joined by /, e.g. tcp:333:22/udp:69:69",
                        a.origin
                    )
                })?;
                // The daemon takes any number and truncates it; a port it cannot mean is
                // refused here instead of redirecting somewhere else.
                if let Some(r) = parsed.list.iter().find(|r| {
                    let last = |p: i32| i64::from(p) + i64::from(r.count) - 1;
                    r.host_port < 1
                        || r.guest_port < 1
                        || last(r.host_port) > 65535
                        || last(r.guest_port) > 65535
                }) {
                    bail!(
                        "SLIRP={v} ({}): {r}: ports are 1..65535; write e.g. tcp:333:22",
                        a.origin
                    );
                }
                if parsed.ignored_from.is_some() {
                    bail!(
                        "SLIRP={v} ({}): colinux-daemon would silently ignore part of it; write redirections as PROTO:HOSTPORT:GUESTPORT joined by /, e.g. tcp:333:22/udp:69:69",
                        a.origin
                    );
                }
            }
            Some(v.to_owned())
        }
        None => p.network.slirp.as_ref().map(|r| r.join("/")),
    };
    let slirp_host = slirp_host(answers, slirp.as_deref(), monitor, &mut warnings)?;
    if monitor == Monitor::Uml
        && let Some(r) = slirp.as_deref().filter(|r| !r.is_empty())
    {
        warnings.push(format!(
            "eth0's redirections ({r}) are not applied: User-mode Linux's slirp has none; with --monitor qemu the host reaches these guest ports"
        ));
    }
    let (serial, start_menu, tasks) = extras(answers, p, monitor)?;
    let tap = match &p.network.tap {
        Some(t) => Some(plan_tap(t, answers, u8::from(slirp.is_some()), monitor)?),
        None => {
            for key in ["TAPNAME", "SUBNET"] {
                if let Some(a) = answers.get(key) {
                    bail!(
                        "{key} ({}): profile {} has no TAP adapter",
                        a.origin,
                        p.name
                    );
                }
            }
            None
        }
    };
    let shares = p
        .shares
        .iter()
        .map(|s| SharePlan {
            cofs: s.cofs,
            host: if s.host == "." {
                prefix.display().to_string()
            } else {
                s.host.clone()
            },
            mount: s.mount.clone(),
            options: s.options.clone(),
        })
        .collect();
    let users = p
        .users
        .iter()
        .map(|u| {
            let (name, home) = if u.ask {
                asked_name(u, p, answers, &images)?
            } else {
                (u.name.clone(), u.home.clone())
            };
            let asked = if u.ask {
                asked_hash(&name, &hostname, p.source_date_epoch, answers)?
            } else {
                None
            };
            let needs_password = u.ask && asked.is_none();
            let hash = match (&u.password, &u.password_hash) {
                _ if u.ask => asked.unwrap_or_else(|| "!".to_owned()),
                (_, Some(h)) => h.clone(),
                (Some(pw), None) => shadow_hash(pw, &u.name, &hostname, p.source_date_epoch)?,
                (None, None) => "*".to_owned(),
            };
            Ok(UserPlan {
                name,
                uid: u.uid,
                gid: u.gid,
                home,
                shell: u.shell.clone(),
                hash,
                asked: u.ask,
                needs_password,
                known_password: match (&loaded.file, &u.password, &u.password_from) {
                    (None, Some(password), Some(from)) => Some(KnownPassword {
                        password: password.clone(),
                        from: from.clone(),
                    }),
                    _ => None,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let first_boot = match &p.first_boot {
        None => FirstBootPlan {
            state: FirstBoot::None,
            description: None,
            timeout_secs: None,
            target: None,
            run: Vec::new(),
            run_as: None,
            modules: None,
        },
        Some(fb) => FirstBootPlan {
            state: if no_first_boot {
                FirstBoot::Skipped
            } else {
                FirstBoot::Pending
            },
            description: Some(fb.description.clone()),
            timeout_secs: Some(fb.timeout_secs),
            target: Some(if fb.target == profile::HOME_TARGET {
                users
                    .iter()
                    .find(|u| u.uid != 0)
                    .map(|u| u.home.clone())
                    .ok_or_else(|| {
                        anyhow!("first_boot.target `~`: the profile has no user but root")
                    })?
            } else {
                fb.target.clone()
            }),
            run: fb.run.clone(),
            run_as: if fb.target == profile::HOME_TARGET {
                users.iter().find(|u| u.uid != 0).map(|u| u.name.clone())
            } else {
                None
            },
            modules: match answers.get("MODULES") {
                Some(a) if !flag(a, "MODULES")? => None,
                _ if no_first_boot || !fb.modules => None,
                _ => find_modules(kit.as_deref(), monitor)?,
            },
        },
    };
    if let (Some(m), Some(root)) = (
        &first_boot.modules,
        images.iter().find(|i| i.role == Role::Root),
    ) {
        // What busybox and the metadata take, plus the modules, must fit.
        let need_mb = (m.bytes >> 20) + 32;
        if root.size_mb < need_mb {
            bail!(
                "ROOTMB={}: the root image is too small for the kernel modules {} ({} MB) the first boot installs; \
                 give ROOTMB={need_mb} or more, or MODULES=0 to install none",
                root.size_mb,
                m.version,
                m.bytes >> 20
            );
        }
    }
    let kernel = match monitor {
        Monitor::Uml => p
            .kernel
            .as_ref()
            .map(|k| prefix.join(k).display().to_string())
            .unwrap_or_else(|| find_tool("linux.uml").display().to_string()),
        Monitor::Colinux => prefix
            .join(p.kernel.as_deref().unwrap_or("vmlinux"))
            .display()
            .to_string(),
        // A kernel put beside config.txt before (scripts/qemu-kernel), else the name the
        // kit's copy or scripts/qemu-kernel gives it.
        Monitor::Qemu => prefix_qemu_kernel(&prefix)
            .unwrap_or_else(|| prefix.join("vmlinuz"))
            .display()
            .to_string(),
        // WSL boots its own kernel; config.txt's kernel= has no WSL meaning.
        Monitor::Wsl => "wsl".to_owned(),
    };
    // The kit's machine files, copied into the prefix: config.txt names the copies.
    let machine = match &kit {
        Some(k) => {
            let mut reserved: Vec<String> = images.iter().map(|i| i.file.clone()).collect();
            reserved.extend([
                swap.file.clone(),
                "config.txt".to_owned(),
                crate::state::STATE_FILE.to_owned(),
            ]);
            crate::kit_files::select(k, monitor, p.kernel.as_deref(), &reserved)?
        }
        None => crate::kit_files::Selection::default(),
    };
    let kernel = machine
        .kernel
        .as_ref()
        .map_or(kernel, |f| prefix.join(f).display().to_string());
    // QEMU's kernel needs its initramfs (the virtio drivers) at every boot.
    let qemu_initrd = (monitor == Monitor::Qemu && machine.initrd.is_none())
        .then(|| prefix.join("initrd.img"))
        .filter(|i| i.is_file());
    if monitor == Monitor::Qemu && !Path::new(&kernel).is_file() && machine.kernel.is_none() {
        warnings.push(format!(
            "config.txt names {kernel} as the QEMU kernel, which is not there yet; the machine boots in QEMU \
             once an x86-64 kernel and its initrd.img are there (`scripts/qemu-kernel {}` puts them there), \
             or install it from a kit that carries one (--kit DIR)",
            prefix.display()
        ));
    }

    let mut plan = Plan {
        profile: p.name.clone(),
        profile_origin: loaded.origin.clone(),
        prefix: prefix.clone(),
        monitor,
        monitor_choice,
        hostname,
        ram_mb,
        ram_rule,
        kernel,
        guest_kernel: kernel_version,
        kit,
        machine_files: machine.files,
        initrd: machine
            .initrd
            .as_ref()
            .map(|f| prefix.join(f))
            .or(qemu_initrd)
            .map(|f| f.display().to_string()),
        images,
        swap,
        slirp,
        slirp_host,
        tap,
        serial,
        start_menu,
        tasks,
        shares,
        users,
        first_boot,
        source_date_epoch: p.source_date_epoch,
        fstab: String::new(),
        config: config_txt::Config::default(),
        warnings,
        answers: BTreeMap::new(),
    };
    let mut a = BTreeMap::new();
    a.insert(
        "PROFILE".to_owned(),
        match &loaded.file {
            Some(f) => f.display().to_string(),
            None => p.name.clone(),
        },
    );
    a.insert("INSTALLDIR".to_owned(), prefix.display().to_string());
    // What was asked (`auto` stays `auto`: an answer file adapts to each host).
    a.insert("MONITOR".to_owned(), request.as_str().to_owned());
    a.insert("HOSTNAME".to_owned(), plan.hostname.clone());
    a.insert("RAMMB".to_owned(), ram_mb.to_string());
    for img in &plan.images {
        a.insert(img.role.size_key().to_owned(), img.size_mb.to_string());
    }
    a.insert("SWAPMB".to_owned(), plan.swap.size_mb.to_string());
    if let Some(t) = &plan.tap {
        a.insert("TAPNAME".to_owned(), t.name.clone());
        a.insert("SUBNET".to_owned(), t.subnet.to_string());
    }
    a.insert(
        "NOFIRSTBOOT".to_owned(),
        if no_first_boot { "1" } else { "0" }.to_owned(),
    );
    if let Some(k) = &plan.kit {
        a.insert("KIT".to_owned(), k.display().to_string());
    }
    if let Some(m) = answers.get("MODULES") {
        a.insert("MODULES".to_owned(), m.value.clone());
    }
    // The asked user: its name and the hash, never the password itself.
    if let Some(u) = plan.users.iter().find(|u| u.asked) {
        a.insert("USERNAME".to_owned(), u.name.clone());
        if !u.needs_password {
            a.insert("USERPASSWORDHASH".to_owned(), u.hash.clone());
        }
    }
    // Given only when asked for, so the answers of plans without them stay as they were.
    for key in [
        "SLIRP",
        "SLIRPHOST",
        "SERIAL",
        "STARTMENU",
        "TASKS",
        "TESTSIGNING",
    ] {
        if let Some(given) = answers.get(key) {
            let v = match key {
                // TESTSIGNING=1 lets the install accept a test-signed driver (loudly).
                "TESTSIGNING" => given.value.clone(),
                "SLIRP" => plan.slirp.clone().unwrap_or_default(),
                "SLIRPHOST" => plan
                    .slirp_host
                    .map_or_else(|| given.value.clone(), |h| h.to_string()),
                "SERIAL" => plan.serial.clone().unwrap_or_default(),
                "STARTMENU" => plan.start_menu.clone().unwrap_or_default(),
                _ if plan.tasks.is_empty() => "none".to_owned(),
                _ => plan.tasks.join(","),
            };
            a.insert(key.to_owned(), v);
        }
    }
    // SERVICE=1 (the machine as a Windows service) is checked here, before any change.
    a.extend(crate::service::step::plan_answers(answers, monitor)?);
    // PUTTYSESSION / PUTTYUSER: checked against config.txt once it is made (below).
    a.extend(crate::putty::step::plan_answers(answers)?);
    a.extend(crate::wsl::plan_answers(answers, monitor)?);
    // DRIVERSIGNER: the administrator's pin for the kit's driver, checked now.
    if let Some(given) = answers.get("DRIVERSIGNER") {
        crate::driver::signer::pin_from_arg(&given.value)
            .map_err(|e| anyhow!("DRIVERSIGNER ({}): {e}", given.origin))?;
        a.insert("DRIVERSIGNER".to_owned(), given.value.clone());
    }
    plan.answers = a;
    if monitor == Monitor::Qemu {
        // virtio disks are named in probe order, so cobd0, cobd2 are vda, vdb: a device
        // is named by its rank among the machine's indices, not by its index.
        let mut indices: Vec<u8> = plan.images.iter().map(|i| i.cobd).collect();
        indices.push(plan.swap.cobd);
        indices.sort_unstable();
        let rank = |n: u8| {
            indices
                .iter()
                .position(|&i| i == n)
                .unwrap_or(usize::from(n))
        };
        for img in &mut plan.images {
            img.device = Monitor::Qemu.device(u8::try_from(rank(img.cobd)).unwrap_or(img.cobd));
        }
        plan.swap.device =
            Monitor::Qemu.device(u8::try_from(rank(plan.swap.cobd)).unwrap_or(plan.swap.cobd));
    }
    crate::wsl::adjust(&mut plan)?;
    plan.fstab = crate::guest::fstab(&plan);
    plan.config = crate::machine::model(&plan);
    // Written once here so that a plan whose config.txt cannot be written (or would not
    // read back) is refused before any change.
    plan.config_text()?;
    crate::putty::step::check(&plan)?;
    Ok(plan)
}

/// The loopback address slirp port forwards listen on unless `SLIRPHOST` asks.
pub const SLIRP_HOST_DEFAULT: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Where the machine's slirp port forwards listen (`None` without forwards), what each
/// monitor really does with them said in a warning: QEMU listens where asked (127.0.0.1
/// by default); coLinux's slirp always listens on every interface (`slirp/socket.c`,
/// colinux-spec.md §4.3), so another address is refused; User-mode Linux's slirp has no
/// forwards at all.
fn slirp_host(
    answers: &Answers,
    redirs: Option<&str>,
    monitor: Monitor,
    warnings: &mut Vec<String>,
) -> Result<Option<std::net::IpAddr>> {
    let given = match answers.get("SLIRPHOST") {
        Some(a) => Some((
            a.value.trim().parse::<std::net::IpAddr>().map_err(|_| {
                anyhow!(
                    "SLIRPHOST={} ({}): not an IP address; give the host address the port forwards listen on, \
                     e.g. 127.0.0.1 (this host only, the default) or 0.0.0.0 (every interface)",
                    a.value,
                    a.origin
                )
            })?,
            a.origin.clone(),
        )),
        None => None,
    };
    let Some(redirs) = redirs.filter(|r| !r.trim().is_empty()) else {
        return Ok(None);
    };
    let host = match (monitor, given) {
        (Monitor::Colinux, Some((h, origin))) if !h.is_unspecified() => bail!(
            "SLIRPHOST={h} ({origin}): coLinux's slirp always listens on every interface of the host; \
             it cannot be limited to one address: give SLIRPHOST=0.0.0.0, or no redirections (SLIRP=)"
        ),
        (Monitor::Colinux, _) => {
            warnings.push(format!(
                "the port forwards {redirs} listen on every interface of the host (coLinux's slirp cannot be \
                 limited to this host): machines on the network can reach them; keep them to this host with a firewall rule"
            ));
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        }
        (Monitor::Uml, given) => {
            warnings.push(format!(
                "the port forwards {redirs} are not applied in User-mode Linux (its slirp has none); \
                 reach the guest through a TAP adapter, or boot it with --monitor qemu"
            ));
            given.map_or(SLIRP_HOST_DEFAULT, |(h, _)| h)
        }
        (Monitor::Qemu | Monitor::Wsl, given) => given.map_or(SLIRP_HOST_DEFAULT, |(h, _)| h),
    };
    if host.is_unspecified() && monitor == Monitor::Qemu {
        warnings.push(format!(
            "SLIRPHOST={host}: the port forwards {redirs} listen on every interface of the host; machines on the network can reach them"
        ));
    }
    Ok(Some(host))
}

/// `SERIAL`, `STARTMENU` and `TASKS`, checked; the last two default on Windows only.
fn extras(
    answers: &Answers,
    p: &profile::Profile,
    monitor: Monitor,
) -> Result<(Option<String>, Option<String>, Vec<String>)> {
    let serial = match answers.get("SERIAL") {
        Some(a) if a.value.is_empty() || a.value.eq_ignore_ascii_case("none") => None,
        Some(a) => {
            let v = &a.value;
            if v.len() > 64 || v.contains([',', '#', '"', ' ']) || v.chars().any(char::is_control) {
                bail!(
                    "SERIAL={v} ({}): a serial port is a device name without spaces, commas, # or quotes, e.g. COM1; empty for none",
                    a.origin
                );
            }
            if monitor != Monitor::Colinux {
                // config.txt's ttys0= is coLinux's alone: UML and QEMU would drop it.
                bail!(
                    "SERIAL={v} ({}): the {} monitor gives the guest no host serial port \
                     (config.txt's ttys0= is coLinux's); leave SERIAL empty, or use the \
                     colinux monitor",
                    a.origin,
                    monitor.as_str()
                );
            }
            Some(v.clone())
        }
        None => None,
    };
    let start_menu = match answers.get("STARTMENU") {
        Some(a) => {
            let v = &a.value;
            if v.is_empty()
                || v.len() > 120
                || v.contains(['\\', '/', ':', '*', '?', '"', '<', '>', '|'])
            {
                bail!(
                    "STARTMENU={v} ({}): a start-menu folder name is 1..120 characters without \\ / : * ? \" < > |",
                    a.origin
                );
            }
            Some(v.clone())
        }
        None => cfg!(windows).then(|| format!("coLinux ({})", p.name)),
    };
    let tasks = match answers.get("TASKS") {
        Some(a) if a.value.is_empty() || a.value.eq_ignore_ascii_case("none") => Vec::new(),
        Some(a) => {
            let mut v = Vec::new();
            for w in a.value.split(',').map(|w| w.trim().to_ascii_lowercase()) {
                if !TASK_WORDS.contains(&w.as_str()) {
                    bail!(
                        "TASKS={} ({}): unknown task `{w}`; the tasks are {} (comma-separated), or none",
                        a.value,
                        a.origin,
                        TASK_WORDS.join(", ")
                    );
                }
                if !v.contains(&w) {
                    v.push(w);
                }
            }
            v.sort_by_key(|w| TASK_WORDS.iter().position(|t| t == w));
            v
        }
        None if cfg!(windows) => vec!["startmenu".to_owned()],
        None => Vec::new(),
    };
    Ok((serial, start_menu, tasks))
}

fn check_prefix_rules(
    prefix: &Path,
    monitor: Monitor,
    p: &profile::Profile,
    answers: &Answers,
) -> Result<()> {
    let origin = answers
        .get("INSTALLDIR")
        .map_or_else(|| "default".to_owned(), |a| a.origin.clone());
    let text = prefix.display().to_string();
    if text.contains('#') {
        bail!(
            "INSTALLDIR={text} ({origin}): contains `#`, which always starts a comment in config.txt; choose a folder without `#`"
        );
    }
    if prefix.is_file() {
        bail!("INSTALLDIR={text} ({origin}): is a file, not a folder; choose a folder");
    }
    match monitor {
        Monitor::Colinux => {
            if text.contains(' ') {
                bail!(
                    "INSTALLDIR={text} ({origin}): contains a space; coLinux cannot use an install path with spaces \
                     (the Blackfin coLinux kit manual: \"the path of the coLinux installation must not contain any spaces\"; its service \
                     and helper command lines drop quotes); choose a folder without spaces, e.g. {}",
                    example_folder()
                );
            }
            if !text.is_ascii() {
                bail!(
                    "INSTALLDIR={text} ({origin}): has non-ASCII characters, which coLinux's driver and daemon read in \
                     different code pages; choose an ASCII path"
                );
            }
            let longest = p
                .images
                .iter()
                .map(|i| i.file.len())
                .chain([p.swap.file.len()])
                .max()
                .unwrap_or(0);
            let len = text.len() + 1 + longest;
            if len > config_txt::model::MAX_PATH {
                bail!(
                    "INSTALLDIR={text} ({origin}): image paths would be {len} characters; colinux-daemon reads at most {}; choose a shorter folder",
                    config_txt::model::MAX_PATH
                );
            }
        }
        Monitor::Wsl => {}
        Monitor::Uml | Monitor::Qemu => {
            if text.contains(',') {
                bail!(
                    "INSTALLDIR={text} ({origin}): contains a comma, which {} reads as an option separator in disk \
                     arguments; choose a folder without commas",
                    monitor.as_str()
                );
            }
        }
    }
    Ok(())
}

fn plan_tap(t: &profile::Tap, answers: &Answers, eth: u8, monitor: Monitor) -> Result<TapPlan> {
    // The adapter is made on this host unless the machine is coLinux's on a host that
    // is not Windows (then on Windows, later): its name follows that host's rules.
    let here = cfg!(windows) || monitor != Monitor::Colinux;
    let name = match answers.get("TAPNAME") {
        Some(a) => {
            let checked = if here {
                tap_setup::check_name_here(&a.value)
            } else {
                tap_setup::check_name(&a.value)
            };
            checked.map_err(|e| anyhow!("TAPNAME={} ({}): {e}", a.value, a.origin))?;
            a.value.clone()
        }
        None => t.name.clone(),
    };
    let pinned = match answers.get("SUBNET") {
        Some(a) => Some(
            tap_setup::Subnet::parse(&a.value)
                .map_err(|e| anyhow!("SUBNET ({}): {e}", a.origin))?,
        ),
        None => None,
    };
    let candidates = t
        .subnets
        .iter()
        .map(|s| tap_setup::Subnet::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut host = crate::netfacts::host();
    let choice =
        tap_setup::choose_subnet(host.as_mut(), &candidates, pinned, &name).map_err(|e| {
            let key = if pinned.is_some() {
                "SUBNET"
            } else {
                "SUBNET (from the profile's candidates)"
            };
            anyhow!("{key}: {e}; give a free network with SUBNET=10.x.y.0/24")
        })?;
    let existing = if here {
        host.find(&name).ok().flatten()
    } else {
        None
    };
    let state = match existing {
        _ if !here => "not created on this host: the coLinux monitor runs on Windows; create it there with `colinux-setup tap install`".to_owned(),
        Some(a) if a.is_tap => format!("exists on this host; reused with the address {}/24", choice.subnet.host_ip()),
        Some(_) => bail!("TAPNAME={name}: an interface of that name exists on this host and is not a TAP adapter; choose another name"),
        None => "to be created by the install".to_owned(),
    };
    let subnet = choice.subnet;
    Ok(TapPlan {
        name,
        host_ip: subnet.host_ip(),
        guest_ip: subnet.guest_ip(),
        subnet,
        eth,
        owner: crate::netfacts::monitor_user(),
        optional: t.optional,
        here,
        candidates: choice
            .candidates
            .into_iter()
            .map(|c| Candidate {
                subnet: c.subnet,
                free: c.reason.is_none(),
                reason: c.reason,
            })
            .collect(),
        state,
    })
}

/// The SHA-512 crypt hash of `password` for /etc/shadow. The salt is derived from the
/// user, hostname and SOURCE_DATE_EPOCH, so the same plan gives the same image.
pub fn shadow_hash(password: &str, user: &str, hostname: &str, epoch: i64) -> Result<String> {
    use sha_crypt::{PasswordHasher, ShaCrypt};
    let mut h = Sha256::new();
    h.update(b"colinux-setup shadow salt v1\0");
    h.update(user.as_bytes());
    h.update([0]);
    h.update(hostname.as_bytes());
    h.update(epoch.to_le_bytes());
    let salt = h.finalize();
    let hash = ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt[..12])
        .map_err(|e| anyhow!("hashing the password of {user}: {e}"))?;
    Ok(hash.to_string())
}

/// The host's static busybox (`/bin/busybox` from busybox-static), or where it should be.
/// The root filesystem of the kit folder `kit` for a profile whose root comes from the
/// kit: the archive kit.toml lists with role `rootfs` at the kit's top (a `.tar`, plain
/// or compressed), else its `rootfs/` folder. Counting the archive reads it to its end
/// (its compression's checks too): a damaged one stops the plan, before any change.
fn kit_root(kit: Option<&Path>, profile: &str) -> Result<SourcePlan> {
    let make = format!(
        "make one with `scripts/make-kit {profile} DIR` (from Debian packages) and give --kit DIR"
    );
    let Some(kit) = kit else {
        bail!(
            "profile {profile}: its root filesystem comes from a kit, and none was given; {make}"
        );
    };
    let manifest = driver_bundle::manifest::Manifest::load(kit)
        .map_err(|e| anyhow!("KIT={}: {e}; {make}", kit.display()))?;
    let archive = manifest.files.iter().find(|f| {
        f.role == driver_bundle::manifest::Role::Rootfs
            && !f.path.contains('/')
            && [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.bz2"]
                .iter()
                .any(|ext| f.path.ends_with(ext))
    });
    match archive {
        Some(f) => {
            let file = kit.join(&f.path);
            let c = archive_content(&file)?;
            Ok(SourcePlan::KitArchive {
                file,
                entries: c.entries,
                file_bytes: c.file_bytes,
            })
        }
        None if kit.join("rootfs").is_dir() => Ok(SourcePlan::KitRootfs {
            dir: kit.join("rootfs"),
        }),
        None => bail!(
            "KIT={}: the kit has no root filesystem (a tar archive with role rootfs in kit.toml, or a rootfs/ folder), which profile {profile} needs; {make}",
            kit.display()
        ),
    }
}

/// The files of a kit's root archive the guest's own are merged into (users and groups
/// of its packages, such as apt's `_apt`, are kept).
pub const ARCHIVE_ETC: &[&str] = &["etc/passwd", "etc/group", "etc/shadow"];

/// What the archive at `file` holds, with its [`ARCHIVE_ETC`] files; remembered per file,
/// size and time, since a plan is made again on every page of the wizard, and staging
/// the root reads the users again: each count reads the whole archive.
pub fn archive_content(file: &Path) -> Result<image_builder::TarContent> {
    use std::sync::{Mutex, OnceLock};
    type Seen = Vec<(
        (PathBuf, u64, Option<std::time::SystemTime>),
        image_builder::TarContent,
    )>;
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    let meta = std::fs::metadata(file)
        .with_context(|| format!("reading the kit's root filesystem {}", file.display()))?;
    let id = (file.to_owned(), meta.len(), meta.modified().ok());
    let seen = SEEN.get_or_init(|| Mutex::new(Vec::new()));
    if let Some((_, c)) = seen
        .lock()
        .ok()
        .and_then(|s| s.iter().find(|(k, _)| *k == id).cloned())
    {
        return Ok(c);
    }
    let c =
        image_builder::tar_content(&image_builder::TarInput::File(file.to_owned()), ARCHIVE_ETC)
            .map_err(|e| {
                anyhow!(
                    "the kit's root filesystem {}: {e}; make the kit again",
                    file.display()
                )
            })?;
    if let Ok(mut s) = seen.lock() {
        s.push((id, c.clone()));
    }
    Ok(c)
}

/// MB an image needs for `entries` archive entries with `file_bytes` of data: the data
/// in 4 KiB blocks (half a block lost per file on average), an inode each (256 bytes),
/// and 64 MB for the journal and the groups' tables.
fn content_mb(entries: u64, file_bytes: u64) -> u64 {
    (file_bytes + entries * (2048 + 256)).div_ceil(1 << 20) + 64
}

/// The asked user's name (USERNAME, or the profile's) and home (`/home/NAME`): not a
/// user of the profile, nor one the kit's root archive already has (Debian's `daemon`,
/// `_apt`, ...: ours would replace it).
fn asked_name(
    u: &profile::User,
    p: &profile::Profile,
    answers: &Answers,
    images: &[ImagePlan],
) -> Result<(String, String)> {
    let Some(a) = answers.get("USERNAME") else {
        return Ok((u.name.clone(), format!("/home/{}", u.name)));
    };
    let name = a.value.trim();
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        bail!(
            "USERNAME={} ({}): a user name is 1..32 lower-case letters, digits, _ or -, starting with a letter; e.g. USERNAME=ada",
            a.value,
            a.origin
        );
    }
    if let Some(o) = p.users.iter().find(|o| !o.ask && o.name == name) {
        bail!(
            "USERNAME={name} ({}): the machine already has a user {} (uid {}); choose another name",
            a.origin,
            o.name,
            o.uid
        );
    }
    for img in images {
        if let SourcePlan::KitArchive { file, .. } = &img.source {
            let content = archive_content(file)?;
            let passwd = content
                .kept
                .iter()
                .find(|(k, _)| k == "etc/passwd")
                .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if let Some(line) = passwd.lines().find(|l| l.split(':').next() == Some(name)) {
                bail!(
                    "USERNAME={name} ({}): the kit's root filesystem already has a user {name} (uid {}); choose another name",
                    a.origin,
                    line.split(':').nth(2).unwrap_or("?")
                );
            }
        }
    }
    Ok((name.to_owned(), format!("/home/{name}")))
}

/// The asked user's /etc/shadow hash: from USERPASSWORD (hashed here) or
/// USERPASSWORDHASH (a crypt hash, e.g. from `openssl passwd -6`); `None` when neither
/// is given, which the install refuses ([`Plan::missing_password`]).
fn asked_hash(name: &str, hostname: &str, epoch: i64, answers: &Answers) -> Result<Option<String>> {
    match (answers.get("USERPASSWORD"), answers.get("USERPASSWORDHASH")) {
        (Some(pw), _) => {
            if pw.value.is_empty() {
                bail!(
                    "USERPASSWORD ({}): is empty; the machine's user needs a password",
                    pw.origin
                );
            }
            if pw.value.chars().any(char::is_control) {
                bail!(
                    "USERPASSWORD ({}): has a control character; type the password as one line",
                    pw.origin
                );
            }
            shadow_hash(&pw.value, name, hostname, epoch).map(Some)
        }
        (None, Some(h)) => {
            let v = h.value.trim();
            let crypt = v.starts_with('$')
                && v.len() >= 20
                && !v.contains([':', '\n', ' '])
                && v.chars().all(|c| c.is_ascii_graphic());
            if !crypt {
                bail!(
                    "USERPASSWORDHASH ({}): not a crypt hash (like $6$salt$hash, from `openssl passwd -6`); give USERPASSWORD=... instead to have it hashed here",
                    h.origin
                );
            }
            Ok(Some(v.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

fn find_busybox() -> PathBuf {
    // Windows: the static Linux busybox that setup.msi installs in INSTALLDIR\assets.
    #[cfg(windows)]
    if let Some(p) = crate::host::windows::bundled_asset("busybox") {
        return p;
    }
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    find_tool("busybox")
}

/// `name` on PATH, else `/usr/bin/NAME`.
fn find_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new("/usr/bin").join(name))
}

/// An x86-64 kernel already beside config.txt (put there by `scripts/qemu-kernel`).
fn prefix_qemu_kernel(prefix: &Path) -> Option<PathBuf> {
    ["vmlinuz", "bzImage"]
        .into_iter()
        .map(|n| prefix.join(n))
        .find(|p| p.is_file())
}

/// The kernels the monitor probe boots: the ones this machine would boot. User-mode
/// Linux: the kit's UML kernel, else the profile's kernel already in the folder, else
/// `linux.uml` on PATH. QEMU: the kit's x86-64 kernel, else one already beside
/// config.txt, else none (and why).
pub fn probe_kernels(kit: Option<&Path>, p: &profile::Profile, prefix: &Path) -> Kernels {
    let mut reserved: Vec<String> = p.images.iter().map(|i| i.file.clone()).collect();
    reserved.extend([
        p.swap.file.clone(),
        "config.txt".to_owned(),
        crate::state::STATE_FILE.to_owned(),
    ]);
    let in_kit = |m: Monitor| -> Option<std::result::Result<PathBuf, String>> {
        let k = kit?;
        Some(
            crate::kit_files::select(k, m, p.kernel.as_deref(), &reserved)
                .map_err(|e| format!("{e:#}"))
                .and_then(|sel| {
                    sel.files
                        .iter()
                        .find(|f| f.role == driver_bundle::manifest::Role::Kernel)
                        .map(|f| driver_bundle::manifest::host_path(k, &f.kit_path))
                        .ok_or_else(probe::no_qemu_kernel)
                }),
        )
    };
    let uml = match in_kit(Monitor::Uml) {
        Some(Ok(k)) => Some(k),
        _ => p
            .kernel
            .as_ref()
            .map(|k| prefix.join(k))
            .filter(|k| k.is_file())
            .or_else(|| crate::monitor::find_program("linux.uml")),
    };
    let qemu = match in_kit(Monitor::Qemu) {
        Some(Ok(k)) => Ok(k),
        found => prefix_qemu_kernel(prefix).ok_or_else(|| match found {
            Some(Err(e)) => e,
            _ => probe::no_qemu_kernel(),
        }),
    };
    Kernels { uml, qemu }
}

/// Human text of a plan (`--dry-run`).
pub fn describe(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Plan: profile {} ({}), monitor {}",
        plan.profile,
        match plan.profile_origin.strip_prefix("shipped:") {
            Some(_) => "built-in".to_owned(),
            None => format!("file {}", plan.profile_origin),
        },
        plan.monitor.as_str()
    );
    let _ = writeln!(
        s,
        "  monitor:        {} ({})",
        plan.monitor_choice.engine().title(),
        plan.monitor_choice.why
    );
    for v in &plan.monitor_choice.verdicts {
        let _ = writeln!(s, "    probe {}", v.line());
    }
    let _ = writeln!(s, "  install folder: {}", plan.prefix.display());
    let _ = writeln!(s, "  hostname:       {}", plan.hostname);
    let _ = writeln!(
        s,
        "  guest RAM:      {} MB ({})",
        plan.ram_mb, plan.ram_rule
    );
    let _ = writeln!(s, "  kernel:         {}", plan.kernel);
    if let Some(k) = &plan.kit {
        let _ = writeln!(
            s,
            "  verify kit:     {} (every file against its kit.toml, before any change)",
            k.display()
        );
    }
    if plan.monitor == Monitor::Colinux {
        let _ = writeln!(
            s,
            "  install driver: the kit's \"driver\" file for this host, copied into the folder, checked against its pinned signer, installed (rolled back on failure)"
        );
    }
    s.push_str(&crate::kit_files::describe(plan));
    for i in &plan.images {
        let src = match &i.source {
            SourcePlan::Busybox { busybox } => format!("busybox tree from {}", busybox.display()),
            SourcePlan::KitRootfs { dir } => format!("kit folder {}", dir.display()),
            SourcePlan::KitArchive {
                file,
                entries,
                file_bytes,
            } => format!(
                "kit archive {} ({} MB in {entries} files)",
                file.display(),
                file_bytes >> 20
            ),
            SourcePlan::Empty => "empty (users' home folders)".to_owned(),
        };
        let _ = writeln!(
            s,
            "  {:<15} {} MB {} on {} as {} ({}); {}",
            format!("{}:", i.file),
            i.size_mb,
            i.fs,
            i.mount,
            i.device,
            i.size_rule,
            src
        );
    }
    let _ = writeln!(
        s,
        "  {:<15} {} MB swap as {} ({})",
        format!("{}:", plan.swap.file),
        plan.swap.size_mb,
        plan.swap.device,
        plan.swap.size_rule
    );
    if let Some(r) = &plan.slirp {
        let _ = writeln!(
            s,
            "  eth0:           slirp {}",
            if r.is_empty() { "(no redirections)" } else { r }
        );
    }
    if let Some(t) = &plan.tap {
        let _ = writeln!(
            s,
            "  TAP:            {} on {} (host {}, guest {}); {}",
            t.name, t.subnet, t.host_ip, t.guest_ip, t.state
        );
        for c in &t.candidates {
            let _ = writeln!(
                s,
                "                  candidate {}: {}",
                c.subnet,
                c.reason.as_deref().unwrap_or("free")
            );
        }
    }
    if let Some(port) = &plan.serial {
        let _ = writeln!(s, "  serial port:    {port} (ttys0, the guest's ttyS0)");
    }
    if let Some(m) = &plan.start_menu {
        let _ = writeln!(s, "  start menu:     {m}");
    }
    if !plan.tasks.is_empty() {
        let _ = writeln!(s, "  extra tasks:    {}", plan.tasks.join(", "));
    }
    if let Some(line) = crate::service::step::describe(plan) {
        let _ = writeln!(s, "{line}");
    }
    if let Some(line) = crate::wsl::describe(plan) {
        let _ = writeln!(s, "{line}");
    }
    if let Some(line) = crate::putty::step::describe(plan) {
        let _ = writeln!(s, "{line}");
    }
    for sh in &plan.shares {
        let _ = writeln!(
            s,
            "  cofs{}:          {} on {} ({})",
            sh.cofs, sh.host, sh.mount, sh.options
        );
    }
    for u in &plan.users {
        let _ = writeln!(
            s,
            "  user:           {} (uid {}, {}), password {}",
            u.name,
            u.uid,
            u.home,
            match &u.known_password {
                _ if u.needs_password => "not given yet (USERPASSWORD; the wizard asks)".to_owned(),
                _ if u.hash == "*" => "locked".to_owned(),
                Some(k) => format!("{} from {} (change it with passwd)", k.password, k.from),
                None => "set (SHA-512 crypt in /etc/shadow)".to_owned(),
            }
        );
    }
    let _ = writeln!(
        s,
        "  first boot:     {}{}",
        plan.first_boot.state,
        plan.first_boot
            .description
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    for c in &plan.first_boot.run {
        let _ = writeln!(
            s,
            "  first boot runs: {c} (in {}, as {})",
            plan.first_boot.target.as_deref().unwrap_or("/"),
            plan.first_boot.run_as.as_deref().unwrap_or("root")
        );
    }
    if let Some(m) = &plan.first_boot.modules {
        let _ = writeln!(
            s,
            "  kernel modules: {} ({} MB, from {}) into /lib/modules at the first boot (MODULES=0: none)",
            m.version,
            m.bytes >> 20,
            m.dir.display()
        );
    }
    for w in &plan.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    let _ = writeln!(s, "\n/etc/fstab:\n{}", plan.fstab);
    let _ = writeln!(
        s,
        "config.txt:\n{}",
        plan.config_text().unwrap_or_else(|e| format!("{e:#}"))
    );
    s
}

/// The kernel modules for the first boot: the kit's `modules/VERSION/` folder, or for
/// User-mode Linux the host's `/usr/lib/uml/modules/VERSION`; none when neither exists.
fn find_modules(kit: Option<&Path>, monitor: Monitor) -> Result<Option<ModulesPlan>> {
    let mut bases = Vec::new();
    if let Some(k) = kit {
        bases.push(k.join("modules"));
    }
    if monitor == Monitor::Uml {
        bases.push(PathBuf::from("/usr/lib/uml/modules"));
    }
    for base in bases {
        let Ok(rd) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut versions: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        versions.sort();
        match versions.as_slice() {
            [] => continue,
            [one] => {
                let version = one
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let bytes = tree_bytes(one)
                    .with_context(|| format!("reading the kernel modules in {}", one.display()))?;
                return Ok(Some(ModulesPlan {
                    dir: one.clone(),
                    version,
                    bytes,
                }));
            }
            many => bail!(
                "{} holds modules for {} kernels ({}); keep only the one the machine boots",
                base.display(),
                many.len(),
                many.iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(None)
}

fn tree_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            total += tree_bytes(&e.path())?;
        } else if ft.is_file() {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

/// Loads the profile the answers name and resolves the plan against the host, probing
/// the monitors that may run it.
pub fn make_plan(answers: &Answers) -> Result<Plan> {
    // The kit holds the kernels the probe boots: a kit folder that is not there is named
    // as such first, not taken for a kit without kernels (which would refuse the monitor
    // for the wrong reason). An installed machine's plan, made again by a rebuild, does
    // not need its kit any more (plan::make_plan_with).
    if let Some(a) = answers.get("KIT") {
        let dir = std::path::absolute(&a.value).unwrap_or_else(|_| a.value.clone().into());
        if !dir.is_dir() {
            bail!(
                "KIT={}: no such folder; give --kit DIR, a folder with kit.toml at its root",
                dir.display()
            );
        }
    }
    make_plan_with(answers, &crate::monitor::probe::HostProber)
}

/// The plan for `answers`: their profile, this host's facts and the monitor probe
/// given (the install probes; a rebuild trusts the installed monitor). Here, not with
/// the install command, because the rebuild engine makes plans too.
pub fn make_plan_with(
    answers: &Answers,
    prober: &dyn crate::monitor::probe::Prober,
) -> Result<Plan> {
    let name = answers
        .get("PROFILE")
        .map_or(crate::profile::DEFAULT.to_owned(), |a| a.value.clone());
    let loaded = crate::profile::load(&name)?;
    let prefix = answers
        .get("INSTALLDIR")
        .map(|a| std::path::absolute(&a.value).unwrap_or_else(|_| a.value.clone().into()))
        .unwrap_or_else(|| default_prefix(&loaded.profile));
    let host = crate::facts::gather(&prefix);
    resolve(answers, &loaded, &host, prober)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_hash_is_sha512_crypt_and_stable() {
        let a = shadow_hash("bf533", "root", "h", 1).expect("hash");
        assert!(a.starts_with("$6$"), "{a}");
        assert_eq!(a, shadow_hash("bf533", "root", "h", 1).expect("hash"));
        assert_ne!(a, shadow_hash("bf533", "uclinux", "h", 1).expect("hash"));
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let mut a = Answers::default();
        let e = a.set("RAMBM", "3", "a.toml:2").expect_err("unknown");
        assert!(
            e.to_string()
                .contains("a.toml:2: unknown answer key `RAMBM`; did you mean `RAMMB`?"),
            "{e}"
        );
    }
}
