//! The fused kernels compute what the plain differentiable operations compute: same
//! outputs, same gradients (within a few f32 ulps), and gradients that match finite
//! differences taken in f64 arithmetic, with respect to every input and parameter.
//! Small shapes check the arithmetic; shapes that span several parallel tasks
//! (hundreds of rows, tens of thousands of elements) check how the work is split
//! and how partial sums are added up again. Each test builds the layer twice from
//! the same variables, once with every fused kernel and once with none.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};
use candle_nn::{Init, Module, VarBuilder};
use common::{random, random_ids, small};
use proptest::prelude::*;
use transformer::attention::softmax_for;
use transformer::kernels::{self, Kernels};
use transformer::layers::{LayerNorm, Linear, softmax_last};
use transformer::loss::{masked_cross_entropy, token_nll, token_nll_reference};
use transformer::train::{AdamW, TrainConfig};
use transformer::{
    Config, DEVICE, DecoderOnly, MaskKind, ParamStore, PositionKind, SelfAttention,
    rng,
};

/// Every fused kernel, or none.
fn kernels(fused: bool) -> Kernels {
    if fused { Kernels::FUSED } else { Kernels::PLAIN }
}

/// A `VarBuilder` over `tensors` themselves, not copies: a layer built from it
/// computes with them, so gradients flow to them.
fn builder(tensors: &[(&str, &Tensor)], dtype: DType) -> VarBuilder<'static> {
    let map: HashMap<String, Tensor> =
        tensors.iter().map(|(n, t)| (n.to_string(), (*t).clone())).collect();
    VarBuilder::from_tensors(map, dtype, &DEVICE)
}

