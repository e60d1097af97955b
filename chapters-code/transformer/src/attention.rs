//! Multi-head attention with an explicit mask, an optional KV cache, and access to
//! the attention probabilities so chapters can study them.

use candle_core::{Result, Tensor};

use crate::config::Config;
use crate::flops;
use crate::kernels::{self, Lever};
use crate::layers::{INIT_STD, Linear, softmax_last};
use crate::mask::MaskKind;
use crate::params::Scope;

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
) -> Result<(Tensor, Tensor)> {
    let (b, h, t_q, hd) = q.dims4()?;
    let (_, g, t_k, _) = k.dims4()?;
    let rep = h / g;
    flops::add(2 * 2 * (b * h * t_q * t_k * hd) as u64);
    let q = q.reshape((b, g, rep * t_q, hd))?;
    let scores = q.matmul(&k.t()?)?.reshape((b, h, t_q, t_k))?;
    let probs = scaled_masked_softmax(&scores, 1.0 / (hd as f64).sqrt(), mask)?;
    let out = probs
        .reshape((b, g, rep * t_q, t_k))?
        .matmul(v)?
        .reshape((b, h, t_q, hd))?;
    Ok((out, probs))
}

/// `softmax(scale · scores + mask)` over the keys.
fn scaled_masked_softmax(
    scores: &Tensor,
    scale: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    if kernels::enabled(Lever::Softmax) {
        return kernels::softmax(scores, scale, mask); // one fused pass, same result
    }
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
/// own Q, K and V.
pub fn scaled_dot_product(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &MaskKind,
) -> Result<Tensor> {
    let (b, _, t_q, _) = q.dims4()?;
    let t_k = k.dim(2)?;
    let m = mask.additive(b, t_q, t_k, 0)?;
    Ok(attend(q, k, v, m.as_ref())?.0)
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
}

impl SelfAttention {
    pub fn new(s: &Scope, cfg: &Config, out_std: f64) -> Result<Self> {
        let hd = cfg.head_dim();
        Ok(SelfAttention {
            qkv: Linear::new(
                &s.scope("qkv"),
                cfg.d_model,
                (cfg.n_heads + 2 * cfg.n_kv_heads) * hd,
                INIT_STD,
            )?,
            out: Linear::new(&s.scope("out"), cfg.d_model, cfg.d_model, out_std)?,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
        })
    }

    // ANCHOR: self_attention
    /// Attend over `x` (`[b, t, d]`) under `mask`. With a cache, `x` holds only the
    /// new positions: their keys and values are appended, and the mask is offset
    /// accordingly.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &MaskKind,
        cache: Option<&mut KvCache>,
        trace: bool,
    ) -> Result<(Tensor, Option<AttnTrace>)> {
        let (b, t, d) = x.dims3()?;
        let (h, g) = (self.n_heads, self.n_kv_heads);
        let hd = d / h;
        if cache.is_none() && !trace && kernels::enabled(Lever::Attention) {
            // Training: the same attention, computed straight from the fused
            // projection.
            flops::add(2 * 2 * (b * h * t * t * hd) as u64);
            let additive = mask.additive(b, t, t, 0)?;
            let scale = 1.0 / (hd as f64).sqrt();
            let out = kernels::attention(
                &self.qkv.forward(x)?,
                h,
                g,
                scale,
                additive.as_ref(),
            )?;
            return Ok((self.out.forward(&out)?, None));
        }
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
        let (out, probs) = attend(&q, &k, &v, additive.as_ref())?;
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
}

impl CrossAttention {
    pub fn new(s: &Scope, cfg: &Config, out_std: f64) -> Result<Self> {
        let hd = cfg.head_dim();
        Ok(CrossAttention {
            q: Linear::new(&s.scope("q"), cfg.d_model, cfg.d_model, INIT_STD)?,
            kv: Linear::new(
                &s.scope("kv"),
                cfg.d_model,
                2 * cfg.n_kv_heads * hd,
                INIT_STD,
            )?,
            out: Linear::new(&s.scope("out"), cfg.d_model, cfg.d_model, out_std)?,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
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
        let (out, probs) = attend(&q, k, v, mask.as_ref())?;
        Ok((self.out.forward(&merge_heads(&out)?)?, trace.then_some(probs)))
    }
}
