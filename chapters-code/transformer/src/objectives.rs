//! Pretraining objectives as batch builders: what the model reads, what it must
//! predict, and which positions receive a loss.
//!
//! Every builder takes rows of token ids (normally packed to one fixed length with
//! [`crate::tokenizer::BpeTokenizer::pack`]) and returns plain vectors plus the
//! attention mask to run the model with; [`LmBatch::tensors`] turns them into the
//! `[b, t]` tensors that [`crate::loss::masked_cross_entropy`] takes.
//!
//! | builder | model input | targets | loss on | mask |
//! |---|---|---|---|---|
//! | [`full_lm`] | `x[0..t]` | `x[1..t+1]` | every position | causal |
//! | [`prefix_lm`] | `x[0..t]` | `x[1..t+1]` | positions `k−1 ..` (the suffix) | prefix `k`, per row |
//! | [`masked_lm`] | `x` with 15% corrupted | `x` | the chosen 15% | bidirectional |
//! | [`span_corruption`] | encoder: `x` with spans → sentinels | decoder: sentinels + spans | every target token | encoder-decoder |
//! | [`unilm_seq2seq`] | `x` with 15% corrupted | `x` | the chosen 15% | prefix `k`, per row |
//!
//! # Padding
//!
//! The library's attention has no key-padding mask: a `[PAD]` key is attended like
//! any other. Rows of equal length therefore need no padding at all, and packing
//! makes them equal. Rows of different lengths are padded at the end with `[PAD]`,
//! which always gets weight 0 (no loss). Under a causal or prefix mask (with `k`
//! inside the row) end padding is harmless, since no real position can see a later
//! one. Under a bidirectional mask (MLM, the T5 encoder) real tokens do attend to
//! the padding, a small contamination; span corruption avoids it because every row
//! of the same length gives the same encoder and decoder lengths (the numbers of
//! noise tokens and spans depend on the length only), so packed rows never pad.

use candle_core::{Tensor, WithDType};
use rand::Rng as _;
use rand::seq::IndexedRandom;
use serde::Serialize;

use crate::mask::MaskKind;
use crate::rng::Rng;
use crate::tokenizer::Specials;

/// A batch for a single-stack model (decoder-only, or an encoder as a bidirectional
/// stack).
#[derive(Debug, Clone, PartialEq)]
pub struct LmBatch {
    /// What the model reads, `[b][t]`.
    pub input: Vec<Vec<u32>>,
    /// What each position must predict, `[b][t]` (anything where the weight is 0).
    pub target: Vec<Vec<u32>>,
    /// 1 where a position receives a loss, 0 elsewhere, `[b][t]`.
    pub weight: Vec<Vec<f32>>,
    /// The attention mask to run the model with.
    pub mask: MaskKind,
}

/// A batch for the encoder-decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq2SeqBatch {
    /// What the encoder reads (bidirectionally), `[b][s]`.
    pub encoder_input: Vec<Vec<u32>>,
    /// What the decoder reads: `[BOS]` and the target shifted right, `[b][u]`.
    pub decoder_input: Vec<Vec<u32>>,
    /// What the decoder must predict, `[b][u]`.
    pub decoder_target: Vec<Vec<u32>>,
    /// 1 on every real target position, 0 on padding, `[b][u]`.
    pub decoder_weight: Vec<Vec<f32>>,
}

fn count_real(rows: &[Vec<u32>], pad: u32) -> usize {
    rows.iter().flatten().filter(|&&x| x != pad).count()
}

fn count_weighted(w: &[Vec<f32>]) -> usize {
    w.iter().flatten().filter(|&&x| x > 0.0).count()
}

/// Rows of equal length as one `[b, t]` tensor.
fn tensor<T: WithDType>(rows: &[Vec<T>]) -> candle_core::Result<Tensor> {
    let t = rows.first().map_or(0, Vec::len);
    Tensor::from_vec(rows.concat(), (rows.len(), t), &crate::DEVICE)
}

