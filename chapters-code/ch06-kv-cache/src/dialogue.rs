//! A multi-turn dialogue under four strategies, beside an exact cost model.

use anyhow::Result;
use serde::Serialize;
use std::time::Instant;
use transformer::flops;
use transformer::{Config, DecoderOnly, EncoderDecoder, KvCache, MaskKind};

use crate::*;

/// How a model carries a conversation from one turn to the next.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, IntoStaticStr, VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum Strategy {
    /// A causal decoder that keeps one KV cache for the whole conversation.
    CausalReuse,
    /// A causal decoder that starts a new cache every turn and runs the history
    /// again.
    CausalRecompute,
    /// A prefix LM whose bidirectional prefix holds the history: re-encoded every
    /// turn.
    #[strum(serialize = "prefix_lm")]
    PrefixReencode,
    /// An encoder-decoder whose encoder reads the history: re-encoded every turn.
    #[strum(serialize = "encoder_decoder")]
    EncDecReencode,
}

impl Strategy {
    pub fn label(self) -> &'static str {
        match self {
            Strategy::CausalReuse => "causal decoder, cache kept across turns",
            Strategy::CausalRecompute => "causal decoder, history recomputed",
            Strategy::PrefixReencode => "prefix LM, history re-encoded",
            Strategy::EncDecReencode => "encoder-decoder, history re-encoded",
        }
    }
}

/// What one turn cost.
#[derive(Debug, Clone)]
pub struct TurnCost {
    pub flops: u64,
    pub secs: f64,
    pub reply: Vec<u32>,
}

// ANCHOR: simulate
/// Run a conversation: each turn appends the next user message, then generates a
/// reply of `reply_len` tokens greedily. Returns the FLOPs and seconds of every
/// turn.
pub fn simulate(
    strategy: Strategy,
    dec: &DecoderOnly,
    ed: &EncoderDecoder,
    users: &[Vec<u32>],
    reply_len: usize,
) -> Result<Vec<TurnCost>> {
    // Every token of the conversation so far; the cache, kept across turns by
    // `CausalReuse` only; the last reply token, generated but not yet fed.
    let mut history: Vec<u32> = Vec::new();
    let mut cache: Vec<KvCache> = Vec::new();
    let mut pending: Vec<u32> = Vec::new();
    let mut turns = Vec::new();
    for user in users {
        let start = Instant::now();
        let prompt = [history.as_slice(), user].concat();
        let (reply, flops) = flops::count(|| -> Result<Vec<u32>> {
            let generation = match strategy {
                Strategy::CausalReuse => {
                    let chunk =
                        [std::mem::take(&mut pending).as_slice(), user].concat();
                    continue_cached(
                        dec,
                        &mut cache,
                        &chunk,
                        &MaskKind::Causal,
                        reply_len,
                    )?
                }
                Strategy::CausalRecompute => {
                    greedy_cached(dec, &prompt, reply_len, PromptMask::Causal)?
                }
                Strategy::PrefixReencode => {
                    greedy_cached(dec, &prompt, reply_len, PromptMask::Prefix)?
                }
                Strategy::EncDecReencode => {
                    greedy_encdec_cached(ed, &prompt, reply_len)?
                }
            };
            Ok(generation.tokens)
        });
        let reply = reply?;
        let secs = start.elapsed().as_secs_f64();
        if strategy == Strategy::CausalReuse {
            pending = reply[reply.len() - 1..].to_vec();
        }
        history = [prompt, reply.clone()].concat();
        turns.push(TurnCost { flops, secs, reply });
    }
    Ok(turns)
}
// ANCHOR_END: simulate

/// The FLOPs of every turn of [`simulate`], from the configuration alone: `turns`
/// turns of `user` message tokens and `reply` generated tokens.
pub fn dialogue_flops_formula(
    cfg: &Config,
    strategy: Strategy,
    turns: usize,
    user: usize,
    reply: usize,
) -> Vec<u64> {
    let (l, d, hd, g) = (
        cfg.n_layers as u64,
        cfg.d_model as u64,
        cfg.head_dim() as u64,
        cfg.n_kv_heads as u64,
    );
    (0..turns)
        .map(|t| {
            let history = t * (user + reply); // tokens before this turn's user message
            let prompt = history + user;
            // Generating the reply: r − 1 single-token steps after the prompt's
            // pass.
            let steps: u64 =
                (0..reply - 1).map(|k| chunk_flops(cfg, prompt + k, 1)).sum();
            match strategy {
                // Only the new tokens (the last reply token and the user message)
                // are fed.
                Strategy::CausalReuse if t > 0 => {
                    chunk_flops(cfg, history - 1, user + 1) + steps
                }
                Strategy::CausalReuse => chunk_flops(cfg, 0, user) + steps,
                // The whole prompt is fed again; the mask does not change the
                // count.
                Strategy::CausalRecompute | Strategy::PrefixReencode => {
                    chunk_flops(cfg, 0, prompt) + steps
                }
                Strategy::EncDecReencode => {
                    let s = prompt as u64;
                    let encoder = s
                        * l
                        * (cfg.block_matmul_flops() + cfg.attention_flops(prompt));
                    let cross_kv = s * l * 2 * d * 2 * g * hd;
                    // Each reply token: its block, its self-attention over the
                    // reply so far, cross-attention's query and output projections,
                    // attention over the source.
                    let decoder: u64 = (1..=reply)
                        .map(|k| {
                            l * (cfg.block_matmul_flops()
                                + cfg.attention_flops(k)
                                + 4 * d * d
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
