//! A local kit folder for the installer: load its `kit.toml` and verify every file
//! before anything is used or changed.
//!
//! The manifest type and the per-file check live in `driver_bundle::manifest`; this
//! module adds the installer's policy: a kit without `kit.toml` is refused, every listed
//! file must match, and a file the installer would read that the manifest does not list
//! (an extra file dropped into `rootfs/` or `dist/`) is a problem too, because it would
//! reach the machine unverified. Symbolic links under `rootfs/` are allowed unlisted:
//! the image builder stores them as links and never follows them on the host.

use std::path::Path;

use anyhow::{Result, anyhow};
use driver_bundle::manifest::{Manifest, ManifestError, VerifyError};

/// One thing wrong with a kit.
#[derive(Debug)]
pub enum Problem {
    /// A listed file does not match (missing, wrong size or digest).
    File(VerifyError),
    /// A file in the folder the manifest does not list.
    Unlisted(String),
    /// The folder could not be walked.
    Walk(std::io::Error),
    /// A file with a pinned signer whose Authenticode signature was refused.
    Signature(String, anyhow::Error),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::File(e) => write!(f, "{e}"),
            Problem::Unlisted(p) => write!(
                f,
                "{p}: in the kit folder but not listed in kit.toml (list it, e.g. with `colinux-setup kit init`, or remove it)"
            ),
            Problem::Walk(e) => write!(f, "cannot list the kit folder: {e}"),
            Problem::Signature(p, e) => write!(f, "{p}: {e:#}"),
        }
    }
}

/// Whether an unlisted path is allowed: a symlink under `rootfs/` (never followed).
fn allowed_unlisted(dir: &Path, path: &str) -> bool {
    path.starts_with("rootfs/")
        && std::fs::symlink_metadata(driver_bundle::manifest::host_path(dir, path))
            .is_ok_and(|m| m.file_type().is_symlink())
}

/// Every problem of a loaded manifest against its folder (empty when all is well),
/// and a line for each signed file whose signature was trusted.
pub fn check(dir: &Path, manifest: &Manifest) -> (Vec<Problem>, Vec<String>) {
    let mut out: Vec<Problem> = manifest
        .verify_all(dir)
        .into_iter()
        .map(Problem::File)
        .collect();
    match manifest.unlisted(dir) {
        Ok(extra) => out.extend(
            extra
                .into_iter()
                .filter(|p| !allowed_unlisted(dir, p))
                .map(Problem::Unlisted),
        ),
        Err(e) => out.push(Problem::Walk(e)),
    }
    let mut signed = Vec::new();
    // Signatures only of files that are intact: a damaged file is already reported.
    for f in manifest.files.iter().filter(|f| f.signer.is_some()) {
        if out
            .iter()
            .any(|p| matches!(p, Problem::File(e) if e.path() == f.path))
        {
            continue;
        }
        match crate::driver::signer::check_signed(dir, f) {
            Ok(line) => signed.push(line),
            Err(e) => out.push(Problem::Signature(f.path.clone(), e)),
        }
    }
    (out, signed)
}

/// Loads `DIR/kit.toml` and verifies the whole kit (sizes, digests, nothing unlisted,
/// pinned signatures); the error lists every problem.
pub fn load_verified(dir: &Path) -> Result<Manifest> {
    if !dir.is_dir() {
        return Err(anyhow!(
            "KIT={}: no such folder; give --kit DIR, a folder with kit.toml at its root",
            dir.display()
        ));
    }
    let manifest = Manifest::load(dir).map_err(|e| match e {
        ManifestError::Missing { .. } => anyhow!("KIT: {e}"),
        other => anyhow!("KIT: {other}"),
    })?;
    let (found, _signed) = check(dir, &manifest);
    if found.is_empty() {
        return Ok(manifest);
    }
    let mut msg = format!(
        "KIT={}: the kit does not match its kit.toml ({} problem(s)); nothing was changed:",
        dir.display(),
        found.len()
    );
    for p in &found {
        msg.push_str("\n  ");
        msg.push_str(&p.to_string());
    }
    Err(anyhow!(msg))
}
