//! Multi-head attention with an explicit mask, an optional KV cache, and access to
//! the attention probabilities so chapters can study them.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};

use crate::config::Config;
use crate::flops;
use crate::kernels;
use crate::layers::{INIT_STD, Linear, linear, softmax_last};
use crate::mask::MaskKind;

/// Keys and values of the positions processed so far, for one attention layer.
/// Shapes `[batch, n_kv_heads, cached_len, head_dim]`.
#[derive(Clone, Default)]
pub struct KvCache {
    pub k: Option<Tensor>,
    pub v: Option<Tensor>,
    /// For cross-attention over a padded batch of sources: each row's real length.
    /// Keys at or past it are padding and are never read. `None`: every cached key
    /// is real.
    pub lens: Option<Vec<usize>>,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // ANCHOR: cache_append
    /// Append new keys and values along the time axis; return everything cached so
    /// far.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = match &self.k {
            Some(old) => Tensor::cat(&[old, k], 2)?,
            None => k.clone(),
        };
        let v = match &self.v {
            Some(old) => Tensor::cat(&[old, v], 2)?,
            None => v.clone(),
        };
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        Ok((k, v))
    }
    // ANCHOR_END: cache_append

    /// Bytes held by this layer's cache.
    pub fn bytes(&self) -> usize {
        [&self.k, &self.v]
            .iter()
            .filter_map(|t| t.as_ref())
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }
}

/// What one attention call returns besides its output, when asked.
#[derive(Clone)]
pub struct AttnTrace {
    /// Attention probabilities, `[batch, n_heads, t_q, t_k]`.
    pub probs: Tensor,
    /// The keys and values of this call's positions, `[batch, n_kv_heads, t,
    /// head_dim]`.
    pub k: Tensor,
    pub v: Tensor,
}

/// `softmax(scale · scores + mask)` over the keys: the function an attention layer
/// normalises its scores with, chosen when the layer is built.
pub type Softmax = fn(&Tensor, f64, Option<&Tensor>) -> Result<Tensor>;

/// The softmax the model's kernels ask for: the fused kernel, or the reference.
pub fn softmax_for(kernels: &kernels::Kernels) -> Softmax {
    if kernels.softmax { kernels::softmax } else { scaled_masked_softmax }
}

/// Shared core: scaled dot-product attention of `q` over `k`, `v` with an additive
/// mask. `q`: `[b, h, t_q, hd]`; `k`, `v`: `[b, g, t_k, hd]` with `h` a multiple of
/// `g`. Query heads `r·(h/g) .. (r+1)·(h/g)` share key/value head `r`
/// (grouped-query attention); the grouping is a reshape, so no key or value is
/// copied.
// ANCHOR: sdpa
fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    softmax: Softmax,
) -> Result<(Tensor, Tensor)> {
    let (b, h, t_q, hd) = q.dims4()?;
    let (_, g, t_k, _) = k.dims4()?;
    let rep = h / g;
    flops::add(2 * 2 * (b * h * t_q * t_k * hd) as u64);
    let q = q.reshape((b, g, rep * t_q, hd))?;
    let scores = q.matmul(&k.t()?)?.reshape((b, h, t_q, t_k))?;
    let probs = softmax(&scores, 1.0 / (hd as f64).sqrt(), mask)?;
    let out = probs
        .reshape((b, g, rep * t_q, t_k))?
        .matmul(v)?
        .reshape((b, h, t_q, hd))?;
    Ok((out, probs))
}

/// `softmax(scale · scores + mask)` over the keys, in candle operations.
pub fn scaled_masked_softmax(
    scores: &Tensor,
    scale: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let scores = (scores * scale)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(&m.to_dtype(scores.dtype())?)?,
        None => scores,
    };
    softmax_last(&scores)
}
// ANCHOR_END: sdpa

/// Scaled dot-product attention of one set of heads, `[b, h, t, d]` each, under
/// `mask`: the computation a model's attention layer runs, for code that brings its
/// own Q, K and V (with the default kernels).
pub fn scaled_dot_product(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &MaskKind,
) -> Result<Tensor> {
    let (b, _, t_q, _) = q.dims4()?;
    let t_k = k.dim(2)?;
    let m = mask.additive(b, t_q, t_k, 0)?;
    Ok(attend(q, k, v, m.as_ref(), softmax_for(&Default::default()))?.0)
}

/// Merge heads: `[b, h, t, hd]` → `[b, t, h·hd]`.
fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, hd) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, t, h * hd))
}

/// Self-attention with one fused projection for queries, keys and values.
#[derive(Clone)]
pub struct SelfAttention {
    pub qkv: Linear,
    pub out: Linear,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    softmax: Softmax,
    fused: bool,
}

impl SelfAttention {
    pub fn new(cfg: &Config, out_std: f64, vb: VarBuilder) -> Result<Self> {
        let (d, hd, k) = (cfg.d_model, cfg.head_dim(), &cfg.kernels);
        let qkv_out = (cfg.n_heads + 2 * cfg.n_kv_heads) * hd;
        Ok(SelfAttention {
            qkv: linear(d, qkv_out, INIT_STD, k, vb.pp("qkv"))?,
            out: linear(d, d, out_std, k, vb.pp("out"))?,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            softmax: softmax_for(k),
            fused: k.attention,
        })
    }

