//! Cooperative Linux (`colinux-daemon @config.txt`).
//!
//! The daemon reads config.txt itself (`@FILE`, colinux-spec.md §1.2); daemon switches
//! cannot be put in the file (§1.3), so they come first on the command line: `-t nt`
//! (the text console in the daemon's own window or terminal, instead of the FLTK one)
//! when the console is interactive; `-k` (no kernel messages on the daemon's output)
//! otherwise. Extra kernel parameters follow `@FILE` as single arguments and reach the
//! kernel command line (§1.6). coLinux runs only on 32-bit Windows 2000..7 and on Linux
//! 2.6 hosts with its kernel module: anywhere else [`check_runnable`] says so.
//!
//! Exit codes of the daemon (§ exit codes): 0 success, 3 driver version mismatch, 14
//! driver not installed; [`exit_meaning`] words them.

use std::path::PathBuf;

use config_txt::Config;

use super::{BootOptions, Launch, MonitorError};

/// The command line.
pub fn command_line(config: &Config, opts: &BootOptions) -> Result<Launch, MonitorError> {
    if config.kernel.is_none() {
        return Err(MonitorError::Config(
            "no kernel= line: colinux-daemon reads nothing else without it".into(),
        ));
    }
    let program = opts
        .config_path
        .parent()
        .map(|d| {
            d.join(if cfg!(windows) {
                "colinux-daemon.exe"
            } else {
                "colinux-daemon"
            })
        })
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("colinux-daemon"));
    let mut args: Vec<String> = if opts.interactive {
        vec!["-t".into(), "nt".into()]
    } else {
        vec!["-k".into()]
    };
    args.push(format!("@{}", opts.config_path.display()));
    args.extend(opts.extra_params.iter().cloned());
    Ok(Launch {
        program,
        args,
        env: Vec::new(),
        mconsole: None,
        qemu_monitor: None,
    })
}

/// The host kernel release (Linux), e.g. `6.1.0-27-amd64`.
fn host_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Whether this host is one coLinux runs on (32-bit Windows 2000..7, or a Linux 2.6
/// host), or why not.
pub fn host_supports() -> Result<(), String> {
    let host_ok = if cfg!(windows) {
        cfg!(target_pointer_width = "32")
    } else {
        host_release().is_some_and(|r| r.starts_with("2.6."))
    };
    if host_ok {
        return Ok(());
    }
    let host = if cfg!(windows) {
        "this 64-bit Windows".to_owned()
    } else {
        format!(
            "this {} {} host",
            std::env::consts::OS,
            host_release().unwrap_or_default()
        )
    };
    Err(format!(
        "coLinux cannot run on {host}: colinux-daemon runs only on 32-bit Windows 2000..7 and Linux 2.6 hosts"
    ))
}

/// Whether coLinux can run here; the message says why not and what to use instead.
pub fn check_runnable(launch: &Launch) -> Result<(), MonitorError> {
    let installed = launch.program.is_file() || super::find_program("colinux-daemon").is_some();
    let host = host_supports();
    if host.is_ok() && installed {
        return Ok(());
    }
    let why = match host {
        Err(why) => why,
        Ok(()) => "colinux-daemon is not installed here".to_owned(),
    };
    Err(MonitorError::NotRunnable(format!(
        "{why}{}; boot this machine with --monitor uml (User-mode Linux) or --monitor qemu",
        if installed || host_supports().is_ok() {
            ""
        } else {
            ", and colinux-daemon is not installed here"
        }
    )))
}

/// What a colinux-daemon exit code means.
pub fn exit_meaning(code: i32) -> &'static str {
    match code {
        0 => "the guest stopped normally",
        3 => "the coLinux driver's version does not match this daemon: reinstall coLinux",
        14 => {
            "the coLinux driver is not installed: run `colinux-daemon --install-driver` as an administrator"
        }
        _ => "colinux-daemon failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_follow_the_spec_switches_then_at_file() {
        let c = config_txt::parse(
            b"kernel=vmlinux\ncobd0=root.img\nroot=/dev/cobd0\n",
            "config.txt",
        );
        let mut opts = BootOptions {
            interactive: true,
            ..BootOptions::sample()
        };
        let l = command_line(&c.config, &opts).expect("launch");
        assert_eq!(l.display(), "colinux-daemon -t nt @/nowhere/config.txt");
        opts.interactive = false;
        opts.extra_params = vec!["colinux.firstboot".into()];
        let l = command_line(&c.config, &opts).expect("launch");
        assert_eq!(
            l.display(),
            "colinux-daemon -k @/nowhere/config.txt colinux.firstboot"
        );
        assert!(exit_meaning(14).contains("not installed"));
        assert!(exit_meaning(3).contains("version"));
        assert!(exit_meaning(0).contains("normally"));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn on_a_modern_linux_host_colinux_is_not_runnable() {
        let c = config_txt::parse(b"kernel=vmlinux\nroot=/dev/cobd0\n", "config.txt");
        let opts = BootOptions {
            interactive: true,
            ..BootOptions::sample()
        };
        let l = command_line(&c.config, &opts).expect("launch");
        if !host_release().is_some_and(|r| r.starts_with("2.6.")) {
            let e = check_runnable(&l).expect_err("not runnable");
            assert!(e.to_string().contains("--monitor uml"), "{e}");
        }
    }
}
