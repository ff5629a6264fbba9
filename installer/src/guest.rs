//! What goes inside the guest's images: `/etc/fstab`, hostname, users (passwd, group,
//! shadow with SHA-512 crypt hashes), and for the busybox root its `inittab` and
//! `rcS`; plus the staging folders the image builder reads.
//!
//! The files are written to a private staging folder and handed to the image builder
//! as [`Source::File`] entries, so they are part of the image as it is built; nothing is
//! patched afterwards. The busybox root tree is assembled in the same staging folder:
//! the host's static busybox, its applet links, and the directories a Linux root needs.
//!
//! ## Limitations
//!
//! - The image builder takes owners from the host (or one owner for the whole image),
//!   so the users' home folders in `home.img` are owned by root in the image; the
//!   busybox root's `rcS` gives each user its folder at boot. A kit root without our
//!   `rcS` must do that itself.
//! - No device nodes are made (that needs root rights on the host): the guest kernel
//!   mounts devtmpfs on /dev (CONFIG_DEVTMPFS_MOUNT, set in Debian's UML kernel).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use image_builder::Source;

use crate::elf::Elf;
use crate::plan::{ImagePlan, Plan, SourcePlan};
use crate::profile::Monitor;

/// The guest's `/etc/fstab`: devices follow the monitor.
pub fn fstab(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# /etc/fstab, written by colinux-setup for the {} monitor (profile {}).",
        plan.monitor.as_str(),
        plan.profile
    );
    let _ = writeln!(
        s,
        "# <file system> <mount point> <type> <options> <dump> <pass>"
    );
    if plan.monitor == Monitor::Wsl {
        // WSL mounts the root, /proc, /sys and /dev itself and attaches no other disk
        // of the machine (see crate::wsl): only the shares are fstab's, as drvfs.
        let _ = writeln!(
            s,
            "# WSL mounts / (root.vhdx), /proc, /sys and /dev itself; the shares are Windows folders (drvfs)."
        );
        for sh in &plan.shares {
            let _ = writeln!(
                s,
                "{} {} drvfs {} 0 0",
                sh.host.replace('\\', "/").replace(' ', "\\040"),
                sh.mount,
                sh.options
            );
        }
        return s;
    }
    for i in plan.images.iter().filter(|i| i.mount == "/") {
        let _ = writeln!(s, "{} / {} defaults 0 1", i.device, i.fstab_type);
    }
    let _ = writeln!(s, "proc /proc proc defaults 0 0");
    let _ = writeln!(s, "sysfs /sys sysfs defaults 0 0");
    let _ = writeln!(s, "tmpfs /dev/shm tmpfs defaults 0 0");
    let _ = writeln!(s, "{} swap swap defaults 0 0", plan.swap.device);
    for i in plan.images.iter().filter(|i| i.mount != "/") {
        let _ = writeln!(s, "{} {} {} defaults 0 2", i.device, i.mount, i.fstab_type);
    }
    for sh in &plan.shares {
        // A Windows folder (`c:\`) does not exist on the Linux host of UML (nor for QEMU's
        // virtfs, which has no Windows host support): the entry is kept, but noauto.
        let windows_path = sh.host.contains('\\') || sh.host.as_bytes().get(1) == Some(&b':');
        let noauto = plan.monitor != Monitor::Colinux
            && windows_path
            && !sh.options.split(',').any(|o| o == "noauto");
        let options = if noauto {
            let _ = writeln!(
                s,
                "# {} is a Windows folder, which this monitor's host does not have: noauto",
                sh.host
            );
            format!("{},noauto", sh.options)
        } else {
            sh.options.clone()
        };
        let sh = &crate::plan::SharePlan {
            options,
            ..sh.clone()
        };
        let line = match plan.monitor {
            Monitor::Colinux => format!("cofs{} {} cofs {} 0 0", sh.cofs, sh.mount, sh.options),
            // UML shares host folders with hostfs: the option data is the host path.
            Monitor::Uml => format!("none {} hostfs {},{} 0 0", sh.mount, sh.options, sh.host),
            // QEMU shares them with virtio-9p; the mount tag is cofsN.
            Monitor::Qemu => format!(
                "cofs{} {} 9p {},trans=virtio,version=9p2000.L 0 0",
                sh.cofs, sh.mount, sh.options
            ),
            // Written above (drvfs); fstab() returns before this loop for WSL.
            Monitor::Wsl => continue,
        };
        let _ = writeln!(s, "{line}");
    }
    s
}

