//! Build the book through the mdBook library, strictly.
//!
//! mdBook 0.5 exits successfully when an include file is missing (the raw
//! `{{#include}}` text stays in the page), renders an empty block when an anchor is
//! missing, and falls back to defaults on an unknown `[output.html]` key. Here each
//! of these fails the build: the configuration is validated, every include is
//! resolved before the build, every warning or error mdBook logs is fatal, and the
//! rendered pages are checked afterwards.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use mdbook_driver::MDBook;
use mdbook_driver::book::{Book, BookItem};
use mdbook_driver::config::HtmlConfig;
use mdbook_preprocessor::Preprocessor;
use tracing::{Event, Level, Subscriber, field::Field, field::Visit};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};

use crate::math::Math;
use crate::values::Values;

/// What a successful build produced.
pub struct Built {
    pub out_dir: PathBuf,
    pub pages: Vec<PathBuf>,
}

/// Records every warning and error mdBook logs.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<String>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: Subscriber> Layer<S> for Collector {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let level = *event.metadata().level();
        if level <= Level::WARN {
            let mut m = Message(String::new());
            event.record(&mut m);
            self.0.lock().expect("collector lock").push(format!(
                "{level} {}: {}",
                event.metadata().target(),
                m.0
            ));
        }
    }
}

/// One `{{#include …}}`-style directive found in a page.
#[derive(Debug, PartialEq)]
pub struct Include {
    pub file: String,
    pub anchor: Option<String>,
}

/// Find the include-like directives in a page's source.
pub fn includes(text: &str) -> Vec<Include> {
    let mut found = Vec::new();
    for kind in ["{{#include ", "{{#rustdoc_include ", "{{#playground "] {
        let mut rest = text;
        while let Some(i) = rest.find(kind) {
            let after = &rest[i + kind.len()..];
            let Some(end) = after.find("}}") else { break };
            let target = after[..end].trim();
            let (file, anchor) = match target.split_once(':') {
                Some((f, a)) => (f, Some(a.to_string())),
                None => (target, None),
            };
            found.push(Include { file: file.to_string(), anchor });
            rest = &after[end..];
        }
    }
    found
}

/// The widest line a listing may have: mdBook's text column holds about 86
/// characters of its code font, so a listing at most this wide never scrolls
/// sideways.
pub const LISTING_WIDTH: usize = 84;

/// Check that an include resolves to a file and a non-empty, existing anchor or
/// line range, and return the lines it shows (anchor markers left out, as mdBook
/// does).
fn check_include(base: &Path, inc: &Include) -> Result<Vec<String>> {
    let path = base.join(&inc.file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let shown = |ls: &[&str]| {
        ls.iter().filter(|l| !l.contains("ANCHOR")).map(|l| l.to_string()).collect()
    };
    let Some(anchor) = &inc.anchor else { return Ok(shown(&lines)) };
    if anchor.chars().all(|c| c.is_ascii_digit() || c == ':') {
        // A line or a range `a:b`, `a:`, `:b`, 1-based.
        let parts: Vec<&str> = anchor.split(':').collect();
        let mut bounds = Vec::new();
        for p in &parts {
            if p.is_empty() {
                bounds.push(None);
                continue;
            }
            let n: usize = p.parse()?;
            if n == 0 || n > lines.len() {
                bail!(
                    "{}: line {n} is outside the file ({} lines)",
                    inc.file,
                    lines.len()
                );
            }
            bounds.push(Some(n));
        }
        let (from, to) = match bounds.as_slice() {
            [Some(n)] => (*n, *n),
            [a, b] => (a.unwrap_or(1), b.unwrap_or(lines.len())),
            _ => bail!("{}: `{anchor}` is not a line or a range", inc.file),
        };
        return Ok(shown(lines.get(from - 1..to.max(from - 1)).unwrap_or(&[])));
    }
    let start = lines.iter().position(|l| is_exact(l, "ANCHOR: ", anchor));
    let end = lines.iter().position(|l| is_exact(l, "ANCHOR_END: ", anchor));
    match (start, end) {
        (Some(s), Some(e)) if e > s + 1 => {
            let body: Vec<String> = shown(&lines[s + 1..e]);
            if !body.iter().any(|l| !l.trim().is_empty()) {
                bail!("{}: anchor `{anchor}` is empty", inc.file);
            }
            Ok(body)
        }
        (Some(_), Some(_)) => bail!("{}: anchor `{anchor}` is empty", inc.file),
        _ => {
            bail!(
                "{}: no anchor `{anchor}` (needs `ANCHOR: {anchor}` and `ANCHOR_END: {anchor}`)",
                inc.file
            )
        }
    }
}

/// The lines of a listing wider than [`LISTING_WIDTH`], as (1-based line in the
/// listing, width).
fn too_wide(lines: &[String]) -> Vec<(usize, usize)> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l.chars().count()))
        .filter(|&(_, w)| w > LISTING_WIDTH)
        .collect()
}

