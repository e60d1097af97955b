//! The report: every experiment of the chapter, in the page's order.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::collapse::{Collapse, run_collapse};
use crate::trained::{TrainedConfig, TrainedReport, train_and_measure};
use crate::*;

/// Everything the page quotes (timings excluded, so that the report can be
/// snapshotted).
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

fn list<T: std::fmt::Display>(xs: &[T]) -> String {
    xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// Run every experiment of the configuration.
pub fn compute(cfg: &RunConfig) -> anyhow::Result<Outcome> {
    crate::sequential_linear_algebra();
    let start = Instant::now();
    let probes = sweep(cfg)?;
    let sweep_seconds = start.elapsed().as_secs_f64();
    let (points, checks) = summarise(cfg, &probes);
    let hadamard = run_hadamard(cfg)?;
    let t = Instant::now();
    let collapse = run_collapse(cfg)?;
    let collapse_seconds = t.elapsed().as_secs_f64();
    let trained = train_and_measure(&cfg.trained)?;
    let (n, d) =
        (*cfg.ns.iter().max().expect("n"), *cfg.ds.iter().max().expect("d"));
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