/// Loss weights for padded rows: 1 on every real token, 0 on `pad`.
fn weights_of_real_tokens(rows: &[Vec<u32>], pad: u32) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| r.iter().map(|&x| f32::from(u8::from(x != pad))).collect())
        .collect()
}

impl LmBatch {
    /// Input, target and weight tensors, `[b, t]` each (u32, u32, f32).
    pub fn tensors(&self) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        Ok((tensor(&self.input)?, tensor(&self.target)?, tensor(&self.weight)?))
    }

    /// Tokens the model reads (padding excluded).
    pub fn tokens_seen(&self, pad: u32) -> usize {
        count_real(&self.input, pad)
    }

    /// Positions that receive a loss.
    pub fn tokens_supervised(&self) -> usize {
        count_weighted(&self.weight)
    }
}

impl Seq2SeqBatch {
    /// Encoder input, decoder input, decoder target and decoder weight tensors.
    pub fn tensors(&self) -> candle_core::Result<(Tensor, Tensor, Tensor, Tensor)> {
        Ok((
            tensor(&self.encoder_input)?,
            tensor(&self.decoder_input)?,
            tensor(&self.decoder_target)?,
            tensor(&self.decoder_weight)?,
        ))
    }

    /// Tokens the two stacks read (padding excluded).
    pub fn tokens_seen(&self, pad: u32) -> usize {
        count_real(&self.encoder_input, pad) + count_real(&self.decoder_input, pad)
    }

    /// Positions that receive a loss.
    pub fn tokens_supervised(&self) -> usize {
        count_weighted(&self.decoder_weight)
    }

    /// Each source's real length (its tokens before the padding).
    pub fn source_lens(&self, pad: u32) -> Vec<usize> {
        self.encoder_input
            .iter()
            .map(|r| r.iter().rposition(|&x| x != pad).map_or(1, |i| i + 1))
            .collect()
    }
}

/// Pad every row at the end to the longest length with `pad`.
fn pad_rows<T: Copy>(rows: &mut [Vec<T>], pad: T) {
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    for r in rows {
        r.resize(t, pad);
    }
}

/// Inputs, targets and weights of a batch.
type Parts = (Vec<Vec<u32>>, Vec<Vec<u32>>, Vec<Vec<f32>>);

/// Inputs and next-token targets from rows of length `t + 1`, padded; weights 1 on
/// real targets.
fn shifted(rows: &[Vec<u32>], sp: &Specials) -> Parts {
    let mut input: Vec<Vec<u32>> =
        rows.iter().map(|r| r[..r.len().saturating_sub(1)].to_vec()).collect();
    let mut target: Vec<Vec<u32>> =
        rows.iter().map(|r| r.get(1..).unwrap_or(&[]).to_vec()).collect();
    pad_rows(&mut input, sp.pad);
    pad_rows(&mut target, sp.pad);
    let weight = weights_of_real_tokens(&target, sp.pad);
    (input, target, weight)
}

// ANCHOR: full_lm
/// Full language modelling (GPT): read `x[0..t]`, predict `x[1..t+1]`, a loss at
/// every position. Rows have length `t + 1`.
pub fn full_lm(rows: &[Vec<u32>], sp: &Specials) -> LmBatch {
    let (input, target, weight) = shifted(rows, sp);
    LmBatch { input, target, weight, mask: MaskKind::Causal }
}
// ANCHOR_END: full_lm

// ANCHOR: prefix_lm
/// Prefix language modelling: per row a prefix length `k` drawn uniformly from
/// `1..=t`; the prefix is read bidirectionally and the rest causally. Position `i`
/// predicts token `i + 1`, and for `i < k − 1` that token lies inside the prefix,
/// visible to position `i`: those positions get no loss. The supervised positions
/// are `k − 1 .. t`, `t − k + 1` of them, so on average `(t + 1) / 2t ≈ ½` of the
/// row.
pub fn prefix_lm(rows: &[Vec<u32>], rng: &mut Rng, sp: &Specials) -> LmBatch {
    let (input, target, mut weight) = shifted(rows, sp);
    let mut ks = Vec::with_capacity(rows.len());
    for (r, w) in weight.iter_mut().enumerate() {
        let t = rows[r].len().saturating_sub(1).max(1);
        let k = rng.random_range(1..=t);
        for x in &mut w[..k - 1] {
            *x = 0.0;
        }
        ks.push(k);
    }
    LmBatch { input, target, weight, mask: MaskKind::Prefix(ks) }
}
// ANCHOR_END: prefix_lm

