//! The coLinux driver on a Linux host: the `colinux` kernel module.
//!
//! coLinux's Linux port (colinux-spec.md §5) is a module loaded with `insmod colinux.ko`;
//! it makes `/proc/colinux` and no device node, and only builds for 32-bit 2.6 host
//! kernels. Loading and unloading go through `insmod` and `rmmod` (kmod), which report
//! the kernel's reason in words; status reads `/proc/modules`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{DriverHost, Installed, Removed, Status};
use crate::scm::{Action, ScmError, Subject};

/// The module on the running kernel.
#[derive(Debug, Clone)]
pub struct ModuleHost {
    subject: Subject,
    proc_modules: PathBuf,
    insmod: PathBuf,
    rmmod: PathBuf,
}

impl ModuleHost {
    /// The module `name` on this kernel.
    pub fn new(name: &str) -> ModuleHost {
        ModuleHost {
            subject: Subject::module(name),
            proc_modules: PathBuf::from("/proc/modules"),
            insmod: PathBuf::from("insmod"),
            rmmod: PathBuf::from("rmmod"),
        }
    }

    /// The same, reading another `/proc/modules` and running other programs (tests).
    pub fn with_paths(name: &str, proc_modules: &Path, insmod: &Path, rmmod: &Path) -> ModuleHost {
        ModuleHost {
            subject: Subject::module(name),
            proc_modules: proc_modules.to_path_buf(),
            insmod: insmod.to_path_buf(),
            rmmod: rmmod.to_path_buf(),
        }
    }

    /// The module's `/proc/modules` state (`Live`, `Loading`, `Unloading`), if loaded.
    fn loaded(&self, action: Action) -> Result<Option<String>, ScmError> {
        let text = match std::fs::read_to_string(&self.proc_modules) {
            Ok(t) => t,
            // A kernel without module support has no /proc/modules: nothing is loaded.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ScmError::Io {
                    action,
                    subject: self.subject.clone(),
                    path: self.proc_modules.clone(),
                    source,
                });
            }
        };
        Ok(parse_proc_modules(&text, &self.subject.name))
    }

    fn run(
        &self,
        program: &Path,
        args: &[&std::ffi::OsStr],
        action: Action,
    ) -> Result<(), ScmError> {
        let failed = |detail: String| ScmError::Program {
            action,
            subject: self.subject.clone(),
            detail,
        };
        let o = Command::new(program).args(args).output().map_err(|e| {
            failed(format!(
                "cannot run {}: {e}; install it (Debian: apt-get install kmod)",
                program.display()
            ))
        })?;
        if o.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&o.stderr).trim().to_owned();
        if err.contains("Operation not permitted") || err.contains("Permission denied") {
            return Err(ScmError::AccessDenied {
                action,
                subject: self.subject.clone(),
            });
        }
        Err(failed(format!(
            "{} {} exited with {}: {err}",
            program.display(),
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            o.status
        )))
    }
}

/// The state column of `name`'s line in `/proc/modules` text
/// (`name size refcount deps state address`).
pub fn parse_proc_modules(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some(name)).then(|| f.nth(3).unwrap_or("Live").to_owned())
    })
}

impl DriverHost for ModuleHost {
    fn kind(&self) -> &'static str {
        "linux-module"
    }

    fn name(&self) -> &str {
        &self.subject.name
    }

    fn install(&mut self, path: &Path, start: bool) -> Result<Installed, ScmError> {
        if self.loaded(Action::Start)?.is_some() {
            return Ok(Installed::AlreadyInstalled);
        }
        // A module is either loaded or not: there is no registration without loading.
        let _ = start;
        self.run(&self.insmod, &[path.as_os_str()], Action::Start)?;
        Ok(Installed::Created)
    }

    fn remove(&mut self) -> Result<Removed, ScmError> {
        if self.loaded(Action::Stop)?.is_none() {
            return Ok(Removed::NotInstalled);
        }
        let name = self.subject.name.clone();
        self.run(&self.rmmod, &[std::ffi::OsStr::new(&name)], Action::Stop)?;
        Ok(Removed::Removed)
    }

    fn status(&mut self) -> Result<Status, ScmError> {
        Ok(match self.loaded(Action::Query)? {
            None => Status::absent(&self.subject.name),
            Some(state) => Status {
                name: self.subject.name.clone(),
                installed: true,
                state: state.to_lowercase(),
                path: None,
                marked_for_deletion: false,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_modules_lines() {
        let text = "ext4 1073152 2 - Live 0x0000000000000000\n\
                    colinux 90112 0 - Live 0xffffffffc0a00000 (O)\n\
                    colinuxx 1 0 - Unloading 0x0\n";
        assert_eq!(parse_proc_modules(text, "colinux").as_deref(), Some("Live"));
        assert_eq!(
            parse_proc_modules(text, "colinuxx").as_deref(),
            Some("Unloading")
        );
        assert_eq!(parse_proc_modules(text, "colin"), None);
        assert_eq!(parse_proc_modules("", "colinux"), None);
    }
}
