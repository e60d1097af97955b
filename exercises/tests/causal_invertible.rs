// Compiles exercises/starters/causal_invertible.rs into this test (the solution
// with --features solutions).
exercises::exercise!(causal_invertible);

use transformer::rng;

/// Logits `beta * Q K^T / sqrt(d)` from Gaussian `n x d` queries and keys.
fn logits(n: usize, d: usize, beta: f64, seed: u64) -> Vec<Vec<f64>> {
    let mut r = rng::seeded(seed);
    let q = rng::normal_vec_f64(&mut r, n * d);
    let k = rng::normal_vec_f64(&mut r, n * d);
    let scale = beta / (d as f64).sqrt();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    scale * (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>()
                })
                .collect()
        })
        .collect()
}

/// Row-wise softmax; with `causal`, entries above the diagonal are exactly zero.
fn softmax(s: &[Vec<f64>], causal: bool) -> Vec<Vec<f64>> {
    s.iter()
        .enumerate()
        .map(|(i, row)| {
            let allowed = if causal { i + 1 } else { row.len() };
            let max =
                row[..allowed].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row
                .iter()
                .enumerate()
                .map(|(j, x)| if j < allowed { (x - max).exp() } else { 0.0 })
                .collect();
            let z: f64 = e.iter().sum();
            e.iter().map(|x| x / z).collect()
        })
        .collect()
}

#[test]
fn log_det_matches_the_product_of_the_diagonal() {
    let s = logits(12, 3, 1.0, 1);
    let a = softmax(&s, true);
    let direct: f64 = (0..12).map(|i| a[i][i].ln()).sum();
    assert!(
        (causal_log_det(&s) - direct).abs() < 1e-10,
        "{} vs {direct}",
        causal_log_det(&s)
    );
    // A 2 x 2 example by hand: A = [[1, 0], [e^0 / (e^1 + e^0), e^0 / (e^1 +
    // e^0)]].
    let s = vec![vec![0.0, 5.0], vec![1.0, 0.0]];
    let want = (1.0 / (1f64.exp() + 1.0)).ln();
    assert!((causal_log_det(&s) - want).abs() < 1e-12);
}

#[test]
fn log_det_stays_finite_where_the_determinant_underflows() {
    // det A is far below f64's smallest positive number here, yet its logarithm is
    // fine.
    let s = logits(400, 16, 20.0, 2);
    let ld = causal_log_det(&s);
    assert!(ld.is_finite() && ld < -745.0, "{ld}");
}

#[test]
fn rank_of_known_matrices() {
    let identity: Vec<Vec<f64>> = (0..6)
        .map(|i| (0..6).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    assert_eq!(pivoted_rank(&identity, 1e-12), 6);
    let rank_one: Vec<Vec<f64>> = (0..5)
        .map(|i| (0..7).map(|j| (i + 1) as f64 * (j as f64 - 2.5)).collect())
        .collect();
    assert_eq!(pivoted_rank(&rank_one, 1e-12), 1);
    let rank_two: Vec<Vec<f64>> =
        (0..6).map(|i| (0..6).map(|j| (i + j) as f64).collect()).collect();
    assert_eq!(pivoted_rank(&rank_two, 1e-10), 2);
    assert_eq!(pivoted_rank(&[vec![0.0, 0.0], vec![0.0, 0.0]], 1e-12), 0);
}

#[test]
fn causal_is_invertible_while_diffuse_bidirectional_is_not_numerically_full_rank() {
    let (n, d, beta) = (64, 4, 0.001);
    let s = logits(n, d, beta, 3);
    // Causal: every diagonal weight is positive, so det A > 0 and all n pivots
    // survive.
    assert!(causal_log_det(&s).is_finite());
    assert_eq!(pivoted_rank(&softmax(&s, true), 1e-4), n);
    // Bidirectional at small beta: A is close to (1/n) J plus a rank-d correction
    // plus a quadratic term of rank at most C(d+1, 2), and so on (the
    // Hadamard-power series). Each tolerance cuts the series after some power K and
    // sees rank C(d+K, K).
    let bidirectional = softmax(&s, false);
    assert_eq!(pivoted_rank(&bidirectional, 1e-4), d + 1);
    assert_eq!(pivoted_rank(&bidirectional, 1e-7), (d + 1) * (d + 2) / 2);
}
