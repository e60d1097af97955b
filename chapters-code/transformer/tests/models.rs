//! The models do what the book says they do: shapes, masks, shared weights, caches,
//! exact parameter and FLOP counts, checkpoints.

mod common;

use std::path::PathBuf;

use candle_core::{IndexOp, Tensor};
use candle_nn::VarBuilder;
use common::{max_abs_diff, random_ids, small};
use transformer::model::Forward;
use transformer::{
    Config, DecoderOnly, EncoderDecoder, KvCache, MaskKind, ParamStore,
    PositionKind, flops, rng,
};

/// A model built by `new` (`DecoderOnly::new`, `EncoderDecoder::new` or
/// `EncoderDecoder::shared`) over fresh variables `name.*` drawn from `seed`, and
/// the store that holds them.
fn build<M>(
    new: impl Fn(&Config, VarBuilder<'static>) -> transformer::Result<M>,
    cfg: &Config,
    seed: u64,
    name: &str,
) -> (ParamStore, M) {
    let s = ParamStore::new(seed);
    let model = new(cfg, s.vb().pp(name)).unwrap();
    (s, model)
}

/// `b` random sources of `s` tokens and targets of `t` tokens, drawn from `seed`
/// and `seed + 1`.
fn sources_and_targets(
    cfg: &Config,
    seed: u64,
    b: usize,
    (s, t): (usize, usize),
) -> (Tensor, Tensor) {
    let src = random_ids(&mut rng::seeded(seed), b, s, cfg.vocab_size);
    let tgt = random_ids(&mut rng::seeded(seed + 1), b, t, cfg.vocab_size);
    (src, tgt)
}

/// `store` saved as `model.safetensors` in a fresh temporary folder, which lasts
/// as long as the returned handle.
fn saved(store: &ParamStore) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    store.save(&path).unwrap();
    (dir, path)
}

fn configs() -> Vec<Config> {
    let mut v = Vec::new();
    for positions in [PositionKind::Learned, PositionKind::Sinusoidal] {
        for tie in [false, true] {
            for kv in [4, 2, 1] {
                v.push(small(positions, tie, kv));
            }
        }
    }
    v
}

#[test]
fn parameter_formulas_equal_the_real_variables() {
    for cfg in configs() {
        let (s, _) = build(DecoderOnly::new, &cfg, 0, "dec");
        assert_eq!(s.num_params(), cfg.decoder_only_params(), "{cfg:?}");
        let (s, _) = build(EncoderDecoder::new, &cfg, 0, "ed");
        assert_eq!(s.num_params(), cfg.encoder_decoder_params(), "{cfg:?}");
        let (s, _) = build(EncoderDecoder::shared, &cfg, 0, "ed");
        assert_eq!(s.num_params(), cfg.shared_encoder_decoder_params(), "{cfg:?}");
    }
}

