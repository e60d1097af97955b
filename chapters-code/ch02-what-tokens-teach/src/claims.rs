//! What the page says about the training runs, computed from them; the book's build
//! fails on a claim that does not hold.

use transformer::chapter::Claims;
use transformer::io::thousands;

use crate::Report;

pub fn claims(r: &Report) -> Claims {
    let mut c = Claims::new();
    c.add(
        "every_document_round_trips",
        r.corpus.round_trip_exact,
        "every document of the corpus decodes back to itself exactly",
    );
    let t = &r.training;
    let s = &t.seeds;
    let k = s.seeds.len();
    let g = &s.gap_equal_seen_stats;
    c.add(
        "full_lm_ahead_at_equal_tokens_seen",
        s.gap_equal_seen.iter().all(|&x| x > 0.0),
        format!(
            "in all {k} seeds the full LM ends ahead on the second half at an equal number of tokens seen \
             (prefix minus full: {:.3} ± {:.3}, from {:.3} to {:.3})",
            g.mean, g.std, g.min, g.max
        ),
    );
    let p = &s.second_half["prefix_lm"];
    match (&s.full_at_prefix_supervision, &s.gap_equal_supervised_stats) {
        (Some(f), Some(e)) => c.add(
            "prefix_lm_ahead_at_equal_supervision",
            s.gap_equal_supervised.iter().all(|&x| x > 0.0),
            format!(
                "in all {k} seeds the prefix LM is ahead at an equal number of supervised positions: after \
                 {} supervised positions the full LM scored {:.3} ± {:.3} on the second half, the prefix LM \
                 {:.3} ± {:.3} (a lead of {:.3} to {:.3})",
                thousands(s.prefix_supervised as u64),
                f.mean,
                f.std,
                p.mean,
                p.std,
                e.min,
                e.max
            ),
        ),
        _ => c.add(
            "prefix_lm_ahead_at_equal_supervision",
            false,
            "the run is too short to compare the decoders at equal supervision (the full LM's first evaluation \
             comes after the prefix LM's whole supervision)",
        ),
    };
    let m = &s.final_loss["masked_lm"];
    let u = t.unigram_baseline_masked_lm;
    c.add(
        "masked_lm_beats_unigram",
        m.max < u,
        format!(
            "the masked LM's held-out loss ({:.3} ± {:.3}) is below the {u:.3} nats of a model that knows only the \
             corpus's token frequencies, in every seed",
            m.mean, m.std
        ),
    );
    // The tokenizer: BPE stopped short of the vocabulary asked for.
    let corpus = &r.corpus;
    c.add(
        "bpe_stopped_early",
        corpus.vocab_size < r.settings.vocab_size && corpus.tokens_per_word < 1.3,
        format!("BPE stopped at {} of them", corpus.vocab_size),
    );
    // Signal density: the measured fractions are the theory's.
    let d = &r.density;
    c.add(
        "density_matches_theory",
        d.full_lm.measured == 1.0
            && (d.prefix_lm.measured - d.prefix_lm.theory).abs() < 0.005
            && (d.masked_lm.measured - d.masked_lm.theory).abs() < 0.005,
        "every position for full LM, and the theory's fractions within 0.005 for the prefix LM and MLM",
    );
    // The run the figures show: the full LM ahead on the second half.
    c.add(
        "full_lm_ahead_in_the_figured_run",
        t.second_half_gap_plm_minus_flm > 0.0,
        "the full LM ends ahead on the second half in the run the figures show",
    );
    c
}
