//! The `{{#value chNN.path.to.key}}` preprocessor: numbers in prose come from
//! generated results.
//!
//! `{{#value ch03.rank.bidirectional}}` is replaced by the value at
//! `rank.bidirectional` in `book/generated/ch03/results.json`. A filter may follow
//! a bar: `| thousands` groups digits (536,064), `| N` prints a number with N
//! decimals. A missing file or key fails the build. `{{#value ch06.timings.key}}`
//! reads `book/generated/ch06/timings.json`, where each chapter keeps what depends
//! on the machine (seconds, measured speed-ups).
//!
//! `{{#claim ch03.name}}` is a sentence about our own results: it is replaced by
//! the wording the chapter generated in `claims.json`, and fails the build when the
//! chapter computed that the claim does not hold on its data. Every characterising
//! sentence ("higher at every size", "within noise") goes through one, so a
//! regeneration cannot silently make the page wrong.
//!
//! `{{#verdict ch05-twice-the-parameters.md | overstated | twice the parameters}}`
//! is a verdict quoted from a chapter: it renders the verdict ("Overstated") and
//! fails the build unless the chapter's `## Verdict` section gives the same one, in
//! a bold sentence that starts with it (or with `"the claim": ` and then it) and
//! contains the optional key. The verdict page's table is built from these, so it
//! cannot drift from the chapters.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use mdbook_driver::book::Book;
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};
use serde_json::Value;

use crate::bookcheck::rewrite_chapters;

pub struct Values {
    /// The folder holding one sub-folder of results per chapter.
    pub generated: PathBuf,
    cache: RefCell<HashMap<String, Value>>,
}

impl Values {
    pub fn new(generated: PathBuf) -> Self {
        Values { generated, cache: RefCell::new(HashMap::new()) }
    }

    /// The source of a page of the book (`generated` sits in the book's source
    /// folder).
    fn page(&self, file: &str) -> Result<String> {
        if file.contains("..") || file.contains('/') {
            bail!("verdict: `{file}` must be a page in the book's folder");
        }
        let src = self.generated.parent().ok_or_else(|| {
            anyhow!("no book folder above {}", self.generated.display())
        })?;
        std::fs::read_to_string(src.join(file))
            .with_context(|| format!("verdict: cannot read {file}"))
    }

    fn results(&self, id: &str) -> Result<Value> {
        if let Some(v) = self.cache.borrow().get(id) {
            return Ok(v.clone());
        }
        let path = self.generated.join(id).join("results.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("{} is missing: run `cargo xtask book`", path.display())
        })?;
        let mut v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        // Beside the results: machine-dependent measurements (`chNN.timings.…`) and
        // the claims the page makes about the results (`{{#claim chNN.name}}`).
        for (file, key) in [("timings.json", "timings"), ("claims.json", "claims")]
        {
            let side = self.generated.join(id).join(file);
            if let Ok(text) = std::fs::read_to_string(&side) {
                let t: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", side.display()))?;
                let Value::Object(map) = &mut v else {
                    bail!("{} is not a JSON object", path.display())
                };
                if map.insert(key.to_string(), t).is_some() {
                    bail!(
                        "{} has a `{key}` key; it belongs in {file}",
                        path.display()
                    );
                }
            }
        }
        self.cache.borrow_mut().insert(id.to_string(), v.clone());
        Ok(v)
    }

    /// The text that replaces one directive's body, e.g. `ch01.params.decoder |
    /// thousands`.
    pub fn lookup(&self, spec: &str) -> Result<String> {
        let (key, filter) = match spec.split_once('|') {
            Some((k, f)) => (k.trim(), Some(f.trim())),
            None => (spec.trim(), None),
        };
        let (id, path) = key
            .split_once('.')
            .ok_or_else(|| anyhow!("`{key}`: expected <chapter>.<key>"))?;
        let root = self.results(id)?;
        let mut v = &root;
        for part in path.split('.') {
            v = match v {
                Value::Object(m) => m.get(part),
                Value::Array(a) => {
                    part.parse::<usize>().ok().and_then(|i| a.get(i))
                }
                _ => None,
            }
            .ok_or_else(|| {
                anyhow!("`{key}`: no `{part}` in book/generated/{id}/results.json")
            })?;
        }
        format_value(v, filter).with_context(|| format!("`{spec}`"))
    }

    /// The text that replaces `{{#claim chNN.name}}`: the claim's generated
    /// wording, provided the chapter's results bear it out. A claim that does not
    /// hold fails the build. With `| check` the directive renders nothing: it only
    /// asserts that the claim holds, for a sentence whose wording is the page's own
    /// but whose truth the chapter computes.
    pub fn claim(&self, spec: &str) -> Result<String> {
        let (key, check) =
            match spec.split_once('|').map(|(k, f)| (k.trim(), f.trim())) {
                Some((k, "check")) => (k, true),
                Some((_, f)) => {
                    bail!("claim `{spec}`: unknown filter `{f}` (only `check`)")
                }
                None => (spec.trim(), false),
            };
        let (id, name) = key
            .split_once('.')
            .ok_or_else(|| anyhow!("`{key}`: expected <chapter>.<claim>"))?;
        let root = self.results(id)?;
        let claim =
            root.get("claims").and_then(|c| c.get(name)).ok_or_else(|| {
                anyhow!(
                    "claim `{key}`: no `{name}` in book/generated/{id}/claims.json"
                )
            })?;
        let text = claim["text"]
            .as_str()
            .ok_or_else(|| anyhow!("claim `{key}` has no text"))?;
        match claim["holds"].as_bool() {
            Some(true) if check => Ok(String::new()),
            Some(true) => Ok(text.to_string()),
            Some(false) => bail!(
                "claim `{key}` does not hold on the generated results, so the page may not say \"{text}\": \
                 rewrite the sentence from the data"
            ),
            None => bail!("claim `{key}` has no boolean `holds`"),
        }
    }
}

