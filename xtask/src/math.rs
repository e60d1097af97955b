//! The math preprocessor: `$…$` (inline) and `$$…$$` (display) become MathML at
//! build time, so formulas render in any current browser with no network and no
//! JavaScript.
//!
//! Code blocks and inline code are left alone; `\$` is a literal dollar sign.
//! Invalid LaTeX fails the build.

use anyhow::{Result, bail};
use mdbook_driver::book::Book;
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};
use pulldown_latex::{
    Parser, RenderConfig, Storage, config::DisplayMode, push_mathml,
};

use crate::bookcheck::rewrite_chapters;

pub struct Math;

/// Render one LaTeX formula to a single line of MathML.
pub fn render(latex: &str, display: bool) -> Result<String> {
    let storage = Storage::new();
    let events: Vec<_> = Parser::new(latex, &storage).collect();
    if let Some(Err(e)) = events.iter().find(|e| e.is_err()) {
        bail!("invalid LaTeX `{latex}`: {e}");
    }
    let config = RenderConfig {
        display_mode: if display {
            DisplayMode::Block
        } else {
            DisplayMode::Inline
        },
        annotation: Some(latex),
        ..RenderConfig::default()
    };
    let mut out = String::new();
    push_mathml(&mut out, events.into_iter(), config)?;
    // pulldown-latex writes a control space (`\ `, `~`, `\nobreakspace`) as an
    // escaped entity, `<mtext>&amp;nbsp;</mtext>`, which a browser shows as the
    // literal text `&nbsp;`.
    let out = out.replace("<mtext>&amp;nbsp;</mtext>", "<mtext>&nbsp;</mtext>");
    Ok(sanitize(&out.replace('\n', " ")))
}

/// Make the renderer's MathML safe to embed in Markdown and HTML, in one pass:
///
/// - pulldown-latex writes the operators `<` and `>` unescaped (`<mo><</mo>`), and
///   `&` too; in
///   text they become `&lt;`, `&gt;` and `&amp;` (a `<` opens a tag only before a letter or `/`);
/// - it sometimes omits the space between two attributes
///   (`stretchy="true"minsize=`);
/// - Markdown would read `*`, `_`, `\` and friends in the text as formatting, so
///   they become
///   character references.
fn sanitize(html: &str) -> String {
    let chars: Vec<char> = html.chars().collect();
    let mut out = String::with_capacity(html.len() + 16);
    let (mut in_tag, mut in_quote) = (false, false);
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        if in_tag {
            out.push(c);
            match c {
                '"' if in_quote => {
                    in_quote = false;
                    if next.is_some_and(|n| n.is_alphabetic()) {
                        out.push(' ');
                    }
                }
                '"' => in_quote = true,
                '>' if !in_quote => in_tag = false,
                _ => {}
            }
            continue;
        }
        match c {
            '<' if next.is_some_and(|n| n.is_ascii_alphabetic() || n == '/') => {
                in_tag = true;
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // An entity the renderer wrote itself (`&nbsp;`, `&#8203;`) stays; a
            // bare `&` is escaped.
            '&' if is_entity(&chars[i + 1..]) => out.push(c),
            '&' => out.push_str("&amp;"),
            '*' | '_' | '\\' | '`' | '[' | ']' | '~' | '$' | '|' => {
                out.push_str(&format!("&#{};", c as u32))
            }
            _ => out.push(c),
        }
    }
    out
}

/// Does the text after an `&` spell an entity name or number followed by `;`?
fn is_entity(rest: &[char]) -> bool {
    let body: Vec<char> = rest
        .iter()
        .copied()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '#')
        .take(12)
        .collect();
    !body.is_empty() && rest.get(body.len()) == Some(&';')
}

/// Replace the math in one page.
pub fn process(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<String> = None;
    // Consecutive prose lines, so inline math may wrap across a line break.
    let mut para = String::new();
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(f) = &fence {
            if trimmed.starts_with(f.as_str()) {
                fence = None;
            }
            out.push_str(line);
            continue;
        }
        let is_fence = trimmed.starts_with("```") || trimmed.starts_with("~~~");
        let is_display = trimmed.starts_with("$$");
        if is_fence || is_display || trimmed.trim().is_empty() {
            out.push_str(&inline(&para)?);
            para.clear();
        }
        if is_fence {
            let c = trimmed.chars().next().unwrap_or('`');
            fence = Some(trimmed.chars().take_while(|&x| x == c).collect());
            out.push_str(line);
        } else if is_display {
            // Display math: up to the line that ends with `$$` (possibly this one).
            let mut body = trimmed.trim_end().trim_start_matches("$$").to_string();
            let mut closed = body.ends_with("$$");
            while !closed {
                let Some(next) = lines.next() else {
                    bail!("unterminated $$ display math")
                };
                body.push('\n');
                body.push_str(next.trim_end());
                closed = body.ends_with("$$");
            }
            let latex = body.trim_end().trim_end_matches("$$").trim();
            out.push_str(&render(latex, true)?);
            out.push('\n');
        } else if trimmed.trim().is_empty() {
            out.push_str(line);
        } else {
            para.push_str(line);
        }
    }
    out.push_str(&inline(&para)?);
    if fence.is_some() {
        bail!("unterminated code fence");
    }
    Ok(out)
}

