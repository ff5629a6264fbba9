//! `images build | swap | check | inspect`: the image builder on the command line.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, anyhow};
use image_builder::{BuildOptions, Event, FsLevel, KernelVersion, SizeSpec, Source, SwapOptions};

use super::cli::{BuildArgs, ImageArgs, ImagesCommand, SwapArgs};
use crate::exit::Outcome;
use crate::progress::{Reporter, emit};

/// Runs one `images` subcommand.
pub fn run(cmd: ImagesCommand, interrupt: &AtomicBool) -> Outcome {
    match cmd {
        ImagesCommand::Build(a) => build(a, interrupt),
        ImagesCommand::Swap(a) => swap(a),
        ImagesCommand::Check(a) => check(&a),
        ImagesCommand::Inspect(a) => inspect(&a),
        ImagesCommand::Rebuild(a) => super::rebuild::run(&a, interrupt),
    }
}

/// Classifies an image-builder error: bad values given on the command line are usage
/// errors (exit 2); everything else is a failure (1603).
pub(crate) fn classify(err: image_builder::Error, context: String) -> Outcome {
    use image_builder::Error as E;
    let usage = matches!(
        err,
        E::UnknownFs(_)
            | E::Unmountable { .. }
            | E::BadKernelVersion(_)
            | E::BadSize(_)
            | E::BadBlockSize(_)
            | E::BadArgument(_)
    );
    let interrupted = matches!(err, E::Interrupted);
    let err = anyhow::Error::new(err).context(context);
    if usage {
        Outcome::Usage(err)
    } else if interrupted {
        Outcome::Cancelled(err)
    } else {
        Outcome::Failed(err)
    }
}

fn build(a: BuildArgs, interrupt: &AtomicBool) -> Outcome {
    let ctx = format!("building {}", a.out.display());
    let opts = match build_options(&a) {
        Ok(o) => o,
        Err(e) => return classify(e, ctx),
    };
    let mut rep = Reporter::new(a.json);
    let result = image_builder::build(
        &a.out,
        &opts,
        &mut |ev| match ev {
            Event::Phase(p) => rep.phase(p),
            Event::Progress { done, total } => rep.progress(done, total),
            Event::Warning(w) => rep.warn(&w),
        },
        interrupt,
    );
    rep.finish();
    match result {
        Ok(r) => {
            if a.json {
                emit(&serde_json::json!({"event": "done", "image": r}));
            } else {
                let vhdx = if r.format == image_builder::DiskFormat::Vhdx {
                    " in a VHDX"
                } else {
                    ""
                };
                crate::out::outln!(
                    "{}: {} {} MiB{vhdx}, {} of {} blocks free, {} of {} inodes free, UUID {}",
                    r.path.display(),
                    r.level.name(),
                    r.size_bytes >> 20,
                    r.free_blocks,
                    r.blocks,
                    r.free_inodes,
                    r.inodes,
                    r.uuid
                );
            }
            Outcome::Done
        }
        Err(e) => classify(e, ctx),
    }
}

/// Turns the command line into builder options (syntax only; the builder checks meaning).
fn build_options(a: &BuildArgs) -> Result<BuildOptions, image_builder::Error> {
    use image_builder::Error as E;
    let kernel = a
        .kernel
        .as_deref()
        .map(str::parse::<KernelVersion>)
        .transpose()?;
    let level = FsLevel::resolve(&a.fs, kernel)?;
    let size: SizeSpec = a.size.parse()?;
    let mut o = BuildOptions::new(level, size);
    if let Some(bs) = a.block_size {
        o.block_size = bs;
    }
    o.label = a.label.clone();
    o.seed = a.seed.clone();
    o.force = a.force;
    o.format = disk_format(&a.out, a.format.as_deref())?;
    if let Some(u) = &a.uuid {
        let u = uuid::Uuid::parse_str(u)
            .map_err(|_| E::BadArgument(format!("--uuid '{u}' is not a UUID")))?;
        o.uuid = Some(*u.as_bytes());
    }
    if let Some(own) = &a.owner {
        let parsed = own
            .split_once(':')
            .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
        o.owner = Some(parsed.ok_or_else(|| {
            E::BadArgument(format!(
                "--owner '{own}' is not UID:GID (numbers, e.g. 0:0)"
            ))
        })?);
    }
    for d in &a.from {
        // A folder, an ext2/3/4 image, a tar archive, or `-` (a tar stream on stdin).
        o.sources.push(Source::detect(d));
    }
    for f in &a.file {
        let (src, dest) = f
            .split_once(':')
            .filter(|(s, d)| !s.is_empty() && d.starts_with('/'))
            .ok_or_else(|| {
                E::BadArgument(format!(
                    "--file '{f}' is not SRC:DEST with an absolute DEST (e.g. fstab:/etc/fstab)"
                ))
            })?;
        o.sources.push(Source::File {
            src: src.into(),
            dest: dest.to_owned(),
        });
    }
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        let t = v.trim().parse().map_err(|_| {
            E::BadArgument(format!(
                "SOURCE_DATE_EPOCH '{v}' is not a number of seconds"
            ))
        })?;
        o.source_date_epoch = Some(t);
    }
    Ok(o)
}