    /// Attend over `x` (`[b, t, d]`) under `mask`, through the fused attention
    /// kernel when the model's kernels ask for it and neither a cache nor a trace
    /// is wanted (training), else through [`SelfAttention::attend`].
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &MaskKind,
        cache: Option<&mut KvCache>,
        trace: bool,
    ) -> Result<(Tensor, Option<AttnTrace>)> {
        if self.fused && cache.is_none() && !trace {
            return Ok((self.forward_fused(x, mask)?, None));
        }
        self.attend(x, mask, cache, trace)
    }

    /// The same attention, computed straight from the fused projection's output
    /// (see `kernels`).
    fn forward_fused(&self, x: &Tensor, mask: &MaskKind) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let (h, g) = (self.n_heads, self.n_kv_heads);
        let hd = d / h;
        flops::add(2 * 2 * (b * h * t * t * hd) as u64);
        let additive = mask.additive(b, t, t, 0)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let qkv = self.qkv.forward(x)?;
        let out = kernels::attention(&qkv, h, g, scale, additive.as_ref())?;
        self.out.forward(&out)
    }

    // ANCHOR: self_attention
    /// Attend over `x` (`[b, t, d]`) under `mask`. With a cache, `x` holds only the
    /// new positions: their keys and values are appended, and the mask is offset
    /// accordingly.
    pub fn attend(
        &self,
        x: &Tensor,
        mask: &MaskKind,
        cache: Option<&mut KvCache>,
        trace: bool,
    ) -> Result<(Tensor, Option<AttnTrace>)> {
        let (b, t, d) = x.dims3()?;
        let (h, g) = (self.n_heads, self.n_kv_heads);
        let hd = d / h;
        let qkv =
            self.qkv.forward(x)?.reshape((b, t, h + 2 * g, hd))?.transpose(1, 2)?;
        let q = qkv.narrow(1, 0, h)?.contiguous()?;
        let k_new = qkv.narrow(1, h, g)?.contiguous()?;
        let v_new = qkv.narrow(1, h + g, g)?.contiguous()?;
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let (k, v) = match cache {
            Some(c) => c.append(&k_new, &v_new)?,
            None => (k_new.clone(), v_new.clone()),
        };
        let additive = mask.additive(b, t, offset + t, offset)?;
        let (out, probs) = attend(&q, &k, &v, additive.as_ref(), self.softmax)?;
        let y = self.out.forward(&merge_heads(&out)?)?;
        Ok((y, trace.then_some(AttnTrace { probs, k: k_new, v: v_new })))
    }
    // ANCHOR_END: self_attention
}

/// Cross-attention: decoder queries read the encoder's outputs.
#[derive(Clone)]
pub struct CrossAttention {
    pub q: Linear,
    pub kv: Linear,
    pub out: Linear,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    softmax: Softmax,
}

impl CrossAttention {
    pub fn new(cfg: &Config, out_std: f64, vb: VarBuilder) -> Result<Self> {
        let (d, hd, k) = (cfg.d_model, cfg.head_dim(), &cfg.kernels);
        Ok(CrossAttention {
            q: linear(d, d, INIT_STD, k, vb.pp("q"))?,
            kv: linear(d, 2 * cfg.n_kv_heads * hd, INIT_STD, k, vb.pp("kv"))?,
            out: linear(d, d, out_std, k, vb.pp("out"))?,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            softmax: softmax_for(k),
        })
    }

    /// Keys and values of the encoder output `[b, s, d]`: computed once per input
    /// and reused for every decoder step.
    pub fn project_kv(&self, enc: &Tensor) -> Result<KvCache> {
        let (b, s, d) = enc.dims3()?;
        let (g, hd) = (self.n_kv_heads, d / self.n_heads);
        let kv =
            self.kv.forward(enc)?.reshape((b, s, 2 * g, hd))?.transpose(1, 2)?;
        Ok(KvCache {
            k: Some(kv.narrow(1, 0, g)?.contiguous()?),
            v: Some(kv.narrow(1, g, g)?.contiguous()?),
            lens: None,
        })
    }

    /// Decoder states `x` (`[b, t, d]`) attend to every encoder position.
    pub fn forward(
        &self,
        x: &Tensor,
        enc_kv: &KvCache,
        trace: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (b, t, d) = x.dims3()?;
        let h = self.n_heads;
        let q = self
            .q
            .forward(x)?
            .reshape((b, t, h, d / h))?
            .transpose(1, 2)?
            .contiguous()?;
        let (Some(k), Some(v)) = (&enc_kv.k, &enc_kv.v) else {
            candle_core::bail!(
                "cross-attention needs the encoder's keys and values"
            )
        };
        let mask = match &enc_kv.lens {
            Some(lens) => {
                MaskKind::Padded(lens.clone()).additive(b, t, k.dim(2)?, 0)?
            }
            None => None,
        };
        let (out, probs) = attend(&q, k, v, mask.as_ref(), self.softmax)?;
        Ok((self.out.forward(&merge_heads(&out)?)?, trace.then_some(probs)))
    }
}
