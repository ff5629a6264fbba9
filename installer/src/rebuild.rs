//! The rebuild engine: rebuilds an installed machine's images in one pass each
//! (`images rebuild`), and moves a machine to another monitor (`boot --monitor`).
//!
//! It lives below the commands (`cmd/rebuild.rs` parses the arguments and maps the
//! result to an exit code; `cmd/boot.rs` calls [`switch_monitor`]) so that the install
//! engine ([`crate::apply`], which sweeps the [`PENDING_FILE`] note) and the commands
//! share it without an import pointing up.
//!
//! - home is rebuilt from the old home.img itself (the image builder reads it as a
//!   source, with all metadata), so the user's files are kept: grown, shrunk, converted
//!   to another ext level, or rescued from damage (what could not be read is listed as
//!   `lost:` warnings and the run still exits 0).
//! - root is rebuilt from the installed plan (the answers in install-state.json, the
//!   profile and kit) by the install's own code ([`crate::apply::image_options`]); the
//!   paths of the profile's `preserve` list (and `--preserve PATH`) are then copied
//!   from the old root image over the fresh tree, in the same pass
//!   ([`image_builder::Source::ImagePaths`]); anything else the guest changed in root
//!   is not kept (`--no-preserve` keeps nothing).
//! - swap is rewritten as the install writes it.
//!
//! Each new image is written beside the old one (`IMAGE.new`), checked by
//! `image_builder::check` and `e2fsck -fn` (where installed), and only then put in
//! place: the old one is hard-linked to `IMAGE.bak`, and the new one renamed over
//! `IMAGE` (one atomic rename), so at every moment `IMAGE` is the complete old or the
//! complete new image; a failure, Ctrl-C or SIGKILL leaves the old image and a bootable
//! machine. `IMAGE.bak` is removed at the end unless `--keep-backup`.
//!
//! A rebuild runs under the machine's lock, which its caller takes (`images rebuild`:
//! exit 1618 when an install, uninstall, boot or other rebuild holds it; `boot` holds
//! it while it switches the monitor). A change of
//! filesystem type (ext3 -> ext4) of home changes the root image's /etc/fstab: it is
//! refused unless root is rebuilt in the same run. config.txt names devices, not
//! filesystems, and is left as it is.
//!
//! Test-only hook: `COLINUX_SETUP_TEST_PAUSE_AT=rebuild:IMAGE:writing` (while the new
//! image's metadata is written) or `rebuild:IMAGE:replace` (after the backup link, before
//! the rename) or `rebuild:IMAGE:state` (after the rename, before install-state.json
//! records it), with IMAGE `root`, `home` or `swap` (the latter not `writing`); see
//! [`crate::apply`] for the hook's behaviour. Not part of the product's interface.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow};
use image_builder::{FsLevel, Headroom, ImageKind, SizeSpec, Source};

use crate::apply;
use crate::engine::Hooks;
use crate::plan::{Answers, Plan};
use crate::profile::Role;
use crate::progress::Reporter;
use crate::state::{self, InstallState, RunLog, STATE_FILE};

/// An image of an installed machine. The engine's own type: the command line's
/// `MachineImage` maps onto it, so this module names nothing of the command layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Image {
    /// The root image, rebuilt from the profile and kit.
    Root,
    /// The home image, rebuilt from itself.
    Home,
    /// The swap image, rewritten.
    Swap,
}

/// What to rebuild and how (the values of `images rebuild`'s options; the messages
/// about bad values name the options, because that is where they come from).
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The images to rebuild.
    pub images: Vec<Image>,
    /// `--size`: the new size, unparsed.
    pub size: Option<String>,
    /// `--fs`: the new filesystem level, unresolved.
    pub fs: Option<String>,
    /// `--keep-backup`: keep the old image as IMAGE.bak.
    pub keep_backup: bool,
    /// `--preserve`: guest paths a root rebuild copies from the old root image.
    pub preserve: Vec<String>,
    /// `--no-preserve`: keep nothing of the old root image.
    pub no_preserve: bool,
}

