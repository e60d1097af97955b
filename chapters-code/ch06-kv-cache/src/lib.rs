//! Chapter 6: the KV cache and multi-turn dialogue.
//!
//! The article's fourth claim is that a decoder-only model can keep reusing its KV cache from
//! one dialogue turn to the next, while encoder-decoders and prefix LMs cannot. This crate
//! checks the mechanism and measures its price:
//!
//! - greedy generation with the library's KV cache equals generation by full recomputation,
//!   for the causal decoder, the prefix LM and the encoder-decoder ([`equality_case`]);
//! - appending a turn leaves a causal decoder's cached keys and values untouched, but changes
//!   those of a bidirectional region that holds the history ([`invalidation`]);
//! - decoding with and without the cache, counted in FLOPs and timed ([`decode_point`]);
//! - a simulated dialogue under four strategies ([`simulate`]) beside an exact cost model
//!   ([`dialogue_flops_formula`]);
//! - cache sizes for multi-head, grouped-query and multi-query attention, for our models and
//!   for published configurations ([`kv_bytes_per_token`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use candle_core::{IndexOp, Tensor};
use rand::Rng as _;
use serde::Serialize;
use transformer::io::{self, round, thousands};
use transformer::model::Forward;
use transformer::plot::{LineChart, Series};
use transformer::{Config, DEVICE, DecoderOnly, EncoderDecoder, KvCache, MaskKind, ParamStore, PositionKind};
use transformer::{flops, rng};

/// The token the encoder-decoder's decoder starts every reply with.
pub const BOS: u32 = 0;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// Everything a run depends on.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub preset: String,
    /// The model every experiment uses (multi-head attention: `n_kv_heads == n_heads`).
    pub model: Config,
    pub seed: u64,
    /// Context lengths at which one decoding step is counted and timed.
    pub contexts: Vec<usize>,
    /// Timing repeats per measurement (the median is kept).
    pub repeats: usize,
    /// The simulated dialogue: turns, user-message tokens and reply tokens per turn.
    pub turns: usize,
    pub user_tokens: usize,
    pub reply_tokens: usize,
    /// Times the whole dialogue is run per strategy (the fastest time of each turn is kept).
    pub dialogue_repeats: usize,
    /// Key/value head counts compared for cache size and decoding speed.
    pub kv_heads: Vec<usize>,
    /// Context length of that comparison.
    pub kv_context: usize,
    /// The invalidation experiment: the history, then the appended turn.
    pub history_tokens: usize,
    pub new_tokens: usize,
    /// Random models on which cached and uncached generation are compared.
    pub equality_cases: usize,
}

impl Settings {
    /// Small enough for the snapshot test (well under 20 s in release).
    pub fn quick() -> Self {
        Settings {
            preset: "quick".into(),
            model: Config {
                vocab_size: 128,
                d_model: 64,
                n_heads: 4,
                n_kv_heads: 4,
                d_ff: 256,
                n_layers: 2,
                max_len: 128,
                positions: PositionKind::Learned,
                tie_embeddings: false,
            },
            seed: 6,
            contexts: vec![8, 16, 32, 64, 112],
            repeats: 5,
            turns: 4,
            user_tokens: 8,
            reply_tokens: 12,
            dialogue_repeats: 1,
            kv_heads: vec![4, 2, 1],
            kv_context: 96,
            history_tokens: 10,
            new_tokens: 15,
            equality_cases: 6,
        }
    }

    /// The book's run (well under 2 minutes on 2 cores).
    pub fn book() -> Self {
        Settings {
            preset: "default".into(),
            model: Config {
                vocab_size: 512,
                d_model: 256,
                n_heads: 8,
                n_kv_heads: 8,
                d_ff: 1024,
                n_layers: 4,
                max_len: 1024,
                positions: PositionKind::Learned,
                tie_embeddings: false,
            },
            seed: 6,
            contexts: vec![16, 32, 64, 128, 256, 512, 1000],
            repeats: 5,
            turns: 10,
            user_tokens: 32,
            reply_tokens: 64,
            dialogue_repeats: 2,
            kv_heads: vec![8, 2, 1],
            kv_context: 1000,
            history_tokens: 10,
            new_tokens: 15,
            equality_cases: 12,
        }
    }

