//! Chapter 1: one Transformer, four masks.
//!
//! The article's first claim is a taxonomy: encoder-only (BERT), encoder-decoder (T5, BART),
//! decoder-only (GPT) and prefix LM (UniLM) differ mainly in which positions may attend to which.
//! This crate builds the shared library's real models from one configuration and reads off
//! everything the page shows: the attention each model actually computes, the parameters and
//! FLOPs each one has, and what changes when one set of weights runs under two masks.

use std::path::Path;

use anyhow::Context;
use candle_core::Tensor;
use serde::Serialize;
use transformer::config::Config;
use transformer::io::{round, thousands};
use transformer::model::{DecoderOnly, EncoderDecoder, Forward, Output};
use transformer::plot::Heatmap;
use transformer::{MaskKind, ParamStore, PositionKind, flops};

/// The seed of every model in this chapter.
pub const SEED: u64 = 1;

/// The two sizes the command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// A tiny model for the tests (runs in well under a second).
    Quick,
    /// The model the book shows.
    Default,
}

impl Preset {
    /// The model shape shared by all four families.
    pub fn config(self) -> Config {
        match self {
            Preset::Quick => Config {
                vocab_size: 64,
                d_model: 32,
                n_heads: 2,
                n_kv_heads: 2,
                d_ff: 128,
                n_layers: 2,
                max_len: 32,
                positions: PositionKind::Learned,
                tie_embeddings: false,
            },
            Preset::Default => Config {
                vocab_size: 1024,
                d_model: 256,
                n_heads: 4,
                n_kv_heads: 4,
                d_ff: 1024,
                n_layers: 4,
                max_len: 64,
                positions: PositionKind::Learned,
                tie_embeddings: false,
            },
        }
    }

    /// Sequence length and prefix length used when the command line gives none.
    pub fn lengths(self) -> (usize, usize) {
        match self {
            Preset::Quick => (6, 3),
            Preset::Default => (10, 7),
        }
    }
}

/// What one run of the chapter uses.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub preset: Preset,
    #[serde(skip)]
    pub config: Config,
    /// Tokens in the example sequence.
    pub seq_len: usize,
    /// Tokens in the prefix (the prefix LM's bidirectional part, the encoder-decoder's input).
    pub prefix_len: usize,
}

/// Settings that cannot describe the experiment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("--seq-len must be at least 2 (a prefix and at least one token after it), got {0}")]
    TooShort(usize),
    #[error("--seq-len {seq_len} is longer than the model's max_len {max_len}")]
    TooLong { seq_len: usize, max_len: usize },
    #[error(
        "--prefix-len must be between 1 and seq-len − 1 = {max} (the encoder-decoder needs an input \
         and an output token), got {prefix_len}"
    )]
    BadPrefix { prefix_len: usize, max: usize },
}

impl Settings {
    /// Settings from a preset, with optional overrides; every value is checked.
    pub fn new(
        preset: Preset,
        seq_len: Option<usize>,
        prefix_len: Option<usize>,
    ) -> Result<Self, SettingsError> {
        let config = preset.config();
        let (default_seq, default_prefix) = preset.lengths();
        let seq_len = seq_len.unwrap_or(default_seq);
        if seq_len < 2 {
            return Err(SettingsError::TooShort(seq_len));
        }
        if seq_len > config.max_len {
            return Err(SettingsError::TooLong { seq_len, max_len: config.max_len });
        }
        let prefix_len = prefix_len.unwrap_or(default_prefix.min(seq_len - 1));
        if prefix_len == 0 || prefix_len >= seq_len {
            return Err(SettingsError::BadPrefix { prefix_len, max: seq_len - 1 });
        }
        Ok(Settings { preset, config, seq_len, prefix_len })
    }
}

/// The example sequence: an instruction and a text (the prefix), then what a model would write.
const PREFIX_WORDS: [&str; 7] = ["summarize:", "the", "cat", "sat", "on", "the", "mat"];
const TARGET_WORDS: [&str; 4] = ["cat", "on", "mat", "<eos>"];

