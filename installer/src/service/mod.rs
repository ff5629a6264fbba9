//! The machine as a Windows service: colinux-daemon started by the Service Control
//! Manager at boot, behind one trait ([`ServiceHost`]: install, remove, status).
//!
//! - Windows ([`windows::ScmHost`], `cfg(windows)`): the Service Control Manager,
//!   through driver-bundle's SCM wrapper ([`driver_bundle::scm`]), the driver's too.
//! - [`recording::RecordingHost`]: no host at all; it keeps the services in memory (or
//!   a JSON file) and records each action, for `--dry-run` and the tests.
//! - Linux has no implementation: colinux-daemon's `--run-service` exists only on
//!   Windows, and a systemd unit for another monitor is not what was asked for;
//!   [`native`] says so.
//!
//! Every host fails with [`ScmError`], the wrapper's one error, as the driver's hosts
//! do: the recording host's simulated refusals read as the SCM's own.
//!
//! We create the service ourselves instead of calling `colinux-daemon --install-service`,
//! because the daemon re-joins its argv without re-quoting (colinux-spec.md §3.5). The
//! service is the daemon's own, otherwise: `SERVICE_WIN32_OWN_PROCESS`, LocalSystem,
//! depending on `CoLinuxDriver` (plus `tap0801co` when config.txt has a `tuntap` NIC
//! and `NPF` for a `pcap-bridge` one), failure actions "restart after 1 s, restart
//! after 1 s, then nothing; reset after 90 s"; but it starts at boot
//! (`SERVICE_AUTO_START`) where the daemon's starts on demand, because running the
//! machine at boot is what the feature is for. Its command line is
//! `"DIR\colinux-daemon.exe" @DIR\config.txt --run-service NAME`: `--run-service`
//! makes the daemon change to its own folder first (§1.1 step 1, §3.5), so config.txt's
//! relative paths resolve in the install folder.

pub mod recording;
pub mod step;
#[cfg(windows)]
pub mod windows;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The service's name when `SERVICENAME` is not given.
pub const DEFAULT_NAME: &str = "coLinux";
/// The monitor's executable, in the install folder.
pub const DAEMON_EXE: &str = "colinux-daemon.exe";
/// The coLinux driver's service (`driver_bundle::host::SERVICE_NAME`).
pub const DRIVER_SERVICE: &str = driver_bundle::host::SERVICE_NAME;
/// The coLinux TAP driver's service (colinux-spec.md §4.1: component `tap0801co`).
pub const TAP_SERVICE: &str = "tap0801co";
/// WinPcap's driver, which a `pcap-bridge` NIC needs (§3.5).
pub const PCAP_SERVICE: &str = "NPF";
/// The account the service runs as.
pub const ACCOUNT: &str = "LocalSystem";

/// One failure action: restart the service after `delay_ms`, or nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureAction {
    /// `restart` or `none`.
    pub action: String,
    /// Milliseconds before the action.
    pub delay_ms: u32,
}

/// What the Service Control Manager does when the service dies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailurePolicy {
    /// Seconds without a failure after which the count starts again.
    pub reset_secs: u32,
    /// The first, second and later failures' actions.
    pub actions: Vec<FailureAction>,
}

impl FailurePolicy {
    /// colinux-daemon's own (service.c:39-68): restart after 1 s twice, then nothing;
    /// reset after 90 s.
    pub fn daemon() -> FailurePolicy {
        let restart = FailureAction {
            action: "restart".into(),
            delay_ms: 1000,
        };
        FailurePolicy {
            reset_secs: 90,
            actions: vec![
                restart.clone(),
                restart,
                FailureAction {
                    action: "none".into(),
                    delay_ms: 0,
                },
            ],
        }
    }
}

/// The service as it should be on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The service (key) name.
    pub name: String,
    /// What the Services console shows.
    pub display_name: String,
    /// The Services console's description.
    pub description: String,
    /// The daemon's path.
    pub exe: String,
    /// The daemon's arguments, unquoted.
    pub args: Vec<String>,
    /// The command line the SCM stores (`ImagePath`): `exe` and `args`, quoted.
    pub command_line: String,
    /// Services that must run first.
    pub dependencies: Vec<String>,
    /// `auto` (at boot).
    pub start: String,
    /// `LocalSystem`.
    pub account: String,
    /// What happens when it dies.
    pub failure: FailurePolicy,
}

/// Why a service could not be described.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// `SERVICENAME` (or `--name`) is not a name the SCM and the daemon accept.
    #[error("service name {name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The machine folder has no config.txt.
    #[error(
        "{path}: cannot read it; install the machine there first (colinux-setup install --prefix DIR)"
    )]
    NoConfig {
        /// config.txt.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// config.txt is not one colinux-daemon accepts.
    #[error(
        "{path}: colinux-daemon would refuse it: {first}; fix it (colinux-setup config check) before making it a service"
    )]
    BadConfig {
        /// config.txt.
        path: String,
        /// The first error found.
        first: String,
    },
}