/// The loss of `ed` on a fixed batch, and its gradient for every variable of
/// `store`, by name.
fn ed_gradients(
    ed: &EncoderDecoder,
    store: &ParamStore,
) -> std::collections::HashMap<String, Vec<f32>> {
    let cfg = &ed.cfg;
    let (src, tgt) = sources_and_targets(cfg, 2, 2, (6, 5));
    let loss = ed.forward(&src, &tgt).unwrap().sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    store
        .vars()
        .into_iter()
        .map(|(n, v)| {
            let g =
                grads.get(v.as_tensor()).expect("every variable gets a gradient");
            (n, g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
        .collect()
}

#[test]
fn the_shared_encoder_decoder_has_one_set_of_block_weights_trained_from_both_sides()
{
    let cfg = small(PositionKind::Learned, false, 2);
    let (shared_store, shared) = build(EncoderDecoder::shared, &cfg, 7, "ed");
    // One set of variables: the decoder owns only its cross-attention and
    // LayerNorms.
    let names: Vec<String> =
        shared_store.vars().into_iter().map(|(n, _)| n).collect();
    for n in names.iter().filter(|n| n.starts_with("ed.decoder.")) {
        let rest = n.splitn(4, '.').nth(3).unwrap();
        assert!(
            rest.starts_with("cross.") || rest.starts_with("ln_cross."),
            "{n} is not shared"
        );
    }
    // The same weights, unshared: decoder blocks hold copies of the encoder's
    // values.
    let (plain_store, plain) = build(EncoderDecoder::new, &cfg, 0, "ed");
    let values = shared_store.tensors();
    let source = |n: &str| -> String {
        match n.splitn(4, '.').collect::<Vec<_>>()[..] {
            ["ed", "decoder", i, rest]
                if !rest.starts_with("cross.")
                    && !rest.starts_with("ln_cross.") =>
            {
                format!("ed.encoder.{i}.{rest}")
            }
            _ => n.into(),
        }
    };
    for (n, v) in plain_store.vars() {
        v.set(&values[&source(&n)]).unwrap();
    }
    let (src, tgt) = sources_and_targets(&cfg, 2, 2, (6, 5));
    let diff = max_abs_diff(
        &shared.forward(&src, &tgt).unwrap(),
        &plain.forward(&src, &tgt).unwrap(),
    );
    assert_eq!(diff, 0.0, "the same function");
    // A shared weight's gradient is the sum of its encoder and decoder uses.
    let (gs, gp) =
        (ed_gradients(&shared, &shared_store), ed_gradients(&plain, &plain_store));
    let weight = "ed.encoder.1.attn.qkv.weight";
    let both: Vec<f32> = gp[weight]
        .iter()
        .zip(&gp["ed.decoder.1.attn.qkv.weight"])
        .map(|(a, b)| a + b)
        .collect();
    let worst = gs[weight]
        .iter()
        .zip(&both)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = both.iter().map(|x| x.abs()).fold(0f32, f32::max);
    assert!(scale > 0.0 && worst <= 1e-5 * scale, "{worst} vs {scale}");
    let enc_only = gp[weight]
        .iter()
        .zip(&gs[weight])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(enc_only > 1e-3 * scale, "the decoder's use contributes");
}

#[test]
fn forward_and_backward_heads_never_read_the_future_or_the_past() {
    let cfg = small(PositionKind::Learned, false, 4);
    let (_, model) = build(DecoderOnly::new, &cfg, 5, "dec");
    let (h, t) = (cfg.n_heads, 8);
    let mask = MaskKind::ForwardBackward { heads: h, forward: h / 2 };
    let ids = random_ids(&mut rng::seeded(1), 2, t, cfg.vocab_size);
    let out = model.run(&ids, &mask, Forward { cache: None, trace: true }).unwrap();
    for layer in &out.layers {
        let probs: Vec<f32> =
            layer.attn.probs.flatten_all().unwrap().to_vec1().unwrap();
        for b in 0..2 {
            for head in 0..h {
                for i in 0..t {
                    let row = &probs[((b * h + head) * t + i) * t..][..t];
                    for (j, &p) in row.iter().enumerate() {
                        let open = if head < h / 2 { j <= i } else { j >= i };
                        assert_eq!(p > 0.0, open, "head {head}: {i} -> {j} = {p}");
                    }
                }
            }
        }
    }
    // The layer as a whole reads both ways: changing the last token changes the
    // first output.
    let v: Vec<u32> = ids.flatten_all().unwrap().to_vec1().unwrap();
    let mut w = v.clone();
    w[t - 1] = (w[t - 1] + 1) % cfg.vocab_size as u32;
    let ids2 = Tensor::from_vec(w, (2, t), &transformer::DEVICE).unwrap();
    let (a, b) =
        (model.forward(&ids, &mask).unwrap(), model.forward(&ids2, &mask).unwrap());
    assert!(max_abs_diff(&a.i((0, 0)).unwrap(), &b.i((0, 0)).unwrap()) > 0.0);
}

#[test]
fn flop_formulas_equal_the_counted_matmuls() {
    for cfg in configs() {
        let (_, dec) = build(DecoderOnly::new, &cfg, 0, "dec");
        let (b, t) = (3, 10);
        let ids = random_ids(&mut rng::seeded(1), b, t, cfg.vocab_size);
        let (_, counted) =
            flops::count(|| dec.forward(&ids, &MaskKind::Causal).unwrap());
        assert_eq!(
            counted,
            (b * t) as u64 * cfg.decoder_only_flops_per_token(t),
            "{cfg:?}"
        );

        let (_, ed) = build(EncoderDecoder::new, &cfg, 0, "ed");
        let (src, tgt) = sources_and_targets(&cfg, 2, b, (7, 5));
        let (_, counted) = flops::count(|| ed.forward(&src, &tgt).unwrap());
        assert_eq!(counted, b as u64 * cfg.encoder_decoder_flops(7, 5), "{cfg:?}");
        let (_, shared) = build(EncoderDecoder::shared, &cfg, 0, "ed");
        let (_, counted) = flops::count(|| shared.forward(&src, &tgt).unwrap());
        assert_eq!(
            counted,
            b as u64 * cfg.encoder_decoder_flops(7, 5),
            "shared weights, same compute"
        );
    }
}

#[test]
fn same_seed_same_weights_different_seed_different_weights() {
    let cfg = small(PositionKind::Learned, false, 4);
    let w = |seed| {
        let (s, _) = build(DecoderOnly::new, &cfg, seed, "dec");
        s.tensors()["dec.blocks.0.attn.qkv.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(w(5), w(5));
    assert_ne!(w(5), w(6));
}

/// Perturb the token at `pos` and report which output positions changed.
fn changed_positions(
    model: &DecoderOnly,
    mask: &MaskKind,
    t: usize,
    pos: usize,
) -> Vec<bool> {
    let mut r = rng::seeded(9);
    let ids = random_ids(&mut r, 1, t, model.cfg.vocab_size);
    let mut v = ids.flatten_all().unwrap().to_vec1::<u32>().unwrap();
    v[pos] = (v[pos] + 1) % model.cfg.vocab_size as u32;
    let ids2 = Tensor::from_vec(v, (1, t), &transformer::DEVICE).unwrap();
    let a = model.forward(&ids, mask).unwrap();
    let b = model.forward(&ids2, mask).unwrap();
    (0..t)
        .map(|i| max_abs_diff(&a.i((0, i)).unwrap(), &b.i((0, i)).unwrap()) > 0.0)
        .collect()
}

#[test]
fn causal_outputs_never_depend_on_later_tokens_prefix_outputs_do_inside_the_prefix()
{
    let cfg = small(PositionKind::Learned, false, 4);
    let (_, model) = build(DecoderOnly::new, &cfg, 3, "dec");
    let (t, k) = (12, 5);
    // Change token 3: under the causal mask only positions >= 3 may change.
    let c = changed_positions(&model, &MaskKind::Causal, t, 3);
    assert_eq!(c, (0..t).map(|i| i >= 3).collect::<Vec<_>>());
    // Under a prefix of 5, token 3 is in the prefix: every position changes.
    let p = changed_positions(&model, &MaskKind::prefix(k), t, 3);
    assert!(p.iter().all(|&x| x), "{p:?}");
    // Token 8 is after the prefix: positions before it cannot change, under either
    // mask.
    let p = changed_positions(&model, &MaskKind::prefix(k), t, 8);
    assert_eq!(p, (0..t).map(|i| i >= 8).collect::<Vec<_>>());
}

#[test]
fn traced_attention_probabilities_respect_the_mask() {
    let cfg = small(PositionKind::Sinusoidal, true, 2);
    let (_, model) = build(DecoderOnly::new, &cfg, 4, "dec");
    let t = 9;
    let ids = random_ids(&mut rng::seeded(1), 2, t, cfg.vocab_size);
    for mask in [
        MaskKind::Bidirectional,
        MaskKind::Causal,
        MaskKind::prefix(4),
        MaskKind::Prefix(vec![2, 6]),
    ] {
        let out =
            model.run(&ids, &mask, Forward { cache: None, trace: true }).unwrap();
        assert_eq!(out.layers.len(), cfg.n_layers);
        for layer in &out.layers {
            assert_eq!(layer.attn.probs.dims(), &[2, cfg.n_heads, t, t]);
            let probs: Vec<f32> =
                layer.attn.probs.flatten_all().unwrap().to_vec1().unwrap();
            for b in 0..2 {
                let allowed = mask.matrix(b, t, t, 0);
                for h in 0..cfg.n_heads {
                    for i in 0..t {
                        let row =
                            &probs[((b * cfg.n_heads + h) * t + i) * t..][..t];
                        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                        for j in 0..t {
                            assert_eq!(
                                row[j] > 0.0,
                                allowed[i][j],
                                "{mask:?} b{b} h{h} i{i} j{j}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn cached_decoding_equals_full_recomputation() {
    for (mask, kv) in
        [(MaskKind::Causal, 4), (MaskKind::prefix(4), 2), (MaskKind::Causal, 1)]
    {
        let cfg = small(PositionKind::Learned, false, kv);
        let (_, model) = build(DecoderOnly::new, &cfg, 11, "dec");
        let t = 10;
        let ids = random_ids(&mut rng::seeded(2), 2, t, cfg.vocab_size);
        let full = model.forward(&ids, &mask).unwrap();
        // Feed the first 4 tokens at once (the prefix), then one token at a time.
        let mut cache: Vec<KvCache> = Vec::new();
        let mut pieces = vec![
            model
                .run(
                    &ids.narrow(1, 0, 4).unwrap(),
                    &mask,
                    Forward { cache: Some(&mut cache), trace: false },
                )
                .unwrap()
                .logits,
        ];
        for i in 4..t {
            let step = ids.narrow(1, i, 1).unwrap();
            pieces.push(
                model
                    .run(
                        &step,
                        &mask,
                        Forward { cache: Some(&mut cache), trace: false },
                    )
                    .unwrap()
                    .logits,
            );
        }
        let inc = Tensor::cat(&pieces, 1).unwrap();
        assert!(
            max_abs_diff(&full, &inc) < 1e-5,
            "{mask:?}: {}",
            max_abs_diff(&full, &inc)
        );
        assert_eq!(cache[0].len(), t);
        assert_eq!(cache[0].bytes(), 2 * 2 * kv * cfg.head_dim() * t * 4);
    }
}

#[test]
fn encoder_decoder_cached_decoding_equals_teacher_forcing() {
    let cfg = small(PositionKind::Learned, true, 2);
    let (_, model) = build(EncoderDecoder::new, &cfg, 12, "ed");
    let (src, tgt) = sources_and_targets(&cfg, 3, 2, (7, 6));
    let full = model.forward(&src, &tgt).unwrap();
    let (enc, _) = model.encode(&src, false).unwrap();
    let cross = model.cross_kv(&enc).unwrap();
    let mut cache = Vec::new();
    let pieces: Vec<Tensor> = (0..6)
        .map(|i| {
            let step = tgt.narrow(1, i, 1).unwrap();
            model
                .decode(
                    &step,
                    &cross,
                    Forward { cache: Some(&mut cache), trace: false },
                )
                .unwrap()
                .logits
        })
        .collect();
    assert!(max_abs_diff(&full, &Tensor::cat(&pieces, 1).unwrap()) < 1e-5);
}

#[test]
fn too_long_sequences_are_an_error_not_a_panic() {
    let cfg = small(PositionKind::Learned, false, 4);
    let (_, model) = build(DecoderOnly::new, &cfg, 0, "dec");
    let ids = random_ids(&mut rng::seeded(1), 1, cfg.max_len + 1, cfg.vocab_size);
    let err = model.forward(&ids, &MaskKind::Causal).unwrap_err();
    assert!(err.to_string().contains("exceeds max_len"), "{err}");
    let bad = Config { n_heads: 3, ..cfg };
    assert!(DecoderOnly::new(&bad, ParamStore::new(0).vb().pp("x")).is_err());
}

#[test]
fn checkpoints_round_trip_and_reject_mismatches() {
    let cfg = small(PositionKind::Learned, false, 4);
    let (a, ma) = build(DecoderOnly::new, &cfg, 1, "dec");
    let (dir, path) = saved(&a);
    let (b, mb) = build(DecoderOnly::new, &cfg, 2, "dec");
    let ids = random_ids(&mut rng::seeded(1), 1, 8, cfg.vocab_size);
    assert!(
        max_abs_diff(
            &ma.forward(&ids, &MaskKind::Causal).unwrap(),
            &mb.forward(&ids, &MaskKind::Causal).unwrap()
        ) > 0.0
    );
    b.load(&path).unwrap();
    assert_eq!(
        max_abs_diff(
            &ma.forward(&ids, &MaskKind::Causal).unwrap(),
            &mb.forward(&ids, &MaskKind::Causal).unwrap()
        ),
        0.0
    );

    let (wider, _) =
        build(DecoderOnly::new, &Config { d_ff: 64, ..cfg.clone() }, 0, "dec");
    let err = wider.load(&path).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
    let (other, _) = build(DecoderOnly::new, &cfg, 0, "other");
    assert!(other.load(&path).unwrap_err().to_string().contains("missing"));
    std::fs::write(dir.path().join("junk"), b"not a checkpoint").unwrap();
    assert!(other.load(&dir.path().join("junk")).is_err());
}

#[test]
fn a_padded_source_batch_gives_each_row_its_unpadded_logits() {
    // Two sources of lengths 7 and 4, padded to 7: with the padded mask, the second
    // row's logits equal those of running it alone, unpadded; without it, they
    // would not.
    let cfg = small(PositionKind::Learned, false, 2);
    let (_, ed) = build(EncoderDecoder::new, &cfg, 5, "ed");
    let (src, tgt) = sources_and_targets(&cfg, 6, 2, (7, 3));
    let padded = ed.forward_padded(&src, &[7, 4], &tgt).unwrap();
    for (row, len) in [(0usize, 7usize), (1, 4)] {
        let alone = ed
            .forward(
                &src.i((row..row + 1, 0..len)).unwrap(),
                &tgt.i(row..row + 1).unwrap(),
            )
            .unwrap();
        let d = max_abs_diff(&padded.i(row..row + 1).unwrap(), &alone);
        assert!(d < 1e-5, "row {row}: {d}");
    }
    let unmasked = ed.forward(&src, &tgt).unwrap();
    let alone =
        ed.forward(&src.i((1..2, 0..4)).unwrap(), &tgt.i(1..2).unwrap()).unwrap();
    assert!(
        max_abs_diff(&unmasked.i(1..2).unwrap(), &alone) > 1e-4,
        "the padding should matter without the mask"
    );
}

#[test]
fn a_checkpoint_loads_into_candle_nns_var_builder() {
    // Chapter 4 saves its pretrained models this way; any candle user can read them
    // back by name.
    let cfg = small(PositionKind::Learned, false, 2);
    let (s, _) = build(DecoderOnly::new, &cfg, 8, "model");
    let (_dir, path) = saved(&s);
    let vb = candle_nn::VarBuilder::from_buffered_safetensors(
        std::fs::read(&path).unwrap(),
        candle_core::DType::F32,
        &transformer::DEVICE,
    )
    .unwrap();
    for (name, var) in s.vars() {
        let loaded = vb.get(var.dims(), &name).unwrap();
        assert_eq!(max_abs_diff(&loaded, var.as_tensor()), 0.0, "{name}");
    }
}

#[test]
fn a_model_builds_from_a_checkpoint_the_candle_way() {
    // The constructor that creates fresh variables in a store also builds the model
    // from a file, through candle-nn's memory-mapped VarBuilder: the same logits.
    let cfg = small(PositionKind::Sinusoidal, true, 2);
    let (s, trained) = build(EncoderDecoder::new, &cfg, 9, "model");
    let (_dir, path) = saved(&s);
    // SAFETY: the file is ours, in a fresh temporary folder, and is not modified
    // while it is mapped.
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[&path],
            candle_core::DType::F32,
            &transformer::DEVICE,
        )
    }
    .unwrap();
    let loaded = EncoderDecoder::new(&cfg, vb.pp("model")).unwrap();
    let (src, tgt) = sources_and_targets(&cfg, 10, 2, (7, 5));
    assert_eq!(
        max_abs_diff(
            &trained.forward(&src, &tgt).unwrap(),
            &loaded.forward(&src, &tgt).unwrap()
        ),
        0.0
    );
    // A checkpoint of another shape is refused by name and shape.
    let wider = Config { d_ff: 2 * cfg.d_ff, ..cfg.clone() };
    let err = EncoderDecoder::new(&wider, vb.pp("model")).err().unwrap();
    assert!(format!("{err:#}").contains("shape"), "{err:#}");
}

#[test]
fn a_store_refuses_a_name_twice_and_initialisations_it_cannot_seed() {
    let s = ParamStore::new(0);
    let vb = s.vb();
    vb.get_with_hints(3, "w", candle_nn::Init::Const(0.0)).unwrap();
    let again = vb.get_with_hints(3, "w", candle_nn::Init::Const(0.0));
    assert!(again.unwrap_err().to_string().contains("defined twice"));
    let uniform = candle_nn::Init::Uniform { lo: -1.0, up: 1.0 };
    let err = vb.get_with_hints(3, "u", uniform).unwrap_err().to_string();
    assert!(err.contains("not supported"), "{err}");
    let f64_vb = candle_nn::VarBuilder::from_backend(
        Box::new(s.clone()),
        candle_core::DType::F64,
        transformer::DEVICE,
    );
    let err = f64_vb.get(3, "x").unwrap_err().to_string();
    assert!(err.contains("f32"), "{err}");
    assert_eq!(s.num_params(), 3);
}
