//! The sentences the pages say about the real models' results, each computed from
//! them.

use transformer::chapter::Claims;

use crate::report::Outcome;

pub fn claims(o: &Outcome) -> Claims {
    let (r, t) = (&o.report, &o.timings);
    let mut c = Claims::new();
    let (e, d) = (&r.encoder_params, &r.decoder_params);
    c.add(
        "counts_match",
        e.predicted == e.in_file && d.predicted == d.in_file,
        "the formulas give every parameter in both files, to the last one",
    );
    let (re, rd) = (&r.ranks.encoder, &r.ranks.decoder);
    c.add(
        "encoder_log_rank_bound",
        re.log_rank_max.is_some_and(|m| m <= re.head_dim + 1),
        format!(
            "no encoder head's ln A has rank above d_h + 1 = {}",
            re.head_dim + 1
        ),
    );
    c.add(
        "output_rank_reaches_head_dim",
        {
            let bound = |m: &crate::ranks::ModelRanks| r.ranks.tokens.min(m.head_dim);
            re.output_rank_max == bound(re) && rd.output_rank_max == bound(rd)
        },
        "in both models the largest rank of a head's output A V is exactly d_h, the \
         most it can be",
    );
    c.add(
        "decoder_diagonals_positive",
        rd.all_diagonals_positive == Some(true)
            && rd.log10_min_diag_min.is_some_and(|x| x > f64::MIN_POSITIVE.log10()),
        "every diagonal entry of every causal matrix is positive, and above the \
         smallest normal f64, so every one is invertible",
    );
    // Difference of the mean effective ranks against its standard error (heads
    // and passages treated as independent draws, which they are not quite).
    let (me, md) = (re.effective_rank.mean, rd.effective_rank.mean);
    let se = (re.effective_rank.std.powi(2) / re.matrices as f64
        + rd.effective_rank.std.powi(2) / rd.matrices as f64)
        .sqrt();
    c.add(
        "decoder_effective_rank_higher",
        md - me > 2.0 * se,
        format!(
            "the decoder's mean effective rank is higher than the encoder's, by {:.1}, \
             more than twice the difference's standard error ({:.1})",
            md - me,
            se
        ),
    );
    let toy = &r.toy;
    let toy_gap = toy.causal_effective_rank - toy.encoder_effective_rank;
    c.add(
        "gap_smaller_than_toy",
        toy.tokens == r.ranks.tokens && md - me < toy_gap / 4.0,
        format!(
            "less than a quarter of the gap between chapter 3's trained-in-a-minute \
             models at the same n ({toy_gap:.1})"
        ),
    );
    c.add(
        "encoder_fewer_full_rank",
        re.full_rank_1e3_percent < rd.full_rank_1e3_percent,
        format!(
            "fewer encoder matrices than causal ones have full rank at 1e-3 ({}% against \
             {}%)",
            re.full_rank_1e3_percent, rd.full_rank_1e3_percent
        ),
    );
    c.add(
        "most_causal_rank_deficient",
        rd.full_rank_1e3_percent < 50.0 && rd.all_diagonals_positive == Some(true),
        "most causal matrices fall short of full rank at 1e-3 although every one is \
         invertible",
    );
    let ch = &r.chat;
    let (ed, dd) = (&ch.encoder_drift.per_layer, &ch.decoder_drift.per_layer);
    c.add(
        "first_layer_values_unchanged",
        ed.first() == Some(&0.0) && dd.first() == Some(&0.0),
        "in the first layer neither model's values change by more than f32 rounding \
         (1e-5)",
    );
    c.add(
        "decoder_drift_is_rounding",
        ch.decoder_drift.max == 0.0,
        "the decoder's earlier values change by less than 1e-5 (rounding in f32)",
    );
    c.add(
        "encoder_drift_large",
        ed.len() > 1 && ed[1..].iter().all(|&x| x > 0.1),
        "in every later layer the encoder's earlier values change by more than 10%",
    );
    c.add(
        "recomputed_prefill_slower",
        t.chat.turns.iter().skip(1).all(|x| x.recomputed_prefill_ms > x.kept_prefill_ms),
        "after the first turn, recomputing the conversation makes every prefill slower",
    );
    if let (Some(turn), Some(time)) = (ch.turns.last(), t.chat.turns.last()) {
        let tokens = turn.context_tokens as f64 / turn.new_tokens.max(1) as f64;
        c.add(
            "prefill_time_sublinear",
            time.prefill_ratio < tokens,
            format!(
                "the last turn's recomputed prefill ran {tokens:.1} times as many tokens as \
                 the kept one in less than {tokens:.1} times the time"
            ),
        );
    }
    c.add(
        "uncached_decoding_slower",
        t.chat.uncached_over_cached > 1.0,
        "decoding without any cache is slower",
    );
    c.add(
        "kept_equals_recomputed",
        ch.kept_equals_recomputed,
        "every reply token is the same whether the cache is kept or recomputed",
    );
    c.add(
        "uncached_equals_cached",
        ch.uncached_equals_cached,
        "decoding with no cache at all gives the same tokens",
    );
    c.add(
        "kv_size_matches_formula",
        ch.kv.bytes_held == ch.kv.bytes_per_token * ch.kv.tokens_held,
        "the cache measured after the chat holds exactly the formula's bytes per token",
    );
    c
}
