//! The monitor probe: which monitors can run a guest on this host, found by running one.
//!
//! Hosts differ in what works, and nothing may assume it: on CPUs with AMX, Debian's
//! User-mode Linux (6.1, 6.12) starts its kernel and then panics at the first guest
//! process (`ptrace set fp regs failed, errno = 14`: the host's XSAVE area is larger
//! than the buffer these UML kernels hand to `PTRACE_SETREGSET`); in nested virtual
//! machines `/dev/kvm` can exist while KVM guests hang right after the firmware. So a
//! probe boots the smallest possible guest ([`super::probe_guest`]: one process that
//! prints a marker and powers off) in each [`Engine`] and reports what happened, in the
//! host's own words (the panic line, the last firmware line before the silence).
//!
//! - [`Engine::Uml`]: the UML kernel the machine would use, with the probe's init as
//!   `/init` of a host folder mounted over hostfs; at most [`UML_DEADLINE`].
//! - [`Engine::Qemu`] with KVM: `/dev/kvm` must open read-write; the guest must print
//!   something after the firmware within [`KVM_STALL`] (the hang above prints nothing
//!   after `Probing EDD ... ok`) and the marker within [`QEMU_DEADLINE`].
//! - [`Engine::Qemu`] with TCG (QEMU's own emulation): works wherever QEMU and an x86-64
//!   kernel are; about ten times slower than UML or KVM (measured here: the probe's
//!   guest in 3 to 5 s, a first boot in about 35 s on a loaded 2-core machine).
//! - [`Engine::Colinux`]: never booted here; a host check (32-bit Windows 2000..7, or a
//!   Linux 2.6 host).
//!
//! [`choose`] turns a request (`auto`, or a monitor the user named) into a [`Choice`]
//! whose reason names no origin (the same answers give the same recorded state, from a
//! profile or an answer file); refusals name where the monitor was asked for:
//! `auto` takes the first engine that works, in the order of [`auto_order`]; a named
//! monitor that cannot run guests here is refused before any change, naming the cause
//! and the monitor that would work, unless no boot is planned (`NOFIRSTBOOT=1`: the
//! machine may be meant for another host). coLinux is never refused: a coLinux machine
//! is usually prepared on one host for another, and its first boot then stays pending.
//!
//! Probes run through the [`Prober`] seam: [`HostProber`] boots real guests and keeps
//! each verdict for the rest of the process (one probe per install or boot, however
//! often the plan is made again, e.g. by the wizard); the unit tests use a table.
//!
//! `COLINUX_SETUP_QEMU_ACCEL=kvm|tcg` limits QEMU to one accelerator (the other is not
//! probed).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use config_txt::Config;
use serde::{Deserialize, Serialize};

use super::{BootOptions, MonitorError, RunOptions, probe_guest};
use crate::profile::{Monitor, MonitorRequest as Request};

/// The most a UML probe may take (it takes about a second).
pub const UML_DEADLINE: Duration = Duration::from_secs(30);
/// The most a QEMU probe may take (TCG on a loaded machine: well under a minute).
pub const QEMU_DEADLINE: Duration = Duration::from_secs(90);
/// How long a KVM guest may stay silent after the firmware before it counts as hung.
pub const KVM_STALL: Duration = Duration::from_secs(10);

/// QEMU's accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// The host's hardware virtualisation (`/dev/kvm`).
    Kvm,
    /// QEMU's own emulation (Tiny Code Generator): slow, but needs nothing from the host.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`, as QEMU's `-accel` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One way to run a guest: a monitor, and for QEMU its accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// User-mode Linux.
    Uml,
    /// QEMU with an accelerator.
    Qemu(Accel),
    /// coLinux.
    Colinux,
    /// WSL 2 (`wsl.exe`; see crate::wsl).
    Wsl,
}

impl Engine {
    /// The monitor this engine is.
    pub fn monitor(self) -> Monitor {
        match self {
            Engine::Uml => Monitor::Uml,
            Engine::Qemu(_) => Monitor::Qemu,
            Engine::Colinux => Monitor::Colinux,
            Engine::Wsl => Monitor::Wsl,
        }
    }

    /// QEMU's accelerator.
    pub fn accel(self) -> Option<Accel> {
        match self {
            Engine::Qemu(a) => Some(a),
            _ => None,
        }
    }

