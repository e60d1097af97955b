//! SVG figures through plotters: line charts, heat maps and interval charts,
//! written atomically.
//!
//! Text is emitted as SVG `<text>` (no font files are needed), so figures build
//! anywhere. Line charts lay out their own axes (see [`ticks`] and
//! [`legend_corner`]) so that they can go into a paper as they are; `cargo xtask
//! check-figures` checks every generated SVG for the defects this avoids
//! (float-artefact and `.0` tick labels, clipped text, legends on the data).
//!
//! A figure's `title` is not drawn: the book's pages caption every figure below
//! it, so the title goes into the SVG as its accessible name, a `<title>` element.
//! Every architecture has one colour in every figure ([`architecture_colour`]).

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use support::{Rect, segment_meets_rect};

/// Colours that stay distinguishable for most readers (Okabe & Ito).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// The kinds of model the book compares, each drawn in one colour in every figure
/// ([`architecture_colour`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// A causal decoder (GPT): every token reads itself and the past.
    CausalDecoder,
    /// A non-causal decoder (a prefix LM): a bidirectional prefix, causal after
    /// it.
    NonCausalDecoder,
    /// An encoder-decoder (T5).
    EncoderDecoder,
    /// An encoder (BERT-style): every token reads every token.
    Encoder,
}

impl Architecture {
    pub const ALL: [Architecture; 4] = [
        Architecture::CausalDecoder,
        Architecture::NonCausalDecoder,
        Architecture::EncoderDecoder,
        Architecture::Encoder,
    ];
}

/// The colour of `arch` in every figure of the book, one Okabe–Ito colour of
/// [`PALETTE`] each: the encoder blue and the causal decoder bluish green (the
/// bidirectional and causal masks of chapter 0's diagrams), the non-causal decoder
/// vermillion and the encoder-decoder reddish purple. In a figure that shows an
/// architecture, the series that are not architectures take the colours left
/// over: orange, sky blue, black.
pub const fn architecture_colour(arch: Architecture) -> RGBColor {
    match arch {
        Architecture::Encoder => PALETTE[0],
        Architecture::NonCausalDecoder => PALETTE[1],
        Architecture::CausalDecoder => PALETTE[2],
        Architecture::EncoderDecoder => PALETTE[3],
    }
}

/// The colours of series or groups whose fixed colours are `fixed`: a fixed colour
/// as it is, the others [`PALETTE`] in order. When any colour is fixed, the others
/// skip every architecture's colour and every fixed colour, so that nothing in the
/// figure looks like an architecture it is not.
fn colours(fixed: &[Option<RGBColor>]) -> Vec<RGBColor> {
    let any = fixed.iter().any(Option::is_some);
    let taken = |c: &RGBColor| {
        Architecture::ALL.iter().any(|&a| architecture_colour(a) == *c)
            || fixed.contains(&Some(*c))
    };
    let mut free: Vec<RGBColor> =
        PALETTE.iter().copied().filter(|c| !any || !taken(c)).collect();
    if free.is_empty() {
        free = PALETTE.to_vec();
    }
    let mut next = free.iter().copied().cycle();
    fixed.iter().map(|c| c.unwrap_or_else(|| next.next().unwrap())).collect()
}

/// How a series' line is drawn: to tell apart series of one colour (one
/// architecture before and after training, at two depths, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dash {
    #[default]
    Solid,
    /// 8 px dashes.
    Dashed,
    /// Short dashes, almost dots.
    Dotted,
    /// Long dashes with short gaps, a fourth style where three do not suffice.
    Long,
}

/// One line of a line chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// A fixed colour, used for the line and its legend entry, instead of the next
    /// palette colour: [`architecture_colour`] for a series that is one
    /// architecture.
    pub colour: Option<RGBColor>,
    pub dash: Dash,
    /// Also draw the series as a wide, light band under every line (and under its
    /// legend sample): for a series that another one covers exactly, so that the
    /// reader still sees it.
    pub halo: bool,
}

impl Series {
    /// A solid line in the next palette colour.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            label: label.into(),
            points,
            colour: None,
            dash: Dash::Solid,
            halo: false,
        }
    }

    /// The same series in a fixed colour.
    pub fn colour(self, colour: RGBColor) -> Series {
        Series { colour: Some(colour), ..self }
    }

    /// The same series in the colour of `arch`.
    pub fn architecture(self, arch: Architecture) -> Series {
        self.colour(architecture_colour(arch))
    }

    /// The same series drawn `dash`.
    pub fn dash(self, dash: Dash) -> Series {
        Series { dash, ..self }
    }

    /// The same series with a wide, light band under it (see [`Series::halo`]).
    pub fn with_halo(self) -> Series {
        Series { halo: true, ..self }
    }
}

/// `svg` with `title`, escaped, as its first element: a `<title>`, which names the
/// figure for screen readers (and shows as a tooltip) without being drawn.
fn with_title(mut svg: String, title: &str) -> String {
    if title.trim().is_empty() {
        return svg;
    }
    let escaped = title
        .trim()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if let Some(end) =
        svg.find("<svg").and_then(|at| svg[at..].find('>').map(|e| at + e + 1))
    {
        svg.insert_str(end, &format!("\n<title>{escaped}</title>"));
    }
    svg
}

/// Draw the polyline `pts` in `style`, dashed as `dash` says.
fn draw_line(
    root: &DrawingArea<SVGBackend, Shift>,
    pts: Vec<(i32, i32)>,
    style: ShapeStyle,
    dash: Dash,
) -> anyhow::Result<()> {
    match dash {
        Dash::Solid => root.draw(&PathElement::new(pts, style)),
        Dash::Dashed => root.draw(&DashedPathElement::new(pts, 8, 5, style)),
        Dash::Dotted => root.draw(&DashedPathElement::new(pts, 3, 4, style)),
        Dash::Long => root.draw(&DashedPathElement::new(pts, 16, 4, style)),
    }
    .map_err(err)
}

/// A line chart, 720 px wide: light major grid, tick values chosen from the data
/// (integer ticks for integer data, 1-2-5 steps on linear axes, powers of ten on
/// log axes), markers only on series of at most [`MARKER_MAX_POINTS`] points, and
/// the legend in a corner of the plot that no series passes through, or below the
/// plot when every corner is taken.
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
    pub series: &'a [Series],
}

/// A series with more points than this is drawn as a line only, without a marker
/// per point.
pub const MARKER_MAX_POINTS: usize = 25;

/// Text sizes in CSS pixels (the SVG backend writes `size / 1.24`, so [`font`]
/// undoes that).
const AXIS_PX: f64 = 15.0;
const TICK_PX: f64 = 14.0;
const LEGEND_PX: f64 = 14.0;
const LEGEND_ROW: f64 = 21.0;
const WIDTH: u32 = 720;
const HEIGHT: u32 = 440;
/// Opacity of a [`Series::halo`] band.
const HALO_OPACITY: f64 = 0.3;
const GRID: RGBColor = RGBColor(222, 222, 222);

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

fn font(px: f64) -> FontDesc<'static> {
    ("sans-serif", px * 1.24).into_font()
}

/// A generous estimate of the width of `s` in pixels at `px`, from DejaVu Sans'
/// advance widths (wider than Arial's or Helvetica's, so text fits whichever
/// sans-serif font the reader has).
fn text_width(s: &str, px: f64) -> f64 {
    let em: f64 = s
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '\'' | '|' | '.' | ',' | ':' | ';' | '!' => 0.28,
            ' ' | 'f' | 't' | 'I' | '(' | ')' | '[' | ']' | '/' | '-' => 0.4,
            'r' => 0.42,
            'm' | 'w' | 'M' | 'W' | '%' | '×' | '—' => 1.0,
            c if c.is_ascii_uppercase() => 0.78,
            // Superscripts.
            '⁰'..='⁹' | '¹' | '²' | '³' | '⁻' => 0.42,
            _ => 0.64,
        })
        .sum();
    em * px
}

