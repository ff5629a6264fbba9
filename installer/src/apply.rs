//! The transactional apply: check the host, create the prefix, build the images (fstab,
//! hostname and users written into the root image as it is built), write config.txt,
//! run the first boot ([`crate::firstboot`]), record install-state. Each step is idempotent; on failure or Ctrl-C what this install
//! made is undone in reverse order, and what existed before is never touched.
//!
//! Every change is first written to a journal in the prefix (write-ahead), then made.
//! The journal belongs to the install until it commits: a run killed with SIGKILL leaves
//! it behind, and the next run takes it over, so that re-running ends where an
//! uninterrupted install would have, and a failure after a kill still rolls back to the
//! state before the first attempt. A journal written for a different plan is rolled
//! back first.
//!
//! - An image that exists and is not this install's (a user's home.img with data) is
//!   kept as it is: never overwritten, never removed (only `uninstall --purge` does).
//!   It must be a disk image of its kind: anything else is refused before any change
//!   ([`survey`]), as are a damaged install-state.json or journal and an image size too
//!   small for its content ([`check_host`], which `--dry-run` runs too, so the dry run
//!   plans and refuses what the install does).
//! - Files are written beside their target and renamed into place; a replaced file is
//!   first renamed to a backup that the rollback restores and the commit removes.
//!
//! ## Test hooks (test-only)
//!
//! `COLINUX_SETUP_TEST_PAUSE_AT=STEP` stops at a step (printing `test hook: paused at
//! STEP` on stderr) until the process is killed or interrupted (then the run cancels);
//! `COLINUX_SETUP_TEST_FAIL_AT=STEP` makes the step fail. Steps: `prefix`, `image:root`,
//! `image:root:writing` (inside the build, its temporary file half written),
//! `image:home`, `image:home:writing`, `swap`, `machine-files`, `config`, `tap`, `driver`, `service`, `putty`, `wsl`, `first-boot`, `state`, `commit`.
//! `COLINUX_SETUP_TEST_FIRST_BOOT=fail|hang|panic` makes the first boot's guest fail
//! (see [`crate::firstboot`]). They exist for the tests in installer/tests and are not
//! part of the product's interface.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::engine::step::HostStep;
use crate::engine::{
    Ctx, Entry, Hooks, Journal, Removed, Summary, cancelled, check_interrupt, remove_partials,
    write_file,
};
use crate::plan::{ImagePlan, Plan, SourcePlan};
use crate::progress::Reporter;
use crate::state::{self, FileRecord, FirstBoot, InstallState, Lock, RunLog, STATE_FILE};

/// The install's steps that make host objects, in the order they are made (the
/// uninstall removes them in reverse). Adding one is a module implementing
/// [`HostStep`] and a line here.
pub const HOST_STEPS: &[&dyn HostStep] = &[
    &crate::tap::Tap,
    &crate::driver::Driver,
    &crate::service::step::Service,
    &crate::putty::step::Putty,
    &crate::wsl::step::Wsl,
];

/// Undoes a host object's journal entry through the step that wrote it. A step name no
/// step has (the journal is read from disk) is logged and left.
fn undo_host(step: &str, undo: &serde_json::Value, log: &mut RunLog) -> Vec<String> {
    match HOST_STEPS.iter().find(|s| s.name() == step) {
        Some(s) => s.roll_back(undo, log),
        None => {
            log.line(&format!(
                "rollback: the journal names a step `{step}` this version does not have; left as it is"
            ));
            Vec::new()
        }
    }
}

/// How an apply ended badly.
#[derive(Debug)]
pub enum ApplyError {
    /// Ctrl-C; rolled back.
    Cancelled(anyhow::Error),
    /// Another run holds the lock (1618); nothing was changed.
    Busy(anyhow::Error),
    /// Failed; rolled back.
    Failed(anyhow::Error),
}

