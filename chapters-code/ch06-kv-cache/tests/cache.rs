//! The cache changes nothing but the cost; bidirectional histories invalidate it;
//! the counts the book prints equal what the models compute.

use ch06_kv_cache::*;
use rand::Rng as _;
use transformer::{
    Config, DecoderOnly, EncoderDecoder, ParamStore, PositionKind, rng,
};

fn small(n_kv_heads: usize, n_layers: usize) -> Config {
    Config {
        vocab_size: 40,
        d_model: 32,
        n_heads: 4,
        n_kv_heads,
        d_ff: 64,
        n_layers,
        max_len: 64,
        positions: PositionKind::Learned,
        tie_embeddings: false,
        kernels: Default::default(),
    }
}

fn tokens(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    let mut r = rng::seeded(seed);
    (0..n).map(|_| r.random_range(0..vocab as u32)).collect()
}

#[test]
fn cached_generation_equals_recomputation_over_random_models() {
    // Property-style: random shapes (1–3 layers, 4/2/1 K/V heads, both position
    // kinds, tied or untied head), prompt lengths and generation lengths, one per
    // seed.
    let mut kv_seen = std::collections::BTreeSet::new();
    for seed in 100..140 {
        let c = equality_case(seed).unwrap();
        kv_seen.insert(c.n_kv_heads);
        assert_eq!(c.same_tokens, [true; 3], "{c:?}");
        assert!(c.max_logit_diff < 1e-4, "{c:?}");
    }
    assert_eq!(kv_seen.len(), 3, "the seeds cover MHA, GQA and MQA");
}

#[test]
fn a_prompt_fed_in_pieces_gives_the_same_continuation() {
    // Splitting the prompt across calls (as a dialogue does) changes nothing
    // either.
    let cfg = small(2, 2);
    let store = ParamStore::new(3);
    let dec = DecoderOnly::new(&cfg, store.vb().pp("dec")).unwrap();
    let prompt = tokens(1, 20, cfg.vocab_size);
    let whole = greedy_full(&dec, &prompt, 10, PromptMask::Causal).unwrap();
    for cut in [1, 7, 19] {
        let mut cache = Vec::new();
        // Feed the first part without generating, then the rest and generate.
        let first = ids(&prompt[..cut]).unwrap();
        dec.run(
            &first,
            &transformer::MaskKind::Causal,
            transformer::Forward { cache: Some(&mut cache), trace: false },
        )
        .unwrap();
        let g = continue_cached(
            &dec,
            &mut cache,
            &prompt[cut..],
            &transformer::MaskKind::Causal,
            10,
        )
        .unwrap();
        assert_eq!(g.tokens, whole.tokens, "cut {cut}");
        assert!(max_logit_diff(&g, &whole) < 1e-4);
    }
}

#[test]
fn appending_a_turn_leaves_causal_caches_valid_and_invalidates_bidirectional_ones()
{
    for (kv, layers) in [(4, 3), (1, 2)] {
        let cfg = small(kv, layers);
        let dec =
            DecoderOnly::new(&cfg, ParamStore::new(5).vb().pp("dec")).unwrap();
        let ed =
            EncoderDecoder::new(&cfg, ParamStore::new(5).vb().pp("ed")).unwrap();
        let (old, new, other) =
            (tokens(1, 10, 40), tokens(2, 15, 40), tokens(3, 15, 40));
        let rows = invalidation(&dec, &ed, &old, &new, &other).unwrap();
        let get = |k: &str| rows.iter().find(|r| r.key == k).unwrap();
        for key in ["causal", "prefix_frozen"] {
            let r = get(key);
            assert!(!r.depends_on_new_turn, "{key}");
            assert_eq!(
                r.layers[0].max_abs, 0.0,
                "{key}: layer 0 is a projection of the same embeddings"
            );
            assert!(
                r.layers.iter().all(|l| l.relative < 1e-5),
                "{key}: {:?}",
                r.layers
            );
        }
        for key in ["prefix_lm", "encoder"] {
            let r = get(key);
            assert!(r.depends_on_new_turn, "{key}");
            assert_eq!(
                r.layers[0].max_abs, 0.0,
                "{key}: layer 0 sees only its own token"
            );
            assert!(
                r.layers[1..].iter().all(|l| l.relative > 1e-3),
                "{key}: {:?}",
                r.layers
            );
        }
        let cross = get("cross");
        assert!(
            cross.depends_on_new_turn
                && cross.layers.iter().all(|l| l.relative > 1e-3)
        );
        assert_eq!(cross.layers.len(), layers);
    }
}