/// Rates of BERT's masking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MlmConfig {
    /// Fraction of (non-special) positions chosen for prediction.
    pub rate: f64,
    /// Of the chosen: replaced by `[MASK]`.
    pub mask: f64,
    /// Of the chosen: replaced by a random regular token (the rest stay unchanged).
    pub random: f64,
}

impl Default for MlmConfig {
    /// BERT's 15%, and 80% / 10% / 10%.
    fn default() -> Self {
        MlmConfig { rate: 0.15, mask: 0.8, random: 0.1 }
    }
}

// ANCHOR: bert_mask
/// BERT's corruption of one row: choose `round(rate · n)` of the `n` non-special
/// positions (at least one), replace each chosen token by `[MASK]` (80%), by a
/// random regular token (10%) or by itself (10%). Returns the corrupted row and the
/// loss weights (1 on the chosen).
pub fn bert_corrupt(
    row: &[u32],
    rng: &mut Rng,
    sp: &Specials,
    vocab: u32,
    cfg: &MlmConfig,
) -> (Vec<u32>, Vec<f32>) {
    let eligible: Vec<usize> =
        (0..row.len()).filter(|&i| !sp.is_special(row[i])).collect();
    let mut input = row.to_vec();
    let mut weight = vec![0f32; row.len()];
    if eligible.is_empty() {
        return (input, weight);
    }
    let n = ((cfg.rate * eligible.len() as f64).round() as usize)
        .clamp(1, eligible.len());
    for &i in eligible.choose_multiple(rng, n) {
        weight[i] = 1.0;
        let u: f64 = rng.random();
        if u < cfg.mask {
            input[i] = sp.mask;
        } else if u < cfg.mask + cfg.random {
            input[i] = rng.random_range(sp.first_regular()..vocab);
        }
    }
    (input, weight)
}
// ANCHOR_END: bert_mask

/// BERT's masked language modelling: each row corrupted by [`bert_corrupt`], the
/// model reads the whole row bidirectionally and predicts the original token at the
/// chosen positions. `vocab` is the vocabulary size (random replacements are drawn
/// from the regular ids).
pub fn masked_lm(
    rows: &[Vec<u32>],
    rng: &mut Rng,
    sp: &Specials,
    vocab: u32,
    cfg: &MlmConfig,
) -> LmBatch {
    let (mut input, mut weight): (Vec<_>, Vec<_>) =
        rows.iter().map(|r| bert_corrupt(r, rng, sp, vocab, cfg)).unzip();
    let mut target = rows.to_vec();
    pad_rows(&mut input, sp.pad);
    pad_rows(&mut target, sp.pad);
    pad_rows(&mut weight, 0.0);
    LmBatch { input, target, weight, mask: MaskKind::Bidirectional }
}

/// [`masked_lm`] with BERT's rates on the inputs of rows of `t + 1` tokens (their
/// first `t`), the tokens the causal and prefix objectives read from the same rows,
/// so that every objective reads `t` real tokens per row.
pub fn masked_lm_on_inputs(
    rows: &[Vec<u32>],
    rng: &mut Rng,
    sp: &Specials,
    vocab: u32,
) -> LmBatch {
    let inputs: Vec<Vec<u32>> =
        rows.iter().map(|x| x[..x.len() - 1].to_vec()).collect();
    masked_lm(&inputs, rng, sp, vocab, &MlmConfig::default())
}

