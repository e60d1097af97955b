//! The report: every experiment of the chapter, run in the page's order.

use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use transformer::chapter::{round_dp, round_sig};
use transformer::rng;
use transformer::{DecoderOnly, EncoderDecoder, ParamStore};

use crate::*;

#[derive(Debug, Clone, Serialize)]
pub struct EqualitySummary {
    pub cases: usize,
    pub all_tokens_identical: bool,
    pub all_within_1e4: bool,
    /// Every case, without its float difference.
    pub cases_detail: Vec<EqualityCase>,
}

/// One strategy's cumulative counts over the dialogue.
#[derive(Debug, Clone, Serialize)]
pub struct DialogueRow {
    pub label: String,
    /// Cumulative FLOPs after each turn (counted).
    pub cumulative_flops: Vec<u64>,
    /// The counted FLOPs equal the cost model, turn by turn.
    pub matches_formula: bool,
    pub total_gflop: f64,
    /// Total FLOPs over those of the causal decoder keeping its cache.
    pub flops_ratio_to_reuse: f64,
    /// FLOPs of the last turn over those of the first.
    pub last_over_first_turn: f64,
    /// Cumulative FLOPs after all turns over those after half of them: 2 for linear
    /// growth, about 4 for quadratic growth.
    pub growth_when_doubling: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DialogueTiming {
    pub label: String,
    pub cumulative_secs: Vec<f64>,
    pub total_secs: f64,
    pub time_ratio_to_reuse: f64,
}

/// Everything the chapter reports that does not depend on the clock: counts, sizes
/// and ratios. The snapshot test records exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub params_decoder: usize,
    pub params_encoder_decoder: usize,
    pub equality: EqualitySummary,
    pub invalidation: BTreeMap<String, ShiftRow>,
    pub decode: Vec<DecodePoint>,
    /// The step at the longest context, for the prose.
    pub decode_longest: DecodePoint,
    pub dialogue: BTreeMap<String, DialogueRow>,
    /// The causal decoder generates the same replies whether it keeps its cache or
    /// not.
    pub reuse_replies_equal_recompute: bool,
    pub kv_heads: Vec<KvHeadsRow>,
    pub memory: BTreeMap<String, MemoryRow>,
}

/// Wall-clock measurements and float-rounding residuals, which differ between
/// machines: for the book only, never for snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub decode: Vec<DecodeTiming>,
    /// The steps at the shortest and the longest context, for the prose.
    pub decode_shortest: DecodeTiming,
    pub decode_longest: DecodeTiming,
    pub dialogue: BTreeMap<String, DialogueTiming>,
    pub kv_heads: Vec<KvHeadsTiming>,
    /// The largest logit difference between cached and uncached generation.
    pub max_logit_diff: f64,
    /// The largest relative change of a history's K/V that does not depend on the
    /// new turn: float rounding from summing in a different order, which varies
    /// between machines.
    pub rounding_residual: f64,
    pub total_secs: f64,
}

pub struct Outcome {
    pub report: Report,
    pub timings: Timings,
}

/// Round to 4 decimals: float-rounding residuals (about 1e-7) become 0, real
/// changes stay.
fn round_shift(layers: &mut [LayerShift]) {
    for l in layers {
        l.max_abs = round_dp(l.max_abs, 4);
        l.relative = round_dp(l.relative, 4);
    }
}