/// The ticks of one axis. Positions (`lo`, `hi`, the tick positions) are in
/// plotting space: the value itself on a linear axis, its base-10 logarithm on a
/// log axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    pub lo: f64,
    pub hi: f64,
    /// Labelled ticks (with a grid line): position and label.
    pub major: Vec<(f64, String)>,
    /// Unlabelled short ticks (log axes: 2×, 3×, ... 9× each power of ten).
    pub minor: Vec<f64>,
}

impl Ticks {
    /// The labels, in order.
    pub fn labels(&self) -> Vec<&str> {
        self.major.iter().map(|(_, l)| l.as_str()).collect()
    }
}

/// The ticks of an axis showing `values` (non-finite values, and non-positive ones
/// on a log axis, are ignored).
///
/// A linear axis gets steps of 1, 2 or 5 × 10^k, at least 1 when every value is an
/// integer, labelled with the fewest decimals that tell them apart. A log axis is
/// labelled at powers of ten (every second or third one when there are many),
/// written 0.01 … 1000 or 10⁻⁵ … 10⁴; a log axis spanning less than about two
/// decades gets 1-2-5 ticks instead.
pub fn ticks(values: &[f64], log: bool) -> Ticks {
    if log { log_ticks(values) } else { linear_ticks(values) }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// The 1, 2 or 5 × 10^k step nearest to `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powi(raw.log10().floor() as i32);
    let r = raw / mag;
    let m = if r < 1.5 {
        1.0
    } else if r < 3.5 {
        2.0
    } else if r < 7.5 {
        5.0
    } else {
        10.0
    };
    m * mag
}

const SUPERSCRIPT: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

/// "10" with `k` in superscript digits: 10⁻³, 10⁴.
pub fn power_of_ten(k: i32) -> String {
    let mut s = String::from("10");
    if k < 0 {
        s.push('⁻');
    }
    s.extend(
        k.unsigned_abs()
            .to_string()
            .chars()
            .map(|c| SUPERSCRIPT[c as usize - '0' as usize]),
    );
    s
}

/// A minus sign for figures (U+2212) instead of a hyphen.
fn minus(s: String) -> String {
    match s.strip_prefix('-') {
        Some(rest) => format!("−{rest}"),
        None => s,
    }
}

/// Labels for evenly spaced `values` `step` apart: the fewest decimals that tell
/// them apart, or a mantissa × 10^k when the values are very large or very small.
fn linear_labels(values: &[f64], step: f64) -> Vec<String> {
    let top = values.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let step_exp = (step.log10() + 1e-9).floor() as i32;
    if top >= 1e6 || (top > 0.0 && top < 1e-3) {
        let e = top.log10().floor() as i32;
        let decimals = (e - step_exp).max(0) as usize;
        let scale = 10f64.powi(e);
        return values
            .iter()
            .map(|&v| {
                if v.abs() < step * 1e-6 {
                    "0".to_string()
                } else {
                    minus(format!("{:.*}×{}", decimals, v / scale, power_of_ten(e)))
                }
            })
            .collect();
    }
    let decimals = (-step_exp).max(0) as usize;
    values
        .iter()
        .map(|&v| {
            let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
            minus(format!("{v:.decimals$}"))
        })
        .collect()
}

fn linear_ticks(values: &[f64]) -> Ticks {
    let finite: Vec<f64> =
        values.iter().copied().filter(|v| v.is_finite()).collect();
    let integer = !finite.is_empty()
        && finite.iter().all(|v| v.fract() == 0.0 && v.abs() < 1e15);
    let (mut lo, mut hi) = min_max(finite.iter().copied()).unwrap_or((0.0, 1.0));
    if hi - lo <= 1e-12 * hi.abs().max(lo.abs()).max(1e-300) {
        let d = if integer || lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo, hi) = (lo - d, hi + d);
    }
    let pad = 0.04 * (hi - lo);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut step = nice_step((hi - lo) / 5.0);
    if integer {
        step = step.max(1.0);
    }
    let (k0, k1) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    let at: Vec<f64> = (k0..=k1).map(|k| k as f64 * step).collect();
    let labels = linear_labels(&at, step);
    Ticks { lo, hi, major: at.into_iter().zip(labels).collect(), minor: Vec::new() }
}

/// The label of 10^k on a log axis: plain (0.01 … 1000) when `plain`, else 10ᵏ.
fn decade_label(k: i32, plain: bool) -> String {
    match (plain, k) {
        (true, k) if k < 0 => {
            format!("{:.*}", k.unsigned_abs() as usize, 10f64.powi(k))
        }
        (true, k) => 10u64.pow(k as u32).to_string(),
        (false, k) => power_of_ten(k),
    }
}

