//! The command line, as one typed value (clap derive).
//!
//! Names and flags follow the contract in ../shared/design.md; tests outside the
//! project use them. Values here are only checked for syntax; meaning (sizes against
//! the volume, kernels against features) is resolved by the commands.
//!
//! It is part of the command layer (it names each command's own argument types), so
//! it lives under `cmd/`; `main.rs` parses with it and hands the value to `cmd::run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Installer and provisioning tool for Cooperative Linux (coLinux), User-mode Linux and
/// QEMU guests.
///
/// Without a command it installs (`colinux-setup --unattended --prefix DIR` is
/// `colinux-setup install --unattended --prefix DIR`).
#[derive(Debug, Parser)]
#[command(
    name = "colinux-setup",
    version,
    about,
    propagate_version = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: install).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Install options, when no command is given.
    #[command(flatten)]
    pub install: InstallArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install a machine: a wizard on a terminal, or silent with --unattended.
    Install(InstallArgs),
    /// Remove an installed machine; its images are kept unless --purge.
    Uninstall(UninstallArgs),
    /// Describe an installed machine (for detection by SCCM/Intune-style tools).
    Status(StatusArgs),
    /// Run the installed machine in the foreground: console on the terminal and in the
    /// log; Ctrl-C stops it (exit 1602), --timeout stops it (exit 1603).
    Boot(BootArgs),
    /// Host facts and the recommended guest RAM, swap, root and home sizes.
    Facts(FactsArgs),
    /// Build, inspect and check disk images (ext2/ext3/ext4 and swap), natively.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Check and show coLinux config.txt files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check a kit folder against its kit.toml, or write one.
    #[command(subcommand)]
    Kit(super::kit::KitCommand),
    /// Create, remove or show the host-only TAP adapter (on a private /24 that collides
    /// with nothing on the host).
    #[command(subcommand)]
    Tap(super::tap::TapCommand),
    /// The coLinux ring-0 driver: verify its signature, install, remove, status.
    #[command(subcommand)]
    Driver(super::driver::DriverCommand),
    /// The machine as a Windows service at boot (coLinux monitor): install, remove, status.
    #[command(subcommand)]
    Service(super::service::ServiceCommand),
    /// The PuTTY saved session that opens ssh to an installed machine: install, remove,
    /// show (for the user who runs it).
    #[command(subcommand)]
    Putty(super::putty::PuttyCommand),
    /// What setup.msi's custom actions run: install, uninstall, rollback, driver, with
    /// the MSI's properties as --property KEY=VALUE (empty values are not given).
    #[command(subcommand)]
    Msi(super::msi::MsiCommand),
    /// Every installed machine of this user: its monitor, state (running, stopped,
    /// missing), RAM, images and network.
    List(ListArgs),
    /// Start the installed machine in the background; returns once the guest is up
    /// (1618 when it runs already).
    Start(StartArgs),
    /// Stop a machine running in the background: a clean poweroff, killed after --timeout.
    Stop(StopArgs),
    /// Attach the terminal to a running machine's console (Ctrl-] detaches).
    Console(ConsoleArgs),
    /// Run a command in a running machine (`shell -- uname -a`), exiting with its
    /// status; without a command, its console.
    Shell(ShellArgs),
    /// Internal: the background process of `start` (see cmd/life.rs).
    #[command(hide = true, name = "run-machine")]
    RunMachine(ConsoleArgs),
    /// Internal: kills a guest's process group when the run that started it ends
    /// without saying it is done (see monitor::reaper).
    #[command(hide = true)]
    ReapGuest {
        /// The guest's process group.
        pgid: u32,
    },
}

/// `images` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build an ext2/ext3/ext4 image from folders and files, without mkfs, mount or root.
    Build(BuildArgs),
    /// Write a swap image (mkswap v1 header, page size 4096).
    Swap(SwapArgs),
    /// Check an image's structure (and run `e2fsck -fn` where it is installed).
    Check(ImageArgs),
    /// Describe an image: kind, features, label, UUID, sizes, used and free blocks and inodes.
    Inspect(ImageArgs),
    /// Rebuild an installed machine's images: home from the old home.img itself (grow,
    /// shrink, convert, rescue), root and swap from the profile as the install builds
    /// them. The old image stays in place until the new one passes `images check`.
    Rebuild(RebuildArgs),
}

/// An image of an installed machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum MachineImage {
    /// The root image, rebuilt from the profile and kit (what the guest changed in it is lost).
    Root,
    /// The home image, rebuilt from itself: every file is kept.
    Home,
    /// The swap image, rewritten.
    Swap,
}

