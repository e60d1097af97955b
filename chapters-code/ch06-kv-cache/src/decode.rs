//! One decoding step, with and without the cache: counted FLOPs and measured time.

use anyhow::Result;
use candle_core::Tensor;
use rand::Rng as _;
use serde::Serialize;
use std::time::Instant;
use transformer::model::{Forward, Output};
use transformer::{Config, DecoderOnly, KvCache, MaskKind};
use transformer::{flops, rng};

use crate::*;

// ANCHOR: step_flops
/// FLOPs of one forward pass that feeds `new` tokens on top of `cached` ones: every
/// new token goes through every block's matrices and the output head, and attends
/// over all `cached + new` keys (masked scores are computed too, as in the
/// library's formula).
pub fn chunk_flops(cfg: &Config, cached: usize, new: usize) -> u64 {
    let (l, new64) = (cfg.n_layers as u64, new as u64);
    new64 * (l * cfg.block_matmul_flops() + cfg.head_flops())
        + l * new64 * cfg.attention_flops(cached + new)
}

/// Predicted FLOPs of producing the token after a context of `n` tokens: without a
/// cache the whole sequence of `n + 1` tokens is run again; with one, only the
/// newest token is.
pub fn step_flops(cfg: &Config, n: usize) -> (u64, u64) {
    let full = (n as u64 + 1) * cfg.decoder_only_flops_per_token(n + 1);
    (full, chunk_flops(cfg, n, 1))
}
// ANCHOR_END: step_flops

/// Counted FLOPs and predicted speed-up of one decoding step at context `n`.
#[derive(Debug, Clone, Serialize)]
pub struct DecodePoint {
    pub context: usize,
    pub flops_full: u64,
    pub flops_cached: u64,
    /// Counted FLOPs without the cache over counted FLOPs with it.
    pub predicted_speedup: f64,
}

/// Median seconds of one decoding step at context `n`, with and without the cache.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeTiming {
    pub context: usize,
    pub ms_full: f64,
    pub ms_cached: f64,
    pub measured_speedup: f64,
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub(crate) fn random_tokens(r: &mut rng::Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| r.random_range(0..vocab as u32)).collect()
}

/// Seconds taken by `f`, median of `repeats` runs.
pub(crate) fn time_median(
    repeats: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let mut secs = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        secs.push(start.elapsed().as_secs_f64());
    }
    Ok(median(secs))
}

// ANCHOR: decode_point
/// The per-layer caches after the causal pass over `tokens`.
pub(crate) fn filled_cache(
    model: &DecoderOnly,
    tokens: &[u32],
) -> Result<Vec<KvCache>> {
    let mut cache = Vec::new();
    model.run(
        &ids(tokens)?,
        &MaskKind::Causal,
        Forward { cache: Some(&mut cache), trace: false },
    )?;
    Ok(cache)
}

/// One decoding step: `newest` fed on top of `cache`. Cloning the cache copies
/// only handles to its tensors; the step appends to its own copy, so `cache` is
/// left as it was and every call runs the same step.
pub(crate) fn cached_step(
    model: &DecoderOnly,
    cache: &[KvCache],
    newest: &Tensor,
) -> candle_core::Result<Output> {
    let mut c = cache.to_vec();
    model.run(
        newest,
        &MaskKind::Causal,
        Forward { cache: Some(&mut c), trace: false },
    )
}

/// Count and time the step that produces the token after `n` context tokens: once
/// by running all `n + 1` tokens, once by feeding the newest token to a cache
/// holding the other `n`.
pub fn decode_point(
    model: &DecoderOnly,
    n: usize,
    repeats: usize,
    seed: u64,
) -> Result<(DecodePoint, DecodeTiming)> {
    let tokens = random_tokens(
        &mut rng::stream(seed, "decode"),
        n + 1,
        model.cfg.vocab_size,
    );
    let all = ids(&tokens)?;
    let newest = ids(&tokens[n..])?;
    let cache = filled_cache(model, &tokens[..n])?;
    let full = || model.forward(&all, &MaskKind::Causal);
    let cached = || cached_step(model, &cache, &newest);
    let (_, flops_full) = flops::count(full);
    let (_, flops_cached) = flops::count(cached);
    let ms_full =
        1e3 * time_median(repeats, || full().map(drop).map_err(Into::into))?;
    let ms_cached =
        1e3 * time_median(repeats, || cached().map(drop).map_err(Into::into))?;
    let point = DecodePoint {
        context: n,
        flops_full,
        flops_cached,
        predicted_speedup: flops_full as f64 / flops_cached as f64,
    };
    let timing = DecodeTiming {
        context: n,
        ms_full,
        ms_cached,
        measured_speedup: ms_full / ms_cached,
    };
    Ok((point, timing))
}
// ANCHOR_END: decode_point