fn var(seed: u64, shape: &[usize], std: f64) -> Var {
    Var::from_tensor(&random(seed, shape, std)).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest absolute difference, relative to the largest magnitude of `b`.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (values(a), values(b));
    let scale = b.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Output and gradients (with respect to `vars`) of `sum(f(fused) ⊙ w)`, where
/// `f(true)` computes through the fused kernel and `f(false)` through the
/// reference code.
fn run(
    fused: bool,
    vars: &[&Var],
    w: &Tensor,
    f: &dyn Fn(bool) -> Tensor,
) -> (Tensor, Vec<Tensor>) {
    let y = f(fused);
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let g = vars
        .iter()
        .map(|v| grads.get(v.as_tensor()).expect("a gradient").clone())
        .collect();
    (y, g)
}

/// GELU through the fused kernel or candle's.
fn gelu(fused: bool, x: &Tensor) -> Tensor {
    if fused { kernels::gelu(x) } else { x.gelu() }.unwrap()
}

/// Each target's negative log-likelihood, through the fused kernel or the
/// reference.
fn nll(fused: bool, logits: &Tensor, targets: &Tensor) -> Tensor {
    if fused {
        token_nll(logits, targets)
    } else {
        token_nll_reference(logits, targets)
    }
    .unwrap()
}

/// Fused and plain agree on the output and on every gradient.
fn assert_fused_equals_plain(
    what: &str,
    vars: &[&Var],
    w: &Tensor,
    f: &dyn Fn(bool) -> Tensor,
    tol: f32,
) {
    let (y1, g1) = run(true, vars, w, f);
    let (y0, g0) = run(false, vars, w, f);
    let d = rel_diff(&y1, &y0);
    assert!(d < tol, "{what}: outputs differ by {d:e}");
    for (i, (a, b)) in g1.iter().zip(&g0).enumerate() {
        let d = rel_diff(a, b);
        assert!(d < tol, "{what}: gradient {i} differs by {d:e}");
    }
}

/// The fused gradients of `sum(f(true) ⊙ w)` with respect to every one of `vars`,
/// against central differences of the same function computed in f64 by `f64_fn`
/// (given every var in f64, in order, and written with the reference code), at a
/// few coordinates of each.
fn assert_matches_finite_differences(
    what: &str,
    vars: &[&Var],
    w: &Tensor,
    f: &dyn Fn(bool) -> Tensor,
    f64_fn: &dyn Fn(&[Tensor]) -> Tensor,
) {
    let (_, grads) = run(true, vars, w, f);
    let x64: Vec<Tensor> =
        vars.iter().map(|v| v.as_tensor().to_dtype(DType::F64).unwrap()).collect();
    let w64 = w.to_dtype(DType::F64).unwrap();
    let loss = |ts: &[Tensor]| -> f64 {
        (f64_fn(ts) * &w64).unwrap().sum_all().unwrap().to_scalar().unwrap()
    };
    let h = 1e-5;
    for (vi, g) in grads.iter().enumerate() {
        let g = values(g);
        let x0: Vec<f64> = x64[vi].flatten_all().unwrap().to_vec1().unwrap();
        let gmax = g.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let at = |xs: &[f64]| {
            let mut ts = x64.clone();
            ts[vi] = Tensor::from_slice(xs, x64[vi].shape(), &DEVICE).unwrap();
            loss(&ts)
        };
        for idx in (0..x0.len()).step_by(x0.len() / 7 + 1) {
            let (mut up, mut down) = (x0.clone(), x0.clone());
            up[idx] += h;
            down[idx] -= h;
            let numeric = (at(&up) - at(&down)) / (2.0 * h);
            let err = (numeric - f64::from(g[idx])).abs() / f64::from(gmax);
            assert!(
                err < 1e-4,
                "{what} var {vi}[{idx}]: fused {} vs finite difference {numeric}",
                g[idx]
            );
        }
    }
}

/// What each kernel's case checks: fused and plain agree on the output and every
/// gradient, to 2e-6 on the shapes checked against finite differences too (`fd`,
/// against `f64_fn`) and to 1e-5 on the others.
fn assert_fused_case(
    what: &str,
    fd: bool,
    vars: &[&Var],
    w: &Tensor,
    f: &dyn Fn(bool) -> Tensor,
    f64_fn: &dyn Fn(&[Tensor]) -> Tensor,
) {
    assert_fused_equals_plain(what, vars, w, f, if fd { 2e-6 } else { 1e-5 });
    if fd {
        assert_matches_finite_differences(what, vars, w, f, f64_fn);
    }
}

fn layer_norm_case(x_shape: &[usize], param_shape: &[usize], seed: u64, fd: bool) {
    let d = *x_shape.last().unwrap();
    let x = var(seed, x_shape, 1.5);
    let gain = Var::from_tensor(
        &(random(seed + 1, &[d], 0.3) + 1.0).unwrap().reshape(param_shape).unwrap(),
    )
    .unwrap();
    let bias = Var::from_tensor(&random(seed + 2, param_shape, 0.3)).unwrap();
    let (g, b) = (gain.as_tensor(), bias.as_tensor());
    let w = random(seed + 3, x_shape, 1.0);
    let f = |fused: bool| {
        let ln = LayerNorm::new(g.clone(), b.clone(), &kernels(fused));
        ln.forward(x.as_tensor()).unwrap()
    };
    let plain64 = |ts: &[Tensor]| {
        LayerNorm::new(ts[1].clone(), ts[2].clone(), &Kernels::PLAIN)
            .forward(&ts[0])
            .unwrap()
    };
    assert_fused_case("layer_norm", fd, &[&x, &gain, &bias], &w, &f, &plain64);
}

#[test]
fn fused_layer_norm_equals_the_plain_one_and_finite_differences() {
    layer_norm_case(&[3, 5, 16], &[16], 1, true);
    // [1, d] parameters get [1, d] gradients.
    layer_norm_case(&[2, 3, 8], &[1, 8], 11, true);
    // 330 rows: 21 tasks, the last one partial, whose gain and bias partials are
    // summed.
    layer_norm_case(&[3, 110, 48], &[48], 21, false);
}

/// Rows far from zero (mean 1000, spread 0.1): the fused variance is the mean
/// square of the deviations, as in the plain path, not the mean square minus the
/// squared mean, which would cancel to noise here.
#[test]
fn fused_layer_norm_keeps_its_accuracy_far_from_zero() {
    let d = 64;
    let x = (random(31, &[8, d], 0.1) + 1000.0).unwrap();
    let gain = Tensor::ones(d, DType::F32, &transformer::DEVICE).unwrap();
    let bias = Tensor::zeros(d, DType::F32, &transformer::DEVICE).unwrap();
    let run = |k: &Kernels| {
        LayerNorm::new(gain.clone(), bias.clone(), k).forward(&x).unwrap()
    };
    let diff = common::max_abs_diff(&run(&kernels(true)), &run(&Kernels::PLAIN));
    assert!(diff < 1e-2, "fused and plain LayerNorm differ by {diff}");
}

/// What attention computes for a softmax: scale, add the mask, softmax (fused or
/// the reference).
fn scaled_masked_softmax(
    fused: bool,
    x: &Tensor,
    scale: f64,
    mask: Option<&Tensor>,
) -> Tensor {
    softmax_for(&kernels(fused))(x, scale, mask).unwrap()
}

/// Softmax over `[b, h, t_q, t_k]` scores under `mask`, whose queries sit at
/// `offset`.
fn softmax_case(
    mask: &MaskKind,
    (b, h, t_q, t_k): (usize, usize, usize, usize),
    offset: usize,
    fd: bool,
) {
    let x = var(5, &[b, h, t_q, t_k], 2.0);
    let w = random(6, &[b, h, t_q, t_k], 1.0);
    let m = mask.additive(b, t_q, t_k, offset).unwrap();
    let scale = 0.37;
    let f = |fused| scaled_masked_softmax(fused, x.as_tensor(), scale, m.as_ref());
    let plain64 =
        |ts: &[Tensor]| scaled_masked_softmax(false, &ts[0], scale, m.as_ref());
    assert_fused_case("softmax", fd, &[&x], &w, &f, &plain64);
    // Blocked entries are exactly zero, allowed ones positive.
    let (y, _) = run(true, &[&x], &w, &f);
    let y = values(&y);
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..t_q {
                for j in 0..t_k {
                    let p = y[((bi * h + hi) * t_q + i) * t_k + j];
                    let open = mask.allows_head(bi, hi, offset + i, j);
                    assert_eq!(
                        p > 0.0,
                        open,
                        "{mask:?} row {bi} head {hi} ({i}, {j})"
                    );
                }
            }
        }
    }
}