    /// Reject settings that cannot run, with a reason a reader can act on.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let max = self.model.max_len;
        if self.turns == 0 || self.user_tokens == 0 || self.reply_tokens == 0 {
            bail!("--turns, --user-tokens and --reply-tokens must each be at least 1");
        }
        let dialogue = self.turns * (self.user_tokens + self.reply_tokens);
        if dialogue > max {
            bail!(
                "a dialogue of {} turns × ({} + {}) tokens is {dialogue} tokens, more than the model's \
                 {max} positions: use fewer turns or shorter messages",
                self.turns,
                self.user_tokens,
                self.reply_tokens
            );
        }
        if self.contexts.is_empty() || self.kv_heads.first() != Some(&self.model.n_heads) {
            bail!("at least one decoding context, and the MHA model first among the K/V head counts");
        }
        if let Some(&c) = self.contexts.iter().find(|&&c| c == 0 || c + 1 > max) {
            bail!("decoding context {c} must lie in 1..{max}");
        }
        if self.kv_context == 0 || self.kv_context + 1 > max {
            bail!("the MQA/GQA context {} must lie in 1..{max}", self.kv_context);
        }
        if let Some(&g) = self.kv_heads.iter().find(|&&g| g == 0 || !self.model.n_heads.is_multiple_of(g)) {
            bail!("{g} key/value heads do not divide {} query heads", self.model.n_heads);
        }
        if self.history_tokens == 0 || self.new_tokens == 0 || self.history_tokens + self.new_tokens > max {
            bail!("the invalidation experiment needs 1 ≤ history, 1 ≤ new turn, history + new ≤ {max}");
        }
        if self.repeats == 0 || self.dialogue_repeats == 0 {
            bail!("repeats must be at least 1");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Greedy generation, with and without the cache
// ---------------------------------------------------------------------------------------------

/// A `[1, t]` tensor of token ids.
pub fn ids(tokens: &[u32]) -> Result<Tensor> {
    Ok(Tensor::from_vec(tokens.to_vec(), (1, tokens.len()), &DEVICE)?)
}

/// The logits of the last position of a `[1, t, vocab]` output.
fn last_logits(logits: &Tensor) -> Result<Vec<f32>> {
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
/// Feed `chunk` into the model on top of whatever `cache` already holds, then generate `n_new`
/// tokens greedily, one step per token. Each step feeds only the newest token; its keys and
/// values are appended to the cache. The last generated token is returned but not fed, so its
/// keys and values are not yet cached (the next call feeds it first).
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
        let logits =
            model.run(&ids(&next)?, mask, Forward { cache: Some(&mut *cache), trace: false })?.logits;
        let row = last_logits(&logits)?;
        let token = argmax(&row);
        out.tokens.push(token);
        out.logits.push(row);
        next = vec![token];
    }
    Ok(out)
}
// ANCHOR_END: continue_cached

/// Greedy generation with a fresh KV cache: the prompt in one pass, then one token per step.
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
/// Greedy generation by full recomputation: every step runs the whole sequence again.
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
/// The encoder-decoder's cached generation: encode the source once, project every decoder
/// layer's cross-attention keys and values once, then decode one token per step with a
/// self-attention cache.
pub fn greedy_encdec_cached(model: &EncoderDecoder, src: &[u32], n_new: usize) -> Result<Generation> {
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

/// The encoder-decoder without any cache: every step encodes the source and decodes the whole
/// target again.
pub fn greedy_encdec_full(model: &EncoderDecoder, src: &[u32], n_new: usize) -> Result<Generation> {
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

/// Largest absolute difference between the step logits of two generations, over the steps
/// they share.
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
    /// Largest logit difference over all three.
    pub max_logit_diff: f64,
}

// ANCHOR: equality_case
/// Draw a random model shape, prompt and length from `seed`; generate greedily with and
/// without the cache for the causal decoder, the prefix LM and the encoder-decoder.
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
        positions: if r.random_bool(0.5) { PositionKind::Learned } else { PositionKind::Sinusoidal },
        tie_embeddings: r.random_bool(0.5),
    };
    let prompt_len = r.random_range(1..=12);
    let n_new = r.random_range(1..=16);
    let prompt: Vec<u32> = (0..prompt_len).map(|_| r.random_range(0..cfg.vocab_size as u32)).collect();
    let store = ParamStore::new(seed);
    let dec = DecoderOnly::new(&store, "dec", &cfg)?;
    let ed = EncoderDecoder::new(&store, "ed", &cfg)?;
    let mut same_tokens = [false; 3];
    let mut worst = 0f64;
    for (i, kind) in [PromptMask::Causal, PromptMask::Prefix].into_iter().enumerate() {
        let (a, b) = (greedy_cached(&dec, &prompt, n_new, kind)?, greedy_full(&dec, &prompt, n_new, kind)?);
        same_tokens[i] = a.tokens == b.tokens;
        worst = worst.max(max_logit_diff(&a, &b));
    }
    let (a, b) = (greedy_encdec_cached(&ed, &prompt, n_new)?, greedy_encdec_full(&ed, &prompt, n_new)?);
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

// ---------------------------------------------------------------------------------------------
// Invalidation: what appending a turn does to the keys and values already computed
// ---------------------------------------------------------------------------------------------

/// How much one layer's keys and values of the old tokens moved.
#[derive(Debug, Clone, Serialize)]
pub struct LayerShift {
    pub layer: usize,
    /// Largest absolute change of any key or value entry.
    pub max_abs: f64,
    /// ‖ΔK‖² + ‖ΔV‖², square-rooted, over the same for the old K and V (Frobenius norms).
    pub relative: f64,
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1()?)
}

// ANCHOR: kv_shift
/// Compare per-layer keys and values (`[1, kv_heads, t, head_dim]`) computed for the history
/// alone (`before`) with those computed for the longer sequence (`after`), on the first `n_old`
/// positions.
pub fn kv_shift(
    before: &[(Tensor, Tensor)],
    after: &[(Tensor, Tensor)],
    n_old: usize,
) -> Result<Vec<LayerShift>> {
    let mut out = Vec::new();
    for (layer, ((kb, vb), (ka, va))) in before.iter().zip(after).enumerate() {
        let (mut max_abs, mut diff2, mut norm2) = (0f64, 0f64, 0f64);
        for (old, new) in [(kb, ka), (vb, va)] {
            let old = values(&old.narrow(2, 0, n_old)?)?;
            let new = values(&new.narrow(2, 0, n_old)?)?;
            for (o, n) in old.iter().zip(&new) {
                let d = f64::from(n - o);
                max_abs = max_abs.max(d.abs());
                diff2 += d * d;
                norm2 += f64::from(*o) * f64::from(*o);
            }
        }
        out.push(LayerShift { layer, max_abs, relative: (diff2 / norm2).sqrt() });
    }
    Ok(out)
}
// ANCHOR_END: kv_shift

/// One `(keys, values)` pair per layer.
pub type LayerKv = Vec<(Tensor, Tensor)>;

/// Each decoder-only layer's keys and values for `tokens` under `mask`.
fn decoder_kv(model: &DecoderOnly, tokens: &[u32], mask: &MaskKind) -> Result<LayerKv> {
    let out = model.run(&ids(tokens)?, mask, Forward { cache: None, trace: true })?;
    Ok(out.layers.into_iter().map(|l| (l.attn.k, l.attn.v)).collect())
}

