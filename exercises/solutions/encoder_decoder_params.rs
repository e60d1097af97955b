// Chapter 1, exercise 4: count an encoder-decoder's parameters by hand (reference
// solution).

use transformer::{Config, PositionKind};

/// The exact number of parameters of `transformer::EncoderDecoder::new(cfg, vb)`.
pub fn encoder_decoder_params(cfg: &Config) -> usize {
    let d = cfg.d_model;
    let kv = cfg.n_kv_heads * (d / cfg.n_heads);
    let linear = |d_in: usize, d_out: usize| d_in * d_out + d_out;
    let layer_norm = 2 * d;
    let self_attention = linear(d, d + 2 * kv) + linear(d, d);
    let mlp = linear(d, cfg.d_ff) + linear(cfg.d_ff, d);
    let block = 2 * layer_norm + self_attention + mlp;
    let cross_attention = linear(d, d) + linear(d, 2 * kv) + linear(d, d);
    let decoder_block = block + layer_norm + cross_attention;
    let positions = match cfg.positions {
        PositionKind::Learned => cfg.max_len * d,
        PositionKind::Sinusoidal => 0,
    };
    let head = if cfg.tie_embeddings { 0 } else { cfg.vocab_size * d };
    let embeddings = cfg.vocab_size * d + positions + head;
    embeddings + cfg.n_layers * (block + decoder_block) + 2 * layer_norm
}