/// Removes the temporaries that [`state::write_atomic`] leaves when a run is killed
/// while it writes (`.NAME.PID.tmp`) of the files every run writes in the folder: the
/// journal, install-state.json, config.txt, setup.msi's note and a rebuild's note.
/// Called by a run that holds the folder's lock, when no other run can be writing them.
/// (The temporaries of the other files a run writes are those of its journal's entries,
/// removed by the rollback or by the run that continues the journal.)
pub(crate) fn sweep_temporaries(prefix: &Path) {
    for name in [
        state::JOURNAL_FILE,
        STATE_FILE,
        "config.txt",
        state::MSI_NOTE_FILE,
        state::KEPT_FILE,
        crate::rebuild::PENDING_FILE,
    ] {
        remove_partials(&prefix.join(name));
    }
    // A killed wsl first boot's distribution share (see firstboot.rs).
    if let Ok(entries) = fs::read_dir(prefix) {
        for e in entries.flatten() {
            let is_share = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(".colinux-setup-dist-"));
            if is_share && e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// What an install does with one image file of its plan, decided before any change
/// (and shown by `--dry-run`): build it, or keep the image that is there.
#[derive(Clone, Debug, Serialize)]
pub struct FileAction {
    /// The file name.
    pub file: String,
    /// `build` or `keep`.
    pub action: &'static str,
    /// What is there, for an image that is kept (`64 MB ext4, made by the install`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

/// The image files of the plan as the install finds them: one that is there is kept
/// (never overwritten), so it must be a disk image of its kind. A file that is not one
/// (11 bytes of text named root.img, a swap area where home.img belongs, a FIFO) is
/// refused before any change: the install would otherwise record it as the machine's.
/// install-state.json and an interrupted install's journal are read as the install reads
/// them (a damaged one is refused): an image an interrupted install of this plan built
/// is kept, one an install of another plan built goes with its rollback. The install
/// and its dry run decide by this one function.
pub fn survey(plan: &Plan) -> Result<Vec<FileAction>> {
    let old = InstallState::read(&plan.prefix)?;
    let journal = Journal::load(&plan.prefix)?;
    let digest = plan.digest();
    let mut out = Vec::new();
    let roles = plan
        .images
        .iter()
        .map(|i| (i.file.as_str(), i.path.as_path(), false))
        .chain([(plan.swap.file.as_str(), plan.swap.path.as_path(), true)]);
    for (file, path, swap) in roles {
        let interrupted = journal.as_ref().filter(|j| j.owns(path));
        if interrupted.is_some_and(|j| j.plan_digest != digest) {
            out.push(FileAction {
                file: file.to_owned(),
                action: "build",
                found: Some(
                    "made by an interrupted install of other answers, which is rolled back first"
                        .to_owned(),
                ),
            });
            continue;
        }
        let Some(info) = existing_image(file, path, swap)? else {
            out.push(FileAction {
                file: file.to_owned(),
                action: "build",
                found: None,
            });
            continue;
        };
        let origin = match old
            .as_ref()
            .and_then(|s| s.files.iter().find(|f| f.file == file))
        {
            _ if interrupted.is_some() => "built by the interrupted install of these answers",
            Some(r) if r.origin == crate::state::Origin::Install => "made by the install",
            Some(_) => "there before the install: the user's",
            None => "not made by this install: kept with its data",
        };
        out.push(FileAction {
            file: file.to_owned(),
            action: "keep",
            found: Some(format!(
                "{} MB {}, {origin}",
                info.size_bytes >> 20,
                serde_json::to_value(info.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )),
        });
    }
    Ok(out)
}

/// The `--dry-run` lines of the images found in the folder (none when there are none).
pub fn describe_survey(actions: &[FileAction]) -> String {
    let kept: Vec<&FileAction> = actions.iter().filter(|a| a.found.is_some()).collect();
    if kept.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "  already in the folder (the sizes and sources above are for images that are built):\n",
    );
    for a in kept {
        s.push_str(&format!(
            "    {}: {}; {}\n",
            a.file,
            a.found.as_deref().unwrap_or(""),
            if a.action == "keep" {
                "kept as it is"
            } else {
                "built again"
            }
        ));
    }
    s
}

/// The image at `path`, `None` when there is none; an error when something is there
/// that is not a disk image of its kind (`swap`: a swap area, else ext2/ext3/ext4).
fn existing_image(file: &str, path: &Path, swap: bool) -> Result<Option<image_builder::ImageInfo>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot look at {}", path.display())),
    };
    let what = if swap {
        "a swap area"
    } else {
        "an ext2/ext3/ext4 image"
    };
    let move_it = "the install keeps the images it finds and builds only missing ones, so it would use this one: \
                   move it away (or remove it) and run the install again";
    let block_device = {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type())
        }
        #[cfg(not(unix))]
        {
            false
        }
    };
    if !meta.is_file() && !block_device {
        bail!(
            "{}: is {}, where the image {file} belongs; {move_it}",
            path.display(),
            crate::input::kind_of(&meta.file_type())
        );
    }
    let info = image_builder::inspect(path).map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "{} exists ({} bytes) and is not {what}; {move_it}",
            path.display(),
            meta.len()
        ))
    })?;
    if (info.kind == image_builder::ImageKind::Swap) != swap {
        bail!(
            "{} exists and is {}, not {what}; {move_it}",
            path.display(),
            if swap { "a filesystem" } else { "a swap area" }
        );
    }
    Ok(Some(info))
}

/// The bytes the install writes in the folder (the files not there yet, and a MiB for
/// config.txt and the state), and those files as `FILE N MB`.
pub fn space_needed(plan: &Plan) -> (u64, Vec<String>) {
    let mut need: u64 = 1 << 20;
    let mut parts = Vec::new();
    for (file, path, mb) in plan.files() {
        if !path.exists() {
            need += mb << 20;
            parts.push(format!("{file} {mb} MB"));
        }
    }
    (need, parts)
}

