//! The glossary-link check: a page links a glossary term to its entry at or before
//! its first use.
//!
//! The glossary page (`glossary.md`) is a list of entries, one paragraph each, that
//! start with an anchor and the term in bold:
//!
//! ```text
//! <a id="kv-cache"></a>**KV cache.** The keys and values of positions already processed, ...
//! ```
//!
//! The bold name (without its final period) gives the entry's terms:
//!
//! - the name is one term (`Query, key, value` too); a slash separates
//!   alternatives, so
//!   `MQA / GQA` names two terms, `MQA` and `GQA`;
//! - a parenthesis that is an abbreviation (no lower-case letter), as in `Masked
//!   language
//!   modelling (MLM)`, is an alias: either form is a use of the entry;
//! - any other parenthesis qualifies the name and is not part of the term:
//!   `Effective rank
//!   (entropy)` is the term "effective rank".
//!
//! On every page except the glossary, the references, and the exercise and solution
//! pages (`chNN-exercises.md`, `chNN-solutions.md`), a term used in prose must be
//! linked to its entry, `[term](glossary.md#anchor)`, at or before its first use. A
//! use is a case-insensitive, whole-word occurrence of a term (hyphens are part of
//! a word, so "non-causal attention" is not a use of "causal attention"), with a
//! simple plural on its last word (`s`, `es`, or `y` → `ies`: "KV caches" is a use
//! of "KV cache"); line breaks may fall between its words. Where terms overlap, the
//! longest wins ("shared encoder-decoder" is not also a use of "encoder-decoder").
//!
//! Not prose, so not read: headings, quotations (`>` lines: another author's words,
//! which a link would alter), fenced code blocks, code spans, math (`$…$`,
//! `$$…$$`), `{{#…}}` directives, HTML tags and comments, web addresses, images,
//! and links, both their targets and the text of links to other pages. A link to a
//! glossary entry links that entry, whatever its text says. A link to `glossary.md`
//! without an anchor links no entry, and its text is read as prose. A link to an
//! anchor the glossary does not have fails the check.
//!
//! Each term is reported once per page, at its first use; the glossary itself fails
//! the check when an entry has no anchor or shares its anchor or a term with
//! another entry.

use std::collections::HashMap;

use anyhow::{Result, bail};
use mdbook_driver::MDBook;
use mdbook_driver::book::BookItem;

/// The file name of the glossary page.
pub const GLOSSARY_PAGE: &str = "glossary.md";

/// One glossary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The `id` of its anchor: pages link it as `glossary.md#<anchor>`.
    pub anchor: String,
    /// The bold name, as written.
    pub name: String,
    /// The forms a page may use, lower-case, each split into words.
    pub terms: Vec<Vec<String>>,
    /// The line of the glossary page it starts on, from 1.
    pub line: usize,
}

/// Whether the check applies to a page (by its file name).
pub fn applies_to(page: &str) -> bool {
    let file = page.rsplit('/').next().unwrap_or(page);
    file != GLOSSARY_PAGE
        && file != crate::references::REFERENCES_PAGE
        && file != "SUMMARY.md"
        && !file.ends_with("-exercises.md")
        && !file.ends_with("-solutions.md")
}

/// The anchor a name would naturally get: lower-case words joined by hyphens.
fn slug(name: &str) -> String {
    let cleaned: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '-' { c } else { ' ' })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join("-")
}

/// The terms of an entry, from its bold name (see the module documentation).
pub fn terms(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in name.split(" / ") {
        let part = part.trim();
        let (base, paren) = match part.find(" (") {
            Some(i) if part.ends_with(')') => {
                (&part[..i], Some(&part[i + 2..part.len() - 1]))
            }
            _ => (part, None),
        };
        out.push(base.trim().to_string());
        if let Some(p) = paren.map(str::trim)
            && !p.is_empty()
            && !p.chars().any(char::is_lowercase)
        {
            out.push(p.to_string());
        }
    }
    out.retain(|t| !t.is_empty());
    out
}

