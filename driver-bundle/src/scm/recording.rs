//! The JSON state file of the recording hosts (the driver's,
//! [`crate::host::recording::RecordingHost`], and the installer's machine-service
//! host): read when the host is made (a missing file is an empty host), written after
//! each action, and not written at all once [`StateFile::detached`] (a `--dry-run` on a
//! recorded host reads the state and changes nothing). Both hosts report a state file
//! they cannot use the same way, as [`ScmError::StateFile`].

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ScmError;

/// Where a recording host keeps its state, if anywhere.
#[derive(Debug, Clone, Default)]
pub struct StateFile {
    path: Option<PathBuf>,
}

impl StateFile {
    /// No file: the state lives in memory only (a dry run).
    pub fn memory() -> StateFile {
        StateFile { path: None }
    }

    /// The state kept in `path`, and what it holds now (the default when it is missing).
    pub fn open<T: DeserializeOwned + Default>(path: &Path) -> Result<(StateFile, T), ScmError> {
        let failed = |detail: String| ScmError::StateFile {
            path: path.to_path_buf(),
            what: "read",
            detail,
        };
        let state = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| failed(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::default(),
            Err(e) => return Err(failed(e.to_string())),
        };
        Ok((
            StateFile {
                path: Some(path.to_path_buf()),
            },
            state,
        ))
    }

    /// The same state, no longer written back.
    pub fn detached(self) -> StateFile {
        StateFile { path: None }
    }

    /// Writes `state` to the file, if there is one.
    pub fn save<T: Serialize>(&self, state: &T) -> Result<(), ScmError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let failed = |detail: String| ScmError::StateFile {
            path: path.clone(),
            what: "written",
            detail,
        };
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| failed(e.to_string()))?;
        std::fs::write(path, bytes).map_err(|e| failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_empty_a_bad_one_is_named_and_a_detached_one_is_not_written() {
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("host.json");
        let (file, v): (StateFile, Vec<u32>) = StateFile::open(&f).expect("missing");
        assert!(v.is_empty());
        file.save(&vec![1u32]).expect("save");
        let (file, v): (StateFile, Vec<u32>) = StateFile::open(&f).expect("read");
        assert_eq!(v, [1]);
        file.detached().save(&vec![2u32]).expect("detached");
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "[\n  1\n]");
        std::fs::write(&f, "{").expect("write");
        let e = StateFile::open::<Vec<u32>>(&f).expect_err("bad json");
        assert!(matches!(e, ScmError::StateFile { what: "read", .. }), "{e}");
        assert!(e.to_string().contains("host.json"), "{e}");
    }
}
