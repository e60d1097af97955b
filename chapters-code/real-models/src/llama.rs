//! SmolLM2 as a Llama decoder (Touvron et al., 2023, arXiv:2302.13971): pre-norm
//! blocks with RMSNorm, rotary position embeddings (RoPE, Su et al., 2021,
//! arXiv:2104.09864) on queries and keys, a SwiGLU feed-forward (Shazeer, 2020,
//! arXiv:2002.05202), grouped-query attention (Ainslie et al., 2023,
//! arXiv:2305.13245: several query heads share one key/value head), a causal mask,
//! and a key/value cache so that each new token costs one position, not the whole
//! prefix. Weights come from a GGUF file, dequantised to f32.

use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Embedding, Linear, Module, RmsNorm};

use transformer::attention::KvCache;

use crate::HeadTrace;
use crate::error::{Error, Result};

const ORIGIN: &str = "GGUF metadata";

/// The hyper-parameters a Llama GGUF records under `llama.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    pub rope_base: f32,
    pub rms_eps: f64,
}

/// A metadata value, or a clear error naming the key.
pub fn metadata<'a>(content: &'a Content, key: &str) -> Result<&'a Value> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| Error::config(ORIGIN, format!("missing key `{key}`")))
}

/// A metadata string, or an error from `origin` if the value is not one.
pub fn metadata_string<'a>(
    content: &'a Content,
    key: &str,
    origin: &str,
) -> Result<&'a str> {
    metadata(content, key)?
        .to_string()
        .map(String::as_str)
        .map_err(|e| Error::config(origin, e.to_string()))
}

fn md_usize(content: &Content, key: &str) -> Result<usize> {
    let v = metadata(content, key)?;
    let n = v.to_u64().or_else(|_| v.to_u32().map(u64::from)).or_else(|_| {
        v.to_i32().and_then(|i| {
            u64::try_from(i).map_err(|e| candle_core::Error::Msg(e.to_string()))
        })
    });
    n.map(|n| n as usize)
        .map_err(|e| Error::config(ORIGIN, format!("`{key}`: {e}")))
}

fn md_f32(content: &Content, key: &str) -> Result<f32> {
    let v = metadata(content, key)?;
    v.to_f32()
        .or_else(|_| v.to_f64().map(|x| x as f32))
        .map_err(|e| Error::config(ORIGIN, format!("`{key}`: {e}")))
}

impl LlamaConfig {
    /// Read the `llama.*` keys; the architecture must be `llama`.
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let arch = metadata_string(content, "general.architecture", ORIGIN)?;
        if arch != "llama" {
            return Err(Error::config(
                ORIGIN,
                format!("architecture `{arch}` is not `llama`"),
            ));
        }
        let k = |s: &str| format!("llama.{s}");
        let n_heads = md_usize(content, &k("attention.head_count"))?;
        let d_model = md_usize(content, &k("embedding_length"))?;
        let n_kv_heads = match content.metadata.get(&k("attention.head_count_kv")) {
            Some(_) => md_usize(content, &k("attention.head_count_kv"))?,
            None => n_heads,
        };
        let vocab_size = match content.metadata.get(&k("vocab_size")) {
            Some(_) => md_usize(content, &k("vocab_size"))?,
            None => token_list(content)?.len(),
        };
        let rope_base = match content.metadata.get(&k("rope.freq_base")) {
            Some(_) => md_f32(content, &k("rope.freq_base"))?,
            None => 10_000.0,
        };
        let c = Self {
            n_layers: md_usize(content, &k("block_count"))?,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim: d_model.checked_div(n_heads).unwrap_or(0),
            ffn_dim: md_usize(content, &k("feed_forward_length"))?,
            vocab_size,
            context_length: md_usize(content, &k("context_length"))?,
            rope_base,
            rms_eps: md_f32(content, &k("attention.layer_norm_rms_epsilon"))?
                as f64,
        };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(ORIGIN, m));
        if self.n_heads == 0
            || self.n_kv_heads == 0
            || !self.d_model.is_multiple_of(self.n_heads)
        {
            return bad(format!(
                "d_model {} and {} heads do not split evenly",
                self.d_model, self.n_heads
            ));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "{} query heads are not a multiple of {} KV heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head dimension {} is odd; RoPE rotates pairs",
                self.head_dim
            ));
        }
        Ok(())
    }
}

