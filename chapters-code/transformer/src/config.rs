//! Model configuration, and the exact parameter and FLOP formulas the book prints.
//!
//! The formulas are written out term by term so the book can include them; tests
//! check that they equal the real variable count of the instantiated models and the
//! FLOPs that the models' matrix multiplications actually perform (see
//! [`crate::flops`]).

use serde::{Deserialize, Serialize};

/// How positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PositionKind {
    /// A trained table of `max_len × d_model` position vectors (GPT-2, BERT).
    Learned,
    /// Fixed sine and cosine waves (the original Transformer); no parameters.
    Sinusoidal,
}

/// The shape of a model. An encoder-decoder built from it has `n_layers` encoder
/// blocks and `n_layers` decoder blocks ("L + L" in T5's accounting); a
/// decoder-only model has `n_layers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_heads: usize,
    /// Key/value heads: `n_heads` for multi-head attention, 1 for multi-query, in
    /// between for grouped-query attention.
    pub n_kv_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    pub max_len: usize,
    pub positions: PositionKind,
    /// Share the output projection with the token embedding.
    pub tie_embeddings: bool,
    /// Which fused kernels the model runs (all, by default): a choice of speed,
    /// read once when the model is built, and not part of the model's shape, so
    /// never serialised.
    #[serde(skip)]
    pub kernels: crate::kernels::Kernels,
}

/// A configuration that cannot build a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("d_model ({d_model}) must be a multiple of n_heads ({n_heads})")]
    HeadSplit { d_model: usize, n_heads: usize },
    #[error("n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")]
    KvSplit { n_heads: usize, n_kv_heads: usize },
}

impl Config {
    /// The tiny GPT used for speed comparisons: vocab 512, d_model 128, 4 heads, 2
    /// layers.
    pub fn tiny() -> Self {
        Config {
            vocab_size: 512,
            d_model: 128,
            n_heads: 4,
            n_kv_heads: 4,
            d_ff: 512,
            n_layers: 2,
            max_len: 64,
            positions: PositionKind::Learned,
            tie_embeddings: false,
            kernels: Default::default(),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("d_ff", self.d_ff),
            ("n_layers", self.n_layers),
            ("max_len", self.max_len),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(ConfigError::HeadSplit {
                d_model: self.d_model,
                n_heads: self.n_heads,
            });
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(ConfigError::KvSplit {
                n_heads: self.n_heads,
                n_kv_heads: self.n_kv_heads,
            });
        }
        Ok(())
    }

    // ANCHOR: param_formula
    /// Parameters of one self-attention: fused Q, K, V projection plus output
    /// projection, each with a bias. With `n_kv_heads < n_heads`, K and V shrink
    /// (MQA/GQA).
    pub fn self_attention_params(&self) -> usize {
        let (d, hd) = (self.d_model, self.head_dim());
        let qkv_out = (self.n_heads + 2 * self.n_kv_heads) * hd;
        (d * qkv_out + qkv_out) + (d * d + d)
    }

    /// Parameters of one cross-attention: Q from the decoder, K and V from the
    /// encoder output.
    pub fn cross_attention_params(&self) -> usize {
        let (d, hd) = (self.d_model, self.head_dim());
        let kv_out = 2 * self.n_kv_heads * hd;
        (d * d + d) + (d * kv_out + kv_out) + (d * d + d)
    }

    /// Parameters of the MLP: d → d_ff → d, with biases.
    pub fn mlp_params(&self) -> usize {
        2 * self.d_model * self.d_ff + self.d_ff + self.d_model
    }

    /// A LayerNorm has a gain and a bias per feature.
    pub fn layer_norm_params(&self) -> usize {
        2 * self.d_model
    }

    /// One pre-LN block of a decoder-only model or of an encoder.
    pub fn block_params(&self) -> usize {
        2 * self.layer_norm_params()
            + self.self_attention_params()
            + self.mlp_params()
    }

    /// One block of an encoder-decoder's decoder: a block plus cross-attention and
    /// its LayerNorm.
    pub fn cross_block_params(&self) -> usize {
        self.block_params()
            + self.layer_norm_params()
            + self.cross_attention_params()
    }

    /// Token and position embeddings, and the output head unless it is tied to the
    /// embedding.
    pub fn embedding_params(&self) -> usize {
        let tokens = self.vocab_size * self.d_model;
        let positions = match self.positions {
            PositionKind::Learned => self.max_len * self.d_model,
            PositionKind::Sinusoidal => 0,
        };
        let head =
            if self.tie_embeddings { 0 } else { self.vocab_size * self.d_model };
        tokens + positions + head
    }

    /// Every parameter of the decoder-only model (causal or prefix: the same
    /// weights).
    pub fn decoder_only_params(&self) -> usize {
        self.embedding_params()
            + self.n_layers * self.block_params()
            + self.layer_norm_params()
    }

