//! Freshness: each chapter's committed outputs record a hash of the sources that
//! produced them, and the test command fails when the sources changed without
//! regenerating the outputs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chapters::Chapter;
use crate::files_under;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub package: String,
    /// SHA-256 over the chapter crate's and the shared library's sources, the
    /// workspace manifest and the lock file.
    pub source_hash: String,
}

/// The crates under `chapters-code/` that `package` depends on, directly or through
/// another of them (a chapter that reuses an earlier chapter's code), `package` and
/// `transformer` included.
pub fn local_crates(root: &Path, package: &str) -> Result<Vec<String>> {
    let mut found = vec![package.to_string(), "transformer".to_string()];
    let mut i = 0;
    while i < found.len() {
        let manifest =
            root.join("chapters-code").join(&found[i]).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let mut section = "";
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                continue;
            }
            if section != "[dependencies]" {
                continue;
            }
            let name = line.split(['=', '.', ' ']).next().unwrap_or("").trim();
            let is_local = !name.is_empty()
                && root
                    .join("chapters-code")
                    .join(name)
                    .join("Cargo.toml")
                    .is_file();
            if is_local && !found.iter().any(|f| f == name) {
                found.push(name.to_string());
            }
        }
        i += 1;
    }
    Ok(found)
}

/// The hash of everything that determines a chapter's outputs: its crate's
/// `Cargo.toml` and `src/`, those of the shared library and of any earlier chapter
/// whose code it reuses, and the workspace's `Cargo.toml` (dependency versions,
/// features, release profile) and `Cargo.lock` (the exact versions).
pub fn source_hash(root: &Path, ch: &Chapter) -> Result<String> {
    let mut files = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    for krate in local_crates(root, ch.package)? {
        let dir = root.join("chapters-code").join(&krate);
        files.push(dir.join("Cargo.toml"));
        files.extend(files_under(&dir.join("src"))?);
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let rel =
            f.strip_prefix(root).unwrap_or(&f).to_string_lossy().replace('\\', "/");
        h.update(rel.as_bytes());
        h.update([0]);
        // Normalise line endings so a checkout with CRLF hashes the same.
        let text = std::fs::read(&f)
            .with_context(|| format!("reading {}", f.display()))?;
        let text: Vec<u8> = text.into_iter().filter(|&b| b != b'\r').collect();
        h.update(&text);
        h.update([0]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

pub fn manifest_path(root: &Path, ch: &Chapter) -> PathBuf {
    root.join("book/generated").join(ch.id).join("manifest.json")
}

/// Record that the outputs of `ch` are fresh.
pub fn write_manifest(root: &Path, ch: &Chapter) -> Result<()> {
    let m = Manifest {
        package: ch.package.to_string(),
        source_hash: source_hash(root, ch)?,
    };
    let path = manifest_path(root, ch);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&m)? + "\n")?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// A chapter whose committed outputs cannot be reused, and why.
#[derive(Debug, PartialEq)]
pub struct Stale {
    pub id: &'static str,
    pub reason: String,
}

/// The chapters whose committed outputs are missing or were generated from other
/// sources.
pub fn stale(root: &Path, chapters: &'static [Chapter]) -> Result<Vec<Stale>> {
    let mut problems = Vec::new();
    for ch in chapters {
        let path = manifest_path(root, ch);
        let reason = match std::fs::read_to_string(&path) {
            Err(_) => {
                Some(format!("no generated outputs: {} is missing", path.display()))
            }
            Ok(text) => {
                let m: Manifest = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid", path.display()))?;
                (m.source_hash != source_hash(root, ch)?)
                    .then(|| "its sources or Cargo.lock changed since its outputs were generated".to_string())
            }
        };
        if let Some(reason) = reason {
            problems.push(Stale { id: ch.id, reason });
        }
    }
    Ok(problems)
}
