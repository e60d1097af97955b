//! Citations: every work a page cites is on the references page, and every entry of
//! the references page is cited by at least one other page.
//!
//! A citation is recognised by a key, in the forms the pages use:
//!
//! - an arXiv identifier after the word arXiv, `arXiv 2204.05832` or
//!   `arXiv:2204.05832` (a line
//!   break may separate the two), or an `arxiv.org/abs/…` address;
//! - a GitHub issue or pull request, `#1371`; on the references page the address
//!   `github.com/owner/repo/issues/1371` (or `/pull/1371`) gives the same key;
//! - any other web address with a path, `host.tld/path`, such as
//!   `kexue.fm/archives/9529` (a
//!   `https://` prefix, a `www.` and trailing punctuation are ignored).
//!
//! Fenced code blocks and `{{#…}}` directives are not read.
//!
//! The references page is a Markdown list: each top-level `- ` item, with its
//! indented continuation lines, is one entry. An entry without any of the keys
//! above (a paper with no arXiv identifier) is cited by its first author's surname
//! followed, within a few words, by its year, as in "Roy & Vetterli (2007)".
//! Entries under a `## Tools` heading name software the book is built with, not
//! cited works, and are not checked. A citation on a page in any other form (a name
//! and a year alone) is not detected; the pages' convention is author, year and
//! arXiv identifier.

use std::collections::BTreeSet;
use std::fmt;

use anyhow::{Result, bail};
use mdbook_driver::MDBook;
use mdbook_driver::book::BookItem;

/// The file name of the references page.
pub const REFERENCES_PAGE: &str = "references.md";

/// One citation key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Arxiv(String),
    Issue(u32),
    Web(String),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Arxiv(id) => write!(f, "arXiv {id}"),
            Key::Issue(n) => write!(f, "#{n}"),
            Key::Web(a) => write!(f, "{a}"),
        }
    }
}

/// The text a check reads: fenced code blocks and `{{#…}}` directives removed.
fn readable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    let mut clean = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(start) = rest.find("{{#") {
        clean.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    clean.push_str(rest);
    clean
}

/// `dddd.dddd` or `dddd.ddddd` at the start of `s`, without a version suffix.
fn arxiv_id(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits =
        |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits(0) != 4 || b.get(4) != Some(&b'.') {
        return None;
    }
    let tail = digits(5);
    (tail == 4 || tail == 5).then(|| s[..5 + tail].to_string())
}

/// A web address token as a key, or `None` when the token is not an address with a
/// path.
fn web_key(token: &str) -> Option<Key> {
    let t = token.trim_end_matches(['.', ',', ';', ':', '!', '?']);
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    let t = t.strip_prefix("www.").unwrap_or(t);
    let (host, path) = t.split_once('/')?;
    let path = path.trim_end_matches('/');
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let tld_ok = labels.last().is_some_and(|l| {
        l.len() >= 2 && l.chars().all(|c| c.is_ascii_alphabetic())
    });
    if labels.len() < 2
        || !labels.iter().all(label_ok)
        || !tld_ok
        || path.is_empty()
    {
        return None;
    }
    let host = host.to_ascii_lowercase();
    if host == "arxiv.org" {
        let id = path.strip_prefix("abs/").or_else(|| path.strip_prefix("pdf/"))?;
        return arxiv_id(id).map(Key::Arxiv);
    }
    if host == "github.com" {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() >= 4
            && (parts[2] == "issues" || parts[2] == "pull")
            && let Ok(n) = parts[3].parse()
        {
            return Some(Key::Issue(n));
        }
    }
    Some(Key::Web(format!("{host}/{path}")))
}

/// Every citation key in `text` (already made readable).
pub fn keys(text: &str) -> BTreeSet<Key> {
    let text = readable(text);
    let mut found = BTreeSet::new();
    // arXiv identifiers after the word.
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("arxiv") {
        let after = from + i + "arxiv".len();
        let rest = &text[after..];
        let skipped = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_whitespace() || c == ':')
                .len();
        if let Some(id) = arxiv_id(&rest[skipped..]) {
            found.insert(Key::Arxiv(id));
        }
        from = after;
    }
    // Issue and pull-request numbers.
    let b = text.as_bytes();
    for (i, _) in text.match_indices('#') {
        let before_ok =
            i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'&');
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let after_ok = b.get(i + 1 + n).is_none_or(|c| !c.is_ascii_alphanumeric());
        if before_ok
            && n > 0
            && after_ok
            && let Ok(num) = text[i + 1..i + 1 + n].parse()
        {
            found.insert(Key::Issue(num));
        }
    }
    // Web addresses.
    let separator = |c: char| !c.is_ascii_graphic() || "()[]<>\"'`,".contains(c);
    for token in text.split(separator) {
        if let Some(k) = web_key(token) {
            found.insert(k);
        }
    }
    found
}

