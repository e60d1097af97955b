//! The models: a decoder-only Transformer (causal or prefix, same weights) and an
//! encoder-decoder (bidirectional encoder, causal decoder with cross-attention).

use candle_core::{Result, Tensor};
use candle_nn::{Embedding, Module, VarBuilder};

use crate::attention::{AttnTrace, CrossAttention, KvCache, SelfAttention};
use crate::config::{Config, PositionKind};
use crate::layers::{
    INIT_STD, LayerNorm, Linear, Mlp, layer_norm, linear_b, normal, sinusoidal,
};
use crate::mask::MaskKind;

/// Options for one forward pass.
#[derive(Default)]
pub struct Forward<'a> {
    /// Per-layer caches: new positions are appended and attend to everything
    /// cached.
    pub cache: Option<&'a mut Vec<KvCache>>,
    /// Keep each layer's attention probabilities, keys, values and input hidden
    /// states.
    pub trace: bool,
}

/// What a forward pass returns.
pub struct Output {
    /// `[batch, t, vocab]`.
    pub logits: Tensor,
    /// One entry per layer when tracing.
    pub layers: Vec<LayerTrace>,
}

/// What one layer saw and computed, for chapters that study attention or caches.
pub struct LayerTrace {
    /// The layer's input hidden states `[b, t, d]`.
    pub input: Tensor,
    pub attn: AttnTrace,
    /// Cross-attention probabilities (encoder-decoder decoder layers only).
    pub cross_probs: Option<Tensor>,
}

/// Token and position embeddings, shared by every model.
#[derive(Clone)]
pub struct Embeddings {
    pub tokens: Embedding,
    pub positions: Tensor,
}

impl Embeddings {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (v, d) = (cfg.vocab_size, cfg.d_model);
        let tokens = vb.get_with_hints((v, d), "tokens", normal(INIT_STD))?;
        let positions = match cfg.positions {
            PositionKind::Learned => {
                vb.get_with_hints((cfg.max_len, d), "positions", normal(INIT_STD))?
            }
            PositionKind::Sinusoidal => sinusoidal(cfg.max_len, d)?,
        };
        Ok(Embeddings { tokens: Embedding::new(tokens, d), positions })
    }

    /// Embed `ids` (`[b, t]`, u32) sitting at positions `offset .. offset + t`.
    pub fn forward(&self, ids: &Tensor, offset: usize) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let max_len = self.positions.dims()[0];
        if offset + t > max_len {
            candle_core::bail!(
                "sequence of {} positions exceeds max_len {max_len}",
                offset + t
            );
        }
        self.tokens
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, offset, t)?)
    }
}

// ANCHOR: block
/// A pre-LayerNorm block: `x + Attn(LN(x))`, then `x + MLP(LN(x))`.
#[derive(Clone)]
pub struct Block {
    pub ln_attn: LayerNorm,
    pub attn: SelfAttention,
    pub ln_mlp: LayerNorm,
    pub mlp: Mlp,
}

impl Block {
    pub fn new(cfg: &Config, out_std: f64, vb: VarBuilder) -> Result<Self> {
        let (d, k) = (cfg.d_model, &cfg.kernels);
        Ok(Block {
            ln_attn: layer_norm(d, k, vb.pp("ln_attn"))?,
            attn: SelfAttention::new(cfg, out_std, vb.pp("attn"))?,
            ln_mlp: layer_norm(d, k, vb.pp("ln_mlp"))?,
            mlp: Mlp::new(d, cfg.d_ff, out_std, k, vb.pp("mlp"))?,
        })
    }

    pub fn forward(
        &self,
        x: &Tensor,
        mask: &MaskKind,
        cache: Option<&mut KvCache>,
        trace: bool,
    ) -> Result<(Tensor, Option<AttnTrace>)> {
        let (a, t) =
            self.attn.forward(&self.ln_attn.forward(x)?, mask, cache, trace)?;
        let x = (x + a)?;
        let x = (&x + self.mlp.forward(&self.ln_mlp.forward(&x)?)?)?;
        Ok((x, t))
    }
}
// ANCHOR_END: block

/// Residual-branch output projections start smaller, as in GPT-2: std / √(2 ·
/// layers).
fn residual_std(n_layers: usize) -> f64 {
    INIT_STD / ((2 * n_layers) as f64).sqrt()
}

/// Logits from final hidden states, through the tied embedding or a separate head.
fn project(h: &Tensor, emb: &Embeddings, head: &Option<Linear>) -> Result<Tensor> {
    match head {
        Some(head) => head.forward(h),
        None => {
            let (b, t, d) = h.dims3()?;
            let w = emb.tokens.embeddings();
            let v = w.dims()[0];
            crate::flops::add(2 * (b * t * d * v) as u64);
            h.reshape((b * t, d))?.matmul(&w.t()?)?.reshape((b, t, v))
        }
    }
}

fn make_head(cfg: &Config, vb: VarBuilder) -> Result<Option<Linear>> {
    if cfg.tie_embeddings {
        return Ok(None);
    }
    let (d, v) = (cfg.d_model, cfg.vocab_size);
    Ok(Some(linear_b((d, v), false, INIT_STD, &cfg.kernels, vb)?))
}

