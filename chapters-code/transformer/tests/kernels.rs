//! The fused kernels compute what the plain differentiable operations compute: same outputs,
//! same gradients (within a few f32 ulps), and gradients that match finite differences taken
//! in f64 arithmetic. Switching kernels on and off is process-wide, so the tests that do it
//! hold one lock.

mod common;

use std::sync::Mutex;

use candle_core::{DType, Tensor, Var};
use common::{random_ids, small};
use transformer::kernels::{self, Lever};
use transformer::layers::{LayerNorm, Linear, gelu, softmax_last};
use transformer::loss::{masked_cross_entropy, token_nll};
use transformer::train::{AdamW, TrainConfig};
use transformer::{DEVICE, DecoderOnly, MaskKind, ParamStore, PositionKind, SelfAttention, rng};

static LEVERS: Mutex<()> = Mutex::new(());

fn random(seed: u64, shape: &[usize], std: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rng::normal_vec(&mut rng::seeded(seed), n, std), shape, &DEVICE).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest absolute difference, relative to the largest magnitude of `b`.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (values(a), values(b));
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Output and gradients (with respect to `vars`) of `sum(f(vars) ⊙ w)`, with one lever on or off.
fn run(lever: Lever, on: bool, vars: &[&Var], w: &Tensor, f: &dyn Fn() -> Tensor) -> (Tensor, Vec<Tensor>) {
    kernels::set(lever, on);
    let y = f();
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let g = vars.iter().map(|v| grads.get(v.as_tensor()).expect("a gradient").clone()).collect();
    kernels::set(lever, true);
    (y, g)
}

/// Fused and plain agree on the output and on every gradient.
fn assert_fused_equals_plain(lever: Lever, vars: &[&Var], w: &Tensor, f: &dyn Fn() -> Tensor, tol: f32) {
    let (y1, g1) = run(lever, true, vars, w, f);
    let (y0, g0) = run(lever, false, vars, w, f);
    let d = rel_diff(&y1, &y0);
    assert!(d < tol, "{lever:?}: outputs differ by {d:e}");
    for (i, (a, b)) in g1.iter().zip(&g0).enumerate() {
        let d = rel_diff(a, b);
        assert!(d < tol, "{lever:?}: gradient {i} differs by {d:e}");
    }
}

/// The fused gradient of `sum(f(x) ⊙ w)` against central differences of the same function
/// computed in f64 by `f64_fn`, at a few coordinates.
fn assert_matches_finite_differences(
    lever: Lever,
    x: &Var,
    w: &Tensor,
    f: &dyn Fn() -> Tensor,
    f64_fn: &dyn Fn(&Tensor) -> Tensor,
) {
    let (_, g) = run(lever, true, &[x], w, f);
    let g = values(&g[0]);
    let x0: Vec<f64> = values(x.as_tensor()).iter().map(|&v| f64::from(v)).collect();
    let w64 = w.to_dtype(DType::F64).unwrap();
    let loss = |xs: &[f64]| -> f64 {
        let t = Tensor::from_slice(xs, x.shape(), &DEVICE).unwrap();
        (f64_fn(&t) * &w64).unwrap().sum_all().unwrap().to_scalar().unwrap()
    };
    let h = 1e-5;
    let gmax = g.iter().fold(0f32, |m, v| m.max(v.abs()));
    for idx in (0..x0.len()).step_by(x0.len() / 7 + 1) {
        let (mut up, mut down) = (x0.clone(), x0.clone());
        up[idx] += h;
        down[idx] -= h;
        let numeric = (loss(&up) - loss(&down)) / (2.0 * h);
        let err = (numeric - f64::from(g[idx])).abs() / f64::from(gmax);
        assert!(err < 1e-4, "{lever:?}[{idx}]: fused {} vs finite difference {numeric}", g[idx]);
    }
}

