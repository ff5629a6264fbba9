//! The driver host factory and the verified install of a driver file.
//!
//! The install's driver step, its rollback, `status`, `uninstall` and the `driver`
//! command all act on the same host, chosen here once (real, recording for a dry run,
//! or the test hook's recording host), so that the engine does not depend on the
//! command that happens to expose it.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use driver_bundle::authenticode::{self, Policy, Report};
use driver_bundle::host::{self, DriverHost, Installed};
use driver_bundle::scm::ScmError;

use super::signer::{is_pe, warn_loudly};

/// The environment variable of the recording-host test hook: it names a JSON file
/// that keeps the recording host's state, so the tests can drive the install and
/// remove paths on any machine; it is not part of the product's interface.
pub const TEST_HOST_ENV: &str = "COLINUX_SETUP_TEST_DRIVER_HOST";

/// The host to act on: the recording host for the test hook (file) or a dry run
/// (memory), else the real one. A dry run on the test hook's host reads its state and
/// writes nothing, as the service's [`crate::service::host_for`] does.
pub fn host_for(dry_run: bool) -> Result<Box<dyn DriverHost>> {
    let name = if cfg!(windows) {
        host::SERVICE_NAME
    } else {
        host::MODULE_NAME
    };
    if let Some(file) = std::env::var_os(TEST_HOST_ENV) {
        let h = host::recording::RecordingHost::with_file(name, Path::new(&file))?;
        return Ok(Box::new(if dry_run { h.detached() } else { h }));
    }
    if dry_run {
        return Ok(Box::new(host::recording::RecordingHost::new(name)));
    }
    Ok(host::native())
}

/// Verifies (PE files) and installs a driver file; the lock must be held by the caller.
pub fn install_driver(
    host: &mut dyn DriverHost,
    file: &Path,
    policy: Option<&Policy>,
    start: bool,
) -> Result<(Installed, Option<Report>)> {
    let report = if is_pe(file) {
        let policy = policy.ok_or_else(|| {
            anyhow!(
                "{}: a Windows driver needs a pinned signer to be checked against",
                file.display()
            )
        })?;
        let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let r = authenticode::verify(&data, policy).map_err(|e| {
            anyhow!(e).context(format!(
                "{}: the driver's signature was refused; nothing was installed",
                file.display()
            ))
        })?;
        warn_loudly(&r);
        // Windows' own verdict, reported: a driver it does not trust will not load.
        #[cfg(windows)]
        if let Err(hr) = driver_bundle::wintrust::verify(file) {
            eprintln!(
                "colinux-setup: warning: WinVerifyTrust does not trust {} (HRESULT {:#010x}); Windows may refuse to load it",
                file.display(),
                hr as u32
            );
        }
        Some(r)
    } else if cfg!(windows) {
        bail!(
            "{}: not a PE file; a Windows driver is a signed .sys file",
            file.display()
        );
    } else {
        None
    };
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let outcome = host
        .install(&abs, start)
        .map_err(|e| host_error(e, host.kind()))?;
    Ok((outcome, report))
}

/// A host's refusal, with which host refused.
pub fn host_error(e: ScmError, kind: &str) -> anyhow::Error {
    anyhow!(e).context(format!("the driver host ({kind}) refused"))
}
