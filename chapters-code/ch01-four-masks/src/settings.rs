//! The settings of one run: the model shape shared by every family and the
//! example's lengths.

use serde::Serialize;
use transformer::PositionKind;
use transformer::chapter::{Chapter, Outputs, Preset};
use transformer::config::Config;

use crate::{compute, outputs};

/// The seed of every model in this chapter.
pub const SEED: u64 = 1;

/// The chapter's own flags: overrides of the preset's lengths.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Tokens in the example sequence (default: 6 quick, 10 default).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Tokens in the prefix: the prefix LM's bidirectional part and the
    /// encoder-decoder's input (default: 3 quick, 7 default).
    #[arg(long)]
    pub prefix_len: Option<usize>,
}

/// The model shape shared by all four families.
pub fn config(preset: Preset) -> Result<Config, SettingsError> {
    match preset {
        Preset::Quick => Ok(Config {
            vocab_size: 64,
            d_model: 32,
            n_heads: 2,
            n_kv_heads: 2,
            d_ff: 128,
            n_layers: 2,
            max_len: 32,
            positions: PositionKind::Learned,
            tie_embeddings: false,
            kernels: Default::default(),
        }),
        Preset::Default => Ok(Config {
            vocab_size: 1024,
            d_model: 256,
            n_heads: 4,
            n_kv_heads: 4,
            d_ff: 1024,
            n_layers: 4,
            max_len: 64,
            positions: PositionKind::Learned,
            tie_embeddings: false,
            kernels: Default::default(),
        }),
        Preset::Large => Err(SettingsError::NoLarge),
    }
}

/// Sequence length and prefix length used when the command line gives none.
fn lengths(preset: Preset) -> (usize, usize) {
    match preset {
        Preset::Quick => (6, 3),
        _ => (10, 7),
    }
}

/// What one run of the chapter uses.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub preset: Preset,
    #[serde(skip)]
    pub config: Config,
    /// Tokens in the example sequence.
    pub seq_len: usize,
    /// Tokens in the prefix (the prefix LM's bidirectional part, the
    /// encoder-decoder's input).
    pub prefix_len: usize,
}

/// Settings that cannot describe the experiment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(
        "--seq-len must be at least 2 (a prefix and at least one token after it), got {0}"
    )]
    TooShort(usize),
    #[error("--seq-len {seq_len} is longer than the model's max_len {max_len}")]
    TooLong { seq_len: usize, max_len: usize },
    #[error(
        "--prefix-len must be between 1 and seq-len − 1 = {max} (the encoder-decoder needs an input \
         and an output token), got {prefix_len}"
    )]
    BadPrefix { prefix_len: usize, max: usize },
    #[error(
        "chapter 1 has no large configuration: its models are untrained, so size changes nothing it shows"
    )]
    NoLarge,
}

impl Chapter for Settings {
    type Args = Args;
    type Error = SettingsError;

    fn new(preset: Preset, args: &Args) -> Result<Self, SettingsError> {
        let Args { seq_len, prefix_len } = *args;
        let config = config(preset)?;
        let (default_seq, default_prefix) = lengths(preset);
        let seq_len = seq_len.unwrap_or(default_seq);
        if seq_len < 2 {
            return Err(SettingsError::TooShort(seq_len));
        }
        if seq_len > config.max_len {
            return Err(SettingsError::TooLong {
                seq_len,
                max_len: config.max_len,
            });
        }
        let prefix_len = prefix_len.unwrap_or(default_prefix.min(seq_len - 1));
        if prefix_len == 0 || prefix_len >= seq_len {
            return Err(SettingsError::BadPrefix { prefix_len, max: seq_len - 1 });
        }
        Ok(Settings { preset, config, seq_len, prefix_len })
    }

    fn run(&self) -> anyhow::Result<Outputs> {
        outputs(&compute(self)?)
    }
}