/// The `id` of an `<a id="…"></a>` at the start of `line`, and the rest of the
/// line.
fn leading_anchor(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("<a id=\"")?;
    let (id, rest) = rest.split_once('"')?;
    let rest = rest.trim_start().strip_prefix("></a>")?;
    Some((id, rest))
}

/// The entries of the glossary page, or the problems that stop it being read.
pub fn entries(glossary: &str) -> std::result::Result<Vec<Entry>, Vec<String>> {
    let mut out: Vec<Entry> = Vec::new();
    let mut problems = Vec::new();
    let mut previous_blank = true;
    let mut fenced = false;
    for (i, line) in glossary.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
        }
        let starts_paragraph = previous_blank && !fenced;
        previous_blank = trimmed.is_empty();
        if !starts_paragraph {
            continue;
        }
        let (anchor, rest) = match leading_anchor(trimmed) {
            Some((id, rest)) => (Some(id), rest),
            None => (None, trimmed),
        };
        let Some(bold) = rest
            .strip_prefix("**")
            .and_then(|r| r.split_once("**"))
            .map(|(b, _)| b)
        else {
            if anchor.is_some() {
                problems.push(format!(
                    "{GLOSSARY_PAGE}:{n}: an anchor must be followed by the entry's bold name, `**Term.**`"
                ));
            }
            continue;
        };
        let name = bold.trim().trim_end_matches('.').trim().to_string();
        let Some(anchor) = anchor else {
            problems.push(format!(
                "{GLOSSARY_PAGE}:{n}: the entry \"{name}\" has no anchor: start it with <a id=\"{}\"></a>",
                slug(&terms(&name).first().cloned().unwrap_or_else(|| name.clone()))
            ));
            continue;
        };
        if anchor.is_empty()
            || anchor.chars().any(|c| c.is_whitespace() || c == '#')
        {
            problems
                .push(format!("{GLOSSARY_PAGE}:{n}: the anchor `{anchor}` of \"{name}\" is not a plain id"));
            continue;
        }
        if let Some(other) = out.iter().find(|e| e.anchor == anchor) {
            problems.push(format!(
                "{GLOSSARY_PAGE}:{n}: the anchor `{anchor}` is also the anchor of \"{}\" (line {})",
                other.name, other.line
            ));
            continue;
        }
        let forms: Vec<Vec<String>> = terms(&name)
            .iter()
            .map(|t| {
                t.to_lowercase().split_whitespace().map(str::to_string).collect()
            })
            .collect();
        for form in &forms {
            let twice = out.iter().find(|e| e.terms.contains(form));
            if let Some(other) = twice {
                problems.push(format!(
                    "{GLOSSARY_PAGE}:{n}: the term \"{}\" of \"{name}\" is also a term of \"{}\" (line {})",
                    form.join(" "),
                    other.name,
                    other.line
                ));
            }
        }
        out.push(Entry { anchor: anchor.to_string(), name, terms: forms, line: n });
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// A link to a glossary entry, at a character position of the page.
#[derive(Debug, PartialEq)]
struct Link {
    pos: usize,
    anchor: String,
}

/// Blank out (keeping line breaks) the characters in `from..to`.
fn blank(s: &mut [char], from: usize, to: usize) {
    let to = to.min(s.len());
    for c in &mut s[from..to] {
        if *c != '\n' {
            *c = ' ';
        }
    }
}

fn starts_with(s: &[char], at: usize, pat: &str) -> bool {
    pat.chars().enumerate().all(|(k, p)| s.get(at + k) == Some(&p))
}

fn find(s: &[char], from: usize, pat: &str) -> Option<usize> {
    (from..s.len()).find(|&i| starts_with(s, i, pat))
}

/// Is `line` an ATX heading (`#` to `######`, then a space or the end)?
fn is_heading(line: &str) -> bool {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    (1..=6).contains(&hashes)
        && line[hashes..].chars().next().is_none_or(char::is_whitespace)
}