/// How a rebuild ended badly.
pub enum Stop {
    /// Bad values (exit 2).
    Usage(anyhow::Error),
    /// Ctrl-C (1602).
    Cancelled(anyhow::Error),
    /// Anything else (1603).
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Stop {
        Stop::Failed(e)
    }
}

/// The fs level of an existing ext image.
fn level_of(path: &Path) -> Option<FsLevel> {
    let info = image_builder::inspect(path).ok()?;
    Some(match info.kind {
        ImageKind::Ext2 => FsLevel::Ext2,
        ImageKind::Ext3 => FsLevel::Ext3,
        ImageKind::Ext4 if info.features.iter().any(|f| f == "metadata_csum") => {
            FsLevel::Ext4Modern
        }
        ImageKind::Ext4 => FsLevel::Ext4Compat,
        ImageKind::Swap => return None,
    })
}

fn set_level(plan: &mut Plan, role: Role, level: FsLevel) {
    for i in plan.images.iter_mut().filter(|i| i.role == role) {
        i.fs = level;
        i.fstab_type = level.fstab_type();
    }
}

/// The installed plan, with each image's level as it is on disk. The machine's folder is
/// `prefix`, where its state is, whatever INSTALLDIR the state records: the state is
/// untrusted input, and a rebuild must not write images anywhere else.
fn installed_plan(prefix: &Path, st: &InstallState) -> Result<Plan> {
    let mut answers = Answers::default();
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
    // The machine's monitor where `auto` chose it at install (a switch names its new one).
    if st
        .answers
        .get("MONITOR")
        .is_none_or(|m| m.eq_ignore_ascii_case("auto"))
    {
        answers.set("MONITOR", st.monitor.as_str(), "install-state.json")?;
    }
    let mut plan = crate::plan::make_plan_with(&answers, &crate::monitor::probe::Trusting)
        .context("the installed machine's answers no longer make a plan")?;
    let found: Vec<(Role, FsLevel)> = plan
        .images
        .iter()
        .filter_map(|i| level_of(&i.path).map(|l| (i.role, l)))
        .collect();
    for (role, level) in found {
        set_level(&mut plan, role, level);
    }
    plan.fstab = crate::guest::fstab(&plan);
    Ok(plan)
}

