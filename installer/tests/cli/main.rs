//! The installer's end-to-end tests, one binary (as ripgrep's `tests/`): each module is
//! one command's suite (`boot_cli`, `install_cli`, ...) or a Windows client's (`msi`,
//! `msi_ca`, `service_wine`), and all share [`common`] (the binary, exit codes, the
//! monitor this host offers, independent readers) and driver-bundle's test PKI
//! ([`support`]). One binary links the shared helpers once instead of once per suite;
//! run one suite with `cargo test -p colinux-setup --test cli boot_cli::`.

mod common;
#[path = "../../../driver-bundle/tests/support/mod.rs"]
mod support;

mod boot_cli;
mod config_cli;
mod driver_cli;
mod embedded_dev;
mod images_cli;
mod install_cli;
mod kit_cli;
mod kit_files_cli;
mod kit_url;
mod life_cli;
mod msi;
mod msi_actions_cli;
mod msi_ca;
mod msi_ui;
mod probe_cli;
mod putty_cli;
mod rebuild_cli;
mod service_cli;
mod service_wine;
mod signals_cli;
mod tap_cli;
mod untrusted_cli;
mod wizard_cli;
mod wsl_cli;
