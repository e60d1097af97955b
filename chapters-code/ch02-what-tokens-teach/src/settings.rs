//! Settings: the corpus, tokenizer and model sizes of one run.

use serde::Serialize;
use transformer::PositionKind;
use transformer::chapter::{Chapter, Outputs, Preset};
use transformer::config::Config;
use transformer::tokenizer::Specials;

use crate::{compute, outputs};

/// The seed of the corpus, the tokenizer's training text, the models and the
/// masking.
pub const SEED: u64 = 2;
/// Sentinels in the tokenizer: enough for T5's rate and span length on rows of up
/// to 600 tokens.
pub const SENTINELS: u32 = 32;

/// The chapter's own flags: overrides of the preset.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Training steps of each of the three runs (default: 24 quick, 200 default).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Tokenizer vocabulary size, special tokens and the 256 bytes included
    /// (default: 448 quick, 1024 default).
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// Pretraining documents to generate (default: 300 quick, 4000 default).
    #[arg(long)]
    pub documents: Option<usize>,
    /// Training seeds per objective (default: 2 quick, 3 default).
    #[arg(long)]
    pub seeds: Option<usize>,
}

/// What one run of the chapter uses.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub preset: Preset,
    /// Pretraining documents (the tokenizer's training text and the training
    /// stream).
    pub documents: usize,
    /// Held-out documents, drawn from another seed.
    pub held_out_documents: usize,
    pub vocab_size: usize,
    /// Tokens a model reads per row.
    pub seq_len: usize,
    pub batch: usize,
    pub steps: usize,
    pub eval_every: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub lr: f64,
    /// Training seeds per objective (initial weights and masking); every objective
    /// sees the same seeds and the same rows in the same order, so the comparisons
    /// are paired.
    pub seeds: usize,
}

/// Settings that cannot describe the experiment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("--steps must be at least 1")]
    NoSteps,
    #[error(
        "--vocab-size must be between {min} and 8192 (256 bytes and {specials} special tokens come first), got {got}"
    )]
    Vocab { got: usize, min: usize, specials: u32 },
    #[error("--seeds must be at least 1")]
    NoSeeds,
    #[error("--documents must be at least 50, got {0}")]
    TooFewDocuments(usize),
    #[error(
        "chapter 2 has no large configuration yet: use --steps and --documents for a longer run"
    )]
    NoLarge,
}

impl Chapter for Settings {
    type Args = Args;
    type Error = SettingsError;

    fn new(preset: Preset, args: &Args) -> Result<Self, SettingsError> {
        let Args { steps, vocab_size, documents, seeds } = *args;
        let mut s = match preset {
            Preset::Quick => Settings {
                preset,
                documents: 300,
                held_out_documents: 40,
                vocab_size: 448,
                seq_len: 32,
                batch: 8,
                steps: 24,
                eval_every: 8,
                d_model: 32,
                n_layers: 1,
                lr: 3e-3,
                seeds: 2,
            },
            Preset::Default => Settings {
                preset,
                documents: 4000,
                held_out_documents: 200,
                vocab_size: 1024,
                seq_len: 64,
                batch: 16,
                steps: 200,
                eval_every: 20,
                d_model: 64,
                n_layers: 2,
                lr: 3e-3,
                seeds: 3,
            },
            Preset::Large => return Err(SettingsError::NoLarge),
        };
        if let Some(n) = steps {
            if n == 0 {
                return Err(SettingsError::NoSteps);
            }
            s.steps = n;
            s.eval_every = s.eval_every.min(n);
        }
        if let Some(v) = vocab_size {
            let min = 256
                + Specials::with_sentinels(SENTINELS).first_regular() as usize
                + 1;
            if !(min..=8192).contains(&v) {
                return Err(SettingsError::Vocab {
                    got: v,
                    min,
                    specials: min as u32 - 257,
                });
            }
            s.vocab_size = v;
        }
        if let Some(k) = seeds {
            if k == 0 {
                return Err(SettingsError::NoSeeds);
            }
            s.seeds = k;
        }
        if let Some(d) = documents {
            if d < 50 {
                return Err(SettingsError::TooFewDocuments(d));
            }
            s.documents = d;
        }
        Ok(s)
    }

    fn run(&self) -> anyhow::Result<Outputs> {
        outputs(&compute(self)?)
    }
}

impl Settings {
    /// The model shared by the three training runs.
    pub fn model_config(&self, vocab_size: usize) -> Config {
        Config {
            vocab_size,
            d_model: self.d_model,
            n_heads: 4,
            n_kv_heads: 4,
            d_ff: 4 * self.d_model,
            n_layers: self.n_layers,
            max_len: self.seq_len,
            positions: PositionKind::Learned,
            tie_embeddings: false,
            kernels: Default::default(),
        }
    }
}
