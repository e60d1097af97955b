//! Every experiment of the chapter, its report (`results.json`), figures and tables.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;
use transformer::io::{self, round, thousands};
use transformer::plot::{LineChart, Series};

use crate::collapse::{Variant, collapse};
use crate::trained::{Model, TrainedConfig, TrainedReport, train_and_measure};
use crate::{Mask, Probe, draw_qkv, hadamard_bound, hadamard_ranks, logits, probe, singular_values};

/// What to run. `quick` is for tests (a few seconds); `default` is what the book shows.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub name: &'static str,
    pub ns: Vec<usize>,
    pub ds: Vec<usize>,
    pub betas: Vec<f64>,
    pub seeds: u64,
    pub hadamard_n: usize,
    pub hadamard_ds: Vec<usize>,
    pub hadamard_k: usize,
    pub collapse_n: usize,
    pub collapse_d: usize,
    pub collapse_layers: usize,
    pub collapse_seeds: u64,
    pub trained: TrainedConfig,
}

impl RunConfig {
    pub fn quick() -> Self {
        RunConfig {
            name: "quick",
            ns: vec![32, 64],
            ds: vec![4, 16],
            betas: vec![0.1, 1.0, 10.0],
            seeds: 2,
            hadamard_n: 48,
            hadamard_ds: vec![1, 2, 3],
            hadamard_k: 4,
            collapse_n: 32,
            collapse_d: 16,
            collapse_layers: 6,
            collapse_seeds: 2,
            trained: TrainedConfig {
                documents: 120,
                tokenizer_documents: 120,
                heldout_documents: 20,
                vocab_size: 320,
                d_model: 32,
                n_heads: 2,
                n_layers: 1,
                d_ff: 64,
                seq_len: 32,
                prefix: 16,
                batch: 4,
                steps: 12,
                mlm_steps: 12,
                lr: 3e-3,
                eval_rows: 4,
                measured_rows: 2,
                seed: 3,
            },
        }
    }

    pub fn default_config() -> Self {
        RunConfig {
            name: "default",
            ns: vec![64, 128, 256, 512],
            ds: vec![8, 16, 32, 64],
            betas: vec![0.1, 0.3, 1.0, 3.0, 10.0],
            seeds: 5,
            hadamard_n: 256,
            hadamard_ds: vec![1, 2, 3, 4],
            hadamard_k: 6,
            collapse_n: 128,
            collapse_d: 64,
            collapse_layers: 12,
            collapse_seeds: 5,
            trained: TrainedConfig {
                documents: 6000,
                tokenizer_documents: 1000,
                heldout_documents: 100,
                vocab_size: 512,
                d_model: 64,
                n_heads: 4,
                n_layers: 2,
                d_ff: 256,
                seq_len: 128,
                prefix: 64,
                batch: 8,
                steps: 800,
                mlm_steps: 1200,
                lr: 3e-3,
                eval_rows: 16,
                measured_rows: 4,
                seed: 3,
            },
        }
    }

    pub fn by_name(name: &str) -> anyhow::Result<Self> {
        match name {
            "quick" => Ok(Self::quick()),
            "default" => Ok(Self::default_config()),
            other => anyhow::bail!("unknown configuration {other:?}: expected \"quick\" or \"default\""),
        }
    }
}

/// Mean and sample standard deviation over seeds, rounded for display.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
}

impl Stat {
    pub fn of(xs: &[f64], digits: i32) -> Stat {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var =
            if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        Stat { mean: round(mean, digits), std: round(var.sqrt(), digits) }
    }

