//! `facts [--json]`: the host's RAM, CPUs, OS, architecture and the free space of the
//! install folder's volume, and the recommended guest RAM, swap, root and home sizes
//! with the rule behind each.

use std::path::PathBuf;

use anyhow::anyhow;
use serde_json::json;

use crate::cli::FactsArgs;
use crate::exit::Outcome;
use crate::facts;
use crate::plan;
use crate::profile::{self, Monitor};

/// Runs `facts`.
pub fn run(a: &FactsArgs) -> Outcome {
    let loaded = match profile::load(a.profile.as_deref().unwrap_or(profile::DEFAULT)) {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(e),
    };
    let monitor = match a.monitor.as_deref() {
        None => crate::host::default_monitor(loaded.profile.monitor),
        Some(m) => match Monitor::parse(m) {
            Some(m) => m,
            None => return Outcome::Usage(anyhow!("--monitor {m}: use colinux, uml or qemu")),
        },
    };
    let prefix: PathBuf = match &a.prefix {
        Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.clone()),
        None => plan::default_prefix(&loaded.profile),
    };
    let host = facts::gather(&prefix);
    let rec = facts::recommend(&host, &loaded.profile, monitor);
    let limits = facts::ram_limits(&host, &loaded.profile, monitor);
    if a.json {
        println!(
            "{}",
            json!({"host": host, "profile": loaded.profile.name, "monitor": monitor, "ram_limits": limits, "recommended": rec})
        );
        return Outcome::Done;
    }
    println!("host:");
    println!(
        "  RAM:          {} MB total, {} MB available",
        host.total_ram_mb, host.available_ram_mb
    );
    println!("  CPUs:         {}", host.cpus);
    println!("  OS:           {} ({})", host.os, host.arch);
    match &host.volume {
        Some(v) => println!(
            "  free space:   {} MB of {} MB on the volume of {} (asked at {})",
            v.free_bytes >> 20,
            v.total_bytes >> 20,
            v.path.display(),
            v.queried.display()
        ),
        None => println!("  free space:   unknown for {}", prefix.display()),
    }
    println!(
        "recommended for profile {} on the {} monitor:",
        loaded.profile.name,
        monitor.as_str()
    );
    println!(
        "  guest RAM:    {} MB ({}); allowed {}..{} MB",
        rec.ram.mb, rec.ram.rule, limits.min_mb, limits.max_mb
    );
    println!("  swap:         {} MB ({})", rec.swap.mb, rec.swap.rule);
    println!("  root:         {} MB ({})", rec.root.mb, rec.root.rule);
    if let Some(h) = &rec.home {
        println!("  home:         {} MB ({})", h.mb, h.rule);
    }
    for n in &rec.notes {
        println!("  note: {n}");
    }
    Outcome::Done
}