fn passwd(plan: &Plan) -> String {
    plan.users.iter().fold(String::new(), |mut s, u| {
        let _ = writeln!(
            s,
            "{}:x:{}:{}:{}:{}:{}",
            u.name, u.uid, u.gid, u.name, u.home, u.shell
        );
        s
    })
}

fn group(plan: &Plan) -> String {
    let mut seen = Vec::new();
    plan.users.iter().fold(String::new(), |mut s, u| {
        if !seen.contains(&u.gid) {
            seen.push(u.gid);
            let _ = writeln!(s, "{}:x:{}:", u.name, u.gid);
        }
        s
    })
}

fn shadow(plan: &Plan) -> String {
    let days = plan.source_date_epoch.max(0) / 86_400;
    plan.users.iter().fold(String::new(), |mut s, u| {
        let _ = writeln!(s, "{}:{}:{days}:0:99999:7:::", u.name, u.hash);
        s
    })
}

fn inittab() -> &'static str {
    "# /etc/inittab (busybox init), written by colinux-setup.\n\
     ::sysinit:/etc/init.d/rcS\n\
     ::respawn:-/bin/sh\n\
     ::ctrlaltdel:/sbin/poweroff\n\
     ::shutdown:/sbin/swapoff -a\n\
     ::shutdown:/bin/umount -a -r\n"
}

fn rcs(plan: &Plan) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # /etc/init.d/rcS, written by colinux-setup: mounts what /etc/fstab lists, turns swap on,\n\
         # names the host and gives each user its home folder.\n\
         # busybox init's PATH lacks /usr/local (a kit root's own programs, e.g. qemu-arm-static).\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         mount -t proc proc /proc 2>/dev/null\n\
         mount -o remount,rw /\n\
         mkdir -p /dev/pts /dev/shm\n\
         mount -a\n\
         swapon -a\n\
         hostname -F /etc/hostname\n\
         ifconfig lo 127.0.0.1 up 2>/dev/null\n",
    );
    if plan.slirp.is_some() {
        // eth0 is slirp (user networking: coLinux's, QEMU's, and UML's through the host's
        // slirp program): the guest is 10.0.2.15, the host's NAT 10.0.2.2 and its DNS
        // 10.0.2.3 (/etc/resolv.conf).
        s.push_str(
            "if ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up 2>/dev/null; then route add default gw 10.0.2.2 2>/dev/null\n\
             else echo 'colinux-setup: eth0 (slirp) could not be brought up: the guest has no network (User-mode Linux needs the host'\\''s slirp program: apt-get install slirp)'; fi\n",
        );
    }
    if let Some(t) = &plan.tap {
        // The guest's side of the TAP adapter (the host has .1 of the same /24).
        let _ = writeln!(
            s,
            "ifconfig eth{} {} netmask 255.255.255.0 up || echo {}",
            t.eth,
            t.guest_ip,
            sh_quote(&format!(
                "colinux-setup: eth{} (TAP {}) could not be configured",
                t.eth, t.name
            ))
        );
    }
    for u in plan.users.iter().filter(|u| u.uid != 0) {
        let _ = writeln!(
            s,
            "mkdir -p {h} && chown {uid}:{gid} {h}",
            h = sh_quote(&u.home),
            uid = u.uid,
            gid = u.gid
        );
    }
    // A root with an ssh server (a kit's) gets host keys of its own, made once: at the
    // first boot, so that no two machines of a kit share them.
    s.push_str(
        "if [ -x /usr/sbin/sshd ]; then ssh-keygen -A >/dev/null 2>&1 || echo 'colinux-setup: ssh-keygen -A failed: the ssh server has no host keys'; fi\n",
    );
    s.push_str(
        "# The first boot (colinux-setup install) adds colinux.firstboot to the kernel command line.\n\
         case \" $(cat /proc/cmdline) \" in\n\
         *\" colinux.firstboot \"*)\n\
           if sh /etc/init.d/firstboot; then echo 'COLINUX-SETUP-FIRST-BOOT: OK'; else echo \"COLINUX-SETUP-FIRST-BOOT: FAILED rc=$?\"; fi\n\
           sync; swapoff -a; umount -a -r 2>/dev/null; sync; poweroff -f ;;\n\
         esac\n",
    );
    s.push_str(
        "if [ -x /usr/sbin/sshd ]; then mkdir -p /run/sshd && /usr/sbin/sshd || echo 'colinux-setup: the ssh server did not start'; fi\n",
    );
    s.push_str(
        "echo \"colinux-setup: guest $(hostname) is up\"\n\
         # A boot check (colinux-setup boot, tests) adds colinux.poweroff to the kernel command line.\n\
         case \" $(cat /proc/cmdline) \" in\n\
         *\" colinux.poweroff \"*) echo 'colinux-setup: mounts:'; cat /proc/mounts; cat /proc/swaps;\n   swapoff -a; umount -a -r 2>/dev/null; mount -o remount,ro /; sync; poweroff -f ;;\n\
         esac\n",
    );
    s
}

