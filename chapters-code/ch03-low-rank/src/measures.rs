//! The code: attention matrices from random queries and keys, and every measure of
//! their rank.

use anyhow::{anyhow, bail};
use faer::{Mat, MatRef};
use serde::Serialize;
use transformer::{IntoStaticStr, Named, VariantArray};
use transformer::{MaskKind, rng};

/// The two masks the claim compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[derive(IntoStaticStr, VariantArray, strum::EnumString)]
#[strum(serialize_all = "lowercase")]
pub enum Mask {
    Bidirectional,
    Causal,
}

impl Mask {
    /// The shared library's mask, the single source of truth for "may `i` read
    /// `j`?".
    pub fn kind(self) -> MaskKind {
        match self {
            Mask::Bidirectional => MaskKind::Bidirectional,
            Mask::Causal => MaskKind::Causal,
        }
    }

    pub fn allows(self, i: usize, j: usize) -> bool {
        self.kind().allows(0, i, j)
    }

    pub fn parse(s: &str) -> anyhow::Result<Mask> {
        s.parse().map_err(|_| {
            let known: Vec<&str> =
                Mask::VARIANTS.iter().map(|m| m.name()).collect();
            anyhow!("unknown mask {s:?}: expected one of {known:?}")
        })
    }
}

// ANCHOR: draw
/// Queries, keys and values with i.i.d. N(0, 1) entries, each `n × d`. The draw
/// depends only on `(n, d, seed)`: every temperature and both masks see the same Q,
/// K and V, so each comparison between masks is paired.
pub fn draw_qkv(n: usize, d: usize, seed: u64) -> [Mat<f64>; 3] {
    let mut r = rng::stream(seed, &format!("ch03 qkv n={n} d={d}"));
    std::array::from_fn(|_| {
        let v = rng::normal_vec_f64(&mut r, n * d);
        Mat::from_fn(n, d, |i, j| v[i * d + j])
    })
}
// ANCHOR_END: draw

// ANCHOR: logits
/// The logits `S = β · Q Kᵀ / √d`: an `n × n` matrix whose rank is at most `d`. `β
/// = 1` is the standard scaling; small `β` gives diffuse attention, large `β` sharp
/// attention.
pub fn logits(q: MatRef<'_, f64>, k: MatRef<'_, f64>, beta: f64) -> Mat<f64> {
    let scale = beta / (q.ncols() as f64).sqrt();
    let qk = q * k.transpose();
    Mat::from_fn(qk.nrows(), qk.ncols(), |i, j| scale * qk[(i, j)])
}
// ANCHOR_END: logits

// ANCHOR: softmax
/// Row-wise softmax over the entries the mask allows; blocked entries are exactly
/// zero. Subtracting each row's maximum keeps every `exp` in range.
pub fn attention(s: MatRef<'_, f64>, mask: Mask) -> Mat<f64> {
    let (n, m) = (s.nrows(), s.ncols());
    let mut a = Mat::zeros(n, m);
    for i in 0..n {
        let max = (0..m)
            .filter(|&j| mask.allows(i, j))
            .map(|j| s[(i, j)])
            .fold(f64::NEG_INFINITY, f64::max);
        let mut z = 0.0;
        for j in (0..m).filter(|&j| mask.allows(i, j)) {
            let e = (s[(i, j)] - max).exp();
            a[(i, j)] = e;
            z += e;
        }
        for j in 0..m {
            a[(i, j)] /= z;
        }
    }
    a
}
// ANCHOR_END: softmax

// ANCHOR: causal_diagonal
/// `ln A_ii` of the causal attention matrix, from the logits, in log space: `ln
/// A_ii = S_ii − ln Σ_{j ≤ i} exp(S_ij)`. Nothing underflows, so `ln det A = Σ_i ln
/// A_ii` is exact up to rounding even when `det A` is far below `f64`'s range.
pub fn causal_log_diagonal(s: MatRef<'_, f64>) -> Vec<f64> {
    (0..s.nrows())
        .map(|i| {
            let max = (0..=i).map(|j| s[(i, j)]).fold(f64::NEG_INFINITY, f64::max);
            let lse =
                max + (0..=i).map(|j| (s[(i, j)] - max).exp()).sum::<f64>().ln();
            s[(i, i)] - lse
        })
        .collect()
}
// ANCHOR_END: causal_diagonal

/// Singular values, largest first, in `f64`.
pub fn singular_values(a: MatRef<'_, f64>) -> anyhow::Result<Vec<f64>> {
    a.singular_values().map_err(|e| anyhow!("the SVD did not converge: {e:?}"))
}