/// The token strings of a GGUF's tokenizer.
pub fn token_list(content: &Content) -> Result<Vec<String>> {
    string_list(content, "tokenizer.ggml.tokens")
}

/// A metadata array of strings.
pub fn string_list(content: &Content, key: &str) -> Result<Vec<String>> {
    let v = metadata(content, key)?
        .to_vec()
        .map_err(|e| Error::config(ORIGIN, format!("`{key}`: {e}")))?;
    v.iter()
        .map(|s| {
            s.to_string()
                .cloned()
                .map_err(|e| Error::config(ORIGIN, format!("`{key}`: {e}")))
        })
        .collect()
}

/// One [`KvCache`] per block: the book's own cache from the shared library
/// (`transformer::attention::KvCache`), keys and values `[batch, kv_heads, time,
/// head_dim]` grown by concatenation along time, the same type chapter 6 measures.
#[derive(Clone)]
pub struct Cache {
    pub layers: Vec<KvCache>,
}

impl Cache {
    /// An empty cache for `model`.
    pub fn new(model: &Llama) -> Self {
        Self { layers: vec![KvCache::default(); model.blocks.len()] }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, KvCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by every layer's keys and values.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(KvCache::bytes).sum()
    }
}

/// Rotary position embedding tables: `cos(p θ_i)`, `sin(p θ_i)` with `θ_i =
/// base^(-2i/d)`, `[positions, head_dim / 2]`. GGUF files from llama.cpp store Q
/// and K so that the rotated pairs are adjacent dimensions `(2i, 2i+1)`: the
/// interleaved form, `rope_i`.
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(c: &LlamaConfig, device: &Device) -> Result<Self> {
        let half = c.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| c.rope_base.powf(-2.0 * i as f32 / c.head_dim as f32))
            .collect();
        let inv = Tensor::from_vec(inv, (1, half), device)?;
        let pos = Tensor::arange(0u32, c.context_length as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((c.context_length, 1))?;
        let angles = pos.broadcast_mul(&inv)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()? })
    }

    /// Rotate `x` (`[batch, heads, time, head_dim]`) for positions `offset..offset
    /// + time`.
    fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let t = x.dim(2)?;
        let max = self.cos.dim(0)?;
        if offset + t > max {
            return Err(Error::config(
                "input",
                format!("{} positions exceed the context of {max}", offset + t),
            ));
        }
        let cos = self.cos.narrow(0, offset, t)?;
        let sin = self.sin.narrow(0, offset, t)?;
        Ok(candle_nn::rotary_emb::rope_i(&x.contiguous()?, &cos, &sin)?)
    }
}

/// What one block reads besides its input, for its attention: the rotary tables,
/// the block's cache (appended to), and where to push its [`HeadTrace`], if
/// anywhere.
struct Step<'a> {
    rope: &'a Rope,
    cache: &'a mut KvCache,
    trace: Option<&'a mut Vec<HeadTrace>>,
}

/// Grouped-query causal self-attention: `n_heads` query heads, `n_kv_heads`
/// key/value heads, query head `i` reading key/value head `i / (n_heads /
/// n_kv_heads)`.
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn heads(&self, x: &Tensor, n: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, n, self.head_dim))?.transpose(1, 2)?.contiguous()?)
    }

    fn forward(&self, x: &Tensor, step: Step) -> Result<Tensor> {
        let Step { rope, cache, trace } = step;
        let (b, t, _) = x.dims3()?;
        let offset = cache.len();
        let q =
            rope.apply(&self.heads(&self.q.forward(x)?, self.n_heads)?, offset)?;
        let k =
            rope.apply(&self.heads(&self.k.forward(x)?, self.n_kv_heads)?, offset)?;
        let v = self.heads(&self.v.forward(x)?, self.n_kv_heads)?;
        let (k, v) = cache.append(&k, &v)?;
        let group = self.n_heads / self.n_kv_heads;
        let (k, v) = (repeat_kv(&k, group)?, repeat_kv(&v, group)?);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let logits = (q.matmul(&k.t()?)? * scale)?;
        let masked = if t > 1 {
            logits.broadcast_add(&causal_mask(t, offset, x.device())?)?
        } else {
            logits.clone()
        };
        let probs = candle_nn::ops::softmax_last_dim(&masked)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((
            b,
            t,
            self.n_heads * self.head_dim,
        ))?;
        if let Some(trace) = trace {
            trace.push(HeadTrace { logits, values: v });
        }
        Ok(self.o.forward(&out)?)
    }
}

