//! User-mode Linux (`linux.uml`, Debian package `user-mode-linux`).
//!
//! config.txt to UML: `cobdN=FILE` → `ubdN=FILE` (guest `/dev/ubda`, `/dev/ubdb`, …),
//! `mem=N` → `mem=NM` (at least 128 MB: measured here, Debian 12's 6.1 UML kernel
//! deadlocks on memory at 32 MB, and at 64 MB it once failed to open its root device
//! with ENOMEM on a loaded host; the memory is a sparse host file, so a larger floor
//! costs only what the guest touches), `initrd=` → `initrd=`, `root=` and the other kernel
//! parameters as they are, `ethN=slirp,MAC` → `ethN=slirp,MAC,slirp` (UML runs the host's
//! `slirp` program; UML's slirp transport has no port redirections, so they are not
//! applied), `ethN=tuntap,NAME,MAC` → `ethN=tuntap,NAME,MAC`. `cofsN` shares need nothing
//! on the command line: the guest mounts host folders with hostfs (the fstab written for
//! UML says `none MOUNT hostfs OPTIONS,HOSTPATH`). pcap-bridge and ndis-bridge adapters
//! are Windows-only and are left out.
//!
//! The program is config.txt's `kernel=` when that is a UML kernel (its name holds
//! `uml`), else `linux.uml` beside config.txt (a kit), else `linux.uml` on PATH. The
//! console is `con0=fd:0,fd:1` on a terminal and `con0=null,fd:1` without input; other
//! consoles are off (`con=null`). UML's memory file and `uml_dir` live in a private run
//! folder (`TMPDIR`).

use std::path::{Path, PathBuf};

use config_txt::{Config, Nic};

use super::{BootOptions, Launch, MonitorError};
use crate::profile::Monitor;

/// The least guest memory UML is started with, in MB (the plan refuses less).
pub const MIN_MEM_MB: u32 = Monitor::Uml.least_ram().0;

/// UML splits its arguments on `,` and `=`: refuse values it would misread.
fn arg_path(what: &str, p: &str) -> Result<String, MonitorError> {
    if p.contains([',', '=', ' ']) || p.is_empty() {
        return Err(MonitorError::Config(format!(
            "{what}={p}: User-mode Linux cannot take a path with a comma, `=` or a space; move the file"
        )));
    }
    Ok(p.to_owned())
}

/// The UML program for `config`.
pub fn program(config: &Config, config_path: &Path) -> PathBuf {
    if let Some(k) = &config.kernel
        && Path::new(k)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("uml"))
    {
        return PathBuf::from(k);
    }
    if let Some(dir) = config_path.parent() {
        let kit = dir.join("linux.uml");
        if kit.is_file() {
            return kit;
        }
    }
    super::find_program("linux.uml").unwrap_or_else(|| PathBuf::from("linux.uml"))
}

/// The command line.
pub fn command_line(config: &Config, opts: &BootOptions) -> Result<Launch, MonitorError> {
    let mut args = Vec::new();
    let mem = config.mem.unwrap_or(MIN_MEM_MB).max(MIN_MEM_MB);
    args.push(format!("mem={mem}M"));
    for (n, cobd) in &config.cobd {
        args.push(format!(
            "ubd{n}={}",
            arg_path(&format!("cobd{n}"), &cobd.path)?
        ));
    }
    if let Some(i) = &config.initrd {
        args.push(format!("initrd={}", arg_path("initrd", i)?));
    }
    if config.root.is_none() {
        return Err(MonitorError::Config(
            "no root= line: the guest would not know its root device; add root=/dev/ubda".into(),
        ));
    }
    args.extend(config.boot_line().split_whitespace().map(str::to_owned));
    for (n, nic) in &config.eth {
        let mac = nic
            .mac()
            .map(|m| format!(",{m}"))
            .unwrap_or_else(|| ",".into());
        match nic {
            Nic::Slirp { .. } => args.push(format!("eth{n}=slirp{mac},slirp")),
            Nic::Tuntap { name, .. } => args.push(format!("eth{n}=tuntap,{name}{mac}")),
            Nic::PcapBridge { .. } | Nic::NdisBridge { .. } => {}
        }
    }
    args.push("con=null".into());
    args.push(if opts.interactive {
        "con0=fd:0,fd:1".into()
    } else {
        "con0=null,fd:1".into()
    });
    let run = opts.run_dir.display().to_string();
    args.push(format!("uml_dir={}", arg_path("uml_dir", &run)?));
    args.push(format!("umid={}", arg_path("umid", &opts.id)?));
    args.extend(opts.extra_params.iter().cloned());
    Ok(Launch {
        program: program(config, &opts.config_path),
        args,
        env: vec![("TMPDIR".into(), opts.run_dir.clone())],
        mconsole: Some(opts.run_dir.join(&opts.id).join("mconsole")),
        qemu_monitor: None,
    })
}