/// Each encoder layer's self-attention keys and values, and the cross-attention keys and values
/// the decoder would cache, for `src`.
fn encoder_kv(model: &EncoderDecoder, src: &[u32]) -> Result<(LayerKv, LayerKv)> {
    let (enc, layers) = model.encode(&ids(src)?, true)?;
    let own = layers.into_iter().map(|l| (l.attn.k, l.attn.v)).collect();
    let cross = model
        .cross_kv(&enc)?
        .into_iter()
        .map(|c| match (c.k, c.v) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => bail!("cross-attention cache without keys and values"),
        })
        .collect::<Result<_>>()?;
    Ok((own, cross))
}

/// One row of the invalidation experiment.
#[derive(Debug, Clone, Serialize)]
pub struct ShiftRow {
    pub key: String,
    pub label: String,
    /// History alone against history plus the new turn, per layer.
    pub layers: Vec<LayerShift>,
    /// Whether the history's keys and values differ, in any bit, between two different new
    /// turns of the same length: does the history's cache depend on what comes after it?
    pub depends_on_new_turn: bool,
}

/// Per-layer keys and values of a token sequence, for one way of holding a conversation.
type KvOf<'a> = Box<dyn Fn(&[u32]) -> Result<LayerKv> + 'a>;

// ANCHOR: invalidation
/// Append a turn to a history of `old` tokens and measure, layer by layer, how the keys and
/// values of the history change, for each way of holding the history. A second, different
/// turn `other` of the same length tells whether they depend on the new tokens at all.
pub fn invalidation(
    dec: &DecoderOnly,
    ed: &EncoderDecoder,
    old: &[u32],
    new: &[u32],
    other: &[u32],
) -> Result<Vec<ShiftRow>> {
    let n = old.len();
    let ways: Vec<(&str, &str, KvOf)> = vec![
        ("causal", "causal decoder", Box::new(|seq| decoder_kv(dec, seq, &MaskKind::Causal))),
        // A mitigation: the prefix stays at the first turn; later turns sit on the causal side.
        (
            "prefix_frozen",
            "prefix LM, prefix frozen after turn 1",
            Box::new(|seq| decoder_kv(dec, seq, &MaskKind::prefix(n))),
        ),
        // The prefix LM keeps the whole history in its bidirectional prefix, so the prefix grows.
        (
            "prefix_lm",
            "prefix LM, history in the prefix",
            Box::new(|seq| decoder_kv(dec, seq, &MaskKind::prefix(seq.len()))),
        ),
        // The encoder-decoder encodes history and new turn together, bidirectionally.
        ("encoder", "encoder-decoder, encoder self-attention", Box::new(|seq| Ok(encoder_kv(ed, seq)?.0))),
        ("cross", "encoder-decoder, cross-attention K/V", Box::new(|seq| Ok(encoder_kv(ed, seq)?.1))),
    ];
    let mut rows = Vec::new();
    for (key, label, kv_of) in ways {
        let before = kv_of(old)?;
        let after = kv_of(&[old, new].concat())?;
        let after_other = kv_of(&[old, other].concat())?;
        rows.push(ShiftRow {
            key: key.into(),
            label: label.into(),
            layers: kv_shift(&before, &after, n)?,
            depends_on_new_turn: kv_shift(&after, &after_other, n)?.iter().any(|l| l.max_abs > 0.0),
        });
    }
    Ok(rows)
}
// ANCHOR_END: invalidation

// ---------------------------------------------------------------------------------------------
// One decoding step, with and without the cache
// ---------------------------------------------------------------------------------------------

// ANCHOR: step_flops
/// FLOPs of one forward pass that feeds `new` tokens on top of `cached` ones: every new token
/// goes through every block's matrices and the output head, and attends over all `cached + new`
/// keys (masked scores are computed too, as in the library's formula).
pub fn chunk_flops(cfg: &Config, cached: usize, new: usize) -> u64 {
    let (l, new64) = (cfg.n_layers as u64, new as u64);
    new64 * (l * cfg.block_matmul_flops() + cfg.head_flops()) + l * new64 * cfg.attention_flops(cached + new)
}

/// Predicted FLOPs of producing the token after a context of `n` tokens: without a cache the
/// whole sequence of `n + 1` tokens is run again; with one, only the newest token is.
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

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn random_tokens(r: &mut rng::Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| r.random_range(0..vocab as u32)).collect()
}

/// Seconds taken by `f`, median of `repeats` runs.
fn time_median(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut secs = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        secs.push(start.elapsed().as_secs_f64());
    }
    Ok(median(secs))
}

// ANCHOR: decode_point
/// Count and time the step that produces the token after `n` context tokens: once by running
/// all `n + 1` tokens, once by feeding the newest token to a cache holding the other `n`.
pub fn decode_point(
    model: &DecoderOnly,
    n: usize,
    repeats: usize,
    seed: u64,
) -> Result<(DecodePoint, DecodeTiming)> {
    let tokens = random_tokens(&mut rng::stream(seed, "decode"), n + 1, model.cfg.vocab_size);
    let all = ids(&tokens)?;
    let newest = ids(&tokens[n..])?;
    let mut cache = Vec::new();
    model.run(&ids(&tokens[..n])?, &MaskKind::Causal, Forward { cache: Some(&mut cache), trace: false })?;
    let full = || model.forward(&all, &MaskKind::Causal);
    // Cloning the cache copies only handles to its tensors; each step appends to its own copy.
    let cached = || {
        let mut c = cache.clone();
        model.run(&newest, &MaskKind::Causal, Forward { cache: Some(&mut c), trace: false })
    };
    let (_, flops_full) = flops::count(full);
    let (_, flops_cached) = flops::count(cached);
    let ms_full = 1e3 * time_median(repeats, || full().map(drop).map_err(Into::into))?;
    let ms_cached = 1e3 * time_median(repeats, || cached().map(drop).map_err(Into::into))?;
    let point = DecodePoint {
        context: n,
        flops_full,
        flops_cached,
        predicted_speedup: flops_full as f64 / flops_cached as f64,
    };
    let timing = DecodeTiming { context: n, ms_full, ms_cached, measured_speedup: ms_full / ms_cached };
    Ok((point, timing))
}
// ANCHOR_END: decode_point

