//! The masks the book draws are the masks the models use: every attention
//! probability the models compute is exactly zero where `MaskKind::allows` says no,
//! and positive elsewhere.

use candle_core::Tensor;
use ch01_four_masks::models::{Models, example, run_ed, run_stack};
use ch01_four_masks::sharing::reach;
use ch01_four_masks::{Args, Chapter, Settings};
use proptest::prelude::*;
use transformer::MaskKind;
use transformer::chapter::Preset;

/// `[1, heads, t_q, t_k]` → per head, per query, per key.
fn probs(t: &Tensor) -> Vec<Vec<Vec<f32>>> {
    t.squeeze(0).unwrap().to_vec3::<f32>().unwrap()
}

fn assert_follows(t: &Tensor, allows: impl Fn(usize, usize) -> bool, what: &str) {
    for (h, head) in probs(t).iter().enumerate() {
        for (i, row) in head.iter().enumerate() {
            let sum: f32 = row.iter().sum();
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "{what}: head {h} row {i} sums to {sum}"
            );
            for (j, &p) in row.iter().enumerate() {
                assert_eq!(
                    p > 0.0,
                    allows(i, j),
                    "{what}: head {h}, query {i}, key {j}: p = {p}"
                );
                assert!(p >= 0.0);
            }
        }
    }
}

/// The quick models on the example of `n` tokens, with a prefix of `k` in `1..n`
/// drawn from `k_frac` in `[0, 1)`.
fn setup(n: usize, k_frac: f64) -> (usize, Settings, Models, Vec<u32>) {
    let k = 1 + ((n - 1) as f64 * k_frac) as usize % (n - 1);
    let args = Args { seq_len: Some(n), prefix_len: Some(k) };
    let s = Settings::new(Preset::Quick, &args).unwrap();
    let models = Models::new(&s.config).unwrap();
    let (ids, _) = example(&s);
    (k, s, models, ids)
}

/// The three masks one decoder-only stack runs with, the prefix `k` tokens long.
fn masks(k: usize) -> [MaskKind; 3] {
    [MaskKind::Bidirectional, MaskKind::Causal, MaskKind::prefix(k)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn models_attend_exactly_where_the_masks_allow(n in 2usize..14, k_frac in 0.0f64..1.0) {
        let (k, s, models, ids) = setup(n, k_frac);
        for mask in masks(k) {
            let out = run_stack(&models.stack, &ids, &mask).unwrap();
            prop_assert_eq!(out.layers.len(), s.config.n_layers);
            for (l, layer) in out.layers.iter().enumerate() {
                assert_follows(&layer.attn.probs, |i, j| mask.allows(0, i, j), &format!("{mask:?} layer {l}"));
            }
        }
        let (enc, dec) = run_ed(&models.ed, &ids[..k], &ids[k..]).unwrap();
        for (l, layer) in enc.iter().enumerate() {
            assert_follows(&layer.attn.probs, |_, _| true, &format!("encoder layer {l}"));
        }
        for (l, layer) in dec.layers.iter().enumerate() {
            assert_follows(&layer.attn.probs, |i, j| j <= i, &format!("decoder self layer {l}"));
            let cross = layer.cross_probs.as_ref().unwrap();
            prop_assert_eq!(cross.dims(), &[1, s.config.n_heads, n - k, k]);
            assert_follows(cross, |_, _| true, &format!("cross layer {l}"));
        }
    }

    #[test]
    fn a_token_reaches_exactly_the_outputs_the_mask_allows(n in 2usize..10, k_frac in 0.0f64..1.0) {
        // Through every layer: changing token j moves output i if and only if i may
        // attend to j.
        let (k, _, models, ids) = setup(n, k_frac);
        for mask in masks(k) {
            let effect = reach(&models.stack, &ids, &mask).unwrap();
            for i in 0..n {
                for j in 0..n {
                    prop_assert_eq!(effect[i][j].is_some(), mask.allows(0, i, j), "{:?} ({}, {})", mask, i, j);
                }
            }
        }
    }
}

type Rule = Box<dyn Fn(usize, usize) -> bool>;

#[test]
fn the_figures_grey_cells_are_the_blocked_cells() {
    let s = Settings::new(Preset::Quick, &Args::default()).unwrap();
    let models = Models::new(&s.config).unwrap();
    let maps = ch01_four_masks::maps::attention_maps(&models, &s).unwrap();
    let k = s.prefix_len;
    let expect: [(&str, Rule); 6] = [
        ("encoder_only.svg", Box::new(|_, _| true)),
        ("causal.svg", Box::new(|i, j| j <= i)),
        ("prefix_lm.svg", Box::new(move |i, j| j <= i || j < k)),
        ("ed_encoder.svg", Box::new(|_, _| true)),
        ("ed_decoder.svg", Box::new(|i, j| j <= i)),
        ("ed_cross.svg", Box::new(|_, _| true)),
    ];
    assert_eq!(maps.len(), expect.len());
    for (map, (file, allows)) in maps.iter().zip(expect) {
        assert_eq!(map.file, file);
        for (i, row) in map.probs.iter().enumerate() {
            for (j, p) in row.iter().enumerate() {
                assert_eq!(p.is_some(), allows(i, j), "{file} ({i}, {j})");
            }
        }
    }
}

#[test]
fn causal_and_prefix_runs_share_every_weight() {
    let s = Settings::new(Preset::Quick, &Args::default()).unwrap();
    let models = Models::new(&s.config).unwrap();
    let before = models.stack_store.tensors();
    let (ids, _) = example(&s);
    run_stack(&models.stack, &ids, &MaskKind::Causal).unwrap();
    run_stack(&models.stack, &ids, &MaskKind::prefix(s.prefix_len)).unwrap();
    assert_eq!(models.stack_store.num_params(), s.config.decoder_only_params());
    assert_eq!(
        models.stack_store.tensors().len(),
        before.len(),
        "no variable is added for a mask"
    );
}
