// Chapter 5, exercise 1: what one input–output pair costs a decoder and an
// encoder-decoder.
//
// T5's accounting says an L + L encoder-decoder has about the parameters of a 2L
// decoder but about the compute of an L decoder, because each of its stacks reads
// only half the sequence. Check it by counting. A pair is `n` input tokens and `m`
// output tokens, read with teacher forcing, as in the chapter's pretraining:
// - the decoder reads the n + m − 1 tokens of input and output without the last
//   one, and every position goes through every layer and the output head;
// - the encoder-decoder's encoder reads the n input tokens; its decoder reads m
//   tokens (the start token and the first m − 1 output tokens), each attending over
//   its own earlier positions and, in every layer, over the n encoder outputs; only
//   the decoder's positions reach the output head.
//
// Count the FLOPs of the matrix multiplications from the shapes in `Config`
// (d_model, n_heads, n_kv_heads, d_ff, n_layers, vocab_size), 2 FLOPs per
// multiply-add. A self-attention layer over t positions costs per position the QKV
// projection (d_model · (n_heads + 2 · n_kv_heads) · head_dim), the output
// projection (d_model²), and 2 · t · d_model for the scores and the weighted sum
// (masked scores are computed too); the MLP costs 2 · d_model · d_ff per position.
// Cross-attention adds, per decoder position and layer, its query and output
// projections (2 · d_model²) and the attention over the n encoder outputs; its keys
// and values cost d_model · 2 · n_kv_heads · head_dim per encoder output and
// decoder layer. Work it out yourself: do not call `Config`'s FLOP helpers.

use transformer::Config;

/// Forward FLOPs of a decoder (`cfg.n_layers` layers) on one pair.
pub fn decoder_pair_flops(cfg: &Config, n: usize, m: usize) -> u64 {
    // TODO: (n + m − 1) positions, each through every block and the head; attention
    // over n + m − 1 keys.
    todo!(
        "count the decoder on {n} + {m} tokens of a model with {} layers",
        cfg.n_layers
    )
}

/// Forward FLOPs of an encoder-decoder (`cfg.n_layers` layers in each stack) on one
/// pair.
pub fn encoder_decoder_pair_flops(cfg: &Config, n: usize, m: usize) -> u64 {
    // TODO: the encoder over n positions, the cross-attention keys and values, the
    // decoder over m positions with self-attention over m keys and cross-attention
    // over n, the head.
    todo!(
        "count the encoder-decoder on {n} + {m} tokens of a model with {} layers",
        cfg.n_layers
    )
}
