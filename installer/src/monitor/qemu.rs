//! QEMU (`qemu-system-x86_64`), with the accelerator the monitor probe found
//! ([`super::probe`]: KVM where its guests run, else QEMU's own TCG emulation).
//!
//! config.txt to QEMU: `kernel=` → `-kernel` (a UML kernel cannot boot in QEMU: then
//! `bzImage` or `vmlinuz` beside config.txt, from a kit, is used), `initrd=` →
//! `-initrd`, `mem=` → `-m`, `root=` and the kernel parameters → `-append` (with
//! `console=ttyS0` and `panic=-1`, the serial console on standard input and output:
//! `-nographic`), `cobdN=FILE` → `-drive file=FILE,format=raw,if=virtio,index=N` (guest
//! `/dev/vda`, `/dev/vdb`, …; `format=vhdx` for a file named `.vhdx`, as `images build`
//! names its VHDX disks: the format comes from the name the installer wrote, never from
//! the file's first bytes, which the guest can write), `ethN=slirp,MAC,REDIRS` → `-netdev user` with one
//! `hostfwd=PROTO:ADDR:HOST-:GUEST` per redirected port (ADDR: 127.0.0.1 unless the
//! machine's `SLIRPHOST` answer says otherwise) and a virtio-net adapter with the MAC,
//! `ethN=tuntap,NAME,MAC` → `-netdev tap,ifname=NAME,script=no,downscript=no`, `cofsN=DIR`
//! → `-virtfs local,path=DIR,mount_tag=cofsN,security_model=none` (the fstab written for
//! QEMU mounts tag `cofsN` with 9p; a Windows folder such as `c:\` is left out, its fstab
//! entry is noauto). `-no-reboot`: a guest reboot ends the run.

use std::path::{Path, PathBuf};

use config_txt::{Config, Nic};

use super::{BootOptions, Launch, MonitorError};
use crate::profile::Monitor;

/// The least guest RAM a distribution kernel with its initramfs boots in (Debian's 6.1
/// cloud kernel stops silently while unpacking its initramfs at 64 MB); the plan refuses
/// less.
const MIN_MEM_MB: u32 = Monitor::Qemu.least_ram().0;

/// QEMU's program.
pub const PROGRAM: &str = "qemu-system-x86_64";

fn no_comma(what: &str, p: &str) -> Result<String, MonitorError> {
    if p.contains(',') {
        return Err(MonitorError::Config(format!(
            "{what}={p}: the QEMU engine does not take paths with a comma; move the file"
        )));
    }
    Ok(p.to_owned())
}

/// The kernel, and the initrd that goes with a kernel found beside config.txt.
pub fn kernel(
    config: &Config,
    config_path: &Path,
) -> Result<(String, Option<String>), MonitorError> {
    let k = config
        .kernel
        .clone()
        .ok_or_else(|| MonitorError::Config("no kernel= line".into()))?;
    let is_uml = Path::new(&k)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("uml"));
    if !is_uml && Path::new(&k).is_file() {
        return Ok((k, None));
    }
    // scripts/qemu-kernel puts a distribution kernel and the initrd with its drivers
    // (virtio) there; that initrd is the kernel's, not config.txt's first-boot initrd=.
    let dir = config_path.parent().unwrap_or(Path::new("."));
    for name in ["bzImage", "vmlinuz"] {
        if dir.join(name).is_file() {
            let initrd = dir.join("initrd.img");
            return Ok((
                dir.join(name).display().to_string(),
                initrd.is_file().then(|| initrd.display().to_string()),
            ));
        }
    }
    if !is_uml {
        // Named in config.txt; QEMU says what is wrong with it.
        return Ok((k, None));
    }
    Err(MonitorError::NotRunnable(format!(
        "kernel={k} is a User-mode Linux kernel, which QEMU cannot boot; put an x86-64 kernel \
         (bzImage or vmlinuz, with its initrd.img) beside {} (scripts/qemu-kernel {} does), \
         or boot with --monitor uml",
        config_path.display(),
        dir.display()
    )))
}

