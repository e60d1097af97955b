//! The fused kernels refuse what they cannot compute: every shape, length, dtype or
//! head count that used to overflow a buffer, wrap around or give a silently wrong
//! answer is an error. Zero sizes give empty results (or an error where the result
//! is undefined), never a panic. Non-finite inputs behave as in the plain path,
//! except fully masked softmax rows (zeros).

use std::sync::Mutex;

use candle_core::{DType, Tensor, Var};
use candle_nn::Module;
use transformer::kernels::{self, AdamWStep, Kernels};
use transformer::layers::{LayerNorm, Linear, softmax_last};
use transformer::loss::{token_nll, token_nll_reference};
use transformer::{DEVICE, rng};

/// Every fused kernel, or none.
fn kernels(fused: bool) -> Kernels {
    if fused { Kernels::FUSED } else { Kernels::PLAIN }
}

fn random(seed: u64, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        rng::normal_vec(&mut rng::seeded(seed), n, 1.0),
        shape,
        &DEVICE,
    )
    .unwrap()
}

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32, &DEVICE).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The error message of `r`, which must be an error.
fn err<T: std::fmt::Debug>(r: candle_core::Result<T>) -> String {
    r.expect_err("an error").to_string()
}

#[test]
fn linear_refuses_a_bias_shorter_or_longer_than_d_out() {
    let (x, w) = (random(1, &[4096, 64]), random(2, &[256, 64]));
    // Used to write 4096 × 256 floats into a buffer of 4096 and crash.
    assert!(
        err(kernels::linear(&x, &w, Some(&random(3, &[1])))).contains("do not fit")
    );
    assert!(
        err(kernels::linear(&x, &w, Some(&random(3, &[257]))))
            .contains("do not fit")
    );
    assert!(
        err(kernels::linear(&x, &w, Some(&random(3, &[2, 256]))))
            .contains("do not fit")
    );
    for on in [true, false] {
        let lin = Linear::new(w.clone(), Some(random(3, &[1])), &kernels(on));
        assert!(err(lin.forward(&x)).contains("d_out"), "fused {on}");
    }
}

/// The fused linear layer reads any leading dimensions as rows (so no reshape
/// enters the graph): on a `[2, 3, 4]` input it gives the plain layer's output and
/// input gradient, in the input's shape.
#[test]
fn linear_reads_leading_dimensions_as_rows() {
    let (w, b) = (random(2, &[3, 4]), random(3, &[3]));
    let x = Var::from_tensor(&random(1, &[2, 3, 4])).unwrap();
    let run = |on: bool| -> (Vec<f32>, Tensor) {
        let lin = Linear::new(w.clone(), Some(b.clone()), &kernels(on));
        let y = lin.forward(x.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[2, 3, 3], "fused {on}");
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let gx = g.get(x.as_tensor()).unwrap().clone();
        (y.flatten_all().unwrap().to_vec1().unwrap(), gx)
    };
    let ((fused, gf), (plain, gp)) = (run(true), run(false));
    assert_eq!(gf.dims(), &[2, 3, 4]);
    for (f, p) in fused.iter().zip(&plain) {
        assert!((f - p).abs() < 1e-5, "{f} vs {p}");
    }
    let gap = transformer::layers::max_abs_diff(&gf, &gp).unwrap();
    assert!(gap < 1e-5, "input gradients differ by {gap}");
}

#[test]
fn linear_refuses_an_input_that_does_not_end_in_d_in() {
    let (x, w) = (random(1, &[6, 4]), random(2, &[3, 8]));
    // Used to return [3, 3], reading x as three rows of eight.
    assert!(err(kernels::linear(&x, &w, None)).contains("do not fit"));
    // A scalar has no last dimension at all.
    let scalar = Tensor::new(1f32, &DEVICE).unwrap();
    assert!(
        err(kernels::linear(&scalar, &random(2, &[3, 1]), None))
            .contains("must be")
    );
    for on in [true, false] {
        let lin = Linear::new(w.clone(), None, &kernels(on));
        let r = lin.forward(&x);
        assert!(err(r).contains("does not end in d_in"), "fused {on}");
    }
    let x64 = random(1, &[6, 8]).to_dtype(DType::F64).unwrap();
    assert!(
        err(kernels::linear(&x64, &random(2, &[3, 8]), None))
            .contains("expected f32")
    );
}

