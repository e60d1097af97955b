//! Settings: the world, the tokenizer, the models and the three phases of one run.

use serde::Serialize;
use transformer::PositionKind;
use transformer::chapter::Preset;
use transformer::config::Config;
use transformer::corpus::SceneSpec;

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

impl Settings {
    /// Settings from a preset, with optional overrides; every value is checked.
    pub fn new(preset: Preset, args: &Args) -> Result<Self, SettingsError> {
        let scene = SceneSpec {
            people: (2, 3),
            things: (2, 3),
            herds: (1, 1),
            steps: (3, 3),
        };
        let mut s = Settings {
            preset,
            tokenizer_documents: 2000,
            vocab_size: 1024,
            row_len: 192,
            batch: 16,
            pretrain_steps: 200,
            pretrain_evals: 3,
            mtf_steps: 75,
            mtf_batch: 16,
            adapt_steps: 60,
            d_model: 64,
            n_layers: 2,
            n_heads: 4,
            lr: 3e-3,
            mtf_lr: 3e-3,
            seeds: 3,
            eval_instances: 20,
            bootstrap: 1000,
            scene,
        };
        match preset {
            Preset::Quick => {
                s.tokenizer_documents = 300;
                s.vocab_size = 512;
                s.batch = 4;
                s.pretrain_steps = 12;
                s.mtf_steps = 6;
                s.mtf_batch = 4;
                s.adapt_steps = 4;
                s.d_model = 32;
                s.n_layers = 1;
                s.seeds = 2;
                s.eval_instances = 4;
                s.bootstrap = 100;
            }
            Preset::Default => {}
            Preset::Large => {
                s.pretrain_steps = 800;
                s.mtf_steps = 300;
                s.adapt_steps = 240;
                s.d_model = 128;
                s.n_layers = 4;
                s.eval_instances = 40;
            }
        }
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

    /// The steps after which pretraining is evaluated: evenly spaced, the last step
    /// included.
    pub fn eval_every(&self) -> usize {
        self.pretrain_steps.div_ceil(self.pretrain_evals)
    }

    /// The model every cell is built from: a decoder of `n_layers`, or an
    /// encoder-decoder with `n_layers` in each stack. Room for the longest prompted
    /// example and for a row under span corruption with its targets appended.
    pub fn model_config(&self, vocab_size: usize) -> Config {
        Config {
            vocab_size,
            d_model: self.d_model,
            n_heads: self.n_heads,
            n_kv_heads: self.n_heads,
            d_ff: 4 * self.d_model,
            n_layers: self.n_layers,
            max_len: 256,
            positions: PositionKind::Learned,
            tie_embeddings: true,
            kernels: Default::default(),
        }
    }
}