fn format_value(v: &Value, filter: Option<&str>) -> Result<String> {
    match (v, filter) {
        (Value::String(s), None) => Ok(s.clone()),
        (Value::Number(n), None) => Ok(n.to_string()),
        (Value::Bool(b), None) => Ok(b.to_string()),
        (Value::Number(n), Some("thousands")) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.fract() != 0.0 {
                bail!("`thousands` needs an integer, got {n}");
            }
            Ok(group_thousands(&format!("{}", x.abs() as u128), x < 0.0))
        }
        (Value::Number(n), Some(d)) if d.parse::<usize>().is_ok() => Ok(format!(
            "{:.*}",
            d.parse::<usize>()?,
            n.as_f64().unwrap_or(f64::NAN)
        )),
        (_, Some(f)) => bail!("unknown filter `{f}` for {v}"),
        (other, None) => bail!("{other} is not a number, string or boolean"),
    }
}

fn group_thousands(digits: &str, negative: bool) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if negative { format!("-{out}") } else { out }
}

/// The verdicts of the book's four-way scale, and "untested" for a claim no chapter
/// tries.
pub const VERDICTS: [&str; 5] =
    ["holds in a regime", "holds", "overstated", "wrong", "untested"];

/// The verdict a bold sentence states: its text (after a leading quoted claim and
/// `: `), starting with one of [`VERDICTS`], the longest that fits.
pub fn stated_verdict(bold: &str) -> Option<&'static str> {
    let text = bold.trim();
    let text = match text.strip_prefix('"').and_then(|t| t.split_once("\": ")) {
        Some((_, rest)) => rest,
        None => text,
    };
    let lower =
        text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    VERDICTS
        .iter()
        .filter(|v| lower.starts_with(*v))
        .max_by_key(|v| v.len())
        .copied()
}

/// The bold spans (`**…**`) of the `## Verdict` section of a page.
pub fn verdict_spans(page: &str) -> Vec<String> {
    let Some(start) = page.find("\n## Verdict") else { return Vec::new() };
    let section = &page[start + 1..];
    let section =
        &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    section.split("**").skip(1).step_by(2).map(str::to_string).collect()
}

