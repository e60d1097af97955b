//! Negative log-likelihood of each target, and its backward pass.

use super::*;

/// Negative log-likelihood of each target under `softmax(logits)`: `lse(x) −
/// x[target]`.
pub(super) struct NllOp;

/// The vocabulary size of `logits` (`[.., v]`, `v > 0`), with `targets` shaped
/// `[..]`.
pub(super) fn nll_vocab(logits: &[usize], targets: &[usize]) -> Result<usize> {
    match logits.split_last() {
        Some((&v, rows)) if v > 0 && rows == targets => Ok(v),
        _ => {
            bail!("cross-entropy: targets {targets:?} do not fit logits {logits:?}")
        }
    }
}

impl CustomOp2 for NllOp {
    fn name(&self) -> &'static str {
        "fused-nll"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(xs, xl)?;
        let targets = match tl.contiguous_offsets() {
            Some((a, b)) => &ts.as_slice::<u32>()?[a..b],
            None => bail!("targets must be contiguous"),
        };
        let v = nll_vocab(xl.dims(), tl.dims())?;
        if let Some(t) = targets.iter().find(|&&t| t as usize >= v) {
            bail!("cross-entropy: target {t} is outside the vocabulary of {v}");
        }
        let mut nll = vec![0f32; targets.len()];
        nll.par_chunks_mut(ROWS_PER_TASK)
            .zip(x.par_chunks(v * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(task, (out, x))| {
                for (r, (out, x)) in out.iter_mut().zip(x.chunks(v)).enumerate() {
                    let max = row_max(x);
                    let lse = lane_sum(x, |a| exp_fast(a - max)).ln();
                    *out =
                        lse - (x[targets[task * ROWS_PER_TASK + r] as usize] - max);
                }
            });
        Ok((CpuStorage::F32(nll), tl.shape().clone()))
    }

    /// `dlogits = dnll · (softmax(logits) − onehot(target))`.
    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _nll: &Tensor,
        dnll: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let v = nll_vocab(logits.dims(), targets.dims())?;
        let targets: Vec<u32> = targets.flatten_all()?.to_vec1()?;
        let dx = with_f32(dnll, |dnll| {
            let mut dx = with_f32(logits, |x| Ok(x.to_vec()))?;
            dx.par_chunks_mut(v * ROWS_PER_TASK).enumerate().for_each(
                |(task, dx)| {
                    for (r, dx) in dx.chunks_mut(v).enumerate() {
                        let row = task * ROWS_PER_TASK + r;
                        let max = row_max(dx);
                        let k = dnll[row] / exp_in_place_sum(dx, max);
                        for d in dx.iter_mut() {
                            *d *= k;
                        }
                        dx[targets[row] as usize] -= dnll[row];
                    }
                },
            );
            Ok(dx)
        })?;
        Ok((Some(tensor(dx, logits.shape())?), None))
    }
}

/// Fused negative log-likelihood of `targets` (`[..]`, u32) under `logits` (`[..,
/// vocab]`).
pub fn nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    nll_vocab(logits.dims(), targets.dims())?;
    check_f32("the logits", logits)?;
    logits
        .contiguous()?
        .apply_op2(&targets.to_dtype(DType::U32)?.contiguous()?, NllOp)
}
