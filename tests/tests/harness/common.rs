//! Shared helpers of the self-tests: the stand-in writer (`mke2fs -d`) and debugfs edits.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use e2e_tests::CompareOpts;
use e2e_tests::tools::{run_ok, tool};

/// Builds `image` (`size` like "32M") from `src` with `mke2fs -t FS -d SRC`, plus `extra`
/// options (e.g. `["-b", "4096", "-I", "128"]`).
pub fn mke2fs(fs: &str, src: &Path, image: &Path, size: &str, extra: &[&str]) -> Result<()> {
    run_ok(
        Command::new(tool("mke2fs")?)
            .args(["-q", "-F", "-t", fs])
            .args(extra)
            .arg("-d")
            .arg(src)
            .arg(image)
            .arg(size)
            .env("LC_ALL", "C.UTF-8"),
    )
    .map(|_| ())
    .with_context(|| format!("mke2fs -t {fs} -d {}", src.display()))
}

/// Runs debugfs requests on `image` in write mode (`-w -f`), requiring that debugfs
/// printed no error.
pub fn debugfs_write(image: &Path, requests: &[String]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cmdfile = dir.path().join("requests");
    std::fs::write(&cmdfile, requests.join("\n") + "\n")?;
    let out = run_ok(
        Command::new(tool("debugfs")?)
            .arg("-w")
            .arg("-f")
            .arg(&cmdfile)
            .arg(image),
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs 1."))
        .collect();
    anyhow::ensure!(
        errors.is_empty(),
        "debugfs -w {requests:?} printed errors: {errors:?}"
    );
    Ok(())
}

/// One read-only debugfs request (`-R`); its standard output.
pub fn debugfs_read(image: &Path, request: &str) -> Result<Vec<u8>> {
    Ok(run_ok(
        Command::new(tool("debugfs")?)
            .arg("-R")
            .arg(request)
            .arg(image),
    )?
    .stdout)
}

/// Options for images made by `mke2fs -d` 1.47.0, which drops mtime nanoseconds and does
/// not copy the root folder's mode and mtime.
pub fn mke2fs_opts() -> CompareOpts {
    CompareOpts {
        mtime_nanos: false,
        root_metadata: false,
        ..CompareOpts::default()
    }
}

/// The error text of a result that must be an error.
pub fn expect_err<T: std::fmt::Debug>(r: Result<T>, what: &str) -> String {
    match r {
        Ok(v) => panic!("{what}: expected a failure, got Ok({v:?})"),
        Err(e) => format!("{e:#}"),
    }
}
