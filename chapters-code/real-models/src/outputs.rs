//! What a run writes: `results.json`, `timings.json`, `claims.json`, the tables
//! and the figures.

use transformer::chapter::{Outputs, Table};
use transformer::plot::{Architecture, Dash, LineChart, Series};

use crate::claims::claims;
use crate::counts::Count;
use crate::ranks::ModelRanks;
use crate::report::Outcome;
use transformer::Named;

const ENCODER: &str = "encoder (all-MiniLM-L6-v2)";
const DECODER: &str = "decoder (SmolLM2-135M)";

/// Thousands separated by commas: 22,713,216.
fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn counts_table(models: [(&str, &Count); 2]) -> String {
    let mut t =
        Table::new(&["Model", "Part", "Formula", "Predicted", "In the file"])
            .right_from(3);
    for (name, c) in models {
        for p in &c.parts {
            t.row([
                name,
                p.part,
                &p.formula,
                &grouped(p.predicted),
                &grouped(p.in_file),
            ]);
        }
        t.row([name, "**total**", "", &grouped(c.predicted), &grouped(c.in_file)]);
    }
    t.markdown()
}

fn ranks_table(models: [(&str, &ModelRanks); 2], n: usize) -> String {
    let mut t = Table::new(&[
        "Model",
        "Mask",
        "Matrices",
        "Effective rank",
        "Rank at 1e-3",
        "Full rank at 1e-3",
        "Largest output rank",
    ])
    .right_from(2);
    for (name, m) in models {
        t.row([
            name.to_string(),
            m.mask.name().to_string(),
            m.matrices.to_string(),
            format!(
                "{} ({}% of {n})",
                m.effective_rank.show(),
                m.effective_rank_percent
            ),
            m.rank_1e3.show(),
            format!("{}%", m.full_rank_1e3_percent),
            format!("{} (d_h = {})", m.output_rank_max, m.head_dim),
        ]);
    }
    t.markdown()
}

fn layers_table(m: &ModelRanks) -> String {
    let causal = m.log10_min_diag_min.is_some();
    let extra = if causal { "Smallest A_ii" } else { "Largest rank of ln A" };
    let mut t = Table::new(&["Layer", "Effective rank", "Rank at 1e-3", extra])
        .right_from(0);
    for l in &m.per_layer {
        let last = if causal {
            l.log10_min_diag_min.map_or("–".into(), |x| format!("10^{x}"))
        } else {
            l.log_rank_max.map_or("–".into(), |x| x.to_string())
        };
        t.row([
            (l.layer + 1).to_string(),
            l.effective_rank.show(),
            l.rank_1e3.show(),
            last,
        ]);
    }
    t.markdown()
}

/// Mean effective rank per layer, as a share of `n`, against relative depth.
/// In the colour of its architecture `arch`, as in every figure of the book.
fn depth_series(
    m: &ModelRanks,
    n: usize,
    label: &str,
    arch: Architecture,
) -> Series {
    Series::new(
        label,
        m.per_layer
            .iter()
            .map(|l| {
                let depth = (l.layer + 1) as f64 / m.layers as f64;
                (depth, 100.0 * l.effective_rank.mean / n as f64)
            })
            .collect(),
    )
    .architecture(arch)
}

