//! The strict book build fails on each way mdBook would otherwise fail silently.
//! Each test builds a small fixture book in a temporary folder, breaks one thing,
//! and requires the build to fail with a message that names the problem.

use std::fs;
use std::path::Path;

use xtask::bookcheck;

/// A small valid book: one page with an anchored include, a generated value, math
/// and a figure.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("book.toml"), "[book]\ntitle = \"Fixture\"\nsrc = \"src\"\n\n[build]\ncreate-missing = false\n\n[output.html]\ndefault-theme = \"light\"\n").unwrap();
    let mut toml = fs::read_to_string(root.join("book.toml")).unwrap();
    for (name, after) in
        [("values", "links"), ("math", "values"), ("tables", "math")]
    {
        toml.push_str(&format!(
            "\n[preprocessor.{name}]\ncommand = \"cargo xtask preprocess {name}\"\nafter = [\"{after}\"]\n"
        ));
    }
    fs::write(root.join("book.toml"), toml).unwrap();
    fs::create_dir_all(root.join("src/generated/ch09")).unwrap();
    fs::create_dir_all(root.join("code")).unwrap();
    fs::write(root.join("src/SUMMARY.md"), "# Summary\n\n- [Page](page.md)\n")
        .unwrap();
    fs::write(
        root.join("code/lib.rs"),
        "// ANCHOR: shown\npub fn shown() -> u32 { 7 }\n// ANCHOR_END: shown\n",
    )
    .unwrap();
    fs::write(root.join("src/generated/ch09/results.json"), "{\"answer\": 42}\n")
        .unwrap();
    fs::write(
        root.join("src/generated/ch09/fig.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"></svg>\n",
    )
    .unwrap();
    fs::write(
        root.join("src/page.md"),
        "# Page\n\nThe answer is {{#value ch09.answer}}, and $x^2$ is math.\n\n\
         ```rust,ignore\n{{#include ../code/lib.rs:shown}}\n```\n\n![figure](generated/ch09/fig.svg)\n",
    )
    .unwrap();
    dir
}