/// Sends `cad` (ctrl-alt-del) to UML's management console; the guest's init decides
/// what it does (the busybox root powers off). `true` when the request was sent.
#[cfg(unix)]
pub fn ctrl_alt_del(socket: &Path) -> bool {
    // struct mconsole_request { u32 magic; u32 version; u32 len; char data[512]; }
    const MAGIC: u32 = 0xcafe_babe;
    let mut req = Vec::with_capacity(524);
    req.extend_from_slice(&MAGIC.to_ne_bytes());
    req.extend_from_slice(&2u32.to_ne_bytes());
    req.extend_from_slice(&3u32.to_ne_bytes());
    let mut data = [0u8; 512];
    data[..3].copy_from_slice(b"cad");
    req.extend_from_slice(&data);
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return false;
    };
    sock.send_to(&req, socket).is_ok()
}

/// No management console off Unix.
#[cfg(not(unix))]
pub fn ctrl_alt_del(_socket: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "kernel=/usr/bin/linux.uml\nmem=32\ncobd0=/m/root.img\ncobd1=/m/home.img\ncobd2=/m/swap.img\n\
        eth0=slirp,02:00:00:00:00:01,tcp:2222:22\neth1=tuntap,tap0,02:00:00:00:00:02\ncofs0=/srv/share\n\
        root=/dev/ubda ro quiet\n";

    fn opts(interactive: bool) -> BootOptions {
        BootOptions {
            interactive,
            extra_params: vec!["colinux.firstboot".into()],
            run_dir: PathBuf::from("/run/m"),
            id: "m1".into(),
            config_path: PathBuf::from("/m/config.txt"),
            accel: super::super::probe::Accel::Tcg,
            forward_host: crate::plan::SLIRP_HOST_DEFAULT,
            extra_shares: vec![],
            extra_drives: vec![],
        }
    }

    #[test]
    fn sample_config_gives_the_exact_uml_command_line() {
        let parsed = config_txt::parse(SAMPLE.as_bytes(), "config.txt");
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let l = command_line(&parsed.config, &opts(false)).expect("launch");
        assert_eq!(
            l.display(),
            "TMPDIR=/run/m /usr/bin/linux.uml mem=128M ubd0=/m/root.img ubd1=/m/home.img ubd2=/m/swap.img \
             root=/dev/ubda ro quiet eth0=slirp,02:00:00:00:00:01,slirp eth1=tuntap,tap0,02:00:00:00:00:02 \
             con=null con0=null,fd:1 uml_dir=/run/m umid=m1 colinux.firstboot"
        );
        assert_eq!(l.mconsole, Some(PathBuf::from("/run/m/m1/mconsole")));
        let l = command_line(&parsed.config, &opts(true)).expect("launch");
        assert!(l.args.contains(&"con0=fd:0,fd:1".to_owned()));
    }

    #[test]
    fn paths_uml_would_misread_and_a_missing_root_are_refused() {
        let bad = "kernel=/usr/bin/linux.uml\ncobd0=\"/m/a,b.img\"\nroot=/dev/ubda\n";
        let parsed = config_txt::parse(bad.as_bytes(), "config.txt");
        let e = command_line(&parsed.config, &opts(false));
        assert!(matches!(e, Err(MonitorError::Config(_))), "{e:?}");
        let noroot = "kernel=/usr/bin/linux.uml\ncobd0=/m/a.img\n";
        let parsed = config_txt::parse(noroot.as_bytes(), "config.txt");
        assert!(command_line(&parsed.config, &opts(false)).is_err());
    }
}
