//! SVG figures through plotters: line charts, heat maps and interval charts, written atomically.
//!
//! Text is emitted as SVG `<text>` (no font files are needed), so figures build anywhere.

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

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

/// One line of a line chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
    pub series: &'a [Series],
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (if log { 0.1 } else { 0.0 }, 1.0);
    }
    if log {
        (lo / 1.2, hi * 1.2)
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-9);
        (lo - pad, hi + pad)
    }
}

impl LineChart<'_> {
    /// Render to an SVG string.
    pub fn to_svg(&self) -> anyhow::Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            self.draw(&root)?;
            root.present().map_err(err)?;
        }
        Ok(svg)
    }

    fn draw(&self, root: &DrawingArea<SVGBackend, Shift>) -> anyhow::Result<()> {
        let xs = bounds(self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), self.log_x);
        let ys = bounds(self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), self.log_y);
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64);
        macro_rules! finish {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart.configure_mesh().x_desc(self.x_label).y_desc(self.y_label).draw().map_err(err)?;
                for (i, s) in self.series.iter().enumerate() {
                    let c = PALETTE[i % PALETTE.len()];
                    let pts: Vec<_> = s
                        .points
                        .iter()
                        .copied()
                        .filter(|p| (!self.log_x || p.0 > 0.0) && (!self.log_y || p.1 > 0.0))
                        .collect();
                    chart
                        .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                        .map_err(err)?
                        .label(s.label.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
                    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(err)?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(err)?;
            }};
        }
        match (self.log_x, self.log_y) {
            (false, false) => finish!(builder.build_cartesian_2d(xs.0..xs.1, ys.0..ys.1).map_err(err)?),
            (true, false) => {
                finish!(builder.build_cartesian_2d((xs.0..xs.1).log_scale(), ys.0..ys.1).map_err(err)?)
            }
            (false, true) => {
                finish!(builder.build_cartesian_2d(xs.0..xs.1, (ys.0..ys.1).log_scale()).map_err(err)?)
            }
            (true, true) => {
                finish!(
                    builder
                        .build_cartesian_2d((xs.0..xs.1).log_scale(), (ys.0..ys.1).log_scale())
                        .map_err(err)?
                )
            }
        }
        Ok(())
    }

    /// Render and write atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::io::write_text(path, &self.to_svg()?)
    }
}

/// A heat map of a matrix with row and column labels, for non-negative values such as attention
/// weights: white at 0, dark blue at the largest value, with a colour bar. Cells equal to `None`
/// are drawn grey: "blocked" under a mask.
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub rows: &'a [String],
    pub cols: &'a [String],
    pub values: &'a [Vec<Option<f64>>],
    pub x_label: &'a str,
    pub y_label: &'a str,
}

impl Heatmap<'_> {
    pub fn to_svg(&self) -> anyhow::Result<String> {
        let (nr, nc) = (self.rows.len(), self.cols.len());
        if self.values.len() != nr || self.values.iter().any(|r| r.len() != nc) {
            anyhow::bail!("heat map values must be {nr} × {nc}");
        }
        // Colours run from white (0) to dark blue at the largest value, shown on a colour bar.
        let vmax =
            self.values.iter().flatten().flatten().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
        let vmax = if vmax > 0.0 { vmax } else { 1.0 };
        let colour_of = |v: f64| {
            let t = (v / vmax).clamp(0.0, 1.0);
            let mix = |hi: u8, lo: u8| (f64::from(hi) + (f64::from(lo) - f64::from(hi)) * t) as u8;
            RGBColor(mix(255, 8), mix(255, 48), mix(255, 107))
        };
        // Room for labels: about 7 px per character at 13 px.
        let chars = |v: &[String]| v.iter().map(|s| s.chars().count()).max().unwrap_or(1) as i32;
        let cell = (360 / nr.max(nc)).clamp(12, 40) as i32;
        let left = 16 + 7 * chars(self.rows).max(chars(&[self.y_label.to_string()]) / 2);
        let top = 40 + 7 * chars(self.cols) + 8;
        let grid_w = cell * nc as i32;
        let (w, h) = (left + grid_w + 110, top + cell * nr as i32 + 44);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w as u32, h as u32)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let font = ("sans-serif", 13).into_font();
            root.draw(&Text::new(self.title, (10, 10), ("sans-serif", 17).into_font())).map_err(err)?;
            for (j, c) in self.cols.iter().enumerate() {
                let x = left + cell * j as i32 + cell / 2 - 6;
                let style = font.clone().transform(FontTransform::Rotate270);
                root.draw(&Text::new(c.as_str(), (x, top - 6), style)).map_err(err)?;
            }
            for (i, r) in self.rows.iter().enumerate() {
                let y = top + cell * i as i32 + cell / 2 - 6;
                root.draw(&Text::new(r.as_str(), (10, y), font.clone())).map_err(err)?;
                for (j, v) in self.values[i].iter().enumerate() {
                    let (x, yy) = (left + cell * j as i32, top + cell * i as i32);
                    let colour = v.map_or(RGBColor(190, 190, 190), colour_of);
                    root.draw(&Rectangle::new([(x, yy), (x + cell - 1, yy + cell - 1)], colour.filled()))
                        .map_err(err)?;
                }
            }
            let bottom = top + cell * nr as i32 + 18;
            root.draw(&Text::new(self.x_label, (left, bottom), font.clone())).map_err(err)?;
            root.draw(&Text::new(format!("rows: {}", self.y_label), (10, bottom + 16), font.clone()))
                .map_err(err)?;
            // Colour bar.
            let (bx, bh) = (left + grid_w + 20, (cell * nr as i32).max(60));
            for k in 0..bh {
                let v = vmax * f64::from(bh - k) / f64::from(bh);
                root.draw(&Rectangle::new([(bx, top + k), (bx + 14, top + k + 1)], colour_of(v).filled()))
                    .map_err(err)?;
            }
            root.draw(&Text::new(format!("{vmax:.2}"), (bx + 20, top - 4), font.clone())).map_err(err)?;
            root.draw(&Text::new("0", (bx + 20, top + bh - 10), font.clone())).map_err(err)?;
            root.draw(&Rectangle::new(
                [(bx, top + bh + 10), (bx + 14, top + bh + 24)],
                RGBColor(190, 190, 190).filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new("blocked", (bx + 20, top + bh + 11), font)).map_err(err)?;
            root.present().map_err(err)?;
        }
        Ok(svg)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::io::write_text(path, &self.to_svg()?)
    }
}