    /// Its short name: `uml`, `qemu/kvm`, `qemu/tcg`, `colinux`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Uml => "uml",
            Engine::Qemu(Accel::Kvm) => "qemu/kvm",
            Engine::Qemu(Accel::Tcg) => "qemu/tcg",
            Engine::Colinux => "colinux",
            Engine::Wsl => "wsl",
        }
    }

    /// What users call it.
    pub fn title(self) -> &'static str {
        match self {
            Engine::Uml => "User-mode Linux",
            Engine::Qemu(Accel::Kvm) => "QEMU with KVM",
            Engine::Qemu(Accel::Tcg) => "QEMU without KVM (TCG emulation)",
            Engine::Colinux => "coLinux",
            Engine::Wsl => "WSL 2",
        }
    }

    /// How much slower than UML or KVM a guest runs here, for timeouts: QEMU's own
    /// emulation is about ten times slower (measured on this project's machines).
    pub fn slowdown(self) -> u32 {
        match self {
            Engine::Qemu(Accel::Tcg) => 10,
            _ => 1,
        }
    }

    /// The engine of a monitor and accelerator.
    pub fn of(monitor: Monitor, accel: Option<Accel>) -> Engine {
        match monitor {
            Monitor::Uml => Engine::Uml,
            Monitor::Qemu => Engine::Qemu(accel.unwrap_or(Accel::Tcg)),
            Monitor::Colinux => Engine::Colinux,
            Monitor::Wsl => Engine::Wsl,
        }
    }
}

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// The monitor probed.
    pub monitor: Monitor,
    /// QEMU's accelerator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accel: Option<Accel>,
    /// It ran a guest process.
    pub works: bool,
    /// What happened, in the host's own words where it said something.
    pub reason: String,
    /// How long the probe's guest took, when one was started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl Verdict {
    /// The engine probed.
    pub fn engine(&self) -> Engine {
        Engine::of(self.monitor, self.accel)
    }

    pub(crate) fn new(engine: Engine, works: bool, reason: impl Into<String>) -> Verdict {
        Verdict {
            monitor: engine.monitor(),
            accel: engine.accel(),
            works,
            reason: reason.into(),
            seconds: None,
        }
    }

    /// `uml: works (…)` or `qemu/kvm: does not work: …`, for lists.
    pub fn line(&self) -> String {
        let e = self.engine();
        if self.works {
            format!("{}: works ({})", e.name(), self.reason)
        } else {
            format!("{}: does not work here: {}", e.name(), self.reason)
        }
    }
}

/// The kernels a probe boots: the ones the machine would boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernels {
    /// The UML kernel (a kit's, else `linux.uml` on PATH).
    pub uml: Option<PathBuf>,
    /// An x86-64 kernel for QEMU (a kit's), or why there is none.
    pub qemu: Result<PathBuf, String>,
}

impl Kernels {
    /// The kernels an installed machine's config.txt names (read from `config_path`),
    /// for the probe before it boots: `boot` and the background `start` alike.
    pub fn of_config(config: &config_txt::Config, config_path: &Path) -> Kernels {
        Kernels {
            uml: Some(super::uml::program(config, config_path)),
            qemu: super::qemu::kernel(config, config_path)
                .map(|(k, _)| k.into())
                .map_err(|e| e.to_string()),
        }
    }
}

impl Default for Kernels {
    fn default() -> Self {
        Kernels {
            uml: None,
            qemu: Err(no_qemu_kernel()),
        }
    }
}

/// The reason when no QEMU kernel is known, and what to do.
pub fn no_qemu_kernel() -> String {
    "no x86-64 kernel for QEMU: give a kit that carries one (--kit DIR; \
     `scripts/make-default-kit DIR` makes the default kit, with its QEMU kernel and initramfs)"
        .to_owned()
}

/// Runs probes.
pub trait Prober {
    /// Whether `engine` can run a guest here, with these kernels.
    fn probe(&self, engine: Engine, kernels: &Kernels) -> Verdict;
}

/// Boots real guests; each verdict is kept for the rest of the process.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostProber;

/// Verdicts already found in this process, by engine and kernel.
static SEEN: Mutex<Vec<(Engine, Option<PathBuf>, Verdict)>> = Mutex::new(Vec::new());

impl Prober for HostProber {
    fn probe(&self, engine: Engine, kernels: &Kernels) -> Verdict {
        let kernel = match engine {
            Engine::Uml => kernels.uml.clone(),
            Engine::Qemu(_) => kernels.qemu.clone().ok(),
            Engine::Colinux | Engine::Wsl => None,
        };
        if let Ok(seen) = SEEN.lock()
            && let Some((_, _, v)) = seen.iter().find(|(e, k, _)| *e == engine && *k == kernel)
        {
            return v.clone();
        }
        let v = probe_host(engine, kernels);
        if let Ok(mut seen) = SEEN.lock() {
            seen.push((engine, kernel, v.clone()));
        }
        v
    }
}

/// A prober that trusts a monitor already installed and boots nothing (a rebuild makes
/// the plan of an installed machine again; the machine's monitor is not in question).
#[derive(Clone, Copy, Debug, Default)]
pub struct Trusting;

impl Prober for Trusting {
    fn probe(&self, engine: Engine, _kernels: &Kernels) -> Verdict {
        Verdict::new(
            engine,
            true,
            "the installed machine's monitor (not probed again)",
        )
    }
}

/// The accelerator `COLINUX_SETUP_QEMU_ACCEL` insists on, if any.
pub fn accel_override() -> Option<Accel> {
    match std::env::var("COLINUX_SETUP_QEMU_ACCEL").as_deref() {
        Ok("kvm") => Some(Accel::Kvm),
        Ok("tcg") => Some(Accel::Tcg),
        _ => None,
    }
}

