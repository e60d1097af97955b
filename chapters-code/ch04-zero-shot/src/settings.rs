//! Settings: the world, the tokenizer, the models and the three phases of one run.

use serde::Serialize;
use transformer::PositionKind;
use transformer::chapter::{Chapter, Outputs, Preset, workspace_root};
use transformer::config::Config;
use transformer::corpus::SceneSpec;

use crate::{compute, outputs};

/// The seed of the corpus, the tokenizer and the task suites. Training seeds are
/// `0..seeds`.
pub const SEED: u64 = 4;
/// Sentinels in the tokenizer: enough for T5's span corruption of one pretraining
/// row.
pub const SENTINELS: u32 = 32;

/// The chapter's own flags: overrides of the preset.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Pretraining steps of every cell (default: 12 quick, 200 default, 800 large).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Training seeds per cell (default: 2 quick, 3 default and large).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Evaluation instances per task family, each asked with every template
    /// (default: 4 quick, 20 default, 40 large).
    #[arg(long)]
    pub eval_instances: Option<usize>,
}

/// What one run of the chapter uses.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub preset: Preset,
    /// Documents the tokenizer is trained on (the first of the pretraining stream).
    pub tokenizer_documents: usize,
    pub vocab_size: usize,
    /// Tokens per pretraining row: every cell consumes the same rows, so every cell
    /// sees the same number of tokens (Wang et al. match tokens seen, not tokens
    /// trained on).
    pub row_len: usize,
    /// Rows per pretraining step.
    pub batch: usize,
    pub pretrain_steps: usize,
    /// Evaluations during pretraining, evenly spaced (the paper's 42B, 84B, 168B
    /// checkpoints are a quarter, a half and all of its run).
    pub pretrain_evals: usize,
    /// Multitask-finetuning steps and prompted examples per step.
    pub mtf_steps: usize,
    pub mtf_batch: usize,
    /// Steps of non-causal MLM adaptation (phase 3), and of the control that
    /// continues full LM for the same steps: about 30% of pretraining, as the
    /// paper's 51B after 168B tokens.
    pub adapt_steps: usize,
    pub d_model: usize,
    /// Layers of a decoder; the encoder-decoder has this many in each stack.
    pub n_layers: usize,
    pub n_heads: usize,
    pub lr: f64,
    pub mtf_lr: f64,
    pub seeds: usize,
    pub eval_instances: usize,
    /// Resamples of the paired bootstrap.
    pub bootstrap: usize,
    /// The size of the world's scenes (people, things, herds, procedure steps).
    pub scene: SceneSpec,
}

/// Settings that cannot describe the experiment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(
        "--steps must be at least 8 (the run is evaluated at three evenly spaced points), got {0}"
    )]
    TooFewSteps(usize),
    #[error("--seeds must be between 1 and 20, got {0}")]
    Seeds(usize),
    #[error("--eval-instances must be between 2 and 2000, got {0}")]
    EvalInstances(usize),
}

impl Chapter for Settings {
    type Args = Args;
    type Error = SettingsError;

    fn new(preset: Preset, args: &Args) -> Result<Self, SettingsError> {
        let scene = SceneSpec {
            people: (2, 3),
            things: (2, 3),
            herds: (1, 1),
            steps: (3, 3),
        };
        // Each value that depends on the preset: quick, default, large.
        let p = |quick, default, large| preset.pick(quick, default, large);
        let mut s = Settings {
            preset,
            tokenizer_documents: p(300, 2000, 2000),
            vocab_size: p(512, 1024, 1024),
            row_len: 192,
            batch: p(4, 16, 16),
            pretrain_steps: p(12, 200, 800),
            pretrain_evals: 3,
            mtf_steps: p(6, 75, 300),
            mtf_batch: p(4, 16, 16),
            adapt_steps: p(4, 60, 240),
            d_model: p(32, 64, 128),
            n_layers: p(1, 2, 4),
            n_heads: 4,
            lr: 3e-3,
            mtf_lr: 3e-3,
            seeds: p(2, 3, 3),
            eval_instances: p(4, 20, 40),
            bootstrap: p(100, 1000, 1000),
            scene,
        };
        if let Some(n) = args.steps {
            if n < 8 {
                return Err(SettingsError::TooFewSteps(n));
            }
            s.adapt_steps = (n * 3).div_ceil(10);
            s.mtf_steps = (n * 3).div_ceil(8);
            s.pretrain_steps = n;
        }
        if let Some(k) = args.seeds {
            if !(1..=20).contains(&k) {
                return Err(SettingsError::Seeds(k));
            }
            s.seeds = k;
        }
        if let Some(n) = args.eval_instances {
            if !(2..=2000).contains(&n) {
                return Err(SettingsError::EvalInstances(n));
            }
            s.eval_instances = n;
        }
        Ok(s)
    }

    fn run(&self) -> anyhow::Result<Outputs> {
        let dir = workspace_root()
            .join("target")
            .join("chapters")
            .join(format!("ch04-{}-checkpoints", self.preset.name()));
        std::fs::create_dir_all(&dir)?;
        outputs(&compute(self, &dir)?)
    }
}

impl Settings {
    /// The steps after which pretraining is evaluated: evenly spaced, the last step
    /// included.
    pub fn eval_every(&self) -> usize {
        self.pretrain_steps.div_ceil(self.pretrain_evals)
    }

    /// The model every cell is built from: a decoder of `n_layers`, or an
    /// encoder-decoder with `n_layers` in each stack. Room for the longest prompted
    /// example and for a row under span corruption with its targets appended.
    pub fn model_config(&self, vocab_size: usize) -> Config {
        model_config_of(vocab_size, self.d_model, self.n_heads, self.n_layers)
    }
}

/// The book's small models (chapters 4 and 5): `n_layers` (per stack, for an
/// encoder-decoder) of width `d_model` with `n_heads` heads, a feed-forward four
/// times as wide, learned positions up to 256 tokens, tied embeddings.
pub fn model_config_of(
    vocab_size: usize,
    d_model: usize,
    n_heads: usize,
    n_layers: usize,
) -> Config {
    Config {
        vocab_size,
        d_model,
        n_heads,
        n_kv_heads: n_heads,
        d_ff: 4 * d_model,
        n_layers,
        max_len: 256,
        positions: PositionKind::Learned,
        tie_embeddings: true,
        kernels: Default::default(),
    }
}
