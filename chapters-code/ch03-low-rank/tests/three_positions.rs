//! The page's smallest case, checked numerically: with n = 3 and d = 1 a causal
//! head realises a generic causal attention pattern (the recipe q₃ = 1, k = (a, b,
//! 0), q₂ = c/(a − b) of the Mathematics section reproduces it), while a
//! bidirectional head of the same width cannot realise a generic bidirectional
//! pattern (its rows' log-ratio pairs are not proportional, which every rank-1
//! logit matrix requires).

use ch03_low_rank::{Mask, attention, logits};
use faer::Mat;
use rand::Rng as _;
use transformer::rng;

/// A random target pattern for `mask`: a softmax of random logits over the allowed
/// entries.
fn random_pattern(mask: Mask, g: &mut rng::Rng) -> Mat<f64> {
    let s = Mat::from_fn(3, 3, |_, _| g.random_range(-3.0..3.0));
    attention(s.as_ref(), mask)
}

/// The head's pattern for scalar queries and keys (d = 1, β = 1, so the logits are
/// `q_i k_j`).
fn head(q: [f64; 3], k: [f64; 3], mask: Mask) -> Mat<f64> {
    let q = Mat::from_fn(3, 1, |i, _| q[i]);
    let k = Mat::from_fn(3, 1, |i, _| k[i]);
    attention(logits(q.as_ref(), k.as_ref(), 1.0).as_ref(), mask)
}

/// Each row's log-ratio pair against its first entry, `(ln A_i2/A_i1, ln
/// A_i3/A_i1)`.
fn log_ratio_pairs(a: &Mat<f64>) -> [[f64; 2]; 3] {
    std::array::from_fn(|i| {
        [(a[(i, 1)] / a[(i, 0)]).ln(), (a[(i, 2)] / a[(i, 0)]).ln()]
    })
}

/// The largest 2 × 2 minor of the 3 × 2 matrix of log-ratio pairs: zero exactly
/// when every row's pair is a multiple of one pair.
fn largest_minor(p: &[[f64; 2]; 3]) -> f64 {
    let minor = |i: usize, j: usize| (p[i][0] * p[j][1] - p[i][1] * p[j][0]).abs();
    minor(0, 1).max(minor(0, 2)).max(minor(1, 2))
}

#[test]
fn the_recipe_realises_random_causal_patterns_with_one_dimension() {
    let mut g = rng::stream(3, "three positions, causal");
    for case in 0..50 {
        let target = random_pattern(Mask::Causal, &mut g);
        // The page's parametrisation: row 3's logits up to a constant, (a, b, 0),
        // and row 2's one log-ratio c.
        let a = (target[(2, 0)] / target[(2, 2)]).ln();
        let b = (target[(2, 1)] / target[(2, 2)]).ln();
        let c = (target[(1, 0)] / target[(1, 1)]).ln();
        assert!((a - b).abs() > 1e-6, "case {case}: A₃₁ = A₃₂, outside the recipe");
        let built = head([0.0, c / (a - b), 1.0], [a, b, 0.0], Mask::Causal);
        for i in 0..3 {
            for j in 0..3 {
                let err = (built[(i, j)] - target[(i, j)]).abs();
                assert!(
                    err < 1e-9,
                    "case {case}, entry ({i}, {j}): {} against {}",
                    built[(i, j)],
                    target[(i, j)]
                );
            }
        }
    }
}

#[test]
fn a_one_dimensional_bidirectional_head_has_proportional_log_ratio_pairs() {
    // The necessary condition is the right one: every pattern a d = 1 head produces
    // meets it.
    let mut g = rng::stream(3, "three positions, rank 1");
    for case in 0..50 {
        let q: [f64; 3] = std::array::from_fn(|_| g.random_range(-2.0..2.0));
        let k: [f64; 3] = std::array::from_fn(|_| g.random_range(-2.0..2.0));
        let pairs = log_ratio_pairs(&head(q, k, Mask::Bidirectional));
        assert!(largest_minor(&pairs) < 1e-9, "case {case}: {pairs:?}");
    }
}

#[test]
fn random_bidirectional_patterns_fail_that_condition() {
    // A generic target's pairs are not proportional, so no rank-1 logit matrix (up
    // to the row constants the softmax ignores) produces it: a d = 1 bidirectional
    // head cannot.
    let mut g = rng::stream(3, "three positions, bidirectional");
    for case in 0..50 {
        let pairs = log_ratio_pairs(&random_pattern(Mask::Bidirectional, &mut g));
        assert!(
            largest_minor(&pairs) > 1e-3,
            "case {case}: {pairs:?} are proportional"
        );
    }
}
