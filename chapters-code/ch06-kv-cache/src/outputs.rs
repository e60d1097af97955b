//! Outputs: results.json, timings.json, the figures and the tables.

use anyhow::Result;
use std::collections::BTreeMap;
use transformer::chapter::round_sig;
use transformer::io::thousands;

use transformer::chapter::Outputs;
use transformer::plot::{Architecture, Dash, LineChart, PALETTE, Series};

use crate::*;

/// A dialogue strategy's line: its architecture's colour (as in every figure of
/// the book); the causal decoder that recomputes its history dashed.
fn strategy_style(s: Strategy) -> (Architecture, Dash) {
    match s {
        Strategy::CausalReuse => (Architecture::CausalDecoder, Dash::Solid),
        Strategy::CausalRecompute => (Architecture::CausalDecoder, Dash::Dashed),
        Strategy::PrefixReencode => (Architecture::NonCausalDecoder, Dash::Solid),
        Strategy::EncDecReencode => (Architecture::EncoderDecoder, Dash::Solid),
    }
}

/// The line of a way of holding the history (`ShiftRow::key`) in the
/// invalidation figure: the model's colour; the second way of one model dashed.
fn shift_style(key: &str) -> (Architecture, Dash) {
    match key {
        "causal" => (Architecture::CausalDecoder, Dash::Solid),
        "prefix_frozen" => (Architecture::NonCausalDecoder, Dash::Dashed),
        "prefix_lm" => (Architecture::NonCausalDecoder, Dash::Solid),
        "encoder" => (Architecture::EncoderDecoder, Dash::Solid),
        _ => (Architecture::EncoderDecoder, Dash::Dashed),
    }
}

/// A series drawn in a line style: its architecture's colour, and its dash.
fn styled(
    label: impl Into<String>,
    points: Vec<(f64, f64)>,
    (arch, dash): (Architecture, Dash),
) -> Series {
    Series::new(label, points).architecture(arch).dash(dash)
}

fn invalidation_table(
    rows: &BTreeMap<String, ShiftRow>,
    n_layers: usize,
) -> String {
    let mut t = String::from("| history held by | ");
    t += &(0..n_layers)
        .map(|l| format!("layer {l}"))
        .collect::<Vec<_>>()
        .join(" | ");
    t += " | depends on the new turn's tokens |\n|---|";
    t += &"---:|".repeat(n_layers);
    t += "---|";
    t.push('\n');
    for key in ["causal", "prefix_frozen", "prefix_lm", "encoder", "cross"] {
        let row = &rows[key];
        t += &format!("| {} | ", row.label);
        let cells: Vec<String> =
            row.layers.iter().map(|l| format!("{:.4}", l.relative)).collect();
        t += &cells.join(" | ");
        t += if row.depends_on_new_turn {
            " | yes |\n"
        } else {
            " | no (bit for bit) |\n"
        };
    }
    t
}

fn decode_table(points: &[DecodePoint], times: &[DecodeTiming]) -> String {
    let mut t = String::from(
        "| context | MFLOP without cache | MFLOP with cache | predicted speed-up (FLOPs) | ms without cache | ms with cache | measured speed-up |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (p, m) in points.iter().zip(times) {
        t += &format!(
            "| {} | {} | {} | {}× | {} | {} | {}× |\n",
            p.context,
            round_sig(p.flops_full as f64 / 1e6, 4),
            round_sig(p.flops_cached as f64 / 1e6, 4),
            p.predicted_speedup,
            m.ms_full,
            m.ms_cached,
            m.measured_speedup
        );
    }
    t
}

fn dialogue_table(
    rows: &BTreeMap<String, DialogueRow>,
    times: &BTreeMap<String, DialogueTiming>,
) -> String {
    let mut t = String::from(
        "| strategy | total GFLOP | FLOPs vs cache reuse | last turn / first turn | growth when turns double | seconds | time vs cache reuse |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for &s in Strategy::VARIANTS {
        let (r, m) = (&rows[s.name()], &times[s.name()]);
        t += &format!(
            "| {} | {} | {}× | {}× | {}× | {} | {}× |\n",
            r.label,
            r.total_gflop,
            r.flops_ratio_to_reuse,
            r.last_over_first_turn,
            r.growth_when_doubling,
            m.total_secs,
            m.time_ratio_to_reuse
        );
    }
    t
}

