//! all-MiniLM-L6-v2 as a BERT encoder (Devlin et al., 2018, arXiv:1810.04805):
//! every token attends to every other token (no causal mask; only padding is
//! masked), each block is post-LayerNorm (`LN(x + Attn(x))`, then `LN(h +
//! FFN(h))`), the feed-forward uses the erf GELU, and the input is word + learned
//! position + token-type embeddings. A sentence embedding is the mean of the last
//! layer's token vectors over real (non-padding) tokens, L2-normalised, as in
//! Sentence-BERT (Reimers & Gurevych, 2019, arXiv:1908.10084).

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, Module, VarBuilder};
use serde::Deserialize;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::HeadTrace;
use crate::error::{Error, Result};

/// The fields of a Hugging Face BERT `config.json` this encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Read and check a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("reading", path, e))?;
        let origin = path.display().to_string();
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| Error::config(&origin, e.to_string()))?;
        config.check(&origin)?;
        Ok(config)
    }

    /// Reject what this encoder does not implement, instead of computing something
    /// else.
    pub fn check(&self, origin: &str) -> Result<()> {
        let bad = |m: String| Err(Error::config(origin, m));
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.max_position_embeddings < 4 {
            return bad(format!(
                "max_position_embeddings {} is too small (at least 4)",
                self.max_position_embeddings
            ));
        }
        if self.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act `{}` is not supported (only `gelu`)",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type `{}` is not supported (only `absolute`)",
                self.position_embedding_type
            ));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The input layer: word + learned absolute position + token-type (segment)
/// embeddings, then LayerNorm.
pub struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    max_positions: usize,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(Self {
            word: candle_nn::embedding(c.vocab_size, d, vb.pp("word_embeddings"))?,
            position: candle_nn::embedding(
                c.max_position_embeddings,
                d,
                vb.pp("position_embeddings"),
            )?,
            token_type: candle_nn::embedding(
                c.type_vocab_size,
                d,
                vb.pp("token_type_embeddings"),
            )?,
            norm: candle_nn::layer_norm(d, c.layer_norm_eps, vb.pp("LayerNorm"))?,
            max_positions: c.max_position_embeddings,
        })
    }

    /// `ids`, `type_ids`: `[batch, time]` u32. Returns `[batch, time, hidden]`.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        if t > self.max_positions {
            return Err(Error::config(
                "input",
                format!(
                    "{t} tokens exceed the {} learned positions",
                    self.max_positions
                ),
            ));
        }
        let positions =
            Tensor::arange(0u32, t as u32, ids.device())?.unsqueeze(0)?;
        let x = self
            .word
            .forward(ids)?
            .add(&self.token_type.forward(type_ids)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        Ok(self.norm.forward(&x)?)
    }
}

/// Multi-head self-attention with no causal mask: every position reads every real
/// position.
pub struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    n_heads: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let d = c.hidden_size;
        let projection = |name| candle_nn::linear(d, d, vb.pp(name));
        Ok(Self {
            query: projection("query")?,
            key: projection("key")?,
            value: projection("value")?,
            n_heads: c.num_attention_heads,
            head_dim: c.head_dim(),
        })
    }

    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, self.n_heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// `x`: `[batch, time, hidden]`; `additive_mask`: `[batch, 1, 1, time]`, 0 for
    /// real tokens and a large negative number for padding. Returns the heads'
    /// outputs concatenated, and also each head's attention logits `Q Kᵀ / √d_h`
    /// before the padding mask, `[batch, heads, time, time]`, and its values `V`,
    /// `[batch, heads, time, head_dim]`.
    pub fn forward_traced(
        &self,
        x: &Tensor,
        additive_mask: &Tensor,
    ) -> Result<(Tensor, HeadTrace)> {
        let (b, t, d) = x.dims3()?;
        let q = self.split_heads(&self.query.forward(x)?)?;
        let k = self.split_heads(&self.key.forward(x)?)?;
        let v = self.split_heads(&self.value.forward(x)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let logits = (q.matmul(&k.t()?)? * scale)?;
        let probs = candle_nn::ops::softmax_last_dim(
            &logits.broadcast_add(additive_mask)?,
        )?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        Ok((out, HeadTrace { logits, values: v }))
    }
}

/// The position-wise feed-forward network: `W2 GELU(W1 x + b1) + b2`, with the
/// exact (erf) GELU.
pub struct FeedForward {
    intermediate: Linear,
    output: Linear,
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.output.forward(&self.intermediate.forward(x)?.gelu_erf()?)
    }
}

/// One post-LayerNorm encoder block: `h = LN(x + Wo Attn(x))`, `y = LN(h +
/// FFN(h))`.
pub struct EncoderLayer {
    attention: SelfAttention,
    attention_out: Linear,
    attention_norm: LayerNorm,
    ffn: FeedForward,
    ffn_norm: LayerNorm,
}

impl EncoderLayer {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let (d, f, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let att = vb.pp("attention");
        Ok(Self {
            attention: SelfAttention::load(att.pp("self"), c)?,
            attention_out: candle_nn::linear(d, d, att.pp("output.dense"))?,
            attention_norm: candle_nn::layer_norm(
                d,
                eps,
                att.pp("output.LayerNorm"),
            )?,
            ffn: FeedForward {
                intermediate: candle_nn::linear(d, f, vb.pp("intermediate.dense"))?,
                output: candle_nn::linear(f, d, vb.pp("output.dense"))?,
            },
            ffn_norm: candle_nn::layer_norm(d, eps, vb.pp("output.LayerNorm"))?,
        })
    }

