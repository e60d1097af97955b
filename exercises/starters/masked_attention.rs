// Chapter 1, exercise 1: masked attention from scratch.
//
// The attention page worked one head by hand: scores Q Kᵀ / √d, a score of −∞
// wherever the mask blocks a pair, a softmax over each row, and the output
// weights · V. Write the same four steps on plain vectors, and the causal mask that
// GPT uses. Matrices are `Vec<Vec<f32>>`, one inner vector per row.

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
    // TODO: build the t × t matrix, row by row.
    todo!("build the causal mask for t = {t}")
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
    // TODO: return `Err(EmptyRow { query })` for the first row of `mask` with
    // nothing allowed; otherwise compute each query's scores, mask them, softmax
    // them (subtract the row's largest allowed score before `exp`), and weight the
    // value rows with the result.
    todo!(
        "attention of {} queries over {} keys and {} values under a {}-row mask",
        q.len(),
        k.len(),
        v.len(),
        mask.len()
    )
}
