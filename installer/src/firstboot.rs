//! The first boot: the last install step. The machine boots once in its monitor with
//! `colinux.firstboot` on the kernel command line; the root image's rcS then runs
//! `/etc/init.d/firstboot` (see [`crate::guest`]), which checks the mounts and swap,
//! copies the distribution from a read-only host share into the profile's target
//! (`/home`) and checks it against SHA256SUMS, prints a marker and powers off.
//!
//! The host streams the console into the run's log (every line) and a progress line,
//! enforces the profile's `first_boot.timeout_secs`, and judges the outcome: the success
//! marker and a clean exit of the monitor is success; the failure marker, a kernel
//! panic, a monitor that exits without the marker or the timeout is a failure whose
//! message holds the last console lines (the install then rolls back).
//!
//! The distribution is the kit's `dist/` folder when there is one, else a small
//! built-in one (`colinux/README`, `colinux/bin/motd`) that says what was installed.
//!
//! It is not run (and the state stays `pending`, with a warning) when the monitor
//! cannot run on this host (coLinux here), or when an image was kept from before this
//! run (the first boot writes into images, and a kept image could not be rolled back).
//!
//! Test-only hook: `COLINUX_SETUP_TEST_FIRST_BOOT=fail|hang|panic` makes the guest's
//! script fail, hang, or the kernel panic (`init=` of a missing program). It exists for
//! installer/tests/cli/boot_cli.rs and is not part of the product's interface.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sha2::Digest as _;

use crate::engine::{Ctx, Entry, Journal};
use crate::guest::{FIRST_BOOT_FAILED, FIRST_BOOT_OK};
use crate::monitor::probe::{Accel, Engine};
use crate::monitor::{self, BootOptions, MonitorError, RunOptions, RunResult};
use crate::plan::Plan;
use crate::profile::Monitor;
use crate::state::FirstBoot;

/// What the first boot ended with, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// It ran and succeeded, with QEMU's accelerator it ended with (KVM, or TCG after
    /// a KVM guest hung).
    Ran(Option<Accel>),
    /// It was not run; the state keeps this.
    NotRun(FirstBoot),
}