/// `text` as one word of a shell script, whatever it holds: in single quotes, each `'`
/// written as `'\''`. Names from a profile or an answer (a home folder, a TAP adapter's
/// name) reach rcS this way, so none can end the quote and run as a command.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Printed by rcS when the first-boot script exited 0.
pub const FIRST_BOOT_OK: &str = "COLINUX-SETUP-FIRST-BOOT: OK";
/// Printed by rcS when the first-boot script failed, followed by ` rc=N`.
pub const FIRST_BOOT_FAILED: &str = "COLINUX-SETUP-FIRST-BOOT: FAILED";

/// `/etc/init.d/firstboot`: run by rcS (after `mount -a` and `swapon -a`) when the
/// kernel command line holds `colinux.firstboot`. It checks that every fstab entry that
/// is not `noauto` is mounted and every swap is on (printing each), then copies the
/// distribution from the host share named by `colinux.dist=hostfs:DIR` (UML),
/// `colinux.dist=disk:DEV` (QEMU: a read-only image of the share), `9p:TAG` or `dir:DIR`
/// (WSL: the install drive's automount; the words then come in `COLINUX_FIRSTBOOT_ARGS`) into
/// `colinux.target=DIR` and checks it against the
/// share's SHA256SUMS; then, when the share holds `modules.tar`, unpacks the kernel
/// modules into /lib/modules and checks them against MODULES.SHA256SUMS.
/// `colinux.firstboot.test=fail|hang` is a test-only hook.
const FIRST_BOOT: &str = r#"#!/bin/sh
# /etc/init.d/firstboot, written by colinux-setup: the first boot's script (see rcS).
set -e
say() { echo "colinux-setup: first boot: $*"; }
# Under WSL the first boot is a command, not a kernel: its words come in COLINUX_FIRSTBOOT_ARGS.
arg() { for w in ${COLINUX_FIRSTBOOT_ARGS:-$(cat /proc/cmdline)}; do case "$w" in "$1"=*) echo "${w#*=}"; return 0;; esac; done; }
while read -r dev mnt type opts rest; do
  case "$dev" in ''|'#'*) continue;; esac
  case ",$opts," in *,noauto,*) continue;; esac
  if [ "$type" = swap ]; then
    grep -q "^$dev " /proc/swaps || { say "swap $dev is not on"; exit 1; }
    say "swap on: $dev"
    continue
  fi
  grep -q " $mnt " /proc/mounts || { say "$mnt ($dev) is not mounted"; exit 1; }
  say "mounted: $dev on $mnt ($type)"