fn log_ticks(values: &[f64]) -> Ticks {
    let positive: Vec<f64> =
        values.iter().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
    let integer = !positive.is_empty() && positive.iter().all(|v| v.fract() == 0.0);
    let (mut a, mut b) =
        min_max(positive.iter().map(|v| v.log10())).unwrap_or((-1.0, 0.0));
    if b - a < 1e-9 {
        (a, b) = (a - 0.5, b + 0.5);
    }
    let pad = 0.04 * (b - a);
    let (a, b) = (a - pad, b + pad);
    let decades: Vec<i32> = (a.ceil() as i32..=b.floor() as i32).collect();
    if decades.len() >= 3 {
        let stride = decades.len().div_ceil(7) as i32;
        let labelled: Vec<i32> =
            decades.iter().copied().filter(|k| k.rem_euclid(stride) == 0).collect();
        let plain = labelled.iter().all(|k| (-2..=3).contains(k));
        let major = labelled
            .iter()
            .map(|&k| (f64::from(k), decade_label(k, plain)))
            .collect();
        let minor = if stride == 1 {
            (a.floor() as i32..=b.floor() as i32)
                .flat_map(|k| {
                    (2..10).map(move |m| f64::from(k) + f64::from(m).log10())
                })
                .filter(|l| (a..=b).contains(l))
                .collect()
        } else {
            decades
                .iter()
                .filter(|k| k.rem_euclid(stride) != 0)
                .map(|&k| f64::from(k))
                .collect()
        };
        return Ticks { lo: a, hi: b, major, minor };
    }
    // Less than about two decades: 1-2-5 (or 1…9) × 10^k, else evenly spaced
    // values.
    let candidates = |ms: &[u32]| -> Vec<(i32, u32)> {
        (a.floor() as i32 - 1..=b.ceil() as i32)
            .flat_map(|k| ms.iter().map(move |&m| (k, m)))
            .filter(|&(k, m)| {
                (a..=b).contains(&(f64::from(k) + f64::from(m).log10()))
            })
            .filter(|&(k, _)| !integer || k >= 0)
            .collect()
    };
    let mut picked = candidates(&[1, 2, 5]);
    if picked.len() < 3 {
        picked = candidates(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
    if picked.len() >= 3 {
        let plain = picked.iter().all(|&(k, _)| (-4..=5).contains(&k));
        let major = picked
            .iter()
            .map(|&(k, m)| {
                let at = f64::from(k) + f64::from(m).log10();
                let label = match (plain, k) {
                    (true, k) if k < 0 => {
                        format!(
                            "{:.*}",
                            k.unsigned_abs() as usize,
                            f64::from(m) * 10f64.powi(k)
                        )
                    }
                    (true, k) => (u64::from(m) * 10u64.pow(k as u32)).to_string(),
                    (false, k) if m == 1 => power_of_ten(k),
                    (false, k) => format!("{m}×{}", power_of_ten(k)),
                };
                (at, label)
            })
            .collect();
        return Ticks { lo: a, hi: b, major, minor: Vec::new() };
    }
    let (lo, hi) = (10f64.powf(a), 10f64.powf(b));
    let step = nice_step((hi - lo) / 4.0);
    let at: Vec<f64> = ((lo / step).ceil() as i64..=(hi / step).floor() as i64)
        .map(|k| k as f64 * step)
        .collect();
    let labels = linear_labels(&at, step);
    Ticks {
        lo: a,
        hi: b,
        major: at.iter().map(|v| v.log10()).zip(labels).collect(),
        minor: Vec::new(),
    }
}

/// Whether any series (polylines in pixels; a single point counts as a point)
/// touches `r`.
pub fn series_meet_rect(series: &[Vec<(f64, f64)>], r: Rect) -> bool {
    series.iter().any(|pts| match pts.as_slice() {
        [] => false,
        [p] => segment_meets_rect(*p, *p, r),
        pts => pts.windows(2).any(|w| segment_meets_rect(w[0], w[1], r)),
    })
}

/// Where a legend of `size` (width, height, in pixels) can sit inside the plotting
/// area `plot` without covering data: the top-left corner of the first free corner
/// among top right, top left, bottom right and bottom left (8 px in from the frame,
/// with 6 px clear of every series line and point), or `None` when no corner is
/// free and the legend belongs outside the plot. `series` are the plotted polylines
/// in pixels (y grows downwards).
pub fn legend_corner(
    plot: Rect,
    size: (f64, f64),
    series: &[Vec<(f64, f64)>],
) -> Option<(f64, f64)> {
    const INSET: f64 = 8.0;
    const CLEAR: f64 = 6.0;
    let (w, h) = size;
    if w + 2.0 * INSET > plot[2] - plot[0] || h + 2.0 * INSET > plot[3] - plot[1] {
        return None;
    }
    let (left, right) = (plot[0] + INSET, plot[2] - INSET - w);
    let (top, bottom) = (plot[1] + INSET, plot[3] - INSET - h);
    [(right, top), (left, top), (right, bottom), (left, bottom)].into_iter().find(
        |&(x, y)| {
            !series_meet_rect(
                series,
                [x - CLEAR, y - CLEAR, x + w + CLEAR, y + h + CLEAR],
            )
        },
    )
}

/// How the legend's entries are laid out below the plot: columns and rows.
fn below_grid(n: usize, entry_w: f64, avail_w: f64) -> (usize, usize) {
    let cols = ((avail_w / entry_w).floor() as usize).clamp(1, n.max(1));
    (cols, n.div_ceil(cols))
}

/// The pixel geometry of a line chart, decided before anything is drawn.
struct Layout {
    height: u32,
    plot: Rect,
    x: Ticks,
    y: Ticks,
    /// The series in pixels.
    lines: Vec<Vec<(f64, f64)>>,
    markers: Vec<bool>,
    legend: Legend,
}

enum Legend {
    None,
    /// Boxed inside the plot, top-left corner and size.
    Inside((f64, f64), (f64, f64)),
    /// Below the plot: top edge, column width, columns.
    Below(f64, f64, usize),
}

impl LineChart<'_> {
    fn layout(&self) -> Layout {
        let usable = |p: &&(f64, f64)| {
            p.0.is_finite()
                && p.1.is_finite()
                && (!self.log_x || p.0 > 0.0)
                && (!self.log_y || p.1 > 0.0)
        };
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(usable).map(|p| p.0))
            .collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(usable).map(|p| p.1))
            .collect();
        let (x, y) = (ticks(&xs, self.log_x), ticks(&ys, self.log_y));
        let widest = |t: &Ticks| {
            t.major.iter().map(|(_, l)| text_width(l, TICK_PX)).fold(0.0, f64::max)
        };
        let y_title =
            if self.y_label.is_empty() { 0.0 } else { AXIS_PX * 1.3 + 6.0 };
        let left = (10.0 + y_title + widest(&y) + 11.0).round();
        let last_half =
            x.major.last().map_or(0.0, |(_, l)| text_width(l, TICK_PX) / 2.0);
        let right = f64::from(WIDTH) - (last_half + 6.0).max(22.0);
        // The title is not drawn (see [`with_title`]): room for the top tick label
        // only.
        let top = 14.0;
        let x_title =
            if self.x_label.is_empty() { 0.0 } else { AXIS_PX * 1.3 + 6.0 };
        let bottom = f64::from(HEIGHT) - (10.0 + TICK_PX * 1.3 + x_title + 10.0);
        let plot = [left, top, right, bottom.round()];
        let to_px = |(px, py): (f64, f64)| {
            let (tx, ty) = (
                if self.log_x { px.log10() } else { px },
                if self.log_y { py.log10() } else { py },
            );
            (
                plot[0] + (tx - x.lo) / (x.hi - x.lo) * (plot[2] - plot[0]),
                plot[3] - (ty - y.lo) / (y.hi - y.lo) * (plot[3] - plot[1]),
            )
        };
        let lines: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|s| s.points.iter().filter(usable).map(|&p| to_px(p)).collect())
            .collect();
        let markers: Vec<bool> =
            lines.iter().map(|l| l.len() <= MARKER_MAX_POINTS).collect();
        let labelled = self.series.iter().filter(|s| !s.label.is_empty()).count();
        let text_w = self
            .series
            .iter()
            .map(|s| text_width(&s.label, LEGEND_PX))
            .fold(0.0, f64::max);
        let (mut height, mut legend) = (HEIGHT, Legend::None);
        if labelled > 0 {
            let size = (
                10.0 + 26.0 + 8.0 + text_w + 10.0,
                8.0 + LEGEND_ROW * self.series.len() as f64,
            );
            legend = match legend_corner(plot, size, &lines) {
                Some(at) => Legend::Inside(at, size),
                None => {
                    let entry_w = 26.0 + 8.0 + text_w + 24.0;
                    let (cols, rows) = below_grid(
                        self.series.len(),
                        entry_w,
                        f64::from(WIDTH) - plot[0] - 10.0,
                    );
                    height += (LEGEND_ROW * rows as f64 + 10.0).ceil() as u32;
                    Legend::Below(f64::from(HEIGHT) - 4.0, entry_w, cols)
                }
            };
        }
        Layout { height, plot, x, y, lines, markers, legend }
    }

    /// Render to an SVG string.
    pub fn to_svg(&self) -> anyhow::Result<String> {
        let l = self.layout();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, l.height))
                .into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            self.draw(&root, &l)?;
            root.present().map_err(err)?;
        }
        Ok(with_title(svg, self.title))
    }

    fn draw(
        &self,
        root: &DrawingArea<SVGBackend, Shift>,
        l: &Layout,
    ) -> anyhow::Result<()> {
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let [x0, y0, x1, y1] = l.plot;
        let px = |t: f64| x0 + (t - l.x.lo) / (l.x.hi - l.x.lo) * (x1 - x0);
        let py = |t: f64| y1 - (t - l.y.lo) / (l.y.hi - l.y.lo) * (y1 - y0);
        let at = |x: f64, y: f64| (x.round() as i32, y.round() as i32);
        let line = |pts: Vec<(i32, i32)>, c: RGBColor, w: u32| {
            root.draw(&PathElement::new(pts, c.stroke_width(w)))
        };
        let text = |s: &str, pos: (i32, i32), style: TextStyle| {
            root.draw(&Text::new(s, pos, style))
        };
        // Light major grid.
        for (t, _) in &l.x.major {
            line(vec![at(px(*t), y0), at(px(*t), y1)], GRID, 1).map_err(err)?;
        }
        for (t, _) in &l.y.major {
            line(vec![at(x0, py(*t)), at(x1, py(*t))], GRID, 1).map_err(err)?;
        }
        // The data.
        let fixed: Vec<Option<RGBColor>> =
            self.series.iter().map(|s| s.colour).collect();
        let colours = colours(&fixed);
        // Halos first, so that every line runs over them.
        for (i, pts) in l.lines.iter().enumerate() {
            if self.series[i].halo {
                let pix: Vec<(i32, i32)> =
                    pts.iter().map(|&(x, y)| at(x, y)).collect();
                let band = colours[i].mix(HALO_OPACITY).stroke_width(9);
                draw_line(root, pix, band, Dash::Solid)?;
            }
        }
        for (i, pts) in l.lines.iter().enumerate() {
            let c = colours[i];
            let pix: Vec<(i32, i32)> = pts.iter().map(|&(x, y)| at(x, y)).collect();
            draw_line(root, pix.clone(), c.stroke_width(2), self.series[i].dash)?;
            if l.markers[i] {
                for p in pix {
                    root.draw(&Circle::new(p, 4, c.filled())).map_err(err)?;
                }
            }
        }
        // Axes, ticks and their labels.
        line(vec![at(x0, y1), at(x1, y1)], BLACK, 1).map_err(err)?;
        line(vec![at(x0, y0), at(x0, y1)], BLACK, 1).map_err(err)?;
        let tick_style =
            |h: HPos, v: VPos| TextStyle::from(font(TICK_PX)).pos(Pos::new(h, v));
        for (t, label) in &l.x.major {
            line(vec![at(px(*t), y1), at(px(*t), y1 + 5.0)], BLACK, 1)
                .map_err(err)?;
            text(label, at(px(*t), y1 + 8.0), tick_style(HPos::Center, VPos::Top))
                .map_err(err)?;
        }
        for t in &l.x.minor {
            line(vec![at(px(*t), y1), at(px(*t), y1 + 3.0)], BLACK, 1)
                .map_err(err)?;
        }
        for (t, label) in &l.y.major {
            line(vec![at(x0 - 5.0, py(*t)), at(x0, py(*t))], BLACK, 1)
                .map_err(err)?;
            text(
                label,
                at(x0 - 8.0, py(*t)),
                tick_style(HPos::Right, VPos::Center),
            )
            .map_err(err)?;
        }
        for t in &l.y.minor {
            line(vec![at(x0 - 3.0, py(*t)), at(x0, py(*t))], BLACK, 1)
                .map_err(err)?;
        }
        let axis_style =
            |v: VPos| TextStyle::from(font(AXIS_PX)).pos(Pos::new(HPos::Center, v));
        let x_title_y = y1 + 10.0 + TICK_PX * 1.3 + 6.0;
        text(self.x_label, at((x0 + x1) / 2.0, x_title_y), axis_style(VPos::Top))
            .map_err(err)?;
        // The rotated y-axis title is centred on the plot, moved (for a long title)
        // as far as it must to stay on the canvas.
        let (half, canvas) =
            (text_width(self.y_label, AXIS_PX) / 2.0, f64::from(l.height));
        let y_mid = if 2.0 * half + 8.0 >= canvas {
            canvas / 2.0
        } else {
            ((y0 + y1) / 2.0).clamp(4.0 + half, canvas - 4.0 - half)
        };
        let y_style = axis_style(VPos::Top).transform(FontTransform::Rotate270);
        text(self.y_label, at(10.0, y_mid), y_style).map_err(err)?;
        // The legend, each entry in its series' colour and dash.
        let entry = |i: usize, x: f64, cy: f64| -> anyhow::Result<()> {
            let c = colours[i];
            let sample = vec![at(x, cy), at(x + 26.0, cy)];
            if self.series[i].halo {
                let band = c.mix(HALO_OPACITY).stroke_width(9);
                draw_line(root, sample.clone(), band, Dash::Solid)?;
            }
            draw_line(root, sample, c.stroke_width(2), self.series[i].dash)?;
            if l.markers[i] {
                root.draw(&Circle::new(at(x + 13.0, cy), 4, c.filled()))
                    .map_err(err)?;
            }
            let style = TextStyle::from(font(LEGEND_PX))
                .pos(Pos::new(HPos::Left, VPos::Center));
            text(&self.series[i].label, at(x + 34.0, cy), style).map_err(err)
        };
        match l.legend {
            Legend::None => {}
            Legend::Inside((x, y), (w, h)) => {
                let rect = [at(x, y), at(x + w, y + h)];
                // No frame: the box only hides the grid (its width is a generous
                // estimate).
                root.draw(&Rectangle::new(rect, WHITE.filled())).map_err(err)?;
                for i in 0..self.series.len() {
                    entry(i, x + 10.0, y + 4.0 + LEGEND_ROW * (i as f64 + 0.5))?;
                }
            }
            Legend::Below(top, entry_w, cols) => {
                for i in 0..self.series.len() {
                    let (col, row) = ((i % cols) as f64, (i / cols) as f64);
                    entry(i, x0 + entry_w * col, top + LEGEND_ROW * (row + 0.5))?;
                }
            }
        }
        Ok(())
    }

    /// Render and write atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        Ok(crate::io::write_text(path, &self.to_svg()?)?)
    }
}