// ANCHOR: measures
/// Relative tolerances at which the numerical rank is counted, besides NumPy's
/// default.
pub const TOLERANCES: [f64; 3] = [1e-3, 1e-6, 1e-10];

/// NumPy's default relative tolerance for `matrix_rank`: `max(rows, cols) · ε`.
pub fn default_tolerance(rows: usize, cols: usize) -> f64 {
    rows.max(cols) as f64 * f64::EPSILON
}

/// Numerical rank: how many singular values exceed `rel_tol · σ₁`.
pub fn numerical_rank(sv: &[f64], rel_tol: f64) -> usize {
    let top = sv.first().copied().unwrap_or(0.0);
    sv.iter().filter(|&&s| s > rel_tol * top && s > 0.0).count()
}

/// Entropy effective rank (Roy & Vetterli 2007): `exp(−Σ pᵢ ln pᵢ)` with `pᵢ = σᵢ /
/// Σⱼ σⱼ`. It equals `r` for `r` equal singular values and zeros elsewhere, and
/// moves smoothly between.
pub fn effective_rank(sv: &[f64]) -> f64 {
    let total: f64 = sv.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let entropy: f64 = sv
        .iter()
        .map(|&s| s / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy.exp()
}

/// Stable rank: `‖A‖_F² / ‖A‖₂² = Σ σᵢ² / σ₁²`, never more than the rank.
pub fn stable_rank(sv: &[f64]) -> f64 {
    match sv.first() {
        Some(&top) if top > 0.0 => sv.iter().map(|s| (s / top).powi(2)).sum(),
        _ => 0.0,
    }
}

/// `log₁₀ (σ₁ / σ_min)`. The SVD cannot resolve singular values below about `ε ·
/// σ₁`, so this saturates near 16 to 20 for matrices that are singular in floating
/// point.
pub fn log10_condition(sv: &[f64]) -> f64 {
    match (sv.first(), sv.last()) {
        (Some(&top), Some(&bottom)) if top > 0.0 => {
            (top / bottom.max(f64::MIN_POSITIVE)).log10()
        }
        _ => f64::INFINITY,
    }
}

/// `log₁₀ |det A| = Σ log₁₀ σᵢ` for a square matrix, with the same floating-point
/// floor.
pub fn log10_abs_det(sv: &[f64]) -> f64 {
    sv.iter().map(|s| s.max(f64::MIN_POSITIVE).log10()).sum()
}

/// Every measure the chapter reports for one matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measures {
    /// Rank at NumPy's default tolerance, `max(rows, cols) · ε · σ₁`.
    pub rank_eps: usize,
    /// Ranks at the relative tolerances of [`TOLERANCES`].
    pub rank_1e3: usize,
    pub rank_1e6: usize,
    pub rank_1e10: usize,
    pub effective_rank: f64,
    pub stable_rank: f64,
    pub log10_cond: f64,
    /// From the singular values (square matrices only; floored like the condition
    /// number).
    pub log10_abs_det: f64,
}

impl Measures {
    pub fn from_singular_values(sv: &[f64], rows: usize, cols: usize) -> Self {
        Measures {
            rank_eps: numerical_rank(sv, default_tolerance(rows, cols)),
            rank_1e3: numerical_rank(sv, TOLERANCES[0]),
            rank_1e6: numerical_rank(sv, TOLERANCES[1]),
            rank_1e10: numerical_rank(sv, TOLERANCES[2]),
            effective_rank: effective_rank(sv),
            stable_rank: stable_rank(sv),
            log10_cond: log10_condition(sv),
            log10_abs_det: if rows == cols { log10_abs_det(sv) } else { f64::NAN },
        }
    }

    pub fn of(a: MatRef<'_, f64>) -> anyhow::Result<Self> {
        Ok(Self::from_singular_values(&singular_values(a)?, a.nrows(), a.ncols()))
    }
}
// ANCHOR_END: measures

/// The diagonal of a causal attention matrix, which decides its determinant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CausalDiagonal {
    /// `log₁₀ det A = Σ log₁₀ A_ii`, exact (computed in log space, not from the
    /// SVD).
    pub log10_det: f64,
    /// `log₁₀ min_i A_ii`.
    pub log10_min_diag: f64,
    /// Every `A_ii > 0`, checked in log space (a finite logarithm).
    pub all_positive: bool,
    /// `cond(A) ≥ max_i A_ii / min_i A_ii = 1 / min_i A_ii` (`A_00 = 1`), in
    /// `log₁₀`.
    pub log10_cond_lower_bound: f64,
}