/// The disk format asked for: `--format`, or else the file name's (VHDX for `.vhdx`). A
/// raw image named `.vhdx` is refused: Windows and WSL would take it for a VHDX.
fn disk_format(
    out: &Path,
    asked: Option<&str>,
) -> Result<image_builder::DiskFormat, image_builder::Error> {
    use image_builder::DiskFormat;
    let by_name = DiskFormat::from_path(out);
    let Some(asked) = asked else {
        return Ok(by_name);
    };
    let format: DiskFormat = asked.parse()?;
    if format == DiskFormat::Raw && by_name == DiskFormat::Vhdx {
        return Err(image_builder::Error::BadArgument(format!(
            "'{}' ends in .vhdx, but --format raw was asked for: name a raw image .img, or leave --format out",
            out.display()
        )));
    }
    Ok(format)
}

fn swap(a: SwapArgs) -> Outcome {
    let ctx = format!("writing swap image {}", a.out.display());
    let size = match image_builder::parse_bytes(&a.size) {
        Ok(s) => s,
        Err(e) => return classify(e, ctx),
    };
    let format = match disk_format(&a.out, a.format.as_deref()) {
        Ok(f) => f,
        Err(e) => return classify(e, ctx),
    };
    let uuid = match a.uuid.as_deref().map(uuid::Uuid::parse_str).transpose() {
        Ok(u) => u.map(|u| *u.as_bytes()),
        Err(_) => {
            return Outcome::Usage(anyhow!(
                "--uuid '{}' is not a UUID",
                a.uuid.unwrap_or_default()
            ));
        }
    };
    match image_builder::write_swap(
        &a.out,
        &SwapOptions {
            size,
            label: a.label.clone(),
            uuid,
            force: a.force,
            format,
        },
    ) {
        Ok(r) => {
            crate::out::outln!(
                "{}: swap {} MiB, {} pages, UUID {}",
                a.out.display(),
                r.size_bytes >> 20,
                r.pages,
                r.uuid
            );
            Outcome::Done
        }
        Err(e) => classify(e, ctx),
    }
}

fn inspect(a: &ImageArgs) -> Outcome {
    match image_builder::inspect(&a.image)
        .with_context(|| format!("inspecting {}", a.image.display()))
    {
        Ok(info) => {
            if a.json {
                crate::out::outln!(
                    "{}",
                    serde_json::to_string_pretty(&info).unwrap_or_default()
                );
            } else {
                print_info(&a.image, &info);
            }
            Outcome::Done
        }
        Err(e) => Outcome::Failed(e),
    }
}

