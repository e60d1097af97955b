//! Freshness: a chapter's outputs are reused only when they come from exactly this
//! code and lock file.

use std::fs;
use std::path::{Path, PathBuf};

use xtask::chapters::Chapter;
use xtask::fresh::{stale, write_manifest};

static CHAPTERS: &[Chapter] =
    &[Chapter { id: "ch09", package: "ch09-demo", models: false }];

/// A crate under `chapters-code/` named `name`, with `lib` as its one source file;
/// returns its folder.
fn add_crate(root: &Path, name: &str, lib: &str) -> PathBuf {
    let dir = root.join("chapters-code").join(name);
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(dir.join("Cargo.toml"), format!("[package]\nname = \"{name}\"\n"))
        .unwrap();
    fs::write(dir.join("src/lib.rs"), lib).unwrap();
    dir
}

/// A workspace in a temporary folder with the chapter `ch09-demo`, the shared
/// library and no generated outputs yet.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
    fs::write(root.join("Cargo.lock"), "version = 4\n").unwrap();
    for krate in ["ch09-demo", "transformer"] {
        add_crate(root, krate, "pub fn f() {}\n");
    }
    fs::create_dir_all(root.join("book/generated/ch09")).unwrap();
    dir
}

/// Whether the chapter's outputs count as fresh.
fn fresh(root: &Path) -> bool {
    stale(root, CHAPTERS).unwrap().is_empty()
}

#[test]
fn outputs_without_a_manifest_are_stale() {
    let dir = workspace();
    let s = stale(dir.path(), CHAPTERS).unwrap();
    assert_eq!(s.len(), 1);
    assert!(s[0].reason.contains("missing"), "{}", s[0].reason);
}

#[test]
fn a_manifest_makes_outputs_fresh_until_code_or_lock_file_change() {
    let dir = workspace();
    let root = dir.path();
    let edits: [(&str, &str); 4] = [
        ("chapters-code/ch09-demo/src/lib.rs", "pub fn f() { let _ = 1; }\n"),
        ("chapters-code/transformer/src/lib.rs", "pub fn g() {}\n"),
        ("Cargo.lock", "version = 4\n# a dependency moved\n"),
        ("Cargo.toml", "[workspace]\nmembers = []\n"),
    ];
    for (file, text) in edits {
        write_manifest(root, &CHAPTERS[0]).unwrap();
        assert!(fresh(root), "fresh right after writing the manifest");
        fs::write(root.join(file), text).unwrap();
        let s = stale(root, CHAPTERS).unwrap();
        assert_eq!(s.len(), 1, "editing {file} must make the outputs stale");
        assert!(s[0].reason.contains("changed"), "{}", s[0].reason);
    }
}

#[test]
fn line_endings_do_not_change_the_hash() {
    let dir = workspace();
    let root = dir.path();
    write_manifest(root, &CHAPTERS[0]).unwrap();
    fs::write(root.join("chapters-code/ch09-demo/src/lib.rs"), "pub fn f() {}\r\n")
        .unwrap();
    assert!(fresh(root));
}

#[test]
fn a_chapter_that_reuses_an_earlier_chapters_code_goes_stale_when_that_code_changes()
 {
    let dir = workspace();
    let root = dir.path();
    let earlier = add_crate(root, "ch08-earlier", "pub fn e() {}\n");
    let manifest = "[package]\nname = \"ch09-demo\"\n\n[dependencies]\ntransformer.workspace = true\n\
                    ch08-earlier = { path = \"../ch08-earlier\" }\n\n[dev-dependencies]\n";
    fs::write(root.join("chapters-code/ch09-demo/Cargo.toml"), manifest).unwrap();
    assert_eq!(
        xtask::fresh::local_crates(root, "ch09-demo").unwrap(),
        ["ch09-demo", "transformer", "ch08-earlier"]
    );
    write_manifest(root, &CHAPTERS[0]).unwrap();
    assert!(fresh(root));
    fs::write(earlier.join("src/lib.rs"), "pub fn e() { let _ = 2; }\n").unwrap();
    let s = stale(root, CHAPTERS).unwrap();
    assert_eq!(
        s.len(),
        1,
        "the earlier chapter's code is part of this chapter's sources"
    );
}