/// A heat map of a matrix with row and column labels, for non-negative values such
/// as attention weights: white at 0, dark blue at the largest value, with a colour
/// bar labelled by [`ticks`]. Cells equal to `None` are drawn grey: "blocked"
/// under a mask (the key for grey is shown only when a cell is blocked). Column
/// labels and the x-axis title sit above the matrix, row labels and the rotated
/// y-axis title to its left.
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub rows: &'a [String],
    pub cols: &'a [String],
    pub values: &'a [Vec<Option<f64>>],
    pub x_label: &'a str,
    pub y_label: &'a str,
}

/// The grey of a blocked heat-map cell.
const BLOCKED: RGBColor = RGBColor(190, 190, 190);

impl Heatmap<'_> {
    pub fn to_svg(&self) -> anyhow::Result<String> {
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let (nr, nc) = (self.rows.len(), self.cols.len());
        if self.values.len() != nr || self.values.iter().any(|r| r.len() != nc) {
            anyhow::bail!("heat map values must be {nr} × {nc}");
        }
        // Colours run from white (0) to dark blue at the largest value, shown on a
        // colour bar.
        let finite: Vec<f64> = self
            .values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let vmax = finite.iter().copied().fold(0.0, f64::max);
        let vmax = if vmax > 0.0 { vmax } else { 1.0 };
        let colour_of = |v: f64| {
            let t = (v / vmax).clamp(0.0, 1.0);
            let mix = |hi: u8, lo: u8| {
                (f64::from(hi) + (f64::from(lo) - f64::from(hi)) * t) as u8
            };
            RGBColor(mix(255, 8), mix(255, 48), mix(255, 107))
        };
        // The colour bar's labels: nice ticks over the values (and 0), those on the
        // bar.
        let mut range = finite;
        range.extend([0.0, vmax]);
        let bar_ticks: Vec<(f64, String)> = ticks(&range, false)
            .major
            .into_iter()
            .filter(|(t, _)| (-1e-9 * vmax..=vmax * (1.0 + 1e-9)).contains(t))
            .collect();
        let blocked = self.values.iter().flatten().any(Option::is_none);

        let widest = |v: &[String]| {
            v.iter().map(|s| text_width(s, TICK_PX)).fold(0.0, f64::max)
        };
        let title_room =
            |label: &str| if label.is_empty() { 0.0 } else { AXIS_PX * 1.3 + 8.0 };
        let cell = (360 / nr.max(nc).max(1)).clamp(12, 40) as i32;
        let (grid_w, grid_h) = (cell * nc as i32, cell * nr as i32);
        let left = (10.0 + title_room(self.y_label) + widest(self.rows) + 8.0)
            .ceil() as i32;
        let top = (10.0 + title_room(self.x_label) + widest(self.cols) + 8.0).ceil()
            as i32;
        // The colour bar: 14 px wide, 20 px right of the matrix, as tall as the
        // matrix (at least 120 px); its labels, and the key for blocked cells,
        // right of it.
        let (bx, bh) = (left + grid_w + 20, grid_h.max(120));
        let label_x = bx + 14 + 8;
        let keys_w = bar_ticks
            .iter()
            .map(|(_, l)| text_width(l, TICK_PX))
            .chain(blocked.then(|| 20.0 + text_width("blocked", TICK_PX)))
            .fold(0.0, f64::max);
        let w = label_x + keys_w.ceil() as i32 + 12;
        let below = if blocked { 14 + 14 } else { 0 };
        let h = top + grid_h.max(bh + below) + 14;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w as u32, h as u32))
                .into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let label = |h: HPos, v: VPos| {
                TextStyle::from(font(TICK_PX)).pos(Pos::new(h, v))
            };
            let axis = TextStyle::from(font(AXIS_PX))
                .pos(Pos::new(HPos::Center, VPos::Top));
            if !self.x_label.is_empty() {
                root.draw(&Text::new(
                    self.x_label,
                    (left + grid_w / 2, 10),
                    axis.clone(),
                ))
                .map_err(err)?;
            }
            if !self.y_label.is_empty() {
                root.draw(&Text::new(
                    self.y_label,
                    (10, top + grid_h / 2),
                    axis.transform(FontTransform::Rotate270),
                ))
                .map_err(err)?;
            }
            for (j, c) in self.cols.iter().enumerate() {
                let x = left + cell * j as i32 + cell / 2;
                let style = label(HPos::Left, VPos::Center)
                    .transform(FontTransform::Rotate270);
                root.draw(&Text::new(c.as_str(), (x, top - 8), style))
                    .map_err(err)?;
            }
            for (i, r) in self.rows.iter().enumerate() {
                let y = top + cell * i as i32 + cell / 2;
                root.draw(&Text::new(
                    r.as_str(),
                    (left - 8, y),
                    label(HPos::Right, VPos::Center),
                ))
                .map_err(err)?;
                for (j, v) in self.values[i].iter().enumerate() {
                    let (x, yy) = (left + cell * j as i32, top + cell * i as i32);
                    let colour = v.map_or(BLOCKED, colour_of);
                    // A 1 px white gap between cells.
                    root.draw(&Rectangle::new(
                        [(x, yy), (x + cell - 1, yy + cell - 1)],
                        colour.filled(),
                    ))
                    .map_err(err)?;
                }
            }
            // The colour bar, framed so that its white end shows, with ticks.
            for k in 0..bh {
                let v = vmax * f64::from(bh - k) / f64::from(bh);
                root.draw(&Rectangle::new(
                    [(bx, top + k), (bx + 14, top + k + 1)],
                    colour_of(v).filled(),
                ))
                .map_err(err)?;
            }
            root.draw(&Rectangle::new(
                [(bx, top), (bx + 14, top + bh)],
                RGBColor(120, 120, 120).stroke_width(1),
            ))
            .map_err(err)?;
            for (t, l) in &bar_ticks {
                let y = top + bh - (t / vmax * f64::from(bh)).round() as i32;
                root.draw(&PathElement::new(
                    vec![(bx + 14, y), (bx + 18, y)],
                    BLACK.stroke_width(1),
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    l.as_str(),
                    (label_x, y),
                    label(HPos::Left, VPos::Center),
                ))
                .map_err(err)?;
            }
            if blocked {
                let y = top + bh + 14;
                root.draw(&Rectangle::new(
                    [(bx, y), (bx + 14, y + 14)],
                    BLOCKED.filled(),
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    "blocked",
                    (bx + 20, y + 7),
                    label(HPos::Left, VPos::Center),
                ))
                .map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(with_title(svg, self.title))
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        Ok(crate::io::write_text(path, &self.to_svg()?)?)
    }
}