#[test]
fn fused_masked_softmax_equals_the_plain_one_and_finite_differences() {
    for mask in
        [MaskKind::Causal, MaskKind::Prefix(vec![2, 5]), MaskKind::Bidirectional]
    {
        softmax_case(&mask, (2, 3, 7, 7), 0, true);
        // One query against cached keys, as in decoding.
        softmax_case(&mask, (2, 3, 1, 6), 5, true);
        // 360 rows of 70 keys (6 tasks of 64 rows, the last partial); 60 queries at
        // offset 10.
        softmax_case(&mask, (2, 3, 60, 70), 10, false);
    }
    softmax_case(&MaskKind::Prefix(vec![3, 50]), (2, 3, 60, 70), 10, false);
    // One mask per head: forward-causal and backward-causal heads.
    softmax_case(
        &MaskKind::ForwardBackward { heads: 3, forward: 1 },
        (2, 3, 7, 7),
        0,
        true,
    );
    softmax_case(
        &MaskKind::ForwardBackward { heads: 3, forward: 2 },
        (2, 3, 60, 60),
        0,
        false,
    );
    // Rows of 2,500 keys: sums over three blocks of 1,024, the last one partial.
    softmax_case(&MaskKind::Causal, (1, 2, 3, 2_500), 2_490, false);
    softmax_case(&MaskKind::Bidirectional, (1, 2, 3, 2_500), 0, false);
}

