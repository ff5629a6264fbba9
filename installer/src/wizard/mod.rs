//! The interactive installer: a terminal wizard with the Blackfin coLinux kit manual's pages, in its
//! order (welcome, license, the kernel-level component warning, install folder, RAM and
//! image sizes, network, start-menu folder and extra tasks on Windows, summary), then
//! live progress and a finish page.
//!
//! The wizard holds no settings of its own: every choice is an answer (`RAMMB`,
//! `INSTALLDIR`, ...) in its own layer, the last one of the merge order (profile <
//! answer file < `--set` and flags < wizard). After each change the whole plan is
//! resolved again by [`crate::cmd::install::make_plan`], exactly as for `--set`, so a
//! value the plan refuses is explained with the plan's own message and asked again, and
//! what the summary shows is what is installed. The answers the summary saves are
//! [`crate::plan::Plan::answer_file`], which replays the same install with
//! `--unattended`.
//!
//! Every page before the summary has a "< Back" entry (Esc or `q` also go back); Ctrl-C
//! asks once whether to cancel (nothing has been changed before the summary; during the
//! install the run rolls back and exits 1602). Prompts go to standard error: menus and
//! questions through dialoguer, text fields through [`line`] (a shell line's keys), pages
//! broken at spaces to the terminal's width and long texts paged ([`screen`]).
//!
//! # Platform specific behavior
//!
//! The start-menu folder and extra-task pages are shown on Windows only, where a start
//! menu exists; elsewhere those answers keep their defaults.

mod line;
pub mod msi;
mod pages;
pub mod progress;
mod screen;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use console::{Term, style};
use dialoguer::theme::{ColorfulTheme, Theme};
use dialoguer::{Confirm, Select};

use crate::cmd::install::make_plan;
use crate::plan::{Answers, Plan};

/// The origin every wizard answer carries (shown in the plan's rules).
pub const ORIGIN: &str = crate::plan::WIZARD_ORIGIN;

/// The wizard's pages, in the Blackfin coLinux kit manual's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Welcome,
    License,
    KernelWarning,
    Folder,
    Sizes,
    Network,
    User,
    StartMenu,
    Tasks,
    Summary,
}

/// Where a page sends the user.
enum Nav {
    Next,
    Back,
    /// Straight to the summary (an existing install repaired as recorded).
    Summary,
    /// The user cancelled (asked and confirmed).
    Cancel,
    /// Install the plan as shown.
    Install,
}

/// How the wizard ended.
pub enum Outcome {
    /// Install this plan.
    Install(Box<Plan>),
    /// Cancelled by the user; nothing was changed.
    Cancelled,
}

/// The wizard's state: the answers below it, its own layer, and the plan they give.
struct Wizard<'a> {
    term: Term,
    theme: ColorfulTheme,
    /// Profile < answer file < `--set` and flags.
    below: Answers,
    /// The wizard's own answers (origin [`ORIGIN`]).
    mine: Answers,
    plan: Plan,
    interrupt: &'a AtomicBool,
    /// `--save-answers FILE`: the summary's default file.
    save_to: Option<PathBuf>,
    /// Set once the license was accepted on the license page.
    accepted: bool,
}

/// A prompt's answer: a value, Back (Esc), or a cancel the user confirmed.
enum Got<T> {
    Value(T),
    Back,
    Cancel,
}

/// Runs the wizard over the answers given below it and the plan they resolve to.
pub fn run(
    below: Answers,
    plan: Plan,
    interrupt: &AtomicBool,
    save_to: Option<PathBuf>,
) -> Result<Outcome> {
    let mut w = Wizard {
        term: Term::stderr(),
        theme: ColorfulTheme::default(),
        below,
        mine: Answers::default(),
        plan,
        interrupt,
        save_to,
        accepted: false,
    };
    let result = w.pages();
    let _ = w.term.show_cursor();
    result
}