/// A decoder-only Transformer. The same weights run as a causal decoder (GPT) or,
/// given a prefix mask, as a non-causal decoder / prefix LM (UniLM's seq-to-seq
/// mask).
#[derive(Clone)]
pub struct DecoderOnly {
    pub cfg: Config,
    pub emb: Embeddings,
    pub blocks: Vec<Block>,
    pub ln_final: LayerNorm,
    pub head: Option<Linear>,
}

impl DecoderOnly {
    /// Build the model from `vb`: new variables from a [`crate::ParamStore`]'s
    /// `vb()`, or a checkpoint through `VarBuilder::from_mmaped_safetensors`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let out_std = residual_std(cfg.n_layers);
        let emb = Embeddings::new(cfg, vb.pp("emb"))?;
        let blocks = (0..cfg.n_layers)
            .map(|i| Block::new(cfg, out_std, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let ln_final = layer_norm(cfg.d_model, &cfg.kernels, vb.pp("ln_final"))?;
        let head = make_head(cfg, vb.pp("head"))?;
        Ok(DecoderOnly { cfg: cfg.clone(), emb, blocks, ln_final, head })
    }

    /// Logits for `ids` (`[b, t]`, u32) under `mask`.
    pub fn forward(&self, ids: &Tensor, mask: &MaskKind) -> Result<Tensor> {
        Ok(self.run(ids, mask, Forward::default())?.logits)
    }

    // ANCHOR: decoder_run
    /// The full forward pass, with an optional KV cache and an optional trace.
    pub fn run(
        &self,
        ids: &Tensor,
        mask: &MaskKind,
        opts: Forward,
    ) -> Result<Output> {
        let Forward { mut cache, trace } = opts;
        if let Some(c) = cache.as_deref_mut() {
            c.resize_with(self.blocks.len(), KvCache::default);
        }
        let offset = cache.as_ref().map_or(0, |c| c[0].len());
        let mut x = self.emb.forward(ids, offset)?;
        let mut layers = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c[i]);
            let (y, t) = block.forward(&x, mask, layer_cache, trace)?;
            if let Some(attn) = t {
                layers.push(LayerTrace {
                    input: x.clone(),
                    attn,
                    cross_probs: None,
                });
            }
            x = y;
        }
        let logits = project(&self.ln_final.forward(&x)?, &self.emb, &self.head)?;
        Ok(Output { logits, layers })
    }
    // ANCHOR_END: decoder_run
}

/// A decoder block of the encoder-decoder: self-attention, cross-attention, MLP.
#[derive(Clone)]
pub struct CrossBlock {
    pub block: Block,
    pub ln_cross: LayerNorm,
    pub cross: CrossAttention,
}

/// An encoder-decoder Transformer: `n_layers` bidirectional encoder blocks and
/// `n_layers` causal decoder blocks with cross-attention; embeddings shared by both
/// sides.
#[derive(Clone)]
pub struct EncoderDecoder {
    pub cfg: Config,
    pub emb: Embeddings,
    pub encoder: Vec<Block>,
    pub ln_encoder: LayerNorm,
    pub decoder: Vec<CrossBlock>,
    pub ln_decoder: LayerNorm,
    pub head: Option<Linear>,
}

impl EncoderDecoder {
    pub fn new(cfg: &Config, vb: VarBuilder) -> crate::Result<Self> {
        Self::build(cfg, vb, false)
    }

    /// T5's "encoder-decoder, shared" (Raffel et al. 2020, Table 2): decoder layer
    /// `i` runs the same self-attention, MLP and LayerNorm weights as encoder layer
    /// `i`; only its cross-attention (and the final LayerNorm) are its own. The
    /// parameters of a decoder of `n_layers`, plus cross-attention, for the compute
    /// of an encoder-decoder: a weight used on both sides receives the gradients of
    /// both.
    pub fn shared(cfg: &Config, vb: VarBuilder) -> crate::Result<Self> {
        Self::build(cfg, vb, true)
    }