#[test]
fn fused_gelu_equals_the_plain_one_and_finite_differences() {
    let x = var(7, &[4, 33], 3.0);
    let w = random(8, &[4, 33], 1.0);
    let f = |fused| gelu(fused, x.as_tensor());
    assert_fused_equals_plain("gelu", &[&x], &w, &f, 5e-6);
    let plain64 = |ts: &[Tensor]| ts[0].gelu().unwrap();
    assert_matches_finite_differences("gelu", &[&x], &w, &f, &plain64);
    // 50,250 elements: four tasks, the last one partial.
    let x = var(9, &[201, 250], 3.0);
    let w = random(10, &[201, 250], 1.0);
    let f = |fused| gelu(fused, x.as_tensor());
    assert_fused_equals_plain("gelu", &[&x], &w, &f, 5e-6);
}

#[test]
fn fused_cross_entropy_equals_the_plain_one_and_finite_differences() {
    for ((b, t, v), fd) in [
        ((3, 5, 11), true),
        ((2, 1, 11), true),
        ((3, 110, 37), false),
        ((2, 3, 3_001), false),
    ] {
        let x = var(9, &[b, t, v], 3.0);
        let targets = random_ids(&mut rng::seeded(10), b, t, v);
        let w = random(11, &[b, t], 1.0);
        let f = |fused| nll(fused, x.as_tensor(), &targets);
        let plain64 = |ts: &[Tensor]| nll(false, &ts[0], &targets);
        assert_fused_case("cross_entropy", fd, &[&x], &w, &f, &plain64);
    }
}

/// The whole model: every parameter's gradient with all kernels equals the plain
/// one.
#[test]
fn fused_model_gradients_equal_the_plain_ones() {
    let cfg = small(PositionKind::Learned, false, 2);
    let ids = random_ids(&mut rng::seeded(4), 2, 12, cfg.vocab_size);
    let w = Tensor::from_vec(
        (0..24).map(|i| (i % 3) as f32).collect::<Vec<_>>(),
        (2, 12),
        &DEVICE,
    )
    .unwrap();
    let grads = |on: bool| {
        // The same seed: the same weights in both models.
        let s = ParamStore::new(3);
        let cfg = Config { kernels: kernels(on), ..cfg.clone() };
        let m = DecoderOnly::new(&cfg, s.vb().pp("dec")).unwrap();
        let logits = m.forward(&ids, &MaskKind::prefix(4)).unwrap();
        let loss = if on {
            masked_cross_entropy(&logits, &ids, &w).unwrap()
        } else {
            let nll = token_nll_reference(&logits, &ids).unwrap();
            let total = w.sum_all().unwrap();
            (nll * &w).unwrap().sum_all().unwrap().broadcast_div(&total).unwrap()
        };
        let g = loss.backward().unwrap();
        let l: f32 = loss.to_scalar().unwrap();
        (
            l,
            s.vars()
                .into_iter()
                .map(|(n, v)| (n, g.get(v.as_tensor()).unwrap().clone()))
                .collect::<Vec<_>>(),
        )
    };
    let (l1, g1) = grads(true);
    let (l0, g0) = grads(false);
    assert!((l1 - l0).abs() < 1e-6, "loss {l1} vs {l0}");
    let names = |g: &[(String, Tensor)]| {
        g.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&g1), names(&g0), "both models have the same variables");
    for ((name, a), (_, b)) in g1.iter().zip(&g0) {
        let d = rel_diff(a, b);
        assert!(d < 1e-4, "{name}: fused gradient differs by {d:e}");
    }
}

/// Every chapter runs the defaults, and its results were generated with every
/// kernel on: the default must stay all of them, for the model and the optimiser.
#[test]
fn the_default_kernels_are_all_the_fused_ones() {
    assert_eq!(Kernels::default(), Kernels::FUSED);
    assert_eq!(small(PositionKind::Learned, false, 2).kernels, Kernels::FUSED);
    assert_eq!(Config::tiny().kernels, Kernels::FUSED);
    assert_eq!(TrainConfig::default().kernels, Kernels::FUSED);
    let every = Kernels::FUSED;
    assert!(
        every.linear
            && every.layer_norm
            && every.softmax
            && every.gelu
            && every.attention
            && every.adamw
    );
}

