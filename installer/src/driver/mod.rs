//! The install's "install driver" step (coLinux monitor only), its rollback, and the
//! driver's part of `status` and `uninstall`.
//!
//! The driver comes from the kit: the file with role `driver` for this host. It is
//! copied into the install folder (journalled like every file), checked again there
//! (size and SHA-256 against kit.toml, then Authenticode against the kit's pinned
//! signer for a PE file), and registered with the host ([`driver_bundle::host`]).
//! A driver this install registered is journalled first, so a rollback removes it;
//! one that was there before is left alone. Without a driver in the kit the machine is
//! installed without one, with a warning that says how to add it.
//!
//! Test-signing is accepted only with the answer `TESTSIGNING=1`, and then warned
//! about in the output and the log. The answer `DRIVERSIGNER` (a CA certificate file or
//! `sha256:THUMBPRINT`, as `driver verify --signer`) pins the signer instead of the
//! kit's own pin: an administrator's trust decision, e.g. setup.msi's DRIVERSIGNER.
//!
//! [`host`] chooses the driver host and installs a verified file; [`signer`] holds the
//! signer policy. The `driver` command uses both; they live here, below the commands.

pub mod host;
pub mod signer;

use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use driver_bundle::authenticode::{Pin, Policy};
use driver_bundle::host::Installed;
use driver_bundle::manifest::{Host, Manifest, Role, Signer};
use serde::{Deserialize, Serialize};

use crate::engine::step::{Applied, HostStep, Named, undo_data};
use crate::engine::{Ctx, Entry, Journal, Removed, Summary};
use crate::plan::Plan;
use crate::profile::Monitor;
use crate::state::{FileRecord, InstallState, RunLog};

/// The step's name: its record's key in install-state.json and its test hook.
pub const NAME: &str = "driver";

/// The machine's recorded driver, if any.
pub fn record(st: &InstallState) -> Result<Option<DriverRecord>> {
    st.object(NAME)
}

/// The ring-0 driver step (coLinux monitor).
pub struct Driver;

impl HostStep for Driver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(
        &self,
        plan: &Plan,
        ctx: &mut Ctx<'_>,
        journal: &mut Journal,
        old: Option<&InstallState>,
        summary: &mut Summary,
    ) -> Result<Applied> {
        let (rec, file) = step(plan, ctx, journal, old, summary)?;
        Applied::record(rec.as_ref(), file.into_iter().collect())
    }

    fn roll_back(&self, undo: &serde_json::Value, log: &mut RunLog) -> Vec<String> {
        undo_data::<Named>("a driver", undo, log)
            .and_then(|n| rollback(&n.name, log))
            .into_iter()
            .collect()
    }

    fn uninstall(
        &self,
        record: &serde_json::Value,
        log: &mut RunLog,
        out: &mut Removed,
    ) -> Result<()> {
        let rec = DriverRecord::deserialize(record)
            .context("install-state.json's driver record cannot be read")?;
        out.reboot_required |= uninstall(&rec, log, &mut out.removed)?;
        Ok(())
    }
}

/// The driver, as install-state.json records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverRecord {
    /// Service (Windows) or module (Linux) name.
    pub name: String,
    /// The host kind that installed it (`windows-scm`, `linux-module`, `recording`).
    pub host: String,
    /// The driver file in the install folder.
    pub file: String,
    /// What happened (`installed`, `already installed`, `not installed: ...`).
    pub state: String,
    /// This install registered it (so uninstall removes it).
    #[serde(default)]
    pub created: bool,
    /// The signer the file was checked against, when it is a signed PE file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

fn test_signing(plan: &Plan) -> Result<bool> {
    match plan.answers.get("TESTSIGNING").map(String::as_str) {
        None | Some("0") | Some("") => Ok(false),
        Some("1") => Ok(true),
        Some(v) => bail!("TESTSIGNING={v}: expected 1 (allow a test-signed driver) or 0"),
    }
}