/// Checks the host without changing anything: rights, free space (with the numbers),
/// that every source can be read, the files already in the folder ([`survey`]),
/// install-state.json and an interrupted install's journal (read as the install reads
/// them), and that each image to build holds what goes into it. The install runs it
/// first, and `--dry-run` runs it: both refuse the same things.
pub fn check_host(plan: &Plan) -> Result<()> {
    let prefix = &plan.prefix;
    // The kit first: every file it ships must match its kit.toml before any is used.
    if let Some(kit) = &plan.kit {
        crate::kit::load_verified(kit)?;
    }
    let existing = crate::facts::nearest_existing(prefix).ok_or_else(|| {
        anyhow!(
            "INSTALLDIR={}: no part of this path exists; choose a folder on an existing volume",
            prefix.display()
        )
    })?;
    // Windows: ACLs decide, so try it (a temporary file that deletes itself).
    #[cfg(windows)]
    if tempfile::tempfile_in(&existing).is_err() {
        bail!(
            "INSTALLDIR={}: no right to write in {}; run as an administrator (or SYSTEM, as msiexec's custom actions do), or choose another folder",
            prefix.display(),
            existing.display()
        );
    }
    #[cfg(unix)]
    if rustix::fs::access(
        &existing,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .is_err()
    {
        bail!(
            "INSTALLDIR={}: no right to write in {}; run as a user who may, or choose another folder",
            prefix.display(),
            existing.display()
        );
    }
    // A folder the rights allow may still hold no files (/proc, /sys, a read-only
    // volume; root passes access() everywhere): a temporary file that deletes itself
    // tells, before the free space of such a volume is taken for a number.
    #[cfg(unix)]
    if let Err(e) = tempfile::tempfile_in(&existing) {
        bail!(
            "INSTALLDIR={}: files cannot be written in {} ({}); choose another folder, e.g. {}",
            prefix.display(),
            existing.display(),
            match e.kind() {
                std::io::ErrorKind::PermissionDenied => "no right to write there",
                std::io::ErrorKind::ReadOnlyFilesystem => "its volume is read-only",
                _ => "it is not on a volume that holds files",
            },
            crate::plan::example_folder()
        );
    }
    // What is in the folder is read as the install reads it: a damaged state or journal
    // is refused here too, and an existing file must be an image to be kept.
    survey(plan)?;
    let (need, parts) = space_needed(plan);
    match crate::facts::gather(prefix).volume {
        Some(v) if v.free_bytes < need => bail!(
            "not enough free space for INSTALLDIR={}: the images need {} MB ({}), the volume of {} has {} MB free; \
             free {} MB more, or choose smaller sizes (ROOTMB, HOMEMB, SWAPMB) or another INSTALLDIR",
            prefix.display(),
            need >> 20,
            parts.join(", "),
            v.queried.display(),
            v.free_bytes >> 20,
            (need - v.free_bytes).div_ceil(1 << 20)
        ),
        _ => {}
    }
    for img in &plan.images {
        if img.path.exists() {
            continue;
        }
        match &img.source {
            SourcePlan::Busybox { busybox } => {
                crate::guest::check_static_busybox(busybox)?;
            }
            SourcePlan::KitRootfs { dir } => {
                fs::read_dir(dir).with_context(|| {
                    format!(
                        "KIT: cannot read the kit's root tree {}; give --kit DIR whose rootfs/ folder holds the guest's root",
                        dir.display()
                    )
                })?;
            }
            // Read to its end when the plan was made (image_builder::tar_content).
            SourcePlan::KitArchive { .. } | SourcePlan::Empty => {}
        }
        // The size checked against the content before anything is made: a size too
        // small is refused now, not after the images before it were built.
        let (opts, _staged) = image_options(plan, img)?;
        if let Err(e) = opts.check_fit() {
            let key = img.role.size_key();
            return Err(match e {
                image_builder::Error::TooSmall { minimum, what, .. } => {
                    let min_mb = minimum.div_ceil(1 << 20);
                    anyhow!(
                        "{key}={}: {} is too small for what goes into it: {what} needs at least {min_mb} MB; give {key}={min_mb} or more",
                        img.size_mb,
                        img.file
                    )
                }
                other => anyhow!(other).context(format!(
                    "{} ({} MB {}) cannot be built",
                    img.file, img.size_mb, img.fs
                )),
            });
        }
    }
    Ok(())
}

/// Installs `plan`.
pub fn install(plan: &Plan, ctx: &mut Ctx<'_>) -> Result<Summary, ApplyError> {
    let hooks = Hooks::from_env();
    ctx.rep.phase(if plan.kit.is_some() {
        "verifying the kit, checking the host"
    } else {
        "checking the host"
    });
    // A plan may be shown without the user's password (the wizard asks for it on a
    // later page), but not installed.
    if let Some(why) = plan.missing_password() {
        return Err(ApplyError::Failed(anyhow!(why)));
    }
    check_host(plan).map_err(ApplyError::Failed)?;
    if ctx.interrupt.load(Ordering::SeqCst) {
        return Err(ApplyError::Cancelled(cancelled()));
    }

    // The prefix and its missing parents, outermost first.
    let mut created = Vec::new();
    let mut p = Some(plan.prefix.as_path());
    while let Some(cur) = p {
        if cur.exists() {
            break;
        }
        created.push(cur.to_owned());
        p = cur.parent();
    }
    created.reverse();
    let mut made_here = Vec::new();
    for d in &created {
        match state::create_folder(d) {
            Ok(()) => made_here.push(d.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                for m in made_here.iter().rev() {
                    let _ = fs::remove_dir(m);
                }
                return Err(ApplyError::Failed(
                    anyhow!(e).context(format!("cannot create the folder {}", d.display())),
                ));
            }
        }
    }
    let lock = match Lock::acquire(&plan.prefix) {
        Ok(l) => l,
        Err(e @ state::LockError::Busy(_)) => return Err(ApplyError::Busy(anyhow!(e))),
        Err(e) => {
            for m in made_here.iter().rev() {
                let _ = fs::remove_dir(m);
            }
            return Err(ApplyError::Failed(anyhow!(e)));
        }
    };
    ctx.log.line(&format!("lock: {}", lock.path.display()));
    sweep_temporaries(&plan.prefix);

    let digest = plan.digest();
    let mut journal = match Journal::load(&plan.prefix) {
        Ok(Some(j)) if j.plan_digest == digest => {
            ctx.log
                .line("continuing an interrupted install of the same plan");
            ctx.rep.phase("continuing an interrupted install");
            // What the interrupted run was writing when it was killed.
            for e in &j.entries {
                if let Entry::File { path } | Entry::Replace { path, .. } = e {
                    remove_partials(path);
                }
            }
            j
        }
        Ok(Some(j)) => {
            ctx.log
                .line("an interrupted install of another plan is rolled back first");
            j.rollback(ctx.log, &undo_host);
            Journal::fresh(&plan.prefix, &digest)
        }
        Ok(None) => Journal::fresh(&plan.prefix, &digest),
        Err(e) => return Err(ApplyError::Failed(e)),
    };
    let result = (|| -> Result<Summary> {
        for d in &made_here {
            journal.push(Entry::Dir { path: d.clone() })?;
        }
        hooks.at("prefix", ctx.interrupt)?;
        steps(plan, ctx, &hooks, &mut journal, &digest)
    })();
    match result {
        Ok(summary) => {
            drop(lock);
            Ok(summary)
        }
        Err(e) => {
            let interrupted = ctx.interrupt.load(Ordering::SeqCst)
                || e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<image_builder::Error>(),
                        Some(image_builder::Error::Interrupted)
                    )
                });
            ctx.rep.phase("rolling back");
            let undone = journal.rollback(ctx.log, &undo_host);
            ctx.log
                .line(&format!("rolled back {} change(s)", undone.len()));
            let lock_path = lock.path.clone();
            drop(lock);
            // The lock file is bookkeeping of an installed machine: none is left in a
            // folder where nothing is installed.
            if !plan.prefix.join(STATE_FILE).exists() {
                let _ = fs::remove_file(&lock_path);
            }
            if interrupted {
                Err(ApplyError::Cancelled(cancelled()))
            } else {
                Err(ApplyError::Failed(e.context("the install failed; what it made has been removed, and what was there before is as it was")))
            }
        }
    }
}

