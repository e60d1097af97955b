//! Figure captions. On a chapter page (`chNN-slug.md`), every image has alt text and,
//! as the next paragraph, an italic caption `*Figure N.k: ...*`, where `N` is the
//! chapter's number and `k` counts the page's images from 1 in reading order; and
//! every "Figure N.k" the page mentions for its own chapter names a figure the page
//! has. Other pages need alt text only.

use anyhow::{Result, bail};
use mdbook_driver::MDBook;
use mdbook_driver::book::BookItem;

/// The chapter number of a chapter page: `ch03-low-rank.md` gives 3; exercise and
/// solution pages, and pages that are not chapters, give `None`.
pub fn chapter_number(file: &str) -> Option<u32> {
    let stem = file.strip_suffix(".md")?;
    let rest = stem.strip_prefix("ch")?;
    let (digits, slug) = rest.split_once('-')?;
    if slug.ends_with("exercises") || slug.ends_with("solutions") {
        return None;
    }
    digits.parse().ok()
}

/// An image line's alt text: `![alt](src)` alone on its line.
fn image_alt(line: &str) -> Option<&str> {
    let line = line.trim();
    let rest = line.strip_prefix("![")?;
    let end = rest.find("](")?;
    line.ends_with(')').then(|| &rest[..end])
}

/// The problems of one page, each as `page:line: message`.
pub fn page_problems(page: &str, text: &str) -> Vec<String> {
    let chapter = chapter_number(page.rsplit('/').next().unwrap_or(page));
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = Vec::new();
    let mut in_code = false;
    let mut figures = 0u32;
    let mut mentions = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let at = |msg: String| format!("{page}:{}: {msg}", i + 1);
        if let Some(alt) = image_alt(line) {
            if alt.trim().is_empty() {
                problems.push(at("an image without alt text".into()));
            }
            let Some(n) = chapter else { continue };
            figures += 1;
            let want = format!("*Figure {n}.{figures}:");
            let next = lines[i + 1..].iter().position(|l| !l.trim().is_empty());
            let Some(j) = next.map(|p| i + 1 + p) else {
                problems
                    .push(at(format!("this figure needs a caption `{want} ...*`")));
                continue;
            };
            if !lines[j].trim_start().starts_with(&want) {
                problems.push(at(format!(
                    "this figure's caption must start with `{want}` (found `{}`)",
                    lines[j].trim().chars().take(24).collect::<String>()
                )));
                continue;
            }
            let end = lines[j..]
                .iter()
                .position(|l| l.trim().is_empty())
                .map_or(lines.len(), |p| j + p);
            if !lines[end - 1].trim_end().ends_with('*') {
                problems.push(format!(
                    "{page}:{}: the caption of Figure {n}.{figures} must be one italic paragraph \
                     (ending with `*`)",
                    j + 1
                ));
            }
            continue;
        }
        // "Figure 3.2" in the text (captions included) for this chapter.
        if let Some(n) = chapter {
            let prefix = format!("Figure {n}.");
            let mut rest = *line;
            while let Some(p) = rest.find(&prefix) {
                let after = &rest[p + prefix.len()..];
                let k: String =
                    after.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(k) = k.parse::<u32>() {
                    mentions.push((i + 1, k));
                }
                rest = after;
            }
        }
    }
    if let Some(n) = chapter {
        for (line, k) in mentions {
            if k == 0 || k > figures {
                problems.push(format!(
                    "{page}:{line}: mentions Figure {n}.{k}, but the page has {figures} \
                     figure(s)"
                ));
            }
        }
    }
    problems
}

/// Check every page of the book.
pub fn check_book(book: &MDBook) -> Result<()> {
    let mut problems = Vec::new();
    for item in book.iter() {
        if let BookItem::Chapter(ch) = item
            && let Some(path) = &ch.path
        {
            problems
                .extend(page_problems(&path.display().to_string(), &ch.content));
        }
    }
    if !problems.is_empty() {
        bail!(
            "figures need alt text and, on chapter pages, a numbered caption right below:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chapter_numbers_come_from_chapter_pages_only() {
        assert_eq!(chapter_number("ch03-low-rank.md"), Some(3));
        assert_eq!(chapter_number("ch00-attention.md"), Some(0));
        assert_eq!(chapter_number("ch03-exercises.md"), None);
        assert_eq!(chapter_number("ch03-solutions.md"), None);
        assert_eq!(chapter_number("glossary.md"), None);
    }

    #[test]
    fn numbered_captions_in_order_pass() {
        let text = "Text.\n\n![A](generated/a.svg)\n\n*Figure 2.1: One\nline.*\n\n\
                    ![B](generated/b.svg)\n\n*Figure 2.2: Two.*\n\nSee Figure 2.2.\n";
        assert!(page_problems("ch02-x.md", text).is_empty());
    }

    #[test]
    fn missing_wrong_or_unclosed_captions_fail() {
        let none = "![A](a.svg)\n\nText.\n";
        assert!(page_problems("ch02-x.md", none)[0].contains("*Figure 2.1:"));
        let wrong = "![A](a.svg)\n\n*Figure 2.2: x*\n";
        assert!(page_problems("ch02-x.md", wrong)[0].contains("must start"));
        let open = "![A](a.svg)\n\n*Figure 2.1: x\n\n";
        assert!(page_problems("ch02-x.md", open)[0].contains("italic"));
        let last = "![A](a.svg)\n";
        assert!(page_problems("ch02-x.md", last)[0].contains("needs a caption"));
    }

    #[test]
    fn alt_text_is_required_everywhere_and_mentions_must_exist() {
        let p = page_problems("glossary.md", "![](a.svg)\n");
        assert!(p[0].contains("alt text"), "{p:?}");
        let p = page_problems(
            "ch04-x.md",
            "![A](a.svg)\n\n*Figure 4.1: x*\n\nFigure 4.3.\n",
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("Figure 4.3"), "{p:?}");
        // Code blocks are not figures.
        assert!(page_problems("ch04-x.md", "```\n![A](a.svg)\n```\n").is_empty());
    }
}