/// Runs the first boot of `plan` if it is pending. `keep` says why the images must not
/// be written into by this run (an image the install did not make was kept, or the
/// install keeps the images as they are): the first boot is then left to
/// `boot --first-boot`. `already` is the state recorded by an earlier run. The files it writes into that this run did not make are copied first
/// ([`back_up`], journalled), so that a failure puts them back as they were.
pub fn run(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    journal: &mut Journal,
    keep: Option<&str>,
    already: Option<FirstBoot>,
) -> Result<Done> {
    if plan.first_boot.state != FirstBoot::Pending {
        return Ok(Done::NotRun(plan.first_boot.state));
    }
    if already == Some(FirstBoot::Done) {
        return Ok(Done::NotRun(FirstBoot::Done));
    }
    if let Some(why) = keep {
        ctx.rep.warn(&format!(
            "the first boot was not run: {why}, and the first boot writes into them; it stays pending: \
             run it with `colinux-setup boot --first-boot --prefix {}`",
            plan.prefix.display()
        ));
        return Ok(Done::NotRun(FirstBoot::Pending));
    }
    back_up(plan, journal, ctx)?;
    if plan.monitor == Monitor::Wsl {
        return run_wsl(plan, ctx);
    }
    let run_dir = tempfile::Builder::new()
        .prefix("colinux-setup-run-")
        .tempdir()
        .context("creating a run folder for the first boot in the temporary folder")?;
    let dist = tempfile::Builder::new()
        .prefix("colinux-setup-dist-")
        .tempdir()
        .context("creating the distribution share in the temporary folder")?;
    let files = stage_distribution(plan, dist.path())?;
    let unpacked = bytes_by_entry(&dist.path().join("dist.tar"))?;
    let unpack_total = unpacked.last().copied().unwrap_or(0);
    if let Some(m) = &plan.first_boot.modules {
        ctx.rep.phase(&format!(
            "staging the kernel modules {} ({} MB)",
            m.version,
            m.bytes >> 20
        ));
        stage_modules(m, dist.path())?;
    }
    let target = plan
        .first_boot
        .target
        .clone()
        .unwrap_or_else(|| "/home".into());
    let dist_path = dist.path().display().to_string();
    // QEMU: the share is a read-only ext2 image of the staging folder, made by our own
    // writer and attached after the machine's drives, so a guest kernel without 9p
    // (Debian's cloud kernel) still reads it; UML reads the folder through hostfs.
    let mut drives = Vec::new();
    let share = match plan.monitor {
        Monitor::Qemu => {
            let img = run_dir.path().join("dist.img");
            share_image(dist.path(), &img, ctx)?;
            drives.push(img);
            format!(
                "colinux.dist=disk:/dev/vd{}",
                char::from(b'a' + u8::try_from(plan.config.cobd.len()).unwrap_or(25).min(25))
            )
        }
        _ => format!("colinux.dist=hostfs:{dist_path}"),
    };
    let mut extra = vec![
        "colinux.firstboot".to_owned(),
        format!("colinux.target={target}"),
        share,
    ];
    match std::env::var("COLINUX_SETUP_TEST_FIRST_BOOT").as_deref() {
        Ok("fail") => extra.push("colinux.firstboot.test=fail".into()),
        Ok("hang") => extra.push("colinux.firstboot.test=hang".into()),
        Ok("panic") => extra.push("init=/colinux-setup-test-no-such-init".into()),
        _ => {}
    }
    let mut engine = plan.monitor_choice.engine();
    let mut opts = BootOptions {
        interactive: false,
        extra_params: extra,
        run_dir: run_dir.path().to_owned(),
        id: format!("colinux-setup-{}", std::process::id()),
        config_path: plan.prefix.join("config.txt"),
        accel: engine.accel().unwrap_or(Accel::Tcg),
        forward_host: plan.slirp_host.unwrap_or(crate::plan::SLIRP_HOST_DEFAULT),
        extra_shares: Vec::new(),
        extra_drives: drives,
    };
    let launch = monitor::command_line(plan.monitor, &plan.config, &opts)
        .context("the first boot's command line")?;
    if let Err(e) = monitor::check_runnable(plan.monitor, &launch) {
        return match e {
            MonitorError::NotRunnable(why) => {
                ctx.rep.warn(&format!(
                    "the first boot was not run: {why}; it stays pending: run it with \
                     `colinux-setup boot --first-boot --prefix {}` where the machine's monitor runs",
                    plan.prefix.display()
                ));
                Ok(Done::NotRun(FirstBoot::Pending))
            }
            other => Err(anyhow!(other)),
        };
    }
    ctx.log.line(&format!(
        "first boot: {files} distribution files; monitor {} ({})",
        engine.title(),
        plan.monitor_choice.why
    ));
    let progress = Progress {
        unpacked: &unpacked,
        total: unpack_total,
    };
    let mut attempt = boot_once(plan, ctx, &launch, engine, &progress)?;
    if attempt.result.stalled && engine == Engine::Qemu(Accel::Kvm) {
        ctx.rep.warn(&format!(
            "the KVM guest printed nothing after the firmware within {} s: KVM guests hang on this host; \
             the first boot is retried once without KVM (QEMU's own emulation, about ten times slower)",
            FIRMWARE_STALL.as_secs()
        ));
        engine = Engine::Qemu(Accel::Tcg);
        opts.accel = Accel::Tcg;
        let launch = monitor::command_line(plan.monitor, &plan.config, &opts)
            .context("the first boot's command line")?;
        attempt = boot_once(plan, ctx, &launch, engine, &progress)?;
    }
    let Attempt {
        result,
        ok,
        failed,
        timeout,
    } = attempt;
    ctx.log.line(&format!(
        "first boot ended after {:.1} s: {}, timed out {}, panic {}, marker ok {ok}",
        result.elapsed.as_secs_f64(),
        monitor::exit_words(result.exit_code),
        result.timed_out,
        result.panicked
    ));
    if result.interrupted || ctx.interrupt.load(Ordering::SeqCst) {
        bail!(
            "cancelled ({}) during the first boot",
            crate::progress::stop_reason()
        );
    }
    let why = if result.timed_out {
        Some(format!(
            "it did not finish within {timeout} s (the profile's first_boot.timeout_secs, for {}); the guest was stopped",
            engine.title()
        ))
    } else if result.panicked {
        Some(format!(
            "the guest kernel panicked ({})",
            result.panic_line.as_deref().unwrap_or("").trim()
        ))
    } else if let Some(f) = failed {
        Some(format!("the first-boot script failed ({f})"))
    } else if !ok {
        Some(format!(
            "the monitor ended ({}) before the first-boot script reported success",
            monitor::exit_words(result.exit_code)
        ))
    } else if result.exit_code != Some(0) {
        Some(format!(
            "the monitor ended ({}) after the script succeeded",
            monitor::exit_words(result.exit_code)
        ))
    } else {
        None
    };
    if let Some(why) = why {
        bail!(
            "the first boot failed: {why}; the last console lines:\n{}\n(the whole console is in the log); \
             fix the cause and run it again: `colinux-setup boot --first-boot --prefix {}` runs the first boot \
             of an installed machine (an install with --no-first-boot leaves it to that command)",
            result.tail_text(15),
            plan.prefix.display()
        );
    }
    // QEMU's initrd= is the kit kernel's initramfs (its drivers), needed at every boot.
    if plan.monitor != Monitor::Qemu {
        remove_initrd(plan, &plan.prefix.join("config.txt"))?;
    }
    ctx.log.line(&format!(
        "first boot done in {:.1} s",
        result.elapsed.as_secs_f64()
    ));
    Ok(Done::Ran(engine.accel()))
}