#[test]
fn the_dialogue_cost_model_equals_the_counted_flops() {
    for (kv, layers, turns, user, reply) in
        [(4, 2, 3, 5, 4), (2, 1, 4, 3, 1), (1, 3, 2, 6, 7)]
    {
        let cfg = small(kv, layers);
        let dec =
            DecoderOnly::new(&cfg, ParamStore::new(8).vb().pp("dec")).unwrap();
        let ed =
            EncoderDecoder::new(&cfg, ParamStore::new(8).vb().pp("ed")).unwrap();
        let users: Vec<Vec<u32>> =
            (0..turns).map(|t| tokens(t as u64, user, cfg.vocab_size)).collect();
        let mut replies = Vec::new();
        for &s in Strategy::VARIANTS {
            let run = simulate(s, &dec, &ed, &users, reply).unwrap();
            let counted: Vec<u64> = run.iter().map(|t| t.flops).collect();
            assert_eq!(
                counted,
                dialogue_flops_formula(&cfg, s, turns, user, reply),
                "{s:?}"
            );
            assert!(run.iter().all(|t| t.reply.len() == reply));
            replies.push(run.into_iter().map(|t| t.reply).collect::<Vec<_>>());
        }
        // Keeping the cache changes the cost, not the conversation.
        assert_eq!(replies[0], replies[1]);
    }
}

#[test]
fn recomputation_grows_quadratically_and_reuse_almost_linearly() {
    let cfg = small(4, 2);
    let (turns, user, reply) = (8, 3, 4);
    let total = |s| dialogue_flops_formula(&cfg, s, turns, user, reply);
    let reuse = total(Strategy::CausalReuse);
    let recompute = total(Strategy::CausalRecompute);
    assert_eq!(
        recompute,
        total(Strategy::PrefixReencode),
        "the mask does not change the count"
    );
    // Per-turn cost: flat-ish for reuse, growing with the history for
    // recomputation.
    assert!((reuse[turns - 1] as f64 / reuse[1] as f64) < 1.5);
    assert!((recompute[turns - 1] as f64 / recompute[0] as f64) > 4.0);
    assert!(recompute.iter().sum::<u64>() > 2 * reuse.iter().sum::<u64>());
}

#[test]
fn one_step_flops_match_the_formula_and_the_cache_size_matches_its_formula() {
    let cfg = small(4, 2);
    let dec = DecoderOnly::new(&cfg, ParamStore::new(1).vb().pp("dec")).unwrap();
    for n in [1, 8, 40] {
        let (p, _) = decode_point(&dec, n, 1, 2).unwrap();
        assert_eq!((p.flops_full, p.flops_cached), step_flops(&cfg, n), "n = {n}");
    }
    for g in [4, 2, 1] {
        let (row, _) = kv_heads_point(&cfg, g, 30, 1, 3).unwrap();
        assert_eq!(
            row.cache_bytes_measured, row.cache_bytes_formula,
            "{g} K/V heads"
        );
        assert_eq!(row.bytes_per_token, (2 * 2 * g * 8 * 4) as u64);
    }
}

#[test]
fn published_cache_sizes_match_the_fact_sheet() {
    let m = memory_table();
    assert_eq!(m["llama3_8b"].bytes_per_token, 128 * 1024);
    assert_eq!(m["llama3_8b"].gb_at_8k, 1.07);
    assert_eq!(m["llama3_8b"].gib_at_128k, 16.0);
    assert_eq!(m["llama3_8b_mha"].kib_per_token, 512.0);
    assert_eq!(m["llama3_70b"].kib_per_token, 320.0);
    assert_eq!(m["llama3_70b"].gb_at_8k, 2.68);
    assert_eq!(m["gpt3_175b"].bytes_per_token, 4608 * 1024);
    assert_eq!(m["gpt3_175b"].gib_at_128k, 576.0);
    assert_eq!(m["palm_540b"].kib_per_token, 118.0);
    assert_eq!(m["palm_540b"].gb_at_8k, 0.99);
}
