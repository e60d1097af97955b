// Chapter 6, exercise 2: the compute of a multi-turn dialogue, turn by turn, for
// three ways of serving it.
//
// Every turn is a user message of `user` tokens followed by a reply of `reply`
// tokens. The reply is known in advance (teacher forcing, as when a conversation is
// replayed), so only the cost matters. Turn t (counting from 0) starts after a
// history of t · (user + reply) tokens.
// - CacheReuse: one `DecoderOnly::run` pass feeds the user message on top of the
//   cache; then `reply` passes feed one reply token each. The cache is never reset.
// - Reencode: a fresh cache every turn. One pass feeds the whole history plus the
//   user message; then `reply` passes of one token each.
// - EncoderDecoder: `encode` reads the history plus the user message, `cross_kv`
//   projects the cross-attention keys and values once, then `reply` calls of
//   `decode` feed one token each (the start token, then the reply's first reply − 1
//   tokens) with a fresh self-attention cache.
//
// Count the FLOPs of the matrix multiplications with `Config`'s formulas:
// `block_matmul_flops` per token and block, `attention_flops(n_keys)` per query and
// attention layer, `head_flops` per token that reaches the output head. The library
// counts masked scores too, so a prefix LM costs what a causal decoder costs. The
// encoder-decoder's cross-attention adds, per decoder token and layer, its query
// and output projections (2 · 2 · d_model² FLOPs) and attention over the encoder's
// outputs; its keys and values cost 2 · d_model · (2 · n_kv_heads · head_dim) FLOPs
// per encoder token and decoder layer, once per turn.

use transformer::Config;

/// How a conversation is carried from one turn to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// A causal decoder that keeps one KV cache for the whole conversation.
    CacheReuse,
    /// A decoder-only model (causal, or a prefix LM with the history in its prefix)
    /// that starts a fresh cache every turn and runs history and user message again
    /// in one pass.
    Reencode,
    /// An encoder-decoder: the encoder reads history and user message, the decoder
    /// the reply.
    EncoderDecoder,
}

/// The FLOPs of each of `turns` turns; each turn is a user message of `user` tokens
/// followed by a reply of `reply` tokens, fed as described above.
pub fn turn_flops(
    cfg: &Config,
    serving: Serving,
    turns: usize,
    user: usize,
    reply: usize,
) -> Vec<u64> {
    // TODO: one entry per turn. A helper for "one pass feeding `new` tokens on top
    // of `cached` ones" covers both decoder-only strategies.
    todo!(
        "{serving:?}: {turns} turns of {user} + {reply} tokens, {} layers",
        cfg.n_layers
    )
}
