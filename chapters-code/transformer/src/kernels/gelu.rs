//! The tanh GELU, and its backward pass.

use super::*;

/// `tanh`, as a rational approximation accurate to a few ulps in `f32` (the one
/// Eigen uses), branch-free so the compiler can vectorise it.
#[inline(always)]
pub(super) fn tanh_fast(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_5e-16 + 2.000_188e-13;
    p = x2 * p + -8.604_672e-11;
    p = x2 * p + 5.122_297e-8;
    p = x2 * p + 1.485_722_4e-5;
    p = x2 * p + 6.372_619_3e-4;
    p = x2 * p + 4.893_524_6e-3;
    p *= x;
    let mut q = x2 * 1.198_258_4e-6 + 1.185_347e-4;
    q = x2 * q + 2.268_434_6e-3;
    q = x2 * q + 4.893_525e-3;
    p / q
}

pub(super) const SQRT_2_OVER_PI: f32 = 0.797_884_6;
pub(super) const GELU_C: f32 = 0.044_715;

/// GELU with the tanh approximation: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 ·
/// x³)))`.
pub(super) struct GeluOp;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(ELEMS_PER_TASK)
            .zip(x.par_chunks(ELEMS_PER_TASK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = 0.5
                        * x
                        * (1.0
                            + tanh_fast(
                                SQRT_2_OVER_PI * x * (1.0 + GELU_C * x * x),
                            ));
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// `dy · (0.5 · (1 + t) + 0.5 · x · (1 − t²) · √(2/π) · (1 + 3 · 0.044715 ·
    /// x²))`.
    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(x, |x| {
            with_f32(dy, |dy| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(ELEMS_PER_TASK)
                    .zip(
                        x.par_chunks(ELEMS_PER_TASK)
                            .zip(dy.par_chunks(ELEMS_PER_TASK)),
                    )
                    .for_each(|(dx, (x, dy))| {
                        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                            let t = tanh_fast(
                                SQRT_2_OVER_PI * x * (1.0 + GELU_C * x * x),
                            );
                            let dt = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
                            *dx = dy
                                * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt);
                        }
                    });
                Ok(dx)
            })
        })?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

/// Fused tanh-GELU with a hand-written backward pass.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    check_f32("the input", x)?;
    x.contiguous()?.apply_op1(GeluOp)
}
