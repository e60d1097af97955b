//! Greedy generation, with and without the cache, and the check that both agree.

use anyhow::Result;
use candle_core::{IndexOp, Tensor};
use rand::Rng as _;
use serde::Serialize;
use transformer::model::Forward;
use transformer::rng;
use transformer::{
    Config, DEVICE, DecoderOnly, EncoderDecoder, KvCache, MaskKind, ParamStore,
    PositionKind,
};

use crate::*;

/// A `[1, t]` tensor of token ids.
pub fn ids(tokens: &[u32]) -> Result<Tensor> {
    Ok(Tensor::from_vec(tokens.to_vec(), (1, tokens.len()), &DEVICE)?)
}

/// The logits of the last position of a `[1, t, vocab]` output.
pub(crate) fn last_logits(logits: &Tensor) -> Result<Vec<f32>> {
    let t = logits.dim(1)?;
    Ok(logits.i((0, t - 1))?.to_vec1()?)
}

/// Index of the largest logit; the first one on ties.
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// How the decoder-only model reads its prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PromptMask {
    /// A causal decoder (GPT).
    Causal,
    /// A prefix LM: bidirectional over the prompt, causal over what it generates.
    Prefix,
}

impl PromptMask {
    pub fn mask(self, prompt_len: usize) -> MaskKind {
        match self {
            PromptMask::Causal => MaskKind::Causal,
            PromptMask::Prefix => MaskKind::prefix(prompt_len),
        }
    }
}

/// Generated tokens and, for each, the logits it was chosen from.
#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub logits: Vec<Vec<f32>>,
}

// ANCHOR: continue_cached
/// Feed `chunk` into the model on top of whatever `cache` already holds, then
/// generate `n_new` tokens greedily, one step per token. Each step feeds only the
/// newest token; its keys and values are appended to the cache. The last generated
/// token is returned but not fed, so its keys and values are not yet cached (the
/// next call feeds it first).
pub fn continue_cached(
    model: &DecoderOnly,
    cache: &mut Vec<KvCache>,
    chunk: &[u32],
    mask: &MaskKind,
    n_new: usize,
) -> Result<Generation> {
    let mut out = Generation::default();
    let mut next = chunk.to_vec();
    for _ in 0..n_new {
        let logits = model
            .run(
                &ids(&next)?,
                mask,
                Forward { cache: Some(&mut *cache), trace: false },
            )?
            .logits;
        let row = last_logits(&logits)?;
        let token = argmax(&row);
        out.tokens.push(token);
        out.logits.push(row);
        next = vec![token];
    }
    Ok(out)
}
// ANCHOR_END: continue_cached

/// Greedy generation with a fresh KV cache: the prompt in one pass, then one token
/// per step.
pub fn greedy_cached(
    model: &DecoderOnly,
    prompt: &[u32],
    n_new: usize,
    kind: PromptMask,
) -> Result<Generation> {
    let mut cache = Vec::new();
    continue_cached(model, &mut cache, prompt, &kind.mask(prompt.len()), n_new)
}

// ANCHOR: greedy_full
/// Greedy generation by full recomputation: every step runs the whole sequence
/// again.
pub fn greedy_full(
    model: &DecoderOnly,
    prompt: &[u32],
    n_new: usize,
    kind: PromptMask,
) -> Result<Generation> {
    let mask = kind.mask(prompt.len());
    let mut seq = prompt.to_vec();
    let mut out = Generation::default();
    for _ in 0..n_new {
        let row = last_logits(&model.forward(&ids(&seq)?, &mask)?)?;
        let token = argmax(&row);
        out.tokens.push(token);
        out.logits.push(row);
        seq.push(token);
    }
    Ok(out)
}
// ANCHOR_END: greedy_full

// ANCHOR: greedy_encdec
/// The encoder-decoder's cached generation: encode the source once, project every
/// decoder layer's cross-attention keys and values once, then decode one token per
/// step with a self-attention cache.
pub fn greedy_encdec_cached(
    model: &EncoderDecoder,
    src: &[u32],
    n_new: usize,
) -> Result<Generation> {
    let (enc, _) = model.encode(&ids(src)?, false)?;
    let cross = model.cross_kv(&enc)?;
    let mut cache = Vec::new();
    let mut out = Generation::default();
    let mut next = BOS;
    for _ in 0..n_new {
        let step = Forward { cache: Some(&mut cache), trace: false };
        let row = last_logits(&model.decode(&ids(&[next])?, &cross, step)?.logits)?;
        next = argmax(&row);
        out.tokens.push(next);
        out.logits.push(row);
    }
    Ok(out)
}
// ANCHOR_END: greedy_encdec

