//! The chapter harness: what every chapter crate is written on.
//!
//! A chapter crate implements [`Chapter`] on its settings: how a [`Preset`] and the
//! chapter's own command-line flags make checked settings, and how a run turns them
//! into [`Outputs`] (the numbers the page quotes, its tables and figures, and any
//! timings). Everything else is here, written once: the command line (`--config`,
//! `--out`, `--help`), where outputs go, writing them atomically, exit codes, the
//! summary a run prints at the end, and the command-line test ([`check_cli`]).
//!
//! ```text
//! // src/main.rs of a chapter crate
//! fn main() -> std::process::ExitCode {
//!     transformer::chapter::main::<ch01_four_masks::Settings>(
//!         env!("CARGO_PKG_NAME"),
//!         env!("CARGO_PKG_DESCRIPTION"),
//!     )
//! }
//! ```
//!
//! The package's name is the binary's, and its first word (`ch01`, `real`) is the
//! results id that pages quote (`{{#value ch01.key}}` reads
//! `book/generated/ch01/`); the package's description is what `--help` says a run
//! computes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{CommandFactory, FromArgMatches, Parser};
use serde::{Deserialize, Serialize};

/// Which configuration a run uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Small and fast: what the tests run and snapshot.
    Quick,
    /// What the book shows.
    Default,
    /// Larger than the book's run, where a chapter offers one.
    Large,
}

impl Preset {
    /// The value this preset takes of three: one per preset, in declaration order.
    pub fn pick<T>(self, quick: T, default: T, large: T) -> T {
        match self {
            Preset::Quick => quick,
            Preset::Default => default,
            Preset::Large => large,
        }
    }

    /// The name used on the command line and in folder names.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Default => "default",
            Preset::Large => "large",
        }
    }
}

/// One chapter of the book, implemented by the chapter's settings: how a preset
/// and the chapter's own flags make them, and how a run turns them into outputs.
pub trait Chapter: Sized {
    /// The chapter's own flags, each an optional override of its preset.
    type Args: clap::Args;
    /// Why a preset and flags describe no run.
    type Error: Into<anyhow::Error>;
    /// Settings from a preset and the flags. Every value is checked here; an error
    /// is a usage error (exit code 2) whose message names the flag.
    fn new(preset: Preset, args: &Self::Args) -> Result<Self, Self::Error>;
    /// Run the chapter with these settings.
    fn run(&self) -> anyhow::Result<Outputs>;
}

/// Settings from a preset and flags, with the chapter's error as an `anyhow` one.
fn settings<C: Chapter>(preset: Preset, args: &C::Args) -> anyhow::Result<C> {
    C::new(preset, args).map_err(Into::into)
}

/// The results id of a chapter package: its name's first word (`ch01` for
/// `ch01-four-masks`).
pub fn results_id(package: &str) -> &str {
    package.split_once('-').map_or(package, |(id, _)| id)
}

/// What a run produced, held in memory until [`Outputs::write`] puts it on disk in
/// one go.
#[derive(Debug, Default)]
pub struct Outputs {
    results: serde_json::Value,
    /// `results` as written: serialised from the chapter's own type, so fields keep
    /// its order.
    results_text: String,
    timings: Option<serde_json::Value>,
    claims: Option<Claims>,
    files: BTreeMap<String, Vec<u8>>,
    headline: Vec<String>,
    open_first: Option<String>,
}

impl Outputs {
    /// Outputs whose `results.json` is `results`: every number the page quotes,
    /// rounded for display. Nothing in it may depend on the machine or the clock;
    /// timings go to [`Outputs::timings`].
    pub fn new(results: &impl Serialize) -> anyhow::Result<Self> {
        let results_text =
            crate::io::json_text(results).context("serialising the results")?;
        let results =
            serde_json::to_value(results).context("serialising the results")?;
        if !results.is_object() {
            bail!("results must serialise to a JSON object");
        }
        if results.get("timings").is_some() {
            bail!(
                "`timings` is reserved in results.json: pass machine-dependent values to Outputs::timings"
            );
        }
        Ok(Outputs { results, results_text, ..Outputs::default() })
    }