/// The example's token ids and axis labels (`"3 sat"`): words cycle if the sequence is longer.
pub fn example(settings: &Settings) -> (Vec<u32>, Vec<String>) {
    let word = |i: usize| {
        if i < settings.prefix_len {
            PREFIX_WORDS[i % PREFIX_WORDS.len()]
        } else {
            TARGET_WORDS[(i - settings.prefix_len) % TARGET_WORDS.len()]
        }
    };
    let vocab = settings.config.vocab_size as u32;
    let id = |w: &str| w.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % vocab;
    (0..settings.seq_len).map(|i| (id(word(i)), format!("{i} {}", word(i)))).unzip()
}

fn ids_tensor(ids: &[u32]) -> candle_core::Result<Tensor> {
    Tensor::new(ids, &transformer::DEVICE)?.unsqueeze(0)
}

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
/// Average a `[1, heads, t_q, t_k]` probability tensor over heads; a key that no head may read
/// comes out as exactly 0 (its score was −∞), and is recorded as `None`: a grey cell.
pub fn head_average(probs: &Tensor) -> anyhow::Result<Vec<Vec<Option<f64>>>> {
    let mean = probs.mean(1)?.squeeze(0)?.to_vec2::<f32>()?;
    Ok(mean
        .into_iter()
        .map(|row| row.into_iter().map(|p| (p != 0.0).then_some(f64::from(p))).collect())
        .collect())
}
// ANCHOR_END: read_probs

/// The four families built from one configuration.
pub struct Models {
    /// One decoder-only stack; run with a bidirectional, causal or prefix mask it is BERT's
    /// encoder, GPT's decoder or UniLM's prefix LM.
    pub stack_store: ParamStore,
    pub stack: DecoderOnly,
    /// The L + L encoder-decoder.
    pub ed_store: ParamStore,
    pub ed: EncoderDecoder,
    /// A 2L decoder, for T5's accounting.
    pub deep_store: ParamStore,
    pub deep: DecoderOnly,
}

// ANCHOR: build
impl Models {
    pub fn new(cfg: &Config) -> anyhow::Result<Self> {
        let stack_store = ParamStore::new(SEED);
        let stack = DecoderOnly::new(&stack_store, "stack", cfg)?;
        let ed_store = ParamStore::new(SEED);
        let ed = EncoderDecoder::new(&ed_store, "ed", cfg)?;
        let deep_cfg = Config { n_layers: 2 * cfg.n_layers, ..cfg.clone() };
        let deep_store = ParamStore::new(SEED);
        let deep = DecoderOnly::new(&deep_store, "deep", &deep_cfg)?;
        Ok(Models { stack_store, stack, ed_store, ed, deep_store, deep })
    }
}
// ANCHOR_END: build

/// The decoder-only stack under `mask`, traced.
pub fn run_stack(model: &DecoderOnly, ids: &[u32], mask: &MaskKind) -> anyhow::Result<Output> {
    Ok(model.run(&ids_tensor(ids)?, mask, Forward { cache: None, trace: true })?)
}

/// The encoder-decoder on `src` → `tgt`, traced: encoder layers, then decoder layers.
pub fn run_ed(
    model: &EncoderDecoder,
    src: &[u32],
    tgt: &[u32],
) -> anyhow::Result<(Vec<transformer::model::LayerTrace>, Output)> {
    let (enc, enc_layers) = model.encode(&ids_tensor(src)?, true)?;
    let kv = model.cross_kv(&enc)?;
    let dec = model.decode(&ids_tensor(tgt)?, &kv, Forward { cache: None, trace: true })?;
    Ok((enc_layers, dec))
}