/// Check a `{{#verdict …}}` against the chapter page `page` (its text) and render
/// it.
pub fn check_verdict(
    spec: &str,
    page: impl Fn(&str) -> Result<String>,
) -> Result<String> {
    let parts: Vec<&str> = spec.split('|').map(str::trim).collect();
    let (file, label, key) = match parts[..] {
        [f, l] => (f, l, None),
        [f, l, k] => (f, l, Some(k)),
        _ => bail!(
            "verdict `{spec}`: expected `page.md | verdict` or `page.md | verdict | key`"
        ),
    };
    if !VERDICTS.contains(&label) {
        bail!("verdict `{spec}`: `{label}` is not one of {VERDICTS:?}");
    }
    let shown = format!("{}{}", label[..1].to_uppercase(), &label[1..]);
    if file == "-" {
        return if label == "untested" {
            Ok(shown)
        } else {
            bail!("verdict `{spec}`: only `untested` needs no chapter")
        };
    }
    let text = page(file)?;
    let spans = verdict_spans(&text);
    let stated: Vec<(&str, &'static str)> = spans
        .iter()
        .filter(|s| key.is_none_or(|k| s.contains(k)))
        .filter_map(|s| stated_verdict(s).map(|v| (s.as_str(), v)))
        .collect();
    match stated.first() {
        None => bail!(
            "verdict `{spec}`: {file} has no bold verdict sentence{} in its `## Verdict` section",
            key.map_or(String::new(), |k| format!(" containing `{k}`"))
        ),
        Some((_, v)) if *v == label => Ok(shown),
        Some((s, v)) => bail!(
            "verdict `{spec}`: the table says `{label}`, but {file} says `{v}` (\"{s}\")"
        ),
    }
}

/// Replace every `{{#value …}}` in `text`; collect every failure rather than
/// stopping at the first.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Result<String>,
) -> std::result::Result<String, Vec<String>> {
    expand_directive(text, "{{#value ", lookup)
}

