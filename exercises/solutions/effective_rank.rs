// Chapter 3, exercise 1: effective rank and stable rank from singular values.
//
// Numerical rank counts singular values above a threshold and jumps by whole
// numbers. Two smoother measures read the whole spectrum instead.

/// Entropy effective rank (Roy & Vetterli 2007): with `p_i = s_i / sum_j s_j`,
/// return `exp(-sum_i p_i ln p_i)`. Zero singular values contribute nothing; an
/// all-zero spectrum has effective rank 0.
pub fn effective_rank(singular_values: &[f64]) -> f64 {
    let total: f64 = singular_values.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let entropy: f64 = singular_values
        .iter()
        .map(|s| s / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy.exp()
}

/// Stable rank: `sum_i s_i^2 / s_max^2` (the squared Frobenius norm over the
/// squared spectral norm). An all-zero spectrum has stable rank 0.
pub fn stable_rank(singular_values: &[f64]) -> f64 {
    let top = singular_values.iter().copied().fold(0.0, f64::max);
    if top <= 0.0 {
        return 0.0;
    }
    singular_values.iter().map(|s| (s / top).powi(2)).sum()
}