fn steps(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    hooks: &Hooks,
    journal: &mut Journal,
    digest: &str,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let old_state = InstallState::read(&plan.prefix)?;
    let recorded = |file: &str| {
        old_state
            .as_ref()
            .and_then(|s| s.files.iter().find(|f| f.file == file).cloned())
    };
    let mut records = Vec::new();
    for img in &plan.images {
        check_interrupt(ctx.interrupt)?;
        let step = format!("image:{}", img.role.as_str());
        hooks.at(&step, ctx.interrupt)?;
        let rec = image_step(
            plan,
            img,
            ctx,
            hooks,
            journal,
            recorded(&img.file),
            &mut summary,
        )?;
        records.push(rec);
    }
    check_interrupt(ctx.interrupt)?;
    hooks.at("swap", ctx.interrupt)?;
    records.push(swap_step(
        plan,
        ctx,
        journal,
        recorded(&plan.swap.file),
        &mut summary,
    )?);

    check_interrupt(ctx.interrupt)?;
    hooks.at("machine-files", ctx.interrupt)?;
    let machine_files =
        crate::kit_files::step(plan, ctx, journal, old_state.as_ref(), &mut summary)?;

    check_interrupt(ctx.interrupt)?;
    hooks.at("config", ctx.interrupt)?;
    ctx.rep.phase("writing config.txt");
    let config = plan.prefix.join("config.txt");
    // initrd= is first-boot-only: a re-install after the first boot does not bring it back.
    let config_txt = crate::kit_files::config_after(plan, old_state.as_ref())?;
    write_file(&config, config_txt.as_bytes(), journal, &mut summary)?;
    records.push(FileRecord {
        file: "config.txt".into(),
        role: crate::state::FileRole::Config,
        bytes: config_txt.len() as u64,
        digest: Some(format!(
            "sha256:{}",
            crate::plan::hex(&sha2::Sha256::digest(config_txt.as_bytes()))
        )),
        origin: crate::state::Origin::Install,
        fs: None,
        uuid: None,
    });

    let mut objects = std::collections::BTreeMap::new();
    for step in HOST_STEPS {
        check_interrupt(ctx.interrupt)?;
        hooks.at(step.name(), ctx.interrupt)?;
        let applied = step.apply(plan, ctx, journal, old_state.as_ref(), &mut summary)?;
        records.extend(applied.files);
        if let Some(r) = applied.record {
            objects.insert(step.name().to_owned(), r);
        }
    }

    check_interrupt(ctx.interrupt)?;
    hooks.at("first-boot", ctx.interrupt)?;
    // A pending first boot writes into the images. Those this run built go with its
    // rollback. Kept ones are written into only by a re-run of the install that left
    // it pending (the same plan: "repair") when the install made them all: they are
    // copied first and put back if it fails. Otherwise (the user's image, or other
    // answers that keep the images as they are) it stays to `boot --first-boot`.
    let kept_any = plan
        .files()
        .iter()
        .any(|(file, _, _)| summary.kept.contains(file));
    let foreign = records.iter().any(|r| {
        r.origin != crate::state::Origin::Install
            && plan
                .files()
                .iter()
                .any(|(file, _, _)| *file == r.file && summary.kept.contains(file))
    });
    let repair = old_state.as_ref().is_some_and(|s| {
        s.first_boot == crate::state::FirstBoot::Pending && s.plan_digest == digest
    });
    let keep = if foreign {
        Some("images that this install did not make were kept")
    } else if kept_any && !repair {
        Some("the images were kept as they are")
    } else {
        None
    };
    let already = old_state.as_ref().map(|s| s.first_boot);
    // QEMU's accelerator: the probe's, or TCG when a KVM first boot hung and was retried.
    let mut accel = plan.monitor_choice.accel;
    summary.first_boot = match crate::firstboot::run(plan, ctx, journal, keep, already)? {
        crate::firstboot::Done::Ran(used) => {
            accel = used.or(accel);
            // The first boot wrote into the images (and may have changed config.txt).
            redigest(&plan.prefix, &mut records)?;
            summary.changed.push("first boot".into());
            FirstBoot::Done
        }
        crate::firstboot::Done::NotRun(s) => s,
    };

    // After the first boot's re-digest of the images: these are the kit's, unchanged.
    records.extend(machine_files);

    check_interrupt(ctx.interrupt)?;
    hooks.at("state", ctx.interrupt)?;
    let mut st = InstallState {
        format: 1,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        profile: plan.profile.clone(),
        monitor: plan.monitor,
        accel,
        monitor_why: Some(plan.monitor_choice.why.clone()),
        prefix: plan.prefix.clone(),
        plan_digest: digest.to_owned(),
        answers: plan.answers.clone(),
        first_boot: summary.first_boot,
        objects,
        files: records,
        installed_at: state::now_secs(),
    };
    if let Some(old) = &old_state {
        // When, and in whose words the monitor was chosen (`--monitor`, the recorded
        // answers, auto), are not what is installed.
        let mut same = st.clone();
        same.installed_at = old.installed_at;
        if same.monitor == old.monitor {
            same.monitor_why.clone_from(&old.monitor_why);
        }
        if &same == old {
            st = same;
        }
    }
    let bytes = serde_json::to_vec_pretty(&st).context("encoding install-state.json")?;
    write_file(&plan.prefix.join(STATE_FILE), &bytes, journal, &mut summary)?;

    check_interrupt(ctx.interrupt)?;
    hooks.at("commit", ctx.interrupt)?;
    journal.commit()?;
    // install-state.json records the images now: an earlier uninstall's record of them goes.
    let _ = fs::remove_file(plan.prefix.join(state::KEPT_FILE));
    Ok(summary)
}