#[test]
fn fused_layer_norm_equals_the_plain_one_and_finite_differences() {
    let _l = LEVERS.lock().unwrap_or_else(|e| e.into_inner());
    let x = Var::from_tensor(&random(1, &[3, 5, 16], 1.5)).unwrap();
    let gain = Var::from_tensor(&(random(2, &[16], 0.3) + 1.0).unwrap()).unwrap();
    let bias = Var::from_tensor(&random(3, &[16], 0.3)).unwrap();
    let ln = LayerNorm { gain: gain.as_tensor().clone(), bias: bias.as_tensor().clone() };
    let w = random(4, &[3, 5, 16], 1.0);
    let f = || ln.forward(x.as_tensor()).unwrap();
    assert_fused_equals_plain(Lever::LayerNorm, &[&x, &gain, &bias], &w, &f, 2e-6);
    let (g64, b64) =
        (gain.as_tensor().to_dtype(DType::F64).unwrap(), bias.as_tensor().to_dtype(DType::F64).unwrap());
    let plain64 = |t: &Tensor| LayerNorm { gain: g64.clone(), bias: b64.clone() }.forward(t).unwrap();
    kernels::set(Lever::LayerNorm, false);
    let check64 = plain64(&x.as_tensor().to_dtype(DType::F64).unwrap());
    kernels::set(Lever::LayerNorm, true);
    assert!(rel_diff(&check64.to_dtype(DType::F32).unwrap(), &f()) < 2e-6);
    let plain64 = |t: &Tensor| {
        kernels::set(Lever::LayerNorm, false);
        let y = plain64(t);
        kernels::set(Lever::LayerNorm, true);
        y
    };
    assert_matches_finite_differences(Lever::LayerNorm, &x, &w, &f, &plain64);
}

