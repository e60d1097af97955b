//! LayerNorm over the last dimension, and its backward pass.

use super::*;

/// LayerNorm over the last dimension: `y = (x − mean) / √(var + ε) · gain + bias`.
pub(super) struct LayerNormOp {
    eps: f32,
}

/// Mean and 1/√(var + ε) of one row, in the same order of operations as the plain
/// version.
pub(super) fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The width `d` of a LayerNorm over `x` with these gain and bias; an error unless
/// `x` ends in `d > 0` and gain and bias hold `d` values each.
pub(super) fn layer_norm_width(
    x: &[usize],
    gain: &Shape,
    bias: &Shape,
) -> Result<usize> {
    let d = gain.elem_count();
    if d == 0 || bias.elem_count() != d || x.last() != Some(&d) {
        bail!(
            "layer norm: input {x:?}, gain {gain:?} and bias {bias:?} do not fit (d > 0 needed)"
        );
    }
    Ok(d)
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = layer_norm_width(xl.dims(), gl.shape(), bl.shape())?;
        let (x, g, b) = (f32s(xs, xl)?, f32s(gs, gl)?, f32s(bs, bl)?);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
                    let (mean, rstd) = row_stats(x, self.eps);
                    for i in 0..d {
                        y[i] = (x[i] - mean) * rstd * g[i] + b[i];
                    }
                }
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    /// `dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))` with `dx̂ = dy ·
    /// gain`; `dgain = Σ dy · x̂`, `dbias = Σ dy` over rows, each in its
    /// parameter's shape.
    fn bwd(
        &self,
        x: &Tensor,
        gain: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let eps = self.eps;
        let d = layer_norm_width(x.dims(), gain.shape(), bias.shape())?;
        let (dx, dg, db) = with_f32(x, |x| {
            with_f32(gain, |g| {
                with_f32(dy, |dy| {
                    let mut dx = vec![0f32; x.len()];
                    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
                        .par_chunks_mut(d * ROWS_PER_TASK)
                        .zip(
                            x.par_chunks(d * ROWS_PER_TASK)
                                .zip(dy.par_chunks(d * ROWS_PER_TASK)),
                        )
                        .map(|(dx, (x, dy))| {
                            let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
                            for ((dx, x), dy) in
                                dx.chunks_mut(d).zip(x.chunks(d)).zip(dy.chunks(d))
                            {
                                let (mean, rstd) = row_stats(x, eps);
                                let (mut s1, mut s2) = (0f32, 0f32);
                                for i in 0..d {
                                    let xhat = (x[i] - mean) * rstd;
                                    let dxhat = dy[i] * g[i];
                                    s1 += dxhat;
                                    s2 += dxhat * xhat;
                                    dg[i] += dy[i] * xhat;
                                    db[i] += dy[i];
                                }
                                let (m1, m2) = (s1 / d as f32, s2 / d as f32);
                                for i in 0..d {
                                    let xhat = (x[i] - mean) * rstd;
                                    dx[i] = rstd * (dy[i] * g[i] - m1 - xhat * m2);
                                }
                            }
                            (dg, db)
                        })
                        .collect();
                    let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
                    for (pg, pb) in &partial {
                        for i in 0..d {
                            dg[i] += pg[i];
                            db[i] += pb[i];
                        }
                    }
                    Ok((dx, dg, db))
                })
            })
        })?;
        Ok((
            Some(tensor(dx, x.shape())?),
            Some(tensor(dg, gain.shape())?),
            Some(tensor(db, bias.shape())?),
        ))
    }
}

/// Fused LayerNorm over the last dimension of `x`, with a hand-written backward
/// pass. `gain` and `bias` hold `d` values each (`[d]` or `[1, d]`), `d` the last
/// dimension of `x`, `d > 0`.
pub fn layer_norm(
    x: &Tensor,
    gain: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    layer_norm_width(x.dims(), gain.shape(), bias.shape())?;
    for (what, t) in [("the input", x), ("the gain", gain), ("the bias", bias)] {
        check_f32(what, t)?;
    }
    x.contiguous()?.apply_op3(
        &gain.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps: eps as f32 },
    )
}