/// `images rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The images to rebuild.
    #[arg(required = true, value_enum)]
    pub images: Vec<MachineImage>,
    /// Install folder (default: the default profile's folder).
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// New size (e.g. 512M, 2G, auto, auto+20%); default: home keeps the free space it
    /// had around its content, root and swap take the installed plan's size.
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// New filesystem (ext2, ext3, ext4, ext4-compat, ext4-modern), checked against the
    /// guest kernel; default: the level the image has now.
    #[arg(long = "fs", value_name = "FS")]
    pub fs: Option<String>,
    /// Keep the old image as IMAGE.bak beside the new one.
    #[arg(long)]
    pub keep_backup: bool,
    /// A guest path (file or folder) a root rebuild copies from the old root image,
    /// besides the profile's `preserve` list (repeatable), e.g. --preserve /etc/dropbear.
    #[arg(long, value_name = "PATH")]
    pub preserve: Vec<String>,
    /// Keep nothing of the old root image, not even the profile's `preserve` paths.
    #[arg(long, conflicts_with = "preserve")]
    pub no_preserve: bool,
}

/// `images build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The image file to write (written beside it, then renamed into place).
    pub out: PathBuf,
    /// Filesystem: ext2, ext3, ext4 (modern, or compat with --kernel before 3.18),
    /// ext4-compat, ext4-modern.
    #[arg(long = "fs", value_name = "FS")]
    pub fs: String,
    /// The guest kernel that must mount the image read-write, e.g. 2.6.11 or 2.6.33.
    #[arg(long, value_name = "VERSION")]
    pub kernel: Option<String>,
    /// Image size (e.g. 512M, 2G, 1048576) or auto, auto+20%, auto+256M.
    #[arg(long, value_name = "SIZE")]
    pub size: String,
    /// A folder, a tar archive (plain, .gz, .xz, .zst, .bz2; `-` for standard input) or an
    /// existing ext2/3/4 image (raw or VHDX), whose contents become the image's root; several are
    /// layered in order.
    #[arg(long = "from", value_name = "DIR")]
    pub from: Vec<PathBuf>,
    /// Add or replace one file: SRC on the host, DEST inside the image (e.g. fstab:/etc/fstab).
    #[arg(long = "file", value_name = "SRC:DEST")]
    pub file: Vec<String>,
    /// Give every entry this owner and group (a root-owned image without fakeroot).
    #[arg(long, value_name = "UID:GID")]
    pub owner: Option<String>,
    /// Volume label (at most 16 bytes).
    #[arg(long)]
    pub label: Option<String>,
    /// Filesystem UUID (default: derived from the inputs, so builds are reproducible).
    #[arg(long)]
    pub uuid: Option<String>,
    /// Derive the UUID and directory hash seed from this seed (with the label and file
    /// name) instead of the content, so a rebuilt image keeps its UUID.
    #[arg(long)]
    pub seed: Option<String>,
    /// Block size in bytes: 1024, 2048 or 4096 (default 4096).
    #[arg(long, value_name = "BYTES")]
    pub block_size: Option<u32>,
    /// How the file holds the filesystem: raw (the filesystem's bytes) or vhdx (a dynamic
    /// VHDX, the disk WSL 2 and Hyper-V attach). Default: vhdx when OUT ends in .vhdx,
    /// raw otherwise.
    #[arg(long, value_name = "raw|vhdx")]
    pub format: Option<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON, and progress as NDJSON events, on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `images swap`.
