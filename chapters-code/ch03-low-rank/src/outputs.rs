//! Outputs: results.json, timings.json, the figures and the tables.

use std::collections::BTreeMap;

use transformer::chapter::round_dp;
use transformer::io::thousands;
use transformer::plot::{Architecture, Dash, LineChart, Series};

use crate::collapse::{Variant, sci};
use crate::trained::{MatrixSummary, Model, TrainedReport};
use transformer::chapter::Outputs;

use crate::*;
use Scale::{Linear, Log};

/// `results.json` (the report), `timings.json`, the figures and the tables.
pub fn outputs(o: &Outcome) -> anyhow::Result<Outputs> {
    // Through a JSON value, whose keys are sorted, as the page's `results.json`
    // always was.
    let mut out = Outputs::new(&serde_json::to_value(&o.report)?)?;
    let t = &o.timing;
    out.timings(&serde_json::json!({
        "sweep_seconds": round_dp(t.sweep_seconds, 1),
        "sweep_svds": t.sweep_svds,
        "collapse_seconds": round_dp(t.collapse_seconds, 1),
        "trained_seconds": round_dp(t.trained_seconds, 0),
        "total_seconds": round_dp(t.total_seconds, 0),
        "threads": t.threads,
    }))?;
    for (name, text) in o.figures.iter().chain(&o.tables) {
        out.file(name, text.as_str())?;
    }
    let r = &o.report;
    let key = point_key(r.headline_n, r.headline_d, 1.0);
    if let Some(p) = r.points.get(&key) {
        for (mask, s) in p {
            out.headline(format!(
                "n = {}, d = {}, β = 1, {mask}: effective rank {} ± {}, rank@1e-3 {} ± {}",
                r.headline_n,
                r.headline_d,
                s.effective_rank.mean,
                s.effective_rank.std,
                s.rank_1e3.mean,
                s.rank_1e3.std
            ));
        }
    }
    out.headline(format!(
        "SVD sweep {:.1} s ({} SVDs on {} threads), collapse {:.1} s, training {:.0} s",
        t.sweep_seconds, t.sweep_svds, t.threads, t.collapse_seconds, t.trained_seconds
    ));
    out.claims(crate::claims::claims(r));
    out.open_first("effective_rank_vs_beta.svg");
    Ok(out)
}

fn label(mask: Mask) -> &'static str {
    mask.name()
}

/// The model whose attention a mask is, whose colour its series take in every
/// figure: the encoder's (bidirectional) or the causal decoder's.
fn architecture(mask: Mask) -> Architecture {
    match mask {
        Mask::Bidirectional => Architecture::Encoder,
        Mask::Causal => Architecture::CausalDecoder,
    }
}

/// The line of the `k`-th value of a second variable (β, d, the block), so that
/// series of one mask, in one colour, stay apart.
fn dash(k: usize) -> Dash {
    [Dash::Solid, Dash::Dashed, Dash::Dotted][k % 3]
}

/// A series of `mask`'s matrices: in its architecture's colour, with the line of
/// the `k`-th value of the second variable.
fn mask_series(
    label: String,
    points: Vec<(f64, f64)>,
    mask: Mask,
    k: usize,
) -> Series {
    Series::new(label, points).architecture(architecture(mask)).dash(dash(k))
}

/// How an axis of a chart is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    Log,
}

/// The figure `file`: a line chart of `series`, each axis with its label and
/// scale.
fn chart(
    file: &str,
    title: &str,
    (x_label, x): (&str, Scale),
    (y_label, y): (&str, Scale),
    series: &[Series],
) -> anyhow::Result<(String, String)> {
    let chart = LineChart {
        title,
        x_label,
        y_label,
        log_x: x == Log,
        log_y: y == Log,
        series,
    };
    Ok((file.to_string(), chart.to_svg()?))
}

