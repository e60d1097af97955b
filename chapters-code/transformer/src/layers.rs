//! The small layers: linear maps, LayerNorm, the GELU MLP, softmax and positions.
//!
//! Each layer is written here with differentiable candle operations, the version
//! the book explains; by default the same computation runs as one of our fused
//! kernels (see [`crate::kernels`], tested against these lines). candle 0.11's
//! fused `softmax_last_dim`, `LayerNorm` module and `RmsNorm` give no gradient, so
//! they are not used.

use candle_core::{D, Result, Tensor};

use crate::flops;
use crate::kernels::{self, Lever};
use crate::params::Scope;

/// Standard deviation of the initial weights (GPT-2's choice).
pub const INIT_STD: f64 = 0.02;

/// `y = x Wᵀ + b`, for inputs of any rank whose last dimension is `d_in`.
#[derive(Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(s: &Scope, d_in: usize, d_out: usize, std: f64) -> Result<Self> {
        Ok(Linear {
            weight: s.normal("weight", (d_out, d_in), std)?,
            bias: Some(s.constant("bias", d_out, 0.0)?),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (d_out, d_in) = self.weight.dims2()?;
        let Some((_, lead)) =
            x.dims().split_last().filter(|&(&last, _)| last == d_in)
        else {
            candle_core::bail!(
                "linear: input {:?} does not end in d_in = {d_in}",
                x.dims()
            );
        };
        if let Some(b) = self.bias.as_ref().filter(|b| b.elem_count() != d_out) {
            candle_core::bail!(
                "linear: bias {:?} does not hold d_out = {d_out} values",
                b.dims()
            );
        }
        let rows = lead.iter().product::<usize>();
        let mut out_shape = x.dims().to_vec();
        *out_shape.last_mut().expect("input has a last dimension") = d_out;
        flops::add(2 * (rows * d_in * d_out) as u64);
        if kernels::enabled(Lever::Linear) {
            // The same product, starting from the bias, in one call (see
            // `kernels`).
            let y = kernels::linear(
                &x.reshape((rows, d_in))?,
                &self.weight,
                self.bias.as_ref(),
            )?;
            return y.reshape(out_shape);
        }
        let y = x.reshape((rows, d_in))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        y.reshape(out_shape)
    }
}

/// LayerNorm over the last dimension, written with differentiable operations.
#[derive(Clone)]
pub struct LayerNorm {
    pub gain: Tensor,
    pub bias: Tensor,
}

impl LayerNorm {
    pub const EPS: f64 = 1e-5;

    pub fn new(s: &Scope, d: usize) -> Result<Self> {
        Ok(LayerNorm {
            gain: s.constant("gain", d, 1.0)?,
            bias: s.constant("bias", d, 0.0)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if kernels::enabled(Lever::LayerNorm) {
            // The same computation as below, fused into one pass (see `kernels`).
            return kernels::layer_norm(x, &self.gain, &self.bias, Self::EPS);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + Self::EPS)?.sqrt()?)?;
        normed.broadcast_mul(&self.gain)?.broadcast_add(&self.bias)
    }
}

/// The position-wise MLP: `d → d_ff → d` with a GELU (tanh approximation) in
/// between.
#[derive(Clone)]
pub struct Mlp {
    pub up: Linear,
    pub down: Linear,
}

impl Mlp {
    pub fn new(s: &Scope, d: usize, d_ff: usize, out_std: f64) -> Result<Self> {
        Ok(Mlp {
            up: Linear::new(&s.scope("up"), d, d_ff, INIT_STD)?,
            down: Linear::new(&s.scope("down"), d_ff, d, out_std)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.down.forward(&gelu(&self.up.forward(x)?)?)
    }
}

/// GELU, tanh approximation: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if kernels::enabled(Lever::Gelu) { kernels::gelu(x) } else { x.gelu() }
}

/// Softmax over the last dimension. The row maximum is subtracted for stability; it
/// is detached because softmax does not depend on it, which saves a backward pass
/// through `max`. Masked entries hold −∞ and come out as exactly 0.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if kernels::enabled(Lever::Softmax) {
        return kernels::softmax(x, 1.0, None); // the same, fused into one pass
    }
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// `log softmax` over the last dimension, differentiable and stable.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// The original Transformer's sinusoidal position table, `len × d`.
pub fn sinusoidal(len: usize, d: usize) -> Result<Tensor> {
    let mut data = Vec::with_capacity(len * d);
    for pos in 0..len {
        for i in 0..d {
            let freq = 1.0 / 10_000f64.powf((2 * (i / 2)) as f64 / d as f64);
            let angle = pos as f64 * freq;
            data.push(if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    Tensor::from_vec(data, (len, d), &crate::DEVICE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamStore;

    #[test]
    fn softmax_rows_sum_to_one_and_masked_entries_are_zero() {
        let x = Tensor::new(
            &[[1f32, 2., f32::NEG_INFINITY], [0., 0., 0.]],
            &crate::DEVICE,
        )
        .unwrap();
        let p = softmax_last(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(p[0][2], 0.0);
        for row in &p {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        let ls =
            log_softmax_last(&x).unwrap().exp().unwrap().to_vec2::<f32>().unwrap();
        assert!((ls[0][1] - p[0][1]).abs() < 1e-6);
    }

    #[test]
    fn layer_norm_output_has_zero_mean_unit_variance() {
        let store = ParamStore::new(0);
        let ln = LayerNorm::new(&store.scope("ln"), 8).unwrap();
        let x = Tensor::arange(0f32, 16., &crate::DEVICE)
            .unwrap()
            .reshape((2, 8))
            .unwrap();
        let y = ln.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        for row in y {
            let mean: f32 = row.iter().sum::<f32>() / 8.0;
            let var: f32 =
                row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 8.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3, "{mean} {var}");
        }
    }
}
