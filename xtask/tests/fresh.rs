//! Freshness: a chapter's outputs are reused only when they come from exactly this
//! code and lock file.

use std::fs;
use std::path::Path;

use xtask::chapters::Chapter;
use xtask::fresh::{stale, write_manifest};

static CHAPTERS: &[Chapter] =
    &[Chapter { id: "ch09", package: "ch09-demo", models: false }];

fn workspace(root: &Path) {
    fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
    fs::write(root.join("Cargo.lock"), "version = 4\n").unwrap();
    for krate in ["ch09-demo", "transformer"] {
        let dir = root.join("chapters-code").join(krate);
        fs::create_dir_all(dir.join("src")).unwrap();
        fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{krate}\"\n"),
        )
        .unwrap();
        fs::write(dir.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    }
    fs::create_dir_all(root.join("book/generated/ch09")).unwrap();
}

#[test]
fn outputs_without_a_manifest_are_stale() {
    let dir = tempfile::tempdir().unwrap();
    workspace(dir.path());
    let s = stale(dir.path(), CHAPTERS).unwrap();
    assert_eq!(s.len(), 1);
    assert!(s[0].reason.contains("missing"), "{}", s[0].reason);
}

#[test]
fn a_manifest_makes_outputs_fresh_until_code_or_lock_file_change() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    workspace(root);
    let edits: [(&str, &str); 4] = [
        ("chapters-code/ch09-demo/src/lib.rs", "pub fn f() { let _ = 1; }\n"),
        ("chapters-code/transformer/src/lib.rs", "pub fn g() {}\n"),
        ("Cargo.lock", "version = 4\n# a dependency moved\n"),
        ("Cargo.toml", "[workspace]\nmembers = []\n"),
    ];
    for (file, text) in edits {
        write_manifest(root, &CHAPTERS[0]).unwrap();
        assert!(
            stale(root, CHAPTERS).unwrap().is_empty(),
            "fresh right after writing the manifest"
        );
        fs::write(root.join(file), text).unwrap();
        let s = stale(root, CHAPTERS).unwrap();
        assert_eq!(s.len(), 1, "editing {file} must make the outputs stale");
        assert!(s[0].reason.contains("changed"), "{}", s[0].reason);
    }
}

#[test]
fn line_endings_do_not_change_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    workspace(root);
    write_manifest(root, &CHAPTERS[0]).unwrap();
    fs::write(root.join("chapters-code/ch09-demo/src/lib.rs"), "pub fn f() {}\r\n")
        .unwrap();
    assert!(stale(root, CHAPTERS).unwrap().is_empty());
}

#[test]
fn a_chapter_that_reuses_an_earlier_chapters_code_goes_stale_when_that_code_changes()
 {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    workspace(root);
    let earlier = root.join("chapters-code/ch08-earlier");
    fs::create_dir_all(earlier.join("src")).unwrap();
    fs::write(earlier.join("Cargo.toml"), "[package]\nname = \"ch08-earlier\"\n")
        .unwrap();
    fs::write(earlier.join("src/lib.rs"), "pub fn e() {}\n").unwrap();
    let manifest = "[package]\nname = \"ch09-demo\"\n\n[dependencies]\ntransformer.workspace = true\n\
                    ch08-earlier = { path = \"../ch08-earlier\" }\n\n[dev-dependencies]\n";
    fs::write(root.join("chapters-code/ch09-demo/Cargo.toml"), manifest).unwrap();
    assert_eq!(
        xtask::fresh::local_crates(root, "ch09-demo").unwrap(),
        ["ch09-demo", "transformer", "ch08-earlier"]
    );
    write_manifest(root, &CHAPTERS[0]).unwrap();
    assert!(stale(root, CHAPTERS).unwrap().is_empty());
    fs::write(earlier.join("src/lib.rs"), "pub fn e() { let _ = 2; }\n").unwrap();
    let s = stale(root, CHAPTERS).unwrap();
    assert_eq!(
        s.len(),
        1,
        "the earlier chapter's code is part of this chapter's sources"
    );
}