/// The first boot of a wsl machine: no kernel boots; the first-boot script runs as a
/// command in the registered distribution (`wsl -d NAME -u root --exec /bin/sh -c`),
/// its words in `COLINUX_FIRSTBOOT_ARGS`, the distribution share a folder in the
/// install folder that the distribution reaches through WSL's automount of the drive.
/// The same markers, timeout, console log and verdict as the other monitors; the
/// distribution is terminated afterwards, so its disk is detached and flushed.
fn run_wsl(plan: &Plan, ctx: &mut Ctx<'_>) -> Result<Done> {
    let name = crate::wsl::name(plan);
    // In the install folder, so that the distribution reaches it (/mnt/c/...): a
    // temporary folder of the Windows user may be on another drive or not mounted.
    let dist = tempfile::Builder::new()
        .prefix(".colinux-setup-dist-")
        .tempdir_in(&plan.prefix)
        .context("creating the distribution share in the install folder")?;
    let files = stage_distribution(plan, dist.path())?;
    let target = plan
        .first_boot
        .target
        .clone()
        .unwrap_or_else(|| "/home".into());
    let share = crate::wsl::wsl_path(&dist.path().display().to_string());
    let mut words = vec![
        "colinux.firstboot".to_owned(),
        format!("colinux.target={target}"),
        format!("colinux.dist=dir:{share}"),
    ];
    match std::env::var("COLINUX_SETUP_TEST_FIRST_BOOT").as_deref() {
        Ok("fail") => words.push("colinux.firstboot.test=fail".into()),
        Ok("hang") => words.push("colinux.firstboot.test=hang".into()),
        _ => {}
    }
    let words = words.join(" ");
    if words.contains(['\'', '\n']) {
        bail!(
            "the first boot's share {share} or target {target} holds a quote or a line break, which cannot be passed to the distribution; choose another install folder"
        );
    }
    let script = format!(
        "export COLINUX_FIRSTBOOT_ARGS='{words}'; if sh /etc/init.d/firstboot; then echo '{FIRST_BOOT_OK}'; else echo \"{FIRST_BOOT_FAILED} rc=$?\"; fi; sync"
    );
    let argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), script];
    let timeout = plan.first_boot.timeout_secs.unwrap_or(600);
    ctx.rep.phase(&format!(
        "first boot in WSL 2 (the distribution {name}, at most {timeout} s): {}",
        plan.first_boot.description.clone().unwrap_or_default()
    ));
    ctx.log.line(&format!(
        "first boot: {files} distribution files; wsl -d {name} -u root --exec {}",
        argv.join(" ")
    ));
    let mut host = crate::wsl::host_for()?;
    let mut ok = false;
    let mut failed = None;
    let mut tail: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    let out = {
        let log = &mut *ctx.log;
        let rep = &mut *ctx.rep;
        host.run(
            &name,
            Some("root"),
            &argv,
            Duration::from_secs(timeout),
            ctx.interrupt,
            &mut |line| {
                log.line(&format!("console: {line}"));
                let t = line.trim();
                if t == FIRST_BOOT_OK {
                    ok = true;
                } else if t.starts_with(FIRST_BOOT_FAILED) {
                    failed = Some(t.to_owned());
                }
                if !t.is_empty() {
                    tail.push(t.to_owned());
                    if tail.len() > 15 {
                        tail.remove(0);
                    }
                    let t = t.strip_prefix("colinux-setup: ").unwrap_or(t);
                    rep.status(&format!(
                        "first boot: {}",
                        t.trim_start_matches("first boot: ")
                    ));
                }
            },
        )
    };
    // Detached and flushed, also after a failure: the image is whole on the host before
    // the state records it, and a rollback can put it back.
    if let Err(e) = host.terminate(&name) {
        ctx.log
            .line(&format!("first boot: wsl --terminate {name}: {e}"));
    }
    let out = out.map_err(|e| {
        anyhow!(e).context(format!(
            "running the first boot in the WSL distribution {name}"
        ))
    })?;
    ctx.log.line(&format!(
        "first boot ended after {:.1} s: exit {:?}, timed out {}, marker ok {ok}",
        started.elapsed().as_secs_f64(),
        out.exit_code,
        out.timed_out
    ));
    if out.interrupted || ctx.interrupt.load(Ordering::SeqCst) {
        bail!(
            "cancelled ({}) during the first boot",
            crate::progress::stop_reason()
        );
    }
    let why = if out.timed_out {
        Some(format!(
            "it did not finish within {timeout} s (the profile's first_boot.timeout_secs); the distribution was terminated"
        ))
    } else if let Some(f) = failed {
        Some(format!("the first-boot script failed ({f})"))
    } else if !ok {
        Some(format!(
            "wsl.exe ended (exit {:?}) before the first-boot script reported success",
            out.exit_code
        ))
    } else if out.exit_code != Some(0) {
        Some(format!(
            "wsl.exe ended (exit {:?}) after the script succeeded",
            out.exit_code
        ))
    } else {
        None
    };
    if let Some(why) = why {
        bail!(
            "the first boot failed: {why}; the last console lines:\n{}\n(the whole console is in the log); \
             fix the cause and run it again: `colinux-setup boot --first-boot --prefix {}`",
            tail.join("\n"),
            plan.prefix.display()
        );
    }
    ctx.log.line(&format!(
        "first boot done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(Done::Ran(None))
}

/// The first boot's state as a user reads it (`status`, the install's last line, the
/// wizard): a first boot still to do (`pending`, `skipped`) names the command that
/// runs it.
pub fn state_words(state: FirstBoot, prefix: &Path) -> String {
    if state.is_outstanding() {
        format!(
            "{state} (run it with `colinux-setup boot --first-boot --prefix {}`)",
            prefix.display()
        )
    } else {
        state.as_str().to_owned()
    }
}

/// The plan of the machine installed in `prefix`, for its first boot run later: the
/// answers install-state.json records, with the folder where the state is (the state
/// is untrusted: nothing is written anywhere else), the machine's monitor as recorded
/// (the monitor is probed as at install), and the first boot asked for.
pub fn installed_plan(prefix: &Path, st: &crate::state::InstallState) -> Result<Plan> {
    let mut answers = crate::plan::Answers::default();
    for (k, v) in &st.answers {
        answers.set(k, v, "install-state.json")?;
    }
    answers.set(
        "INSTALLDIR",
        &std::path::absolute(prefix)
            .unwrap_or_else(|_| prefix.to_owned())
            .display()
            .to_string(),
        "the machine's folder",
    )?;
    answers.set("MONITOR", st.monitor.as_str(), "install-state.json")?;
    answers.set("NOFIRSTBOOT", "0", "boot --first-boot")?;
    crate::plan::make_plan(&answers)
        .context("the installed machine's answers no longer make a plan")
}

/// Where [`back_up`] keeps the copy of `path` while the first boot runs.
fn backup_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.first-boot-backup"))
}

