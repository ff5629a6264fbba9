//! The wizard's progress page: one bar per install step (bytes while an image is
//! written), the first boot's last console line under its bar, a Ctrl-C that asks once
//! before the install rolls back, and the finish page.
//!
//! The apply engine reports through [`crate::progress::Reporter`]; [`Steps`] is a
//! [`Sink`] behind its `Sink` variant (the engine names no wizard type: imports only
//! point down). [`Steps`] is a shared handle: the reporter holds one clone and
//! [`apply`] another, to mark the last bar failed or cancelled. A step begins with
//! each phase that is not a sub-phase of the current one (`building root.img`, then
//! `root.img: writing data` stays on the same bar).
//!
//! Ctrl-C during the install does not stop it at once: the process's Ctrl-C flag is
//! watched by a thread that pauses the bars and asks; only a yes raises the flag the
//! apply engine polls, which then undoes what the run made and ends with 1602.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use console::{Term, style};
use dialoguer::theme::ColorfulTheme;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{self, ApplyError};
use crate::engine::{Ctx, Summary};
use crate::plan::Plan;
use crate::progress::{Reporter, Sink};
use crate::state::RunLog;

struct Step {
    /// What sub-phases of this step start with (`root.img`).
    key: String,
    bar: ProgressBar,
    bytes: bool,
}

/// One bar per step, on standard error: a handle; its clones share the bars.
#[derive(Clone)]
pub struct Steps(Rc<RefCell<Bars>>);

/// The bars behind [`Steps`].
struct Bars {
    mp: MultiProgress,
    current: Option<Step>,
    /// The first boot's last console line, under its bar.
    line: Option<ProgressBar>,
    /// Finished steps: held, because indicatif wipes dropped bars on the next print.
    done: Vec<ProgressBar>,
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:.bold} {spinner} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn done_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:.bold} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// `text` broken at spaces into lines of at most `width` columns (the bars redraw by
/// counting lines, so nothing they print may wrap on its own).
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let width = width.max(20);
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let len = console::measure_text_width(&line);
        if len > 0 && len + 1 + console::measure_text_width(word) > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_owned();
        } else if len > 0 && line != indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

fn columns() -> usize {
    usize::from(Term::stderr().size().1)
}

impl Default for Steps {
    fn default() -> Self {
        Self::new()
    }
}

impl Steps {
    /// Bars on standard error.
    pub fn new() -> Steps {
        Steps(Rc::new(RefCell::new(Bars {
            mp: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            current: None,
            line: None,
            done: Vec::new(),
        })))
    }

    /// The reporter that draws on these bars.
    pub fn reporter(&self) -> Reporter {
        Reporter::Sink(Box::new(self.clone()))
    }

    /// The current step failed or was cancelled.
    fn fail(&self, word: &str) {
        self.0
            .borrow_mut()
            .close_current(&format!("{}", style(word).red()));
    }
}

impl Sink for Steps {
    fn phase(&mut self, name: &str) {
        self.0.borrow_mut().phase(name);
    }

    fn progress(&mut self, done: u64, total: u64) {
        self.0.borrow_mut().progress(done, total);
    }

    fn status(&mut self, line: &str) {
        self.0.borrow_mut().status(line);
    }

    fn warn(&mut self, msg: &str) {
        self.0.borrow_mut().warn(msg);
    }

    fn finish(&mut self) {
        self.0.borrow_mut().finish();
    }
}

impl Bars {
    fn close_current(&mut self, mark: &str) {
        if let Some(s) = self.current.take() {
            s.bar.set_style(done_style());
            s.bar.finish_with_message(mark.to_owned());
            self.done.push(s.bar);
        }
        if let Some(l) = self.line.take() {
            l.finish();
            self.done.push(l);
        }
    }

    /// A step begins, or the current one enters a sub-phase.
    pub fn phase(&mut self, name: &str) {
        if let Some(s) = &self.current
            && let Some(sub) = name.strip_prefix(&format!("{}: ", s.key))
        {
            s.bar.set_message(sub.to_owned());
            return;
        }
        self.close_current(&format!("{}", style("done").green()));
        let key = name
            .strip_prefix("building ")
            .or_else(|| name.strip_prefix("writing "))
            .unwrap_or(name)
            .to_owned();
        let title: String = name.chars().take(60).collect();
        let bar = self.mp.add(ProgressBar::new_spinner());
        bar.set_style(spinner_style());
        bar.set_prefix(format!("{title:24}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.current = Some(Step {
            key,
            bar,
            bytes: false,
        });
    }

    /// Bytes done of a total, on the current step's bar.
    pub fn progress(&mut self, done: u64, total: u64) {
        if let Some(s) = &mut self.current {
            if !s.bytes {
                s.bytes = true;
                s.bar.set_style(bytes_style());
            }
            s.bar.set_length(total);
            s.bar.set_position(done);
        }
    }

