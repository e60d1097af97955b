//! The figure check: every SVG the chapters write must be fit for a paper.
//!
//! Run by the strict book build over `book/generated/**/*.svg` (and by `cargo xtask
//! check-figures DIR...` over any folder, such as a chapter's scratch outputs). It
//! reads the SVG the way plotters writes it (one element per line, `<text
//! ...>content</text>`) and fails on:
//!
//! - tick labels with float artefacts: exponent notation (`1e-6`,
//!   `9999999999999e-5`), runs of
//!   five 9s, five 0s before a last digit (`0.30000000000000004`), more than six decimals;
//! - a row or column of numeric labels (an axis) whose values are all integers but
//!   printed with
//!   decimals (`1.0 2.0 3.0`);
//! - text whose anchor lies outside the canvas (from the `<svg>` width and height),
//!   or which,
//!   by a lower-bound estimate of its width, runs over the canvas edge (clipped labels);
//! - a legend box (a rectangle holding text and a short horizontal line sample)
//!   crossed by a
//!   data line (a polyline of stroke width 1.5 or more that is not inside the box).

use std::path::PathBuf;
use support::segment_meets_rect;

use anyhow::{Context, Result, bail};

use crate::files_under;

/// One `<text>`: anchor, `text-anchor`, whether it is rotated, font size and
/// content.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub x: f64,
    pub y: f64,
    pub anchor: String,
    pub rotated: bool,
    pub size: f64,
    pub content: String,
}

/// The parts of an SVG the check reads.
#[derive(Debug, Default)]
pub struct Svg {
    pub width: f64,
    pub height: f64,
    pub texts: Vec<Text>,
    /// Left, top, right, bottom.
    pub rects: Vec<[f64; 4]>,
    /// Stroke width and points.
    pub polylines: Vec<(f64, Vec<(f64, f64)>)>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    let key = format!("{name}=\"");
    while let Some(i) = rest.find(&key) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + key.len()..];
        if before.is_none_or(char::is_whitespace) {
            return rest.split_once('"').map(|(v, _)| v.to_string());
        }
    }
    None
}

