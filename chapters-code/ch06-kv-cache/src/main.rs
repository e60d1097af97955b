//! Chapter 6: the KV cache and multi-turn dialogue. Writes results.json, figures and tables.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// Small models and a short dialogue (the snapshot test's configuration).
    Quick,
    /// The book's run.
    Default,
}

/// Measure what a KV cache saves, and what a growing bidirectional region costs in dialogue.
#[derive(Parser)]
#[command(name = "ch06-kv-cache", version)]
struct Cli {
    /// Which configuration to run.
    #[arg(long, value_enum, default_value_t = Preset::Default)]
    config: Preset,
    /// Where results.json, the figures and the tables go.
    #[arg(long, default_value = "book/generated/ch06")]
    out: PathBuf,
    /// Turns of the simulated dialogue (each a user message and a reply).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    turns: Option<u32>,
    /// Tokens per user message.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    user_tokens: Option<u32>,
    /// Tokens per generated reply.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    reply_tokens: Option<u32>,
    /// Seed of the models' weights and of the token streams.
    #[arg(long)]
    seed: Option<u64>,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut s = match cli.config {
        Preset::Quick => ch06_kv_cache::Settings::quick(),
        Preset::Default => ch06_kv_cache::Settings::book(),
    };
    if let Some(t) = cli.turns {
        s.turns = t as usize;
    }
    if let Some(u) = cli.user_tokens {
        s.user_tokens = u as usize;
    }
    if let Some(r) = cli.reply_tokens {
        s.reply_tokens = r as usize;
    }
    if let Some(seed) = cli.seed {
        s.seed = seed;
    }
    s.validate()?;
    let outcome = ch06_kv_cache::compute(&s)?;
    ch06_kv_cache::write_outputs(&outcome, &cli.out)?;
    let t = &outcome.timings;
    let d = &outcome.report.dialogue;
    println!(
        "ch06: wrote {} in {:.1} s; dialogue FLOPs vs cache reuse: recompute {}×, prefix LM {}×, encoder-decoder {}×",
        cli.out.display(),
        t.total_secs,
        d["causal_recompute"].flops_ratio_to_reuse,
        d["prefix_lm"].flops_ratio_to_reuse,
        d["encoder_decoder"].flops_ratio_to_reuse,
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
