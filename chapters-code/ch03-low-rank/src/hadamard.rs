//! Hadamard powers: the rank bound that makes exp(S) full rank, measured.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::*;

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

pub fn run_hadamard(cfg: &RunConfig) -> anyhow::Result<Hadamard> {
    let ranks = parallel_map(&cfg.hadamard_ds, |&d| {
        hadamard_ranks(cfg.hadamard_n, d, cfg.hadamard_k, 0)
    })?;
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
