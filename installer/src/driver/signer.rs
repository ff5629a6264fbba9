//! Signer policy for driver files: which signer a pin names, which files need an
//! Authenticode signature, and the check of a kit file against its manifest's pin.
//!
//! These live with the driver step rather than with the `driver` command because the
//! install (its plan and its driver step) and `kit verify` use them too: the engine
//! below the commands must not reach up into a command for its trust decisions.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use driver_bundle::authenticode::{self, Pin, Policy, Report};
use driver_bundle::manifest::{KitFile, Signer};

/// The pin a `--signer` value names: a thumbprint, or a certificate file.
pub fn pin_from_arg(s: &str) -> Result<Pin> {
    if let Some(p) = Pin::thumbprint(s) {
        return Ok(p);
    }
    if s.starts_with("sha256:") {
        bail!("--signer {s}: expected sha256: and 64 hexadecimal digits");
    }
    let bytes = std::fs::read(s).with_context(|| {
        format!("--signer {s}: not a sha256:THUMBPRINT and not a readable certificate file")
    })?;
    Pin::ca(&bytes).map_err(|e| anyhow!("--signer {s}: not a PEM or DER certificate: {e}"))
}

/// Prints a test-signing warning where nobody can miss it.
pub fn warn_loudly(report: &Report) {
    for w in &report.warnings {
        eprintln!("colinux-setup: WARNING: {w}");
    }
    if report.warnings.iter().any(|w| w.contains("TEST-SIGNING")) {
        eprintln!(
            "colinux-setup: WARNING: a test-signed driver loads only on a Windows in test mode (bcdedit /set testsigning on); never on production machines"
        );
    }
}

/// Checks a signed kit file against its manifest signer (for `kit verify` and the
/// install); returns a one-line description of the signer.
pub fn check_signed(dir: &Path, f: &KitFile) -> Result<String> {
    let pin = match &f.signer {
        Some(Signer::Thumbprint(t)) => Pin::thumbprint(t)
            .ok_or_else(|| anyhow!("signer thumbprint {t} is not 64 hex digits"))?,
        Some(Signer::Ca(ca)) => {
            let p = driver_bundle::manifest::host_path(dir, ca);
            let bytes = std::fs::read(&p).with_context(|| format!("reading the signer CA {ca}"))?;
            Pin::ca(&bytes).map_err(|e| anyhow!("signer CA {ca}: not a certificate: {e}"))?
        }
        None => bail!("no signer is pinned for {}", f.path),
    };
    let data = std::fs::read(driver_bundle::manifest::host_path(dir, &f.path))
        .with_context(|| format!("reading {}", f.path))?;
    let r = authenticode::verify(
        &data,
        &Policy {
            pin: Some(pin),
            at: SystemTime::now(),
            allow_test_signing: false,
        },
    )?;
    Ok(format!(
        "{}: Authenticode signature trusted: \"{}\" (sha256:{})",
        f.path, r.signer, r.thumbprint
    ))
}

/// Whether a driver file needs an Authenticode signature: PE files do (Windows
/// drivers); a Linux module (ELF) is not Authenticode-signed.
pub fn is_pe(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"MZ")
}