// ANCHOR: attention_maps
/// The six attention maps of the chapter, all from layer 0 of the real models.
pub fn attention_maps(models: &Models, s: &Settings) -> anyhow::Result<Vec<AttentionMap>> {
    let (ids, labels) = example(s);
    let k = s.prefix_len;
    let mut maps = Vec::new();
    let stack_runs = [
        ("encoder_only.svg", "Encoder-only (BERT): bidirectional".to_string(), MaskKind::Bidirectional),
        ("causal.svg", "Decoder-only (GPT): causal".to_string(), MaskKind::Causal),
        ("prefix_lm.svg", format!("Prefix LM (UniLM seq-to-seq mask), prefix {k}"), MaskKind::prefix(k)),
    ];
    for (file, title, mask) in stack_runs {
        let out = run_stack(&models.stack, &ids, &mask)?;
        let probs = head_average(&out.layers[0].attn.probs)?;
        maps.push(AttentionMap { file, title, rows: labels.clone(), cols: labels.clone(), probs });
    }
    let (src, tgt) = (&ids[..k], &ids[k..]);
    let (src_labels, tgt_labels) = (labels[..k].to_vec(), labels[k..].to_vec());
    let (enc_layers, dec) = run_ed(&models.ed, src, tgt)?;
    let cross = dec.layers[0].cross_probs.as_ref().context("the decoder traced no cross-attention")?;
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
        ("ed_cross.svg", "Encoder-decoder: cross-attention", cross, &tgt_labels, &src_labels),
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
/// Count the parameters the model really holds and the FLOPs its matmuls really perform.
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

fn measure_ed(store: &ParamStore, model: &EncoderDecoder, src: &[u32], tgt: &[u32]) -> anyhow::Result<Cost> {
    let (out, flops) = flops::count(|| model.forward(&ids_tensor(src)?, &ids_tensor(tgt)?));
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
    /// Encoder-decoder FLOPs over those of the L decoder on the same tokens (T5: about 1).
    pub flops_ratio_ed_to_l: f64,
    pub flops_ratio_ed_to_2l: f64,
    /// Share of the encoder-decoder's parameters in cross-attention (T5: about 10%).
    pub cross_attention_share: f64,
    /// The same share in percent, for the prose.
    pub cross_attention_percent: f64,
}

/// Which positions a change can reach, for one mask: measured by changing one input token at
/// a time and comparing every position's logits.
#[derive(Debug, Clone)]
pub struct Dependence {
    pub file: &'static str,
    pub title: String,
    /// `effect[i][j]`: largest change of position `i`'s logits when token `j` changes,
    /// divided by row `i`'s largest; `None` when it did not change at all (bit for bit).
    pub effect: Vec<Vec<Option<f64>>>,
}

/// The weight-sharing demonstration: one decoder, two masks.
#[derive(Debug, Clone, Serialize)]
pub struct Sharing {
    /// Parameters of the one model both runs use.
    pub params: usize,
    /// Per layer (1-based, the last is the logits): positions whose output differs between the
    /// causal and the prefix run.
    pub changed_after_layer: Vec<Vec<usize>>,
    /// Positions whose mask row is the same under both masks (from `k − 1` on).
    pub same_mask_rows: usize,
    /// The first of them, `k − 1` (0-based): the last prefix token.
    pub first_same_row: usize,
    /// Positions whose output changed after layer 1, and in the logits.
    pub changed_after_layer1: usize,
    pub changed_in_logits: usize,
    /// Largest change after layer 1 at a position whose mask row is the same (exactly 0).
    pub same_rows_max_diff_layer1: f64,
    /// Largest difference in the logits between the two runs.
    pub max_logit_diff: f64,
    /// Number of (output, input) pairs that can influence each other under each mask.
    pub reachable_causal: usize,
    pub reachable_prefix: usize,
    /// Whether those pairs are exactly the pairs the mask allows.
    pub reach_equals_mask: bool,
    #[serde(skip)]
    pub rows: Vec<SharingRow>,
    #[serde(skip)]
    pub dependence: Vec<Dependence>,
}

/// One row of the sharing table: one position.
#[derive(Debug, Clone)]
pub struct SharingRow {
    pub label: String,
    pub mask_row_differs: bool,
    pub diff_per_layer: Vec<f64>,
}

fn max_abs_diff_per_position(a: &Tensor, b: &Tensor) -> anyhow::Result<Vec<f64>> {
    let d = (a - b)?.abs()?.squeeze(0)?.max(1)?.to_vec1::<f32>()?;
    Ok(d.into_iter().map(f64::from).collect())
}

// ANCHOR: sharing
/// Run the same decoder under the causal and the prefix mask and compare, layer by layer.
pub fn sharing(models: &Models, s: &Settings) -> anyhow::Result<Sharing> {
    let (ids, labels) = example(s);
    let (n, k) = (s.seq_len, s.prefix_len);
    let prefix = MaskKind::prefix(k);
    let causal = run_stack(&models.stack, &ids, &MaskKind::Causal)?;
    let non_causal = run_stack(&models.stack, &ids, &prefix)?;
    // The output of layer l is the input of layer l + 1; the last "layer" is the logits.
    let mut outputs = Vec::new();
    for l in 1..causal.layers.len() {
        outputs.push((causal.layers[l].input.clone(), non_causal.layers[l].input.clone()));
    }
    outputs.push((causal.logits.clone(), non_causal.logits.clone()));
    let diffs: Vec<Vec<f64>> =
        outputs.iter().map(|(a, b)| max_abs_diff_per_position(a, b)).collect::<anyhow::Result<_>>()?;
    let changed_after_layer: Vec<Vec<usize>> =
        diffs.iter().map(|d| (0..n).filter(|&i| d[i] != 0.0).collect()).collect();
    let row_differs = |i: usize| (0..n).any(|j| MaskKind::Causal.allows(0, i, j) != prefix.allows(0, i, j));
    let same_rows_max_diff_layer1 =
        (0..n).filter(|&i| !row_differs(i)).map(|i| diffs[0][i]).fold(0.0, f64::max);
    let max_logit_diff = diffs.last().map_or(0.0, |d| d.iter().copied().fold(0.0, f64::max));
    let rows = (0..n)
        .map(|i| SharingRow {
            label: labels[i].clone(),
            mask_row_differs: row_differs(i),
            diff_per_layer: diffs.iter().map(|d| d[i]).collect(),
        })
        .collect();
    let mut dependence = Vec::new();
    let mut reachable = Vec::new();
    let mut reach_equals_mask = true;
    for (file, name, mask) in
        [("reach_causal.svg", "causal", MaskKind::Causal), ("reach_prefix.svg", "prefix", prefix.clone())]
    {
        let effect = reach(&models.stack, &ids, &mask)?;
        let count = effect.iter().flatten().filter(|e| e.is_some()).count();
        reach_equals_mask &= (0..n).all(|i| (0..n).all(|j| effect[i][j].is_some() == mask.allows(0, i, j)));
        reachable.push(count);
        let title = format!("Which outputs a token can change: {name} mask, same weights");
        dependence.push(Dependence { file, title, effect });
    }
    Ok(Sharing {
        params: models.stack_store.num_params(),
        same_mask_rows: (0..n).filter(|&i| !row_differs(i)).count(),
        first_same_row: (0..n).find(|&i| !row_differs(i)).unwrap_or(n),
        changed_after_layer1: changed_after_layer[0].len(),
        changed_in_logits: changed_after_layer.last().map_or(0, Vec::len),
        changed_after_layer,
        same_rows_max_diff_layer1,
        max_logit_diff,
        reachable_causal: reachable[0],
        reachable_prefix: reachable[1],
        reach_equals_mask,
        rows,
        dependence,
    })
}

/// Change token `j` (to the next id) and record how much each position's logits move.
pub fn reach(model: &DecoderOnly, ids: &[u32], mask: &MaskKind) -> anyhow::Result<Vec<Vec<Option<f64>>>> {
    let n = ids.len();
    let vocab = model.cfg.vocab_size as u32;
    let base = model.forward(&ids_tensor(ids)?, mask)?;
    let mut effect = vec![vec![None; n]; n];
    for j in 0..n {
        let mut changed = ids.to_vec();
        changed[j] = (changed[j] + 1) % vocab;
        let diff = max_abs_diff_per_position(&base, &model.forward(&ids_tensor(&changed)?, mask)?)?;
        for i in 0..n {
            effect[i][j] = (diff[i] != 0.0).then_some(diff[i]);
        }
    }
    for row in &mut effect {
        let top = row.iter().flatten().copied().fold(0.0, f64::max);
        for e in row.iter_mut().flatten() {
            *e /= top;
        }
    }
    Ok(effect)
}
// ANCHOR_END: sharing

/// Everything the page quotes, rounded for display; written to `results.json` and snapshotted.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub model: ModelShape,
    pub families: Vec<Family>,
    pub t5: T5Accounting,
    pub sharing: Sharing,
    /// Allowed (query, key) pairs per attention map, read from the models' probabilities.
    pub allowed_pairs: Vec<(String, usize)>,
}