// ---------------------------------------------------------------------------------------------
// A multi-turn dialogue under four strategies
// ---------------------------------------------------------------------------------------------

/// How a model carries a conversation from one turn to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Strategy {
    /// A causal decoder that keeps one KV cache for the whole conversation.
    CausalReuse,
    /// A causal decoder that starts a new cache every turn and runs the history again.
    CausalRecompute,
    /// A prefix LM whose bidirectional prefix holds the history: re-encoded every turn.
    PrefixReencode,
    /// An encoder-decoder whose encoder reads the history: re-encoded every turn.
    EncDecReencode,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::CausalReuse,
        Strategy::CausalRecompute,
        Strategy::PrefixReencode,
        Strategy::EncDecReencode,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Strategy::CausalReuse => "causal_reuse",
            Strategy::CausalRecompute => "causal_recompute",
            Strategy::PrefixReencode => "prefix_lm",
            Strategy::EncDecReencode => "encoder_decoder",
        }
    }

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
/// Run a conversation: each turn appends the next user message, then generates a reply of
/// `reply_len` tokens greedily. Returns the FLOPs and seconds of every turn.
pub fn simulate(
    strategy: Strategy,
    dec: &DecoderOnly,
    ed: &EncoderDecoder,
    users: &[Vec<u32>],
    reply_len: usize,
) -> Result<Vec<TurnCost>> {
    let mut history: Vec<u32> = Vec::new(); // every token of the conversation so far
    let mut cache: Vec<KvCache> = Vec::new(); // kept across turns by `CausalReuse` only
    let mut pending: Vec<u32> = Vec::new(); // the last reply token, generated but not yet fed
    let mut turns = Vec::new();
    for user in users {
        let start = Instant::now();
        let prompt = [history.as_slice(), user].concat();
        let (reply, flops) = flops::count(|| -> Result<Vec<u32>> {
            let generation = match strategy {
                Strategy::CausalReuse => {
                    let chunk = [std::mem::take(&mut pending).as_slice(), user].concat();
                    continue_cached(dec, &mut cache, &chunk, &MaskKind::Causal, reply_len)?
                }
                Strategy::CausalRecompute => greedy_cached(dec, &prompt, reply_len, PromptMask::Causal)?,
                Strategy::PrefixReencode => greedy_cached(dec, &prompt, reply_len, PromptMask::Prefix)?,
                Strategy::EncDecReencode => greedy_encdec_cached(ed, &prompt, reply_len)?,
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

// ANCHOR: cost_model
/// The FLOPs of every turn of [`simulate`], from the configuration alone: `turns` turns of
/// `user` message tokens and `reply` generated tokens.
pub fn dialogue_flops_formula(
    cfg: &Config,
    strategy: Strategy,
    turns: usize,
    user: usize,
    reply: usize,
) -> Vec<u64> {
    let (l, d, hd, g) =
        (cfg.n_layers as u64, cfg.d_model as u64, cfg.head_dim() as u64, cfg.n_kv_heads as u64);
    (0..turns)
        .map(|t| {
            let history = t * (user + reply); // tokens before this turn's user message
            let prompt = history + user;
            // Generating the reply: r − 1 single-token steps after the prompt's pass.
            let steps: u64 = (0..reply - 1).map(|k| chunk_flops(cfg, prompt + k, 1)).sum();
            match strategy {
                // Only the new tokens (the last reply token and the user message) are fed.
                Strategy::CausalReuse if t > 0 => chunk_flops(cfg, history - 1, user + 1) + steps,
                Strategy::CausalReuse => chunk_flops(cfg, 0, user) + steps,
                // The whole prompt is fed again; the mask does not change the count.
                Strategy::CausalRecompute | Strategy::PrefixReencode => chunk_flops(cfg, 0, prompt) + steps,
                Strategy::EncDecReencode => {
                    let s = prompt as u64;
                    let encoder = s * l * (cfg.block_matmul_flops() + cfg.attention_flops(prompt));
                    let cross_kv = s * l * 2 * d * 2 * g * hd;
                    // Each reply token: its block, its self-attention over the reply so far,
                    // cross-attention's query and output projections, attention over the source.
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
// ANCHOR_END: cost_model

// ---------------------------------------------------------------------------------------------
// Cache memory: multi-head, grouped-query and multi-query attention
// ---------------------------------------------------------------------------------------------

// ANCHOR: memory_formula
/// Bytes the KV cache holds per token: a key and a value vector per layer and per key/value head.
pub fn kv_bytes_per_token(n_layers: u64, n_kv_heads: u64, head_dim: u64, bytes_per_element: u64) -> u64 {
    2 * n_layers * n_kv_heads * head_dim * bytes_per_element
}
// ANCHOR_END: memory_formula

/// A published model's attention shape, as facts.md §5.1 records it.
pub struct Published {
    pub key: &'static str,
    pub name: &'static str,
    pub layers: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub attention: &'static str,
}

/// Configurations from the fact sheet; every one stores its cache in 16-bit floats.
pub const PUBLISHED: [Published; 5] = [
    Published {
        key: "llama3_8b",
        name: "Llama-3-8B",
        layers: 32,
        kv_heads: 8,
        head_dim: 128,
        attention: "GQA-8",
    },
    Published {
        key: "llama3_8b_mha",
        name: "Llama-3-8B with MHA",
        layers: 32,
        kv_heads: 32,
        head_dim: 128,
        attention: "MHA (32)",
    },
    Published {
        key: "llama3_70b",
        name: "Llama-3-70B",
        layers: 80,
        kv_heads: 8,
        head_dim: 128,
        attention: "GQA-8",
    },
    Published {
        key: "gpt3_175b",
        name: "GPT-3 175B",
        layers: 96,
        kv_heads: 96,
        head_dim: 128,
        attention: "MHA (96)",
    },
    Published {
        key: "palm_540b",
        name: "PaLM 540B",
        layers: 118,
        kv_heads: 1,
        head_dim: 256,
        attention: "MQA",
    },
];

/// Cache sizes of one published configuration.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    pub name: String,
    pub attention: String,
    pub bytes_per_token: u64,
    pub kib_per_token: f64,
    pub gib_at_8k: f64,
    pub gb_at_8k: f64,
    pub gib_at_128k: f64,
}

pub fn memory_table() -> BTreeMap<String, MemoryRow> {
    PUBLISHED
        .iter()
        .map(|p| {
            let b = kv_bytes_per_token(p.layers, p.kv_heads, p.head_dim, 2);
            let gib = |n: u64| round((b * n) as f64 / (1u64 << 30) as f64, 2);
            let row = MemoryRow {
                name: p.name.into(),
                attention: p.attention.into(),
                bytes_per_token: b,
                kib_per_token: round(b as f64 / 1024.0, 1),
                gib_at_8k: gib(8192),
                gb_at_8k: round((b * 8192) as f64 / 1e9, 2),
                gib_at_128k: gib(131_072),
            };
            (p.key.to_string(), row)
        })
        .collect()
}

/// Cache size and step cost of our model with `n_kv_heads` key/value heads.
#[derive(Debug, Clone, Serialize)]
pub struct KvHeadsRow {
    pub n_kv_heads: usize,
    pub kind: String,
    pub params: usize,
    pub bytes_per_token: u64,
    pub cache_bytes_formula: u64,
    /// The sum of `KvCache::bytes` over the layers, after filling the cache.
    pub cache_bytes_measured: u64,
    pub cache_ratio_to_mha: f64,
    pub flops_per_step: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KvHeadsTiming {
    pub n_kv_heads: usize,
    pub ms_per_step: f64,
    pub time_ratio_to_mha: f64,
}

// ANCHOR: kv_heads
/// Build the model with `g` key/value heads, fill its cache with `n` tokens, and measure the
/// cache and one decoding step.
pub fn kv_heads_point(
    base: &Config,
    g: usize,
    n: usize,
    repeats: usize,
    seed: u64,
) -> Result<(KvHeadsRow, f64)> {
    let cfg = Config { n_kv_heads: g, ..base.clone() };
    let store = ParamStore::new(seed);
    let model = DecoderOnly::new(&store, "dec", &cfg)?;
    let tokens = random_tokens(&mut rng::stream(seed, "kv-heads"), n + 1, cfg.vocab_size);
    let mut cache = Vec::new();
    model.run(&ids(&tokens[..n])?, &MaskKind::Causal, Forward { cache: Some(&mut cache), trace: false })?;
    let measured: usize = cache.iter().map(KvCache::bytes).sum();
    let per_token = kv_bytes_per_token(cfg.n_layers as u64, g as u64, cfg.head_dim() as u64, 4);
    let newest = ids(&tokens[n..])?;
    let step = || {
        let mut c = cache.clone();
        model.run(&newest, &MaskKind::Causal, Forward { cache: Some(&mut c), trace: false })
    };
    let (_, flops_per_step) = flops::count(step);
    let secs = time_median(repeats, || step().map(drop).map_err(Into::into))?;
    let kind = match g {
        _ if g == cfg.n_heads => "MHA",
        1 => "MQA",
        _ => "GQA",
    };
    let row = KvHeadsRow {
        n_kv_heads: g,
        kind: kind.into(),
        params: store.num_params(),
        bytes_per_token: per_token,
        cache_bytes_formula: per_token * n as u64,
        cache_bytes_measured: measured as u64,
        cache_ratio_to_mha: 0.0,
        flops_per_step,
    };
    Ok((row, secs))
}
// ANCHOR_END: kv_heads

// ---------------------------------------------------------------------------------------------
// The whole chapter
// ---------------------------------------------------------------------------------------------

/// Summary of the equality checks.
#[derive(Debug, Clone, Serialize)]
pub struct EqualitySummary {
    pub cases: usize,
    pub all_tokens_identical: bool,
    pub all_within_1e4: bool,
    pub cases_detail: Vec<EqualityCaseBrief>,
}

/// One equality case, without its float difference (which varies with thread counts).
#[derive(Debug, Clone, Serialize)]
pub struct EqualityCaseBrief {
    pub seed: u64,
    pub n_layers: usize,
    pub n_kv_heads: usize,
    pub prompt_len: usize,
    pub n_new: usize,
    pub same_tokens: [bool; 3],
}

/// One strategy's cumulative counts over the dialogue.
#[derive(Debug, Clone, Serialize)]
pub struct DialogueRow {
    pub label: String,
    /// Cumulative FLOPs after each turn (counted).
    pub cumulative_flops: Vec<u64>,
    /// The counted FLOPs equal the cost model, turn by turn.
    pub matches_formula: bool,
    pub total_gflop: f64,
    /// Total FLOPs over those of the causal decoder keeping its cache.
    pub flops_ratio_to_reuse: f64,
    /// FLOPs of the last turn over those of the first.
    pub last_over_first_turn: f64,
    /// Cumulative FLOPs after all turns over those after half of them: 2 for linear growth,
    /// about 4 for quadratic growth.
    pub growth_when_doubling: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DialogueTiming {
    pub label: String,
    pub cumulative_secs: Vec<f64>,
    pub total_secs: f64,
    pub time_ratio_to_reuse: f64,
}

/// Everything the chapter reports that does not depend on the clock: counts, sizes and ratios.
/// The snapshot test records exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub params_decoder: usize,
    pub params_encoder_decoder: usize,
    pub equality: EqualitySummary,
    pub invalidation: BTreeMap<String, ShiftRow>,
    pub decode: Vec<DecodePoint>,
    /// The step at the longest context, for the prose.
    pub decode_longest: DecodePoint,
    pub dialogue: BTreeMap<String, DialogueRow>,
    /// The causal decoder generates the same replies whether it keeps its cache or not.
    pub reuse_replies_equal_recompute: bool,
    pub kv_heads: Vec<KvHeadsRow>,
    pub memory: BTreeMap<String, MemoryRow>,
}

/// Wall-clock measurements and float-rounding residuals, which differ between machines: for
/// the book only, never for snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub decode: Vec<DecodeTiming>,
    /// The steps at the shortest and the longest context, for the prose.
    pub decode_shortest: DecodeTiming,
    pub decode_longest: DecodeTiming,
    pub dialogue: BTreeMap<String, DialogueTiming>,
    pub kv_heads: Vec<KvHeadsTiming>,
    /// The largest logit difference between cached and uncached generation.
    pub max_logit_diff: f64,
    /// The largest relative change of a history's K/V that does not depend on the new turn:
    /// float rounding from summing in a different order, which varies between machines.
    pub rounding_residual: f64,
    pub total_secs: f64,
}

pub struct Outcome {
    pub report: Report,
    pub timings: Timings,
}

/// Round to `digits` significant digits (for values that span orders of magnitude).
fn sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = x.abs().log10().floor() as i32;
    round(x, digits - 1 - mag)
}

/// Round to 4 decimals: float-rounding residuals (about 1e-7) become 0, real changes stay.
fn round_shift(layers: &mut [LayerShift]) {
    for l in layers {
        l.max_abs = round(l.max_abs, 4);
        l.relative = round(l.relative, 4);
    }
}

/// Run every experiment of the chapter.
pub fn compute(s: &Settings) -> Result<Outcome> {
    s.validate()?;
    let started = Instant::now();
    let cfg = &s.model;
    let store = ParamStore::new(s.seed);
    let dec = DecoderOnly::new(&store, "dec", cfg)?;
    let ed_store = ParamStore::new(s.seed);
    let ed = EncoderDecoder::new(&ed_store, "ed", cfg)?;

    // 1. Cached generation equals full recomputation.
    let cases = (0..s.equality_cases as u64).map(equality_case).collect::<Result<Vec<_>>>()?;
    let max_diff = cases.iter().map(|c| c.max_logit_diff).fold(0.0, f64::max);
    let equality = EqualitySummary {
        cases: cases.len(),
        all_tokens_identical: cases.iter().all(|c| c.same_tokens.iter().all(|&b| b)),
        all_within_1e4: max_diff < 1e-4,
        cases_detail: cases
            .iter()
            .map(|c| EqualityCaseBrief {
                seed: c.seed,
                n_layers: c.n_layers,
                n_kv_heads: c.n_kv_heads,
                prompt_len: c.prompt_len,
                n_new: c.n_new,
                same_tokens: c.same_tokens,
            })
            .collect(),
    };

    // 2. Invalidation.
    let mut r = rng::stream(s.seed, "turns");
    let old = random_tokens(&mut r, s.history_tokens, cfg.vocab_size);
    let new = random_tokens(&mut r, s.new_tokens, cfg.vocab_size);
    let other = random_tokens(&mut r, s.new_tokens, cfg.vocab_size);
    let shifts = invalidation(&dec, &ed, &old, &new, &other)?;
    let rounding_residual = shifts
        .iter()
        .filter(|row| !row.depends_on_new_turn)
        .flat_map(|row| row.layers.iter().map(|l| l.relative))
        .fold(0.0, f64::max);
    let invalidation = shifts
        .into_iter()
        .map(|mut row| {
            round_shift(&mut row.layers);
            (row.key.clone(), row)
        })
        .collect();

    // 3. One decoding step at growing contexts.
    let mut decode = Vec::new();
    let mut decode_t = Vec::new();
    for &n in &s.contexts {
        let (mut p, mut t) = decode_point(&dec, n, s.repeats, s.seed)?;
        p.predicted_speedup = sig(p.predicted_speedup, 3);
        t.ms_full = sig(t.ms_full, 3);
        t.ms_cached = sig(t.ms_cached, 3);
        t.measured_speedup = sig(t.measured_speedup, 3);
        decode.push(p);
        decode_t.push(t);
    }

    // 4. The dialogue.
    let users: Vec<Vec<u32>> =
        (0..s.turns).map(|_| random_tokens(&mut r, s.user_tokens, cfg.vocab_size)).collect();
    // Every strategy runs `dialogue_repeats` times, in rounds, and each turn keeps its fastest
    // time, so that a burst of load on the machine does not land on one strategy alone.
    let mut runs: BTreeMap<&str, Vec<TurnCost>> = BTreeMap::new();
    for _ in 0..s.dialogue_repeats {
        for strategy in Strategy::ALL {
            let turns = simulate(strategy, &dec, &ed, &users, s.reply_tokens)?;
            match runs.get_mut(strategy.key()) {
                Some(best) => {
                    for (b, t) in best.iter_mut().zip(turns) {
                        b.secs = b.secs.min(t.secs);
                    }
                }
                None => {
                    runs.insert(strategy.key(), turns);
                }
            }
        }
    }
    let reuse_replies_equal_recompute =
        runs["causal_reuse"].iter().zip(&runs["causal_recompute"]).all(|(a, b)| a.reply == b.reply);
    let cumulative = |turns: &[TurnCost]| -> Vec<u64> {
        turns
            .iter()
            .scan(0u64, |acc, t| {
                *acc += t.flops;
                Some(*acc)
            })
            .collect()
    };
    let reuse_total = *cumulative(&runs["causal_reuse"]).last().expect("at least one turn") as f64;
    let reuse_secs: f64 = runs["causal_reuse"].iter().map(|t| t.secs).sum();
    let mut dialogue = BTreeMap::new();
    let mut dialogue_t = BTreeMap::new();
    for strategy in Strategy::ALL {
        let turns = &runs[strategy.key()];
        let cum = cumulative(turns);
        let formula = dialogue_flops_formula(cfg, strategy, s.turns, s.user_tokens, s.reply_tokens);
        let total = *cum.last().expect("at least one turn") as f64;
        let half = cum[(s.turns / 2).max(1) - 1] as f64;
        dialogue.insert(
            strategy.key().to_string(),
            DialogueRow {
                label: strategy.label().into(),
                matches_formula: turns.iter().zip(&formula).all(|(t, f)| t.flops == *f),
                total_gflop: sig(total / 1e9, 4),
                flops_ratio_to_reuse: sig(total / reuse_total, 3),
                last_over_first_turn: sig(turns[turns.len() - 1].flops as f64 / turns[0].flops as f64, 3),
                growth_when_doubling: sig(total / half, 3),
                cumulative_flops: cum,
            },
        );
        let secs: Vec<f64> = turns
            .iter()
            .scan(0.0, |acc, t| {
                *acc += t.secs;
                Some(*acc)
            })
            .collect();
        let total_secs = secs[secs.len() - 1];
        dialogue_t.insert(
            strategy.key().to_string(),
            DialogueTiming {
                label: strategy.label().into(),
                cumulative_secs: secs.iter().map(|&x| sig(x, 3)).collect(),
                total_secs: sig(total_secs, 3),
                time_ratio_to_reuse: sig(total_secs / reuse_secs, 3),
            },
        );
    }

    // 5. MHA, GQA, MQA.
    let mut kv_heads = Vec::new();
    let mut kv_secs = Vec::new();
    for &g in &s.kv_heads {
        let (row, secs) = kv_heads_point(cfg, g, s.kv_context, s.repeats, s.seed)?;
        kv_heads.push(row);
        kv_secs.push(secs);
    }
    let mha_bytes = kv_heads[0].cache_bytes_measured as f64;
    let mut kv_t = Vec::new();
    for (row, secs) in kv_heads.iter_mut().zip(&kv_secs) {
        row.cache_ratio_to_mha = sig(row.cache_bytes_measured as f64 / mha_bytes, 3);
        kv_t.push(KvHeadsTiming {
            n_kv_heads: row.n_kv_heads,
            ms_per_step: sig(secs * 1e3, 3),
            time_ratio_to_mha: sig(secs / kv_secs[0], 3),
        });
    }

    let report = Report {
        settings: s.clone(),
        params_decoder: store.num_params(),
        params_encoder_decoder: ed_store.num_params(),
        equality,
        invalidation,
        decode_longest: decode[decode.len() - 1].clone(),
        decode,
        dialogue,
        reuse_replies_equal_recompute,
        kv_heads,
        memory: memory_table(),
    };
    let timings = Timings {
        decode_shortest: decode_t[0].clone(),
        decode_longest: decode_t[decode_t.len() - 1].clone(),
        decode: decode_t,
        dialogue: dialogue_t,
        kv_heads: kv_t,
        max_logit_diff: sig(max_diff, 2),
        rounding_residual: sig(rounding_residual, 2),
        total_secs: sig(started.elapsed().as_secs_f64(), 3),
    };
    Ok(Outcome { report, timings })
}

// ---------------------------------------------------------------------------------------------
// Outputs: results.json, figures and tables
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct Results<'a> {
    #[serde(flatten)]
    report: &'a Report,
    timings: &'a Timings,
}

fn invalidation_table(rows: &BTreeMap<String, ShiftRow>, n_layers: usize) -> String {
    let mut t = String::from("| history held by | ");
    t += &(0..n_layers).map(|l| format!("layer {l}")).collect::<Vec<_>>().join(" | ");
    t += " | depends on the new turn's tokens |\n|---|";
    t += &"---:|".repeat(n_layers);
    t += "---|";
    t.push('\n');
    for key in ["causal", "prefix_frozen", "prefix_lm", "encoder", "cross"] {
        let row = &rows[key];
        t += &format!("| {} | ", row.label);
        let cells: Vec<String> = row.layers.iter().map(|l| format!("{:.4}", l.relative)).collect();
        t += &cells.join(" | ");
        t += if row.depends_on_new_turn { " | yes |\n" } else { " | no (bit for bit) |\n" };
    }
    t
}

fn decode_table(points: &[DecodePoint], times: &[DecodeTiming]) -> String {
    let mut t = String::from(
        "| context | MFLOP without cache | MFLOP with cache | predicted speed-up (FLOPs) | ms without cache | ms with cache | measured speed-up |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (p, m) in points.iter().zip(times) {
        t += &format!(
            "| {} | {} | {} | {}× | {} | {} | {}× |\n",
            p.context,
            sig(p.flops_full as f64 / 1e6, 4),
            sig(p.flops_cached as f64 / 1e6, 4),
            p.predicted_speedup,
            m.ms_full,
            m.ms_cached,
            m.measured_speedup
        );
    }
    t
}

fn dialogue_table(rows: &BTreeMap<String, DialogueRow>, times: &BTreeMap<String, DialogueTiming>) -> String {
    let mut t = String::from(
        "| strategy | total GFLOP | FLOPs vs cache reuse | last turn / first turn | growth when turns double | seconds | time vs cache reuse |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in Strategy::ALL {
        let (r, m) = (&rows[s.key()], &times[s.key()]);
        t += &format!(
            "| {} | {} | {}× | {}× | {}× | {} | {}× |\n",
            r.label,
            r.total_gflop,
            r.flops_ratio_to_reuse,
            r.last_over_first_turn,
            r.growth_when_doubling,
            m.total_secs,
            m.time_ratio_to_reuse
        );
    }
    t
}

fn kv_heads_table(rows: &[KvHeadsRow], times: &[KvHeadsTiming], context: usize) -> String {
    let mut t = format!(
        "| attention | K/V heads | parameters | cache bytes per token (formula) | cache at {context} tokens (formula) | \
         measured (`KvCache::bytes`) | cache vs MHA | FLOPs per step | ms per step | time vs MHA |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (r, m) in rows.iter().zip(times) {
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {}× | {} | {} | {}× |\n",
            r.kind,
            r.n_kv_heads,
            thousands(r.params as u64),
            thousands(r.bytes_per_token),
            thousands(r.cache_bytes_formula),
            thousands(r.cache_bytes_measured),
            r.cache_ratio_to_mha,
            thousands(r.flops_per_step),
            m.ms_per_step,
            m.time_ratio_to_mha
        );
    }
    t
}

fn memory_md(rows: &BTreeMap<String, MemoryRow>) -> String {
    let mut t = String::from(
        "| model | attention | layers | K/V heads | head dim | per token | 8,192 tokens | 131,072 tokens |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &PUBLISHED {
        let r = &rows[p.key];
        t += &format!(
            "| {} | {} | {} | {} | {} | {} KiB | {} GiB ({} GB) | {} GiB |\n",
            r.name,
            r.attention,
            p.layers,
            p.kv_heads,
            p.head_dim,
            r.kib_per_token,
            r.gib_at_8k,
            r.gb_at_8k,
            r.gib_at_128k
        );
    }
    t
}

/// Write results.json, the figures and the tables into `out`.
pub fn write_outputs(o: &Outcome, out: &Path) -> Result<()> {
    let (rep, tim) = (&o.report, &o.timings);
    io::write_json(&out.join("results.json"), &Results { report: rep, timings: tim })?;

    let ctx = |f: &dyn Fn(usize) -> f64| -> Vec<(f64, f64)> {
        (0..rep.decode.len()).map(|i| (rep.decode[i].context as f64, f(i))).collect()
    };
    LineChart {
        title: "One decoding step: time against context length",
        x_label: "context length (tokens)",
        y_label: "milliseconds per generated token",
        log_x: true,
        log_y: true,
        series: &[
            Series {
                label: "without cache (run everything again)".into(),
                points: ctx(&|i| tim.decode[i].ms_full),
            },
            Series {
                label: "with KV cache (newest token only)".into(),
                points: ctx(&|i| tim.decode[i].ms_cached),
            },
        ],
    }
    .save(&out.join("decode_time.svg"))?;
    LineChart {
        title: "Speed-up from the cache: FLOP count against the clock",
        x_label: "context length (tokens)",
        y_label: "speed-up (×)",
        log_x: true,
        log_y: true,
        series: &[
            Series {
                label: "predicted by counted FLOPs".into(),
                points: ctx(&|i| rep.decode[i].predicted_speedup),
            },
            Series { label: "measured".into(), points: ctx(&|i| tim.decode[i].measured_speedup) },
        ],
    }
    .save(&out.join("speedup.svg"))?;

    let per_turn = |f: &dyn Fn(Strategy) -> Vec<f64>| -> Vec<Series> {
        Strategy::ALL
            .iter()
            .map(|&s| Series {
                label: s.label().into(),
                points: f(s).into_iter().enumerate().map(|(i, y)| ((i + 1) as f64, y)).collect(),
            })
            .collect()
    };
    LineChart {
        title: "Cumulative compute of a dialogue",
        x_label: "turn",
        y_label: "cumulative GFLOP (counted)",
        log_x: false,
        log_y: false,
        series: &per_turn(&|s| {
            rep.dialogue[s.key()].cumulative_flops.iter().map(|&f| f as f64 / 1e9).collect()
        }),
    }
    .save(&out.join("dialogue_flops.svg"))?;
    LineChart {
        title: "Cumulative wall time of a dialogue",
        x_label: "turn",
        y_label: "cumulative seconds",
        log_x: false,
        log_y: false,
        series: &per_turn(&|s| tim.dialogue[s.key()].cumulative_secs.clone()),
    }
    .save(&out.join("dialogue_time.svg"))?;

    let shift_series: Vec<Series> = ["causal", "prefix_frozen", "prefix_lm", "encoder", "cross"]
        .iter()
        .map(|k| {
            let row = &rep.invalidation[*k];
            Series {
                label: row.label.clone(),
                points: row.layers.iter().map(|l| (l.layer as f64, l.relative)).collect(),
            }
        })
        .collect();
    LineChart {
        title: "How far a new turn moves the cached keys and values of the history",
        x_label: "layer",
        y_label: "relative change of old K and V",
        log_x: false,
        log_y: false,
        series: &shift_series,
    }
    .save(&out.join("invalidation.svg"))?;

    io::write_text(
        &out.join("invalidation.md"),
        &invalidation_table(&rep.invalidation, rep.settings.model.n_layers),
    )?;
    io::write_text(&out.join("decode.md"), &decode_table(&rep.decode, &tim.decode))?;
    io::write_text(&out.join("dialogue.md"), &dialogue_table(&rep.dialogue, &tim.dialogue))?;
    io::write_text(
        &out.join("kv_heads.md"),
        &kv_heads_table(&rep.kv_heads, &tim.kv_heads, rep.settings.kv_context),
    )?;
    io::write_text(&out.join("memory.md"), &memory_md(&rep.memory))?;
    Ok(())
}