/// The in-place AdamW step moves the parameters as the plain one does. (On a
/// quadratic loss: in a real model some gradients are pure rounding noise, such as
/// the key biases', which softmax ignores, and Adam's normalisation turns such
/// noise into full-size steps.) The matrix has 42,000 values: three tasks, the last
/// one partial.
#[test]
fn fused_adamw_equals_the_plain_one() {
    for (rows, cols) in [(7, 5), (200, 210)] {
        let params = |on: bool| {
            let s = ParamStore::new(5);
            let vb = s.vb().pp("p");
            let normal = Init::Randn { mean: 0.0, stdev: 1.0 };
            let a = vb.get_with_hints((rows, cols), "matrix", normal).unwrap();
            let b = vb.get_with_hints(cols, "vector", Init::Const(0.5)).unwrap();
            let (ta, tb) =
                (random(20, &[rows, cols], 1.0), random(21, &[cols], 1.0));
            let cfg = TrainConfig {
                clip: 2.0,
                weight_decay: 0.1,
                kernels: kernels(on),
                ..TrainConfig::default()
            };
            let mut opt = AdamW::new(&s, &cfg).unwrap();
            for _ in 0..4 {
                let loss = ((&a - &ta).unwrap().sqr().unwrap().sum_all().unwrap()
                    + (&b - &tb).unwrap().sqr().unwrap().sum_all().unwrap())
                .unwrap();
                let grads = loss.backward().unwrap();
                opt.step(&grads, 1e-1).unwrap();
            }
            s.vars()
                .into_iter()
                .map(|(n, v)| (n, v.as_tensor().clone()))
                .collect::<Vec<_>>()
        };
        let (fused, plain) = (params(true), params(false));
        for ((name, a), (_, b)) in fused.iter().zip(&plain) {
            let d = rel_diff(a, b);
            assert!(
                d < 1e-6,
                "{name} {rows}×{cols}: parameters differ by {d:e} after 4 steps"
            );
        }
    }
}

/// A linear layer on `x_shape`, with no bias, a `[d_out]` bias or a `[1, d_out]`
/// one.
fn linear_case(
    x_shape: &[usize],
    d_out: usize,
    bias_rank: usize,
    seed: u64,
    fd: bool,
) {
    let d_in = *x_shape.last().unwrap();
    let x = var(seed, x_shape, 1.0);
    let w = var(seed + 1, &[d_out, d_in], 0.3);
    let b = match bias_rank {
        0 => None,
        1 => Some(var(seed + 2, &[d_out], 0.3)),
        _ => Some(var(seed + 2, &[1, d_out], 0.3)),
    };
    let mut out_shape = x_shape.to_vec();
    *out_shape.last_mut().unwrap() = d_out;
    let out = random(seed + 3, &out_shape, 1.0);
    let f = |fused| {
        let bias = b.as_ref().map(|b| b.as_tensor().clone());
        let lin = Linear::new(w.as_tensor().clone(), bias, &kernels(fused));
        lin.forward(x.as_tensor()).unwrap()
    };
    let mut vars = vec![&x, &w];
    vars.extend(b.as_ref());
    let plain64 = |ts: &[Tensor]| {
        Linear::new(ts[1].clone(), ts.get(2).cloned(), &Kernels::PLAIN)
            .forward(&ts[0])
            .unwrap()
    };
    assert_fused_case("linear", fd, &vars, &out, &f, &plain64);
}

#[test]
fn fused_linear_equals_the_plain_one_and_finite_differences() {
    for bias_rank in [1, 0, 2] {
        linear_case(&[3, 5, 16], 24, bias_rank, 12, true);
        // 330 rows: six partial bias sums of 64 rows, the last one partial; d_out ≠
        // d_in.
        linear_case(&[3, 110, 40], 56, bias_rank, 32, false);
    }
    linear_case(&[1, 1, 16], 24, 1, 42, true);
}

