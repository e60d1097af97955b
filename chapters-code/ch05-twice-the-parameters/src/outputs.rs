//! Outputs: results.json, the tables and the figures.

use ch04_zero_shot::architecture;
use transformer::chapter::{Outputs, Spread, Table};
use transformer::io::thousands;
use transformer::plot::{
    Architecture, Dash, Group, IntervalChart, LineChart, PALETTE, Series,
};

use crate::*;

/// One row of T5's Table 2 (Raffel et al. 2020; facts.md §1.2), with the LM
/// objective (the prefix-LM objective every contender here is trained with) and
/// with denoising: GLUE and SQuAD after finetuning.
pub struct T5Row {
    pub row: &'static str,
    pub params: &'static str,
    pub cost: &'static str,
    /// (GLUE, SQuAD) with the LM objective.
    pub lm: (f64, f64),
    /// (GLUE, SQuAD) with denoising.
    pub denoising: (f64, f64),
}

const fn t5(
    row: &'static str,
    params: &'static str,
    cost: &'static str,
    lm: (f64, f64),
    denoising: (f64, f64),
) -> T5Row {
    T5Row { row, params, cost, lm, denoising }
}

pub const T5: [T5Row; 5] = [
    t5("Encoder-decoder", "2P", "M", (79.56, 76.02), (83.28, 80.88)),
    t5("Enc-dec, shared", "P", "M", (79.60, 76.35), (82.81, 80.63)),
    t5("Enc-dec, 6 layers", "P", "M/2", (78.67, 75.32), (80.88, 77.59)),
    t5("Language model", "P", "M", (73.78, 53.81), (74.70, 61.14)),
    t5("Prefix LM", "P", "M", (79.68, 76.87), (81.82, 78.94)),
];

fn result<'a>(r: &'a Report, name: &str) -> &'a ContenderResult {
    r.contenders
        .iter()
        .find(|c| c.contender.name == name)
        .expect("every contender ran")
}

/// "2.301 ± 0.130" for a loss, "41.2 ± 1.3" for a percentage.
fn show(s: &Spread, loss: bool) -> String {
    if loss { s.show_dp(3) } else { s.show() }
}

fn ratio(x: f64, base: f64) -> String {
    format!("{:.2}×", x / base)
}

/// `c`'s parameters and forward FLOPs per token as multiples of those of the
/// L-layer causal decoder.
fn ratios_to_lm(r: &Report, c: &ContenderResult) -> (String, String) {
    let base = result(r, "LM, L");
    (
        ratio(c.parameters as f64, base.parameters as f64),
        ratio(
            c.forward_flops_per_token as f64,
            base.forward_flops_per_token as f64,
        ),
    )
}

fn costs_table(r: &Report) -> String {
    let mut t = Table::new(&[
        "Model",
        "Layers",
        "Parameters",
        "",
        "Forward FLOPs per token",
        "",
    ])
    .right_from(1);
    for c in &r.contenders {
        let (params, flops) = ratios_to_lm(r, c);
        t.row([
            c.contender.name.to_string(),
            r.costs
                .iter()
                .find(|x| x.name == c.contender.name)
                .map_or(String::new(), |x| x.layers.clone()),
            thousands(c.parameters as u64),
            params,
            thousands(c.forward_flops_per_token),
            flops,
        ]);
    }
    t.markdown()
}

/// Our contenders in the rows of T5's Table 2, with T5's own numbers beside them;
/// the deeper decoder, which T5 does not have, last.
fn t5_table(r: &Report) -> String {
    let mut t = Table::new(&[
        "T5's row",
        "T5 params / cost",
        "Ours: params / FLOPs",
        "Held-out loss",
        "Steps listed right (%)",
        "T5 GLUE / SQuAD, LM objective",
        "T5 GLUE / SQuAD, denoising",
    ])
    .right_from(1);
    let ours = |c: &ContenderResult| {
        let (params, flops) = ratios_to_lm(r, c);
        [
            format!("{params} / {flops}"),
            show(&c.metrics["heldout_loss"], true),
            show(&c.metrics["listing_steps"], false),
        ]
    };
    for row in &T5 {
        let c = r
            .contenders
            .iter()
            .find(|c| c.contender.t5_row == Some(row.row))
            .expect("a contender per T5 row");
        let [shape, loss, steps] = ours(c);
        t.row([
            format!("{} ({})", row.row, c.contender.name),
            format!("{} / {}", row.params, row.cost),
            shape,
            loss,
            steps,
            format!("{:.2} / {:.2}", row.lm.0, row.lm.1),
            format!("{:.2} / {:.2}", row.denoising.0, row.denoising.1),
        ]);
    }
    for c in r.contenders.iter().filter(|c| c.contender.t5_row.is_none()) {
        let [shape, loss, steps] = ours(c);
        let not = "not in T5".to_string();
        t.row([
            format!("{not} ({})", c.contender.name),
            "(about 2P / 2M)".into(),
            shape,
            loss,
            steps,
            not.clone(),
            not,
        ]);
    }
    t.markdown()
}