/// Repeat each key/value head `n` times along the head axis: `[b, g, t, d]` to `[b,
/// g n, t, d]`.
fn repeat_kv(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, g, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?.expand((b, g, n, t, d))?.reshape((b, g * n, t, d))?)
}

/// Additive causal mask for `t` queries at positions `offset..offset + t` over
/// `offset + t` keys: `-inf` where the key lies in the query's future.
fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let keys = offset + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..keys)
                .map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (t, keys), device)?)
}

/// The SwiGLU feed-forward: `W_down (SiLU(W_gate x) * W_up x)`.
pub struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let g = candle_nn::ops::silu(&self.gate.forward(x)?)?;
        self.down.forward(&(g * self.up.forward(x)?)?)
    }
}

/// One pre-norm decoder block: `h = x + Attn(RMSNorm(x))`, `y = h +
/// MLP(RMSNorm(h))`.
pub struct Block {
    attn_norm: RmsNorm,
    attn: Attention,
    ffn_norm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn forward(&self, x: &Tensor, step: Step) -> Result<Tensor> {
        let normed = self.attn_norm.forward(x)?;
        let h = (x + self.attn.forward(&normed, step)?)?;
        Ok((&h + self.mlp.forward(&self.ffn_norm.forward(&h)?)?)?)
    }
}

/// The Llama decoder: token embeddings, blocks, a final RMSNorm and the output
/// projection (tied to the token embeddings when the file has no `output.weight`).
pub struct Llama {
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
    pub config: LlamaConfig,
}

/// Reads GGUF tensors by name and dequantises them to f32.
struct Weights<'a> {
    content: &'a Content,
    file: &'a mut File,
    device: &'a Device,
}

impl Weights<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        if !self.content.tensor_infos.contains_key(name) {
            return Err(Error::config(
                "GGUF tensors",
                format!("missing tensor `{name}`"),
            ));
        }
        let t = self
            .content
            .tensor(self.file, name, self.device)?
            .dequantize(self.device)?;
        if t.dims() != shape {
            return Err(Error::config(
                "GGUF tensors",
                format!("`{name}` has shape {:?}, expected {shape:?}", t.dims()),
            ));
        }
        Ok(t)
    }

    fn linear(
        &mut self,
        name: &str,
        out_dim: usize,
        in_dim: usize,
    ) -> Result<Linear> {
        Ok(Linear::new(
            self.get(&format!("{name}.weight"), &[out_dim, in_dim])?,
            None,
        ))
    }

    fn rms_norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm::new(self.get(&format!("{name}.weight"), &[dim])?, eps))
    }
}

impl Llama {
    /// Load a Llama GGUF file (any tensor types candle can dequantise: F32, F16,
    /// Q8_0, Q4_1, ...).
    pub fn load(path: &Path) -> Result<(Self, Content)> {
        if !path.is_file() {
            return Err(Error::NotFetched { path: path.to_path_buf() });
        }
        let mut file =
            File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let content = Content::read(&mut file).map_err(|e| {
            Error::config(
                path.display().to_string(),
                format!("not a readable GGUF file: {e}"),
            )
        })?;
        let model = Self::from_content(&content, &mut file, &Device::Cpu)?;
        Ok((model, content))
    }

