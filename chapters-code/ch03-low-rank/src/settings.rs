//! Settings: the grids of the sweep and the sizes of every experiment.

use serde::Serialize;

use crate::trained::TrainedConfig;
use crate::{compute, outputs};
use transformer::chapter::{Chapter, Outputs, Preset};

/// What to run. `quick` is for tests (a few seconds); `default` is what the book
/// shows.
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
}

impl Chapter for RunConfig {
    type Args = Args;
    type Error = anyhow::Error;

    fn new(preset: Preset, _args: &Args) -> anyhow::Result<Self> {
        match preset {
            Preset::Quick => Ok(Self::quick()),
            Preset::Default => Ok(Self::default_config()),
            Preset::Large => anyhow::bail!(
                "chapter 3 has no large configuration yet; probe single points with the `probe` binary \
                 (cargo run --release -p ch03-low-rank --bin probe -- --help)"
            ),
        }
    }

    fn run(&self) -> anyhow::Result<Outputs> {
        outputs(&compute(self)?)
    }
}

/// Chapter 3 has no flags of its own: single points of the sweep are measured by
/// the `probe` binary instead.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {}
