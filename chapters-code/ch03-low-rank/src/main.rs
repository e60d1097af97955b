//! Chapter 3's command line: run every experiment and write the book's outputs, or probe a
//! single point of the sweep.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

use ch03_low_rank::experiments::{RunConfig, run};
use ch03_low_rank::{Mask, Probe, probe, sequential_linear_algebra, validate};

/// The low-rank argument, on trial: rank, effective rank and conditioning of bidirectional and
/// causal attention matrices.
///
/// Without point flags, runs every experiment and writes results.json, figures and tables.
/// With any of --n, --d, --beta, --seed, --mask, measures that single point and prints it
/// (missing flags: n 512, d 64, beta 1, seed 0, both masks).
#[derive(Parser, Debug)]
#[command(name = "ch03-low-rank", version)]
struct Cli {
    /// Experiment size: "quick" (tests) or "default" (the book).
    #[arg(long, default_value = "default", value_parser = ["quick", "default"])]
    config: String,
    /// Output folder.
    #[arg(long, default_value = "book/generated/ch03")]
    out: PathBuf,
    /// Probe: sequence length (matrix size n × n).
    #[arg(long)]
    n: Option<usize>,
    /// Probe: head dimension (rank of the logits is at most d).
    #[arg(long)]
    d: Option<usize>,
    /// Probe: temperature; logits are beta · Q Kᵀ / √d.
    #[arg(long, allow_negative_numbers = true)]
    beta: Option<f64>,
    /// Probe: seed of Q, K and V.
    #[arg(long)]
    seed: Option<u64>,
    /// Probe: which mask (default: both).
    #[arg(long, value_parser = ["bidirectional", "causal"])]
    mask: Option<String>,
}

fn print_probe(p: &Probe) {
    let m = &p.measures;
    println!("{} attention, n = {}, d = {}, beta = {}, seed = {}", p.mask.name(), p.n, p.d, p.beta, p.seed);
    println!("  rank at NumPy's tolerance (max(n)·eps)   {}", m.rank_eps);
    println!("  rank at relative tolerance 1e-3          {}", m.rank_1e3);
    println!("  rank at relative tolerance 1e-6          {}", m.rank_1e6);
    println!("  rank at relative tolerance 1e-10         {}", m.rank_1e10);
    println!("  effective rank (Roy & Vetterli 2007)     {:.2}", m.effective_rank);
    println!("  stable rank                              {:.3}", m.stable_rank);
    println!("  log10 condition number (SVD)             {:.2}", m.log10_cond);
    println!("  log10 |det A| (SVD)                      {:.1}", m.log10_abs_det);
    println!("  rank of the head output A·V (n × d)      {}", p.output_rank);
    if let Some(c) = &p.diagonal {
        println!("  log10 det A (exact, from the diagonal)   {:.1}", c.log10_det);
        println!("  log10 min_i A_ii                         {:.2}", c.log10_min_diag);
        println!("  log10 cond lower bound (1 / min A_ii)    {:.2}", c.log10_cond_lower_bound);
        println!("  every A_ii > 0 (so det A > 0)            {}", c.all_positive);
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let probing =
        cli.n.is_some() || cli.d.is_some() || cli.beta.is_some() || cli.seed.is_some() || cli.mask.is_some();
    if probing {
        let (n, d, beta, seed) =
            (cli.n.unwrap_or(512), cli.d.unwrap_or(64), cli.beta.unwrap_or(1.0), cli.seed.unwrap_or(0));
        validate(n, d, beta)?;
        let masks = match cli.mask.as_deref() {
            Some(m) => vec![Mask::parse(m)?],
            None => Mask::BOTH.to_vec(),
        };
        sequential_linear_algebra();
        for mask in masks {
            print_probe(&probe(n, d, beta, seed, mask)?);
        }
        return Ok(());
    }
    let cfg = RunConfig::by_name(&cli.config)?;
    let start = Instant::now();
    let outcome = run(&cfg)?;
    outcome.write(&cli.out)?;
    let t = &outcome.timing;
    println!(
        "ch03 ({}): SVD sweep {:.1} s ({} SVDs, {} threads), collapse {:.1} s, training {:.1} s, total {:.1} s; wrote {}",
        cfg.name,
        t.sweep_seconds,
        t.sweep_svds,
        t.threads,
        t.collapse_seconds,
        t.trained_seconds,
        start.elapsed().as_secs_f64(),
        cli.out.display()
    );
    Ok(())
}