/// The encoder-decoder without any cache: every step encodes the source and decodes
/// the whole target again.
pub fn greedy_encdec_full(
    model: &EncoderDecoder,
    src: &[u32],
    n_new: usize,
) -> Result<Generation> {
    let src = ids(src)?;
    let mut tgt = vec![BOS];
    let mut out = Generation::default();
    for _ in 0..n_new {
        let row = last_logits(&model.forward(&src, &ids(&tgt)?)?)?;
        let token = argmax(&row);
        out.tokens.push(token);
        out.logits.push(row);
        tgt.push(token);
    }
    Ok(out)
}

/// Largest absolute difference between the step logits of two generations, over the
/// steps they share.
pub fn max_logit_diff(a: &Generation, b: &Generation) -> f64 {
    a.logits
        .iter()
        .zip(&b.logits)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| f64::from((p - q).abs())))
        .fold(0.0, f64::max)
}

/// One random comparison of cached and uncached generation.
#[derive(Debug, Clone, Serialize)]
pub struct EqualityCase {
    pub seed: u64,
    pub n_layers: usize,
    pub n_kv_heads: usize,
    pub prompt_len: usize,
    pub n_new: usize,
    /// Same tokens for the causal decoder, the prefix LM and the encoder-decoder.
    pub same_tokens: [bool; 3],
    /// Largest logit difference over all three. Left out of the report, as it
    /// varies with thread counts: [`Timings::max_logit_diff`] holds the largest.
    #[serde(skip)]
    pub max_logit_diff: f64,
}

// ANCHOR: equality_case
/// Draw a random model shape, prompt and length from `seed`; generate greedily with
/// and without the cache for the causal decoder, the prefix LM and the
/// encoder-decoder.
pub fn equality_case(seed: u64) -> Result<EqualityCase> {
    let mut r = rng::stream(seed, "equality");
    let n_kv_heads = [4, 2, 1][r.random_range(0..3)];
    let cfg = Config {
        vocab_size: 50,
        d_model: 32,
        n_heads: 4,
        n_kv_heads,
        d_ff: 64,
        n_layers: r.random_range(1..=3),
        max_len: 40,
        positions: if r.random_bool(0.5) {
            PositionKind::Learned
        } else {
            PositionKind::Sinusoidal
        },
        tie_embeddings: r.random_bool(0.5),
        kernels: Default::default(),
    };
    let prompt_len = r.random_range(1..=12);
    let n_new = r.random_range(1..=16);
    let prompt: Vec<u32> =
        (0..prompt_len).map(|_| r.random_range(0..cfg.vocab_size as u32)).collect();
    let store = ParamStore::new(seed);
    let dec = DecoderOnly::new(&cfg, store.vb().pp("dec"))?;
    let ed = EncoderDecoder::new(&cfg, store.vb().pp("ed"))?;
    let mut same_tokens = [false; 3];
    let mut worst = 0f64;
    for (i, kind) in
        [PromptMask::Causal, PromptMask::Prefix].into_iter().enumerate()
    {
        let (a, b) = (
            greedy_cached(&dec, &prompt, n_new, kind)?,
            greedy_full(&dec, &prompt, n_new, kind)?,
        );
        same_tokens[i] = a.tokens == b.tokens;
        worst = worst.max(max_logit_diff(&a, &b));
    }
    let (a, b) = (
        greedy_encdec_cached(&ed, &prompt, n_new)?,
        greedy_encdec_full(&ed, &prompt, n_new)?,
    );
    same_tokens[2] = a.tokens == b.tokens;
    worst = worst.max(max_logit_diff(&a, &b));
    Ok(EqualityCase {
        seed,
        n_layers: cfg.n_layers,
        n_kv_heads,
        prompt_len,
        n_new,
        same_tokens,
        max_logit_diff: worst,
    })
}
// ANCHOR_END: equality_case
