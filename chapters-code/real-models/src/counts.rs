//! Chapter 1: how many parameters each real model has, counted in its file and
//! predicted from its configuration with the formulas the book derives.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use candle_core::quantized::gguf_file::Content;
use serde::Serialize;

use crate::bert::BertConfig;
use crate::fetch::{MINILM, SMOLLM2, SMOLLM2_GGUF};
use crate::llama::LlamaConfig;

/// One part of a model: its parameter count from the formula and from the file.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    pub part: &'static str,
    pub formula: String,
    pub predicted: usize,
    pub in_file: usize,
}

/// A model's parameters, part by part.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub model: &'static str,
    pub parts: Vec<Part>,
    pub predicted: usize,
    pub in_file: usize,
    /// The configuration the formulas use: `d`, `f`, `L`, `V`, ... by name.
    pub dims: BTreeMap<&'static str, usize>,
    /// Parameters of one attention sublayer (projections only), and what the
    /// book's `4d² + 4d` gives at the same `d`.
    pub attention_per_layer: usize,
    pub attention_4d2_4d: usize,
    /// The bias-free part `4d²`, and what grouped-query attention saves of it
    /// (`2d (h − g) d_h`; zero without it).
    pub attention_4d2: usize,
    pub attention_gqa_saving: usize,
}

impl Count {
    fn new(
        model: &'static str,
        parts: Vec<Part>,
        dims: BTreeMap<&'static str, usize>,
        attention_per_layer: usize,
        gqa_saving: usize,
    ) -> Self {
        let d = dims["d"];
        Count {
            model,
            predicted: parts.iter().map(|p| p.predicted).sum(),
            in_file: parts.iter().map(|p| p.in_file).sum(),
            parts,
            dims,
            attention_per_layer,
            attention_4d2_4d: 4 * d * d + 4 * d,
            attention_4d2: 4 * d * d,
            attention_gqa_saving: gqa_saving,
        }
    }
}

/// Parameter counts of the tensors in a file, summed by the part each name
/// belongs to; a tensor no part claims is an error (nothing is left uncounted).
fn by_part(
    tensors: &[(String, usize)],
    part_of: impl Fn(&str) -> Option<&'static str>,
) -> anyhow::Result<BTreeMap<&'static str, usize>> {
    let mut sums = BTreeMap::new();
    for (name, n) in tensors {
        let part =
            part_of(name).with_context(|| format!("unexpected tensor `{name}`"))?;
        *sums.entry(part).or_insert(0) += n;
    }
    Ok(sums)
}

/// all-MiniLM-L6-v2: word, position and token-type embeddings and their
/// LayerNorm; per layer the four `d × d` projections with biases, the
/// feed-forward `d → f → d` with biases, two LayerNorms; the pooler if present.
pub fn bert(dir: &Path) -> anyhow::Result<Count> {
    let c = BertConfig::from_file(&MINILM.file(dir, "config.json"))?;
    let weights = MINILM.file(dir, "model.safetensors");
    // Only the header is read: the shapes, not the weights.
    // SAFETY: the file is memory-mapped read-only and nothing writes the extracted
    // model files after the fetch.
    let file =
        unsafe { candle_core::safetensors::MmapedSafetensors::new(&weights) }
            .with_context(|| format!("reading {}", weights.display()))?;
    // `position_ids` is a stored index buffer (0, 1, 2, ...), not a parameter.
    let tensors: Vec<(String, usize)> = file
        .tensors()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("position_ids"))
        .map(|(k, t)| (k, t.shape().iter().product()))
        .collect();
    let file = by_part(&tensors, |name| {
        let name = name.strip_prefix("bert.").unwrap_or(name);
        Some(if name.starts_with("embeddings.") {
            "embeddings"
        } else if name.starts_with("pooler.") {
            "pooler"
        } else if name.contains(".attention.") {
            "attention"
        } else if name.contains(".intermediate.") || name.contains(".output.") {
            "feed-forward"
        } else {
            return None;
        })
    })?;
    let (d, f, l) = (c.hidden_size, c.intermediate_size, c.num_hidden_layers);
    let (v, p, t) = (c.vocab_size, c.max_position_embeddings, c.type_vocab_size);
    let attention = 4 * d * d + 4 * d;
    let mut parts = vec![
        Part {
            part: "embeddings",
            formula: "(V + P + T) d + 2d".into(),
            predicted: (v + p + t) * d + 2 * d,
            in_file: file.get("embeddings").copied().unwrap_or(0),
        },
        Part {
            part: "attention",
            formula: "L (4d² + 4d + 2d)".into(),
            predicted: l * (attention + 2 * d),
            in_file: file.get("attention").copied().unwrap_or(0),
        },
        Part {
            part: "feed-forward",
            formula: "L (2df + f + d + 2d)".into(),
            predicted: l * (2 * d * f + f + 3 * d),
            in_file: file.get("feed-forward").copied().unwrap_or(0),
        },
    ];
    if let Some(&pooler) = file.get("pooler") {
        parts.push(Part {
            part: "pooler",
            formula: "d² + d".into(),
            predicted: d * d + d,
            in_file: pooler,
        });
    }
    let dims = [("d", d), ("f", f), ("L", l), ("V", v), ("P", p), ("T", t)];
    Ok(Count::new("encoder", parts, dims.into_iter().collect(), attention, 0))
}