pub fn outputs(o: &Outcome) -> anyhow::Result<Outputs> {
    let r = &o.report;
    let n = r.ranks.tokens;
    let mut out = Outputs::new(r)?;
    out.timings(&o.timings)?;
    out.claims(claims(o));
    out.file(
        "params.md",
        counts_table([(ENCODER, &r.encoder_params), (DECODER, &r.decoder_params)]),
    )?;
    out.file(
        "ranks.md",
        ranks_table([(ENCODER, &r.ranks.encoder), (DECODER, &r.ranks.decoder)], n),
    )?;
    out.file("ranks_encoder_layers.md", layers_table(&r.ranks.encoder))?;
    out.file("ranks_decoder_layers.md", layers_table(&r.ranks.decoder))?;
    let depth = LineChart {
        title: "Effective rank of real attention matrices, layer by layer",
        x_label: "depth (layer / number of layers)",
        y_label: "mean effective rank (% of n)",
        log_x: false,
        log_y: false,
        series: &[
            depth_series(&r.ranks.encoder, n, ENCODER, Architecture::Encoder),
            depth_series(&r.ranks.decoder, n, DECODER, Architecture::CausalDecoder),
        ],
    };
    out.file("ranks_by_depth.svg", depth.to_svg()?)?;

    let ch = &r.chat;
    let times = &o.timings.chat;
    let mut t = Table::new(&[
        "Turn",
        "User",
        "Reply (greedy)",
        "New tokens",
        "Whole conversation",
        "Prefill kept / recomputed (ms)",
        "Whole turn kept / recomputed (ms)",
    ])
    .right([0, 3, 4, 5, 6]);
    for (k, (turn, time)) in ch.turns.iter().zip(&times.turns).enumerate() {
        t.row([
            (k + 1).to_string(),
            turn.user.clone(),
            turn.reply.replace('\n', " ").replace('|', "\\|"),
            turn.new_tokens.to_string(),
            turn.context_tokens.to_string(),
            format!(
                "{:.0} / {:.0}",
                time.kept_prefill_ms, time.recomputed_prefill_ms
            ),
            format!("{:.0} / {:.0}", time.kept_ms, time.recomputed_ms),
        ]);
    }
    out.file("chat.md", t.markdown())?;
    let mut t = Table::new(&["Layer", ENCODER, DECODER]).right_from(0);
    let layers =
        ch.encoder_drift.per_layer.len().max(ch.decoder_drift.per_layer.len());
    for l in 0..layers {
        let cell = |v: &[f64]| match v.get(l) {
            None => "–".to_string(),
            Some(&x) if x < crate::chat::DRIFT_FLOOR => {
                format!("< {:e}", crate::chat::DRIFT_FLOOR)
            }
            Some(x) => format!("{x:e}"),
        };
        t.row([
            (l + 1).to_string(),
            cell(&ch.encoder_drift.per_layer),
            cell(&ch.decoder_drift.per_layer),
        ]);
    }
    out.file("drift.md", t.markdown())?;
    let cumulative =
        |f: &dyn Fn(&crate::chat::TurnTime) -> f64| -> Vec<(f64, f64)> {
            times
                .turns
                .iter()
                .enumerate()
                .map(|(k, t)| ((k + 1) as f64, f(t)))
                .collect()
        };
    let chat_time = LineChart {
        title: "A real chat: cumulative time, cache kept against recomputed",
        x_label: "turn",
        y_label: "cumulative milliseconds",
        log_x: false,
        log_y: false,
        series: &[
            // One causal decoder, in its colour: dashed where it recomputes, as in
            // chapter 6's dialogue figures.
            Series::new(
                "recompute the conversation each turn",
                cumulative(&|t| t.recomputed_cumulative_ms),
            )
            .architecture(Architecture::CausalDecoder)
            .dash(Dash::Dashed),
            Series::new(
                "keep the KV cache across turns",
                cumulative(&|t| t.kept_cumulative_ms),
            )
            .architecture(Architecture::CausalDecoder),
        ],
    };
    out.file("chat_time.svg", chat_time.to_svg()?)?;
    out.headline(format!(
        "parameters: encoder {}, decoder {}",
        grouped(r.encoder_params.in_file),
        grouped(r.decoder_params.in_file)
    ));
    out.headline(format!(
        "effective rank (n = {n}): encoder {}, decoder {}",
        r.ranks.encoder.effective_rank.show(),
        r.ranks.decoder.effective_rank.show()
    ));
    out.headline(format!(
        "chat: recomputing takes {}× the kept cache's time over {} turns",
        times.total_ratio,
        ch.turns.len()
    ));
    out.open_first("ranks_by_depth.svg");
    Ok(out)
}