    /// A console line: shown under the current step's bar, replacing the last one.
    pub fn status(&mut self, line: &str) {
        let text = line.strip_prefix("first boot: ").unwrap_or(line).to_owned();
        if self.line.is_none()
            && let Some(s) = &self.current
        {
            let l = self.mp.insert_after(&s.bar, ProgressBar::new_spinner());
            l.set_style(
                ProgressStyle::with_template("    {wide_msg:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            self.line = Some(l);
        }
        if let Some(l) = &self.line {
            l.set_message(text);
        }
    }

    /// A warning above the bars.
    pub fn warn(&mut self, msg: &str) {
        let text = wrap(
            &format!("warning: {msg}"),
            columns().saturating_sub(1),
            "  ",
        );
        let text = text.replacen(
            "warning:",
            &style("warning:").yellow().bold().to_string(),
            1,
        );
        let _ = self.mp.println(text);
    }

    /// The last step ends.
    pub fn finish(&mut self) {
        self.close_current(&format!("{}", style("done").green()));
    }
}

/// Installs `plan` with the wizard's progress page: Ctrl-C asks once, then the apply
/// rolls back (1602). `interrupt` is the process's Ctrl-C flag.
pub fn apply(
    plan: &Plan,
    rep: &mut Reporter,
    steps: Option<&Steps>,
    log: &mut RunLog,
    interrupt: &AtomicBool,
) -> Result<Summary, ApplyError> {
    let term = Term::stderr();
    let _ = term.clear_screen();
    let _ = term.write_line(&format!(
        "{}\n",
        style(format!("Installing into {}", plan.prefix.display()))
            .bold()
            .underlined()
    ));
    // The warnings shown before the screen was cleared, again above the bars.
    for w in &plan.warnings {
        rep.warn(w);
    }
    let mp = steps.map(|s| s.0.borrow().mp.clone());
    let confirmed = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    // A Ctrl-C given before the install started (on the summary) is not this run's.
    interrupt.store(false, Ordering::SeqCst);
    let result = std::thread::scope(|s| {
        s.spawn(|| watch(interrupt, &confirmed, &finished, mp.as_ref()));
        let r = apply::install(
            plan,
            &mut Ctx {
                rep: &mut *rep,
                log,
                interrupt: &confirmed,
            },
        );
        finished.store(true, Ordering::SeqCst);
        r
    });
    if let Some(s) = steps {
        match &result {
            Ok(_) => s.0.borrow_mut().finish(),
            Err(ApplyError::Cancelled(_)) => s.fail("cancelled; undone"),
            Err(_) => s.fail("failed; undone"),
        }
    }
    result
}

/// Waits for Ctrl-C and asks once whether to cancel; a yes raises `confirmed`.
fn watch(
    interrupt: &AtomicBool,
    confirmed: &AtomicBool,
    finished: &AtomicBool,
    mp: Option<&MultiProgress>,
) {
    while !finished.load(Ordering::SeqCst) {
        if interrupt.swap(false, Ordering::SeqCst) {
            let ask = || {
                let r = super::yes_no(
                    &Term::stderr(),
                    &ColorfulTheme::default(),
                    "Cancel the installation and undo what it made?",
                );
                // A second Ctrl-C, or a terminal that went away, is a yes.
                r.unwrap_or(true)
            };
            let yes = match mp {
                Some(mp) => mp.suspend(ask),
                None => ask(),
            };
            if yes {
                confirmed.store(true, Ordering::SeqCst);
                return;
            }
            interrupt.store(false, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The finish page: how to start the machine and where the log is.
pub fn finish(plan: &Plan, summary: &Summary, log: &std::path::Path) {
    let term = Term::stderr();
    let p = plan.prefix.display();
    let mut s = format!(
        "\n{}\n\nThe {} machine is installed in {p} for the {} monitor.\n",
        style("Finished").bold().underlined(),
        plan.profile,
        plan.monitor.as_str()
    );
    if summary.changed.is_empty() {
        s.push_str("It was already installed as planned: nothing needed to change.\n");
    } else {
        s.push_str(&format!("Made: {}.\n", summary.changed.join(", ")));
    }
    if !summary.kept.is_empty() {
        s.push_str(&format!(
            "Kept as they were: {}.\n",
            summary.kept.join(", ")
        ));
    }
    s.push_str(&format!(
        "First boot: {}.\n\nStart it:\n",
        crate::finish::first_boot_words(plan, summary.first_boot)
    ));
    for line in crate::finish::start_lines(plan) {
        s.push_str(&format!("  {line}\n"));
    }
    if let Some(line) = crate::finish::login_line(plan) {
        s.push_str(&format!("  {line}\n"));
    }
    s.push_str(&format!(
        "\nStatus: colinux-setup status --prefix {p}\nLog of this install: {}\n",
        log.display()
    ));
    for line in super::screen::fit(&s, super::screen::size(&term).0) {
        let _ = term.write_line(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn warnings_are_wrapped_at_spaces_with_an_indent() {
        let w = wrap("warning: one two three four five six", 20, "  ");
        assert_eq!(w, "warning: one two\n  three four five\n  six");
        for line in w.lines() {
            assert!(line.len() <= 20, "{line}");
        }
        // A word longer than the width stays whole on its own line.
        assert_eq!(
            wrap("a averyveryverylongwordthatdoesnotfit b", 20, " "),
            "a\n averyveryverylongwordthatdoesnotfit\n b"
        );
    }
}
