//! The whole run: load both models once, then the three analyses in the order of
//! the chapters that use them.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::bert::SentenceEncoder;
use crate::chat::{self, Chat, ChatTimes};
use crate::counts::{self, Count};
use crate::fetch::MINILM;
use crate::ranks::{self, Ranks};
use crate::settings::Settings;
use crate::smollm::SmolLm;
use support::cpu_name;

/// The settings as the results record them.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// "real" for the fetched models, "tiny" for the quick configuration's.
    pub models: &'static str,
    pub tokens: usize,
    pub passages: usize,
    pub turns: usize,
    pub reply_tokens: usize,
    /// Each chat is timed this many times; each turn reports its fastest.
    pub timing_repeats: usize,
}

/// Chapter 3's trained-in-a-minute models at the same length, from its committed
/// results, for comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Toy {
    pub tokens: usize,
    pub causal_effective_rank: f64,
    pub encoder_effective_rank: f64,
}

/// Read [`Toy`] from `book/generated/ch03/results.json`.
pub fn toy() -> anyhow::Result<Toy> {
    let path = transformer::chapter::book_folder("ch03").join("results.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    let t = &v["trained"];
    let er = |model: &str| {
        t["models"][model]["trained_means"]["full"]["effective_rank"]
            .as_f64()
            .with_context(|| {
                format!("{}: no effective rank for `{model}`", path.display())
            })
    };
    Ok(Toy {
        tokens: t["seq_len"]
            .as_u64()
            .with_context(|| format!("{}: no trained.seq_len", path.display()))?
            as usize,
        causal_effective_rank: er("causal")?,
        encoder_effective_rank: er("masked")?,
    })
}

/// Everything `results.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: Run,
    pub encoder_params: Count,
    pub decoder_params: Count,
    pub ranks: Ranks,
    pub toy: Toy,
    pub chat: Chat,
}

/// Machine-dependent measurements, for `timings.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub cpu: String,
    pub threads: usize,
    pub load_s: f64,
    pub ranks_s: f64,
    pub chat: ChatTimes,
}

/// A run's report and timings.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: Report,
    pub timings: Timings,
}

fn seconds(start: Instant) -> f64 {
    transformer::chapter::round_dp(start.elapsed().as_secs_f64(), 1)
}

/// Run every analysis.
pub fn compute(s: &Settings) -> anyhow::Result<Outcome> {
    let dir = s.models.dir();
    let start = Instant::now();
    let encoder = SentenceEncoder::load(&MINILM.dir(&dir))
        .context("loading all-MiniLM-L6-v2")?;
    let decoder = SmolLm::load(&SmolLm::path_in(&dir))
        .context("loading SmolLM2-135M-Instruct")?;
    let load_s = seconds(start);
    let encoder_params = counts::bert(&dir)?;
    let decoder_params = counts::llama(&dir)?;
    let start = Instant::now();
    let ranks = ranks::ranks(&encoder, &decoder, &s.passages, s.tokens)?;
    let ranks_s = seconds(start);
    let cap = (encoder.model.config.max_position_embeddings - 2) / 2;
    let (chat, chat_times) = chat::run(
        &decoder,
        &encoder,
        &s.turns,
        s.reply_tokens,
        s.uncached_tokens,
        cap.min(crate::bert::MAX_TOKENS / 2),
    )?;
    Ok(Outcome {
        report: Report {
            run: Run {
                models: if s.models.real() { "real" } else { "tiny" },
                tokens: s.tokens,
                passages: s.passages.len(),
                turns: s.turns.len(),
                reply_tokens: s.reply_tokens,
                timing_repeats: crate::chat::TIMING_REPEATS,
            },
            encoder_params,
            decoder_params,
            ranks,
            toy: toy()?,
            chat,
        },
        timings: Timings {
            cpu: cpu_name(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_s,
            ranks_s,
            chat: chat_times,
        },
    })
}