/// UniLM's sequence-to-sequence cloze: a random prefix length per row as in
/// [`prefix_lm`], BERT's corruption of 15% of the positions in both segments, a
/// loss on the chosen positions, the original tokens as targets at the same
/// positions (no shift).
pub fn unilm_seq2seq(
    rows: &[Vec<u32>],
    rng: &mut Rng,
    sp: &Specials,
    vocab: u32,
    cfg: &MlmConfig,
) -> LmBatch {
    let mut b = masked_lm(rows, rng, sp, vocab, cfg);
    b.mask = MaskKind::Prefix(
        rows.iter().map(|r| rng.random_range(1..=r.len().max(1))).collect(),
    );
    b
}

/// Rates of T5's span corruption.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpanConfig {
    /// Fraction of tokens dropped out.
    pub rate: f64,
    /// Mean length of a dropped span.
    pub mean_span: f64,
}

impl Default for SpanConfig {
    /// T5's 15% and mean span length 3.
    fn default() -> Self {
        SpanConfig { rate: 0.15, mean_span: 3.0 }
    }
}

/// Split `total` items into `parts` non-empty segments, uniformly among all such
/// splits.
fn random_segmentation(total: usize, parts: usize, rng: &mut Rng) -> Vec<usize> {
    let mut cuts: Vec<usize> =
        rand::seq::index::sample(rng, total - 1, parts - 1).into_vec();
    cuts.sort_unstable();
    let mut lens = Vec::with_capacity(parts);
    let mut prev = 0;
    for c in cuts {
        lens.push(c + 1 - prev);
        prev = c + 1;
    }
    lens.push(total - prev);
    lens
}

// ANCHOR: noise_mask
/// T5's noise mask for a row of `len` tokens: `round(rate · len)` noise tokens (at
/// least 1) in `round(noise / mean_span)` spans (at least 1), the spans and the
/// gaps between them of random positive lengths, alternating gap, span, gap, span,
/// ... so the row starts with kept text and ends with a span. Returns `true` at
/// dropped positions.
pub fn noise_mask(len: usize, cfg: &SpanConfig, rng: &mut Rng) -> Vec<bool> {
    if len < 2 {
        return vec![false; len];
    }
    let noise = ((cfg.rate * len as f64).round() as usize).clamp(1, len - 1);
    let spans = ((noise as f64 / cfg.mean_span).round() as usize)
        .clamp(1, noise.min(len - noise));
    let noise_lens = random_segmentation(noise, spans, rng);
    let keep_lens = random_segmentation(len - noise, spans, rng);
    let mut mask = Vec::with_capacity(len);
    for (keep, drop) in keep_lens.into_iter().zip(noise_lens) {
        mask.extend(std::iter::repeat_n(false, keep));
        mask.extend(std::iter::repeat_n(true, drop));
    }
    mask
}
// ANCHOR_END: noise_mask

/// What a row of length `len` becomes under span corruption: (noise tokens, spans).
pub fn span_counts(len: usize, cfg: &SpanConfig) -> (usize, usize) {
    if len < 2 {
        return (0, 0);
    }
    let noise = ((cfg.rate * len as f64).round() as usize).clamp(1, len - 1);
    let spans = ((noise as f64 / cfg.mean_span).round() as usize)
        .clamp(1, noise.min(len - noise));
    (noise, spans)
}

/// Span corruption could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpanError {
    #[error("{spans} spans need {spans} sentinels, the tokenizer has {available}")]
    TooFewSentinels { spans: usize, available: u32 },
    #[error("the row and its noise mask differ in length ({row} and {mask})")]
    LengthMismatch { row: usize, mask: usize },
    #[error("malformed span-corruption pair: {0}")]
    Malformed(&'static str),
}

