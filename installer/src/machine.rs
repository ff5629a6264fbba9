//! The machine's `config.txt`, written by the config-txt crate's canonical writer from
//! the plan, with a comment header that records the effective answers (administrators
//! find the configuration after defaults in the file itself).
//!
//! Paths are absolute (colinux-daemon resolves relative paths against the folder it is
//! started from). Each network adapter gets a fixed, locally administered MAC derived
//! from the install folder and the adapter's index, so the guest's interfaces keep their
//! names across boots and two machines on one host differ.

use std::fmt::Write as _;

use anyhow::{Result, anyhow};
use config_txt::{Cobd, Config, Mac, Nic};
use sha2::{Digest, Sha256};

use crate::plan::Plan;
use crate::profile::Monitor;

fn mac(plan: &Plan, index: u8) -> Mac {
    let h = Sha256::digest(plan.prefix.display().to_string().as_bytes());
    Mac([0x02, h[0], h[1], h[2], h[3], index])
}

/// The model of the machine's config.txt.
pub fn model(plan: &Plan) -> Config {
    let mut c = Config::new(plan.kernel.clone());
    c.mem = Some(plan.ram_mb);
    c.initrd = plan.initrd.clone();
    for i in &plan.images {
        c.cobd
            .insert(i.cobd, Cobd::new(i.path.display().to_string()));
    }
    c.cobd.insert(
        plan.swap.cobd,
        Cobd::new(plan.swap.path.display().to_string()),
    );
    c.root = plan
        .images
        .iter()
        .find(|i| i.mount == "/")
        .map(|i| i.device.clone());
    let mut eth = 0u8;
    if let Some(redirs) = &plan.slirp {
        c.eth.insert(
            eth,
            Nic::Slirp {
                mac: Some(mac(plan, eth)),
                redirs: redirs.clone(),
            },
        );
        eth += 1;
    }
    if let Some(t) = &plan.tap {
        c.eth.insert(
            eth,
            Nic::Tuntap {
                name: t.name.clone(),
                mac: Some(mac(plan, eth)),
            },
        );
    }
    for s in &plan.shares {
        c.cofs.insert(s.cofs, s.host.clone());
    }
    if let Some(port) = &plan.serial {
        c.ttys.insert(
            0,
            config_txt::model::Serial {
                name: port.clone(),
                mode: String::new(),
            },
        );
    }
    c
}

/// The comments of config.txt, in the words of the monitor that reads it: colinux-daemon's
/// for coLinux (the writer's own, unchanged), colinux-setup's for User-mode Linux and QEMU,
/// with the guest's device names. Comments only: what is read stays the same.
fn notes(plan: &Plan, config: &Config) -> config_txt::Notes {
    let mut n = config_txt::Notes::colinux();
    let title = match plan.monitor {
        Monitor::Colinux => return n,
        Monitor::Uml => "User-mode Linux",
        Monitor::Qemu => "QEMU",
        Monitor::Wsl => "WSL 2",
    };
    n.header = vec![
        format!(
            "Machine configuration in coLinux's config.txt grammar, read by colinux-setup, which starts it under {title} (colinux-setup boot)."
        ),
        "One setting per line. `#` starts a comment, so values cannot contain it.".to_owned(),
        "Paths are absolute.".to_owned(),
    ];
    n.kernel = match plan.monitor {
        Monitor::Uml => "Guest kernel: User-mode Linux's linux.uml, run as a program.".to_owned(),
        Monitor::Wsl => "Guest kernel: not used (WSL 2 runs its own kernel).".to_owned(),
        _ => "Guest kernel, loaded by QEMU (-kernel).".to_owned(),
    };
    n.mem = if plan.monitor == Monitor::Wsl {
        "Guest RAM in MB: not used (WSL 2 sets the memory of all distributions in .wslconfig)."
            .to_owned()
    } else {
        "Guest RAM in MB.".to_owned()
    };
    let devices: Vec<String> = config
        .cobd
        .keys()
        .map(|&i| format!("cobd{i} is {}", plan.monitor.device(i)))
        .collect();
    n.cobd = format!(
        "Block devices: {} in the guest (one filesystem or swap per image).",
        devices.join(", ")
    );
    n.eth = "Network adapters: slirp,MAC,REDIRECTIONS (user networking; the redirections listen on this host) | tuntap,NAME,MAC (a TAP adapter of this host)".to_owned();
    n.boot = "Guest kernel command line, in this order.".to_owned();
    n
}

/// The text of config.txt for `config` (the plan's model, or a variant of it): a header
/// of comments from the plan, then the canonical writer's output, checked to read back.
pub fn text(plan: &Plan, config: &Config) -> Result<String> {
    let body = config_txt::write_with(config, &notes(plan, config))
        .map_err(|e| anyhow!("config.txt cannot be written for this plan: {e}"))?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by colinux-setup {} for profile {}, monitor {} (devices {}).",
        env!("CARGO_PKG_VERSION"),
        plan.profile,
        plan.monitor.as_str(),
        plan.images
            .first()
            .map(|i| i.device.clone())
            .unwrap_or_default()
    );
    let answers: Vec<String> = plan
        .answers
        .iter()
        // The password's hash is not for a file anyone may read (it can be attacked
        // offline); --save-answers writes it, to a file the user chose.
        .filter(|(k, _)| !matches!(k.as_str(), "INSTALLDIR" | "PROFILE" | "USERPASSWORDHASH"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !answers.is_empty() {
        let _ = writeln!(s, "# Effective answers: {}", answers.join(" "));
    }
    s.push_str(&body);
    let parsed = config_txt::parse(s.as_bytes(), "config.txt");
    if parsed.has_errors() {
        return Err(anyhow!(
            "the config.txt written for this plan does not read back cleanly (a bug): {}",
            parsed
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use crate::monitor::probe::{Engine, Kernels, Prober, Verdict};

    struct Works;
    impl Prober for Works {
        fn probe(&self, engine: Engine, _: &Kernels) -> Verdict {
            Verdict::new(engine, true, "ran")
        }
    }

    fn config_for(monitor: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = crate::plan::Answers::default();
        for (k, v) in [
            ("MONITOR", monitor),
            ("NOFIRSTBOOT", "1"),
            ("INSTALLDIR", &dir.path().join("m").display().to_string()),
        ] {
            a.set(k, v, "test").expect("answer");
        }
        crate::plan::make_plan_with(&a, &Works)
            .expect("plan")
            .config_text()
            .expect("config.txt")
    }

    /// Issue 21 item 8: a config.txt for User-mode Linux or QEMU says what its lines are
    /// to colinux-setup on that monitor, with the guest's device names, not to
    /// colinux-daemon; coLinux's keeps colinux-daemon's words.
    #[test]
    fn the_comments_fit_the_monitor() {
        for (monitor, title, dev) in [
            ("uml", "User-mode Linux", "cobd0 is /dev/ubda"),
            ("qemu", "QEMU", "cobd0 is /dev/vda"),
        ] {
            let text = config_for(monitor);
            assert!(!text.contains("colinux-daemon"), "{text}");
            assert!(!text.contains("cobdN is /dev/cobdN"), "{text}");
            assert!(!text.contains("the driver clamps"), "{text}");
            assert!(text.contains(&format!("starts it under {title}")), "{text}");
            assert!(text.contains(dev), "{text}");
        }
        let text = config_for("colinux");
        assert!(
            text.contains("read by colinux-daemon 0.7") && text.contains("cobdN is /dev/cobdN"),
            "{text}"
        );
    }
}