fn error_of(root: &Path) -> String {
    match bookcheck::build(root) {
        Ok(_) => panic!("the broken book built without an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn edit(root: &Path, file: &str, from: &str, to: &str) {
    let p = root.join(file);
    let text = fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "fixture has no `{from}`");
    fs::write(&p, text.replace(from, to)).unwrap();
}

/// List one more page, `file` titled `title`, after the fixture's page, and write
/// it with `text`.
fn add_page(root: &Path, title: &str, file: &str, text: &str) {
    let listed = format!("- [Page](page.md)\n- [{title}]({file})");
    edit(root, "src/SUMMARY.md", "- [Page](page.md)", &listed);
    fs::write(root.join("src").join(file), text).unwrap();
}

/// Build the book at `root`, which must succeed, and return the HTML of `page`.
fn built_page(root: &Path, page: &str) -> String {
    let built = bookcheck::build(root).unwrap();
    fs::read_to_string(built.out_dir.join(page)).unwrap()
}

#[test]
fn the_valid_fixture_builds_with_values_math_and_code() {
    let dir = fixture();
    let built = bookcheck::build(dir.path()).unwrap();
    let html = fs::read_to_string(built.out_dir.join("page.html")).unwrap();
    assert!(html.contains("The answer is 42"), "value not filled in");
    assert!(html.contains("<math"), "math not rendered");
    assert!(html.contains("shown()"), "code not included");
    assert!(built.out_dir.join("mathml/styles.css").is_file());
}

/// Edits that each break the fixture one way mdBook would let pass: in `file`,
/// `from` becomes `to`, and the build's error must name `names`.
const BROKEN_BY_ONE_EDIT: [(&str, &str, &str, &str); 9] = [
    // A missing include file.
    ("src/page.md", "lib.rs:shown", "missing.rs:shown", "missing.rs"),
    // A missing anchor.
    ("src/page.md", "lib.rs:shown", "lib.rs:hidden", "no anchor `hidden`"),
    // An empty anchor.
    ("code/lib.rs", "pub fn shown() -> u32 { 7 }\n", "", "empty"),
    // An unknown [output.html] setting (a misspelt key).
    ("book.toml", "\"light\"", "\"light\"\nmathjax-suport = true", "output.html"),
    // A book.toml without the preprocessor commands.
    (
        "book.toml",
        "command = \"cargo xtask preprocess math\"",
        "command = \"mdbook-math\"",
        "[preprocessor.math]",
    ),
    // A missing generated value.
    ("src/page.md", "ch09.answer", "ch09.question", "question"),
    // Invalid math.
    ("src/page.md", "$x^2$", "$\\frac{x}$", "LaTeX"),
    // A page listed in the summary but missing from disk.
    ("src/SUMMARY.md", "(page.md)", "(page.md)\n- [Gone](gone.md)", "gone"),
    // A book that would create missing pages.
    ("book.toml", "missing = false", "missing = true", "create-missing"),
];

#[test]
fn each_broken_edit_fails_naming_the_problem() {
    for (file, from, to, names) in BROKEN_BY_ONE_EDIT {
        let dir = fixture();
        edit(dir.path(), file, from, to);
        let e = error_of(dir.path());
        assert!(e.contains(names), "`{from}` -> `{to}` in {file}: {e}");
    }
}

#[test]
fn a_missing_figure_fails() {
    let dir = fixture();
    fs::remove_file(dir.path().join("src/generated/ch09/fig.svg")).unwrap();
    assert!(error_of(dir.path()).contains("missing image"));
}

#[test]
fn a_citation_missing_from_the_references_page_fails_and_a_listed_one_builds() {
    let dir = fixture();
    edit(
        dir.path(),
        "src/page.md",
        "is math.",
        "is math (Shazeer 2019, arXiv 1911.02150).",
    );
    let e = error_of(dir.path());
    assert!(e.contains("page.md cites arXiv 1911.02150"), "{e}");
    add_page(
        dir.path(),
        "References",
        "references.md",
        "# References\n\n- Noam Shazeer. \"Fast Transformer Decoding.\" arXiv 1911.02150.\n",
    );
    bookcheck::build(dir.path()).unwrap();
}

#[test]
fn an_uncited_reference_fails() {
    let dir = fixture();
    add_page(
        dir.path(),
        "References",
        "references.md",
        "# References\n\n- Nie et al. \"Large Language Diffusion Models.\" arXiv 2502.09992.\n",
    );
    let e = error_of(dir.path());
    assert!(e.contains("cited by no page") && e.contains("2502.09992"), "{e}");
}

#[test]
fn an_anchor_no_page_includes_fails() {
    let dir = fixture();
    let root = dir.path();
    fs::create_dir_all(root.join("chapters-code/ch09/src")).unwrap();
    fs::write(
        root.join("chapters-code/ch09/src/lib.rs"),
        "// ANCHOR: forgotten\npub fn f() {}\n// ANCHOR_END: forgotten\n",
    )
    .unwrap();
    let err = error_of(root);
    assert!(err.contains("no page includes") && err.contains("forgotten"), "{err}");
}

#[test]
fn a_claim_that_does_not_hold_fails() {
    let dir = fixture();
    let root = dir.path();
    fs::write(
        root.join("src/generated/ch09/claims.json"),
        "{\"grows\": {\"holds\": false, \"text\": \"grows at every size\"}}\n",
    )
    .unwrap();
    edit(
        root,
        "src/page.md",
        "and $x^2$ is math.",
        "and it {{#claim ch09.grows}}; $x^2$ is math.",
    );
    let err = error_of(root);
    assert!(
        err.contains("does not hold") && err.contains("grows at every size"),
        "{err}"
    );
    edit(root, "src/generated/ch09/claims.json", "false", "true");
    let html = built_page(root, "page.html");
    assert!(html.contains("it grows at every size"), "claim text not rendered");
}

#[test]
fn a_glossary_term_used_before_its_link_fails_and_a_linked_first_use_builds() {
    let dir = fixture();
    let root = dir.path();
    add_page(
        root,
        "Glossary",
        "glossary.md",
        "# Glossary\n\n<a id=\"token\"></a>**Token.** A piece of text that a model reads.\n",
    );
    edit(
        root,
        "src/page.md",
        "and $x^2$ is math.",
        "and $x^2$ is math.\nEach token counts, and a token is read.",
    );
    let err = error_of(root);
    assert!(
        err.contains(
            "page.md:4: \"token\" is used before it is linked to the glossary (link its first use: [token](glossary.md#token))"
        ),
        "{err}"
    );
    edit(
        root,
        "src/page.md",
        "Each token counts",
        "Each [token](glossary.md#token) counts",
    );
    let html = built_page(root, "glossary.html");
    assert!(
        html.contains("id=\"token\""),
        "the glossary entry has no anchor in the HTML"
    );
    edit(root, "src/page.md", "glossary.md#token", "glossary.md#tokens");
    assert!(error_of(root).contains("points to no glossary entry"));
}

#[test]
fn a_figure_not_fit_to_print_fails() {
    let dir = fixture();
    fs::write(
        dir.path().join("src/generated/ch09/fig.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100\" height=\"50\">\n\
         <text x=\"10\" y=\"40\" text-anchor=\"middle\" font-size=\"10\">\n0.30000000000000004\n</text>\n</svg>\n",
    )
    .unwrap();
    let err = error_of(dir.path());
    assert!(
        err.contains("fig.svg: label \"0.30000000000000004\"")
            && err.contains("float printed raw"),
        "{err}"
    );
}