done < /etc/fstab
case "$(arg colinux.firstboot.test)" in
  fail) say "test hook: failing on purpose"; exit 1 ;;
  hang) say "test hook: hanging on purpose"; while :; do sleep 1; done ;;
esac
dist=$(arg colinux.dist)
target=$(arg colinux.target)
if [ -n "$dist" ] && [ -n "$target" ]; then
  mkdir -p /mnt/dist "$target"
  case "$dist" in
    hostfs:*) mount -t hostfs -o "ro,${dist#hostfs:}" none /mnt/dist ;;
    9p:*) mount -t 9p -o ro,trans=virtio,version=9p2000.L "${dist#9p:}" /mnt/dist ;;
    disk:*) mount -o ro "${dist#disk:}" /mnt/dist ;;
    # WSL: a folder already there (its automount of the install drive).
    dir:*) mount --bind "${dist#dir:}" /mnt/dist ;;
    *) say "unknown distribution share $dist"; exit 1 ;;
  esac
  say "unpacking the distribution into $target"
  # Every 50 entries a line the host turns into bytes done (it knows the archive's order).
  # tar's status through a file: the shell may be dash, which has no pipefail.
  { tar -xvf /mnt/dist/dist.tar -C "$target"; echo $? > /tmp/colinux-setup-tar.rc; } | awk '{ if (NR % 50 == 0) { print "colinux-setup: first boot: unpacked " NR " entries"; fflush() } } END { print "colinux-setup: first boot: unpacked " NR " entries" }'
  [ "$(cat /tmp/colinux-setup-tar.rc)" = 0 ] || { say "tar could not unpack the distribution into $target"; exit 1; }
  n=$(wc -l < /mnt/dist/SHA256SUMS)
  # sha256sum -c as busybox and GNU coreutils both read it; only the lines that failed are shown.
  check() { (cd "$1" && sha256sum -c "$2") > /tmp/colinux-setup-sums 2>&1 || { grep -v ': OK$' /tmp/colinux-setup-sums | head -5; return 1; }; }
  check "$target" /mnt/dist/SHA256SUMS || { say "the files in $target do not match the distribution"; exit 1; }
  if [ -f /mnt/dist/modules.tar ]; then
    say "installing the kernel modules into /lib/modules"
    tar -xf /mnt/dist/modules.tar -C /
    check / /mnt/dist/MODULES.SHA256SUMS || { say "the kernel modules in /lib/modules do not match the kit's"; exit 1; }
    say "kernel modules installed: $(ls /lib/modules) ($(wc -l < /mnt/dist/MODULES.SHA256SUMS) files)"
  fi
  umount /mnt/dist
  say "unpacked and checked $n files in $target"
fi
# The profile's own steps (first_boot.run), when it has any: written by colinux-setup.
if [ -f /etc/init.d/firstboot-run ]; then
  sh /etc/init.d/firstboot-run
fi
sync
"#;

