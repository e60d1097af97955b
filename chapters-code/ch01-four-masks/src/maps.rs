//! The experiment, part 1: the attention maps of the four families, read from the
//! models.

use anyhow::Context;
use candle_core::Tensor;
use transformer::MaskKind;

use crate::models::{Models, example, run_ed, run_stack};
use crate::settings::Settings;

/// One attention map: what a model computed, averaged over the heads of one layer.
#[derive(Debug, Clone)]
pub struct AttentionMap {
    pub file: &'static str,
    pub title: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// `None` where the model gave the key exactly zero weight.
    pub probs: Vec<Vec<Option<f64>>>,
}

// ANCHOR: read_probs
/// Average a `[1, heads, t_q, t_k]` probability tensor over heads; a key that no
/// head may read comes out as exactly 0 (its score was −∞), and is recorded as
/// `None`: a grey cell.
pub fn head_average(probs: &Tensor) -> anyhow::Result<Vec<Vec<Option<f64>>>> {
    let mean = probs.mean(1)?.squeeze(0)?.to_vec2::<f32>()?;
    Ok(mean
        .into_iter()
        .map(|row| {
            row.into_iter().map(|p| (p != 0.0).then_some(f64::from(p))).collect()
        })
        .collect())
}
// ANCHOR_END: read_probs

// ANCHOR: attention_maps
/// The six attention maps of the chapter, all from layer 0 of the real models.
pub fn attention_maps(
    models: &Models,
    s: &Settings,
) -> anyhow::Result<Vec<AttentionMap>> {
    let (ids, labels) = example(s);
    let k = s.prefix_len;
    let mut maps = Vec::new();
    let stack_runs = [
        (
            "encoder_only.svg",
            "Encoder-only (BERT): bidirectional".to_string(),
            MaskKind::Bidirectional,
        ),
        ("causal.svg", "Decoder-only (GPT): causal".to_string(), MaskKind::Causal),
        (
            "prefix_lm.svg",
            format!("Prefix LM (UniLM seq-to-seq mask), prefix {k}"),
            MaskKind::prefix(k),
        ),
    ];
    for (file, title, mask) in stack_runs {
        let out = run_stack(&models.stack, &ids, &mask)?;
        let probs = head_average(&out.layers[0].attn.probs)?;
        maps.push(AttentionMap {
            file,
            title,
            rows: labels.clone(),
            cols: labels.clone(),
            probs,
        });
    }
    let (src, tgt) = (&ids[..k], &ids[k..]);
    let (src_labels, tgt_labels) = (labels[..k].to_vec(), labels[k..].to_vec());
    let (enc_layers, dec) = run_ed(&models.ed, src, tgt)?;
    let cross = dec.layers[0]
        .cross_probs
        .as_ref()
        .context("the decoder traced no cross-attention")?;
    let ed_maps = [
        (
            "ed_encoder.svg",
            "Encoder-decoder: encoder self-attention",
            &enc_layers[0].attn.probs,
            &src_labels,
            &src_labels,
        ),
        (
            "ed_decoder.svg",
            "Encoder-decoder: decoder self-attention",
            &dec.layers[0].attn.probs,
            &tgt_labels,
            &tgt_labels,
        ),
        (
            "ed_cross.svg",
            "Encoder-decoder: cross-attention",
            cross,
            &tgt_labels,
            &src_labels,
        ),
    ];
    for (file, title, probs, rows, cols) in ed_maps {
        let probs = head_average(probs)?;
        maps.push(AttentionMap {
            file,
            title: title.to_string(),
            rows: rows.clone(),
            cols: cols.clone(),
            probs,
        });
    }
    Ok(maps)
}
// ANCHOR_END: attention_maps