// ANCHOR: corrupt_spans
/// T5's input and target for one row and its noise mask: each run of dropped tokens
/// becomes one sentinel in the input (`<extra_id_0>`, `<extra_id_1>`, ... in
/// order); the target lists each sentinel followed by the tokens it replaced. Both
/// end with `[EOS]`.
///
/// "Thank you for inviting me to your party last week." → input "Thank you
/// <extra_id_0> me to your party <extra_id_1> week. [EOS]", target "<extra_id_0>
/// for inviting <extra_id_1> last [EOS]".
pub fn corrupt_spans(
    row: &[u32],
    noise: &[bool],
    sp: &Specials,
) -> Result<(Vec<u32>, Vec<u32>), SpanError> {
    if row.len() != noise.len() {
        return Err(SpanError::LengthMismatch {
            row: row.len(),
            mask: noise.len(),
        });
    }
    let (mut input, mut target) = (Vec::new(), Vec::new());
    let mut span = 0;
    for i in 0..row.len() {
        if !noise[i] {
            input.push(row[i]);
            continue;
        }
        if i == 0 || !noise[i - 1] {
            let s = sp.sentinel(span).ok_or(SpanError::TooFewSentinels {
                spans: span + 1,
                available: sp.n_sentinels,
            })?;
            input.push(s);
            target.push(s);
            span += 1;
        }
        target.push(row[i]);
    }
    input.push(sp.eos);
    target.push(sp.eos);
    Ok((input, target))
}
// ANCHOR_END: corrupt_spans

/// The inverse of [`corrupt_spans`]: put each span of the target back where its
/// sentinel stands in the input.
pub fn restore_spans(
    input: &[u32],
    target: &[u32],
    sp: &Specials,
) -> Result<Vec<u32>, SpanError> {
    let strip = |x: &[u32]| -> Result<Vec<u32>, SpanError> {
        match x.split_last() {
            Some((&last, rest)) if last == sp.eos => Ok(rest.to_vec()),
            _ => Err(SpanError::Malformed("missing [EOS]")),
        }
    };
    let (input, target) = (strip(input)?, strip(target)?);
    let mut spans: Vec<Vec<u32>> = Vec::new();
    for &x in &target {
        match sp.sentinel_index(x) {
            Some(i) if i == spans.len() => spans.push(Vec::new()),
            Some(_) => {
                return Err(SpanError::Malformed(
                    "sentinels out of order in the target",
                ));
            }
            None => spans
                .last_mut()
                .ok_or(SpanError::Malformed(
                    "target does not start with a sentinel",
                ))?
                .push(x),
        }
    }
    let mut out = Vec::new();
    for &x in &input {
        match sp.sentinel_index(x) {
            Some(i) => {
                out.extend(spans.get(i).ok_or(SpanError::Malformed(
                    "sentinel missing from the target",
                ))?)
            }
            None => out.push(x),
        }
    }
    Ok(out)
}

// ANCHOR: span_corruption
/// T5's span corruption for the encoder-decoder: the encoder reads the corrupted
/// row, the decoder reads `[BOS]` followed by the target shifted right, and
/// predicts the target (the sentinels and the dropped spans). Every target position
/// gets a loss; padding (only needed when rows differ in length) gets none.
pub fn span_corruption(
    rows: &[Vec<u32>],
    rng: &mut Rng,
    sp: &Specials,
    cfg: &SpanConfig,
) -> Result<Seq2SeqBatch, SpanError> {
    let (mut enc, mut dec_in, mut dec_tgt) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let (input, target) =
            corrupt_spans(row, &noise_mask(row.len(), cfg, rng), sp)?;
        let mut shifted = vec![sp.bos];
        shifted.extend(&target[..target.len() - 1]);
        enc.push(input);
        dec_in.push(shifted);
        dec_tgt.push(target);
    }
    pad_rows(&mut enc, sp.pad);
    pad_rows(&mut dec_in, sp.pad);
    pad_rows(&mut dec_tgt, sp.pad);
    let decoder_weight = weights_of_real_tokens(&dec_in, sp.pad);
    Ok(Seq2SeqBatch {
        encoder_input: enc,
        decoder_input: dec_in,
        decoder_target: dec_tgt,
        decoder_weight,
    })
}
// ANCHOR_END: span_corruption