/// `/etc/init.d/firstboot-run`, run by the first-boot script after the distribution is
/// unpacked, when the profile's first boot has `run` commands or unpacks into a user's
/// home: the target is given to its user, then each command runs there as that user
/// (`su`), its output on the console, and the first that fails ends the first boot
/// with its status. `None` when there is nothing to do.
fn first_boot_run(plan: &Plan) -> Option<String> {
    let fb = &plan.first_boot;
    if fb.run.is_empty() && fb.run_as.is_none() {
        return None;
    }
    let target = fb.target.as_deref().unwrap_or("/");
    let mut s = String::from(
        "#!/bin/sh\n\
         # /etc/init.d/firstboot-run, written by colinux-setup: the profile's first-boot steps.\n\
         say() { echo \"colinux-setup: first boot: $*\"; }\n",
    );
    let user = fb
        .run_as
        .as_ref()
        .and_then(|n| plan.users.iter().find(|u| &u.name == n));
    if let Some(u) = user {
        let _ = writeln!(
            s,
            "chown -R {}:{} {} || {{ say {}; exit 1; }}",
            u.uid,
            u.gid,
            sh_quote(target),
            sh_quote(&format!("could not give {target} to {}", u.name))
        );
    }
    for c in &fb.run {
        let inner = format!("cd {} && {c}", sh_quote(target));
        let run = match user {
            Some(u) => format!(
                "su -s /bin/sh {} -c {} 2>&1",
                sh_quote(&u.name),
                sh_quote(&inner)
            ),
            None => format!("sh -c {} 2>&1", sh_quote(&inner)),
        };
        let _ = writeln!(
            s,
            "say {}\n{run}\nrc=$?\nif [ $rc != 0 ]; then say {}\"$rc\"; exit $rc; fi",
            sh_quote(&format!(
                "running `{c}` in {target} as {}",
                user.map_or("root", |u| u.name.as_str())
            )),
            sh_quote(&format!("`{c}` failed with exit status ")),
        );
    }
    s.push_str("say \"the profile's steps succeeded\"\n");
    Some(s)
}

/// A staging folder with the trees and files one image is built from.
pub struct Staged {
    /// The image builder's sources, in order.
    pub sources: Vec<Source>,
    _dir: tempfile::TempDir,
}

/// Prepares the sources of `img`.
pub fn stage(plan: &Plan, img: &ImagePlan) -> Result<Staged> {
    let dir = tempfile::Builder::new()
        .prefix("colinux-setup-stage-")
        .tempdir()
        .context("creating a staging folder in the temporary folder")?;
    let mut sources = Vec::new();
    let tree = dir.path().join("tree");
    mkdir(&tree, 0o755)?;
    match &img.source {
        SourcePlan::Empty => {
            // The users' home folders that live on this image.
            for u in &plan.users {
                if let Some(rest) = Path::new(&u.home)
                    .strip_prefix(&img.mount)
                    .ok()
                    .filter(|_| img.mount != "/")
                    && !rest.as_os_str().is_empty()
                {
                    mkdir_all(&tree.join(rest))?;
                }
            }
            sources.push(Source::Dir(tree));
        }
        SourcePlan::KitRootfs { dir: kit } => {
            sources.push(Source::Dir(kit.clone()));
            let etc = dir.path().join("etc");
            mkdir(&etc, 0o755)?;
            let kit_file = |name: &str| fs::read_to_string(kit.join("etc").join(name)).ok();
            sources.extend(etc_files(plan, &etc, &kit_file, false)?);
        }
        SourcePlan::KitArchive { file, .. } => {
            // Streamed into the image as it is; our files go over it. Its init is
            // busybox's (profile::ImageSource::Kit), which runs our inittab and rcS.
            sources.push(Source::Tar(image_builder::TarInput::File(file.clone())));
            let etc = dir.path().join("etc");
            mkdir(&etc, 0o755)?;
            let content = crate::plan::archive_content(file)?;
            let kit_file = |name: &str| {
                content
                    .kept
                    .iter()
                    .find(|(k, _)| k.strip_prefix("etc/") == Some(name))
                    .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            };
            sources.extend(etc_files(plan, &etc, &kit_file, true)?);
        }
        SourcePlan::Busybox { busybox } => {
            busybox_tree(&tree, busybox)?;
            sources.push(Source::Dir(tree));
            let etc = dir.path().join("etc");
            mkdir(&etc, 0o755)?;
            sources.extend(etc_files(plan, &etc, &|_: &str| None, true)?);
        }
    }
    // Folders carry no Unix modes here: the staged tree goes to the builder as a tar
    // stream with the modes recorded while staging.
    #[cfg(windows)]
    let sources = crate::host::windows::staged_as_tar(sources, dir.path())?;
    Ok(Staged { sources, _dir: dir })
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    set_mode(p, mode)
}