/// Inline math within a paragraph, skipping code spans.
fn inline(line: &str) -> Result<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '`' => {
                // A code span: copy through the matching run of backticks.
                let run = chars[i..].iter().take_while(|&&c| c == '`').count();
                let stop = code_span_end(&chars, i).unwrap_or(i + run);
                out.extend(&chars[i..stop]);
                i = stop;
            }
            '\\' if chars.get(i + 1) == Some(&'$') => {
                out.push_str("&#36;");
                i += 2;
            }
            '$' if chars
                .get(i + 1)
                .is_some_and(|c| !c.is_whitespace() && *c != '$') =>
            {
                let close = (i + 1..chars.len()).find(|&j| {
                    chars[j] == '$'
                        && chars[j - 1] != '\\'
                        && !chars[j - 1].is_whitespace()
                });
                match close {
                    Some(j)
                        if !chars
                            .get(j + 1)
                            .is_some_and(|c| c.is_ascii_digit()) =>
                    {
                        let latex: String = chars[i + 1..j].iter().collect();
                        out.push_str(&render(&latex, false)?);
                        i = j + 1;
                    }
                    _ => {
                        out.push('$');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

impl Preprocessor for Math {
    fn name(&self) -> &str {
        "math"
    }

    fn run(&self, _ctx: &PreprocessorContext, mut book: Book) -> Result<Book> {
        rewrite_chapters(&mut book, "math could not be rendered", |text| {
            process(text).map_err(|e| vec![format!("{e:#}")])
        })?;
        Ok(book)
    }
}

/// Where the code span that opens at `chars[i]` (a run of backticks) ends: just past
/// the matching run of as many backticks, or `None` when the run is never closed.
pub(crate) fn code_span_end(chars: &[char], i: usize) -> Option<usize> {
    let run = chars[i..].iter().take_while(|&&c| c == '`').count();
    let mut j = i + run;
    while j < chars.len() {
        if chars[j] == '`' {
            let r = chars[j..].iter().take_while(|&&c| c == '`').count();
            if r == run {
                return Some(j + r);
            }
            j += r;
        } else {
            j += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_display_math_become_mathml() {
        let page = "Rank $r \\le d$ holds.\n\n$$\n\\det A = \\prod_i A_{ii}\n$$\n\nCost: \\$5 and $ 3 apples.\n";
        let out = process(page).unwrap();
        assert!(out.contains("<math"), "{out}");
        assert!(out.contains("display=\"block\""), "{out}");
        assert!(!out.contains("\\le d") || out.contains("annotation"), "{out}");
        assert!(out.contains("&#36;5 and $ 3 apples"), "{out}");
        // The subscript underscore must not be left for Markdown to read as
        // emphasis.
        let block = out.lines().find(|l| l.contains("display=\"block\"")).unwrap();
        let text_only: String = block
            .split('<')
            .map(|s| s.split_once('>').map_or(s, |x| x.1))
            .collect();
        assert!(!text_only.contains('_'), "{text_only}");
    }

    #[test]
    fn operators_and_attributes_come_out_as_valid_html() {
        let lt = render("a < b > c", false).unwrap();
        assert!(
            lt.contains("<mo>&lt;</mo>") && lt.contains("<mo>&gt;</mo>"),
            "{lt}"
        );
        let big = render("\\big( x \\big)", false).unwrap();
        assert!(!big.contains("\"minsize"), "{big}");
        let cases = render(
            "f = \\begin{cases} 0 & x < 0 \\\\ 1 & x \\ge 0 \\end{cases}",
            true,
        )
        .unwrap();
        assert!(cases.contains("<mtable") || cases.contains("<mtd"), "{cases}");
        assert!(!cases.contains(" & "), "{cases}");
        let text = render("\\text{if query } i", false).unwrap();
        assert!(!text.contains("&amp;nbsp;"), "{text}");
    }

    #[test]
    fn control_spaces_are_spaces_not_the_text_nbsp() {
        // `\ ` (chapter 1's prefix rule), `~` and `\nobreakspace` are spaces in
        // TeX.
        for latex in
            ["j \\le i \\ \\text{ or } \\ j < k", "a~b", "a\\nobreakspace b"]
        {
            for display in [false, true] {
                let out = render(latex, display).unwrap();
                assert!(!out.contains("&amp;nbsp;"), "{latex}: {out}");
                assert!(out.contains("<mtext>&nbsp;</mtext>"), "{latex}: {out}");
            }
        }
        // Through the whole page, too: the space reaches the HTML as a space.
        let page = process("$$\nj \\le i \\ \\text{or} \\ j < k\n$$\n").unwrap();
        assert!(!page.contains("&amp;nbsp;"), "{page}");
    }

    #[test]
    fn inline_math_may_wrap_across_lines_but_not_paragraphs() {
        let out = process("the rank of $Q\nK^\\top$ is small\n").unwrap();
        assert!(out.contains("<math") && !out.contains('$'), "{out}");
        let out = process("a $5 bill\n\nand $3 more\n").unwrap();
        assert_eq!(out, "a $5 bill\n\nand $3 more\n");
    }

    #[test]
    fn code_is_left_alone() {
        let page = "```rust\nlet s = \"$x$\";\n```\nand `$y$` in code.\n";
        assert_eq!(process(page).unwrap(), page);
    }

    #[test]
    fn invalid_latex_and_unterminated_math_are_errors() {
        assert!(process("bad $\\frac{1}$ here").is_err());
        assert!(process("$$\n x\n").is_err());
    }
}