/// Copies the machine's files the first boot writes into (its images and config.txt)
/// that this run did not make, beside them (`.NAME.first-boot-backup`), each
/// journalled as replaced before it is copied: a failure, Ctrl-C or kill then puts the
/// copies back (the rollback), a success removes them (the commit). A copy is written
/// under a temporary name and renamed, so a rollback only ever puts back a complete
/// one. Files this run made are removed by its rollback and are not copied. The copy of
/// an interrupted first boot (a journal this run continues) is put back first.
pub(crate) fn back_up(plan: &Plan, journal: &mut Journal, ctx: &mut Ctx<'_>) -> Result<()> {
    let mut paths: Vec<PathBuf> = plan
        .files()
        .iter()
        .map(|(_, p, _)| p.to_path_buf())
        .collect();
    paths.push(plan.prefix.join("config.txt"));
    for path in paths {
        let backup = backup_path(&path);
        let entry = Entry::Replace {
            path: path.clone(),
            backup: backup.clone(),
        };
        if journal.entries.contains(&entry) {
            if backup.exists() {
                fs::rename(&backup, &path).with_context(|| {
                    format!(
                        "putting back {} as it was before an interrupted first boot",
                        path.display()
                    )
                })?;
                ctx.log.line(&format!(
                    "{}: put back as it was before an interrupted first boot",
                    path.display()
                ));
            }
        } else if journal.owns(&path) || !path.exists() {
            continue;
        } else {
            journal.push(entry)?;
        }
        ctx.rep.phase(&format!(
            "copying {} (put back if the first boot fails)",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        copy_data(&path, &backup)
            .with_context(|| format!("copying {} before the first boot", path.display()))?;
        ctx.log.line(&format!(
            "{}: copied to {} before the first boot",
            path.display(),
            backup.display()
        ));
    }
    Ok(())
}

/// Copies `from` to `to` through a temporary sibling, with `from`'s mode: a clone of
/// its extents where the filesystem can (Linux FICLONE), else its data regions only
/// (holes stay holes: a 2 GB image that is mostly holes costs its data).
fn copy_data(from: &Path, to: &Path) -> Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = to.with_file_name(format!("{name}.{}.tmp", std::process::id()));
    let mut src = crate::input::open_regular(from)?;
    let meta = src.metadata()?;
    let mode = {
        #[cfg(unix)]
        {
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777
        }
        #[cfg(not(unix))]
        {
            crate::state::PRIVATE_FILE
        }
    };
    let len = meta.len();
    let res = (|| -> Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut dst = crate::state::create_new(&tmp, mode)?;
        #[cfg(target_os = "linux")]
        let cloned = rustix::fs::ioctl_ficlone(&dst, &src).is_ok();
        #[cfg(not(target_os = "linux"))]
        let cloned = false;
        if !cloned {
            dst.set_len(len)?;
            let mut buf = vec![0u8; 1 << 20];
            for (start, end) in crate::state::data_regions(&src, len) {
                src.seek(SeekFrom::Start(start))?;
                dst.seek(SeekFrom::Start(start))?;
                let mut left = end - start;
                while left > 0 {
                    let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                    src.read_exact(&mut buf[..n])?;
                    dst.write_all(&buf[..n])?;
                    left -= n as u64;
                }
            }
        }
        dst.sync_all()?;
        fs::rename(&tmp, to)?;
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// How long a KVM guest may print nothing after the firmware before the first boot
/// counts it as hung and retries without KVM (a working one prints its first kernel
/// line within a second; a distribution kernel with `quiet` within a few).
const FIRMWARE_STALL: Duration = Duration::from_secs(20);

/// The distribution's unpack progress: bytes done after each archive entry.
struct Progress<'a> {
    unpacked: &'a [u64],
    total: u64,
}

/// One run of the first boot and what its console said.
struct Attempt {
    result: RunResult,
    /// The success marker was printed.
    ok: bool,
    /// The failure marker's line, if it was printed.
    failed: Option<String>,
    /// The timeout it ran under, in seconds.
    timeout: u64,
}

/// Boots the first boot once in `engine`, streaming its console into the log and the
/// progress line. The profile's timeout is for a monitor at hardware speed; QEMU's
/// own emulation gets it times [`Engine::slowdown`].
fn boot_once(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    launch: &monitor::Launch,
    engine: Engine,
    progress: &Progress<'_>,
) -> Result<Attempt> {
    let profile_timeout = plan.first_boot.timeout_secs.unwrap_or(600);
    let timeout = profile_timeout.saturating_mul(u64::from(engine.slowdown()));
    let scaled = if timeout == profile_timeout {
        String::new()
    } else {
        format!(
            "; the profile's {profile_timeout} s times {} for emulation",
            engine.slowdown()
        )
    };
    ctx.rep.phase(&format!(
        "first boot in {} (at most {timeout} s{scaled}): {}",
        engine.name(),
        plan.first_boot.description.clone().unwrap_or_default()
    ));
    ctx.log
        .line(&format!("first boot: command line: {}", launch.display()));
    let mut ok = false;
    let mut failed = None;
    let result = {
        let log = &mut *ctx.log;
        let rep = &mut *ctx.rep;
        monitor::run(
            launch,
            &RunOptions {
                timeout: Some(Duration::from_secs(timeout)),
                interrupt: ctx.interrupt,
                echo: false,
                stdin: false,
                clean_stop: false,
                stall_after: (engine == Engine::Qemu(Accel::Kvm)).then_some(FIRMWARE_STALL),
                stop_grace: crate::monitor::STOP_GRACE,
                console_in: None,
                console_out: None,
            },
            &mut |line| {
                log.line(&format!("console: {line}"));
                let t = line.trim();
                if t == FIRST_BOOT_OK {
                    ok = true;
                } else if t.starts_with(FIRST_BOOT_FAILED) {
                    failed = Some(t.to_owned());
                }
                if let Some(n) = t
                    .strip_prefix(UNPACKED)
                    .and_then(|r| r.strip_suffix(" entries"))
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    let done = progress
                        .unpacked
                        .get(n.saturating_sub(1))
                        .copied()
                        .unwrap_or(progress.total);
                    rep.progress(done, progress.total);
                }
                if !t.is_empty() {
                    let t = t.strip_prefix("colinux-setup: ").unwrap_or(t);
                    rep.status(&format!(
                        "first boot: {}",
                        t.trim_start_matches("first boot: ")
                    ));
                }
            },
        )
        .context("running the first boot")?
    };
    Ok(Attempt {
        result,
        ok,
        failed,
        timeout,
    })
}

/// Removes the first-boot-only `initrd=` from config.txt, if it has one. The install's
/// own config.txt is written again from the plan's model without it (the writer, as
/// at install); a config.txt the user has edited since keeps every other line.
fn remove_initrd(plan: &Plan, config: &Path) -> Result<()> {
    let text =
        fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    if !text.lines().any(|l| l.trim_start().starts_with("initrd=")) {
        return Ok(());
    }
    let new = if plan.config_text().is_ok_and(|own| own == text) {
        crate::machine::text(plan, &crate::kit_files::config_for(plan, true))?
    } else {
        without_initrd(&text)
    };
    crate::state::write_atomic(config, new.as_bytes())
}

/// config.txt's text without its first-boot-only `initrd=` lines.
fn without_initrd(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("initrd="))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Fills `dir` with `tree/` (the distribution), `dist.tar` (the same, one archive) and
/// `SHA256SUMS`; returns the file count.
fn stage_distribution(plan: &Plan, dir: &Path) -> Result<usize> {
    let tree = dir.join("tree");
    fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    match plan
        .kit
        .as_ref()
        .map(|k| k.join("dist"))
        .filter(|d| d.is_dir())
    {
        Some(src) => copy_tree(&src, &tree)?,
        None => {
            let c = tree.join("colinux");
            fs::create_dir_all(c.join("bin")).context("staging the distribution")?;
            fs::write(
                c.join("README"),
                format!(
                    "This machine was installed by colinux-setup {} (profile {}, monitor {}, host name {}).\n\
                     The first boot unpacked this folder from the host.\n",
                    env!("CARGO_PKG_VERSION"),
                    plan.profile,
                    plan.monitor.as_str(),
                    plan.hostname
                ),
            )
            .context("staging the distribution")?;
            fs::write(
                c.join("bin/motd"),
                "#!/bin/sh\necho \"Welcome to $(hostname), installed by colinux-setup.\"\n",
            )
            .context("staging the distribution")?;
        }
    }
    let (sums, n) = sha256_sums(&tree, ".")?;
    fs::write(dir.join("SHA256SUMS"), sums).context("writing SHA256SUMS")?;
    // One archive: the guest reads one file through the share instead of thousands
    // (measured here in UML: 5,000 small files took 11 s copied one by one over hostfs,
    // 7 s unpacked from one archive, both including the SHA256SUMS check).
    let archive = dir.join("dist.tar");
    let file =
        fs::File::create(&archive).with_context(|| format!("creating {}", archive.display()))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    b.append_dir_all(".", &tree)
        .and_then(|()| b.into_inner())
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .with_context(|| format!("writing {}", archive.display()))?;
    Ok(n)
}

/// Writes `modules.tar` (the modules under `lib/modules/VERSION/`) and
/// `MODULES.SHA256SUMS` (paths from the guest's `/`) into the share.
fn stage_modules(m: &crate::plan::ModulesPlan, dir: &Path) -> Result<()> {
    let archive = dir.join("modules.tar");
    let file =
        fs::File::create(&archive).with_context(|| format!("creating {}", archive.display()))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    let inside = format!("lib/modules/{}", m.version);
    b.append_dir_all(&inside, &m.dir)
        .and_then(|()| b.into_inner())
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .with_context(|| format!("packing the kernel modules of {}", m.dir.display()))?;
    let (sums, _) = sha256_sums(&m.dir, &format!("./{inside}"))?;
    fs::write(dir.join("MODULES.SHA256SUMS"), sums).context("writing MODULES.SHA256SUMS")
}

/// Writes `img`, a read-only ext2 image holding the staging folder `dir`.
fn share_image(dir: &Path, img: &Path, ctx: &mut Ctx<'_>) -> Result<()> {
    let mut opts = image_builder::BuildOptions::new(
        image_builder::FsLevel::Ext2,
        image_builder::SizeSpec::Auto(image_builder::Headroom::None),
    );
    opts.label = Some("colinux-dist".into());
    opts.sources = vec![image_builder::Source::Dir(dir.to_owned())];
    ctx.rep.phase("writing the distribution share image");
    image_builder::build(img, &opts, &mut |_| {}, ctx.interrupt)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("writing the distribution share {}", img.display()))?;
    Ok(())
}