/// QEMU's accelerators to try, best first.
fn qemu_engines() -> Vec<Engine> {
    match accel_override() {
        Some(a) => vec![Engine::Qemu(a)],
        None => vec![Engine::Qemu(Accel::Kvm), Engine::Qemu(Accel::Tcg)],
    }
}

/// The engines `auto` tries on this host, in order: the fastest that needs least first.
pub fn auto_order() -> Vec<Engine> {
    auto_order_for(cfg!(windows), cfg!(target_pointer_width = "64"))
}

/// The engines `auto` tries on a host of this kind. On Windows, the program's own width
/// says which Windows it was installed for: the 64-bit build (setup.msi) is for 64-bit
/// Windows 10 and 11, where coLinux cannot run and WSL 2 is the monitor; the 32-bit build
/// (setup-x86.msi) is for 32-bit Windows 7, coLinux's host.
fn auto_order_for(windows: bool, bits64: bool) -> Vec<Engine> {
    match (windows, bits64) {
        (true, true) => vec![Engine::Wsl],
        (true, false) => vec![Engine::Colinux],
        (false, _) => {
            let mut v = vec![Engine::Uml];
            v.extend(qemu_engines());
            v
        }
    }
}

/// The engines of one monitor, best first.
fn engines_of(monitor: Monitor) -> Vec<Engine> {
    match monitor {
        Monitor::Uml => vec![Engine::Uml],
        Monitor::Qemu => qemu_engines(),
        Monitor::Colinux => vec![Engine::Colinux],
        Monitor::Wsl => vec![Engine::Wsl],
    }
}

/// The monitor a plan uses, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Choice {
    /// The monitor.
    pub monitor: Monitor,
    /// QEMU's accelerator, when it was probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accel: Option<Accel>,
    /// What was asked: `auto` or a monitor.
    pub requested: String,
    /// Why this monitor, in one sentence.
    pub why: String,
    /// Every probe run for the choice, in order.
    pub verdicts: Vec<Verdict>,
}

impl Choice {
    /// The engine chosen.
    pub fn engine(&self) -> Engine {
        Engine::of(self.monitor, self.accel)
    }
}

/// Why no monitor could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ChoiceError {
    /// `auto` found nothing that works here.
    #[error(
        "no monitor can run a guest on this host ({}); {}",
        list(.verdicts),
        advice(.verdicts)
    )]
    NoneWorks {
        /// What each probe found.
        verdicts: Vec<Verdict>,
    },
    /// The monitor asked for cannot run a guest here.
    #[error(
        "MONITOR={monitor} ({origin}): {title} cannot run a guest on this host: {reason}; {}",
        instead(.alternative, monitor)
    )]
    Refused {
        /// The monitor asked for.
        monitor: &'static str,
        /// Where it was asked.
        origin: String,
        /// What users call it.
        title: &'static str,
        /// What its probes found.
        reason: String,
        /// A monitor that works here, if any.
        alternative: Option<Box<Verdict>>,
    },
}

fn list(verdicts: &[Verdict]) -> String {
    verdicts
        .iter()
        .map(Verdict::line)
        .collect::<Vec<_>>()
        .join("; ")
}

fn advice(verdicts: &[Verdict]) -> String {
    if verdicts.iter().any(|v| v.monitor == Monitor::Wsl) {
        // 64-bit Windows: WSL 2 is its only monitor, and it registers the machine at
        // install, so even an install without a first boot needs it.
        format!(
            "turn WSL 2 on first: {}, then install again; or give MONITOR=colinux to make a machine for a 32-bit Windows 7 coLinux host instead (it cannot run on this Windows)",
            crate::wsl::ENABLE_WSL
        )
    } else if verdicts.iter().any(|v| v.monitor == Monitor::Qemu) {
        "QEMU without KVM runs wherever QEMU and an x86-64 kernel are: install QEMU \
         (Debian: apt-get install qemu-system-x86) and give a kit with a QEMU kernel \
         (`scripts/make-default-kit DIR`, then --kit DIR)"
            .to_owned()
    } else {
        "give NOFIRSTBOOT=1 to install the machine without booting it here".to_owned()
    }
}

fn instead(alternative: &Option<Box<Verdict>>, monitor: &str) -> String {
    // A wsl machine is registered with WSL at install, booted or not.
    let unbooted = if monitor == "wsl" {
        ""
    } else {
        ", or give NOFIRSTBOOT=1 to install without booting it here"
    };
    match alternative {
        Some(v) => format!(
            "{} works here (give --monitor {}, or MONITOR=auto){unbooted}",
            v.engine().title(),
            v.monitor.as_str()
        ),
        None if unbooted.is_empty() => "no other monitor works here either".to_owned(),
        None => format!("no other monitor works here either{unbooted}"),
    }
}

/// Chooses the monitor for `request` (given at `origin`). `boots`: the plan boots the
/// machine (a first boot is pending), so the monitor must work here.
pub fn choose(
    request: Request,
    origin: &str,
    boots: bool,
    kernels: &Kernels,
    prober: &dyn Prober,
) -> Result<Choice, ChoiceError> {
    choose_from(auto_order(), request, origin, boots, kernels, prober)
}