/// Records again the size and digest of the files the install made, after the first
/// boot wrote into the images (and may have changed config.txt).
fn redigest(prefix: &Path, records: &mut [FileRecord]) -> Result<()> {
    for r in records
        .iter_mut()
        .filter(|r| r.origin == crate::state::Origin::Install)
    {
        let path = prefix.join(&r.file);
        r.bytes = fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        r.digest = Some(
            if r.role == crate::state::FileRole::Config || r.role == crate::state::FileRole::Driver
            {
                let bytes =
                    fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                format!("sha256:{}", crate::plan::hex(&sha2::Sha256::digest(&bytes)))
            } else if r.role.is_image() {
                state::file_digest(&path)?
            } else {
                // The kit's machine files: the first boot does not write them.
                continue;
            },
        );
    }
    Ok(())
}

/// The start of the journal's plan digest while a first boot run later
/// ([`first_boot_later`]) is under way: it is never a plan's digest, so no install
/// continues that journal, and every run that finds it rolls it back.
pub(crate) const FIRST_BOOT_JOURNAL: &str = "first-boot:";

/// Rolls back the journal of a first boot run later that was killed (its images are
/// put back as they were before it), if there is one; what was undone. The caller holds
/// the machine's lock.
pub fn roll_back_killed_first_boot(prefix: &Path, log: &mut RunLog) -> Vec<String> {
    match Journal::load(prefix) {
        Ok(Some(j)) if j.plan_digest.starts_with(FIRST_BOOT_JOURNAL) => {
            log.line("an interrupted first boot is rolled back first");
            j.rollback(log, &undo_host)
        }
        _ => Vec::new(),
    }
}

/// What [`first_boot_later`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Later {
    /// The first boot ran and succeeded; the state records it done.
    Ran,
    /// It was done already (nothing was booted).
    AlreadyDone,
    /// The machine's profile has no first boot.
    NoFirstBoot,
}

/// Runs the pending (or skipped) first boot of the machine installed in `prefix`, as
/// the install runs it (the same plan, guest script, timeout and verdict), then
/// records it done. A failure, Ctrl-C or kill puts back the images and config.txt as
/// they were before it (copies made first, journalled: [`crate::firstboot::back_up`]),
/// and the first boot stays pending.
pub fn first_boot_later(prefix: &Path, ctx: &mut Ctx<'_>) -> Result<Later, ApplyError> {
    let hooks = Hooks::from_env();
    let lock = match Lock::acquire(prefix) {
        Ok(l) => l,
        Err(e @ state::LockError::Busy(_)) => {
            return Err(ApplyError::Busy(anyhow!(e).context(
                "the machine is in use (a boot, install, uninstall or rebuild holds its lock); stop it first",
            )));
        }
        Err(e) => return Err(ApplyError::Failed(anyhow!(e))),
    };
    sweep_temporaries(prefix);
    for d in roll_back_killed_first_boot(prefix, ctx.log) {
        ctx.rep.warn(&format!("an interrupted first boot: {d}"));
    }
    match Journal::load(prefix) {
        Ok(Some(_)) => {
            return Err(ApplyError::Failed(anyhow!(
                "an interrupted install left its journal in {}; run the install again to finish it (or uninstall) first",
                prefix.display()
            )));
        }
        Ok(None) => {}
        Err(e) => return Err(ApplyError::Failed(e)),
    }
    let st = match InstallState::read(prefix) {
        Ok(Some(st)) => st,
        Ok(None) => {
            return Err(ApplyError::Failed(anyhow!(
                "no machine is installed in {}",
                prefix.display()
            )));
        }
        Err(e) => return Err(ApplyError::Failed(e)),
    };
    match st.first_boot {
        FirstBoot::Done => return Ok(Later::AlreadyDone),
        FirstBoot::None => return Ok(Later::NoFirstBoot),
        FirstBoot::Pending | FirstBoot::Skipped => {}
    }
    ctx.rep.phase("checking the installed machine");
    let plan = crate::firstboot::installed_plan(prefix, &st).map_err(ApplyError::Failed)?;
    if plan.first_boot.state != FirstBoot::Pending {
        return Ok(Later::NoFirstBoot);
    }
    // The images must be the machine's own, as install-state.json records them (read as
    // untrusted input: plain names in the folder, kind, size and UUID).
    for (file, _, _) in plan.files() {
        let why = match st.files.iter().find(|f| f.file == file) {
            None => Some("is not recorded in install-state.json".to_owned()),
            Some(rec) => match state::find(prefix, rec) {
                Ok(state::Found::Same) => None,
                Ok(state::Found::Missing) => Some("is missing".to_owned()),
                Ok(state::Found::Other(why)) => Some(why),
                Err(why) => Some(format!("is recorded as {why}")),
            },
        };
        if let Some(why) = why {
            return Err(ApplyError::Failed(anyhow!(
                "{} {why}; the first boot runs only on the images the install made: nothing was changed",
                prefix.join(file).display()
            )));
        }
    }
    let mut journal = Journal::fresh(prefix, &format!("{FIRST_BOOT_JOURNAL}{}", plan.digest()));
    let result = (|| -> Result<()> {
        hooks.at("first-boot", ctx.interrupt)?;
        let accel =
            match crate::firstboot::run(&plan, ctx, &mut journal, None, Some(st.first_boot))? {
                crate::firstboot::Done::Ran(used) => used.or(st.accel),
                crate::firstboot::Done::NotRun(_) => {
                    bail!("the first boot cannot run on this host (the warning above says why)")
                }
            };
        let mut done = st.clone();
        redigest(prefix, &mut done.files)?;
        done.first_boot = FirstBoot::Done;
        done.accel = accel;
        if done.answers.contains_key("NOFIRSTBOOT") {
            done.answers.insert("NOFIRSTBOOT".into(), "0".into());
        }
        done.installed_at = state::now_secs();
        check_interrupt(ctx.interrupt)?;
        hooks.at("state", ctx.interrupt)?;
        let bytes = serde_json::to_vec_pretty(&done).context("encoding install-state.json")?;
        write_file(
            &prefix.join(STATE_FILE),
            &bytes,
            &mut journal,
            &mut Summary::default(),
        )?;
        check_interrupt(ctx.interrupt)?;
        hooks.at("commit", ctx.interrupt)?;
        journal.commit()
    })();
    match result {
        Ok(()) => {
            drop(lock);
            Ok(Later::Ran)
        }
        Err(e) => {
            ctx.rep.phase("rolling back");
            let undone = journal.rollback(ctx.log, &undo_host);
            ctx.log
                .line(&format!("rolled back {} change(s)", undone.len()));
            drop(lock);
            let as_it_was = "the machine is as it was before the first boot (its images and config.txt put back \
                             from the copies made first), and its first boot is still pending";
            if ctx.interrupt.load(Ordering::SeqCst) {
                Err(ApplyError::Cancelled(anyhow!(
                    "cancelled ({}) during the first boot; {as_it_was}",
                    crate::progress::stop_reason()
                )))
            } else {
                Err(ApplyError::Failed(e.context(as_it_was)))
            }
        }
    }
}