/// Blank out headings, fenced code blocks and display math, line by line.
fn blank_blocks(s: &mut [char]) {
    let mut fence: Option<(char, usize)> = None;
    let mut display = false;
    let mut start = 0;
    while start < s.len() {
        let end = (start..s.len()).find(|&i| s[i] == '\n').unwrap_or(s.len());
        let line: String = s[start..end].iter().collect();
        let t = line.trim_start();
        let mut hide = true;
        if let Some((c, n)) = fence {
            let run = t.chars().take_while(|&x| x == c).count();
            if run >= n && t[run * c.len_utf8()..].trim().is_empty() {
                fence = None;
            }
        } else if display {
            display = !line.trim_end().ends_with("$$");
        } else if t.starts_with("```") || t.starts_with("~~~") {
            let c = t.chars().next().unwrap_or('`');
            fence = Some((c, t.chars().take_while(|&x| x == c).count()));
        } else if let Some(body) = t.strip_prefix("$$") {
            display = !body.trim_end().ends_with("$$");
        } else {
            // Headings, and quotations (`>`): someone else's words, which a link
            // would alter.
            hide = is_heading(t) || t.starts_with('>');
        }
        if hide {
            blank(s, start, end);
        }
        start = end + 1;
    }
}

/// Where the paragraph holding position `from` ends (a blank line, or the end of
/// the text).
fn paragraph_end(s: &[char], from: usize) -> usize {
    let mut i = from;
    while i < s.len() {
        if s[i] == '\n' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '\n' && s[j].is_whitespace() {
                j += 1;
            }
            if j >= s.len() || s[j] == '\n' {
                return i;
            }
        }
        i += 1;
    }
    s.len()
}

