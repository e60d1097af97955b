//! Two diagrams for the page, in the style of the on-ramp's block diagrams (ch00's
//! `diagrams.rs`): a KV cache growing one row per step, and what a second turn of a
//! conversation does to the cached rows of the first, drawn from the invalidation
//! experiment's results.
//!
//! The figures are written as SVG by hand, element for element as the library's
//! plots write them (`transformer::plot`, through plotters): a white background, so
//! that they stay readable under mdBook's dark themes, `sans-serif` text, the
//! library's palette and black outlines, and the title as an SVG `<title>`, not
//! drawn (the caption under the figure carries it).
//!
//! Their colours are states of a row, not architectures, so they take none of the
//! architectures' colours (`transformer::plot::architecture_colour`): grey for
//! what is kept, sky blue for what is new, orange for the work a step does again
//! or queries.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use transformer::io::thousands;
use transformer::plot::PALETTE;

use crate::*;

/// A colour of the library's palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rgb(u8, u8, u8);

const fn palette(i: usize) -> Rgb {
    let c = PALETTE[i];
    Rgb(c.0, c.1, c.2)
}

const BLACK: Rgb = Rgb(0, 0, 0);
const WHITE: Rgb = Rgb(255, 255, 255);
const GREY: Rgb = Rgb(110, 110, 110);
/// Rows a step writes (the prompt's rows in prefill, one row per decoding step) and
/// rows computed for a new turn: sky blue.
const WRITTEN: Rgb = palette(5);
/// Rows kept from earlier steps or turns and reused as they are: grey.
const KEPT: Rgb = Rgb(120, 120, 120);
/// Rows that depend on the new turn and must be computed again: orange.
const RECOMPUTED: Rgb = palette(4);
/// Queries, the work a step does: orange too (the two never share a figure).
const QUERY: Rgb = palette(4);
/// Fill opacity of coloured cells: dark enough to tell the colours apart, light
/// enough for the black outlines.
const FILL: f64 = 0.6;

/// The width of both figures, as the on-ramp's: about mdBook's content column, so
/// text is drawn at its nominal size.
const WIDTH: i32 = 760;

impl Rgb {
    fn hex(self) -> String {
        format!("#{:02X}{:02X}{:02X}", self.0, self.1, self.2)
    }
}

#[derive(Clone, Copy)]
enum Anchor {
    Start,
    Middle,
    End,
}