fn image_step(
    plan: &Plan,
    img: &ImagePlan,
    ctx: &mut Ctx<'_>,
    hooks: &Hooks,
    journal: &mut Journal,
    recorded: Option<FileRecord>,
    summary: &mut Summary,
) -> Result<FileRecord> {
    remove_partials(&img.path);
    if img.path.exists() {
        let bytes = fs::metadata(&img.path).map(|m| m.len()).unwrap_or(0);
        if journal.owns(&img.path) {
            // Built by an interrupted run of this plan: renamed into place only when
            // complete, so it is kept.
            ctx.log
                .line(&format!("{}: built by the interrupted run; kept", img.file));
            return Ok(FileRecord {
                file: img.file.clone(),
                role: img.role.into(),
                bytes,
                digest: Some(state::file_digest(&img.path)?),
                origin: crate::state::Origin::Install,
                fs: None,
                uuid: image_uuid(&img.path),
            });
        }
        if let Some(r) = recorded {
            if r.origin == crate::state::Origin::Install
                && bytes != img.size_mb << 20
                && r.bytes == bytes
            {
                let w = format!(
                    "{} is {} MB, the plan asks for {} MB; it is kept as it is (images are never replaced by an install; use `colinux-setup images rebuild`)",
                    img.file,
                    bytes >> 20,
                    img.size_mb
                );
                ctx.rep.warn(&w);
                summary.warnings.push(w);
            }
            summary.kept.push(img.file.clone());
            return Ok(r);
        }
        // An image of its kind: check_host refused anything else before any change.
        ctx.log.line(&format!(
            "{} exists and was not made by this install: it is kept as it is, with its data",
            img.file
        ));
        summary.kept.push(img.file.clone());
        return Ok(FileRecord {
            file: img.file.clone(),
            role: img.role.into(),
            bytes,
            digest: None,
            origin: crate::state::Origin::Kept,
            fs: None,
            uuid: image_uuid(&img.path),
        });
    }
    ctx.rep.phase(&format!("building {}", img.file));
    let (opts, _staged) = image_options(plan, img)?;
    journal.push(Entry::File {
        path: img.path.clone(),
    })?;
    let writing = format!("image:{}:writing", img.role.as_str());
    let (report, _) = build_image(
        &img.path,
        &opts,
        &img.file,
        &writing,
        ctx.rep,
        hooks,
        ctx.interrupt,
    )
    .with_context(|| {
        format!(
            "building {} ({} MB {})",
            img.path.display(),
            img.size_mb,
            img.fs
        )
    })?;
    ctx.log.line(&format!(
        "built {}: {} {} bytes, UUID {}",
        img.file,
        report.level.name(),
        report.size_bytes,
        report.uuid
    ));
    summary.changed.push(img.file.clone());
    Ok(FileRecord {
        file: img.file.clone(),
        role: img.role.into(),
        bytes: report.size_bytes,
        digest: Some(state::file_digest(&img.path)?),
        origin: crate::state::Origin::Install,
        fs: None,
        uuid: Some(report.uuid.clone()),
    })
}

/// The image builder's options for an image of the plan, exactly as the install builds
/// it (level, size, label, owner, staged sources, SOURCE_DATE_EPOCH). The returned
/// [`crate::guest::Staged`] holds the staged sources: keep it until the build ends.
/// `images rebuild` uses it too, so a rebuilt root is the install's root.
/// Builds `out`, its phases shown as `LABEL: phase`; the test hook `step` fires while
/// its metadata is written (standing for a failure in the middle of a build). Returns
/// the report and how many entries of an image source were lost (the builder counts them).
pub(crate) fn build_image(
    out: &Path,
    opts: &image_builder::BuildOptions,
    label: &str,
    step: &str,
    rep: &mut Reporter,
    hooks: &Hooks,
    interrupt: &AtomicBool,
) -> Result<(image_builder::BuildReport, u64)> {
    let mut hook_err = None;
    let result = image_builder::build(
        out,
        opts,
        &mut |ev| match ev {
            image_builder::Event::Phase(p) => {
                if p == "writing metadata"
                    && hook_err.is_none()
                    && let Err(e) = hooks.at(step, interrupt)
                {
                    hook_err = Some(e);
                }
                rep.phase(&format!("{label}: {p}"));
            }
            image_builder::Event::Progress { done, total } => rep.progress(done, total),
            image_builder::Event::Warning(w) => rep.warn(&w),
        },
        interrupt,
    );
    if let Some(e) = hook_err {
        return Err(e);
    }
    let report = result.map_err(anyhow::Error::new)?;
    let lost = report.lost_entries;
    Ok((report, lost))
}

