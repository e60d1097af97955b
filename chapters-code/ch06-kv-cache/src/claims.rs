//! What the page says about the measurements, computed from them. Each claim's
//! wording is generated from the numbers it summarises, and `holds` says whether
//! the data bear it out; the book's build fails on a claim that does not hold.
//! Claims about the clock read the timings, and state only what the run's numbers
//! show.

use transformer::chapter::Claims;

use crate::{Report, Timings};

/// The strategies that run the history again every turn.
const RERUN: [&str; 3] = ["causal_recompute", "prefix_lm", "encoder_decoder"];

/// Every claim of the page about the cache, the invalidation, the costs and the
/// timings.
pub fn claims(r: &Report, t: &Timings) -> Claims {
    let mut c = Claims::new();

    // Caching changes nothing.
    c.add(
        "cached_generation_equals_recomputation",
        r.equality.all_tokens_identical && r.equality.all_within_1e4 && r.reuse_replies_equal_recompute,
        "cached and uncached generation pick the same tokens in every case and dialogue",
    );

    // Invalidation.
    let inv = |key: &str| &r.invalidation[key];
    let moves = |key: &str, from: usize| {
        inv(key).layers.iter().skip(from).all(|l| l.relative > 0.01)
    };
    let still = |key: &str, upto: usize| {
        inv(key).layers.iter().take(upto).all(|l| l.relative == 0.0)
    };
    c.add(
        "causal_rows_do_not_depend_on_new_turn",
        !inv("causal").depends_on_new_turn
            && still("causal", usize::MAX)
            && t.rounding_residual < 1e-5,
        "the causal decoder's history does not depend on the new turn",
    );
    c.add(
        "prefix_lm_moves_above_layer_0",
        inv("prefix_lm").depends_on_new_turn && still("prefix_lm", 1) && moves("prefix_lm", 1),
        "the prefix LM's history is unchanged in layer 0 and moves in every layer above",
    );
    c.add(
        "encoder_moves_above_layer_0",
        inv("encoder").depends_on_new_turn && still("encoder", 1) && moves("encoder", 1),
        "the encoder's history is unchanged in layer 0 and moves in every layer above",
    );
    c.add(
        "cross_kv_move_in_every_layer",
        inv("cross").depends_on_new_turn && moves("cross", 0),
        "the cross-attention keys and values move in every layer",
    );
    c.add(
        "frozen_prefix_reuses_exactly",
        !inv("prefix_frozen").depends_on_new_turn
            && still("prefix_frozen", usize::MAX),
        "the frozen prefix does not depend on the new turn",
    );

    // One decoding step: the FLOP count predicts n + 1 exactly.
    c.add(
        "flop_speedup_is_n_plus_1",
        r.decode
            .iter()
            .all(|p| p.flops_full == (p.context as u64 + 1) * p.flops_cached),
        "the counted speed-up is n + 1 at every context",
    );
    // The clock against the count.
    let (short, long) = (&t.decode_shortest, &t.decode_longest);
    let predicted = |n: usize| {
        r.decode
            .iter()
            .find(|p| p.context == n)
            .map_or(f64::NAN, |p| p.predicted_speedup)
    };
    let share = |m: &crate::DecodeTiming| m.measured_speedup / predicted(m.context);
    let below = t.decode.iter().all(|m| m.measured_speedup < predicted(m.context));
    c.add(
        "clock_below_flop_count",
        below && long.measured_speedup > short.measured_speedup && share(long) < share(short),
        format!(
            "The clock shows a smaller saving than the count at every context, and is further behind at the \
             longest context than at the shortest: the measured speed-up rises from {}× at {} tokens to {}× at {}, but that is {:.0}% of \
             the predicted {}× at the shortest context and only {:.0}% of the predicted {}× at the longest",
            short.measured_speedup,
            short.context,
            long.measured_speedup,
            long.context,
            100.0 * share(short),
            predicted(short.context),
            100.0 * share(long),
            predicted(long.context)
        ),
    );
    // Why: the rate (FLOPs per second) of the two kinds of step.
    let rate = |flops: u64, ms: f64| flops as f64 / (ms * 1e-3) / 1e9;
    let rates: Vec<(f64, f64)> = r
        .decode
        .iter()
        .zip(&t.decode)
        .map(|(p, m)| {
            (rate(p.flops_full, m.ms_full), rate(p.flops_cached, m.ms_cached))
        })
        .collect();
    let (full_first, full_last) = (rates[0].0, rates[rates.len() - 1].0);
    let full_min = rates.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
    let cached_min = rates.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    let cached_max = rates.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
    c.add(
        "full_pass_runs_at_higher_rate",
        cached_max < full_min && full_last > full_first,
        format!(
            "the full pass runs at {full_first:.1} GFLOP/s at {} tokens and {full_last:.1} GFLOP/s at {}, while the \
             cached step stays between {cached_min:.1} and {cached_max:.1} GFLOP/s at every context",
            short.context, long.context
        ),
    );

    // A conversation.
    let d = &r.dialogue;
    let reuse = &d["causal_reuse"];
    c.add(
        "dialogue_counts_match_the_cost_model",
        d.values().all(|x| x.matches_formula),
        "every strategy's counted FLOPs equal the cost model, turn by turn",
    );
    let rerun_growth: Vec<f64> =
        RERUN.iter().map(|k| d[*k].growth_when_doubling).collect();
    c.add(
        "reuse_linear_rerun_quadratic",
        reuse.growth_when_doubling < 3.0 && rerun_growth.iter().all(|&g| g > 3.0),
        format!(
            "doubling the turns multiplies the cache-keeping decoder's total by {} (2 for linear growth, 4 for \
             quadratic) and the totals of the three strategies that run the history again by {}, {} and {}",
            reuse.growth_when_doubling, rerun_growth[0], rerun_growth[1], rerun_growth[2]
        ),
    );
    let turns = r.settings.turns as f64;
    let ratio = d["causal_recompute"].flops_ratio_to_reuse;
    c.add(
        "rerun_ratio_a_little_above_formula",
        ratio > (turns + 1.0) / 2.0 && ratio < 1.2 * (turns + 1.0) / 2.0,
        format!(
            "$(T+1)/2$ = {} for $T$ = {turns} turns, and {ratio} is a little above it",
            (turns + 1.0) / 2.0
        ),
    );
    c.add(
        "prefix_lm_costs_what_recompute_costs",
        d["prefix_lm"].cumulative_flops == d["causal_recompute"].cumulative_flops,
        "the prefix LM's cumulative FLOPs equal the recomputing decoder's after every turn",
    );
    let per_turn = |k: &str| -> Vec<f64> {
        d[k].cumulative_flops.iter().map(|&x| x as f64).collect()
    };
    let (rec, reu) = (per_turn("causal_recompute"), per_turn("causal_reuse"));
    let ratios: Vec<f64> = rec.iter().zip(&reu).map(|(a, b)| a / b).collect();
    c.add(
        "rerun_ratio_grows_every_turn",
        ratios.windows(2).all(|w| w[1] > w[0]),
        "the ratio of cumulative FLOPs grows with every turn",
    );
    let dt = &t.dialogue;
    let time_smaller = RERUN.iter().all(|k| {
        let tr = dt[*k].time_ratio_to_reuse;
        tr < d[*k].flops_ratio_to_reuse && tr > 1.0
    });
    c.add(
        "time_gap_smaller_than_flop_gap",
        time_smaller,
        "every strategy that runs the history again is slower than keeping the cache, by less than its FLOPs",
    );

    // Multi-query and grouped-query attention.
    let kv = &r.kv_heads;
    c.add(
        "cache_equals_formula_to_the_byte",
        kv.iter().all(|x| x.cache_bytes_measured == x.cache_bytes_formula),
        "the measured cache equals the formula",
    );
    let mha = kv[0].flops_per_step as f64;
    let falls: Vec<f64> =
        kv.iter().skip(1).map(|x| 1.0 - x.flops_per_step as f64 / mha).collect();
    let describe: Vec<String> = kv
        .iter()
        .skip(1)
        .zip(&falls)
        .map(|(x, f)| {
            format!(
                "{:.1}% with {} key/value head{}",
                100.0 * f,
                x.n_kv_heads,
                if x.n_kv_heads == 1 { "" } else { "s" }
            )
        })
        .collect();
    c.add(
        "kv_heads_flops_fall_a_little",
        falls.iter().all(|&f| f > 0.0 && f < 0.2),
        format!(
            "the FLOPs of a step fall only a little (by {})",
            describe.join(", ")
        ),
    );
    let mqa = kv.len() - 1;
    let time_ratio = t.kv_heads[mqa].time_ratio_to_mha;
    let flops_ratio = kv[mqa].flops_per_step as f64 / mha;
    c.add(
        "mqa_step_faster_than_its_flops",
        time_ratio < flops_ratio,
        format!(
            "{time_ratio} times as long as a multi-head step at this context, a larger saving than its FLOPs ({:.3} \
             of multi-head attention's) account for",
            flops_ratio
        ),
    );
    c
}
