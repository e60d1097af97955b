//! Su's setting, then temperature, size and head dimension: the sweep over (n, d,
//! β) and its summaries over seeds, including the causal determinant and a head's
//! output rank.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use transformer::chapter::{Spread, round_dp};

use crate::*;
use transformer::{Named, VariantArray};

/// Mean and sample standard deviation over seeds, rounded for display.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
}

impl Stat {
    pub fn of(xs: &[f64], digits: i32) -> Stat {
        let Spread { mean, std, .. } = Spread::of(xs, digits);
        Stat { mean, std }
    }

    pub(crate) fn show(&self, digits: usize) -> String {
        format!("{:.digits$} ± {:.digits$}", self.mean, self.std)
    }
}

/// One point of the sweep (one `n, d, β` and mask), over all seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub rank_eps: Stat,
    pub rank_1e3: Stat,
    pub rank_1e6: Stat,
    pub rank_1e10: Stat,
    pub effective_rank: Stat,
    pub stable_rank: Stat,
    pub log10_cond: Stat,
    pub log10_abs_det_svd: Stat,
    pub output_rank: Stat,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log10_det_exact: Option<Stat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log10_min_diag: Option<Stat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log10_cond_lower_bound: Option<Stat>,
}

impl Summary {
    fn of(probes: &[&Probe]) -> Summary {
        let stat = |f: &dyn Fn(&Probe) -> f64, digits| {
            Stat::of(&probes.iter().map(|p| f(p)).collect::<Vec<_>>(), digits)
        };
        let diag = |f: &dyn Fn(&crate::CausalDiagonal) -> f64| {
            probes[0].diagonal.as_ref().map(|_| {
                stat(&|p: &Probe| f(p.diagonal.as_ref().expect("causal")), 2)
            })
        };
        Summary {
            rank_eps: stat(&|p| p.measures.rank_eps as f64, 1),
            rank_1e3: stat(&|p| p.measures.rank_1e3 as f64, 1),
            rank_1e6: stat(&|p| p.measures.rank_1e6 as f64, 1),
            rank_1e10: stat(&|p| p.measures.rank_1e10 as f64, 1),
            effective_rank: stat(&|p| p.measures.effective_rank, 1),
            stable_rank: stat(&|p| p.measures.stable_rank, 2),
            log10_cond: stat(&|p| p.measures.log10_cond, 1),
            log10_abs_det_svd: stat(&|p| p.measures.log10_abs_det, 0),
            output_rank: stat(&|p| p.output_rank as f64, 1),
            log10_det_exact: diag(&|c| c.log10_det),
            log10_min_diag: diag(&|c| c.log10_min_diag),
            log10_cond_lower_bound: diag(&|c| c.log10_cond_lower_bound),
        }
    }
}

/// Checks over every point and seed of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Checks {
    /// Matrices measured (points × seeds × masks).
    pub matrices: usize,
    /// Every causal matrix had a strictly positive diagonal (so `det A > 0`).
    pub causal_det_positive: bool,
    /// The most negative exact `log₁₀ det` of a causal matrix anywhere in the
    /// sweep.
    pub causal_min_log10_det: f64,
    /// `rank(A·V) = d` at every point, for both masks.
    pub output_rank_equals_d: bool,
    /// The largest `rank(A·V) − d` seen (never positive: the bound).
    pub output_rank_max_excess: i64,
    /// How many matrices had `rank(A·V) < d` at NumPy's tolerance.
    pub output_rank_deficient: usize,
    /// Every such shortfall happened where `n = d` and `A` itself is numerically
    /// rank-deficient.
    pub output_rank_deficient_only_where_a_is: bool,
}

pub fn beta_key(beta: f64) -> String {
    format!("b{beta}").replace('.', "p")
}

pub fn point_key(n: usize, d: usize, beta: f64) -> String {
    format!("n{n}_d{d}_{}", beta_key(beta))
}

pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ANCHOR: parallel
/// Apply `f` to every item on all cores; results come back in the items' order, so
/// the output does not depend on the number of threads.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<anyhow::Result<R>>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads().min(items.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *slots[i].lock().expect("no worker panicked") = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner().expect("no worker panicked").expect("every item ran")
        })
        .collect()
}
// ANCHOR_END: parallel

// ANCHOR: sweep
/// Every `(n, d, β, seed, mask)` of the configuration, largest `n` first (for load
/// balance).
pub fn sweep(cfg: &RunConfig) -> anyhow::Result<Vec<Probe>> {
    let mut points = Vec::new();
    for &n in cfg.ns.iter().rev() {
        for &d in &cfg.ds {
            for &beta in &cfg.betas {
                for seed in 0..cfg.seeds {
                    for &mask in Mask::VARIANTS {
                        points.push((n, d, beta, seed, mask));
                    }
                }
            }
        }
    }
    parallel_map(&points, |&(n, d, beta, seed, mask)| probe(n, d, beta, seed, mask))
}
// ANCHOR_END: sweep

pub(crate) fn summarise(
    cfg: &RunConfig,
    probes: &[Probe],
) -> (BTreeMap<String, BTreeMap<&'static str, Summary>>, Checks) {
    let mut points = BTreeMap::new();
    for &n in &cfg.ns {
        for &d in &cfg.ds {
            for &beta in &cfg.betas {
                let mut by_mask = BTreeMap::new();
                for &mask in Mask::VARIANTS {
                    let sel: Vec<&Probe> = probes
                        .iter()
                        .filter(|p| {
                            p.n == n && p.d == d && p.beta == beta && p.mask == mask
                        })
                        .collect();
                    by_mask.insert(mask.name(), Summary::of(&sel));
                }
                points.insert(point_key(n, d, beta), by_mask);
            }
        }
    }
    let causal: Vec<_> =
        probes.iter().filter_map(|p| p.diagonal.as_ref()).collect();
    let excess = |p: &Probe| p.output_rank as i64 - p.d.min(p.n) as i64;
    let checks = Checks {
        matrices: probes.len(),
        causal_det_positive: causal.iter().all(|c| c.all_positive),
        causal_min_log10_det: round_dp(
            causal.iter().map(|c| c.log10_det).fold(f64::INFINITY, f64::min),
            0,
        ),
        output_rank_equals_d: probes.iter().all(|p| excess(p) == 0),
        output_rank_max_excess: probes.iter().map(excess).max().unwrap_or(0),
        output_rank_deficient: probes.iter().filter(|p| excess(p) < 0).count(),
        output_rank_deficient_only_where_a_is: probes
            .iter()
            .filter(|p| excess(p) < 0)
            .all(|p| p.n == p.d && p.measures.rank_eps < p.n),
    };
    (points, checks)
}
