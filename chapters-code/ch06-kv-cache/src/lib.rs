//! Chapter 6: the KV cache and multi-turn dialogue.
//!
//! The article's fourth claim is that a decoder-only model can keep reusing its KV
//! cache from one dialogue turn to the next, while encoder-decoders and prefix LMs
//! cannot. This crate checks the mechanism and measures its price. The modules
//! follow the page:
//!
//! - [`settings`]: the models and lengths of one run;
//! - [`generation`]: greedy generation with the library's KV cache equals
//!   generation by full recomputation, for the causal decoder, the prefix LM and
//!   the encoder-decoder;
//! - [`invalidation`]: appending a turn leaves a causal decoder's cached keys and
//!   values untouched, but changes those of a bidirectional region that holds the
//!   history;
//! - [`decode`]: one decoding step with and without the cache, counted in FLOPs and
//!   timed;
//! - [`dialogue`]: a simulated dialogue under four strategies beside an exact cost
//!   model;
//! - [`memory`]: cache sizes for multi-head, grouped-query and multi-query
//!   attention, for our models and for published configurations;
//! - [`diagrams`]: a KV cache growing one row per step, and which cached rows a
//!   second turn leaves valid, drawn from the settings and the invalidation
//!   results;
//! - [`report`] and [`outputs`]: the whole run, and what it writes.

pub mod claims;
pub mod decode;
pub mod diagrams;
pub mod dialogue;
pub mod generation;
pub mod invalidation;
pub mod memory;
pub mod outputs;
pub mod report;
pub mod settings;

pub use decode::*;
pub use dialogue::*;
pub use generation::*;
pub use invalidation::*;
pub use memory::*;
pub use outputs::*;
pub use report::*;
pub use settings::*;
pub use transformer::chapter::Chapter;
pub use transformer::{IntoStaticStr, Named, VariantArray};

/// The token the encoder-decoder's decoder starts every reply with.
pub const BOS: u32 = 0;