/// The shape every family shares, for the prose.
#[derive(Debug, Clone, Serialize)]
pub struct ModelShape {
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub source_len: usize,
    pub target_len: usize,
}

/// The chapter's outputs: the report, the figures and the tables.
pub struct Chapter {
    pub report: Report,
    pub maps: Vec<AttentionMap>,
    pub tables: Vec<(&'static str, String)>,
}

// ANCHOR: families
/// Measure the four families (and the 2L decoder) on the example.
pub fn families(models: &Models, s: &Settings) -> anyhow::Result<(Vec<Family>, T5Accounting)> {
    let (ids, _) = example(s);
    let (src, tgt) = ids.split_at(s.prefix_len);
    let stack = |mask| measure_stack(&models.stack_store, &models.stack, &ids, &mask);
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
            attention: "bidirectional encoder; causal decoder; decoder reads the encoder (cross)",
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
    let deep = measure_stack(&models.deep_store, &models.deep, &ids, &MaskKind::Causal)?;
    let (causal, ed) = (&families[2].cost, &families[1].cost);
    let cfg = &s.config;
    let cross = cfg.n_layers * (cfg.cross_attention_params() + cfg.layer_norm_params());
    let t5 = T5Accounting {
        layers: cfg.n_layers,
        params_decoder_l: causal.params,
        params_decoder_2l: deep.params,
        params_encoder_decoder: ed.params,
        params_ratio_ed_to_2l: round(ed.params as f64 / deep.params as f64, 3),
        flops_decoder_l: causal.flops,
        flops_decoder_2l: deep.flops,
        flops_encoder_decoder: ed.flops,
        flops_ratio_ed_to_l: round(ed.flops as f64 / causal.flops as f64, 3),
        flops_ratio_ed_to_2l: round(ed.flops as f64 / deep.flops as f64, 3),
        cross_attention_share: round(cross as f64 / ed.params as f64, 3),
        cross_attention_percent: round(100.0 * cross as f64 / ed.params as f64, 1),
    };
    Ok((families, t5))
}
// ANCHOR_END: families

/// The families table, in Markdown.
pub fn families_table(families: &[Family], s: &Settings) -> String {
    let mut t = format!(
        "| Family | Examples | Attention | Usual pretraining objective | Generates left to right? | \
         Parameters | Forward FLOPs per token ({} tokens) |\n|---|---|---|---|---|---:|---:|\n",
        s.seq_len
    );
    for f in families {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            f.name,
            f.examples,
            f.attention,
            f.objective,
            f.generates_left_to_right,
            thousands(f.cost.params as u64),
            thousands(f.cost.flops_per_token.round() as u64),
        ));
    }
    t
}

