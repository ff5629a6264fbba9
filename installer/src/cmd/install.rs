//! `install` (the default command): answers → plan → (wizard) → dry run or apply.
//!
//! Order of precedence: the profile < the answer file < flags (`--prefix`, `--monitor`,
//! `--kit`, `--no-first-boot`, `--profile`) and `--set KEY=VALUE` < wizard answers.
//! Without a terminal and without `--unattended`, it fails at once (1603) and says to
//! use `--unattended`; it never waits for input.

use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, anyhow};

use super::cli::InstallArgs;
use crate::apply::{self, ApplyError};
use crate::engine::Ctx;
use crate::exit::{self, Outcome};
use crate::plan::{self, Answers};
use crate::profile;
use crate::progress::{Reporter, emit};
use crate::state::RunLog;

/// Runs `install`.
pub fn run(args: InstallArgs, interrupt: &AtomicBool) -> Outcome {
    let interactive = !args.unattended && !args.dry_run;
    if interactive && !std::io::stdin().is_terminal() {
        return fail(
            &args,
            None,
            anyhow!(
                "there is no terminal to ask on, and --unattended was not given; \
                 for a silent install run `colinux-setup install --unattended` (with --prefix, --answers or --set KEY=VALUE)"
            ),
        );
    }
    let mut log = RunLog::start("install", args.log.as_deref());
    exit::set_trailer(format!(
        "colinux-setup: the log of this run is {}",
        log.path.display()
    ));
    // Command-line syntax first (exit 2), before any file is read.
    let mut sets = Answers::default();
    for pair in &args.set {
        if let Err(e) = sets.set_pair(pair) {
            return Outcome::Usage(e);
        }
    }
    if let Some(m) = &args.monitor
        && profile::MonitorRequest::parse(m).is_none()
    {
        return Outcome::Usage(anyhow!(
            "--monitor {m}: use auto, colinux, uml, qemu or wsl"
        ));
    }
    // A profile name on the command line that names no built-in profile is a usage
    // error, as an unknown --set key is (a damaged profile file is not: 1603).
    let named = args
        .profile
        .as_deref()
        .or_else(|| sets.get("PROFILE").map(|a| a.value.as_str()));
    if let Some(name) = named
        && !profile::is_path(name)
        && let Err(e) = profile::builtin(name)
    {
        return Outcome::Usage(e);
    }
    let mut answers = Answers::default();
    let file = args
        .answers
        .clone()
        .or_else(|| sets.get("ANSWERFILE").map(|a| a.value.clone().into()));
    if let Some(f) = &file
        && let Err(e) = answers.read_file(f)
    {
        return fail(&args, Some(&mut log), e);
    }
    let flags: [(&str, Option<String>, &str); 5] = [
        ("PROFILE", args.profile.clone(), "--profile"),
        (
            "INSTALLDIR",
            args.prefix.as_ref().map(|p| p.display().to_string()),
            "--prefix",
        ),
        ("MONITOR", args.monitor.clone(), "--monitor"),
        (
            "KIT",
            args.kit.as_ref().map(|p| p.display().to_string()),
            "--kit",
        ),
        (
            "NOFIRSTBOOT",
            args.no_first_boot.then(|| "1".to_owned()),
            "--no-first-boot",
        ),
    ];
    for (k, v, origin) in flags {
        if let Some(v) = v
            && let Err(e) = answers.set(k, &v, origin)
        {
            return Outcome::Usage(e);
        }
    }
    for (k, a) in sets.0 {
        if k != "ANSWERFILE" {
            answers.0.insert(k, a);
        }
    }
    // A kit URL becomes a local kit folder in the cache before anything else reads it.
    match crate::download::kit_answer(
        &mut answers,
        args.cache.as_deref(),
        args.json,
        &mut log,
        interrupt,
    ) {
        Ok(_) => {}
        Err(e @ crate::download::DownloadError::Cancelled { .. }) => {
            return Outcome::Cancelled(e.into());
        }
        Err(e) => {
            return fail(
                &args,
                Some(&mut log),
                anyhow::Error::new(e)
                    .context("KIT: the kit could not be fetched; nothing was installed"),
            );
        }
    }
    let plan = match make_plan(&answers) {
        Ok(p) => p,
        Err(e) => return fail(&args, Some(&mut log), e),
    };
    let plan = if interactive {
        match crate::wizard::run(answers, plan, interrupt, args.save_answers.clone()) {
            Ok(crate::wizard::Outcome::Install(p)) => *p,
            Ok(crate::wizard::Outcome::Cancelled) => {
                log.line("cancelled in the wizard; nothing was changed");
                return Outcome::Cancelled(anyhow!("cancelled in the wizard; nothing was changed"));
            }
            Err(e) => return fail(&args, Some(&mut log), e),
        }
    } else {
        plan
    };
    log.line(&plan::describe(&plan));
    // The wizard's bars: the reporter draws on them, and the wizard's apply marks the
    // last one when the install fails or is cancelled.
    let steps = (interactive && !args.json).then(crate::wizard::progress::Steps::new);
    let mut rep = match &steps {
        Some(s) => s.reporter(),
        None => Reporter::new(args.json),
    };
    for w in &plan.warnings {
        rep.warn(w);
    }
    if let Some(path) = &args.save_answers {
        if let Err(e) = crate::state::write_atomic(path, plan.answer_file().as_bytes())
            .with_context(|| format!("--save-answers {}", path.display()))
        {
            return fail(&args, Some(&mut log), e);
        }
        log.line(&format!("answers saved to {}", path.display()));
    }
    if args.dry_run {
        // The same checks as the install's, with what it would do with the files that
        // are already there.
        let check = match plan.missing_password() {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => apply::check_host(&plan),
        };
        let files = apply::survey(&plan).unwrap_or_default();
        if args.json {
            emit(
                &serde_json::json!({"event": "plan", "plan": plan, "files": files, "host_check": check.as_ref().err().map(|e| format!("{e:#}"))}),
            );
        } else {
            // The kept images are said with the images, before fstab and config.txt.
            let text = plan::describe(&plan);
            let at = text.find("\n/etc/fstab:").unwrap_or(text.len());
            crate::out::out!(
                "{}{}{}",
                &text[..at],
                apply::describe_survey(&files),
                &text[at..]
            );
            crate::out::outln!("(dry run: nothing was changed)");
        }
        return match check {
            Ok(()) => Outcome::Done,
            Err(e) => fail(&args, Some(&mut log), e),
        };
    }
    if args.json {
        emit(&serde_json::json!({"event": "plan", "plan": plan}));
    }
    let result = if interactive {
        crate::wizard::progress::apply(&plan, &mut rep, steps.as_ref(), &mut log, interrupt)
    } else {
        apply::install(
            &plan,
            &mut Ctx {
                rep: &mut rep,
                log: &mut log,
                interrupt,
            },
        )
    };
    rep.finish();
    // A run that found another one at work leaves nothing in its folder, not even a log.
    let log_path = if matches!(result, Err(ApplyError::Busy(_))) {
        log.path.clone()
    } else {
        log.settle(&plan.prefix)
    };
    exit::set_trailer(format!(
        "colinux-setup: the log of this run is {}",
        log_path.display()
    ));
    match result {
        Ok(summary) => {
            log.line(&format!(
                "done: changed {:?}, kept {:?}",
                summary.changed, summary.kept
            ));
            // `list` finds the machine through this user's registry; a registry that
            // cannot be written costs the listing, not the install.
            if let Err(e) = crate::machines::register(&plan.prefix) {
                log.line(&format!("warning: {e}"));
                eprintln!("colinux-setup: warning: {e}");
            }
            if interactive && !args.json {
                crate::wizard::progress::finish(&plan, &summary, &log_path);
            } else if args.json {
                emit(&serde_json::json!({
                    "event": "done", "exit": 0, "prefix": plan.prefix, "profile": plan.profile,
                    "changed": summary.changed, "kept": summary.kept,
                    "first_boot": summary.first_boot, "log": log_path,
                }));
            } else if summary.changed.is_empty() {
                crate::out::outln!(
                    "{}: already installed as planned (profile {}); nothing changed{}",
                    plan.prefix.display(),
                    plan.profile,
                    if summary.first_boot == crate::state::FirstBoot::Done
                        || summary.first_boot == crate::state::FirstBoot::None
                    {
                        String::new()
                    } else {
                        format!(
                            "; first boot: {}",
                            crate::finish::first_boot_words(&plan, summary.first_boot)
                        )
                    }
                );
            } else {
                crate::out::outln!(
                    "installed profile {} into {} for the {} monitor: made {}{}; first boot: {}",
                    plan.profile,
                    plan.prefix.display(),
                    plan.monitor.as_str(),
                    summary.changed.join(", "),
                    if summary.kept.is_empty() {
                        String::new()
                    } else {
                        format!(", kept {}", summary.kept.join(", "))
                    },
                    crate::finish::first_boot_words(&plan, summary.first_boot)
                );
                // A machine that cannot start here is not sent to `boot`: where it
                // runs and what it lacks instead.
                if crate::finish::cannot_start_here(&plan).is_some() {
                    for line in crate::finish::start_lines(&plan) {
                        crate::out::outln!("{line}");
                    }
                }
                if let Some(line) = crate::finish::login_line(&plan) {
                    crate::out::outln!("{line}");
                }
                crate::out::outln!("log: {}", log_path.display());
            }
            Outcome::Done
        }
        Err(e) => {
            let (outcome, msg) = super::apply_outcome(e);
            log.line(&format!("error: {msg}"));
            if args.json {
                emit(&serde_json::json!({"event": "error", "message": msg, "log": log_path}));
            }
            outcome
        }
    }
}

/// Logs and reports a failure before anything was changed.
fn fail(args: &InstallArgs, log: Option<&mut RunLog>, e: anyhow::Error) -> Outcome {
    let msg = format!("{e:#}");
    if let Some(log) = log {
        log.line(&format!("error: {msg}"));
        if args.json {
            emit(&serde_json::json!({"event": "error", "message": msg, "log": log.path}));
        }
    } else if args.json {
        emit(&serde_json::json!({"event": "error", "message": msg}));
    }
    Outcome::Failed(e)
}

pub use crate::plan::make_plan;