pub fn image_options(
    plan: &Plan,
    img: &ImagePlan,
) -> Result<(image_builder::BuildOptions, crate::guest::Staged)> {
    let staged = crate::guest::stage(plan, img)?;
    let mut opts =
        image_builder::BuildOptions::new(img.fs, image_builder::SizeSpec::Bytes(img.size_mb << 20));
    opts.label = Some(img.role.as_str().to_owned());
    opts.owner = Some((0, 0));
    opts.sources = staged.sources.clone();
    opts.source_date_epoch = Some(plan.source_date_epoch);
    // root.vhdx (the wsl monitor's) is written as VHDX.
    opts.format = image_builder::DiskFormat::from_path(&img.path);
    Ok((opts, staged))
}

/// The swap area's options, as the install writes it.
pub fn swap_options(plan: &Plan) -> image_builder::SwapOptions {
    image_builder::SwapOptions {
        size: plan.swap.size_mb << 20,
        label: Some("swap".into()),
        uuid: None,
        force: false,
        format: image_builder::DiskFormat::Raw,
    }
}

fn swap_step(
    plan: &Plan,
    ctx: &mut Ctx<'_>,
    journal: &mut Journal,
    recorded: Option<FileRecord>,
    summary: &mut Summary,
) -> Result<FileRecord> {
    let s = &plan.swap;
    remove_partials(&s.path);
    if s.path.exists() {
        let bytes = fs::metadata(&s.path).map(|m| m.len()).unwrap_or(0);
        if journal.owns(&s.path) {
            return Ok(FileRecord {
                file: s.file.clone(),
                role: crate::state::FileRole::Swap,
                bytes,
                digest: Some(state::file_digest(&s.path)?),
                origin: crate::state::Origin::Install,
                fs: None,
                uuid: image_uuid(&s.path),
            });
        }
        summary.kept.push(s.file.clone());
        return Ok(recorded.unwrap_or(FileRecord {
            file: s.file.clone(),
            role: crate::state::FileRole::Swap,
            bytes,
            digest: None,
            origin: crate::state::Origin::Kept,
            fs: None,
            uuid: image_uuid(&s.path),
        }));
    }
    ctx.rep.phase(&format!("writing {}", s.file));
    journal.push(Entry::File {
        path: s.path.clone(),
    })?;
    let r = image_builder::write_swap(&s.path, &swap_options(plan))
        .map_err(anyhow::Error::new)
        .with_context(|| format!("writing the swap image {}", s.path.display()))?;
    summary.changed.push(s.file.clone());
    Ok(FileRecord {
        file: s.file.clone(),
        role: crate::state::FileRole::Swap,
        bytes: r.size_bytes,
        digest: Some(state::file_digest(&s.path)?),
        origin: crate::state::Origin::Install,
        fs: None,
        uuid: Some(r.uuid.clone()),
    })
}

/// The filesystem or swap UUID of an image, for its record (see [`FileRecord::uuid`]).
fn image_uuid(path: &Path) -> Option<String> {
    image_builder::inspect(path).ok().map(|i| i.uuid)
}

/// Which images an uninstall removes (config.txt, the driver file and the state always go).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge {
    /// None: they hold the user's data.
    No,
    /// All of them, the logs, and the folder when it is then empty (`--purge`, PURGE=1).
    All,
    /// Only those the install made; images it found and kept (e.g. left by an earlier
    /// uninstall) stay. The MSI's rollback of a machine it created.
    MadeByInstall,
}

/// Uninstalls the machine in `prefix`: config.txt, install-state and the lock go; the
/// images go as `purge` says (with [`Purge::All`] or [`Purge::MadeByInstall`] the logs
/// and the folder, when empty, go too). `Ok(None)` when nothing is installed there.
pub fn uninstall(
    prefix: &Path,
    purge: Purge,
    log: &mut RunLog,
) -> Result<Option<Removed>, ApplyError> {
    if !prefix.is_dir() {
        return Ok(None);
    }
    let lock = match Lock::acquire(prefix) {
        Ok(l) => l,
        Err(e @ state::LockError::Busy(_)) => return Err(ApplyError::Busy(anyhow!(e))),
        Err(e) => return Err(ApplyError::Failed(anyhow!(e))),
    };
    sweep_temporaries(prefix);
    let mut out = Removed::default();
    match Journal::load(prefix) {
        Ok(Some(j)) => out.rolled_back = j.rollback(log, &undo_host),
        Ok(None) => {}
        Err(e) => return Err(ApplyError::Failed(e)),
    }
    let st = InstallState::read(prefix).map_err(ApplyError::Failed)?;
    let Some(st) = st else {
        // Images an earlier plain uninstall kept: `--purge` removes them now.
        if purge == Purge::All {
            let kept = read_kept(prefix).map_err(ApplyError::Failed)?;
            if let Some(kept) = kept {
                out.earlier = true;
                purge_kept(prefix, &kept, &mut out, log)?;
                drop(lock);
                let _ = fs::remove_file(prefix.join(state::LOCK_FILE));
                let _ = fs::remove_dir_all(prefix.join(state::LOGS_DIR));
                if fs::remove_dir(prefix).is_ok() {
                    out.removed.push(prefix.display().to_string());
                }
                return Ok(Some(out));
            }
        }
        drop(lock);
        let _ = fs::remove_file(prefix.join(state::LOCK_FILE));
        return Ok(if out.rolled_back.is_empty() {
            None
        } else {
            Some(out)
        });
    };
    // The host objects, in the reverse of the install's order (the PuTTY session, the
    // service before the driver it depends on, the TAP adapter), each only when this
    // tool made it; should one fail (no right), every file is still there and the
    // uninstall can be run again.
    for step in HOST_STEPS.iter().rev() {
        if let Some(rec) = st.objects.get(step.name()).filter(|v| !v.is_null()) {
            step.uninstall(rec, log, &mut out)
                .map_err(ApplyError::Failed)?;
        }
    }
    let remove = |p: PathBuf, out: &mut Removed, log: &mut RunLog| -> Result<(), ApplyError> {
        match fs::remove_file(&p) {
            Ok(()) => {
                log.line(&format!("removed {}", p.display()));
                out.removed.push(p.display().to_string());
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ApplyError::Failed(
                anyhow!(e).context(format!("cannot remove {}", p.display())),
            )),
        }
    };
    // install-state.json is untrusted input: a file it names is removed only when the
    // name is a plain name in this folder and the file is still what the install
    // recorded (state::find); anything else is kept and said.
    let mut kept_records = Vec::new();
    for f in &st.files {
        let goes = f.role == crate::state::FileRole::Config
            || f.role == crate::state::FileRole::Driver
            || f.role.is_machine_file()
            || purge == Purge::All
            || (purge == Purge::MadeByInstall && f.origin == crate::state::Origin::Install);
        let found = match state::find(prefix, f) {
            Ok(found) => found,
            Err(why) => {
                let line = format!(
                    "install-state.json names the file {why}; it was not looked at (the install only records plain names in its folder)"
                );
                log.line(&line);
                out.not_removed.push(line);
                continue;
            }
        };
        let p = prefix.join(&f.file);
        match found {
            state::Found::Missing => {}
            state::Found::Same if !goes => {
                out.kept.push(p.display().to_string());
                if f.role.is_image() {
                    kept_records.push(f.clone());
                }
            }
            _ if !goes => out.kept.push(p.display().to_string()),
            state::Found::Same => remove(p, &mut out, log)?,
            state::Found::Other(why) => {
                let line = format!(
                    "{} {why}; it is not what the install made, so it was kept",
                    p.display()
                );
                log.line(&line);
                out.not_removed.push(line);
            }
        }
    }
    // config.txt is recorded (and checked above) by every install; a state without its
    // record is from no install of ours, and the fixed name is removed as before.
    if !st.files.iter().any(|f| f.file == "config.txt") {
        remove(prefix.join("config.txt"), &mut out, log)?;
    }
    // The images kept are recorded before the state that names them goes, so that a
    // later `uninstall --purge` can still tell them from other files.
    write_kept(prefix, &kept_records).map_err(ApplyError::Failed)?;
    remove(prefix.join(STATE_FILE), &mut out, log)?;
    remove(prefix.join(state::MSI_NOTE_FILE), &mut out, log)?;
    let lock_path = lock.path.clone();
    drop(lock);
    let _ = fs::remove_file(&lock_path);
    if purge != Purge::No {
        let _ = fs::remove_dir_all(prefix.join(state::LOGS_DIR));
        if fs::remove_dir(prefix).is_ok() {
            out.removed.push(prefix.display().to_string());
        }
    }
    Ok(Some(out))
}