/// T5's accounting, in Markdown.
pub fn t5_table(t5: &T5Accounting, s: &Settings) -> String {
    let l = t5.layers;
    let (src, tgt) = (s.prefix_len, s.seq_len - s.prefix_len);
    let mut t = format!(
        "| Model | Layers | Parameters | Forward FLOPs on {src} input + {tgt} output tokens |\n|---|---|---:|---:|\n"
    );
    let rows = [
        (format!("Decoder-only, {l} layers"), format!("{l}"), t5.params_decoder_l, t5.flops_decoder_l),
        (
            format!("Decoder-only, {} layers", 2 * l),
            format!("{}", 2 * l),
            t5.params_decoder_2l,
            t5.flops_decoder_2l,
        ),
        (
            "Encoder-decoder".to_string(),
            format!("{l} + {l}"),
            t5.params_encoder_decoder,
            t5.flops_encoder_decoder,
        ),
    ];
    for (name, layers, p, f) in rows {
        t.push_str(&format!("| {name} | {layers} | {} | {} |\n", thousands(p as u64), thousands(f)));
    }
    t
}

/// The sharing table: per position, whether its mask row differs and how far its outputs moved.
pub fn sharing_table(sh: &Sharing) -> String {
    let layers = sh.rows.first().map_or(0, |r| r.diff_per_layer.len());
    let mut t = String::from("| Position | Mask row differs? |");
    for l in 1..layers {
        t.push_str(&format!(" Max change after layer {l} |"));
    }
    t.push_str(" Max change in the logits |\n|---|---|");
    t.push_str(&"---:|".repeat(layers));
    t.push('\n');
    for r in &sh.rows {
        t.push_str(&format!("| {} | {} |", r.label, if r.mask_row_differs { "yes" } else { "no" }));
        for d in &r.diff_per_layer {
            if *d == 0.0 {
                t.push_str(" 0 (identical) |");
            } else if *d >= 0.01 {
                t.push_str(&format!(" {d:.3} |"));
            } else {
                t.push_str(&format!(" {d:.1e} |"));
            }
        }
        t.push('\n');
    }
    t
}

