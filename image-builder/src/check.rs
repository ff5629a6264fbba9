//! `check`: a structural check of an image, independent of the writer's own state.
//! (being written)

use std::path::Path;

use crate::error::Error;

/// What [`check`] found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// The kind of image found.
    pub kind: Option<crate::inspect::ImageKind>,
    /// Problems, one line each; empty when the image is sound.
    pub problems: Vec<String>,
}

/// Checks the image at `path`.
pub fn check(path: &Path) -> Result<CheckReport, Error> {
    let info = crate::inspect::inspect(path)?;
    Ok(CheckReport {
        kind: Some(info.kind),
        problems: Vec::new(),
    })
}