/// Rebuilds `a.images` of the machine in `prefix` whose state is `st`; the caller holds
/// the machine's lock. Returns how many entries of old images could not be read.
pub fn rebuild(
    a: &Request,
    prefix: &Path,
    mut st: InstallState,
    rep: &mut Reporter,
    log: &mut RunLog,
    interrupt: &AtomicBool,
) -> Result<u64, Stop> {
    let mut targets = a.images.clone();
    targets.sort();
    targets.dedup();
    finish_pending(prefix, &mut st, log)?;
    let mut plan = installed_plan(prefix, &st)?;
    let kernel = plan.guest_kernel;
    let new_level = match &a.fs {
        Some(f) => {
            if targets == [Image::Swap] {
                return Err(Stop::Usage(anyhow!(
                    "--fs {f}: a swap image has no filesystem"
                )));
            }
            Some(
                FsLevel::resolve(f, Some(kernel))
                    .map_err(|e| Stop::Usage(anyhow!(e).context(format!("--fs {f}"))))?,
            )
        }
        None => None,
    };
    let size = match &a.size {
        Some(s) => Some(
            s.parse::<SizeSpec>()
                .map_err(|e| Stop::Usage(anyhow!(e).context(format!("--size {s}"))))?,
        ),
        None => None,
    };
    let old_fstab = plan.fstab.clone();
    if let Some(level) = new_level {
        for t in &targets {
            match t {
                Image::Root => set_level(&mut plan, Role::Root, level),
                Image::Home => set_level(&mut plan, Role::Home, level),
                Image::Swap => {}
            }
        }
    }
    plan.fstab = crate::guest::fstab(&plan);
    if plan.fstab != old_fstab && !targets.contains(&Image::Root) {
        return Err(Stop::Usage(anyhow!(
            "--fs {}: the new filesystem type must also be named in /etc/fstab, which lives in the root image; \
             rebuild root in the same run (`colinux-setup images rebuild root home --fs {} --prefix {}`; root is then rebuilt from the profile), \
             or keep the type (e.g. ext4-compat -> ext4-modern, or no --fs). Nothing was changed",
            a.fs.as_deref().unwrap_or(""),
            a.fs.as_deref().unwrap_or(""),
            prefix.display()
        )));
    }
    let hooks = Hooks::from_env();
    let mut lost = 0u64;
    // Swap first, root last: each replacement is atomic on its own.
    for t in [Image::Swap, Image::Home, Image::Root] {
        if !targets.contains(&t) {
            continue;
        }
        if interrupt.load(Ordering::SeqCst) {
            return Err(Stop::Cancelled(anyhow!(
                "cancelled ({}); the images not yet replaced are as they were",
                crate::progress::stop_reason()
            )));
        }
        let (name, role, recorded) = match t {
            Image::Root => ("root", Some(Role::Root), state::FileRole::Root),
            Image::Home => ("home", Some(Role::Home), state::FileRole::Home),
            Image::Swap => ("swap", None, state::FileRole::Swap),
        };
        let target = match role {
            Some(r) => plan
                .images
                .iter()
                .find(|i| i.role == r)
                .map(|i| i.path.clone())
                .ok_or_else(|| anyhow!("profile {} has no {name} image", plan.profile))?,
            None => plan.swap.path.clone(),
        };
        let file = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let new = target.with_file_name(format!("{file}.new"));
        // A SIGKILLed rebuild's leftovers.
        crate::engine::remove_partials(&new);
        let _ = fs::remove_file(&new);
        rep.phase(&format!("rebuilding {file}"));
        let built = match t {
            Image::Swap => build_swap(&plan, &new, a.size.as_deref()),
            Image::Home => build_home(&target, &new, new_level, size, rep, &hooks, interrupt).map(
                |(l, level)| {
                    lost += l;
                    Some(level)
                },
            ),
            Image::Root => {
                let keep = preserve_list(&plan, a)?;
                build_root(&plan, &target, &new, size, &keep, rep, &hooks, interrupt).map(
                    |(l, level)| {
                        lost += l;
                        Some(level)
                    },
                )
            }
        };
        let level = match built {
            Ok(l) => l,
            Err(e) => {
                crate::engine::remove_partials(&new);
                let _ = fs::remove_file(&new);
                let interrupted = interrupt.load(Ordering::SeqCst)
                    || e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<image_builder::Error>(),
                            Some(image_builder::Error::Interrupted)
                        )
                    });
                let e = e.context(format!("rebuilding {}; it is as it was", target.display()));
                return Err(if interrupted {
                    Stop::Cancelled(e)
                } else {
                    Stop::Failed(e)
                });
            }
        };
        if let Err(e) = check_new(&new) {
            let _ = fs::remove_file(&new);
            return Err(Stop::Failed(e.context(format!(
                "the new {file} did not pass the check; {} is as it was",
                target.display()
            ))));
        }
        let bytes = put_in_place(
            prefix,
            &mut st,
            (&target, &new),
            recorded,
            level,
            a.keep_backup,
            (&hooks, Some(&format!("rebuild:{name}:state"))),
            interrupt,
        )?;
        let key = match t {
            Image::Root => "ROOTMB",
            Image::Home => "HOMEMB",
            Image::Swap => "SWAPMB",
        };
        if st.answers.contains_key(key) {
            st.answers.insert(key.to_owned(), (bytes >> 20).to_string());
        }
        st.installed_at = state::now_secs();
        let json = serde_json::to_vec_pretty(&st).context("encoding install-state.json")?;
        state::write_atomic(&prefix.join(STATE_FILE), &json)?;
        let _ = fs::remove_file(prefix.join(PENDING_FILE));
        let msg = format!(
            "{file}: rebuilt, {} MiB{}{}",
            bytes >> 20,
            level.map(|l| format!(" {}", l.name())).unwrap_or_default(),
            if a.keep_backup {
                format!(", the old one kept as {file}.bak")
            } else {
                String::new()
            }
        );
        log.line(&msg);
        crate::out::outln!("{msg}");
    }
    Ok(lost)
}