// ANCHOR: llama_count
/// SmolLM2-135M: token embeddings (shared with the output layer when the file has
/// no `output.weight`); per layer the query and output projections (`d × h d_h`),
/// the key and value projections of the `g` shared heads (`d × g d_h`), no
/// biases, a SwiGLU feed-forward of three `d × f` matrices, two RMSNorm gains; and
/// the final RMSNorm.
pub fn llama(dir: &Path) -> anyhow::Result<Count> {
    let path = SMOLLM2.file(dir, SMOLLM2_GGUF);
    let mut file = std::fs::File::open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let content = Content::read(&mut file)
        .with_context(|| format!("reading {}", path.display()))?;
    let c = LlamaConfig::from_gguf(&content)?;
    let tensors: Vec<(String, usize)> = content
        .tensor_infos
        .iter()
        .map(|(k, info)| (k.clone(), info.shape.elem_count()))
        .collect();
    let tied = !content.tensor_infos.contains_key("output.weight");
    let in_file = by_part(&tensors, |name| {
        Some(if name == "token_embd.weight" || name == "output.weight" {
            "embeddings"
        } else if name == "output_norm.weight" {
            "final norm"
        } else if name.contains(".attn_") {
            "attention"
        } else if name.contains(".ffn_") {
            "feed-forward"
        } else {
            return None;
        })
    })?;
    let (d, f, l, v) = (c.d_model, c.ffn_dim, c.n_layers, c.vocab_size);
    let (q, kv) = (c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
    if !tied {
        bail!(
            "{}: an untied output layer is not what this count expects",
            path.display()
        );
    }
    let attention = 2 * d * q + 2 * d * kv;
    let part = |part, formula: &str, predicted| Part {
        part,
        formula: formula.into(),
        predicted,
        in_file: in_file.get(part).copied().unwrap_or(0),
    };
    let parts = vec![
        part("embeddings", "V d (tied)", v * d),
        part("attention", "L (2d h d_h + 2d g d_h + d)", l * (attention + d)),
        part("feed-forward", "L (3df + d)", l * (3 * d * f + d)),
        part("final norm", "d", d),
    ];
    let dims = [
        ("d", d),
        ("f", f),
        ("L", l),
        ("V", v),
        ("h", c.n_heads),
        ("g", c.n_kv_heads),
        ("d_h", c.head_dim),
    ];
    let saving = 2 * d * (c.n_heads - c.n_kv_heads) * c.head_dim;
    Ok(Count::new("decoder", parts, dims.into_iter().collect(), attention, saving))
}
// ANCHOR_END: llama_count