/// [`choose`], with `auto` trying the engines of `order`.
fn choose_from(
    order: Vec<Engine>,
    request: Request,
    origin: &str,
    boots: bool,
    kernels: &Kernels,
    prober: &dyn Prober,
) -> Result<Choice, ChoiceError> {
    let mut verdicts = Vec::new();
    match request {
        Request::Auto => {
            for engine in &order {
                let v = prober.probe(*engine, kernels);
                let works = v.works;
                verdicts.push(v);
                if works {
                    let tried: Vec<&str> = order.iter().map(|e| e.name()).collect();
                    return Ok(Choice {
                        monitor: engine.monitor(),
                        accel: engine.accel(),
                        requested: "auto".into(),
                        why: format!(
                            "{} runs guests here: the first that works of {}",
                            engine.title(),
                            tried.join(", ")
                        ),
                        verdicts,
                    });
                }
            }
            // Nothing boots here. A machine that is not booted here (NOFIRSTBOOT), or one
            // for Windows, whose only monitor is coLinux (never refused: its machines are
            // made anywhere and first-boot on their host), is still made, for the host's
            // own monitor, with its first boot left pending; a machine to boot now is not.
            match order.first() {
                // Except a WSL machine: registered with WSL at install, booted or not.
                Some(&engine) if engine != Engine::Wsl && (!boots || engine == Engine::Colinux) => {
                    let reasons = list(&verdicts);
                    Ok(Choice {
                        monitor: engine.monitor(),
                        accel: None,
                        requested: "auto".into(),
                        why: format!(
                            "no monitor can run a guest on this host ({reasons}), so the machine is made for {}, this host's own monitor, and its first boot waits for a host where it runs",
                            engine.title()
                        ),
                        verdicts,
                    })
                }
                _ => Err(ChoiceError::NoneWorks { verdicts }),
            }
        }
        Request::Given(Monitor::Colinux) => {
            let v = prober.probe(Engine::Colinux, kernels);
            let why = if v.works {
                "coLinux was asked for, and can run here".to_owned()
            } else {
                format!(
                    "coLinux was asked for; the machine is for a coLinux host, not this one: {}",
                    v.reason
                )
            };
            verdicts.push(v);
            Ok(Choice {
                monitor: Monitor::Colinux,
                accel: None,
                requested: "colinux".into(),
                why,
                verdicts,
            })
        }
        // The install registers a WSL distribution even without a first boot.
        Request::Given(Monitor::Wsl) => first_working(
            Monitor::Wsl,
            engines_of(Monitor::Wsl),
            origin,
            kernels,
            prober,
        ),
        Request::Given(monitor) if !boots => Ok(Choice {
            monitor,
            accel: None,
            requested: monitor.as_str().into(),
            why: format!(
                "{} was asked for; not probed, since no boot is planned (it is probed when the machine boots)",
                monitor.as_str()
            ),
            verdicts,
        }),
        Request::Given(monitor) => {
            first_working(monitor, engines_of(monitor), origin, kernels, prober)
        }
    }
}

/// The engine to boot an installed machine with: its monitor, probed once now. QEMU
/// tries KVM first, unless the install found KVM guests hanging here (it recorded
/// `tcg`) or `COLINUX_SETUP_QEMU_ACCEL` says otherwise.
pub fn for_boot(
    monitor: Monitor,
    recorded: Option<Accel>,
    kernels: &Kernels,
    prober: &dyn Prober,
) -> Result<Choice, ChoiceError> {
    let origin = "the installed machine";
    let engines = match (monitor, accel_override(), recorded) {
        (Monitor::Colinux, ..) => {
            return choose(Request::Given(monitor), origin, true, kernels, prober);
        }
        (Monitor::Qemu, None, Some(Accel::Tcg)) => vec![Engine::Qemu(Accel::Tcg)],
        _ => engines_of(monitor),
    };
    first_working(monitor, engines, origin, kernels, prober)
}

