//! The small Transformer library that every chapter of *Decoder-Only on Trial*
//! builds on.
//!
//! One set of building blocks, written once and short enough to read in the book:
//!
//! - [`mask`]: which positions may attend to which (bidirectional, causal, prefix);
//! - [`layers`], [`attention`], [`model`]: a pre-LayerNorm Transformer that runs as
//!   a causal decoder, a non-causal (prefix) decoder with the same weights, or an
//!   encoder-decoder;
//! - [`config`]: exact parameter and FLOP formulas, checked against the real
//!   variables;
//! - [`loss`], [`train`]: a masked cross-entropy and a deterministic AdamW training
//!   loop;
//! - [`io`], [`plot`]: atomic writes of JSON, safetensors checkpoints and SVG
//!   figures;
//! - [`chapter`]: the harness every chapter crate is written on (command line,
//!   outputs, tables);
//! - [`rng`]: the one seeded ChaCha generator used for data, masking and
//!   initialisation;
//! - [`kernels`]: fused CPU kernels with hand-written backward passes (linear,
//!   LayerNorm, attention, softmax, GELU, cross-entropy, AdamW), chosen in a
//!   model's configuration ([`kernels::Kernels`]).
//!
//! The layers are candle-nn's idiom: they implement `candle_nn::Module` and take
//! their variables from a `candle_nn::VarBuilder`, so a model is built from a
//! [`ParamStore`] (seeded, for training) or from a checkpoint
//! (`VarBuilder::from_mmaped_safetensors`) with the same code. Every tensor lives
//! on the CPU in `f32`. Anything that trains uses either differentiable candle
//! operations or our own kernels, whose backward passes are tested against those
//! operations and finite differences (candle 0.11's fast softmax and LayerNorm
//! kernels have no backward pass, so they are never used).

pub mod attention;
pub mod chapter;
pub mod config;
pub mod corpus;
pub mod error;
pub mod flops;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod mask;
pub mod model;
pub mod objectives;
pub mod params;
pub mod plot;
pub mod rng;
pub mod tokenizer;
pub mod train;

pub use attention::{CrossAttention, KvCache, SelfAttention};
pub use config::{Config, PositionKind};
pub use error::{Error, Result};
pub use kernels::Kernels;
pub use mask::MaskKind;
pub use model::{DecoderOnly, EncoderDecoder, Forward};
pub use params::ParamStore;

pub use strum::{IntoStaticStr, VariantArray};

/// An enum whose variants and short names are derived with strum, never typed out
/// twice: `#[derive(IntoStaticStr, VariantArray)]` and
/// `#[strum(serialize_all = "...")]` in the case of its serde names. `X::VARIANTS`
/// lists the variants in declaration order; `x.name()` is the short name.
pub trait Named: Copy + Into<&'static str> + VariantArray + 'static {
    /// The short name, as in `results.json` ("full_lm", "causal").
    fn name(self) -> &'static str {
        self.into()
    }
}

impl<T: Copy + Into<&'static str> + VariantArray + 'static> Named for T {}

/// The device every chapter runs on: the CPU, so results are the same on every
/// reader's laptop.
pub const DEVICE: candle_core::Device = candle_core::Device::Cpu;