fn mkdir_all(p: &Path) -> Result<()> {
    fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    set_mode(p, 0o755)
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", p.display()))
}

#[cfg(not(unix))]
fn set_mode(p: &Path, mode: u32) -> Result<()> {
    crate::host::record_mode(p, mode);
    Ok(())
}

fn write(path: &Path, text: &str, mode: u32) -> Result<PathBuf> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, mode)?;
    Ok(path.to_owned())
}

/// Merges our users into a kit's passwd/group/shadow: lines of users we define are
/// replaced, the kit's other lines kept in order.
fn merge(kit_text: Option<String>, ours: &str) -> String {
    let names: Vec<&str> = ours.lines().filter_map(|l| l.split(':').next()).collect();
    let mut out = String::new();
    for l in kit_text.unwrap_or_default().lines() {
        if !names.contains(&l.split(':').next().unwrap_or("")) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push_str(ours);
    out
}

/// The files written into the root's /etc; `kit_file` gives the kit root's own passwd,
/// group and shadow (by name), which ours are merged into; `init`: our inittab, rcS and
/// first-boot script too.
fn etc_files(
    plan: &Plan,
    etc: &Path,
    kit_file: &dyn Fn(&str) -> Option<String>,
    init: bool,
) -> Result<Vec<Source>> {
    let mut files: Vec<(&str, String, u32)> = vec![
        ("fstab", plan.fstab.clone(), 0o644),
        ("hostname", format!("{}\n", plan.hostname), 0o644),
        (
            "hosts",
            format!("127.0.0.1\tlocalhost\n127.0.1.1\t{}\n", plan.hostname),
            0o644,
        ),
        ("passwd", merge(kit_file("passwd"), &passwd(plan)), 0o644),
        ("group", merge(kit_file("group"), &group(plan)), 0o644),
        ("shadow", merge(kit_file("shadow"), &shadow(plan)), 0o600),
    ];
    if plan.monitor == Monitor::Wsl {
        files.push(("wsl.conf", crate::wsl::wsl_conf(plan), 0o644));
    } else if plan.slirp.is_some() {
        // slirp's DNS, which rcS's eth0 reaches (WSL writes its own resolv.conf).
        files.push((
            "resolv.conf",
            "# slirp's DNS (eth0), written by colinux-setup.\nnameserver 10.0.2.3\n".to_owned(),
            0o644,
        ));
    }
    if init {
        files.push(("inittab", inittab().to_owned(), 0o644));
        files.push(("rcS", rcs(plan), 0o755));
        files.push(("firstboot", FIRST_BOOT.to_owned(), 0o755));
        if let Some(run) = first_boot_run(plan) {
            files.push(("firstboot-run", run, 0o755));
        }
    }
    let mut sources = Vec::new();
    for (name, text, mode) in files {
        let src = write(&etc.join(name), &text, mode)?;
        let dest = if ["rcS", "firstboot", "firstboot-run"].contains(&name) {
            format!("/etc/init.d/{name}")
        } else {
            format!("/etc/{name}")
        };
        sources.push(Source::File { src, dest });
    }
    Ok(sources)
}

/// The directories of a Linux root, busybox and its applet links.
fn busybox_tree(root: &Path, busybox: &Path) -> Result<()> {
    check_static_busybox(busybox)?;
    for (d, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("etc", 0o755),
        ("etc/init.d", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("mnt", 0o755),
        ("run", 0o755),
        ("var", 0o755),
        ("var/log", 0o755),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
    ] {
        mkdir(&root.join(d), mode)?;
    }
    let target = root.join("bin/busybox");
    fs::copy(busybox, &target)
        .with_context(|| format!("copying {} into the root tree", busybox.display()))?;
    set_mode(&target, 0o755)?;
    for applet in applet_list(busybox)?.lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet.contains("..") || applet == "bin/busybox" {
            continue;
        }
        let link = root.join(applet);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            mkdir_all(parent)?;
        }
        symlink("/bin/busybox", &link)?;
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &str, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).with_context(|| format!("linking {}", link.display()))
}