/// A self-attention layer with `h` query heads sharing `g` key/value heads of size
/// `hd`.
fn attention_layer(
    h: usize,
    g: usize,
    hd: usize,
    seed: u64,
) -> (ParamStore, SelfAttention, Config) {
    let cfg = Config {
        d_model: h * hd,
        n_heads: h,
        n_kv_heads: g,
        kernels: Kernels::FUSED,
        ..small(PositionKind::Learned, false, g)
    };
    let s = ParamStore::new(seed);
    let attn = SelfAttention::new(&cfg, 0.2, s.vb().pp("a")).unwrap();
    // Non-zero biases, so that their gradients are tested on a general point.
    for (_, v) in s.vars() {
        if v.rank() == 1 {
            v.set(&random(seed + 7, v.dims(), 0.1)).unwrap();
        }
    }
    (s, attn, cfg)
}

/// Fused attention against the plain path, for the input and every parameter:
/// outputs and gradients (and finite differences if `fd`), then the gradients of a
/// second backward pass, which recomputes the probabilities instead of reusing the
/// saved ones.
fn attention_case(
    mask: &MaskKind,
    (b, t): (usize, usize),
    (h, g, hd): (usize, usize, usize),
    fd: bool,
) {
    let (s, attn, cfg) = attention_layer(h, g, hd, 6);
    let x = var(16, &[b, t, cfg.d_model], 1.0);
    let out = random(17, &[b, t, cfg.d_model], 1.0);
    let params = s.vars();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a.qkv.weight", "a.qkv.bias", "a.out.weight", "a.out.bias"]);
    let mut vars = vec![&x];
    vars.extend(params.iter().map(|(_, v)| v));
    // The same layer over the same variables, with no fused kernel.
    let plain_cfg = Config { kernels: Kernels::PLAIN, ..cfg.clone() };
    let named: Vec<(&str, &Tensor)> =
        params.iter().map(|(n, v)| (n.as_str(), v.as_tensor())).collect();
    let plain =
        SelfAttention::new(&plain_cfg, 0.2, builder(&named, DType::F32).pp("a"))
            .unwrap();
    let f = |fused: bool| {
        let layer = if fused { &attn } else { &plain };
        layer.forward(x.as_tensor(), mask, None, false).unwrap().0
    };
    let plain64 = |ts: &[Tensor]| {
        let named: Vec<(&str, &Tensor)> =
            names.iter().copied().zip(&ts[1..]).collect();
        let vb = builder(&named, DType::F64).pp("a");
        let a64 = SelfAttention::new(&plain_cfg, 0.2, vb).unwrap();
        a64.forward(&ts[0], mask, None, false).unwrap().0
    };
    assert_fused_case("attention", fd, &vars, &out, &f, &plain64);
    // Two backward passes through one forward: the second recomputes the
    // probabilities.
    let y = f(true);
    let loss = (&y * &out).unwrap().sum_all().unwrap();
    let (first, second) = (loss.backward().unwrap(), loss.backward().unwrap());
    for (i, v) in vars.iter().enumerate() {
        let (a, b) =
            (first.get(v.as_tensor()).unwrap(), second.get(v.as_tensor()).unwrap());
        assert_eq!(
            values(a),
            values(b),
            "{mask:?}: gradient {i} of the recomputing backward differs"
        );
    }
}

/// An additive mask `[b, h, t, t]` that differs in every batch row and head: each
/// entry blocked (−∞) at random, the diagonal always open so that no row is empty.
fn mask_per_row_and_head(seed: u64, (b, h, t): (usize, usize, usize)) -> Tensor {
    let draw = random(seed, &[b, h, t, t], 1.0);
    let open: Vec<f32> = values(&draw)
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (q, k) = ((i / t) % t, i % t);
            if q == k || v > 0.0 { 0.0 } else { f32::NEG_INFINITY }
        })
        .collect();
    Tensor::from_vec(open, &[b, h, t, t], &DEVICE).unwrap()
}

