//! Accuracy and speed of the long reductions in the fused softmax and
//! cross-entropy, on demand: `cargo test --release -p transformer --test
//! kernels_timing -- --ignored --nocapture`. Not part of the normal run (timings
//! say nothing on a shared machine under test load).

mod common;

use std::time::Instant;

use candle_core::{Tensor, Var};
use common::random;
use transformer::DEVICE;
use transformer::kernels;
use transformer::loss::token_nll;

/// Largest `|Σ_j p_ij − 1|` over the rows of a softmax output, the sums taken in
/// f64.
fn worst_row_sum_error(p: &Tensor) -> f64 {
    let t_k = p.dims()[p.rank() - 1];
    let v: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
    v.chunks(t_k)
        .map(|r| (r.iter().map(|&a| f64::from(a)).sum::<f64>() - 1.0).abs())
        .fold(0.0, f64::max)
}

/// Best wall time of `f` over `n` runs, in milliseconds (the least disturbed by
/// other load).
fn best_ms(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[0]
}

#[test]
#[ignore = "timing; run on demand"]
fn long_reductions_accuracy_and_speed() {
    for (rows, t_k) in [(16, 65_536), (2_048, 256)] {
        let x = random(1, &[rows, t_k], 3.0);
        let fused = kernels::softmax(&x, 1.0, None).unwrap();
        let plain = transformer::layers::softmax_last(&x).unwrap();
        let ms = best_ms(41, || {
            kernels::softmax(&x, 1.0, None).unwrap();
        });
        println!(
            "softmax [{rows}, {t_k}]: row-sum error fused {:.2e}, plain {:.2e}; fused forward {ms:.3} ms",
            worst_row_sum_error(&fused),
            worst_row_sum_error(&plain)
        );
    }
    let (rows, v) = (512, 8_192);
    let logits = Var::from_tensor(&random(2, &[rows, v], 3.0)).unwrap();
    let targets = Tensor::from_vec(
        (0..rows as u32).map(|i| i * 13 % v as u32).collect(),
        rows,
        &DEVICE,
    )
    .unwrap();
    let ms = best_ms(21, || {
        let nll = token_nll(logits.as_tensor(), &targets).unwrap();
        nll.sum_all().unwrap().backward().unwrap();
    });
    println!("cross-entropy [{rows}, {v}]: fused forward + backward {ms:.3} ms");
}