#[test]
fn linear_takes_zero_sizes_and_a_row_bias() {
    let b = random(3, &[5]);
    // No rows, no outputs, no inputs: empty results, or the bias alone.
    assert_eq!(
        kernels::linear(&zeros(&[0, 4]), &random(2, &[5, 4]), Some(&b))
            .unwrap()
            .dims(),
        [0, 5]
    );
    assert_eq!(
        kernels::linear(&random(1, &[3, 4]), &zeros(&[0, 4]), None).unwrap().dims(),
        [3, 0]
    );
    // No outputs, with a bias: the backward pass gives empty gradients too.
    let (w, b0) = (
        Var::zeros((0, 4), DType::F32, &DEVICE).unwrap(),
        Var::zeros(0, DType::F32, &DEVICE).unwrap(),
    );
    let y =
        kernels::linear(&random(1, &[3, 4]), w.as_tensor(), Some(b0.as_tensor()))
            .unwrap();
    let g = (y.sum_all().unwrap() + 1.0).unwrap().backward().unwrap();
    assert_eq!(g.get(w.as_tensor()).unwrap().dims(), [0, 4]);
    assert_eq!(g.get(b0.as_tensor()).unwrap().dims(), [0]);
    let y = kernels::linear(&zeros(&[3, 0]), &zeros(&[5, 0]), Some(&b)).unwrap();
    assert_eq!(values(&y), [values(&b), values(&b), values(&b)].concat());
    let y = kernels::linear(&zeros(&[3, 0]), &zeros(&[5, 0]), None).unwrap();
    assert_eq!(values(&y), vec![0.0; 15]);
    // A [1, d_out] bias gets a [1, d_out] gradient.
    let x = Var::from_tensor(&random(1, &[7, 4])).unwrap();
    let b = Var::from_tensor(&random(3, &[1, 5])).unwrap();
    let y =
        kernels::linear(x.as_tensor(), &random(2, &[5, 4]), Some(b.as_tensor()))
            .unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(values(g.get(b.as_tensor()).unwrap()), vec![7.0; 5]);
    let dx = kernels::linear(
        &Var::zeros((0, 4), DType::F32, &DEVICE).unwrap(),
        &random(2, &[5, 4]),
        None,
    )
    .unwrap()
    .sum_all()
    .unwrap()
    .backward();
    assert!(dx.is_ok());
}

#[test]
fn attention_refuses_heads_that_do_not_divide() {
    let qkv = random(1, &[2, 5, 48]);
    // h + 2g = 12 for (8, 2) and (4, 4); 48 = 12 · 4.
    assert!(kernels::attention(&qkv, 8, 2, 0.5, None).is_ok());
    assert!(kernels::attention(&qkv, 4, 4, 0.5, None).is_ok());
    for (h, g) in [(6, 4), (2, 5), (12, 0), (0, 6)] {
        // h % g ≠ 0, h < g, g = 0, h = 0: heads used to come out as exact zeros (or
        // divide by 0).
        assert!(
            err(kernels::attention(&qkv, h, g, 0.5, None)).contains("evenly"),
            "h = {h}, g = {g}"
        );
    }
    assert!(err(kernels::attention(&qkv, 5, 1, 0.5, None)).contains("(h + 2g)·hd"));
    assert!(
        err(kernels::attention(&qkv.reshape((10, 48)).unwrap(), 8, 2, 0.5, None))
            .contains("is not")
    );
    let q64 = qkv.to_dtype(DType::F64).unwrap();
    assert!(
        err(kernels::attention(&q64, 8, 2, 0.5, None)).contains("expected f32")
    );
}

