//! `msi ui --page PAGE --property KEY=VALUE ...`: what setup.msi's dialogs show and
//! whether the answers on them can be installed, computed by the program itself and
//! printed as one JSON object of MSI properties (all strings), which the dialogs' DLL
//! custom action (installer-ca) sets.
//!
//! The answers are resolved exactly as `msi install` will resolve them: the same
//! answer layers (an ANSWERFILE, then the properties given, with the origin
//! "setup.msi"), the same plan ([`crate::plan::make_plan`]) and the same host check
//! ([`crate::apply::check_host`], which `--dry-run` runs: rights, free space, the
//! files already in the folder). So a value a dialog accepts is one the install takes,
//! and a refusal is shown in the plan's own words (`UI_ERROR`), naming the value and
//! what to do. Nothing is changed here.
//!
//! A kit given as a URL is left out of the check (it is fetched by the install itself).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::facts::HostFacts;
use crate::plan::{Answers, Plan};
use crate::profile::{Monitor, Role};

/// Where every answer of the dialogs comes from, in the plan's rules and messages.
pub const ORIGIN: &str = "setup.msi";

/// Properties the MSI passes that are not answers of the plan.
const NOT_ANSWERS: [&str; 3] = ["ANSWERFILE", "PURGE", crate::answer_keys::MSI_USER_SID];

/// The property that remembers the values the program filled in (a JSON object), so
/// that one the user left as it was is not taken for the user's: the plan's rule for it
/// stays the recommendation ("half of the host's RAM"), not "from setup.msi".
pub const FILLED: &str = "UI_FILLED";

/// The answers the program fills in when the user has not given them.
const FILLABLE: [&str; 9] = [
    "RAMMB",
    "ROOTMB",
    "HOMEMB",
    "SWAPMB",
    "SLIRP",
    "SERIAL",
    "STARTMENU",
    "TAPNAME",
    "SUBNET",
];

/// The properties for the dialogs after `page`'s Next (or at the start: `start`), from
/// the properties given (the empty ones left out, as `msi::parse` does) and `filled`,
/// the [`FILLED`] property (empty at the start).
pub fn properties(
    page: &str,
    given: &[(String, String)],
    filled: &str,
) -> BTreeMap<String, String> {
    let filled: BTreeMap<String, String> = serde_json::from_str(filled).unwrap_or_default();
    let given: Vec<(String, String)> = given
        .iter()
        .filter(|(k, v)| filled.get(k) != Some(v))
        .cloned()
        .collect();
    let mut out = BTreeMap::new();
    out.insert("UI_PAGE".to_owned(), page.to_owned());
    match resolve(&given) {
        Ok(plan) => {
            out.insert("UI_ERROR".to_owned(), String::new());
            shown(&plan, &mut out);
            let now: BTreeMap<&str, &str> = FILLABLE
                .iter()
                .filter(|k| !given.iter().any(|(g, _)| g == *k))
                .filter_map(|k| out.get(*k).map(|v| (*k, v.as_str())))
                .collect();
            let json = serde_json::to_string(&now).unwrap_or_default();
            out.insert(FILLED.to_owned(), json);
        }
        Err(e) => {
            out.insert("UI_ERROR".to_owned(), format!("{e:#}"));
        }
    }
    out
}

/// The plan of these properties, checked against the host as the install checks it.
fn resolve(given: &[(String, String)]) -> anyhow::Result<Plan> {
    let get = |k: &str| given.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut answers = Answers::default();
    if let Some(file) = get("ANSWERFILE") {
        answers.read_file(std::path::Path::new(file))?;
    }
    for (k, v) in given {
        if NOT_ANSWERS.contains(&k.as_str()) || (k == "KIT" && v.contains("://")) {
            continue;
        }
        answers.set(k, v, ORIGIN)?;
    }
    let plan = crate::plan::make_plan(&answers)?;
    crate::apply::check_host(&plan)?;
    Ok(plan)
}

/// The values and texts a resolved plan gives the dialogs.
fn shown(plan: &Plan, out: &mut BTreeMap<String, String>) {
    let mut set = |k: &str, v: String| {
        out.insert(k.to_owned(), v);
    };
    // Windows Installer's folder properties end with a separator.
    set(
        "INSTALLDIR",
        format!("{}{}", plan.prefix.display(), std::path::MAIN_SEPARATOR),
    );
    set("RAMMB", plan.ram_mb.to_string());
    for role in [Role::Root, Role::Home] {
        let key = if role == Role::Root {
            "ROOTMB"
        } else {
            "HOMEMB"
        };
        if let Some(img) = plan.images.iter().find(|i| i.role == role) {
            set(key, img.size_mb.to_string());
        }
    }
    set("SWAPMB", plan.swap.size_mb.to_string());
    set("SLIRP", plan.slirp.clone().unwrap_or_default());
    set("SERIAL", plan.serial.clone().unwrap_or_default());
    set("STARTMENU", plan.start_menu.clone().unwrap_or_default());
    match &plan.tap {
        Some(t) => {
            set("TAPNAME", t.name.clone());
            set("SUBNET", t.subnet.to_string());
            set("UI_TAP", "1".to_owned());
        }
        None => set("UI_TAP", String::new()),
    }
    let colinux = plan.monitor == Monitor::Colinux;
    set("UI_COLINUX", if colinux { "1" } else { "" }.to_owned());
    let host = crate::facts::gather(&plan.prefix);
    set("UI_WELCOME", welcome(plan, &host));
    set("UI_FOLDER", folder(plan, &host));
    set("UI_SIZES", sizes(plan));
    set("UI_NETWORK", network(plan));
    set("UI_SUMMARY", summary(plan));
}