/// One group of an [`IntervalChart`]: a value with an interval for every category.
pub struct Group {
    pub label: String,
    /// `(mean, low, high)` per category.
    pub values: Vec<(f64, f64, f64)>,
    /// A fixed colour, used for the marks and the legend entry, instead of the next
    /// palette colour: [`architecture_colour`] for a group that is one
    /// architecture.
    pub colour: Option<RGBColor>,
    /// An open (white) mean marker instead of a filled one: to tell apart groups
    /// of one colour.
    pub hollow: bool,
}

impl Group {
    /// A group in the next palette colour, with filled markers.
    pub fn new(label: impl Into<String>, values: Vec<(f64, f64, f64)>) -> Group {
        Group { label: label.into(), values, colour: None, hollow: false }
    }

    /// The same group in the colour of `arch`.
    pub fn architecture(self, arch: Architecture) -> Group {
        Group { colour: Some(architecture_colour(arch)), ..self }
    }

    /// The same group with open markers when `hollow`.
    pub fn hollow(self, hollow: bool) -> Group {
        Group { hollow, ..self }
    }
}

/// The circles of a mean marker, drawn in turn: a disc of `colour`, or a white one
/// ringed in `colour`.
fn marker_styles(colour: RGBColor, hollow: bool) -> Vec<ShapeStyle> {
    if hollow {
        vec![WHITE.filled(), colour.stroke_width(2)]
    } else {
        vec![colour.filled()]
    }
}

/// Grouped means with error bars over named categories (for example accuracy per
/// task, one group per model), with an optional reference value per category drawn
/// as a dashed mark (for example chance). The legend sits below the plot, never on
/// the data.
pub struct IntervalChart<'a> {
    pub title: &'a str,
    pub categories: &'a [String],
    pub groups: &'a [Group],
    pub y_label: &'a str,
    /// A reference per category, drawn across the category's width, and its legend
    /// label.
    pub reference: Option<(&'a [f64], &'a str)>,
    pub y_range: (f64, f64),
    /// Decimals of the y-axis labels.
    pub y_decimals: usize,
}