fn kv_heads_table(
    rows: &[KvHeadsRow],
    times: &[KvHeadsTiming],
    context: usize,
) -> String {
    let mut t = format!(
        "| attention | K/V heads | parameters | cache bytes per token (formula) | cache at {context} tokens (formula) | \
         measured (`KvCache::bytes`) | cache vs MHA | FLOPs per step | ms per step | time vs MHA |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (r, m) in rows.iter().zip(times) {
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {}× | {} | {} | {}× |\n",
            r.kind,
            r.n_kv_heads,
            thousands(r.params as u64),
            thousands(r.bytes_per_token),
            thousands(r.cache_bytes_formula),
            thousands(r.cache_bytes_measured),
            r.cache_ratio_to_mha,
            thousands(r.flops_per_step),
            m.ms_per_step,
            m.time_ratio_to_mha
        );
    }
    t
}

/// The context each published model was trained with (facts.md §10), and whether
/// the table's longer contexts are hypothetical for it.
fn trained_context(key: &str) -> (&'static str, bool) {
    match key {
        "llama3_8b" | "llama3_70b" => ("8,192 (Llama 3.1: 131,072)", false),
        "llama3_8b_mha" => ("none: a counterfactual variant", false),
        "gpt3_175b" | "palm_540b" => ("2,048", true),
        _ => ("not recorded", false),
    }
}

fn memory_md(rows: &BTreeMap<String, MemoryRow>) -> String {
    let mut t = String::from(
        "| model | attention | layers | K/V heads | head dim | trained context | per token | 8,192 tokens | 131,072 tokens |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &PUBLISHED {
        let r = &rows[p.key];
        let (context, hypothetical) = trained_context(p.key);
        let mark = if hypothetical { " †" } else { "" };
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} KiB | {} GiB ({} GB){mark} | {} GiB{mark} |\n",
            r.name,
            r.attention,
            p.layers,
            p.kv_heads,
            p.head_dim,
            context,
            r.kib_per_token,
            r.gib_at_8k,
            r.gb_at_8k,
            r.gib_at_128k
        );
    }
    t += "\n† A hypothetical context, longer than the one the model was trained with: the cache its \
          architecture would need at that length.\n";
    t
}

/// What a chart is drawn against: the x axis's label, and whether both axes are
/// logarithmic or both linear.
struct Against {
    x_label: &'static str,
    log: bool,
}

const CONTEXT: Against = Against { x_label: "context length (tokens)", log: true };
const TURN: Against = Against { x_label: "turn", log: false };
const LAYER: Against = Against { x_label: "layer", log: false };

fn chart(
    title: &str,
    against: Against,
    y_label: &str,
    series: &[Series],
) -> Result<String> {
    let Against { x_label, log } = against;
    LineChart { title, x_label, y_label, log_x: log, log_y: log, series }.to_svg()
}