pub(crate) fn figures(
    cfg: &RunConfig,
    r: &Report,
) -> anyhow::Result<Vec<(String, String)>> {
    let (n, d) = (r.headline_n, r.headline_d);
    let d_small = *cfg.ds.iter().min().expect("d");
    let mut out = Vec::new();

    // Singular-value spectra at the headline size, seed 0.
    let [q, k, _] = draw_qkv(n, d, 0);
    let mut spectra = Vec::new();
    let betas = cfg.betas.iter().filter(|&&b| b == 0.1 || b == 1.0 || b == 10.0);
    for (kb, &beta) in betas.enumerate() {
        let s = logits(q.as_ref(), k.as_ref(), beta);
        for &mask in Mask::VARIANTS {
            let sv = singular_values(crate::attention(s.as_ref(), mask).as_ref())?;
            let top = sv[0];
            spectra.push(mask_series(
                format!("{} β={beta}", label(mask)),
                sv.iter()
                    .enumerate()
                    .map(|(i, s)| ((i + 1) as f64, s / top))
                    .collect(),
                mask,
                kb,
            ));
        }
    }
    out.push(chart(
        "spectra.svg",
        &format!("Singular values of A (n = {n}, d = {d}, seed 0)"),
        ("index i", Linear),
        ("σᵢ / σ₁", Log),
        &spectra,
    )?);

    // Effective rank and rank at 1e-3 against β.
    for (file, what, y_label) in [
        (
            "effective_rank_vs_beta.svg",
            "effective rank",
            "effective rank (mean over seeds)",
        ),
        (
            "rank_vs_beta.svg",
            "numerical rank at relative tolerance 10⁻³",
            "numerical rank at relative tolerance 10⁻³ (mean)",
        ),
    ] {
        let mut series = Vec::new();
        for (kd, dd) in [d_small, d].into_iter().enumerate() {
            for &mask in Mask::VARIANTS {
                let points = cfg
                    .betas
                    .iter()
                    .map(|&b| {
                        let s = &r.points[&point_key(n, dd, b)][mask.name()];
                        (
                            b,
                            if file.starts_with("effective") {
                                s.effective_rank.mean
                            } else {
                                s.rank_1e3.mean
                            },
                        )
                    })
                    .collect();
                series.push(mask_series(
                    format!("{} d={dd}", label(mask)),
                    points,
                    mask,
                    kd,
                ));
            }
        }
        out.push(chart(
            file,
            &format!("A's {what} against the temperature β (n = {n})"),
            ("β", Log),
            (y_label, Linear),
            &series,
        )?);
    }

    // Effective rank / n against n / d, averaged over (n, d) pairs with the same
    // ratio.
    let mut series = Vec::new();
    let betas = cfg.betas.iter().filter(|&&b| b == 0.1 || b == 1.0);
    for (kb, &beta) in betas.enumerate() {
        for &mask in Mask::VARIANTS {
            let mut by_ratio: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for &nn in &cfg.ns {
                for &dd in &cfg.ds {
                    let s = &r.points[&point_key(nn, dd, beta)][mask.name()];
                    by_ratio
                        .entry(nn / dd)
                        .or_default()
                        .push(s.effective_rank.mean / nn as f64);
                }
            }
            let points = by_ratio
                .iter()
                .map(|(&x, ys)| {
                    (x as f64, ys.iter().sum::<f64>() / ys.len() as f64)
                })
                .collect();
            series.push(mask_series(
                format!("{} β={beta}", label(mask)),
                points,
                mask,
                kb,
            ));
        }
    }
    out.push(chart(
        "effective_rank_vs_ratio.svg",
        "Effective rank / n against n / d",
        ("n / d", Log),
        ("effective rank / n", Linear),
        &series,
    )?);

    // Causal log-determinant against β, per n: every line a causal matrix, in the
    // causal decoder's colour, told apart by its line, solid for the smallest n.
    let mut ns = cfg.ns.clone();
    ns.sort_unstable();
    let series: Vec<Series> = ns
        .iter()
        .enumerate()
        .map(|(kn, &nn)| {
            Series::new(
                format!("n={nn}"),
                cfg.betas
                    .iter()
                    .map(|&b| {
                        let s = &r.points[&point_key(nn, d, b)]["causal"];
                        (b, s.log10_det_exact.expect("causal").mean)
                    })
                    .collect(),
            )
            .architecture(Architecture::CausalDecoder)
            .dash([Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::Long][kn % 4])
        })
        .collect();
    out.push(chart(
        "causal_log_det.svg",
        &format!("Causal attention: exact log₁₀ det A (d = {d})"),
        ("β", Log),
        ("log₁₀ det A", Linear),
        &series,
    )?);

    // Rank collapse with depth.
    let mut series = Vec::new();
    for (kv, &variant) in Variant::VARIANTS.iter().enumerate() {
        for &mask in Mask::VARIANTS {
            let s = &r.collapse.series[variant.name()][mask.name()];
            series.push(mask_series(
                format!("{}, {}", variant.label(), mask.name()),
                s.log10_mean
                    .iter()
                    .enumerate()
                    .map(|(l, &y)| (l as f64, 10f64.powf(y)))
                    .collect(),
                mask,
                kv,
            ));
        }
    }
    out.push(chart(
        "collapse.svg",
        &format!(
            "Distance to rank 1 with depth (n = {}, d = {})",
            r.collapse.n, r.collapse.d
        ),
        ("layer", Linear),
        ("‖X − 1μᵀ‖ / ‖X‖", Log),
        &series,
    )?);

    // Trained models: effective rank per head, before and after training, for the k
    // × k block (causal decoder against prefix LM) and for the whole n × n matrix.
    let t = &r.trained;
    for (file, block, title) in [
        (
            "trained_block_effective_rank.svg",
            true,
            format!(
                "Trained models: effective rank of the first {k} × {k} block of each head",
                k = t.prefix
            ),
        ),
        (
            "trained_effective_rank.svg",
            false,
            format!(
                "Trained models: effective rank of each head's whole {n} × {n} matrix",
                n = t.seq_len
            ),
        ),
    ] {
        let mut series = Vec::new();
        for &model in Model::VARIANTS {
            let Some(m) = t.models.get(model.name()) else { continue };
            let (name, arch) = (model.name(), model_architecture(model));
            // Trained solid, at initialisation dashed.
            for (when, heads, dash) in [
                ("init", &m.init, Dash::Dashed),
                ("trained", &m.trained, Dash::Solid),
            ] {
                let points: Vec<(f64, f64)> = heads
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| {
                        let x = if block { h.block.as_ref()? } else { &h.full };
                        Some(((i + 1) as f64, x.effective_rank))
                    })
                    .collect();
                if !points.is_empty() {
                    series.push(
                        Series::new(format!("{name}, {when}"), points)
                            .architecture(arch)
                            .dash(dash),
                    );
                }
            }
        }
        out.push(chart(
            file,
            &title,
            ("head (layer 1 first)", Linear),
            ("effective rank (held-out mean)", Linear),
            &series,
        )?);
    }
    Ok(out)
}

