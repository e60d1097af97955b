//! Output files, always written atomically: a temporary file beside the target,
//! then a rename, so an interrupted run never leaves a half-written result behind.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Write `bytes` to `path` via a temporary file in the same directory, persisted
/// over `path` only once it is complete: an interrupted write never leaves a
/// half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let mut f =
        tempfile::NamedTempFile::new_in(dir).map_err(Error::io("writing", path))?;
    f.write_all(bytes)
        .and_then(|()| f.as_file().sync_all())
        .map_err(Error::io("writing", path))?;
    f.persist(path).map_err(|e| Error::io("writing", path)(e.error))?;
    Ok(())
}

/// A value as the book's JSON files hold it: pretty-printed, with a trailing
/// newline.
pub fn json_text<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// Write a value as pretty JSON (with a trailing newline), atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, json_text(value)?.as_bytes())
}

/// Write text, atomically.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text.as_bytes())
}

/// An integer with thousands separators, for tables: `536064` → `"536,064"`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json(&p, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\n  \"a\": 2\n}\n");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_failed_write_reports_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let err = write_text(&blocker.join("child.txt"), "y").unwrap_err();
        assert!(
            format!("{err:#}").contains("child.txt")
                || format!("{err:#}").contains("file"),
            "{err:#}"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(536_064), "536,064");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
