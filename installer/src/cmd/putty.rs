//! `putty install | remove | show`: the PuTTY saved session of an installed machine, for
//! the user who runs the command, on its own (an install saves one with the answer
//! PUTTYSESSION, and then uninstall removes it: see [`crate::putty::step`]). See
//! [`crate::putty`] for where the address comes from and where PuTTY keeps sessions.
//!
//! Exit codes: 0; 1 (`show`: no such session); 2 (usage); 1603 (no way to reach the
//! guest's ssh port, no machine, or the session could not be written).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::exit::Outcome;
use crate::putty;

/// `putty` subcommands.
#[derive(Debug, Subcommand)]
pub enum PuttyCommand {
    /// Save (or replace) the session that opens ssh to the machine.
    Install(PuttyInstallArgs),
    /// Remove the session.
    Remove(PuttyArgs),
    /// Show the stored session (exit 1 when there is none).
    Show(PuttyArgs),
}

/// Which session.
#[derive(Debug, Args)]
pub struct PuttyArgs {
    /// The session's name as PuTTY lists it.
    #[arg(long, value_name = "NAME", default_value = putty::DEFAULT_NAME)]
    pub name: String,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `putty install`.
#[derive(Debug, Args)]
pub struct PuttyInstallArgs {
    #[command(flatten)]
    pub session: PuttyArgs,
    /// The installed machine (default: the default profile's folder).
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// Login name (default: the machine's first user besides root, else none).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Say what would be saved; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The machine's first user with a uid other than 0, from the profile it was installed
/// with.
fn first_user(prefix: &std::path::Path) -> Option<String> {
    let st = crate::state::InstallState::read(prefix).ok().flatten()?;
    let loaded = crate::profile::load(&st.profile).ok()?;
    loaded
        .profile
        .users
        .iter()
        .find(|u| u.uid != 0)
        .map(|u| u.name.clone())
}

/// Runs a `putty` subcommand.
pub fn run(cmd: PuttyCommand) -> Outcome {
    match cmd {
        PuttyCommand::Install(a) => {
            let prefix = super::default_prefix(a.prefix);
            let user = a.user.or_else(|| first_user(&prefix));
            let s = match putty::for_machine(&prefix, &a.session.name, user) {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(e),
            };
            let store = match putty::Store::current() {
                Ok(st) => st,
                Err(e) => return Outcome::Failed(e),
            };
            let place = store.location(&s.name);
            if !a.dry_run
                && let Err(e) = store.save(&s)
            {
                return Outcome::Failed(e.context(format!("saving the PuTTY session {}", s.name)));
            }
            if a.session.json {
                crate::out::outln!(
                    "{}",
                    json!({"event": "done", "session": s, "stored": place, "dry_run": a.dry_run})
                );
            } else {
                let who = s
                    .user
                    .as_deref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default();
                let verb = if a.dry_run { "would save" } else { "saved" };
                crate::out::outln!(
                    "{verb} PuTTY session \"{}\": ssh {who}{} port {} ({place}; from {})",
                    s.name,
                    s.host,
                    s.port,
                    s.from
                );
                if a.dry_run {
                    crate::out::outln!("dry run: nothing was changed");
                }
            }
            Outcome::Done
        }
        PuttyCommand::Remove(a) => {
            match putty::Store::current().and_then(|st| st.remove(&a.name)) {
                Ok(removed) => {
                    if a.json {
                        crate::out::outln!(
                            "{}",
                            json!({"event": "done", "session": a.name, "removed": removed})
                        );
                    } else if removed {
                        crate::out::outln!("removed PuTTY session \"{}\"", a.name);
                    } else {
                        crate::out::outln!("no PuTTY session \"{}\"; nothing to do", a.name);
                    }
                    Outcome::Done
                }
                Err(e) => Outcome::Failed(e),
            }
        }
        PuttyCommand::Show(a) => match putty::Store::current().and_then(|st| st.read(&a.name)) {
            Ok(Some(settings)) => {
                if a.json {
                    let map: serde_json::Map<String, serde_json::Value> = settings
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect();
                    crate::out::outln!("{}", json!({"session": a.name, "settings": map}));
                } else {
                    crate::out::outln!("PuTTY session \"{}\":", a.name);
                    for (k, v) in settings {
                        crate::out::outln!("  {k}={v}");
                    }
                }
                Outcome::Done
            }
            Ok(None) => {
                if a.json {
                    crate::out::outln!("{}", json!({"session": a.name, "settings": null}));
                } else {
                    crate::out::outln!("no PuTTY session \"{}\"", a.name);
                }
                Outcome::CheckFailed
            }
            Err(e) => Outcome::Failed(e),
        },
    }
}