/// Moves an installed machine to another monitor (`boot --monitor M`): the root image
/// is rebuilt from itself, everything kept, with the /etc/fstab the plan writes for `to`
/// (its devices: /dev/ubdX, /dev/vdX, /dev/cobdN), checked and put in place as any
/// rebuild; then config.txt is rewritten from the plan for `to` (without `initrd=` when
/// the first boot is done) and install-state.json records the new monitor. The caller
/// holds the machine's lock.
pub fn switch_monitor(
    prefix: &Path,
    to: crate::profile::Monitor,
    log: &mut RunLog,
    interrupt: &AtomicBool,
) -> Result<()> {
    let mut st = InstallState::read(prefix)?
        .ok_or_else(|| anyhow!("no machine is installed in {}", prefix.display()))?;
    finish_pending(prefix, &mut st, log)?;
    st.answers
        .insert("MONITOR".to_owned(), to.as_str().to_owned());
    let plan = installed_plan(prefix, &st)?;
    let root = plan
        .images
        .iter()
        .find(|i| i.role == Role::Root)
        .ok_or_else(|| anyhow!("profile {} has no root image", plan.profile))?;
    let file = root.file.clone();
    let new = root.path.with_file_name(format!("{file}.new"));
    crate::engine::remove_partials(&new);
    let _ = fs::remove_file(&new);
    let info = image_builder::inspect(&root.path).with_context(|| {
        format!(
            "{} cannot be read as an ext2/3/4 image",
            root.path.display()
        )
    })?;
    let level = level_of(&root.path)
        .ok_or_else(|| anyhow!("{} is not an ext2/3/4 image", root.path.display()))?;
    let bytes = fs::metadata(&root.path)
        .with_context(|| format!("reading {}", root.path.display()))?
        .len();
    let staging = tempfile::Builder::new()
        .prefix("colinux-setup-switch-")
        .tempdir()
        .context("creating a staging folder in the temporary folder")?;
    let fstab = staging.path().join("fstab");
    // The guest's /etc/fstab takes this file's mode: 0644, whatever the umask.
    state::create_new(&fstab, state::PUBLIC_FILE)
        .and_then(|mut f| std::io::Write::write_all(&mut f, plan.fstab.as_bytes()))
        .with_context(|| format!("writing {}", fstab.display()))?;
    let mut opts = image_builder::BuildOptions::new(level, SizeSpec::Bytes(bytes));
    opts.label = Some(info.label.clone()).filter(|l| !l.is_empty());
    opts.uuid = uuid::Uuid::parse_str(&info.uuid)
        .ok()
        .map(|u| *u.as_bytes());
    opts.sources = vec![
        Source::Image(root.path.clone()),
        Source::File {
            src: fstab,
            dest: "/etc/fstab".into(),
        },
    ];
    let mut rep = Reporter::new(false);
    let hooks = Hooks::from_env();
    let built = run_build(&new, &opts, "root", &mut rep, &hooks, interrupt)
        .and_then(|lost| {
            if lost > 0 {
                Err(anyhow!(
                    "{lost} entries of {} could not be read; run `colinux-setup images rebuild root` to rescue it first",
                    root.path.display()
                ))
            } else {
                Ok(())
            }
        })
        .and_then(|()| check_new(&new));
    rep.finish();
    if let Err(e) = built {
        let _ = fs::remove_file(&new);
        return Err(e);
    }
    put_in_place(
        prefix,
        &mut st,
        (&root.path, &new),
        state::FileRole::Root,
        Some(level),
        false,
        (&hooks, None),
        interrupt,
    )?;
    // As after a first boot: QEMU's initrd= is its kernel's initramfs (the virtio
    // drivers), needed at every boot; the others' is the first boot's only.
    let config = crate::machine::text(
        &plan,
        &crate::kit_files::config_for(&plan, st.first_boot == crate::state::FirstBoot::Done),
    )?;
    state::write_atomic(&prefix.join("config.txt"), config.as_bytes())?;
    if let Some(r) = st
        .files
        .iter_mut()
        .find(|f| f.role == crate::state::FileRole::Config)
    {
        r.bytes = config.len() as u64;
        r.digest = Some(format!(
            "sha256:{}",
            crate::plan::hex(&<sha2::Sha256 as sha2::Digest>::digest(config.as_bytes()))
        ));
    }
    st.monitor = to;
    st.installed_at = state::now_secs();
    let json = serde_json::to_vec_pretty(&st).context("encoding install-state.json")?;
    state::write_atomic(&prefix.join(STATE_FILE), &json)?;
    let _ = fs::remove_file(prefix.join(PENDING_FILE));
    log.line(&format!(
        "switched to the {} monitor: {file}'s /etc/fstab and config.txt rewritten",
        to.as_str()
    ));
    Ok(())
}

