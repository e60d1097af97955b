//! The rank measures agree with matrices whose rank is known by construction, and
//! the causal determinant is positive for random inputs.

use ch03_low_rank::{
    CausalDiagonal, Mask, Measures, attention, binomial, causal_log_diagonal,
    draw_qkv, effective_rank, hadamard_bound, hadamard_ranks, logits,
    numerical_rank, probe, singular_values, stable_rank,
};
use faer::Mat;
use transformer::VariantArray;
use transformer::rng;

/// A random `n × n` matrix of rank `r`: the product of `n × r` and `r × n` Gaussian
/// factors.
fn rank_r(n: usize, r: usize, seed: u64) -> Mat<f64> {
    let mut g = rng::seeded(seed);
    let a = rng::normal_vec_f64(&mut g, n * r);
    let b = rng::normal_vec_f64(&mut g, r * n);
    let a = Mat::from_fn(n, r, |i, j| a[i * r + j]);
    let b = Mat::from_fn(r, n, |i, j| b[i * n + j]);
    a * b
}

#[test]
fn identity_has_effective_rank_n_and_every_rank_n() {
    for n in [1, 5, 40] {
        let m = Measures::of(Mat::<f64>::identity(n, n).as_ref()).unwrap();
        assert!(
            (m.effective_rank - n as f64).abs() < 1e-9,
            "{n}: {}",
            m.effective_rank
        );
        assert!((m.stable_rank - n as f64).abs() < 1e-9);
        assert_eq!((m.rank_eps, m.rank_1e3, m.rank_1e6, m.rank_1e10), (n, n, n, n));
        assert!(m.log10_cond.abs() < 1e-12);
        assert!(m.log10_abs_det.abs() < 1e-12);
    }
}

#[test]
fn a_rank_one_matrix_has_effective_rank_one() {
    let u: Vec<f64> = (0..30).map(|i| 1.0 + i as f64).collect();
    let m = Mat::from_fn(30, 30, |i, j| u[i] * u[29 - j]);
    let measures = Measures::of(m.as_ref()).unwrap();
    assert_eq!(measures.rank_eps, 1);
    assert_eq!(measures.rank_1e10, 1);
    assert!(
        (measures.effective_rank - 1.0).abs() < 1e-12,
        "{}",
        measures.effective_rank
    );
    assert!((measures.stable_rank - 1.0).abs() < 1e-12);
}

#[test]
fn products_of_thin_factors_have_their_inner_rank() {
    for (n, r) in [(20, 1), (20, 7), (50, 13), (64, 64)] {
        let m = Measures::of(rank_r(n, r, n as u64 + r as u64).as_ref()).unwrap();
        assert_eq!(m.rank_eps, r, "n = {n}, r = {r}");
        assert_eq!(m.rank_1e10, r, "n = {n}, r = {r}");
        assert!(m.effective_rank <= r as f64 + 1e-9);
        assert!(m.stable_rank <= r as f64 + 1e-9);
    }
}

#[test]
fn effective_rank_of_known_spectra() {
    assert!((effective_rank(&[2.0, 2.0, 2.0, 0.0]) - 3.0).abs() < 1e-12);
    // p = (3/4, 1/4): exp(−(¾ ln ¾ + ¼ ln ¼)).
    let want = (-(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln())).exp();
    assert!((effective_rank(&[3.0, 1.0]) - want).abs() < 1e-12);
    assert!((stable_rank(&[3.0, 1.0]) - 10.0 / 9.0).abs() < 1e-12);
    assert_eq!(effective_rank(&[0.0, 0.0]), 0.0);
    assert_eq!(numerical_rank(&[1.0, 1e-4, 1e-8], 1e-3), 1);
    assert_eq!(numerical_rank(&[1.0, 1e-4, 1e-8], 1e-6), 2);
}