    /// The results as written to `results.json`.
    pub fn results(&self) -> &serde_json::Value {
        &self.results
    }

    /// Machine-dependent measurements (seconds, speed-ups measured in wall time),
    /// written to `timings.json` beside `results.json`; the book reads them as
    /// `{{#value chNN.timings.…}}`.
    pub fn timings(
        &mut self,
        timings: &impl Serialize,
    ) -> anyhow::Result<&mut Self> {
        self.timings =
            Some(serde_json::to_value(timings).context("serialising the timings")?);
        Ok(self)
    }

    /// The sentences the page says about these results, each computed from them:
    /// written to `claims.json`, and read by the page as `{{#claim chNN.name}}`,
    /// which fails the book's build when the claim does not hold.
    pub fn claims(&mut self, claims: Claims) -> &mut Self {
        self.claims = Some(claims);
        self
    }

    /// The claims, for tests.
    pub fn claim_set(&self) -> Option<&Claims> {
        self.claims.as_ref()
    }

    /// A file beside `results.json`: a table (`.md`), a figure (`.svg`) or anything
    /// else.
    pub fn file(
        &mut self,
        name: &str,
        contents: impl Into<Vec<u8>>,
    ) -> anyhow::Result<&mut Self> {
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            bail!(
                "output file name `{name}` must be a plain file name (letters, digits, _ - .)"
            );
        }
        if matches!(
            name,
            "results.json" | "timings.json" | "claims.json" | "manifest.json"
        ) {
            bail!("`{name}` is written by the harness");
        }
        if self.files.insert(name.to_string(), contents.into()).is_some() {
            bail!("output file `{name}` produced twice");
        }
        Ok(self)
    }

    /// The files beside `results.json`, by name.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    /// A file's text, for tests.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.files.get(name).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// A line the run prints at the end: one of the chapter's headline results.
    pub fn headline(&mut self, line: impl Into<String>) -> &mut Self {
        self.headline.push(line.into());
        self
    }

    /// The file a reader should open first (usually the chapter's main figure).
    pub fn open_first(&mut self, name: &str) -> &mut Self {
        self.open_first = Some(name.to_string());
        self
    }

    /// Write everything into `dir`, replacing what was there. The files are first
    /// written into a temporary folder beside `dir`, which then takes `dir`'s
    /// place: an interrupted or failed run leaves the old outputs untouched and no
    /// half-written file behind.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let name = dir
            .file_name()
            .context("the output folder has no name")?
            .to_string_lossy();
        // A hidden temporary folder beside `dir`, on the same file system, so that
        // a rename moves it into place at once.
        let beside = |kind: &str| {
            tempfile::Builder::new()
                .prefix(&format!(".{name}.{kind}-"))
                .tempdir_in(parent)
                .with_context(|| {
                    format!("creating a temporary folder in {}", parent.display())
                })
        };
        let stage = beside("new")?;
        let mut all: Vec<(&str, Vec<u8>)> =
            vec![("results.json", self.results_text.clone().into_bytes())];
        if let Some(t) = &self.timings {
            all.push(("timings.json", crate::io::json_text(t)?.into_bytes()));
        }
        if let Some(c) = &self.claims {
            all.push(("claims.json", crate::io::json_text(c)?.into_bytes()));
        }
        for (file, bytes) in &self.files {
            all.push((file, bytes.clone()));
        }
        for (file, bytes) in &all {
            let path = stage.path().join(file);
            let mut f = std::fs::File::create(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            f.write_all(bytes)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        // A manifest belongs to the book's build, not to the run: keep it if it is
        // there.
        let manifest = dir.join("manifest.json");
        if manifest.is_file() {
            std::fs::copy(&manifest, stage.path().join("manifest.json"))
                .with_context(|| format!("keeping {}", manifest.display()))?;
        }
        if dir.exists() {
            if !dir.is_dir() {
                bail!("{} exists and is not a folder", dir.display());
            }
            let old = beside("old")?;
            let old_path = old.path().join("outputs");
            std::fs::rename(dir, &old_path)
                .with_context(|| format!("moving {} aside", dir.display()))?;
            if let Err(e) = std::fs::rename(stage.path(), dir) {
                let _ = std::fs::rename(&old_path, dir);
                return Err(e)
                    .with_context(|| format!("replacing {}", dir.display()));
            }
        } else {
            std::fs::rename(stage.path(), dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(())
    }

    fn summary(&self, dir: &Path, seconds: f64) -> String {
        let mut s = String::new();
        for line in &self.headline {
            let _ = writeln!(s, "  {line}");
        }
        let mut names = vec!["results.json".to_string()];
        if self.timings.is_some() {
            names.push("timings.json".to_string());
        }
        if self.claims.is_some() {
            names.push("claims.json".to_string());
        }
        names.extend(self.files.keys().cloned());
        let _ = writeln!(
            s,
            "wrote {} files to {} in {seconds:.1} s: {}",
            names.len(),
            dir.display(),
            names.join(", ")
        );
        if let Some(first) = &self.open_first {
            let _ = writeln!(s, "open first: {}", dir.join(first).display());
        }
        if let Some(c) = &self.claims {
            let failing: Vec<&str> =
                c.0.iter()
                    .filter(|(_, c)| !c.holds)
                    .map(|(n, _)| n.as_str())
                    .collect();
            if failing.is_empty() {
                let _ = writeln!(s, "claims: all {} hold", c.0.len());
            } else {
                let _ = writeln!(
                    s,
                    "claims: {} of {} do NOT hold on these results (the book will not build from them): {}",
                    failing.len(),
                    c.0.len(),
                    failing.join(", ")
                );
            }
        }
        s
    }
}

/// The workspace root (this library lives in `chapters-code/transformer`).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The book's folder of committed outputs for a chapter: `book/generated/<id>`.
pub fn book_folder(id: &str) -> PathBuf {
    workspace_root().join("book/generated").join(id)
}

/// Where a run writes when `--out` is not given: the book's folder for the default
/// configuration as it is, a scratch folder under `target/` for any other
/// configuration or for the default one with overridden settings (`custom`), so
/// that no run but the book's own can overwrite the book's results.
pub fn default_out(id: &str, preset: Preset, custom: bool) -> PathBuf {
    let scratch =
        |name: String| workspace_root().join("target/chapters").join(name);
    match (preset, custom) {
        (Preset::Default, false) => book_folder(id),
        (preset, false) => scratch(format!("{id}-{}", preset.name())),
        (preset, true) => scratch(format!("{id}-{}-custom", preset.name())),
    }
}

/// The chapter's own flags given on the command line (overrides of its preset), by
/// name.
fn overridden<A: clap::Args>(matches: &clap::ArgMatches) -> Vec<String> {
    A::augment_args(clap::Command::new("chapter"))
        .get_arguments()
        .filter(|a| {
            matches.value_source(a.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|a| format!("--{}", a.get_long().unwrap_or(a.get_id().as_str())))
        .collect()
}

/// Refuse to write anything but the default configuration's results, with no
/// setting overridden, into the book.
fn check_out(
    id: &str,
    preset: Preset,
    overrides: &[String],
    out: &Path,
) -> anyhow::Result<()> {
    let book = workspace_root().join("book/generated");
    let inside = |p: &Path| {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let p = canonical_prefix(&p);
        book.canonicalize().is_ok_and(|b| p.starts_with(b))
    };
    if preset != Preset::Default && inside(out) {
        bail!(
            "--out {} is inside the book's results (book/generated/), which hold the default \
             configuration's outputs only; write a {} run elsewhere (the default for it is {})",
            out.display(),
            preset.name(),
            default_out(id, preset, false).display()
        );
    }
    if !overrides.is_empty() && inside(out) {
        bail!(
            "--out {} is inside the book's results (book/generated/), which hold the default \
             configuration's outputs only, but this run overrides {}; write it elsewhere (the \
             default for it is {})",
            out.display(),
            overrides.join(", "),
            default_out(id, preset, true).display()
        );
    }
    Ok(())
}

/// `p` with its longest existing prefix canonicalised (the rest may not exist yet).
fn canonical_prefix(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = cur.canonicalize() {
            return rest.iter().rev().fold(c, |acc: PathBuf, part| acc.join(part));
        }
        match (cur.file_name().map(|s| s.to_os_string()), cur.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                cur = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

#[derive(Parser)]
struct Cli<A: clap::Args> {
    /// Which configuration to run: quick (for tests), default (the book's), large
    /// (where offered).
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    config: Preset,
    /// Folder for results.json, the tables and the figures (default: the book's
    /// folder for the default configuration, target/chapters/<id>-<config> for any
    /// other).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    args: A,
}

/// The `main` of every chapter binary: parse the command line, run, write, report.
/// `package` and `about` are the chapter package's name and description
/// (`env!("CARGO_PKG_NAME")`, `env!("CARGO_PKG_DESCRIPTION")`).
///
/// Exit codes: 0 on success, 2 for a usage error (a bad flag or value), 1 for a
/// failure while running or writing. Errors go to standard error, with their
/// causes.
pub fn main<C: Chapter>(package: &'static str, about: &'static str) -> ExitCode {
    // First, before candle starts its threads (see `tune_process`).
    crate::kernels::tune_process(Default::default());
    let id = results_id(package);
    let command = Cli::<C::Args>::command()
        .name(package)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"));
    let parsed = command.try_get_matches().and_then(|m| {
        Cli::<C::Args>::from_arg_matches(&m)
            .map(|cli| (cli, overridden::<C::Args>(&m)))
    });
    let (cli, overrides) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| default_out(id, cli.config, !overrides.is_empty()));
    let settings = match check_out(id, cli.config, &overrides, &out)
        .and_then(|()| settings::<C>(cli.config, &cli.args))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    match settings.run().and_then(|outputs| outputs.write(&out).map(|()| outputs)) {
        Ok(outputs) => {
            print!(
                "{id} ({}):\n{}",
                cli.config.name(),
                outputs.summary(&out, start.elapsed().as_secs_f64())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One sentence the page says about the chapter's own results, and whether the
/// results bear it out. `text` is the generated wording the page shows in place of
/// `{{#claim chNN.name}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub holds: bool,
    pub text: String,
}

/// The claims of one run, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Claims(BTreeMap<String, Claim>);

impl Claims {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record claim `name`: `text` is what the page will say, `holds` whether the
    /// data agree. Compute `holds` from the same numbers the text quotes, never
    /// from expectation.
    pub fn add(
        &mut self,
        name: &str,
        holds: bool,
        text: impl Into<String>,
    ) -> &mut Self {
        let previous =
            self.0.insert(name.to_string(), Claim { holds, text: text.into() });
        assert!(previous.is_none(), "claim `{name}` recorded twice");
        self
    }

    /// A claim by name.
    pub fn get(&self, name: &str) -> Option<&Claim> {
        self.0.get(name)
    }

    /// Every claim, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Claim)> {
        self.0.iter()
    }
}

/// A Markdown table, built column by column, always in the same style.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, every column left-aligned.
    pub fn new<S: AsRef<str>>(header: &[S]) -> Self {
        Table {
            header: header.iter().map(|h| h.as_ref().to_string()).collect(),
            right: vec![false; header.len()],
            rows: Vec::new(),
        }
    }

    /// Right-align the columns whose index is in `cols` (numbers).
    pub fn right(mut self, cols: impl IntoIterator<Item = usize>) -> Self {
        for c in cols {
            self.right[c] = true;
        }
        self
    }

    /// Right-align every column from `first` on.
    pub fn right_from(self, first: usize) -> Self {
        let n = self.header.len();
        self.right(first..n)
    }

    /// Add a row; it must have one cell per column.
    pub fn row<S: ToString>(
        &mut self,
        cells: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        let row: Vec<String> = cells.into_iter().map(|c| c.to_string()).collect();
        assert_eq!(
            row.len(),
            self.header.len(),
            "a row of {} cells in a table of {} columns",
            row.len(),
            self.header.len()
        );
        self.rows.push(row);
        self
    }

    /// The table as GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut s = line(&self.header);
        s.push('|');
        for &r in &self.right {
            s.push_str(if r { "---:|" } else { "---|" });
        }
        s.push('\n');
        for row in &self.rows {
            s.push_str(&line(row));
        }
        s
    }
}

/// Mean, sample standard deviation and range of a metric over seeds, each rounded
/// to the decimals it was summarised with (so results and snapshots hold across
/// machines).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `xs`, rounded to `dp` decimal places. One value has a spread
    /// of 0.
    pub fn of(xs: &[f64], dp: i32) -> Spread {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = if xs.len() > 1 {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Spread {
            mean: round_dp(mean, dp),
            std: round_dp(var.sqrt(), dp),
            min: round_dp(xs.iter().copied().fold(f64::INFINITY, f64::min), dp),
            max: round_dp(xs.iter().copied().fold(f64::NEG_INFINITY, f64::max), dp),
        }
    }

    /// "41.2 ± 1.3".
    pub fn show(&self) -> String {
        self.show_dp(1)
    }

    /// "2.301 ± 0.130" for `show_dp(3)`.
    pub fn show_dp(&self, dp: usize) -> String {
        format!("{:.dp$} ± {:.dp$}", self.mean, self.std)
    }
}

/// Round to `dp` decimal places (`round_dp(1.23456, 2) == 1.23`).
pub fn round_dp(x: f64, dp: i32) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let p = 10f64.powi(dp);
    (x * p).round() / p
}

/// Round to `sig` significant digits (`round_sig(0.0012345, 3) == 0.00123`).
pub fn round_sig(x: f64, sig: i32) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    round_dp(x, sig - 1 - magnitude)
}

/// Run a chapter's quick configuration with its default flags, as its snapshot
/// tests do.
pub fn quick<C: Chapter>() -> anyhow::Result<Outputs>
where
    C::Args: Default,
{
    settings::<C>(Preset::Quick, &Default::default())?.run()
}

/// The command-line contract every chapter binary keeps, checked by each chapter's
/// CLI test, for the chapter package whose binary is `binary`:
/// - `--help` lists the harness's flags and every flag of the chapter's;
/// - a quick run into a fresh folder exits 0, prints its summary, leaves no
///   temporary folder behind, and writes the same files as the book's folder holds
///   (which the default run wrote), apart from the book's manifest;
/// - every unsigned integer flag refuses `-3` and `many`, and an unknown flag and an
///   unknown configuration are refused, each with exit code 2 and a message that
///   names the value, never a panic;
/// - each case of `bad` fails in the same way: values that parse but describe no
///   run, as space-separated cases of `--flag=value` (the flags of one case joined
///   by commas), each of the chapter's flags, whose message names the last flag or
///   contains the text after a colon
///   (`"--steps=0 --seq-len=6,--prefix-len=9 --seq-len=1000:max_len"`);
/// - an unwritable output folder fails with exit code 1, and a quick run aimed at
///   the book's folder is refused.
///
/// Returns the quick run's outputs, for a chapter's own checks of its files.
pub fn check_cli<C: Chapter>(binary: &str, bad: &str) -> QuickOutputs {
    use std::any::TypeId;
    use std::process::Command;
    let run = |args: &[&str]| {
        Command::new(binary).args(args).output().expect("the chapter binary runs")
    };
    let package = Path::new(binary)
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a binary named after its package");
    let book = book_folder(results_id(package));
    let flags = <C::Args as clap::Args>::augment_args(clap::Command::new("x"));
    let flags: Vec<(String, bool)> = flags
        .get_arguments()
        .filter_map(|a| {
            let parser = a.get_value_parser().type_id();
            let numeric =
                [TypeId::of::<usize>(), TypeId::of::<u32>(), TypeId::of::<u64>()]
                    .iter()
                    .any(|&t| parser == t);
            Some((format!("--{}", a.get_long()?), numeric))
        })
        .collect();

    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    let names = flags.iter().map(|(f, _)| f.as_str());
    for flag in ["--config", "--out"].into_iter().chain(names) {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }

    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = dir.path().join("out");
    let quick =
        run(&["--config", "quick", "--out", out.to_str().expect("UTF-8 path")]);
    let stdout = String::from_utf8_lossy(&quick.stdout);
    assert!(quick.status.success(), "{}", String::from_utf8_lossy(&quick.stderr));
    assert!(
        stdout.contains("wrote") && stdout.contains("results.json"),
        "no summary printed:\n{stdout}"
    );
    let names_in = |folder: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n != "manifest.json")
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names_in(&out),
        names_in(&book),
        "a quick run writes the book's files"
    );
    assert_eq!(names_in(dir.path()), ["out"], "temporary folders left behind");

    let expect_failure = |args: Vec<&str>, code: i32, needle: &str| {
        let o = run(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{args:?} should exit with {code}: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        if code == 2 && needle != "--unknown-flag" {
            assert!(
                !stderr.contains("unexpected argument"),
                "{args:?} was refused as an unknown flag: {stderr}"
            );
        }
    };
    fn quick_with<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--config", "quick"], args].concat()
    }
    for (flag, _) in flags.iter().filter(|(_, numeric)| *numeric) {
        for value in ["-3", "many"] {
            let arg = format!("{flag}={value}");
            expect_failure(quick_with(&[&arg]), 2, value);
        }
    }
    expect_failure(quick_with(&["--unknown-flag"]), 2, "--unknown-flag");
    expect_failure(vec!["--config", "huge"], 2, "huge");
    for case in bad.split_whitespace() {
        let (case, needle) = case.split_once(':').unwrap_or((case, ""));
        let args: Vec<&str> = case.split(',').collect();
        for arg in &args {
            let flag = arg.split('=').next().unwrap_or(arg);
            assert!(
                flags.iter().any(|(f, _)| f == flag),
                "bad case {case:?}: {flag} is not a flag of this chapter"
            );
        }
        let last = args.last().and_then(|a| a.split('=').next()).unwrap_or("");
        let needle =
            if needle.is_empty() { last.trim_start_matches('-') } else { needle };
        expect_failure(quick_with(&args), 2, needle);
    }

    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").expect("writable");
    let inside = blocker.join("out");
    expect_failure(
        quick_with(&["--out", inside.to_str().expect("UTF-8")]),
        1,
        "error",
    );
    let in_book = book_folder("some-chapter");
    expect_failure(
        quick_with(&["--out", in_book.to_str().expect("UTF-8")]),
        2,
        "book",
    );
    QuickOutputs { path: out, _dir: dir }
}

/// The outputs of the quick run [`check_cli`] made, in a temporary folder that is
/// deleted when this is dropped.
pub struct QuickOutputs {
    /// The output folder.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_in_one_style() {
        let mut t = Table::new(&["name", "n"]).right([1]);
        t.row(["a", "1"]).row(["b", "22"]);
        assert_eq!(
            t.markdown(),
            "| name | n |\n|---|---:|\n| a | 1 |\n| b | 22 |\n"
        );
    }

    #[test]
    fn rounding_by_decimals_and_by_significant_digits() {
        assert_eq!(round_dp(1.23456, 2), 1.23);
        assert_eq!(round_dp(-0.0049, 2), -0.0);
        assert_eq!(round_sig(0.0012345, 3), 0.00123);
        assert_eq!(round_sig(123456.0, 2), 120000.0);
        assert_eq!(round_sig(0.0, 3), 0.0);
        assert!(round_sig(f64::NAN, 3).is_nan());
    }

    #[test]
    fn outputs_replace_the_folder_atomically_and_keep_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ch99");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("stale.md"), "old").unwrap();
        std::fs::write(out.join("manifest.json"), "{}").unwrap();
        let mut o = Outputs::new(&serde_json::json!({"a": 1})).unwrap();
        o.file("t.md", "| x |\n").unwrap();
        o.timings(&serde_json::json!({"seconds": 1.5})).unwrap();
        let mut claims = Claims::new();
        claims.add("grows", true, "grows at every size");
        o.claims(claims);
        o.write(&out).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "claims.json",
                "manifest.json",
                "results.json",
                "t.md",
                "timings.json"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(out.join("claims.json")).unwrap(),
            "{\n  \"grows\": {\n    \"holds\": true,\n    \"text\": \"grows at every size\"\n  }\n}\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("results.json")).unwrap(),
            "{\n  \"a\": 1\n}\n"
        );
        let siblings: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(siblings, ["ch99"], "temporary folders left behind");
    }

    #[test]
    fn bad_output_names_and_reserved_keys_are_errors() {
        let mut o = Outputs::new(&serde_json::json!({})).unwrap();
        for bad in [
            "",
            ".hidden",
            "a/b.md",
            "../x",
            "results.json",
            "timings.json",
            "claims.json",
        ] {
            assert!(o.file(bad, "x").is_err(), "{bad:?} accepted");
        }
        o.file("a.md", "x").unwrap();
        assert!(o.file("a.md", "y").is_err(), "a duplicate was accepted");
        assert!(Outputs::new(&serde_json::json!({"timings": 1})).is_err());
        assert!(Outputs::new(&serde_json::json!([1, 2])).is_err());
    }

    #[test]
    fn only_the_default_configuration_writes_into_the_book() {
        assert_eq!(
            default_out("ch01", Preset::Default, false),
            book_folder("ch01")
        );
        assert!(
            default_out("ch01", Preset::Quick, false)
                .ends_with("target/chapters/ch01-quick")
        );
        assert!(
            default_out("ch01", Preset::Default, true)
                .ends_with("target/chapters/ch01-default-custom")
        );
        assert!(
            default_out("ch01", Preset::Quick, true)
                .ends_with("target/chapters/ch01-quick-custom")
        );
        assert!(
            check_out("ch01", Preset::Quick, &[], &book_folder("ch01")).is_err()
        );
        assert!(
            check_out(
                "ch01",
                Preset::Quick,
                &[],
                &book_folder("ch01").join("../ch01/sub")
            )
            .is_err()
        );
        assert!(
            check_out("ch01", Preset::Default, &[], &book_folder("ch01")).is_ok()
        );
        #[derive(clap::Args, Default)]
        struct A {
            #[arg(long)]
            seeds: Option<usize>,
            #[arg(long, default_value_t = 3)]
            steps: usize,
        }
        let given = |args: &[&str]| {
            let m = Cli::<A>::command().try_get_matches_from(args).unwrap();
            overridden::<A>(&m)
        };
        assert!(given(&["ch", "--config", "quick", "--out", "x"]).is_empty());
        assert_eq!(given(&["ch", "--seeds", "5"]), ["--seeds"]);
        assert_eq!(
            given(&["ch", "--steps", "3", "--seeds", "5"]),
            ["--seeds", "--steps"]
        );
        let seeds = ["--seeds".to_string()];
        let e = check_out("ch01", Preset::Default, &seeds, &book_folder("ch01"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--seeds") && e.contains("ch01-default-custom"), "{e}");
        assert!(
            check_out(
                "ch01",
                Preset::Quick,
                &[],
                &default_out("ch01", Preset::Quick, false)
            )
            .is_ok()
        );
    }
}