/// The `driver` step. Returns the record for install-state.json (`None` for monitors
/// that need no driver).
pub fn step(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    journal: &mut Journal,
    old: Option<&InstallState>,
    summary: &mut Summary,
) -> Result<(Option<DriverRecord>, Option<FileRecord>)> {
    if plan.monitor != Monitor::Colinux {
        return Ok((None, None));
    }
    let allow_test = test_signing(plan)?;
    let found = match &plan.kit {
        Some(kit) => {
            let m = Manifest::load(kit).map_err(|e| anyhow!("KIT: {e}"))?;
            m.files
                .iter()
                .find(|f| f.role == Role::Driver && f.host.fits(Host::current()))
                .cloned()
                .map(|f| (kit.clone(), f))
        }
        None => None,
    };
    let Some((kit, entry)) = found else {
        let w = format!(
            "the coLinux driver is not installed: the kit has no file with role \"driver\" for this host; install it later with `colinux-setup driver install --prefix {}`",
            plan.prefix.display()
        );
        ctx.rep.warn(&w);
        summary.warnings.push(w);
        return Ok((
            Some(DriverRecord {
                name: String::new(),
                host: String::new(),
                file: String::new(),
                state: "not installed (no driver in the kit)".into(),
                created: false,
                signer: None,
            }),
            None,
        ));
    };
    ctx.rep.phase("installing the coLinux driver");
    let file_name = entry
        .path
        .rsplit('/')
        .next()
        .unwrap_or(entry.path.as_str())
        .to_owned();
    let dest = plan.prefix.join(&file_name);
    let src = driver_bundle::manifest::host_path(&kit, &entry.path);
    let bytes = std::fs::read(&src).with_context(|| format!("reading the kit's {}", entry.path))?;
    crate::engine::write_file(&dest, &bytes, journal, summary)?;
    // Checked again where it will be loaded from: the copy is what the host uses.
    driver_bundle::manifest::verify_file(&plan.prefix, &{
        let mut e = entry.clone();
        e.path = file_name.clone();
        e
    })
    .map_err(|e| anyhow!("the driver copied into the install folder: {e}"))?;
    // DRIVERSIGNER (an administrator's pin: a CA file or sha256:THUMBPRINT) replaces
    // the kit's own.
    let pin = match (plan.answers.get("DRIVERSIGNER"), &entry.signer) {
        (Some(given), _) => {
            Some(signer::pin_from_arg(given).map_err(|e| anyhow!("DRIVERSIGNER: {e}"))?)
        }
        (None, Some(Signer::Thumbprint(t))) => Pin::thumbprint(t),
        (None, Some(Signer::Ca(ca))) => {
            let p = driver_bundle::manifest::host_path(&kit, ca);
            let b = std::fs::read(&p).with_context(|| format!("reading the kit's {ca}"))?;
            Some(Pin::ca(&b).map_err(|e| anyhow!("the kit's {ca}: not a certificate: {e}"))?)
        }
        (None, None) => None,
    };
    if pin.is_none() && signer::is_pe(&dest) && !allow_test {
        bail!(
            "the kit's driver {} has no pinned signer (signer or signer_ca in kit.toml); a driver is installed only when its signer is pinned, or with TESTSIGNING=1 for a test-signed driver",
            entry.path
        );
    }
    let policy = Policy {
        pin,
        at: SystemTime::now(),
        allow_test_signing: allow_test,
    };
    let mut host = host::host_for(false)?;
    let name = host.name().to_owned();
    let existed = host
        .status()
        .with_context(|| format!("asking the host about the {name} driver"))?
        .installed;
    let entry_j = Entry::host(NAME, &Named { name: name.clone() })?;
    let ours_before = journal.entries.contains(&entry_j)
        || old
            .and_then(|s| record(s).ok().flatten())
            .is_some_and(|d| d.created && d.name == name);
    if !existed {
        journal.push(entry_j)?;
    }
    let (outcome, report) = host::install_driver(host.as_mut(), &dest, Some(&policy), true)?;
    if let Some(r) = &report {
        for w in &r.warnings {
            ctx.rep.warn(w);
            ctx.log.line(&format!("WARNING: {w}"));
            summary.warnings.push(w.clone());
        }
        ctx.log.line(&format!(
            "driver {}: signed by \"{}\" (sha256:{}), chain {}",
            file_name,
            r.signer,
            r.thumbprint,
            r.chain.join(" <- ")
        ));
    }
    let state = match &outcome {
        Installed::Created => "installed".to_owned(),
        Installed::AlreadyInstalled => "already installed".to_owned(),
        Installed::PathUpdated { old } => {
            format!("installed (path changed from {})", old.display())
        }
    };
    if outcome != Installed::AlreadyInstalled {
        summary.changed.push(format!("driver {name}"));
    }
    ctx.log
        .line(&format!("driver {name} ({}): {state}", host.kind()));
    let file = FileRecord {
        file: file_name.clone(),
        role: crate::state::FileRole::Driver,
        bytes: entry.size,
        digest: Some(format!("sha256:{}", entry.sha256)),
        origin: crate::state::Origin::Install,
        fs: None,
        uuid: None,
    };
    Ok((
        Some(DriverRecord {
            name,
            host: host.kind().to_owned(),
            file: file_name,
            state,
            created: !existed || ours_before,
            signer: report.map(|r| format!("{} (sha256:{})", r.signer, r.thumbprint)),
        }),
        Some(file),
    ))
}

