//! One in-place AdamW step, and the sum of squares for gradient clipping.

use super::*;

/// One AdamW step on a parameter, in place and in one pass: the moments `m` and `v`
/// are updated and the parameter moves, with the gradient scaled by the clipping
/// factor. The parameter, its gradient and both moments must have the same number
/// of values.
pub struct AdamWStep<'a> {
    pub m: Mutex<&'a mut [f32]>,
    pub v: Mutex<&'a mut [f32]>,
    pub grad_scale: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub eps: f32,
    pub lr: f32,
    /// `lr · weight_decay` for matrices, 0 otherwise.
    pub decay: f32,
}

impl InplaceOp2 for AdamWStep<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        ts: &mut CpuStorage,
        tl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        let g = f32s(gs, gl)?;
        let (a, b) = tl.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("non-contiguous parameter".into())
        })?;
        let theta = match ts {
            CpuStorage::F32(t) => &mut t[a..b],
            _ => bail!("parameters must be f32"),
        };
        let mut m = self
            .m
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        let mut v = self
            .v
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        let n = theta.len();
        if g.len() != n || m.len() != n || v.len() != n {
            bail!(
                "adamw: parameter {n}, gradient {}, moments {} and {} values differ",
                g.len(),
                m.len(),
                v.len()
            );
        }
        let c = self;
        theta
            .par_chunks_mut(ELEMS_PER_TASK)
            .zip(m.par_chunks_mut(ELEMS_PER_TASK))
            .zip(v.par_chunks_mut(ELEMS_PER_TASK).zip(g.par_chunks(ELEMS_PER_TASK)))
            .for_each(|((theta, m), (v, g))| {
                for i in 0..theta.len() {
                    let g = g[i] * c.grad_scale;
                    m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g;
                    v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g * g;
                    let update = (m[i] / c.bias_correction1)
                        / ((v[i] / c.bias_correction2).sqrt() + c.eps);
                    theta[i] = theta[i] * (1.0 - c.decay) - c.lr * update;
                }
            });
        Ok(())
    }
}

/// Sum of squares of a tensor's values, in `f64`, in a fixed order.
pub fn sum_of_squares(t: &Tensor) -> Result<f64> {
    with_f32(t, |x| {
        let partial: Vec<f64> = x
            .par_chunks(ELEMS_PER_TASK)
            .map(|c| c.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>())
            .collect();
        Ok(partial.iter().sum())
    })
}