#[test]
fn logits_have_rank_at_most_d_and_softmax_rows_sum_to_one() {
    let (n, d) = (48, 5);
    let [q, k, _] = draw_qkv(n, d, 9);
    let s = logits(q.as_ref(), k.as_ref(), 1.0);
    assert_eq!(Measures::of(s.as_ref()).unwrap().rank_eps, d);
    for &mask in Mask::VARIANTS {
        let a = attention(s.as_ref(), mask);
        for i in 0..n {
            let row: f64 = (0..n).map(|j| a[(i, j)]).sum();
            assert!((row - 1.0).abs() < 1e-12);
            for j in 0..n {
                assert_eq!(a[(i, j)] == 0.0, !mask.allows(i, j), "({i}, {j})");
            }
        }
    }
    // The bidirectional matrix, though built from rank-5 logits, is full rank.
    let a = attention(s.as_ref(), Mask::Bidirectional);
    assert_eq!(Measures::of(a.as_ref()).unwrap().rank_eps, n);
}

#[test]
fn causal_determinant_is_positive_in_log_space_for_random_inputs() {
    for seed in 0..20u64 {
        let n = 8 + (seed as usize * 37) % 200;
        let d = 1 + (seed as usize * 13) % 64;
        let beta = [0.05, 0.5, 1.0, 4.0, 30.0][seed as usize % 5];
        let [q, k, _] = draw_qkv(n, d, seed);
        let s = logits(q.as_ref(), k.as_ref(), beta);
        let ln_diag = causal_log_diagonal(s.as_ref());
        assert!(
            ln_diag.iter().all(|x| x.is_finite() && *x <= 1e-12),
            "seed {seed}"
        );
        assert!(ln_diag[0].abs() < 1e-12, "the first row is e₁");
        let c = CausalDiagonal::from_logits(s.as_ref());
        assert!(c.all_positive && c.log10_det.is_finite(), "seed {seed}");
        // Where the product is representable, it matches the diagonal of the matrix
        // itself.
        if c.log10_det > -250.0 {
            let a = attention(s.as_ref(), Mask::Causal);
            let direct: f64 = (0..n).map(|i| a[(i, i)].log10()).sum();
            assert!(
                (direct - c.log10_det).abs() < 1e-8 * (1.0 + direct.abs()),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn condition_number_is_at_least_one_over_the_smallest_diagonal_weight() {
    let [q, k, _] = draw_qkv(64, 16, 1);
    let s = logits(q.as_ref(), k.as_ref(), 2.0);
    let c = CausalDiagonal::from_logits(s.as_ref());
    let sv = singular_values(attention(s.as_ref(), Mask::Causal).as_ref()).unwrap();
    let svd_cond = (sv[0] / sv[sv.len() - 1]).log10();
    assert!(
        svd_cond >= c.log10_cond_lower_bound - 1e-9,
        "{svd_cond} < {}",
        c.log10_cond_lower_bound
    );
}

#[test]
fn hadamard_powers_meet_their_binomial_bound() {
    assert_eq!(binomial(5, 2), 10);
    assert_eq!(binomial(9, 6), 84);
    assert_eq!(hadamard_bound(10, 4, 3), 10);
    let ranks = hadamard_ranks(60, 3, 4, 2).unwrap();
    let bounds: Vec<usize> = (1..=4).map(|k| hadamard_bound(60, 3, k)).collect();
    assert_eq!(ranks, bounds);
    assert_eq!(bounds, vec![3, 6, 10, 15]);
}

#[test]
fn head_output_rank_is_at_most_d_and_d_above_n_is_fine() {
    for &mask in Mask::VARIANTS {
        let p = probe(40, 6, 1.0, 4, mask).unwrap();
        assert_eq!(p.output_rank, 6);
        let p = probe(12, 30, 1.0, 4, mask).unwrap();
        assert!(p.output_rank <= 12);
        assert_eq!(p.measures.rank_eps, 12);
    }
}

#[test]
fn the_probe_rejects_bad_values() {
    assert!(probe(0, 4, 1.0, 0, Mask::Causal).is_err());
    assert!(probe(8, 0, 1.0, 0, Mask::Causal).is_err());
    for beta in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(probe(8, 4, beta, 0, Mask::Causal).is_err(), "{beta}");
    }
    assert!(Mask::parse("sideways").is_err());
}
