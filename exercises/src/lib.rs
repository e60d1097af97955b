//! The book's exercises: where they live, how a reader's progress is measured, and
//! the check that keeps the set honest (every starter fails its tests, every
//! solution passes them).
//!
//! Each exercise `name` is three files plus an entry in `info.toml`:
//!
//! - `starters/name.rs`: what the reader edits (signatures, `todo!()`, a `//
//!   TODO`);
//! - `solutions/name.rs`: the reference solution;
//! - `tests/name.rs`: the tests, shown in the book; its first line is
//!   `exercises::exercise!(name);`.
//!
//! The [`exercise!`] macro compiles the starter (or, with `--features solutions`,
//! the solution) into the test crate itself. Every exercise is therefore its own
//! crate, as in rustlings: a starter that does not compile yet breaks only its own
//! test, never the runner or the others.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Compile an exercise into the calling test crate and bring its items into scope:
/// `exercises::exercise!(prefix_mask);` includes `starters/prefix_mask.rs`, or
/// `solutions/prefix_mask.rs` with `--features solutions`.
///
/// The file is pulled in with `include!`, so it may not hold inner attributes
/// (`#![...]`) or inner doc comments (`//!`); `check` enforces this.
#[macro_export]
macro_rules! exercise {
    ($name:ident) => {
        #[cfg(feature = "solutions")]
        #[allow(dead_code)]
        mod $name {
            include!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/solutions/",
                stringify!($name),
                ".rs"
            ));
        }
        #[cfg(all(feature = "check-starters", not(feature = "solutions")))]
        #[allow(dead_code, unused_variables, unused_imports, unreachable_code)]
        mod $name {
            include!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/.check/",
                stringify!($name),
                ".rs"
            ));
        }
        #[cfg(not(any(feature = "solutions", feature = "check-starters")))]
        #[allow(dead_code, unused_variables, unused_imports, unreachable_code)]
        mod $name {
            include!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/starters/",
                stringify!($name),
                ".rs"
            ));
        }
        #[allow(unused_imports)]
        use $name::*;
    };
}

/// One entry of `info.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exercise {
    /// File stem and module name, e.g. `prefix_mask`.
    pub name: String,
    /// The chapter's results id, e.g. `ch01`.
    pub chapter: String,
    /// `hints/<name>.md`: shown by the runner on request and on the exercise page.
    #[serde(skip)]
    pub hint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Info {
    exercises: Vec<Exercise>,
}

/// The `exercises/` folder (this crate's root).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Read `info.toml`, in book order.
pub fn load(root: &Path) -> anyhow::Result<Vec<Exercise>> {
    let path = root.join("info.toml");
    let text = fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    let info: Info = toml::from_str(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    let mut list = info.exercises;
    for ex in &mut list {
        let hint = root.join("hints").join(format!("{}.md", ex.name));
        ex.hint = fs::read_to_string(&hint)
            .with_context(|| format!("reading {}", hint.display()))?;
    }
    Ok(list)
}

/// How an exercise's tests went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passes,
    Fails,
    DoesNotCompile,
}

/// Which version of the exercise a test run compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `starters/`, as the reader left them.
    Reader,
    /// `solutions/`.
    Solution,
    /// `.check/`, the unsolved starters `check` prepared.
    CheckedStarter,
}

impl Variant {
    fn features(self) -> &'static [&'static str] {
        match self {
            Variant::Reader => &[],
            Variant::Solution => &["--features", "solutions"],
            Variant::CheckedStarter => &["--features", "check-starters"],
        }
    }
}

fn cargo(root: &Path) -> Command {
    let mut c =
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root);
    c
}

fn run_quiet(mut c: Command) -> anyhow::Result<Output> {
    // A failing test's message is what a reader needs, not a stack backtrace.
    c.env("RUST_BACKTRACE", "0");
    c.stdin(Stdio::null()).output().with_context(|| format!("running {c:?}"))
}