/// Every contender on every metric: mean ± standard deviation over seeds.
fn results_table(r: &Report) -> String {
    let mut t = Table::new(&[
        "Model",
        "Held-out loss",
        "Listing: steps right (%)",
        "Listing: exact (%)",
        "Listing: answer loss",
        "Held-out families (%)",
        "Finetuning families (%)",
    ])
    .right_from(1);
    for c in &r.contenders {
        let m = &c.metrics;
        t.row([
            c.contender.name.to_string(),
            show(&m["heldout_loss"], true),
            show(&m["listing_steps"], false),
            show(&m["listing_exact"], false),
            show(&m["listing_loss"], true),
            show(&m["zero_shot"], false),
            show(&m["finetuning_families"], false),
        ]);
    }
    t.row([
        "Chance".to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        format!("{:.1}", r.chance.zero_shot),
        format!("{:.1}", r.chance.finetuning_families),
    ]);
    t.markdown()
}

fn diff(d: &Difference, loss: bool) -> String {
    let p = if loss { 3 } else { 1 };
    let mark = if d.within_noise { "" } else { " *" };
    format!("{:+.p$} [{:+.p$}, {:+.p$}]{mark}", d.mean, d.ci_low, d.ci_high)
}

/// The matched comparisons: `A − B` with 95% intervals; `*` where the interval
/// excludes 0.
fn matchups_table(r: &Report) -> String {
    let mut t = Table::new(&[
        "A − B",
        "Held equal",
        "Held-out loss",
        "Listing: steps right",
        "Listing: answer loss",
        "Held-out families",
        "Finetuning families",
    ])
    .right_from(2);
    for m in &r.matchups {
        let d = &m.differences;
        t.row([
            format!("{} − {}", m.matchup.a, m.matchup.b),
            m.matchup.matched.to_string(),
            diff(&d["heldout_loss"], true),
            diff(&d["listing_steps"], false),
            diff(&d["listing_loss"], true),
            diff(&d["zero_shot"], false),
            diff(&d["finetuning_families"], false),
        ]);
    }
    t.markdown()
}

fn su_table(r: &Report) -> String {
    let mut t = Table::new(&[
        "Encoder",
        "Held-out MLM loss",
        "Effective rank, trained",
        "Effective rank at initialisation",
        "Rank (σ > 10⁻³ σ₁), trained",
        "Forward / backward heads, trained",
    ])
    .right_from(1);
    for e in &r.su.encoders {
        let by = &e.effective_rank_by_direction;
        let dirs = match (by.get("forward"), by.get("backward")) {
            (Some(f), Some(b)) => format!("{:.1} / {:.1}", f.mean, b.mean),
            _ => "".to_string(),
        };
        t.row([
            e.name.to_string(),
            show(&e.heldout_loss, true),
            e.effective_rank.show(),
            e.effective_rank_init.show(),
            e.rank_1e3.show(),
            dirs,
        ]);
    }
    t.markdown()
}

/// A contender's line: its architecture's colour (as in every figure of the
/// book), solid at depth `L`, dashed at `2L` or with shared stacks, dotted at
/// `L/2`; the prefix LM at `L` long-dashed, so that the causal decoder's solid
/// line at `L`, which it nearly covers, shows through its gaps.
fn contender_style(c: &Contender) -> (Option<Architecture>, Dash) {
    let arch = architecture(c.arch);
    let dash = match (c.shared, c.depth) {
        (true, _) | (false, Depth::TwoL) => Dash::Dashed,
        (false, Depth::HalfL) => Dash::Dotted,
        (false, Depth::L) if arch == Architecture::NonCausalDecoder => Dash::Long,
        (false, Depth::L) => Dash::Solid,
    };
    (Some(arch), dash)
}

/// One curve of [`loss_chart`]: label, points, architecture (whose colour it takes;
/// `None`: the next free colour) and line.
type Curve<'a> = (&'a str, &'a [Point], Option<Architecture>, Dash);

