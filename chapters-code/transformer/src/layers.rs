//! The small layers: linear maps, LayerNorm, the GELU MLP, softmax and positions,
//! built through candle-nn's `VarBuilder` and run through its `Module` trait, as in
//! candle-transformers.
//!
//! Each layer's reference computation uses differentiable candle operations;
//! when the model's [`Kernels`] ask for it, the layer runs the same computation as
//! one of our fused kernels instead (see [`crate::kernels`], tested against these
//! lines). Two pieces stay our own where candle-nn's carry no gradient in candle
//! 0.11: `candle_nn::LayerNorm` and `candle_nn::ops::softmax_last_dim` run fast
//! kernels without a backward pass, so training through them would silently stop
//! (see `tests/training.rs`). Our softmax also detaches the row maximum, which
//! `candle_nn::ops::softmax` backpropagates through for nothing.

use candle_core::{D, Result, Tensor};
use candle_nn::{Init, Module, VarBuilder};

use crate::flops;
use crate::kernels::{self, Kernels};

/// Standard deviation of the initial weights (GPT-2's choice).
pub const INIT_STD: f64 = 0.02;

/// Initial weights drawn from N(0, std²).
pub fn normal(std: f64) -> Init {
    Init::Randn { mean: 0.0, stdev: std }
}

/// `y = x Wᵀ + b`, for inputs of any rank whose last dimension is `d_in`:
/// `candle_nn::Linear`, or the same product as one fused kernel.
#[derive(Clone, Debug)]
pub struct Linear {
    inner: candle_nn::Linear,
    fused: bool,
}

impl Linear {
    /// A layer over existing weights (`[d_out, d_in]`) and bias (`[d_out]`).
    pub fn new(weight: Tensor, bias: Option<Tensor>, kernels: &Kernels) -> Self {
        Linear {
            inner: candle_nn::Linear::new(weight, bias),
            fused: kernels.linear,
        }
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }
}

/// A linear layer created under `vb`: its weight drawn from N(0, std²), and a
/// zero bias unless `bias` is false (candle-nn's `linear_b`, with the book's
/// initialisation).
pub fn linear_b(
    (d_in, d_out): (usize, usize),
    bias: bool,
    std: f64,
    kernels: &Kernels,
    vb: VarBuilder,
) -> Result<Linear> {
    let weight = vb.get_with_hints((d_out, d_in), "weight", normal(std))?;
    let bias = match bias {
        true => Some(vb.get_with_hints(d_out, "bias", Init::Const(0.0))?),
        false => None,
    };
    Ok(Linear::new(weight, bias, kernels))
}

/// The same with a bias, as every layer of our models has but the output head.
pub fn linear(
    d_in: usize,
    d_out: usize,
    std: f64,
    kernels: &Kernels,
    vb: VarBuilder,
) -> Result<Linear> {
    linear_b((d_in, d_out), true, std, kernels, vb)
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (d_out, d_in) = self.weight().dims2()?;
        let Some((_, lead)) =
            x.dims().split_last().filter(|&(&last, _)| last == d_in)
        else {
            candle_core::bail!(
                "linear: input {:?} does not end in d_in = {d_in}",
                x.dims()
            );
        };
        if let Some(b) = self.bias().filter(|b| b.elem_count() != d_out) {
            candle_core::bail!(
                "linear: bias {:?} does not hold d_out = {d_out} values",
                b.dims()
            );
        }
        let rows = lead.iter().product::<usize>();
        flops::add(2 * (rows * d_in * d_out) as u64);
        if self.fused {
            // The same product, starting from the bias, in one call on the input as it
            // is (see `kernels`): no reshape enters the graph, so the backward pass has
            // two fewer gradients to add up.
            return kernels::linear(x, self.weight(), self.bias());
        }
        let mut out_shape = x.dims().to_vec();
        *out_shape.last_mut().expect("input has a last dimension") = d_out;
        self.inner.forward(&x.reshape((rows, d_in))?)?.reshape(out_shape)
    }
}

/// LayerNorm over the last dimension.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub gain: Tensor,
    pub bias: Tensor,
    fused: bool,
}

/// A LayerNorm over `d` features, created under `vb`: `gain` starts at 1 and
/// `bias` at 0.
pub fn layer_norm(
    d: usize,
    kernels: &Kernels,
    vb: VarBuilder,
) -> Result<LayerNorm> {
    let gain = vb.get_with_hints(d, "gain", Init::Const(1.0))?;
    let bias = vb.get_with_hints(d, "bias", Init::Const(0.0))?;
    Ok(LayerNorm::new(gain, bias, kernels))
}

impl LayerNorm {
    pub const EPS: f64 = 1e-5;

    /// A LayerNorm over existing `gain` and `bias`.
    pub fn new(gain: Tensor, bias: Tensor, kernels: &Kernels) -> Self {
        LayerNorm { gain, bias, fused: kernels.layer_norm }
    }

    /// The reference computation, in differentiable operations.
    pub fn reference(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + Self::EPS)?.sqrt()?)?;
        normed.broadcast_mul(&self.gain)?.broadcast_add(&self.bias)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused {
            // The same computation, fused into one pass (see `kernels`).
            return kernels::layer_norm(x, &self.gain, &self.bias, Self::EPS);
        }
        self.reference(x)
    }
}

/// The position-wise MLP: `d → d_ff → d` with a GELU (tanh approximation) in
/// between.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub up: Linear,
    pub down: Linear,
    fused_gelu: bool,
}

impl Mlp {
    pub fn new(
        d: usize,
        d_ff: usize,
        out_std: f64,
        kernels: &Kernels,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Mlp {
            up: linear(d, d_ff, INIT_STD, kernels, vb.pp("up"))?,
            down: linear(d_ff, d, out_std, kernels, vb.pp("down"))?,
            fused_gelu: kernels.gelu,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.up.forward(x)?;
        // GELU, tanh approximation: 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))).
        let h = if self.fused_gelu { kernels::gelu(&h)? } else { h.gelu()? };
        self.down.forward(&h)
    }
}

/// Softmax over the last dimension. The row maximum is subtracted for stability; it
/// is detached because softmax does not depend on it, which saves a backward pass
/// through `max`. Masked entries hold −∞ and come out as exactly 0.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// The largest absolute difference between two tensors of the same shape: how far
/// a fast path, a cache or a loaded model is from the reference.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar()
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
        let ln = layer_norm(8, &Kernels::PLAIN, store.vb().pp("ln")).unwrap();
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
