//! What the end of an install tells the user, for the wizard's finish page and the
//! unattended install's last lines alike: how to start the machine, or, when it cannot
//! start on this host (a coLinux machine made on Linux, a host where no monitor runs
//! guests), where it can run and what it still lacks; and how to log in when a built-in
//! profile documents its password. Pure functions of the plan (and of the files the
//! install folder holds), so the words are unit-tested without an install.

use crate::plan::Plan;
use crate::profile::Monitor;
use crate::state::FirstBoot;

/// Why the machine cannot start on this host (the probe's words), or `None` when it can
/// (or when its monitor was not probed: a machine not booted at install).
pub fn cannot_start_here(plan: &Plan) -> Option<&str> {
    let engine = plan.monitor_choice.engine();
    plan.monitor_choice
        .verdicts
        .iter()
        .rev()
        .find(|v| v.engine() == engine)
        .filter(|v| !v.works)
        .map(|v| v.reason.as_str())
}

/// The lines under "Start it:": the commands that start the machine here, or why it
/// cannot start here, where it runs and what is missing.
pub fn start_lines(plan: &Plan) -> Vec<String> {
    let p = plan.prefix.display();
    let sep = std::path::MAIN_SEPARATOR;
    let Some(reason) = cannot_start_here(plan) else {
        let mut out = Vec::new();
        if plan.monitor == Monitor::Colinux {
            out.push(format!(
                "on its Windows host: colinux-daemon -t nt @\"{p}{sep}config.txt\""
            ));
        }
        out.push(format!("colinux-setup boot --prefix {p}"));
        return out;
    };
    let mut out = vec![format!("It cannot start on this host: {reason}.")];
    match plan.monitor {
        Monitor::Colinux => {
            // Its config.txt names this host's paths: it is installed there, not copied.
            out.push(
                "It is made for coLinux, which runs on 32-bit Windows 2000..7 and Linux 2.6 hosts with at most \
                 4 GB of RAM: install it on such a host (setup.msi on Windows), where `colinux-setup boot` starts it."
                    .to_owned(),
            );
            let mut missing = Vec::new();
            for w in crate::kit_files::colinux_warnings(plan) {
                if w.starts_with("kernel=") {
                    missing.push("the coLinux kernel (vmlinux)");
                } else {
                    missing.push("colinux-daemon and its helpers");
                }
            }
            if !missing.is_empty() {
                out.push(format!(
                    "It still needs {}: they come with a kit holding the coLinux files; install again with --kit DIR|URL, or copy them into {p}.",
                    missing.join(" and ")
                ));
            }
            if let Some(root) = plan.images.first()
                && let crate::plan::SourcePlan::Busybox { busybox } = &root.source
                && crate::guest::busybox_misfit(busybox, plan.monitor).is_some()
            {
                out.push(
                    "Its root holds this host's busybox, which a coLinux kernel cannot run: \
                     a kit with a root filesystem for i386 makes a machine that starts."
                        .to_owned(),
                );
            }
        }
        Monitor::Wsl => out.push(
            "It is made for WSL 2, which runs on 64-bit Windows 10 (2004 and later) and 11: install it there \
             (setup.msi), where `colinux-setup boot` opens its shell."
                .to_owned(),
        ),
        Monitor::Uml | Monitor::Qemu => out.push(format!(
            "It runs on a host where {} runs guests: start it there with colinux-setup boot.",
            crate::monitor::probe::title_of(plan.monitor, plan.monitor_choice.accel)
        )),
    }
    out.push(
        "For a machine that starts on this host, install again with --monitor uml or --monitor qemu \
         (`colinux-setup facts` says which work here)."
            .to_owned(),
    );
    out
}

/// The first boot's state in the last words of an install: how to run a pending one
/// here, or, when the machine cannot start here, that it waits for a host where it can.
pub fn first_boot_words(plan: &Plan, state: FirstBoot) -> String {
    if state.is_outstanding() && cannot_start_here(plan).is_some() {
        format!(
            "{state} (it runs with `colinux-setup boot --first-boot` on a host where the machine can start)"
        )
    } else {
        crate::firstboot::state_words(state, &plan.prefix)
    }
}