/// The index of the bracket or parenthesis that closes the one at `open`.
fn closing(s: &[char], open: usize, stop: usize) -> Option<usize> {
    let (o, c) = (s[open], if s[open] == '[' { ']' } else { ')' });
    let mut depth = 0;
    let mut i = open;
    while i < stop {
        match s[i] {
            '\\' => i += 1,
            x if x == o => depth += 1,
            x if x == c => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The page's prose: everything that is not prose blanked out (line breaks kept, so
/// positions and lines are the page's own), and the page's links to glossary
/// entries.
fn prose(text: &str) -> (Vec<char>, Vec<Link>) {
    let mut s: Vec<char> = text.chars().collect();
    blank_blocks(&mut s);
    let mut links = Vec::new();
    let n = s.len();
    let mut i = 0;
    while i < n {
        match s[i] {
            '\\' => {
                let skip = if s.get(i + 1).is_some_and(char::is_ascii_punctuation) {
                    2
                } else {
                    1
                };
                blank(&mut s, i, i + skip);
                i += skip;
            }
            '`' => {
                let run = s[i..].iter().take_while(|&&c| c == '`').count();
                match crate::math::code_span_end(&s, i) {
                    Some(e) => {
                        blank(&mut s, i, e);
                        i = e;
                    }
                    None => i += run,
                }
            }
            '$' if s
                .get(i + 1)
                .is_some_and(|c| !c.is_whitespace() && *c != '$') =>
            {
                let stop = paragraph_end(&s, i);
                let close = (i + 1..stop).find(|&j| {
                    s[j] == '$' && s[j - 1] != '\\' && !s[j - 1].is_whitespace()
                });
                match close {
                    Some(j) if !s.get(j + 1).is_some_and(char::is_ascii_digit) => {
                        blank(&mut s, i, j + 1);
                        i = j + 1;
                    }
                    _ => i += 1,
                }
            }
            '{' if starts_with(&s, i, "{{#") => {
                let end = find(&s, i, "}}").map_or(n, |e| e + 2);
                blank(&mut s, i, end);
                i = end;
            }
            '<' if starts_with(&s, i, "<!--") => {
                let end = find(&s, i, "-->").map_or(n, |e| e + 3);
                blank(&mut s, i, end);
                i = end;
            }
            '<' if s
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '/') =>
            {
                let end = (i..n).find(|&j| s[j] == '>').map_or(i + 1, |e| e + 1);
                blank(&mut s, i, end);
                i = end;
            }
            'h' if (starts_with(&s, i, "https://")
                || starts_with(&s, i, "http://"))
                && (i == 0 || !s[i - 1].is_alphanumeric()) =>
            {
                let end = (i..n)
                    .find(|&j| s[j].is_whitespace() || ")>]".contains(s[j]))
                    .unwrap_or(n);
                blank(&mut s, i, end);
                i = end;
            }
            '[' | '!' => {
                let open = if s[i] == '!' { i + 1 } else { i };
                if s.get(open) != Some(&'[') {
                    i += 1;
                    continue;
                }
                let stop = paragraph_end(&s, open);
                let Some(rb) = closing(&s, open, stop) else {
                    i += 1;
                    continue;
                };
                let Some(rp) = (s.get(rb + 1) == Some(&'('))
                    .then(|| closing(&s, rb + 1, stop))
                    .flatten()
                else {
                    i += 1;
                    continue;
                };
                let inside: String = s[rb + 2..rp].iter().collect();
                let target = inside.split_whitespace().next().unwrap_or("");
                let target = target.trim_start_matches('<').trim_end_matches('>');
                let target = target.strip_prefix("./").unwrap_or(target);
                if open == i && target == GLOSSARY_PAGE {
                    // A link to the glossary page as a whole: its text is prose.
                    blank(&mut s, rb, rp + 1);
                    blank(&mut s, i, i + 1);
                    i += 1;
                    continue;
                }
                if open == i
                    && let Some(anchor) = target
                        .strip_prefix(GLOSSARY_PAGE)
                        .and_then(|a| a.strip_prefix('#'))
                {
                    links.push(Link { pos: i, anchor: anchor.to_string() });
                }
                blank(&mut s, i, rp + 1);
                i = rp + 1;
            }
            _ => i += 1,
        }
    }
    (s, links)
}

/// Letters, digits and hyphens make words.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '-'
}

/// The end of a use of `words` starting at `at`, if there is one: each word matched
/// without regard to case, one or more spaces or line breaks between words, a
/// simple plural allowed on the last, and no word character after it.
fn match_at(s: &[char], at: usize, words: &[String]) -> Option<usize> {
    let eq = |i: usize, w: &str| -> Option<usize> {
        let mut j = i;
        for c in w.chars() {
            let t = *s.get(j)?;
            if t.to_lowercase().ne(c.to_lowercase()) {
                return None;
            }
            j += 1;
        }
        Some(j)
    };
    let mut i = at;
    for (k, w) in words.iter().enumerate() {
        if k > 0 {
            let spaces = s[i..].iter().take_while(|c| c.is_whitespace()).count();
            if spaces == 0 {
                return None;
            }
            i += spaces;
        }
        if k + 1 < words.len() {
            i = eq(i, w)?;
            continue;
        }
        // The last word, singular or with a simple plural: the longest that ends a
        // word.
        let mut forms = vec![w.clone(), format!("{w}s"), format!("{w}es")];
        if let Some(stem) = w.strip_suffix('y') {
            forms.push(format!("{stem}ies"));
        }
        return forms
            .iter()
            .filter_map(|f| eq(i, f))
            .filter(|&e| s.get(e).is_none_or(|&c| !is_word(c)))
            .max();
    }
    None
}

/// One use of a term: the entry, where, and the text as written (spaces
/// normalised).
#[derive(Debug, PartialEq)]
struct Use {
    entry: usize,
    pos: usize,
    text: String,
}

/// Every use of a glossary term in the prose `s`, longest first where they overlap.
fn uses(s: &[char], entries: &[Entry]) -> Vec<Use> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if (i > 0 && is_word(s[i - 1])) || !s[i].is_alphanumeric() {
            i += 1;
            continue;
        }
        let best = entries
            .iter()
            .enumerate()
            .flat_map(|(k, e)| {
                e.terms
                    .iter()
                    .filter_map(move |t| match_at(s, i, t).map(|end| (end, k)))
            })
            .max_by_key(|&(end, k)| (end, std::cmp::Reverse(k)));
        match best {
            Some((end, entry)) => {
                let text: String = s[i..end].iter().collect();
                out.push(Use {
                    entry,
                    pos: i,
                    text: text.split_whitespace().collect::<Vec<_>>().join(" "),
                });
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

/// The 1-based line of a character position.
fn line_of(text: &[char], pos: usize) -> usize {
    1 + text[..pos.min(text.len())].iter().filter(|&&c| c == '\n').count()
}

/// The problems of one page: terms used before they are linked, and links to no
/// entry.
pub fn page_problems(
    page: &str,
    text: &str,
    entries: &[Entry],
) -> Vec<(usize, String)> {
    let (s, links) = prose(text);
    let mut out = Vec::new();
    for link in &links {
        if !entries.iter().any(|e| e.anchor == link.anchor) {
            out.push((
                link.pos,
                format!(
                    "{page}:{}: the link to {GLOSSARY_PAGE}#{} points to no glossary entry",
                    line_of(&s, link.pos),
                    link.anchor
                ),
            ));
        }
    }
    let mut first_link: HashMap<&str, usize> = HashMap::new();
    for link in &links {
        first_link.entry(link.anchor.as_str()).or_insert(link.pos);
    }
    let mut reported = vec![false; entries.len()];
    for u in uses(&s, entries) {
        let entry = &entries[u.entry];
        if reported[u.entry] {
            continue;
        }
        reported[u.entry] = true;
        if first_link.get(entry.anchor.as_str()).is_none_or(|&l| u.pos < l) {
            out.push((
                u.pos,
                format!(
                    "{page}:{}: \"{}\" is used before it is linked to the glossary (link its first use: [{}]({GLOSSARY_PAGE}#{}))",
                    line_of(&s, u.pos),
                    u.text,
                    u.text,
                    entry.anchor
                ),
            ));
        }
    }
    out.sort_by_key(|(pos, _)| *pos);
    out
}

/// The problems of a book: `pages` are (name, Markdown) of its pages, `glossary`
/// the glossary page's Markdown (`None` when the book has none: then no term is
/// required, and any link to a glossary entry points to nothing).
pub fn problems(pages: &[(String, String)], glossary: Option<&str>) -> Vec<String> {
    let entries = match glossary.map(entries) {
        Some(Ok(e)) => e,
        Some(Err(problems)) => return problems,
        None => Vec::new(),
    };
    pages
        .iter()
        .filter(|(name, _)| applies_to(name))
        .flat_map(|(name, text)| {
            page_problems(name, text, &entries).into_iter().map(|(_, p)| p)
        })
        .collect()
}

/// Check a loaded book: fails with every offender listed.
pub fn check_book(book: &MDBook) -> Result<()> {
    let mut pages = Vec::new();
    let mut glossary = None;
    for item in book.iter() {
        if let BookItem::Chapter(ch) = item
            && let Some(path) = &ch.path
        {
            if path.file_name().is_some_and(|f| f == GLOSSARY_PAGE) {
                glossary = Some(ch.content.clone());
            }
            pages.push((path.display().to_string(), ch.content.clone()));
        }
    }
    let problems = problems(&pages, glossary.as_deref());
    if !problems.is_empty() {
        bail!(
            "glossary terms must be linked to the glossary at their first use on a page:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOSSARY: &str = "# Glossary\n\n\
        <a id=\"kv-cache\"></a>**KV cache.** The keys and values kept.\n\n\
        <a id=\"token\"></a>**Token.** A piece of text.\n\n\
        <a id=\"mlm\"></a>**Masked language modelling (MLM).** Hide tokens, predict them.\n\n\
        <a id=\"mqa-gqa\"></a>**MQA / GQA.** Shared key/value heads.\n\n\
        <a id=\"effective-rank\"></a>**Effective rank (entropy).** A smooth count.\n\n\
        <a id=\"encoder-decoder\"></a>**Encoder-decoder.** Two stacks.\n\n\
        <a id=\"shared-encoder-decoder\"></a>**Shared encoder-decoder.** T5's variant.\n\n\
        <a id=\"causal-attention\"></a>**Causal attention.** Reads the past.\n\n\
        <a id=\"query\"></a>**Query.** What a position looks for.\n";

    fn check(page: &str) -> Vec<String> {
        let entries = entries(GLOSSARY).unwrap();
        page_problems("page.md", page, &entries)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn glossary_entries_give_their_anchors_terms_and_aliases() {
        let e = entries(GLOSSARY).unwrap();
        assert_eq!(e.len(), 9);
        assert_eq!(e[0].anchor, "kv-cache");
        assert_eq!(e[0].terms, vec![vec!["kv".to_string(), "cache".to_string()]]);
        assert_eq!(e[0].line, 3);
        assert_eq!(
            terms("Masked language modelling (MLM)"),
            ["Masked language modelling", "MLM"]
        );
        assert_eq!(terms("MQA / GQA"), ["MQA", "GQA"]);
        assert_eq!(
            terms("Multi-query attention (MQA) / grouped-query attention (GQA)"),
            ["Multi-query attention", "MQA", "grouped-query attention", "GQA"]
        );
        assert_eq!(terms("Effective rank (entropy)"), ["Effective rank"]);
        assert_eq!(terms("Block (Transformer block)"), ["Block"]);
        assert_eq!(terms("Query, key, value"), ["Query, key, value"]);
    }

    #[test]
    fn a_glossary_entry_without_an_anchor_or_with_a_duplicate_fails() {
        let p = entries("# G\n\n**KV cache.** Kept.\n").unwrap_err();
        assert_eq!(
            p,
            [
                "glossary.md:3: the entry \"KV cache\" has no anchor: start it with <a id=\"kv-cache\"></a>"
            ]
        );
        let twice = "# G\n\n<a id=\"a\"></a>**MLM.** x\n\n<a id=\"a\"></a>**Cloze.** y\n\n\
                     <a id=\"b\"></a>**Masked language modelling (MLM).** z\n";
        let p = entries(twice).unwrap_err();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains(":5:") && p[0].contains("`a`"), "{p:?}");
        assert!(p[1].contains(":7:") && p[1].contains("\"mlm\""), "{p:?}");
    }

    #[test]
    fn a_use_before_the_link_fails_and_the_message_names_page_line_and_term() {
        let p = check(
            "# Page\n\nFirst line.\nThe KV cache is small.\n\nThe [KV cache](glossary.md#kv-cache) again.\n",
        );
        assert_eq!(
            p,
            [
                "page.md:4: \"KV cache\" is used before it is linked to the glossary \
              (link its first use: [KV cache](glossary.md#kv-cache))"
            ]
        );
        // Never linked at all: reported at the first use only.
        let p = check("Tokens, and more tokens.\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("page.md:1: \"Tokens\" is used before"), "{p:?}");
    }

    #[test]
    fn a_link_at_the_first_use_passes_and_so_do_later_uses() {
        let page = "# Page\n\nA [token](glossary.md#token) is read; tokens are read again, a token.\n\
                    The [cache](glossary.md#kv-cache) of keys, then the KV caches.\n";
        assert_eq!(check(page), Vec::<String>::new());
    }

    #[test]
    fn code_math_headings_quotations_directives_and_other_links_are_not_prose() {
        let page = "# The KV cache and tokens\n\n## Token\n\n> A quoted token, and\n> a KV cache.\n\n\
                    ```rust\nlet token = kv_cache(); // KV cache\n```\n\n\
                    Inline `token` code, math $\\text{token}$ and\n$$\n\\text{KV cache}\n$$\n\
                    a {{#include generated/token.md}} directive, <span title=\"token\">x</span>,\n\
                    [the token chapter](ch02.md#token), ![a token](fig/token.svg), https://x.org/token,\n\
                    <!-- a token -->, and `` a ` token ``.\n";
        assert_eq!(check(page), Vec::<String>::new());
        // The same page with one use in prose: that use, and only it, is reported.
        let p = check(&format!("{page}Then a token.\n"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("page.md:19: \"token\""), "{p:?}");
    }

    #[test]
    fn plurals_line_breaks_aliases_and_case_are_uses() {
        let p = check("Two KV\ncaches.\n");
        assert!(
            p[0].contains("page.md:1: \"KV caches\"")
                && p[0].contains("[KV caches](glossary.md#kv-cache)"),
            "{p:?}"
        );
        let p = check("Many queries.\n");
        assert!(p[0].contains("\"queries\"") && p[0].contains("#query"), "{p:?}");
        let p = check("BERT's MLM, then masked language modelling.\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("\"MLM\"") && p[0].contains("#mlm"), "{p:?}");
        let p = check("The gqa model.\n");
        assert!(p[0].contains("\"gqa\"") && p[0].contains("#mqa-gqa"), "{p:?}");
        // The alias is linked first: the long form after it is fine.
        assert!(
            check("[MLM](glossary.md#mlm) is masked language modelling.\n")
                .is_empty()
        );
    }

    #[test]
    fn whole_words_only_and_the_longest_term_wins() {
        // Not words of their own: a longer word, a hyphenated compound, a
        // qualifier.
        assert!(
            check(
                "The tokenizer, token-level, non-causal attention, the entropy.\n"
            )
            .is_empty()
        );
        // "shared encoder-decoder" is one use of its own entry, not also of
        // "encoder-decoder".
        let p = check(
            "A [shared encoder-decoder](glossary.md#shared-encoder-decoder); an encoder-decoder's.\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("\"encoder-decoder\"")
                && p[0].contains("#encoder-decoder"),
            "{p:?}"
        );
        let p = check("The shared encoder-decoder.\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("\"shared encoder-decoder\""), "{p:?}");
    }

    #[test]
    fn a_link_to_the_glossary_page_links_no_term_and_an_unknown_anchor_fails() {
        let p =
            check("See the [glossary](glossary.md) on [*tokens*](glossary.md).\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("\"tokens\"") && p[0].contains("#token"), "{p:?}");
        let p = check("A [token](glossary.md#tokens).\n");
        assert_eq!(
            p,
            [
                "page.md:1: the link to glossary.md#tokens points to no glossary entry"
            ]
        );
    }

    #[test]
    fn the_check_skips_the_glossary_references_exercises_and_solutions() {
        for page in [
            "glossary.md",
            "references.md",
            "ch01-exercises.md",
            "ch06-solutions.md",
        ] {
            assert!(!applies_to(page), "{page}");
        }
        for page in [
            "introduction.md",
            "article.md",
            "ch00-attention.md",
            "ch03-low-rank.md",
            "appendix-reproducing.md",
        ] {
            assert!(applies_to(page), "{page}");
        }
        let pages = vec![
            ("ch01-exercises.md".to_string(), "A token.\n".to_string()),
            ("ch01-four-masks.md".to_string(), "A token.\n".to_string()),
        ];
        let p = problems(&pages, Some(GLOSSARY));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("ch01-four-masks.md:1:"), "{p:?}");
        // Without a glossary there is nothing to require.
        assert!(problems(&pages, None).is_empty());
    }

    #[test]
    fn dollars_that_are_not_math_do_not_hide_prose() {
        // `$5 and $` is not math (a space before the closing dollar), so the token
        // is prose.
        let p = check("It costs $5 and $3 per token.\n");
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