#[derive(Debug, Args)]
pub struct SwapArgs {
    /// The swap image to write.
    pub out: PathBuf,
    /// Size (e.g. 256M); at least 10 pages.
    #[arg(long)]
    pub size: String,
    /// Swap label (at most 16 bytes), for `swapon -L` and fstab.
    #[arg(long)]
    pub label: Option<String>,
    /// Swap UUID (default: derived from the size and label).
    #[arg(long)]
    pub uuid: Option<String>,
    /// raw or vhdx, as for `images build` (default: vhdx when OUT ends in .vhdx).
    #[arg(long, value_name = "raw|vhdx")]
    pub format: Option<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// An image to look at.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The image file.
    pub image: PathBuf,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check config.txt files as colinux-daemon reads them; prints FILE:LINE:COL lines.
    Check {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The monitor the files are for: with wsl, a note for each key WSL ignores
        /// (default: an installed machine's config.txt is for its install's monitor).
        #[arg(long, value_name = "colinux|uml|qemu|wsl")]
        monitor: Option<String>,
    },
    /// Print a config.txt as its model (human, or JSON with --json).
    Show {
        /// The file (default: config.txt in --prefix).
        file: Option<PathBuf>,
        /// An installed machine's folder.
        #[arg(long)]
        prefix: Option<PathBuf>,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `install` (and the default command).
#[derive(Debug, Args, Default, Clone)]
pub struct InstallArgs {
    /// Installation profile: a built-in name (minimal, bfin-uclinux, embedded-dev) or a profile file.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Install folder (INSTALLDIR).
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// Kit folder or http(s) URL (KIT); its rootfs/ folder, when present, replaces the
    /// busybox root; its dist/ folder is the distribution the first boot unpacks. A URL's
    /// files are fetched into the cache (see --cache) and checked against its kit.toml.
    #[arg(long, value_name = "DIR|URL")]
    pub kit: Option<PathBuf>,
    /// Where kits from a URL are cached (default: $XDG_CACHE_HOME/colinux-setup/kits, or
    /// %ProgramData%\colinux-setup\cache on Windows; COLINUX_SETUP_CACHE also sets it).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Answer file (ANSWERFILE): KEY = value lines, as --save-answers writes them.
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Write the answers that reproduce this install exactly.
    #[arg(long, value_name = "FILE")]
    pub save_answers: Option<PathBuf>,
    /// An answer: INSTALLDIR, RAMMB, ROOTMB, HOMEMB, SWAPMB, TAPNAME, SUBNET, MONITOR,
    /// NOFIRSTBOOT, HOSTNAME, KIT, PROFILE, SLIRP, SERIAL, STARTMENU, TASKS (repeatable;
    /// wins over the answer file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The monitor the machine is installed for (MONITOR); `auto`: the first that runs
    /// guests here (uml, then qemu with KVM, then qemu without), found by a probe; `wsl`:
    /// WSL 2 on 64-bit Windows 10/11 (root.vhdx registered as a distribution; WSLNAME).
    #[arg(long, value_name = "auto|colinux|uml|qemu|wsl")]
    pub monitor: Option<String>,
    /// Do not run the first boot now (NOFIRSTBOOT=1); run it later with
    /// `colinux-setup boot --first-boot`.
    #[arg(long)]
    pub no_first_boot: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Never prompt (needed without a terminal).
    #[arg(long, short = 'y', visible_alias = "quiet")]
    pub unattended: bool,
    /// NDJSON events on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the run's log here (default: <prefix>/logs/install-TIME-PID.log).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

/// `uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Install folder.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// Also remove the images (root, home with the user's data, swap) and the logs.
    #[arg(long)]
    pub purge: bool,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the run's log here.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Install folder.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `facts`.
#[derive(Debug, Args)]
pub struct FactsArgs {
    /// The folder whose volume's free space is reported (default: the profile's default).
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// The profile whose rules give the recommendations.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// The monitor the recommendations are for (default: the profile's; `auto`: the
    /// first that runs guests here).
    #[arg(long, value_name = "auto|colinux|uml|qemu")]
    pub monitor: Option<String>,
    /// A kit whose kernels the monitor probe boots (without one: the host's linux.uml,
    /// and no kernel for QEMU).
    #[arg(long, value_name = "DIR")]
    pub kit: Option<PathBuf>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `boot`.
#[derive(Debug, Args)]
pub struct BootArgs {
    /// Install folder.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// The monitor to run it in (default: the one it was installed for).
    #[arg(long, value_name = "colinux|uml|qemu|wsl")]
    pub monitor: Option<String>,
    /// Stop the guest after this many seconds (exit 1603).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Run the machine's first boot, when it is still to do (an install with
    /// --no-first-boot, or one whose monitor could not run then), as the install runs
    /// it: on failure the machine is put back as it was (exit 1603).
    #[arg(long, conflicts_with_all = ["monitor", "timeout"])]
    pub first_boot: bool,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// JSON on stdout: one document with every machine.
    #[arg(long)]
    pub json: bool,
}

/// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Install folder.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// How long to wait for the guest (a wsl machine: WSL listing its distribution
    /// Running) to come up before stopping it (exit 1603).
    #[arg(long, value_name = "SECS", default_value_t = super::life::START_TIMEOUT)]
    pub timeout: u64,
    /// The result as one JSON document on stdout (state, pid, monitor, log).
    #[arg(long)]
    pub json: bool,
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Install folder.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// How long the guest may take to power off before it is killed (a wsl machine:
    /// how long its `sync` may take before `wsl --terminate`).
    #[arg(long, value_name = "SECS", default_value_t = super::life::STOP_TIMEOUT)]
    pub timeout: u64,
    /// The result as one JSON document on stdout (whether it ran, a clean poweroff).
    #[arg(long)]
    pub json: bool,
}

/// `console` (and the background process's arguments).
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Install folder.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
}

/// `shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Install folder.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// How long the command may run (exit 1603 after it; it may still run in the guest).
    #[arg(long, value_name = "SECS", default_value_t = super::life::SHELL_TIMEOUT)]
    pub timeout: u64,
    /// The command, typed on the guest's console as one line (after `--`); a wsl
    /// machine runs it with `/bin/sh -c` as its default user.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}