#[test]
fn attention_and_softmax_refuse_masks_that_do_not_fit() {
    let qkv = random(1, &[2, 5, 48]);
    let scores = random(2, &[2, 3, 5, 5]);
    // Three mask rows for two batch rows used to wrap around; zero rows used to
    // panic.
    for m in [
        zeros(&[3, 1, 5, 5]),
        zeros(&[0, 1, 5, 5]),
        zeros(&[2, 1, 5, 4]),
        zeros(&[2, 2, 5, 5]),
        zeros(&[5]),
    ] {
        assert!(
            err(kernels::attention(&qkv, 8, 2, 0.5, Some(&m)))
                .contains("does not fit"),
            "{m:?}"
        );
        assert!(
            err(kernels::softmax(&scores, 0.5, Some(&m))).contains("does not fit"),
            "{m:?}"
        );
    }
    for m in [zeros(&[1, 1, 5, 5]), zeros(&[2, 1, 5, 5]), zeros(&[5, 5])] {
        assert!(kernels::attention(&qkv, 8, 2, 0.5, Some(&m)).is_ok());
        assert!(kernels::softmax(&scores, 0.5, Some(&m)).is_ok());
    }
    // One mask per head: as many as the query heads, per batch row or for all of
    // them.
    for m in [zeros(&[1, 8, 5, 5]), zeros(&[2, 8, 5, 5])] {
        assert!(kernels::attention(&qkv, 8, 2, 0.5, Some(&m)).is_ok());
        assert!(
            err(kernels::softmax(&scores, 0.5, Some(&m))).contains("does not fit")
        );
    }
    for m in [zeros(&[1, 3, 5, 5]), zeros(&[2, 3, 5, 5])] {
        assert!(kernels::softmax(&scores, 0.5, Some(&m)).is_ok());
        assert!(
            err(kernels::attention(&qkv, 8, 2, 0.5, Some(&m)))
                .contains("does not fit")
        );
    }
    // A two-dimensional mask must be t × t.
    for m in [zeros(&[6, 6]), zeros(&[5, 6]), zeros(&[4, 5])] {
        assert!(
            err(kernels::attention(&qkv, 8, 2, 0.5, Some(&m)))
                .contains("does not fit")
        );
        assert!(
            err(kernels::softmax(&scores, 0.5, Some(&m))).contains("does not fit")
        );
    }
    let m64 = zeros(&[5, 5]).to_dtype(DType::F64).unwrap();
    assert!(
        err(kernels::softmax(&scores, 0.5, Some(&m64))).contains("expected f32")
    );
    assert!(
        err(kernels::attention(&qkv, 8, 2, 0.5, Some(&m64)))
            .contains("expected f32")
    );
}

#[test]
fn attention_takes_empty_batches_and_sequences() {
    for shape in [[0, 5, 48], [2, 0, 48]] {
        let qkv = Var::zeros(&shape[..], DType::F32, &DEVICE).unwrap();
        let y = kernels::attention(qkv.as_tensor(), 8, 2, 0.5, None).unwrap();
        assert_eq!(y.dims(), [shape[0], shape[1], 32]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(qkv.as_tensor()).unwrap().dims(), shape);
    }
}

#[test]
fn softmax_refuses_an_empty_last_dimension_and_takes_empty_batches() {
    assert!(err(kernels::softmax(&zeros(&[3, 0]), 1.0, None)).contains("no keys"));
    assert!(
        err(kernels::softmax(&Tensor::new(1f32, &DEVICE).unwrap(), 1.0, None))
            .contains("scalar")
    );
    assert_eq!(
        kernels::softmax(&zeros(&[0, 4]), 1.0, None).unwrap().dims(),
        [0, 4]
    );
    let x64 = zeros(&[2, 4]).to_dtype(DType::F64).unwrap();
    assert!(err(kernels::softmax(&x64, 1.0, None)).contains("expected f32"));
}