/// [`first_boot_words`] for an installed machine (`status`), from what its state records:
/// a coLinux machine on a host coLinux cannot run on is not sent to `boot` here.
pub fn recorded_first_boot_words(
    monitor: Monitor,
    state: FirstBoot,
    prefix: &std::path::Path,
) -> String {
    if state.is_outstanding()
        && monitor == Monitor::Colinux
        && crate::monitor::colinux::host_supports().is_err()
    {
        format!(
            "{state} (it runs with `colinux-setup boot --first-boot` on a host where the machine can start)"
        )
    } else {
        crate::firstboot::state_words(state, prefix)
    }
}

/// How to log in, when a built-in profile documents the password: the first user but
/// root with one, else root.
pub fn login_line(plan: &Plan) -> Option<String> {
    let known = |u: &&crate::plan::UserPlan| u.known_password.is_some();
    plan.users
        .iter()
        .filter(known)
        .find(|u| u.uid != 0)
        .or_else(|| plan.users.iter().find(known))
        .and_then(|u| u.login_words())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::probe::{Engine, Kernels, Prober, Verdict};

    /// A prober that says what the test tells it.
    struct Says(bool);
    impl Prober for Says {
        fn probe(&self, engine: Engine, _: &Kernels) -> Verdict {
            Verdict::new(engine, self.0, "the test host says so")
        }
    }

    fn plan(profile: &str, works: bool, extra: &[(&str, &str)]) -> Plan {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = crate::plan::Answers::default();
        a.set("PROFILE", profile, "test").expect("profile");
        a.set(
            "INSTALLDIR",
            &dir.path().join("m").display().to_string(),
            "test",
        )
        .expect("dir");
        for (k, v) in extra {
            a.set(k, v, "test").expect("answer");
        }
        crate::plan::make_plan_with(&a, &Says(works)).expect("plan")
    }

    #[test]
    fn a_machine_that_cannot_start_here_is_not_told_to_boot() {
        let p = plan("bfin-uclinux", false, &[("NOFIRSTBOOT", "1")]);
        let lines = start_lines(&p).join("\n");
        assert!(!lines.contains("colinux-setup boot --prefix"), "{lines}");
        assert!(lines.contains("It cannot start on this host"), "{lines}");
        assert!(lines.contains("32-bit Windows 2000..7"), "{lines}");
        assert!(
            lines.contains("the coLinux kernel (vmlinux) and colinux-daemon"),
            "{lines}"
        );
        assert!(lines.contains("--kit DIR|URL"), "{lines}");
        let fb = first_boot_words(&p, FirstBoot::Skipped);
        assert!(!fb.contains("--prefix"), "{fb}");
    }

    #[test]
    fn a_machine_that_starts_here_is_told_how() {
        let p = plan("bfin-uclinux", true, &[("NOFIRSTBOOT", "1")]);
        let lines = start_lines(&p).join("\n");
        assert!(lines.contains("colinux-setup boot --prefix"), "{lines}");
        assert!(!lines.contains("cannot start"), "{lines}");
    }

    #[test]
    fn the_built_in_profiles_password_is_shown_with_where_it_is_written() {
        let p = plan("bfin-uclinux", false, &[("NOFIRSTBOOT", "1")]);
        assert_eq!(
            login_line(&p).as_deref(),
            Some(
                "log in as uclinux with the password bf533 from the Blackfin coLinux kit manual; change it with passwd"
            )
        );
        // The minimal profile has no password: nothing to tell.
        let p = plan("minimal", true, &[("NOFIRSTBOOT", "1")]);
        assert_eq!(login_line(&p), None);
    }

    #[test]
    fn a_profile_files_password_is_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("mine.toml");
        std::fs::write(
            &file,
            crate::profile::SHIPPED
                .iter()
                .find(|(n, _)| *n == "bfin-uclinux")
                .map(|(_, t)| *t)
                .expect("bfin-uclinux")
                .replace("bf533", "my-own-secret"),
        )
        .expect("write");
        let p = plan(&file.display().to_string(), false, &[("NOFIRSTBOOT", "1")]);
        assert_eq!(login_line(&p), None);
        assert!(!crate::plan::describe(&p).contains("my-own-secret"));
    }
}
