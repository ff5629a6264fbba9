//! The wizard's pages, one method each, in the Blackfin coLinux kit manual's order. Each page shows the
//! host's facts and the plan's values with the rules behind them, and ends in a menu:
//! choosing a value asks for it (the shown value is kept by Enter), "Next >" goes on,
//! "< Back" (or Esc) goes back.

use anyhow::Result;

use super::{Got, Nav, Page, Wizard, mb, screen};
use crate::facts;
use crate::plan;
use crate::profile::{self, Monitor};
use crate::state::{self, InstallState};

/// The license of coLinux, the Linux kernel and colinux-setup (GPL-2.0).
pub const LICENSE: &str = include_str!("../../../assets/COPYING.GPL-2.0");

/// The Blackfin coLinux kit manual's warning, for the coLinux monitor.
pub(super) const KERNEL_WARNING: &str = "\
colinux-setup installs a Windows kernel driver (the coLinux monitor), which loads a
Linux kernel to run aside the Windows kernel, in the same privilege level (ring 0) and
without memory protection between the two.

This software can destabilize or crash your system.

You should therefore not use software or edit data that is vital for you or your
business while running coLinux. A root user inside coLinux can also compromise the
security of the Windows host. Loading the driver needs administrator rights.";

/// Extra tasks on Windows: (answer word, what it does).
const TASKS: &[(&str, &str)] = &[
    ("startmenu", "a start-menu entry that boots the machine"),
    ("desktop", "a desktop shortcut that boots the machine"),
    (
        "service",
        "run the machine as a Windows service (starts with Windows)",
    ),
];

fn monitor_text(m: Monitor) -> &'static str {
    match m {
        Monitor::Colinux => {
            "Cooperative Linux (colinux-daemon; 32-bit Windows 2000..7, installs a kernel driver)"
        }
        Monitor::Uml => "User-mode Linux (linux.uml, on this Linux host; no driver)",
        Monitor::Qemu => "QEMU (any host; KVM when it can be used, else emulation)",
        Monitor::Wsl => "WSL 2 (64-bit Windows 10 2004+ and 11; root as a VHDX distribution)",
    }
}

