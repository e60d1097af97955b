//! The code: one configuration, the models built from it, and the example they
//! read.

use candle_core::Tensor;
use transformer::config::Config;
use transformer::model::{
    DecoderOnly, EncoderDecoder, Forward, LayerTrace, Output,
};
use transformer::{MaskKind, ParamStore};

use crate::settings::{SEED, Settings};

/// The example sequence: an instruction and a text (the prefix), then what a model
/// would write.
const PREFIX_WORDS: [&str; 7] =
    ["summarize:", "the", "cat", "sat", "on", "the", "mat"];
const TARGET_WORDS: [&str; 4] = ["cat", "on", "mat", "<eos>"];

/// The example's token ids and axis labels (`"3 sat"`): words cycle if the sequence
/// is longer.
pub fn example(settings: &Settings) -> (Vec<u32>, Vec<String>) {
    let word = |i: usize| {
        if i < settings.prefix_len {
            PREFIX_WORDS[i % PREFIX_WORDS.len()]
        } else {
            TARGET_WORDS[(i - settings.prefix_len) % TARGET_WORDS.len()]
        }
    };
    let vocab = settings.config.vocab_size as u32;
    let id = |w: &str| {
        w.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % vocab
    };
    (0..settings.seq_len).map(|i| (id(word(i)), format!("{i} {}", word(i)))).unzip()
}

pub(crate) fn ids_tensor(ids: &[u32]) -> candle_core::Result<Tensor> {
    Tensor::new(ids, &transformer::DEVICE)?.unsqueeze(0)
}

/// The four families built from one configuration.
pub struct Models {
    /// One decoder-only stack; run with a bidirectional, causal or prefix mask it
    /// is BERT's encoder, GPT's decoder or UniLM's prefix LM.
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
        let stack = DecoderOnly::new(cfg, stack_store.vb().pp("stack"))?;
        let ed_store = ParamStore::new(SEED);
        let ed = EncoderDecoder::new(cfg, ed_store.vb().pp("ed"))?;
        let deep_cfg = Config { n_layers: 2 * cfg.n_layers, ..cfg.clone() };
        let deep_store = ParamStore::new(SEED);
        let deep = DecoderOnly::new(&deep_cfg, deep_store.vb().pp("deep"))?;
        Ok(Models { stack_store, stack, ed_store, ed, deep_store, deep })
    }
}
// ANCHOR_END: build

/// The decoder-only stack under `mask`, traced.
pub fn run_stack(
    model: &DecoderOnly,
    ids: &[u32],
    mask: &MaskKind,
) -> anyhow::Result<Output> {
    Ok(model.run(&ids_tensor(ids)?, mask, Forward { cache: None, trace: true })?)
}

/// The encoder-decoder on `src` → `tgt`, traced: encoder layers, then decoder
/// layers.
pub fn run_ed(
    model: &EncoderDecoder,
    src: &[u32],
    tgt: &[u32],
) -> anyhow::Result<(Vec<LayerTrace>, Output)> {
    let (enc, enc_layers) = model.encode(&ids_tensor(src)?, true)?;
    let kv = model.cross_kv(&enc)?;
    let dec = model.decode(
        &ids_tensor(tgt)?,
        &kv,
        Forward { cache: None, trace: true },
    )?;
    Ok((enc_layers, dec))
}