/// The record of an image being put in place, kept until install-state.json has it.
pub const PENDING_FILE: &str = ".rebuild-pending.json";

/// Puts the checked image `paths.1` in place of `paths.0` ([`replace`]) and its record
/// into `st` (not yet written: the caller writes the state). The record is noted in
/// [`PENDING_FILE`] before the rename, so a run killed between the rename and the
/// caller's state write is finished by the next one ([`finish_pending`]); `hook.1` is the
/// test hook after the rename. Returns the new image's size.
#[allow(clippy::too_many_arguments)]
fn put_in_place(
    prefix: &Path,
    st: &mut InstallState,
    (target, new): (&Path, &Path),
    role: state::FileRole,
    level: Option<FsLevel>,
    keep_backup: bool,
    (hooks, state_hook): (&Hooks, Option<&str>),
    interrupt: &AtomicBool,
) -> Result<u64> {
    let bytes = fs::metadata(new)
        .with_context(|| format!("reading {}", new.display()))?
        .len();
    let record = state::FileRecord {
        file: target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        role,
        bytes,
        digest: Some(state::file_digest(new)?),
        origin: crate::state::Origin::Install,
        fs: level,
        uuid: image_builder::inspect(new).ok().map(|i| i.uuid),
    };
    let note = serde_json::to_vec_pretty(&record).context("encoding the pending record")?;
    state::write_atomic(&prefix.join(PENDING_FILE), &note)?;
    if let Err(e) = replace(target, new, keep_backup, hooks, interrupt) {
        let _ = fs::remove_file(prefix.join(PENDING_FILE));
        return Err(e);
    }
    if let Some(step) = state_hook {
        hooks.at(step, interrupt)?;
    }
    adopt(st, record);
    Ok(bytes)
}

/// Puts `record` into the state, replacing the file's old record.
fn adopt(st: &mut InstallState, record: state::FileRecord) {
    match st.files.iter_mut().find(|f| f.file == record.file) {
        Some(r) => *r = record,
        None => st.files.push(record),
    }
}

/// Finishes what a killed rebuild left: its new image was renamed into place exactly
/// when `IMAGE.new` is gone (the note is written only once `IMAGE.new` is complete), so
/// then install-state.json takes the note's record; else the old image is still in
/// place and the note is dropped.
fn finish_pending(prefix: &Path, st: &mut InstallState, log: &mut RunLog) -> Result<()> {
    let path = prefix.join(PENDING_FILE);
    let Ok(bytes) = crate::input::read(&path, crate::input::STATE_LIMIT, "a rebuild's note") else {
        return Ok(());
    };
    // The note is read as untrusted as install-state.json: only a record of a plain
    // name in the folder is adopted.
    if let Ok(record) = serde_json::from_slice::<state::FileRecord>(&bytes)
        && state::check_name(&record.file).is_ok()
        && !prefix.join(format!("{}.new", record.file)).exists()
        && prefix.join(&record.file).exists()
    {
        log.line(&format!(
            "{}: an interrupted rebuild had put it in place; install-state.json now records it",
            record.file
        ));
        adopt(st, record);
        let json = serde_json::to_vec_pretty(&*st).context("encoding install-state.json")?;
        state::write_atomic(&prefix.join(STATE_FILE), &json)?;
    }
    fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
}

