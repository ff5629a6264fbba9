//! `kit verify DIR` and `kit init DIR`: check a kit folder against its `kit.toml`, and
//! write the `kit.toml` of a folder (for kit authors and tests).
//!
//! `verify` is a checker: exit 0 when every listed file matches and nothing unlisted is
//! in the folder, 1 with every problem listed otherwise. Files with a pinned signer are
//! also checked for a valid Authenticode signature by that signer.
//! `init` describes every file under the folder: its role comes from `--role PATH=ROLE`
//! (PATH a file or a folder), else from where it is (`rootfs/` -> rootfs, `dist/` ->
//! distribution) and its name (`*.sys` -> driver, `linux.uml`/`vmlinux*`/`vmlinuz*`/
//! `bzImage*` -> kernel, `colinux-*.exe`/`colinux-*` -> monitor, `initrd*` -> initrd),
//! else `other`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use driver_bundle::manifest::{self, Host, KitFile, MANIFEST_NAME, Manifest, Role, Signer};

use crate::exit::Outcome;

/// `kit` subcommands.
#[derive(Debug, Subcommand)]
pub enum KitCommand {
    /// Check every file of a kit folder against its kit.toml (size, SHA-256, signer);
    /// exit 0 when all match, 1 with each problem listed.
    Verify(VerifyArgs),
    /// Write kit.toml for a folder: every file with its size, SHA-256 and role.
    Init(InitArgs),
}

