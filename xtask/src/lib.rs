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

use std::path::PathBuf;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
