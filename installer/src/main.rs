//! `colinux-setup`: the command-line entry point.
//!
//! Parses the command line, runs one command and maps its outcome to an exit code in
//! exactly one place (see [`exit`]). Every command lives in its own module under
//! [`cmd`]; this file is only glue.

mod answer_keys;
mod apply;
mod cmd;
mod download;
mod driver;
mod elf;
mod engine;
mod exit;
mod facts;
mod finish;
mod firstboot;
mod guest;
mod host;
mod input;
mod keys;
mod kit;
mod kit_files;
mod layers;
mod machine;
mod machines;
mod monitor;
mod netfacts;
mod out;
mod plan;
mod profile;
mod progress;
mod putty;
mod rebuild;
mod service;
mod state;
mod tap;
mod wizard;
mod wsl;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cmd::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version on stdout and exits 0; usage errors exit 2.
            let code = if err.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let interrupt = progress::install_interrupt_handler();
    let outcome = cmd::run(cli, &interrupt);
    ExitCode::from(exit::report(outcome))
}