/// Rollback of a journalled driver: remove it; returns what was done.
pub fn rollback(name: &str, log: &mut RunLog) -> Option<String> {
    let result = host::host_for(false).and_then(|mut h| h.remove().map_err(|e| anyhow!(e)));
    crate::engine::step::rolled_back(&format!("driver {name}"), result, log)
}

/// Uninstall: removes a driver this tool installed. `Ok(true)` when a reboot finishes it.
pub fn uninstall(rec: &DriverRecord, log: &mut RunLog, removed: &mut Vec<String>) -> Result<bool> {
    if !rec.created {
        return Ok(false);
    }
    let mut host = host::host_for(false)?;
    let outcome = host.remove().map_err(|e| {
        anyhow!(e).context(format!(
            "cannot remove the driver {} this install made; run the uninstall as an administrator (Windows) or root (Linux)",
            rec.name
        ))
    })?;
    Ok(crate::engine::step::uninstalled(
        &format!("driver {}", rec.name),
        outcome,
        log,
        removed,
    ))
}

/// The driver's part of `status --json`: the record and what the host says now.
pub fn status(rec: Option<&DriverRecord>) -> serde_json::Value {
    let Some(rec) = rec.filter(|r| !r.name.is_empty()) else {
        return serde_json::json!({
            "state": rec.map_or("not needed by this monitor", |r| r.state.as_str()),
        });
    };
    let now = host::host_for(false).and_then(|mut h| h.status().map_err(|e| anyhow!(e)));
    serde_json::json!({
        "name": rec.name,
        "file": rec.file,
        "installed_state": rec.state,
        "created": rec.created,
        "signer": rec.signer,
        "host": match now {
            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
            Err(e) => serde_json::json!({"error": format!("{e:#}")}),
        },
    })
}

/// Used by `status` text output.
pub fn status_line(v: &serde_json::Value) -> String {
    match v.get("host") {
        Some(h) if h.get("error").is_none() => format!(
            "{} ({}), now {}{}",
            v["name"].as_str().unwrap_or(""),
            v["installed_state"].as_str().unwrap_or(""),
            h["state"].as_str().unwrap_or("unknown"),
            h["path"]
                .as_str()
                .map(|p| format!(" at {p}"))
                .unwrap_or_default()
        ),
        Some(h) => format!(
            "{}: cannot ask the host: {}",
            v["name"].as_str().unwrap_or(""),
            h["error"].as_str().unwrap_or("")
        ),
        None => v["state"].as_str().unwrap_or("").to_owned(),
    }
}