/// The first of `engines` (all of `monitor`) that works; else refused, naming what
/// failed and a monitor that works instead.
fn first_working(
    monitor: Monitor,
    engines: Vec<Engine>,
    origin: &str,
    kernels: &Kernels,
    prober: &dyn Prober,
) -> Result<Choice, ChoiceError> {
    let mut verdicts = Vec::new();
    for engine in engines {
        let v = prober.probe(engine, kernels);
        let works = v.works;
        verdicts.push(v);
        if works {
            return Ok(Choice {
                monitor,
                accel: engine.accel(),
                requested: monitor.as_str().into(),
                why: format!(
                    "{} was asked for, and {} runs guests here",
                    monitor.as_str(),
                    engine.title()
                ),
                verdicts,
            });
        }
    }
    let reason = verdicts
        .iter()
        .map(|v| match v.accel {
            Some(a) => format!("with {}: {}", a.as_str().to_uppercase(), v.reason),
            None => v.reason.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let alternative = auto_order()
        .into_iter()
        .filter(|e| e.monitor() != monitor)
        .map(|e| prober.probe(e, kernels))
        .find(|v| v.works)
        .map(Box::new);
    Err(ChoiceError::Refused {
        monitor: monitor.as_str(),
        origin: origin.to_owned(),
        title: title_of(monitor, None),
        reason,
        alternative,
    })
}

/// What users call a monitor with an accelerator (`QEMU` when it is not known yet).
pub fn title_of(monitor: Monitor, accel: Option<Accel>) -> &'static str {
    match (monitor, accel) {
        (Monitor::Qemu, None) => "QEMU",
        (m, a) => Engine::of(m, a).title(),
    }
}

/// Probes `engine` on this host (no memory of earlier probes).
fn probe_host(engine: Engine, kernels: &Kernels) -> Verdict {
    match engine {
        Engine::Colinux => match super::colinux::host_supports() {
            Ok(()) => Verdict::new(engine, true, "a host coLinux supports"),
            Err(why) => Verdict::new(engine, false, why),
        },
        // WSL registers the distribution at install: it must work here even when no
        // boot is planned (see choose).
        Engine::Wsl => match crate::wsl::host_supports() {
            Ok(why) => Verdict::new(engine, true, why),
            Err(why) => Verdict::new(engine, false, why),
        },
        Engine::Uml => probe_uml(kernels.uml.as_deref()),
        Engine::Qemu(accel) => probe_qemu(accel, &kernels.qemu),
    }
}

/// Why the probe's guest cannot run here at all (it is an x86-64 Linux program).
fn unsupported_host() -> Option<String> {
    (!cfg!(all(target_os = "linux", target_arch = "x86_64"))).then(|| {
        format!(
            "guests are probed on x86-64 Linux hosts only; this host is {} {}",
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    })
}

/// A private folder for one probe.
fn scratch() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("colinux-setup-probe-")
        .tempdir()
        .map_err(|e| format!("cannot create a folder for the probe in the temporary folder: {e}"))
}

fn probe_uml(kernel: Option<&Path>) -> Verdict {
    let engine = Engine::Uml;
    if let Some(why) = unsupported_host() {
        return Verdict::new(engine, false, why);
    }
    let program = match kernel {
        Some(k) if k.is_file() => k.to_owned(),
        Some(k) => {
            return Verdict::new(
                engine,
                false,
                format!(
                    "{} is not installed (Debian: apt-get install user-mode-linux)",
                    k.display()
                ),
            );
        }
        None => {
            return Verdict::new(
                engine,
                false,
                "linux.uml is not installed (Debian: apt-get install user-mode-linux)",
            );
        }
    };
    let dir = match scratch() {
        Ok(d) => d,
        Err(e) => return Verdict::new(engine, false, e),
    };
    let root = dir.path().join("root");
    if let Err(e) = write_init(&root) {
        return Verdict::new(engine, false, e);
    }
    let program = match executable(&program, dir.path()) {
        Ok(p) => p,
        Err(e) => return Verdict::new(engine, false, e),
    };
    let config = Config {
        kernel: Some(program.display().to_string()),
        mem: Some(super::uml::MIN_MEM_MB),
        root: Some("/dev/root".into()),
        boot_params: vec![
            "rootfstype=hostfs".into(),
            format!("rootflags={}", root.display()),
            "rw".into(),
            "init=/init".into(),
        ],
        ..Config::default()
    };
    boot(engine, &config, dir.path(), UML_DEADLINE, None)
}

/// `program`, or a copy of it in `dir` that can be run: a kit's UML kernel may have no
/// execute bit (kits come from archives, CDs and downloads; the install makes its own
/// copy executable), and the probe runs the kit's file before that copy exists.
fn executable(program: &Path, dir: &Path) -> Result<PathBuf, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(program).map_or(0, |m| m.permissions().mode());
        if mode & 0o111 == 0 {
            // The name keeps `uml` in it: that is how a UML kernel is told apart.
            let copy = dir.join("linux.uml");
            std::fs::copy(program, &copy)
                .and_then(|_| {
                    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|e| {
                    format!(
                        "cannot copy {} to run it (it has no execute bit): {e}",
                        program.display()
                    )
                })?;
            return Ok(copy);
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(program.to_owned())
}

/// The probe's root folder for UML: just `/init`.
fn write_init(root: &Path) -> Result<(), String> {
    let init = root.join("init");
    std::fs::create_dir_all(root)
        .and_then(|()| std::fs::write(&init, probe_guest::init_program()))
        .map_err(|e| {
            format!(
                "cannot write the probe's guest into {}: {e}",
                root.display()
            )
        })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", init.display()))?;
    }
    Ok(())
}

/// `/dev/kvm` opens read-write, or why not.
pub fn kvm_device() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "this host has no KVM (/dev/kvm is missing: no hardware virtualisation, or it is \
                 not passed to this virtual machine)"
                    .to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "/dev/kvm is not open to this user (add the user to the kvm group)".to_owned()
            }
            _ => format!("/dev/kvm cannot be opened: {e}"),
        })
}

