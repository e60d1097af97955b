// Chapter 1, exercise 1: masked attention from scratch (reference solution).

/// What one attention head computes for a sequence of `t` positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    /// `t × t`: how much query `i` reads key `j`. Each row sums to 1; a blocked
    /// pair is exactly 0.
    pub weights: Vec<Vec<f32>>,
    /// `t × d`: row `i` is the weighted average of the value rows, with row `i`'s
    /// weights.
    pub output: Vec<Vec<f32>>,
}

/// The mask allows query `query` no key at all: its softmax would be over nothing
/// (0/0). When several rows are empty, `query` is the first of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptyRow {
    pub query: usize,
}

/// The causal mask for `t` positions: `mask[i][j]` is `true` when query `i` may
/// read key `j`, that is when `j` is `i` itself or comes before it.
pub fn causal_mask(t: usize) -> Vec<Vec<bool>> {
    (0..t).map(|i| (0..t).map(|j| j <= i).collect()).collect()
}

/// One attention head: `q`, `k` and `v` are `t × d` (one row per position) and
/// `mask` is `t × t`. Scores `Q Kᵀ / √d`, a score of −∞ where `mask` is `false`, a
/// softmax over each row, then `output = weights · V`. A mask row with no `true` in
/// it is an error, not a row of NaN.
pub fn masked_attention(
    q: &[Vec<f32>],
    k: &[Vec<f32>],
    v: &[Vec<f32>],
    mask: &[Vec<bool>],
) -> Result<Attention, EmptyRow> {
    if let Some(query) = mask.iter().position(|row| !row.contains(&true)) {
        return Err(EmptyRow { query });
    }
    let scale = 1.0 / (q[0].len() as f32).sqrt();
    let mut weights = Vec::with_capacity(q.len());
    for (qi, allowed) in q.iter().zip(mask) {
        // Scores, with −∞ for the keys this query may not read: e^−∞ is exactly 0.
        let scores: Vec<f32> = k
            .iter()
            .zip(allowed)
            .map(
                |(kj, &ok)| {
                    if ok { scale * dot(qi, kj) } else { f32::NEG_INFINITY }
                },
            )
            .collect();
        // Softmax, shifted by the largest allowed score: no exponential overflows.
        let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
        let sum: f32 = e.iter().sum();
        weights.push(e.iter().map(|x| x / sum).collect::<Vec<f32>>());
    }
    let output = weights.iter().map(|w| weighted_sum(w, v)).collect();
    Ok(Attention { weights, output })
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Σ_j w[j] · v[j]`: the rows of `v`, each times its weight, added up.
fn weighted_sum(w: &[f32], v: &[Vec<f32>]) -> Vec<f32> {
    let mut out = vec![0.0; v[0].len()];
    for (wj, vj) in w.iter().zip(v) {
        for (o, x) in out.iter_mut().zip(vj) {
            *o += wj * x;
        }
    }
    out
}
