//! Settings: the models, the lengths and the repeats of one run.

use anyhow::{Result, bail};
use serde::Serialize;
use transformer::{Config, PositionKind};

use transformer::chapter::{Chapter, Outputs, Preset};

use crate::{compute, outputs};

/// Everything a run depends on.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub preset: Preset,
    /// The model every experiment uses (multi-head attention: `n_kv_heads ==
    /// n_heads`).
    pub model: Config,
    pub seed: u64,
    /// Context lengths at which one decoding step is counted and timed.
    pub contexts: Vec<usize>,
    /// Timing repeats per measurement (the median is kept).
    pub repeats: usize,
    /// The simulated dialogue: turns, user-message tokens and reply tokens per
    /// turn.
    pub turns: usize,
    pub user_tokens: usize,
    pub reply_tokens: usize,
    /// Times the whole dialogue is run per strategy (the fastest time of each turn
    /// is kept).
    pub dialogue_repeats: usize,
    /// Key/value head counts compared for cache size and decoding speed.
    pub kv_heads: Vec<usize>,
    /// Context length of that comparison.
    pub kv_context: usize,
    /// The invalidation experiment: the history, then the appended turn.
    pub history_tokens: usize,
    pub new_tokens: usize,
    /// Random models on which cached and uncached generation are compared.
    pub equality_cases: usize,
}

/// The chapter's own flags: overrides of the preset.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Turns of the simulated dialogue (each a user message and a reply).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub turns: Option<u32>,
    /// Tokens per user message.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_tokens: Option<u32>,
    /// Tokens per generated reply.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub reply_tokens: Option<u32>,
    /// Seed of the models' weights and of the token streams.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Chapter for Settings {
    type Args = Args;
    type Error = anyhow::Error;

    fn new(preset: Preset, args: &Args) -> Result<Self> {
        let mut s = match preset {
            Preset::Quick => Settings::quick(),
            Preset::Default => Settings::book(),
            Preset::Large => bail!(
                "chapter 6 has no large configuration: its default run already reaches 1,000 tokens of context"
            ),
        };
        if let Some(t) = args.turns {
            s.turns = t as usize;
        }
        if let Some(u) = args.user_tokens {
            s.user_tokens = u as usize;
        }
        if let Some(r) = args.reply_tokens {
            s.reply_tokens = r as usize;
        }
        if let Some(seed) = args.seed {
            s.seed = seed;
        }
        s.validate()?;
        Ok(s)
    }

    fn run(&self) -> anyhow::Result<Outputs> {
        outputs(&compute(self)?)
    }
}

impl Settings {
    /// Small enough for the snapshot test (well under 20 s in release).
    pub fn quick() -> Self {
        Settings {
            preset: Preset::Quick,
            model: Config {
                vocab_size: 128,
                d_model: 64,
                n_heads: 4,
                n_kv_heads: 4,
                d_ff: 256,
                n_layers: 2,
                max_len: 128,
                positions: PositionKind::Learned,
                tie_embeddings: false,
                kernels: Default::default(),
            },
            seed: 6,
            contexts: vec![8, 16, 32, 64, 112],
            repeats: 5,
            turns: 4,
            user_tokens: 8,
            reply_tokens: 12,
            dialogue_repeats: 1,
            kv_heads: vec![4, 2, 1],
            kv_context: 96,
            history_tokens: 10,
            new_tokens: 15,
            equality_cases: 6,
        }
    }

    /// The book's run (well under 2 minutes on 2 cores).
    pub fn book() -> Self {
        Settings {
            preset: Preset::Default,
            model: Config {
                vocab_size: 512,
                d_model: 256,
                n_heads: 8,
                n_kv_heads: 8,
                d_ff: 1024,
                n_layers: 4,
                max_len: 1024,
                positions: PositionKind::Learned,
                tie_embeddings: false,
                kernels: Default::default(),
            },
            seed: 6,
            contexts: vec![16, 32, 64, 128, 256, 512, 1000],
            repeats: 5,
            turns: 10,
            user_tokens: 32,
            reply_tokens: 64,
            dialogue_repeats: 2,
            kv_heads: vec![8, 2, 1],
            kv_context: 1000,
            history_tokens: 10,
            new_tokens: 15,
            equality_cases: 12,
        }
    }

    /// Reject settings that cannot run, with a reason a reader can act on.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let max = self.model.max_len;
        if self.turns == 0 || self.user_tokens == 0 || self.reply_tokens == 0 {
            bail!(
                "--turns, --user-tokens and --reply-tokens must each be at least 1"
            );
        }
        let dialogue = self.turns * (self.user_tokens + self.reply_tokens);
        if dialogue > max {
            bail!(
                "a dialogue of {} turns × ({} + {}) tokens is {dialogue} tokens, more than the model's \
                 {max} positions: use fewer turns or shorter messages",
                self.turns,
                self.user_tokens,
                self.reply_tokens
            );
        }
        if self.contexts.is_empty()
            || self.kv_heads.first() != Some(&self.model.n_heads)
        {
            bail!(
                "at least one decoding context, and the MHA model first among the K/V head counts"
            );
        }
        if let Some(&c) = self.contexts.iter().find(|&&c| c == 0 || c + 1 > max) {
            bail!("decoding context {c} must lie in 1..{max}");
        }
        if self.kv_context == 0 || self.kv_context + 1 > max {
            bail!("the MQA/GQA context {} must lie in 1..{max}", self.kv_context);
        }
        if let Some(&g) = self
            .kv_heads
            .iter()
            .find(|&&g| g == 0 || !self.model.n_heads.is_multiple_of(g))
        {
            bail!(
                "{g} key/value heads do not divide {} query heads",
                self.model.n_heads
            );
        }
        if self.history_tokens == 0
            || self.new_tokens == 0
            || self.history_tokens + self.new_tokens > max
        {
            bail!(
                "the invalidation experiment needs 1 ≤ history, 1 ≤ new turn, history + new ≤ {max}"
            );
        }
        if self.repeats == 0 || self.dialogue_repeats == 0 {
            bail!("repeats must be at least 1");
        }
        Ok(())
    }
}