fn build_swap(plan: &Plan, new: &Path, size: Option<&str>) -> Result<Option<FsLevel>> {
    let mut opts = apply::swap_options(plan);
    if let Some(s) = size {
        opts.size = image_builder::parse_bytes(s)
            .map_err(|e| anyhow!(e).context(format!("--size {s} (swap needs a size, not auto)")))?;
    }
    image_builder::write_swap(new, &opts)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("writing {}", new.display()))?;
    Ok(None)
}

/// Builds `new` from `old` (the user's data): returns the losses and the level.
fn build_home(
    old: &Path,
    new: &Path,
    level: Option<FsLevel>,
    size: Option<SizeSpec>,
    rep: &mut Reporter,
    hooks: &Hooks,
    interrupt: &AtomicBool,
) -> Result<(u64, FsLevel)> {
    let info = image_builder::inspect(old)
        .with_context(|| format!("{} cannot be read as an ext2/3/4 image", old.display()))?;
    let level = match level.or_else(|| level_of(old)) {
        Some(l) => l,
        None => return Err(anyhow!("{} is not an ext2/3/4 image", old.display())),
    };
    let free = info.free_blocks.saturating_mul(u64::from(info.block_size));
    let size = size.unwrap_or(SizeSpec::Auto(Headroom::Bytes(free)));
    let mut opts = image_builder::BuildOptions::new(level, size);
    opts.label = Some(info.label.clone()).filter(|l| !l.is_empty());
    opts.uuid = uuid::Uuid::parse_str(&info.uuid)
        .ok()
        .map(|u| *u.as_bytes());
    opts.sources = vec![Source::Image(old.to_owned())];
    let lost = run_build(new, &opts, "home", rep, hooks, interrupt)?;
    Ok((lost, level))
}