fn probe_qemu(accel: Accel, kernel: &Result<PathBuf, String>) -> Verdict {
    let engine = Engine::Qemu(accel);
    if let Some(why) = unsupported_host() {
        return Verdict::new(engine, false, why);
    }
    if super::find_program(super::qemu::PROGRAM).is_none() {
        return Verdict::new(
            engine,
            false,
            format!(
                "{} is not installed (Debian: apt-get install qemu-system-x86)",
                super::qemu::PROGRAM
            ),
        );
    }
    if accel == Accel::Kvm
        && let Err(why) = kvm_device()
    {
        return Verdict::new(engine, false, why);
    }
    let kernel = match kernel {
        Ok(k) if k.is_file() => k.clone(),
        Ok(k) => {
            return Verdict::new(
                engine,
                false,
                format!("the kernel {} is missing", k.display()),
            );
        }
        Err(why) => return Verdict::new(engine, false, why.clone()),
    };
    let dir = match scratch() {
        Ok(d) => d,
        Err(e) => return Verdict::new(engine, false, e),
    };
    let initrd = dir.path().join("probe.cpio");
    if let Err(e) = std::fs::write(&initrd, probe_guest::initramfs()) {
        return Verdict::new(
            engine,
            false,
            format!("cannot write {}: {e}", initrd.display()),
        );
    }
    let config = Config {
        kernel: Some(kernel.display().to_string()),
        initrd: Some(initrd.display().to_string()),
        mem: Some(128),
        ..Config::default()
    };
    let stall = (accel == Accel::Kvm).then_some(KVM_STALL);
    boot(engine, &config, dir.path(), QEMU_DEADLINE, stall)
}

/// Boots the probe's guest and judges the run.
fn boot(
    engine: Engine,
    config: &Config,
    dir: &Path,
    deadline: Duration,
    stall: Option<Duration>,
) -> Verdict {
    let opts = BootOptions {
        interactive: false,
        extra_params: Vec::new(),
        run_dir: dir.to_owned(),
        id: format!("probe-{}", std::process::id()),
        config_path: dir.join("config.txt"),
        accel: engine.accel().unwrap_or(Accel::Tcg),
        forward_host: crate::plan::SLIRP_HOST_DEFAULT,
        extra_shares: Vec::new(),
        extra_drives: Vec::new(),
    };
    let launch = match super::command_line(engine.monitor(), config, &opts) {
        Ok(l) => l,
        Err(MonitorError::Config(e) | MonitorError::NotRunnable(e)) => {
            return Verdict::new(engine, false, e);
        }
        Err(e) => return Verdict::new(engine, false, e.to_string()),
    };
    let never = AtomicBool::new(false);
    let mut marker = false;
    let run = super::run(
        &launch,
        &RunOptions {
            timeout: Some(deadline),
            interrupt: &never,
            echo: false,
            stdin: false,
            clean_stop: false,
            stall_after: stall,
            stop_grace: super::STOP_GRACE,
            console_in: None,
            console_out: None,
        },
        &mut |line| marker |= line.trim() == probe_guest::MARKER,
    );
    let r = match run {
        Ok(r) => r,
        Err(e) => return Verdict::new(engine, false, e.to_string()),
    };
    let seconds = (r.elapsed.as_secs_f64() * 10.0).round() / 10.0;
    let (works, reason) = if marker && !r.panicked {
        (true, format!("a guest process ran in {seconds:.1} s"))
    } else if r.stalled {
        (false, stall_reason(&r, stall.unwrap_or_default()))
    } else if r.panicked {
        (false, panic_reason(&r))
    } else if r.timed_out {
        (
            false,
            format!(
                "no guest process ran within {} s; the last console line: `{}`",
                deadline.as_secs(),
                r.last_line().unwrap_or("(none)")
            ),
        )
    } else {
        (
            false,
            format!(
                "{} ended ({}) before a guest process ran; the last console line: `{}`",
                launch.program.display(),
                super::exit_words(r.exit_code),
                r.last_line().unwrap_or("(none)")
            ),
        )
    };
    Verdict {
        seconds: Some(seconds),
        ..Verdict::new(engine, works, reason)
    }
}

/// A KVM guest that never got past the firmware, in the console's words: the last
/// firmware line, and what QEMU itself warned about (nested virtual machines often lack
/// CPU features QEMU asks for).
fn stall_reason(r: &super::RunResult, stall: Duration) -> String {
    let qemu_says = |l: &&String| l.trim_start().starts_with("qemu-system");
    let last = r
        .tail
        .iter()
        .rfind(|l| !qemu_says(l) && !l.trim().is_empty())
        .map(|l| format!(" (the last line: `{}`)", l.trim()))
        .unwrap_or_default();
    let warned = r
        .tail
        .iter()
        .find(qemu_says)
        .map(|l| format!("; QEMU said: `{}`", l.trim()))
        .unwrap_or_default();
    format!(
        "KVM guests hang here: nothing after the firmware within {} s{last}{warned} \
         (usually nested virtualisation that does not pass KVM through whole)",
        stall.as_secs()
    )
}