    // ANCHOR: shared
    /// Create the variables in a fixed order: embeddings, encoder blocks, their
    /// final LayerNorm, then per decoder layer its block (unless `shared`: then
    /// encoder block `i` itself, the same tensors, not a copy of their values),
    /// LayerNorm and cross-attention.
    fn build(cfg: &Config, vb: VarBuilder, shared: bool) -> crate::Result<Self> {
        cfg.validate()?;
        let (d, k) = (cfg.d_model, &cfg.kernels);
        let out_std = residual_std(2 * cfg.n_layers);
        let emb = Embeddings::new(cfg, vb.pp("emb"))?;
        let encoder = (0..cfg.n_layers)
            .map(|i| Block::new(cfg, out_std, vb.pp(format!("encoder.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let ln_encoder = layer_norm(d, k, vb.pp("ln_encoder"))?;
        let decoder = (0..cfg.n_layers)
            .map(|i| {
                let vb = vb.pp(format!("decoder.{i}"));
                let block = if shared {
                    encoder[i].clone()
                } else {
                    Block::new(cfg, out_std, vb.clone())?
                };
                Ok(CrossBlock {
                    block,
                    ln_cross: layer_norm(d, k, vb.pp("ln_cross"))?,
                    cross: CrossAttention::new(cfg, out_std, vb.pp("cross"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ln_decoder = layer_norm(d, k, vb.pp("ln_decoder"))?;
        let head = make_head(cfg, vb.pp("head"))?;
        Ok(EncoderDecoder {
            cfg: cfg.clone(),
            emb,
            encoder,
            ln_encoder,
            decoder,
            ln_decoder,
            head,
        })
    }
    // ANCHOR_END: shared

    /// Encode `src` (`[b, s]`) bidirectionally; optionally keep each layer's trace.
    pub fn encode(
        &self,
        src: &Tensor,
        trace: bool,
    ) -> Result<(Tensor, Vec<LayerTrace>)> {
        self.encode_with(src, &MaskKind::Bidirectional, trace)
    }

    /// Encode `src` under `mask`: [`MaskKind::Bidirectional`], or
    /// [`MaskKind::Padded`] for a batch of sources of different lengths padded at
    /// the end.
    pub fn encode_with(
        &self,
        src: &Tensor,
        mask: &MaskKind,
        trace: bool,
    ) -> Result<(Tensor, Vec<LayerTrace>)> {
        let mut x = self.emb.forward(src, 0)?;
        let mut layers = Vec::new();
        for block in &self.encoder {
            let (y, t) = block.forward(&x, mask, None, trace)?;
            if let Some(attn) = t {
                layers.push(LayerTrace {
                    input: x.clone(),
                    attn,
                    cross_probs: None,
                });
            }
            x = y;
        }
        Ok((self.ln_encoder.forward(&x)?, layers))
    }

    /// Cross-attention keys and values of every decoder layer, from the encoder
    /// output.
    pub fn cross_kv(&self, enc: &Tensor) -> Result<Vec<KvCache>> {
        self.decoder.iter().map(|b| b.cross.project_kv(enc)).collect()
    }

    /// The same for a padded batch of sources: row `r`'s keys past `lens[r]` are
    /// never read.
    pub fn cross_kv_padded(
        &self,
        enc: &Tensor,
        lens: &[usize],
    ) -> Result<Vec<KvCache>> {
        let mut kv = self.cross_kv(enc)?;
        for c in &mut kv {
            c.lens = Some(lens.to_vec());
        }
        Ok(kv)
    }

    /// Logits for a padded batch: sources of real lengths `src_lens`, targets
    /// padded at the end (harmless under the decoder's causal mask).
    pub fn forward_padded(
        &self,
        src: &Tensor,
        src_lens: &[usize],
        tgt: &Tensor,
    ) -> Result<Tensor> {
        let (enc, _) =
            self.encode_with(src, &MaskKind::Padded(src_lens.to_vec()), false)?;
        let kv = self.cross_kv_padded(&enc, src_lens)?;
        Ok(self.decode(tgt, &kv, Forward::default())?.logits)
    }

    // ANCHOR: decode
    /// Decode `tgt` (`[b, t]`) causally against precomputed cross-attention keys
    /// and values.
    pub fn decode(
        &self,
        tgt: &Tensor,
        cross_kv: &[KvCache],
        opts: Forward,
    ) -> Result<Output> {
        let Forward { mut cache, trace } = opts;
        if let Some(c) = cache.as_deref_mut() {
            c.resize_with(self.decoder.len(), KvCache::default);
        }
        let offset = cache.as_ref().map_or(0, |c| c[0].len());
        let mut x = self.emb.forward(tgt, offset)?;
        let mut layers = Vec::new();
        for (i, cb) in self.decoder.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c[i]);
            let b = &cb.block;
            let (a, t) = b.attn.forward(
                &b.ln_attn.forward(&x)?,
                &MaskKind::Causal,
                layer_cache,
                trace,
            )?;
            let h = (&x + a)?;
            let (c, cross_probs) =
                cb.cross.forward(&cb.ln_cross.forward(&h)?, &cross_kv[i], trace)?;
            let h = (h + c)?;
            let y = (&h + b.mlp.forward(&b.ln_mlp.forward(&h)?)?)?;
            if let Some(attn) = t {
                layers.push(LayerTrace { input: x.clone(), attn, cross_probs });
            }
            x = y;
        }
        let logits = project(&self.ln_decoder.forward(&x)?, &self.emb, &self.head)?;
        Ok(Output { logits, layers })
    }
    // ANCHOR_END: decode

    /// Logits for `tgt` given `src`: encode once, then decode with teacher forcing.
    pub fn forward(&self, src: &Tensor, tgt: &Tensor) -> Result<Tensor> {
        let (enc, _) = self.encode(src, false)?;
        let kv = self.cross_kv(&enc)?;
        Ok(self.decode(tgt, &kv, Forward::default())?.logits)
    }
}
