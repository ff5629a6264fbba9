//! `status [--prefix DIR] [--json]`: what is installed, for people and for detection
//! scripts (SCCM, Intune): exit 0 when a machine is installed in the folder, 1 when not,
//! and 1 when one is recorded but cannot start as recorded: an image missing or no
//! longer a disk image of its kind, or install-state.json naming a file outside the
//! folder (listed as `problems`; a re-install repairs what it can and says the rest).
//!
//! It reads `install-state.json`, looks at each image (present, size, filesystem from
//! its superblock), checks `config.txt` as colinux-daemon would read it, and reports the
//! first boot, driver and TAP state (the driver and TAP are managed by later issues and
//! reported as such), and whether it runs in the background (`start`; for a wsl machine,
//! whether WSL lists its distribution Running).

use std::path::Path;

use config_txt::LintOptions;
use serde_json::{Value, json};

use image_builder::ImageKind;

use crate::exit::Outcome;
use crate::state::{self, InstallState, JOURNAL_FILE};

/// Runs `status`.
pub fn run(prefix: &Path, json_out: bool) -> Outcome {
    let st = match InstallState::read(prefix) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e),
    };
    let interrupted = prefix.join(JOURNAL_FILE).exists();
    let Some(st) = st else {
        if json_out {
            crate::out::outln!(
                "{}",
                json!({"installed": false, "prefix": prefix, "interrupted_install": interrupted})
            );
        } else {
            crate::out::outln!("{}: no machine is installed here", prefix.display());
            if interrupted {
                crate::out::outln!(
                    "  an interrupted install left its journal; run the install again to finish it, or uninstall to undo it"
                );
            }
        }
        return Outcome::CheckFailed;
    };
    // install-state.json is untrusted: a name that is not a plain name in the folder is
    // reported and never looked at; an image that is missing or no longer an image of
    // its kind is a machine that cannot start.
    let mut problems = Vec::new();
    let mut images = Vec::new();
    for f in &st.files {
        if let Err(why) = state::check_name(&f.file) {
            problems.push(format!(
                "install-state.json names the file `{}`, which {why}; it was not looked at (run the install again to rewrite the state)",
                f.file
            ));
        }
    }
    for f in st
        .files
        .iter()
        .filter(|f| {
            f.role != crate::state::FileRole::Config && f.role != crate::state::FileRole::Driver
        })
        .filter(|f| !f.role.is_machine_file())
        .filter(|f| state::check_name(&f.file).is_ok())
    {
        let path = prefix.join(&f.file);
        // Only a regular file is inspected (a FIFO would never answer).
        let readable = crate::input::open_regular(&path).is_ok();
        let info = readable
            .then(|| image_builder::inspect(&path).ok())
            .flatten();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).ok();
        if f.role.is_image() {
            match state::find(prefix, f) {
                Ok(state::Found::Missing) => problems.push(format!(
                    "{} is missing; run the install again to make it",
                    f.file
                )),
                Ok(state::Found::Other(why))
                    if info.as_ref().is_none_or(|i| {
                        (i.kind == ImageKind::Swap) != (f.role == crate::state::FileRole::Swap)
                    }) =>
                {
                    problems.push(format!(
                        "{} {why}; the machine cannot start with it: move it away and run the install again",
                        f.file
                    ));
                }
                _ => {}
            }
        }
        images.push(json!({
            "file": f.file,
            "role": f.role,
            "path": path,
            "present": bytes.is_some(),
            "bytes": bytes,
            "size_mb": info.as_ref().map(|i| i.size_bytes >> 20),
            "fs": info.as_ref().map(|i| serde_json::to_value(i.kind).unwrap_or(Value::Null)),
            "label": info.as_ref().map(|i| i.label.clone()),
            "uuid": info.as_ref().map(|i| i.uuid.clone()),
            "origin": f.origin,
        }));
    }
    let config = prefix.join("config.txt");
    let config_check = match crate::cmd::config::read_config(&config) {
        Ok(bytes) => {
            let name = config.display().to_string();
            let parsed = config_txt::parse(&bytes, &name);
            let opts = if st.first_boot == crate::state::FirstBoot::Done {
                LintOptions::after_first_boot()
            } else {
                LintOptions::default()
            };
            let diags = parsed.check(&opts);
            let errors = diags.iter().filter(|d| d.is_error()).count();
            json!({
                "file": config,
                "present": true,
                "ok": errors == 0,
                "errors": errors,
                "warnings": diags.len() - errors,
                "diagnostics": diags.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        }
        Err(_) => json!({"file": config, "present": false, "ok": false}),
    };
    // The adapter as the host has it now (name, MAC, address, up, owner).
    let records = (|| -> anyhow::Result<_> {
        Ok((
            crate::tap::record(&st)?,
            crate::driver::record(&st)?,
            crate::service::step::record(&st)?,
            crate::putty::step::record(&st)?,
        ))
    })();
    let (tap, driver, service, putty) = match records {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    // The WSL distribution (wsl monitor): registered, and its state, as WSL says now.
    let wsl = match crate::wsl::step::record(&st) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    let wsl_now = (wsl.is_some() || st.monitor == crate::profile::Monitor::Wsl)
        .then(|| crate::wsl::step::status(wsl.as_ref()));
    if let Some(w) = wsl_now
        .as_ref()
        .filter(|w| w["host"]["registered"] == false)
    {
        problems.push(format!(
            "the WSL distribution {} is not registered: {}",
            w["name"].as_str().unwrap_or(""),
            crate::wsl::step::status_line(w)
        ));
    }
    let tap_live = tap
        .as_ref()
        .map(|t| crate::cmd::tap::adapter_json(&t.name, t.host_ip));
    // A machine started in the background (`start`) while its process lives; a wsl
    // machine while WSL runs its distribution.
    let running = crate::machines::running(prefix);
    let wsl_running = wsl_now
        .as_ref()
        .filter(|w| {
            w["host"]["registered"] == true
                && w["host"].get("other_disk").is_none()
                && w["host"]["state"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("Running"))
        })
        .map(|w| w["name"].as_str().unwrap_or("").to_owned());
    let v = json!({
        "installed": true,
        "running": match (&running, &wsl_running) {
            (Some(r), _) => json!({"pid": r.pid, "monitor": r.monitor, "engine": r.engine, "started_at": r.started_at, "log": r.log}),
            (None, Some(name)) => json!({"pid": null, "monitor": "wsl", "engine": "WSL 2", "distribution": name}),
            (None, None) => Value::Null,
        },
        "prefix": prefix,
        "version": st.version,
        "profile": st.profile,
        "monitor": st.monitor,
        "accel": st.accel,
        "monitor_why": st.monitor_why,
        "installed_at": st.installed_at,
        "first_boot": st.first_boot,
        "images": images,
        "config": config_check,
        "machine_files": crate::kit_files::status(prefix, &st),
        "driver": crate::driver::status(driver.as_ref()),
        "service": crate::service::step::status(service.as_ref()),
        "putty": putty,
        "wsl": wsl_now,
        "tap": tap,
        "tap_adapter": tap_live.as_ref().map(|(v, _)| v),
        "interrupted_install": interrupted,
        "answers": st.answers,
        "problems": problems,
    });
    if json_out {
        crate::out::outln!("{v}");
    } else {
        crate::out::outln!(
            "{}: profile {} for the {} monitor, installed by colinux-setup {}",
            prefix.display(),
            st.profile,
            st.monitor,
            st.version
        );
        match (&running, &wsl_running) {
            (Some(r), _) => crate::out::outln!(
                "  running in the background ({}, process {} since {}); stop it with `colinux-setup stop --prefix {}`",
                r.engine,
                r.pid,
                state::stamp(r.started_at),
                prefix.display()
            ),
            (None, Some(name)) => crate::out::outln!(
                "  running (its WSL distribution {name}); stop it with `colinux-setup stop --prefix {}`",
                prefix.display()
            ),
            (None, None) if st.monitor == crate::profile::Monitor::Wsl => crate::out::outln!(
                "  not running (`colinux-setup start --prefix {}` starts it)",
                prefix.display()
            ),
            // `start` of the other monitors is Linux's for now: elsewhere there is
            // nothing to say.
            (None, None) if cfg!(unix) => crate::out::outln!("  not running in the background"),
            (None, None) => {}
        }
        if let Some(why) = &st.monitor_why {
            let title = crate::monitor::probe::title_of(st.monitor, st.accel);
            crate::out::outln!("  monitor: {title} ({why})");
        }
        for i in &images {
            crate::out::outln!(
                "  {:<10} {:<5} {}",
                i["file"].as_str().unwrap_or(""),
                i["role"].as_str().unwrap_or(""),
                if i["present"].as_bool() == Some(true) {
                    format!(
                        "{} MB {} ({})",
                        i["size_mb"]
                            .as_u64()
                            .or(i["bytes"].as_u64().map(|b| b >> 20))
                            .unwrap_or(0),
                        i["fs"].as_str().unwrap_or("unknown"),
                        i["origin"].as_str().unwrap_or("")
                    )
                } else {
                    "missing".to_owned()
                }
            );
        }
        for m in v["machine_files"].as_array().into_iter().flatten() {
            crate::out::outln!(
                "  {:<10} {:<7} {}",
                m["file"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or(""),
                match m["state"].as_str() {
                    Some("ok") => "ok (as copied from the kit)",
                    Some("changed") => {
                        "changed since the install (run the install again to restore it)"
                    }
                    _ => "missing (run the install again to restore it)",
                }
            );
        }
        crate::out::outln!(
            "  config.txt {}",
            if config_check["ok"].as_bool() == Some(true) {
                format!("ok ({} warning(s))", config_check["warnings"])
            } else {
                "has errors or is missing (see `colinux-setup config check`)".to_owned()
            }
        );
        crate::out::outln!(
            "  first boot: {}",
            crate::finish::recorded_first_boot_words(st.monitor, st.first_boot, prefix)
        );
        if let Some(t) = &tap {
            crate::out::outln!("  TAP {} on {}: {}", t.name, t.subnet, t.state);
            match &tap_live {
                Some((_, true)) => crate::out::outln!("    present and up with its address"),
                Some((v, false)) if v["present"].as_bool() == Some(true) => {
                    crate::out::outln!(
                        "    present, but not up with its address (see `colinux-setup tap status`)"
                    )
                }
                _ if t.skipped.is_some() => crate::out::outln!(
                    "    not created at install: {}",
                    t.skipped.as_deref().unwrap_or("")
                ),
                _ => crate::out::outln!(
                    "    missing on this host (recreate it with `colinux-setup tap install --prefix DIR`)"
                ),
            }
        }
        crate::out::outln!(
            "  driver: {}",
            crate::driver::status_line(&crate::driver::status(driver.as_ref()))
        );
        if let Some(p) = &putty {
            crate::out::outln!(
                "  PuTTY session: \"{}\": ssh {} port {} ({}{})",
                p.name,
                p.host,
                p.port,
                p.store.location(&p.name),
                if p.created {
                    ""
                } else {
                    "; it was there before, uninstall keeps it"
                }
            );
        }
        if service.is_some() || st.monitor == crate::profile::Monitor::Colinux {
            crate::out::outln!(
                "  service: {}",
                crate::service::step::status_line(&crate::service::step::status(service.as_ref()))
            );
        }
        if let Some(w) = &wsl_now {
            crate::out::outln!("  WSL distribution: {}", crate::wsl::step::status_line(w));
        }
        for p in &problems {
            crate::out::outln!("  problem: {p}");
        }
    }
    if problems.is_empty() {
        Outcome::Done
    } else {
        Outcome::CheckFailed
    }
}