    fn show(&self, digits: usize) -> String {
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
            probes[0].diagonal.as_ref().map(|_| stat(&|p: &Probe| f(p.diagonal.as_ref().expect("causal")), 2))
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
    /// The most negative exact `log₁₀ det` of a causal matrix anywhere in the sweep.
    pub causal_min_log10_det: f64,
    /// `rank(A·V) = d` at every point, for both masks.
    pub output_rank_equals_d: bool,
    /// The largest `rank(A·V) − d` seen (never positive: the bound).
    pub output_rank_max_excess: i64,
    /// How many matrices had `rank(A·V) < d` at NumPy's tolerance.
    pub output_rank_deficient: usize,
    /// Every such shortfall happened where `n = d` and `A` itself is numerically rank-deficient.
    pub output_rank_deficient_only_where_a_is: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HadamardCell {
    pub rank: usize,
    pub bound: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hadamard {
    pub n: usize,
    pub k_max: usize,
    /// `d<d>` → `k<k>` → measured rank and bound.
    pub cells: BTreeMap<String, BTreeMap<String, HadamardCell>>,
    pub all_within_bound: bool,
    pub all_attain_bound: bool,
}

/// Distance to the rank-1 subspace per layer, over seeds (geometric mean).
#[derive(Debug, Clone, Serialize)]
pub struct CollapseSeries {
    /// `log₁₀` of the distance, per layer (entry 0 is the input); mean over seeds.
    pub log10_mean: Vec<f64>,
    pub log10_std: Vec<f64>,
    /// The distances after the first, second and last layer, as `1.2e-8`-style strings.
    pub layer1: String,
    pub layer2: String,
    pub last: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Collapse {
    pub n: usize,
    pub d: usize,
    pub layers: usize,
    pub seeds: u64,
    /// variant → mask → series.
    pub series: BTreeMap<String, BTreeMap<String, CollapseSeries>>,
}

/// Everything the page quotes (timings excluded, so that the report can be snapshotted).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: &'static str,
    pub seeds: u64,
    pub ns: Vec<usize>,
    pub ds: Vec<usize>,
    pub betas: Vec<f64>,
    /// The same grids as text for the page, e.g. "64, 128, 256, 512".
    pub ns_text: String,
    pub ds_text: String,
    pub betas_text: String,
    /// The largest `n` and `d` of the sweep, where the page's headline table sits.
    pub headline_n: usize,
    pub headline_d: usize,
    pub headline_d_plus_1: usize,
    /// `n<n>_d<d>_b<β>` (β with `p` for the decimal point) → mask → summary.
    pub points: BTreeMap<String, BTreeMap<&'static str, Summary>>,
    pub checks: Checks,
    pub hadamard: Hadamard,
    pub collapse: Collapse,
    pub trained_config: TrainedConfig,
    pub trained: TrainedReport,
}

/// Wall-clock times, kept out of [`Report`] (they differ on every run and machine).
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub sweep_seconds: f64,
    pub sweep_svds: usize,
    pub collapse_seconds: f64,
    pub trained_seconds: f64,
    pub total_seconds: f64,
    pub threads: usize,
}

/// The report plus everything written next to it.
pub struct Outcome {
    pub report: Report,
    pub timing: Timing,
    pub figures: Vec<(String, String)>,
    pub tables: Vec<(String, String)>,
}

pub fn beta_key(beta: f64) -> String {
    format!("b{beta}").replace('.', "p")
}

pub fn point_key(n: usize, d: usize, beta: f64) -> String {
    format!("n{n}_d{d}_{}", beta_key(beta))
}

fn list<T: std::fmt::Display>(xs: &[T]) -> String {
    xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ANCHOR: parallel
/// Apply `f` to every item on all cores; results come back in the items' order, so the
/// output does not depend on the number of threads.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<anyhow::Result<R>>>> = items.iter().map(|_| Mutex::new(None)).collect();
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
    slots.into_iter().map(|m| m.into_inner().expect("no worker panicked").expect("every item ran")).collect()
}
// ANCHOR_END: parallel

// ANCHOR: sweep
/// Every `(n, d, β, seed, mask)` of the configuration, largest `n` first (for load balance).
pub fn sweep(cfg: &RunConfig) -> anyhow::Result<Vec<Probe>> {
    let mut points = Vec::new();
    for &n in cfg.ns.iter().rev() {
        for &d in &cfg.ds {
            for &beta in &cfg.betas {
                for seed in 0..cfg.seeds {
                    for mask in Mask::BOTH {
                        points.push((n, d, beta, seed, mask));
                    }
                }
            }
        }
    }
    parallel_map(&points, |&(n, d, beta, seed, mask)| probe(n, d, beta, seed, mask))
}
// ANCHOR_END: sweep

fn summarise(
    cfg: &RunConfig,
    probes: &[Probe],
) -> (BTreeMap<String, BTreeMap<&'static str, Summary>>, Checks) {
    let mut points = BTreeMap::new();
    for &n in &cfg.ns {
        for &d in &cfg.ds {
            for &beta in &cfg.betas {
                let mut by_mask = BTreeMap::new();
                for mask in Mask::BOTH {
                    let sel: Vec<&Probe> = probes
                        .iter()
                        .filter(|p| p.n == n && p.d == d && p.beta == beta && p.mask == mask)
                        .collect();
                    by_mask.insert(mask.name(), Summary::of(&sel));
                }
                points.insert(point_key(n, d, beta), by_mask);
            }
        }
    }
    let causal: Vec<_> = probes.iter().filter_map(|p| p.diagonal.as_ref()).collect();
    let excess = |p: &Probe| p.output_rank as i64 - p.d.min(p.n) as i64;
    let checks = Checks {
        matrices: probes.len(),
        causal_det_positive: causal.iter().all(|c| c.all_positive),
        causal_min_log10_det: round(causal.iter().map(|c| c.log10_det).fold(f64::INFINITY, f64::min), 0),
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

fn hadamard(cfg: &RunConfig) -> anyhow::Result<Hadamard> {
    let ranks = parallel_map(&cfg.hadamard_ds, |&d| hadamard_ranks(cfg.hadamard_n, d, cfg.hadamard_k, 0))?;
    let mut cells = BTreeMap::new();
    let (mut within, mut attain) = (true, true);
    for (&d, ranks) in cfg.hadamard_ds.iter().zip(&ranks) {
        let mut row = BTreeMap::new();
        for (i, &rank) in ranks.iter().enumerate() {
            let bound = hadamard_bound(cfg.hadamard_n, d, i + 1);
            within &= rank <= bound;
            attain &= rank == bound;
            row.insert(format!("k{}", i + 1), HadamardCell { rank, bound });
        }
        cells.insert(format!("d{d}"), row);
    }
    Ok(Hadamard {
        n: cfg.hadamard_n,
        k_max: cfg.hadamard_k,
        cells,
        all_within_bound: within,
        all_attain_bound: attain,
    })
}

fn sci(log10: f64) -> String {
    format!("{:.1e}", 10f64.powf(log10))
}

fn run_collapse(cfg: &RunConfig) -> anyhow::Result<Collapse> {
    let mut jobs = Vec::new();
    for variant in Variant::ALL {
        for mask in Mask::BOTH {
            for seed in 0..cfg.collapse_seeds {
                jobs.push((variant, mask, seed));
            }
        }
    }
    let runs = parallel_map(&jobs, |&(variant, mask, seed)| {
        Ok(collapse(cfg.collapse_n, cfg.collapse_d, cfg.collapse_layers, seed, variant, mask))
    })?;
    let mut series: BTreeMap<String, BTreeMap<String, CollapseSeries>> = BTreeMap::new();
    for variant in Variant::ALL {
        for mask in Mask::BOTH {
            let sel: Vec<&Vec<f64>> = jobs
                .iter()
                .zip(&runs)
                .filter(|(j, _)| j.0 == variant && j.1 == mask)
                .map(|(_, r)| r)
                .collect();
            let per_layer: Vec<Stat> = (0..=cfg.collapse_layers)
                .map(|l| Stat::of(&sel.iter().map(|r| r[l].max(1e-300).log10()).collect::<Vec<_>>(), 2))
                .collect();
            let mean: Vec<f64> = per_layer.iter().map(|s| s.mean).collect();
            let s = CollapseSeries {
                layer1: sci(mean[1]),
                layer2: sci(mean[2.min(cfg.collapse_layers)]),
                last: sci(mean[cfg.collapse_layers]),
                log10_std: per_layer.iter().map(|s| s.std).collect(),
                log10_mean: mean,
            };
            series.entry(variant.name().to_string()).or_default().insert(mask.name().to_string(), s);
        }
    }
    Ok(Collapse {
        n: cfg.collapse_n,
        d: cfg.collapse_d,
        layers: cfg.collapse_layers,
        seeds: cfg.collapse_seeds,
        series,
    })
}

// ANCHOR: run
/// Run every experiment of the configuration.
pub fn run(cfg: &RunConfig) -> anyhow::Result<Outcome> {
    crate::sequential_linear_algebra();
    let start = Instant::now();
    let probes = sweep(cfg)?;
    let sweep_seconds = start.elapsed().as_secs_f64();
    let (points, checks) = summarise(cfg, &probes);
    let hadamard = hadamard(cfg)?;
    let t = Instant::now();
    let collapse = run_collapse(cfg)?;
    let collapse_seconds = t.elapsed().as_secs_f64();
    let trained = train_and_measure(&cfg.trained)?;
    let (n, d) = (*cfg.ns.iter().max().expect("n"), *cfg.ds.iter().max().expect("d"));
    let report = Report {
        config: cfg.name,
        seeds: cfg.seeds,
        ns: cfg.ns.clone(),
        ds: cfg.ds.clone(),
        betas: cfg.betas.clone(),
        ns_text: list(&cfg.ns),
        ds_text: list(&cfg.ds),
        betas_text: list(&cfg.betas),
        headline_n: n,
        headline_d: d,
        headline_d_plus_1: d + 1,
        points,
        checks,
        hadamard,
        collapse,
        trained_config: cfg.trained.clone(),
        trained,
    };
    let figures = figures(cfg, &report)?;
    let tables = tables(cfg, &report);
    let timing = Timing {
        sweep_seconds,
        sweep_svds: 2 * probes.len(),
        collapse_seconds,
        trained_seconds: report.trained.seconds,
        total_seconds: start.elapsed().as_secs_f64(),
        threads: threads(),
    };
    Ok(Outcome { report, timing, figures, tables })
}
// ANCHOR_END: run

impl Outcome {
    /// Write `results.json` (the report plus rounded timings), the figures and the tables.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_value(&self.report)?;
        let t = &self.timing;
        json["timing"] = serde_json::json!({
            "sweep_seconds": round(t.sweep_seconds, 1),
            "sweep_svds": t.sweep_svds,
            "collapse_seconds": round(t.collapse_seconds, 1),
            "trained_seconds": round(t.trained_seconds, 0),
            "total_seconds": round(t.total_seconds, 0),
            "threads": t.threads,
        });
        io::write_json(&dir.join("results.json"), &json)?;
        for (name, svg) in &self.figures {
            io::write_text(&dir.join(name), svg)?;
        }
        for (name, md) in &self.tables {
            io::write_text(&dir.join(name), md)?;
        }
        Ok(())
    }
}

fn label(mask: Mask) -> &'static str {
    mask.name()
}

fn figures(cfg: &RunConfig, r: &Report) -> anyhow::Result<Vec<(String, String)>> {
    let (n, d) = (r.headline_n, r.headline_d);
    let d_small = *cfg.ds.iter().min().expect("d");
    let mut out = Vec::new();

    // Singular-value spectra at the headline size, seed 0.
    let [q, k, _] = draw_qkv(n, d, 0);
    let mut spectra = Vec::new();
    for &beta in cfg.betas.iter().filter(|&&b| b == 0.1 || b == 1.0 || b == 10.0) {
        let s = logits(q.as_ref(), k.as_ref(), beta);
        for mask in Mask::BOTH {
            let sv = singular_values(crate::attention(s.as_ref(), mask).as_ref())?;
            let top = sv[0];
            spectra.push(Series {
                label: format!("{} β={beta}", label(mask)),
                points: sv.iter().enumerate().map(|(i, s)| ((i + 1) as f64, s / top)).collect(),
            });
        }
    }
    let title = format!("Singular values of A (n = {n}, d = {d}, seed 0)");
    let chart = LineChart {
        title: &title,
        x_label: "index i",
        y_label: "σᵢ / σ₁",
        log_x: false,
        log_y: true,
        series: &spectra,
    };
    out.push(("spectra.svg".to_string(), chart.to_svg()?));

    // Effective rank and rank at 1e-3 against β.
    for (file, what, y_label) in [
        ("effective_rank_vs_beta.svg", "effective rank", "effective rank (mean over seeds)"),
        ("rank_vs_beta.svg", "rank at tolerance 1e-3", "numerical rank, tol 1e-3 (mean)"),
    ] {
        let mut series = Vec::new();
        for dd in [d_small, d] {
            for mask in Mask::BOTH {
                let points = cfg
                    .betas
                    .iter()
                    .map(|&b| {
                        let s = &r.points[&point_key(n, dd, b)][mask.name()];
                        (
                            b,
                            if file.starts_with("effective") {
                                s.effective_rank.mean
                            } else {
                                s.rank_1e3.mean
                            },
                        )
                    })
                    .collect();
                series.push(Series { label: format!("{} d={dd}", label(mask)), points });
            }
        }
        let title = format!("A's {what} against the temperature β (n = {n})");
        let chart =
            LineChart { title: &title, x_label: "β", y_label, log_x: true, log_y: false, series: &series };
        out.push((file.to_string(), chart.to_svg()?));
    }

    // Effective rank / n against n / d, averaged over (n, d) pairs with the same ratio.
    let mut series = Vec::new();
    for &beta in cfg.betas.iter().filter(|&&b| b == 0.1 || b == 1.0) {
        for mask in Mask::BOTH {
            let mut by_ratio: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for &nn in &cfg.ns {
                for &dd in &cfg.ds {
                    let s = &r.points[&point_key(nn, dd, beta)][mask.name()];
                    by_ratio.entry(nn / dd).or_default().push(s.effective_rank.mean / nn as f64);
                }
            }
            let points = by_ratio
                .iter()
                .map(|(&x, ys)| (x as f64, ys.iter().sum::<f64>() / ys.len() as f64))
                .collect();
            series.push(Series { label: format!("{} β={beta}", label(mask)), points });
        }
    }
    let chart = LineChart {
        title: "Effective rank / n against n / d",
        x_label: "n / d",
        y_label: "effective rank / n",
        log_x: true,
        log_y: false,
        series: &series,
    };
    out.push(("effective_rank_vs_ratio.svg".to_string(), chart.to_svg()?));

    // Causal log-determinant against β, per n.
    let series: Vec<Series> = cfg
        .ns
        .iter()
        .map(|&nn| Series {
            label: format!("n={nn}"),
            points: cfg
                .betas
                .iter()
                .map(|&b| {
                    let s = &r.points[&point_key(nn, d, b)]["causal"];
                    (b, s.log10_det_exact.expect("causal").mean)
                })
                .collect(),
        })
        .collect();
    let title = format!("Causal attention: exact log₁₀ det A (d = {d})");
    let chart = LineChart {
        title: &title,
        x_label: "β",
        y_label: "log₁₀ det A",
        log_x: true,
        log_y: false,
        series: &series,
    };
    out.push(("causal_log_det.svg".to_string(), chart.to_svg()?));

    // Rank collapse with depth.
    let mut series = Vec::new();
    for variant in Variant::ALL {
        for mask in Mask::BOTH {
            let s = &r.collapse.series[variant.name()][mask.name()];
            series.push(Series {
                label: format!("{}, {}", variant.label(), mask.name()),
                points: s.log10_mean.iter().enumerate().map(|(l, &y)| (l as f64, 10f64.powf(y))).collect(),
            });
        }
    }
    let title = format!("Distance to rank 1 with depth (n = {}, d = {})", r.collapse.n, r.collapse.d);
    let chart = LineChart {
        title: &title,
        x_label: "layer",
        y_label: "‖X − 1μᵀ‖ / ‖X‖",
        log_x: false,
        log_y: true,
        series: &series,
    };
    out.push(("collapse.svg".to_string(), chart.to_svg()?));

    // Trained models: effective rank per head, before and after training, for the k × k
    // block (causal decoder against prefix LM) and for the whole n × n matrix.
    let t = &r.trained;
    for (file, block, title) in [
        (
            "trained_block_effective_rank.svg",
            true,
            format!("Trained models: effective rank of the first {k} × {k} block of each head", k = t.prefix),
        ),
        (
            "trained_effective_rank.svg",
            false,
            format!("Trained models: effective rank of each head's whole {n} × {n} matrix", n = t.seq_len),
        ),
    ] {
        let mut series = Vec::new();
        for (name, m) in ordered(t) {
            for (when, heads) in [("init", &m.init), ("trained", &m.trained)] {
                let points: Vec<(f64, f64)> = heads
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| {
                        let x = if block { h.block.as_ref()? } else { &h.full };
                        Some(((i + 1) as f64, x.effective_rank))
                    })
                    .collect();
                if !points.is_empty() {
                    series.push(Series { label: format!("{name}, {when}"), points });
                }
            }
        }
        let chart = LineChart {
            title: &title,
            x_label: "head (layer 1 first)",
            y_label: "effective rank (held-out mean)",
            log_x: false,
            log_y: false,
            series: &series,
        };
        out.push((file.to_string(), chart.to_svg()?));
    }
    Ok(out)
}

fn markdown(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", headers.join(" | "), "---|".repeat(headers.len()));
    for row in rows {
        s.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    s
}

fn h(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

fn tables(cfg: &RunConfig, r: &Report) -> Vec<(String, String)> {
    let (n, d) = (r.headline_n, r.headline_d);
    let mut out = Vec::new();

    // The headline: Su's setting, every β, both masks.
    let mut rows = Vec::new();
    for &b in &cfg.betas {
        for mask in Mask::BOTH {
            let s = &r.points[&point_key(n, d, b)][mask.name()];
            let det = match &s.log10_det_exact {
                Some(x) => format!("{} (exact)", x.show(0)),
                None => format!("{} (SVD)", s.log10_abs_det_svd.show(0)),
            };
            rows.push(vec![
                format!("{b}"),
                mask.name().to_string(),
                s.rank_eps.show(1),
                s.rank_1e3.show(1),
                s.rank_1e6.show(1),
                s.effective_rank.show(1),
                s.stable_rank.show(2),
                s.log10_cond.show(1),
                det,
                s.log10_min_diag.map_or("–".to_string(), |x| x.show(1)),
            ]);
        }
    }
    let headers = h(&[
        "β",
        "mask",
        "rank (NumPy tol.)",
        "rank @1e-3",
        "rank @1e-6",
        "effective rank",
        "stable rank",
        "log₁₀ cond (SVD)",
        "log₁₀ det",
        "log₁₀ min Aᵢᵢ",
    ]);
    out.push(("headline.md".to_string(), markdown(&headers, &rows)));

    // Grids over (n, d) × β: effective rank and rank at 1e-3, "bidirectional / causal".
    for (file, pick) in [
        ("grid_effective_rank.md", (|s: &Summary| s.effective_rank.mean) as fn(&Summary) -> f64),
        ("grid_rank_1e3.md", |s: &Summary| s.rank_1e3.mean),
    ] {
        let mut headers = h(&["n", "d"]);
        headers.extend(cfg.betas.iter().map(|b| format!("β = {b}")));
        let mut rows = Vec::new();
        for &nn in &cfg.ns {
            for &dd in &cfg.ds {
                let mut row = vec![nn.to_string(), dd.to_string()];
                for &b in &cfg.betas {
                    let p = &r.points[&point_key(nn, dd, b)];
                    row.push(format!("{:.0} / {:.0}", pick(&p["bidirectional"]), pick(&p["causal"])));
                }
                rows.push(row);
            }
        }
        out.push((file.to_string(), markdown(&headers, &rows)));
    }

    // Hadamard powers.
    let mut headers = h(&["d"]);
    headers.extend((1..=cfg.hadamard_k).map(|k| format!("k = {k}")));
    let rows: Vec<Vec<String>> = cfg
        .hadamard_ds
        .iter()
        .map(|&dd| {
            let cells = &r.hadamard.cells[&format!("d{dd}")];
            let mut row = vec![dd.to_string()];
            row.extend((1..=cfg.hadamard_k).map(|k| {
                let c = &cells[&format!("k{k}")];
                format!("{} / {}", c.rank, c.bound)
            }));
            row
        })
        .collect();
    out.push(("hadamard.md".to_string(), markdown(&headers, &rows)));

    // Causal determinant and conditioning, per n and β at the largest d.
    let mut rows = Vec::new();
    for &nn in &cfg.ns {
        for &b in &cfg.betas {
            let s = &r.points[&point_key(nn, d, b)]["causal"];
            let (det, min, lower) = (
                s.log10_det_exact.expect("causal"),
                s.log10_min_diag.expect("causal"),
                s.log10_cond_lower_bound.expect("causal"),
            );
            rows.push(vec![
                nn.to_string(),
                format!("{b}"),
                det.show(0),
                min.show(1),
                lower.show(1),
                s.log10_cond.show(1),
                s.rank_eps.show(1),
            ]);
        }
    }
    let headers = h(&[
        "n",
        "β",
        "log₁₀ det A (exact)",
        "log₁₀ min Aᵢᵢ",
        "log₁₀ cond, lower bound",
        "log₁₀ cond (SVD)",
        "rank (NumPy tol.)",
    ]);
    out.push(("causal.md".to_string(), markdown(&headers, &rows)));

    // Per-head output rank at the largest n.
    let mut headers = h(&["d", "mask"]);
    headers.extend(cfg.betas.iter().map(|b| format!("β = {b}")));
    let mut rows = Vec::new();
    for &dd in &cfg.ds {
        for mask in Mask::BOTH {
            let mut row = vec![dd.to_string(), mask.name().to_string()];
            row.extend(
                cfg.betas
                    .iter()
                    .map(|&b| format!("{:.1}", r.points[&point_key(n, dd, b)][mask.name()].output_rank.mean)),
            );
            rows.push(row);
        }
    }
    out.push(("output_rank.md".to_string(), markdown(&headers, &rows)));

    // Rank collapse, per layer.
    let mut headers = h(&["layer"]);
    for variant in Variant::ALL {
        for mask in Mask::BOTH {
            headers.push(format!("{}, {}", variant.label(), mask.name()));
        }
    }
    let rows: Vec<Vec<String>> = (0..=r.collapse.layers)
        .map(|l| {
            let mut row = vec![l.to_string()];
            for variant in Variant::ALL {
                for mask in Mask::BOTH {
                    row.push(sci(r.collapse.series[variant.name()][mask.name()].log10_mean[l]));
                }
            }
            row
        })
        .collect();
    out.push(("collapse.md".to_string(), markdown(&headers, &rows)));

    // Trained models: what they learned, then their heads.
    out.extend(trained_tables(&r.trained));
    out
}

fn arrow(a: f64, b: f64, digits: usize) -> String {
    format!("{a:.digits$} → {b:.digits$}")
}

fn arrow_opt(a: Option<f64>, b: Option<f64>, digits: usize) -> String {
    match (a, b) {
        (Some(a), Some(b)) => arrow(a, b, digits),
        _ => "–".to_string(),
    }
}

/// The trained models in the page's order: causal decoder, prefix LM, encoder.
fn ordered(t: &TrainedReport) -> impl Iterator<Item = (&'static str, &crate::trained::ModelReport)> {
    Model::ALL.into_iter().filter_map(|m| t.models.get(m.name()).map(|r| (m.name(), r)))
}

fn trained_tables(t: &TrainedReport) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let headers = h(&[
        "model",
        "steps",
        "tokens read",
        "tokens supervised",
        "held-out loss, own objective",
        &format!("held-out loss after a {}-token prefix", t.prefix),
    ]);
    let rows: Vec<Vec<String>> = ordered(t)
        .map(|(_, m)| {
            vec![
                m.label.to_string(),
                m.steps.to_string(),
                thousands(m.tokens_seen as u64),
                thousands(m.tokens_supervised as u64),
                arrow(m.heldout_loss_init, m.heldout_loss_trained, 2),
                arrow_opt(m.suffix_loss_init, m.suffix_loss_trained, 2),
            ]
        })
        .collect();
    out.push(("trained_models.md".to_string(), markdown(&headers, &rows)));

    // The k × k block: causal decoder against prefix LM, head by head.
    let (Some(c), Some(p)) = (t.models.get("causal"), t.models.get("prefix")) else { return out };
    let headers = h(&[
        "layer",
        "head",
        "effective rank, causal",
        "effective rank, prefix",
        "rank @1e-3, causal",
        "rank @1e-3, prefix",
        "stable rank, causal",
        "stable rank, prefix",
        "log₁₀ cond, causal",
        "log₁₀ cond, prefix",
        "rank of ln A, prefix",
    ]);
    let mut rows = Vec::new();
    for i in 0..c.init.len() {
        let blk =
            |heads: &[crate::trained::HeadSummary]| heads[i].block.clone().expect("a decoder has a block");
        let (ci, ct, pi, pt) = (blk(&c.init), blk(&c.trained), blk(&p.init), blk(&p.trained));
        rows.push(vec![
            (c.init[i].layer + 1).to_string(),
            (c.init[i].head + 1).to_string(),
            arrow(ci.effective_rank, ct.effective_rank, 1),
            arrow(pi.effective_rank, pt.effective_rank, 1),
            arrow(ci.rank_1e3, ct.rank_1e3, 1),
            arrow(pi.rank_1e3, pt.rank_1e3, 1),
            arrow(ci.stable_rank, ct.stable_rank, 2),
            arrow(pi.stable_rank, pt.stable_rank, 2),
            arrow(ci.log10_cond, ct.log10_cond, 1),
            arrow(pi.log10_cond, pt.log10_cond, 1),
            arrow_opt(pi.log_rank, pt.log_rank, 1),
        ]);
    }
    out.push(("trained_block.md".to_string(), markdown(&headers, &rows)));

    // The whole n × n matrix, every model.
    let headers = h(&[
        "model",
        "layer",
        "head",
        "effective rank",
        "rank @1e-3",
        "stable rank",
        "log₁₀ cond",
        "log₁₀ min Aᵢᵢ (causal)",
        "rank of ln A (encoder)",
    ]);
    let mut rows = Vec::new();
    for (name, m) in ordered(t) {
        for (a, b) in m.init.iter().zip(&m.trained) {
            let (a, bf) = (&a.full, &b.full);
            rows.push(vec![
                name.to_string(),
                (b.layer + 1).to_string(),
                (b.head + 1).to_string(),
                arrow(a.effective_rank, bf.effective_rank, 1),
                arrow(a.rank_1e3, bf.rank_1e3, 1),
                arrow(a.stable_rank, bf.stable_rank, 2),
                arrow(a.log10_cond, bf.log10_cond, 1),
                arrow_opt(a.log10_min_diag, bf.log10_min_diag, 1),
                arrow_opt(a.log_rank, bf.log_rank, 1),
            ]);
        }
    }
    out.push(("trained_full.md".to_string(), markdown(&headers, &rows)));
    out
}
