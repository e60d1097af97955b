// Chapter 1, exercise 4: count an encoder-decoder's parameters by hand.
//
// The shared library builds an L + L encoder-decoder with pre-LayerNorm blocks.
// Every Linear layer has a weight matrix and a bias; every LayerNorm has a gain and
// a bias per feature.
// - Encoder block: LayerNorm, self-attention (a fused Q, K, V projection d → (h +
//   2g)·d/h, where h = n_heads and g = n_kv_heads, then an output projection d →
//   d), LayerNorm, and an MLP d → d_ff → d.
// - Decoder block: the same, plus a LayerNorm and a cross-attention (Q: d → d, K
//   and V together: d → 2g·d/h, output: d → d).
// - A final LayerNorm after the encoder and another after the decoder.
// - Token embeddings (vocab × d), shared by both sides; learned positions (max_len
//   × d) unless they are sinusoidal; an output head (vocab × d, no bias) unless it
//   is tied to the embedding.

use transformer::{Config, PositionKind};

/// The exact number of parameters of `transformer::EncoderDecoder::new(cfg, vb)`.
pub fn encoder_decoder_params(cfg: &Config) -> usize {
    // TODO: add up the pieces listed above, from `cfg`'s fields only (do not call
    // the `Config::*_params` helpers: writing the sum yourself is the exercise).
    todo!(
        "count the parameters of an encoder-decoder with d_model = {}",
        cfg.d_model
    )
}
