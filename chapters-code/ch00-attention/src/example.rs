//! The worked example: four tokens, three input features, a head of width two.

use candle_core::Tensor;
use serde::Serialize;
use transformer::MaskKind;

/// A small matrix, row by row.
pub type Mat = Vec<Vec<f64>>;

/// The example's inputs: token vectors and the head's three projection matrices.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub tokens: Vec<String>,
    /// `n × d_model`: one row per token.
    pub x: Mat,
    /// `d_model × d`: the learned projections to queries, keys and values.
    pub w_q: Mat,
    pub w_k: Mat,
    pub w_v: Mat,
}

impl Example {
    /// The page's example. In a trained model these numbers are learned; here they
    /// are small and round so that every step can be checked by hand.
    pub fn book() -> Self {
        Example {
            tokens: ["the", "cat", "sat", "down"].map(String::from).to_vec(),
            x: vec![
                vec![1.0, 0.0, 1.0],
                vec![0.0, 1.0, 1.0],
                vec![1.0, 1.0, 0.0],
                vec![0.0, 0.5, 1.0],
            ],
            w_q: vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]],
            w_k: vec![vec![0.0, 1.0], vec![1.0, 0.0], vec![1.0, 1.0]],
            w_v: vec![vec![1.0, 0.0], vec![0.0, 2.0], vec![1.0, 1.0]],
        }
    }
}

/// One mask's pass through the head.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    /// Scores after the mask: `None` where the mask blocks the pair (−∞ before the
    /// softmax).
    pub masked: Vec<Vec<Option<f64>>>,
    /// Attention weights: each row sums to 1; blocked pairs are exactly 0.
    pub weights: Mat,
    /// The head's output: each row a weighted average of the value rows.
    pub output: Mat,
}

/// Every intermediate of the example.
#[derive(Debug, Clone, Serialize)]
pub struct Worked {
    pub example: Example,
    /// Tokens, input features and the head's width, for the prose.
    pub n: usize,
    pub d_model: usize,
    pub d: usize,
    pub q: Mat,
    pub k: Mat,
    pub v: Mat,
    /// `Q Kᵀ / √d`, before any mask.
    pub scores: Mat,
    pub bidirectional: Pass,
    pub causal: Pass,
}

fn matmul(a: &Mat, b: &Mat) -> Mat {
    a.iter()
        .map(|row| {
            (0..b[0].len())
                .map(|j| row.iter().zip(b).map(|(x, r)| x * r[j]).sum())
                .collect()
        })
        .collect()
}

// ANCHOR: attention
/// Scores, mask, softmax, output: one attention head, written out.
/// `allowed(i, j)` says whether query `i` may read key `j`.
pub fn attend(
    q: &Mat,
    k: &Mat,
    v: &Mat,
    allowed: impl Fn(usize, usize) -> bool,
) -> (Mat, Pass) {
    let scale = 1.0 / (q[0].len() as f64).sqrt();
    let dot =
        |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    // 1. Scores: how well query i matches key j, scaled by 1/√d.
    let scores: Mat = q
        .iter()
        .map(|qi| k.iter().map(|kj| scale * dot(qi, kj)).collect())
        .collect();
    // 2. Mask: a blocked pair gets no score (−∞): its weight below is exactly 0.
    let mut masked = Vec::new();
    for (i, row) in scores.iter().enumerate() {
        masked.push(
            row.iter()
                .enumerate()
                .map(|(j, &s)| allowed(i, j).then_some(s))
                .collect(),
        );
    }
    // 3. Softmax per row: exponentiate the allowed scores, divide by their sum.
    let weights: Mat =
        masked.iter().map(|row: &Vec<Option<f64>>| softmax(row)).collect();
    // 4. Output: each position's weighted average of the value rows.
    let output = matmul(&weights, v);
    (scores, Pass { masked, weights, output })
}

/// `exp(s) / Σ exp(s)` over the allowed entries; blocked entries get 0. Subtracting
/// the largest score first keeps every `exp` in range and changes nothing else.
fn softmax(row: &[Option<f64>]) -> Vec<f64> {
    let top = row.iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> =
        row.iter().map(|s| s.map_or(0.0, |s| (s - top).exp())).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|x| x / sum).collect()
}
// ANCHOR_END: attention

/// Work the example through both masks.
pub fn work(ex: &Example) -> anyhow::Result<Worked> {
    // ANCHOR: projections
    // Queries: what each token looks for. Keys: what it offers to be found by.
    // Values: what it passes on when it is read.
    let q = matmul(&ex.x, &ex.w_q);
    let k = matmul(&ex.x, &ex.w_k);
    let v = matmul(&ex.x, &ex.w_v);
    // ANCHOR_END: projections
    let n = ex.x.len();
    let bidirectional_mask = MaskKind::Bidirectional.matrix(0, n, n, 0);
    let causal_mask = MaskKind::Causal.matrix(0, n, n, 0);
    let (scores, bidirectional) =
        attend(&q, &k, &v, |i, j| bidirectional_mask[i][j]);
    let (_, causal) = attend(&q, &k, &v, |i, j| causal_mask[i][j]);
    let (d_model, d) = (ex.x[0].len(), q[0].len());
    Ok(Worked {
        example: ex.clone(),
        n,
        d_model,
        d,
        q,
        k,
        v,
        scores,
        bidirectional,
        causal,
    })
}

/// The library's own attention (the one every chapter's models run) on the same Q,
/// K and V, for the tests: `[n][d]` output.
pub fn library_attention(w: &Worked, mask: &MaskKind) -> anyhow::Result<Mat> {
    let n = w.q.len();
    let d = w.q[0].len();
    let t = |m: &Mat| -> anyhow::Result<Tensor> {
        let flat: Vec<f32> = m.iter().flatten().map(|&x| x as f32).collect();
        Ok(Tensor::from_vec(flat, (1, 1, n, d), &transformer::DEVICE)?)
    };
    let out = transformer::attention::scaled_dot_product(
        &t(&w.q)?,
        &t(&w.k)?,
        &t(&w.v)?,
        mask,
    )?;
    let rows = out.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
    Ok(rows.into_iter().map(|r| r.into_iter().map(f64::from).collect()).collect())
}