/// The command line.
pub fn command_line(config: &Config, opts: &BootOptions) -> Result<Launch, MonitorError> {
    let mut args: Vec<String> = vec![
        "-accel".into(),
        opts.accel.as_str().into(),
        "-m".into(),
        format!("{}", config.mem.unwrap_or(MIN_MEM_MB).max(MIN_MEM_MB)),
        "-nographic".into(),
        "-no-reboot".into(),
    ];
    let (kernel, kernel_initrd) = kernel(config, &opts.config_path)?;
    args.extend(["-kernel".into(), no_comma("kernel", &kernel)?]);
    if let Some(i) = config.initrd.as_ref().or(kernel_initrd.as_ref()) {
        args.extend(["-initrd".into(), no_comma("initrd", i)?]);
    }
    let mut append = config.boot_line();
    for p in ["console=ttyS0", "panic=-1"]
        .into_iter()
        .map(str::to_owned)
        .chain(opts.extra_params.iter().cloned())
    {
        if !append.is_empty() {
            append.push(' ');
        }
        append.push_str(&p);
    }
    args.extend(["-append".into(), append]);
    for (n, cobd) in &config.cobd {
        // Probing the format from the content would let a guest that writes a VHDX
        // header into its raw disk change how the host opens the file.
        let format = image_builder::DiskFormat::from_path(Path::new(&cobd.path)).name();
        args.extend([
            "-drive".into(),
            format!(
                "file={},format={format},if=virtio,index={n}",
                no_comma(&format!("cobd{n}"), &cobd.path)?
            ),
        ]);
    }
    let next = config
        .cobd
        .keys()
        .next_back()
        .map_or(0, |n| u32::from(*n) + 1);
    for (i, d) in opts.extra_drives.iter().enumerate() {
        args.extend([
            "-drive".into(),
            format!(
                "file={},format=raw,if=virtio,index={},readonly=on",
                no_comma("a read-only drive", &d.display().to_string())?,
                next + i as u32
            ),
        ]);
    }
    for (n, nic) in &config.eth {
        let netdev = match nic {
            Nic::Slirp { redirs, .. } => {
                let mut s = format!("user,id=net{n}");
                // QEMU writes an IPv6 listen address in brackets.
                let host = match opts.forward_host {
                    std::net::IpAddr::V4(a) => a.to_string(),
                    std::net::IpAddr::V6(a) => format!("[{a}]"),
                };
                let parsed = config_txt::slirp::parse_redirections(redirs)
                    .map_err(|e| MonitorError::Config(format!("eth{n} redirections: {e}")))?;
                for r in &parsed.list {
                    for i in 0..r.count.max(1) {
                        s.push_str(&format!(
                            ",hostfwd={}:{}:{}-:{}",
                            r.protocol.as_str(),
                            host,
                            r.host_port.saturating_add(i),
                            r.guest_port.saturating_add(i)
                        ));
                    }
                }
                s
            }
            Nic::Tuntap { name, .. } => format!(
                "tap,id=net{n},ifname={},script=no,downscript=no",
                no_comma(&format!("eth{n}"), name)?
            ),
            Nic::PcapBridge { .. } | Nic::NdisBridge { .. } => continue,
        };
        let mut device = format!("virtio-net-pci,netdev=net{n}");
        if let Some(m) = nic.mac() {
            device.push_str(&format!(",mac={m}"));
        }
        args.extend(["-netdev".into(), netdev, "-device".into(), device]);
    }
    // A Windows folder (`c:\`) does not exist on this host, and the fstab written for
    // QEMU mounts it noauto (guest.rs): QEMU would refuse to start with it, so it is left
    // out, as User-mode Linux needs nothing for it either.
    let shares = config
        .cofs
        .iter()
        .filter(|(_, p)| !(p.contains('\\') || p.as_bytes().get(1) == Some(&b':')))
        .map(|(n, p)| (format!("cofs{n}"), PathBuf::from(p), false))
        .chain(
            opts.extra_shares
                .iter()
                .map(|(t, p)| (t.clone(), p.clone(), true)),
        );
    for (tag, path, ro) in shares {
        args.extend([
            "-virtfs".into(),
            format!(
                "local,path={},mount_tag={tag},security_model=none{}",
                no_comma(&tag, &path.display().to_string())?,
                if ro { ",readonly=on" } else { "" }
            ),
        ]);
    }
    Ok(Launch {
        program: PathBuf::from(PROGRAM),
        args,
        env: Vec::new(),
        mconsole: None,
        qemu_monitor: None,
    })
}

/// Presses ctrl-alt-del on the guest's keyboard through QEMU's human monitor socket
/// (`sendkey ctrl-alt-delete`): the guest kernel passes it to init, which the busybox
/// root's inittab turns into a poweroff. An ACPI `system_powerdown` would need a daemon
/// in the guest (acpid), which a busybox root does not run. `true` when QEMU took it.
#[cfg(unix)]
pub fn ctrl_alt_del(socket: &Path) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
    let Ok(mut w) = s.try_clone() else {
        return false;
    };
    // Reads until `want` came after what was read so far, for at most 3 s.
    let mut wait_for = |want: &[u8]| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while std::time::Instant::now() < until {
            match s.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => seen.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(_) => {}
            }
            if seen.windows(want.len()).any(|w| w == want) {
                return true;
            }
        }
        false
    };
    // QEMU greets with its banner and prompt; the command is taken after it, and it has
    // run when the next prompt comes (closing the socket sooner can drop the command,
    // measured with QEMU 7.2: its line editor takes the input a byte at a time).
    if !wait_for(b"(qemu) ") {
        return false;
    }
    if w.write_all(b"sendkey ctrl-alt-delete\n").is_err() {
        return false;
    }
    wait_for(b"\n(qemu) ")
}