/// [`state::KEPT_FILE`]: the images a plain uninstall left, as install-state.json
/// recorded them.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Kept {
    /// Format of this file.
    pub format: u32,
    /// The kept images' records.
    pub files: Vec<FileRecord>,
}

/// Records the images an uninstall kept (atomically, [`state::PUBLIC_FILE`] as
/// install-state.json); with none, removes an older record.
fn write_kept(prefix: &Path, files: &[FileRecord]) -> Result<()> {
    let path = prefix.join(state::KEPT_FILE);
    if files.is_empty() {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    let kept = Kept {
        format: 1,
        files: files.to_vec(),
    };
    let bytes = serde_json::to_vec_pretty(&kept).context("encoding the kept images' record")?;
    state::write_atomic(&path, &bytes)
}

/// Reads [`state::KEPT_FILE`] as untrusted input (a regular file, not a symbolic link,
/// of at most [`crate::input::STATE_LIMIT`]); `Ok(None)` when there is none.
fn read_kept(prefix: &Path) -> Result<Option<Kept>> {
    let path = prefix.join(state::KEPT_FILE);
    let damaged = || {
        format!(
            "{} (the record of the images an uninstall kept) is damaged; remove the images by hand",
            path.display()
        )
    };
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Ok(m) if m.file_type().is_symlink() => {
            bail!(
                "{} is a symbolic link, which an uninstall never makes; nothing was removed",
                path.display()
            )
        }
        _ => {}
    }
    match crate::input::read(&path, crate::input::STATE_LIMIT, "a kept images' record") {
        Ok(b) => serde_json::from_slice(&b).map(Some).with_context(damaged),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(damaged())),
    }
}

/// Removes the images an earlier uninstall kept that are still those images
/// ([`state::find`]: plain names in the folder, the kind, size and UUID recorded); any
/// other is kept and said. The record goes with them.
fn purge_kept(
    prefix: &Path,
    kept: &Kept,
    out: &mut Removed,
    log: &mut RunLog,
) -> Result<(), ApplyError> {
    for f in &kept.files {
        if !f.role.is_image() {
            let line = format!(
                "{} names `{}` as a {} file, not an image; it was not looked at",
                state::KEPT_FILE,
                f.file,
                f.role
            );
            log.line(&line);
            out.not_removed.push(line);
            continue;
        }
        let found = match state::find(prefix, f) {
            Ok(found) => found,
            Err(why) => {
                let line = format!(
                    "{} names the file {why}; it was not looked at (an uninstall only records plain names in its folder)",
                    state::KEPT_FILE
                );
                log.line(&line);
                out.not_removed.push(line);
                continue;
            }
        };
        let p = prefix.join(&f.file);
        match found {
            state::Found::Missing => {}
            state::Found::Same => match fs::remove_file(&p) {
                Ok(()) => {
                    log.line(&format!(
                        "removed {} (kept by an earlier uninstall)",
                        p.display()
                    ));
                    out.removed.push(p.display().to_string());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ApplyError::Failed(
                        anyhow!(e).context(format!("cannot remove {}", p.display())),
                    ));
                }
            },
            state::Found::Other(why) => {
                let line = format!(
                    "{} {why}; it is not the image an earlier uninstall kept, so it was kept",
                    p.display()
                );
                log.line(&line);
                out.not_removed.push(line);
            }
        }
    }
    let path = prefix.join(state::KEPT_FILE);
    match fs::remove_file(&path) {
        Ok(()) => {
            log.line(&format!("removed {}", path.display()));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ApplyError::Failed(
            anyhow!(e).context(format!("cannot remove {}", path.display())),
        )),
    }
}
