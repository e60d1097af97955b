//! `ch01-four-masks`: regenerate chapter 1's figures, tables and numbers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ch01_four_masks::{Preset, Settings};
use clap::Parser;

/// One Transformer, four masks: attention maps, parameter and FLOP counts of the four
/// architecture families, and one set of weights run as a causal and as a prefix decoder.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Model size: `quick` for tests, `default` for the book.
    #[arg(long, value_enum, default_value = "default")]
    config: Preset,
    /// Tokens in the example sequence (default: 6 quick, 10 default).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Tokens in the prefix: the prefix LM's bidirectional part and the encoder-decoder's input
    /// (default: 3 quick, 7 default).
    #[arg(long)]
    prefix_len: Option<usize>,
    /// Folder for results.json, the SVG figures and the Markdown tables.
    #[arg(long, default_value = "book/generated/ch01")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let start = Instant::now();
    let result = Settings::new(cli.config, cli.seq_len, cli.prefix_len)
        .map_err(anyhow::Error::from)
        .and_then(|s| ch01_four_masks::run(&s))
        .and_then(|chapter| ch01_four_masks::write(&chapter, &cli.out));
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
