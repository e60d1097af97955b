//! Invalidation: what appending a turn does to the keys and values already
//! computed.

use anyhow::{Result, bail};
use candle_core::Tensor;
use serde::Serialize;
use transformer::model::Forward;
use transformer::{DecoderOnly, EncoderDecoder, MaskKind};

use crate::*;

#[derive(Debug, Clone, Serialize)]
pub struct LayerShift {
    pub layer: usize,
    /// Largest absolute change of any key or value entry.
    pub max_abs: f64,
    /// ‖ΔK‖² + ‖ΔV‖², square-rooted, over the same for the old K and V (Frobenius
    /// norms).
    pub relative: f64,
}

pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1()?)
}

// ANCHOR: kv_shift
/// Compare per-layer keys and values (`[1, kv_heads, t, head_dim]`) computed for
/// the history alone (`before`) with those computed for the longer sequence
/// (`after`), on the first `n_old` positions.
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
fn decoder_kv(
    model: &DecoderOnly,
    tokens: &[u32],
    mask: &MaskKind,
) -> Result<LayerKv> {
    let out =
        model.run(&ids(tokens)?, mask, Forward { cache: None, trace: true })?;
    Ok(out.layers.into_iter().map(|l| (l.attn.k, l.attn.v)).collect())
}

/// Each encoder layer's self-attention keys and values, and the cross-attention
/// keys and values the decoder would cache, for `src`.
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
    /// Whether the history's keys and values differ, in any bit, between two
    /// different new turns of the same length: does the history's cache depend on
    /// what comes after it?
    pub depends_on_new_turn: bool,
}

/// Per-layer keys and values of a token sequence, for one way of holding a
/// conversation.
type KvOf<'a> = Box<dyn Fn(&[u32]) -> Result<LayerKv> + 'a>;

// ANCHOR: invalidation
/// Append a turn to a history of `old` tokens and measure, layer by layer, how the
/// keys and values of the history change, for each way of holding the history. A
/// second, different turn `other` of the same length tells whether they depend on
/// the new tokens at all.
pub fn invalidation(
    dec: &DecoderOnly,
    ed: &EncoderDecoder,
    old: &[u32],
    new: &[u32],
    other: &[u32],
) -> Result<Vec<ShiftRow>> {
    let n = old.len();
    let ways: Vec<(&str, &str, KvOf)> = vec![
        (
            "causal",
            "causal decoder",
            Box::new(|seq| decoder_kv(dec, seq, &MaskKind::Causal)),
        ),
        // A mitigation: the prefix stays at the first turn; later turns sit on the
        // causal side.
        (
            "prefix_frozen",
            "prefix LM, prefix frozen after turn 1",
            Box::new(|seq| decoder_kv(dec, seq, &MaskKind::prefix(n))),
        ),
        // The prefix LM keeps the whole history in its bidirectional prefix, so the
        // prefix grows.
        (
            "prefix_lm",
            "prefix LM, history in the prefix",
            Box::new(|seq| decoder_kv(dec, seq, &MaskKind::prefix(seq.len()))),
        ),
        // The encoder-decoder encodes history and new turn together,
        // bidirectionally.
        (
            "encoder",
            "encoder-decoder, encoder self-attention",
            Box::new(|seq| Ok(encoder_kv(ed, seq)?.0)),
        ),
        (
            "cross",
            "encoder-decoder, cross-attention K/V",
            Box::new(|seq| Ok(encoder_kv(ed, seq)?.1)),
        ),
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
            depends_on_new_turn: kv_shift(&after, &after_other, n)?
                .iter()
                .any(|l| l.max_abs > 0.0),
        });
    }
    Ok(rows)
}
// ANCHOR_END: invalidation