/// One group of an [`IntervalChart`]: a value with an interval for every category.
pub struct Group {
    pub label: String,
    /// `(mean, low, high)` per category.
    pub values: Vec<(f64, f64, f64)>,
}

/// Grouped means with error bars over named categories (for example accuracy per task, one
/// group per model), with an optional reference value per category drawn as a dashed mark
/// (for example chance). The legend sits below the plot, never on the data.
pub struct IntervalChart<'a> {
    pub title: &'a str,
    pub categories: &'a [String],
    pub groups: &'a [Group],
    pub y_label: &'a str,
    /// A reference per category, drawn across the category's width, and its legend label.
    pub reference: Option<(&'a [f64], &'a str)>,
    pub y_range: (f64, f64),
    /// Decimals of the y-axis labels.
    pub y_decimals: usize,
}

impl IntervalChart<'_> {
    pub fn to_svg(&self) -> anyhow::Result<String> {
        let (nc, ng) = (self.categories.len(), self.groups.len());
        if nc == 0 || ng == 0 || self.groups.iter().any(|g| g.values.len() != nc) {
            anyhow::bail!("an interval chart needs one value per category in every group");
        }
        if self.reference.is_some_and(|(r, _)| r.len() != nc) {
            anyhow::bail!("an interval chart's reference needs one value per category");
        }
        let legend_rows = ng.div_ceil(3) + usize::from(self.reference.is_some());
        let (w, h) = (720u32, 400 + 22 * legend_rows as u32);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let (plot, legend) = root.split_vertically(400);
            let mut chart = ChartBuilder::on(&plot)
                .caption(self.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..nc as f64, self.y_range.0..self.y_range.1)
                .map_err(err)?;
            let cats = self.categories.to_vec();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .disable_y_mesh()
                .x_labels(nc * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = (x - 0.5).round();
                    if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < cats.len() {
                        cats[i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .y_label_formatter(&|y| format!("{y:.*}", self.y_decimals))
                .y_desc(self.y_label)
                .draw()
                .map_err(err)?;
            let width = 0.8 / ng as f64;
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
                    let colour = PALETTE[g % PALETTE.len()];
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
                    chart
                        .draw_series(std::iter::once(Circle::new((x, m), 4, colour.filled())))
                        .map_err(err)?;
                }
            }
            let font = ("sans-serif", 14).into_font();
            for (g, group) in self.groups.iter().enumerate() {
                let (col, row) = ((g % 3) as i32, (g / 3) as i32);
                let (x, y) = (70 + 210 * col, 6 + 22 * row);
                let colour = PALETTE[g % PALETTE.len()];
                legend.draw(&Circle::new((x, y + 7), 4, colour.filled())).map_err(err)?;
                legend.draw(&Text::new(group.label.as_str(), (x + 12, y), font.clone())).map_err(err)?;
            }
            if let Some((_, label)) = self.reference {
                let y = 6 + 22 * ng.div_ceil(3) as i32;
                legend
                    .draw(&PathElement::new(vec![(62, y + 7), (78, y + 7)], BLACK.stroke_width(1)))
                    .map_err(err)?;
                legend.draw(&Text::new(label, (82, y), font)).map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_render_labels_as_svg_text() {
        let s = [Series { label: "causal".into(), points: vec![(1.0, 2.0), (2.0, 1.0)] }];
        let svg = LineChart { title: "t", x_label: "x", y_label: "y", log_x: false, log_y: true, series: &s }
            .to_svg()
            .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("causal"), "{svg}");
        let rows = vec!["a".to_string(), "b".to_string()];
        let vals = vec![vec![Some(1.0), None], vec![Some(0.5), Some(0.5)]];
        let hm =
            Heatmap { title: "m", rows: &rows, cols: &rows, values: &vals, x_label: "key", y_label: "query" };
        assert!(hm.to_svg().unwrap().contains("query"));
        let bad = vec![vec![Some(1.0)]];
        assert!(Heatmap { values: &bad, ..hm }.to_svg().is_err());
        let cats = vec!["yes_no".to_string(), "bigger".to_string()];
        let groups = [Group { label: "CD:FLM".into(), values: vec![(50.0, 45.0, 55.0), (60.0, 58.0, 62.0)] }];
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
        assert!(svg.contains("yes_no") && svg.contains("CD:FLM") && svg.contains("chance"), "{svg}");
        // The y labels carry the decimals asked for.
        let fine = IntervalChart { y_range: (-0.5, 0.5), y_decimals: 2, ..chart }.to_svg().unwrap();
        assert!(fine.contains("0.00\n") || fine.contains(">0.00<") || fine.contains("-0.50"), "{fine}");
        assert!(IntervalChart { reference: Some((&[50.0], "chance")), ..chart }.to_svg().is_err());
    }
}