impl Wizard<'_> {
    /// A page's menu: its own entries, then "Next >" (returned: its index) and "< Back".
    /// The "change a value or go on" menu of a page of `(key, label)` fields: the field
    /// chosen (remembered in `cursor` for the next round), or where to go.
    fn choose_field(
        &self,
        fields: &[(&str, String)],
        cursor: &mut Option<usize>,
    ) -> Result<std::result::Result<usize, Nav>> {
        let (items, next) = self.next_back(fields.iter().map(|f| f.1.clone()).collect());
        Ok(
            match self.menu(
                "Choose a value to change, or go on",
                &items,
                cursor.unwrap_or(next),
            )? {
                Got::Cancel => Err(Nav::Cancel),
                Got::Back => Err(Nav::Back),
                Got::Value(i) if i == next => Err(Nav::Next),
                Got::Value(i) if i > next => Err(Nav::Back),
                Got::Value(i) => {
                    *cursor = Some(i);
                    Ok(i)
                }
            },
        )
    }

    fn next_back(&self, extra: Vec<String>) -> (Vec<String>, usize) {
        let mut items = extra;
        let next = items.len();
        items.push("Next >".into());
        items.push("< Back".into());
        (items, next)
    }

    pub(super) fn welcome(&mut self) -> Result<Nav> {
        loop {
            let host = facts::gather(&self.plan.prefix);
            let description = profile::load(
                self.plan
                    .answers
                    .get("PROFILE")
                    .map_or(self.plan.profile.as_str(), String::as_str),
            )
            .map(|l| l.profile.description)
            .unwrap_or_default();
            let body = format!(
                "This wizard installs a coLinux machine: it builds its disk images, writes its\n\
                 config.txt and boots it once to finish the setup.\n\n\
                 Profile:   {} ({description})\n\
                 Monitor:   {}: {}\n\
                 This host: {}, {}, {} CPUs, {} MB of RAM ({} MB available)\n\n\
                 Nothing is changed before you choose Install on the summary page.",
                self.plan.profile,
                self.plan.monitor.as_str(),
                monitor_text(self.plan.monitor),
                host.os,
                host.arch,
                host.cpus,
                host.total_ram_mb,
                host.available_ram_mb
            );
            self.header(Page::Welcome, "Welcome to the coLinux setup", &body);
            let items = vec![
                "Next >".to_owned(),
                format!("Profile: {}", self.plan.profile),
                format!("Monitor: {}", self.plan.monitor.as_str()),
            ];
            match self.menu("Choose", &items, 0)? {
                Got::Cancel => return Ok(Nav::Cancel),
                // The first page has nothing before it: Esc asks whether to cancel.
                Got::Back => {
                    if self.confirm_cancel()? {
                        return Ok(Nav::Cancel);
                    }
                }
                Got::Value(0) => return Ok(Nav::Next),
                Got::Value(1) => {
                    let mut names: Vec<String> = profile::SHIPPED
                        .iter()
                        .map(|(n, _)| (*n).to_owned())
                        .collect();
                    let current = names
                        .iter()
                        .position(|n| *n == self.plan.profile)
                        .unwrap_or(0);
                    names.push("a profile file...".into());
                    let choice = match self.menu("Profile", &names, current)? {
                        Got::Value(i) => i,
                        Got::Back => continue,
                        Got::Cancel => return Ok(Nav::Cancel),
                    };
                    let name = if choice + 1 == names.len() {
                        match self.text("Profile file", "")? {
                            Got::Value(v) if !v.is_empty() => v,
                            Got::Cancel => return Ok(Nav::Cancel),
                            _ => continue,
                        }
                    } else {
                        names[choice].clone()
                    };
                    // Another profile brings its own monitor, sizes and network.
                    let kept = self.mine.clone();
                    self.unset(&[
                        "MONITOR", "RAMMB", "ROOTMB", "HOMEMB", "SWAPMB", "TAPNAME", "SUBNET",
                        "SLIRP",
                    ]);
                    if let Err(e) = self.try_set(&[("PROFILE", &name)]) {
                        self.mine = kept;
                        self.pause_on(&e)?;
                    }
                }
                Got::Value(_) => {
                    let all = [Monitor::Colinux, Monitor::Uml, Monitor::Qemu, Monitor::Wsl];
                    let items: Vec<String> = all
                        .iter()
                        .map(|m| format!("{:8} {}", m.as_str(), monitor_text(*m)))
                        .collect();
                    let current = all.iter().position(|m| *m == self.plan.monitor);
                    if let Got::Value(i) = self.menu("Monitor", &items, current.unwrap_or(0))?
                        && let Err(e) = self.try_set(&[("MONITOR", all[i].as_str())])
                    {
                        self.pause_on(&e)?;
                    }
                }
            }
        }
    }

    /// Shows an error and waits for Enter, so it is read before the page is redrawn.
    fn pause_on(&self, e: &str) -> Result<()> {
        self.say(e);
        let _ = self.menu("Press Enter", &["OK".to_owned()], 0)?;
        Ok(())
    }

    pub(super) fn license(&mut self) -> Result<Nav> {
        let mut note = None::<&str>;
        loop {
            let head: String = LICENSE.lines().take(18).collect::<Vec<_>>().join("\n");
            let body = format!(
                "coLinux, the Linux kernel it runs, and colinux-setup are free software under the\n\
                 GNU General Public License, version 2. Please read it; you must accept it to\n\
                 install.\n\n{head}\n  [...] (choose \"Read the whole license\" for all of it)"
            );
            self.header(Page::License, "License agreement", &body);
            if let Some(n) = note.take() {
                self.say(n);
            }
            let items = vec![
                "I do not accept the agreement".to_owned(),
                "I accept the agreement".to_owned(),
                "Read the whole license".to_owned(),
                "< Back".to_owned(),
            ];
            match self.menu("Choose", &items, usize::from(self.accepted))? {
                Got::Cancel => return Ok(Nav::Cancel),
                Got::Back | Got::Value(3) => return Ok(Nav::Back),
                Got::Value(0) => {
                    self.accepted = false;
                    note = Some(
                        "coLinux cannot be installed without accepting the license; accept it, or press Ctrl-C to cancel",
                    );
                }
                Got::Value(1) => {
                    self.accepted = true;
                    return Ok(Nav::Next);
                }
                Got::Value(_) => {
                    if let Some(Got::Cancel) =
                        self.page_through("GNU General Public License, version 2", LICENSE)?
                    {
                        return Ok(Nav::Cancel);
                    }
                }
            }
        }
    }

    pub(super) fn kernel_warning(&mut self) -> Result<Nav> {
        self.header(
            Page::KernelWarning,
            "Information: a kernel-level component is installed",
            KERNEL_WARNING,
        );
        let (items, next) = self.next_back(Vec::new());
        Ok(match self.menu("Choose", &items, next)? {
            Got::Cancel => Nav::Cancel,
            Got::Value(i) if i == next => Nav::Next,
            _ => Nav::Back,
        })
    }

    pub(super) fn folder(&mut self) -> Result<Nav> {
        let mut note: Option<String> = None;
        loop {
            let prefix = self.plan.prefix.clone();
            let host = facts::gather(&prefix);
            let files = self.plan.files();
            let need: u64 = files.iter().map(|(_, _, m)| m).sum();
            let mut body = format!("Install folder: {}\n", prefix.display());
            match &host.volume {
                Some(v) => body.push_str(&format!(
                    "Its volume ({}): {} free of {}\n",
                    v.queried.display(),
                    mb(v.free_bytes >> 20),
                    mb(v.total_bytes >> 20)
                )),
                None => body.push_str("Its volume: free space unknown on this host\n"),
            }
            body.push_str(&format!(
                "The images need {} ({}); everything is stored in these files, not in a partition.\n",
                mb(need),
                files
                    .iter()
                    .map(|(f, _, m)| format!("{f} {m} MB"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            if self.plan.monitor == Monitor::Colinux {
                body.push_str(
                    "coLinux: the path must not contain spaces (its service and helper command lines\n\
                     drop the quotes), and must be ASCII.\n",
                );
            }
            let existing = InstallState::read(&prefix).ok().flatten();
            if let Some(st) = &existing {
                body.push_str(&format!(
                    "\nAn installation is in this folder: profile {}, monitor {}, colinux-setup {},\n\
                     installed {}, first boot {}. Its images are kept as they are in every case.\n",
                    st.profile,
                    st.monitor,
                    st.version,
                    state::stamp(st.installed_at),
                    crate::finish::recorded_first_boot_words(st.monitor, st.first_boot, &prefix)
                ));
            }
            let check = crate::apply::check_host(&self.plan);
            match &check {
                Ok(()) => body.push_str("\nHost check: the folder can be used."),
                Err(e) => body.push_str(&format!("\nHost check: {e:#}")),
            }
            self.header(Page::Folder, "Install folder", &body);
            if let Some(n) = note.take() {
                self.say(&n);
            }
            let mut extra = vec!["Change the folder".to_owned()];
            if existing.is_some() {
                extra.push("Repair it: install again exactly as it was installed".to_owned());
                extra.push(
                    "Upgrade it: this version's defaults, keeping its profile, monitor and image sizes"
                        .to_owned(),
                );
                extra.push("Keep its images, and choose the rest again".to_owned());
            }
            let (items, next) = self.next_back(extra);
            match self.menu("Choose", &items, next)? {
                Got::Cancel => return Ok(Nav::Cancel),
                Got::Back => return Ok(Nav::Back),
                Got::Value(0) => {
                    let cur = prefix.display().to_string();
                    loop {
                        match self.text("Install folder", &cur)? {
                            Got::Cancel => return Ok(Nav::Cancel),
                            Got::Back => break,
                            Got::Value(v) if v.is_empty() || v == cur => break,
                            Got::Value(v) => match self.try_set(&[("INSTALLDIR", &v)]) {
                                Ok(()) => break,
                                Err(e) => self.say(&e),
                            },
                        }
                    }
                }
                Got::Value(i) if i == next => match check {
                    Ok(()) => return Ok(Nav::Next),
                    Err(e) => note = Some(format!("{e:#}")),
                },
                Got::Value(i) if i > next => return Ok(Nav::Back),
                Got::Value(i) => {
                    let Some(st) = existing else { continue };
                    let recorded = |k: &str| st.answers.get(k).cloned();
                    let keys: &[&str] = match i {
                        1 => &[],
                        2 => &["PROFILE", "MONITOR", "ROOTMB", "HOMEMB", "SWAPMB"],
                        _ => &["ROOTMB", "HOMEMB", "SWAPMB"],
                    };
                    let dir = prefix.display().to_string();
                    let mut pairs: Vec<(String, String)> = if i == 1 {
                        st.answers
                            .iter()
                            .filter(|(k, _)| k.as_str() != "INSTALLDIR")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    } else {
                        keys.iter()
                            .filter_map(|k| recorded(k).map(|v| ((*k).to_owned(), v)))
                            .collect()
                    };
                    pairs.push(("INSTALLDIR".into(), dir));
                    let kept = self.mine.clone();
                    if i != 3 {
                        self.mine = crate::plan::Answers::default();
                    }
                    let refs: Vec<(&str, &str)> = pairs
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    match self.try_set(&refs) {
                        Ok(()) if i == 3 => return Ok(Nav::Next),
                        Ok(()) => return Ok(Nav::Summary),
                        Err(e) => {
                            self.mine = kept;
                            note = Some(format!("the recorded answers cannot be used: {e}"));
                        }
                    }
                }
            }
        }
    }

    pub(super) fn sizes(&mut self) -> Result<Nav> {
        let mut cursor = None;
        loop {
            let host = facts::gather(&self.plan.prefix);
            let loaded = profile::load(
                self.plan
                    .answers
                    .get("PROFILE")
                    .map_or(self.plan.profile.as_str(), String::as_str),
            )?;
            let limits = facts::ram_limits(&host, &loaded.profile, self.plan.monitor);
            let rec = facts::recommend(&host, &loaded.profile, self.plan.monitor);
            let ram = u64::from(self.plan.ram_mb);
            let mut body = format!(
                "This host has {} MB of RAM ({} MB available now). The guest's RAM is taken from it\n\
                 while the machine runs: {} MB for the guest leaves {} MB for the host, which should\n\
                 keep at least {} MB. Guest RAM may be {}..{} MB{} ({}; {}).\n\
                 Recommended: {} MB ({}).\n\n\
                 The images are files in the install folder. The swap should be larger than the RAM.\n",
                host.total_ram_mb,
                host.available_ram_mb,
                ram,
                host.total_ram_mb.saturating_sub(ram),
                facts::HOST_KEEPS_MB,
                limits.min_mb,
                limits.max_mb,
                if limits.multiple_of > 1 {
                    format!(", a multiple of {}", limits.multiple_of)
                } else {
                    String::new()
                },
                limits.min_rule,
                limits.max_rule,
                rec.ram.mb,
                rec.ram.rule
            );
            for i in &self.plan.images {
                body.push_str(&format!(
                    "  {:9} {:>8} {} on {}: {}\n",
                    i.file,
                    format!("{} MB", i.size_mb),
                    i.fs,
                    i.mount,
                    i.size_rule
                ));
            }
            body.push_str(&format!(
                "  {:9} {:>8} swap: {}\n",
                self.plan.swap.file,
                format!("{} MB", self.plan.swap.size_mb),
                self.plan.swap.size_rule
            ));
            for w in &self.plan.warnings {
                body.push_str(&format!("  note: {w}\n"));
            }
            self.header(Page::Sizes, "RAM and image sizes", &body);
            let mut fields: Vec<(&str, String)> =
                vec![("RAMMB", format!("Guest RAM: {} MB", self.plan.ram_mb))];
            for i in &self.plan.images {
                let what = if i.mount == "/" {
                    "Root filesystem".to_owned()
                } else {
                    i.mount.clone()
                };
                fields.push((
                    i.role.size_key(),
                    format!("{what} ({}): {} MB", i.file, i.size_mb),
                ));
            }
            fields.push((
                "SWAPMB",
                format!(
                    "Swap ({}): {} MB",
                    self.plan.swap.file, self.plan.swap.size_mb
                ),
            ));
            match self.choose_field(&fields, &mut cursor)? {
                Err(nav) => return Ok(nav),
                Ok(i) => {
                    let key = fields[i].0;
                    let cur = self.plan.answers.get(key).cloned().unwrap_or_default();
                    let label = match key {
                        "RAMMB" => "Guest RAM in MB",
                        "ROOTMB" => "Root filesystem in MB",
                        "HOMEMB" => "/home in MB",
                        _ => "Swap in MB",
                    };
                    if let Some(nav) = self.ask_value(key, label, &cur)? {
                        return Ok(nav);
                    }
                }
            }
        }
    }

    /// Asks for `key` until the plan takes the value (or Enter keeps it); a refused value
    /// is explained with the plan's message and asked again.
    fn ask_value(&mut self, key: &str, label: &str, cur: &str) -> Result<Option<Nav>> {
        loop {
            match self.text(label, cur)? {
                Got::Cancel => return Ok(Some(Nav::Cancel)),
                Got::Back => return Ok(None),
                Got::Value(v) if v == cur => return Ok(None),
                Got::Value(v) => match self.try_set(&[(key, &v)]) {
                    Ok(()) => return Ok(None),
                    Err(e) => self.say(&e),
                },
            }
        }
    }

    pub(super) fn network(&mut self) -> Result<Nav> {
        let mut cursor = None;
        loop {
            let mut body = String::new();
            let mut fields: Vec<(&str, String)> = Vec::new();
            match &self.plan.slirp {
                Some(r) => {
                    body.push_str(&format!(
                        "eth0: slirp (the host's own connection, no driver). Port redirections\n\
                         host-port:guest-port, joined by /: {}\n",
                        if r.is_empty() { "none" } else { r }
                    ));
                    if self.plan.monitor == Monitor::Uml {
                        body.push_str(
                            "  (User-mode Linux's slirp has no port redirections; they apply under coLinux and QEMU.)\n",
                        );
                    }
                    fields.push((
                        "SLIRP",
                        format!(
                            "Slirp port redirections: {}",
                            if r.is_empty() { "none" } else { r }
                        ),
                    ));
                }
                None => body.push_str("eth0: none (the profile has no slirp adapter)\n"),
            }
            match &self.plan.tap {
                Some(t) => {
                    body.push_str(&format!(
                        "TAP adapter {}: a private class C network between host and guest, {}\n\
                         (host {}, guest {}). It must not be routed on this host yet:\n",
                        t.name, t.subnet, t.host_ip, t.guest_ip
                    ));
                    for c in &t.candidates {
                        body.push_str(&format!(
                            "  {:18} {}\n",
                            c.subnet,
                            c.reason.as_deref().unwrap_or("free")
                        ));
                    }
                    fields.push(("TAPNAME", format!("TAP adapter name: {}", t.name)));
                    let given = self.merged(&self.mine).get("SUBNET").is_some();
                    fields.push((
                        "SUBNET",
                        format!(
                            "TAP network: {}{}",
                            t.subnet,
                            if given {
                                ""
                            } else {
                                " (suggested: the first free candidate)"
                            }
                        ),
                    ));
                }
                None => body.push_str("TAP adapter: none (the profile has no TAP adapter)\n"),
            }
            let serial = self.plan.serial.clone().unwrap_or_default();
            body.push_str(&format!(
                "Serial port: {} (the guest's ttyS0; the console blocks while it is used, so work\n\
                 in an xterm or PuTTY then)\n",
                if serial.is_empty() { "none" } else { &serial }
            ));
            fields.push((
                "SERIAL",
                format!(
                    "Serial port: {}",
                    if serial.is_empty() { "none" } else { &serial }
                ),
            ));
            self.header(Page::Network, "Network and serial port", &body);
            match self.choose_field(&fields, &mut cursor)? {
                Err(nav) => return Ok(nav),
                Ok(i) => {
                    let key = fields[i].0;
                    let cur = self
                        .plan
                        .answers
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| match key {
                            "SLIRP" => self.plan.slirp.clone().unwrap_or_default(),
                            _ => String::new(),
                        });
                    let label = match key {
                        "SLIRP" => "Redirections (e.g. tcp:333:22/udp:69:69; empty for none)",
                        "TAPNAME" => "TAP adapter name",
                        "SUBNET" => "TAP network (a free /24, e.g. 10.12.12.0/24)",
                        _ => "Serial port (e.g. COM1; empty for none)",
                    };
                    if let Some(nav) = self.ask_value(key, label, &cur)? {
                        return Ok(nav);
                    }
                }
            }
        }
    }

    /// The machine's user (a profile with `ask`, such as embedded-dev): the name and a
    /// password, which has no default; Next waits for one.
    pub(super) fn user(&mut self) -> Result<Nav> {
        let mut cursor = None;
        loop {
            let Some(u) = self.plan.users.iter().find(|u| u.asked).cloned() else {
                return Ok(Nav::Next);
            };
            let body = format!(
                "The machine's user is you: {name} owns {home}, where the first boot unpacks the\n\
                 distribution, and logs in on the console with `su - {name}`.\n\n\
                 This machine has no default password: choose one. It is kept only as a SHA-512\n\
                 crypt hash in the machine's /etc/shadow (and in an answer file, if you save one).\n",
                name = u.name,
                home = u.home
            );
            self.header(Page::User, "Your user", &body);
            let fields = vec![
                ("USERNAME", format!("User name: {}", u.name)),
                (
                    "USERPASSWORD",
                    format!(
                        "Password: {}",
                        if u.needs_password {
                            "not chosen yet"
                        } else {
                            "chosen"
                        }
                    ),
                ),
            ];
            match self.choose_field(&fields, &mut cursor)? {
                Err(Nav::Next) if u.needs_password => {
                    self.pause_on("choose a password first: this machine has no default one")?;
                }
                Err(nav) => return Ok(nav),
                Ok(0) => {
                    if let Some(nav) = self.ask_value("USERNAME", "User name", &u.name)? {
                        return Ok(nav);
                    }
                }
                Ok(_) => match self.password("Password")? {
                    Got::Cancel => return Ok(Nav::Cancel),
                    Got::Back => {}
                    Got::Value(pw) => {
                        if let Err(e) = self.try_set(&[("USERPASSWORD", &pw)]) {
                            self.pause_on(&e)?;
                        }
                    }
                },
            }
        }
    }

    pub(super) fn start_menu(&mut self) -> Result<Nav> {
        loop {
            let folder = self.plan.start_menu.clone().unwrap_or_default();
            self.header(
                Page::StartMenu,
                "Start-menu folder",
                &format!("The machine's shortcuts go into the start-menu folder \"{folder}\"."),
            );
            let (items, next) = self.next_back(vec![format!("Start-menu folder: {folder}")]);
            match self.menu("Choose", &items, next)? {
                Got::Cancel => return Ok(Nav::Cancel),
                Got::Back => return Ok(Nav::Back),
                Got::Value(i) if i == next => return Ok(Nav::Next),
                Got::Value(i) if i > next => return Ok(Nav::Back),
                Got::Value(_) => {
                    if let Some(nav) = self.ask_value("STARTMENU", "Start-menu folder", &folder)? {
                        return Ok(nav);
                    }
                }
            }
        }
    }

    pub(super) fn tasks(&mut self) -> Result<Nav> {
        let mut cursor = None;
        loop {
            let chosen = self.plan.tasks.clone();
            self.header(
                Page::Tasks,
                "Additional tasks",
                "Choose a task to turn it on or off.",
            );
            let toggles: Vec<String> = TASKS
                .iter()
                .map(|(w, what)| {
                    let on = chosen.iter().any(|c| c == w);
                    format!("[{}] {what}", if on { "x" } else { " " })
                })
                .collect();
            let (items, next) = self.next_back(toggles);
            match self.menu("Choose", &items, cursor.unwrap_or(next))? {
                Got::Cancel => return Ok(Nav::Cancel),
                Got::Back => return Ok(Nav::Back),
                Got::Value(i) if i == next => return Ok(Nav::Next),
                Got::Value(i) if i > next => return Ok(Nav::Back),
                Got::Value(i) => {
                    cursor = Some(i);
                    let w = TASKS[i].0;
                    let mut set: Vec<String> = chosen.into_iter().filter(|c| c != w).collect();
                    if !self.plan.tasks.iter().any(|c| c == w) {
                        set.push(w.to_owned());
                    }
                    let value = if set.is_empty() {
                        "none".to_owned()
                    } else {
                        set.join(",")
                    };
                    if let Err(e) = self.try_set(&[("TASKS", &value)]) {
                        self.pause_on(&e)?;
                    }
                }
            }
        }
    }

    pub(super) fn summary(&mut self) -> Result<Nav> {
        let mut note: Option<String> = None;
        loop {
            let text = plan::describe(&self.plan);
            let whole = text
                .split("\n/etc/fstab:")
                .next()
                .unwrap_or(&text)
                .trim_end();
            let items = vec![
                "Install".to_owned(),
                "Save the answers to a file...".to_owned(),
                "Show config.txt and /etc/fstab".to_owned(),
                "Show the whole plan".to_owned(),
                "< Back".to_owned(),
            ];
            let note_rows = note.as_ref().map_or(0, |n| n.lines().count() + 1);
            let short = summary_view(whole, screen::size(&self.term), items.len() + 1 + note_rows);
            self.header(Page::Summary, "Ready to install", &short);
            if let Some(n) = note.take() {
                let _ = self.term.write_line(&n);
            }
            match self.menu("Choose", &items, 0)? {
                Got::Cancel => return Ok(Nav::Cancel),
                Got::Value(0) => return Ok(Nav::Install),
                Got::Back | Got::Value(4) => return Ok(Nav::Back),
                Got::Value(2) => {
                    let text = format!(
                        "config.txt:\n{}\n/etc/fstab of the root image:\n{}",
                        self.plan
                            .config_text()
                            .unwrap_or_else(|e| format!("{e:#}"))
                            .trim_end(),
                        self.plan.fstab.trim_end()
                    );
                    if let Some(Got::Cancel) =
                        self.page_through("config.txt and /etc/fstab", &text)?
                    {
                        return Ok(Nav::Cancel);
                    }
                }
                Got::Value(3) => {
                    if let Some(Got::Cancel) = self.page_through("The whole plan", &text)? {
                        return Ok(Nav::Cancel);
                    }
                }
                Got::Value(_) => {
                    let default = self
                        .save_to
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "colinux-setup-answers.toml".to_owned());
                    let file = match self.text("Answer file", &default)? {
                        Got::Cancel => return Ok(Nav::Cancel),
                        Got::Back => continue,
                        Got::Value(v) if v.is_empty() => continue,
                        Got::Value(v) => v,
                    };
                    let path = std::path::PathBuf::from(&file);
                    note = Some(
                        match state::write_atomic(&path, self.plan.answer_file().as_bytes()) {
                            Ok(()) => {
                                self.save_to = Some(path.clone());
                                format!(
                                    "Saved the answers to {}; the same install without questions:\n  \
                                     colinux-setup install --unattended --answers {}",
                                    path.display(),
                                    path.display()
                                )
                            }
                            Err(e) => format!("could not save the answers to {file}: {e:#}"),
                        },
                    );
                }
            }
        }
    }
}

/// The summary as the page shows it: the plan's lines but the probe's and the TAP
/// candidates' (the whole plan has them), broken to the terminal's width and cut to the
/// rows left by the page's title and its menu (`below` rows), with a line that says what
/// was left out and where to read it.
fn summary_view(whole: &str, (cols, rows): (usize, usize), below: usize) -> String {
    let kept: Vec<&str> = whole
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("probe ") || t.starts_with("candidate "))
        })
        .collect();
    let mut lines = screen::fit(&kept.join("\n"), cols);
    // The page's three title rows, the blank row under the text, and the row the cursor
    // is left on under the menu.
    let room = rows.saturating_sub(5 + below).max(3);
    if lines.len() > room {
        let cut = lines.len() - (room - 1);
        lines.truncate(room - 1);
        lines.push(format!(
            "  ... {cut} more lines: choose \"Show the whole plan\""
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::summary_view;

    #[test]
    fn the_summary_fits_the_rows_and_says_what_it_left_out() {
        let whole: String = (0..60)
            .map(|i| format!("  line {i}: a value"))
            .chain(["    probe uml: works".to_owned()])
            .collect::<Vec<_>>()
            .join("\n");
        let view = summary_view(&whole, (120, 40), 6);
        assert_eq!(view.lines().count(), 40 - 5 - 6);
        assert!(
            view.ends_with("more lines: choose \"Show the whole plan\""),
            "{view}"
        );
        assert!(!view.contains("probe"));
        // A plan that fits is shown whole.
        let view = summary_view("  a\n  b", (120, 40), 6);
        assert_eq!(view, "  a\n  b");
    }
}