fn num(tag: &str, name: &str) -> Option<f64> {
    attr(tag, name)?.trim().trim_end_matches("px").parse().ok()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Read the canvas, texts, rectangles and polylines of `svg`.
pub fn parse(svg: &str) -> Result<Svg> {
    let head = svg.find("<svg").map(|i| &svg[i..]).context("no <svg> element")?;
    let head = &head[..head.find('>').context("unclosed <svg>")?];
    let viewbox = attr(head, "viewBox")
        .map(|v| {
            v.split([' ', ','])
                .filter_map(|s| s.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let (width, height) =
        match (num(head, "width"), num(head, "height"), viewbox.as_slice()) {
            (Some(w), Some(h), _) => (w, h),
            (_, _, [_, _, w, h]) => (*w, *h),
            _ => bail!("the <svg> element has no width and height"),
        };
    let mut out = Svg { width, height, ..Svg::default() };
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        let name =
            tag.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("");
        match name {
            "text" => {
                let body = &rest[end + 1..];
                let close = body.find("</text>").context("unclosed <text>")?;
                // Drop any inner markup (<tspan>).
                let mut content = String::new();
                let mut inside = false;
                for c in body[..close].chars() {
                    match c {
                        '<' => inside = true,
                        '>' => inside = false,
                        c if !inside => content.push(c),
                        _ => {}
                    }
                }
                out.texts.push(Text {
                    x: num(tag, "x").unwrap_or(0.0),
                    y: num(tag, "y").unwrap_or(0.0),
                    anchor: attr(tag, "text-anchor")
                        .unwrap_or_else(|| "start".into()),
                    rotated: attr(tag, "transform")
                        .is_some_and(|t| t.contains("rotate")),
                    size: num(tag, "font-size").unwrap_or(16.0),
                    content: unescape(content.trim()),
                });
            }
            "rect" => {
                let (x, y) =
                    (num(tag, "x").unwrap_or(0.0), num(tag, "y").unwrap_or(0.0));
                let (w, h) = (
                    num(tag, "width").unwrap_or(0.0),
                    num(tag, "height").unwrap_or(0.0),
                );
                out.rects.push([x, y, x + w, y + h]);
            }
            "polyline" => {
                let points = attr(tag, "points")
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|p| {
                        let (x, y) = p.split_once(',')?;
                        Some((x.parse().ok()?, y.parse().ok()?))
                    })
                    .collect();
                out.polylines
                    .push((num(tag, "stroke-width").unwrap_or(1.0), points));
            }
            _ => {}
        }
        rest = &rest[end..];
    }
    Ok(out)
}

/// A number as a tick label writes it: optional minus (hyphen or U+2212), digits,
/// optional decimals, optional exponent (`e-5`) or `×10ⁿ`. Returns (integer digits,
/// fraction digits, whether it has an `e` exponent).
fn numeric(label: &str) -> Option<(String, String, bool)> {
    let s = label.trim();
    let s = s.strip_prefix(['-', '−']).unwrap_or(s);
    let s = match s.split_once('×') {
        Some((m, e)) if e.starts_with("10") => m,
        Some(_) => return None,
        None => s,
    };
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            if e.is_empty() || !e.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (m, true)
        }
        None => (s, false),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    if int.is_empty()
        || !digits(int)
        || !digits(frac)
        || (mantissa.contains('.') && frac.is_empty())
    {
        return None;
    }
    Some((int.to_string(), frac.to_string(), exponent))
}

/// Why a numeric label looks like a float printed raw, if it does.
pub fn float_artefact(label: &str) -> Option<&'static str> {
    let (int, frac, exponent) = numeric(label)?;
    if exponent {
        return Some("exponent notation (write 10⁻⁵, or plain values)");
    }
    if format!("{int}{frac}").contains("99999") {
        return Some("a run of 9s (a float printed raw)");
    }
    let zeros = frac.trim_end_matches('0');
    if zeros.contains("00000") {
        return Some("a run of 0s before a last digit (a float printed raw)");
    }
    if frac.len() > 6 {
        return Some("more than six decimals");
    }
    None
}

/// A lower bound on the width of `s` at `size` px (Arial-like fonts; narrow glyphs
/// counted narrow), so that a text reported as running over an edge really does.
fn min_width(s: &str, size: f64) -> f64 {
    let em: f64 = s
        .chars()
        .map(|c| match c {
            '0'..='9' => 0.55,
            'i' | 'j' | 'l' | '\'' | '|' | '.' | ',' | ':' | ';' | '!' | ' '
            | 'f' | 't' | 'r' => 0.22,
            '(' | ')' | '[' | ']' | '/' | '-' => 0.3,
            c if c.is_ascii_alphabetic() => 0.45,
            _ => 0.3,
        })
        .sum();
    em * size
}

fn inside(p: (f64, f64), r: [f64; 4]) -> bool {
    (r[0]..=r[2]).contains(&p.0) && (r[1]..=r[3]).contains(&p.1)
}