fn print_info(path: &Path, i: &image_builder::ImageInfo) {
    crate::out::outln!("{}", path.display());
    crate::out::outln!("  kind:        {:?}", i.kind);
    if i.format == image_builder::DiskFormat::Vhdx {
        crate::out::outln!("  format:      VHDX (dynamic; the sizes below are its virtual disk's)");
    }
    crate::out::outln!(
        "  size:        {} bytes ({} MiB), file {} bytes",
        i.size_bytes,
        i.size_bytes >> 20,
        i.file_bytes
    );
    crate::out::outln!(
        "  label:       {}",
        if i.label.is_empty() {
            "(none)"
        } else {
            &i.label
        }
    );
    crate::out::outln!("  uuid:        {}", i.uuid);
    if !i.features.is_empty() {
        crate::out::outln!("  features:    {}", i.features.join(" "));
        crate::out::outln!("  block size:  {}", i.block_size);
        crate::out::outln!(
            "  blocks:      {} used, {} free, {} total",
            i.used_blocks,
            i.free_blocks,
            i.blocks
        );
        crate::out::outln!(
            "  inodes:      {} used, {} free, {} total ({} bytes each)",
            i.used_inodes,
            i.free_inodes,
            i.inodes,
            i.inode_size
        );
        crate::out::outln!("  groups:      {}", i.groups);
        crate::out::outln!(
            "  state:       {}",
            if i.clean { "clean" } else { "not clean" }
        );
    } else {
        crate::out::outln!("  pages:       {} of {} bytes", i.blocks, i.block_size);
    }
}

fn check(a: &ImageArgs) -> Outcome {
    let report = match image_builder::check(&a.image) {
        Ok(r) => r,
        Err(e) => {
            // A file that is no image (or cannot be read) is what a checker finds, not a
            // failure of the checker: exit 1, as `config check` does for such a file.
            crate::exit::print_error(
                &anyhow::Error::new(e).context(format!("checking {}", a.image.display())),
            );
            return Outcome::CheckFailed;
        }
    };
    let e2fsck = if report.kind == Some(image_builder::ImageKind::Swap) {
        None
    } else if image_builder::DiskFormat::from_path(&a.image) == image_builder::DiskFormat::Vhdx
        || image_builder::VirtualDisk::open(&a.image)
            .is_ok_and(|d| d.format() == image_builder::DiskFormat::Vhdx)
    {
        e2fsck_of_vhdx(&a.image)
    } else {
        crate::rebuild::e2fsck_verdict(&a.image)
    };
    let ok = report.problems.is_empty() && e2fsck.as_ref().is_none_or(|(ok, _)| *ok);
    if a.json {
        crate::out::outln!(
            "{}",
            serde_json::json!({
                "image": a.image,
                "ok": ok,
                "problems": report.problems,
                "e2fsck": e2fsck.as_ref().map(|(ok, out)| serde_json::json!({"ok": ok, "output": out})),
            })
        );
    } else {
        for p in &report.problems {
            crate::out::outln!("{}: error: {p}", a.image.display());
        }
        match &e2fsck {
            Some((true, _)) => crate::out::outln!("{}: e2fsck -fn: clean", a.image.display()),
            Some((false, out)) => {
                crate::out::outln!("{}: e2fsck -fn found problems:", a.image.display());
                for l in out.lines() {
                    crate::out::outln!("  {l}");
                }
            }
            // Swap areas have no e2fsck verdict: the structural check is the whole check.
            None if report.kind == Some(image_builder::ImageKind::Swap) => {}
            None => crate::out::outln!(
                "{}: e2fsck not found on PATH; structural check only",
                a.image.display()
            ),
        }
        if ok {
            crate::out::outln!("{}: ok", a.image.display());
        }
    }
    if ok {
        Outcome::Done
    } else {
        Outcome::CheckFailed
    }
}

/// e2fsck reads raw disks only: a VHDX's virtual disk is copied to a sparse temporary
/// file (only its data is written) and judged there. None when e2fsck is not installed or
/// the copy cannot be made (the structural check has read the disk already).
fn e2fsck_of_vhdx(image: &Path) -> Option<(bool, String)> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut disk = image_builder::VirtualDisk::open(image).ok()?;
    let mut raw = tempfile::Builder::new()
        .prefix("colinux-setup-check.")
        .suffix(".img")
        .tempfile()
        .ok()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = disk.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            let f = raw.as_file_mut();
            f.seek(SeekFrom::Start(at)).ok()?;
            std::io::Write::write_all(f, &buf[..n]).ok()?;
        }
        at += n as u64;
    }
    raw.as_file().set_len(at).ok()?;
    crate::rebuild::e2fsck_verdict(raw.path())
}