/// The panic in the host's words: the line that says what failed (UML prints
/// `userspace - ptrace set fp regs failed, errno = 14` before its panic), then the panic.
fn panic_reason(r: &super::RunResult) -> String {
    let panic = r.panic_line.as_deref().unwrap_or("Kernel panic").trim();
    let cause = r
        .tail
        .iter()
        .take_while(|l| !l.contains(super::PANIC_MARKER))
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("failed") || l.contains("error")
        })
        .last();
    match cause {
        Some(c) => format!(
            "the guest kernel panicked at its first process: `{}`, then `{panic}`",
            c.trim()
        ),
        None => format!("the guest kernel panicked before its first process ran: `{panic}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers from a table; counts what it was asked.
    struct Table {
        works: Vec<Engine>,
        asked: Mutex<Vec<Engine>>,
    }

    impl Table {
        fn new(works: &[Engine]) -> Table {
            Table {
                works: works.to_vec(),
                asked: Mutex::new(Vec::new()),
            }
        }
        fn asked(&self) -> Vec<Engine> {
            self.asked.lock().expect("lock").clone()
        }
    }

    impl Prober for Table {
        fn probe(&self, engine: Engine, _kernels: &Kernels) -> Verdict {
            self.asked.lock().expect("lock").push(engine);
            if self.works.contains(&engine) {
                Verdict::new(engine, true, "ran")
            } else {
                Verdict::new(
                    engine,
                    false,
                    format!("{} fails in this table", engine.name()),
                )
            }
        }
    }

    const KVM: Engine = Engine::Qemu(Accel::Kvm);
    const TCG: Engine = Engine::Qemu(Accel::Tcg);

    fn kernels() -> Kernels {
        Kernels::default()
    }

    #[test]
    fn auto_on_64_bit_windows_is_wsl_and_without_it_says_how_to_turn_it_on() {
        assert_eq!(auto_order_for(true, true), vec![Engine::Wsl]);
        assert_eq!(auto_order_for(true, false), vec![Engine::Colinux]);
        assert!(!auto_order_for(false, true).contains(&Engine::Wsl));
        let t = Table::new(&[Engine::Wsl]);
        let c = choose_from(
            auto_order_for(true, true),
            Request::Auto,
            "the profile",
            true,
            &kernels(),
            &t,
        )
        .expect("wsl works");
        assert_eq!(c.monitor, Monitor::Wsl);
        // Without WSL, nothing is made, booted or not: the machine would be a WSL
        // distribution, registered at install.
        for boots in [true, false] {
            let t = Table::new(&[Engine::Colinux]);
            let e = choose_from(
                auto_order_for(true, true),
                Request::Auto,
                "the profile",
                boots,
                &kernels(),
                &t,
            )
            .expect_err("no WSL");
            let words = e.to_string();
            assert!(words.contains("wsl --install --no-distribution"), "{words}");
            assert!(words.contains("MONITOR=colinux"), "{words}");
            assert!(!words.contains("NOFIRSTBOOT"), "{words}");
        }
        // 32-bit Windows keeps coLinux, made even where it cannot boot.
        let t = Table::new(&[]);
        let c = choose_from(
            auto_order_for(true, false),
            Request::Auto,
            "the profile",
            true,
            &kernels(),
            &t,
        )
        .expect("coLinux machines are made anywhere");
        assert_eq!(c.monitor, Monitor::Colinux);
    }

    #[test]
    #[cfg(not(windows))]
    fn wsl_is_probed_even_without_a_boot_and_refused_without_the_nofirstboot_hint() {
        // The install registers a WSL distribution whether it boots it or not.
        let t = Table::new(&[Engine::Uml]);
        let e = choose(
            Request::Given(Monitor::Wsl),
            "--monitor",
            false,
            &kernels(),
            &t,
        )
        .expect_err("refused");
        assert_eq!(t.asked()[0], Engine::Wsl);
        let words = e.to_string();
        assert!(
            words.contains("MONITOR=wsl (--monitor): WSL 2 cannot run"),
            "{words}"
        );
        assert!(words.contains("User-mode Linux works here"), "{words}");
        assert!(!words.contains("NOFIRSTBOOT"), "{words}");
        let t = Table::new(&[Engine::Wsl]);
        let c = choose(
            Request::Given(Monitor::Wsl),
            "--monitor",
            false,
            &kernels(),
            &t,
        )
        .expect("works");
        assert_eq!((c.monitor, c.accel), (Monitor::Wsl, None));
        // auto never takes wsl (yet).
        assert!(!auto_order().contains(&Engine::Wsl));
    }

    #[test]
    #[cfg(not(windows))]
    fn auto_takes_the_first_engine_that_works_and_probes_no_further() {
        // SAFETY-free: the tests of this module do not set COLINUX_SETUP_QEMU_ACCEL.
        let t = Table::new(&[Engine::Uml, TCG]);
        let c = choose(Request::Auto, "the profile", true, &kernels(), &t).expect("choice");
        assert_eq!((c.monitor, c.accel), (Monitor::Uml, None));
        assert_eq!(t.asked(), vec![Engine::Uml]);
        assert!(
            c.why.contains("User-mode Linux runs guests here"),
            "{}",
            c.why
        );

        let t = Table::new(&[TCG]);
        let c = choose(Request::Auto, "the profile", false, &kernels(), &t).expect("choice");
        assert_eq!((c.monitor, c.accel), (Monitor::Qemu, Some(Accel::Tcg)));
        assert_eq!(t.asked(), vec![Engine::Uml, KVM, TCG]);
        assert_eq!(c.verdicts.len(), 3);
        assert!(!c.verdicts[0].works && !c.verdicts[1].works && c.verdicts[2].works);
    }

    #[test]
    #[cfg(not(windows))]
    fn auto_with_nothing_that_works_and_no_boot_planned_makes_the_machine_for_uml() {
        let t = Table::new(&[]);
        let c = choose(Request::Auto, "the profile", false, &kernels(), &t).expect("choice");
        assert_eq!((c.monitor, c.accel), (Monitor::Uml, None));
        assert_eq!(c.verdicts.len(), 3);
        assert!(
            c.why
                .contains("no monitor can run a guest on this host (uml: does not work here")
                && c.why.contains("made for User-mode Linux"),
            "{}",
            c.why
        );
    }

    #[test]
    #[cfg(not(windows))]
    fn auto_with_nothing_that_works_lists_every_probe_and_what_to_do() {
        let t = Table::new(&[]);
        let e = choose(Request::Auto, "the profile", true, &kernels(), &t).expect_err("none");
        let m = e.to_string();
        for needle in [
            "no monitor can run a guest on this host",
            "uml: does not work here: uml fails in this table",
            "qemu/kvm: does not work here",
            "qemu/tcg: does not work here",
            "apt-get install qemu-system-x86",
        ] {
            assert!(m.contains(needle), "`{needle}` not in: {m}");
        }
    }

    #[test]
    #[cfg(not(windows))]
    fn a_given_monitor_that_cannot_run_is_refused_naming_the_cause_and_one_that_works() {
        let t = Table::new(&[TCG]);
        let e = choose(
            Request::Given(Monitor::Uml),
            "--monitor",
            true,
            &kernels(),
            &t,
        )
        .expect_err("refused");
        let m = e.to_string();
        for needle in [
            "MONITOR=uml (--monitor): User-mode Linux cannot run a guest on this host",
            "uml fails in this table",
            "QEMU without KVM (TCG emulation) works here (give --monitor qemu",
            "NOFIRSTBOOT=1",
        ] {
            assert!(m.contains(needle), "`{needle}` not in: {m}");
        }
    }

    #[test]
    #[cfg(not(windows))]
    fn qemu_falls_back_from_kvm_to_tcg_and_says_which() {
        let t = Table::new(&[TCG]);
        let c = choose(
            Request::Given(Monitor::Qemu),
            "--monitor",
            true,
            &kernels(),
            &t,
        )
        .expect("choice");
        assert_eq!(c.accel, Some(Accel::Tcg));
        assert_eq!(t.asked(), vec![KVM, TCG]);
        assert!(c.why.contains("QEMU without KVM"), "{}", c.why);
    }

    #[test]
    fn without_a_boot_a_given_monitor_is_not_probed_and_colinux_is_never_refused() {
        let t = Table::new(&[]);
        let c = choose(
            Request::Given(Monitor::Uml),
            "MONITOR",
            false,
            &kernels(),
            &t,
        )
        .expect("choice");
        assert_eq!(c.monitor, Monitor::Uml);
        assert!(t.asked().is_empty());
        assert!(c.why.contains("not probed"), "{}", c.why);

        let c = choose(
            Request::Given(Monitor::Colinux),
            "the profile",
            true,
            &kernels(),
            &t,
        )
        .expect("colinux is kept");
        assert_eq!(c.monitor, Monitor::Colinux);
        assert!(c.why.contains("not this one"), "{}", c.why);
    }

    /// A kit's UML kernel without an execute bit is probed through an executable copy
    /// (here a stand-in that prints the probe guest's marker, as a booted guest does).
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn a_uml_kernel_without_an_execute_bit_is_probed_through_a_copy() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = dir.path().join("linux.uml");
        std::fs::write(
            &kernel,
            format!("#!/bin/sh\necho {}\n", probe_guest::MARKER),
        )
        .expect("write");
        std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let v = probe_uml(Some(&kernel));
        assert!(v.works, "{v:?}");
        let mode = std::fs::metadata(&kernel)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "the kit's file is left as it is");
    }

    #[test]
    fn the_panic_reason_quotes_the_failing_line_before_the_panic() {
        let r = crate::monitor::RunResult {
            exit_code: None,
            timed_out: false,
            interrupted: false,
            panicked: true,
            stalled: false,
            panic_line: Some(
                "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b".into(),
            ),
            tail: [
                "Run /init as init process",
                "userspace - ptrace set fp regs failed, errno = 14",
                "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
                "CPU: 0 PID: 1 Comm: init Not tainted",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            elapsed: Duration::from_secs(1),
        };
        let m = panic_reason(&r);
        assert!(
            m.contains("`userspace - ptrace set fp regs failed, errno = 14`, then `Kernel panic - not syncing: Attempted to kill init!"),
            "{m}"
        );
    }
}
