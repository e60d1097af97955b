//! Developer commands for *Decoder-Only on Trial*, as a library so they can be
//! tested.

pub mod bookcheck;
pub mod captions;
pub mod chapters;
pub mod figures;
pub mod fresh;
pub mod glossary;
pub mod math;
pub mod references;
pub mod serve;
pub mod tables;
pub mod values;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Every file under `dir`, at any depth, in no particular order.
pub(crate) fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(files_under(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}
