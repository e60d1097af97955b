//! Table typography: in a Markdown table row, a number and its spread (`2.667 ±
//! 0.483`) and a numeric interval (`[-0.174, +1.034]`) are joined by no-break
//! spaces, so that a column the text column squeezes wraps between an estimate and
//! its interval or after a `→`, never inside `a ± b` or inside an interval. The
//! theme (`book/theme/head.hbs`) sizes the tables; this keeps what wraps readable.
//!
//! Code blocks and code spans are left alone.

use anyhow::Result;
use mdbook_driver::book::{Book, BookItem};
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};

pub struct Tables;

const NBSP: char = '\u{a0}';

/// Apply the rule to every table row of one page.
pub fn process(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<String> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(f) = &fence {
            if trimmed.starts_with(f.as_str()) {
                fence = None;
            }
            out.push_str(line);
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            let c = trimmed.chars().next().unwrap_or('`');
            fence = Some(trimmed.chars().take_while(|&x| x == c).collect());
            out.push_str(line);
        } else if trimmed.starts_with('|') {
            out.push_str(&row(line));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// One table row: the parts outside code spans get the no-break spaces.
fn row(line: &str) -> String {
    line.split('`')
        .enumerate()
        .map(
            |(i, part)| {
                if i % 2 == 0 { join_numbers(part) } else { part.to_string() }
            },
        )
        .collect::<Vec<_>>()
        .join("`")
}

fn join_numbers(text: &str) -> String {
    let text = text.replace(" ± ", &format!("{NBSP}±{NBSP}"));
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let interval =
            rest.find(']').map(|close| &rest[1..close]).and_then(|inside| {
                let (lo, hi) = inside.split_once(", ")?;
                (is_number(lo) && is_number(hi))
                    .then(|| format!("[{lo},{NBSP}{hi}]"))
            });
        match interval {
            Some(joined) => {
                rest = &rest[rest.find(']').map_or(rest.len(), |c| c + 1)..];
                out.push_str(&joined);
            }
            None => {
                out.push('[');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A number as the chapters print it: digits with an optional sign, point,
/// exponent, percent.
fn is_number(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_digit() || "+-−.,eE%×".contains(c))
}

impl Preprocessor for Tables {
    fn name(&self) -> &str {
        "tables"
    }

    fn run(&self, _ctx: &PreprocessorContext, mut book: Book) -> Result<Book> {
        book.for_each_mut(|item| {
            if let BookItem::Chapter(ch) = item {
                ch.content = process(&ch.content);
            }
        });
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_intervals_in_table_rows_do_not_break() {
        let page =
            "| a | b |\n|---|---:|\n| 65.0 ± 0.0 | +0.430 [-0.174, +1.034] * |\n";
        let out = process(page);
        assert!(out.contains("65.0\u{a0}±\u{a0}0.0"), "{out}");
        assert!(out.contains("+0.430 [-0.174,\u{a0}+1.034] *"), "{out}");
        // The break between an estimate and its interval, and after an arrow,
        // stays.
        assert_eq!(process("| 21.1 → 31.0 |\n"), "| 21.1 → 31.0 |\n");
    }

    #[test]
    fn prose_code_and_other_brackets_are_left_alone() {
        let page = concat!(
            "In prose 1.0 ± 0.1 may wrap.\n",
            "```text\n| 1.0 ± 0.1 |\n```\n",
            "| `x ± y` | [Vaswani, 2017](refs.md) | [a, b] | [1, 2 |\n",
        );
        let out = process(page);
        assert_eq!(out, page);
    }
}