/// Does `line` contain `marker` followed by exactly `name` (not a longer name)?
fn is_exact(line: &str, marker: &str, name: &str) -> bool {
    line.split(marker)
        .skip(1)
        .any(|rest| rest.split_whitespace().next() == Some(name))
}

/// Check the rendered HTML of one page.
fn check_page(html: &str, page: &Path, out_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let name = page.strip_prefix(out_dir).unwrap_or(page).display().to_string();
    if let Some(i) = html.find("{{#") {
        let snippet: String = html[i..].chars().take(60).collect();
        problems.push(format!("{name}: unexpanded directive `{snippet}`"));
    }
    // Every code block must have content.
    let mut rest = html;
    while let Some(i) = rest.find("<pre><code") {
        let after = &rest[i..];
        let open_end = after.find('>').map_or(0, |x| x + 1);
        let close = after.find("</code>").unwrap_or(after.len());
        if after[open_end..close].trim().is_empty() {
            problems.push(format!("{name}: empty code block"));
        }
        rest = &after[close.min(after.len())..];
        if close == after.len() {
            break;
        }
    }
    // Every local image must exist.
    let dir = page.parent().unwrap_or(out_dir);
    for part in html.split("<img ").skip(1) {
        if let Some(src) =
            part.split("src=\"").nth(1).and_then(|s| s.split('"').next())
            && !src.contains("://")
            && !src.starts_with("data:")
            && !dir.join(src).is_file()
        {
            problems.push(format!("{name}: missing image {src}"));
        }
    }
    problems
}

include!(concat!(env!("OUT_DIR"), "/math_assets.rs"));

/// The book's own preprocessors, in the order book.toml runs them (after mdBook's
/// `links`, which does the includes).
pub const PREPROCESSORS: [&str; 3] = ["values", "math", "tables"];

/// The command book.toml declares for preprocessor `name`.
pub fn preprocess_command(name: &str) -> String {
    format!("cargo xtask preprocess {name}")
}

/// A preprocessor's pass over the book: each chapter's content becomes what
/// `rewrite` makes of it. Every failure of every chapter, named by its chapter, is
/// collected, and the pass fails with all of them under `heading`.
pub(crate) fn rewrite_chapters(
    book: &mut Book,
    heading: &str,
    rewrite: impl Fn(&str) -> std::result::Result<String, Vec<String>>,
) -> Result<()> {
    let mut errors = Vec::new();
    book.for_each_mut(|item| {
        if let BookItem::Chapter(ch) = item {
            match rewrite(&ch.content) {
                Ok(s) => ch.content = s,
                Err(es) => errors
                    .extend(es.into_iter().map(|e| format!("{}: {e}", ch.name))),
            }
        }
    });
    if !errors.is_empty() {
        bail!("{heading}:\n  {}", errors.join("\n  "));
    }
    Ok(())
}

