//! A guest's whole process group dies with the run that started it.
//!
//! The monitor itself gets a parent-death signal (`monitor::run`), but its own children
//! do not: User-mode Linux's helper processes and the guest's user processes (stopped
//! under UML's ptrace) live on, re-parented to init, when UML is killed (measured here:
//! five of them after a `kill -9` of `boot`). So each run starts a reaper beside the
//! guest: `colinux-setup reap-guest PGID`, a process of its own (its own process group,
//! so a Ctrl-C on the terminal does not reach it) that holds the read end of a pipe
//! whose write end only the run holds. The run ends in one of two ways:
//!
//! - it ends normally and says so ([`Reaper::release`]: one byte, then the pipe is
//!   closed): the reaper exits and touches nothing;
//! - it ends any other way (SIGKILL, a crash, an early return): the pipe closes without
//!   that byte, and the reaper kills the process group.
//!
//! # Platform specific behavior
//!
//! Unix only; elsewhere [`Reaper::watch`] does nothing (the coLinux daemon on Windows is
//! one process with its driver).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

use crate::exit::Outcome;

/// What the run writes before it closes the pipe when it ended normally.
const RELEASED: u8 = b'x';

/// The reaper of one guest.
pub struct Reaper {
    pipe: Option<std::io::PipeWriter>,
    child: Option<Child>,
}

impl Reaper {
    /// Starts the reaper of process group `pgid`.
    pub fn watch(pgid: u32) -> std::io::Result<Reaper> {
        if !cfg!(unix) {
            return Ok(Reaper {
                pipe: None,
                child: None,
            });
        }
        let (reader, writer) = std::io::pipe()?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("reap-guest")
            .arg(pgid.to_string())
            .stdin(reader)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt as _;
            cmd.process_group(0);
        }
        let child = cmd.spawn()?;
        // Our copy of the read end goes with `cmd`: the reaper holds the only one.
        drop(cmd);
        Ok(Reaper {
            pipe: Some(writer),
            child: Some(child),
        })
    }

    /// The run ended normally: the reaper leaves the group alone and exits.
    pub fn release(mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(&[RELEASED]);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Not released: closing the pipe tells the reaper to kill the group.
        drop(self.pipe.take());
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

/// The reaper's side (`colinux-setup reap-guest PGID`): waits for the run to end, and
/// kills the group unless the run released it.
pub fn serve(pgid: u32) -> Outcome {
    let mut byte = [0u8; 1];
    let released = matches!(std::io::stdin().read(&mut byte), Ok(1) if byte[0] == RELEASED);
    #[cfg(unix)]
    if !released
        && let Some(pid) = i32::try_from(pgid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = (pgid, released);
    Outcome::Done
}