/// No monitor socket off Unix.
#[cfg(not(unix))]
pub fn ctrl_alt_del(_socket: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "kernel=/m/bzImage\ninitrd=/m/initrd.gz\nmem=128\ncobd0=/m/root.img\ncobd1=/m/home.img\n\
        cobd2=/m/swap.img\neth0=slirp,02:00:00:00:00:01,tcp:2222:22/udp:69:69\neth1=tuntap,tap0,02:00:00:00:00:02\n\
        cofs0=/srv/share\nroot=/dev/vda ro\n";

    #[test]
    fn sample_config_gives_the_exact_qemu_command_line() {
        let parsed = config_txt::parse(SAMPLE.as_bytes(), "config.txt");
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let opts = BootOptions {
            interactive: false,
            extra_params: vec!["colinux.firstboot".into()],
            run_dir: PathBuf::from("/run/m"),
            id: "m1".into(),
            config_path: PathBuf::from("/m/config.txt"),
            accel: super::super::probe::Accel::Tcg,
            forward_host: crate::plan::SLIRP_HOST_DEFAULT,
            extra_shares: vec![("colinuxdist".into(), PathBuf::from("/tmp/dist"))],
            extra_drives: vec![PathBuf::from("/tmp/dist.img")],
        };
        let l = command_line(&parsed.config, &opts).expect("launch");
        assert_eq!(
            l.display(),
            "qemu-system-x86_64 -accel tcg -m 128 -nographic -no-reboot -kernel /m/bzImage -initrd /m/initrd.gz \
             -append 'root=/dev/vda ro console=ttyS0 panic=-1 colinux.firstboot' \
             -drive file=/m/root.img,format=raw,if=virtio,index=0 -drive file=/m/home.img,format=raw,if=virtio,index=1 \
             -drive file=/m/swap.img,format=raw,if=virtio,index=2 -drive file=/tmp/dist.img,format=raw,if=virtio,index=3,readonly=on \
             -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:69-:69 -device virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01 \
             -netdev tap,id=net1,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=net1,mac=02:00:00:00:00:02 \
             -virtfs local,path=/srv/share,mount_tag=cofs0,security_model=none \
             -virtfs local,path=/tmp/dist,mount_tag=colinuxdist,security_model=none,readonly=on"
        );
        let kvm = command_line(
            &parsed.config,
            &BootOptions {
                accel: super::super::probe::Accel::Kvm,
                ..opts
            },
        )
        .expect("kvm");
        assert_eq!(kvm.args.get(1).map(String::as_str), Some("kvm"));
    }

    #[test]
    fn a_disk_named_vhdx_is_opened_as_vhdx_and_every_other_as_raw() {
        let c = "kernel=/m/bzImage\ncobd0=/m/root.vhdx\ncobd1=/m/home.VHDX\n\
                 cobd2=/m/swap.img\nroot=/dev/vda\n";
        let parsed = config_txt::parse(c.as_bytes(), "config.txt");
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let l = super::super::command_line(Monitor::Qemu, &parsed.config, &BootOptions::sample())
            .expect("launch");
        let drives: Vec<&str> = l
            .args
            .iter()
            .filter(|a| a.starts_with("file="))
            .map(String::as_str)
            .collect();
        assert_eq!(
            drives,
            [
                "file=/m/root.vhdx,format=vhdx,if=virtio,index=0",
                "file=/m/home.VHDX,format=vhdx,if=virtio,index=1",
                "file=/m/swap.img,format=raw,if=virtio,index=2",
            ]
        );
    }

    #[test]
    fn a_windows_folder_share_is_left_out() {
        let c =
            "kernel=/m/bzImage\ncobd0=/m/root.img\ncofs0=c:\\\ncofs1=/srv/share\nroot=/dev/vda\n";
        let parsed = config_txt::parse(c.as_bytes(), "config.txt");
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let l = command_line(&parsed.config, &BootOptions::sample()).expect("launch");
        let shown = l.display();
        assert!(
            shown.contains("-virtfs local,path=/srv/share,mount_tag=cofs1"),
            "{shown}"
        );
        assert!(!shown.contains("cofs0"), "{shown}");
    }

    #[test]
    fn a_uml_kernel_is_not_booted_by_qemu() {
        let c = "kernel=/usr/bin/linux.uml\ncobd0=/nowhere/root.img\nroot=/dev/vda\n";
        let parsed = config_txt::parse(c.as_bytes(), "config.txt");
        let opts = BootOptions::sample();
        let e = command_line(&parsed.config, &opts);
        assert!(matches!(e, Err(MonitorError::NotRunnable(_))), "{e:?}");
    }
}