    /// Every parameter of the L + L encoder-decoder (embeddings shared by both
    /// sides).
    pub fn encoder_decoder_params(&self) -> usize {
        self.embedding_params()
            + self.n_layers * self.block_params()
            + self.layer_norm_params()
            + self.n_layers * self.cross_block_params()
            + self.layer_norm_params()
    }

    /// Every parameter of T5's shared encoder-decoder: the decoder reuses the
    /// encoder's blocks and adds only its cross-attention, their LayerNorms and a
    /// final LayerNorm.
    pub fn shared_encoder_decoder_params(&self) -> usize {
        self.encoder_decoder_params() - self.n_layers * self.block_params()
    }
    // ANCHOR_END: param_formula

    /// Forward FLOPs of the weight matrix multiplications in one block, per token
    /// (2 FLOPs per multiply-add; LayerNorm, softmax and GELU are not counted).
    pub fn block_matmul_flops(&self) -> u64 {
        let (d, hd) = (self.d_model as u64, self.head_dim() as u64);
        let qkv = d * (self.n_heads as u64 + 2 * self.n_kv_heads as u64) * hd;
        let out = d * d;
        let mlp = 2 * d * self.d_ff as u64;
        2 * (qkv + out + mlp)
    }

    /// Forward FLOPs of attending over `n_keys` keys, per query token and per
    /// layer: scores `q·k` and the weighted sum of values, each `2 · n_keys ·
    /// d_model`.
    pub fn attention_flops(&self, n_keys: usize) -> u64 {
        4 * n_keys as u64 * self.d_model as u64
    }

    /// Forward FLOPs of the output projection to the vocabulary, per token.
    pub fn head_flops(&self) -> u64 {
        2 * self.d_model as u64 * self.vocab_size as u64
    }

    /// Forward FLOPs per token of the decoder-only model on a sequence of `n`
    /// tokens. Every query scores all `n` keys (masked scores are computed, then
    /// discarded), so the causal and the prefix decoder cost the same.
    pub fn decoder_only_flops_per_token(&self, n: usize) -> u64 {
        self.n_layers as u64 * (self.block_matmul_flops() + self.attention_flops(n))
            + self.head_flops()
    }

    /// Total forward FLOPs of the encoder-decoder on `src` input tokens and `tgt`
    /// output tokens.
    pub fn encoder_decoder_flops(&self, src: usize, tgt: usize) -> u64 {
        let (d, hd) = (self.d_model as u64, self.head_dim() as u64);
        let l = self.n_layers as u64;
        let (s, t) = (src as u64, tgt as u64);
        let encoder =
            s * l * (self.block_matmul_flops() + self.attention_flops(src));
        // Cross-attention keys and values: computed once from each encoder output
        // token.
        let cross_kv = s * l * 2 * d * 2 * self.n_kv_heads as u64 * hd;
        // Per decoder token: its block, its own attention, cross-attention Q and
        // output projections, attention over the `src` encoder outputs, and the
        // head.
        let cross_q_out = 2 * 2 * d * d;
        let decoder = t
            * (l * (self.block_matmul_flops()
                + self.attention_flops(tgt)
                + cross_q_out
                + self.attention_flops(src))
                + self.head_flops());
        encoder + cross_kv + decoder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiny_reference_model_has_the_documented_size() {
        // 536,064 parameters: the reference model of the speed issue (vocab 512, d
        // 128, 4 heads, 2 layers, seq 64, untied head, learned positions).
        assert_eq!(Config::tiny().decoder_only_params(), 536_064);
    }

    #[test]
    fn invalid_shapes_are_rejected_with_a_reason() {
        let mut c = Config::tiny();
        c.n_heads = 3;
        assert_eq!(
            c.validate(),
            Err(ConfigError::HeadSplit { d_model: 128, n_heads: 3 })
        );
        let mut c = Config::tiny();
        c.n_kv_heads = 3;
        assert!(matches!(c.validate(), Err(ConfigError::KvSplit { .. })));
        let mut c = Config::tiny();
        c.n_layers = 0;
        assert_eq!(c.validate(), Err(ConfigError::Zero("n_layers")));
    }

    #[test]
    fn t5_accounting_holds_for_l_plus_l_versus_2l() {
        // An L+L encoder-decoder has about the parameters of a 2L decoder and about
        // the compute of an L decoder on the same total number of tokens.
        let c = Config {
            n_layers: 6,
            d_model: 256,
            n_heads: 4,
            n_kv_heads: 4,
            d_ff: 1024,
            ..Config::tiny()
        };
        let c2 = Config { n_layers: 12, ..c.clone() };
        let ratio_params =
            c.encoder_decoder_params() as f64 / c2.decoder_only_params() as f64;
        assert!((1.0..1.25).contains(&ratio_params), "{ratio_params}");
        let n = 64;
        let ed = c.encoder_decoder_flops(n / 2, n / 2) as f64;
        let dec = (n as u64 * c.decoder_only_flops_per_token(n)) as f64;
        let ratio_flops = ed / dec;
        assert!((0.8..1.3).contains(&ratio_flops), "{ratio_flops}");
    }
}