#[test]
fn fused_masked_softmax_equals_the_plain_one_and_finite_differences() {
    let _l = LEVERS.lock().unwrap_or_else(|e| e.into_inner());
    let (b, h, t) = (2, 3, 7);
    let x = Var::from_tensor(&random(5, &[b, h, t, t], 2.0)).unwrap();
    let w = random(6, &[b, h, t, t], 1.0);
    for mask in [MaskKind::Causal, MaskKind::Prefix(vec![2, 5]), MaskKind::Bidirectional] {
        let m = mask.additive(b, t, t, 0).unwrap();
        let scale = 0.37;
        // What attention computes: the fused kernel, or scale, add the mask, softmax.
        let plain = |x: &Tensor| {
            let s = (x * scale).unwrap();
            let s = match &m {
                Some(m) => s.broadcast_add(&m.to_dtype(x.dtype()).unwrap()).unwrap(),
                None => s,
            };
            softmax_last(&s).unwrap()
        };
        let f = || {
            if kernels::enabled(Lever::Softmax) {
                kernels::softmax(x.as_tensor(), scale, m.as_ref()).unwrap()
            } else {
                plain(x.as_tensor())
            }
        };
        assert_fused_equals_plain(Lever::Softmax, &[&x], &w, &f, 2e-6);
        let plain64 = |t: &Tensor| {
            kernels::set(Lever::Softmax, false);
            let y = plain(t);
            kernels::set(Lever::Softmax, true);
            y
        };
        assert_matches_finite_differences(Lever::Softmax, &x, &w, &f, &plain64);
        // Blocked entries are exactly zero.
        let (y, _) = run(Lever::Softmax, true, &[&x], &w, &f);
        let y = values(&y);
        for bi in 0..b {
            for hi in 0..h {
                for i in 0..t {
                    for j in 0..t {
                        let p = y[((bi * h + hi) * t + i) * t + j];
                        assert_eq!(p > 0.0, mask.allows(bi, i, j), "{mask:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn fused_gelu_equals_the_plain_one_and_finite_differences() {
    let _l = LEVERS.lock().unwrap_or_else(|e| e.into_inner());
    let x = Var::from_tensor(&random(7, &[4, 33], 3.0)).unwrap();
    let w = random(8, &[4, 33], 1.0);
    let f = || gelu(x.as_tensor()).unwrap();
    assert_fused_equals_plain(Lever::Gelu, &[&x], &w, &f, 2e-6);
    let plain64 = |t: &Tensor| t.gelu().unwrap();
    assert_matches_finite_differences(Lever::Gelu, &x, &w, &f, &plain64);
}

#[test]
fn fused_cross_entropy_equals_the_plain_one_and_finite_differences() {
    let _l = LEVERS.lock().unwrap_or_else(|e| e.into_inner());
    let (b, t, v) = (3, 5, 11);
    let x = Var::from_tensor(&random(9, &[b, t, v], 3.0)).unwrap();
    let targets = random_ids(&mut rng::seeded(10), b, t, v);
    let w = random(11, &[b, t], 1.0);
    let f = || token_nll(x.as_tensor(), &targets).unwrap();
    assert_fused_equals_plain(Lever::CrossEntropy, &[&x], &w, &f, 2e-6);
    let plain64 = |t: &Tensor| {
        kernels::set(Lever::CrossEntropy, false);
        let y = token_nll(t, &targets).unwrap();
        kernels::set(Lever::CrossEntropy, true);
        y
    };
    assert_matches_finite_differences(Lever::CrossEntropy, &x, &w, &f, &plain64);
}

/// The whole model: every parameter's gradient with all kernels equals the plain one.
#[test]
fn fused_model_gradients_equal_the_plain_ones() {
    let _l = LEVERS.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = small(PositionKind::Learned, false, 2);
    let s = ParamStore::new(3);
    let m = DecoderOnly::new(&s, "dec", &cfg).unwrap();
    let ids = random_ids(&mut rng::seeded(4), 2, 12, cfg.vocab_size);
    let w = Tensor::from_vec((0..24).map(|i| (i % 3) as f32).collect::<Vec<_>>(), (2, 12), &DEVICE).unwrap();
    let grads = |on: bool| {
        kernels::set_all(on);
        let loss = masked_cross_entropy(&m.forward(&ids, &MaskKind::prefix(4)).unwrap(), &ids, &w).unwrap();
        let g = loss.backward().unwrap();
        kernels::set_all(true);
        let l: f32 = loss.to_scalar().unwrap();
        (l, s.vars().into_iter().map(|(n, v)| (n, g.get(v.as_tensor()).unwrap().clone())).collect::<Vec<_>>())
    };
    let (l1, g1) = grads(true);
    let (l0, g0) = grads(false);
    assert!((l1 - l0).abs() < 1e-6, "loss {l1} vs {l0}");
    for ((name, a), (_, b)) in g1.iter().zip(&g0) {
        let d = rel_diff(a, b);
        assert!(d < 1e-4, "{name}: fused gradient differs by {d:e}");
    }
}

/// The in-place AdamW step moves the parameters as the plain one does. (On a quadratic loss:
/// in a real model some gradients are pure rounding noise, such as the key biases', which
/// softmax ignores, and Adam's normalisation turns such noise into full-size steps.)
#[test]
fn fused_adamw_equals_the_plain_one() {
    let _l = LEVERS.lock().unwrap_or_else(|e| e.into_inner());
    let params = |on: bool| {
        let s = ParamStore::new(5);
        let sc = s.scope("p");
        let a = sc.normal("matrix", (7, 5), 1.0).unwrap();
        let b = sc.constant("vector", 5, 0.5).unwrap();
        let (ta, tb) = (random(20, &[7, 5], 1.0), random(21, &[5], 1.0));
        let mut opt =
            AdamW::new(&s, &TrainConfig { clip: 2.0, weight_decay: 0.1, ..TrainConfig::default() }).unwrap();
        for _ in 0..4 {
            let loss = ((&a - &ta).unwrap().sqr().unwrap().sum_all().unwrap()
                + (&b - &tb).unwrap().sqr().unwrap().sum_all().unwrap())
            .unwrap();
            let grads = loss.backward().unwrap();
            kernels::set(Lever::AdamW, on);
            opt.step(&grads, 1e-1).unwrap();
            kernels::set(Lever::AdamW, true);
        }
        s.vars().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect::<Vec<_>>()
    };
    let (fused, plain) = (params(true), params(false));
    for ((name, a), (_, b)) in fused.iter().zip(&plain) {
        let d = rel_diff(a, b);
        assert!(d < 1e-6, "{name}: parameters differ by {d:e} after 4 steps");
    }
}

#[test]
fn fused_linear_equals_the_plain_one_and_finite_differences() {
    let _l = LEVERS.lock().unwrap_or_else(|e| e.into_inner());
    let x = Var::from_tensor(&random(12, &[3, 5, 16], 1.0)).unwrap();
    let w = Var::from_tensor(&random(13, &[24, 16], 0.3)).unwrap();
    let b = Var::from_tensor(&random(14, &[24], 0.3)).unwrap();
    let out = random(15, &[3, 5, 24], 1.0);
    for bias in [true, false] {
        let lin = Linear { weight: w.as_tensor().clone(), bias: bias.then(|| b.as_tensor().clone()) };
        let f = || lin.forward(x.as_tensor()).unwrap();
        let vars: Vec<&Var> = if bias { vec![&x, &w, &b] } else { vec![&x, &w] };
        assert_fused_equals_plain(Lever::Linear, &vars, &out, &f, 2e-6);
        let (w64, b64) =
            (w.as_tensor().to_dtype(DType::F64).unwrap(), b.as_tensor().to_dtype(DType::F64).unwrap());
        let plain64 = |t: &Tensor| {
            kernels::set(Lever::Linear, false);
            let y = Linear { weight: w64.clone(), bias: bias.then(|| b64.clone()) }.forward(t).unwrap();
            kernels::set(Lever::Linear, true);
            y
        };
        assert_matches_finite_differences(Lever::Linear, &x, &out, &f, &plain64);
    }
}

#[test]
fn fused_attention_equals_the_plain_one_and_finite_differences() {
    let _l = LEVERS.lock().unwrap_or_else(|e| e.into_inner());
    for (mask, kv) in [(MaskKind::Causal, 4), (MaskKind::Prefix(vec![2, 5]), 2), (MaskKind::Bidirectional, 1)]
    {
        let cfg = small(PositionKind::Learned, false, kv);
        let s = ParamStore::new(6);
        let attn = SelfAttention::new(&s.scope("a"), &cfg, 0.2).unwrap();
        let x = Var::from_tensor(&random(16, &[2, 7, cfg.d_model], 1.0)).unwrap();
        let out = random(17, &[2, 7, cfg.d_model], 1.0);
        let qkv_w = s.vars().into_iter().find(|(n, _)| n == "a.qkv.weight").unwrap().1;
        let f = || attn.forward(x.as_tensor(), &mask, None, false).unwrap().0;
        assert_fused_equals_plain(Lever::Attention, &[&x, &qkv_w], &out, &f, 2e-6);
        // The same layer in f64, through the plain operations only.
        let to64 = |l: &Linear| Linear {
            weight: l.weight.to_dtype(DType::F64).unwrap(),
            bias: l.bias.as_ref().map(|b| b.to_dtype(DType::F64).unwrap()),
        };
        let attn64 = SelfAttention { qkv: to64(&attn.qkv), out: to64(&attn.out), ..attn.clone() };
        let plain64 = |t: &Tensor| {
            kernels::set_all(false);
            let y = attn64.forward(t, &mask, None, false).unwrap().0;
            kernels::set_all(true);
            y
        };
        assert_matches_finite_differences(Lever::Attention, &x, &out, &f, &plain64);
    }
}