impl Wizard<'_> {
    /// The pages shown for the current plan, in order.
    fn order(&self) -> Vec<Page> {
        let mut v = vec![Page::Welcome, Page::License];
        if self.plan.monitor == crate::profile::Monitor::Colinux {
            v.push(Page::KernelWarning);
        }
        v.extend([Page::Folder, Page::Sizes, Page::Network]);
        if self.plan.users.iter().any(|u| u.asked) {
            v.push(Page::User);
        }
        if cfg!(windows) {
            v.extend([Page::StartMenu, Page::Tasks]);
        }
        v.push(Page::Summary);
        v
    }

    fn pages(&mut self) -> Result<Outcome> {
        let mut page = Page::Welcome;
        loop {
            let nav = match page {
                Page::Welcome => self.welcome()?,
                Page::License => self.license()?,
                Page::KernelWarning => self.kernel_warning()?,
                Page::Folder => self.folder()?,
                Page::Sizes => self.sizes()?,
                Page::Network => self.network()?,
                Page::User => self.user()?,
                Page::StartMenu => self.start_menu()?,
                Page::Tasks => self.tasks()?,
                Page::Summary => self.summary()?,
            };
            // The order may change with an answer (the warning page is coLinux's).
            let order = self.order();
            let at = order.iter().position(|p| *p == page).unwrap_or(0);
            page = match nav {
                Nav::Cancel => return Ok(Outcome::Cancelled),
                Nav::Install => return Ok(Outcome::Install(Box::new(self.plan.clone()))),
                Nav::Summary => Page::Summary,
                Nav::Next => order.get(at + 1).copied().unwrap_or(Page::Summary),
                Nav::Back => order
                    .get(at.saturating_sub(1))
                    .copied()
                    .unwrap_or(Page::Welcome),
            };
        }
    }

    /// All answers: the layers below, then the wizard's.
    fn merged(&self, mine: &Answers) -> Answers {
        let mut all = self.below.clone();
        for (k, a) in &mine.0 {
            all.0.insert(k.clone(), a.clone());
        }
        all
    }

    /// Tries `key = value` as a wizard answer: the whole plan is resolved again; on
    /// success it is kept, otherwise the plan's message is returned and nothing changes.
    fn try_set(&mut self, pairs: &[(&str, &str)]) -> std::result::Result<(), String> {
        let mut trial = self.mine.clone();
        for (key, value) in pairs {
            trial
                .set(key, value, ORIGIN)
                .map_err(|e| format!("{e:#}"))?;
        }
        match make_plan(&self.merged(&trial)) {
            Ok(plan) => {
                self.mine = trial;
                self.plan = plan;
                Ok(())
            }
            Err(e) => Err(format!("{e:#}")),
        }
    }

    /// Forgets wizard answers (a choice that resets them, e.g. another profile).
    fn unset(&mut self, keys: &[&str]) {
        for k in keys {
            self.mine.0.remove(*k);
        }
    }

    /// A page's title and text, on a cleared screen.
    fn header(&self, page: Page, title: &str, body: &str) {
        let order = self.order();
        let n = order.iter().position(|p| *p == page).map_or(0, |i| i + 1);
        let _ = self.term.clear_screen();
        let _ = self.term.write_line(&format!(
            "{}  {}",
            style(format!("colinux-setup {}", env!("CARGO_PKG_VERSION"))).dim(),
            style(format!("step {n} of {}", order.len())).dim()
        ));
        let _ = self
            .term
            .write_line(&format!("{}\n", style(title).bold().underlined()));
        for line in screen::fit(body, screen::size(&self.term).0) {
            let _ = self.term.write_line(&line);
        }
        let _ = self.term.write_line("");
    }

    /// A line of feedback under the page (an error or a note), broken at spaces.
    fn say(&self, text: &str) {
        let width = screen::size(&self.term).0;
        for line in screen::fit(&format!("! {text}"), width) {
            let line = match line.strip_prefix('!') {
                Some(rest) => format!("{}{rest}", style("!").red().bold()),
                None => line,
            };
            let _ = self.term.write_line(&line);
        }
    }

    /// A long text a screen at a time ([`screen::pager`]); Ctrl-C asks as on a page.
    fn page_through(&self, title: &str, text: &str) -> Result<Option<Got<()>>> {
        let r = screen::pager(&self.term, title, text).map_err(dialoguer::Error::IO);
        self.settle(r)
    }

    /// A menu; Esc or `q` is Back.
    fn menu(&self, prompt: &str, items: &[String], default: usize) -> Result<Got<usize>> {
        loop {
            let r = Select::with_theme(&self.theme)
                .with_prompt(prompt)
                .items(items)
                .default(default.min(items.len().saturating_sub(1)))
                .interact_on_opt(&self.term);
            match self.settle(r)? {
                Some(Got::Value(Some(i))) => return Ok(Got::Value(i)),
                Some(Got::Value(None)) | Some(Got::Back) => return Ok(Got::Back),
                Some(Got::Cancel) => return Ok(Got::Cancel),
                None => {}
            }
        }
    }

    /// A line of text; the shown value is kept by Enter, edited as a shell line (Ctrl-U,
    /// Ctrl-W: [`line`]); Esc goes back.
    fn text(&self, prompt: &str, initial: &str) -> Result<Got<String>> {
        loop {
            let r =
                line::read(&self.term, &self.theme, prompt, initial).map_err(dialoguer::Error::IO);
            match self.settle(r)? {
                Some(Got::Value(Some(v))) => return Ok(Got::Value(v.trim().to_owned())),
                Some(Got::Value(None)) | Some(Got::Back) => return Ok(Got::Back),
                Some(Got::Cancel) => return Ok(Got::Cancel),
                None => {}
            }
        }
    }

    /// A password, typed twice and never shown; Ctrl-C asks as on a page.
    fn password(&self, prompt: &str) -> Result<Got<String>> {
        loop {
            let r = dialoguer::Password::with_theme(&self.theme)
                .with_prompt(prompt)
                .with_confirmation("Type it again", "The two did not match; type it again")
                .interact_on(&self.term);
            match self.settle(r)? {
                Some(Got::Value(v)) => return Ok(Got::Value(v)),
                Some(Got::Back) => return Ok(Got::Back),
                Some(Got::Cancel) => return Ok(Got::Cancel),
                None => {}
            }
        }
    }

    /// Turns a prompt's result into an answer: Ctrl-C asks once whether to cancel
    /// (`None`: the user said no, ask the prompt again); a closed input cancels.
    fn settle<T>(&self, r: dialoguer::Result<T>) -> Result<Option<Got<T>>> {
        match r {
            Ok(v) => {
                if self.interrupt.swap(false, Ordering::SeqCst) {
                    return Ok(self.confirm_cancel()?.then_some(Got::Cancel));
                }
                Ok(Some(Got::Value(v)))
            }
            Err(dialoguer::Error::IO(e)) if e.kind() == io::ErrorKind::Interrupted => {
                self.interrupt.store(false, Ordering::SeqCst);
                Ok(self.confirm_cancel()?.then_some(Got::Cancel))
            }
            Err(dialoguer::Error::IO(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // The terminal went away: nothing was changed, so this is a cancel.
                Ok(Some(Got::Cancel))
            }
            Err(dialoguer::Error::IO(e)) => {
                Err(anyhow::Error::new(e).context("reading an answer from the terminal"))
            }
        }
    }

    /// Asks once whether to cancel; a second Ctrl-C or a closed input is a yes.
    fn confirm_cancel(&self) -> Result<bool> {
        let _ = self.term.write_line("");
        let r = yes_no(
            &self.term,
            &self.theme,
            "Cancel the installation? Nothing has been changed yet",
        );
        self.interrupt.store(false, Ordering::SeqCst);
        match r {
            Ok(yes) => Ok(yes),
            Err(dialoguer::Error::IO(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Ok(true)
            }
            Err(dialoguer::Error::IO(e)) => {
                Err(anyhow::Error::new(e).context("reading an answer from the terminal"))
            }
        }
    }
}

/// A yes/no question (no by default) that takes its whole answer, Enter included. With
/// dialoguer's default a `y` or `n` answers at once, and the Enter a user types after it
/// presses the highlighted button of the page behind: "no" to cancelling started the
/// install. No key meant for a question may reach a page.
pub(crate) fn yes_no(term: &Term, theme: &dyn Theme, prompt: &str) -> dialoguer::Result<bool> {
    Confirm::with_theme(theme)
        .with_prompt(prompt)
        .default(false)
        .wait_for_newline(true)
        .interact_on(term)
}

/// MB as the pages show them (`1843 MB (1.8 GB)`).
fn mb(v: u64) -> String {
    if v >= 1024 {
        format!("{v} MB ({:.1} GB)", v as f64 / 1024.0)
    } else {
        format!("{v} MB")
    }
}