/// Run every experiment of the chapter.
pub fn compute(s: &Settings) -> Result<Outcome> {
    s.validate()?;
    let started = Instant::now();
    let cfg = &s.model;
    let store = ParamStore::new(s.seed);
    let dec = DecoderOnly::new(cfg, store.vb().pp("dec"))?;
    let ed_store = ParamStore::new(s.seed);
    let ed = EncoderDecoder::new(cfg, ed_store.vb().pp("ed"))?;

    // 1. Cached generation equals full recomputation.
    let cases = (0..s.equality_cases as u64)
        .map(equality_case)
        .collect::<Result<Vec<_>>>()?;
    let max_diff = cases.iter().map(|c| c.max_logit_diff).fold(0.0, f64::max);
    let equality = EqualitySummary {
        cases: cases.len(),
        all_tokens_identical: cases
            .iter()
            .all(|c| c.same_tokens.iter().all(|&b| b)),
        all_within_1e4: max_diff < 1e-4,
        cases_detail: cases,
    };

    // 2. Invalidation.
    let mut r = rng::stream(s.seed, "turns");
    let old = random_tokens(&mut r, s.history_tokens, cfg.vocab_size);
    let new = random_tokens(&mut r, s.new_tokens, cfg.vocab_size);
    let other = random_tokens(&mut r, s.new_tokens, cfg.vocab_size);
    let shifts = invalidation(&dec, &ed, &old, &new, &other)?;
    let rounding_residual = shifts
        .iter()
        .filter(|row| !row.depends_on_new_turn)
        .flat_map(|row| row.layers.iter().map(|l| l.relative))
        .fold(0.0, f64::max);
    let invalidation = shifts
        .into_iter()
        .map(|mut row| {
            round_shift(&mut row.layers);
            (row.key.clone(), row)
        })
        .collect();

    // 3. One decoding step at growing contexts.
    let mut decode = Vec::new();
    let mut decode_t = Vec::new();
    for &n in &s.contexts {
        let (mut p, mut t) = decode_point(&dec, n, s.repeats, s.seed)?;
        p.predicted_speedup = round_sig(p.predicted_speedup, 6);
        t.ms_full = round_sig(t.ms_full, 3);
        t.ms_cached = round_sig(t.ms_cached, 3);
        t.measured_speedup = round_sig(t.measured_speedup, 3);
        decode.push(p);
        decode_t.push(t);
    }

    // 4. The dialogue.
    let users: Vec<Vec<u32>> = (0..s.turns)
        .map(|_| random_tokens(&mut r, s.user_tokens, cfg.vocab_size))
        .collect();
    // Every strategy runs `dialogue_repeats` times, in rounds, and each turn keeps
    // its fastest time, so that a burst of load on the machine does not land on one
    // strategy alone.
    let mut runs: BTreeMap<&str, Vec<TurnCost>> = BTreeMap::new();
    for _ in 0..s.dialogue_repeats {
        for &strategy in Strategy::VARIANTS {
            let turns = simulate(strategy, &dec, &ed, &users, s.reply_tokens)?;
            match runs.get_mut(strategy.name()) {
                Some(best) => {
                    for (b, t) in best.iter_mut().zip(turns) {
                        b.secs = b.secs.min(t.secs);
                    }
                }
                None => {
                    runs.insert(strategy.name(), turns);
                }
            }
        }
    }
    let reuse_replies_equal_recompute = runs["causal_reuse"]
        .iter()
        .zip(&runs["causal_recompute"])
        .all(|(a, b)| a.reply == b.reply);
    let cumulative = |turns: &[TurnCost]| -> Vec<u64> {
        turns
            .iter()
            .scan(0u64, |acc, t| {
                *acc += t.flops;
                Some(*acc)
            })
            .collect()
    };
    let reuse_total = *cumulative(&runs["causal_reuse"])
        .last()
        .expect("at least one turn") as f64;
    let reuse_secs: f64 = runs["causal_reuse"].iter().map(|t| t.secs).sum();
    let mut dialogue = BTreeMap::new();
    let mut dialogue_t = BTreeMap::new();
    for &strategy in Strategy::VARIANTS {
        let turns = &runs[strategy.name()];
        let cum = cumulative(turns);
        let formula = dialogue_flops_formula(
            cfg,
            strategy,
            s.turns,
            s.user_tokens,
            s.reply_tokens,
        );
        let total = *cum.last().expect("at least one turn") as f64;
        let half = cum[(s.turns / 2).max(1) - 1] as f64;
        dialogue.insert(
            strategy.name().to_string(),
            DialogueRow {
                label: strategy.label().into(),
                matches_formula: turns
                    .iter()
                    .zip(&formula)
                    .all(|(t, f)| t.flops == *f),
                total_gflop: round_sig(total / 1e9, 4),
                flops_ratio_to_reuse: round_sig(total / reuse_total, 3),
                last_over_first_turn: round_sig(
                    turns[turns.len() - 1].flops as f64 / turns[0].flops as f64,
                    3,
                ),
                growth_when_doubling: round_sig(total / half, 3),
                cumulative_flops: cum,
            },
        );
        let secs: Vec<f64> = turns
            .iter()
            .scan(0.0, |acc, t| {
                *acc += t.secs;
                Some(*acc)
            })
            .collect();
        let total_secs = secs[secs.len() - 1];
        dialogue_t.insert(
            strategy.name().to_string(),
            DialogueTiming {
                label: strategy.label().into(),
                cumulative_secs: secs.iter().map(|&x| round_sig(x, 3)).collect(),
                total_secs: round_sig(total_secs, 3),
                time_ratio_to_reuse: round_sig(total_secs / reuse_secs, 3),
            },
        );
    }

    // 5. MHA, GQA, MQA.
    let mut kv_heads = Vec::new();
    let mut kv_secs = Vec::new();
    for &g in &s.kv_heads {
        let (row, secs) = kv_heads_point(cfg, g, s.kv_context, s.repeats, s.seed)?;
        kv_heads.push(row);
        kv_secs.push(secs);
    }
    let mha_bytes = kv_heads[0].cache_bytes_measured as f64;
    let mut kv_t = Vec::new();
    for (row, secs) in kv_heads.iter_mut().zip(&kv_secs) {
        row.cache_ratio_to_mha =
            round_sig(row.cache_bytes_measured as f64 / mha_bytes, 3);
        kv_t.push(KvHeadsTiming {
            n_kv_heads: row.n_kv_heads,
            ms_per_step: round_sig(secs * 1e3, 3),
            time_ratio_to_mha: round_sig(secs / kv_secs[0], 3),
        });
    }

    let report = Report {
        settings: s.clone(),
        params_decoder: store.num_params(),
        params_encoder_decoder: ed_store.num_params(),
        equality,
        invalidation,
        decode_longest: decode[decode.len() - 1].clone(),
        decode,
        dialogue,
        reuse_replies_equal_recompute,
        kv_heads,
        memory: memory_table(),
    };
    let timings = Timings {
        decode_shortest: decode_t[0].clone(),
        decode_longest: decode_t[decode_t.len() - 1].clone(),
        decode: decode_t,
        dialogue: dialogue_t,
        kv_heads: kv_t,
        max_logit_diff: round_sig(max_diff, 2),
        rounding_residual: round_sig(rounding_residual, 2),
        total_secs: round_sig(started.elapsed().as_secs_f64(), 3),
    };
    Ok(Outcome { report, timings })
}
