// Chapter 6, exercise 2: the compute of a multi-turn dialogue, turn by turn, for
// three ways of serving it (reference solution).

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

/// FLOPs of one forward pass of the decoder-only model that feeds `new` tokens on
/// top of `cached` ones: each new token passes every block's matrices and the
/// output head, and its query scores all `cached + new` keys in every layer.
fn pass(cfg: &Config, cached: usize, new: usize) -> u64 {
    let (l, n) = (cfg.n_layers as u64, new as u64);
    n * (l * cfg.block_matmul_flops() + cfg.head_flops())
        + l * n * cfg.attention_flops(cached + new)
}

/// The FLOPs of each of `turns` turns; each turn is a user message of `user` tokens
/// followed by a reply of `reply` tokens, fed as described in the exercise.
pub fn turn_flops(
    cfg: &Config,
    serving: Serving,
    turns: usize,
    user: usize,
    reply: usize,
) -> Vec<u64> {
    let (l, d) = (cfg.n_layers as u64, cfg.d_model as u64);
    let kv_width = (cfg.n_kv_heads * cfg.head_dim()) as u64;
    (0..turns)
        .map(|t| {
            let history = t * (user + reply);
            let prompt = history + user;
            // The reply, one token per pass, after the prompt: the cache holds
            // prompt + k.
            let reply_passes: u64 =
                (0..reply).map(|k| pass(cfg, prompt + k, 1)).sum();
            match serving {
                Serving::CacheReuse => pass(cfg, history, user) + reply_passes,
                Serving::Reencode => pass(cfg, 0, prompt) + reply_passes,
                Serving::EncoderDecoder => {
                    let s = prompt as u64;
                    let encoder = s
                        * l
                        * (cfg.block_matmul_flops() + cfg.attention_flops(prompt));
                    let cross_kv = l * s * 2 * d * 2 * kv_width;
                    let decoder: u64 = (1..=reply)
                        .map(|k| {
                            l * (cfg.block_matmul_flops()
                                + cfg.attention_flops(k)
                                + 2 * 2 * d * d
                                + cfg.attention_flops(prompt))
                                + cfg.head_flops()
                        })
                        .sum();
                    encoder + cross_kv + decoder
                }
            }
        })
        .collect()
}