/// Checks a service name: 1..=256 characters (the SCM's limit), no `/` or `\` (the SCM
/// refuses them), no `"` or control characters (the command line could not carry
/// them), not starting with `-` or `@` (the daemon would read it as a switch or a
/// config file: colinux-spec.md §1.1, §1.4).
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    let bad = |reason: &str| {
        Err(SpecError::BadName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let n = name.chars().count();
    if n == 0 {
        return bad("empty; give a name such as coLinux");
    }
    if n > 256 {
        return bad(&format!(
            "{n} characters; Windows allows at most 256 in a service name"
        ));
    }
    if name.contains(['/', '\\']) {
        return bad("has a / or \\, which Windows refuses in a service name");
    }
    if name.contains('"') || name.chars().any(char::is_control) {
        return bad("has a quote or a control character, which its command line cannot carry");
    }
    if name.starts_with(['-', '@']) {
        return bad(
            "starts with - or @, which colinux-daemon reads as a switch or a config file; start it with a letter",
        );
    }
    if name.trim() != name {
        return bad("starts or ends with a space");
    }
    Ok(())
}

/// Quotes one argument the way MSVCRT's argv parser reads it back unchanged (only
/// when it needs quotes: spaces, tabs, quotes, or empty).
pub fn quote_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"', '\n', '\u{b}']) {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    let mut slashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => slashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', slashes * 2 + 1));
                out.push('"');
                slashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', slashes));
                out.push(c);
                slashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', slashes * 2));
    out.push('"');
    out
}

/// The services a machine's config.txt needs first (colinux-spec.md §3.5).
pub fn dependencies(config: &config_txt::Config) -> Vec<String> {
    let mut deps = vec![DRIVER_SERVICE.to_owned()];
    if config
        .eth
        .values()
        .any(|n| matches!(n, config_txt::Nic::Tuntap { .. }))
    {
        deps.push(TAP_SERVICE.to_owned());
    }
    if config
        .eth
        .values()
        .any(|n| matches!(n, config_txt::Nic::PcapBridge { .. }))
    {
        deps.push(PCAP_SERVICE.to_owned());
    }
    deps
}

/// The service for the machine in `prefix` whose config.txt reads `config_text`.
pub fn spec(prefix: &Path, name: &str, config_text: &[u8]) -> Result<Spec, SpecError> {
    validate_name(name)?;
    let config_path = prefix.join("config.txt");
    let parsed = config_txt::parse(config_text, &config_path.display().to_string());
    if let Some(d) = parsed.diagnostics.iter().find(|d| d.is_error()) {
        return Err(SpecError::BadConfig {
            path: config_path.display().to_string(),
            first: d.to_string(),
        });
    }
    spec_for_config(prefix, name, &parsed.config)
}

/// The service for the machine in `prefix` whose config.txt holds `config` (an
/// install's plan, which has the model already).
pub fn spec_for_config(
    prefix: &Path,
    name: &str,
    config: &config_txt::Config,
) -> Result<Spec, SpecError> {
    validate_name(name)?;
    let config_path = prefix.join("config.txt");
    let exe = prefix.join(DAEMON_EXE).display().to_string();
    let args = vec![
        format!("@{}", config_path.display()),
        "--run-service".to_owned(),
        name.to_owned(),
    ];
    // The program is quoted even without spaces, as the daemon does: an unquoted
    // ImagePath is what audit tools flag.
    let mut command_line = format!("\"{exe}\"");
    for a in &args {
        command_line.push(' ');
        command_line.push_str(&quote_arg(a));
    }
    Ok(Spec {
        name: name.to_owned(),
        display_name: format!("coLinux machine ({})", prefix.display()),
        description: format!(
            "Runs the coLinux machine of {} at boot (colinux-daemon --run-service); stopping the service shuts the guest down. Made by colinux-setup.",
            prefix.display()
        ),
        exe,
        args,
        command_line,
        dependencies: dependencies(config),
        start: "auto".into(),
        account: ACCOUNT.into(),
        failure: FailurePolicy::daemon(),
    })
}

/// The service for the machine installed in `prefix` (its config.txt is read).
pub fn spec_for_prefix(prefix: &Path, name: &str) -> Result<Spec, SpecError> {
    validate_name(name)?;
    let path = prefix.join("config.txt");
    let text = std::fs::read(&path).map_err(|source| SpecError::NoConfig {
        path: path.display().to_string(),
        source,
    })?;
    spec(prefix, name, &text)
}

/// What an install did.
// The same words as driver_bundle::host's outcomes, on purpose.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Installed {
    /// The service was created.
    Created,
    /// It existed with this configuration; nothing changed.
    AlreadyInstalled,
    /// It existed with another configuration, now changed (the fields that differed).
    Updated {
        /// What differed: `command line`, `dependencies`, ...
        changed: Vec<String>,
    },
}

/// What a remove did: the same outcomes as the driver's.
pub use driver_bundle::scm::Removed;
/// A service host's failure: the SCM wrapper's one error, the driver host's too.
pub use driver_bundle::scm::ScmError;

