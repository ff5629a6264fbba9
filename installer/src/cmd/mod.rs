//! One module per command; [`run`] dispatches.
//!
//! Each command is a function of its typed arguments and the interrupt flag, and returns
//! an [`Outcome`]; none of them exits the process.

pub mod config;
pub mod images;

use std::sync::atomic::AtomicBool;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::exit::Outcome;

/// Runs the command the user asked for.
pub fn run(cli: Cli, interrupt: &AtomicBool) -> Outcome {
    match cli.command {
        Command::Images(cmd) => images::run(cmd, interrupt),
        Command::Config(ConfigCommand::Check { files }) => config::check(&files),
        Command::Config(ConfigCommand::Show { file, prefix, json }) => {
            config::show(file.as_deref(), prefix.as_deref(), json)
        }
    }
}