/// Compile and run one exercise's tests (in release, like the rest of the book);
/// returns the outcome and what cargo and the tests printed.
pub fn test(
    root: &Path,
    name: &str,
    variant: Variant,
) -> anyhow::Result<(Outcome, String)> {
    let mut build = cargo(root);
    build
        .args(["test", "--release", "-p", "exercises", "--test", name, "--no-run"])
        .args(variant.features());
    let out = run_quiet(build)?;
    if !out.status.success() {
        return Ok((
            Outcome::DoesNotCompile,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let mut run = cargo(root);
    run.args(["test", "--release", "-p", "exercises", "--test", name])
        .args(variant.features());
    let out = run_quiet(run)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((if out.status.success() { Outcome::Passes } else { Outcome::Fails }, text))
}

/// The committed version of `exercises/<rel>` when the working copy differs from
/// it; `None` when they are the same, the file is new, or git is unavailable.
fn committed_if_modified(root: &Path, rel: &str) -> Option<String> {
    let diff = Command::new("git")
        .current_dir(root)
        .args(["diff", "--quiet", "HEAD", "--", rel])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if diff.code() != Some(1) {
        return None;
    }
    let show = Command::new("git")
        .current_dir(root)
        .args(["show", &format!("HEAD:./{rel}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    show.status
        .success()
        .then(|| String::from_utf8_lossy(&show.stdout).into_owned())
}

fn rs_files(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in
        fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?
    {
        names.insert(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Problems with the files themselves: entries, hints, stray files, the test's
/// first line, `include!`-safe sources, and a page of the book that shows the tests
/// and the solution.
fn static_problems(root: &Path, list: &[Exercise]) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for ex in list {
        let n = &ex.name;
        if !is_ident(n) {
            problems.push(format!(
                "{n}: the name must be a snake_case Rust identifier"
            ));
        }
        if !seen.insert(n.clone()) {
            problems.push(format!("{n}: listed twice in info.toml"));
        }
        if ex.hint.trim().is_empty() {
            problems.push(format!("{n}: hints/{n}.md is empty"));
        }
        if ex.chapter.trim().is_empty() {
            problems.push(format!("{n}: the chapter is empty"));
        }
        for dir in ["starters", "solutions", "tests"] {
            let path = root.join(dir).join(format!("{n}.rs"));
            let Ok(text) = fs::read_to_string(&path) else {
                problems.push(format!("{n}: {dir}/{n}.rs is missing"));
                continue;
            };
            if dir != "tests"
                && text
                    .lines()
                    .any(|l| l.trim_start().starts_with("//!") || l.contains("#!["))
            {
                problems
                    .push(format!("{n}: {dir}/{n}.rs is include!d, so it may not use `//!` or `#![...]`"));
            }
            if dir == "starters"
                && !(text.contains("todo!(") && text.contains("// TODO"))
            {
                problems
                    .push(format!("{n}: starters/{n}.rs needs a `todo!()` and a `// TODO` for the reader"));
            }
            if dir == "tests"
                && !text.contains(&format!("exercises::exercise!({n});"))
            {
                problems.push(format!(
                    "{n}: tests/{n}.rs must contain `exercises::exercise!({n});`"
                ));
            }
        }
    }
    if let Ok(entries) = fs::read_dir(root.join("hints")) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if !file.strip_suffix(".md").is_some_and(|stem| seen.contains(stem)) {
                problems.push(format!(
                    "hints/{file}: stray file (not an exercise listed in info.toml)"
                ));
            }
        }
    }
    for dir in ["starters", "solutions", "tests"] {
        for file in rs_files(&root.join(dir))? {
            let listed =
                file.strip_suffix(".rs").is_some_and(|stem| seen.contains(stem));
            if !listed {
                problems.push(format!(
                    "{dir}/{file}: stray file (not an exercise listed in info.toml)"
                ));
            }
        }
    }
    let book = root.join("../book");
    let mut pages = String::new();
    if let Ok(entries) = fs::read_dir(&book) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "md") {
                pages.push_str(
                    &fs::read_to_string(entry.path()).unwrap_or_default(),
                );
            }
        }
    }
    for ex in list {
        for dir in ["tests", "solutions"] {
            let include = format!("exercises/{dir}/{}.rs", ex.name);
            if !pages.contains(&include) {
                problems.push(format!(
                    "{}: no page of the book includes {include}",
                    ex.name
                ));
            }
        }
    }
    Ok(problems)
}

/// rustfmt-clean solutions, tests and starters.
fn format_problems(root: &Path, list: &[Exercise]) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    for ex in list {
        for dir in ["solutions", "tests", "starters"] {
            let p = root.join(dir).join(format!("{}.rs", ex.name));
            if p.exists() {
                files.push(p);
            }
        }
    }
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let out = Command::new("rustfmt")
        .current_dir(root)
        .args(["--check", "--edition", "2024"])
        .args(&files)
        .stdin(Stdio::null())
        .output()
        .context(
            "running rustfmt (install it with `rustup component add rustfmt`)",
        )?;
    if out.status.success() {
        return Ok(Vec::new());
    }
    let mut diff = String::from_utf8_lossy(&out.stdout).into_owned();
    diff.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(vec![format!(
        "not rustfmt-clean (run `cargo fmt` or rustfmt on the files):\n{diff}"
    )])
}

/// Copy the unsolved starters into `.check/`: the working copy, unless git holds a
/// committed version that differs (the reader has been editing it), in which case
/// the committed one.
fn prepare_starters(
    root: &Path,
    list: &[Exercise],
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let dir = root.join(".check");
    if dir.exists() {
        fs::remove_dir_all(&dir)
            .with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    for ex in list {
        let rel = format!("starters/{}.rs", ex.name);
        let text = match committed_if_modified(root, &rel) {
            Some(committed) => {
                notes.push(format!(
                    "{rel} differs from the committed copy (solved in place?): checking the committed one"
                ));
                committed
            }
            None => fs::read_to_string(root.join(&rel))
                .with_context(|| format!("reading {rel}"))?,
        };
        fs::write(dir.join(format!("{}.rs", ex.name)), text)?;
    }
    Ok(())
}

/// The developer check (as rustlings' `dev check`): every hint is non-empty, no
/// stray files, every solution is rustfmt-clean and passes its tests, every starter
/// compiles and fails them. Returns the notes to print; an error lists every
/// problem found.
pub fn check(root: &Path) -> anyhow::Result<Vec<String>> {
    let list = load(root)?;
    if list.is_empty() {
        bail!("info.toml lists no exercises");
    }
    let mut problems = static_problems(root, &list)?;
    problems.extend(format_problems(root, &list)?);
    let mut notes = Vec::new();
    if problems.is_empty() {
        for ex in &list {
            match test(root, &ex.name, Variant::Solution)? {
                (Outcome::Passes, _) => {
                    notes.push(format!("{}: the solution passes", ex.name))
                }
                (outcome, log) => problems
                    .push(format!("{}: the solution {outcome:?}:\n{log}", ex.name)),
            }
        }
        prepare_starters(root, &list, &mut notes)?;
        for ex in &list {
            match test(root, &ex.name, Variant::CheckedStarter)? {
                (Outcome::Fails, _) => notes.push(format!("{}: the starter compiles and fails", ex.name)),
                (Outcome::Passes, _) => problems.push(format!(
                    "{}: the starter passes its tests; a starter must fail them (if you solved it in place \
                     and it is not committed yet, move your solution aside or commit the starter first)",
                    ex.name
                )),
                (Outcome::DoesNotCompile, log) => {
                    problems.push(format!("{}: the starter does not compile:\n{log}", ex.name))
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(notes)
    } else {
        let mut msg = format!("{} problem(s) with the exercises:", problems.len());
        for p in &problems {
            write!(msg, "\n- {p}")?;
        }
        bail!(msg)
    }
}

/// A mask as a grid: `■` where a query (row) may read a key (column), `·` where it
/// may not.
pub fn grid(mask: &[Vec<bool>]) -> String {
    mask.iter()
        .map(|row| {
            row.iter()
                .map(|&b| if b { "■" } else { "·" })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compare a reader's mask with the expected one; on a mismatch, fail with both
/// drawn as grids, side by side, and the first cell where they differ.
#[track_caller]
pub fn assert_mask(yours: &[Vec<bool>], expected: &[Vec<bool>], what: &str) {
    if yours == expected {
        return;
    }
    let mut out = side_by_side(what, "mask", &grid(yours), &grid(expected));
    let first = first_difference(
        yours,
        expected,
        ("mask", "keys"),
        |a, b| a == b,
        |i, j, a, b| {
            format!("row {i} (query {i}), key {j}: yours says {a}, expected {b}")
        },
    );
    if let Some(f) = first {
        out.push_str(&format!("\nfirst difference: {f}\n"));
    }
    panic!("{out}");
}

/// A table of numbers that a chapter wrote into `book/generated/` (e.g.
/// `"ch00/q.md"`, the queries of the attention page), as the page shows it: one row
/// per `| **name** | ... |` line, `−∞` read as negative infinity. Tests use it to
/// check a reader's answer against the page.
pub fn generated_table(rel: &str) -> Vec<Vec<f32>> {
    let path = root().join("../book/generated").join(rel);
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let cell = |c: &str| match c.trim().replace('−', "-").as_str() {
        "-∞" => f32::NEG_INFINITY,
        c => c.parse().unwrap_or_else(|_| {
            panic!("{}: {c:?} is not a number", path.display())
        }),
    };
    text.lines()
        .filter(|l| l.starts_with("| **"))
        .map(|l| l.trim().trim_matches('|').split('|').skip(1).map(cell).collect())
        .collect()
}

fn number(x: f32) -> String {
    match x {
        x if x.is_nan() => "NaN".into(),
        f32::INFINITY => "∞".into(),
        f32::NEG_INFINITY => "−∞".into(),
        x => format!("{x:.3}"),
    }
}

/// A matrix of numbers as rows of right-aligned cells, three decimals each.
pub fn table(m: &[Vec<f32>]) -> String {
    let cells: Vec<Vec<String>> =
        m.iter().map(|row| row.iter().map(|&x| number(x)).collect()).collect();
    let width =
        cells.iter().flatten().map(|c| c.chars().count()).max().unwrap_or(0);
    cells
        .iter()
        .map(|row| {
            row.iter().map(|c| format!("{c:>width$}")).collect::<Vec<_>>().join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compare a reader's matrix with the expected one, entry by entry within `tol`; on
/// a mismatch (a NaN is always one), fail with both drawn side by side, the first
/// entry where they differ and, when the test recognised the mistake, `diagnosis`:
/// what it looks like went wrong.
#[track_caller]
pub fn assert_matrix(
    yours: &[Vec<f32>],
    expected: &[Vec<f32>],
    tol: f32,
    what: &str,
    diagnosis: Option<&str>,
) {
    // Written so that a NaN on either side is never near anything.
    let near = |x: f32, y: f32| (x - y).abs() <= tol;
    let close = |a: &[f32], b: &[f32]| {
        a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| near(x, y))
    };
    if yours.len() == expected.len()
        && yours.iter().zip(expected).all(|(a, b)| close(a, b))
    {
        return;
    }
    let mut out = side_by_side(what, "matrix", &table(yours), &table(expected));
    let first = first_difference(
        yours,
        expected,
        ("matrix", "entries"),
        |&a, &b| near(a, b),
        |i, j, &a, &b| {
            format!(
                "row {i}, column {j}: yours is {}, expected {}",
                number(a),
                number(b)
            )
        },
    );
    if let Some(f) = first {
        out.push_str(&format!("\nfirst difference: {f} (tolerance {tol})\n"));
    }
    if let Some(d) = diagnosis {
        out.push_str(&format!("\n{d}\n"));
    }
    panic!("{out}");
}

/// Where a reader's grid first differs from the expected one: a row of the wrong
/// length (counted in `entries`), an entry `same` rejects (described by `entry`
/// from its row, column and both values), or a missing or extra row of the `kind`.
fn first_difference<T>(
    yours: &[Vec<T>],
    expected: &[Vec<T>],
    (kind, entries): (&str, &str),
    same: impl Fn(&T, &T) -> bool,
    entry: impl Fn(usize, usize, &T, &T) -> String,
) -> Option<String> {
    (0..expected.len().max(yours.len())).find_map(|i| {
        match (yours.get(i), expected.get(i)) {
            (Some(ra), Some(rb)) if ra.len() != rb.len() => Some(format!(
                "row {i} has {} {entries}, expected {}",
                ra.len(),
                rb.len()
            )),
            (Some(ra), Some(rb)) => (0..rb.len())
                .find(|&j| !same(&ra[j], &rb[j]))
                .map(|j| entry(i, j, &ra[j], &rb[j])),
            _ => Some(format!(
                "your {kind} has {} rows, expected {}",
                yours.len(),
                expected.len()
            )),
        }
    })
}

/// "`what`: your `kind` differs from the expected one", then the reader's answer and
/// the expected one drawn side by side, under those two headings.
fn side_by_side(what: &str, kind: &str, yours: &str, expected: &str) -> String {
    let width = yours
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max("your answer".len());
    let mut out = format!(
        "{what}: your {kind} differs from the expected one\n\n{:<width$}   expected\n",
        "your answer"
    );
    let (la, lb): (Vec<&str>, Vec<&str>) =
        (yours.lines().collect(), expected.lines().collect());
    for i in 0..la.len().max(lb.len()) {
        out.push_str(&format!(
            "{:<width$}   {}\n",
            la.get(i).unwrap_or(&""),
            lb.get(i).unwrap_or(&"")
        ));
    }
    out
}
