//! `probe`: measure one point of chapter 3's sweep (one `n`, `d`, `β`, seed and
//! mask) and print every measure.

use clap::Parser;

use ch03_low_rank::{Mask, Probe, probe, sequential_linear_algebra, validate};
use transformer::{Named, VariantArray};

/// Measure one bidirectional or causal attention matrix built from random queries
/// and keys: rank at several tolerances, effective and stable rank, condition
/// number, determinant.
#[derive(Parser, Debug)]
#[command(name = "probe", version)]
struct Cli {
    /// Sequence length (the matrix is n × n).
    #[arg(long, default_value_t = 512)]
    n: usize,
    /// Head dimension (the logits have rank at most d).
    #[arg(long, default_value_t = 64)]
    d: usize,
    /// Temperature; logits are beta · Q Kᵀ / √d.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    beta: f64,
    /// Seed of Q, K and V.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which mask (default: both).
    #[arg(long, value_parser = ["bidirectional", "causal"])]
    mask: Option<String>,
}

fn print_probe(p: &Probe) {
    let m = &p.measures;
    println!(
        "{} attention, n = {}, d = {}, beta = {}, seed = {}",
        p.mask.name(),
        p.n,
        p.d,
        p.beta,
        p.seed
    );
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
        println!(
            "  log10 min_i A_ii                         {:.2}",
            c.log10_min_diag
        );
        println!(
            "  log10 cond lower bound (1 / min A_ii)    {:.2}",
            c.log10_cond_lower_bound
        );
        println!("  every A_ii > 0 (so det A > 0)            {}", c.all_positive);
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    validate(cli.n, cli.d, cli.beta)?;
    let masks = match cli.mask.as_deref() {
        Some(m) => vec![Mask::parse(m)?],
        None => Mask::VARIANTS.to_vec(),
    };
    sequential_linear_algebra();
    for mask in masks {
        print_probe(&probe(cli.n, cli.d, cli.beta, cli.seed, mask)?);
    }
    Ok(())
}