impl IntervalChart<'_> {
    pub fn to_svg(&self) -> anyhow::Result<String> {
        let (nc, ng) = (self.categories.len(), self.groups.len());
        if nc == 0 || ng == 0 || self.groups.iter().any(|g| g.values.len() != nc) {
            anyhow::bail!(
                "an interval chart needs one value per category in every group"
            );
        }
        if self.reference.is_some_and(|(r, _)| r.len() != nc) {
            anyhow::bail!(
                "an interval chart's reference needs one value per category"
            );
        }
        let legend_rows = ng.div_ceil(3) + usize::from(self.reference.is_some());
        let (w, h) = (720u32, 400 + 22 * legend_rows as u32);
        let mut svg = String::new();
        {
            let root =
                SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let (plot, legend) = root.split_vertically(400);
            let y_text = |y: f64| format!("{y:.*}", self.y_decimals);
            let widest = [self.y_range.0, self.y_range.1]
                .iter()
                .map(|&y| text_width(&y_text(y), TICK_PX))
                .fold(0.0, f64::max);
            let y_area = 10.0
                + if self.y_label.is_empty() { 0.0 } else { AXIS_PX * 1.3 + 6.0 }
                + widest
                + 12.0;
            let mut chart = ChartBuilder::on(&plot)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(y_area.round() as u32)
                .build_cartesian_2d(0f64..nc as f64, self.y_range.0..self.y_range.1)
                .map_err(err)?;
            let cats = self.categories.to_vec();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .bold_line_style(GRID)
                .light_line_style(TRANSPARENT)
                .label_style(font(TICK_PX))
                .axis_desc_style(font(AXIS_PX))
                .x_labels(nc * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = (x - 0.5).round();
                    if (x - 0.5 - i).abs() < 1e-6
                        && i >= 0.0
                        && (i as usize) < cats.len()
                    {
                        cats[i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .y_label_formatter(&|y| minus(y_text(*y)))
                .y_desc(self.y_label)
                .draw()
                .map_err(err)?;
            let width = 0.8 / ng as f64;
            let fixed: Vec<Option<RGBColor>> =
                self.groups.iter().map(|g| g.colour).collect();
            let colours = colours(&fixed);
            for (c, _) in self.categories.iter().enumerate() {
                if let Some((r, _)) = self.reference {
                    let (x0, x1) = (c as f64 + 0.06, c as f64 + 0.94);
                    chart
                        .draw_series(DashedLineSeries::new(
                            vec![(x0, r[c]), (x1, r[c])],
                            6,
                            4,
                            BLACK.stroke_width(1),
                        ))
                        .map_err(err)?;
                }
                for (g, group) in self.groups.iter().enumerate() {
                    let colour = colours[g];
                    let x = c as f64 + 0.1 + width * (g as f64 + 0.5);
                    let (m, lo, hi) = group.values[c];
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(x, lo), (x, hi)],
                            colour.stroke_width(2),
                        )))
                        .map_err(err)?;
                    for y in [lo, hi] {
                        chart
                            .draw_series(std::iter::once(PathElement::new(
                                vec![(x - width * 0.25, y), (x + width * 0.25, y)],
                                colour.stroke_width(2),
                            )))
                            .map_err(err)?;
                    }
                    for style in marker_styles(colour, group.hollow) {
                        chart
                            .draw_series(std::iter::once(Circle::new(
                                (x, m),
                                4,
                                style,
                            )))
                            .map_err(err)?;
                    }
                }
            }
            let font = font(LEGEND_PX);
            for (g, group) in self.groups.iter().enumerate() {
                let (col, row) = ((g % 3) as i32, (g / 3) as i32);
                let (x, y) = (70 + 210 * col, 6 + 22 * row);
                for style in marker_styles(colours[g], group.hollow) {
                    legend.draw(&Circle::new((x, y + 7), 4, style)).map_err(err)?;
                }
                legend
                    .draw(&Text::new(
                        group.label.as_str(),
                        (x + 12, y),
                        font.clone(),
                    ))
                    .map_err(err)?;
            }
            if let Some((_, label)) = self.reference {
                let y = 6 + 22 * ng.div_ceil(3) as i32;
                // Dashed as the reference marks are, so the key matches them.
                legend
                    .draw(&DashedPathElement::new(
                        vec![(54, y + 7), (80, y + 7)],
                        6,
                        4,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?;
                legend.draw(&Text::new(label, (82, y), font)).map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(with_title(svg, self.title))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(values: &[f64], log: bool) -> Vec<String> {
        ticks(values, log).labels().into_iter().map(String::from).collect()
    }

    fn chart(series: &[Series], log_x: bool, log_y: bool) -> String {
        LineChart {
            title: "a title",
            x_label: "x",
            y_label: "y",
            log_x,
            log_y,
            series,
        }
        .to_svg()
        .unwrap()
    }

    /// Every `<text>` of an SVG from this module: anchor x, y, `text-anchor`,
    /// content.
    fn texts(svg: &str) -> Vec<(f64, f64, String, String)> {
        let attr = |tag: &str, name: &str| -> String {
            let key = format!(" {name}=\"");
            tag.split_once(&key)
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(v, _)| v.to_string())
                .unwrap_or_default()
        };
        svg.split("<text")
            .skip(1)
            .map(|t| {
                let (tag, rest) = t.split_once('>').unwrap();
                let content =
                    rest.split_once("</text>").unwrap().0.trim().to_string();
                (
                    attr(tag, "x").parse().unwrap(),
                    attr(tag, "y").parse().unwrap(),
                    attr(tag, "text-anchor"),
                    content,
                )
            })
            .collect()
    }

    fn canvas(svg: &str) -> (f64, f64) {
        let head = svg.split_once('>').unwrap().0;
        let get = |k: &str| {
            head.split_once(&format!("{k}=\""))
                .unwrap()
                .1
                .split_once('"')
                .unwrap()
                .0
                .parse()
                .unwrap()
        };
        (get("width"), get("height"))
    }

    fn line(points: Vec<(f64, f64)>) -> Series {
        Series::new("a series", points)
    }

    /// A heat map of `values` with `labels` on both axes: keys across, queries
    /// down.
    fn heatmap(
        title: &str,
        labels: &[String],
        values: &[Vec<Option<f64>>],
    ) -> String {
        Heatmap {
            title,
            rows: labels,
            cols: labels,
            values,
            x_label: "key",
            y_label: "query",
        }
        .to_svg()
        .unwrap()
    }

    /// An interval chart of `groups` over the one category "a", on `0 ..= 3`.
    fn intervals(title: &str, groups: &[Group]) -> String {
        IntervalChart {
            title,
            categories: &["a".to_string()],
            groups,
            y_label: "y",
            reference: None,
            y_range: (0.0, 3.0),
            y_decimals: 0,
        }
        .to_svg()
        .unwrap()
    }

    #[test]
    fn integer_data_gets_integer_ticks() {
        let turns: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(labels(&turns, false), ["2", "4", "6", "8", "10"]);
        assert_eq!(labels(&[1.0, 2.0, 3.0], false), ["1", "2", "3"]);
        let index: Vec<f64> = (1..=512).map(f64::from).collect();
        assert_eq!(labels(&index, false), ["0", "100", "200", "300", "400", "500"]);
        assert_eq!(
            labels(&[280.0, 300.0, 320.0], false),
            ["280", "290", "300", "310", "320"]
        );
        // On a log axis too, and never below 1.
        let ratios = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
        assert_eq!(labels(&ratios, true), ["1", "2", "5", "10", "20", "50"]);
        let svg = chart(
            &[line(turns.iter().map(|&t| (t, t * t)).collect())],
            false,
            false,
        );
        let shown: Vec<String> = texts(&svg).into_iter().map(|t| t.3).collect();
        assert!(
            shown.iter().any(|t| t == "10")
                && !shown.iter().any(|t| t.ends_with(".0")),
            "{shown:?}"
        );
    }

    #[test]
    fn linear_ticks_are_nice_and_free_of_float_artefacts() {
        assert_eq!(
            labels(&[0.1, 0.7], false),
            ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
        );
        assert_eq!(labels(&[2.2, 4.4], false), ["2.5", "3.0", "3.5", "4.0"]);
        assert_eq!(labels(&[-1.0, 1.0], false), ["−1", "0", "1"]);
        assert_eq!(labels(&[-1.0, 0.9], false), ["−1.0", "−0.5", "0.0", "0.5"]);
        assert_eq!(
            labels(&[0.0, 0.03], false),
            ["0.000", "0.005", "0.010", "0.015", "0.020", "0.025", "0.030"]
        );
        assert_eq!(
            labels(&[0.0, 3e7], false),
            ["0", "0.5×10⁷", "1.0×10⁷", "1.5×10⁷", "2.0×10⁷", "2.5×10⁷", "3.0×10⁷"]
        );
        // A constant series still gets an axis.
        assert_eq!(labels(&[5.0, 5.0], false), ["4", "5", "6"]);
        assert_eq!(labels(&[], false), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    }

    #[test]
    fn log_axes_are_labelled_at_powers_of_ten() {
        assert_eq!(
            labels(&[1e-5, 1e-3, 1.0], true),
            ["10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰"]
        );
        assert_eq!(labels(&[0.1, 100.0], true), ["0.1", "1", "10", "100"]);
        assert_eq!(
            labels(&[64.0, 4096.0], true),
            ["100", "200", "500", "1000", "2000"]
        );
        assert_eq!(labels(&[16.0, 16384.0], true), ["10²", "10³", "10⁴"]);
        // Many decades: every third, with the others as minor ticks.
        let t = ticks(&[1e-16, 1.0], true);
        assert_eq!(t.labels(), ["10⁻¹⁵", "10⁻¹²", "10⁻⁹", "10⁻⁶", "10⁻³", "10⁰"]);
        assert!(t.minor.contains(&-1.0) && !t.minor.contains(&-3.0), "{t:?}");
        // Less than a decade: 1…9 × 10^k.
        assert_eq!(labels(&[2.0, 8.0], true), ["2", "3", "4", "5", "6", "7", "8"]);
        assert_eq!(
            labels(&[0.02, 0.5], true),
            ["0.02", "0.05", "0.1", "0.2", "0.5"]
        );
        // A narrow range falls back on evenly spaced values.
        assert_eq!(
            labels(&[3.0, 3.2], true),
            ["3.00", "3.05", "3.10", "3.15", "3.20"]
        );
        // Zeros and negatives are left out of a log axis.
        assert_eq!(
            labels(&[0.0, -1.0, 1e-4, 1.0], true),
            ["10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰"]
        );
        let svg = chart(
            &[line(
                (0..512)
                    .map(|i| (f64::from(i + 1), 10f64.powf(-f64::from(i) / 40.0)))
                    .collect(),
            )],
            false,
            true,
        );
        let shown: Vec<String> = texts(&svg).into_iter().map(|t| t.3).collect();
        assert!(
            shown.contains(&"10⁻¹²".to_string())
                && !shown.iter().any(|t| t.contains("e-")),
            "{shown:?}"
        );
    }

    #[test]
    fn no_label_leaves_the_canvas() {
        let tiny: Vec<(f64, f64)> =
            (0..50).map(|i| (f64::from(i), 1e-7 * f64::from(i + 1))).collect();
        for svg in [
            chart(&[line(tiny.clone())], false, true),
            chart(&[line(tiny)], false, false),
        ] {
            let (w, h) = canvas(&svg);
            for (x, y, anchor, text) in texts(&svg) {
                let width = text_width(&text, TICK_PX);
                let (left, right) = match anchor.as_str() {
                    "end" => (x - width, x),
                    "middle" => (x - width / 2.0, x + width / 2.0),
                    _ => (x, x + width),
                };
                // The rotated y-axis title runs vertically; only its anchor is
                // checked.
                let (left, right) =
                    if text == "y" { (x, x) } else { (left, right) };
                assert!(
                    left >= 0.0 && right <= w && (0.0..=h).contains(&y),
                    "{text:?} at {x}, {y} ({anchor})"
                );
            }
        }
    }

    #[test]
    fn a_long_y_title_stays_on_the_canvas() {
        for y_label in [
            "held-out loss (nats per masked token), mean over seeds",
            "held-out MLM loss (nats per masked token), mean over seeds",
        ] {
            let svg = LineChart {
                title: "",
                x_label: "x",
                y_label,
                log_x: false,
                log_y: false,
                series: &[line(vec![(0.0, 1.0), (1.0, 0.0)])],
            }
            .to_svg()
            .unwrap();
            let (_, h) = canvas(&svg);
            let t = texts(&svg).into_iter().find(|t| t.3 == y_label).unwrap();
            // On the canvas by the (generous) estimate, or centred on it when even
            // that does not fit.
            let half = text_width(y_label, AXIS_PX) / 2.0;
            assert!(
                (t.1 - half >= 0.0 && t.1 + half <= h) || t.1 == h / 2.0,
                "{t:?} on a canvas {h} tall"
            );
        }
    }

    #[test]
    fn markers_only_on_short_series() {
        let short = line((0..10).map(|i| (f64::from(i), f64::from(i))).collect());
        let long = line((0..512).map(|i| (f64::from(i), f64::from(i))).collect());
        // Ten on the line and one in the legend.
        assert_eq!(chart(&[short], false, false).matches("<circle").count(), 11);
        assert_eq!(chart(&[long], false, false).matches("<circle").count(), 0);
    }

    #[test]
    fn the_legend_takes_a_free_corner_or_goes_below() {
        let plot = [0.0, 0.0, 400.0, 300.0];
        let size = (100.0, 50.0);
        // A falling diagonal leaves the top-right corner free.
        let falling = vec![vec![(0.0, 0.0), (400.0, 300.0)]];
        assert_eq!(legend_corner(plot, size, &falling), Some((292.0, 8.0)));
        // A rising one takes it; top left is next.
        let rising = vec![vec![(0.0, 300.0), (400.0, 0.0)]];
        assert_eq!(legend_corner(plot, size, &rising), Some((8.0, 8.0)));
        // A line that only passes through a corner, with both ends outside it,
        // still counts.
        let through = vec![vec![(250.0, 0.0), (400.0, 100.0)], falling[0].clone()];
        assert_eq!(legend_corner(plot, size, &through), Some((8.0, 242.0)));
        // A single point in a corner takes it.
        let points =
            vec![vec![(350.0, 30.0)], vec![(30.0, 30.0)], vec![(350.0, 280.0)]];
        assert_eq!(legend_corner(plot, size, &points), Some((8.0, 242.0)));
        // Every corner taken, or a legend too large: none.
        let crowded = vec![falling[0].clone(), rising[0].clone()];
        assert_eq!(legend_corner(plot, size, &crowded), None);
        assert_eq!(legend_corner(plot, (390.0, 50.0), &[]), None);
        // In a chart: a free corner keeps the figure's size and puts the box there;
        // a crowded one moves the legend below and makes the figure taller.
        let falling = [line(vec![(0.0, 10.0), (5.0, 5.0), (10.0, 0.0)])];
        let svg = chart(&falling, false, false);
        assert_eq!(canvas(&svg), (720.0, 440.0));
        let label = texts(&svg).into_iter().find(|t| t.3 == "a series").unwrap();
        assert!(
            label.0 > 500.0 && label.1 < 120.0,
            "legend not at the top right: {label:?}"
        );
        let crowded = [falling[0].points.clone(), vec![(0.0, 0.0), (10.0, 10.0)]]
            .map(|points| Series::new("a series", points));
        let svg = chart(&crowded, false, false);
        assert!(canvas(&svg).1 > 440.0, "{:?}", canvas(&svg));
        let label = texts(&svg).into_iter().find(|t| t.3 == "a series").unwrap();
        assert!(label.1 > 440.0 - 10.0, "legend not below the plot: {label:?}");
    }

    #[test]
    fn charts_render_labels_as_svg_text() {
        let s = [Series::new("causal", vec![(1.0, 2.0), (2.0, 1.0)])];
        let svg = LineChart {
            title: "t",
            x_label: "x",
            y_label: "y",
            log_x: false,
            log_y: true,
            series: &s,
        }
        .to_svg()
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("causal"), "{svg}");
        let rows = vec!["a".to_string(), "b".to_string()];
        let vals = vec![vec![Some(1.0), None], vec![Some(0.5), Some(0.5)]];
        let hm = Heatmap {
            title: "m",
            rows: &rows,
            cols: &rows,
            values: &vals,
            x_label: "key",
            y_label: "query",
        };
        assert!(hm.to_svg().unwrap().contains("query"));
        let bad = vec![vec![Some(1.0)]];
        assert!(Heatmap { values: &bad, ..hm }.to_svg().is_err());
        let cats = vec!["yes_no".to_string(), "bigger".to_string()];
        let groups =
            [Group::new("CD:FLM", vec![(50.0, 45.0, 55.0), (60.0, 58.0, 62.0)])];
        let chart = IntervalChart {
            title: "t",
            categories: &cats,
            groups: &groups,
            y_label: "accuracy (%)",
            reference: Some((&[50.0, 50.0], "chance")),
            y_range: (0.0, 100.0),
            y_decimals: 0,
        };
        let svg = chart.to_svg().unwrap();
        assert!(
            svg.contains("yes_no")
                && svg.contains("CD:FLM")
                && svg.contains("chance"),
            "{svg}"
        );
        // The y labels carry the decimals asked for.
        let fine = IntervalChart { y_range: (-0.5, 0.5), y_decimals: 2, ..chart }
            .to_svg()
            .unwrap();
        assert!(
            fine.contains("0.00\n")
                || fine.contains(">0.00<")
                || fine.contains("-0.50"),
            "{fine}"
        );
        assert!(
            IntervalChart { reference: Some((&[50.0], "chance")), ..chart }
                .to_svg()
                .is_err()
        );
    }

    /// The stroke colour (`#RRGGBB`) of every `<polyline>` of width 2, in order.
    fn strokes(svg: &str) -> Vec<String> {
        svg.split("<polyline")
            .skip(1)
            .filter(|p| p.contains("stroke-width=\"2\""))
            .filter_map(|p| {
                p.split_once("stroke=\"").and_then(|(_, r)| r.split_once('"'))
            })
            .map(|(c, _)| c.to_string())
            .collect()
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    #[test]
    fn each_architecture_has_its_own_palette_colour() {
        let all: Vec<RGBColor> =
            Architecture::ALL.iter().map(|&a| architecture_colour(a)).collect();
        for (i, c) in all.iter().enumerate() {
            assert!(PALETTE.contains(c), "{c:?}");
            assert!(!all[..i].contains(c), "{c:?} is taken twice");
        }
        // Without fixed colours, palette order; with one, the others skip every
        // architecture colour.
        assert_eq!(colours(&[None, None]), PALETTE[..2]);
        let cd = architecture_colour(Architecture::CausalDecoder);
        let got = colours(&[None, Some(cd), None]);
        assert_eq!(got[1], cd);
        for c in [got[0], got[2]] {
            assert!(!all.contains(&c) && PALETTE.contains(&c), "{c:?}");
        }
        assert_ne!(got[0], got[2]);
    }

    #[test]
    fn a_fixed_colour_is_used_for_the_line_and_its_legend_entry() {
        let ed = architecture_colour(Architecture::EncoderDecoder);
        let fixed = [
            line(vec![(0.0, 10.0), (5.0, 5.0), (10.0, 0.0)])
                .architecture(Architecture::EncoderDecoder),
            Series::new("a baseline", vec![(0.0, 9.0), (10.0, 1.0)]),
        ];
        let svg = chart(&fixed, false, false);
        let s = strokes(&svg);
        // Both lines, then both legend samples.
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!([&s[0], &s[2]], [&hex(ed), &hex(ed)], "{s:?}");
        // The other series skips the architecture colours, line and legend alike.
        assert_eq!(s[1], s[3]);
        assert_eq!(s[1], hex(PALETTE[4]), "{s:?}");
        // A dashed series is drawn (line and legend sample) in short pieces.
        let dashed = [line(vec![(0.0, 10.0), (10.0, 0.0)]).dash(Dash::Dashed)];
        assert!(strokes(&chart(&dashed, false, false)).len() > 4);
        // An interval chart's group too: its bars, marker and legend entry.
        let groups = [
            Group::new("CD:MLM", vec![(1.0, 0.0, 2.0)])
                .architecture(Architecture::CausalDecoder)
                .hollow(true),
            Group::new("other", vec![(1.0, 0.0, 2.0)]),
        ];
        let svg = intervals("", &groups);
        let cd = hex(architecture_colour(Architecture::CausalDecoder));
        assert!(strokes(&svg).iter().filter(|c| **c == cd).count() >= 3, "{svg}");
        assert!(!svg.contains(&hex(PALETTE[0])), "{svg}");
    }

    #[test]
    fn titles_are_named_but_not_drawn() {
        let title = "Loss <held out> & more";
        let svg = LineChart {
            title,
            x_label: "x",
            y_label: "y",
            log_x: false,
            log_y: false,
            series: &[line(vec![(0.0, 1.0), (1.0, 0.0)])],
        }
        .to_svg()
        .unwrap();
        let rows = vec!["a".to_string(), "b".to_string()];
        let vals = vec![vec![Some(0.3), None], vec![Some(0.7), Some(0.1)]];
        let map = heatmap(title, &rows, &vals);
        let interval = intervals(title, &[Group::new("g", vec![(1.0, 0.0, 2.0)])]);
        for svg in [svg, map, interval] {
            let (head, rest) = svg.split_once('>').unwrap();
            assert!(head.starts_with("<svg"), "{svg}");
            assert!(
                rest.trim_start()
                    .starts_with("<title>Loss &lt;held out&gt; &amp; more</title>"),
                "{svg}"
            );
            assert!(!texts(&svg).iter().any(|t| t.3.contains("held")), "{svg}");
        }
        // The line chart's plot starts near the top.
        let tops =
            texts(&chart(&[line(vec![(0.0, 1.0), (1.0, 0.0)])], false, false));
        let highest = tops.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        assert!(highest < 30.0, "{tops:?}");
    }

    #[test]
    fn the_heat_map_colour_bar_has_clean_ticks() {
        let rows: Vec<String> = (0..4).map(|i| format!("{i} tok")).collect();
        let vals: Vec<Vec<Option<f64>>> = (0..4)
            .map(|i| {
                (0..4).map(|j| (j <= i).then(|| 1.0 / f64::from(i + 1))).collect()
            })
            .collect();
        let svg = heatmap("causal", &rows, &vals);
        let shown: Vec<String> = texts(&svg).into_iter().map(|t| t.3).collect();
        for want in ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0", "blocked", "key"] {
            assert!(shown.iter().any(|t| t == want), "{want}: {shown:?}");
        }
        let (w, h) = canvas(&svg);
        for (x, y, _, text) in texts(&svg) {
            assert!((0.0..=w).contains(&x) && (0.0..=h).contains(&y), "{text}");
        }
        // No blocked cell, no key for them.
        let svg = heatmap("", &rows, &vec![vec![Some(0.25); 4]; 4]);
        assert!(!svg.contains("blocked"), "{svg}");
    }
}