/// What the guest's first-boot script prints every 50 entries it unpacks (`… N entries`).
const UNPACKED: &str = "colinux-setup: first boot: unpacked ";

/// The bytes of file data unpacked once each entry of the tar archive at `path` is
/// (entry order, as `tar -v` lists them): the guest reports entries, the progress bar
/// shows bytes.
fn bytes_by_entry(path: &Path) -> Result<Vec<u64>> {
    let f = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut archive = tar::Archive::new(f);
    let mut done = 0u64;
    let mut out = Vec::new();
    // Headers only: the file data just written is seeked over, not read again.
    for e in archive
        .entries_with_seek()
        .with_context(|| format!("reading {}", path.display()))?
    {
        let e = e.with_context(|| format!("reading {}", path.display()))?;
        done += e.header().entry_size().unwrap_or(0);
        out.push(done);
    }
    Ok(out)
}

/// `sha256sum` lines for every regular file below `root` (sorted by name in each
/// folder), named `PREFIX/relative/path` as the guest's `sha256sum -c` reads them; and
/// the number of files.
fn sha256_sums(root: &Path, prefix: &str) -> Result<(String, usize)> {
    let mut sums = String::new();
    let mut n = 0usize;
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&d)
            .with_context(|| format!("reading {}", d.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let p = e.path();
            let ft = e
                .file_type()
                .with_context(|| format!("reading {}", p.display()))?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let mut h = sha2::Sha256::new();
                let mut f =
                    fs::File::open(&p).with_context(|| format!("reading {}", p.display()))?;
                std::io::copy(&mut f, &mut h)
                    .with_context(|| format!("reading {}", p.display()))?;
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                let _ = writeln!(sums, "{}  {prefix}/{rel}", crate::plan::hex(&h.finalize()));
                n += 1;
            }
        }
    }
    Ok((sums, n))
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for e in fs::read_dir(src).with_context(|| format!("reading the kit's {}", src.display()))? {
        let e = e.with_context(|| format!("reading {}", src.display()))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ft = e
            .file_type()
            .with_context(|| format!("reading {}", from.display()))?;
        if ft.is_dir() {
            fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
            copy_tree(&from, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_done_follow_the_archive_order() {
        let t = tempfile::tempdir().expect("tempdir");
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("d")).expect("mkdir");
        fs::write(tree.join("d/a"), vec![1u8; 1000]).expect("write");
        fs::write(tree.join("b"), vec![2u8; 3000]).expect("write");
        let archive = t.path().join("x.tar");
        let mut b = tar::Builder::new(fs::File::create(&archive).expect("create"));
        b.append_dir_all(".", &tree).expect("append");
        b.into_inner().expect("finish");
        let done = bytes_by_entry(&archive).expect("read");
        // ./, then the entries in the order tar wrote them: each step adds its size.
        assert_eq!(done.len(), 4, "{done:?}");
        assert_eq!(done.last(), Some(&4000));
        assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
        assert!(done.contains(&1000) || done.contains(&3000), "{done:?}");
    }
}