fn welcome(plan: &Plan, host: &HostFacts) -> String {
    format!(
        "This setup installs a Linux machine: it builds its disk images, writes its config.txt and boots it once to finish the setup.\n\n\
         Profile: {}\nMonitor: {} ({})\nThis computer: {}, {}, {} CPUs, {} MB of RAM ({} MB available)\n\n\
         Nothing is changed before you choose Install on the last page.",
        plan.profile,
        plan.monitor_choice.engine().title(),
        plan.monitor_choice.why,
        host.os,
        host.arch,
        host.cpus,
        host.total_ram_mb,
        host.available_ram_mb,
    )
}

fn folder(plan: &Plan, host: &HostFacts) -> String {
    // The same count the install's space check makes.
    let (need, _) = crate::apply::space_needed(plan);
    let mut s = format!("The machine's images need {} MB here.", need >> 20);
    if let Some(v) = &host.volume {
        let _ = write!(
            s,
            " The volume of {} has {} MB free of {} MB.",
            v.queried.display(),
            v.free_bytes >> 20,
            v.total_bytes >> 20
        );
    }
    if plan.monitor == Monitor::Colinux {
        s.push_str("\n\ncoLinux cannot use a folder whose path has a space in it.");
    }
    s
}

fn sizes(plan: &Plan) -> String {
    let mut s = format!("Guest RAM {} MB: {}.", plan.ram_mb, plan.ram_rule);
    for img in &plan.images {
        let _ = write!(s, "\n{} {} MB: {}.", img.file, img.size_mb, img.size_rule);
    }
    let _ = write!(
        s,
        "\n{} {} MB: {}.",
        plan.swap.file, plan.swap.size_mb, plan.swap.size_rule
    );
    s
}

fn network(plan: &Plan) -> String {
    let mut s = String::from(
        "Port forwards (slirp) let programs on this computer reach the guest, e.g. tcp:2222:22 for ssh on port 2222.",
    );
    match &plan.tap {
        Some(t) => {
            let _ = write!(
                s,
                "\nTAP adapter {}: subnet {} (this computer {}, the guest {}), a free subnet of this computer.",
                t.name, t.subnet, t.host_ip, t.guest_ip
            );
        }
        None => s.push_str("\nNo TAP adapter: the profile's network is slirp only."),
    }
    if plan.monitor != Monitor::Colinux {
        s.push_str("\nA serial port is coLinux's only.");
    }
    s
}

/// Lines the ready page's text holds (176 dialog units of Tahoma 8), and characters to a
/// line (340 units).
const SUMMARY_LINES: usize = 16;
const LINE_CHARS: usize = 72;

/// The ready page's summary: one line per part of the plan, its rules left out (the
/// other pages showed them), then as many of the plan's warnings as the page holds,
/// each cut to two lines, and how many more the install's log will have.
fn summary(plan: &Plan) -> String {
    let mut s = format!(
        "Folder: {}\nMonitor: {}\nGuest RAM: {} MB",
        plan.prefix.display(),
        plan.monitor_choice.engine().title(),
        plan.ram_mb
    );
    for img in &plan.images {
        let _ = write!(
            s,
            "\n{}: {} MB, {} on {}",
            img.file, img.size_mb, img.fs, img.mount
        );
    }
    let _ = write!(s, "\n{}: {} MB swap", plan.swap.file, plan.swap.size_mb);
    if let Some(t) = &plan.tap {
        let _ = write!(s, "\nTAP adapter: {} on {}", t.name, t.subnet);
    }
    if let Some(r) = plan.slirp.as_deref().filter(|r| !r.is_empty()) {
        let _ = write!(s, "\nPort forwards: {r}");
    }
    if let Some(m) = &plan.start_menu {
        let _ = write!(s, "\nStart menu: {m}");
    }
    let _ = write!(s, "\nFirst boot: {}", plan.first_boot.state);
    if let Some(d) = &plan.first_boot.description {
        let _ = write!(s, " ({d})");
    }
    // The program runs from a temporary copy while the dialogs show: a note naming its
    // assets names them where the install puts them.
    let here = std::env::current_exe()
        .ok()
        .and_then(|e| {
            e.parent()
                .and_then(|b| b.parent())
                .map(|r| r.display().to_string())
        })
        .filter(|r| r.len() > 3);
    let lines = |t: &str| -> usize { t.lines().map(|l| l.len().div_ceil(LINE_CHARS).max(1)).sum() };
    let mut shown = 0;
    for w in &plan.warnings {
        let w = match &here {
            Some(r) => w.replace(r.as_str(), &plan.prefix.display().to_string()),
            None => w.clone(),
        };
        let mut note = format!("Note: {w}");
        if note.len() > 2 * LINE_CHARS {
            let cut = note
                .char_indices()
                .map(|(i, _)| i)
                .take_while(|i| *i <= 2 * LINE_CHARS - 3)
                .last()
                .unwrap_or(0);
            note.truncate(cut);
            note.push_str("...");
        }
        // One line is kept for the count of the notes left out.
        if lines(&s) + lines(&note) + 1 > SUMMARY_LINES {
            break;
        }
        s.push('\n');
        s.push_str(&note);
        shown += 1;
    }
    let more = plan.warnings.len() - shown;
    if more > 0 {
        let _ = write!(s, "\n{more} more note(s) in the install's log.");
    }
    s
}