/// Everything wrong with one SVG, one line each (empty when it is fine).
pub fn problems(svg: &str) -> Vec<String> {
    let svg = match parse(svg) {
        Ok(s) => s,
        Err(e) => return vec![format!("{e:#}")],
    };
    let mut out = Vec::new();
    // Float artefacts.
    for t in &svg.texts {
        if let Some(why) = float_artefact(&t.content) {
            out.push(format!("label {:?} at ({}, {}): {why}", t.content, t.x, t.y));
        }
    }
    // Integer-valued axes printed with decimals: numeric labels sharing a row (same
    // y and anchor) or a column (same x and anchor).
    let mut axes: std::collections::BTreeMap<(bool, i64, String), Vec<&Text>> =
        Default::default();
    for t in
        svg.texts.iter().filter(|t| !t.rotated && numeric(&t.content).is_some())
    {
        axes.entry((true, t.y.round() as i64, t.anchor.clone()))
            .or_default()
            .push(t);
        axes.entry((false, t.x.round() as i64, t.anchor.clone()))
            .or_default()
            .push(t);
    }
    for ((row, at, _), labels) in &axes {
        let parts: Vec<_> =
            labels.iter().filter_map(|t| numeric(&t.content)).collect();
        if labels.len() >= 2
            && parts.iter().all(|(_, frac, e)| {
                !e && !frac.is_empty() && frac.chars().all(|c| c == '0')
            })
        {
            let shown: Vec<&str> =
                labels.iter().map(|t| t.content.as_str()).collect();
            let (which, coord) = if *row { ("row", "y") } else { ("column", "x") };
            out.push(format!(
                "integer tick values printed with decimals in the {which} at {coord} = {at}: {}",
                shown.join(" ")
            ));
        }
    }
    // Text on the canvas.
    for t in svg.texts.iter().filter(|t| !t.content.is_empty()) {
        if !(0.0..=svg.width).contains(&t.x) || !(0.0..=svg.height).contains(&t.y) {
            out.push(format!(
                "text {:?} anchored at ({}, {}), outside the {} × {} canvas",
                t.content, t.x, t.y, svg.width, svg.height
            ));
            continue;
        }
        let w = min_width(&t.content, t.size);
        let (from, to) = match t.anchor.as_str() {
            "end" => (-w, 0.0),
            "middle" => (-w / 2.0, w / 2.0),
            _ => (0.0, w),
        };
        // A rotated text (rotate(270), as plotters writes y-axis titles) runs
        // upwards.
        let (lo, hi, limit, along) = if t.rotated {
            (t.y - to, t.y - from, svg.height, "y")
        } else {
            (t.x + from, t.x + to, svg.width, "x")
        };
        if lo < -0.5 || hi > limit + 0.5 {
            out.push(format!(
                "text {:?} at ({}, {}) runs over the canvas edge (it spans {along} = {lo:.0} to {hi:.0} of 0 to {limit})",
                t.content, t.x, t.y
            ));
        }
    }
    // Legends on data.
    let canvas = svg.width * svg.height;
    let sample = |pts: &[(f64, f64)], r: [f64; 4]| matches!(pts, [a, b] if a.1 == b.1 && (b.0 - a.0).abs() <= 40.0 && inside(*a, r) && inside(*b, r));
    let mut legends: Vec<[f64; 4]> = Vec::new();
    for &r in &svg.rects {
        let area = (r[2] - r[0]) * (r[3] - r[1]);
        if area <= 0.0 || area > 0.5 * canvas || legends.contains(&r) {
            continue;
        }
        let has_text = svg
            .texts
            .iter()
            .any(|t| !t.content.is_empty() && inside((t.x, t.y), r));
        let has_sample =
            svg.polylines.iter().any(|(w, pts)| *w >= 1.5 && sample(pts, r));
        if has_text && has_sample {
            legends.push(r);
        }
    }
    for r in legends {
        let inner = [r[0] + 1.0, r[1] + 1.0, r[2] - 1.0, r[3] - 1.0];
        let crossing = svg.polylines.iter().find(|(w, pts)| {
            *w >= 1.5
                && pts.len() >= 2
                && !pts.iter().all(|&p| inside(p, r))
                && pts.windows(2).any(|s| segment_meets_rect(s[0], s[1], inner))
        });
        if crossing.is_some() {
            out.push(format!(
                "the legend box at ({}, {})–({}, {}) covers a data line",
                r[0], r[1], r[2], r[3]
            ));
        }
    }
    out
}