#[test]
fn fused_softmax_takes_a_mask_per_batch_row_and_head() {
    // Masks shaped [b, h, t, t] (neither shared over the batch nor over the
    // heads), so that every batch row and head must find its own mask row.
    for (b, h, t) in [(2, 3, 7), (3, 2, 40)] {
        let x = var(5, &[b, h, t, t], 2.0);
        let w = random(6, &[b, h, t, t], 1.0);
        let m = mask_per_row_and_head(7, (b, h, t));
        let f = |fused| scaled_masked_softmax(fused, x.as_tensor(), 0.37, Some(&m));
        assert_fused_equals_plain("softmax", &[&x], &w, &f, 1e-5);
    }
}

/// Attention from the fused projection `qkv` (`[b, t, (h + 2g)·hd]`) with plain
/// candle ops: query head `qh` reads key/value head `qh / (h / g)`; the heads come
/// back merged, `[b, t, h·hd]`.
fn plain_attention_from_qkv(
    qkv: &Tensor,
    (h, g, hd): (usize, usize, usize),
    scale: f64,
    mask: &Tensor,
) -> Tensor {
    let (b, t, _) = qkv.dims3().unwrap();
    let heads = |from: usize, n: usize| {
        qkv.narrow(2, from * hd, n * hd)
            .unwrap()
            .reshape((b, t, n, hd))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let (q, k, v) = (heads(0, h), heads(h, g), heads(h + g, g));
    let shared = |x: &Tensor| {
        let per: Vec<Tensor> =
            (0..h).map(|qh| x.narrow(1, qh / (h / g), 1).unwrap()).collect();
        Tensor::cat(&per, 1).unwrap()
    };
    let (k, v) = (shared(&k), shared(&v));
    let scores = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
    let p = softmax_last(&scores.broadcast_add(mask).unwrap()).unwrap();
    p.matmul(&v).unwrap().transpose(1, 2).unwrap().reshape((b, t, h * hd)).unwrap()
}

#[test]
fn fused_attention_takes_a_mask_per_batch_row_and_head() {
    // Masks shaped [b, h, t, t], different in every batch row and head, with and
    // without grouped keys and values; outputs and the gradient with respect to
    // qkv against the plain ops.
    for (b, t, (h, g, hd)) in [(2, 7, (4, 4, 4)), (3, 20, (6, 3, 8))] {
        let qkv = var(21, &[b, t, (h + 2 * g) * hd], 1.0);
        let w = random(22, &[b, t, h * hd], 1.0);
        let m = mask_per_row_and_head(23, (b, h, t));
        let scale = 1.0 / (hd as f64).sqrt();
        let fused =
            kernels::attention(qkv.as_tensor(), h, g, scale, Some(&m)).unwrap();
        let plain =
            plain_attention_from_qkv(qkv.as_tensor(), (h, g, hd), scale, &m);
        assert!(rel_diff(&fused, &plain) < 1e-5, "({b}, {t}, {h}, {g}) outputs");
        let grad = |y: &Tensor| {
            let loss = (y * &w).unwrap().sum_all().unwrap();
            loss.backward().unwrap().get(qkv.as_tensor()).unwrap().clone()
        };
        assert!(
            rel_diff(&grad(&fused), &grad(&plain)) < 1e-5,
            "({b}, {t}, {h}, {g}) gradient"
        );
    }
}

#[test]
fn fused_attention_equals_the_plain_one_and_finite_differences() {
    for (mask, kv) in [
        (MaskKind::Causal, 4),
        (MaskKind::Prefix(vec![2, 5]), 2),
        (MaskKind::Bidirectional, 1),
    ] {
        attention_case(&mask, (2, 7), (4, kv, 4), true);
    }
    // GQA with three groups of two, head size 16; one position; then a longer
    // sequence.
    for mask in
        [MaskKind::Causal, MaskKind::Prefix(vec![2, 5]), MaskKind::Bidirectional]
    {
        attention_case(&mask, (2, 5), (6, 3, 16), true);
        attention_case(&mask, (2, 1), (6, 3, 16), true);
    }
    for mask in [
        MaskKind::Causal,
        MaskKind::Prefix(vec![3, 40, 17]),
        MaskKind::Bidirectional,
    ] {
        attention_case(&mask, (3, 40), (6, 3, 16), false);
    }
    attention_case(&MaskKind::Prefix(vec![3, 40, 17]), (3, 40), (6, 2, 16), false);
    // One mask per head, with and without grouped keys and values.
    attention_case(
        &MaskKind::ForwardBackward { heads: 4, forward: 2 },
        (2, 7),
        (4, 4, 4),
        true,
    );
    attention_case(
        &MaskKind::ForwardBackward { heads: 6, forward: 3 },
        (2, 9),
        (6, 3, 16),
        true,
    );
    attention_case(
        &MaskKind::ForwardBackward { heads: 6, forward: 3 },
        (3, 40),
        (6, 2, 16),
        false,
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        // A fixed seed: the same cases on every run (3,000 random ones passed while
        // writing).
        cases: 64,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(2026),
        ..ProptestConfig::default()
    })]

    /// Random shapes: fused and plain agree on every output and gradient.
    #[test]
    fn fused_kernels_agree_with_the_plain_path_on_random_shapes(
        b in 1usize..4,
        t in 1usize..20,
        (h, g) in prop::sample::select(vec![(1, 1), (2, 1), (4, 2), (6, 3), (6, 6), (8, 2)]),
        hd in prop::sample::select(vec![1usize, 3, 8, 16]),
        prefix in 0usize..20,
        seed in 0u64..1000,
    ) {
        let mask = MaskKind::Prefix((0..b).map(|i| (prefix + 3 * i) % (t + 1)).collect());
        for m in [mask, MaskKind::Causal, MaskKind::Bidirectional] {
            attention_case(&m, (b, t), (h, g, hd), false);
        }
        let d = h * hd;
        linear_case(&[b, t, d], 3 * d + 1, 1, seed, false);
        if d >= 8 {
            // Over a handful of values, LayerNorm's input gradient is nearly zero
            // (exactly zero over one or two), and both paths compute rounding
            // noise, which does not compare.
            layer_norm_case(&[b, t, d], &[d], seed, false);
        }
        // GELU's error is relative to its largest values: at least 64 of them, so
        // that the largest is not a tiny one, where both tanh approximations cancel
        // to different noise.
        let x = var(seed, &[b, t, d + 64], 3.0);
        let w = random(seed + 1, &[b, t, d + 64], 1.0);
        let f = |fused| gelu(fused, x.as_tensor());
        assert_fused_equals_plain("gelu", &[&x], &w, &f, 2e-5);
        let x = var(seed, &[b, t, d], 3.0);
        let targets = random_ids(&mut rng::seeded(seed), b, t, d);
        let w = random(seed + 2, &[b, t], 1.0);
        let f = |fused| nll(fused, x.as_tensor(), &targets);
        assert_fused_equals_plain("cross_entropy", &[&x], &w, &f, 1e-5);
    }

    /// Random softmax shapes, with as many or more keys than queries (a cache).
    #[test]
    fn fused_softmax_agrees_with_the_plain_path_on_random_shapes(
        b in 1usize..4,
        h in 1usize..5,
        t_q in 1usize..24,
        extra in 0usize..9,
        prefix in 0usize..30,
    ) {
        let t_k = t_q + extra;
        let mask = MaskKind::Prefix((0..b).map(|i| (prefix + 5 * i) % (t_k + 1)).collect());
        for m in [mask, MaskKind::Causal, MaskKind::Bidirectional] {
            softmax_case(&m, (b, h, t_q, t_k), extra, false);
        }
    }
}