/// The paths a root rebuild keeps: the profile's `preserve` list and `--preserve`,
/// checked, sorted, and without paths inside another listed path (copied with it).
fn preserve_list(plan: &Plan, a: &Request) -> Result<Vec<String>, Stop> {
    if a.no_preserve {
        return Ok(Vec::new());
    }
    let mut keep: Vec<String> = plan
        .images
        .iter()
        .filter(|i| i.role == Role::Root)
        .flat_map(|i| i.preserve.iter().cloned())
        .collect();
    for p in &a.preserve {
        crate::profile::check_guest_path(p)
            .map_err(|e| Stop::Usage(anyhow!("--preserve `{p}` {e}")))?;
        keep.push(p.clone());
    }
    let mut norm: Vec<String> = keep
        .iter()
        .map(|p| {
            let c: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
            format!("/{}", c.join("/"))
        })
        .collect();
    norm.sort();
    norm.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in norm {
        if !out.iter().any(|o| {
            p.strip_prefix(o.as_str())
                .is_some_and(|r| r.starts_with('/'))
        }) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Builds the new root from the plan, then `keep` from the old root image over it.
/// Returns the losses (unreadable parts of the kept paths) and the level.
#[allow(clippy::too_many_arguments)]
fn build_root(
    plan: &Plan,
    old: &Path,
    new: &Path,
    size: Option<SizeSpec>,
    keep: &[String],
    rep: &mut Reporter,
    hooks: &Hooks,
    interrupt: &AtomicBool,
) -> Result<(u64, FsLevel)> {
    let img = plan
        .images
        .iter()
        .find(|i| i.role == Role::Root)
        .ok_or_else(|| anyhow!("profile {} has no root image", plan.profile))?;
    let (mut opts, _staged) = apply::image_options(plan, img)?;
    if let Some(s) = size {
        opts.size = s;
    }
    if !keep.is_empty() {
        if image_builder::inspect(old).is_ok_and(|i| i.kind != ImageKind::Swap) {
            rep.phase(&format!(
                "root: keeping {} from the old root",
                keep.join(", ")
            ));
            opts.sources.push(Source::ImagePaths {
                image: old.to_owned(),
                paths: keep.to_vec(),
            });
            // /etc/fstab names this rebuild's devices and types: the plan's wins even
            // when the user keeps all of /etc.
            let fstab = opts
                .sources
                .iter()
                .find(|s| matches!(s, Source::File { dest, .. } if dest == "/etc/fstab"))
                .cloned();
            opts.sources.extend(fstab);
        } else {
            rep.warn(&format!(
                "{} cannot be read as an ext2/3/4 image: nothing of it is kept ({} lost)",
                old.display(),
                keep.join(", ")
            ));
        }
    }
    let level = opts.level;
    let lost = run_build(new, &opts, "root", rep, hooks, interrupt)?;
    Ok((lost, level))
}

/// Runs the builder; returns how many entries were lost.
fn run_build(
    new: &Path,
    opts: &image_builder::BuildOptions,
    name: &str,
    rep: &mut Reporter,
    hooks: &Hooks,
    interrupt: &AtomicBool,
) -> Result<u64> {
    let step = format!("rebuild:{name}:writing");
    let (_, lost) = apply::build_image(new, opts, name, &step, rep, hooks, interrupt)
        .with_context(|| format!("building {}", new.display()))?;
    Ok(lost)
}

/// `images check` of the new image: structure, and `e2fsck -fn` where installed.
fn check_new(new: &Path) -> Result<()> {
    let report = image_builder::check(new)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("checking {}", new.display()))?;
    if !report.problems.is_empty() {
        return Err(anyhow!("{}", report.problems.join("; ")));
    }
    if report.kind != Some(ImageKind::Swap)
        && let Some((false, out)) = e2fsck_verdict(new)
    {
        return Err(anyhow!("e2fsck -fn found problems:\n{out}"));
    }
    Ok(())
}

/// Puts `new` in place of `target`: `target` is hard-linked to `target.bak`, then `new`
/// is renamed over `target` (atomic), then the backup is removed unless kept.
fn replace(
    target: &Path,
    new: &Path,
    keep: bool,
    hooks: &Hooks,
    interrupt: &AtomicBool,
) -> Result<()> {
    let file = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bak: PathBuf = target.with_file_name(format!("{file}.bak"));
    let _ = fs::remove_file(&bak);
    if target.exists() {
        fs::hard_link(target, &bak)
            .or_else(|_| fs::copy(target, &bak).map(|_| ()))
            .with_context(|| format!("keeping {} as {}", target.display(), bak.display()))?;
    }
    let stem = target
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(e) = hooks.at(&format!("rebuild:{stem}:replace"), interrupt) {
        let _ = fs::remove_file(new);
        let _ = fs::remove_file(&bak);
        return Err(e);
    }
    fs::rename(new, target).with_context(|| {
        format!(
            "renaming {} to {}; the old image is as it was",
            new.display(),
            target.display()
        )
    })?;
    if let Some(dir) = target.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    if !keep {
        fs::remove_file(&bak).with_context(|| format!("removing {}", bak.display()))?;
    }
    Ok(())
}

/// Runs `e2fsck -fn` where it is installed: (clean, output). Also `images check`'s. Clean means exit 0 *and*
/// nothing printed beyond its pass lines and summary, since some problems (a wrong free
/// blocks count in the superblock) are reported with exit 0.
pub fn e2fsck_verdict(image: &Path) -> Option<(bool, String)> {
    let out = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let quiet = text.lines().all(|l| {
        l.starts_with("Pass ")
            || l.starts_with("e2fsck ")
            || l.trim().is_empty()
            || (l.contains(" files (") && l.ends_with(" blocks"))
    });
    Some((out.status.success() && quiet, text))
}