/// Write the MathML stylesheet and fonts into `dir` (the book's `mathml/` folder,
/// which mdBook copies into every build), touching only files whose bytes differ,
/// so that `mdbook serve`, which watches the folder, does not rebuild forever.
pub fn write_math_assets(dir: &Path) -> Result<()> {
    for (name, bytes) in MATH_ASSETS {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == *bytes) {
            continue;
        }
        std::fs::create_dir_all(path.parent().context("asset path has a folder")?)?;
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `cargo xtask preprocess NAME`, as mdBook runs a preprocessor: the book on
/// standard input, the preprocessed book on standard output.
pub fn preprocess_stdio(name: &str) -> Result<()> {
    let (ctx, book) = mdbook_preprocessor::parse_input(std::io::stdin().lock())
        .context(
            "reading the book mdBook sent (the preprocessors need mdBook 0.5)",
        )?;
    if !ctx.mdbook_version.starts_with("0.5.") {
        bail!(
            "the book's preprocessors are built for mdBook 0.5, not {}",
            ctx.mdbook_version
        );
    }
    let src = ctx.root.join(&ctx.config.book.src);
    let book = match name {
        "values" => Values::new(src.join("generated")).run(&ctx, book)?,
        "math" => {
            write_math_assets(&src.join("mathml"))?;
            Math.run(&ctx, book)?
        }
        "tables" => crate::tables::Tables.run(&ctx, book)?,
        other => bail!(
            "unknown preprocessor `{other}`; the book's are {}",
            PREPROCESSORS.join(", ")
        ),
    };
    serde_json::to_writer(std::io::stdout().lock(), &book)
        .context("writing the preprocessed book")?;
    Ok(())
}

/// Build the book as plain `mdbook build` does (book.toml's preprocessors run as
/// commands) into `out`, and return the HTML pages that differ from the strict
/// build's in `strict` (by path under the output folder).
pub fn plain_build_differences(
    root: &Path,
    strict: &Path,
    out: &Path,
) -> Result<Vec<String>> {
    let mut book = MDBook::load(root)
        .with_context(|| format!("loading the book at {}", root.display()))?;
    book.config.set("build.build-dir", out)?;
    book.build().context("the plain mdBook build failed")?;
    let plain = book.build_dir_for("html");
    let mut differ = Vec::new();
    for item in book.iter() {
        if let BookItem::Chapter(ch) = item
            && let Some(path) = &ch.path
        {
            let page = path.with_extension("html");
            let a = std::fs::read(strict.join(&page));
            let b = std::fs::read(plain.join(&page));
            match (a, b) {
                (Ok(a), Ok(b)) if a == b => {}
                _ => differ.push(page.display().to_string()),
            }
        }
    }
    Ok(differ)
}

/// Write the MathML stylesheet and fonts (embedded at compile time, see
/// `build.rs`) into the built book's `mathml/`.
fn copy_math_assets(out_dir: &Path) -> Result<()> {
    for (name, bytes) in MATH_ASSETS {
        let path = out_dir.join("mathml").join(name);
        std::fs::create_dir_all(path.parent().context("asset path has a folder")?)?;
        std::fs::write(&path, bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `ANCHOR: name` markers in the project's Rust sources (`chapters-code/`, `exercises/`) that no
/// page includes: code marked for the book that the book does not show.
fn unused_anchors(
    root: &Path,
    included: &std::collections::HashSet<(PathBuf, String)>,
) -> Result<Vec<String>> {
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for dir in ["chapters-code", "exercises"] {
        if root.join(dir).is_dir() {
            rust_files(&root.join(dir), &mut files)?;
        }
    }
    files.sort();
    let mut unused = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let canonical = file.canonicalize()?;
        for (i, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") {
                continue;
            }
            let Some(rest) = line.split("ANCHOR: ").nth(1) else { continue };
            let Some(name) = rest.split_whitespace().next() else { continue };
            if !included.contains(&(canonical.clone(), name.to_string())) {
                let shown = file.strip_prefix(root).unwrap_or(&file).display();
                unused.push(format!("{shown}:{}: `{name}`", i + 1));
            }
        }
    }
    Ok(unused)
}

/// Build the book at `root` strictly; return where it went.
pub fn build(root: &Path) -> Result<Built> {
    let collector = Collector::default();
    let subscriber = tracing_subscriber::registry().with(collector.clone());
    let result =
        tracing::subscriber::with_default(subscriber, || build_inner(root));
    let logged = collector.0.lock().expect("collector lock").clone();
    match (result, logged.is_empty()) {
        (Ok(built), true) => Ok(built),
        (Ok(_), false) => {
            bail!("the book build logged problems:\n  {}", logged.join("\n  "))
        }
        (Err(e), _) => {
            let extra = if logged.is_empty() {
                String::new()
            } else {
                format!("\n  {}", logged.join("\n  "))
            };
            Err(e.context(format!("the book failed to build{extra}")))
        }
    }
}

fn build_inner(root: &Path) -> Result<Built> {
    // Checked before loading, because loading is what would create the missing
    // pages.
    let config = mdbook_driver::config::Config::from_disk(root.join("book.toml"))?;
    if config.build.create_missing {
        bail!(
            "book.toml must set `create-missing = false` under [build]: a page listed in SUMMARY.md but missing on disk must fail the build, not be created empty"
        );
    }
    let mut book = MDBook::load(root)
        .with_context(|| format!("loading the book at {}", root.display()))?;
    book.config
        .get::<HtmlConfig>("output.html")
        .context("invalid [output.html] in book.toml")?;
    let src = book.source_dir();
    let mut problems = Vec::new();
    let mut chapters = Vec::new();
    let mut included = std::collections::HashSet::new();
    for item in book.iter() {
        if let BookItem::Chapter(ch) = item
            && let Some(path) = &ch.path
        {
            chapters.push(path.clone());
            let base = src
                .join(path)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or(src.clone());
            for inc in includes(&ch.content) {
                match check_include(&base, &inc) {
                    Err(e) => problems.push(format!("{}: {e:#}", path.display())),
                    Ok(lines) if inc.file.ends_with(".rs") => {
                        problems.extend(too_wide(&lines).into_iter().map(|(n, w)| {
                            let what = inc.anchor.as_deref().map_or(String::new(), |a| format!(":{a}"));
                            format!(
                                "{}: listing {}{what}: its line {n} is {w} characters wide, more than the \
                                 {LISTING_WIDTH} that fit mdBook's column (wrap the line or comment)",
                                path.display(),
                                inc.file
                            )
                        }));
                    }
                    Ok(_) => {}
                }
                if let (Some(anchor), Ok(file)) =
                    (&inc.anchor, base.join(&inc.file).canonicalize())
                {
                    included.insert((file, anchor.clone()));
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!("broken includes:\n  {}", problems.join("\n  "));
    }
    let unused = unused_anchors(root, &included)?;
    if !unused.is_empty() {
        bail!(
            "anchors that no page includes (include them where the page needs them, or remove them):\n  {}",
            unused.join("\n  ")
        );
    }
    crate::references::check_book(&book)?;
    crate::glossary::check_book(&book)?;
    crate::captions::check_book(&book)?;
    if src.join("generated").is_dir() {
        crate::figures::check_dirs(&[src.join("generated")])?;
    }
    // book.toml declares the book's preprocessors as commands (so that plain
    // `mdbook build` runs them too); here the same ones run in process, each taking
    // its declared command's place and position.
    for name in PREPROCESSORS {
        let key = format!("preprocessor.{name}.command");
        let command: Option<String> = book.config.get(&key)?;
        if command.as_deref() != Some(&preprocess_command(name)) {
            bail!(
                "book.toml must declare [preprocessor.{name}] with command = \"{}\" \
                 (found {command:?})",
                preprocess_command(name)
            );
        }
    }
    write_math_assets(&src.join("mathml"))?;
    book.with_preprocessor(Values::new(src.join("generated")));
    book.with_preprocessor(Math);
    book.with_preprocessor(crate::tables::Tables);
    book.build()?;
    let out_dir = book.build_dir_for("html");
    copy_math_assets(&out_dir)?;
    let mut pages = Vec::new();
    for ch in chapters {
        let page = out_dir.join(ch.with_extension("html"));
        let html = std::fs::read_to_string(&page)
            .with_context(|| format!("reading {}", page.display()))?;
        problems.extend(check_page(&html, &page, &out_dir));
        pages.push(page);
    }
    if !problems.is_empty() {
        bail!("the rendered book has problems:\n  {}", problems.join("\n  "));
    }
    Ok(Built { out_dir, pages })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_math_stylesheet_and_fonts_are_embedded() {
        let names: Vec<&str> = MATH_ASSETS.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"styles.css"), "{names:?}");
        assert!(names.contains(&"font/latinmodern-math.woff2"), "{names:?}");
        let css = MATH_ASSETS.iter().find(|(n, _)| *n == "styles.css").unwrap().1;
        // Every font the stylesheet asks for is shipped beside it.
        let css = std::str::from_utf8(css).unwrap();
        for font in css.split("url(").skip(1).filter_map(|s| s.split(')').next()) {
            if font.contains("://") {
                continue; // the MathML namespace, not a file
            }
            let font = font
                .trim_matches(|c| c == '"' || c == '\'' || c == ' ')
                .trim_start_matches("./");
            assert!(
                names.contains(&font),
                "styles.css needs {font}, not embedded: {names:?}"
            );
        }
        assert!(MATH_ASSETS.iter().all(|(_, b)| !b.is_empty()));
    }

    #[test]
    fn directives_are_found_with_their_anchors() {
        let t = "a {{#include ../x.rs:main}} b {{#include t.md}} {{#rustdoc_include y.rs:2:5}}";
        assert_eq!(
            includes(t),
            vec![
                Include { file: "../x.rs".into(), anchor: Some("main".into()) },
                Include { file: "t.md".into(), anchor: None },
                Include { file: "y.rs".into(), anchor: Some("2:5".into()) },
            ]
        );
    }

    #[test]
    fn anchors_must_match_exactly_and_be_non_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.rs"),
            "// ANCHOR: one_two\nfn f() {}\n// ANCHOR_END: one_two\n// ANCHOR: empty\n// ANCHOR_END: empty\n",
        )
        .unwrap();
        let inc = |a: &str| Include { file: "a.rs".into(), anchor: Some(a.into()) };
        assert!(check_include(dir.path(), &inc("one_two")).is_ok());
        assert!(check_include(dir.path(), &inc("one")).is_err());
        assert!(check_include(dir.path(), &inc("empty")).is_err());
        assert!(check_include(dir.path(), &inc("2:3")).is_ok());
        assert!(check_include(dir.path(), &inc("9")).is_err());
        assert!(
            check_include(
                dir.path(),
                &Include { file: "nope.rs".into(), anchor: None }
            )
            .is_err()
        );
        assert_eq!(
            check_include(dir.path(), &inc("one_two")).unwrap(),
            ["fn f() {}"]
        );
        assert_eq!(check_include(dir.path(), &inc("2:2")).unwrap(), ["fn f() {}"]);
    }

    #[test]
    fn listings_wider_than_the_column_are_found() {
        let ok = "x".repeat(LISTING_WIDTH);
        let wide = format!("    // {}", "é".repeat(LISTING_WIDTH));
        let lines = vec![ok.clone(), wide.clone(), ok];
        assert_eq!(too_wide(&lines), [(2, wide.chars().count())]);
        assert!(
            too_wide(&["é".repeat(LISTING_WIDTH)]).is_empty(),
            "characters, not bytes"
        );
    }
}