    /// Build from parsed GGUF content and the file it came from.
    pub fn from_content(
        content: &Content,
        file: &mut File,
        device: &Device,
    ) -> Result<Self> {
        let c = LlamaConfig::from_gguf(content)?;
        let mut w = Weights { content, file, device };
        let (d, kv) = (c.d_model, c.n_kv_heads * c.head_dim);
        let embeddings = w.get("token_embd.weight", &[c.vocab_size, d])?;
        let mut blocks = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let p = |s: &str| format!("blk.{i}.{s}");
            blocks.push(Block {
                attn_norm: w.rms_norm(&p("attn_norm"), d, c.rms_eps)?,
                attn: Attention {
                    q: w.linear(&p("attn_q"), d, d)?,
                    k: w.linear(&p("attn_k"), kv, d)?,
                    v: w.linear(&p("attn_v"), kv, d)?,
                    o: w.linear(&p("attn_output"), d, d)?,
                    n_heads: c.n_heads,
                    n_kv_heads: c.n_kv_heads,
                    head_dim: c.head_dim,
                },
                ffn_norm: w.rms_norm(&p("ffn_norm"), d, c.rms_eps)?,
                mlp: Mlp {
                    gate: w.linear(&p("ffn_gate"), c.ffn_dim, d)?,
                    up: w.linear(&p("ffn_up"), c.ffn_dim, d)?,
                    down: w.linear(&p("ffn_down"), d, c.ffn_dim)?,
                },
            });
        }
        let norm = w.rms_norm("output_norm", d, c.rms_eps)?;
        let lm_head = if content.tensor_infos.contains_key("output.weight") {
            w.linear("output", c.vocab_size, d)?
        } else {
            Linear::new(embeddings.clone(), None)
        };
        Ok(Self {
            embed: Embedding::new(embeddings, d),
            blocks,
            norm,
            lm_head,
            rope: Rope::new(&c, device)?,
            config: c,
        })
    }

    /// Run `tokens` (`[batch, time]` u32) after what `cache` holds, appending to
    /// it. Returns the logits of the last position, `[batch, vocab]`.
    pub fn forward_last(
        &self,
        tokens: &Tensor,
        cache: &mut Cache,
    ) -> Result<Tensor> {
        let x = self.forward_hidden(tokens, cache, None)?;
        let t = x.dim(1)?;
        let last = x.narrow(1, t - 1, 1)?.squeeze(1)?;
        Ok(self.lm_head.forward(&last)?)
    }

    /// Run `tokens` after what `cache` holds, appending to it, and return every
    /// position's final (normalised) hidden state, `[batch, time, d_model]`. With
    /// `trace`, each block's [`HeadTrace`] is pushed onto it.
    pub fn forward_hidden(
        &self,
        tokens: &Tensor,
        cache: &mut Cache,
        mut trace: Option<&mut Vec<HeadTrace>>,
    ) -> Result<Tensor> {
        let (_, t) = tokens.dims2()?;
        if t == 0 {
            return Err(Error::config("input", "no tokens to run"));
        }
        if cache.layers.len() != self.blocks.len() {
            return Err(Error::config(
                "input",
                "the cache belongs to another model",
            ));
        }
        let mut x = self.embed.forward(tokens)?;
        for (block, kv) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            let step =
                Step { rope: &self.rope, cache: kv, trace: trace.as_deref_mut() };
            x = block.forward(&x, step)?;
        }
        Ok(self.norm.forward(&x)?)
    }

    /// Greedy decoding of up to `max_new` tokens after `prompt`, stopping after any
    /// token in `stop`. With `use_cache`, the prompt runs once and each new token
    /// runs alone against the cache; without, every step recomputes the whole
    /// sequence from scratch.
    pub fn generate_greedy(
        &self,
        prompt: &[u32],
        max_new: usize,
        stop: &[u32],
        use_cache: bool,
    ) -> Result<Vec<u32>> {
        let device = self.embed.embeddings().device().clone();
        let row = |ids: &[u32]| -> Result<Tensor> {
            Ok(Tensor::new(ids, &device)?.unsqueeze(0)?)
        };
        let mut seq = prompt.to_vec();
        let mut out = Vec::new();
        let mut cache = Cache::new(self);
        let mut logits = self.forward_last(&row(prompt)?, &mut cache)?;
        while out.len() < max_new {
            let next = logits.argmax(D::Minus1)?.squeeze(0)?.to_scalar::<u32>()?;
            out.push(next);
            seq.push(next);
            if stop.contains(&next) || out.len() == max_new {
                break;
            }
            logits = if use_cache {
                self.forward_last(&row(&[next])?, &mut cache)?
            } else {
                self.forward_last(&row(&seq)?, &mut Cache::new(self))?
            };
        }
        Ok(out)
    }
}