/// Softmax of `rows` (each of length 4) through both paths.
fn both_softmaxes(rows: &[[f32; 4]; 2]) -> (Vec<f32>, Vec<f32>) {
    let x = Tensor::new(rows, &DEVICE).unwrap();
    let fused = values(&kernels::softmax(&x, 1.0, None).unwrap());
    let plain = values(&softmax_last(&x).unwrap());
    (fused, plain)
}

#[test]
fn softmax_rows_with_nan_or_infinity_are_nan_as_in_the_plain_path() {
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    for row in [
        [1.0, nan, 2.0, 3.0],
        [nan; 4],
        [nan, f32::NEG_INFINITY, nan, f32::NEG_INFINITY],
        [0.0, inf, 1.0, 2.0],
    ] {
        let (fused, plain) = both_softmaxes(&[row, [0.0, 1.0, 2.0, 3.0]]);
        assert!(fused[..4].iter().all(|v| v.is_nan()), "{row:?}: fused {fused:?}");
        assert!(plain[..4].iter().all(|v| v.is_nan()), "{row:?}: plain {plain:?}");
        // The other row is untouched.
        assert!(
            fused[4..].iter().zip(&plain[4..]).all(|(a, b)| (a - b).abs() < 1e-6)
        );
    }
}

#[test]
fn a_fully_masked_softmax_row_is_zero_where_the_plain_path_gives_nan() {
    let ninf = f32::NEG_INFINITY;
    let (fused, plain) = both_softmaxes(&[[ninf; 4], [0.0, ninf, 1.0, ninf]]);
    assert_eq!(fused[..4], [0.0; 4]);
    assert!(plain[..4].iter().all(|v| v.is_nan()));
    assert!(fused[4..].iter().zip(&plain[4..]).all(|(a, b)| (a - b).abs() < 1e-6));
    // Through a mask, in attention too: the masked query reads nothing, and gets no
    // gradient.
    let mask = Tensor::new(&[[0f32, ninf], [ninf, ninf]], &DEVICE).unwrap();
    let x = Var::from_tensor(&random(1, &[1, 2, 2, 2])).unwrap();
    let p = kernels::softmax(x.as_tensor(), 1.0, Some(&mask)).unwrap();
    assert_eq!(values(&p)[2..4], [0.0, 0.0]);
    let g = (&p * random(2, &[1, 2, 2, 2]))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(values(g.get(x.as_tensor()).unwrap())[2..4], [0.0, 0.0]);
    let qkv = random(3, &[1, 2, 12]);
    let out = kernels::attention(&qkv, 2, 1, 0.5, Some(&mask)).unwrap();
    assert_eq!(values(&out)[6..], [0.0; 6]);
}

#[test]
fn non_finite_logits_and_activations_give_nan_as_in_the_plain_path() {
    let nan = f32::NAN;
    let logits =
        Tensor::new(&[[1.0, nan, 2.0], [nan, nan, nan], [0.5, 1.0, 2.0]], &DEVICE)
            .unwrap();
    let targets = Tensor::new(&[0u32, 1, 2], &DEVICE).unwrap();
    let fused = values(&token_nll(&logits, &targets).unwrap());
    let plain = values(&token_nll_reference(&logits, &targets).unwrap());
    assert!(
        fused[0].is_nan()
            && fused[1].is_nan()
            && plain[0].is_nan()
            && plain[1].is_nan()
    );
    assert!((fused[2] - plain[2]).abs() < 1e-6);
    let x = Tensor::new(&[nan, 1.0], &DEVICE).unwrap();
    let y = values(&kernels::gelu(&x).unwrap());
    assert!(y[0].is_nan() && (y[1] - values(&x.gelu().unwrap())[1]).abs() < 1e-6);
}