// ANCHOR: decoder_span_corruption
/// T5's span corruption for a decoder-only model (Wang et al.'s CD:MLM and ND:MLM):
/// the corrupted input and the target are concatenated into one sequence, and only
/// the target part receives a loss. `non_causal` makes the input part a
/// bidirectional prefix (the non-causal decoder); otherwise the whole sequence is
/// read causally. Rows of equal length give sequences of equal length, so packed
/// rows never pad.
pub fn decoder_span_corruption(
    rows: &[Vec<u32>],
    rng: &mut Rng,
    sp: &Specials,
    cfg: &SpanConfig,
    non_causal: bool,
) -> Result<LmBatch, SpanError> {
    let (mut seqs, mut ks) =
        (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
    for row in rows {
        let (mut input, target) =
            corrupt_spans(row, &noise_mask(row.len(), cfg, rng), sp)?;
        ks.push(input.len());
        input.extend(target);
        seqs.push(input);
    }
    let (input, target, mut weight) = shifted(&seqs, sp);
    for (w, &k) in weight.iter_mut().zip(&ks) {
        // Position i predicts token i + 1: the first target token is predicted at k
        // − 1.
        for x in &mut w[..k - 1] {
            *x = 0.0;
        }
    }
    let mask = if non_causal { MaskKind::Prefix(ks) } else { MaskKind::Causal };
    Ok(LmBatch { input, target, weight, mask })
}
// ANCHOR_END: decoder_span_corruption

// ANCHOR: seq2seq_prefix_lm
/// Prefix language modelling for the encoder-decoder (Wang et al.'s ED:PLM): rows
/// of `t` tokens are split at one point `k` drawn uniformly from `1..t` for the
/// whole batch; the encoder reads `x[0..k]`, the decoder reads `[BOS]` and
/// `x[k..t−1]` and predicts `x[k..t]`. One split per batch keeps every source and
/// target the same length, so nothing is padded (a split per row would pad both
/// stacks to nearly the full row); over many batches the splits have the same
/// distribution as per-row ones.
pub fn seq2seq_prefix_lm(
    rows: &[Vec<u32>],
    rng: &mut Rng,
    sp: &Specials,
) -> Seq2SeqBatch {
    let t = rows.iter().map(Vec::len).min().unwrap_or(0);
    let k = rng.random_range(1..t.max(2));
    let pairs: Vec<(Vec<u32>, Vec<u32>)> =
        rows.iter().map(|r| (r[..k].to_vec(), r[k..].to_vec())).collect();
    seq2seq_pairs(&pairs, sp)
}
// ANCHOR_END: seq2seq_prefix_lm

/// Source–target pairs for the encoder-decoder: the encoder reads each source, the
/// decoder reads `[BOS]` and the target shifted right and predicts the target. Both
/// sides are padded at the end; padding gets no loss.
pub fn seq2seq_pairs(
    pairs: &[(Vec<u32>, Vec<u32>)],
    sp: &Specials,
) -> Seq2SeqBatch {
    let mut enc: Vec<Vec<u32>> = pairs.iter().map(|(s, _)| s.clone()).collect();
    let mut dec_in: Vec<Vec<u32>> = pairs
        .iter()
        .map(|(_, t)| {
            std::iter::once(sp.bos)
                .chain(t[..t.len().saturating_sub(1)].iter().copied())
                .collect()
        })
        .collect();
    let mut dec_tgt: Vec<Vec<u32>> = pairs.iter().map(|(_, t)| t.clone()).collect();
    pad_rows(&mut enc, sp.pad);
    pad_rows(&mut dec_in, sp.pad);
    pad_rows(&mut dec_tgt, sp.pad);
    let decoder_weight = weights_of_real_tokens(&dec_tgt, sp.pad);
    Seq2SeqBatch {
        encoder_input: enc,
        decoder_input: dec_in,
        decoder_target: dec_tgt,
        decoder_weight,
    }
}

// ANCHOR: prompted_lm
/// Prompt–answer pairs for a decoder-only model (multitask finetuning): each row is
/// the prompt followed by the answer, and only the answer's tokens receive a loss.
/// `non_causal` reads each prompt as a bidirectional prefix (the non-causal
/// decoder). Rows are padded at the end, which no real position can see under
/// either mask.
pub fn prompted_lm(
    pairs: &[(Vec<u32>, Vec<u32>)],
    sp: &Specials,
    non_causal: bool,
) -> LmBatch {
    let seqs: Vec<Vec<u32>> =
        pairs.iter().map(|(p, a)| [p.as_slice(), a.as_slice()].concat()).collect();
    let (input, target, mut weight) = shifted(&seqs, sp);
    for (w, (p, _)) in weight.iter_mut().zip(pairs) {
        for x in &mut w[..p.len().saturating_sub(1)] {
            *x = 0.0;
        }
    }
    let mask = if non_causal {
        MaskKind::Prefix(pairs.iter().map(|(p, _)| p.len()).collect())
    } else {
        MaskKind::Causal
    };
    LmBatch { input, target, weight, mask }
}
// ANCHOR_END: prompted_lm

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use proptest::prelude::*;

    const SP: Specials = Specials::with_sentinels(40);
    const VOCAB: u32 = 300;

    fn rows(seed: u64, b: usize, lens: &[usize]) -> Vec<Vec<u32>> {
        let mut r = rng::seeded(seed);
        (0..b)
            .map(|i| {
                (0..lens[i % lens.len()])
                    .map(|_| r.random_range(SP.first_regular()..VOCAB))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_t5_example_from_the_paper() {
        // Thank you for inviting me to your party last week .
        let row: Vec<u32> = (100..111).collect();
        let noise = [
            false, false, true, true, false, false, false, false, true, false,
            false,
        ];
        let (input, target) = corrupt_spans(&row, &noise, &SP).unwrap();
        assert_eq!(input, vec![100, 101, 5, 104, 105, 106, 107, 6, 109, 110, 2]);
        assert_eq!(target, vec![5, 102, 103, 6, 108, 2]);
        assert_eq!(restore_spans(&input, &target, &SP).unwrap(), row);
    }

    #[test]
    fn full_lm_supervises_every_position_and_prefix_lm_about_half() {
        let rs = rows(1, 400, &[65]);
        let f = full_lm(&rs, &SP);
        assert_eq!(f.tokens_supervised(), 400 * 64);
        assert_eq!(f.tokens_seen(SP.pad), 400 * 64);
        let p = prefix_lm(&rs, &mut rng::seeded(2), &SP);
        let frac = p.tokens_supervised() as f64 / (400.0 * 64.0);
        assert!((frac - 65.0 / 128.0).abs() < 0.03, "{frac}");
    }

    #[test]
    fn prefix_lm_never_supervises_a_token_the_position_can_see() {
        let rs = rows(3, 50, &[33]);
        let b = prefix_lm(&rs, &mut rng::seeded(4), &SP);
        for r in 0..50 {
            for i in 0..32 {
                // Position i predicts token i + 1 of the input; if i may attend to
                // i + 1, no loss.
                if i + 1 < 32 && b.mask.allows(r, i, i + 1) {
                    assert_eq!(b.weight[r][i], 0.0, "row {r} position {i}");
                }
            }
        }
    }

    #[test]
    fn span_lengths_match_the_closed_form() {
        let cfg = SpanConfig::default();
        let rs = rows(5, 20, &[64]);
        let b = span_corruption(&rs, &mut rng::seeded(6), &SP, &cfg).unwrap();
        let (noise, spans) = span_counts(64, &cfg);
        assert_eq!((noise, spans), (10, 3));
        assert!(b.encoder_input.iter().all(|r| r.len() == 64 - noise + spans + 1));
        assert!(b.decoder_target.iter().all(|r| r.len() == noise + spans + 1));
        assert_eq!(b.tokens_supervised(), 20 * (noise + spans + 1));
    }

    #[test]
    fn too_few_sentinels_is_an_error() {
        let sp = Specials { n_sentinels: 1, ..SP };
        let noise = [false, true, false, true];
        assert_eq!(
            corrupt_spans(&[9, 9, 9, 9], &noise, &sp),
            Err(SpanError::TooFewSentinels { spans: 2, available: 1 })
        );
    }

    proptest! {
        #[test]
        fn span_corruption_is_invertible(seed in 0u64..1000, len in 2usize..120) {
            let row = rows(seed, 1, &[len]).remove(0);
            let cfg = SpanConfig::default();
            let noise = noise_mask(len, &cfg, &mut rng::seeded(seed));
            let (noise_n, spans) = span_counts(len, &cfg);
            prop_assert_eq!(noise.iter().filter(|&&x| x).count(), noise_n);
            let runs = (0..len).filter(|&i| noise[i] && (i == 0 || !noise[i - 1])).count();
            prop_assert_eq!(runs, spans);
            prop_assert!(!noise[0]);
            let (input, target) = corrupt_spans(&row, &noise, &SP).unwrap();
            prop_assert_eq!(restore_spans(&input, &target, &SP).unwrap(), row);
        }

        #[test]
        fn padding_never_receives_a_loss(seed in 0u64..500, a in 2usize..40, b in 2usize..40) {
            let rs = rows(seed, 4, &[a, b]);
            let mut r = rng::seeded(seed);
            let batches = [
                full_lm(&rs, &SP),
                prefix_lm(&rs, &mut r, &SP),
                masked_lm(&rs, &mut r, &SP, VOCAB, &MlmConfig::default()),
                unilm_seq2seq(&rs, &mut r, &SP, VOCAB, &MlmConfig::default()),
            ];
            for batch in &batches {
                for (row, w) in batch.target.iter().zip(&batch.weight) {
                    prop_assert_eq!(row.len(), w.len());
                    for (&x, &wi) in row.iter().zip(w) {
                        if x == SP.pad { prop_assert_eq!(wi, 0.0); }
                    }
                }
                for (row, w) in batch.input.iter().zip(&batch.weight) {
                    for (&x, &wi) in row.iter().zip(w) {
                        if x == SP.pad { prop_assert_eq!(wi, 0.0); }
                    }
                }
            }
            let s = span_corruption(&rs, &mut r, &SP, &SpanConfig::default()).unwrap();
            for (row, w) in s.decoder_target.iter().zip(&s.decoder_weight) {
                for (&x, &wi) in row.iter().zip(w) {
                    prop_assert_eq!(wi, if x == SP.pad { 0.0 } else { 1.0 });
                }
            }
        }
    }

    #[test]
    fn bert_rates_hold_over_many_rows() {
        let rs = rows(7, 2000, &[64]);
        let b =
            masked_lm(&rs, &mut rng::seeded(8), &SP, VOCAB, &MlmConfig::default());
        let (mut chosen, mut masked, mut same, mut other) =
            (0usize, 0usize, 0usize, 0usize);
        for r in 0..rs.len() {
            for i in 0..64 {
                if b.weight[r][i] == 0.0 {
                    assert_eq!(b.input[r][i], rs[r][i]);
                    continue;
                }
                chosen += 1;
                assert_eq!(b.target[r][i], rs[r][i]);
                match b.input[r][i] {
                    x if x == SP.mask => masked += 1,
                    x if x == rs[r][i] => same += 1,
                    x => {
                        assert!(!SP.is_special(x));
                        other += 1
                    }
                }
            }
        }
        let n = chosen as f64;
        assert_eq!(chosen, 2000 * 10); // round(0.15 · 64) = 10 per row
        assert!((masked as f64 / n - 0.8).abs() < 0.01, "{masked}");
        // A random replacement equals the original 1 time in 295, so "same" is a
        // little above 10%.
        assert!((same as f64 / n - 0.1).abs() < 0.01, "{same}");
        assert!((other as f64 / n - 0.1).abs() < 0.01, "{other}");
        assert_eq!(b.mask, MaskKind::Bidirectional);
    }

    #[test]
    fn specials_are_never_chosen_for_masking() {
        let mut row = vec![SP.bos];
        row.extend(100..140u32);
        row.push(SP.eos);
        for s in 0..200 {
            let (_, w) = bert_corrupt(
                &row,
                &mut rng::seeded(s),
                &SP,
                VOCAB,
                &MlmConfig::default(),
            );
            assert_eq!(w[0], 0.0);
            assert_eq!(*w.last().unwrap(), 0.0);
            assert_eq!(w.iter().filter(|&&x| x > 0.0).count(), 6);
        }
    }
}