#[cfg(not(unix))]
fn symlink(target: &str, link: &Path) -> Result<()> {
    // No Unix symlinks here: an empty placeholder, written as a symlink into the tar
    // stream the staged tree becomes (crate::host::windows::staged_as_tar).
    fs::write(link, b"").with_context(|| format!("creating {}", link.display()))?;
    crate::host::record_symlink(link, target);
    Ok(())
}

/// busybox's applets, one path a line (`busybox --list-full`).
#[cfg(unix)]
fn applet_list(busybox: &Path) -> Result<String> {
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {} --list-full", busybox.display()))?;
    if !out.status.success() {
        bail!("{} --list-full failed ({})", busybox.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// busybox's applets: a Linux program cannot run here, so the list is the file
/// `busybox.applets` beside it (its `--list-full`, written when setup.msi is built).
#[cfg(not(unix))]
fn applet_list(busybox: &Path) -> Result<String> {
    let list = busybox.with_file_name("busybox.applets");
    fs::read_to_string(&list).with_context(|| {
        format!(
            "reading {}, the applet list of {} (written by scripts/build-msi beside it)",
            list.display(),
            busybox.display()
        )
    })
}

/// What to do when the busybox a root is built from cannot be used.
fn busybox_remedy() -> &'static str {
    if cfg!(windows) {
        "repair or reinstall colinux-setup (setup-x86.msi installs an i386 busybox in its assets folder), or give KIT=DIR with a rootfs/ folder"
    } else {
        "install busybox-static (Debian: apt-get install busybox-static), or give --kit DIR with a rootfs/ folder"
    }
}

/// The guest has no C library: busybox must be a statically linked Linux program (no
/// ELF `PT_INTERP`), of either ELF class. Its header, for judging its machine.
pub fn check_static_busybox(path: &Path) -> Result<Elf> {
    let data = fs::read(path).with_context(|| {
        format!(
            "cannot read {}, the busybox the built-in root is made from; {}",
            path.display(),
            busybox_remedy()
        )
    })?;
    let elf = Elf::parse(&data).map_err(|e| {
        anyhow!(
            "{} cannot be the guest's busybox: {e}; {}",
            path.display(),
            busybox_remedy()
        )
    })?;
    if elf.interpreter {
        bail!(
            "{} is dynamically linked; the guest has no C library: {}",
            path.display(),
            busybox_remedy()
        );
    }
    Ok(elf)
}

/// A warning when the busybox at `path` is not a program `monitor`'s guest kernel runs
/// (an x86-64 busybox for a coLinux kernel, which is 32-bit x86): the machine would be
/// built but would not boot. `None` when it fits, or when it cannot be read (the host
/// check before any change reports that as an error).
pub fn busybox_misfit(path: &Path, monitor: Monitor) -> Option<String> {
    let arch = crate::elf::guest_arch(monitor)?;
    let elf = Elf::parse(&fs::read(path).ok()?).ok()?;
    if elf.runs_on(arch) {
        return None;
    }
    let kernel = match monitor {
        Monitor::Colinux => "a coLinux kernel (32-bit x86)",
        Monitor::Uml => "User-mode Linux on this host",
        Monitor::Qemu => "the QEMU guest kernel of this host",
        Monitor::Wsl => "WSL 2's kernel (x86-64)",
    };
    Some(format!(
        "the built-in root uses {}, a busybox for {}, not {}: {kernel} cannot run it; \
         give a kit with a rootfs/ folder (or a distribution) for {} for a machine that boots{}",
        path.display(),
        elf.describe(),
        arch.name,
        arch.name,
        if monitor == Monitor::Colinux && cfg!(windows) {
            ", or install with setup-x86.msi, which carries an i386 busybox"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_whatever_they_hold() {
        assert_eq!(sh_quote("/home/a"), "'/home/a'");
        assert_eq!(sh_quote("x'; reboot; '"), r"'x'\''; reboot; '\'''");
    }
}
