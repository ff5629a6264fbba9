//! One module per command; [`run`] dispatches.
//!
//! Each command is a function of its typed arguments and the interrupt flag, and returns
//! an [`Outcome`]; none of them exits the process. Without a command, `install` runs.

pub mod boot;
pub mod cli;
pub mod config;
pub mod driver;
pub mod facts;
pub mod first_boot;
pub mod images;
pub mod install;
pub mod kit;
pub mod life;
pub mod msi;
pub mod putty;
pub mod rebuild;
pub mod service;
pub mod status;
pub mod tap;
pub mod uninstall;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::exit::Outcome;
use cli::{Cli, Command, ConfigCommand};

/// The install folder of `status` and `uninstall` when --prefix is not given: the
/// default profile's default folder.
pub(crate) fn default_prefix(p: Option<PathBuf>) -> PathBuf {
    match p {
        Some(p) => std::path::absolute(&p).unwrap_or(p),
        None => crate::profile::load(crate::profile::DEFAULT)
            .map(|l| crate::plan::default_prefix(&l.profile))
            .unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// Runs the command the user asked for.
pub fn run(cli: Cli, interrupt: &AtomicBool) -> Outcome {
    match cli.command {
        None => install::run(cli.install, interrupt),
        Some(Command::Install(a)) => install::run(a, interrupt),
        Some(Command::Uninstall(a)) => uninstall::run(
            &default_prefix(a.prefix),
            if a.purge {
                crate::apply::Purge::All
            } else {
                crate::apply::Purge::No
            },
            a.json,
            a.log.as_deref(),
        ),
        Some(Command::Boot(a)) => boot::run(
            &default_prefix(a.prefix),
            a.monitor.as_deref(),
            a.timeout,
            a.first_boot,
            interrupt,
        ),
        Some(Command::Status(a)) => status::run(&default_prefix(a.prefix), a.json),
        Some(Command::Facts(a)) => facts::run(&a),
        Some(Command::Images(cmd)) => images::run(cmd, interrupt),
        Some(Command::Config(ConfigCommand::Check { files, monitor })) => {
            config::check(&files, monitor.as_deref())
        }
        Some(Command::Config(ConfigCommand::Show { file, prefix, json })) => {
            config::show(file.as_deref(), prefix.as_deref(), json)
        }
        Some(Command::Kit(cmd)) => kit::run(cmd),
        Some(Command::Tap(cmd)) => tap::run(cmd),
        Some(Command::Driver(cmd)) => driver::run(cmd),
        Some(Command::Service(cmd)) => service::run(cmd),
        Some(Command::Putty(cmd)) => putty::run(cmd),
        Some(Command::Msi(cmd)) => msi::run(cmd, interrupt),
        Some(Command::ReapGuest { pgid }) => crate::monitor::reaper::serve(pgid),
        Some(Command::List(a)) => life::list(a.json),
        Some(Command::Start(a)) => {
            life::start(&default_prefix(a.prefix), a.timeout, a.json, interrupt)
        }
        Some(Command::Stop(a)) => {
            life::stop(&default_prefix(a.prefix), a.timeout, a.json, interrupt)
        }
        Some(Command::Console(a)) => life::console(&default_prefix(a.prefix)),
        Some(Command::Shell(a)) => {
            life::shell(&default_prefix(a.prefix), &a.command, a.timeout, interrupt)
        }
        Some(Command::RunMachine(a)) => life::run_machine(&default_prefix(a.prefix), interrupt),
    }
}

/// What a failed install or first boot ends with, and its words for the log (the
/// error's whole chain): a cancel is 1602, a busy machine 1618, anything else 1603.
pub(crate) fn apply_outcome(e: crate::apply::ApplyError) -> (Outcome, String) {
    use crate::apply::ApplyError;
    match e {
        ApplyError::Cancelled(e) => {
            let m = format!("{e:#}");
            (Outcome::Cancelled(e), m)
        }
        ApplyError::Busy(e) => {
            let m = format!("{e:#}");
            (Outcome::Busy(e), m)
        }
        ApplyError::Failed(e) => {
            let m = format!("{e:#}");
            (Outcome::Failed(e), m)
        }
    }
}
