//! `facts [--json]`: the host's RAM, CPUs, OS, architecture and the free space of the
//! install folder's volume; which monitors run guests here, each found by the monitor
//! probe (a real boot of the smallest guest: see `monitor::probe`) with the reason in
//! the host's words, and the one `auto` picks; and the recommended guest RAM, swap,
//! root and home sizes with the rule behind each.

use std::path::PathBuf;

use anyhow::anyhow;
use serde_json::json;

use super::cli::FactsArgs;
use crate::exit::Outcome;
use crate::facts;
use crate::monitor::probe::{self, Accel, Engine, HostProber, Prober, Verdict};
use crate::plan;
use crate::profile::{self, Monitor, MonitorRequest};

/// Runs `facts`.
pub fn run(a: &FactsArgs) -> Outcome {
    let name = a.profile.as_deref().unwrap_or(profile::DEFAULT);
    if !profile::is_path(name)
        && let Err(e) = profile::builtin(name)
    {
        return Outcome::Usage(e);
    }
    let loaded = match profile::load(name) {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(e),
    };
    let request = match a.monitor.as_deref() {
        None => crate::host::default_monitor(loaded.profile.monitor),
        Some(m) => match MonitorRequest::parse(m) {
            Some(m) => m,
            None => {
                return Outcome::Usage(anyhow!(
                    "--monitor {m}: use auto, colinux, uml, qemu or wsl"
                ));
            }
        },
    };
    let prefix: PathBuf = match &a.prefix {
        Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.clone()),
        None => plan::default_prefix(&loaded.profile),
    };
    let kit = a
        .kit
        .as_ref()
        .map(|k| std::path::absolute(k).unwrap_or_else(|_| k.clone()));
    let kernels = plan::probe_kernels(kit.as_deref(), &loaded.profile, &prefix);
    let verdicts: Vec<Verdict> = every_engine()
        .into_iter()
        .map(|e| HostProber.probe(e, &kernels))
        .collect();
    // `auto`, from the verdicts just found (the probe keeps them for this process).
    let auto = probe::choose(MonitorRequest::Auto, "auto", true, &kernels, &HostProber);
    let monitor = match (request, &auto) {
        (MonitorRequest::Given(m), _) => m,
        (MonitorRequest::Auto, Ok(c)) => c.monitor,
        // Nothing runs here: the sizes are those of this host's own monitor, the first
        // `auto` tries (WSL 2 on 64-bit Windows, coLinux on 32-bit, UML on Linux).
        (MonitorRequest::Auto, Err(_)) => probe::auto_order()
            .first()
            .map_or(Monitor::Uml, |e| e.monitor()),
    };
    let host = facts::gather(&prefix);
    let rec = facts::recommend(&host, &loaded.profile, monitor);
    let limits = facts::ram_limits(&host, &loaded.profile, monitor);
    if a.json {
        crate::out::outln!(
            "{}",
            json!({
                "host": host, "profile": loaded.profile.name, "monitor": monitor,
                "monitors": verdicts,
                "auto": match &auto {
                    Ok(c) => json!({"monitor": c.monitor, "accel": c.accel, "why": c.why}),
                    Err(e) => json!({"monitor": null, "why": e.to_string()}),
                },
                "ram_limits": limits, "recommended": rec,
            })
        );
        return Outcome::Done;
    }
    crate::out::outln!("host:");
    crate::out::outln!(
        "  RAM:          {} MB total, {} MB available",
        host.total_ram_mb,
        host.available_ram_mb
    );
    crate::out::outln!("  CPUs:         {}", host.cpus);
    crate::out::outln!("  OS:           {} ({})", host.os, host.arch);
    match &host.volume {
        Some(v) => crate::out::outln!(
            "  free space:   {} MB of {} MB on the volume of {} (asked at {})",
            v.free_bytes >> 20,
            v.total_bytes >> 20,
            v.path.display(),
            v.queried.display()
        ),
        None => crate::out::outln!("  free space:   unknown for {}", prefix.display()),
    }
    crate::out::outln!("monitors (each probed by booting the smallest guest here):");
    for v in &verdicts {
        let e = v.engine();
        if v.works {
            crate::out::outln!("  {:<10} works: {} ({})", e.name(), e.title(), v.reason);
        } else {
            crate::out::outln!("  {:<10} does not work: {}", e.name(), v.reason);
        }
    }
    match &auto {
        Ok(c) => crate::out::outln!("  {:<10} {}: {}", "auto", c.engine().name(), c.why),
        Err(e) => crate::out::outln!("  {:<10} none: {e}", "auto"),
    }
    crate::out::outln!(
        "recommended for profile {} on the {} monitor:",
        loaded.profile.name,
        monitor.as_str()
    );
    crate::out::outln!(
        "  guest RAM:    {} MB ({}); allowed {}..{} MB",
        rec.ram.mb,
        rec.ram.rule,
        limits.min_mb,
        limits.max_mb
    );
    crate::out::outln!("  swap:         {} MB ({})", rec.swap.mb, rec.swap.rule);
    crate::out::outln!("  root:         {} MB ({})", rec.root.mb, rec.root.rule);
    if let Some(h) = &rec.home {
        crate::out::outln!("  home:         {} MB ({})", h.mb, h.rule);
    }
    for n in &rec.notes {
        crate::out::outln!("  note: {n}");
    }
    Outcome::Done
}

/// Every engine this host could have, in the order `auto` tries them; then the Windows
/// monitors on Linux, which say why they do not run here.
fn every_engine() -> Vec<Engine> {
    if cfg!(windows) {
        vec![Engine::Wsl, Engine::Colinux]
    } else {
        vec![
            Engine::Uml,
            Engine::Qemu(Accel::Kvm),
            Engine::Qemu(Accel::Tcg),
            Engine::Colinux,
            Engine::Wsl,
        ]
    }
}