/// A service's state on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The service name.
    pub name: String,
    /// Whether it exists.
    pub installed: bool,
    /// `not-installed`, `stopped`, `running`, `start-pending`, `stop-pending`, ...
    pub state: String,
    /// Its command line (`ImagePath`).
    pub command_line: Option<String>,
    /// Its start type (`auto`, `demand`, `disabled`, ...).
    pub start: Option<String>,
    /// The services it depends on.
    pub dependencies: Vec<String>,
    /// Marked for deletion: gone after a reboot.
    pub marked_for_deletion: bool,
}

impl Status {
    /// The status of a service that is not there.
    pub fn absent(name: &str) -> Status {
        Status {
            name: name.to_owned(),
            installed: false,
            state: "not-installed".to_owned(),
            command_line: None,
            start: None,
            dependencies: Vec::new(),
            marked_for_deletion: false,
        }
    }
}

/// Installs, removes and reports services on one host.
pub trait ServiceHost {
    /// Which host this is (`windows-scm`, `recording`).
    fn kind(&self) -> &'static str;
    /// Creates the service, or changes one of that name whose configuration differs;
    /// idempotent. Does not start it.
    fn install(&mut self, spec: &Spec) -> Result<Installed, ScmError>;
    /// Stops the service when it runs, then deletes it; a missing one is not an error.
    fn remove(&mut self, name: &str) -> Result<Removed, ScmError>;
    /// Reports a service's state.
    fn status(&mut self, name: &str) -> Result<Status, ScmError>;
}

/// The real host of this machine: the SCM on Windows, an error elsewhere.
pub fn native() -> Result<Box<dyn ServiceHost>, ScmError> {
    #[cfg(windows)]
    {
        Ok(Box::new(windows::ScmHost::new()))
    }
    #[cfg(not(windows))]
    {
        Err(ScmError::Unsupported {
            feature: "a machine service".to_owned(),
            instead: "colinux-daemon --run-service needs it; on this host run the machine with `colinux-setup boot`"
                .to_owned(),
        })
    }
}

/// The environment variable of the recording-host test hook: it names a JSON file that
/// keeps the recording host's state, so the tests can drive every path on Linux; it is
/// not part of the product's interface.
pub const TEST_HOST_ENV: &str = "COLINUX_SETUP_TEST_SERVICE_HOST";

/// The host to act on: the recording host for the test hook (file) or a dry run
/// (memory), else the real one. It lives here, not with the `service` command,
/// because the install's service step, its rollback, `status` and `uninstall` use it too.
pub fn host_for(dry_run: bool) -> anyhow::Result<Box<dyn ServiceHost>> {
    if let Some(file) = std::env::var_os(TEST_HOST_ENV) {
        let h = recording::RecordingHost::with_file(Path::new(&file))?;
        return Ok(Box::new(if dry_run { h.detached() } else { h }));
    }
    if dry_run {
        return Ok(Box::new(recording::RecordingHost::new()));
    }
    Ok(native()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_the_reason() {
        assert!(validate_name("coLinux").is_ok());
        assert!(validate_name("my machine").is_ok());
        assert!(validate_name(&"a".repeat(256)).is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("a/b", "/"),
            ("a\\b", "/"),
            ("-x", "switch"),
            ("@x", "config file"),
            ("a\"b", "quote"),
        ] {
            let e = validate_name(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = validate_name(&"a".repeat(257))
            .expect_err("long")
            .to_string();
        assert!(e.contains("257 characters"), "{e}");
    }

    #[test]
    fn arguments_are_quoted_only_when_msvcrt_needs_it() {
        assert_eq!(quote_arg("coLinux"), "coLinux");
        assert_eq!(quote_arg(r"@C:\m\config.txt"), r"@C:\m\config.txt");
        assert_eq!(quote_arg("my vm"), "\"my vm\"");
        assert_eq!(quote_arg(r"C:\a b\"), r#""C:\a b\\""#);
        assert_eq!(quote_arg(r#"a"b"#), r#""a\"b""#);
        assert_eq!(quote_arg(""), "\"\"");
    }

    #[test]
    fn the_spec_follows_config_txt() {
        let p = Path::new("/m");
        let s = spec(p, "vm 1", b"kernel=vmlinux\neth0=tuntap,TAP1\n").expect("spec");
        assert_eq!(
            s.command_line,
            "\"/m/colinux-daemon.exe\" @/m/config.txt --run-service \"vm 1\""
        );
        assert_eq!(s.dependencies, ["CoLinuxDriver", "tap0801co"]);
        let s = spec(p, "coLinux", b"kernel=vmlinux\neth0=slirp\n").expect("spec");
        assert_eq!(s.dependencies, ["CoLinuxDriver"]);
        let e = spec(p, "coLinux", b"mem=64\ncobd0=x\ncobd0=y\n").expect_err("bad config");
        assert!(matches!(e, SpecError::BadConfig { .. }), "{e}");
    }
}