/// Check every `*.svg` under `dirs`; fail naming each file and problem. Returns how
/// many figures were checked.
pub fn check_dirs(dirs: &[PathBuf]) -> Result<usize> {
    let mut files = Vec::new();
    for d in dirs {
        files.extend(files_under(d)?);
    }
    files.retain(|f| f.extension().is_some_and(|e| e == "svg"));
    files.sort();
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?;
        found.extend(
            problems(&text).into_iter().map(|p| format!("{}: {p}", f.display())),
        );
    }
    if !found.is_empty() {
        bail!(
            "figures not fit to print ({} problems):\n  {}",
            found.len(),
            found.join("\n  ")
        );
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svg(body: &str) -> String {
        format!(
            "<svg width=\"720\" height=\"440\" viewBox=\"0 0 720 440\" xmlns=\"http://www.w3.org/2000/svg\">\n\
             <rect x=\"0\" y=\"0\" width=\"720\" height=\"440\" opacity=\"1\" fill=\"#FFFFFF\" stroke=\"none\"/>\n{body}</svg>\n"
        )
    }

    fn text(x: f64, y: f64, anchor: &str, content: &str) -> String {
        format!(
            "<text x=\"{x}\" y=\"{y}\" dy=\"0.5ex\" text-anchor=\"{anchor}\" font-family=\"sans-serif\" \
             font-size=\"11.29\" opacity=\"1\" fill=\"#000000\">\n{content}\n</text>\n"
        )
    }

    fn polyline(width: u32, points: &[(i32, i32)]) -> String {
        let pts: String = points.iter().map(|(x, y)| format!("{x},{y} ")).collect();
        format!(
            "<polyline fill=\"none\" opacity=\"1\" stroke=\"#0072B2\" stroke-width=\"{width}\" points=\"{pts}\"/>\n"
        )
    }

    fn rect(x: i32, y: i32, w: i32, h: i32) -> String {
        format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" opacity=\"1\" fill=\"none\" stroke=\"#AAAAAA\"/>\n"
        )
    }

    fn axis(labels: &[&str]) -> String {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| text(100.0 + 100.0 * i as f64, 400.0, "middle", l))
            .collect()
    }

    #[test]
    fn a_clean_chart_passes() {
        let body = axis(&["0", "100", "200"])
            + &axis(&["0.5", "1.0", "1.5"]).replace("y=\"400\"", "y=\"420\"")
            + &text(60.0, 50.0, "end", "10⁻³")
            + &text(60.0, 100.0, "end", "10⁰")
            + &polyline(2, &[(100, 100), (600, 300)])
            + &rect(500, 50, 150, 40)
            + &polyline(2, &[(510, 70), (536, 70)])
            + &text(544.0, 70.0, "start", "causal");
        assert_eq!(problems(&svg(&body)), Vec::<String>::new());
        // The small fixture figures of the book's own tests pass too.
        assert!(
            problems("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"></svg>\n")
                .is_empty()
        );
    }

    #[test]
    fn float_artefacts_fail() {
        for bad in [
            "0.30000000000000004",
            "9999999999999",
            "0.9999999999999",
            "9999999999999e-5",
            "1e-6",
            "2.5E+3",
            "0.12345678",
        ] {
            assert!(float_artefact(bad).is_some(), "{bad}");
            let p = problems(&svg(&text(300.0, 200.0, "middle", bad)));
            assert!(p.iter().any(|p| p.contains(bad)), "{bad}: {p:?}");
        }
        for good in [
            "0.3",
            "−0.25",
            "100",
            "10⁻⁵",
            "1.5×10⁷",
            "0.001",
            "1000000",
            "n = 512",
            "rank at 1e-3",
        ] {
            assert_eq!(float_artefact(good), None, "{good}");
        }
    }

    #[test]
    fn integer_ticks_with_decimals_fail() {
        let p = problems(&svg(&axis(&["1.0", "2.0", "3.0"])));
        assert!(
            p.iter()
                .any(|p| p.contains("integer tick values")
                    && p.contains("1.0 2.0 3.0")),
            "{p:?}"
        );
        // A y axis (a column of right-aligned labels) too.
        let col: String = ["0.0", "50.0", "100.0"]
            .iter()
            .enumerate()
            .map(|(i, l)| text(70.0, 50.0 + 50.0 * i as f64, "end", l))
            .collect();
        assert!(
            problems(&svg(&col)).iter().any(|p| p.contains("column at x = 70")),
            "{:?}",
            problems(&svg(&col))
        );
        // Decimals that are needed are fine; so is one label alone.
        assert!(problems(&svg(&axis(&["2.5", "3.0", "3.5"]))).is_empty());
        assert!(problems(&svg(&axis(&["1.0"]))).is_empty());
    }

    #[test]
    fn text_off_the_canvas_fails() {
        let p = problems(&svg(&text(730.0, 200.0, "start", "late")));
        assert!(
            p.iter().any(|p| p.contains("outside the 720 × 440 canvas")),
            "{p:?}"
        );
        let p = problems(&svg(&text(20.0, -3.0, "start", "high")));
        assert!(p.iter().any(|p| p.contains("outside")), "{p:?}");
        // Anchored inside but clipped: a long right-aligned label near the left
        // edge.
        let p = problems(&svg(&text(
            66.0,
            200.0,
            "end",
            "0.00001234 units of something",
        )));
        assert!(p.iter().any(|p| p.contains("runs over the canvas edge")), "{p:?}");
        let p = problems(&svg(&text(700.0, 200.0, "start", "a long legend entry")));
        assert!(p.iter().any(|p| p.contains("runs over")), "{p:?}");
        // A rotated axis title that fits passes; one longer than the canvas is tall
        // fails.
        let rotated = |s: &str| {
            format!(
                "<text x=\"12\" y=\"220\" dy=\"0.76em\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"12\" transform=\"rotate(270, 12, 220)\">\n{s}\n</text>\n"
            )
        };
        assert!(
            problems(&svg(&rotated("held-out loss (nats per token)"))).is_empty()
        );
        assert!(
            !problems(&svg(&rotated(&"held-out loss (nats per token) ".repeat(5))))
                .is_empty()
        );
    }

    #[test]
    fn a_legend_on_a_data_line_fails() {
        let legend = rect(500, 50, 150, 40)
            + &polyline(2, &[(510, 70), (536, 70)])
            + &text(544.0, 70.0, "start", "causal");
        // A data line crossing the box, without a point inside it.
        let crossing = legend.clone() + &polyline(2, &[(450, 40), (700, 100)]);
        let p = problems(&svg(&crossing));
        assert!(p.iter().any(|p| p.contains("legend box at (500, 50)")), "{p:?}");
        // A grid line (width 1) under the box is fine, and so is a line passing
        // beside it.
        assert!(
            problems(&svg(
                &(legend.clone() + &polyline(1, &[(400, 60), (700, 60)]))
            ))
            .is_empty()
        );
        assert!(
            problems(&svg(&(legend + &polyline(2, &[(400, 120), (700, 120)]))))
                .is_empty()
        );
        // A box of text without a line sample is no legend (a diagram's box with an
        // arrow).
        let boxed = rect(100, 100, 200, 50)
            + &text(110.0, 120.0, "start", "encoder")
            + &polyline(2, &[(50, 125), (350, 125)]);
        assert!(problems(&svg(&boxed)).is_empty());
    }

    #[test]
    fn every_svg_under_the_folders_is_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("ch09");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("good.svg"), svg(&axis(&["1", "2", "3"]))).unwrap();
        std::fs::write(sub.join("notes.md"), "1.0 2.0 3.0").unwrap();
        assert_eq!(check_dirs(&[dir.path().to_path_buf()]).unwrap(), 1);
        std::fs::write(sub.join("bad.svg"), svg(&axis(&["1.0", "2.0", "3.0"])))
            .unwrap();
        let e =
            format!("{:#}", check_dirs(&[dir.path().to_path_buf()]).unwrap_err());
        assert!(
            e.contains("ch09/bad.svg: integer tick values")
                && !e.contains("good.svg"),
            "{e}"
        );
        assert!(check_dirs(&[dir.path().join("missing")]).is_err());
    }
}
