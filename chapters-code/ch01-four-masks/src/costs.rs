//! The experiment, part 2: what each family costs, and T5's accounting with our
//! models.

use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::model::{DecoderOnly, EncoderDecoder};
use transformer::{MaskKind, ParamStore, flops};

use crate::models::{Models, example, ids_tensor};
use crate::settings::Settings;

/// Parameters and forward FLOPs of one family on the example, read from the models.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// `ParamStore::num_params` of the instantiated model.
    pub params: usize,
    /// FLOPs of one forward pass over the whole example (`flops::count`).
    pub flops: u64,
    /// `flops` divided by the example's length.
    pub flops_per_token: f64,
    /// Whether both equal the closed-form formulas of `Config`.
    pub matches_formulas: bool,
}

// ANCHOR: measure
/// Count the parameters the model really holds and the FLOPs its matmuls really
/// perform.
fn measure_stack(
    store: &ParamStore,
    model: &DecoderOnly,
    ids: &[u32],
    mask: &MaskKind,
) -> anyhow::Result<Cost> {
    let (out, flops) = flops::count(|| model.forward(&ids_tensor(ids)?, mask));
    out?;
    let n = ids.len();
    let cfg = &model.cfg;
    let matches = store.num_params() == cfg.decoder_only_params()
        && flops == n as u64 * cfg.decoder_only_flops_per_token(n);
    Ok(Cost {
        params: store.num_params(),
        flops,
        flops_per_token: flops as f64 / n as f64,
        matches_formulas: matches,
    })
}

fn measure_ed(
    store: &ParamStore,
    model: &EncoderDecoder,
    src: &[u32],
    tgt: &[u32],
) -> anyhow::Result<Cost> {
    let (out, flops) =
        flops::count(|| model.forward(&ids_tensor(src)?, &ids_tensor(tgt)?));
    out?;
    let n = src.len() + tgt.len();
    let cfg = &model.cfg;
    let matches = store.num_params() == cfg.encoder_decoder_params()
        && flops == cfg.encoder_decoder_flops(src.len(), tgt.len());
    Ok(Cost {
        params: store.num_params(),
        flops,
        flops_per_token: flops as f64 / n as f64,
        matches_formulas: matches,
    })
}
// ANCHOR_END: measure

/// One row of the families table.
#[derive(Debug, Clone, Serialize)]
pub struct Family {
    pub name: &'static str,
    pub examples: &'static str,
    pub attention: &'static str,
    pub objective: &'static str,
    pub generates_left_to_right: &'static str,
    pub cost: Cost,
}

/// T5's accounting (Raffel et al. 2020, §3.2.2) with this chapter's models.
#[derive(Debug, Clone, Serialize)]
pub struct T5Accounting {
    pub layers: usize,
    pub params_decoder_l: usize,
    pub params_decoder_2l: usize,
    pub params_encoder_decoder: usize,
    /// Encoder-decoder parameters over those of the 2L decoder (T5: about 1).
    pub params_ratio_ed_to_2l: f64,
    pub flops_decoder_l: u64,
    pub flops_decoder_2l: u64,
    pub flops_encoder_decoder: u64,
    /// Encoder-decoder FLOPs over those of the L decoder on the same tokens (T5:
    /// about 1).
    pub flops_ratio_ed_to_l: f64,
    pub flops_ratio_ed_to_2l: f64,
    /// Share of the encoder-decoder's parameters in cross-attention (T5: about
    /// 10%).
    pub cross_attention_share: f64,
    /// The same share in percent, for the prose.
    pub cross_attention_percent: f64,
}

// ANCHOR: families
/// Measure the four families (and the 2L decoder) on the example.
pub fn families(
    models: &Models,
    s: &Settings,
) -> anyhow::Result<(Vec<Family>, T5Accounting)> {
    let (ids, _) = example(s);
    let (src, tgt) = ids.split_at(s.prefix_len);
    let stack =
        |mask| measure_stack(&models.stack_store, &models.stack, &ids, &mask);
    let families = vec![
        Family {
            name: "Encoder-only",
            examples: "BERT",
            attention: "bidirectional: every token sees every token",
            objective: "masked-token prediction (cloze)",
            generates_left_to_right: "no",
            cost: stack(MaskKind::Bidirectional)?,
        },
        Family {
            name: "Encoder-decoder",
            examples: "T5, BART",
            attention: "bidirectional encoder; causal decoder; \
                        decoder reads the encoder (cross)",
            objective: "denoising: span corruption (T5), text infilling (BART)",
            generates_left_to_right: "yes, the decoder, given the input",
            cost: measure_ed(&models.ed_store, &models.ed, src, tgt)?,
        },
        Family {
            name: "Causal decoder",
            examples: "GPT-2, GPT-3, PaLM",
            attention: "causal: a token sees itself and the past",
            objective: "next-token prediction on every position",
            generates_left_to_right: "yes",
            cost: stack(MaskKind::Causal)?,
        },
        Family {
            name: "Prefix LM (non-causal decoder)",
            examples: "UniLM (seq-to-seq mask), T5's prefix LM",
            attention: "bidirectional on the prefix, causal after it",
            objective: "next-token prediction after the prefix; UniLM: cloze",
            generates_left_to_right: "yes, after the prefix",
            cost: stack(MaskKind::prefix(s.prefix_len))?,
        },
    ];
    let deep =
        measure_stack(&models.deep_store, &models.deep, &ids, &MaskKind::Causal)?;
    let (causal, ed) = (&families[2].cost, &families[1].cost);
    let cfg = &s.config;
    let cross =
        cfg.n_layers * (cfg.cross_attention_params() + cfg.layer_norm_params());
    let t5 = T5Accounting {
        layers: cfg.n_layers,
        params_decoder_l: causal.params,
        params_decoder_2l: deep.params,
        params_encoder_decoder: ed.params,
        params_ratio_ed_to_2l: round_dp(ed.params as f64 / deep.params as f64, 3),
        flops_decoder_l: causal.flops,
        flops_decoder_2l: deep.flops,
        flops_encoder_decoder: ed.flops,
        flops_ratio_ed_to_l: round_dp(ed.flops as f64 / causal.flops as f64, 3),
        flops_ratio_ed_to_2l: round_dp(ed.flops as f64 / deep.flops as f64, 3),
        cross_attention_share: round_dp(cross as f64 / ed.params as f64, 3),
        cross_attention_percent: round_dp(
            100.0 * cross as f64 / ed.params as f64,
            1,
        ),
    };
    Ok((families, t5))
}
// ANCHOR_END: families