/// An SVG document written element by element.
struct Svg {
    /// Written as the `<title>` element, not drawn.
    title: String,
    body: String,
    width: i32,
    height: i32,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Svg {
    fn new(title: &str, width: i32, height: i32) -> Self {
        let mut svg =
            Svg { title: title.to_string(), body: String::new(), width, height };
        svg.rect((0, 0), (width, height), Some((WHITE, 1.0)), None);
        svg
    }

    /// A rectangle with its top-left corner at `at`, filled with `fill` (colour,
    /// opacity) and outlined with `stroke` (colour, width).
    fn rect(
        &mut self,
        at: (i32, i32),
        size: (i32, i32),
        fill: Option<(Rgb, f64)>,
        stroke: Option<(Rgb, i32)>,
    ) {
        let (fill, opacity) =
            fill.map_or(("none".to_string(), 1.0), |(c, o)| (c.hex(), o));
        let stroke = stroke.map_or("stroke=\"none\"".to_string(), |(c, w)| {
            format!("stroke=\"{}\" stroke-width=\"{w}\"", c.hex())
        });
        let _ = writeln!(
            self.body,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" opacity=\"{opacity}\" fill=\"{fill}\" {stroke}/>",
            at.0, at.1, size.0, size.1
        );
    }

    fn line(
        &mut self,
        points: &[(i32, i32)],
        colour: Rgb,
        width: f64,
        opacity: f64,
        dashed: bool,
    ) {
        let pts: String = points.iter().map(|(x, y)| format!("{x},{y} ")).collect();
        let dash = if dashed { " stroke-dasharray=\"5,4\"" } else { "" };
        let _ = writeln!(
            self.body,
            "<polyline fill=\"none\" opacity=\"{opacity}\" stroke=\"{}\" stroke-width=\"{width}\"{dash} points=\"{pts}\"/>",
            colour.hex()
        );
    }

    /// An arrow from `from` to `to`, its head as the on-ramp draws it.
    fn arrow(&mut self, from: (i32, i32), to: (i32, i32)) {
        self.line(&[from, to], BLACK, 1.5, 1.0, false);
        let (dx, dy) = (f64::from(to.0 - from.0), f64::from(to.1 - from.1));
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let head = |side: f64| {
            let (px, py) = (-uy * side, ux * side);
            (
                (f64::from(to.0) - 9.0 * ux + 5.0 * px).round() as i32,
                (f64::from(to.1) - 9.0 * uy + 5.0 * py).round() as i32,
            )
        };
        let pts: String = [to, head(1.0), head(-1.0)]
            .iter()
            .map(|(x, y)| format!("{x},{y} "))
            .collect();
        let _ = writeln!(
            self.body,
            "<polygon opacity=\"1\" fill=\"#000000\" points=\"{pts}\"/>"
        );
    }

    /// Text vertically centred on `at`.
    fn text(
        &mut self,
        s: &str,
        at: (i32, i32),
        size: f64,
        anchor: Anchor,
        colour: Rgb,
    ) {
        let anchor = match anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let _ = writeln!(
            self.body,
            "<text x=\"{}\" y=\"{}\" dy=\"0.5ex\" text-anchor=\"{anchor}\" font-family=\"sans-serif\" \
             font-size=\"{size}\" opacity=\"1\" fill=\"{}\">{}</text>",
            at.0,
            at.1,
            colour.hex(),
            escape(s)
        );
    }

    /// Text of the figures' labels and notes: 12 pixels, black.
    fn label(&mut self, s: &str, at: (i32, i32), anchor: Anchor) {
        self.text(s, at, 12.0, anchor, BLACK);
    }

    /// A legend entry: a filled swatch and its label.
    fn swatch(&mut self, at: (i32, i32), colour: Rgb, label: &str) {
        self.rect(
            (at.0, at.1 - 7),
            (18, 14),
            Some((colour, FILL)),
            Some((BLACK, 1)),
        );
        self.label(label, (at.0 + 25, at.1), Anchor::Start);
    }

    fn finish(self) -> String {
        let (w, h) = (self.width, self.height);
        format!(
            "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\n\
             <title>{}</title>\n{}</svg>\n",
            escape(&self.title),
            self.body
        )
    }
}

/// What the growing-cache diagram shows, all of it from the chapter's settings and
/// results.
#[derive(Debug, Clone)]
pub struct Growth {
    /// Prompt tokens written at once by the prefill: the decoding experiment's
    /// shortest context.
    pub prompt: usize,
    /// Decoding steps drawn after the prefill.
    pub steps: usize,
    /// Numbers per key or value row of one head.
    pub head_dim: usize,
    pub n_layers: usize,
    pub n_kv_heads: usize,
    /// Bytes the model's whole cache grows by per token (`f32`, every layer and
    /// head).
    pub bytes_per_token: u64,
    /// Counted FLOPs of the first decoding step without the cache over those with
    /// it.
    pub first_step_speedup: f64,
}

/// Decoding steps the growing-cache diagram draws after the prefill.
pub const GROWTH_STEPS: usize = 3;

impl Growth {
    /// The chapter's model and its decoding experiment at the shortest context.
    pub fn from_report(r: &Report) -> Growth {
        let m = &r.settings.model;
        let first = &r.decode[0];
        let mha = &r.kv_heads[0];
        Growth {
            prompt: first.context,
            steps: GROWTH_STEPS,
            head_dim: m.head_dim(),
            n_layers: m.n_layers,
            n_kv_heads: mha.n_kv_heads,
            bytes_per_token: mha.bytes_per_token,
            first_step_speedup: first.predicted_speedup,
        }
    }
}

/// A KV cache growing one row per step: the prefill writes one row of keys and one
/// of values for every prompt token at once, then every decoding step appends one
/// of each while the new token's query reads all the rows so far.
pub fn kv_cache_growth(g: &Growth) -> String {
    let panels = 1 + g.steps as i32;
    let col = WIDTH / panels;
    let max_rows = (g.prompt + g.steps) as i32;
    let row_h = (240 / max_rows).clamp(3, 12);
    let grid_top = 80;
    let grid_bottom = grid_top + max_rows * row_h;
    let height = grid_bottom + 164;
    let mut svg = Svg::new(
        &format!(
            "A KV cache growing one row per step (one head of one layer, head size {})",
            g.head_dim
        ),
        WIDTH,
        height,
    );
    svg.arrow((20, 14), (WIDTH - 52, 14));
    svg.text("time", (WIDTH - 46, 14), 12.0, Anchor::Start, GREY);
    for p in 0..panels {
        let x0 = p * col;
        let rows = g.prompt as i32 + p;
        let (title, subtitle) = if p == 0 {
            ("prefill".to_string(), format!("{} prompt tokens at once", g.prompt))
        } else {
            (
                format!("decoding step {p}"),
                format!("feeds 1 token, position {}", rows - 1),
            )
        };
        svg.text(&title, (x0 + col / 2, 34), 13.0, Anchor::Middle, BLACK);
        svg.label(&subtitle, (x0 + col / 2, 51), Anchor::Middle);
        let (qx, qw) = (x0 + 14, 26);
        let (kx, vx, w) = (x0 + 70, x0 + 128, 48);
        for (x, w, label) in [(qx, qw, "Q"), (kx, w, "K"), (vx, w, "V")] {
            svg.text(
                label,
                (x + w / 2, grid_top - 12),
                13.0,
                Anchor::Middle,
                BLACK,
            );
        }
        // The cache: written rows in one colour, kept rows in another.
        let first_new = if p == 0 { 0 } else { rows - 1 };
        for x in [kx, vx] {
            for j in 0..rows {
                let colour = if j >= first_new { WRITTEN } else { KEPT };
                svg.rect(
                    (x, grid_top + j * row_h),
                    (w, row_h),
                    Some((colour, FILL)),
                    Some((WHITE, 1)),
                );
            }
            svg.rect((x, grid_top), (w, rows * row_h), None, Some((BLACK, 1)));
        }
        // The queries this step computes: every prompt position in prefill, one
        // after.
        let q_rows = first_new..rows;
        for j in q_rows.clone() {
            svg.rect(
                (qx, grid_top + j * row_h),
                (qw, row_h),
                Some((QUERY, FILL)),
                Some((WHITE, 1)),
            );
        }
        svg.rect(
            (qx, grid_top + first_new * row_h),
            (qw, (rows - first_new) * row_h),
            None,
            Some((BLACK, 1)),
        );
        // The reads are drawn, then said under the panel.
        let reads = if p == 0 {
            // Causal prefill: query i reads rows 0..=i, a triangle of reads.
            let (qy0, qy1) =
                (grid_top + row_h / 2, grid_top + rows * row_h - row_h / 2);
            let (ky0, ky1) = (grid_top + 1, grid_top + rows * row_h - 1);
            for (qy, ky) in [(qy0, ky0), (qy1, ky0), (qy1, ky1)] {
                svg.line(
                    &[(qx + qw + 2, qy), (kx - 2, ky)],
                    QUERY,
                    1.0,
                    0.8,
                    false,
                );
            }
            ["query i reads".to_string(), "rows 0 … i (causal)".to_string()]
        } else {
            // The new token's query reads every row so far.
            let qy = grid_top + (rows - 1) * row_h + row_h / 2;
            for j in 0..rows {
                let ky = grid_top + j * row_h + row_h / 2;
                svg.line(
                    &[(qx + qw + 1, qy), (kx - 1, ky)],
                    QUERY,
                    1.0,
                    0.55,
                    false,
                );
            }
            [
                format!("its query reads all {rows} rows"),
                "+1 row of K, +1 of V".to_string(),
            ]
        };
        let [first, second] = reads;
        let cache = format!("cache: {rows} rows");
        for (line, dy) in [(first, 16), (second, 30), (cache, 46)] {
            svg.label(&line, (x0 + col / 2, grid_bottom + dy), Anchor::Middle);
        }
    }
    let legend = grid_bottom + 72;
    svg.swatch((40, legend), WRITTEN, "K, V rows written this step");
    svg.swatch((290, legend), KEPT, "kept from earlier steps");
    svg.swatch((510, legend), QUERY, "queries computed");
    let note = legend + 28;
    svg.label(
        &format!(
            "Each row holds {} numbers (the head size). The whole cache, {} layers × {} heads of these,",
            g.head_dim,
            g.n_layers,
            g.n_kv_heads,
        ),
        (WIDTH / 2, note),
        Anchor::Middle,
    );
    svg.label(
        &format!(
            "grows by {} bytes per token in f32.",
            thousands(g.bytes_per_token)
        ),
        (WIDTH / 2, note + 18),
        Anchor::Middle,
    );
    svg.label(
        &format!(
            "Step 1 computes 1 position instead of {}: {}× fewer FLOPs than a full pass (counted).",
            g.prompt + 1,
            g.first_step_speedup
        ),
        (WIDTH / 2, note + 36),
        Anchor::Middle,
    );
    svg.finish()
}

/// The ways of holding a history that the two-turn diagram draws, in the
/// invalidation table's order.
pub const TWO_TURN_ROWS: [&str; 5] =
    ["causal", "prefix_frozen", "prefix_lm", "encoder", "cross"];

/// Whether the history's cached rows of `layer` must be computed again for the new
/// turn, as the invalidation experiment measured: they depend on the new turn's
/// tokens and moved in that layer.
pub fn stale(row: &ShiftRow, layer: usize) -> bool {
    let l = &row.layers[layer];
    row.depends_on_new_turn && (l.relative > 0.0 || l.max_abs > 0.0)
}

/// Rows (one position in one layer) of the history kept and recomputed, and rows
/// computed for the new turn, for one way of holding the history.
pub fn row_counts(
    row: &ShiftRow,
    history: usize,
    new: usize,
) -> (usize, usize, usize) {
    let stale_layers = (0..row.layers.len()).filter(|&l| stale(row, l)).count();
    let kept_layers = row.layers.len() - stale_layers;
    (history * kept_layers, history * stale_layers, new * row.layers.len())
}

/// After turn 1 and the arrival of turn 2: for each way of holding the history,
/// which of the history's cached rows stay valid and which must be computed again,
/// layer by layer, from the invalidation experiment (`rows`, keyed as
/// [`TWO_TURN_ROWS`]) on `history` and `new` tokens.
pub fn two_turns(
    rows: &BTreeMap<String, ShiftRow>,
    history: usize,
    new: usize,
) -> String {
    let n_layers = rows.values().map(|r| r.layers.len()).max().unwrap_or(0) as i32;
    let tokens = (history + new) as i32;
    let (gx, grid_w) = (90, 600);
    let cell = (grid_w / tokens).clamp(2, 24);
    let grid_w = cell * tokens;
    let split = gx + cell * history as i32;
    let row_h = 14;
    let panel_h = 20 + n_layers * row_h + 16;
    let panels_top = 72;
    let panels_bottom = panels_top + TWO_TURN_ROWS.len() as i32 * panel_h;
    let height = panels_bottom + 118;
    let mut svg = Svg::new(
        "Turn 2 arrives: which cached keys and values of turn 1 stay valid",
        WIDTH,
        height,
    );
    // The timeline: turn 1's tokens, already cached, then turn 2's.
    let strip = 38;
    svg.label(
        &format!("turn 1: {history} tokens, cached"),
        ((gx + split) / 2, strip - 16),
        Anchor::Middle,
    );
    svg.label(
        &format!("turn 2: {new} new tokens"),
        ((split + gx + grid_w) / 2, strip - 16),
        Anchor::Middle,
    );
    for t in 0..tokens {
        let shade = if t < history as i32 {
            Rgb(200, 200, 200)
        } else {
            Rgb(150, 150, 150)
        };
        svg.rect(
            (gx + t * cell, strip - 6),
            (cell, 12),
            Some((shade, 1.0)),
            Some((WHITE, 1)),
        );
    }
    svg.rect((gx, strip - 6), (grid_w, 12), None, Some((BLACK, 1)));
    svg.label("tokens", (gx - 8, strip), Anchor::End);
    svg.arrow((gx, strip + 16), (gx + grid_w, strip + 16));
    svg.text("time", (gx + grid_w + 8, strip + 16), 12.0, Anchor::Start, GREY);
    svg.line(
        &[(split, strip - 26), (split, panels_bottom - 10)],
        BLACK,
        1.0,
        0.7,
        true,
    );
    for (i, key) in TWO_TURN_ROWS.iter().enumerate() {
        let Some(row) = rows.get(*key) else { continue };
        let top = panels_top + i as i32 * panel_h;
        svg.text(&row.label, (20, top + 8), 12.5, Anchor::Start, BLACK);
        let grid_top = top + 20;
        for (l, _) in row.layers.iter().enumerate() {
            let y = grid_top + l as i32 * row_h;
            svg.label(&format!("layer {l}"), (gx - 8, y + row_h / 2), Anchor::End);
            let redo = stale(row, l);
            for t in 0..tokens {
                let x = gx + t * cell;
                let colour = match (t < history as i32, redo) {
                    (false, _) => WRITTEN,
                    (true, false) => KEPT,
                    (true, true) => RECOMPUTED,
                };
                svg.rect(
                    (x, y),
                    (cell, row_h),
                    Some((colour, FILL)),
                    Some((WHITE, 1)),
                );
                if t < history as i32 && redo {
                    // A stroke through the cell, so that "recompute" reads without
                    // colour too.
                    svg.line(
                        &[(x + 2, y + row_h - 2), (x + cell - 2, y + 2)],
                        WHITE,
                        1.2,
                        1.0,
                        false,
                    );
                }
            }
        }
        svg.rect(
            (gx, grid_top),
            (grid_w, row.layers.len() as i32 * row_h),
            None,
            Some((BLACK, 1)),
        );
        let (kept, redo, fresh) = row_counts(row, history, new);
        svg.label(
            &format!("turn-1 rows: {kept} kept, {redo} recomputed · turn-2 rows: {fresh} new"),
            (gx + grid_w, top + 8),
            Anchor::End,
        );
    }
    // The encoder-decoder's own decoder cache: what the chapter's dialogue does
    // with it.
    let note = panels_bottom + 6;
    svg.label(
        "encoder-decoder, decoder self-attention: the cache of turn 1's reply is thrown away;",
        (20, note),
        Anchor::Start,
    );
    svg.label(
        "that reply joins the history the encoder re-reads, and turn 2's reply starts a new cache.",
        (20, note + 16),
        Anchor::Start,
    );
    let legend = note + 46;
    svg.swatch((40, legend), KEPT, "kept: still valid, reused");
    svg.swatch((280, legend), RECOMPUTED, "depends on turn 2: recompute");
    svg.swatch((540, legend), WRITTEN, "computed for turn 2");
    svg.text(
        "A row: one position's keys and values in one layer, as the invalidation experiment measured them.",
        (WIDTH / 2, legend + 28),
        12.0,
        Anchor::Middle,
        GREY,
    );
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn growth() -> Growth {
        Growth {
            prompt: 16,
            steps: GROWTH_STEPS,
            head_dim: 32,
            n_layers: 4,
            n_kv_heads: 8,
            bytes_per_token: 8192,
            first_step_speedup: 17.0,
        }
    }

    fn shift(key: &str, relative: &[f64]) -> (String, ShiftRow) {
        let layers = relative
            .iter()
            .enumerate()
            .map(|(layer, &relative)| LayerShift {
                layer,
                max_abs: relative,
                relative,
            })
            .collect();
        let row = ShiftRow {
            key: key.into(),
            label: format!("{key} <label>"),
            layers,
            depends_on_new_turn: relative.iter().any(|&r| r > 0.0),
        };
        (key.to_string(), row)
    }

    fn rows() -> BTreeMap<String, ShiftRow> {
        [
            shift("causal", &[0.0; 4]),
            shift("prefix_frozen", &[0.0; 4]),
            shift("prefix_lm", &[0.0, 0.27, 0.32, 0.38]),
            shift("encoder", &[0.0, 0.19, 0.25, 0.30]),
            shift("cross", &[0.33, 0.33, 0.33, 0.33]),
        ]
        .into_iter()
        .collect()
    }

    fn well_formed(svg: &str) {
        assert!(svg.starts_with("<svg width=\"760\""), "{svg:.80}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        // Drawn on white, like every figure of the book, so that dark themes keep
        // it readable.
        assert!(svg.contains("fill=\"#FFFFFF\""));
    }

    #[test]
    fn the_growing_cache_renders_with_its_labels() {
        let svg = kv_cache_growth(&growth());
        well_formed(&svg);
        for label in [
            "<title>A KV cache growing one row per step (one head of one layer, head size 32)</title>",
            "Each row holds 32 numbers (the head size)",
            "prefill",
            "16 prompt tokens at once",
            "decoding step 3",
            "cache: 19 rows",
            "its query reads all 17 rows",
            "8,192 bytes per token",
            "17× fewer FLOPs",
            ">K<",
            ">V<",
            ">Q<",
        ] {
            assert!(svg.contains(label), "{label} missing");
        }
        // One key and one value row per position and panel: 16 + 17 + 18 + 19,
        // twice.
        let cells = svg.matches(&format!("fill=\"{}\"", WRITTEN.hex())).count()
            + svg.matches(&format!("fill=\"{}\"", KEPT.hex())).count();
        assert_eq!(
            cells,
            2 * (16 + 17 + 18 + 19) + 2,
            "cells plus the two legend swatches"
        );
    }

    #[test]
    fn the_two_turns_render_what_the_invalidation_measured() {
        let rows = rows();
        let svg = two_turns(&rows, 10, 15);
        well_formed(&svg);
        for label in [
            "turn 1: 10 tokens, cached",
            "turn 2: 15 new tokens",
            "causal &lt;label&gt;",
            "prefix_lm &lt;label&gt;",
            "cross &lt;label&gt;",
            "layer 3",
            "<title>Turn 2 arrives: which cached keys and values of turn 1 stay valid</title>",
            "thrown away",
        ] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert_eq!(row_counts(&rows["causal"], 10, 15), (40, 0, 60));
        assert_eq!(row_counts(&rows["prefix_frozen"], 10, 15), (40, 0, 60));
        assert_eq!(row_counts(&rows["prefix_lm"], 10, 15), (10, 30, 60));
        assert_eq!(row_counts(&rows["encoder"], 10, 15), (10, 30, 60));
        assert_eq!(row_counts(&rows["cross"], 10, 15), (0, 40, 60));
        // Every recomputed cell is drawn: 30 + 30 + 40 of them, plus the legend's
        // swatch.
        let recomputed =
            svg.matches(&format!("fill=\"{}\"", RECOMPUTED.hex())).count();
        assert_eq!(recomputed, 30 + 30 + 40 + 1);
        assert!(
            svg.contains(
                "turn-1 rows: 10 kept, 30 recomputed · turn-2 rows: 60 new"
            )
        );
        assert!(svg.contains("turn-1 rows: 0 kept, 40 recomputed"));
    }

    #[test]
    fn a_row_that_does_not_depend_on_the_new_turn_is_kept_whatever_its_rounding() {
        let (_, mut row) = shift("causal", &[0.0, 0.0]);
        row.layers[1].max_abs = 1e-7;
        assert!(!stale(&row, 1));
        row.depends_on_new_turn = true;
        assert!(stale(&row, 1) && !stale(&row, 0));
    }
}