/// Replace every directive that starts with `open` (e.g. `"{{#claim "`) and ends
/// with `}}`.
pub fn expand_directive(
    text: &str,
    open: &str,
    lookup: impl Fn(&str) -> Result<String>,
) -> std::result::Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let after = &rest[start + open.len()..];
        let Some(end) = after.find("}}") else {
            errors.push(format!("unterminated {}", open.trim_end()));
            rest = after;
            break;
        };
        match lookup(&after[..end]) {
            Ok(s) => out.push_str(&s),
            Err(e) => errors.push(format!("{e:#}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

impl Preprocessor for Values {
    fn name(&self) -> &str {
        "values"
    }

    fn run(&self, _ctx: &PreprocessorContext, mut book: Book) -> Result<Book> {
        let heading = "generated values could not be filled in";
        rewrite_chapters(&mut book, heading, |text| {
            expand(text, |s| self.lookup(s))
                .and_then(|t| expand_directive(&t, "{{#claim ", |s| self.claim(s)))
                .and_then(|t| {
                    expand_directive(&t, "{{#verdict ", |s| {
                        check_verdict(s, |f| self.page(f))
                    })
                })
        })?;
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> (tempfile::TempDir, Values) {
        let dir = tempfile::tempdir().unwrap();
        let ch = dir.path().join("ch09");
        std::fs::create_dir_all(&ch).unwrap();
        std::fs::write(
            ch.join("results.json"),
            r#"{"a": {"n": 536064, "x": 0.25, "s": "full rank", "l": [1, 2]}}"#,
        )
        .unwrap();
        let v = Values::new(dir.path().to_path_buf());
        (dir, v)
    }

    #[test]
    fn verdicts_are_read_from_the_chapters_bold_verdict_sentences() {
        let page = |_: &str| -> Result<String> {
            Ok("# Ch\n\n## Verdict\n\n**Holds in a regime: true as arithmetic.** More.\n\n\
                **\"Only because of twice the parameters\": overstated.** Why.\n\n## Exercises\n\n**Wrong.**\n"
                .to_string())
        };
        assert_eq!(
            check_verdict("ch.md | holds in a regime", page).unwrap(),
            "Holds in a regime"
        );
        assert_eq!(
            check_verdict("ch.md | overstated | twice the parameters", page)
                .unwrap(),
            "Overstated"
        );
        // The table disagrees with the chapter: the build fails and says why.
        let e = check_verdict("ch.md | holds", page).unwrap_err().to_string();
        assert!(e.contains("says `holds in a regime`"), "{e}");
        let e = check_verdict("ch.md | wrong | twice the parameters", page)
            .unwrap_err()
            .to_string();
        assert!(e.contains("says `overstated`"), "{e}");
        // Bold text outside the verdict section does not count; unknown labels and
        // keys fail.
        assert!(check_verdict("ch.md | wrong | Wrong", page).is_err());
        assert!(check_verdict("ch.md | fine", page).is_err());
        assert!(check_verdict("ch.md | holds | no such key", page).is_err());
        assert_eq!(check_verdict("- | untested", page).unwrap(), "Untested");
        assert!(check_verdict("- | holds", page).is_err());
        assert_eq!(
            stated_verdict("Overstated, and right only in a regime."),
            Some("overstated")
        );
        assert_eq!(stated_verdict("Holds."), Some("holds"));
        assert_eq!(
            stated_verdict("\"A claim\": holds in a\nregime."),
            Some("holds in a regime")
        );
        assert_eq!(stated_verdict("Su's first experiment: consistent"), None);
    }

    #[test]
    fn directives_are_replaced_with_generated_values() {
        let (_d, v) = values();
        let text = "n = {{#value ch09.a.n | thousands}}, x = {{#value ch09.a.x}} ({{#value ch09.a.x | 1}}), \
                    {{#value ch09.a.s}}, {{#value ch09.a.l.1}}.";
        assert_eq!(
            expand(text, |s| v.lookup(s)).unwrap(),
            "n = 536,064, x = 0.25 (0.2), full rank, 2."
        );
    }

    #[test]
    fn missing_keys_files_and_bad_filters_are_errors() {
        let (_d, v) = values();
        let errs =
            expand("{{#value ch09.a.missing}} {{#value ch42.a}} {{#value ch09.a.x | thousands}}", |s| {
                v.lookup(s)
            })
            .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("missing"), "{}", errs[0]);
        assert!(errs[1].contains("ch42"), "{}", errs[1]);
        assert!(expand("{{#value ch09.a", |s| v.lookup(s)).is_err());
    }

    #[test]
    fn claims_expand_to_their_text_and_a_false_claim_fails() {
        let (d, v) = values();
        std::fs::write(
            d.path().join("ch09/claims.json"),
            r#"{"up": {"holds": true, "text": "grows at every size"},
                "down": {"holds": false, "text": "falls at every size"}}"#,
        )
        .unwrap();
        let ok =
            expand_directive("It {{#claim ch09.up}}.", "{{#claim ", |s| v.claim(s))
                .unwrap();
        assert_eq!(ok, "It grows at every size.");
        let silent = expand_directive(
            "It grows.{{#claim ch09.up | check}}",
            "{{#claim ",
            |s| v.claim(s),
        )
        .unwrap();
        assert_eq!(silent, "It grows.");
        assert!(v.claim("ch09.down | check").is_err());
        assert!(v.claim("ch09.up | loud").is_err());
        let errs = expand_directive(
            "{{#claim ch09.down}} {{#claim ch09.absent}}",
            "{{#claim ",
            |s| v.claim(s),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("does not hold")
                && errs[0].contains("falls at every size"),
            "{}",
            errs[0]
        );
        assert!(errs[1].contains("absent"), "{}", errs[1]);
    }

    #[test]
    fn timings_are_read_from_their_own_file() {
        let (d, v) = values();
        std::fs::write(d.path().join("ch09/timings.json"), r#"{"seconds": 1.5}"#)
            .unwrap();
        assert_eq!(v.lookup("ch09.timings.seconds").unwrap(), "1.5");
        assert_eq!(v.lookup("ch09.a.n").unwrap(), "536064");
        let clash = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(clash.path().join("ch09")).unwrap();
        std::fs::write(clash.path().join("ch09/results.json"), r#"{"timings": 1}"#)
            .unwrap();
        std::fs::write(clash.path().join("ch09/timings.json"), r#"{}"#).unwrap();
        let err = Values::new(clash.path().to_path_buf())
            .lookup("ch09.timings")
            .unwrap_err();
        assert!(format!("{err:#}").contains("timings.json"), "{err:#}");
    }
}
