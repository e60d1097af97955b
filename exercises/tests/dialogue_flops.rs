// Compiles exercises/starters/dialogue_flops.rs into this test (the solution with
// --features solutions).
exercises::exercise!(dialogue_flops);

use candle_core::Tensor;
use transformer::model::Forward;
use transformer::{
    Config, DecoderOnly, EncoderDecoder, MaskKind, ParamStore, PositionKind, flops,
};

fn ids(n: usize, start: usize, vocab: usize) -> Tensor {
    let v: Vec<u32> = (start..start + n).map(|i| (i % vocab) as u32).collect();
    Tensor::from_vec(v, (1, n), &transformer::DEVICE).unwrap()
}

/// Replay the dialogue with the library's models and count the FLOPs of every turn.
fn counted(
    cfg: &Config,
    serving: Serving,
    turns: usize,
    user: usize,
    reply: usize,
) -> Vec<u64> {
    let store = ParamStore::new(0);
    let v = cfg.vocab_size;
    let mut out = Vec::new();
    match serving {
        Serving::CacheReuse | Serving::Reencode => {
            let dec = DecoderOnly::new(cfg, store.vb().pp("dec")).unwrap();
            let mut cache = Vec::new();
            for t in 0..turns {
                let history = t * (user + reply);
                let (_, f) = flops::count(|| {
                    let (first, start, mask) = if serving == Serving::CacheReuse {
                        (user, history, MaskKind::Causal)
                    } else {
                        cache.clear();
                        (history + user, 0, MaskKind::prefix(history + user))
                    };
                    let run = |x: Tensor, cache: &mut Vec<_>| {
                        dec.run(
                            &x,
                            &mask,
                            Forward { cache: Some(cache), trace: false },
                        )
                        .unwrap()
                    };
                    run(ids(first, start, v), &mut cache);
                    for k in 0..reply {
                        run(ids(1, history + user + k, v), &mut cache);
                    }
                });
                out.push(f);
            }
        }
        Serving::EncoderDecoder => {
            let ed = EncoderDecoder::new(cfg, store.vb().pp("ed")).unwrap();
            for t in 0..turns {
                let prompt = t * (user + reply) + user;
                let (_, f) = flops::count(|| {
                    let (enc, _) = ed.encode(&ids(prompt, 0, v), false).unwrap();
                    let cross = ed.cross_kv(&enc).unwrap();
                    let mut cache = Vec::new();
                    for k in 0..reply {
                        ed.decode(
                            &ids(1, k, v),
                            &cross,
                            Forward { cache: Some(&mut cache), trace: false },
                        )
                        .unwrap();
                    }
                });
                out.push(f);
            }
        }
    }
    out
}

fn config(n_kv_heads: usize, n_layers: usize) -> Config {
    Config {
        vocab_size: 30,
        d_model: 16,
        n_heads: 4,
        n_kv_heads,
        d_ff: 24,
        n_layers,
        max_len: 80,
        positions: PositionKind::Learned,
        tie_embeddings: false,
        kernels: Default::default(),
    }
}

#[test]
fn the_model_matches_the_counted_flops_of_a_replayed_dialogue() {
    for (kv, layers, turns, user, reply) in
        [(4, 2, 3, 5, 4), (2, 1, 5, 3, 2), (1, 3, 2, 7, 9)]
    {
        let cfg = config(kv, layers);
        for serving in
            [Serving::CacheReuse, Serving::Reencode, Serving::EncoderDecoder]
        {
            assert_eq!(
                turn_flops(&cfg, serving, turns, user, reply),
                counted(&cfg, serving, turns, user, reply),
                "{serving:?}, {turns} turns of {user} + {reply} tokens, {cfg:?}"
            );
        }
    }
}

#[test]
fn the_first_turn_costs_the_same_with_or_without_reuse() {
    let cfg = config(4, 2);
    let reuse = turn_flops(&cfg, Serving::CacheReuse, 1, 6, 3);
    assert_eq!(reuse, turn_flops(&cfg, Serving::Reencode, 1, 6, 3));
}

#[test]
fn reencoding_grows_with_the_history_and_reuse_does_not() {
    let cfg = config(4, 2);
    let (turns, user, reply) = (8, 4, 4);
    let reuse = turn_flops(&cfg, Serving::CacheReuse, turns, user, reply);
    let again = turn_flops(&cfg, Serving::Reencode, turns, user, reply);
    // Later turns cost more with reuse too (their queries read longer caches), but
    // far more when the history is run again.
    let growth = |v: &[u64]| v[turns - 1] as f64 / v[0] as f64;
    assert!(growth(&again) > 3.0 * growth(&reuse), "{reuse:?} {again:?}");
    assert!(again.iter().sum::<u64>() > 2 * reuse.iter().sum::<u64>());
}
