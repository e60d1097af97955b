//! `ch02-what-tokens-teach`: regenerate chapter 2's corpus statistics, tokenizer, figures,
//! tables and numbers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ch02_what_tokens_teach::{Preset, Settings};
use clap::Parser;

/// What each token teaches: a synthetic corpus and its BPE tokenizer, every pretraining
/// objective applied to it, the fraction of positions that receive a loss, and one small model
/// trained under full LM, prefix LM and masked LM for the same number of tokens seen.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Size of the run: `quick` for tests, `default` for the book.
    #[arg(long, value_enum, default_value = "default")]
    config: Preset,
    /// Training steps of each of the three runs (default: 24 quick, 200 default).
    #[arg(long)]
    steps: Option<usize>,
    /// Tokenizer vocabulary size, special tokens and the 256 bytes included
    /// (default: 448 quick, 1024 default).
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Pretraining documents to generate (default: 300 quick, 4000 default).
    #[arg(long)]
    documents: Option<usize>,
    /// Folder for results.json, tokenizer.json, the SVG figures and the Markdown tables.
    #[arg(long, default_value = "book/generated/ch02")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let start = Instant::now();
    let result = Settings::new(cli.config, cli.steps, cli.vocab_size, cli.documents)
        .map_err(anyhow::Error::from)
        .and_then(|s| ch02_what_tokens_teach::run(&s))
        .and_then(|chapter| {
            let t = &chapter.report.training;
            for r in [&t.full_lm, &t.prefix_lm, &t.masked_lm] {
                println!("{:>40}: {:.1} s of training", r.objective.label(), r.seconds);
            }
            ch02_what_tokens_teach::write(&chapter, &cli.out)
        });
    match result {
        Ok(()) => {
            println!("wrote {} in {:.2} s", cli.out.display(), start.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