/// `kit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The kit folder (kit.toml at its root), or its http(s) URL (fetched into the cache).
    pub dir: PathBuf,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `kit init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The kit folder.
    pub dir: PathBuf,
    /// The kit's name (default: the folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// The kit's version (default: 0).
    #[arg(long = "kit-version", value_name = "VERSION")]
    pub kit_version: Option<String>,
    /// The role of a file or of every file under a folder, e.g. --role win/linux.sys=driver
    /// (repeatable; the longest matching PATH wins).
    #[arg(long, value_name = "PATH=ROLE")]
    pub role: Vec<String>,
    /// The host of a file or folder's files: linux, windows or any (repeatable).
    #[arg(long, value_name = "PATH=HOST")]
    pub host: Vec<String>,
    /// The pinned signer of a file: sha256:THUMBPRINT, or the kit path of a CA
    /// certificate (repeatable), e.g. --signer win/linux.sys=certs/ca.pem.
    #[arg(long, value_name = "PATH=SIGNER")]
    pub signer: Vec<String>,
    /// Replace an existing kit.toml.
    #[arg(long)]
    pub force: bool,
}

/// Runs a `kit` subcommand.
pub fn run(cmd: KitCommand) -> Outcome {
    match cmd {
        // A URL is fetched into the cache first (download::verify_source), then checked as a folder.
        KitCommand::Verify(a) => match crate::download::verify_source(&a.dir, a.json) {
            Ok(dir) => verify(&dir, a.json),
            Err(crate::download::SourceError::Mismatch) => Outcome::CheckFailed,
            Err(crate::download::SourceError::Unfetched(e)) => Outcome::Failed(e),
        },
        KitCommand::Init(a) => match init(&a) {
            Ok(n) => {
                eprintln!(
                    "{}: {n} file(s) listed",
                    a.dir.join(MANIFEST_NAME).display()
                );
                Outcome::Done
            }
            Err(e) => Outcome::Failed(e),
        },
    }
}

fn verify(dir: &Path, json: bool) -> Outcome {
    let manifest = match Manifest::load(dir) {
        Ok(m) => m,
        Err(e) => {
            if json {
                crate::out::outln!(
                    "{}",
                    serde_json::json!({"kit": dir, "ok": false, "problems": [e.to_string()]})
                );
            } else {
                crate::out::outln!("{e}");
            }
            return Outcome::CheckFailed;
        }
    };
    let (found, signed) = crate::kit::check(dir, &manifest);
    let problems: Vec<String> = found.iter().map(ToString::to_string).collect();
    if json {
        crate::out::outln!(
            "{}",
            serde_json::json!({
                "kit": dir,
                "name": manifest.name,
                "version": manifest.version,
                "files": manifest.files.len(),
                "signed": signed,
                "ok": problems.is_empty(),
                "problems": problems,
            })
        );
    } else {
        for p in &problems {
            crate::out::outln!("{p}");
        }
        for s in &signed {
            eprintln!("{s}");
        }
        eprintln!(
            "{}: kit {} {}: {} file(s), {} problem(s)",
            dir.display(),
            manifest.name,
            manifest.version,
            manifest.files.len(),
            problems.len()
        );
    }
    if problems.is_empty() {
        Outcome::Done
    } else {
        Outcome::CheckFailed
    }
}

/// Splits `PATH=VALUE` and checks PATH.
fn split_rule(s: &str, what: &str) -> Result<(String, String)> {
    let (p, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--{what} {s}: expected PATH={}", what.to_uppercase()))?;
    let p = p.trim_end_matches('/');
    manifest::check_path(p).map_err(|e| anyhow!("--{what} {s}: {e}"))?;
    Ok((p.to_owned(), v.to_owned()))
}

/// The value of the longest rule whose PATH is `path` or a folder holding it.
fn lookup<'a>(rules: &'a [(String, String)], path: &str) -> Option<&'a str> {
    rules
        .iter()
        .filter(|(p, _)| {
            path == p
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|(p, _)| p.len())
        .map(|(_, v)| v.as_str())
}

fn default_role(path: &str) -> Role {
    let name = path.rsplit('/').next().unwrap_or(path);
    if path.starts_with("rootfs/") {
        Role::Rootfs
    } else if path.starts_with("dist/") {
        Role::Distribution
    } else if name.ends_with(".sys") {
        Role::Driver
    } else if name == "linux.uml"
        || name.starts_with("vmlinux")
        || name.starts_with("vmlinuz")
        || name.starts_with("bzImage")
    {
        Role::Kernel
    } else if name.starts_with("colinux-") && (name.ends_with(".exe") || !name.contains('.')) {
        // colinux-daemon and its helpers, started from the daemon's own folder.
        Role::Monitor
    } else if name.starts_with("initrd") {
        Role::Initrd
    } else {
        Role::Other
    }
}

fn init(a: &InitArgs) -> Result<usize> {
    let dir = &a.dir;
    let out = dir.join(MANIFEST_NAME);
    if out.exists() && !a.force {
        bail!("{}: exists; give --force to replace it", out.display());
    }
    let roles = a
        .role
        .iter()
        .map(|s| split_rule(s, "role"))
        .collect::<Result<Vec<_>>>()?;
    let hosts = a
        .host
        .iter()
        .map(|s| split_rule(s, "host"))
        .collect::<Result<Vec<_>>>()?;
    let signers = a
        .signer
        .iter()
        .map(|s| split_rule(s, "signer"))
        .collect::<Result<Vec<_>>>()?;
    let entries =
        manifest::walk(dir).with_context(|| format!("listing the kit folder {}", dir.display()))?;
    let mut files: Vec<KitFile> = Vec::new();
    for path in entries {
        if path == MANIFEST_NAME {
            continue;
        }
        let host_path = manifest::host_path(dir, &path);
        let meta = std::fs::symlink_metadata(&host_path)
            .with_context(|| format!("reading {}", host_path.display()))?;
        if meta.file_type().is_symlink() && path.starts_with("rootfs/") {
            // Stored as a link in the root image, never followed: not content to hash.
            continue;
        }
        if !meta.is_file() {
            bail!(
                "{}: not a regular file; a kit holds regular files (symbolic links only under rootfs/)",
                host_path.display()
            );
        }
        manifest::check_path(&path).map_err(|e| anyhow!("{}: {e}", host_path.display()))?;
        let role = match lookup(&roles, &path) {
            Some(r) => r
                .parse::<Role>()
                .map_err(|e| anyhow!("--role for {path}: {e}"))?,
            None => default_role(&path),
        };
        let mut f = manifest::describe(dir, &path, role)
            .with_context(|| format!("reading {}", host_path.display()))?;
        if let Some(h) = lookup(&hosts, &path) {
            f.host = match h {
                "linux" => Host::Linux,
                "windows" => Host::Windows,
                "any" => Host::Any,
                other => bail!("--host for {path}: `{other}`; expected linux, windows or any"),
            };
        }
        if let Some(s) = lookup(&signers, &path) {
            f.signer = Some(match s.strip_prefix("sha256:") {
                Some(hex) => Signer::Thumbprint(hex.to_ascii_lowercase()),
                None => Signer::Ca(s.to_owned()),
            });
        }
        files.push(f);
    }
    let name = a.name.clone().unwrap_or_else(|| {
        std::path::absolute(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "kit".to_owned())
    });
    let m = Manifest {
        name,
        version: a.kit_version.clone().unwrap_or_else(|| "0".to_owned()),
        files,
    };
    let text = m.to_toml();
    // What we write must be what we read: parse it back (catches a bad --signer).
    Manifest::parse(&text, &out.display().to_string()).map_err(|e| anyhow!("{e}"))?;
    crate::state::write_atomic(&out, text.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(m.files.len())
}