/// results.json (the report), timings.json, the figures and the tables.
pub fn outputs(o: &Outcome) -> Result<Outputs> {
    let (rep, tim) = (&o.report, &o.timings);
    let mut out = Outputs::new(rep)?;
    out.timings(tim)?;
    out.claims(crate::claims::claims(rep, tim));

    let ctx = |f: &dyn Fn(usize) -> f64| -> Vec<(f64, f64)> {
        (0..rep.decode.len())
            .map(|i| (rep.decode[i].context as f64, f(i)))
            .collect()
    };
    let svg = chart(
        "One decoding step: time against context length",
        CONTEXT,
        "milliseconds per generated token",
        &[
            Series::new(
                "without cache (run everything again)",
                ctx(&|i| tim.decode[i].ms_full),
            )
            .architecture(Architecture::CausalDecoder)
            .dash(Dash::Dashed),
            Series::new(
                "with KV cache (newest token only)",
                ctx(&|i| tim.decode[i].ms_cached),
            )
            .architecture(Architecture::CausalDecoder),
        ],
    )?;
    out.file("decode_time.svg", svg)?;
    let svg = chart(
        "Speed-up from the cache: FLOP count against the clock",
        CONTEXT,
        "speed-up (×)",
        &[
            Series::new(
                "predicted by counted FLOPs",
                ctx(&|i| rep.decode[i].predicted_speedup),
            )
            .colour(PALETTE[6]),
            Series::new("measured", ctx(&|i| tim.decode[i].measured_speedup))
                .colour(PALETTE[4]),
        ],
    )?;
    out.file("speedup.svg", svg)?;

    let per_turn = |f: &dyn Fn(Strategy) -> Vec<f64>| -> Vec<Series> {
        Strategy::VARIANTS
            .iter()
            .map(|&s| {
                styled(
                    s.label(),
                    f(s).into_iter()
                        .enumerate()
                        .map(|(i, y)| ((i + 1) as f64, y))
                        .collect(),
                    strategy_style(s),
                )
            })
            .collect()
    };
    let mut flops = per_turn(&|s| {
        rep.dialogue[s.name()]
            .cumulative_flops
            .iter()
            .map(|&f| f as f64 / 1e9)
            .collect()
    });
    // Where the recomputing causal decoder costs exactly what the prefix LM costs,
    // the prefix LM's line, drawn after it, would hide it: a halo shows it.
    let d = &rep.dialogue;
    if d["causal_recompute"].cumulative_flops == d["prefix_lm"].cumulative_flops {
        for s in &mut flops {
            s.halo |= s.label == Strategy::CausalRecompute.label();
        }
    }
    let svg = chart(
        "Cumulative compute of a dialogue",
        TURN,
        "cumulative GFLOP (counted)",
        &flops,
    )?;
    out.file("dialogue_flops.svg", svg)?;
    let svg = chart(
        "Cumulative wall time of a dialogue",
        TURN,
        "cumulative seconds",
        &per_turn(&|s| tim.dialogue[s.name()].cumulative_secs.clone()),
    )?;
    out.file("dialogue_time.svg", svg)?;

    let mut shift_series: Vec<Series> =
        ["causal", "prefix_frozen", "prefix_lm", "encoder", "cross"]
            .iter()
            .map(|k| {
                let row = &rep.invalidation[*k];
                styled(
                    row.label.clone(),
                    row.layers
                        .iter()
                        .map(|l| (l.layer as f64, l.relative))
                        .collect(),
                    shift_style(k),
                )
            })
            .collect();
    // Where the causal decoder and the frozen prefix move the history alike (both
    // not at all, bit for bit), the frozen prefix's dashes, drawn after, would hide
    // the causal decoder: a halo shows it.
    let same = |a: &ShiftRow, b: &ShiftRow| {
        a.layers.iter().map(|l| l.relative).eq(b.layers.iter().map(|l| l.relative))
    };
    let inv = &rep.invalidation;
    if same(&inv["causal"], &inv["prefix_frozen"]) {
        for s in &mut shift_series {
            s.halo |= s.label == inv["causal"].label;
        }
    }
    let svg = chart(
        "How far a new turn moves the cached keys and values of the history",
        LAYER,
        "relative change of old K and V",
        &shift_series,
    )?;
    out.file("invalidation.svg", svg)?;

    out.file(
        "kv_cache_growth.svg",
        crate::diagrams::kv_cache_growth(&crate::diagrams::Growth::from_report(
            rep,
        )),
    )?;
    out.file(
        "two_turns.svg",
        crate::diagrams::two_turns(
            &rep.invalidation,
            rep.settings.history_tokens,
            rep.settings.new_tokens,
        ),
    )?;

    out.file(
        "invalidation.md",
        invalidation_table(&rep.invalidation, rep.settings.model.n_layers),
    )?;
    out.file("decode.md", decode_table(&rep.decode, &tim.decode))?;
    out.file("dialogue.md", dialogue_table(&rep.dialogue, &tim.dialogue))?;
    out.file(
        "kv_heads.md",
        kv_heads_table(&rep.kv_heads, &tim.kv_heads, rep.settings.kv_context),
    )?;
    out.file("memory.md", memory_md(&rep.memory))?;
    let d = &rep.dialogue;
    out.headline(format!(
        "dialogue FLOPs against keeping the cache: recompute {}×, prefix LM {}×, encoder-decoder {}×",
        d["causal_recompute"].flops_ratio_to_reuse,
        d["prefix_lm"].flops_ratio_to_reuse,
        d["encoder_decoder"].flops_ratio_to_reuse
    ));
    out.headline(format!(
        "cached and uncached generation give the same tokens in all {} cases: {}",
        rep.equality.cases, rep.equality.all_tokens_identical
    ));
    out.open_first("dialogue_flops.svg");
    Ok(out)
}