/// Run the whole chapter.
pub fn run(s: &Settings) -> anyhow::Result<Chapter> {
    let models = Models::new(&s.config)?;
    let maps = attention_maps(&models, s)?;
    let (families, t5) = families(&models, s)?;
    let mut sharing = sharing(&models, s)?;
    sharing.same_rows_max_diff_layer1 = round(sharing.same_rows_max_diff_layer1, 6);
    sharing.max_logit_diff = round(sharing.max_logit_diff, 4);
    let mut families = families;
    for f in &mut families {
        f.cost.flops_per_token = round(f.cost.flops_per_token, 1);
    }
    let tables = vec![
        ("families.md", families_table(&families, s)),
        ("t5_accounting.md", t5_table(&t5, s)),
        ("sharing.md", sharing_table(&sharing)),
    ];
    let allowed_pairs = maps
        .iter()
        .map(|m| (m.file.trim_end_matches(".svg").to_string(), m.probs.iter().flatten().flatten().count()))
        .collect();
    let cfg = &s.config;
    let model = ModelShape {
        vocab_size: cfg.vocab_size,
        d_model: cfg.d_model,
        n_heads: cfg.n_heads,
        d_ff: cfg.d_ff,
        n_layers: cfg.n_layers,
        source_len: s.prefix_len,
        target_len: s.seq_len - s.prefix_len,
    };
    let report = Report { settings: s.clone(), model, families, t5, sharing, allowed_pairs };
    Ok(Chapter { report, maps, tables })
}

/// Write `results.json`, the figures and the tables into `out`, atomically.
pub fn write(chapter: &Chapter, out: &Path) -> anyhow::Result<()> {
    for m in &chapter.maps {
        Heatmap {
            title: &m.title,
            rows: &m.rows,
            cols: &m.cols,
            values: &m.probs,
            x_label: "key (attended to)",
            y_label: "query (attending)",
        }
        .save(&out.join(m.file))?;
    }
    for d in &chapter.report.sharing.dependence {
        let (_, labels) = example(&chapter.report.settings);
        Heatmap {
            title: &d.title,
            rows: &labels,
            cols: &labels,
            values: &d.effect,
            x_label: "input token changed",
            y_label: "output position",
        }
        .save(&out.join(d.file))?;
    }
    for (file, text) in &chapter.tables {
        transformer::io::write_text(&out.join(file), text)?;
    }
    transformer::io::write_json(&out.join("results.json"), &results_json(&chapter.report))
}

/// The report as the JSON the book's `{{#value ch01.…}}` reads: lists of pairs become maps.
pub fn results_json(report: &Report) -> serde_json::Value {
    let mut v = serde_json::to_value(report).expect("the report serialises");
    let allowed: serde_json::Map<String, serde_json::Value> =
        report.allowed_pairs.iter().map(|(k, n)| (k.clone(), (*n).into())).collect();
    v["allowed_pairs"] = allowed.into();
    let families: serde_json::Map<String, serde_json::Value> = report
        .families
        .iter()
        .zip(["encoder_only", "encoder_decoder", "causal", "prefix_lm"])
        .map(|(f, key)| (key.to_string(), serde_json::to_value(&f.cost).expect("serialises")))
        .collect();
    v["families"] = families.into();
    v
}
