//! Settings: the world and its data (chapter 4's), the models' shape, the phases of
//! one run.

use serde::Serialize;
use transformer::chapter::{Chapter, Outputs, Preset};
use transformer::config::Config;

use ch04_zero_shot::model_config_of;

use crate::{compute, outputs};

/// The seed of the held-out rows and of the step-listing task. Training seeds are
/// `0..seeds`.
pub const SEED: u64 = 5;

/// The chapter's own flags: overrides of the preset.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Pretraining steps of every model (default: 12 quick, 160 default, 640
    /// large); finetuning takes half as many.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Training seeds per model (default: 2 quick, 5 default and large).
    #[arg(long)]
    pub seeds: Option<usize>,
}

/// What one run of the chapter uses.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub preset: Preset,
    /// Chapter 4's world, tokenizer, pretraining rows, finetuning stream and
    /// zero-shot suite, built with these settings (its own model fields are not
    /// used).
    pub world: ch04_zero_shot::Settings,
    /// `L`: layers of the smaller decoder, and of each stack of the
    /// encoder-decoder.
    pub layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub pretrain_steps: usize,
    /// Evaluations of the held-out loss during pretraining, evenly spaced.
    pub pretrain_evals: usize,
    /// Multitask-finetuning steps: chapter 4's training families and the
    /// step-listing task.
    pub finetune_steps: usize,
    /// Finetuning examples per step, half of them step listing.
    pub finetune_batch: usize,
    pub lr: f64,
    pub seeds: usize,
    /// Held-out rows on which every model's loss is measured.
    pub heldout_rows: usize,
    /// Step-listing questions the finetuned models answer by generating.
    pub listing_questions: usize,
    /// Held-out rows whose attention matrices are measured (Su's second
    /// experiment).
    pub measured_rows: usize,
}

/// Settings that cannot describe the experiment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(
        "--steps must be at least 8 (the run is evaluated at four evenly spaced points), got {0}"
    )]
    TooFewSteps(usize),
    #[error("--seeds must be between 1 and 20, got {0}")]
    Seeds(usize),
    #[error(transparent)]
    World(#[from] ch04_zero_shot::SettingsError),
}

impl Chapter for Settings {
    type Args = Args;
    type Error = SettingsError;

    fn new(preset: Preset, args: &Args) -> Result<Self, SettingsError> {
        let mut world = ch04_zero_shot::Settings::new(
            preset,
            &ch04_zero_shot::Args::default(),
        )?;
        // Each value that depends on the preset: quick, default, large.
        let p = |quick, default, large| preset.pick(quick, default, large);
        let mut s = Settings {
            preset,
            world: world.clone(),
            layers: p(2, 2, 4),
            d_model: p(32, 64, 128),
            n_heads: 4,
            pretrain_steps: p(12, 160, 640),
            pretrain_evals: 4,
            finetune_steps: p(6, 80, 320),
            finetune_batch: p(4, 16, 16),
            lr: 3e-3,
            seeds: p(2, 5, 5),
            heldout_rows: p(8, 64, 128),
            listing_questions: p(6, 48, 96),
            measured_rows: p(2, 4, 4),
        };
        if let Some(n) = args.steps {
            if n < 8 {
                return Err(SettingsError::TooFewSteps(n));
            }
            s.finetune_steps = n.div_ceil(2);
            s.pretrain_steps = n;
        }
        if let Some(k) = args.seeds {
            if !(1..=20).contains(&k) {
                return Err(SettingsError::Seeds(k));
            }
            s.seeds = k;
        }
        // Chapter 4's suite, at half its size outside the quick run: here it is a
        // side test.
        if preset != Preset::Quick {
            world.eval_instances = 10;
            // Shorter rows than chapter 4's, for five seeds in the time of three.
            world.row_len = 128;
        }
        world.pretrain_steps = s.pretrain_steps;
        world.adapt_steps = 0;
        world.mtf_steps = s.finetune_steps;
        world.mtf_batch = s.finetune_batch / 2;
        world.seeds = s.seeds;
        s.world = world;
        Ok(s)
    }

    fn run(&self) -> anyhow::Result<Outputs> {
        outputs(&compute(self)?)
    }
}

impl Settings {
    /// The steps after which pretraining is evaluated: evenly spaced, the last step
    /// included.
    pub fn eval_every(&self) -> usize {
        self.pretrain_steps.div_ceil(self.pretrain_evals)
    }

    /// The model configuration with `layers` layers (per stack, for an
    /// encoder-decoder).
    pub fn model_config(&self, vocab_size: usize, layers: usize) -> Config {
        model_config_of(vocab_size, self.d_model, self.n_heads, layers)
    }
}
