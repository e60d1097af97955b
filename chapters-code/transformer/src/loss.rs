//! Cross-entropy with a loss mask: each objective chooses which positions are
//! supervised.

use candle_core::{D, DType, Result, Tensor};

use crate::kernels;
use crate::layers::log_softmax_last;

/// Mean negative log-likelihood of `targets` over the positions where `weights` is
/// non-zero.
///
/// `logits`: `[b, t, vocab]`; `targets`: `[b, t]` (u32); `weights`: `[b, t]` (f32,
/// usually 0 or 1). Positions with weight 0 (the prefix of a prefix LM, unmasked
/// tokens under MLM, padding) contribute nothing, neither to the loss nor to the
/// gradient.
pub fn masked_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
    let nll = token_nll(logits, targets)?;
    let total = weights.sum_all()?;
    (nll * weights)?.sum_all()?.broadcast_div(&total.maximum(1e-9)?)
}

/// Negative log-likelihood of each target, `[b, t]`: `lse(logits) − logits[target]`
/// per position, computed by our fused kernel [`kernels::nll`], which the tests
/// check against [`token_nll_reference`].
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    kernels::nll(logits, targets)
}

/// The same in differentiable candle operations: log-softmax, then the target's
/// entry.
pub fn token_nll_reference(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logp = log_softmax_last(logits)?;
    let picked = logp
        .gather(&targets.to_dtype(DType::U32)?.unsqueeze(D::Minus1)?, D::Minus1)?;
    picked.squeeze(D::Minus1)?.neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_positions_do_not_count() {
        let dev = &crate::DEVICE;
        // Two positions; the first predicts target 0 confidently, the second badly.
        let logits = Tensor::new(&[[[5f32, 0., 0.], [5., 0., 0.]]], dev).unwrap();
        let targets = Tensor::new(&[[0u32, 2]], dev).unwrap();
        let only_first = Tensor::new(&[[1f32, 0.]], dev).unwrap();
        let both = Tensor::new(&[[1f32, 1.]], dev).unwrap();
        let l1: f32 = masked_cross_entropy(&logits, &targets, &only_first)
            .unwrap()
            .to_scalar()
            .unwrap();
        let l2: f32 = masked_cross_entropy(&logits, &targets, &both)
            .unwrap()
            .to_scalar()
            .unwrap();
        let lse = (5f32.exp() + 2.0).ln();
        assert!((l1 - (lse - 5.0)).abs() < 1e-5, "{l1}");
        assert!((l2 - ((lse - 5.0) + lse) / 2.0).abs() < 1e-5, "{l2}");
    }
}