/// One entry of the references page.
#[derive(Debug)]
pub struct Entry {
    pub text: String,
    pub keys: BTreeSet<Key>,
}

impl Entry {
    /// A short name for messages: the entry's first words.
    fn name(&self) -> String {
        let words: Vec<&str> = self.text.split_whitespace().take(10).collect();
        words.join(" ")
    }

    /// First author's surname and the year, for an entry without a key.
    fn author_year(&self) -> Option<(String, String)> {
        let end = self.text.find([',', '.', '"']).unwrap_or(self.text.len());
        let first_author = self.text[..end].trim().trim_end_matches(" et al");
        let surname = first_author.split_whitespace().last()?.to_string();
        let year = self.text.split(|c: char| !c.is_ascii_digit()).find(|w| {
            w.len() == 4 && (w.starts_with("19") || w.starts_with("20"))
        })?;
        Some((surname, year.to_string()))
    }
}

/// The entries of the references page, outside a `## Tools` section.
pub fn entries(references: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut tools = false;
    let flush = |current: &mut Option<String>, out: &mut Vec<Entry>| {
        if let Some(text) = current.take() {
            let keys = keys(&text);
            out.push(Entry { text, keys });
        }
    };
    for line in readable(references).lines() {
        if let Some(heading) = line.strip_prefix('#') {
            flush(&mut current, &mut out);
            tools = heading
                .trim_start_matches('#')
                .trim()
                .eq_ignore_ascii_case("tools");
        } else if let Some(item) = line.strip_prefix("- ") {
            flush(&mut current, &mut out);
            if !tools {
                current = Some(item.trim().to_string());
            }
        } else if line.starts_with(char::is_whitespace) && !line.trim().is_empty() {
            if let Some(text) = current.as_mut() {
                text.push(' ');
                text.push_str(line.trim());
            }
        } else {
            flush(&mut current, &mut out);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Whether `surname` is followed, within a few words, by `year` somewhere in
/// `text`.
fn cites_by_name(text: &str, surname: &str, year: &str) -> bool {
    text.match_indices(surname).any(|(i, _)| {
        let boundary =
            text[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let window: String = text[i + surname.len()..].chars().take(40).collect();
        boundary && window.split(|c: char| !c.is_ascii_digit()).any(|w| w == year)
    })
}

/// The problems with a book's citations: `pages` are (name, Markdown) of every page
/// but the references page, `references` the references page's Markdown (empty when
/// there is none).
pub fn problems(pages: &[(String, String)], references: &str) -> Vec<String> {
    let entries = entries(references);
    let listed: BTreeSet<&Key> = entries.iter().flat_map(|e| &e.keys).collect();
    let mut out = Vec::new();
    let mut cited = BTreeSet::new();
    for (name, text) in pages {
        for key in keys(text) {
            if !listed.contains(&key) {
                out.push(format!(
                    "{name} cites {key}, which is not on the references page"
                ));
            }
            cited.insert(key);
        }
    }
    let readable_pages: Vec<String> =
        pages.iter().map(|(_, t)| readable(t)).collect();
    for entry in &entries {
        if entry.keys.is_empty() {
            match entry.author_year() {
                Some((surname, year)) => {
                    if !readable_pages.iter().any(|t| cites_by_name(t, &surname, &year)) {
                        out.push(format!(
                            "the reference \"{}\" is cited by no page (looked for {surname} … {year})",
                            entry.name()
                        ));
                    }
                }
                None => out.push(format!(
                    "the reference \"{}\" has no arXiv id, address, issue number or author and year to be cited by",
                    entry.name()
                )),
            }
        } else if !entry.keys.iter().any(|k| cited.contains(k)) {
            let keys: Vec<String> = entry.keys.iter().map(Key::to_string).collect();
            out.push(format!(
                "the reference \"{}\" is cited by no page (looked for {})",
                entry.name(),
                keys.join(", ")
            ));
        }
    }
    out
}

/// Check a loaded book: fails with the list of offenders.
pub fn check_book(book: &MDBook) -> Result<()> {
    let mut pages = Vec::new();
    let mut references = String::new();
    for item in book.iter() {
        if let BookItem::Chapter(ch) = item
            && let Some(path) = &ch.path
        {
            if path.file_name().is_some_and(|f| f == REFERENCES_PAGE) {
                references = ch.content.clone();
            } else {
                pages.push((path.display().to_string(), ch.content.clone()));
            }
        }
    }
    let problems = problems(&pages, &references);
    if !problems.is_empty() {
        bail!(
            "citations and the references page disagree:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFS: &str = "# References\n\nIntro text with no list.\n\n## Papers\n\n\
        - Thomas Wang et al. \"What Language Model Architecture ...\" ICML 2022. arXiv\n  2204.05832.\n\
        - Su Jianlin. \"Why decoder-only?\" 2023. https://kexue.fm/archives/9529.\n\
        - vLLM issue #1371, 2023. github.com/vllm-project/vllm/issues/1371.\n\
        - Olivier Roy, Martin Vetterli. \"The Effective Rank.\" EUSIPCO 2007.\n\n\
        ## Tools\n\n- candle, faer, mdBook.\n";

    const PAGE: &str = "# Page\n\nWang et al. (2022, arXiv 2204.05832) and Su (kexue.fm/archives/9529),\n\
        the issue (#1371), and the effective rank of Roy & Vetterli (2007).\n\n\
        ```sh\ncurl https://example.com/not/a/citation #99\n```\n\n{{#value ch01.arxiv_2999.12345}}\n";

    fn pages(text: &str) -> Vec<(String, String)> {
        vec![("page.md".to_string(), text.to_string())]
    }

    #[test]
    fn keys_take_the_forms_the_pages_use() {
        let k = keys(
            "arXiv 2204.05832, arXiv:1910.10683v2, arXiv\n2002.07028, arxiv.org/abs/2305.13245, \
             (PR #2762), issue #620. kexue.fm/archives/9889, https://www.example.org/a/b/. \
             Not keys: &#1234; x#12 v2.0/3, ../chapters-code/x.rs, crates.io, 2204.05832 alone.",
        );
        let want = BTreeSet::from([
            Key::Arxiv("2204.05832".into()),
            Key::Arxiv("1910.10683".into()),
            Key::Arxiv("2002.07028".into()),
            Key::Arxiv("2305.13245".into()),
            Key::Issue(2762),
            Key::Issue(620),
            Key::Web("kexue.fm/archives/9889".into()),
            Key::Web("example.org/a/b".into()),
        ]);
        assert_eq!(k, want);
    }

    #[test]
    fn entries_skip_tools_and_join_continuation_lines() {
        let e = entries(REFS);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].keys.contains(&Key::Arxiv("2204.05832".into())), "{:?}", e[0]);
        assert_eq!(e[2].keys, BTreeSet::from([Key::Issue(1371)]));
        assert!(e[3].keys.is_empty());
        assert_eq!(e[3].author_year(), Some(("Roy".into(), "2007".into())));
    }

    #[test]
    fn a_clean_pair_passes() {
        assert_eq!(problems(&pages(PAGE), REFS), Vec::<String>::new());
    }

    #[test]
    fn a_citation_missing_from_the_references_fails() {
        let page = format!(
            "{PAGE}\nAlso Shazeer (2019, arXiv 1911.02150) and vLLM PR #3158.\n"
        );
        let p = problems(&pages(&page), REFS);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("arXiv 1911.02150") && p[0].contains("page.md"),
            "{p:?}"
        );
        assert!(p[1].contains("#3158"), "{p:?}");
    }

    #[test]
    fn an_uncited_reference_fails() {
        let refs = format!(
            "{}- Nie et al. \"LLaDA.\" arXiv 2502.09992.\n",
            REFS.replace("## Tools\n\n- candle, faer, mdBook.\n", "")
        );
        let p = problems(&pages(PAGE), &refs);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("Nie et al.") && p[0].contains("arXiv 2502.09992"),
            "{p:?}"
        );
    }

    #[test]
    fn an_uncited_reference_without_an_id_fails_by_author_and_year() {
        let page = PAGE.replace("Roy & Vetterli (2007)", "Roy & Vetterli (2008)");
        let p = problems(&pages(&page), REFS);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("Roy") && p[0].contains("2007"), "{p:?}");
    }

    #[test]
    fn without_a_references_page_every_citation_fails() {
        let p = problems(&pages(PAGE), "");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(problems(&pages("# Page\n\nNo citations here.\n"), "").is_empty());
    }
}