impl CausalDiagonal {
    pub fn from_logits(s: MatRef<'_, f64>) -> Self {
        let ln_diag = causal_log_diagonal(s);
        let ln10 = std::f64::consts::LN_10;
        let min = ln_diag.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ln_diag.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        CausalDiagonal {
            log10_det: ln_diag.iter().sum::<f64>() / ln10,
            log10_min_diag: min / ln10,
            all_positive: ln_diag.iter().all(|x| x.is_finite()),
            log10_cond_lower_bound: (max - min) / ln10,
        }
    }
}

// ANCHOR: probe
/// One point of the sweep: what the attention matrix looks like at `(n, d, β, seed,
/// mask)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub n: usize,
    pub d: usize,
    pub beta: f64,
    pub seed: u64,
    pub mask: Mask,
    pub measures: Measures,
    /// Numerical rank (NumPy's tolerance) of the head's output `A · V`, an `n × d`
    /// matrix.
    pub output_rank: usize,
    /// Only for the causal mask.
    pub diagonal: Option<CausalDiagonal>,
}

/// Check a point's parameters; the command line reports these errors as they are.
pub fn validate(n: usize, d: usize, beta: f64) -> anyhow::Result<()> {
    if n == 0 {
        bail!("n (sequence length) must be at least 1");
    }
    if d == 0 {
        bail!("d (head dimension) must be at least 1");
    }
    if n > 4096 || d > 4096 {
        bail!(
            "n and d are limited to 4096 here (got n = {n}, d = {d}); \
             an n × n SVD grows as n³"
        );
    }
    if !beta.is_finite() || beta <= 0.0 {
        bail!("beta (temperature) must be a positive finite number, got {beta}");
    }
    Ok(())
}

pub fn probe(
    n: usize,
    d: usize,
    beta: f64,
    seed: u64,
    mask: Mask,
) -> anyhow::Result<Probe> {
    validate(n, d, beta)?;
    let [q, k, v] = draw_qkv(n, d, seed);
    let s = logits(q.as_ref(), k.as_ref(), beta);
    let a = attention(s.as_ref(), mask);
    let measures = Measures::of(a.as_ref())?;
    let av = &a * &v;
    let output_rank =
        numerical_rank(&singular_values(av.as_ref())?, default_tolerance(n, d));
    let diagonal =
        (mask == Mask::Causal).then(|| CausalDiagonal::from_logits(s.as_ref()));
    Ok(Probe { n, d, beta, seed, mask, measures, output_rank, diagonal })
}
// ANCHOR_END: probe

// ANCHOR: hadamard
/// `C(n, k)`, exactly, in `u128` (saturating on overflow).
pub fn binomial(n: u64, k: u64) -> u128 {
    let k = k.min(n.saturating_sub(k));
    let mut c: u128 = 1;
    for i in 0..k {
        c = c.saturating_mul(u128::from(n - i)) / u128::from(i + 1);
    }
    c
}

/// The rank bound of a Hadamard power: `S = Q Kᵀ` with rank `d` gives
/// `rank(S^{∘k}) ≤ C(d + k − 1, k)` (and, trivially, `≤ n`).
pub fn hadamard_bound(n: usize, d: usize, k: usize) -> usize {
    binomial((d + k - 1) as u64, k as u64).min(n as u128) as usize
}

/// The numerical rank of `S^{∘k}` (each entry raised to the `k`-th power) for `k =
/// 1..=k_max`.
pub fn hadamard_ranks(
    n: usize,
    d: usize,
    k_max: usize,
    seed: u64,
) -> anyhow::Result<Vec<usize>> {
    let [q, k, _] = draw_qkv(n, d, seed);
    let s = q.as_ref() * k.as_ref().transpose();
    (1..=k_max)
        .map(|p| {
            let power = Mat::from_fn(n, n, |i, j| s[(i, j)].powi(p as i32));
            Ok(numerical_rank(
                &singular_values(power.as_ref())?,
                default_tolerance(n, n),
            ))
        })
        .collect()
}
// ANCHOR_END: hadamard

/// Make faer run each matrix operation on one thread. The experiments parallelise
/// across points instead, so each number is the same whatever the machine's thread
/// count.
pub fn sequential_linear_algebra() {
    faer::set_global_parallelism(faer::Par::Seq);
}