    /// `x` and `additive_mask` as [`SelfAttention::forward_traced`] reads them.
    /// Returns the block's output and the attention's [`HeadTrace`].
    pub fn forward_traced(
        &self,
        x: &Tensor,
        additive_mask: &Tensor,
    ) -> Result<(Tensor, HeadTrace)> {
        let (attended, trace) = self.attention.forward_traced(x, additive_mask)?;
        let a = self.attention_out.forward(&attended)?;
        let h = self.attention_norm.forward(&(x + a)?)?;
        let y = self.ffn_norm.forward(&(&h + self.ffn.forward(&h)?)?)?;
        Ok((y, trace))
    }
}

/// The BERT encoder: embeddings and a stack of bidirectional blocks (the pooler is
/// not used).
pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
    pub config: BertConfig,
}

impl BertModel {
    /// Build from Hugging Face tensor names (`embeddings.*`, `encoder.layer.N.*`,
    /// with or without a leading `bert.`).
    pub fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let embeddings = Embeddings::load(vb.pp("embeddings"), config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                EncoderLayer::load(vb.pp(format!("encoder.layer.{i}")), config)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings, layers, config: config.clone() })
    }

    /// `ids`, `type_ids`, `mask`: `[batch, time]` u32 (`mask` 1 for real tokens, 0
    /// for padding). Returns the last layer's token vectors, `[batch, time,
    /// hidden]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        Ok(self.forward_traced(ids, type_ids, mask)?.0)
    }

    /// As [`BertModel::forward`], and also every layer's [`HeadTrace`], first layer
    /// first.
    pub fn forward_traced(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, Vec<HeadTrace>)> {
        let additive = padding_mask(mask)?;
        let mut x = self.embeddings.forward(ids, type_ids)?;
        let mut traces = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (y, trace) = layer.forward_traced(&x, &additive)?;
            x = y;
            traces.push(trace);
        }
        Ok((x, traces))
    }
}

/// `[batch, time]` of 1/0 to an additive `[batch, 1, 1, time]` mask: 0 or -1e9.
fn padding_mask(mask: &Tensor) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let m = mask.to_dtype(DType::F32)?;
    let additive = ((m - 1.0)? * 1e9)?;
    Ok(additive.reshape((b, 1, 1, t))?)
}

/// Mean of the token vectors over real tokens: `sum_t m_t h_t / sum_t m_t`.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
    let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    Ok(sum.broadcast_div(&count)?)
}

/// Divide each row by its Euclidean norm.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// A sentence encoder: the tokenizer, the BERT encoder, mean pooling and L2
/// normalisation.
pub struct SentenceEncoder {
    pub model: BertModel,
    pub tokenizer: Tokenizer,
    device: Device,
}

/// Longest input, in tokens, as in all-MiniLM-L6-v2's `sentence_bert_config.json`.
pub const MAX_TOKENS: usize = 256;

impl SentenceEncoder {
    /// Load from a folder holding `config.json`, `tokenizer.json` and
    /// `model.safetensors`.
    pub fn load(dir: &Path) -> Result<Self> {
        let [config, tokenizer, weights] =
            ["config.json", "tokenizer.json", "model.safetensors"]
                .map(|f| dir.join(f));
        for p in [&config, &tokenizer, &weights] {
            if !p.is_file() {
                return Err(Error::NotFetched { path: p.clone() });
            }
        }
        let config = BertConfig::from_file(&config)?;
        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped read-only; it must not be modified
        // while loaded, which holds for the extracted model files (nothing writes
        // them after the fetch).
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)?
        };
        let model = BertModel::load(vb, &config)?;
        let tokenizer =
            batch_tokenizer(&tokenizer, config.max_position_embeddings)?;
        Ok(Self { model, tokenizer, device })
    }

    /// Normalised sentence embeddings, `[n, hidden]`.
    pub fn embed(&self, sentences: &[&str]) -> Result<Tensor> {
        let enc = self
            .tokenizer
            .encode_batch(sentences.to_vec(), true)
            .map_err(Error::tokenizer)?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor> {
            let v: Vec<Tensor> = enc
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<candle_core::Result<_>>()?;
            Ok(Tensor::stack(&v, 0)?)
        };
        let ids = rows(&|e| e.get_ids())?;
        let type_ids = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let hidden = self.model.forward(&ids, &type_ids, &mask)?;
        l2_normalize(&mean_pool(&hidden, &mask)?)
    }

    /// Normalised sentence embeddings as plain vectors.
    pub fn embed_vecs(&self, sentences: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed(sentences)?.to_vec2::<f32>()?)
    }
}

/// The `tokenizer.json`, padding a batch to its longest member and truncating long
/// inputs.
fn batch_tokenizer(path: &Path, max_positions: usize) -> Result<Tokenizer> {
    let mut tok = Tokenizer::from_file(path).map_err(Error::tokenizer)?;
    let padding = tok.get_padding().cloned().unwrap_or_default();
    tok.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..padding
    }));
    let max_length = MAX_TOKENS.min(max_positions);
    tok.with_truncation(Some(TruncationParams {
        max_length,
        ..Default::default()
    }))
    .map_err(Error::tokenizer)?;
    Ok(tok)
}