#[test]
fn layer_norm_refuses_an_empty_or_mismatched_width() {
    let (g, b) = (random(1, &[4]), random(2, &[4]));
    assert!(
        err(kernels::layer_norm(&zeros(&[3, 0]), &zeros(&[0]), &zeros(&[0]), 1e-5))
            .contains("d > 0")
    );
    assert!(
        err(kernels::layer_norm(&random(3, &[3, 5]), &g, &b, 1e-5))
            .contains("do not fit")
    );
    assert!(
        err(kernels::layer_norm(&random(3, &[3, 4]), &g, &random(2, &[3]), 1e-5))
            .contains("do not fit")
    );
    assert!(
        err(kernels::layer_norm(&random(3, &[3, 4]), &random(1, &[5]), &b, 1e-5))
            .contains("do not fit")
    );
    let x64 = random(3, &[3, 4]).to_dtype(DType::F64).unwrap();
    assert!(err(kernels::layer_norm(&x64, &g, &b, 1e-5)).contains("expected f32"));
    assert_eq!(
        kernels::layer_norm(&zeros(&[0, 4]), &g, &b, 1e-5).unwrap().dims(),
        [0, 4]
    );
    // Gain and bias of shape [1, d] get gradients of shape [1, d], through the
    // layer as well.
    let g = Var::from_tensor(&random(1, &[1, 4])).unwrap();
    let b = Var::from_tensor(&random(2, &[1, 4])).unwrap();
    let ln = LayerNorm::new(
        g.as_tensor().clone(),
        b.as_tensor().clone(),
        &Kernels::FUSED,
    );
    let grads = ln
        .forward(&random(3, &[3, 4]))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(grads.get(g.as_tensor()).unwrap().dims(), [1, 4]);
    assert_eq!(values(grads.get(b.as_tensor()).unwrap()), [3.0; 4]);
}

#[test]
fn cross_entropy_refuses_targets_that_do_not_fit() {
    let logits = random(1, &[2, 3, 5]);
    let t =
        |v: &[u32], shape: &[usize]| Tensor::from_slice(v, shape, &DEVICE).unwrap();
    assert!(
        err(kernels::nll(&logits, &t(&[0, 1, 2, 3, 4, 0], &[3, 2])))
            .contains("do not fit")
    );
    assert!(
        err(kernels::nll(&logits, &t(&[0, 1, 2, 3, 4], &[5])))
            .contains("do not fit")
    );
    assert!(
        err(kernels::nll(&logits, &t(&[0, 1, 2, 3, 4, 5], &[2, 3])))
            .contains("outside the vocabulary")
    );
    assert!(
        err(kernels::nll(&zeros(&[2, 0]), &t(&[0, 0], &[2])))
            .contains("do not fit")
    );
    let l64 = logits.to_dtype(DType::F64).unwrap();
    assert!(
        err(kernels::nll(&l64, &t(&[0, 1, 2, 3, 4, 0], &[2, 3])))
            .contains("expected f32")
    );
    assert_eq!(kernels::nll(&zeros(&[0, 5]), &t(&[], &[0])).unwrap().dims(), [0]);
}

#[test]
fn adamw_refuses_moments_or_gradients_of_another_length() {
    let step = |m: &mut [f32], v: &mut [f32], n_grad: usize| {
        let op = AdamWStep {
            m: Mutex::new(m),
            v: Mutex::new(v),
            grad_scale: 1.0,
            beta1: 0.9,
            beta2: 0.999,
            bias_correction1: 0.1,
            bias_correction2: 0.001,
            eps: 1e-8,
            lr: 1e-3,
            decay: 0.0,
        };
        let theta = Var::zeros(6, DType::F32, &DEVICE).unwrap();
        theta.as_tensor().inplace_op2(&random(1, &[n_grad]), &op)
    };
    assert!(step(&mut [0.0; 6], &mut [0.0; 6], 6).is_ok());
    assert!(err(step(&mut [0.0; 5], &mut [0.0; 6], 6)).contains("differ"));
    assert!(err(step(&mut [0.0; 6], &mut [0.0; 7], 6)).contains("differ"));
    assert!(err(step(&mut [0.0; 6], &mut [0.0; 6], 4)).contains("differ"));
}