fn markdown(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut s =
        format!("| {} |\n|{}\n", headers.join(" | "), "---|".repeat(headers.len()));
    for row in rows {
        s.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    s
}

fn h(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn tables(cfg: &RunConfig, r: &Report) -> Vec<(String, String)> {
    let (n, d) = (r.headline_n, r.headline_d);
    let mut out = Vec::new();

    // The headline: Su's setting, every β, both masks.
    let mut rows = Vec::new();
    for &b in &cfg.betas {
        for &mask in Mask::VARIANTS {
            let s = &r.points[&point_key(n, d, b)][mask.name()];
            let det = match &s.log10_det_exact {
                Some(x) => format!("{} (exact)", x.show(0)),
                None => format!("{} (SVD)", s.log10_abs_det_svd.show(0)),
            };
            rows.push(vec![
                format!("{b}"),
                mask.name().to_string(),
                s.rank_eps.show(1),
                s.rank_1e3.show(1),
                s.rank_1e6.show(1),
                s.effective_rank.show(1),
                s.stable_rank.show(2),
                s.log10_cond.show(1),
                det,
                s.log10_min_diag.map_or("–".to_string(), |x| x.show(1)),
            ]);
        }
    }
    let headers = h(&[
        "β",
        "mask",
        "rank (NumPy tol.)",
        "rank @1e-3",
        "rank @1e-6",
        "effective rank",
        "stable rank",
        "log₁₀ cond (SVD)",
        "log₁₀ det",
        "log₁₀ min Aᵢᵢ",
    ]);
    out.push(("headline.md".to_string(), markdown(&headers, &rows)));

    // Grids over (n, d) × β: effective rank and rank at 1e-3, "bidirectional /
    // causal".
    for (file, pick) in [
        (
            "grid_effective_rank.md",
            (|s: &Summary| s.effective_rank.mean) as fn(&Summary) -> f64,
        ),
        ("grid_rank_1e3.md", |s: &Summary| s.rank_1e3.mean),
    ] {
        let mut headers = h(&["n", "d"]);
        headers.extend(cfg.betas.iter().map(|b| format!("β = {b}")));
        let mut rows = Vec::new();
        for &nn in &cfg.ns {
            for &dd in &cfg.ds {
                let mut row = vec![nn.to_string(), dd.to_string()];
                for &b in &cfg.betas {
                    let p = &r.points[&point_key(nn, dd, b)];
                    row.push(format!(
                        "{:.0} / {:.0}",
                        pick(&p["bidirectional"]),
                        pick(&p["causal"])
                    ));
                }
                rows.push(row);
            }
        }
        out.push((file.to_string(), markdown(&headers, &rows)));
    }

    // Hadamard powers.
    let mut headers = h(&["d"]);
    headers.extend((1..=cfg.hadamard_k).map(|k| format!("k = {k}")));
    let rows: Vec<Vec<String>> = cfg
        .hadamard_ds
        .iter()
        .map(|&dd| {
            let cells = &r.hadamard.cells[&format!("d{dd}")];
            let mut row = vec![dd.to_string()];
            row.extend((1..=cfg.hadamard_k).map(|k| {
                let c = &cells[&format!("k{k}")];
                format!("{} / {}", c.rank, c.bound)
            }));
            row
        })
        .collect();
    out.push(("hadamard.md".to_string(), markdown(&headers, &rows)));

    // Causal determinant and conditioning, per n and β at the largest d.
    let mut rows = Vec::new();
    for &nn in &cfg.ns {
        for &b in &cfg.betas {
            let s = &r.points[&point_key(nn, d, b)]["causal"];
            let (det, min, lower) = (
                s.log10_det_exact.expect("causal"),
                s.log10_min_diag.expect("causal"),
                s.log10_cond_lower_bound.expect("causal"),
            );
            rows.push(vec![
                nn.to_string(),
                format!("{b}"),
                det.show(0),
                min.show(1),
                lower.show(1),
                s.log10_cond.show(1),
                s.rank_eps.show(1),
            ]);
        }
    }
    let headers = h(&[
        "n",
        "β",
        "log₁₀ det A (exact)",
        "log₁₀ min Aᵢᵢ",
        "log₁₀ cond, lower bound",
        "log₁₀ cond (SVD)",
        "rank (NumPy tol.)",
    ]);
    out.push(("causal.md".to_string(), markdown(&headers, &rows)));

    // Per-head output rank at the largest n.
    let mut headers = h(&["d", "mask"]);
    headers.extend(cfg.betas.iter().map(|b| format!("β = {b}")));
    let mut rows = Vec::new();
    for &dd in &cfg.ds {
        for &mask in Mask::VARIANTS {
            let mut row = vec![dd.to_string(), mask.name().to_string()];
            row.extend(cfg.betas.iter().map(|&b| {
                format!(
                    "{:.1}",
                    r.points[&point_key(n, dd, b)][mask.name()].output_rank.mean
                )
            }));
            rows.push(row);
        }
    }
    out.push(("output_rank.md".to_string(), markdown(&headers, &rows)));

    // Rank collapse, per layer.
    let mut headers = h(&["layer"]);
    for &variant in Variant::VARIANTS {
        for &mask in Mask::VARIANTS {
            headers.push(format!("{}, {}", variant.label(), mask.name()));
        }
    }
    let rows: Vec<Vec<String>> = (0..=r.collapse.layers)
        .map(|l| {
            let mut row = vec![l.to_string()];
            for &variant in Variant::VARIANTS {
                for &mask in Mask::VARIANTS {
                    row.push(sci(r.collapse.series[variant.name()][mask.name()]
                        .log10_mean[l]));
                }
            }
            row
        })
        .collect();
    out.push(("collapse.md".to_string(), markdown(&headers, &rows)));

    // Trained models: what they learned, then their heads.
    out.extend(trained_tables(&r.trained));
    out
}

fn arrow(a: f64, b: f64, digits: usize) -> String {
    format!("{a:.digits$} → {b:.digits$}")
}

fn arrow_opt(a: Option<f64>, b: Option<f64>, digits: usize) -> String {
    match (a, b) {
        (Some(a), Some(b)) => arrow(a, b, digits),
        _ => "–".to_string(),
    }
}

/// The trained models in the page's order: causal decoder, prefix LM, encoder.
/// The architecture each trained model is.
fn model_architecture(model: Model) -> Architecture {
    match model {
        Model::Causal => Architecture::CausalDecoder,
        Model::Prefix => Architecture::NonCausalDecoder,
        Model::Masked => Architecture::Encoder,
    }
}

fn ordered(
    t: &TrainedReport,
) -> impl Iterator<Item = (&'static str, &crate::trained::ModelReport)> {
    Model::VARIANTS
        .iter()
        .filter_map(|m| t.models.get(m.name()).map(|r| (m.name(), r)))
}

/// A measure of a trained head's matrix: its column, its value, its digits.
type HeadMeasure = (&'static str, fn(&MatrixSummary) -> f64, usize);

/// The measures both tables of trained heads show.
const HEAD_MEASURES: [HeadMeasure; 4] = [
    ("effective rank", |m| m.effective_rank, 1),
    ("rank @1e-3", |m| m.rank_1e3, 1),
    ("stable rank", |m| m.stable_rank, 2),
    ("log₁₀ cond", |m| m.log10_cond, 1),
];

fn trained_tables(t: &TrainedReport) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let headers = h(&[
        "model",
        "steps",
        "tokens read",
        "tokens supervised",
        "held-out loss, own objective",
        &format!("held-out loss after a {}-token prefix", t.prefix),
    ]);
    let rows: Vec<Vec<String>> = ordered(t)
        .map(|(_, m)| {
            vec![
                m.label.to_string(),
                m.steps.to_string(),
                thousands(m.tokens_seen as u64),
                thousands(m.tokens_supervised as u64),
                arrow(m.heldout_loss_init, m.heldout_loss_trained, 2),
                arrow_opt(m.suffix_loss_init, m.suffix_loss_trained, 2),
            ]
        })
        .collect();
    out.push(("trained_models.md".to_string(), markdown(&headers, &rows)));

    // The k × k block: causal decoder against prefix LM, head by head.
    let (Some(c), Some(p)) = (t.models.get("causal"), t.models.get("prefix"))
    else {
        return out;
    };
    let mut headers = h(&["layer", "head"]);
    for (what, _, _) in HEAD_MEASURES {
        headers.extend([format!("{what}, causal"), format!("{what}, prefix")]);
    }
    headers.push("rank of ln A, prefix".to_string());
    let mut rows = Vec::new();
    for i in 0..c.init.len() {
        let blk = |heads: &[crate::trained::HeadSummary]| {
            heads[i].block.clone().expect("a decoder has a block")
        };
        let (ci, ct, pi, pt) =
            (blk(&c.init), blk(&c.trained), blk(&p.init), blk(&p.trained));
        let mut row = vec![
            (c.init[i].layer + 1).to_string(),
            (c.init[i].head + 1).to_string(),
        ];
        for (_, f, digits) in HEAD_MEASURES {
            row.push(arrow(f(&ci), f(&ct), digits));
            row.push(arrow(f(&pi), f(&pt), digits));
        }
        row.push(arrow_opt(pi.log_rank, pt.log_rank, 1));
        rows.push(row);
    }
    out.push(("trained_block.md".to_string(), markdown(&headers, &rows)));

    // The whole n × n matrix, every model.
    let mut headers = h(&["model", "layer", "head"]);
    headers.extend(HEAD_MEASURES.iter().map(|(what, _, _)| what.to_string()));
    headers.extend(h(&["log₁₀ min Aᵢᵢ (causal)", "rank of ln A (encoder)"]));
    let mut rows = Vec::new();
    for (name, m) in ordered(t) {
        for (a, b) in m.init.iter().zip(&m.trained) {
            let (a, bf) = (&a.full, &b.full);
            let mut row = vec![
                name.to_string(),
                (b.layer + 1).to_string(),
                (b.head + 1).to_string(),
            ];
            for (_, f, digits) in HEAD_MEASURES {
                row.push(arrow(f(a), f(bf), digits));
            }
            row.push(arrow_opt(a.log10_min_diag, bf.log10_min_diag, 1));
            row.push(arrow_opt(a.log_rank, bf.log_rank, 1));
            rows.push(row);
        }
    }
    out.push(("trained_full.md".to_string(), markdown(&headers, &rows)));
    out
}