/// Held-out loss curves, mean over seeds, against tokens seen or (log axis) FLOPs
/// spent.
fn loss_chart<'a>(
    curves: impl Iterator<Item = Curve<'a>>,
    by_flops: bool,
    y_label: &str,
) -> anyhow::Result<String> {
    let series: Vec<Series> = curves
        .map(|(label, curve, arch, dash)| {
            let s = Series::new(
                label,
                curve
                    .iter()
                    .map(|p| {
                        (
                            if by_flops {
                                p.forward_flops as f64 / 1e9
                            } else {
                                p.tokens_seen as f64 / 1e3
                            },
                            p.heldout_loss,
                        )
                    })
                    .collect(),
            )
            .dash(dash);
            match arch {
                Some(a) => s.architecture(a),
                None => s,
            }
        })
        .collect();
    LineChart {
        title: "",
        x_label: if by_flops {
            "forward FLOPs spent on training (billions, counted)"
        } else {
            "tokens of text seen (thousands)"
        },
        y_label,
        log_x: by_flops,
        log_y: false,
        series: &series,
    }
    .to_svg()
}

fn curves_chart(r: &Report, by_flops: bool) -> anyhow::Result<String> {
    let curves = r.contenders.iter().map(|c| {
        let (arch, dash) = contender_style(&c.contender);
        (c.contender.name, c.curve.as_slice(), arch, dash)
    });
    loss_chart(curves, by_flops, "held-out loss (nats per token), mean over seeds")
}

/// Each matched comparison's held-out loss difference with its interval, in
/// black (a difference is no architecture); zero dashed. The comparisons are
/// numbered 1, 2, ... as the rows of the matchups table: their keys are too wide
/// to stand side by side under the axis.
fn matchup_chart(r: &Report) -> anyhow::Result<String> {
    let categories: Vec<String> =
        (1..=r.matchups.len()).map(|i| i.to_string()).collect();
    let d: Vec<&Difference> =
        r.matchups.iter().map(|m| &m.differences["heldout_loss"]).collect();
    let groups = [Group {
        colour: Some(PALETTE[6]),
        ..Group::new(
            "held-out loss, A − B (nats per token), mean and 95% interval",
            d.iter().map(|d| (d.mean, d.ci_low, d.ci_high)).collect(),
        )
    }];
    let lo = d.iter().map(|d| d.ci_low).fold(0.0, f64::min);
    let hi = d.iter().map(|d| d.ci_high).fold(0.0, f64::max);
    let pad = 0.1 * (hi - lo).max(1e-3);
    // As many decimals as ticks about a tenth of the range apart need.
    let span = hi - lo + 2.0 * pad;
    let y_decimals = (-(span / 10.0).log10()).ceil().max(0.0) as usize;
    let zeros = vec![0.0; categories.len()];
    IntervalChart {
        title: "",
        categories: &categories,
        groups: &groups,
        y_label: "A − B (nats per token)",
        reference: Some((&zeros, "no difference")),
        y_range: (lo - pad, hi + pad),
        y_decimals,
    }
    .to_svg()
}

fn su_chart(r: &Report) -> anyhow::Result<String> {
    // The all-bidirectional encoder is BERT's, in the encoder's colour; the
    // forward-backward one is no architecture of the book's, in the next free
    // colour.
    let curves = r.su.encoders.iter().map(|e| {
        let arch =
            (e.heads == Heads::Bidirectional).then_some(Architecture::Encoder);
        (e.name, e.curve.as_slice(), arch, Dash::Solid)
    });
    loss_chart(curves, false, "held-out MLM loss (nats per masked token)")
}

pub fn outputs(r: &Report) -> anyhow::Result<Outputs> {
    let mut out = Outputs::new(r)?;
    out.timings(&r.timings)?;
    out.file("costs.md", costs_table(r))?;
    out.file("t5_table.md", t5_table(r))?;
    out.file("results.md", results_table(r))?;
    out.file("matchups.md", matchups_table(r))?;
    out.file("su.md", su_table(r))?;
    out.file("loss_vs_tokens.svg", curves_chart(r, false)?)?;
    out.file("loss_vs_flops.svg", curves_chart(r, true)?)?;
    out.file("matchups.svg", matchup_chart(r)?)?;
    out.file("su_loss.svg", su_chart(r)?)?;
    for c in &r.contenders {
        out.headline(format!(
            "{}: held-out loss {}, steps listed right {}%",
            c.contender.name,
            show(&c.metrics["heldout_loss"], true),
            c.metrics["listing_steps"].show()
        ));
    }
    let claims = crate::claims::claims(r);
    out.file("in_short.md", crate::claims::in_short(r, &claims))?;
    out.claims(claims);
    out.open_first("matchups.svg");
    Ok(out)
}
