//! Softmax over the last dimension, with a scale and an additive mask, and its backward pass.

use super::*;

/// `softmax(scale · x + mask)` over the last dimension of `x` (`[.., t_q, t_k]`).
/// The additive mask (0 or −∞) has shape `[rows, n, t_q, t_k]` with `rows` 1 or the
/// batch size and `n` 1 or the number of heads.
pub(super) struct SoftmaxOp {
    scale: f32,
    mask: Option<Tensor>,
}

/// How the rows of a softmax input meet its mask.
#[derive(Clone, Copy)]
pub(super) struct SoftmaxRows {
    t_q: usize,
    t_k: usize,
    /// Rows of scores per batch row (heads · `t_q`).
    per_batch: usize,
    /// Mask matrices per batch: 1 (shared by every batch row) or the batch size.
    mask_rows: usize,
    /// Mask matrices per batch row: 1 (shared by every head) or the number of
    /// heads.
    mask_heads: usize,
}

impl SoftmaxRows {
    /// The layout of scores `x` (`[t_k]`, `[t_q, t_k]`, `[n, t_q, t_k]` or `[.., h,
    /// t_q, t_k]`) and, if given, of the mask: `[t_q, t_k]` or `[m, n, t_q, t_k]`
    /// with `m` 1 or the batch size (the product of the dimensions before the
    /// heads; 1 below rank 4) and `n` 1 or the number of heads.
    pub(super) fn new(x: &[usize], mask: Option<&[usize]>) -> Result<Self> {
        let (t_q, t_k) = match *x {
            [] => bail!("fused softmax: a scalar has no last dimension"),
            [t_k] => (1, t_k),
            [.., t_q, t_k] => (t_q, t_k),
        };
        if t_k == 0 {
            bail!(
                "fused softmax: no keys (input {x:?}); a softmax over nothing is undefined"
            );
        }
        let (batch, heads, per_batch) = match x.len() {
            4.. => (
                x[..x.len() - 3].iter().product(),
                x[x.len() - 3],
                x[x.len() - 3] * t_q,
            ),
            _ => (1, 1, x.iter().product::<usize>() / t_k),
        };
        let (mask_rows, mask_heads) = match mask {
            None => (1, 1),
            Some(&[q, k]) if (q, k) == (t_q, t_k) => (1, 1),
            Some(&[m, n, q, k])
                if (q, k) == (t_q, t_k)
                    && (m == 1 || m == batch)
                    && (n == 1 || n == heads) =>
            {
                (m, n)
            }
            Some(m) => bail!("fused softmax: mask {m:?} does not fit scores {x:?}"),
        };
        Ok(SoftmaxRows { t_q, t_k, per_batch, mask_rows, mask_heads })
    }

    /// The mask row of score row `row` (rows ordered `[batch, head, query]`).
    pub(super) fn mask_row<'a>(&self, mask: &'a [f32], row: usize) -> &'a [f32] {
        let b = if self.mask_rows == 1 { 0 } else { row / self.per_batch };
        let h =
            if self.mask_heads == 1 { 0 } else { row % self.per_batch / self.t_q };
        &mask[((b * self.mask_heads + h) * self.t_q + row % self.t_q) * self.t_k..]
            [..self.t_k]
    }
}

pub(super) fn softmax_rows(
    x: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    rows: SoftmaxRows,
) -> Vec<f32> {
    let t_k = rows.t_k;
    let mut y = x.to_vec();
    let rows_per_task = ROWS_PER_TASK * 4;
    y.par_chunks_mut(t_k * rows_per_task).enumerate().for_each(|(task, y)| {
        for (r, y) in y.chunks_mut(t_k).enumerate() {
            let m = mask.map(|m| rows.mask_row(m, task * rows_per_task + r));
            scale_mask_softmax(y, scale, m);
        }
    });
    y
}

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let rows =
            SoftmaxRows::new(l.dims(), self.mask.as_ref().map(|m| m.dims()))?;
        let y = match &self.mask {
            Some(m) => {
                with_f32(m, |m| Ok(softmax_rows(x, Some(m), self.scale, rows)))?
            }
            None => softmax_rows(x, None, self.scale, rows),
        };
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// `dx = scale · y ⊙ (dy − Σ dy ⊙ y)` per row.
    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let t_k = SoftmaxRows::new(x.dims(), None)?.t_k;
        let scale = self.scale;
        let dx = with_f32(y, |y| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; y.len()];
                let chunk = t_k * ROWS_PER_TASK * 4;
                dx.par_chunks_mut(chunk)
                    .zip(y.par_chunks(chunk).zip(dy.par_chunks(chunk)))
                    .for_each(|(dx, (y, dy))| {
                        for ((dx, y), dy) in dx
                            .chunks_mut(t_k)
                            .zip(y.chunks(t_k))
                            .zip(dy.chunks(t_k))
                        {
                            let dot = lane_dot(y, dy);
                            for j in 0..t_k {
                                dx[j] = scale * y[j] * (dy[j] - dot);
                            }
                        }
                    });
                Ok(dx)
            })
        })?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

/// Fused `softmax(scale · x + mask)` over the last dimension, with a hand-written
/// backward. `x` is `[.., t_q, t_k]` with `t_k > 0`; the mask, if any, `[t_q, t_k]`
/// or `[m, n, t_q, t_k]` with `m` 1 or the batch size (for `x` of rank 4 or more,
/// the product of the dimensions before the heads) and `n` 1 or the number of
/// heads. Fully masked rows give zeros, where the plain path gives NaN.
pub fn softmax(x: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    SoftmaxRows::new(x.dims(), mask.map(|m| m.dims()))?;
    check_f32("the scores", x)?;
    if let Some(m) = mask {
        check_f32("the mask", m)?;
    }
    let mask = mask.map(|m| m.contiguous()).transpose()?;
    x.contiguous()?.apply_op1(SoftmaxOp { scale: scale as f32, mask })
}
