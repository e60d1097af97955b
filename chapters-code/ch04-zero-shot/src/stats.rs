//! Spread over seeds (the harness's [`Spread`]) and a paired bootstrap: how sure a
//! difference between two cells is.

use rand::Rng as _;
use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::corpus::TaskFamily;
use transformer::rng;

use crate::*;

pub use transformer::chapter::Spread;

/// One evaluation's hits on some families, `[family][template][instance]`.
pub struct Hits(Vec<Vec<Vec<bool>>>);

impl Hits {
    pub fn new(
        e: &Evaluation,
        items: &[EvalItem],
        families: &[TaskFamily],
        score: Score,
    ) -> Hits {
        let n = items.iter().map(|i| i.instance + 1).max().unwrap_or(0);
        let t = items.iter().map(|i| i.template + 1).max().unwrap_or(0);
        let mut h = vec![vec![vec![false; n]; t]; families.len()];
        for (it, p) in items.iter().zip(&e.picks) {
            if let Some(f) = families.iter().position(|&f| f == it.family) {
                h[f][it.template][it.instance] = score.of(p);
            }
        }
        Hits(h)
    }

    // ANCHOR: median_over_templates
    /// Mean over families of the median over templates of the accuracy (%) on
    /// `instances` (all of them for a plain score; a resample, with repeats, for
    /// the bootstrap).
    pub fn accuracy(&self, instances: &[usize]) -> f64 {
        let per_family: Vec<f64> = self
            .0
            .iter()
            .map(|tpls| {
                let mut accs: Vec<f64> = tpls
                    .iter()
                    .map(|hits| {
                        100.0
                            * instances.iter().filter(|&&i| hits[i]).count() as f64
                            / instances.len() as f64
                    })
                    .collect();
                median(&mut accs)
            })
            .collect();
        per_family.iter().sum::<f64>() / per_family.len() as f64
    }
    // ANCHOR_END: median_over_templates

    pub fn instances(&self) -> usize {
        self.0.first().and_then(|t| t.first()).map_or(0, Vec::len)
    }
}

// ANCHOR: bootstrap
/// A paired comparison of two cells on the held-out families: `a − b` per seed
/// (same seeds, same data order, same questions), and a 95% bootstrap interval for
/// the mean difference that resamples both the questions and the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Which score picked the options: "summed", "per byte" or "calibrated".
    pub score: String,
    /// Percentage points, `a − b`, one per seed.
    pub per_seed: Vec<f64>,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The interval contains 0: the data cannot tell the two apart.
    pub within_noise: bool,
}

/// Percentage points below which a difference is zero, up to floating-point
/// rounding.
pub const TOLERANCE: f64 = 1e-6;

/// What a cell is compared with: another cell's evaluations, seed for seed, or
/// chance.
pub enum Against<'a> {
    Cell(&'a str, &'a [Hits]),
    Chance(f64),
}

pub fn compare(
    a_name: &str,
    a: &[Hits],
    b: Against,
    score: &str,
    reps: usize,
    seed: u64,
) -> Comparison {
    // The other side's accuracy for a seed on a resample of the questions.
    type Side<'a> = Box<dyn Fn(usize, &[usize]) -> f64 + 'a>;
    let (b_name, b_acc): (String, Side) = match b {
        Against::Cell(name, hits) => {
            (name.to_string(), Box::new(move |s, idx| hits[s].accuracy(idx)))
        }
        Against::Chance(x) => ("chance".to_string(), Box::new(move |_, _| x)),
    };
    let (n, k) = (a[0].instances(), a.len());
    let all: Vec<usize> = (0..n).collect();
    let per_seed: Vec<f64> =
        (0..k).map(|s| a[s].accuracy(&all) - b_acc(s, &all)).collect();
    let mean = per_seed.iter().sum::<f64>() / k as f64;
    let mut r =
        rng::stream(seed, &format!("ch04.bootstrap.{a_name}.{b_name}.{score}"));
    let mut means: Vec<f64> = (0..reps)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| r.random_range(0..n)).collect();
            let seeds: Vec<usize> = (0..k).map(|_| r.random_range(0..k)).collect();
            seeds.iter().map(|&s| a[s].accuracy(&idx) - b_acc(s, &idx)).sum::<f64>()
                / k as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let q =
        |p: f64| means[((p * (reps - 1) as f64).round() as usize).min(reps - 1)];
    let (lo, hi) = (q(0.025), q(0.975));
    Comparison {
        a: a_name.to_string(),
        b: b_name,
        score: score.to_string(),
        per_seed: per_seed.iter().map(|&x| round_dp(x, 2)).collect(),
        mean: round_dp(mean, 2),
        ci_low: round_dp(lo, 2),
        ci_high: round_dp(hi, 2),
        // A tolerance, so that a difference that is zero up to rounding counts as
        // zero.
        within_noise: lo <= TOLERANCE && -TOLERANCE <= hi,
    }
}
// ANCHOR_END: bootstrap
