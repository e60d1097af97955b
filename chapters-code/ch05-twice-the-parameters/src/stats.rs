//! Paired differences between two contenders over seeds, with a Student-t interval:
//! a seed (one initialisation, trained and measured) is the unit of the experiment,
//! and with a handful of seeds a bootstrap over them would give intervals that are
//! too narrow.

use serde::Serialize;
use transformer::chapter::round_dp;

/// `a − b` on one metric: each seed's difference of means over the items measured
/// (held-out rows or questions, the same for both sides), their mean, and a 95%
/// interval.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub a: String,
    pub b: String,
    pub metric: String,
    pub per_seed: Vec<f64>,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The interval contains 0: the data cannot tell the two apart.
    pub within_noise: bool,
}

/// Below this a difference is zero, up to floating-point rounding.
pub const TOLERANCE: f64 = 1e-9;

/// The 97.5% quantile of Student's t with 1 to 20 degrees of freedom (any table of
/// the t distribution), for a two-sided 95% interval.
const T975: [f64; 20] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
    2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
];

// ANCHOR: paired
/// The paired difference of `a[seed][item]` and `b[seed][item]`: per seed, the mean
/// over items of `a − b`; then the mean over seeds, with the 95% t-interval `mean ±
/// t · s / √k`.
pub fn paired(
    names: (&str, &str),
    metric: &str,
    a: &[Vec<f64>],
    b: &[Vec<f64>],
) -> Difference {
    let per_seed: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            x.iter().zip(y).map(|(p, q)| p - q).sum::<f64>() / x.len() as f64
        })
        .collect();
    let k = per_seed.len();
    let mean = per_seed.iter().sum::<f64>() / k as f64;
    let half = if k > 1 {
        let var = per_seed.iter().map(|d| (d - mean).powi(2)).sum::<f64>()
            / (k - 1) as f64;
        T975[(k - 2).min(T975.len() - 1)] * (var / k as f64).sqrt()
    } else {
        f64::INFINITY // one seed says nothing about the spread over seeds
    };
    let (lo, hi) = (mean - half, mean + half);
    Difference {
        a: names.0.to_string(),
        b: names.1.to_string(),
        metric: metric.to_string(),
        per_seed: per_seed.iter().map(|&d| round_dp(d, 4)).collect(),
        mean: round_dp(mean, 4),
        ci_low: round_dp(lo, 4),
        ci_high: round_dp(hi, 4),
        within_noise: lo <= TOLERANCE && -TOLERANCE <= hi,
    }
}
// ANCHOR_END: paired

impl Difference {
    /// `a` is better than `b` beyond noise, where `lower_is_better` says which way
    /// is better.
    pub fn a_better(&self, lower_is_better: bool) -> bool {
        !self.within_noise && (self.mean < 0.0) == lower_is_better
    }

    /// `a` is worse than `b` beyond noise.
    pub fn a_worse(&self, lower_is_better: bool) -> bool {
        !self.within_noise && (self.mean > 0.0) == lower_is_better
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_shift_is_exact_and_noise_is_noise() {
        let a = vec![vec![2.0, 3.0], vec![4.0, 5.0], vec![1.0, 1.0]];
        let b: Vec<Vec<f64>> =
            a.iter().map(|r| r.iter().map(|x| x - 0.5).collect()).collect();
        let d = paired(("a", "b"), "m", &a, &b);
        assert_eq!(
            (d.mean, d.ci_low, d.ci_high, d.within_noise),
            (0.5, 0.5, 0.5, false)
        );
        // Seeds that disagree in sign: the interval holds zero.
        let c = vec![vec![2.5, 3.5], vec![3.5, 4.5], vec![1.0, 1.0]];
        let d = paired(("a", "c"), "m", &a, &c);
        assert!(d.within_noise, "{d:?}");
        assert_eq!(d.per_seed, [-0.5, 0.5, 0.0]);
    }

    #[test]
    fn three_seeds_of_one_sign_need_a_large_effect_to_count() {
        // Differences 1, 2, 3: mean 2, s = 1, t(2) = 4.303: the interval is 2 ±
        // 2.48.
        let a = vec![vec![1.0], vec![2.0], vec![3.0]];
        let zero = vec![vec![0.0]; 3];
        let d = paired(("a", "0"), "m", &a, &zero);
        assert!(d.within_noise && (d.ci_low + 0.4843).abs() < 1e-3, "{d:?}");
        let one = paired(("a", "0"), "m", &a[..1], &zero[..1]);
        assert!(one.within_noise, "a single seed is never beyond noise");
    }
}
