//! SVG figures through plotters: line charts and heat maps, written atomically.
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
    }
}
