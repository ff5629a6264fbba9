//! The installer's layers, enforced: imports only point down.
//!
//! From the top: the commands and the wizard (`cmd/`, `wizard/`); then the install
//! engine (`apply.rs`, `plan.rs`, `rebuild.rs`) and one module per step (`driver/`,
//! `service/`, `putty/`, `kit_files.rs`, `firstboot.rs`, ...); then host facts,
//! profiles, progress and state. A module below the commands that named a command or
//! the wizard would make the engine depend on argument parsing and rendering, and
//! would let a change to one command break the install.
//!
//! The test reads every `.rs` file under `src/` outside `cmd/` and `wizard/` (and
//! except `main.rs`, the binary root that parses and calls the command layer's `run`)
//! and fails naming the file and line of any path into `cmd` or `wizard`, comments
//! included: a doc link to a command is an arrow back up too. It is a test rather
//! than a lint because neither rustc nor clippy knows about layers inside one crate.
//!
//! A second test holds the engine (`engine/`) and `state.rs` to naming no step and not
//! the install sequence above them: the steps reach them through `HostStep` and their
//! records, so adding a host object touches neither.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The paths a module below the commands must not name. Built with `concat!` so
    /// that this file, which is scanned too, does not match itself.
    const FORBIDDEN: [&str; 4] = [
        concat!("crate", "::", "cmd"),
        concat!("super", "::", "cmd"),
        concat!("crate", "::", "wizard"),
        concat!("super", "::", "wizard"),
    ];

    /// Either name followed by `::` as a path segment of its own (not as the tail of a
    /// longer name), however the path starts: a grouped `use` of the module brings such
    /// paths into the module's lines.
    const SEGMENTS: [&str; 2] = [concat!("cmd", "::"), concat!("wizard", "::")];

    /// The upward references in `text`, as (line number, line).
    fn violations(text: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let upward = FORBIDDEN.iter().any(|f| line.contains(f))
                || SEGMENTS.iter().any(|s| {
                    line.match_indices(s).any(|(at, _)| {
                        !line[..at]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_alphanumeric() || c == '_')
                    })
                })
                || grouped_import(line);
            if upward {
                out.push((n + 1, line.trim().to_owned()));
            }
        }
        out
    }

    /// A grouped `use` from the crate root that lists either module, on one line.
    fn grouped_import(line: &str) -> bool {
        let Some(rest) = line.split_once(concat!("crate", "::", "{")).map(|(_, r)| r) else {
            return false;
        };
        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == "cmd" || w == "wizard")
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let path = e.expect("a directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn the_checker_finds_arrows_back_up() {
        let bad = [
            concat!("    crate", "::", "cmd", "::driver::host_for(false)"),
            concat!("use super", "::", "cmd", "::service;"),
            concat!("    Steps(crate", "::", "wizard", "::progress::Steps),"),
            concat!("/// see [`", "cmd", "::", "msi`]"),
            concat!("use crate", "::", "{apply, ", "cmd", "};"),
        ];
        for line in bad {
            assert_eq!(violations(line).len(), 1, "{line}");
        }
        let good = [
            "let mut cmd = Command::new(program);",
            "cmd.arg(\"reap-guest\");",
            "use crate::driver::host::host_for;",
            "// the wizard's answers",
            "use crate::{apply, plan};",
            concat!("sub", "cmd", "::", "run()"),
        ];
        for line in good {
            assert!(violations(line).is_empty(), "{line}");
        }
    }

    #[test]
    fn modules_below_the_commands_import_only_down() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        let mut found = Vec::new();
        for file in &files {
            let rel = file.strip_prefix(&src).expect("under src");
            let top = rel.components().next().map(|c| c.as_os_str().to_owned());
            if top.as_deref().is_some_and(|t| t == "cmd" || t == "wizard")
                || rel == Path::new("main.rs")
            {
                continue;
            }
            let text =
                std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for (line, what) in violations(&text) {
                found.push(format!("src/{}:{line}: {what}", rel.display()));
            }
        }
        assert!(
            files.len() > 20,
            "only {} files found under {}",
            files.len(),
            src.display()
        );
        assert!(
            found.is_empty(),
            "modules below the commands and the wizard name them (imports must point down; move the code down instead):\n{}",
            found.join("\n")
        );
    }

    /// What the engine and the state must not name: the install sequence and the steps.
    const STEPS: [&str; 8] = [
        concat!("crate", "::", "apply"),
        concat!("crate", "::", "tap"),
        concat!("crate", "::", "driver"),
        concat!("crate", "::", "service"),
        concat!("crate", "::", "putty"),
        concat!("crate", "::", "kit_files"),
        concat!("crate", "::", "firstboot"),
        concat!("crate", "::", "rebuild"),
    ];

    /// The lines of `text` that name a step or the sequence, outside comments (a module
    /// doc may say what sits above).
    fn step_names(text: &str) -> Vec<(usize, String)> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//"))
            .filter(|(_, l)| {
                STEPS.iter().any(|s| {
                    l.match_indices(s).any(|(at, _)| {
                        !l[at + s.len()..]
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_alphanumeric() || c == '_')
                    })
                })
            })
            .map(|(n, l)| (n + 1, l.trim().to_owned()))
            .collect()
    }

    #[test]
    fn the_engine_and_the_state_name_no_step() {
        let bad = concat!("    let r = crate", "::", "tap", "::record(st)?;");
        assert_eq!(step_names(bad).len(), 1);
        assert!(step_names(concat!("use crate", "::", "tapestry;")).is_empty());
        assert!(step_names(concat!("//! see crate", "::", "tap")).is_empty());
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.join("state.rs")];
        rust_files(&src.join("engine"), &mut files);
        assert!(files.len() >= 4, "{files:?}");
        let mut found = Vec::new();
        for file in &files {
            let text =
                std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for (line, what) in step_names(&text) {
                found.push(format!("{}:{line}: {what}", file.display()));
            }
        }
        assert!(
            found.is_empty(),
            "the engine and the state name a step (give the step a HostStep method instead):\n{}",
            found.join("\n")
        );
    }
}
