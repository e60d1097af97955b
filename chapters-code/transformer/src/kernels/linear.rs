//! The linear layer `y = x Wᵀ + b`, and its backward pass.

use super::*;

/// A linear layer `y = x Wᵀ + b` on `x` of shape `[rows, d_in]`, `W` of shape
/// `[d_out, d_in]`: one matrix multiplication that starts from the bias instead of
/// adding it afterwards.
pub(super) struct LinearOp;

/// `(rows, d_in, d_out)` of `x` (`[.., d_in]`: any leading dimensions, read as
/// `rows` rows), `W` (`[d_out, d_in]`) and the bias, if any (`[d_out]` or `[1,
/// d_out]`); an error for any other shapes.
pub(super) fn linear_dims(
    x: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
) -> Result<(usize, usize, usize)> {
    let (Some((&d_in, lead)), &[d_out, w_in]) = (x.split_last(), w) else {
        bail!(
            "fused linear: input {x:?} and weight {w:?} must be [.., d_in] and [d_out, d_in]"
        );
    };
    if d_in != w_in || b.is_some_and(|b| !matches!(*b, [n] | [1, n] if n == d_out))
    {
        bail!("fused linear: input {x:?}, weight {w:?} and bias {b:?} do not fit");
    }
    Ok((lead.iter().product(), d_in, d_out))
}

/// The output shape of a linear layer on `x`: `x`'s with `d_out` last.
fn out_shape(x: &[usize], d_out: usize) -> Shape {
    let mut dims = x.to_vec();
    if let Some(last) = dims.last_mut() {
        *last = d_out;
    }
    Shape::from(dims)
}

pub(super) fn linear_fwd(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    (rows, d_in, d_out): (usize, usize, usize),
) -> Vec<f32> {
    let mut y = match b {
        Some(b) => b.repeat(rows),
        None => vec![0f32; rows * d_out],
    };
    // x is rows × d_in, w is d_out × d_in (read as its transpose), y is rows ×
    // d_out.
    matmul(
        (rows, d_out, d_in),
        &mut y,
        b.is_some(),
        View::new(x, 0, d_in, 1),
        View::new(w, 0, 1, d_in),
        true,
    );
    y
}

/// `dx = dy W`, `dW = dyᵀ x`, `db = Σ_rows dy` (in the bias's shape).
pub(super) fn linear_bwd(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (rows, d_in, d_out) = linear_dims(x.dims(), w.dims(), b.map(|b| b.dims()))?;
    let (dx, dw, db) = with_f32(x, |x| {
        with_f32(w, |w| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; rows * d_in];
                let mut dw = vec![0f32; d_out * d_in];
                // dx = dy W (dy's rows) and dW = dyᵀ x (dy read transposed).
                matmul_pair(
                    (
                        (rows, d_in, d_out),
                        &mut dx,
                        false,
                        View::new(dy, 0, d_out, 1),
                        View::new(w, 0, d_in, 1),
                    ),
                    (
                        (d_out, d_in, rows),
                        &mut dw,
                        false,
                        View::new(dy, 0, 1, d_out),
                        View::new(x, 0, d_in, 1),
                    ),
                );
                let mut db = vec![0f32; d_out];
                if d_out > 0 {
                    let partial: Vec<Vec<f32>> = dy
                        .par_chunks(d_out * ROWS_PER_TASK * 4)
                        .map(|c| {
                            let mut s = vec![0f32; d_out];
                            for row in c.chunks(d_out) {
                                for (s, v) in s.iter_mut().zip(row) {
                                    *s += v;
                                }
                            }
                            s
                        })
                        .collect();
                    for p in &partial {
                        for (s, v) in db.iter_mut().zip(p) {
                            *s += v;
                        }
                    }
                }
                Ok((dx, dw, db))
            })
        })
    })?;
    let db = b.map(|b| tensor(db, b.shape())).transpose()?;
    Ok((tensor(dx, x.shape())?, tensor(dw, w.shape())?, db))
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = linear_dims(xl.dims(), wl.dims(), Some(bl.dims()))?;
        let y = linear_fwd(f32s(xs, xl)?, f32s(ws, wl)?, Some(f32s(bs, bl)?), dims);
        Ok((CpuStorage::F32(y), out_shape(xl.dims(), dims.2)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = linear_bwd(x, w, Some(b), dy)?;
        Ok((Some(dx), Some(dw), db))
    }
}

/// The same without a bias.
pub(super) struct LinearNoBiasOp;

impl CustomOp2 for LinearNoBiasOp {
    fn name(&self) -> &'static str {
        "fused-linear-no-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = linear_dims(xl.dims(), wl.dims(), None)?;
        let y = linear_fwd(f32s(xs, xl)?, f32s(ws, wl)?, None, dims);
        Ok((CpuStorage::F32(y), out_shape(xl.dims(), dims.2)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = linear_bwd(x, w, None, dy)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Fused `x Wᵀ + b` for `x` of shape `[.., d_in]` (any leading dimensions, so no
/// reshape enters the graph), `W` of shape `[d_out, d_in]` and `b` of `d_out`
/// values (`[d_out]` or `[1, d_out]`); returns `[.., d_out]`. Other shapes are
/// errors.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    linear_dims(x.dims(), w.dims(), b.map(|b| b.dims()))?;
    check_f32("the input", x)?;
    check_f32("the weight", w)?;
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match b {
        Some(b) => {
            check_f32("the bias", b)?;
            x.apply_op3(&w, &b.contiguous()?, LinearOp)
        }
        None => x.apply_op2(&w, LinearNoBiasOp),
    }
}
